// Worker, hot path. Picks the servers of one record for one answer: the
// routing policies round-robin, weighted, failover, latency, geolocation and
// sticky (and static data) over the snapshot's member lists and the live health and latency
// slots, plus what to answer when every member is down (when_all_down). No
// I/O, no allocation per query.
//
// The rules are small exported steps that say what they decided with a
// numeric code: which members may be answered (healthyVerdict), which a
// when_all_down mode answers instead (newestLastUp, allDownVerdict), and when
// latency ranks (latencyCutoff). selectMembers() is built from them, and so is
// the main thread's explain (src/overwatch/explain.ts), which runs these same
// functions over its own RouteState: there is one copy of every rule.
//
// Health is read through a per-worker cache: for each record we keep the list
// of answerable members (and, for weighted, their cumulative weights) and the
// health epoch it was computed at. The main thread bumps the epoch after every
// health write, so the first query after a flip recomputes the list in O(n)
// and every later query is O(1) for round-robin and failover, O(log n) for
// weighted's first pick (each further pick of a max_answers > 1 weighted answer
// walks the list, O(n·k)). Latency reads the live EMAs of the cached list on
// every query, O(n): the EMAs move with every check and do not bump the epoch.
//
// When no member is healthy, the same cache holds the list when_all_down asks
// for (every member, or those up most recently), so the degraded path costs
// what the normal one does; `degraded[r]` says which mode produced the list.

import { decideRegion, decideWithoutAddress, GeoDecision, MATCH_CUSTOM, MATCH_DEFAULT } from '../geo/cidr-table.ts';
import { isV4Mapped, type GeoIpReader } from '../geo/lookup.ts';
import * as L from '../snapshot/layout.ts';
import { HEALTH_DRAINED, HEALTH_HEALTHY, HEALTH_UNKNOWN, LIVE_CAPACITY, LIVE_EPOCH, LIVE_HEALTH_BASE, lastUpWord, latencyWord } from '../snapshot/live-slots.ts';
import type { SnapshotView } from '../snapshot/reader.ts';
import type { ClientAddress } from './client.ts';

/** degraded[r] value for a record with at least one healthy member. */
export const DEGRADED_NONE = -1;

// Verdicts on one member: LISTED, or why it is left out of the answerable list.
/** The member is in the record's answerable list. */
export const LISTED = 0;
/** Its health word says unhealthy (the checks' verdict for this domain). */
export const OUT_UNHEALTHY = 1;
/** No verdict yet. */
export const OUT_UNKNOWN = 2;
/** An operator override drained it; this holds even when when_all_down fails open. */
export const OUT_DRAINED = 3;
/**
 * Weight 0 under the weighted, geolocation and sticky policies: never
 * answered, this project's drain. Not Route 53's rule: Route 53 answers every
 * record alike when all of a name's weights are 0, where here such a domain
 * goes to when_all_down (config load warns about it: warnAllWeightZero).
 */
export const OUT_WEIGHT_ZERO = 4;
/** when_all_down: last_healthy: last up before the window of the most recent member (or never). */
export const OUT_STALE = 5;

/** Entries of each worker's sticky cache (direct-mapped by record and client network). */
const STICKY_CACHE_SIZE = 4096;

/** latencyCutoff() when latency does not rank: some listed member has fewer than min_samples samples. */
export const LATENCY_TOO_FEW_SAMPLES = -1;

/** Per-worker routing state for one attached snapshot. Create on attach; reuse for every query. */
/** RouteState.perRecord: the words of one record's routing state. */
const RS_EPOCH = 0;
const RS_COUNT = 1;
const RS_ROTOR = 2;
const RS_DEGRADED = 3;
const RS_WORDS = 4;

