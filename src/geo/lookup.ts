// Worker-safe, hot path. Finds the country, continent and network prefix
// length of a client address in a MaxMind DB (.mmdb) that lives in one
// SharedArrayBuffer shared by every thread (database.ts loads it). Imports
// maxmind and continents.ts only: no config, no log.
//
// Why the search tree is walked here and not by maxmind's getWithPrefixLength:
// that call takes the address as text (the worker has bytes; formatting them
// allocates a string per query), parses it into a new array, and decodes the
// record into a new object per call (maxmind's record cache is off on a
// Reader built from a Buffer). The tree itself is a plain binary format
// (MaxMind DB spec §"Search Tree Section"): node n's two records sit at
// n × recordSize / 4 bytes, a record below node_count is the next node, equal
// is "not found", above is a pointer into the data section. Walking it over
// the address bytes allocates nothing; the record a pointer names is decoded
// by maxmind's Reader once (on a cache miss: one per distinct record, about
// 250 for a country database) and kept as a small integer. The prefix length
// is the number of records read, exactly as getWithPrefixLength counts it (a
// test compares the two over many addresses).
//
// Measured (bench/geo.bench.ts, Node 24, 2-core dev machine, bundled DB-IP
// database, 1 024 random addresses in turn): find() 105 ns per IPv4 lookup
// and 41 ns per IPv6 one, 0 bytes allocated; maxmind getWithPrefixLength on
// the same addresses as text 923 ns and 596 bytes. No per-address cache: a
// Map probe plus eviction would cost a good part of the 105 ns it saves, and
// real clients spread over far more networks than any cache worth its memory.
// The record cache keeps the records asked often through a City database's
// long tail of networks (two generations, see GeoIpReader#young).
//
//   main:    readFile ─► SharedArrayBuffer ─► postMessage / workerData
//   worker:  new GeoIpReader(sab) ─► Buffer.from(sab) (a view, no copy) ─► maxmind Reader (metadata, decode on miss)
//            find(bytes) ─► walk the tree over the view ─► pointer ─► record cache ─► packed result

import { Reader } from 'maxmind';
import type { Response } from 'maxmind';
import { CONTINENT_OF_COUNTRY, continentIndex, countryIndex } from './continents.ts';

/**
 * Most distinct records kept per reader; a country database has about 250, a
 * city database can have millions. Split in two generations of half as many
 * (see GeoIpReader's record cache).
 */
export const GEO_RECORD_CACHE_MAX = 65_536;
/** Records per generation of the record cache. */
const GEO_RECORD_GENERATION = GEO_RECORD_CACHE_MAX / 2;

/**
 * Unpacks find()'s result: the prefix length of the database network holding
 * the address (in the address's own family, 0..32 or 0..128).
 */
export function geoPrefixLenOf(found: number): number {
  return found & 0xff;
}

/** Unpacks find()'s result: the country index (continents.ts), or -1 for none. */
export function geoCountryOf(found: number): number {
  return ((found >>> 8) & 0x3ff) - 1;
}

/** Unpacks find()'s result: the continent index 0..6, or -1 for none. */
export function geoContinentOf(found: number): number {
  return ((found >>> 18) & 0x7) - 1;
}

/** A record's country and continent as the packed bits above the prefix length. */
function packRecord(country: number, continent: number): number {
  return ((country + 1) << 8) | ((continent + 1) << 18);
}

/** The fields a country-level lookup reads from a record, in either of the two shapes. */
type GeoRecord = {
  readonly country_code?: unknown;
  readonly country?: { readonly iso_code?: unknown };
  readonly continent?: { readonly code?: unknown };
};

/**
 * Reads the country and continent of a decoded record, packed as find()
 * returns them (prefix length bits zero). Both shapes: MaxMind GeoIP2 /
 * GeoLite2 (`country.iso_code`, `continent.code`) and DB-IP lite / ip-location-db
 * (`country_code`). A missing continent is derived from the country. A code
 * that is not an assigned ISO 3166-1 alpha-2 code (such as the old "EU" or
 * "AP") counts as no country.
 */
