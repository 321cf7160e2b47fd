// Main thread, cold path. Turns the config's servers into health-check
// targets: one per distinct probe (src/health/targets.ts groups them), so the
// same address checked with the same settings by several regions is probed
// once and decides every slot behind it.

import type { Config } from '../config/types.ts';
import { groupTargets, specFor, type ServerCheck } from '../health/targets.ts';
import type { CheckTarget } from '../health/types.ts';
import { formatAddress } from '../lib/ip.ts';

/**
 * Builds the check targets for every server that some domain answers with.
 * `slotOf(region, address, port)` gives each server's live slot (the snapshot
 * compiler has allocated them); servers without one are not served and not checked.
 */
export function buildCheckTargets(config: Config, slotOf: (region: string, address: string, port: number) => number | undefined): CheckTarget[] {
  const checks: ServerCheck[] = [];
  for (const region of config.regions) {
    for (const server of region.servers) {
      const slot = slotOf(region.name, server.address, server.port);
      if (slot === undefined) continue;
      const label = `${region.name}/${formatAddress(server.address, server.port)}`;
      checks.push({ spec: specFor(region.healthCheck, server), slot, server: label });
    }
  }
  return groupTargets(checks);
}
