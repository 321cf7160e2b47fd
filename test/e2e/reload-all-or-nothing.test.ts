// A reload takes effect whole or not at all: an in-process overwatch on
// loopback whose reload fails after the config was read (the snapshot cannot
// be compiled because its zone serial cannot be stored) keeps every part of
// the previous config serving, the GeoIP database included. And no DNS worker
// serves another snapshot than the others: a snapshot that does not attach is
// refused before any worker sees it, and a worker that still fails to attach
// one exits and is restarted on the snapshot the others serve.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { createLogger } from '../../src/log/logger.ts';
import { COUNTER, COUNTER_STRIDE } from '../../src/metrics/counters-layout.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore, type StoredDnssecKey, type StoredZoneSerial } from '../../src/state/store.ts';
import { ask, type Decoded } from '../helpers/dns-client.ts';
import { maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';

/** A memory store whose serial writes fail while `failSerialWrites` is set, as a full or read-only disk would make them. */
class SerialWritesFail extends MemoryStore {
  failSerialWrites = false;

  override async putZoneSerial(zone: string, serial: StoredZoneSerial): Promise<void> {
    if (this.failSerialWrites) throw new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', `could not write the SOA serial of ${zone} to memory: disk full (test)`);
    return super.putZoneSerial(zone, serial);
  }
}

const config = (database: string, ttl: number): string => `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
overwatch:
  geolocation: { database_path: ${JSON.stringify(database)}, default_region: dflt }
regions:
  - { name: asia, continents: [AS], servers: [{ address: 203.0.113.1 }] }
  - { name: sa, continents: [SA], servers: [{ address: 203.0.113.50 }] }
  - { name: dflt, servers: [{ address: 192.0.2.99 }] }
domains:
  - { name: geo.example.test, routing_algorithm: geolocation, regions: [asia, sa, dflt], ttl: ${ttl} }
logging: { level: error }
`;

/** Asks for geo.example.test with an ECS option for 100.70.0.0/16 (JP in a.mmdb, BR in b.mmdb). */
async function askGeo(port: number): Promise<{ address: string; ttl: number }> {
  const r: Decoded = await ask(port, 'geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 16, address: '100.70.0.0' } } });
  const a = r.answers?.[0] as { data: string; ttl: number } | undefined;
  return { address: a?.data ?? '', ttl: a?.ttl ?? -1 };
}

test('a reload whose snapshot cannot be compiled keeps the previous GeoIP database as well as the previous config; the same reload succeeds once it can', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-reload-whole-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const a = join(dir, 'a.mmdb');
  const b = join(dir, 'b.mmdb');
  await writeFile(a, writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('JP', 'AS') }] }));
  await writeFile(b, writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('BR', 'SA') }] }));
  const store = new SerialWritesFail();
  const overwatch = await Overwatch.start(parseConfigText(config(a, 30), 'whole.yaml'), createLogger({ level: 'error', format: 'json' }), { store, healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  assert.deepEqual(await askGeo(overwatch.port), { address: '203.0.113.1', ttl: 30 });

  // The new TTL is new zone content: its serial must be stored before the snapshot is compiled, and that write fails.
  store.failSerialWrites = true;
  const next = parseConfigText(config(b, 60), 'whole.yaml');
  const refused = await overwatch.reload(next);
  assert.equal(refused.ok, false, refused.message);
  assert.match(refused.message, /SOA serial of example\.test/);
  assert.deepEqual(await askGeo(overwatch.port), { address: '203.0.113.1', ttl: 30 }, 'the workers still place the client with a.mmdb');
  assert.equal((await overwatch.geoTest('100.70.0.1')).region, 'asia', 'the main thread still reads a.mmdb');

  // The same reload once the store takes writes again: all of it applies.
  store.failSerialWrites = false;
  const applied = await overwatch.reload(next);
  assert.equal(applied.ok, true, applied.message);
  assert.match(applied.message, /b\.mmdb/);
  assert.deepEqual(await askGeo(overwatch.port), { address: '203.0.113.50', ttl: 60 });
  assert.equal((await overwatch.geoTest('100.70.0.1')).region, 'sa');
});

const TWO_WORKERS = `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - { name: pool, servers: [{ address: 192.0.2.1 }] }
domains:
  - { name: app.example.test, regions: [pool] }
logging: { level: error }
`;

/** The snapshot generation worker `index` serves, as it reports it in its counter slice. */
function workerGeneration(o: Overwatch, index: number): number {
  return Atomics.load(o.counters, index * COUNTER_STRIDE + COUNTER.SNAPSHOT_GENERATION) >>> 0;
}

/** Resolves with the next 'worker-restarted' of worker `index`, or rejects after `ms`. */
function restarted(o: Overwatch, index: number, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      o.pool.off('worker-restarted', on);
      reject(new Error(`worker ${index} was not restarted within ${ms} ms`));
    }, ms);
    const on = (i: number): void => {
      if (i !== index) return;
      clearTimeout(timer);
      o.pool.off('worker-restarted', on);
      resolve();
    };
    o.pool.on('worker-restarted', on);
  });
}

