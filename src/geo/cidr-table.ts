// The geo routing table: custom CIDR mappings (IPv4 and IPv6), the country
// and continent → region maps and the default region, compiled into one block
// of Uint32 words that the snapshot carries, and the worker's decision of a
// client's region from it. compileGeoTable runs on the main thread (cold);
// findCidr and decideRegion are worker-safe, hot, and allocate nothing.
//
// ── Layout ──────────────────────────────────────────────────────────────────
// Every offset is in 32-bit words from the table's first word (`base` in the
// functions below), so the block can sit anywhere in a larger Uint32Array,
// such as the snapshot's. Node offsets are never 0 (word 0 is the header), so
// 0 means "none".
//
//   word  GEO_MAGIC_WORD        0x47454F54 ("GEOT")
//         GEO_VERSION_WORD      GEO_TABLE_VERSION (1)
//         GEO_LENGTH_WORD       total length of the table in words
//         GEO_DEFAULT_WORD      default region index + 1 (0 = no default_region)
//         GEO_V4_ROOT_WORD      offset of the IPv4 trie's root node (0 = no IPv4 mapping)
//         GEO_V6_ROOT_WORD      offset of the IPv6 trie's root node (0 = no IPv6 mapping)
//         GEO_V4_NODES_WORD     IPv4 node count (informational)
//         GEO_V6_NODES_WORD     IPv6 node count (informational)
//   GEO_COUNTRY_MAP  (676 words)  region index + 1 of each country index (continents.ts), 0 = none
//   GEO_CONTINENT_MAP  (8 words)  region index + 1 of each continent index 0..6, 0 = none; word 7 unused
//   IPv4 nodes, 5 words each, then IPv6 nodes, 8 words each:
//         +NODE_LEN             prefix length of the node (0..32 or 0..128)
//         +NODE_CHILD0          offset of the child whose next bit is 0, or 0
//         +NODE_CHILD1          offset of the child whose next bit is 1, or 0
//         +NODE_REGION          region index + 1 of the mapping with exactly this prefix, 0 = none (a branch node)
//         +NODE_KEY             the prefix: 1 word (IPv4) or 4 words (IPv6), network byte order, zero past NODE_LEN
//
// Each family's trie is path-compressed (a PATRICIA trie): a node exists only
// where a mapping ends or where two mappings' prefixes part, so n mappings
// take at most 2n − 1 nodes (n = 1 000 IPv6 mappings: at most 64 KB), and a
// lookup visits at most one node per such point on the way down, never 128.
//
// ── The decision (decideRegion) ─────────────────────────────────────────────
// custom CIDR (longest prefix) > country > continent > default_region, as in
// the Go original, except that a country or continent is in one region only
// (the config refuses it twice) and the default also serves a client whose
// region the database does not know.
//
// ── ECS scope (what the resolver's cache is told) ───────────────────────────
// RFC 7871 §7.3.1: a resolver ties the answer to FAMILY/ADDRESS/SCOPE and
// gives it to every client inside that network. The scope is therefore the
// shortest prefix whose whole network gets the same decision, so it must be
// long enough to leave out every mapping more specific than the one that
// decided. Example: 10.0.0.0/8 → A and 10.1.0.0/16 → B. Client 10.2.3.4 is
// decided by the /8, but answering scope /8 would hand A to 10.1.x.x from the
// cache; its scope is /15 (10.2.0.0/15 holds no more specific mapping). This
// is the "deaggregate" choice of RFC 7871 §7.2.1 for a specific mapping
// inside a less specific one. In the trie it is the depth at which the
// client's path leaves every mapping behind:
//   - the client's bits part from a node's prefix at bit d → scope d + 1;
//   - a node on the path has no child on the client's side → scope len + 1,
//     or len when it has no child at all;
//   - the path reaches a full-length node → 32 or 128; an empty trie → 0.
// A decision by GeoIP or default takes max(that, the GeoIP network's prefix
// length): the database's record is the same across that network (and so is
// "not in the database"), the mappings across the other, and the longer of
// two nested networks around one address is their intersection. The scope
// can be longer than the query's SOURCE PREFIX-LENGTH (§7.2.1 allows it: "the
// provided prefix length was not specific enough"). Networks are not merged
// into supernets with the same region (gdnsd does): the scope is always
// truthful, sometimes longer than it needs to be.
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, as a dual-stack socket reports
// IPv4 clients) are looked up as IPv4 in both the table and the database, and
// their lengths reported in IPv6 terms (+ 96).

