// Main thread, cold path. Explains what the DNS workers would answer for one
// name and type right now, and why: the lookup (zone, name, rcode), the
// domain's policy, every candidate server with its health and whether the
// next answer may carry it. It reads the published snapshot through the same
// SnapshotView the workers use and the live slots as they are now, and it
// decides nothing itself: the answerable list, the when_all_down list, the
// latency tier and every answer of a rotation come from the rule steps of
// src/routing/select.ts run over explain's own RouteState; this module turns
// their verdict codes into words (test/overwatch/explain.test.ts compares the
// result with real DNS answers).

import { parseIp } from '../config/ip.ts';
import type { RoutingAlgorithm, WhenAllDown } from '../config/types.ts';
import { QTYPE } from '../dns/constants.ts';
import { nameToWire, readWireName } from '../dns/names.ts';
import { formatIpBytes } from '../lib/ip.ts';
import type { StaticRecordConfig } from '../config/types.ts';
import type { Override, OverrideScope } from '../registry/overrides.ts';
import type { Authority, MemberModel, Registry, ServerRecord } from '../registry/registry.ts';
import { ParsedQuery } from '../dns/parse.ts';
import type { GeoIpReader } from '../geo/lookup.ts';
import { explainGeo, type GeoTestResult } from '../geo/table-input.ts';
import { ClientAddress } from '../routing/client.ts';
import {
  allDownVerdict, DEGRADED_NONE, fastestEma, groupOf, healthyVerdict, LATENCY_TOO_FEW_SAMPLES, latencyCutoff, LISTED, newestLastUp,
  OUT_DRAINED, OUT_STALE, OUT_WEIGHT_ZERO, refreshList, RouteState, selectMembers, stickyScore,
} from '../routing/select.ts';
import type { CompiledSnapshot } from '../snapshot/compile.ts';
import * as L from '../snapshot/layout.ts';
import { HEALTH_DRAINED, HEALTH_HEALTHY, HEALTH_UNKNOWN, isUnmeasured, LIVE_CAPACITY, lastUpMs, lastUpWord, latencyWord, readHealth } from '../snapshot/live-slots.ts';
import { SnapshotView } from '../snapshot/reader.ts';
import { rfc3339 } from './views.ts';
import { createCounters } from '../metrics/counters-layout.ts';
import { handleQuery } from '../../workers/handle-query.ts';
import { WorkerScratch } from '../../workers/scratch.ts';

/** What explain reads. The overwatch builds it from what it serves at the moment of the call. */
export interface ExplainInput {
  /** The snapshot the workers serve now, with the registry view it was compiled from. */
  readonly snapshot: Pick<CompiledSnapshot, 'buffer' | 'members' | 'recordDomains' | 'view'>;
  /** The live slots the workers read (health words, latency, last up). */
  readonly live: Int32Array;
  /** The override deciding each member (Registry.overrideFor: domain > server > region) and the authority rule; the member words already carry the overrides. */
  readonly registry: Pick<Registry, 'overrideFor' | 'authorityOf' | 'agentStateOf'>;
  /** The last health-check error of a server ("status 503", "timeout"…), or null; optional. */
  readonly lastErrorOf?: (server: ServerRecord) => string | null;
  /** The GeoIP database the workers read, or null while none is open (geolocation then decides by custom mappings and default_region only). */
  readonly geo?: GeoIpReader | null;
}

/** The geolocation step of an explanation: how the client was placed, and which region answered. */
export interface ExplainGeo extends GeoTestResult {
  /** The region whose servers answer (the client's, or the next one that has an answerable server), or null when none. */
  readonly answered_region: string | null;
  /** Why the answer does not come from the client's region, or null when it does. */
  readonly fallback: 'region_down' | 'region_not_served' | 'no_region' | null;
}

/**
 * How big the answer is on the wire and whether UDP carries it whole: bytes
 * written by the DNS workers' own answer code (workers/handle-query.ts run on
 * a scratch of explain's over the same snapshot and live slots), for a query
 * without the DO bit from the explained client. A UDP answer above the
 * client's size goes out with TC=1 and no records, and the client retries
 * over TCP.
 */
export interface ExplainWire {
  /** Bytes of the whole response to a query without EDNS (as TCP carries it). */
  readonly bytes: number;
  /** Bytes of the whole response to a query with EDNS (the reply's OPT record included). */
  readonly bytes_edns: number;
  /** A client without EDNS (limit 512 bytes) gets TC=1. */
  readonly truncated_without_edns: boolean;
  /** A client offering 1232 bytes (the DNS Flag Day 2020 size, and this server's most) gets TC=1. */
  readonly truncated_at_1232: boolean;
}

export type ExplainRcode = 'NOERROR' | 'NXDOMAIN' | 'REFUSED' | 'SERVFAIL';
export type ExplainPolicy = RoutingAlgorithm | 'static';
/** `drained`: an override took the server out; `static`: name-server data, never checked. */
export type CandidateStatus = 'healthy' | 'unhealthy' | 'unknown' | 'drained' | 'static';

/** One configured server of the domain (or one static address), as this query sees it. */
export interface ExplainCandidate {
  readonly address: string;
  readonly port: number | null;
  readonly region: string | null;
  /** Failover level: index of the region in the domain's regions (0 first); null for static data. */
  readonly priority: number | null;
  readonly weight: number | null;
  /** Effective health for this domain: what the DNS workers read (the override applied). */
  readonly status: CandidateStatus;
  /** The health checks' own verdict for the server, whatever an override says; null for static data. */
  readonly check_status: 'healthy' | 'unhealthy' | 'unknown' | null;
  readonly authority: Authority | null;
  /** The override that decides this server in this domain (the most specific in force), or null. */
  readonly override: ExplainOverride | null;
  /** Latency EMA of the server's checks in milliseconds; null before the first sample. */
  readonly latency_ms: number | null;
  readonly samples: number;
  /** When the checks last found the server healthy (RFC 3339), or null. */
  readonly last_up: string | null;
  /** May the next answer carry this server? */
  readonly eligible: boolean;
  /** Why not, when not eligible; null otherwise. */
  readonly reason: string | null;
  /** What its part is, when eligible ("fastest (12.1 ms)", "position 1"…); null otherwise. */
  readonly detail: string | null;
}

/** The override that decided a candidate: its scope, what it forces, who set it, why, and until when. */
export interface ExplainOverride {
  readonly scope: OverrideScope;
  /** The address (scopes domain and server) or the region (scope region) it was set on. */
  readonly target: string;
  readonly healthy: boolean;
  readonly source: string;
  readonly reason: string;
  /** When the health checks decide again (RFC 3339), or null: until cleared. */
  readonly expires_at: string | null;
}

export interface WeightedChance {
  readonly address: string;
  readonly weight: number;
  /** Probability that an answer leads with this address: weight / total weight of the eligible servers. */
  readonly first: number;
  /** Probability that an answer carries it anywhere (max_answers > 1); null when too many servers to compute exactly. */
  readonly in_answer: number | null;
}

export interface ExplainAllDown {
  readonly mode: WhenAllDown;
  /** Did the mode produce an answer (false: SERVFAIL)? */
  readonly answered: boolean;
}

