// Main thread. Owns the DNS worker threads: starts them, hands each the
// current snapshot, live slots and its counter stride, publishes new
// snapshots, restarts a worker that dies (with exponential backoff, while the
// others keep answering), and stops them all on shutdown.
//
//   main ──new Worker(workerData: snapshot SAB, live SAB, counters SAB)──► worker i
//   main ◄── 'listening' | 'bind-failed' | 'attached' | 'stopped' ──────── worker i
//   main ──'snapshot' (new SAB, shared not copied) ───────────────────────► every worker
//   main ◄── 'attach-failed', then exit 1 ──────────────────────────────── worker i (never serves an older snapshot than the others)
//   worker exits unexpectedly ──► main waits backoff(n) ──► new Worker(i) with the latest snapshot
//   worker's heartbeat word still, or a 'snapshot' unconfirmed, for switchDeadlineMs ──► 'worker-stuck', terminate() ──► restarted as above

import { EventEmitter, once } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import type { DnsWorkerData, MainToWorker, SignatureBatch, TcpSettings, WorkerCookies, WorkerDnssec, WorkerToMain } from '../../workers/messages.ts';
import type { CookieKeys } from '../dns/cookie.ts';
import type { RrlSettings } from '../dns/rrl.ts';
import { createTcpClientTable, reclaimColumnSoon, type TcpClientShared } from '../dns/tcp-clients.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { formatAddress } from '../lib/ip.ts';
import { createWorker } from '../lib/worker-thread.ts';
import { COUNTER, COUNTER_STRIDE } from '../metrics/counters-layout.ts';
import { SnapshotView } from '../snapshot/reader.ts';

const WORKER_URL = new URL('../../workers/dns-worker.ts', import.meta.url);

export interface DnsPoolOptions {
  readonly workers: number;
  readonly host: string;
  readonly port: number;
  readonly snapshot: SharedArrayBuffer;
  readonly generation: number;
  readonly live: Int32Array;
  /** The GeoIP database every worker reads (one copy, shared), or null. */
  readonly geo?: SharedArrayBuffer | null;
  readonly counters: Int32Array;
  /** SO_RCVBUF asked for on each worker's UDP socket; 0 or absent keeps the kernel's default. */
  readonly udpReceiveBuffer?: number;
  /** The signers of the first snapshot's zones; default: none (nothing signed). */
  readonly dnssec?: WorkerDnssec;
  /** Signatures made in advance that a (re)started worker starts with; default: none. */
  readonly signatures?: () => readonly SignatureBatch[];
  /** dns.udp_io; absent = 'auto'. */
  readonly udpIo?: 'auto' | 'dgram';
  readonly tcp: TcpSettings;
  /** dns.rrl with its shared table; absent or null = off. */
  readonly rrl?: RrlSettings | null;
  /** dns.cookies with the first keys; absent or null = off. */
  readonly cookies?: WorkerCookies | null;
  /** First restart delay; doubles per consecutive crash up to restartMaxMs. */
  readonly restartBaseMs?: number;
  readonly restartMaxMs?: number;
  /**
   * A running worker whose heartbeat has not moved for this many ms, or that
   * has not confirmed a snapshot sent to it within it (no 'attached', no
   * 'attach-failed', no exit), is terminated and restarted as a crashed one
   * is; default DEFAULT_SWITCH_DEADLINE_MS.
   */
  readonly switchDeadlineMs?: number;
}

/**
 * How long a worker's heartbeat may stand still, or a snapshot stay
 * unconfirmed, before the pool calls the worker stuck (see
 * DnsPoolOptions.switchDeadlineMs). The heartbeat moves every
 * HEARTBEAT_INTERVAL_MS (500 ms) while the worker's event loop turns; a
 * worker switches between two packets, in well under a millisecond for a
 * small snapshot and some milliseconds for a large one (the attach checks
 * walk its tables). Five times the 2 s after which a reload names a worker
 * lagging leaves room for a long garbage-collection pause and for a thread
 * kept off a loaded machine's cores: a wake-up reads at most a few UDP
 * batches before timers get their turn (workers/transport-udp-batch.ts). A
 * hung worker answers no query, its SO_REUSEPORT share is lost, and it holds
 * the slots a reload released (whenServing()) for as long as it lives.
 */
