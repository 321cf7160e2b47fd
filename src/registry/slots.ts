// Main thread, cold path. Hands out stable slot ids by key: the index of a
// server's (or a domain's member's) words in the live slots. The registry
// (./registry.ts) owns the one allocator; a key keeps its slot until the
// registry releases it, so health state and latency history survive
// snapshot rebuilds, and a released slot is reused only once freed.

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

  /**
   * Releases every slot whose key is not in `keep` and returns the released
   * ids. A released id is not handed out again until free() is given it: a
   * worker still on an older snapshot may read it meanwhile, and must not
   * read another key's state there.
   */
  retain(keep: ReadonlySet<string>): number[] {
    const released: number[] = [];
    for (const [key, slot] of this.#byKey) {
      if (!keep.has(key)) {
        this.#byKey.delete(key);
        released.push(slot);
      }
    }
    return released;
  }

  /** Makes ids that retain() released available to new keys again. */
  free(slots: readonly number[]): void {
    for (let i = 0; i < slots.length; i++) this.#free.push(slots[i]);
  }

  /** The number of slot ids handed out so far (the high-water mark). */
  get highWater(): number {
    return this.#next;
  }
}
