// The npm package as a user gets it: `npm pack` (which runs the prepack
// build) makes the tarball, `npm install -g --prefix TMP` installs it with the
// pinned Node 24's npm environment, and the tests run the installed bins
// through their shebangs. An installed package lives under node_modules, where
// Node refuses to strip types, so everything here runs only built JavaScript:
// the server, its DNS worker threads, its config-loader worker, and the CLI.

import { GEOIP_ATTRIBUTION } from '../../src/geo/attribution.ts';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { ask } from '../helpers/dns-client.ts';
import { Lines, reapAfter } from '../helpers/child.ts';
import { ROOT } from '../helpers/markdown.ts';

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string>; files: string[] };
/** PATH whose first `node` is the pinned Node 24 running these tests, as npm's own scripts see it. */
const PATH24 = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;
/** The system Node (20 on a fresh machine), for the version guard. */
const OLD_NODE = '/usr/bin/node';

const work = await mkdtemp(join(tmpdir(), 'opengslb-package-'));
after(() => rm(work, { recursive: true, force: true }));

interface Packed {
  readonly tarball: string;
  readonly files: readonly string[];
}

/** Runs npm with the pinned Node first on PATH; fails with npm's output when it exits non-zero. */
function npm(args: readonly string[], cwd: string): string {
  const r = spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, PATH: PATH24, npm_config_update_notifier: 'false' }, timeout: 120_000 });
  assert.equal(r.status, 0, `npm ${args.join(' ')} exited ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.stdout;
}

let packed: Promise<Packed> | undefined;
/** Packs the repository once (the prepack build runs) and returns the tarball and its file list. */
function pack(): Promise<Packed> {
  packed ??= (async () => {
    const out = npm(['pack', '--json', '--pack-destination', work], ROOT);
    const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    return { tarball: join(work, info.filename), files: info.files.map((f) => f.path) };
  })();
  return packed;
}

let installed: Promise<string> | undefined;
/** Installs the tarball into a fresh prefix once and returns the prefix (bins in PREFIX/bin). */
function install(): Promise<string> {
  installed ??= (async () => {
    const { tarball } = await pack();
    const prefix = join(work, 'prefix');
    // --prefer-offline: the dependencies come from npm's cache, filled by `npm ci`.
    npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], work);
    return prefix;
  })();
  return installed;
}

/** Runs an installed bin through its shebang with `PATH` and returns its status and output. */
function runBin(prefix: string, bin: string, args: readonly string[], path = PATH24): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(prefix, 'bin', bin), args, { encoding: 'utf8', env: { ...process.env, PATH: path }, timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('npm pack ships the built code, docs, JSON Schema, example configs, units, LICENSE and NOTICE, and no tests, benchmarks, CI or TypeScript', async () => {
  const { files } = await pack();
  const has = new Set(files);
  for (const f of [
    'package.json',
    'README.md',
    'LICENSE',
    'NOTICE',
    PKG.bin.opengslb,
    PKG.bin['opengslb-cli'],
    'src/cli/node-guard.js',
    'dist/package.json',
    'dist/src/cli/opengslb-main.js',
    'dist/src/cli/opengslb-cli-main.js',
    'dist/src/config/load-worker.js',
    'dist/workers/dns-worker.js',
    'dist/native/udp-batch.js',
    'native/binding.gyp',
    'native/udp_batch.c',
    'native/install.js',
    'docs/configuration.md',
    'docs/config.schema.json',
    'config/example.yaml',
    'config/example-multifile/main.yaml',
    'deploy/systemd/opengslb-overwatch.service',
    'deploy/docker/config.yaml',
    'deploy/prometheus/alerts.yaml',
    'deploy/grafana/opengslb.json',
    'dist/src/api/dashboard/index.html',
    'dist/src/api/dashboard/dashboard.js',
    'dist/src/api/dashboard/api.js',
    'dist/src/api/dashboard/chart.js',
    'dist/src/api/dashboard/style.css',
    'dist/src/api/dashboard/icon.svg',
    'docs/dashboard.png',
    'docs/runbooks/README.md',
  ]) {
    assert.ok(has.has(f), `the tarball has ${f}`);
  }
  const unwanted = files.filter((f) => /^(test|bench|\.ci|scripts|node_modules|var)\//.test(f) || f.endsWith('.ts') || f === 'Dockerfile' || f === 'package-lock.json');
  assert.deepEqual(unwanted, [], 'nothing that does not run or document the program');
  // Every source module has its built twin, so nothing the server imports is left out.
  const sources = spawnSync('git', ['ls-files', 'src/*.ts', 'workers/*.ts'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  assert.ok(sources.length > 50, `git lists the sources (${sources.length})`);
  const missing = sources.filter((s) => !has.has(`dist/${s.slice(0, -3)}.js`));
  assert.deepEqual(missing, [], 'sources without a built .js in dist/');
});

const linuxX64Glibc = process.platform === 'linux' && process.arch === 'x64' && (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime !== undefined;

test('npm pack ships the batched-UDP addon prebuilt for linux-x64 with glibc, built by the prepack script', { skip: linuxX64Glibc ? false : 'the prebuilt is made on linux-x64 with glibc only' }, async () => {
  const { files } = await pack();
  assert.ok(files.includes('native/prebuilds/linux-x64-glibc/opengslb_udp.node'), files.filter((f) => f.startsWith('native/')).join(', '));
  assert.ok(!files.some((f) => f.startsWith('native/build/')), 'no local build output');
});

test('the installed bins keep the .ts-free layout under node_modules, and opengslb --version prints the version', async () => {
  const prefix = await install();
  const pkgDir = join(prefix, 'lib/node_modules', PKG.name);
  assert.ok(existsSync(join(pkgDir, 'dist/src/cli/opengslb-main.js')));
  assert.ok(!existsSync(join(pkgDir, 'src/cli/opengslb-main.ts')), 'no TypeScript sources installed');
  const r = runBin(prefix, 'opengslb', ['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `OpenGSLB ${PKG.version}\n${GEOIP_ATTRIBUTION}\n`);
  assert.equal(r.stderr, '');
});

test('the installed opengslb serves DNS from its worker threads with the memory flags, and the installed opengslb-cli reads its admin API', async (t) => {
  const prefix = await install();
  const dir = join(work, 'serve');
  const config = join(dir, 'config.yaml');
  await mkdir(dir);
  await writeFile(
    config,
    [
      'dns:',
      '  listen_address: "127.0.0.1:0"',
      '  workers: 2',
      '  zones: [example.test]',
      '  nameservers:',
      '    - { name: ns1.example.test, addresses: [127.0.0.1] }',
      'regions:',
      '  - name: eu-west',
      '    servers:',
      '      - { address: 192.0.2.10 }',
      '    health_check: { type: none }',
      'domains:',
      '  - { name: app.example.test, regions: [eu-west], ttl: 30 }',
      'logging: { level: info, format: json }',
      'api: { enabled: true, address: "127.0.0.1:0" }',
      'metrics: { enabled: true, address: "127.0.0.1:0" }',
      'overwatch: { data_dir: ./state }',
      '',
    ].join('\n'),
  );
  await chmod(config, 0o600);

  // Through the bin's shebang, as an operator starts it: `opengslb --config FILE`.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: PATH24 };
  for (const k of Object.keys(SERVER_ENV)) delete env[k];
  const child = spawn(join(prefix, 'bin/opengslb'), ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = reapAfter(t, child);
  const out = new Lines(child.stdout);
  const err = new Lines(child.stderr);
  const portOf = async (re: RegExp): Promise<number> => {
    const line = await out.waitFor(re, 0, 15_000).catch((e: Error) => assert.fail(`${e.message}\nstderr:\n${err.text}`));
    const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
    assert.ok(m, line);
    return Number(m[1]);
  };
  const dnsPort = await portOf(/DNS listening on UDP and TCP/);
  // The shipped prebuilt loads under node_modules: the workers answer UDP in batches.
  if (linuxX64Glibc) {
    const listening = JSON.parse(out.lines.find((l) => l.includes('DNS listening on UDP and TCP'))!) as { udpIo: string[]; udpIoReason: string };
    assert.deepEqual(listening.udpIo, ['batched', 'batched'], listening.udpIoReason);
    assert.match(listening.udpIoReason, /^native addon native\/prebuilds\/linux-x64-glibc\/opengslb_udp\.node, /);
  }
  const apiPort = await portOf(/API listening/);
  await out.waitFor(/OpenGSLB running/, 0, 15_000);

  // The process is the installed package's, with the flags and environment of `npm start`.
  const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
  for (const flag of SERVER_NODE_FLAGS) assert.ok(cmdline.includes(flag), `${flag} in ${cmdline.join(' ')}`);
  const script = cmdline.find((a) => a.endsWith('/bin/opengslb'));
  assert.ok(script !== undefined && realpathSync(script).includes('/node_modules/opengslb/'), `runs from node_modules: ${cmdline.join(' ')}`);
  const environ = new Set(readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0'));
  for (const [k, v] of Object.entries(SERVER_ENV)) assert.ok(environ.has(`${k}=${v}`), `${k}=${v} in the server's environment`);

  // A real query, answered by a DNS worker thread over UDP and TCP.
  for (const transport of ['udp', 'tcp'] as const) {
    const reply = await ask(dnsPort, 'app.example.test', 'A', {}, transport);
    assert.equal(reply.rcode, 'NOERROR', transport);
    assert.deepEqual(
      (reply.answers ?? []).map((a) => [a.type, (a as { data: unknown }).data]),
      [['A', '192.0.2.10']],
      transport,
    );
  }

  // The installed CLI against the installed server's API.
  const api = ['--api', `http://127.0.0.1:${apiPort}`];
  const status = runBin(prefix, 'opengslb-cli', ['status', ...api]);
  assert.equal(status.status, 0, status.stderr);
  assert.ok(status.stdout.startsWith(`OpenGSLB ${PKG.version} at http://127.0.0.1:${apiPort}\n`), status.stdout);
  assert.match(status.stdout, /^Ready: +yes/m);
  assert.match(status.stdout, /^eu-west +1 +1 /m);
  const servers = runBin(prefix, 'opengslb-cli', ['servers', '--json', ...api]);
  assert.equal(servers.status, 0, servers.stderr);
  assert.match(servers.stdout, /192\.0\.2\.10/);
  // The dashboard's page and files come from dist/src/api/dashboard/ of the installed package.
  for (const [path, type] of [['/', 'text/html'], ['/dashboard/dashboard.js', 'text/javascript'], ['/dashboard/style.css', 'text/css']]) {
    const res = await fetch(`http://127.0.0.1:${apiPort}${path}`);
    assert.equal(res.status, 200, path);
    assert.ok((res.headers.get('content-type') ?? '').startsWith(type), `${path}: ${res.headers.get('content-type')}`);
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/, path);
  }

  // SIGHUP: the reload runs the config loader's worker again, from dist/ too.
  const before = out.lines.length;
  child.kill('SIGHUP');
  await out.waitFor(/reload succeeded/, before, 15_000);
  assert.equal(child.exitCode, null, `still running:\n${err.text}`);

  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null }, err.text);
  assert.ok(!/ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING|ExperimentalWarning/.test(err.text), err.text);
});

