// Real validators judge our signatures: BIND's delv, Unbound's unbound-host
// and dnspython's dns.dnssec.validate query a loopback server whose RRSIGs
// and compact-denial NSECs come from src/dnssec, with our DNSKEY as the only
// trust anchor. Positive answers (A, AAAA, rotated multi-address sets, SOA,
// NS, DNSKEY), NODATA and NXDOMAIN, for both algorithms; and a wrong anchor
// must fail, so a pass means something.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nameToWire } from '../../src/dns/names.ts';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';
import { createTestZone, delvAnchor, missingDnspython, missingTool, PYTHON, type SigningServer, signedZoneYaml, startSigningServer, type TestZone, tool, unboundConfig } from './helpers.ts';

const noDelv = missingTool('delv', 'bind9-dnsutils');
const noUnbound = missingTool('unbound-host', 'unbound-host');
const noDnspython = missingDnspython();

/** Cases every validator must accept: positive (the data validates) or negative (the denial validates). */
const CASES: readonly { name: string; type: string; kind: 'positive' | 'nodata' | 'nxdomain' }[] = [
  { name: 'app.example.test', type: 'A', kind: 'positive' },
  { name: 'v6.example.test', type: 'AAAA', kind: 'positive' },
  { name: 'mixed.example.test', type: 'AAAA', kind: 'positive' },
  { name: 'example.test', type: 'SOA', kind: 'positive' },
  { name: 'example.test', type: 'NS', kind: 'positive' },
  { name: 'example.test', type: 'DNSKEY', kind: 'positive' },
  { name: 'app.example.test', type: 'AAAA', kind: 'nodata' },
  { name: 'example.test', type: 'A', kind: 'nodata' },
  { name: 'nothing-here.example.test', type: 'A', kind: 'nxdomain' },
  { name: 'deep.below.nothing.example.test', type: 'AAAA', kind: 'nxdomain' },
];

/** dnspython: fetch each RRset with DO, validate every RRset of the answer and authority sections against the DNSKEY. */
const DNSPYTHON_CHECK = String.raw`
import json, sys, time
import dns.dnssec, dns.message, dns.name, dns.query, dns.rdatatype, dns.rrset
port = int(sys.argv[1]); zone = dns.name.from_text(sys.argv[2]); cases = json.loads(sys.argv[3])
def ask(name, rdtype):
    q = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(q, '127.0.0.1', port=port, timeout=5)
keys = ask(zone, 'DNSKEY').find_rrset(dns.message.ANSWER, zone, 1, dns.rdatatype.DNSKEY)
out = []
for name, rdtype in cases:
    r = ask(name, rdtype)
    checked = []
    for section in (r.answer, r.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sig = next(s for s in section if s.rdtype == dns.rdatatype.RRSIG and s.name == rrset.name and s.covers == rrset.rdtype)
            dns.dnssec.validate(rrset, sig, {zone: keys}, now=time.time())
            checked.append(dns.rdatatype.to_text(rrset.rdtype))
    out.append({'name': name, 'type': rdtype, 'rcode': r.rcode(), 'validated': checked})
print(json.dumps(out))
`;

/** A signing server for `zone` and a scratch directory, both gone when the test ends. */
async function servedZone(t: TestContext, zone: TestZone, prefix: string): Promise<{ server: SigningServer; dir: string }> {
  const server = await startSigningServer(zone);
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { server, dir };
}

