// Bench only, main thread, cold. End-to-end load test: dnsperf at saturation on
// loopback against the bare dgram responder (the machine's ceiling) and the
// real server, runs interleaved, headline = engine/bare ratio of median QPS.
//
// Usage: npx node bench/e2e.ts [--runs 3] [--duration 10] [--workers 1]
//          [--target bare|engine] [--quick] [--percentiles] [--clients 8] [--outstanding 100]
//
//   e2e ──spawn──▶ bare-responder.ts --port 0      ──stdout──▶ {"ready":true,"port":P}
//       ──spawn──▶ src/cli/opengslb.js --config Y  ◀──poll──── DNS probe until it answers
//       ──spawn──▶ dnsperf -l D (stdout → temp file; this process stays idle while it runs)
//       repeat: bare, engine, bare, engine, … then median per target → table + JSON
//
// The e2e process reads nothing while dnsperf runs: on a 2-core box a third busy
// process would steal time from the target or the load generator.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

type TargetName = 'bare' | 'engine';

interface Options {
  readonly runs: number;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly workers: number;
  readonly targets: readonly TargetName[];
  readonly clients: number;
  readonly outstanding: number;
  readonly percentiles: boolean;
  readonly quick: boolean;
  /** Absolute path of the engine entry point (default src/cli/opengslb.js). */
  readonly engineEntry: string;
}

/** Figures parsed from one dnsperf run, plus CPU used by each side. */
interface RunFigures {
  target: TargetName;
  run: number;
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  runTimeSec: number;
  avgLatencyMs: number;
  minLatencyMs: number;
  maxLatencyMs: number;
  stddevLatencyMs: number;
  responseCodes: Record<string, number>;
  /** CPU time of the target process (all threads) over the run, as % of one core; null off Linux. */
  targetCpuPct: number | null;
  /** CPU time of dnsperf over the run, as % of one core; null off Linux. */
  dnsperfCpuPct: number | null;
  /** Only with --percentiles (dnsperf -v): per-query latency percentiles in ms. */
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  /** dnsperf's statistics block, verbatim. */
  dnsperfStats: string;
}

interface RunningTarget {
  readonly name: TargetName;
  readonly child: ManagedChild;
  readonly port: number;
  readonly command: readonly string[];
  /** The answer to the readiness probe, e.g. ["10.0.0.1"]. */
  readonly probeAnswer: readonly string[];
}

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_DIR = path.dirname(BENCH_DIR);
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const BARE_ENTRY = path.join(BENCH_DIR, 'bare-responder.ts');
const ENGINE_ENTRY = path.join(REPO_DIR, 'src', 'cli', 'opengslb.js');

const QNAME = 'app.bench.test';
const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const PROBE_TIMEOUT_MS = 500;
const PROBE_INTERVAL_MS = 200;
const KILL_GRACE_MS = 3_000;
// dnsperf stops sending at -l, then waits up to -t (5 s default) for stragglers.
const DNSPERF_GRACE_MS = 20_000;
const TAIL_BYTES = 8_192;
// Per-query latency histogram (--percentiles): 1 µs buckets up to 1 s, plus overflow.
const HIST_MAX_US = 1_000_000;

/* ───────────────────────────── options ───────────────────────────── */

function fail(message: string, code = 1): never {
  process.stderr.write(`e2e: ${message}\n`);
  process.exit(code);
}

function readInt(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) fail(`--${name}: "${raw}" is not an integer in ${min}-${max}`, 2);
  return value;
}

