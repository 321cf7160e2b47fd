// Bench only, main thread, cold. Runs one load-generator pass against a
// target and turns its output into RunFigures: dnsperf when installed, else
// bench/loadgen.ts. Both write to a temp file and this process stays idle
// while they run: on a 2-core machine a third busy process would take time
// from the target or the generator. Server CPU and RSS come from /proc.
//
//   saturation: dnsperf -l D -c C -q Q -T 1            | loadgen.ts --duration D (closed loop)
//   fixed load: dnsperf … -Q RATE -v (a line per reply) | loadgen.ts --rate RATE (open loop)
//   TCP:        dnsperf … -m tcp                       | loadgen.ts --tcp

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from '../loadgen.ts';
import { ManagedChild } from './children.ts';
import { Histogram } from './histogram.ts';
import { cpuPct, readProcTicks, readReapedChildTicks, readRss, readThreadTicks, threadCpuPct } from './proc.ts';
import type { RunFigures } from './report.ts';
import { HOST, type RunningTarget } from './targets.ts';

const LOADGEN_ENTRY = path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'loadgen.ts');
// dnsperf stops sending at -l, then waits up to -t (5 s default) for stragglers.
const GRACE_MS = 20_000;

export type GeneratorName = 'dnsperf' | 'own';

/** How to drive one pass. */
export interface PassOptions {
  readonly generator: GeneratorName;
  readonly durationSec: number;
  /** Offered q/s; null = saturation. */
  readonly rate: number | null;
  readonly clients: number;
  readonly outstanding: number;
  readonly queryFile: string;
  readonly dir: string;
  /** Labels the output file. */
  readonly tag: string;
}

/** Returns dnsperf's version ("2.10.0"), or null when it is not installed. */
export function findDnsperf(): string | null {
  const result = spawnSync('dnsperf', ['-h'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error !== undefined) return null;
  const match = /Version\s+(\S+)/.exec(`${result.stdout}${result.stderr}`);
  return match === null ? 'unknown' : match[1];
}

/** The dnsperf arguments for one pass (shown in the report with placeholders). */
export function dnsperfArgs(port: string, queryFile: string, o: Pick<PassOptions, 'durationSec' | 'rate' | 'clients' | 'outstanding'>, tcp: boolean, dnssecOk = false, ednsOption?: string): string[] {
  // -c spreads queries over several source ports, so reusePort can spread
  // them over workers; -q 100 keeps the target busy (Little's law: 100 in
  // flight at 100k q/s is 1 ms) without the start-up burst that overflows a
  // default receive buffer (-q 500 lost ~300 queries at start). -T 1 keeps
  // dnsperf on one core. Measured, see docs/benchmarks.md.
  const args = ['-s', HOST, '-p', port, '-d', queryFile, '-l', String(o.durationSec), '-c', String(o.clients), '-q', String(o.outstanding), '-T', '1'];
  if (tcp) args.push('-m', 'tcp');
  // -D: EDNS with the DNSSEC OK bit, so the engine answers with RRSIGs.
  if (dnssecOk) args.push('-D');
  // -E code:hex: one EDNS option in every query (a DNS cookie in the cookie scenarios).
  if (ednsOption !== undefined) args.push('-E', ednsOption);
  // A .bin query file holds wire messages (queries with an ECS option, which the text format cannot say).
  if (queryFile.endsWith('.bin')) args.push('-B');
  // -v prints one line per reply with its latency: the source of the percentiles.
  if (o.rate !== null) args.push('-Q', String(o.rate), '-v');
  // Lost queries are counted in the statistics; one line each would flood the output.
  args.push('-O', 'suppress=timeout');
  return args;
}

/** The loadgen.ts arguments for one pass. */
export function loadgenArgs(port: string, queryFile: string, o: Pick<PassOptions, 'durationSec' | 'rate' | 'clients' | 'outstanding'>, tcp: boolean, dnssecOk = false): string[] {
  const args = [LOADGEN_ENTRY, '--host', HOST, '--port', port, '--queries', queryFile, '--duration', String(o.durationSec), '--clients', String(o.clients), '--outstanding', String(o.outstanding)];
  if (tcp) args.push('--tcp');
  if (dnssecOk) args.push('--do');
  if (o.rate !== null) args.push('--rate', String(o.rate));
  return args;
}

const secToMs = (sec: number): number => Math.round(sec * 1e6) / 1000;

function num(re: RegExp, text: string): number {
  const m = re.exec(text);
  if (m === null) throw new Error(`dnsperf output has no match for ${re}`);
  return Number(m[1]);
}

/** Parses dnsperf's "Statistics:" block. Throws when a figure is missing. */
function parseDnsperfStats(text: string): { qps: number; sent: number; completed: number; lost: number; runTimeSec: number; avgMs: number; rcodes: Record<string, number>; reconnects: number } {
  const at = text.indexOf('Statistics:');
  if (at < 0) throw new Error('dnsperf printed no "Statistics:" block');
  const stats = text.slice(at);
  const rcodes: Record<string, number> = {};
  const codes = /Response codes:\s+(.*)/.exec(stats);
  if (codes !== null) for (const m of codes[1].matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1]] = Number(m[2]);
  const reconnects = /Reconnections:\s+(\d+)/.exec(stats);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/, stats),
    sent: num(/Queries sent:\s+(\d+)/, stats),
    completed: num(/Queries completed:\s+(\d+)/, stats),
    lost: num(/Queries lost:\s+(\d+)/, stats),
    runTimeSec: num(/Run time \(s\):\s+([\d.]+)/, stats),
    avgMs: secToMs(num(/Average Latency \(s\):\s+([\d.]+)/, stats)),
    rcodes,
    reconnects: reconnects === null ? 0 : Number(reconnects[1]),
  };
}

