// Worker, hot path (batched UDP only). Warms the CPU caches for a whole batch
// before it is answered: every query of the batch walks the same chain of
// dependent loads (node row → record → its routing state, decision counter
// and answer fragments, and the healthy list when some member is down), and
// for a name not answered recently each link is a cache miss. Answered one
// by one, the misses of a batch wait one after the other; here each link is loaded for
// every query of the batch in one loop, so the CPU has all those independent
// misses in flight together and a batch pays about one miss per link instead
// of one per query and link ("group prefetching"). Read-only: it changes
// nothing and decides nothing; handleQuery then finds the lines in the cache.
// A query it cannot follow (malformed, a hash collision, a miss, another
// qtype) is simply not warmed further.
//
// Measured (names-10k, shuffled, 1 worker, dnsperf): see docs/benchmarks.md.

import { hashWire } from '../src/dns/names.ts';
import * as L from '../src/snapshot/layout.ts';
import type { WorkerScratch } from './scratch.ts';

/** Longest wire name (RFC 1035 §2.3.4). */
const MAX_NAME = 255;
const QTYPE_A = 1;
const QTYPE_AAAA = 28;

/** Per-batch scratch for prefetchBatch: one lower-cased name and a few words per slot, allocated once. */
export class PrefetchScratch {
  readonly names: Uint8Array;
  readonly nameLen: Int32Array;
  readonly hash: Uint32Array;
  /** Per slot, the link reached so far: a node, record or member index, −1 = stop. */
  readonly at: Int32Array;
  readonly qtype: Int32Array;

  constructor(batch: number) {
    this.names = new Uint8Array(batch * MAX_NAME);
    this.nameLen = new Int32Array(batch);
    this.hash = new Uint32Array(batch);
    this.at = new Int32Array(batch);
    this.qtype = new Int32Array(batch);
  }
}

/**
 * Reads the question name of `req[0, len)` lower-cased into
 * `names[base, base + 255)`; returns its wire length, or 0 when the packet
 * is not a plain one-question query (handleQuery will say what it is).
 * Bounded: at most 255 name bytes, no compression pointers.
 */
function readName(req: Uint8Array, len: number, names: Uint8Array, base: number): number {
  if (len < 17 || (req[2] & 0x80) !== 0 || req[4] !== 0 || req[5] !== 1) return 0;
  let off = 12;
  let n = 0;
  for (;;) {
    if (off >= len) return 0;
    const labelLen = req[off];
    if (labelLen > 63 || n + labelLen + 1 > MAX_NAME || off + labelLen + 1 > len) return 0;
    names[base + n++] = labelLen;
    off++;
    if (labelLen === 0) return off + 4 <= len ? n : 0;
    for (let i = 0; i < labelLen; i++) {
      const c = req[off++];
      names[base + n++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
  }
}

/**
 * Touches the snapshot and routing state that answering rx[0 … count−1]
 * will read, one link of the chain at a time across the whole batch.
 * `reqLen(i)` is slot i's datagram length. Returns a value only so the
 * loads are not optimised away; callers ignore it.
 */
export function prefetchBatch(ctx: WorkerScratch, p: PrefetchScratch, rx: readonly Uint8Array[], lens: Int32Array, lenStride: number, count: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const u8 = view.u8;
  const route = ctx.route;
  const names = p.names;
  const nameLen = p.nameLen;
  const hash = p.hash;
  const at = p.at;
  const qtype = p.qtype;
  let sink = 0;
  // 1. Names and hashes (the packets are hot: just received).
  for (let i = 0; i < count; i++) {
    const req = rx[i];
    const len = lens[i * lenStride];
    const n = readName(req, len, names, i * MAX_NAME);
    nameLen[i] = n;
    if (n === 0) {
      at[i] = -1;
      continue;
    }
    hash[i] = hashWire(names, i * MAX_NAME, n);
    qtype[i] = (req[12 + n] << 8) | req[13 + n];
    at[i] = hash[i] & view.slotMask;
  }
  // 2. Node rows: the home row's node when its hash and length match (a collision is left to findNode).
  for (let i = 0; i < count; i++) {
    const row = at[i];
    if (row < 0) continue;
    const nb = view.nodeBase(row);
    if (u32[nb + L.NODE_HASH] !== hash[i] || u32[nb + L.NODE_NAME_LEN] !== nameLen[i]) {
      at[i] = -1;
      continue;
    }
    // The rest of a name longer than the row holds (compared by findNode), and the record of the asked type.
    if (nameLen[i] > L.NODE_NAME_INLINE_BYTES) sink += u8[u32[nb + L.NODE_NAME_OFF] + L.NODE_NAME_INLINE_BYTES];
    const rec = u32[nb + (qtype[i] === QTYPE_AAAA ? L.NODE_REC_AAAA : L.NODE_REC_A)];
    at[i] = qtype[i] === QTYPE_A || qtype[i] === QTYPE_AAAA ? rec - 1 : -1;
  }
  // 3. Records: their per-record routing state, decision counter and answer fragments (REC_FRAG_BASE).
  for (let i = 0; i < count; i++) {
    const rec = at[i];
    if (rec < 0) continue;
    const rb = view.recordBase(rec);
    sink += route.listEpoch(rec);
    const statId = u32[rb + L.REC_STAT_ID];
    if (statId < ctx.decisions.length) sink += ctx.decisions[statId];
    if (u32[rb + L.REC_FRAG_LEN] !== 0) sink += u8[u32[rb + L.REC_FRAG_BASE]];
  }
  // 4. The healthy list, read only when some member is not listed (else rotate() does not read it).
  for (let i = 0; i < count; i++) {
    const rec = at[i];
    if (rec < 0) continue;
    const rb = view.recordBase(rec);
    if (route.listLength(rec) !== u32[rb + L.REC_MEMBER_COUNT]) sink += route.healthy[u32[rb + L.REC_MEMBER_START]];
  }
  return sink;
}
