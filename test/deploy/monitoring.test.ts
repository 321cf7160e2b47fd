// deploy/prometheus/alerts.yaml and deploy/grafana/opengslb.json: promtool
// (Debian package prometheus; only the tool runs, never the service) checks
// the rules and runs their unit tests (alerts.test.yaml, and
// alerts.days.test.yaml for the alerts that span days, evaluated hourly so
// that promtool does not spend ~10 s stepping through 8 days a minute at a
// time); every alert has one, and links a
// runbook section that exists; and every metric the alerts and the dashboard
// query is one a real `opengslb` serves on /metrics (an agent's for the
// agent alert), _bucket/_sum/_count of its histograms included.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { createAgentMetrics } from '../../src/agent/metrics.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import { startOpengslb } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ROOT } from '../helpers/markdown.ts';
import { parseExposition } from '../metrics/scrape.ts';

const ALERTS = join(ROOT, 'deploy/prometheus/alerts.yaml');
/** promtool's unit-test files: every rule is evaluated every evaluation_interval up to the last eval_time, so tests over days have a file (and an interval) of their own. */
const ALERT_TEST_FILES = ['alerts.test.yaml', 'alerts.days.test.yaml'];
const DASHBOARD = join(ROOT, 'deploy/grafana/opengslb.json');

const NO_PROMTOOL = spawnSync('promtool', ['--version']).status === 0 ? false : 'promtool is not installed (Debian package prometheus; .ci/run installs it): the alert rules were not checked';

/** Runs promtool without blocking the event loop; resolves with its exit status and output (never rejects). */
function promtool(args: readonly string[], cwd = ROOT): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr: err !== null && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr });
    });
  });
}

