import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FIRST_ROUND_GRACE_MS, FIRST_SPREAD_MS, FIRST_WINDOW_SHARE, HealthScheduler, JITTER_SHARE, NO_FIRST_RESULT, START_WINDOW_SHARE, type ProbeStarter } from '../../src/health/scheduler.ts';
import { groupTargets } from '../../src/health/targets.ts';
import { targetKey } from '../../src/health/types.ts';
import type { CheckSpec, CheckTarget, ProbeResult } from '../../src/health/types.ts';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { startProbe } from '../../src/health/probe.ts';
import { RecordingSink, captureLogger, listen, makeSpec, until, named } from './helpers.ts';

const OK: ProbeResult = { ok: true, latencyMs: 1, reason: '' };
const fail = (reason: string): ProbeResult => ({ ok: false, latencyMs: 1, reason });

/** Builds a target of one spec; `slots` default to [index]. */
function target(spec: CheckSpec, slots: number[], servers = slots.map((s) => `r/${spec.address}:${spec.port}#${s}`)): CheckTarget {
  return { key: targetKey(spec), spec, slots, servers: servers.map(named) };
}

/** What the stand-in answers for a probe: a result, or 'hang' (reports only when aborted or released). */
type Answer = ProbeResult | 'hang';

/** The handle the stand-in returns; `aborted` records an abort() call. */
interface StandInHandle {
  aborted: boolean;
  abort(): void;
}

/**
 * A hand-written stand-in for startProbe: answers per target address from a
 * script (then `after`), on a later microtask as startProbe does, records
 * every call with its start time and handle, and emits 'call' for each one.
 */
class StandInProbe extends EventEmitter {
  readonly calls: { address: string; startMs: number; handle: StandInHandle }[] = [];
  readonly inFlight = new Map<string, number>();
  maxInFlight = 0;
  #scripts = new Map<string, Answer[]>();
  #after: (address: string) => Answer;
  #released: (() => void)[] = [];
  constructor(after: (address: string) => Answer = () => OK) {
    super();
    this.#after = after;
  }
  script(address: string, answers: Answer[]): void {
    this.#scripts.set(address, [...answers]);
  }
  callsOf(address: string): number {
    return this.calls.filter((c) => c.address === address).length;
  }
  /** Reports every hanging probe as passed. */
  releaseAll(): void {
    for (const r of this.#released.splice(0)) r();
  }
  readonly probe: ProbeStarter = (spec, _kept, onDone, context) => {
    const n = (this.inFlight.get(spec.address) ?? 0) + 1;
    this.inFlight.set(spec.address, n);
    this.maxInFlight = Math.max(this.maxInFlight, n);
    const answer = this.#scripts.get(spec.address)?.shift() ?? this.#after(spec.address);
    let settled = false;
    const settle = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      this.inFlight.set(spec.address, (this.inFlight.get(spec.address) ?? 1) - 1);
      onDone(context, r);
    };
    const handle: StandInHandle = {
      aborted: false,
      abort() {
        handle.aborted = true;
        settle(fail('aborted'));
      },
    };
    this.calls.push({ address: spec.address, startMs: performance.now(), handle });
    queueMicrotask(() => this.emit('call'));
    if (answer !== 'hang') queueMicrotask(() => settle(answer));
    else this.#released.push(() => settle(OK));
    return handle;
  };
}

function newScheduler(t: import('node:test').TestContext, probe: StandInProbe | null, extra: { now?: () => number; random?: () => number } = {}) {
  const sink = new RecordingSink();
  const { logger, records } = captureLogger();
  const scheduler = new HealthScheduler({ sink, logger, ...(probe ? { probe: probe.probe } : {}), ...extra });
  t.after(() => scheduler.stop());
  return { scheduler, sink, records };
}

/** random() = 0.5 makes the jitter exactly zero and puts every first probe at half the spread. */
const NO_JITTER = { random: () => 0.5 };

// ── state machine ─────────────────────────────────────────────────────────

test('the first result decides: a success makes an unknown target healthy, a failure makes it unhealthy', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.1' ? OK : fail('status 503')));
  const { scheduler, sink, records } = newScheduler(t, probe, NO_JITTER);
  const up = makeSpec({ address: '10.0.0.1', intervalMs: 60_000 });
  const down = makeSpec({ address: '10.0.0.2', intervalMs: 60_000 });
  scheduler.update([target(up, [0]), target(down, [1, 2])]);
  assert.deepEqual(scheduler.status().map((s) => s.state), ['unknown', 'unknown']);
  await scheduler.firstRound();
  assert.deepEqual(scheduler.status().map((s) => [s.state, s.lastError]), [['healthy', null], ['unhealthy', 'status 503']]);
  assert.deepEqual(
    sink.health().sort((a, b) => a[0][0] - b[0][0]),
    [[[0], HEALTH_HEALTHY], [[1, 2], HEALTH_UNHEALTHY]],
  );
  const summary = records.find((r) => r.msg === 'first round done');
  assert.deepEqual([summary?.level, summary?.healthy, summary?.unhealthy, summary?.unchecked], ['info', 1, 1, 0]);
});

