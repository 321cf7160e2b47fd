// Main thread. The overwatch composition root: config → server slots → live
// slots → snapshot → DNS worker pool; reload swaps in a new snapshot; stop
// drains the workers. The main thread never parses a DNS query.

import type { Config } from '../config/types.ts';
import type { Logger } from '../log/logger.ts';
import { createCounters, readCounters } from '../metrics/counters-layout.ts';
import { serverKey, SlotAllocator } from '../registry/slots.ts';
import { compileSnapshot, type CompiledSnapshot, type MemberInfo } from '../snapshot/compile.ts';
import { HealthScheduler, type CheckObserver, type HealthCounters } from '../health/scheduler.ts';
import type { TargetStatus } from '../health/types.ts';
import {
  createLiveSlots, growLiveSlots, HEALTH_HEALTHY, HEALTH_UNKNOWN, LIVE_CAPACITY,
  lastUpMs, lastUpWord, latencyWord, readHealth, storeHealth, writeLastUp, writeLatency,
} from '../snapshot/live-slots.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { MemoryStore, type StateStore, type StoredOverride } from '../state/store.ts';
import { buildCheckTargets } from './check-targets.ts';
import { formatAddress } from '../lib/ip.ts';
import { reserveDnsPort } from './address.ts';
import { DnsPool } from './dns-pool.ts';
import { HealthFanout, overrideKey } from './fanout.ts';
import { LastUpJournal } from './last-up-journal.ts';
import { explain, type Explanation } from '../routing/explain.ts';
import { rfc3339, type Authority, type DomainServerView, type DomainView, type HealthState, type OverrideView, type RegionView, type ServerView } from './views.ts';

/** Socket settings fixed when the workers start: a reload that changes one is refused. */
const SOCKET_KEY_NAMES = {
  udpReceiveBufferBytes: 'dns.udp_receive_buffer',
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
  /** Where overrides and last-up times persist; default: in memory (nothing survives a restart). The caller closes it. */
  readonly store?: StateStore;
  /** Sees every health-check result (metrics). */
  readonly onCheck?: CheckObserver;
}

/** What an operator sends to set an override. */
export interface OverrideRequest {
  readonly healthy: boolean;
  readonly reason: string;
  readonly source: string;
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
  readonly #statIds: SlotAllocator;
  readonly #decisionLabels: ({ domain: string; algorithm: string } | undefined)[] = [];
  #config: Config;
  #live: Int32Array;
  #snapshot: CompiledSnapshot;
  #serial: number;
  readonly #health: HealthScheduler | null;
  readonly #fanout: HealthFanout;
  readonly #store: StateStore;
  readonly #lastUp: LastUpJournal;

  private constructor(
    config: Config,
    logger: Logger,
    host: string,
    port: number,
    state: StartState,
    counters: Int32Array,
    pool: DnsPool,
  ) {
    this.#health = state.health;
    this.#config = config;
    this.#logger = logger;
    this.host = host;
    this.port = port;
    this.#slots = state.slots;
    this.#statIds = state.statIds;
    this.#fanout = state.fanout;
    this.#store = state.store;
    this.#live = state.fanout.live;
    this.#snapshot = state.snapshot;
    this.#serial = state.snapshot.serial;
    this.counters = counters;
    this.pool = pool;
    this.#lastUp = state.lastUp;
    this.#indexSnapshot(config, state.snapshot);
    this.#lastUp.start();
  }

