// Main thread, warm path. Runs every check target on its own interval, turns
// probe results into healthy/unhealthy verdicts with the threshold state
// machine, keeps the latency EMA, and reports both through a HealthSink.
//
//   update(targets) ──► TargetState per key ──► min-heap by due time ──► one setTimeout
//                                                    ▲                        │ fires
//                       next due = start + interval ± 5 % (second probe: × 0.5–1.5) ▼
//                                                    └──── onResult ◄──── probe(spec)
//                                                              │
//                                          sink.setHealth / setLatency / setLastUp, logs, counters
//
// A target is in the heap or in flight, never both, so a check cannot overlap itself.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../log/logger.ts';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY } from '../snapshot/live-slots.ts';
import { KeepAliveConnection, startProbe, type ProbeDone, type ProbeHandle } from './probe.ts';
import { checkIdentity, latencyIdentity, type CheckedServer, type CheckSpec, type CheckTarget, type CheckType, type HealthSink, type ProbeResult, type TargetStatus } from './types.ts';

type State = TargetStatus['state'];

/** Share of the interval by which each later probe is moved earlier or later at random. */
export const JITTER_SHARE = 0.05;
/**
 * Probes due within this share of their interval of the earliest due one
 * start with it, on the same timer (never less than 1 ms): 20 ms at a 10 s
 * interval. At 1 000 checks a second that is some 50 wake-ups instead of
 * 1 000, and a probe starts at most 0.2 % of its interval early, well inside
 * the ±5 % jitter. See docs/health-checks.md ("Scale").
 */
export const START_WINDOW_SHARE = 0.002;
/**
 * A probe that starts this share of its interval (or more) after it was due
 * was held up by the checker's own thread (a long reload, a GC pause); its
 * next probe is placed at a random phase again, as the second one is.
 */
export const LATE_START_SHARE = 0.25;
/** The first probes of new targets are spread over at least [0, min(interval, FIRST_SPREAD_MS)). */
export const FIRST_SPREAD_MS = 1000;
/**
 * Share of the first-round spread that bounds the start window of a first
 * probe: 20 ms of the 1 s spread, the window of a 10 s interval. Without it a
 * long interval's window (7.2 s at 1 h) would swallow the whole spread and
 * start every first probe on one wake-up.
 */
export const FIRST_WINDOW_SHARE = 0.02;
/**
 * Most first probes started per second: when an update() brings more new
 * targets than this, their first probes are spread over count / rate seconds
 * (never more than their interval). Starting 10 000 probes within one second
 * saturates the event loop, and the queueing delay then lands in the latency
 * samples and in spurious timeouts; see docs/health-checks.md ("Scale").
 */
export const FIRST_ROUND_RATE_PER_SEC = 4000;
/** Extra time firstRound() waits beyond the last first probe's timeout before giving up on it. */
export const FIRST_ROUND_GRACE_MS = 250;
/** Reason recorded for targets still unknown when firstRound() gives up. */
export const NO_FIRST_RESULT = 'no result in first round';

/** Scheduler-wide counts for the metrics issue (opengslb_health_check_results_total, opengslb_health_transitions_total{to}). */
export interface HealthCounters {
  readonly probes_total: { ok: number; fail: number };
  readonly transitions_total: { healthy: number; unhealthy: number; unchecked: number };
}

/** Starts one probe and reports its verdict through `onDone(context, result)`, once and never synchronously; startProbe by default. */
export type ProbeStarter = (spec: CheckSpec, kept: KeepAliveConnection | null, onDone: ProbeDone<unknown>, context: unknown) => ProbeHandle;

/** Options of a HealthScheduler; `probe`, `now` and `random` exist for tests. */
export interface HealthSchedulerOptions {
  readonly sink: HealthSink;
  /** The process logger or a child with `component: 'health'`; transitions are logged on it. */
  readonly logger: Logger;
  /** Starts one probe; defaults to startProbe. Must never throw. */
  readonly probe?: ProbeStarter;
  /** Wall clock in ms since the epoch, for lastCheckAt and last-up; defaults to Date.now. */
  readonly now?: () => number;
  /** Uniform [0, 1) source for jitter; defaults to Math.random. */
  readonly random?: () => number;
  /** Called with every probe result (metrics); must not throw. */
  readonly observer?: CheckObserver;
}

