// The geolocation routes of the admin API against a running overwatch: the
// Go original's geo test, and custom mappings added and removed at run time
// reaching DNS by the time the call returns, and surviving a restart.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { open } from 'lmdb';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MAX_CIDR_MAPPINGS } from '../../src/geo/cidr-table.ts';
import { LmdbStore, MemoryStore, type StoredGeoMapping } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { KNOWN_LOCATIONS } from '../helpers/geo-known.ts';
import { call, startTestApi } from './helpers.ts';

const YAML = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
overwatch:
  geolocation:
    default_region: eu
    custom_mappings: [{ cidr: 10.0.0.0/8, region: us, comment: office }]
regions:
  - { name: eu, countries: [DE, NL], health_check: { type: none }, servers: [{ address: 192.0.2.1 }] }
  - { name: us, countries: [US], health_check: { type: none }, servers: [{ address: 198.51.100.1 }] }
domains:
  - { name: geo.example.test, routing_algorithm: geolocation, regions: [eu, us] }
logging: { level: error }
`;

async function start(dataDir: string): Promise<{ overwatch: Overwatch; store: LmdbStore }> {
  const store = LmdbStore.open(dataDir);
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'error', format: 'json' }), { store });
  return { overwatch, store };
}

async function answer(port: number, ecs: string): Promise<string> {
  const r = await ask(port, 'geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: ecs } } });
  return (r.answers?.[0] as { data: string } | undefined)?.data ?? 'none';
}

test('GET /api/v1/geo/test says which region an address maps to and how', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-api-'));
  const { overwatch, store } = await start(dir);
  t.after(async () => {
    await overwatch.stop(200);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const api = await startTestApi(t, overwatch);
  const us = KNOWN_LOCATIONS.find((k) => k.country === 'US') as { ip: string };
  let r = await call(api.base, 'GET', `/api/v1/geo/test?ip=${us.ip}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.region, 'us');
  assert.equal(r.body.match_type, 'geoip');
  assert.equal(r.body.country, 'US');
  assert.equal(r.body.continent, 'NA');
  assert.equal(r.body.matched_cidr, null);
  r = await call(api.base, 'GET', '/api/v1/geo/test?ip=10.9.8.7');
  assert.deepEqual([r.body.region, r.body.match_type, r.body.matched_cidr, r.body.scope_prefix_length], ['us', 'custom_mapping', '10.0.0.0/8', 8]);
  r = await call(api.base, 'GET', '/api/v1/geo/test?ip=not-an-ip');
  assert.equal(r.status, 400);
  assert.match(String(r.body.error), /ip: "not-an-ip" is not an IP address/);
});

test('a mapping added through the API reaches DNS when the call returns, is listed, survives a restart, and goes when removed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-api-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let { overwatch, store } = await start(dir);
  let api = await startTestApi(t, overwatch);
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '192.0.2.1', 'not mapped: default_region eu');
  let r = await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '172.16.99.1/12', region: 'us', comment: 'VPN', source: 'alice' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual([r.body.cidr, r.body.region, r.body.source, r.body.active], ['172.16.0.0/12', 'us', 'alice', true]);
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '198.51.100.1', 'answered by the mapping as soon as the call returned');
  r = await call(api.base, 'GET', '/api/v1/geo/mappings');
  assert.deepEqual((r.body.mappings as { cidr: string; source: string }[]).map((m) => [m.cidr, m.source]), [['10.0.0.0/8', 'config'], ['172.16.0.0/12', 'alice']]);
  // Refused: a network the config maps, a region that is not served, not a CIDR.
  assert.equal((await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '10.0.0.0/8', region: 'eu', source: 'alice' } })).status, 409);
  assert.equal((await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '192.168.0.0/16', region: 'mars', source: 'alice' } })).status, 409);
  assert.equal((await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '192.168.0.0', region: 'eu', source: 'alice' } })).status, 400);

  await overwatch.stop(200);
  await store.close();
  ({ overwatch, store } = await start(dir));
  t.after(async () => {
    await overwatch.stop(200);
    await store.close();
  });
  api = await startTestApi(t, overwatch);
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '198.51.100.1', 'the mapping came back from the state store');
  r = await call(api.base, 'DELETE', '/api/v1/geo/mappings?cidr=172.16.0.0/12');
  assert.equal(r.status, 200);
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '192.0.2.1');
  assert.equal((await call(api.base, 'DELETE', '/api/v1/geo/mappings?cidr=172.16.0.0/12')).status, 404);
});

