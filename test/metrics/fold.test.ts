// Folding the workers' 32-bit counter words into running totals: across the
// 2^32 wrap, per worker, through a replaced routing-decision buffer, and all
// the way out of GET /metrics. Real SharedArrayBuffers, written the way the
// workers write them; the overwatch is a small hand-written stand-in.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import {
  COUNTER, COUNTER_STRIDE, createCounters, createDecisionCounters, decisionCapacityFor, DurationRecorder, HIST_BASE, HIST_BOUNDS_US,
  HIST_BUCKETS, HIST_SUM, HIST_WORDS, matrixSlot, TRANSPORT_TCP, TYPE_NONE, typeIndexOf,
} from '../../src/metrics/counters-layout.ts';
import { DecisionFolder, WrapFolder } from '../../src/metrics/fold.ts';
import { createMetrics, type OverwatchSource } from '../../src/metrics/prometheus.ts';
import { parseExposition } from './scrape.ts';

const NEAR_WRAP = 0xffff_fff0; // 2^32 - 16

/** Stores a raw uint32 the way Atomics.add leaves it after wrapping. */
function put(counters: Int32Array, word: number, value: number): void {
  Atomics.store(counters, word, value | 0);
}

test('folds a word across the 2^32 wrap into a total above 2^32', () => {
  const counters = createCounters(2);
  const fold = new WrapFolder(COUNTER_STRIDE, 2);
  put(counters, COUNTER.UDP_QUERIES, NEAR_WRAP);
  fold.fold(0, counters, 0);
  assert.equal(fold.totals[COUNTER.UDP_QUERIES], NEAR_WRAP);
  // 48 more queries: the word wrapped to 32.
  put(counters, COUNTER.UDP_QUERIES, 32);
  fold.fold(0, counters, 0);
  assert.equal(fold.totals[COUNTER.UDP_QUERIES], 2 ** 32 + 32);
  // It wraps again: another 2^32 - 32 + 5.
  put(counters, COUNTER.UDP_QUERIES, NEAR_WRAP);
  fold.fold(0, counters, 0);
  put(counters, COUNTER.UDP_QUERIES, 5);
  fold.fold(0, counters, 0);
  assert.equal(fold.totals[COUNTER.UDP_QUERIES], 2 * 2 ** 32 + 5);
});

test('keeps each worker\'s last reading apart, so one worker\'s wrap does not disturb another\'s count', () => {
  const counters = createCounters(2);
  const fold = new WrapFolder(COUNTER_STRIDE, 2);
  put(counters, COUNTER.UDP_QUERIES, NEAR_WRAP);
  put(counters, COUNTER_STRIDE + COUNTER.UDP_QUERIES, 100);
  for (let w = 0; w < 2; w++) fold.fold(w, counters, w * COUNTER_STRIDE);
  put(counters, COUNTER.UDP_QUERIES, 4);
  put(counters, COUNTER_STRIDE + COUNTER.UDP_QUERIES, 150);
  for (let w = 0; w < 2; w++) fold.fold(w, counters, w * COUNTER_STRIDE);
  assert.equal(fold.totals[COUNTER.UDP_QUERIES], NEAR_WRAP + 20 + 150);
});

test('counts a reset worker slice from zero after restart()', () => {
  const counters = createCounters(1);
  const fold = new WrapFolder(COUNTER_STRIDE, 1);
  put(counters, COUNTER.UDP_QUERIES, 1000);
  fold.fold(0, counters, 0);
  put(counters, COUNTER.UDP_QUERIES, 0);
  fold.restart(0);
  put(counters, COUNTER.UDP_QUERIES, 7);
  fold.fold(0, counters, 0);
  assert.equal(fold.totals[COUNTER.UDP_QUERIES], 1007);
});

test('folds a replaced decision buffer one last time, then counts the new one from zero', () => {
  const fold = new DecisionFolder();
  const small = createDecisionCounters(4);
  fold.setBuffer(0, small);
  Atomics.add(small, 1, 5);
  fold.fold();
  Atomics.add(small, 1, 2); // counted by the worker after the fold, before it switched
  const big = createDecisionCounters(decisionCapacityFor(200));
  Atomics.add(big, 1, 3);
  Atomics.add(big, 150, 9);
  fold.setBuffer(0, big);
  fold.setBuffer(0, big); // the same buffer again changes nothing
  fold.fold();
  assert.equal(fold.totals[1], 10);
  assert.equal(fold.totals[150], 9);
  assert.ok(fold.totals.length >= 201);
});

