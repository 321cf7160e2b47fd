// Bench only, main thread, cold. Starts what the load is aimed at: the bare
// responder, the real server (production entry point, generated config), and
// the local HTTP backends that health-checked scenarios probe (the servers
// role of bench/health-scale.ts). A target is ready when it answers a DNS
// probe with NOERROR and at least one A record.
//
//   startBare   ──spawn──▶ bare-responder.ts --port P [--tcp]  ──stdout──▶ {"ready":true,"port":P}
//   startEngine ──spawn──▶ src/cli/opengslb.js --config <tmp>/<scenario>.yaml
//   both        ◀──poll─── DNS probe (dns-packet, UDP) every 200 ms until NOERROR + A
//   startKnot   ──spawn──▶ knotd -c <tmp>/knot/knot.conf (static zone, 1 UDP worker)
//   buildFloor  ──cc──▶ <tmp>/floor-responder (bench/floor-responder.c); startFloor ──spawn──▶ it, on port P
//   startBackends ──fork──▶ health-scale.ts --role servers  ──IPC──▶ {port}

import { fork, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { ManagedChild } from './children.ts';
import { knotZone, type ConfigContext, type Scenario } from './scenarios.ts';

const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = path.dirname(BENCH_DIR);
const BARE_ENTRY = path.join(BENCH_DIR, 'bare-responder.ts');
const BACKENDS_ENTRY = path.join(BENCH_DIR, 'health-scale.ts');
const FLOOR_SOURCE = path.join(BENCH_DIR, 'floor-responder.c');
// The engine runs with the flags production uses.
export const ENGINE_ENTRY = path.join(REPO_DIR, 'src', 'cli', 'opengslb.js');
export const HOST = '127.0.0.1';

const PROBE_TIMEOUT_MS = 500;
const PROBE_INTERVAL_MS = 200;

/** A started target: the scenario it serves, its process and port. */
export interface RunningTarget {
  readonly scenario: Scenario;
  readonly child: ManagedChild;
  readonly port: number;
  readonly command: readonly string[];
  readonly configText: string | null;
  /** The answer to the readiness probe, e.g. ["10.0.0.1"]. */
  readonly probeAnswer: readonly string[];
  /** Milliseconds from spawn to the first good answer. */
  readonly startMs: number;
}

/** Shortens absolute paths inside the repo to repo-relative ones, for the report. */
export function repoRelative(arg: string): string {
  return arg.startsWith(REPO_DIR + path.sep) ? arg.slice(REPO_DIR.length + 1) : arg;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Finds a port that is free for both UDP and TCP on 127.0.0.1 (the engine
 * binds both), below the ephemeral range (32768+): a port the OS handed out
 * for port 0 can be taken again by any outgoing connection before the engine
 * binds it, and in the health scenario the engine's own first check round
 * opens a thousand of them first.
 */
export async function findFreePort(): Promise<number> {
  const free = (port: number, make: () => dgram.Socket | net.Server): Promise<boolean> =>
    new Promise((resolve) => {
      const sock = make();
      sock.once('error', () => resolve(false));
      if (sock instanceof net.Server) sock.listen({ port, host: HOST, exclusive: true }, () => sock.close(() => resolve(true)));
      else sock.bind({ port, address: HOST, exclusive: true }, () => sock.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 15_000 + Math.floor(Math.random() * 15_000);
    if ((await free(port, () => dgram.createSocket('udp4'))) && (await free(port, () => net.createServer()))) return port;
  }
  throw new Error('no port between 15000 and 30000 free for both UDP and TCP on 127.0.0.1 after 50 attempts');
}

interface ProbeResult {
  readonly rcode: number;
  readonly addresses: string[];
}

/** Sends one A query for `name` and resolves with the decoded reply, or null after timeoutMs. */
function probeDns(port: number, name: string, timeoutMs: number): Promise<ProbeResult | null> {
  const id = Math.floor(Math.random() * 0x10000);
  const query = dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type: 'A', name }] });
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
      // A CNAME pool answers a CNAME (its target outside our zones): that too shows a ready server.
      for (const answer of decoded.answers ?? []) if (answer.type === 'A' || answer.type === 'CNAME') addresses.push(String(answer.data));
      finish({ rcode: msg[3] & 0x0f, addresses });
    });
    socket.send(query, port, HOST);
  });
}

