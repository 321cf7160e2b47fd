// Any thread, hot on the worker side. Per-worker counters in one
// SharedArrayBuffer: worker i owns words [i*STRIDE, (i+1)*STRIDE) and bumps
// them with bump() (plain increments: each word has one writer); the main thread folds them into running totals and
// serves them through prom-client (src/metrics/prometheus.ts). Counters are
// uint32 and wrap; readers that keep totals must fold deltas modulo 2^32.
// No label is ever a qname or client IP.
//
//   one worker's stride (COUNTER_STRIDE words)
//   ┌──────────────┬──────────────────────────────┬─────────────────────────────┬─────────┐
//   │ COUNTER 0…63 │ type × rcode matrix          │ duration histograms         │ padding │
//   │ named slots  │ MATRIX_BASE, TYPE × RCODE    │ HIST_BASE: UDP, then TCP:   │ ≥ 64 B  │
//   │              │ words (index typeIdx*18+rc)  │ HIST_BUCKETS counts + sum µs│         │
//   └──────────────┴──────────────────────────────┴─────────────────────────────┴─────────┘
//
// Routing decisions are not in this buffer: their number grows with the
// domains, so each worker keeps them in a buffer of its own (see
// createDecisionCounters below and workers/dns-worker.ts).

/** Counter slots inside one worker's stride. */
export const COUNTER = {
  UDP_QUERIES: 0,
  TCP_QUERIES: 1,
  /** Packets shorter than a DNS header. */
  DROPPED_SHORT: 2,
  /** Packets with QR=1: responses are never answered. */
  DROPPED_RESPONSE: 3,
  /** UDP answers sent with TC=1 because they did not fit the client's size. */
  TRUNCATED: 4,
  /** Queries answered FORMERR because the packet was malformed. */
  MALFORMED: 5,
  /** Exceptions caught at the per-packet boundary (answered SERVFAIL). */
  EXCEPTIONS: 6,
  /** Queries for a name that had servers of the family but none healthy, whatever when_all_down answered. */
  ALL_DOWN: 7,
  EDNS_QUERIES: 8,
  ECS_QUERIES: 9,
  DO_QUERIES: 10,
  TCP_ACCEPTED: 11,
  /** TCP connections refused because the worker was at its connection cap. */
  TCP_REJECTED: 12,
  TCP_IDLE_CLOSED: 13,
  /** TCP connections closed for a zero-length frame (the stream cannot be resynchronised). Frames under 12 bytes count as DROPPED_SHORT. */
  TCP_BAD_FRAME: 14,
  /** UDP sends that failed (socket error reported to the send callback). */
  SEND_ERRORS: 15,
  /** Snapshot generation the worker serves (a gauge, not a counter). */
  SNAPSHOT_GENERATION: 16,
  /** All-down answers by when_all_down mode (ALL_DOWN counts every one of them). */
  ALL_DOWN_SERVFAIL: 17,
  ALL_DOWN_LAST_HEALTHY: 18,
  ALL_DOWN_ALL: 19,
  ALL_DOWN_FALLBACK: 20,
  /** DNSSEC: RRSIGs a worker served from its signature cache. */
  DNSSEC_CACHE_HITS: 21,
  /** DNSSEC: RRSIGs a worker did not find in its cache (or found stale), and signed itself. */
  DNSSEC_CACHE_MISSES: 22,
  /** DNSSEC: signatures a worker made (one per miss). */
  DNSSEC_SIGNATURES: 23,
  /** DNSSEC: time a worker spent signing, whole microseconds (wraps; fold it). */
  DNSSEC_SIGN_US: 24,
  /** DNSSEC: signatures made in advance by the CPU pool that a worker put into its cache. */
  DNSSEC_PRESIGNED: 25,
  /**
   * The worker's heartbeat (not a counter): bumped by an event-loop timer
   * every HEARTBEAT_INTERVAL_MS, so it stops moving while the thread is
   * blocked; the pool (src/overwatch/dns-pool.ts) terminates a worker whose
   * word has not moved within its deadline.
   */
  HEARTBEAT: 26,
  /** TCP connections closed to make room for a new one at the worker's cap: the one idle longest. */
  TCP_EVICTED: 40,
  /** TCP connections refused because their client network already had dns.tcp_max_connections_per_client open on the server (all workers together). */
  TCP_CLIENT_CAP: 41,
  /** Times a TCP connection stopped being read because its (or the worker's) unsent replies were over the bound. */
  TCP_READ_PAUSED: 42,
  /** TCP connections closed because a message that had started arriving did not complete within dns.tcp_frame_timeout. */
  TCP_FRAME_TIMEOUT: 43,
  /** Response rate limiting (dns.rrl): limited UDP responses sent truncated (TC=1), by kind (answers, NXDOMAIN, errors). */
  RRL_SLIPPED_RESPONSE: 44,
  RRL_SLIPPED_NXDOMAIN: 45,
  RRL_SLIPPED_ERROR: 46,
  /** Response rate limiting: limited UDP responses dropped, by kind. */
  RRL_DROPPED_RESPONSE: 47,
  RRL_DROPPED_NXDOMAIN: 48,
  RRL_DROPPED_ERROR: 49,
  /** DNS cookies: queries whose COOKIE option carried a valid server cookie of ours. */
  COOKIE_VALID: 50,
  /** DNS cookies: queries with a client cookie only. */
  COOKIE_CLIENT_ONLY: 51,
  /** DNS cookies: queries with a server cookie that is not ours, expired, or for another client address. */
  COOKIE_INVALID: 52,
  /** DNS cookies: queries answered FORMERR for a malformed COOKIE option (bad length). */
  COOKIE_MALFORMED: 53,
  /**
   * TCP connections accepted without a place in the shared per-client table
   * (their client's window full, the table's lock not had within its wait,
   * or no address): dns.tcp_max_connections_per_client did not count them.
   */
  TCP_CLIENT_UNCOUNTED: 54,
  /**
   * Queries a TCP client sent on a connection after its
   * dns.tcp_max_queries_per_connection-th, not answered: those already
   * received when the server ended the connection and those that arrived
   * after its FIN (counted from their length prefix; a partial one too).
   */
  TCP_QUERY_LIMIT_DROPPED: 55,
} as const;

