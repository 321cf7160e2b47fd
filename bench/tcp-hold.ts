// Bench only. What clients that pipeline TCP queries and never read their
// replies cost the server: starts the real server (src/cli/opengslb.js, one
// DNS worker, a name whose AAAA answer is 32 records, ~1 kB), opens
// --connections connections from 127.0.0.1 that each write --queries queries
// for it at once and never read, then reports the server's RSS before, at the
// peak and after the connections close, the kernel's TCP buffer memory (not in
// the RSS: the replies the kernel holds for the clients that do not read),
// how some of the kernel's TCP counters moved (memory pressure, prunes,
// drops, retransmissions; machine-wide), and whether another client (127.0.0.2) was answered meanwhile over UDP and
// TCP. The other client runs on a thread of its own, so the event loop that
// writes the pipelines never delays its queries or its clock.
//
// Usage: npx node bench/tcp-hold.ts [--connections 500] [--queries 10000] [--hold 10]

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { encodeQuery } from './lib/query-wire.ts';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../src/cli/runtime-flags.js';

/** A probe waits this long for its answer (connecting included) before it counts as unanswered. */
const PROBE_TIMEOUT_MS = 2000;
/** The other client's address. */
const OTHER_CLIENT = '127.0.0.2';

const query = encodeQuery(1, { name: 'app.bench.test', qtype: 28 });
const frame = Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]);

interface ProbeResult {
  readonly udp: { answered: number; tries: number; slowestMs: number };
  readonly tcp: { answered: number; tries: number; slowestMs: number; unansweredConnecting: number };
}

/** TCP probes not answered in time that were still connecting (the rest were connected and had sent their query). */
let tcpUnansweredConnecting = 0;

/** One TCP query from a fresh connection from OTHER_CLIENT; resolves with the milliseconds it took, or -1 when not answered in time. */
function probeTcp(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port, localAddress: OTHER_CLIENT });
    let connected = false;
    const timer = setTimeout(() => {
      if (!connected) tcpUnansweredConnecting++;
      finish(-1);
    }, PROBE_TIMEOUT_MS);
    const finish = (ms: number): void => {
      clearTimeout(timer);
      c.destroy();
      resolve(ms);
    };
    c.on('error', () => finish(-1));
    c.on('connect', () => {
      connected = true;
      c.write(frame);
    });
    c.once('data', () => finish(performance.now() - started));
  });
}

/** One UDP query from OTHER_CLIENT; resolves with the milliseconds it took, or -1 when not answered in time. */
function probeUdp(sock: dgram.Socket, port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    const onMessage = (): void => finish(performance.now() - started);
    const timer = setTimeout(() => finish(-1), PROBE_TIMEOUT_MS);
    const finish = (ms: number): void => {
      clearTimeout(timer);
      sock.off('message', onMessage);
      resolve(ms);
    };
    sock.on('message', onMessage);
    sock.send(query, port, '127.0.0.1');
  });
}

/** The other client: a UDP and a TCP query every 200 ms until `holdMs` is over; posts a ProbeResult. */
async function probeLoop(port: number, holdMs: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, OTHER_CLIENT, resolve));
  const result: ProbeResult = { udp: { answered: 0, tries: 0, slowestMs: 0 }, tcp: { answered: 0, tries: 0, slowestMs: 0, unansweredConnecting: 0 } };
  const count = (into: ProbeResult['udp'], ms: number): void => {
    into.tries++;
    if (ms >= 0) into.answered++;
    into.slowestMs = Math.max(into.slowestMs, ms < 0 ? PROBE_TIMEOUT_MS : ms);
  };
  const until = Date.now() + holdMs;
  while (Date.now() < until) {
    count(result.udp, await probeUdp(sock, port));
    count(result.tcp, await probeTcp(port));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  sock.close();
  result.tcp.unansweredConnecting = tcpUnansweredConnecting;
  parentPort?.postMessage(result);
}

if (!isMainThread) {
  const { port, holdMs } = workerData as { port: number; holdMs: number };
  await probeLoop(port, holdMs);
} else {
  await main();
}

