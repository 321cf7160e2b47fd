// Main thread. The overwatch composition root: config → registry → snapshot →
// DNS worker pool, with the health checker writing the live slots. A reload
// applies the new config to the registry and publishes at once; a change made
// to the registry at run time (agents, the API) is published after a short
// debounce, so a burst of changes makes one snapshot. Stop drains the
// workers. The main thread never parses a DNS query.

import type { Config } from '../config/types.ts';
import type { Logger } from '../log/logger.ts';
import { createCounters, readCounters } from '../metrics/counters-layout.ts';
import { Registry, type DecisionLabel, type MemberModel } from '../registry/registry.ts';
import { compileSnapshot, type CompiledSnapshot } from '../snapshot/compile.ts';
import { HealthScheduler, type CheckObserver, type HealthCounters } from '../health/scheduler.ts';
import type { TargetStatus } from '../health/types.ts';
import {
  createLiveSlots, growLiveSlots, HEALTH_HEALTHY, HEALTH_UNKNOWN, LIVE_CAPACITY,
  lastUpMs, lastUpWord, latencyWord, readHealth, storeHealth, writeLastUp, writeLatency,
} from '../snapshot/live-slots.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { networkOfCidr, parseCidr, parseIp } from '../config/ip.ts';
import { compileGeoTable } from '../geo/cidr-table.ts';
import { explainGeo, type GeoTestResult } from '../geo/table-input.ts';
import type { RegistryView } from '../registry/registry.ts';
import { MemoryStore, type StateStore, type StoredGeoMapping, type StoredOverride } from '../state/store.ts';
import type { AgentHub } from './agents.ts';
import { backendRows, type BackendView } from './backends-view.ts';
import { buildCheckTargets } from './check-targets.ts';
import { formatAddress } from '../lib/ip.ts';
import { reserveDnsPort } from './address.ts';
import { DnsPool } from './dns-pool.ts';
import { explain, type Explanation } from './explain.ts';
import { GeoSource } from './geo-source.ts';
import { ZoneSerials } from './zone-serials.ts';
import { HealthFanout } from './fanout.ts';
import { LastUpJournal } from './last-up-journal.ts';
import { rfc3339, type DomainServerView, type DomainView, type GeoMappingView, type HealthState, type OverrideView, type RegionView, type ServerView } from './views.ts';

/** Socket settings fixed when the workers start: a reload that changes one is refused. */
const SOCKET_KEY_NAMES = {
  udpReceiveBufferBytes: 'dns.udp_receive_buffer',
  tcpIdleTimeoutMs: 'dns.tcp_idle_timeout',
  tcpFrameTimeoutMs: 'dns.tcp_frame_timeout',
  tcpMaxConnectionsPerWorker: 'dns.tcp_max_connections',
  tcpMaxConnectionsPerClient: 'dns.tcp_max_connections_per_client',
  tcpMaxQueriesPerConnection: 'dns.tcp_max_queries_per_connection',
} as const;

/** Grace period for TCP queries in flight at shutdown; the whole stop stays under 5 s. */
export const SHUTDOWN_GRACE_MS = 3000;

