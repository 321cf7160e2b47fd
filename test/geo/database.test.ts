// Loading, checking, watching and reloading GeoIP databases on real files:
// refusals name the file and the reason, a refused reload keeps the old
// database, and a file replaced on disk (by rename or in place) is reloaded.

import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Reader } from 'maxmind';
import { BUNDLED_GEOIP_PATH, GeoDatabase, loadGeoDatabase } from '../../src/geo/database.ts';
import type { LoadedGeoDatabase } from '../../src/geo/database.ts';
import { countryCodeOf } from '../../src/geo/continents.ts';
import { geoCountryOf, GeoIpReader } from '../../src/geo/lookup.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { ipToBytes } from '../../src/lib/ip.ts';
import { dbipCountry, maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The country the database puts `ip` in, or null. */
function countryIn(db: LoadedGeoDatabase, ip: string): string | null {
  const bytes = ipToBytes(ip);
  const c = geoCountryOf(new GeoIpReader(db.sab).find(bytes, 0, bytes.length));
  return c < 0 ? null : countryCodeOf(c);
}

const dbDE = writeMmdb({ databaseType: 'GeoLite2-Country', networks: [{ cidr: '192.0.2.0/24', data: maxmindCountry('DE', 'EU') }] });
const dbFR = writeMmdb({ databaseType: 'GeoLite2-Country', networks: [{ cidr: '192.0.2.0/24', data: maxmindCountry('FR', 'EU') }] });

test('loads a MaxMind-shaped database and describes it', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'GeoLite2-Country.mmdb');
  await writeFile(path, dbDE);
  const db = await loadGeoDatabase(path);
  assert.ok(db.sab instanceof SharedArrayBuffer);
  assert.equal(db.sab.byteLength, dbDE.length);
  assert.equal(countryIn(db, '192.0.2.7'), 'DE');
  assert.deepEqual(
    { ...db.info, loadedAt: 'x' },
    { path, bundled: false, sizeBytes: dbDE.length, databaseType: 'GeoLite2-Country', builtAt: '2023-11-14T22:13:20.000Z', ipVersion: 6, recordSize: 24, nodeCount: db.info.nodeCount, recordShape: 'maxmind', loadedAt: 'x' },
  );
  assert.ok(Object.isFrozen(db) && Object.isFrozen(db.info));
});

test('the bundled database loads by its exported path', async () => {
  const db = await loadGeoDatabase(BUNDLED_GEOIP_PATH);
  assert.equal(db.info.path, BUNDLED_GEOIP_PATH);
  assert.equal(db.info.bundled, true);
});

/** Files the loader must refuse, each with the reason its message gives. */
const refused: { name: string; write: (path: string) => Promise<void>; reason: RegExp }[] = [
  { name: 'a missing file', write: async () => {}, reason: /: does not exist;/ },
  { name: 'a directory', write: (p) => mkdir(p), reason: /: is not a regular file;/ },
  { name: 'an empty file', write: (p) => writeFile(p, ''), reason: /: is empty;/ },
  { name: 'a text file', write: (p) => writeFile(p, 'country,code\nDE,EU\n'), reason: /has no MaxMind DB metadata section/ },
  { name: 'a database cut in half', write: (p) => writeFile(p, dbDE.subarray(0, Math.floor(dbDE.length / 2))), reason: /has no MaxMind DB metadata section/ },
  {
    name: 'a database whose tree points past its data',
    write: (p) => {
      const bad = Buffer.from(dbDE);
      bad.writeUIntBE(0xfffff0, 0, 3); // node 0, left record
      return writeFile(p, bad);
    },
    reason: /has node 0 pointing at data offset \d+, past its \d+-byte data section/,
  },
  {
    name: 'a database with a damaged separator',
    write: async (p) => {
      const bad = Buffer.from(dbDE);
      // The separator follows the tree: 16 zero bytes before the first data byte.
      bad[new Reader(dbDE).metadata.searchTreeSize + 3] = 7;
      await writeFile(p, bad);
    },
    reason: /has no 16 zero bytes after its search tree/,
  },
  {
    name: 'an ASN database (records without country or continent)',
    write: (p) => writeFile(p, writeMmdb({ databaseType: 'GeoLite2-ASN', networks: [{ cidr: '192.0.2.0/24', data: { autonomous_system_number: 64500, autonomous_system_organization: 'Example' } }] })),
    reason: /has records without country\.iso_code, country_code or continent\.code \(database_type "GeoLite2-ASN"; 1 records checked\)/,
  },
  { name: 'a database with no network', write: (p) => writeFile(p, writeMmdb({ networks: [] })), reason: /holds no network at all/ },
];

for (const c of refused) {
  test(`refuses ${c.name}, naming the file and the reason`, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'geo.mmdb');
    await c.write(path);
    await assert.rejects(loadGeoDatabase(path), (err: unknown) => {
      assert.ok(err instanceof OpenGslbError, String(err));
      assert.equal(err.code, 'OPENGSLB_ERR_GEO_DATABASE');
      assert.ok(err.message.startsWith(`GeoIP database ${path}: `), err.message);
      assert.match(err.message, c.reason);
      assert.match(err.message, /expected a MaxMind DB \(\.mmdb\) file with country or continent data/);
      return true;
    });
  });
}

