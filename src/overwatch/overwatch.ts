// Main thread. The overwatch composition root: config → server slots → live
// slots → snapshot → DNS worker pool; reload swaps in a new snapshot; stop
// drains the workers. The main thread never parses a DNS query.

import type { Config } from '../config/types.ts';
import type { Logger } from '../log/logger.ts';
import { createCounters, readCounters } from '../metrics/counters-layout.ts';
import { serverKey, SlotAllocator } from '../registry/slots.ts';
import { compileSnapshot, type CompiledSnapshot } from '../snapshot/compile.ts';
import { HealthScheduler } from '../health/scheduler.ts';
import type { HealthSink, TargetStatus } from '../health/types.ts';
import { createLiveSlots, growLiveSlots, HEALTH_HEALTHY, HEALTH_UNKNOWN, LIVE_CAPACITY, writeHealth, writeLastUp, writeLatency } from '../snapshot/live-slots.ts';
import { buildCheckTargets } from './check-targets.ts';
import { formatAddress } from '../lib/ip.ts';
import { reserveDnsPort } from './address.ts';
import { DnsPool } from './dns-pool.ts';

const TCP_KEY_NAMES = {
  tcpIdleTimeoutMs: 'dns.tcp_idle_timeout',
  tcpMaxConnectionsPerWorker: 'dns.tcp_max_connections',
  tcpMaxQueriesPerConnection: 'dns.tcp_max_queries_per_connection',
} as const;

/** Grace period for TCP queries in flight at shutdown; the whole stop stays under 5 s. */
export const SHUTDOWN_GRACE_MS = 3000;

export interface OverwatchOptions {
  /**
   * 'run' (the default, and what the binary always does): servers start
   * unknown and the health checker decides. 'off': every server is marked
   * healthy and nothing is probed, for tests of the DNS engine alone whose
   * configs name documentation addresses nobody can reach.
   */
  readonly healthChecks?: 'run' | 'off';
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly generation: number;
  readonly message: string;
}

export class Overwatch {
  readonly host: string;
  readonly port: number;
  readonly pool: DnsPool;
  readonly counters: Int32Array;
  readonly #logger: Logger;
  readonly #slots: SlotAllocator;
  #config: Config;
  #live: Int32Array;
  #snapshot: CompiledSnapshot;
  #serial: number;
  readonly #health: HealthScheduler | null;

  private constructor(
    config: Config,
    logger: Logger,
    host: string,
    port: number,
    slots: SlotAllocator,
    live: Int32Array,
    snapshot: CompiledSnapshot,
    counters: Int32Array,
    pool: DnsPool,
    health: HealthScheduler | null,
  ) {
    this.#health = health;
    this.#config = config;
    this.#logger = logger;
    this.host = host;
    this.port = port;
    this.#slots = slots;
    this.#live = live;
    this.#snapshot = snapshot;
    this.#serial = snapshot.serial;
    this.counters = counters;
    this.pool = pool;
  }

  /**
   * Starts the overwatch and resolves once every DNS worker is listening.
   * Rejects with OpenGslbError (OPENGSLB_ERR_DNS_BIND, _WORKER_START,
   * _SNAPSHOT_COMPILE) when it cannot serve; nothing is left running then.
   */
  static async start(config: Config, logger: Logger, options: OverwatchOptions = {}): Promise<Overwatch> {
    const dns = config.dns;
    const slots = new SlotAllocator();
    const snapshot = compileSnapshot(config, { generation: 1, serial: unixSeconds(), slots });
    const fresh = slots.takeFresh();
    // The holder lets the sink follow the live slots when a reload replaces them.
    const holder = { live: createLiveSlots(Math.max(256, slots.highWater * 2)) };
    let health: HealthScheduler | null = null;
    if (options.healthChecks === 'off') {
      for (const slot of fresh) writeHealth(holder.live, slot, HEALTH_HEALTHY);
    } else {
      health = new HealthScheduler({ sink: liveSink(holder), logger: logger.child({ component: 'health' }) });
      health.update(buildCheckTargets(config, (r, a, p) => slots.slotOf(serverKey(r, a, p))));
      // No answer is ever given from an unknown state: DNS binds after the first round.
      await health.firstRound();
    }
    const live = holder.live;
    // Probe the address only now, right before the workers bind: the first
    // health round can take seconds, and a port chosen for port 0 before it
    // could be taken by then.
    let port: number;
    try {
      port = await reserveDnsPort(dns.listenHost, dns.listenPort);
    } catch (err) {
      health?.stop();
      throw err;
    }
    const counters = createCounters(dns.workers);
    const pool = new DnsPool({
      workers: dns.workers,
      host: dns.listenHost,
      port,
      snapshot: snapshot.buffer,
      generation: snapshot.generation,
      live,
      counters,
      tcpIdleTimeoutMs: dns.tcpIdleTimeoutMs,
      tcpMaxConnections: dns.tcpMaxConnectionsPerWorker,
      tcpMaxQueriesPerConnection: dns.tcpMaxQueriesPerConnection,
    });
    const log = logger.child({ component: 'dns' });
    pool.on('worker-exit', (index: number, code: number, delayMs: number) => log.warn({ worker: index, code, restartInMs: delayMs }, 'DNS worker exited; restarting'));
    pool.on('worker-restarted', (index: number) => log.info({ worker: index }, 'DNS worker restarted'));
    pool.on('worker-error', (index: number, err: Error) => log.error({ worker: index, err: err.message }, 'DNS worker failed'));
    pool.on('attach-failed', (index: number, message: string) => log.error({ worker: index, reason: message }, 'DNS worker kept its old snapshot'));
    try {
      await pool.start();
    } catch (err) {
      health?.stop();
      throw err;
    }
    const overwatch = new Overwatch(config, logger, dns.listenHost, port, slots, live, snapshot, counters, pool, health);
    overwatch.#holder = holder;
    log.info(
      { address: formatAddress(dns.listenHost, port), workers: dns.workers, domains: config.domains.length, ...snapshot.stats },
      'DNS listening on UDP and TCP',
    );
    return overwatch;
  }

