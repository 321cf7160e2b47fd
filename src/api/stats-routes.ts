// Main thread, cold path. GET /api/v1/stats/queries: the reply rate by
// response code over the last minutes, for the dashboard's chart. The API
// samples the workers' counters on a timer (src/metrics/query-rates.ts); this
// route only copies the ring out. /metrics has the same numbers as counters
// for Prometheus, but it may be off, listens on another port and has no
// allowlist, so the page reads this route instead.

import type { FastifyInstance } from 'fastify';
import type { QueryRateHistory } from '../metrics/query-rates.ts';
import type { RouteContext } from './context.ts';
import { generatedAt, responses, type Schema } from './schemas.ts';

const rate = (description: string): Schema => ({ type: 'number', minimum: 0, description });

const sample: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['at', 'seconds', 'queries_per_second', 'by_rcode'],
  properties: {
    at: { type: 'string', format: 'date-time', description: 'When the interval ended (RFC 3339, UTC).' },
    seconds: rate('Length of the interval in seconds.'),
    queries_per_second: rate('Replies per second over the interval, every rcode.'),
    by_rcode: {
      type: 'object',
      description: 'Replies per second by response code (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …); only codes seen in the interval.',
      additionalProperties: { type: 'number', minimum: 0 },
    },
  },
};

/** Registers GET /api/v1/stats/queries over `history`, sampled every `intervalMs` by the API. */
export function registerStatsRoutes(app: FastifyInstance, _ctx: RouteContext, history: QueryRateHistory, intervalMs: number, capacity: number): void {
  app.get(
    '/api/v1/stats/queries',
    {
      schema: {
        summary: 'Replies per second by response code over the last minutes, one sample per interval.',
        tags: ['stats'],
        response: responses({
          200: {
            description: 'The samples, oldest first; empty until two intervals have passed since the overwatch started.',
            type: 'object',
            additionalProperties: false,
            required: ['interval_seconds', 'window_seconds', 'samples', 'generated_at'],
            properties: {
              interval_seconds: rate('Seconds between samples.'),
              window_seconds: rate('Seconds of history kept (interval × samples kept).'),
              samples: { type: 'array', items: sample },
              generated_at: generatedAt,
            },
          },
        }),
      },
    },
    () => {
      const samples = history.samples().map((s) => ({ at: new Date(s.atMs).toISOString(), seconds: s.seconds, queries_per_second: s.total, by_rcode: s.byRcode }));
      return { interval_seconds: intervalMs / 1000, window_seconds: (intervalMs * capacity) / 1000, samples, generated_at: new Date().toISOString() };
    },
  );
}
