// A config read while its files are being written: a load never uses a mix of
// two versions (one fragment read before an edit, another after; a file
// caught between the writes of one save), and the cycle and duplicate checks
// use the real path of the file actually read. A real writer thread rewrites
// real files while loads run; hooks at fixed points of a load make a real
// change to the files there, to see each case caught deterministically.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { isMap } from 'yaml';
import { READ_ATTEMPTS, readConfigSources } from '../../src/config/includes.ts';
import { loadConfig } from '../../src/config/load.ts';
import { configTree } from '../helpers/config-files.ts';

const DNS = ['dns:', '  listen_address: "127.0.0.1:0"'];

/** A fragment holding region `r<part>` whose one server's address carries `version`, and a domain on it. */
function fragment(part: 'a' | 'b', version: number): string {
  const net = part === 'a' ? 1 : 2;
  return [
    'regions:',
    `  - name: r${part}`,
    `    servers: [{ address: 10.${net}.${version >> 8}.${version & 255} }]`,
    'domains:',
    `  - { name: ${part}.example.test, regions: [r${part}] }`,
    '',
  ].join('\n');
}

/** The version a loaded fragment's address carries. */
function versionOf(address: string): number {
  const [, , hi, lo] = address.split('.').map(Number);
  return (hi ?? 0) * 256 + (lo ?? 0);
}

/** The top-level keys of a read tree and, for `regions`, the server addresses in it. */
function addressesOf(root: unknown): string[] {
  assert.ok(isMap(root), 'expected a map at the root');
  const plain = root.toJSON() as { regions?: { servers: { address: string }[] }[] };
  return (plain.regions ?? []).flatMap((r) => r.servers.map((s) => s.address));
}