/** The explanation served by GET /api/v1/explain, as is: JSON-able, snake_case. */
export interface Explanation {
  /** The name asked, lower case, without the trailing dot. */
  readonly name: string;
  readonly type: string;
  readonly client: string | null;
  readonly rcode: ExplainRcode;
  /** The AA bit: set on answers from our data (also NXDOMAIN/NODATA), clear on REFUSED and SERVFAIL. */
  readonly aa: boolean;
  readonly zone: string | null;
  /** The configured domain that answers, or null. */
  readonly domain: string | null;
  /** What the answer comes from: a domain's routing, a name server's static address, the zone apex (SOA/NS), a static record (dns.zones[].records) or a delegation (referral). */
  readonly source: 'domain' | 'nameserver' | 'zone' | 'static' | 'delegation' | null;
  readonly policy: ExplainPolicy | null;
  readonly max_answers: number | null;
  readonly when_all_down: WhenAllDown | null;
  /** TTL of the answer records; for NXDOMAIN/NODATA the negative-caching TTL of the SOA. */
  readonly ttl: number | null;
  /** `fixed`: `answers` is the next answer, in order. `rotation` and `weighted_random`: `answers` is the pool answers are drawn from. */
  readonly selection: 'fixed' | 'rotation' | 'weighted_random' | null;
  readonly answers: readonly string[];
  /** Records in each answer. */
  readonly answer_size: number;
  /** The response's size on the wire and whether UDP truncates it (TC=1), or null when the query cannot be written (a name too long). */
  readonly wire: ExplainWire | null;
  readonly rotation: boolean;
  /** For rotation: every answer the rotation goes through, in rotor order (each worker has its own rotor); at most 64. */
  readonly cycle: readonly (readonly string[])[] | null;
  /** For weighted: each eligible server's chances. */
  readonly probabilities: readonly WeightedChance[] | null;
  readonly candidates: readonly ExplainCandidate[];
  /** The domain's fallback addresses of the asked family (answered only by when_all_down: fallback). */
  readonly fallback: readonly string[];
  /** Non-null when no candidate is answerable, so when_all_down decided. */
  readonly all_down: ExplainAllDown | null;
  /** Additional-section records (glue of an NS answer), in presentation form. */
  readonly additional: readonly string[];
  readonly notes: readonly string[];
  /** Geolocation domains: how the client was placed and which region answers; null otherwise. */
  readonly geo: ExplainGeo | null;
  /** Generation of the snapshot explained. */
  readonly generation: number;
}

const POLICY_NAME: Record<number, ExplainPolicy> = {
  [L.POLICY_ROUND_ROBIN]: 'round-robin',
  [L.POLICY_WEIGHTED]: 'weighted',
  [L.POLICY_FAILOVER]: 'failover',
  [L.POLICY_STATIC]: 'static',
  [L.POLICY_LATENCY]: 'latency',
  [L.POLICY_GEOLOCATION]: 'geolocation',
  [L.POLICY_STICKY]: 'sticky',
};
const ALL_DOWN_NAME: Record<number, WhenAllDown> = {
  [L.ALL_DOWN_SERVFAIL]: 'servfail',
  [L.ALL_DOWN_LAST_HEALTHY]: 'last_healthy',
  [L.ALL_DOWN_ALL]: 'all',
  [L.ALL_DOWN_FALLBACK]: 'fallback',
};
const TYPE_NAME = new Map<number, string>(Object.entries(QTYPE).map(([k, v]) => [v, k]));

/** Longest rotation cycle listed; a round-robin over 500 servers is described by its pool. */
const MAX_CYCLE = 64;
/** Inclusion probabilities of weighted answers are computed exactly over subsets up to this many servers (2^16 states). */
const MAX_EXACT_WEIGHTED = 16;

const views = new WeakMap<SharedArrayBuffer, SnapshotView>();
/** Explain's own worker scratch per snapshot: its rotors, caches and counters are no worker's. */
const scratches = new WeakMap<SharedArrayBuffer, WorkerScratch>();
/** Request and response buffers of wireQuery (the response as big as a worker's: 65 535 bytes). */
const wireReq = new Uint8Array(512);
const wireOut = new Uint8Array(65_535);
/** The UDP size explain's EDNS query offers: this server's most, the DNS Flag Day 2020 size. */
const EXPLAIN_EDNS_SIZE = 1232;

/**
 * Answers one query with the DNS workers' own code (handleQuery) on explain's
 * scratch over the snapshot and live slots explained: over TCP for the whole
 * response's length, then over UDP to see whether it is cut (TC). `edns`
 * adds an OPT record offering EXPLAIN_EDNS_SIZE bytes, without DO. Null when
 * the name does not fit a query.
 */
function wireQuery(input: ExplainInput, qname: string, qtype: number, client: string | null, edns: boolean): { bytes: number; truncated: boolean } | null {
  const buffer = input.snapshot.buffer;
  let ctx = scratches.get(buffer);
  if (ctx === undefined || ctx.live !== input.live) {
    ctx = new WorkerScratch(buffer, input.live, createCounters(1), 0);
    scratches.set(buffer, ctx);
  }
  ctx.setGeo(input.geo ?? null);
  let wireName: Uint8Array;
  try {
    wireName = nameToWire(qname);
  } catch {
    return null;
  }
  const req = wireReq;
  req.fill(0, 0, 12);
  req[5] = 1; // QDCOUNT 1; RD clear, as resolvers ask an authority
  req.set(wireName, 12);
  let off = 12 + wireName.length;
  req[off++] = qtype >>> 8;
  req[off++] = qtype & 0xff;
  req[off++] = 0;
  req[off++] = 1; // class IN
  if (edns) {
    req[11] = 1; // ARCOUNT 1: OPT, owner root, type 41, class = UDP size, TTL 0 (no DO), no options
    req.set([0, 0, 41, EXPLAIN_EDNS_SIZE >>> 8, EXPLAIN_EDNS_SIZE & 0xff, 0, 0, 0, 0, 0, 0], off);
    off += 11;
  }
  // Without a client, a source that nothing maps: explain's "no client" (geolocation: default_region).
  if (client === null) ctx.client.setSource('0.0.0.0', 4);
  else ctx.client.setSource(client, client.includes(':') ? 6 : 4);
  ctx.tick();
  const bytes = handleQuery(ctx, req, off, wireOut, true);
  const udp = handleQuery(ctx, req, off, wireOut, false);
  const truncated = udp >= 4 && (wireOut[2]! & 0x02) !== 0;
  return { bytes, truncated };
}

/**
 * Explains the answer the DNS workers would give now to a query for `name`
 * (any case, trailing dot optional) and `qtype` ("A", "aaaa", "TYPE65", "28")
 * from `client` (an IP literal without a zone index, ::ffff:a.b.c.d read as
 * a.b.c.d; or null). Allocates freely; call it from the
 * API, not per query. Throws RangeError, whose message says what is wrong,
 * when the name, type or client is malformed.
 */
export function explain(input: ExplainInput, name: string, qtype: string, client: string | null): Explanation {
  const qname = normaliseName(name);
  const type = parseType(qtype);
  // Read as GET /api/v1/geo/test reads its ip (parseIp, the one function for a
  // client of either route): a zone index is refused, and ::ffff:a.b.c.d is the
  // IPv4 client a.b.c.d, as the workers take a packet source (routing/client.ts).
  let address: string | null = null;
  if (client !== null) {
    const parsed = parseIp(client.trim());
    if ('error' in parsed) throw new RangeError(`client: ${parsed.error}`);
    address = parsed.address;
  }
  const b = new Builder(input, qname, type, address);
  lookup(b);
  return b.finish();
}

/** Collects the explanation while lookup() walks the same steps as workers/handle-query.ts. */
class Builder {
  readonly input: ExplainInput;
  readonly view: SnapshotView;
  readonly route: RouteState;
  readonly qname: string;
  readonly qtype: number;
  readonly client: string | null;
  rcode: ExplainRcode = 'NOERROR';
  aa = true;
  zone: string | null = null;
  domain: string | null = null;
  source: Explanation['source'] = null;
  policy: ExplainPolicy | null = null;
  maxAnswers: number | null = null;
  whenAllDown: WhenAllDown | null = null;
  ttl: number | null = null;
  selection: Explanation['selection'] = null;
  answers: string[] = [];
  answerSize = 0;
  cycle: string[][] | null = null;
  probabilities: WeightedChance[] | null = null;
  candidates: ExplainCandidate[] = [];
  fallback: string[] = [];
  allDown: ExplainAllDown | null = null;
  additional: string[] = [];
  notes: string[] = [];
  geo: ExplainGeo | null = null;

  constructor(input: ExplainInput, qname: string, qtype: number, client: string | null) {
    this.input = input;
    let view = views.get(input.snapshot.buffer);
    if (view === undefined) {
      view = new SnapshotView(input.snapshot.buffer);
      views.set(input.snapshot.buffer, view);
    }
    this.view = view;
    // Explain's own routing state: the rules run here exactly as in a worker,
    // without touching any worker's cache or rotor.
    this.route = new RouteState(view, input.live);
    this.route.geo = input.geo ?? null;
    this.qname = qname;
    this.qtype = qtype;
    this.client = client;
  }

