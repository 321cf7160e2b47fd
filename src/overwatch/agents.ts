// Main thread, per agent message. The overwatch's side of agent mode: the
// agent channel (src/gossip/: receiver, channel, pins) wired to the registry.
// Backends that agents report become servers of source 'agent', bound to the
// domain named by their service, in the region of their agent; what the agent
// says of each (its claim, its drain, whether it is still heard from) goes to
// the registry, whose authorityOf() is the one rule, and from there to the
// backend's server slot through the HealthFanout, the path config servers'
// verdicts take. Agents' backends persist in the state store, so a restarted
// overwatch has them back, stale until their agent's next heartbeat.
//
//   agents ──UDP/TCP──► GossipReceiver ─► OverwatchChannel (open, verify, pin) ─► handlers (this module)
//                                                                                    │
//        register / full heartbeat: the complete set ───┐                            │
//        heartbeat / health_update: the changed ones ───┼─► registry.addServer / removeServer (structural: republish)
//        deregister, revoke, delete: all of them out ───┘   registry.setAgentState (claim, drain, stale)
//                                                            └─► verdict ─► fanout.setServerHealth(server slot)
//   sweep (every threshold / 4): no heartbeat for stale.threshold → stale (out), for remove_after → removed

import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseIp } from '../config/ip.ts';
import type { Config } from '../config/types.ts';
import { OverwatchChannel, type ChannelCounters, type ChannelEvent, type DropEvent, type RegisterEvent } from '../gossip/channel.ts';
import { Keyring } from '../gossip/envelope.ts';
import { MAX_BACKENDS, type BackendCheck, type BackendReport, type DeregisterMessage, type HealthUpdateMessage, type HeartbeatMessage, type HostLoad } from '../gossip/messages.ts';
import { GossipReceiver, type ReceiverCounters } from '../gossip/receiver.ts';
import { agentsWildcard } from '../bus/nats.ts';
import { BusReceiver } from '../bus/receiver.ts';
import type { CheckSpec, HealthSink } from '../health/types.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { formatAddress } from '../lib/ip.ts';
import type { Logger } from '../log/logger.ts';
import type { Registry, ServerRecord } from '../registry/registry.ts';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY, HEALTH_UNKNOWN, readHealth } from '../snapshot/live-slots.ts';
import type { StateStore, StoredAgentBackends, StoredPin } from '../state/store.ts';
import type { HealthFanout } from './fanout.ts';
import { BACKEND_REFUSALS, BACKEND_STATES, type AgentState, type BackendRefusal, type BackendState } from './agent-states.ts';
import { rfc3339 } from './views.ts';

export { AGENT_STATES, BACKEND_REFUSALS, BACKEND_STATES, type AgentState, type BackendRefusal, type BackendState } from './agent-states.ts';

/** Bounds of the sweep period (stale.threshold / 4). */
const MIN_SWEEP_MS = 100;
const MAX_SWEEP_MS = 5000;
/**
 * A sweep that runs this many periods (or more) after the last one found the
 * main thread blocked meanwhile (a publish of a big config, a GC pause):
 * messages that arrived during the block are still unread, so it judges
 * nothing and the next sweep does (see #sweep()).
 */
const LATE_SWEEP_PERIODS = 1.5;
/** Most backends named in the "agent stale" line (the counts are whole). */
const STALE_LOG_NAMES = 20;
/** Dirty agents' backends are written to the store this long after the first change. */
const PERSIST_DELAY_MS = 500;
/**
 * A pin of an agent that is not revoked and was not heard from for this long
 * (and that the hub does not expect to hear from: not live, stale or restored)
 * is deleted: an agent that comes with a new identity at each start (a
 * container without persistent state) would otherwise hold a place under
 * overwatch.gossip.max_agents for ever. Revoked pins stay.
 */
export const DEPARTED_PIN_TTL_MS = 7 * 24 * 3_600_000;
/** How often the departed pins are looked at, and the most deleted in one step (one step's store writes). */
const PIN_PRUNE_PERIOD_MS = 60_000;
const PIN_PRUNE_STEP = 1000;
/** Shares of overwatch.gossip.max_agents at which a warning is logged (once per crossing). */
const PIN_WARN_LEVELS = [0.9, 0.8] as const;
/** Most drop-log keys kept (the oldest go first); the agent_limit keys are kept apart so that refusal is never logged twice. */
const DROP_LOG_KEYS = 10_000;
/**
 * SO_RCVBUF of the channel's UDP socket: 4 MiB (Linux grants at most
 * net.core.rmem_max). The kernel's default (net.core.rmem_default, 208 KiB
 * here) holds about 200 datagrams, 0.4 s of the heartbeats of 5 000 agents at
 * a 10 s interval; a main-thread pause longer than that (a snapshot compile, a
 * large GC) dropped health updates: bench/agents-scale.ts lost 5 of 100 flips'
 * updates, which then waited for the next heartbeat (p99 9.3 s). 4 MiB holds
 * several seconds of them.
 */
const CHANNEL_UDP_RECEIVE_BUFFER = 4 * 1024 * 1024;
/**
 * Most backends one agent holds: what one registration or full heartbeat can
 * carry (MAX_BACKENDS). A delta adds backends until the next full set drops
 * those it does not list, so without this an agent that never sends a full
 * set could grow its set (and the registry) without end; the new backends of
 * a delta past it are not taken (counted as backend_limit), the known ones
 * are updated.
 */
export const MAX_BACKENDS_PER_AGENT = MAX_BACKENDS;
/** EMA weight of the overwatch's validation checks (the agent's own latency is not reported). */
const VALIDATION_EMA_ALPHA = 0.3;

/** One backend of one agent, as the overwatch holds it. */
interface AgentBackend {
  /** The latest report, with the last check spec the agent sent. */
  report: BackendReport;
  /** Its server in the registry; null when it is not there (`problem` says why). */
  serverKey: string | null;
  problem: { readonly reason: BackendRefusal; readonly detail: string } | null;
  /** Last logged state, for "logged once per transition". */
  state: BackendState | null;
  /**
   * Sequence number of the message that set `report` (-1: restored from the
   * store). Only a message with a higher one changes it (see #applyFull).
   */
  seq: number;
}

/** One agent as the overwatch holds it (the pin is the channel's). */
interface AgentRecord {
  readonly agentId: string;
  region: string;
  version: string;
  heartbeatIntervalMs: number;
  state: AgentState;
  /** When the overwatch last accepted a message from it, epoch ms (0: never since start). */
  lastSeenMs: number;
  /** The lastSeenMs last written to the store. */
  persistedSeenMs: number;
  /**
   * performance.now() when this process last accepted a message from it (0:
   * none since start). Staleness and remove_after are timed on it: a wall-clock
   * step ahead made every agent stale or removed at once, one back kept a dead
   * agent live for the step. lastSeenMs is for display and the store.
   */
  heardMono: number;
  load: HostLoad | null;
  readonly backends: Map<string, AgentBackend>;
  /** Why it left (deregistered, revoked, removed), for the API. */
  note: string | null;
  /**
   * Sequence number of the newest full set applied (registration, full
   * heartbeat) or deregistration; -1 for none. An older message adds no
   * backend: the newer full set did not list it.
   */
  fullSeq: number;
}

/** An agent as the API shows it. */
export interface AgentView {
  readonly agent_id: string;
  readonly region: string;
  readonly state: AgentState;
  readonly version: string | null;
  readonly services: readonly string[];
  readonly fingerprint: string;
  readonly first_seen: string | null;
  readonly registered_at: string | null;
  readonly last_seen: string | null;
  /** Seconds since the last accepted message, null when none since this overwatch started. */
  readonly heartbeat_age_seconds: number | null;
  readonly heartbeat_interval_ms: number | null;
  readonly certificate_not_after: string | null;
  readonly revoked_at: string | null;
  readonly revoked_reason: string | null;
  readonly previous_fingerprint: string | null;
  readonly note: string | null;
  readonly load: { readonly cpu_percent: number; readonly memory_percent: number; readonly error_rate_per_min: number } | null;
  readonly backend_count: number;
}

