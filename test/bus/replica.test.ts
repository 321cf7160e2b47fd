// The operator-state bucket's two formats, without NATS: the bucket keys
// (src/bus/replica.ts operatorKvKey, the only place that builds them) read
// back as what they were built from, for every kind and for text NATS keys
// may not hold; and the seal (src/bus/sealed-entry.ts) opens only with the
// same secret, for the same bucket and key, unchanged. Then, against a real
// nats-server without JetStream: the replica says the bucket cannot be
// opened, keeps the change waiting, and never throws; with JetStream, a
// seed puts only the keys the bucket lacks.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { bucketName, OperatorReplica, operatorKvKey, parseOperatorKvKey, type OperatorChange, type OperatorEntryId, type ReplicaEvent } from '../../src/bus/replica.ts';
import type { BusConfig } from '../../src/config/types.ts';
import { freePort } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { needsNats, startNats } from '../helpers/nats.ts';
import { deriveStateKey, openEntry, sealEntry } from '../../src/bus/sealed-entry.ts';
import { LmdbStore } from '../../src/state/store.ts';

const ids: { name: string; id: OperatorEntryId }[] = [
  { name: 'a domain override', id: { kind: 'override', target: { scope: 'domain', service: 'app.example.test', address: '2001:db8::1' } } },
  { name: 'a server override', id: { kind: 'override', target: { scope: 'server', address: '192.0.2.1' } } },
  { name: 'a region override', id: { kind: 'override', target: { scope: 'region', region: 'eu-west.1 *>' } } },
  { name: 'an IPv4 geo mapping', id: { kind: 'geo_mapping', cidr: '10.9.0.0/16' } },
  { name: 'an IPv6 geo mapping', id: { kind: 'geo_mapping', cidr: '2001:db8::/32' } },
  { name: 'a revocation of an id with dots and spaces', id: { kind: 'revocation', agentId: 'edge.01 host>*' } },
  { name: 'a DNSSEC key', id: { kind: 'dnssec_key', zone: 'example.test', keyTag: 65535 } },
];

for (const c of ids) {
  test(`the bucket key of ${c.name} holds only key characters and reads back as it`, () => {
    const key = operatorKvKey(c.id);
    // NATS KV keys: tokens of letters, digits, "-", "_", "=", separated by ".".
    assert.match(key, /^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)+$/);
    assert.deepEqual(parseOperatorKvKey(key), c.id);
  });
}

test('keys no kind builds read as null: another prefix, a bad token, a key tag out of range, extra tokens', () => {
  for (const key of ['pin.YWJj', 'geo_mapping.***', 'dnssec_key.ZXhhbXBsZS50ZXN0.65536', 'dnssec_key.ZXhhbXBsZS50ZXN0.x', 'revocation.YWJj.ZGVm', 'override.bm90IGpzb24', 'override.e30', 'geo_mapping']) {
    assert.equal(parseOperatorKvKey(key), null, key);
  }
});

test('the bucket is named from the subject prefix with dots as underscores', () => {
  assert.equal(bucketName('opengslb'), 'opengslb_operator');
  assert.equal(bucketName('prod.gslb'), 'prod_gslb_operator');
});

test('a sealed entry opens only with the same secret, in the same bucket, under the same key, unchanged; what it hides stays hidden', () => {
  const secret = randomBytes(32).toString('base64');
  const key = deriveStateKey(secret);
  const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr: '10.9.0.0/16' });
  const payload = { atMs: 1_700_000_000_000, by: 'ow-a', value: { cidr: '10.9.0.0/16', region: 'us', comment: 'secret note', source: 'alice', createdAtMs: 1 } };
  const sealed = sealEntry(key, 'opengslb_operator', kvKey, payload);
  assert.ok(!sealed.includes(Buffer.from('secret note')) && !sealed.includes(Buffer.from('alice')));
  assert.deepEqual(openEntry(key, 'opengslb_operator', kvKey, sealed), { ok: true, payload });
  // Two seals of the same payload differ (a fresh IV each time).
  assert.notDeepEqual(sealEntry(key, 'opengslb_operator', kvKey, payload), sealed);

  const refused = { ok: false, reason: 'unauthenticated' };
  assert.deepEqual(openEntry(deriveStateKey(randomBytes(32).toString('base64')), 'opengslb_operator', kvKey, sealed), refused, 'another secret');
  assert.deepEqual(openEntry(key, 'other_operator', kvKey, sealed), refused, 'another bucket');
  assert.deepEqual(openEntry(key, 'opengslb_operator', operatorKvKey({ kind: 'geo_mapping', cidr: '10.8.0.0/16' }), sealed), refused, 'moved to another key');
  for (const at of [0, 5, 20, sealed.length - 1]) {
    const changed = Buffer.from(sealed);
    changed[at] ^= 1;
    assert.deepEqual(openEntry(key, 'opengslb_operator', kvKey, changed), refused, `byte ${at} changed`);
  }
  for (const bytes of [Buffer.alloc(0), Buffer.alloc(28), randomBytes(200), sealed.subarray(0, 40)]) {
    assert.deepEqual(openEntry(key, 'opengslb_operator', kvKey, bytes), refused, `${bytes.length} bytes`);
  }
});

test('an entry that opens but is not a payload is malformed, not an exception', () => {
  const key = deriveStateKey(randomBytes(32).toString('base64'));
  const kvKey = operatorKvKey({ kind: 'revocation', agentId: 'edge-1' });
  for (const bad of [{ atMs: 'now', by: 'x', value: null }, { atMs: 1, value: null }, { atMs: 1, by: 'x' }, { atMs: Number.NaN, by: 'x', value: null }]) {
    const sealed = sealEntry(key, 'b', kvKey, bad as never);
    assert.deepEqual(openEntry(key, 'b', kvKey, sealed), { ok: false, reason: 'malformed' }, JSON.stringify(bad));
  }
});

