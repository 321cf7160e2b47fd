// Bench only, cold. Encodes DNS queries for the micro benchmarks and the load
// generator, and reads the "name TYPE" query files dnsperf also reads. Setup
// time only: nothing here runs per query.

import { EDNS_OPTION, QCLASS, QTYPE } from '../../src/dns/constants.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { ipToBytes } from '../../src/lib/ip.ts';

/** EDNS settings of a query; omit for a plain RFC 1035 query. */
export interface EdnsSpec {
  readonly udpSize: number;
  readonly dnssecOk: boolean;
  /** EDNS Client Subnet (RFC 7871): IPv4 or IPv6 address and source prefix length. */
  readonly ecs?: { readonly address: string; readonly prefix: number };
}

/** One query of a query file. */
export interface QuerySpec {
  readonly name: string;
  readonly qtype: number;
  /** An EDNS Client Subnet option to send (the query then carries an OPT record): IPv4 or IPv6 address and source prefix. */
  readonly ecs?: { readonly address: string; readonly prefix: number };
}

const TYPE_BY_NAME: Readonly<Record<string, number>> = { A: QTYPE.A, AAAA: QTYPE.AAAA, NS: QTYPE.NS, SOA: QTYPE.SOA, ANY: QTYPE.ANY, TXT: QTYPE.TXT, MX: QTYPE.MX };

/**
 * Encodes a query with ID `id`, RD clear, one question (IN) and, with `edns`,
 * an OPT record (and ECS option). Returns a fresh buffer of exactly the
 * message length. Throws on a name nameToWire() rejects.
 */
export function encodeQuery(id: number, q: QuerySpec, ednsArg?: EdnsSpec): Uint8Array {
  const name = nameToWire(q.name);
  // A query-file line with ecs= sends EDNS with that option.
  const edns = ednsArg ?? (q.ecs === undefined ? undefined : { udpSize: 1232, dnssecOk: false, ecs: q.ecs });
  let optRdata = new Uint8Array(0);
  if (edns?.ecs !== undefined) {
    const bytes = ipToBytes(edns.ecs.address);
    const addrLen = (edns.ecs.prefix + 7) >> 3;
    optRdata = new Uint8Array(4 + 4 + addrLen);
    const dv = new DataView(optRdata.buffer);
    dv.setUint16(0, EDNS_OPTION.ECS);
    dv.setUint16(2, 4 + addrLen);
    dv.setUint16(4, bytes.length === 4 ? 1 : 2); // family
    optRdata[6] = edns.ecs.prefix;
    optRdata[7] = 0; // scope prefix: 0 in queries
    for (let i = 0; i < addrLen; i++) optRdata[8 + i] = bytes[i];
    // Bits past the prefix must be zero (RFC 7871 §6).
    if (edns.ecs.prefix % 8 !== 0) optRdata[8 + addrLen - 1] &= 0xff << (8 - (edns.ecs.prefix % 8));
  }
  const optLen = edns === undefined ? 0 : 11 + optRdata.length;
  const out = new Uint8Array(12 + name.length + 4 + optLen);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, id);
  dv.setUint16(4, 1); // QDCOUNT
  dv.setUint16(10, edns === undefined ? 0 : 1); // ARCOUNT
  out.set(name, 12);
  let off = 12 + name.length;
  dv.setUint16(off, q.qtype);
  dv.setUint16(off + 2, QCLASS.IN);
  off += 4;
  if (edns !== undefined) {
    out[off] = 0; // owner: root
    dv.setUint16(off + 1, QTYPE.OPT);
    dv.setUint16(off + 3, edns.udpSize);
    // Extended rcode 0, version 0, then the flags half with DO (RFC 3225).
    dv.setUint16(off + 7, edns.dnssecOk ? 0x8000 : 0);
    dv.setUint16(off + 9, optRdata.length);
    out.set(optRdata, off + 11);
  }
  return out;
}

/** Parses a query type name ("A", "AAAA", …) or a number; throws on anything else. */
export function parseQtype(text: string): number {
  const known = TYPE_BY_NAME[text.toUpperCase()];
  if (known !== undefined) return known;
  const n = Number(text);
  if (Number.isInteger(n) && n > 0 && n < 65536) return n;
  throw new Error(`unknown query type "${text}"`);
}

/**
 * Reads dnsperf's query-file format: one "name TYPE" per line; blank lines and
 * ";" comments skipped. A third field `ecs=ADDRESS/PREFIX` (ours, not
 * dnsperf's) gives the query an EDNS Client Subnet option; a file with such
 * lines reaches dnsperf as wire messages (binaryQueryFile, dnsperf -B).
 */
export function parseQueryFile(text: string): QuerySpec[] {
  const out: QuerySpec[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith(';')) continue;
    const [name, type = 'A', extra] = line.split(/\s+/);
    if (extra === undefined) {
      out.push({ name, qtype: parseQtype(type) });
      continue;
    }
    const m = /^ecs=([^/]+)\/(\d{1,3})$/.exec(extra);
    if (m === null) throw new Error(`query line "${line}": expected ecs=ADDRESS/PREFIX as its third field`);
    out.push({ name, qtype: parseQtype(type), ecs: { address: m[1], prefix: Number(m[2]) } });
  }
  if (out.length === 0) throw new Error('the query file has no queries');
  return out;
}

/** Does any query carry an option dnsperf's text format cannot say (ECS)? Then it gets the wire form. */
export function needsWireQueries(queries: readonly QuerySpec[]): boolean {
  return queries.some((q) => q.ecs !== undefined);
}

/** Encodes queries as dnsperf -B reads them (TCP-stream format: a 2-byte length before each message). */
export function binaryQueryFile(queries: readonly QuerySpec[]): Buffer {
  return Buffer.concat(queries.map((q, i) => {
    const msg = encodeQuery(i & 0xffff, q);
    const framed = Buffer.alloc(2 + msg.length);
    framed.writeUInt16BE(msg.length, 0);
    framed.set(msg, 2);
    return framed;
  }));
}
