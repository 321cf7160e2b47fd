// Any thread, hot on the worker side. Per-worker counters in one
// SharedArrayBuffer: worker i owns words [i*STRIDE, (i+1)*STRIDE) and bumps
// them with Atomics.add; the main thread sums them (metrics issue:
// prom-client collect()). Counters are uint32 and wrap; readers that keep
// totals must fold deltas modulo 2^32. No label is ever a qname or client IP.

/** Counter slots inside one worker's stride. */
export const COUNTER = {
  QUERIES: 0,
  QTYPE_A: 1,
  QTYPE_AAAA: 2,
  QTYPE_SOA: 3,
  QTYPE_NS: 4,
  QTYPE_ANY: 5,
  QTYPE_OTHER: 6,
  /** RCODE_BASE + rcode for rcodes 0..15. */
  RCODE_BASE: 7,
  RCODE_BADVERS: 23,
  UDP_QUERIES: 24,
  TCP_QUERIES: 25,
  /** Packets shorter than a DNS header. */
  DROPPED_SHORT: 26,
  /** Packets with QR=1: responses are never answered. */
  DROPPED_RESPONSE: 27,
  /** UDP answers sent with TC=1 because they did not fit the client's size. */
  TRUNCATED: 28,
  /** Queries answered FORMERR because the packet was malformed. */
  MALFORMED: 29,
  /** Exceptions caught at the per-packet boundary (answered SERVFAIL). */
  EXCEPTIONS: 30,
  /** Queries for a name that had servers of the family but none healthy, whatever when_all_down answered. */
  ALL_DOWN: 31,
  EDNS_QUERIES: 32,
  ECS_QUERIES: 33,
  DO_QUERIES: 34,
  TCP_ACCEPTED: 35,
  /** TCP connections refused because the worker was at its connection cap. */
  TCP_REJECTED: 36,
  TCP_IDLE_CLOSED: 37,
  /** TCP connections closed for a zero-length frame (the stream cannot be resynchronised). Frames under 12 bytes count as DROPPED_SHORT. */
  TCP_BAD_FRAME: 38,
  /** UDP sends that failed (socket error reported to the send callback). */
  SEND_ERRORS: 39,
  /** Snapshot generation the worker serves (a gauge, not a counter). */
  SNAPSHOT_GENERATION: 40,
  /** All-down answers by when_all_down mode (ALL_DOWN counts every one of them). */
  ALL_DOWN_SERVFAIL: 41,
  ALL_DOWN_LAST_HEALTHY: 42,
  ALL_DOWN_ALL: 43,
  ALL_DOWN_FALLBACK: 44,
} as const;

/** Words per worker: a multiple of 16 so each worker's slice starts on its own 64-byte cache line. */
export const COUNTER_STRIDE = 64;

/** Allocates counters for `workers` workers, all zero. */
export function createCounters(workers: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(workers * COUNTER_STRIDE * 4));
}

/** Adds one to a worker's counter. Worker side, allocation-free. */
export function bump(counters: Int32Array, base: number, slot: number): void {
  Atomics.add(counters, base + slot, 1);
}

/** Sums one counter over every worker, as an unsigned 32-bit-per-worker reading. Main thread. */
export function sumCounter(counters: Int32Array, slot: number): number {
  let total = 0;
  for (let base = 0; base < counters.length; base += COUNTER_STRIDE) total += Atomics.load(counters, base + slot) >>> 0;
  return total;
}

/** Reads every counter summed over workers, keyed by COUNTER name (RCODE_BASE expanded as RCODE_0..RCODE_15). */
export function readCounters(counters: Int32Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, slot] of Object.entries(COUNTER)) {
    if (name === 'RCODE_BASE') {
      for (let rc = 0; rc < 16; rc++) out[`RCODE_${rc}`] = sumCounter(counters, slot + rc);
    } else if (name !== 'SNAPSHOT_GENERATION') {
      out[name] = sumCounter(counters, slot);
    }
  }
  return out;
}
