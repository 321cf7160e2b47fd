// Main thread, cold path. The rows of GET /api/v1/overwatch/backends: the Go
// original's backend listing (one row per domain × server, with the agent,
// validation and override fields), plus where each came from and who
// decides, and the agents' backends DNS does not answer (their service names
// no domain, or their address is a host name) with why. One pass over the
// served members and one over the agents' backends.

import type { TargetStatus } from '../health/types.ts';
import { formatAddress } from '../lib/ip.ts';
import type { Authority, MemberModel, Registry, ServerSource } from '../registry/registry.ts';
import { HEALTH_HEALTHY, HEALTH_UNKNOWN, readHealth } from '../snapshot/live-slots.ts';
import type { AgentHub } from './agents.ts';
import { rfc3339, type HealthState } from './views.ts';

/** One backend of one domain (service), as GET /api/v1/overwatch/backends shows it. */
export interface BackendView {
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly region: string;
  readonly source: ServerSource;
  /** The reporting agent's id; "" for config and API servers. */
  readonly agent_id: string;
  /** What DNS uses for this domain (override applied); unknown when DNS does not answer it. */
  readonly effective_status: HealthState;
  readonly authority: Authority;
  /** Does DNS answer it (for this service)? */
  readonly answered: boolean;
  /** The agent's own checks: true/false, null for unknown or a server no agent reports. */
  readonly agent_healthy: boolean | null;
  readonly agent_last_seen: string | null;
  readonly draining: boolean;
  readonly drain_reason: string | null;
  readonly stale: boolean;
  /** The overwatch's own checks (config servers; agents' backends when validated): true/false, or null. */
  readonly validation_healthy: boolean | null;
  readonly validation_last_check: string | null;
  readonly validation_error: string | null;
  readonly override_status: boolean | null;
  readonly override_reason: string | null;
  readonly override_by: string | null;
  readonly override_at: string | null;
  /** Why DNS does not answer it, or null. */
  readonly note: string | null;
}

export interface BackendRowsInput {
  /** Members of the served snapshot, domains in config order. */
  readonly members: readonly MemberModel[];
  readonly live: Int32Array;
  readonly registry: Registry;
  /** Health-check state by server key. */
  readonly targets: ReadonlyMap<string, TargetStatus>;
  readonly agents: AgentHub | null;
  /** Domains of the config, in order (for agents' backends that no domain answers). */
  readonly domainNames: readonly string[];
}

function verdictOf(word: number): boolean | null {
  return word === HEALTH_UNKNOWN ? null : word === HEALTH_HEALTHY;
}

function stateName(word: number): HealthState {
  return word === HEALTH_HEALTHY ? 'healthy' : word === HEALTH_UNKNOWN ? 'unknown' : 'unhealthy';
}

/** Builds every row: served members first (in domain and member order), then agents' backends DNS does not answer. */
export function backendRows(input: BackendRowsInput): BackendView[] {
  const { registry, agents } = input;
  const out: BackendView[] = [];
  const answered = new Set<string>();
  /** domain|address → the member answering that address: an address answers once per RRset (the registry keeps the first). */
  const heldBy = new Map<string, MemberModel['server']>();
  for (const m of input.members) {
    const server = m.server;
    answered.add(`${m.domain}|${server.key}`);
    if (!heldBy.has(`${m.domain}|${server.address}`)) heldBy.set(`${m.domain}|${server.address}`, server);
    const target = input.targets.get(server.key);
    const o = registry.overrideFor(m.domain, server);
    const agentState = registry.agentStateOf(server.key);
    const validated = registry.checkedByOverwatch(server) && server.check.type !== 'none';
    const seen = agents?.lastSeenOf(server.key) ?? null;
    out.push({
      service: m.domain,
      address: server.address,
      port: server.port,
      weight: server.weight,
      region: server.region,
      source: server.source,
      agent_id: agentState?.agentId ?? '',
      effective_status: stateName(readHealth(input.live, m.memberSlot)),
      authority: registry.authorityOf(server, m.domain),
      answered: true,
      agent_healthy: agentState === undefined || agentState.claim === 'unknown' ? null : agentState.claim === 'healthy',
      agent_last_seen: rfc3339(seen),
      draining: agentState?.drain != null,
      drain_reason: agentState?.drain ?? null,
      stale: agentState?.stale ?? false,
      validation_healthy: validated ? verdictOf(readHealth(input.live, server.slot)) : null,
      validation_last_check: validated ? rfc3339(target?.lastCheckAt) : null,
      validation_error: validated ? (target?.lastError ?? null) : null,
      override_status: o === null ? null : o.healthy,
      override_reason: o === null ? null : o.reason,
      override_by: o === null ? null : o.source,
      override_at: o === null ? null : rfc3339(o.createdAtMs),
      note: null,
    });
  }
  if (agents === null) return out;
  const domains = new Set(input.domainNames);
  for (const b of agents.backends()) {
    const server = b.server_key === null ? undefined : registry.server(b.server_key);
    if (server !== undefined && answered.has(`${b.service}|${server.key}`)) continue;
    let note = b.problem;
    // Its address is a member already (another port, or another region of the domain): an A/AAAA record has no port.
    const holder = server === undefined ? undefined : heldBy.get(`${b.service}|${server.address}`);
    if (note === null && holder !== undefined) {
      note = `${b.address} is answered for ${b.service} by ${holder.region}/${formatAddress(holder.address, holder.port)} already (an address answers once per RRset: the first region's, first listed, keeps it): kept, not answered`;
    }
    if (note === null) {
      note = domains.has(b.service)
        ? `no region of domain ${b.service} is ${b.region}: kept, not answered`
        : `no domain is named ${b.service}: kept, not answered until one is`;
    }
    const agentState = server === undefined ? undefined : registry.agentStateOf(server.key);
    out.push({
      service: b.service,
      address: b.address,
      port: b.port,
      weight: b.weight,
      region: b.region,
      source: 'agent',
      agent_id: b.agent_id,
      effective_status: 'unknown',
      authority: server === undefined ? 'agent' : registry.authorityOf(server, null),
      answered: false,
      agent_healthy: b.agent_health === 'unknown' ? null : b.agent_health === 'healthy',
      agent_last_seen: rfc3339(server === undefined ? null : agents.lastSeenOf(server.key)),
      draining: b.drain_reason !== null,
      drain_reason: b.drain_reason,
      stale: agentState?.stale ?? b.state === 'stale',
      validation_healthy: null,
      validation_last_check: null,
      validation_error: null,
      override_status: null,
      override_reason: null,
      override_by: null,
      override_at: null,
      note,
    });
  }
  return out;
}
