// Keeps the worker side honest: everything workers/ imports, transitively,
// stays in the worker-safe set of STYLE.md §1 (no config, registry, log,
// pino, overwatch… inside a DNS worker).

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { importViolations, repoRoot } from '../helpers/imports.ts';

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

test('worker code imports only worker-safe modules, transitively', () => {
  const start = readdirSync(join(repoRoot, 'workers')).filter((f) => f.endsWith('.ts')).map((f) => join(repoRoot, 'workers', f));
  const { bad, walked } = importViolations(start, ALLOWED, ALLOWED_PACKAGES);
  assert.deepEqual(bad, []);
  assert.ok(walked >= 10, `walked ${walked} files`);
});