export class RouteState {
  readonly view: SnapshotView;
  readonly live: Int32Array;
  /**
   * Per record, RS_WORDS words side by side (one cache line holds four
   * records' state, so a query for a name not answered recently misses once
   * here, not once per word): RS_EPOCH the health epoch its list was built
   * at (-1 = never), RS_COUNT its answerable member count (for weighted:
   * members with weight > 0), RS_ROTOR its round-robin position (each
   * worker rotates on its own), RS_DEGRADED DEGRADED_NONE or the
   * ALL_DOWN_* mode that produced its list. Read through the methods below.
   */
  readonly perRecord: Int32Array;
  /** Member indexes of answerable members, at each record's REC_MEMBER_START. */
  readonly healthy: Int32Array;
  /** Cumulative weights for weighted records, parallel to `healthy`. */
  readonly cumWeight: Float64Array;
  /** Members already chosen in the current answer (sampling without replacement). */
  readonly picked: Int32Array;
  /** Geolocation: per group (GRP_*), where its members end in the record's answerable list. */
  readonly groupEnd: Int32Array;
  /** The GeoIP database the worker reads (shared memory), or null: then only custom mappings and default_region decide. */
  geo: GeoIpReader | null = null;
  /** The last geolocation decision (region, how, ECS scope). */
  readonly decision = new GeoDecision();
  /** After a geolocation answer: the routing-decision counter ids to count it under (NO_SLOT: none). */
  geoStat = L.NO_SLOT;
  geoFallbackStat = L.NO_SLOT;
  /** After a geolocation or sticky answer: the ECS SCOPE PREFIX-LENGTH it holds for (RFC 7871 §7.2.1); 0 when no ECS decided it. */
  ecsScope = 0;
  /** Sticky: a hash of each member's address (its answer's RDATA), filled when its record's list is built; the same on every worker and overwatch. */
  readonly memberHash: Uint32Array;
  /** Sticky: the client network of the last pick (hashClientNetwork). */
  clientHash = 0;
  /** Sticky, max_answers 1: record, client network, list epoch and member of recent answers, direct-mapped by (record, network). */
  readonly stickyRecord: Int32Array;
  readonly stickyClient: Uint32Array;
  readonly stickyEpoch: Int32Array;
  readonly stickyMember: Int32Array;
  /** Sticky, max_answers > 1: the scores of the best members so far, parallel to the answer being built. */
  readonly topScore: Float64Array;
  /**
   * Weighted: the state of this worker's xorshift32 draws (nonzero). In a
   * typed array, so a draw allocates nothing: Math.random() returns a fresh
   * heap number (16 bytes), the only allocation a query made.
   */
  readonly rng = new Uint32Array(1);

  constructor(view: SnapshotView, live: Int32Array) {
    this.view = view;
    this.live = live;
    this.perRecord = new Int32Array(view.recordCount * RS_WORDS);
    for (let r = 0; r < view.recordCount; r++) {
      this.perRecord[r * RS_WORDS + RS_EPOCH] = -1;
      this.perRecord[r * RS_WORDS + RS_DEGRADED] = DEGRADED_NONE;
    }
    this.healthy = new Int32Array(view.memberCount);
    this.cumWeight = new Float64Array(view.memberCount);
    this.picked = new Int32Array(L.MAX_ANSWERS_LIMIT);
    this.groupEnd = new Int32Array(view.u32[L.HDR_GROUP_COUNT]);
    this.memberHash = new Uint32Array(view.memberCount);
    this.stickyRecord = new Int32Array(STICKY_CACHE_SIZE).fill(-1);
    this.stickyClient = new Uint32Array(STICKY_CACHE_SIZE);
    this.stickyEpoch = new Int32Array(STICKY_CACHE_SIZE);
    this.stickyMember = new Int32Array(STICKY_CACHE_SIZE);
    this.topScore = new Float64Array(L.MAX_ANSWERS_LIMIT);
    // Seeded once per attach; any nonzero state runs through all 2^32 − 1 others.
    this.rng[0] = (Math.random() * 0xffffffff) >>> 0 || 1;
    // Each record's rotation starts at a random place: started at 0, every
    // worker's first answer after every snapshot (a reload, an agent's
    // backend, a key) was the first server, so a name asked less often than
    // snapshots change went to one server only.
    for (let r = 0; r < view.recordCount; r++) this.perRecord[r * RS_WORDS + RS_ROTOR] = this.draw() * 4294967296; // stored modulo 2^32
  }

  /** A uniform draw in [0, 1) for the weighted policy (xorshift32, Marsaglia 2003). Allocation-free. */
  draw(): number {
    let x = this.rng[0];
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng[0] = x;
    return this.rng[0] / 4294967296;
  }

  /** The health epoch record `r`'s list was built at; -1 = never. */
  listEpoch(r: number): number {
    return this.perRecord[r * RS_WORDS + RS_EPOCH];
  }

  /** How many members record `r`'s answerable list holds. */
  listLength(r: number): number {
    return this.perRecord[r * RS_WORDS + RS_COUNT];
  }

  /** DEGRADED_NONE, or the ALL_DOWN_* mode that produced record `r`'s list. */
  degradedMode(r: number): number {
    return this.perRecord[r * RS_WORDS + RS_DEGRADED];
  }

  /** Record `r`'s round-robin position, which moves one step (unsigned, wrapping at 2^32). */
  nextRotor(r: number): number {
    const at = r * RS_WORDS + RS_ROTOR;
    const rotor = this.perRecord[at];
    this.perRecord[at] = (rotor + 1) | 0;
    return rotor >>> 0;
  }

