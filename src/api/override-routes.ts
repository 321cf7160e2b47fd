// Main thread, cold path. Operator overrides: force servers healthy or
// unhealthy, whatever their checks say, in one of three scopes, optionally
// until an end time:
//
//   /api/v1/overrides/{service}/{address}   one server address in one domain
//   /api/v1/overrides/server/{address}      one server address in every domain that answers it
//   /api/v1/overrides/region/{region}       every server of a region, in every domain
//
// Where several cover one domain's server, the most specific decides
// (src/registry/overrides.ts). The overwatch persists a change first and then
// applies it to the live slots, so DNS follows it on the next query. One info
// log line per change says what (scope and its service, address or region),
// who, why, until when and from where.

import type { FastifyInstance } from 'fastify';
import { parseDuration } from '../config/duration.ts';
import { parseIp } from '../config/ip.ts';
import { normaliseDomainName } from '../config/domain-name.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { parseCalendarTime } from '../lib/time.ts';
import { describeTarget, type OverrideTarget } from '../registry/overrides.ts';
import { badRequest, clientOf, requireOverwatch, type RouteContext } from './context.ts';
import { overrideBody, overrideParams, regionOverrideParams, responses, serverOverrideParams, type Schema } from './schemas.ts';

interface OverrideBody {
  readonly healthy: boolean;
  readonly reason?: string;
  readonly source: string;
  readonly expires_at?: string;
  readonly expires_in?: string;
}

/** The longest an override may last: ten years, well inside what a Date holds. */
const MAX_OVERRIDE_MS = 10 * 365 * 24 * 3600 * 1000;

/** RFC 3339 date-time with a time zone (Z or ±hh:mm): a time without one would depend on the server's zone. Groups: year, month, day, hour. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** One scope's routes: its path, how its path parameters name a target, and the words of its schema summaries. */
interface ScopeRoutes<P> {
  readonly path: string;
  readonly params: Schema;
  readonly what: string;
  /** The target of the path; `cnames()` gives the CNAME servers' targets, the names that may stand for an address (asked only when the path holds no IP literal). */
  readonly target: (params: P, cnames: () => ReadonlySet<string>) => OverrideTarget;
}

const SCOPES: readonly ScopeRoutes<Record<string, string>>[] = [
  {
    path: '/api/v1/overrides/:service/:address',
    params: overrideParams,
    what: 'one server address in one domain',
    target: (p, cnames) => ({ scope: 'domain', service: domainParam(p.service), address: addressParam(p.address, cnames) }),
  },
  {
    path: '/api/v1/overrides/server/:address',
    params: serverOverrideParams,
    what: 'one server address in every domain that answers it',
    target: (p, cnames) => ({ scope: 'server', address: addressParam(p.address, cnames) }),
  },
  {
    path: '/api/v1/overrides/region/:region',
    params: regionOverrideParams,
    what: 'every server of one region, in every domain',
    target: (p) => ({ scope: 'region', region: p.region }),
  },
];

