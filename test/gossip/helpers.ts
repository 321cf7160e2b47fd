// Test helpers for the agent channel: real identities in temporary
// directories, real keys, an overwatch (channel + receiver on loopback) that
// records what its handlers saw, and a small agent that seals messages the
// way the sender does but lets a test pick every field.

import { randomBytes, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import type { TestContext } from 'node:test';
import { OverwatchChannel, type ChannelEvent, type DropEvent, type RegisterEvent } from '../../src/gossip/channel.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import { encodeFrame, FrameReader } from '../../src/gossip/framing.ts';
import { loadOrCreateAgentIdentity, type AgentIdentity, type AgentKeyAlgorithm } from '../../src/gossip/identity.ts';
import type {
  AckMessage, AgentMessage, BackendReport, DeregisterMessage, HealthUpdateMessage, HeartbeatMessage, MessageHeader, OutgoingMessage,
} from '../../src/gossip/messages.ts';
import { GossipReceiver } from '../../src/gossip/receiver.ts';
import { buildRegistration } from '../../src/gossip/sender.ts';
import { openMessage, sealMessage } from '../../src/gossip/wire.ts';
import { MemoryStore, type PinStore } from '../../src/state/store.ts';

/** Makes a temporary directory removed after the test. */
export async function tempDir(t: TestContext, prefix = 'opengslb-gossip-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Creates a fresh agent identity (key and certificate files in a temporary directory). */
export async function newIdentity(t: TestContext, region = 'eu-west', algorithm: AgentKeyAlgorithm = 'ed25519'): Promise<{ identity: AgentIdentity; dir: string }> {
  const dir = await tempDir(t);
  const { identity } = await loadOrCreateAgentIdentity({ certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region, algorithm });
  return { identity, dir };
}

/** A fresh random keyring. */
export function newKeyring(): Keyring {
  return new Keyring(randomBytes(32));
}

/** A backend report with defaults. */
export function backend(service: string, address: string, port = 80, health: BackendReport['health'] = 'healthy'): BackendReport {
  return { service, address, port, weight: 100, health, drain: null, check: null };
}

/** Seals messages for one identity with test-chosen sequence numbers and timestamps. */
export class TestAgent {
  identity: AgentIdentity;
  keyring: Keyring;
  seq = 1000;
  readonly tokens: Record<string, string>;

  constructor(identity: AgentIdentity, keyring: Keyring, tokens: Record<string, string>) {
    this.identity = identity;
    this.keyring = keyring;
    this.tokens = tokens;
  }

  /** Stamps and seals `message`; options override the header or the keys used. */
  seal(message: OutgoingMessage, options: { seq?: number; timestampMs?: number; keyring?: Keyring; signer?: KeyObject; previous?: KeyObject | null; agentId?: string } = {}): Buffer {
    const seq = options.seq ?? ++this.seq;
    const full = { ...message, agentId: options.agentId ?? this.identity.agentId, seq, timestampMs: options.timestampMs ?? Date.now() } as AgentMessage;
    const previous = options.previous !== undefined ? options.previous : (full.type === 'register' ? (this.identity.previous?.privateKey ?? null) : null);
    return sealMessage(options.keyring ?? this.keyring, full, options.signer ?? this.identity.privateKey, previous);
  }

  register(backends: readonly BackendReport[], tokens: Record<string, string> = this.tokens, region = 'eu-west') {
    return buildRegistration(this.identity, { region, version: 'test', serviceTokens: tokens, heartbeatIntervalMs: 10_000, backends });
  }

  heartbeat(backends: readonly BackendReport[], full = true): Omit<HeartbeatMessage, keyof MessageHeader> {
    return { type: 'heartbeat', full, backends, load: null };
  }

  health(backends: readonly BackendReport[]): Omit<HealthUpdateMessage, keyof MessageHeader> {
    return { type: 'health_update', backends };
  }

  deregister(): Omit<DeregisterMessage, keyof MessageHeader> {
    return { type: 'deregister', reason: 'shutdown' };
  }
}

/** Everything the overwatch's handlers saw, in order. */
export interface Seen {
  registers: RegisterEvent[];
  heartbeats: ChannelEvent<HeartbeatMessage>[];
  healthUpdates: ChannelEvent<HealthUpdateMessage>[];
  deregisters: ChannelEvent<DeregisterMessage>[];
  drops: DropEvent[];
}

/** An overwatch's channel and receiver on loopback, recording every event. */
export interface TestOverwatch {
  channel: OverwatchChannel;
  receiver: GossipReceiver;
  seen: Seen;
  /** Resolves with the next event of the given kind. */
  next(kind: keyof Seen): Promise<unknown>;
}

export async function startOverwatch(
  t: TestContext,
  options: {
    keyring: Keyring; tokens: Record<string, string>; store?: PinStore; regions?: readonly string[] | null; host?: string; port?: number;
    maxMessageBytes?: number; maxConnections?: number; maxBufferedBytes?: number; maxMessagesPerConnection?: number;
  },
): Promise<TestOverwatch> {
  const seen: Seen = { registers: [], heartbeats: [], healthUpdates: [], deregisters: [], drops: [] };
  const waiters: { kind: keyof Seen; resolve: (v: unknown) => void }[] = [];
  const record = <K extends keyof Seen>(kind: K, event: Seen[K][number]): void => {
    (seen[kind] as unknown[]).push(event);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].kind === kind) {
        waiters[i].resolve(event);
        waiters.splice(i, 1);
      }
    }
  };
  const channel = new OverwatchChannel({
    keyring: options.keyring,
    agentTokens: options.tokens,
    pinStore: options.store ?? new MemoryStore(),
    regions: options.regions === undefined ? ['eu-west', 'us-east'] : options.regions,
    handlers: {
      onRegister: (e) => record('registers', e),
      onHeartbeat: (e) => record('heartbeats', e),
      onHealthUpdate: (e) => record('healthUpdates', e),
      onDeregister: (e) => record('deregisters', e),
      onDrop: (e) => record('drops', e),
    },
  });
  const receiver = await GossipReceiver.listen({
    channel,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    maxMessageBytes: options.maxMessageBytes,
    maxConnections: options.maxConnections,
    maxBufferedBytes: options.maxBufferedBytes,
    maxMessagesPerConnection: options.maxMessagesPerConnection,
  });
  t.after(() => receiver.close());
  return {
    channel,
    receiver,
    seen,
    next: (kind) => new Promise((resolve) => waiters.push({ kind, resolve })),
  };
}