test('without JetStream the replica reports that the bucket cannot be opened, keeps the change waiting and never throws', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-nojs-'), { jetStream: false });
  const bus = busAt(port, 'test.gslb');
  const events: ReplicaEvent[] = [];
  let applied = 0;
  const replica = new OperatorReplica({ bus, name: 'no-js', onChange: async () => { applied++; return 'applied'; }, onEvent: (e) => events.push(e) });
  t.after(() => replica.close());
  replica.put({ kind: 'geo_mapping', cidr: '10.9.0.0/16', value: { cidr: '10.9.0.0/16', region: 'us', comment: null, source: 'alice', createdAtMs: 1 } });
  const deadline = Date.now() + 10_000;
  while (!events.some((e) => e.kind === 'replica_error')) {
    assert.ok(Date.now() < deadline, `no replica_error within 10 s: ${JSON.stringify(events)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const error = events.find((e) => e.kind === 'replica_error') as { error: string };
  assert.match(error.error, /bucket test_gslb_operator cannot be opened \(is JetStream on, nats-server -js\?\)/);
  const c = replica.counters();
  assert.equal(c.connected, true);
  assert.equal(c.pending, 1);
  assert.equal(c.puts.geo_mapping, 0);
  assert.equal(applied, 0);
});

test('the seed puts only what the bucket has no entry for; for a key it holds, the bucket\'s entry is applied here instead', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-seed-'));
  const bus = busAt(port, 'seed.gslb');
  const mapping = (cidr: string, region: string) => ({ kind: 'geo_mapping' as const, cidr, value: { cidr, region, comment: null, source: 'alice', createdAtMs: 1 } });
  // The fleet's entry for 10.1.0.0/16: us.
  const fleet = new OperatorReplica({ bus, name: 'fleet', onChange: async () => 'applied' });
  t.after(() => fleet.close());
  await fleet.ready();
  fleet.put(mapping('10.1.0.0/16', 'us'));
  await fleet.settled();
  assert.equal(fleet.counters().puts.geo_mapping, 1);

  // An overwatch that held 10.1.0.0/16 → eu and 10.2.0.0/16 → eu before the bus.
  const applied: string[] = [];
  const events: ReplicaEvent[] = [];
  const joining = new OperatorReplica({
    bus, name: 'joining', seed: () => [mapping('10.1.0.0/16', 'eu'), mapping('10.2.0.0/16', 'eu')], onEvent: (e) => events.push(e),
    onChange: async (c) => { if (c.kind === 'geo_mapping') applied.push(`${c.cidr} ${c.value?.region}`); return 'applied'; },
  });
  t.after(() => joining.close());
  // A third one, watching: it sees the fleet's entry and the one seeded.
  const seen = new Map<string, string>();
  const watcher = new OperatorReplica({ bus, name: 'watcher', onChange: async (c) => { if (c.kind === 'geo_mapping') seen.set(c.cidr, c.value?.region ?? ''); return 'applied'; } });
  t.after(() => watcher.close());
  const deadline = Date.now() + 10_000;
  while (!(seen.get('10.2.0.0/16') === 'eu' && applied.includes('10.1.0.0/16 us'))) {
    assert.ok(Date.now() < deadline, `not within 10 s: seen ${JSON.stringify([...seen])}, applied ${JSON.stringify(applied)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await joining.settled();
  assert.equal(joining.counters().puts.geo_mapping, 1, 'only 10.2.0.0/16 was put');
  assert.equal(seen.get('10.1.0.0/16'), 'us', 'the bucket kept the fleet\'s entry');
  assert.deepEqual(events.filter((e) => e.kind === 'seeded'), [{ kind: 'seeded', puts: 1 }]);
});

/** A replica over a map cidr → region (null: removed), as an overwatch's geo mappings; `now` fixes its clock. */
function mappingReplica(t: TestContext, bus: BusConfig, name: string, now: () => number, pendingStore?: LmdbStore) {
  const state = new Map<string, string | null>();
  const events: ReplicaEvent[] = [];
  const replica = new OperatorReplica({
    bus, name, now, pendingStore, onEvent: (e) => events.push(e),
    onChange: async (c) => {
      if (c.kind !== 'geo_mapping') return { refused: 'not a mapping' };
      const region = c.value?.region ?? null;
      if (state.get(c.cidr) === region) return 'unchanged';
      state.set(c.cidr, region);
      return 'applied';
    },
  });
  t.after(() => replica.close());
  /** A change made on this overwatch: applied here, then put. */
  const set = (cidr: string, region: string | null) => {
    state.set(cidr, region);
    replica.put({ kind: 'geo_mapping', cidr, value: region === null ? null : { cidr, region, comment: null, source: name, createdAtMs: 1 } });
  };
  return { replica, state, events, set };
}

/** The bus config of the nats-server at `port`, with its own subject prefix (and so bucket) and a fresh state secret. */
function busAt(port: number, subjectPrefix: string): BusConfig {
  return { type: 'nats', servers: [`nats://127.0.0.1:${port}`], token: null, credentialsFile: null, tls: null, subjectPrefix, stateSecret: randomBytes(32).toString('base64'), previousStateSecrets: [] };
}

/** A nats-server with JetStream on a free port, and two replicas A and B (clocks Date.now) on its bucket `<name>.gslb`, both open. */
async function twoReplicas(t: TestContext, name: string) {
  const port = await freePort();
  const nats = await startNats(t, port, await tempDir(t, `opengslb-nats-${name}-`));
  const bus = busAt(port, `${name}.gslb`);
  const a = mappingReplica(t, bus, 'a', Date.now);
  const b = mappingReplica(t, bus, 'b', Date.now);
  await a.replica.ready();
  await b.replica.ready();
  return { port, nats, bus, a, b };
}

/** The region the bucket's entry for `cidr` holds (null: a tombstone), opened with the secret. */
async function bucketRegion(bus: BusConfig, cidr: string): Promise<{ atMs: number; region: string | null } | undefined> {
  const nc = await connect({ servers: [...bus.servers] });
  try {
    const kv = await new Kvm(nc).open(bucketName(bus.subjectPrefix));
    const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr });
    const e = await kv.get(kvKey);
    if (e === null || e.operation !== 'PUT') return undefined;
    const opened = openEntry(deriveStateKey(bus.stateSecret!), bucketName(bus.subjectPrefix), kvKey, e.value);
    assert.ok(opened.ok);
    return { atMs: opened.payload.atMs, region: (opened.payload.value as { region?: string } | null)?.region ?? null };
  } finally {
    await nc.close();
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a change made earlier but put later (its overwatch was away from NATS) does not stay in the bucket over a newer one: the newer change wins everywhere, a joining overwatch included', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-late-'));
  const bus = busAt(port, 'late.gslb');
  // B removes the mapping now; A, not connected yet, had set it 30 s earlier by its clock (behind B's, within the 60 s skew).
  const b = mappingReplica(t, bus, 'b', Date.now);
  await b.replica.ready();
  b.set('10.1.0.0/16', null);
  await b.replica.settled();
  const a = mappingReplica(t, bus, 'a', () => Date.now() - 30_000);
  a.set('10.1.0.0/16', 'us');
  await a.replica.ready();
  await until('A and B hold the newer change (the removal), and so does the bucket', async () => a.state.get('10.1.0.0/16') === null && b.state.get('10.1.0.0/16') === null && (await bucketRegion(bus, '10.1.0.0/16'))?.region === null);
  // A third overwatch that joins now takes the bucket's entry: the newer one.
  const c = mappingReplica(t, bus, 'c', Date.now);
  c.state.set('10.1.0.0/16', 'us');
  await c.replica.ready();
  await until('C applies the removal', () => c.state.get('10.1.0.0/16') === null);
});

