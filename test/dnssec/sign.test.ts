// The signer: RRSIG fields as dns-packet decodes them, the canonical form
// (order, case, duplicates), the signature cache's key and freshness rules,
// its bounded CLOCK eviction, and batch signing inline and in a real piscina
// pool.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { Piscina } from 'piscina';
import { QTYPE } from '../../src/dns/constants.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { generateZoneKey, signerKeyOf } from '../../src/dnssec/keys.ts';
import {
  canonicalSigningInput, createSignBatchTask, createSignerKey, packRrsets, REFRESH_FRACTION, rrsetOf, rrsigExpiration, rrsigInception, rrsigOriginalTtl,
  rrsigRecord, Rrset, SignatureCache, signBatch, signingWindow, signRrset, unpackRrsets, unpackSignatures, writeRrsig,
} from '../../src/dnssec/sign.ts';
import type { SignBatchResult } from '../../src/dnssec/sign.ts';

const ecdsa = signerKeyOf(await generateZoneKey('example.test', 'ECDSAP256SHA256'));
const ed = signerKeyOf(await generateZoneKey('example.test', 'ED25519'));
const APP = nameToWire('app.example.test');
const A1 = Uint8Array.of(192, 0, 2, 1);
const A2 = Uint8Array.of(192, 0, 2, 2);
const A3 = Uint8Array.of(192, 0, 2, 3);
const NOW = 1_750_000_000;
const WEEK = 7 * 86400;

