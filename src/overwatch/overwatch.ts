// Main thread. The overwatch composition root: config → registry → snapshot →
// DNS worker pool, with the health checker writing the live slots. A reload
// applies the new config to the registry and publishes at once; a change made
// to the registry at run time (agents, the API) is published after a short
// debounce, so a burst of changes makes one snapshot. Stop drains the
// workers. The main thread never parses a DNS query.

import { hostname } from 'node:os';
import type { Config } from '../config/types.ts';
import type { Logger } from '../log/logger.ts';
import { createCounters, readCounters } from '../metrics/counters-layout.ts';
import type { BusMetricsSource, DnssecMetricsSource } from '../metrics/prometheus.ts';
import { Registry, type Authority, type ConfigChange, type DecisionLabel, type MemberModel, type ServerRecord } from '../registry/registry.ts';
import { compileSnapshot, type CompiledSnapshot } from '../snapshot/compile.ts';
import { HealthScheduler, type CheckObserver, type HealthCounters } from '../health/scheduler.ts';
import type { TargetStatus } from '../health/types.ts';
import {
  createLiveSlots, growLiveSlots, HEALTH_HEALTHY, HEALTH_UNKNOWN, LIVE_CAPACITY, LIVE_EPOCH,
  isUnmeasured, lastUpMs, lastUpWord, latencyWord, readHealth, storeHealth, writeLastUp, writeLatency,
} from '../snapshot/live-slots.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { Keyring, type PreparedKeys, type DnssecKeyView, type DsRecordView, type KeyringChanges, type RolloverView } from '../dnssec/keyring.ts';
import { dsOf, type DnssecKeyInfo } from '../dnssec/keys.ts';
import { KeySyncClient, KeySyncServer, keyStateRank, mergeKey, mergeKeys, type KeySyncView, type SealedKeys } from '../dnssec/key-sync.ts';
import type { SignatureBatch, WorkerDnssec, WorkerToMain } from '../../workers/messages.ts';
import type { SignBatchResult, SignBatchTask } from '../dnssec/sign.ts';
import { inlineRunner, Presigner, type PresignStats, type SignRunner } from './presign.ts';
import { networkOfCidr, parseCidr, parseIp } from '../config/ip.ts';
import { compileGeoTable, MAX_CIDR_MAPPINGS } from '../geo/cidr-table.ts';
import { explainGeo, type GeoTestResult } from '../geo/table-input.ts';
import type { RegistryView } from '../registry/registry.ts';
import { MemoryStore, type StateStore, type StoredDnssecKey, type StoredGeoMapping, type StoredOverride, type StoredPin } from '../state/store.ts';
import { describeTarget, fromStored, inForce, keyOfTarget, OVERRIDE_SCOPES, toStored, type Override, type OverrideTarget } from '../registry/overrides.ts';
import { bucketName, MAX_CLOCK_SKEW_MS, OperatorReplica, operatorKvKey, readReplicatedKeys, type ApplyResult, type OperatorChange } from '../bus/replica.ts';
import { OverrideExpiry } from './override-expiry.ts';
import type { AgentHub } from './agents.ts';
import { backendRows, type BackendView } from './backends-view.ts';
import { buildCheckTargets, markMeasured } from './check-targets.ts';
import { formatAddress, ipToBytes } from '../lib/ip.ts';
import { reserveDnsPort } from './address.ts';
import { assertAttaches, DnsPool, type PublishOutcome, type StuckWorker } from './dns-pool.ts';
import { CookieSecrets } from './cookie-secrets.ts';
import { createRrlClock, createRrlTable, type RrlSettings } from '../dns/rrl.ts';
import type { RrlConfig } from '../config/types.ts';
import { explain, type Explanation } from './explain.ts';
import { GeoSource, type PreparedGeo } from './geo-source.ts';
import { ZoneSerials } from './zone-serials.ts';
import { startMemoryTrim } from '../lib/memory-trim.ts';
import { expectedRegion, shortList } from '../lib/region-names.ts';
import { HealthFanout } from './fanout.ts';
import { LastUpJournal } from './last-up-journal.ts';
import { rfc3339, type DomainServerView, type DomainView, type GeoMappingView, type HealthState, type OverrideView, type RegionView, type ServerView } from './views.ts';

/** Socket settings fixed when the workers start: a reload that changes one is refused. */
const SOCKET_KEY_NAMES = {
  udpReceiveBufferBytes: 'dns.udp_receive_buffer',
  udpIo: 'dns.udp_io',
  tcpIdleTimeoutMs: 'dns.tcp_idle_timeout',
  tcpFrameTimeoutMs: 'dns.tcp_frame_timeout',
  tcpMaxConnectionsPerWorker: 'dns.tcp_max_connections',
  tcpMaxConnectionsPerClient: 'dns.tcp_max_connections_per_client',
  tcpClientIpv4PrefixLength: 'dns.tcp_client_ipv4_prefix_length',
  tcpClientIpv6PrefixLength: 'dns.tcp_client_ipv6_prefix_length',
  tcpMaxQueriesPerConnection: 'dns.tcp_max_queries_per_connection',
} as const;

/**
 * The worker's view of dns.rrl, with a new table all workers share; null
 * when rate limiting is off. Like the socket settings, fixed at start.
 */
function rrlSettingsOf(rrl: RrlConfig): RrlSettings | null {
  if (!rrl.enabled) return null;
  return {
    rates: [rrl.responsesPerSecond, rrl.nxdomainsPerSecond, rrl.errorsPerSecond],
    windowSec: rrl.windowSec,
    slip: rrl.slip,
    ipv4PrefixLength: rrl.ipv4PrefixLength,
    ipv6PrefixLength: rrl.ipv6PrefixLength,
    exempt: rrl.exemptClients.map((cidr) => {
      const slash = cidr.indexOf('/');
      return { bytes: ipToBytes(cidr.slice(0, slash)), prefix: Number(cidr.slice(slash + 1)) };
    }),
    table: createRrlTable(rrl.tableEntries),
    clock: createRrlClock(),
  };
}

/** Grace period for TCP queries in flight at shutdown; the whole stop stays under 5 s. */
export const SHUTDOWN_GRACE_MS = 3000;

/**
 * How long a run-time registry change waits for more before it is published:
 * a burst of registrations makes one snapshot. It waits twice as long as
 * the last such publish took when that is longer (up to
 * REPUBLISH_DEBOUNCE_MAX_MS), so that with a big configuration a long burst
 * (thousands of keys or servers arriving one by one) spends at most about a
 * third of its time on snapshots that the next change replaces.
 */
export const REPUBLISH_DEBOUNCE_MS = 100;
export const REPUBLISH_DEBOUNCE_MAX_MS = 1000;

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
  /** How long a key published by a rollover waits before it signs; default ROLLOVER_SWITCH_AFTER_MS (DNSKEY TTL + 5 min). Tests shorten it. */
  readonly rolloverSwitchAfterMs?: number;
  /** How long a new algorithm's key signs before it joins the DNSKEY RRset; default the zone's largest TTL + 5 min (Keyring.publishAfterMs). Tests shorten it. */
  readonly rolloverPublishAfterMs?: number;
  /** Sign the RRsets the workers are about to answer ahead of time (default true); false leaves every signature to the workers' misses (tests of the miss path, benchmarks). */
  readonly presign?: boolean;
  /**
   * Called once the DNS workers are bound and answering, before start()
   * returns (the agent channel may still be binding): from then on a stop
   * must be the clean one, with the TCP grace period, never an exit.
   */
  readonly onServing?: () => void;
  /** How long a DNS worker may take to confirm a new snapshot before it is terminated and restarted; default DEFAULT_SWITCH_DEADLINE_MS (10 s). Tests shorten it. */
  readonly workerSwitchDeadlineMs?: number;
}

/** How often the health epoch is checked for a change that calls for new pre-signed sets. */
const PRESIGN_POLL_MS = 250;
/**
 * Pre-signing waits until snapshots and health have not changed for this
 * long, so a burst of changes (5 000 agents registering make a snapshot every
 * 100 ms) is planned and signed once, when it is over, instead of once per
 * intermediate snapshot. Nothing waits for it: a worker signs an answer that
 * was not pre-signed when it is asked (a cache miss).
 */
export const PRESIGN_SETTLE_MS = 1000;
/** ...but a plan runs at the latest this long after the first change of a burst that does not end. */
export const PRESIGN_MAX_WAIT_MS = 5000;
/** How often the pre-signed sets are planned anyway, so signatures are renewed before they grow stale. */
const PRESIGN_REFRESH_MS = 3600_000;
/** The pre-signing task file for the CPU pool. */
const SIGN_TASK_URL = new URL('../dnssec/sign-task.ts', import.meta.url);

/** What an operator sends to set an override. */
/** One server as GET /metrics shows it (Overwatch.serverStates()). */
export interface ServerState {
  readonly server: ServerRecord;
  /** Some domain answers the server (else its status is unknown and it has no latency). */
  readonly isServed: boolean;
  /** The health checks' verdict, unknown for a server no domain answers. */
  readonly status: ServerView['status'];
  /** status is healthy. */
  readonly healthy: boolean;
  /** Latency EMA in milliseconds, null until the first successful check. */
  readonly latencyMs: number | null;
  readonly samples: number;
  readonly authority: Authority;
}

export interface OverrideRequest {
  readonly healthy: boolean;
  readonly reason: string;
  readonly source: string;
  /** When the health checks decide again, epoch ms; absent or null: until cleared. */
  readonly expiresAtMs?: number | null;
}