test('two overwatches that change one key at the same millisecond while NATS is away end with the same value once it is back', { skip: needsNats }, async (t) => {
  const port = await freePort();
  const dir = await tempDir(t, 'opengslb-nats-tie-');
  let nats = await startNats(t, port, dir);
  const bus = busAt(port, 'tie.gslb');
  // Both clocks read the same millisecond (as two writes after one entry from a clock ahead of both do: held + 1).
  const a = mappingReplica(t, bus, 'a', () => 5_000_000);
  const b = mappingReplica(t, bus, 'b', () => 5_000_000);
  await a.replica.ready();
  await b.replica.ready();
  await nats.stop();
  await until('both see NATS down', () => !a.replica.counters().connected && !b.replica.counters().connected);
  a.set('10.2.0.0/16', 'us');
  b.set('10.2.0.0/16', 'eu');
  nats = await startNats(t, port, dir);
  t.after(() => nats.stop());
  await until('both put their change', () => a.replica.counters().pending === 0 && b.replica.counters().pending === 0);
  // Let every entry go round, then compare.
  await until('A and B hold the same value as the bucket', async () => {
    const bucket = await bucketRegion(bus, '10.2.0.0/16');
    return bucket !== undefined && a.state.get('10.2.0.0/16') === bucket.region && b.state.get('10.2.0.0/16') === bucket.region;
  });
});

test('a nats-server that comes back without its JetStream storage (a new node, a lost disk) gets the bucket again: changes made after it still reach the other overwatches', { skip: needsNats }, async (t) => {
  const pair = await twoReplicas(t, 'lost');
  const { port, bus, a, b } = pair;
  let nats = pair.nats;
  a.set('10.1.0.0/16', 'us');
  await until('B takes the first change', () => b.state.get('10.1.0.0/16') === 'us');
  await nats.stop();
  nats = await startNats(t, port, await tempDir(t, 'opengslb-nats-lost-new-'));
  t.after(() => nats.stop());
  await until('both reconnect', () => a.replica.counters().reconnects === 1 && b.replica.counters().reconnects === 1);
  a.set('10.2.0.0/16', 'eu');
  await until('B takes the change made after the storage was lost', () => b.state.get('10.2.0.0/16') === 'eu', 6000);
  assert.ok(a.events.some((e) => e.kind === 'bucket_recreated'), 'A reports the bucket made again');
  // What the lost bucket held is in the new one: an overwatch that joins now gets both changes.
  const c = mappingReplica(t, bus, 'c', Date.now);
  await c.replica.ready();
  await until('a joining overwatch takes the change made before the loss and the one after', () => c.state.get('10.1.0.0/16') === 'us' && c.state.get('10.2.0.0/16') === 'eu', 6000);
  assert.equal((await bucketRegion(bus, '10.1.0.0/16'))?.region, 'us');
});

test('an entry sealed with the secret but with a time no date can hold is malformed: refused and counted, and the watch goes on to the next entry', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-time-'));
  const bus = busAt(port, 'time.gslb');
  const a = mappingReplica(t, bus, 'a', Date.now);
  await a.replica.ready();
  a.set('10.1.0.0/16', 'us');
  await a.replica.settled();
  const nc = await connect({ servers: [...bus.servers] });
  t.after(() => nc.close());
  const kv = await new Kvm(nc).open(bucketName(bus.subjectPrefix));
  const key = deriveStateKey(bus.stateSecret!);
  const entry = (cidr: string, atMs: number) => {
    const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr });
    return [kvKey, sealEntry(key, bucketName(bus.subjectPrefix), kvKey, { atMs, by: 'other', value: { cidr, region: 'eu', comment: null, source: 'b', createdAtMs: 1 } })] as const;
  };
  // Before the one A holds, so the "older" check reads its time; then far past any date. Each once A has
  // refused the one before: the bucket keeps one entry per key (history 1), so a second put before A's
  // watch handed over the first would replace it there, unseen (1 malformed instead of 2, seen in a full run).
  for (const [i, atMs] of [-1e300, 1e300].entries()) {
    await kv.put(...entry('10.1.0.0/16', atMs));
    await until(`A refuses entry ${i + 1}`, () => a.replica.counters().rejections.geo_mapping.malformed === i + 1);
  }
  await kv.put(...entry('10.2.0.0/16', Date.now()));
  await until('A takes the good entry after them', () => a.state.get('10.2.0.0/16') === 'eu');
  assert.equal(a.state.get('10.1.0.0/16'), 'us');
  assert.equal(a.replica.counters().rejections.geo_mapping.malformed, 2, JSON.stringify(a.events.filter((e) => e.kind !== 'connected')));
  assert.deepEqual(a.events.filter((e) => e.kind === 'replica_error'), []);
});

test('a bucket deleted while every overwatch stays connected (nats kv rm) is made again (by the next put, or the periodic check): the change and what was held before reach the others', { skip: needsNats }, async (t) => {
  const { bus, a, b } = await twoReplicas(t, 'rm');
  a.set('10.1.0.0/16', 'us');
  await until('B takes the first change', () => b.state.get('10.1.0.0/16') === 'us');
  const nc = await connect({ servers: [...bus.servers] });
  t.after(() => nc.close());
  await new Kvm(nc).open(bucketName(bus.subjectPrefix)).then((kv) => kv.destroy());
  b.set('10.2.0.0/16', 'eu');
  await until('A takes the change put after the bucket was deleted', () => a.state.get('10.2.0.0/16') === 'eu', 8000);
  a.set('10.3.0.0/16', 'ap');
  await until('B takes a later change of A', () => b.state.get('10.3.0.0/16') === 'ap', 8000);
  assert.equal((await bucketRegion(bus, '10.1.0.0/16'))?.region, 'us', 'the entry held before the deletion is in the bucket again');
});

