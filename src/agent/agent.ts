// Main thread (agent mode). The agent composition root: identity, gossip key,
// the overwatch's own health checker over the local backends, predictive
// signals, and the sender that reports to every overwatch. It serves no DNS.
//
//   start: identity (create on first start) ─► first check round ─► registration (reliable, every overwatch)
//   checks: HealthScheduler ─► sink ─► transition ─► health_update (at once)
//   every heartbeat.interval: heartbeat with the backends that changed (full, reliable, every full_interval)
//   every predictive.check_interval: CPU, memory, error rate ─► drain changes ─► health_update
//   stop (SIGTERM): deregistration (reliable) ─► flush with a deadline ─► close

import { BusSender } from '../bus/sender.ts';
import { agentSubject } from '../bus/nats.ts';
import type { AgentBackendConfig, AgentConfig, Config, HealthCheckConfig } from '../config/types.ts';
import { Keyring } from '../gossip/envelope.ts';
import {
  forgetPreviousIdentity, loadOrCreateAgentIdentity, needsRotation, rotateAgentIdentity, type AgentIdentity, type IdentityFiles,
} from '../gossip/identity.ts';
import type { BackendCheck, BackendHealth, BackendReport, DrainReason, HostLoad, OutgoingMessage } from '../gossip/messages.ts';
import { buildRegistration, GossipSender, MessageSealer, type NodeEvent, type NodeStatus, type SenderCounters } from '../gossip/sender.ts';
import { HealthScheduler } from '../health/scheduler.ts';
import { groupTargets, type ServerCheck } from '../health/targets.ts';
import type { CheckSpec, HealthSink } from '../health/types.ts';
import type { BackoffPolicy } from '../lib/backoff.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { formatAddress } from '../lib/ip.ts';
import type { Logger } from '../log/logger.ts';
import { HEALTH_HEALTHY } from '../snapshot/live-slots.ts';
import { Predictor, ProcSampler, type LoadSampler, type PredictiveReading } from './predictive.ts';

/** How long a graceful stop waits for every overwatch to take the deregistration. */
export const STOP_DEADLINE_MS = 3000;
/** How often the agent looks at its certificate's expiry. */
const ROTATION_CHECK_MS = 12 * 3600_000;

/** The agent message types, as the metrics count them. */
/**
 * Refusals that are about this agent's identity, not its tokens or region:
 * what the agent's operator reads, with what ends them. The generic "check
 * the service token" hint sent the operator of a revoked agent to its token.
 */
const IDENTITY_REFUSALS = {
  revoked: (id: string) => `this agent (${id}) is revoked there, so it takes nothing from it, whatever its tokens or certificate; an operator of that overwatch ends it by deleting the pin (opengslb-cli agents delete ${id}) once the host is trusted again`,
  certificate_mismatch: (id: string) => `it has another certificate pinned for agent ${id} (agent.identity.key_path was replaced without a signed rotation, or another host uses this agent id); an operator of that overwatch takes this one by deleting the pin (opengslb-cli agents delete ${id})`,
  certificate_expired: () => 'this agent\'s certificate is outside its validity by that overwatch\'s clock (expired, or the clocks disagree); the agent rotates it 30 days before it expires and at start (look for "certificate rotation failed" above): restart the agent to rotate an expired one',
} as const;

export const AGENT_SENT_TYPES = ['register', 'heartbeat', 'health_update', 'deregister'] as const;
export type AgentSentType = (typeof AGENT_SENT_TYPES)[number];

/** What a backend is, as the agent's metrics and logs show it. */
export const AGENT_BACKEND_STATES = ['healthy', 'unhealthy', 'unknown', 'draining'] as const;

export interface AgentOptions {
  /** The agent's software version, sent in its registration. */
  readonly version: string;
  /** Host load source; default /proc (tests pass a stand-in). */
  readonly sampler?: LoadSampler;
  /** Retry delays for an overwatch that is away; default 500 ms doubling to 30 s. */
  readonly backoff?: BackoffPolicy;
  /** Clock, epoch ms (tests). */
  readonly now?: () => number;
}

