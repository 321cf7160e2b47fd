// Merging keys another overwatch holds (src/dnssec/key-sync.ts mergeKeys,
// mergeKey) into both real state stores: the merge rule (a key we lack is
// taken, a key further along moves ours forward, an equal or older one or
// another zone's changes nothing, a malformed key or another key under a held
// tag is refused naming the source) holds alike for one bus entry at a time
// and for one call over all of them; in one call a refused key is reported on
// its own and the rest are merged. And the cost: taking thousands of keys
// already held is linear, whether they come one entry at a time (the bus
// watch) or all at once (the start), and so is re-reading the keyring one zone
// at a time as each new key arrives.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateZoneKey, toStoredKey } from '../../src/dnssec/keys.ts';
import { mergeKey, mergeKeys } from '../../src/dnssec/key-sync.ts';
import { Keyring } from '../../src/dnssec/keyring.ts';
import type { OpenGslbError } from '../../src/lib/errors.ts';
import { LmdbStore, MemoryStore, type StateStore, type StoredDnssecKey } from '../../src/state/store.ts';

const FROM = 'the operator-state bucket';
const DNSSEC = {
  enabled: true,
  algorithm: 'ECDSAP256SHA256',
  signatureValiditySec: 604_800,
  keySync: { peers: [], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: null },
} as const;
const ZONES = new Set(['example.test', 'other.test']);

/** Both stores the overwatch runs on: each test runs on each. */
const STORES: readonly { name: string; open: (t: TestContext) => Promise<StateStore> }[] = [
  { name: 'the memory store', open: async () => new MemoryStore() },
  {
    name: 'the lmdb store',
    open: async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'opengslb-merge-'));
      const store = LmdbStore.open(join(dir, 'data'));
      t.after(async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      });
      return store;
    },
  },
];

// Two real keys: `key` is the one merged, `stranger` lends a public key that does not belong to it.
const key = toStoredKey(await generateZoneKey('example.test', 'ECDSAP256SHA256', { state: 'active', nowMs: 1_700_000_000_000 }));
const stranger = toStoredKey(await generateZoneKey('example.test', 'ECDSAP256SHA256'));
const inState = (state: string, over: Partial<StoredDnssecKey> = {}): StoredDnssecKey => ({ ...key, state, ...over });

/** What one incoming key does to what the store holds under its (zone, tag). */
interface MergeCase {
  readonly name: string;
  readonly held: StoredDnssecKey | null;
  readonly incoming: StoredDnssecKey;
  /** The stored key afterwards (null: none), or the refusal. */
  readonly expect: { readonly stored: StoredDnssecKey | null; readonly changed: boolean } | { readonly code: string; readonly message: RegExp };
}

