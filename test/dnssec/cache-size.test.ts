// The workers' signature cache holds SIGNATURE_CACHE_ENTRIES RRsets whatever
// the number of keys that sign each one: during an algorithm rollover every
// RRset has one signature per algorithm (two entries), so the cache grows
// with the number of data signers (workers/scratch.ts signatureCacheEntries)
// and shrinks back when the rollover ends; a full cache's worth of RRsets
// signed by both keys stays in it without an eviction.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { createCounters } from '../../src/metrics/counters-layout.ts';
import { Registry } from '../../src/registry/registry.ts';
import { compileSnapshot } from '../../src/snapshot/compile.ts';
import { createLiveSlots } from '../../src/snapshot/live-slots.ts';
import { generateZoneKey, signerKeyOf } from '../../src/dnssec/keys.ts';
import { Rrset } from '../../src/dnssec/sign.ts';
import { SIGNATURE_CACHE_ENTRIES, WorkerScratch } from '../../workers/scratch.ts';
import type { WorkerDnssec } from '../../workers/messages.ts';

test('the signature cache holds as many RRsets during an algorithm rollover (two signatures each) as outside it', async () => {
  const registry = new Registry();
  registry.applyConfig(parseConfigText('dns: { zones: [example.test] }\nregions: [{ name: r, servers: [{ address: 192.0.2.1 }] }]\ndomains: [{ name: app.example.test, regions: [r] }]\n', 'cache.yaml'));
  const snap = compileSnapshot(registry.view(), { generation: 1, serial: 1 });
  const live = createLiveSlots(Math.max(1, registry.slotHighWater));
  const ecdsa = signerKeyOf(await generateZoneKey('example.test', 'ECDSAP256SHA256'));
  const ed25519 = signerKeyOf(await generateZoneKey('example.test', 'ED25519'));
  const one: WorkerDnssec = { zones: [{ data: [ecdsa], dnskey: [ecdsa] }], validitySec: 7 * 86400 };
  const two: WorkerDnssec = { zones: [{ data: [ecdsa, ed25519], dnskey: [ecdsa, ed25519] }], validitySec: 7 * 86400 };

  const scratch = new WorkerScratch(snap.buffer, live, createCounters(1), 0, one);
  assert.equal(scratch.signatures.capacity, SIGNATURE_CACHE_ENTRIES);
  scratch.attach(snap.buffer, live, two);
  assert.equal(scratch.signatures.capacity, 2 * SIGNATURE_CACHE_ENTRIES, 'two signers per RRset: room for twice the entries');

  // A full cache's worth of distinct RRsets, each signed by both keys (signatures made
  // by one key and stored for both: the cache does not check them), all stay.
  const cache = scratch.signatures;
  const rdata = new Uint8Array(4);
  const fakeRrsig = new Uint8Array(18 + 13 + 64);
  const now = Math.floor(Date.now() / 1000);
  new DataView(fakeRrsig.buffer).setUint32(8, now + 7 * 86400);
  new DataView(fakeRrsig.buffer).setUint32(12, now - 3600);
  const rrset = new Rrset();
  const owner = nameToWire('app.example.test');
  for (let i = 0; i < SIGNATURE_CACHE_ENTRIES; i++) {
    new DataView(rdata.buffer).setUint32(0, 0xc0000000 + i);
    rrset.reset(owner, 0, owner.length, 1, 30).add(rdata, 0, 4);
    cache.insert(ecdsa, rrset, fakeRrsig);
    cache.insert(ed25519, rrset, fakeRrsig);
  }
  assert.equal(cache.evictions, 0, 'no RRset pushed out');
  assert.equal(cache.size, 2 * SIGNATURE_CACHE_ENTRIES);
  for (const i of [0, SIGNATURE_CACHE_ENTRIES >> 1, SIGNATURE_CACHE_ENTRIES - 1]) {
    new DataView(rdata.buffer).setUint32(0, 0xc0000000 + i);
    rrset.reset(owner, 0, owner.length, 1, 30).add(rdata, 0, 4);
    assert.ok(cache.find(ecdsa, rrset, now) !== null && cache.find(ed25519, rrset, now) !== null, `RRset ${i} is held with both signatures`);
  }

  // The rollover ends: one signer again, the cache its usual size.
  scratch.attach(snap.buffer, live, one);
  assert.equal(scratch.signatures.capacity, SIGNATURE_CACHE_ENTRIES);
});