test('a bare KV delete or purge (someone without the secret) changes nothing, and the held entry goes back in the bucket for overwatches that join later', { skip: needsNats }, async (t) => {
  const { bus, a, b } = await twoReplicas(t, 'del');
  a.set('10.1.0.0/16', 'us');
  b.set('10.2.0.0/16', 'eu');
  await until('each takes the other\'s change', () => b.state.get('10.1.0.0/16') === 'us' && a.state.get('10.2.0.0/16') === 'eu');
  const nc = await connect({ servers: [...bus.servers] });
  t.after(() => nc.close());
  const kv = await new Kvm(nc).open(bucketName(bus.subjectPrefix));
  await kv.delete(operatorKvKey({ kind: 'geo_mapping', cidr: '10.1.0.0/16' }));
  await kv.purge(operatorKvKey({ kind: 'geo_mapping', cidr: '10.2.0.0/16' }));
  await until('both entries are in the bucket again', async () => (await bucketRegion(bus, '10.1.0.0/16'))?.region === 'us' && (await bucketRegion(bus, '10.2.0.0/16'))?.region === 'eu');
  for (const o of [a, b]) {
    assert.equal(o.state.get('10.1.0.0/16'), 'us');
    assert.equal(o.state.get('10.2.0.0/16'), 'eu');
    await until('both count the bare removals', () => o.replica.counters().rejections.geo_mapping.unauthenticated === 2);
  }
  const c = mappingReplica(t, bus, 'c', Date.now);
  await c.replica.ready();
  await until('a joining overwatch takes both', () => c.state.get('10.1.0.0/16') === 'us' && c.state.get('10.2.0.0/16') === 'eu');
});

test('a bare KV delete left in the bucket is counted once, by the overwatches watching when it happens, not again by one that starts later', { skip: needsNats }, async (t) => {
  const { bus, a, b } = await twoReplicas(t, 'olddel');
  // A key no overwatch holds: nobody puts an entry back, so the delete stays the key's last entry in the bucket.
  const nc = await connect({ servers: [...bus.servers] });
  t.after(() => nc.close());
  const kv = await new Kvm(nc).open(bucketName(bus.subjectPrefix));
  await kv.delete(operatorKvKey({ kind: 'geo_mapping', cidr: '10.9.0.0/16' }));
  await until('A and B count the delete as it happens', () => a.replica.counters().rejections.geo_mapping.unauthenticated === 1 && b.replica.counters().rejections.geo_mapping.unauthenticated === 1);
  // An overwatch (re)started now is handed the old delete by its watch: no news.
  const c = mappingReplica(t, bus, 'c', Date.now);
  await c.replica.ready();
  a.set('10.5.0.0/16', 'eu');
  // The watch delivers in bucket order: once C has the entry put after the delete, it has seen the delete.
  await until('C takes the change put after the delete', () => c.state.get('10.5.0.0/16') === 'eu');
  assert.equal(c.replica.counters().rejections.geo_mapping.unauthenticated, 0, `the old delete was counted again at start: ${JSON.stringify(c.events.filter((e) => e.kind === 'rejected'))}`);
  assert.equal(a.replica.counters().rejections.geo_mapping.unauthenticated, 1);
  assert.equal(b.replica.counters().rejections.geo_mapping.unauthenticated, 1);
});

test('an entry stamped more than 60 s ahead of this clock (a writer\'s clock a year ahead) is refused and counted as future; once that clock is right, the next write replaces it everywhere', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-future-'));
  const bus = busAt(port, 'future.gslb');
  const YEAR = 365 * 86_400_000;
  let bAhead = YEAR;
  const a = mappingReplica(t, bus, 'a', Date.now);
  const b = mappingReplica(t, bus, 'b', () => Date.now() + bAhead);
  await a.replica.ready();
  await b.replica.ready();
  a.set('10.1.0.0/16', 'us');
  await until('B takes A\'s change', () => b.state.get('10.1.0.0/16') === 'us');
  // B, its clock a year ahead, changes the key: last writer wins by time, so it would win every later write.
  b.set('10.1.0.0/16', 'eu');
  await until('A refuses the entry from the future', () => a.replica.counters().rejections.geo_mapping.future === 1, 5000);
  assert.equal(a.state.get('10.1.0.0/16'), 'us', 'A did not take it');
  assert.deepEqual(a.events.filter((e) => e.kind === 'rejected').map((e) => e.kind === 'rejected' && e.reason), ['future']);
  // A's change while B's clock is still wrong: B puts its entry back once, A refuses it again; no endless exchange.
  a.set('10.1.0.0/16', 'ap');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(a.state.get('10.1.0.0/16'), 'ap');
  assert.ok(a.replica.counters().rejections.geo_mapping.future <= 2 && b.replica.counters().puts.geo_mapping <= 2, `puts go round: A refused ${a.replica.counters().rejections.geo_mapping.future}, B put ${b.replica.counters().puts.geo_mapping}`);
  // B's clock is fixed (NTP steps it back), no restart: A's next change reaches it, and the bucket keeps it for a joining overwatch.
  bAhead = 0;
  a.set('10.1.0.0/16', 'sa');
  await until('B takes A\'s change once its clock is right', () => b.state.get('10.1.0.0/16') === 'sa', 5000);
  const c = mappingReplica(t, bus, 'c', Date.now);
  await c.replica.ready();
  await until('a joining overwatch takes it too', () => c.state.get('10.1.0.0/16') === 'sa');
  assert.equal((await bucketRegion(bus, '10.1.0.0/16'))?.region, 'sa');
});

