// Cold path. The admin-API commands of `opengslb-cli`: for each, its usage
// line, its own flags, and what it asks the API and prints. The entry
// (opengslb-cli-main.ts) parses the global flags, builds the client and calls
// `run`; usage problems are thrown as UsageError (exit 2), API and transport
// problems as CliFailure (exit 1).

import { hostname } from 'node:os';
import { parseDuration } from '../../config/duration.ts';
import { parseCalendarTime } from '../../lib/time.ts';
import type { OverrideView, Readiness } from '../../overwatch/views.ts';
import type { AgentView } from '../../overwatch/agents.ts';
// Type-only, for the JSON shape GET /api/v1/explain serves; no routing code runs in the CLI.
import type { Explanation } from '../../overwatch/explain.ts';
import { CliFailure, segment, type Shape } from './client.ts';
import { type Command, print, str, type Values } from './command.ts';
import { DNSSEC_COMMANDS } from './dnssec-commands.ts';
import { formatExplain } from './explain-format.ts';
import {
  type ConfigStatusResponse,
  type AgentResponse,
  type AgentsResponse,
  type ClusterStatusResponse,
  formatAgent,
  formatClusterStatus,
  formatAgents,
  type DomainsResponse,
  formatReload,
  formatReloadFailure,
  type ReloadResponse,
  formatDomains,
  formatGeoMappings,
  formatGeoTest,
  type GeoMappingResponse,
  type GeoMappingsResponse,
  type GeoTestResponse,
  formatOverrideCleared,
  formatOverrides,
  formatOverrideSet,
  formatServers,
  formatStatus,
  type OverridesResponse,
  type RegionsResponse,
  type ServersResponse,
  type VersionResponse,
} from './format.ts';

import { UsageError } from './usage-error.ts';

export { UsageError };

const HEALTH_STATES = ['healthy', 'unhealthy', 'unknown'] as const;

/** The fields each admin-API answer the commands print must carry (see ApiClient's Shape). */
const SHAPES = {
  version: { version: 'string', node_version: 'string' },
  ready: { ready: 'boolean' },
  regions: { regions: 'array' },
  domains: { domains: 'array' },
  servers: { servers: 'array' },
  overrides: { overrides: 'array' },
  override: { scope: 'string', healthy: 'boolean', created_at: 'string' },
  explain: { name: 'string', rcode: 'string', candidates: 'array' },
  status: { generation: 'number', config: 'object', reloads: 'object' },
  reload: { result: 'string', generation: 'number', problems: 'array' },
  geoTest: { ip: 'string', match_type: 'string' },
  geoMappings: { mappings: 'array' },
  geoMapping: { cidr: 'string', region: 'string', source: 'string' },
  agents: { channel_enabled: 'boolean', agents: 'array' },
  agent: { agent: 'object', backends: 'array' },
  revoked: { agent_id: 'string', state: 'string' },
  cluster: { cluster_healthy: 'boolean', overwatch: 'object', agents_view: 'object', backend_summary: 'object' },
} as const satisfies Record<string, Shape>;


/** The override source when --source is not given: who runs the command, on which host. */
export function defaultSource(env: NodeJS.ProcessEnv): string {
  // `||`, not `??`: an empty $USER (as in some containers) says nothing either.
  const user = env.USER || env.LOGNAME || env.USERNAME;
  return user ? `${user}@${hostname()}` : 'opengslb-cli';
}

/** Domain names compare case-insensitively and without a trailing dot, as DNS does. */
function sameName(a: string, b: string): boolean {
  return a.toLowerCase().replace(/\.$/, '') === b.toLowerCase().replace(/\.$/, '');
}

const status: Command = {
  name: 'status',
  synopsis: '',
  summary: 'version, readiness, the config serving (generation, when loaded, last failed reload), servers per region, domains and overrides on one screen',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    // Six independent GETs; one failure fails the command with that request's message.
    const [version, ready, regions, domains, overrides, config] = await Promise.all([
      ctx.client.get('/api/v1/version', SHAPES.version),
      ctx.client.get('/api/v1/ready', SHAPES.ready, {}, [200, 503]),
      ctx.client.get('/api/v1/health/regions', SHAPES.regions),
      ctx.client.get('/api/v1/domains', SHAPES.domains),
      ctx.client.get('/api/v1/overrides', SHAPES.overrides),
      ctx.client.get('/api/v1/status', SHAPES.status),
    ]);
    const all = { version: version.body, ready: ready.body, config: config.body, regions: regions.body, domains: domains.body, overrides: overrides.body };
    print(ctx, all, () =>
      formatStatus({
        api: ctx.client.api,
        version: version.body as VersionResponse,
        readiness: ready.body as Readiness,
        regions: regions.body as RegionsResponse,
        domains: domains.body as DomainsResponse,
        overrides: overrides.body as OverridesResponse,
        config: config.body as ConfigStatusResponse,
      }),
    );
  },
};

