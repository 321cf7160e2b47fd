// Bench only, cold. Runs every bench/*.bench.ts micro benchmark with tinybench
// and measures bytes allocated per operation, then prints one table.
//
// Usage: npx node bench/micro.ts [--quick] [--filter TEXT] [--json FILE]
//   --quick   shorter time per case (CI smoke run)
//   --filter  only cases whose "group: name" contains TEXT
//   --json    write the raw result object to FILE (bench/run.ts merges it)
//             instead of bench/results/micro-<time>.{json,md}
//
// Timing: each tinybench sample is a batch of B calls (B sized so a batch
// takes ~50 µs), reported as the batch mean through overriddenDuration:
// single calls take 20–500 ns, too close to the ~40 ns cost of reading the
// clock to time one by one.
//
// Allocation: the runner re-executes itself with --expose-gc and a 64 MiB
// young generation (--min/--max-semi-space-size), so N calls never trigger a
// scavenge. Then: gc(); used_heap_size before; N calls; used_heap_size after;
// (after − before) / N, best of 3 (a negative delta means a GC slipped in and
// that round is discarded). Two calibration cases check the method: an empty
// function (expect 0) and a 2-field object literal kept alive in a sink
// (expect its size, 20 bytes with V8's pointer compression).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { Bench } from 'tinybench';
import type { AddCase, MicroCase, RegisterCases } from './lib/micro-suite.ts';
import { describeLoad, describeMachine } from './lib/proc.ts';
import { renderMicroMarkdown, type MicroCaseResult, type MicroResult } from './lib/report.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const GC_FLAGS = ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'];
/** Files run first, in the order of the query path; any other *.bench.ts follows alphabetically. */
const FILE_ORDER = ['parse', 'lookup', 'geo', 'route', 'answer', 'handle-query'];
const BATCH_TARGET_NS = 50_000;

/** Folded results of every call, so no call is dead code. */
let sink = 0;

const gc = (globalThis as { gc?: () => void }).gc;

/** Bytes allocated per call of `fn` (see the header); null when gc is not exposed. */
function bytesPerCall(fn: () => number, n: number): number | null {
  if (gc === undefined) return null;
  for (let i = 0; i < 1000; i++) sink ^= fn();
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    gc();
    const before = v8.getHeapStatistics().used_heap_size;
    for (let i = 0; i < n; i++) sink ^= fn();
    const delta = v8.getHeapStatistics().used_heap_size - before;
    if (delta >= 0) best = Math.min(best, delta / n);
  }
  return Number.isFinite(best) ? Math.round(best * 10) / 10 : null;
}

/** Picks a batch size so that one tinybench sample takes about BATCH_TARGET_NS. */
function batchSize(fn: () => number): number {
  for (let i = 0; i < 5000; i++) sink ^= fn();
  const t0 = performance.now();
  for (let i = 0; i < 5000; i++) sink ^= fn();
  const perCallNs = ((performance.now() - t0) * 1e6) / 5000;
  return Math.max(1, Math.min(100_000, Math.round(BATCH_TARGET_NS / Math.max(perCallNs, 1))));
}

async function loadCases(filter: string | undefined): Promise<MicroCase[]> {
  const files = fs
    .readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort((a, b) => {
      const ia = FILE_ORDER.indexOf(a.replace('.bench.ts', ''));
      const ib = FILE_ORDER.indexOf(b.replace('.bench.ts', ''));
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
  const cases: MicroCase[] = [];
  const add: AddCase = (group, name, fn) => {
    if (filter === undefined || `${group}: ${name}`.includes(filter)) cases.push({ group, name, fn });
  };
  for (const f of files) {
    const mod = (await import(pathToFileURL(path.join(BENCH_DIR, f)).href)) as { default: RegisterCases };
    mod.default(add);
  }
  return cases;
}

/** Runs the cases; returns the raw result (also used by bench/run.ts). */
export async function runMicro(opts: { quick: boolean; filter?: string }): Promise<MicroResult> {
  const startedAt = new Date();
  const cases = await loadCases(opts.filter);
  const timeMs = opts.quick ? 100 : 600;
  const bench = new Bench({ time: timeMs, warmupTime: opts.quick ? 30 : 200, iterations: 10 });
  const batches = new Map<string, number>();
  for (const c of cases) {
    const key = `${c.group}: ${c.name}`;
    const b = batchSize(c.fn);
    batches.set(key, b);
    const fn = c.fn;
    bench.add(key, () => {
      const t0 = performance.now();
      for (let i = 0; i < b; i++) sink ^= fn();
      const dt = performance.now() - t0;
      return { overriddenDuration: dt / b, overriddenIterationCost: dt };
    });
  }
  process.stderr.write(`micro: ${cases.length} cases, ${timeMs} ms each\n`);
  await bench.run();

  const allocCalls = opts.quick ? 20_000 : 100_000;
  const results: MicroCaseResult[] = [];
  for (const c of cases) {
    const key = `${c.group}: ${c.name}`;
    const task = bench.getTask(key);
    const r = task?.result;
    if (r === undefined || r.state !== 'completed') throw new Error(`micro: ${key} did not complete (${r?.state ?? 'no result'})`);
    const meanNs = r.latency.mean * 1e6;
    results.push({
      group: c.group,
      name: c.name,
      opsPerSec: Math.round(1e9 / meanNs),
      meanNs: Math.round(meanNs * 10) / 10,
      medianNs: Math.round(r.latency.p50 * 1e7) / 10,
      rmePct: Math.round(r.latency.rme * 10) / 10,
      samples: r.latency.samplesCount,
      batch: batches.get(key) ?? 1,
      bytesPerOp: bytesPerCall(c.fn, allocCalls),
    });
  }
  let held: unknown = null;
  const calibration = {
    emptyFunction: bytesPerCall(() => 0, allocCalls),
    twoFieldObject: bytesPerCall(() => {
      held = { a: 1, b: sink };
      return 0;
    }, allocCalls),
  };
  sink ^= held === null ? 0 : 1;
  return {
    schema: 1,
    kind: 'micro',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: describeMachine({ tinybench: readTinybenchVersion() }),
    load: describeLoad(),
    options: { quick: opts.quick, timePerCaseMs: timeMs, allocCalls, filter: opts.filter ?? null },
    allocMethod: gc === undefined ? 'not measured (run without --expose-gc)' : `gc(); v8 used_heap_size delta over ${allocCalls} calls, best of 3, 64 MiB semi-space (no scavenge during a round)`,
    calibration,
    cases: results,
    sink,
  };
}

function readTinybenchVersion(): string | null {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(BENCH_DIR, '..', 'node_modules', 'tinybench', 'package.json'), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      filter: { type: 'string' },
      json: { type: 'string' },
    },
    strict: true,
  });
  // Allocation figures need gc() and a young generation N calls cannot fill.
  if (gc === undefined) {
    const r = spawnSync(process.execPath, [...GC_FLAGS, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  const result = await runMicro({ quick: v.quick === true, filter: v.filter });
  if (v.json !== undefined) {
    fs.writeFileSync(v.json, `${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const md = renderMicroMarkdown(result);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  fs.writeFileSync(path.join(RESULTS_DIR, `micro-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(path.join(RESULTS_DIR, `micro-${stamp}.md`), md);
  process.stdout.write(md);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`micro: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
