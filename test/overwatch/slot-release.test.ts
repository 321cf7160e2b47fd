// The live slots of servers a publish removes, with real DNS worker threads:
// a worker that lags behind the publish (held by DnsPool.holdWorker) keeps
// reading them, so they are reset and handed out again only once it has
// switched or died.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { HEALTH_HEALTHY, HEALTH_UNKNOWN, readHealth } from '../../src/snapshot/live-slots.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';

const APP = 'app.example.test';
const FILE = '/virtual/slot-release.yaml';
const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

function config(addresses: readonly string[]) {
  return parseConfigText(
    [
      'dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }',
      `regions: [{ name: pool, servers: [${addresses.map((a) => `{ address: ${a} }`).join(', ')}] }]`,
      `domains: [{ name: ${APP}, regions: [pool], max_answers: 8 }]`,
    ].join('\n'),
    FILE,
  );
}

async function start(t: TestContext, addresses: readonly string[]): Promise<Overwatch> {
  const ow = await Overwatch.start(config(addresses), quiet, { store: new MemoryStore(), healthChecks: 'off' });
  t.after(() => ow.stop(200));
  return ow;
}

/** The server slot and the member slot (in APP) of a configured address. */
function slotsOf(ow: Overwatch, address: string): number[] {
  const member = ow.registry
    .view()
    .domains.find((d) => d.config.name === APP)
    ?.members.find((m) => m.server.address === address);
  assert.ok(member, `${address} is a member of ${APP}`);
  return [member.server.slot, member.memberSlot];
}

/** Blocks worker `index` until the returned function is called (also called in t.after). */
function hold(t: TestContext, ow: Overwatch, index: number): () => void {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  ow.pool.holdWorker(index, gate);
  const release = (): void => {
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
  };
  t.after(release);
  return release;
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    assert.ok(Date.now() - started < timeoutMs, `${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function answers(ow: Overwatch): Promise<string[]> {
  return (((await ask(ow.port, APP, 'A')).answers ?? []) as { data: string }[]).map((a) => a.data).sort();
}

test('a server removed while a worker lags keeps its words for that worker, its slots go to nobody else, and are reset once it switches', async (t) => {
  const ow = await start(t, ['192.0.2.1', '192.0.2.2']);
  const removed = slotsOf(ow, '192.0.2.2');
  for (const slot of removed) assert.equal(readHealth(ow.live, slot), HEALTH_HEALTHY);

  const release = hold(t, ow, 1);
  const without = await ow.reload(config(['192.0.2.1']));
  assert.equal(without.ok, true, without.message);
  assert.match(without.message, /workers 1 had not confirmed the switch/);
  // Worker 1 still serves the old snapshot, which answers 192.0.2.2 from these words.
  for (const slot of removed) assert.equal(readHealth(ow.live, slot), HEALTH_HEALTHY, `slot ${slot} is not reset while a worker may read it`);

  // A later reload is not held up by the lagging worker, and its new server gets slots of its own.
  const withNew = await ow.reload(config(['192.0.2.1', '192.0.2.3']));
  assert.equal(withNew.ok, true, withNew.message);
  const added = slotsOf(ow, '192.0.2.3');
  for (const slot of added) assert.ok(!removed.includes(slot), `slot ${slot} of the new server is not one worker 1 still reads (${removed.join(', ')})`);
  for (const slot of removed) assert.equal(readHealth(ow.live, slot), HEALTH_HEALTHY);

  // The worker catches up: the released slots are reset, then reused.
  release();
  await until(() => removed.every((slot) => readHealth(ow.live, slot) === HEALTH_UNKNOWN), 'the released slots are reset once worker 1 switched');
  const reuse = await ow.reload(config(['192.0.2.1', '192.0.2.3', '192.0.2.4', '192.0.2.5']));
  assert.equal(reuse.ok, true, reuse.message);
  assert.doesNotMatch(reuse.message, /had not confirmed/);
  const reused = [...slotsOf(ow, '192.0.2.4'), ...slotsOf(ow, '192.0.2.5')];
  assert.deepEqual(reused.filter((slot) => removed.includes(slot)).sort(), [...removed].sort(), 'the released slots are handed out again: none leaks');
  // Both workers answer the newest snapshot (queries are spread over them by the kernel).
  for (let i = 0; i < 8; i++) assert.deepEqual(await answers(ow), ['192.0.2.1', '192.0.2.3', '192.0.2.4', '192.0.2.5']);
});

test('the slots a lagging worker holds are released when that worker dies instead of switching', async (t) => {
  const ow = await start(t, ['192.0.2.1', '192.0.2.2']);
  const removed = slotsOf(ow, '192.0.2.2');
  hold(t, ow, 0);
  const without = await ow.reload(config(['192.0.2.1']));
  assert.match(without.message, /workers 0 had not confirmed the switch/);
  for (const slot of removed) assert.equal(readHealth(ow.live, slot), HEALTH_HEALTHY);

  const restarted = new Promise((resolve) => ow.pool.once('worker-restarted', resolve));
  await ow.pool.workers[0]?.terminate();
  await until(() => removed.every((slot) => readHealth(ow.live, slot) === HEALTH_UNKNOWN), 'the released slots are reset once worker 0 is gone');
  await restarted;
  for (let i = 0; i < 8; i++) assert.deepEqual(await answers(ow), ['192.0.2.1']);
});
