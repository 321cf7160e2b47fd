// loadConfigIsolated must be loadConfig in another thread: same config, same
// files, same problems in the same order, same error code.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfigIsolated } from '../../src/config/load-isolated.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';

function dir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'opengslb-isolated-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('loads the same config and file list as loadConfig, deep-frozen', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'main.yaml'), 'includes: [more.yaml]\ndns: { zones: [example.test] }\ndomains: [{ name: app.example.test, regions: [r] }]\n', { mode: 0o600 });
  writeFileSync(join(d, 'more.yaml'), 'regions: [{ name: r, servers: [{ address: 192.0.2.1 }] }]\n', { mode: 0o600 });
  const direct = await loadConfig(join(d, 'main.yaml'));
  const isolated = await loadConfigIsolated(join(d, 'main.yaml'));
  assert.deepEqual(isolated, direct);
  assert.ok(Object.isFrozen(isolated.config.regions[0].servers[0]));
});

test('rejects with the same ConfigError, problems and order as loadConfig', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'main.yaml'), 'includes: [b.yaml]\ndns: { zones: [example.test], default_ttl: x }\ndomains: [{ name: app.example.test, regions: [nope] }]\n', { mode: 0o600 });
  writeFileSync(join(d, 'b.yaml'), 'regions: [{ name: r, servers: [{ address: 192.0.2.999 }] }]\n', { mode: 0o600 });
  const direct = await loadConfig(join(d, 'main.yaml')).then(() => null, (e: unknown) => e);
  const isolated = await loadConfigIsolated(join(d, 'main.yaml')).then(() => null, (e: unknown) => e);
  assert.ok(direct instanceof ConfigError && isolated instanceof ConfigError);
  assert.equal(isolated.code, direct.code);
  assert.equal(isolated.message, direct.message);
  assert.deepEqual(isolated.problems, direct.problems);
  assert.ok(direct.problems.length >= 3);
});

test('rejects a world-writable file with the permissions code', async (t) => {
  const d = dir(t);
  const file = join(d, 'main.yaml');
  writeFileSync(file, 'dns: {}\n');
  chmodSync(file, 0o666);
  const err = await loadConfigIsolated(file).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof ConfigError);
  assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
});
