// Main thread, cold path. Step 1 of 3 of compiling a snapshot
// (model → encode → pack, ./compile.ts): turns a registry view into the rows
// the snapshot will hold, still as plain values (names, addresses, TTLs):
// one node per owner name we know (zone apexes, domains, in-zone name-server
// hosts and the empty non-terminals between them), one record per address
// RRset source (domain × family, name-server host × family), and the members
// of each record in the order the routing rules read them. No bytes yet.

import type { IdentityConfig, StaticRdata, ZoneConfig } from '../config/types.ts';
import { QTYPE } from '../dns/constants.ts';
import { EnclosingNames, parentName } from '../dns/names.ts';
import type { GeoTableInput } from '../geo/cidr-table.ts';
import { OpenGslbError } from '../lib/errors.ts';
import type { MemberModel, RegistryView } from '../registry/registry.ts';
import * as L from './layout.ts';

export interface NodeRow {
  readonly name: string;
  zone: number;
  flags: number;
  /** Record index + 1 of the A / AAAA record, 0 = none. */
  recA: number;
  recAAAA: number;
  /** The node's static RRsets: the first row in `rrsets` and how many (contiguous). */
  rrsetStart: number;
  rrsetCount: number;
  /** Record index + 1 of the CNAME pool record, 0 = none. */
  recCname: number;
}

/** One static RRset (owner, type) of dns.zones[].records. */
export interface RrsetRow {
  readonly node: number;
  /** RR type code. */
  readonly type: number;
  readonly ttl: number;
  readonly rdatas: readonly StaticRdata[];
  /** NS delegation: addresses of its in-zone name servers, for the additional section. */
  readonly glue: readonly GlueRow[];
  /** CNAME: the target lies inside one of our zones, so answers follow it. */
  readonly chase: boolean;
}

/** One member row: a server of a record (or a static address). */
export interface MemberRow {
  /** Normalised IP literal; for a CNAME pool's member, the target name. */
  readonly address: string;
  readonly weight: number;
  /** Member slot (the domain's health word for the server); NO_SLOT for static data. */
  readonly healthSlot: number;
  /** Server slot (latency, last up); NO_SLOT for static data. */
  readonly serverSlot: number;
  /** Who the row stands for; null for static data (name servers, fallback addresses). */
  readonly member: MemberModel | null;
}

/** One region group of a geolocation record: the region, where its members end, and its counter ids. */
export interface GroupRow {
  /** Index of the region in the config's regions. */
  readonly region: number;
  /** Record-relative member index one past the group's last member. */
  readonly memberEnd: number;
  readonly statCustom: number;
  readonly statGeoip: number;
  readonly statDefault: number;
  readonly statRegionDown: number;
}

export interface RecordRow {
  readonly policy: number;
  readonly maxAnswers: number;
  readonly ttl: number;
  readonly qtype: number;
  readonly node: number;
  readonly members: readonly MemberRow[];
  readonly allDown: number;
  /** Static members answered in ALL_DOWN_FALLBACK; packed right after `members`. */
  readonly fallback: readonly MemberRow[];
  readonly lastUpWindowSec: number;
  readonly minSamples: number;
  readonly maxLatencyUs: number;
  readonly tieMarginUs: number;
  /** Sticky: prefix lengths client addresses are cut to. */
  readonly stickyV4Prefix: number;
  readonly stickyV6Prefix: number;
  /** Routing-decision counter id; NO_SLOT for static data. */
  readonly statId: number;
  /** The domain the record answers; null for static name-server data. */
  readonly domain: string | null;
  /** Geolocation: one group per region of the domain, in order (empty for other policies). */
  readonly groups: readonly GroupRow[];
  /** Geolocation: counter ids of "decided region not the domain's" and "no region decided"; NO_SLOT otherwise. */
  readonly statNotServed: number;
  readonly statUndecided: number;
  /** CNAME pool: some member's target lies in one of our zones (answers follow it). */
  readonly chase: boolean;
}

/** Glue of one zone's NS answer: an in-zone name server's address. */
export interface GlueRow {
  readonly host: string;
  readonly address: string;
  /**
   * The TTL it is served with. An apex NS answer's glue takes the TTL of the
   * host's own A/AAAA RRset, so with DO its RRSIG is that RRset's (one
   * signature, one cache entry, RFC 4035 §3.1.1); a referral's glue (below
   * the cut, never signed) takes the delegation's NS TTL.
   */
  readonly ttl: number;
}

