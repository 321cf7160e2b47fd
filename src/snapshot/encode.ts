// Main thread, cold path. Step 2 of 3 of compiling a snapshot
// (model → encode → pack, ./compile.ts): the wire bytes a worker copies into
// answers, built once per snapshot. Owner names, SOA/NS/glue RRs and one
// complete answer RR per member (owner = pointer to the question, TTL and
// rdata in place), the geo table of geolocation routing, each signed zone's
// DNSKEY RRs, and per node the NSEC type bitmap a NODATA answer with the DO
// bit carries (compact denial, RFC 9824).

import type { StaticRdata, ZoneConfig } from '../config/types.ts';
import { QCLASS, QTYPE } from '../dns/constants.ts';
import { nameToWire } from '../dns/names.ts';
import { nodataBitmap } from '../dnssec/denial.ts';
import { DNSKEY_TTL_SEC } from '../dnssec/keys.ts';
import { DNSSEC_TYPE } from '../dnssec/sign.ts';
import { compileGeoTable } from '../geo/cidr-table.ts';
import { ipToBytes } from '../lib/ip.ts';
import { NODE_FLAG_APEX } from './layout.ts';
import type { RrsetRow, SnapshotModel } from './model.ts';

/** The encoded pieces of a snapshot, parallel to the model's rows. */
export interface EncodedSnapshot {
  /** Per node: its lower-case wire name. */
  readonly nodeNames: readonly Uint8Array[];
  /** Per zone: the SOA RR body (TYPE CLASS TTL RDLENGTH RDATA; the worker writes the owner). */
  readonly soa: readonly Uint8Array[];
  /** Per zone: the NS RR bodies back to back, and how many. */
  readonly ns: readonly { readonly bytes: Uint8Array; readonly count: number }[];
  /** Per zone: complete glue RRs (uncompressed owners) back to back, and how many. */
  readonly glue: readonly { readonly bytes: Uint8Array; readonly count: number }[];
  /** Per record: one complete answer RR per member row, then per fallback row, in pack order. */
  readonly fragments: readonly (readonly Uint8Array[])[];
  /** Per zone: the DNSKEY RR bodies back to back, and how many (0 for a zone that is not signed). */
  readonly dnskey: readonly { readonly bytes: Uint8Array; readonly count: number }[];
  /** Per node: its NODATA NSEC type bitmap with a leading length byte. */
  readonly nsecBitmaps: readonly Uint8Array[];
  /** The compiled geo table (src/geo/cidr-table.ts), or null when no domain routes by geolocation. */
  readonly geoTable: Uint32Array | null;
  /** Per static RRset: its RR bodies back to back, and its glue RRs (complete, uncompressed owners). */
  readonly rrsets: readonly { readonly bodies: Uint8Array; readonly glue: Uint8Array }[];
  /** dns.identity.id / .version as TXT rdata; empty = unset. */
  readonly idTxt: Uint8Array;
  readonly versionTxt: Uint8Array;
}

/** Encodes character-strings (each ≤ 255 octets, latin1) as TXT rdata. */
function txtRdata(strings: readonly string[]): Uint8Array {
  return Buffer.concat(strings.map((s) => {
    const bytes = Buffer.from(s, 'latin1');
    return Buffer.concat([Uint8Array.of(bytes.length), bytes]);
  }));
}

/** Encodes a u16 followed by more bytes. */
function u16Then(values: readonly number[], rest: Uint8Array): Uint8Array {
  const head = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => head.writeUInt16BE(v, i * 2));
  return Buffer.concat([head, rest]);
}

