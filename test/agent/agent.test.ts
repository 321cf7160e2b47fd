// The agent: the process (`opengslb --mode agent`) with configs it must refuse
// at start (real child processes; the agent exits before it sends anything),
// and an agent and an overwatch in this process over the real channel on
// loopback, with the agent's clock stepping.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { Agent } from '../../src/agent/agent.ts';
import { createLogger } from '../../src/log/logger.ts';
import { httpBackend } from '../helpers/backends.ts';
import { run, SERVER } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { agentConfigFor, startAgentOverwatch } from '../helpers/agents.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

test('an agent whose file lists one backend twice refuses to start, naming both entries (every overwatch would drop its registration as invalid_message, for ever)', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const file = join(dir, 'agent.yaml');
  const check = 'health_check: { type: tcp, interval: 1s, timeout: 500ms }';
  await writeFile(file, [
    'mode: agent',
    'agent:',
    '  identity: { service_token: agent-token-0123456789abcdef, region: eu, cert_path: ./agent.crt, key_path: ./agent.key }',
    '  backends:',
    `    - { service: app.example.test, address: 127.0.0.1, port: 9, ${check} }`,
    `    - { service: api.example.test, address: 127.0.0.1, port: 9, ${check} }`,
    `    - { service: app.example.test, address: 127.0.0.1, port: 9, weight: 5, ${check} }`,
    `  gossip: { encryption_key: "${randomBytes(32).toString('base64')}", overwatch_nodes: ["127.0.0.1:9"] }`,
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  const r = await run(SERVER, ['--mode', 'agent', '--config', file], { timeoutMs: 10_000 });
  assert.equal(r.code, 1, `the agent ran on: ${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /agent\.backends\[2\]: app\.example\.test 127\.0\.0\.1:9 is listed twice \(first at agent\.backends\[0\]\)/);
  assert.match(r.stderr, new RegExp(`${file.replaceAll('.', '\\.')}:7:7: `), 'names the file, line and column (a config problem: config validate finds it too)');
});

test('after the agent\'s clock steps back, full heartbeats go on every full_interval instead of stopping for the length of the step', async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  const started = await startAgentOverwatch(t, dir, token, quiet);
  // The agent's clock runs 20 s ahead (within the overwatch's 30 s max_clock_skew), then NTP steps it back.
  let aheadMs = 20_000;
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, ['  heartbeat: { interval: 1s, full_interval: 1s }']), quiet, { version: 'test', now: () => Date.now() + aheadMs });
  t.after(() => agent.stop('test over', 1000));
  // Reliable sends are the registration and the full heartbeats: wait until full heartbeats flow.
  const reliable = (): number => agent.status().sender.tcpSent;
  const grows = async (from: number, withinMs: number): Promise<boolean> => {
    const until = Date.now() + withinMs;
    while (Date.now() < until) {
      if (reliable() > from) return true;
      await setTimeout(100);
    }
    return false;
  };
  assert.ok(await grows(reliable(), 5000), 'full heartbeats before the step');
  aheadMs = 0;
  // One heartbeat tick may still be on its way with the old clock; then one full_interval (1 s) and a tick.
  await setTimeout(1100);
  assert.ok(await grows(reliable(), 3000), `no full heartbeat within 3 s of the clock stepping back 20 s (sent ${JSON.stringify(agent.status().sent)})`);
});

test('an agent whose region a reload removed at its overwatch is told: its log says so at error, opengslb_agent_region_served goes 0, and both clear when the region is served again', async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  const started = await startAgentOverwatch(t, dir, token, quiet);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({ write: (c, _e, done) => { lines.push(String(c)); done(); } }));
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, ['  heartbeat: { interval: 1s, full_interval: 1s }']), logger, { version: 'test' });
  t.after(() => agent.stop('test over', 1000));
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    const end = Date.now() + 5000;
    while (!ok()) {
      if (Date.now() > end) assert.fail(`${what} within 5 s; nodes ${JSON.stringify(agent.status().nodes)}`);
      await setTimeout(50);
    }
  };
  await until('registered', () => agent.status().nodes[0]?.registered === true);
  const regionServed = async (): Promise<number | undefined> => {
    const { createAgentMetrics } = await import('../../src/agent/metrics.ts');
    const m = await createAgentMetrics(agent, { version: 'test', processMetrics: false }).getSingleMetricAsString('opengslb_agent_region_served');
    const value = /\} (\d)$/m.exec(m)?.[1];
    return value === undefined ? undefined : Number(value);
  };
  assert.equal(await regionServed(), 1);
  const config = (region: string): string => [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    `regions: [{ name: ${region}, servers: [] }]`,
    `domains: [{ name: app.example.test, regions: [${region}] }]`,
    'overwatch:',
    `  agent_tokens: { app.example.test: ${token} }`,
    `  gossip: { encryption_key: "${started.key}", bind_address: "127.0.0.1:0" }`,
  ].join('\n');
  const { parseConfigText } = await import('../../src/config/load.ts');
  const removed = await started.overwatch.reload(parseConfigText(config('us'), join(dir, 'overwatch.yaml')));
  assert.equal(removed.ok, true, removed.message);
  await until('the overwatch\'s notice', () => agent.status().nodes[0]?.notice === 'unknown_region');
  assert.equal(await regionServed(), 0);
  const error = lines.map((l) => JSON.parse(l) as { level: string | number; msg: string }).find((l) => /serves no region "eu"/.test(l.msg));
  assert.ok(error !== undefined, `no log line says the region is not served: ${lines.join('')}`);
  const back = await started.overwatch.reload(parseConfigText(config('eu'), join(dir, 'overwatch.yaml')));
  assert.equal(back.ok, true, back.message);
  await until('the notice cleared', () => agent.status().nodes[0]?.notice === null);
  assert.equal(await regionServed(), 1);
  assert.ok(lines.some((l) => l.includes('serves this agent\'s region again')));
});
