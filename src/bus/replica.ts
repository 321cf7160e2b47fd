// Main thread (overwatch), cold path. With overwatch.bus: the operator state
// that should be the same on every overwatch (overrides, run-time geo
// mappings, agent revocations, DNSSEC keys) replicated through one JetStream
// key-value bucket. A change made on this overwatch is applied here first
// (state store, registry, exactly as without the bus), then put in the
// bucket, sealed under overwatch.bus.state_secret (sealed-entry.ts); every
// overwatch watches the bucket, opens and checks what the others put, and
// applies it to its own copy. A removal is a sealed tombstone, never a KV
// delete, so a bare delete or an entry that does not open changes nothing
// (it is counted and logged once, when it is put, by the overwatches
// watching then; a later start finds it in the bucket and only sums it up in
// one event). Entries open with state_secret or a previous one; at start,
// one that opened only with a previous one is put back sealed with
// state_secret. When NATS is away each overwatch serves its
// own copy; its puts wait (the newest per key) and go out when NATS is back,
// each only if the bucket's entry for its key is not newer (a conditional
// put on the revision compared with: a newer one is applied here instead).
//
//   local change ─► local apply ─► put(<kind>.<id>, seal{atMs, by, value})  ─┐  (NATS away: kept, put on reconnect unless the bucket's is newer)
//                                                                           ▼
//   every overwatch ◄── watch(>) ◄────────── JetStream bucket <prefix>_operator
//     └─ opens? (else unauthenticated) ─► over 60 s ahead of this clock? (then future) ─► older than held? (else older; the held one is put back)
//        ─► its own write? skip ─► onChange (applies what differs; no put back)

import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BusConfig } from '../config/types.ts';
import type { OverrideTarget } from '../registry/overrides.ts';
import { parseStoredDnssecKey, type BusPendingStore, type StoredDnssecKey, type StoredGeoMapping, type StoredOverride, type StoredPin } from '../state/store.ts';
import { BusLink, connectionOptions, type BusLinkEvent } from './nats.ts';
import { deriveStateKeys, openEntryWithAny, sealEntry, type EntryPayload } from './sealed-entry.ts';

/** The kinds of operator state the bucket holds (the first token of each key). */
export const OPERATOR_KINDS = ['override', 'geo_mapping', 'revocation', 'dnssec_key'] as const;
export type OperatorKind = (typeof OPERATOR_KINDS)[number];

/** Why an entry of the bucket changed nothing here. */
export const REJECTION_REASONS = ['unauthenticated', 'malformed', 'older', 'future', 'refused'] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

/** One entry of the bucket, by what it is about. */
export type OperatorEntryId =
  | { readonly kind: 'override'; readonly target: OverrideTarget }
  | { readonly kind: 'geo_mapping'; readonly cidr: string }
  | { readonly kind: 'revocation'; readonly agentId: string }
  | { readonly kind: 'dnssec_key'; readonly zone: string; readonly keyTag: number };

/** An entry with its value: what is set, or null once removed. */
export type OperatorChange =
  | { readonly kind: 'override'; readonly target: OverrideTarget; readonly value: StoredOverride | null }
  | { readonly kind: 'geo_mapping'; readonly cidr: string; readonly value: StoredGeoMapping | null }
  | { readonly kind: 'revocation'; readonly agentId: string; readonly value: StoredPin | null }
  | { readonly kind: 'dnssec_key'; readonly zone: string; readonly keyTag: number; readonly value: StoredDnssecKey | null };

/** What applying a change did: changed this overwatch's state, found it holds that already, or refused it (with why). */
export type ApplyResult = 'applied' | 'unchanged' | { readonly refused: string };

/** The bucket's name for a subject prefix: bucket names allow letters, digits, "_" and "-". */
export function bucketName(prefix: string): string {
  return `${prefix.replace(/\./g, '_')}_operator`;
}

