// Bench only, cold. `npm run bench`: the micro benchmarks, then the e2e load
// test, each in its own process, merged into one report under bench/results/.
//
// Usage: npm run bench -- [--quick] [--fail-below 0.5] [--no-micro] [--no-e2e]
//          [--docs-svg] [any bench/e2e.ts flag: --runs 3 --scenarios a,b --generator own …]
//   --quick        micro --quick + e2e --quick: the CI smoke run, under 2 minutes
//   --fail-below X exit 3 when the headline (engine / its ceiling, from CPU per query, round-robin on
//                  3 servers) is below X; .ci/run uses 0.5 as a regression guard
//   --docs-svg     also copy the chart to docs/benchmarks.svg
//
//   run ──spawn──▶ node --expose-gc … bench/micro.ts --json <tmp>/micro.json
//       ──spawn──▶ node bench/e2e.ts --json <tmp>/e2e.json [flags]
//       → bench/results/bench-<time>.{json,md,svg} and latest.{json,md,svg}
//
// Exit codes: 0 done, 1 a benchmark failed, 2 bad flag, 3 headline below --fail-below.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installSignalHandlers, ManagedChild, onCleanup, stopAll } from './lib/children.ts';
import { renderE2eMarkdown, renderMicroMarkdown, renderSvg, type E2eResult, type MicroResult } from './lib/report.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_DIR = path.dirname(BENCH_DIR);
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const DOCS_SVG = path.join(REPO_DIR, 'docs', 'benchmarks.svg');
// Same flags micro.ts would re-execute itself with; see its header.
const MICRO_FLAGS = ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'];

interface RunFlags {
  quick: boolean;
  failBelow: number | null;
  micro: boolean;
  e2e: boolean;
  docsSvg: boolean;
  /** Flags passed through to bench/e2e.ts. */
  e2eArgs: string[];
}

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\nusage: npm run bench -- [--quick] [--fail-below X] [--no-micro] [--no-e2e] [--docs-svg] [bench/e2e.ts flags]\n`);
  process.exit(2);
}

/** Splits our flags from the ones bench/e2e.ts validates itself. */
function readFlags(argv: readonly string[]): RunFlags {
  const f: RunFlags = { quick: false, failBelow: null, micro: true, e2e: true, docsSvg: false, e2eArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') {
      f.quick = true;
      f.e2eArgs.push(a);
    } else if (a === '--fail-below') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) usage(`--fail-below: "${argv[i]}" is not a positive number`);
      f.failBelow = v;
    } else if (a === '--no-micro') f.micro = false;
    else if (a === '--no-e2e') f.e2e = false;
    else if (a === '--docs-svg') f.docsSvg = true;
    else if (a === '--json') usage('--json belongs to bench/e2e.ts and bench/micro.ts; run.ts always writes bench/results/');
    else f.e2eArgs.push(a);
  }
  return f;
}

/** Runs a bench script in a child process (progress on our stderr) and reads the JSON it writes. */
async function runChild<T>(label: string, args: string[], jsonFile: string): Promise<T> {
  const child = new ManagedChild(label, spawn(process.execPath, [...args, '--json', jsonFile], { cwd: REPO_DIR, stdio: ['ignore', 'inherit', 'inherit'] }));
  await child.exited;
  if (child.exitCode !== 0) throw new Error(`${label} failed (exit ${child.exitCode}, signal ${child.exitSignal})`);
  return JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as T;
}

async function main(): Promise<void> {
  const flags = readFlags(process.argv.slice(2));
  installSignalHandlers('bench');
  const t0 = performance.now();
  const startedAt = new Date();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opengslb-bench-run-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));

  let micro: MicroResult | null = null;
  if (flags.micro) {
    process.stderr.write('bench: micro benchmarks\n');
    micro = await runChild<MicroResult>('micro', [...MICRO_FLAGS, path.join(BENCH_DIR, 'micro.ts'), ...(flags.quick ? ['--quick'] : [])], path.join(dir, 'micro.json'));
  }
  let e2e: E2eResult | null = null;
  if (flags.e2e) {
    process.stderr.write('bench: end-to-end load test\n');
    e2e = await runChild<E2eResult>('e2e', [path.join(BENCH_DIR, 'e2e.ts'), ...flags.e2eArgs], path.join(dir, 'e2e.json'));
  }
  const elapsedSec = Math.round((performance.now() - t0) / 100) / 10;

  const md: string[] = [`## OpenGSLB benchmark, ${startedAt.toISOString()}`, ''];
  const machine = (e2e?.machine ?? micro?.machine ?? {}) as Record<string, unknown>;
  md.push(`Machine: ${String(machine.cpuModel)} × ${String(machine.nproc)}, ${(Number(machine.totalMemoryBytes) / 2 ** 30).toFixed(1)} GiB, ${String(machine.os)}, Node ${String(machine.node)}. Took ${elapsedSec} s.`);
  if (e2e !== null) {
    const before = e2e.load.before as { loadAvg1: number; busiest: string[] };
    md.push(`Load average when the e2e run started: ${before.loadAvg1} (other busy processes: ${before.busiest.length === 0 ? 'none' : before.busiest.join('; ')}).`);
  }
  md.push('');
  if (e2e !== null) md.push(renderE2eMarkdown(e2e));
  if (micro !== null) md.push(renderMicroMarkdown(micro));
  const text = md.join('\n');

  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const prefix = path.join(RESULTS_DIR, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}`);
  const combined = { schema: 1, kind: 'bench', startedAt: startedAt.toISOString(), elapsedSec, headline: e2e?.headline ?? null, e2e, micro };
  const written = [`${prefix}.json`, `${prefix}.md`];
  fs.writeFileSync(written[0], `${JSON.stringify(combined, null, 2)}\n`);
  fs.writeFileSync(written[1], text);
  fs.copyFileSync(written[0], path.join(RESULTS_DIR, 'latest.json'));
  fs.copyFileSync(written[1], path.join(RESULTS_DIR, 'latest.md'));
  if (e2e !== null) {
    written.push(`${prefix}.svg`);
    fs.writeFileSync(written[2], renderSvg(e2e));
    fs.copyFileSync(written[2], path.join(RESULTS_DIR, 'latest.svg'));
    if (flags.docsSvg) {
      fs.copyFileSync(written[2], DOCS_SVG);
      written.push(DOCS_SVG);
    }
  }
  process.stdout.write(text);
  process.stdout.write(`\n${written.map((f) => path.relative(process.cwd(), f)).join('\n')}\n`);

  if (flags.failBelow !== null && e2e !== null) {
    // On the batched path both the engine and its ceiling idle at dnsperf's
    // limit, so their QPS ratio is the generator's noise (0.72–1.24 in
    // runs on the dev machine); the ratio of CPU per query is not. The guard
    // takes the CPU figure when there is one, else QPS.
    const h = e2e.headlineCpu ?? e2e.headline;
    const what = `headline engine / its ceiling (a-rr-3 / bare-batched, or bare without the addon)${e2e.headlineCpu !== null ? ', from CPU per query' : ', QPS'}`;
    if (h === null || h < flags.failBelow) {
      process.stderr.write(`bench: ${what} = ${h === null ? 'not measured' : h.toFixed(3)}, below the --fail-below guard ${flags.failBelow}\n`);
      await stopAll();
      process.exit(3);
    }
    process.stderr.write(`bench: ${what} = ${h.toFixed(3)} (guard ${flags.failBelow}: ok)\n`);
  }
}

main()
  .then(stopAll)
  .catch(async (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    await stopAll();
    process.exit(1);
  });
