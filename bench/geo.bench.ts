// Bench only. Micro: the geolocation step of a query. GeoIpReader.find on the
// bundled DB-IP country database (1 024 random addresses in turn, so the walk
// touches cold parts of the 8 MB tree as real traffic does), maxmind's own
// getWithPrefixLength on the same addresses as text (the call lookup.ts
// avoids), findCidr on a table of 200 custom mappings, the whole
// decideRegion, and readEcsOption. Expected: no allocation except the
// maxmind baseline.

import { Reader } from 'maxmind';
import { readEcsOption } from '../src/dns/ecs.ts';
import { compileGeoTable, decideRegion, findCidr, GeoDecision } from '../src/geo/cidr-table.ts';
import { BUNDLED_GEOIP_PATH, loadGeoDatabase } from '../src/geo/database.ts';
import { GeoIpReader } from '../src/geo/lookup.ts';
import { formatIpBytes } from '../src/lib/ip.ts';
import type { AddCase } from './lib/micro-suite.ts';
import { seededRandom } from './lib/scenarios.ts';

const db = await loadGeoDatabase(BUNDLED_GEOIP_PATH);

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
