// Worker, TCP accept and close only (the table is created on the main thread).
// The per-client TCP connection cap (dns.tcp_max_connections_per_client) for
// the server as a whole: SO_REUSEPORT spreads one client's connections over
// the workers' listeners, so a count kept in each worker let one address hold
// the cap once per worker (32 connections with 2 workers and a cap of 16).
//
// ONE table shared by every DNS worker (SharedArrayBuffers), keyed by the
// client's network (dns.tcp_client_ipv4_prefix_length /
// dns.tcp_client_ipv6_prefix_length, /32 and /64 by default):
//
//   header (int32):  LOCK │ WAITERS │ … │ INTENT[worker 0] … INTENT[workers - 1]
//   keys (int32, KEY_WORDS per slot):  FAMILY (0 never used, 4, 6) │ A0 A1 A2 A3 (masked address) │ TOTAL
//   counts (uint16, one column of `slots` per worker): connections worker w holds from the slot's client
//
// - The whole key is stored and compared, never a hash of it: two clients
//   never share a count, so no client is refused because of another. The hash
//   (seeded at random per start, so nobody can aim addresses at one place)
//   only picks where a key's WINDOW of slots starts; a key lives in the first
//   free slot of its window, and a slot is free again when its TOTAL is 0.
// - Every read and write of a slot happens under one spin lock (LOCK holds
//   the owner: worker index + 1, or MAIN_OWNER). Accepting and closing are
//   rare next to queries and the lock is held for a scan of WINDOW slots, so
//   one lock costs nothing measurable; the UDP path never touches the table.
//   Inside the lock plain reads and writes are ordered by the lock's
//   Atomics (acquire on the compareExchange, release on the store).
// - The cap is strict: TOTAL is checked and raised under the lock, so two
//   workers accepting the same client at the same instant cannot both take
//   its last place.
// - A worker that dies (killed, crashed) takes its connections with it, so
//   its counts must go too: each worker counts in a column of its own, and
//   when it has exited the main thread zeroes that column (subtracting it
//   from the totals) before its replacement starts (reclaimColumn). A worker
//   killed while it held the lock left at most the one slot named in its
//   INTENT half-updated; the main thread takes the lock over from the dead
//   owner and recomputes that slot's TOTAL from the columns.
// - Bounded: `slots` is fixed at start (tcpClientSlotsFor: four times the
//   most connections all workers can hold, at most 2^20, which is four times
//   for up to 262 144 connections), so at most a quarter of the slots is ever
//   in use; WINDOW slots in a row all in use at a load of 1/4 has a chance
//   of about (α·e^(1−α))^64 ≈ 2·10^-18 (linear probing's run length; the
//   seed keeps addresses from being aimed at one window). A client whose
//   window is full, or a worker that cannot get the lock within
//   LOCK_WAIT_MS, is accepted uncounted: the worker's own
//   dns.tcp_max_connections still bounds it, and no one is refused wrongly.
//   The wait is long (a holder the scheduler preempted comes back within
//   milliseconds even on an oversubscribed machine: with 20 ms, four threads
//   hammering the lock on two busy cores, load 8, went uncounted up to 8 times
//   in 5 000–20 000 acquisitions; with 200 ms, none in 6 runs),
//   so it runs out only when the holder died and the main thread, busy, has
//   not yet reclaimed its column.

import { ipToBytes } from '../lib/ip.ts';

/** Words per slot in `keys`. */
export const KEY_WORDS = 6;
const FAMILY = 0;
const A0 = 1;
const TOTAL = 5;
/** Header words: the lock and its waiters on a cache line of their own, then one INTENT word per worker. */
const LOCK = 0;
const WAITERS = 1;
const INTENT_BASE = 16;
/** LOCK's value while the main thread holds it. */
const MAIN_OWNER = 0x7fffffff;
/** Slots scanned for a key (and for a free slot): the first free one from its hash on. */
export const WINDOW = 64;
/** Smallest and largest table, in slots. */
export const TCP_CLIENT_MIN_SLOTS = 1024;
export const TCP_CLIENT_MAX_SLOTS = 1 << 20;
/** A worker waits at most this long for the lock, then accepts uncounted (see above). */
const LOCK_WAIT_MS = 200;

