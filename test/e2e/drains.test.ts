// Drains that span a server or a region, with an end, against the real
// opengslb binary: overrides of the three scopes set through the API resolve
// as documented (domain over server over region) in real DNS answers and in
// explain; a region drain with expires_in ends at its instant (the answers
// come back, one log line, the counter moves); scopes and ends survive a
// restart; an override that ended while the overwatch was stopped is dropped
// at start; and an override stored by an earlier version (no scope) still
// applies.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { open } from 'lmdb';
import { LmdbStore } from '../../src/state/store.ts';
import { startOpengslb, type RunningServer } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';

const CONFIG = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
    health_check: { type: none }
  - name: us
    servers: [{ address: 192.0.2.3 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu, us], max_answers: 4 }
  - { name: web.example.test, regions: [eu], max_answers: 4 }
api: { enabled: true, address: "127.0.0.1:0" }
metrics: { enabled: true, address: "127.0.0.1:0" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;

interface Fixture {
  readonly server: RunningServer;
  readonly api: string;
  readonly metrics: string;
}

async function start(t: Parameters<typeof startOpengslb>[0], file: string): Promise<Fixture> {
  const server = await startOpengslb(t, file);
  const address = async (re: RegExp): Promise<string> => {
    const line = await server.out.waitFor(re);
    const m = /"address":"(127\.0\.0\.1:\d+)"/.exec(line);
    assert.ok(m, line);
    return `http://${m[1]}`;
  };
  return { server, api: await address(/API listening/), metrics: await address(/metrics listening/) };
}

async function answers(f: Fixture, name: string): Promise<string[] | string> {
  const reply = await ask(f.server.port, name, 'A');
  const rcode = (reply as { rcode?: string }).rcode;
  if (rcode !== 'NOERROR') return rcode ?? '?';
  return ((reply.answers ?? []) as { data: string }[]).map((a) => a.data).sort();
}

async function put(f: Fixture, path: string, body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const res = await fetch(`${f.api}/api/v1/overrides/${path}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: 'ops', ...body }) });
  return { status: res.status, body: await res.json() };
}

async function get(f: Fixture, path: string): Promise<any> {
  return (await fetch(`${f.api}${path}`)).json();
}

async function metric(f: Fixture, line: RegExp): Promise<string> {
  const text = await (await fetch(`${f.metrics}/metrics`)).text();
  const hit = text.split('\n').find((l) => line.test(l));
  assert.ok(hit !== undefined, `no metric line ${line}`);
  return hit.split(' ').at(-1) as string;
}

test('overrides of the three scopes resolve most specific first, a region drain ends at its time, and all of it survives restarts', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-drains-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, CONFIG, { mode: 0o600 });
  let f = await start(t, file);
  assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);

  await t.test('a region drain takes every server of the region out of every domain', async () => {
    // 2 s: long enough for the next three steps (a few requests each) to see the drain on a loaded machine, and
    // the expiry step below waits out what is left of it.
    const r = await put(f, 'region/eu', { healthy: false, reason: 'network work', expires_in: '2s' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.scope, 'region');
    assert.equal(r.body.region, 'eu');
    assert.equal(r.body.service, null);
    // expires_in counts from the request's arrival: 2 s after created_at, within the handling time.
    const span = Date.parse(r.body.expires_at) - Date.parse(r.body.created_at);
    assert.ok(span > 1900 && span <= 2000, `${r.body.created_at} → ${r.body.expires_at}`);
    assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.3']);
    assert.equal(await answers(f, 'web.example.test'), 'SERVFAIL');
  });

  await t.test('a server override outranks the region drain, in every domain', async () => {
    assert.equal((await put(f, 'server/192.0.2.1', { healthy: true, reason: 'needed' })).status, 200);
    assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.1', '192.0.2.3']);
    assert.deepEqual(await answers(f, 'web.example.test'), ['192.0.2.1']);
  });

  await t.test('a (domain, address) override outranks both, in its domain only', async () => {
    assert.equal((await put(f, 'web.example.test/192.0.2.1', { healthy: false, reason: 'bad deploy' })).status, 200);
    assert.equal(await answers(f, 'web.example.test'), 'SERVFAIL');
    assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.1', '192.0.2.3']);
  });

  await t.test('explain names the scope and the end of the override that decided each server', async () => {
    const e = await get(f, '/api/v1/explain?name=web.example.test');
    const one = e.candidates.find((c: { address: string }) => c.address === '192.0.2.1');
    const two = e.candidates.find((c: { address: string }) => c.address === '192.0.2.2');
    assert.equal(one.override.scope, 'domain');
    assert.equal(one.reason, 'overridden down by ops (this domain only, until cleared): bad deploy');
    assert.equal(two.override.scope, 'region');
    assert.match(two.reason, /^overridden down by ops \(region eu, until \d{4}-\d\d-\d\dT[\d:.]+Z\): network work$/);
    assert.equal(await metric(f, /^opengslb_overwatch_overrides_active\{scope="region"\}/), '1');
  });

  await t.test('the region drain ends at its time: logged once, counted, and the checks decide again', async () => {
    const line = JSON.parse(await f.server.out.waitFor(/override expired/, 0, 10_000));
    assert.equal(line.scope, 'region');
    assert.equal(line.target, 'every server of region eu');
    assert.deepEqual(await answers(f, 'web.example.test'), ['192.0.2.2']);
    assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    assert.equal(await metric(f, /^opengslb_overwatch_overrides_expired_total /), '1');
    assert.equal(await metric(f, /^opengslb_overwatch_overrides_active\{scope="region"\}/), '0');
    assert.deepEqual((await get(f, '/api/v1/overrides')).overrides.map((o: { scope: string }) => o.scope), ['domain', 'server']);
    assert.equal(f.server.out.lines.filter((l) => l.includes('override expired')).length, 1);
  });

  await t.test('refuses an end in the past, both kinds of end at once, and targets nothing serves', async () => {
    const past = await put(f, 'region/us', { healthy: false, expires_at: '2001-01-01T00:00:00Z' });
    assert.equal(past.status, 400);
    assert.match(past.body.error, /^body field "expires_at": 2001-01-01T00:00:00Z has passed/);
    const both = await put(f, 'region/us', { healthy: false, expires_at: '2099-01-01T00:00:00Z', expires_in: '1h' });
    assert.equal(both.status, 400);
    assert.match(both.body.error, /give one of them, not both/);
    const zoneless = await put(f, 'region/us', { healthy: false, expires_at: '2099-01-01 10:00' });
    assert.match(zoneless.body.error, /is not an RFC 3339 time/);
    const mars = await put(f, 'region/mars', { healthy: false });
    assert.equal(mars.status, 404);
    assert.equal(mars.body.error, 'no region "mars" is served; expected one of: eu, us');
    const nobody = await put(f, 'server/192.0.2.99', { healthy: false });
    assert.equal(nobody.status, 404);
    assert.match(nobody.body.error, /^no served domain answers a server with address 192\.0\.2\.99/);
  });

  const untilUs = new Date(Date.now() + 3_600_000).toISOString();
  await t.test('scopes and ends survive a restart and hold from the first answer', async () => {
    assert.equal((await put(f, 'region/us', { healthy: false, reason: 'move', expires_at: untilUs })).status, 200);
    const before = (await get(f, '/api/v1/overrides')).overrides;
    f.server.child.kill('SIGTERM');
    assert.equal((await f.server.exited).code, 0);
    f = await start(t, file);
    assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.1', '192.0.2.2']);
    assert.deepEqual(await answers(f, 'web.example.test'), ['192.0.2.2']);
    assert.deepEqual((await get(f, '/api/v1/overrides')).overrides, before);
    assert.equal(before.find((o: { scope: string }) => o.scope === 'region').expires_at, untilUs);
  });

  await t.test('an override that ended while stopped is dropped at start, and one stored without a scope still applies', async () => {
    f.server.child.kill('SIGTERM');
    assert.equal((await f.server.exited).code, 0);
    const state = join(dir, 'state');
    const store = LmdbStore.open(state);
    await store.putOverride({ scope: 'region', service: '', address: '', region: 'us', healthy: false, reason: 'move', source: 'ops', createdAtMs: Date.now() - 7_200_000, expiresAtMs: Date.now() - 1000 });
    await store.close();
    // The record as the previous version wrote it: key "service|address", no scope, no end.
    const raw = open({ path: join(state, 'state.mdb'), maxDbs: 8 });
    await raw.openDB({ name: 'overrides' }).put('app.example.test|192.0.2.3', { service: 'app.example.test', address: '192.0.2.3', healthy: false, reason: 'old', source: 'v0.1', createdAtMs: 1_700_000_000_000 });
    await raw.close();

    f = await start(t, file);
    assert.deepEqual(await answers(f, 'app.example.test'), ['192.0.2.1', '192.0.2.2'], 'us ended; 192.0.2.3 is drained by the old record');
    const ended = JSON.parse(await f.server.out.waitFor(/override expired/));
    assert.equal(ended.target, 'every server of region us');
    const list = (await get(f, '/api/v1/overrides')).overrides;
    assert.deepEqual(list.map((o: { scope: string; service: string | null; address: string | null }) => [o.scope, o.service, o.address]), [
      ['domain', 'app.example.test', '192.0.2.3'],
      ['domain', 'web.example.test', '192.0.2.1'],
      ['server', null, '192.0.2.1'],
    ]);
    assert.equal(list[0].expires_at, null);
    f.server.child.kill('SIGTERM');
    assert.equal((await f.server.exited).code, 0);
    const after = LmdbStore.open(state);
    t.after(() => after.close());
    assert.equal(after.loadOverrides().some((o) => o.scope === 'region'), false, 'the ended override is gone from the store');
  });
});
