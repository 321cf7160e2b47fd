// The admin API as the opengslb binary serves it: started with the overwatch,
// guarded by the token from the config file, driving real DNS answers, and
// following a SIGHUP reload's allowlist.

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startOpengslb } from '../helpers/child.ts';
import { configTree, posixOnly } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';
import { call } from './helpers.ts';

const TOKEN = 'binary-test-token-0123456789';

function config(allowed: string): string {
  return `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }, { address: 192.0.2.2, port: 80 }]
    health_check: { type: none }
domains:
  - { name: both.example.test, regions: [eu], max_answers: 2 }
api: { enabled: true, address: "127.0.0.1:0", allowed_networks: [${allowed}], token: ${TOKEN} }
overwatch: { data_dir: ./state }
logging: { level: info }
`;
}

async function addresses(port: number): Promise<string[]> {
  const r = await ask(port, 'both.example.test', 'A');
  return (r.answers ?? []).map((a) => (a as { data: string }).data).sort();
}

test('the opengslb binary serves the API with its token, drives DNS through overrides and follows a reload of the allowlist', posixOnly, async (t) => {
  // The token is a secret, so the file must not be world-readable.
  const dir = await configTree(t, { 'overwatch.yaml': config('127.0.0.1/32') }, 0o600);
  const file = join(dir, 'overwatch.yaml');
  const server = await startOpengslb(t, file);
  const line = await server.out.waitFor(/API listening/);
  const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
  assert.ok(m, line);
  const base = `http://127.0.0.1:${m[1]}`;

  assert.deepEqual((await call(base, 'GET', '/api/v1/ready')).body, { ready: true, dns_ready: true, health_ready: true });
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal((await call(base, 'GET', '/api/v1/version')).body.version, pkg.version);
  assert.deepEqual(await addresses(server.port), ['192.0.2.1', '192.0.2.2']);

  const path = '/api/v1/overrides/both.example.test/192.0.2.2';
  const body = { healthy: false, reason: 'binary test', source: 'ci' };
  assert.equal((await call(base, 'PUT', path, { body })).status, 401);
  assert.equal((await call(base, 'PUT', path, { body, headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.deepEqual(await addresses(server.port), ['192.0.2.1']);
  await server.out.waitFor(/"msg":"override set"/);
  assert.equal((await call(base, 'DELETE', path, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 204);
  assert.deepEqual(await addresses(server.port), ['192.0.2.1', '192.0.2.2']);

  // A reload that drops 127.0.0.1 from the allowlist applies to the next request; probes stay open.
  const from = server.out.lines.length;
  await writeFile(file, config('10.0.0.0/8'));
  server.child.kill('SIGHUP');
  assert.match(await server.out.waitFor(/reload (succeeded|failed|refused)/, from), /reload succeeded/);
  assert.equal((await call(base, 'GET', '/api/v1/domains')).status, 403);
  assert.equal((await call(base, 'GET', '/api/v1/live')).status, 200);
});