/** What acquire() returns besides a slot. */
export const CLIENT_REFUSED = -1;
export const CLIENT_UNCOUNTED = -2;

/** The table and its settings as handed to every worker (typed arrays over SharedArrayBuffers). */
export interface TcpClientShared {
  readonly header: Int32Array;
  readonly keys: Int32Array;
  readonly counts: Uint16Array;
  readonly workers: number;
  readonly slots: number;
  /** Random per start: where a key's window starts cannot be aimed at from outside. */
  readonly seed: number;
  readonly maxPerClient: number;
  readonly ipv4PrefixLength: number;
  readonly ipv6PrefixLength: number;
}

/** The table's slots for `workers` × `maxConnections` connections: four times as many, a power of two within the bounds. */
export function tcpClientSlotsFor(workers: number, maxConnections: number): number {
  const want = 4 * workers * maxConnections;
  let n = TCP_CLIENT_MIN_SLOTS;
  while (n < want && n < TCP_CLIENT_MAX_SLOTS) n *= 2;
  return n;
}

/** Bytes of shared memory a table of `slots` for `workers` takes. */
export function tcpClientTableBytes(slots: number, workers: number): number {
  return (INTENT_BASE + workers) * 4 + slots * KEY_WORDS * 4 + slots * workers * 2;
}

/** Allocates the shared table (main thread), empty. */
export function createTcpClientTable(o: {
  workers: number;
  maxConnectionsPerWorker: number;
  maxPerClient: number;
  ipv4PrefixLength: number;
  ipv6PrefixLength: number;
  slots?: number;
}): TcpClientShared {
  const slots = o.slots ?? tcpClientSlotsFor(o.workers, o.maxConnectionsPerWorker);
  if (slots < WINDOW || (slots & (slots - 1)) !== 0) throw new RangeError(`the TCP client table must hold a power of two of at least ${WINDOW} slots, got ${slots}`);
  const header = new Int32Array(new SharedArrayBuffer((INTENT_BASE + o.workers) * 4));
  header.fill(-1, INTENT_BASE);
  return {
    header,
    keys: new Int32Array(new SharedArrayBuffer(slots * KEY_WORDS * 4)),
    counts: new Uint16Array(new SharedArrayBuffer(slots * o.workers * 2)),
    workers: o.workers,
    slots,
    seed: (Math.random() * 0x100000000) | 0,
    maxPerClient: o.maxPerClient,
    ipv4PrefixLength: o.ipv4PrefixLength,
    ipv6PrefixLength: o.ipv6PrefixLength,
  };
}

/** The mask keeping the first `bits` (0–32) bits of a 32-bit word. */
function maskOf(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? -1 : (-1 << (32 - bits)) | 0;
}

/**
 * Fills `out` (5 words: FAMILY, A0–A3) with the key of a client address as
 * Node.js reports it: an IPv4 address (or IPv4-mapped IPv6 address) cut to
 * `v4` bits, an IPv6 address cut to `v6` bits. Returns false for text that is
 * no IP address (such a connection is not counted).
 */
export function clientKeyInto(address: string, v4: number, v6: number, out: Int32Array): boolean {
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(address);
  } catch {
    return false;
  }
  let off = 0;
  if (bytes.length === 16) {
    let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
    for (let i = 0; i < 10 && mapped; i++) if (bytes[i] !== 0) mapped = false;
    off = mapped ? 12 : 0;
  }
  const words = (bytes.length - off) >>> 2;
  const bits = words === 1 ? v4 : v6;
  out[FAMILY] = words === 1 ? 4 : 6;
  for (let w = 0; w < 4; w++) {
    if (w >= words) {
      out[A0 + w] = 0;
      continue;
    }
    const b = off + w * 4;
    const word = ((bytes[b] << 24) | (bytes[b + 1] << 16) | (bytes[b + 2] << 8) | bytes[b + 3]) | 0;
    out[A0 + w] = word & maskOf(bits - w * 32);
  }
  return true;
}

