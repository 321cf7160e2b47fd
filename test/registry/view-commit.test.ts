// view() and commit() give exactly what they gave before they were made
// cheaper at scale (member slots held by domain, then server key; slot keys
// built only when asked): the scripted run of ./view-commit-scenario.ts
// against the transcript recorded from the earlier code.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { transcript } from './view-commit-scenario.ts';

test('views and commits give the recorded slots, released slots, slot keys, members and answers, step by step', () => {
  const recorded = JSON.parse(readFileSync(new URL('./fixtures/view-commit-transcript.json', import.meta.url), 'utf8')) as unknown[];
  const now = JSON.parse(JSON.stringify(transcript())) as unknown[];
  assert.equal(now.length, recorded.length);
  for (let i = 0; i < recorded.length; i++) assert.deepEqual(now[i], recorded[i], `step ${i}: ${(recorded[i] as { step: string }).step}`);
  // The run exercises what it is meant to: slots released, released ones reused once freed.
  const released = recorded.flatMap((s) => (s as { released: number[] | null }).released ?? []);
  assert.ok(released.length > 5, 'some slots were released');
});