  finish(): Explanation {
    if (this.client !== null) {
      if (this.policy !== 'geolocation' && this.policy !== 'sticky') {
        this.notes.push(
          this.policy === 'latency'
            ? `the client address ${this.client} is not used by the latency policy: it ranks servers by the overwatch's own health-check latency, the same for every client`
            : `the client address ${this.client} does not change this answer: only geolocation and sticky domains route by client (an ECS option is echoed with scope 0)`,
        );
      }
    }
    if (this.rcode === 'NOERROR' && this.answers.length > 0 && this.ttl !== null) {
      this.notes.push(`resolvers may cache this answer for up to ${this.ttl} s, so a client can still get an earlier answer for that long`);
    }
    return {
      name: this.qname,
      type: typeName(this.qtype),
      client: this.client,
      rcode: this.rcode,
      aa: this.aa,
      zone: this.zone,
      domain: this.domain,
      source: this.source,
      policy: this.policy,
      max_answers: this.maxAnswers,
      when_all_down: this.whenAllDown,
      ttl: this.ttl,
      selection: this.selection,
      answers: this.answers,
      answer_size: this.answerSize,
      wire: this.wire(),
      rotation: this.selection === 'rotation',
      cycle: this.cycle,
      probabilities: this.probabilities,
      candidates: this.candidates,
      fallback: this.fallback,
      all_down: this.allDown,
      additional: this.additional,
      notes: this.notes,
      geo: this.geo,
      generation: this.view.generation,
    };
  }

  /** Runs the workers' answer code for this query (ExplainWire); notes a truncation. */
  wire(): ExplainWire | null {
    const noEdns = wireQuery(this.input, this.qname, this.qtype, this.client, false);
    const edns = wireQuery(this.input, this.qname, this.qtype, this.client, true);
    if (noEdns === null || edns === null) return null;
    const wire = { bytes: noEdns.bytes, bytes_edns: edns.bytes, truncated_without_edns: noEdns.truncated, truncated_at_1232: edns.truncated };
    if (wire.truncated_at_1232) {
      this.notes.push(`the response is ${wire.bytes_edns} bytes: over UDP every client gets TC=1 (no records) and must retry over TCP`);
    } else if (wire.truncated_without_edns) {
      this.notes.push(`the response is ${wire.bytes} bytes without EDNS: a client that sends no EDNS (512-byte limit) gets TC=1 (no records) over UDP and must retry over TCP; with EDNS (${wire.bytes_edns} bytes) it fits`);
    }
    return wire;
  }

  refuse(why: string): void {
    this.rcode = 'REFUSED';
    this.aa = false;
    this.notes.push(why);
  }

  /** NXDOMAIN or NODATA: the zone's SOA in the authority section, with the negative TTL (RFC 2308 §3). */
  negative(zone: number, rcode: 'NOERROR' | 'NXDOMAIN', why: string): void {
    const zb = this.view.zoneBase(zone);
    this.rcode = rcode;
    this.ttl = this.view.u32[zb + L.ZONE_NEG_TTL];
    this.notes.push(why);
    this.notes.push(`the answer carries the SOA of ${this.zone}; resolvers cache this ${rcode === 'NXDOMAIN' ? 'NXDOMAIN' : 'empty answer'} for ${this.ttl} s`);
  }
}

function lookup(b: Builder): void {
  const view = b.view;
  const u32 = view.u32;
  if (b.qtype === QTYPE.AXFR || b.qtype === QTYPE.IXFR) {
    b.refuse('zone transfers are refused: the data changes with health every second');
    return;
  }
  const wire = nameToWire(b.qname);
  let node = view.findNode(wire, 0, wire.length);
  if (node < 0) {
    // The worker's walk: the closest enclosing name we hold decides. Empty
    // non-terminals exist, so a hit inside a zone means NXDOMAIN.
    let off = 0;
    while (wire[off] !== 0) {
      off += wire[off] + 1;
      node = view.findNode(wire, off, wire.length - off);
      if (node >= 0) break;
    }
    if (node < 0) {
      const zones = b.input.snapshot.view.zones.map((z) => z.name);
      b.refuse(`${b.qname} is not inside any zone served here (${zones.join(', ')}); non-authoritative names are refused`);
      return;
    }
    const zone = u32[view.nodeBase(node) + L.NODE_ZONE];
    b.zone = zoneName(view, zone);
    if ((u32[view.nodeBase(node) + L.NODE_FLAGS] & L.NODE_FLAG_CUT) !== 0) return explainReferral(b, node);
    b.negative(zone, 'NXDOMAIN', `no such name in zone ${b.zone}: the closest name held is ${nodeName(view, node) || '.'}`);
    return;
  }
  const nb = view.nodeBase(node);
  const zone = u32[nb + L.NODE_ZONE];
  const flags = u32[nb + L.NODE_FLAGS];
  const isApex = (flags & L.NODE_FLAG_APEX) !== 0;
  b.zone = zoneName(view, zone);
  b.domain = b.input.snapshot.view.domains.find((d) => d.config.name === b.qname)?.config.name ?? null;
  const recA = u32[nb + L.NODE_REC_A];
  const recAAAA = u32[nb + L.NODE_REC_AAAA];
  const nodata = (why: string): void => b.negative(zone, 'NOERROR', `NODATA: ${why}`);
  if ((flags & L.NODE_FLAG_CUT) !== 0) {
    if (b.qtype !== QTYPE.DS) return explainReferral(b, node);
    return nodata(`${b.qname} is a delegation; its DS would be the parent's data and there is none (the child zone is unsigned)`);
  }
  const recCname = u32[nb + L.NODE_REC_CNAME];
  if (recCname !== 0) {
    b.notes.push(`${b.qname} is a CNAME pool: every query type is answered with the one CNAME its routing picks; the target's records follow in the same answer when the target lies in our zones (RFC 1034 §4.3.2)`);
    return explainRecord(b, recCname - 1);
  }
  const statics = staticRecordsAt(b, b.qname);
  const cname = statics.find((r) => r.rdata.type === 'CNAME');
  if (cname !== undefined) {
    b.source = 'static';
    b.selection = 'fixed';
    b.ttl = cname.ttlSec;
    b.answers = [cname.text];
    b.answerSize = 1;
    b.notes.push(`${b.qname} is a static CNAME (dns.zones[].records): every type but CNAME is answered with it, and with the target's records when the target lies in our zones (RFC 1034 §4.3.2)`);
    return;
  }
  const wanted = statics.filter((r) => r.rdata.type === typeName(b.qtype) || (b.qtype === QTYPE.ANY && r === statics[0] && recA === 0 && recAAAA === 0 && !isApex));
  if (wanted.length > 0 && !((b.qtype === QTYPE.A && recA !== 0) || (b.qtype === QTYPE.AAAA && recAAAA !== 0))) {
    b.source = 'static';
    b.selection = 'fixed';
    b.ttl = wanted[0].ttlSec;
    b.answers = wanted.map((r) => r.text);
    b.answerSize = wanted.length;
    b.notes.push(`static records from dns.zones[].records: built once per snapshot, never health-checked`);
    return;
  }
  switch (b.qtype) {
    case QTYPE.A:
    case QTYPE.AAAA: {
      const rec = b.qtype === QTYPE.A ? recA : recAAAA;
      if (rec !== 0) return explainRecord(b, rec - 1);
      const family = b.qtype === QTYPE.A ? 'IPv4' : 'IPv6';
      if (b.domain !== null) return nodata(`domain ${b.domain} has no ${family} servers (nothing can be down, so this is not SERVFAIL)`);
      if ((flags & L.NODE_FLAG_ENT) !== 0) return nodata(`${b.qname} exists only because names below it do (an empty non-terminal)`);
      return nodata(`${b.qname} exists but has no ${b.qtype === QTYPE.A ? 'A' : 'AAAA'} records`);
    }
    case QTYPE.ANY:
      // RFC 8482 §4.2: one RRset we hold, not all of them.
      b.notes.push('ANY is answered with one RRset (RFC 8482): A if the name has any, else AAAA, else the SOA at an apex');
      if (recA !== 0) return explainRecord(b, recA - 1);
      if (recAAAA !== 0) return explainRecord(b, recAAAA - 1);
      if (isApex) return soaAnswer(b, zone);
      return nodata(`${b.qname} has no address records`);
    case QTYPE.SOA:
      return isApex ? soaAnswer(b, zone) : nodata(`the SOA lives at the apex ${b.zone}, not at ${b.qname}`);
    case QTYPE.NS:
      return isApex ? nsAnswer(b, zone) : nodata(`the NS RRset lives at the apex ${b.zone}; no zone is delegated at ${b.qname}`);
    default:
      return nodata(`only A, AAAA, SOA, NS (and ANY) are served; ${typeName(b.qtype)} has no data at any name`);
  }
}