// The writer saves a.yaml then b.yaml, each as an editor does without a rename: open with
// truncation, then two writes, the first ending inside the server's flow map (so a file
// caught half-written is a YAML error, never a config). After each step it counts one in
// `stage`, so the loader knows which states the files went through during a load.
const WRITER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const shared = new Int32Array(workerData.shared);
const save = (path, body) => {
  const cut = body.indexOf('address: ') + 12;
  const fd = fs.openSync(path, 'w');
  Atomics.add(shared, 0, 1);
  fs.writeSync(fd, body.slice(0, cut));
  Atomics.add(shared, 0, 1);
  fs.writeSync(fd, body.slice(cut));
  Atomics.add(shared, 0, 1);
  fs.closeSync(fd);
};
const fragment = ${fragment.toString()};
for (let v = 1; Atomics.load(shared, 1) === 0; v++) {
  save(workerData.a, fragment('a', v));
  save(workerData.b, fragment('b', v));
  Atomics.wait(shared, 2, 0, 4 + (v % 7));
}
`;

/**
 * The versions of a.yaml and b.yaml after `stage` steps of the writer, when
 * both are whole; null while one of them is empty or half-written. Each
 * version is 6 steps: a truncated, a half, a whole, then the same for b.
 */
function wholeStateAt(stage: number): [number, number] | null {
  const done = Math.floor(stage / 6);
  const step = stage % 6;
  if (step === 0) return [done, done];
  if (step === 3) return [done + 1, done];
  return null;
}

test('a load while a writer rewrites two fragments, each in several writes, applies only a state the files were in, never a mix', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [a.yaml, b.yaml]'],
    'a.yaml': fragment('a', 0),
    'b.yaml': fragment('b', 0),
  });
  const shared = new SharedArrayBuffer(12);
  const stage = new Int32Array(shared);
  const writer = new Worker(WRITER, { eval: true, workerData: { shared, a: join(dir, 'a.yaml'), b: join(dir, 'b.yaml') } });
  const stopped = new Promise((done) => writer.once('exit', done));
  t.after(async () => {
    Atomics.store(stage, 1, 1);
    await stopped;
  });

  let loads = 0;
  let applied = 0;
  let racedAndApplied = 0;
  const mixes: string[] = [];
  const refusals = new Map<string, number>();
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    const before = Atomics.load(stage, 0);
    let got: [number, number] | null = null;
    try {
      const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
      const address = (name: string): string => config.regions.find((r) => r.name === name)?.servers[0]?.address ?? '';
      got = [versionOf(address('ra')), versionOf(address('rb'))];
    } catch (err) {
      // Refused: nothing applied, which is allowed. Each reason is counted for the diagnostic.
      const reason = String((err as Error).message).replaceAll(dir, '').replace(/, expected .*/s, '');
      refusals.set(reason, (refusals.get(reason) ?? 0) + 1);
    }
    const after = Atomics.load(stage, 0);
    loads++;
    if (got === null) continue;
    applied++;
    if (after > before) racedAndApplied++;
    // A step that ended just before `before` was read, or is under way when `after` is, may be on disk too.
    let seen = false;
    for (let s = Math.max(0, before - 1); s <= after + 1 && !seen; s++) {
      const state = wholeStateAt(s);
      seen = state !== null && state[0] === got[0] && state[1] === got[1];
    }
    if (!seen) mixes.push(`a.yaml version ${got[0]} with b.yaml version ${got[1]} (writer steps ${before}..${after})`);
  }
  Atomics.store(stage, 1, 1);
  await stopped;
  t.diagnostic(`${loads} loads, ${applied} applied, ${racedAndApplied} of them overlapping a save, ${Atomics.load(stage, 0) / 6} versions saved; refused: ${JSON.stringify([...refusals])}`);
  assert.deepEqual(mixes.slice(0, 5), [], `${mixes.length} of ${applied} applied loads mixed two versions`);
  assert.ok(Atomics.load(stage, 0) > 60, `the writer saved only ${Atomics.load(stage, 0) / 6} versions`);
  assert.ok(applied >= 20, `only ${applied} of ${loads} loads were applied`);
  assert.ok(racedAndApplied > 0, `no applied load overlapped a save (of ${applied}); the race was not exercised`);
});

test('a fragment rewritten after it was read and before the load ends is read again with the whole load', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [a.yaml, b.yaml]'],
    'a.yaml': fragment('a', 1),
    'b.yaml': fragment('b', 1),
  });
  const attempts: number[] = [];
  const sources = await readConfigSources(join(dir, 'main.yaml'), {}, {
    afterRead: async (attempt) => {
      attempts.push(attempt);
      // The second half of a two-file edit lands after the load read both files.
      if (attempt === 1) await writeFile(join(dir, 'a.yaml'), fragment('a', 2));
    },
  });
  assert.deepEqual(sources.problems, []);
  assert.deepEqual(attempts, [1, 2]);
  assert.deepEqual(addressesOf(sources.root), ['10.1.0.2', '10.2.0.1']);
});

test('a fragment that changes during every load is refused, naming it, after a few loads', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [a.yaml, b.yaml]'],
    'a.yaml': fragment('a', 1),
    'b.yaml': fragment('b', 1),
  });
  const attempts: number[] = [];
  const sources = await readConfigSources(join(dir, 'main.yaml'), {}, {
    afterRead: async (attempt) => {
      attempts.push(attempt);
      await writeFile(join(dir, 'b.yaml'), fragment('b', attempt + 1));
    },
  });
  assert.deepEqual(attempts, Array.from({ length: READ_ATTEMPTS }, (_, i) => i + 1));
  assert.equal(sources.code, 'OPENGSLB_ERR_CONFIG_READ');
  assert.equal(sources.incomplete, true);
  assert.equal(sources.root, null);
  assert.deepEqual(sources.problems.map((p) => [p.file, p.message.replace(/, expected .*/, ', expected …')]), [
    [join(dir, 'b.yaml'), `changed while being read, ${READ_ATTEMPTS} loads in a row, expected …`],
  ]);
  assert.match(sources.problems[0]?.message ?? '', /expected it to stay the same during a reload; retry/);
});

test('a file saved in place with the same length and times is still seen to change (its bytes are compared)', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [a.yaml]'],
    'a.yaml': fragment('a', 1),
  });
  const { utimes, stat } = await import('node:fs/promises');
  const attempts: number[] = [];
  const sources = await readConfigSources(join(dir, 'main.yaml'), {}, {
    afterRead: async (attempt) => {
      attempts.push(attempt);
      if (attempt !== 1) return;
      // As on a file system whose times are as coarse as a kernel tick: same size, same mtime.
      const path = join(dir, 'a.yaml');
      const was = await stat(path);
      await writeFile(path, fragment('a', 2));
      await utimes(path, was.atime, was.mtime);
    },
  });
  assert.deepEqual(sources.problems, []);
  assert.deepEqual(attempts, [1, 2]);
  assert.deepEqual(addressesOf(sources.root), ['10.1.0.2']);
});

test('a symlinked include relinked between its open and its real path is read again, not reported as a duplicate of another file', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [x.yaml, y.yaml]'],
    'target.yaml': fragment('a', 1),
    'y.yaml': fragment('b', 1),
  });
  const x = join(dir, 'x.yaml');
  await symlink('target.yaml', x);
  const relink = async (to: string): Promise<void> => {
    await rm(x);
    await symlink(to, x);
  };
  const attempts: number[] = [];
  const sources = await readConfigSources(join(dir, 'main.yaml'), {}, {
    // For a moment x.yaml leads to y.yaml: its real path taken then would be y.yaml's, and
    // y.yaml would be refused as "already included" though target.yaml was the file read.
    afterOpen: async (name, attempt) => {
      if (attempt === 1 && name === x) await relink('y.yaml');
    },
    afterRead: async (attempt) => {
      attempts.push(attempt);
      if (attempt === 1) await relink('target.yaml');
    },
  });
  assert.deepEqual(sources.problems, []);
  assert.deepEqual(attempts, [1, 2]);
  assert.deepEqual(addressesOf(sources.root), ['10.1.0.1', '10.2.0.1']);
  assert.deepEqual(sources.files.map((f) => f.real), [join(dir, 'main.yaml'), join(dir, 'target.yaml'), join(dir, 'y.yaml')]);
});

test('an empty (0-byte) include is read again a few times before it is refused, as a save caught between its truncate and its write', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [a.yaml]'],
    'a.yaml': '',
  });
  const attempts: number[] = [];
  const stays = await readConfigSources(join(dir, 'main.yaml'), {}, { afterRead: async (attempt) => void attempts.push(attempt) });
  assert.deepEqual(attempts, Array.from({ length: READ_ATTEMPTS }, (_, i) => i + 1));
  assert.deepEqual(stays.problems.map((p) => p.message.replace(/ \(a file caught.*/, '')), [`${join(dir, 'a.yaml')} is empty (0 bytes), expected YAML`]);

  attempts.length = 0;
  const saved = await readConfigSources(join(dir, 'main.yaml'), {}, {
    afterRead: async (attempt) => {
      attempts.push(attempt);
      if (attempt === 2) await writeFile(join(dir, 'a.yaml'), fragment('a', 1));
    },
  });
  assert.deepEqual(saved.problems, []);
  assert.deepEqual(attempts, [1, 2, 3]);
  assert.deepEqual(addressesOf(saved.root), ['10.1.0.1']);
});

test('a fragment added to a globbed directory during a load is read with the whole load again; one added during every load is refused at the include entry', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes:', '  - conf.d/*.yaml'],
    'conf.d/a.yaml': fragment('a', 1),
  });
  const attempts: number[] = [];
  // A domain moved to a new file: the new file is written, then the old one edited. A load that
  // listed conf.d before the new file and read the old one after its edit would have neither.
  const moved = await readConfigSources(join(dir, 'main.yaml'), {}, {
    afterRead: async (attempt) => {
      attempts.push(attempt);
      if (attempt === 1) await writeFile(join(dir, 'conf.d/b.yaml'), fragment('b', 1));
    },
  });
  assert.deepEqual(moved.problems, []);
  assert.deepEqual(attempts, [1, 2]);
  assert.deepEqual(addressesOf(moved.root), ['10.1.0.1', '10.2.0.1']);

  const churned = await readConfigSources(join(dir, 'main.yaml'), {}, {
    afterRead: async (attempt) => writeFile(join(dir, `conf.d/n${attempt}.yaml`), '# nothing yet\n'),
  });
  assert.equal(churned.code, 'OPENGSLB_ERR_CONFIG_READ');
  assert.deepEqual(churned.problems.map((p) => `${p.file.slice(dir.length + 1)}:${p.line}:${p.col}: ${p.path}: ${p.message}`), [
    `main.yaml:4:5: includes[0]: conf.d/*.yaml matched other files while the config was being read (now also conf.d/n${READ_ATTEMPTS}.yaml), expected the files it matches to stay the same during a reload; retry once they are in place`,
  ]);
});