test('sizes decision buffers to at least twice the ids in use, in powers of two', () => {
  assert.equal(decisionCapacityFor(0), 64);
  assert.equal(decisionCapacityFor(31), 64);
  assert.equal(decisionCapacityFor(32), 128);
  assert.equal(decisionCapacityFor(9999), 32768);
});

test('maps QTYPEs onto the bounded type label set', () => {
  assert.equal(typeIndexOf(1), 0); // A
  assert.equal(typeIndexOf(28), 7); // AAAA
  assert.equal(typeIndexOf(257), 15); // CAA
  assert.equal(typeIndexOf(99), 19); // OTHER
  assert.equal(typeIndexOf(65535), 19);
  assert.notEqual(matrixSlot(TYPE_NONE, 16), matrixSlot(TYPE_NONE, 0));
  assert.ok(matrixSlot(TYPE_NONE, 16) < HIST_BASE, 'the matrix ends before the histograms');
  assert.ok(HIST_BASE + 2 * HIST_WORDS + 16 <= COUNTER_STRIDE, '64 bytes of padding between workers');
  assert.equal(COUNTER_STRIDE % 16, 0);
});

test('records a reply time into its bucket and keeps the sub-microsecond rest for the sum', () => {
  // Warm up first: the first call compiles record(), which takes longer than a bucket.
  const warm = new DurationRecorder(createCounters(1), 0, TRANSPORT_TCP);
  for (let i = 0; i < 100; i++) warm.record(warm.start());
  const counters = createCounters(1);
  const rec = new DurationRecorder(counters, 0, TRANSPORT_TCP);
  const base = HIST_BASE + TRANSPORT_TCP * HIST_WORDS;
  rec.record(performance.now() - 0.0004); // 0.4 µs
  rec.record(performance.now() - 0.0004);
  rec.record(performance.now() - 0.0004);
  // Three 0.4 µs replies: the first bucket, and a sum of 1 whole µs so far (1.2 µs minus the carried 0.2 µs, give or take the clock).
  assert.equal(Atomics.load(counters, base), 3);
  assert.ok(Atomics.load(counters, base + HIST_SUM) >= 1);
  rec.record(performance.now() - 30); // 30 ms
  assert.equal(Atomics.load(counters, base + HIST_BOUNDS_US.indexOf(100_000)), 1, '30 ms lands in le=0.1');
  rec.record(performance.now() - 500); // 500 ms
  assert.equal(Atomics.load(counters, base + HIST_BUCKETS - 1), 1, '500 ms lands in +Inf');
  const sumUs = Atomics.load(counters, base + HIST_SUM);
  assert.ok(sumUs >= 530_001 && sumUs < 540_000, `sum ${sumUs} µs`);
});

test('records a batch of replies that leave together with one reading: each counted, each with the batch\'s time', () => {
  const counters = createCounters(1);
  const rec = new DurationRecorder(counters, 0, TRANSPORT_TCP);
  const base = HIST_BASE + TRANSPORT_TCP * HIST_WORDS;
  rec.recordMany(performance.now() - 30, 17); // a 30 ms batch of 17 replies
  assert.equal(Atomics.load(counters, base + HIST_BOUNDS_US.indexOf(100_000)), 17, 'all 17 in le=0.1');
  const sumUs = Atomics.load(counters, base + HIST_SUM);
  assert.ok(sumUs >= 17 * 30_000 && sumUs < 17 * 31_000, `sum ${sumUs} µs`);
  rec.recordMany(performance.now(), 0); // a batch whose packets were all dropped: nothing
  let total = 0;
  for (let b = 0; b < HIST_BUCKETS; b++) total += Atomics.load(counters, base + b);
  assert.equal(total, 17);
});