/** A state store holding `count` run-time mappings of /24s from 240.0.0.0/4 (outside the test GeoIP data) to region us. */
async function prefilledStore(count: number): Promise<MemoryStore> {
  const store = new MemoryStore();
  for (let i = 0; i < count; i++) {
    await store.putGeoMapping({ cidr: `${240 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`, region: 'us', comment: null, source: 'prefill', createdAtMs: 0 });
  }
  return store;
}

/** A log destination that keeps each line in `lines`. */
function logSink(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
}

test('a new mapping past the geo table limit (MAX_CIDR_MAPPINGS, config and run-time together) is refused with 409 naming the limit and the count; replacing one is not; mappings past it by a path that does not check are left out, never a failed compile', async (t) => {
  // 1 mapping in the config plus 99 999 stored ones: exactly at the limit.
  const stored = MAX_CIDR_MAPPINGS - 1;
  const store = await prefilledStore(stored);
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'error', format: 'json' }, logSink([])), { store });
  t.after(() => overwatch.stop(200));
  const api = await startTestApi(t, overwatch);
  assert.equal(await answer(overwatch.port, '240.0.5.1'), '198.51.100.1', 'a stored mapping answers');

  let r = await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '172.16.0.0/12', region: 'us', source: 'alice' } });
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.equal(
    r.body.error,
    'mapping 172.16.0.0/12: the geo table takes at most 100000 custom mappings, config and run-time together, and 100000 are set (1 in the config, 99999 at run time); remove one first (DELETE /api/v1/geo/mappings)',
  );
  assert.equal((await store.loadGeoMappings()).length, stored, 'nothing stored');
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '192.0.2.1', 'not mapped');

  // Changing the region of a network already mapped adds nothing: taken.
  r = await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '240.0.5.0/24', region: 'eu', source: 'alice' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(await answer(overwatch.port, '240.0.5.1'), '192.0.2.1');
  // One removed makes room for one.
  assert.equal((await call(api.base, 'DELETE', '/api/v1/geo/mappings?cidr=240.0.6.0/24')).status, 200);
  r = await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '172.16.0.0/12', region: 'us', source: 'alice' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '198.51.100.1');

  // Past the limit by a path that does not check (a stored mapping taken back as it is, as at start): the last one added is
  // left out of the geo table and shown inactive; the compile does not fail, DNS answers by the rest.
  overwatch.registry.restoreGeoMapping({ cidr: '192.168.0.0/16', region: 'us', comment: null, source: 'unchecked', createdAtMs: 0 });
  await overwatch.whenPublished();
  assert.equal(await answer(overwatch.port, '192.168.1.1'), '192.0.2.1', 'left out: not mapped');
  assert.equal(await answer(overwatch.port, '172.16.5.0'), '198.51.100.1', 'the others still answer');
  const listed = (await call(api.base, 'GET', '/api/v1/geo/mappings')).body.mappings as { cidr: string; active: boolean }[];
  assert.equal(listed.find((m) => m.cidr === '192.168.0.0/16')?.active, false);
  assert.equal(listed.find((m) => m.cidr === '172.16.0.0/12')?.active, true);
  // One removed makes room: it applies.
  assert.equal((await call(api.base, 'DELETE', '/api/v1/geo/mappings?cidr=172.16.0.0/12')).status, 200);
  assert.equal(await answer(overwatch.port, '192.168.1.1'), '198.51.100.1');
});

test('an overwatch whose config mappings and stored run-time mappings together exceed the limit still starts: the last run-time ones are left out, shown inactive and logged', async (t) => {
  // 1 in the config + 100 000 stored: one too many.
  const store = await prefilledStore(MAX_CIDR_MAPPINGS);
  const logs: string[] = [];
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'warn', format: 'json' }, logSink(logs)), { store });
  t.after(() => overwatch.stop(200));
  assert.ok(logs.some((l) => l.includes('run-time geo mappings left out') && l.includes('"leftOut":1')), logs.join('\n'));
  const api = await startTestApi(t, overwatch);
  const listed = (await call(api.base, 'GET', '/api/v1/geo/mappings')).body.mappings as { cidr: string; active: boolean }[];
  const inactive = listed.filter((m) => !m.active);
  assert.equal(inactive.length, 1);
  assert.equal(inactive[0].cidr, listed.at(-1)?.cidr, 'the last in the store\'s order is left out');
  const leftOut = inactive[0].cidr.replace('.0/24', '.1');
  assert.equal(await answer(overwatch.port, leftOut), '192.0.2.1', 'left out: not mapped');
  assert.equal(await answer(overwatch.port, listed[1].cidr.replace('.0/24', '.1')), '198.51.100.1', 'the others apply');
  // Room made through the API: it applies.
  assert.equal((await call(api.base, 'DELETE', `/api/v1/geo/mappings?cidr=${listed[1].cidr}`)).status, 200);
  assert.equal(await answer(overwatch.port, leftOut), '198.51.100.1');
});

