// Main thread, cold path. Turns the config's servers into health-check
// targets: one per distinct probe, so the same address checked with the same
// settings by several regions or domains is probed once and decides every
// slot behind it.

import type { Config } from '../config/types.ts';
import { targetKey, type CheckSpec, type CheckTarget } from '../health/types.ts';

/**
 * Builds the check targets for every server that some domain answers with.
 * `slotOf(region, address, port)` gives each server's live slot (the snapshot
 * compiler has allocated them); servers without one are not served and not checked.
 */
export function buildCheckTargets(config: Config, slotOf: (region: string, address: string, port: number) => number | undefined): CheckTarget[] {
  const byKey = new Map<string, { spec: CheckSpec; slots: number[]; servers: string[] }>();
  for (const region of config.regions) {
    const hc = region.healthCheck;
    for (const server of region.servers) {
      const slot = slotOf(region.name, server.address, server.port);
      if (slot === undefined) continue;
      const spec: CheckSpec = {
        type: hc.type,
        address: server.checkAddress,
        port: server.checkPort,
        host: server.host,
        path: hc.path,
        expectedStatus: hc.expectedStatus,
        headers: hc.headers,
        bodyMatch: hc.bodyMatch,
        tlsVerify: hc.tlsVerify,
        intervalMs: hc.intervalMs,
        timeoutMs: hc.timeoutMs,
        failureThreshold: hc.failureThreshold,
        successThreshold: hc.successThreshold,
        emaAlpha: hc.emaAlpha,
      };
      const key = targetKey(spec);
      let target = byKey.get(key);
      if (!target) {
        target = { spec, slots: [], servers: [] };
        byKey.set(key, target);
      }
      target.slots.push(slot);
      target.servers.push(`${region.name}/${server.family === 6 ? `[${server.address}]` : server.address}:${server.port}`);
    }
  }
  return [...byKey].map(([key, t]) => ({ key, spec: t.spec, slots: t.slots, servers: t.servers }));
}
