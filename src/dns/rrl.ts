// Worker, hot path (the table is created on the main thread). Response rate
// limiting (dns.rrl) with BIND's semantics: every (client prefix, kind of
// response, name) has an account that earns `rate` credits a second, never
// holds more than `rate` nor owes more than `window × rate`, and pays one
// credit per UDP response; while it is negative, responses are limited:
// every `slip`-th goes out truncated (TC=1, so a real client retries over
// TCP), the others are dropped. A random-subdomain flood is charged to one
// account per zone (all its NXDOMAINs), so the names that exist keep theirs.
//
// The accounts live in ONE table shared by every DNS worker (a
// SharedArrayBuffer), so the rate holds for the server as a whole however the
// kernel spreads a client's queries over the workers' sockets. The table has
// a fixed number of entries (two-way set-associative: a key may sit in slot
// i or i^1, and a new key takes the one touched least recently), so a flood
// from a million sources evicts accounts but cannot grow anything.
//
//   entry (ENTRY_WORDS int32):  TAG │ STAMP (s since RRL_EPOCH) │ BALANCE │ SLIP
//
// Lock-free: the worker that moves STAMP forward (compareExchange) is the one
// that credits the elapsed seconds, with a compareExchange loop on BALANCE
// (so the cap at `rate` holds); a response is a single Atomics.sub on
// BALANCE. Two workers racing on a credit and a debit of the same entry can
// at worst let one response more through in that second. Two workers that
// claim the same slot for different keys at the same instant can leave a
// mixed entry, which the next credit repairs; both are documented in
// docs/architecture.md.

/** Words per entry. */
export const ENTRY_WORDS = 4;
const TAG = 0;
const STAMP = 1;
const BALANCE = 2;
const SLIP = 3;

/** Seconds are counted from here so they fit an int32 for a century. */
export const RRL_EPOCH_SEC = 1_700_000_000;

/** Response kinds, each with its own rate (BIND's responses-per-second, nxdomains-per-second, errors-per-second). */
export const RRL_KIND_RESPONSE = 0;
export const RRL_KIND_NXDOMAIN = 1;
export const RRL_KIND_ERROR = 2;
export const RRL_KIND_LABELS = ['response', 'nxdomain', 'error'] as const;

/** What to do with a response. */
export const RRL_PASS = 0;
export const RRL_SLIP = 1;
export const RRL_DROP = 2;

/** Smallest and largest table, in entries. */
export const RRL_MIN_ENTRIES = 1024;
export const RRL_MAX_ENTRIES = 1 << 24;

/** The settings a worker applies (dns.rrl), fixed when the workers start. */
export interface RrlSettings {
  /** Per kind (RRL_KIND_*): credits per second; 0 = that kind is not limited. */
  readonly rates: readonly [number, number, number];
  readonly windowSec: number;
  /** Every slip-th limited response is truncated instead of dropped; 0 = never. */
  readonly slip: number;
  readonly ipv4PrefixLength: number;
  readonly ipv6PrefixLength: number;
  /** Networks never limited: address bytes (4 or 16) and prefix length. */
  readonly exempt: readonly { readonly bytes: Uint8Array; readonly prefix: number }[];
  /** The shared table: a power-of-two number of entries × ENTRY_WORDS. */
  readonly table: Int32Array;
  /** The shared second (createRrlClock): the newest any worker has seen, so all charge in the same second. */
  readonly clock: Int32Array;
}

/** Rounds a configured size up to a power of two within the bounds. */
export function rrlEntriesFor(size: number): number {
  let n = RRL_MIN_ENTRIES;
  while (n < size && n < RRL_MAX_ENTRIES) n *= 2;
  return n;
}

/** Allocates the shared table (main thread): `entries` (a power of two) × ENTRY_WORDS words, all empty. */
export function createRrlTable(entries: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(entries * ENTRY_WORDS * 4));
}

/**
 * Allocates the shared clock (main thread): one int32, the newest unix second
 * any worker has charged in, on a cache line of its own. Each worker reads
 * its own clock once a second (WorkerScratch.tick), so two workers can be up
 * to a second apart; if each credited by its own, an account touched first by
 * the one behind and then by the one ahead would be credited twice in one
 * real second. Charging in the newest second any worker has seen gives every
 * worker the same time.
 */
export function createRrlClock(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(64));
}

/**
 * One worker's view of the limiter: the settings, the table, and the key
 * being built for the current response. Allocation-free per call.
 */
export class RateLimiter {
  readonly settings: RrlSettings;
  readonly #table: Int32Array;
  readonly #mask: number;
  readonly #rates: Int32Array;
  readonly #floors: Int32Array;
  readonly #exemptBytes: Uint8Array[];
  readonly #exemptPrefix: Int32Array;

  constructor(settings: RrlSettings) {
    this.settings = settings;
    this.#table = settings.table;
    const entries = settings.table.length / ENTRY_WORDS;
    if (entries < 2 || (entries & (entries - 1)) !== 0) throw new RangeError(`the RRL table must hold a power of two of entries, got ${entries}`);
    this.#mask = entries - 1;
    this.#rates = Int32Array.from(settings.rates);
    // window × rate can pass the int32 range (3 600 s × 1 000 000/s); the balance word must never wrap.
    this.#floors = Int32Array.from(settings.rates, (r) => Math.max(-settings.windowSec * r, -(2 ** 30)));
    this.#exemptBytes = settings.exempt.map((n) => n.bytes);
    this.#exemptPrefix = Int32Array.from(settings.exempt, (n) => n.prefix);
  }

