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
function mappingReplica(t: TestContext, bus: BusConfig, name: string, now: () => number) {
  const state = new Map<string, string | null>();
  const events: ReplicaEvent[] = [];
  const replica = new OperatorReplica({
    bus, name, now, onEvent: (e) => events.push(e),
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
  return { type: 'nats', servers: [`nats://127.0.0.1:${port}`], token: null, credentialsFile: null, tls: null, subjectPrefix, stateSecret: randomBytes(32).toString('base64') };
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
  // Before the one A holds, so the "older" check reads its time; then far past any date.
  for (const atMs of [-1e300, 1e300]) await kv.put(...entry('10.1.0.0/16', atMs));
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

test('changing state_secret as docs/scaling.md says: after the change the old entries are refused; once the bucket is deleted, each overwatch puts what it holds again, sealed with the new secret', { skip: needsNats }, async (t) => {
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
  await until('both refuse the entries sealed with the old secret', () => a2.replica.counters().rejections.geo_mapping.unauthenticated === 2 && b2.replica.counters().rejections.geo_mapping.unauthenticated === 2);
  assert.equal(a2.replica.counters().puts.geo_mapping + b2.replica.counters().puts.geo_mapping, 0, 'the keys are in the bucket (old entries): nothing is seeded');
  // The procedure's last step: nats kv rm <prefix>_operator. Each overwatch makes it again and puts what it holds.
  const nc = await connect({ servers: [...newBus.servers] });
  t.after(() => nc.close());
  await new Kvm(nc).open(bucketName(newBus.subjectPrefix)).then((kv) => kv.destroy());
  const regionNow = (cidr: string) => bucketRegion(newBus, cidr).catch(() => undefined); // no bucket until an overwatch makes it again
  await until('the bucket holds both mappings again, readable with the new secret', async () => (await regionNow('10.1.0.0/16'))?.region === 'us' && (await regionNow('10.2.0.0/16'))?.region === 'eu', 12_000);
  const c = mappingReplica(t, newBus, 'c', Date.now);
  await c.replica.ready();
  await until('a joining overwatch with the new secret takes both', () => c.state.get('10.1.0.0/16') === 'us' && c.state.get('10.2.0.0/16') === 'eu');
  assert.equal(c.replica.counters().rejections.geo_mapping.unauthenticated, 0);
});