import { CONTINENT_CODES, CONTINENT_OF_COUNTRY, COUNTRY_SLOTS, continentIndex, countryIndex } from './continents.ts';
import { geoContinentOf, geoCountryOf, geoPrefixLenOf, isV4Mapped } from './lookup.ts';
import type { GeoIpReader } from './lookup.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { formatIpBytes, ipToBytes } from '../lib/ip.ts';

export const GEO_MAGIC = 0x47454f54;
export const GEO_TABLE_VERSION = 1;

export const GEO_MAGIC_WORD = 0;
export const GEO_VERSION_WORD = 1;
export const GEO_LENGTH_WORD = 2;
export const GEO_DEFAULT_WORD = 3;
export const GEO_V4_ROOT_WORD = 4;
export const GEO_V6_ROOT_WORD = 5;
export const GEO_V4_NODES_WORD = 6;
export const GEO_V6_NODES_WORD = 7;
export const GEO_HEADER_WORDS = 8;
/** Offset of the country → region map (COUNTRY_SLOTS words). */
export const GEO_COUNTRY_MAP = GEO_HEADER_WORDS;
/** Offset of the continent → region map (8 words). */
export const GEO_CONTINENT_MAP = GEO_COUNTRY_MAP + COUNTRY_SLOTS;
/** Offset of the first trie node. */
export const GEO_NODES = GEO_CONTINENT_MAP + 8;

export const NODE_LEN = 0;
export const NODE_CHILD0 = 1;
export const NODE_CHILD1 = 2;
export const NODE_REGION = 3;
export const NODE_KEY = 4;
export const NODE_WORDS_V4 = 5;
export const NODE_WORDS_V6 = 8;

/** Most mappings one table takes (config and API together): 100 000 IPv6 mappings are at most 6.4 MB of nodes. */
export const MAX_CIDR_MAPPINGS = 100_000;
/** Largest region index the table stores (NODE_REGION and the maps keep index + 1 in a word). */
export const MAX_REGION_INDEX = 0xfffffffe;

/** No region: no mapping, no database match and no default_region. */
export const MATCH_NONE = 0;
/** A custom CIDR mapping decided. */
export const MATCH_CUSTOM = 1;
/** The database's country decided. */
export const MATCH_COUNTRY = 2;
/** The continent (from the database, or derived from the country) decided. */
export const MATCH_CONTINENT = 3;
/** Nothing matched; default_region decided. */
export const MATCH_DEFAULT = 4;

/** The match type names of the admin API and the metrics, per MATCH_* value (country and continent are both "geoip", as in the Go original). */
export const MATCH_TYPE_NAMES = ['none', 'custom_mapping', 'geoip', 'geoip', 'default'] as const;

/** One custom mapping for compileGeoTable: a CIDR prefix ("10.0.0.0/8", "2001:db8::/32"; host bits are ignored) and a region index. */
export interface CidrMapping {
  readonly cidr: string;
  readonly region: number;
}

/** What compileGeoTable compiles; region indexes are positions in the config's `regions`. */
export interface GeoTableInput {
  /** Per region index, its ISO 3166-1 alpha-2 codes and continent codes (any case). */
  readonly regions: readonly { readonly countries: readonly string[]; readonly continents: readonly string[] }[];
  /** Region index of default_region, or -1. */
  readonly defaultRegion: number;
  readonly mappings: readonly CidrMapping[];
}

/**
 * The outcome of one decision; one instance per worker, overwritten by every
 * decideRegion call (every field, every time).
 */
export class GeoDecision {
  /** Region index (position in the config's regions), or -1 when nothing decided. */
  region = -1;
  /** MATCH_* value. */
  match = MATCH_NONE;
  /** The ECS SCOPE PREFIX-LENGTH this decision may be cached for (see the file header). */
  scopeLen = 0;
  /** Prefix length of the custom mapping that matched, or -1. */
  cidrLen = -1;
  /** Country index from the database (continents.ts), or -1 (no database asked, or no country). */
  country = -1;
  /** Continent index 0..6 from the database or derived from the country, or -1. */
  continent = -1;
  /** Prefix length of the database network that holds the address, or -1 when the database was not asked. */
  geoPrefixLen = -1;
}