test('a healthy target goes down after failure_threshold failures in a row and comes back after success_threshold successes', async (t) => {
  const probe = new StandInProbe(() => 'hang');
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const spec = makeSpec({ address: '10.0.0.1', intervalMs: 5, failureThreshold: 3, successThreshold: 2 });
  const script: ProbeResult[] = [OK, fail('timeout'), fail('timeout'), OK, fail('refused'), fail('refused'), fail('status 500'), OK, fail('reset'), OK, OK];
  probe.script('10.0.0.1', script);
  // The state after k results is read when probe k+1 starts.
  const statesAfter: string[] = [];
  probe.on('call', () => statesAfter.push(scheduler.status()[0].state));
  scheduler.update([target(spec, [7])]);
  await until(probe, 'call', () => probe.calls.length === script.length + 1);
  assert.deepEqual(statesAfter.slice(1), [
    'healthy', // OK: the first result decides
    'healthy', // 1 failure
    'healthy', // 2 failures
    'healthy', // OK resets the failure count
    'healthy',
    'healthy',
    'unhealthy', // third failure in a row, reason "status 500"
    'unhealthy', // 1 success
    'unhealthy', // a failure resets the success count
    'unhealthy', // 1 success
    'healthy', // second success in a row
  ]);
  assert.deepEqual(sink.health(), [[[7], HEALTH_HEALTHY], [[7], HEALTH_UNHEALTHY], [[7], HEALTH_HEALTHY]]);
  const s = scheduler.status()[0];
  assert.deepEqual([s.transitions, s.consecutiveSuccesses, s.consecutiveFailures, s.lastError], [3, 2, 0, 'reset']);
  assert.deepEqual(scheduler.counters.transitions_total, { healthy: 2, unhealthy: 1, unchecked: 0 });
  assert.deepEqual(scheduler.counters.probes_total, { ok: 5, fail: 6 });
});

test('the latency EMA starts at the first sample, blends later ones with ema_alpha, and ignores failures', async (t) => {
  const probe = new StandInProbe(() => 'hang');
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const spec = makeSpec({ address: '10.0.0.1', intervalMs: 5, emaAlpha: 0.5 });
  probe.script('10.0.0.1', [
    { ok: true, latencyMs: 10, reason: '' },
    { ok: true, latencyMs: 20, reason: '' },
    { ok: false, latencyMs: 2000, reason: 'timeout' },
    { ok: true, latencyMs: 40, reason: '' },
  ]);
  scheduler.update([target(spec, [3, 4])]);
  await until(probe, 'call', () => probe.calls.length === 5);
  const latency = sink.calls.filter((c) => c.kind === 'latency');
  assert.deepEqual(latency, [
    { kind: 'latency', slots: [3, 4], emaMicros: 10_000, samples: 1 },
    { kind: 'latency', slots: [3, 4], emaMicros: 15_000, samples: 2 },
    { kind: 'latency', slots: [3, 4], emaMicros: 27_500, samples: 3 },
  ]);
  const s = scheduler.status()[0];
  assert.deepEqual([s.emaLatencyMs, s.samples, s.lastLatencyMs], [27.5, 3, 40]);
});

test('last-up is recorded with the injected clock on every success while healthy, and never while unhealthy', async (t) => {
  const probe = new StandInProbe(() => 'hang');
  let clockMs = 1_700_000_000_500;
  const { scheduler, sink } = newScheduler(t, probe, { ...NO_JITTER, now: () => (clockMs += 1000) });
  const spec = makeSpec({ address: '10.0.0.1', intervalMs: 5, failureThreshold: 1, successThreshold: 2 });
  probe.script('10.0.0.1', [OK, OK, fail('timeout'), OK, OK]);
  scheduler.update([target(spec, [0])]);
  await until(probe, 'call', () => probe.calls.length === 6);
  const lastUp = sink.calls.filter((c) => c.kind === 'lastUp').map((c) => (c as { unixSec: number }).unixSec);
  // Successes 1 and 2 while healthy; success 4 is the first of two while unhealthy; success 5 brings it back.
  assert.equal(lastUp.length, 3);
  assert.ok(lastUp.every((s) => Number.isInteger(s) && s >= 1_700_000_001 && s < 1_700_000_020), String(lastUp));
  assert.ok(scheduler.status()[0].lastCheckAt! > 1_700_000_000_500);
});

test('type none is unchecked: reported healthy at once, counted, and never probed', async (t) => {
  const probe = new StandInProbe();
  const { scheduler, sink } = newScheduler(t, probe);
  scheduler.update([target(makeSpec({ type: 'none', address: '10.0.0.9' }), [5])]);
  await scheduler.firstRound();
  assert.equal(scheduler.status()[0].state, 'unchecked');
  assert.deepEqual(sink.health(), [[[5], HEALTH_HEALTHY]]);
  assert.equal(scheduler.counters.transitions_total.unchecked, 1);
  assert.equal(probe.calls.length, 0);
});

// ── scheduling ────────────────────────────────────────────────────────────

test('a check never overlaps itself: a server slower than the interval sees at most one request at a time', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const seen = new EventEmitter();
  let requests = 0;
  const server = http.createServer((_req, res) => {
    requests++;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    seen.emit('request');
    // The server, not the test, is slow: 120 ms per answer against a 20 ms interval.
    setTimeout(() => {
      inFlight--;
      res.end('slow');
    }, 120);
  });
  const port = await listen(t, server);
  const { scheduler } = newScheduler(t, null);
  scheduler.update([target(makeSpec({ port, intervalMs: 20, timeoutMs: 1000 }), [0])]);
  await until(seen, 'request', () => requests >= 4);
  assert.equal(maxInFlight, 1);
  assert.equal(scheduler.status()[0].state, 'healthy');
});