  /** Is this source (ip[0, ipLen), 4 or 16 bytes) in dns.rrl.exempt_clients? */
  exempt(ip: Uint8Array, ipLen: number): boolean {
    const nets = this.#exemptBytes;
    for (let n = 0; n < nets.length; n++) {
      const net = nets[n];
      if (net.length !== ipLen) continue;
      if (prefixMatches(ip, net, this.#exemptPrefix[n])) return true;
    }
    return false;
  }

  /**
   * Charges one response of `kind` to the account of (client prefix, kind,
   * name): name[nameOff, nameOff + nameLen) is a lower-cased wire name (the
   * question for answers, the zone apex for NXDOMAIN, empty for errors),
   * `qtype` is hashed for answers. `nowSec` is unix seconds. Returns
   * RRL_PASS, RRL_SLIP or RRL_DROP.
   */
  charge(kind: number, ip: Uint8Array, ipLen: number, name: Uint8Array, nameOff: number, nameLen: number, qtype: number, nowSec: number): number {
    const rate = this.#rates[kind];
    if (rate === 0) return RRL_PASS;
    // The key's hash: kind, family, the masked prefix, then the name and type (FNV-1a, then a murmur3 finaliser).
    let h = 0x811c9dc5 ^ (kind + 1);
    h = Math.imul(h, 0x01000193);
    const prefix = ipLen === 4 ? this.settings.ipv4PrefixLength : this.settings.ipv6PrefixLength;
    h = Math.imul(h ^ ipLen, 0x01000193);
    const full = prefix >>> 3;
    for (let i = 0; i < full; i++) h = Math.imul(h ^ ip[i], 0x01000193);
    const bits = prefix & 7;
    if (bits !== 0) h = Math.imul(h ^ (ip[full] & (0xff << (8 - bits))), 0x01000193);
    for (let i = 0; i < nameLen; i++) h = Math.imul(h ^ name[nameOff + i], 0x01000193);
    h = Math.imul(h ^ (qtype & 0xff), 0x01000193);
    h = Math.imul(h ^ (qtype >>> 8), 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    const tag = h | 1; // 0 marks an empty entry
    // The shared second: ours if we are ahead (publish it), else the newest seen.
    const clock = this.settings.clock;
    let t = Atomics.load(clock, 0);
    const mine = nowSec - RRL_EPOCH_SEC;
    while (mine > t) {
      const seen = Atomics.compareExchange(clock, 0, t, mine);
      if (seen === t) t = mine;
      else t = seen;
    }
    const table = this.#table;
    // Two-way: slot i or its neighbour; a new key evicts the one touched least recently.
    const i0 = ((h >>> 8) & this.#mask) * ENTRY_WORDS;
    const i1 = i0 ^ ENTRY_WORDS;
    let e: number;
    if (Atomics.load(table, i0 + TAG) === tag) e = i0;
    else if (Atomics.load(table, i1 + TAG) === tag) e = i1;
    else {
      e = Atomics.load(table, i0 + STAMP) <= Atomics.load(table, i1 + STAMP) ? i0 : i1;
      Atomics.store(table, e + TAG, tag);
      Atomics.store(table, e + BALANCE, rate);
      Atomics.store(table, e + SLIP, 0);
      Atomics.store(table, e + STAMP, t);
    }
    const stamp = Atomics.load(table, e + STAMP);
    // Only forward (t comes from the shared clock, but a worker may have read
    // it just before another moved it on): a stamp moved back and forth would
    // credit the same second twice.
    if (t > stamp && Atomics.compareExchange(table, e + STAMP, stamp, t) === stamp) {
      const elapsed = t - stamp;
      const windowSec = this.settings.windowSec;
      const credit = (elapsed > windowSec + 1 ? windowSec + 1 : elapsed) * rate;
      for (;;) {
        const b = Atomics.load(table, e + BALANCE);
        const nb = b + credit > rate ? rate : b + credit;
        if (Atomics.compareExchange(table, e + BALANCE, b, nb) === b) break;
      }
    }
    const balance = Atomics.sub(table, e + BALANCE, 1) - 1;
    if (balance >= 0) return RRL_PASS;
    // Owe at most window × rate: a client that stops flooding in second T is
    // answered again in second T + window + 1 (0 credits in T + window; BIND
    // does the same), so `window` to `window` + 1 s later.
    if (balance < this.#floors[kind]) Atomics.add(table, e + BALANCE, 1);
    const slip = this.settings.slip;
    if (slip === 0) return RRL_DROP;
    if (slip === 1) return RRL_SLIP;
    const n = Atomics.add(table, e + SLIP, 1) + 1;
    return n % slip === 0 ? RRL_SLIP : RRL_DROP;
  }
}

/** Do the first `prefix` bits of a and b agree? */
function prefixMatches(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const full = prefix >>> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const bits = prefix & 7;
  if (bits === 0) return true;
  const mask = 0xff << (8 - bits);
  return ((a[full] ^ b[full]) & mask) === 0;
}
