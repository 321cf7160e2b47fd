// Main thread, cold path. GET /api/v1/cluster/status: this overwatch, the
// agents it hears, its backends by state, and for each configured peer
// (overwatch.peers) whether the peer's view of the agents matches this one.
// Overwatches never agree on anything with each other: each is complete from
// every agent. The check here only says whether two of them see the same
// agents, by a count and a digest of the agents and what they report; it is
// a diagnosis, not a consensus protocol.

import { createHash } from 'node:crypto';
import type { PeerConfig } from '../config/types.ts';
import { AnswerTooLargeError, fetchFailureText, PEER_TRUST_REMEDY, readTextCapped } from '../lib/fetch-failure.ts';
import type { AgentBackendView, AgentView } from './agents.ts';
import type { BackendView } from './backends-view.ts';

/** What a peer and this overwatch compare: how many agents each hears, and a digest of them and their backends. */
export interface AgentsDigest {
  /** Agents that are live or stale (the ones the overwatch answers for, or has just stopped answering for). */
  readonly count: number;
  /** Hex SHA-256 of the sorted lines (see agentsDigest). */
  readonly digest: string;
}

/** One agent as the cluster status lists it (the Go original's fields). */
export interface ClusterAgent {
  readonly agent_id: string;
  readonly region: string;
  readonly status: AgentView['state'];
  readonly last_seen: string | null;
  readonly backend_count: number;
}

/** Backends of every domain (config, agents, API), by what DNS makes of them. */
export interface BackendSummary {
  readonly total: number;
  readonly healthy: number;
  readonly unhealthy: number;
  readonly unknown: number;
  /** Agents' backends whose agent went quiet. */
  readonly stale: number;
  /** Agents' backends their agent drains. */
  readonly draining: number;
}

/** One peer as this overwatch found it. */
export interface PeerStatus {
  readonly url: string;
  /** The peer answered with a cluster status. */
  readonly reachable: boolean;
  /** Why not, or null. */
  readonly error: string | null;
  readonly agent_count: number | null;
  readonly digest: string | null;
  /** Same count and digest as this overwatch's; null when unreachable. */
  readonly matches: boolean | null;
}

export interface ClusterStatus {
  /** Every peer answered and sees the same agents (true with no peers configured). */
  readonly cluster_healthy: boolean;
  readonly overwatch: { readonly version: string; readonly started_at: string; readonly uptime_seconds: number; readonly generation: number; readonly agent_channel: boolean };
  readonly agents: readonly ClusterAgent[];
  readonly healthy_agents: number;
  readonly agents_view: AgentsDigest;
  readonly backend_summary: BackendSummary;
  /** null when asked with peers=false (what peers ask each other, so the question does not go round). */
  readonly peers: readonly PeerStatus[] | null;
  readonly generated_at: string;
}

/** States whose agents count in the view: those whose backends the overwatch holds. */
const HELD: ReadonlySet<string> = new Set(['live', 'stale']);

/**
 * Counts and digests the agents an overwatch holds: for each live or stale
 * agent one line "agent <id> <state> <fingerprint>", and for each of its
 * backends "backend <id> <service> <address> <port> <weight> <agent health> <drain>",
 * sorted, joined with newlines, SHA-256. Two overwatches that heard the same
 * messages give the same digest; a health flip still in flight (under one
 * heartbeat) may show as a mismatch for that long.
 */
export function agentsDigest(agents: readonly AgentView[], backends: readonly AgentBackendView[]): AgentsDigest {
  const held = new Set<string>();
  const lines: string[] = [];
  for (const a of agents) {
    if (!HELD.has(a.state)) continue;
    held.add(a.agent_id);
    lines.push(`agent ${a.agent_id} ${a.state} ${a.fingerprint}`);
  }
  for (const b of backends) {
    if (!held.has(b.agent_id)) continue;
    lines.push(`backend ${b.agent_id} ${b.service} ${b.address} ${b.port} ${b.weight} ${b.agent_health} ${b.drain_reason ?? '-'}`);
  }
  lines.sort();
  return { count: held.size, digest: createHash('sha256').update(lines.join('\n')).digest('hex') };
}

/** Backends by effective state; rows DNS does not answer count in total only. */
export function backendSummary(rows: readonly BackendView[]): BackendSummary {
  let healthy = 0;
  let unhealthy = 0;
  let unknown = 0;
  let stale = 0;
  let draining = 0;
  for (const r of rows) {
    if (r.stale) stale++;
    if (r.draining) draining++;
    if (!r.answered) continue;
    if (r.effective_status === 'healthy') healthy++;
    else if (r.effective_status === 'unhealthy') unhealthy++;
    else unknown++;
  }
  return { total: rows.length, healthy, unhealthy, unknown, stale, draining };
}

/** The Go original's agent rows. */
export function clusterAgents(agents: readonly AgentView[]): ClusterAgent[] {
  return agents.map((a) => ({ agent_id: a.agent_id, region: a.region, status: a.state, last_seen: a.last_seen, backend_count: a.backend_count }));
}

/** How long one peer may take to answer. */
export const PEER_TIMEOUT_MS = 3000;

/**
 * Largest peer answer read: its agent rows take about 150 bytes each, so this
 * holds a million agents; anything longer is not a cluster status.
 */
export const PEER_ANSWER_MAX_BYTES = 256 * 1024 * 1024;

/**
 * Asks every peer for its cluster status (peers=false) in parallel and
 * compares its agents' view with `mine`. A peer that does not answer, answers
 * an error or something that is not a cluster status is unreachable, with why.
 */
export async function askPeers(peers: readonly PeerConfig[], mine: AgentsDigest, timeoutMs = PEER_TIMEOUT_MS, maxBytes = PEER_ANSWER_MAX_BYTES): Promise<PeerStatus[]> {
  return Promise.all(peers.map(async (peer): Promise<PeerStatus> => {
    const url = `${peer.url}/api/v1/cluster/status?peers=false`;
    const fail = (error: string): PeerStatus => ({ url: peer.url, reachable: false, error, agent_count: null, digest: null, matches: null });
    let res: Response;
    let body: unknown;
    try {
      res = await fetch(url, {
        headers: { accept: 'application/json', ...(peer.token === null ? {} : { authorization: `Bearer ${peer.token}` }) },
        signal: AbortSignal.timeout(timeoutMs),
      });
      body = JSON.parse(await readTextCapped(res, maxBytes)) as unknown;
    } catch (err) {
      const e = err as { name?: string };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') return fail(`no answer within ${timeoutMs} ms`);
      if (err instanceof AnswerTooLargeError) return fail(`${err.message}: is the URL the peer's admin API?`);
      if (e instanceof SyntaxError) return fail('the answer is not JSON: is the URL the peer\'s admin API?');
      return fail(fetchFailureText(err, url, PEER_TRUST_REMEDY));
    }
    if (res.status !== 200) {
      const message = typeof (body as { error?: unknown })?.error === 'string' ? (body as { error: string }).error : 'no error message';
      return fail(`HTTP ${res.status}: ${message}`);
    }
    // `?.`: the body may be any JSON, null included (a URL that is not a peer's admin API); it must not fail the whole status.
    const view = (body as { agents_view?: { count?: unknown; digest?: unknown } } | null)?.agents_view;
    if (typeof view?.count !== 'number' || typeof view.digest !== 'string') return fail('the answer has no agents_view: is the URL the peer\'s admin API?');
    return { url: peer.url, reachable: true, error: null, agent_count: view.count, digest: view.digest, matches: view.count === mine.count && view.digest === mine.digest };
  }));
}
