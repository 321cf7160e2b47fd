// Main thread, cold path. GET /api/v1/overwatch/backends: the Go original's
// backend listing (one row per domain × server), kept so its tools keep
// working. Built from the same views as /domains and /health/servers in one
// pass each (O(servers)). Agent fields are empty: agents are not supported yet.

import type { FastifyInstance } from 'fastify';
import { normaliseDomainName } from '../config/domain-name.ts';
import type { HealthState, ServerView } from '../overwatch/views.ts';
import { badRequest, requireOverwatch, type RouteContext } from './context.ts';
import { generatedAt, HEALTH_STATES, obj, responses, type Schema } from './schemas.ts';
import { AUTHORITIES } from '../registry/registry.ts';

interface BackendsQuery {
  readonly service?: string;
  readonly region?: string;
  readonly status?: HealthState;
}

const nullable = (type: string, description: string): Schema => ({ type: [type, 'null'], description });

const backend = obj('One server of one domain (service).', {
  service: { type: 'string', description: 'Domain name.' },
  address: { type: 'string', description: 'Server IP address.' },
  port: { type: 'integer', description: 'Port.' },
  weight: { type: 'integer', description: 'Weight.' },
  region: { type: 'string', description: 'Region.' },
  agent_id: { type: 'string', description: 'Always "": the server comes from the config file, not from an agent.' },
  effective_status: { type: 'string', enum: HEALTH_STATES, description: 'What DNS uses for this domain (override applied).' },
  authority: { type: 'string', enum: AUTHORITIES, description: 'Who decided effective_status.' },
  validation_healthy: nullable('boolean', "The overwatch's health checks: true/false, or null before the first verdict or for type none."),
  validation_last_check: { type: ['string', 'null'], format: 'date-time', description: 'When the last check finished.' },
  validation_error: nullable('string', 'Why the last check failed.'),
  override_status: nullable('boolean', 'The override: true = forced healthy, false = forced down, null = none.'),
  override_reason: nullable('string', 'Why.'),
  override_by: nullable('string', 'Who (the override source).'),
  override_at: { type: ['string', 'null'], format: 'date-time', description: 'When it was set.' },
});

const backendsQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    service: { type: 'string', minLength: 1, maxLength: 256, description: 'Only this domain (any case, trailing dot allowed).' },
    region: { type: 'string', minLength: 1, maxLength: 255, description: 'Only this region.' },
    status: { type: 'string', enum: HEALTH_STATES, description: 'Only this effective status.' },
  },
};

/** Registers GET /api/v1/overwatch/backends. */
export function registerBackendsRoute(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Querystring: BackendsQuery }>(
    '/api/v1/overwatch/backends',
    {
      schema: {
        summary: 'Every server of every domain with its effective status (Go-compatible listing).',
        tags: ['domains'],
        querystring: backendsQuery,
        response: responses(
          {
            200: {
              description: 'One row per domain and server, in config order.',
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
      const { region, status } = request.query;
      let service: string | undefined;
      if (request.query.service !== undefined) {
        const n = normaliseDomainName(request.query.service);
        if ('error' in n) badRequest(`query parameter "service": ${n.error}`);
        service = n.name;
      }
      const checks = new Map<string, ServerView>();
      for (const s of ow.servers()) checks.set(`${s.region} ${s.address} ${s.port}`, s);
      const backends = [];
      for (const d of ow.domains()) {
        if (service !== undefined && d.name !== service) continue;
        for (const m of d.servers) {
          if (region !== undefined && m.region !== region) continue;
          if (status !== undefined && m.status !== status) continue;
          const check = checks.get(`${m.region} ${m.address} ${m.port}`);
          const o = m.override;
          backends.push({
            service: d.name,
            address: m.address,
            port: m.port,
            weight: m.weight,
            region: m.region,
            agent_id: '',
            effective_status: m.status,
            authority: m.authority,
            validation_healthy: check === undefined || check.check_type === 'none' || check.status === 'unknown' ? null : check.status === 'healthy',
            validation_last_check: check?.last_check ?? null,
            validation_error: check?.last_error ?? null,
            override_status: o === null ? null : o.healthy,
            override_reason: o === null ? null : o.reason,
            override_by: o === null ? null : o.source,
            override_at: o === null ? null : o.created_at,
          });
        }
      }
      return { backends, generated_at: new Date().toISOString() };
    },
  );
}