test('state_secret changed without the old one in previous_state_secrets (it was lost), as docs/scaling.md says: the old entries are refused and reported at start; once the bucket is deleted, each overwatch puts what it holds again, sealed with the new secret', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-rotate-'));
  const oldBus = busAt(port, 'rotate.gslb');
  const a = mappingReplica(t, oldBus, 'a', Date.now);
  const b = mappingReplica(t, oldBus, 'b', Date.now);
  a.set('10.1.0.0/16', 'us');
  b.set('10.2.0.0/16', 'eu');
  await until('each takes the other\'s change', () => a.state.get('10.2.0.0/16') === 'eu' && b.state.get('10.1.0.0/16') === 'us');
  await a.replica.close();
  await b.replica.close();
  // Both restarted with the new secret; their state stores still hold both mappings (the seed reads them).
  const newBus: BusConfig = { ...oldBus, stateSecret: randomBytes(32).toString('base64') };
  const restarted = (name: string) => {
    const events: ReplicaEvent[] = [];
    const held: OperatorChange[] = [['10.1.0.0/16', 'us'], ['10.2.0.0/16', 'eu']].map(([cidr, region]) => ({ kind: 'geo_mapping', cidr, value: { cidr, region, comment: null, source: 'x', createdAtMs: 1 } }));
    const replica = new OperatorReplica({ bus: newBus, name, onEvent: (e) => events.push(e), seed: () => held, onChange: async () => 'unchanged' });
    t.after(() => replica.close());
    return { replica, events };
  };
  const a2 = restarted('a2');
  const b2 = restarted('b2');
  const refusedAtStart = (o: { events: ReplicaEvent[] }) => o.events.find((e) => e.kind === 'refused_at_start');
  await until('both report the entries sealed with the old secret, found at start', () => refusedAtStart(a2) !== undefined && refusedAtStart(b2) !== undefined);
  for (const o of [a2, b2]) {
    assert.deepEqual(refusedAtStart(o) && { ...refusedAtStart(o), examples: [] }, { kind: 'refused_at_start', total: 2, reasons: { unauthenticated: 2 }, examples: [] });
    assert.equal(o.replica.counters().rejections.geo_mapping.unauthenticated, 0, 'counted by the overwatches watching when they were put, not again');
  }
  assert.equal(a2.replica.counters().puts.geo_mapping + b2.replica.counters().puts.geo_mapping, 0, 'the keys are in the bucket (old entries): nothing is seeded');
  // The procedure's last step: nats kv rm <prefix>_operator. Each overwatch makes it again and puts what it holds.
  const nc = await connect({ servers: [...newBus.servers] });
  t.after(() => nc.close());
  await new Kvm(nc).open(bucketName(newBus.subjectPrefix)).then((kv) => kv.destroy());
  // Read from the bucket once an overwatch made it again: Debian's nats-server 2.9.10 can crash (a nil pointer
  // in jsMsgGetRequest) on a get that races the stream's creation, which asking every 50 ms meanwhile did.
  const recreated = (o: { events: ReplicaEvent[] }) => o.events.some((e) => e.kind === 'bucket_recreated');
  await until('an overwatch makes the bucket again', () => recreated(a2) || recreated(b2), 12_000);
  await until('the bucket holds both mappings again, readable with the new secret', async () => (await bucketRegion(newBus, '10.1.0.0/16'))?.region === 'us' && (await bucketRegion(newBus, '10.2.0.0/16'))?.region === 'eu');
  const c = mappingReplica(t, newBus, 'c', Date.now);
  await c.replica.ready();
  await until('a joining overwatch with the new secret takes both', () => c.state.get('10.1.0.0/16') === 'us' && c.state.get('10.2.0.0/16') === 'eu');
  assert.equal(c.replica.counters().rejections.geo_mapping.unauthenticated, 0);
});

/**
 * An overwatch across restarts: `state` (its state store: cidr → region) outlives each replica, and the
 * seed reads it, as Overwatch does. `start` runs a new process (a new replica) with `bus`.
 */
function restartable(t: TestContext, name: string) {
  const state = new Map<string, string | null>();
  const events: ReplicaEvent[] = [];
  let replica: OperatorReplica | null = null;
  const mapping = (cidr: string, region: string | null): OperatorChange => ({ kind: 'geo_mapping', cidr, value: region === null ? null : { cidr, region, comment: null, source: name, createdAtMs: 1 } });
  return {
    state,
    events,
    get replica(): OperatorReplica {
      return replica!;
    },
    async start(bus: BusConfig): Promise<void> {
      await replica?.close();
      const r = new OperatorReplica({
        bus, name, onEvent: (e) => events.push(e),
        seed: () => [...state].filter(([, region]) => region !== null).map(([cidr, region]) => mapping(cidr, region)),
        onChange: async (c) => {
          if (c.kind !== 'geo_mapping') return { refused: 'not a mapping' };
          const region = c.value?.region ?? null;
          if (state.get(c.cidr) === region) return 'unchanged';
          state.set(c.cidr, region);
          return 'applied';
        },
      });
      t.after(() => r.close());
      replica = r;
      await r.ready();
    },
    set(cidr: string, region: string | null): void {
      state.set(cidr, region);
      replica!.put(mapping(cidr, region));
    },
  };
}

/** How many entries of the bucket open with `secret` alone, and how many do not. */
async function bucketOpensWith(bus: BusConfig, secret: string): Promise<{ opens: number; not: number }> {
  const nc = await connect({ servers: [...bus.servers] });
  try {
    const kv = await new Kvm(nc).open(bucketName(bus.subjectPrefix));
    const key = deriveStateKey(secret);
    let opens = 0;
    let not = 0;
    for await (const k of await kv.keys('>')) {
      const e = await kv.get(k);
      if (e === null || e.operation !== 'PUT') continue;
      if (openEntry(key, bucketName(bus.subjectPrefix), k, e.value).ok) opens++;
      else not++;
    }
    return { opens, not };
  } finally {
    await nc.close();
  }
}

