// Main thread, cold path. Agents as the overwatch knows them: their pins
// (trust on first use), their state, their backends, and the channel's
// counters; and the operator's two ways to stop trusting one: revoke (every
// later message dropped, the pin kept) and delete (the pin forgotten: the
// agent may register again with its tokens). Both take the agent's backends
// out of DNS at once. The channel holds the working copy of the pins
// (src/gossip/channel.ts); the state store follows it.

import type { FastifyInstance } from 'fastify';
import { ACCEPTED_MESSAGE_TYPES, AGENT_STATES, BACKEND_STATES } from '../overwatch/agent-states.ts';
import { DROP_REASON_NAMES } from '../gossip/drop-reasons.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { clientOf, requireOverwatch, type ApiOverwatch, type RouteContext } from './context.ts';
import { generatedAt, obj, responses, str, TEXT_PATTERN, type Schema } from './schemas.ts';

interface AgentParams {
  readonly id: string;
}

interface RevokeBody {
  readonly reason: string;
}

const nullable = (type: string, description: string): Schema => ({ type: [type, 'null'], description });
const time = (description: string): Schema => ({ type: ['string', 'null'], format: 'date-time', description });

const agentView: Schema = {
  $id: 'Agent',
  ...obj('One agent: its pin, its state, its load.', {
    agent_id: str('"<region>-<12 hex digits>", from its certificate.'),
    region: str('Region of its latest registration.'),
    state: { type: 'string', enum: AGENT_STATES, description: 'live (heard from within overwatch.stale.threshold), stale, unseen (pinned, not heard from since this overwatch started), deregistered (stopped gracefully), removed (quiet for remove_after, or its pin deleted), revoked.' },
    version: nullable('string', 'Its software version, from its registration.'),
    services: { type: 'array', items: { type: 'string' }, description: 'Services its registration proved a token for.' },
    fingerprint: str('Hex SHA-256 of its pinned certificate.'),
    first_seen: time('When it was first pinned.'),
    registered_at: time('When its latest registration was accepted.'),
    last_seen: time('When a message of it was last accepted (since this overwatch started, or as stored).'),
    heartbeat_age_seconds: nullable('number', 'Seconds since last_seen, or null.'),
    heartbeat_interval_ms: nullable('integer', 'Its agent.heartbeat.interval, from its registration.'),
    certificate_not_after: time('When its pinned certificate expires.'),
    revoked_at: time('When it was revoked, or null.'),
    revoked_reason: nullable('string', 'Why.'),
    previous_fingerprint: nullable('string', 'The certificate its current one replaced by a signed rotation, or null.'),
    note: nullable('string', 'Why it left, when it did.'),
    load: {
      oneOf: [
        obj('Its host load from its last heartbeat.', {
          cpu_percent: { type: 'number', description: 'Host CPU busy, percent.' },
          memory_percent: { type: 'number', description: 'Host memory in use, percent.' },
          error_rate_per_min: { type: 'number', description: 'The highest failed-checks-per-minute of its backends.' },
        }),
        { type: 'null' },
      ],
      description: 'Its host load, or null.',
    },
    backend_count: { type: 'integer', description: 'Backends it reports.' },
  }),
};

const agentBackendView = obj("One of an agent's backends as the agent reports it.", {
  agent_id: str('The agent.'),
  service: str('The domain it answers for.'),
  address: str('IP literal, or a host name (kept, never answered).'),
  port: { type: 'integer', description: 'Port.' },
  weight: { type: 'integer', description: 'Weight.' },
  region: str('Its agent\'s region.'),
  agent_health: { type: 'string', enum: ['healthy', 'unhealthy', 'unknown'], description: 'The agent\'s own checks.' },
  drain_reason: nullable('string', 'Why the agent drains it, or null.'),
  state: { type: 'string', enum: BACKEND_STATES, description: 'What decides it now: the agent\'s claim, draining, stale, validated (the overwatch\'s own checks), refused (kept, never answered: see problem), or removed.' },
  server_key: nullable('string', 'Its server in the registry, or null when it is not one (see problem).'),
  problem: nullable('string', 'Why it is not answered at all, or null.'),
  check_type: nullable('string', 'How the agent checks it.'),
});

const counters = (names: readonly string[], description: string): Schema => ({
  type: 'object',
  additionalProperties: false,
  required: [...names],
  properties: Object.fromEntries(names.map((n) => [n, { type: 'integer' }])),
  description,
});

const agentParams: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'Agent id.' } },
};

/** The agent hub, or the 404 that says the channel is off. */
function hubOf(ow: ApiOverwatch): NonNullable<ApiOverwatch['agents']> {
  const hub = ow.agents;
  if (hub === null) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', 'the agent channel is off on this overwatch (overwatch.gossip.encryption_key is not set), so it knows no agents');
  return hub;
}

