// Main thread, cold path (compiled once at startup). JSON Schemas of every
// admin API request and response, mirroring src/overwatch/views.ts. Fastify
// compiles validators and serialisers from them, and @fastify/swagger turns
// them into the OpenAPI document, so they must describe every field.

import { AUTHORITIES } from '../registry/registry.ts';

/** A JSON Schema object as Fastify and @fastify/swagger take it. */
export type Schema = Record<string, unknown>;

/**
 * What free text (an override's source and reason, a geo mapping's source and
 * comment, a revocation's reason) may not hold: C0 and C1 control characters
 * and DEL (a newline forges a log line or a CLI table row, ESC starts a
 * terminal escape sequence), the line and paragraph separators, and the
 * bidirectional controls (they reorder the text around them on screen).
 * The text goes to log lines, the dashboard and `opengslb-cli`'s tables.
 */
export const TEXT_FORBIDDEN = '\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069';
/** Free text: printable characters only (see TEXT_FORBIDDEN); empty allowed. */
export const TEXT_PATTERN = `^[^${TEXT_FORBIDDEN}]*$`;
/** Free text that must say something: printable characters only, at least one that is not a space. */
export const NAME_TEXT_PATTERN = `^[^${TEXT_FORBIDDEN}]*[^${TEXT_FORBIDDEN}\\s][^${TEXT_FORBIDDEN}]*$`;

/** Builds a string property with its description. */
export const str = (description: string): Schema => ({ type: 'string', description });
const int = (description: string): Schema => ({ type: 'integer', description });
const bool = (description: string): Schema => ({ type: 'boolean', description });
const time = (description: string): Schema => ({ type: 'string', format: 'date-time', description });
const timeOrNull = (description: string): Schema => ({ type: ['string', 'null'], format: 'date-time', description });

/** Builds an object schema whose every property is required (unless listed in `optional`) and no other is allowed. */
export function obj(description: string, properties: Record<string, Schema>, optional: readonly string[] = []): Schema {
  return {
    type: 'object',
    description,
    additionalProperties: false,
    required: Object.keys(properties).filter((k) => !optional.includes(k)),
    properties,
  };
}

/** The health verdicts the API reports and filters by. */
export const HEALTH_STATES = ['healthy', 'unhealthy', 'unknown'] as const;
const healthState: Schema = { type: 'string', enum: HEALTH_STATES, description: 'Health verdict.' };
const authority: Schema = {
  type: 'string',
  enum: AUTHORITIES,
  description: "Who decides: an operator override, the overwatch's health checks, nobody (health_check.type none), or for an agent's backend: stale (its agent went quiet), draining (the agent drains it) or agent (the agent's own checks).",
};
/** The `generated_at` property every listing carries. */
export const generatedAt = time('When this answer was built (RFC 3339, UTC).');

/** The body of every error answer. */
const errorBody: Schema = {
  $id: 'Error',
  ...obj('An error: what went wrong and what was expected.', {
    error: str('What went wrong and what was expected.'),
    code: int('The HTTP status code, repeated.'),
  }),
};
const errorRef: Schema = { $ref: 'Error#' };

const strOrNull = (description: string): Schema => ({ type: ['string', 'null'], description });

/** The override scopes, most specific first (the order in which they decide). */
const overrideScope: Schema = {
  type: 'string',
  enum: ['domain', 'server', 'region'],
  description: 'What it covers: one address in one domain (domain), one address in every domain (server), or every server of a region in every domain (region). The most specific decides.',
};

const overrideView: Schema = {
  $id: 'Override',
  ...obj('An operator override.', {
    scope: overrideScope,
    service: strOrNull('Domain name, lower case, no trailing dot (scope domain); null otherwise.'),
    address: strOrNull('Server IP address in normal form (scopes domain and server); null for a region.'),
    region: strOrNull('Region name (scope region); null otherwise.'),
    healthy: bool('The health DNS uses for what it covers while the override lasts.'),
    reason: str('Why it was set (may be empty).'),
    source: str('Who set it: a person or a tool.'),
    created_at: time('When it was set (RFC 3339, UTC).'),
    expires_at: timeOrNull('When the health checks decide again (RFC 3339, UTC), or null: until cleared.'),
    authority: { type: 'string', enum: ['override'], description: 'Always "override".' },
    active: bool('False while nothing it covers is in the served config; the override is kept and applies again when they return.'),
  }),
};
const overrideRef: Schema = { $ref: 'Override#' };

