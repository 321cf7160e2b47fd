// Bench only. The soak: the real server (src/cli/opengslb.js, a child process)
// under everything at once for a chosen time, sampled every few seconds, and
// failed when memory, heap or file descriptors trend up after the warm-up or
// when any answer is wrong.
//
//   load (all the time)                         faults (on a schedule)
//   ─ dnsperf, saturating UDP                   ─ SIGHUP reload every minute (scaled: duration/6 when shorter)
//   ─ pipelined TCP (write 50, read 50, again)  ─ SIGUSR2 + OPENGSLB_FAULT_DRILL=1: one DNS worker terminated,
//   ─ TCP clients that write and never read       as a crash would, every 3 minutes (duration/4 when shorter)
//   ─ slow TCP clients (a byte every 300 ms)    ─ changes every 20 s (duration/8, at least 8 s): an HTTP
//   ─ a random-subdomain flood (NXDOMAIN)         backend closed or opened again, or an override set or
//                                                 cleared through the API
//   samples every 2 s (5 s when the judged part is over 5 minutes): RSS, open fds (/proc/PID), main-thread heap (/metrics),
//   and, when the last change is older than the health checks need to see it, the answer for
//   app.soak.test A compared with what this harness knows: the backends that listen (in a child
//   process of their own, bench/lib/soak-backends.ts), overridden by the overrides it set. When
//   they differ and the server's own health state (GET /api/v1/health/servers) gives exactly the
//   answer, a health check disagreed with the harness (counted apart, fails above 2 %); otherwise
//   the answer is wrong (fails at one). Plus NXDOMAIN for a random name and 32 AAAA over TCP.
//
// The run is a warm-up, then the judged soak. During the warm-up the same load and faults run (on the
// judged part's schedule) and answers are checked, but the samples are not judged: the server's RSS climbs
// for its first couple of minutes under this load (measured in docs/benchmarks.md; the cause is not pinned down).
// Trend: least-squares slope over the samples of the judged part, each taken as the mean over the fault cycle
// that ends at it (see cycleMs), times the judged part's length = projected growth. It
// fails above: RSS max(16 MiB, 10 % of its mean), heap max(8 MiB, 20 %),
// fds max(16, 25 %): the fd count moves with the test's own TCP clients.
//
// Usage: npm run soak -- [--duration 30m] [--warmup D] [--workers 2] [--rrl] [--docs-svg] [--out DIR]
//   --duration  the judged soak (default 30m, at least 30s)
//   --warmup    before it, not judged (default: a quarter of --duration, at least WARMUP_MIN_MS below)
//   --rrl       turns on dns.rrl (needs the response-rate-limiting change); the flood and
//               dnsperf then come from other /24s than the checks, which are exempt
//   --docs-svg  also writes docs/soak.svg
// → bench/results/soak-<time>.{json,svg}; exit 0 pass, 1 fail, 2 cannot run.

import { fork, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { ManagedChild, installSignalHandlers, onCleanup, stopAll } from './lib/children.ts';
import { findDnsperf } from './lib/generators.ts';
import { encodeQuery } from './lib/query-wire.ts';
import { describeMachine } from './lib/proc.ts';
import { REPO_DIR } from './lib/targets.ts';
import { parseDuration } from '../src/config/duration.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/cli/runtime-flags.js';

const QTYPE_A = 1;
const QTYPE_AAAA = 28;
const BACKENDS = 6;
const BIG_ANSWERS = 32;
/** Health checks every 1 s, one failure or success flips a server: 3.5 s covers a check, its timeout and the republish. */
const SETTLE_MS = 3_500;

// ─── options ────────────────────────────────────────────────────────────────

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '30m' },
    warmup: { type: 'string' },
    workers: { type: 'string', default: '2' },
    rrl: { type: 'boolean', default: false },
    'docs-svg': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const parsed = parseDuration(values.duration);
if ('error' in parsed) usage(`--duration: ${parsed.error}`);
/** The judged part of the run, after the warm-up. */
const durationMs = (parsed as { ms: number }).ms;
if (durationMs < 30_000) usage('--duration: at least 30s, so that there are enough samples to judge');
const workers = Number(values.workers);
if (!Number.isInteger(workers) || workers < 1 || workers > 64) usage('--workers: a whole number 1–64');
// Default warm-up: a quarter of the judged part, never less than WARMUP_MIN_MS: the climb ended 100-120 s
// into a run with the 60 s part's schedule (measured, docs/benchmarks.md), so CI's 60 s is judged after it.
const WARMUP_MIN_MS = 120_000;
let warmupMs = Math.max(WARMUP_MIN_MS, durationMs / 4);
if (values.warmup !== undefined) {
  const w = parseDuration(values.warmup);
  if ('error' in w) usage(`--warmup: ${w.error}`);
  warmupMs = (w as { ms: number }).ms;
}
const warmupText = values.warmup ?? `${warmupMs / 1000}s`;
/** The whole run: warm-up, then the judged part. */
const runMs = warmupMs + durationMs;
// Samples and faults follow the judged part's length, and run from the start: the warm-up is the same soak.
const sampleMs = durationMs > 300_000 ? 5_000 : 2_000;
const reloadEveryMs = Math.round(Math.min(60_000, durationMs / 6));
const killEveryMs = Math.round(Math.min(180_000, durationMs / 4));
// The faults repeat every cycleMs (reload and kill both fall on it again), and the RSS swings by 30-40 MB
// in step with it. A trend fitted to the raw samples of a window only two cycles long (60 s judged: reload
// every 10 s, kill every 15 s) projected -26 to +15 MiB with the RSS flat, against a limit of 19 (measured,
// docs/benchmarks.md); fitted to the mean over the last cycle, which keeps a steady climb's slope as it is,
// -21 to +6 MiB.
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const faultsLcmMs = (reloadEveryMs / gcd(reloadEveryMs, killEveryMs)) * killEveryMs;
const cycleMs = faultsLcmMs <= durationMs / 2 ? faultsLcmMs : Math.max(reloadEveryMs, killEveryMs);
const changeEveryMs = Math.max(8_000, Math.min(20_000, durationMs / 8));
const outDir = values.out ?? path.join(REPO_DIR, 'bench', 'results');