/** How often a DNS worker bumps COUNTER.HEARTBEAT (ms). */
export const HEARTBEAT_INTERVAL_MS = 500;

/** Words before MATRIX_BASE reserved for COUNTER slots (0 … 26 and 40 … 55 used). */
const NAMED_WORDS = 64;

/**
 * Labels of the `type` dimension, by type index. The set is fixed so the
 * label can never grow: every QTYPE not listed is OTHER, and NONE stands for
 * replies given before a question was read (FORMERR, NOTIMP).
 */
export const TYPE_LABELS = ['A', 'NS', 'CNAME', 'SOA', 'PTR', 'MX', 'TXT', 'AAAA', 'SRV', 'NAPTR', 'DS', 'RRSIG', 'DNSKEY', 'SVCB', 'HTTPS', 'CAA', 'AXFR', 'IXFR', 'ANY', 'OTHER', 'NONE'] as const;
/** QTYPE codes of TYPE_LABELS[0 … 18] (IANA DNS parameters; RFC 1035, 3596, 2782, 3403, 4034, 9460, 8659, 5936, 1995). */
const TYPE_CODES = [1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 43, 46, 48, 64, 65, 257, 252, 251, 255] as const;
export const TYPE_OTHER = 19;
export const TYPE_NONE = 20;
export const TYPE_COUNT = 21;

/** Labels of the `rcode` dimension, by rcode index: RCODE 0 … 15 (RFC 1035, 2136, 8490), then BADVERS (16, RFC 6891) and BADCOOKIE (23, RFC 7873). */
export const RCODE_LABELS = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET',
  'NXRRSET', 'NOTAUTH', 'NOTZONE', 'DSOTYPENI', 'RCODE12', 'RCODE13', 'RCODE14', 'RCODE15', 'BADVERS', 'BADCOOKIE',
] as const;
export const RCODE_INDEX_BADVERS = 16;
export const RCODE_INDEX_BADCOOKIE = 17;
export const RCODE_COUNT = 18;

/** First word of the type × rcode matrix: word MATRIX_BASE + typeIdx * RCODE_COUNT + rcodeIdx counts replies. */
export const MATRIX_BASE = NAMED_WORDS;

/**
 * Upper bounds (inclusive, µs) of the query-duration histogram buckets; a
 * last bucket (+Inf) follows. Most answers take 5–30 µs from 'message' to
 * send() on the 2-core dev machine, so the first buckets are fine-grained.
 */
export const HIST_BOUNDS_US = [25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000] as const;
/** Buckets per histogram, +Inf included. */
export const HIST_BUCKETS = HIST_BOUNDS_US.length + 1;
/** Words per histogram: one count per bucket (not cumulative), then the sum of durations in whole µs. */
export const HIST_WORDS = HIST_BUCKETS + 1;
/** Offset of the sum word inside a histogram. */
export const HIST_SUM = HIST_BUCKETS;
/** Transports with a histogram each, by transport index. */
export const TRANSPORT_LABELS = ['udp', 'tcp'] as const;
export const TRANSPORT_UDP = 0;
export const TRANSPORT_TCP = 1;
/** First word of the histograms: the UDP one, then the TCP one (HIST_WORDS each). */
export const HIST_BASE = alignUp(MATRIX_BASE + TYPE_COUNT * RCODE_COUNT, 16);

