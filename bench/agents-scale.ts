// Bench only, cold. An overwatch (or several) against N simulated agents
// (bench/agents-sim.ts: real keys, encryption, signatures and wire protocol):
// the overwatch's CPU (whole process and its main thread, where the channel and
// the registry run) and RSS in steady state, and the time from a backend's
// health flip at the agent to the changed DNS answer at every overwatch.
//
// Usage: npx node bench/agents-scale.ts [--agents 5000] [--backends 3] [--overwatches 1]
//          [--interval 10s] [--full-interval 30s] [--window 60] [--flips 100] [--rate 500]
//          [--prof DIR] [--json FILE] [--logs DIR] [--heap-snapshot DIR] [--node-flag FLAG …]
//
//   --logs DIR           each overwatch's stdout and stderr to DIR/owN.log (with --node-flag --trace-gc: its GCs)
//   --heap-snapshot DIR  a V8 heap snapshot of each overwatch after the steady window (SIGUSR2), into DIR
//
//   bench ──spawn──▶ opengslb --config owN/overwatch.yaml   (each its own data_dir, DNS and channel port)
//     │  AgentsSim: prepare identities → register (rate/s) → heartbeats every interval
//     │  steady window: /proc ticks of each overwatch (process, main thread), RSS
//     └  flips: probe agent p's backend 0 unhealthy/healthy → poll each overwatch's DNS for probe.<domain>
//
// Traffic stays on 127.0.0.1. The agents' backends are 10.x.y.z addresses
// nobody checks (validation is off), as DNS answers them.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseDuration } from '../src/config/duration.ts';
import { ask } from '../test/helpers/dns-client.ts';
import { AgentsSim, fleetLayout } from './agents-sim.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/cli/runtime-flags.js';
import { CLOCK_TICKS_PER_SEC, readProcTicks, readRss, readThreadTicks } from './lib/proc.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '5000' },
    backends: { type: 'string', default: '3' },
    overwatches: { type: 'string', default: '1' },
    interval: { type: 'string', default: '10s' },
    'full-interval': { type: 'string', default: '30s' },
    window: { type: 'string', default: '60' },
    flips: { type: 'string', default: '100' },
    rate: { type: 'string', default: '500' },
    services: { type: 'string', default: '50' },
    prof: { type: 'string' },
    json: { type: 'string' },
    logs: { type: 'string' },
    'heap-snapshot': { type: 'string' },
    'node-flag': { type: 'string', multiple: true, default: [] },
  },
});

const AGENTS = Number(values.agents);
const BACKENDS = Number(values.backends);
const OVERWATCHES = Number(values.overwatches);
const INTERVAL_MS = msOf(values.interval);
const FULL_MS = msOf(values['full-interval']);
const WINDOW_S = Number(values.window);
const FLIPS = Number(values.flips);
const PROBES = 8;
const TOKEN = 'agents-scale-token-0123456789';
const DOMAIN = 'example.test';
const REGIONS = ['eu', 'us', 'ap', 'sa'];

function msOf(text: string): number {
  const d = parseDuration(text);
  if ('error' in d) throw new Error(d.error);
  return d.ms;
}

interface Overwatch {
  readonly child: ChildProcess;
  readonly dnsPort: number;
  readonly gossipPort: number;
  readonly apiPort: number;
  readonly metricsPort: number;
  /** When the overwatch logged each probe backend's state transitions (address → epoch ms, latest last). */
  readonly transitions: Map<string, { readonly to: string; readonly atMs: number }[]>;
}

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'opengslb-agents-scale-'));
function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => {
  cleanup();
  process.exit(130);
});

const key = randomBytes(32);
const layout = fleetLayout({ regions: REGIONS, backends: BACKENDS, services: Number(values.services), domain: DOMAIN, probes: PROBES });

