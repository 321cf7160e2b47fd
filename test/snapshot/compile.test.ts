// The snapshot compiler and reader: names, zones, empty non-terminals and
// precomputed fragments, checked through the reader a worker uses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { parseConfigText } from '../../src/config/load.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { Registry } from '../../src/registry/registry.ts';
import { compileSnapshot } from '../../src/snapshot/compile.ts';
import { zoneDigests } from '../../src/overwatch/zone-serials.ts';
import * as L from '../../src/snapshot/layout.ts';
import { SnapshotView } from '../../src/snapshot/reader.ts';

const config = parseConfigText(
  `
dns:
  zones: [example.test, sub.example.test]
  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
regions:
  - name: r
    servers: [{ address: 192.0.2.1, weight: 7 }, { address: "2001:db8::1" }]
domains:
  - { name: a.b.c.example.test, regions: [r], ttl: 45 }
  - { name: www.sub.example.test, regions: [r], routing_algorithm: failover }
`,
  'compile.yaml',
);

/** The registry view of `config`, as the overwatch compiles it. */
function viewOf(registry = new Registry()) {
  registry.applyConfig(config);
  return registry.view();
}

function find(view: SnapshotView, name: string): number {
  const wire = nameToWire(name);
  return view.findNode(wire, 0, wire.length);
}

test('compiles names, zones and empty non-terminals that the reader finds by hash', () => {
  const snap = compileSnapshot(viewOf(), { generation: 5, serial: 1234 });
  const view = new SnapshotView(snap.buffer);
  assert.equal(view.generation, 5);
  assert.equal(view.zoneCount, 2);
  const flags = (n: string): number => view.u32[view.nodeBase(find(view, n)) + L.NODE_FLAGS];
  const zoneName = (n: string): number => view.u32[view.nodeBase(find(view, n)) + L.NODE_ZONE];
  assert.equal(flags('example.test') & L.NODE_FLAG_APEX, L.NODE_FLAG_APEX);
  assert.equal(flags('sub.example.test') & L.NODE_FLAG_APEX, L.NODE_FLAG_APEX);
  assert.equal(flags('b.c.example.test'), L.NODE_FLAG_ENT);
  assert.equal(flags('c.example.test'), L.NODE_FLAG_ENT);
  assert.equal(flags('a.b.c.example.test'), 0);
  assert.equal(zoneName('www.sub.example.test'), zoneName('sub.example.test'), 'a name belongs to the longest zone above it');
  assert.notEqual(zoneName('sub.example.test'), zoneName('example.test'), 'a nested apex is its own zone');
  assert.equal(find(view, 'nope.example.test'), -1);
  assert.ok(find(view, 'ns1.example.test') >= 0, 'in-zone name server host');
});

test('the node table is the hash table: every name in one row with its first bytes inline, long names compared on in the blob', () => {
  // Names of every length around the inline limit, some sharing their first
  // 20 bytes and their length, so only the bytes after the row's tell them apart.
  const long = 'x'.repeat(40);
  const names = ['s.t', 'ab.example.test', 'abcdef.example.test', 'abcdefg.example.test', 'abcdefgh.example.test', `${long}.a.example.test`, `${long}.b.example.test`, `${long}.ab.example.test`];
  const text = `
dns:
  zones: [example.test]
  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
regions:
  - name: r
    servers: [{ address: 192.0.2.1 }]
domains:
${names.filter((n) => n.endsWith('example.test')).map((n) => `  - { name: ${n}, regions: [r] }`).join('\n')}
`;
  const registry = new Registry();
  registry.applyConfig(parseConfigText(text, 'long.yaml'));
  const view = new SnapshotView(compileSnapshot(registry.view(), { generation: 1, serial: 1 }).buffer);
  assert.equal(L.NODE_NAME_INLINE_BYTES, 20);
  assert.ok(view.nodeSlots >= 2 * view.nodeCount && (view.nodeSlots & (view.nodeSlots - 1)) === 0, 'load factor at most 0.5');
  let held = 0;
  for (let n = 0; n < view.nodeSlots; n++) {
    if (!view.hasNode(n)) continue;
    held++;
    const nb = view.nodeBase(n);
    const len = view.u32[nb + L.NODE_NAME_LEN];
    const inline = view.u8.subarray((nb + L.NODE_NAME_INLINE) << 2, (nb + L.NODE_WORDS) << 2);
    const full = view.u8.subarray(view.u32[nb + L.NODE_NAME_OFF], view.u32[nb + L.NODE_NAME_OFF] + len);
    assert.deepEqual([...inline.subarray(0, Math.min(len, 20))], [...full.subarray(0, 20)], 'the row holds the name\'s first bytes');
    assert.ok(inline.subarray(Math.min(len, 20)).every((b) => b === 0), 'zero-padded');
    assert.equal(view.findNode(full, 0, len), n, 'each row is found by its own name');
  }
  assert.equal(held, view.nodeCount);
  for (const n of names.filter((x) => x.endsWith('example.test'))) {
    const node = find(view, n);
    assert.ok(node >= 0, n);
    assert.equal(view.u32[view.nodeBase(node) + L.NODE_REC_A] !== 0, true, `${n} has its A record`);
  }
  assert.notEqual(find(view, `${long}.a.example.test`), find(view, `${long}.b.example.test`));
  // Same length and first 20 bytes as held names, different after: not found.
  assert.equal(find(view, `${long}.c.example.test`), -1);
  assert.equal(find(view, `${long}.ac.example.test`), -1);
  assert.equal(find(view, 'abcdefi.example.test'), -1);
});