  /**
   * Starts the overwatch and resolves once every DNS worker is listening.
   * Rejects with OpenGslbError (OPENGSLB_ERR_DNS_BIND, _WORKER_START,
   * _SNAPSHOT_COMPILE) when it cannot serve; nothing is left running then.
   */
  static async start(config: Config, logger: Logger, options: OverwatchOptions = {}): Promise<Overwatch> {
    const dns = config.dns;
    const store = options.store ?? new MemoryStore();
    const slots = new SlotAllocator();
    const statIds = new SlotAllocator();
    const snapshot = compileSnapshot(config, { generation: 1, serial: unixSeconds(), slots, statIds });
    const fresh = slots.takeFresh();
    const fanout = new HealthFanout(createLiveSlots(Math.max(256, slots.highWater * 2)));
    fanout.setMembers(snapshot.members);
    const lastUp = new LastUpJournal(store, logger);
    lastUp.index(snapshot.members);
    fanout.onLastUp = (slots, unixSec) => lastUp.note(slots, unixSec);
    // A server going down has its final last-up time: keep it without waiting for the timer.
    fanout.onDown = () => void lastUp.flush();
    // Persisted state goes in before any verdict: overrides outrank the first
    // round, and last-up times let last_healthy answer right after a restart.
    for (const o of store.loadOverrides()) fanout.overrides.set(overrideKey(o.service, o.address), o);
    for (const [key, sec] of store.loadLastUp()) {
      const slot = slots.slotOf(key);
      if (slot !== undefined) writeLastUp(fanout.live, slot, sec);
    }
    let health: HealthScheduler | null = null;
    if (options.healthChecks === 'off') {
      fanout.setServerHealth(fresh, HEALTH_HEALTHY);
    } else {
      health = new HealthScheduler({ sink: fanout.sink(), logger: logger.child({ component: 'health' }), observer: options.onCheck });
      health.update(buildCheckTargets(config, (r, a, p) => slots.slotOf(serverKey(r, a, p))));
      // No answer is ever given from an unknown state: DNS binds after the first round.
      await health.firstRound();
    }
    fanout.apply();
    if (fanout.overrides.size > 0) logger.info({ overrides: fanout.overrides.size, store: store.location }, 'overrides restored');
    const live = fanout.live;
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
      udpReceiveBuffer: dns.udpReceiveBufferBytes,
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
    const overwatch = new Overwatch(config, logger, dns.listenHost, port, { slots, statIds, fanout, store, lastUp, snapshot, health }, counters, pool);
    const udpReceiveBuffer = pool.udpReceiveBufferGranted;
    log.info(
      { address: formatAddress(dns.listenHost, port), workers: dns.workers, domains: config.domains.length, udpReceiveBuffer, ...snapshot.stats },
      'DNS listening on UDP and TCP',
    );
    if (dns.udpReceiveBufferBytes > udpReceiveBuffer) {
      log.warn(
        { asked: dns.udpReceiveBufferBytes, granted: udpReceiveBuffer },
        `dns.udp_receive_buffer: the kernel granted ${udpReceiveBuffer} of the ${dns.udpReceiveBufferBytes} bytes asked for; on Linux raise net.core.rmem_max (sysctl -w net.core.rmem_max=${dns.udpReceiveBufferBytes}) or lower dns.udp_receive_buffer`,
      );
    }
    return overwatch;
  }

  /** Probe results and state transitions counted by the health checker since start (zeros when checks are off). */
  healthCounters(): HealthCounters {
    return this.#health?.counters ?? { probes_total: { ok: 0, fail: 0 }, transitions_total: { healthy: 0, unhealthy: 0, unchecked: 0 } };
  }

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

  /** Sets a server slot's health (HEALTH_*), as a check verdict would; the next query on every worker sees it. */
  setHealth(slot: number, state: number): void {
    this.#fanout.setServerHealth([slot], state);
  }

  /** The snapshot currently published, with its member table. */
  get snapshot(): CompiledSnapshot {
    return this.#snapshot;
  }

