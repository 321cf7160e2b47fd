// Bench only, cold. Scale of the health checker: N HTTP targets (default
// 10 000) every 10 s against real HTTP servers on loopback, with the checker in
// its own process so its CPU and RSS are its own.
//
// Usage: npx node bench/health-scale.ts [--targets 10000] [--interval 10] [--duration 60]
//          [--timeout 2] [--server-threads 2] [--type http|tcp] [--body-match TEXT] [--keep-alive] [--json]
//          [--semi-space MB]   (runs the checker with --max-semi-space-size=MB)
//          [--prof DIR]        (writes a V8 CPU profile of the checker process into DIR)
//        HEALTH_SCALE_SPACES=1 adds V8 heap-space sizes to the figures.
//        --keep-alive sets health_check.keep_alive: one connection per target, reused every interval.
//        --backend raw serves each request from a plain net server with a canned HTTP/1.1 reply
//          (no HTTP parser): the servers stand in for backends in other data centres, and this
//          keeps their CPU, which the real ones would spend elsewhere, out of the figures.
//        --backend nginx runs Debian's nginx (apt-get install nginx-light) as the backends: a
//          real HTTP server, and the cheapest per request of the three.
//
//   bench ──fork──▶ health-scale.ts --role servers  (T worker threads, one node:http server each,
//       │                                           all on 0.0.0.0:P with reusePort)   ──IPC──▶ {port}
//       └─fork──▶ health-scale.ts --role checker   (HealthScheduler, N targets 127.1.x.y:P)
//                   firstRound() ──IPC──▶ {firstRoundMs}
//                   then D seconds: process.cpuUsage(), RSS, probe counters ──IPC──▶ {figures}
//
// Every target has its own loopback address (127.1.0.1, 127.1.0.2, …) so the
// servers see N distinct peers, as a real overwatch would. Traffic only ever
// goes to 127.0.0.0/8; the servers drop any connection from elsewhere.
//
// The servers keep idle connections for 75 s (server.keepAliveTimeout, like
// nginx's default keepalive_timeout) instead of Node's 5 s, so a kept
// connection survives a 10 s interval as it would against a real backend;
// headersTimeout is kept above it (the usual advice for Node servers with long
// keep-alive timeouts). Probes without keep_alive send Connection: close, so
// the setting does not change their runs.

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { HealthScheduler } from '../src/health/scheduler.ts';
import { targetKey } from '../src/health/types.ts';
import type { CheckSpec, CheckTarget, HealthSink } from '../src/health/types.ts';
import { createLogger } from '../src/log/logger.ts';
import { backendAddress } from './lib/scenarios.ts';
import { cpuPct, readMachineTicks, readProcsTicks } from './lib/proc.ts';
import { findFreePort } from './lib/targets.ts';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'bench' },
    targets: { type: 'string', default: '10000' },
    interval: { type: 'string', default: '10' },
    duration: { type: 'string', default: '60' },
    timeout: { type: 'string', default: '2' },
    'server-threads': { type: 'string', default: '2' },
    type: { type: 'string', default: 'http' },
    'body-match': { type: 'string' },
    'keep-alive': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'http' },
    port: { type: 'string', default: '0' },
    json: { type: 'boolean', default: false },
    prof: { type: 'string' },
    'semi-space': { type: 'string' },
  },
});


// ── role: HTTP server thread ────────────────────────────────────────────────

const HEAD_END = Buffer.from('\r\n\r\n');
const CLOSE_HEADER = /^connection:[ \t]*close/im;

/**
 * A minimal HTTP/1.1 server on a plain socket: one canned 200 per request head
 * (requests carry no body), Connection: close honoured, idle connections kept
 * 75 s. Cheaper than node:http by the parser and the request/response objects.
 */