function usage(message: string): never {
  process.stderr.write(`soak: ${message}\nusage: npm run soak -- [--duration 30m] [--warmup D] [--workers 2] [--rrl] [--docs-svg] [--out DIR]\n`);
  process.exit(2);
}

const dnsperfVersion = findDnsperf();
if (dnsperfVersion === null) {
  process.stderr.write('soak: dnsperf is not installed (Debian package dnsperf); the saturating UDP load needs it\n');
  process.exit(2);
}

installSignalHandlers('soak');
const startedAt = new Date();
const t0 = Date.now();
const elapsed = (): number => Date.now() - t0;
const log = (text: string): void => void process.stderr.write(`[${(elapsed() / 1000).toFixed(1).padStart(7)} s] ${text}\n`);

// ─── backends: real HTTP servers on their own loopback addresses ───────────
// They run in a child process (bench/lib/soak-backends.ts): this process's own
// load must not make a health check time out.

interface Backend {
  readonly address: string;
  port: number;
  open: boolean;
}

const backendProc = fork(path.join(REPO_DIR, 'bench', 'lib', 'soak-backends.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
// Registered so that stopAll() stops it with the server.
new ManagedChild('backends', backendProc);
function backendOp(op: 'open' | 'close', b: Backend): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { address: string; port?: number; error?: string }): void => {
      if (m.address !== b.address) return;
      backendProc.off('message', onMessage);
      if (m.error !== undefined) return reject(new Error(`backend ${b.address}: ${m.error}`));
      if (op === 'open') b.port = m.port ?? b.port;
      b.open = op === 'open';
      resolve();
    };
    backendProc.on('message', onMessage);
    backendProc.send({ op, address: b.address, port: b.port });
  });
}
const openBackend = (b: Backend): Promise<void> => backendOp('open', b);
const closeBackend = (b: Backend): Promise<void> => backendOp('close', b);

const backends: Backend[] = Array.from({ length: BACKENDS }, (_, i) => ({ address: `127.0.91.${i + 1}`, port: 0, open: false }));
for (const b of backends) await openBackend(b);

// ─── the server ─────────────────────────────────────────────────────────────

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opengslb-soak-'));
onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
const configFile = path.join(dir, 'config.yaml');
const config = [
  'dns:',
  '  listen_address: "127.0.0.1:0"',
  `  workers: ${workers}`,
  '  zones: [soak.test]',
  ...(values.rrl ? ['  rrl: { responses_per_second: 100, exempt_clients: [127.0.0.0/24] }'] : []),
  'regions:',
  '  - name: web',
  `    servers: [${backends.map((b) => `{ address: ${b.address}, port: ${b.port} }`).join(', ')}]`,
  '    health_check: { type: http, interval: 1s, timeout: 900ms, path: /health, failure_threshold: 1, success_threshold: 1 }',
  '  - name: big',
  `    servers: [${Array.from({ length: BIG_ANSWERS }, (_, i) => `{ address: "2001:db8::${(i + 1).toString(16)}" }`).join(', ')}]`,
  '    health_check: { type: none }',
  'domains:',
  `  - { name: app.soak.test, regions: [web], max_answers: ${BACKENDS} }`,
  `  - { name: big.soak.test, regions: [big], max_answers: ${BIG_ANSWERS} }`,
  'api: { enabled: true, address: "127.0.0.1:0" }',
  'metrics: { enabled: true, address: "127.0.0.1:0" }',
  'logging: { level: info, format: json }',
  'overwatch: { data_dir: ./state }',
  '',
].join('\n');
fs.writeFileSync(configFile, config, { mode: 0o600 });

