// Worker, hot path. Per-worker reusable state, overwritten by every packet.
// Every field is set in the constructor so the shape never changes (Fastify's
// lib/context.js does the same). Handling is synchronous from 'message' to
// send(), which is what makes sharing one instance safe: the per-packet fields
// below are valid from handleQuery's entry to its return. The signature cache
// lives here too, across snapshots.

import { MAX_NAME_LEN } from '../src/dns/constants.ts';
import { CookieScratch, REPLY_COOKIE_LEN, type CookieKeys } from '../src/dns/cookie.ts';
import { ParsedQuery } from '../src/dns/parse.ts';
import type { RateLimiter } from '../src/dns/rrl.ts';
import { Rrset, SignatureCache } from '../src/dnssec/sign.ts';
import type { GeoIpReader } from '../src/geo/lookup.ts';
import { bump, COUNTER } from '../src/metrics/counters-layout.ts';
import { ClientAddress } from '../src/routing/client.ts';
import { RouteState } from '../src/routing/select.ts';
import { MAX_ANSWERS_LIMIT } from '../src/snapshot/layout.ts';
import { SnapshotView } from '../src/snapshot/reader.ts';
import type { ExceptionSite, WorkerDnssec, ZoneSigners } from './messages.ts';

const NO_BYTES = new Uint8Array(0);

/**
 * Signatures each worker keeps. An entry is the RRset's records (copied) and
 * one RRSIG, about 400 bytes for a 3-address set with the cache's per-slot
 * arrays (src/dnssec/sign.ts): 16 384 entries take under 7 MB and hold every
 * set of a weighted max_answers: 2 domain over 100 servers with room for
 * negative answers.
 */
export const SIGNATURE_CACHE_ENTRIES = 16_384;

/**
 * The signature cache's size for `dnssec`: SIGNATURE_CACHE_ENTRIES RRsets.
 * An entry is one RRset's signature by one key, and during an algorithm
 * rollover every RRset has one per algorithm (docs/dnssec.md), so the cache
 * holds SIGNATURE_CACHE_ENTRIES times the most data signers any zone has:
 * the same number of RRsets before, during and after the rollover (the
 * pre-signer's 12 000 sets took 24 000 entries of a 16 384-entry cache, and
 * pushed each other out).
 */
export function signatureCacheEntries(dnssec: WorkerDnssec): number {
  let signers = 1;
  for (const z of dnssec.zones) if (z !== null && z.data.length > signers) signers = z.data.length;
  return SIGNATURE_CACHE_ENTRIES * signers;
}

/** No zone signed (benches and tests that build a scratch by hand). */
export const NO_DNSSEC: WorkerDnssec = { zones: [], validitySec: 7 * 86400 };

export class WorkerScratch {
  readonly query = new ParsedQuery();
  /** Who asked: the transport sets the source before each handleQuery; routing reads it (and the query's ECS). */
  readonly client = new ClientAddress(this.query);
  /** Lower-cased question name in wire form. */
  readonly lower = new Uint8Array(256);
  /** Member indexes chosen for the current answer. */
  readonly picks = new Int32Array(MAX_ANSWERS_LIMIT);
  view: SnapshotView;
  route: RouteState;
  live: Int32Array;
  readonly counters: Int32Array;
  /** First word of this worker's counter stride. */
  readonly counterBase: number;
  /**
   * Routing decisions by REC_STAT_ID, this worker's own shared buffer
   * (src/metrics/counters-layout.ts createDecisionCounters). Empty until
   * dns-worker.ts attaches one: ids past the end are not counted.
   */
  decisions: Int32Array = new Int32Array(0);
  /** Told of every exception caught at the per-packet boundary (dns-worker.ts posts some of them to the main thread's log). */
  onException: (err: unknown, where: ExceptionSite) => void = () => {};
  /** Signers per zone index of the attached snapshot; null (or past the end) = the zone is not signed. */
  signers: readonly (ZoneSigners | null)[];
  /** Signatures by canonical RRset (src/dnssec/sign.ts); survives snapshot swaps, since a set signed once stays signed. */
  signatures: SignatureCache;
  /** The RRset being signed, refilled per RRset from snapshot bytes. */
  readonly rrset = new Rrset();
  /** The compact-denial NSEC rdata of the current negative answer: successor name (≤ 255) and bitmap (≤ 34). */
  readonly nsec = new Uint8Array(MAX_NAME_LEN + 64);
  /**
   * Unix seconds for the signature cache, set by tick() (dns-worker.ts calls
   * it every second). Reading Date.now() per signed answer boxed a number:
   * 16 bytes per query in bench/handle-query.bench.ts; a second of staleness
   * is nothing against an inception an hour back and a 75 % refresh point.
   */
  nowSec = Math.floor(Date.now() / 1000);
  /** The GeoIP database reader every RouteState of this worker uses, or null. */
  #geo: GeoIpReader | null = null;
  /** Response rate limiting over the table shared by all workers (dns.rrl), or null when off. */
  rrl: RateLimiter | null = null;
  /** DNS cookies (dns.cookies): the keys to check and make server cookies with, or null when cookies are off. */
  cookieKeys: CookieKeys | null = null;
  /** dns.cookies.require: UDP queries without a valid server cookie get BADCOOKIE. */
  cookieRequire = false;
  readonly cookieScratch = new CookieScratch();
  /** Our COOKIE option for the current reply (client cookie + fresh server cookie). */
  readonly cookieOut = new Uint8Array(REPLY_COOKIE_LEN);

