// Static records (dns.zones[].records) and the CH identity through the real
// server: every answer kind asked over UDP and TCP, decoded by dns-packet and
// checked record by record: static RRsets of every type beside a
// load-balanced apex, NODATA and NXDOMAIN with the SOA, empty non-terminals,
// CNAME chains followed through static and GSLB data (RFC 1034 §4.3.2), a
// target outside our zones, a dangling target (NXDOMAIN, RFC 6604), a
// delegation answered as a referral (AA clear, NS in authority, glue), long
// and multi-string TXT, PTR in a reverse zone, ANY, and version.bind /
// id.server REFUSED unless dns.identity sets them.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ask, type Decoded } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const LONG = 'x'.repeat(300);

function config(dataDir: string, identity: string): string {
  return `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
${identity}
  soa: { minimum: 30s, ttl: 1h }
  zones:
    - name: example.test
      nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
      records:
        - "@ 300 MX 10 mail"
        - '@ TXT "v=spf1 -all"'
        - '@ CAA 0 issue "letsencrypt.org"'
        - "mail 300 A 192.0.2.25"
        - "mail 300 AAAA 2001:db8::25"
        - "www 120 IN CNAME app"
        - "alias CNAME www"
        - "ext CNAME cdn.example.net."
        - "dangling CNAME missing"
        - "tomail CNAME mail"
        - "_sip._tcp SRV 10 5 5060 sip"
        - "sip A 192.0.2.60"
        - 'long TXT "${LONG}"'
        - 'multi TXT "one" "two words"'
        - "child NS ns1.child"
        - "child NS ns.elsewhere.net."
        - "ns1.child A 192.0.2.99"
        - "ns9 A 192.0.2.9"
        - "mapped AAAA ::ffff:192.0.2.26"
    - name: 2.0.192.in-addr.arpa
      nameservers: [ns9.example.test]
      records: ["25 PTR mail.example.test."]
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
domains:
  - { name: app.example.test, regions: [eu], max_answers: 2, ttl: 30 }
  - { name: example.test, regions: [eu], ttl: 30 }
overwatch: { data_dir: ${dataDir}, dnssec: { enabled: false, security_acknowledgment: "I understand that disabling DNSSEC removes cryptographic authentication of DNS responses and allows DNS spoofing attacks against my zones" } }
logging: { level: error }
`;
}

type Rr = { name: string; type: string; ttl?: number; class?: string; data?: unknown };
const rrs = (list: unknown): Rr[] => (list ?? []) as Rr[];
const AA = 1 << 10;

function short(r: Decoded): string {
  const show = (l: unknown): string => rrs(l).map((x) => `${x.name} ${x.type} ${JSON.stringify(x.data)}`).join('; ');
  return `rcode ${r.rcode} flags ${r.flags} an [${show(r.answers)}] ns [${show(r.authorities)}] ar [${show(r.additionals)}]`;
}

interface Case {
  name: string;
  qname: string;
  qtype: string;
  qclass?: string;
  check(r: Decoded): void;
}

const soaOnly = (apex: string) => (r: Decoded): void => {
  const ns = rrs(r.authorities);
  assert.equal(ns.length, 1, short(r));
  assert.equal(ns[0].type, 'SOA');
  assert.equal(ns[0].name, apex);
  assert.equal(ns[0].ttl, 30, 'negative TTL = min(SOA TTL, minimum)');
};

