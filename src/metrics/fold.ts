// Main thread, cold path (on every scrape and once a minute). Turns the
// workers' uint32 counter words, which wrap at 2^32, into running totals:
// per source (one per worker) the last raw reading is kept, and each fold adds
// (current - last) >>> 0, the progress modulo 2^32. That is exact as long as
// no word advances by 2^32 or more between two folds.
//
//   worker i ──bump()──► word (uint32, wraps)
//                               │ Atomics.load on fold
//                               ▼
//   prev[i] ──(cur - prev) >>> 0──► totals (float64, exact to 2^53) ; prev[i] = cur

/**
 * Running totals of a fixed run of words read from several sources: worker
 * i's words are [offset(i), offset(i) + words) of one shared Int32Array.
 */
export class WrapFolder {
  /** Totals per word, summed over every source. */
  readonly totals: Float64Array;
  readonly #prev: Uint32Array[] = [];
  readonly #words: number;

  /** `words` per source; `sources` sources, each starting at zero. */
  constructor(words: number, sources: number) {
    this.#words = words;
    this.totals = new Float64Array(words);
    for (let i = 0; i < sources; i++) this.#prev.push(new Uint32Array(words));
  }

  /** Adds source `source`'s progress since its last fold: words [off, off + words) of `src`. */
  fold(source: number, src: Int32Array, off: number): void {
    const prev = this.#prev[source];
    const totals = this.totals;
    for (let i = 0; i < this.#words; i++) {
      const cur = Atomics.load(src, off + i) >>> 0;
      totals[i] += (cur - prev[i]) >>> 0;
      prev[i] = cur;
    }
  }

  /**
   * Forgets a source's last reading, so its next fold counts its words from
   * zero. For words that were reset to zero (fold them once more just before,
   * if they could have moved). The DNS pool does not reset a restarted
   * worker's slice today: the new worker carries on in it, and needs no call.
   */
  restart(source: number): void {
    this.#prev[source].fill(0);
  }
}

/**
 * Running totals of the routing-decision counters. Each worker owns one
 * buffer indexed by stat id and replaces it with a larger, zeroed one when
 * a snapshot needs more ids (or after a restart that needed more): the old
 * buffer is folded one last time, then the new one counts from zero.
 */
export class DecisionFolder {
  #totals = new Float64Array(0);
  readonly #buffers: (Int32Array | null)[] = [];
  readonly #prev: Uint32Array[] = [];

  /** Totals per stat id, summed over workers (an id past the end has counted nothing). */
  get totals(): Float64Array {
    return this.#totals;
  }

  /**
   * Starts reading worker `source` from `buffer`, which was zero when the
   * worker switched to it. The buffer it replaces is folded first: its worker
   * has stopped writing it. Setting the buffer already in use does nothing.
   */
  setBuffer(source: number, buffer: Int32Array): void {
    const cur = this.#buffers[source];
    if (cur === buffer) return;
    if (cur !== undefined && cur !== null) this.#foldOne(source);
    this.#buffers[source] = buffer;
    this.#prev[source] = new Uint32Array(buffer.length);
    if (this.#totals.length < buffer.length) {
      const grown = new Float64Array(buffer.length);
      grown.set(this.#totals);
      this.#totals = grown;
    }
  }

  /** Folds every worker's current buffer. */
  fold(): void {
    for (let s = 0; s < this.#buffers.length; s++) if (this.#buffers[s]) this.#foldOne(s);
  }

  #foldOne(source: number): void {
    const buf = this.#buffers[source] as Int32Array;
    const prev = this.#prev[source];
    const totals = this.#totals;
    for (let i = 0; i < buf.length; i++) {
      const cur = Atomics.load(buf, i) >>> 0;
      if (cur === prev[i]) continue;
      totals[i] += (cur - prev[i]) >>> 0;
      prev[i] = cur;
    }
  }
}