function rawServer(body: Buffer): net.Server {
  const reply = (close: boolean): Buffer =>
    Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body.toString()}`);
  const keep = reply(false);
  const close = reply(true);
  return net.createServer((socket) => {
    let pending: Buffer = Buffer.alloc(0);
    socket.setTimeout(75_000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf(HEAD_END); end >= 0; end = pending.indexOf(HEAD_END)) {
        const head = pending.subarray(0, end).toString('latin1');
        pending = pending.subarray(end + HEAD_END.length);
        if (CLOSE_HEADER.test(head)) {
          socket.end(close);
          return;
        }
        socket.write(keep);
      }
      if (pending.length > 16_384) socket.destroy();
    });
  });
}

function serveThread(port: number): void {
  const body = Buffer.from('{"status":"ok"}\n');
  if (workerData.backend === 'raw') {
    const server = rawServer(body);
    server.on('connection', (socket) => {
      if (!socket.remoteAddress?.startsWith('127.') && !socket.remoteAddress?.startsWith('::ffff:127.')) socket.destroy();
    });
    server.listen({ port, host: '0.0.0.0', reusePort: true }, () => {
      parentPort?.postMessage({ port: (server.address() as AddressInfo).port });
    });
    return;
  }
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  });
  // 0.0.0.0 is the only way to accept every 127.1.x.y without 10 000 listeners; refuse non-loopback peers.
  server.on('connection', (socket) => {
    if (!socket.remoteAddress?.startsWith('127.') && !socket.remoteAddress?.startsWith('::ffff:127.')) socket.destroy();
  });
  // See the header: idle connections live 75 s, as with nginx's default keepalive_timeout.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 76_000;
  server.listen({ port, host: '0.0.0.0', reusePort: true }, () => {
    parentPort?.postMessage({ port: (server.address() as AddressInfo).port });
  });
}

/**
 * nginx (Debian's package) as the backends: one server block on 0.0.0.0:port
 * answering /health with a fixed 200, no access log, keepalive_timeout 75 s
 * (its default), one worker process per server thread. Returns its master
 * process; nginx runs in the foreground (daemon off) and goes with SIGTERM.
 */
async function startNginx(threads: number): Promise<{ port: number; nginx: ChildProcess }> {
  // nginx binds the port itself: one that is free, below the range the checker's own connections draw from.
  const port = await findFreePort();
  const dir = mkdtempSync(join(tmpdir(), 'opengslb-nginx-'));
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      `worker_processes ${threads};`,
      'daemon off;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 16384; }',
      'http {',
      '  access_log off;',
      '  keepalive_timeout 75s;',
      '  keepalive_requests 1000000;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${join(dir, k)};`),
      '  server {',
      `    listen 0.0.0.0:${port} reuseport backlog=4096;`,
      '    allow 127.0.0.0/8;',
      '    deny all;',
      '    location = /health { default_type application/json; return 200 \'{"status":"ok"}\\n\'; }',
      '  }',
      '}',
    ].join('\n') + '\n',
  );
  const nginx = spawn('nginx', ['-e', join(dir, 'error.log'), '-c', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
  nginx.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const [err] = await Promise.race([once(nginx, 'error'), once(nginx, 'exit').then(() => [new Error('nginx exited at start')]), waitForPort(port).then(() => [null])]);
  if (err !== null) throw new Error(`could not start nginx (apt-get install nginx-light): ${(err as Error).message}`);
  return { port, nginx };
}

/** Resolves once something accepts connections on 127.0.0.1:port (polls every 50 ms). */
async function waitForPort(port: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(true));
      s.on('error', () => resolve(false));
      s.on('connect', () => s.destroy());
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Process ids of a process's children (Linux), e.g. nginx's workers. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function runServers(): Promise<void> {
  const threads = Number(args['server-threads']);
  if (args.backend === 'nginx') {
    const { port, nginx } = await startNginx(threads);
    process.on('SIGTERM', () => {
      nginx.kill('SIGTERM');
      process.exit(0);
    });
    // The processes doing the backends' work, for the parent's CPU figures and priority.
    process.send?.({ port, pids: [process.pid, nginx.pid, ...childPids(nginx.pid as number)] });
    return;
  }
  const file = new URL(import.meta.url);
  // The first thread picks the port; the others join it with reusePort.
  let port = 0;
  for (let i = 0; i < threads; i++) {
    const w = new Worker(file, { workerData: { port, backend: args.backend }, argv: ['--role', 'server-thread'] });
    const [msg] = (await once(w, 'message')) as [{ port: number }];
    port = msg.port;
  }
  process.send?.({ port, pids: [process.pid] });
}

/** Reads user+system CPU ticks per thread of this process (Linux), keyed by "tid comm". */
function threadTicks(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // Fields 14 and 15 of proc(5) (utime, stime) are at 11 and 12 after the comm.
      out.set(`${tid} ${comm}`, Number(fields[11]) + Number(fields[12]));
    }
  } catch {
    // Not Linux: no per-thread figures.
  }
  return out;
}