  /** Sets record `r`'s round-robin position (explain replays answers from a chosen one). */
  setRotor(r: number, rotor: number): void {
    this.perRecord[r * RS_WORDS + RS_ROTOR] = rotor | 0;
  }
}

/** Does policy `policy` pick by weight (so weight 0 is never answered)? Weighted, geolocation within a region, and sticky. */
export function byWeight(policy: number): boolean {
  return policy === L.POLICY_WEIGHTED || policy === L.POLICY_GEOLOCATION || policy === L.POLICY_STICKY;
}

/**
 * Rule 1: may the member whose words start at `mb` be answered while its
 * record has healthy members? LISTED, or OUT_UNHEALTHY / OUT_UNKNOWN /
 * OUT_DRAINED (its health word) / OUT_WEIGHT_ZERO (weighted only).
 * Static data (NO_SLOT) is always listed.
 */
export function healthyVerdict(state: RouteState, mb: number, weighted: boolean): number {
  const u32 = state.view.u32;
  const slot = u32[mb + L.MEM_HEALTH_SLOT];
  if (slot !== L.NO_SLOT) {
    const health = Atomics.load(state.live, LIVE_HEALTH_BASE + slot);
    if (health !== HEALTH_HEALTHY) return health === HEALTH_DRAINED ? OUT_DRAINED : health === HEALTH_UNKNOWN ? OUT_UNKNOWN : OUT_UNHEALTHY;
  }
  return weighted && u32[mb + L.MEM_WEIGHT] === 0 ? OUT_WEIGHT_ZERO : LISTED;
}

/**
 * Rule 2a: the last-up word when_all_down: last_healthy counts back from:
 * the newest over the record's members it may answer, those an override does
 * not drain and, when `weighted` (byWeight), of weight above 0 (such a member
 * is never answered, so its last-up must not push the others out of the
 * window); 0 when none of them has been healthy since the overwatch started
 * (nothing to fall back on).
 */
export function newestLastUp(state: RouteState, start: number, count: number, weighted: boolean): number {
  const u32 = state.view.u32;
  const live = state.live;
  const cap = live[LIVE_CAPACITY];
  let newest = 0;
  for (let i = 0; i < count; i++) {
    const mb = state.view.memberBase(start + i);
    if (weighted && u32[mb + L.MEM_WEIGHT] === 0) continue;
    if (Atomics.load(live, LIVE_HEALTH_BASE + u32[mb + L.MEM_HEALTH_SLOT]) === HEALTH_DRAINED) continue;
    const up = Atomics.load(live, lastUpWord(cap, u32[mb + L.MEM_SERVER]));
    if (up > newest) newest = up;
  }
  return newest;
}

/**
 * Rule 2b: with no member healthy, is member `mb` answered by the fail-open
 * mode `mode` (ALL_DOWN_LAST_HEALTHY or ALL_DOWN_ALL)? `oldest` is the
 * earliest last-up word last_healthy accepts. LISTED, or OUT_DRAINED (a drain
 * holds even when failing open), OUT_STALE, OUT_WEIGHT_ZERO.
 */
export function allDownVerdict(state: RouteState, mb: number, mode: number, oldest: number, weighted: boolean): number {
  const u32 = state.view.u32;
  const live = state.live;
  if (Atomics.load(live, LIVE_HEALTH_BASE + u32[mb + L.MEM_HEALTH_SLOT]) === HEALTH_DRAINED) return OUT_DRAINED;
  if (mode === L.ALL_DOWN_LAST_HEALTHY && Atomics.load(live, lastUpWord(live[LIVE_CAPACITY], u32[mb + L.MEM_SERVER])) < oldest) return OUT_STALE;
  return weighted && u32[mb + L.MEM_WEIGHT] === 0 ? OUT_WEIGHT_ZERO : LISTED;
}

/**
 * Rebuilds record `r`'s answerable list from the live slots (rule 1), falling
 * back to its when_all_down list (rule 2) when none is healthy, and stamps it
 * with the current epoch. Afterwards `healthyCount[r]` members are listed from
 * `healthy[REC_MEMBER_START]` and `degraded[r]` says whether a mode produced
 * them. Explain calls it on its own RouteState.
 */