const CASES: Case[] = [
  {
    name: 'MX at a load-balanced apex', qname: 'example.test', qtype: 'MX',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.type, a.ttl, a.data]), [['example.test', 'MX', 300, { preference: 10, exchange: 'mail.example.test' }]]);
    },
  },
  {
    name: 'TXT and CAA at the apex', qname: 'example.test', qtype: 'TXT',
    check(r) {
      assert.deepEqual(rrs(r.answers).map((a) => (a.data as Buffer[]).map(String)), [['v=spf1 -all']]);
      assert.equal(rrs(r.answers)[0].ttl, 3600, 'a record without a TTL takes the SOA ttl');
    },
  },
  {
    name: 'CAA at the apex', qname: 'example.test', qtype: 'CAA',
    check(r) {
      assert.deepEqual(rrs(r.answers).map((a) => a.data), [{ flags: 0, tag: 'issue', value: 'letsencrypt.org', issuerCritical: false }]);
    },
  },
  {
    name: 'the apex A is still the GSLB answer', qname: 'example.test', qtype: 'A',
    check(r) {
      const a = rrs(r.answers);
      assert.equal(a.length, 1, short(r));
      assert.ok(['192.0.2.1', '192.0.2.2'].includes(String(a[0].data)));
      assert.equal(a[0].ttl, 30);
    },
  },
  { name: 'static A', qname: 'mail.example.test', qtype: 'A', check: (r) => assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.data, a.ttl]), [['mail.example.test', '192.0.2.25', 300]]) },
  { name: 'static AAAA', qname: 'MAIL.Example.TEST', qtype: 'AAAA', check: (r) => assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.data]), [['MAIL.Example.TEST', '2001:db8::25']]) },
  // An IPv4-mapped address written as an AAAA's data is served as the 16-byte IPv6 address.
  { name: 'static AAAA of an IPv4-mapped address', qname: 'mapped.example.test', qtype: 'AAAA', check: (r) => assert.deepEqual(rrs(r.answers).map((a) => [a.type, a.data]), [['AAAA', '::ffff:c000:21a']]) },
  {
    name: 'NODATA with the SOA at a static name', qname: 'mail.example.test', qtype: 'TXT',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      assert.equal(rrs(r.answers).length, 0);
      soaOnly('example.test')(r);
    },
  },
  {
    name: 'a CNAME to a GSLB name carries the routed addresses', qname: 'www.example.test', qtype: 'A',
    check(r) {
      const a = rrs(r.answers);
      assert.deepEqual(a[0], { ...a[0], name: 'www.example.test', type: 'CNAME', ttl: 120, data: 'app.example.test' });
      assert.deepEqual(a.slice(1).map((x) => [x.name, x.type, x.ttl]), [['app.example.test', 'A', 30], ['app.example.test', 'A', 30]]);
      assert.deepEqual(a.slice(1).map((x) => String(x.data)).sort(), ['192.0.2.1', '192.0.2.2']);
    },
  },
  {
    name: 'a CNAME whose target lacks the type: the CNAME, then NODATA for the target', qname: 'www.example.test', qtype: 'AAAA',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.type, a.data]), [['www.example.test', 'CNAME', 'app.example.test']]);
      soaOnly('example.test')(r);
    },
  },
  { name: 'a CNAME query gets the CNAME alone', qname: 'www.example.test', qtype: 'CNAME', check: (r) => assert.deepEqual(rrs(r.answers).map((a) => [a.type, a.data]), [['CNAME', 'app.example.test']]) },
  {
    name: 'a chain of two CNAMEs is followed to the addresses', qname: 'alias.example.test', qtype: 'A',
    check(r) {
      assert.deepEqual(rrs(r.answers).slice(0, 2).map((a) => [a.name, a.type, a.data]), [['alias.example.test', 'CNAME', 'www.example.test'], ['www.example.test', 'CNAME', 'app.example.test']]);
      assert.deepEqual(rrs(r.answers).slice(2).map((a) => [a.name, a.type]), [['app.example.test', 'A'], ['app.example.test', 'A']]);
    },
  },
  {
    name: 'a CNAME to static data is followed', qname: 'tomail.example.test', qtype: 'AAAA',
    check: (r) => assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.type, a.data]), [['tomail.example.test', 'CNAME', 'mail.example.test'], ['mail.example.test', 'AAAA', '2001:db8::25']]),
  },
  {
    name: 'a CNAME outside our zones ends the answer for the resolver to follow', qname: 'ext.example.test', qtype: 'A',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(rrs(r.answers).map((a) => [a.type, a.data]), [['CNAME', 'cdn.example.net']]);
      assert.equal(rrs(r.authorities).length, 0);
    },
  },
  {
    name: 'a dangling CNAME: NXDOMAIN for the target (RFC 6604) with the CNAME', qname: 'dangling.example.test', qtype: 'A',
    check(r) {
      assert.equal(r.rcode, 'NXDOMAIN');
      assert.deepEqual(rrs(r.answers).map((a) => [a.type, a.data]), [['CNAME', 'missing.example.test']]);
      soaOnly('example.test')(r);
    },
  },
  {
    name: 'SRV', qname: '_sip._tcp.example.test', qtype: 'SRV',
    check: (r) => assert.deepEqual(rrs(r.answers).map((a) => a.data), [{ priority: 10, weight: 5, port: 5060, target: 'sip.example.test' }]),
  },
  {
    name: 'an empty non-terminal is NODATA', qname: '_tcp.example.test', qtype: 'TXT',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      soaOnly('example.test')(r);
    },
  },
  {
    name: 'a TXT string longer than 255 octets is split', qname: 'long.example.test', qtype: 'TXT',
    check: (r) => assert.deepEqual(rrs(r.answers).map((a) => (a.data as Buffer[]).map((b) => b.length)), [[255, 45]]),
  },
  {
    name: 'a multi-string TXT keeps its strings', qname: 'multi.example.test', qtype: 'TXT',
    check: (r) => assert.deepEqual(rrs(r.answers).map((a) => (a.data as Buffer[]).map(String)), [['one', 'two words']]),
  },
  ...['child.example.test', 'www.deep.child.example.test'].map((qname): Case => ({
    name: `a referral for ${qname}: AA clear, NS in authority, glue`, qname, qtype: 'A',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      assert.equal((r.flags ?? 0) & AA, 0, 'AA clear');
      assert.equal(rrs(r.answers).length, 0);
      assert.deepEqual(rrs(r.authorities).map((a) => [a.name, a.type, a.data]), [['child.example.test', 'NS', 'ns1.child.example.test'], ['child.example.test', 'NS', 'ns.elsewhere.net']]);
      assert.deepEqual(rrs(r.additionals).filter((a) => a.type !== 'OPT').map((a) => [a.name, a.type, a.data]), [['ns1.child.example.test', 'A', '192.0.2.99']]);
    },
  })),
  {
    name: 'the DS of a delegation is the parent\'s: NODATA, authoritative', qname: 'child.example.test', qtype: 'DS',
    check(r) {
      assert.equal(r.rcode, 'NOERROR');
      assert.notEqual((r.flags ?? 0) & AA, 0);
      soaOnly('example.test')(r);
    },
  },
  { name: 'a name that does not exist', qname: 'nothing.example.test', qtype: 'MX', check: (r) => { assert.equal(r.rcode, 'NXDOMAIN'); soaOnly('example.test')(r); } },
  { name: 'PTR in a reverse zone', qname: '25.2.0.192.in-addr.arpa', qtype: 'PTR', check: (r) => assert.deepEqual(rrs(r.answers).map((a) => [a.type, a.data]), [['PTR', 'mail.example.test']]) },
  {
    name: 'the NS of a zone whose name server\'s address is a static record carries it as glue', qname: '2.0.192.in-addr.arpa', qtype: 'NS',
    check(r) {
      assert.deepEqual(rrs(r.answers).map((a) => a.data), ['ns9.example.test']);
      assert.deepEqual(rrs(r.additionals).filter((a) => a.type === 'A').map((a) => [a.name, a.data]), [['ns9.example.test', '192.0.2.9']]);
    },
  },
  { name: 'ANY at a static name answers one RRset (RFC 8482)', qname: 'mail.example.test', qtype: 'ANY', check: (r) => assert.equal(rrs(r.answers).length, 1, short(r)) },
];

