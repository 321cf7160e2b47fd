// Tests only. Writes small MaxMind DB (.mmdb) files, so tests can build
// GeoIP databases of either shape (MaxMind's `country.iso_code` /
// `continent.code`, DB-IP's `country_code`) with networks they choose. No npm
// package writes the format, so this follows the MaxMind DB File Format
// Specification 2.0: a binary search tree, 16 zero bytes, a data section,
// then "\xAB\xCD\xEFMaxMind.com" and the metadata map.

import { ipToBytes } from '../../src/lib/ip.ts';

/** A value the data section can hold: text, unsigned integers, doubles, booleans, maps and arrays. */
export type MmdbValue = string | number | bigint | boolean | MmdbValue[] | { [key: string]: MmdbValue };

export interface MmdbNetwork {
  /** "192.0.2.0/24" or "2001:db8::/32"; IPv4 networks sit at ::/96 in an IPv6 tree. */
  readonly cidr: string;
  readonly data: MmdbValue;
}

export interface MmdbOptions {
  readonly ipVersion?: 4 | 6;
  readonly recordSize?: 24 | 28 | 32;
  readonly databaseType?: string;
  readonly networks: readonly MmdbNetwork[];
  /** Unix seconds written as build_epoch. */
  readonly buildEpoch?: number;
}

interface TrieNode {
  data: number | null;
  child: [TrieNode | null, TrieNode | null];
  id: number;
}

/** Returns the bytes of an .mmdb file holding `networks` (a later network overrides an earlier one where it is more specific). */
export function writeMmdb(opts: MmdbOptions): Buffer {
  const ipVersion = opts.ipVersion ?? 6;
  const recordSize = opts.recordSize ?? 24;
  const data = new DataWriter();
  const root: TrieNode = { data: null, child: [null, null], id: 0 };
  for (const n of opts.networks) {
    const [addr, lenText] = n.cidr.split('/');
    let bytes = ipToBytes(addr);
    let len = Number(lenText);
    if (bytes.length === 4 && ipVersion === 6) {
      const wide = new Uint8Array(16);
      wide.set(bytes, 12);
      bytes = wide;
      len += 96;
    }
    if (bytes.length === 16 && ipVersion === 4) throw new Error(`writeMmdb: ${n.cidr} does not fit an IPv4 tree`);
    const offset = data.value(n.data);
    let node = root;
    for (let i = 0; i < len; i++) {
      const bit = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
      node.child[bit] ??= { data: null, child: [null, null], id: 0 };
      node = node.child[bit] as TrieNode;
    }
    node.data = offset;
  }

  // Number the nodes that have children (breadth first); the root always is one.
  const internal: TrieNode[] = [root];
  for (let i = 0; i < internal.length; i++) {
    for (const c of internal[i].child) if (c !== null && (c.child[0] !== null || c.child[1] !== null)) internal.push(c);
  }
  internal.forEach((n, i) => (n.id = i));
  const nodeCount = internal.length;
  const nodeBytes = recordSize / 4;
  const tree = Buffer.alloc(nodeCount * nodeBytes);
  // Push each node's data down to the children that have none of their own.
  const inherited = new Map<TrieNode, number | null>([[root, root.data]]);
  for (const n of internal) {
    const here = n.data ?? inherited.get(n) ?? null;
    const records = n.child.map((c) => {
      if (c !== null && (c.child[0] !== null || c.child[1] !== null)) {
        inherited.set(c, c.data ?? here);
        return c.id;
      }
      const leaf = c?.data ?? here;
      return leaf === null ? nodeCount : nodeCount + 16 + leaf;
    });
    writeNode(tree, n.id * nodeBytes, recordSize, records[0], records[1]);
  }

  const meta = new DataWriter();
  meta.value({
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: BigInt(opts.buildEpoch ?? 1_700_000_000),
    database_type: opts.databaseType ?? 'Test-Country',
    description: { en: 'test database written by test/helpers/mmdb-writer.ts' },
    ip_version: ipVersion,
    languages: ['en'],
    node_count: nodeCount,
    record_size: recordSize,
  }, { uint16: ['binary_format_major_version', 'binary_format_minor_version', 'ip_version', 'record_size'] });
  return Buffer.concat([tree, Buffer.alloc(16), data.bytes(), Buffer.from('abcdef4d61784d696e642e636f6d', 'hex'), meta.bytes()]);
}