/** How long a run-time registry change waits for more before it is published: a burst of registrations makes one snapshot. */
export const REPUBLISH_DEBOUNCE_MS = 100;

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
  /** Every server, override and routing definition; the snapshot is compiled from its views. */
  readonly registry: Registry;
  readonly #logger: Logger;
  #config: Config;
  #live: Int32Array;
  #snapshot: CompiledSnapshot;
  readonly #serials: ZoneSerials;
  readonly #health: HealthScheduler | null;
  readonly #fanout: HealthFanout;
  readonly #store: StateStore;
  readonly #lastUp: LastUpJournal;
  readonly #geo: GeoSource;
  /** The agent channel and agents' backends; null when overwatch.gossip is off. */
  readonly #agents: AgentHub | null;
  /** Reloads and republishes run one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();
  #republishTimer: NodeJS.Timeout | null = null;
  /** whenPublished() callers, each waiting for a registry version to be served. */
  #waiters: { readonly version: number; readonly resolve: () => void; readonly reject: (err: Error) => void }[] = [];
  #stopping = false;

  private constructor(config: Config, logger: Logger, host: string, port: number, state: StartState, counters: Int32Array, pool: DnsPool) {
    this.#health = state.health;
    this.#config = config;
    this.#logger = logger;
    this.host = host;
    this.port = port;
    this.registry = state.registry;
    this.#fanout = state.fanout;
    this.#store = state.store;
    this.#live = state.fanout.live;
    this.#snapshot = state.snapshot;
    this.#serials = state.serials;
    this.counters = counters;
    this.pool = pool;
    this.#lastUp = state.lastUp;
    this.#lastUp.start();
    this.#geo = state.geo;
    this.#agents = state.agents;
    this.#geo.onChange = (sab) => this.pool.publishGeo(sab);
    this.registry.on('changed', () => this.#scheduleRepublish());
  }

  /**
   * Starts the overwatch and resolves once every DNS worker is listening.
   * Rejects with OpenGslbError (OPENGSLB_ERR_DNS_BIND, _WORKER_START,
   * _SNAPSHOT_COMPILE) when it cannot serve; nothing is left running then.
   */
  static async start(config: Config, logger: Logger, options: OverwatchOptions = {}): Promise<Overwatch> {
    const dns = config.dns;
    const store = options.store ?? new MemoryStore();
    const registry = new Registry();
    registry.applyConfig(config);
    // Persisted state goes in before any verdict: overrides outrank the first
    // round, and last-up times let last_healthy answer right after a restart.
    for (const o of store.loadOverrides()) registry.setOverride(o);
    for (const m of store.loadGeoMappings()) registry.restoreGeoMapping(m);
    // Agents' backends from before a restart are back (stale) before the first snapshot.
    // Loaded only with the channel on: its certificate code costs memory an overwatch without agents need not pay.
    const agents = config.gossip === null ? null : (await import('./agents.ts')).AgentHub.create({ config, registry, store, logger });
    const view = registry.view();
    const serials = new ZoneSerials(store);
    const snapshot = compileSnapshot(view, { generation: 1, serial: 1, serials: await serials.serialsFor(view) });
    const fresh = registry.takeFreshSlots();
    registry.commit(view);
    const fanout = new HealthFanout(createLiveSlots(Math.max(256, registry.slotHighWater * 2)), registry);
    fanout.setMembers(snapshot.members);
    const lastUp = new LastUpJournal(store, logger);
    lastUp.index(view.served);
    fanout.onLastUp = (slots, unixSec) => lastUp.note(slots, unixSec);
    // A server going down has its final last-up time: keep it without waiting for the timer.
    fanout.onDown = () => void lastUp.flush();
    for (const [key, sec] of store.loadLastUp()) {
      const server = registry.server(key);
      if (server !== undefined) writeLastUp(fanout.live, server.slot, sec);
    }
    let health: HealthScheduler | null = null;
    if (options.healthChecks === 'off') {
      fanout.setServerHealth(fresh, HEALTH_HEALTHY);
    } else {
      health = new HealthScheduler({ sink: fanout.sink(), logger: logger.child({ component: 'health' }), observer: options.onCheck });
      health.update(buildCheckTargets(view));
      // No answer is ever given from an unknown state: DNS binds after the first round.
      await health.firstRound();
    }
    agents?.attach(fanout);
    fanout.apply();
    const overrides = registry.overrides().length;
    if (overrides > 0) logger.info({ overrides, store: store.location }, 'overrides restored');
    const live = fanout.live;
    // Probe the address only now, right before the workers bind: the first
    // health round can take seconds, and a port chosen for port 0 before it
    // could be taken by then.
    const geo = new GeoSource(logger.child({ component: 'geo' }));
    let port: number;
    try {
      await geo.apply(config);
      port = await reserveDnsPort(dns.listenHost, dns.listenPort);
    } catch (err) {
      health?.stop();
      geo.close();
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
      geo: geo.buffer,
      counters,
      udpReceiveBuffer: dns.udpReceiveBufferBytes,
      tcp: {
        idleTimeoutMs: dns.tcpIdleTimeoutMs,
        frameTimeoutMs: dns.tcpFrameTimeoutMs,
        maxConnections: dns.tcpMaxConnectionsPerWorker,
        maxConnectionsPerClient: dns.tcpMaxConnectionsPerClient,
        maxQueriesPerConnection: dns.tcpMaxQueriesPerConnection,
      },
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
      geo.close();
      throw err;
    }
    const overwatch = new Overwatch(config, logger, dns.listenHost, port, { registry, fanout, store, lastUp, snapshot, health, geo, serials, agents }, counters, pool);
    if (agents !== null) {
      try {
        await agents.listen();
      } catch (err) {
        await overwatch.stop();
        throw err;
      }
    }
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

  /** The agent channel and agents' backends, or null when overwatch.gossip is off. */
  get agents(): AgentHub | null {
    return this.#agents;
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

  /** Returns the live slot of a server, or undefined when the registry has none at (region, address, port). */
  slotOf(region: string, address: string, port: number): number | undefined {
    return this.registry.serverAt(region, address, port)?.slot;
  }

  /** Sets a server slot's health (HEALTH_*), as a check verdict would; the next query on every worker sees it. */
  setHealth(slot: number, state: number): void {
    this.#fanout.setServerHealth([slot], state);
  }

  /** The snapshot currently published, with its member table. */
  get snapshot(): CompiledSnapshot {
    return this.#snapshot;
  }

  /** What each routing-decision counter id (REC_STAT_ID, the geo ids of the group table) counts; ids are never reused. */
  decisionLabels(): readonly (DecisionLabel | undefined)[] {
    return this.registry.decisionLabels();
  }

  /** Sums the workers' counters. */
  readCounters(): Record<string, number> {
    return readCounters(this.counters);
  }

  /**
   * Swaps in a new, already validated config: applies it to the registry,
   * compiles a new snapshot and publishes it. Refuses (and keeps serving the
   * old one) a change that needs a restart. Servers that stay keep their
   * slot, so health and latency carry over.
   */
  reload(next: Config): Promise<ReloadResult> {
    return this.#serially(() => this.#reload(next));
  }

  async #reload(next: Config): Promise<ReloadResult> {
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
    if ((next.gossip === null) !== (cur.gossip === null)) return refuse('overwatch.gossip.encryption_key turned the agent channel on or off; that needs a restart');
    if (next.gossip !== null && cur.gossip !== null && (next.gossip.bindHost !== cur.gossip.bindHost || (next.gossip.bindPort !== cur.gossip.bindPort && next.gossip.bindPort !== 0))) {
      return refuse('overwatch.gossip.bind_address changed; the agent channel\'s listeners are fixed at start, so this needs a restart');
    }
    for (const [section, a, b] of [['api', cur.api, next.api], ['metrics', cur.metrics, next.metrics]] as const) {
      if (a.enabled !== b.enabled || a.host !== b.host || (a.port !== b.port && b.port !== 0)) {
        return refuse(`${section}.enabled or ${section}.address changed; the ${section} listener is fixed at start, so this needs a restart`);
      }
    }
    const geoNote = await this.#geo.apply(next);
    this.registry.applyConfig(next);
    this.#agents?.applyConfig(next);
    let snapshot: CompiledSnapshot;
    try {
      snapshot = await this.#compile();
    } catch (err) {
      // Slots are released only by a commit, so the old config's servers get theirs back.
      this.registry.applyConfig(cur);
      this.#agents?.applyConfig(cur);
      return refuse((err as Error).message);
    }
    this.#config = next;
    this.#logger.level = next.logging.level;
    const lagging = await this.#publish(snapshot);
    let note = lagging.length > 0 ? ` (workers ${lagging.join(', ')} had not confirmed the switch within 2 s)` : '';
    if (geoNote !== null) note += `; ${geoNote}`;
    return { ok: true, generation: snapshot.generation, message: `serving generation ${snapshot.generation}${note}` };
  }

  /** Runs `step` after every reload or republish queued before it; a failure does not stop the ones after. */
  #serially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(step, step);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Resolves once what the registry holds now is published to the workers
   * (at once when it already is): a change made at run time waits for its
   * debounce and publish, a reload for its publish. Resolves at stop too;
   * rejects with the compile error when the change cannot be published.
   */
  whenPublished(): Promise<void> {
    const version = this.registry.version;
    if (this.#stopping || this.#snapshot.view.version >= version) return Promise.resolve();
    this.#scheduleRepublish();
    return new Promise((resolve, reject) => this.#waiters.push({ version, resolve, reject }));
  }

  /** A run-time registry change: publish it once the burst it belongs to is over. */
  #scheduleRepublish(): void {
    if (this.#stopping || this.#republishTimer !== null) return;
    this.#republishTimer = setTimeout(() => {
      this.#republishTimer = null;
      void this.#serially(() => this.#republish());
    }, REPUBLISH_DEBOUNCE_MS);
  }

  /** Publishes what the registry holds now, unless a reload published it already. */
  async #republish(): Promise<void> {
    if (this.#stopping || this.#snapshot.view.version === this.registry.version) return;
    let snapshot: CompiledSnapshot;
    try {
      snapshot = await this.#compile();
    } catch (err) {
      this.#logger.error({ err: (err as Error).message }, 'registry change not published; the previous snapshot keeps serving');
      const waiting = this.#waiters;
      this.#waiters = [];
      for (const w of waiting) w.reject(err as Error);
      return;
    }
    await this.#publish(snapshot);
  }

  /** Compiles the registry's current view with the next generation, each zone with the serial its content has. */
  async #compile(): Promise<CompiledSnapshot> {
    const view = this.registry.view();
    return compileSnapshot(view, { generation: this.generation + 1, serial: 1, serials: await this.#serials.serialsFor(view) });
  }

  /**
   * Makes `snapshot` the one served: live slots grown if its slots outgrew
   * them, health checks following its servers, member words filled, then
   * handed to every worker. Returns the workers that did not confirm in time.
   */
  async #publish(snapshot: CompiledSnapshot): Promise<number[]> {
    const view = snapshot.view;
    let live = this.#live;
    // More slots than the live buffer holds: copy into a larger buffer and hand it over with the snapshot.
    if (this.registry.slotHighWater > live[LIVE_CAPACITY]) live = growLiveSlots(live, this.registry.slotHighWater * 2);
    const fresh = this.registry.takeFreshSlots();
    this.#live = live;
    this.#fanout.live = live;
    this.#fanout.setMembers(snapshot.members);
    if (this.#health) {
      // Unchanged targets keep their state; new servers start unknown and are probed at once.
      this.#health.update(buildCheckTargets(view));
    } else {
      this.#fanout.setServerHealth(fresh, HEALTH_HEALTHY);
    }
    // Agents' backends have their verdict from their agents, written to slots the live buffer now holds.
    this.#agents?.refreshVerdicts();
    // New domains' words for servers that already have a verdict are filled
    // now, before any worker can serve the new snapshot.
    this.#fanout.apply();
    this.#lastUp.index(view.served);
    this.#snapshot = snapshot;
    const lagging = await this.pool.publish(snapshot.buffer, snapshot.generation, live);
    // Only now, with every worker on the new snapshot, do released slots go
    // back to unknown; doing it earlier would take them out of the old
    // snapshot's answers while workers still serve it.
    for (const slot of this.registry.commit(view)) {
      storeHealth(live, slot, HEALTH_UNKNOWN);
      writeLatency(live, slot, 0, 0);
      writeLastUp(live, slot, 0);
    }
    this.#settle(view.version);
    return lagging;
  }

  /** Resolves the whenPublished() callers whose version is now served (all of them at stop). */
  #settle(served: number): void {
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const w of waiting) {
      if (this.#stopping || w.version <= served) w.resolve();
      else this.#waiters.push(w);
    }
  }

  /** Stops answering: workers close their sockets and finish TCP queries in flight. */
  async stop(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.#stopping = true;
    if (this.#republishTimer !== null) clearTimeout(this.#republishTimer);
    this.#republishTimer = null;
    this.#settle(this.#snapshot.view.version);
    this.#health?.stop();
    this.#geo.close();
    await this.#agents?.stop();
    await this.#queue;
    await this.pool.stop(graceMs);
    await this.#lastUp.stop();
  }

  // ---- Overrides

  /** Every override, active or not. */
  overrides(): OverrideView[] {
    const out = this.registry.overrides().map((o) => this.#overrideView(o));
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
    this.registry.setOverride(stored);
    this.#fanout.applyOverride(service, address);
    return this.#overrideView(stored);
  }

  /** Removes an override; returns it, or null when there was none. Throws OPENGSLB_ERR_STATE_WRITE when the store refuses. */
  async clearOverride(service: string, address: string): Promise<OverrideView | null> {
    if (this.registry.overrideOf(service, address) === null) return null;
    await this.#store.deleteOverride(service, address);
    const existing = this.registry.deleteOverride(service, address) as StoredOverride;
    this.#fanout.applyOverride(service, address);
    return this.#overrideView(existing);
  }

  /** The override of (service, address), or null. */
  overrideOf(service: string, address: string): OverrideView | null {
    const o = this.registry.overrideOf(service, address);
    return o === null ? null : this.#overrideView(o);
  }

  #requireMember(service: string, address: string): void {
    const members = this.#fanout.members;
    if (!this.#config.domains.some((d) => d.name === service)) {
      const names = this.#config.domains.map((d) => d.name);
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no domain "${service}" is served; expected one of: ${shortList(names) || '(none)'}`);
    }
    if (!members.some((m) => m.domain === service && m.server.address === address)) {
      const addresses = [...new Set(members.filter((m) => m.domain === service).map((m) => m.server.address))];
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `domain ${service} answers no server with address ${address}; its servers are: ${shortList(addresses) || '(none)'}`);
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
      active: this.registry.answers(o.service, o.address),
    };
  }

  // ---- Geolocation: what a client address maps to, and mappings added at run time

  /**
   * Decides the region of `ip` as the workers do now (the served geo table
   * and GeoIP database), with how it was decided. Opens the database when no
   * domain routes by geolocation yet. Throws OPENGSLB_ERR_API_BAD_REQUEST for
   * an address that is not an IP literal.
   */
  async geoTest(ip: string): Promise<GeoTestResult> {
    const parsed = parseIp(ip.trim());
    if ('error' in parsed) throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `ip: ${parsed.error}`);
    const reader = await this.#geo.reader(this.#config);
    const view = this.#snapshot.view;
    return explainGeo(view.regionNames, geoTableOf(view), 0, reader, parsed.address);
  }

  /** The custom geo mappings: the config's, then those added at run time (with whether each applies). */
  geoMappings(): GeoMappingView[] {
    const out: GeoMappingView[] = this.registry.configGeoMappings.map((m) => ({ cidr: m.cidr, region: m.region, comment: m.comment, source: 'config', created_at: null, active: true }));
    for (const m of this.registry.geoMappings()) {
      out.push({ cidr: m.cidr, region: m.region, comment: m.comment, source: m.source, created_at: rfc3339(m.createdAtMs), active: this.registry.geoMappingActive(m) });
    }
    return out;
  }

  /**
   * Adds (or replaces) a run-time mapping of the network `cidr` (any host bits)
   * to `region`: persisted first, then compiled into the snapshot; resolves
   * once every worker answers by it. Throws OPENGSLB_ERR_API_BAD_REQUEST for a
   * CIDR that is not one, OPENGSLB_ERR_REGISTRY_REFUSED for a region not
   * served or a network the config maps, OPENGSLB_ERR_STATE_WRITE when the
   * store refuses (nothing changes then).
   */
  async setGeoMapping(cidr: string, region: string, comment: string | null, source: string): Promise<GeoMappingView> {
    const network = parseCidr(cidr.trim());
    if ('error' in network) throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `cidr: ${network.error}`);
    const mapping: StoredGeoMapping = { cidr: networkOfCidr(network.cidr), region, comment, source, createdAtMs: Date.now() };
    this.registry.checkGeoMapping(mapping);
    await this.#store.putGeoMapping(mapping);
    this.registry.setGeoMapping(mapping);
    await this.whenPublished();
    return { cidr: mapping.cidr, region, comment, source, created_at: rfc3339(mapping.createdAtMs), active: true };
  }

  /** Removes the run-time mapping of a network; returns it, or null when there was none. Resolves once every worker answers without it. */
  async deleteGeoMapping(cidr: string): Promise<GeoMappingView | null> {
    const network = parseCidr(cidr.trim());
    if ('error' in network) throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `cidr: ${network.error}`);
    const key = networkOfCidr(network.cidr);
    const existing = this.registry.geoMappings().find((m) => m.cidr === key);
    if (existing === undefined) return null;
    await this.#store.deleteGeoMapping(key);
    this.registry.deleteGeoMapping(key);
    await this.whenPublished();
    return { cidr: existing.cidr, region: existing.region, comment: existing.comment, source: existing.source, created_at: rfc3339(existing.createdAtMs), active: false };
  }

  // ---- Views for the API, the metrics and the CLI

  /** The health-check state of each served server, by server key. */
  #targetsByServer(): Map<string, TargetStatus> {
    const targets = new Map<string, TargetStatus>();
    for (const t of this.healthStatus()) for (const s of t.servers) targets.set(s.key, t);
    return targets;
  }

  /**
   * What DNS would answer (name, type) to `client` now, and why. Throws
   * OPENGSLB_ERR_API_BAD_REQUEST for a name, type or client that cannot be asked.
   */
  explain(name: string, type: string, client: string | null): Explanation {
    const targets = this.#targetsByServer();
    try {
      return explain(
        {
          snapshot: this.#snapshot,
          live: this.#live,
          registry: this.registry,
          lastErrorOf: (server) => targets.get(server.key)?.lastError ?? null,
          geo: this.#geo.readerNow(),
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

  /** Every server with its check state; servers no domain answers are listed as unknown with no domains. */
  servers(): ServerView[] {
    const targets = this.#targetsByServer();
    const served = new Set(this.#snapshot.view.served.map((s) => s.key));
    const live = this.#live;
    const cap = live[LIVE_CAPACITY];
    const out: ServerView[] = [];
    for (const server of this.registry.servers()) {
      const isServed = served.has(server.key);
      const domains = this.registry.domainsOf(server);
      const target = targets.get(server.key);
      const status = isServed ? stateName(readHealth(live, server.slot)) : 'unknown';
      const overrides = [];
      for (const d of domains) {
        const o = this.registry.overrideOf(d, server.address);
        if (o !== null) overrides.push({ service: o.service, healthy: o.healthy, reason: o.reason, source: o.source });
      }
      const samples = isServed ? Atomics.load(live, latencyWord(cap, server.slot) + 1) : 0;
      const lastUp = isServed ? Atomics.load(live, lastUpWord(cap, server.slot)) : 0;
      out.push({
        address: server.address,
        port: server.port,
        region: server.region,
        domains: [...domains],
        source: server.source,
        service: server.service,
        agent_id: this.registry.agentStateOf(server.key)?.agentId ?? null,
        status,
        healthy: status === 'healthy',
        authority: this.registry.authorityOf(server, null),
        check_type: server.check.type,
        last_check: rfc3339(target?.lastCheckAt),
        last_healthy: rfc3339(lastUpMs(lastUp)),
        last_error: target?.lastError ?? null,
        consecutive_failures: target?.consecutiveFailures ?? 0,
        consecutive_successes: target?.consecutiveSuccesses ?? 0,
        latency_ms: samples > 0 ? Atomics.load(live, latencyWord(cap, server.slot)) / 1000 : null,
        latency_samples: samples,
        overrides,
      });
    }
    return out;
  }

  /** The Go original's backend listing: one row per domain and server, then agents' backends DNS does not answer. */
  backends(): BackendView[] {
    return backendRows({
      members: this.#fanout.members,
      live: this.#live,
      registry: this.registry,
      targets: this.#targetsByServer(),
      agents: this.#agents,
      domainNames: this.#config.domains.map((d) => d.name),
    });
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
    const byDomain = new Map<string, MemberModel[]>();
    for (const m of this.#fanout.members) {
      let list = byDomain.get(m.domain);
      if (list === undefined) byDomain.set(m.domain, (list = []));
      list.push(m);
    }
    return this.#config.domains.map((d) => ({
      name: d.name,
      zone: d.zone,
      algorithm: d.routingAlgorithm,
      ttl: d.ttlSec,
      max_answers: d.maxAnswers,
      when_all_down: d.whenAllDown,
      fallback: d.fallback,
      servers: (byDomain.get(d.name) ?? []).map((m): DomainServerView => ({
        address: m.server.address,
        port: m.server.port,
        region: m.server.region,
        weight: m.server.weight,
        priority: m.priority,
        status: stateName(readHealth(this.#live, m.memberSlot)),
        authority: this.registry.authorityOf(m.server, m.domain),
        override: this.overrideOf(m.domain, m.server.address),
      })),
    }));
  }
}

/** The first ten of a list, and how many there are in all. */
function shortList(items: readonly string[]): string {
  return items.slice(0, 10).join(', ') + (items.length > 10 ? `, … (${items.length} in all)` : '');
}

/** The compiled geo table of each served view, for the API's geo test (workers read the snapshot's copy). */
const geoTables = new WeakMap<RegistryView, Uint32Array>();

function geoTableOf(view: RegistryView): Uint32Array {
  let table = geoTables.get(view);
  if (table === undefined) geoTables.set(view, (table = compileGeoTable(view.geo)));
  return table;
}

/** Names a health word for the API; a drained member is unhealthy. */
function stateName(word: number): HealthState {
  return word === HEALTH_HEALTHY ? 'healthy' : word === HEALTH_UNKNOWN ? 'unknown' : 'unhealthy';
}

/** What start() builds before the instance exists. */
interface StartState {
  readonly registry: Registry;
  readonly fanout: HealthFanout;
  readonly store: StateStore;
  readonly lastUp: LastUpJournal;
  readonly snapshot: CompiledSnapshot;
  readonly health: HealthScheduler | null;
  readonly geo: GeoSource;
  readonly agents: AgentHub | null;
  readonly serials: ZoneSerials;
}