// ── compile (main thread, cold) ──────────────────────────────────────────────

/**
 * One family's mappings while the table is built: the prefixes in typed
 * arrays (no object per mapping or per bit), sorted so the compressed trie
 * comes out in one pass over them. An earlier builder made one object per bit
 * of every mapping and compressed afterwards: 100 000 IPv6 /128 took 1.7 s and
 * ~550 MB of heap on the main thread, at every snapshot compile (each PUT or
 * DELETE of /api/v1/geo/mappings); this one takes memory proportional to the
 * mappings and time O(n log n) (figures in test/geo/cidr-table-build.test.ts).
 */
interface FamilyBuild {
  /** Key words per prefix: 1 (IPv4) or 4 (IPv6), network byte order, host bits clear. */
  readonly keyWords: number;
  /** Words per node in the table: NODE_WORDS_V4 or NODE_WORDS_V6. */
  readonly stride: number;
  readonly keys: Uint32Array;
  readonly lens: Uint8Array;
  /** Region index + 1 of each prefix. */
  readonly regions: Uint32Array;
  /** Position of each prefix in the input (errors name the first in input order). */
  readonly inputAt: Uint32Array;
  count: number;
}

/**
 * Compiles the geo routing table (layout in the file header) into a new
 * Uint32Array; copy it into the snapshot with `words.set(table, base)`.
 * Throws OpenGslbError OPENGSLB_ERR_SNAPSHOT_COMPILE naming the problem for a
 * CIDR that is not an IP literal with a prefix length, the same network twice,
 * a region index out of range, an unknown country or continent code, the same
 * country or continent in two regions, or more than MAX_CIDR_MAPPINGS mappings.
 * (The config validator reports all of these with file positions first; this
 * is the last guard for mappings that come from elsewhere, such as the API.)
 * When several mappings are wrong, the error names the first one in input
 * order that is wrong (a repeated network at its second occurrence).
 */