/** An agent's backend as the API shows it. */
export interface AgentBackendView {
  readonly agent_id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly region: string;
  /** The agent's own checks: its last claim. */
  readonly agent_health: BackendReport['health'];
  readonly drain_reason: string | null;
  readonly state: BackendState;
  /** The registry's server key, or null when the backend is not a server (see `problem`). */
  readonly server_key: string | null;
  /** Why it is not answered at all (a host name, refused by the registry), or null. */
  readonly problem: string | null;
  readonly check_type: BackendCheck['type'] | null;
}

/** What the metrics read besides the channel's and the receiver's counters. */
export interface AgentCounters {
  /** Backend state transitions by the state entered. */
  readonly transitions: Readonly<Record<BackendState, number>>;
  /** Backends refused by the overwatch's side (not the channel's drops). */
  readonly refused: Readonly<Record<BackendRefusal, number>>;
  /** Handler exceptions (bugs): the message was accepted. */
  readonly handlerErrors: number;
  /** Store writes that failed (kept in memory, retried at the next change). */
  readonly storeErrors: number;
}

export interface AgentHubOptions {
  readonly config: Config;
  readonly registry: Registry;
  readonly store: StateStore;
  readonly logger: Logger;
  /** Clock, epoch ms (tests). */
  readonly now?: () => number;
}

/** The agent id and backend identity within an agent: service, address and port. */
function backendId(b: { readonly service: string; readonly address: string; readonly port: number }): string {
  // Flat, not a cons-string tree (src/registry/keys.ts says why).
  return [b.service, b.address, b.port].join('|');
}

/** The report with its address in normal form (an IP literal as parseIp writes it; a host name as sent). */
function normalReport(report: BackendReport): BackendReport {
  const ip = parseIp(report.address);
  return 'error' in ip || ip.address === report.address ? report : { ...report, address: ip.address };
}

/** Do two reports of one backend say the same (weight, claim, drain, check)? */
function sameReport(a: BackendReport, b: BackendReport): boolean {
  return a.weight === b.weight && a.health === b.health && a.drain === b.drain && (a.check === b.check || JSON.stringify(a.check) === JSON.stringify(b.check));
}

/** Most distinct check specs shared by internCheck; past it a new one is kept as is (a fleet has a handful). */
const MAX_INTERNED_CHECKS = 1024;
const interned = new Map<string, BackendCheck>();

/**
 * One shared object per distinct check spec. Every backend of a fleet
 * usually reports the same few checks, and each decoded copy (a spec, its
 * header map, its status ranges) cost about 1 KB: 15 MB at 5 000 agents × 3
 * backends (bench/agents-scale.ts heap snapshot), with the registry's
 * validation spec built from it. The shared object is frozen: nothing may
 * change one backend's check through another's.
 */
export function internCheck(check: BackendCheck | null): BackendCheck | null {
  if (check === null) return null;
  const key = JSON.stringify(check);
  const known = interned.get(key);
  if (known !== undefined) return known;
  if (interned.size >= MAX_INTERNED_CHECKS) return check;
  // No prototype, as the decoder builds it: a header named __proto__ stays a header.
  const headers: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(check.headers)) headers[name] = value;
  const shared: BackendCheck = Object.freeze({
    ...check,
    expectedStatus: Object.freeze(check.expectedStatus.map((r) => Object.freeze([r[0], r[1]] as const))),
    headers: Object.freeze(headers),
    bodyMatch: check.bodyMatch === null ? null : Object.freeze({ ...check.bodyMatch }),
  });
  interned.set(key, shared);
  return shared;
}

/** The validation defaults, shared by every backend whose agent reports no check. */
const DEFAULT_EXPECTED_STATUS: BackendCheck['expectedStatus'] = Object.freeze([Object.freeze([200, 399] as const)]);
const NO_HEADERS: BackendCheck['headers'] = Object.freeze({});

/**
 * Turns the check an agent reported into the overwatch's validation check:
 * the backend's own type, path, host, statuses, headers and thresholds, with
 * overwatch.validation's interval and timeout. A regular-expression
 * body_match is not run (patterns received over the network are never
 * compiled); no check reported: a TCP connect.
 */
export function validationSpecOf(address: string, port: number, check: BackendCheck | null, config: Config): CheckSpec {
  const v = config.validation;
  return {
    type: check?.type ?? 'tcp',
    address,
    port,
    host: check?.host ?? null,
    path: check?.path ?? '/health',
    expectedStatus: check?.expectedStatus ?? DEFAULT_EXPECTED_STATUS,
    headers: check?.headers ?? NO_HEADERS,
    bodyMatch: check?.bodyMatch?.kind === 'substring' ? check.bodyMatch : null,
    tlsVerify: check?.tlsVerify ?? true,
    keepAlive: false,
    intervalMs: v.checkIntervalMs,
    timeoutMs: v.checkTimeoutMs,
    failureThreshold: check?.failureThreshold ?? 3,
    successThreshold: check?.successThreshold ?? 2,
    emaAlpha: VALIDATION_EMA_ALPHA,
  };
}

/**
 * The overwatch's agent handling: owns the channel and its listeners, the
 * agents' records and the stale sweep. Create with AgentHub.create() before
 * the first snapshot (stored backends go back into the registry), attach()
 * the fanout, listen() once the overwatch serves, stop() at the end.
 */
export class AgentHub {
  readonly channel: OverwatchChannel;
  #config: Config;
  readonly #registry: Registry;
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #agents = new Map<string, AgentRecord>();
  /** Which agent reports each agent server (two agents may not report the same one). */
  readonly #owners = new Map<string, string>();
  #fanout: HealthFanout | null = null;
  /** The fanout's sink, for last-up times (made once). */
  #sink: HealthSink | null = null;
  #receiver: GossipReceiver | null = null;
  #bus: BusReceiver | null = null;
  #sweepTimer: NodeJS.Timeout | null = null;
  #sweepPeriodMs = 0;
  /** performance.now() of the last sweep's timer (or of arming it). */
  #lastSweepMono = 0;
  /** The last sweep skipped its verdicts because it ran late; the next one judges, late or not. */
  #sweepSkipped = false;
  #sweepImmediate: NodeJS.Immediate | null = null;
  #persistTimer: NodeJS.Timeout | null = null;
  readonly #dirty = new Set<string>();
  #pendingWrites = new Set<Promise<void>>();
  readonly #transitions = Object.fromEntries(BACKEND_STATES.map((s) => [s, 0])) as Record<BackendState, number>;
  readonly #refused = Object.fromEntries(BACKEND_REFUSALS.map((s) => [s, 0])) as Record<BackendRefusal, number>;
  #handlerErrors = 0;
  #storeErrors = 0;
  /** Drops are logged at most once per reason and agent per minute (every one is counted). */
  readonly #dropLogged = new Map<string, number>();
  /** Agents refused as agent_limit and logged (once each); the newest DROP_LOG_KEYS are kept. */
  readonly #limitLogged = new Set<string>();
  /** performance.now() of the last look at departed pins (0: none yet). */
  #lastPinPruneMono = 0;
  #pinPruning = false;
  /** The highest PIN_WARN_LEVELS share warned about and not yet fallen below (0: none). */
  #pinWarnLevel = 0;
  #stopped = false;
  /** performance.now() when this overwatch started: restored agents' remove_after runs from here at the earliest. */
  readonly #startedMono: number;