const CASES: readonly MergeCase[] = [
  { name: 'a key the store lacks is stored as given', held: null, incoming: key, expect: { stored: key, changed: true } },
  {
    name: 'a key further along moves the held one forward and keeps the rest of the held one',
    held: inState('published'),
    incoming: inState('active', { createdAtMs: key.createdAtMs + 5000 }),
    expect: { stored: inState('active'), changed: true },
  },
  { name: 'a key in the same state changes nothing', held: inState('active'), incoming: inState('active', { createdAtMs: 1 }), expect: { stored: inState('active'), changed: false } },
  { name: 'a key further back changes nothing', held: inState('retired'), incoming: inState('active'), expect: { stored: inState('retired'), changed: false } },
  { name: 'a key of a zone not signed here is left alone', held: null, incoming: { ...key, zone: 'elsewhere.test' }, expect: { stored: null, changed: false } },
  {
    name: 'a malformed key is refused naming the source, the zone and the tag',
    held: null,
    incoming: { ...key, publicKey: stranger.publicKey },
    expect: { code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT', message: new RegExp(`^${FROM}: DNSSEC key ${key.keyTag} of zone example\\.test is corrupt: the stored public key does not belong to the private key`) },
  },
  // A creation time the store would not read back (null, a string) or no Date
  // can show (1e300) was stored as given: the store then refused to load, so
  // the keyring's reload and this node's next start failed (or the status API
  // threw a RangeError).
  ...([null, 'yesterday', 1e300, -1] as const).map((createdAtMs): MergeCase => ({
    name: `a key created at ${JSON.stringify(createdAtMs)} is refused naming the source, and the store stays readable`,
    held: null,
    incoming: { ...key, createdAtMs } as unknown as StoredDnssecKey,
    expect: { code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT', message: new RegExp(`^${FROM}: DNSSEC key ${key.keyTag} of zone example\\.test is corrupt: created .+, expected epoch milliseconds`) },
  })),
  // Mixed versions: a state or a field this version does not know comes from a
  // newer overwatch (an earlier one added `withdrawn` and `withdrawnAtMs`); the
  // refusal says so and asks for the upgrade, not "corrupt" with advice to
  // restore a backup or remove the key.
  {
    name: 'a key in a state this version does not know is refused as written by a newer OpenGSLB',
    held: inState('active'),
    incoming: inState('retiring'),
    expect: { code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT', message: new RegExp(`^${FROM}: DNSSEC key ${key.keyTag} of zone example\\.test has state "retiring", which this version does not know \\(it knows published, active, withdrawn, retired\\): written by a newer OpenGSLB\\? upgrade every overwatch`) },
  },
  {
    name: 'a key with a field this version does not know is refused as written by a newer OpenGSLB',
    held: null,
    incoming: { ...key, retireAtMs: 1_700_000_000_000 } as unknown as StoredDnssecKey,
    expect: { code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT', message: new RegExp(`^${FROM}: DNSSEC key ${key.keyTag} of zone example\\.test has field retireAtMs, which this version does not know: written by a newer OpenGSLB\\? upgrade every overwatch`) },
  },
  {
    name: 'another key under a tag the store holds is refused naming the source',
    held: { ...key, publicKey: stranger.publicKey },
    incoming: key,
    expect: { code: 'OPENGSLB_ERR_DNSSEC_KEY_SYNC', message: new RegExp(`^${FROM} has another key with tag ${key.keyTag} in zone example\\.test; not merged`) },
  },
];

/** The two ways the overwatch merges: one bus entry (mergeKey), or the bucket at start (one mergeKeys call, refusals reported). */
const PATHS: readonly { name: string; merge: (store: StateStore, k: StoredDnssecKey) => Promise<boolean> }[] = [
  { name: 'one entry', merge: (store, k) => mergeKey(store, k, ZONES, FROM) },
  {
    name: 'one call over all',
    merge: async (store, k) => {
      let refused: Error | null = null;
      const changed = await mergeKeys(store, [k], ZONES, FROM, (_k, err) => {
        refused = err;
      });
      if (refused !== null) throw refused;
      return changed.length > 0;
    },
  },
];

for (const s of STORES) {
  for (const p of PATHS) {
    for (const c of CASES) {
      test(`${c.name} (${p.name}, ${s.name})`, async (t) => {
        const store = await s.open(t);
        if (c.held !== null) await store.putDnssecKey(c.held);
        const expect = c.expect;
        if ('code' in expect) {
          await assert.rejects(p.merge(store, c.incoming), (err: OpenGslbError) => {
            assert.equal(err.code, expect.code);
            assert.match(err.message, expect.message);
            return true;
          });
          assert.deepEqual(store.loadDnssecKeys(), c.held === null ? [] : [c.held], 'a refused key changes nothing');
          return;
        }
        assert.equal(await p.merge(store, c.incoming), expect.changed);
        assert.deepEqual(store.loadDnssecKey(c.incoming.zone, c.incoming.keyTag), expect.stored ?? undefined);
        assert.equal(store.loadDnssecKeys().length, expect.stored === null ? 0 : 1);
      });
    }
  }

  test(`one call over all reports each refused key on its own and merges the others, as one call per key did (${s.name})`, async (t) => {
    const other = toStoredKey(await generateZoneKey('other.test', 'ECDSAP256SHA256', { state: 'published' }));
    const malformed = { ...other, keyTag: (other.keyTag + 1) % 65536 };
    const third = toStoredKey(await generateZoneKey('other.test', 'ECDSAP256SHA256', { avoidTags: new Set([other.keyTag, malformed.keyTag]) }));
    const held = [inState('published'), { ...other, state: 'retired' }];
    const incoming = [inState('active'), malformed, { ...other, state: 'active' }, third];

    const batch = await s.open(t);
    for (const k of held) await batch.putDnssecKey(k);
    const refused: { key: StoredDnssecKey; code: string; message: string }[] = [];
    const changed = await mergeKeys(batch, incoming, ZONES, FROM, (k, err) => {
      refused.push({ key: k, code: (err as OpenGslbError).code, message: err.message });
    });
    assert.deepEqual(changed.sort(), ['example.test', 'other.test']);
    assert.equal(refused.length, 1);
    assert.equal(refused[0].key, malformed);
    assert.equal(refused[0].code, 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT');
    assert.match(refused[0].message, new RegExp(`^${FROM}: DNSSEC key ${malformed.keyTag} of zone other\\.test is corrupt: the key's tag is ${other.keyTag}`));

    // The same keys through one call per key, as the start did before (and the bus watch still does, one mergeKey each).
    const single = await s.open(t);
    for (const k of held) await single.putDnssecKey(k);
    for (const k of incoming) await mergeKey(single, k, ZONES, FROM).catch(() => false);
    const sorted = (store: StateStore): StoredDnssecKey[] => store.loadDnssecKeys().sort((a, b) => a.zone.localeCompare(b.zone) || a.keyTag - b.keyTag);
    assert.deepEqual(sorted(batch), sorted(single));
    assert.deepEqual(batch.loadDnssecKey('example.test', key.keyTag), inState('active'));
    assert.deepEqual(batch.loadDnssecKey('other.test', other.keyTag), { ...other, state: 'retired' }, 'never moved back');
    assert.deepEqual(batch.loadDnssecKey('other.test', third.keyTag), third);

    // Without onRefused the first refusal stops the merge: the keys before it are merged, those after are not (the key-sync poll).
    const strict = await s.open(t);
    await assert.rejects(mergeKeys(strict, [third, malformed, key], ZONES, FROM), { code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT' });
    assert.deepEqual(strict.loadDnssecKeys(), [third]);
  });

  test(`a damaged stored key refuses a whole merge, but one entry reads only its own key (${s.name})`, async (t) => {
    const store = await s.open(t);
    // A field left out reads back as a damaged entry (JSON.stringify drops undefined).
    await store.putDnssecKey({ ...stranger, zone: 'other.test', state: undefined } as unknown as StoredDnssecKey);
    const damaged = new RegExp(`DNSSEC key ${stranger.keyTag} of zone other\\.test is corrupt: field state is missing`);
    assert.throws(() => store.loadDnssecKey('other.test', stranger.keyTag), damaged);
    assert.equal(store.loadDnssecKey('other.test', (stranger.keyTag + 1) % 65536), undefined);

    // One call over all: every key is reported with the store's error, as one call per key reported it before.
    const refused: string[] = [];
    assert.deepEqual(await mergeKeys(store, [key, { ...key, zone: 'other.test' }], ZONES, FROM, (k, err) => refused.push(`${k.zone}: ${err.message}`)), []);
    assert.equal(refused.length, 2);
    for (const r of refused) assert.match(r, damaged);
    await assert.rejects(mergeKeys(store, [key], ZONES, FROM), damaged);
    assert.equal(store.loadDnssecKey('example.test', key.keyTag), undefined);

    // One bus entry reads its own key only, so it is taken.
    assert.equal(await mergeKey(store, key, ZONES, FROM), true);
    assert.deepEqual(store.loadDnssecKey('example.test', key.keyTag), key);
  });

  test(`one zone's keys are read alone: not a longer name that starts with it, nor a zone below it, nor a damaged key elsewhere (${s.name})`, async (t) => {
    const store = await s.open(t);
    const published = { ...stranger, state: 'published' };
    for (const zone of ['example.test', 'example.testx', 'sub.example.test', 'example.tes']) await store.putDnssecKey({ ...key, zone });
    await store.putDnssecKey(published);
    await store.putDnssecKey({ ...stranger, zone: 'other.test', state: undefined } as unknown as StoredDnssecKey);
    const byTag = (keys: StoredDnssecKey[]) => keys.sort((a, b) => a.keyTag - b.keyTag);
    assert.deepEqual(byTag(store.loadZoneDnssecKeys('example.test')), byTag([key, published]));
    assert.deepEqual(store.loadZoneDnssecKeys('sub.example.test'), [{ ...key, zone: 'sub.example.test' }]);
    assert.deepEqual(store.loadZoneDnssecKeys('nowhere.test'), []);
    assert.throws(() => store.loadZoneDnssecKeys('other.test'), new RegExp(`DNSSEC key ${stranger.keyTag} of zone other\\.test is corrupt: field state is missing`));
  });
}

test('taking 2000 keys already held costs linear time, one bus entry at a time or all in one call', async () => {
  // One key's material under 2000 zones: the merge checks each (keyFromStored), and the tag does not depend on the zone.
  const n = 2000;
  const store = new MemoryStore();
  const keys: StoredDnssecKey[] = [];
  for (let i = 0; i < n; i++) keys.push({ ...key, zone: `z${i}.example.test` });
  for (const k of keys) await store.putDnssecKey(k);
  const zones = new Set(keys.map((k) => k.zone));

  // What the overwatch does for each bus entry (#applyReplicatedKey): merge it, then read it back.
  let started = performance.now();
  for (const k of keys) {
    assert.equal(await mergeKey(store, k, zones, FROM), false);
    assert.equal(store.loadDnssecKey(k.zone, k.keyTag)?.state, 'active');
  }
  const oneByOne = performance.now() - started;

  // What it does at start with the bucket's keys.
  started = performance.now();
  assert.deepEqual(await mergeKeys(store, keys, zones, FROM, (_k, err) => assert.fail(err)), []);
  const allAtOnce = performance.now() - started;

  // Reading and parsing every stored key for each (merge, then read back) took 9 to 22 s one by one on this
  // size here, and 12 s for the merge alone (the start's old loop); linear takes about 0.3 s, most of it
  // checking each key's parts (keyFromStored).
  assert.ok(oneByOne < 2000, `${n} bus entries one at a time took ${Math.round(oneByOne)} ms`);
  assert.ok(allAtOnce < 2000, `${n} keys in one call took ${Math.round(allAtOnce)} ms`);
});

test('2000 zones each taking a new key one at a time re-read only their own zone: linear, and a zone not held is left out', async () => {
  const n = 2000;
  const store = new MemoryStore();
  const zones = Array.from({ length: n }, (_, i) => `z${i}.example.test`);
  for (const zone of zones) await store.putDnssecKey({ ...key, zone });
  const { keyring } = await Keyring.open(store, zones, DNSSEC);
  const published = { ...stranger, state: 'published' };

  // What the overwatch does for each bus entry that changed a key (#applyReplicatedKey): store it, re-read its zone.
  const started = performance.now();
  for (const zone of zones) {
    assert.equal(await mergeKey(store, { ...published, zone }, keyring.zones, FROM), true);
    await keyring.reload([zone]);
    assert.deepEqual(keyring.zones.get(zone)?.keys.map((k) => k.info.state), ['active', 'published']);
  }
  const elapsed = performance.now() - started;
  assert.deepEqual(keyring.dnskeys().get('z0.example.test')?.length, 2);
  assert.equal(keyring.zones.get('z0.example.test')?.active.info.keyTag, key.keyTag, 'the old key still signs');

  // A zone not held is left out, and re-reading nothing changes nothing.
  await keyring.reload(['nowhere.test']);
  assert.equal(keyring.zones.has('nowhere.test'), false);
  assert.equal(keyring.zones.size, n);

  // Re-reading every zone for each entry parsed n keys n times: minutes at this size (97 s for 600 zones,
  // measured with two overwatches and a bus); one zone at a time takes 1-2 s here, under load too.
  assert.ok(elapsed < 10_000, `${n} keys, each re-reading its zone, took ${Math.round(elapsed)} ms`);
});

test('a reload parses again only the keys whose stored form changed, and still reports one damaged since', async () => {
  const store = new MemoryStore();
  await store.putDnssecKey(key);
  await store.putDnssecKey({ ...key, zone: 'other.test' });
  const { keyring } = await Keyring.open(store, ['example.test', 'other.test'], DNSSEC);
  const before = keyring.zones.get('example.test')?.active;
  const other = keyring.zones.get('other.test')?.active;

  // Nothing changed: the very same keys (not parsed again), through either reload.
  await keyring.reload();
  assert.equal(keyring.zones.get('example.test')?.active, before);
  await keyring.ensure(['example.test', 'other.test']);
  assert.equal(keyring.zones.get('example.test')?.active, before);

  // One key moved on in the store: that one is read anew, the other zone's is the same object.
  await store.putDnssecKey({ ...key, state: 'retired' });
  await store.putDnssecKey({ ...stranger, state: 'active', createdAtMs: key.createdAtMs + 1 });
  await keyring.reload();
  assert.deepEqual(keyring.zones.get('example.test')?.keys.map((k) => [k.info.keyTag, k.info.state]), [[key.keyTag, 'retired'], [stranger.keyTag, 'active']]);
  assert.notEqual(keyring.zones.get('example.test')?.keys[0], before);
  assert.equal(keyring.zones.get('other.test')?.active, other);

  // A key damaged in the store since it was parsed is reported, not served from memory.
  await store.putDnssecKey({ ...key, zone: 'other.test', publicKey: stranger.publicKey });
  await assert.rejects(keyring.reload(['other.test']), { code: 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT', message: /does not belong to the private key/ });
});