/**
 * Words per worker: a multiple of 16 so each worker's slice starts on its own
 * 64-byte cache line, with at least 16 unused words at the end so the last
 * word one worker writes and the first word the next writes are 64 bytes
 * apart whatever the buffer's alignment (no false sharing).
 */
export const COUNTER_STRIDE = alignUp(HIST_BASE + TRANSPORT_LABELS.length * HIST_WORDS + 16, 16);

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Type index per QTYPE below TYPE_TABLE_LEN; built once at module load. */
const TYPE_TABLE_LEN = 258;
const TYPE_INDEX = new Uint8Array(TYPE_TABLE_LEN).fill(TYPE_OTHER);
for (let i = 0; i < TYPE_CODES.length; i++) TYPE_INDEX[TYPE_CODES[i]] = i;

/** Returns the type index (into TYPE_LABELS) of a QTYPE; allocation-free, one table load. */
export function typeIndexOf(qtype: number): number {
  return qtype < TYPE_TABLE_LEN ? TYPE_INDEX[qtype] : TYPE_OTHER;
}

/** Returns the matrix word (relative to a worker's counterBase) for a reply with this type index and rcode (0 … 15, 16 for BADVERS, 23 for BADCOOKIE). */
export function matrixSlot(typeIdx: number, rcode: number): number {
  return MATRIX_BASE + typeIdx * RCODE_COUNT + (rcode === 16 ? RCODE_INDEX_BADVERS : rcode === 23 ? RCODE_INDEX_BADCOOKIE : rcode & 0xf);
}

/** Allocates counters for `workers` workers, all zero. */
export function createCounters(workers: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(workers * COUNTER_STRIDE * 4));
}

/**
 * Adds `n` (default 1) to word `index` of a counter buffer the calling worker
 * alone writes (its own slice of the counters, its routing-decision buffer).
 * Worker side, allocation-free. A plain read-modify-write, not Atomics.add:
 * with a single writer no update can be lost, a 32-bit word is never read
 * torn, and the main thread's Atomics.load sees it by its next fold; it costs
 * about 1.5 ns against 10 for the locked add (bench/alternatives.bench.ts),
 * and a query makes four or five of them.
 */
export function bump(counters: Int32Array, index: number, n = 1): void {
  counters[index] = (counters[index] + n) | 0;
}

/** Sums one counter over every worker, as an unsigned 32-bit-per-worker reading. Main thread. */
export function sumCounter(counters: Int32Array, slot: number): number {
  let total = 0;
  for (let base = 0; base < counters.length; base += COUNTER_STRIDE) total += Atomics.load(counters, base + slot) >>> 0;
  return total;
}

/**
 * Counters readCounters() derives instead of keeping a slot for them, so a
 * query costs no count twice: QUERIES is UDP_QUERIES + TCP_QUERIES; QTYPE_*
 * are rows and RCODE_0 … RCODE_15, RCODE_BADVERS columns of the type × rcode
 * matrix (replies; a header-only SERVFAIL after an exception is in neither,
 * only in EXCEPTIONS).
 */
const QTYPE_ROWS: Readonly<Record<string, readonly number[]>> = (() => {
  const own = { QTYPE_A: 'A', QTYPE_AAAA: 'AAAA', QTYPE_SOA: 'SOA', QTYPE_NS: 'NS', QTYPE_ANY: 'ANY' } as const;
  const index = (label: string): number => (TYPE_LABELS as readonly string[]).indexOf(label);
  const rows: Record<string, number[]> = {};
  for (const [name, label] of Object.entries(own)) rows[name] = [index(label)];
  const named = new Set([...Object.values(rows).flat(), TYPE_NONE]);
  rows.QTYPE_OTHER = TYPE_LABELS.map((_, t) => t).filter((t) => !named.has(t));
  return rows;
})();
const RCODE_NAMES = RCODE_LABELS.map((_, rc) => (rc === RCODE_INDEX_BADVERS ? 'RCODE_BADVERS' : rc === RCODE_INDEX_BADCOOKIE ? 'RCODE_BADCOOKIE' : `RCODE_${rc}`));
export const DERIVED_COUNTER_NAMES: readonly string[] = Object.freeze(['QUERIES', ...Object.keys(QTYPE_ROWS), ...RCODE_NAMES]);

