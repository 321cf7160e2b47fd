// Test helper: wait for a condition the system reaches on its own (a
// replicated change, a published key), asking again every `stepMs`, failing
// with what was awaited once `limitMs` has passed.

import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

/** Resolves once `ok()` is true; fails with "<what>: not within <limitMs> ms" after `limitMs`. */
export async function eventually(what: string, ok: () => Promise<boolean>, limitMs = 10_000, stepMs = 100): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await ok())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${limitMs} ms`);
    await delay(stepMs);
  }
}