/** The static records (dns.zones[].records) whose owner is `name`, in file order. */
function staticRecordsAt(b: Builder, name: string): StaticRecordConfig[] {
  const out: StaticRecordConfig[] = [];
  for (const z of b.input.snapshot.view.zones) for (const r of z.records) if (r.owner === name) out.push(r);
  return out;
}

/** A referral: the delegation at `cut` (its NS in authority, glue in additional, AA clear). */
function explainReferral(b: Builder, cut: number): void {
  const view = b.view;
  const cutName = nodeName(view, cut);
  const ns = staticRecordsAt(b, cutName).filter((r) => r.rdata.type === 'NS');
  b.aa = false;
  b.source = 'delegation';
  b.selection = 'fixed';
  b.ttl = ns[0]?.ttlSec ?? null;
  b.additional.push(...ns.map((r) => r.text));
  b.notes.push(`${b.qname} is at or below ${cutName}, delegated by NS records in dns.zones[].records: the answer is a referral (no answer, the NS records in the authority section, glue in the additional section, AA clear)`);
}

function soaAnswer(b: Builder, zone: number): void {
  const view = b.view;
  const zb = view.zoneBase(zone);
  const body = view.u32[zb + L.ZONE_SOA_OFF];
  const u8 = view.u8;
  let off = body + 10;
  const mname = readWireName(u8, off);
  off = mname.end;
  const rname = readWireName(u8, off);
  off = rname.end;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) times.push(readU32(u8, off + i * 4));
  b.source = 'zone';
  b.ttl = readU32(u8, body + 4);
  b.selection = 'fixed';
  b.answers = [`${mname.name}. ${rname.name}. ${times.join(' ')}`];
  b.answerSize = 1;
}

function nsAnswer(b: Builder, zone: number): void {
  const view = b.view;
  const u8 = view.u8;
  const zb = view.zoneBase(zone);
  let src = view.u32[zb + L.ZONE_NS_OFF];
  const count = view.u32[zb + L.ZONE_NS_COUNT];
  b.source = 'zone';
  b.selection = 'fixed';
  for (let i = 0; i < count; i++) {
    if (i === 0) b.ttl = readU32(u8, src + 4);
    b.answers.push(readWireName(u8, src + 10).name);
    src += 10 + ((u8[src + 8] << 8) | u8[src + 9]);
  }
  b.answerSize = count;
  let glue = view.u32[zb + L.ZONE_GLUE_OFF];
  for (let i = 0; i < view.u32[zb + L.ZONE_GLUE_COUNT]; i++) {
    const owner = readWireName(u8, glue);
    const type = (u8[owner.end] << 8) | u8[owner.end + 1];
    const rdLen = (u8[owner.end + 8] << 8) | u8[owner.end + 9];
    b.additional.push(`${owner.name} ${type === QTYPE.A ? 'A' : 'AAAA'} ${formatIpBytes(u8, owner.end + 10, rdLen)}`);
    glue = owner.end + 10 + rdLen;
  }
}

/** One member of a record with what explain shows of it, read once so every step sees the same values. */
interface Member {
  readonly index: number;
  /** Member-word offset (memberBase) in the snapshot. */
  readonly mb: number;
  readonly info: MemberModel | null;
  readonly address: string;
  readonly weight: number;
  readonly health: number;
  readonly serverSlot: number;
  readonly emaUs: number;
  /** Samples of its latency EMA; 0 when unmeasured. */
  readonly samples: number;
  /** Nothing measures its latency (UNMEASURED_* words: health_check type none, an agent's backend without validation). */
  readonly unmeasured: boolean;
  /** Seconds since LAST_UP_EPOCH_SEC, 0 = never. */
  readonly lastUp: number;
}

/** Why members are in or out, and what their part is, as explain collects it. */
interface Why {
  readonly reasons: Map<Member, string>;
  readonly details: Map<Member, string>;
}

/** Reads the address a member's answer fragment carries. */
function fragmentAddress(view: SnapshotView, member: number, fragLen: number): string {
  // A CNAME pool's fragment (REC_FRAG_LEN 0) carries a target name.
  if (fragLen === 0) return readWireName(view.u8, view.u32[view.memberBase(member) + L.MEM_FRAG_OFF] + 12).name;
  return formatIpBytes(view.u8, view.u32[view.memberBase(member) + L.MEM_FRAG_OFF] + 12, fragLen - 12);
}

