// The Docker image, checked without a Docker engine (none runs where these
// tests run). Static checks read the Dockerfile's instructions and hold them
// against the image's config (loaded with the server's own loader), the build
// context and docs/docker.md. Then the server runs from a copy of the image's
// file layout (/app with the built package, /etc/opengslb/config.yaml, the
// state directory), as a user that is not root, with the image's ENV,
// ENTRYPOINT and CMD, and the HEALTHCHECK command is run against it.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildDist } from '../../scripts/build-dist.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { loadConfig } from '../../src/config/load.ts';
import { ask } from '../helpers/dns-client.ts';
import { Lines, reapAfter } from '../helpers/child.ts';
import { ROOT } from '../helpers/markdown.ts';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
  /** Index of the build stage (FROM … starts one) the instruction belongs to. */
  readonly stage: number;
}

/** Splits a Dockerfile into instructions: comments and blank lines dropped, backslash continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  let stage = -1;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (pending === '' && (raw === '' || raw.startsWith('#'))) continue;
    if (pending === '') startLine = i + 1;
    if (raw.endsWith('\\')) {
      pending += raw.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + raw).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (!m) continue;
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ keyword, args: m[2]!, line: startLine, stage });
  }
  return out;
}

const instructions = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const LAST_STAGE = Math.max(...instructions.map((i) => i.stage));
const all = (keyword: string): Instruction[] => instructions.filter((i) => i.keyword === keyword);
/** The instructions of the final stage, the image itself. */
const image = (keyword: string): Instruction[] => all(keyword).filter((i) => i.stage === LAST_STAGE);

/** Parses an exec-form (JSON array) instruction argument; fails the test for the shell form, which would not forward signals. */
function execForm(what: string, args: string): string[] {
  const value: unknown = JSON.parse(args);
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === 'string'), `${what} in exec form (a JSON array of strings): ${args}`);
  return value as string[];
}

/** The one ENTRYPOINT or CMD of the image, in exec form. */
function onlyExec(keyword: string): string[] {
  const found = image(keyword);
  assert.equal(found.length, 1, `exactly one ${keyword}`);
  return execForm(keyword, found[0]!.args);
}

/** Every NAME=VALUE the image's ENV lines set. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of image('ENV')) {
    for (const pair of e.args.split(/\s+/)) {
      const eq = pair.indexOf('=');
      assert.ok(eq > 0, `ENV ${e.args}: NAME=VALUE form`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

const USER = image('USER').at(-1)?.args.split(':')[0] ?? 'root';
const TOKEN = 'docker-test-token-0123456789';

/** The COPY that bakes the config in: its source in the build context and its target in the image. */
function configCopy(): { source: string; target: string } {
  const cmd = onlyExec('CMD');
  const target = cmd[cmd.indexOf('--config') + 1]!;
  const copy = image('COPY')
    .map((c) => c.args.split(/\s+/).filter((p) => !p.startsWith('--')))
    .find((parts) => parts.at(-1) === target);
  assert.ok(copy, `a COPY to ${target}, the --config of CMD`);
  return { source: copy[0]!, target };
}

const baked = configCopy();
/** The image's config as the server loads it, with the token its docs pass. */
const imageConfig = (await loadConfig(join(ROOT, baked.source), { env: { OPENGSLB_API_TOKEN: TOKEN } })).config;

test('builds in two stages on node:24-slim: the npm package, then the image', () => {
  assert.deepEqual(
    all('FROM').map((f) => f.args),
    ['node:24-slim AS package', 'node:24-slim'],
  );
  assert.equal(instructions[0]!.keyword, 'FROM', 'FROM comes first');
});

test('the image runs what the npm package ships: npm pack in the first stage, its tarball unpacked into /app', () => {
  const packStage = all('RUN').filter((r) => r.stage === 0);
  assert.ok(packStage.some((r) => /\bnpm pack\b/.test(r.args)), packStage.map((r) => r.args).join('\n'));
  assert.ok(image('COPY').some((c) => c.args.startsWith('--from=package ') && c.args.includes('.tgz')), 'COPY --from=package of the tarball');
  assert.ok(image('RUN').some((r) => /\btar -xzf \S+\.tgz -C \/app --strip-components=1\b/.test(r.args)), 'the tarball unpacked into /app');
  assert.equal(image('WORKDIR').at(-1)?.args, '/app');
});

