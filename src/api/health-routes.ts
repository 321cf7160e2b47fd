// Main thread, cold path. Read-only views of what the overwatch believes:
// servers with their check state, region totals, domains as DNS sees them.
// Each handler is one pass over the overwatch's view (O(servers)).

import type { FastifyInstance } from 'fastify';
import { normaliseDomainName } from '../config/domain-name.ts';
import type { HealthState, ServerView } from '../overwatch/views.ts';
import { badRequest, checkDomainFilter, checkRegionFilter, requireOverwatch, type RouteContext } from './context.ts';
import { generatedAt, responses, serversQuery } from './schemas.ts';

interface ServersQuery {
  readonly domain?: string;
  readonly region?: string;
  readonly status?: HealthState;
}

/** Registers GET /api/v1/health/servers, /api/v1/health/regions and /api/v1/domains. */
export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Querystring: ServersQuery }>(
    '/api/v1/health/servers',
    {
      schema: {
        summary: 'Every configured server and its health-check state; optional exact filters.',
        tags: ['health'],
        querystring: serversQuery,
        response: responses(
          {
            200: {
              description: 'The servers, in config order (region by region).',
              type: 'object',
              additionalProperties: false,
              required: ['servers', 'generated_at'],
              properties: { servers: { type: 'array', items: { $ref: 'Server#' } }, generated_at: generatedAt },
            },
          },
          400,
        ),
      },
    },
    (request) => {
      const ow = requireOverwatch(ctx);
      const { region, status } = request.query;
      let domain: string | undefined;
      if (request.query.domain !== undefined) {
        const n = normaliseDomainName(request.query.domain);
        if ('error' in n) badRequest(`query parameter "domain": ${n.error}`);
        domain = n.name;
        checkDomainFilter(ow, 'domain', domain);
      }
      if (region !== undefined) checkRegionFilter(ow, 'region', region);
      const all = ow.servers();
      if (domain === undefined && region === undefined && status === undefined) return { servers: all, generated_at: new Date().toISOString() };
      const servers: ServerView[] = [];
      for (let i = 0; i < all.length; i++) {
        const s = all[i];
        if (region !== undefined && s.region !== region) continue;
        if (status !== undefined && s.status !== status) continue;
        if (domain !== undefined && !s.domains.includes(domain)) continue;
        servers.push(s);
      }
      return { servers, generated_at: new Date().toISOString() };
    },
  );

  app.get(
    '/api/v1/health/regions',
    {
      schema: {
        summary: 'Health totals per region (from the health checks, overrides not applied).',
        tags: ['health'],
        response: responses({
          200: {
            description: 'One entry per configured region.',
            type: 'object',
            additionalProperties: false,
            required: ['regions', 'generated_at'],
            properties: { regions: { type: 'array', items: { $ref: 'Region#' } }, generated_at: generatedAt },
          },
        }),
      },
    },
    () => ({ regions: requireOverwatch(ctx).regions(), generated_at: new Date().toISOString() }),
  );

  app.get(
    '/api/v1/domains',
    {
      schema: {
        summary: 'Every served domain, its routing and its servers with the status DNS uses (overrides applied).',
        tags: ['domains'],
        response: responses({
          200: {
            description: 'One entry per configured domain, in config order.',
            type: 'object',
            additionalProperties: false,
            required: ['domains', 'generated_at'],
            properties: { domains: { type: 'array', items: { $ref: 'Domain#' } }, generated_at: generatedAt },
          },
        }),
      },
    },
    () => ({ domains: requireOverwatch(ctx).domains(), generated_at: new Date().toISOString() }),
  );
}
