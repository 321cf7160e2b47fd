// Whole-process tests of the two entry points, src/cli/opengslb.js and
// src/cli/opengslb-cli.js: each test starts the real file as a child process
// (process.execPath, the pinned Node 24 under `npx node --test`) with a config
// written into a fresh temp directory, talks to it over real loopback sockets,
// and reads its exit code, stdout and stderr.

import { GEOIP_ATTRIBUTION } from '../../src/geo/attribution.ts';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SHUTDOWN_GRACE_MS } from '../../src/overwatch/overwatch.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { ask, buildQuery, rcodeOf, tcpConnect, udpExchange } from '../helpers/dns-client.ts';
import { freePort, Lines, reapAfter, run, startOpengslb } from '../helpers/child.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVER = join(ROOT, 'src/cli/opengslb.js');
const CLI = join(ROOT, 'src/cli/opengslb-cli.js');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The server promises a clean stop within this long after SIGTERM or SIGINT. */
const STOP_BUDGET_MS = 5000;
/** Upper bound for anything that should take well under a second (start-up, a log line, a reply). */
const STEP_MS = 5000;

const posixOnly = { skip: process.platform === 'win32' ? 'POSIX signals and mode bits' : false };

// ---------------------------------------------------------------------------
// Helpers

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Creates a temp directory that is removed after the test. */
async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a config file readable and writable by its owner only (0o600), and returns its path. */
async function writeConfig(dir: string, name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text, { mode: 0o600 });
  // writeFile's mode applies to new files only; make it hold for rewrites too.
  await chmod(file, 0o600);
  return file;
}

/** Returns a config that serves app.example.test A 192.0.2.10. */
function goodConfig(opts: { ttl?: number; port?: number; workers?: number; format?: 'json' | 'text'; mode?: string } = {}): string {
  return [
    ...(opts.mode ? [`mode: ${opts.mode}`] : []),
    'dns:',
    `  listen_address: "127.0.0.1:${opts.port ?? 0}"`,
    `  workers: ${opts.workers ?? 2}`,
    '  zones: [example.test]',
    '  nameservers:',
    '    - name: ns1.example.test',
    '      addresses: [127.0.0.1]',
    'regions:',
    '  - name: eu-west',
    '    servers:',
    '      - { address: 192.0.2.10 }',
    // A documentation address nobody can probe: these tests are about the process, not health.
    '    health_check: { type: none }',
    'domains:',
    `  - { name: app.example.test, regions: [eu-west], ttl: ${opts.ttl ?? 30} }`,
    `logging: { level: info, format: ${opts.format ?? 'json'} }`,
    // Relative to the config file: the test's temp directory.
    'overwatch: { data_dir: ./state }',
    // Agent mode needs its own section to be a valid file (the file is mode 600: it holds secrets).
    ...(opts.mode === 'agent'
      ? [
        'agent:',
        '  identity: { service_token: token-for-app-0123456789, region: eu-west, cert_path: ./agent.crt, key_path: ./agent.key }',
        '  backends: [{ service: app.example.test, address: 127.0.0.1, port: 8080 }]',
        '  gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", overwatch_nodes: ["127.0.0.1:7946"] }',
      ]
      : []),
    '',
  ].join('\n');
}

/**
 * Three problems in one file; the comments give each one's line:col, and the
 * tests assert exactly those. Line 4 col 3 is the key "colour"; line 8 col 20
 * the address value; line 10 col 50 the second region reference.
 */
const BAD_CONFIG = [
  'dns:', //                                                       1
  '  listen_address: "127.0.0.1:0"', //                            2
  '  zones: [example.test]', //                                    3
  '  colour: blue', //                                             4: unknown key
  'regions:', //                                                   5
  '  - name: eu-west', //                                          6
  '    servers:', //                                               7
  '      - { address: 10.0.0.300 }', //                            8: bad IP
  'domains:', //                                                   9
  '  - { name: app.example.test, regions: [eu-west, mars] }', //  10: unknown region
  '',
].join('\n');

/** Returns the problem lines BAD_CONFIG must produce when loaded from `file`. */
function badConfigProblems(file: string): { where: string; re: RegExp }[] {
  return [
    { where: `${file}:4:3`, re: /^dns\.colour: unknown key "colour"/ },
    { where: `${file}:8:20`, re: /^regions\[0\]\.servers\[0\]\.address: "10\.0\.0\.300" is not an IP address/ },
    { where: `${file}:10:50`, re: /^domains\[0\]\.regions\[1\]: "mars" is not a region/ },
  ];
}