export interface SnapshotModel {
  readonly zones: readonly ZoneConfig[];
  /** The geo table's input when some domain routes by geolocation (the snapshot then carries the table), else null. */
  readonly geo: GeoTableInput | null;
  readonly ecsEnabled: boolean;
  readonly nodes: readonly NodeRow[];
  /** Node index by name. */
  readonly nodeByName: ReadonlyMap<string, number>;
  readonly records: readonly RecordRow[];
  /** Per zone, the glue of its NS answer. */
  readonly glue: readonly (readonly GlueRow[])[];
  /** Static RRsets, grouped by node (each node's rows contiguous). */
  readonly rrsets: readonly RrsetRow[];
  readonly identity: IdentityConfig;
}

/** RR type codes of the static record types. */
export const STATIC_TYPE_CODE = { A: 1, NS: 2, CNAME: 5, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, CAA: 257 } as const;

export const POLICY_CODE = {
  'round-robin': L.POLICY_ROUND_ROBIN, weighted: L.POLICY_WEIGHTED, failover: L.POLICY_FAILOVER, latency: L.POLICY_LATENCY, geolocation: L.POLICY_GEOLOCATION,
  sticky: L.POLICY_STICKY,
} as const;
const ALL_DOWN_CODE = { servfail: L.ALL_DOWN_SERVFAIL, last_healthy: L.ALL_DOWN_LAST_HEALTHY, all: L.ALL_DOWN_ALL, fallback: L.ALL_DOWN_FALLBACK } as const;

/** Fields of a record that static data (name-server addresses) does not use. */
const STATIC_EXTRAS = {
  allDown: L.ALL_DOWN_SERVFAIL, fallback: [], lastUpWindowSec: 0, minSamples: 0, maxLatencyUs: 0, tieMarginUs: 0, stickyV4Prefix: 0, stickyV6Prefix: 0, statId: L.NO_SLOT, domain: null,
  groups: [], statNotServed: L.NO_SLOT, statUndecided: L.NO_SLOT, chase: false,
} as const;

function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

/**
 * Models the snapshot of `view`. Throws OpenGslbError(OPENGSLB_ERR_SNAPSHOT_COMPILE)
 * for a domain outside every zone (validated config never has one).
 */
