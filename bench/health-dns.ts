// Bench only, cold. The DNS answer rate while the overwatch health-checks
// 10 000 servers, against the same config with checks off, in one run:
//
//   bench ──fork──▶ health-scale.ts --role servers   (HTTP servers on 0.0.0.0:P, reusePort)
//         ──spawn─▶ opengslb --config checked.yaml    (10 000 servers, http every 10 s)
//         ──spawn─▶ dnsperf -l D                      (saturation, one name)
//   then the same with unchecked.yaml (type: none), interleaved, R rounds.
//
// Usage: npx node bench/health-dns.ts [--servers 10000] [--interval 10] [--duration 10] [--runs 3] [--workers N] [--keep-alive]
//          [--backend http|raw|nginx] [--outstanding 500] [--node-flags=...]
//   --keep-alive sets health_check.keep_alive: true in checked.yaml (one reused connection per server).
// The HTTP servers are health-scale.ts's: they keep idle connections for 75 s
// (server.keepAliveTimeout, like nginx's default keepalive_timeout; Node's own
// default is 5 s), so a kept connection survives the 10 s interval.
// Every address is in 127.0.0.0/8; nothing leaves the machine.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/cli/runtime-flags.js';
import { CLOCK_TICKS_PER_SEC, readMachineTicks, readProcsTicks, readReapedChildTicks, readRss, readThreadTicks } from './lib/proc.ts';
import { findFreePort } from './lib/targets.ts';
import { backendAddress } from './lib/scenarios.ts';

const { values: args } = parseArgs({
  options: {
    servers: { type: 'string', default: '10000' },
    // Default: the flags production runs with (src/cli/runtime-flags.js); --node-flags= (empty) runs without.
    'node-flags': { type: 'string', default: SERVER_NODE_FLAGS.join(' ') },
    interval: { type: 'string', default: '10' },
    duration: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    // DNS worker threads (dns.workers). Absent: the product's default, one per core,
    // which is how the target is read (docs/health-checks.md, "Scale"). --workers 1 is
    // where one worker answers fastest on a 2-core machine shared with dnsperf.
    workers: { type: 'string' },
    'keep-alive': { type: 'boolean', default: false },
    // Queries dnsperf keeps in flight. 500 is about 5 ms of the worker's work at
    // 100 000 q/s: enough that neither dnsperf nor the worker runs dry while the
    // other is off its core for a scheduler slice (with 100, a 2-core machine shared
    // with the checker and the backends idled up to 15 % of the time). The
    // worker's 1 MiB receive buffer (dns.udp_receive_buffer) holds them all: 0 lost.
    outstanding: { type: 'string', default: '500' },
    // http: node:http servers; raw: a canned reply from a plain net server; nginx: Debian's nginx (see health-scale.ts).
    backend: { type: 'string', default: 'http' },
  },
});
const SERVERS = Number(args.servers);
const DURATION = Number(args.duration);
const RUNS = Number(args.runs);
const ENTRY = new URL('../src/cli/opengslb.js', import.meta.url).pathname;

if (spawnSync('dnsperf', ['-h']).error) {
  process.stderr.write('dnsperf not found: install it with `apt-get install dnsperf`\n');
  process.exit(2);
}


function config(dnsPort: number, httpPort: number, checked: boolean): string {
  const perRegion = 1000;
  const workers = args.workers === undefined ? '' : ` workers: ${args.workers},`;
  const lines = [`dns: { listen_address: "127.0.0.1:${dnsPort}",${workers} zones: [bench.test] }`, 'regions:'];
  for (let r = 0; r * perRegion < SERVERS; r++) {
    lines.push(`  - name: r${r}`);
    lines.push(`    health_check: ${checked ? `{ type: http, interval: ${args.interval}s, timeout: 2s, path: /health${args['keep-alive'] ? ', keep_alive: true' : ''} }` : '{ type: none }'}`);
    lines.push('    servers:');
    for (let i = r * perRegion; i < Math.min(SERVERS, (r + 1) * perRegion); i++) lines.push(`      - { address: ${backendAddress(i)}, port: ${httpPort} }`);
  }
  lines.push('domains:');
  // The queried name answers from r0 (max_answers 1). The overwatch checks only
  // servers some domain answers with (src/overwatch/check-targets.ts), so every
  // other region sits behind a second name that is never queried.
  lines.push('  - { name: app.bench.test, regions: [r0], max_answers: 1 }');
  const rest = Array.from({ length: Math.ceil(SERVERS / perRegion) - 1 }, (_, r) => `r${r + 1}`);
  if (rest.length > 0) lines.push(`  - { name: fleet.bench.test, regions: [${rest.join(', ')}] }`);
  lines.push('logging: { level: warn, format: json }', 'overwatch: { data_dir: ./state }');
  return lines.join('\n') + '\n';
}

