// Test helper. Runs the real entry points (src/cli/opengslb.js,
// src/cli/opengslb-cli.js) as child processes under the Node running the tests,
// with bounded waits, and kills whatever is still running after the test.

import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ROOT } from './markdown.ts';

export const SERVER = join(ROOT, 'src/cli/opengslb.js');
export const CLI = join(ROOT, 'src/cli/opengslb-cli.js');

export interface RunOptions {
  /** Environment of the child; the test process's own when absent. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** The child is killed and the test fails after this long (default 15 s). */
  readonly timeoutMs?: number;
  /** Node binary to run the entry with (default: this process's, Node 24); tests of the version guard pass an older one. */
  readonly node?: string;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs an entry point to completion and returns its exit code and output. */
export async function run(entry: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawn(opts.node ?? process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  assert.notEqual(signal, 'SIGKILL', `${entry} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  return { code, signal, stdout, stderr };
}

/** Collects a stream's lines and lets a test wait for the first one that matches. */
export class Lines {
  readonly lines: string[] = [];
  #tail = '';
  #ended = false;
  readonly #waiters = new Set<() => void>();

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => {
      const parts = (this.#tail + s).split('\n');
      this.#tail = parts.pop() ?? '';
      this.lines.push(...parts);
      for (const w of [...this.#waiters]) w();
    });
    stream.on('end', () => {
      if (this.#tail !== '') this.lines.push(this.#tail);
      this.#ended = true;
      for (const w of [...this.#waiters]) w();
    });
  }

  get text(): string {
    return this.lines.join('\n');
  }

  /** Resolves with the first line at index ≥ `from` matching `re`; rejects when the stream ends first or after `timeoutMs`. */
  waitFor(re: RegExp, from = 0, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = this.lines.slice(from).find((l) => re.test(l));
        if (hit !== undefined) {
          done();
          resolve(hit);
        } else if (this.#ended) {
          done();
          reject(new Error(`output ended without a line matching ${re}:\n${this.text}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no line matching ${re} within ${timeoutMs} ms:\n${this.text}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

/** How a child process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Resolves when `child` exits; SIGKILLs it when the test ends if it is still running. */
export function reapAfter(t: TestContext, child: ChildProcess): Promise<Exit> {
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return exited;
}

export interface RunningServer {
  readonly child: ChildProcess;
  /** The UDP/TCP port the server logged it listens on. */
  readonly port: number;
  readonly out: Lines;
  readonly err: Lines;
  readonly exited: Promise<Exit>;
}

/**
 * Spawns `opengslb ARGS` and resolves with the first stdout line matching
 * `ready` (the error carries its stderr otherwise). SIGKILLs it after the
 * test if it is still running.
 */
async function spawnUntil(t: TestContext, args: readonly string[], ready: RegExp, opts: RunOptions): Promise<Omit<RunningServer, 'port'> & { line: string }> {
  const child = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT });
  const exited = reapAfter(t, child);
  const out = new Lines(child.stdout!);
  const err = new Lines(child.stderr!);
  try {
    return { child, out, err, exited, line: await out.waitFor(ready, 0, opts.timeoutMs ?? 15_000) };
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstderr:\n${err.text}`);
  }
}

/**
 * Starts `opengslb --config FILE` (which should listen on 127.0.0.1 port 0) and
 * resolves once it logs the address it listens on. SIGKILLs it after the test
 * if it is still running.
 */
export async function startOpengslb(t: TestContext, configFile: string, opts: RunOptions = {}): Promise<RunningServer> {
  const { child, out, err, exited, line } = await spawnUntil(t, ['--config', configFile], /DNS listening on UDP and TCP/, opts);
  const m = /(?:\baddress=|"address":")127\.0\.0\.1:(\d+)/.exec(line);
  assert.ok(m, `no address in the listening line: ${line}`);
  return { child, port: Number(m[1]), out, err, exited };
}

export interface RunningAgent {
  readonly child: ChildProcess;
  readonly out: Lines;
  readonly err: Lines;
  /** The agent id it logged. */
  readonly agentId: string;
  readonly exited: Promise<Exit>;
}

/**
 * Starts `opengslb --mode agent --config FILE` and resolves once it logs that
 * it runs (after its first check round, with the registration queued).
 * SIGKILLs it after the test if it is still running.
 */
export async function startAgent(t: TestContext, configFile: string, opts: RunOptions = {}): Promise<RunningAgent> {
  const { child, out, err, exited, line } = await spawnUntil(t, ['--mode', 'agent', '--config', configFile], /OpenGSLB agent running/, opts);
  const m = /(?:\bagent=|"agent":")([A-Za-z0-9._-]+)/.exec(line);
  assert.ok(m, `no agent id in: ${line}`);
  return { child, out, err, agentId: m[1], exited };
}

/**
 * The ports the kernel hands out on its own (bind to port 0, the local end of
 * a connect): read from Linux, else the IANA dynamic range.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low > 1024) return [low, high];
  } catch {
    // Not Linux: the IANA range.
  }
  return [49152, 65535];
}

/** Whether nothing holds `port` on 127.0.0.1, over TCP and UDP. */
async function portIsFree(port: number): Promise<boolean> {
  const tcp = createServer();
  const tcpOk = await new Promise<boolean>((resolve) => {
    tcp.once('error', () => resolve(false));
    tcp.listen({ host: '127.0.0.1', port }, () => resolve(true));
  });
  if (tcpOk) await new Promise((resolve) => tcp.close(resolve));
  if (!tcpOk) return false;
  const udp = createSocket('udp4');
  const udpOk = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind({ address: '127.0.0.1', port }, () => resolve(true));
  });
  await new Promise<void>((resolve) => udp.close(() => resolve()));
  return udpOk;
}

/**
 * A port on 127.0.0.1 nobody holds now (TCP and UDP), for a server whose
 * address must be known before it starts. Taken below the kernel's ephemeral
 * range: a port the kernel picked for port 0 could be handed out again before
 * the server binds it, to any socket's local end (a client's connect, an
 * agent's UDP socket, even a TCP connect to that very port, which Linux then
 * connects to itself) and the server would fail with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const low = Math.max(10_000, ephemeralLow - 20_000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (ephemeralLow - low));
    if (await portIsFree(port)) return port;
  }
  throw new Error(`no free port on 127.0.0.1 between ${low} and ${ephemeralLow - 1} in 200 tries`);
}

/** The admin API base URL of a port on 127.0.0.1. */
export function apiUrl(port: number): string {
  return `http://127.0.0.1:${port}`;
}