function sumMatrix(counters: Int32Array, types: readonly number[], rcodes: readonly number[]): number {
  let total = 0;
  for (const t of types) for (const rc of rcodes) total += sumCounter(counters, MATRIX_BASE + t * RCODE_COUNT + rc);
  return total;
}

/** Reads every counter summed over workers, keyed by COUNTER name, plus the DERIVED_COUNTER_NAMES. */
export function readCounters(counters: Int32Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, slot] of Object.entries(COUNTER)) {
    // A gauge and a heartbeat: their sums mean nothing.
    if (name !== 'SNAPSHOT_GENERATION' && name !== 'HEARTBEAT') out[name] = sumCounter(counters, slot);
  }
  out.QUERIES = out.UDP_QUERIES + out.TCP_QUERIES;
  const allTypes = TYPE_LABELS.map((_, t) => t);
  const allRcodes = RCODE_LABELS.map((_, rc) => rc);
  for (const [name, rows] of Object.entries(QTYPE_ROWS)) out[name] = sumMatrix(counters, rows, allRcodes);
  for (let rc = 0; rc < RCODE_COUNT; rc++) out[RCODE_NAMES[rc]] = sumMatrix(counters, allTypes, [rc]);
  return out;
}

/**
 * The clock of the duration histograms. Read through a module constant: a
 * property load of the global `performance` on every call cost 12 ns more
 * per query (2 reads) in the in-process measurement of the metrics issue.
 */
const clock = performance;

/**
 * Records how long replies take, into one worker's histogram for one
 * transport. One per transport per worker, created at setup; start() and
 * record() are allocation-free: two clock reads (~45 ns each on Node 24), a
 * short bucket search and two bump()s; recordMany() records a whole batch
 * with one more clock read.
 *
 * The sum is kept in whole µs in a 32-bit word (it wraps after 71 minutes of
 * summed reply time; the main thread folds it every minute). The fraction
 * below 1 µs is carried here from one reply to the next, so the sum drifts by
 * less than 1 µs in all, instead of losing up to 1 µs per reply.
 */
export class DurationRecorder {
  readonly counters: Int32Array;
  /** Absolute word index of this histogram's first bucket. */
  readonly base: number;
  /** Sub-µs remainder not yet added to the sum word, in µs (0 ≤ carryUs < 1). */
  carryUs = 0;

  /** `counterBase` is the worker's first word; `transport` is TRANSPORT_UDP or TRANSPORT_TCP. */
  constructor(counters: Int32Array, counterBase: number, transport: number) {
    this.counters = counters;
    this.base = counterBase + HIST_BASE + transport * HIST_WORDS;
  }

  /** Returns the time a query starts, in ms (performance.now()); pass it to record() once its reply is sent. */
  start(): number {
    return clock.now();
  }

  /** Records one reply that started at `startMs` (from start()) and ends now. */
  record(startMs: number): void {
    this.recordMany(startMs, 1);
  }

  /**
   * Records `count` replies that all started at `startMs` and all end now:
   * a batch whose replies leave together (one sendmmsg). One clock read for
   * the batch instead of one per reply.
   */
  recordMany(startMs: number, count: number): void {
    if (count <= 0) return;
    const us = (clock.now() - startMs) * 1000;
    let b = 0;
    // Most replies land in the first bucket: one comparison.
    while (b < HIST_BOUNDS_US.length && us > HIST_BOUNDS_US[b]) b++;
    bump(this.counters, this.base + b, count);
    const total = this.carryUs + us * count;
    const whole = Math.floor(total);
    this.carryUs = total - whole;
    if (whole > 0) bump(this.counters, this.base + HIST_SUM, whole);
  }
}

/** Smallest routing-decision buffer a worker allocates, in stat ids. */
export const MIN_DECISION_CAPACITY = 64;

/**
 * Returns the capacity (stat ids) of a routing-decision buffer that holds ids
 * 0 … maxStatId with room to grow: at least twice what is needed, a power of
 * two, so a reload adding domains one by one regrows log2(n) times at most.
 */
export function decisionCapacityFor(maxStatId: number): number {
  let cap = MIN_DECISION_CAPACITY;
  while (cap < (maxStatId + 1) * 2) cap *= 2;
  return cap;
}

/**
 * Allocates one worker's routing-decision counters: word `statId` counts the
 * A/AAAA answers given for the records carrying that REC_STAT_ID. The worker
 * that allocates it is its only writer (bump()); the main thread reads it
 * after the worker posts it (workers/dns-worker.ts, 'decisions').
 */
export function createDecisionCounters(capacity: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(capacity * 4));
}