/** Parses the command line; exits 2 on a bad flag. */
function readOptions(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        runs: { type: 'string' },
        duration: { type: 'string' },
        workers: { type: 'string' },
        target: { type: 'string' },
        clients: { type: 'string' },
        outstanding: { type: 'string' },
        'engine-entry': { type: 'string' },
        quick: { type: 'boolean', default: false },
        percentiles: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    });
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err), 2);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(
      'usage: npx node bench/e2e.ts [--runs 3] [--duration 10] [--workers 1] [--target bare|engine]\n' +
        '                             [--quick] [--percentiles] [--clients 8] [--outstanding 100]\n' +
        '                             [--engine-entry src/cli/opengslb.js]\n' +
        '  --quick        1 run of 3 s per target (explicit --runs/--duration still win)\n' +
        '  --percentiles  dnsperf -v: per-query p50/p99/p99.9; costs dnsperf CPU, so QPS drops\n' +
        '  --engine-entry another build of the server to bench (same --config contract)\n',
    );
    process.exit(0);
  }
  let targets: TargetName[] = ['bare', 'engine'];
  if (v.target !== undefined) {
    if (v.target !== 'bare' && v.target !== 'engine') fail(`--target: "${v.target}" is not one of bare, engine`, 2);
    targets = [v.target];
  }
  const quick = v.quick === true;
  return {
    runs: readInt('runs', v.runs, quick ? 1 : 3, 1, 100),
    durationSec: readInt('duration', v.duration, quick ? 3 : 10, 1, 600),
    warmupSec: quick ? 1 : 2,
    workers: readInt('workers', v.workers, 1, 1, 64),
    targets,
    clients: readInt('clients', v.clients, 8, 1, 256),
    outstanding: readInt('outstanding', v.outstanding, 100, 1, 65_535),
    percentiles: v.percentiles === true,
    quick,
    engineEntry: path.resolve(v['engine-entry'] ?? ENGINE_ENTRY),
  };
}

/* ───────────────────────── child processes ───────────────────────── */

/** A spawned process whose output is drained into bounded tails and which cleanup() can always stop. */
class ManagedChild {
  readonly proc: ChildProcess;
  readonly label: string;
  readonly exited: Promise<void>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  hasExited = false;
  stdoutTail = '';
  stderrTail = '';

  constructor(label: string, proc: ChildProcess) {
    this.label = label;
    this.proc = proc;
    liveChildren.add(this);
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.hasExited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        liveChildren.delete(this);
        resolve();
      });
    });
    // Drain both pipes (a full pipe would stall the child) into bounded tails.
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdoutTail = (this.stdoutTail + chunk).slice(-TAIL_BYTES);
    });
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-TAIL_BYTES);
    });
  }

  /** Describes how the child ended plus the end of its output, for error messages. */
  describe(): string {
    const how = this.hasExited ? `exited (code ${this.exitCode}, signal ${this.exitSignal})` : 'still running';
    const out = this.stdoutTail.trim().split('\n').slice(-40).join('\n    ');
    const err = this.stderrTail.trim().split('\n').slice(-40).join('\n    ');
    return `${this.label} ${how}\n  stdout:\n    ${out || '(empty)'}\n  stderr:\n    ${err || '(empty)'}`;
  }

  /** Stops the child: SIGTERM, then SIGKILL after 3 s. Resolves once it has exited. */
  async stop(): Promise<void> {
    if (this.hasExited) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!this.hasExited) this.proc.kill('SIGKILL');
    }, KILL_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

const liveChildren = new Set<ManagedChild>();
let tempDir: string | null = null;
/** Set by SIGINT/SIGTERM: the signal handler owns cleanup and the exit code from then on. */
let stopping = false;

/** Stops every child still running and removes the temp dir. Safe to call twice. */
async function cleanup(): Promise<void> {
  const stops: Promise<void>[] = [];
  for (const child of liveChildren) stops.push(child.stop());
  await Promise.all(stops);
  if (tempDir !== null) {
    fs.rmSync(tempDir, { recursive: true, force: true });
    tempDir = null;
  }
}

