// Cold path. The admin-API commands of `opengslb-cli`: for each, its usage
// line, its own flags, and what it asks the API and prints. The entry
// (opengslb-cli-main.ts) parses the global flags, builds the client and calls
// `run`; usage problems are thrown as UsageError (exit 2), API and transport
// problems as CliFailure (exit 1).

import { hostname } from 'node:os';
import type { ParseArgsOptionsConfig } from 'node:util';
import type { OverrideView, Readiness } from '../../overwatch/views.ts';
import type { AgentView } from '../../overwatch/agents.ts';
// Type-only, for the JSON shape GET /api/v1/explain serves; no routing code runs in the CLI.
import type { Explanation } from '../../overwatch/explain.ts';
import { type ApiClient, CliFailure, segment } from './client.ts';
import { formatExplain } from './explain-format.ts';
import {
  type AgentResponse,
  type AgentsResponse,
  formatAgent,
  formatAgents,
  type DomainsResponse,
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

/** A bad flag or argument: printed with the command's usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** What a command runs with. */
export interface CommandContext {
  readonly client: ApiClient;
  /** --json: print the API's JSON (pretty) instead of text. */
  readonly json: boolean;
  readonly out: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export type Values = Readonly<Record<string, string | boolean | undefined>>;

export interface Command {
  /** The command words: "servers", "overrides set". */
  readonly name: string;
  /** Arguments and flags after the command words. */
  readonly synopsis: string;
  /** One line for the overview. */
  readonly summary: string;
  /** Flag lines for the command's --help (the global flags are added by the entry). */
  readonly flags: readonly string[];
  readonly options: ParseArgsOptionsConfig;
  /** How many positional arguments it takes: [min, max]. */
  readonly args: readonly [number, number];
  run(ctx: CommandContext, values: Values, args: readonly string[]): Promise<void>;
}

const HEALTH_STATES = ['healthy', 'unhealthy', 'unknown'] as const;

function printJson(ctx: CommandContext, body: unknown): void {
  ctx.out(JSON.stringify(body, null, 2) + '\n');
}

function str(values: Values, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}

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
  summary: 'version, readiness, servers per region, domains and overrides on one screen',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    // Five independent GETs; one failure fails the command with that request's message.
    const [version, ready, regions, domains, overrides] = await Promise.all([
      ctx.client.get('/api/v1/version'),
      ctx.client.get('/api/v1/ready', {}, [200, 503]),
      ctx.client.get('/api/v1/health/regions'),
      ctx.client.get('/api/v1/domains'),
      ctx.client.get('/api/v1/overrides'),
    ]);
    if (ctx.json) {
      printJson(ctx, { version: version.body, ready: ready.body, regions: regions.body, domains: domains.body, overrides: overrides.body });
      return;
    }
    ctx.out(
      formatStatus({
        api: ctx.client.api,
        version: version.body as VersionResponse,
        readiness: ready.body as Readiness,
        regions: regions.body as RegionsResponse,
        domains: domains.body as DomainsResponse,
        overrides: overrides.body as OverridesResponse,
      }),
    );
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
    const res = await ctx.client.get('/api/v1/health/servers', query);
    if (ctx.json) return printJson(ctx, res.body);
    const filtered = Object.values(query).some((v) => v !== undefined);
    ctx.out(formatServers(res.body as ServersResponse, filtered));
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
    const res = await ctx.client.get('/api/v1/domains');
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
    if (ctx.json) return printJson(ctx, body);
    ctx.out(formatDomains(body, values.servers === true || name !== undefined));
  },
};

const overridesList: Command = {
  name: 'overrides list',
  synopsis: '',
  summary: 'every operator override',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.get('/api/v1/overrides');
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatOverrides(res.body as OverridesResponse));
  },
};

/** The override's URL; the API normalises both (any case and a trailing dot in the name, any IPv6 spelling). */
function overridePath(service: string, address: string): string {
  return `/api/v1/overrides/${segment(service)}/${segment(address)}`;
}

const overridesSet: Command = {
  name: 'overrides set',
  synopsis: 'SERVICE ADDRESS --healthy|--unhealthy --reason TEXT [--source WHO]',
  summary: 'force a server address of one domain healthy or unhealthy, whatever its checks say',
  flags: [
    'SERVICE           the domain (e.g. app.example.test)',
    'ADDRESS           the server\'s IP address as configured (IPv4 or IPv6)',
    '--healthy         answer it even when its checks fail',
    '--unhealthy       never answer it (maintenance, draining)',
    '--reason TEXT     why; required, shown in every listing',
    '--source WHO      who sets it (default: $USER@hostname, or opengslb-cli without $USER)',
  ],
  options: { healthy: { type: 'boolean' }, unhealthy: { type: 'boolean' }, reason: { type: 'string' }, source: { type: 'string' } },
  args: [2, 2],
  async run(ctx, values, args) {
    const [service, address] = args as [string, string];
    if ((values.healthy === true) === (values.unhealthy === true)) throw new UsageError('give exactly one of --healthy and --unhealthy');
    const reason = str(values, 'reason');
    if (reason === undefined || reason.trim() === '') throw new UsageError('--reason TEXT is required: say why, for whoever reads the override later');
    const source = str(values, 'source') ?? defaultSource(ctx.env);
    if (source.trim() === '') throw new UsageError('--source: must not be empty');
    const res = await ctx.client.put(overridePath(service, address), { healthy: values.healthy === true, reason, source });
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatOverrideSet(res.body as OverrideView));
  },
};