test('a DB-IP-shaped database is accepted with record shape country_code', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'dbip.mmdb');
  await writeFile(path, writeMmdb({ ipVersion: 4, recordSize: 32, networks: [{ cidr: '198.51.100.0/24', data: dbipCountry('BR') }] }));
  const db = await loadGeoDatabase(path);
  assert.equal(db.info.recordShape, 'country_code');
  assert.equal(db.info.ipVersion, 4);
  assert.equal(countryIn(db, '198.51.100.9'), 'BR');
});

/** Collects GeoDatabase callbacks; next() resolves with the next one (or one that came already). */
function events(): { onChange: (db: LoadedGeoDatabase) => void; onError: (err: OpenGslbError) => void; next: () => Promise<LoadedGeoDatabase | OpenGslbError> } {
  const queue: (LoadedGeoDatabase | OpenGslbError)[] = [];
  const waiting: ((v: LoadedGeoDatabase | OpenGslbError) => void)[] = [];
  const push = (v: LoadedGeoDatabase | OpenGslbError): void => {
    const w = waiting.shift();
    if (w !== undefined) w(v);
    else queue.push(v);
  };
  return {
    onChange: push,
    onError: push,
    next: () => new Promise((resolve) => {
      const v = queue.shift();
      if (v !== undefined) resolve(v);
      else waiting.push(resolve);
    }),
  };
}

test('a file replaced on disk is reloaded; a corrupt replacement is refused and the old database keeps serving', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'GeoLite2-Country.mmdb');
  await writeFile(path, dbDE);
  const ev = events();
  const geo = await GeoDatabase.open({ path, debounceMs: 50, onChange: ev.onChange, onError: ev.onError });
  t.after(() => geo.close());
  assert.equal(countryIn(geo.current, '192.0.2.1'), 'DE');

  // Replaced by rename, as geoipupdate does.
  await writeFile(join(dir, 'next.tmp'), dbFR);
  await rename(join(dir, 'next.tmp'), path);
  const changed = await ev.next();
  assert.ok(!(changed instanceof OpenGslbError), String(changed));
  assert.equal(countryIn(changed, '192.0.2.1'), 'FR');
  assert.equal(geo.current, changed);

  // Overwritten in place with something that is not a database.
  await writeFile(path, 'not a database');
  const refusedErr = await ev.next();
  assert.ok(refusedErr instanceof OpenGslbError);
  assert.match(refusedErr.message, new RegExp(`^GeoIP database ${path}: has no MaxMind DB metadata section`));
  assert.match(refusedErr.message, /keeps serving\)$/);
  assert.equal(geo.current, changed, 'the FR database still serves');
  assert.equal(countryIn(geo.current, '192.0.2.1'), 'FR');

  // Fixed in place: reloaded again.
  await writeFile(path, dbDE);
  const back = await ev.next();
  assert.ok(!(back instanceof OpenGslbError));
  assert.equal(countryIn(back, '192.0.2.1'), 'DE');
});

test('reload() (SIGHUP) publishes a changed file, skips an unchanged one and rejects a bad one keeping the old', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'country.mmdb');
  await writeFile(path, dbDE);
  const published: LoadedGeoDatabase[] = [];
  const geo = await GeoDatabase.open({ path, watch: false, onChange: (db) => published.push(db) });
  t.after(() => geo.close());
  const first = geo.current;

  assert.equal(await geo.reload(), false, 'same bytes: nothing to publish');
  assert.equal(geo.current, first);

  await writeFile(path, dbFR);
  assert.equal(await geo.reload(), true);
  assert.equal(published.length, 1);
  assert.equal(countryIn(geo.current, '192.0.2.1'), 'FR');

  await rm(path);
  await assert.rejects(geo.reload(), (err: unknown) => {
    assert.ok(err instanceof OpenGslbError);
    assert.equal(err.code, 'OPENGSLB_ERR_GEO_DATABASE');
    assert.match(err.message, /: does not exist; .*keeps serving\)$/);
    return true;
  });
  assert.equal(countryIn(geo.current, '192.0.2.1'), 'FR');
  assert.equal(published.length, 1);
});

test('concurrent reloads run one after the other and publish once', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'country.mmdb');
  await writeFile(path, dbDE);
  let calls = 0;
  const geo = await GeoDatabase.open({ path, watch: false, onChange: () => calls++ });
  t.after(() => geo.close());
  await writeFile(path, dbFR);
  const results = await Promise.all([geo.reload(), geo.reload(), geo.reload()]);
  assert.deepEqual(results, [true, false, false]);
  assert.equal(calls, 1);
});

test('opening a refused file throws at start (there is nothing to keep serving)', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(GeoDatabase.open({ path: join(dir, 'none.mmdb'), watch: false }), /does not exist/);
});

test('with no path, the bundled database opens', async (t) => {
  const geo = await GeoDatabase.open({ watch: false });
  t.after(() => geo.close());
  assert.equal(geo.path, BUNDLED_GEOIP_PATH);
  assert.equal(geo.current.info.bundled, true);
});
