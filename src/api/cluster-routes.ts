// Main thread, cold path. GET /api/v1/cluster/status (the Go original's path):
// this overwatch, the agents it hears, its backends by state, and whether each
// peer of overwatch.peers sees the same agents (src/overwatch/cluster-status.ts).
// Peers are asked with peers=false, so the question never goes round.

import type { FastifyInstance } from 'fastify';
import { AGENT_STATES } from '../overwatch/agent-states.ts';
import { agentsDigest, askPeers, backendSummary, clusterAgents, type ClusterStatus } from '../overwatch/cluster-status.ts';
import { requireOverwatch, type RouteContext } from './context.ts';
import { generatedAt, obj, responses, str } from './schemas.ts';

interface ClusterQuery {
  readonly peers?: 'true' | 'false';
}

const int = (description: string) => ({ type: 'integer', description });
const nullable = (type: string, description: string) => ({ type: [type, 'null'], description });

const clusterStatus = obj('This overwatch, the agents it hears, its backends by state, and its peers.', {
  cluster_healthy: { type: 'boolean', description: 'Every peer of overwatch.peers answered and sees the same agents (count and digest); true with no peers.' },
  overwatch: obj('This overwatch.', {
    version: str('OpenGSLB version.'),
    started_at: { type: 'string', format: 'date-time', description: 'When the process started.' },
    uptime_seconds: int('Seconds since then.'),
    generation: int('Snapshot generation serving.'),
    agent_channel: { type: 'boolean', description: 'The agent channel is on (overwatch.gossip.encryption_key).' },
  }),
  agents: {
    type: 'array',
    description: 'Every agent it knows, in id order.',
    items: obj('One agent.', {
      agent_id: str('Agent id.'),
      region: str('Its region.'),
      status: { type: 'string', enum: AGENT_STATES, description: 'Its state (as in GET /api/v1/overwatch/agents).' },
      last_seen: { type: ['string', 'null'], format: 'date-time', description: 'When a message of it was last accepted.' },
      backend_count: int('Backends it reports.'),
    }),
  },
  healthy_agents: int('Agents in state live.'),
  agents_view: obj('What peers compare: the live and stale agents and their backends.', {
    count: int('Live and stale agents.'),
    digest: str('Hex SHA-256 of one sorted line per such agent (id, state, certificate fingerprint) and per backend of it (service, address, port, weight, the agent\'s health, drain reason).'),
  }),
  backend_summary: obj('Backends of every domain (config, agents, API).', {
    total: int('Rows of GET /api/v1/overwatch/backends (one per domain and server, and agents\' backends no domain answers).'),
    healthy: int('Answered and healthy to DNS.'),
    unhealthy: int('Answered and unhealthy to DNS.'),
    unknown: int('Answered, not decided yet.'),
    stale: int('Agents\' backends whose agent went quiet.'),
    draining: int('Agents\' backends their agent drains.'),
  }),
  peers: {
    type: ['array', 'null'],
    description: 'Each peer of overwatch.peers, asked now (3 s each, in parallel); null when asked with peers=false.',
    items: obj('One peer.', {
      url: str('Its admin API, as configured.'),
      reachable: { type: 'boolean', description: 'It answered with a cluster status.' },
      error: nullable('string', 'Why not, or null.'),
      agent_count: nullable('integer', 'Its agents_view.count.'),
      digest: nullable('string', 'Its agents_view.digest.'),
      matches: nullable('boolean', 'Same count and digest as this overwatch; null when unreachable.'),
    }),
  },
  generated_at: generatedAt,
});

/** Registers GET /api/v1/cluster/status. */
export function registerClusterRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const startedAtMs = Date.now() - Math.round(process.uptime() * 1000);
  app.get<{ Querystring: ClusterQuery }>(
    '/api/v1/cluster/status',
    {
      schema: {
        summary: 'This overwatch, the agents it hears, its backends by state, and whether each configured peer (overwatch.peers) sees the same agents.',
        tags: ['cluster'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { peers: { type: 'string', enum: ['true', 'false'], description: 'Ask the peers (default); false answers from this overwatch alone, as peers ask each other.' } },
        },
        response: responses({ 200: clusterStatus }, 400),
      },
    },
    async (request): Promise<ClusterStatus> => {
      const ow = requireOverwatch(ctx);
      const hub = ow.agents;
      const agents = hub?.agents() ?? [];
      const view = agentsDigest(agents, hub?.backends() ?? []);
      const peers = request.query.peers === 'false' ? null : await askPeers(ow.config.peers, view);
      return {
        cluster_healthy: (peers ?? []).every((p) => p.matches === true),
        overwatch: {
          version: ctx.deps.version,
          started_at: new Date(startedAtMs).toISOString(),
          uptime_seconds: Math.floor((Date.now() - startedAtMs) / 1000),
          generation: ow.generation,
          agent_channel: hub !== null,
        },
        agents: clusterAgents(agents),
        healthy_agents: agents.filter((a) => a.state === 'live').length,
        agents_view: view,
        backend_summary: backendSummary(ow.backends()),
        peers,
        generated_at: new Date().toISOString(),
      };
    },
  );
}