/** What the agent sends through: the direct sender or the NATS publisher (src/bus/sender.ts). */
type AgentTransport = Pick<GossipSender, 'setRegistration' | 'sendReliable' | 'status' | 'counters' | 'flush' | 'close'> & {
  send(message: OutgoingMessage): unknown;
};

/** One local backend as the agent holds it. */
interface LocalBackend {
  readonly config: AgentBackendConfig;
  readonly label: string;
  health: BackendHealth;
  drain: DrainReason | null;
  /** (health, drain) in the last heartbeat sent, to send only what changed. */
  sentHealth: BackendHealth | null;
  sentDrain: DrainReason | null;
  checks: { ok: number; fail: number };
}

/** What the agent's metrics and the tests read. */
export interface AgentStatus {
  readonly agentId: string;
  readonly region: string;
  readonly registered: boolean;
  readonly backends: readonly { readonly service: string; readonly address: string; readonly port: number; readonly health: BackendHealth; readonly drain: DrainReason | null; readonly checksOk: number; readonly checksFailed: number }[];
  readonly nodes: readonly NodeStatus[];
  readonly sent: Readonly<Record<AgentSentType, number>>;
  readonly sender: SenderCounters;
  readonly predictive: PredictiveReading;
}

/** The check settings of a backend as the overwatch's checker takes them. */
export function backendSpec(b: AgentBackendConfig): CheckSpec {
  const hc = b.healthCheck;
  return {
    type: hc.type,
    address: b.address,
    port: b.port,
    host: b.host,
    path: hc.path,
    expectedStatus: hc.expectedStatus,
    headers: hc.headers,
    bodyMatch: hc.bodyMatch,
    tlsVerify: hc.tlsVerify,
    keepAlive: hc.keepAlive,
    intervalMs: hc.intervalMs,
    timeoutMs: hc.timeoutMs,
    failureThreshold: hc.failureThreshold,
    successThreshold: hc.successThreshold,
    emaAlpha: hc.emaAlpha,
  };
}

/** The compact check an agent reports, so the overwatch can validate the backend the same way. */
export function backendCheck(hc: HealthCheckConfig, host: string | null): BackendCheck {
  return {
    type: hc.type,
    path: hc.path,
    host,
    expectedStatus: hc.expectedStatus,
    headers: hc.headers,
    bodyMatch: hc.bodyMatch,
    tlsVerify: hc.tlsVerify,
    failureThreshold: hc.failureThreshold,
    successThreshold: hc.successThreshold,
  };
}

/**
 * A running agent. Start with Agent.start(); stop() sends the deregistration
 * and closes everything.
 */
export class Agent {
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #files: IdentityFiles;
  #identity: AgentIdentity;
  readonly #sealer: MessageSealer;
  /** The direct sender (overwatch_nodes), or the NATS publisher with agent.bus. */
  readonly #sender: AgentTransport;
  readonly #health: HealthScheduler;
  readonly #predictor: Predictor;
  readonly #backends: LocalBackend[];
  readonly #checks: readonly BackendCheck[];
  readonly #version: string;
  readonly #now: () => number;
  readonly #sent: Record<AgentSentType, number> = { register: 0, heartbeat: 0, health_update: 0, deregister: 0 };
  readonly #pendingUpdate = new Set<number>();
  #registered = false;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #predictTimer: NodeJS.Timeout | null = null;
  #rotationTimer: NodeJS.Timeout | null = null;
  #lastFullMs = 0;
  #evaluating = false;
  /**
   * The identity's file work in progress (a rotation, or deleting the rotated-out
   * pair), or null: one at a time, so heartbeats that come while the files are
   * slow start no second deletion, and a deletion never removes the pair a
   * rotation has just written.
   */
  #identityWork: Promise<void> | null = null;
  #stopped = false;
  /** Check target key → backend indexes (the observer names targets, not slots). */
  readonly #slotsOf = new Map<string, readonly number[]>();

