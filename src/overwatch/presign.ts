// Main thread, cold path. Pre-signing: once new snapshots and health changes
// have settled (the overwatch waits PRESIGN_SETTLE_MS), works out which RRsets the DNS workers are about to answer (per
// record, the sets its routing policy produces from the members that are
// answerable now; per zone SOA, NS and DNSKEY; per name its NODATA NSEC),
// signs the ones not signed yet (or due for a refresh) in the CPU pool
// (piscina, src/dnssec/sign-task.ts), and hands the signatures to the
// workers, which put them into their caches. The workers then sign only on a
// rare miss: a set this plan did not foresee (a weighted answer with too many
// combinations, a missing name's NSEC) or an answer that changed since the
// last plan (nothing that changes an answer waits for pre-signing).
//
//   snapshot / health epoch ──settle──plan()──► RRsets ──diff with what is signed──► pool.run(batch per key)
//                                                                              │
//   workers ◄──'signatures' message (SignatureBatch[])◄── remember (for restarted workers) ◄┘

import { MAX_NAME_LEN, QTYPE } from '../dns/constants.ts';
import { refreshList, RouteState } from '../routing/select.ts';
import * as L from '../snapshot/layout.ts';
import { SnapshotView } from '../snapshot/reader.ts';
import type { SignatureBatch, WorkerDnssec } from '../../workers/messages.ts';
import { writeCompactNsecRdata } from '../dnssec/denial.ts';
import {
  createSignBatchTask, DNSSEC_TYPE, packRrsets, refreshAt, rrsigExpiration, rrsigInception, Rrset, signBatch, signingWindow, unpackRrsets, unpackSignatures,
  type SignBatchResult, type SignBatchTask, type SignerKey,
} from '../dnssec/sign.ts';

/**
 * Most RRsets one plan signs ahead; beyond it, sets are signed by the workers
 * when asked (bounded work per health change). Below the workers' cache size
 * (SIGNATURE_CACHE_ENTRIES, 16 384) so pre-signed sets do not push each other
 * out and leave room for what the workers sign themselves.
 */
export const MAX_PLANNED_SETS = 12_000;
/** Most address sets one record contributes (a weighted max_answers: k record has n-choose-k sets: 45 for 2 of 10, 4 950 for 2 of 100). */
export const MAX_SETS_PER_RECORD = 1_000;
/** RRsets per pool task: enough to amortise the hand-over, small enough that results flow in steadily. */
export const SETS_PER_TASK = 1_000;
/** A signature is signed again this long before the point where the workers' caches would stop serving it (75 % of its validity). */
export const REFRESH_MARGIN_SEC = 6 * 3600;
/** A set no plan has needed for this long is forgotten (not sent to restarted workers any more). */
export const FORGET_AFTER_MS = 3600_000;
/**
 * Most signatures held between plans, by default (twice MAX_PLANNED_SETS):
 * beyond it the sets planned longest ago are forgotten at once. Without a
 * bound a burst of registry changes filled the map for an hour: 5 000 agents
 * registering within 10 s made a snapshot every 100 ms, each plan's rotations
 * new, and the pre-signer made 30 000–63 000 signatures, all kept, most of
 * them for sets no worker would ask for again (bench/agents-scale.ts,
 * docs/benchmarks.md).
 */
export const MAX_HELD_FACTOR = 2;
/**
 * Up to this many due sets are signed on the main thread instead of the pool:
 * about 15 ms of ECDSA P-256 at 55 µs a signature, less than starting a pool
 * thread costs, so a small zone (and every test server) never starts one.
 */
export const INLINE_MAX_SETS = 256;

/** Runs one signing task: the piscina pool's run(), or signBatch inline. */
export type SignRunner = (task: SignBatchTask, transferList: ArrayBuffer[]) => Promise<SignBatchResult>;

/** Signs in this thread: for tests and as the fallback when no pool runs. */
export const inlineRunner: SignRunner = async (task) => signBatch(task);

/** What the presigner did, for metrics and the log. */
export interface PresignStats {
  /** Signatures made by the pool since start. */
  signatures: number;
  /** Milliseconds the pool spent signing. */
  signMs: number;
  /** Plans run (one per snapshot or health change). */
  plans: number;
  /** Sets the last plan wanted signed. */
  lastPlanned: number;
  /** Records whose sets were too many to plan (left to the workers) in the last plan. */
  lastSkippedRecords: number;
}