export interface ReloadResult {
  readonly ok: boolean;
  /** The generation serving afterwards: the new one, or the old one when refused. */
  readonly generation: number;
  readonly message: string;
  /** On success, the servers the new config added, removed and changed, by label (Registry.applyConfig()). */
  readonly servers?: ConfigChange;
}

/** How long a start waits for the DNSSEC keys in the operator-state bucket (overwatch.bus) before making its own. */
const BUS_KEYS_AT_START_MS = 3000;

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
  /** dns.cookies' key rotation, or null when cookies are off. */
  #cookieSecrets: CookieSecrets | null = null;
  /** The agent channel and agents' backends; null when overwatch.gossip is off. */
  readonly #agents: AgentHub | null;
  /** Reloads and republishes run one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();
  #republishTimer: NodeJS.Timeout | null = null;
  /** How long the last run-time republish took, ms (compile and publish). */
  #republishCostMs = 0;
  /** Keys taken from the bus since the last snapshot: the next publish carries them (and re-arms the rollover timer). */
  #keysUnpublished = false;
  /** whenPublished() callers, each waiting for a registry version to be served. */
  #waiters: { readonly version: number; readonly resolve: () => void; readonly reject: (err: Error) => void }[] = [];
  /** The zones' DNSSEC keys; null when overwatch.dnssec.enabled is false. */
  readonly #keyring: Keyring | null;
  /** Fires when a published key is due to start signing. */
  #rolloverTimer: NodeJS.Timeout | null = null;
  /** Signs ahead what the workers will answer; null when DNSSEC is off or presign is false. */
  readonly #presigner: Presigner | null;
  /** The CPU pool (piscina), started on the first large pre-signing run; null until then. */
  #cpuPool: Promise<{ run(task: SignBatchTask, opts: { transferList: ArrayBuffer[] }): Promise<unknown>; destroy(): Promise<void> }> | null = null;
  #presignPoll: NodeJS.Timeout | null = null;
  /** The settle timer of the next plan (PRESIGN_SETTLE_MS), and when the burst it waits for began (0: none pending). */
  #presignTimer: NodeJS.Timeout | null = null;
  #presignBurstMs = 0;
  /** The snapshot and health epoch the last plan was asked for. */
  #presignAsked: { snapshot: SharedArrayBuffer | null; epoch: number } = { snapshot: null, epoch: -1 };
  /** Polls the key-sync peers; null without peers. */
  readonly #keySync: KeySyncClient | null;
  /** Answers the peers' polls; null without key_sync.shared_secret. */
  readonly #keySyncServer: KeySyncServer | null;
  #keySyncTimer: NodeJS.Timeout | null = null;
  #presignRefresh: NodeJS.Timeout | null = null;
  /** Stops the periodic return of freed C memory (src/lib/memory-trim.ts). */
  #stopTrim: () => void = () => undefined;
  #stopping = false;
  /** Override writes (set, clear, the removal of an ended one) reach the store one at a time, in order. */
  #overrideQueue: Promise<unknown> = Promise.resolve();
  /** Run-time geo mapping writes (the API's, the bus's) likewise: each is checked against what the ones before it left. */
  #geoQueue: Promise<unknown> = Promise.resolve();
  /** overwatch.bus: the JetStream bucket operator state is replicated through (src/bus/replica.ts); null without the bus. */
  #replica: OperatorReplica | null = null;
  /** What each DNSSEC key was last put as (or taken from the bucket as), by bucket key: only keys that differ go out. */
  readonly #keysReplicated = new Map<string, string>();
  readonly #expiry: OverrideExpiry;
  /** Keys (keyOfTarget) of the overrides that covered nothing served at start or the last reload, each warned of once. */
  #overridesLeftOut: ReadonlySet<string> = new Set();

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
    this.#keyring = state.keyring;
    this.#presigner = state.presigner;
    this.#keySync = state.keySync;
    const secret = config.dnssec.keySync.sharedSecret;
    this.#keySyncServer = state.keyring !== null && secret !== null ? new KeySyncServer(secret) : null;
    this.#lastUp.start();
    this.#geo = state.geo;
    this.#agents = state.agents;
    this.#geo.onChange = (sab) => this.pool.publishGeo(sab);
    this.registry.on('changed', () => this.#scheduleRepublish());
    this.#expiry = new OverrideExpiry({
      registry: this.registry,
      apply: (targets) => this.#fanout.applyOverrides(targets),
      forget: (target) => this.#overridesSerially(async () => {
        // A new override of the same target set meanwhile stays stored.
        if (this.registry.overrideAt(target) === null) await this.#store.deleteOverride(target);
      }),
      logger: logger.child({ component: 'overrides' }),
    });
    // Overrides that ended while the overwatch was stopped are dropped now (logged and counted as expired).
    this.#expiry.expireDue();
    this.#expiry.schedule();
    this.#scheduleKeySwitch();
    this.#startPresigning();
    this.#startKeySync();
    this.#stopTrim = startMemoryTrim();
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
    for (const o of store.loadOverrides()) registry.setOverride(fromStored(o));
    // Keys before the first snapshot: a zone is signed from its first answer.
    // A damaged stored key stops the start (OPENGSLB_ERR_DNSSEC_KEY_CORRUPT).
    let keyring: Keyring | null = null;
    let keySync: KeySyncClient | null = null;
    if (config.dnssec.enabled && config.dnssec.keySync.peers.length > 0) {
      // Ask the peers first: a node that joins takes the zones' keys from them
      // instead of making keys of its own (which would need a new DS).
      keySync = new KeySyncClient(store, config.dnssec.keySync);
      await keySync.pollOnce(new Set(config.dns.zones.map((z) => z.name)));
      const sync = keySync.status();
      if (!sync.in_sync) logger.child({ component: 'dnssec' }).warn({ peers: sync.peers.filter((p) => !p.ok).map((p) => ({ url: p.url, error: p.last_error })) }, 'key sync: not every peer answered at start; keeping (or making) our own keys meanwhile');
    }
    if (config.dnssec.enabled && config.bus !== null) {
      // The same with the bus: the keys in the operator-state bucket first.
      const log = logger.child({ component: 'dnssec' });
      const read = await readReplicatedKeys(config.bus, `opengslb-overwatch ${hostname()}`, BUS_KEYS_AT_START_MS);
      if (read === null) {
        log.warn({ waitedMs: BUS_KEYS_AT_START_MS }, 'the operator-state bucket did not answer at start (NATS away?): keeping (or making) our own keys; the fleet\'s keys are taken once NATS answers');
      } else {
        const zones = new Set(config.dns.zones.map((z) => z.name));
        // One merge for the whole bucket (one read of the store, not one per
        // key); a key refused is logged on its own and the others are taken.
        await mergeKeys(store, read.keys, zones, 'the operator-state bucket', (k, err) => {
          log.warn({ zone: k.zone, keyTag: k.keyTag, error: err.message }, 'a DNSSEC key in the operator-state bucket was not taken');
        });
        if (read.rejected > 0) log.warn({ rejected: read.rejected }, 'DNSSEC key entries in the operator-state bucket that do not open with overwatch.bus.state_secret or any of previous_state_secrets were ignored');
      }
    }
    if (config.dnssec.enabled) {
      const opened = await Keyring.open(store, config.dns.zones.map((z) => z.name), config.dnssec, {
        ...(options.rolloverSwitchAfterMs === undefined ? {} : { switchAfterMs: options.rolloverSwitchAfterMs }),
        ...(options.rolloverPublishAfterMs === undefined ? {} : { publishAfterMs: options.rolloverPublishAfterMs }),
        onKeyCreated: (info) => logKeyCreated(logger, info),
      });
      keyring = opened.keyring;
      keyring.useTtls(config);
      logKeyChanges(logger, opened.changes);
    }
    for (const m of store.loadGeoMappings()) registry.restoreGeoMapping(m);
    warnGeoLeftOut(registry, logger);
    // Agents' backends from before a restart are back (stale) before the first snapshot.
    // Loaded only with the channel on: its certificate code costs memory an overwatch without agents need not pay.
    const agents = config.gossip === null ? null : (await import('./agents.ts')).AgentHub.create({ config, registry, store, logger });
    const view = registry.view();
    const serials = new ZoneSerials(store, logger.child({ component: 'state' }));
    const snapshot = compileSnapshot(view, { generation: 1, serial: 1, serials: await serials.serialsFor(view), ...(keyring ? { dnskeys: keyring.dnskeys() } : {}) });
    const fresh = registry.takeFreshSlots();
    // No worker runs yet: anything released is free at once, with fresh words.
    registry.freeSlots(registry.commit(view));
    const fanout = new HealthFanout(createLiveSlots(Math.max(256, registry.slotHighWater * 2)), registry);
    fanout.setMembers(snapshot.members);
    const lastUp = new LastUpJournal(store, logger, { present: (key) => registry.server(key) !== undefined });
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
      markMeasured(view, fanout.live);
      // No answer is ever given from an unknown state: DNS binds after the first round.
      await health.firstRound();
    }
    agents?.attach(fanout);
    fanout.apply();
    const overrides = registry.overrides().length;
    if (overrides > 0) logger.info({ overrides, store: store.location }, 'overrides restored');
    const overridesLeftOut = warnOverridesLeftOut(registry, config, logger, null);
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
    // dns.cookies: the keys now, rotated on the clock (cookie-secrets.ts); a bad secret_file stops the start here.
    let cookieSecrets: CookieSecrets | null;
    try {
      cookieSecrets = dns.cookies.enabled ? new CookieSecrets(dns.cookies) : null;
    } catch (err) {
      health?.stop();
      geo.close();
      throw err;
    }
    // The presigner's pool runner and worker hand-over are bound once the overwatch exists.
    const presignHooks: { run: SignRunner; send: (b: SignatureBatch[]) => void } = { run: inlineRunner, send: () => undefined };
    const presigner = keyring !== null && options.presign !== false ? new Presigner({ pool: () => presignHooks.run, send: (b) => presignHooks.send(b) }) : null;
    const pool = new DnsPool({
      ...(options.workerSwitchDeadlineMs === undefined ? {} : { switchDeadlineMs: options.workerSwitchDeadlineMs }),
      workers: dns.workers,
      host: dns.listenHost,
      port,
      snapshot: snapshot.buffer,
      generation: snapshot.generation,
      live,
      geo: geo.buffer,
      counters,
      udpReceiveBuffer: dns.udpReceiveBufferBytes,
      udpIo: dns.udpIo,
      tcp: {
        idleTimeoutMs: dns.tcpIdleTimeoutMs,
        frameTimeoutMs: dns.tcpFrameTimeoutMs,
        maxConnections: dns.tcpMaxConnectionsPerWorker,
        maxConnectionsPerClient: dns.tcpMaxConnectionsPerClient,
        clientIpv4PrefixLength: dns.tcpClientIpv4PrefixLength,
        clientIpv6PrefixLength: dns.tcpClientIpv6PrefixLength,
        maxQueriesPerConnection: dns.tcpMaxQueriesPerConnection,
      },
      dnssec: workerDnssecOf(keyring, snapshot, config),
      signatures: () => presigner?.batches() ?? [],
      rrl: rrlSettingsOf(dns.rrl),
      cookies: cookieSecrets === null ? null : { require: dns.cookies.require, keys: cookieSecrets.keysAt(Date.now()) },
    });
    presignHooks.send = (b) => pool.sendSignatures(b);
    const log = logger.child({ component: 'dns' });
    pool.on('worker-exit', (index: number, code: number, delayMs: number) => log.warn({ worker: index, code, restartInMs: delayMs }, 'DNS worker exited; restarting'));
    pool.on('worker-restarted', (index: number) => log.info({ worker: index, udpIo: pool.udpIo[index]?.path, udpIoReason: pool.udpIo[index]?.reason }, 'DNS worker restarted'));
    pool.on('worker-error', (index: number, err: Error) => log.error({ worker: index, err: err.message }, 'DNS worker failed'));
    pool.on('attach-failed', (index: number, message: string) => log.error({ worker: index, reason: message }, 'DNS worker could not attach the new snapshot; restarting it on that snapshot'));
    pool.on('worker-stuck', (index: number, s: StuckWorker) => {
      const waiting = s.generation === null ? '' : `waiting for generation ${s.generation} for ${s.waitedMs} ms, `;
      const why = s.reason === 'heartbeat'
        ? `DNS worker ${index} is hung: its event loop has not turned for ${s.silentMs} ms (no heartbeat; ${waiting}deadline ${pool.switchDeadlineMs} ms)`
        : `DNS worker ${index} confirmed no new snapshot for ${s.waitedMs} ms (deadline ${pool.switchDeadlineMs} ms, waiting for generation ${s.generation})`;
      log.error({ worker: index, reason: s.reason, silentMs: s.silentMs, generation: s.generation, waitedMs: s.waitedMs }, `${why}; terminating it, it is restarted on the newest snapshot`);
    });
    pool.on('exception', (index: number, e: Extract<WorkerToMain, { type: 'exception' }>) => {
      const what = e.where === 'udp-prefetch' ? 'warming the caches for a UDP batch (no answer lost)' : `answering over ${e.where.toUpperCase()} (the query got SERVFAIL)`;
      log.error({ worker: index, where: e.where, err: e.message, stack: e.stack, unreported: e.unreported }, `DNS worker caught an exception ${what}: a bug, please report it with this line`);
    });
    try {
      await pool.start();
    } catch (err) {
      health?.stop();
      geo.close();
      throw err;
    }
    options.onServing?.();
    const overwatch = new Overwatch(config, logger, dns.listenHost, port, { registry, fanout, store, lastUp, snapshot, health, geo, serials, keyring, presigner, keySync, agents }, counters, pool);
    overwatch.#cookieSecrets = cookieSecrets;
    overwatch.#overridesLeftOut = overridesLeftOut;
    cookieSecrets?.start((keys) => pool.publishCookieKeys(keys));
    presignHooks.run = (task, transferList) => overwatch.#runCpuTask(task, transferList);
    if (agents !== null) {
      try {
        await agents.listen();
      } catch (err) {
        await overwatch.stop();
        throw err;
      }
    }
    if (config.bus !== null) overwatch.#startReplica(config.bus);
    const udpReceiveBuffer = pool.udpReceiveBufferGranted;
    // udpIo: each worker's UDP path ("batched" or "dgram"), udpIoReason: why, once per distinct reason.
    const udpIo = pool.udpIo.map((w) => w.path);
    const udpIoReason = [...new Set(pool.udpIo.map((w) => w.reason))].join('; ');
    log.info(
      { address: formatAddress(dns.listenHost, port), workers: dns.workers, domains: config.domains.length, udpReceiveBuffer, udpIo, udpIoReason, ...snapshot.stats },
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

  /** The zones' DNSSEC keys, or null when overwatch.dnssec.enabled is false. */
  get keyring(): Keyring | null {
    return this.#keyring;
  }

  /**
   * DNSSEC as GET /api/v1/dnssec/status shows it: whether zones are signed,
   * with which algorithm and validity, and every key's public fields.
   */
  dnssecStatus(): DnssecStatusView {
    const d = this.#config.dnssec;
    return {
      enabled: this.#keyring !== null,
      algorithm: d.algorithm,
      signature_validity_seconds: d.signatureValiditySec,
      keys: this.#keyring?.keyViews() ?? [],
      key_sync: this.#keySync?.status() ?? { enabled: false, in_sync: true, peers: [] },
    };
  }

  /**
   * The DS records to publish at the parent for `zone` (every signed zone
   * when null). Throws OPENGSLB_ERR_NOT_FOUND for a zone that is not signed,
   * or when DNSSEC is off.
   */
  dnssecDs(zone: string | null): DsRecordView[] {
    if (this.#keyring === null) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', 'DNSSEC is off (overwatch.dnssec.enabled: false): no zone is signed, so there is no DS to publish');
    return this.#keyring.dsViews(zone);
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
    // stop() waits only for the reloads queued before it: a later one must not reach the stopped workers and the closed store.
    if (this.#stopping) return refuse('the overwatch is stopping; the reload was not applied');
    if (next.mode !== cur.mode) return refuse(`mode changed from ${cur.mode} to ${next.mode}; a mode change needs a restart`);
    const restart = this.#restartNeeded(cur, next);
    // Every key named at once: an operator who fixed only the first would meet the next at the next reload.
    if (restart.length === 1) return refuse(restart[0] ?? '');
    if (restart.length > 1) return refuse(`${restart.length} changes need a restart, so nothing of this reload was applied: ${restart.join('. ')}`);
    // New zones get their key before the snapshot that serves them, but it is
    // stored, held and put on the bus only once that snapshot compiled: a
    // refused reload creates no key.
    let keys: PreparedKeys | null = null;
    if (this.#keyring !== null) {
      try {
        keys = await this.#keyring.prepare(next.dns.zones.map((z) => z.name), next.dnssec);
      } catch (err) {
        return refuse((err as Error).message);
      }
    }
    // The GeoIP database is read now but put in use only with the new
    // snapshot: a reload takes effect whole or not at all.
    let geo: PreparedGeo;
    try {
      geo = await this.#geo.prepare(next);
    } catch (err) {
      return refuse((err as Error).message);
    }
    const servers = this.registry.applyConfig(next);
    this.#agents?.applyConfig(next);
    let snapshot: CompiledSnapshot;
    try {
      snapshot = await this.#compile(keys === null ? undefined : Keyring.dnskeysOf(keys.zones));
      if (keys !== null && this.#keyring !== null) {
        logKeyChanges(this.#logger, await this.#keyring.commit(keys));
        this.#keyring.useTtls(next);
      }
    } catch (err) {
      // Slots are released only by a commit, so the old config's servers get theirs back.
      this.registry.applyConfig(cur);
      this.#agents?.applyConfig(cur);
      geo.abandon();
      return refuse((err as Error).message);
    }
    this.#replicateKeys();
    const geoNote = await geo.commit();
    this.#config = next;
    this.#logger.level = next.logging.level;
    warnGeoLeftOut(this.registry, this.#logger);
    const { lagging, failed } = await this.#publish(snapshot);
    // After the publish: covered() reads the view it committed.
    this.#overridesLeftOut = warnOverridesLeftOut(this.registry, next, this.#logger, this.#overridesLeftOut);
    let note = lagging.length > 0 ? ` (workers ${lagging.join(', ')} had not confirmed the switch within 2 s; a worker that has not within ${this.pool.switchDeadlineMs / 1000} s is restarted)` : '';
    if (failed.length > 0) note += ` (workers ${failed.join(', ')} could not attach it and are restarted on it)`;
    if (geoNote !== null) note += `; ${geoNote}`;
    return { ok: true, generation: snapshot.generation, message: `serving generation ${snapshot.generation}${note}`, servers };
  }

  /**
   * What `next` changes that the running overwatch cannot take without a
   * restart (sockets, listeners, connections and state fixed at start), one
   * message per change, each naming its key; none when it can be reloaded.
   * The mode is compared before this: the other sections mean nothing across a mode change.
   */
  #restartNeeded(cur: Config, next: Config): string[] {
    const out: string[] = [];
    if (next.dns.listenHost !== cur.dns.listenHost || (next.dns.listenPort !== cur.dns.listenPort && next.dns.listenPort !== 0)) {
      out.push('dns.listen_address changed; a new listen address needs a restart');
    }
    if (next.dns.workers !== cur.dns.workers) out.push(`dns.workers changed from ${cur.dns.workers} to ${next.dns.workers}; a new worker count needs a restart`);
    for (const key of Object.keys(SOCKET_KEY_NAMES) as (keyof typeof SOCKET_KEY_NAMES)[]) {
      if (next.dns[key] !== cur.dns[key]) out.push(`${SOCKET_KEY_NAMES[key]} changed; the socket settings are fixed when the workers start, so this needs a restart`);
    }
    if (JSON.stringify(next.dns.rrl) !== JSON.stringify(cur.dns.rrl)) out.push('dns.rrl changed; rate limiting and its shared table are fixed when the workers start, so this needs a restart');
    if (JSON.stringify(next.dns.cookies) !== JSON.stringify(cur.dns.cookies)) {
      out.push('dns.cookies changed; the cookie settings and secret are fixed when the workers start, so this needs a restart');
    } else if (this.#cookieSecrets !== null && next.dns.cookies.secretFile !== null) {
      // The same path may hold a new secret: it would be ignored without this.
      try {
        if (!this.#cookieSecrets.holdsSecretOf(next.dns.cookies)) {
          out.push(`the secret in dns.cookies.secret_file (${next.dns.cookies.secretFile}) changed; the cookie secret is fixed when the workers start, so this needs a restart`);
        }
      } catch (err) {
        out.push((err as Error).message);
      }
    }
    if (next.logging.format !== cur.logging.format) out.push(`logging.format changed from ${cur.logging.format} to ${next.logging.format}; a new log format needs a restart`);
    if (next.dataDir !== cur.dataDir) out.push('overwatch.data_dir changed; a new state directory needs a restart');
    if (JSON.stringify(next.bus) !== JSON.stringify(cur.bus)) out.push('overwatch.bus changed; the NATS connection is made at start, so this needs a restart');
    if (JSON.stringify(next.dnssec.keySync) !== JSON.stringify(cur.dnssec.keySync)) out.push('overwatch.dnssec.key_sync changed; the key-sync peers and secret are fixed at start, so this needs a restart');
    if (next.dnssec.enabled !== cur.dnssec.enabled) out.push(`overwatch.dnssec.enabled changed from ${cur.dnssec.enabled} to ${next.dnssec.enabled}; turning signing on or off needs a restart`);
    if ((next.gossip === null) !== (cur.gossip === null)) out.push('overwatch.gossip.encryption_key turned the agent channel on or off; that needs a restart');
    if (next.gossip !== null && cur.gossip !== null && (next.gossip.bindHost !== cur.gossip.bindHost || (next.gossip.bindPort !== cur.gossip.bindPort && next.gossip.bindPort !== 0))) {
      out.push('overwatch.gossip.bind_address changed; the agent channel\'s listeners are fixed at start, so this needs a restart');
    }
    for (const [section, a, b] of [['api', cur.api, next.api], ['metrics', cur.metrics, next.metrics]] as const) {
      if (a.enabled !== b.enabled || a.host !== b.host || (a.port !== b.port && b.port !== 0)) {
        out.push(`${section}.enabled or ${section}.address changed; the ${section} listener is fixed at start, so this needs a restart`);
      }
    }
    // A new certificate for the same scheme is taken (the reload hands it to the API); HTTP to HTTPS or back is not.
    if (cur.api.enabled && (next.api.tls === null) !== (cur.api.tls === null)) {
      out.push(`api.tls turned ${next.api.tls === null ? 'off' : 'on'}; the API listener's scheme is fixed at start, so this needs a restart`);
    }
    return out;
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

  /** A run-time registry change or a key taken from the bus: publish it once the burst it belongs to is over. */
  #scheduleRepublish(): void {
    if (this.#stopping || this.#republishTimer !== null) return;
    this.#republishTimer = setTimeout(() => {
      this.#republishTimer = null;
      void this.#serially(() => this.#republish());
    }, Math.min(REPUBLISH_DEBOUNCE_MAX_MS, Math.max(REPUBLISH_DEBOUNCE_MS, 2 * this.#republishCostMs)));
  }

  /** Publishes what the registry and the keyring hold now, unless a reload published it already. */
  async #republish(): Promise<void> {
    if (this.#stopping || (this.#snapshot.view.version === this.registry.version && !this.#keysUnpublished)) return;
    const started = performance.now();
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
    this.#republishCostMs = performance.now() - started;
  }

  /** Publishes a new snapshot for a change of keys (the registry did not change): new DNSKEY RRsets and signers. */
  async #republishKeys(): Promise<void> {
    if (this.#stopping) return;
    await this.#publish(await this.#compile());
  }

  /** Arms the timer for the next published key that is due to start signing (a rollover's switch). */
  #scheduleKeySwitch(): void {
    if (this.#rolloverTimer !== null) clearTimeout(this.#rolloverTimer);
    this.#rolloverTimer = null;
    const at = this.#keyring?.nextSwitchMs() ?? null;
    if (at === null || this.#stopping) return;
    // setTimeout takes at most 2^31-1 ms (24.8 days); a longer wait re-arms on the way.
    const delay = Math.min(Math.max(0, at - Date.now()), 0x7fffffff);
    this.#rolloverTimer = setTimeout(() => {
      this.#rolloverTimer = null;
      void this.#serially(async () => {
        const keyring = this.#keyring;
        if (keyring === null || this.#stopping) return;
        try {
          const due = await keyring.switchDue();
          if (due.stored.length > 0) this.#replicateKeys(due.stored);
          if (due.steps.length > 0) {
            await this.#republishKeys();
            for (const { zone, keyTag, step } of due.steps) {
              const log = { component: 'dnssec', zone, keyTag };
              if (step === 'published') this.#logger.info(log, 'key rollover: the new algorithm\'s key joins the DNSKEY RRset now (every RRset carries its signature); it signs as the zone\'s key after the DNSKEY TTL');
              else if (step === 'switched') this.#logger.info(log, 'key rollover: the new key signs now; publish its DS at the parent, then finish the rollover');
              else this.#logger.info(log, 'key rollover: the old algorithm\'s key is retired and signs no more');
            }
          }
        } catch (err) {
          this.#logger.error({ component: 'dnssec', err: (err as Error).message }, 'key rollover: the new key could not be switched on; retrying in a minute');
          this.#rolloverTimer = setTimeout(() => this.#scheduleKeySwitch(), 60_000);
          this.#rolloverTimer.unref();
          return;
        }
        this.#scheduleKeySwitch();
      });
    }, delay);
    this.#rolloverTimer.unref();
  }

  /** Runs a pre-signing task in the CPU pool, starting it on first use (one thread that exits when idle). */
  async #runCpuTask(task: SignBatchTask, transferList: ArrayBuffer[]): Promise<SignBatchResult> {
    // The pool is kept as a promise, set before the first await: a plan's
    // tasks arrive together, and each one that found no pool made its own
    // (10 000 names started 12 pools, 300 MB of idle threads).
    this.#cpuPool ??= import('piscina').then(
      // One thread: the DNS workers have the other cores; it exits after 30 s without work, so its memory goes back.
      ({ Piscina }) => new Piscina({ filename: SIGN_TASK_URL.href, minThreads: 0, maxThreads: 1, idleTimeout: 30_000 }),
    );
    const pool = await this.#cpuPool;
    return (await pool.run(task, { transferList })) as SignBatchResult;
  }

  /** Pre-signs for the snapshot now served and the health now known; logs (and leaves to the workers) what fails. */
  #presign(): void {
    const presigner = this.#presigner;
    if (presigner === null || this.#stopping) return;
    presigner.update(this.#snapshot.buffer, this.#live, workerDnssecOf(this.#keyring, this.#snapshot, this.#config)).catch((err: Error) => {
      this.#logger.warn({ component: 'dnssec', err: err.message }, 'pre-signing failed; the DNS workers sign these answers when asked');
    });
  }

  /** Asks for a plan once the changes settle (PRESIGN_SETTLE_MS, at most PRESIGN_MAX_WAIT_MS after the first). */
  #presignSoon(): void {
    if (this.#presigner === null || this.#stopping) return;
    this.#presignAsked = { snapshot: this.#snapshot.buffer, epoch: Atomics.load(this.#live, LIVE_EPOCH) };
    const now = Date.now();
    if (this.#presignBurstMs === 0) this.#presignBurstMs = now;
    if (this.#presignTimer !== null) clearTimeout(this.#presignTimer);
    const wait = Math.max(0, Math.min(PRESIGN_SETTLE_MS, this.#presignBurstMs + PRESIGN_MAX_WAIT_MS - now));
    this.#presignTimer = setTimeout(() => {
      this.#presignTimer = null;
      this.#presignBurstMs = 0;
      this.#presign();
    }, wait);
    this.#presignTimer.unref();
  }

  /** Starts pre-signing now, after every settled burst of health changes (polled) and snapshots, and hourly (renewal). */
  #startPresigning(): void {
    const presigner = this.#presigner;
    if (presigner === null) return;
    this.#presignAsked = { snapshot: this.#snapshot.buffer, epoch: Atomics.load(this.#live, LIVE_EPOCH) };
    this.#presign();
    this.#presignPoll = setInterval(() => {
      if (this.#snapshot.buffer !== this.#presignAsked.snapshot || Atomics.load(this.#live, LIVE_EPOCH) !== this.#presignAsked.epoch) this.#presignSoon();
    }, PRESIGN_POLL_MS);
    this.#presignPoll.unref();
    this.#presignRefresh = setInterval(() => this.#presign(), PRESIGN_REFRESH_MS);
    this.#presignRefresh.unref();
  }

  /** The DNSSEC numbers GET /metrics shows (src/metrics/prometheus.ts): keys and their age, pre-signing, key sync. */
  dnssecMetrics(): DnssecMetricsSource {
    const nowMs = Date.now();
    const keys = (this.#keyring?.status(nowMs) ?? []).filter((k) => k.state !== 'retired').map((k) => ({ zone: k.zone, keyTag: k.keyTag, state: k.state, ageSeconds: k.ageSeconds }));
    const sync = this.#keySync?.status() ?? null;
    return { keys, keysCreated: this.#keyring?.keysCreated ?? 0, presign: this.#presigner?.stats ?? null, keySync: sync === null ? null : { inSync: sync.in_sync, peers: sync.peers.map((p) => ({ url: p.url, ok: p.ok })) } };
  }

  /** The NATS bus numbers GET /metrics shows: the agent subscription's and the operator-state replica's; null without overwatch.bus. */
  busMetrics(): BusMetricsSource | null {
    if (this.#config.bus === null) return null;
    return { agents: this.#agents?.bus?.counters() ?? null, replica: this.#replica?.counters() ?? null };
  }

  /** Pre-signing numbers for the metrics: signatures the pool made and its signing time; null when nothing is pre-signed. */
  presignStats(): Readonly<PresignStats> | null {
    return this.#presigner?.stats ?? null;
  }

  /** Polls the key-sync peers every key_sync.poll_interval; keys that changed go into a new snapshot. */
  #startKeySync(): void {
    const client = this.#keySync;
    if (client === null) return;
    this.#keySyncTimer = setInterval(() => void this.#serially(() => this.#syncKeys()), this.#config.dnssec.keySync.pollIntervalMs);
    this.#keySyncTimer.unref();
  }

  /** One key-sync round: merge the peers' keys, and publish when a zone's keys changed. */
  async #syncKeys(): Promise<void> {
    const client = this.#keySync;
    const keyring = this.#keyring;
    if (client === null || keyring === null || this.#stopping) return;
    const before = client.status().in_sync;
    const changed = await client.pollOnce(new Set(keyring.zones.keys()));
    const after = client.status();
    const log = this.#logger.child({ component: 'dnssec' });
    if (before !== after.in_sync) {
      if (after.in_sync) log.info('key sync: every peer answered; in sync again');
      else log.warn({ peers: after.peers.filter((p) => !p.ok).map((p) => ({ url: p.url, error: p.last_error })) }, 'key sync: a peer did not answer; this node keeps signing with the keys it has');
    }
    if (changed.length === 0) return;
    await keyring.reload(changed);
    this.#replicateKeys(changed);
    await this.#republishKeys();
    this.#scheduleKeySwitch();
    log.info({ zones: changed }, 'key sync: took keys from a peer');
  }

  /** Runs one key-sync round now (tests; the timer does it every poll_interval). */
  syncKeysNow(): Promise<void> {
    return this.#serially(() => this.#syncKeys());
  }

  /**
   * Answers a key-sync peer (GET /api/v1/dnssec/keysync): the keys of the
   * zones served here, sealed for that one request. Throws
   * OPENGSLB_ERR_DNSSEC_KEY_SYNC (403) for a request that does not prove
   * the shared secret, OPENGSLB_ERR_NOT_FOUND when key sync is not configured.
   */
  keySyncAnswer(header: string | undefined): SealedKeys {
    const server = this.#keySyncServer;
    const keyring = this.#keyring;
    if (server === null || keyring === null) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', 'key sync is not configured here (overwatch.dnssec.key_sync.shared_secret is not set, or DNSSEC is off)');
    const zones = keyring.zones;
    return server.answer(header, keyring.store.loadDnssecKeys().filter((k) => zones.has(k.zone)));
  }

  /** Where the key rollover of `zone` stands. Throws OPENGSLB_ERR_NOT_FOUND for a zone not signed (or DNSSEC off). */
  rolloverStatus(zone: string): RolloverView {
    return this.#requireKeyring().rolloverStatus(zone);
  }

  /**
   * Starts a key rollover of `zone`: a new key joins the DNSKEY RRset now and
   * signs after the DNSKEY TTL. Throws OPENGSLB_ERR_DNSSEC_ROLLOVER when one is
   * running, OPENGSLB_ERR_NOT_FOUND, OPENGSLB_ERR_STATE_WRITE.
   */
  rolloverStart(zone: string): Promise<RolloverView> {
    const keyring = this.#requireKeyring();
    return this.#serially(async () => {
      const view = await keyring.rolloverStart(zone);
      this.#replicateKeys([zone]);
      await this.#republishKeys();
      this.#scheduleKeySwitch();
      this.#logger.info({ component: 'dnssec', zone, keyTag: view.new_key, switchAt: view.switch_at }, 'key rollover started: the new key is published and signs after the DNSKEY TTL');
      return view;
    });
  }

  /**
   * Finishes the key rollover of `zone` (the operator confirms the new DS is at
   * the parent): the old key leaves the DNSKEY RRset. Throws
   * OPENGSLB_ERR_DNSSEC_ROLLOVER before the new key signs.
   */
  rolloverFinish(zone: string): Promise<RolloverView> {
    const keyring = this.#requireKeyring();
    return this.#serially(async () => {
      const before = keyring.rolloverStatus(zone);
      const view = await keyring.rolloverFinish(zone);
      this.#replicateKeys([zone]);
      await this.#republishKeys();
      this.#scheduleKeySwitch();
      if (view.phase === 'withdrawing') this.#logger.info({ component: 'dnssec', zone, keyTag: view.signing_key, withdrawn: before.old_keys, retireAt: view.switch_at }, 'key rollover finished: the old algorithm\'s key left the DNSKEY RRset and signs until the DNSKEY TTL has passed');
      else this.#logger.info({ component: 'dnssec', zone, keyTag: view.signing_key, retired: before.old_keys }, 'key rollover finished: the old key is retired');
      return view;
    });
  }

  #requireKeyring(): Keyring {
    if (this.#keyring === null) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', 'DNSSEC is off (overwatch.dnssec.enabled: false): no zone is signed');
    return this.#keyring;
  }

  /**
   * Compiles the registry's current view with the next generation, each zone
   * with the serial its content has, and checks that it attaches as every
   * worker will (a worker that cannot attach exits): a snapshot that would
   * not is refused here, before anything is changed for it, with
   * OPENGSLB_ERR_SNAPSHOT_COMPILE. `dnskeys` are the DNSKEY RRsets it
   * publishes: the keyring's, or a reload's prepared keys (not held yet).
   */
  async #compile(dnskeys: Map<string, Uint8Array[]> | undefined = this.#keyring?.dnskeys()): Promise<CompiledSnapshot> {
    const view = this.registry.view();
    const snapshot = compileSnapshot(view, { generation: this.generation + 1, serial: 1, serials: await this.#serials.serialsFor(view), ...(dnskeys ? { dnskeys } : {}) });
    assertAttaches(snapshot.buffer, snapshot.generation, this.generation);
    return snapshot;
  }

  /**
   * Makes `snapshot` the one served: live slots grown if its slots outgrew
   * them, health checks following its servers, member words filled, then
   * handed to every worker. Returns the workers that did not confirm in time.
   */
  async #publish(snapshot: CompiledSnapshot): Promise<PublishOutcome> {
    const view = snapshot.view;
    // Compiled from the keyring as it is now (every keyring change runs in #serially, as this does).
    const keysTaken = this.#keysUnpublished;
    this.#keysUnpublished = false;
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
      markMeasured(view, live);
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
    const outcome = await this.pool.publish(snapshot.buffer, snapshot.generation, live, 2000, workerDnssecOf(this.#keyring, snapshot, this.#config));
    this.#presignSoon();
    // Released slots go back to unknown, and may be handed to new servers,
    // only once every worker is on the new snapshot: a worker that had not
    // confirmed it in time (outcome.lagging) still answers the old one's
    // servers from those words. Waited for apart, so later publishes do not
    // wait for a lagging worker; until then the slots are nobody's.
    const released = this.registry.commit(view);
    if (released.length > 0) void this.pool.whenServing(snapshot.generation).then(() => this.#resetReleased(released));
    this.#settle(view.version);
    if (keysTaken) this.#scheduleKeySwitch();
    return outcome;
  }

  /** Resets the words of slots no worker reads any more (the live buffer now served) and lets the registry hand them out again. */
  #resetReleased(slots: readonly number[]): void {
    const live = this.#live;
    for (const slot of slots) {
      storeHealth(live, slot, HEALTH_UNKNOWN);
      writeLatency(live, slot, 0, 0);
      writeLastUp(live, slot, 0);
    }
    this.registry.freeSlots(slots);
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
  /** True from the first stop() call on: /api/v1/ready then answers 503 while DNS drains. */
  get stopping(): boolean {
    return this.#stopping;
  }

  async stop(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.#stopping = true;
    if (this.#republishTimer !== null) clearTimeout(this.#republishTimer);
    this.#republishTimer = null;
    if (this.#rolloverTimer !== null) clearTimeout(this.#rolloverTimer);
    this.#rolloverTimer = null;
    if (this.#presignPoll !== null) clearInterval(this.#presignPoll);
    if (this.#presignTimer !== null) clearTimeout(this.#presignTimer);
    if (this.#presignRefresh !== null) clearInterval(this.#presignRefresh);
    if (this.#keySyncTimer !== null) clearInterval(this.#keySyncTimer);
    this.#stopTrim();
    this.#settle(this.#snapshot.view.version);
    this.#health?.stop();
    this.#expiry.stop();
    this.#geo.close();
    this.#cookieSecrets?.stop();
    await this.#agents?.stop();
    await this.#replica?.close();
    await this.#queue;
    await this.#overrideQueue;
    await this.#geoQueue;
    await this.pool.stop(graceMs);
    await (await this.#cpuPool)?.destroy();
    await this.#lastUp.stop();
  }

  // ---- Overrides

  /** Every override, active or not, by scope (domain, server, region), then by what it covers. */
  overrides(): OverrideView[] {
    // Held is in force (the expiry removes an ended one), exactly as DNS answers.
    const out = this.registry.overrides().map((o) => this.#overrideView(o));
    const rank = (v: OverrideView): number => OVERRIDE_SCOPES.indexOf(v.scope);
    const text = (v: OverrideView): string => `${v.service ?? ''}|${v.address ?? ''}|${v.region ?? ''}`;
    out.sort((a, b) => rank(a) - rank(b) || (text(a) < text(b) ? -1 : text(a) > text(b) ? 1 : 0));
    return out;
  }

  /** Overrides ended since start (opengslb_overwatch_overrides_expired_total). */
  get overridesExpired(): number {
    return this.#expiry.expired;
  }

  /**
   * Sets the override of `target` (names normalised): one address in one
   * domain, one address in every domain, or a region's servers in every
   * domain; with `expiresAtMs`, the checks decide again at that instant.
   * Persisted first, then written to the live slots, so the next query on
   * every worker follows it. Throws OPENGSLB_ERR_NOT_FOUND when nothing served
   * matches the target, OPENGSLB_ERR_API_BAD_REQUEST for an end that has
   * passed, OPENGSLB_ERR_STATE_WRITE when the store refuses the write
   * (nothing is applied then).
   */
  setOverride(target: OverrideTarget, request: OverrideRequest): Promise<OverrideView> {
    this.#requireTarget(target);
    const now = Date.now();
    const expiresAtMs = request.expiresAtMs ?? null;
    if (expiresAtMs !== null && expiresAtMs <= now) {
      throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `the override's end ${new Date(expiresAtMs).toISOString()} has passed; give a time in the future`);
    }
    return this.#overridesSerially(async () => {
      const o: Override = { target, healthy: request.healthy, reason: request.reason, source: request.source, createdAtMs: now, expiresAtMs };
      await this.#store.putOverride(toStored(o));
      this.registry.setOverride(o);
      this.#fanout.applyOverride(target);
      this.#expiry.schedule();
      this.#replicate({ kind: 'override', target, value: toStored(o) });
      return this.#overrideView(o);
    });
  }

  /** Removes the override of `target`; returns it, or null when there was none. Throws OPENGSLB_ERR_STATE_WRITE when the store refuses. */
  clearOverride(target: OverrideTarget): Promise<OverrideView | null> {
    return this.#overridesSerially(async () => {
      const existing = this.registry.overrideAt(target);
      if (existing === null) return null;
      await this.#store.deleteOverride(target);
      this.registry.deleteOverride(target);
      this.#fanout.applyOverride(target);
      this.#expiry.schedule();
      this.#replicate({ kind: 'override', target, value: null });
      return this.#overrideView(existing);
    });
  }

  /** The override set on exactly `target`, while in force (held: the expiry removes an ended one), or null. */
  overrideOf(target: OverrideTarget): OverrideView | null {
    const o = this.registry.overrideAt(target);
    return o === null ? null : this.#overrideView(o);
  }

  // ---- Operator state over the bus (overwatch.bus)

  #startReplica(bus: NonNullable<Config['bus']>): void {
    const log = this.#logger.child({ component: 'replica' });
    this.#replica = new OperatorReplica({
      bus,
      name: `opengslb-overwatch ${hostname()}`,
      onChange: (change) => this.#applyReplicated(change, log),
      seed: () => this.#heldBeforeBus(),
      pendingStore: this.#store,
      onEvent: (e) => {
        switch (e.kind) {
          case 'connected':
            if (e.first) log.info({ server: e.server, bucket: bucketName(bus.subjectPrefix) }, 'operator state replicated through the JetStream bucket');
            else log.info({ server: e.server }, 'operator state bucket reachable again: waiting changes are put, others\' changes applied');
            break;
          case 'disconnected':
            log.warn({ server: e.server }, 'operator state bucket unreachable (NATS away): this overwatch serves its own copy; its changes are put once NATS is back');
            break;
          case 'rejected':
            log.warn({ entry: e.entry, key: e.key, reason: e.reason, detail: e.detail }, 'operator state entry refused: it changed nothing here');
            break;
          case 'put_failed':
            log.warn({ entry: e.entry, key: e.key, error: e.error }, 'operator state not put in the bucket yet (NATS away?): it holds here and is put once NATS is back');
            break;
          case 'caught_up':
            log.info({ puts: e.puts }, 'operator state changes made while NATS was away are in the bucket now');
            break;
          case 'seeded':
            log.info({ puts: e.puts }, 'operator state this overwatch held that the bucket did not have is put in it (set before the bus was on)');
            break;
          case 'refused_at_start':
            log.warn({ refused: e.total, reasons: e.reasons, examples: e.examples }, 'operator state bucket holds entries refused here, found at start (not counted again in opengslb_overwatch_bus_kv_rejections_total: the overwatches watching when each was put counted and logged it); they change nothing');
            break;
          case 'resealed':
            if (e.entries > 0) log.info({ entries: e.entries }, 'operator state entries sealed with one of overwatch.bus.previous_state_secrets are put back sealed with state_secret');
            if (e.leftFuture > 0) log.warn({ entries: e.leftFuture, maxSkewMs: MAX_CLOCK_SKEW_MS }, 'operator state entries sealed with one of overwatch.bus.previous_state_secrets but stamped ahead of this clock (refused as future) are left as they are, not sealed again with state_secret: once the old secret is dropped they no longer open (a writer\'s clock was wrong; the next change of each key replaces it)');
            break;
          case 'restamped':
            log.warn({ entry: e.entry, key: e.key, stamped: new Date(e.fromMs).toISOString(), now: new Date(e.toMs).toISOString() }, 'operator state change that waited for NATS was stamped ahead of this clock (it was ahead when the change was made, and has been set back): put stamped with the time of the put instead, or the other overwatches would refuse it');
            break;
          case 'superseded':
            log.warn({ entry: e.entry, key: e.key, stamped: new Date(e.atMs).toISOString(), bucketStamped: new Date(e.bucketAtMs).toISOString() }, 'operator state change that waited for NATS is older than the bucket\'s entry for its key (another overwatch changed it meanwhile; or this state directory was restored from a backup or copied while the change waited): not put; the bucket\'s entry is applied here');
            break;
          case 'bucket_recreated':
            log.warn({ bucket: e.bucket, entries: e.entries }, 'operator state bucket was made again, empty (nats-server back without its JetStream storage): what this overwatch holds is put in it again');
            break;
          case 'error':
          case 'replica_error':
            log.warn({ error: e.error }, 'operator state replica: a problem; this overwatch keeps serving its own copy');
            break;
        }
      },
    });
    // Agent revocations made through this overwatch's API.
    if (this.#agents !== null) this.#agents.onRevocation = (agentId, pin) => this.#replica?.put({ kind: 'revocation', agentId, value: pin });
    // The keys this overwatch holds (made at start, taken from key-sync peers) go out once.
    this.#replicateKeys();
  }

  /**
   * The operator state this overwatch holds that the bucket should have:
   * overrides in force, geo mappings set at run time, revoked agents (DNSSEC
   * keys go out through #replicateKeys). Put where the bucket has no entry.
   */
  #heldBeforeBus(): OperatorChange[] {
    const now = Date.now();
    const changes: OperatorChange[] = [];
    for (const o of this.registry.overrides()) if (inForce(o, now)) changes.push({ kind: 'override', target: o.target, value: toStored(o) });
    for (const m of this.#store.loadGeoMappings()) changes.push({ kind: 'geo_mapping', cidr: m.cidr, value: m });
    for (const pin of this.#agents?.channel.pins() ?? []) if (pin.revokedAtMs !== null) changes.push({ kind: 'revocation', agentId: pin.agentId, value: pin });
    return changes;
  }

  /** Puts a change made here in the bucket (no-op without the bus). */
  #replicate(change: OperatorChange): void {
    this.#replica?.put(change);
  }

  /** Puts every key of the signed zones (of `zones` only, when given) that changed since it was last put or taken. */
  #replicateKeys(zones?: readonly string[]): void {
    const replica = this.#replica;
    const keyring = this.#keyring;
    if (replica === null || keyring === null) return;
    const store = keyring.store;
    for (const k of zones === undefined ? store.loadDnssecKeys() : zones.flatMap((zone) => store.loadZoneDnssecKeys(zone))) {
      if (!keyring.zones.has(k.zone)) continue;
      const kvKey = operatorKvKey({ kind: 'dnssec_key', zone: k.zone, keyTag: k.keyTag });
      const text = canonicalKey(k);
      if (this.#keysReplicated.get(kvKey) === text) continue;
      this.#keysReplicated.set(kvKey, text);
      replica.put({ kind: 'dnssec_key', zone: k.zone, keyTag: k.keyTag, value: k });
    }
  }

  /** Applies what another overwatch put in the bucket to this one's copy (never put back, except a DNSSEC key this overwatch holds further along). */
  #applyReplicated(change: OperatorChange, log: Logger): Promise<ApplyResult> {
    if (this.#stopping) return Promise.resolve('unchanged');
    switch (change.kind) {
      case 'override':
        return this.#applyReplicatedOverride(change.target, change.value, log);
      case 'geo_mapping':
        return this.#applyReplicatedGeo(change.cidr, change.value, log);
      case 'revocation':
        return this.#applyReplicatedRevocation(change.agentId, change.value, log);
      case 'dnssec_key':
        return change.value === null ? Promise.resolve('unchanged') : this.#serially(() => this.#applyReplicatedKey(change.value as StoredDnssecKey, log));
    }
  }

  #applyReplicatedOverride(target: OverrideTarget, value: StoredOverride | null, log: Logger): Promise<ApplyResult> {
    return this.#overridesSerially(async (): Promise<ApplyResult> => {
      const existing = this.registry.overrideAt(target);
      if (value === null) {
        if (existing === null) return 'unchanged';
        await this.#store.deleteOverride(target);
        this.registry.deleteOverride(target);
      } else {
        const o = fromStored(value);
        if (keyOfTarget(o.target) !== keyOfTarget(target)) return { refused: 'the override is not for its key\'s target' };
        if (existing !== null && JSON.stringify(toStored(existing)) === JSON.stringify(toStored(o))) return 'unchanged';
        if (!inForce(o, Date.now())) return 'unchanged';
        this.#requireTarget(target);
        await this.#store.putOverride(toStored(o));
        this.registry.setOverride(o);
      }
      this.#fanout.applyOverride(target);
      this.#expiry.schedule();
      log.info({ target: describeTarget(target), healthy: value?.healthy ?? null, source: value?.source ?? null }, value === null ? 'override cleared by another overwatch (bus)' : 'override set by another overwatch (bus)');
      return 'applied';
    });
  }

  #applyReplicatedGeo(cidr: string, value: StoredGeoMapping | null, log: Logger): Promise<ApplyResult> {
    return this.#geoSerially(async (): Promise<ApplyResult> => {
      const existing = this.registry.geoMapping(cidr);
      if (value === null) {
        if (existing === undefined) return 'unchanged';
        await this.#store.deleteGeoMapping(cidr);
        this.registry.deleteGeoMapping(cidr);
      } else {
        if (existing !== undefined && existing.region === value.region && existing.comment === value.comment && existing.source === value.source) return 'unchanged';
        const network = parseCidr(cidr);
        if ('error' in network || networkOfCidr(network.cidr) !== cidr) return { refused: `${cidr} is not a network in canonical form` };
        // A region not served here (configs differ) refuses it, as the API would.
        await this.#storeGeoMapping(value);
      }
      log.info({ cidr, region: value?.region ?? null, source: value?.source ?? null }, value === null ? 'geo mapping removed by another overwatch (bus)' : 'geo mapping set by another overwatch (bus)');
      return 'applied';
    });
  }

  async #applyReplicatedRevocation(agentId: string, value: StoredPin | null, log: Logger): Promise<ApplyResult> {
    const hub = this.#agents;
    if (hub === null) return { refused: 'the agent channel is off here (overwatch.gossip)' };
    const changed = value === null ? await hub.liftRevocation(agentId) : await hub.adoptRevocation(value);
    if (!changed) return 'unchanged';
    log.info({ agent: agentId, reason: value?.revokedReason ?? null }, value === null ? 'revoked agent\'s pin deleted by another overwatch (bus): it may register again' : 'agent revoked by another overwatch (bus): its messages are refused here too');
    return 'applied';
  }

  async #applyReplicatedKey(key: StoredDnssecKey, log: Logger): Promise<ApplyResult> {
    const keyring = this.#keyring;
    if (keyring === null) return { refused: 'DNSSEC is off here (overwatch.dnssec.enabled)' };
    if (!keyring.zones.has(key.zone)) return { refused: `zone ${key.zone} is not signed here` };
    const kvKey = operatorKvKey({ kind: 'dnssec_key', zone: key.zone, keyTag: key.keyTag });
    // This key only, read and written on its own, and the zones asked in place
    // (no Set copied from them): a watch (re)start delivers every key in turn,
    // and reading every stored key for each was quadratic (54 s for 4000 keys
    // already held).
    const changed = await mergeKey(keyring.store, key, keyring.zones, 'the operator-state bucket');
    const mine = keyring.store.loadDnssecKey(key.zone, key.keyTag);
    // Taken as it is: not put back. Further along here (the writer missed a step while away): this state goes out again, once.
    this.#keysReplicated.set(kvKey, canonicalKey(key));
    if (mine !== undefined && keyStateRank(mine.state) > keyStateRank(key.state)) this.#replicateKeys([key.zone]);
    if (!changed) return 'unchanged';
    // This zone's keys only; the new DNSKEY RRset and signers go out with the
    // next snapshot the republish timer makes, shared by every key of a burst:
    // a peer that rolls every zone at once sends a key per zone, and a reload
    // and snapshot for each was quadratic.
    await keyring.reload([key.zone]);
    this.#keysUnpublished = true;
    this.#scheduleRepublish();
    log.info({ zone: key.zone, keyTag: key.keyTag, state: mine?.state ?? key.state }, 'DNSSEC key taken from another overwatch (bus)');
    return 'applied';
  }

  /** Runs `step` after every override write queued before it. */
  #overridesSerially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#overrideQueue.then(step, step);
    this.#overrideQueue = run.catch(() => undefined);
    return run;
  }

  /** Runs `step` after every geo mapping write queued before it. */
  #geoSerially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#geoQueue.then(step, step);
    this.#geoQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * Stores `mapping` and puts it in the registry, which checks it again: a
   * reload that removed its region or mapped its network in the config while
   * the write was under way refuses it there, and the store is put back as it
   * was (a refused mapping must not come back at the next start). Run in #geoSerially.
   */
  async #storeGeoMapping(mapping: StoredGeoMapping): Promise<void> {
    this.registry.checkGeoMapping(mapping);
    const previous = this.registry.geoMapping(mapping.cidr);
    await this.#store.putGeoMapping(mapping);
    try {
      this.registry.setGeoMapping(mapping);
    } catch (err) {
      await (previous === undefined ? this.#store.deleteGeoMapping(mapping.cidr) : this.#store.putGeoMapping(previous));
      throw err;
    }
  }

  #requireTarget(target: OverrideTarget): void {
    const members = this.#fanout.members;
    if (target.scope === 'region') {
      if (this.#config.regions.some((r) => r.name === target.region)) return;
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no region "${target.region}" is served; ${expectedRegion(target.region, this.#config.regions.map((r) => r.name))}`);
    }
    if (target.scope === 'server') {
      if (members.some((m) => m.server.address === target.address)) return;
      const addresses = [...new Set(members.map((m) => m.server.address))];
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no served domain answers a server with address ${target.address}; the servers are: ${shortList(addresses) || '(none)'}`);
    }
    const { service, address } = target;
    if (!this.#config.domains.some((d) => d.name === service)) {
      const names = this.#config.domains.map((d) => d.name);
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `no domain "${service}" is served; expected one of: ${shortList(names) || '(none)'}`);
    }
    if (!members.some((m) => m.domain === service && m.server.address === address)) {
      const addresses = [...new Set(members.filter((m) => m.domain === service).map((m) => m.server.address))];
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `domain ${service} answers no server with address ${address}; its servers are: ${shortList(addresses) || '(none)'}`);
    }
  }

  #overrideView(o: Override): OverrideView {
    const t = o.target;
    return {
      scope: t.scope,
      service: t.scope === 'domain' ? t.service : null,
      address: t.scope === 'region' ? null : t.address,
      region: t.scope === 'region' ? t.region : null,
      healthy: o.healthy,
      reason: o.reason,
      source: o.source,
      created_at: rfc3339(o.createdAtMs) as string,
      expires_at: rfc3339(o.expiresAtMs),
      authority: 'override',
      active: this.registry.covered(t),
    };
  }

  /** The override that decides `server` in `domain` (Registry.overrideFor), as the API shows it, or null. */
  #decidingView(domain: string, server: ServerRecord): OverrideView | null {
    const o = this.registry.overrideFor(domain, server);
    return o === null ? null : this.#overrideView(o);
  }

  // ---- Geolocation: what a client address maps to, and mappings added at run time

  /**
   * Decides the region of `ip` as the workers do now (the served geo table
   * and GeoIP database), with how it was decided. Opens the database when no
   * domain routes by geolocation yet. `ip` is read as explain() reads a
   * client (parseIp: ::ffff:a.b.c.d is a.b.c.d); the scope is what DNS echoes,
   * 0 with ecs_enabled off. Throws OPENGSLB_ERR_API_BAD_REQUEST for an address
   * that is not an IP literal or carries a zone index.
   */
  async geoTest(ip: string): Promise<GeoTestResult> {
    const parsed = parseIp(ip.trim());
    if ('error' in parsed) throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `ip: ${parsed.error}`);
    const reader = await this.#geo.reader(this.#config);
    const view = this.#snapshot.view;
    return explainGeo(view.regionNames, geoTableOf(view), 0, reader, parsed.address, view.ecsEnabled);
  }

  /** The custom geo mappings: the config's, then those added at run time (with whether each applies). */
  geoMappings(): GeoMappingView[] {
    const out: GeoMappingView[] = this.registry.configGeoMappings.map((m) => ({ cidr: m.cidr, region: m.region, comment: m.comment, source: 'config', created_at: null, active: true }));
    const compiled = new Set(this.registry.compiledGeoMappings());
    for (const m of this.registry.geoMappings()) {
      out.push({ cidr: m.cidr, region: m.region, comment: m.comment, source: m.source, created_at: rfc3339(m.createdAtMs), active: compiled.has(m) });
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
    // One write at a time: two new networks checked against the same room would both be stored, one past the geo table's limit.
    await this.#geoSerially(() => this.#storeGeoMapping(mapping));
    this.#replicate({ kind: 'geo_mapping', cidr: mapping.cidr, value: mapping });
    await this.whenPublished();
    return { cidr: mapping.cidr, region, comment, source, created_at: rfc3339(mapping.createdAtMs), active: true };
  }

  /** Removes the run-time mapping of a network; returns it, or null when there was none. Resolves once every worker answers without it. */
  async deleteGeoMapping(cidr: string): Promise<GeoMappingView | null> {
    const network = parseCidr(cidr.trim());
    if ('error' in network) throw new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `cidr: ${network.error}`);
    const key = networkOfCidr(network.cidr);
    const existing = await this.#geoSerially(async () => {
      const held = this.registry.geoMapping(key);
      if (held === undefined) return undefined;
      await this.#store.deleteGeoMapping(key);
      this.registry.deleteGeoMapping(key);
      return held;
    });
    if (existing === undefined) return null;
    this.#replicate({ kind: 'geo_mapping', cidr: key, value: null });
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
    const live = this.#live;
    const cap = live[LIVE_CAPACITY];
    return this.serverStates().map(({ server, status, latencyMs, samples, authority, isServed }) => {
      const domains = this.registry.domainsOf(server);
      const target = targets.get(server.key);
      const overrides = [];
      for (const d of domains) {
        const o = this.registry.overrideFor(d, server);
        if (o !== null) overrides.push({ service: d, scope: o.target.scope, healthy: o.healthy, reason: o.reason, source: o.source, expires_at: rfc3339(o.expiresAtMs) });
      }
      const lastUp = isServed ? Atomics.load(live, lastUpWord(cap, server.slot)) : 0;
      return {
        address: server.address,
        port: server.port,
        region: server.region,
        domains: [...domains],
        source: server.source,
        service: server.service,
        agent_id: this.registry.agentStateOf(server.key)?.agentId ?? null,
        status,
        healthy: status === 'healthy',
        authority,
        check_type: server.check.type,
        last_check: rfc3339(target?.lastCheckAt),
        status_since: status === 'unknown' ? null : rfc3339(target?.stateSinceAt),
        last_healthy: rfc3339(lastUpMs(lastUp)),
        last_error: target?.lastError ?? null,
        consecutive_failures: target?.consecutiveFailures ?? 0,
        consecutive_successes: target?.consecutiveSuccesses ?? 0,
        latency_ms: latencyMs,
        latency_samples: samples,
        overrides,
      };
    });
  }

  /**
   * Every server with its check state and latency only (what /metrics shows,
   * and what servers() builds the API's views on), in the registry's order:
   * no check-target map, domain lists or RFC 3339 strings, which made a
   * scrape cost most of its time at 10 000 servers.
   */
  serverStates(): ServerState[] {
    const served = new Set<string>();
    for (const s of this.#snapshot.view.served) served.add(s.key);
    const live = this.#live;
    const cap = live[LIVE_CAPACITY];
    const out: ServerState[] = [];
    for (const server of this.registry.servers()) {
      const isServed = served.has(server.key);
      const counted = isServed ? Atomics.load(live, latencyWord(cap, server.slot) + 1) : 0;
      // A server nothing measures carries the UNMEASURED_* mark, not a latency.
      const samples = isUnmeasured(counted) ? 0 : counted;
      const status = isServed ? stateName(readHealth(live, server.slot)) : 'unknown';
      out.push({
        server,
        isServed,
        status,
        healthy: status === 'healthy',
        latencyMs: samples > 0 ? Atomics.load(live, latencyWord(cap, server.slot)) / 1000 : null,
        samples,
        authority: this.registry.authorityOf(server, null),
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
        override: this.#decidingView(m.domain, m.server),
      })),
    }));
  }
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

/** GET /api/v1/dnssec/status. */
export interface DnssecStatusView {
  readonly enabled: boolean;
  /** Algorithm of keys generated from now on. */
  readonly algorithm: string;
  readonly signature_validity_seconds: number;
  readonly keys: readonly DnssecKeyView[];
  readonly key_sync: KeySyncView;
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
  readonly keyring: Keyring | null;
  readonly presigner: Presigner | null;
  readonly keySync: KeySyncClient | null;
}

/** What the workers sign a snapshot's zones with: nothing when DNSSEC is off. */
function workerDnssecOf(keyring: Keyring | null, snapshot: CompiledSnapshot, config: Config): WorkerDnssec {
  if (keyring === null) return { zones: [], validitySec: config.dnssec.signatureValiditySec };
  return keyring.workerDnssec(snapshot.view.zones.map((z) => z.name));
}

/**
 * Logs, at warn, a key the keyring generated because its zone had no active
 * key (at a start, a config reload, or a re-read after a rollover step, key
 * sync or the bus; Keyring.open's onKeyCreated): a new DS to publish at the
 * parent, and a zone whose old DS is still there fails validation until then.
 */
function logKeyCreated(logger: Logger, info: DnssecKeyInfo): void {
  logger.child({ component: 'dnssec' }).warn(
    { zone: info.zone, keyTag: info.keyTag, algorithm: info.algorithm, ds: dsOf(info).record },
    'DNSSEC key created: the zone had no active key; publish this DS at the parent zone (a DS of an older key there makes validators fail the zone until then)',
  );
}

/** Logs zones that keep a key of another algorithm (keys created are logged as they are made: logKeyCreated). */
function logKeyChanges(logger: Logger, changes: KeyringChanges): void {
  const log = logger.child({ component: 'dnssec' });
  for (const m of changes.algorithmMismatches) {
    log.warn({ zone: m.zone, keyTag: m.keyTag, algorithm: m.algorithm }, 'the zone keeps signing with its key of another algorithm than overwatch.dnssec.algorithm; a key rollover changes it');
  }
}

/** A stored DNSSEC key as one comparable text (field order fixed, whatever order its JSON came in). */
function canonicalKey(k: StoredDnssecKey): string {
  return JSON.stringify([k.zone, k.keyTag, k.algorithm, k.flags, k.publicKey, k.createdAtMs, k.state, k.publishAtMs ?? null, k.withdrawnAtMs ?? null, k.privateKeyPkcs8]);
}

/**
 * Logs a warning for each override that covers nothing the config serves
 * (its region, domain or address was removed, or a region differs only in
 * case): it is kept, inactive, but it would otherwise stay silent until
 * someone reads the list. At start (`warned` null) every such restored
 * override; after a reload only those not in `warned`, the set this returned
 * last time, so one that stays uncovered is named once, not at every reload.
 * Returns the keys (keyOfTarget) of the overrides uncovered now.
 */
function warnOverridesLeftOut(registry: Registry, config: Config, logger: Logger, warned: ReadonlySet<string> | null): Set<string> {
  const log = logger.child({ component: 'overrides' });
  const regions = config.regions.map((r) => r.name);
  const uncovered = new Set<string>();
  for (const o of registry.overrides()) {
    if (registry.covered(o.target)) continue;
    const key = keyOfTarget(o.target);
    uncovered.add(key);
    if (warned?.has(key) === true) continue;
    const t = o.target;
    const expected = t.scope === 'region' ? expectedRegion(t.region, regions) : 'a domain or server of the config';
    log.warn({ scope: t.scope, target: describeTarget(t), expected, healthy: o.healthy, source: o.source },
      warned === null
        ? 'restored override covers nothing this config serves: kept inactive (GET /api/v1/overrides shows "active": false) until the config serves it again; delete it if it is obsolete'
        : 'override covers nothing this config serves since the reload: kept inactive (GET /api/v1/overrides shows "active": false) until the config serves it again; delete it if it is obsolete');
  }
  return uncovered;
}

/** Logs the active run-time geo mappings the geo table has no room for beside the config's (see Registry.compiledGeoMappings). */
function warnGeoLeftOut(registry: Registry, logger: Logger): void {
  const active = registry.geoMappings().filter((m) => registry.geoMappingActive(m)).length;
  const leftOut = active - registry.compiledGeoMappings().length;
  if (leftOut <= 0) return;
  logger.warn(
    { leftOut, config: registry.configGeoMappings.length, limit: MAX_CIDR_MAPPINGS },
    'run-time geo mappings left out: the geo table takes MAX_CIDR_MAPPINGS custom mappings and the config\'s come first; the last ones added at run time do not apply (GET /api/v1/geo/mappings shows them inactive) until some are removed',
  );
}