const reload: Command = {
  name: 'reload',
  write: true,
  synopsis: '',
  summary: 'reload the config files as SIGHUP does, and print what changed or every problem (exit 1 when it failed)',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.post('/api/v1/reload', undefined, SHAPES.reload, [200, 422]);
    const body = res.body as ReloadResponse;
    // A failure prints nothing here in text: it is the error below.
    print(ctx, body, (b) => (b.result === 'success' ? formatReload(b) : ''));
    // The failure is the command's error: stderr, every line after the program name, exit 1.
    if (body.result !== 'success') throw new CliFailure(formatReloadFailure('opengslb-cli', body).replace(/^opengslb-cli: /, '').trimEnd(), 1);
  },
};

const servers: Command = {
  name: 'servers',
  synopsis: '[--domain NAME] [--region NAME] [--status healthy|unhealthy|unknown]',
  summary: 'every configured server with its health-check state',
  flags: [
    '--domain NAME     only servers that answer for this domain',
    '--region NAME     only servers of this region',
    '--status STATE    only servers the health checks find healthy, unhealthy or unknown',
  ],
  options: { domain: { type: 'string' }, region: { type: 'string' }, status: { type: 'string' } },
  args: [0, 0],
  async run(ctx, values) {
    const state = str(values, 'status');
    if (state !== undefined && !(HEALTH_STATES as readonly string[]).includes(state)) {
      throw new UsageError(`--status: "${state}" is not a health state, expected healthy, unhealthy or unknown`);
    }
    const query = { domain: str(values, 'domain'), region: str(values, 'region'), status: state };
    const res = await ctx.client.get('/api/v1/health/servers', SHAPES.servers, query);
    const filtered = Object.values(query).some((v) => v !== undefined);
    print(ctx, res.body as ServersResponse, (b) => formatServers(b, filtered));
  },
};

const domains: Command = {
  name: 'domains',
  synopsis: '[NAME] [--servers]',
  summary: 'every domain with its policy and healthy/total servers',
  flags: [
    'NAME              only this domain, with its servers',
    '--servers         list each domain\'s servers as DNS sees them (weight, failover priority, status, override)',
  ],
  options: { servers: { type: 'boolean' } },
  args: [0, 1],
  async run(ctx, values, args) {
    const res = await ctx.client.get('/api/v1/domains', SHAPES.domains);
    let body = res.body as DomainsResponse;
    const name = args[0];
    if (name !== undefined) {
      const hit = body.domains.filter((d) => sameName(d.name, name));
      if (hit.length === 0) {
        const known = body.domains.map((d) => d.name).join(', ');
        throw new CliFailure(`no domain "${name}" is served${known ? ` (domains: ${known})` : ''}`, 1);
      }
      body = { ...body, domains: hit };
    }
    print(ctx, body, (b) => formatDomains(b, values.servers === true || name !== undefined));
  },
};

const overridesList: Command = {
  name: 'overrides list',
  synopsis: '',
  summary: 'every operator override in force, with its scope and end',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.get('/api/v1/overrides', SHAPES.overrides);
    print(ctx, res.body as OverridesResponse, formatOverrides);
  },
};

/** What an override command names: one address in one domain, an address in every domain, or a region. */
type OverrideTargetArgs = { readonly path: string; readonly text: string };

/** The scope flags and arguments every override command takes, and their usage lines. */
const TARGET_SYNOPSIS = 'SERVICE ADDRESS | --server ADDRESS | --region NAME';
const TARGET_FLAGS = [
  'SERVICE ADDRESS   one server address in one domain (e.g. app.example.test 192.0.2.10)',
  '--server ADDRESS  that server address in every domain that answers it',
  '--region NAME     every server of that region, in every domain',
];
const TARGET_OPTIONS = { server: { type: 'string' }, region: { type: 'string' } } as const;