  private constructor(config: AgentConfig, logger: Logger, files: IdentityFiles, identity: AgentIdentity, options: AgentOptions) {
    this.#config = config;
    this.#log = logger.child({ component: 'agent' });
    this.#files = files;
    this.#identity = identity;
    this.#version = options.version;
    this.#now = options.now ?? Date.now;
    const keyring = Keyring.fromBase64(config.gossip.encryptionKey, [], { primary: 'agent.gossip.encryption_key', accepted: 'agent.gossip.accepted_keys' });
    this.#sealer = new MessageSealer(keyring, identity, { now: this.#now });
    const bus = config.bus;
    this.#sender = bus === null
      ? new GossipSender({
        nodes: config.gossip.overwatchNodes,
        keyring,
        sealer: this.#sealer,
        ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
        now: this.#now,
        onNodeEvent: (e) => this.#onNodeEvent(e),
        // An overwatch that asks again, or answers again after being away, gets the backends as they are now.
        currentRegistration: () => this.#buildRegistration(),
      })
      : new BusSender({
        bus,
        region: config.identity.region,
        keyring,
        sealer: this.#sealer,
        name: `opengslb-agent ${identity.agentId}`,
        now: this.#now,
        // Back on NATS (or an overwatch that does not know us): the registration again, with every backend as it is now.
        onResync: () => {
          if (this.#registered && !this.#stopped) this.#register();
        },
        onNodeEvent: (e) => this.#onNodeEvent(e),
        onLinkEvent: (e) => {
          if (e.kind === 'error') this.#log.warn({ error: e.error }, 'agent bus error (NATS)');
          else if (e.kind === 'connected' && !e.first) this.#log.info({ server: e.server }, 'agent bus reconnected (NATS): sending the whole state again');
        },
      });
    this.#backends = config.backends.map((b) => ({
      config: b,
      label: `${b.service} ${formatAddress(b.address, b.port)}`,
      health: 'unknown',
      drain: null,
      sentHealth: null,
      sentDrain: null,
      checks: { ok: 0, fail: 0 },
    }));
    this.#checks = config.backends.map((b) => backendCheck(b.healthCheck, b.host));
    this.#predictor = new Predictor(config.predictive, config.backends.length, options.sampler ?? new ProcSampler());
    const sink: HealthSink = {
      setHealth: (slots, state) => {
        for (const i of slots) this.#setHealth(i, state === HEALTH_HEALTHY ? 'healthy' : 'unhealthy');
      },
      setLatency: () => {},
      setLastUp: () => {},
    };
    this.#health = new HealthScheduler({
      sink,
      logger: this.#log.child({ component: 'health' }),
      now: this.#now,
      observer: (target, result) => {
        // The error rate's window is a duration: timed on the monotonic clock, so a wall-clock step neither empties nor stretches it.
        const monoMs = performance.now();
        const slots = this.#slotsOf.get(target.key) ?? [];
        for (const i of slots) {
          const b = this.#backends[i];
          if (result.ok) b.checks.ok++;
          else {
            b.checks.fail++;
            this.#predictor.fail(i, monoMs);
          }
        }
      },
    });
  }

  /**
   * Starts an agent for `config` (mode agent): loads or creates its identity
   * (OPENGSLB_ERR_AGENT_IDENTITY naming the file when it cannot), checks
   * every backend once, then registers with every overwatch (retried with
   * backoff while one is away) and starts heartbeats. Resolves once the
   * registration is queued; it never waits for an overwatch.
   */
  static async start(config: Config, logger: Logger, options: AgentOptions): Promise<Agent> {
    const a = config.agent;
    if (a === null) throw new OpenGslbError('OPENGSLB_ERR_CONFIG_INVALID', `${config.source}: mode is agent but the file has no agent section`);
    const files: IdentityFiles = { certPath: a.identity.certPath, keyPath: a.identity.keyPath, region: a.identity.region, ...(options.now ? { now: options.now } : {}) };
    let { identity, created } = await loadOrCreateAgentIdentity(files);
    const log = logger.child({ component: 'agent' });
    if (created) log.info({ agent: identity.agentId, cert: files.certPath, key: files.keyPath }, 'agent identity created (first start): overwatches pin its certificate at the first registration');
    if (needsRotation(identity, (options.now ?? Date.now)())) {
      identity = await rotateAgentIdentity(files, identity);
      log.info({ agent: identity.agentId, notAfter: new Date(identity.notAfterMs).toISOString() }, 'agent certificate rotated (it was about to expire)');
    }
    const agent = new Agent(a, logger, files, identity, options);
    await agent.#start();
    return agent;
  }

  async #start(): Promise<void> {
    const checks: ServerCheck[] = this.#config.backends.map((b, i) => ({
      spec: backendSpec(b),
      slot: i,
      server: { key: String(i), label: this.#backends[i].label, region: this.#config.identity.region, endpoint: formatAddress(b.address, b.port) },
    }));
    const targets = groupTargets(checks);
    for (const t of targets) this.#slotsOf.set(t.key, t.slots);
    this.#health.update(targets);
    await this.#health.firstRound();
    if (this.#stopped) return;
    // The first round's verdicts are in the registration; no update is owed for them.
    this.#pendingUpdate.clear();
    await this.#evaluate();
    this.#register();
    this.#log.info(
      {
        agent: this.#identity.agentId,
        region: this.#config.identity.region,
        backends: this.#backends.map((b) => `${b.label} ${b.drain ?? b.health}`),
        ...(this.#config.bus === null
          ? { overwatches: this.#config.gossip.overwatchNodes.map((n) => formatAddress(n.host, n.port)) }
          : { bus: this.#config.bus.servers, subject: agentSubject(this.#config.bus.subjectPrefix, this.#config.identity.region) }),
      },
      this.#config.bus === null ? 'agent running: registering with every overwatch' : 'agent running: publishing to the NATS bus',
    );
    this.#notePendingRotation();
    this.#lastFullMs = performance.now();
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#config.heartbeat.intervalMs);
    this.#predictTimer = setInterval(() => void this.#evaluate(), this.#config.predictive.checkIntervalMs);
    this.#rotationTimer = setInterval(() => this.#identityTask(() => this.#checkRotation()), ROTATION_CHECK_MS);
    this.#rotationTimer.unref();
  }

  /** The agent id (from its certificate). */
  get agentId(): string {
    return this.#identity.agentId;
  }

  /** What the agent knows now. */
  status(): AgentStatus {
    return {
      agentId: this.#identity.agentId,
      region: this.#config.identity.region,
      registered: this.#registered,
      backends: this.#backends.map((b) => ({
        service: b.config.service, address: b.config.address, port: b.config.port, health: b.health, drain: b.drain, checksOk: b.checks.ok, checksFailed: b.checks.fail,
      })),
      nodes: this.#sender.status(),
      sent: { ...this.#sent },
      sender: this.#sender.counters(),
      predictive: this.#predictor.last,
    };
  }

  /**
   * Stops gracefully: checks and timers stop, the deregistration goes to
   * every overwatch reliably (their DNS drops this agent's backends at once),
   * waits up to `deadlineMs` for the acks, and closes. Safe to call twice.
   */
  async stop(reason = 'graceful stop', deadlineMs = STOP_DEADLINE_MS): Promise<boolean> {
    if (this.#stopped) return true;
    this.#stopped = true;
    for (const timer of [this.#heartbeatTimer, this.#predictTimer, this.#rotationTimer]) if (timer !== null) clearInterval(timer);
    this.#health.stop();
    let flushed = true;
    if (this.#registered) {
      this.#send({ type: 'deregister', reason }, 'reliable');
      flushed = await this.#sender.flush(deadlineMs);
      if (!flushed) this.#log.warn({ deadlineMs, nodes: this.#sender.status().filter((n) => n.queued > 0).map((n) => formatAddress(n.node.host, n.node.port)) }, 'not every overwatch took the deregistration in time; they will see this agent go stale');
    }
    // Identity files being written (a rotation) are finished before the process exits.
    await this.#identityWork;
    await this.#sender.close();
    return flushed;
  }

  // ---- Messages

  #reports(full: boolean, only: ReadonlySet<number> | null): BackendReport[] {
    const out: BackendReport[] = [];
    this.#backends.forEach((b, i) => {
      if (only !== null && !only.has(i)) return;
      out.push({
        service: b.config.service,
        address: b.config.address,
        port: b.config.port,
        weight: b.config.weight,
        health: b.health,
        drain: b.drain,
        check: full ? this.#checks[i] : null,
      });
    });
    return out;
  }

  /** The registration sent to every overwatch: what the next heartbeats' changes are counted from. */
  #registration(): Parameters<GossipSender['setRegistration']>[0] {
    const registration = this.#buildRegistration();
    for (const b of this.#backends) {
      b.sentHealth = b.health;
      b.sentDrain = b.drain;
    }
    return registration;
  }

  /** The registration as it is now (also what the direct sender sends again to one overwatch). */
  #buildRegistration(): Parameters<GossipSender['setRegistration']>[0] {
    const services = [...new Set(this.#config.backends.map((b) => b.service))];
    const backends = this.#reports(true, null);
    return buildRegistration(this.#identity, {
      region: this.#config.identity.region,
      version: this.#version,
      serviceTokens: Object.fromEntries(services.map((s) => [s, this.#config.identity.serviceToken])),
      heartbeatIntervalMs: this.#config.heartbeat.intervalMs,
      backends,
    });
  }

  #register(): void {
    this.#sender.setRegistration(this.#registration());
    this.#sent.register++;
    this.#registered = true;
  }

  #send(message: OutgoingMessage, how: 'best' | 'reliable', key: string | null = null): void {
    if (how === 'reliable') this.#sender.sendReliable(message, key);
    else this.#sender.send(message);
    this.#sent[message.type as AgentSentType]++;
  }

  #load(): HostLoad | null {
    const p = this.#predictor.last;
    if (p.cpuPercent === null && p.memoryPercent === null) return null;
    return { cpuPercent: p.cpuPercent ?? 0, memoryPercent: p.memoryPercent ?? 0, errorRatePerMin: Math.max(0, ...p.errorRatePerMin) };
  }

  /**
   * Every heartbeat.interval: the backends that changed since the last one,
   * best effort; every full_interval also all of them, reliably.
   */
  #heartbeat(): void {
    if (this.#stopped || !this.#registered) return;
    const monoMs = performance.now();
    const changed = new Set<number>();
    this.#backends.forEach((b, i) => {
      if (b.sentHealth !== b.health || b.sentDrain !== b.drain) changed.add(i);
      b.sentHealth = b.health;
      b.sentDrain = b.drain;
    });
    // Sent on the full ticks too: it tells every overwatch at once that this
    // agent lives, within one interval. The full set goes reliably, over TCP
    // to each overwatch in turn, and to one that was away it waits for the
    // link's retry (up to 30 s of backoff): a restarted overwatch kept this
    // agent's backends stale up to a whole interval longer on a full tick.
    this.#send({ type: 'heartbeat', full: false, backends: this.#reports(false, changed), load: this.#load() }, 'best');
    // Timed on the monotonic clock: a wall-clock step back stopped full sets for as long as the
    // step (an overwatch that removed this agent meanwhile gets its backends back only from one),
    // and a step ahead sent one early.
    // Due at the tick that ends the full_interval: a quarter interval early counts, as the interval
    // timer (whole ms on libuv's loop clock) may fire a fraction of a ms before the monotonic
    // clock says it is due; with full_interval: interval every other full set was skipped.
    if (monoMs - this.#lastFullMs >= this.#config.heartbeat.fullIntervalMs - this.#config.heartbeat.intervalMs / 4) {
      this.#lastFullMs = monoMs;
      // A newer full state replaces one still waiting for an overwatch that is away.
      this.#send({ type: 'heartbeat', full: true, backends: this.#reports(true, null), load: this.#load() }, 'reliable', 'state');
    }
    const previous = this.#identity.previous;
    if (previous !== null) {
      // The rotated-out key is kept while an overwatch may still pin its certificate: it signs the
      // registrations that move such an overwatch to the new one. Direct links say which overwatch
      // acked, so it goes once every configured one took the new certificate. Acks on the NATS bus name
      // no overwatch and the agent cannot know how many listen (one away now is unknown to it), so there
      // it goes when the previous certificate expires: from then on its key approves nothing anyway.
      const expired = this.#now() > previous.notAfterMs;
      if (expired) this.#identityTask(() => this.#forgetPrevious('expired'));
      else if (this.#config.bus === null && this.#sender.status().every((n) => n.registered)) this.#identityTask(() => this.#forgetPrevious('acked'));
    }
  }

  // ---- Transitions

  #setHealth(i: number, health: BackendHealth): void {
    const b = this.#backends[i];
    if (b === undefined || b.health === health) return;
    const from = b.health;
    b.health = health;
    const fields = { backend: b.label, from, to: health };
    if (health === 'unhealthy') this.#log.warn(fields, 'backend down');
    else this.#log.info(fields, 'backend up');
    this.#queueUpdate(i);
  }

  #setDrain(i: number, drain: DrainReason | null): void {
    const b = this.#backends[i];
    if (b.drain === drain) return;
    const from = b.drain;
    b.drain = drain;
    const p = this.#predictor.last;
    const load = { cpuPercent: p.cpuPercent, memoryPercent: p.memoryPercent, errorRatePerMin: p.errorRatePerMin[i] };
    if (drain !== null) this.#log.warn({ backend: b.label, reason: drain, ...load }, 'backend draining (predictive signal held for its bleed_duration)');
    else this.#log.info({ backend: b.label, was: from, ...load }, 'backend no longer draining (signal stayed below 90 % of its threshold for its bleed_duration)');
    this.#queueUpdate(i);
  }

  /** Sends one health update for every transition of this tick, at once. */
  #queueUpdate(i: number): void {
    const first = this.#pendingUpdate.size === 0;
    this.#pendingUpdate.add(i);
    if (!first) return;
    queueMicrotask(() => {
      const changed = new Set(this.#pendingUpdate);
      this.#pendingUpdate.clear();
      if (!this.#registered || this.#stopped || changed.size === 0) return;
      this.#send({ type: 'health_update', backends: this.#reports(false, changed) }, 'best');
    });
  }

  async #evaluate(): Promise<void> {
    if (this.#evaluating || this.#stopped) return;
    this.#evaluating = true;
    try {
      // bleed_duration is a duration: a wall-clock step ahead drained at once, one back held a drain for the step.
      const reading = await this.#predictor.evaluate(performance.now());
      if (this.#stopped) return;
      reading.drains.forEach((drain, i) => this.#setDrain(i, drain));
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'predictive reading failed');
    } finally {
      this.#evaluating = false;
    }
  }

  // ---- Overwatches and identity

  #onNodeEvent(e: NodeEvent): void {
    const node = formatAddress(e.node.host, e.node.port);
    switch (e.kind) {
      case 'up':
        this.#log.info({ overwatch: node }, 'overwatch reachable');
        break;
      case 'down': {
        // missed_threshold failures in a row make one warning (and every tenth after it); fewer are debug.
        const threshold = this.#config.heartbeat.missedThreshold;
        const fields = { overwatch: node, error: e.error, retryInMs: e.retryInMs, failures: e.failures };
        if (e.failures === threshold || (e.failures > threshold && (e.failures - threshold) % 10 === 0)) this.#log.warn(fields, 'overwatch unreachable; retrying with backoff');
        else this.#log.debug(fields, 'overwatch unreachable; retrying with backoff');
        break;
      }
      case 'refused':
        if (e.reason === 'agent_limit') this.#log.error({ overwatch: node, message: e.type, reason: e.reason }, 'overwatch refused the registration: it holds as many agents as its overwatch.gossip.max_agents allows; retrying slowly');
        // The ack carries only the reason: the overwatch's log names the region it has in another case, if any.
        else if (e.reason === 'unknown_region') this.#log.error({ overwatch: node, message: e.type, reason: e.reason, region: this.#config.identity.region }, `overwatch refused the registration: it has no region ${JSON.stringify(this.#config.identity.region)} (agent.identity.region); region names are case-sensitive, expected one of the overwatch's regions[].name spelt exactly; retrying slowly`);
        else {
          const why = IDENTITY_REFUSALS[e.reason as keyof typeof IDENTITY_REFUSALS] as ((id: string) => string) | undefined;
          if (why !== undefined) this.#log.error({ overwatch: node, message: e.type, reason: e.reason, agent: this.agentId }, `overwatch refused ${e.type === 'register' ? 'the registration' : 'a message'}: ${why(this.agentId)}${e.type === 'register' ? '; retrying slowly' : ''}`);
          else this.#log.error({ overwatch: node, message: e.type, reason: e.reason }, e.type === 'register' ? 'overwatch refused the registration (check agent.identity.service_token against overwatch.agent_tokens, and the region); retrying slowly' : 'overwatch refused a message');
        }
        break;
      case 'notice':
        // Its messages are all acked ok, so without this the agent's operator is never told its backends are refused.
        if (e.reason === 'unknown_region') this.#log.error({ overwatch: node, region: this.#config.identity.region }, `overwatch takes this agent's messages but serves no region ${JSON.stringify(this.#config.identity.region)} (a reload removed it from its regions): none of this agent's backends are in its answers; serve the region there again, or change agent.identity.region`);
        else if (e.reason === null) this.#log.info({ overwatch: node, region: this.#config.identity.region }, 'overwatch serves this agent\'s region again');
        else this.#log.warn({ overwatch: node, reason: e.reason }, 'overwatch acked with a notice this agent does not know');
        break;
      case 'register_requested':
        this.#log.info({ overwatch: node }, 'overwatch asked for a registration (it does not know this agent): registering again');
        this.#sent.register++;
        break;
      case 'previous_pin':
        this.#log.info({ overwatch: node, agent: this.agentId }, 'an overwatch still holds the previous certificate (it was away during the rotation): registering the new one again, signed by both keys');
        // Counted by #register(), which the bus sender's resync calls (at most once a second).
        break;
    }
  }

  /** Runs `task` unless identity work is already under way (the next tick looks again). */
  #identityTask(task: () => Promise<void>): void {
    if (this.#identityWork !== null || this.#stopped) return;
    this.#identityWork = task().finally(() => {
      this.#identityWork = null;
    });
  }

  async #checkRotation(): Promise<void> {
    if (this.#stopped || !needsRotation(this.#identity, this.#now())) return;
    try {
      this.#identity = await rotateAgentIdentity(this.#files, this.#identity);
      this.#sealer.setIdentity(this.#identity);
      this.#register();
      this.#log.info({ agent: this.#identity.agentId, notAfter: new Date(this.#identity.notAfterMs).toISOString() }, 'agent certificate rotated; registering the new one, signed by the old key');
      this.#notePendingRotation();
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'certificate rotation failed; the current certificate stays in use');
    }
  }

  /** Says, on the NATS bus, how long the rotated-out key is kept (the rule is not the direct links' one). */
  #notePendingRotation(): void {
    const previous = this.#identity.previous;
    if (this.#config.bus === null || previous === null || this.#now() > previous.notAfterMs) return;
    this.#log.info(
      { agent: this.#identity.agentId, keptUntil: new Date(previous.notAfterMs).toISOString() },
      'certificate rotation pending on the NATS bus: its acks do not say which overwatches took the new certificate, so the previous key is kept until the previous certificate expires',
    );
  }

  /** Deletes the rotated-out pair: every overwatch acked the new certificate (`acked`, direct links), or the old one `expired`. */
  async #forgetPrevious(why: 'acked' | 'expired'): Promise<void> {
    const identity = this.#identity;
    if (identity.previous === null) return;
    try {
      const forgotten = await forgetPreviousIdentity(this.#files, identity);
      if (this.#identity !== identity) return;
      this.#identity = forgotten;
      this.#sealer.setIdentity(forgotten);
      if (why === 'acked') this.#log.info('every overwatch took the rotated certificate; the previous key is deleted');
      else this.#log.info({ expired: new Date(identity.previous.notAfterMs).toISOString() }, 'the rotated-out certificate has expired, so its key approves nothing any more; the previous key is deleted');
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'could not delete the previous key');
    }
  }
}