test('static records answer every kind of question over UDP and TCP', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-zone-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { port } = await startServer(t, config(join(dir, 'state'), ''));
  for (const c of CASES) {
    for (const transport of ['udp', 'tcp'] as const) {
      await t.test(`${c.name} (${transport})`, async () => {
        const r = await ask(port, c.qname, c.qtype, { edns: {} }, transport);
        try {
          if (!c.name.startsWith('a referral')) assert.notEqual((r.flags ?? 0) & AA, 0, 'AA set');
          c.check(r);
        } catch (err) {
          (err as Error).message += `\n${short(r)}`;
          throw err;
        }
      });
    }
  }
  for (const name of ['version.bind', 'version.server', 'id.server', 'hostname.bind']) {
    for (const transport of ['udp', 'tcp'] as const) {
      const r = await ask(port, name, 'TXT', {}, transport);
      assert.equal(r.rcode, 'REFUSED', `${name} CH TXT without dns.identity (${transport})`);
    }
  }
});

test('dns.identity answers version.bind, version.server, id.server and hostname.bind in CH, and nothing else', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-zone-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { port } = await startServer(t, config(join(dir, 'state'), '  identity: { id: ns-test-1, version: "OpenGSLB test" }'));
  const expect: Record<string, string> = { 'version.bind': 'OpenGSLB test', 'VERSION.server': 'OpenGSLB test', 'id.server': 'ns-test-1', 'hostname.bind': 'ns-test-1' };
  for (const [name, text] of Object.entries(expect)) {
    for (const transport of ['udp', 'tcp'] as const) {
      const r = await ask(port, name, 'TXT', { qclass: 'CH' }, transport);
      assert.equal(r.rcode, 'NOERROR', `${name} ${transport}`);
      assert.notEqual((r.flags ?? 0) & AA, 0);
      assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.class, a.ttl, (a.data as Buffer[]).map(String)]), [[name, 'CH', 0, [text]]]);
    }
  }
  for (const [name, type, qclass] of [['version.bind', 'A', 'CH'], ['authors.bind', 'TXT', 'CH'], ['version.bind', 'TXT', 'IN']] as const) {
    const r = await ask(port, name, type, { qclass }, 'udp');
    assert.equal(r.rcode, 'REFUSED', `${name} ${qclass} ${type}`);
  }
});
