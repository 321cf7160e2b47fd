// Worker, hot path (batched UDP only). Warms the CPU caches for a whole batch
// before it is answered: every address query of the batch walks the same
// chain of dependent loads (node row → record row, its routing state and its
// answer fragments), and for a name not answered recently each link is a
// cache miss, and on this kind of virtual machine a TLB miss as well.
// Answered one by one, the misses of a batch wait one after the other; here
// each link is loaded for every query of the batch in one loop, so the CPU
// has the batch's independent misses in flight together ("group
// prefetching"). JavaScript has no prefetch instruction: a load that misses
// holds its place in the CPU's reorder window until its line arrives, so each
// loop does as little else as it can (no copy, no branch on what a missing
// load brings) to keep more of the batch's loads inside that window.
// Read-only: it changes nothing and decides nothing, and a query it cannot
// follow (malformed, another qtype, a name away from its home row) is simply
// not warmed; handleQuery then answers every query as it would anyway.
//
// Measured (names-10k, shuffled, 1 worker): see docs/benchmarks.md.

import { FNV_OFFSET, hashFoldedByte } from '../src/dns/names.ts';
import * as L from '../src/snapshot/layout.ts';
import type { WorkerScratch } from './scratch.ts';

/** Longest wire name (RFC 1035 §2.3.4). */
const MAX_NAME = 255;
const QTYPE_A = 1;
const QTYPE_AAAA = 28;
/**
 * Bytes of answer fragments warmed per name: three A answers, the common
 * case. 48 bytes at any offset cross a 64-byte line three times in four,
 * so both ends are touched.
 */
const WARM_FRAG_BYTES = 3 * L.FRAG_LEN_A;

/** Per-batch scratch for prefetchBatch: a few words per slot, allocated once. */
export class PrefetchScratch {
  /** Per slot, the word of the home node row's record field for the asked type (NODE_REC_A or NODE_REC_AAAA); −1 = not followed. */
  readonly recWord: Int32Array;
  /** Per slot, the record index that field names; −1 = none, or not followed. */
  readonly rec: Int32Array;
  /** Per slot, the blob offset right after the row's name: its first record's answer fragments. */
  readonly frag: Int32Array;
  /**
   * Per slot, hashWire() of the question name lower-cased (what the lookup
   * computes from the parsed name) as an int32, for handleQuery's
   * `qnameHash`; -1 when the name was not followed to its end (malformed,
   * compressed, another question count), or its hash is 0xffffffff: the
   * lookup hashes it then. Valid for the batch prefetchBatch was last called
   * with. Int32, not uint32: an int32 passes through calls and fields
   * without being boxed as a heap number.
   */
  readonly hash: Int32Array;

  constructor(batch: number) {
    this.recWord = new Int32Array(batch);
    this.rec = new Int32Array(batch);
    this.frag = new Int32Array(batch);
    this.hash = new Int32Array(batch);
  }
}

/**
 * For a plain one-question A or AAAA query in req[0, len), returns the word
 * index of the record field of the question name's home row in the node
 * table (the row the name hashes to; a name further along its probe is not
 * followed); else −1. Writes the name's hash to hashes[slot] (any qtype), or
 * −1 when it stops before the name's end. Reads only the packet: bounded, no
 * pointers.
 */
function homeRecordWord(ctx: WorkerScratch, req: Uint8Array, len: number, hashes: Int32Array, slot: number): number {
  hashes[slot] = -1;
  if (len < 17 || (req[2] & 0x80) !== 0 || req[4] !== 0 || req[5] !== 1) return -1;
  let h = FNV_OFFSET;
  let off = 12;
  for (;;) {
    if (off >= len) return -1;
    const labelLen = req[off];
    if (labelLen > 63 || off + labelLen + 1 - 12 > MAX_NAME || off + labelLen + 1 > len) return -1;
    h = hashFoldedByte(h, labelLen);
    off++;
    if (labelLen === 0) break;
    const end = off + labelLen;
    for (; off < end; off++) h = hashFoldedByte(h, req[off]);
  }
  if (off + 4 > len) return -1;
  hashes[slot] = h;
  const qtype = (req[off] << 8) | req[off + 1];
  if (qtype !== QTYPE_A && qtype !== QTYPE_AAAA) return -1;
  const view = ctx.view;
  return view.nodeBase((h >>> 0) & view.slotMask) + (qtype === QTYPE_A ? L.NODE_REC_A : L.NODE_REC_AAAA);
}

/**
 * Touches the snapshot and routing state that answering rx[0 … count−1]
 * will read, one link of the chain at a time across the whole batch.
 * `lens[i × lenStride]` is slot i's datagram length. Returns a value only so
 * the loads are not optimised away; callers ignore it.
 */
export function prefetchBatch(ctx: WorkerScratch, p: PrefetchScratch, rx: readonly Uint8Array[], lens: Int32Array, lenStride: number, count: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const recWord = p.recWord;
  const rec = p.rec;
  const frag = p.frag;
  // 1. Home rows (the packets are hot: just received).
  const hashes = p.hash;
  for (let i = 0; i < count; i++) recWord[i] = homeRecordWord(ctx, rx[i], lens[i * lenStride], hashes, i);
  // 2. Node rows: one miss each, nothing decided on what they hold. A row of
  // another name (a collision) or an empty one warms lines nobody reads. The
  // node table starts on a 64-byte line, so a row's first word is the field's
  // word with the low bits cleared.
  for (let i = 0; i < count; i++) {
    const w = recWord[i];
    if (w < 0) {
      rec[i] = -1;
      continue;
    }
    const nb = w & ~(L.NODE_WORDS - 1);
    rec[i] = u32[w] - 1;
    frag[i] = u32[nb + L.NODE_NAME_OFF] + u32[nb + L.NODE_NAME_LEN];
  }
  // 3. Record rows, routing state and fragments, independent of one another.
  const u8 = view.u8;
  const route = ctx.route;
  const lastByte = u8.length - 1;
  let sink = 0;
  for (let i = 0; i < count; i++) {
    const r = rec[i];
    if (r < 0) continue;
    const f = frag[i];
    sink += u32[view.recordBase(r)] + route.listEpoch(r) + u8[f] + u8[Math.min(f + WARM_FRAG_BYTES - 1, lastByte)];
  }
  return sink;
}