/**
 * Reads the override's target from the arguments: SERVICE ADDRESS, or
 * --server ADDRESS, or --region NAME (exactly one form). Builds its API path
 * (each segment URL-encoded: IPv6 addresses carry ":"); the API normalises
 * names and addresses.
 */
function overrideTarget(values: Values, args: readonly string[]): OverrideTargetArgs {
  const server = str(values, 'server');
  const region = str(values, 'region');
  const forms = (args.length > 0 ? 1 : 0) + (server !== undefined ? 1 : 0) + (region !== undefined ? 1 : 0);
  if (forms !== 1) throw new UsageError(`name exactly one target: ${TARGET_SYNOPSIS}${forms > 1 ? ` (got ${forms})` : ''}`);
  if (server !== undefined) return { path: `/api/v1/overrides/server/${segment(server, 'server address')}`, text: `${server} in every domain` };
  if (region !== undefined) return { path: `/api/v1/overrides/region/${segment(region, 'region')}`, text: `region ${region}` };
  if (args.length !== 2) throw new UsageError(`SERVICE ADDRESS: expected both, got ${args.length === 1 ? `only ${args[0]}` : args.join(' ')}`);
  const [service, address] = args as [string, string];
  return { path: `/api/v1/overrides/${segment(service, 'service')}/${segment(address, 'server address')}`, text: `${address} in ${service}` };
}

/** RFC 3339 with a zone, as --until takes it: without a zone the time would depend on where the command runs. Groups: year, month, day, hour. */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** Reads --for DURATION or --until TIME into the API's expires_in or expires_at (neither: until cleared). */
function expiryFlags(values: Values): { expires_in?: string; expires_at?: string } {
  const forText = str(values, 'for');
  const until = str(values, 'until');
  if (forText !== undefined && until !== undefined) throw new UsageError('give --for DURATION or --until TIME, not both');
  if (forText !== undefined) {
    const d = parseDuration(forText);
    if ('error' in d) throw new UsageError(`--for: ${d.error}`);
    if (d.ms <= 0) throw new UsageError('--for: must be longer than 0, e.g. 2h or 90m');
    // The server adds it to its own clock: this host's clock does not matter.
    return { expires_in: forText };
  }
  if (until !== undefined) {
    const at = parseCalendarTime(until, RFC3339);
    if (Number.isNaN(at)) {
      throw new UsageError(`--until: "${until}" is not a time with a zone, expected RFC 3339 such as 2026-11-26T18:00:00Z or 2026-11-26T19:00+01:00`);
    }
    // Seconds are optional here; the API takes full RFC 3339, so send the instant in UTC.
    return { expires_at: new Date(at).toISOString() };
  }
  return {};
}

const overridesSet: Command = {
  name: 'overrides set',
  write: true,
  synopsis: `${TARGET_SYNOPSIS} --healthy|--unhealthy --reason TEXT [--for DURATION | --until TIME] [--source WHO]`,
  summary: 'force servers healthy or unhealthy, whatever their checks say: one address in one domain, an address in every domain, or a whole region; optionally until an end',
  flags: [
    ...TARGET_FLAGS,
    '--healthy         answer it even when its checks fail',
    '--unhealthy       never answer it (maintenance, draining)',
    '--reason TEXT     why; required, shown in every listing',
    '--for DURATION    end it after this long (2h, 90m, 1h30m); then the checks decide again',
    '--until TIME      end it at this time, RFC 3339 with a zone (2026-11-26T18:00:00Z)',
    '--source WHO      who sets it (default: $USER@hostname, or opengslb-cli without $USER)',
  ],
  options: {
    ...TARGET_OPTIONS,
    healthy: { type: 'boolean' },
    unhealthy: { type: 'boolean' },
    reason: { type: 'string' },
    source: { type: 'string' },
    for: { type: 'string' },
    until: { type: 'string' },
  },
  args: [0, 2],
  async run(ctx, values, args) {
    const target = overrideTarget(values, args);
    if ((values.healthy === true) === (values.unhealthy === true)) throw new UsageError('give exactly one of --healthy and --unhealthy');
    const reason = str(values, 'reason');
    if (reason === undefined || reason.trim() === '') throw new UsageError('--reason TEXT is required: say why, for whoever reads the override later');
    const source = str(values, 'source') ?? defaultSource(ctx.env);
    if (source.trim() === '') throw new UsageError('--source: must not be empty');
    const body = { healthy: values.healthy === true, reason, source, ...expiryFlags(values) };
    const res = await ctx.client.put(target.path, body, SHAPES.override);
    print(ctx, res.body as OverrideView, formatOverrideSet);
  },
};