/** A response with the question app.example.test/A and one answer: the RRSIG record with its owner as pointer 12. */
function responseWith(record: Uint8Array): Buffer {
  const header = Buffer.from([0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
  return Buffer.concat([header, APP, Buffer.from([0, 1, 0, 1]), record]);
}

test('the RRSIG record decodes with dns-packet to the fields RFC 4034 §3.1 asks for', () => {
  const window = signingWindow(NOW, WEEK);
  const rdata = signRrset(ecdsa, rrsetOf(APP, QTYPE.A, 60, [A1, A2]), window);
  const decoded = dnsPacket.decode(responseWith(rrsigRecord(12, rdata)));
  const rr = decoded.answers?.[0] as unknown as { name: string; type: string; ttl: number; data: Record<string, unknown> };
  assert.equal(rr.name, 'app.example.test');
  assert.equal(rr.type, 'RRSIG');
  assert.equal(rr.ttl, 60, 'RRSIG TTL = the RRset TTL');
  assert.equal(rr.data.typeCovered, 'A');
  assert.equal(rr.data.algorithm, 13);
  assert.equal(rr.data.labels, 3);
  assert.equal(rr.data.originalTTL, 60);
  assert.equal(rr.data.expiration, NOW + WEEK);
  assert.equal(rr.data.inception, NOW - 3600);
  assert.equal(rr.data.keyTag, ecdsa.keyTag);
  assert.equal(rr.data.signersName, 'example.test');
  assert.equal((rr.data.signature as Buffer).length, 64);
  assert.equal(rrsigOriginalTtl(rdata), 60);
  assert.equal(rrsigInception(rdata), NOW - 3600);
  assert.equal(rrsigExpiration(rdata), NOW + WEEK);
});

test('an uncompressed-owner RRSIG record decodes the same as the pointer form', () => {
  const rdata = signRrset(ed, rrsetOf(APP, QTYPE.A, 60, [A1]), signingWindow(NOW, WEEK));
  const viaPointer = dnsPacket.decode(responseWith(rrsigRecord(12, rdata))).answers?.[0];
  const viaName = dnsPacket.decode(responseWith(rrsigRecord(APP, rdata))).answers?.[0];
  assert.deepEqual(viaName, viaPointer);
});

test('writeRrsig returns -1 instead of writing past the end of the buffer', () => {
  const rdata = signRrset(ed, rrsetOf(APP, QTYPE.A, 60, [A1]), signingWindow(NOW, WEEK));
  const out = new Uint8Array(20 + rdata.length);
  assert.equal(writeRrsig(out, 10, 12, rdata), -1);
  assert.equal(writeRrsig(out, 8, 12, rdata), out.length);
});

const LABELS: readonly { name: string; owner: string; labels: number }[] = [
  { name: 'counts the labels of a name', owner: 'app.example.test', labels: 3 },
  { name: 'counts the apex', owner: 'example.test', labels: 2 },
  { name: 'does not count a leading wildcard label', owner: '*.example.test', labels: 2 },
];
for (const c of LABELS) {
  test(`the Labels field ${c.name} (${c.owner} → ${c.labels})`, () => {
    const rdata = signRrset(ed, rrsetOf(nameToWire(c.owner), QTYPE.A, 60, [A1]), signingWindow(NOW, WEEK));
    assert.equal(rdata[3], c.labels);
  });
}

test('every rotation order, owner case and duplicate of a set gives the same canonical input', () => {
  const window = signingWindow(NOW, WEEK);
  const reference = canonicalSigningInput(ed, rrsetOf(APP, QTYPE.A, 60, [A1, A2, A3]), window).data;
  const variants = [
    rrsetOf(APP, QTYPE.A, 60, [A2, A3, A1]),
    rrsetOf(APP, QTYPE.A, 60, [A3, A1, A2]),
    rrsetOf(APP, QTYPE.A, 60, [A3, A2, A1, A2]),
    rrsetOf(nameToWire('app.example.test').map((b) => (b >= 0x61 && b <= 0x7a ? b - 32 : b)), QTYPE.A, 60, [A1, A2, A3]),
  ];
  for (const v of variants) assert.deepEqual(canonicalSigningInput(ed, v, window).data, reference);
  // Ed25519 is deterministic, so the signatures are equal too.
  assert.deepEqual(signRrset(ed, variants[0], window), signRrset(ed, rrsetOf(APP, QTYPE.A, 60, [A1, A2, A3]), window));
});

test('canonical order puts a shorter rdata before a longer one that starts with it (RFC 4034 §6.3)', () => {
  const window = signingWindow(NOW, WEEK);
  const { data, rrsigPrefixLen } = canonicalSigningInput(ed, rrsetOf(APP, QTYPE.TXT, 60, [Uint8Array.of(2, 0x61, 0x62), Uint8Array.of(1, 0x61)]), window);
  const firstRdata = rrsigPrefixLen + APP.length + 10;
  assert.deepEqual([...data.subarray(firstRdata, firstRdata + 2)], [1, 0x61]);
});

test('the cache answers a set in any rotation order from one signature and counts hits and misses', () => {
  const cache = new SignatureCache({ capacity: 16, validitySec: WEEK });
  assert.equal(cache.find(ecdsa, rrsetOf(APP, QTYPE.A, 60, [A1, A2, A3]), NOW), null);
  const signed = cache.findOrSign(ecdsa, rrsetOf(APP, QTYPE.A, 60, [A1, A2, A3]), NOW);
  for (const order of [[A2, A3, A1], [A3, A1, A2], [A1, A2, A3]]) {
    assert.equal(cache.find(ecdsa, rrsetOf(APP, QTYPE.A, 60, order), NOW + 10), signed);
  }
  assert.deepEqual({ hits: cache.hits, misses: cache.misses, signatures: cache.signatures, size: cache.size }, { hits: 3, misses: 2, signatures: 1, size: 1 });
  assert.ok(cache.signMs > 0);
});

const MISSES: readonly { name: string; rrset: () => Rrset; key?: typeof ecdsa }[] = [
  { name: 'another TTL', rrset: () => rrsetOf(APP, QTYPE.A, 61, [A1, A2]) },
  { name: 'another type', rrset: () => rrsetOf(APP, QTYPE.AAAA, 60, [A1, A2]) },
  { name: 'another owner', rrset: () => rrsetOf(nameToWire('www.example.test'), QTYPE.A, 60, [A1, A2]) },
  { name: 'a subset', rrset: () => rrsetOf(APP, QTYPE.A, 60, [A1]) },
  { name: 'a superset', rrset: () => rrsetOf(APP, QTYPE.A, 60, [A1, A2, A3]) },
  { name: 'the same count with a duplicate', rrset: () => rrsetOf(APP, QTYPE.A, 60, [A1, A1]) },
  { name: 'another key', rrset: () => rrsetOf(APP, QTYPE.A, 60, [A1, A2]), key: ed },
];
for (const c of MISSES) {
  test(`the cache does not serve a signature for ${c.name}`, () => {
    const cache = new SignatureCache({ capacity: 16, validitySec: WEEK });
    cache.sign(ecdsa, rrsetOf(APP, QTYPE.A, 60, [A1, A2]), NOW);
    assert.equal(cache.find(c.key ?? ecdsa, c.rrset(), NOW), null);
  });
}

test('a cached signature is served until 75 % of its validity has passed, then re-signed', () => {
  const cache = new SignatureCache({ capacity: 16, validitySec: WEEK });
  const rrset = rrsetOf(APP, QTYPE.A, 60, [A1]);
  const first = cache.findOrSign(ecdsa, rrset, NOW);
  const inception = NOW - 3600;
  const refreshAt = inception + Math.floor((WEEK + 3600) * REFRESH_FRACTION);
  assert.equal(cache.findOrSign(ecdsa, rrset, refreshAt - 1), first);
  const second = cache.findOrSign(ecdsa, rrset, refreshAt);
  assert.notEqual(second, first);
  assert.equal(rrsigInception(second), refreshAt - 3600);
  assert.equal(rrsigExpiration(second), refreshAt + WEEK);
  assert.equal(cache.signatures, 2);
  assert.equal(cache.size, 1, 'the new signature replaced the old entry');
  // What was served always had at least a quarter of its validity left.
  assert.ok(rrsigExpiration(first) - (refreshAt - 1) >= WEEK / 4);
});

test('a pre-signed signature is not served before its inception', () => {
  const cache = new SignatureCache({ capacity: 16, validitySec: WEEK });
  const rrset = rrsetOf(APP, QTYPE.A, 60, [A1]);
  cache.insert(ecdsa, rrset, signRrset(ecdsa, rrset, signingWindow(NOW + 7200, WEEK)));
  assert.equal(cache.find(ecdsa, rrset, NOW), null);
  assert.notEqual(cache.find(ecdsa, rrset, NOW + 3600), null);
});

test('the cache stays within its capacity and evicts entries not used since the clock hand passed', () => {
  const cache = new SignatureCache({ capacity: 4, validitySec: WEEK });
  const sets = Array.from({ length: 8 }, (_, i) => rrsetOf(APP, QTYPE.A, 60, [Uint8Array.of(10, 0, 0, i)]));
  for (let i = 0; i < 4; i++) cache.sign(ed, sets[i], NOW);
  // Sets 0 and 1 are in demand.
  assert.notEqual(cache.find(ed, sets[0], NOW), null);
  assert.notEqual(cache.find(ed, sets[1], NOW), null);
  for (let i = 4; i < 6; i++) cache.sign(ed, sets[i], NOW);
  assert.equal(cache.size, 4);
  assert.equal(cache.evictions, 2);
  assert.notEqual(cache.find(ed, sets[0], NOW), null, 'a used entry survives');
  assert.notEqual(cache.find(ed, sets[1], NOW), null, 'a used entry survives');
  assert.equal(cache.find(ed, sets[2], NOW), null);
  assert.equal(cache.find(ed, sets[3], NOW), null);
  // A flood of one-off sets never grows it.
  for (let i = 0; i < 200; i++) cache.sign(ed, rrsetOf(APP, QTYPE.A, 60, [Uint8Array.of(10, 1, i >> 8, i & 0xff)]), NOW);
  assert.equal(cache.size, 4);
});

test('entries stay right while evictions and replacements fill the slab and it is compacted and grown', () => {
  const cache = new SignatureCache({ capacity: 300, validitySec: WEEK });
  const window = signingWindow(NOW, WEEK);
  const setOf = (i: number): ReturnType<typeof rrsetOf> =>
    rrsetOf(nameToWire(`n${i}.example.test`), QTYPE.A, 60 + (i % 3), Array.from({ length: 1 + (i % 5) }, (_, k) => Uint8Array.of(10, k, i >> 8, i & 0xff)));
  const signature = new Map<number, Uint8Array>();
  // 3 000 distinct sets through 300 slots, every fourth one stored twice (a replacement), with a few one-off big sets.
  for (let i = 0; i < 3000; i++) {
    const sig = signRrset(ed, setOf(i), window);
    cache.insert(ed, setOf(i), sig);
    if (i % 4 === 0) cache.insert(ed, setOf(i), sig.slice());
    signature.set(i, sig);
    if (i % 500 === 0) cache.insert(ed, rrsetOf(APP, QTYPE.TXT, 60, [new Uint8Array(4000).fill(i & 0xff)]), sig);
  }
  assert.equal(cache.size, 300);
  let held = 0;
  for (let i = 0; i < 3000; i++) {
    const found = cache.find(ed, setOf(i), NOW);
    if (found === null) continue;
    held++;
    assert.deepEqual(found, signature.get(i), `set ${i}`);
  }
  assert.ok(held >= 250, `${held} of the last sets held`);
  assert.ok(cache.slabBytes <= 256 * 1024, `slab ${cache.slabBytes} bytes for 300 small entries`);
});

test('a preallocated Rrset refilled per packet finds the same entry as a fresh one (the worker pattern)', () => {
  const cache = new SignatureCache({ capacity: 16, validitySec: WEEK });
  const snapshot = Uint8Array.of(9, 9, ...A1, ...A2, ...A3, 9);
  const scratch = new Rrset();
  const signed = cache.findOrSign(ecdsa, rrsetOf(APP, QTYPE.A, 60, [A1, A2, A3]), NOW);
  const query = Uint8Array.of(0, ...APP.map((b) => (b >= 0x61 && b <= 0x7a ? b - 32 : b)));
  scratch.reset(query, 1, APP.length, QTYPE.A, 60);
  scratch.add(snapshot, 10, 4);
  scratch.add(snapshot, 2, 4);
  scratch.add(snapshot, 6, 4);
  assert.equal(cache.find(ecdsa, scratch, NOW), signed);
});

test('packRrsets and unpackRrsets round-trip, and a cut buffer is refused', () => {
  const sets = [rrsetOf(APP, QTYPE.A, 60, [A1, A2]), rrsetOf(nameToWire('example.test'), QTYPE.NS, 3600, [nameToWire('ns1.example.test')])];
  const packed = packRrsets(sets);
  const back = unpackRrsets(packed);
  assert.deepEqual(packRrsets(back), packed);
  assert.throws(() => unpackRrsets(packed.subarray(0, packed.length - 1)), /cut short/);
});

test('signBatch signs like signRrset, in order', () => {
  const window = signingWindow(NOW, WEEK);
  const sets = [rrsetOf(APP, QTYPE.A, 60, [A1, A2]), rrsetOf(nameToWire('example.test'), QTYPE.NS, 3600, [nameToWire('ns1.example.test')])];
  const { task } = createSignBatchTask(ed, window, sets);
  const result = signBatch(task);
  assert.equal(result.count, 2);
  assert.deepEqual(unpackSignatures(result.signatures), sets.map((s) => signRrset(ed, s, window)));
});

test('a piscina pool signs a batch with the KeyObject it was sent and transfers the signatures back', async (t) => {
  const pool = new Piscina({ filename: new URL('../../src/dnssec/sign-task.ts', import.meta.url).href, minThreads: 1, maxThreads: 1 });
  t.after(() => pool.destroy());
  const window = signingWindow(NOW, WEEK);
  const sets = Array.from({ length: 50 }, (_, i) => rrsetOf(APP, QTYPE.A, 60, [Uint8Array.of(10, 0, 0, i), A1]));
  for (const key of [ed, ecdsa]) {
    const { task, transferList } = createSignBatchTask(key, window, sets);
    const result = (await pool.run(task, { transferList })) as SignBatchResult;
    assert.equal(task.rrsets.byteLength, 0, 'the packed RRsets were transferred, not copied');
    assert.equal(result.count, 50);
    const signatures = unpackSignatures(result.signatures);
    const cache = new SignatureCache({ capacity: 64, validitySec: WEEK });
    sets.forEach((s, i) => cache.insert(key, s, signatures[i]));
    for (const [i, s] of sets.entries()) {
      const found = cache.find(key, s, NOW)!;
      assert.deepEqual(found, signatures[i]);
      // Kept as a copy (in the cache's slab): a view would keep the whole batch's buffer alive as long as one entry lives.
      assert.notEqual(found.buffer, signatures[i].buffer, 'the cache holds its own copy of each signature');
      if (key === ed) assert.deepEqual(signatures[i], signRrset(ed, s, window));
    }
  }
});

test('a SignerKey rebuilt from the same key (a new snapshot) still finds the cached signatures', () => {
  const cache = new SignatureCache({ capacity: 16, validitySec: WEEK });
  const signed = cache.findOrSign(ecdsa, rrsetOf(APP, QTYPE.A, 60, [A1]), NOW);
  const rebuilt = createSignerKey(ecdsa.signerWire, ecdsa.keyTag, ecdsa.algorithm, ecdsa.privateKey);
  assert.equal(cache.find(rebuilt, rrsetOf(APP, QTYPE.A, 60, [A1]), NOW), signed);
});