/** Asserts that every BAD_CONFIG problem is on a line of its own, as `FILE:LINE:COL: path: message`, in order. */
function assertBadConfigReport(stderr: string, file: string, program = 'opengslb'): void {
  const lines = stderr.trimEnd().split('\n');
  const expected = badConfigProblems(file);
  assert.equal(lines.length, expected.length, `one line per problem:\n${stderr}`);
  for (let i = 0; i < expected.length; i++) {
    // Every error line begins with the program name.
    assert.ok(lines[i].startsWith(`${program}: `), `line ${i + 1} should start with "${program}: ":\n${stderr}`);
    const line = lines[i].slice(program.length + 2);
    const { where, re } = expected[i];
    assert.ok(line.startsWith(`${where}: `), `line ${i + 1} should start with "${where}: ":\n${stderr}`);
    assert.match(line.slice(where.length + 2), re);
  }
}



interface Running {
  child: ChildProcess;
  port: number;
  file: string;
  dir: string;
  out: Lines;
  err: Lines;
  exited: Promise<Exit>;
}

/** Starts the server on a config (port 0 unless the text says otherwise) and resolves with the port it logged. Killed after the test. */
async function startServer(t: TestContext, configText: string): Promise<Running> {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'config.yaml', configText);
  return { ...(await startOpengslb(t, file)), file, dir };
}

/** Resolves with the exit, or fails the test when it takes longer than `ms`. */
async function exitWithin(exited: Promise<Exit>, ms: number, what: string, output?: { out: Lines; err: Lines }): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    // Say what the child printed, so a slow stop can be diagnosed from the CI log alone.
    const said = (): string => (output ? `\nstdout:\n${output.out.lines.join('\n')}\nstderr:\n${output.err.lines.join('\n')}` : '');
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms${said()}`)), ms);
  });
  try {
    return await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that `stderr` is exactly one line and returns it. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected exactly one line on stderr, got:\n${stderr}`);
  return lines[0];
}

// ---------------------------------------------------------------------------
// Flags

test('prints "OpenGSLB <version from package.json>" and the GeoIP database\'s attribution for --version and exits 0', async () => {
  const r = await run(SERVER, ['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `OpenGSLB ${VERSION}\n${GEOIP_ATTRIBUTION}\n`);
  assert.equal(r.stderr, '');
});

test('prints the usage on stdout for --help and exits 0', async () => {
  const r = await run(SERVER, ['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: opengslb /);
  assert.match(r.stdout, /--config FILE/);
  assert.equal(r.stderr, '');
});

test('--version, --help and config validate into a pipe the reader closed (| head, | grep -q) exit with their own status, without an EPIPE stack trace', async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'good.yaml', goodConfig());
  for (const args of [['--version'], ['--help'], ['config', 'validate', file]]) {
    const child = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(stderr, '', args.join(' '));
    assert.equal(code, 0, `${args.join(' ')}: ${stderr}`);
  }
});

test('exits 2 with the usage on stderr for an unknown flag', async () => {
  const r = await run(SERVER, ['--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^opengslb: unknown flag --no-such-flag\n/);
  assert.match(r.stderr, /usage: opengslb /);
  assert.equal(r.stdout, '');
});

test('takes Go-style -config FILE and -config=FILE exactly like --config FILE', async (t) => {
  const dir = await tempDir(t);
  // The invalid config makes the server report on the file it read and exit, so the three spellings are comparable.
  const file = await writeConfig(dir, 'bad.yaml', BAD_CONFIG);
  const long = await run(SERVER, ['--config', file]);
  const single = await run(SERVER, ['-config', file]);
  const joined = await run(SERVER, [`-config=${file}`]);
  assert.equal(long.code, 1);
  assertBadConfigReport(long.stderr, file);
  for (const r of [single, joined]) {
    assert.equal(r.code, long.code);
    assert.equal(r.stderr, long.stderr);
  }
});

// ---------------------------------------------------------------------------
// Refusing to start

test('reports every problem of an invalid config as FILE:LINE:COL: path: message, exits 1 and never binds', async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'bad.yaml', BAD_CONFIG);
  const r = await run(SERVER, ['--config', file]);
  assert.equal(r.code, 1);
  assertBadConfigReport(r.stderr, file);
  // It stopped before the logger and the listener existed: nothing was ever bound.
  assert.doesNotMatch(r.stdout, /DNS listening/);
  assert.equal(r.stdout, '');
});

test('refuses a world-writable config file, naming the file and the fix', posixOnly, async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'open.yaml', goodConfig());
  await chmod(file, 0o666);
  const r = await run(SERVER, ['--config', file]);
  assert.equal(r.code, 1);
  const line = oneLine(r.stderr);
  assert.ok(line.includes(`${file}: is world-writable (mode 666)`), line);
  assert.ok(line.includes(`chmod o-w ${file}`), line);
  assert.doesNotMatch(r.stdout, /DNS listening/);
});

