// Main thread, cold path. Turns one check per server into deduplicated check
// targets: servers whose checks have identical settings share one probe.

import type { HealthCheckConfig, ServerConfig } from '../config/types.ts';
import { targetKey } from './types.ts';
import type { CheckedServer, CheckSpec, CheckTarget } from './types.ts';

/**
 * Derives the check of one configured server from its region's health_check:
 * check_address/check_port (already defaulted to the server's address/port by
 * the config loader) and the server-level `host`.
 */
export function specFor(healthCheck: HealthCheckConfig, server: ServerConfig): CheckSpec {
  return {
    type: healthCheck.type,
    address: server.checkAddress,
    port: server.checkPort,
    host: server.host,
    path: healthCheck.path,
    expectedStatus: healthCheck.expectedStatus,
    headers: healthCheck.headers,
    bodyMatch: healthCheck.bodyMatch,
    tlsVerify: healthCheck.tlsVerify,
    keepAlive: healthCheck.keepAlive,
    intervalMs: healthCheck.intervalMs,
    timeoutMs: healthCheck.timeoutMs,
    failureThreshold: healthCheck.failureThreshold,
    successThreshold: healthCheck.successThreshold,
    emaAlpha: healthCheck.emaAlpha,
  };
}

/** One server's check as the overwatch derives it from the config. */
export interface ServerCheck {
  readonly spec: CheckSpec;
  /** The server's live slot (health and latency). */
  readonly slot: number;
  readonly server: CheckedServer;
}

/**
 * Groups server checks by targetKey(spec): one CheckTarget per distinct spec,
 * carrying every slot and label behind it, in first-seen order. The first
 * server's spec object is kept; the others are equal by key.
 */
export function groupTargets(checks: readonly ServerCheck[]): CheckTarget[] {
  const byKey = new Map<string, { key: string; spec: CheckSpec; slots: number[]; servers: CheckedServer[] }>();
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i];
    const key = targetKey(c.spec);
    let target = byKey.get(key);
    if (target === undefined) {
      target = { key, spec: c.spec, slots: [], servers: [] };
      byKey.set(key, target);
    }
    target.slots.push(c.slot);
    target.servers.push(c.server);
  }
  return [...byKey.values()];
}