export function compileGeoTable(input: GeoTableInput): Uint32Array {
  const regionCount = input.regions.length;
  const fail = (message: string): never => {
    throw new OpenGslbError('OPENGSLB_ERR_SNAPSHOT_COMPILE', `geo table: ${message}`);
  };
  const regionProblem = (region: number, what: string): string | null =>
    !Number.isInteger(region) || region < 0 || region >= regionCount || region > MAX_REGION_INDEX
      ? `${what} names region index ${region}, expected 0..${regionCount - 1}`
      : null;
  const checkRegion = (region: number, what: string): void => {
    const problem = regionProblem(region, what);
    if (problem !== null) fail(problem);
  };
  if (input.mappings.length > MAX_CIDR_MAPPINGS) fail(`${input.mappings.length} custom mappings, expected at most ${MAX_CIDR_MAPPINGS}`);
  if (input.defaultRegion !== -1) checkRegion(input.defaultRegion, 'default_region');

  const countryMap = new Uint32Array(COUNTRY_SLOTS);
  const continentMap = new Uint32Array(8);
  input.regions.forEach((r, region) => {
    for (const code of r.countries) {
      const i = countryIndex(code);
      if (i < 0 || CONTINENT_OF_COUNTRY[i] < 0) fail(`region ${region}: "${code}" is not an ISO 3166-1 alpha-2 country code`);
      if (countryMap[i] !== 0) fail(`country ${code.toUpperCase()} is in regions ${countryMap[i] - 1} and ${region}`);
      countryMap[i] = region + 1;
    }
    for (const code of r.continents) {
      const k = continentIndex(code);
      if (k < 0) fail(`region ${region}: "${code}" is not a continent code, expected one of ${CONTINENT_CODES.join(' ')}`);
      if (continentMap[k] !== 0) fail(`continent ${code.toUpperCase()} is in regions ${continentMap[k] - 1} and ${region}`);
      continentMap[k] = region + 1;
    }
  });

  const n = input.mappings.length;
  const families: [FamilyBuild, FamilyBuild] = [newFamilyBuild(1, NODE_WORDS_V4, n), newFamilyBuild(4, NODE_WORDS_V6, n)];
  // Mappings are read up to the first bad one; a network repeated before it is reported instead (it came first).
  let bad: string | null = null;
  for (let i = 0; i < n && bad === null; i++) {
    const m = input.mappings[i];
    bad = regionProblem(m.region, `mapping ${m.cidr}`);
    if (bad !== null) break;
    const parsed = parseCidrBytes(m.cidr);
    if (parsed === null) {
      bad = `"${m.cidr}" is not a CIDR prefix such as "10.0.0.0/8" or "2001:db8::/32"`;
      break;
    }
    addPrefix(families[parsed.bytes.length === 4 ? 0 : 1], parsed.bytes, parsed.len, m.region + 1, i);
  }
  const orders = [sortPrefixes(families[0]), sortPrefixes(families[1])];
  let twice: { family: FamilyBuild; first: number; second: number } | null = null;
  for (let f = 0; f < 2; f++) {
    const fam = families[f];
    const order = orders[f];
    for (let j = 1; j < fam.count; j++) {
      const a = order[j - 1];
      const b = order[j];
      // Sorted by key, then length, then input position: a repeated network's first occurrence comes just before the next.
      if (comparePrefixes(fam, a, b) === 0 && (twice === null || fam.inputAt[b] < twice.family.inputAt[twice.second])) twice = { family: fam, first: a, second: b };
    }
  }
  if (twice !== null) {
    const { family, first, second } = twice;
    const parsed = parseCidrBytes(input.mappings[family.inputAt[second]].cidr) as { bytes: Uint8Array; len: number };
    fail(`${maskedCidr(parsed.bytes, parsed.len)} is mapped twice (regions ${family.regions[first] - 1} and ${family.regions[second] - 1})`);
  }
  if (bad !== null) fail(bad);

  const v4 = emitFamily(families[0], orders[0], GEO_NODES);
  const v6 = emitFamily(families[1], orders[1], GEO_NODES + v4.nodes.length);
  const total = GEO_NODES + v4.nodes.length + v6.nodes.length;
  const table = new Uint32Array(total);
  table[GEO_MAGIC_WORD] = GEO_MAGIC;
  table[GEO_VERSION_WORD] = GEO_TABLE_VERSION;
  table[GEO_LENGTH_WORD] = total;
  table[GEO_DEFAULT_WORD] = input.defaultRegion + 1;
  table.set(countryMap, GEO_COUNTRY_MAP);
  table.set(continentMap, GEO_CONTINENT_MAP);
  table.set(v4.nodes, GEO_NODES);
  table.set(v6.nodes, GEO_NODES + v4.nodes.length);
  table[GEO_V4_ROOT_WORD] = v4.root;
  table[GEO_V6_ROOT_WORD] = v6.root;
  table[GEO_V4_NODES_WORD] = v4.nodes.length / NODE_WORDS_V4;
  table[GEO_V6_NODES_WORD] = v6.nodes.length / NODE_WORDS_V6;
  return table;
}

function newFamilyBuild(keyWords: number, stride: number, capacity: number): FamilyBuild {
  return {
    keyWords,
    stride,
    keys: new Uint32Array(capacity * keyWords),
    lens: new Uint8Array(capacity),
    regions: new Uint32Array(capacity),
    inputAt: new Uint32Array(capacity),
    count: 0,
  };
}

function addPrefix(fam: FamilyBuild, bytes: Uint8Array, len: number, region: number, inputAt: number): void {
  const p = fam.count++;
  for (let w = 0; w < fam.keyWords; w++) {
    const o = w * 4;
    fam.keys[p * fam.keyWords + w] = ((bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3]) >>> 0;
  }
  fam.lens[p] = len;
  fam.regions[p] = region;
  fam.inputAt[p] = inputAt;
}

/** Orders key, then length, then input position; 0 only for the same network (same key and length). */
function comparePrefixes(fam: FamilyBuild, a: number, b: number): number {
  const kw = fam.keyWords;
  for (let w = 0; w < kw; w++) {
    const x = fam.keys[a * kw + w];
    const y = fam.keys[b * kw + w];
    if (x !== y) return x < y ? -1 : 1;
  }
  return fam.lens[a] - fam.lens[b];
}