test('exits 1 with one clear line when the config file does not exist', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'missing.yaml');
  const r = await run(SERVER, ['--config', file]);
  assert.equal(r.code, 1);
  assert.equal(oneLine(r.stderr), `opengslb: ${file}: does not exist, expected a readable YAML config file`);
  assert.equal(r.stdout, '');
});

for (const c of [
  { name: 'the --mode agent flag', args: ['--mode', 'agent'], mode: undefined },
  { name: '"mode: agent" in the file', args: [], mode: 'agent' },
]) {
  test(`exits 1 naming the DNS keys an agent refuses when an overwatch file runs in agent mode by ${c.name}`, async (t) => {
    const dir = await tempDir(t);
    const file = await writeConfig(dir, 'agent.yaml', goodConfig({ mode: c.mode }));
    const r = await run(SERVER, ['--config', file, ...c.args]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /dns: is an overwatch key, and this file runs in agent mode \(an agent serves no DNS and has no admin API\); remove it, or run with --mode overwatch/);
    assert.doesNotMatch(r.stdout, /DNS listening/);
  });
}

/** Holds a loopback port the way an unrelated program would: a plain socket, no reusePort. */
/**
 * Holds a port with a plain socket of one transport. The port is picked below
 * the ephemeral range (32768+), where no other test's port-0 socket or
 * outgoing connection can land, so the other transport's side of it stays
 * free and the server's error can only name the held one.
 */
async function occupy(t: TestContext, transport: 'tcp' | 'udp'): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    try {
      if (transport === 'tcp') {
        const server = net.createServer();
        server.listen({ host: '127.0.0.1', port, exclusive: true });
        await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
        t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
      } else {
        const socket = dgram.createSocket('udp4');
        socket.bind({ address: '127.0.0.1', port, exclusive: true });
        await Promise.race([once(socket, 'listening'), once(socket, 'error').then(([e]) => Promise.reject(e))]);
        t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())));
      }
      return port;
    } catch (err) {
      if (attempt >= 20) throw err;
    }
  }
}

for (const transport of ['tcp', 'udp'] as const) {
  test(`exits 1 naming the address and EADDRINUSE when a plain ${transport.toUpperCase()} socket holds the port`, async (t) => {
    const port = await occupy(t, transport);
    const dir = await tempDir(t);
    const file = await writeConfig(dir, 'busy.yaml', goodConfig({ port }));
    const r = await run(SERVER, ['--config', file]);
    assert.equal(r.code, 1, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    const line = oneLine(r.stderr);
    assert.ok(line.includes(`127.0.0.1:${port}`), line);
    assert.ok(line.includes('EADDRINUSE'), line);
    assert.ok(line.includes(`DNS ${transport.toUpperCase()}`), line);
    assert.doesNotMatch(r.stdout, /DNS listening/);
  });
}

test('refuses to start a second server on the port a running one holds, instead of sharing it', async (t) => {
  const first = await startServer(t, goodConfig());
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'second.yaml', goodConfig({ port: first.port }));
  const r = await run(SERVER, ['--config', file]);
  assert.equal(r.code, 1, `the second server must not join the first one's reusePort group:\n${r.stdout}${r.stderr}`);
  const line = oneLine(r.stderr);
  assert.ok(line.includes(`127.0.0.1:${first.port}`), line);
  assert.ok(line.includes('EADDRINUSE'), line);
  // The first one is untouched.
  const reply = await ask(first.port, 'app.example.test', 'A');
  assert.equal(rcodeOf(reply.raw), 0, 'rcode NOERROR');
});