/** Where a key's window starts. */
function homeOf(key: Int32Array, seed: number, mask: number): number {
  let h = seed ^ 0x9e3779b9;
  for (let i = 0; i < 5; i++) {
    h = Math.imul(h ^ key[i], 0x85ebca6b);
    h ^= h >>> 13;
  }
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
}

/** Takes the lock for `owner` if it is free, or held by `dead` (an owner that has exited); returns whether it did. */
function tryLock(header: Int32Array, owner: number, dead: number): boolean {
  if (Atomics.compareExchange(header, LOCK, 0, owner) === 0) return true;
  return dead !== 0 && Atomics.compareExchange(header, LOCK, dead, owner) === dead;
}

function unlock(header: Int32Array): void {
  Atomics.store(header, LOCK, 0);
  if (Atomics.load(header, WAITERS) > 0) Atomics.notify(header, LOCK, 1);
}

/**
 * Main thread, after worker `worker` has exited: zeroes its column (its
 * connections died with it) and repairs the slot it was changing if it died
 * holding the lock. Returns false when the lock is held by someone else (a
 * live worker for a moment, or another dead worker not yet reclaimed): try
 * again shortly (reclaimColumnSoon).
 */
export function reclaimColumn(t: TcpClientShared, worker: number): boolean {
  const header = t.header;
  if (!tryLock(header, MAIN_OWNER, worker + 1)) return false;
  try {
    const keys = t.keys;
    const counts = t.counts;
    const slots = t.slots;
    const base = worker * slots;
    for (let s = 0; s < slots; s++) {
      const c = counts[base + s];
      if (c === 0) continue;
      counts[base + s] = 0;
      keys[s * KEY_WORDS + TOTAL] -= c;
    }
    const intent = header[INTENT_BASE + worker];
    if (intent >= 0) {
      // It died changing this slot: its TOTAL is whatever the columns say.
      let total = 0;
      for (let w = 0; w < t.workers; w++) total += counts[w * slots + intent];
      keys[intent * KEY_WORDS + TOTAL] = total;
      header[INTENT_BASE + worker] = -1;
    }
  } finally {
    unlock(header);
  }
  return true;
}

/** reclaimColumn, retried every millisecond until it gets the lock; resolves once done. */
export function reclaimColumnSoon(t: TcpClientShared, worker: number): Promise<void> {
  return new Promise((resolve) => {
    const attempt = (): void => {
      if (reclaimColumn(t, worker)) resolve();
      else setTimeout(attempt, 1).unref();
    };
    attempt();
  });
}

/**
 * One worker's view of the table: counts its own connections in its column.
 * acquire() and release() are called when a connection is accepted and
 * closed, never per query.
 */
export class TcpClientTable {
  readonly shared: TcpClientShared;
  readonly #worker: number;
  readonly #owner: number;
  readonly #key = new Int32Array(5);
  readonly #mask: number;
  /** Slots whose release could not get the lock: released at the next acquire or release, or by a timer. */
  readonly #pending: number[] = [];
  #retry: NodeJS.Timeout | null = null;

  constructor(shared: TcpClientShared, worker: number) {
    if (worker < 0 || worker >= shared.workers) throw new RangeError(`worker ${worker} has no column in a TCP client table for ${shared.workers}`);
    this.shared = shared;
    this.#worker = worker;
    this.#owner = worker + 1;
    this.#mask = shared.slots - 1;
  }

