// Bench only, main thread + worker threads. The project's own DNS load
// generator, for machines without dnsperf: worker threads, each with several
// sockets and many queries in flight, every reply's latency recorded into a
// log-linear histogram (bench/lib/histogram.ts).
//
// Usage: npx node bench/loadgen.ts --port P --queries FILE --duration S
//          [--host 127.0.0.1] [--rate QPS] [--threads 1] [--clients 8]
//          [--outstanding 100] [--tcp] [--do] [--timeout 5] [--out FILE]
//   Without --rate it runs closed-loop (saturation): `outstanding` queries in
//   flight, a new one sent as each reply arrives. With --rate it runs
//   open-loop at that offered load, paced by a busy event-loop spin (timers
//   only tick every ~1 ms, which would send bursts of 20 at 20k q/s and
//   measure the burst rather than the server). Prints one JSON object
//   (LoadResult) to stdout or --out. Measured here: ~90k q/s over UDP with
//   one thread at ~93 % of a core (about the server's own cost per query),
//   ~150k q/s over TCP (dnsperf: ~330k).
//
//   main ──spawn──▶ thread 0..T-1 (clients/T sockets, rate/T, outstanding/T each)
//        ◀─────────  {counts, histogram} when the duration and the drain are over
//        merge → LoadResult
//
// Only 127.0.0.0/8 targets are accepted: this is a load generator.

import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Histogram } from './lib/histogram.ts';
import { encodeQuery, parseQueryFile, type QuerySpec } from './lib/query-wire.ts';

/** What one run measured; `histogram` is sparse: [bucket, count] pairs. */
export interface LoadResult {
  readonly generator: 'own';
  readonly mode: 'saturation' | 'rate';
  readonly transport: 'udp' | 'tcp';
  readonly offeredQps: number | null;
  readonly threads: number;
  readonly clients: number;
  readonly sent: number;
  readonly completed: number;
  readonly lost: number;
  /** Queries the pacer could not send because every slot was in flight (rate mode). */
  readonly backlogged: number;
  /** TCP: connections the server closed and we reopened; in-flight queries on them are counted in `dropped`. */
  readonly reconnects: number;
  readonly dropped: number;
  readonly runTimeSec: number;
  readonly qps: number;
  readonly rcodes: Record<string, number>;
  readonly histogram: Array<[number, number]>;
}

interface ThreadData {
  readonly host: string;
  readonly port: number;
  readonly templates: Uint8Array[];
  readonly durationMs: number;
  /** Queries per second for this thread; 0 = closed loop. */
  readonly rate: number;
  readonly clients: number;
  /** Closed loop: queries in flight per socket. */
  readonly window: number;
  readonly tcp: boolean;
  readonly timeoutMs: number;
  /** First template index, so threads do not all start on the same query. */
  readonly firstQuery: number;
}

interface ThreadResult {
  sent: number;
  completed: number;
  lost: number;
  backlogged: number;
  reconnects: number;
  dropped: number;
  runTimeMs: number;
  rcodes: number[];
  counts: Float64Array;
}

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
// The ID carries the slot (low bits) and a sequence number (high bits) so a
// reply that arrives after its slot timed out and was reused is ignored.
const SLOT_BITS = 10;
const MAX_WINDOW = 1 << SLOT_BITS;
const SLOT_MASK = MAX_WINDOW - 1;
const SEQ_MASK = (1 << (16 - SLOT_BITS)) - 1;
// Per-slot send buffer: a query file line never encodes to more than 2 + 12 + 255 + 4 + 11 + 19 bytes.
const SLOT_BYTES = 512;
// After the duration: wait at most this long for replies still in flight.
const DRAIN_MS = 2000;
// Open loop: room for in-flight queries per socket (stalls of tens of ms at 20k q/s).
const RATE_WINDOW = MAX_WINDOW;

/* ───────────────────────────── worker side ───────────────────────────── */

/** One socket (UDP) or connection (TCP) with its window of in-flight slots. */
class Client {
  readonly sentAt: Float64Array;
  readonly seq: Uint8Array;
  readonly busy: Uint8Array;
  readonly free: Int32Array;
  freeTop: number;
  readonly bufs: Buffer[];
  udp: dgram.Socket | null = null;
  tcp: net.Socket | null = null;
  connected = false;
  partial: Buffer | null = null;
  inFlight = 0;