/**
 * One planned RRset under one key. Its id is the set itself, as a latin1
 * string: the key's index (2 bytes) and the set packed by packRrsets (count 1,
 * owner in lower case, records in canonical order). A plan makes one short
 * string per set and nothing else; the Rrset is unpacked from the id only
 * for the sets that get signed. Holding 12 000 sets as copied Rrsets (nine
 * small buffers each) cost about 60 MB of heap at 5 000 agents, and every
 * plan made as many copies again, most of them garbage at once
 * (bench/agents-scale.ts, docs/benchmarks.md).
 */
export class PlannedSet {
  readonly id: string;
  readonly key: SignerKey;
  constructor(id: string, key: SignerKey) {
    this.id = id;
    this.key = key;
  }

  /** The set, unpacked from its id (a new buffer each call). */
  get rrset(): Rrset {
    return rrsetOfId(this.id);
  }
}

/** A signature the presigner made, kept for restarted workers and refresh; its set is its id in the map. */
interface Signed {
  readonly key: SignerKey;
  /**
   * The RRSIG rdata: `len` bytes at `off` in its batch's signatures. Not a
   * view of them: a view is an object of about 100 bytes, 1.5 MB over the
   * 16 000 sets of 5 000 agents' backends (bench/agents-scale.ts).
   */
  readonly batch: Uint8Array;
  readonly off: number;
  readonly len: number;
  refreshAtSec: number;
  lastPlannedMs: number;
}

function keyId(key: SignerKey): string {
  return `${Buffer.from(key.signerWire).toString('hex')}|${key.keyTag}|${key.algorithm}`;
}

/** The Rrset a set id holds (see PlannedSet). */
function rrsetOfId(id: string): Rrset {
  const bytes = Buffer.from(id, 'latin1');
  return unpackRrsets(bytes.subarray(2))[0]!;
}