// Both promtool runs start now and go on while the other tests run (the real opengslb of the metrics test starts meanwhile); their tests, last in this file, wait for them.
const ruleCheck = NO_PROMTOOL === false ? promtool(['check', 'rules', ALERTS]) : null;
const unitTests = NO_PROMTOOL === false ? promtool(['test', 'rules', ...ALERT_TEST_FILES], join(ROOT, 'deploy/prometheus')) : null;

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
const rules: Rule[] = (parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

interface Panel {
  readonly title: string;
  readonly type: string;
  readonly targets?: { readonly expr: string }[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; title: string; uid: string };

/** Metric names a PromQL expression selects: identifiers followed by a selector `{`, a range `[`, or standing alone as a series. */
function metricsOf(expr: string): string[] {
  // Drop strings (label values), then keep identifiers that are not PromQL keywords or functions (those are followed by `(`) or label names (followed by `=`, `!`, `~` or in `by (...)`).
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const out = new Set<string>();
  for (const m of bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*[(=!~])/g)) {
    const name = m[1];
    if (/^(and|or|unless|bool|offset|inf|nan)$/i.test(name) || /^\d/.test(name)) continue;
    // Inside a selector, `name="x"` was skipped above; a bare name in braces cannot occur after stripping values.
    out.add(name);
  }
  return [...out];
}

test('every alert has a unit test in which it fires, a severity, a summary, a description and a runbook section that exists', () => {
  const tests = ALERT_TEST_FILES.flatMap((f) => (parseYaml(readFileSync(join(ROOT, 'deploy/prometheus', f), 'utf8')) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests);
  const fired = new Set(tests.flatMap((t) => t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname));
  const quiet = new Set(tests.flatMap((t) => t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length === 0).map((a) => a.alertname));
  assert.ok(rules.length >= 12, `${rules.length} alerts`);
  for (const r of rules) {
    assert.ok(fired.has(r.alert), `${r.alert}: a unit test where it fires`);
    assert.ok(quiet.has(r.alert), `${r.alert}: a unit test where it does not`);
    assert.match(r.labels?.severity ?? '', /^(critical|warning|info)$/, `${r.alert}: severity`);
    assert.ok((r.annotations?.summary ?? '').length > 10, `${r.alert}: summary`);
    assert.ok((r.annotations?.description ?? '').length > 20, `${r.alert}: description`);
    const url = r.annotations?.runbook_url ?? '';
    const m = /^(docs\/runbooks\/[a-z0-9-]+\.md)#([a-z0-9-]+)$/.exec(url);
    assert.ok(m, `${r.alert}: runbook_url ${url} is docs/runbooks/PAGE.md#section`);
    const page = readFileSync(join(ROOT, m[1]), 'utf8');
    const anchors = [...page.matchAll(/^#{1,4} (.+)$/gm)].map((h) => slug(h[1]));
    assert.ok(anchors.includes(m[2]), `${r.alert}: ${m[1]} has a heading #${m[2]} (has: ${anchors.join(', ')})`);
  }
});

test('the Grafana dashboard is an importable dashboard with the panels the issue asks for', () => {
  assert.equal(dashboard.title, 'OpenGSLB');
  assert.equal(dashboard.uid, 'opengslb');
  const titles = dashboard.panels.map((p) => p.title.toLowerCase());
  for (const want of ['by rcode', 'by query type', 'quantiles', 'healthy servers by region', 'overrides', 'reloads', 'worker restarts', 'agents by state', 'key age']) {
    assert.ok(titles.some((t) => t.includes(want)), `a panel about "${want}"`);
  }
  for (const p of dashboard.panels) {
    if (p.type === 'row') continue;
    assert.ok((p.targets ?? []).length > 0 && p.targets!.every((t) => t.expr.length > 0), `${p.title}: queries`);
  }
});

test('every metric the alerts and the dashboard query is one /metrics of a real opengslb (or of an agent) serves', async (t) => {
  const dir = await tempDir(t, 'opengslb-monitoring-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu] }
metrics: { enabled: true, address: "127.0.0.1:0" }
overwatch: { data_dir: ./state }
logging: { level: info }
`);
  const server = await startOpengslb(t, file);
  const line = await server.out.waitFor(/metrics listening/);
  const address = (/"address":"(127\.0\.0\.1:\d+)"/.exec(line) ?? /address=(127\.0\.0\.1:\d+)/.exec(line))?.[1];
  assert.ok(address, line);
  const served = names(await (await fetch(`http://${address}/metrics`)).text());

  // The agent's families come from its own registry, served the same way (the alert on agents reads an agent's /metrics).
  const status = { agentId: 'eu-0123456789ab', region: 'eu', registered: true, backends: [], nodes: [], sent: { register: 0, heartbeat: 0, health_update: 0, deregister: 0 }, sender: { udpSent: 0, tcpSent: 0, busSent: 0, acked: 0, refused: 0, failures: 0, queueDrops: 0 }, predictive: { cpuPercent: null, memoryPercent: null, errorRatePerMin: [], drains: [] } };
  const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
  const listener = await startMetricsServer(createAgentMetrics({ status: () => status } as never, { version: 'test', processMetrics: false }), '127.0.0.1', 0, quiet);
  t.after(() => listener.close());
  const agentServed = names(await (await fetch(`http://127.0.0.1:${listener.port}/metrics`)).text());

  const used = new Map<string, string>();
  for (const r of rules) for (const n of metricsOf(r.expr)) used.set(n, `alert ${r.alert}`);
  for (const p of dashboard.panels) for (const target of p.targets ?? []) for (const n of metricsOf(target.expr)) used.set(n, `panel "${p.title}"`);
  assert.ok(used.size >= 25, `${used.size} metrics used`);
  const unknown: string[] = [];
  for (const [name, where] of used) {
    if (name === 'up') continue; // Prometheus' own series per scrape target.
    if (!served.has(name) && !agentServed.has(name)) unknown.push(`${name} (${where})`);
  }
  assert.deepEqual(unknown, [], 'metrics no /metrics serves');
});

test('promtool check rules accepts deploy/prometheus/alerts.yaml', { skip: NO_PROMTOOL }, async () => {
  const r = await ruleCheck!;
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

test('promtool test rules passes the unit tests of deploy/prometheus/alerts.test.yaml and alerts.days.test.yaml', { skip: NO_PROMTOOL }, async () => {
  const r = await unitTests!;
  assert.equal(r.status, 0, r.stdout + r.stderr);
  // One SUCCESS per file: promtool says so for each it ran.
  assert.equal(r.stdout.match(/SUCCESS/g)?.length, ALERT_TEST_FILES.length, r.stdout);
});

/** Every series name an exposition can have: each family, and _bucket/_sum/_count of histograms (and _sum/_count of summaries). */
function names(text: string): Set<string> {
  const out = new Set<string>();
  for (const [family, type] of parseExposition(text).types) {
    out.add(family);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(family + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(family + s);
  }
  return out;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}