test('a check slower than its interval runs again at once, one at a time per target, for many targets', async (t) => {
  const probe = new StandInProbe(() => ({ ok: true, latencyMs: 1, reason: '' }));
  // Every probe takes 30 ms (longer than the 10 ms interval) by starting late.
  const sink = new RecordingSink();
  const active = new Map<string, number>();
  let overlap = false;
  let done = 0;
  const tracked: ProbeStarter = (spec, kept, onDone, context) => {
    const n = (active.get(spec.address) ?? 0) + 1;
    if (n > 1) overlap = true;
    active.set(spec.address, n);
    setTimeout(() => {
      probe.probe(spec, kept, (ctx, r) => {
        active.set(spec.address, n - 1);
        done++;
        sink.emit('probed');
        onDone(ctx, r);
      }, context);
    }, 30);
    return { abort() {} };
  };
  const scheduler = new HealthScheduler({ sink, logger: captureLogger().logger, probe: tracked });
  t.after(() => scheduler.stop());
  scheduler.update(Array.from({ length: 20 }, (_, i) => target(makeSpec({ address: `10.0.1.${i}`, intervalMs: 10 }), [i])));
  await until(sink, 'probed', () => done >= 100);
  assert.equal(overlap, false);
});

test('two servers behind one target are probed once per interval and both get the verdict', async (t) => {
  const seen = new EventEmitter();
  const times: number[] = [];
  const server = http.createServer((_req, res) => {
    times.push(performance.now());
    seen.emit('request');
    res.end('ok');
  });
  const port = await listen(t, server);
  const spec = makeSpec({ port, intervalMs: 100 });
  const targets = groupTargets([
    { spec, slot: 0, server: named('eu/127.0.0.1:80') },
    { spec: { ...spec }, slot: 1, server: named('us/127.0.0.1:80') },
  ]);
  assert.equal(targets.length, 1);
  const { scheduler, sink } = newScheduler(t, null, NO_JITTER);
  scheduler.update(targets);
  await until(seen, 'request', () => times.length >= 5);
  // One request per interval, not one per server: 4 gaps of about 100 ms each.
  const gaps = times.slice(1).map((x, i) => x - times[i]);
  assert.ok(gaps.every((g) => g > 80), `gaps ${gaps.map((g) => g.toFixed(1)).join(', ')}`);
  assert.deepEqual(sink.health(), [[[0, 1], HEALTH_HEALTHY]]);
  assert.deepEqual(scheduler.status()[0].servers.map((s) => s.label), ['eu/127.0.0.1:80', 'us/127.0.0.1:80']);
});

test('two check targets cannot share a key', (t) => {
  const { scheduler } = newScheduler(t, new StandInProbe());
  const spec = makeSpec({ address: '10.0.0.1' });
  assert.throws(() => scheduler.update([target(spec, [0]), target({ ...spec }, [1])]), RangeError);
});

test('the first probes of 100 targets with a 1 s interval are spread over the first second, not fired together', async (t) => {
  const probe = new StandInProbe();
  const { scheduler } = newScheduler(t, probe);
  const t0 = performance.now();
  scheduler.update(Array.from({ length: 100 }, (_, i) => target(makeSpec({ address: `10.0.2.${i}`, intervalMs: 1000 }), [i])));
  await scheduler.firstRound();
  // The earliest targets may already be on their second probe; take each target's first.
  const first = new Map<string, number>();
  for (const c of probe.calls) if (!first.has(c.address)) first.set(c.address, c.startMs);
  assert.equal(first.size, 100);
  const offsets = [...first.values()].map((s) => s - t0).sort((a, b) => a - b);
  const perMs = new Map<number, number>();
  for (const o of offsets) perMs.set(Math.floor(o), (perMs.get(Math.floor(o)) ?? 0) + 1);
  assert.ok(offsets[0] >= 0 && offsets[99] < 1100, `first ${offsets[0]}, last ${offsets[99]}`);
  assert.ok(offsets[99] - offsets[0] > 500, `spread only ${offsets[99] - offsets[0]} ms`);
  assert.ok(perMs.size >= 50, `only ${perMs.size} distinct milliseconds`);
  assert.ok(Math.max(...perMs.values()) <= 10, `${Math.max(...perMs.values())} probes in one millisecond`);
});

test('with a long interval the first probes are still spread over the first second: the start window does not swallow the spread', async (t) => {
  // 0.2 % of 1 h is 7.2 s, wider than the whole 1 s first-round spread: every first probe used to start on one wake-up.
  const probe = new StandInProbe();
  const { scheduler } = newScheduler(t, probe);
  const t0 = performance.now();
  scheduler.update(Array.from({ length: 200 }, (_, i) => target(makeSpec({ address: `10.0.6.${i}`, intervalMs: 3_600_000 }), [i])));
  await scheduler.firstRound();
  assert.equal(probe.calls.length, 200);
  const offsets = probe.calls.map((c) => c.startMs - t0).sort((a, b) => a - b);
  const perMs = new Map<number, number>();
  for (const o of offsets) perMs.set(Math.floor(o), (perMs.get(Math.floor(o)) ?? 0) + 1);
  assert.ok(offsets[199] - offsets[0] > 500, `spread only ${(offsets[199] - offsets[0]).toFixed(1)} ms`);
  assert.ok(perMs.size >= 25, `only ${perMs.size} distinct milliseconds`);
  assert.ok(Math.max(...perMs.values()) <= 25, `${Math.max(...perMs.values())} probes in one millisecond`);
});

