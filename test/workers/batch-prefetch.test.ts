// The batch prefetch of the batched UDP path (workers/batch-prefetch.ts):
// read-only, so a batch answered after it gets byte for byte the answers it
// gets without it, whatever the packets hold; and the snapshot layout it
// relies on (tables on cache lines, each name next to its answer fragments).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { FNV_OFFSET, hashFoldedByte, hashWire, nameToWire } from '../../src/dns/names.ts';
import { ParsedQuery, parseQuery, PARSE_OK } from '../../src/dns/parse.ts';
import { seededRandom } from '../../src/lib/random.ts';
import { createCounters } from '../../src/metrics/counters-layout.ts';
import { Registry } from '../../src/registry/registry.ts';
import { compileSnapshot } from '../../src/snapshot/compile.ts';
import * as L from '../../src/snapshot/layout.ts';
import { createLiveSlots, HEALTH_HEALTHY, writeHealth } from '../../src/snapshot/live-slots.ts';
import { prefetchBatch, PrefetchScratch } from '../../workers/batch-prefetch.ts';
import { handleQuery } from '../../workers/handle-query.ts';
import { WorkerScratch } from '../../workers/scratch.ts';
import { buildQuery } from '../helpers/dns-client.ts';

const NAMES = 1500;
const yaml = `
dns:
  zones: [example.test]
regions:
  - name: r
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: "2001:db8::1" }]
domains:
${Array.from({ length: NAMES }, (_, i) => `  - { name: n${i}.example.test, regions: [r] }`).join('\n')}
`;

/** A worker's scratch state on a fresh snapshot of `yaml`, every server healthy. */
function scratch(): WorkerScratch {
  const registry = new Registry();
  registry.applyConfig(parseConfigText(yaml, 'prefetch.yaml'));
  const snap = compileSnapshot(registry.view(), { generation: 1, serial: 1 });
  const slots = Math.max(1, registry.slotHighWater);
  const live = createLiveSlots(slots);
  for (let s = 0; s < slots; s++) writeHealth(live, s, HEALTH_HEALTHY);
  return new WorkerScratch(snap.buffer, live, createCounters(1), 0);
}

/** Valid queries for held, missing and outside names of several types, and random mutations of them. */
function packets(): Buffer[] {
  const rand = seededRandom(7);
  const out: Buffer[] = [];
  for (let i = 0; i < 400; i++) {
    const pick = Math.floor(rand() * 5);
    const name = pick === 0 ? `missing-${i}.example.test` : pick === 1 ? `www.example-${i}.com` : `N${Math.floor(rand() * NAMES)}.Example.Test`;
    const type = ['A', 'AAAA', 'MX', 'ANY'][Math.floor(rand() * 4)];
    const q = buildQuery(name, type, { id: i });
    if (rand() < 0.3) for (let k = 0; k < 3; k++) q[Math.floor(rand() * q.length)] = Math.floor(rand() * 256);
    out.push(rand() < 0.1 ? q.subarray(0, Math.floor(rand() * q.length)) : q);
  }
  return out;
}

test('a prefetched batch is answered byte for byte as without the prefetch, for valid, missing, mutated and truncated queries', () => {
  const plain = scratch();
  const warmed = scratch();
  // Each attach starts the round-robin rotors and the weighted draws at random places: the same ones for both, so only the prefetch differs.
  warmed.route.perRecord.set(plain.route.perRecord);
  warmed.route.rng.set(plain.route.rng);
  const all = packets();
  const batch = 32;
  const p = new PrefetchScratch(batch);
  const lens = new Int32Array(batch);
  const outA = Buffer.alloc(65535);
  const outB = Buffer.alloc(65535);
  for (let b = 0; b < all.length; b += batch) {
    const slots = all.slice(b, b + batch);
    for (let i = 0; i < slots.length; i++) lens[i] = slots[i].length;
    const sink = prefetchBatch(warmed, p, slots, lens, 1, slots.length);
    assert.equal(typeof sink, 'number');
    for (const [i, q] of slots.entries()) {
      plain.client.setSource('192.0.2.9', 4);
      warmed.client.setSource('192.0.2.9', 4);
      const a = handleQuery(plain, q, q.length, outA, false);
      // As the batched UDP path: with the name's hash from the prefetch.
      const w = handleQuery(warmed, q, q.length, outB, false, p.hash[i]);
      assert.equal(w, a, `reply length for ${q.toString('hex')}`);
      assert.ok(outB.subarray(0, w).equals(outA.subarray(0, a)), `reply bytes for ${q.toString('hex')}`);
    }
  }
});