const serverView: Schema = {
  $id: 'Server',
  ...obj('One configured server (region, address, port) and its health-check state.', {
    address: str('IP address.'),
    port: int('Port the health check uses.'),
    region: str('Region the server is configured in.'),
    domains: { type: 'array', items: { type: 'string' }, description: 'Domains that answer this server.' },
    source: { type: 'string', enum: ['config', 'agent', 'api'], description: 'Where it comes from: the config, an agent (its backend), or the API.' },
    service: { type: ['string', 'null'], description: 'The one domain a server bound to a service answers (an agent\'s backend), else null.' },
    agent_id: { type: ['string', 'null'], description: 'The agent that reports it, else null.' },
    status: { ...healthState, description: "The health checks' verdict (overrides are per domain: see overrides)." },
    healthy: bool('status is healthy.'),
    authority: { ...authority, description: 'override when an override applies to this server in at least one domain.' },
    check_type: { type: 'string', enum: ['http', 'https', 'tcp', 'none'], description: 'Health check type.' },
    last_check: timeOrNull('When the last check finished, or null before the first.'),
    status_since: timeOrNull("When the checks' verdict last changed (status holds since then), or null while unknown or unchecked by the overwatch."),
    last_healthy: timeOrNull('When the server was last seen healthy, or null.'),
    last_error: { type: ['string', 'null'], description: 'Why the last failed check failed, or null.' },
    consecutive_failures: int('Failed checks in a row.'),
    consecutive_successes: int('Successful checks in a row.'),
    latency_ms: { type: ['number', 'null'], description: 'Check latency EMA in milliseconds, or null before the first successful check.' },
    latency_samples: int('Samples in the latency EMA.'),
    overrides: {
      type: 'array',
      description: 'The override deciding this server, one per domain where one does (the most specific in force of any scope).',
      items: obj('The override deciding this server in one domain.', {
        service: str('Domain name.'),
        scope: overrideScope,
        healthy: bool('Overridden health.'),
        reason: str('Why.'),
        source: str('Who.'),
        expires_at: timeOrNull('When it ends, or null.'),
      }),
    },
  }),
};

const regionView: Schema = {
  $id: 'Region',
  ...obj('Health summary of one region.', {
    name: str('Region name.'),
    total_servers: int('Servers in the region.'),
    healthy_count: int('Servers whose checks say healthy.'),
    unhealthy_count: int('Servers whose checks say unhealthy.'),
    unknown_count: int('Servers not checked yet.'),
    health_percent: { type: 'number', description: 'healthy / total × 100, one decimal; 0 for a region without servers.' },
  }),
};

const domainServerView: Schema = obj('One server as one domain sees it.', {
  address: str('IP address.'),
  port: int('Port.'),
  region: str('Region.'),
  weight: int('Weight (weighted routing).'),
  priority: int("Failover level: the index of the server's region in the domain's regions (0 first)."),
  status: { ...healthState, description: 'What DNS uses for this domain: the override when there is one, else the checks.' },
  authority,
  override: { oneOf: [overrideRef, { type: 'null' }], description: 'The override deciding this server in this domain (the most specific in force: domain, then server, then region scope), or null.' },
});

const domainView: Schema = {
  $id: 'Domain',
  ...obj('One served domain, its routing and its servers.', {
    name: str('Domain name.'),
    zone: str('Zone apex the domain is in.'),
    algorithm: { type: 'string', enum: ['round-robin', 'weighted', 'failover', 'latency', 'geolocation', 'sticky'], description: 'Routing algorithm.' },
    ttl: int('Answer TTL in seconds.'),
    max_answers: int('Most addresses in one answer.'),
    when_all_down: { type: 'string', enum: ['servfail', 'last_healthy', 'all', 'fallback'], description: 'What DNS answers when no server is healthy.' },
    fallback: { type: 'array', items: { type: 'string' }, description: 'Fallback addresses (when_all_down: fallback).' },
    servers: { type: 'array', items: domainServerView, description: 'Servers of the domain, in config order.' },
  }),
};

const readiness: Schema = {
  $id: 'Readiness',
  ...obj(
    'Whether the overwatch answers DNS yet.',
    {
      ready: bool('dns_ready and health_ready.'),
      dns_ready: bool('DNS workers are listening.'),
      health_ready: bool('The first health round has finished.'),
      message: str('Why it is not ready.'),
    },
    ['message'],
  ),
};

