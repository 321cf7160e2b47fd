// createWorker must behave like new Worker(entry) for the code it runs (same
// workerData, shared memory, stack positions of the .ts files) while the
// worker loads no TypeScript stripper of its own.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { createWorker, MODULES_KEY, strippedModules } from '../../src/lib/worker-thread.ts';

const WORKER_THREAD_URL = new URL('../../src/lib/worker-thread.ts', import.meta.url).href;

function dir(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'opengslb-worker-thread-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}

test('follows every static relative .ts import, and no type-only or dynamic one', (t) => {
  const d = dir(t, {
    'e.ts': 'export const e = 5;\n',
  });
  mkdirSync(join(d, 'sub'));
  const files: Record<string, string> = {
    'a.ts': [
      "import type { T } from './types.ts';",
      'import {',
      '  b,',
      '  type B,',
      "} from './b.ts';",
      "import './side.ts';",
      "export { c } from './c.ts';",
      "export * from './d.ts';",
      "import * as e from '../e.ts';",
      "const lazy = (): Promise<unknown> => import('./lazy.ts');",
      'export const all: [T | null, B | null, unknown, unknown] = [null, null, b, e];',
      'void lazy;',
    ].join('\n'),
    'b.ts': 'export const b: number = 1;\nexport type B = number;\n',
    'side.ts': 'globalThis.toString();\n',
    'c.ts': "import { d } from './d.ts';\nexport const c = d;\n",
    'd.ts': 'export const d: string = "d";\n',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, 'sub', name), text);
  const entry = pathToFileURL(join(d, 'sub', 'a.ts'));
  const sources = strippedModules(entry);
  const names = Object.keys(sources).map((u) => u.slice(pathToFileURL(d).href.length + 1)).sort();
  assert.deepEqual(names, ['e.ts', 'sub/a.ts', 'sub/b.ts', 'sub/c.ts', 'sub/d.ts', 'sub/side.ts']);
  // Stripped in place: types blanked, lines kept.
  const b = sources[pathToFileURL(join(d, 'sub', 'b.ts')).href];
  assert.match(b, /^export const b {9}= 1;\n/);
  assert.equal(b.split('\n').length, 3);
  assert.equal(strippedModules(entry), sources, 'cached per entry');
});

test('the worker runs its TypeScript with the workerData it was given, shared memory included', async (t) => {
  const d = dir(t, {
    'entry.ts': [
      "import { parentPort, workerData } from 'node:worker_threads';",
      "import { twice } from './dep.ts';",
      'const data = workerData as { n: number; shared: Int32Array; keys?: string[] };',
      'Atomics.store(data.shared, 0, twice(data.n));',
      'parentPort!.postMessage({ keys: Object.keys(workerData as object).sort() });',
    ].join('\n'),
    'dep.ts': 'export function twice(n: number): number {\n  return n * 2;\n}\n',
  });
  const shared = new Int32Array(new SharedArrayBuffer(4));
  const worker = createWorker(pathToFileURL(join(d, 'entry.ts')), { workerData: { n: 21, shared }, name: 'test-worker' });
  // Listening for 'exit' from the start: when the main thread is slow, the
  // message is delivered as the worker exits, and 'exit' follows it before
  // any await here resumes.
  const exited = once(worker, 'exit');
  const [msg] = (await once(worker, 'message')) as [{ keys: string[] }];
  await exited;
  assert.deepEqual(msg.keys, ['n', 'shared'], `${MODULES_KEY} is gone before the entry runs`);
  assert.equal(Atomics.load(shared, 0), 42);
});

test('an error thrown in the worker points at the line of the .ts file', async (t) => {
  const d = dir(t, {
    'boom.ts': ['interface Shape {', '  readonly sides: number;', '}', 'const s: Shape = { sides: 3 };', 'if (s.sides === 3) throw new Error(`boom`);', ''].join('\n'),
  });
  const worker = createWorker(pathToFileURL(join(d, 'boom.ts')), { workerData: {} });
  const [err] = (await once(worker, 'error')) as [Error];
  assert.equal(err.message, 'boom');
  assert.match(err.stack ?? '', /boom\.ts:5:\d+/);
});