export function packGeoRecord(record: unknown): number {
  if (record === null || typeof record !== 'object') return 0;
  const r = record as GeoRecord;
  const countryCode = typeof r.country?.iso_code === 'string' ? r.country.iso_code : typeof r.country_code === 'string' ? r.country_code : null;
  let country = countryCode === null ? -1 : countryIndex(countryCode);
  if (country >= 0 && CONTINENT_OF_COUNTRY[country] < 0) country = -1;
  let continent = typeof r.continent?.code === 'string' ? continentIndex(r.continent.code) : -1;
  if (continent < 0 && country >= 0) continent = CONTINENT_OF_COUNTRY[country];
  return packRecord(country, continent);
}

/**
 * A reader of one GeoIP database held in a SharedArrayBuffer. One per thread
 * and database; create it when the database arrives (worker start, reload),
 * never per query.
 */
export class GeoIpReader {
  /** maxmind's Reader over the same memory: metadata, and decoding of records (cold). */
  readonly reader: Reader<Response>;
  /** The shared memory, as the thread received it. */
  readonly sab: SharedArrayBuffer;
  readonly #db: Uint8Array;
  readonly #nodeCount: number;
  readonly #recordSize: number;
  readonly #ipVersion: number;
  /** Node where IPv4 addresses start (the end of ::/96 in an IPv6 tree), and how deep that is. */
  readonly #ipv4Start: number;
  /**
   * The record cache, data pointer → packed country/continent, in two
   * generations of at most GEO_RECORD_GENERATION records each: a lookup
   * reads the young one first; a record found only in the old one moves to
   * the young one; a decoded record goes into the young one. When the young
   * one is full it becomes the old one (the old one's records are dropped)
   * and a new young one starts. A record asked at least once per generation
   * therefore stays, however many others pass through (a City database's
   * long tail of client networks), and no per-entry list is kept: a hit in
   * the young generation costs one Map probe, as a single Map did.
   */
  #young = new Map<number, number>();
  #old = new Map<number, number>();
  #missCount = 0;