/**
 * The family's prefixes in trie order: by key, a shorter prefix before the
 * longer ones it holds (its host bits are clear, so it sorts first), then by
 * input position. A subtree of the trie is then a run of this order, and the
 * trie's preorder (the node, its 0 side, its 1 side) is this order.
 */
function sortPrefixes(fam: FamilyBuild): Uint32Array {
  const order = new Uint32Array(fam.count);
  for (let i = 0; i < fam.count; i++) order[i] = i;
  order.sort((a, b) => comparePrefixes(fam, a, b) || fam.inputAt[a] - fam.inputAt[b]);
  return order;
}

/** Returns the bit (0-based) where the keys of prefixes a and b first differ, or the key's full width when they do not. */
function commonBits(fam: FamilyBuild, a: number, b: number): number {
  const kw = fam.keyWords;
  for (let w = 0; w < kw; w++) {
    const x = (fam.keys[a * kw + w] ^ fam.keys[b * kw + w]) >>> 0;
    if (x !== 0) return w * 32 + Math.clz32(x);
  }
  return kw * 32;
}

function keyBit(fam: FamilyBuild, p: number, bit: number): number {
  return (fam.keys[p * fam.keyWords + (bit >>> 5)] >>> (31 - (bit & 31))) & 1;
}

/**
 * Writes the family's compressed trie (no repeated network left) in preorder,
 * the first node at table offset `firstAt`; returns the nodes' words and the
 * root's offset (0 for no mapping). A node is written where a mapping ends or
 * where two mappings part, so at most 2n − 1 of them. Recursion depth is at
 * most the key width + 1 (each node is at least one bit deeper than its parent).
 */
function emitFamily(fam: FamilyBuild, order: Uint32Array, firstAt: number): { nodes: Uint32Array; root: number } {
  if (fam.count === 0) return { nodes: new Uint32Array(0), root: 0 };
  const stride = fam.stride;
  const out = new Uint32Array((2 * fam.count - 1) * stride);
  let used = 0;
  // Emits the node of the run order[lo, hi): its depth is where the run's
  // prefixes stop agreeing (first and last, as the run is sorted) or where its
  // shortest prefix (the first, when shorter than that) ends.
  const emit = (lo: number, hi: number): number => {
    const first = order[lo];
    const depth = hi - lo === 1 ? fam.lens[first] : Math.min(fam.lens[first], commonBits(fam, first, order[hi - 1]));
    const at = used;
    used += stride;
    out[at + NODE_LEN] = depth;
    for (let w = 0; w < fam.keyWords; w++) {
      const inWord = depth - w * 32;
      const mask = inWord >= 32 ? 0xffffffff : inWord <= 0 ? 0 : ~(0xffffffff >>> inWord);
      out[at + NODE_KEY + w] = (fam.keys[first * fam.keyWords + w] & mask) >>> 0;
    }
    let rest = lo;
    if (fam.lens[first] === depth) {
      out[at + NODE_REGION] = fam.regions[first];
      rest = lo + 1;
    }
    // The rest are longer than depth and agree up to it: those with a 0 at bit `depth` come first.
    let mid = rest;
    let top = hi;
    while (mid < top) {
      const m = (mid + top) >>> 1;
      if (keyBit(fam, order[m], depth) === 0) mid = m + 1;
      else top = m;
    }
    if (mid > rest) out[at + NODE_CHILD0] = emit(rest, mid);
    if (mid < hi) out[at + NODE_CHILD1] = emit(mid, hi);
    return firstAt + at;
  };
  const root = emit(0, fam.count);
  return { nodes: out.subarray(0, used), root };
}

/** Parses "ADDRESS/LEN" into the address bytes (4 or 16, host bits cleared) and the length; null when it is not one. */
function parseCidrBytes(cidr: string): { bytes: Uint8Array; len: number } | null {
  const slash = cidr.indexOf('/');
  if (slash < 0 || !/^\d{1,3}$/.test(cidr.slice(slash + 1))) return null;
  let bytes: Uint8Array;
  try {
    bytes = ipToBytes(cidr.slice(0, slash));
  } catch {
    return null;
  }
  const len = Number(cidr.slice(slash + 1));
  if (len > bytes.length * 8) return null;
  clearHostBits(bytes, len);
  return { bytes, len };
}