/** A stand-in overwatch over real counters; the pool is an EventEmitter like DnsPool. */
function standIn(workers: number): OverwatchSource & { pool: EventEmitter & { restarts: number; stuck: { heartbeat: number; switch: number }; workers: unknown[]; decisionCounters: (Int32Array | null)[] } } {
  const config = parseConfigText(
    `
dns: { listen_address: "127.0.0.1:0", workers: ${workers}, zones: [example.test] }
regions:
  - name: r1
    servers: [{ address: 192.0.2.1 }]
domains:
  - { name: app.example.test, regions: [r1] }
`,
    'stand-in.yaml',
  );
  const pool = Object.assign(new EventEmitter(), { restarts: 0, stuck: { heartbeat: 0, switch: 0 }, workers: Array.from({ length: workers }, () => ({})), decisionCounters: [] as (Int32Array | null)[] });
  return {
    counters: createCounters(workers),
    config,
    generation: 1,
    pool,
    serverStates: () => [],
    registry: { servers: () => [] },
    overrides: () => [],
    healthCounters: () => ({ probes_total: { ok: 0, fail: 0 }, transitions_total: { healthy: 0, unhealthy: 0, unchecked: 0 } }),
    decisionLabels: () => [{ kind: 'route', domain: 'app.example.test', algorithm: 'round-robin' }],
  };
}

test('serves totals above 2^32 out of GET /metrics text, summed over workers', async () => {
  const ow = standIn(2);
  const first = createDecisionCounters(64);
  ow.pool.decisionCounters.push(first, null);
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, overwatch: ow, processMetrics: false });
  try {
    const aNoerror = matrixSlot(typeIndexOf(1), 0);
    put(ow.counters, aNoerror, NEAR_WRAP);
    put(ow.counters, COUNTER_STRIDE + aNoerror, 10);
    put(ow.counters, HIST_BASE, NEAR_WRAP);
    put(first, 0, NEAR_WRAP);
    metrics.fold();
    put(ow.counters, aNoerror, 16); // worker 0 wrapped: +32
    put(ow.counters, HIST_BASE, 16);
    put(first, 0, 16);
    // Worker 1 posts its first buffer; worker 0 later replaces its own.
    const second = createDecisionCounters(64);
    Atomics.store(second, 0, 4);
    ow.pool.emit('decisions', 1, second);
    const replaced = createDecisionCounters(128);
    Atomics.store(replaced, 0, 1);
    ow.pool.emit('decisions', 0, replaced);
    const m = parseExposition(await metrics.registry.metrics());
    assert.equal(m.value('opengslb_dns_queries_total', { type: 'A', rcode: 'NOERROR' }), NEAR_WRAP + 32 + 10);
    assert.equal(m.value('opengslb_dns_query_duration_seconds_count', { transport: 'udp' }), NEAR_WRAP + 32);
    assert.equal(m.value('opengslb_dns_query_duration_seconds_bucket', { transport: 'udp', le: '0.000025' }), NEAR_WRAP + 32);
    assert.equal(m.value('opengslb_routing_decisions_total', { domain: 'app.example.test', algorithm: 'round-robin' }), NEAR_WRAP + 32 + 4 + 1);
  } finally {
    metrics.close();
  }
  assert.equal(ow.pool.listenerCount('decisions'), 0, 'close() stops listening to the pool');
});

test('counts health-check results per server and durations per region from the scheduler\'s observer, leaves a stalled round trip out of the durations, and never throws', async () => {
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, processMetrics: false });
  const target = {
    key: 'k',
    servers: [
      { key: 'r1|192.0.2.1|80', label: 'r1/192.0.2.1:80', region: 'r1', endpoint: '192.0.2.1:80' },
      { key: 'r2|2001:db8::1|8080', label: 'r2/[2001:db8::1]:8080', region: 'r2', endpoint: '[2001:db8::1]:8080' },
    ],
    type: 'http' as const,
  };
  metrics.onCheck(target, { ok: true, latencyMs: 12, reason: '' });
  metrics.onCheck(target, { ok: false, latencyMs: 300, reason: 'timeout' });
  metrics.onCheck(target, { ok: false, latencyMs: Number.NaN, reason: 'refused' });
  // Measured across a stall of the main thread: counted as a result and as stalled, not as a duration.
  metrics.onCheck(target, { ok: true, latencyMs: 4000, reason: '', stalled: true });
  const m = parseExposition(await metrics.registry.metrics());
  assert.equal(m.value('opengslb_health_check_results_total', { region: 'r1', server: '192.0.2.1:80', result: 'success' }), 2);
  assert.equal(m.value('opengslb_health_check_results_total', { region: 'r2', server: '[2001:db8::1]:8080', result: 'failure' }), 2);
  assert.equal(m.value('opengslb_health_check_stalled_total', {}), 1);
  assert.equal(m.value('opengslb_health_check_duration_seconds_count', { region: 'r1' }), 2);
  assert.equal(m.value('opengslb_health_check_duration_seconds_sum', { region: 'r1' }), 0.312);
  metrics.close();
});