  /**
   * Attaches to a database that database.ts has loaded and checked. Throws
   * (maxmind's Error) only if the buffer is not a MaxMind DB at all; a worker
   * treats that as an attach failure.
   */
  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    const buf = Buffer.from(sab);
    this.reader = new Reader<Response>(buf);
    this.#db = new Uint8Array(sab);
    const m = this.reader.metadata;
    this.#nodeCount = m.nodeCount;
    this.#recordSize = m.recordSize;
    this.#ipVersion = m.ipVersion;
    let node = 0;
    if (m.ipVersion === 6) {
      for (let i = 0; i < 96 && node < m.nodeCount; i++) node = this.#record(node, 0);
    }
    this.#ipv4Start = node;
  }

  /** How many lookups had to decode a record (cache misses) since this reader was made. */
  get missCount(): number {
    return this.#missCount;
  }

  /** Records held in the record cache now (both generations; at most GEO_RECORD_CACHE_MAX). */
  get cachedRecords(): number {
    return this.#young.size + this.#old.size;
  }

  /**
   * Finds the address `addr[off, off + len)` (len 4 or 16, network byte
   * order; an IPv4-mapped IPv6 address is looked up as IPv4). Returns one
   * packed integer: unpack with geoPrefixLenOf, geoCountryOf, geoContinentOf.
   * An address the database does not hold has country and continent -1 and
   * the prefix length of the empty network around it. Allocates nothing
   * unless its record is not cached yet.
   */
  find(addr: Uint8Array, off: number, len: number): number {
    let start: number;
    let first: number;
    let bits: number;
    let shift = 0;
    if (len === 4) {
      start = this.#ipv4Start;
      first = off;
      bits = 32;
    } else if (isV4Mapped(addr, off)) {
      start = this.#ipv4Start;
      first = off + 12;
      bits = 32;
      shift = 96;
    } else {
      // An IPv4-only database holds no IPv6 address: the whole family is one "not found" network.
      if (this.#ipVersion !== 6) return 0;
      start = 0;
      first = off;
      bits = 128;
    }
    const nodeCount = this.#nodeCount;
    let node = start;
    let depth = 0;
    while (depth < bits && node < nodeCount) {
      node = this.#record(node, (addr[first + (depth >> 3)] >> (7 - (depth & 7))) & 1);
      depth++;
    }
    const prefix = depth + shift;
    if (node <= nodeCount) return prefix;
    const cached = this.#young.get(node);
    if (cached !== undefined) return cached | prefix;
    return this.#miss(node, addr, first, bits) | prefix;
  }

  /** Not in the young generation: moves the record from the old one, or decodes it. */
  #miss(pointer: number, addr: Uint8Array, first: number, bits: number): number {
    const old = this.#old.get(pointer);
    if (old === undefined) return this.#decode(pointer, addr, first, bits);
    this.#old.delete(pointer);
    this.#keep(pointer, old);
    return old;
  }

  /** Puts a record into the young generation, turning a full one into the old one first. */
  #keep(pointer: number, packed: number): void {
    if (this.#young.size >= GEO_RECORD_GENERATION) {
      const dropped = this.#old;
      dropped.clear();
      this.#old = this.#young;
      this.#young = dropped;
    }
    this.#young.set(pointer, packed);
  }

  /** Reads record `bit` (0 left, 1 right) of `node`. */
  #record(node: number, bit: number): number {
    const db = this.#db;
    switch (this.#recordSize) {
      case 24: {
        const o = node * 6 + bit * 3;
        return (db[o] << 16) | (db[o + 1] << 8) | db[o + 2];
      }
      case 28: {
        const o = node * 7;
        if (bit === 0) return ((db[o + 3] & 0xf0) << 20) | (db[o] << 16) | (db[o + 1] << 8) | db[o + 2];
        return ((db[o + 3] & 0x0f) << 24) | (db[o + 4] << 16) | (db[o + 5] << 8) | db[o + 6];
      }
      default: {
        const o = node * 8 + bit * 4;
        return ((db[o] << 24) | (db[o + 1] << 16) | (db[o + 2] << 8) | db[o + 3]) >>> 0;
      }
    }
  }

  /** Cold: decodes the record at `pointer` through maxmind (asked with the address as text) and caches it. */
  #decode(pointer: number, addr: Uint8Array, first: number, bits: number): number {
    this.#missCount++;
    let packed = 0;
    try {
      const text = bits === 32 ? `${addr[first]}.${addr[first + 1]}.${addr[first + 2]}.${addr[first + 3]}` : ipv6Text(addr, first);
      packed = packGeoRecord(this.reader.get(text));
    } catch {
      // A record maxmind cannot decode counts as "no country"; database.ts
      // refuses files whose records do not decode, so this is a last guard.
      packed = 0;
    }
    this.#keep(pointer, packed);
    return packed;
  }
}

/** Returns true when the 16 bytes at `off` are an IPv4-mapped IPv6 address (::ffff:0:0/96, RFC 4291 §2.5.5.2). */
export function isV4Mapped(addr: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (addr[off + i] !== 0) return false;
  return addr[off + 10] === 0xff && addr[off + 11] === 0xff;
}

/** Formats 16 bytes as full, uncompressed IPv6 text (maxmind parses any valid form). */
function ipv6Text(addr: Uint8Array, off: number): string {
  let out = '';
  for (let i = 0; i < 16; i += 2) {
    if (i > 0) out += ':';
    out += ((addr[off + i] << 8) | addr[off + i + 1]).toString(16);
  }
  return out;
}