function installSignalHandlers(): void {
  const onSignal = (signal: NodeJS.Signals, code: number): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\ne2e: ${signal}: stopping spawned processes\n`);
    cleanup().finally(() => process.exit(code));
  };
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
  // Last resort if something exits the process without cleanup(): no orphans.
  process.on('exit', () => {
    for (const child of liveChildren) child.proc.kill('SIGKILL');
  });
}

/* ─────────────────────────────── DNS ─────────────────────────────── */

/** Finds a port that is free for both UDP and TCP on 127.0.0.1 (the engine may bind both). */
async function findFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, HOST, () => resolve());
    });
    const port = udp.address().port;
    const tcpFree = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, HOST, () => server.close(() => resolve(true)));
    });
    udp.close();
    if (tcpFree) return port;
  }
  throw new Error('no port free for both UDP and TCP on 127.0.0.1 after 20 attempts');
}

interface ProbeResult {
  readonly rcode: number;
  readonly aa: boolean;
  readonly addresses: string[];
}

/** Sends one A query for QNAME and resolves with the decoded reply, or null after timeoutMs. */
function probeDns(port: number, timeoutMs: number): Promise<ProbeResult | null> {
  const id = Math.floor(Math.random() * 0x10000);
  const query = dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type: 'A', name: QNAME }] });
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    let settled = false;
    const finish = (result: ProbeResult | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on('error', () => finish(null));
    socket.on('message', (msg: Buffer) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      let decoded;
      try {
        decoded = dnsPacket.decode(msg);
      } catch {
        // A reply dns-packet cannot decode is not a ready server; keep polling.
        finish(null);
        return;
      }
      const addresses: string[] = [];
      for (const answer of decoded.answers ?? []) {
        if (answer.type === 'A') addresses.push(answer.data);
      }
      finish({ rcode: msg[3] & 0x0f, aa: decoded.flag_aa, addresses });
    });
    socket.send(query, port, HOST);
  });
}

/**
 * Polls with probeDns until the target answers NOERROR with at least one A
 * record. Throws after READY_TIMEOUT_MS, or as soon as the child exits.
 */
async function waitForAnswer(child: ManagedChild, port: number): Promise<string[]> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no reply';
  while (Date.now() < deadline) {
    if (child.hasExited) throw new Error(`${child.describe()}`);
    const reply = await probeDns(port, PROBE_TIMEOUT_MS);
    if (reply !== null) {
      if (reply.rcode === 0 && reply.addresses.length > 0) return reply.addresses;
      last = `rcode ${reply.rcode}, ${reply.addresses.length} A records`;
    }
    await sleep(PROBE_INTERVAL_MS);
  }
  throw new Error(`no NOERROR answer for ${QNAME} A on ${HOST}:${port} within ${READY_TIMEOUT_MS} ms (last: ${last})\n${child.describe()}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* ───────────────────────────── targets ───────────────────────────── */

/** Starts the bare responder on an OS-chosen port and waits for its ready line and a valid answer. */
async function startBare(workers: number): Promise<RunningTarget> {
  const command = [process.execPath, BARE_ENTRY, '--port', '0', '--workers', String(workers)];
  const child = new ManagedChild('bare-responder', spawn(command[0], command.slice(1), { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'] }));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms\n${child.describe()}`)), READY_TIMEOUT_MS);
    const lines = readline.createInterface({ input: child.proc.stdout! });
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: boolean; port?: number };
        if (msg.ready === true && typeof msg.port === 'number') {
          clearTimeout(timer);
          resolve(msg.port);
        }
      } catch {
        // Not the ready line; ignore.
      }
    });
    child.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(child.describe()));
    });
  });
  const probeAnswer = await waitForAnswer(child, port);
  return { name: 'bare', child, port, command, probeAnswer };
}

/** Renders the engine's benchmark config (see docs/benchmarks.md). */
function renderEngineConfig(port: number, workers: number): string {
  return [
    'dns:',
    `  listen_address: "${HOST}:${port}"`,
    `  workers: ${workers}`,
    '  zones: [bench.test]',
    'regions:',
    '  - name: r1',
    '    servers:',
    '      - { address: 10.0.0.1 }',
    '      - { address: 10.0.0.2 }',
    '      - { address: 10.0.0.3 }',
    // Nothing listens at these addresses; the benchmark measures answering, not checking.
    '    health_check: { type: none }',
    'domains:',
    '  - { name: app.bench.test, routing_algorithm: round-robin, regions: [r1] }',
    'logging: { level: warn, format: json }',
    '',
  ].join('\n');
}

