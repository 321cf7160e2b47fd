// Cold path. Turns the admin API's JSON into the text `opengslb-cli` prints.
// Pure functions of the responses (no I/O, no clock: ages are measured against
// the response's own generated_at), so they are tested on fixed JSON. They
// print only fields the API sends (the Go CLI printed fields the server never
// had, as zeros and "unknown").

// Type-only, for the JSON shapes the API serves; no geo code runs in the CLI.
import type { GeoTestResult } from '../../geo/table-input.ts';
import type { DomainServerView, DomainView, GeoMappingView, OverrideView, Readiness, RegionView, ServerView } from '../../overwatch/views.ts';
import type { AgentBackendView, AgentView } from '../../overwatch/agents.ts';
import type { ClusterStatus } from '../../overwatch/cluster-status.ts';
import { formatFields, formatTable } from './table.ts';

/** GET /api/v1/version. */
export interface VersionResponse {
  readonly version: string;
  readonly node_version: string;
  readonly platform: string;
  readonly generated_at: string;
}
export interface ServersResponse {
  readonly servers: readonly ServerView[];
  readonly generated_at: string;
}
export interface RegionsResponse {
  readonly regions: readonly RegionView[];
  readonly generated_at: string;
}
export interface DomainsResponse {
  readonly domains: readonly DomainView[];
  readonly generated_at: string;
}
export interface OverridesResponse {
  readonly overrides: readonly OverrideView[];
}