export function refreshList(state: RouteState, r: number): void {
  // The epoch is read before any health word: a write that lands while we
  // read moves it on, and the next query rebuilds again.
  const epoch = Atomics.load(state.live, LIVE_EPOCH);
  const u32 = state.view.u32;
  const rb = state.view.recordBase(r);
  const start = u32[rb + L.REC_MEMBER_START];
  const count = u32[rb + L.REC_MEMBER_COUNT];
  const weighted = byWeight(u32[rb + L.REC_POLICY]);
  let n = 0;
  for (let i = 0; i < count; i++) {
    const mb = state.view.memberBase(start + i);
    if (healthyVerdict(state, mb, weighted) === LISTED) n = listMember(state, start, n, i, mb, weighted);
  }
  state.perRecord[r * RS_WORDS + RS_DEGRADED] = DEGRADED_NONE;
  if (n === 0 && count > 0) n = refreshAllDown(state, r, rb, start, count, weighted);
  if (u32[rb + L.REC_GROUP_COUNT] !== 0) groupList(state, rb, start, n);
  if (u32[rb + L.REC_POLICY] === L.POLICY_STICKY) hashMembers(state, rb, start, count);
  state.perRecord[r * RS_WORDS + RS_COUNT] = n;
  state.perRecord[r * RS_WORDS + RS_EPOCH] = epoch;
}

/**
 * Geolocation: splits record `rb`'s answerable list (members stored in
 * region order, so each region's are contiguous) into its region groups:
 * groupEnd[g] is where group g's entries end, and the cumulative weights
 * start again at each group, so one region is a weighted list of its own.
 */
function groupList(state: RouteState, rb: number, start: number, n: number): void {
  const view = state.view;
  const u32 = view.u32;
  const first = u32[rb + L.REC_GROUP_START];
  const count = u32[rb + L.REC_GROUP_COUNT];
  let j = 0;
  for (let g = 0; g < count; g++) {
    const end = start + u32[view.groupBase(first + g) + L.GRP_MEMBER_END];
    let cum = 0;
    while (j < n && state.healthy[start + j] < end) {
      cum += u32[view.memberBase(state.healthy[start + j]) + L.MEM_WEIGHT];
      state.cumWeight[start + j] = cum;
      j++;
    }
    state.groupEnd[first + g] = j;
  }
}

/** Fills record `r`'s list per its when_all_down mode; returns the list length (0 = SERVFAIL, or the fallback members). */
function refreshAllDown(state: RouteState, r: number, rb: number, start: number, count: number, weighted: boolean): number {
  const mode = state.view.u32[rb + L.REC_ALL_DOWN];
  state.perRecord[r * RS_WORDS + RS_DEGRADED] = mode;
  if (mode === L.ALL_DOWN_SERVFAIL || mode === L.ALL_DOWN_FALLBACK) return 0;
  let oldest = 0;
  if (mode === L.ALL_DOWN_LAST_HEALTHY) {
    const newest = newestLastUp(state, start, count, weighted);
    if (newest === 0) return 0;
    oldest = newest - state.view.u32[rb + L.REC_LAST_UP_WINDOW];
  }
  let n = 0;
  for (let i = 0; i < count; i++) {
    const mb = state.view.memberBase(start + i);
    if (allDownVerdict(state, mb, mode, oldest, weighted) === LISTED) n = listMember(state, start, n, i, mb, weighted);
  }
  return n;
}

/**
 * Appends member `start + i` (member words at `mb`) as entry `n` of the
 * record's answerable list, with its cumulative weight when weighted; returns
 * the new length.
 */
function listMember(state: RouteState, start: number, n: number, i: number, mb: number, weighted: boolean): number {
  if (weighted) state.cumWeight[start + n] = (n === 0 ? 0 : state.cumWeight[start + n - 1]) + state.view.u32[mb + L.MEM_WEIGHT];
  state.healthy[start + n] = start + i;
  return n + 1;
}

/**
 * Chooses up to the record's max_answers distinct members for one answer to
 * `client` and writes their member indexes to `out` (length ≥
 * MAX_ANSWERS_LIMIT), in policy order. Returns how many were written; 0 means
 * SERVFAIL. After the call, `state.degradedMode(r)` tells whether (and how)
 * when_all_down answered; after a geolocation answer, `state.decision` holds
 * the decision (its scopeLen is the ECS scope) and `state.geoStat` /
 * `state.geoFallbackStat` the counters to count it under.
 */