/** Starts the production entry point with a generated config and polls DNS until it answers. */
async function startEngine(entry: string, workers: number, dir: string): Promise<{ target: RunningTarget; configText: string }> {
  if (!fs.existsSync(entry)) {
    throw new Error(`engine entry point ${repoRelative(entry)} not found; run with --target bare until it exists`);
  }
  const port = await findFreePort();
  const configText = renderEngineConfig(port, workers);
  const configPath = path.join(dir, 'engine.yaml');
  fs.writeFileSync(configPath, configText, { mode: 0o600 });
  const command = [process.execPath, entry, '--config', configPath];
  const child = new ManagedChild('engine', spawn(command[0], command.slice(1), { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'] }));
  const probeAnswer = await waitForAnswer(child, port);
  return { target: { name: 'engine', child, port, command, probeAnswer }, configText };
}

/* ───────────────────────────── dnsperf ───────────────────────────── */

/** Returns dnsperf's version ("2.10.0"), or exits 2 with an install hint when it is missing. */
function findDnsperf(): string {
  const result = spawnSync('dnsperf', ['-h'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      process.stderr.write('dnsperf not found: install it with `apt-get install dnsperf`\n');
      process.exit(2);
    }
    fail(`dnsperf -h failed: ${result.error.message}`);
  }
  const match = /Version\s+(\S+)/.exec(`${result.stdout}${result.stderr}`);
  return match === null ? 'unknown' : match[1];
}

function dnsperfArgs(port: string, queryFile: string, durationSec: number, opts: Options): string[] {
  // -c spreads queries over several source ports, so reusePort can spread them
  // over workers; -q 100 keeps the target busy (Little's law: 100 in flight at
  // 100k q/s is 1 ms) without the start-up burst that overflows a default
  // receive buffer (-q 500 lost ~300 queries at start, each then holding an
  // outstanding slot until the 5 s timeout). Measured, see docs/benchmarks.md.
  const args = ['-s', HOST, '-p', port, '-d', queryFile, '-l', String(durationSec), '-c', String(opts.clients), '-q', String(opts.outstanding), '-T', '1'];
  if (opts.percentiles) args.push('-v');
  // Lost queries are counted in the statistics; one line each would flood the log.
  args.push('-O', 'suppress=timeout');
  return args;
}

/** Reads utime+stime of a process (all threads), in clock ticks; null off Linux. */
function readProcTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** Reads cutime+cstime of this process: CPU of children it has reaped, in ticks; null off Linux. */
function readReapedChildTicks(): number | null {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[13]) + Number(fields[14]);
  } catch {
    return null;
  }
}

const CLOCK_TICKS_PER_SEC = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** Converts dnsperf's seconds (µs resolution) to ms without float noise. */
function secToMs(sec: number): number {
  return Math.round(sec * 1e6) / 1000;
}

function num(re: RegExp, text: string): number {
  const m = re.exec(text);
  if (m === null) throw new Error(`dnsperf output has no match for ${re}`);
  return Number(m[1]);
}

/** Parses dnsperf's "Statistics:" block. Throws when a figure is missing. */
function parseDnsperf(text: string): Omit<RunFigures, 'target' | 'run' | 'targetCpuPct' | 'dnsperfCpuPct' | 'p50Ms' | 'p99Ms' | 'p999Ms'> {
  const statsAt = text.indexOf('Statistics:');
  if (statsAt < 0) throw new Error('dnsperf printed no "Statistics:" block');
  const stats = text.slice(statsAt);
  const responseCodes: Record<string, number> = {};
  const codes = /Response codes:\s+(.*)/.exec(stats);
  if (codes !== null) {
    for (const m of codes[1].matchAll(/([A-Z]+) (\d+)/g)) responseCodes[m[1]] = Number(m[2]);
  }
  const lat = /Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(stats);
  if (lat === null) throw new Error('dnsperf output has no "Average Latency" line');
  return {
    qps: num(/Queries per second:\s+([\d.]+)/, stats),
    sent: num(/Queries sent:\s+(\d+)/, stats),
    completed: num(/Queries completed:\s+(\d+)/, stats),
    lost: num(/Queries lost:\s+(\d+)/, stats),
    runTimeSec: num(/Run time \(s\):\s+([\d.]+)/, stats),
    avgLatencyMs: secToMs(Number(lat[1])),
    minLatencyMs: secToMs(Number(lat[2])),
    maxLatencyMs: secToMs(Number(lat[3])),
    stddevLatencyMs: secToMs(num(/Latency StdDev \(s\):\s+([\d.]+)/, stats)),
    responseCodes,
    dnsperfStats: stats.trim(),
  };
}

/**
 * Builds latency percentiles from dnsperf -v lines ("> NOERROR name A 0.000123")
 * in the output file, after the run so this process stays idle during it.
 */
async function readPercentiles(file: string): Promise<{ p50Ms: number; p99Ms: number; p999Ms: number } | null> {
  const hist = new Uint32Array(HIST_MAX_US + 1);
  let count = 0;
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.charCodeAt(0) !== 0x3e /* > */) continue;
    const sec = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!Number.isFinite(sec)) continue;
    hist[Math.min(HIST_MAX_US, Math.round(sec * 1e6))]++;
    count++;
  }
  if (count === 0) return null;
  const at = (q: number): number => {
    const rank = Math.ceil(q * count);
    let seen = 0;
    for (let us = 0; us <= HIST_MAX_US; us++) {
      seen += hist[us];
      if (seen >= rank) return us / 1000;
    }
    return HIST_MAX_US / 1000;
  };
  return { p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999) };
}