/** Names a reload added, removed and changed. */
export interface ChangeListJson {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

/** One config problem as POST /api/v1/reload reports it. */
export interface ProblemJson {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly path: string;
  readonly message: string;
  readonly text: string;
}

/** POST /api/v1/reload, and last_reload of GET /api/v1/status. */
export interface ReloadResponse {
  readonly result: 'success' | 'failure';
  readonly generation: number;
  readonly message: string;
  readonly files: readonly string[];
  readonly changes: { readonly domains: ChangeListJson; readonly servers: ChangeListJson } | null;
  readonly problems: readonly ProblemJson[];
  /** The new config's warnings on success (absent from servers before they were reported). */
  readonly warnings?: readonly ProblemJson[];
  readonly at: string;
  readonly error?: string;
}

/** GET /api/v1/status. */
export interface ConfigStatusResponse {
  readonly version: string;
  readonly generation: number;
  readonly config: { readonly file: string; readonly generation: number | null; readonly loaded_at: string | null };
  readonly reloads: { readonly success: number; readonly failure: number };
  readonly last_reload: ReloadResponse | null;
  readonly last_failed_reload: { readonly at: string; readonly message: string; readonly problems: number } | null;
  readonly generated_at: string;
}

/** GET /api/v1/overwatch/agents. */
export interface AgentsResponse {
  readonly channel_enabled: boolean;
  readonly agents: readonly AgentView[];
  readonly messages: Readonly<Record<string, number>> | null;
  readonly drops: Readonly<Record<string, number>> | null;
  readonly generated_at: string;
}
/** GET /api/v1/overwatch/agents/{id}. */
export interface AgentResponse {
  readonly agent: AgentView;
  readonly backends: readonly AgentBackendView[];
  readonly generated_at: string;
}

/** Everything `status` fetched, and where from. */
export interface StatusData {
  readonly api: string;
  readonly version: VersionResponse;
  readonly readiness: Readiness;
  readonly regions: RegionsResponse;
  readonly domains: DomainsResponse;
  readonly overrides: OverridesResponse;
  readonly config: ConfigStatusResponse;
}

/** "-" for what the API reports as null (not yet, none). */
const NONE = '-';

/** Formats milliseconds of latency as "12.3ms", or "-" when there is no measurement yet. */
export function formatLatency(ms: number | null): string {
  return ms === null ? NONE : `${ms.toFixed(1)}ms`;
}

/** Formats how long before `nowIso` the time `iso` was, coarsely ("7s ago", "3m ago", "2h ago", "4d ago"); "-" for null. */
export function formatAge(iso: string | null, nowIso: string): string {
  if (iso === null) return NONE;
  const ms = Date.parse(nowIso) - Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

function percent(n: number, total: number): string {
  return total === 0 ? NONE : `${((n / total) * 100).toFixed(1)}%`;
}

function yesNo(b: boolean): string {
  return b ? 'yes' : 'no';
}

/** `status`: version, readiness, servers per region, domain and override counts. */
export function formatStatus(d: StatusData): string {
  const r = d.readiness;
  const ready = r.ready ? 'yes' : `no${r.message ? `: ${r.message}` : ''}`;
  const active = d.overrides.overrides.filter((o) => o.active);
  const inactive = d.overrides.overrides.length - active.length;
  const c = d.config;
  const now = c.generated_at;
  const loaded = c.config.loaded_at === null ? '' : `, loaded ${c.config.loaded_at} (${formatAge(c.config.loaded_at, now)})`;
  const generation = c.config.generation === null ? `snapshot generation ${c.generation}` : `generation ${c.config.generation}${c.generation !== c.config.generation ? ` (snapshot generation ${c.generation})` : ''}`;
  const failed = c.last_failed_reload;
  let out = `OpenGSLB ${d.version.version} at ${d.api}\n`;
  out += formatFields([
    ['Runtime', `Node ${d.version.node_version}, ${d.version.platform}`],
    ['Ready', `${ready} (DNS listening: ${yesNo(r.dns_ready)}, first health round done: ${yesNo(r.health_ready)})`],
    ['Config', `${c.config.file}, ${generation}${loaded}`],
    ['Reloads', `${c.reloads.success} succeeded, ${c.reloads.failure} failed`],
    ['Last failed', failed === null ? 'none' : `${failed.at} (${formatAge(failed.at, now)}): ${failed.message}${failed.problems > 1 ? ` (and ${failed.problems - 1} more problems)` : ''}`],
    ['Domains', String(d.domains.domains.length)],
    ['Overrides', `${active.length} active${inactive > 0 ? `, ${inactive} waiting for their domain or server to return` : ''}`],
  ]);
  out += '\n';
  const regions = d.regions.regions;
  if (regions.length === 0) {
    out += 'No regions.\n';
  } else {
    const total = { servers: 0, healthy: 0, unhealthy: 0, unknown: 0 };
    const rows = regions.map((g) => {
      total.servers += g.total_servers;
      total.healthy += g.healthy_count;
      total.unhealthy += g.unhealthy_count;
      total.unknown += g.unknown_count;
      return [g.name, String(g.total_servers), String(g.healthy_count), String(g.unhealthy_count), String(g.unknown_count), percent(g.healthy_count, g.total_servers)];
    });
    if (regions.length > 1) {
      rows.push(['(all)', String(total.servers), String(total.healthy), String(total.unhealthy), String(total.unknown), percent(total.healthy, total.servers)]);
    }
    out += formatTable(['REGION', 'SERVERS', 'HEALTHY', 'UNHEALTHY', 'UNKNOWN', 'HEALTHY%'], rows);
  }
  if (active.length > 0) {
    out += '\nActive overrides:\n';
    out += formatTable(['SCOPE', 'TARGET', 'FORCED', 'UNTIL', 'REASON', 'SOURCE'], active.map((o) => [o.scope, targetText(o), forced(o.healthy), o.expires_at ?? NONE, o.reason, o.source]), '  ');
  }
  return out;
}

function forced(healthy: boolean): string {
  return healthy ? 'healthy' : 'unhealthy';
}

/** What an override covers, in words: "192.0.2.1 in app.example.test", "192.0.2.1 in every domain", "region eu-west". */
export function targetText(o: Pick<OverrideView, 'scope' | 'service' | 'address' | 'region'>): string {
  if (o.scope === 'region') return `region ${o.region}`;
  return `${o.address} in ${o.scope === 'server' ? 'every domain' : o.service}`;
}

/** `servers`: one row per configured server with its health-check state. */
export function formatServers(res: ServersResponse, filtered: boolean): string {
  if (res.servers.length === 0) return filtered ? 'No servers match.\n' : 'No servers.\n';
  // Agents' backends (and API servers) get a SOURCE column; a config-only overwatch prints as before.
  const sources = res.servers.some((s) => s.source !== undefined && s.source !== 'config');
  const rows = res.servers.map((s) => [
    s.address,
    String(s.port),
    s.region,
    ...(sources ? [sourceOf(s)] : []),
    s.status,
    s.authority,
    formatLatency(s.latency_ms),
    formatAge(s.last_check, res.generated_at),
    s.last_error ?? NONE,
  ]);
  let out = formatTable(['ADDRESS', 'PORT', 'REGION', ...(sources ? ['SOURCE'] : []), 'STATUS', 'AUTHORITY', 'LATENCY', 'LAST-CHECK', 'LAST-ERROR'], rows);
  const overridden = res.servers.filter((s) => s.overrides.length > 0);
  if (overridden.length > 0) {
    // STATUS is the checks' verdict; an override changes the answer only in its own domain, so say where.
    out += '\nOverrides (they decide instead of STATUS, in the domain named):\n';
    const lines: string[][] = [];
    for (const s of overridden) {
      for (const o of s.overrides) lines.push([o.service, s.address, String(s.port), forced(o.healthy), o.scope, o.expires_at ?? NONE, o.reason, o.source]);
    }
    out += formatTable(['SERVICE', 'ADDRESS', 'PORT', 'FORCED', 'SCOPE', 'UNTIL', 'REASON', 'SOURCE'], lines, '  ');
  }
  return out;
}

/** "config", "api", or "agent ID → SERVICE" for an agent's backend. */
function sourceOf(s: ServerView): string {
  if (s.source === 'agent') return `agent ${s.agent_id ?? '?'}${s.service === null ? '' : ` → ${s.service}`}`;
  return s.source ?? 'config';
}

function whenAllDown(d: DomainView): string {
  return d.when_all_down === 'fallback' ? `fallback ${d.fallback.join(',')}` : d.when_all_down;
}

function healthyOf(d: DomainView): string {
  let healthy = 0;
  for (const s of d.servers) if (s.status === 'healthy') healthy++;
  return `${healthy}/${d.servers.length}`;
}

/** `domains`: one row per domain; with `withServers`, each domain's servers as DNS sees them below it. */
export function formatDomains(res: DomainsResponse, withServers: boolean): string {
  if (res.domains.length === 0) return 'No domains.\n';
  const header = ['NAME', 'ALGORITHM', 'TTL', 'SERVERS', 'WHEN-ALL-DOWN'];
  const row = (d: DomainView): string[] => [d.name, d.algorithm, String(d.ttl), healthyOf(d), whenAllDown(d)];
  if (!withServers) return formatTable(header, res.domains.map(row));
  const blocks: string[] = [];
  for (const d of res.domains) {
    let block = formatTable(header, [row(d)]);
    block += d.servers.length === 0 ? '  (no servers)\n' : formatTable(['ADDRESS', 'PORT', 'REGION', 'WEIGHT', 'PRIORITY', 'STATUS', 'AUTHORITY', 'OVERRIDE'], d.servers.map(domainServerRow), '  ');
    blocks.push(block);
  }
  return blocks.join('\n');
}

function domainServerRow(s: DomainServerView): string[] {
  const o = s.override;
  const note = o === null ? NONE : `${o.reason} (${[o.source, o.scope === 'domain' ? null : targetText(o), o.expires_at === null ? null : `until ${o.expires_at}`].filter((x) => x !== null).join('; ')})`;
  return [s.address, String(s.port), s.region, String(s.weight), String(s.priority), s.status, s.authority, note];
}

/** `overrides list`. */
export function formatOverrides(res: OverridesResponse): string {
  if (res.overrides.length === 0) return 'No overrides.\n';
  const rows = res.overrides.map((o) => [o.scope, targetText(o), forced(o.healthy), yesNo(o.active), o.expires_at ?? NONE, o.reason, o.source, o.created_at]);
  return formatTable(['SCOPE', 'TARGET', 'FORCED', 'ACTIVE', 'UNTIL', 'REASON', 'SOURCE', 'CREATED'], rows);
}

/** `overrides set`: what the API stored. */
export function formatOverrideSet(o: OverrideView): string {
  const until = o.expires_at === null ? '' : ` until ${o.expires_at}`;
  let out = `Override set: ${targetText(o)} is ${forced(o.healthy)}${until} (reason: ${o.reason}; source: ${o.source}; at ${o.created_at})\n`;
  if (!o.active) {
    out += `Not active: nothing it covers is in the served config. The override is kept and applies if it returns.\n`;
  }
  return out;
}

/** `overrides clear`: what was removed; `was` is the override as listed just before, when it was found. */
export function formatOverrideCleared(target: string, was: OverrideView | null): string {
  // A wider override (server over domain, region over both) may still cover what this one did.
  const then = was?.scope === 'region' ? 'the health checks decide again' : 'the health checks decide again, unless a wider override covers it';
  if (was === null) return `Override cleared: ${target}; ${then}.\n`;
  const until = was.expires_at === null ? '' : `, until ${was.expires_at}`;
  return `Override cleared: ${targetText(was)} was forced ${forced(was.healthy)} (reason: ${was.reason}; source: ${was.source}; since ${was.created_at}${until}); ${then}.\n`;
}

/** One change list as "+a +b -c ~d", or "no change". */
function changeLine(c: ChangeListJson): string {
  const parts = [...c.added.map((n) => `+${n}`), ...c.removed.map((n) => `-${n}`), ...c.changed.map((n) => `~${n}`)];
  return parts.length === 0 ? 'no change' : parts.join(' ');
}

/**
 * `reload` that succeeded: the generation now serving, the files read, what
 * changed (+ added, - removed, ~ changed), then each config warning as
 * `warning: FILE:LINE:COL: path: message`.
 */
export function formatReload(r: ReloadResponse): string {
  const files = r.files.length === 0 ? '' : ` from ${r.files[0]}${r.files.length > 1 ? ` and ${r.files.length - 1} more files` : ''}`;
  let out = `Reloaded${files}: serving generation ${r.generation}\n`;
  if (r.changes !== null) {
    out += formatFields([
      ['Domains', changeLine(r.changes.domains)],
      ['Servers', changeLine(r.changes.servers)],
    ]);
  }
  for (const w of r.warnings ?? []) out += `warning: ${w.text}\n`;
  return out;
}

/**
 * `reload` that failed, as error lines that each begin with `program`: that
 * it failed and which generation still serves, then every problem as
 * FILE:LINE:COL: path: message (or the refusal's reason).
 */
export function formatReloadFailure(program: string, r: ReloadResponse): string {
  let out = `${program}: reload failed; the previous config still serves (generation ${r.generation})\n`;
  if (r.problems.length === 0) return out + `${program}: ${r.message}\n`;
  for (const p of r.problems) out += `${program}: ${p.text}\n`;
  return out;
}

/** GET /api/v1/geo/test. */
export type GeoTestResponse = GeoTestResult;
/** One mapping of GET/PUT/DELETE /api/v1/geo/mappings. */
export type GeoMappingResponse = GeoMappingView;
export interface GeoMappingsResponse {
  readonly mappings: readonly GeoMappingView[];
}

const MATCH_WORDS: Readonly<Record<string, string>> = {
  custom_mapping: 'custom mapping',
  geoip: 'GeoIP database (country, else continent)',
  default: 'default_region',
  none: 'nothing (no mapping, no database match, no default_region)',
};

/** `geo test`. */
export function formatGeoTest(r: GeoTestResponse): string {
  return formatFields([
    ['Address', r.ip],
    ['Region', r.region ?? NONE],
    ['Decided by', MATCH_WORDS[r.match_type] ?? r.match_type],
    ['Custom mapping', r.matched_cidr ?? NONE],
    ['Country', r.country ?? NONE],
    ['Continent', r.continent ?? NONE],
    ['GeoIP network', r.geoip_network ?? NONE],
    ['ECS scope', `/${r.scope_prefix_length}`],
  ]);
}

/** `geo mappings list`. */
export function formatGeoMappings(res: GeoMappingsResponse): string {
  if (res.mappings.length === 0) return 'No custom mappings.\n';
  const rows = res.mappings.map((m) => [m.cidr, m.region, m.source, yesNo(m.active), m.comment ?? NONE, m.created_at ?? NONE]);
  return formatTable(['CIDR', 'REGION', 'SOURCE', 'ACTIVE', 'COMMENT', 'CREATED'], rows);
}

/** `agents list`: one row per agent, then the channel's drops when there were any. */
export function formatAgents(res: AgentsResponse): string {
  if (!res.channel_enabled) return 'The agent channel is off on this overwatch (overwatch.gossip.encryption_key is not set).\n';
  // The revocation reason only when some agent is revoked (as formatServers' SOURCE column).
  const revoked = res.agents.some((a) => a.revoked_at !== null);
  let out = res.agents.length === 0
    ? 'No agents.\n'
    : formatTable(
      ['AGENT', 'REGION', 'STATE', 'BACKENDS', 'LAST-SEEN', 'CERT-UNTIL', 'SERVICES', 'VERSION', ...(revoked ? ['REVOKED-FOR'] : [])],
      res.agents.map((a) => [
        a.agent_id, a.region, a.state, String(a.backend_count), formatAge(a.last_seen, res.generated_at), certificateUntil(a.certificate_not_after, res.generated_at),
        a.services.join(',') || NONE, a.version ?? NONE, ...(revoked ? [a.revoked_at === null ? NONE : (a.revoked_reason ?? NONE)] : []),
      ]),
    );
  const drops = Object.entries(res.drops ?? {}).filter(([, n]) => n > 0);
  if (drops.length > 0) {
    out += `\nDropped messages (docs/agents.md says why each is dropped):\n`;
    out += formatTable(['REASON', 'COUNT'], drops.map(([reason, n]) => [reason, String(n)]), '  ');
  }
  return out;
}

/** The day a certificate ends (UTC), "(expired)" once past `now`. */
function certificateUntil(notAfter: string | null, now: string): string {
  if (notAfter === null) return NONE;
  return Date.parse(notAfter) < Date.parse(now) ? `${notAfter.slice(0, 10)} (expired)` : notAfter.slice(0, 10);
}

/** `agents show`: the agent's fields, then its backends. */
export function formatAgent(res: AgentResponse): string {
  const a = res.agent;
  const load = a.load === null ? NONE : `cpu ${a.load.cpu_percent}%, memory ${a.load.memory_percent}%, errors ${a.load.error_rate_per_min}/min`;
  const fields: [string, string][] = [
    ['Agent', a.agent_id],
    ['Region', a.region],
    // A revoked agent's note repeats the reason the Revoked line gives.
    ['State', a.state + (a.note === null || a.revoked_at !== null ? '' : ` (${a.note})`)],
    ['Services', a.services.join(', ') || NONE],
    ['Version', a.version ?? NONE],
    ['Last seen', a.last_seen === null ? NONE : `${a.last_seen} (${formatAge(a.last_seen, res.generated_at)})`],
    ['Heartbeat every', a.heartbeat_interval_ms === null ? NONE : `${a.heartbeat_interval_ms / 1000}s`],
    ['Load', load],
    ['Fingerprint', a.fingerprint || NONE],
    ['First seen', a.first_seen ?? NONE],
    ['Certificate until', a.certificate_not_after ?? NONE],
  ];
  if (a.revoked_at !== null) fields.push(['Revoked', `${a.revoked_at}: ${a.revoked_reason ?? ''}`]);
  let out = formatFields(fields);
  if (res.backends.length === 0) return out + '\nNo backends.\n';
  out += '\n' + formatTable(
    ['SERVICE', 'ADDRESS', 'PORT', 'WEIGHT', 'AGENT-SAYS', 'STATE', 'NOTE'],
    res.backends.map((b) => [b.service, b.address, String(b.port), String(b.weight), b.drain_reason === null ? b.agent_health : `${b.agent_health}, draining: ${b.drain_reason}`, b.state, b.problem ?? NONE]),
  );
  return out;
}

/** GET /api/v1/cluster/status. */
export type ClusterStatusResponse = ClusterStatus;

/** `cluster status`: this overwatch, its agents' view, backends by state, then each peer and whether it sees the same. */
export function formatClusterStatus(res: ClusterStatusResponse, api: string): string {
  const b = res.backend_summary;
  const peers = res.peers ?? [];
  const verdict = peers.length === 0 ? 'no peers configured (overwatch.peers)'
    : res.cluster_healthy ? `every peer sees the same agents (${peers.length} of ${peers.length})`
    : `${peers.filter((p) => p.matches === true).length} of ${peers.length} peers see the same agents`;
  let out = formatFields([
    ['Overwatch', `${api} (version ${res.overwatch.version}, up ${res.overwatch.uptime_seconds}s, generation ${res.overwatch.generation})`],
    ['Agents', res.overwatch.agent_channel ? `${res.healthy_agents} live of ${res.agents.length} known; view: ${res.agents_view.count} agents, digest ${res.agents_view.digest.slice(0, 16)}` : 'the agent channel is off'],
    ['Backends', `${b.total} total: ${b.healthy} healthy, ${b.unhealthy} unhealthy, ${b.unknown} unknown; ${b.stale} stale, ${b.draining} draining`],
    ['Cluster', verdict],
  ]);
  if (peers.length > 0) {
    out += '\n' + formatTable(
      ['PEER', 'REACHABLE', 'AGENTS', 'DIGEST', 'MATCHES'],
      peers.map((p) => [p.url, p.reachable ? 'yes' : `no: ${p.error ?? ''}`, p.agent_count === null ? NONE : String(p.agent_count), p.digest === null ? NONE : p.digest.slice(0, 16), p.matches === null ? NONE : p.matches ? 'yes' : 'NO']),
    );
  }
  return out;
}
