// Worker, hot path. Picks the servers of one record for one answer: the
// routing policies round-robin, weighted and failover (and static data) over
// the snapshot's member lists and the live health slots. No I/O, no allocation
// per query.
//
// Health is read through a per-worker cache: for each record we keep the list
// of healthy members (and, for weighted, their cumulative weights) and the
// health epoch it was computed at. The main thread bumps the epoch after every
// health write, so the first query after a flip recomputes the list in O(n)
// and every later query is O(1) (O(log n) for weighted). A name with 1 000
// servers therefore costs what a name with 3 costs, until health changes.

import * as L from '../snapshot/layout.ts';
import { HEALTH_HEALTHY, LIVE_EPOCH, LIVE_HEALTH_BASE } from '../snapshot/live-slots.ts';
import type { SnapshotView } from '../snapshot/reader.ts';

/** Per-worker routing state for one attached snapshot. Create on attach; reuse for every query. */
export class RouteState {
  readonly view: SnapshotView;
  readonly live: Int32Array;
  /** Health epoch each record's cache was built at; -1 = never. */
  readonly epochOf: Int32Array;
  /** Healthy member count per record (for weighted: members with weight > 0). */
  readonly healthyCount: Int32Array;
  /** Member indexes of healthy members, at each record's REC_MEMBER_START. */
  readonly healthy: Int32Array;
  /** Cumulative weights for weighted records, parallel to `healthy`. */
  readonly cumWeight: Float64Array;
  /** Round-robin position per record; each worker rotates on its own. */
  readonly rotor: Uint32Array;
  /** Members already chosen in the current answer (weighted sampling without replacement). */
  readonly picked: Int32Array;

  constructor(view: SnapshotView, live: Int32Array) {
    this.view = view;
    this.live = live;
    this.epochOf = new Int32Array(view.recordCount).fill(-1);
    this.healthyCount = new Int32Array(view.recordCount);
    this.healthy = new Int32Array(view.memberCount);
    this.cumWeight = new Float64Array(view.memberCount);
    this.rotor = new Uint32Array(view.recordCount);
    this.picked = new Int32Array(L.MAX_ANSWERS_LIMIT);
  }
}

/** Rebuilds record `r`'s healthy list from the live slots. */
function refresh(state: RouteState, r: number, epoch: number): void {
  const u32 = state.view.u32;
  const live = state.live;
  const rb = state.view.recordBase(r);
  const start = u32[rb + L.REC_MEMBER_START];
  const count = u32[rb + L.REC_MEMBER_COUNT];
  const policy = u32[rb + L.REC_POLICY];
  let n = 0;
  let total = 0;
  for (let i = 0; i < count; i++) {
    const mb = state.view.memberBase(start + i);
    const slot = u32[mb + L.MEM_HEALTH_SLOT];
    if (slot !== L.NO_SLOT && Atomics.load(live, LIVE_HEALTH_BASE + slot) !== HEALTH_HEALTHY) continue;
    if (policy === L.POLICY_WEIGHTED) {
      const w = u32[mb + L.MEM_WEIGHT];
      // Weight 0 takes a server out of weighted answers entirely (Route 53 semantics).
      if (w === 0) continue;
      total += w;
      state.cumWeight[start + n] = total;
    }
    state.healthy[start + n] = start + i;
    n++;
  }
  state.healthyCount[r] = n;
  state.epochOf[r] = epoch;
}

/**
 * Chooses up to the record's max_answers distinct members for one answer and
 * writes their member indexes to `out` (length ≥ MAX_ANSWERS_LIMIT), in
 * policy order. Returns how many were written; 0 means no healthy member.
 */
export function selectMembers(state: RouteState, r: number, out: Int32Array): number {
  const u32 = state.view.u32;
  const rb = state.view.recordBase(r);
  const epoch = Atomics.load(state.live, LIVE_EPOCH);
  if (state.epochOf[r] !== epoch) refresh(state, r, epoch);
  const n = state.healthyCount[r];
  if (n === 0) return 0;
  const start = u32[rb + L.REC_MEMBER_START];
  const want = u32[rb + L.REC_MAX_ANSWERS];
  const k = want < n ? want : n;
  const healthy = state.healthy;
  switch (u32[rb + L.REC_POLICY]) {
    case L.POLICY_ROUND_ROBIN: {
      const first = state.rotor[r] % n;
      state.rotor[r] = state.rotor[r] + 1;
      for (let i = 0; i < k; i++) {
        let j = first + i;
        if (j >= n) j -= n;
        out[i] = healthy[start + j];
      }
      return k;
    }
    case L.POLICY_WEIGHTED:
      return pickWeighted(state, start, n, k, out);
    default:
      // Failover and static: members are stored in priority order.
      for (let i = 0; i < k; i++) out[i] = healthy[start + i];
      return k;
  }
}

/** Weighted random sampling without replacement; the first pick is a binary search over cumulative weights. */
function pickWeighted(state: RouteState, start: number, n: number, k: number, out: Int32Array): number {
  const cum = state.cumWeight;
  const total = cum[start + n - 1];
  const target = Math.random() * total;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[start + mid] > target) hi = mid;
    else lo = mid + 1;
  }
  out[0] = state.healthy[start + lo];
  if (k === 1) return 1;
  const picked = state.picked;
  picked[0] = lo;
  let pickedWeight = weightAt(cum, start, lo);
  for (let p = 1; p < k; p++) {
    // Draw from the weight that is left, walking past members already chosen.
    let t = Math.random() * (total - pickedWeight);
    let chosen = -1;
    for (let i = 0; i < n; i++) {
      let already = false;
      for (let q = 0; q < p; q++) if (picked[q] === i) already = true;
      if (already) continue;
      const w = weightAt(cum, start, i);
      chosen = i;
      if (t < w) break;
      t -= w;
    }
    picked[p] = chosen;
    pickedWeight += weightAt(cum, start, chosen);
    out[p] = state.healthy[start + chosen];
  }
  return k;
}

function weightAt(cum: Float64Array, start: number, i: number): number {
  return i === 0 ? cum[start] : cum[start + i] - cum[start + i - 1];
}
