// Main thread, cold path. GET /api/v1/overwatch/backends: the Go original's
// backend listing (one row per domain × server), kept so its tools keep
// working, with where each server came from (config, agent, API) and who
// decides its status (the registry's authority rule), plus the agents'
// backends DNS does not answer, with why. O(servers + agents' backends).

import type { FastifyInstance } from 'fastify';
import { normaliseDomainName } from '../config/domain-name.ts';
import type { HealthState } from '../overwatch/views.ts';
import { AUTHORITIES, type Authority, type ServerSource } from '../registry/registry.ts';
import { badRequest, checkDomainFilter, checkRegionFilter, requireOverwatch, type RouteContext } from './context.ts';
import { generatedAt, HEALTH_STATES, obj, responses, type Schema } from './schemas.ts';

interface BackendsQuery {
  readonly service?: string;
  readonly region?: string;
  readonly status?: HealthState;
  readonly source?: ServerSource;
  readonly agent_id?: string;
  readonly authority?: Authority;
}

const SOURCES = ['config', 'agent', 'api'] as const;
const nullable = (type: string, description: string): Schema => ({ type: [type, 'null'], description });

const backend = obj('One server of one domain (service).', {
  service: { type: 'string', description: 'Domain name (for an agent\'s backend: its service).' },
  address: { type: 'string', description: 'Server address (an agent\'s backend may report a host name, never answered).' },
  port: { type: 'integer', description: 'Port.' },
  weight: { type: 'integer', description: 'Weight.' },
  region: { type: 'string', description: 'Region.' },
  source: { type: 'string', enum: SOURCES, description: 'Where the server comes from: the config file, an agent, or the API.' },
  agent_id: { type: 'string', description: 'The reporting agent\'s id; "" for servers of the config.' },
  effective_status: { type: 'string', enum: HEALTH_STATES, description: 'What DNS uses for this domain (override applied); unknown when DNS does not answer it.' },
  authority: { type: 'string', enum: AUTHORITIES, description: 'Who decided effective_status (the registry\'s rule: override > health_check > stale > draining > agent).' },
  answered: { type: 'boolean', description: 'Whether DNS answers it for this service (see note when not).' },
  agent_healthy: nullable('boolean', 'The agent\'s own checks: true/false, or null (no verdict yet, or not an agent\'s backend).'),
  agent_last_seen: { type: ['string', 'null'], format: 'date-time', description: 'When its agent was last heard from.' },
  draining: { type: 'boolean', description: 'The agent drains it (a predictive signal).' },
  drain_reason: nullable('string', 'cpu_threshold_exceeded, memory_threshold_exceeded or error_rate_threshold_exceeded, or null.'),
  stale: { type: 'boolean', description: 'Its agent has not been heard from for overwatch.stale.threshold.' },
  validation_healthy: nullable('boolean', "The overwatch's own checks: true/false, or null before the first verdict, for type none, or when it does not check the server (an agent's backend without overwatch.validation)."),
  validation_last_check: { type: ['string', 'null'], format: 'date-time', description: 'When its last check finished.' },
  validation_error: nullable('string', 'Why its last check failed.'),
  override_status: nullable('boolean', 'The override: true = forced healthy, false = forced down, null = none.'),
  override_reason: nullable('string', 'Why.'),
  override_by: nullable('string', 'Who (the override source).'),
  override_at: { type: ['string', 'null'], format: 'date-time', description: 'When it was set.' },
  note: nullable('string', 'Why DNS does not answer it, or null.'),
});

const backendsQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    service: { type: 'string', minLength: 1, maxLength: 256, description: 'Only this domain (any case, trailing dot allowed); one neither the config nor an agent has is a 400.' },
    region: { type: 'string', minLength: 1, maxLength: 255, description: 'Only this region.' },
    status: { type: 'string', enum: HEALTH_STATES, description: 'Only this effective status.' },
    source: { type: 'string', enum: SOURCES, description: 'Only servers from this source.' },
    agent_id: { type: 'string', minLength: 1, maxLength: 128, description: 'Only this agent\'s backends.' },
    authority: { type: 'string', enum: AUTHORITIES, description: 'Only servers this authority decides.' },
  },
};

/** Registers GET /api/v1/overwatch/backends. */
export function registerBackendsRoute(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Querystring: BackendsQuery }>(
    '/api/v1/overwatch/backends',
    {
      schema: {
        summary: 'Every server of every domain with its source, authority and effective status (Go-compatible listing), and agents\' backends DNS does not answer.',
        tags: ['domains'],
        querystring: backendsQuery,
        response: responses(
          {
            200: {
              description: 'One row per domain and server, in config order, then agents\' backends that no domain answers.',
              type: 'object',
              additionalProperties: false,
              required: ['backends', 'generated_at'],
              properties: { backends: { type: 'array', items: backend }, generated_at: generatedAt },
            },
          },
          400,
        ),
      },
    },
    (request) => {
      const ow = requireOverwatch(ctx);
      const q = request.query;
      let service: string | undefined;
      if (q.service !== undefined) {
        const n = normaliseDomainName(q.service);
        if ('error' in n) badRequest(`query parameter "service": ${n.error}`);
        service = n.name;
      }
      if (q.region !== undefined) checkRegionFilter(ow, 'region', q.region);
      const rows = ow.backends();
      // An agent's backend of a service no domain has is listed too (answered: false), so its service is a valid filter.
      if (service !== undefined) checkDomainFilter(ow, 'service', service, { what: 'no agent reports that service', names: new Set(rows.map((b) => b.service)) });
      const backends = rows.filter((b) =>
        (service === undefined || b.service === service)
        && (q.region === undefined || b.region === q.region)
        && (q.status === undefined || b.effective_status === q.status)
        && (q.source === undefined || b.source === q.source)
        && (q.agent_id === undefined || b.agent_id === q.agent_id)
        && (q.authority === undefined || b.authority === q.authority));
      return { backends, generated_at: new Date().toISOString() };
    },
  );
}