test('the second probe lands at a random phase of the interval, spreading a fleet whose first round was packed', async (t) => {
  const probe = new StandInProbe();
  const { scheduler } = newScheduler(t, probe);
  const intervalMs = 100;
  scheduler.update(Array.from({ length: 40 }, (_, i) => target(makeSpec({ address: `10.0.4.${i}`, intervalMs }), [i])));
  await until(probe, 'call', () => probe.calls.length >= 80);
  const gaps: number[] = [];
  for (let i = 0; i < 40; i++) {
    const starts = probe.calls.filter((c) => c.address === `10.0.4.${i}`).map((c) => c.startMs);
    if (starts.length >= 2) gaps.push(starts[1] - starts[0]);
  }
  assert.ok(gaps.every((g) => g >= intervalMs * 0.5 - 1.5 && g <= intervalMs * 1.5 + 25), `gaps ${gaps.map((g) => g.toFixed(1)).join(', ')}`);
  // Spread over the whole range, not bunched at one interval.
  assert.ok(gaps.some((g) => g < intervalMs * 0.8) && gaps.some((g) => g > intervalMs * 1.2), `gaps ${gaps.map((g) => g.toFixed(1)).join(', ')}`);
});

test('later probes start one interval after the previous start, jittered by at most ±5 %', async (t) => {
  const probe = new StandInProbe();
  const { scheduler } = newScheduler(t, probe);
  const intervalMs = 100;
  scheduler.update(Array.from({ length: 10 }, (_, i) => target(makeSpec({ address: `10.0.3.${i}`, intervalMs }), [i])));
  await until(probe, 'call', () => probe.calls.length >= 60);
  const gaps: number[] = [];
  for (let i = 0; i < 10; i++) {
    const starts = probe.calls.filter((c) => c.address === `10.0.3.${i}`).map((c) => c.startMs);
    // The first gap is the random phase (previous test); from the second on, one interval ± 5 %.
    for (let k = 2; k < starts.length; k++) gaps.push(starts[k] - starts[k - 1]);
  }
  // Timers fire up to a few ms late on a busy machine; never early by more than the jitter.
  const low = intervalMs * (1 - JITTER_SHARE) - 1.5;
  const high = intervalMs * (1 + JITTER_SHARE) + 25;
  assert.ok(gaps.every((g) => g >= low && g <= high), `gaps ${gaps.map((g) => g.toFixed(1)).join(', ')}`);
  assert.ok(new Set(gaps.map((g) => Math.round(g))).size > 3, 'the gaps should vary');
});

test('a fleet whose probes all fell due during a block of the thread spreads out again instead of firing together every round', async (t) => {
  const probe = new StandInProbe();
  const { scheduler } = newScheduler(t, probe);
  const intervalMs = 200;
  const n = 40;
  scheduler.update(Array.from({ length: n }, (_, i) => target(makeSpec({ address: `10.0.6.${i}`, intervalMs, timeoutMs: 100 }), [i])));
  // Past the packed first round and the random second phase: the fleet is spread over the interval.
  await until(probe, 'call', () => probe.calls.length >= n * 3);
  const blockedAt = performance.now();
  while (performance.now() < blockedAt + intervalMs * 1.5);
  const after = performance.now();
  await until(probe, 'call', () => probe.calls.filter((c) => c.startMs >= after).length >= n * 3);
  // Each target's catch-up probe runs right after the block; the one after it must not
  // keep the whole fleet within ±5 % of one interval later (a burst every round).
  const next: number[] = [];
  for (let i = 0; i < n; i++) {
    const starts = probe.calls.filter((c) => c.address === `10.0.6.${i}` && c.startMs >= after).map((c) => c.startMs);
    next.push(starts[1] - after);
  }
  const spanMs = Math.max(...next) - Math.min(...next);
  assert.ok(spanMs > intervalMs * 0.5, `second starts after the block span ${spanMs.toFixed(1)} ms: ${next.map((g) => g.toFixed(0)).join(', ')}`);
});

test('probes due within 0.2 % of their interval start together on one wake-up, never earlier than that', async (t) => {
  const probe = new StandInProbe();
  // First due offsets: random() × min(interval, 1 s) = 100, 105, 112, 300, 310 ms; then no jitter.
  // A 20 ms window (0.2 % of 10 s, which is also the first-round bound of
  // FIRST_WINDOW_SHARE × 1 s). The groups are 190 ms apart, so a first timer
  // that fires late on a loaded machine (9 ms was seen) moves no probe from
  // one wake-up to the other.
  const draws = [0.1, 0.105, 0.112, 0.3, 0.31];
  const { scheduler } = newScheduler(t, probe, { random: () => draws.shift() ?? 0.5 });
  const intervalMs = 10_000;
  const windowMs = intervalMs * START_WINDOW_SHARE;
  assert.equal(windowMs, 20);
  assert.equal(FIRST_SPREAD_MS * FIRST_WINDOW_SHARE, 20);
  const t0 = performance.now();
  scheduler.update(Array.from({ length: 5 }, (_, i) => target(makeSpec({ address: `10.0.5.${i}`, intervalMs }), [i])));
  await until(probe, 'call', () => probe.calls.length >= 5);
  const at = probe.calls.map((c) => ({ address: c.address, ms: c.startMs - t0 }));
  const dueMs = [100, 105, 112, 300, 310];
  // 105 and 112 are within 20 ms of 100: one timer starts all three; 300 starts 310 with it.
  const groups = [at.slice(0, 3), at.slice(3)];
  assert.deepEqual(at.map((a) => a.address), ['10.0.5.0', '10.0.5.1', '10.0.5.2', '10.0.5.3', '10.0.5.4']);
  for (const g of groups) assert.ok(g.at(-1)!.ms - g[0].ms < 1, `one wake-up per group: ${JSON.stringify(at)}`);
  assert.ok(groups[1][0].ms - groups[0][0].ms >= 25, `two wake-ups: ${JSON.stringify(at)}`);
  at.forEach((a, i) => assert.ok(a.ms >= dueMs[i] - windowMs - 1, `${a.address} started ${a.ms.toFixed(1)} ms, due at ${dueMs[i]} ms`));
});

