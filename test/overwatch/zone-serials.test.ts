// The SOA serial from outside: two overwatches started from the same config
// a few seconds apart answer the same serial; a changed zone answers a higher
// one after a reload and after a restart; an unchanged zone keeps its serial;
// a changed static record is a change of its zone.

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
import { LmdbStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';

const yaml = (servers: string): string => `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [a.test, b.test] }
regions:
  - { name: r, health_check: { type: none }, servers: [${servers}] }
domains:
  - { name: app.a.test, regions: [r] }
  - { name: app.b.test, regions: [r] }
logging: { level: error }
`;

async function serialOf(port: number, zone: string): Promise<number> {
  const r = await ask(port, zone, 'SOA');
  return (r.answers?.[0] as { data: { serial: number } }).data.serial;
}

async function start(dir: string, text: string): Promise<{ overwatch: Overwatch; store: LmdbStore }> {
  const store = LmdbStore.open(dir);
  const overwatch = await Overwatch.start(parseConfigText(text, 'serial.yaml'), createLogger({ level: 'error', format: 'json' }), { store });
  return { overwatch, store };
}

async function stop(o: { overwatch: Overwatch; store: LmdbStore }): Promise<void> {
  await o.overwatch.stop(100);
  await o.store.close();
}

test('two overwatches of one config answer one SOA serial; a changed zone rises by one and stays risen across restarts', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-serial-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const text = yaml('{ address: 192.0.2.1 }');
  const one = await start(join(root, 'one'), text);
  await new Promise((resolve) => setTimeout(resolve, 2100)); // the Go original's serials differed by the seconds between starts
  const two = await start(join(root, 'two'), text);
  const a1 = await serialOf(one.overwatch.port, 'a.test');
  assert.equal(await serialOf(two.overwatch.port, 'a.test'), a1);
  assert.equal(await serialOf(two.overwatch.port, 'b.test'), await serialOf(one.overwatch.port, 'b.test'));
  await stop(two);

  // A change that touches both zones (the region serves both): each rises by one.
  const changed = parseConfigText(yaml('{ address: 192.0.2.1 }, { address: 192.0.2.2 }'), 'serial.yaml');
  const b1 = await serialOf(one.overwatch.port, 'b.test');
  assert.equal((await one.overwatch.reload(changed)).ok, true);
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), a1 + 1);
  assert.equal(await serialOf(one.overwatch.port, 'b.test'), b1 + 1);
  // A reload that changes nothing keeps the serial.
  assert.equal((await one.overwatch.reload(changed)).ok, true);
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), a1 + 1);
  await stop(one);

  // After a restart with the same (changed) content, the stored serial is served, not the derived one.
  const again = await start(join(root, 'one'), yaml('{ address: 192.0.2.1 }, { address: 192.0.2.2 }'));
  t.after(() => stop(again));
  assert.equal(await serialOf(again.overwatch.port, 'a.test'), a1 + 1);
});

test('a server registered at run time does not change the serial: it is not zone content', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-serial-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const o = await start(root, yaml('{ address: 192.0.2.1 }'));
  t.after(() => stop(o));
  const before = await serialOf(o.overwatch.port, 'a.test');
  const check = { type: 'none' as const, address: '192.0.2.9', port: 80, host: null, path: '/', expectedStatus: [[200, 399]] as [number, number][], headers: {}, bodyMatch: null, tlsVerify: true, keepAlive: false, intervalMs: 30_000, timeoutMs: 5000, failureThreshold: 3, successThreshold: 2, emaAlpha: 0.3 };
  o.overwatch.registry.addServer({ region: 'r', address: '192.0.2.9', port: 80, weight: 100, check, source: 'api' });
  await o.overwatch.whenPublished();
  assert.equal(await serialOf(o.overwatch.port, 'a.test'), before);
});

test('a static record changed by a reload raises its zone\'s serial by one; the line written differently with the same data does not', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-serial-records-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const withRecords = (mail: string): string => yaml('{ address: 192.0.2.1 }').replace(
    'zones: [a.test, b.test] }',
    `zones: [{ name: a.test, records: ["${mail}", "child NS ns1.child", "ns1.child A 192.0.2.99"] }, b.test] }`,
  );
  const one = await start(join(root, 'one'), withRecords('mail A 192.0.2.25'));
  t.after(() => stop(one));
  const a1 = await serialOf(one.overwatch.port, 'a.test');
  const b1 = await serialOf(one.overwatch.port, 'b.test');

  // The same record written another way (class, absolute owner) is the same content.
  assert.equal((await one.overwatch.reload(parseConfigText(withRecords('mail.a.test. IN A 192.0.2.25'), 'serial.yaml'))).ok, true);
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), a1);

  // New data in a.test: its serial rises, b.test's does not.
  assert.equal((await one.overwatch.reload(parseConfigText(withRecords('mail A 192.0.2.26'), 'serial.yaml'))).ok, true);
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), a1 + 1);
  assert.equal(await serialOf(one.overwatch.port, 'b.test'), b1);
  assert.equal(((await ask(one.overwatch.port, 'mail.a.test', 'A')).answers?.[0] as { data: string } | undefined)?.data, '192.0.2.26');
});

