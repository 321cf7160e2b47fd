// ConfigReloader with its real loader thread and real files, against a small
// stand-in target: a load that cannot finish (a read stuck in the file system)
// or a file that cannot be parsed fails that reload with a clear message,
// keeps the good config, and the next reload works.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import type { ReloadResult } from '../../src/overwatch/overwatch.ts';
import { ConfigReloader, type ReloadOutcome, type ReloadTarget } from '../../src/overwatch/reload.ts';
import { posixOnly, tempDir, writeTree } from '../helpers/config-files.ts';

const GOOD = [
  'dns: { zones: [example.test] }',
  'regions: [{ name: r, health_check: { type: none }, servers: [{ address: 192.0.2.1 }] }]',
  'domains: [{ name: app.example.test, regions: [r] }]',
].join('\n');

/** Takes every config it is given, and remembers them. */
class StandIn implements ReloadTarget {
  config: Config;
  generation = 1;
  readonly applied: Config[] = [];
  constructor(config: Config) {
    this.config = config;
  }
  reload(next: Config): Promise<ReloadResult> {
    this.applied.push(next);
    this.config = next;
    this.generation++;
    return Promise.resolve({ ok: true, generation: this.generation, message: 'applied' });
  }
}

async function setUp(t: TestContext, loadTimeoutMs?: number): Promise<{ dir: string; path: string; target: StandIn; reloader: ConfigReloader }> {
  const dir = await tempDir(t);
  const path = join(dir, 'main.yaml');
  await writeTree(dir, { 'main.yaml': GOOD }, 0o600);
  const target = new StandIn((await loadConfig(path, { env: {} })).config);
  const logger = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
  const reloader = new ConfigReloader({ path, target, logger, env: {}, ...(loadTimeoutMs === undefined ? {} : { loadTimeoutMs }) });
  return { dir, path, target, reloader };
}

/** The reload's outcome, or a failure of the test when it has not ended within `ms` (instead of a test that hangs). */
function within(ms: number, pending: Promise<ReloadOutcome>): Promise<ReloadOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the reload had not ended after ${ms} ms`)), ms);
  });
  return Promise.race([pending, late]).finally(() => clearTimeout(timer));
}

test('a reload whose loader is stuck in the file system fails after its time limit, keeps the good config, and the next reload works', posixOnly, async (t) => {
  const { dir, target, reloader } = await setUp(t, 300);
  const before = target.config;
  // A stuck network file system, for real: every thread of libuv's pool (which also runs the
  // loader thread's file reads) waits in open() on a FIFO that has no writer yet.
  const poolSize = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: poolSize }, (_, i) => join(dir, `stuck-${i}`));
  for (const f of fifos) execFileSync('mkfifo', [f]);
  const stuck = fifos.map((f) => open(f, 'r'));
  const release = async (): Promise<void> => {
    // A writer that opens without blocking lets each waiting open() return.
    const writers = fifos.map((f) => openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    for (const handle of await Promise.all(stuck)) await handle.close();
    for (const fd of writers) closeSync(fd);
  };
  // Released here, not in t.after: the temp directory's removal (an after hook too) needs the pool.
  try {
    const started = Date.now();
    const failed = await within(5000, reloader.request());
    assert.equal(failed.result, 'failure');
    assert.match(failed.message, /^config loader timed out: .*main\.yaml and its includes were not read and validated within 300ms \(a file on a stuck network file system\?\); the loader was stopped, expected a load that finishes in time$/);
    assert.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`);
    assert.equal(target.config, before);
    assert.deepEqual(target.applied, []);
    assert.match(reloader.status().lastFailure?.message ?? '', /config loader timed out/);
  } finally {
    await release();
  }
  await writeTree(dir, { 'main.yaml': GOOD.replace('192.0.2.1', '192.0.2.2') }, 0o600);
  const next = await within(10_000, reloader.request());
  assert.equal(next.result, 'success', next.message);
  assert.equal(target.config.regions[0]?.servers[0]?.address, '192.0.2.2');
  assert.deepEqual(reloader.reloads, { success: 1, failure: 1 });
});

test('a reload of a file nested deeper than the limit fails with a message naming the file and the limit, and keeps the good config', async (t) => {
  const { dir, path, target, reloader } = await setUp(t);
  const before = target.config;
  await writeTree(dir, { 'main.yaml': `${GOOD}\nx: ${'['.repeat(1000)}${']'.repeat(1000)}\n` }, 0o600);
  const failed = await within(10_000, reloader.request());
  assert.equal(failed.result, 'failure');
  assert.deepEqual(failed.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`), [
    `${path}:4:103: (root): maps and lists are nested more than 100 levels deep here, expected at most 100 levels (a config nests about 8)`,
  ]);
  assert.match(failed.message, /main\.yaml:4:103: \(root\): maps and lists are nested more than 100 levels deep here/);
  assert.equal(target.config, before);

  await writeTree(dir, { 'main.yaml': GOOD }, 0o600);
  assert.equal((await within(10_000, reloader.request())).result, 'success');
});
