// Main thread, cold path. Hands out stable slot ids by key: the index of a
// server's (or a domain's member's) words in the live slots. The registry
// (./registry.ts) owns the one allocator; a key keeps its slot until the
// registry releases it, so health state and latency history survive
// snapshot rebuilds.

/** Hands out slot ids, reusing freed ones; the live slots are sized from `capacity`. */
export class SlotAllocator {
  readonly #byKey = new Map<string, number>();
  readonly #free: number[] = [];
  #fresh: number[] = [];
  #next = 0;

  /** Returns the slot id for a key, allocating one if the key is new. */
  slotFor(key: string): number {
    let slot = this.#byKey.get(key);
    if (slot === undefined) {
      slot = this.#free.length > 0 ? (this.#free.pop() as number) : this.#next++;
      this.#byKey.set(key, slot);
      this.#fresh.push(slot);
    }
    return slot;
  }

  /** Returns the slot of a key, or undefined when the key has none. */
  slotOf(key: string): number | undefined {
    return this.#byKey.get(key);
  }

  /** Returns the slots allocated since the last call (new servers), and forgets them. */
  takeFresh(): number[] {
    const fresh = this.#fresh;
    this.#fresh = [];
    return fresh;
  }

  /** Releases every slot whose key is not in `keep`; returns the released slot ids. */
  retain(keep: ReadonlySet<string>): number[] {
    const released: number[] = [];
    for (const [key, slot] of this.#byKey) {
      if (!keep.has(key)) {
        this.#byKey.delete(key);
        this.#free.push(slot);
        released.push(slot);
      }
    }
    return released;
  }

  /** The number of slot ids handed out so far (the high-water mark). */
  get highWater(): number {
    return this.#next;
  }
}
