// Worker, hot path. Per-worker reusable state, overwritten by every packet.
// Every field is set in the constructor so the shape never changes (Fastify's
// lib/context.js does the same). Handling is synchronous from 'message' to
// send(), which is what makes sharing one instance safe: the per-packet fields
// below are valid from handleQuery's entry to its return.

import { ParsedQuery } from '../src/dns/parse.ts';
import type { GeoIpReader } from '../src/geo/lookup.ts';
import { ClientAddress } from '../src/routing/client.ts';
import { RouteState } from '../src/routing/select.ts';
import { MAX_ANSWERS_LIMIT } from '../src/snapshot/layout.ts';
import { SnapshotView } from '../src/snapshot/reader.ts';

const NO_BYTES = new Uint8Array(0);

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
  /** The GeoIP database reader every RouteState of this worker uses, or null. */
  #geo: GeoIpReader | null = null;

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
  /** ECS SCOPE PREFIX-LENGTH of the answer: 0 unless the answer depends on the client's network (geolocation). */
  ecsScope = 0;
  /** The answer's rcode and section counts, as the builder wrote them (additional without the OPT). */
  rcode = 0;
  an = 0;
  ns = 0;
  ar = 0;

  constructor(snapshot: SharedArrayBuffer, live: Int32Array, counters: Int32Array, counterBase: number) {
    this.view = new SnapshotView(snapshot);
    this.route = new RouteState(this.view, live);
    this.live = live;
    this.counters = counters;
    this.counterBase = counterBase;
  }

  /**
   * Switches to a new snapshot (and, when the server count outgrew them, new
   * live slots) between packets. Throws and keeps the old snapshot when the
   * new one does not attach.
   */
  attach(snapshot: SharedArrayBuffer, live: Int32Array): void {
    const view = new SnapshotView(snapshot);
    this.route = new RouteState(view, live);
    this.route.geo = this.#geo;
    this.view = view;
    this.live = live;
  }

  /** Switches to another GeoIP database reader (between packets). */
  setGeo(reader: GeoIpReader | null): void {
    this.#geo = reader;
    this.route.geo = reader;
  }
}
