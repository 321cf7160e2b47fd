// scripts/build-dist.ts, the prepack build: the extension rewrite on its own
// (table-driven), the real repository built into a temp directory, small
// fixture trees for the failures it must report, and the prebuilt addon
// replaced under a process that has it loaded.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ADDON_FILE, checkLoads } from '../../native/install.js';
import { loadUdpBatch } from '../../native/udp-batch.ts';
import { buildDist, buildPrebuilt, PREBUILT_TARGET, rewriteExtensions } from '../../scripts/build-dist.ts';
import { Lines } from '../helpers/child.ts';
import { ROOT } from '../helpers/markdown.ts';
import { cannotBuild, nodeHeaders } from '../helpers/native-build.ts';

/** Creates a temp directory that is removed after the test. */
async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-build-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a fixture repository: package.json plus the given files. */
async function fixture(t: TestContext, files: Record<string, string>): Promise<string> {
  const root = await tempDir(t);
  await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'fixture', version: '9.8.7', type: 'module' }));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

const REWRITES: { name: string; input: string; expect: string }[] = [
  { name: 'a static import', input: "import { a } from './a.ts';", expect: "import { a } from './a.js';" },
  { name: 'a re-export from a parent folder', input: 'export * from "../b/c.ts";', expect: 'export * from "../b/c.js";' },
  { name: 'a bare import', input: "import './side-effect.ts';", expect: "import './side-effect.js';" },
  { name: 'a dynamic import', input: "await import('../api/server.ts')", expect: "await import('../api/server.js')" },
  { name: 'a worker entry URL', input: "new URL('../../workers/dns-worker.ts', import.meta.url)", expect: "new URL('../../workers/dns-worker.js', import.meta.url)" },
  { name: 'a package name that ends in .ts (not relative)', input: "import x from 'lib.ts';", expect: "import x from 'lib.ts';" },
  { name: 'a .tsx or .ts.bak path', input: "'./a.tsx' './a.ts.bak'", expect: "'./a.tsx' './a.ts.bak'" },
  { name: 'an unquoted mention in a comment', input: '// see ./a.ts', expect: '// see ./a.ts' },
];

for (const c of REWRITES) {
  test(`rewriteExtensions rewrites ${c.name} as expected, keeping the length`, () => {
    const out = rewriteExtensions(c.input);
    assert.equal(out, c.expect);
    assert.equal(out.length, c.input.length);
  });
}