export const DEFAULT_SWITCH_DEADLINE_MS = 10_000;

/**
 * How often the watchdog looks at every worker (ms). A look that comes more
 * than twice this late means the main thread itself was stalled (a long
 * compile, a pause of the whole process): its clock says nothing about the
 * workers then, so that look only starts every wait over.
 */
const WATCH_INTERVAL_MS = 1000;

/** Why the watchdog terminated a worker: its heartbeat stood still, or it left a snapshot unconfirmed. */
export type StuckReason = 'heartbeat' | 'switch';

/** What 'worker-stuck' carries besides the worker's index. */
export interface StuckWorker {
  readonly reason: StuckReason;
  /** ms since its heartbeat was last seen moving. */
  readonly silentMs: number;
  /** The generation it had not confirmed and ms since it started waiting, or null when it was not waiting for one. */
  readonly generation: number | null;
  readonly waitedMs: number | null;
}

interface Slot {
  worker: Worker | null;
  /** The oldest generation its worker may still serve: the one it started on, then the last it confirmed. */
  generation: number;
  startedAt: number;
  crashes: number;
  timer: NodeJS.Timeout | null;
  /** Resolves once the per-client TCP counts of its last worker are zeroed (after an exit); the replacement starts after that. */
  reclaimed: Promise<void>;
  /** The newest generation sent to its worker. */
  sent: number;
  /** performance.now() since its worker has waited for `sent` to be confirmed (the send, or its last confirmation since); NaN when not waiting. */
  waitingSince: number;
  /** The generation its worker had confirmed when the wait started: a later publish does not move the deadline, a confirmation does. */
  waitedFrom: number;
  /** Its worker's heartbeat word as last read (COUNTER.HEARTBEAT). */
  beat: number;
  /** performance.now() when `beat` was last seen moving (or watching started, at 'listening'); NaN while not watched (not listening yet, exited). */
  beatSeenAt: number;
}

/**
 * Throws OPENGSLB_ERR_SNAPSHOT_COMPILE when `buffer` would not attach as a
 * worker attaches it (SnapshotView's checks); `serving` is the generation
 * that keeps serving. A worker that cannot attach exits, so a bad snapshot
 * must be refused before any worker sees it, or every worker would restart
 * in a loop.
 */
export function assertAttaches(buffer: SharedArrayBuffer, generation: number, serving: number): void {
  try {
    new SnapshotView(buffer);
  } catch (err) {
    throw new OpenGslbError('OPENGSLB_ERR_SNAPSHOT_COMPILE', `snapshot generation ${generation} does not attach (${(err as Error).message}); generation ${serving} keeps serving`, { cause: err });
  }
}

/** Which workers did not switch to a published snapshot. */
export interface PublishOutcome {
  /** Running, but had not confirmed the switch within the timeout. */
  readonly lagging: number[];
  /** Said they could not attach it: each exits and is restarted on the newest snapshot. */
  readonly failed: number[];
}

/**
 * Runs the DNS workers. Events: 'worker-exit' (index, code, restartInMs),
 * 'worker-restarted' (index), 'attach-failed' (index, message; the worker
 * exits next and is restarted), 'worker-stuck' (index, StuckWorker: its
 * heartbeat had not moved, or it had not confirmed a snapshot, within
 * switchDeadlineMs, and it is terminated; 'worker-exit' and the restart
 * follow),
 * 'decisions' (index, buffer): worker `index` now counts routing decisions in
 * `buffer` and will never write its previous one again (metrics fold it).
 */
