// The compiled geo table: longest-prefix match and ECS scope over IPv4 and
// IPv6 (table-driven, then against a brute-force reference on seeded random
// tables), the decision order custom > country > continent > default, and
// the compile-time refusals.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkGeoTable, compileGeoTable, decideRegion, decideWithoutAddress, findCidr, GEO_NODES, GeoDecision, MATCH_CONTINENT, MATCH_COUNTRY,
  MATCH_CUSTOM, MATCH_DEFAULT, MATCH_NONE, MATCH_TYPE_NAMES, maskedCidr, NODE_WORDS_V4, NODE_WORDS_V6,
} from '../../src/geo/cidr-table.ts';
import type { CidrMapping, GeoTableInput } from '../../src/geo/cidr-table.ts';
import { countryCodeOf } from '../../src/geo/continents.ts';
import { GeoIpReader } from '../../src/geo/lookup.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { ipToBytes } from '../../src/lib/ip.ts';
import { seededRandom } from '../../src/lib/random.ts';
import { dbipCountry, maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';

const EMPTY_REGIONS = Array.from({ length: 8 }, () => ({ countries: [], continents: [] }));

function table(mappings: readonly CidrMapping[], extra: Partial<GeoTableInput> = {}): Uint32Array {
  return compileGeoTable({ regions: EMPTY_REGIONS, defaultRegion: -1, mappings, ...extra });
}

/** findCidr on an address given as text; the table may sit at an offset inside a larger array. */
function find(t: Uint32Array, ip: string, base = 0): { region: number; cidrLen: number; scopeLen: number } {
  const words = new Uint32Array(base + t.length);
  words.set(t, base);
  const bytes = ipToBytes(ip);
  const out = new GeoDecision();
  const region = findCidr(words, base, bytes, 0, bytes.length, out);
  return { region, cidrLen: out.cidrLen, scopeLen: out.scopeLen };
}

const nested: CidrMapping[] = [
  { cidr: '10.0.0.0/8', region: 0 },
  { cidr: '10.1.0.0/16', region: 1 },
  { cidr: '10.1.2.0/24', region: 2 },
  { cidr: '10.1.2.3/32', region: 3 },
  { cidr: '192.0.2.0/24', region: 4 },
  { cidr: '2001:db8::/32', region: 5 },
  { cidr: '2001:db8:1::/48', region: 6 },
  { cidr: '2001:db8:1:2::1/128', region: 7 },
];

const lpmCases: { name: string; ip: string; expect: { region: number; cidrLen: number; scopeLen: number }; mappings?: CidrMapping[] }[] = [
  { name: 'the /8 for an address only it holds, scope cut where 10.1/16 parts', ip: '10.2.3.4', expect: { region: 0, cidrLen: 8, scopeLen: 15 } },
  { name: 'the /8 far from the /16, scope /9', ip: '10.200.0.1', expect: { region: 0, cidrLen: 8, scopeLen: 9 } },
  { name: 'the /16 inside the /8', ip: '10.1.200.1', expect: { region: 1, cidrLen: 16, scopeLen: 17 } },
  { name: 'the /24 inside the /16', ip: '10.1.2.4', expect: { region: 2, cidrLen: 24, scopeLen: 30 } },
  { name: 'the /32 inside the /24', ip: '10.1.2.3', expect: { region: 3, cidrLen: 32, scopeLen: 32 } },
  { name: 'a sibling /24 with no mapping inside', ip: '192.0.2.77', expect: { region: 4, cidrLen: 24, scopeLen: 24 } },
  { name: 'no mapping: scope where the address leaves the mappings', ip: '8.8.8.8', expect: { region: -1, cidrLen: -1, scopeLen: 7 } },
  { name: 'no mapping next to 10/8: scope 8', ip: '11.0.0.1', expect: { region: -1, cidrLen: -1, scopeLen: 8 } },
  { name: 'the IPv6 /32', ip: '2001:db8:ffff::1', expect: { region: 5, cidrLen: 32, scopeLen: 33 } },
  { name: 'the IPv6 /48 inside the /32', ip: '2001:db8:1:ffff::1', expect: { region: 6, cidrLen: 48, scopeLen: 49 } },
  { name: 'the IPv6 /128 inside the /48', ip: '2001:db8:1:2::1', expect: { region: 7, cidrLen: 128, scopeLen: 128 } },
  { name: 'the IPv6 /48 beside the /128', ip: '2001:db8:1:2::2', expect: { region: 6, cidrLen: 48, scopeLen: 127 } },
  { name: 'no IPv6 mapping', ip: '2a00::1', expect: { region: -1, cidrLen: -1, scopeLen: 5 } },
  { name: 'an IPv4-mapped address, matched as IPv4 with lengths + 96', ip: '::ffff:10.1.2.3', expect: { region: 3, cidrLen: 128, scopeLen: 128 } },
  { name: 'an IPv4-mapped address no mapping holds: scope 96 + the IPv4 scope', ip: '::ffff:11.0.0.1', expect: { region: -1, cidrLen: -1, scopeLen: 104 } },
  { name: '0.0.0.0/0 holding everything IPv4', ip: '198.51.100.1', mappings: [{ cidr: '0.0.0.0/0', region: 1 }], expect: { region: 1, cidrLen: 0, scopeLen: 0 } },
  { name: '0.0.0.0/0 beside a /24', ip: '198.51.100.1', mappings: [{ cidr: '0.0.0.0/0', region: 1 }, { cidr: '192.0.2.0/24', region: 2 }], expect: { region: 1, cidrLen: 0, scopeLen: 6 } },
  { name: '::/0 holding everything IPv6', ip: '2001:db8::1', mappings: [{ cidr: '::/0', region: 2 }], expect: { region: 2, cidrLen: 0, scopeLen: 0 } },
  { name: '::/0 does not hold IPv4 clients', ip: '192.0.2.1', mappings: [{ cidr: '::/0', region: 2 }], expect: { region: -1, cidrLen: -1, scopeLen: 0 } },
  { name: 'an empty table', ip: '192.0.2.1', mappings: [], expect: { region: -1, cidrLen: -1, scopeLen: 0 } },
  { name: 'host bits in a mapping are ignored', ip: '203.0.113.9', mappings: [{ cidr: '203.0.113.77/24', region: 3 }], expect: { region: 3, cidrLen: 24, scopeLen: 24 } },
];

for (const c of lpmCases) {
  test(`findCidr picks ${c.name}`, () => {
    const t = table(c.mappings ?? nested);
    assert.deepEqual(find(t, c.ip), c.expect);
    // The same answer from a table appended after other words (as in the snapshot).
    assert.deepEqual(find(t, c.ip, 37), c.expect);
  });
}

/** The brute-force reference: longest prefix holding the address; scope = shortest s whose network around the address no longer mapping lies inside. */
function reference(mappings: readonly { bytes: Uint8Array; len: number; region: number }[], addr: Uint8Array): { region: number; cidrLen: number; scopeLen: number } {
  const bits = addr.length * 8;
  const sameBits = (a: Uint8Array, b: Uint8Array, n: number): boolean => {
    for (let i = 0; i < n; i++) if (((a[i >> 3] >> (7 - (i & 7))) & 1) !== ((b[i >> 3] >> (7 - (i & 7))) & 1)) return false;
    return true;
  };
  let region = -1;
  let cidrLen = -1;
  for (const m of mappings) {
    if (m.bytes.length === addr.length && m.len > cidrLen && sameBits(m.bytes, addr, m.len)) {
      region = m.region;
      cidrLen = m.len;
    }
  }
  for (let s = 0; s <= bits; s++) {
    if (!mappings.some((m) => m.bytes.length === addr.length && m.len > s && sameBits(m.bytes, addr, s))) return { region, cidrLen, scopeLen: s };
  }
  return { region, cidrLen, scopeLen: bits };
}

for (const family of [4, 16] as const) {
  test(`findCidr agrees with a brute-force reference on 40 seeded random ${family === 4 ? 'IPv4' : 'IPv6'} tables`, () => {
    const rnd = seededRandom(family);
    const bits = family * 8;
    for (let round = 0; round < 40; round++) {
      // Mappings crowd into a small corner of the space, so they nest and part often.
      const seen = new Set<string>();
      const mappings: { bytes: Uint8Array; len: number; region: number }[] = [];
      const count = 1 + Math.floor(rnd() * 30);
      const randomAddr = (): Uint8Array => {
        const b = new Uint8Array(family);
        b[0] = 0x20;
        for (let i = 1; i < family; i++) b[i] = rnd() < 0.7 ? 0 : Math.floor(rnd() * 256);
        return b;
      };
      while (mappings.length < count) {
        const len = Math.floor(rnd() * (bits + 1));
        const bytes = randomAddr();
        const key = maskedCidr(bytes, len);
        if (seen.has(key)) continue;
        seen.add(key);
        mappings.push({ bytes: ipToBytes(key.split('/')[0]), len, region: mappings.length % 8 });
      }
      const t = table(mappings.map((m) => ({ cidr: maskedCidr(m.bytes, m.len), region: m.region })));
      assert.equal(checkGeoTable(t, 0), null);
      assert.ok(t.length <= GEO_NODES + (2 * count - 1) * (family === 4 ? NODE_WORDS_V4 : NODE_WORDS_V6), 'at most 2n − 1 nodes');
      for (let q = 0; q < 60; q++) {
        const addr = q % 3 === 0 ? mappings[q % mappings.length].bytes : randomAddr();
        const out = new GeoDecision();
        const region = findCidr(t, 0, addr, 0, family, out);
        assert.deepEqual({ region, cidrLen: out.cidrLen, scopeLen: out.scopeLen }, reference(mappings, addr), `${maskedCidr(addr, bits)} in round ${round}`);
      }
    }
  });
}

// A database where the decision order shows: DE and FR networks, a continent-only network, a DB-IP-shaped US network.
const db = writeMmdb({
  networks: [
    { cidr: '81.0.0.0/8', data: maxmindCountry('DE', 'EU') },
    { cidr: '82.0.0.0/8', data: maxmindCountry('FR', 'EU') },
    { cidr: '83.0.0.0/8', data: maxmindCountry(null, 'EU') },
    { cidr: '84.0.0.0/8', data: maxmindCountry('JP', 'AS') },
    { cidr: '12.0.0.0/8', data: dbipCountry('US') },
    { cidr: '2001:db8::/32', data: maxmindCountry('DE', 'EU') },
  ],
});
const sab = new SharedArrayBuffer(db.length);
new Uint8Array(sab).set(db);
const reader = new GeoIpReader(sab);

// Regions: 0 de (DE), 1 europe (EU), 2 us (US), 3 fallback (default), 4 special (custom).
const geoTable = compileGeoTable({
  regions: [
    { countries: ['de'], continents: [] },
    { countries: [], continents: ['eu'] },
    { countries: ['US'], continents: [] },
    { countries: [], continents: [] },
    { countries: [], continents: [] },
  ],
  defaultRegion: 3,
  mappings: [{ cidr: '81.1.0.0/16', region: 4 }, { cidr: '2001:db8:1::/48', region: 4 }],
});

const decideCases: { name: string; ip: string; expect: Partial<GeoDecision>; geo?: boolean }[] = [
  { name: 'a custom mapping beats the country', ip: '81.1.2.3', expect: { region: 4, match: MATCH_CUSTOM, cidrLen: 16, scopeLen: 16, country: -1, geoPrefixLen: -1 } },
  { name: 'a custom IPv6 mapping beats the country', ip: '2001:db8:1::5', expect: { region: 4, match: MATCH_CUSTOM, cidrLen: 48, scopeLen: 48 } },
  { name: 'the country beats the continent', ip: '81.2.3.4', expect: { region: 0, match: MATCH_COUNTRY, cidrLen: -1, scopeLen: 15, geoPrefixLen: 8, country: 82 } },
  { name: 'the country of an IPv6 network', ip: '2001:db8:2::1', expect: { region: 0, match: MATCH_COUNTRY, scopeLen: 47, geoPrefixLen: 32 } },
  { name: 'a country without a region falls to its continent', ip: '82.0.0.1', expect: { region: 1, match: MATCH_CONTINENT, scopeLen: 8, continent: 3 } },
  { name: 'a network with a continent and no country', ip: '83.4.5.6', expect: { region: 1, match: MATCH_CONTINENT, country: -1, continent: 3 } },
  { name: 'a DB-IP record (country only) maps its country', ip: '12.1.1.1', expect: { region: 2, match: MATCH_COUNTRY, continent: 4 } },
  { name: 'a country and continent without regions fall to the default', ip: '84.0.0.1', expect: { region: 3, match: MATCH_DEFAULT, country: 249, continent: 2, scopeLen: 8 } },
  { name: 'an address the database lacks gets the default with the empty network as scope', ip: '100.64.0.1', expect: { region: 3, match: MATCH_DEFAULT, country: -1, geoPrefixLen: 3, scopeLen: 3 } },
  { name: 'without a database, no mapping means the default', ip: '81.2.3.4', geo: false, expect: { region: 3, match: MATCH_DEFAULT, geoPrefixLen: -1, scopeLen: 15 } },
  { name: 'an IPv4-mapped client is decided as IPv4', ip: '::ffff:81.2.3.4', expect: { region: 0, match: MATCH_COUNTRY, scopeLen: 111, geoPrefixLen: 104 } },
];

for (const c of decideCases) {
  test(`decideRegion: ${c.name}`, () => {
    const bytes = ipToBytes(c.ip);
    const out = new GeoDecision();
    // Fill the scratch with a previous decision first: every field must be overwritten.
    decideRegion(geoTable, 0, ipToBytes('81.1.2.3'), 0, 4, reader, out);
    const region = decideRegion(geoTable, 0, bytes, 0, bytes.length, c.geo === false ? null : reader, out);
    assert.equal(region, out.region);
    for (const [k, v] of Object.entries(c.expect)) assert.equal(out[k as keyof GeoDecision], v, k);
  });
}

test('the country indexes of the decision cases read back as their codes', () => {
  assert.equal(countryCodeOf(82), 'DE');
  assert.equal(countryCodeOf(249), 'JP');
});

test('without a default_region, an unmatched client gets no region (MATCH_NONE)', () => {
  const t = compileGeoTable({ regions: [{ countries: ['DE'], continents: [] }], defaultRegion: -1, mappings: [] });
  const out = new GeoDecision();
  assert.equal(decideRegion(t, 0, ipToBytes('84.0.0.1'), 0, 4, reader, out), -1);
  assert.equal(out.match, MATCH_NONE);
  assert.equal(MATCH_TYPE_NAMES[out.match], 'none');
});

test('decideWithoutAddress answers the default region with scope 0 and clears the rest', () => {
  const out = new GeoDecision();
  decideRegion(geoTable, 0, ipToBytes('81.1.2.3'), 0, 4, reader, out);
  assert.equal(decideWithoutAddress(geoTable, 0, out), 3);
  assert.deepEqual({ ...out }, { region: 3, match: MATCH_DEFAULT, scopeLen: 0, cidrLen: -1, country: -1, continent: -1, geoPrefixLen: -1 });
});

test('the match type names are those of the admin API', () => {
  assert.deepEqual([MATCH_CUSTOM, MATCH_COUNTRY, MATCH_CONTINENT, MATCH_DEFAULT].map((m) => MATCH_TYPE_NAMES[m]), ['custom_mapping', 'geoip', 'geoip', 'default']);
});

const refusals: { name: string; input: Partial<GeoTableInput>; message: RegExp }[] = [
  { name: 'a CIDR without a length', input: { mappings: [{ cidr: '10.0.0.0', region: 0 }] }, message: /"10\.0\.0\.0" is not a CIDR prefix/ },
  { name: 'a length over 32 for IPv4', input: { mappings: [{ cidr: '10.0.0.0/33', region: 0 }] }, message: /is not a CIDR prefix/ },
  { name: 'a CIDR that is not an address', input: { mappings: [{ cidr: 'ten/8', region: 0 }] }, message: /is not a CIDR prefix/ },
  { name: 'the same network twice', input: { mappings: [{ cidr: '10.0.0.0/8', region: 0 }, { cidr: '10.9.9.9/8', region: 1 }] }, message: /10\.0\.0\.0\/8 is mapped twice \(regions 0 and 1\)/ },
  { name: 'a region index out of range', input: { mappings: [{ cidr: '10.0.0.0/8', region: 8 }] }, message: /names region index 8, expected 0\.\.7/ },
  { name: 'a default region out of range', input: { defaultRegion: 9 }, message: /default_region names region index 9/ },
  { name: 'a country in two regions', input: { regions: [{ countries: ['DE'], continents: [] }, { countries: ['de'], continents: [] }] }, message: /country DE is in regions 0 and 1/ },
  { name: 'a continent in two regions', input: { regions: [{ countries: [], continents: ['EU'] }, { countries: [], continents: ['EU'] }] }, message: /continent EU is in regions 0 and 1/ },
  { name: 'an unknown country', input: { regions: [{ countries: ['ZZ'], continents: [] }] }, message: /"ZZ" is not an ISO 3166-1 alpha-2 country code/ },
  { name: 'an unknown continent', input: { regions: [{ countries: [], continents: ['XX'] }] }, message: /"XX" is not a continent code/ },
];
for (const c of refusals) {
  test(`compileGeoTable refuses ${c.name}`, () => {
    assert.throws(() => compileGeoTable({ regions: EMPTY_REGIONS, defaultRegion: -1, mappings: [], ...c.input }), (err: unknown) => {
      assert.ok(err instanceof OpenGslbError);
      assert.equal(err.code, 'OPENGSLB_ERR_SNAPSHOT_COMPILE');
      assert.match(err.message, c.message);
      return true;
    });
  });
}

test('checkGeoTable refuses a table with a wrong magic, version or length, and accepts a good one', () => {
  const t = table(nested);
  assert.equal(checkGeoTable(t, 0), null);
  const bad = (mutate: (w: Uint32Array) => void): string | null => {
    const copy = t.slice();
    mutate(copy);
    return checkGeoTable(copy, 0);
  };
  assert.match(bad((w) => (w[0] = 1)) ?? '', /magic/);
  assert.match(bad((w) => (w[1] = 2)) ?? '', /version 2/);
  assert.match(bad((w) => (w[2] = w.length + 1)) ?? '', /length/);
  assert.match(bad((w) => (w[4] = w.length + 5)) ?? '', /outside/);
  assert.match(checkGeoTable(t, t.length) ?? '', /does not fit/);
});

test('maskedCidr clears the host bits', () => {
  assert.equal(maskedCidr(ipToBytes('10.1.2.3'), 12), '10.0.0.0/12');
  assert.equal(maskedCidr(ipToBytes('2001:db8:abcd::1'), 36), '2001:db8:a000::/36');
  assert.equal(maskedCidr(ipToBytes('10.1.2.3'), 0), '0.0.0.0/0');
});