/**
 * Runs dnsperf once against a target with stdout in a temp file. Kills it if it
 * overruns -l by DNSPERF_GRACE_MS. Throws when it fails or prints no statistics.
 */
async function runDnsperf(target: RunningTarget, queryFile: string, durationSec: number, opts: Options, dir: string, run: number): Promise<RunFigures> {
  const outFile = path.join(dir, `dnsperf-${target.name}-${run}.out`);
  const outFd = fs.openSync(outFile, 'w');
  const targetTicks0 = readProcTicks(target.child.proc.pid);
  const childTicks0 = readReapedChildTicks();
  const args = dnsperfArgs(String(target.port), queryFile, durationSec, opts);
  const child = new ManagedChild('dnsperf', spawn('dnsperf', args, { stdio: ['ignore', outFd, 'pipe'] }));
  fs.closeSync(outFd);
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), durationSec * 1000 + DNSPERF_GRACE_MS);
  await child.exited;
  clearTimeout(timer);
  const targetTicks1 = readProcTicks(target.child.proc.pid);
  const childTicks1 = readReapedChildTicks();
  if (target.child.hasExited) throw new Error(`target died during the run\n${target.child.describe()}`);
  if (child.exitCode !== 0) throw new Error(`dnsperf ${args.join(' ')} failed\n${child.describe()}`);

  // Without -v the file is ~25 lines; with -v the statistics are at its end.
  const size = fs.statSync(outFile).size;
  const tailStart = Math.max(0, size - 4096);
  const fd = fs.openSync(outFile, 'r');
  const tail = Buffer.alloc(size - tailStart);
  fs.readSync(fd, tail, 0, tail.length, tailStart);
  fs.closeSync(fd);
  const figures = parseDnsperf(tail.toString('utf8'));
  const pct = opts.percentiles ? await readPercentiles(outFile) : null;
  fs.rmSync(outFile, { force: true });

  const toPct = (a: number | null, b: number | null): number | null =>
    a === null || b === null ? null : Math.round(((b - a) / CLOCK_TICKS_PER_SEC / figures.runTimeSec) * 1000) / 10;
  return {
    target: target.name,
    run,
    ...figures,
    targetCpuPct: toPct(targetTicks0, targetTicks1),
    dnsperfCpuPct: toPct(childTicks0, childTicks1),
    p50Ms: pct?.p50Ms ?? null,
    p99Ms: pct?.p99Ms ?? null,
    p999Ms: pct?.p999Ms ?? null,
  };
}

/* ───────────────────────────── report ───────────────────────────── */

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface TargetSummary {
  target: TargetName;
  runs: number;
  medianQps: number;
  minQps: number;
  maxQps: number;
  medianAvgLatencyMs: number;
  medianStddevLatencyMs: number;
  medianP99Ms: number | null;
  totalLost: number;
  medianTargetCpuPct: number | null;
  medianDnsperfCpuPct: number | null;
}