test('precomputes answer fragments that decode to the configured record', () => {
  const snap = compileSnapshot(viewOf(), { generation: 1, serial: 1 });
  const view = new SnapshotView(snap.buffer);
  const node = find(view, 'a.b.c.example.test');
  const recA = view.u32[view.nodeBase(node) + L.NODE_REC_A] - 1;
  const rb = view.recordBase(recA);
  assert.equal(view.u32[rb + L.REC_QTYPE], 1);
  assert.equal(view.u32[rb + L.REC_TTL], 45);
  assert.equal(view.u32[rb + L.REC_MEMBER_COUNT], 1);
  const mb = view.memberBase(view.u32[rb + L.REC_MEMBER_START]);
  assert.equal(view.u32[mb + L.MEM_WEIGHT], 7);
  const frag = view.u8.subarray(view.u32[mb + L.MEM_FRAG_OFF], view.u32[mb + L.MEM_FRAG_OFF] + L.FRAG_LEN_A);
  // Wrap the fragment in a message whose question sits at offset 12, as the worker does.
  const msg = Buffer.concat([Buffer.from([0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]), Buffer.from(nameToWire('a.b.c.example.test')), Buffer.from([0, 1, 0, 1]), frag]);
  const decoded = dnsPacket.decode(msg);
  assert.deepEqual(
    decoded.answers!.map((a) => ({ name: a.name, type: a.type, ttl: (a as { ttl?: number }).ttl, data: (a as { data: string }).data })),
    [{ name: 'a.b.c.example.test', type: 'A', ttl: 45, data: '192.0.2.1' }],
  );
});

test('a record\'s answer fragments lie back to back from REC_FRAG_BASE in member order, fallback members included (the worker reads no member row)', () => {
  const rich = parseConfigText(
    `
dns:
  zones: [example.test]
regions:
  - name: v4
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }]
  - name: v6
    servers: [{ address: "2001:db8::1" }, { address: "2001:db8::2" }]
domains:
  - { name: a.example.test, regions: [v4, v6] }
  - { name: b.example.test, regions: [v6], when_all_down: fallback, fallback: ["2001:db8::99", "2001:db8::98"] }
  - { name: c.example.test, regions: [v4], routing_algorithm: weighted, when_all_down: fallback, fallback: [192.0.2.99] }
`,
    'frag.yaml',
  );
  const registry = new Registry();
  registry.applyConfig(rich);
  const view = new SnapshotView(compileSnapshot(registry.view(), { generation: 1, serial: 1 }).buffer);
  let checked = 0;
  for (let r = 0; r < view.recordCount; r++) {
    const rb = view.recordBase(r);
    const fragLen = view.u32[rb + L.REC_FRAG_LEN];
    const start = view.u32[rb + L.REC_MEMBER_START];
    const rows = view.u32[rb + L.REC_MEMBER_COUNT] + view.u32[rb + L.REC_FALLBACK_COUNT];
    assert.equal(view.u32[rb + L.REC_FALLBACK_START], start + view.u32[rb + L.REC_MEMBER_COUNT]);
    for (let i = 0; i < rows; i++) {
      assert.equal(view.u32[view.memberBase(start + i) + L.MEM_FRAG_OFF], view.u32[rb + L.REC_FRAG_BASE] + i * fragLen, `record ${r}, row ${i}`);
      checked++;
    }
  }
  // a: 3 A + 2 AAAA, b: 2 AAAA + 2 fallback, c: 3 A + 1 fallback.
  assert.equal(checked, 13);
});