  private constructor(options: AgentHubOptions, keyring: Keyring) {
    this.#config = options.config;
    this.#registry = options.registry;
    this.#store = options.store;
    this.#log = options.logger.child({ component: 'agents' });
    this.#now = options.now ?? Date.now;
    this.#startedMono = performance.now();
    const g = options.config.gossip as NonNullable<Config['gossip']>;
    this.channel = new OverwatchChannel({
      keyring,
      agentTokens: options.config.agentTokens,
      pinStore: options.store,
      regions: options.config.regions.map((r) => r.name),
      maxClockSkewMs: g.maxClockSkewMs,
      maxAgents: g.maxAgents,
      now: this.#now,
      handlers: {
        // A handler's exception propagates to the receiver, which counts and logs it (listen()'s onHandlerError).
        onRegister: (e) => this.#onRegister(e),
        onHeartbeat: (e) => this.#onHeartbeat(e),
        onHealthUpdate: (e) => this.#onHealthUpdate(e),
        onDeregister: (e) => this.#onDeregister(e),
        onDrop: (e) => this.#onDrop(e),
        onStoreError: (err, agentId) => {
          this.#storeErrors++;
          this.#log.error({ agent: agentId, err: err.message }, 'could not store the agent\'s pin or replay mark; it holds in memory and is written again at its next registration (the mark: its next message)');
        },
      },
    });
  }

  /**
   * Creates the hub for a config whose agent channel is on (config.gossip):
   * the keyring (a bad key throws OPENGSLB_ERR_GOSSIP_KEY naming it), the
   * channel with the stored pins, and the stored agents' backends back in the
   * registry as stale. Nothing listens yet.
   */
  static create(options: AgentHubOptions): AgentHub {
    const g = options.config.gossip;
    if (g === null) throw new OpenGslbError('OPENGSLB_ERR_GOSSIP_KEY', 'overwatch.gossip.encryption_key is not set, so the agent channel is off');
    const keyring = Keyring.fromBase64(g.encryptionKey, g.acceptedKeys, { primary: 'overwatch.gossip.encryption_key', accepted: 'overwatch.gossip.accepted_keys' });
    const hub = new AgentHub(options, keyring);
    hub.#restore();
    return hub;
  }

  /** Starts writing verdicts through `fanout` (call once it exists, before the first publish's apply()). */
  attach(fanout: HealthFanout): void {
    this.#fanout = fanout;
    this.#sink = fanout.sink();
    this.refreshVerdicts();
  }