test('rotating state_secret as docs/scaling.md says, one overwatch at a time: at every step each overwatch reads what the others put, entries are sealed again with the new secret without going round, and after the old one is dropped nothing is refused', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-roll-'));
  const base = busAt(port, 'roll.gslb');
  const oldSecret = base.stateSecret!;
  const newSecret = randomBytes(32).toString('base64');
  const withSecrets = (stateSecret: string, previousStateSecrets: string[]): BusConfig => ({ ...base, stateSecret, previousStateSecrets });
  const fleet = ['a', 'b', 'c'].map((name) => restartable(t, name));
  const expected = new Map<string, string>();
  const everyoneHas = (what: string) => until(what, () => fleet.every((o) => [...expected].every(([cidr, region]) => o.state.get(cidr) === region)), 8000);
  const noneRefused = () => {
    for (const [i, o] of fleet.entries()) {
      const refused = o.events.filter((e) => e.kind === 'rejected' || e.kind === 'refused_at_start');
      assert.deepEqual(refused, [], `${'abc'[i]} refused entries`);
    }
  };
  let n = 0;
  /** A change on overwatch `o`, which every overwatch must then hold. */
  const change = async (o: (typeof fleet)[number], why: string) => {
    const cidr = `10.${++n}.0.0/16`;
    o.set(cidr, `r${n}`);
    expected.set(cidr, `r${n}`);
    await everyoneHas(why);
  };

  for (const o of fleet) await o.start(withSecrets(oldSecret, []));
  for (const o of fleet) await change(o, 'before the rotation');

  // Step 1: the new secret as a previous one, one overwatch after the other (each a restart); they still seal with the old one.
  for (const [i, o] of fleet.entries()) {
    await o.start(withSecrets(oldSecret, [newSecret]));
    await change(o, `step 1, ${i + 1} restarted: its change`);
    await change(fleet[(i + 1) % 3], `step 1, ${i + 1} restarted: another's change`);
  }
  // Step 2: the new secret as state_secret, the old one as previous. Mid-roll some seal with the old secret, some with the new.
  for (const [i, o] of fleet.entries()) {
    await o.start(withSecrets(newSecret, [oldSecret]));
    await change(o, `step 2, ${i + 1} on the new secret: its change`);
    if (i < 2) await change(fleet[2], `step 2, ${i + 1} on the new secret: a change of one still sealing with the old`);
  }
  noneRefused();
  // The last start sealed again what was left sealed with the old secret; nothing goes round after that.
  await until('every entry of the bucket opens with the new secret alone', async () => (await bucketOpensWith(base, newSecret)).not === 0);
  assert.equal((await bucketOpensWith(base, newSecret)).opens, expected.size);
  const puts = () => fleet.reduce((sum, o) => sum + o.replica.counters().puts.geo_mapping, 0);
  const before = puts();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(puts(), before, 'entries keep being sealed again');
  assert.ok(fleet.some((o) => o.events.some((e) => e.kind === 'resealed')), 'an overwatch reports entries sealed again');

  // Step 3: the old secret dropped; a joining overwatch knows only the new one.
  for (const [i, o] of fleet.entries()) {
    await o.start(withSecrets(newSecret, []));
    await change(o, `step 3, ${i + 1} without the old secret`);
  }
  noneRefused();
  const joining = restartable(t, 'd');
  await joining.start(withSecrets(newSecret, []));
  await until('a joining overwatch with only the new secret takes every change', () => [...expected].every(([cidr, region]) => joining.state.get(cidr) === region));
  assert.deepEqual(joining.events.filter((e) => e.kind === 'rejected' || e.kind === 'refused_at_start'), []);
});

test('entries refused and left in the bucket (from the future, sealed with another secret, a bare delete as the last entry) are counted and logged once, by the overwatches watching when each is put; a later start counts none of them and reports them in one summary', { skip: needsNats }, async (t) => {
  const { bus, a } = await twoReplicas(t, 'startsum');
  a.set('10.1.0.0/16', 'us');
  await a.replica.settled();
  const nc = await connect({ servers: [...bus.servers] });
  t.after(() => nc.close());
  const bucket = bucketName(bus.subjectPrefix);
  const kv = await new Kvm(nc).open(bucket);
  const sealed = (secret: string, cidr: string, atMs: number) => {
    const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr });
    return [kvKey, sealEntry(deriveStateKey(secret), bucket, kvKey, { atMs, by: 'other', value: { cidr, region: 'eu', comment: null, source: 'x', createdAtMs: 1 } })] as const;
  };
  await kv.put(...sealed(bus.stateSecret!, '10.7.0.0/16', Date.now() + 365 * 86_400_000));
  await kv.put(...sealed(randomBytes(32).toString('base64'), '10.8.0.0/16', Date.now()));
  // A key nobody holds: the delete stays the bucket's last entry.
  await kv.delete(operatorKvKey({ kind: 'geo_mapping', cidr: '10.9.0.0/16' }));
  const refusedByA = () => a.replica.counters().rejections.geo_mapping;
  await until('A counts each as it is put', () => refusedByA().future === 1 && refusedByA().unauthenticated === 2);

  // An overwatch (re)started now finds all three in the bucket.
  const c = mappingReplica(t, bus, 'c', Date.now);
  await c.replica.ready();
  await until('C reports what it found at start', () => c.events.some((e) => e.kind === 'refused_at_start'));
  assert.deepEqual(c.events.filter((e) => e.kind === 'refused_at_start'), [{
    kind: 'refused_at_start', total: 3, reasons: { future: 1, unauthenticated: 2 },
    examples: [['10.7.0.0/16', 'future'], ['10.8.0.0/16', 'unauthenticated'], ['10.9.0.0/16', 'unauthenticated']].map(([cidr, reason]) => ({ key: operatorKvKey({ kind: 'geo_mapping', cidr }), reason })),
  }]);
  assert.equal(c.state.get('10.1.0.0/16'), 'us');
  assert.deepEqual(c.replica.counters().rejections.geo_mapping, { unauthenticated: 0, malformed: 0, older: 0, future: 0, refused: 0 });
  assert.deepEqual(c.events.filter((e) => e.kind === 'rejected'), []);
  // One put while C watches is counted and logged there, once; no second summary.
  await kv.put(...sealed(randomBytes(32).toString('base64'), '10.6.0.0/16', Date.now()));
  await until('C counts the entry put while it watches', () => c.replica.counters().rejections.geo_mapping.unauthenticated === 1);
  assert.deepEqual(c.events.filter((e) => e.kind === 'rejected').map((e) => e.kind === 'rejected' && e.key), [operatorKvKey({ kind: 'geo_mapping', cidr: '10.6.0.0/16' })]);
  assert.equal(c.events.filter((e) => e.kind === 'refused_at_start').length, 1);
  // A watches too, and may get to it after C.
  await until('A counts the entry put while it watches', () => refusedByA().unauthenticated === 3);
  assert.equal(refusedByA().future, 1);
});

test('a change left waiting for NATS (in the state store) by a run on the old secret is sealed again with the new one when the overwatch restarts mid-rotation, and put', { skip: needsNats }, async (t) => {
  const port = await freePort();
  const base = busAt(port, 'pending.gslb');
  const newSecret = randomBytes(32).toString('base64');
  const store = LmdbStore.open(await tempDir(t, 'opengslb-pending-store-'));
  t.after(() => store.close());
  const mapping: OperatorChange = { kind: 'geo_mapping', cidr: '10.1.0.0/16', value: { cidr: '10.1.0.0/16', region: 'us', comment: null, source: 'a', createdAtMs: 1 } };
  // NATS not running: the change waits, kept in the state store.
  const first = new OperatorReplica({ bus: base, name: 'a', pendingStore: store, onChange: async () => 'unchanged' });
  first.put(mapping);
  await until('the waiting change is in the state store', () => store.loadBusPending().length === 1);
  await first.close();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-pending-'));
  const events: ReplicaEvent[] = [];
  const second = new OperatorReplica({ bus: { ...base, stateSecret: newSecret, previousStateSecrets: [base.stateSecret!] }, name: 'a', pendingStore: store, onEvent: (e) => events.push(e), onChange: async () => 'unchanged' });
  t.after(() => second.close());
  await second.ready();
  await until('the change is put', () => second.counters().puts.geo_mapping === 1 && store.loadBusPending().length === 0);
  assert.deepEqual(await bucketOpensWith(base, newSecret), { opens: 1, not: 0 });
  assert.deepEqual(events.filter((e) => e.kind === 'resealed' || e.kind === 'replica_error'), [{ kind: 'resealed', entries: 1, leftFuture: 0 }]);
});

