// Main thread (agent), per message. agent.bus: publishes the agent's sealed
// messages (the same MessageSealer, so the same bytes, sequence and
// signatures as the direct sender) to <prefix>.agents.<region> instead of
// sending them to each overwatch. Every message names the agent's ack subject
// as its reply; every overwatch that takes it answers there with a sealed ack,
// as over TCP. The agent cannot know how many overwatches listen, so it
// counts acks rather than waiting for each overwatch.
//
//   send / sendReliable ──connected?──yes──► publish (reply <prefix>.acks.<agent id>)
//                              └─no──► nothing queued: the state is resent whole on reconnect
//   reconnect ─► onResync (the agent registers again with its current state)
//   ack register (an overwatch does not know this agent) ─► onResync (at most once a second)
//   ack refused bad_signature while a rotation is pending (an overwatch still pins the
//     previous certificate) ─► onResync: the registration, signed by both keys (at most once a second)

import { createHash } from 'node:crypto';
import type { BusConfig } from '../config/types.ts';
import type { Keyring } from '../gossip/envelope.ts';
import type { AckMessage, MessageHeader, OutgoingMessage, RegisterMessage } from '../gossip/messages.ts';
import type { MessageSealer, NodeEvent, NodeStatus, OverwatchNode, SenderCounters } from '../gossip/sender.ts';
import { openMessage } from '../gossip/wire.ts';
import { ackSubject, agentSubject, BusLink, connectionOptions, type BusLinkEvent } from './nats.ts';

/** Fewest milliseconds between two resyncs asked for by acks (several overwatches may ask at once). */
const RESYNC_MIN_GAP_MS = 1000;

/**
 * How long after publishing a message its acks are taken, and how many
 * published messages are remembered for that. Anyone who can publish on NATS
 * can put an ack captured earlier on the ack subject again: it opens (acks are
 * sealed, not signed, and carry no overwatch id), so only acks of a message
 * this sender published lately count (the direct sender takes only the ack
 * of its message in flight), each once: every seal has its own random nonce,
 * so two overwatches' acks of one message differ and a replay is the same bytes.
 */
const ACK_WINDOW_MS = 30_000;
const ACK_WINDOW_MAX = 4096;

export interface BusSenderOptions {
  readonly bus: BusConfig;
  readonly region: string;
  readonly keyring: Keyring;
  readonly sealer: MessageSealer;
  /** Client name the NATS server shows. */
  readonly name: string;
  /** The agent sends its whole state again (registration with current backends): after a reconnect, or when an overwatch asks. */
  readonly onResync: () => void;
  readonly onNodeEvent?: (event: NodeEvent) => void;
  readonly onLinkEvent?: (event: BusLinkEvent) => void;
  readonly now?: () => number;
}

/**
 * The agent's NATS publisher, with the direct sender's surface (the agent
 * holds one or the other). Its status() is one entry: the bus, named by its
 * first server.
 */
export class BusSender {
  readonly #keyring: Keyring;
  readonly #sealer: MessageSealer;
  readonly #link: BusLink;
  readonly #subject: string;
  readonly #prefix: string;
  readonly #node: OverwatchNode;
  readonly #onResync: () => void;
  readonly #onNodeEvent: (event: NodeEvent) => void;
  readonly #now: () => number;
  readonly #counts = { udpSent: 0, tcpSent: 0, busSent: 0, acked: 0, refused: 0, failures: 0, queueDrops: 0 };
  #registration: Omit<RegisterMessage, keyof MessageHeader> | null = null;
  /** Sequence number of the last registration published, and whether an overwatch acked it. */
  #registrationSeq = -1;
  #registered = false;
  #lastAckMs: number | null = null;
  #lastError: string | null = null;
  #lastResyncMs = 0;
  #everConnected = false;
  #ackSubject: string | null = null;
  /** Sequence numbers published within ACK_WINDOW_MS, oldest first: when, and the digests of the acks taken for it (see ACK_WINDOW_MS). */
  readonly #awaitingAcks = new Map<number, { readonly atMs: number; readonly acks: Set<string> }>();
  #closed = false;

