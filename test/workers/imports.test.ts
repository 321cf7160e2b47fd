// Keeps the worker side honest: everything workers/ imports, transitively,
// stays in the worker-safe set of STYLE.md §1 (no config, registry, log,
// pino, overwatch… inside a DNS worker).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// src/routing/ is worker code file by file: the rules (select.ts) and who asked (client.ts). Explain, which
// reads the same rules for the API, lives on the main thread's side (src/overwatch/explain.ts).
// src/geo/ likewise: the lookup side (the shared-memory GeoIP reader and the compiled table), never the loader.
const ALLOWED = [
  /^workers\//, /^src\/dns\//, /^src\/routing\/(select|client)\.ts$/, /^src\/snapshot\/(layout|reader|live-slots)\.ts$/, /^src\/metrics\/counters-layout\.ts$/,
  /^src\/lib\//, /^src\/dnssec\/(sign|denial)\.ts$/, /^src\/geo\/(lookup|cidr-table|continents)\.ts$/,
  /^native\/udp-batch\.ts$/,
];
// node:crypto: src/dnssec/sign.ts signs on a signature-cache miss. node:fs, node:module, node:path and node:url:
// native/udp-batch.ts finds and loads the addon once, at start.
const ALLOWED_PACKAGES = new Set(['node:dgram', 'node:net', 'node:events', 'node:worker_threads', 'maxmind', 'node:crypto', 'node:fs', 'node:module', 'node:path', 'node:url']);

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*import\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)]
    .filter((m) => !/^\s*import\s+type\s/.test(m[0]))
    .map((m) => m[1]);
}

test('worker code imports only worker-safe modules, transitively', () => {
  const start = readdirSync(join(root, 'workers')).filter((f) => f.endsWith('.ts')).map((f) => join(root, 'workers', f));
  const seen = new Set<string>();
  const queue = [...start];
  const bad: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop()!;
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
  assert.ok(seen.size >= 10, `walked ${seen.size} files`);
});