test('a mapping to a configured region spelt in another case is refused with 409 naming the configured spelling; nothing is mapped', async (t) => {
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'error', format: 'json' }), { store: new MemoryStore() });
  t.after(() => overwatch.stop(200));
  const api = await startTestApi(t, overwatch);
  const r = await call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '172.16.0.0/12', region: 'US', source: 'alice' } });
  assert.equal(r.status, 409);
  assert.match(r.body.error, /no region "US" is served here; region names are case-sensitive, expected "us"/);
  assert.equal(overwatch.registry.geoMapping('172.16.0.0/12'), undefined);
});

/** The ECS option of a reply, as dns-packet decodes it, or null. */
function ecsOf(reply: Awaited<ReturnType<typeof ask>>): { scopePrefixLength: number } | null {
  for (const rr of (reply.additionals ?? []) as { type: string; options?: { code: number; scopePrefixLength: number }[] }[]) {
    if (rr.type !== 'OPT') continue;
    for (const o of rr.options ?? []) if (o.code === 8) return o;
  }
  return null;
}

for (const ecsEnabled of [true, false]) {
  test(`with ecs_enabled ${ecsEnabled ? 'on' : 'off'}, GET /api/v1/geo/test and explain report the ECS scope DNS echoes`, async (t) => {
    const yaml = YAML.replace('    default_region: eu\n', `    default_region: eu\n    ecs_enabled: ${ecsEnabled}\n`);
    const overwatch = await Overwatch.start(parseConfigText(yaml, 'geo-api.yaml'), createLogger({ level: 'error', format: 'json' }), { store: new MemoryStore() });
    t.after(() => overwatch.stop(200));
    const api = await startTestApi(t, overwatch);
    // The query comes from 127.0.0.1 and carries 10.9.8.0/24: on, the ECS address decides (10.0.0.0/8, scope 8); off, the source does, and the scope echoed is 0.
    const reply = await ask(overwatch.port, 'geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: '10.9.8.0' } } });
    const echoed = ecsOf(reply)?.scopePrefixLength;
    assert.equal(echoed, ecsEnabled ? 8 : 0);
    const r = await call(api.base, 'GET', '/api/v1/geo/test?ip=10.9.8.0');
    assert.equal(r.status, 200);
    assert.deepEqual([r.body.region, r.body.matched_cidr, r.body.scope_prefix_length], ['us', '10.0.0.0/8', echoed]);
    const e = await call(api.base, 'GET', '/api/v1/explain?name=geo.example.test&type=A&client=10.9.8.0');
    assert.equal(e.body.geo.scope_prefix_length, echoed);
  });
}

test('GET /api/v1/geo/test and explain read a client alike: ::ffff:a.b.c.d is the IPv4 client, a zone index is refused with 400', async (t) => {
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'error', format: 'json' }), { store: new MemoryStore() });
  t.after(() => overwatch.stop(200));
  const api = await startTestApi(t, overwatch);
  const geo = (await call(api.base, 'GET', '/api/v1/geo/test?ip=10.1.2.3')).body;
  for (const ip of ['::ffff:10.1.2.3', '::FFFF:a01:203']) {
    const r = await call(api.base, 'GET', `/api/v1/geo/test?ip=${encodeURIComponent(ip)}`);
    assert.deepEqual(r.body, geo, `${ip} is 10.1.2.3`);
    const e = await call(api.base, 'GET', `/api/v1/explain?name=geo.example.test&type=A&client=${encodeURIComponent(ip)}`);
    const { answered_region: _a, fallback: _f, ...placed } = e.body.geo;
    assert.deepEqual(placed, geo, `explain places ${ip} as the geo test does`);
    // explain() itself (the CLI and the API call it) reads the client the same way.
    assert.deepEqual(overwatch.explain('geo.example.test', 'A', ip), overwatch.explain('geo.example.test', 'A', '10.1.2.3'));
  }
  const zoned = 'fe80::1%eth0';
  const g = await call(api.base, 'GET', `/api/v1/geo/test?ip=${encodeURIComponent(zoned)}`);
  const e = await call(api.base, 'GET', `/api/v1/explain?name=geo.example.test&type=A&client=${encodeURIComponent(zoned)}`);
  assert.deepEqual([g.status, e.status], [400, 400]);
  for (const body of [g.body, e.body]) assert.match(body.error, /"fe80::1%eth0" has a zone index \("%\.\.\."\), expected an IP literal without one/);
  assert.throws(() => overwatch.explain('geo.example.test', 'A', zoned), /"fe80::1%eth0" has a zone index/);
});