export function selectMembers(state: RouteState, r: number, out: Int32Array, client: ClientAddress | null): number {
  const u32 = state.view.u32;
  const rb = state.view.recordBase(r);
  state.ecsScope = 0;
  if (state.listEpoch(r) !== Atomics.load(state.live, LIVE_EPOCH)) refreshList(state, r);
  const n = state.listLength(r);
  const want = u32[rb + L.REC_MAX_ANSWERS];
  if (n === 0) {
    if (state.degradedMode(r) !== L.ALL_DOWN_FALLBACK) return 0;
    // No region decided these addresses: the counters of the last geolocation answer (another query's) must not count again.
    state.geoStat = L.NO_SLOT;
    state.geoFallbackStat = L.NO_SLOT;
    const fallbackStart = u32[rb + L.REC_FALLBACK_START];
    const fallbackCount = u32[rb + L.REC_FALLBACK_COUNT];
    const k = want < fallbackCount ? want : fallbackCount;
    for (let i = 0; i < k; i++) out[i] = fallbackStart + i;
    return k;
  }
  const start = u32[rb + L.REC_MEMBER_START];
  const k = want < n ? want : n;
  switch (u32[rb + L.REC_POLICY]) {
    case L.POLICY_ROUND_ROBIN:
      return rotate(state, r, start, n, u32[rb + L.REC_MEMBER_COUNT], k, out);
    case L.POLICY_WEIGHTED:
      return pickWeighted(state, start, n, k, out);
    case L.POLICY_LATENCY:
      return pickLatency(state, r, rb, start, n, k, out);
    case L.POLICY_GEOLOCATION:
      return pickGeo(state, rb, start, want, out, client);
    case L.POLICY_STICKY:
      return pickSticky(state, r, rb, start, n, k, out, client);
    default:
      // Failover and static: members are stored in priority order.
      for (let i = 0; i < k; i++) out[i] = state.healthy[start + i];
      return k;
  }
}

/**
 * Round-robin over the first `n` listed members: `k` consecutive ones from
 * the rotor's position, which moves one step. When every one of the record's
 * `count` members is listed, the list is the members in order (listMember
 * appends them so), and it is not read: one cache line fewer per answer for
 * a name not asked recently.
 */
function rotate(state: RouteState, r: number, start: number, n: number, count: number, k: number, out: Int32Array): number {
  const first = state.nextRotor(r) % n;
  const all = n === count;
  for (let i = 0; i < k; i++) {
    let j = first + i;
    if (j >= n) j -= n;
    out[i] = all ? start + j : state.healthy[start + j];
  }
  return k;
}

/** The lowest latency EMA (µs) among the `n` listed members of a record. */
export function fastestEma(state: RouteState, start: number, n: number): number {
  const cap = state.live[LIVE_CAPACITY];
  let best = 0x7fffffff;
  for (let i = 0; i < n; i++) {
    const ema = emaOf(state, cap, state.healthy[start + i]);
    if (ema < best) best = ema;
  }
  return best;
}

/**
 * Rule 3: does latency rank record `rb`'s `n` listed members? Returns the
 * cutoff EMA in µs (members at or below it are tied for first place), or
 * LATENCY_TOO_FEW_SAMPLES while some listed member has fewer than
 * min_samples samples (the record then rotates). Members above max latency
 * are cut while any member is below it; when all are above, the fastest
 * tier still serves.
 */
export function latencyCutoff(state: RouteState, rb: number, start: number, n: number): number {
  const u32 = state.view.u32;
  const live = state.live;
  const cap = live[LIVE_CAPACITY];
  const minSamples = u32[rb + L.REC_MIN_SAMPLES];
  for (let i = 0; i < n; i++) {
    const word = latencyWord(cap, u32[state.view.memberBase(state.healthy[start + i]) + L.MEM_SERVER]);
    if (Atomics.load(live, word + 1) < minSamples) return LATENCY_TOO_FEW_SAMPLES;
  }
  const best = fastestEma(state, start, n);
  const maxLatency = u32[rb + L.REC_MAX_LATENCY_US];
  const tie = u32[rb + L.REC_TIE_MARGIN_US];
  return best > maxLatency ? best + tie : Math.min(best + tie, maxLatency);
}

/**
 * Latency: the member with the lowest EMA; members within the tie margin of
 * it share answers round-robin (the rotor picks which leads); further picks
 * (max_answers > 1) follow in ascending EMA order (fillByLatency), none
 * above max latency while any member is at or below it, so an answer may
 * carry fewer than max_answers. While latency does not rank (too few
 * samples, or a when_all_down list), it answers round-robin.
 */