  /**
   * Counts one more connection from `address` if its client is under the
   * cap. Returns the slot to release() when the connection closes,
   * CLIENT_REFUSED (at the cap), or CLIENT_UNCOUNTED (not counted: the text
   * is no address, the key's window is full, or the lock was not to be had).
   */
  acquire(address: string): number {
    const t = this.shared;
    const key = this.#key;
    if (!clientKeyInto(address, t.ipv4PrefixLength, t.ipv6PrefixLength, key)) return CLIENT_UNCOUNTED;
    if (!this.#lock()) return CLIENT_UNCOUNTED;
    try {
      this.#releasePending();
      const keys = t.keys;
      const home = homeOf(key, t.seed, this.#mask);
      let found = -1;
      let free = -1;
      // The whole window is searched for the key (it may sit past free slots
      // that were in use when it came); a key is in at most one slot, as it
      // only takes a free one when the window holds it nowhere.
      for (let i = 0; i < WINDOW; i++) {
        const s = (home + i) & this.#mask;
        const b = s * KEY_WORDS;
        if (keys[b + FAMILY] === key[0] && keys[b + A0] === key[1] && keys[b + A0 + 1] === key[2] && keys[b + A0 + 2] === key[3] && keys[b + A0 + 3] === key[4]) {
          found = s;
          break;
        }
        if (free < 0 && keys[b + TOTAL] === 0) free = s;
      }
      if (found >= 0) {
        if (keys[found * KEY_WORDS + TOTAL] >= t.maxPerClient) return CLIENT_REFUSED;
      } else if (free >= 0) {
        found = free;
        const b = found * KEY_WORDS;
        // A free slot's old key goes: it counted nobody.
        for (let i = 0; i < 5; i++) keys[b + i] = key[i];
      } else {
        return CLIENT_UNCOUNTED;
      }
      this.#change(found, 1);
      return found;
    } finally {
      unlock(t.header);
    }
  }

  /** Uncounts a connection acquire() counted in `slot`. */
  release(slot: number): void {
    if (slot < 0) return;
    if (!this.#lock()) {
      this.#pending.push(slot);
      this.#scheduleRetry();
      return;
    }
    try {
      this.#releasePending();
      this.#change(slot, -1);
    } finally {
      unlock(this.shared.header);
    }
  }

  /** Connections counted for `address`'s client by every worker (tests, diagnostics). */
  countOf(address: string): number {
    const t = this.shared;
    const key = new Int32Array(5);
    if (!clientKeyInto(address, t.ipv4PrefixLength, t.ipv6PrefixLength, key)) return 0;
    if (!this.#lock()) return -1;
    try {
      const home = homeOf(key, t.seed, this.#mask);
      for (let i = 0; i < WINDOW; i++) {
        const b = ((home + i) & this.#mask) * KEY_WORDS;
        if (t.keys[b] === key[0] && t.keys[b + 1] === key[1] && t.keys[b + 2] === key[2] && t.keys[b + 3] === key[3] && t.keys[b + 4] === key[4]) return t.keys[b + TOTAL];
      }
      return 0;
    } finally {
      unlock(t.header);
    }
  }

  /** Adds `delta` to this worker's count and the total of `slot`, naming the slot in INTENT meanwhile (for a repair if the worker dies halfway). Under the lock. */
  #change(slot: number, delta: number): void {
    const t = this.shared;
    const header = t.header;
    header[INTENT_BASE + this.#worker] = slot;
    t.counts[this.#worker * t.slots + slot] += delta;
    t.keys[slot * KEY_WORDS + TOTAL] += delta;
    header[INTENT_BASE + this.#worker] = -1;
  }

  #releasePending(): void {
    const pending = this.#pending;
    while (pending.length > 0) this.#change(pending.pop() as number, -1);
  }

  #scheduleRetry(): void {
    if (this.#retry !== null) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.#pending.length === 0) return;
      if (!this.#lock()) return void this.#scheduleRetry();
      try {
        this.#releasePending();
      } finally {
        unlock(this.shared.header);
      }
    }, 5);
    this.#retry.unref();
  }

  /**
   * Takes the lock: spins a little (it is held for a scan of WINDOW slots),
   * then sleeps on it in short waits; gives up after LOCK_WAIT_MS.
   */
  #lock(): boolean {
    const header = this.shared.header;
    for (let spin = 0; spin < 256; spin++) if (Atomics.compareExchange(header, LOCK, 0, this.#owner) === 0) return true;
    const deadline = performance.now() + LOCK_WAIT_MS;
    Atomics.add(header, WAITERS, 1);
    try {
      for (;;) {
        const seen = Atomics.compareExchange(header, LOCK, 0, this.#owner);
        if (seen === 0) return true;
        if (performance.now() >= deadline) return false;
        Atomics.wait(header, LOCK, seen, 0.1);
      }
    } finally {
      Atomics.sub(header, WAITERS, 1);
    }
  }
}