const overridesClear: Command = {
  name: 'overrides clear',
  write: true,
  synopsis: TARGET_SYNOPSIS,
  summary: 'remove an override; the next override down (region under server under domain) or the health checks decide again',
  flags: [...TARGET_FLAGS, '(as given to `overrides set`; `overrides list` shows them)'],
  options: { ...TARGET_OPTIONS },
  args: [0, 2],
  async run(ctx, values, args) {
    const target = overrideTarget(values, args);
    // DELETE answers 204 without a body; read the override first so the output can say what was cleared.
    // A 404 here is left to the DELETE to report (it says the same, and the override may have just appeared).
    const found = await ctx.client.get(target.path, SHAPES.override, {}, [200, 404]);
    const was = found.status === 200 ? (found.body as OverrideView) : null;
    await ctx.client.delete(target.path);
    print(ctx, { cleared: true, target: target.text, was }, () => formatOverrideCleared(target.text, was));
  },
};

const explain: Command = {
  name: 'explain',
  synopsis: 'NAME [--type A|AAAA|…] [--client IP]',
  summary: 'what DNS would answer for NAME and why: the policy and every candidate',
  flags: [
    'NAME              the name to look up (e.g. app.example.test)',
    '--type TYPE       query type (A, AAAA, …; default: the API\'s, A)',
    '--client IP       the client (or EDNS client subnet) address to route for',
  ],
  options: { type: { type: 'string' }, client: { type: 'string' } },
  args: [1, 1],
  async run(ctx, values, args) {
    const type = str(values, 'type');
    const res = await ctx.client.get('/api/v1/explain', SHAPES.explain, { name: args[0], type: type?.toUpperCase(), client: str(values, 'client') });
    print(ctx, res.body as Explanation, formatExplain);
  },
};

const geoTest: Command = {
  name: 'geo test',
  synopsis: 'IP',
  summary: 'which region a client address maps to, and how (custom mapping, GeoIP country or continent, default)',
  flags: ['IP                a client IPv4 or IPv6 address (as an ECS address or a packet source)'],
  options: {},
  args: [1, 1],
  async run(ctx, _values, args) {
    const res = await ctx.client.get('/api/v1/geo/test', SHAPES.geoTest, { ip: args[0] });
    print(ctx, res.body as GeoTestResponse, formatGeoTest);
  },
};

const geoMappingsList: Command = {
  name: 'geo mappings list',
  synopsis: '',
  summary: "the custom geo mappings: the config's, then those added at run time",
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.get('/api/v1/geo/mappings', SHAPES.geoMappings);
    print(ctx, res.body as GeoMappingsResponse, formatGeoMappings);
  },
};

const geoMappingsAdd: Command = {
  name: 'geo mappings add',
  write: true,
  synopsis: 'CIDR REGION [--comment TEXT] [--source WHO]',
  summary: 'map a network to a region at run time (persisted; DNS follows when the command returns)',
  flags: [
    'CIDR              the network (10.0.0.0/8, 2001:db8::/32); host bits are ignored',
    'REGION            a region of the config',
    '--comment TEXT    why, shown in the listing',
    '--source WHO      who adds it (default: $USER@hostname, or opengslb-cli without $USER)',
  ],
  options: { comment: { type: 'string' }, source: { type: 'string' } },
  args: [2, 2],
  async run(ctx, values, args) {
    const [cidr, region] = args as [string, string];
    const source = str(values, 'source') ?? defaultSource(ctx.env);
    if (source.trim() === '') throw new UsageError('--source: must not be empty');
    const comment = str(values, 'comment');
    const res = await ctx.client.put('/api/v1/geo/mappings', { cidr, region, source, ...(comment === undefined ? {} : { comment }) }, SHAPES.geoMapping);
    print(ctx, res.body as GeoMappingResponse, (m) => `Mapped ${m.cidr} to ${m.region} (source: ${m.source})\n`);
  },
};