test('a probe starter that throws counts as a failure and does not stop the other targets', async (t) => {
  const sink = new RecordingSink();
  let good = 0;
  const probe: ProbeStarter = (spec, kept, onDone, context) => {
    if (spec.address === '10.0.0.1') throw new Error('sync boom');
    good++;
    sink.emit('good');
    return new StandInProbe().probe(spec, kept, onDone, context);
  };
  const scheduler = new HealthScheduler({ sink, logger: captureLogger().logger, probe, ...NO_JITTER });
  t.after(() => scheduler.stop());
  scheduler.update(['10.0.0.1', '10.0.0.2'].map((address, i) => target(makeSpec({ address, intervalMs: 5 }), [i])));
  await until(sink, 'good', () => good >= 5);
  assert.deepEqual(scheduler.status().map((s) => [s.state, s.lastError]), [
    ['unhealthy', 'error: Error: sync boom'],
    ['healthy', null],
  ]);
});

// ── update(), firstRound(), stop() ────────────────────────────────────────

test('update() keeps state, counters and EMA for unchanged keys, re-reports them to new slots, and starts new keys unknown', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.2' ? 'hang' : { ok: true, latencyMs: 8, reason: '' }));
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const a = makeSpec({ address: '10.0.0.1', intervalMs: 60_000 });
  scheduler.update([target(a, [0])]);
  await scheduler.firstRound();
  const before = scheduler.status()[0];
  assert.deepEqual([before.state, before.samples, before.transitions], ['healthy', 1, 1]);
  sink.calls.length = 0;

  // A reload: the same check now decides slots 3 and 4, and a new target appears.
  const b = makeSpec({ address: '10.0.0.2', intervalMs: 60_000 });
  scheduler.update([target({ ...a }, [3, 4], ['r/a#3', 'r/a#4']), target(b, [9])]);
  const [kept, added] = scheduler.status();
  assert.deepEqual([kept.state, kept.samples, kept.transitions, kept.emaLatencyMs], ['healthy', 1, 1, 8]);
  assert.deepEqual(kept.servers.map((s) => s.label), ['r/a#3', 'r/a#4']);
  assert.equal(added.state, 'unknown');
  assert.deepEqual(
    sink.calls.map((c) => c.kind),
    ['health', 'latency', 'lastUp'],
  );
  assert.deepEqual(sink.health(), [[[3, 4], HEALTH_HEALTHY]]);
  assert.equal(probe.callsOf('10.0.0.1'), 1, 'an unchanged target is not probed again by update()');

  // The same slots again: nothing is re-reported.
  sink.calls.length = 0;
  scheduler.update([target({ ...a }, [3, 4]), target(b, [9])]);
  assert.deepEqual(sink.calls, []);
});

test('a reload that changes only interval, timeout or thresholds keeps the verdict and counts; a change of what is checked keeps the verdict until its first result', async (t) => {
  const probe = new StandInProbe();
  probe.script('10.0.0.1', [OK, fail('status 503')]);
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const a = makeSpec({ address: '10.0.0.1', intervalMs: 60_000, failureThreshold: 3 });
  scheduler.update([target(a, [0])]);
  await scheduler.firstRound();
  sink.calls.length = 0;

  const faster = { ...a, intervalMs: 20, timeoutMs: 500, failureThreshold: 2 };
  scheduler.update([target(faster, [0])]);
  const [kept] = scheduler.status();
  assert.deepEqual([kept.key, kept.state, kept.transitions, kept.samples], [targetKey(faster), 'healthy', 1, 1]);
  // The new interval applies at once (not 60 s after the last probe); its one failure is below failure_threshold 2.
  await until(probe, 'call', () => probe.callsOf('10.0.0.1') >= 3);
  assert.equal(scheduler.status()[0].state, 'healthy');
  assert.deepEqual(sink.health(), [], 'no verdict written: the server never left healthy');

  // Another path is another check: the server keeps its verdict and the time
  // it holds since (nothing is written), until the new check's first result decides alone.
  const since = scheduler.status()[0].stateSinceAt;
  assert.notEqual(since, null);
  sink.calls.length = 0;
  const ready = { ...faster, path: '/ready', intervalMs: 60_000 };
  scheduler.update([target(ready, [0])]);
  probe.script('10.0.0.1', ['hang']);
  const calls = probe.callsOf('10.0.0.1');
  const [changed] = scheduler.status();
  assert.deepEqual([changed.key, changed.state, changed.stateSinceAt, changed.consecutiveFailures], [targetKey(ready), 'healthy', since, 0]);
  assert.equal(scheduler.unknownCount, 0, 'readiness is not lost by a reload');
  assert.deepEqual(sink.calls, []);
  await until(probe, 'call', () => probe.callsOf('10.0.0.1') === calls + 1);
  probe.releaseAll(); // the hanging probe passes: still healthy, since unchanged
  await sink.waitFor((c) => c.kind === 'health');
  assert.deepEqual(sink.health(), [[[0], HEALTH_HEALTHY]]);
  assert.deepEqual([scheduler.status()[0].state, scheduler.status()[0].stateSinceAt], ['healthy', since]);

  // A change again, and the new check's first result is a failure: down at once, below failure_threshold.
  sink.calls.length = 0;
  scheduler.update([target({ ...ready, path: '/live', intervalMs: 20 }, [0])]);
  probe.script('10.0.0.1', [fail('status 404')]);
  await sink.waitFor((c) => c.kind === 'health');
  assert.deepEqual(sink.health(), [[[0], HEALTH_UNHEALTHY]]);
  assert.equal(scheduler.status()[0].state, 'unhealthy');
});