/** Sees every probe result: which target (its servers and check type) and what came back. */
export type CheckObserver = (target: { readonly key: string; readonly servers: readonly CheckedServer[]; readonly type: CheckSpec['type'] }, result: ProbeResult) => void;

/** Mutable per-target state. Every field is set in the constructor so the shape stays stable. */
class TargetState {
  key: string;
  spec: CheckSpec;
  slots: readonly number[];
  servers: readonly CheckedServer[];
  state: State = 'unknown';
  consecutiveSuccesses = 0;
  consecutiveFailures = 0;
  lastCheckAt: number | null = null;
  /** Wall-clock ms at which `state` was entered (null while unknown); for an inherited verdict, when the replaced check entered it. */
  stateSinceAt: number | null = null;
  /**
   * The verdict was taken over from the check this one replaced (a reload
   * changed what is checked): it stands until this check's first result,
   * which then decides alone, as for an unknown target.
   */
  inherited = false;
  lastError: string | null = null;
  lastLatencyMs: number | null = null;
  emaMs = 0;
  samples = 0;
  /** Set once the target's second probe has been placed at a random phase of its interval; cleared when a probe starts late (LATE_START_SHARE). */
  phased = false;
  transitions = 0;
  /** performance.now() at which the next probe is due (valid while in the heap). */
  dueMs = 0;
  /** Probes due within this many ms of this one's due time start with it (see START_WINDOW_SHARE, FIRST_WINDOW_SHARE). */
  windowMs = 1;
  /** performance.now() at which the current or last probe started. */
  startedMs = 0;
  /** Position in the heap, or -1 when not queued (in flight, unchecked or removed). */
  heapIndex = -1;
  inFlight = false;
  /** The probe in flight, for abort() at stop or removal; null otherwise. */
  probe: ProbeHandle | null = null;
  removed = false;
  /** The target's kept connection (keep_alive http/https), closed when the target goes; null otherwise. */
  readonly kept: KeepAliveConnection | null;
  constructor(target: CheckTarget) {
    this.key = target.key;
    this.spec = target.spec;
    this.slots = target.slots;
    this.servers = target.servers;
    // keepAlive is part of the key, so a target keeps or drops keep-alive only by being replaced.
    const t = target.spec.type;
    this.kept = target.spec.keepAlive && (t === 'http' || t === 'https') ? new KeepAliveConnection() : null;
  }
}

/**
 * Schedules health probes for a set of targets and reports verdicts to a sink.
 * Main thread only. Call update() with the targets (again on every reload),
 * await firstRound() before serving DNS, and stop() at shutdown.
 */
export class HealthScheduler {
  /** Probe and transition counts since construction. */
  readonly counters: HealthCounters = {
    probes_total: { ok: 0, fail: 0 },
    transitions_total: { healthy: 0, unhealthy: 0, unchecked: 0 },
  };

  /** Passing probes whose latency was left out of the average since construction: this thread stalled while they were in flight (ProbeResult.stalled). */
  get stalledSamples(): number {
    return this.#stalledSamples;
  }

  #sink: HealthSink;
  #log: Logger;
  #probe: ProbeStarter;
  #now: () => number;
  #random: () => number;
  #observer: CheckObserver | null;
  #targets = new Map<string, TargetState>();
  #heap: TargetState[] = [];
  #timer: NodeJS.Timeout | null = null;
  #timerDueMs = Infinity;
  #stopped = false;
  #stalledSamples = 0;
  #unknown = 0;
  #firstRoundWaiters: (() => void)[] = [];
  #firstRoundTimer: NodeJS.Timeout | null = null;
  #firstRoundDeadlineMs = 0;
  #onTimer = (): void => this.#runDue();
  // One callback for every probe, the target as its context: no closure per probe.
  #onProbeDone = (t: unknown, result: ProbeResult): void => this.#onResult(t as TargetState, result);

  constructor(opts: HealthSchedulerOptions) {
    this.#sink = opts.sink;
    // Accept the process logger or its 'health' child; binding twice would repeat the key in every line.
    this.#log = opts.logger.bindings().component === 'health' ? opts.logger : opts.logger.child({ component: 'health' });
    this.#probe = opts.probe ?? startProbe;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#observer = opts.observer ?? null;
  }

