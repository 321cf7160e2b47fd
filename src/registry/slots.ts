// Main thread, cold path. Hands out stable slot ids by key: the index of a
// server's (or a domain's member's) words in the live slots. The registry
// (./registry.ts) owns the one allocator; a key keeps its slot until the
// registry releases it, so health state and latency history survive
// snapshot rebuilds, and a released slot is reused only once freed.
//
// Servers are held by their key; members by domain, then server key (what
// memberKey() joins), so a view of 800 000 members looks each one up in its
// domain's small map with the server's key it already has, instead of
// building and hashing 800 000 joined strings in one large map (bench/config-scale.ts:
// that was most of view() and commit()). Both share one id space, and each
// id remembers when it was handed out, so retain() releases in the order one
// map of every key would have (the order free() then reuses them).

/** Hands out slot ids, reusing freed ones; the live slots are sized from `capacity`. */
export class SlotAllocator {
  readonly #byKey = new Map<string, number>();
  /** Member slots: domain → server key → slot. */
  readonly #members = new Map<string, Map<string, number>>();
  /** When each held slot was handed out (a running count): retain() releases in this order. */
  #handedAt: number[] = [];
  #handed = 0;
  readonly #free: number[] = [];
  #fresh: number[] = [];
  #next = 0;

  #allocate(): number {
    const slot = this.#free.length > 0 ? (this.#free.pop() as number) : this.#next++;
    this.#handedAt[slot] = this.#handed++;
    this.#fresh.push(slot);
    return slot;
  }

  /** Returns the slot id for a key, allocating one if the key is new. */
  slotFor(key: string): number {
    let slot = this.#byKey.get(key);
    if (slot === undefined) {
      slot = this.#allocate();
      this.#byKey.set(key, slot);
    }
    return slot;
  }

  /** The member slot of one domain's use of one server (memberKey(domain, serverKey)), allocating one if it is new. */
  memberSlotFor(domain: string, serverKey: string): number {
    let inDomain = this.#members.get(domain);
    if (inDomain === undefined) this.#members.set(domain, (inDomain = new Map()));
    let slot = inDomain.get(serverKey);
    if (slot === undefined) {
      slot = this.#allocate();
      inDomain.set(serverKey, slot);
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
   * Releases every server slot whose key `keepKey` refuses and every member
   * slot of a domain `members` does not list, or lists without that server
   * (members: domain → the server keys kept), and returns the released ids,
   * oldest handed out first. A released id is not handed out again until
   * free() is given it: a worker still on an older snapshot may read it
   * meanwhile, and must not read another key's state there.
   */
  retain(keepKey: (key: string) => boolean, members: ReadonlyMap<string, { readonly size: number; has(serverKey: string): boolean }>): number[] {
    const released: number[] = [];
    for (const [key, slot] of this.#byKey) {
      if (!keepKey(key)) {
        this.#byKey.delete(key);
        released.push(slot);
      }
    }
    for (const [domain, inDomain] of this.#members) {
      const kept = members.get(domain);
      if (kept === undefined) {
        for (const slot of inDomain.values()) released.push(slot);
        this.#members.delete(domain);
        continue;
      }
      for (const [serverKey, slot] of inDomain) {
        if (!kept.has(serverKey)) {
          inDomain.delete(serverKey);
          released.push(slot);
        }
      }
      if (inDomain.size === 0) this.#members.delete(domain);
    }
    const at = this.#handedAt;
    if (released.length > 1) released.sort((a, b) => at[a]! - at[b]!);
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
