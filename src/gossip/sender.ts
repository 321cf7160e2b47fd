// Main thread (agent), per message. Sends the agent's messages to every
// overwatch in agent.gossip.overwatch_nodes. A message that fits one datagram
// goes over UDP (sealed once, the same bytes to every node); a larger one, and
// anything sent reliably, goes over TCP to each node in turn, waits for that
// node's ack and is retried with backoff until acked. An overwatch that is
// away never stops the agent: its messages wait (bounded) and it is caught up
// with the registration when it answers again.
//
//   send(msg) ──fits 1 200 B?──yes──► UDP to every node (no ack)
//                   └─no──► per-node queue ─► TCP frame ─► ack ok ──────► next
//   sendReliable(msg) ──────► per-node queue        ├─ ack register ─► registration first
//                                                   ├─ ack refused ──► dropped (registration: retried slowly)
//                                                   └─ error/timeout ─► node down, retry with backoff

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { connect, isIP, isIPv6, type LookupFunction, type Socket } from 'node:net';
import { backoffDelayMs, type BackoffPolicy } from '../lib/backoff.ts';
import type { Keyring } from './envelope.ts';
import { encodeFrame, FrameReader } from './framing.ts';
import type { AgentIdentity } from './identity.ts';
import type {
  AckMessage, AgentMessage, BackendReport, MessageHeader, OutgoingMessage, RegisterMessage,
} from './messages.ts';
import { tokenProof } from './token.ts';
import { openMessage, sealMessage } from './wire.ts';

/**
 * Largest sealed message sent over UDP: 1 200 bytes. IPv6 guarantees 1 280-byte
 * packets without fragmentation (RFC 8200 §5); minus 40 bytes of IPv6 header
 * and 8 of UDP leaves 1 232, and 1 200 keeps room for tunnel headers (QUIC
 * picks 1 200 for the same reason, RFC 9000 §14). Fragmented datagrams are
 * often dropped by firewalls and lost whole when one fragment is lost.
 */
export const DEFAULT_UDP_MAX_BYTES = 1200;
/** Messages waiting per overwatch; beyond it the oldest that is not the registration is dropped. */
export const MAX_QUEUED_PER_NODE = 64;

/** One overwatch's channel address (agent.gossip.overwatch_nodes entry). */
export interface OverwatchNode {
  /** IP literal or host name, without brackets. */
  readonly host: string;
  readonly port: number;
}

/** What the sender tells the agent about an overwatch. */
export type NodeEvent =
  | { readonly kind: 'up'; readonly node: OverwatchNode }
  /** Every failed TCP attempt: `failures` in a row so far (1 for the first of a down period). */
  | { readonly kind: 'down'; readonly node: OverwatchNode; readonly error: string; readonly retryInMs: number; readonly failures: number }
  | { readonly kind: 'refused'; readonly node: OverwatchNode; readonly type: AgentMessage['type']; readonly reason: string }
  | { readonly kind: 'register_requested'; readonly node: OverwatchNode }
  /**
   * On the NATS bus, while a certificate rotation is pending: an overwatch
   * refused a message as not signed by the certificate it pinned, so it still
   * holds the previous one (it was away when the rotation was registered); the
   * registration, signed by both keys, goes again.
   */
  | { readonly kind: 'previous_pin'; readonly node: OverwatchNode }
  /**
   * An overwatch's ok acks began or stopped carrying a reason: `reason` is
   * 'unknown_region' when it takes the agent's messages but serves no region
   * of its name (a reload removed it: its backends are not answered), null
   * when that ended.
   */
  | { readonly kind: 'notice'; readonly node: OverwatchNode; readonly reason: string | null };

/** One overwatch as the sender sees it. */
export interface NodeStatus {
  readonly node: OverwatchNode;
  /** unknown until the first TCP exchange; up after an ack; down after a failure, until the next ack. */
  readonly state: 'unknown' | 'up' | 'down';
  /** Consecutive failed TCP attempts. */
  readonly failures: number;
  /** Messages waiting for this node. */
  readonly queued: number;
  /** When this node last acked, epoch milliseconds, or null. */
  readonly lastAckMs: number | null;
  /**
   * This node acked the current registration (the one last given to
   * setRegistration). After a certificate rotation, forget the previous key
   * once every node says true.
   */
  readonly registered: boolean;
  readonly lastError: string | null;
  /** The reason this node's last ok ack carried ('unknown_region': its region is not served there), or null. */
  readonly notice: string | null;
}