  /**
   * Replaces the set of targets. Keys already present keep their state,
   * counters and EMA and take the new slots (re-reported to the sink when they
   * changed); so does a target whose check differs only in interval, timeout,
   * thresholds or ema_alpha (same checkIdentity()), which takes the new
   * settings from its next probe on; removed keys stop and their in-flight
   * results are ignored; new keys start `unknown` with a first probe within
   * min(interval, 1 s), or within count / FIRST_ROUND_RATE_PER_SEC seconds when
   * more are added at once. A new key that checks servers a removed key
   * checked (a change of what is checked: path, port, type…) takes over that
   * key's verdict and its stateSinceAt instead of starting unknown (see
   * #inherit()); its first result then decides alone. When it measures the
   * same round trip (same type, check address and port, keep-alive) it also
   * takes that key's latency average and sample count (#inheritLatency()).
   * Throws RangeError when two targets share a key (group them first, see
   * groupTargets()). Does nothing after stop().
   */
  update(targets: readonly CheckTarget[]): void {
    if (this.#stopped) return;
    const seen = new Set<string>();
    for (let i = 0; i < targets.length; i++) {
      const key = targets[i].key;
      if (seen.has(key)) throw new RangeError(`two check targets share the key ${key}; merge their slots into one target`);
      seen.add(key);
    }
    const nowMs = performance.now();
    // Only interval, timeout or thresholds changed: the same check. Starting it
    // over would drop a healthy server's verdict and let the first result after
    // the reload decide alone, bypassing failure_threshold and success_threshold.
    const carried = this.#carryOver(targets, seen);
    // Verdicts of the checks that go, by slot, for the new checks of the same servers.
    const replaced = new Map<number, TargetState>();
    for (const [key, t] of this.#targets) {
      if (seen.has(key) || carried.has(t) || t.state === 'unknown') continue;
      for (let i = 0; i < t.slots.length; i++) replaced.set(t.slots[i], t);
    }
    for (const [key, t] of this.#targets) {
      if (!seen.has(key) && !carried.has(t)) this.#remove(t);
    }
    for (const [t, target] of carried) this.#rekey(t, target, nowMs);
    let added = 0;
    for (let i = 0; i < targets.length; i++) if (!this.#targets.has(targets[i].key)) added++;
    const spreadMs = Math.max(FIRST_SPREAD_MS, (added / FIRST_ROUND_RATE_PER_SEC) * 1000);
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i];
      const existing = this.#targets.get(target.key);
      if (existing !== undefined) {
        const slotsChanged = !sameSlots(existing.slots, target.slots);
        existing.spec = target.spec;
        existing.slots = target.slots;
        existing.servers = target.servers;
        if (slotsChanged) this.#reReport(existing);
        continue;
      }
      const t = new TargetState(target);
      this.#targets.set(t.key, t);
      if (t.spec.type === 'none') {
        this.#setState(t, 'unchecked', '');
        continue;
      }
      if (!this.#inherit(t, replaced)) this.#unknown++;
      this.#inheritLatency(t, replaced);
      t.dueMs = nowMs + this.#random() * Math.min(t.spec.intervalMs, spreadMs);
      t.windowMs = Math.max(1, Math.min(t.spec.intervalMs * START_WINDOW_SHARE, spreadMs * FIRST_WINDOW_SHARE));
      this.#push(t);
    }
    this.#arm();
    if (this.#unknown === 0) this.#settleFirstRound();
    // Targets added while someone waits for the first round extend its deadline.
    else if (this.#firstRoundWaiters.length > 0) this.#armFirstRoundDeadline();
  }

  /**
   * Resolves once every current target has a verdict (healthy, unhealthy or
   * unchecked), or at the latest when the last first probe's timeout has
   * passed (plus FIRST_ROUND_GRACE_MS); targets still unknown then are marked
   * unhealthy with reason "no result in first round". Call it after update();
   * with no targets it resolves at once. Settles on stop(). Never rejects.
   */
  firstRound(): Promise<void> {
    if (this.#unknown === 0 || this.#stopped) return Promise.resolve();
    const round = new Promise<void>((resolve) => this.#firstRoundWaiters.push(resolve));
    this.#armFirstRoundDeadline();
    return round;
  }

  /**
   * Pairs targets that leave with new ones checking the same thing
   * (checkIdentity()): the one sharing a slot with it (the same server),
   * else the only one left.
   */
  #carryOver(targets: readonly CheckTarget[], seen: ReadonlySet<string>): Map<TargetState, CheckTarget> {
    const leaving = new Map<string, TargetState[]>();
    for (const [key, t] of this.#targets) {
      if (seen.has(key)) continue;
      const id = checkIdentity(t.spec);
      const list = leaving.get(id);
      if (list === undefined) leaving.set(id, [t]);
      else list.push(t);
    }
    const out = new Map<TargetState, CheckTarget>();
    if (leaving.size === 0) return out;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i];
      if (this.#targets.has(target.key)) continue;
      const list = leaving.get(checkIdentity(target.spec));
      if (list === undefined || list.length === 0) continue;
      let at = list.findIndex((t) => t.slots.some((slot) => target.slots.includes(slot)));
      if (at < 0 && list.length === 1) at = 0;
      if (at < 0) continue;
      out.set(list[at], target);
      list.splice(at, 1);
    }
    return out;
  }

  /**
   * Gives a new target the verdict of the removed targets that checked its
   * servers (by slot), so that a reload changing what is checked neither
   * takes a healthy server out of the answers nor shows its status without
   * the time it holds since. Those slots keep their words (nothing is
   * written); slots of servers new to the check stay as they are until the
   * first result. Unchecked counts as healthy (its slots read healthy). When
   * the verdicts differ, the target takes unhealthy, a transition for the
   * servers that were healthy: a server is not answered on the word of
   * another server's check. Returns false (the target starts unknown) when
   * no slot had a verdict.
   */
  #inherit(t: TargetState, replaced: ReadonlyMap<number, TargetState>): boolean {
    let healthy: TargetState | null = null;
    let unhealthy: TargetState | null = null;
    for (let i = 0; i < t.slots.length; i++) {
      const old = replaced.get(t.slots[i]);
      if (old === undefined) continue;
      // The state holds for all of them since the latest entry.
      if (old.state === 'unhealthy') {
        if (unhealthy === null || (old.stateSinceAt ?? 0) > (unhealthy.stateSinceAt ?? 0)) unhealthy = old;
      } else if (healthy === null || (old.stateSinceAt ?? 0) > (healthy.stateSinceAt ?? 0)) healthy = old;
    }
    const from = unhealthy ?? healthy;
    if (from === null) return false;
    t.inherited = true;
    t.lastCheckAt = from.lastCheckAt;
    t.lastError = from.lastError;
    if (unhealthy !== null && healthy !== null) {
      t.state = 'healthy';
      this.#setState(t, 'unhealthy', 'check changed: servers with different verdicts now share one check');
      return true;
    }
    t.state = from.state === 'unhealthy' ? 'unhealthy' : 'healthy';
    t.stateSinceAt = from.stateSinceAt;
    return true;
  }

  /**
   * Gives a new target the latency average and sample count of a removed
   * target that checked one of its servers and measured the same round trip
   * (latencyIdentity(): type, check address and port, keep-alive), the one
   * with the most samples when several did: a reload that changes the path,
   * Host, headers, expected status, body match or TLS verification of a check
   * does not send a latency domain back to round-robin until min_samples is
   * met again. Its first result then blends in with its own ema_alpha. A new
   * measure starts from no samples. Nothing is written here: the slots keep
   * their words until that first result.
   */
  #inheritLatency(t: TargetState, replaced: ReadonlyMap<number, TargetState>): void {
    const measure = latencyIdentity(t.spec);
    let from: TargetState | null = null;
    for (let i = 0; i < t.slots.length; i++) {
      const old = replaced.get(t.slots[i]);
      if (old === undefined || old.samples === 0 || (from !== null && old.samples <= from.samples)) continue;
      if (latencyIdentity(old.spec) === measure) from = old;
    }
    if (from === null) return;
    t.emaMs = from.emaMs;
    t.samples = from.samples;
    t.lastLatencyMs = from.lastLatencyMs;
  }

  /** Gives a carried-over target its new key and settings; a queued probe moves to one new interval after the last start. */
  #rekey(t: TargetState, target: CheckTarget, nowMs: number): void {
    const slotsChanged = !sameSlots(t.slots, target.slots);
    this.#targets.delete(t.key);
    t.key = target.key;
    t.spec = target.spec;
    t.slots = target.slots;
    t.servers = target.servers;
    this.#targets.set(t.key, t);
    // In flight: its result counts (same check); the next probe is placed with the new interval then.
    // Not phased yet: its first probe is still due within the first-round spread.
    if (t.heapIndex >= 0 && t.phased) {
      this.#heapDelete(t);
      t.windowMs = Math.max(1, t.spec.intervalMs * START_WINDOW_SHARE);
      t.dueMs = Math.max(nowMs, t.startedMs + t.spec.intervalMs);
      this.#push(t);
    }
    if (slotsChanged) this.#reReport(t);
  }