const serverProc = spawn(process.execPath, [...SERVER_NODE_FLAGS, path.join(REPO_DIR, 'src/cli/opengslb.js'), '--config', configFile], {
  env: { ...process.env, ...SERVER_ENV, OPENGSLB_FAULT_DRILL: '1' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
const server = new ManagedChild('opengslb', serverProc);
const serverPid = serverProc.pid as number;
/** Counts of the server's log lines the soak waits for. */
const seen = { reloadOk: 0, reloadFailed: 0, workerExited: 0, workerRestarted: 0, errors: 0 };
const errorLines: string[] = [];
const ports = { dns: 0, api: 0, metrics: 0 };
let outTail = '';
serverProc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
  const lines = (outTail + chunk).split('\n');
  outTail = lines.pop() ?? '';
  for (const line of lines) {
    const address = /"address":"127\.0\.0\.1:(\d+)"/.exec(line)?.[1];
    if (address !== undefined) {
      if (line.includes('DNS listening')) ports.dns = Number(address);
      else if (line.includes('API listening')) ports.api = Number(address);
      else if (line.includes('metrics')) ports.metrics = Number(address);
    }
    if (line.includes('"reload succeeded"')) seen.reloadOk++;
    if (line.includes('"reload failed') || line.includes('"reload refused')) seen.reloadFailed++;
    if (line.includes('"DNS worker exited; restarting"')) seen.workerExited++;
    if (line.includes('"DNS worker restarted"')) seen.workerRestarted++;
    if (line.includes('"level":"error"')) {
      seen.errors++;
      if (errorLines.length < 20) errorLines.push(line.slice(0, 400));
    }
  }
});

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (server.hasExited) throw new Error(`the server exited while waiting for ${what}\n${server.describe()}`);
    if (Date.now() > end) throw new Error(`no ${what} within ${timeoutMs} ms\n${server.describe()}`);
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

try {
  await until(() => ports.dns !== 0 && ports.api !== 0 && ports.metrics !== 0, 60_000, 'DNS, API and metrics listening lines');
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n`);
  await stopAll();
  process.exit(2);
}
log(`server pid ${serverPid}: DNS 127.0.0.1:${ports.dns}, API :${ports.api}, metrics :${ports.metrics}; ${workers} worker(s); warm-up ${warmupText} (not judged), then ${values.duration} judged`);

// ─── DNS helpers ────────────────────────────────────────────────────────────

/** A decoded reply; dns-packet's types leave out the rcode its decoder sets. */
type Reply = dnsPacket.Packet & { rcode?: string };

let nextId = 1;
function query(name: string, qtype: number): Uint8Array {
  nextId = (nextId % 65535) + 1;
  return encodeQuery(nextId, { name, qtype });
}

/** One UDP exchange with retries; null when no reply came in any try. */
async function udpAsk(name: string, qtype: number, tries = 3, timeoutMs = 1000): Promise<Reply | null> {
  const socket = dgram.createSocket('udp4');
  try {
    for (let i = 0; i < tries; i++) {
      const q = query(name, qtype);
      const id = (q[0] << 8) | q[1];
      socket.send(q, ports.dns, '127.0.0.1');
      const reply = await new Promise<Buffer | null>((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(null);
        }, timeoutMs);
        const onMessage = (msg: Buffer): void => {
          if (msg.length < 2 || msg.readUInt16BE(0) !== id) return;
          clearTimeout(timer);
          socket.off('message', onMessage);
          resolve(msg);
        };
        socket.on('message', onMessage);
      });
      if (reply !== null) return dnsPacket.decode(reply);
    }
    return null;
  } finally {
    socket.close();
  }
}

/** One TCP exchange; null on failure. */
async function tcpAsk(name: string, qtype: number, timeoutMs = 3000): Promise<Reply | null> {
  const socket = net.connect({ host: '127.0.0.1', port: ports.dns });
  socket.on('error', () => {});
  try {
    const timer = sleep(timeoutMs).then(() => null);
    const exchange = (async (): Promise<Reply | null> => {
      await once(socket, 'connect');
      const q = query(name, qtype);
      const frame = Buffer.alloc(2 + q.length);
      frame.writeUInt16BE(q.length);
      frame.set(q, 2);
      socket.write(frame);
      let buf = Buffer.alloc(0);
      for await (const chunk of socket) {
        buf = Buffer.concat([buf, chunk as Buffer]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) return dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
      return null;
    })().catch(() => null);
    return await Promise.race([exchange, timer]);
  } finally {
    socket.destroy();
  }
}

function frameOf(q: Uint8Array): Buffer {
  const frame = Buffer.alloc(2 + q.length);
  frame.writeUInt16BE(q.length);
  frame.set(q, 2);
  return frame;
}

// ─── load ───────────────────────────────────────────────────────────────────

const load = {
  dnsperf: null as null | { sent: number; completed: number; lost: number; qps: number },
  pipelined: { queries: 0, answers: 0, connections: 0 },
  nonReading: { connections: 0, queriesWritten: 0 },
  slow: { connections: 0, answers: 0 },
  flood: { sent: 0, replies: 0, nxdomain: 0 },
};
let running = true;

// dnsperf: saturating UDP for the whole run, from 127.0.2.1 (another /24 than the checks).
const queryFile = path.join(dir, 'queries.txt');
fs.writeFileSync(queryFile, ['app.soak.test A', 'app.soak.test AAAA', 'big.soak.test AAAA', 'soak.test SOA', 'nothere.soak.test A', ''].join('\n'));
const dnsperf = new ManagedChild(
  'dnsperf',
  spawn('dnsperf', ['-s', '127.0.0.1', '-p', String(ports.dns), '-a', '127.0.2.1', '-d', queryFile, '-l', String(Math.ceil(runMs / 1000)), '-c', '4', '-q', '100', '-T', '1', '-O', 'suppress=timeout'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }),
);

// Pipelined TCP: 4 connections, each writes 50 queries at once and reads the 50 answers, again and again.
async function pipelinedClient(): Promise<void> {
  const batch = Array.from({ length: 50 }, (_, i) => frameOf(query(i % 2 === 0 ? 'app.soak.test' : 'big.soak.test', i % 2 === 0 ? QTYPE_A : QTYPE_AAAA)));
  const payload = Buffer.concat(batch);
  while (running) {
    const socket = net.connect({ host: '127.0.0.1', port: ports.dns, localAddress: '127.0.5.1' });
    socket.on('error', () => {});
    load.pipelined.connections++;
    try {
      await once(socket, 'connect');
      let pending = Buffer.alloc(0);
      let answered = 0;
      const iterator = socket[Symbol.asyncIterator]();
      while (running && !socket.destroyed) {
        socket.write(payload);
        load.pipelined.queries += batch.length;
        answered = 0;
        while (answered < batch.length) {
          const next = await Promise.race([iterator.next(), sleep(5000).then(() => null)]);
          if (next === null || next.done === true) throw new Error('closed');
          pending = Buffer.concat([pending, next.value as Buffer]);
          while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
            pending = pending.subarray(2 + pending.readUInt16BE(0));
            answered++;
            load.pipelined.answers++;
          }
        }
      }
    } catch {
      // The server closes a connection after tcp_max_queries_per_connection; open another.
    } finally {
      socket.destroy();
    }
    await sleep(50);
  }
}

// Each abusive client kind comes from an address of its own (the per-client TCP cap, 16 for the server, then
// bounds what it holds, as it should); the checks come from 127.0.0.1.
// TCP clients that write 2 000 queries for a ~1 kB answer and never read; each lives 10 s, then another takes its place.
async function nonReadingClient(): Promise<void> {
  const payload = Buffer.concat(Array.from({ length: 2000 }, () => frameOf(query('big.soak.test', QTYPE_AAAA))));
  while (running) {
    const socket = net.connect({ host: '127.0.0.1', port: ports.dns, localAddress: '127.0.3.1' });
    socket.on('error', () => {});
    socket.pause();
    load.nonReading.connections++;
    socket.write(payload);
    load.nonReading.queriesWritten += 2000;
    // 'close' and not once(): once() rejects on the 'error' before it (a reset when this address is at its
    // per-client cap), which would end the client and the run.
    await Promise.race([new Promise((resolve) => socket.once('close', resolve)), sleep(10_000)]);
    socket.destroy();
    await sleep(200);
  }
}

// Slow TCP clients: one query, a byte every 300 ms, then read the answer.
async function slowClient(): Promise<void> {
  while (running) {
    const socket = net.connect({ host: '127.0.0.1', port: ports.dns, localAddress: '127.0.4.1' });
    socket.on('error', () => {});
    load.slow.connections++;
    const frame = frameOf(query('app.soak.test', QTYPE_A));
    let got = 0;
    socket.on('data', (d: Buffer) => {
      got += d.length;
    });
    try {
      await once(socket, 'connect');
      for (let i = 0; i < frame.length && running && !socket.destroyed; i++) {
        socket.write(frame.subarray(i, i + 1));
        await sleep(300);
      }
      await Promise.race([once(socket, 'close'), sleep(2000)]);
      if (got > 0) load.slow.answers++;
    } catch {
      // closed by the server's frame deadline: what it is for
    } finally {
      socket.destroy();
    }
    await sleep(100);
  }
}

// Random-subdomain flood: ~2 000 q/s of <random>.app.soak.test from 127.0.1.1 (another /24).
const floodSocket = dgram.createSocket('udp4');
floodSocket.bind(0, '127.0.1.1');
await once(floodSocket, 'listening');
floodSocket.on('message', (msg: Buffer) => {
  load.flood.replies++;
  if (msg.length >= 4 && (msg[3] & 0x0f) === 3) load.flood.nxdomain++;
});
const floodTimer = setInterval(() => {
  for (let i = 0; i < 20; i++) {
    const label = Math.random().toString(36).slice(2, 12);
    floodSocket.send(query(`${label}.app.soak.test`, QTYPE_A), ports.dns, '127.0.0.1');
    load.flood.sent++;
  }
}, 10);

// A load client that throws is the harness's fault, not the server's: it is reported as a reason, and the run goes on.
const clientFailures: string[] = [];
const clients: Promise<void>[] = [];
const runClient = (kind: string, client: () => Promise<void>): void => {
  clients.push(client().catch((err: unknown) => void clientFailures.push(`${kind}: ${(err as Error).message}`)));
};
for (let i = 0; i < 4; i++) runClient('pipelined TCP client', pipelinedClient);
for (let i = 0; i < 20; i++) runClient('non-reading TCP client', nonReadingClient);
for (let i = 0; i < 10; i++) runClient('slow TCP client', slowClient);

// ─── faults and changes ─────────────────────────────────────────────────────

interface SoakEvent {
  readonly tMs: number;
  readonly kind: 'reload' | 'worker-kill' | 'backend-off' | 'backend-on' | 'override-set' | 'override-clear';
  readonly detail: string;
}
const events: SoakEvent[] = [];
/** Overrides this harness set: address → healthy. */
const overrides = new Map<string, boolean>();
let lastChangeMs = 0;
const apiFailures: string[] = [];

async function api(method: string, pathname: string, body?: unknown): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${ports.api}${pathname}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(5000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** One change: a backend (never the first, so something always answers) goes down or up, or an override is set or cleared. */
async function change(step: number): Promise<void> {
  const b = backends[1 + (step % (BACKENDS - 1))];
  lastChangeMs = elapsed();
  if (step % 2 === 0) {
    if (!b.open) {
      await openBackend(b);
      events.push({ tMs: elapsed(), kind: 'backend-on', detail: b.address });
    } else {
      await closeBackend(b);
      events.push({ tMs: elapsed(), kind: 'backend-off', detail: b.address });
    }
  } else if (overrides.has(b.address)) {
    const status = await api('DELETE', `/api/v1/overrides/app.soak.test/${b.address}`).catch((e: Error) => e.message);
    if (status !== 204) apiFailures.push(`DELETE override ${b.address}: ${status}`);
    else overrides.delete(b.address);
    events.push({ tMs: elapsed(), kind: 'override-clear', detail: b.address });
  } else {
    // Alternate: force down a backend that may be up, force up one that may be down.
    const healthy = step % 4 === 3;
    const status = await api('PUT', `/api/v1/overrides/app.soak.test/${b.address}`, { healthy, reason: 'soak', source: 'soak' }).catch((e: Error) => e.message);
    if (status !== 200) apiFailures.push(`PUT override ${b.address}: ${status}`);
    else overrides.set(b.address, healthy);
    events.push({ tMs: elapsed(), kind: 'override-set', detail: `${b.address} healthy=${healthy}` });
  }
  lastChangeMs = elapsed();
}

/** What the server's own health state says app.soak.test answers: per server, its override there, else its check verdict. */
async function serverView(): Promise<{ expected: string[]; errors: string }> {
  const res = await fetch(`http://127.0.0.1:${ports.api}/api/v1/health/servers?domain=app.soak.test`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { servers: { address: string; healthy: boolean; last_error: string | null; overrides: { service: string; healthy: boolean }[] }[] };
  const expected = body.servers.filter((s) => s.overrides.find((o) => o.service === 'app.soak.test')?.healthy ?? s.healthy).map((s) => s.address).sort();
  const errors = body.servers.filter((s) => s.last_error !== null).map((s) => `${s.address}: ${s.last_error}`).join('; ');
  return { expected, errors };
}

function expectedAnswer(): string[] {
  return backends.filter((b) => overrides.get(b.address) ?? b.open).map((b) => b.address).sort();
}

// ─── sampling ───────────────────────────────────────────────────────────────

interface Sample {
  readonly tMs: number;
  readonly rssBytes: number;
  readonly heapBytes: number;
  readonly fds: number;
}
interface Check {
  readonly tMs: number;
  readonly what: string;
  readonly result: 'ok' | 'wrong' | 'lost' | 'check-disagreed';
  readonly detail?: string;
}
const samples: Sample[] = [];
const checks: Check[] = [];

function readRssBytes(): number {
  const status = fs.readFileSync(`/proc/${serverPid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m === null ? NaN : Number(m[1]) * 1024;
}

async function readHeapBytes(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${ports.metrics}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const m = /^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(text);
  return m === null ? NaN : Number(m[1]);
}

async function sample(): Promise<void> {
  const tMs = elapsed();
  const rssBytes = readRssBytes();
  const fds = fs.readdirSync(`/proc/${serverPid}/fd`).length;
  const heapBytes = await readHeapBytes().catch(() => NaN);
  samples.push({ tMs, rssBytes, heapBytes, fds });
}

async function checkAnswers(): Promise<void> {
  const tMs = elapsed();
  if (tMs - lastChangeMs >= SETTLE_MS) {
    const want = expectedAnswer();
    const reply = await udpAsk('app.soak.test', QTYPE_A);
    // Still settled when the reply came: no change raced the question.
    if (elapsed() - lastChangeMs >= SETTLE_MS + (elapsed() - tMs)) {
      if (reply === null) checks.push({ tMs, what: 'app A udp', result: 'lost' });
      else {
        const got = (reply.answers ?? []).filter((a) => a.type === 'A').map((a) => String((a as { data: unknown }).data)).sort();
        const ok = reply.rcode === 'NOERROR' && got.join(',') === want.join(',');
        if (ok) checks.push({ tMs, what: 'app A udp', result: 'ok' });
        else {
          // The harness's view disagrees. If the server's own health state (checks + overrides, from the API)
          // gives exactly this answer, a health check disagreed with the harness (a listening backend found
          // down, or the reverse): counted apart, with the check's error. Otherwise the answer is wrong.
          const view = await serverView();
          const detail = `rcode ${reply.rcode}, got [${got.join(', ')}], harness expected [${want.join(', ')}], server's health view [${view.expected.join(', ')}]${view.errors === '' ? '' : `; check errors: ${view.errors}`}`;
          checks.push({ tMs, what: 'app A udp', result: reply.rcode === 'NOERROR' && view.expected.join(',') === got.join(',') ? 'check-disagreed' : 'wrong', detail });
        }
      }
    }
  }
  const random = `${Math.random().toString(36).slice(2, 10)}.app.soak.test`;
  const nx = await udpAsk(random, QTYPE_A);
  if (nx === null) checks.push({ tMs, what: 'random NXDOMAIN udp', result: 'lost' });
  else {
    const ok = nx.rcode === 'NXDOMAIN' && (nx.answers ?? []).length === 0;
    checks.push({ tMs, what: 'random NXDOMAIN udp', result: ok ? 'ok' : 'wrong', ...(ok ? {} : { detail: `${random}: rcode ${nx.rcode}, ${(nx.answers ?? []).length} answers` }) });
  }
  const big = await tcpAsk('big.soak.test', QTYPE_AAAA);
  if (big === null) checks.push({ tMs, what: 'big AAAA tcp', result: 'lost' });
  else {
    const n = (big.answers ?? []).filter((a) => a.type === 'AAAA').length;
    const ok = big.rcode === 'NOERROR' && n === BIG_ANSWERS && ((big.flags ?? 0) & 0x200) === 0;
    checks.push({ tMs, what: 'big AAAA tcp', result: ok ? 'ok' : 'wrong', ...(ok ? {} : { detail: `rcode ${big.rcode}, ${n} AAAA, expected ${BIG_ANSWERS}` }) });
  }
}

