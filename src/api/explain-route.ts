// Main thread, cold path. GET /api/v1/explain: what DNS would answer now for
// a name, type and client, and why (src/overwatch/explain.ts builds the answer).

import type { FastifyInstance } from 'fastify';
import { parseIp } from '../config/ip.ts';
import { badRequest, requireOverwatch, type RouteContext } from './context.ts';
import { explainQuery, responses, type Schema } from './schemas.ts';
import { AUTHORITIES } from '../registry/registry.ts';

interface ExplainQuery {
  readonly name: string;
  readonly type: string;
  readonly client?: string;
}

const nullable = (type: string, description: string): Schema => ({ type: [type, 'null'], description });
const strings = (description: string): Schema => ({ type: 'array', items: { type: 'string' }, description });

// Every field is listed as required, in the order explain.ts builds them:
// fast-json-stringify writes required properties first, so this keeps the
// served order readable; test/api/explain.test.ts fails if a field goes away.
const candidate: Schema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    address: { type: 'string', description: 'Server IP address (or a static address).' },
    port: nullable('integer', 'Port, null for static data.'),
    region: nullable('string', 'Region, null for static data.'),
    priority: nullable('integer', "Failover level: index of the region in the domain's regions."),
    weight: nullable('integer', 'Weight.'),
    status: { type: 'string', enum: ['healthy', 'unhealthy', 'unknown', 'drained', 'static'], description: 'Health DNS uses for this domain (override applied).' },
    check_status: { type: ['string', 'null'], enum: ['healthy', 'unhealthy', 'unknown', null], description: "The checks' own verdict." },
    authority: { type: ['string', 'null'], enum: [...AUTHORITIES, null], description: 'Who decided.' },
    override: {
      type: ['object', 'null'],
      description: 'The override that decides this server in this domain (the most specific in force: domain, then server, then region scope), or null.',
      additionalProperties: false,
      required: ['scope', 'target', 'healthy', 'source', 'reason', 'expires_at'],
      properties: {
        scope: { type: 'string', enum: ['domain', 'server', 'region'], description: 'What the override covers: this address in this domain, this address in every domain, or the region.' },
        target: { type: 'string', description: 'The address (scopes domain and server) or the region it was set on.' },
        healthy: { type: 'boolean', description: 'What it forces.' },
        source: { type: 'string', description: 'Who set it.' },
        reason: { type: 'string', description: 'Why.' },
        expires_at: nullable('string', 'When the checks decide again (RFC 3339), or null: until cleared.'),
      },
    },
    latency_ms: nullable('number', 'Check latency EMA in ms.'),
    samples: { type: 'integer', description: 'Latency samples.' },
    last_up: nullable('string', 'When last seen healthy (RFC 3339).'),
    eligible: { type: 'boolean', description: 'May the next answer carry it?' },
    reason: nullable('string', 'Why not eligible.'),
    detail: nullable('string', 'Its part in the answer, when eligible.'),
  },
};

