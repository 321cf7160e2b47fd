// Main thread, cold path. What every admin API route module gets: the
// dependencies, the API's logger, and the overwatch (or the 503 while it starts).

import type { FastifyRequest } from 'fastify';
import type { ApiConfig } from '../config/types.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { expectedRegion, shortList } from '../lib/region-names.ts';
import type { Logger } from '../log/logger.ts';
import type { Overwatch } from '../overwatch/overwatch.ts';
import type { ConfigReloader } from '../overwatch/reload.ts';
import { findClientAddress } from './access.ts';

/**
 * The part of the Overwatch the API reads and writes. Overwatch satisfies it;
 * naming the methods here keeps the API off everything else (snapshot internals).
 */
export type ApiOverwatch = Pick<
  Overwatch,
  | 'servers' | 'regions' | 'domains' | 'overrides' | 'overrideOf' | 'setOverride' | 'clearOverride' | 'explain'
  | 'geoTest' | 'geoMappings' | 'setGeoMapping' | 'deleteGeoMapping' | 'generation' | 'config'
  | 'dnssecStatus' | 'dnssecDs' | 'rolloverStatus' | 'rolloverStart' | 'rolloverFinish' | 'keySyncAnswer'
  | 'backends' | 'agents' | 'counters' | 'stopping'
>;

/** The part of the ConfigReloader the API uses: POST /api/v1/reload runs request(), GET /api/v1/status reads status(). */
export type ApiReloader = Pick<ConfigReloader, 'request' | 'status'>;

/** The dependencies startApi() takes. */
export interface ApiDeps {
  /** Current config's api section; read on every request so a reload's allowlist/token changes apply at once. */
  apiConfig(): ApiConfig;
  /** null while the overwatch is still starting (first health round not finished, DNS not listening). */
  overwatch(): ApiOverwatch | null;
  /**
   * The config reloader SIGHUP uses, once the overwatch runs (null before);
   * absent when the overwatch was not started from a file (tests), and then
   * the reload route answers 503.
   */
  reloader?(): ApiReloader | null;
  /** The process logger; the API logs through a child with { component: 'api' }. */
  logger: Logger;
  /** The OpenGSLB version, as /api/v1/version reports it. */
  version: string;
  /** How often GET /api/v1/stats/queries samples the reply counters, in ms; default 5000 (tests pass less). */
  queryRateIntervalMs?: number;
}

/** Shared by the route modules. */
export interface RouteContext {
  readonly deps: ApiDeps;
  readonly log: Logger;
}

export const STARTING_MESSAGE = 'starting: the first health round has not finished';
/** What /api/v1/ready says once the overwatch has begun to stop (SIGTERM): probes take it out of rotation while DNS drains. */
export const STOPPING_MESSAGE = 'stopping: this overwatch is shutting down';

/** Returns the overwatch, or throws the 503 that says it is still starting. */
export function requireOverwatch(ctx: RouteContext): ApiOverwatch {
  const ow = ctx.deps.overwatch();
  if (ow === null) throw new OpenGslbError('OPENGSLB_ERR_API_STARTING', STARTING_MESSAGE);
  return ow;
}

/** Throws the 400 for a bad path or query parameter whose check is not expressible in the schema. */
export function badRequest(message: string): never {
  throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', message);
}

/**
 * Throws the 400 for a region filter (query parameter `param`) naming no
 * configured region: matching nothing, it would answer an empty list that
 * reads as "no servers there" (the usual cause, "EU" for "eu", is named).
 */
export function checkRegionFilter(ow: ApiOverwatch, param: string, region: string): void {
  const names = ow.config.regions.map((r) => r.name);
  if (!names.includes(region)) badRequest(`query parameter "${param}": no region ${JSON.stringify(region)} is configured; ${expectedRegion(region, names)}`);
}

/**
 * Throws the 400 for a domain filter (query parameter `param`, already
 * normalised) naming no configured domain nor any of `others` (services the
 * route also lists, such as agents' backends no domain answers): like an
 * unknown region, it would answer an empty list that reads as "no servers".
 */
export function checkDomainFilter(ow: ApiOverwatch, param: string, name: string, others?: { readonly what: string; readonly names: ReadonlySet<string> }): void {
  const domains = ow.config.domains;
  for (let i = 0; i < domains.length; i++) if (domains[i].name === name) return;
  if (others?.names.has(name) === true) return;
  const also = others === undefined ? '' : `, and ${others.what}`;
  badRequest(`query parameter "${param}": no domain ${JSON.stringify(name)} is configured${also}; expected one of: ${shortList(domains.map((d) => d.name)) || '(none)'}`);
}

/** The client address of a request, for log lines (the allowlist hook has already accepted it). */
export function clientOf(ctx: RouteContext, request: FastifyRequest): string {
  const c = findClientAddress(request.socket.remoteAddress, request.headers, ctx.deps.apiConfig().trustProxyHeaders);
  return 'error' in c ? (request.socket.remoteAddress ?? 'unknown') : c.address;
}