  constructor(window: number) {
    this.sentAt = new Float64Array(window);
    this.seq = new Uint8Array(window);
    this.busy = new Uint8Array(window);
    this.free = new Int32Array(window);
    this.bufs = [];
    for (let i = 0; i < window; i++) {
      this.free[i] = window - 1 - i;
      this.bufs.push(Buffer.allocUnsafe(SLOT_BYTES));
    }
    this.freeTop = window;
  }
}

/** Runs one generator thread until its duration and drain are over; resolves with its counts. */
async function runThread(d: ThreadData): Promise<ThreadResult> {
  const hist = new Histogram();
  const rcodes = new Array<number>(16).fill(0);
  const window = d.rate > 0 ? RATE_WINDOW : d.window;
  const clients: Client[] = [];
  let sent = 0;
  let completed = 0;
  let lost = 0;
  let backlogged = 0;
  let reconnects = 0;
  let dropped = 0;
  let nextQuery = d.firstQuery % d.templates.length;
  let sending = true;
  let lastReplyAt = 0;
  let onIdle: (() => void) | null = null;
  let rr = 0;

  /** Sends the next query from `c` using a free slot; false when none is free. */
  const sendOne = (c: Client): boolean => {
    if (c.freeTop === 0 || !c.connected) return false;
    const slot = c.free[--c.freeTop];
    const seq = (c.seq[slot] + 1) & SEQ_MASK;
    c.seq[slot] = seq;
    c.busy[slot] = 1;
    c.inFlight++;
    const tpl = d.templates[nextQuery];
    nextQuery = nextQuery + 1 === d.templates.length ? 0 : nextQuery + 1;
    const id = (seq << SLOT_BITS) | slot;
    const buf = c.bufs[slot];
    // A slot's buffer is only rewritten after its reply (or timeout), by
    // which time the previous send has long completed.
    if (c.udp !== null) {
      buf.set(tpl, 0);
      buf[0] = id >>> 8;
      buf[1] = id & 0xff;
      c.sentAt[slot] = performance.now();
      c.udp.send(buf, 0, tpl.length);
    } else {
      buf[0] = tpl.length >>> 8;
      buf[1] = tpl.length & 0xff;
      buf.set(tpl, 2);
      buf[2] = id >>> 8;
      buf[3] = id & 0xff;
      c.sentAt[slot] = performance.now();
      (c.tcp as net.Socket).write(buf.subarray(0, tpl.length + 2));
    }
    sent++;
    return true;
  };

  const release = (c: Client, slot: number): void => {
    c.busy[slot] = 0;
    c.free[c.freeTop++] = slot;
    c.inFlight--;
  };

  /** Handles one reply message (without the TCP length prefix). */
  const onReply = (c: Client, msg: Buffer, off: number, len: number): void => {
    if (len < 12) return;
    const id = (msg[off] << 8) | msg[off + 1];
    const slot = id & SLOT_MASK;
    if (slot >= window || c.busy[slot] === 0 || c.seq[slot] !== id >>> SLOT_BITS) return;
    const now = performance.now();
    hist.record((now - c.sentAt[slot]) * 1e6);
    rcodes[msg[off + 3] & 0x0f]++;
    completed++;
    lastReplyAt = now;
    release(c, slot);
    if (sending && d.rate === 0) sendOne(c);
    else if (!sending && onIdle !== null) onIdle();
  };

  const openTcp = (c: Client): Promise<void> =>
    new Promise((resolve, reject) => {
      const sock = net.connect({ host: d.host, port: d.port, noDelay: true });
      c.tcp = sock;
      c.partial = null;
      sock.once('connect', () => {
        c.connected = true;
        resolve();
      });
      sock.on('data', (data: Buffer) => {
        const buf = c.partial === null ? data : Buffer.concat([c.partial, data]);
        c.partial = null;
        let off = 0;
        while (buf.length - off >= 2) {
          const len = (buf[off] << 8) | buf[off + 1];
          if (buf.length - off - 2 < len) break;
          onReply(c, buf, off + 2, len);
          off += 2 + len;
        }
        if (off < buf.length) c.partial = Buffer.from(buf.subarray(off));
      });
      sock.on('error', (err) => {
        if (!c.connected) reject(err);
      });
      sock.on('close', () => {
        const wasConnected = c.connected;
        c.connected = false;
        // The server ended the connection (its per-connection query cap):
        // what was in flight on it will never be answered.
        for (let s = 0; s < window; s++) {
          if (c.busy[s] === 1) {
            dropped++;
            release(c, s);
          }
        }
        if (!wasConnected) return;
        if (sending) {
          reconnects++;
          openTcp(c).then(
            () => {
              if (d.rate === 0) for (let i = 0; i < d.window; i++) sendOne(c);
            },
            () => undefined,
          );
        } else if (onIdle !== null) onIdle();
      });
    });

  for (let i = 0; i < d.clients; i++) {
    const c = new Client(window);
    clients.push(c);
    if (d.tcp) {
      await openTcp(c);
    } else {
      const sock = dgram.createSocket('udp4');
      c.udp = sock;
      // Connected sockets skip the per-send address lookup and only accept the server's replies.
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.connect(d.port, d.host, () => {
          sock.off('error', reject);
          resolve();
        });
      });
      c.connected = true;
      sock.on('message', (msg: Buffer) => onReply(c, msg, 0, msg.length));
      sock.on('error', () => undefined);
    }
  }

  const t0 = performance.now();
  const end = t0 + d.durationMs;

  // Timeouts: a slot in flight longer than timeoutMs is lost and freed.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const c of clients) {
      for (let s = 0; s < window; s++) {
        if (c.busy[s] === 1 && now - c.sentAt[s] > d.timeoutMs) {
          lost++;
          release(c, s);
          if (sending && d.rate === 0) sendOne(c);
        }
      }
    }
  }, 100);

  if (d.rate === 0) {
    for (const c of clients) for (let i = 0; i < d.window; i++) sendOne(c);
    await new Promise<void>((resolve) => setTimeout(resolve, d.durationMs));
  } else {
    // Open loop: every turn of the event loop sends what is due by now.
    // setImmediate keeps the loop polling I/O with a zero timeout between
    // turns, so replies are timestamped within a few µs of arrival.
    let due = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        if (now >= end) {
          resolve();
          return;
        }
        const target = Math.floor(((now - t0) * d.rate) / 1000);
        while (due < target) {
          due++;
          let ok = false;
          for (let k = 0; k < clients.length && !ok; k++) {
            rr = rr + 1 === clients.length ? 0 : rr + 1;
            ok = sendOne(clients[rr]);
          }
          if (!ok) backlogged++;
        }
        setImmediate(tick);
      };
      setImmediate(tick);
    });
  }
  sending = false;
  const sendEnd = performance.now();

  // Drain: wait for replies still in flight, at most DRAIN_MS.
  const outstanding = (): number => clients.reduce((n, c) => n + c.inFlight, 0);
  if (outstanding() > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, DRAIN_MS);
      onIdle = () => {
        if (outstanding() === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
  }
  clearInterval(sweep);
  lost += outstanding();
  for (const c of clients) {
    c.udp?.close();
    c.tcp?.destroy();
  }
  const runTimeMs = Math.max(sendEnd, lastReplyAt) - t0;
  return { sent, completed, lost, backlogged, reconnects, dropped, runTimeMs, rcodes, counts: hist.counts };
}

