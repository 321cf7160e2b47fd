// Main thread, cold path. Compiles a validated Config into the immutable binary
// snapshot the DNS workers read (layout in ./layout.ts, drawn in
// docs/architecture.md). Everything a query needs is decided here: owner names
// are hashed, answer RRs are encoded with their TTL, SOA/NS/glue are encoded,
// and empty non-terminals are materialised so a worker never walks a tree.

import type { Config, ZoneConfig } from '../config/types.ts';
import { QCLASS, QTYPE } from '../dns/constants.ts';
import { hashWire, isAtOrBelow, nameToWire, parentName } from '../dns/names.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { ipToBytes } from '../lib/ip.ts';
import { serverKey, SlotAllocator } from '../registry/slots.ts';
import * as L from './layout.ts';

/** What the compiler produced, with counts for logs and the API. */
export interface CompiledSnapshot {
  readonly buffer: SharedArrayBuffer;
  readonly generation: number;
  readonly serial: number;
  readonly stats: { names: number; zones: number; records: number; members: number; bytes: number };
  /** Slot keys (serverKey() and memberKey()) present in this snapshot, for slot bookkeeping. */
  readonly slotKeys: ReadonlySet<string>;
  /** Per member-table index: which domain, server and slots it stands for; null for static data (name servers, fallback). */
  readonly members: readonly (MemberInfo | null)[];
  /** Per record index: the domain it answers, or null for static name-server data. */
  readonly recordDomains: readonly (string | null)[];
}

/** Who a member of the snapshot is: the API, the explain route and the override fan-out read this. */
export interface MemberInfo {
  readonly domain: string;
  readonly region: string;
  readonly address: string;
  readonly port: number;
  /** The server's slot (check verdict, latency, last up): shared by every domain that answers the server. */
  readonly serverSlot: number;
  /** This domain's own health word for the server: the verdict with the domain's override applied. */
  readonly memberSlot: number;
  /** Failover level: index of the server's region in the domain's regions. */
  readonly priority: number;
  readonly weight: number;
}

/**
 * The slot key of one server as answered by one domain: its health word there
 * carries that domain's override, so an override of (domain, address) leaves
 * the same server's answers in other domains alone.
 */
export function memberKey(domain: string, key: string): string {
  return `${domain}#${key}`;
}

export interface CompileOptions {
  /** Monotonic generation number written into the header. */
  readonly generation: number;
  /** SOA serial for zones without an explicit one. */
  readonly serial: number;
  /** Slot ids for servers and members; new ones get new slots. */
  readonly slots: SlotAllocator;
  /** Ids for the routing-decision counters, one per (domain, algorithm); ids are never reused. Default: a fresh allocator. */
  readonly statIds?: SlotAllocator;
}

interface MemberDraft {
  healthSlot: number;
  weight: number;
  fragment: Uint8Array;
  server: number;
  info: MemberInfo | null;
}

interface RecordDraft {
  policy: number;
  maxAnswers: number;
  ttl: number;
  qtype: number;
  node: number;
  members: MemberDraft[];
  allDown: number;
  /** Static members answered in ALL_DOWN_FALLBACK; stored right after `members`. */
  fallback: readonly MemberDraft[];
  lastUpWindowSec: number;
  minSamples: number;
  maxLatencyUs: number;
  tieMarginUs: number;
  /** Routing-decision counter id; NO_SLOT for static data. */
  statId: number;
  domain: string | null;
}

/** Fields of a record that static data (name-server addresses) does not use. */
const STATIC_EXTRAS = { allDown: L.ALL_DOWN_SERVFAIL, fallback: [], lastUpWindowSec: 0, minSamples: 0, maxLatencyUs: 0, tieMarginUs: 0, statId: L.NO_SLOT, domain: null } as const;

interface NodeDraft {
  name: string;
  wire: Uint8Array;
  zone: number;
  flags: number;
  recA: number;
  recAAAA: number;
}

const POLICY_CODE = { 'round-robin': L.POLICY_ROUND_ROBIN, weighted: L.POLICY_WEIGHTED, failover: L.POLICY_FAILOVER, latency: L.POLICY_LATENCY } as const;
const ALL_DOWN_CODE = { servfail: L.ALL_DOWN_SERVFAIL, last_healthy: L.ALL_DOWN_LAST_HEALTHY, all: L.ALL_DOWN_ALL, fallback: L.ALL_DOWN_FALLBACK } as const;