/** Explains record `r` with the rules of selectMembers() (src/routing/select.ts), run on explain's own RouteState. */
function explainRecord(b: Builder, r: number): void {
  const view = b.view;
  const u32 = view.u32;
  const live = b.input.live;
  const cap = live[LIVE_CAPACITY];
  const state = b.route;
  const rb = view.recordBase(r);
  const policy = u32[rb + L.REC_POLICY];
  const start = u32[rb + L.REC_MEMBER_START];
  const count = u32[rb + L.REC_MEMBER_COUNT];
  const want = u32[rb + L.REC_MAX_ANSWERS];
  const fragLen = u32[rb + L.REC_FRAG_LEN];
  // Every policy that picks by weight leaves weight 0 out (select.ts byWeight):
  // geolocation and sticky as well as weighted, so their verdicts match the worker's.
  const weighted = policy === L.POLICY_WEIGHTED || policy === L.POLICY_GEOLOCATION || policy === L.POLICY_STICKY;
  const domain = b.input.snapshot.recordDomains[r] ?? null;

  const members: Member[] = [];
  const byIndex = new Map<number, Member>();
  for (let i = 0; i < count; i++) {
    const mb = view.memberBase(start + i);
    const healthSlot = u32[mb + L.MEM_HEALTH_SLOT];
    const serverSlot = u32[mb + L.MEM_SERVER];
    const checked = serverSlot !== L.NO_SLOT;
    const word = checked ? latencyWord(cap, serverSlot) : 0;
    const m: Member = {
      index: start + i,
      mb,
      info: b.input.snapshot.members[start + i] ?? null,
      address: fragmentAddress(view, start + i, fragLen),
      weight: u32[mb + L.MEM_WEIGHT],
      health: healthSlot === L.NO_SLOT ? HEALTH_HEALTHY : readHealth(live, healthSlot),
      serverSlot,
      emaUs: checked ? Atomics.load(live, word) : 0,
      samples: checked && !isUnmeasured(Atomics.load(live, word + 1)) ? Atomics.load(live, word + 1) : 0,
      unmeasured: checked && isUnmeasured(Atomics.load(live, word + 1)),
      lastUp: checked ? Atomics.load(live, lastUpWord(cap, serverSlot)) : 0,
    };
    members.push(m);
    byIndex.set(m.index, m);
  }
  b.ttl = u32[rb + L.REC_TTL];
  b.policy = POLICY_NAME[policy] ?? null;
  b.maxAnswers = want;

  // The worker's list, built by the worker's code.
  refreshList(state, r);
  const n = state.listLength(r);
  const degraded = state.degradedMode(r);
  const list: Member[] = [];
  for (let i = 0; i < n; i++) list.push(byIndex.get(state.healthy[start + i]) as Member);
  const picks = new Int32Array(L.MAX_ANSWERS_LIMIT);
  /** The members of the next answer, as selectMembers() gives them with the rotor at `rotor`. */
  const answerAt = (rotor: number): Member[] => {
    state.setRotor(r, rotor);
    const k = selectMembers(state, r, picks, null);
    return Array.from(picks.subarray(0, k), (idx) => byIndex.get(idx) as Member);
  };

  if (policy === L.POLICY_STATIC || domain === null) {
    // Name-server addresses: every one, in config order, never checked.
    b.source = 'nameserver';
    b.selection = 'fixed';
    const answer = answerAt(0);
    const k = answer.length;
    b.answers = answer.map((m) => m.address);
    b.answerSize = k;
    b.candidates = members.map((m, i) => staticCandidate(m.address, i < k, i < k ? `position ${i + 1}` : null, i < k ? null : `beyond the ${k} records one answer carries`));
    b.notes.push(`${b.qname} is a name server of ${b.zone}: its addresses come from dns.zones[].nameservers, are static and never health-checked`);
    return;
  }

  b.source = 'domain';
  b.domain = domain;
  const mode = u32[rb + L.REC_ALL_DOWN];
  b.whenAllDown = ALL_DOWN_NAME[mode] ?? null;
  const fbStart = u32[rb + L.REC_FALLBACK_START];
  const fbCount = u32[rb + L.REC_FALLBACK_COUNT];
  for (let i = 0; i < fbCount; i++) b.fallback.push(fragmentAddress(view, fbStart + i, fragLen));

  const why: Why = { reasons: new Map(), details: new Map() };
  for (const m of members) {
    const verdict = healthyVerdict(state, m.mb, weighted);
    if (verdict === OUT_WEIGHT_ZERO) why.reasons.set(m, `weight 0: the ${b.policy} policy never answers it (it is still checked)`);
    else if (verdict !== LISTED) why.reasons.set(m, downReason(b, m));
  }
  if (degraded !== DEGRADED_NONE) explainAllDown(b, members, mode, weighted, rb, start, count, why);

  if (n === 0) {
    const answer = degraded === L.ALL_DOWN_FALLBACK ? answerAt(0) : [];
    if (answer.length > 0) {
      const k = answer.length;
      b.allDown = { mode: 'fallback', answered: true };
      b.selection = 'fixed';
      b.answers = Array.from(picks.subarray(0, k), (idx) => fragmentAddress(view, idx, fragLen));
      b.answerSize = k;
      b.notes.push(`when_all_down: fallback answers the domain's fallback address${k > 1 ? 'es' : ''} ${b.answers.join(', ')}${k < fbCount ? ` (the first ${k}: max_answers ${want})` : ''}`);
    } else {
      b.rcode = 'SERVFAIL';
      b.aa = false;
      b.ttl = null;
      b.allDown = { mode: b.whenAllDown ?? 'servfail', answered: false };
      if (degraded === L.ALL_DOWN_FALLBACK) b.notes.push(`when_all_down: fallback, but the domain has no ${fragLen === L.FRAG_LEN_A ? 'IPv4' : 'IPv6'} fallback address: SERVFAIL`);
      else if (degraded === L.ALL_DOWN_SERVFAIL) b.notes.push('when_all_down: servfail: resolvers try another name server or report the failure');
    }
    b.candidates = members.map((m) => candidate(b, domain, m, false, why.reasons.get(m) ?? null, null));
    return;
  }
  if (degraded !== DEGRADED_NONE) b.allDown = { mode: b.whenAllDown ?? 'servfail', answered: true };

  const k = Math.min(want, n);
  b.answerSize = k;
  const pool = new Set<Member>();
  if (policy === L.POLICY_ROUND_ROBIN || (policy === L.POLICY_LATENCY && degraded !== DEGRADED_NONE)) {
    rotation(b, list, k, answerAt, pool, why);
    if (policy === L.POLICY_LATENCY) b.notes.push('latency does not rank while when_all_down answers: the list rotates round-robin');
  } else if (policy === L.POLICY_WEIGHTED) {
    weightedChances(b, list, k, pool, why);
  } else if (policy === L.POLICY_GEOLOCATION) {
    geolocation(b, r, rb, start, list, want, pool, why);
  } else if (policy === L.POLICY_STICKY) {
    sticky(b, r, rb, list, k, byIndex, pool, why);
  } else if (policy === L.POLICY_LATENCY) {
    latency(b, list, k, rb, start, answerAt, pool, why);
  } else {
    failover(b, list, k, answerAt(0), pool, why);
  }
  // The policies above say how they fill max_answers > 1; this is the case none of them covers.
  if (k < want) b.notes.push(`max_answers ${want}, but only ${n} server${n === 1 ? ' is' : 's are'} eligible: each answer carries ${k}`);
  b.candidates = members.map((m) => {
    const eligible = pool.has(m);
    return candidate(b, domain, m, eligible, eligible ? null : why.reasons.get(m) ?? 'not chosen', eligible ? why.details.get(m) ?? null : null);
  });
}

/** No member is healthy: says what the record's when_all_down mode does, member by member (allDownVerdict()). */
function explainAllDown(b: Builder, members: Member[], mode: number, weighted: boolean, rb: number, start: number, count: number, why: Why): void {
  const fragLen = b.view.u32[rb + L.REC_FRAG_LEN];
  const family = fragLen === L.FRAG_LEN_A ? 'IPv4' : fragLen === 0 ? 'CNAME' : 'IPv6';
  const healthyZero = members.some((m) => m.health === HEALTH_HEALTHY);
  b.notes.push(
    healthyZero
      ? `every healthy ${family} server has weight 0, so nothing is answerable and when_all_down: ${b.whenAllDown} decides`
      : `every ${family} server of ${b.domain} is down, so when_all_down: ${b.whenAllDown} decides`,
  );
  if (mode !== L.ALL_DOWN_LAST_HEALTHY && mode !== L.ALL_DOWN_ALL) return;
  const newest = mode === L.ALL_DOWN_LAST_HEALTHY ? newestLastUp(b.route, start, count, weighted) : 0;
  if (mode === L.ALL_DOWN_LAST_HEALTHY && newest === 0) {
    b.notes.push(`when_all_down: last_healthy, but no server has been healthy since the overwatch started${weighted ? ' (of those it may answer: not drained, weight above 0)' : ''}: SERVFAIL`);
    return;
  }
  const windowSec = b.view.u32[rb + L.REC_LAST_UP_WINDOW];
  for (const m of members) {
    const verdict = allDownVerdict(b.route, m.mb, mode, newest - windowSec, weighted);
    if (verdict === OUT_DRAINED) why.reasons.set(m, `${why.reasons.get(m)} (a drain holds even when when_all_down fails open)`);
    else if (verdict === OUT_STALE) why.reasons.set(m, `${why.reasons.get(m)}; ${m.lastUp === 0 ? 'never seen healthy' : `last up ${newest - m.lastUp} s before the most recent server`}, outside the ${windowSec} s last_healthy window`);
    else if (verdict === OUT_WEIGHT_ZERO) why.reasons.set(m, `weight 0: the ${b.policy} policy never answers it, not even when all are down`);
    else {
      why.details.set(m, mode === L.ALL_DOWN_ALL
        ? 'answered although down: when_all_down: all fails open'
        : `answered although down: last up ${newest - m.lastUp} s before the most recent server, within the ${windowSec} s last_healthy window`);
    }
  }
  if (mode === L.ALL_DOWN_LAST_HEALTHY) b.notes.push(`when_all_down: last_healthy answers the servers seen up within ${windowSec} s of the most recent one (${rfc3339(lastUpMs(newest))}), by the domain's policy`);
  else b.notes.push('when_all_down: all fails open: every server (except drained ones) is answered by the domain\'s policy as if healthy');
}

/** Round-robin: answer i of the cycle is what the worker gives with its rotor at i. */
function rotation(b: Builder, list: Member[], k: number, answerAt: (rotor: number) => Member[], pool: Set<Member>, why: Why): void {
  const n = list.length;
  b.selection = 'rotation';
  b.cycle = [];
  for (let i = 0; i < n && i < MAX_CYCLE; i++) b.cycle.push(answerAt(i).map((m) => m.address));
  for (const m of list) {
    pool.add(m);
    if (!why.details.has(m)) why.details.set(m, n === 1 ? 'the only eligible server: every answer' : `rotates with the other ${n - 1}`);
  }
  b.answers = list.map((m) => m.address);
  b.notes.push(`round-robin rotates over ${n} eligible server${n === 1 ? '' : 's'}, one step per answer; each DNS worker keeps its own rotation, so one client need not see a strict rotation`);
  if (k > 1) b.notes.push(`max_answers ${k}: each answer carries ${k} consecutive servers of the rotation, starting at the rotor's position`);
  if (n > MAX_CYCLE) b.notes.push(`the cycle lists the first ${MAX_CYCLE} of ${n} answers`);
}