// ---------------------------------------------------------------------------
// Serving and stopping

/** Returns the A answer of app.example.test: its address and TTL. */
async function askApp(port: number): Promise<{ data: string; ttl: number }> {
  const reply = await ask(port, 'app.example.test', 'A');
  assert.equal(rcodeOf(reply.raw), 0, 'rcode NOERROR');
  assert.equal(reply.answers?.length, 1, JSON.stringify(reply.answers));
  const a = reply.answers![0] as { data: string; ttl?: number };
  return { data: a.data, ttl: a.ttl ?? -1 };
}

for (const c of [
  { signal: 'SIGTERM', format: 'json' },
  { signal: 'SIGINT', format: 'text' },
] as const) {
  test(`answers over UDP and exits 0 within 5 s of ${c.signal} (${c.format} logs)`, posixOnly, async (t) => {
    const s = await startServer(t, goodConfig({ workers: 2, format: c.format }));
    assert.deepEqual(await askApp(s.port), { data: '192.0.2.10', ttl: 30 });
    s.child.kill(c.signal);
    const exit = await exitWithin(s.exited, STOP_BUDGET_MS, `after ${c.signal}`, s);
    assert.deepEqual(exit, { code: 0, signal: null }, s.err.text);
    await s.out.waitFor(/stopped/);
  });
}

test('keeps answering DNS when the reader of its log stream goes away (opengslb | tee, tee killed): logs are dropped, stderr says so once', posixOnly, async (t) => {
  const s = await startServer(t, goodConfig({ workers: 1 }));
  // The pipe's reader closes it: the next log lines meet EPIPE.
  s.child.stdout!.destroy();
  for (let i = 0; i < 3; i++) {
    s.child.kill('SIGHUP');
    await delay(300);
  }
  assert.equal(s.child.exitCode, null, `still running; stderr:\n${s.err.text}`);
  assert.deepEqual(await askApp(s.port), { data: '192.0.2.10', ttl: 30 });
  const said = s.err.lines.filter((l) => /log stream/.test(l));
  assert.equal(said.length, 1, s.err.text);
  assert.match(said[0], /EPIPE.*dropped/);
});