export class DnsPool extends EventEmitter {
  readonly #options: DnsPoolOptions;
  readonly #slots: Slot[] = [];
  #snapshot: SharedArrayBuffer;
  #generation: number;
  #live: Int32Array;
  #dnssec: WorkerDnssec;
  #geo: SharedArrayBuffer | null;
  /** The cookie keys a (re)started worker starts with: the newest published. */
  #cookies: WorkerCookies | null;
  /** Moves on with every GeoIP database published, so a worker that was starting gets the newest. */
  #geoVersion = 0;
  #stopping = false;
  /** Set once start() has succeeded: later spawns are restarts, retried with backoff whatever made them fail. */
  #started = false;
  /** Publishes waiting for every worker's 'attached' acknowledgement. */
  readonly #acks = new Set<{ generation: number; pending: Set<number>; failed: number[]; done: () => void }>();
  /** whenServing() callers, each waiting until no running worker serves a generation older than its own. */
  #serving: { generation: number; resolve: () => void }[] = [];
  /** Total restarts since start, for metrics. */
  restarts = 0;
  /** Workers terminated by the watchdog since start, by reason (metrics). */
  readonly stuck: Record<StuckReason, number> = { heartbeat: 0, switch: 0 };
  /** The watchdog's interval (#watchAll()), from start() to stop(). */
  #watchdog: NodeJS.Timeout | null = null;
  /** performance.now() of the watchdog's last look. */
  #lastWatch = 0;
  /** Bytes the receive buffer of the UDP socket last bound was granted; 0 before start. */
  udpReceiveBufferGranted = 0;
  /** Each worker index's UDP path and why (from its 'listening' message); empty entries before it listens. */
  readonly udpIo: { path: 'batched' | 'dgram' | ''; reason: string }[] = [];
  /** Each worker index's routing-decision buffer (null until it posts one); a restarted worker carries on in it. */
  readonly #decisions: (Int32Array | null)[] = [];
  /** The per-client TCP connection counts all workers share (src/dns/tcp-clients.ts): one column per worker index. */
  readonly tcpClients: TcpClientShared;

  constructor(options: DnsPoolOptions) {
    super();
    this.#options = options;
    this.#snapshot = options.snapshot;
    this.#generation = options.generation;
    this.#live = options.live;
    this.#dnssec = options.dnssec ?? { zones: [], validitySec: 7 * 86400 };
    this.#geo = options.geo ?? null;
    this.#cookies = options.cookies ?? null;
    if (options.counters.length < options.workers * COUNTER_STRIDE) throw new RangeError('counters buffer too small for the worker count');
    this.tcpClients = createTcpClientTable({
      workers: options.workers,
      maxConnectionsPerWorker: options.tcp.maxConnections,
      maxPerClient: options.tcp.maxConnectionsPerClient,
      ipv4PrefixLength: options.tcp.clientIpv4PrefixLength,
      ipv6PrefixLength: options.tcp.clientIpv6PrefixLength,
    });
  }

  /** Each worker index's current routing-decision buffer, or null before its worker posted one (metrics read these). */
  get decisionCounters(): readonly (Int32Array | null)[] {
    return this.#decisions;
  }

  /** The worker threads (null while one is waiting to be restarted); tests terminate one to see the service survive. */
  get workers(): readonly (Worker | null)[] {
    return this.#slots.map((s) => s.worker);
  }

  /**
   * Starts every worker and resolves once all have bound UDP and TCP. Rejects
   * with OpenGslbError(OPENGSLB_ERR_DNS_BIND) when a socket cannot bind, or
   * OPENGSLB_ERR_WORKER_START when a worker dies first; already started
   * workers are stopped before it rejects.
   */
  async start(): Promise<void> {
    const started: Promise<void>[] = [];
    for (let i = 0; i < this.#options.workers; i++) {
      this.#slots.push({ worker: null, generation: this.#generation, startedAt: 0, crashes: 0, timer: null, reclaimed: Promise.resolve(), sent: this.#generation, waitingSince: Number.NaN, waitedFrom: 0, beat: 0, beatSeenAt: Number.NaN });
      this.udpIo.push({ path: '', reason: '' });
      started.push(this.#spawn(i));
    }
    const results = await Promise.allSettled(started);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      await this.stop(0);
      throw (failed as PromiseRejectedResult).reason;
    }
    this.#started = true;
    this.#lastWatch = performance.now();
    this.#watchdog = setInterval(() => this.#watchAll(), WATCH_INTERVAL_MS);
    this.#watchdog.unref();
  }