/** Encodes one static record's rdata (names uncompressed and lower-case, RFC 3597 §4 style for every type). */
export function staticRdata(rdata: StaticRdata): Uint8Array {
  switch (rdata.type) {
    case 'A':
    case 'AAAA':
      return ipToBytes(rdata.address);
    case 'CNAME':
    case 'NS':
    case 'PTR':
      return nameToWire(rdata.target);
    case 'MX':
      return u16Then([rdata.preference], nameToWire(rdata.exchange));
    case 'SRV':
      return u16Then([rdata.priority, rdata.weight, rdata.port], nameToWire(rdata.target));
    case 'TXT':
      return txtRdata(rdata.strings);
    case 'CAA': {
      const tag = Buffer.from(rdata.tag, 'latin1');
      return Buffer.concat([Uint8Array.of(rdata.flags, tag.length), tag, Buffer.from(rdata.value, 'latin1')]);
    }
  }
}

/** Encodes a static RRset's bodies and glue. */
function encodeRrset(row: RrsetRow): { bodies: Uint8Array; glue: Uint8Array } {
  return {
    bodies: Buffer.concat(row.rdatas.map((r) => rrBody(row.type, row.ttl, staticRdata(r)))),
    glue: Buffer.concat(row.glue.map((g) => {
      const bytes = ipToBytes(g.address);
      return Buffer.concat([nameToWire(g.host), rrBody(bytes.length === 4 ? QTYPE.A : QTYPE.AAAA, g.ttl, bytes)]);
    })),
  };
}

/** Encodes an RR body without its owner: TYPE CLASS TTL RDLENGTH RDATA. */
export function rrBody(type: number, ttl: number, rdata: Uint8Array): Uint8Array {
  const out = Buffer.alloc(10 + rdata.length);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(QCLASS.IN, 2);
  out.writeUInt32BE(ttl >>> 0, 4);
  out.writeUInt16BE(rdata.length, 8);
  out.set(rdata, 10);
  return out;
}

/** Encodes an answer RR whose owner is a pointer to the question name at offset 12 (0xC00C). */
export function answerFragment(type: number, ttl: number, rdata: Uint8Array): Uint8Array {
  return Buffer.concat([Buffer.from([0xc0, 0x0c]), rrBody(type, ttl, rdata)]);
}

/** Encodes a zone's SOA rdata; `serial` is used unless the zone sets its own. */
export function soaRdata(zone: ZoneConfig, serial: number): Uint8Array {
  const times = Buffer.alloc(20);
  times.writeUInt32BE((zone.soa.serial ?? serial) >>> 0, 0);
  times.writeUInt32BE(zone.soa.refreshSec >>> 0, 4);
  times.writeUInt32BE(zone.soa.retrySec >>> 0, 8);
  times.writeUInt32BE(zone.soa.expireSec >>> 0, 12);
  times.writeUInt32BE(zone.soa.minimumSec >>> 0, 16);
  return Buffer.concat([nameToWire(zone.soa.mname), nameToWire(zone.soa.rname), times]);
}

/**
 * Returns the types a node holds, for its NODATA NSEC bitmap: A and AAAA when
 * it has those records, and at an apex SOA, NS and (for a signed zone) DNSKEY.
 */
function nodeTypes(recA: number, recAAAA: number, apex: boolean, signed: boolean, staticTypes: readonly number[], recCname = 0): number[] {
  const types: number[] = [...staticTypes];
  if (recCname !== 0) types.push(QTYPE.CNAME);
  if (recA !== 0 && !types.includes(QTYPE.A)) types.push(QTYPE.A);
  if (recAAAA !== 0 && !types.includes(QTYPE.AAAA)) types.push(QTYPE.AAAA);
  if (apex) types.push(QTYPE.SOA, QTYPE.NS);
  if (apex && signed) types.push(DNSSEC_TYPE.DNSKEY);
  return types;
}

/**
 * Encodes every byte piece of `model`; `serialOf(apex)` is the SOA serial of
 * zones without an explicit one; `dnskeys` holds the DNSKEY rdatas each signed
 * zone publishes (by zone name; a zone missing from it is not signed).
 */