/** Weighted: the first pick by weight over the list, later ones without replacement; the chances of each. */
function weightedChances(b: Builder, list: Member[], k: number, pool: Set<Member>, why: Why): void {
  const total = list.reduce((s, m) => s + m.weight, 0);
  const inAnswer = k === 1 ? list.map((m) => m.weight / total) : k >= list.length ? list.map(() => 1) : inclusion(list.map((m) => m.weight), k);
  b.selection = 'weighted_random';
  b.answers = list.map((m) => m.address);
  b.probabilities = list.map((m, i) => ({ address: m.address, weight: m.weight, first: round(m.weight / total), in_answer: inAnswer === null ? null : round(inAnswer[i]) }));
  for (const m of list) {
    pool.add(m);
    const share = `weight ${m.weight} of ${total}: leads ${percent(m.weight / total)} of answers`;
    why.details.set(m, why.details.has(m) ? `${why.details.get(m)}; ${share}` : share);
  }
  b.notes.push(`weighted draws at random in proportion to weight over ${list.length} eligible server${list.length === 1 ? '' : 's'} (total weight ${total})${k > 1 ? `; the ${k} servers of one answer are drawn without replacement` : ''}`);
  if (inAnswer === null) b.notes.push(`the chance of being anywhere in an answer is not computed for more than ${MAX_EXACT_WEIGHTED} servers`);
}

/** Probability that each item is among the first k of a weighted draw without replacement; null when too many items. */
function inclusion(weights: number[], k: number): number[] | null {
  const n = weights.length;
  if (n > MAX_EXACT_WEIGHTED) return null;
  const total = weights.reduce((s, w) => s + w, 0);
  // p[S]: probability that the first |S| picks are exactly the set S. A set's
  // supersets have larger masks, so one ascending pass fills the table.
  const p = new Float64Array(1 << n);
  const drawn = new Float64Array(1 << n);
  const size = new Uint8Array(1 << n);
  p[0] = 1;
  const out = new Array<number>(n).fill(0);
  for (let s = 0; s < 1 << n; s++) {
    if (p[s] === 0) continue;
    if (size[s] === k) {
      for (let i = 0; i < n; i++) if (s & (1 << i)) out[i] += p[s];
      continue;
    }
    const left = total - drawn[s];
    for (let i = 0; i < n; i++) {
      if (s & (1 << i)) continue;
      const t = s | (1 << i);
      p[t] += (p[s] * weights[i]) / left;
      drawn[t] = drawn[s] + weights[i];
      size[t] = size[s] + 1;
    }
  }
  return out;
}

/** What explain says of a server latency routing cannot measure. */
const UNMEASURED = 'never measured: the overwatch does not check it (health_check type none, or an agent\'s backend without overwatch.validation)';

/** Latency on a healthy list: latencyCutoff() decides whether and where it ranks; each tied server leads the answer the worker gives with its rotor on it. */
function latency(b: Builder, list: Member[], k: number, rb: number, start: number, answerAt: (rotor: number) => Member[], pool: Set<Member>, why: Why): void {
  const u32 = b.view.u32;
  const minSamples = u32[rb + L.REC_MIN_SAMPLES];
  const maxUs = u32[rb + L.REC_MAX_LATENCY_US];
  const tieUs = u32[rb + L.REC_TIE_MARGIN_US];
  const cutoff = latencyCutoff(b.route, rb, start, list.length);
  if (cutoff === LATENCY_TOO_FEW_SAMPLES) {
    const short = list.filter((m) => !m.unmeasured && m.samples < minSamples);
    for (const m of list) {
      why.details.set(m, m.unmeasured
        ? `${UNMEASURED}; latency does not wait for it, and ranks it after every measured server once they have ${minSamples} samples`
        : m.samples < minSamples ? `${m.samples} of ${minSamples} samples: latency does not decide yet` : `${m.samples} samples (${ms(m.emaUs)} ms); rotates until every healthy server has ${minSamples}`);
    }
    rotation(b, list, k, answerAt, pool, why);
    b.notes.push(`latency answers round-robin until every healthy server has min_samples ${minSamples} samples; ${short.map((m) => `${m.address} has ${m.samples}`).join(', ')}`);
    return;
  }
  const best = fastestEma(b.route, start, list.length);
  const ties = list.filter((m) => m.emaUs <= cutoff);
  if (list.every((m) => m.unmeasured)) {
    // Nothing to rank: the worker's cutoff ties them all, so they rotate.
    for (const m of list) why.details.set(m, `${UNMEASURED}; rotates with the others`);
    rotation(b, list, k, answerAt, pool, why);
    b.notes.push('latency: no healthy server is measured by the overwatch\'s checks (health_check type none, or agents\' backends without overwatch.validation), so there is nothing to rank: they answer round-robin');
    return;
  }
  b.cycle = [];
  for (let i = 0; i < ties.length; i++) {
    const answer = answerAt(i);
    for (const m of answer) pool.add(m);
    if (b.cycle.length < MAX_CYCLE) b.cycle.push(answer.map((m) => m.address));
  }
  const seen = new Set<string>();
  b.answers = [];
  for (const answer of b.cycle) {
    for (const a of answer) {
      if (seen.has(a)) continue;
      seen.add(a);
      b.answers.push(a);
    }
  }
  b.selection = ties.length > 1 ? 'rotation' : 'fixed';
  if (ties.length === 1) b.cycle = null;
  // The worker leaves servers above max_latency_ms out of the whole answer
  // while one is at or below it (fillByLatency), so an answer can be shorter
  // than k; every answer of the cycle has the same size.
  const cut = best <= maxUs;
  const size = b.cycle === null ? b.answers.length : b.cycle[0].length;
  b.answerSize = size;
  const tieMs = ms(tieUs);
  for (const m of list) {
    if (m.unmeasured) {
      why.details.set(m, `${UNMEASURED}: ranks after every measured server`);
      if (!pool.has(m)) {
        why.reasons.set(m, cut
          ? `${UNMEASURED}: ranks after every measured server and, like a server above max_latency_ms, is not answered while a server is at or below ${ms(maxUs)} ms`
          : `${UNMEASURED}: ranks after every measured server, which ${k > 1 ? `fill the ${k} places of an answer` : 'lead the answers'}`);
      }
      continue;
    }
    if (m.emaUs === best) why.details.set(m, `fastest (${ms(m.emaUs)} ms)`);
    else if (m.emaUs <= cutoff) why.details.set(m, `within tie_margin_ms of the fastest (${ms(m.emaUs)} ms ≤ ${ms(best)} + ${tieMs} ms)`);
    else why.details.set(m, `${ms(m.emaUs)} ms: fills a later place of the answer in ascending latency`);
    if (pool.has(m)) continue;
    if (cut && m.emaUs > maxUs) {
      why.reasons.set(m, `above max_latency_ms (${ms(m.emaUs)} ms > ${ms(maxUs)} ms) while a server is below it`);
      continue;
    }
    why.reasons.set(m, `slower than the fastest beyond tie_margin_ms (${ms(m.emaUs)} ms > ${ms(best)} + ${tieMs} ms)`);
    if (k > 1) why.reasons.set(m, `${why.reasons.get(m)}, and the ${k} places of an answer go to faster servers`);
  }
  if (!cut) b.notes.push(`every healthy server is above max_latency_ms ${ms(maxUs)}: the fastest (${ms(best)} ms) and those within tie_margin_ms of it still answer`);
  b.notes.push(ties.length > 1
    ? `latency: ${ties.length} servers are within tie_margin_ms ${tieMs} of the fastest (${ms(best)} ms) and lead answers in turn; each DNS worker keeps its own rotation`
    : `latency: ${ties[0].address} is the fastest (${ms(best)} ms); no other server is within tie_margin_ms ${tieMs}`);
  if (k > 1) {
    b.notes.push(cut
      ? `max_answers ${k}: the first place goes to a tied fastest server, the rest follow in ascending latency among the servers at or below max_latency_ms ${ms(maxUs)}`
      : `max_answers ${k}: the first place goes to a tied fastest server, the rest follow in ascending latency`);
    if (size < k) b.notes.push(`max_answers ${k}, but only ${size} server${size === 1 ? ' is' : 's are'} at or below max_latency_ms ${ms(maxUs)}: each answer carries ${size}; servers above it are not given while one is below it`);
  }
}