function clearHostBits(bytes: Uint8Array, len: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    bytes[i] &= (0xff00 >> keep) & 0xff;
  }
}

/** Formats the network of `len` bits around the address `bytes` (4 or 16 of them) as "ADDRESS/LEN", host bits cleared. Cold path. */
export function maskedCidr(bytes: Uint8Array, len: number): string {
  const copy = Uint8Array.from(bytes);
  clearHostBits(copy, len);
  return `${formatIpBytes(copy, 0, copy.length)}/${len}`;
}

// ── lookup (worker, hot) ─────────────────────────────────────────────────────

/** The client address as four big-endian words (IPv4: word 0 only); per thread, overwritten by every lookup. */
const ADDR = new Uint32Array(4);

/** Loads `len` (4 or 16) address bytes into ADDR. */
function loadAddress(addr: Uint8Array, off: number, len: number): void {
  for (let w = 0; w < len >> 2; w++) {
    const o = off + w * 4;
    ADDR[w] = ((addr[o] << 24) | (addr[o + 1] << 16) | (addr[o + 2] << 8) | addr[o + 3]) >>> 0;
  }
}

/**
 * Finds the custom mapping with the longest prefix that holds the address
 * `addr[off, off + len)` (len 4 or 16, network byte order; an IPv4-mapped
 * IPv6 address is looked up as IPv4) in the table at `table[base…]`. Returns
 * the mapping's region index, or -1 when none holds it. Writes into `out`:
 * cidrLen (the mapping's prefix length, -1 when none) and scopeLen (the
 * shortest prefix around the address that no more specific mapping cuts,
 * see the file header); touches no other field. Allocation-free; the table
 * must come from compileGeoTable (checked once, at attach, with
 * checkGeoTable).
 */
export function findCidr(table: Uint32Array, base: number, addr: Uint8Array, off: number, len: number, out: GeoDecision): number {
  let shift = 0;
  let bits = 128;
  let root: number;
  if (len === 4) {
    bits = 32;
    loadAddress(addr, off, 4);
    root = table[base + GEO_V4_ROOT_WORD];
  } else if (isV4Mapped(addr, off)) {
    shift = 96;
    bits = 32;
    loadAddress(addr, off + 12, 4);
    root = table[base + GEO_V4_ROOT_WORD];
  } else {
    loadAddress(addr, off, 16);
    root = table[base + GEO_V6_ROOT_WORD];
  }
  let region = -1;
  let matchLen = -1;
  let scope = 0;
  let node = root;
  // Each step goes at least one bit deeper, so the loop runs at most bits + 1 times.
  while (node !== 0) {
    const at = base + node;
    const nodeLen = table[at + NODE_LEN];
    const diff = firstDifference(table, at + NODE_KEY, nodeLen);
    if (diff < nodeLen) {
      // The address leaves this node's prefix at bit `diff`: nothing below it concerns the address.
      scope = diff + 1;
      break;
    }
    const r = table[at + NODE_REGION];
    if (r !== 0) {
      region = r - 1;
      matchLen = nodeLen;
    }
    if (nodeLen === bits) {
      scope = bits;
      break;
    }
    const c0 = table[at + NODE_CHILD0];
    const c1 = table[at + NODE_CHILD1];
    const next = ((ADDR[nodeLen >>> 5] >>> (31 - (nodeLen & 31))) & 1) === 0 ? c0 : c1;
    if (next === 0) {
      scope = c0 === 0 && c1 === 0 ? nodeLen : nodeLen + 1;
      break;
    }
    node = next;
  }
  out.cidrLen = matchLen < 0 ? -1 : matchLen + shift;
  // An IPv4-mapped address lives in ::ffff:0:0/96, where only its IPv4 bits
  // decide: the scope is at least 96 even when no IPv4 mapping exists.
  out.scopeLen = scope + shift;
  return region;
}

/** Returns the first bit (0-based) where ADDR and the key at `table[keyAt…]` differ within their first `len` bits, or `len` when they agree. */
function firstDifference(table: Uint32Array, keyAt: number, len: number): number {
  for (let w = 0; w * 32 < len; w++) {
    let x = (ADDR[w] ^ table[keyAt + w]) >>> 0;
    const inWord = len - w * 32;
    if (inWord < 32) x &= ~(0xffffffff >>> inWord);
    if (x !== 0) return w * 32 + Math.clz32(x);
  }
  return len;
}