async function startOverwatch(n: number): Promise<Overwatch> {
  const owDir = join(dir, `ow${n}`);
  mkdirSync(owDir, { recursive: true });
  const file = join(owDir, 'overwatch.yaml');
  writeFileSync(file, [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    ...REGIONS.map((r) => `  - { name: ${r}, servers: [] }`),
    'domains:',
    ...layout.serviceNames.map((name) => `  - { name: ${name}, regions: [${REGIONS.join(', ')}], max_answers: ${PROBES} }`),
    'api: { enabled: true, address: "127.0.0.1:0" }',
    'metrics: { enabled: true, address: "127.0.0.1:0" }',
    'overwatch:',
    '  data_dir: ./state',
    '  agent_tokens:',
    ...layout.serviceNames.map((name) => `    ${name}: ${TOKEN}`),
    `  gossip: { encryption_key: "${key.toString('base64')}", bind_address: "127.0.0.1:0" }`,
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  // The flags and environment the server runs with wherever it is started (src/cli/runtime-flags.js).
  const heapDir = values['heap-snapshot'];
  const args = [
    ...SERVER_NODE_FLAGS,
    ...values['node-flag'],
    ...(values.prof ? [`--cpu-prof`, `--cpu-prof-dir=${values.prof}`] : []),
    ...(heapDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`] : []),
    'src/cli/opengslb.js', '--config', file,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SERVER_ENV } });
  children.push(child);
  let dnsPort = 0;
  let gossipPort = 0;
  let apiPort = 0;
  let metricsPort = 0;
  const transitions = new Map<string, { to: string; atMs: number }[]>();
  const lines = createInterface({ input: child.stdout! });
  let stderr = '';
  let log: WriteStream | null = null;
  if (values.logs) {
    mkdirSync(values.logs, { recursive: true });
    log = createWriteStream(join(values.logs, `ow${n}.log`));
    child.stderr!.pipe(log, { end: false });
  }
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  lines.on('line', (line) => {
    log?.write(line + '\n');
    // "agent backend state" / "agent backend out of answers" of a probe backend (10.0.<agent>.1:8080, agents 0..PROBES-1).
    if (!line.includes('"agent backend ') || !line.includes(layout.probeName)) return;
    const m = /"backend":"[^"/]*\/([0-9.]+):\d+".*"to":"(\w+)"/.exec(line);
    const time = /"time":"([^"]+)"/.exec(line);
    if (m === null || time === null) return;
    let list = transitions.get(m[1]!);
    if (list === undefined) transitions.set(m[1]!, (list = []));
    list.push({ to: m[2]!, atMs: Date.parse(time[1]!) });
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`overwatch ${n} exited ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error(`overwatch ${n} did not log its DNS and channel addresses within 30 s: ${stderr}`)), 30_000).unref();
    lines.on('line', (line) => {
      const dns = /DNS listening/.test(line) ? /"address":"127\.0\.0\.1:(\d+)"/.exec(line) : null;
      const gossip = /agent channel listening/.test(line) ? /"address":"127\.0\.0\.1:(\d+)"/.exec(line) : null;
      if (dns) dnsPort = Number(dns[1]);
      if (gossip) gossipPort = Number(gossip[1]);
      const api = /API listening/.test(line) ? /"address":"127\.0\.0\.1:(\d+)"/.exec(line) : null;
      if (api) apiPort = Number(api[1]);
      const metrics = /metrics listening/.test(line) ? /"address":"127\.0\.0\.1:(\d+)"/.exec(line) : null;
      if (metrics) metricsPort = Number(metrics[1]);
      if (dnsPort > 0 && gossipPort > 0 && apiPort > 0 && metricsPort > 0) resolve();
    });
  });
  return { child, dnsPort, gossipPort, apiPort, metricsPort, transitions };
}

/** Where the memory is (/metrics): V8 heap in use, memory outside the heap (ArrayBuffers, SharedArrayBuffers: the snapshots), RSS, signatures pre-signed. */
async function memoryOf(o: Overwatch): Promise<Record<string, number | null>> {
  const text = await (await fetch(`http://127.0.0.1:${o.metricsPort}/metrics`)).text();
  const metric = (name: string): number | null => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text);
    return m === null ? null : Math.round(Number(m[1]) / 1048576);
  };
  const signed = /^opengslb_dnssec_signatures_total\{by="pool"\} ([0-9.e+]+)$/m.exec(text);
  const rss = readRss(o.child.pid);
  // Resident memory by kind (/proc/PID/status): anonymous (heaps, malloc) and file-backed (code, mapped files).
  const status = (() => {
    try {
      return readFileSync(`/proc/${o.child.pid}/status`, 'utf8');
    } catch {
      return '';
    }
  })();
  const kb = (field: string): number | null => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    return m === null ? null : Math.round(Number(m[1]) / 1024);
  };
  return {
    rssAnonMB: kb('RssAnon'), rssFileMB: kb('RssFile'),
    presignedSignatures: signed === null ? null : Number(signed[1]),
    // The main thread's event-loop delay since the previous scrape (prom-client resets it at each), ms.
    eventLoopLagMaxMs: (() => {
      const m = /^nodejs_eventloop_lag_max_seconds ([0-9.e+-]+)$/m.exec(text);
      return m === null ? null : Math.round(Number(m[1]) * 1000);
    })(),
    heapUsedMB: metric('nodejs_heap_size_used_bytes'), heapTotalMB: metric('nodejs_heap_size_total_bytes'), externalMB: metric('nodejs_external_memory_bytes'),
    rssMB: metric('process_resident_memory_bytes'), peakRssMB: rss === null ? null : Math.round(rss.peakRssBytes / 1048576),
  };
}