  // ---- Per packet (set by handleQuery and the answer builders).
  /** The request and its length. */
  req: Uint8Array = NO_BYTES;
  /** Where the response is written (≥ 65 535 bytes, owned by the transport). */
  out: Uint8Array = NO_BYTES;
  /** Over TCP the answer is complete; over UDP it is cut to the client's size. */
  tcp = false;
  /** The zone the answer comes from (zone index), -1 before the lookup. */
  zone = -1;
  /** The record whose members the answer section holds, -1 for none. */
  answered = -1;
  /**
   * hashWire() of the question name (ctx.lower) as an int32 (`| 0`) when the
   * transport computed it already (the batched UDP path's prefetch), else -1:
   * the lookup then hashes the name itself. handleQuery sets it on every call.
   */
  qnameHash = -1;
  /** Where warmAddresses (./handle-query.ts) drops the values it loads, so the loads are kept; never read. */
  warm = 0;
  /** ECS SCOPE PREFIX-LENGTH of the answer: 0 unless the answer depends on the client's network (geolocation). */
  ecsScope = 0;
  /**
   * The idle timeout of the TCP connection the query came on, in units of 100
   * ms (RFC 7828's TIMEOUT), set by the TCP transport before each query;
   * replies to a query with an edns-tcp-keepalive option carry it.
   */
  tcpKeepalive = 0;
  /** The COOKIE option every reply to this query carries (cookieOut), or null: no cookie asked for, or cookies off. */
  replyCookie: Uint8Array | null = null;
  /** The query carried a valid server cookie of ours: its source address is proven, so it is never rate limited. */
  cookieValid = false;
  /** The answer is a denial that the name does not exist (NXDOMAIN, or NXNAME in a compact denial): rate limited per zone. */
  nxdomain = false;
  /**
   * Where the delegation's name starts in the question name (bytes into it),
   * set by referral() (./zone-answer.ts) and read by rate limiting only for
   * a referral of this packet; not reset per packet, so other answers pay nothing.
   */
  cutOff = 0;
  /**
   * Where the answer's droppable tail starts in the output (the RRSIGs of
   * additional-section glue, RFC 4035 §3.1.1), -1 for none: set by nsAnswer
   * (./answer.ts) just before seal(), which reads it and puts -1 back, so
   * other answers pay one load.
   */
  optionalFrom = -1;
  /** The answer's rcode and section counts, as the builder wrote them (additional without the OPT). */
  rcode = 0;
  an = 0;
  ns = 0;
  ar = 0;

  constructor(snapshot: SharedArrayBuffer, live: Int32Array, counters: Int32Array, counterBase: number, dnssec: WorkerDnssec = NO_DNSSEC) {
    this.view = new SnapshotView(snapshot);
    this.route = new RouteState(this.view, live);
    this.live = live;
    this.counters = counters;
    this.counterBase = counterBase;
    this.signers = dnssec.zones;
    this.signatures = new SignatureCache({ capacity: signatureCacheEntries(dnssec), validitySec: dnssec.validitySec });
  }

  /**
   * A bug caught at the per-packet boundary (the query is answered SERVFAIL,
   * or only a cache warm-up is lost): counted as
   * opengslb_dns_worker_exceptions_total and reported to onException.
   */
  caught(err: unknown, where: ExceptionSite): void {
    bump(this.counters, this.counterBase + COUNTER.EXCEPTIONS);
    this.onException(err, where);
  }

  /** Reads the clock into nowSec. */
  tick(): void {
    this.nowSec = Math.floor(Date.now() / 1000);
  }

  /**
   * Switches to a new snapshot (and, when the server count outgrew them, new
   * live slots) between packets. Throws and keeps the old snapshot when the
   * new one does not attach.
   */
  attach(snapshot: SharedArrayBuffer, live: Int32Array, dnssec: WorkerDnssec = NO_DNSSEC): void {
    const view = new SnapshotView(snapshot);
    this.route = new RouteState(view, live);
    this.route.geo = this.#geo;
    this.view = view;
    this.live = live;
    this.signers = dnssec.zones;
    // A new signature_validity applies to signatures made from now on; the old ones stay good until they are refreshed.
    // A new number of signers per RRset (an algorithm rollover starts or ends) resizes the cache to hold as many RRsets.
    const capacity = signatureCacheEntries(dnssec);
    if (dnssec.validitySec !== this.signatures.validitySec || capacity !== this.signatures.capacity) {
      this.signatures = new SignatureCache({ capacity, validitySec: dnssec.validitySec });
    }
  }

  /** Switches to another GeoIP database reader (between packets). */
  setGeo(reader: GeoIpReader | null): void {
    this.#geo = reader;
    this.route.geo = reader;
  }
}