test('a changed check keeps the latency average when it measures the same round trip (type, address, port, keep-alive), and starts it over when that changes', async (t) => {
  let ms = 10;
  const probe = new StandInProbe(() => ({ ok: true, latencyMs: ms, reason: '' }));
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const a = makeSpec({ address: '10.0.0.1', intervalMs: 20, emaAlpha: 0.5 });
  scheduler.update([target(a, [0])]);
  await until(probe, 'call', () => scheduler.status()[0].samples >= 3);
  const slow = makeSpec({ ...a, intervalMs: 60_000 });
  scheduler.update([target(slow, [0])]);
  const before = scheduler.status()[0];
  assert.equal(before.emaLatencyMs, 10);

  // Another path, Host, headers and expected status: the same round trip is measured.
  ms = 30;
  sink.calls.length = 0;
  const ready = { ...slow, path: '/ready', host: 'app.test', headers: { 'x-probe': '1' }, expectedStatus: [[200, 204]] as const };
  scheduler.update([target(ready, [0])]);
  const [kept] = scheduler.status();
  assert.deepEqual([kept.key, kept.samples, kept.emaLatencyMs], [targetKey(ready), before.samples, 10], 'carried before its first result');
  assert.deepEqual(sink.calls.filter((c) => c.kind === 'latency'), [], 'nothing written until the first result');
  await sink.waitFor((c) => c.kind === 'latency');
  const [first] = sink.calls.filter((c) => c.kind === 'latency');
  assert.deepEqual([first.slots, first.emaMicros, first.samples], [[0], 20_000, before.samples + 1], 'the first result blends into the carried average');

  // keep_alive leaves the handshake out, another type measures another protocol, another port another endpoint: each starts over.
  const changes: [string, CheckSpec][] = [
    ['keep-alive', { ...ready, keepAlive: true }],
    ['type', { ...ready, keepAlive: true, type: 'tcp' }],
    ['port', { ...ready, keepAlive: true, type: 'tcp', port: 2 }],
  ];
  for (const [what, spec] of changes) {
    ms = what === 'port' ? 7 : 40;
    sink.calls.length = 0;
    scheduler.update([target(spec, [0])]);
    assert.deepEqual([scheduler.status()[0].samples, scheduler.status()[0].emaLatencyMs], [0, null], `${what}: no samples before the first result`);
    await sink.waitFor((c) => c.kind === 'latency');
    const [restart] = sink.calls.filter((c) => c.kind === 'latency');
    assert.deepEqual([restart.emaMicros, restart.samples], [ms * 1000, 1], `${what}: the average starts at the first sample`);
  }
});

test('a changed check of servers whose old checks measured the same round trip takes the average with the most samples', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.9' ? 'hang' : { ok: true, latencyMs: 5, reason: '' }));
  const { scheduler } = newScheduler(t, probe, NO_JITTER);
  // Two checks of one endpoint (different paths per region); one has run more often.
  const often = makeSpec({ address: '10.0.0.1', intervalMs: 20, path: '/a' });
  const rarely = makeSpec({ address: '10.0.0.1', intervalMs: 60_000, path: '/b' });
  scheduler.update([target(often, [0]), target(rarely, [1])]);
  await until(probe, 'call', () => scheduler.status()[0].samples >= 4);
  scheduler.update([target({ ...often, intervalMs: 60_000 }, [0]), target(rarely, [1])]);
  const samplesOf = (path: string): number => scheduler.status().find((s) => s.key.includes(`"${path}"`))!.samples;
  const most = samplesOf('/a');
  assert.ok(samplesOf('/b') < most, `${samplesOf('/b')} samples of /b, ${most} of /a`);
  // Listed first, the slot of the rarely run check does not decide.
  scheduler.update([target(makeSpec({ address: '10.0.0.1', intervalMs: 60_000, path: '/c' }), [1, 0])]);
  assert.equal(samplesOf('/c'), most);
  // A check of another endpoint over the same slots takes nothing.
  scheduler.update([target(makeSpec({ address: '10.0.0.9', intervalMs: 60_000 }), [0, 1])]);
  assert.deepEqual([scheduler.status()[0].samples, scheduler.status()[0].emaLatencyMs], [0, null]);
});

test('a changed check shared by servers with different verdicts takes unhealthy; servers new to it wait for its first result', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.9' ? 'hang' : address === '10.0.0.2' ? fail('status 503') : OK));
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const a = makeSpec({ address: '10.0.0.1', intervalMs: 60_000 });
  const b = makeSpec({ address: '10.0.0.2', intervalMs: 60_000 });
  scheduler.update([target(a, [0]), target(b, [1]), target(makeSpec({ address: '10.0.0.3', type: 'none' }), [2])]);
  await scheduler.firstRound();
  sink.calls.length = 0;

  // Slots 0 (healthy) and 1 (unhealthy) now share one check: not answered on the other's word.
  // Slot 2 was unchecked (answered) and slot 5 is a new server; both now share another check.
  const shared = makeSpec({ address: '10.0.0.9', intervalMs: 60_000 });
  const other = makeSpec({ address: '10.0.0.9', port: 2, intervalMs: 60_000 });
  scheduler.update([target(shared, [0, 1]), target(other, [2, 5])]);
  const [mixed, fromUnchecked] = scheduler.status();
  assert.equal(mixed.state, 'unhealthy');
  assert.deepEqual(sink.health(), [[[0, 1], HEALTH_UNHEALTHY]], 'only the mixed check writes a verdict');
  assert.equal(fromUnchecked.state, 'healthy', 'an unchecked server stays answered until its new check has a result');
  assert.equal(scheduler.unknownCount, 0);

  sink.calls.length = 0;
  await until(probe, 'call', () => probe.callsOf('10.0.0.9') === 2);
  probe.releaseAll();
  await sink.waitFor((c) => c.kind === 'health' && c.slots.includes(5));
  assert.deepEqual(
    sink.health().sort((x, y) => x[0][0] - y[0][0]),
    [
      [[0, 1], HEALTH_HEALTHY],
      [[2, 5], HEALTH_HEALTHY],
    ],
  );
});