const geoMappingsRemove: Command = {
  name: 'geo mappings remove',
  write: true,
  synopsis: 'CIDR',
  summary: 'remove a mapping added at run time',
  flags: ['CIDR              as listed by `geo mappings list`'],
  options: {},
  args: [1, 1],
  async run(ctx, _values, args) {
    const res = await ctx.client.request('DELETE', '/api/v1/geo/mappings', { cidr: args[0] }, undefined, [200], SHAPES.geoMapping);
    print(ctx, res.body as GeoMappingResponse, (m) => `Removed the mapping of ${m.cidr} (was ${m.region})\n`);
  },
};

function agentPath(id: string): string {
  return `/api/v1/overwatch/agents/${segment(id, 'agent id')}`;
}

const agentsList: Command = {
  name: 'agents list',
  synopsis: '',
  summary: 'every agent the overwatch knows (pinned or reporting) with its state, and the channel\'s dropped messages',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.get('/api/v1/overwatch/agents', SHAPES.agents);
    print(ctx, res.body as AgentsResponse, formatAgents);
  },
};

const agentsShow: Command = {
  name: 'agents show',
  synopsis: 'ID',
  summary: 'one agent: its pin, state, load and backends',
  flags: ['ID                the agent id (see `agents list`)'],
  options: {},
  args: [1, 1],
  async run(ctx, _values, args) {
    const res = await ctx.client.get(agentPath(args[0] as string), SHAPES.agent);
    print(ctx, res.body as AgentResponse, formatAgent);
  },
};

const agentsRevoke: Command = {
  name: 'agents revoke',
  write: true,
  synopsis: 'ID --reason TEXT',
  summary: 'stop trusting an agent: its messages are dropped from now on and its backends leave DNS at once',
  flags: ['ID                the agent id (see `agents list`)', '--reason TEXT     why; required, kept with the revoked pin'],
  options: { reason: { type: 'string' } },
  args: [1, 1],
  async run(ctx, values, args) {
    const reason = str(values, 'reason');
    if (reason === undefined || reason.trim() === '') throw new UsageError('--reason TEXT is required: say why, for whoever reads the pin later');
    const res = await ctx.client.post(`${agentPath(args[0] as string)}/revoke`, { reason }, SHAPES.revoked);
    print(ctx, res.body as AgentView, (a) => `Revoked agent ${a.agent_id} (${reason}); its backends left DNS\n`);
  },
};

const agentsDelete: Command = {
  name: 'agents delete',
  write: true,
  synopsis: 'ID',
  summary: 'forget an agent\'s pin and backends (they leave DNS at once); it may register again with its tokens',
  flags: ['ID                the agent id (see `agents list`)'],
  options: {},
  args: [1, 1],
  async run(ctx, _values, args) {
    const id = args[0] as string;
    await ctx.client.delete(agentPath(id));
    print(ctx, { deleted: true, agent_id: id }, () => `Deleted the pin and backends of agent ${id}\n`);
  },
};

const clusterStatus: Command = {
  name: 'cluster status',
  synopsis: '',
  summary: 'this overwatch, the agents it hears, its backends by state, and whether each of its peers (overwatch.peers) sees the same agents (exit 1 when one does not)',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.get('/api/v1/cluster/status', SHAPES.cluster);
    const body = res.body as ClusterStatusResponse;
    print(ctx, body, (b) => formatClusterStatus(b, ctx.client.api));
    if (!body.cluster_healthy) {
      const off = (body.peers ?? []).filter((p) => p.matches !== true).map((p) => `${p.url} (${p.reachable ? 'sees other agents' : p.error ?? 'unreachable'})`);
      throw new CliFailure(`not every peer sees the same agents: ${off.join(', ')}`, 1);
    }
  },
};

/** The admin-API commands, in the order the overview lists them. */
export const COMMANDS: readonly Command[] = [
  status, reload, servers, domains, overridesList, overridesSet, overridesClear, explain, geoTest, geoMappingsList, geoMappingsAdd, geoMappingsRemove,
  ...DNSSEC_COMMANDS, agentsList, agentsShow, agentsRevoke, agentsDelete, clusterStatus,
];

/** Command words that take a sub-command word. */
export const GROUPS: readonly string[] = ['overrides', 'config', 'geo', 'geo mappings', 'dnssec', 'agents', 'cluster'];
