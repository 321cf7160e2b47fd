// The additional section of a signed zone through the real overwatch (RFC
// 4035 §3.1.1): the apex NS answer's in-zone glue carries its RRSIG with DO,
// the very signature the host's own answer carries (one cache entry, which
// delv validates); glue below a delegation stays unsigned; RRSIGs that do not
// fit a small UDP size are left out without TC while the glue stays.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { delvAnchor, missingTool, tool } from './helpers.ts';

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones:
    - name: example.test
      nameservers: [ns1.example.test, { name: ns2.example.test, addresses: [192.0.2.54] }]
      records:
        - "ns1 300 A 192.0.2.53"
        - "ns1 300 AAAA 2001:db8::53"
        - "child NS ns1.child"
        - "child NS ns2.child"
        - "ns1.child A 192.0.2.99"
        - "ns2.child A 192.0.2.98"
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }]
domains:
  - { name: app.example.test, regions: [eu], ttl: 30 }
overwatch: { dnssec: { algorithm: ECDSAP256SHA256 } }
logging: { level: error }
`;

interface Rr { name: string; type: string; ttl?: number; data: unknown }
type Sig = { typeCovered: string; originalTTL: number; signature: Buffer };

async function start(t: import('node:test').TestContext): Promise<Overwatch> {
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'additional.yaml'), createLogger({ level: 'error', format: 'json' }, sink), { store: new MemoryStore(), healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  return overwatch;
}

const records = (section: readonly unknown[] | undefined): Rr[] => ((section ?? []) as Rr[]).filter((r) => r.type !== 'OPT');
const key = (r: Rr): string => `${r.name.toLowerCase()} ${r.type === 'RRSIG' ? `RRSIG:${(r.data as Sig).typeCovered}` : r.type}`;

test('the apex NS answer with DO signs its in-zone glue: the RRSIG is the host answer\'s own (one cache entry), delv validates that answer; without DO no RRSIG', async (t) => {
  const overwatch = await start(t);
  const port = overwatch.port;
  for (const transport of ['udp', 'tcp'] as const) {
    const r = await ask(port, 'example.test', 'NS', { edns: { do: true, udpSize: 1232 } }, transport);
    assert.equal((r.flags ?? 0) & 0x200, 0, 'not truncated');
    assert.deepEqual(records(r.answers).map(key).sort(), ['example.test NS', 'example.test NS', 'example.test RRSIG:NS']);
    const extra = records(r.additionals);
    assert.deepEqual(extra.map(key).sort(), [
      'ns1.example.test A', 'ns1.example.test AAAA', 'ns1.example.test RRSIG:A', 'ns1.example.test RRSIG:AAAA',
      'ns2.example.test A', 'ns2.example.test RRSIG:A',
    ], transport);
    // Each glue RRset equals the host's own answer (TTL included) and carries the very RRSIG that answer carries.
    for (const [host, type] of [['ns1.example.test', 'A'], ['ns1.example.test', 'AAAA'], ['ns2.example.test', 'A']]) {
      const own = await ask(port, host, type, { edns: { do: true } }, transport);
      const ownData = records(own.answers).filter((a) => a.type === type);
      const glue = extra.filter((a) => a.name === host && a.type === type);
      assert.deepEqual(glue.map((a) => [a.ttl, String(a.data)]), ownData.map((a) => [a.ttl, String(a.data)]), `${host} ${type}`);
      const sig = (rrs: Rr[]): Sig => rrs.find((a) => a.name === host && a.type === 'RRSIG' && (a.data as Sig).typeCovered === type)!.data as Sig;
      assert.equal(sig(extra).originalTTL, ownData[0].ttl);
      assert.equal(sig(extra).signature.toString('hex'), sig(records(own.answers)).signature.toString('hex'), `${host} ${type}: the cached signature`);
    }
  }
  const plain = await ask(port, 'example.test', 'NS', { edns: { do: false } });
  assert.deepEqual(records(plain.additionals).map(key).sort(), ['ns1.example.test A', 'ns1.example.test AAAA', 'ns2.example.test A']);
});

test('delv fully validates the name servers\' own answers whose signatures the glue carries', { skip: missingTool('delv', 'bind9-dnsutils') }, async (t) => {
  const overwatch = await start(t);
  const k = (overwatch.keyring?.status() ?? [])[0];
  assert.ok(k);
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-additional-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const anchor = join(dir, 'anchor.conf');
  await writeFile(anchor, delvAnchor({ zone: k.zone, flags: k.flags, algorithm: 13, publicKey: k.publicKey }));
  for (const [name, type] of [['example.test', 'NS'], ['ns1.example.test', 'A'], ['ns1.example.test', 'AAAA'], ['ns2.example.test', 'A']]) {
    const out = await tool('delv', ['@127.0.0.1', '-p', String(overwatch.port), '-a', anchor, '+root=example.test', name, type]);
    assert.match(out, /^; fully validated$/m, `${name} ${type}:\n${out}`);
  }
});

test('a referral\'s glue below the cut stays unsigned with DO (the child\'s data); only the NSEC at the cut is signed', async (t) => {
  const overwatch = await start(t);
  const r = await ask(overwatch.port, 'www.child.example.test', 'A', { edns: { do: true } });
  assert.equal((r.flags ?? 0) & 0x400, 0, 'AA clear');
  assert.deepEqual(records(r.authorities).map(key).sort(), ['child.example.test NS', 'child.example.test NS', 'child.example.test NSEC', 'child.example.test RRSIG:NSEC']);
  assert.deepEqual(records(r.additionals).map(key).sort(), ['ns1.child.example.test A', 'ns2.child.example.test A']);
});

test('glue RRSIGs that do not fit a 512-byte UDP answer are left out without TC; the glue stays; over TCP all are there', async (t) => {
  const overwatch = await start(t);
  const r = await ask(overwatch.port, 'example.test', 'NS', { edns: { do: true, udpSize: 512 } });
  assert.ok(r.raw.length <= 512, `${r.raw.length} bytes`);
  assert.equal((r.flags ?? 0) & 0x200, 0, 'no TC for RRSIGs of the additional section (RFC 4035 §3.1.1)');
  const extra = records(r.additionals).map(key);
  for (const glue of ['ns1.example.test A', 'ns1.example.test AAAA', 'ns2.example.test A']) assert.ok(extra.includes(glue), glue);
  const sigs = extra.filter((k) => k.includes('RRSIG'));
  assert.ok(sigs.length < 3, `some RRSIGs were left out: ${extra.join(', ')}`);
  assert.equal(r.raw.readUInt16BE(10), extra.length + 1, 'ARCOUNT counts what is there (and the OPT)');
  const full = await ask(overwatch.port, 'example.test', 'NS', { edns: { do: true, udpSize: 512 } }, 'tcp');
  assert.equal(records(full.additionals).filter((a) => a.type === 'RRSIG').length, 3);
});