/** The explanation; extra properties pass through, so a field added to explain.ts is served before this schema names it. */
const explanation: Schema = {
  type: 'object',
  description: 'What DNS would answer now, and why.',
  additionalProperties: true,
  properties: {
    name: { type: 'string', description: 'The name asked, lower case, no trailing dot.' },
    type: { type: 'string', description: 'Query type mnemonic.' },
    client: nullable('string', 'Client address routed for, or null.'),
    rcode: { type: 'string', enum: ['NOERROR', 'NXDOMAIN', 'REFUSED', 'SERVFAIL'], description: 'Response code.' },
    aa: { type: 'boolean', description: 'Authoritative-answer bit.' },
    zone: nullable('string', 'Zone apex, or null outside every zone.'),
    domain: nullable('string', 'The configured domain that answers, or null.'),
    source: { type: ['string', 'null'], enum: ['domain', 'nameserver', 'zone', 'static', 'delegation', null], description: 'What the answer comes from: a domain\'s routing, a name server\'s address, the zone apex, a static record (dns.zones[].records), or a delegation (a referral).' },
    policy: nullable('string', 'Routing algorithm (or "static").'),
    max_answers: nullable('integer', 'Records per answer at most.'),
    when_all_down: nullable('string', 'What is answered when no server is healthy.'),
    ttl: nullable('integer', 'TTL of the answer (negative-caching TTL for NXDOMAIN/NODATA).'),
    selection: { type: ['string', 'null'], enum: ['fixed', 'rotation', 'weighted_random', null], description: 'How answers are drawn from `answers`.' },
    answers: strings('The next answer (fixed) or the pool answers are drawn from.'),
    answer_size: { type: 'integer', description: 'Records in each answer.' },
    rotation: { type: 'boolean', description: 'selection is rotation.' },
    cycle: { type: ['array', 'null'], items: { type: 'array', items: { type: 'string' } }, description: 'Every answer of a rotation, at most 64.' },
    probabilities: {
      type: ['array', 'null'],
      description: "Weighted: each eligible server's chances.",
      items: {
        type: 'object',
        additionalProperties: true,
        properties: {
          address: { type: 'string' },
          weight: { type: 'integer' },
          first: { type: 'number', description: 'Probability of leading an answer.' },
          in_answer: { type: ['number', 'null'], description: 'Probability of being anywhere in an answer.' },
        },
      },
    },
    candidates: { type: 'array', items: candidate, description: 'Every server of the domain as this query sees it.' },
    fallback: strings('Fallback addresses of the asked family.'),
    all_down: {
      type: ['object', 'null'],
      additionalProperties: true,
      properties: { mode: { type: 'string' }, answered: { type: 'boolean' } },
      description: 'Set when no candidate is answerable and when_all_down decided.',
    },
    additional: strings('Additional-section records.'),
    notes: strings('Explanations in words.'),
    geo: {
      type: ['object', 'null'],
      additionalProperties: true,
      description: 'Geolocation domains: how the client was placed (the fields of GET /api/v1/geo/test) and which region answers; null otherwise.',
      properties: {
        region: nullable('string', 'The region the client maps to.'),
        match_type: { type: 'string', description: 'custom_mapping, geoip, default or none.' },
        matched_cidr: nullable('string', 'The custom mapping that decided.'),
        scope_prefix_length: { type: 'integer', description: 'ECS scope of an answer to this client.' },
        answered_region: nullable('string', 'The region whose servers answer.'),
        fallback: { type: ['string', 'null'], enum: ['region_down', 'region_not_served', 'no_region', null], description: "Why the answer does not come from the client's region." },
      },
    },
    generation: { type: 'integer', description: 'Snapshot generation explained.' },
  },
};

// A mnemonic (A, AAAA, SOA, …) or TYPEnnn / nnn; explain() checks it against the type table.
const TYPE_TEXT = /^[A-Za-z][A-Za-z0-9-]{0,9}$|^(?:TYPE)?\d{1,5}$/i;

candidate.required = Object.keys(candidate.properties as object);
explanation.required = Object.keys(explanation.properties as object);

/** Registers GET /api/v1/explain. */
export function registerExplainRoute(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Querystring: ExplainQuery }>(
    '/api/v1/explain',
    {
      schema: {
        summary: 'What DNS would answer now for a name, type and client, and why: policy, candidates, eligibility.',
        tags: ['domains'],
        querystring: explainQuery,
        response: responses({ 200: explanation }, 400),
      },
    },
    (request) => {
      const ow = requireOverwatch(ctx);
      const { name, type } = request.query;
      if (!TYPE_TEXT.test(type)) badRequest(`query parameter "type": got the string ${JSON.stringify(type)}, expected a DNS type such as A, AAAA, SOA, NS, ANY or TYPEnnn`);
      let client: string | null = null;
      if (request.query.client !== undefined) {
        const ip = parseIp(request.query.client);
        if ('error' in ip) badRequest(`query parameter "client": ${ip.error}`);
        client = ip.address;
      }
      // explain() throws OPENGSLB_ERR_API_BAD_REQUEST for a name or type no query can carry.
      return ow.explain(name, type.toUpperCase(), client);
    },
  );
}
