// Name compression in our answers (RFC 1035 §4.1.4), through the real
// overwatch: the names in NS, CNAME, SOA and MX rdata and glue owners are
// compressed against the question and the NS targets, as Knot does, while
// the names the RFCs forbid to compress stay whole (RRSIG signer, RFC 4034
// §3.1.7; NSEC next name, §4.1.1; SRV target, RFC 2782). Sizes are checked
// byte for byte: a signed `www DS` answer that was 514 bytes (TC for a
// 512-byte client, where Knot's 480 fit) is 478.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';

const DISABLED = '{ enabled: false, security_acknowledgment: "I understand that disabling DNSSEC removes cryptographic authentication of DNS responses and allows DNS spoofing attacks against my zones" }';

const yaml = (signed: boolean): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones:
    - name: example.test
      nameservers: [ns1.example.test]
      records:
        - "@ 300 MX 10 mail"
        - "mail 300 A 192.0.2.25"
        - "www 300 CNAME app"
        - "dangling 300 CNAME missing"
        - "_sip._tcp 300 SRV 10 5 5060 sip"
        - "child 300 NS ns1.child"
        - "ns1.child 300 A 192.0.2.99"
        - "ns1 300 A 127.0.0.1"
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
  - name: inzone
    servers: [{ cname: app.example.test }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu], max_answers: 2, ttl: 30 }
  - { name: pool.example.test, routing_algorithm: failover, regions: [inzone], ttl: 60 }