  /** The (domain, algorithm) of each routing-decision counter id (REC_STAT_ID); ids are never reused. */
  decisionLabels(): readonly ({ readonly domain: string; readonly algorithm: string } | undefined)[] {
    return this.#decisionLabels;
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
    for (const key of Object.keys(SOCKET_KEY_NAMES) as (keyof typeof SOCKET_KEY_NAMES)[]) {
      if (next.dns[key] !== cur.dns[key]) return refuse(`${SOCKET_KEY_NAMES[key]} changed; the socket settings are fixed when the workers start, so this needs a restart`);
    }
    if (next.logging.format !== cur.logging.format) return refuse(`logging.format changed from ${cur.logging.format} to ${next.logging.format}; a new log format needs a restart`);
    if (next.dataDir !== cur.dataDir) return refuse('overwatch.data_dir changed; a new state directory needs a restart');
    for (const [section, a, b] of [['api', cur.api, next.api], ['metrics', cur.metrics, next.metrics]] as const) {
      if (a.enabled !== b.enabled || a.host !== b.host || (a.port !== b.port && b.port !== 0)) {
        return refuse(`${section}.enabled or ${section}.address changed; the ${section} listener is fixed at start, so this needs a restart`);
      }
    }
    let snapshot: CompiledSnapshot;
    try {
      this.#serial = Math.max(this.#serial + 1, unixSeconds());
      snapshot = compileSnapshot(next, { generation: this.generation + 1, serial: this.#serial, slots: this.#slots, statIds: this.#statIds });
    } catch (err) {
      return refuse((err as Error).message);
    }
    let live = this.#live;
    // More servers than the live slots hold: copy into a larger buffer and hand it over with the snapshot.
    if (this.#slots.highWater > live[LIVE_CAPACITY]) live = growLiveSlots(live, this.#slots.highWater * 2);
    const released = this.#slots.retain(snapshot.slotKeys);
    const fresh = this.#slots.takeFresh();
    this.#live = live;
    this.#fanout.live = live;
    this.#fanout.setMembers(snapshot.members);
    if (this.#health) {
      // Unchanged targets keep their state; new servers start unknown and are probed at once.
      this.#health.update(buildCheckTargets(next, (r, a, p) => this.#slots.slotOf(serverKey(r, a, p))));
    } else {
      this.#fanout.setServerHealth(fresh, HEALTH_HEALTHY);
    }
    // New domains' words for servers that already have a verdict are filled
    // now, before any worker can serve the new snapshot.
    this.#fanout.apply();
    this.#indexSnapshot(next, snapshot);
    this.#snapshot = snapshot;
    this.#config = next;
    this.#logger.level = next.logging.level;
    const lagging = await this.pool.publish(snapshot.buffer, snapshot.generation, live);
    // Only now, with every worker on the new snapshot, do removed servers'
    // slots go back to unknown; doing it earlier would take them out of the
    // old snapshot's answers while workers still serve it.
    for (const slot of released) {
      storeHealth(live, slot, HEALTH_UNKNOWN);
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
    await this.#lastUp.stop();
  }

  /** Rebuilds the lookups that follow the served snapshot: server keys by slot, decision-counter labels. */
  #indexSnapshot(config: Config, snapshot: CompiledSnapshot): void {
    this.#lastUp.index(snapshot.members);
    for (const d of config.domains) {
      const id = this.#statIds.slotOf(`${d.name}|${d.routingAlgorithm}`);
      if (id !== undefined) this.#decisionLabels[id] = { domain: d.name, algorithm: d.routingAlgorithm };
    }
  }

  // ---- Overrides

  /** Every override, active or not. */
  overrides(): OverrideView[] {
    const out: OverrideView[] = [];
    for (const o of this.#fanout.overrides.values()) out.push(this.#overrideView(o));
    out.sort((a, b) => (a.service === b.service ? (a.address < b.address ? -1 : 1) : a.service < b.service ? -1 : 1));
    return out;
  }

  /**
   * Sets an override of `address` in domain `service` (both normalised):
   * persisted first, then written to the live slots, so the next query on
   * every worker follows it. Throws OPENGSLB_ERR_NOT_FOUND when the domain
   * does not answer that address, OPENGSLB_ERR_STATE_WRITE when the store
   * refuses the write (nothing is applied then).
   */
  async setOverride(service: string, address: string, request: OverrideRequest): Promise<OverrideView> {
    this.#requireMember(service, address);
    const stored: StoredOverride = { service, address, healthy: request.healthy, reason: request.reason, source: request.source, createdAtMs: Date.now() };
    await this.#store.putOverride(stored);
    this.#fanout.overrides.set(overrideKey(service, address), stored);
    this.#fanout.applyOverride(service, address);
    return this.#overrideView(stored);
  }

  /** Removes an override; returns it, or null when there was none. Throws OPENGSLB_ERR_STATE_WRITE when the store refuses. */
  async clearOverride(service: string, address: string): Promise<OverrideView | null> {
    const key = overrideKey(service, address);
    const existing = this.#fanout.overrides.get(key);
    if (existing === undefined) return null;
    await this.#store.deleteOverride(service, address);
    this.#fanout.overrides.delete(key);
    this.#fanout.applyOverride(service, address);
    return this.#overrideView(existing);
  }

  /** The override of (service, address), or null. */
  overrideOf(service: string, address: string): OverrideView | null {
    const o = this.#fanout.overrides.get(overrideKey(service, address));
    return o === undefined ? null : this.#overrideView(o);
  }

  #requireMember(service: string, address: string): void {
    const domain = this.#config.domains.find((d) => d.name === service);
    if (domain === undefined) {
      const names = this.#config.domains.map((d) => d.name);
      const shown = names.slice(0, 10).join(', ') + (names.length > 10 ? `, … (${names.length} in all)` : '');
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no domain "${service}" is served; expected one of: ${shown || '(none)'}`);
    }
    if (!this.#fanout.members.some((m) => m.domain === service && m.address === address)) {
      const addresses = [...new Set(this.#fanout.members.filter((m) => m.domain === service).map((m) => m.address))];
      const shown = addresses.slice(0, 10).join(', ') + (addresses.length > 10 ? `, … (${addresses.length} in all)` : '');
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `domain ${service} answers no server with address ${address}; its servers are: ${shown || '(none)'}`);
    }
  }

  #overrideView(o: StoredOverride): OverrideView {
    return {
      service: o.service,
      address: o.address,
      healthy: o.healthy,
      reason: o.reason,
      source: o.source,
      created_at: rfc3339(o.createdAtMs) as string,
      authority: 'override',
      active: this.#fanout.members.some((m) => m.domain === o.service && m.address === o.address),
    };
  }

  // ---- Views for the API, the metrics and the CLI

  /**
   * What DNS would answer (name, type) to `client` now, and why. Throws
   * OPENGSLB_ERR_API_BAD_REQUEST for a name, type or client that cannot be asked.
   */
  explain(name: string, type: string, client: string | null): Explanation {
    const lastErrors = new Map<string, string | null>();
    for (const t of this.healthStatus()) for (const label of t.servers) lastErrors.set(label, t.lastError);
    const labelOf = new Map<number, string>();
    for (const m of this.#fanout.members) labelOf.set(m.serverSlot, `${m.region}/${formatAddress(m.address, m.port)}`);
    try {
      return explain(
        {
          snapshot: this.#snapshot,
          live: this.#live,
          config: this.#config,
          overrideOf: (d, a) => this.overrideOf(d, a),
          lastErrorOf: (slot) => lastErrors.get(labelOf.get(slot) ?? '') ?? null,
        },
        name,
        type,
        client,
      );
    } catch (err) {
      if (err instanceof RangeError) throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', err.message);
      throw err;
    }
  }

  /** Every configured server with its check state; servers no domain answers are listed as unknown with no domains. */
  servers(): ServerView[] {
    const targets = new Map<string, TargetStatus>();
    for (const t of this.healthStatus()) for (const label of t.servers) targets.set(label, t);
    const domainsBySlot = new Map<number, MemberInfo[]>();
    for (const m of this.#fanout.members) {
      let list = domainsBySlot.get(m.serverSlot);
      if (list === undefined) domainsBySlot.set(m.serverSlot, (list = []));
      list.push(m);
    }
    const live = this.#live;
    const cap = live[LIVE_CAPACITY];
    const out: ServerView[] = [];
    for (const region of this.#config.regions) {
      for (const server of region.servers) {
        const slot = this.#slots.slotOf(serverKey(region.name, server.address, server.port));
        const members = slot === undefined ? [] : domainsBySlot.get(slot) ?? [];
        const target = targets.get(`${region.name}/${formatAddress(server.address, server.port)}`);
        const status = slot === undefined ? 'unknown' : stateName(readHealth(live, slot));
        const overrides = [];
        for (const m of members) {
          const o = this.#fanout.overrides.get(overrideKey(m.domain, m.address));
          if (o !== undefined) overrides.push({ service: o.service, healthy: o.healthy, reason: o.reason, source: o.source });
        }
        const checkType = region.healthCheck.type;
        const samples = slot === undefined ? 0 : Atomics.load(live, latencyWord(cap, slot) + 1);
        const lastUp = slot === undefined ? 0 : Atomics.load(live, lastUpWord(cap, slot));
        out.push({
          address: server.address,
          port: server.port,
          region: region.name,
          domains: members.map((m) => m.domain),
          status,
          healthy: status === 'healthy',
          authority: overrides.length > 0 ? 'override' : checkType === 'none' ? 'unchecked' : 'health_check',
          check_type: checkType,
          last_check: rfc3339(target?.lastCheckAt),
          last_healthy: rfc3339(lastUpMs(lastUp)),
          last_error: target?.lastError ?? null,
          consecutive_failures: target?.consecutiveFailures ?? 0,
          consecutive_successes: target?.consecutiveSuccesses ?? 0,
          latency_ms: samples > 0 ? Atomics.load(live, latencyWord(cap, slot as number)) / 1000 : null,
          latency_samples: samples,
          overrides,
        });
      }
    }
    return out;
  }

  /** Health totals per region. */
  regions(): RegionView[] {
    const byRegion = new Map<string, { total: number; healthy: number; unhealthy: number; unknown: number }>();
    for (const r of this.#config.regions) byRegion.set(r.name, { total: 0, healthy: 0, unhealthy: 0, unknown: 0 });
    for (const s of this.servers()) {
      const t = byRegion.get(s.region) as { total: number; healthy: number; unhealthy: number; unknown: number };
      t.total++;
      t[s.status]++;
    }
    return [...byRegion].map(([name, t]) => ({
      name,
      total_servers: t.total,
      healthy_count: t.healthy,
      unhealthy_count: t.unhealthy,
      unknown_count: t.unknown,
      health_percent: t.total === 0 ? 0 : Math.round((t.healthy / t.total) * 1000) / 10,
    }));
  }

  /** Every configured domain with its servers as DNS sees them for that domain. */
  domains(): DomainView[] {
    const byDomain = new Map<string, MemberInfo[]>();
    for (const m of this.#fanout.members) {
      let list = byDomain.get(m.domain);
      if (list === undefined) byDomain.set(m.domain, (list = []));
      list.push(m);
    }
    const checkType = new Map(this.#config.regions.map((r) => [r.name, r.healthCheck.type]));
    return this.#config.domains.map((d) => ({
      name: d.name,
      zone: d.zone,
      algorithm: d.routingAlgorithm,
      ttl: d.ttlSec,
      max_answers: d.maxAnswers,
      when_all_down: d.whenAllDown,
      fallback: d.fallback,
      servers: (byDomain.get(d.name) ?? []).map((m): DomainServerView => {
        const override = this.overrideOf(m.domain, m.address);
        const authority: Authority = override !== null ? 'override' : checkType.get(m.region) === 'none' ? 'unchecked' : 'health_check';
        return {
          address: m.address,
          port: m.port,
          region: m.region,
          weight: m.weight,
          priority: m.priority,
          status: stateName(readHealth(this.#live, m.memberSlot)),
          authority,
          override,
        };
      }),
    }));
  }
}

/** Names a health word for the API; a drained member is unhealthy. */
function stateName(word: number): HealthState {
  return word === HEALTH_HEALTHY ? 'healthy' : word === HEALTH_UNKNOWN ? 'unknown' : 'unhealthy';
}

/** What start() builds before the instance exists. */
interface StartState {
  readonly slots: SlotAllocator;
  readonly statIds: SlotAllocator;
  readonly fanout: HealthFanout;
  readonly store: StateStore;
  readonly lastUp: LastUpJournal;
  readonly snapshot: CompiledSnapshot;
  readonly health: HealthScheduler | null;
}

function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
