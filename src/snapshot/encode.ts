// Main thread, cold path. Step 2 of 3 of compiling a snapshot
// (model → encode → pack, ./compile.ts): the wire bytes a worker copies into
// answers, built once per snapshot. Owner names, SOA/NS/glue RRs and one
// complete answer RR per member (owner = pointer to the question, TTL and
// rdata in place), and the geo table of geolocation routing. Later: DNSKEY
// RRsets and pre-computed RRSIGs.

import type { ZoneConfig } from '../config/types.ts';
import { QCLASS, QTYPE } from '../dns/constants.ts';
import { nameToWire } from '../dns/names.ts';
import { compileGeoTable } from '../geo/cidr-table.ts';
import { ipToBytes } from '../lib/ip.ts';
import type { SnapshotModel } from './model.ts';

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
  /** The compiled geo table (src/geo/cidr-table.ts), or null when no domain routes by geolocation. */
  readonly geoTable: Uint32Array | null;
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

/** Encodes every byte piece of `model`; `serialOf(apex)` is the SOA serial of zones without an explicit one. */
export function encodeSnapshot(model: SnapshotModel, serialOf: (zone: string) => number): EncodedSnapshot {
  const zones = model.zones;
  return {
    nodeNames: model.nodes.map((n) => nameToWire(n.name)),
    soa: zones.map((zone) => rrBody(QTYPE.SOA, zone.soa.ttlSec, soaRdata(zone, serialOf(zone.name)))),
    ns: zones.map((zone) => ({
      bytes: Buffer.concat(zone.nameservers.map((ns) => rrBody(QTYPE.NS, zone.soa.ttlSec, nameToWire(ns.name)))),
      count: zone.nameservers.length,
    })),
    glue: model.glue.map((rows, z) => ({
      bytes: Buffer.concat(rows.map((g) => {
        const bytes = ipToBytes(g.address);
        return Buffer.concat([nameToWire(g.host), rrBody(bytes.length === 4 ? QTYPE.A : QTYPE.AAAA, zones[z].soa.ttlSec, bytes)]);
      })),
      count: rows.length,
    })),
    fragments: model.records.map((r) => [...r.members, ...r.fallback].map((m) => answerFragment(r.qtype, r.ttl, ipToBytes(m.address)))),
    geoTable: model.geo === null ? null : compileGeoTable(model.geo),
  };
}