/** A loopback TCP listener that accepts and never answers; `connected` resolves at the first connection. Closed after the test. */
async function silentListener(t: TestContext): Promise<{ port: number; connected: Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let connected!: () => void;
  const first = new Promise<void>((resolve) => (connected = resolve));
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    connected();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, connected: first };
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} during start-up (a first health round waiting 30 s on a backend that does not answer) stops at once, exit 0, nothing served, state directory given back`, posixOnly, async (t) => {
    const silent = await silentListener(t);
    const dir = await tempDir(t);
    const file = await writeConfig(dir, 'config.yaml', [
      'dns:',
      '  listen_address: "127.0.0.1:0"',
      '  workers: 1',
      '  zones: [example.test]',
      'regions:',
      '  - name: eu-west',
      `    servers: [{ address: 127.0.0.1, port: ${silent.port} }]`,
      '    health_check: { type: http, interval: 60s, timeout: 30s, path: /health }',
      'domains:',
      '  - { name: app.example.test, regions: [eu-west] }',
      'logging: { level: info, format: json }',
      'overwatch: { data_dir: ./state }',
      '',
    ].join('\n'));
    const child = spawn(process.execPath, [SERVER, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = reapAfter(t, child);
    const out = new Lines(child.stdout!);
    const err = new Lines(child.stderr!);
    await out.waitFor(/OpenGSLB starting/, 0, STEP_MS);
    await silent.connected;
    child.kill(signal);
    const exit = await exitWithin(exited, STOP_BUDGET_MS, `after ${signal} during start-up`, { out, err });
    assert.deepEqual(exit, { code: 0, signal: null }, err.text);
    await out.waitFor(new RegExp(`"signal":"${signal}".*stopped during start-up`), 0, STEP_MS);
    assert.doesNotMatch(out.text, /DNS listening|OpenGSLB running/);
    assert.equal(existsSync(join(dir, 'state', 'opengslb.pid')), false, 'the pid file is removed');
  });
}

test('SIGTERM after the DNS workers bound but before the start finished (the agent channel still binding) takes the normal stop: a TCP query in flight is answered within the grace, exit 0', posixOnly, async (t) => {
  const dnsPort = await freePort();
  const gossipPort = await freePort();
  const dir = await tempDir(t);
  // The half frame below waits out the rest of the start: a frame timeout longer than that.
  const file = await writeConfig(dir, 'config.yaml', goodConfig({ port: dnsPort, workers: 1 }).replace('  workers: 1\n', '  workers: 1\n  tcp_frame_timeout: 10s\n').replace(
    'overwatch: { data_dir: ./state }',
    `overwatch: { data_dir: ./state, agent_tokens: { app.example.test: e2e-token-0123456789abcdef }, gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", bind_address: "127.0.0.1:${gossipPort}" } }`,
  ));
  // The window made wide: in the main thread, the agent channel's TCP listen waits 3 s (the DNS workers bind before it).
  const preload = join(dir, 'slow-gossip-listen.mjs');
  await writeFile(preload, [
    "import net from 'node:net';",
    "import { isMainThread } from 'node:worker_threads';",
    `const port = ${gossipPort};`,
    'if (isMainThread) {',
    '  const listen = net.Server.prototype.listen;',
    "  net.Server.prototype.listen = function (...args) {",
    "    if (typeof args[0] === 'object' && args[0] !== null && args[0].port === port) { setTimeout(() => listen.apply(this, args), 3000); return this; }",
    '    return listen.apply(this, args);',
    '  };',
    '}',
    '',
  ].join('\n'));
  const child = spawn(process.execPath, ['--import', preload, SERVER, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = reapAfter(t, child);
  const out = new Lines(child.stdout!);
  const err = new Lines(child.stderr!);
  // DNS answers: the workers are bound, while the start waits on the agent channel.
  const deadline = Date.now() + 2 * STEP_MS;
  for (;;) {
    const answer = await udpExchange(dnsPort, buildQuery('app.example.test', 'A'), 200);
    if (answer !== null) break;
    assert.ok(Date.now() < deadline, `DNS did not answer within ${2 * STEP_MS} ms\nstdout:\n${out.text}\nstderr:\n${err.text}`);
  }
  assert.doesNotMatch(out.text, /OpenGSLB running/, 'the start has not finished yet');
  const conn = await tcpConnect(dnsPort);
  t.after(() => conn.close());
  const frame = (q: Buffer): Buffer => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  const f2 = frame(buildQuery('app.example.test', 'A', { id: 0x2222 }));
  conn.socket.write(Buffer.concat([frame(buildQuery('app.example.test', 'A', { id: 0x1111 })), f2.subarray(0, 7)]));
  assert.equal((await conn.next(STEP_MS))?.readUInt16BE(0), 0x1111);
  child.kill('SIGTERM');
  await out.waitFor(/stopping: no new queries/, 0, STEP_MS);
  assert.doesNotMatch(out.text, /stopped during start-up/);
  conn.socket.write(f2.subarray(7));
  const r2 = await conn.next(STEP_MS);
  assert.ok(r2, `no answer to the TCP query in flight\nstdout:\n${out.text}`);
  assert.equal(r2.readUInt16BE(0), 0x2222);
  const exit = await exitWithin(exited, STOP_BUDGET_MS + 3000, 'after SIGTERM while the start finished', { out, err });
  assert.deepEqual(exit, { code: 0, signal: null }, err.text);
});

/** Resolves once a TCP connect to the port is refused, i.e. every worker has closed its listener. */
async function listenersClosed(port: number, timeoutMs = STEP_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return;
    // A connect accepted by a worker that has not closed its listener yet; poll again shortly.
    if (Date.now() > deadline) throw new Error(`port ${port} still accepts TCP connections ${timeoutMs} ms after the stop`);
    await delay(10);
  }
}