// ─── the run ────────────────────────────────────────────────────────────────

const loadAtStart = os.loadavg();
let reloadsSent = 0;
let killsSent = 0;
let changes = 0;
let nextReload = reloadEveryMs;
let nextKill = killEveryMs / 2;
let nextChange = changeEveryMs / 2;
let nextSample = 0;
let nextProgress = 10_000;
let failure: string | null = null;

while (elapsed() < runMs) {
  if (server.hasExited) {
    failure = `the server exited during the run\n${server.describe()}`;
    break;
  }
  const now = elapsed();
  if (now >= nextSample) {
    nextSample += sampleMs;
    try {
      await sample();
      await checkAnswers();
    } catch (err) {
      if (!server.hasExited) failure = `sampling failed: ${(err as Error).message}`;
    }
  }
  if (now >= nextReload) {
    nextReload += reloadEveryMs;
    serverProc.kill('SIGHUP');
    reloadsSent++;
    events.push({ tMs: now, kind: 'reload', detail: 'SIGHUP' });
  }
  if (now >= nextKill) {
    nextKill += killEveryMs;
    serverProc.kill('SIGUSR2');
    killsSent++;
    events.push({ tMs: now, kind: 'worker-kill', detail: 'SIGUSR2' });
  }
  if (now >= nextChange) {
    nextChange += changeEveryMs;
    await change(changes++);
  }
  if (now >= nextProgress) {
    nextProgress += 10_000;
    const last = samples[samples.length - 1];
    const bad = checks.filter((c) => c.result !== 'ok').length;
    log(`RSS ${mb(last?.rssBytes)} MB, heap ${mb(last?.heapBytes)} MB, fds ${last?.fds}; checks ${checks.length} (${bad} not ok); reloads ${seen.reloadOk}/${reloadsSent}, worker restarts ${seen.workerRestarted}/${killsSent}; load ${os.loadavg()[0].toFixed(2)}`);
  }
  if (failure !== null) break;
  await sleep(100);
}

