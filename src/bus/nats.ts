// Main thread (agent and overwatch), cold path. The NATS side of agent.bus and
// overwatch.bus: connection options from the config, the subjects, and a
// connection that never gives up. The bus only moves sealed bytes: the
// messages, their encryption, signatures, pins and replay protection are
// src/gossip/'s, exactly as on the direct channel.
//
//   agent ──publish <prefix>.agents.<region> (reply <prefix>.acks.<agent id>)──► NATS ──► every overwatch
//   overwatch ──sealed ack──► <prefix>.acks.<agent id> ──► the agent

import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { BusConfig } from '../config/types.ts';
import { OpenGslbError } from '../lib/errors.ts';

/** Wait between two reconnect attempts to the NATS servers. */
export const RECONNECT_WAIT_MS = 500;

/**
 * Longest close() waits for the drain (what was published reaching NATS):
 * a server that stopped answering without closing the connection (a black
 * hole, a paused process) is seen as down only after the client's pings
 * fail, minutes later, and the drain would wait for it all that time.
 */
export const CLOSE_DRAIN_MS = 2000;

/** A subject token from free text: NATS tokens may not hold ".", "*", ">" or white space. */
function token(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** The subject an agent of `region` publishes to. */
export function agentSubject(prefix: string, region: string): string {
  return `${prefix}.agents.${token(region)}`;
}

/** The subject every overwatch subscribes to (every region). */
export function agentsWildcard(prefix: string): string {
  return `${prefix}.agents.>`;
}

/** The subject acks to one agent go to. */
export function ackSubject(prefix: string, agentId: string): string {
  return `${prefix}.acks.${token(agentId)}`;
}

/**
 * Connection options for `bus` (`where` is "agent.bus" or "overwatch.bus",
 * for messages): every server, the token or the .creds file, TLS files, and
 * reconnect forever. Throws OPENGSLB_ERR_CONFIG_READ naming the key when the
 * credentials file cannot be read.
 */
export function connectionOptions(bus: BusConfig, where: string, name: string): ConnectionOptions {
  const options: ConnectionOptions = {
    servers: [...bus.servers],
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    // A first connection that fails is retried like a lost one: NATS may start after us.
    waitOnFirstConnect: true,
  };
  if (bus.token !== null) options.token = bus.token;
  if (bus.credentialsFile !== null) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(bus.credentialsFile);
    } catch (err) {
      throw new OpenGslbError('OPENGSLB_ERR_CONFIG_READ', `${where}.credentials_file: cannot read ${bus.credentialsFile}: ${(err as Error).message}`, { cause: err });
    }
    options.authenticator = credsAuthenticator(creds);
  }
  if (bus.tls !== null) {
    options.tls = {
      ...(bus.tls.caFile === null ? {} : { caFile: bus.tls.caFile }),
      ...(bus.tls.certFile === null ? {} : { certFile: bus.tls.certFile }),
      ...(bus.tls.keyFile === null ? {} : { keyFile: bus.tls.keyFile }),
    };
  }
  return options;
}

/** What a bus link reports about its NATS connection. */
export type BusLinkEvent =
  | { readonly kind: 'connected'; readonly server: string; readonly first: boolean }
  | { readonly kind: 'disconnected'; readonly server: string }
  | { readonly kind: 'error'; readonly error: string };

/**
 * Connects in the background (never rejects: the client retries every
 * RECONNECT_WAIT_MS until a server answers) and reports the link's ups and
 * downs. `ready` resolves with the connection once the first one is made.
 */
export class BusLink {
  readonly ready: Promise<NatsConnection>;
  #nc: NatsConnection | null = null;
  #connected = false;
  #closed = false;

  constructor(options: ConnectionOptions, onEvent: (e: BusLinkEvent) => void) {
    // Asked before every dial: with waitOnFirstConnect the client retries a first
    // connection forever and gives no handle to stop it, so a close() before NATS
    // ever answered would leave it dialling (timers and sockets) for the process's
    // life. Throwing here ends that loop (connect() rejects); null keeps its pick.
    const stopWhenClosed = (): null => {
      if (this.#closed) throw new Error('bus link closed');
      return null;
    };
    this.ready = connect({ ...options, reconnectToServer: stopWhenClosed }).then((nc) => {
      this.#nc = nc;
      this.#connected = true;
      if (this.#closed) {
        void nc.close();
        return nc;
      }
      onEvent({ kind: 'connected', server: nc.getServer(), first: true });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect') {
            this.#connected = false;
            onEvent({ kind: 'disconnected', server: s.server });
          } else if (s.type === 'reconnect') {
            this.#connected = true;
            onEvent({ kind: 'connected', server: s.server, first: false });
          } else if (s.type === 'error') {
            onEvent({ kind: 'error', error: String(s.error) });
          }
        }
      })();
      return nc;
    });
    // connect() rejects only for options it refuses (or close() before the first connection).
    this.ready.catch((err: unknown) => {
      if (!this.#closed) onEvent({ kind: 'error', error: err instanceof Error ? err.message : String(err) });
    });
  }

  /** The connection while it is up, else null. */
  get connection(): NatsConnection | null {
    return this.#connected && !this.#closed ? this.#nc : null;
  }

  /** Flushes what was published (for at most CLOSE_DRAIN_MS) and closes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const nc = this.#nc;
    if (nc === null) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (this.#connected) {
        const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), CLOSE_DRAIN_MS); });
        if (await Promise.race([nc.drain(), late]) === 'late') await nc.close();
      } else {
        await nc.close();
      }
    } catch {
      await nc.close().catch(() => {});
    } finally {
      clearTimeout(timer);
    }
  }
}