/** Registers GET /api/v1/overrides and GET, PUT, DELETE of each scope's path. */
export function registerOverrideRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/api/v1/overrides',
    {
      schema: {
        summary: 'Every override in force, active or not.',
        tags: ['overrides'],
        response: responses({
          200: {
            description: 'Every override in force, by scope (domain, server, region), then by what it covers.',
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

  for (const scope of SCOPES) registerScope(app, ctx, scope);
}

function registerScope(app: FastifyInstance, ctx: RouteContext, scope: ScopeRoutes<Record<string, string>>): void {
  app.get<{ Params: Record<string, string> }>(
    scope.path,
    {
      schema: {
        summary: `The override of ${scope.what}; 404 when there is none.`,
        tags: ['overrides'],
        params: scope.params,
        response: responses({ 200: { $ref: 'Override#', description: 'The override.' } }, 400, 404),
      },
    },
    (request) => {
      const ow = requireOverwatch(ctx);
      const target = scope.target(request.params, () => cnameTargets(ctx));
      const found = ow.overrideOf(target);
      if (found === null) throw noOverride(target);
      return found;
    },
  );

  app.put<{ Params: Record<string, string>; Body: OverrideBody }>(
    scope.path,
    {
      schema: {
        summary: `Sets (or replaces) the override of ${scope.what}. Persisted, then applied to DNS at once.`,
        description:
          'An override outranks the health checks: healthy=true answers even when the checks fail, healthy=false never answers. ' +
          'Where overrides of several scopes cover one server of one domain, the most specific decides: domain, then server, then region. ' +
          'With expires_at or expires_in the health checks decide again at that time.',
        tags: ['overrides'],
        security: [{ bearer: [] }],
        params: scope.params,
        body: overrideBody,
        response: responses({ 200: { $ref: 'Override#', description: 'The override as stored.' } }, 400, 401, 404),
      },
    },
    async (request) => {
      const ow = requireOverwatch(ctx);
      const target = scope.target(request.params, () => cnameTargets(ctx));
      const body = request.body;
      const reason = body.reason ?? '';
      const expiresAtMs = expiryOf(body, Date.now());
      const view = await ow.setOverride(target, { healthy: body.healthy, reason, source: body.source, expiresAtMs });
      ctx.log.info(
        { ...target, healthy: body.healthy, source: body.source, reason, expiresAt: view.expires_at, client: clientOf(ctx, request) },
        'override set',
      );
      return view;
    },
  );

  app.delete<{ Params: Record<string, string> }>(
    scope.path,
    {
      schema: {
        summary: `Removes the override of ${scope.what}; the next override down or the health checks decide again. 404 when there is none.`,
        tags: ['overrides'],
        security: [{ bearer: [] }],
        params: scope.params,
        response: {
          204: { type: 'null', description: 'Removed.' },
          ...responses({}, 400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const ow = requireOverwatch(ctx);
      const target = scope.target(request.params, () => cnameTargets(ctx));
      const removed = await ow.clearOverride(target);
      if (removed === null) throw noOverride(target);
      ctx.log.info(
        { ...target, healthy: removed.healthy, source: removed.source, reason: removed.reason, client: clientOf(ctx, request) },
        'override cleared',
      );
      return reply.code(204).send();
    },
  );
}

/** Normalises the path's domain (any case, trailing dot); 400 when malformed. */
function domainParam(text: string): string {
  const name = normaliseDomainName(text);
  if ('error' in name) badRequest(`path parameter "service": ${name.error}`);
  return name.name;
}

/** The targets of the CNAME servers of the config now applied (regions[].servers[].cname). */
function cnameTargets(ctx: RouteContext): ReadonlySet<string> {
  const out = new Set<string>();
  for (const region of ctx.deps.overwatch()?.config.regions ?? []) for (const server of region.servers) if (server.cname !== null) out.add(server.cname);
  return out;
}

/**
 * Normalises the path's IP literal (IPv6 in any text form), or the target
 * name of a CNAME server in `cnames` (a CNAME pool's member is named by its
 * target); 400 when it is neither.
 */
function addressParam(text: string, cnames: () => ReadonlySet<string>): string {
  const ip = parseIp(text);
  if (!('error' in ip)) return ip.address;
  const targets = cnames();
  if (targets.size > 0) {
    const name = normaliseDomainName(text);
    if (!('error' in name) && targets.has(name.name)) return name.name;
  }
  return badRequest(`path parameter "address": ${ip.error}${targets.size > 0 ? ', nor the target of a CNAME server (regions[].servers[].cname)' : ''}`);
}

/**
 * Reads the end of an override from the body: expires_at (RFC 3339 with a
 * zone) or expires_in (a duration from now, "2h", "90m"), not both; null when
 * neither. 400 for a malformed value, one in the past, or one more than ten
 * years ahead.
 */
export function expiryOf(body: { readonly expires_at?: string; readonly expires_in?: string }, nowMs: number): number | null {
  if (body.expires_at !== undefined && body.expires_in !== undefined) {
    badRequest('body fields "expires_at" and "expires_in": give one of them, not both');
  }
  let at: number;
  if (body.expires_at !== undefined) {
    const text = body.expires_at;
    at = parseCalendarTime(text, RFC3339);
    if (Number.isNaN(at)) badRequest(`body field "expires_at": ${JSON.stringify(text)} is not an RFC 3339 time, expected e.g. "2026-11-26T18:00:00Z" or "2026-11-26T19:00:00+01:00"`);
    if (at <= nowMs) badRequest(`body field "expires_at": ${text} has passed (the server's time is ${new Date(nowMs).toISOString()}), expected a time in the future`);
  } else if (body.expires_in !== undefined) {
    const d = parseDuration(body.expires_in);
    if ('error' in d) badRequest(`body field "expires_in": ${d.error}`);
    if (d.ms <= 0) badRequest('body field "expires_in": must be longer than 0, expected e.g. "2h" or "90m"');
    at = nowMs + d.ms;
  } else {
    return null;
  }
  if (at - nowMs > MAX_OVERRIDE_MS) badRequest(`body field "${body.expires_at !== undefined ? 'expires_at' : 'expires_in'}": more than ten years ahead; leave the end out for an override that lasts until it is cleared`);
  return at;
}

function noOverride(target: OverrideTarget): OpenGslbError {
  return new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no override of ${describeTarget(target)}; GET /api/v1/overrides lists them`);
}