function writeNode(tree: Buffer, at: number, recordSize: number, left: number, right: number): void {
  if (recordSize === 24) {
    tree.writeUIntBE(left, at, 3);
    tree.writeUIntBE(right, at + 3, 3);
  } else if (recordSize === 28) {
    tree.writeUIntBE(left & 0xffffff, at, 3);
    tree[at + 3] = ((left >>> 24) << 4) | (right >>> 24);
    tree.writeUIntBE(right & 0xffffff, at + 4, 3);
  } else {
    tree.writeUInt32BE(left, at);
    tree.writeUInt32BE(right, at + 4);
  }
}

/** Encodes values into a data section; equal values are written once. */
class DataWriter {
  readonly #chunks: Buffer[] = [];
  #length = 0;
  readonly #seen = new Map<string, number>();

  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Appends `v` (or finds it already written) and returns its offset in the section. */
  value(v: MmdbValue, hints: { uint16?: readonly string[] } = {}): number {
    const key = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
    const known = this.#seen.get(key);
    if (known !== undefined) return known;
    const offset = this.#length;
    this.#push(encode(v, hints));
    this.#seen.set(key, offset);
    return offset;
  }

  #push(b: Buffer): void {
    this.#chunks.push(b);
    this.#length += b.length;
  }
}

/** Control byte(s) for `type` (1..15) and payload `size` (spec: "Data Field Format"). */
function control(type: number, size: number): Buffer {
  const sizeBytes: number[] = [];
  let small = size;
  if (size >= 65821) {
    small = 31;
    const s = size - 65821;
    sizeBytes.push((s >> 16) & 0xff, (s >> 8) & 0xff, s & 0xff);
  } else if (size >= 285) {
    small = 30;
    const s = size - 285;
    sizeBytes.push((s >> 8) & 0xff, s & 0xff);
  } else if (size >= 29) {
    small = 29;
    sizeBytes.push(size - 29);
  }
  if (type <= 7) return Buffer.from([(type << 5) | small, ...sizeBytes]);
  return Buffer.from([small, type - 7, ...sizeBytes]);
}

function uintBytes(n: bigint): Buffer {
  const out: number[] = [];
  while (n > 0n) {
    out.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  return Buffer.from(out);
}

function encode(v: MmdbValue, hints: { uint16?: readonly string[] }, key?: string): Buffer {
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    return Buffer.concat([control(2, b.length), b]);
  }
  if (typeof v === 'boolean') return control(14, v ? 1 : 0);
  if (typeof v === 'bigint') {
    const b = uintBytes(v);
    return Buffer.concat([control(9, b.length), b]);
  }
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
      const b = uintBytes(BigInt(v));
      const type = key !== undefined && hints.uint16?.includes(key) === true ? 5 : 6;
      return Buffer.concat([control(type, b.length), b]);
    }
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return Buffer.concat([control(3, 8), b]);
  }
  if (Array.isArray(v)) return Buffer.concat([control(11, v.length), ...v.map((x) => encode(x, hints))]);
  const entries = Object.entries(v);
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([k, x]) => [encode(k, hints), encode(x, hints, k)])]);
}

/** A record as MaxMind's GeoIP2/GeoLite2 Country databases write it. */
export function maxmindCountry(country: string | null, continent: string | null): MmdbValue {
  const rec: Record<string, MmdbValue> = {};
  if (continent !== null) rec.continent = { code: continent, geoname_id: 1, names: { en: continent } };
  if (country !== null) rec.country = { geoname_id: 2, iso_code: country, names: { en: country } };
  return rec;
}

/** A record as DB-IP's lite database in @ip-location-db writes it. */
export function dbipCountry(country: string): MmdbValue {
  return { country_code: country };
}
