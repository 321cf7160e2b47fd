// Bench only. Micro: the geolocation step of a query. GeoIpReader.find on the
// bundled DB-IP country database (1 024 random addresses in turn, so the walk
// touches cold parts of the 8 MB tree as real traffic does), maxmind's own
// getWithPrefixLength on the same addresses as text (the call lookup.ts
// avoids), findCidr on a table of 200 custom mappings, the whole
// decideRegion, and readEcsOption. Expected: no allocation except the
// maxmind baseline.
//
// One case stands for a City-size database: CITY_NETWORKS /24s, each its own
// record (more than GEO_RECORD_CACHE_MAX), asked by a client mix of a hot set
// of CITY_HOT networks (CITY_HOT_SHARE of the lookups) and a long tail over
// all the others, in a fixed order of CITY_LOOKUPS addresses. The database is
// written (test/helpers/mmdb-writer.ts) on the case's first call only, so
// other filters do not pay for it; the hit rate of the record cache over one
// pass of the sequence, after one pass to warm it, goes to stderr.

import { Reader } from 'maxmind';
import { readEcsOption } from '../src/dns/ecs.ts';
import { compileGeoTable, decideRegion, findCidr, GeoDecision } from '../src/geo/cidr-table.ts';
import { BUNDLED_GEOIP_PATH, loadGeoDatabase } from '../src/geo/database.ts';
import { GEO_RECORD_CACHE_MAX, GeoIpReader } from '../src/geo/lookup.ts';
import { formatIpBytes } from '../src/lib/ip.ts';
import { writeMmdb } from '../test/helpers/mmdb-writer.ts';
import type { AddCase } from './lib/micro-suite.ts';
import { seededRandom } from './lib/scenarios.ts';

const db = await loadGeoDatabase(BUNDLED_GEOIP_PATH);

/** Networks (/24s from 1.0.0.0 up, one record each) of the City-size case: about 4 × GEO_RECORD_CACHE_MAX. */
const CITY_NETWORKS = 4 * GEO_RECORD_CACHE_MAX;
/** Networks of the hot set (resolvers and large ISPs' ranges asking all the time). */
const CITY_HOT = 16_384;
/** Share of the lookups that come from the hot set; the rest are spread over every network. */
const CITY_HOT_SHARE = 0.9;
/** Addresses in the sequence (a power of two); its tail alone meets more distinct networks than the cache holds. */
const CITY_LOOKUPS = 1 << 20;

/** The City-size case's database and its address sequence (4 bytes each). */
function cityCase(): { reader: GeoIpReader; seq: Uint8Array } {
  const networks = Array.from({ length: CITY_NETWORKS }, (_, i) => ({
    cidr: `${1 + (i >>> 16)}.${(i >>> 8) & 0xff}.${i & 0xff}.0/24`,
    data: { country_code: 'US', geoname_id: 100_000 + i },
  }));
  const bytes = writeMmdb({ ipVersion: 4, recordSize: 24, databaseType: 'Bench-City', networks });
  const shared = new SharedArrayBuffer(bytes.length);
  new Uint8Array(shared).set(bytes);
  const rnd = seededRandom(7);
  const hot = Array.from({ length: CITY_HOT }, () => Math.floor(rnd() * CITY_NETWORKS));
  const seq = new Uint8Array(CITY_LOOKUPS * 4);
  for (let k = 0; k < CITY_LOOKUPS; k++) {
    const net = rnd() < CITY_HOT_SHARE ? hot[Math.floor(rnd() * CITY_HOT)] : Math.floor(rnd() * CITY_NETWORKS);
    seq.set([1 + (net >>> 16), (net >>> 8) & 0xff, net & 0xff, Math.floor(rnd() * 256)], k * 4);
  }
  // Hit rate on a reader of its own: one pass to warm, one counted.
  const probe = new GeoIpReader(shared);
  for (let k = 0; k < CITY_LOOKUPS; k++) probe.find(seq, k * 4, 4);
  const warm = probe.missCount;
  for (let k = 0; k < CITY_LOOKUPS; k++) probe.find(seq, k * 4, 4);
  const misses = probe.missCount - warm;
  process.stderr.write(`geo: City-size case: ${CITY_NETWORKS} records, record cache hit rate ${(100 * (1 - misses / CITY_LOOKUPS)).toFixed(2)} % (${misses} misses in ${CITY_LOOKUPS} lookups after a warm pass)\n`);
  return { reader: new GeoIpReader(shared), seq };
}

