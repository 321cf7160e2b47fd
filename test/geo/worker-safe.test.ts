// The lookup side of src/geo (and src/dns/ecs.ts) is meant for DNS workers:
// walking its imports transitively must find only the worker-safe set of
// STYLE.md §1 plus maxmind, never config, log, registry or the loader
// (database.ts, which reads files and watches them).

import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { importViolations, repoRoot } from '../helpers/imports.ts';

const ENTRIES = ['src/geo/lookup.ts', 'src/geo/cidr-table.ts', 'src/geo/continents.ts', 'src/dns/ecs.ts'];
const ALLOWED = [/^src\/geo\/(lookup|cidr-table|continents)\.ts$/, /^src\/dns\//, /^src\/lib\//];
const ALLOWED_PACKAGES = new Set(['maxmind', 'node:net']);

test('the worker-side geo modules and ecs.ts import only worker-safe modules and maxmind, transitively', () => {
  const { bad, walked } = importViolations(ENTRIES.map((f) => resolve(repoRoot, f)), ALLOWED, ALLOWED_PACKAGES);
  assert.deepEqual(bad, []);
  assert.ok(walked >= 5, `walked ${walked} files`);
});