test('answers a TCP query that was half received when SIGTERM arrived, then exits 0 within 5 s', posixOnly, async (t) => {
  const s = await startServer(t, goodConfig({ workers: 2 }));
  const conn = await tcpConnect(s.port);
  t.after(() => conn.close());
  const q1 = buildQuery('app.example.test', 'A', { id: 0x1111 });
  const q2 = buildQuery('app.example.test', 'A', { id: 0x2222 });
  const frame = (q: Buffer): Buffer => Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  const f2 = frame(q2);
  const cut = 2 + 5; // the length prefix and 5 bytes of the header
  // One write carries a whole query and the start of the next: once the first
  // answer is back, the worker has read (and kept) the half frame too.
  conn.socket.write(Buffer.concat([frame(q1), f2.subarray(0, cut)]));
  const r1 = await conn.next(STEP_MS);
  assert.ok(r1, 'no answer to the first query');
  assert.equal(r1.readUInt16BE(0), 0x1111);

  const sentAt = Date.now();
  s.child.kill('SIGTERM');
  await s.out.waitFor(/stopping/);
  // Only once the workers have stopped accepting does the rest of the frame prove anything.
  await listenersClosed(s.port);
  conn.socket.write(f2.subarray(cut));
  const restAfterMs = Date.now() - sentAt;
  t.diagnostic(`rest of the frame sent ${restAfterMs} ms after SIGTERM`);
  assert.ok(restAfterMs < SHUTDOWN_GRACE_MS, `the rest must arrive within the ${SHUTDOWN_GRACE_MS} ms grace to prove anything; took ${restAfterMs} ms`);
  const r2 = await conn.next(STEP_MS);
  assert.ok(r2, `no answer to the query completed ${restAfterMs} ms after SIGTERM\nstdout:\n${s.out.text}`);
  assert.equal(r2.readUInt16BE(0), 0x2222);
  assert.equal(r2[3] & 0x0f, 0, 'rcode NOERROR');
  assert.equal(r2.readUInt16BE(6), 1, 'one answer');

  const exit = await exitWithin(s.exited, STOP_BUDGET_MS - (Date.now() - sentAt), 'after SIGTERM with a TCP query in flight', s);
  assert.deepEqual(exit, { code: 0, signal: null }, s.err.text);
});

// ---------------------------------------------------------------------------
// Reload

test('serves the new TTL after SIGHUP with a changed file', posixOnly, async (t) => {
  const s = await startServer(t, goodConfig({ ttl: 30 }));
  assert.equal((await askApp(s.port)).ttl, 30);
  await writeConfig(s.dir, 'config.yaml', goodConfig({ ttl: 45 }));
  const from = s.out.lines.length;
  s.child.kill('SIGHUP');
  await s.out.waitFor(/reload succeeded/, from);
  assert.deepEqual(await askApp(s.port), { data: '192.0.2.10', ttl: 45 });
});

test('keeps serving the old config after SIGHUP with a broken file, and logs why', posixOnly, async (t) => {
  const s = await startServer(t, goodConfig({ ttl: 30 }));
  assert.equal((await askApp(s.port)).ttl, 30);
  await writeConfig(s.dir, 'config.yaml', goodConfig({ ttl: 45 }).replace('192.0.2.10', '192.0.2.300'));
  const from = s.out.lines.length;
  s.child.kill('SIGHUP');
  const line = await s.out.waitFor(/reload/, from);
  assert.match(line, /still serving the previous config/);
  // The reason carries the problem with its position (as a JSON string in JSON logs).
  assert.ok(line.includes(`${s.file}:11:20: regions[0].servers[0].address: \\"192.0.2.300\\" is not an IP address`), line);
  assert.deepEqual(await askApp(s.port), { data: '192.0.2.10', ttl: 30 });
  assert.equal(s.child.exitCode, null, 'still running');
});

// ---------------------------------------------------------------------------
// Node-version guard