/* ───────────────────────────── main side ───────────────────────────── */

/** Options of one generator run. */
export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly queries: readonly QuerySpec[];
  readonly durationSec: number;
  /** Offered load in q/s; 0 = saturation (closed loop). */
  readonly rate: number;
  readonly threads: number;
  readonly clients: number;
  readonly outstanding: number;
  readonly tcp: boolean;
  readonly timeoutSec: number;
  /** Send EDNS (1232 bytes) with the DNSSEC OK bit, so a signing server answers with RRSIGs. */
  readonly dnssecOk?: boolean;
}

/** Runs the generator in this process's worker threads and merges their results. Rejects on a socket error. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (!o.host.startsWith('127.')) throw new Error(`--host ${o.host}: only 127.0.0.0/8 targets are allowed`);
  const templates = o.queries.map((q, i) => encodeQuery(i & 0xffff, q, o.dnssecOk === true ? { udpSize: 1232, dnssecOk: true } : undefined));
  const threads = Math.max(1, Math.min(o.threads, o.clients));
  const jobs: Promise<ThreadResult>[] = [];
  for (let t = 0; t < threads; t++) {
    const clients = Math.floor(o.clients / threads) + (t < o.clients % threads ? 1 : 0);
    const outstanding = Math.floor(o.outstanding / threads) + (t < o.outstanding % threads ? 1 : 0);
    const data: ThreadData = {
      host: o.host,
      port: o.port,
      templates,
      durationMs: o.durationSec * 1000,
      rate: o.rate / threads,
      clients,
      window: Math.max(1, Math.min(MAX_WINDOW, Math.ceil(outstanding / clients))),
      tcp: o.tcp,
      timeoutMs: o.timeoutSec * 1000,
      firstQuery: Math.floor((t * templates.length) / threads),
    };
    const worker = new Worker(new URL(import.meta.url), { workerData: data });
    jobs.push(
      new Promise((resolve, reject) => {
        worker.once('message', (r: ThreadResult) => resolve(r));
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`generator thread exited with code ${code} before reporting`)));
      }),
    );
  }
  const results = await Promise.all(jobs);
  const hist = new Histogram();
  const rcodes: Record<string, number> = {};
  let sent = 0;
  let completed = 0;
  let lost = 0;
  let backlogged = 0;
  let reconnects = 0;
  let dropped = 0;
  let runTimeMs = 0;
  for (const r of results) {
    hist.merge(new Histogram(r.counts));
    sent += r.sent;
    completed += r.completed;
    lost += r.lost;
    backlogged += r.backlogged;
    reconnects += r.reconnects;
    dropped += r.dropped;
    runTimeMs = Math.max(runTimeMs, r.runTimeMs);
    for (let i = 0; i < 16; i++) if (r.rcodes[i] > 0) rcodes[RCODE_NAMES[i] ?? `RCODE${i}`] = (rcodes[RCODE_NAMES[i] ?? `RCODE${i}`] ?? 0) + r.rcodes[i];
  }
  const sparse: Array<[number, number]> = [];
  for (let i = 0; i < hist.counts.length; i++) if (hist.counts[i] > 0) sparse.push([i, hist.counts[i]]);
  return {
    generator: 'own',
    mode: o.rate > 0 ? 'rate' : 'saturation',
    transport: o.tcp ? 'tcp' : 'udp',
    offeredQps: o.rate > 0 ? o.rate : null,
    threads,
    clients: o.clients,
    sent,
    completed,
    lost,
    backlogged,
    reconnects,
    dropped,
    runTimeSec: runTimeMs / 1000,
    qps: runTimeMs > 0 ? completed / (runTimeMs / 1000) : 0,
    rcodes,
    histogram: sparse,
  };
}

function readNumber(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    process.stderr.write(`loadgen: --${name}: "${raw}" is not a number in ${min}-${max}\n`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      queries: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      threads: { type: 'string' },
      clients: { type: 'string' },
      outstanding: { type: 'string' },
      timeout: { type: 'string' },
      tcp: { type: 'boolean', default: false },
      do: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: true,
  });
  if (v.port === undefined || v.queries === undefined) {
    process.stderr.write('usage: npx node bench/loadgen.ts --port P --queries FILE [--duration 5] [--rate QPS] [--threads 1] [--clients 8] [--outstanding 100] [--tcp] [--do] [--timeout 5] [--out FILE]\n');
    process.exit(2);
  }
  const result = await runLoad({
    host: v.host as string,
    port: readNumber('port', v.port, 0, 1, 65535),
    queries: parseQueryFile(fs.readFileSync(v.queries, 'utf8')),
    durationSec: readNumber('duration', v.duration, 5, 0.1, 3600),
    rate: readNumber('rate', v.rate, 0, 0, 10_000_000),
    threads: readNumber('threads', v.threads, 1, 1, 64),
    clients: readNumber('clients', v.clients, 8, 1, 1024),
    outstanding: readNumber('outstanding', v.outstanding, 100, 1, 65_535),
    tcp: v.tcp === true,
    timeoutSec: readNumber('timeout', v.timeout, 5, 0.1, 60),
    dnssecOk: v.do === true,
  });
  const text = `${JSON.stringify(result)}\n`;
  if (v.out !== undefined) fs.writeFileSync(v.out, text);
  else process.stdout.write(text);
}

if (!isMainThread) {
  runThread(workerData as ThreadData).then(
    (r) => parentPort?.postMessage(r, [r.counts.buffer as ArrayBuffer]),
    (err: unknown) => {
      throw err;
    },
  );
} else if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