/** Sender counters, plain numbers. */
export interface SenderCounters {
  readonly udpSent: number;
  readonly tcpSent: number;
  /** Publishes to the NATS bus (agent.bus; the direct sender leaves it 0). */
  readonly busSent: number;
  readonly acked: number;
  readonly refused: number;
  readonly failures: number;
  readonly queueDrops: number;
}

export interface SenderOptions {
  readonly nodes: readonly OverwatchNode[];
  /** Keys acks are opened with (the agent's gossip key). */
  readonly keyring: Keyring;
  /** Seals what the sender sends; share it with any other transport of the same agent. */
  readonly sealer: MessageSealer;
  readonly udpMaxBytes?: number;
  /** TCP connect timeout. Default 5 000 ms. */
  readonly connectTimeoutMs?: number;
  /** Time to wait for an ack after a TCP send. Default 5 000 ms. */
  readonly ackTimeoutMs?: number;
  /** An unused TCP connection is closed after this. Default 10 000 ms. */
  readonly idleTimeoutMs?: number;
  /** Retry delays for a node that failed. Default 500 ms doubling to 30 s. */
  readonly backoff?: BackoffPolicy;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly onNodeEvent?: (event: NodeEvent) => void;
  /**
   * Resolves an overwatch given by host name, for TCP and UDP alike
   * (node:dns lookup by default; tests make a name resolve to ::1 only).
   */
  readonly lookup?: LookupFunction;
  /**
   * Builds the registration as it is now (the same identity as the one last
   * set, the backends' current states). Each registration is built by it when
   * it goes out, so an overwatch that asks for one, or that answers again
   * after being away, is not told the states of when setRegistration() was
   * called. Without it the registration last set is sent as it was set.
   */
  readonly currentRegistration?: () => Omit<RegisterMessage, keyof MessageHeader>;
}

/** The parts of a registration the agent knows; buildRegistration() adds the token proofs. */
export interface RegistrationInput {
  readonly region: string;
  readonly version: string;
  /** Token per service; one agent.identity.service_token for every service is `Object.fromEntries(services.map(s => [s, token]))`. */
  readonly serviceTokens: Readonly<Record<string, string>>;
  readonly heartbeatIntervalMs: number;
  readonly backends: readonly BackendReport[];
}

/**
 * Builds a registration for `identity`: one token proof per service in
 * `serviceTokens` (token.ts), the certificate, the full backend list.
 */
export function buildRegistration(identity: AgentIdentity, input: RegistrationInput): Omit<RegisterMessage, keyof MessageHeader> {
  const tokenProofs: Record<string, Uint8Array> = {};
  for (const [service, token] of Object.entries(input.serviceTokens)) {
    tokenProofs[service] = tokenProof(token, identity.agentId, service, identity.fingerprint);
  }
  return {
    type: 'register',
    region: input.region,
    version: input.version,
    certificate: identity.certificate,
    tokenProofs,
    heartbeatIntervalMs: input.heartbeatIntervalMs,
    backends: input.backends,
  };
}

/**
 * Stamps outgoing messages with the agent id, the next sequence number and
 * the time, signs and seals them. One per agent, shared by every transport
 * the agent sends on (the direct sender and the NATS bus publisher), so all its
 * messages share one sequence.
 */
export class MessageSealer {
  readonly #keyring: Keyring;
  #identity: AgentIdentity;
  #seq: number;
  readonly #now: () => number;

  /** `firstSeq` defaults to Date.now() · 1024, so a restarted agent continues above its previous run without storing anything. */
  constructor(keyring: Keyring, identity: AgentIdentity, options: { readonly firstSeq?: number; readonly now?: () => number } = {}) {
    this.#keyring = keyring;
    this.#identity = identity;
    this.#now = options.now ?? Date.now;
    this.#seq = options.firstSeq ?? Date.now() * 1024;
  }

  /** The identity messages are signed with. */
  get identity(): AgentIdentity {
    return this.#identity;
  }

  /** Replaces the identity (after a rotation). */
  setIdentity(identity: AgentIdentity): void {
    this.#identity = identity;
  }

  /**
   * Takes the next sequence number for a message whose content is fixed now
   * but which is sealed later (it waits in a TCP queue): the overwatch orders
   * an agent's backend states by it, so it must say when the states were
   * taken, not when they went out.
   */
  reserve(): number {
    return ++this.#seq;
  }