test('an entry sealed with the previous secret but stamped more than 60 s ahead is not sealed again at a restart mid-rotation: it is left as it is, and the start\'s report says so beside the entries it did seal again', { skip: needsNats }, async (t) => {
  const port = await freePort();
  await startNats(t, port, await tempDir(t, 'opengslb-nats-rollfuture-'));
  const oldBus = busAt(port, 'rollfuture.gslb');
  const newSecret = randomBytes(32).toString('base64');
  const nc = await connect({ servers: [...oldBus.servers] });
  t.after(() => nc.close());
  const bucket = bucketName(oldBus.subjectPrefix);
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  const put = async (cidr: string, atMs: number) => {
    const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr });
    await kv.put(kvKey, sealEntry(deriveStateKey(oldBus.stateSecret!), bucket, kvKey, { atMs, by: 'other', value: { cidr, region: 'eu', comment: null, source: 'x', createdAtMs: 1 } }));
    return kvKey;
  };
  await put('10.1.0.0/16', Date.now());
  const futureKey = await put('10.2.0.0/16', Date.now() + 365 * 86_400_000);
  // Step 2 of the rotation: the new secret seals, the old one only opens.
  const a = mappingReplica(t, { ...oldBus, stateSecret: newSecret, previousStateSecrets: [oldBus.stateSecret!] }, 'a', Date.now);
  await a.replica.ready();
  await until('A reports what it sealed again', () => a.events.some((e) => e.kind === 'resealed'));
  await a.replica.settled();
  assert.deepEqual(a.events.filter((e) => e.kind === 'resealed'), [{ kind: 'resealed', entries: 1, leftFuture: 1 }]);
  assert.equal(a.state.get('10.1.0.0/16'), 'eu');
  assert.equal(a.state.has('10.2.0.0/16'), false, 'the entry from the future is not applied');
  // The bucket: the current entry opens with the new secret, the one from the future still only with the old one.
  assert.deepEqual(await bucketOpensWith(oldBus, newSecret), { opens: 1, not: 1 });
  const e = await kv.get(futureKey);
  assert.ok(e !== null && openEntry(deriveStateKey(oldBus.stateSecret!), bucket, futureKey, e.value).ok, 'left sealed with the old secret');
});

test('a change left waiting for NATS (in the state store) while this clock was a year ahead is put stamped with the time of the put once the clock is right, so the other overwatches take it instead of refusing it as future', { skip: needsNats }, async (t) => {
  const port = await freePort();
  const bus = busAt(port, 'stamp.gslb');
  const YEAR = 365 * 86_400_000;
  const store = LmdbStore.open(await tempDir(t, 'opengslb-stamp-store-'));
  t.after(() => store.close());
  const mapping: OperatorChange = { kind: 'geo_mapping', cidr: '10.1.0.0/16', value: { cidr: '10.1.0.0/16', region: 'us', comment: null, source: 'a', createdAtMs: 1 } };
  // NATS not running, this clock a year ahead: the change waits, stamped a year ahead.
  const first = new OperatorReplica({ bus, name: 'a', pendingStore: store, now: () => Date.now() + YEAR, onChange: async () => 'unchanged' });
  first.put(mapping);
  await until('the waiting change is in the state store', () => store.loadBusPending().length === 1);
  await first.close();
  // The clock set right, the overwatch restarted; NATS back, another overwatch watching.
  await startNats(t, port, await tempDir(t, 'opengslb-nats-stamp-'));
  const b = mappingReplica(t, bus, 'b', Date.now);
  await b.replica.ready();
  const events: ReplicaEvent[] = [];
  const second = new OperatorReplica({ bus, name: 'a', pendingStore: store, onEvent: (e) => events.push(e), onChange: async () => 'unchanged' });
  t.after(() => second.close());
  await second.ready();
  await until('the change is put and no longer waits', () => second.counters().puts.geo_mapping === 1 && store.loadBusPending().length === 0);
  await until('B takes it', () => b.state.get('10.1.0.0/16') === 'us', 5000);
  assert.equal(b.replica.counters().rejections.geo_mapping.future, 0);
  const inBucket = await bucketRegion(bus, '10.1.0.0/16');
  assert.ok(inBucket !== undefined && inBucket.atMs <= Date.now() + 1000, `stamped ${inBucket?.atMs}, not a year ahead`);
  const restamped = events.filter((e) => e.kind === 'restamped');
  assert.equal(restamped.length, 1);
  assert.ok(restamped[0]!.kind === 'restamped' && restamped[0]!.fromMs > Date.now() + YEAR / 2 && restamped[0]!.toMs <= Date.now());
});

