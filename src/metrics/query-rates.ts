// Main thread, cold path (one sample every few seconds). The recent query
// rate by response code, for the dashboard's chart (GET /api/v1/stats/queries):
// a ring of samples, each the replies per second by rcode over one interval,
// read from the workers' type × rcode matrix. It folds the words with a
// WrapFolder of its own, so it works whether or not /metrics is on and never
// moves the Prometheus totals; like them, it only reads shared memory.
//
//   every intervalMs: fold matrix words ──► per-rcode delta since the last sample ──► ring (capacity samples)

import { COUNTER_STRIDE, MATRIX_BASE, RCODE_COUNT, RCODE_LABELS, TYPE_COUNT } from './counters-layout.ts';
import { WrapFolder } from './fold.ts';

/** One interval: when it ended, its length and the replies per second by rcode (only rcodes seen in it). */
export interface QueryRateSample {
  readonly atMs: number;
  readonly seconds: number;
  readonly total: number;
  readonly byRcode: Readonly<Record<string, number>>;
}

const MATRIX_WORDS = TYPE_COUNT * RCODE_COUNT;

/**
 * Keeps the last `capacity` samples of the reply rate by rcode. sample() is
 * called by a timer (the API's); the first call only sets the baseline.
 */
export class QueryRateHistory {
  readonly #capacity: number;
  readonly #ring: QueryRateSample[] = [];
  #folder: WrapFolder | null = null;
  #counters: Int32Array | null = null;
  readonly #last = new Float64Array(RCODE_COUNT);
  #lastAtMs = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Reads the counters now (`nowMs` wall clock) and appends the rates since the previous call. */
  sample(counters: Int32Array, nowMs: number): void {
    if (this.#folder === null || this.#counters !== counters) {
      // First call, or another overwatch's counters (tests): start a new baseline.
      this.#counters = counters;
      this.#folder = new WrapFolder(MATRIX_WORDS, Math.floor(counters.length / COUNTER_STRIDE));
      this.#ring.length = 0;
      this.#fold();
      this.#lastAtMs = nowMs;
      return;
    }
    const seconds = (nowMs - this.#lastAtMs) / 1000;
    if (seconds === 0) return;
    if (seconds < 0) {
      // The wall clock stepped back (NTP, an operator). Returning here kept #lastAtMs in the future, so no sample was taken
      // until the clock caught up (an hour's step froze the chart for an hour). The kept samples are dated by the old
      // clock and would no longer read oldest first: start a new baseline now, as at start.
      this.#ring.length = 0;
      this.#fold();
      this.#lastAtMs = nowMs;
      return;
    }
    const prev = Float64Array.from(this.#last);
    this.#fold();
    const byRcode: Record<string, number> = {};
    let total = 0;
    for (let r = 0; r < RCODE_COUNT; r++) {
      const n = this.#last[r] - prev[r];
      if (n > 0) {
        byRcode[RCODE_LABELS[r]] = n / seconds;
        total += n;
      }
    }
    this.#ring.push({ atMs: nowMs, seconds, total: total / seconds, byRcode });
    if (this.#ring.length > this.#capacity) this.#ring.shift();
    this.#lastAtMs = nowMs;
  }

  /** The samples, oldest first. */
  samples(): readonly QueryRateSample[] {
    return this.#ring;
  }

  /** Folds every worker's matrix and sums it by rcode into #last. */
  #fold(): void {
    const counters = this.#counters as Int32Array;
    const folder = this.#folder as WrapFolder;
    for (let w = 0, base = 0; base + COUNTER_STRIDE <= counters.length; w++, base += COUNTER_STRIDE) folder.fold(w, counters, base + MATRIX_BASE);
    this.#last.fill(0);
    const totals = folder.totals;
    for (let t = 0; t < TYPE_COUNT; t++) for (let r = 0; r < RCODE_COUNT; r++) this.#last[r] += totals[t * RCODE_COUNT + r];
  }
}