  /** Starts worker `i` and resolves when it is listening. */
  #spawn(i: number): Promise<void> {
    const o = this.#options;
    const data: DnsWorkerData = {
      index: i,
      snapshot: this.#snapshot,
      live: this.#live,
      geo: this.#geo,
      counters: o.counters,
      counterBase: i * COUNTER_STRIDE,
      decisions: this.#decisions[i] ?? null,
      host: o.host,
      port: o.port,
      udpReceiveBuffer: o.udpReceiveBuffer ?? 0,
      dnssec: this.#dnssec,
      signatures: o.signatures?.() ?? [],
      udpIo: o.udpIo ?? 'auto',
      tcp: o.tcp,
      tcpClients: this.tcpClients,
      rrl: o.rrl ?? null,
      cookies: this.#cookies,
    };
    const worker = createWorker(WORKER_URL, { workerData: data, name: `dns-${i}` });
    const slot = this.#slots[i];
    slot.worker = worker;
    slot.generation = this.#generation;
    slot.sent = this.#generation;
    slot.waitingSince = Number.NaN;
    slot.beatSeenAt = Number.NaN;
    slot.startedAt = Date.now();
    const generationAtSpawn = this.#generation;
    const geoAtSpawn = this.#geoVersion;
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      let bindError: OpenGslbError | null = null;
      worker.on('message', (msg: WorkerToMain) => {
        if (msg.type === 'listening') {
          listening = true;
          this.udpReceiveBufferGranted = msg.udpReceiveBuffer;
          this.udpIo[i] = { path: msg.udpIo, reason: msg.udpIoReason };
          // Its heartbeat runs by now: the watchdog looks at it from here on.
          slot.beat = Atomics.load(o.counters, i * COUNTER_STRIDE + COUNTER.HEARTBEAT);
          slot.beatSeenAt = performance.now();
          // A snapshot published while this worker was starting reaches it now.
          if (this.#generation !== generationAtSpawn) this.#sendSnapshot(i, worker);
          if (this.#geoVersion !== geoAtSpawn && this.#geo !== null) this.#send(worker, { type: 'geo', buffer: this.#geo });
          resolve();
        } else if (msg.type === 'bind-failed') {
          bindError = new OpenGslbError('OPENGSLB_ERR_DNS_BIND', `cannot bind DNS ${msg.transport.toUpperCase()} on ${formatAddress(o.host, o.port)}: ${msg.code} (${msg.message})`);
        } else if (msg.type === 'attached') {
          if (slot.worker === worker) {
            if (msg.generation > slot.generation) slot.generation = msg.generation;
            this.#watch(i);
          }
          this.#acknowledge(msg.index, msg.generation);
          this.#checkServing();
        } else if (msg.type === 'attach-failed') {
          // The worker exits next, and its exit restarts it on the newest snapshot.
          this.#attachFailed(msg.index, msg.generation);
          this.emit('attach-failed', msg.index, msg.message);
        } else if (msg.type === 'decisions') {
          this.#decisions[i] = msg.buffer;
          this.emit('decisions', i, msg.buffer);
        } else if (msg.type === 'exception') {
          this.emit('exception', i, msg);
        }
      });
      // 'error' is an uncaught exception inside the worker; 'exit' follows it.
      worker.on('error', (err) => this.emit('worker-error', i, err));
      worker.on('exit', (code) => {
        if (slot.worker === worker) {
          slot.worker = null;
          slot.beatSeenAt = Number.NaN;
          this.#watch(i);
        }
        // Its connections died with it: so do its per-client counts (the
        // thread has stopped, so nothing writes its column any more).
        slot.reclaimed = reclaimColumnSoon(this.tcpClients, i);
        // A dead worker will never acknowledge a publish; don't wait for it.
        this.#forget(i);
        // Nor does it read anything any more; its replacement starts on the newest snapshot.
        this.#checkServing();
        if (!listening) reject(bindError ?? new OpenGslbError('OPENGSLB_ERR_WORKER_START', `DNS worker ${i} exited with code ${code} before it was listening`));
        // During the first start a failure fails start(); afterwards every
        // exit, a failed re-bind included, is retried with backoff.
        if (this.#stopping || !this.#started) return;
        this.#scheduleRestart(i, code);
      });
    });
  }

