// Main thread, cold path. Turns the servers a registry view serves into
// health-check targets: one per distinct probe (src/health/targets.ts groups
// them), so the same address checked with the same settings by several
// regions is probed once and decides every slot behind it.

import { groupTargets, type ServerCheck } from '../health/targets.ts';
import type { CheckTarget } from '../health/types.ts';
import type { RegistryView } from '../registry/registry.ts';

/**
 * Builds the check targets of every server some domain of `view` answers
 * with and the overwatch checks itself (view.checked: agents' backends only
 * when validated); the others are not checked.
 */
export function buildCheckTargets(view: RegistryView): CheckTarget[] {
  const checks: ServerCheck[] = [];
  for (const server of view.checked) checks.push({ spec: server.check, slot: server.slot, server });
  return groupTargets(checks);
}
