// Worker entry. Attaches the snapshot, live slots and counters handed over in
// workerData, binds this worker's UDP and TCP sockets, then answers until the
// main thread says stop. The messages (./messages.ts) from main:
//
//   main ──{type:'snapshot', buffer}──► worker   switch between packets; reply 'attached', or 'attach-failed' and exit 1
//   main ──{type:'signatures', batches}► worker   put RRSIGs the CPU pool made in advance into the signature cache
//   main ──{type:'stop', graceMs}─────► worker   close sockets, finish TCP queries in flight, reply 'stopped', exit 0
//   main ──{type:'hold', gate}────────► worker   tests only: block this thread until gate[0] ≠ 0 (a lagging or hung worker)
//
// and to main: 'listening' once both sockets are bound, 'bind-failed' (then exit 1),
// 'exception' for a bug caught at the per-packet boundary (rate-limited),
// and 'decisions' with a new routing-decision buffer whenever the snapshot
// carries a stat id the current one cannot hold (before 'listening' or
// 'attached'; from then on the old buffer is never written again).
// Besides, an event-loop timer bumps the worker's heartbeat word
// (COUNTER.HEARTBEAT) every HEARTBEAT_INTERVAL_MS: the pool terminates and
// restarts a worker whose word stops moving (a thread hung in a callback).

import { parentPort, workerData } from 'node:worker_threads';
import { RateLimiter } from '../src/dns/rrl.ts';
import { TcpClientTable } from '../src/dns/tcp-clients.ts';
import { GeoIpReader } from '../src/geo/lookup.ts';
import { COUNTER, createDecisionCounters, decisionCapacityFor, HEARTBEAT_INTERVAL_MS } from '../src/metrics/counters-layout.ts';
import { GROUP_WORDS, GRP_STAT_CUSTOM, GRP_STAT_FALLBACK, HDR_GROUP_COUNT, NO_SLOT, REC_GEO_STAT_NOT_SERVED, REC_GEO_STAT_UNDECIDED, REC_STAT_ID } from '../src/snapshot/layout.ts';
import type { DnsWorkerData, MainToWorker, WorkerToMain } from './messages.ts';
import { WorkerScratch } from './scratch.ts';
import { insertSignatures } from './sign-stage.ts';
import { startTcp, type TcpListener } from './transport-tcp.ts';
import type { UdpListener } from './transport-udp.ts';
import { startUdpIo, type UdpStart } from './udp-io.ts';

const data = workerData as DnsWorkerData;
const port = parentPort;
if (port === null) throw new Error('dns-worker.ts must run as a worker thread');

const post = (msg: WorkerToMain): void => port.postMessage(msg);

/** The shortest time between two exception reports of one worker. */
const EXCEPTION_REPORT_MS = 10_000;

// Attaching checks the snapshot's magic, version and bounds; a throw here exits
// the worker non-zero and the main thread restarts it with backoff.
const ctx = new WorkerScratch(data.snapshot, data.live, data.counters, data.counterBase, data.dnssec);
insertSignatures(ctx, data.signatures);
// The signature cache's clock (WorkerScratch.nowSec); unref'd so it never keeps the thread alive.
setInterval(() => ctx.tick(), 1000).unref();
// The heartbeat the pool watches (DnsPool, the watchdog): an event-loop timer,
// so a thread stuck in a callback stops it. Nothing on the query path.
const heartbeat = data.counterBase + COUNTER.HEARTBEAT;
setInterval(() => Atomics.add(data.counters, heartbeat, 1), HEARTBEAT_INTERVAL_MS).unref();
// Exceptions at the per-packet boundary reach the log: the first at once, then
// at most one every EXCEPTION_REPORT_MS, with how many were left unreported
// (a bug on a hot name must not turn into a log line per query).
let lastReportMs = -Infinity;
let unreported = 0;
ctx.onException = (err, where) => {
  const now = Date.now();
  if (now - lastReportMs < EXCEPTION_REPORT_MS) {
    unreported++;
    return;
  }
  lastReportMs = now;
  const e = err instanceof Error ? err : new Error(String(err));
  post({ type: 'exception', index: data.index, where, message: e.message, stack: e.stack ?? '', unreported });
  unreported = 0;
};
Atomics.store(data.counters, data.counterBase + COUNTER.SNAPSHOT_GENERATION, ctx.view.generation);
if (data.decisions !== null) ctx.decisions = data.decisions;
if (data.geo !== null) ctx.setGeo(new GeoIpReader(data.geo));
if (data.rrl !== null) ctx.rrl = new RateLimiter(data.rrl);
if (data.cookies !== null) {
  ctx.cookieKeys = data.cookies.keys;
  ctx.cookieRequire = data.cookies.require;
}
fitDecisions();