// ─── wind down ──────────────────────────────────────────────────────────────

running = false;
clearInterval(floodTimer);
floodSocket.close();
// Give the last reload and worker restart time to be logged.
await until(() => seen.reloadOk + seen.reloadFailed >= reloadsSent && seen.workerRestarted >= killsSent, 15_000, 'the last reload and worker restart').catch((e: Error) => {
  failure ??= e.message;
});
await Promise.race([Promise.all(clients), sleep(12_000)]);
// dnsperf stops by itself after -l seconds and then prints its statistics; a SIGTERM before that loses them.
await Promise.race([dnsperf.exited, sleep(15_000)]);
await dnsperf.stop();
const dnsperfOut = dnsperf.stdoutTail;
const sentM = /Queries sent:\s+(\d+)/.exec(dnsperfOut);
const doneM = /Queries completed:\s+(\d+)/.exec(dnsperfOut);
const lostM = /Queries lost:\s+(\d+)/.exec(dnsperfOut);
const qpsM = /Queries per second:\s+([\d.]+)/.exec(dnsperfOut);
if (sentM && doneM && lostM && qpsM) load.dnsperf = { sent: Number(sentM[1]), completed: Number(doneM[1]), lost: Number(lostM[1]), qps: Number(qpsM[1]) };
const loadAtEnd = os.loadavg();
const serverAlive = !server.hasExited;
await server.stop();
const cleanExit = server.exitCode === 0;