/**
 * Geolocation: places the client as a worker would (explainGeo over the
 * snapshot's geo table), lets selectMembers() pick the answering region with
 * the worker's own walk, and explains the weighted draw within it.
 */
function geolocation(b: Builder, r: number, rb: number, start: number, list: Member[], want: number, pool: Set<Member>, why: Why): void {
  const view = b.view;
  const state = b.route;
  const names = b.input.snapshot.view.regionNames;
  const client = new ClientAddress(new ParsedQuery());
  if (b.client !== null) client.setSource(b.client, b.client.includes(':') ? 6 : 4);
  const placed = b.client === null ? null : explainGeo(names, view.u32, view.geoWord, state.geo, b.client, view.ecsEnabled);
  const picks = new Int32Array(L.MAX_ANSWERS_LIMIT);
  const k = selectMembers(state, r, picks, b.client === null ? null : client);
  const decided = state.decision.region;
  // The answering region: the group of the first pick (selectMembers never mixes regions).
  const first = view.u32[rb + L.REC_GROUP_START];
  const count = view.u32[rb + L.REC_GROUP_COUNT];
  let answeredGroup = -1;
  for (let g = 0; g < count && k > 0; g++) {
    if (picks[0] - start < view.u32[view.groupBase(first + g) + L.GRP_MEMBER_END]) {
      answeredGroup = g;
      break;
    }
  }
  const answeredRegion = answeredGroup < 0 ? null : names[view.u32[view.groupBase(first + answeredGroup) + L.GRP_REGION]] ?? null;
  const decidedName = decided < 0 ? null : names[decided] ?? null;
  const inDomain = decided >= 0 && groupOf(state, rb, decided) >= 0;
  const fallback = decided < 0 ? 'no_region' : !inDomain ? 'region_not_served' : answeredRegion !== decidedName ? 'region_down' : null;
  const unplaced: GeoTestResult = { ip: '', region: decidedName, match_type: decidedName === null ? 'none' : 'default', matched_cidr: null, country: null, continent: null, geoip_network: null, scope_prefix_length: 0 };
  b.geo = { ...(placed ?? unplaced), answered_region: answeredRegion, fallback };
  if (b.client === null) b.notes.push(`no client address given: explained as for a query that carries none (default_region${decidedName === null ? ', which is not set' : ` ${decidedName}`}); ask with a client to see its region`);
  else if (state.geo === null) b.notes.push('no GeoIP database is open: only custom mappings and default_region place clients');
  const lo = answeredGroup <= 0 ? 0 : state.groupEnd[first + answeredGroup - 1];
  const hi = answeredGroup < 0 ? 0 : state.groupEnd[first + answeredGroup];
  const end = answeredGroup < 0 ? start : start + view.u32[view.groupBase(first + answeredGroup) + L.GRP_MEMBER_END];
  const inRegion = list.filter((m, i) => i >= lo && i < hi && m.index < end);
  for (const m of list) {
    if (!inRegion.includes(m)) why.reasons.set(m, `in region ${m.info?.server.region}; this client's answers come from region ${answeredRegion ?? '(none)'}`);
  }
  if (fallback === 'region_down') b.notes.push(`the client maps to region ${decidedName}, which has no answerable server: the next region of the domain in order that has one answers (${answeredRegion})`);
  else if (fallback === 'region_not_served') b.notes.push(`the client maps to region ${decidedName}, which is not one of this domain's: its first region with an answerable server answers (${answeredRegion})`);
  else if (fallback === 'no_region') b.notes.push(`no custom mapping, country or continent places the client and there is no default_region: the domain's first region with an answerable server answers (${answeredRegion})`);
  if (inRegion.length > 0) weightedChances(b, inRegion, Math.min(want, inRegion.length), pool, why);
  b.answerSize = Math.min(want, inRegion.length);
  // With ecs_enabled off the packet's source decides and an ECS option is echoed with scope 0 (select.ts pickGeo).
  if (!view.ecsEnabled) b.notes.push('overwatch.geolocation.ecs_enabled is off: the address the query came from decides, and an ECS option is echoed with scope 0');
  else if (placed !== null && placed.scope_prefix_length > 0) b.notes.push(`an answer to this client as an ECS address carries scope /${placed.scope_prefix_length}: resolvers reuse it for that whole network`);
}

/**
 * Sticky: the client's network as a worker cuts it, the members
 * selectMembers() answers it (the best rendezvous scores), and where the
 * client goes when they fail: the next best.
 */
function sticky(b: Builder, r: number, rb: number, list: Member[], k: number, byIndex: Map<number, Member>, pool: Set<Member>, why: Why): void {
  const state = b.route;
  const u32 = b.view.u32;
  const client = new ClientAddress(new ParsedQuery());
  if (b.client !== null) client.setSource(b.client, b.client.includes(':') ? 6 : 4);
  const picks = new Int32Array(L.MAX_ANSWERS_LIMIT);
  const got = selectMembers(state, r, picks, b.client === null ? null : client);
  const answered = Array.from(picks.subarray(0, got), (idx) => byIndex.get(idx) as Member);
  b.selection = 'fixed';
  b.answers = answered.map((m) => m.address);
  answered.forEach((m, i) => {
    pool.add(m);
    why.details.set(m, `rendezvous rank ${i + 1} for this client's network`);
  });
  // The rest ranked as a worker would rank them, to say who takes over.
  const h = state.clientHash;
  const ranked = list
    .map((m) => ({ m, score: stickyScore(h, state.memberHash[m.index], u32[m.mb + L.MEM_WEIGHT]) }))
    .sort((x, y) => y.score - x.score);
  ranked.forEach(({ m }, i) => {
    if (!pool.has(m)) why.reasons.set(m, `rendezvous rank ${i + 1} for this client's network: it answers this client when the ${i === 1 ? 'server' : `${i} servers`} ranked above it are not answerable`);
  });
  const v4 = u32[rb + L.REC_STICKY_V4_PREFIX];
  const v6 = u32[rb + L.REC_STICKY_V6_PREFIX];
  if (b.client === null) {
    b.notes.push('no client address given: explained as for a query that carries none (all such queries count as one network); ask with a client to see its server');
  } else {
    const len = b.client.includes(':') ? v6 : v4;
    b.notes.push(`sticky: the client's network ${b.client}/${len} (the source address cut to ${b.client.includes(':') ? 'ipv6_prefix' : 'ipv4_prefix'}; an ECS address is cut the same way) gets ${answered.map((m) => m.address).join(', ')} while ${k === 1 ? 'it is' : 'they are'} answerable`);
  }
  const next = ranked.find(({ m }) => !pool.has(m));
  if (next !== undefined) b.notes.push(`if ${k === 1 ? 'it fails' : 'one of them fails'}, this client's answers move to ${next.m.address} and come back when it recovers; clients of other networks do not move`);
  b.notes.push(`weighted rendezvous hashing: each network goes to the servers with the best scores for it, so networks spread in proportion to the weights, and every DNS worker and overwatch answers a network alike`);
}