test('a snapshot that does not attach is refused before any worker sees it; every worker keeps the one it serves, and a restarted worker gets that one too', async (t) => {
  const overwatch = await Overwatch.start(parseConfigText(TWO_WORKERS, 'attach.yaml'), createLogger({ level: 'error', format: 'json' }), { healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  const generation = overwatch.generation;
  const junk = new SharedArrayBuffer(64);
  const live = new Int32Array(new SharedArrayBuffer(1024));
  await assert.rejects(overwatch.pool.publish(junk, generation + 1, live, 500), /OPENGSLB_ERR_SNAPSHOT_COMPILE|does not attach/);
  assert.equal(workerGeneration(overwatch, 0), generation);
  assert.equal(workerGeneration(overwatch, 1), generation);
  // A worker restarted now starts on the snapshot in use, not on the refused one.
  const back = restarted(overwatch, 1, 5000);
  await overwatch.pool.workers[1]?.terminate();
  await back;
  assert.equal(workerGeneration(overwatch, 1), generation);
  for (let i = 0; i < 4; i++) assert.equal((await ask(overwatch.port, 'app.example.test', 'A')).rcode, 'NOERROR');
});

test('a DNS worker that fails to attach a snapshot it is handed exits and is restarted on the snapshot the other workers serve', async (t) => {
  const overwatch = await Overwatch.start(parseConfigText(TWO_WORKERS, 'attach.yaml'), createLogger({ level: 'error', format: 'json' }), { healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  const generation = overwatch.generation;
  const failed = once(overwatch.pool, 'attach-failed');
  const back = restarted(overwatch, 0, 5000);
  // Straight to worker 0, past the pool's check: as a worker-side failure would happen.
  const worker = overwatch.pool.workers[0];
  assert.ok(worker);
  const exited = once(worker, 'exit');
  worker.postMessage({ type: 'snapshot', buffer: new SharedArrayBuffer(64), live: new Int32Array(new SharedArrayBuffer(1024)), generation: generation + 1, dnssec: { zones: [], validitySec: 86400 } });
  const [index, reason] = (await failed) as [number, string];
  assert.equal(index, 0);
  assert.match(reason, /snapshot/);
  const [code] = (await exited) as [number];
  assert.notEqual(code, 0, 'the worker does not keep serving a snapshot the others no longer serve');
  await back;
  assert.equal(workerGeneration(overwatch, 0), generation);
  assert.equal(workerGeneration(overwatch, 1), generation);
  for (let i = 0; i < 4; i++) assert.equal((await ask(overwatch.port, 'app.example.test', 'A')).rcode, 'NOERROR');
});

test('a reload that fails after the config was read creates no DNSSEC key: the new zone is neither stored, nor held, nor signed until a reload of it succeeds', async (t) => {
  const store = new SerialWritesFail();
  const overwatch = await Overwatch.start(parseConfigText(TWO_WORKERS, 'keys.yaml'), createLogger({ level: 'error', format: 'json' }), { store, healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  const keysBefore = store.loadDnssecKeys().map((k) => `${k.zone}/${k.keyTag}`);
  assert.deepEqual(keysBefore.map((k) => k.split('/')[0]), ['example.test']);

  // other.test is new: its key is made for the new snapshot, whose serial cannot be stored.
  store.failSerialWrites = true;
  const next = parseConfigText(TWO_WORKERS.replace('zones: [example.test]', 'zones: [example.test, other.test]').replace('app.example.test', 'app.other.test'), 'keys.yaml');
  const refused = await overwatch.reload(next);
  assert.equal(refused.ok, false, refused.message);
  assert.deepEqual(store.loadDnssecKeys().map((k) => `${k.zone}/${k.keyTag}`), keysBefore, 'no key of other.test is stored');
  assert.deepEqual([...(overwatch.keyring?.zones.keys() ?? [])], ['example.test'], 'the keyring still holds the previous zones only');
  assert.equal((await ask(overwatch.port, 'other.test', 'DNSKEY')).rcode, 'REFUSED');

  store.failSerialWrites = false;
  const applied = await overwatch.reload(next);
  assert.equal(applied.ok, true, applied.message);
  const other = store.loadZoneDnssecKeys('other.test');
  assert.equal(other.length, 1, 'the successful reload stores the new zone\'s key');
  assert.deepEqual([...(overwatch.keyring?.zones.keys() ?? [])].sort(), ['example.test', 'other.test']);
  const dnskey = await ask(overwatch.port, 'other.test', 'DNSKEY', { edns: { do: true } });
  assert.equal(dnskey.rcode, 'NOERROR');
  assert.ok(dnskey.answers?.some((a) => a.type === 'DNSKEY'), 'the stored key is the one served');
});

/** A memory store whose DNSSEC key writes fail while `failKeyWrites` is set. */
class KeyWritesFail extends MemoryStore {
  failKeyWrites = false;

  override async putDnssecKey(key: StoredDnssecKey): Promise<void> {
    if (this.failKeyWrites) throw new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', `could not write DNSSEC key ${key.keyTag} of ${key.zone} to memory: disk full (test)`);
    return super.putDnssecKey(key);
  }
}

test('a reload whose new zone\'s key cannot be stored is refused and keeps the previous config serving', async (t) => {
  const store = new KeyWritesFail();
  const overwatch = await Overwatch.start(parseConfigText(TWO_WORKERS, 'keys.yaml'), createLogger({ level: 'error', format: 'json' }), { store, healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  const generation = overwatch.generation;
  store.failKeyWrites = true;
  const next = parseConfigText(TWO_WORKERS.replace('zones: [example.test]', 'zones: [example.test, other.test]').replace('app.example.test', 'app.other.test'), 'keys.yaml');
  const refused = await overwatch.reload(next);
  assert.equal(refused.ok, false, refused.message);
  assert.match(refused.message, /DNSSEC key \d+ of other\.test/);
  assert.equal(overwatch.generation, generation);
  assert.deepEqual(store.loadZoneDnssecKeys('other.test'), []);
  assert.deepEqual([...(overwatch.keyring?.zones.keys() ?? [])], ['example.test']);
  assert.equal((await ask(overwatch.port, 'app.example.test', 'A')).rcode, 'NOERROR', 'the previous config still serves');
  assert.equal((await ask(overwatch.port, 'app.other.test', 'A')).rcode, 'REFUSED');
});
