// What survives a restart, through a real lmdb file under overwatch.data_dir:
// an override set through the API holds from the first answer of the next
// process; last-up times let when_all_down: last_healthy answer right after a
// restart; and a write the store refuses is reported, not applied.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { LmdbStore, MemoryStore } from '../../src/state/store.ts';
import { httpBackend } from '../helpers/backends.ts';
import { startOpengslb, type RunningServer } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';

const A = '192.0.2.1';
const B = '192.0.2.2';

const BINARY_CONFIG = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: ${A}, port: 80 }, { address: ${B}, port: 80 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu], max_answers: 2 }
api: { enabled: true, address: "127.0.0.1:0" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;

async function answers(port: number, name = 'app.example.test'): Promise<string[]> {
  const reply = await ask(port, name, 'A');
  return ((reply.answers ?? []) as { data: string }[]).map((a) => a.data).sort();
}

async function apiBase(server: RunningServer): Promise<string> {
  const line = await server.out.waitFor(/API listening/);
  const m = /"address":"(127\.0\.0\.1:\d+)"/.exec(line);
  assert.ok(m, line);
  return `http://${m[1]}`;
}

test('an override set through the API drains a server at once and still holds on the first answer after a restart', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-persist-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, BINARY_CONFIG, { mode: 0o600 });

  const first = await startOpengslb(t, file);
  const base = await apiBase(first);
  assert.deepEqual(await answers(first.port), [A, B]);
  const put = await fetch(`${base}/api/v1/overrides/app.example.test/${A}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ healthy: false, reason: 'kernel upgrade', source: 'persistence-test' }),
  });
  assert.equal(put.status, 200, await put.clone().text());
  assert.deepEqual(await answers(first.port), [B]);
  first.child.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });

  const second = await startOpengslb(t, file);
  // The very first query of the new process: the override was applied before the workers bound.
  assert.deepEqual(await answers(second.port), [B]);
  await second.out.waitFor(/overrides restored/);
  const list = (await (await fetch(`${await apiBase(second)}/api/v1/overrides`)).json()) as { overrides: Record<string, unknown>[] };
  assert.equal(list.overrides.length, 1);
  assert.deepEqual(
    { ...list.overrides[0], created_at: typeof list.overrides[0].created_at },
    {
      scope: 'domain', service: 'app.example.test', address: A, region: null, healthy: false, reason: 'kernel upgrade', source: 'persistence-test',
      created_at: 'string', expires_at: null, authority: 'override', active: true,
    },
  );
  second.child.kill('SIGTERM');
  assert.deepEqual(await second.exited, { code: 0, signal: null });
});

function quietLogger() {
  return createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
}

test('last-up times persist, so when_all_down: last_healthy answers the last good server right after a restart', async (t) => {
  const dir = await tempDir(t, 'opengslb-lastup-');
  const good = await httpBackend(t);
  const yaml = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: ${good.address}, port: ${good.port} }]
    health_check: { type: http, interval: 1s, timeout: 500ms, path: /health }
domains:
  - { name: app.example.test, regions: [eu], when_all_down: last_healthy }
`;
  const config = parseConfigText(yaml, join(dir, 'config.yaml'));
  const store = LmdbStore.open(dir);
  const first = await Overwatch.start(config, quietLogger(), { store });
  assert.deepEqual(await answers(first.port), [good.address]);
  await first.stop(200);

  // Down for good: a fresh process without the stored time would SERVFAIL.
  await good.stop();
  const second = await Overwatch.start(config, quietLogger(), { store });
  // The store closes after the overwatch's last flush, as in the binary.
  t.after(async () => {
    await second.stop(200);
    await store.close();
  });
  assert.equal(second.servers()[0].status, 'unhealthy');
  const reply = await ask(second.port, 'app.example.test', 'A');
  assert.equal(reply.rcode, 'NOERROR');
  assert.deepEqual(((reply.answers ?? []) as { data: string }[]).map((a) => a.data), [good.address]);
  assert.notEqual(second.servers()[0].last_healthy, null);

  const third = await Overwatch.start(config, quietLogger(), {});
  t.after(() => third.stop(200));
  assert.equal((await ask(third.port, 'app.example.test', 'A')).rcode, 'SERVFAIL', 'without the store nothing was ever healthy');
});