test('update() stops removed targets: their probe in flight is aborted, nothing more is probed or reported', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.2' ? 'hang' : OK));
  const { scheduler, sink } = newScheduler(t, probe, NO_JITTER);
  const keep = makeSpec({ address: '10.0.0.1', intervalMs: 10 });
  const drop = makeSpec({ address: '10.0.0.2', intervalMs: 10 });
  scheduler.update([target(keep, [0]), target(drop, [1])]);
  await until(probe, 'call', () => probe.callsOf('10.0.0.2') === 1 && probe.callsOf('10.0.0.1') >= 2);
  scheduler.update([target(keep, [0])]);
  assert.equal(probe.calls.find((c) => c.address === '10.0.0.2')?.handle.aborted, true);
  probe.releaseAll(); // nothing left to release: the abort settled it
  const keptCalls = probe.callsOf('10.0.0.1');
  await until(probe, 'call', () => probe.callsOf('10.0.0.1') >= keptCalls + 5);
  assert.equal(probe.callsOf('10.0.0.2'), 1);
  assert.ok(sink.calls.every((c) => !c.slots.includes(1)), 'nothing reported for the removed target');
  assert.deepEqual(scheduler.status().map((s) => s.key), [targetKey(keep)]);
});

test('firstRound() gives up after the longest timeout and marks targets without a result unhealthy', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.2' ? 'hang' : OK));
  const { scheduler, sink, records } = newScheduler(t, probe);
  const t0 = performance.now();
  scheduler.update([
    target(makeSpec({ address: '10.0.0.1', intervalMs: 60_000, timeoutMs: 100 }), [0]),
    target(makeSpec({ address: '10.0.0.2', intervalMs: 60_000, timeoutMs: 150 }), [1]),
  ]);
  await scheduler.firstRound();
  const elapsed = performance.now() - t0;
  // First probes start within 1 s; then the 150 ms timeout and the grace period.
  assert.ok(elapsed < 1000 + 150 + FIRST_ROUND_GRACE_MS + 200, `took ${elapsed} ms`);
  assert.deepEqual(scheduler.status().map((s) => [s.state, s.lastError]), [['healthy', null], ['unhealthy', NO_FIRST_RESULT]]);
  assert.deepEqual(sink.health().find((h) => h[0][0] === 1), [[1], HEALTH_UNHEALTHY]);
  const down = records.filter((r) => r.msg === 'server down');
  assert.equal(down.length, 1);
  assert.equal(down[0].reason, NO_FIRST_RESULT);
});

test('targets added while firstRound() is pending extend its deadline, and unknownCount counts down to 0', async (t) => {
  const probe = new StandInProbe((address) => (address === '10.0.0.2' ? 'hang' : OK));
  const { scheduler } = newScheduler(t, probe, NO_JITTER);
  const t0 = performance.now();
  // Both first probes start at 500 ms (random() = 0.5): A's own deadline would be 500 + 100 + 250 ms.
  scheduler.update([target(makeSpec({ address: '10.0.0.1', intervalMs: 60_000, timeoutMs: 100 }), [0])]);
  const round = scheduler.firstRound();
  scheduler.update([
    target(makeSpec({ address: '10.0.0.1', intervalMs: 60_000, timeoutMs: 100 }), [0]),
    target(makeSpec({ address: '10.0.0.2', intervalMs: 60_000, timeoutMs: 1000 }), [1]),
  ]);
  assert.equal(scheduler.unknownCount, 2);
  await round;
  const elapsed = performance.now() - t0;
  assert.ok(elapsed > 500 + 1000, `resolved after ${elapsed} ms, before the added target's timeout`);
  assert.equal(scheduler.unknownCount, 0);
  assert.deepEqual(scheduler.status().map((s) => s.state), ['healthy', 'unhealthy']);
});

test('firstRound() resolves at once when there is nothing to wait for', async (t) => {
  const { scheduler } = newScheduler(t, new StandInProbe());
  await scheduler.firstRound();
  scheduler.update([target(makeSpec({ type: 'none' }), [0])]);
  await scheduler.firstRound();
});

test('stop() aborts probes in flight, and nothing is reported or probed after it', async (t) => {
  const probe = new StandInProbe(() => 'hang');
  const { scheduler, sink } = newScheduler(t, probe);
  scheduler.update([target(makeSpec({ address: '10.0.0.1', intervalMs: 10 }), [0])]);
  await until(probe, 'call', () => probe.calls.length === 1);
  const handle = probe.calls[0].handle;
  assert.equal(handle.aborted, false);
  const round = scheduler.firstRound();
  scheduler.stop();
  assert.equal(handle.aborted, true);
  await round; // a pending firstRound() settles on stop()
  probe.releaseAll();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sink.calls, []);
  assert.equal(probe.calls.length, 1);
  scheduler.update([target(makeSpec({ address: '10.0.0.3' }), [1])]);
  assert.equal(scheduler.status().length, 1, 'update() after stop() does nothing');
});

// ── real servers, logs ────────────────────────────────────────────────────