/** Free text as one KV key token (KV keys allow "-", "_", "=", "." and alphanumerics; "." separates tokens). */
function tokenOf(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

function textOf(token: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return null;
  return Buffer.from(token, 'base64url').toString('utf8');
}

/**
 * The bucket key of an entry (the only place that builds one):
 * override.<target JSON>, geo_mapping.<cidr>, revocation.<agent id>,
 * dnssec_key.<zone>.<key tag>, each text token base64url.
 */
export function operatorKvKey(id: OperatorEntryId): string {
  switch (id.kind) {
    case 'override': {
      const t = id.target;
      const json = t.scope === 'domain' ? { scope: 'domain', service: t.service, address: t.address }
        : t.scope === 'server' ? { scope: 'server', address: t.address } : { scope: 'region', region: t.region };
      return `override.${tokenOf(JSON.stringify(json))}`;
    }
    case 'geo_mapping':
      return `geo_mapping.${tokenOf(id.cidr)}`;
    case 'revocation':
      return `revocation.${tokenOf(id.agentId)}`;
    case 'dnssec_key':
      return `dnssec_key.${tokenOf(id.zone)}.${id.keyTag}`;
  }
}

/** What a bucket key is about, or null for a key this version does not know (never applied). */
export function parseOperatorKvKey(key: string): OperatorEntryId | null {
  const parts = key.split('.');
  const text = parts.length >= 2 ? textOf(parts[1]) : null;
  if (text === null) return null;
  if (parts[0] === 'override' && parts.length === 2) {
    try {
      const t = JSON.parse(text) as Record<string, unknown>;
      if (t.scope === 'domain' && typeof t.service === 'string' && typeof t.address === 'string') return { kind: 'override', target: { scope: 'domain', service: t.service, address: t.address } };
      if (t.scope === 'server' && typeof t.address === 'string') return { kind: 'override', target: { scope: 'server', address: t.address } };
      if (t.scope === 'region' && typeof t.region === 'string') return { kind: 'override', target: { scope: 'region', region: t.region } };
    } catch {
      // not ours
    }
    return null;
  }
  if (parts[0] === 'geo_mapping' && parts.length === 2) return { kind: 'geo_mapping', cidr: text };
  if (parts[0] === 'revocation' && parts.length === 2) return { kind: 'revocation', agentId: text };
  if (parts[0] === 'dnssec_key' && parts.length === 3 && /^\d{1,5}$/.test(parts[2]) && Number(parts[2]) <= 65535) return { kind: 'dnssec_key', zone: text, keyTag: Number(parts[2]) };
  return null;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** An override value, checked field by field and against its key's target; null when it is not one. */
function parseOverride(v: Record<string, unknown>, target: OverrideTarget): StoredOverride | null {
  if (typeof v.healthy !== 'boolean' || !isString(v.reason) || !isString(v.source) || !isString(v.service) || !isString(v.address)) return null;
  if (!isTime(v.createdAtMs) || !(v.expiresAtMs === null || v.expiresAtMs === undefined || isTime(v.expiresAtMs))) return null;
  const scope = v.scope ?? 'domain';
  if (scope !== target.scope) return null;
  if (target.scope === 'region' ? v.region !== target.region : v.address !== target.address || (target.scope === 'domain' && v.service !== target.service)) return null;
  return v as unknown as StoredOverride;
}

/** A geo mapping value for network `cidr`; null when it is not one. */
function parseGeoMapping(v: Record<string, unknown>, cidr: string): StoredGeoMapping | null {
  if (v.cidr !== cidr || !isString(v.region) || !(v.comment === null || isString(v.comment)) || !isString(v.source) || !isTime(v.createdAtMs)) return null;
  return { cidr, region: v.region, comment: v.comment, source: v.source, createdAtMs: v.createdAtMs };
}

/** A revoked pin (certificate base64) of `agentId`; null when it is not one, or its certificate is not the one its fingerprint names. */
function parseRevokedPin(v: Record<string, unknown>, agentId: string): StoredPin | null {
  if (v.agentId !== agentId || !isString(v.fingerprint) || !isString(v.certificate) || !isString(v.region) || !Array.isArray(v.services) || !v.services.every(isString)) return null;
  if (!isTime(v.firstSeenMs) || !isTime(v.registeredAtMs) || !isTime(v.notAfterMs) || !isTime(v.revokedAtMs) || !isString(v.revokedReason)) return null;
  if (!(v.previousFingerprint === null || isString(v.previousFingerprint))) return null;
  const certificate = Buffer.from(v.certificate, 'base64');
  if (createHash('sha256').update(certificate).digest('hex') !== v.fingerprint) return null;
  return {
    agentId, fingerprint: v.fingerprint, certificate, region: v.region, services: v.services, firstSeenMs: v.firstSeenMs, registeredAtMs: v.registeredAtMs,
    notAfterMs: v.notAfterMs, revokedAtMs: v.revokedAtMs, revokedReason: v.revokedReason, previousFingerprint: v.previousFingerprint,
  };
}

/** The value of `id` from an opened payload, or undefined when it is not one of its kind (malformed). */
function changeOf(id: OperatorEntryId, value: unknown): OperatorChange | undefined {
  if (value === null) return { ...id, value: null } as OperatorChange;
  if (typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  switch (id.kind) {
    case 'override': {
      const o = parseOverride(v, id.target);
      return o === null ? undefined : { ...id, value: o };
    }
    case 'geo_mapping': {
      const m = parseGeoMapping(v, id.cidr);
      return m === null ? undefined : { ...id, value: m };
    }
    case 'revocation': {
      const p = parseRevokedPin(v, id.agentId);
      return p === null ? undefined : { ...id, value: p };
    }
    case 'dnssec_key':
      try {
        return { ...id, value: parseStoredDnssecKey([id.zone, id.keyTag], JSON.stringify(v), 'the operator-state bucket') };
      } catch {
        return undefined;
      }
  }
}

/** The JSON a value is put as (a pin's certificate as base64). */
function wireValue(change: OperatorChange): unknown {
  if (change.kind === 'revocation' && change.value !== null) return { ...change.value, certificate: Buffer.from(change.value.certificate).toString('base64') };
  return change.value;
}

type PerKind = Record<OperatorKind, number>;
const perKind = (): PerKind => Object.fromEntries(OPERATOR_KINDS.map((k) => [k, 0])) as PerKind;

/** The replica's counters since start (the metrics read them). */
export interface ReplicaCounters {
  /** Entries put in the bucket, by kind. */
  readonly puts: Readonly<PerKind>;
  /** Puts that failed (NATS away or refusing); each is tried again once NATS is back. */
  readonly putFailures: Readonly<PerKind>;
  /** Waiting entries not put because the bucket held a newer entry for their key (the newer one is applied here instead). */
  readonly superseded: Readonly<PerKind>;
  /** Others' entries that changed this overwatch's state, by kind. */
  readonly applies: Readonly<PerKind>;
  /** Entries that changed nothing, by kind ("unknown" for a key no kind builds) and reason. */
  readonly rejections: Readonly<Record<OperatorKind | 'unknown', Readonly<Record<RejectionReason, number>>>>;
  /** Puts waiting for NATS. */
  readonly pending: number;
  readonly connected: boolean;
  /** Connections made again after a loss. */
  readonly reconnects: number;
}

/** What the replica reports: link changes, and an entry that was refused or could not be put. */
export type ReplicaEvent =
  | BusLinkEvent
  | { readonly kind: 'rejected'; readonly entry: OperatorKind | 'unknown'; readonly key: string; readonly reason: RejectionReason; readonly detail: string }
  | { readonly kind: 'put_failed'; readonly entry: OperatorKind; readonly key: string; readonly error: string }
  | { readonly kind: 'caught_up'; readonly puts: number }
  | { readonly kind: 'seeded'; readonly puts: number }
  | { readonly kind: 'bucket_recreated'; readonly bucket: string; readonly entries: number }
  /**
   * Once this process's first watch has gone through the entries the bucket
   * held when it started: those it refused (not counted in the rejections,
   * and not logged one by one: the overwatches watching when each was put
   * did that), by reason, with up to START_EXAMPLES of their keys.
   */
  | { readonly kind: 'refused_at_start'; readonly total: number; readonly reasons: Readonly<Partial<Record<RejectionReason, number>>>; readonly examples: readonly { readonly key: string; readonly reason: RejectionReason }[] }
  /**
   * Entries that opened only with one of previous_state_secrets and were put
   * back sealed with state_secret (at start, and entries left waiting by an
   * earlier run); `leftFuture` of those found at start were refused as
   * 'future' instead and left as they are, sealed with the previous secret
   * (sealed again they would become valid once their time came; left, they
   * stop opening once that secret is dropped).
   */
  | { readonly kind: 'resealed'; readonly entries: number; readonly leftFuture: number }
  /**
   * A change of this overwatch's waiting for NATS, stamped more than
   * MAX_CLOCK_SKEW_MS ahead of this clock when it was finally put (made
   * while this clock was ahead, since stepped back): put stamped with the
   * time of the put instead, or every other overwatch would refuse it.
   */
  | { readonly kind: 'restamped'; readonly entry: OperatorKind; readonly key: string; readonly fromMs: number; readonly toMs: number }
  /**
   * A change of this overwatch's that waited for NATS (perhaps in a state
   * directory restored from a backup or copied to seed this node) is older
   * than the bucket's entry for its key, written meanwhile by another
   * overwatch: not put (it would replace the newer one for every overwatch
   * that reads the bucket afresh), dropped; the watch applies the bucket's
   * entry here.
   */
  | { readonly kind: 'superseded'; readonly entry: OperatorKind; readonly key: string; readonly atMs: number; readonly bucketAtMs: number }
  | { readonly kind: 'replica_error'; readonly error: string };

export interface OperatorReplicaOptions {
  readonly bus: BusConfig;
  readonly name: string;
  /** Applies another overwatch's change to this one's state; never called for this process's own writes. Called one at a time, in bucket order. */
  readonly onChange: (change: OperatorChange) => Promise<ApplyResult>;
  readonly onEvent?: (event: ReplicaEvent) => void;
  readonly now?: () => number;
  /**
   * What this overwatch holds from before the bus (its state store): read
   * once, when the bucket first opens, and each entry whose key the bucket
   * has no entry for is put, so turning the bus on over a running
   * deployment loses none of it. A key the bucket holds already keeps the
   * bucket's entry (a removal included), which the watch then applies here.
   */
  readonly seed?: () => readonly OperatorChange[];
  /**
   * Where the entries waiting for NATS persist (the state store): loaded at
   * construction and put once NATS is back, so a restart meanwhile loses
   * none; without it they live in memory only.
   */
  readonly pendingStore?: BusPendingStore;
}

/** The newest change this overwatch knows for one bucket key. */
interface Held {
  readonly atMs: number;
  /** The writer's id (EntryPayload.by): it breaks a tie on atMs the same way on every overwatch. */
  readonly by: string;
  /** The value's JSON, as sealed. */
  readonly value: string;
}

/**
 * Whether an entry written at `atMs` by `by` comes before the held one: the
 * earlier time, and at the same millisecond the smaller writer id (two
 * overwatches writing one key at the same millisecond, as two writes after
 * one from a clock ahead of both do, would otherwise each take the other's).
 */
function before(atMs: number, by: string, held: Pick<Held, 'atMs' | 'by'>): boolean {
  return atMs < held.atMs || (atMs === held.atMs && by < held.by);
}

/**
 * How far ahead of this overwatch's clock an entry may be stamped: one
 * stamped later is refused ('future'), or an overwatch whose clock ran ahead
 * (a year, say) would win every key it wrote forever, since the newer write
 * wins. Wide enough for clocks kept by NTP, and for a change written right
 * after one from a clock a little ahead (held + 1 ms).
 */
export const MAX_CLOCK_SKEW_MS = 60_000;

/** Keys of entries refused at start named in the refused_at_start event. */
const START_EXAMPLES = 5;

/**
 * When the watch hands over an entry: 'live', put while this process
 * watched (or while its watch was being made again); 'start', in the bucket
 * already when this process first watched it; 'again', handled by this
 * process before (a watch made again hands over the bucket's entries anew).
 */
type Arrival = 'live' | 'start' | 'again';

/** Wait before putting the waiting entries again when NATS was up but refused them (JetStream still starting). */
const RETRY_MS = 1000;

/**
 * How often a connected overwatch checks that the bucket is still the one it
 * watches: a bucket deleted and made again while it stayed connected (`nats
 * kv rm`, then another overwatch's put) leaves its watch waiting on the gone
 * stream without an error. One JetStream request per check.
 */
const BUCKET_CHECK_MS = 5000;

/** An entry waiting to be put: its kind, its sealed bytes (always with state_secret) and the time and writer they carry. */
interface Pending {
  readonly kind: OperatorKind;
  readonly bytes: Buffer;
  readonly atMs: number;
  readonly by: string;
}

/**
 * Tries of one waiting entry's conditional put that find the bucket's entry
 * changed since it was read (another overwatch put the key in between); then
 * the put fails and is tried again like one with NATS away.
 */
const PUT_RACES = 5;

/** Whether a put was refused because the key's last revision is not the one it named (JetStream's "wrong last sequence"). */
function isRevisionConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 10071 || code === 10164;
}

/** What became of a waiting entry: put; in the bucket already (the same write); or not put, the bucket's entry (stamped bucketAtMs) being newer. */
type PutOutcome = { readonly result: 'put' } | { readonly result: 'present' } | { readonly result: 'superseded'; readonly bucketAtMs: number };

/** The overwatch's link to the operator-state bucket. */
export class OperatorReplica {
  readonly #link: BusLink;
  readonly #bucket: string;
  /** deriveStateKeys: [0] seals and opens (state_secret), the others only open (previous_state_secrets). */
  readonly #keys: readonly Buffer[];
  /** The bucket, once open; replaced when NATS comes back without it (#recheckBucket). */
  #kv: Promise<KV>;
  /** When the open bucket's stream was created: another time means it was made again (storage lost), and is empty. */
  #bucketCreated = '';
  #rechecking: Promise<void> | null = null;
  readonly #onEvent: (event: ReplicaEvent) => void;
  readonly #onChange: OperatorReplicaOptions['onChange'];
  readonly #now: () => number;
  readonly #seed: () => readonly OperatorChange[];
  readonly #pendingStore: BusPendingStore | null;
  /** This process's writer id: its own entries coming back through the watch are skipped. */
  readonly #self = randomBytes(8).toString('hex');
  /**
   * The newest change applied or written here, per bucket key (its atMs,
   * writer and value JSON): an older entry with another value is refused (a
   * replayed entry, or a write a newer one replaced) and the held one is put
   * back; DNSSEC keys are exempt (their merge only moves forward, so an old
   * entry cannot undo anything).
   */
  readonly #held = new Map<string, Held>();
  /** Sealed entries not put yet (NATS away), the newest per key, with their kind. */
  readonly #pending = new Map<string, Pending>();
  readonly #counts = { puts: perKind(), putFailures: perKind(), superseded: perKind(), applies: perKind(), reconnects: 0 };
  readonly #rejections = Object.fromEntries([...OPERATOR_KINDS, 'unknown'].map((k) => [k, Object.fromEntries(REJECTION_REASONS.map((r) => [r, 0]))])) as Record<OperatorKind | 'unknown', Record<RejectionReason, number>>;
  #flushing: Promise<void> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #checkTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #stopWatch: (() => void) | null = null;
  /** The bucket's last revision when this process first watched it: entries up to it arrive 'start'; -1 before that watch, 0 once the bucket was made again. */
  #startRevision = -1;
  /** The highest revision the watch handed over in this bucket: entries up to it arrive 'again'. */
  #seenRevision = 0;
  /** Whether the first watch is through the entries of the start (refused_at_start and resealed were reported, when any). */
  #startReported = false;
  readonly #startRefused = { reasons: {} as Partial<Record<RejectionReason, number>>, total: 0, examples: [] as { key: string; reason: RejectionReason }[] };
  #resealed = 0;
  /** Entries found at start that opened only with a previous secret but were refused as 'future': left as they are, not sealed again. */
  #leftFuture = 0;

  /** Throws when bus.stateSecret is null (the config requires it with the bus). */
  constructor(options: OperatorReplicaOptions) {
    if (options.bus.stateSecret === null) throw new Error('overwatch.bus.state_secret is not set');
    this.#bucket = bucketName(options.bus.subjectPrefix);
    this.#keys = deriveStateKeys(options.bus.stateSecret, options.bus.previousStateSecrets);
    this.#onEvent = options.onEvent ?? (() => {});
    this.#onChange = options.onChange;
    this.#now = options.now ?? Date.now;
    this.#seed = options.seed ?? (() => []);
    this.#pendingStore = options.pendingStore ?? null;
    this.#loadPending();
    this.#link = new BusLink(connectionOptions(options.bus, 'overwatch.bus', `${options.name} (operator state)`), (e) => {
      this.#onEvent(e);
      if (e.kind === 'connected' && !e.first) {
        this.#counts.reconnects++;
        this.#flush();
        this.#recheckBucket();
      }
    });
    this.#kv = this.#link.ready.then((nc) => this.#openBucket(nc));
    // Never rejects: #openBucket retries until close(), #seedAbsent never throws, and the watch retries too.
    void this.#kv.then(async (kv) => {
      if (this.#closed) return;
      this.#checkTimer = setInterval(() => this.#recheckBucket(), BUCKET_CHECK_MS);
      this.#checkTimer.unref();
      await this.#seedAbsent(kv);
      await this.#watch();
    }, () => {});
  }

  /**
   * Takes back the entries a previous run left waiting (pendingStore): each
   * waits again, and what it holds is the newest this overwatch knows for
   * its key (an older entry in the bucket is then refused, not applied). One
   * sealed with a previous secret is sealed again with state_secret; one
   * that opens with none of them (state_secret changed without keeping the
   * old one in previous_state_secrets) or names no key is dropped.
   */
  #loadPending(): void {
    const store = this.#pendingStore;
    if (store === null) return;
    let resealed = 0;
    for (const { key, sealed } of store.loadBusPending()) {
      const id = parseOperatorKvKey(key);
      const opened = openEntryWithAny(this.#keys, this.#bucket, key, sealed);
      if (id === null || !opened.ok) {
        this.#onEvent({ kind: 'replica_error', error: `entry ${key} left waiting by an earlier run does not open with overwatch.bus.state_secret or any of previous_state_secrets; dropped` });
        this.#unpersist(key);
        continue;
      }
      this.#held.set(key, { atMs: opened.payload.atMs, by: opened.payload.by, value: JSON.stringify(opened.payload.value) });
      let bytes: Buffer = Buffer.from(sealed);
      if (opened.keyIndex > 0) {
        bytes = sealEntry(this.#keys[0], this.#bucket, key, opened.payload);
        this.#persist(key, bytes);
        resealed++;
      }
      this.#pending.set(key, { kind: id.kind, bytes, atMs: opened.payload.atMs, by: opened.payload.by });
    }
    if (resealed > 0) this.#onEvent({ kind: 'resealed', entries: resealed, leftFuture: 0 });
  }

  /** Keeps a waiting entry in the pending store (no-op without one); a failed write is reported, the entry still waits in memory. */
  #persist(key: string, bytes: Buffer): void {
    this.#pendingStore?.putBusPending({ key, sealed: bytes }).catch((err: unknown) => {
      this.#onEvent({ kind: 'replica_error', error: `entry ${key} waiting for NATS not kept in the state store (a restart before NATS returns would lose it): ${err instanceof Error ? err.message : String(err)}` });
    });
  }

  #unpersist(key: string): void {
    this.#pendingStore?.deleteBusPending(key).catch((err: unknown) => {
      this.#onEvent({ kind: 'replica_error', error: `entry ${key} put in the bucket but still kept as waiting (put again after a restart, which changes nothing): ${err instanceof Error ? err.message : String(err)}` });
    });
  }

  /** Puts each seed entry whose key the bucket has no entry for (see OperatorReplicaOptions.seed). Never throws. */
  async #seedAbsent(kv: KV): Promise<void> {
    const seeds = this.#seed();
    if (seeds.length === 0) return;
    const present = new Set<string>();
    try {
      for await (const k of await kv.keys('>')) present.add(k);
    } catch (err) {
      this.#onEvent({ kind: 'replica_error', error: `bucket ${this.#bucket}: its keys could not be listed (${err instanceof Error ? err.message : String(err)}); state held from before the bus is not put` });
      return;
    }
    let put = 0;
    for (const change of seeds) {
      const kvKey = operatorKvKey(change);
      // A change made here since the bucket opened is in #held already, and newer.
      if (present.has(kvKey) || this.#held.has(kvKey)) continue;
      this.put(change);
      put++;
    }
    if (put > 0) this.#onEvent({ kind: 'seeded', puts: put });
  }

  /**
   * Opens (or creates) the bucket and notes when its stream was created,
   * trying again every RETRY_MS while JetStream refuses (still starting, or
   * not enabled: logged once). Rejects only after close().
   */
  async #openBucket(nc: NatsConnection): Promise<KV> {
    let reported = false;
    for (;;) {
      try {
        const kv = await new Kvm(nc).create(this.#bucket, { history: 1 });
        const created = (await kv.status()).streamInfo.created;
        if (this.#bucketCreated === '') this.#bucketCreated = created;
        else if (created !== this.#bucketCreated) await this.#refill(kv, created);
        return kv;
      } catch (err) {
        if (this.#closed) throw err;
        if (!reported) this.#onEvent({ kind: 'replica_error', error: `bucket ${this.#bucket} cannot be opened (is JetStream on, nats-server -js?): ${err instanceof Error ? err.message : String(err)}; trying again every ${RETRY_MS} ms` });
        reported = true;
        await delay(RETRY_MS, undefined, { ref: false });
      }
    }
  }

  /**
   * After a reconnect, a put or watch that failed while NATS is up, and every
   * BUCKET_CHECK_MS: opens the bucket again, which creates it when the
   * nats-server came back without its JetStream storage (a new node, a lost
   * disk) or it was deleted; #openBucket then refills it. One at a time;
   * never throws.
   */
  #recheckBucket(): void {
    const nc = this.#link.connection;
    if (this.#rechecking !== null || this.#closed || nc === null) return;
    this.#rechecking = this.#openBucket(nc).then(() => {}, () => {}).finally(() => {
      this.#rechecking = null;
    });
  }

  /**
   * The bucket was made again, empty (created at `created`, not when this
   * overwatch first opened it): every change this overwatch holds goes back
   * in, unchanged (same time and writer; the others' copies are equal, so
   * nothing goes round), then what it held from before the bus; the watch
   * starts over on the new bucket and puts use it.
   */
  async #refill(kv: KV, created: string): Promise<void> {
    this.#bucketCreated = created;
    this.#kv = Promise.resolve(kv);
    // A new bucket numbers its entries from 1 again, and every one is news: put while this process watched,
    // so 'live' (counted and logged when refused, never sealed again), not 'start' as the old bucket's first
    // revisions were; the start's report ends here if the first pass had not.
    this.#seenRevision = 0;
    this.#startRevision = 0;
    this.#reportStart();
    this.#onEvent({ kind: 'bucket_recreated', bucket: this.#bucket, entries: this.#held.size });
    for (const [key, held] of this.#held) {
      const id = parseOperatorKvKey(key);
      if (id !== null && !this.#pending.has(key)) this.#putHeld(key, id.kind, held);
    }
    await this.#seedAbsent(kv);
    this.#stopWatch?.();
  }

  /** Puts what waits, then applies every entry of the bucket and every later change; starts the watch again (on the bucket open then) should it end before close(). */
  async #watch(): Promise<void> {
    this.#flush();
    while (!this.#closed) {
      try {
        const watched = this.#kv;
        const kv = await watched;
        if (this.#startRevision < 0) {
          // The watch's own isUpdate cannot tell: it marks the last entry the bucket held as an update.
          this.#startRevision = (await kv.status()).streamInfo.state.last_seq;
          if (this.#startRevision === 0) this.#reportStart();
        }
        // The client's ordered consumer picks the watch up again after a reconnect.
        const watch = await kv.watch({ key: '>' });
        this.#stopWatch = () => watch.stop();
        for await (const e of watch) {
          if (this.#closed) return;
          // The bucket was made again (#refill): what the old watch still hands over numbers the old bucket's entries.
          if (this.#kv !== watched) break;
          const arrival: Arrival = e.revision <= this.#seenRevision ? 'again' : e.revision <= this.#startRevision ? 'start' : 'live';
          if (arrival === 'live') this.#reportStart();
          this.#seenRevision = Math.max(this.#seenRevision, e.revision);
          await this.#receive(e.key, e.operation, e.value, arrival);
          if (arrival === 'start' && (e.delta === 0 || e.revision >= this.#startRevision)) this.#reportStart();
        }
      } catch (err) {
        if (this.#closed) return;
        this.#onEvent({ kind: 'replica_error', error: `watch of bucket ${this.#bucket}: ${err instanceof Error ? err.message : String(err)}; watching again in ${RETRY_MS} ms` });
        this.#recheckBucket();
      }
      // Entries seen again are no news: the held times and values skip them.
      if (!this.#closed) await delay(RETRY_MS, undefined, { ref: false });
    }
  }

  /** The bucket's name. */
  get bucket(): string {
    return this.#bucket;
  }

  /** Resolves once the bucket is open (tests). */
  async ready(): Promise<void> {
    await this.#kv;
  }

  /**
   * Puts a change made on this overwatch (already applied here): the value,
   * or a tombstone for null. Never rejects: while NATS is away the entry
   * waits (the newest per key) and is put once NATS is back.
   */
  put(change: OperatorChange): void {
    if (this.#closed) return;
    const kvKey = operatorKvKey(change);
    const now = this.#now();
    const next = (this.#held.get(kvKey)?.atMs ?? 0) + 1;
    // After the held one, unless that would stamp it beyond the skew the others accept (this clock was ahead, then stepped back).
    const atMs = next <= now + MAX_CLOCK_SKEW_MS ? Math.max(now, next) : now;
    const value = wireValue(change);
    this.#putHeld(kvKey, change.kind, { atMs, by: this.#self, value: JSON.stringify(value) });
  }

  /** Holds `held` as the newest for `kvKey`, seals it (with its own time and writer) and puts it, now or once NATS is back. */
  #putHeld(kvKey: string, kind: OperatorKind, held: Held): void {
    this.#held.set(kvKey, held);
    const bytes = sealEntry(this.#keys[0], this.#bucket, kvKey, { atMs: held.atMs, by: held.by, value: JSON.parse(held.value) as unknown });
    this.#pending.set(kvKey, { kind, bytes, atMs: held.atMs, by: held.by });
    this.#persist(kvKey, bytes);
    this.#flush();
  }

  /**
   * A waiting entry stamped beyond the skew the others accept (made while
   * this clock was ahead, since stepped back, then left waiting for NATS,
   * perhaps across a restart): sealed again stamped `now`, by this process,
   * with the same value, and held so; returns what waits now.
   */
  #restamp(kvKey: string, entry: Pending, now: number): Pending {
    const opened = openEntryWithAny(this.#keys, this.#bucket, kvKey, entry.bytes);
    if (!opened.ok) return entry;
    const payload: EntryPayload = { atMs: now, by: this.#self, value: opened.payload.value };
    const next: Pending = { kind: entry.kind, bytes: sealEntry(this.#keys[0], this.#bucket, kvKey, payload), atMs: now, by: this.#self };
    this.#pending.set(kvKey, next);
    this.#persist(kvKey, next.bytes);
    const held = this.#held.get(kvKey);
    if (held !== undefined && held.atMs === entry.atMs) this.#held.set(kvKey, { atMs: now, by: this.#self, value: held.value });
    this.#onEvent({ kind: 'restamped', entry: entry.kind, key: kvKey, fromMs: entry.atMs, toMs: now });
    return next;
  }

  counters(): ReplicaCounters {
    return {
      puts: { ...this.#counts.puts },
      putFailures: { ...this.#counts.putFailures },
      superseded: { ...this.#counts.superseded },
      applies: { ...this.#counts.applies },
      rejections: Object.fromEntries(Object.entries(this.#rejections).map(([k, v]) => [k, { ...v }])) as ReplicaCounters['rejections'],
      pending: this.#pending.size,
      connected: this.#link.connection !== null,
      reconnects: this.#counts.reconnects,
    };
  }

  /** Resolves once every waiting entry was put, or a put failed (tests). */
  async settled(): Promise<void> {
    while (this.#flushing !== null) await this.#flushing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    if (this.#checkTimer !== null) clearInterval(this.#checkTimer);
    this.#stopWatch?.();
    // A put under way fails once the connection is closed; its entry is lost with the process (the state store has it).
    await this.#link.close();
    await this.#flushing?.catch(() => {});
  }

  /** Puts the waiting entries, one at a time, unless a flush runs already. */
  #flush(): void {
    if (this.#flushing !== null || this.#closed || this.#pending.size === 0 || this.#link.connection === null) return;
    this.#flushing = (async () => {
      let put = 0;
      // Resolved once the link is up (#openBucket retries until then).
      const kv = await this.#kv;
      for (const [kvKey, waiting] of this.#pending) {
        if (this.#closed) return;
        const now = this.#now();
        // Checked at the put, not when it began to wait: this clock may have been stepped back meanwhile.
        const entry = waiting.atMs > now + MAX_CLOCK_SKEW_MS ? this.#restamp(kvKey, waiting, now) : waiting;
        let outcome: PutOutcome;
        try {
          outcome = await this.#putIfNewest(kv, kvKey, entry);
        } catch (err) {
          this.#counts.putFailures[entry.kind]++;
          this.#onEvent({ kind: 'put_failed', entry: entry.kind, key: kvKey, error: err instanceof Error ? err.message : String(err) });
          this.#recheckBucket();
          if (this.#link.connection !== null && this.#retryTimer === null) {
            this.#retryTimer = setTimeout(() => {
              this.#retryTimer = null;
              this.#flush();
            }, RETRY_MS);
            this.#retryTimer.unref();
          }
          return;
        }
        // A newer write to the same key may have replaced it meanwhile: that one stays waiting.
        if (this.#pending.get(kvKey) === entry) {
          this.#pending.delete(kvKey);
          this.#unpersist(kvKey);
        }
        if (outcome.result === 'put') {
          this.#counts.puts[entry.kind]++;
          put++;
        } else if (outcome.result === 'superseded') {
          this.#counts.superseded[entry.kind]++;
          this.#onEvent({ kind: 'superseded', entry: entry.kind, key: kvKey, atMs: entry.atMs, bucketAtMs: outcome.bucketAtMs });
        }
      }
      if (put > 1) this.#onEvent({ kind: 'caught_up', puts: put });
    })().catch(() => {
      // Only close() makes #kv reject: nothing is left to put.
    }).finally(() => {
      this.#flushing = null;
      if (this.#pending.size > 0 && this.#retryTimer === null) this.#flush();
    });
  }

  /**
   * Puts a waiting entry unless the bucket's entry for its key comes after it
   * (by `before`, the order every overwatch applies on receipt) or is the
   * same write already sealed with state_secret. The put names the revision
   * of the entry it was compared with (create when the key has none), so it
   * never replaces an entry put in between: then it reads and compares
   * again. An entry that does not open, is from the future (refused by
   * every overwatch), a bare delete, or older is replaced. DNSSEC keys are
   * exempt from the order, as on receipt (their merge only moves forward):
   * they replace whatever the bucket holds. Throws when NATS fails, or
   * after PUT_RACES conflicts in a row.
   */
  async #putIfNewest(kv: KV, kvKey: string, entry: Pending): Promise<PutOutcome> {
    for (let attempt = 1; ; attempt++) {
      const current = await kv.get(kvKey);
      if (current !== null && current.operation === 'PUT') {
        const opened = openEntryWithAny(this.#keys, this.#bucket, kvKey, current.value);
        if (opened.ok && opened.payload.atMs <= this.#now() + MAX_CLOCK_SKEW_MS) {
          const { atMs, by } = opened.payload;
          if (atMs === entry.atMs && by === entry.by) {
            // This very write is in the bucket already (put by an earlier run, or put back by another overwatch), sealed with state_secret.
            if (opened.keyIndex === 0) return { result: 'present' };
          } else if (entry.kind !== 'dnssec_key' && before(entry.atMs, entry.by, opened.payload)) {
            return { result: 'superseded', bucketAtMs: atMs };
          }
        }
      }
      try {
        if (current === null) await kv.create(kvKey, entry.bytes);
        else await kv.update(kvKey, entry.bytes, current.revision);
        return { result: 'put' };
      } catch (err) {
        if (!isRevisionConflict(err) || attempt >= PUT_RACES) throw err;
      }
    }
  }

  /**
   * A refused entry: counted and reported when it arrives live; one found in
   * the bucket at start goes into the refused_at_start summary instead (the
   * overwatches watching when it was put counted it); one handed over again
   * was seen already.
   */
  #reject(entry: OperatorKind | 'unknown', key: string, reason: RejectionReason, detail: string, arrival: Arrival): void {
    if (arrival === 'live') {
      this.#rejections[entry][reason]++;
      this.#onEvent({ kind: 'rejected', entry, key, reason, detail });
    } else if (arrival === 'start' && !this.#startReported) {
      const r = this.#startRefused;
      r.reasons[reason] = (r.reasons[reason] ?? 0) + 1;
      r.total++;
      if (r.examples.length < START_EXAMPLES) r.examples.push({ key, reason });
    }
  }

  /** Reports, once, what the first watch refused and sealed again among the entries the bucket held at start. */
  #reportStart(): void {
    if (this.#startReported) return;
    this.#startReported = true;
    const r = this.#startRefused;
    if (r.total > 0) this.#onEvent({ kind: 'refused_at_start', total: r.total, reasons: { ...r.reasons }, examples: [...r.examples] });
    if (this.#resealed > 0 || this.#leftFuture > 0) this.#onEvent({ kind: 'resealed', entries: this.#resealed, leftFuture: this.#leftFuture });
  }

  /**
   * Puts the bucket's entry for `kvKey` back unchanged (same time, writer and
   * value) sealed with state_secret: it opened only with a previous secret,
   * which may then be dropped. Not over a change of this overwatch's waiting
   * to be put (newer, sealed with state_secret already).
   */
  #reseal(kvKey: string, kind: OperatorKind, payload: EntryPayload): void {
    if (this.#pending.has(kvKey)) return;
    const bytes = sealEntry(this.#keys[0], this.#bucket, kvKey, payload);
    this.#pending.set(kvKey, { kind, bytes, atMs: payload.atMs, by: payload.by });
    this.#persist(kvKey, bytes);
    this.#resealed++;
    this.#flush();
  }

  /**
   * Opens, checks and applies one entry of the watch; `arrival` says when it
   * was put (#reject counts only 'live' ones; 'start' ones sealed with a
   * previous secret are sealed again). Never throws.
   */
  async #receive(key: string, operation: 'PUT' | 'DEL' | 'PURGE', value: Uint8Array, arrival: Arrival): Promise<void> {
    const id = parseOperatorKvKey(key);
    if (id === null) return this.#reject('unknown', key, 'malformed', 'a key no version of OpenGSLB writes', arrival);
    // Every write of ours is a sealed put: a delete or purge was made by someone without the secret.
    if (operation !== 'PUT') {
      // It left the key empty in the bucket: the entry held here goes back in (as for an older entry), or an overwatch that joins would find nothing.
      const held = this.#held.get(key);
      if (held !== undefined) this.#putHeld(key, id.kind, held);
      // A delete left in the bucket (nobody held the key to put it back) is delivered again at every start
      // and every new watch: it is counted and logged once, when it happens, by each overwatch watching then.
      return this.#reject(id.kind, key, 'unauthenticated', `a bare KV ${operation} (removals are sealed tombstones); ignored${held === undefined ? '' : ', the entry held here put back'}`, arrival);
    }
    const opened = openEntryWithAny(this.#keys, this.#bucket, key, value);
    if (!opened.ok) {
      return this.#reject(id.kind, key, opened.reason, opened.reason === 'unauthenticated' ? 'does not open with overwatch.bus.state_secret or any of previous_state_secrets (another secret, changed bytes, or copied from another key)' : 'opens, but holds no entry', arrival);
    }
    const { payload } = opened;
    const now = this.#now();
    // DNSSEC keys are exempt, as from the order below: their merge only moves a key forward, whatever the entry's time.
    if (id.kind !== 'dnssec_key' && payload.atMs > now + MAX_CLOCK_SKEW_MS) {
      // Not held, not applied, nothing put back (the writer would put its entry back in turn, without end).
      // Not sealed again either when it opened only with a previous secret: under state_secret it would
      // become valid once its time came (a value from a wrong clock taking the key then); left as it is,
      // it stops opening once that secret is dropped. The start's 'resealed' report counts it.
      if (opened.keyIndex > 0 && arrival === 'start' && !this.#startReported) this.#leftFuture++;
      return this.#reject(id.kind, key, 'future', `written ${new Date(payload.atMs).toISOString()}, more than ${MAX_CLOCK_SKEW_MS / 1000} s ahead of this overwatch's clock (${new Date(now).toISOString()}): the writer's clock is wrong (fix its NTP); ignored`, arrival);
    }
    // Before the own-write check: an old entry of this overwatch's put back is a replay too.
    let held = this.#held.get(key);
    if (held !== undefined && held.atMs > now + MAX_CLOCK_SKEW_MS) {
      // Held from when this clock was ahead (since stepped back): the others refuse it, so it orders nothing.
      this.#held.delete(key);
      held = undefined;
    }
    const valueText = JSON.stringify(payload.value);
    if (id.kind !== 'dnssec_key' && held !== undefined && before(payload.atMs, payload.by, held)) {
      // The same value written earlier (two overwatches making one change) is no news, not a replay.
      if (valueText === held.value) return;
      // The bucket now holds the older entry (a replay, or a change put late by an overwatch that was away
      // from NATS): the newer one goes back in, unchanged (same time and writer), or an overwatch that
      // joins or restarts would take the older one. Every overwatch holding it may do so; the copies are
      // equal, so nothing goes round.
      this.#putHeld(key, id.kind, held);
      return this.#reject(id.kind, key, 'older', `written ${new Date(payload.atMs).toISOString()}, this overwatch holds a change from ${new Date(held.atMs).toISOString()} (put back in the bucket)`, arrival);
    }
    if (payload.by === this.#self) return;
    const change = changeOf(id, payload.value);
    if (change === undefined) return this.#reject(id.kind, key, 'malformed', `opens, but its value is not a ${id.kind}`, arrival);
    // Only entries in the bucket at start: sealed again while the fleet rolls from one secret to the next, an overwatch
    // still sealing with the old one (which lists the new one as previous) would seal it back, and round it would go.
    if (opened.keyIndex > 0 && arrival === 'start') this.#reseal(key, id.kind, payload);
    if (held === undefined || !before(payload.atMs, payload.by, held)) this.#held.set(key, { atMs: payload.atMs, by: payload.by, value: valueText });
    let result: ApplyResult;
    try {
      result = await this.#onChange(change);
    } catch (err) {
      result = { refused: err instanceof Error ? err.message : String(err) };
    }
    if (result === 'applied') this.#counts.applies[id.kind]++;
    else if (result !== 'unchanged') this.#reject(id.kind, key, 'refused', result.refused, arrival);
  }
}

/**
 * Reads the DNSSEC keys in the bucket once (at start, before the keyring
 * makes a key of its own: an overwatch that joins takes the fleet's keys
 * instead). Resolves to the keys whose entries open and check, and how many
 * did not; null when NATS or the bucket did not answer within `timeoutMs`.
 */
export async function readReplicatedKeys(bus: BusConfig, name: string, timeoutMs: number): Promise<{ readonly keys: StoredDnssecKey[]; readonly rejected: number } | null> {
  if (bus.stateSecret === null) return null;
  const bucket = bucketName(bus.subjectPrefix);
  const stateKeys = deriveStateKeys(bus.stateSecret, bus.previousStateSecrets);
  const link = new BusLink(connectionOptions(bus, 'overwatch.bus', `${name} (operator state, start)`), () => {});
  const read = (async () => {
    const kv = await new Kvm(await link.ready).create(bucket, { history: 1 });
    const keys: StoredDnssecKey[] = [];
    let rejected = 0;
    const names: string[] = [];
    for await (const k of await kv.keys('dnssec_key.>')) names.push(k);
    for (const k of names) {
      const id = parseOperatorKvKey(k);
      const e = await kv.get(k);
      if (id === null || e === null || e.operation !== 'PUT') continue;
      const opened = openEntryWithAny(stateKeys, bucket, k, e.value);
      const change = opened.ok ? changeOf(id, opened.payload.value) : undefined;
      if (change?.kind === 'dnssec_key' && change.value !== null) keys.push(change.value);
      else rejected++;
    }
    return { keys, rejected };
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), timeoutMs);
  });
  try {
    return await Promise.race([read, timeout]);
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
    read.catch(() => {});
    await link.close();
  }
}