/** Failover (and the default branch of selectMembers): `answered`, the first k of the list in priority order. */
function failover(b: Builder, list: Member[], k: number, answered: Member[], pool: Set<Member>, why: Why): void {
  b.selection = 'fixed';
  b.answers = answered.map((m) => m.address);
  answered.forEach((m, i) => {
    pool.add(m);
    why.details.set(m, why.details.has(m) ? `${why.details.get(m)}; position ${i + 1}` : `position ${i + 1}`);
  });
  const last = answered[answered.length - 1];
  for (const m of list) {
    if (pool.has(m)) continue;
    const level = m.info?.priority ?? 0;
    const lastLevel = last.info?.priority ?? 0;
    why.reasons.set(m, level > lastLevel
      ? `lower failover level ${level} (${m.info?.server.region}) while level ${lastLevel} (${last.info?.server.region}) has ${k === 1 ? 'a healthy server' : 'healthy servers filling max_answers ' + k}`
      : `same failover level ${level} (${m.info?.server.region}) but later in file order: max_answers ${k} is filled by the servers before it`);
  }
  const first = answered[0];
  if (k > 1) b.notes.push(`max_answers ${k}: the ${k} first in priority order are answered`);
  b.notes.push(`failover answers the first ${k === 1 ? 'healthy server' : `${k} healthy servers`} in priority order (regions in the domain's order, then file order): level ${first.info?.priority ?? 0} (${first.info?.server.region ?? '?'}) answers now`);
}

/** Says which override it is: its scope and its end ("this domain only, until cleared", "region eu-west, until 2026-…"). */
function overrideScope(o: Override): string {
  const t = o.target;
  const scope = t.scope === 'domain' ? 'this domain only' : t.scope === 'server' ? `address ${t.address} in every domain` : `region ${t.region}`;
  return `${scope}, ${o.expiresAtMs === null ? 'until cleared' : `until ${rfc3339(o.expiresAtMs)}`}`;
}

function downReason(b: Builder, m: Member): string {
  const info = m.info;
  const override = info !== null ? b.input.registry.overrideFor(info.domain, info.server) : null;
  if (m.health === HEALTH_DRAINED) {
    return override !== null ? `overridden down by ${override.source} (${overrideScope(override)}): ${override.reason}` : 'drained by an override';
  }
  if (override !== null && !override.healthy) return `overridden down by ${override.source} (${overrideScope(override)}): ${override.reason}`;
  // An agent's backend the overwatch does not check itself: its agent decides (the registry's rule).
  const authority = info !== null && override === null ? b.input.registry.authorityOf(info.server, info.domain) : null;
  if (authority === 'stale') return 'stale: its agent has not been heard from for overwatch.stale.threshold';
  if (authority === 'draining') return `draining: its agent drains it (${b.input.registry.agentStateOf(info?.server.key ?? '')?.drain})`;
  if (authority === 'agent') return m.health === HEALTH_UNKNOWN ? 'health unknown: its agent has no verdict yet' : 'unhealthy: its agent\'s checks fail';
  if (m.health === HEALTH_UNKNOWN) return 'health unknown: no check verdict yet';
  const error = info !== null ? b.input.lastErrorOf?.(info.server) ?? null : null;
  return error !== null && error !== '' ? `unhealthy: ${error}` : 'unhealthy: failed its health checks';
}

function candidate(b: Builder, domain: string, m: Member, eligible: boolean, reason: string | null, detail: string | null): ExplainCandidate {
  const info = m.info;
  const override = info !== null ? b.input.registry.overrideFor(domain, info.server) : null;
  const check = m.serverSlot === L.NO_SLOT ? null : healthName(readHealth(b.input.live, m.serverSlot));
  let d = detail;
  if (eligible && override !== null && override.healthy && check !== 'healthy') {
    d = `${d === null ? '' : d + '; '}override by ${override.source} (${overrideScope(override)}) forces healthy (${override.reason}); the checks say ${check}`;
  }
  return {
    address: m.address,
    port: info?.server.port ?? null,
    region: info?.server.region ?? null,
    priority: info?.priority ?? null,
    weight: m.weight,
    status: m.health === HEALTH_DRAINED ? 'drained' : healthName(m.health),
    check_status: check,
    authority: info !== null ? b.input.registry.authorityOf(info.server, domain) : null,
    override: override === null ? null : overrideView(override),
    latency_ms: m.samples > 0 ? ms(m.emaUs) : null,
    samples: m.samples,
    last_up: rfc3339(lastUpMs(m.lastUp)),
    eligible,
    reason: eligible ? null : reason,
    detail: eligible ? d : null,
  };
}

function overrideView(o: Override): ExplainOverride {
  const t = o.target;
  return {
    scope: t.scope,
    target: t.scope === 'region' ? t.region : t.address,
    healthy: o.healthy,
    source: o.source,
    reason: o.reason,
    expires_at: rfc3339(o.expiresAtMs),
  };
}

function staticCandidate(address: string, eligible: boolean, detail: string | null, reason: string | null): ExplainCandidate {
  return {
    address, port: null, region: null, priority: null, weight: null, status: 'static', check_status: null, authority: null, override: null,
    latency_ms: null, samples: 0, last_up: null, eligible, reason, detail,
  };
}

function healthName(h: number): 'healthy' | 'unhealthy' | 'unknown' {
  return h === HEALTH_HEALTHY ? 'healthy' : h === HEALTH_UNKNOWN ? 'unknown' : 'unhealthy';
}

/** Lower-cases a presentation name and drops the trailing dot; throws RangeError on what no query can carry. */
function normaliseName(name: string): string {
  const trimmed = name.trim();
  // The worker compares bytes; a name outside printable ASCII cannot come from a query this API can describe.
  if (!/^[\x21-\x7e]*$/.test(trimmed)) throw new RangeError(`name "${name}" must be printable ASCII (use the A-label form of an IDN)`);
  const lower = trimmed.replace(/[A-Z]/g, (c) => c.toLowerCase());
  // Validated as given, before its one trailing dot (the root) is cut:
  // nameToWire cuts one more, so "a.." checked as "a." passed and was
  // explained as "a", a name no query can carry (an empty label).
  nameToWire(trimmed); // throws RangeError naming the bad label or length
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Parses "A", "aaaa", "TYPE65" or "28" into a qtype number; throws RangeError otherwise. */
function parseType(text: string): number {
  const t = text.trim().toUpperCase();
  if (Object.hasOwn(QTYPE, t)) return QTYPE[t as keyof typeof QTYPE];
  const m = /^(?:TYPE)?(\d{1,5})$/.exec(t);
  if (m !== null && Number(m[1]) <= 0xffff) return Number(m[1]);
  throw new RangeError(`type "${text}" is not a DNS type (A, AAAA, SOA, NS, ANY, … or TYPEnnn)`);
}

function typeName(qtype: number): string {
  return TYPE_NAME.get(qtype) ?? `TYPE${qtype}`;
}

function nodeName(view: SnapshotView, node: number): string {
  const nb = view.nodeBase(node);
  return readWireName(view.u8, view.u32[nb + L.NODE_NAME_OFF]).name;
}

function zoneName(view: SnapshotView, zone: number): string {
  return nodeName(view, view.u32[view.zoneBase(zone) + L.ZONE_NODE]);
}

function readU32(u8: Uint8Array, off: number): number {
  return ((u8[off] << 24) | (u8[off + 1] << 16) | (u8[off + 2] << 8) | u8[off + 3]) >>> 0;
}


/** Microseconds → milliseconds with three decimals. */
function ms(us: number): number {
  return Math.round(us) / 1000;
}

/** A chance `p` (0..1) to 4 decimals. */
function round(p: number): number {
  return roundChance(p, 1, 4);
}

/** A chance `p` (0..1) as a percentage to 1 decimal. */
function percent(p: number): string {
  return `${roundChance(p, 100, 1)}%`;
}

/**
 * `p` × `scale` to `decimals` decimals, except that a chance strictly
 * between 0 and 1 never shows as 0 or `scale` (never, always): weight 1
 * against 65 535 leads 1 answer in 65 536, so it shows 2 significant digits
 * of p (0.000015), or of 1 − p (0.999985).
 */
function roundChance(p: number, scale: number, decimals: number): number {
  const f = 10 ** decimals;
  const r = Math.round(p * scale * f) / f;
  if (r === 0 && p > 0) return Number((p * scale).toPrecision(2));
  if (r === scale && p < 1) return scale - Number(((1 - p) * scale).toPrecision(2));
  return r;
}