function pickLatency(state: RouteState, r: number, rb: number, start: number, n: number, k: number, out: Int32Array): number {
  const count = state.view.u32[rb + L.REC_MEMBER_COUNT];
  if (state.degradedMode(r) !== DEGRADED_NONE) return rotate(state, r, start, n, count, k, out);
  const cutoff = latencyCutoff(state, rb, start, n);
  if (cutoff === LATENCY_TOO_FEW_SAMPLES) return rotate(state, r, start, n, count, k, out);
  const cap = state.live[LIVE_CAPACITY];
  let ties = 0;
  for (let i = 0; i < n; i++) {
    if (emaOf(state, cap, state.healthy[start + i]) <= cutoff) ties++;
  }
  // The main thread writes the EMAs while we read them (each loop reads them
  // afresh), so a member counted as tied above may be above the cutoff by the
  // loop below, and ties may even be 0: out[0] then keeps a listed member, not
  // the previous query's pick (another record's member, a malformed answer).
  let nth = ties === 0 ? 0 : state.nextRotor(r) % ties;
  out[0] = state.healthy[start];
  for (let i = 0; i < n; i++) {
    const m = state.healthy[start + i];
    if (emaOf(state, cap, m) <= cutoff && nth-- === 0) {
      out[0] = m;
      break;
    }
  }
  if (k === 1) return 1;
  // latencyCutoff() is at or below max latency exactly when some member is:
  // then the ceiling also bounds the rest of the answer, as docs/routing.md
  // says (resolvers may hand out any record of it). When every member is
  // above, nothing is cut.
  const maxLatency = state.view.u32[rb + L.REC_MAX_LATENCY_US];
  return fillByLatency(state, start, n, k, cutoff <= maxLatency ? maxLatency : 0x7fffffff, out);
}

/**
 * Rule 4: with out[0] chosen, fills out[1..k) with the listed members of
 * lowest EMA not already in the answer (the first in list order on equal
 * EMAs), leaving out members whose EMA is above `limitUs`. Returns the number
 * of members in `out`: k, or fewer when the limit leaves too few.
 */
export function fillByLatency(state: RouteState, start: number, n: number, k: number, limitUs: number, out: Int32Array): number {
  const cap = state.live[LIVE_CAPACITY];
  const picked = state.picked;
  picked[0] = out[0];
  for (let p = 1; p < k; p++) {
    let choice = -1;
    let choiceEma = 0;
    for (let i = 0; i < n; i++) {
      const m = state.healthy[start + i];
      let already = false;
      for (let q = 0; q < p; q++) if (picked[q] === m) already = true;
      if (already) continue;
      const ema = emaOf(state, cap, m);
      if (ema > limitUs) continue;
      if (choice < 0 || ema < choiceEma) {
        choice = m;
        choiceEma = ema;
      }
    }
    if (choice < 0) return p;
    out[p] = choice;
    picked[p] = choice;
  }
  return k;
}

/** The live latency EMA (µs) of member `member`'s server. */
export function emaOf(state: RouteState, cap: number, member: number): number {
  return Atomics.load(state.live, latencyWord(cap, state.view.u32[state.view.memberBase(member) + L.MEM_SERVER]));
}

/**
 * Rule 5: the region a client maps to (src/geo/cidr-table.ts decideRegion:
 * custom CIDR by longest prefix > country > continent > default_region), on
 * the query's ECS address when it carries one and ecs_enabled is on, else on
 * the packet's source; an ECS SOURCE PREFIX-LENGTH of 0, an unknown source or
 * no client at all decide without an address (default_region, scope 0).
 * Returns the region index, or -1; the decision is in state.decision.
 */
export function decideClient(state: RouteState, client: ClientAddress | null): number {
  const view = state.view;
  const table = view.u32;
  const base = view.geoWord;
  const d = state.decision;
  if (client === null) return decideWithoutAddress(table, base, d);
  const q = client.query;
  if (q.ecsFamily !== 0 && view.ecsEnabled) {
    if (q.ecsSourcePrefix === 0) return decideWithoutAddress(table, base, d);
    return decideRegion(table, base, q.ecsAddr, 0, q.ecsFamily === 1 ? 4 : 16, state.geo, d);
  }
  const len = client.sourceBytes();
  if (len === 0) return decideWithoutAddress(table, base, d);
  return decideRegion(table, base, client.bytes, 0, len, state.geo, d);
}

/**
 * Rule 6: the region group of record `rb` that answers region `region`: its
 * position among the record's groups, or -1 when the domain does not list it.
 */
export function groupOf(state: RouteState, rb: number, region: number): number {
  const view = state.view;
  const first = view.u32[rb + L.REC_GROUP_START];
  const count = view.u32[rb + L.REC_GROUP_COUNT];
  for (let g = 0; g < count; g++) if (view.u32[view.groupBase(first + g) + L.GRP_REGION] === region) return g;
  return -1;
}

