// Main thread, cold path. Geolocation for operators: which region a client
// address maps to and why (the Go original's GET /api/v1/geo/test), and the
// custom mappings, with mappings added and removed at run time: persisted in
// the state store, compiled into the next snapshot, answered by DNS when the
// call returns.

import type { FastifyInstance } from 'fastify';
import { OpenGslbError } from '../lib/errors.ts';
import { clientOf, requireOverwatch, type RouteContext } from './context.ts';
import { NAME_TEXT_PATTERN, responses, TEXT_PATTERN, type Schema } from './schemas.ts';

const nullable = (type: string, description: string): Schema => ({ type: [type, 'null'], description });

const geoTest: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['ip', 'region', 'match_type', 'matched_cidr', 'country', 'continent', 'geoip_network', 'scope_prefix_length'],
  properties: {
    ip: { type: 'string', description: 'The address asked about, in normal form.' },
    region: nullable('string', 'The region it maps to, or null when nothing matched and there is no default_region.'),
    match_type: { type: 'string', enum: ['none', 'custom_mapping', 'geoip', 'default'], description: 'What decided: a custom mapping, the GeoIP database (country or continent), default_region, or nothing.' },
    matched_cidr: nullable('string', 'The custom mapping that decided, or null.'),
    country: nullable('string', 'ISO 3166-1 alpha-2 country of the address in the GeoIP database, or null.'),
    continent: nullable('string', 'Continent code (AF AN AS EU NA OC SA), or null.'),
    geoip_network: nullable('string', 'The database network that holds the address, or null when the database was not asked.'),
    scope_prefix_length: { type: 'integer', description: 'The ECS SCOPE PREFIX-LENGTH an answer to this client (as an ECS address) carries, as DNS echoes it: 0 with overwatch.geolocation.ecs_enabled off.' },
  },
};

const mapping: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['cidr', 'region', 'comment', 'source', 'created_at', 'active'],
  properties: {
    cidr: { type: 'string', description: 'The network, host bits clear.' },
    region: { type: 'string', description: 'The region its clients get.' },
    comment: nullable('string', 'Free text.'),
    source: { type: 'string', description: '"config" (overwatch.geolocation.custom_mappings), or who added it through the API.' },
    created_at: nullable('string', 'When it was added through the API (RFC 3339); null for the config\'s.'),
    active: { type: 'boolean', description: 'False while a run-time mapping does not apply (its region is not served, the config maps the same network, or the geo table has no room for it beside the config\'s mappings).' },
  },
};

interface GeoTestQuery {
  readonly ip: string;
}

interface MappingBody {
  readonly cidr: string;
  readonly region: string;
  readonly comment?: string;
  readonly source: string;
}

interface CidrQuery {
  readonly cidr: string;
}

const cidrQuery: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['cidr'],
  properties: { cidr: { type: 'string', minLength: 1, maxLength: 64, description: 'The network ("10.0.0.0/8", "2001:db8::/32").' } },
};

/** Registers GET /api/v1/geo/test and GET, PUT, DELETE /api/v1/geo/mappings. */
export function registerGeoRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Querystring: GeoTestQuery }>(
    '/api/v1/geo/test',
    {
      schema: {
        summary: 'Which region a client address maps to now, and how: custom mapping, GeoIP country or continent, or default_region.',
        tags: ['geolocation'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['ip'],
          properties: { ip: { type: 'string', minLength: 1, maxLength: 64, description: 'A client IPv4 or IPv6 address (as an ECS address or a packet source); ::ffff:a.b.c.d is the IPv4 client a.b.c.d, a zone index (%eth0) is refused.' } },
        },
        response: responses({ 200: { ...geoTest, description: 'The decision.' } }, 400),
      },
    },
    (request) => requireOverwatch(ctx).geoTest(request.query.ip),
  );

  app.get(
    '/api/v1/geo/mappings',
    {
      schema: {
        summary: "The custom mappings: the config's, then those added through the API.",
        tags: ['geolocation'],
        response: responses({
          200: { type: 'object', additionalProperties: false, required: ['mappings'], properties: { mappings: { type: 'array', items: mapping } }, description: 'Every mapping.' },
        }),
      },
    },
    () => ({ mappings: requireOverwatch(ctx).geoMappings() }),
  );

  app.put<{ Body: MappingBody }>(
    '/api/v1/geo/mappings',
    {
      schema: {
        summary: 'Maps a network to a region (or changes its region). Persisted, then answered by DNS when the call returns.',
        description: 'A run-time mapping joins the config\'s: the longest prefix holding a client decides. A network the config maps already is refused (409): change it in the config.',
        tags: ['geolocation'],
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['cidr', 'region', 'source'],
          properties: {
            cidr: { type: 'string', minLength: 1, maxLength: 64, description: 'The network; host bits are ignored.' },
            region: { type: 'string', minLength: 1, maxLength: 63, description: 'A region of the config.' },
            comment: { type: 'string', maxLength: 1024, pattern: TEXT_PATTERN, description: 'Free text (no control characters).' },
            source: { type: 'string', minLength: 1, maxLength: 256, pattern: NAME_TEXT_PATTERN, description: 'Who sets it: a person or a tool (not empty, not only spaces; no control characters).' },
          },
        },
        response: responses({ 200: { ...mapping, description: 'The mapping as stored.' } }, 400, 401, 409),
      },
    },
    async (request) => {
      const body = request.body;
      const view = await requireOverwatch(ctx).setGeoMapping(body.cidr, body.region, body.comment ?? null, body.source);
      ctx.log.info({ cidr: view.cidr, region: view.region, source: body.source, client: clientOf(ctx, request) }, 'geo mapping set');
      return view;
    },
  );

  app.delete<{ Querystring: CidrQuery }>(
    '/api/v1/geo/mappings',
    {
      schema: {
        summary: 'Removes a mapping added through the API; DNS answers without it when the call returns. 404 when there is none.',
        tags: ['geolocation'],
        security: [{ bearer: [] }],
        querystring: cidrQuery,
        response: { 200: { ...mapping, description: 'The mapping removed.' }, ...responses({}, 400, 401, 404) },
      },
    },
    async (request) => {
      const removed = await requireOverwatch(ctx).deleteGeoMapping(request.query.cidr);
      if (removed === null) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no mapping of ${request.query.cidr} was added through the API; GET /api/v1/geo/mappings lists them`);
      ctx.log.info({ cidr: removed.cidr, region: removed.region, client: clientOf(ctx, request) }, 'geo mapping removed');
      return removed;
    },
  );
}