/**
 * Polls until the target answers `name` A with NOERROR and at least one A
 * (or CNAME) record. Throws after timeoutMs, or as soon as the child exits.
 */
async function waitForAnswer(child: ManagedChild, port: number, name: string, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no reply';
  while (Date.now() < deadline) {
    if (child.hasExited) throw new Error(child.describe());
    const reply = await probeDns(port, name, PROBE_TIMEOUT_MS);
    if (reply !== null) {
      if (reply.rcode === 0 && reply.addresses.length > 0) return reply.addresses;
      last = `rcode ${reply.rcode}, ${reply.addresses.length} A records`;
    }
    await sleep(PROBE_INTERVAL_MS);
  }
  throw new Error(`no NOERROR answer for ${name} A on ${HOST}:${port} within ${timeoutMs} ms (last: ${last})\n${child.describe()}`);
}

/** Starts the bare responder (UDP, plus TCP for TCP scenarios) and waits for its ready line and a good answer. */
export async function startBare(s: Scenario, workers: number, timeoutMs: number): Promise<RunningTarget> {
  const t0 = performance.now();
  const port = await findFreePort();
  const command = [process.execPath, BARE_ENTRY, '--port', String(port), '--workers', String(workers), ...(s.transport === 'tcp' ? ['--tcp'] : []), ...(s.udpIo === 'batched' ? ['--io', 'batched'] : [])];
  // The engine's environment, so the two differ only in what answers.
  const child = new ManagedChild(s.id, spawn(command[0], command.slice(1), { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SERVER_ENV } }));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${timeoutMs} ms\n${child.describe()}`)), timeoutMs);
    const lines = readline.createInterface({ input: child.proc.stdout! });
    lines.on('line', (line) => {
      if (line.includes('"ready":true')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(child.describe()));
    });
  });
  const probeAnswer = await waitForAnswer(child, port, s.probe, timeoutMs);
  return { scenario: s, child, port, command, configText: null, probeAnswer, startMs: Math.round(performance.now() - t0) };
}

/**
 * Starts the production entry point with the scenario's config (mode 0600 in
 * `dir`/<scenario id>/) and polls DNS until it answers. Throws with the server's output when
 * it exits or does not answer in time.
 */
export async function startEngine(s: Scenario, entry: string, ctx: Omit<ConfigContext, 'port'>, dir: string, timeoutMs: number): Promise<RunningTarget> {
  if (s.config === undefined) throw new Error(`scenario ${s.id} has no engine config`);
  if (!fs.existsSync(entry)) throw new Error(`engine entry point ${repoRelative(entry)} not found`);
  const t0 = performance.now();
  const port = await findFreePort();
  const configText = s.config({ ...ctx, port });
  // A directory per scenario: the config's data_dir (./state) is next to it, and each running engine holds its own (one instance per state directory).
  const home = path.join(dir, s.id);
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const configPath = path.join(home, 'config.yaml');
  fs.writeFileSync(configPath, configText, { mode: 0o600 });
  const command = [process.execPath, ...SERVER_NODE_FLAGS, entry, '--config', configPath];
  // The server's own environment (src/cli/runtime-flags.js), as npm start and the bin give it.
  const child = new ManagedChild(s.id, spawn(command[0], command.slice(1), { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SERVER_ENV } }));
  const probeAnswer = await waitForAnswer(child, port, s.probe, timeoutMs);
  return { scenario: s, child, port, command, configText, probeAnswer, startMs: Math.round(performance.now() - t0) };
}

/**
 * Forks bench/health-scale.ts in its servers role: HTTP servers answering
 * 200 on 0.0.0.0:P (reusePort), refusing peers outside 127.0.0.0/8. Resolves
 * with the process and the port.
 */
export async function startBackends(threads: number): Promise<{ child: ManagedChild; port: number }> {
  const proc = fork(BACKENDS_ENTRY, ['--role', 'servers', '--server-threads', String(threads)], { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const child = new ManagedChild('backends', proc);
  const ready = once(proc, 'message') as Promise<[{ port: number }]>;
  const [msg] = await Promise.race([
    ready,
    child.exited.then(() => {
      throw new Error(child.describe());
    }),
  ]);
  // The IPC channel is only needed for the ready message; keep it from holding this process open.
  proc.disconnect();
  return { child, port: msg.port };
}

/** Returns knotd's version line, or null when Knot DNS is not installed. */
export function findKnot(): string | null {
  const r = spawnSync('knotd', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined || r.status !== 0) return null;
  return r.stdout.trim().split('\n')[0] ?? 'unknown';
}

/**
 * Starts Knot DNS on the scenario's static zone with one UDP and one TCP
 * worker (the engine's worker count is 1 too), storage in `dir`, and polls
 * DNS until it answers.
 */
export async function startKnot(s: Scenario, workers: number, dir: string, timeoutMs: number): Promise<RunningTarget> {
  const t0 = performance.now();
  const port = await findFreePort();
  const home = path.join(dir, 'knot');
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(home, 'bench.test.zone'), knotZone());
  const configText = [
    'server:',
    `    listen: ${HOST}@${port}`,
    `    rundir: ${home}`,
    `    udp-workers: ${workers}`,
    `    tcp-workers: ${workers}`,
    '    background-workers: 1',
    // As root, knotd would otherwise switch to the "knot" user, which cannot read the temp dir.
    ...(process.getuid?.() === 0 ? ['    user: root'] : []),
    'log:',
    '  - target: stderr',
    '    any: warning',
    'database:',
    `    storage: ${home}`,
    'template:',
    '  - id: default',
    `    storage: ${home}`,
    'zone:',
    '  - domain: bench.test',
    '    file: bench.test.zone',
    '',
  ].join('\n');
  const configPath = path.join(home, 'knot.conf');
  fs.writeFileSync(configPath, configText, { mode: 0o600 });
  const command = ['knotd', '-c', configPath];
  const child = new ManagedChild(s.id, spawn(command[0], command.slice(1), { cwd: home, stdio: ['ignore', 'pipe', 'pipe'] }));
  const probeAnswer = await waitForAnswer(child, port, s.probe, timeoutMs);
  return { scenario: s, child, port, command, configText: `${configText}\n# bench.test.zone\n${knotZone()}`, probeAnswer, startMs: Math.round(performance.now() - t0) };
}

/**
 * Builds bench/floor-responder.c with the system's C compiler (`cc`, as
 * node-gyp finds one) into `dir`. Returns the program's path, or the reason
 * it could not be built (no compiler, or the compiler's last lines).
 */
export function buildFloor(dir: string): { path: string } | { reason: string } {
  const out = path.join(dir, 'floor-responder');
  const args = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', out, FLOOR_SOURCE];
  const r = spawnSync('cc', args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error !== undefined) return { reason: `cc: ${r.error.message} (apt-get install gcc)` };
  if (r.status !== 0) return { reason: `cc ${args.join(' ')} exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  return { path: out };
}

/** Starts the built floor responder on a free port and polls DNS until it answers. */
export async function startFloor(s: Scenario, program: string, timeoutMs: number): Promise<RunningTarget> {
  const t0 = performance.now();
  const port = await findFreePort();
  const command = [program, String(port)];
  const child = new ManagedChild(s.id, spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
  const probeAnswer = await waitForAnswer(child, port, s.probe, timeoutMs);
  return { scenario: s, child, port, command, configText: null, probeAnswer, startMs: Math.round(performance.now() - t0) };
}
