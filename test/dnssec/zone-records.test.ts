// Static records, CNAME pools and CNAME chains of a signed zone through the real
// overwatch: delv (BIND) validates every positive answer and every denial
// with the zone's DNSKEY as the only trust anchor, the CNAME chains included
// (the CNAME and the target's data each carry their RRSIG; a dangling
// target's NXNAME NSEC is at the target), and the referral's wire form is
// checked: NS unsigned, AA clear, the NSEC at the cut (NS, no DS) signed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { LmdbStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { delvAnchor, missingTool, tool } from './helpers.ts';

const noDelv = missingTool('delv', 'bind9-dnsutils');

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  soa: { minimum: 30s, ttl: 1h }
  zones:
    - name: example.test
      nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
      records:
        - "@ 300 MX 10 mail"
        - '@ TXT "v=spf1 -all" "${'y'.repeat(300)}"'
        - '@ CAA 0 issue "letsencrypt.org"'
        - "mail 300 A 192.0.2.25"
        - "www 120 CNAME app"
        - "alias CNAME www"
        - "tomail CNAME mail"
        - "dangling CNAME missing"
        - "ext CNAME cdn.example.net."
        - "_sip._tcp SRV 10 5 5060 mail"
        - "child NS ns1.child"
        - "ns1.child A 192.0.2.99"
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
  - name: cdn
    servers: [{ cname: eu.cdn.example.net }, { cname: us.cdn.example.net }]
    health_check: { type: none }
  - name: inzone
    servers: [{ cname: app.example.test }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu], max_answers: 2, ttl: 30 }
  - { name: pool.example.test, regions: [cdn], ttl: 60 }
  - { name: inpool.example.test, routing_algorithm: failover, regions: [inzone], ttl: 60 }
  - { name: example.test, regions: [eu], ttl: 30 }
overwatch: { data_dir: ./state }
logging: { level: error }
`;

/**
 * positive: the data validates; negative: the denial does; chain: the CNAME
 * validates ("; fully validated") and delv caches the target's validated
 * denial (its ncache line; a denial that failed would end in a validation
 * error instead).
 */
const CASES: readonly { name: string; type: string; kind: 'positive' | 'negative' | 'chain' }[] = [
  { name: 'example.test', type: 'MX', kind: 'positive' },
  { name: 'example.test', type: 'TXT', kind: 'positive' },
  { name: 'example.test', type: 'CAA', kind: 'positive' },
  { name: 'mail.example.test', type: 'A', kind: 'positive' },
  { name: 'www.example.test', type: 'A', kind: 'positive' },
  { name: 'alias.example.test', type: 'A', kind: 'positive' },
  { name: 'tomail.example.test', type: 'A', kind: 'positive' },
  { name: '_sip._tcp.example.test', type: 'SRV', kind: 'positive' },
  { name: 'pool.example.test', type: 'A', kind: 'positive' },
  { name: 'pool.example.test', type: 'CNAME', kind: 'positive' },
  { name: 'inpool.example.test', type: 'A', kind: 'positive' },
  { name: 'inpool.example.test', type: 'AAAA', kind: 'chain' },
  { name: 'mail.example.test', type: 'TXT', kind: 'negative' },
  { name: '_tcp.example.test', type: 'TXT', kind: 'negative' },
  { name: 'www.example.test', type: 'AAAA', kind: 'chain' },
  { name: 'dangling.example.test', type: 'A', kind: 'chain' },
  { name: 'child.example.test', type: 'DS', kind: 'negative' },
];

type Rr = { name: string; type: string; data: { typeCovered?: string; rrtypes?: string[] } };
const rrs = (l: unknown): Rr[] => (l ?? []) as Rr[];

test('delv validates static records, CNAME chains and their denials in a signed zone; referrals carry the signed NSEC at the cut', { skip: noDelv }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-zone-signed-'));
  const config = parseConfigText(YAML, join(dir, 'config.yaml'));
  const store = LmdbStore.open(config.dataDir);
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const overwatch = await Overwatch.start(config, createLogger({ level: 'error', format: 'json' }, sink), { store, healthChecks: 'off' });
  t.after(async () => {
    await overwatch.stop(200);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const port = overwatch.port;
  const key = (overwatch.keyring?.status() ?? [])[0];
  assert.ok(key);
  const anchor = join(dir, 'anchor.conf');
  await writeFile(anchor, delvAnchor({ zone: key.zone, flags: key.flags, algorithm: key.algorithm === 'ED25519' ? 15 : 13, publicKey: key.publicKey }));
  const failures: string[] = [];
  for (const c of CASES) {
    for (const tcp of [false, true]) {
      const out = await tool('delv', ['@127.0.0.1', '-p', String(port), '-a', anchor, '+root=example.test', ...(tcp ? ['+tcp'] : []), c.name, c.type]);
      const want = c.kind === 'positive' ? /^; fully validated$/m : c.kind === 'negative' ? /^; negative response, fully validated$/m : /^; fully validated\n.*\tCNAME\t[\s\S]*\$NXRRSET[\s\S]*resolution failed: ncache nxrrset$/m;
      if (!want.test(out) || /insecure|broken|bogus|no valid/i.test(out)) failures.push(`delv ${tcp ? '+tcp ' : ''}${c.name} ${c.type} (${c.kind}):\n${out}`);
    }
  }
  assert.deepEqual(failures, []);

  // A pool's CNAME is signed per target (each a set of its own).
  const pools = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const r = await ask(port, 'pool.example.test', 'A', { edns: { do: true } }, i % 2 === 0 ? 'udp' : 'tcp');
    assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.type, a.data.typeCovered ?? '']), [['pool.example.test', 'CNAME', ''], ['pool.example.test', 'RRSIG', 'CNAME']]);
    pools.add(String((r.answers?.[0] as { data: unknown }).data));
  }
  assert.deepEqual([...pools].sort(), ['eu.cdn.example.net', 'us.cdn.example.net']);

  // A chain's every RRset is signed: CNAME, CNAME, A.
  const chain = await ask(port, 'alias.example.test', 'A', { edns: { do: true } });
  assert.deepEqual(rrs(chain.answers).filter((a) => a.type === 'RRSIG').map((a) => [a.name, a.data.typeCovered]), [
    ['alias.example.test', 'CNAME'], ['www.example.test', 'CNAME'], ['app.example.test', 'A'],
  ]);

  for (const transport of ['udp', 'tcp'] as const) {
    const r = await ask(port, 'host.child.example.test', 'A', { edns: { do: true } }, transport);
    assert.equal(r.rcode, 'NOERROR');
    assert.equal((r.flags ?? 0) & (1 << 10), 0, 'AA clear on a referral');
    assert.equal(rrs(r.answers).length, 0);
    const auth = rrs(r.authorities);
    assert.deepEqual(auth.map((a) => [a.name, a.type, a.data.typeCovered ?? '']), [
      ['child.example.test', 'NS', ''], ['child.example.test', 'NSEC', ''], ['child.example.test', 'RRSIG', 'NSEC'],
    ], 'the NS is not signed (the child\'s data); the NSEC proving no DS is');
    assert.deepEqual([...(auth[1].data.rrtypes ?? [])].sort(), ['NS', 'NSEC', 'RRSIG']);
    assert.deepEqual(rrs(r.additionals).filter((a) => a.type === 'A').map((a) => a.name), ['ns1.child.example.test']);
  }
});