/**
 * Decides the region of the client address `addr[off, off + len)` (len 4 or
 * 16): custom mapping by longest prefix > the database's country > its
 * continent (or the continent of its country) > default_region. `geo` is the
 * worker's GeoIP reader, or null when there is none (mappings and default
 * only). Returns the region index or -1 (no mapping, no match and no
 * default_region), and fills every field of `out` (see GeoDecision; scopeLen
 * is the ECS SCOPE PREFIX-LENGTH for the answer). Allocation-free on the
 * table side; the reader allocates only on its cache misses (lookup.ts).
 */
export function decideRegion(table: Uint32Array, base: number, addr: Uint8Array, off: number, len: number, geo: GeoIpReader | null, out: GeoDecision): number {
  const custom = findCidr(table, base, addr, off, len, out);
  out.country = -1;
  out.continent = -1;
  out.geoPrefixLen = -1;
  if (custom >= 0) {
    out.region = custom;
    out.match = MATCH_CUSTOM;
    return custom;
  }
  if (geo !== null) {
    const found = geo.find(addr, off, len);
    out.geoPrefixLen = geoPrefixLenOf(found);
    out.country = geoCountryOf(found);
    out.continent = geoContinentOf(found);
    if (out.geoPrefixLen > out.scopeLen) out.scopeLen = out.geoPrefixLen;
    if (out.country >= 0) {
      const r = table[base + GEO_COUNTRY_MAP + out.country];
      if (r !== 0) {
        out.region = r - 1;
        out.match = MATCH_COUNTRY;
        return out.region;
      }
    }
    if (out.continent >= 0) {
      const r = table[base + GEO_CONTINENT_MAP + out.continent];
      if (r !== 0) {
        out.region = r - 1;
        out.match = MATCH_CONTINENT;
        return out.region;
      }
    }
  }
  return decideDefault(table, base, out, false);
}

/**
 * Decides for a query that carries no usable client address, such as an ECS
 * option with SOURCE PREFIX-LENGTH 0 (RFC 7871 §7.1.2: the client asks that
 * no address be used): default_region, scope 0 (§7.3.1: a resolver caches
 * that answer for other /0 queries only). Returns the region index or -1 and
 * fills every field of `out`.
 */
export function decideWithoutAddress(table: Uint32Array, base: number, out: GeoDecision): number {
  return decideDefault(table, base, out, true);
}

function decideDefault(table: Uint32Array, base: number, out: GeoDecision, reset: boolean): number {
  if (reset) {
    out.cidrLen = -1;
    out.scopeLen = 0;
    out.country = -1;
    out.continent = -1;
    out.geoPrefixLen = -1;
  }
  const d = table[base + GEO_DEFAULT_WORD];
  out.region = d - 1;
  out.match = d === 0 ? MATCH_NONE : MATCH_DEFAULT;
  return out.region;
}

/**
 * Checks that `table[base…]` holds a geo table this code reads: magic,
 * version, length within the array, roots inside it. Call once when a worker
 * attaches a snapshot, never per query. Returns null, or what is wrong.
 */
export function checkGeoTable(table: Uint32Array, base: number): string | null {
  if (base < 0 || base + GEO_NODES > table.length) return `geo table at word ${base} does not fit in ${table.length} words`;
  if (table[base + GEO_MAGIC_WORD] !== GEO_MAGIC) return `geo table at word ${base} has magic 0x${table[base].toString(16)}, expected 0x${GEO_MAGIC.toString(16)}`;
  if (table[base + GEO_VERSION_WORD] !== GEO_TABLE_VERSION) return `geo table version ${table[base + GEO_VERSION_WORD]}, expected ${GEO_TABLE_VERSION}`;
  const length = table[base + GEO_LENGTH_WORD];
  if (length < GEO_NODES || base + length > table.length) return `geo table length ${length} words does not fit`;
  for (const w of [GEO_V4_ROOT_WORD, GEO_V6_ROOT_WORD]) {
    const root = table[base + w];
    if (root !== 0 && (root < GEO_NODES || root >= length)) return `geo table root ${root} is outside the table`;
  }
  return null;
}
