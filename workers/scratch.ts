// Worker, hot path. Per-worker reusable state, overwritten by every packet.
// Every field is set in the constructor so the shape never changes (Fastify's
// lib/context.js does the same). Handling is synchronous from 'message' to
// send(), which is what makes sharing one instance safe.

import { ParsedQuery } from '../src/dns/parse.ts';
import { MAX_ANSWERS_LIMIT } from '../src/snapshot/layout.ts';
import { SnapshotView } from '../src/snapshot/reader.ts';
import { RouteState } from '../src/routing/select.ts';

export class WorkerScratch {
  readonly query = new ParsedQuery();
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
    this.view = view;
    this.live = live;
  }
}
