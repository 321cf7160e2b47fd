// Main thread, cold path. Operator overrides: force one server address of one
// domain healthy or unhealthy, whatever its checks say. The overwatch persists
// the change first and then applies it to the live slots, so DNS follows it on
// the next query. One info log line per change says who, why and from where.

import type { FastifyInstance } from 'fastify';
import { parseIp } from '../config/ip.ts';
import { normaliseDomainName } from '../config/domain-name.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { badRequest, clientOf, requireOverwatch, type RouteContext } from './context.ts';
import { overrideBody, overrideParams, responses } from './schemas.ts';

interface OverrideParams {
  readonly service: string;
  readonly address: string;
}

interface OverrideBody {
  readonly healthy: boolean;
  readonly reason?: string;
  readonly source: string;
}

const PATH = '/api/v1/overrides/:service/:address';

/** Registers GET /api/v1/overrides and GET, PUT, DELETE /api/v1/overrides/{service}/{address}. */
export function registerOverrideRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/api/v1/overrides',
    {
      schema: {
        summary: 'Every override, active or not.',
        tags: ['overrides'],
        response: responses({
          200: {
            description: 'Every override, sorted by domain and address.',
            type: 'object',
            additionalProperties: false,
            required: ['overrides'],
            properties: { overrides: { type: 'array', items: { $ref: 'Override#' } } },
          },
        }),
      },
    },
    () => ({ overrides: requireOverwatch(ctx).overrides() }),
  );

  app.get<{ Params: OverrideParams }>(
    PATH,
    {
      schema: {
        summary: 'One override; 404 when the address has none in that domain.',
        tags: ['overrides'],
        params: overrideParams,
        response: responses({ 200: { $ref: 'Override#', description: 'The override.' } }, 400, 404),
      },
    },
    (request) => {
      const ow = requireOverwatch(ctx);
      const { service, address } = target(request.params);
      const found = ow.overrideOf(service, address);
      if (found === null) throw noOverride(service, address);
      return found;
    },
  );

  app.put<{ Params: OverrideParams; Body: OverrideBody }>(
    PATH,
    {
      schema: {
        summary: 'Sets (or replaces) the override of one server address in one domain. Persisted, then applied to DNS at once.',
        description: 'An override outranks the health checks: healthy=true answers the address even when its checks fail, healthy=false never answers it.',
        tags: ['overrides'],
        security: [{ bearer: [] }],
        params: overrideParams,
        body: overrideBody,
        response: responses({ 200: { $ref: 'Override#', description: 'The override as stored.' } }, 400, 401, 404),
      },
    },
    async (request) => {
      const ow = requireOverwatch(ctx);
      const { service, address } = target(request.params);
      const body = request.body;
      const reason = body.reason ?? '';
      const view = await ow.setOverride(service, address, { healthy: body.healthy, reason, source: body.source });
      ctx.log.info({ service, address, healthy: body.healthy, source: body.source, reason, client: clientOf(ctx, request) }, 'override set');
      return view;
    },
  );

  app.delete<{ Params: OverrideParams }>(
    PATH,
    {
      schema: {
        summary: 'Removes the override; the health checks decide again. 404 when there is none.',
        tags: ['overrides'],
        security: [{ bearer: [] }],
        params: overrideParams,
        response: {
          204: { type: 'null', description: 'Removed.' },
          ...responses({}, 400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const ow = requireOverwatch(ctx);
      const { service, address } = target(request.params);
      const removed = await ow.clearOverride(service, address);
      if (removed === null) throw noOverride(service, address);
      ctx.log.info(
        { service, address, healthy: removed.healthy, source: removed.source, reason: removed.reason, client: clientOf(ctx, request) },
        'override cleared',
      );
      return reply.code(204).send();
    },
  );
}

/** Normalises the path's domain (any case, trailing dot) and IP literal (IPv6 in any text form); 400 when either is malformed. */
function target(params: OverrideParams): OverrideParams {
  const name = normaliseDomainName(params.service);
  if ('error' in name) badRequest(`path parameter "service": ${name.error}`);
  const ip = parseIp(params.address);
  if ('error' in ip) badRequest(`path parameter "address": ${ip.error}`);
  return { service: name.name, address: ip.address };
}

function noOverride(service: string, address: string): OpenGslbError {
  return new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no override of ${address} in ${service}; GET /api/v1/overrides lists them`);
}