test('keeps a server’s slot and each domain’s member slot across compiles, and reports their keys', () => {
  const registry = new Registry();
  const one = compileSnapshot(viewOf(registry), { generation: 1, serial: 1 });
  const two = compileSnapshot(viewOf(registry), { generation: 2, serial: 2 });
  assert.deepEqual([...one.view.slotKeys].sort(), [...two.view.slotKeys].sort());
  // Every server has a slot, and so does each (domain, server) pair: nothing new the second time.
  assert.equal(registry.slotHighWater, one.view.slotKeys.size);
  const members = two.members.filter((m) => m !== null);
  assert.ok(members.length > 0);
  for (const m of members) assert.notEqual(m.memberSlot, m.server.slot);
  assert.deepEqual(one.members, two.members);
});

test('refuses to attach a buffer that is not a snapshot', () => {
  const snap = compileSnapshot(viewOf(), { generation: 1, serial: 1 });
  const copy = new SharedArrayBuffer(snap.buffer.byteLength);
  new Uint8Array(copy).set(new Uint8Array(snap.buffer));
  new Uint32Array(copy)[L.HDR_MAGIC] = 0;
  assert.throws(() => new SnapshotView(copy), /bad magic/);
  new Uint32Array(copy)[L.HDR_MAGIC] = L.SNAPSHOT_MAGIC;
  new Uint32Array(copy)[L.HDR_VERSION] = 99;
  assert.throws(() => new SnapshotView(copy), /version 99/);
  new Uint32Array(copy)[L.HDR_VERSION] = L.SNAPSHOT_VERSION;
  const slots = new Uint32Array(copy)[L.HDR_NODE_SLOTS];
  new Uint32Array(copy)[L.HDR_NODE_COUNT] = slots / 2 + 1;
  assert.throws(() => new SnapshotView(copy), /more nodes than half the node slots/);
  new Uint32Array(copy)[L.HDR_NODE_COUNT] = 1;
  new Uint32Array(copy)[L.HDR_NODE_SLOTS] = slots * 3;
  assert.throws(() => new SnapshotView(copy), /node slot count is not a power of two/);
  new Uint32Array(copy)[L.HDR_NODE_SLOTS] = 1 << 24;
  assert.throws(() => new SnapshotView(copy), /node table out of bounds/);
  assert.throws(() => new SnapshotView(new SharedArrayBuffer(8)), /not a valid snapshot size/);
});

test('10 000 domains, each its own zone (no dns.zones): each name finds its zone by lookup, and the whole compile takes well under two seconds', () => {
  const n = 10_000;
  const domains = Array.from({ length: n }, (_, i) => `  - { name: app.d${i}.test, regions: [eu] }`).join('\n');
  const big = parseConfigText(
    `dns:\n  listen_address: "127.0.0.1:0"\nregions:\n  - name: eu\n    servers: [{ address: 192.0.2.1 }]\n    health_check: { type: none }\ndomains:\n${domains}\nlogging: { level: error }\n`,
    'many-zones.yaml',
  );
  assert.equal(big.dns.zones.length, n);
  const registry = new Registry();
  registry.applyConfig(big);
  const started = performance.now();
  const view = registry.view();
  const compiled = compileSnapshot(view, { generation: 1, serial: 1 });
  const digests = zoneDigests(view);
  const took = performance.now() - started;
  assert.equal(digests.size, n);
  const snap = new SnapshotView(compiled.buffer);
  const wire = nameToWire('app.d9999.test');
  const node = snap.findNode(wire, 0, wire.length);
  assert.ok(node >= 0);
  assert.equal(snap.u32[snap.nodeBase(node) + L.NODE_ZONE], view.zones.findIndex((z) => z.name === 'app.d9999.test'), 'its own zone');
  // Testing every zone for every domain took 10.3 s here for the model alone, and 1.6 s for the zone digests.
  assert.ok(took < 2000, `view, compile and zone digests took ${Math.round(took)} ms`);
});
