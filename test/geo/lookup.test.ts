// GeoIpReader over real databases: the bundled DB-IP database (known
// addresses still in their countries; the tree walk agrees with maxmind's
// getWithPrefixLength on thousands of addresses), databases of both record
// shapes and every record size written by the test helper, the record cache
// over a City-size database (hot records kept, size bounded), and one
// SharedArrayBuffer read by two real worker threads.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Reader } from 'maxmind';
import { CONTINENT_CODES, continentCodeOf, countryCodeOf, countryIndex } from '../../src/geo/continents.ts';
import { BUNDLED_GEOIP_PATH, loadGeoDatabase } from '../../src/geo/database.ts';
import { GEO_RECORD_CACHE_MAX, geoContinentOf, geoCountryOf, GeoIpReader, geoPrefixLenOf, packGeoRecord } from '../../src/geo/lookup.ts';
import { formatIpBytes, ipToBytes } from '../../src/lib/ip.ts';
import { seededRandom } from '../../src/lib/random.ts';
import { createWorker } from '../../src/lib/worker-thread.ts';
import { KNOWN_LOCATIONS } from '../helpers/geo-known.ts';
import { dbipCountry, maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';

const bundled = await loadGeoDatabase(BUNDLED_GEOIP_PATH);
const reader = new GeoIpReader(bundled.sab);

function lookup(r: GeoIpReader, ip: string): { country: string | null; continent: string | null; prefixLen: number } {
  const bytes = ipToBytes(ip);
  const found = r.find(bytes, 0, bytes.length);
  const c = geoCountryOf(found);
  const k = geoContinentOf(found);
  return { country: c < 0 ? null : countryCodeOf(c), continent: k < 0 ? null : continentCodeOf(k), prefixLen: geoPrefixLenOf(found) };
}

for (const known of KNOWN_LOCATIONS) {
  test(`the bundled database still places ${known.ip} (${known.who}) in ${known.country}, ${known.continent}`, () => {
    const got = lookup(reader, known.ip);
    assert.equal(got.country, known.country);
    assert.equal(got.continent, known.continent);
  });
}

test('the bundled database is the DB-IP country database with country_code records', () => {
  assert.equal(bundled.info.bundled, true);
  assert.equal(bundled.info.recordShape, 'country_code');
  assert.equal(bundled.info.ipVersion, 6);
  assert.ok(bundled.info.sizeBytes > 1_000_000, `${bundled.info.sizeBytes} bytes`);
});

/** Random addresses: IPv4 across the whole space, IPv6 inside 2000::/3 where the allocations are. */
function randomAddresses(seed: number, count: number): Uint8Array[] {
  const rnd = seededRandom(seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const b = new Uint8Array(i % 2 === 0 ? 4 : 16);
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
    if (b.length === 16) b[0] = 0x20 | (b[0] & 0x1f);
    out.push(b);
  }
  return out;
}

test('the tree walk gives the same record and prefix length as maxmind getWithPrefixLength for 6 000 addresses of the bundled database', () => {
  const ref = new Reader(Buffer.from(bundled.sab));
  for (const bytes of randomAddresses(7, 6000)) {
    const text = formatIpBytes(bytes, 0, bytes.length);
    const [record, prefixLen] = ref.getWithPrefixLength(text);
    const found = reader.find(bytes, 0, bytes.length);
    assert.equal(geoPrefixLenOf(found), prefixLen, text);
    assert.equal(found & ~0xff, packGeoRecord(record), text);
  }
});

test('records are decoded once each and then come from the cache', () => {
  const r = new GeoIpReader(bundled.sab);
  for (let i = 0; i < 3; i++) lookup(r, '8.8.8.8');
  assert.equal(r.missCount, 1);
  lookup(r, '8.8.4.4');
  assert.equal(r.missCount, 1, 'the same record (US) for another network');
});

// A City-size database: more distinct records than the record cache holds,
// one per /24 from 1.0.0.0 up, each with a country of its own in turn.
const CITY_NETWORKS = Math.floor(2.5 * GEO_RECORD_CACHE_MAX);
const CITY_COUNTRIES = ['US', 'DE', 'JP', 'BR'];
const citySab = (() => {
  const networks = Array.from({ length: CITY_NETWORKS }, (_, i) => ({
    cidr: `${1 + (i >>> 16)}.${(i >>> 8) & 0xff}.${i & 0xff}.0/24`,
    data: { country_code: CITY_COUNTRIES[i % 4], geoname_id: 100_000 + i },
  }));
  const bytes = writeMmdb({ ipVersion: 4, networks });
  const sab = new SharedArrayBuffer(bytes.length);
  new Uint8Array(sab).set(bytes);
  return sab;
})();
const cityAddress = (i: number): Uint8Array => Uint8Array.of(1 + (i >>> 16), (i >>> 8) & 0xff, i & 0xff, 1);

test('a City-size database: records asked often survive a long tail of more distinct records than the cache holds, which stays bounded', () => {
  const r = new GeoIpReader(citySab);
  const hot = Array.from({ length: 200 }, (_, k) => (k * 811) % CITY_NETWORKS);
  const askHot = (): number => {
    const before = r.missCount;
    for (const i of hot) {
      const a = cityAddress(i);
      assert.equal(countryCodeOf(geoCountryOf(r.find(a, 0, 4))), CITY_COUNTRIES[i % 4], `network ${i}`);
    }
    return r.missCount - before;
  };
  assert.equal(askHot(), hot.length, 'each hot record is decoded once');
  let hotMisses = 0;
  for (let t = 0; t < CITY_NETWORKS; t++) {
    const a = cityAddress(t);
    assert.equal(geoCountryOf(r.find(a, 0, 4)), countryIndex(CITY_COUNTRIES[t % 4]), `network ${t}`);
    if (t % 1000 === 999) {
      hotMisses += askHot();
      assert.ok(r.cachedRecords <= GEO_RECORD_CACHE_MAX, `${r.cachedRecords} records cached after ${t + 1} of the tail`);
    }
  }
  assert.ok(r.missCount >= CITY_NETWORKS, `${r.missCount} misses: the tail was decoded, not served from a cache larger than allowed`);
  assert.equal(hotMisses, 0, `the hot records were decoded again ${hotMisses} times while ${CITY_NETWORKS} others passed through the cache`);
  assert.ok(r.cachedRecords <= GEO_RECORD_CACHE_MAX, `${r.cachedRecords} records cached`);
  assert.ok(r.cachedRecords >= GEO_RECORD_CACHE_MAX / 2, `${r.cachedRecords} records cached: the cache still holds at least one generation`);
});

test('a City-size database: a record not asked for two generations is dropped and decoded again when asked', () => {
  const r = new GeoIpReader(citySab);
  const first = cityAddress(0);
  r.find(first, 0, 4);
  assert.equal(r.missCount, 1);
  for (let t = 1; t <= GEO_RECORD_CACHE_MAX / 2; t++) r.find(cityAddress(t), 0, 4);
  r.find(first, 0, 4);
  assert.equal(r.missCount, 1 + GEO_RECORD_CACHE_MAX / 2, 'after one generation it is still held (moved back to the young one)');
  for (let t = 1 + GEO_RECORD_CACHE_MAX / 2; t <= 1 + 2 * GEO_RECORD_CACHE_MAX; t++) r.find(cityAddress(t), 0, 4);
  const before = r.missCount;
  assert.equal(countryCodeOf(geoCountryOf(r.find(first, 0, 4))), 'US');
  assert.equal(r.missCount, before + 1, 'decoded again');
  assert.ok(r.cachedRecords <= GEO_RECORD_CACHE_MAX, `${r.cachedRecords} records cached`);
});

test('an IPv4-mapped IPv6 address is looked up as IPv4, its prefix length counted in IPv6 bits', () => {
  const v4 = lookup(reader, '8.8.8.8');
  const mapped = lookup(reader, '::ffff:8.8.8.8');
  assert.deepEqual(mapped, { ...v4, prefixLen: v4.prefixLen + 96 });
});

test('an address in no network has no country and the prefix length of the empty network around it', () => {
  const ref = new Reader(Buffer.from(bundled.sab));
  for (const ip of ['10.1.2.3', '127.0.0.1', '::1', 'fe80::1']) {
    const got = lookup(reader, ip);
    assert.equal(got.country, null, ip);
    assert.equal(got.prefixLen, ref.getWithPrefixLength(ip)[1], ip);
  }
});

const shapes = [
  { name: 'MaxMind-shaped', record: (c: string, k: string) => maxmindCountry(c, k) },
  { name: 'DB-IP-shaped', record: (c: string) => dbipCountry(c) },
];
for (const shape of shapes) {
  for (const recordSize of [24, 28, 32] as const) {
    for (const ipVersion of [4, 6] as const) {
      test(`a ${shape.name} IPv${ipVersion} database with ${recordSize}-bit records gives countries, continents and nested prefixes`, () => {
        const networks = [
          { cidr: '192.0.2.0/24', data: shape.record('DE', 'EU') },
          { cidr: '192.0.2.128/26', data: shape.record('FR', 'EU') },
          { cidr: '198.51.100.0/22', data: shape.record('BR', 'SA') },
          ...(ipVersion === 6 ? [{ cidr: '2001:db8::/32', data: shape.record('JP', 'AS') }, { cidr: '2001:db8:8000::/33', data: shape.record('AU', 'OC') }] : []),
        ];
        const buf = writeMmdb({ ipVersion, recordSize, networks });
        const sab = new SharedArrayBuffer(buf.length);
        new Uint8Array(sab).set(buf);
        const r = new GeoIpReader(sab);
        assert.deepEqual(lookup(r, '192.0.2.1'), { country: 'DE', continent: 'EU', prefixLen: 25 });
        assert.deepEqual(lookup(r, '192.0.2.100'), { country: 'DE', continent: 'EU', prefixLen: 25 });
        assert.deepEqual(lookup(r, '192.0.2.200'), { country: 'DE', continent: 'EU', prefixLen: 26 });
        assert.deepEqual(lookup(r, '192.0.2.130'), { country: 'FR', continent: 'EU', prefixLen: 26 });
        assert.deepEqual(lookup(r, '198.51.101.7'), { country: 'BR', continent: 'SA', prefixLen: 22 });
        assert.equal(lookup(r, '203.0.113.1').country, null);
        if (ipVersion === 6) {
          assert.deepEqual(lookup(r, '2001:db8:1::1'), { country: 'JP', continent: 'AS', prefixLen: 33 });
          assert.deepEqual(lookup(r, '2001:db8:8001::1'), { country: 'AU', continent: 'OC', prefixLen: 33 });
        } else {
          assert.deepEqual(lookup(r, '2001:db8::1'), { country: null, continent: null, prefixLen: 0 }, 'no IPv6 in an IPv4 database');
        }
        const ref = new Reader(buf);
        for (const ip of ['192.0.2.1', '192.0.2.200', '198.51.100.1', '8.8.8.8']) assert.equal(lookup(r, ip).prefixLen, ref.getWithPrefixLength(ip)[1], ip);
      });
    }
  }
}

const records: { name: string; record: unknown; country: string | null; continent: string | null }[] = [
  { name: 'a GeoIP2 country record', record: maxmindCountry('DE', 'EU'), country: 'DE', continent: 'EU' },
  { name: 'a GeoIP2 record with a continent only', record: maxmindCountry(null, 'EU'), country: null, continent: 'EU' },
  { name: 'a GeoIP2 record with a country only', record: maxmindCountry('BR', null), country: 'BR', continent: 'SA' },
  { name: 'a DB-IP record', record: { country_code: 'JP' }, country: 'JP', continent: 'AS' },
  { name: 'a lower-case code', record: { country_code: 'nz' }, country: 'NZ', continent: 'OC' },
  { name: 'the legacy "EU" pseudo-country', record: { country_code: 'EU' }, country: null, continent: null },
  { name: 'a record with neither', record: { autonomous_system_number: 64500 }, country: null, continent: null },
  { name: 'null', record: null, country: null, continent: null },
  { name: 'a number', record: 7, country: null, continent: null },
  { name: 'a country that is not text', record: { country: { iso_code: 5 }, continent: { code: 'XX' } }, country: null, continent: null },
];
for (const c of records) {
  test(`packGeoRecord reads ${c.name}`, () => {
    const packed = packGeoRecord(c.record);
    const country = geoCountryOf(packed);
    const continent = geoContinentOf(packed);
    assert.equal(country < 0 ? null : countryCodeOf(country), c.country);
    assert.equal(continent < 0 ? null : CONTINENT_CODES[continent], c.continent);
    assert.equal(geoPrefixLenOf(packed), 0);
  });
}

test('two worker threads read one SharedArrayBuffer and give the main thread\'s answers', async (t) => {
  const db = await loadGeoDatabase(BUNDLED_GEOIP_PATH);
  const addresses = [...KNOWN_LOCATIONS.map((k) => ipToBytes(k.ip)), ...randomAddresses(11, 500)];
  const mine = new GeoIpReader(db.sab);
  const expected = addresses.map((a) => mine.find(a, 0, a.length));
  const workers = [0, 1].map(() => createWorker(new URL('./lookup-worker.ts', import.meta.url), { workerData: { sab: db.sab, addresses } }));
  t.after(() => Promise.all(workers.map((w) => w.terminate())));
  const replies = await Promise.all(workers.map(async (w) => (await once(w, 'message'))[0] as { results: number[]; isShared: boolean }));
  for (const reply of replies) {
    assert.equal(reply.isShared, true);
    assert.deepEqual(reply.results, expected);
  }
  assert.equal(countryCodeOf(geoCountryOf(replies[0].results[0])), KNOWN_LOCATIONS[0].country);
  assert.ok(countryIndex(KNOWN_LOCATIONS[0].country) >= 0);
  // One copy: a byte written here after they attached is what both workers read.
  const view = new Uint8Array(db.sab);
  view[view.length - 1] ^= 0x5a;
  const lastBytes = await Promise.all(workers.map(async (w) => {
    w.postMessage('read');
    return ((await once(w, 'message'))[0] as { lastByte: number }).lastByte;
  }));
  assert.deepEqual(lastBytes, [view[view.length - 1], view[view.length - 1]]);
});