test('builds the repository into plain JavaScript with every line where the .ts source has it', async (t) => {
  const out = await tempDir(t);
  const { files } = buildDist(out);
  const sources = spawnSync('git', ['ls-files', 'src/*.ts', 'workers/*.ts'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  assert.ok(sources.length > 50);
  for (const source of sources) {
    const built = `${source.slice(0, -3)}.js`;
    assert.ok(files.includes(built), `${built} built`);
    const tsLines = readFileSync(join(ROOT, source), 'utf8').split('\n');
    const jsLines = readFileSync(join(out, built), 'utf8').split('\n');
    // Mode "strip" blanks types in place: same line count, and each line as long as before.
    assert.equal(jsLines.length, tsLines.length, `${built}: line count`);
    for (let i = 0; i < tsLines.length; i++) assert.equal(jsLines[i]!.length, tsLines[i]!.length, `${built}:${i + 1}: length`);
    assert.doesNotMatch(jsLines.join('\n'), /(['"])\.{1,2}\/[^'"\n]*\.ts\1/, `${built} names no .ts module`);
  }
  // The entry points ship as they are; the built tree has no copy of them to drift.
  for (const entry of ['src/cli/opengslb.js', 'src/cli/opengslb-cli.js', 'src/cli/node-guard.js']) assert.ok(!files.includes(entry), `${entry} not built`);
  const distPkg = JSON.parse(readFileSync(join(out, 'package.json'), 'utf8')) as { version: string; type: string };
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.deepEqual([distPkg.version, distPkg.type], [pkg.version, 'module']);
});

test('the built server module runs under plain Node without type stripping', async (t) => {
  const out = await tempDir(t);
  buildDist(out);
  // Bare imports (yaml, pino, …) resolve through node_modules above the built tree.
  await symlink(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
  // --no-experimental-strip-types: any .ts the built code still imported would fail to load.
  const r = spawnSync(process.execPath, ['--no-experimental-strip-types', '--input-type=module', '-e', `const m = await import(${JSON.stringify(join(out, 'src/cli/opengslb-main.js'))}); process.stdout.write(typeof m.main);`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'function');
});

const FAILURES: { name: string; files: Record<string, string>; expect: RegExp }[] = [
  {
    name: 'an import of a module that is not in the build, with file and line',
    files: { 'src/a.ts': "// one\nimport { b } from './b.ts';\nexport const a: number = b;\n" },
    expect: /^build-dist: 1 reference\(s\) to files outside the build:\nsrc\/a\.js:2: \.\/b\.js is not in the build$/,
  },
  {
    name: 'TypeScript that cannot be erased (an enum), naming the file',
    files: { 'src/e.ts': 'export enum Colour { Red }\n' },
    expect: /^build-dist: src\/e\.ts: /,
  },
];

for (const c of FAILURES) {
  test(`buildDist refuses ${c.name}`, async (t) => {
    const root = await fixture(t, c.files);
    assert.throws(() => buildDist(join(root, 'dist'), root), (err: Error) => {
      assert.match(err.message, c.expect);
      return true;
    });
  });
}

test('buildDist copies files that are not code and writes dist/package.json with the version', async (t) => {
  const root = await fixture(t, { 'src/a.ts': "import data from './d.json' with { type: 'json' };\nexport const a: unknown = data;\n", 'src/d.json': '{"x":1}\n' });
  const { files } = buildDist(join(root, 'dist'), root);
  assert.deepEqual([...files].sort(), ['package.json', 'src/a.js', 'src/d.json']);
  assert.equal(readFileSync(join(root, 'dist/src/d.json'), 'utf8'), '{"x":1}\n');
  assert.equal((JSON.parse(readFileSync(join(root, 'dist/package.json'), 'utf8')) as { version: string }).version, '9.8.7');
});

// A shared library rewritten in place under a process that maps it kills
// that process with SIGBUS, without a word (checked: a copyFileSync over a
// loaded .node ended its loader with exit 135). `npm pack` in
// test/package/install.test.ts rebuilt the addon in native/build/ and copied
// it over the prebuilt while other test files ran servers from this checkout.
const repoAddon = loadUdpBatch();
test('the prebuilt addon is built in a scratch copy and renamed into place: a process running the old one is not killed', { skip: cannotBuild || (repoAddon.addon === null ? `no addon to start from: ${repoAddon.reason}` : false) }, async (t) => {
  const root = await tempDir(t);
  for (const f of ['binding.gyp', 'udp_batch.c', 'install.js']) cpSync(join(ROOT, 'native', f), join(root, 'native', f));
  const prebuilt = join(root, 'native', 'prebuilds', PREBUILT_TARGET, ADDON_FILE);
  mkdirSync(dirname(prebuilt), { recursive: true });
  copyFileSync(repoAddon.file as string, prebuilt);
  const before = statSync(prebuilt).ino;
  // A process that keeps running the prebuilt's code until its stdin closes.
  const runner = [
    `const addon = require(${JSON.stringify(prebuilt)});`,
    "let open = true; process.stdin.on('end', () => { open = false; }); process.stdin.resume();",
    "console.log('ready');",
    'const spin = () => { for (let i = 0; i < 10000; i++) { try { addon.close(null); } catch {} } if (open) setImmediate(spin); else console.log(\'done\'); };',
    'spin();',
  ].join('\n');
  const child = spawn(process.execPath, ['-e', runner], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const lines = new Lines(child.stdout);
  await lines.waitFor(/^ready$/);
  const saved = process.env.npm_config_nodedir;
  process.env.npm_config_nodedir = nodeHeaders as string;
  try {
    const result = await buildPrebuilt(root);
    assert.deepEqual(result, { file: prebuilt });
  } finally {
    if (saved === undefined) delete process.env.npm_config_nodedir;
    else process.env.npm_config_nodedir = saved;
  }
  child.stdin.end();
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, 'the process running the old prebuilt lived on');
  assert.notEqual(statSync(prebuilt).ino, before, 'a new file, renamed over the old one');
  assert.equal(checkLoads(prebuilt), null);
  assert.ok(!existsSync(join(root, 'native', 'build')), 'nothing built in native/ itself');
  assert.deepEqual(readdirSync(dirname(prebuilt)), [ADDON_FILE], 'no partial file left behind');
});