/** Builds a histogram from dnsperf -v lines ("> NOERROR name A 0.000123"), 1 µs resolution. */
async function readDnsperfLatencies(file: string): Promise<Histogram> {
  const hist = new Histogram();
  const lines = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.charCodeAt(0) !== 0x3e /* > */) continue;
    const sec = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(sec)) hist.record(Math.round(sec * 1e6) * 1000);
  }
  return hist;
}

function readTail(file: string, bytes: number): string {
  const size = fs.statSync(file).size;
  const start = Math.max(0, size - bytes);
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(size - start);
  fs.readSync(fd, buf, 0, buf.length, start);
  fs.closeSync(fd);
  return buf.toString('utf8');
}

function sparse(h: Histogram): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < h.counts.length; i++) if (h.counts[i] > 0) out.push([i, h.counts[i]]);
  return out;
}

/**
 * Runs one pass against `t` and returns its figures. Kills the generator if it
 * overruns by GRACE_MS. Throws when the target died or the generator failed.
 */
export async function runPass(t: RunningTarget, rep: number, o: PassOptions): Promise<RunFigures> {
  const tcp = t.scenario.transport === 'tcp';
  const outFile = path.join(o.dir, `${o.generator}-${t.scenario.id}-${o.tag}.out`);
  const outFd = fs.openSync(outFile, 'w');
  const cmd = o.generator === 'dnsperf' ? 'dnsperf' : process.execPath;
  const dnssecOk = t.scenario.dnssecOk === true;
  if (t.scenario.ednsOption !== undefined && o.generator !== 'dnsperf') throw new Error(`scenario ${t.scenario.id} sends an EDNS option, which only dnsperf (-E) can; run it with dnsperf installed`);
  const args = o.generator === 'dnsperf' ? dnsperfArgs(String(t.port), o.queryFile, o, tcp, dnssecOk, t.scenario.ednsOption) : loadgenArgs(String(t.port), o.queryFile, o, tcp, dnssecOk);
  const pid = t.child.pid;
  const target0 = readProcTicks(pid);
  const threads0 = readThreadTicks(pid);
  const gen0 = readReapedChildTicks();
  const wall0 = performance.now();
  const gen = new ManagedChild(o.generator, spawn(cmd, args, { stdio: ['ignore', outFd, 'pipe'] }));
  fs.closeSync(outFd);
  const timer = setTimeout(() => gen.proc.kill('SIGKILL'), o.durationSec * 1000 + GRACE_MS);
  await gen.exited;
  clearTimeout(timer);
  const wallSec = (performance.now() - wall0) / 1000;
  const target1 = readProcTicks(pid);
  const threads1 = readThreadTicks(pid);
  const gen1 = readReapedChildTicks();
  const rss = readRss(pid);
  if (t.child.hasExited) throw new Error(`target died during the run\n${t.child.describe()}`);
  if (gen.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed\n${gen.describe()}`);

  const common = {
    scenario: t.scenario.id,
    rep,
    mode: o.rate === null ? ('saturation' as const) : ('fixed' as const),
    generator: o.generator,
    offeredQps: o.rate,
    targetCpuPct: cpuPct(target0, target1, wallSec),
    threadCpuPct: threadCpuPct(threads0, threads1, wallSec),
    generatorCpuPct: cpuPct(gen0, gen1, wallSec),
    rssBytes: rss?.rssBytes ?? null,
    peakRssBytes: rss?.peakRssBytes ?? null,
  };
  let figures: RunFigures;
  if (o.generator === 'dnsperf') {
    // With -v the statistics are at the end of a long file.
    const stats = parseDnsperfStats(readTail(outFile, 4096));
    const hist = o.rate === null ? null : await readDnsperfLatencies(outFile);
    figures = {
      ...common,
      qps: stats.qps,
      sent: stats.sent,
      completed: stats.completed,
      lost: stats.lost,
      runTimeSec: stats.runTimeSec,
      rcodes: stats.rcodes,
      avgMs: stats.avgMs,
      p50Ms: hist?.quantileMs(0.5) ?? null,
      p90Ms: hist?.quantileMs(0.9) ?? null,
      p99Ms: hist?.quantileMs(0.99) ?? null,
      p999Ms: hist?.quantileMs(0.999) ?? null,
      histogram: hist === null ? null : sparse(hist),
      extra: tcp ? { reconnects: stats.reconnects } : {},
    };
  } else {
    const r = JSON.parse(fs.readFileSync(outFile, 'utf8')) as LoadResult;
    const counts = new Float64Array(new Histogram().counts.length);
    for (const [i, c] of r.histogram) counts[i] = c;
    const hist = new Histogram(counts);
    figures = {
      ...common,
      qps: r.qps,
      sent: r.sent,
      completed: r.completed,
      lost: r.lost,
      runTimeSec: r.runTimeSec,
      rcodes: r.rcodes,
      avgMs: hist.meanMs(),
      p50Ms: hist.quantileMs(0.5),
      p90Ms: hist.quantileMs(0.9),
      p99Ms: hist.quantileMs(0.99),
      p999Ms: hist.quantileMs(0.999),
      histogram: o.rate === null ? null : r.histogram,
      extra: { backlogged: r.backlogged, reconnects: r.reconnects, droppedOnReconnect: r.dropped },
    };
  }
  fs.rmSync(outFile, { force: true });
  return figures;
}