async function probeAnswer(port: number): Promise<Set<string>> {
  const reply = await ask(port, layout.probeName, 'A');
  return new Set(((reply.answers ?? []) as { data: string }[]).map((a) => a.data));
}

/** utime+stime of a process's main thread (its task whose id is the pid): where the channel, the registry and the snapshot compiler run. */
function mainThreadTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const load0 = loadavg();
  const overwatches: Overwatch[] = [];
  for (let n = 0; n < OVERWATCHES; n++) overwatches.push(await startOverwatch(n));
  const sim = new AgentsSim({
    overwatches: overwatches.map((o) => ({ host: '127.0.0.1', port: o.gossipPort })),
    key,
    token: TOKEN,
    agents: AGENTS,
    regionOf: layout.regionOf,
    backendsOf: layout.backendsOf,
    intervalMs: INTERVAL_MS,
    fullIntervalMs: FULL_MS,
  });
  let t = Date.now();
  await sim.prepare((done) => {
    if (done % 1000 === 0) process.stderr.write(`identities: ${done}\n`);
  });
  const identitiesMs = Date.now() - t;
  t = Date.now();
  const cpuReg0 = overwatches.map((o) => readProcTicks(o.child.pid));
  await sim.start(Number(values.rate));
  const registerMs = Date.now() - t;
  const cpuReg1 = overwatches.map((o) => readProcTicks(o.child.pid));
  process.stderr.write(`registered ${AGENTS} agents with ${OVERWATCHES} overwatch(es) in ${registerMs} ms\n`);
  const memoryRegistered = await Promise.all(overwatches.map(memoryOf));
  process.stderr.write(`memory after registration: ${JSON.stringify(memoryRegistered)}\n`);

  // Settle one full interval, then measure a quiet window: heartbeats and full heartbeats only.
  await new Promise((resolve) => setTimeout(resolve, FULL_MS));
  const proc0 = overwatches.map((o) => readProcTicks(o.child.pid));
  const thr0 = overwatches.map((o) => readThreadTicks(o.child.pid));
  const main0 = overwatches.map((o) => mainThreadTicks(o.child.pid));
  const w0 = Date.now();
  await new Promise((resolve) => setTimeout(resolve, WINDOW_S * 1000));
  const seconds = (Date.now() - w0) / 1000;
  const main1 = overwatches.map((o) => mainThreadTicks(o.child.pid));
  const steady = overwatches.map((o, i) => {
    const proc1 = readProcTicks(o.child.pid);
    const thr1 = readThreadTicks(o.child.pid);
    const rss = readRss(o.child.pid);
    return {
      processCpuPct: proc0[i] === null || proc1 === null ? null : (100 * (proc1 - proc0[i]!)) / CLOCK_TICKS_PER_SEC / seconds,
      mainThreadCpuPct: main0[i] === null || main1[i] === null ? null : (100 * (main1[i]! - main0[i]!)) / CLOCK_TICKS_PER_SEC / seconds,
      threads: thr1 === null ? null : Object.fromEntries([...thr1.entries()].map(([name, v]) => [name, Math.round((100 * (v - (thr0[i]?.get(name) ?? 0))) / CLOCK_TICKS_PER_SEC / seconds * 10) / 10])),
      rssMB: rss === null ? null : Math.round(rss.rssBytes / 1048576),
      peakRssMB: rss === null ? null : Math.round(rss.peakRssBytes / 1048576),
      registrationCpuS: cpuReg0[i] === null || cpuReg1[i] === null ? null : (cpuReg1[i]! - cpuReg0[i]!) / CLOCK_TICKS_PER_SEC,
    };
  });
  process.stderr.write(`steady: ${JSON.stringify(steady)}\n`);
  const memory = await Promise.all(overwatches.map(memoryOf));
  process.stderr.write(`memory: ${JSON.stringify(memory)}\n`);

  // Flips: alternate a probe backend down and up; time until every overwatch's answer shows it.
  const latencies: number[][] = overwatches.map(() => []);
  // A flip not seen within this long counts as missed (its health update and the next heartbeats were all lost).
  const FLIP_LIMIT_MS = FULL_MS + INTERVAL_MS;
  const missed: number[] = overwatches.map(() => 0);
  // Time from the flip to the overwatch's log of the transition (message arrival and handling), per overwatch.
  const arrivals: number[][] = overwatches.map(() => []);
  const missedDetail: unknown[] = [];
  const ids = sim.agentIds;
  // The bench's own event-loop delay during the flips: a late flip may be the simulator's, not the overwatch's.
  const benchLag = monitorEventLoopDelay({ resolution: 10 });
  benchLag.enable();
  for (let f = 0; f < FLIPS; f++) {
    const agent = f % PROBES;
    const down = Math.floor(f / PROBES) % 2 === 0;
    const address = sim.addressOf(agent, 0);
    const t0 = performance.now();
    const t0Ms = Date.now();
    sim.flip(agent, 0, down ? 'unhealthy' : 'healthy');
    await Promise.all(overwatches.map(async (o, i) => {
      for (;;) {
        const has = (await probeAnswer(o.dnsPort)).has(address);
        if (has !== down) break;
        if (performance.now() - t0 > FLIP_LIMIT_MS) {
          // What the overwatch holds of the backend now: the agent's claim and the backend's state.
          const detail = (await (await fetch(`http://127.0.0.1:${o.apiPort}/api/v1/overwatch/agents/${ids[agent]}`)).json()) as { agent: unknown; backends: { address: string }[] };
          const seen = { flip: f, overwatch: i, address, down, agent: detail.agent, backend: detail.backends.find((b) => b.address === address), transitions: o.transitions.get(address)?.slice(-4), answer: [...(await probeAnswer(o.dnsPort))] };
          missedDetail.push(seen);
          process.stderr.write(`flip ${f} of ${address} not seen at overwatch ${i} within ${FLIP_LIMIT_MS} ms: ${JSON.stringify(seen)}\n`);
          missed[i]!++;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      latencies[i]!.push(performance.now() - t0);
      // The log line may trail the answer by a moment: look for it a little later.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const logged = o.transitions.get(address)?.find((t) => t.atMs >= t0Ms - 1 && (t.to === 'unhealthy') === down);
      if (logged !== undefined) arrivals[i]!.push(logged.atMs - t0Ms);
    }));
    // Spread the flips over the heartbeat cycle.
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
  }
  const flips = latencies.map((l, i) => {
    const s = [...l].sort((a, b) => a - b);
    const a = [...arrivals[i]!].sort((x, y) => x - y);
    return {
      n: s.length, missed: missed[i], p50Ms: Math.round(percentile(s, 50)), p99Ms: Math.round(percentile(s, 99)), maxMs: Math.round(s[s.length - 1]!),
      // Flip → the overwatch's transition log (arrival and handling); the rest of the latency is DNS seeing it.
      handled: { n: a.length, p50Ms: percentile(a, 50), p99Ms: percentile(a, 99), maxMs: a[a.length - 1] },
    };
  });
  benchLag.disable();
  const benchLagMs = { p99: Math.round(benchLag.percentile(99) / 1e6), max: Math.round(benchLag.max / 1e6) };
  const memoryAfter = await Promise.all(overwatches.map(memoryOf));
  if (values['heap-snapshot']) {
    for (const o of overwatches) o.child.kill('SIGUSR2');
    // Written synchronously by the overwatch; wait until every file exists and its size holds.
    const dirH = values['heap-snapshot'];
    let last = -1;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const files = readdirSync(dirH).filter((f) => f.endsWith('.heapsnapshot'));
      const size = files.reduce((sum, f) => sum + statSync(join(dirH, f)).size, 0);
      if (files.length >= overwatches.length && size === last) break;
      last = size;
    }
  }
  const counters = sim.counters;
  // What each overwatch's channel accepted and dropped (GET /api/v1/overwatch/agents), drops that happened only.
  const channel = await Promise.all(overwatches.map(async (o) => {
    const body = (await (await fetch(`http://127.0.0.1:${o.apiPort}/api/v1/overwatch/agents`)).json()) as { agents: { state: string }[]; messages: Record<string, number>; drops: Record<string, number> };
    const states: Record<string, number> = {};
    for (const a of body.agents) states[a.state] = (states[a.state] ?? 0) + 1;
    return { agents: states, messages: body.messages, drops: Object.fromEntries(Object.entries(body.drops).filter(([, n]) => n > 0)) };
  }));
  sim.stop();
  const result = {
    agents: AGENTS, backendsPerAgent: BACKENDS, overwatches: OVERWATCHES, intervalMs: INTERVAL_MS, fullIntervalMs: FULL_MS, windowS: WINDOW_S,
    identitiesMs, registerMs, steady, memoryRegistered, memory, memoryAfter, flips, benchLagMs, missedDetail, sim: counters, channel,
    machine: { cpus: cpus().length, loadBefore: load0.map((x) => Math.round(x * 100) / 100), loadAfter: loadavg().map((x) => Math.round(x * 100) / 100) },
  };
  console.log(JSON.stringify(result, null, 2));
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
  // SIGTERM so --cpu-prof writes its profile.
  for (const o of overwatches) o.child.kill('SIGTERM');
  await Promise.all(overwatches.map((o) => new Promise((resolve) => (o.child.exitCode !== null ? resolve(null) : o.child.once('exit', resolve)))));
  cleanup();
}

main().catch((err: unknown) => {
  console.error(`agents-scale: ${(err as Error).stack ?? err}`);
  cleanup();
  process.exit(1);
});