async function startOverwatch(file: string): Promise<ChildProcess> {
  const flags = args['node-flags'] === '' ? [] : args['node-flags'].split(' ');
  // With the flags and environment production runs with (src/cli/runtime-flags.js).
  const child = spawn(process.execPath, [...flags, ENTRY, '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...SERVER_ENV } });
  // Ready when it answers: poll with dig (bounded).
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = spawnSync('dig', ['+short', '+tries=1', '+time=1', '@127.0.0.1', '-p', String(dnsPort), 'app.bench.test', 'A'], { encoding: 'utf8' });
    if (r.stdout.trim() !== '') return child;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('overwatch did not start answering within 60 s');
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** Runs dnsperf once; its answer rate and the queries it lost (no answer within its timeout). */
function dnsperf(queryFile: string): { qps: number; lost: number } {
  const r = spawnSync('dnsperf', ['-s', '127.0.0.1', '-p', String(dnsPort), '-d', queryFile, '-l', String(DURATION), '-c', '8', '-q', args.outstanding, '-T', '1', '-O', 'suppress=timeout'], {
    encoding: 'utf8',
    timeout: (DURATION + 20) * 1000,
  });
  const m = /Queries per second:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`no QPS in dnsperf output:\n${r.stdout}\n${r.stderr}`);
  return { qps: Number(m[1]), lost: Number(/Queries lost:\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Two-sided 95 % quantiles of Student's t for 1–30 degrees of freedom; 1.96 beyond.
const T95 = [12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Mean of `xs` and its 95 % confidence interval (t distribution); the interval is null below two values. */
function meanInterval(xs: number[]): { mean: number; low: number; high: number } | null {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return null;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = (T95[n - 2] ?? 1.96) * (sd / Math.sqrt(n));
  return { mean, low: mean - half, high: mean + half };
}

const dir = mkdtempSync(join(tmpdir(), 'opengslb-health-dns-'));
// findFreePort stays below the ephemeral range: the checker opens 1 000 connections per second.
const dnsPort = await findFreePort();
const servers = fork(new URL('./health-scale.ts', import.meta.url), ['--role', 'servers', '--server-threads', '1', '--backend', args.backend], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const children: ChildProcess[] = [servers];
const cleanup = (): void => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
try {
  const [{ port: httpPort, pids: backendPids }] = (await once(servers, 'message')) as [{ port: number; pids: number[] }];
  // The HTTP servers stand in for backends in other data centres: on this
  // 2-core box they would otherwise take CPU from the overwatch as equals, so
  // they run at the lowest priority (their own threads included).
  for (const pid of backendPids) for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), 19);
  const backendTicks = (): number => readProcsTicks(backendPids);
  const files = { checked: join(dir, 'checked.yaml'), idle: join(dir, 'idle.yaml') };
  writeFileSync(files.checked, config(dnsPort, httpPort, true), { mode: 0o600 });
  writeFileSync(files.idle, config(dnsPort, httpPort, false), { mode: 0o600 });
  const queries = join(dir, 'queries.txt');
  writeFileSync(queries, 'app.bench.test A\n');
  const qps: Record<'checked' | 'idle', number[]> = { checked: [], idle: [] };
  const lost: Record<'checked' | 'idle', number[]> = { checked: [], idle: [] };
  const rss: Record<'checked' | 'idle', number[]> = { checked: [], idle: [] };
  // Overwatch CPU per answer (µs), whole process and the DNS worker alone: what
  // checking costs the overwatch itself, apart from what the co-located load
  // generator and backends take from the DNS worker on this machine.
  const cpuPerAnswer: Record<'checked' | 'idle', number[]> = { checked: [], idle: [] };
  const workerPerAnswer: Record<'checked' | 'idle', number[]> = { checked: [], idle: [] };
  const sumTicks = (m: Map<string, number> | null): number => (m === null ? 0 : [...m.values()].reduce((a, b) => a + b, 0));
  // Where the machine's two cores went during each dnsperf run, in % of one core.
  const SHARES = ['dns worker', 'overwatch other threads', 'backends', 'dnsperf', 'softirq', 'rest', 'machine busy'] as const;
  const shares: Record<'checked' | 'idle', Record<(typeof SHARES)[number], number[]>> = {
    checked: Object.fromEntries(SHARES.map((k) => [k, []])) as unknown as Record<(typeof SHARES)[number], number[]>,
    idle: Object.fromEntries(SHARES.map((k) => [k, []])) as unknown as Record<(typeof SHARES)[number], number[]>,
  };
  const dnsWorkerTicks = (m: Map<string, number> | null): number => (m === null ? 0 : [...m].reduce((sum, [name, ticks]) => (name.startsWith('dns-') ? sum + ticks : sum), 0));
  // The DNS worker threads the overwatch really ran (dns-0, dns-1, …), whatever decided their number.
  let workersSeen = 0;
  for (let run = 0; run < RUNS; run++) {
    // Alternate which mode goes first, so a machine that slows down or speeds up
    // over the runs does not favour one mode.
    for (const mode of run % 2 === 0 ? (['idle', 'checked'] as const) : (['checked', 'idle'] as const)) {
      const ow = await startOverwatch(files[mode]);
      children.push(ow);
      // Let start-up settle and, when checked, the second round spread the fleet over its interval.
      await new Promise((res) => setTimeout(res, 15_000));
      const t0 = readThreadTicks(ow.pid);
      const [b0, c0, m0] = [backendTicks(), readReapedChildTicks() ?? 0, readMachineTicks()];
      const { qps: q, lost: lostNow } = dnsperf(queries);
      lost[mode].push(lostNow);
      const t1 = readThreadTicks(ow.pid);
      // dnsperf is the only child reaped during its own run, so the reaped-children delta is its CPU.
      const [b1, c1, m1] = [backendTicks(), readReapedChildTicks() ?? 0, readMachineTicks()];
      const pct = (ticks: number): number => (ticks / CLOCK_TICKS_PER_SEC / DURATION) * 100;
      const worker = dnsWorkerTicks(t1) - dnsWorkerTicks(t0);
      workersSeen = Math.max(workersSeen, [...(t1?.keys() ?? [])].filter((name) => name.startsWith('dns-')).length);
      const other = sumTicks(t1) - sumTicks(t0) - worker;
      const share = shares[mode];
      share['dns worker'].push(pct(worker));
      share['overwatch other threads'].push(pct(other));
      share.backends.push(pct(b1 - b0));
      share.dnsperf.push(pct(c1 - c0));
      share.softirq.push(pct(m1.softirq - m0.softirq));
      share['machine busy'].push(pct(m1.busy - m0.busy));
      share.rest.push(pct(m1.busy - m0.busy - (m1.softirq - m0.softirq)) - pct(worker + other + (b1 - b0) + (c1 - c0)));
      qps[mode].push(q);
      const answers = q * DURATION;
      const usOf = (ticks: number): number => (ticks / CLOCK_TICKS_PER_SEC / answers) * 1e6;
      cpuPerAnswer[mode].push(usOf(sumTicks(t1) - sumTicks(t0)));
      workerPerAnswer[mode].push(usOf(worker));
      const mem = readRss(ow.pid);
      const mb = mem === null ? null : mem.rssBytes / 1048576;
      if (mb !== null) rss[mode].push(mb);
      process.stderr.write(`run ${run + 1} ${mode}: ${Math.round(q)} q/s (${lostNow} lost), RSS ${mb?.toFixed(0)} MB, overwatch CPU ${cpuPerAnswer[mode].at(-1)?.toFixed(2)} µs/answer (DNS worker ${workerPerAnswer[mode].at(-1)?.toFixed(2)})\n`);
      ow.kill('SIGTERM');
      await once(ow, 'exit');
    }
  }
  const idle = median(qps.idle);
  const checked = median(qps.checked);
  // Each round's two runs were a minute apart at most: their ratio is less
  // exposed to a machine whose speed drifts than the ratio of the medians.
  const paired = qps.checked.map((c, i) => c / qps.idle[i]);
  const interval = meanInterval(paired);
  const intervalText = interval === null ? '' : `; mean ${interval.mean.toFixed(3)}, 95 % interval ${interval.low.toFixed(3)}–${interval.high.toFixed(3)}`;
  process.stdout.write(
    `servers: ${SERVERS} (http${args['keep-alive'] ? ' keep-alive' : ''}, ${args.backend} backends every ${args.interval} s in "checked"; type none in "idle"); ${RUNS} × ${DURATION} s each, interleaved, ${workersSeen} DNS worker(s)${args.workers === undefined ? ' (the default: one per core)' : ''}, dnsperf -q ${args.outstanding}\n` +
      `idle    median ${Math.round(idle)} q/s  runs ${qps.idle.map(Math.round).join(', ')}\n` +
      `checked median ${Math.round(checked)} q/s  runs ${qps.checked.map(Math.round).join(', ')}\n` +
      `checked / idle: ${(checked / idle).toFixed(3)} (medians); per round ${paired.map((r) => r.toFixed(3)).join(', ')}, median ${median(paired).toFixed(3)}${intervalText}\n` +
      `queries lost (dnsperf): idle ${lost.idle.join(', ')}; checked ${lost.checked.join(', ')}\n` +
      `overwatch RSS after each run (MB): idle ${rss.idle.map((x) => x.toFixed(0)).join(', ')}; checked ${rss.checked.map((x) => x.toFixed(0)).join(', ')}\n` +
      `overwatch CPU per answer, median (µs): idle ${median(cpuPerAnswer.idle).toFixed(2)}, checked ${median(cpuPerAnswer.checked).toFixed(2)}; ` +
      `idle / checked ${(median(cpuPerAnswer.idle) / median(cpuPerAnswer.checked)).toFixed(3)} (the rate ratio the overwatch's own CPU allows)\n` +
      `DNS worker CPU per answer, median (µs): idle ${median(workerPerAnswer.idle).toFixed(2)}, checked ${median(workerPerAnswer.checked).toFixed(2)}\n` +
      `CPU during the dnsperf runs, median % of one core (softirq is the machine's, partly inside the processes' own figures):\n` +
      SHARES.map((k) => `  ${k.padEnd(24)} idle ${median(shares.idle[k]).toFixed(1).padStart(6)}   checked ${median(shares.checked[k]).toFixed(1).padStart(6)}\n`).join(''),
  );
} finally {
  cleanup();
}