  /**
   * Binds the channel's UDP and TCP listeners on overwatch.gossip.bind_address
   * and starts the stale sweep. Throws OPENGSLB_ERR_GOSSIP_BIND naming the address.
   */
  async listen(): Promise<GossipReceiver> {
    const g = this.#config.gossip as NonNullable<Config['gossip']>;
    this.#receiver = await GossipReceiver.listen({
      channel: this.channel,
      host: g.bindHost,
      port: g.bindPort,
      udpReceiveBufferBytes: CHANNEL_UDP_RECEIVE_BUFFER,
      onHandlerError: (err) => {
        this.#handlerErrors++;
        this.#log.error({ err: err instanceof Error ? err.stack : String(err) }, 'agent message handler failed (a bug); the message was accepted');
      },
    });
    this.#armSweep();
    this.#log.info({ address: formatAddress(g.bindHost, this.#receiver.port), pins: this.channel.pins().length, agents: this.#agents.size }, 'agent channel listening on UDP and TCP');
    const bus = this.#config.bus;
    if (bus !== null) {
      const log = this.#log.child({ component: 'bus' });
      const subject = agentsWildcard(bus.subjectPrefix);
      // Connects in the background: DNS and the direct channel never wait for NATS.
      this.#bus = new BusReceiver({
        bus,
        channel: this.channel,
        name: `opengslb-overwatch ${hostname()}`,
        onEvent: (e) => {
          if (e.kind === 'connected') log.info({ server: e.server, subject }, e.first ? 'agent bus connected (NATS): taking agent messages from the subject' : 'agent bus reconnected (NATS)');
          else if (e.kind === 'disconnected') log.warn({ server: e.server }, 'agent bus disconnected (NATS); reconnecting. DNS answers from what the agents last said; the direct channel keeps listening');
          else log.warn({ error: e.error }, 'agent bus error (NATS)');
        },
        onHandlerError: (err) => {
          this.#handlerErrors++;
          this.#log.error({ err: err instanceof Error ? err.stack : String(err) }, 'agent message handler failed (a bug); the message was accepted');
        },
      });
    }
    return this.#receiver;
  }

  /** The NATS subscription when overwatch.bus is on, once listen() resolved. */
  get bus(): BusReceiver | null {
    return this.#bus;
  }

  /** The listeners, once listen() resolved. */
  get receiver(): GossipReceiver | null {
    return this.#receiver;
  }

  /**
   * Takes a reloaded config: tokens, regions and keys of the channel (a bad
   * key throws OPENGSLB_ERR_GOSSIP_KEY and changes nothing), stale timers,
   * and validation settings (backends' checks are re-derived; a change
   * republishes). Call after registry.applyConfig(next).
   */
  applyConfig(next: Config): void {
    const g = next.gossip;
    if (g === null) return;
    const keyring = Keyring.fromBase64(g.encryptionKey, g.acceptedKeys, { primary: 'overwatch.gossip.encryption_key', accepted: 'overwatch.gossip.accepted_keys' });
    this.channel.setKeyring(keyring);
    this.channel.setAgentTokens(next.agentTokens);
    this.channel.setRegions(next.regions.map((r) => r.name));
    this.channel.setMaxAgents(g.maxAgents);
    this.#checkPinLevel();
    this.channel.setMaxClockSkew(g.maxClockSkewMs);
    const sweepChanged = next.stale.thresholdMs !== this.#config.stale.thresholdMs;
    this.#config = next;
    for (const agent of this.#agents.values()) {
      // Backends the registry refused (their region was not served) are placed again too: a reload that
      // serves the region again (or a failed one rolled back) has them back now, from the last report held
      // (kept current by the agent's messages meanwhile), not at the agent's next full set (full_interval).
      for (const b of agent.backends.values()) if (b.serverKey !== null || b.problem?.reason === 'registry_refused') this.#place(agent, b, b.report, true);
    }
    this.refreshVerdicts();
    if (sweepChanged && this.#sweepTimer !== null) this.#armSweep();
  }

  /**
   * Writes the verdict of every agent's backend the overwatch does not check
   * itself to its server slot. The overwatch calls it when a publish replaced
   * or grew the live slots, before filling the member words.
   */
  refreshVerdicts(): void {
    for (const agent of this.#agents.values()) for (const b of agent.backends.values()) this.#write(b);
  }

  /**
   * Deletes, at most PIN_PRUNE_STEP at a time, the pins of agents that left
   * (deregistered, removed, or never heard from since this start) and sent
   * nothing for DEPARTED_PIN_TTL_MS; revoked pins stay. The sweep runs it
   * once a minute. Resolves to the agent ids deleted.
   */
  async forgetDepartedPins(): Promise<string[]> {
    if (this.#pinPruning || this.#stopped) return [];
    this.#pinPruning = true;
    try {
      const expected = (id: string): boolean => {
        const state = this.#agents.get(id)?.state;
        return state === 'live' || state === 'stale';
      };
      const gone = await this.channel.forgetQuiet(this.#now() - DEPARTED_PIN_TTL_MS, PIN_PRUNE_STEP, expected);
      for (const id of gone) {
        if (!expected(id)) this.#agents.delete(id);
      }
      if (gone.length > 0) {
        this.#log.info(
          { pins: gone.length, agents: gone.slice(0, STALE_LOG_NAMES), pinned: this.channel.pinCount() },
          `agent pins deleted: not revoked and not heard from for ${DEPARTED_PIN_TTL_MS / 86_400_000} days (such an agent registers again with its token, as a new agent)`,
        );
        this.#checkPinLevel();
      }
      return gone;
    } finally {
      this.#pinPruning = false;
    }
  }

  /** Warns once as the pins cross 80 % and 90 % of overwatch.gossip.max_agents; falling below re-arms it. */
  #checkPinLevel(): void {
    const max = this.channel.maxAgents();
    if (!Number.isFinite(max) || max <= 0) return;
    const pinned = this.channel.pinCount();
    const level = PIN_WARN_LEVELS.find((l) => pinned >= l * max) ?? 0;
    if (level > this.#pinWarnLevel) {
      this.#log.warn(
        { pinned, max_agents: max },
        `agent pins at ${Math.round(level * 100)} % of overwatch.gossip.max_agents: past it new agents are refused (agent_limit); raise it, or delete pins of agents that are gone (pins of departed agents go by themselves after ${DEPARTED_PIN_TTL_MS / 86_400_000} days)`,
      );
    }
    this.#pinWarnLevel = level;
  }

  /** Stops listening and sweeping, and writes what is not stored yet. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    if (this.#sweepImmediate !== null) clearImmediate(this.#sweepImmediate);
    this.#sweepImmediate = null;
    await this.#receiver?.close();
    await this.#bus?.close();
    this.#flushPersist();
    await this.channel.settled();
    await Promise.all(this.#pendingWrites);
  }

  // ---- Views

  /** Every agent known by its pin or its backends, in agent-id order. */
  agents(): AgentView[] {
    const ids = new Set<string>([...this.channel.pins().map((p) => p.agentId), ...this.#agents.keys()]);
    return [...ids].sort().map((id) => this.#agentView(id));
  }

  /** One agent, or null when neither a pin nor backends are known for it. */
  agent(agentId: string): { readonly agent: AgentView; readonly backends: AgentBackendView[] } | null {
    if (this.channel.pin(agentId) === undefined && !this.#agents.has(agentId)) return null;
    const record = this.#agents.get(agentId);
    return { agent: this.#agentView(agentId), backends: record === undefined ? [] : this.#backendViews(record, []) };
  }

  /** Every agent's backend, agents in id order, backends in the order reported. */
  backends(): AgentBackendView[] {
    const out: AgentBackendView[] = [];
    for (const id of [...this.#agents.keys()].sort()) this.#backendViews(this.#agents.get(id) as AgentRecord, out);
    return out;
  }

  /** One agent's backends as the API shows them, appended to `out`. */
  #backendViews(agent: AgentRecord, out: AgentBackendView[]): AgentBackendView[] {
    for (const b of agent.backends.values()) {
      const r = b.report;
      out.push({
        agent_id: agent.agentId,
        service: r.service,
        address: r.address,
        port: r.port,
        weight: r.weight,
        region: agent.region,
        agent_health: r.health,
        drain_reason: r.drain,
        state: this.#stateOf(agent, b),
        server_key: b.serverKey,
        problem: b.problem === null ? null : b.problem.detail,
        check_type: r.check?.type ?? null,
      });
    }
    return out;
  }

  /** The agent of an agent server, by server key. */
  agentOf(serverKey: string): string | null {
    return this.#owners.get(serverKey) ?? null;
  }

  /** When the agent of an agent server was last heard from, epoch ms, or null. */
  lastSeenOf(serverKey: string): number | null {
    const id = this.#owners.get(serverKey);
    const seen = id === undefined ? 0 : (this.#agents.get(id)?.lastSeenMs ?? 0);
    return seen > 0 ? seen : null;
  }

  /** Pins held (revoked ones included) and overwatch.gossip.max_agents (null: no limit). */
  pinUsage(): { readonly pinned: number; readonly maxAgents: number | null } {
    const max = this.channel.maxAgents();
    return { pinned: this.channel.pinCount(), maxAgents: Number.isFinite(max) ? max : null };
  }

  /** Counters of this module (the channel's and the receiver's have their own). */
  counters(): AgentCounters {
    return { transitions: { ...this.#transitions }, refused: { ...this.#refused }, handlerErrors: this.#handlerErrors, storeErrors: this.#storeErrors };
  }

  /** The channel's counters: messages by type, drops by reason. */
  channelCounters(): ChannelCounters {
    return this.channel.counters();
  }

  /** The listeners' counters, or null before listen(). */
  receiverCounters(): ReceiverCounters | null {
    return this.#receiver?.counters() ?? null;
  }

  // ---- Operator actions (the API)

  /**
   * Revokes an agent: its pin is marked revoked (every later message is
   * dropped), and its backends leave DNS at once. Returns null for an
   * unknown agent; throws OPENGSLB_ERR_STATE_WRITE when the store refuses
   * (the revocation holds in memory even then).
   */
  async revoke(agentId: string, reason: string): Promise<AgentView | null> {
    if (this.channel.pin(agentId) === undefined) return null;
    this.#leave(agentId, 'revoked', `revoked: ${reason}`, this.#now());
    const revoked = this.channel.revoke(agentId, reason);
    const pin = this.channel.pin(agentId);
    if (pin !== undefined) this.onRevocation?.(agentId, pin);
    await revoked;
    return this.#agentView(agentId);
  }

  /**
   * Called after an operator revoked an agent here (with the revoked pin), or
   * deleted the pin of a revoked agent (with null): overwatch.bus replicates
   * it. Not called for what adoptRevocation() and liftRevocation() do.
   */
  onRevocation: ((agentId: string, revoked: StoredPin | null) => void) | null = null;

  /**
   * Takes a revocation made on another overwatch: its backends leave DNS and
   * every later message of it is refused, as after revoke(). Resolves to
   * false when this overwatch held that revocation already.
   */
  async adoptRevocation(revoked: StoredPin): Promise<boolean> {
    const pin = this.channel.pin(revoked.agentId);
    if (pin?.revokedAtMs != null) return false;
    this.#leave(revoked.agentId, 'revoked', `revoked on another overwatch: ${revoked.revokedReason ?? ''}`, this.#now());
    await this.channel.adoptRevocation(revoked);
    return true;
  }

  /**
   * Takes the deletion of a revoked agent's pin made on another overwatch:
   * the revoked pin here is deleted too (the agent may register again).
   * Resolves to false when this overwatch holds no revoked pin for it.
   */
  async liftRevocation(agentId: string): Promise<boolean> {
    if (this.channel.pin(agentId)?.revokedAtMs == null) return false;
    this.#agents.delete(agentId);
    await this.channel.deletePin(agentId);
    return true;
  }

  /**
   * Forgets an agent: its pin (its next message is answered "register", and
   * a registration with valid tokens pins whatever certificate it shows) and
   * its backends, which leave DNS at once. Returns false for an unknown agent.
   */
  async forget(agentId: string): Promise<boolean> {
    const pinned = this.channel.pin(agentId) !== undefined;
    const known = this.#agents.has(agentId);
    if (!pinned && !known) return false;
    const wasRevoked = this.channel.pin(agentId)?.revokedAtMs != null;
    if (known) this.#leave(agentId, 'removed', 'pin deleted by an operator', this.#now());
    this.#agents.delete(agentId);
    const deleted = pinned ? this.channel.deletePin(agentId) : Promise.resolve(false);
    if (wasRevoked) this.onRevocation?.(agentId, null);
    await deleted;
    return true;
  }

  // ---- Handlers

  #onRegister(e: RegisterEvent): void {
    const m = e.message;
    const agent = this.#record(m.agentId, e.pin);
    agent.version = m.version;
    agent.heartbeatIntervalMs = m.heartbeatIntervalMs;
    agent.note = null;
    if (e.firstContact) {
      this.#log.info({ agent: m.agentId, region: m.region, services: e.pin.services, backends: m.backends.length, remote: e.source.remote }, 'agent pinned (first contact)');
      this.#limitLogged.delete(m.agentId);
      this.#checkPinLevel();
    }
    else if (e.rotated) this.#log.info({ agent: m.agentId, fingerprint: e.pin.fingerprint.slice(0, 16) }, 'agent certificate rotated');
    const wasGone = agent.state !== 'live' && agent.state !== 'stale';
    if (wasGone || e.firstContact) this.#log.info({ agent: m.agentId, region: m.region, backends: m.backends.length, version: m.version, via: e.source.transport }, 'agent registered');
    this.#touch(agent, e.receivedAtMs, null);
    // The new baseline; one that arrived behind newer messages changes only what none of them set (#applyFull).
    this.#applyFull(agent, m.backends, m.seq);
  }

  #onHeartbeat(e: ChannelEvent<HeartbeatMessage>): void {
    const agent = this.#record(e.message.agentId, e.pin);
    this.#touch(agent, e.receivedAtMs, e.message.load);
    if (e.message.full) this.#applyFull(agent, e.message.backends, e.message.seq);
    else this.#applyDelta(agent, e.message.backends, e.message.seq);
  }

  #onHealthUpdate(e: ChannelEvent<HealthUpdateMessage>): void {
    const agent = this.#record(e.message.agentId, e.pin);
    this.#touch(agent, e.receivedAtMs, null);
    this.#applyDelta(agent, e.message.backends, e.message.seq);
  }

  #onDeregister(e: ChannelEvent<DeregisterMessage>): void {
    const m = e.message;
    // Behind a newer message of this agent (a deregistration of its previous run, delayed past the new
    // registration): the agent that sent that one is running; taking its backends out would be wrong.
    if (e.outOfOrder) {
      this.#log.info({ agent: m.agentId, seq: m.seq, via: e.source.transport }, 'agent deregistration older than a message taken already: ignored');
      return;
    }
    this.#leave(m.agentId, 'deregistered', `deregistered: ${m.reason}`, e.receivedAtMs);
    const agent = this.#agents.get(m.agentId);
    if (agent !== undefined) agent.fullSeq = Math.max(agent.fullSeq, m.seq);
  }

  #onDrop(e: DropEvent): void {
    const key = `${e.reason}|${e.agentId ?? e.source.remote}`;
    if (e.reason === 'agent_limit') {
      // Once per agent (it retries its registration until there is room); a pin for it forgets that.
      const id = e.agentId ?? e.source.remote;
      if (this.#limitLogged.has(id)) return;
      this.#limitLogged.add(id);
      // Bounded by dropping the oldest: an agent still retrying is among the newest and never logged twice.
      if (this.#limitLogged.size > DROP_LOG_KEYS) this.#limitLogged.delete(this.#limitLogged.values().next().value as string);
      this.#log.warn({ agent: e.agentId, detail: e.detail, transport: e.source.transport, remote: e.source.remote }, 'agent refused: this overwatch pins overwatch.gossip.max_agents agents already; raise it or delete pins of agents that are gone (counted; logged once per agent)');
      return;
    }
    if (!this.#firstInMinute(key)) return;
    this.#log.warn({ reason: e.reason, detail: e.detail, agent: e.agentId, transport: e.source.transport, remote: e.source.remote }, 'agent message dropped (counted; logged once a minute per reason and agent)');
  }

  /** True at most once a minute per key (a reason and an agent or address): what is logged of what is counted every time. */
  #firstInMinute(key: string): boolean {
    const now = this.#now();
    const last = this.#dropLogged.get(key);
    if (last !== undefined && now - last < 60_000) return false;
    // Re-inserted at the end, so the first key is the one logged longest ago: dropping it can repeat a line at most a minute early.
    this.#dropLogged.delete(key);
    if (this.#dropLogged.size >= DROP_LOG_KEYS) this.#dropLogged.delete(this.#dropLogged.keys().next().value as string);
    this.#dropLogged.set(key, now);
    return true;
  }

  // ---- Agents and their backends

  /** The agent's record, made (or revived) for a message that was accepted. */
  #record(agentId: string, pin: StoredPin): AgentRecord {
    let agent = this.#agents.get(agentId);
    if (agent === undefined) {
      agent = {
        agentId, region: pin.region, version: '', heartbeatIntervalMs: 0, state: 'unseen', lastSeenMs: 0, persistedSeenMs: 0, heardMono: 0, load: null, backends: new Map(), note: null, fullSeq: -1,
      };
      this.#agents.set(agentId, agent);
    }
    if (agent.region !== pin.region) {
      // A new registration moved the agent: its servers are in the old region; take them out and let the full set put them back.
      for (const [id, b] of agent.backends) this.#drop(agent, id, b, `the agent moved to region ${pin.region}`);
      agent.region = pin.region;
    }
    return agent;
  }

  /** Liveness: the agent was heard from now. */
  #touch(agent: AgentRecord, nowMs: number, load: HostLoad | null): void {
    agent.lastSeenMs = Math.max(agent.lastSeenMs, nowMs);
    agent.heardMono = performance.now();
    if (load !== null) agent.load = load;
    const wasStale = agent.state === 'stale' || agent.state === 'unseen';
    agent.state = 'live';
    if (wasStale) {
      for (const b of agent.backends.values()) this.#setState(agent, b, 'heartbeat resumed');
    } else {
      // Keep last-up times moving for answered backends.
      for (const b of agent.backends.values()) this.#noteUp(b);
    }
    if (agent.lastSeenMs - agent.persistedSeenMs >= this.#config.stale.thresholdMs) this.#markDirty(agent);
  }

  /**
   * A registration or a full heartbeat, sequence number `seq`: `reports` is
   * the whole set. Stored when anything changed. Ordering, per backend: a
   * backend's report changes only by a message numbered above the one that
   * set it, so a message that arrived late (UDP reordering, a TCP queue the
   * agent flushed after its fresh registration, a duplicate) never puts an
   * older state back. The agent numbers messages when it makes them (the
   * states they carry are of then), from its start time × 1 024 after a
   * restart, so a restarted agent's messages are above its previous run's.
   */
  #applyFull(agent: AgentRecord, reports: readonly BackendReport[], seq: number): void {
    const keep = new Set<string>();
    let changed = false;
    const newest = seq > agent.fullSeq;
    for (const r of reports) {
      const normal = normalReport(r);
      const id = backendId(normal);
      keep.add(id);
      const b = agent.backends.get(id);
      // Not held: a newer full set left it out (or a deregistration came after it).
      if (b === undefined ? !newest : b.seq >= seq) continue;
      changed = this.#upsert(agent, normal, seq).changed || changed;
    }
    for (const [id, b] of agent.backends) {
      if (keep.has(id) || b.seq >= seq) continue;
      this.#drop(agent, id, b, 'no longer reported by its agent');
      changed = true;
    }
    if (newest) agent.fullSeq = seq;
    if (changed) this.#markDirty(agent);
  }

  /**
   * A delta: only the backends listed changed. Backends it adds past
   * MAX_BACKENDS_PER_AGENT are not taken (the known ones are still updated,
   * nothing held is dropped): counted, and logged once a minute per agent.
   */
  #applyDelta(agent: AgentRecord, reports: readonly BackendReport[], seq: number): void {
    let changed = false;
    let ignored = 0;
    for (const r of reports) {
      const normal = normalReport(r);
      const held = agent.backends.get(backendId(normal));
      // Older than what set it, or not held and older than the full set that left it out (#applyFull).
      if (held === undefined ? seq <= agent.fullSeq : held.seq >= seq) continue;
      if (agent.backends.size >= MAX_BACKENDS_PER_AGENT && held === undefined) {
        ignored++;
        continue;
      }
      changed = this.#upsert(agent, normal, seq).changed || changed;
    }
    if (changed) this.#markDirty(agent);
    if (ignored > 0) {
      this.#refused.backend_limit += ignored;
      if (this.#firstInMinute(`backend_limit|${agent.agentId}`)) {
        this.#log.warn(
          { agent: agent.agentId, ignored, backends: agent.backends.size, limit: MAX_BACKENDS_PER_AGENT },
          'agent backends not taken: a partial update would give the agent more backends than one full set can carry; its next full set (registration or full heartbeat) replaces them (counted; logged once a minute per agent)',
        );
      }
    }
  }

  /** Takes one report of one backend from message `seq`; returns its id within the agent and whether anything of it changed. */
  #upsert(agent: AgentRecord, report: BackendReport, seq: number): { readonly id: string; readonly changed: boolean } {
    const normal = normalReport(report);
    const id = backendId(normal);
    let b = agent.backends.get(id);
    const merged: BackendReport = { ...normal, check: internCheck(normal.check) ?? b?.report.check ?? null };
    const changed = b === undefined || !sameReport(b.report, merged);
    if (b === undefined) {
      b = { report: merged, serverKey: null, problem: null, state: null, seq };
      agent.backends.set(id, b);
    }
    b.seq = seq;
    this.#place(agent, b, merged, true);
    return { id, changed };
  }

  /**
   * Puts a backend into the registry (or updates it) and records what its
   * agent says; a backend that cannot be a server keeps its problem and is
   * shown, never answered.
   */
  #place(agent: AgentRecord, b: AgentBackend, report: BackendReport, logTransition: boolean): void {
    b.report = report;
    if (isIP(report.address) === 0) {
      this.#refuse(agent, b, 'host_name', `${report.address} is a host name: kept and shown, never answered (DNS answers IP addresses)`);
      this.#setState(agent, b, 'reported');
      return;
    }
    const spec = {
      region: agent.region,
      address: report.address,
      port: report.port,
      weight: report.weight,
      check: validationSpecOf(report.address, report.port, report.check, this.#config),
      source: 'agent' as const,
      service: report.service,
    };
    const existing = this.#registry.serverAt(agent.region, report.address, report.port, report.service);
    const owner = existing === undefined ? undefined : this.#owners.get(existing.key);
    if (owner !== undefined && owner !== agent.agentId) {
      // Another agent reports the same backend of the same service: the first keeps it. A copy refused as
      // this owner's already (at a hand-over, or an earlier report) keeps its reason and is counted once.
      if (b.problem?.reason !== 'other_agent' || !b.problem.detail.startsWith(`agent ${owner} `)) {
        this.#refuse(agent, b, 'other_agent', `agent ${owner} reports the same backend; the first to report it keeps it`);
      }
      this.#setState(agent, b, 'refused');
      return;
    }
    let server: ServerRecord;
    try {
      server = this.#registry.addServer(spec);
    } catch (err) {
      if (!(err instanceof OpenGslbError)) throw err;
      if (b.serverKey !== null) this.#removeServer(b);
      this.#refuse(agent, b, 'registry_refused', err.message);
      this.#setState(agent, b, 'refused');
      return;
    }
    this.#owners.set(server.key, agent.agentId);
    b.serverKey = server.key;
    if (b.problem !== null) {
      this.#log.info({ agent: agent.agentId, backend: server.label, service: report.service }, 'agent backend accepted');
      b.problem = null;
    }
    this.#registry.setAgentState(server.key, { agentId: agent.agentId, claim: report.health, drain: report.drain, stale: agent.state !== 'live' });
    if (logTransition) this.#setState(agent, b, 'reported');
    else this.#write(b);
  }

  #refuse(agent: AgentRecord, b: AgentBackend, reason: BackendRefusal, detail: string): void {
    if (b.problem?.detail === detail) return;
    b.problem = { reason, detail };
    this.#refused[reason]++;
    this.#log.warn({ agent: agent.agentId, service: b.report.service, address: b.report.address, port: b.report.port, reason, detail }, 'agent backend not answered');
  }

  /** Takes one backend of an agent out: of the registry (DNS at once) and of the agent's set. */
  #drop(agent: AgentRecord, id: string, b: AgentBackend, reason: string): void {
    agent.backends.delete(id);
    if (b.state !== 'removed' && b.serverKey !== null) this.#transition(agent, b, 'removed', reason);
    if (b.serverKey !== null && this.#handOver(agent, id, b) === null) this.#removeServer(b);
  }

  /**
   * The backend `id` of `from`'s region (`b`, a server) is no longer kept by
   * `from`: a live agent whose copy was refused because `from` reported it
   * first takes it now, from the last report the overwatch holds, rather than
   * at its own next full report (a heartbeat interval or more of a backend
   * out of DNS that a live agent says is up). The server changes owner in
   * place: same key, slot and last-up time. Removing it and adding it back
   * wrote its slot unhealthy, then healthy (queries in between left it out of
   * answers), and republished twice. O(agents). Returns the agent that took
   * it (`b` is then no server), or null (`b` is unchanged).
   */
  #handOver(from: AgentRecord, id: string, b: AgentBackend): AgentRecord | null {
    const key = b.serverKey as string;
    for (const other of this.#agents.values()) {
      if (other === from || other.state !== 'live' || other.region !== from.region) continue;
      const copy = other.backends.get(id);
      if (copy === undefined || copy.serverKey !== null || copy.problem?.reason !== 'other_agent') continue;
      // The owner first: #place refuses a copy of a server another agent owns.
      this.#owners.set(key, other.agentId);
      this.#place(other, copy, copy.report, true);
      if (copy.serverKey === null) continue;
      b.serverKey = null;
      this.#markDirty(other);
      return other;
    }
    this.#owners.set(key, from.agentId);
    return null;
  }

  /**
   * `agent` went stale: each backend of it that a live agent also reports
   * goes to that agent (its own copy is then refused as the other's, as a
   * second reporter's is), so a backend a live agent vouches for stays
   * answered. Backends nobody else reports stay its own, stale.
   */
  #handOverStale(agent: AgentRecord): { readonly b: AgentBackend; readonly heir: AgentRecord }[] {
    const handed: { readonly b: AgentBackend; readonly heir: AgentRecord }[] = [];
    for (const [id, b] of agent.backends) {
      if (b.serverKey === null) continue;
      const heir = this.#handOver(agent, id, b);
      if (heir === null) continue;
      this.#refuse(agent, b, 'other_agent', `agent ${heir.agentId} reports the same backend and took it over while this agent was stale`);
      this.#markDirty(agent);
      handed.push({ b, heir });
    }
    return handed;
  }

  /** Removes the backend's server: its slot goes unhealthy now, the snapshot without it follows within the republish debounce. */
  #removeServer(b: AgentBackend): void {
    const key = b.serverKey as string;
    const server = this.#registry.server(key);
    if (server !== undefined && this.#fanout !== null && server.slot < this.#fanout.capacity) this.#fanout.setServerHealth([server.slot], HEALTH_UNHEALTHY);
    if (this.#owners.get(key) !== undefined) this.#owners.delete(key);
    this.#registry.removeServer(key);
    b.serverKey = null;
  }

  /**
   * An agent leaves: every backend out of DNS at once. `state` is what the
   * API shows afterwards; the stored backends are forgotten.
   */
  #leave(agentId: string, state: AgentState, reason: string, nowMs: number): void {
    const agent = this.#agents.get(agentId);
    if (agent === undefined) {
      if (state === 'revoked' || state === 'deregistered') {
        // Not heard from since this start (a pin only, or a revocation adopted for an agent never seen here): no
        // last_seen. A deregistration is a message heard now.
        this.#agents.set(agentId, { agentId, region: this.channel.pin(agentId)?.region ?? '', version: '', heartbeatIntervalMs: 0, state, lastSeenMs: state === 'deregistered' ? nowMs : 0, persistedSeenMs: 0, heardMono: 0, load: null, backends: new Map(), note: reason, fullSeq: -1 });
      }
      void this.#forgetStored(agentId);
      return;
    }
    for (const [id, b] of agent.backends) this.#drop(agent, id, b, reason);
    agent.state = state;
    agent.note = reason;
    if (state === 'deregistered') agent.lastSeenMs = Math.max(agent.lastSeenMs, nowMs);
    this.#log.info({ agent: agentId, reason }, state === 'deregistered' ? 'agent deregistered: its backends left DNS' : `agent ${state}: its backends left DNS`);
    this.#dirty.delete(agentId);
    void this.#forgetStored(agentId);
  }

  // ---- Verdicts and transitions

  /** What a backend is now (see BACKEND_STATES). */
  #stateOf(agent: AgentRecord, b: AgentBackend): BackendState {
    if (b.serverKey === null) {
      // Another agent's (it took the backend over while this one was stale): whether this one is heard from changes nothing.
      if (b.problem?.reason === 'other_agent') return 'refused';
      if (agent.state !== 'live') return 'stale';
      // Not a server (a host name, refused by the registry, another agent's): its claim decides nothing, so showing it would say "answered".
      if (b.problem !== null) return 'refused';
      return b.report.drain !== null ? 'draining' : b.report.health;
    }
    const server = this.#registry.server(b.serverKey);
    if (server === undefined) return 'removed';
    if (this.#registry.checkedByOverwatch(server)) return 'validated';
    const state = this.#registry.agentStateOf(server.key);
    if (state === undefined || state.stale) return 'stale';
    if (state.drain !== null) return 'draining';
    return state.claim;
  }

  /** Writes the verdict and logs a transition when the state moved. */
  #setState(agent: AgentRecord, b: AgentBackend, why: string): void {
    if (b.serverKey !== null) {
      this.#registry.setAgentState(b.serverKey, { agentId: agent.agentId, claim: b.report.health, drain: b.report.drain, stale: agent.state !== 'live' });
    }
    this.#write(b);
    const to = this.#stateOf(agent, b);
    if (to === b.state) return;
    let reason = why;
    if (to === 'draining') reason = `drained by its agent: ${b.report.drain}`;
    else if (to === 'stale') reason = why === 'restored' ? 'restored from the state store: stale until its agent\'s next heartbeat' : `no message from its agent for ${Math.round(this.#config.stale.thresholdMs / 1000)} s (overwatch.stale.threshold)`;
    else if (to === 'unhealthy') reason = 'its agent\'s checks failed';
    else if (to === 'healthy') reason = b.state === 'stale' ? 'heartbeat resumed; its agent\'s checks pass' : 'its agent\'s checks pass';
    else if (to === 'unknown') reason = 'its agent has no verdict yet';
    else if (to === 'validated') reason = 'the overwatch\'s own checks decide (overwatch.validation.enabled)';
    else if (to === 'refused') reason = `kept, never answered: ${b.problem?.detail ?? why}`;
    this.#transition(agent, b, to, reason);
  }

  #transition(agent: AgentRecord, b: AgentBackend, to: BackendState, reason: string): void {
    const from = b.state;
    b.state = to;
    this.#transitions[to]++;
    const r = b.report;
    const fields = { agent: agent.agentId, service: r.service, backend: `${agent.region}/${formatAddress(r.address, r.port)}`, from, to, reason };
    if (to === 'unhealthy' || to === 'stale' || to === 'draining' || to === 'removed') this.#log.warn(fields, 'agent backend out of answers');
    else this.#log.info(fields, 'agent backend state');
  }

  /** Writes one backend's verdict to its server slot, unless the overwatch checks it itself. */
  #write(b: AgentBackend): void {
    const fanout = this.#fanout;
    if (fanout === null || b.serverKey === null) return;
    const server = this.#registry.server(b.serverKey);
    if (server === undefined || this.#registry.checkedByOverwatch(server)) return;
    // A server added since the last publish may have a slot beyond the live buffer: the publish grows it and calls refreshVerdicts().
    if (server.slot >= fanout.capacity) return;
    const authority = this.#registry.authorityOf(server, null);
    const agentState = this.#registry.agentStateOf(server.key);
    let word = HEALTH_UNHEALTHY;
    if (authority === 'agent' || authority === 'override') {
      // An override is per domain and applied to the member words; the server slot carries the agent's verdict.
      if (agentState !== undefined && !agentState.stale && agentState.drain === null) {
        word = agentState.claim === 'healthy' ? HEALTH_HEALTHY : agentState.claim === 'unknown' ? HEALTH_UNKNOWN : HEALTH_UNHEALTHY;
      }
    }
    // Every health write moves the epoch, which makes every worker rebuild its healthy lists: write changes only.
    if (readHealth(fanout.live, server.slot) !== word) fanout.setServerHealth([server.slot], word);
    if (word === HEALTH_HEALTHY) this.#sink?.setLastUp([server.slot], Math.floor(this.#now() / 1000));
  }

  #noteUp(b: AgentBackend): void {
    const fanout = this.#fanout;
    if (fanout === null || b.serverKey === null) return;
    const server = this.#registry.server(b.serverKey);
    if (server === undefined || server.slot >= fanout.capacity || this.#registry.checkedByOverwatch(server)) return;
    if (this.#registry.authorityOf(server, null) === 'agent' && this.#registry.agentStateOf(server.key)?.claim === 'healthy') {
      this.#sink?.setLastUp([server.slot], Math.floor(this.#now() / 1000));
    }
  }

  // ---- Staleness

  #armSweep(): void {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    const period = Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, Math.floor(this.#config.stale.thresholdMs / 4)));
    this.#sweepPeriodMs = period;
    this.#lastSweepMono = performance.now();
    this.#sweepTimer = setInterval(() => this.#onSweepTimer(), period);
    this.#sweepTimer.unref();
  }

  /**
   * A sweep judges only what the channel could have read. Timers run before
   * the sockets are read, so after a block of the main thread a heartbeat that
   * arrived during it is still unread: a sweep that runs late (LATE_SWEEP_PERIODS)
   * skips its verdicts once, and every sweep judges after one more read of the
   * sockets (setImmediate), for a block that ended just before it.
   */
  #onSweepTimer(): void {
    const mono = performance.now();
    const late = mono - this.#lastSweepMono >= this.#sweepPeriodMs * LATE_SWEEP_PERIODS;
    this.#lastSweepMono = mono;
    if (late && !this.#sweepSkipped) {
      this.#sweepSkipped = true;
      return;
    }
    this.#sweepSkipped = false;
    if (this.#sweepImmediate === null) {
      this.#sweepImmediate = setImmediate(() => {
        this.#sweepImmediate = null;
        this.#sweep();
      });
    }
  }

  /** Marks agents not heard from for stale.threshold stale, and removes the backends of those quiet for remove_after. */
  #sweep(): void {
    if (this.#stopped) return;
    const now = this.#now();
    const mono = performance.now();
    if (this.#lastPinPruneMono === 0 || mono - this.#lastPinPruneMono >= PIN_PRUNE_PERIOD_MS) {
      this.#lastPinPruneMono = mono;
      this.#checkPinLevel();
      void this.forgetDepartedPins();
    }
    const { thresholdMs, removeAfterMs } = this.#config.stale;
    for (const agent of this.#agents.values()) {
      if (agent.state !== 'live' && agent.state !== 'stale' && agent.state !== 'unseen') continue;
      // An overwatch that was down heard nothing meanwhile: restored agents get remove_after from its start.
      const quietMs = mono - Math.max(agent.heardMono, this.#startedMono);
      // An agent with no backends goes too once it was heard from (else it stayed stale for ever);
      // a pinned one not heard from since this start stays unseen.
      if (quietMs >= removeAfterMs && (agent.backends.size > 0 || agent.state !== 'unseen')) {
        this.#leave(agent.agentId, 'removed', `no message from its agent for ${Math.round(removeAfterMs / 1000)} s (overwatch.stale.remove_after)`, now);
        continue;
      }
      if (agent.state === 'live' && quietMs >= thresholdMs) {
        agent.state = 'stale';
        // Hand-overs first: marking a backend stale writes its slot unhealthy, and one a live agent vouches for must not leave answers.
        const handed = this.#handOverStale(agent);
        this.#logStale(agent, handed);
        for (const b of agent.backends.values()) this.#setState(agent, b, 'stale');
      }
    }
  }

  /**
   * The one line of an agent going stale, saying what became of its backends:
   * those that left answers, those a live agent took over (they stay
   * answered), those the overwatch's own checks keep deciding. "Its backends
   * are out of answers" alone was wrong for the handed-over ones. Lists are
   * cut at STALE_LOG_NAMES (an agent may have 1 024 backends); counts are whole.
   */
  #logStale(agent: AgentRecord, handed: readonly { readonly b: AgentBackend; readonly heir: AgentRecord }[]): void {
    const label = (b: AgentBackend): string => `${b.report.service} ${formatAddress(b.report.address, b.report.port)}`;
    const left: string[] = [];
    let validated = 0;
    for (const b of agent.backends.values()) {
      if (b.serverKey === null) continue;
      const server = this.#registry.server(b.serverKey);
      if (server !== undefined && this.#registry.checkedByOverwatch(server)) validated++;
      else left.push(label(b));
    }
    const fields = {
      agent: agent.agentId,
      lastSeen: rfc3339(agent.lastSeenMs),
      backends: agent.backends.size,
      outOfAnswers: left.length,
      leftAnswers: left.slice(0, STALE_LOG_NAMES),
      handedOver: handed.length,
      handedOverTo: handed.slice(0, STALE_LOG_NAMES).map(({ b, heir }) => `${label(b)} -> ${heir.agentId}`),
      validated,
    };
    let msg = 'agent stale: no message for overwatch.stale.threshold';
    if (left.length > 0) msg += `; ${left.length} of its backends left answers (leftAnswers)`;
    if (handed.length > 0) msg += `; ${handed.length} handed over to live agents that report them, still answered (handedOverTo)`;
    if (validated > 0) msg += `; ${validated} decided by the overwatch's own checks (validation)`;
    if (left.length === 0 && handed.length === 0 && validated === 0) msg += '; none of its backends was in answers';
    this.#log.warn(fields, msg);
  }

  // ---- Persistence

  /** Puts the stored agents' backends back (at create()): stale until each agent's next heartbeat. */
  #restore(): void {
    let restored = 0;
    for (const stored of this.#store.loadAgentBackends()) {
      const pin = this.channel.pin(stored.agentId);
      if (pin === undefined || pin.revokedAtMs !== null) {
        void this.#forgetStored(stored.agentId);
        continue;
      }
      const agent: AgentRecord = {
        agentId: stored.agentId,
        region: stored.region,
        version: stored.version,
        heartbeatIntervalMs: stored.heartbeatIntervalMs,
        state: 'stale',
        lastSeenMs: stored.lastSeenMs,
        persistedSeenMs: stored.lastSeenMs,
        heardMono: 0,
        load: null,
        backends: new Map(),
        note: 'restored from the state store',
        fullSeq: -1,
      };
      this.#agents.set(agent.agentId, agent);
      for (const r of stored.backends) {
        const report: BackendReport = { ...r, check: internCheck(r.check) };
        const b: AgentBackend = { report, serverKey: null, problem: null, state: null, seq: -1 };
        agent.backends.set(backendId(report), b);
        this.#place(agent, b, report, false);
        b.state = 'stale';
        restored++;
      }
    }
    if (restored > 0) this.#log.info({ agents: this.#agents.size, backends: restored }, 'agent backends restored from the state store: stale until each agent\'s next heartbeat');
  }

  #markDirty(agent: AgentRecord): void {
    this.#dirty.add(agent.agentId);
    if (this.#persistTimer !== null || this.#stopped) return;
    this.#persistTimer = setTimeout(() => this.#flushPersist(), PERSIST_DELAY_MS);
    this.#persistTimer.unref();
  }

  #flushPersist(): void {
    if (this.#persistTimer !== null) clearTimeout(this.#persistTimer);
    this.#persistTimer = null;
    for (const id of this.#dirty) {
      const agent = this.#agents.get(id);
      if (agent === undefined || (agent.state !== 'live' && agent.state !== 'stale')) continue;
      const entry: StoredAgentBackends = {
        agentId: id,
        region: agent.region,
        version: agent.version,
        heartbeatIntervalMs: agent.heartbeatIntervalMs,
        lastSeenMs: agent.lastSeenMs,
        backends: [...agent.backends.values()].map((b) => b.report),
      };
      agent.persistedSeenMs = agent.lastSeenMs;
      this.#track(this.#store.putAgentBackends(entry), id);
    }
    this.#dirty.clear();
  }

  #forgetStored(agentId: string): Promise<void> {
    return this.#track(this.#store.deleteAgentBackends(agentId), agentId);
  }

  #track(write: Promise<void>, agentId: string): Promise<void> {
    const done = write.then(
      () => undefined,
      (err: unknown) => {
        this.#storeErrors++;
        this.#log.error({ agent: agentId, err: (err as Error).message }, 'could not store the agent\'s backends; they hold in memory and are written again at the next change');
      },
    ).finally(() => this.#pendingWrites.delete(done));
    this.#pendingWrites.add(done);
    return done;
  }

  #agentView(agentId: string): AgentView {
    const pin = this.channel.pin(agentId);
    const agent = this.#agents.get(agentId);
    const now = this.#now();
    let state: AgentState = agent?.state ?? 'unseen';
    if (pin?.revokedAtMs != null) state = 'revoked';
    const seen = agent !== undefined && agent.lastSeenMs > 0 ? agent.lastSeenMs : null;
    return {
      agent_id: agentId,
      region: agent?.region ?? pin?.region ?? '',
      state,
      version: agent !== undefined && agent.version !== '' ? agent.version : null,
      services: pin?.services ?? [...new Set([...(agent?.backends.values() ?? [])].map((b) => b.report.service))],
      fingerprint: pin?.fingerprint ?? '',
      first_seen: rfc3339(pin?.firstSeenMs),
      registered_at: rfc3339(pin?.registeredAtMs),
      last_seen: rfc3339(seen),
      heartbeat_age_seconds: seen === null ? null : Math.max(0, Math.round((now - seen) / 100) / 10),
      heartbeat_interval_ms: agent !== undefined && agent.heartbeatIntervalMs > 0 ? agent.heartbeatIntervalMs : null,
      certificate_not_after: rfc3339(pin?.notAfterMs),
      revoked_at: rfc3339(pin?.revokedAtMs ?? null),
      revoked_reason: pin?.revokedReason ?? null,
      previous_fingerprint: pin?.previousFingerprint ?? null,
      note: agent?.note ?? null,
      load: agent?.load == null ? null : { cpu_percent: agent.load.cpuPercent, memory_percent: agent.load.memoryPercent, error_rate_per_min: agent.load.errorRatePerMin },
      backend_count: agent?.backends.size ?? 0,
    };
  }
}