/** Compares two rdatas as RFC 4034 §6.3 orders them: octet by octet, a prefix first. */
function compareRdata(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = a[aOff + i]! - b[bOff + i]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** Writes set ids (see PlannedSet) into one reused buffer. */
class SetIdWriter {
  #buf = Buffer.allocUnsafe(4096);
  readonly #order: number[] = [];

  /** The id of `rrset` under the key with index `keyIndex`. */
  idOf(keyIndex: number, rrset: Rrset): string {
    let size = 2 + 4 + 1 + rrset.ownerLen + 8;
    for (let i = 0; i < rrset.count; i++) size += 2 + rrset.rdataLen[i]!;
    if (size > this.#buf.length) this.#buf = Buffer.allocUnsafe(size * 2);
    const buf = this.#buf;
    // Records in canonical order (insertion sort: a set holds a few).
    const order = this.#order;
    order.length = 0;
    for (let i = 0; i < rrset.count; i++) {
      let j = order.length;
      while (j > 0 && compareRdata(rrset.rdataBuf[order[j - 1]!]!, rrset.rdataOff[order[j - 1]!]!, rrset.rdataLen[order[j - 1]!]!, rrset.rdataBuf[i]!, rrset.rdataOff[i]!, rrset.rdataLen[i]!) > 0) j--;
      order.splice(j, 0, i);
    }
    buf.writeUInt16BE(keyIndex, 0);
    buf.writeUInt32BE(1, 2);
    let off = 6;
    buf[off++] = rrset.ownerLen;
    for (let i = 0; i < rrset.ownerLen; i++) {
      const c = rrset.ownerBuf[rrset.ownerOff + i]!;
      buf[off++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    buf.writeUInt16BE(rrset.type, off);
    buf.writeUInt32BE(rrset.ttlSec >>> 0, off + 2);
    buf.writeUInt16BE(rrset.count, off + 6);
    off += 8;
    for (const i of order) {
      const len = rrset.rdataLen[i]!;
      buf.writeUInt16BE(len, off);
      buf.set(rrset.rdataBuf[i]!.subarray(rrset.rdataOff[i]!, rrset.rdataOff[i]! + len), off + 2);
      off += 2 + len;
    }
    return buf.toString('latin1', 0, off);
  }
}

/** Calls `emit` with every k-subset of [0, n) (as index arrays, in lexicographic order) until it returns false or `limit` were emitted. */
function combinations(n: number, k: number, limit: number, emit: (idx: readonly number[]) => boolean): void {
  const idx = Array.from({ length: k }, (_, i) => i);
  let count = 0;
  for (;;) {
    if (count++ >= limit || !emit(idx)) return;
    let i = k - 1;
    while (i >= 0 && idx[i] === n - k + i) i--;
    if (i < 0) return;
    idx[i]++;
    for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1] + 1;
  }
}

/** n choose k, saturating at `cap`. */
function choose(n: number, k: number, cap: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) {
    c = (c * (n - i)) / (i + 1);
    if (c > cap) return cap + 1;
  }
  return Math.round(c);
}

/**
 * Presigner keeps the workers' caches ahead of the answers. One per overwatch;
 * the overwatch calls update() once a burst of publishes and health epoch
 * changes has settled (it polls the epoch; PRESIGN_SETTLE_MS), and hourly so
 * signatures are renewed before the workers would have to.
 */
export class Presigner {
  readonly stats: PresignStats = { signatures: 0, signMs: 0, plans: 0, lastPlanned: 0, lastSkippedRecords: 0 };
  readonly #pool: () => SignRunner;
  readonly #inlineMax: number;
  readonly #send: (batches: SignatureBatch[]) => void;
  readonly #nowMs: () => number;
  readonly #maxSets: number;
  readonly #maxHeld: number;
  readonly #signed = new Map<string, Signed>();
  readonly #ids = new SetIdWriter();
  /** Keys seen by plans, by index (a set id starts with its key's index), and the index of each key's identity. */
  readonly #keys: SignerKey[] = [];
  readonly #keyIndex = new Map<string, number>();
  /** Index of each SignerKey object seen (plans get new objects per publish; the identity string is made once per object). */
  readonly #keyObjects = new WeakMap<SignerKey, number>();
  #busy: Promise<void> = Promise.resolve();
  /** The update waiting for the running one, or null. */
  #queued: Promise<void> | null = null;
  /** What the waiting update will plan for (the latest asked). */
  #next: { snapshot: SharedArrayBuffer; live: Int32Array; dnssec: WorkerDnssec } | null = null;

  /**
   * `pool` returns the runner of the CPU pool (created on first use); up to
   * `inlineMax` due sets are signed inline instead. `send` hands batches to
   * every running worker.
   */
  constructor(opts: { pool: () => SignRunner; send: (batches: SignatureBatch[]) => void; nowMs?: () => number; maxSets?: number; inlineMax?: number; maxHeld?: number }) {
    this.#pool = opts.pool;
    this.#inlineMax = opts.inlineMax ?? INLINE_MAX_SETS;
    this.#send = opts.send;
    this.#nowMs = opts.nowMs ?? Date.now;
    this.#maxSets = opts.maxSets ?? MAX_PLANNED_SETS;
    this.#maxHeld = Math.max(this.#maxSets, opts.maxHeld ?? MAX_HELD_FACTOR * this.#maxSets);
  }

  /** Signatures held, for restarted workers. */
  get size(): number {
    return this.#signed.size;
  }

  /**
   * Plans the sets `snapshot` and the health in `live` call for, signs the
   * missing and the nearly stale ones with the zones' keys, and sends them to
   * the workers. Runs one at a time (a call waits for the previous one).
   * Resolves when the workers were sent everything; never rejects (a failed
   * task leaves its sets to the workers and is counted in the returned error).
   */
  update(snapshot: SharedArrayBuffer, live: Int32Array, dnssec: WorkerDnssec): Promise<void> {
    // One waiting update is enough: it reads the newest snapshot and health when it starts.
    this.#next = { snapshot, live, dnssec };
    if (this.#queued !== null) return this.#queued;
    const run = this.#busy.then(() => {
      this.#queued = null;
      const next = this.#next as { snapshot: SharedArrayBuffer; live: Int32Array; dnssec: WorkerDnssec };
      return this.#update(next.snapshot, next.live, next.dnssec);
    });
    this.#queued = run;
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #update(snapshot: SharedArrayBuffer, live: Int32Array, dnssec: WorkerDnssec): Promise<void> {
    const now = this.#nowMs();
    const nowSec = Math.floor(now / 1000);
    const planned = this.plan(snapshot, live, dnssec);
    this.stats.plans++;
    this.stats.lastPlanned = planned.length;
    // What needs a signature now, grouped by key.
    const due = new Map<SignerKey, PlannedSet[]>();
    for (const p of planned) {
      const held = this.#signed.get(p.id);
      if (held !== undefined) {
        held.lastPlannedMs = now;
        if (held.refreshAtSec - nowSec > REFRESH_MARGIN_SEC) continue;
      }
      let list = due.get(p.key);
      if (list === undefined) due.set(p.key, (list = []));
      list.push(p);
    }
    for (const [id, s] of this.#signed) if (now - s.lastPlannedMs > FORGET_AFTER_MS) this.#signed.delete(id);
    const window = signingWindow(nowSec, dnssec.validitySec);
    let total = 0;
    for (const list of due.values()) total += list.length;
    if (total === 0) return;
    const run = total <= this.#inlineMax ? inlineRunner : this.#pool();
    const tasks: Promise<void>[] = [];
    for (const list of due.values()) {
      for (let i = 0; i < list.length; i += SETS_PER_TASK) {
        const chunk = list.slice(i, i + SETS_PER_TASK);
        tasks.push(this.#sign(run, chunk, window, now));
      }
    }
    await Promise.all(tasks);
    this.#trim();
  }

  /** Forgets the sets planned longest ago while more than maxHeld are held; the latest plan's (at most maxSets) stay. */
  #trim(): void {
    if (this.#signed.size <= this.#maxHeld) return;
    const oldest = [...this.#signed].sort((a, b) => a[1].lastPlannedMs - b[1].lastPlannedMs);
    for (let i = 0; this.#signed.size > this.#maxHeld && i < oldest.length; i++) this.#signed.delete(oldest[i]![0]);
  }

  async #sign(run: SignRunner, chunk: readonly PlannedSet[], window: { inceptionSec: number; expirationSec: number }, now: number): Promise<void> {
    const key = chunk[0].key;
    const rrsets = chunk.map((p) => p.rrset);
    const { task, transferList } = createSignBatchTask(key, window, rrsets);
    const result = await run(task, transferList);
    this.stats.signatures += result.count;
    this.stats.signMs += result.signMs;
    const sigs = unpackSignatures(result.signatures);
    for (let i = 0; i < chunk.length && i < sigs.length; i++) {
      const rrsig = sigs[i];
      const batch = result.signatures;
      this.#signed.set(chunk[i].id, {
        key, batch, off: rrsig.byteOffset - batch.byteOffset, len: rrsig.length,
        refreshAtSec: refreshAt(rrsigInception(rrsig), rrsigExpiration(rrsig)), lastPlannedMs: now,
      });
    }
    this.#send([{ signerWire: key.signerWire, keyTag: key.keyTag, algorithm: key.algorithm, rrsets: packRrsets(rrsets), signatures: result.signatures }]);
  }

  /** Every signature held, as batches for a worker that starts (or restarts) with an empty cache. */
  batches(): SignatureBatch[] {
    const byKey = new Map<string, [string, Signed][]>();
    for (const entry of this.#signed) {
      const id = keyId(entry[1].key);
      let list = byKey.get(id);
      if (list === undefined) byKey.set(id, (list = []));
      list.push(entry);
    }
    const out: SignatureBatch[] = [];
    for (const list of byKey.values()) {
      const key = list[0][1].key;
      let total = 4;
      for (const [, s] of list) total += 2 + s.len;
      const sigs = new Uint8Array(total);
      const view = new DataView(sigs.buffer);
      view.setUint32(0, list.length);
      let off = 4;
      for (const [, s] of list) {
        view.setUint16(off, s.len);
        sigs.set(s.batch.subarray(s.off, s.off + s.len), off + 2);
        off += 2 + s.len;
      }
      out.push({ signerWire: key.signerWire, keyTag: key.keyTag, algorithm: key.algorithm, rrsets: packRrsets(list.map(([id]) => rrsetOfId(id))), signatures: sigs });
    }
    return out;
  }

  /** The index of a key in set ids: one per key identity (signer, tag, algorithm), whichever object carries it. */
  #indexOf(key: SignerKey): number {
    let index = this.#keyObjects.get(key);
    if (index !== undefined) return index;
    const id = keyId(key);
    index = this.#keyIndex.get(id);
    if (index === undefined) {
      index = this.#keys.length;
      if (index > 0xffff) throw new RangeError('more than 65 536 DNSSEC keys seen by the pre-signer');
      this.#keys.push(key);
      this.#keyIndex.set(id, index);
    }
    this.#keyObjects.set(key, index);
    return index;
  }

  /**
   * Lists the RRsets the workers will answer with DO from `snapshot` while
   * health stays as `live` says, for every signed zone: SOA, NS, the DNSKEY
   * RRset (once per DNSKEY signer), each name's NODATA NSEC, and the address
   * sets of each record's policy over its answerable members (see the module
   * header); every set but the DNSKEY RRset once per data key. At most
   * maxSets; pure apart from reading the live slots.
   */
  plan(snapshot: SharedArrayBuffer, live: Int32Array, dnssec: WorkerDnssec): PlannedSet[] {
    const view = new SnapshotView(snapshot);
    const u32 = view.u32;
    const u8 = view.u8;
    const out: PlannedSet[] = [];
    const seen = new Set<string>();
    let skipped = 0;
    const scratch = new Rrset();
    const add = (key: SignerKey, rrset: Rrset): boolean => {
      if (out.length >= this.#maxSets) return false;
      const id = this.#ids.idOf(this.#indexOf(key), rrset);
      if (!seen.has(id)) {
        seen.add(id);
        out.push(new PlannedSet(id, key));
      }
      return true;
    };
    // A data RRset is signed by every data key (one, or one per algorithm during an algorithm rollover: ZoneSigners.data).
    const addData = (keys: readonly SignerKey[], rrset: Rrset): boolean => {
      for (const key of keys) if (!add(key, rrset)) return false;
      return true;
    };
    const atNode = (node: number, type: number, ttl: number): Rrset => {
      const nb = view.nodeBase(node);
      return scratch.reset(u8, u32[nb + L.NODE_NAME_OFF], u32[nb + L.NODE_NAME_LEN], type, ttl);
    };
    const bodies = (node: number, type: number, src: number, count: number): Rrset => {
      const ttl = count === 0 ? 0 : ((u8[src + 4] << 24) | (u8[src + 5] << 16) | (u8[src + 6] << 8) | u8[src + 7]) >>> 0;
      const r = atNode(node, type, ttl);
      for (let i = 0; i < count; i++) {
        const len = (u8[src + 8] << 8) | u8[src + 9];
        r.add(u8, src + 10, len);
        src += 10 + len;
      }
      return r;
    };

    // Zone RRsets first: they are few and asked for by every resolver.
    for (let z = 0; z < view.zoneCount; z++) {
      const signers = dnssec.zones[z] ?? null;
      if (signers === null) continue;
      const zb = view.zoneBase(z);
      const apex = u32[zb + L.ZONE_NODE];
      atNode(apex, QTYPE.SOA, u32[zb + L.ZONE_SOA_TTL]).add(u8, u32[zb + L.ZONE_SOA_OFF] + 10, u32[zb + L.ZONE_SOA_LEN] - 10);
      addData(signers.data, scratch);
      addData(signers.data, bodies(apex, QTYPE.NS, u32[zb + L.ZONE_NS_OFF], u32[zb + L.ZONE_NS_COUNT]));
      for (const k of signers.dnskey) add(k, bodies(apex, DNSSEC_TYPE.DNSKEY, u32[zb + L.ZONE_DNSKEY_OFF], u32[zb + L.ZONE_DNSKEY_COUNT]));
    }

    // Static RRsets (dns.zones[].records): fixed, one set each; a delegation's NS is the child's, never signed.
    for (let n = 0; n < view.nodeSlots; n++) {
      if (!view.hasNode(n)) continue;
      const nb = view.nodeBase(n);
      const count = u32[nb + L.NODE_RRSET_COUNT];
      if (count === 0) continue;
      const signers = dnssec.zones[u32[nb + L.NODE_ZONE]] ?? null;
      if (signers === null) continue;
      const start = u32[nb + L.NODE_RRSET_START];
      for (let r = start; r < start + count; r++) {
        const rb = view.rrsetBase(r);
        const type = u32[rb + L.RS_TYPE];
        if (type === QTYPE.NS && (u32[nb + L.NODE_FLAGS] & L.NODE_FLAG_CUT) !== 0) continue;
        addData(signers.data, bodies(n, type, u32[rb + L.RS_OFF], u32[rb + L.RS_COUNT]));
      }
    }

    // Address sets, record by record, from the members answerable now.
    const state = new RouteState(view, live);
    const members: number[] = [];
    for (let r = 0; r < view.recordCount; r++) {
      const rb = view.recordBase(r);
      const node = u32[rb + L.REC_NODE];
      const signers = dnssec.zones[u32[view.nodeBase(node) + L.NODE_ZONE]] ?? null;
      if (signers === null) continue;
      refreshList(state, r);
      members.length = 0;
      const n = state.listLength(r);
      const start = u32[rb + L.REC_MEMBER_START];
      if (n > 0) {
        for (let i = 0; i < n; i++) members.push(state.healthy[start + i]);
      } else if (state.degradedMode(r) === L.ALL_DOWN_FALLBACK) {
        const fs = u32[rb + L.REC_FALLBACK_START];
        for (let i = 0; i < u32[rb + L.REC_FALLBACK_COUNT]; i++) members.push(fs + i);
      }
      if (members.length === 0) continue;
      const count = members.length;
      const k = Math.min(u32[rb + L.REC_MAX_ANSWERS], count);
      const type = u32[rb + L.REC_QTYPE];
      const ttl = u32[rb + L.REC_TTL];
      const rdataLen = u32[rb + L.REC_FRAG_LEN] - 12;
      const emit = (pick: (i: number) => number): boolean => {
        const set = atNode(node, type, ttl);
        for (let i = 0; i < k; i++) {
          const fo = u32[view.memberBase(pick(i)) + L.MEM_FRAG_OFF];
          // REC_FRAG_LEN 0 (a CNAME pool): each fragment carries its own RDLENGTH.
          set.add(u8, fo + 12, rdataLen >= 0 ? rdataLen : (u8[fo + 10] << 8) | u8[fo + 11]);
        }
        return addData(signers.data, set);
      };
      const policy = u32[rb + L.REC_POLICY];
      const fixed = policy === L.POLICY_FAILOVER || policy === L.POLICY_STATIC || state.degradedMode(r) === L.ALL_DOWN_FALLBACK;
      if (fixed || k === count) {
        // One set: the first k (failover, static, fallback), or everyone.
        if (!emit((i) => members[i])) break;
      } else if ((policy === L.POLICY_WEIGHTED || policy === L.POLICY_STICKY) && k > 1) {
        // Random draws without replacement (weighted), or each client network's best k (sticky): any k of them, in any order.
        if (choose(count, k, MAX_SETS_PER_RECORD) > MAX_SETS_PER_RECORD) {
          skipped++;
          continue;
        }
        let full = false;
        combinations(count, k, MAX_SETS_PER_RECORD, (idx) => {
          if (!emit((i) => members[idx[i]])) full = true;
          return !full;
        });
        if (full) break;
      } else {
        // Round-robin and latency rotate: k consecutive members from each position (k = 1: every member alone).
        let full = false;
        for (let first = 0; first < count && !full; first++) full = !emit((i) => members[(first + i) % count]);
        if (full) break;
      }
    }

    // Each name's NODATA NSEC (owner: the name, next: \000.<name>, bitmap from the snapshot).
    const nsec = new Uint8Array(MAX_NAME_LEN + 64);
    for (let n = 0; n < view.nodeSlots && out.length < this.#maxSets; n++) {
      if (!view.hasNode(n)) continue;
      const nb = view.nodeBase(n);
      const signers = dnssec.zones[u32[nb + L.NODE_ZONE]] ?? null;
      if (signers === null) continue;
      const zb = view.zoneBase(u32[nb + L.NODE_ZONE]);
      const bitmapOff = u32[nb + L.NODE_NSEC_OFF];
      const len = writeCompactNsecRdata(nsec, 0, u8, u32[nb + L.NODE_NAME_OFF], u32[nb + L.NODE_NAME_LEN], u8.subarray(bitmapOff + 1, bitmapOff + 1 + u8[bitmapOff]));
      if (len < 0) continue;
      atNode(n, DNSSEC_TYPE.NSEC, u32[zb + L.ZONE_NEG_TTL]).add(nsec, 0, len);
      addData(signers.data, scratch);
    }
    this.stats.lastSkippedRecords = skipped;
    return out;
  }
}