test('after a nats-server comes back without its JetStream storage, entries the others put in the new bucket are live: one refused is counted and logged, one sealed with a previous secret is not sealed again', { skip: needsNats }, async (t) => {
  const port = await freePort();
  let nats = await startNats(t, port, await tempDir(t, 'opengslb-nats-refill-'));
  const previous = randomBytes(32).toString('base64');
  const bus = { ...busAt(port, 'refill.gslb'), previousStateSecrets: [previous] };
  const bucket = bucketName(bus.subjectPrefix);
  const sealed = (secret: string, cidr: string) => {
    const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr });
    return [kvKey, sealEntry(deriveStateKey(secret), bucket, kvKey, { atMs: Date.now(), by: 'other', value: { cidr, region: 'eu', comment: null, source: 'x', createdAtMs: 1 } })] as const;
  };
  const putDirect = async (entries: readonly (readonly [string, Buffer])[]) => {
    const nc = await connect({ servers: [...bus.servers] });
    try {
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      for (const [k, v] of entries) await kv.put(k, v);
    } finally {
      await nc.close();
    }
  };
  // The old bucket: 20 entries another secret sealed (so A's start revision is 21), and one it takes.
  await putDirect([...Array.from({ length: 20 }, (_, i) => sealed(randomBytes(32).toString('base64'), `10.${i}.0.0/16`)), sealed(bus.stateSecret!, '10.100.0.0/16')]);
  const a = mappingReplica(t, bus, 'a', Date.now);
  await a.replica.ready();
  await until('A reports its start', () => a.events.some((e) => e.kind === 'refused_at_start'));
  assert.equal(a.state.get('10.100.0.0/16'), 'eu');
  await nats.stop();
  nats = await startNats(t, port, await tempDir(t, 'opengslb-nats-refill-new-'));
  t.after(() => nats.stop());
  await until('A makes the bucket again', () => a.events.some((e) => e.kind === 'bucket_recreated'));
  await a.replica.settled();
  const putsBefore = a.replica.counters().puts.geo_mapping;
  // Revisions 2 and 3 of the new bucket, below A's old start revision: put while A watches.
  await putDirect([sealed(randomBytes(32).toString('base64'), '10.200.0.0/16'), sealed(previous, '10.201.0.0/16')]);
  await until('A takes the entry sealed with the previous secret', () => a.state.get('10.201.0.0/16') === 'eu');
  await until('A counts the refused entry', () => a.replica.counters().rejections.geo_mapping.unauthenticated === 1);
  assert.deepEqual(a.events.filter((e) => e.kind === 'rejected').map((e) => e.kind === 'rejected' && e.key), [operatorKvKey({ kind: 'geo_mapping', cidr: '10.200.0.0/16' })]);
  await a.replica.settled();
  assert.equal(a.replica.counters().puts.geo_mapping, putsBefore, 'a live entry sealed with a previous secret is not put back (another overwatch mid-rotation would seal it back)');
  assert.equal(a.events.filter((e) => e.kind === 'refused_at_start' || e.kind === 'resealed').length, 1, 'one start report');
});

/**
 * A state directory holding a change of 10.1.0.0/16 to "us" left waiting for NATS (made 10 s ago by this
 * clock), as a backup or a copy taken then holds it: the change is in its bus_pending, nothing in the bucket.
 */
async function storeWithWaitingChange(t: TestContext, bus: BusConfig, name: string): Promise<LmdbStore> {
  const store = LmdbStore.open(await tempDir(t, `opengslb-${name}-store-`));
  t.after(() => store.close());
  const first = new OperatorReplica({ bus, name, pendingStore: store, now: () => Date.now() - 10_000, onChange: async () => 'unchanged' });
  first.put({ kind: 'geo_mapping', cidr: '10.1.0.0/16', value: { cidr: '10.1.0.0/16', region: 'us', comment: null, source: name, createdAtMs: 1 } });
  await until('the waiting change is in the state store', () => store.loadBusPending().length === 1);
  await first.close();
  return store;
}

test('a change left waiting in a state directory (restored from a backup, or copied to seed a node) is not put over a newer entry of its key: it is dropped, counted as superseded, the newer one applied, and a node that reads the bucket afresh takes the newer one', { skip: needsNats }, async (t) => {
  const port = await freePort();
  const bus = busAt(port, 'restored.gslb');
  const store = await storeWithWaitingChange(t, bus, 'a');
  await startNats(t, port, await tempDir(t, 'opengslb-nats-restored-'));
  // Meanwhile another overwatch mapped the network to eu and went away (restarted, or gone): nobody up holds its entry.
  const nc = await connect({ servers: [...bus.servers] });
  t.after(() => nc.close());
  const bucket = bucketName(bus.subjectPrefix);
  const kvKey = operatorKvKey({ kind: 'geo_mapping', cidr: '10.1.0.0/16' });
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  await kv.put(kvKey, sealEntry(deriveStateKey(bus.stateSecret!), bucket, kvKey, { atMs: Date.now(), by: 'b', value: { cidr: '10.1.0.0/16', region: 'eu', comment: null, source: 'b', createdAtMs: 1 } }));
  // The overwatch started on the old state directory.
  const a = mappingReplica(t, bus, 'a', Date.now, store);
  a.state.set('10.1.0.0/16', 'us');
  await a.replica.ready();
  await until('the waiting change no longer waits', () => a.replica.counters().pending === 0 && store.loadBusPending().length === 0);
  await until('A applies the newer entry', () => a.state.get('10.1.0.0/16') === 'eu');
  assert.equal((await bucketRegion(bus, '10.1.0.0/16'))?.region, 'eu', 'the bucket keeps the newer entry');
  const counters = a.replica.counters();
  assert.equal(counters.puts.geo_mapping, 0);
  assert.equal(counters.superseded.geo_mapping, 1);
  const superseded = a.events.filter((e) => e.kind === 'superseded');
  assert.equal(superseded.length, 1);
  assert.ok(superseded[0]!.kind === 'superseded' && superseded[0]!.key === kvKey && superseded[0]!.atMs < superseded[0]!.bucketAtMs);
  // An overwatch that joins (or restarts) now reads the bucket afresh.
  const c = mappingReplica(t, bus, 'c', Date.now);
  await c.replica.ready();
  await until('C takes the newer entry', () => c.state.get('10.1.0.0/16') === 'eu');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(c.state.get('10.1.0.0/16'), 'eu');
});

test('a waiting change older than the bucket\'s entry is not put while another overwatch watches either: that one refuses nothing and puts nothing back', { skip: needsNats }, async (t) => {
  const port = await freePort();
  const bus = busAt(port, 'restoredlive.gslb');
  const store = await storeWithWaitingChange(t, bus, 'a');
  await startNats(t, port, await tempDir(t, 'opengslb-nats-restoredlive-'));
  const b = mappingReplica(t, bus, 'b', Date.now);
  await b.replica.ready();
  b.set('10.1.0.0/16', 'eu');
  await b.replica.settled();
  const a = mappingReplica(t, bus, 'a', Date.now, store);
  await a.replica.ready();
  await until('the waiting change no longer waits, and A holds the newer entry', () => a.replica.counters().pending === 0 && a.state.get('10.1.0.0/16') === 'eu');
  await a.replica.settled();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await b.replica.settled();
  assert.equal(b.replica.counters().rejections.geo_mapping.older, 0, 'the older entry never reached the bucket');
  assert.equal(b.replica.counters().puts.geo_mapping, 1, 'B put its own change only');
  assert.equal(a.replica.counters().superseded.geo_mapping, 1);
  assert.equal((await bucketRegion(bus, '10.1.0.0/16'))?.region, 'eu');
});
