// Main thread, cold path. Turns the servers a registry view serves into
// health-check targets: one per distinct probe (src/health/targets.ts groups
// them), so the same address checked with the same settings by several
// regions is probed once and decides every slot behind it.

import { groupTargets, type ServerCheck } from '../health/targets.ts';
import type { CheckTarget } from '../health/types.ts';
import type { RegistryView } from '../registry/registry.ts';
import { isUnmeasured, LIVE_CAPACITY, latencyWord, UNMEASURED_EMA_US, UNMEASURED_SAMPLES, writeLatency } from '../snapshot/live-slots.ts';

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

/**
 * Writes which served servers latency routing can measure: a server the
 * overwatch does not probe (health_check type none, or an agent's backend
 * view.checked leaves out: no validation) gets the UNMEASURED_* latency
 * words, so latency ranks it after the measured servers rather than waiting
 * for ever for its min_samples; a checked server that carried the mark (its
 * check was type none, or validation was off, before this view) starts again
 * from no samples. Call right after the health scheduler takes the view's
 * targets, before any worker serves the view's snapshot.
 */
export function markMeasured(view: RegistryView, live: Int32Array): void {
  const checked = new Set<number>();
  for (const server of view.checked) if (server.check.type !== 'none') checked.add(server.slot);
  const cap = live[LIVE_CAPACITY];
  for (const server of view.served) {
    const samples = Atomics.load(live, latencyWord(cap, server.slot) + 1);
    if (!checked.has(server.slot)) {
      if (!isUnmeasured(samples)) writeLatency(live, server.slot, UNMEASURED_EMA_US, UNMEASURED_SAMPLES);
    } else if (isUnmeasured(samples)) {
      writeLatency(live, server.slot, 0, 0);
    }
  }
}
