// CNAME servers and pools at load: each rule reported at its file:line:col
// with what was expected; a valid pool comes out with its targets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { assertProblems } from '../helpers/config-files.ts';

const cases: { name: string; yaml: string[]; expect: string[] }[] = [
  {
    name: 'a server with neither address nor cname',
    yaml: ['regions:', '  - name: cdn', '    servers: [{ port: 443 }]', 'domains:', '  - { name: www.example.test, regions: [cdn] }'],
    expect: ['x.yaml:3:15: regions[0].servers[0]: has neither address nor cname, expected an IP address (answered as A/AAAA) or a cname target name (answered as a CNAME)'],
  },
  {
    name: 'a server with both',
    yaml: ['regions:', '  - name: cdn', '    servers: [{ address: 192.0.2.1, cname: eu.cdn.example.net }]', 'domains:', '  - { name: www.example.test, regions: [cdn] }'],
    expect: ['x.yaml:3:44: regions[0].servers[0].cname: is set beside address, expected one of them'],
  },
  {
    name: 'a CNAME server without check_address',
    yaml: ['dns: { zones: [example.test] }', 'regions:', '  - name: cdn', '    servers: [{ cname: eu.cdn.example.net }]', 'domains:', '  - { name: www.example.test, regions: [cdn] }'],
    expect: ['x.yaml:4:24: regions[0].servers[0].cname: "eu.cdn.example.net" is a CNAME target, so its check needs check_address'],
  },
  {
    name: 'a domain mixing address and CNAME servers',
    yaml: [
      'regions:', '  - name: cdn', '    servers: [{ cname: eu.cdn.example.net }]', '    health_check: { type: none }',
      '  - name: dc', '    servers: [{ address: 192.0.2.1 }]',
      'domains:', '  - { name: www.example.test, regions: [dc, cdn] }',
    ],
    expect: ['x.yaml:8:40: domains[0].regions: mixes address servers (region "dc") and cname servers (region "cdn"), expected a domain to be an address pool or a CNAME pool'],
  },
  {
    name: 'a CNAME pool at a zone apex, with max_answers 2 and fallback addresses',
    yaml: [
      'regions:', '  - name: cdn', '    servers: [{ cname: eu.cdn.example.net }]', '    health_check: { type: none }',
      'domains:', '  - { name: example.test, regions: [cdn], max_answers: 2, when_all_down: fallback, fallback: [192.0.2.9] }',
    ],
    expect: [
      'x.yaml:6:13: domains[0].name: "example.test" is a zone apex, where SOA and NS live, so it cannot be a CNAME pool (RFC 1034 §3.6.2: a CNAME stands alone) (without dns.zones every domain is its own zone apex',
      'x.yaml:6:56: domains[0].max_answers: is 2, but a CNAME pool answers one CNAME (a name has at most one, RFC 2181 §10.1), expected 1 or nothing',
      'x.yaml:6:94: domains[0].fallback: lists addresses, but the domain is a CNAME pool',
    ],
  },
  {
    name: 'two pools pointing at each other',
    yaml: [
      'dns: { zones: [example.test] }',
      'regions:', '  - name: a', '    servers: [{ cname: b.example.test }]', '    health_check: { type: none }',
      '  - name: b', '    servers: [{ cname: a.example.test }]', '    health_check: { type: none }',
      'domains:', '  - { name: a.example.test, regions: [a] }', '  - { name: b.example.test, regions: [b] }',
    ],
    expect: [
      'x.yaml:10:13: domains[0].name: CNAME chain a.example.test → b.example.test → a.example.test loops, expected a chain that ends at data',
      'x.yaml:11:13: domains[1].name: CNAME chain b.example.test → a.example.test → b.example.test loops',
    ],
  },
];

for (const c of cases) {
  test(`reports ${c.name}`, () => {
    assertProblems(c.yaml.join('\n'), c.expect);
  });
}

test('a CNAME server comes out with its target as address and cname, check_address and the target as Host', () => {
  const config = parseConfigText([
    'dns: { zones: [example.test] }',
    'regions:', '  - name: cdn', '    servers: [{ cname: EU.cdn.example.NET., check_address: 192.0.2.7, port: 443 }]',
    'domains:', '  - { name: www.example.test, regions: [cdn] }',
  ].join('\n'), 'x.yaml');
  const s = config.regions[0].servers[0];
  assert.deepEqual([s.address, s.cname, s.checkAddress, s.checkPort, s.host], ['eu.cdn.example.net', 'eu.cdn.example.net', '192.0.2.7', 443, 'eu.cdn.example.net']);
});
