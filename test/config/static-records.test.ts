// dns.zones[].records and dns.identity at load: every bad record is reported
// at its file:line:col with what was expected, all at once; good records
// come out typed (names resolved against the zone, TTLs defaulted, long TXT
// split).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { assertProblems } from '../helpers/config-files.ts';

const HEAD = [
  'regions:', '  - name: eu', '    servers: [{ address: 192.0.2.10 }]',
  'domains:', '  - { name: app.example.test, regions: [eu] }', '  - { name: example.test, regions: [eu] }',
  'dns:', '  zones:', '    - name: example.test',
  '      nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]',
  '      records:',
];
/** Line number of the first record line (1-based). */
const FIRST = HEAD.length + 1;

const cases: { name: string; records: string[]; more?: string[]; expect: string[] }[] = [
  { name: 'a bad address', records: ['- "mail A 1.2.3"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "mail A 1.2.3": "1.2.3" is not an IPv4 address, expected one for an A record`] },
  { name: 'an unknown type', records: ['- "mail HINFO x y"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "mail HINFO x y": type HINFO is not one of A, AAAA, CNAME, MX, TXT, CAA, SRV, NS, PTR`] },
  { name: 'too few fields', records: ['- "mail A"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "mail A": too few fields`] },
  { name: 'a name outside the zone', records: ['- "x.example.net. A 192.0.2.1"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "x.example.net. A 192.0.2.1": owner x.example.net is outside the zone example.test`] },
  { name: 'an unterminated quote', records: ["- '@ TXT \"open'"], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "@ TXT \\"open" has a quoted string without its closing quote`] },
  // RFC 1035 §5.1 allows one TTL and one class, in either order; a second one is a typo, not a new value.
  { name: 'two TTLs', records: ['- "mail 300 60 A 192.0.2.1"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "mail 300 60 A 192.0.2.1": a second TTL 60 after 300, expected at most one TTL and one class before the type`] },
  { name: 'two classes', records: ['- "mail IN IN A 192.0.2.1"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "mail IN IN A 192.0.2.1": a second class IN, expected at most one TTL and one class before the type`] },
  { name: 'an MX without its preference', records: ['- "@ MX mail"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "@ MX mail": MX takes 2 fields (PREFERENCE EXCHANGE), got 1`] },
  { name: 'a CAA with a bad tag', records: ['- \'@ CAA 0 is-sue "x"\''], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "@ CAA 0 is-sue \\"x\\"": CAA tag "is-sue" is not 1 to 15 letters and digits`] },
  {
    name: 'a CNAME beside other data',
    records: ['- "www CNAME app"', '- "www TXT hello"'],
    expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: www.example.test has a CNAME beside other data (www TXT hello); RFC 1034 §3.6.2`],
  },
  { name: 'a CNAME at the apex', records: ['- "@ CNAME other.example.net."'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: example.test is a GSLB domain (domains), which answers its A and AAAA`] },
  { name: 'a static record at a GSLB name below the apex', records: ['- "app TXT x"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: app.example.test is a GSLB domain (domains); static records may sit beside a GSLB name only at a zone apex`] },
  { name: 'an A at a load-balanced apex', records: ['- "@ A 192.0.2.1"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: example.test is a GSLB domain (domains), which answers its A;`] },
  { name: 'NS at the apex', records: ['- "@ NS ns2.example.net."'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: NS at the zone apex example.test: the apex's name servers are dns.nameservers`] },
  { name: 'data below a delegation', records: ['- "child NS ns.child"', '- "x.child TXT no"'], expect: [`x.yaml:${FIRST + 1}:11: dns.zones[0].records[1]: x.child.example.test is below the delegation child.example.test, where only glue addresses (A, AAAA) may be written, not TXT`] },
  {
    name: 'a GSLB domain below a delegation',
    records: ['- "app NS ns.elsewhere.net."'],
    expect: [
      'x.yaml:5:13: domains[0].name: "app.example.test" is at or below the delegation app.example.test',
      `x.yaml:${FIRST}:11: dns.zones[0].records[0]: app.example.test is a GSLB domain (domains); static records may sit beside a GSLB name only at a zone apex`,
    ],
  },
  { name: 'an address beside a name server\'s own', records: ['- "ns1 A 192.0.2.54"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: ns1.example.test is a name server whose addresses are in nameservers[].addresses`] },
  { name: 'two TTLs in one RRset', records: ['- "mail 60 A 192.0.2.1"', '- "mail 120 A 192.0.2.2"'], expect: [`x.yaml:${FIRST + 1}:11: dns.zones[0].records[1]: TTL 120 differs from 60 of "mail 60 A 192.0.2.1" in the same RRset (RFC 2181 §5.2)`] },
  { name: 'a record twice', records: ['- "mail A 192.0.2.1"', '- "mail A 192.0.2.1"'], expect: [`x.yaml:${FIRST + 1}:11: dns.zones[0].records[1]: mail A 192.0.2.1 repeats a record already listed for mail.example.test`] },
  {
    name: 'a CNAME loop',
    records: ['- "a CNAME b"', '- "b CNAME a"'],
    expect: [
      `x.yaml:${FIRST}:11: dns.zones[0].records[0]: CNAME chain a.example.test → b.example.test → a.example.test loops, expected a chain that ends at data`,
      `x.yaml:${FIRST + 1}:11: dns.zones[0].records[1]: CNAME chain b.example.test → a.example.test → b.example.test loops`,
    ],
  },
  { name: 'an A record of the unspecified address', records: ['- "any A 0.0.0.0"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "any A 0.0.0.0": "0.0.0.0" is the unspecified address (it names no host), which no client can connect to, expected a unicast address (loopback and private addresses are fine)`] },
  { name: 'an AAAA record of a multicast address', records: ['- "all AAAA ff02::1"'], expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: "all AAAA ff02::1": "ff02::1" is a multicast address (ff00::/8), which no client can connect to, expected a unicast address (loopback and private addresses are fine)`] },
  {
    name: 'a record that belongs to a more specific zone of ours',
    records: ['- "www.eu A 192.0.2.1"'],
    more: ['    - eu.example.test'],
    expect: [`x.yaml:${FIRST}:11: dns.zones[0].records[0]: owner www.eu.example.test belongs to the zone eu.example.test of dns.zones, expected the record in that zone's records`],
  },
];

for (const c of cases) {
  test(`reports ${c.name} at the record's position`, () => {
    const yaml = [...HEAD, ...c.records.map((r) => `        ${r}`), ...(c.more ?? [])].join('\n');
    assertProblems(yaml, c.expect);
  });
}

test('parses good records into typed rdata: names resolved against the zone, TTL defaulted to the SOA ttl, long TXT split', () => {
  const long = 'z'.repeat(300);
  const yaml = [...HEAD, '        - "@ 300 MX 10 mail"', `        - '@ TXT "${long}" "b"'`, '        - "www IN 60 CNAME app"', '        - "_s._tcp SRV 1 2 443 host.example.net."', '        - "@ CAA 128 issue \\"ca.example\\""', '        - "n MX 0 ."', '  identity: { version: "OpenGSLB" }'].join('\n');
  const config = parseConfigText(yaml, 'x.yaml');
  assert.deepEqual(config.dns.identity, { id: null, version: 'OpenGSLB' });
  assert.deepEqual(config.dns.zones[0].records.map((r) => [r.owner, r.ttlSec, r.rdata]), [
    ['example.test', 300, { type: 'MX', preference: 10, exchange: 'mail.example.test' }],
    ['example.test', 3600, { type: 'TXT', strings: ['z'.repeat(255), 'z'.repeat(45), 'b'] }],
    ['www.example.test', 60, { type: 'CNAME', target: 'app.example.test' }],
    ['_s._tcp.example.test', 3600, { type: 'SRV', priority: 1, weight: 2, port: 443, target: 'host.example.net' }],
    ['example.test', 3600, { type: 'CAA', flags: 128, tag: 'issue', value: 'ca.example' }],
    ['n.example.test', 3600, { type: 'MX', preference: 0, exchange: '' }],
  ]);
});