/**
 * Geolocation: decides the client's region (decideClient), then answers by
 * weight, up to max_answers, from that region's answerable members; when it
 * has none, from the next region in the domain's order that has some
 * (wrapping round to the domain's first); a region the domain does not list,
 * or no decision, starts at the domain's first region.
 */
function pickGeo(state: RouteState, rb: number, start: number, want: number, out: Int32Array, client: ClientAddress | null): number {
  const view = state.view;
  const u32 = view.u32;
  const region = decideClient(state, client);
  const first = u32[rb + L.REC_GROUP_START];
  const count = u32[rb + L.REC_GROUP_COUNT];
  let pos = region < 0 ? -1 : groupOf(state, rb, region);
  state.geoFallbackStat = L.NO_SLOT;
  // The scope speaks of the ECS address's networks: with ecs_enabled off the
  // packet's source decided (decideClient), so the answer is the same for
  // every client behind it (scope 0, as sticky says), whatever that source's
  // network was and whichever family it has.
  state.ecsScope = view.ecsEnabled ? state.decision.scopeLen : 0;
  if (pos >= 0) {
    const match = state.decision.match;
    state.geoStat = u32[view.groupBase(first + pos) + (match === MATCH_CUSTOM ? L.GRP_STAT_CUSTOM : match === MATCH_DEFAULT ? L.GRP_STAT_DEFAULT : L.GRP_STAT_GEOIP)];
  } else {
    state.geoStat = u32[rb + (region < 0 ? L.REC_GEO_STAT_UNDECIDED : L.REC_GEO_STAT_NOT_SERVED)];
    pos = 0;
  }
  for (let i = 0; i < count; i++) {
    let g = pos + i;
    if (g >= count) g -= count;
    const lo = g === 0 ? 0 : state.groupEnd[first + g - 1];
    const n = state.groupEnd[first + g] - lo;
    if (n === 0) continue;
    if (i > 0 && state.geoStat !== u32[rb + L.REC_GEO_STAT_UNDECIDED] && state.geoStat !== u32[rb + L.REC_GEO_STAT_NOT_SERVED]) {
      state.geoFallbackStat = u32[view.groupBase(first + pos) + L.GRP_STAT_FALLBACK];
    }
    return pickWeighted(state, start + lo, n, want < n ? want : n, out);
  }
  return 0;
}

