// Health-check metrics from a real overwatch probing a real HTTP backend on
// loopback: every probe result is counted per server through the scheduler's
// observer, the per-server gauges follow the verdicts, and a server removed
// by a reload leaves no series behind.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { httpBackend } from '../helpers/backends.ts';
import { scrape, type Exposition } from './scrape.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

const yaml = (servers: string): string => `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: web
    servers: [${servers}]
    health_check: { type: http, interval: 1000ms, timeout: 300ms, failure_threshold: 2, success_threshold: 1 }
domains:
  - { name: app.example.test, regions: [web] }
logging: { level: error }
`;

/** Scrapes every 100 ms until `ok` holds; fails after `limitMs`. */
async function until(port: number, ok: (m: Exposition) => boolean, limitMs: number, what: string): Promise<Exposition> {
  const started = Date.now();
  for (;;) {
    const m = await scrape(port);
    if (ok(m)) return m;
    if (Date.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('counts every health-check result per server, follows the verdicts in the gauges, and drops series of removed servers', async (t) => {
  const a = await httpBackend(t);
  const b = await httpBackend(t);
  const metrics = createMetrics({ version: 't', loadedAtMs: Date.now(), processMetrics: false });
  const config = parseConfigText(yaml(`{ address: ${a.address}, port: ${a.port} }, { address: ${b.address}, port: ${b.port} }`), 'health.yaml');
  const overwatch = await Overwatch.start(config, quiet, { healthChecks: 'run', onCheck: metrics.onCheck });
  metrics.attach(overwatch);
  const listener = await startMetricsServer(metrics.registry, '127.0.0.1', 0, quiet);
  t.after(async () => {
    await listener.close();
    metrics.close();
    await overwatch.stop(200);
  });
  const labelsA = { region: 'web', server: `${a.address}:${a.port}` };
  const labelsB = { region: 'web', server: `${b.address}:${b.port}` };

  // The first round ran before DNS started: one success each, already counted.
  const first = await scrape(listener.port);
  assert.ok((first.value('opengslb_health_check_results_total', { ...labelsA, result: 'success' }) ?? 0) >= 1);
  // Both results from a server's first check, so increase() over its first failure sees it.
  assert.equal(first.value('opengslb_health_check_results_total', { ...labelsA, result: 'failure' }), 0);
  assert.ok((first.value('opengslb_health_check_duration_seconds_count', { region: 'web' }) ?? 0) >= 2);
  assert.equal(first.value('opengslb_server_healthy', labelsA), 1);
  assert.equal(first.value('opengslb_healthy_servers', { region: 'web' }), 2);
  assert.ok((first.value('opengslb_server_latency_samples', labelsA) ?? 0) >= 1);
  const latency = first.value('opengslb_server_latency_seconds', labelsA) as number;
  assert.ok(latency > 0 && latency < 0.3, `latency EMA ${latency} s`);

  // The backend starts failing: failures are counted, and after two the server is down.
  b.status = 503;
  const down = await until(
    listener.port,
    (m) => m.value('opengslb_server_healthy', labelsB) === 0,
    // failure_threshold 2: up to two intervals (plus jitter and the timeout) after the change, with room for a loaded machine.
    6000,
    'server b marked unhealthy',
  );
  assert.ok((down.value('opengslb_health_check_results_total', { ...labelsB, result: 'failure' }) ?? 0) >= 2);
  assert.equal(down.value('opengslb_healthy_servers', { region: 'web' }), 1);
  // The first round made both healthy; b's failure is one transition to unhealthy.
  assert.equal(down.value('opengslb_health_transitions_total', { to: 'healthy' }), 2);
  assert.equal(down.value('opengslb_health_transitions_total', { to: 'unhealthy' }), 1);
  // a keeps being checked meanwhile (its next round may come a moment after b's second failure on a loaded machine).
  const kept = await until(listener.port, (m) => (m.value('opengslb_health_check_results_total', { ...labelsA, result: 'success' }) ?? 0) >= 2, 6000, 'a checked again');
  const successesA = kept.value('opengslb_health_check_results_total', { ...labelsA, result: 'success' }) as number;
  assert.ok(successesA >= 2, `a kept being checked: ${successesA} successes`);

  // A reload without b: its series go away, a's stay.
  const result = await overwatch.reload(parseConfigText(yaml(`{ address: ${a.address}, port: ${a.port} }`), 'health.yaml'));
  assert.ok(result.ok, result.message);
  const after = await scrape(listener.port);
  assert.equal(after.value('opengslb_health_check_results_total', { ...labelsB, result: 'failure' }), undefined);
  assert.equal(after.value('opengslb_server_healthy', labelsB), undefined);
  assert.ok((after.value('opengslb_health_check_results_total', { ...labelsA, result: 'success' }) ?? 0) >= successesA);
  assert.equal(after.value('opengslb_configured_servers'), 1);
});

test('drops the health-check counts of a removed server on the fold timer, without any scrape', async (t) => {
  const a = await httpBackend(t);
  const b = await httpBackend(t);
  const metrics = createMetrics({ version: 't', loadedAtMs: Date.now(), processMetrics: false, foldIntervalMs: 200 });
  const config = parseConfigText(yaml(`{ address: ${a.address}, port: ${a.port} }, { address: ${b.address}, port: ${b.port} }`), 'health.yaml');
  const overwatch = await Overwatch.start(config, quiet, { healthChecks: 'run', onCheck: metrics.onCheck });
  metrics.attach(overwatch);
  t.after(async () => {
    metrics.close();
    await overwatch.stop(200);
  });
  // The first round ran before DNS started: both servers' counts are held.
  const held = (): number => metrics.checkedServers;
  assert.equal(held(), 2);
  const result = await overwatch.reload(parseConfigText(yaml(`{ address: ${a.address}, port: ${a.port} }`), 'health.yaml'));
  assert.ok(result.ok, result.message);
  // Nothing scrapes: only the fold timer (200 ms here, a minute by default) can let b go.
  const started = Date.now();
  while (held() !== 1) {
    assert.ok(Date.now() - started < 3000, `b's counts still held after ${Date.now() - started} ms without a scrape`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(held(), 1);
});