test('a worker whose workerData is not an object starts as a plain Worker', async (t) => {
  const d = dir(t, { 'echo.ts': "import { parentPort, workerData } from 'node:worker_threads';\nparentPort!.postMessage(workerData as number);\n" });
  const worker = createWorker(pathToFileURL(join(d, 'echo.ts')), { workerData: 7 });
  const [msg] = await once(worker, 'message');
  assert.equal(msg, 7);
});

test('a module that cannot be stripped or found fails in the worker, as it would in a plain Worker', async (t) => {
  const d = dir(t, {
    'bad.ts': "import { parentPort } from 'node:worker_threads';\nimport './missing.ts';\nparentPort!.postMessage('ran');\n",
    'broken.ts': 'export const x: number = ;\n',
    'uses-broken.ts': "import { x } from './broken.ts';\nexport const y = x;\n",
  });
  const missing = createWorker(pathToFileURL(join(d, 'bad.ts')), { workerData: {} });
  const [e1] = (await once(missing, 'error')) as [Error & { code?: string }];
  assert.equal(e1.code, 'ERR_MODULE_NOT_FOUND');
  assert.match(e1.message, /missing\.ts/);
  const broken = createWorker(pathToFileURL(join(d, 'uses-broken.ts')), { workerData: {} });
  const [e2] = (await once(broken, 'error')) as [Error & { code?: string }];
  assert.equal(e2.code, 'ERR_INVALID_TYPESCRIPT_SYNTAX');
  assert.match(e2.stack ?? '', /broken\.ts:1\n/);
});

test('a worker started by createWorker takes clearly less memory than one that strips its own TypeScript', (t) => {
  // Each start in a fresh process whose main thread has loaded TypeScript, as
  // the server's has. The worker reports its own isolate's memory: the
  // stripper is WebAssembly, counted in `external`. Unlike RSS, which is the
  // whole process and moved by whatever else the machine does (the gap was
  // 10 MB alone and 1.2 MB once in a full parallel test run), these figures
  // are the worker's alone.
  const d = dir(t, {
    'entry.ts': [
      "import { parentPort } from 'node:worker_threads';",
      "import { v } from './dep.ts';",
      'const m = process.memoryUsage();',
      'parentPort!.postMessage({ v: v satisfies number, heapUsed: m.heapUsed, external: m.external });',
      '',
    ].join('\n'),
    'dep.ts': 'export const v: number = 1;\n',
    'measure.mjs': [
      "import { once } from 'node:events';",
      "import { Worker } from 'node:worker_threads';",
      `const { createWorker } = await import(${JSON.stringify(WORKER_THREAD_URL)});`,
      "const entry = new URL('./entry.ts', import.meta.url);",
      "const w = process.argv[2] === 'stripped' ? createWorker(entry, { workerData: {} }) : new Worker(entry, { workerData: {} });",
      "const [m] = await once(w, 'message');",
      'process.stdout.write(JSON.stringify(m));',
      'process.exit(0);',
    ].join('\n'),
  });
  const measure = (mode: string): { v: number; heapUsed: number; external: number } => {
    const r = spawnSync(process.execPath, [join(d, 'measure.mjs'), mode], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no warning printed');
    return JSON.parse(r.stdout) as { v: number; heapUsed: number; external: number };
  };
  const mb = (bytes: number): string => (bytes / 1048576).toFixed(1);
  const plain = measure('plain');
  const stripped = measure('stripped');
  assert.equal(plain.v, 1);
  assert.equal(stripped.v, 1);
  t.diagnostic(`worker isolate: external ${mb(stripped.external)} MB, heap ${mb(stripped.heapUsed)} MB from stripped sources; external ${mb(plain.external)} MB, heap ${mb(plain.heapUsed)} MB stripping its own`);
  // Node 24.x: about 3.3 against 12.6 MB external, 7.5-8.3 against 11.7 MB heap.
  assert.ok(stripped.external < plain.external - 5 * 1048576, `external memory: ${mb(stripped.external)} MB from stripped sources, ${mb(plain.external)} MB stripping its own`);
  assert.ok(stripped.heapUsed + stripped.external < plain.heapUsed + plain.external - 7 * 1048576, 'heap and external together');
});
