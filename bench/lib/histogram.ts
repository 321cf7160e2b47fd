// Bench only, any thread. A log-linear latency histogram in the spirit of
// HdrHistogram: fixed buckets, constant-time record, mergeable by adding the
// counts, percentiles within 0.4 % of the recorded value.
//
//   value (ns)        bucket
//   0 .. 255          exact (one bucket per ns)
//   256 .. 2^32 - 1   2^e .. 2^(e+1) split into 128 equal sub-buckets (e = 8 .. 31)
//   ≥ 2^32 (4.29 s)   the last bucket (clamped)
//
// Counts live in a Float64Array so a histogram can be posted between threads
// (or transferred) and so counts never wrap.

const EXACT = 256;
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
const FIRST_EXP = 8;
const LAST_EXP = 31;
/** Number of buckets: 256 exact + 24 magnitudes × 128 sub-buckets. */
export const HIST_BUCKETS = EXACT + (LAST_EXP - FIRST_EXP + 1) * SUB;
const MAX_NS = 0xffffffff;

/** Returns the bucket index of a latency in nanoseconds (clamped to 0 .. 2^32 - 1). */
export function bucketOf(ns: number): number {
  const v = ns <= 0 ? 0 : ns >= MAX_NS ? MAX_NS : ns >>> 0;
  if (v < EXACT) return v;
  const e = 31 - Math.clz32(v);
  return EXACT + (e - FIRST_EXP) * SUB + ((v >>> (e - SUB_BITS)) & (SUB - 1));
}

/** Returns the value (ns) that stands for bucket `i`: the middle of its range. */
export function valueOf(i: number): number {
  if (i < EXACT) return i;
  const e = FIRST_EXP + Math.floor((i - EXACT) / SUB);
  const sub = (i - EXACT) % SUB;
  const width = 2 ** (e - SUB_BITS);
  return 2 ** e + sub * width + width / 2;
}

/** A latency histogram; record() allocates nothing. */
export class Histogram {
  readonly counts: Float64Array;
  total = 0;
  /** Largest and smallest recorded values, exact (ns). */
  maxNs = 0;
  minNs = Number.POSITIVE_INFINITY;
  sumNs = 0;

  constructor(counts?: Float64Array) {
    this.counts = counts ?? new Float64Array(HIST_BUCKETS);
    if (counts !== undefined) {
      for (let i = 0; i < counts.length; i++) {
        if (counts[i] === 0) continue;
        const v = valueOf(i);
        this.total += counts[i];
        this.sumNs += counts[i] * v;
        if (v > this.maxNs) this.maxNs = v;
        if (v < this.minNs) this.minNs = v;
      }
    }
  }

  /** Records one latency in nanoseconds. */
  record(ns: number): void {
    this.counts[bucketOf(ns)]++;
    this.total++;
    this.sumNs += ns;
    if (ns > this.maxNs) this.maxNs = ns;
    if (ns < this.minNs) this.minNs = ns;
  }

  /** Adds another histogram's counts into this one. */
  merge(other: Histogram): void {
    for (let i = 0; i < HIST_BUCKETS; i++) this.counts[i] += other.counts[i];
    this.total += other.total;
    this.sumNs += other.sumNs;
    if (other.maxNs > this.maxNs) this.maxNs = other.maxNs;
    if (other.minNs < this.minNs) this.minNs = other.minNs;
  }

  /**
   * Returns the latency (ns) at quantile q (0 < q ≤ 1): the smallest bucket
   * value with at least ceil(q · total) values at or below it. NaN when empty.
   */
  quantileNs(q: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < HIST_BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.maxNs);
    }
    return this.maxNs;
  }

  /** Returns the quantile in milliseconds, rounded to 1 µs; null when empty. */
  quantileMs(q: number): number | null {
    const ns = this.quantileNs(q);
    return Number.isNaN(ns) ? null : Math.round(ns / 1000) / 1000;
  }

  /** Mean latency in ms, or null when empty. */
  meanMs(): number | null {
    return this.total === 0 ? null : Math.round(this.sumNs / this.total / 1000) / 1000;
  }
}

/** The quantiles the report plots (x axis of the latency chart). */
export const PLOT_QUANTILES = [0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999] as const;