test('an override the store cannot write is refused and changes no answer', async (t) => {
  // lmdb cannot be made to fail a write on demand here (no way to fill a disk
  // without privileges), so this store refuses every override the way
  // LmdbStore reports an lmdb error; what is checked is the overwatch's side:
  // persist first, apply only after.
  class FullDiskStore extends MemoryStore {
    override putOverride(): Promise<void> {
      return Promise.reject(new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', 'could not write the override to state.mdb: ENOSPC: no space left on device'));
    }
  }
  const config = parseConfigText(BINARY_CONFIG.replace(/api:.*\n/, ''), 'config.yaml');
  const overwatch = await Overwatch.start(config, quietLogger(), { store: new FullDiskStore(), healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  await assert.rejects(overwatch.setOverride({ scope: 'domain', service: 'app.example.test', address: A }, { healthy: false, reason: 'drain', source: 'test' }), (err: unknown) => {
    assert.ok(err instanceof OpenGslbError);
    assert.equal(err.code, 'OPENGSLB_ERR_STATE_WRITE');
    return true;
  });
  assert.deepEqual(overwatch.overrides(), []);
  assert.deepEqual(await answers(overwatch.port), [A, B]);
});

test('the state directory that cannot be created stops the start with the directory and what to do', async (t) => {
  const dir = await tempDir(t, 'opengslb-nodir-');
  const blocker = join(dir, 'file');
  await writeFile(blocker, 'not a directory');
  assert.throws(() => LmdbStore.open(join(blocker, 'state')), (err: unknown) => {
    assert.ok(err instanceof OpenGslbError);
    assert.equal(err.code, 'OPENGSLB_ERR_STATE_OPEN');
    assert.match(err.message, /overwatch\.data_dir: .*file\/state\): ENOTDIR/);
    assert.ok(err.message.endsWith(`; ${blocker} is a file, expected a directory on the way to ${join(blocker, 'state')}: point overwatch.data_dir at a directory, or move ${blocker} aside`), err.message);
    return true;
  });
});

test('the bus\'s waiting entries persist in the state database: the bytes as put, replaced by key, gone once deleted, across a reopen', async (t) => {
  const dir = await tempDir(t, 'opengslb-bus-pending-store-');
  const first = LmdbStore.open(dir);
  await first.putBusPending({ key: 'override.a', sealed: new Uint8Array([1, 2, 3]) });
  await first.putBusPending({ key: 'geo_mapping.b', sealed: new Uint8Array([4]) });
  await first.putBusPending({ key: 'override.a', sealed: new Uint8Array([5, 6]) });
  await first.close();
  const second = LmdbStore.open(dir);
  t.after(() => second.close());
  const byKey = (store: LmdbStore): Record<string, number[]> => Object.fromEntries(store.loadBusPending().map((e) => [e.key, [...e.sealed]]));
  assert.deepEqual(byKey(second), { 'geo_mapping.b': [4], 'override.a': [5, 6] });
  await second.deleteBusPending('override.a');
  await second.deleteBusPending('never.there');
  assert.deepEqual(byKey(second), { 'geo_mapping.b': [4] });
});

test('a stored region override the config no longer serves (gone, or differing only in case) is kept inactive and named in a warning at start', async (t) => {
  const store = new MemoryStore();
  const stored = { scope: 'region' as const, service: '', address: '', healthy: false, reason: 'maint', source: 'alice', createdAtMs: Date.now(), expiresAtMs: null };
  await store.putOverride({ ...stored, region: 'EU' });
  await store.putOverride({ ...stored, region: 'asia' });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const config = parseConfigText(BINARY_CONFIG.replace(/api:.*\n/, ''), 'config.yaml');
  const overwatch = await Overwatch.start(config, createLogger({ level: 'info', format: 'json' }, sink), { store, healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  // Neither drains region eu: "EU" is not its spelling.
  assert.deepEqual(await answers(overwatch.port), [A, B]);
  assert.deepEqual(overwatch.overrides().map((o) => `${o.region} ${o.active}`).sort(), ['EU false', 'asia false']);
  const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'warn' && /override/.test(l.msg));
  assert.deepEqual(warnings.map((w) => `${w.target}: ${w.expected}`).sort(), [
    'every server of region EU: region names are case-sensitive, expected "eu"',
    'every server of region asia: expected one of: eu',
  ]);
  assert.match(warnings[0].msg, /covers nothing this config serves/);
  // And the operator can delete the obsolete one by its stored spelling.
  assert.equal((await overwatch.clearOverride({ scope: 'region', region: 'EU' }))?.region, 'EU');
  assert.deepEqual(overwatch.overrides().map((o) => o.region), ['asia']);
});