export function modelSnapshot(view: RegistryView): SnapshotModel {
  const zones = view.zones;
  // zoneOf(name): the index of the longest zone apex at or above `name`, or -1.
  const apexes = new EnclosingNames(zones.map((z) => z.name));
  const zoneOf = (name: string): number => apexes.closest(name);
  const nodes: NodeRow[] = [];
  const nodeByName = new Map<string, number>();
  const records: RecordRow[] = [];

  const ensureNode = (name: string, zone: number): number => {
    let idx = nodeByName.get(name);
    if (idx === undefined) {
      idx = nodes.length;
      nodes.push({ name, zone, flags: 0, recA: 0, recAAAA: 0, rrsetStart: 0, rrsetCount: 0, recCname: 0 });
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
      if (nodes[idx].flags === 0 && nodes[idx].recA === 0 && nodes[idx].recAAAA === 0 && !hasStatic.has(n)) nodes[idx].flags |= L.NODE_FLAG_ENT;
    }
  };
  /** Adds `record` and links it from `node` (links hold record index + 1). */
  const addRecord = (node: NodeRow, family: 0 | 4 | 6, record: RecordRow): void => {
    records.push(record);
    if (family === 0) {
      node.recCname = records.length;
      node.flags |= L.NODE_FLAG_CNAME_POOL;
    } else if (family === 4) node.recA = records.length;
    else node.recAAAA = records.length;
  };

  // Names that hold static records (not glue below a delegation): never empty non-terminals.
  const hasStatic = new Set<string>();
  const cuts = new Set<string>();
  for (const zone of zones) for (const r of zone.records) if (r.rdata.type === 'NS') cuts.add(r.owner);
  const cutsAbove = new EnclosingNames(cuts);
  const belowCut = (name: string): boolean => cutsAbove.closest(name, true) >= 0;
  for (const zone of zones) for (const r of zone.records) if (!belowCut(r.owner)) hasStatic.add(r.owner);

  for (let z = 0; z < zones.length; z++) nodes[ensureNode(zones[z].name, z)].flags |= L.NODE_FLAG_APEX;
  // A name that is itself an apex belongs to its own zone, even when a parent zone of ours encloses it.
  for (let z = 0; z < zones.length; z++) nodes[nodeByName.get(zones[z].name) as number].zone = z;

  for (const d of view.domains) {
    const domain = d.config;
    const z = zoneOf(domain.name);
    if (z < 0) throw new OpenGslbError('OPENGSLB_ERR_SNAPSHOT_COMPILE', `domain ${domain.name} is not inside any zone`);
    const nodeIdx = ensureNode(domain.name, z);
    nodes[nodeIdx].flags &= ~L.NODE_FLAG_ENT;
    ensureAncestors(domain.name, z);
    // A CNAME pool is one record of CNAME members (family 0: every member); an address pool one per family.
    for (const family of d.cnamePool ? [0 as const] : [4, 6] as const) {
      const members: MemberRow[] = [];
      for (const m of d.members) {
        if (family !== 0 && m.server.family !== family) continue;
        members.push({ address: m.server.address, weight: m.server.weight, healthSlot: m.memberSlot, serverSlot: m.server.slot, member: m });
      }
      // A family without servers has no data (NODATA), unless the domain has no server at all yet
      // (regions left to agents, none reported so far): then both families answer SERVFAIL, not "no such data".
      if (members.length === 0 && d.members.length > 0) continue;
      // Members come in priority order, so each region's are contiguous.
      const groups: GroupRow[] = [];
      if (d.geo !== null) {
        for (let g = 0; g < d.geo.regions.length; g++) {
          const c = d.geo.regions[g];
          let end = 0;
          while (end < members.length && (members[end].member as MemberModel).priority <= g) end++;
          groups.push({ region: c.region, memberEnd: end, statCustom: c.custom, statGeoip: c.geoip, statDefault: c.default, statRegionDown: c.regionDown });
        }
      }
      const fallback: MemberRow[] = [];
      for (const address of domain.fallback) {
        if (family !== 0 && familyOf(address) === family) fallback.push(staticRow(address));
      }
      addRecord(nodes[nodeIdx], family, {
        policy: POLICY_CODE[domain.routingAlgorithm],
        // A name has one CNAME (RFC 2181 §10.1): config refuses more for a pool.
        maxAnswers: family === 0 ? 1 : domain.maxAnswers,
        ttl: domain.ttlSec,
        qtype: family === 4 ? QTYPE.A : family === 6 ? QTYPE.AAAA : QTYPE.CNAME,
        node: nodeIdx,
        members,
        allDown: ALL_DOWN_CODE[domain.whenAllDown],
        fallback,
        // "Last healthy" means up within one check round (interval + timeout) of the most recent server.
        lastUpWindowSec: Math.ceil(d.checkRoundMs / 1000) + 1,
        minSamples: domain.latency.minSamples,
        maxLatencyUs: Math.round(domain.latency.maxLatencyMs * 1000),
        tieMarginUs: Math.round(domain.latency.tieMarginMs * 1000),
        stickyV4Prefix: domain.sticky.ipv4Prefix,
        stickyV6Prefix: domain.sticky.ipv6Prefix,
        statId: d.decisionId,
        domain: domain.name,
        groups,
        statNotServed: d.geo?.notServed ?? L.NO_SLOT,
        statUndecided: d.geo?.undecided ?? L.NO_SLOT,
        chase: family === 0 && members.some((m) => zoneOf(m.address) >= 0),
      });
    }
  }

  const staticAddresses = new Map<string, { address: string; ttl: number }[]>();
  // The TTL of each static A/AAAA RRset: its first record's, as modelStaticRrsets sets it.
  const staticTtl = new Map<string, number>();
  for (const zone of zones) {
    for (const r of zone.records) {
      if (r.rdata.type !== 'A' && r.rdata.type !== 'AAAA') continue;
      const setKey = `${r.owner} ${r.rdata.type}`;
      if (!staticTtl.has(setKey)) staticTtl.set(setKey, r.ttlSec);
      const list = staticAddresses.get(r.owner) ?? [];
      list.push({ address: r.rdata.address, ttl: staticTtl.get(setKey)! });
      staticAddresses.set(r.owner, list);
    }
  }
  // Name-server host addresses inside our zones are authoritative data of ours:
  // answered as static A/AAAA and used as glue in NS answers.
  const glue: GlueRow[][] = zones.map(() => []);
  const hostsDone = new Set<string>();
  for (let z = 0; z < zones.length; z++) {
    for (const ns of zones[z].nameservers) {
      if (ns.addresses.length === 0) {
        // A name server whose addresses are static records of ours (dns.zones[].records) gets them as glue.
        if (zoneOf(ns.name) >= 0) for (const a of staticAddresses.get(ns.name) ?? []) glue[z].push({ host: ns.name, address: a.address, ttl: a.ttl });
        continue;
      }
      const hostZone = zoneOf(ns.name);
      if (hostZone < 0) continue;
      // The host's own A/AAAA records take the TTL of the zone that holds the host; so does its glue.
      const hostTtl = zones[hostZone].soa.ttlSec;
      for (const address of ns.addresses) glue[z].push({ host: ns.name, address, ttl: hostTtl });
      if (hostsDone.has(ns.name)) continue;
      hostsDone.add(ns.name);
      const nodeIdx = ensureNode(ns.name, hostZone);
      const node = nodes[nodeIdx];
      node.flags &= ~L.NODE_FLAG_ENT;
      ensureAncestors(ns.name, hostZone);
      for (const family of [4, 6] as const) {
        // A GSLB domain of the same name wins over static name-server data.
        if ((family === 4 ? node.recA : node.recAAAA) !== 0) continue;
        const members = ns.addresses.filter((a) => familyOf(a) === family).map(staticRow);
        if (members.length === 0) continue;
        addRecord(node, family, { policy: L.POLICY_STATIC, maxAnswers: Math.min(members.length, L.MAX_ANSWERS_LIMIT), ttl: hostTtl, qtype: family === 4 ? QTYPE.A : QTYPE.AAAA, node: nodeIdx, members, ...STATIC_EXTRAS });
      }
    }
  }
  const rrsets = modelStaticRrsets(zones, nodes, ensureNode, ensureAncestors, belowCut, zoneOf);
  return { zones, geo: view.domains.some((d) => d.geo !== null) ? view.geo : null, ecsEnabled: view.ecsEnabled, nodes, nodeByName, records, glue, rrsets, identity: view.identity };
}