for (const algorithm of ['ECDSAP256SHA256', 'ED25519']) {
  test(`delv fully validates ${algorithm} answers, rotated sets, NODATA and compact-denial NXDOMAIN`, { skip: noDelv }, async (t) => {
    const zone = await createTestZone(algorithm);
    const { server, dir } = await servedZone(t, zone, 'opengslb-delv-');
    const anchor = join(dir, 'anchor.conf');
    await writeFile(anchor, delvAnchor(zone.key.info));
    const delv = (name: string, type: string): Promise<string> =>
      tool('delv', [`@127.0.0.1`, '-p', String(server.port), '-a', anchor, `+root=${zone.apex}`, name, type]);
    for (const c of CASES) {
      const out = await delv(c.name, c.type);
      const want = c.kind === 'positive' ? /^; fully validated$/m : /^; negative response, fully validated$/m;
      assert.match(out, want, `${c.name} ${c.type} (${c.kind}):\n${out}`);
      if (c.kind === 'nxdomain') assert.match(out, /NSEC \\000\.\S+ RRSIG NSEC TYPE128/, out);
    }
    // The three-address set in three rotation orders, each validated.
    for (let i = 0; i < 3; i++) assert.match(await delv('app.example.test', 'A'), /^; fully validated$/m);
    assert.ok(server.rotations.size >= 3, `rotation orders served: ${[...server.rotations].join(' | ')}`);
    assert.ok(server.cache.hits > 0, 'later queries of the same RRset are answered from the signature cache');
  });

  test(`unbound-host reports ${algorithm} answers and denials as secure`, { skip: noUnbound }, async (t) => {
    const zone = await createTestZone(algorithm);
    const { server, dir } = await servedZone(t, zone, 'opengslb-unbound-');
    const conf = join(dir, 'unbound.conf');
    await writeFile(conf, unboundConfig(zone.key.info, server.port));
    for (const c of CASES) {
      const out = await tool('unbound-host', ['-C', conf, '-v', '-t', c.type, c.name]);
      const lines = out.split('\n').filter((l) => l.includes(c.name));
      assert.ok(lines.length > 0, `${c.name} ${c.type}: no answer line\n${out}`);
      for (const line of lines) assert.match(line, /\(secure\)$/, `${c.name} ${c.type} (${c.kind}):\n${out}`);
      if (c.kind !== 'positive') assert.match(out, /has no .*\(secure\)/, out);
    }
    for (let i = 0; i < 3; i++) assert.match(await tool('unbound-host', ['-C', conf, '-v', '-t', 'A', 'app.example.test']), /192\.0\.2\.\d \(secure\)/);
  });

  test(`dnspython validates every ${algorithm} RRset of answer and authority`, { skip: noDnspython }, async (t) => {
    const zone = await createTestZone(algorithm);
    const server = await startSigningServer(zone);
    t.after(() => server.close());
    const cases = CASES.map((c) => [c.name, c.type]);
    const out = await tool(PYTHON, ['-c', DNSPYTHON_CHECK, String(server.port), zone.apex, JSON.stringify(cases)]);
    const results = JSON.parse(out.split('\n').find((l) => l.startsWith('[')) ?? `"${out}"`) as { name: string; type: string; rcode: number; validated: string[] }[];
    assert.equal(results.length, CASES.length, out);
    for (const [i, c] of CASES.entries()) {
      const r = results[i];
      assert.equal(r.rcode, 0, `${c.name} ${c.type}: compact denial answers NOERROR`);
      const expect = c.kind === 'positive' ? [c.type] : ['SOA', 'NSEC'];
      assert.deepEqual(r.validated, expect, `${c.name} ${c.type}`);
    }
  });
}

test('delv refuses answers signed by a key other than the trust anchor', { skip: noDelv }, async (t) => {
  const zone = await createTestZone('ECDSAP256SHA256');
  const other = await createTestZone('ECDSAP256SHA256');
  const { server, dir } = await servedZone(t, zone, 'opengslb-delv-');
  const anchor = join(dir, 'anchor.conf');
  await writeFile(anchor, delvAnchor(other.key.info));
  const out = await tool('delv', ['@127.0.0.1', '-p', String(server.port), '-a', anchor, `+root=${zone.apex}`, 'app.example.test', 'A']);
  assert.doesNotMatch(out, /fully validated/, out);
  assert.match(out, /broken trust chain|no valid (RRSIG|signature)/, out);
});

test('a DO=0 query gets a plain NXDOMAIN and no DNSSEC records', { skip: missingTool('dig', 'bind9-dnsutils') }, async (t) => {
  const zone = await createTestZone('ED25519');
  const server = await startSigningServer(zone);
  t.after(() => server.close());
  const out = await tool('dig', ['@127.0.0.1', '-p', String(server.port), '+norec', '+nodnssec', 'nothing.example.test', 'A']);
  assert.match(out, /status: NXDOMAIN/, out);
  assert.doesNotMatch(out, /RRSIG|NSEC/, out);
});

test('delv validates the compact denial of a 254-octet name, whose NSEC next name is its first label extended by \\000 (255 octets), through the real server', { skip: noDelv }, async (t) => {
  const s = await startServer(t, signedZoneYaml(), 'long-name.yaml');
  const key = s.overwatch.keyring!.zones.get('example.test')!.active.info;
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-long-name-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const anchor = join(dir, 'anchor.conf');
  await writeFile(anchor, delvAnchor(key));
  // 1 + 10, three 1 + 63, 1 + 36, then example.test (14): 254 octets.
  const first = 'a'.repeat(10);
  const rest = [...Array.from({ length: 3 }, () => 'a'.repeat(63)), 'a'.repeat(36), 'example', 'test'].join('.');
  const qname = `${first}.${rest}`;
  assert.equal(nameToWire(qname).length, 254);

  // The NSEC on the wire: owner the name, next name the 255-octet sibling, not one past it.
  const reply = await ask(s.port, qname, 'A', { edns: { do: true } });
  assert.ok((reply.authorities ?? []).some((a) => a.type === 'NSEC'), JSON.stringify(reply.authorities));
  const wire = nameToWire(qname);
  const sibling = Buffer.from([11, ...Buffer.from(first), 0, ...wire.subarray(11)]);
  assert.equal(sibling.length, 255);
  assert.ok(reply.raw.includes(sibling), 'the NSEC next name is the 255-octet sibling (uncompressed in its rdata)');

  const out = await tool('delv', ['@127.0.0.1', '-p', String(s.port), '-a', anchor, '+root=example.test', qname, 'A']);
  assert.match(out, /^; negative response, fully validated$/m, out);
  assert.match(out, new RegExp(`NSEC ${first}\\\\000\\.${rest.replace(/\./g, '\\.')}\\. RRSIG NSEC TYPE128`), out);
});