test('handleQuery looks the question name up by the hash the prefetch gave it, not by hashing the name again', () => {
  const s = scratch();
  const p = new PrefetchScratch(2);
  const held = buildQuery('N7.Example.Test', 'A', { id: 1 });
  const other = buildQuery('n8.example.test', 'A', { id: 2 });
  prefetchBatch(s, p, [held, other], Int32Array.of(held.length, other.length), 1, 2);
  const wire = nameToWire('n7.example.test');
  assert.equal(p.hash[0], hashWire(wire, 0, wire.length) | 0, 'the prefetch hashed the name as the lookup does (case folded)');
  const out = Buffer.alloc(65535);
  s.client.setSource('192.0.2.9', 4);
  const len = handleQuery(s, held, held.length, out, false, p.hash[0]);
  assert.equal(out[3] & 0x0f, 0, 'NOERROR with its own hash');
  assert.ok(out.readUInt16BE(6) >= 1, 'an A answer');
  // Given another name's hash, the lookup finds nothing: the hash it was given is the one it used.
  const wrong = handleQuery(s, held, held.length, out, false, p.hash[1]);
  assert.equal(out[3] & 0x0f, 3, 'NXDOMAIN with the other name\'s hash');
  assert.ok(wrong > 0 && len > 0);
  // Without a hash (TCP, the plain UDP path, a batch not prefetched) the name is hashed as before.
  handleQuery(s, held, held.length, out, false);
  assert.equal(out[3] & 0x0f, 0, 'NOERROR without a hash');
});

test('the snapshot starts every table on a 64-byte line, keeps each node row to one line and puts each name right before its answer fragments', () => {
  const s = scratch();
  const u32 = s.view.u32;
  assert.equal(L.NODE_WORDS * 4, 64, 'a node row is one cache line');
  for (const off of [L.HDR_NODES_OFF, L.HDR_ZONES_OFF, L.HDR_RECORDS_OFF, L.HDR_MEMBERS_OFF, L.HDR_BLOB_OFF]) assert.equal(u32[off] % 64, 0, `header word ${off}`);
  const wire = nameToWire('n7.example.test');
  const node = s.view.findNode(wire, 0, wire.length);
  const nb = s.view.nodeBase(node);
  const rec = u32[nb + L.NODE_REC_A] - 1;
  const first = u32[s.view.memberBase(u32[s.view.recordBase(rec) + L.REC_MEMBER_START]) + L.MEM_FRAG_OFF];
  assert.equal(first, u32[nb + L.NODE_NAME_OFF] + u32[nb + L.NODE_NAME_LEN], 'the A fragments follow the name');
});

test('hashing a name as it arrived, folding case byte by byte, gives the hash the lookup computes from the parser\'s lower-cased name, for any label bytes', () => {
  const rand = seededRandom(11);
  const q = new ParsedQuery();
  const lower = new Uint8Array(256);
  for (let n = 0; n < 2000; n++) {
    const labels: Buffer[] = [];
    for (let l = 1 + Math.floor(rand() * 4); l > 0; l--) labels.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 20) }, () => Math.floor(rand() * 256))));
    const wire = Buffer.concat([...labels.flatMap((b) => [Buffer.of(b.length), b]), Buffer.of(0)]);
    const packet = Buffer.concat([Buffer.from('000100000001000000000000', 'hex'), wire, Buffer.from('00010001', 'hex')]);
    assert.equal(parseQuery(packet, packet.length, q, lower), PARSE_OK);
    let h = FNV_OFFSET;
    for (const c of wire) h = hashFoldedByte(h, c);
    assert.equal(h >>> 0, hashWire(lower, 0, q.qnameLen), wire.toString('hex'));
  }
});
