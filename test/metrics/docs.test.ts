// docs/metrics.md against what GET /metrics serves: the Prometheus table
// lists exactly the opengslb_* families of a real scrape, with their types,
// every name follows STYLE.md §5, and Node's process metrics are the
// unprefixed standard ones the page promises.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import { ROOT } from '../helpers/markdown.ts';
import { scrape } from './scrape.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

/** Rows of the Markdown table that follows `heading`: metric name (first cell, backticked) → type (second cell). */
function documented(markdown: string, heading: string): Map<string, string> {
  const lines = markdown.split('\n');
  let i = lines.indexOf(heading);
  assert.ok(i >= 0, `docs/metrics.md has the heading "${heading}"`);
  while (i < lines.length && !lines[i].startsWith('|')) i++;
  const rows = new Map<string, string>();
  for (i += 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const cells = lines[i].split('|').map((c) => c.trim());
    const name = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[1]);
    assert.ok(name !== null, `first cell of a metric row is one backticked name: ${lines[i]}`);
    assert.ok(!rows.has(name[1]), `${name[1]} is documented once`);
    rows.set(name[1], cells[2]);
  }
  return rows;
}

test('docs/metrics.md lists exactly the opengslb_* metrics /metrics serves, each with its type', async (t) => {
  const metrics = createMetrics({ version: 'docs', loadedAtMs: Date.now() });
  const listener = await startMetricsServer(metrics.registry, '127.0.0.1', 0, quiet);
  t.after(async () => {
    await listener.close();
    metrics.close();
  });
  const served = (await scrape(listener.port)).types;
  const ours = new Map([...served].filter(([name]) => name.startsWith('opengslb_')));
  const docs = documented(await readFile(`${ROOT}docs/metrics.md`, 'utf8'), '## Prometheus metrics');
  assert.deepEqual([...docs.keys()].filter((n) => !ours.has(n)), [], 'documented but not served');
  assert.deepEqual([...ours.keys()].filter((n) => !docs.has(n)), [], 'served but not documented');
  for (const [name, type] of ours) assert.equal(docs.get(name), type, `type of ${name}`);
  // Everything else is Node's standard process metrics, unprefixed.
  const others = [...served.keys()].filter((n) => !n.startsWith('opengslb_'));
  assert.ok(others.includes('process_cpu_seconds_total') && others.includes('nodejs_eventloop_lag_seconds'));
  assert.deepEqual(others.filter((n) => !/^(process|nodejs)_/.test(n)), []);
});

/** The label names of a Labels cell: its backticked names outside parentheses ("`type`, `rcode`", "`transport` (`udp`, `tcp`)"); none for "—". */
function labelNames(cell: string): string[] {
  let outside = '';
  let depth = 0;
  for (const c of cell) {
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0) outside += c;
  }
  return [...outside.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).sort();
}

test('docs/metrics.md gives each opengslb_* metric the label names it has', async () => {
  const metrics = createMetrics({ version: 'docs', loadedAtMs: 0, processMetrics: false });
  const declared = metrics.registry.getMetricsAsArray().map((m) => [m.name, [...((m as unknown as { labelNames?: string[] }).labelNames ?? [])].sort()] as const);
  metrics.close();
  const lines = (await readFile(`${ROOT}docs/metrics.md`, 'utf8')).split('\n');
  const cells = new Map<string, string>();
  for (const line of lines.slice(lines.indexOf('## Prometheus metrics'), lines.indexOf('### Compared with the Go original'))) {
    const row = /^\| `(opengslb_[a-z0-9_]+)` \| \w+ \| (.*?) \| /.exec(line);
    if (row !== null) cells.set(row[1], row[2]);
  }
  assert.ok(declared.length >= 60 && cells.size >= 60, `${declared.length} metrics, ${cells.size} rows`);
  for (const [name, labels] of declared) {
    const cell = cells.get(name);
    assert.ok(cell !== undefined, `no row for ${name}`);
    assert.deepEqual(labelNames(cell), labels, `labels of ${name}: the row says ${cell}`);
  }
});

test('every opengslb_* name follows opengslb_<subsystem>_<name>_<unit>: counters end in _total, nothing else does', async () => {
  const metrics = createMetrics({ version: 'docs', loadedAtMs: 0, processMetrics: false });
  const json = await metrics.registry.getMetricsAsJSON();
  metrics.close();
  for (const m of json) {
    assert.match(m.name, /^opengslb_[a-z0-9]+(_[a-z0-9]+)+$/);
    assert.equal(m.name.endsWith('_total'), String(m.type) === 'counter', `${m.name} is a ${m.type}`);
    if (m.name.includes('duration') || m.name.includes('latency_seconds') || m.name.includes('timestamp')) assert.match(m.name, /_seconds$/);
  }
});

test('docs/metrics.md lists exactly the opengslb_* metrics an agent\'s /metrics serves, each with its type', async (t) => {
  const { createAgentMetrics } = await import('../../src/agent/metrics.ts');
  // A stand-in agent: one backend, one overwatch; the metrics read only status().
  const status = {
    agentId: 'eu-0123456789ab',
    region: 'eu',
    registered: true,
    backends: [{ service: 'app.example.test', address: '192.0.2.1', port: 80, health: 'healthy' as const, drain: null, checksOk: 3, checksFailed: 1 }],
    nodes: [{ node: { host: '127.0.0.1', port: 7946 }, state: 'up' as const, failures: 0, queued: 0, lastAckMs: 1, registered: true, lastError: null, notice: null }],
    sent: { register: 1, heartbeat: 4, health_update: 0, deregister: 0 },
    sender: { udpSent: 4, tcpSent: 1, busSent: 0, acked: 1, refused: 0, failures: 0, queueDrops: 0 },
    predictive: { cpuPercent: 12.5, memoryPercent: 40, errorRatePerMin: [1], drains: [null] },
  };
  const registry = createAgentMetrics({ status: () => status }, { version: 'docs' });
  const listener = await startMetricsServer(registry, '127.0.0.1', 0, quiet);
  t.after(() => listener.close());
  const served = (await scrape(listener.port)).types;
  const ours = new Map([...served].filter(([name]) => name.startsWith('opengslb_')));
  const docs = documented(await readFile(`${ROOT}docs/metrics.md`, 'utf8'), '## Agent mode metrics');
  assert.deepEqual([...docs.keys()].filter((n) => !ours.has(n)), [], 'documented but not served');
  assert.deepEqual([...ours.keys()].filter((n) => !docs.has(n)), [], 'served but not documented');
  for (const [name, type] of ours) assert.equal(docs.get(name), type, `type of ${name}`);
  for (const m of await registry.getMetricsAsJSON()) {
    if (!m.name.startsWith('opengslb_')) continue;
    assert.match(m.name, /^opengslb_[a-z0-9]+(_[a-z0-9]+)+$/);
    assert.equal(m.name.endsWith('_total'), String(m.type) === 'counter', `${m.name} is a ${m.type}`);
  }
});