/** Weighted random sampling without replacement; the first pick is a binary search over cumulative weights. */
function pickWeighted(state: RouteState, start: number, n: number, k: number, out: Int32Array): number {
  const cum = state.cumWeight;
  const total = cum[start + n - 1];
  const target = state.draw() * total;
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
    let t = state.draw() * (total - pickedWeight);
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

// ---- Sticky: weighted rendezvous hashing (highest random weight).
//
// Every (client network, member) pair gets a score w / -ln(u), u a uniform
// number in (0, 1) drawn from a hash of the two; the best-scoring members
// answer. A client keeps its server as long as that server is listed: when
// one of n equal servers fails, only its own clients (about 1/n) move, each to
// its second-best server, and they come back when it does. Every worker and
// every overwatch computes the same scores, so a client gets one answer
// whichever of them it asks. Clients spread over the members in proportion to
// their weights.

/** Sticky: hashes the address (or CNAME target) of each of record `rb`'s members (their RDATA bytes). */
function hashMembers(state: RouteState, rb: number, start: number, count: number): void {
  const view = state.view;
  const fixedLen = view.u32[rb + L.REC_FRAG_LEN] - 12;
  for (let i = 0; i < count; i++) {
    const off = view.u32[view.memberBase(start + i) + L.MEM_FRAG_OFF] + 12;
    // A CNAME pool (REC_FRAG_LEN 0): each target name is as long as its fragment's RDLENGTH says.
    const len = fixedLen >= 0 ? fixedLen : (view.u8[off - 2] << 8) | view.u8[off - 1];
    let h = 0x811c9dc5;
    for (let b = 0; b < len; b++) h = Math.imul(h ^ view.u8[off + b], 0x01000193);
    state.memberHash[start + i] = h >>> 0;
  }
}

/**
 * Rule 7: the client network sticky routing hashes: the query's ECS address
 * when it carries one and ecs_enabled is on (cut to the shorter of the
 * record's prefix length and the ECS source prefix), else the packet's
 * source cut to the record's prefix length. Sets state.clientHash and
 * state.ecsScope (the prefix the answer holds for; 0 without ECS). No client
 * at all, or an ECS source prefix of 0, hashes as one network.
 */
export function hashClientNetwork(state: RouteState, rb: number, client: ClientAddress | null): void {
  const u32 = state.view.u32;
  state.ecsScope = 0;
  if (client === null) {
    state.clientHash = mixBytes(0, null, 0);
    return;
  }
  const q = client.query;
  if (q.ecsFamily !== 0 && state.view.ecsEnabled) {
    if (q.ecsFamily === 2 && q.ecsSourcePrefix > 96 && isV4Mapped(q.ecsAddr, 0)) {
      // An IPv4-mapped ECS address (::ffff:a.b.c.d) is the IPv4 client it
      // maps, as for a dual-stack socket's source and for geolocation: cut to
      // ipv4_prefix, scope in IPv6 terms. Cut as IPv6 /56 instead, every such
      // client would hash as the one network ::/56 and get one server.
      const cut = u32[rb + L.REC_STICKY_V4_PREFIX];
      const v4 = q.ecsSourcePrefix - 96;
      const prefix = v4 < cut ? v4 : cut;
      state.ecsScope = prefix + 96;
      state.clientHash = mixBytes(4, q.ecsAddr, prefix, 12);
      return;
    }
    const len = q.ecsFamily === 1 ? 4 : 16;
    const cut = u32[rb + (len === 4 ? L.REC_STICKY_V4_PREFIX : L.REC_STICKY_V6_PREFIX)];
    const prefix = q.ecsSourcePrefix < cut ? q.ecsSourcePrefix : cut;
    state.ecsScope = prefix;
    state.clientHash = mixBytes(len, q.ecsAddr, prefix);
    return;
  }
  const len = client.sourceBytes();
  state.clientHash = mixBytes(len, client.bytes, len === 0 ? 0 : u32[rb + (len === 4 ? L.REC_STICKY_V4_PREFIX : L.REC_STICKY_V6_PREFIX)]);
}

/** FNV-1a over the family (address length), the prefix length and the first `prefix` bits of the address at bytes[off]. */
function mixBytes(len: number, bytes: Uint8Array | null, prefix: number, off = 0): number {
  let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
  h = Math.imul(h ^ prefix, 0x01000193);
  if (bytes === null) return h >>> 0;
  const whole = prefix >>> 3;
  for (let i = 0; i < whole; i++) h = Math.imul(h ^ bytes[off + i], 0x01000193);
  const bits = prefix & 7;
  if (bits !== 0) h = Math.imul(h ^ (bytes[off + whole] & (0xff << (8 - bits)) & 0xff), 0x01000193);
  return h >>> 0;
}

/** The rendezvous score of member `m` (weight `w`) for client network hash `client`: w / -ln(u), u in (0, 1) from both hashes. */
export function stickyScore(client: number, memberHash: number, w: number): number {
  // murmur3's finaliser over the pair: every input bit moves every output bit.
  let h = (client ^ Math.imul(memberHash, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16)) >>> 0;
  return w / -Math.log((h + 0.5) / 4294967296);
}

/**
 * Sticky: the `k` listed members with the best scores for the client's
 * network, best first. With k = 1 the answer is remembered per (record,
 * network) until the record's list changes, so a repeat client costs a hash
 * and a lookup; otherwise the scores cost O(n·k).
 */
function pickSticky(state: RouteState, r: number, rb: number, start: number, n: number, k: number, out: Int32Array, client: ClientAddress | null): number {
  hashClientNetwork(state, rb, client);
  const h = state.clientHash;
  const epoch = state.listEpoch(r);
  let slot = 0;
  if (k === 1) {
    slot = (Math.imul(h ^ r, 0x27d4eb2d) >>> 20) & (STICKY_CACHE_SIZE - 1);
    if (state.stickyRecord[slot] === r && state.stickyClient[slot] === h && state.stickyEpoch[slot] === epoch) {
      out[0] = state.stickyMember[slot];
      return 1;
    }
  }
  const u32 = state.view.u32;
  const top = state.topScore;
  let have = 0;
  for (let i = 0; i < n; i++) {
    const m = state.healthy[start + i];
    const score = stickyScore(h, state.memberHash[m], u32[state.view.memberBase(m) + L.MEM_WEIGHT]);
    if (have === k && score <= top[k - 1]) continue;
    // Insertion into the best-first list of at most k.
    let j = have < k ? have++ : k - 1;
    while (j > 0 && top[j - 1] < score) {
      top[j] = top[j - 1];
      out[j] = out[j - 1];
      j--;
    }
    top[j] = score;
    out[j] = m;
  }
  if (k === 1) {
    state.stickyRecord[slot] = r;
    state.stickyClient[slot] = h;
    state.stickyEpoch[slot] = epoch;
    state.stickyMember[slot] = out[0];
  }
  return have;
}
