// A state.mdb that is not an intact lmdb file: cut short (a copy that ran out
// of disk, a partial restore), of another LMDB data format, or not lmdb at
// all. lmdb-js maps such a file and the process dies of SIGSEGV or SIGBUS
// with no message; the overwatch must instead exit 1 with one line naming the
// file, what is wrong and what to do, and leave the file as it was (it may be
// the only copy of the DNSSEC keys). Real opengslb processes, real files
// written by LmdbStore and then damaged.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE } from '../../src/state/lock.ts';
import { LmdbStore } from '../../src/state/store.ts';
import { run, SERVER } from '../helpers/child.ts';
import { STATEFUL_CONFIG } from '../helpers/config-files.ts';


/** A config file and a state directory holding a real state.mdb with 200 overrides and a last-up time. */
async function withState(t: TestContext): Promise<{ config: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-damaged-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = LmdbStore.open(join(dir, 'state'));
  for (let i = 0; i < 200; i++) {
    await store.putOverride({ scope: 'server', service: '', address: `192.0.2.${i + 1}`, healthy: false, reason: 'maintenance '.repeat(10), source: 'test', createdAtMs: Date.now() });
  }
  await store.putLastUp(new Map([['eu|192.0.2.10|80', 1_700_000_000]]));
  await store.close();
  const config = join(dir, 'config.yaml');
  await writeFile(config, STATEFUL_CONFIG);
  return { config, file: join(dir, 'state', 'state.mdb') };
}

/** Byte `at` of the meta page at 0 and of the one a page (4096 on these hosts) later. */
async function setInBothMetas(file: string, at: number, value: number): Promise<void> {
  const bytes = readFileSync(file);
  const pageSize = bytes.readUInt32LE(48);
  bytes[at] = value;
  bytes[pageSize + at] = value;
  await writeFile(file, bytes);
}

/**
 * The bytes of the pages the file's newer meta says are in use: the file is
 * longer (the store keeps room allocated past them, src/state/store.ts), so
 * cutting its tail alone would cut nothing lmdb reads.
 */
function pagesInUse(file: string): number {
  const bytes = readFileSync(file);
  const pageSize = bytes.readUInt32LE(48);
  // Each meta: the last page in use at 144, the txnid that wrote it at 152 (little-endian u64).
  const newer = bytes.readBigUInt64LE(pageSize + 152) > bytes.readBigUInt64LE(152) ? pageSize : 0;
  return (Number(bytes.readBigUInt64LE(newer + 144)) + 1) * pageSize;
}

const DAMAGE: readonly { name: string; damage: (file: string) => Promise<void>; says: RegExp }[] = [
  { name: 'cut to 100 bytes', damage: (f) => truncate(f, 100), says: /100 bytes, too short/ },
  { name: 'cut inside its second header page', damage: (f) => truncate(f, 4096), says: /shorter than its two header pages/ },
  { name: 'cut after its header pages', damage: (f) => truncate(f, 8192), says: /8192 bytes, and its last committed write uses \d+ \(cut short\?\)/ },
  { name: 'cut by one page', damage: async (f) => truncate(f, pagesInUse(f) - 4096), says: /its last committed write uses/ },
  { name: 'of another LMDB data format', damage: (f) => setInBothMetas(f, 28, 3), says: /lmdb data format 3, and this OpenGSLB reads format 2/ },
  { name: 'without an lmdb header', damage: (f) => setInBothMetas(f, 24, 0), says: /not an lmdb data file/ },
  { name: 'a text file', damage: (f) => writeFile(f, 'this is not a database, it is a note someone left here\n'.repeat(100)), says: /not an lmdb data file/ },
];

for (const c of DAMAGE) {
  test(`a state.mdb ${c.name} stops the start with exit 1 and one line saying so, and is left as it is`, async (t) => {
    const { config, file } = await withState(t);
    await c.damage(file);
    const before = readFileSync(file);
    const r = await run(SERVER, ['--config', config]);
    assert.equal(r.signal, null, `killed by ${r.signal}; stderr:\n${r.stderr}`);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^opengslb: the state database \S+\/state\/state\.mdb \(overwatch\.data_dir: \S+\/state\) is damaged: /);
    assert.match(lines[0]!, c.says);
    assert.match(lines[0]!, /it was left as it is\. Restore the directory from a backup \(docs\/runbooks\/backup-restore\.md\), or move state\.mdb aside/);
    assert.deepEqual(readFileSync(file), before, 'the damaged file is not changed');
    assert.ok(!existsSync(join(file, '..', LOCK_FILE)), 'the directory is given back');
  });
}

test('an intact state.mdb still opens with everything in it', async (t) => {
  const { file } = await withState(t);
  const store = LmdbStore.open(join(file, '..'));
  t.after(() => store.close());
  assert.equal(store.loadOverrides().length, 200);
  assert.deepEqual([...store.loadLastUp()], [['eu|192.0.2.10|80', 1_700_000_000]]);
});