// ─── verdict ────────────────────────────────────────────────────────────────

interface Trend {
  readonly metric: string;
  readonly samples: number;
  readonly mean: number;
  readonly slopePerMin: number;
  readonly growth: number;
  readonly limit: number;
  readonly pass: boolean;
}

function fit(points: readonly (readonly [number, number])[]): { slope: number; intercept: number } {
  const n = points.length;
  let sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const d = n * sxx - sx * sx;
  const slope = d === 0 ? 0 : (n * sxy - sx * sy) / d;
  return { slope, intercept: (sy - slope * sx) / n };
}

const after = samples.filter((s) => s.tMs >= warmupMs);
const windowMs = after.length > 1 ? after[after.length - 1].tMs - after[0].tMs : 0;
/**
 * What is judged: at each sample after the warm-up, the mean of the samples of the fault cycle that ends there
 * (those of the warm-up's last cycle included, so the first judged points are whole cycles too).
 */
function cycleMeans(pick: (s: Sample) => number): [number, number][] {
  const points: [number, number][] = [];
  for (const s of after) {
    const ys = samples.filter((q) => q.tMs > s.tMs - cycleMs && q.tMs <= s.tMs).map(pick).filter((y) => Number.isFinite(y));
    if (ys.length > 0) points.push([s.tMs, ys.reduce((a, y) => a + y, 0) / ys.length]);
  }
  return points;
}
function trend(metric: string, pick: (s: Sample) => number, floor: number, share: number): Trend {
  const points = cycleMeans(pick);
  const mean = points.reduce((a, [, y]) => a + y, 0) / Math.max(1, points.length);
  const { slope } = fit(points);
  const growth = slope * windowMs;
  const limit = Math.max(floor, share * mean);
  return { metric, samples: points.length, mean, slopePerMin: slope * 60_000, growth, limit, pass: points.length >= 5 && growth <= limit };
}
const trends = [
  trend('rss_bytes', (s) => s.rssBytes, 16 * 2 ** 20, 0.1),
  trend('heap_bytes', (s) => s.heapBytes, 8 * 2 ** 20, 0.2),
  trend('fds', (s) => s.fds, 16, 0.25),
];
const wrong = checks.filter((c) => c.result === 'wrong');
const lost = checks.filter((c) => c.result === 'lost');
const disagreed = checks.filter((c) => c.result === 'check-disagreed');
const settled = checks.filter((c) => c.what === 'app A udp').length;
const reasons: string[] = [];
if (failure !== null) reasons.push(failure);
if (!serverAlive) reasons.push('the server was not running at the end');
if (clientFailures.length > 0) reasons.push(`${clientFailures.length} load client(s) of the harness failed, first: ${clientFailures[0]}`);
if (!cleanExit) reasons.push(`the server did not stop cleanly on SIGTERM (code ${server.exitCode}, signal ${server.exitSignal})`);
for (const t of trends) if (!t.pass) reasons.push(`${t.metric} trends up: ${fmt(t.metric, t.growth)} over the judged ${(windowMs / 1000).toFixed(0)} s after the ${warmupText} warm-up (slope ${fmt(t.metric, t.slopePerMin)}/min), limit ${fmt(t.metric, t.limit)}${t.samples < 5 ? `; only ${t.samples} samples` : ''}`);
if (wrong.length > 0) reasons.push(`${wrong.length} wrong answer(s), first: ${wrong[0].what} at ${(wrong[0].tMs / 1000).toFixed(1)} s: ${wrong[0].detail}`);
// Under saturating load a UDP check can go unanswered three times; more than 5 % is not load any more.
// A health check that misjudged a backend the harness knows is up (or down) is the checker's error under
// this load, not a wrong answer; more than 2 % of the settled checks is still a failure.
if (disagreed.length > 0.02 * settled) reasons.push(`${disagreed.length} of ${settled} settled checks: a health check disagreed with the harness (limit 2 %), first: ${disagreed[0].detail}`);
if (lost.length > 0.05 * checks.length) reasons.push(`${lost.length} of ${checks.length} checks got no answer (limit 5 %)`);
if (checks.filter((c) => c.what === 'app A udp').length < 3) reasons.push('fewer than 3 settled answer checks: the run is too short or too loaded to judge');
if (seen.reloadOk < reloadsSent) reasons.push(`${reloadsSent} reloads sent, ${seen.reloadOk} succeeded`);
if (seen.workerRestarted < killsSent) reasons.push(`${killsSent} workers terminated, ${seen.workerRestarted} restarted`);
if (apiFailures.length > 0) reasons.push(`API calls failed: ${apiFailures.slice(0, 3).join('; ')}`);
if (load.pipelined.answers === 0) reasons.push('the pipelined TCP clients got no answers');
if (load.flood.nxdomain === 0) reasons.push('the random-subdomain flood got no NXDOMAIN');
const pass = reasons.length === 0;