function summarise(target: TargetName, runs: readonly RunFigures[]): TargetSummary {
  const mine = runs.filter((r) => r.target === target);
  const nullableMedian = (pick: (r: RunFigures) => number | null): number | null => {
    const vals = mine.map(pick).filter((v): v is number => v !== null);
    return vals.length === 0 ? null : median(vals);
  };
  return {
    target,
    runs: mine.length,
    medianQps: median(mine.map((r) => r.qps)),
    minQps: Math.min(...mine.map((r) => r.qps)),
    maxQps: Math.max(...mine.map((r) => r.qps)),
    medianAvgLatencyMs: median(mine.map((r) => r.avgLatencyMs)),
    medianStddevLatencyMs: median(mine.map((r) => r.stddevLatencyMs)),
    medianP99Ms: nullableMedian((r) => r.p99Ms),
    totalLost: mine.reduce((sum, r) => sum + r.lost, 0),
    medianTargetCpuPct: nullableMedian((r) => r.targetCpuPct),
    medianDnsperfCpuPct: nullableMedian((r) => r.dnsperfCpuPct),
  };
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number | null): string => (n === null ? '–' : n.toFixed(3));
const fmtPct = (n: number | null): string => (n === null ? '–' : `${n.toFixed(0)}%`);

function renderMarkdown(summaries: readonly TargetSummary[], runs: readonly RunFigures[], ratio: number | null, opts: Options, dnsperfCmd: string): string {
  const out: string[] = [];
  out.push(`### e2e: ${opts.runs} × ${opts.durationSec} s per target, ${opts.workers} worker(s)`, '');
  out.push(`\`${dnsperfCmd}\``, '');
  out.push('| target | runs | median QPS | min QPS | max QPS | median avg latency (ms) | median latency stddev (ms) |' + (opts.percentiles ? ' median p99 (ms) |' : '') + ' lost | target CPU | dnsperf CPU |');
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |' + (opts.percentiles ? ' ---: |' : '') + ' ---: | ---: | ---: |');
  for (const s of summaries) {
    out.push(
      `| ${s.target} | ${s.runs} | ${fmtInt(s.medianQps)} | ${fmtInt(s.minQps)} | ${fmtInt(s.maxQps)} | ${fmtMs(s.medianAvgLatencyMs)} | ${fmtMs(s.medianStddevLatencyMs)} |` +
        (opts.percentiles ? ` ${fmtMs(s.medianP99Ms)} |` : '') +
        ` ${fmtInt(s.totalLost)} | ${fmtPct(s.medianTargetCpuPct)} | ${fmtPct(s.medianDnsperfCpuPct)} |`,
    );
  }
  out.push('');
  if (ratio !== null) out.push(`**engine / bare (median QPS): ${ratio.toFixed(3)}**`, '');
  out.push('| run | target | QPS | avg (ms) | stddev (ms) | min (ms) | max (ms) |' + (opts.percentiles ? ' p50 | p99 | p99.9 |' : '') + ' lost | target CPU |');
  out.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: |' + (opts.percentiles ? ' ---: | ---: | ---: |' : '') + ' ---: | ---: |');
  for (const r of runs) {
    out.push(
      `| ${r.run} | ${r.target} | ${fmtInt(r.qps)} | ${fmtMs(r.avgLatencyMs)} | ${fmtMs(r.stddevLatencyMs)} | ${fmtMs(r.minLatencyMs)} | ${fmtMs(r.maxLatencyMs)} |` +
        (opts.percentiles ? ` ${fmtMs(r.p50Ms)} | ${fmtMs(r.p99Ms)} | ${fmtMs(r.p999Ms)} |` : '') +
        ` ${fmtInt(r.lost)} | ${fmtPct(r.targetCpuPct)} |`,
    );
  }
  return out.join('\n') + '\n';
}

/** Shortens absolute paths inside the repo to repo-relative ones, for the report. */
function repoRelative(arg: string): string {
  return arg.startsWith(REPO_DIR + path.sep) ? arg.slice(REPO_DIR.length + 1) : arg;
}