test('runs as a user that is not root', () => {
  const users = image('USER');
  assert.ok(users.length > 0, 'a USER line');
  const last = users.at(-1)!;
  assert.notEqual(USER, 'root');
  assert.notEqual(USER, '0');
  // Nothing after the USER line may switch back or run as root.
  const after = instructions.slice(instructions.indexOf(last) + 1);
  assert.ok(!after.some((i) => i.keyword === 'RUN' || i.keyword === 'USER'), 'no RUN or USER after USER');
});

test('installs only production dependencies from the lock file', () => {
  const runs = image('RUN').map((r) => r.args);
  assert.ok(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), runs.join('\n'));
  assert.ok(!all('RUN').some((r) => /\bnpm (install|i)\b/.test(r.args)), 'npm ci, not npm install');
  const copies = image('COPY').map((c) => c.args);
  assert.ok(copies.some((c) => c.includes('package.json') && c.includes('package-lock.json')), 'copies package.json and package-lock.json');
});

test('the build context holds what npm pack needs and none of node_modules, dist, tests, benchmarks, CI or git', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const p of ['node_modules', 'dist', 'test', 'bench', '.ci', '.git']) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  const needed = ['package.json', 'package-lock.json', 'scripts', 'src', 'workers', ...pkg.files.filter((f) => f !== 'dist/')];
  for (const p of needed) {
    const top = p.replace(/\/$/, '').split('/')[0]!;
    assert.ok(!ignored.includes(top) && !ignored.includes(p), `.dockerignore keeps ${p}`);
  }
  // Every COPY from the build context names a path that exists.
  for (const c of all('COPY').filter((c) => !c.args.startsWith('--from='))) {
    const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const s of parts.slice(0, -1)) if (s !== '.') assert.ok(existsSync(join(ROOT, s)), `Dockerfile:${c.line}: ${s} exists`);
  }
});

test('starts src/cli/opengslb.js with the server flags and environment, and the config at /etc/opengslb/config.yaml', () => {
  assert.deepEqual(onlyExec('ENTRYPOINT'), ['node', ...SERVER_NODE_FLAGS, 'src/cli/opengslb.js']);
  const env = imageEnv();
  for (const [k, v] of Object.entries(SERVER_ENV)) assert.equal(env[k], v, `ENV ${k}=${v}`);
  assert.deepEqual(onlyExec('CMD'), ['--config', '/etc/opengslb/config.yaml']);
  assert.equal(baked.source, 'deploy/docker/config.yaml');
});

test('the baked-in config listens on all addresses and EXPOSE names its DNS (UDP and TCP), API and metrics ports', () => {
  const ports = image('EXPOSE').flatMap((e) => e.args.split(/\s+/));
  assert.equal(imageConfig.dns.listenHost, '0.0.0.0');
  assert.equal(imageConfig.api.host, '0.0.0.0');
  assert.equal(imageConfig.metrics.host, '0.0.0.0');
  assert.ok(imageConfig.api.enabled && imageConfig.metrics.enabled);
  assert.deepEqual(
    [...ports].sort(),
    [`${imageConfig.dns.listenPort}/tcp`, `${imageConfig.dns.listenPort}/udp`, `${imageConfig.api.port}/tcp`, `${imageConfig.metrics.port}/tcp`].sort(),
  );
});

test('keeps state in a volume at the config\'s data_dir, created for the image\'s user', () => {
  const volumes = image('VOLUME').map((v) => v.args);
  assert.deepEqual(volumes, [imageConfig.dataDir]);
  assert.equal(imageConfig.dataDir, '/var/lib/opengslb');
  const runs = image('RUN').map((r) => r.args);
  assert.ok(runs.some((r) => r.includes(`mkdir -p ${imageConfig.dataDir}`) && r.includes(`chown ${USER}:${USER} ${imageConfig.dataDir}`)), runs.join('\n'));
});

test('checks health on /api/v1/ready at the configured API port', async () => {
  const checks = image('HEALTHCHECK');
  assert.equal(checks.length, 1, 'one HEALTHCHECK');
  const m = /^(.*?)\bCMD\s+(\[.*\])$/.exec(checks[0]!.args);
  assert.ok(m, `HEALTHCHECK … CMD [exec form]: ${checks[0]!.args}`);
  for (const opt of ['--interval=', '--timeout=', '--start-period=']) assert.ok(m[1]!.includes(opt), `HEALTHCHECK sets ${opt}`);
  assert.equal(imageEnv().OPENGSLB_READY_URL, `http://127.0.0.1:${imageConfig.api.port}/api/v1/ready`);
  // docs/api.md: the readiness route answers anyone, so the allowlist never fails the check.
  const api = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
  assert.match(api, /\| GET \| `\/api\/v1\/ready` \| anyone \|/);
});