test('a real HTTP server that fails and recovers: each transition is logged once, with its reason, and counted', async (t) => {
  let status = 200;
  const seen = new EventEmitter();
  let requests = 0;
  const server = http.createServer((_req, res) => {
    requests++;
    res.statusCode = status;
    res.end();
    seen.emit('request');
  });
  const port = await listen(t, server);
  const { scheduler, sink, records } = newScheduler(t, null);
  const spec = makeSpec({ port, intervalMs: 15, failureThreshold: 3, successThreshold: 2 });
  scheduler.update([target(spec, [0], ['eu/127.0.0.1:' + port])]);
  await scheduler.firstRound();
  assert.equal(scheduler.status()[0].state, 'healthy');

  status = 503;
  await sink.waitFor((c) => c.kind === 'health' && c.state === HEALTH_UNHEALTHY);
  const atDown = requests;
  await until(seen, 'request', () => requests >= atDown + 3); // more failures: no more lines
  status = 200;
  await sink.waitFor((c) => c.kind === 'health' && c.state === HEALTH_HEALTHY && sink.health().length === 3);
  const atUp = requests;
  await until(seen, 'request', () => requests >= atUp + 3);

  const transitions = records.filter((r) => r.msg === 'server down' || r.msg === 'server up');
  assert.deepEqual(
    transitions.map((r) => [r.level, r.msg, r.from, r.to, r.reason, r.check, r.component]),
    [
      ['debug', 'server up', 'unknown', 'healthy', 'ok', 'http', 'health'],
      ['warn', 'server down', 'healthy', 'unhealthy', 'status 503', 'http', 'health'],
      ['info', 'server up', 'unhealthy', 'healthy', '2 successes in a row', 'http', 'health'],
    ],
  );
  assert.deepEqual(transitions[1].servers, [`eu/127.0.0.1:${port}`]);
  assert.deepEqual(scheduler.counters.transitions_total, { healthy: 2, unhealthy: 1, unchecked: 0 });
  assert.equal(scheduler.status()[0].transitions, 3);
});

test('a logger that already has the health component binding is used as is, so lines carry the key once', async (t) => {
  const { logger, records, lines } = captureLogger();
  const probe = new StandInProbe(() => fail('refused'));
  const scheduler = new HealthScheduler({ sink: new RecordingSink(), logger: logger.child({ component: 'health' }), probe: probe.probe });
  t.after(() => scheduler.stop());
  scheduler.update([target(makeSpec({ address: '10.0.0.1', intervalMs: 60_000 }), [0])]);
  await scheduler.firstRound();
  assert.equal(records.find((r) => r.msg === 'server down')?.component, 'health');
  const raw = lines.find((l) => l.includes('"server down"')) ?? '';
  assert.equal(raw.split('"component"').length - 1, 1, raw);
});

test('a real TCP server that is stopped and started again goes down with "refused" and comes back', async (t) => {
  const server = net.createServer((s) => s.end());
  const port = await listen(t, server);
  const { scheduler, sink, records } = newScheduler(t, null);
  scheduler.update([target(makeSpec({ type: 'tcp', port, intervalMs: 15, failureThreshold: 2, successThreshold: 2 }), [0])]);
  await scheduler.firstRound();
  assert.equal(scheduler.status()[0].state, 'healthy');
  server.close();
  await once(server, 'close');
  await sink.waitFor((c) => c.kind === 'health' && c.state === HEALTH_UNHEALTHY);
  assert.equal(records.find((r) => r.msg === 'server down')?.reason, 'refused');
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  await sink.waitFor((c) => c.kind === 'health' && c.state === HEALTH_HEALTHY && sink.health().length === 3);
  assert.equal(scheduler.status()[0].state, 'healthy');
});

test('a round trip measured across a block of the checker (a big publish) keeps the verdict but stays out of the latency average', async (t) => {
  // The backend is another process, so it answers during the block; the reply waits in the socket.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', "const s = require('node:http').createServer((q, r) => r.end('ok')); s.listen(0, '127.0.0.1', () => console.log(s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const spec = makeSpec({ port: Number(String(line).trim()), intervalMs: 100, timeoutMs: 3000, successThreshold: 1, failureThreshold: 1, emaAlpha: 1 });
  const sink = new RecordingSink();
  const results: ProbeResult[] = [];
  let starts = 0;
  // The real startProbe; the 4th probe is followed by a real 1.5 s block of this thread while it is in flight.
  const probe: ProbeStarter = (s, kept, onDone, context) => {
    const handle = startProbe(s, kept, (c, r) => {
      results.push(r);
      onDone(c, r);
    }, context);
    if (++starts === 4) {
      const until = performance.now() + 1500;
      while (performance.now() < until);
    }
    return handle;
  };
  const scheduler = new HealthScheduler({ sink, logger: captureLogger().logger, probe });
  t.after(() => scheduler.stop());
  scheduler.update([target(spec, [0])]);
  await until(sink, 'call', () => results.length >= 7, 10_000);
  // ema_alpha 1: the average is the last sample; not once did it take the block.
  const latencies = sink.calls.filter((c) => c.kind === 'latency').map((c) => (c as { emaMicros: number }).emaMicros);
  assert.ok(latencies.length >= 5 && latencies.every((us) => us < 1_000_000), `averages (µs): ${latencies}`);
  const blocked = results[3];
  assert.deepEqual([blocked.ok, blocked.stalled], [true, true]);
  assert.ok(blocked.latencyMs >= 1500, `the blocked probe measured the block: ${blocked.latencyMs} ms`);
  assert.equal(scheduler.stalledSamples >= 1, true);
  // Every probe counted for the verdict: healthy, never down.
  assert.deepEqual(sink.health().map(([, state]) => state), [HEALTH_HEALTHY]);
  assert.equal(scheduler.status()[0].samples, results.filter((r) => r.stalled !== true).length);
});