async function main(): Promise<void> {
  const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  const { values } = parseArgs({ options: { connections: { type: 'string' }, queries: { type: 'string' }, hold: { type: 'string' } } });
  const connections = Number(values.connections ?? 500);
  const queries = Number(values.queries ?? 10_000);
  const holdSec = Number(values.hold ?? 10);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opengslb-tcp-hold-'));
  const config = [
    'dns:',
    '  listen_address: "127.0.0.1:0"',
    '  workers: 1',
    '  zones: [bench.test]',
    `  tcp_max_connections: ${Math.max(1024, connections + 16)}`,
    // The hogs all come from 127.0.0.1; the other client is another address.
    `  tcp_max_connections_per_client: ${Math.max(1024, connections + 16)}`,
    '  tcp_idle_timeout: 1h',
    'regions:',
    '  - name: r1',
    '    health_check: { type: none }',
    `    servers: [${Array.from({ length: 32 }, (_, i) => `{ address: "2001:db8::${(i + 1).toString(16)}" }`).join(', ')}]`,
    'domains:',
    '  - { name: app.bench.test, regions: [r1], max_answers: 32 }',
    'logging: { level: info, format: json }',
    'overwatch: { data_dir: ./state }',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'config.yaml'), config, { mode: 0o600 });

  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, path.join(ROOT, 'src/cli/opengslb.js'), '--config', path.join(dir, 'config.yaml')], {
    env: { ...process.env, ...SERVER_ENV },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let port = 0;
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('DNS listening'));
      const m = line === undefined ? null : /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
      if (m !== null && port === 0) {
        port = Number(m[1]);
        resolve();
      }
    });
    child.once('exit', () => reject(new Error(`the server exited: ${out}`)));
  });

  const rssMb = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  /** The kernel's memory for all TCP socket buffers on this machine (both ends of loopback), in MB. */
  const kernelTcpMb = (): number => (Number(/TCP: .* mem (\d+)/.exec(fs.readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? 0) * 4096) / 1048576;

  /** The kernel's TCP counters this bench reports the change of (machine-wide: other processes count too). */
  const KERNEL_COUNTERS = ['TCPMemoryPressures', 'PruneCalled', 'TCPRcvQDrop', 'ListenOverflows', 'TCPSynRetrans'] as const;
  const kernelCounters = (): Record<string, number> => {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = (lines[0] ?? '').split(/\s+/);
    const values = (lines[1] ?? '').split(/\s+/);
    const retrans = /Tcp: (?:\S+ ){11}(\d+)/.exec(fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'))[1] ?? '');
    const out: Record<string, number> = { RetransSegs: Number(retrans?.[1] ?? 0) };
    for (const name of KERNEL_COUNTERS) out[name] = Number(values[names.indexOf(name)] ?? 0);
    return out;
  };

  // Warm up: a few answers over TCP, so the baseline includes the code paths.
  for (let i = 0; i < 3; i++) await probeTcp(port);
  const before = rssMb();
  const kernelBefore = kernelTcpMb();
  const countersBefore = kernelCounters();
  const prober = new Worker(new URL(import.meta.url), { workerData: { port, holdMs: holdSec * 1000 } });
  const probed = once(prober, 'message') as Promise<[ProbeResult]>;
  const pipeline = Buffer.concat(Array.from({ length: queries }, () => frame));
  const hogs: net.Socket[] = [];
  for (let i = 0; i < connections; i++) {
    const h = net.connect({ host: '127.0.0.1', port });
    h.on('error', () => undefined);
    h.pause();
    h.on('connect', () => h.write(pipeline));
    hogs.push(h);
  }
  let peak = before;
  let kernelPeak = kernelBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb());
    kernelPeak = Math.max(kernelPeak, kernelTcpMb());
  }, 100);
  const [probes] = await probed;
  clearInterval(sampler);
  const countersAfter = kernelCounters();
  const atEnd = rssMb();
  for (const h of hogs) h.destroy();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const afterClose = rssMb();
  child.kill('SIGTERM');
  await once(child, 'exit');
  fs.rmSync(dir, { recursive: true, force: true });
  const mb = (x: number): number => Math.round(x * 10) / 10;
  const result = {
    connections,
    queriesPerConnection: queries,
    holdSeconds: holdSec,
    rssBeforeMb: mb(before),
    rssPeakMb: mb(peak),
    addedMb: mb(peak - before),
    rssAtEndOfHoldMb: mb(atEnd),
    rssAfterCloseMb: mb(afterClose),
    kernelTcpBuffersPeakMb: mb(kernelPeak - kernelBefore),
    kernelTcpCountersDuringHold: Object.fromEntries(Object.entries(countersAfter).map(([k, v]) => [k, v - (countersBefore[k] ?? 0)])),
    otherClientUdp: `${probes.udp.answered}/${probes.udp.tries} answered, slowest ${Math.round(probes.udp.slowestMs)} ms`,
    otherClientTcp: `${probes.tcp.answered}/${probes.tcp.tries} answered, slowest ${Math.round(probes.tcp.slowestMs)} ms${probes.tcp.answered < probes.tcp.tries ? ` (${probes.tcp.unansweredConnecting} of the unanswered still connecting)` : ''}`,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