/** Every shared schema, added to Fastify with addSchema() and referenced as "Name#". */
export const SHARED_SCHEMAS: readonly Schema[] = [errorBody, overrideView, serverView, regionView, domainView, readiness];

/** Builds the error answers (the shared Error schema, with a description) for the given statuses. */
export function errorResponses(...codes: number[]): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  for (const code of codes) out[code] = { ...errorRef, description: ERROR_DESCRIPTIONS[code] ?? 'Error.' };
  return out;
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'A path parameter, query parameter or body field is missing or malformed.',
  401: 'A write without the right bearer token (only when api.token is set).',
  403: 'The client address is outside api.allowed_networks, or the request names a host (Host, or with trust_proxy_headers X-Forwarded-Host or Forwarded host=) that is not an IP address, localhost or in api.allowed_hosts.',
  404: 'No such domain, server, override or signed zone.',
  409: 'The request conflicts with the current state: a DNSSEC rollover step at the wrong time, or a geo mapping the registry refuses (a network the config maps already).',
  500: 'Unexpected failure, or the change could not be persisted (it was not applied).',
  503: 'Still starting: the first health round has not finished.',
};

/** Builds a response map: the 200 (or other success) schema plus the error answers of a guarded route. */
export function responses(success: Record<string, Schema>, ...errors: number[]): Record<string, Schema> {
  return { ...success, ...errorResponses(403, 500, 503, ...errors) };
}

/** Query of GET /api/v1/health/servers: optional exact filters. */
export const serversQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    domain: { type: 'string', minLength: 1, maxLength: 255, description: 'Only servers answered for this domain (any case, trailing dot allowed); a domain the config does not have is a 400.' },
    region: { type: 'string', minLength: 1, maxLength: 255, description: 'Only servers of this region.' },
    status: { type: 'string', enum: HEALTH_STATES, description: "Only servers with this health-check verdict." },
  },
};

/** Path of /api/v1/overrides/{service}/{address}; normalised (and checked) by the handlers. */
export const overrideParams: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['service', 'address'],
  properties: {
    service: { type: 'string', minLength: 1, maxLength: 256, description: 'Domain name (any case, trailing dot allowed).' },
    address: { type: 'string', minLength: 1, maxLength: 64, description: 'Server IPv4 or IPv6 address (IPv6 plain or URL-encoded), or a CNAME server\'s target name.' },
  },
};

/** Path of /api/v1/overrides/server/{address}. */
export const serverOverrideParams: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['address'],
  properties: {
    address: { type: 'string', minLength: 1, maxLength: 64, description: 'Server IPv4 or IPv6 address (IPv6 plain or URL-encoded), or a CNAME server\'s target name.' },
  },
};

/** Path of /api/v1/overrides/region/{region}. */
export const regionOverrideParams: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['region'],
  properties: {
    region: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'Region name, as in the config.' },
  },
};

/** Body of PUT on every override path. */
export const overrideBody: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['healthy', 'source'],
  properties: {
    healthy: { type: 'boolean', description: 'true: answer the servers whatever the checks say; false: never answer them.' },
    reason: { type: 'string', maxLength: 1024, pattern: TEXT_PATTERN, default: '', description: 'Why (free text, may be empty; no control characters).' },
    source: { type: 'string', minLength: 1, maxLength: 256, pattern: NAME_TEXT_PATTERN, description: 'Who sets it: a person or a tool (not empty, not only spaces; no control characters).' },
    expires_at: { type: 'string', minLength: 1, maxLength: 64, description: 'When the health checks decide again: an RFC 3339 time with a zone, such as "2026-11-26T18:00:00Z" (not with expires_in).' },
    expires_in: { type: 'string', minLength: 1, maxLength: 32, description: 'How long from now until the health checks decide again: a duration such as "2h" or "90m" (not with expires_at).' },
  },
};

/** Query of GET /api/v1/explain. */
export const explainQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 256, description: 'Query name (any case, trailing dot allowed).' },
    type: { type: 'string', minLength: 1, maxLength: 10, default: 'A', description: 'Query type mnemonic: A, AAAA, … or TYPEnnn.' },
    client: { type: 'string', minLength: 1, maxLength: 64, description: 'Client IPv4 or IPv6 address to route for (default: none, as without ECS).' },
  },
};