/** 1 024 addresses of one family packed back to back (IPv6 inside 2000::/3, where the allocations are). */
function addresses(seed: number, len: 4 | 16): Uint8Array {
  const rnd = seededRandom(seed);
  const out = new Uint8Array(1024 * len);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rnd() * 256);
  if (len === 16) for (let i = 0; i < out.length; i += 16) out[i] = 0x20 | (out[i] & 0x1f);
  return out;
}

export default function register(add: AddCase): void {
  const reader = new GeoIpReader(db.sab);
  const v4 = addresses(1, 4);
  const v6 = addresses(2, 16);
  let i = 0;
  add('geo', 'GeoIpReader.find, IPv4 (1 024 random addresses in turn)', () => {
    i = (i + 1) & 1023;
    return reader.find(v4, i * 4, 4);
  });
  let j = 0;
  add('geo', 'GeoIpReader.find, IPv6 in 2000::/3 (1 024 in turn)', () => {
    j = (j + 1) & 1023;
    return reader.find(v6, j * 16, 16);
  });

  let city: { reader: GeoIpReader; seq: Uint8Array } | null = null;
  let m = 0;
  add('geo', `GeoIpReader.find, City-size (${CITY_NETWORKS} records), ${CITY_HOT_SHARE * 100} % from ${CITY_HOT} hot networks + long tail`, () => {
    city ??= cityCase();
    m = (m + 1) & (CITY_LOOKUPS - 1);
    return city.reader.find(city.seq, m * 4, 4);
  });

  const maxmind = new Reader(Buffer.from(db.sab));
  const v4Text = Array.from({ length: 1024 }, (_, k) => formatIpBytes(v4, k * 4, 4));
  let k = 0;
  add('geo', 'alternative: maxmind getWithPrefixLength(text), IPv4 (same addresses)', () => {
    k = (k + 1) & 1023;
    return maxmind.getWithPrefixLength(v4Text[k])[1];
  });

  // 100 IPv4 /24s and 100 IPv6 /48s scattered by the same generator.
  const rnd = seededRandom(3);
  const mappings = [];
  for (let m = 0; m < 100; m++) {
    mappings.push({ cidr: `${Math.floor(rnd() * 224)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.0/24`, region: m % 4 });
    mappings.push({ cidr: `2${Math.floor(rnd() * 4096).toString(16).padStart(3, '0')}:${Math.floor(rnd() * 65536).toString(16)}:${Math.floor(rnd() * 65536).toString(16)}::/48`, region: m % 4 });
  }
  const regions = [
    { countries: ['US', 'CA'], continents: ['NA'] },
    { countries: ['DE', 'FR', 'NL'], continents: ['EU'] },
    { countries: ['JP'], continents: ['AS', 'OC'] },
    { countries: ['BR'], continents: ['SA', 'AF'] },
  ];
  const table = compileGeoTable({ regions, defaultRegion: 0, mappings });
  const out = new GeoDecision();
  let c = 0;
  add('geo', 'findCidr, 200 mappings (random IPv4 clients, mostly misses)', () => {
    c = (c + 1) & 1023;
    return findCidr(table, 0, v4, c * 4, 4, out);
  });
  const hit = new Uint8Array(4);
  const firstMapping = mappings[0].cidr.split('/')[0].split('.').map(Number);
  hit.set([firstMapping[0], firstMapping[1], firstMapping[2], 77]);
  add('geo', 'findCidr, 200 mappings, an IPv4 client a /24 holds', () => findCidr(table, 0, hit, 0, 4, out));
  let d = 0;
  add('geo', 'decideRegion: custom miss → GeoIP → country/continent/default (IPv4, 1 024 in turn)', () => {
    d = (d + 1) & 1023;
    return decideRegion(table, 0, v4, d * 4, 4, reader, out) + out.scopeLen;
  });

  // An ECS option's DATA for 198.51.100.0/24 inside a buffer, as the parser finds it.
  const option = Uint8Array.from([0, 1, 24, 0, 198, 51, 100]);
  const scratch = new Uint8Array(16);
  add('geo', 'readEcsOption, IPv4 /24', () => readEcsOption(option, 0, option.length, scratch) + scratch[2]);
}