test('the baked-in config refuses to start without OPENGSLB_API_TOKEN, with the message docs/docker.md shows', async () => {
  const file = join(ROOT, baked.source);
  await assert.rejects(loadConfig(file, { env: {} }), (err: Error) => {
    assert.match(err.message, /api\.token: uses \$\{OPENGSLB_API_TOKEN\}, but the environment variable OPENGSLB_API_TOKEN is not set/);
    // In the container the file is the COPY's target.
    // The server prints it after its name, as every error line.
    const inImage = `opengslb: ${err.message.replaceAll(file, baked.target)}`;
    assert.ok(readFileSync(join(ROOT, 'docs/docker.md'), 'utf8').includes(`\n${inImage}\n`), `docs/docker.md shows:\n${inImage}`);
    return true;
  });
});

/** Returns the `docker run` command of docs/docker.md's first sh block that has one, continuation lines joined, as words. */
function docsDockerRun(): string[] {
  const docs = readFileSync(join(ROOT, 'docs/docker.md'), 'utf8');
  const blocks = [...docs.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((b) => b[1]!);
  const joined = blocks.map((b) => b.replace(/\\\n\s*/g, ' ')).flatMap((b) => b.split('\n'));
  const line = joined.find((l) => /^docker run\b/.test(l.trim()));
  assert.ok(line, 'docs/docker.md has a `docker run` line in a ```sh block');
  return line.trim().split(/\s+/);
}

test('docs/docker.md\'s docker run publishes every exposed port, mounts the config and the state volume, and passes the API token', () => {
  const words = docsDockerRun();
  const values = (flag: string): string[] => words.flatMap((w, i) => (w === flag ? [words[i + 1]!] : []));
  const published = values('-p').map((p) => {
    const [spec, proto = 'tcp'] = p.split('/');
    return `${spec!.split(':').at(-1)}/${proto}`;
  });
  const exposed = image('EXPOSE').flatMap((e) => e.args.split(/\s+/));
  assert.deepEqual([...published].sort(), [...exposed].sort(), `-p ${values('-p').join(' -p ')}`);
  const mounts = values('-v').map((v) => v.replace(/^"|"$/g, '').split(':'));
  assert.ok(mounts.some((m) => m[1] === baked.target && m[2] === 'ro'), `-v FILE:${baked.target}:ro`);
  assert.ok(mounts.some((m) => m[1] === imageConfig.dataDir && !m[0]!.startsWith('/') && !m[0]!.startsWith('$')), `-v NAMED_VOLUME:${imageConfig.dataDir}`);
  assert.ok(values('-e').some((e) => e === 'OPENGSLB_API_TOKEN' || e.startsWith('OPENGSLB_API_TOKEN=')), '-e OPENGSLB_API_TOKEN');
  const build = /docker build -t (\S+) \./.exec(readFileSync(join(ROOT, 'docs/docker.md'), 'utf8'));
  assert.ok(build, 'docs/docker.md shows `docker build -t NAME .`');
  assert.equal(words.at(-1), build[1], 'the run line starts the image the build line tags');
});

// ---------------------------------------------------------------------------
// The image's file layout, run for real

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

/** Copies the image's layout into `root`: /app (the package's files, dist/ built, node_modules linked), the baked config, the state directory. */
async function imageLayout(t: TestContext, uid: number, gid: number): Promise<{ root: string; app: string; config: string; state: string }> {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-image-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await chmod(root, 0o755);
  const app = join(root, 'app');
  // What the tarball holds (package.json "files", plus package.json and README), as test/package checks npm pack ships.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  // dist/ and native/prebuilds/ are what prepack builds: dist/ is built below; without a prebuilt addon the server uses node:dgram, which this test does not mind.
  for (const f of ['package.json', 'README.md', ...pkg.files.filter((p) => p !== 'dist/' && p !== 'native/prebuilds/')]) {
    await mkdir(dirname(join(app, f)), { recursive: true });
    cpSync(join(ROOT, f), join(app, f), { recursive: true });
  }
  buildDist(join(app, 'dist'));
  await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
  // The config with the image's absolute paths moved under root, and port 0 for
  // every listener: binding 53 as a user needs ip_unprivileged_port_start=0,
  // which Docker sets in a container and this machine need not.
  const state = join(root, imageConfig.dataDir);
  const config = join(root, baked.target);
  const text = readFileSync(join(ROOT, baked.source), 'utf8')
    .replaceAll(imageConfig.dataDir, state)
    .replace(/("0\.0\.0\.0:)\d+"/g, '$10"');
  await mkdir(dirname(config), { recursive: true });
  await writeFile(config, text, { mode: 0o644 });
  // As the RUN line does: mkdir -p, chown to the user, chmod 750.
  await mkdir(state, { recursive: true });
  for (let d = dirname(state); d.startsWith(root); d = dirname(d)) await chmod(d, 0o755);
  await chmod(dirname(config), 0o755);
  await chown(state, uid, gid);
  await chmod(state, 0o750);
  return { root, app, config, state };
}

test('runs from a copy of the image\'s layout as a user that is not root: answers DNS, passes its HEALTHCHECK, writes state with the API token', { skip: process.platform !== 'linux' ? 'needs Linux (/proc, uid switching)' : false }, async (t) => {
  // As root (the test machine's usual case), run as nobody; otherwise as this user, who is not root either.
  const asRoot = process.getuid!() === 0;
  const uid = asRoot ? 65534 : process.getuid!();
  const gid = asRoot ? 65534 : process.getgid!();
  const { app, config, state } = await imageLayout(t, uid, gid);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...imageEnv(), OPENGSLB_API_TOKEN: TOKEN };
  const as: SpawnOptions = asRoot ? { uid, gid } : {};

  // ENTRYPOINT + CMD, with `node` the pinned Node (the image's is node:24) and the config path moved under root.
  const [node, ...entry] = onlyExec('ENTRYPOINT');
  assert.equal(node, 'node');
  const cmd = onlyExec('CMD').map((a) => (a === baked.target ? config : a));
  const child = spawn(process.execPath, [...entry, ...cmd], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], ...as });
  const exited = reapAfter(t, child);
  const out = new Lines(child.stdout!);
  const err = new Lines(child.stderr!);
  const portOf = async (re: RegExp): Promise<number> => {
    const line = await out.waitFor(re, 0, 15_000).catch((e: Error) => assert.fail(`${e.message}\nstderr:\n${err.text}`));
    const m = /"address":"0\.0\.0\.0:(\d+)"/.exec(line);
    assert.ok(m, `listens on all addresses: ${line}`);
    return Number(m[1]);
  };
  const dnsPort = await portOf(/DNS listening on UDP and TCP/);
  const apiPort = await portOf(/API listening/);
  await portOf(/metrics listening/);
  await out.waitFor(/OpenGSLB running/, 0, 15_000);

  const uidLine = readFileSync(`/proc/${child.pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
  assert.ok(uidLine !== undefined && !/\s0\s/.test(`${uidLine} `), `not root: ${uidLine}`);

  const reply = await ask(dnsPort, 'app.example.test', 'A');
  assert.equal(reply.rcode, 'NOERROR');
  assert.ok(
    (reply.answers ?? []).every((a) => ['192.0.2.10', '192.0.2.11'].includes((a as { data: string }).data)) && (reply.answers ?? []).length === 1,
    JSON.stringify(reply.answers),
  );

  // The HEALTHCHECK's command, as Docker runs it inside the container: same user and environment.
  const check = execForm('HEALTHCHECK', /\bCMD\s+(\[.*\])$/.exec(image('HEALTHCHECK')[0]!.args)![1]!);
  const runCheck = (url: string): number | null =>
    spawnSync(process.execPath, check.slice(1), { cwd: app, env: { ...env, OPENGSLB_READY_URL: url }, timeout: 10_000, ...as }).status;
  assert.equal(check[0], 'node');
  assert.equal(runCheck(`http://127.0.0.1:${apiPort}/api/v1/ready`), 0, 'healthy once ready');
  assert.equal(runCheck(`http://127.0.0.1:${await closedPort()}/api/v1/ready`), 1, 'unhealthy when nothing answers');

  // A write needs the token from the environment, and lands in the state directory.
  const url = `http://127.0.0.1:${apiPort}/api/v1/overrides/app.example.test/192.0.2.10`;
  const body = JSON.stringify({ healthy: false, reason: 'docker layout test', source: 'test' });
  const headers = { 'content-type': 'application/json' };
  assert.equal((await fetch(url, { method: 'PUT', headers, body })).status, 401, 'no token, no write');
  const put = await fetch(url, { method: 'PUT', headers: { ...headers, authorization: `Bearer ${TOKEN}` }, body });
  assert.equal(put.status, 200, await put.text());
  const written = await readdir(state);
  assert.ok(written.length > 0, 'state files written');
  for (const f of written) assert.equal(statSync(join(state, f)).uid, uid, `${f} owned by the server's user`);

  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null }, err.text);
});