  /** Number of targets still without a verdict (0 once the first round is done): cheap enough for a readiness probe. */
  get unknownCount(): number {
    return this.#unknown;
  }

  /** Returns a fresh status record per target, in insertion order. */
  status(): TargetStatus[] {
    const out: TargetStatus[] = [];
    for (const t of this.#targets.values()) {
      out.push({
        key: t.key,
        servers: t.servers,
        type: t.spec.type,
        state: t.state,
        consecutiveSuccesses: t.consecutiveSuccesses,
        consecutiveFailures: t.consecutiveFailures,
        lastCheckAt: t.lastCheckAt,
        stateSinceAt: t.stateSinceAt,
        lastError: t.lastError,
        lastLatencyMs: t.lastLatencyMs,
        emaLatencyMs: t.samples > 0 ? t.emaMs : null,
        samples: t.samples,
        transitions: t.transitions,
      });
    }
    return out;
  }

  /** Stops for good: clears every timer, aborts in-flight probes, ignores their results and closes kept connections. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#heap.length = 0;
    for (const t of this.#targets.values()) {
      t.removed = true;
      t.probe?.abort();
      t.kept?.close();
    }
    this.#settleFirstRound();
  }

  // ── scheduling ────────────────────────────────────────────────────────────

  /** Starts every probe that is due and re-arms the timer for the next one. */
  #runDue(): void {
    this.#timer = null;
    this.#timerDueMs = Infinity;
    const nowMs = performance.now();
    // One wake-up starts every probe due within its start window (timers also
    // fire up to a millisecond early or late, hence the 1 ms floor).
    while (this.#heap.length > 0 && this.#heap[0].dueMs <= nowMs + this.#heap[0].windowMs) {
      const t = this.#pop();
      this.#start(t, nowMs);
    }
    this.#arm();
  }

  #start(t: TargetState, nowMs: number): void {
    // Every probe that fell due while the thread was blocked starts on this one
    // wake-up; left on start + interval ± 5 %, they would stay one burst every
    // round (a 5 s block at 10 s: half the fleet at once). Phase them afresh.
    if (t.phased && nowMs - t.dueMs >= t.spec.intervalMs * LATE_START_SHARE) t.phased = false;
    t.inFlight = true;
    t.startedMs = nowMs;
    try {
      t.probe = this.#probe(t.spec, t.kept, this.#onProbeDone, t);
    } catch (err) {
      // startProbe never throws; a stand-in that does must not stop every other target's timer.
      t.probe = null;
      process.nextTick(this.#onProbeDone, t, { ok: false, latencyMs: performance.now() - nowMs, reason: `error: ${String(err)}` });
    }
  }

  #onResult(t: TargetState, result: ProbeResult): void {
    t.probe = null;
    if (t.removed || this.#stopped) return;
    t.inFlight = false;
    t.lastCheckAt = this.#now();
    t.lastLatencyMs = result.latencyMs;
    if (this.#observer !== null) this.#observer({ key: t.key, servers: t.servers, type: t.spec.type }, result);
    // The first result of a check that inherited its verdict decides alone, as for unknown.
    const first = t.inherited;
    t.inherited = false;
    if (result.ok) {
      this.counters.probes_total.ok++;
      t.consecutiveSuccesses++;
      t.consecutiveFailures = 0;
      if (t.state === 'unknown' || (first && t.state === 'unhealthy')) this.#setState(t, 'healthy', 'ok');
      else if (t.state === 'unhealthy' && t.consecutiveSuccesses >= t.spec.successThreshold) {
        this.#setState(t, 'healthy', `${t.consecutiveSuccesses} successes in a row`);
      } else if (first) this.#sink.setHealth(t.slots, HEALTH_HEALTHY); // servers new to this check: their first verdict
      // A round trip measured across a stall of this thread (a big publish) measured the stall:
      // it would push the server to the back of latency routing for many intervals. The verdict counts, the sample does not.
      if (result.stalled === true) this.#stalledSamples++;
      else {
        t.emaMs = t.samples === 0 ? result.latencyMs : t.spec.emaAlpha * result.latencyMs + (1 - t.spec.emaAlpha) * t.emaMs;
        t.samples++;
        this.#sink.setLatency(t.slots, Math.round(t.emaMs * 1000), t.samples);
      }
      if (t.state === 'healthy') this.#sink.setLastUp(t.slots, Math.floor(this.#now() / 1000));
    } else {
      this.counters.probes_total.fail++;
      t.consecutiveFailures++;
      t.consecutiveSuccesses = 0;
      t.lastError = result.reason;
      if (t.state === 'unknown' || (t.state === 'healthy' && (first || t.consecutiveFailures >= t.spec.failureThreshold))) {
        this.#setState(t, 'unhealthy', result.reason);
      } else if (first) this.#sink.setHealth(t.slots, HEALTH_UNHEALTHY);
    }
    // Anchor on the start, not the end, so the period does not drift by the
    // probe's own duration; a probe slower than its interval runs again at once.
    const nowMs = performance.now();
    let offsetMs: number;
    if (!t.phased) {
      // The first round is packed into a few seconds for a fast start; left
      // there, every later round would arrive as the same burst. The second
      // probe therefore lands anywhere in [0.5, 1.5] intervals, which spreads
      // a fleet evenly over its interval from the second round on.
      t.phased = true;
      t.windowMs = Math.max(1, t.spec.intervalMs * START_WINDOW_SHARE);
      offsetMs = (0.5 + this.#random()) * t.spec.intervalMs;
    } else {
      offsetMs = t.spec.intervalMs + (this.#random() * 2 - 1) * JITTER_SHARE * t.spec.intervalMs;
    }
    t.dueMs = Math.max(nowMs, t.startedMs + offsetMs);
    this.#push(t);
    this.#arm();
  }

  /** Arms the one timer for the earliest due target, unless it is already armed early enough. */
  #arm(): void {
    if (this.#stopped || this.#heap.length === 0) return;
    const dueMs = this.#heap[0].dueMs;
    if (this.#timer !== null) {
      if (this.#timerDueMs <= dueMs) return;
      clearTimeout(this.#timer);
    }
    this.#timerDueMs = dueMs;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, dueMs - performance.now()));
  }

  #remove(t: TargetState): void {
    t.removed = true;
    // Its verdict would be ignored: end the probe and free its socket now.
    t.probe?.abort();
    t.kept?.close();
    this.#targets.delete(t.key);
    if (t.heapIndex >= 0) this.#heapDelete(t);
    if (t.state === 'unknown') {
      this.#unknown--;
      if (this.#unknown === 0) this.#settleFirstRound();
    }
  }

  // ── verdicts ──────────────────────────────────────────────────────────────

  /** Moves a target to a new state: sink, log line, counters. */
  #setState(t: TargetState, to: State, reason: string): void {
    const from = t.state;
    t.state = to;
    t.stateSinceAt = this.#now();
    t.transitions++;
    this.counters.transitions_total[to as 'healthy' | 'unhealthy' | 'unchecked']++;
    this.#sink.setHealth(t.slots, to === 'unhealthy' ? HEALTH_UNHEALTHY : HEALTH_HEALTHY);
    const fields = { servers: t.servers.map((s) => s.label), from, to, reason, check: t.spec.type as CheckType };
    if (to === 'unhealthy') this.#log.warn(fields, 'server down');
    else if (to === 'healthy') {
      // 10 000 servers coming up at start would be 10 000 lines; the first
      // verdict "healthy" is debug, the summary line of the first round is info.
      if (from === 'unknown') this.#log.debug(fields, 'server up');
      else this.#log.info(fields, 'server up');
    } else this.#log.debug(fields, 'server unchecked');
    if (from === 'unknown' && to !== 'unchecked') {
      this.#unknown--;
      if (this.#unknown === 0) this.#settleFirstRound();
    }
  }

  /** Sends the current verdict and latency of a target to its (new) slots; an inherited verdict waits for the first result. */
  #reReport(t: TargetState): void {
    if (t.state === 'unknown' || t.inherited) return;
    this.#sink.setHealth(t.slots, t.state === 'unhealthy' ? HEALTH_UNHEALTHY : HEALTH_HEALTHY);
    if (t.samples > 0) this.#sink.setLatency(t.slots, Math.round(t.emaMs * 1000), t.samples);
    if (t.state === 'healthy' && t.lastCheckAt !== null) this.#sink.setLastUp(t.slots, Math.floor(t.lastCheckAt / 1000));
  }

  /** Sets the give-up timer to the last unknown target's first start + its timeout + grace, if that is later than now set. */
  #armFirstRoundDeadline(): void {
    let deadlineMs = 0;
    for (const t of this.#targets.values()) {
      if (t.state !== 'unknown') continue;
      const startMs = t.inFlight ? t.startedMs : t.dueMs;
      deadlineMs = Math.max(deadlineMs, startMs + t.spec.timeoutMs + FIRST_ROUND_GRACE_MS);
    }
    if (this.#firstRoundTimer !== null) {
      if (deadlineMs <= this.#firstRoundDeadlineMs) return;
      clearTimeout(this.#firstRoundTimer);
    }
    this.#firstRoundDeadlineMs = deadlineMs;
    this.#firstRoundTimer = setTimeout(() => this.#giveUpFirstRound(), Math.max(0, deadlineMs - performance.now()));
  }

  #giveUpFirstRound(): void {
    this.#firstRoundTimer = null;
    for (const t of this.#targets.values()) {
      if (t.state !== 'unknown') continue;
      t.lastError = NO_FIRST_RESULT;
      this.#setState(t, 'unhealthy', NO_FIRST_RESULT);
    }
    this.#settleFirstRound();
  }

  #settleFirstRound(): void {
    if (this.#firstRoundTimer !== null) {
      clearTimeout(this.#firstRoundTimer);
      this.#firstRoundTimer = null;
    }
    if (this.#firstRoundWaiters.length === 0) return;
    let healthy = 0;
    let unhealthy = 0;
    let unchecked = 0;
    for (const t of this.#targets.values()) {
      if (t.state === 'healthy') healthy++;
      else if (t.state === 'unhealthy') unhealthy++;
      else if (t.state === 'unchecked') unchecked++;
    }
    if (!this.#stopped) this.#log.info({ healthy, unhealthy, unchecked }, 'first round done');
    const waiters = this.#firstRoundWaiters;
    this.#firstRoundWaiters = [];
    for (const resolve of waiters) resolve();
  }

  // ── binary min-heap on dueMs ──────────────────────────────────────────────
  // One timer for all targets instead of one per target: see docs/health-checks.md
  // ("Timers") for the measurement.

  #push(t: TargetState): void {
    t.heapIndex = this.#heap.length;
    this.#heap.push(t);
    this.#siftUp(t.heapIndex);
  }

  #pop(): TargetState {
    const top = this.#heap[0];
    this.#heapDelete(top);
    return top;
  }

  #heapDelete(t: TargetState): void {
    const heap = this.#heap;
    const i = t.heapIndex;
    const last = heap.pop() as TargetState;
    t.heapIndex = -1;
    if (last === t) return;
    heap[i] = last;
    last.heapIndex = i;
    this.#siftDown(i);
    this.#siftUp(last.heapIndex);
  }

  #siftUp(i: number): void {
    const heap = this.#heap;
    const t = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].dueMs <= t.dueMs) break;
      heap[i] = heap[parent];
      heap[i].heapIndex = i;
      i = parent;
    }
    heap[i] = t;
    t.heapIndex = i;
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const t = heap[i];
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && heap[right].dueMs < heap[left].dueMs ? right : left;
      if (heap[child].dueMs >= t.dueMs) break;
      heap[i] = heap[child];
      heap[i].heapIndex = i;
      i = child;
    }
    heap[i] = t;
    t.heapIndex = i;
  }
}

function sameSlots(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