test('two mappings of new networks written at once when the geo table has room for one: one is taken, the other refused with 409 and not stored, also after a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-race-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // 1 mapping in the config plus 99 998 stored: room for one more, in a real state database. Written in one
  // transaction straight into the store's table, as LmdbStore.putGeoMapping writes each (key: the CIDR, value:
  // the record): 99 998 calls of it, each its own checked write, took a second more (the counts below are read back through the store).
  const stored = MAX_CIDR_MAPPINGS - 2;
  const raw = open({ path: join(dir, 'state.mdb'), maxDbs: 16 });
  const table = raw.openDB<StoredGeoMapping, string>({ name: 'geo_mappings' });
  table.transactionSync(() => {
    for (let i = 0; i < stored; i++) {
      const cidr = `${240 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
      table.putSync(cidr, { cidr, region: 'us', comment: null, source: 'prefill', createdAtMs: 0 });
    }
  });
  await raw.close();
  let store = LmdbStore.open(dir);
  let overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'error', format: 'json' }, logSink([])), { store });
  let stopped = false;
  t.after(async () => {
    if (!stopped) {
      await overwatch.stop(200);
      await store.close();
    }
  });
  const api = await startTestApi(t, overwatch);

  const results = await Promise.all([
    call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '172.16.0.0/12', region: 'us', source: 'alice' } }),
    call(api.base, 'PUT', '/api/v1/geo/mappings', { body: { cidr: '192.168.0.0/16', region: 'us', source: 'bob' } }),
  ]);
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 409], results.map((r) => JSON.stringify(r.body)).join('\n'));
  // Room for one again, and two more at once through the overwatch itself (both checked before either write completes).
  const refusedOverHttp = results[0].status === 409 ? '172.16.0.0/12' : '192.168.0.0/16';
  assert.equal((await call(api.base, 'DELETE', `/api/v1/geo/mappings?cidr=${results[0].status === 200 ? '172.16.0.0/12' : '192.168.0.0/16'}`)).status, 200);
  const direct = await Promise.allSettled([
    overwatch.setGeoMapping('100.64.0.0/10', 'us', null, 'carol'),
    overwatch.setGeoMapping('198.18.0.0/15', 'us', null, 'dave'),
  ]);
  assert.deepEqual(direct.map((d) => d.status), ['fulfilled', 'rejected']);
  assert.match(String((direct[1] as PromiseRejectedResult).reason), /takes at most 100000 custom mappings/);

  const inStore = (s: LmdbStore): string[] => s.loadGeoMappings().map((m) => m.cidr);
  assert.equal(inStore(store).length, stored + 1, 'exactly the mappings acknowledged are stored');
  assert.ok(!inStore(store).includes(refusedOverHttp), `${refusedOverHttp} was refused and is not stored`);
  assert.ok(!inStore(store).includes('198.18.0.0/15'), 'the mapping refused is not stored');

  // After a restart on the same state directory: what was acknowledged, nothing refused, nothing left out.
  await overwatch.stop(200);
  await store.close();
  store = LmdbStore.open(dir);
  const logs: string[] = [];
  overwatch = await Overwatch.start(parseConfigText(YAML, 'geo-api.yaml'), createLogger({ level: 'warn', format: 'json' }, logSink(logs)), { store });
  const listed = overwatch.geoMappings();
  assert.equal(listed.length, 1 + stored + 1);
  assert.ok(listed.every((m) => m.active), 'every mapping applies: none was stored past the limit');
  assert.ok(!logs.some((l) => l.includes('left out')), logs.join('\n'));
  assert.equal(await answer(overwatch.port, '100.64.1.1'), '198.51.100.1');
  assert.equal(await answer(overwatch.port, '198.18.1.1'), '192.0.2.1', 'the refused mapping does not apply');
  await overwatch.stop(200);
  await store.close();
  stopped = true;
});