  /**
   * Seals one message under the keyring's primary key, signed by the identity
   * (a registration also by the previous key during a rotation), stamped with
   * the time now and `seq` (one reserve() gave) or the next sequence number.
   * Returns the bytes and the sequence number they carry.
   */
  seal(message: OutgoingMessage, seq: number = ++this.#seq): { readonly bytes: Buffer; readonly seq: number } {
    const identity = this.#identity;
    const full = { ...message, agentId: identity.agentId, seq, timestampMs: this.#now() } as AgentMessage;
    const previous = full.type === 'register' ? (identity.previous?.privateKey ?? null) : null;
    return { bytes: sealMessage(this.#keyring, full, identity.privateKey, previous), seq };
  }
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000 };

interface Queued {
  readonly message: OutgoingMessage;
  /** Messages with the same key replace each other while waiting (the newest full state wins); null never replaces. */
  readonly key: string | null;
  /**
   * The sequence number taken when the message was made (MessageSealer.reserve):
   * every send and retry of it carries it, so a message that waited in the
   * queue is older, for the overwatch, than those made after it. Null for a
   * registration (built when it goes out) and a deregistration: numbered when
   * they go, and again at a retry.
   */
  readonly seq: number | null;
}

interface InFlight {
  readonly entry: Queued;
  readonly seq: number;
  /** The setRegistration() call a registration in flight belongs to; null for other messages. */
  readonly registration: number | null;
  readonly timer: NodeJS.Timeout;
}

const REGISTRATION_KEY = 'register';

/** One overwatch: its queue, its TCP connection and its retry state. */
class NodeLink {
  readonly node: OverwatchNode;
  state: NodeStatus['state'] = 'unknown';
  failures = 0;
  lastAckMs: number | null = null;
  lastError: string | null = null;
  registered = false;
  notice: string | null = null;
  queue: Queued[] = [];
  socket: Socket | null = null;
  inFlight: InFlight | null = null;
  retryTimer: NodeJS.Timeout | null = null;
  idleTimer: NodeJS.Timeout | null = null;
  /**
   * Where datagrams go when the node is a host name: the address its TCP
   * connection last reached (or, before the first, the name's first lookup
   * answer), with its family, so they leave on the socket of that family.
   */
  udpTarget: { readonly address: string; readonly family: 4 | 6 } | null = null;

  constructor(node: OverwatchNode) {
    this.node = node;
  }
}

/**
 * Sends agent messages to every overwatch. Create one per agent, set the
 * registration, then send heartbeats and updates; close() at the end.
 */
export class GossipSender {
  readonly #keyring: Keyring;
  readonly #sealer: MessageSealer;
  readonly #links: NodeLink[];
  readonly #udpMaxBytes: number;
  readonly #connectTimeoutMs: number;
  readonly #ackTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  readonly #backoff: BackoffPolicy;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #onNodeEvent: (event: NodeEvent) => void;
  readonly #lookup: LookupFunction | null;
  readonly #udp4: UdpSocket;
  readonly #udp6: UdpSocket;
  #registration: Omit<RegisterMessage, keyof MessageHeader> | null = null;
  /** Counts setRegistration() calls: an ack counts as registered only for a registration sent since the last one. */
  #registrationGeneration = 0;
  readonly #currentRegistration: (() => Omit<RegisterMessage, keyof MessageHeader>) | null;
  #closed = false;
  readonly #idleWaiters = new Set<(flushed: boolean) => void>();
  readonly #counts = { udpSent: 0, tcpSent: 0, busSent: 0, acked: 0, refused: 0, failures: 0, queueDrops: 0 };

  constructor(options: SenderOptions) {
    this.#keyring = options.keyring;
    this.#sealer = options.sealer;
    this.#links = options.nodes.map((n) => new NodeLink(n));
    this.#udpMaxBytes = options.udpMaxBytes ?? DEFAULT_UDP_MAX_BYTES;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 5000;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#onNodeEvent = options.onNodeEvent ?? (() => {});
    this.#currentRegistration = options.currentRegistration ?? null;
    this.#lookup = options.lookup ?? null;
    this.#udp4 = createSocket('udp4');
    this.#udp6 = createSocket('udp6');
    // Send errors (no route, ICMP unreachable) are the UDP path's normal losses; reliability is TCP's job.
    this.#udp4.on('error', () => {});
    this.#udp6.on('error', () => {});
  }

  /**
   * Sets the registration (built with buildRegistration) and sends it
   * reliably to every overwatch. It is remembered: an overwatch that asks for
   * it (no pin) or answers again after being down gets it first.
   */
  setRegistration(registration: Omit<RegisterMessage, keyof MessageHeader>): void {
    this.#registration = registration;
    this.#registrationGeneration++;
    for (const link of this.#links) {
      link.registered = false;
      this.#enqueue(link, { message: registration, key: REGISTRATION_KEY, seq: null }, true);
    }
  }


  /**
   * Sends a message to every overwatch: over UDP when sealed it fits
   * udpMaxBytes (no ack, no retry), else reliably over TCP. Returns the
   * transport used. Never throws for an unreachable overwatch.
   */
  send(message: OutgoingMessage): 'udp' | 'tcp' {
    if (this.#closed) return 'udp';
    const sealed = this.#sealer.seal(message);
    if (sealed.bytes.length > this.#udpMaxBytes) {
      // Each overwatch gets it sealed again when its turn comes, with this number: its states are of now.
      for (const link of this.#links) this.#enqueue(link, { message, key: null, seq: sealed.seq }, false);
      return 'tcp';
    }
    for (const link of this.#links) this.#sendUdp(link, sealed.bytes);
    return 'udp';
  }

  /**
   * Sends a message to every overwatch over TCP and retries each until it
   * acks. With a `key`, a newer message with the same key replaces one still
   * waiting (use 'state' for periodic full heartbeats).
   */
  sendReliable(message: OutgoingMessage, key: string | null = null): void {
    if (this.#closed) return;
    // A deregistration says "leaving now": numbered when it goes, so it is above the registration an
    // overwatch back from an absence gets first (numbered at its making, it was ignored as older).
    const seq = message.type === 'deregister' ? null : this.#sealer.reserve();
    for (const link of this.#links) this.#enqueue(link, { message, key, seq }, false);
  }

  /** What the sender knows about each overwatch, in overwatch_nodes order. */
  status(): NodeStatus[] {
    return this.#links.map((l) => ({
      node: l.node,
      state: l.state,
      failures: l.failures,
      queued: l.queue.length + (l.inFlight === null ? 0 : 1),
      lastAckMs: l.lastAckMs,
      lastError: l.lastError,
      registered: l.registered,
      notice: l.notice,
    }));
  }

  /** A snapshot of the counters. */
  counters(): SenderCounters {
    return { ...this.#counts };
  }

  /**
   * Resolves true once no reliable message is waiting for any overwatch, or
   * false after `timeoutMs` (graceful stop: send the deregistration, flush
   * with a deadline, close). An overwatch whose link waits out a backoff is
   * tried again at once: after a long absence that wait is up to 30 s, longer
   * than any stop deadline, and the overwatch may be back.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.#idle()) return true;
    for (const link of this.#links) {
      if (link.retryTimer === null) continue;
      clearTimeout(link.retryTimer);
      link.retryTimer = null;
      this.#pump(link);
    }
    return new Promise<boolean>((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.#idleWaiters.delete(onIdle);
        resolve(value);
      };
      const onIdle = (flushed: boolean): void => done(flushed);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idleWaiters.add(onIdle);
    });
  }

  /** Stops every timer and closes every socket; waiting messages are discarded (a pending flush() resolves false). Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of this.#links) {
      if (link.retryTimer !== null) clearTimeout(link.retryTimer);
      if (link.idleTimer !== null) clearTimeout(link.idleTimer);
      if (link.inFlight !== null) clearTimeout(link.inFlight.timer);
      link.inFlight = null;
      link.queue = [];
      link.socket?.destroy();
      link.socket = null;
    }
    await Promise.all([this.#udp4, this.#udp6].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const waiter of [...this.#idleWaiters]) waiter(false);
  }

  /**
   * One datagram to one overwatch. A host name is sent to the address the
   * TCP link reached (resolved once before that): the family of the name's
   * address picks the socket. Handing the name to a udp4 socket resolved it
   * for IPv4 only, and a name with only an IPv6 address lost every datagram
   * while TCP worked.
   */
  #sendUdp(link: NodeLink, bytes: Buffer): void {
    this.#counts.udpSent++;
    const host = link.node.host;
    const send = (target: { readonly address: string; readonly family: 4 | 6 }): void => {
      (target.family === 6 ? this.#udp6 : this.#udp4).send(bytes, link.node.port, target.address, () => {});
    };
    const target = isIP(host) !== 0 ? { address: host, family: isIPv6(host) ? 6 as const : 4 as const } : link.udpTarget;
    if (target !== null) {
      send(target);
      return;
    }
    const lookup = this.#lookup ?? (dnsLookup as unknown as LookupFunction);
    lookup(host, {}, (err, address, family) => {
      if (err !== null || this.#closed) return; // not resolved: lost, as a datagram may be
      const first = Array.isArray(address) ? address[0] : { address, family: family ?? 4 };
      if (first === undefined) return;
      link.udpTarget ??= { address: first.address, family: first.family === 6 ? 6 : 4 };
      send(link.udpTarget);
    });
  }

  #idle(): boolean {
    return this.#links.every((l) => l.queue.length === 0 && l.inFlight === null);
  }

  #enqueue(link: NodeLink, entry: Queued, first: boolean): void {
    if (entry.key !== null) link.queue = link.queue.filter((q) => q.key !== entry.key);
    if (first) link.queue.unshift(entry);
    else link.queue.push(entry);
    while (link.queue.length > MAX_QUEUED_PER_NODE) {
      const drop = link.queue.findIndex((q) => q.key !== REGISTRATION_KEY);
      link.queue.splice(drop < 0 ? 0 : drop, 1);
      this.#counts.queueDrops++;
    }
    this.#pump(link);
  }

  /** Sends the head of the queue if nothing is in flight and no retry is pending. */
  #pump(link: NodeLink): void {
    if (this.#closed || link.inFlight !== null || link.retryTimer !== null) return;
    const entry = link.queue.shift();
    if (entry === undefined) {
      this.#armIdle(link);
      if (this.#idle()) for (const waiter of [...this.#idleWaiters]) waiter(true);
      return;
    }
    if (link.idleTimer !== null) {
      clearTimeout(link.idleTimer);
      link.idleTimer = null;
    }
    const socket = link.socket ?? this.#connect(link);
    const isRegistration = entry.key === REGISTRATION_KEY;
    // A registration waits in the queue (behind a failure's backoff, an overwatch away): what it says is taken when it goes.
    const message = isRegistration ? (this.#currentRegistration?.() ?? this.#registration ?? entry.message) : entry.message;
    const { bytes, seq } = this.#sealer.seal(message, isRegistration || entry.seq === null ? undefined : entry.seq);
    const timer = setTimeout(() => this.#fail(link, `no ack within ${this.#ackTimeoutMs} ms`), this.#ackTimeoutMs);
    link.inFlight = { entry, seq, timer, registration: isRegistration ? this.#registrationGeneration : null };
    socket.write(encodeFrame(bytes));
    this.#counts.tcpSent++;
  }

  #connect(link: NodeLink): Socket {
    const socket = connect({
      host: link.node.host, port: link.node.port, noDelay: true, timeout: this.#connectTimeoutMs, ...(this.#lookup === null ? {} : { lookup: this.#lookup }),
    });
    link.socket = socket;
    // Acks are small; 64 KiB bounds what a confused peer can make us buffer.
    const reader = new FrameReader(65_536);
    /** Acks this connection carried: an overwatch that ends one after acking (its per-connection message limit) is not down. */
    let acked = 0;
    socket.on('timeout', () => {
      if (socket.connecting) socket.destroy(new Error(`connect timed out after ${this.#connectTimeoutMs} ms`));
    });
    socket.on('connect', () => {
      socket.setTimeout(0);
      // Datagrams follow the address TCP reached (a name may resolve to IPv4, IPv6 or both).
      if (isIP(link.node.host) === 0 && socket.remoteAddress !== undefined) {
        link.udpTarget = { address: socket.remoteAddress, family: socket.remoteFamily === 'IPv6' ? 6 : 4 };
      }
    });
    socket.on('data', (chunk: Buffer) => {
      const frames = reader.push(chunk);
      if (frames === 'too_large') {
        socket.destroy(new Error('an answer frame larger than 64 KiB'));
        return;
      }
      for (const frame of frames) if (this.#onAck(link, frame)) acked++;
    });
    socket.on('error', (err) => {
      if (link.socket === socket) this.#fail(link, err.message);
    });
    socket.on('close', () => {
      if (link.socket !== socket) return;
      if (acked > 0 && link.inFlight !== null) {
        // Closed without an error after acking on it: the overwatch's messages-per-connection
        // limit, reached while the next message was on its way. Resend it on a new connection
        // at once; the overwatch did not take it (it reads nothing past its limit).
        clearTimeout(link.inFlight.timer);
        link.queue.unshift(link.inFlight.entry);
        link.inFlight = null;
        link.socket = null;
        this.#pump(link);
        return;
      }
      this.#fail(link, 'connection closed by the overwatch');
    });
    return socket;
  }

  /** Takes an ack frame; returns whether it answered the message in flight. */
  #onAck(link: NodeLink, frame: Buffer): boolean {
    const opened = openMessage(this.#keyring, frame);
    const inFlight = link.inFlight;
    if (!opened.ok || opened.opened.message.type !== 'ack' || inFlight === null) return false;
    const ack = opened.opened.message as AckMessage;
    if (ack.seq !== inFlight.seq || ack.agentId !== this.#sealer.identity.agentId) return false;
    clearTimeout(inFlight.timer);
    link.inFlight = null;
    link.lastAckMs = this.#now();
    const previous = link.state;
    link.state = 'up';
    link.failures = 0;
    link.lastError = null;
    this.#counts.acked++;
    if (previous !== 'up') this.#onNodeEvent({ kind: 'up', node: link.node });
    // After the deregistration nothing registers again: the agent is leaving, and a registration
    // behind it (an overwatch back from a restart, or one that did not know the agent) put its
    // backends back into DNS after it stopped (and pinned it again after an operator deleted its pin).
    const leaving = inFlight.entry.message.type === 'deregister';
    // Back after being away (it may have restarted): catch it up with the registration, unless that is what it just took.
    if (previous === 'down' && !leaving && inFlight.entry.key !== REGISTRATION_KEY && this.#registration !== null) {
      this.#enqueue(link, { message: this.#registration, key: REGISTRATION_KEY, seq: null }, true);
    }
    if (ack.status === 'ok' && inFlight.registration === this.#registrationGeneration) link.registered = true;
    if (ack.status === 'ok' && ack.reason !== link.notice) {
      link.notice = ack.reason;
      this.#onNodeEvent({ kind: 'notice', node: link.node, reason: ack.reason });
    }
    if (ack.status === 'register') {
      link.registered = false;
      // To a deregistration: the overwatch does not know this agent, so there is nothing to take out.
      if (this.#registration !== null && !leaving) {
        this.#onNodeEvent({ kind: 'register_requested', node: link.node });
        this.#enqueue(link, { message: this.#registration, key: REGISTRATION_KEY, seq: null }, true);
      }
    } else if (ack.status === 'refused' && inFlight.registration === null && (ack.reason === 'replayed' || ack.reason === 'outside_window')) {
      // Its number was taken already (a retry whose first send got through, its ack lost) or is far below
      // what the overwatch has from this agent (it waited in the queue while newer messages went): what it
      // says is there or superseded. Nothing to report.
    } else if (ack.status === 'refused') {
      this.#counts.refused++;
      const type = inFlight.entry.message.type;
      this.#onNodeEvent({ kind: 'refused', node: link.node, type, reason: ack.reason ?? 'refused' });
      if (inFlight.entry.key === REGISTRATION_KEY) {
        // Refused registrations (a token the overwatch does not know yet) are retried at the slowest pace.
        link.queue.unshift(inFlight.entry);
        link.retryTimer = setTimeout(() => {
          link.retryTimer = null;
          this.#pump(link);
        }, this.#backoff.maxMs);
        return true;
      }
    }
    this.#pump(link);
    return true;
  }

  #fail(link: NodeLink, error: string): void {
    if (this.#closed) return;
    const socket = link.socket;
    link.socket = null;
    socket?.destroy();
    if (link.inFlight === null) {
      // An idle connection closed: nothing lost, the next message reconnects.
      return;
    }
    clearTimeout(link.inFlight.timer);
    link.queue.unshift(link.inFlight.entry);
    link.inFlight = null;
    this.#counts.failures++;
    const retryInMs = backoffDelayMs(link.failures, this.#backoff, this.#random);
    link.failures++;
    link.lastError = error;
    this.#onNodeEvent({ kind: 'down', node: link.node, error, retryInMs, failures: link.failures });
    link.state = 'down';
    if (link.retryTimer !== null) clearTimeout(link.retryTimer);
    link.retryTimer = setTimeout(() => {
      link.retryTimer = null;
      this.#pump(link);
    }, retryInMs);
  }

  #armIdle(link: NodeLink): void {
    if (link.socket === null || link.idleTimer !== null) return;
    link.idleTimer = setTimeout(() => {
      link.idleTimer = null;
      const socket = link.socket;
      link.socket = null;
      socket?.end();
    }, this.#idleTimeoutMs);
    link.idleTimer.unref();
  }
}