/** Appends bytes to a growing blob and returns each piece's offset; 4-byte alignment is not needed for bytes. */
class Blob {
  readonly parts: Uint8Array[] = [];
  length = 0;
  add(bytes: Uint8Array): number {
    const off = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    return off;
  }
}

/** Encodes an RR body without its owner: TYPE CLASS TTL RDLENGTH RDATA. */
function rrBody(type: number, ttl: number, rdata: Uint8Array): Uint8Array {
  const out = Buffer.alloc(10 + rdata.length);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(QCLASS.IN, 2);
  out.writeUInt32BE(ttl >>> 0, 4);
  out.writeUInt16BE(rdata.length, 8);
  out.set(rdata, 10);
  return out;
}

/** Encodes an answer RR whose owner is a pointer to the question name at offset 12 (0xC00C). */
function answerFragment(type: number, ttl: number, rdata: Uint8Array): Uint8Array {
  const body = rrBody(type, ttl, rdata);
  const out = new Uint8Array(2 + body.length);
  out[0] = 0xc0;
  out[1] = 0x0c;
  out.set(body, 2);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

function soaRdata(zone: ZoneConfig, serial: number): Uint8Array {
  const times = Buffer.alloc(20);
  times.writeUInt32BE((zone.soa.serial ?? serial) >>> 0, 0);
  times.writeUInt32BE(zone.soa.refreshSec >>> 0, 4);
  times.writeUInt32BE(zone.soa.retrySec >>> 0, 8);
  times.writeUInt32BE(zone.soa.expireSec >>> 0, 12);
  times.writeUInt32BE(zone.soa.minimumSec >>> 0, 16);
  return concat([nameToWire(zone.soa.mname), nameToWire(zone.soa.rname), times]);
}

/** Finds the index of the longest zone apex at or above `name`, or -1. */
function zoneOf(name: string, zones: readonly ZoneConfig[]): number {
  let best = -1;
  for (let i = 0; i < zones.length; i++) {
    if (isAtOrBelow(name, zones[i].name) && (best < 0 || zones[i].name.length > zones[best].name.length)) best = i;
  }
  return best;
}

/**
 * Compiles `config` into a new snapshot. Pure apart from slot allocation.
 * Throws OpenGslbError(OPENGSLB_ERR_SNAPSHOT_COMPILE) only when a limit of
 * the format is exceeded; validated config never does that.
 */
export function compileSnapshot(config: Config, options: CompileOptions): CompiledSnapshot {
  const zones = config.dns.zones;
  const nodes: NodeDraft[] = [];
  const nodeByName = new Map<string, number>();
  const records: RecordDraft[] = [];
  const slotKeys = new Set<string>();
  const statIds = options.statIds ?? new SlotAllocator();

  const ensureNode = (name: string, zone: number): number => {
    let idx = nodeByName.get(name);
    if (idx === undefined) {
      idx = nodes.length;
      nodes.push({ name, wire: nameToWire(name), zone, flags: 0, recA: 0, recAAAA: 0 });
      nodeByName.set(name, idx);
    }
    return idx;
  };
  // Every name between an owner and its apex exists as an empty non-terminal
  // (RFC 8020): a query for it is NODATA, never NXDOMAIN.
  const ensureAncestors = (name: string, zone: number): void => {
    const apex = zones[zone].name;
    for (let n = parentName(name); n !== apex && n.length > apex.length; n = parentName(n)) {
      const idx = ensureNode(n, zone);
      if (nodes[idx].flags === 0 && nodes[idx].recA === 0 && nodes[idx].recAAAA === 0) nodes[idx].flags |= L.NODE_FLAG_ENT;
    }
  };

  for (let z = 0; z < zones.length; z++) {
    nodes[ensureNode(zones[z].name, z)].flags |= L.NODE_FLAG_APEX;
  }
  // A name that is itself an apex belongs to its own zone, even when a parent zone of ours encloses it.
  for (let z = 0; z < zones.length; z++) nodes[nodeByName.get(zones[z].name) as number].zone = z;

  const regionByName = new Map(config.regions.map((r) => [r.name, r]));
  for (const domain of config.domains) {
    const z = zoneOf(domain.name, zones);
    if (z < 0) throw new OpenGslbError('OPENGSLB_ERR_SNAPSHOT_COMPILE', `domain ${domain.name} is not inside any zone`);
    const nodeIdx = ensureNode(domain.name, z);
    nodes[nodeIdx].flags &= ~L.NODE_FLAG_ENT;
    ensureAncestors(domain.name, z);
    const byFamily: Record<4 | 6, MemberDraft[]> = { 4: [], 6: [] };
    const seen = new Set<string>();
    // "Last healthy" means up within one check round (interval + timeout) of the most recent server.
    let roundMs = 0;
    for (let priority = 0; priority < domain.regions.length; priority++) {
      const region = regionByName.get(domain.regions[priority]);
      if (!region) continue;
      roundMs = Math.max(roundMs, region.healthCheck.intervalMs + region.healthCheck.timeoutMs);
      for (const server of region.servers) {
        const key = serverKey(region.name, server.address, server.port);
        slotKeys.add(key);
        const slot = options.slots.slotFor(key);
        // One address answers once per RRset: the first (highest-priority) region keeps it.
        if (seen.has(server.address)) continue;
        seen.add(server.address);
        const mKey = memberKey(domain.name, key);
        slotKeys.add(mKey);
        const memberSlot = options.slots.slotFor(mKey);
        const type = server.family === 4 ? QTYPE.A : QTYPE.AAAA;
        byFamily[server.family].push({
          healthSlot: memberSlot,
          weight: server.weight,
          fragment: answerFragment(type, domain.ttlSec, ipToBytes(server.address)),
          server: slot,
          info: { domain: domain.name, region: region.name, address: server.address, port: server.port, serverSlot: slot, memberSlot, priority, weight: server.weight },
        });
      }
    }
    const statId = statIds.slotFor(`${domain.name}|${domain.routingAlgorithm}`);
    for (const family of [4, 6] as const) {
      const members = byFamily[family];
      if (members.length === 0) continue;
      const qtype = family === 4 ? QTYPE.A : QTYPE.AAAA;
      const fallback: MemberDraft[] = [];
      for (const address of domain.fallback) {
        const bytes = ipToBytes(address);
        if ((bytes.length === 4) !== (family === 4)) continue;
        fallback.push({ healthSlot: L.NO_SLOT, weight: 1, fragment: answerFragment(qtype, domain.ttlSec, bytes), server: L.NO_SLOT, info: null });
      }
      records.push({
        policy: POLICY_CODE[domain.routingAlgorithm],
        maxAnswers: domain.maxAnswers,
        ttl: domain.ttlSec,
        qtype,
        node: nodeIdx,
        members,
        allDown: ALL_DOWN_CODE[domain.whenAllDown],
        fallback,
        lastUpWindowSec: Math.ceil(roundMs / 1000) + 1,
        minSamples: domain.latency.minSamples,
        maxLatencyUs: Math.round(domain.latency.maxLatencyMs * 1000),
        tieMarginUs: Math.round(domain.latency.tieMarginMs * 1000),
        statId,
        domain: domain.name,
      });
      if (family === 4) nodes[nodeIdx].recA = records.length;
      else nodes[nodeIdx].recAAAA = records.length;
    }
  }

  // Name-server host addresses inside our zones are authoritative data of ours:
  // answered as static A/AAAA and used as glue in NS answers.
  const glueByZone: Uint8Array[][] = zones.map(() => []);
  const nsHostsDone = new Set<string>();
  for (let z = 0; z < zones.length; z++) {
    for (const ns of zones[z].nameservers) {
      if (ns.addresses.length === 0) continue;
      const hostZone = zoneOf(ns.name, zones);
      if (hostZone < 0) continue;
      const ttl = zones[z].soa.ttlSec;
      const nsWire = nameToWire(ns.name);
      for (const address of ns.addresses) {
        const bytes = ipToBytes(address);
        glueByZone[z].push(concat([nsWire, rrBody(bytes.length === 4 ? QTYPE.A : QTYPE.AAAA, ttl, bytes)]));
      }
      if (nsHostsDone.has(ns.name)) continue;
      nsHostsDone.add(ns.name);
      // The host's own A/AAAA records take the TTL of the zone that holds the host.
      const hostTtl = zones[hostZone].soa.ttlSec;
      const nodeIdx = ensureNode(ns.name, hostZone);
      const node = nodes[nodeIdx];
      node.flags &= ~L.NODE_FLAG_ENT;
      ensureAncestors(ns.name, hostZone);
      for (const family of [4, 6] as const) {
        // A GSLB domain of the same name wins over static name-server data.
        if ((family === 4 ? node.recA : node.recAAAA) !== 0) continue;
        const qtype = family === 4 ? QTYPE.A : QTYPE.AAAA;
        const members: MemberDraft[] = [];
        for (const address of ns.addresses) {
          const bytes = ipToBytes(address);
          if ((bytes.length === 4) !== (family === 4)) continue;
          members.push({ healthSlot: L.NO_SLOT, weight: 1, fragment: answerFragment(qtype, hostTtl, bytes), server: L.NO_SLOT, info: null });
        }
        if (members.length === 0) continue;
        records.push({ policy: L.POLICY_STATIC, maxAnswers: Math.min(members.length, L.MAX_ANSWERS_LIMIT), ttl: hostTtl, qtype, node: nodeIdx, members, ...STATIC_EXTRAS });
        if (family === 4) node.recA = records.length;
        else node.recAAAA = records.length;
      }
    }
  }

  // ---- Lay out the image.
  const blob = new Blob();
  const nodeNameOff = nodes.map((n) => blob.add(n.wire));
  const zoneSoa = zones.map((zone) => blob.add(rrBody(QTYPE.SOA, zone.soa.ttlSec, soaRdata(zone, options.serial))));
  const zoneSoaLen = zones.map((zone) => 10 + soaRdata(zone, options.serial).length);
  const zoneNs = zones.map((zone) => {
    const bodies = zone.nameservers.map((ns) => rrBody(QTYPE.NS, zone.soa.ttlSec, nameToWire(ns.name)));
    const all = concat(bodies);
    return { off: blob.add(all), count: bodies.length, len: all.length };
  });
  const zoneGlue = glueByZone.map((pieces) => {
    const all = concat(pieces);
    return { off: blob.add(all), count: pieces.length, len: all.length };
  });
  let memberCount = 0;
  for (const r of records) memberCount += r.members.length + r.fallback.length;
  const memberFragOff: number[] = [];
  for (const r of records) for (const m of [...r.members, ...r.fallback]) memberFragOff.push(blob.add(m.fragment));

  let bucketCount = 16;
  while (bucketCount < nodes.length * 2) bucketCount *= 2;

  const bucketsOff = L.HEADER_BYTES;
  const nodesOff = bucketsOff + bucketCount * 4;
  const zonesOff = nodesOff + nodes.length * L.NODE_WORDS * 4;
  const recordsOff = zonesOff + zones.length * L.ZONE_WORDS * 4;
  const membersOff = recordsOff + records.length * L.RECORD_WORDS * 4;
  const blobOff = membersOff + memberCount * L.MEMBER_WORDS * 4;
  const totalBytes = (blobOff + blob.length + 3) & ~3;
  if (totalBytes > 0x7fffffff) throw new OpenGslbError('OPENGSLB_ERR_SNAPSHOT_COMPILE', `snapshot would be ${totalBytes} bytes, more than 2 GiB`);

  const buffer = new SharedArrayBuffer(totalBytes);
  const u32 = new Uint32Array(buffer);
  const u8 = new Uint8Array(buffer);
  u32[L.HDR_MAGIC] = L.SNAPSHOT_MAGIC;
  u32[L.HDR_VERSION] = L.SNAPSHOT_VERSION;
  u32[L.HDR_TOTAL_BYTES] = totalBytes;
  u32[L.HDR_GENERATION] = options.generation;
  u32[L.HDR_BUCKET_COUNT] = bucketCount;
  u32[L.HDR_BUCKETS_OFF] = bucketsOff;
  u32[L.HDR_NODE_COUNT] = nodes.length;
  u32[L.HDR_NODES_OFF] = nodesOff;
  u32[L.HDR_ZONE_COUNT] = zones.length;
  u32[L.HDR_ZONES_OFF] = zonesOff;
  u32[L.HDR_RECORD_COUNT] = records.length;
  u32[L.HDR_RECORDS_OFF] = recordsOff;
  u32[L.HDR_MEMBER_COUNT] = memberCount;
  u32[L.HDR_MEMBERS_OFF] = membersOff;
  u32[L.HDR_BLOB_OFF] = blobOff;
  u32[L.HDR_BLOB_LEN] = blob.length;

  let off = blobOff;
  for (const part of blob.parts) {
    u8.set(part, off);
    off += part.length;
  }

  const mask = bucketCount - 1;
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    const base = (nodesOff >> 2) + i * L.NODE_WORDS;
    const hash = hashWire(n.wire, 0, n.wire.length);
    u32[base + L.NODE_NAME_OFF] = blobOff + nodeNameOff[i];
    u32[base + L.NODE_NAME_LEN] = n.wire.length;
    u32[base + L.NODE_HASH] = hash;
    u32[base + L.NODE_ZONE] = n.zone;
    u32[base + L.NODE_FLAGS] = n.flags;
    u32[base + L.NODE_REC_A] = n.recA;
    u32[base + L.NODE_REC_AAAA] = n.recAAAA;
    let b = hash & mask;
    while (u32[(bucketsOff >> 2) + b] !== 0) b = (b + 1) & mask;
    u32[(bucketsOff >> 2) + b] = i + 1;
  }
  for (let z = 0; z < zones.length; z++) {
    const base = (zonesOff >> 2) + z * L.ZONE_WORDS;
    const zone = zones[z];
    u32[base + L.ZONE_NODE] = nodeByName.get(zone.name) as number;
    u32[base + L.ZONE_APEX_LEN] = nodes[nodeByName.get(zone.name) as number].wire.length;
    u32[base + L.ZONE_SOA_OFF] = blobOff + zoneSoa[z];
    u32[base + L.ZONE_SOA_LEN] = zoneSoaLen[z];
    u32[base + L.ZONE_NEG_TTL] = Math.min(zone.soa.ttlSec, zone.soa.minimumSec);
    u32[base + L.ZONE_NS_OFF] = blobOff + zoneNs[z].off;
    u32[base + L.ZONE_NS_COUNT] = zoneNs[z].count;
    u32[base + L.ZONE_NS_LEN] = zoneNs[z].len;
    u32[base + L.ZONE_GLUE_OFF] = blobOff + zoneGlue[z].off;
    u32[base + L.ZONE_GLUE_COUNT] = zoneGlue[z].count;
    u32[base + L.ZONE_GLUE_LEN] = zoneGlue[z].len;
  }
  const memberInfo: (MemberInfo | null)[] = [];
  let m = 0;
  for (let r = 0; r < records.length; r++) {
    const rec = records[r];
    const base = (recordsOff >> 2) + r * L.RECORD_WORDS;
    u32[base + L.REC_POLICY] = rec.policy;
    u32[base + L.REC_MEMBER_START] = m;
    u32[base + L.REC_MEMBER_COUNT] = rec.members.length;
    u32[base + L.REC_MAX_ANSWERS] = Math.max(1, Math.min(rec.maxAnswers, L.MAX_ANSWERS_LIMIT));
    u32[base + L.REC_TTL] = rec.ttl;
    u32[base + L.REC_QTYPE] = rec.qtype;
    u32[base + L.REC_FRAG_LEN] = rec.qtype === QTYPE.A ? L.FRAG_LEN_A : L.FRAG_LEN_AAAA;
    u32[base + L.REC_NODE] = rec.node;
    u32[base + L.REC_ALL_DOWN] = rec.allDown;
    u32[base + L.REC_FALLBACK_START] = m + rec.members.length;
    u32[base + L.REC_FALLBACK_COUNT] = rec.fallback.length;
    u32[base + L.REC_LAST_UP_WINDOW] = rec.lastUpWindowSec;
    u32[base + L.REC_MIN_SAMPLES] = rec.minSamples;
    u32[base + L.REC_MAX_LATENCY_US] = rec.maxLatencyUs;
    u32[base + L.REC_TIE_MARGIN_US] = rec.tieMarginUs;
    u32[base + L.REC_STAT_ID] = rec.statId;
    for (const member of [...rec.members, ...rec.fallback]) {
      memberInfo.push(member.info);
      const mb = (membersOff >> 2) + m * L.MEMBER_WORDS;
      u32[mb + L.MEM_HEALTH_SLOT] = member.healthSlot;
      u32[mb + L.MEM_WEIGHT] = member.weight;
      u32[mb + L.MEM_FRAG_OFF] = blobOff + memberFragOff[m];
      u32[mb + L.MEM_SERVER] = member.server;
      m++;
    }
  }

  return {
    buffer,
    generation: options.generation,
    serial: options.serial,
    stats: { names: nodes.length, zones: zones.length, records: records.length, members: memberCount, bytes: totalBytes },
    slotKeys,
    members: memberInfo,
    recordDomains: records.map((r) => r.domain),
  };
}