  #scheduleRestart(i: number, code: number): void {
    const slot = this.#slots[i];
    // A worker that ran for a minute is considered healthy again: the backoff starts over.
    if (Date.now() - slot.startedAt > 60_000) slot.crashes = 0;
    const base = this.#options.restartBaseMs ?? 100;
    const max = this.#options.restartMaxMs ?? 10_000;
    const delay = Math.min(max, base * 2 ** slot.crashes);
    slot.crashes++;
    this.emit('worker-exit', i, code, delay);
    slot.timer = setTimeout(async () => {
      slot.timer = null;
      // The replacement counts in the same column: only once it is zeroed.
      await slot.reclaimed;
      if (this.#stopping) return;
      this.#spawn(i).then(
        () => {
          this.restarts++;
          this.emit('worker-restarted', i);
        },
        (err: Error) => {
          // The exit handler has already scheduled the next attempt.
          this.emit('worker-error', i, err);
        },
      );
    }, delay);
  }

  #send(worker: Worker, msg: MainToWorker): void {
    worker.postMessage(msg);
  }

  /** Sends worker `i` the newest snapshot and watches for its confirmation. */
  #sendSnapshot(i: number, worker: Worker): void {
    const slot = this.#slots[i];
    this.#send(worker, { type: 'snapshot', buffer: this.#snapshot, live: this.#live, generation: this.#generation, dnssec: this.#dnssec });
    slot.sent = this.#generation;
    this.#watch(i);
  }

  /**
   * Starts, restarts or ends worker `i`'s wait for a confirmation: ended once
   * it has confirmed the newest snapshot sent to it (or is gone); started
   * from now when it starts waiting; restarted from now when it confirmed an
   * older one meanwhile (it is making progress through its messages).
   */
  #watch(i: number): void {
    const slot = this.#slots[i];
    if (slot.worker === null || slot.generation >= slot.sent) {
      slot.waitingSince = Number.NaN;
      return;
    }
    if (!Number.isNaN(slot.waitingSince) && slot.generation <= slot.waitedFrom) return;
    slot.waitingSince = performance.now();
    slot.waitedFrom = slot.generation;
  }

  /**
   * The watchdog, every WATCH_INTERVAL_MS: a listening worker whose heartbeat
   * word has not moved for switchDeadlineMs (its event loop has not turned:
   * it is stuck in a callback and answers nothing), or that has waited that
   * long for a snapshot to be confirmed, is stuck (#stuck()). It reads one
   * word per worker; the query path never sees it.
   */
  #watchAll(): void {
    const now = performance.now();
    const stalled = now - this.#lastWatch > 2 * WATCH_INTERVAL_MS;
    this.#lastWatch = now;
    const deadline = this.switchDeadlineMs;
    this.#slots.forEach((slot, i) => {
      const worker = slot.worker;
      if (worker === null || Number.isNaN(slot.beatSeenAt) || this.#stopping) return;
      const beat = Atomics.load(this.#options.counters, i * COUNTER_STRIDE + COUNTER.HEARTBEAT);
      if (stalled) {
        // This thread was not running: what it would measure is its own stall.
        slot.beat = beat;
        slot.beatSeenAt = now;
        if (!Number.isNaN(slot.waitingSince)) slot.waitingSince = now;
        return;
      }
      if (beat !== slot.beat) {
        slot.beat = beat;
        slot.beatSeenAt = now;
      }
      const silentMs = now - slot.beatSeenAt;
      const waitedMs = now - slot.waitingSince;
      // NaN (not waiting) compares false.
      if (silentMs >= deadline) this.#stuck(i, worker, 'heartbeat', silentMs, waitedMs);
      else if (waitedMs >= deadline) this.#stuck(i, worker, 'switch', silentMs, waitedMs);
    });
  }

  /**
   * Worker `i` is stuck: it answers nothing and holds released slots
   * (whenServing()) while it lives. Terminated, it exits as a crashed worker
   * does: forgotten by pending publishes, no longer counted by
   * whenServing(), restarted with backoff on the newest snapshot.
   */
  #stuck(i: number, worker: Worker, reason: StuckReason, silentMs: number, waitedMs: number): void {
    const slot = this.#slots[i];
    // Watched no more: the exit follows.
    slot.beatSeenAt = Number.NaN;
    this.stuck[reason]++;
    const waiting = !Number.isNaN(waitedMs);
    const info: StuckWorker = { reason, silentMs: Math.round(silentMs), generation: waiting ? slot.sent : null, waitedMs: waiting ? Math.round(waitedMs) : null };
    this.emit('worker-stuck', i, info);
    void worker.terminate();
  }

  /** How long a worker's heartbeat may stand still, or a snapshot stay unconfirmed, before the worker is terminated and restarted (ms). */
  get switchDeadlineMs(): number {
    return this.#options.switchDeadlineMs ?? DEFAULT_SWITCH_DEADLINE_MS;
  }

  #acknowledge(index: number, generation: number): void {
    for (const ack of this.#acks) {
      if (generation >= ack.generation) ack.pending.delete(index);
      if (ack.pending.size === 0) ack.done();
    }
  }

  /** Counts a worker that could not attach `generation` as failed in the publish of it. */
  #attachFailed(index: number, generation: number): void {
    for (const ack of this.#acks) {
      if (ack.generation !== generation || !ack.pending.delete(index)) continue;
      ack.failed.push(index);
      if (ack.pending.size === 0) ack.done();
    }
  }

  /** Drops a worker from every pending publish: it died, and its replacement starts on the newest snapshot. */
  #forget(index: number): void {
    for (const ack of this.#acks) {
      ack.pending.delete(index);
      if (ack.pending.size === 0) ack.done();
    }
  }

  /**
   * Resolves once no running worker can still serve a snapshot older than
   * `generation`: each has confirmed it (or a later one), has exited (its
   * replacement starts on the newest), or started on it. Unlike publish(),
   * it has no timeout of its own: a worker that lags holds it until it
   * switches or exits, and one that has not switched within
   * switchDeadlineMs is terminated (#watchAll()). Resolves at stop(). Never
   * rejects.
   */
  whenServing(generation: number): Promise<void> {
    if (this.#stopping || this.#oldestServed() >= generation) return Promise.resolve();
    return new Promise((resolve) => this.#serving.push({ generation, resolve }));
  }

  /** The oldest generation a running worker may serve (Infinity with none running). */
  #oldestServed(): number {
    let oldest = Infinity;
    for (const slot of this.#slots) if (slot.worker !== null && slot.generation < oldest) oldest = slot.generation;
    return oldest;
  }

  #checkServing(): void {
    if (this.#serving.length === 0) return;
    const oldest = this.#stopping ? Infinity : this.#oldestServed();
    const waiting = this.#serving;
    this.#serving = [];
    for (const w of waiting) {
      if (w.generation <= oldest) w.resolve();
      else this.#serving.push(w);
    }
  }

  /**
   * Test seam: blocks worker `index`'s thread (no packet, no message is
   * handled) until `gate[0]` is set non-zero and notified, so a test can make
   * it lag behind a publish. `gate` must be an Int32Array over a
   * SharedArrayBuffer. Does nothing when the worker is not running.
   */
  holdWorker(index: number, gate: Int32Array): void {
    const worker = this.#slots[index]?.worker;
    if (worker) this.#send(worker, { type: 'hold', gate });
  }

  /**
   * Hands every running worker a new GeoIP database (one SharedArrayBuffer
   * they all read); a worker switches between two packets, and one that
   * starts later gets it in its workerData.
   */
  publishGeo(buffer: SharedArrayBuffer): void {
    this.#geo = buffer;
    this.#geoVersion++;
    for (const slot of this.#slots) if (slot.worker) this.#send(slot.worker, { type: 'geo', buffer });
  }

  /**
   * Publishes a new snapshot (and live slots, when they were replaced) to every
   * running worker. Resolves with the workers that had not switched within
   * `timeoutMs` and those that failed to attach it (both empty when all
   * switched); a worker that restarts meanwhile, a failed one included, starts
   * on the new snapshot. Rejects with OPENGSLB_ERR_SNAPSHOT_COMPILE, before
   * any worker sees it, a snapshot that does not attach (the checks every
   * worker makes): a bad snapshot would otherwise send every worker into a
   * restart loop, and the pool keeps the one it has.
   */
  publish(snapshot: SharedArrayBuffer, generation: number, live: Int32Array, timeoutMs = 2000, dnssec: WorkerDnssec = this.#dnssec): Promise<PublishOutcome> {
    try {
      assertAttaches(snapshot, generation, this.#generation);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#snapshot = snapshot;
    this.#generation = generation;
    this.#live = live;
    this.#dnssec = dnssec;
    const pending = new Set<number>();
    this.#slots.forEach((slot, i) => {
      if (!slot.worker) return;
      pending.add(i);
      this.#sendSnapshot(i, slot.worker);
    });
    if (pending.size === 0) return Promise.resolve({ lagging: [], failed: [] });
    return new Promise((resolve) => {
      const failed: number[] = [];
      const ack = {
        generation,
        pending,
        failed,
        done: () => {
          clearTimeout(timer);
          this.#acks.delete(ack);
          resolve({ lagging: [...pending], failed });
        },
      };
      const timer = setTimeout(ack.done, timeoutMs);
      this.#acks.add(ack);
    });
  }

  /**
   * Hands signatures made in advance to every running worker's cache (a
   * worker started later gets them through options.signatures). The batches
   * are copied into each worker.
   */
  /** Hands every worker new server-cookie keys (a rotation); a worker started later gets them in its start data. */
  publishCookieKeys(keys: CookieKeys): void {
    if (this.#cookies === null) return;
    this.#cookies = { require: this.#cookies.require, keys };
    for (const slot of this.#slots) if (slot.worker) this.#send(slot.worker, { type: 'cookie-keys', keys });
  }

  sendSignatures(batches: readonly SignatureBatch[]): void {
    if (batches.length === 0) return;
    for (const slot of this.#slots) if (slot.worker) this.#send(slot.worker, { type: 'signatures', batches });
  }

  /**
   * Stops every worker: each closes its sockets and finishes the TCP queries
   * it is receiving within `graceMs`; a worker still running 1 s after that
   * is terminated.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#watchdog = null;
    this.#checkServing();
    const waits: Promise<unknown>[] = [];
    for (const slot of this.#slots) {
      if (slot.timer) clearTimeout(slot.timer);
      const worker = slot.worker;
      if (!worker) continue;
      const exited = once(worker, 'exit');
      this.#send(worker, { type: 'stop', graceMs });
      const kill = setTimeout(() => void worker.terminate(), graceMs + 1000);
      waits.push(exited.finally(() => clearTimeout(kill)));
    }
    await Promise.all(waits);
  }
}
