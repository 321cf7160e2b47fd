// The last_up table does not grow without bound (src/overwatch/last-up-journal.ts
// pruning, src/state/store.ts pruneLastUp): a real lmdb file, a real registry
// whose agent backends churn addresses as autoscaled pods do, and a clock the
// test moves over days.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import type { CheckSpec } from '../../src/health/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { LAST_UP_RETENTION_SEC, LastUpJournal } from '../../src/overwatch/last-up-journal.ts';
import { Registry, type ServerRecord } from '../../src/registry/registry.ts';
import { LmdbStore, type StateStore } from '../../src/state/store.ts';

const CONFIG = parseConfigText(`
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu], when_all_down: last_healthy }
logging: { level: error }
`, 'prune.yaml');

const NONE: CheckSpec = {
  type: 'none', address: '0.0.0.0', port: 80, host: null, path: '/health', expectedStatus: [[200, 399]], headers: {}, bodyMatch: null,
  tlsVerify: true, keepAlive: false, intervalMs: 30_000, timeoutMs: 5000, failureThreshold: 3, successThreshold: 2, emaAlpha: 0.3,
};

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
const DAY = 24 * 3600;
const T0 = 1_800_000_000;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-prune-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A pod's address: 10.x.y.z from a running number. */
function podAddress(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

class World {
  readonly registry = new Registry();
  now = T0;
  store: StateStore;
  journal: LastUpJournal;
  readonly #dir: string;

  constructor(dir: string, step: number) {
    this.#dir = dir;
    this.registry.applyConfig(CONFIG);
    this.store = LmdbStore.open(dir);
    this.journal = this.#journal(step);
  }

  #journal(step: number): LastUpJournal {
    return new LastUpJournal(this.store, quiet, { present: (key) => this.registry.server(key) !== undefined, nowSec: () => this.now, pruneStep: step });
  }

  addPod(n: number): ServerRecord {
    const address = podAddress(n);
    return this.registry.addServer({ region: 'eu', address, port: 8080, weight: 100, check: { ...NONE, address, port: 8080 }, source: 'agent', service: 'app.example.test' });
  }

  /** Every server in the registry seen healthy now, and written to the file. */
  async allUp(): Promise<void> {
    const view = this.registry.view();
    this.registry.commit(view);
    this.journal.index(view.served);
    this.journal.note(view.served.map((s) => s.slot), this.now);
    await this.journal.flush();
  }

  /** Pruning steps until one pass over the stored keys is done; returns the entries removed. */
  async prunePass(maxSteps = 1000): Promise<number> {
    let removed = 0;
    const before = this.store.loadLastUp().size;
    // A pass is at most ceil(entries / step) + 1 steps.
    for (let i = 0; i < maxSteps && i <= before; i++) {
      removed += await this.journal.prune();
      if (this.store.loadLastUp().size === 0) break;
    }
    return removed;
  }

  /** Closes and reopens the store (a restart), keeping the registry. */
  async restart(step: number): Promise<void> {
    await this.journal.stop();
    await this.store.close();
    this.store = LmdbStore.open(this.#dir);
    this.journal = this.#journal(step);
  }

  async close(): Promise<void> {
    await this.journal.stop();
    await this.store.close();
  }
}

test('last-up times of churned agent backends are removed once absent for the retention; present and returning servers keep theirs', async (t) => {
  const world = new World(await tempDir(t), 50);
  t.after(() => world.close());
  const config = world.registry.serverAt('eu', '192.0.2.1', 80)!;
  // Day 0: 300 pods come and go, each seen healthy once; pod 0 stays.
  const stay = world.addPod(0);
  const back = world.addPod(1);
  await world.allUp();
  for (let n = 2; n < 302; n++) {
    const pod = world.addPod(n);
    await world.allUp();
    world.registry.removeServer(pod.key);
  }
  world.registry.removeServer(back.key);
  assert.equal(world.store.loadLastUp().size, 303);
  // A step looks at no more than its bound: the first marks at most 50 absent, and removes nothing.
  assert.equal(await world.journal.prune(), 0);
  await world.prunePass();
  assert.equal(world.store.loadLastUp().size, 303, 'nothing is removed before the retention');

  // Day 3: pod 1 is back and seen up again; the config server is down from now on.
  world.now = T0 + 3 * DAY;
  world.addPod(1);
  await world.prunePass();
  world.registry.removeServer(world.registry.serverAt('eu', '10.0.0.1', 8080, 'app.example.test')!.key);
  await world.prunePass();

  // Day 7 + 1 s: the churned pods have been absent over 7 days (marked on day 0); the others stay.
  world.now = T0 + LAST_UP_RETENTION_SEC + 1;
  let removed = 0;
  for (let i = 0; i < 3; i++) {
    const one = await world.journal.prune();
    assert.ok(one <= 50, `one step removed ${one}, more than its 50 keys`);
    removed += one;
  }
  assert.ok(removed > 0 && removed <= 150, `3 steps removed ${removed}`);
  await world.prunePass();
  const left = world.store.loadLastUp();
  assert.deepEqual([...left.keys()].sort(), [config.key, stay.key, back.key].sort());
  assert.equal(left.get(config.key), T0, 'a server in the registry keeps its time however old');
  assert.equal(left.get(back.key), T0, 'a server back within the retention keeps its time');
});

test('an absence mark survives a restart: the retention is counted from the first absence, not from the last start', async (t) => {
  const dir = await tempDir(t);
  const world = new World(dir, 1000);
  t.after(() => world.close());
  const pod = world.addPod(7);
  await world.allUp();
  world.registry.removeServer(pod.key);
  // Seen absent on day 1 (marked), restarted on day 5, looked at again after day 8.
  world.now = T0 + DAY;
  await world.prunePass();
  world.now = T0 + 5 * DAY;
  await world.restart(1000);
  await world.prunePass();
  assert.equal(world.store.loadLastUp().has(pod.key), true, 'day 5: within the retention');
  world.now = T0 + DAY + LAST_UP_RETENTION_SEC + 1;
  await world.prunePass();
  assert.equal(world.store.loadLastUp().has(pod.key), false, 'gone 7 days after it was first seen absent, across the restart');
});

test('a server seen healthy after its absence mark starts its absence over', async (t) => {
  const world = new World(await tempDir(t), 1000);
  t.after(() => world.close());
  const pod = world.addPod(9);
  await world.allUp();
  world.registry.removeServer(pod.key);
  await world.prunePass(); // marked at T0
  // Back on day 6 and seen up, then gone again before any step saw it present.
  world.now = T0 + 6 * DAY;
  world.addPod(9);
  await world.allUp();
  world.registry.removeServer(pod.key);
  world.now = T0 + LAST_UP_RETENTION_SEC + 1;
  await world.prunePass();
  assert.equal(world.store.loadLastUp().get(pod.key), T0 + 6 * DAY, 'its time of day 6 is kept');
  world.now = T0 + LAST_UP_RETENTION_SEC + 1 + LAST_UP_RETENTION_SEC + 1;
  await world.prunePass();
  assert.equal(world.store.loadLastUp().has(pod.key), false);
});