test('opengslb-cli config validate from the installed package accepts the example configs it ships', async () => {
  const prefix = await install();
  const pkgDir = join(prefix, 'lib/node_modules', PKG.name);
  for (const file of ['config/example.yaml', 'config/example-multifile/main.yaml']) {
    const r = runBin(prefix, 'opengslb-cli', ['config', 'validate', join(pkgDir, file)]);
    assert.equal(r.status, 0, `${file}: ${r.stderr}`);
    assert.match(r.stdout, /: valid \(/);
  }
});

const oldNode = ((): { version: string } | { skip: string } => {
  if (!existsSync(OLD_NODE)) return { skip: `no system Node at ${OLD_NODE} (Debian package nodejs) to run the installed bins with` };
  const v = spawnSync(OLD_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const [major, minor] = v.slice(1).split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) return { skip: `the system Node at ${OLD_NODE} is ${v}, not older than 22.12` };
  return { version: v };
})();

for (const bin of ['opengslb', 'opengslb-cli']) {
  test(`the installed ${bin} on an older Node exits 1 with one line saying which Node to install`, { skip: 'skip' in oldNode ? oldNode.skip : false }, async () => {
    const prefix = await install();
    // The system Node first on PATH: the shebang's `env node` finds it, as on a machine with only that Node.
    const r = runBin(prefix, bin, ['--version'], `${dirname(OLD_NODE)}${delimiter}${process.env.PATH ?? ''}`);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    const version = (oldNode as { version: string }).version;
    assert.equal(r.stderr, `${bin}: OpenGSLB needs Node.js >= 22.12; this is ${version}: install Node.js 22.12 or newer (24 LTS recommended) and run ${bin} again\n`);
    // The clone's advice (npm start, the pinned devDependency) means nothing to an installed package.
    assert.ok(!/npm|pinned/.test(r.stderr), r.stderr);
    if (bin === 'opengslb') {
      // docs/install.md quotes the line, with an example version.
      const docs = await readFile(join(ROOT, 'docs/install.md'), 'utf8');
      assert.ok(docs.includes(`\n${r.stderr.replace(version, 'v20.19.2')}`), `docs/install.md quotes:\n${r.stderr}`);
    }
  });
}

test('NOTICE names every runtime dependency with the licence its package declares', async () => {
  const notice = await readFile(join(ROOT, 'NOTICE'), 'utf8');
  const deps = Object.keys((JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  for (const dep of deps) {
    const license = (JSON.parse(await readFile(join(ROOT, 'node_modules', dep, 'package.json'), 'utf8')) as { license: string }).license;
    const literal = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
    assert.match(notice, new RegExp(`^  ${literal(dep)}\\s+${literal(license)}$`, 'm'), `NOTICE lists ${dep} (${license})`);
  }
});