overwatch: { dnssec: ${signed ? '{ algorithm: ECDSAP256SHA256 }' : DISABLED} }
logging: { level: error }
`;

async function start(t: import('node:test').TestContext, signed: boolean): Promise<Overwatch> {
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const overwatch = await Overwatch.start(parseConfigText(yaml(signed), 'compression.yaml'), createLogger({ level: 'error', format: 'json' }, sink), { store: new MemoryStore(), healthChecks: 'off' });
  t.after(() => overwatch.stop(200));
  return overwatch;
}

/** One name on the wire: its text, and whether it ends in a compression pointer. */
interface WireName { name: string; len: number; pointer: boolean }

function readName(b: Buffer, off: number): WireName {
  const labels: string[] = [];
  let p = off;
  let end = -1;
  for (let hops = 0; hops < 64; hops++) {
    const l = b[p];
    if (l === 0) break;
    if ((l & 0xc0) === 0xc0) {
      if (end < 0) end = p + 2;
      p = ((l & 0x3f) << 8) | b[p + 1];
      continue;
    }
    labels.push(b.subarray(p + 1, p + 1 + l).toString('latin1').toLowerCase());
    p += 1 + l;
  }
  const pointer = end >= 0;
  if (end < 0) end = p + 1;
  return { name: labels.join('.'), len: end - off, pointer };
}

/** Every RR of a message with the names of its rdata that this test looks at (by type). */
function walk(b: Buffer): { owner: WireName; type: number; names: WireName[] }[] {
  const out: { owner: WireName; type: number; names: WireName[] }[] = [];
  let o = 12;
  for (let i = 0; i < b.readUInt16BE(4); i++) o += readName(b, o).len + 4;
  const count = b.readUInt16BE(6) + b.readUInt16BE(8) + b.readUInt16BE(10);
  for (let i = 0; i < count; i++) {
    const owner = readName(b, o);
    o += owner.len;
    const type = b.readUInt16BE(o);
    const rd = o + 10;
    const names: WireName[] = [];
    if (type === 2 || type === 5) names.push(readName(b, rd));
    if (type === 6) {
      const m = readName(b, rd);
      names.push(m, readName(b, rd + m.len));
    }
    if (type === 15) names.push(readName(b, rd + 2));
    if (type === 33) names.push(readName(b, rd + 6));
    if (type === 46) names.push(readName(b, rd + 18));
    if (type === 47) names.push(readName(b, rd));
    o = rd + b.readUInt16BE(o + 8);
    out.push({ owner, type, names });
  }
  assert.equal(o, b.length, 'the RRs fill the message');
  return out;
}

test('signed www DS with DO: CNAME target and SOA names compressed, signer and NSEC next name whole; 478 bytes, so a 512-byte client gets it without TC', async (t) => {
  const overwatch = await start(t, true);
  const r = await ask(overwatch.port, 'www.example.test', 'DS', { edns: { do: true, udpSize: 512 } });
  assert.equal((r.flags ?? 0) & 0x200, 0, 'no TC');
  // header 12 + question 22 + CNAME 18 + its RRSIG 108 + SOA 51 + its RRSIG 108 + NSEC (next \000.app.example.test) 40 + its RRSIG 108 + OPT 11
  assert.equal(r.raw.length, 12 + 22 + 18 + 108 + 51 + 108 + 40 + 108 + 11);
  const rrs = walk(r.raw);
  const cname = rrs.find((x) => x.type === 5)!;
  assert.deepEqual(cname.names[0], { name: 'app.example.test', len: 6, pointer: true });
  const soa = rrs.find((x) => x.type === 6)!;
  assert.deepEqual(soa.names, [{ name: 'ns1.example.test', len: 6, pointer: true }, { name: 'hostmaster.example.test', len: 13, pointer: true }]);
  assert.equal(soa.owner.name, 'example.test');
  for (const sig of rrs.filter((x) => x.type === 46)) assert.deepEqual(sig.names[0], { name: 'example.test', len: 14, pointer: false }, 'RFC 4034 §3.1.7');
  const nsec = rrs.find((x) => x.type === 47)!;
  assert.equal(nsec.owner.name, 'app.example.test');
  assert.equal(nsec.names[0].pointer, false, 'RFC 4034 §4.1.1');
});

test('unsigned answers: NS targets, glue owners, SOA, MX, CNAME (static and pool) and referral NS compressed; SRV target whole; a chain\'s denial SOA owner points into the compressed target', async (t) => {
  const overwatch = await start(t, false);
  const port = overwatch.port;
  const sizes: Record<string, number> = {};
  const get = async (name: string, type: string): Promise<ReturnType<typeof walk>> => {
    const r = await ask(port, name, type, { edns: { udpSize: 1232 } });
    sizes[`${name} ${type}`] = r.raw.length;
    return walk(r.raw);
  };
  const ns = await get('example.test', 'NS');
  assert.deepEqual(ns.filter((x) => x.type === 2).map((x) => x.names[0]), [{ name: 'ns1.example.test', len: 6, pointer: true }]);
  assert.deepEqual(ns.filter((x) => x.type === 1).map((x) => x.owner), [{ name: 'ns1.example.test', len: 2, pointer: true }], 'glue owner: a pointer to the NS target');
  const soa = await get('example.test', 'SOA');
  assert.deepEqual(soa[0].names.map((n) => n.len), [6, 13]);
  const mx = await get('example.test', 'MX');
  assert.deepEqual(mx[0].names[0], { name: 'mail.example.test', len: 7, pointer: true });
  const srv = await get('_sip._tcp.example.test', 'SRV');
  assert.deepEqual(srv[0].names[0], { name: 'sip.example.test', len: 18, pointer: false }, 'RFC 2782: no compression of the SRV target');
  const www = await get('WwW.ExAmPlE.TeSt', 'A');
  assert.deepEqual(www.map((x) => [x.owner.name, x.type]), [['www.example.test', 5], ['app.example.test', 1], ['app.example.test', 1], ['', 41]]);
  assert.equal(www[0].names[0].len, 6);
  const pool = await get('pool.example.test', 'A');
  assert.deepEqual(pool[0].names[0], { name: 'app.example.test', len: 6, pointer: true });
  assert.deepEqual(pool.slice(1, 3).map((x) => x.owner.name), ['app.example.test', 'app.example.test']);
  const dangling = await get('dangling.example.test', 'A');
  assert.deepEqual(dangling.map((x) => [x.owner.name, x.type]), [['dangling.example.test', 5], ['example.test', 6], ['', 41]]);
  const referral = await get('www.child.example.test', 'A');
  assert.deepEqual(referral.map((x) => [x.owner.name, x.type]), [['child.example.test', 2], ['ns1.child.example.test', 1], ['', 41]]);
  assert.deepEqual(referral[0].names[0], { name: 'ns1.child.example.test', len: 6, pointer: true });
  assert.equal(referral[1].owner.len, 2);
  // Byte for byte: header 12, question, each RR 2 (owner) + 10 + rdata, OPT 11.
  assert.deepEqual(sizes, {
    'example.test NS': 12 + 18 + (12 + 6) + (2 + 10 + 4) + 11,
    'example.test SOA': 12 + 18 + (12 + 6 + 13 + 20) + 11,
    'example.test MX': 12 + 18 + (12 + 2 + 7) + 11,
    '_sip._tcp.example.test SRV': 12 + 28 + (12 + 6 + 18) + 11,
    'WwW.ExAmPlE.TeSt A': 12 + 22 + (12 + 6) + 2 * (12 + 4) + 11,
    'pool.example.test A': 12 + 23 + (12 + 6) + 2 * (12 + 4) + 11,
    'dangling.example.test A': 12 + 27 + (12 + 10) + (12 + 6 + 13 + 20) + 11,
    'www.child.example.test A': 12 + 28 + (12 + 6) + (2 + 10 + 4) + 11,
  });
});