/**
 * Models the static records of every zone: one row per (owner, type), rows of
 * one node contiguous; delegation nodes (NS below an apex) get NODE_FLAG_CUT
 * and their in-zone name servers' addresses as glue; CNAME nodes get
 * NODE_FLAG_CNAME. Addresses below a delegation are glue only, never names
 * of ours (a query there gets the referral).
 */
function modelStaticRrsets(
  zones: readonly ZoneConfig[], nodes: NodeRow[], ensureNode: (name: string, zone: number) => number, ensureAncestors: (name: string, zone: number) => void,
  belowCut: (name: string) => boolean, zoneOf: (name: string) => number,
): RrsetRow[] {
  // Every static address by owner: glue for delegations wherever it is written.
  const addressesOf = new Map<string, string[]>();
  for (const zone of zones) {
    for (const r of zone.records) {
      if (r.rdata.type !== 'A' && r.rdata.type !== 'AAAA') continue;
      let list = addressesOf.get(r.owner);
      if (list === undefined) addressesOf.set(r.owner, (list = []));
      list.push(r.rdata.address);
    }
  }
  const byNode = new Map<number, Map<number, { ttl: number; rdatas: StaticRdata[] }>>();
  for (let z = 0; z < zones.length; z++) {
    for (const r of zones[z].records) {
      if (belowCut(r.owner)) continue;
      const nodeIdx = ensureNode(r.owner, z);
      const node = nodes[nodeIdx];
      node.flags &= ~L.NODE_FLAG_ENT;
      ensureAncestors(r.owner, z);
      if (r.rdata.type === 'NS') node.flags |= L.NODE_FLAG_CUT;
      if (r.rdata.type === 'CNAME') node.flags |= L.NODE_FLAG_CNAME;
      let sets = byNode.get(nodeIdx);
      if (sets === undefined) byNode.set(nodeIdx, (sets = new Map()));
      const type = STATIC_TYPE_CODE[r.rdata.type];
      let set = sets.get(type);
      if (set === undefined) sets.set(type, (set = { ttl: r.ttlSec, rdatas: [] }));
      set.rdatas.push(r.rdata);
    }
  }
  const rows: RrsetRow[] = [];
  for (const [nodeIdx, sets] of [...byNode].sort((a, b) => a[0] - b[0])) {
    nodes[nodeIdx].rrsetStart = rows.length;
    nodes[nodeIdx].rrsetCount = sets.size;
    for (const [type, set] of sets) {
      const glue: GlueRow[] = [];
      let chase = false;
      for (const rdata of set.rdatas) {
        if (rdata.type === 'NS') for (const address of addressesOf.get(rdata.target) ?? []) glue.push({ host: rdata.target, address, ttl: set.ttl });
        if (rdata.type === 'CNAME') chase = zoneOf(rdata.target) >= 0;
      }
      rows.push({ node: nodeIdx, type, ttl: set.ttl, rdatas: set.rdatas, glue, chase });
    }
  }
  return rows;
}

/**
 * A static member row (a name server's or a fallback address). Its own class,
 * not the object literal of a server's row: NO_SLOT (0xffffffff) is no small
 * integer, and written into the same shape after the servers' rows it turned
 * their slot fields from small integers to doubles, deprecating their hidden
 * class; the encoder's first read of each of the 800 000 rows of a big config
 * then migrated it (0.6 s and two scavenges of the encode step, 4 000 domains
 * x 200 servers; bench/config-scale.ts, docs/scaling.md).
 */
class StaticMemberRow implements MemberRow {
  readonly address: string;
  readonly weight = 1;
  readonly healthSlot = L.NO_SLOT;
  readonly serverSlot = L.NO_SLOT;
  readonly member = null;
  constructor(address: string) {
    this.address = address;
  }
}

function staticRow(address: string): MemberRow {
  return new StaticMemberRow(address);
}