/**
 * Makes sure the routing-decision buffer holds every stat id of the snapshot
 * now served; otherwise switches to a larger, zeroed one and posts it. Runs
 * between packets, so the old buffer is final once the message is posted and
 * the main thread can fold it one last time.
 */
function fitDecisions(): void {
  const view = ctx.view;
  let max = -1;
  const see = (id: number): void => {
    if (id !== NO_SLOT && id > max) max = id;
  };
  for (let r = 0; r < view.recordCount; r++) {
    const rb = view.recordBase(r);
    see(view.u32[rb + REC_STAT_ID]);
    see(view.u32[rb + REC_GEO_STAT_NOT_SERVED]);
    see(view.u32[rb + REC_GEO_STAT_UNDECIDED]);
  }
  // Geolocation counters of every region group.
  for (let g = 0; g < view.u32[HDR_GROUP_COUNT]; g++) {
    const gb = view.groupBase(g);
    for (let w = GRP_STAT_CUSTOM; w <= GRP_STAT_FALLBACK && w < GROUP_WORDS; w++) see(view.u32[gb + w]);
  }
  if (max < ctx.decisions.length) return;
  ctx.decisions = createDecisionCounters(decisionCapacityFor(max));
  post({ type: 'decisions', index: data.index, buffer: ctx.decisions });
}

let udp: UdpListener | null = null;
let udpStart: UdpStart;
let tcp: TcpListener | null = null;
try {
  udpStart = await startUdpIo(ctx, data.udpIo, data.host, data.port, data.udpReceiveBuffer);
  udp = udpStart.listener;
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  post({ type: 'bind-failed', index: data.index, transport: 'udp', code: e.code ?? 'UNKNOWN', message: e.message });
  process.exit(1);
}
try {
  tcp = await startTcp(ctx, data.host, data.port, data.tcp, new TcpClientTable(data.tcpClients, data.index));
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  post({ type: 'bind-failed', index: data.index, transport: 'tcp', code: e.code ?? 'UNKNOWN', message: e.message });
  process.exit(1);
}

port.on('message', (msg: MainToWorker) => {
  if (msg.type === 'snapshot') {
    try {
      ctx.attach(msg.buffer, msg.live, msg.dnssec);
      Atomics.store(data.counters, data.counterBase + COUNTER.SNAPSHOT_GENERATION, ctx.view.generation);
      fitDecisions();
      post({ type: 'attached', index: data.index, generation: msg.generation });
    } catch (err) {
      // Never serve a snapshot the other workers no longer serve, nor a half
      // switched state: say why, then exit non-zero as a failed attach at
      // start does; the pool restarts this worker on the newest snapshot.
      post({ type: 'attach-failed', index: data.index, generation: msg.generation, message: (err as Error).message });
      process.exit(1);
    }
  } else if (msg.type === 'signatures') {
    try {
      insertSignatures(ctx, msg.batches);
    } catch {
      // A batch that does not unpack is skipped: those answers are signed on a miss instead.
    }
  } else if (msg.type === 'geo') {
    ctx.setGeo(new GeoIpReader(msg.buffer));
  } else if (msg.type === 'cookie-keys') {
    if (ctx.cookieKeys !== null) ctx.cookieKeys = msg.keys;
  } else if (msg.type === 'stop') {
    void stop(msg.graceMs);
  } else if (msg.type === 'hold') {
    // Test seam: a worker that lags behind a publish (see DnsPool.holdWorker).
    Atomics.wait(msg.gate, 0, 0);
  }
});

async function stop(graceMs: number): Promise<void> {
  await Promise.all([udp?.close(), tcp?.close(graceMs)]);
  post({ type: 'stopped', index: data.index });
  port?.close();
}

post({ type: 'listening', index: data.index, udpReceiveBuffer: udp.receiveBuffer, udpIo: udpStart.path, udpIoReason: udpStart.reason });