function round2(x: number | undefined): number | null {
  return x === undefined ? null : Math.round(x * 100) / 100;
}

// ── role: checker ───────────────────────────────────────────────────────────

async function runChecker(): Promise<void> {
  const n = Number(args.targets);
  const port = Number(args.port);
  const intervalMs = Number(args.interval) * 1000;
  const durationMs = Number(args.duration) * 1000;
  const bodyMatch = args['body-match'] === undefined ? null : { kind: 'substring' as const, pattern: args['body-match'] };
  const targets: CheckTarget[] = [];
  for (let i = 0; i < n; i++) {
    const spec: CheckSpec = {
      type: args.type as CheckSpec['type'],
      address: backendAddress(i),
      port,
      host: null,
      path: '/health',
      expectedStatus: [[200, 399]],
      headers: {},
      bodyMatch,
      tlsVerify: true,
      keepAlive: args['keep-alive'] === true,
      intervalMs,
      timeoutMs: Number(args.timeout) * 1000,
      failureThreshold: 3,
      successThreshold: 2,
      emaAlpha: 0.3,
    };
    const endpoint = `${spec.address}:${port}`;
    targets.push({ key: targetKey(spec), spec, slots: [i], servers: [{ key: `bench/${endpoint}`, label: `bench/${endpoint}`, region: 'bench', endpoint }] });
  }
  const health = new Uint8Array(n);
  let sinkCalls = 0;
  const sink: HealthSink = {
    setHealth(slots, state) {
      for (const s of slots) health[s] = state;
      sinkCalls++;
    },
    setLatency() {
      sinkCalls++;
    },
    setLastUp() {
      sinkCalls++;
    },
  };
  let logLines = 0;
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) logLines++;
      done();
    },
  });
  const scheduler = new HealthScheduler({ sink, logger: createLogger({ level: 'info', format: 'json' }, logStream) });
  const memAt: Record<string, string> = {};
  const noteMem = (label: string): void => {
    const u = process.memoryUsage();
    memAt[label] = `rss ${(u.rss / 1e6).toFixed(0)} heapTotal ${(u.heapTotal / 1e6).toFixed(0)} heapUsed ${(u.heapUsed / 1e6).toFixed(0)} external ${(u.external / 1e6).toFixed(0)}`;
  };
  noteMem('before update');
  const t0 = performance.now();
  scheduler.update(targets);
  await scheduler.firstRound();
  const firstRoundMs = performance.now() - t0;
  noteMem('after first round');
  const afterFirst = scheduler.status();
  const healthyAfterFirst = afterFirst.filter((s) => s.state === 'healthy').length;
  const reasons: Record<string, number> = {};
  for (const s of afterFirst) if (s.state !== 'healthy') reasons[s.lastError ?? '?'] = (reasons[s.lastError ?? '?'] ?? 0) + 1;
  process.send?.({ phase: 'first-round', firstRoundMs, healthyAfterFirst, reasons });

  // Let the first round's spread settle into the steady rhythm before measuring.
  await new Promise((r) => setTimeout(r, Math.min(intervalMs, 5000)));
  process.send?.({ phase: 'measuring' });
  const probes0 = scheduler.counters.probes_total.ok + scheduler.counters.probes_total.fail;
  const fails0 = scheduler.counters.probes_total.fail;
  const cpu0 = process.cpuUsage();
  const ticks0 = threadTicks();
  const w0 = performance.now();
  let rssMax = 0;
  const rssTimer = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
  }, 500);
  await new Promise((r) => setTimeout(r, durationMs));
  clearInterval(rssTimer);
  const cpu = process.cpuUsage(cpu0);
  const ticks1 = threadTicks();
  const wallMs = performance.now() - w0;
  const probes = scheduler.counters.probes_total.ok + scheduler.counters.probes_total.fail - probes0;
  const fails = scheduler.counters.probes_total.fail - fails0;
  const status = scheduler.status();
  const mem = process.memoryUsage();
  const lastLatencies = status.map((s) => s.lastLatencyMs ?? NaN).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const latencies = status.map((s) => s.emaLatencyMs ?? NaN).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const figures = {
    targets: n,
    intervalSec: intervalMs / 1000,
    type: args.type,
    keepAlive: args['keep-alive'] === true,
    firstRoundMs: Math.round(firstRoundMs),
    healthyAfterFirst,
    measuredSec: Math.round(wallMs / 100) / 10,
    cpuPctOfOneCore: Math.round(((cpu.user + cpu.system) / 1000 / wallMs) * 1000) / 10,
    cpuUserPct: Math.round((cpu.user / 1000 / wallMs) * 1000) / 10,
    cpuSystemPct: Math.round((cpu.system / 1000 / wallMs) * 1000) / 10,
    rssMb: Math.round(mem.rss / 1e5) / 10,
    rssMaxMb: Math.round(Math.max(rssMax, mem.rss) / 1e5) / 10,
    heapUsedMb: Math.round(mem.heapUsed / 1e5) / 10,
    probesPerSec: Math.round((probes / wallMs) * 10000) / 10,
    failedProbes: fails,
    allHealthy: status.every((s) => s.state === 'healthy'),
    healthyAtEnd: status.filter((s) => s.state === 'healthy').length,
    emaLatencyMsP50: round2(latencies[Math.floor(latencies.length * 0.5)]),
    emaLatencyMsP99: round2(latencies[Math.floor(latencies.length * 0.99)]),
    lastLatencyMsP50: round2(lastLatencies[Math.floor(lastLatencies.length * 0.5)]),
    lastLatencyMsP99: round2(lastLatencies[Math.floor(lastLatencies.length * 0.99)]),
    logLines,
    sinkCalls,
  };
  // Per-thread CPU as % of one core (clock ticks are 1/100 s on Linux).
  const threads: Record<string, number> = {};
  for (const [k, v] of ticks1) {
    const pct = Math.round(((v - (ticks0.get(k) ?? 0)) * 10 / wallMs) * 1000) / 10;
    if (pct > 0) threads[k] = pct;
  }
  // Live heap after a full GC (the checker runs with --expose-gc): what the targets really hold.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    const after = process.memoryUsage();
    Object.assign(figures, { heapLiveMb: Math.round(after.heapUsed / 1e5) / 10, rssAfterGcMb: Math.round(after.rss / 1e5) / 10 });
  }
  noteMem('end');
  if (process.env.HEALTH_SCALE_SPACES) {
    const spaces = (await import('node:v8')).getHeapSpaceStatistics().map((sp) => `${sp.space_name} ${(sp.space_size / 1e6).toFixed(1)}/${(sp.space_used_size / 1e6).toFixed(1)}`);
    Object.assign(figures, { spaces });
  }
  Object.assign(figures, { threads, memAt });
  scheduler.stop();
  // Exit (rather than wait for the parent's SIGTERM) so --cpu-prof can write its profile.
  process.send?.({ phase: 'done', figures }, () => process.exit(0));
}