function log(message: string): void {
  process.stderr.write(`e2e: ${message}\n`);
}

/* ─────────────────────────────── main ─────────────────────────────── */

async function main(): Promise<void> {
  const opts = readOptions();
  const dnsperfVersion = findDnsperf();
  installSignalHandlers();
  const startedAt = new Date();

  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'opengslb-bench-'));
  const queryFile = path.join(tempDir, 'queries.txt');
  fs.writeFileSync(queryFile, `${QNAME} A\n`, { mode: 0o600 });

  const targets: RunningTarget[] = [];
  let engineConfig: string | null = null;
  for (const name of opts.targets) {
    log(`starting ${name} (${opts.workers} worker(s))`);
    if (name === 'bare') {
      targets.push(await startBare(opts.workers));
    } else {
      const started = await startEngine(opts.engineEntry, opts.workers, tempDir);
      targets.push(started.target);
      engineConfig = started.configText;
    }
    const t = targets[targets.length - 1];
    log(`${name} ready on ${HOST}:${t.port}, answers ${t.probeAnswer.join(' ')}`);
  }

  // Warm-up: lets V8 optimise the hot path before anything is recorded.
  for (const t of targets) {
    log(`warm-up ${t.name}: ${opts.warmupSec} s`);
    await runDnsperf(t, queryFile, opts.warmupSec, opts, tempDir, 0);
  }

  // Interleaved so slow drift (thermal, neighbours) hits every target alike.
  const runs: RunFigures[] = [];
  for (let run = 1; run <= opts.runs; run++) {
    for (const t of targets) {
      log(`run ${run}/${opts.runs} ${t.name}: ${opts.durationSec} s`);
      const figures = await runDnsperf(t, queryFile, opts.durationSec, opts, tempDir, run);
      log(`  ${fmtInt(figures.qps)} q/s, avg ${fmtMs(figures.avgLatencyMs)} ms, lost ${figures.lost}, target CPU ${fmtPct(figures.targetCpuPct)}`);
      runs.push(figures);
    }
  }

  const summaries = opts.targets.map((name) => summarise(name, runs));
  const bare = summaries.find((s) => s.target === 'bare');
  const engine = summaries.find((s) => s.target === 'engine');
  const ratio = bare !== undefined && engine !== undefined ? engine.medianQps / bare.medianQps : null;
  const dnsperfCmd = `dnsperf ${dnsperfArgs('<port>', '<queries.txt>', opts.durationSec, opts).join(' ')}`;

  const cpus = os.cpus();
  const report = {
    schema: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpuModel: cpus[0]?.model ?? 'unknown',
      nproc: os.availableParallelism(),
      totalMemoryBytes: os.totalmem(),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      dnsperf: dnsperfVersion,
    },
    options: opts,
    commands: {
      dnsperf: dnsperfCmd,
      queryFile: `${QNAME} A`,
      targets: Object.fromEntries(targets.map((t) => [t.name, t.command.map(repoRelative).join(' ')])),
    },
    engineConfig,
    probeAnswers: Object.fromEntries(targets.map((t) => [t.name, t.probeAnswer])),
    summary: summaries,
    ratioEngineToBareMedianQps: ratio,
    runs,
    // What the targets printed (the engine logs at warn), to spot errors under load.
    outputTails: Object.fromEntries(targets.map((t) => [t.name, { stdout: t.child.stdoutTail.slice(-2048), stderr: t.child.stderrTail.slice(-2048) }])),
  };

  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonPath = path.join(RESULTS_DIR, `e2e-${stamp}.json`);
  fs.writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);

  process.stdout.write(renderMarkdown(summaries, runs, ratio, opts, dnsperfCmd));
  process.stdout.write(`\nJSON: ${path.relative(REPO_DIR, jsonPath)}\n`);
}

main()
  .then(cleanup)
  .catch(async (err: unknown) => {
    // Killed children make the run fail; that is expected after a signal.
    if (stopping) return;
    process.stderr.write(`e2e: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanup();
    process.exit(1);
  });
