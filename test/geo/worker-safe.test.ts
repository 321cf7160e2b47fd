// The lookup side of src/geo (and src/dns/ecs.ts) is meant for DNS workers:
// walking its imports transitively must find only the worker-safe set of
// STYLE.md §1 plus maxmind, never config, log, registry or the loader
// (database.ts, which reads files and watches them).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRIES = ['src/geo/lookup.ts', 'src/geo/cidr-table.ts', 'src/geo/continents.ts', 'src/dns/ecs.ts'];
const ALLOWED = [/^src\/geo\/(lookup|cidr-table|continents)\.ts$/, /^src\/dns\//, /^src\/lib\//];
const ALLOWED_PACKAGES = new Set(['maxmind', 'node:net']);

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*import\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)]
    .filter((m) => !/^\s*import\s+type\s/.test(m[0]))
    .map((m) => m[1]);
}

test('the worker-side geo modules and ecs.ts import only worker-safe modules and maxmind, transitively', () => {
  const queue = ENTRIES.map((f) => resolve(root, f));
  const seen = new Set<string>();
  const bad: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of importsOf(file)) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec);
        const rel = relative(root, target);
        if (!ALLOWED.some((re) => re.test(rel))) bad.push(`${relative(root, file)} imports ${rel}`);
        else queue.push(target);
      } else if (!ALLOWED_PACKAGES.has(spec)) {
        bad.push(`${relative(root, file)} imports package ${spec}`);
      }
    }
  }
  assert.deepEqual(bad, []);
  assert.ok(seen.size >= 5, `walked ${seen.size} files`);
});