test('taking an explicit soa.serial out of the config never sends the serial back: the zone goes on from the explicit one', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-serial-explicit-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  // Above every derived serial (those are 1 … 2^31 − 1), and ahead of them in RFC 1982 order.
  const explicit = 2_000_000_000 + 0x7fffffff;
  const fixed = yaml('{ address: 192.0.2.1 }').replace('zones: [a.test, b.test] }', `zones: [a.test, b.test], soa: { serial: ${explicit} } }`);
  const derived = yaml('{ address: 192.0.2.1 }');
  const one = await start(root, fixed);
  t.after(() => stop(one));
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), explicit);
  // The same content without the fixed serial: the serial stays, it does not fall to the derived one.
  assert.equal((await one.overwatch.reload(parseConfigText(derived, 'serial.yaml'))).ok, true);
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), explicit);
  // A change after that rises from it by one.
  assert.equal((await one.overwatch.reload(parseConfigText(yaml('{ address: 192.0.2.1 }, { address: 192.0.2.2 }'), 'serial.yaml'))).ok, true);
  assert.equal(await serialOf(one.overwatch.port, 'a.test'), explicit + 1);
});

// Each value is stored under a.test with the digest of the zone's content
// where it has a place for one, so that only the serial is wrong.
const DAMAGED: { name: string; value: (digest: string) => unknown; why: RegExp }[] = [
  { name: 'null', value: () => null, why: /is not an object/ },
  { name: 'a string', value: () => 'x', why: /is not an object/ },
  { name: 'a serial above 2^32 - 1', value: (digest) => ({ digest, serial: 2 ** 33 }), why: /serial 8589934592 is not an integer 0\.\.4294967295/ },
  { name: 'a negative serial', value: (digest) => ({ digest, serial: -5 }), why: /serial -5 is not an integer/ },
  { name: 'a fractional serial', value: (digest) => ({ digest, serial: 1.5 }), why: /serial 1\.5 is not an integer/ },
  { name: 'a serial that is text', value: (digest) => ({ digest, serial: '2024010101' }), why: /serial "2024010101" is not an integer/ },
  { name: 'a digest that is not a sha256', value: () => ({ digest: 42, serial: 7 }), why: /digest 42 is not a SHA-256/ },
];

for (const c of DAMAGED) {
  test(`a stored serial that is ${c.name} is refused with a warning naming the zone, and the zone starts as if none was stored`, async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'opengslb-serial-damaged-'));
    t.after(() => rm(root, { recursive: true, force: true }));
    const text = yaml('{ address: 192.0.2.1 }');
    const first = await start(root, text);
    const fresh = await serialOf(first.overwatch.port, 'a.test');
    const freshB = await serialOf(first.overwatch.port, 'b.test');
    await stop(first);

    // Damage the stored entry in the real state file (src/state/store.ts keeps serials in the zone_serials database).
    const env = open({ path: join(root, 'state.mdb'), maxDbs: 16 });
    const db = env.openDB<unknown, string>({ name: 'zone_serials' });
    const digest = (db.get('a.test') as { digest: string }).digest;
    await db.put('a.test', c.value(digest));
    await env.close();

    const logs: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const store = LmdbStore.open(root);
    const overwatch = await Overwatch.start(parseConfigText(text, 'serial.yaml'), createLogger({ level: 'warn', format: 'json' }, sink), { store });
    const again = { overwatch, store };
    t.after(() => stop(again));
    assert.equal(await serialOf(overwatch.port, 'a.test'), fresh, 'rebuilt from the content, as on a first start');
    assert.equal(await serialOf(overwatch.port, 'b.test'), freshB, 'the other zone keeps its stored serial');
    const refused = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.zone === 'a.test');
    assert.equal(refused.length, 1, logs.join('\n'));
    assert.equal(refused[0].level, 'warn');
    assert.match(String(refused[0].reason), c.why);
    assert.match(String(refused[0].msg), /stored SOA serial refused/);
    assert.equal(refused[0].store, store.location);
    // The rebuilt serial replaced the damaged entry.
    assert.deepEqual(store.loadZoneSerials().get('a.test'), { digest, serial: fresh });
  });
}