function mb(bytes: number | undefined): string {
  return bytes === undefined || !Number.isFinite(bytes) ? '?' : (bytes / 2 ** 20).toFixed(1);
}
function fmt(metric: string, v: number): string {
  return metric === 'fds' ? v.toFixed(1) : `${(v / 2 ** 20).toFixed(2)} MiB`;
}

const result = {
  kind: 'soak',
  pass,
  reasons,
  startedAt: startedAt.toISOString(),
  options: { duration: values.duration, durationMs, warmup: warmupText, warmupMs, runMs, workers, rrl: values.rrl, sampleMs, reloadEveryMs, killEveryMs, cycleMs, changeEveryMs, settleMs: SETTLE_MS },
  machine: { ...describeMachine({ dnsperf: dnsperfVersion }), loadAvgStart: loadAtStart, loadAvgEnd: loadAtEnd } as Record<string, unknown>,
  thresholds: {
    rule: 'least-squares slope × the judged window ≤ limit, fitted to the judged samples (after the warm-up), each as the mean over the fault cycle (cycleMs) that ends at it; answers are checked during the warm-up too',
    rss: 'max(16 MiB, 10 % of mean)',
    heap: 'max(8 MiB, 20 % of mean), main thread (nodejs_heap_size_used_bytes)',
    fds: 'max(16, 25 % of mean)',
    lostChecks: '≤ 5 % of checks',
  },
  trends,
  checks: {
    total: checks.length,
    ok: checks.length - wrong.length - lost.length - disagreed.length,
    wrong: wrong.length,
    checkDisagreed: disagreed.length,
    checkDisagreedExamples: disagreed.slice(0, 10),
    lost: lost.length,
    lostByKind: Object.fromEntries([...new Set(lost.map((c) => c.what))].map((w) => [w, lost.filter((c) => c.what === w).length])),
    wrongExamples: wrong.slice(0, 10),
  },
  faults: { reloadsSent, reloadsSucceeded: seen.reloadOk, reloadsFailed: seen.reloadFailed, workersTerminated: killsSent, workerExitsLogged: seen.workerExited, workersRestarted: seen.workerRestarted, changes, apiFailures },
  load,
  serverErrorLines: errorLines,
  samples,
  events,
};

fs.mkdirSync(outDir, { recursive: true });
const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
const jsonPath = path.join(outDir, `soak-${stamp}.json`);
const svgPath = path.join(outDir, `soak-${stamp}.svg`);
fs.writeFileSync(jsonPath, JSON.stringify(result, null, 2) + '\n');
const svg = renderSoakSvg();
fs.writeFileSync(svgPath, svg);
if (values['docs-svg']) fs.writeFileSync(path.join(REPO_DIR, 'docs', 'soak.svg'), svg);
await stopAll();

log(`${pass ? 'PASS' : 'FAIL'}: warm-up ${warmupText} (${samples.length - after.length} samples, not judged), then ${values.duration} judged (${after.length} samples over ${(windowMs / 1000).toFixed(0)} s); ${checks.length} checks (${wrong.length} wrong, ${lost.length} lost, ${disagreed.length} where a health check disagreed with the harness), reloads ${seen.reloadOk}/${reloadsSent}, worker restarts ${seen.workerRestarted}/${killsSent}, changes ${changes}`);
for (const t of trends) log(`  ${t.metric}: mean ${fmt(t.metric, t.mean)}, growth ${fmt(t.metric, t.growth)} (limit ${fmt(t.metric, t.limit)}) ${t.pass ? 'ok' : 'TRENDS UP'}`);
if (load.dnsperf !== null) log(`  dnsperf: ${load.dnsperf.qps.toFixed(0)} q/s, ${load.dnsperf.lost} of ${load.dnsperf.sent} lost`);
log(`  pipelined TCP answers ${load.pipelined.answers}, non-reading connections ${load.nonReading.connections}, slow connections ${load.slow.connections}, flood ${load.flood.sent} sent / ${load.flood.nxdomain} NXDOMAIN`);
for (const r of reasons) log(`  reason: ${r}`);
log(`wrote ${path.relative(process.cwd(), jsonPath)} and ${path.relative(process.cwd(), svgPath)}`);
process.exit(pass ? 0 : 1);

// ─── the plot ───────────────────────────────────────────────────────────────