const overridesClear: Command = {
  name: 'overrides clear',
  synopsis: 'SERVICE ADDRESS',
  summary: 'remove an override; the health checks decide again',
  flags: ['SERVICE ADDRESS   as given to `overrides set` (see `overrides list`)'],
  options: {},
  args: [2, 2],
  async run(ctx, _values, args) {
    const [service, address] = args as [string, string];
    // DELETE answers 204 without a body; read the override first so the output can say what was cleared.
    // A 404 here is left to the DELETE to report (it says the same, and the override may have just appeared).
    const path = overridePath(service, address);
    const found = await ctx.client.get(path, {}, [200, 404]);
    const was = found.status === 200 ? (found.body as OverrideView) : null;
    await ctx.client.delete(path);
    if (ctx.json) return printJson(ctx, { cleared: true, service, address, was });
    ctx.out(formatOverrideCleared(service, address, was));
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
    const res = await ctx.client.get('/api/v1/explain', { name: args[0], type: type?.toUpperCase(), client: str(values, 'client') });
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatExplain(res.body as Explanation));
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
    const res = await ctx.client.get('/api/v1/geo/test', { ip: args[0] });
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatGeoTest(res.body as GeoTestResponse));
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
    const res = await ctx.client.get('/api/v1/geo/mappings');
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatGeoMappings(res.body as GeoMappingsResponse));
  },
};

const geoMappingsAdd: Command = {
  name: 'geo mappings add',
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
    const res = await ctx.client.put('/api/v1/geo/mappings', { cidr, region, source, ...(comment === undefined ? {} : { comment }) });
    if (ctx.json) return printJson(ctx, res.body);
    const m = res.body as GeoMappingResponse;
    ctx.out(`Mapped ${m.cidr} to ${m.region} (source: ${m.source})\n`);
  },
};

const geoMappingsRemove: Command = {
  name: 'geo mappings remove',
  synopsis: 'CIDR',
  summary: 'remove a mapping added at run time',
  flags: ['CIDR              as listed by `geo mappings list`'],
  options: {},
  args: [1, 1],
  async run(ctx, _values, args) {
    const res = await ctx.client.request('DELETE', '/api/v1/geo/mappings', { cidr: args[0] }, undefined, [200]);
    if (ctx.json) return printJson(ctx, res.body);
    const m = res.body as GeoMappingResponse;
    ctx.out(`Removed the mapping of ${m.cidr} (was ${m.region})\n`);
  },
};

function agentPath(id: string): string {
  return `/api/v1/overwatch/agents/${segment(id)}`;
}

const agentsList: Command = {
  name: 'agents list',
  synopsis: '',
  summary: 'every agent the overwatch knows (pinned or reporting) with its state, and the channel\'s dropped messages',
  flags: [],
  options: {},
  args: [0, 0],
  async run(ctx) {
    const res = await ctx.client.get('/api/v1/overwatch/agents');
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatAgents(res.body as AgentsResponse));
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
    const res = await ctx.client.get(agentPath(args[0] as string));
    if (ctx.json) return printJson(ctx, res.body);
    ctx.out(formatAgent(res.body as AgentResponse));
  },
};

const agentsRevoke: Command = {
  name: 'agents revoke',
  synopsis: 'ID --reason TEXT',
  summary: 'stop trusting an agent: its messages are dropped from now on and its backends leave DNS at once',
  flags: ['ID                the agent id (see `agents list`)', '--reason TEXT     why; required, kept with the revoked pin'],
  options: { reason: { type: 'string' } },
  args: [1, 1],
  async run(ctx, values, args) {
    const reason = str(values, 'reason');
    if (reason === undefined || reason.trim() === '') throw new UsageError('--reason TEXT is required: say why, for whoever reads the pin later');
    const res = await ctx.client.request('POST', `${agentPath(args[0] as string)}/revoke`, {}, { reason }, [200]);
    if (ctx.json) return printJson(ctx, res.body);
    const a = res.body as AgentView;
    ctx.out(`Revoked agent ${a.agent_id} (${reason}); its backends left DNS\n`);
  },
};

const agentsDelete: Command = {
  name: 'agents delete',
  synopsis: 'ID',
  summary: 'forget an agent\'s pin and backends (they leave DNS at once); it may register again with its tokens',
  flags: ['ID                the agent id (see `agents list`)'],
  options: {},
  args: [1, 1],
  async run(ctx, _values, args) {
    const id = args[0] as string;
    await ctx.client.delete(agentPath(id));
    if (ctx.json) return printJson(ctx, { deleted: true, agent_id: id });
    ctx.out(`Deleted the pin and backends of agent ${id}\n`);
  },
};

/** The admin-API commands, in the order the overview lists them. */
export const COMMANDS: readonly Command[] = [
  status, servers, domains, overridesList, overridesSet, overridesClear, explain, geoTest, geoMappingsList, geoMappingsAdd, geoMappingsRemove,
  agentsList, agentsShow, agentsRevoke, agentsDelete,
];

/** Command words that take a sub-command word. */
export const GROUPS: readonly string[] = ['overrides', 'config', 'geo', 'geo mappings', 'agents'];