/** Sends sealed bytes as one UDP datagram. */
export async function sendUdp(host: string, port: number, bytes: Uint8Array): Promise<void> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => socket.send(bytes, port, host, (err) => (err ? reject(err) : resolve())));
  } finally {
    socket.close();
  }
}

/**
 * Sends sealed messages over one TCP connection and returns the acks (opened
 * with `keyring`), one per message, or null where the connection closed
 * without one.
 */
export async function sendTcp(host: string, port: number, messages: readonly Uint8Array[], keyring: Keyring): Promise<(AckMessage | null)[]> {
  const socket = connect({ host, port });
  await once(socket, 'connect');
  const reader = new FrameReader(1 << 20);
  const acks: (AckMessage | null)[] = [];
  const done = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      const frames = reader.push(chunk);
      if (frames === 'too_large') throw new Error('ack frame too large');
      for (const frame of frames) {
        const opened = openMessage(keyring, frame);
        acks.push(opened.ok && opened.opened.message.type === 'ack' ? opened.opened.message : null);
        if (acks.length === messages.length) resolve();
      }
    });
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
  for (const m of messages) socket.write(encodeFrame(m));
  await done;
  socket.destroy();
  while (acks.length < messages.length) acks.push(null);
  return acks;
}

/** Sends one message over TCP and returns its ack (or null). */
export async function sendOne(overwatch: TestOverwatch, bytes: Uint8Array, keyring: Keyring): Promise<AckMessage | null> {
  const [ack] = await sendTcp('127.0.0.1', overwatch.receiver.port, [bytes], keyring);
  return ack;
}
