// Main thread (overwatch), per message. The overwatch's side of the agent
// channel, independent of the transport: takes sealed bytes (from UDP, TCP or
// later a NATS subscription), opens them, checks time, replay window, pin,
// signature and tokens, and only then hands the message to the registry's
// callbacks. A dropped message changes nothing (not even the replay window)
// and is counted by reason. Owns the pinned certificates (TOFU) and writes
// them through to a PinStore.
//
//   sealed bytes ─► open (envelope, msgpack, validate) ─► timestamp ─► revoked? ─► seq window check
//        register: region? ─► token proofs ─► certificate ─► signature ─► max agents ─► pin / rotation ─┐
//        others:   pinned? ─► signature (pinned key) ─► certificate still valid ─► services ─┤
//                                                  seq window accept ◄─┘ ─► handler ─► ack

import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import type { PinStore, StoredPin } from '../state/store.ts';
import { expectedRegion } from '../lib/region-names.ts';
import { DROP_REASON_NAMES, type DropReason } from './drop-reasons.ts';
import type { Keyring } from './envelope.ts';
import { parseAgentCertificate } from './identity.ts';
import type {
  AckMessage, AgentMessage, DeregisterMessage, HealthUpdateMessage, HeartbeatMessage, Message, RegisterMessage,
} from './messages.ts';
import { checkTimestamp, ReplayWindow } from './replay.ts';
import { checkTokenProof } from './token.ts';
import { openMessage, sealMessage, verifyBody } from './wire.ts';

/** A copy of `bytes` in a buffer of its own (not a slice of the message nor of Buffer's pool). */
function ownBytes(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return out;
}

/**
 * An epoch-milliseconds timestamp for a drop's detail. A message may carry
 * any safe integer, and past Date's range (8.64e15 ms) toISOString() throws.
 */
function describeTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms (beyond any date)` : date.toISOString();
}

/** How bytes reached the channel. */
export type Transport = 'udp' | 'tcp' | 'bus';

/** The agent message types the channel accepts (acks are refused as unexpected_type). */
export const AGENT_MESSAGE_TYPES = ['register', 'heartbeat', 'health_update', 'deregister'] as const;
export type AgentMessageType = (typeof AGENT_MESSAGE_TYPES)[number];

/** Where a message came from. */
export interface MessageSource {
  readonly transport: Transport;
  /** "address:port" of the sender as the transport saw it (for logs only, never trusted). */
  readonly remote: string;
}

/** What a handler receives with an accepted message. */
export interface ChannelEvent<M extends AgentMessage> {
  readonly message: M;
  /** The agent's pin after this message (for a register: the new or updated pin). */
  readonly pin: StoredPin;
  readonly source: MessageSource;
  /** This overwatch's clock when the message was accepted, epoch milliseconds. */
  readonly receivedAtMs: number;
  /**
   * The message is older (lower seq) than one already accepted from this
   * agent: it arrived reordered. Its backend states are older than what the
   * registry has; use it for liveness only.
   */
  readonly outOfOrder: boolean;
}

/** A register event: also says whether it was the agent's first contact or a certificate rotation. */
export interface RegisterEvent extends ChannelEvent<RegisterMessage> {
  readonly firstContact: boolean;
  readonly rotated: boolean;
}

/** A dropped message, for logs (rate-limit them: every drop is already counted). */
export interface DropEvent {
  readonly reason: DropReason;
  /** Which field or check, when known (never contains a token or key). */
  readonly detail: string | null;
  /** The claimed agent id once the message could be opened, else null. */
  readonly agentId: string | null;
  readonly source: MessageSource;
}

/**
 * The registry integration. Handlers run synchronously inside receive(); an
 * exception thrown by one propagates to the caller of receive() (the
 * receiver counts it as a handler error) after the message was accepted.
 */
export interface ChannelHandlers {
  onRegister?(event: RegisterEvent): void;
  onHeartbeat?(event: ChannelEvent<HeartbeatMessage>): void;
  onHealthUpdate?(event: ChannelEvent<HealthUpdateMessage>): void;
  onDeregister?(event: ChannelEvent<DeregisterMessage>): void;
  onDrop?(event: DropEvent): void;
  /** A pin or a replay mark could not be written to the store; it is in effect in memory, and written again at the agent's next registration (a pin) or message (its mark). */
  onStoreError?(error: Error, agentId: string): void;
}

/** Messages accepted by type and dropped by reason, since the channel was created. */
export interface ChannelCounters {
  readonly messages: Record<AgentMessageType, number>;
  readonly drops: Record<DropReason, number>;
}

export interface OverwatchChannelOptions {
  readonly keyring: Keyring;
  /** overwatch.agent_tokens: service name (lower-case, no trailing dot) → token. */
  readonly agentTokens: Readonly<Record<string, string>>;
  readonly pinStore: PinStore;
  /** Region names an agent may register in; null accepts any. */
  readonly regions: readonly string[] | null;
  /** overwatch.gossip.max_clock_skew: how far a message's timestamp may be from this clock, ms. Default 30 000. */
  readonly maxClockSkewMs?: number;
  /** overwatch.gossip.max_agents: most pins (revoked ones included); a new agent past it is dropped (agent_limit). Default: no limit. */
  readonly maxAgents?: number;
  readonly handlers?: ChannelHandlers;
  /** Clock, epoch milliseconds (tests). */
  readonly now?: () => number;
}

/**
 * What receive() made of one message; `ack` is what a TCP sender is
 * answered (null: no answer). `keyId` is the gossip key it came
 * sealed under (null when it could not be opened): its ack goes back under
 * the same key (sealAck), so an agent that already moved to a new key during
 * a key rotation reads the overwatch's acks.
 */
export type ReceiveResult =
  | { readonly ok: true; readonly type: AgentMessageType; readonly agentId: string; readonly ack: AckMessage; readonly keyId: number; readonly persisted: Promise<void> }
  | { readonly ok: false; readonly reason: DropReason; readonly detail: string | null; readonly agentId: string | null; readonly ack: AckMessage | null; readonly keyId: number | null };

const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000;
const RESOLVED = Promise.resolve();

type Verdict = { readonly reason: DropReason; readonly detail: string | null };

/**
 * Verifies agent messages and dispatches them to the registry's handlers.
 * Create one per overwatch; feed it with receive(). Pins are loaded from the
 * store at construction.
 */
export class OverwatchChannel {
  #keyring: Keyring;
  #tokens: ReadonlyMap<string, string>;
  #regions: ReadonlySet<string> | null;
  readonly #store: PinStore;
  readonly #handlers: ChannelHandlers;
  readonly #now: () => number;
  #maxSkewMs: number;
  #maxAgents: number;
  /**
   * Messages stamped before this are refused: for an agent with no stored
   * replay mark (first contact, or a lost state directory) the window starts
   * empty at a start, and this is what refuses a message recorded before it.
   */
  readonly #startedAtMs: number;
  /** performance.now() at #startedAtMs: the start read on this clock as it is now, after a step (NTP) since. */
  readonly #startedMonoMs: number;
  readonly #pins = new Map<string, StoredPin>();
  readonly #windows = new Map<string, ReplayWindow>();
  readonly #keys = new Map<string, KeyObject>();
  /** When a message of each agent was last accepted, epoch ms (from its stored replay mark after a start). */
  readonly #heardAtMs = new Map<string, number>();
  readonly #pending = new Set<Promise<void>>();
  readonly #counters: ChannelCounters;

  constructor(options: OverwatchChannelOptions) {
    this.#keyring = options.keyring;
    this.#tokens = new Map(Object.entries(options.agentTokens));
    this.#regions = options.regions === null ? null : new Set(options.regions);
    this.#store = options.pinStore;
    this.#handlers = options.handlers ?? {};
    this.#now = options.now ?? Date.now;
    this.#maxSkewMs = options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    this.#maxAgents = options.maxAgents ?? Number.POSITIVE_INFINITY;
    this.#startedAtMs = this.#now();
    this.#startedMonoMs = performance.now();
    for (const pin of this.#store.loadPins()) this.#pins.set(pin.agentId, pin);
    this.#loadReplayMarks();
    this.#counters = {
      messages: { register: 0, heartbeat: 0, health_update: 0, deregister: 0 },
      drops: Object.fromEntries(DROP_REASON_NAMES.map((r) => [r, 0])) as Record<DropReason, number>,
    };
  }

  /**
   * Opens, verifies and dispatches one sealed message. Never throws for any
   * input bytes (only a handler's own exception propagates). A drop leaves
   * pins, replay windows and the registry untouched. `sealed` is only read
   * during the call.
   */
  receive(sealed: Uint8Array, source: MessageSource): ReceiveResult {
    const opened = openMessage(this.#keyring, sealed);
    if (!opened.ok) return this.#drop(opened.reason, opened.detail, null, source, null);
    const { message, body, signature, previousSignature, keyId } = opened.opened;
    if (message.type === 'ack') return this.#drop('unexpected_type', 'an ack sent to an overwatch', message, source, keyId);
    const now = this.#now();
    // The start by this clock now: one started ahead and stepped back since (NTP after boot) would otherwise
    // refuse every agent as older than this process for as long as the step.
    // Floored: the wall clock counts whole ms and the monotonic one fractions, so an unfloored start could land
    // a fraction of a ms after the whole-ms stamp of a message sealed in the same ms as the start.
    const startedAtMs = Math.min(this.#startedAtMs, Math.floor(now - (performance.now() - this.#startedMonoMs)));
    const time = checkTimestamp(message.timestampMs, now, this.#maxSkewMs, startedAtMs);
    if (time !== 'ok') return this.#drop(time, `timestamp ${describeTime(message.timestampMs)}`, message, source, keyId);
    const pin = this.#pins.get(message.agentId);
    if (pin !== undefined && pin.revokedAtMs !== null) return this.#drop('revoked', pin.revokedReason, message, source, keyId);
    const window = this.#windows.get(message.agentId);
    const seq = window?.check(message.seq) ?? 'ok';
    if (seq !== 'ok') return this.#drop(seq, `seq ${message.seq}, highest accepted ${window?.top}`, message, source, keyId);

    if (message.type === 'register') {
      const checked = this.#checkRegister(message, body, signature as Buffer, previousSignature, pin, now);
      if ('reason' in checked) return this.#drop(checked.reason, checked.detail, message, source, keyId);
      const { outOfOrder, marked } = this.#acceptSeq(message.agentId, message.seq, window, now);
      this.#heardAtMs.set(message.agentId, now);
      this.#pins.set(message.agentId, checked.pin);
      if (pin !== undefined && pin.fingerprint !== checked.pin.fingerprint) this.#keys.delete(pin.fingerprint);
      const persisted = this.#persist(Promise.all([this.#store.putPin(checked.pin), marked]), message.agentId);
      this.#counters.messages.register++;
      this.#handlers.onRegister?.({
        message, pin: checked.pin, source, receivedAtMs: now, outOfOrder, firstContact: pin === undefined, rotated: checked.rotated,
      });
      return { ok: true, type: 'register', agentId: message.agentId, ack: this.#ack(message, 'ok', null), keyId, persisted };
    }

    if (pin === undefined) return this.#drop('unpinned', null, message, source, keyId);
    const verdict = this.#checkPinned(message, body, signature as Buffer, pin, now);
    if (verdict !== null) return this.#drop(verdict.reason, verdict.detail, message, source, keyId);
    const { outOfOrder, marked } = this.#acceptSeq(message.agentId, message.seq, window, now);
    this.#heardAtMs.set(message.agentId, now);
    this.#counters.messages[message.type]++;
    const event = { pin, source, receivedAtMs: now, outOfOrder };
    switch (message.type) {
      case 'heartbeat':
        this.#handlers.onHeartbeat?.({ ...event, message });
        break;
      case 'health_update':
        this.#handlers.onHealthUpdate?.({ ...event, message });
        break;
      case 'deregister':
        this.#handlers.onDeregister?.({ ...event, message });
        break;
    }
    const persisted = marked === null ? RESOLVED : this.#persist(marked, message.agentId);
    // Taken (the pin holds), but a reload removed the agent's region: its backends are refused. The ack says
    // so in its reason, with status ok: an older agent reads the reason only on refused and goes on as before;
    // a newer one tells its operator (it was never told: its messages are all acked ok).
    const notice = this.#regions !== null && !this.#regions.has(pin.region) ? 'unknown_region' : null;
    return { ok: true, type: message.type, agentId: message.agentId, ack: this.#ack(message, 'ok', notice), keyId, persisted };
  }

  /**
   * Seals an ack for a TCP or bus reply (unsigned: see messages.ts AckMessage)
   * under the key `keyId` its message came under (a ReceiveResult's keyId),
   * or the primary key when that key has left the keyring meanwhile.
   */
  sealAck(ack: AckMessage, keyId: number | null): Buffer {
    return sealMessage(this.#keyring, ack, null, null, keyId ?? undefined);
  }

  /** Counts a drop the transport decided (too_large, connection_limit) and reports it to onDrop. */
  countDrop(reason: DropReason, detail: string | null, source: MessageSource): void {
    this.#drop(reason, detail, null, source, null);
  }

  /** A snapshot of the counters (plain numbers; the metrics module turns them into prom-client series). */
  counters(): ChannelCounters {
    return { messages: { ...this.#counters.messages }, drops: { ...this.#counters.drops } };
  }

  /** Every pin, revoked ones included, in agent-id order. */
  pins(): StoredPin[] {
    return [...this.#pins.values()].sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
  }

  /** How many pins this overwatch holds, revoked ones included (what overwatch.gossip.max_agents bounds). */
  pinCount(): number {
    return this.#pins.size;
  }

  /** overwatch.gossip.max_agents as in effect (Infinity: no limit). */
  maxAgents(): number {
    return this.#maxAgents;
  }

  /**
   * When this overwatch last accepted a message of the agent, epoch ms: the
   * later of its stored replay mark (written with every newest message) and
   * its pin's latest registration; null for an unknown agent.
   */
  lastHeardMs(agentId: string): number | null {
    const pin = this.#pins.get(agentId);
    if (pin === undefined) return null;
    return Math.max(pin.registeredAtMs, this.#heardAtMs.get(agentId) ?? 0);
  }

  /**
   * Deletes, at most `limit` of them, the pins that are not revoked, whose
   * agent was last heard before `beforeMs`, and that `keep` does not claim
   * (the hub keeps agents it still expects to hear from). A revoked pin is
   * never deleted here: the revocation must hold. Resolves to the agent ids
   * deleted, once the store has them (a failed write is reported to
   * onStoreError; the deletion holds in memory and is tried again at the
   * next start).
   */
  async forgetQuiet(beforeMs: number, limit: number, keep: (agentId: string) => boolean): Promise<string[]> {
    const gone: string[] = [];
    for (const pin of this.#pins.values()) {
      if (gone.length >= limit) break;
      if (pin.revokedAtMs !== null || keep(pin.agentId)) continue;
      if (Math.max(pin.registeredAtMs, this.#heardAtMs.get(pin.agentId) ?? 0) >= beforeMs) continue;
      gone.push(pin.agentId);
    }
    await Promise.all(gone.map((agentId) => this.#persist(this.deletePin(agentId), agentId)));
    return gone;
  }

  /** The pin of one agent, or undefined. */
  pin(agentId: string): StoredPin | undefined {
    return this.#pins.get(agentId);
  }

  /**
   * Revokes an agent's pin: from the next message on, everything it sends is
   * dropped as revoked, registrations included, until the pin is deleted.
   * Resolves to the revoked pin (null for an unknown agent) once the store
   * has it; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails (the
   * revocation is in effect in memory even then).
   */
  async revoke(agentId: string, reason: string): Promise<StoredPin | null> {
    const pin = this.#pins.get(agentId);
    if (pin === undefined) return null;
    const revoked: StoredPin = { ...pin, revokedAtMs: this.#now(), revokedReason: reason };
    this.#pins.set(agentId, revoked);
    await this.#store.putPin(revoked);
    return revoked;
  }

  /**
   * Takes a revocation made on another overwatch (the operator-state bucket):
   * the agent's pin here is marked revoked with that reason and time, or, for
   * an agent this overwatch has not pinned, `revoked` is pinned as it is, so
   * its first message is refused too. Resolves once the store has it; rejects
   * with OPENGSLB_ERR_STATE_WRITE (the revocation holds in memory even then).
   */
  async adoptRevocation(revoked: StoredPin): Promise<StoredPin> {
    const pin = this.#pins.get(revoked.agentId);
    const next: StoredPin = pin === undefined ? revoked : { ...pin, revokedAtMs: revoked.revokedAtMs, revokedReason: revoked.revokedReason };
    this.#pins.set(revoked.agentId, next);
    await this.#store.putPin(next);
    return next;
  }

  /**
   * Deletes an agent's pin: its next heartbeat is dropped as unpinned, and it
   * may register again (with valid tokens) with any certificate. Resolves to
   * false for an unknown agent; rejects with OPENGSLB_ERR_STATE_WRITE when
   * the store fails (the deletion is in effect in memory even then).
   */
  async deletePin(agentId: string): Promise<boolean> {
    const pin = this.#pins.get(agentId);
    if (pin === undefined) return false;
    this.#pins.delete(agentId);
    // The replay window stays: without it a registration recorded before the
    // deletion, replayed within max_clock_skew, would pin the agent again.
    this.#keys.delete(pin.fingerprint);
    await this.#store.deletePin(agentId);
    return true;
  }

  /** Replaces the tokens (config reload); registrations from now on are checked against these. */
  setAgentTokens(tokens: Readonly<Record<string, string>>): void {
    this.#tokens = new Map(Object.entries(tokens));
  }

  /** Replaces the most agents pinned (config reload); pins held past a lowered limit stay. */
  setMaxAgents(maxAgents: number): void {
    this.#maxAgents = maxAgents;
  }

  /** Replaces how far a message's timestamp may be from this clock (config reload); the next message is judged by it. */
  setMaxClockSkew(maxClockSkewMs: number): void {
    this.#maxSkewMs = maxClockSkewMs;
  }

  /** Replaces the accepted regions (config reload); null accepts any. */
  setRegions(regions: readonly string[] | null): void {
    this.#regions = regions === null ? null : new Set(regions);
  }

  /** Replaces the keyring (config reload: key rotation). */
  setKeyring(keyring: Keyring): void {
    this.#keyring = keyring;
  }

  /** Resolves when every pin and replay-mark write started so far has finished (successfully or reported to onStoreError). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  #checkRegister(
    message: RegisterMessage,
    body: Buffer,
    signature: Buffer,
    previousSignature: Buffer | null,
    pin: StoredPin | undefined,
    now: number,
  ): { readonly pin: StoredPin; readonly rotated: boolean } | Verdict {
    if (this.#regions !== null && !this.#regions.has(message.region)) {
      return { reason: 'unknown_region', detail: `region ${JSON.stringify(message.region)} is not a region of this overwatch; ${expectedRegion(message.region, this.#regions)}` };
    }
    // Tokens first: they are cheap (one HMAC each), so without a token nobody gets us to parse certificates.
    const fingerprint = createHash('sha256').update(message.certificate).digest('hex');
    const services = Object.keys(message.tokenProofs).sort();
    if (services.length === 0) return { reason: 'token_missing', detail: 'a registration without any token proof' };
    for (const backend of message.backends) {
      if (!Object.hasOwn(message.tokenProofs, backend.service)) return { reason: 'token_missing', detail: `service ${backend.service}` };
    }
    for (const service of services) {
      const token = this.#tokens.get(service);
      if (token === undefined) return { reason: 'token_unknown_service', detail: `service ${service}` };
      if (!checkTokenProof(message.tokenProofs[service], token, message.agentId, service, fingerprint)) {
        return { reason: 'token_mismatch', detail: `service ${service}` };
      }
    }
    const cert = parseAgentCertificate(message.certificate, now);
    if (!cert.ok) return { reason: cert.reason, detail: cert.detail };
    if (cert.agentId !== message.agentId) {
      return { reason: 'certificate_invalid', detail: `the certificate is for agent ${JSON.stringify(cert.agentId)}, not ${JSON.stringify(message.agentId)}` };
    }
    if (!verifyBody(cert.publicKey, body, signature)) return { reason: 'bad_signature', detail: 'not signed by the presented certificate' };
    // Checked once the agent proved its tokens and its key, so agent_limit names an agent that would have been pinned.
    if (pin === undefined && this.#pins.size >= this.#maxAgents) {
      return { reason: 'agent_limit', detail: `${this.#pins.size} agents pinned, overwatch.gossip.max_agents is ${this.#maxAgents}` };
    }
    let rotated = false;
    if (pin !== undefined && pin.fingerprint !== fingerprint) {
      // A new certificate for a pinned agent is taken only from someone who still holds the pinned key.
      if (previousSignature === null || !verifyBody(this.#pinnedKey(pin), body, previousSignature)) {
        return { reason: 'certificate_mismatch', detail: `pinned ${pin.fingerprint.slice(0, 16)}…, presented ${fingerprint.slice(0, 16)}…` };
      }
      // An expired key approves nothing: a key of a host retired long ago (its files left on a disk, a backup)
      // must not hand the agent id to a new certificate. The agent rotates 30 days before expiry, so only one
      // away for longer lands here; an operator who knows the host takes it back by deleting the pin.
      if (now > pin.notAfterMs) {
        return {
          reason: 'certificate_mismatch',
          detail: `a rotation signed by the pinned certificate's key, which expired ${new Date(pin.notAfterMs).toISOString()}: an expired key cannot approve a new certificate; delete the pin (opengslb-cli agents delete ${message.agentId}) to take this one`,
        };
      }
      rotated = true;
    }
    this.#keys.set(fingerprint, cert.publicKey);
    return {
      rotated,
      pin: {
        agentId: message.agentId,
        fingerprint,
        // Its own memory: Buffer.from() would put it in the shared 8 KiB pool, and a
        // pin held for days would keep its pool slab (and the garbage around it) alive.
        certificate: ownBytes(message.certificate),
        region: message.region,
        services,
        firstSeenMs: pin?.firstSeenMs ?? now,
        registeredAtMs: now,
        notAfterMs: cert.notAfterMs,
        revokedAtMs: null,
        revokedReason: null,
        previousFingerprint: rotated ? (pin as StoredPin).fingerprint : (pin?.previousFingerprint ?? null),
      },
    };
  }

  #checkPinned(message: AgentMessage, body: Buffer, signature: Buffer, pin: StoredPin, now: number): Verdict | null {
    if (!verifyBody(this.#pinnedKey(pin), body, signature)) return { reason: 'bad_signature', detail: 'not signed by the pinned certificate' };
    if (now > pin.notAfterMs) return { reason: 'certificate_expired', detail: `the pinned certificate expired ${new Date(pin.notAfterMs).toISOString()}` };
    if (message.type === 'heartbeat' || message.type === 'health_update') {
      for (const backend of message.backends) {
        if (!pin.services.includes(backend.service)) return { reason: 'service_not_registered', detail: `service ${backend.service}` };
      }
    }
    return null;
  }

  /** The pinned certificate's public key, parsed once per fingerprint. */
  #pinnedKey(pin: StoredPin): KeyObject {
    let key = this.#keys.get(pin.fingerprint);
    if (key === undefined) {
      key = new X509Certificate(pin.certificate).publicKey;
      this.#keys.set(pin.fingerprint, key);
    }
    return key;
  }

  /**
   * Records an accepted sequence number: `outOfOrder` when it arrived after a
   * higher one (reordered); `marked`, the write of the agent's new highest
   * number to the store (null when it is not one), which its ack waits for,
   * so a message acked before a crash is refused after the restart.
   */
  #acceptSeq(agentId: string, seq: number, window: ReplayWindow | undefined, now: number): { readonly outOfOrder: boolean; readonly marked: Promise<void> | null } {
    let w = window;
    if (w === undefined) {
      w = new ReplayWindow();
      this.#windows.set(agentId, w);
    }
    const outOfOrder = seq < w.top;
    w.accept(seq);
    return { outOfOrder, marked: outOfOrder ? null : this.#store.putReplayMark(agentId, { seq, atMs: now }) };
  }

  /**
   * Starts each agent's replay window above its stored mark. A mark of an
   * agent with no pin left is needed only while a message it covers could
   * still pass the timestamp check (2 × max_clock_skew after it was taken):
   * older ones are forgotten, so deleted agents do not pile up.
   */
  #loadReplayMarks(): void {
    for (const [agentId, mark] of this.#store.loadReplayMarks()) {
      if (!this.#pins.has(agentId) && mark.atMs < this.#startedAtMs - 2 * this.#maxSkewMs) {
        this.#persist(this.#store.deleteReplayMark(agentId), agentId);
        continue;
      }
      this.#windows.set(agentId, ReplayWindow.after(mark.seq));
      this.#heardAtMs.set(agentId, mark.atMs);
    }
  }

  #persist(write: Promise<unknown>, agentId: string): Promise<void> {
    const done = write.then(
      () => undefined,
      (err: unknown) => this.#handlers.onStoreError?.(err as Error, agentId),
    ).finally(() => this.#pending.delete(done));
    this.#pending.add(done);
    return done;
  }

  #ack(message: AgentMessage, status: AckMessage['status'], reason: DropReason | null): AckMessage {
    return { type: 'ack', agentId: message.agentId, seq: message.seq, timestampMs: this.#now(), status, reason };
  }

  #drop(reason: DropReason, detail: string | null, message: Message | null, source: MessageSource, keyId: number | null): ReceiveResult {
    this.#counters.drops[reason]++;
    const agentId = message?.agentId ?? null;
    this.#handlers.onDrop?.({ reason, detail, agentId, source });
    // Only a sender that holds the key learns why (it could read the ack anyway); unopened bytes get no answer.
    const ack = message === null || message.type === 'ack' ? null : this.#ack(message, reason === 'unpinned' ? 'register' : 'refused', reason);
    return { ok: false, reason, detail, agentId, ack, keyId };
  }
}