  /** Shared with the health sink, so verdicts land in whichever live slots are current. */
  #holder: { live: Int32Array } = { live: new Int32Array(0) };

  /** Health-check state per target (empty when checks are off). */
  healthStatus(): TargetStatus[] {
    return this.#health?.status() ?? [];
  }

  /** The config currently served. */
  get config(): Config {
    return this.#config;
  }

  /** The live slots workers read health and latency from. */
  get live(): Int32Array {
    return this.#live;
  }

  /** Generation of the snapshot currently published. */
  get generation(): number {
    return this.#snapshot.generation;
  }

  /** Returns the live slot of a configured server, or undefined when it is not served. */
  slotOf(region: string, address: string, port: number): number | undefined {
    return this.#slots.slotOf(serverKey(region, address, port));
  }

  /** Sets a server slot's health (HEALTH_*); the next query on every worker sees it. */
  setHealth(slot: number, state: number): void {
    writeHealth(this.#live, slot, state);
  }

  /** Sums the workers' counters. */
  readCounters(): Record<string, number> {
    return readCounters(this.counters);
  }

  /**
   * Swaps in a new, already validated config: compiles a new snapshot and
   * publishes it. Refuses (and keeps serving the old one) a change that needs
   * a restart. Servers that stay keep their slot, so health and latency carry over.
   */
  async reload(next: Config): Promise<ReloadResult> {
    const cur = this.#config;
    const refuse = (message: string): ReloadResult => ({ ok: false, generation: this.generation, message });
    if (next.mode !== cur.mode) return refuse(`mode changed from ${cur.mode} to ${next.mode}; a mode change needs a restart`);
    if (next.dns.listenHost !== cur.dns.listenHost || (next.dns.listenPort !== cur.dns.listenPort && next.dns.listenPort !== 0)) {
      return refuse('dns.listen_address changed; a new listen address needs a restart');
    }
    if (next.dns.workers !== cur.dns.workers) return refuse(`dns.workers changed from ${cur.dns.workers} to ${next.dns.workers}; a new worker count needs a restart`);
    for (const key of ['tcpIdleTimeoutMs', 'tcpMaxConnectionsPerWorker', 'tcpMaxQueriesPerConnection'] as const) {
      if (next.dns[key] !== cur.dns[key]) return refuse(`${TCP_KEY_NAMES[key]} changed; the TCP limits are fixed when the workers start, so this needs a restart`);
    }
    if (next.logging.format !== cur.logging.format) return refuse(`logging.format changed from ${cur.logging.format} to ${next.logging.format}; a new log format needs a restart`);
    let snapshot: CompiledSnapshot;
    try {
      this.#serial = Math.max(this.#serial + 1, unixSeconds());
      snapshot = compileSnapshot(next, { generation: this.generation + 1, serial: this.#serial, slots: this.#slots });
    } catch (err) {
      return refuse((err as Error).message);
    }
    let live = this.#live;
    // More servers than the live slots hold: copy into a larger buffer and hand it over with the snapshot.
    if (this.#slots.highWater > live[LIVE_CAPACITY]) live = growLiveSlots(live, this.#slots.highWater * 2);
    const released = this.#slots.retain(snapshot.serverKeys);
    const fresh = this.#slots.takeFresh();
    this.#live = live;
    this.#holder.live = live;
    if (this.#health) {
      // Unchanged targets keep their state; new servers start unknown and are probed at once.
      this.#health.update(buildCheckTargets(next, (r, a, p) => this.#slots.slotOf(serverKey(r, a, p))));
    } else {
      for (const slot of fresh) writeHealth(live, slot, HEALTH_HEALTHY);
    }
    this.#snapshot = snapshot;
    this.#config = next;
    this.#logger.level = next.logging.level;
    const lagging = await this.pool.publish(snapshot.buffer, snapshot.generation, live);
    // Only now, with every worker on the new snapshot, do removed servers'
    // slots go back to unknown; doing it earlier would take them out of the
    // old snapshot's answers while workers still serve it.
    for (const slot of released) {
      writeHealth(live, slot, HEALTH_UNKNOWN);
      writeLatency(live, slot, 0, 0);
      writeLastUp(live, slot, 0);
    }
    const note = lagging.length > 0 ? ` (workers ${lagging.join(', ')} had not confirmed the switch within 2 s)` : '';
    return { ok: true, generation: snapshot.generation, message: `serving generation ${snapshot.generation}${note}` };
  }

  /** Stops answering: workers close their sockets and finish TCP queries in flight. */
  async stop(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.#health?.stop();
    await this.pool.stop(graceMs);
  }
}

/** Maps health verdicts onto whichever live slots are current. */
function liveSink(holder: { live: Int32Array }): HealthSink {
  return {
    setHealth(slots, state) {
      for (const slot of slots) writeHealth(holder.live, slot, state);
    },
    setLatency(slots, emaMicros, samples) {
      for (const slot of slots) writeLatency(holder.live, slot, emaMicros, samples);
    },
    setLastUp(slots, unixSec) {
      for (const slot of slots) writeLastUp(holder.live, slot, unixSec);
    },
  };
}

function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