// ── role: bench (parent) ────────────────────────────────────────────────────

function forkRole(role: string, extra: string[], execArgv: string[] = []): ChildProcess {
  return fork(new URL(import.meta.url), ['--role', role, ...extra], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
}

async function runBench(): Promise<void> {
  const n = Number(args.targets);
  // 127.1.0.1 … 127.255.255.255: every target stays inside 127.0.0.0/8.
  if (!Number.isInteger(n) || n < 1 || n > 254 * 65536) {
    console.error(`--targets must be an integer from 1 to ${254 * 65536}`);
    process.exit(2);
  }
  if (args.type !== 'http' && args.type !== 'tcp') {
    console.error('--type must be http or tcp (the bench servers speak plain HTTP)');
    process.exit(2);
  }
  if (args['keep-alive'] && args.type !== 'http') {
    console.error('--keep-alive applies to --type http only');
    process.exit(2);
  }
  for (const k of ['interval', 'duration', 'timeout', 'server-threads'] as const) {
    if (!(Number(args[k]) > 0)) {
      console.error(`--${k} must be a positive number`);
      process.exit(2);
    }
  }
  const children: ChildProcess[] = [];
  const stopAll = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.on('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  try {
    if (!['http', 'raw', 'nginx'].includes(args.backend as string)) {
      console.error('--backend must be http, raw or nginx');
      process.exit(2);
    }
    const servers = forkRole('servers', ['--server-threads', args['server-threads'] as string, '--backend', args.backend as string]);
    children.push(servers);
    const [ready] = (await once(servers, 'message')) as [{ port: number; pids: number[] }];
    let window: { m0: ReturnType<typeof readMachineTicks>; b0: number; at: number } | null = null;
    const forwarded = ['targets', 'interval', 'duration', 'timeout', 'type'].flatMap((k) => [`--${k}`, String(args[k as keyof typeof args])]);
    if (args['body-match'] !== undefined) forwarded.push('--body-match', args['body-match']);
    if (args['keep-alive']) forwarded.push('--keep-alive');
    const prof = [
      '--expose-gc',
      ...(args['semi-space'] === undefined ? [] : [`--max-semi-space-size=${args['semi-space']}`]),
      ...(args.prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${args.prof}`]),
    ];
    const checker = forkRole('checker', [...forwarded, '--port', String(ready.port)], prof);
    children.push(checker);
    if (!args.json) {
      console.log(`servers on 0.0.0.0:${ready.port} (${args['server-threads']} threads); ${args.targets} ${args.type}${args['keep-alive'] ? ' keep-alive' : ''} targets every ${args.interval} s`);
    }
    for (;;) {
      const [msg] = (await once(checker, 'message')) as [{ phase: string; [k: string]: unknown }];
      if (msg.phase === 'measuring') {
        window = { m0: readMachineTicks(), b0: readProcsTicks(ready.pids), at: performance.now() };
      } else if (msg.phase === 'first-round') {
        if (!args.json) console.log(`first round: ${Math.round(msg.firstRoundMs as number)} ms, ${msg.healthyAfterFirst as number} healthy`, msg.reasons);
        if (!args.json) console.log(`measuring for ${args.duration} s …`);
      } else if (msg.phase === 'done') {
        if (window !== null) {
          // What checking costs the whole machine: the checker, the backends, and the
          // kernel's share of both ends of every connection (softirq included).
          const seconds = (performance.now() - window.at) / 1000;
          const m1 = readMachineTicks();
          Object.assign(msg.figures as Record<string, unknown>, {
            machineBusyPct: cpuPct(window.m0.busy, m1.busy, seconds),
            machineSoftirqPct: cpuPct(window.m0.softirq, m1.softirq, seconds),
            backendsPct: cpuPct(window.b0, readProcsTicks(ready.pids), seconds),
          });
        }
        if (args.json) console.log(JSON.stringify(msg.figures));
        else {
          for (const [k, v] of Object.entries(msg.figures as Record<string, unknown>)) {
            console.log(`${k.padEnd(18)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
          }
        }
        if (checker.exitCode === null) await once(checker, 'exit');
        break;
      }
    }
  } finally {
    stopAll();
  }
}

if (!isMainThread) serveThread((workerData as { port: number }).port);
else if (args.role === 'servers') await runServers();
else if (args.role === 'checker') await runChecker();
else await runBench();