function unknownAgent(id: string): OpenGslbError {
  return new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no agent ${id} is known (pinned or reporting); GET /api/v1/overwatch/agents lists them`);
}

/** Registers GET /api/v1/overwatch/agents, GET and DELETE /api/v1/overwatch/agents/{id}, POST /api/v1/overwatch/agents/{id}/revoke. */
export function registerAgentRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.addSchema(agentView);

  app.get(
    '/api/v1/overwatch/agents',
    {
      schema: {
        summary: 'Every agent (pinned or reporting) with its state, and the channel\'s message and drop counters.',
        tags: ['agents'],
        response: responses({
          200: {
            description: 'Agents in id order; channel_enabled false (and no agents) when overwatch.gossip is off.',
            type: 'object',
            additionalProperties: false,
            required: ['channel_enabled', 'agents', 'messages', 'drops', 'generated_at'],
            properties: {
              channel_enabled: { type: 'boolean', description: 'overwatch.gossip.encryption_key is set: the channel listens.' },
              agents: { type: 'array', items: { $ref: 'Agent#' } },
              messages: { oneOf: [counters(ACCEPTED_MESSAGE_TYPES, 'Messages accepted since start, by type.'), { type: 'null' }] },
              drops: { oneOf: [counters(DROP_REASON_NAMES, 'Messages dropped since start, by reason (docs/agents.md).'), { type: 'null' }] },
              generated_at: generatedAt,
            },
          },
        }),
      },
    },
    () => {
      const hub = requireOverwatch(ctx).agents;
      const generated = new Date().toISOString();
      if (hub === null) return { channel_enabled: false, agents: [], messages: null, drops: null, generated_at: generated };
      const c = hub.channelCounters();
      return { channel_enabled: true, agents: hub.agents(), messages: c.messages, drops: c.drops, generated_at: generated };
    },
  );

  app.get<{ Params: AgentParams }>(
    '/api/v1/overwatch/agents/:id',
    {
      schema: {
        summary: 'One agent with its backends; 404 when unknown.',
        tags: ['agents'],
        params: agentParams,
        response: responses(
          {
            200: {
              description: 'The agent and its backends as it reports them.',
              type: 'object',
              additionalProperties: false,
              required: ['agent', 'backends', 'generated_at'],
              properties: { agent: { $ref: 'Agent#' }, backends: { type: 'array', items: agentBackendView }, generated_at: generatedAt },
            },
          },
          400,
          404,
        ),
      },
    },
    (request) => {
      const found = hubOf(requireOverwatch(ctx)).agent(request.params.id);
      if (found === null) throw unknownAgent(request.params.id);
      return { ...found, generated_at: new Date().toISOString() };
    },
  );

  app.post<{ Params: AgentParams; Body: RevokeBody }>(
    '/api/v1/overwatch/agents/:id/revoke',
    {
      schema: {
        summary: 'Revokes an agent: every later message of it is dropped (revoked), and its backends leave DNS at once. The pin is kept (persisted) until deleted.',
        tags: ['agents'],
        security: [{ bearer: [] }],
        params: agentParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: { reason: { type: 'string', minLength: 1, maxLength: 256, pattern: TEXT_PATTERN, description: 'Why (kept with the pin; no control characters).' } },
        },
        response: responses({ 200: { $ref: 'Agent#', description: 'The revoked agent.' } }, 400, 401, 404),
      },
    },
    async (request) => {
      const id = request.params.id;
      const revoked = await hubOf(requireOverwatch(ctx)).revoke(id, request.body.reason);
      if (revoked === null) throw unknownAgent(id);
      ctx.log.info({ agent: id, reason: request.body.reason, client: clientOf(ctx, request) }, 'agent revoked');
      return revoked;
    },
  );

  app.delete<{ Params: AgentParams }>(
    '/api/v1/overwatch/agents/:id',
    {
      schema: {
        summary: 'Deletes an agent\'s pin and backends: its backends leave DNS at once; its next full heartbeat (TCP, within agent.heartbeat.full_interval; UDP heartbeats are dropped unanswered as unpinned) is answered "register", and a registration with valid tokens pins whatever certificate it shows.',
        tags: ['agents'],
        security: [{ bearer: [] }],
        params: agentParams,
        response: {
          204: { type: 'null', description: 'Deleted.' },
          ...responses({}, 400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      if (!(await hubOf(requireOverwatch(ctx)).forget(id))) throw unknownAgent(id);
      ctx.log.info({ agent: id, client: clientOf(ctx, request) }, 'agent pin deleted');
      return reply.code(204).send();
    },
  );
}