/** Finds a node binary older than 22.12 on PATH or in the usual places; says what it found otherwise. */
function findOldNode(): { path: string; version: string } | { none: string } {
  const candidates = [
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'node')),
    '/usr/bin/node',
    '/usr/local/bin/node',
    '/bin/node',
  ];
  const seen = new Set<string>();
  const found: string[] = [];
  for (const candidate of candidates) {
    let real: string;
    try {
      real = realpathSync(candidate);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    const r = spawnSync(candidate, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /^v(\d+)\.(\d+)\.(\d+)/.exec(r.stdout ?? '');
    if (!m) continue;
    const [major, minor] = [Number(m[1]), Number(m[2])];
    found.push(`${m[0]} at ${candidate}`);
    if (major < 22 || (major === 22 && minor < 12)) return { path: candidate, version: m[0] };
  }
  return { none: found.length > 0 ? `found only ${found.join(', ')}` : 'found no node binary at all' };
}

const oldNode = findOldNode();

for (const c of [
  { entry: SERVER, program: 'opengslb' },
  { entry: CLI, program: 'opengslb-cli' },
]) {
  test(`${c.program} exits 1 with one line naming ">= 22.12" when run by a Node older than 22.12`, async (t) => {
    if ('none' in oldNode) {
      t.skip(`no Node older than 22.12 on this machine: ${oldNode.none}`);
      return;
    }
    const r = await run(c.entry, ['--version'], { node: oldNode.path });
    assert.equal(r.code, 1, `${oldNode.version}: ${r.stderr}`);
    const line = oneLine(r.stderr);
    assert.ok(line.startsWith(`${c.program}: `), line);
    assert.ok(line.includes('>= 22.12'), line);
    assert.ok(line.includes(oldNode.version), line);
    assert.equal(r.stdout, '');
  });
}

// ---------------------------------------------------------------------------
// opengslb-cli config validate

test('opengslb-cli config validate exits 0 with a summary for a good file', async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'good.yaml', goodConfig());
  const r = await run(CLI, ['config', 'validate', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${file}: valid (mode overwatch, 1 zones, 1 regions, 1 domains, 1 servers, 1 files)\n  read ${file}\n`);
  assert.equal(r.stderr, '');
});

test('opengslb-cli config validate exits 1 with every problem for a bad file', async (t) => {
  const dir = await tempDir(t);
  const file = await writeConfig(dir, 'bad.yaml', BAD_CONFIG);
  const r = await run(CLI, ['config', 'validate', file]);
  assert.equal(r.code, 1);
  assertBadConfigReport(r.stderr, file, 'opengslb-cli');
  assert.equal(r.stdout, '');
});

test('opengslb config validate --help prints the usage on stdout with exit 0, as opengslb-cli config validate --help does', async () => {
  const server = await run(SERVER, ['config', 'validate', '--help']);
  assert.equal(server.code, 0, server.stderr);
  assert.match(server.stdout, /^usage: opengslb config validate FILE \[--mode overwatch\|agent\] \[--environment-file FILE\] \[--json\]\n\nCheck FILE and its includes/);
  const cli = await run(CLI, ['config', 'validate', '-h']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout, server.stdout.replace(/^usage: opengslb /, 'usage: opengslb-cli '));
});

// The entry files the tests above start must exist; a rename would otherwise
// surface as a confusing spawn failure.
test('finds both entry points where package.json "bin" says they are', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.equal(join(ROOT, pkg.bin.opengslb), SERVER);
  assert.equal(join(ROOT, pkg.bin['opengslb-cli']), CLI);
  assert.ok(existsSync(SERVER) && existsSync(CLI));
});

test('starts the server with SERVER_ENV and SERVER_NODE_FLAGS everywhere: the npm start script and the bin shebang', () => {
  const env = Object.entries(SERVER_ENV).map(([k, v]) => `${k}=${v}`).join(' ');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, `${env} node ${SERVER_NODE_FLAGS.join(' ')} src/cli/opengslb.js --config config/example.yaml`);
  const shebang = readFileSync(SERVER, 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S ${env} node ${SERVER_NODE_FLAGS.join(' ')}`);
});

test('the bin\'s shebang hands the server SERVER_ENV, as its /proc environ shows', { skip: process.platform !== 'linux' ? 'reads /proc' : false }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-env-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  await writeFile(
    file,
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }\nregions: [{ name: r, servers: [{ address: 192.0.2.1 }], health_check: { type: none } }]\ndomains: [{ name: app.example.test, regions: [r] }]\n',
    { mode: 0o600 },
  );
  const { spawn } = await import('node:child_process');
  // The bin itself, as an installed one runs (env(1) execs node in place, so the pid is the server's); the test's own env lacks the variables.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
  for (const k of Object.keys(SERVER_ENV)) delete env[k];
  const child = spawn(SERVER, ['--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
  t.after(() => child.kill('SIGKILL'));
  await new Lines(child.stdout!).waitFor(/DNS listening on UDP and TCP/, 0, 15_000);
  const vars = new Set(readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0'));
  for (const [k, v] of Object.entries(SERVER_ENV)) assert.ok(vars.has(`${k}=${v}`), `${k}=${v} in the server's environment`);
});

test('runs through its shebang as an installed bin does, flags included', posixOnly, () => {
  // A PATH whose first `node` is the pinned Node 24, as npm's bin shims see it.
  const r = spawnSync(SERVER, ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^OpenGSLB \d+\.\d+\.\d+/);
});
