// From a validated config to the compiled geo table, and the admin API's
// description of one decision.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { compileGeoTable } from '../../src/geo/cidr-table.ts';
import { GeoIpReader } from '../../src/geo/lookup.ts';
import { explainGeo, geoTableInputOf } from '../../src/geo/table-input.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';

const config = parseConfigText([
  'regions:',
  '  - { name: eu-west, servers: [{ address: 192.0.2.10 }], countries: [de], continents: [EU] }',
  '  - { name: us-east, servers: [{ address: 192.0.2.20 }], countries: [US] }',
  '  - { name: office, servers: [{ address: 192.0.2.30 }] }',
  'domains:',
  '  - { name: app.example.test, regions: [eu-west, us-east] }',
  'overwatch:',
  '  geolocation:',
  '    default_region: us-east',
  '    custom_mappings: [{ cidr: 10.1.0.0/16, region: office }]',
].join('\n'), 'geo.yaml');

const db = writeMmdb({ networks: [{ cidr: '81.0.0.0/8', data: maxmindCountry('DE', 'EU') }, { cidr: '82.0.0.0/8', data: maxmindCountry('FR', 'EU') }] });
const sab = new SharedArrayBuffer(db.length);
new Uint8Array(sab).set(db);
const reader = new GeoIpReader(sab);
const names = config.regions.map((r) => r.name);

test('geoTableInputOf gives region indexes in config order and appends extra mappings', () => {
  const input = geoTableInputOf(config, [{ cidr: '2001:db8::/32', region: 'eu-west', comment: null }]);
  assert.deepEqual(input, {
    regions: [{ countries: ['DE'], continents: ['EU'] }, { countries: ['US'], continents: [] }, { countries: [], continents: [] }],
    defaultRegion: 1,
    mappings: [{ cidr: '10.1.0.0/16', region: 2 }, { cidr: '2001:db8::/32', region: 0 }],
  });
});

test('an extra mapping for a network the config maps already is refused by the compiler', () => {
  assert.throws(() => compileGeoTable(geoTableInputOf(config, [{ cidr: '10.1.0.0/16', region: 'eu-west', comment: null }])), OpenGslbError);
});

const table = compileGeoTable(geoTableInputOf(config));
const cases = [
  { ip: '10.1.9.9', expect: { region: 'office', match_type: 'custom_mapping', matched_cidr: '10.1.0.0/16', country: null, continent: null, geoip_network: null, scope_prefix_length: 16 } },
  { ip: '81.2.3.4', expect: { region: 'eu-west', match_type: 'geoip', matched_cidr: null, country: 'DE', continent: 'EU', geoip_network: '81.0.0.0/8', scope_prefix_length: 8 } },
  { ip: '82.2.3.4', expect: { region: 'eu-west', match_type: 'geoip', matched_cidr: null, country: 'FR', continent: 'EU', geoip_network: '82.0.0.0/8', scope_prefix_length: 8 } },
  { ip: '198.51.100.1', expect: { region: 'us-east', match_type: 'default', matched_cidr: null, country: null, continent: null, geoip_network: '128.0.0.0/1', scope_prefix_length: 1 } },
];
for (const c of cases) {
  test(`explainGeo describes ${c.ip} as ${c.expect.match_type} → ${c.expect.region}`, () => {
    assert.deepEqual(explainGeo(names, table, 0, reader, c.ip, true), { ip: c.ip, ...c.expect });
  });
  test(`explainGeo gives ${c.ip} scope 0 with ecs_enabled off, as DNS echoes then, and the same decision`, () => {
    assert.deepEqual(explainGeo(names, table, 0, reader, c.ip, false), { ip: c.ip, ...c.expect, scope_prefix_length: 0 });
  });
}