  constructor(options: BusSenderOptions) {
    this.#keyring = options.keyring;
    this.#sealer = options.sealer;
    this.#prefix = options.bus.subjectPrefix;
    this.#subject = agentSubject(options.bus.subjectPrefix, options.region);
    this.#onResync = options.onResync;
    this.#onNodeEvent = options.onNodeEvent ?? (() => {});
    this.#now = options.now ?? Date.now;
    const first = new URL(options.bus.servers[0]);
    this.#node = { host: first.hostname.replace(/^\[|\]$/g, ''), port: Number(first.port || 4222) };
    this.#link = new BusLink(connectionOptions(options.bus, 'agent.bus', options.name), (e) => {
      options.onLinkEvent?.(e);
      this.#onLink(e);
    });
  }

  /** Subscribes to this agent's ack subject (once; the client keeps it across reconnects). */
  #subscribeAcks(): void {
    const nc = this.#link.connection;
    if (this.#closed || nc === null || this.#ackSubject !== null) return;
    const subject = ackSubject(this.#prefix, this.#sealer.identity.agentId);
    this.#ackSubject = subject;
    nc.subscribe(subject, { callback: (err, msg) => { if (err === null) this.#onAck(msg.data); } });
  }

  #onLink(e: BusLinkEvent): void {
    if (e.kind === 'connected') {
      this.#lastError = null;
      this.#onNodeEvent({ kind: 'up', node: this.#node });
      // The first connection: the registration (if set) goes out now; later ones: the whole state again.
      if (e.first) {
        this.#everConnected = true;
        this.#subscribeAcks();
        this.#publishRegistration();
      } else {
        this.#registered = false;
        this.#resync(true);
      }
    } else if (e.kind === 'disconnected') {
      this.#counts.failures++;
      this.#lastError = `disconnected from ${e.server}`;
      this.#onNodeEvent({ kind: 'down', node: this.#node, error: this.#lastError, retryInMs: 500, failures: this.#counts.failures });
    } else {
      this.#lastError = e.error;
    }
  }

  #resync(force: boolean): void {
    const now = this.#now();
    if (!force && now - this.#lastResyncMs < RESYNC_MIN_GAP_MS) return;
    this.#lastResyncMs = now;
    this.#onResync();
  }

  /** Sets the registration and publishes it (now if connected, else at the first connection). */
  setRegistration(registration: Omit<RegisterMessage, keyof MessageHeader>): void {
    this.#registration = registration;
    this.#registered = false;
    this.#publishRegistration();
  }

  #publishRegistration(): void {
    if (this.#registration === null) return;
    const seq = this.#publish(this.#registration);
    if (seq !== null) this.#registrationSeq = seq;
  }

  /** Publishes a message; while NATS is away it is dropped (counted) and the state goes out whole on reconnect. */
  send(message: OutgoingMessage): 'bus' {
    this.#publish(message);
    return 'bus';
  }

  /** As send(): the bus has no per-overwatch queue; a full state lost while away is replaced by the resync. */
  sendReliable(message: OutgoingMessage, _key: string | null = null): void {
    this.#publish(message);
  }

  #publish(message: OutgoingMessage): number | null {
    if (this.#closed) return null;
    const nc = this.#link.connection;
    if (nc === null || this.#ackSubject === null) {
      this.#counts.queueDrops++;
      return null;
    }
    const { bytes, seq } = this.#sealer.seal(message);
    try {
      nc.publish(this.#subject, bytes, { reply: this.#ackSubject });
    } catch (err) {
      // Closed or draining underneath us: the resync after the reconnect covers it.
      this.#counts.queueDrops++;
      this.#lastError = (err as Error).message;
      return null;
    }
    this.#counts.busSent++;
    this.#awaitingAcks.set(seq, { atMs: this.#now(), acks: new Set() });
    this.#forgetOldSeqs();
    return seq;
  }

  #onAck(data: Uint8Array): void {
    const opened = openMessage(this.#keyring, data);
    if (!opened.ok || opened.opened.message.type !== 'ack') return;
    const ack = opened.opened.message as AckMessage;
    if (ack.agentId !== this.#sealer.identity.agentId) return;
    this.#forgetOldSeqs();
    // An ack of no message published lately, or one taken already, is a replay (or of an earlier run): it changes nothing.
    const acks = this.#awaitingAcks.get(ack.seq)?.acks;
    const digest = createHash('sha256').update(data).digest('base64');
    if (acks === undefined || acks.has(digest)) return;
    acks.add(digest);
    this.#counts.acked++;
    this.#lastAckMs = this.#now();
    if (ack.status === 'ok' && ack.seq === this.#registrationSeq) this.#registered = true;
    else if (ack.status === 'register') {
      this.#onNodeEvent({ kind: 'register_requested', node: this.#node });
      this.#resync(false);
    } else if (ack.status === 'refused') {
      this.#counts.refused++;
      if (ack.reason === 'bad_signature' && ack.seq !== this.#registrationSeq && this.#sealer.identity.previous !== null) {
        // Signed by the new key, checked against the old pin: an overwatch that was away while the rotation
        // was registered (acks do not say which overwatch, so the agent cannot know it missed it). The
        // registration carries the old key's signature, which that overwatch re-pins on. Not for a refused
        // registration: sending it again would be refused the same way. Said (and sent) at most once a second.
        if (this.#now() - this.#lastResyncMs >= RESYNC_MIN_GAP_MS) {
          this.#onNodeEvent({ kind: 'previous_pin', node: this.#node });
          this.#resync(true);
        }
      } else {
        this.#onNodeEvent({ kind: 'refused', node: this.#node, type: ack.seq === this.#registrationSeq ? 'register' : 'heartbeat', reason: ack.reason ?? 'refused' });
      }
    }
  }

  #forgetOldSeqs(): void {
    const oldest = this.#now() - ACK_WINDOW_MS;
    for (const [seq, { atMs }] of this.#awaitingAcks) {
      if (atMs >= oldest && this.#awaitingAcks.size <= ACK_WINDOW_MAX) break;
      this.#awaitingAcks.delete(seq);
    }
  }

  /** One entry: the bus. `registered`: at least one overwatch acked the current registration. */
  status(): NodeStatus[] {
    const up = this.#link.connection !== null;
    return [{
      node: this.#node,
      state: up ? 'up' : this.#everConnected || this.#lastError !== null ? 'down' : 'unknown',
      failures: up ? 0 : this.#counts.failures,
      queued: 0,
      lastAckMs: this.#lastAckMs,
      lastError: this.#lastError,
      registered: this.#registered,
      // Acks on the bus come from every overwatch and do not name it: no one overwatch's notice to show.
      notice: null,
    }];
  }

  counters(): SenderCounters {
    return { ...this.#counts };
  }

  /** Resolves true once NATS took what was published (flush round trip), false after `timeoutMs` or when NATS is away. */
  async flush(timeoutMs: number): Promise<boolean> {
    const nc = this.#link.connection;
    if (nc === null) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    try {
      return await Promise.race([nc.flush().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#link.close();
  }
}
