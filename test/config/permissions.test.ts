// Permission checks of every file read, with real files and real mode bits:
// world-writable files are refused, files that write a secret must not be
// world-readable, and the definition says which keys are secrets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { CONFIG_SCHEMA } from '../../src/config/definition.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import type { Schema } from '../../src/config/schema.ts';
import { configTree, posixOnly, writeTree } from '../helpers/config-files.ts';

const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const BASE = [
  'dns: { listen_address: "127.0.0.1:0" }',
  'regions:',
  '  - name: eu-west',
  '    servers: [{ address: 192.0.2.10 }]',
  'domains:',
  '  - { name: app.example.test, regions: [eu-west] }',
];
const GOSSIP = ['overwatch:', `  gossip: { encryption_key: "${KEY}" }`];

/** Loads main.yaml under `dir` (empty environment unless given) and returns the ConfigError. */
async function refusal(dir: string, env: Record<string, string> = {}): Promise<ConfigError> {
  try {
    await loadConfig(join(dir, 'main.yaml'), { env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected the config to be refused');
}

test('refuses a world-writable included file, naming it and the mode to set, and does not follow its includes', posixOnly, async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...BASE, 'includes: [conf.d/*.yaml]'],
    'conf.d/open.yaml': ['includes: [../never.yaml]'],
  });
  await chmod(join(dir, 'conf.d/open.yaml'), 0o666);
  const err = await refusal(dir);
  assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
  const file = join(dir, 'conf.d/open.yaml');
  // never.yaml does not exist: had the open file been read, a READ problem would be reported too.
  assert.equal(err.message, `${file}: is world-writable (mode 666), so any local user could change what this server answers; run "chmod o-w ${file}" (or set mode 640 or 600)`);
});

test('refuses a world-writable main file', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': BASE }, 0o646);
  const err = await refusal(dir);
  assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
  assert.match(err.message, /main\.yaml: is world-writable \(mode 646\)/);
});

test('reports every unsafe file at once', posixOnly, async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...BASE, 'includes: [a.yaml, b.yaml]'],
    'a.yaml': ['logging: { level: info }'],
    'b.yaml': ['logging: { format: text }'],
  }, 0o666);
  await chmod(join(dir, 'main.yaml'), 0o644);
  const err = await refusal(dir);
  assert.deepEqual(err.problems.map((p) => [p.file.slice(dir.length + 1), p.line, p.message.split(' (')[0]]), [
    ['a.yaml', 0, 'is world-writable'],
    ['b.yaml', 0, 'is world-writable'],
  ]);
});

for (const c of [
  { key: 'overwatch.gossip.encryption_key', lines: GOSSIP, line: 8 },
  { key: 'agent.gossip.encryption_key', lines: ['agent:', `  gossip: { encryption_key: "${KEY}" }`], line: 8 },
  { key: 'agent.identity.service_token', lines: ['agent:', '  identity:', '    service_token: a-long-shared-token-0123'], line: 9 },
  {
    key: 'overwatch.agent_tokens["app.example.test"]',
    // Tokens turn the agent channel on, which needs its key as well.
    lines: ['overwatch:', '  agent_tokens:', '    app.example.test: token-for-app-0123456789', `  gossip: { encryption_key: "${KEY}" }`],
    line: 9,
  },
]) {
  test(`refuses a world-readable file that writes ${c.key}, and accepts it with mode 640`, posixOnly, async (t) => {
    const dir = await configTree(t, { 'main.yaml': [...BASE, ...c.lines] });
    const err = await refusal(dir);
    const file = join(dir, 'main.yaml');
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
    assert.equal(
      err.message,
      `${file}: holds a secret and is world-readable (mode 644): ${c.key} at line ${c.line}; run "chmod o-rw ${file}" (or set mode 640 or 600), or take the value from the environment with \${VAR}`,
    );
    assert.ok(!err.message.includes(KEY), 'the secret itself is never in the message');
    await chmod(file, 0o640);
    await loadConfig(file, { env: {} });
  });
}

test('asks only the file that writes the secret to be private', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': [...BASE, 'includes: [secrets.yaml]'], 'secrets.yaml': GOSSIP });
  const err = await refusal(dir);
  assert.deepEqual(err.problems.map((p) => p.file), [join(dir, 'secrets.yaml')]);
  await chmod(join(dir, 'secrets.yaml'), 0o600);
  const { files } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.equal(files.length, 2, 'main.yaml stays world-readable');
});

test('accepts a world-readable file whose secret comes from the environment alone', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': [...BASE, 'overwatch:', '  gossip: { encryption_key: "${GOSSIP_KEY}" }'] });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: { GOSSIP_KEY: KEY } });
  assert.equal(config.domains.length, 1);
});

test('refuses a world-readable file whose secret falls back to a default written in it', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': [...BASE, 'overwatch:', `  gossip: { encryption_key: "\${GOSSIP_KEY:-${KEY}}" }`] });
  const err = await refusal(dir);
  assert.match(err.message, /holds a secret and is world-readable \(mode 644\): overwatch\.gossip\.encryption_key at line 8/);
});

test('reports unsafe permissions together with the problems of the content', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': [...BASE, ...GOSSIP, 'logging: { level: loud }'] });
  const err = await refusal(dir);
  assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
  assert.equal(err.problems.length, 2);
  assert.match(err.problems[0]?.message ?? '', /holds a secret/);
  assert.match(err.problems[1]?.message ?? '', /"loud" is not a known log level/);
});

test('checks the files again on every load, so a fixed mode is picked up', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': [...BASE, ...GOSSIP] });
  await refusal(dir);
  await writeTree(dir, { 'main.yaml': [...BASE, ...GOSSIP] }, 0o600);
  await loadConfig(join(dir, 'main.yaml'), { env: {} });
});

/** Lists the key paths marked secret in a schema (`[]` for list items, `*` for map values). */
function secretPaths(schema: Schema, path: string): string[] {
  const here = schema.secret === true ? [path] : [];
  switch (schema.kind) {
    case 'object':
      return [...here, ...Object.entries(schema.keys).flatMap(([k, child]) => secretPaths(child, path === '' ? k : `${path}.${k}`))];
    case 'list':
      return [...here, ...secretPaths(schema.items, `${path}[]`)];
    case 'map':
      return [...here, ...secretPaths(schema.values, `${path}.*`)];
    case 'oneOf':
      return [...here, ...schema.variants.flatMap((v) => secretPaths(v, path))];
    default:
      return here;
  }
}

test('marks the gossip keys, the agent token and the agent tokens of the overwatch as secrets in the definition', () => {
  const secrets = secretPaths(CONFIG_SCHEMA, '');
  for (const key of ['overwatch.gossip.encryption_key', 'agent.gossip.encryption_key', 'agent.identity.service_token', 'overwatch.agent_tokens.*']) {
    assert.ok(secrets.includes(key), `${key} is marked secret (marked: ${secrets.join(', ')})`);
  }
});
