// The real server process (src/cli/opengslb.js) and its DNSSEC inputs: a key
// that was damaged in the store, a data directory it cannot write, DNSSEC
// turned off without the acknowledgment and an algorithm it does not sign
// with all stop the start with exit 1 and a message that says which and what
// to do; it never answers (and so never signs) from such a state. A good
// start logs the new key's DS and a restart signs with the same key.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { ensureZoneKeys } from '../../src/dnssec/keys.ts';
import { LmdbStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { run, SERVER, startOpengslb } from '../helpers/child.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-dnssec-start-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function config(dataDir: string, dnssec = ''): string {
  return [
    'dns:',
    '  listen_address: "127.0.0.1:0"',
    '  workers: 1',
    '  zones: [example.test]',
    '  nameservers: [{ name: ns1.example.test, addresses: [127.0.0.1] }]',
    'regions:',
    '  - name: eu',
    '    servers: [{ address: 192.0.2.10 }]',
    '    health_check: { type: none }',
    'domains:',
    '  - { name: app.example.test, regions: [eu] }',
    'logging: { level: info, format: json }',
    'api: { enabled: false }',
    'metrics: { enabled: false }',
    'overwatch:',
    `  data_dir: "${dataDir}"`,
    ...(dnssec === '' ? [] : [`  dnssec: ${dnssec}`]),
    '',
  ].join('\n');
}

async function writeConfig(dir: string, text: string): Promise<string> {
  const file = join(dir, 'config.yaml');
  await writeFile(file, text, { mode: 0o600 });
  return file;
}

test('a key damaged in the store stops the start, naming the store, the zone and the key tag', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'state');
  const store = LmdbStore.open(data);
  const { zones } = await ensureZoneKeys(store, ['example.test'], 'ECDSAP256SHA256');
  await store.close();
  const tag = zones.get('example.test')!.active.info.keyTag;
  // Overwrite the stored private key with bytes that are not a key.
  const root = open({ path: join(data, 'state.mdb'), maxDbs: 8 });
  // Keys are stored under the lmdb array key [zone, key tag] (src/state/store.ts).
  const db = root.openDB<string, [string, number]>({ name: 'dnssec_keys', encoding: 'string' });
  const stored = JSON.parse(db.get(['example.test', tag]) as string) as Record<string, unknown>;
  await db.put(['example.test', tag], JSON.stringify({ ...stored, privateKeyPkcs8: Buffer.from('garbage').toString('base64') }));
  await root.close();

  const r = await run(SERVER, ['--config', await writeConfig(dir, config(data))]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`state\\.mdb: DNSSEC key ${tag} of zone example\\.test is corrupt: the private key does not parse as PKCS#8`));
  assert.match(r.stderr, /Restore overwatch\.data_dir from a backup, or remove the key/);
  assert.doesNotMatch(r.stdout, /DNS listening/, 'it never answers with a key it could not check');
});

test('a data directory that cannot be created stops the start with what to do', async (t) => {
  const dir = await tempDir(t);
  const blocker = join(dir, 'file');
  await writeFile(blocker, 'not a directory');
  const r = await run(SERVER, ['--config', await writeConfig(dir, config(join(blocker, 'state')))]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot open the state database .*file\/state\/state\.mdb \(overwatch\.data_dir: .*\): ENOTDIR.*; .*\/file is a file, expected a directory on the way to .*\/file\/state: point overwatch\.data_dir at a directory, or move .*\/file aside/);
});

test('a data directory the user may not write stops the start', { skip: process.getuid?.() === 0 ? 'running as root, who may write any directory' : process.platform === 'win32' }, async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'readonly');
  await mkdir(data);
  await chmod(data, 0o500);
  t.after(() => chmod(data, 0o700));
  const r = await run(SERVER, ['--config', await writeConfig(dir, config(data))]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /cannot open the state database .*readonly\/state\.mdb/);
});

test('DNSSEC turned off without the acknowledgment stops the start and prints the line to copy', async (t) => {
  const dir = await tempDir(t);
  const r = await run(SERVER, ['--config', await writeConfig(dir, config(join(dir, 'state'), '{ enabled: false }'))]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /overwatch\.dnssec\.enabled: is false without the acknowledgment/);
  assert.match(r.stderr, /security_acknowledgment: "/);
});

test('an algorithm we do not sign with stops the start, naming the ones we do', async (t) => {
  const dir = await tempDir(t);
  const r = await run(SERVER, ['--config', await writeConfig(dir, config(join(dir, 'state'), '{ algorithm: RSASHA256 }'))]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /overwatch\.dnssec\.algorithm: .*RSASHA256.*ECDSAP256SHA256.*ED25519/);
});

test('the first start logs the new key with its DS, and a restart signs with the same key', async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, config(join(dir, 'state')));
  const first = await startOpengslb(t, file);
  const line = await first.out.waitFor(/DNSSEC key created/, 0, 5000);
  const m = /example\.test\. IN DS (\d+) 13 2 ([0-9A-F]{64})/.exec(line);
  assert.ok(m, line);
  assert.doesNotMatch(first.out.text + first.err.text, /pkcs8|PRIVATE KEY/i);
  const signed = await ask(first.port, 'app.example.test', 'A', { edns: { do: true } });
  const sig = (signed.answers ?? []).find((a) => a.type === 'RRSIG') as unknown as { data: { keyTag: number } };
  assert.equal(sig.data.keyTag, Number(m[1]));
  first.child.kill('SIGTERM');
  assert.equal((await first.exited).code, 0);

  const second = await startOpengslb(t, file);
  assert.doesNotMatch(second.out.text, /DNSSEC key created/);
  const again = await ask(second.port, 'app.example.test', 'A', { edns: { do: true } });
  const sig2 = (again.answers ?? []).find((a) => a.type === 'RRSIG') as unknown as { data: { keyTag: number } };
  assert.equal(sig2.data.keyTag, Number(m[1]));
  second.child.kill('SIGTERM');
  await second.exited;
});
