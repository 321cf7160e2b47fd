// Main thread, cold path. What the overwatch believes, shaped as the admin API
// serves it (snake_case JSON, RFC 3339 times in UTC, null for "none yet").
// The Overwatch builds these; the API, the metrics and the CLI only read them.

import type { OverrideScope } from '../registry/overrides.ts';
import type { RoutingAlgorithm } from '../config/types.ts';
import type { Authority, ServerSource } from '../registry/registry.ts';

/** Who decides whether a server is answered: the registry's rule (src/registry/registry.ts authorityOf()). */
export type { Authority };

/** A health verdict as the API reports it. */
export type HealthState = 'healthy' | 'unhealthy' | 'unknown';

/** An operator override: of one server address in one domain (scope domain), of one address in every domain (server), or of every server of a region (region). */
export interface OverrideView {
  readonly scope: OverrideScope;
  /** Domain name, lower case, no trailing dot (scope domain); null otherwise. */
  readonly service: string | null;
  /** IP literal in normal form (scopes domain and server); null for a region. */
  readonly address: string | null;
  /** Region name (scope region); null otherwise. */
  readonly region: string | null;
  readonly healthy: boolean;
  readonly reason: string;
  /** Who set it (a person, a tool): required when setting. */
  readonly source: string;
  readonly created_at: string;
  /** When the health checks decide again (RFC 3339), or null: until cleared. */
  readonly expires_at: string | null;
  readonly authority: 'override';
  /** False while nothing it covers is in the served config (the override is kept and applies again if they return). */
  readonly active: boolean;
}

/** One configured server (region, address, port) and its health-check state. */
export interface ServerView {
  readonly address: string;
  readonly port: number;
  readonly region: string;
  /** Domains that answer this server. */
  readonly domains: readonly string[];
  /** Where it comes from: the config, an agent (its backend), or the API. */
  readonly source: ServerSource;
  /** The one domain a server bound to a service answers (an agent's backend), else null. */
  readonly service: string | null;
  /** The agent that reports it, else null. */
  readonly agent_id: string | null;
  /** The health checks' verdict (overrides are per domain: see `overrides`). */
  readonly status: HealthState;
  readonly healthy: boolean;
  /** `override` when an override applies to this server in at least one domain. */
  readonly authority: Authority;
  readonly check_type: 'http' | 'https' | 'tcp' | 'none';
  readonly last_check: string | null;
  /** When the checks' verdict last changed (the current `status` holds since then), null while unknown. */
  readonly status_since: string | null;
  readonly last_healthy: string | null;
  readonly last_error: string | null;
  readonly consecutive_failures: number;
  readonly consecutive_successes: number;
  /** Latency EMA in milliseconds (null until the first successful check). */
  readonly latency_ms: number | null;
  readonly latency_samples: number;
  /** The override deciding this server, one per domain where one does (of any scope: see Registry.overrideFor). */
  readonly overrides: readonly {
    readonly service: string;
    readonly scope: OverrideScope;
    readonly healthy: boolean;
    readonly reason: string;
    readonly source: string;
    readonly expires_at: string | null;
  }[];
}

/** One server as one domain sees it. */
export interface DomainServerView {
  readonly address: string;
  readonly port: number;
  readonly region: string;
  readonly weight: number;
  /** Failover level: the index of the server's region in the domain's `regions` (0 first). */
  readonly priority: number;
  /** What DNS uses for this domain: the override when there is one, else the checks' verdict. */
  readonly status: HealthState;
  readonly authority: Authority;
  /** The override deciding this server in this domain (the most specific in force), or null. */
  readonly override: OverrideView | null;
}

export interface DomainView {
  readonly name: string;
  readonly zone: string;
  readonly algorithm: RoutingAlgorithm;
  readonly ttl: number;
  readonly max_answers: number;
  readonly when_all_down: 'servfail' | 'last_healthy' | 'all' | 'fallback';
  readonly fallback: readonly string[];
  readonly servers: readonly DomainServerView[];
}

export interface RegionView {
  readonly name: string;
  readonly total_servers: number;
  readonly healthy_count: number;
  readonly unhealthy_count: number;
  readonly unknown_count: number;
  /** healthy / total × 100, one decimal; 0 for a region without servers. */
  readonly health_percent: number;
}

/** A custom geo mapping as the API shows it. */
export interface GeoMappingView {
  /** The network, host bits clear. */
  readonly cidr: string;
  readonly region: string;
  readonly comment: string | null;
  /** `config` (overwatch.geolocation.custom_mappings) or who added it through the API. */
  readonly source: string;
  /** When it was added through the API; null for the config's. */
  readonly created_at: string | null;
  /** False while a run-time mapping does not apply (its region is not served, or the config maps the same network). */
  readonly active: boolean;
}

export interface Readiness {
  readonly ready: boolean;
  /** DNS workers are listening. */
  readonly dns_ready: boolean;
  /** The first health round has finished (no server is answered from an unknown state). */
  readonly health_ready: boolean;
  readonly message?: string;
}

/** Converts epoch milliseconds to RFC 3339 UTC, or null. */
export function rfc3339(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined || ms <= 0 ? null : new Date(ms).toISOString();
}