export function encodeSnapshot(model: SnapshotModel, serialOf: (zone: string) => number, dnskeys: ReadonlyMap<string, readonly Uint8Array[]> = new Map()): EncodedSnapshot {
  const zones = model.zones;
  const signed = zones.map((z) => (dnskeys.get(z.name)?.length ?? 0) > 0);
  return {
    nodeNames: model.nodes.map((n) => nameToWire(n.name)),
    soa: zones.map((zone) => rrBody(QTYPE.SOA, zone.soa.ttlSec, soaRdata(zone, serialOf(zone.name)))),
    ns: zones.map((zone) => ({
      bytes: Buffer.concat(zone.nameservers.map((ns) => rrBody(QTYPE.NS, zone.soa.ttlSec, nameToWire(ns.name)))),
      count: zone.nameservers.length,
    })),
    glue: model.glue.map((rows) => ({
      bytes: Buffer.concat(rows.map((g) => {
        const bytes = ipToBytes(g.address);
        return Buffer.concat([nameToWire(g.host), rrBody(bytes.length === 4 ? QTYPE.A : QTYPE.AAAA, g.ttl, bytes)]);
      })),
      count: rows.length,
    })),
    fragments: answerFragments(model),
    dnskey: zones.map((zone) => {
      const rdatas = dnskeys.get(zone.name) ?? [];
      return { bytes: Buffer.concat(rdatas.map((rdata) => rrBody(DNSSEC_TYPE.DNSKEY, DNSKEY_TTL_SEC, rdata))), count: rdatas.length };
    }),
    nsecBitmaps: model.nodes.map((n) => {
      const staticTypes = model.rrsets.slice(n.rrsetStart, n.rrsetStart + n.rrsetCount).map((r) => r.type);
      const bitmap = nodataBitmap(nodeTypes(n.recA, n.recAAAA, (n.flags & NODE_FLAG_APEX) !== 0, signed[n.zone], staticTypes, n.recCname));
      return Uint8Array.of(bitmap.length, ...bitmap);
    }),
    geoTable: model.geo === null ? null : compileGeoTable(model.geo),
    rrsets: model.rrsets.map(encodeRrset),
    idTxt: model.identity.id === null ? new Uint8Array(0) : txtRdata(splitString(model.identity.id)),
    versionTxt: model.identity.version === null ? new Uint8Array(0) : txtRdata(splitString(model.identity.version)),
  };
}

/**
 * The answer fragments of every record, members then fallback. A server in
 * many domains has the same fragment in each whose type and TTL agree: it is
 * encoded once and the one (read-only) array is shared, since 20 000 domains
 * over 200 servers took 4 million encodings for 200 distinct fragments. The
 * pack step still copies it next to each record's name.
 */
function answerFragments(model: SnapshotModel): Uint8Array[][] {
  // By type and TTL, then by address: one map lookup a member, no key built.
  const made = new Map<string, Map<string, Uint8Array>>();
  return model.records.map((r) => {
    const kind = `${r.qtype} ${r.ttl}`;
    let byAddress = made.get(kind);
    if (byAddress === undefined) made.set(kind, (byAddress = new Map()));
    const fragmentOf = (address: string): Uint8Array => {
      let fragment = byAddress.get(address);
      if (fragment === undefined) {
        fragment = answerFragment(r.qtype, r.ttl, r.qtype === QTYPE.CNAME ? nameToWire(address) : ipToBytes(address));
        byAddress.set(address, fragment);
      }
      return fragment;
    };
    const out = new Array<Uint8Array>(r.members.length + r.fallback.length);
    let i = 0;
    for (const m of r.members) out[i++] = fragmentOf(m.address);
    for (const m of r.fallback) out[i++] = fragmentOf(m.address);
    return out;
  });
}

/** A UTF-8 text as latin1 character-strings of at most 255 octets. */
function splitString(text: string): string[] {
  const bytes = Buffer.from(text, 'utf8').toString('latin1');
  const out: string[] = [];
  for (let off = 0; off < bytes.length; off += 255) out.push(bytes.slice(off, off + 255));
  return out;
}