function renderSoakSvg(): string {
  const W = 980;
  const panelH = 150;
  const gap = 46;
  const left = 100;
  const right = 900;
  const top = 86;
  const panels = [
    { title: 'RSS, MiB', pick: (s: Sample) => s.rssBytes / 2 ** 20, t: trends[0], scale: 2 ** 20 },
    { title: 'main-thread heap used, MiB', pick: (s: Sample) => s.heapBytes / 2 ** 20, t: trends[1], scale: 2 ** 20 },
    { title: 'open file descriptors', pick: (s: Sample) => s.fds, t: trends[2], scale: 1 },
  ];
  const checksTop = top + panels.length * (panelH + gap);
  const H = checksTop + 90;
  const xMax = Math.max(runMs, samples.length > 0 ? samples[samples.length - 1].tMs : 1);
  const x = (ms: number): number => left + ((right - left) * ms) / xMax;
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="20" y="24" font-size="16" font-weight="bold">${esc(`OpenGSLB soak, ${warmupText} warm-up + ${values.duration} judged: ${pass ? 'PASS' : 'FAIL'} (${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`)}</text>`);
  out.push(
    `<text x="20" y="42" fill="#555">${esc(`${String(result.machine.cpuModel ?? '')} × ${String(result.machine.nproc ?? '')}, ${workers} DNS worker(s); load avg ${loadAtStart[0].toFixed(1)} → ${loadAtEnd[0].toFixed(1)}; dnsperf ${load.dnsperf === null ? '?' : `${(load.dnsperf.qps / 1000).toFixed(1)}k q/s`}`)}</text>`,
  );
  out.push(`<text x="20" y="58" fill="#555">${esc(`grey: the ${warmupText} warm-up, not judged; orange: mean over the last fault cycle (${cycleMs / 1000} s); dashed: its least-squares fit, judged`)}</text>`);
  out.push(`<text x="20" y="74" fill="#555">${esc('ticks on top: ▲ reload (SIGHUP)  ✕ DNS worker terminated  · backend or override change')}</text>`);
  panels.forEach((p, i) => {
    const pt = top + i * (panelH + gap);
    const pb = pt + panelH;
    const ys = samples.map(p.pick).filter((v) => Number.isFinite(v));
    const lo0 = ys.length > 0 ? Math.min(...ys) : 0;
    const hi0 = ys.length > 0 ? Math.max(...ys) : 1;
    const pad = Math.max(1, (hi0 - lo0) * 0.15);
    const lo = Math.max(0, lo0 - pad);
    const hi = hi0 + pad;
    const y = (v: number): number => pb - ((pb - pt) * (v - lo)) / (hi - lo);
    out.push(`<rect x="${left}" y="${pt}" width="${(x(warmupMs) - left).toFixed(1)}" height="${panelH}" fill="#f1f1f1"/>`);
    out.push(`<rect x="${left}" y="${pt}" width="${right - left}" height="${panelH}" fill="none" stroke="#999"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      out.push(`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${right}" y2="${y(v).toFixed(1)}" stroke="#eaeaea"/>`);
      out.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${esc(v >= 100 ? v.toFixed(0) : v.toFixed(1))}</text>`);
    }
    for (const e of events) {
      const ex = x(e.tMs).toFixed(1);
      if (e.kind === 'reload') out.push(`<text x="${ex}" y="${pt - 3}" text-anchor="middle" fill="#1f5fa8" font-size="9">▲</text>`);
      else if (e.kind === 'worker-kill') {
        out.push(`<line x1="${ex}" y1="${pt}" x2="${ex}" y2="${pb}" stroke="#c0392b" stroke-dasharray="2,3"/>`);
        out.push(`<text x="${ex}" y="${pt - 3}" text-anchor="middle" fill="#c0392b" font-size="10">✕</text>`);
      } else out.push(`<circle cx="${ex}" cy="${pt - 6}" r="1.5" fill="#888"/>`);
    }
    const pts = samples.filter((s) => Number.isFinite(p.pick(s))).map((s) => `${x(s.tMs).toFixed(1)},${y(p.pick(s)).toFixed(1)}`);
    if (pts.length > 0) out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="#1f5fa8" stroke-width="1.5"/>`);
    const means = cycleMeans(p.pick);
    if (means.length > 0) out.push(`<polyline points="${means.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}" fill="none" stroke="#e67e22" stroke-width="1.2"/>`);
    const fitted = fit(means);
    if (after.length > 1) {
      const a = after[0].tMs;
      const b = after[after.length - 1].tMs;
      out.push(`<line x1="${x(a).toFixed(1)}" y1="${y(fitted.intercept + fitted.slope * a).toFixed(1)}" x2="${x(b).toFixed(1)}" y2="${y(fitted.intercept + fitted.slope * b).toFixed(1)}" stroke="${p.t.pass ? '#2e7d32' : '#c0392b'}" stroke-width="2" stroke-dasharray="6,4"/>`);
    }
    const verdict = `${p.t.pass ? 'flat' : 'TRENDS UP'}: ${p.scale === 1 ? p.t.growth.toFixed(1) : (p.t.growth / p.scale).toFixed(2)} over the judged ${(windowMs / 1000).toFixed(0)} s, limit ${p.scale === 1 ? p.t.limit.toFixed(0) : (p.t.limit / p.scale).toFixed(1)}`;
    out.push(`<text x="${left}" y="${pb + 16}" font-weight="bold">${esc(p.title)}</text>`);
    out.push(`<text x="${right}" y="${pb + 16}" text-anchor="end" fill="${p.t.pass ? '#2e7d32' : '#c0392b'}">${esc(verdict)}</text>`);
  });
  // Answer checks: one mark per check, green ok, orange lost, red wrong.
  out.push(`<text x="${left}" y="${checksTop}" font-weight="bold">${esc(`answer checks: ${checks.length - wrong.length - lost.length - disagreed.length} ok, ${lost.length} lost (orange), ${disagreed.length} health check disagreed with the harness (purple), ${wrong.length} wrong (red)`)}</text>`);
  for (const c of checks) {
    const row = c.what === 'app A udp' ? 0 : c.what.startsWith('random') ? 1 : 2;
    const colour = c.result === 'ok' ? '#2e7d32' : c.result === 'lost' ? '#e67e22' : c.result === 'check-disagreed' ? '#8e44ad' : '#c0392b';
    out.push(`<rect x="${(x(c.tMs) - 1).toFixed(1)}" y="${checksTop + 10 + row * 14}" width="2" height="10" fill="${colour}"/>`);
  }
  ['app A (settled)', 'NXDOMAIN', '32 AAAA/TCP'].forEach((label, row) => out.push(`<text x="${left - 6}" y="${checksTop + 19 + row * 14}" text-anchor="end" fill="#555" font-size="10">${esc(label)}</text>`));
  for (let k = 0; k <= 6; k++) {
    const ms = (xMax * k) / 6;
    out.push(`<text x="${x(ms).toFixed(1)}" y="${checksTop + 68}" text-anchor="middle" fill="#555">${esc(ms >= 120_000 ? `${(ms / 60_000).toFixed(0)} min` : `${(ms / 1000).toFixed(0)} s`)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
