// The agent: the process (`opengslb --mode agent`) with configs it must refuse
// at start (real child processes; the agent exits before it sends anything),
// and an agent and an overwatch in this process over the real channel on
// loopback, with the agent's clock stepping.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { access, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { Agent } from '../../src/agent/agent.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { loadOrCreateAgentIdentity, rotateAgentIdentity } from '../../src/gossip/identity.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { createLogger } from '../../src/log/logger.ts';
import { httpBackend } from '../helpers/backends.ts';
import { run, SERVER } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { agentConfigFor, agentOverwatchConfig, startAgentOverwatch } from '../helpers/agents.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

/**
 * Stops `agent` at the end of a test, while its overwatch still runs: t.after
 * hooks run in the order they were added, so the overwatch's (added by
 * startAgentOverwatch, before the agent's) would stop it first, and the
 * agent's stop would wait out its whole deadline for a deregistration ack.
 */
async function stopBeforeItsOverwatch(agent: Agent): Promise<void> {
  await agent.stop('test over', 1000);
}

/**
 * An overwatch answering app.example.test for agents with `token`, its agent
 * channel on `port` (0: any), keeping pins and agents' backends in `store`
 * (started again on the same port and store, it stands for a restart).
 */
function appOverwatch(dir: string, token: string, key: string, store: MemoryStore, port: number): Promise<Overwatch> {
  return Overwatch.start(agentOverwatchConfig(dir, token, key, port), quiet, { store });
}

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
  await stopBeforeItsOverwatch(agent);
});

test('with full_interval equal to interval every heartbeat tick sends the full set (the timer firing a fraction of a ms early skipped every other one)', async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  const started = await startAgentOverwatch(t, dir, token, quiet);
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, ['  heartbeat: { interval: 1s, full_interval: 1s }']), quiet, { version: 'test' });
  t.after(() => agent.stop('test over', 1000));
  // Reliable sends are the registration and the full heartbeats; heartbeats counts every tick's.
  const reliable = (): number => agent.status().sender.tcpSent;
  const ticks = (): number => agent.status().sent.heartbeat;
  const deadline = Date.now() + 5000;
  while (reliable() < 2 && Date.now() < deadline) await setTimeout(50);
  assert.ok(reliable() >= 2, 'no full heartbeat within 5 s');
  const [reliableFrom, ticksFrom] = [reliable(), ticks()];
  await setTimeout(5200);
  // Each tick sends one heartbeat of the changed backends (best effort), and a full one (reliable) when due.
  const full = reliable() - reliableFrom;
  const tickCount = ticks() - ticksFrom - full;
  assert.ok(tickCount >= 4, `only ${tickCount} ticks in 5.2 s`);
  assert.ok(full >= tickCount - 1, `${full} full heartbeats in ${tickCount} ticks of 1 s with full_interval 1s (sent ${JSON.stringify(agent.status().sent)})`);
  await stopBeforeItsOverwatch(agent);
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
  await stopBeforeItsOverwatch(agent);
});

test('an agent whose file system is slow deletes the rotated-out key once: heartbeats that come meanwhile start no second deletion (no duplicate or spurious "could not delete the previous key")', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  const started = await startAgentOverwatch(t, dir, token, quiet);
  // A rotation in progress: agent.key/agent.crt new, agent.key.previous/agent.crt.previous the old pair.
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu' };
  await rotateAgentIdentity(files, (await loadOrCreateAgentIdentity(files)).identity);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({ write: (c, _e, done) => { lines.push(String(c)); done(); } }));
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, ['  heartbeat: { interval: 1s, full_interval: 1s }']), logger, { version: 'test' });
  t.after(() => agent.stop('test over', 1000));
  // A stuck file system, for real: every thread of libuv's pool (which runs the key files'
  // deletion) waits in open() on a FIFO that has no writer yet, for three heartbeats.
  const poolSize = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: poolSize }, (_, i) => join(dir, `stuck-${i}`));
  for (const f of fifos) execFileSync('mkfifo', [f]);
  const stuck = fifos.map((f) => open(f, 'r'));
  // Heartbeat ticks, one best-effort (UDP) heartbeat each; nothing else here goes over UDP (the backend stays up).
  const ticks = (): number => agent.status().sender.udpSent;
  const afterTicks = async (n: number): Promise<void> => {
    const target = ticks() + n;
    const end = Date.now() + n * 1000 + 3000;
    while (ticks() < target) {
      assert.ok(Date.now() < end, `${n} heartbeats not within ${n} s and 3 s: sent ${JSON.stringify(agent.status().sent)}`);
      await setTimeout(50);
    }
  };
  try {
    // The first tick starts the deletion (registered with every overwatch), the two after it come while it is stuck.
    await afterTicks(3);
    assert.equal(agent.status().nodes[0]?.registered, true, 'the overwatch took the registration');
  } finally {
    const writers = fifos.map((f) => openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    for (const handle of await Promise.all(stuck)) await handle.close();
    for (const fd of writers) closeSync(fd);
  }
  const messages = (): string[] => lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  const end = Date.now() + 5000;
  while (!messages().some((m) => /previous key is deleted/.test(m)) && Date.now() < end) await setTimeout(50);
  // Two more heartbeats: none may start a deletion again.
  await afterTicks(2);
  assert.deepEqual(messages().filter((m) => /previous key/.test(m)), ['every overwatch took the rotated certificate; the previous key is deleted']);
  await assert.rejects(access(`${files.keyPath}.previous`), { code: 'ENOENT' });
  await assert.rejects(access(`${files.certPath}.previous`), { code: 'ENOENT' });
  await stopBeforeItsOverwatch(agent);
});

test('an overwatch that asks an agent to register again gets its backends as they are now, not as they were when the agent started', async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  const started = await startAgentOverwatch(t, dir, token, quiet);
  const hub = started.overwatch.agents;
  assert.ok(hub);
  // Full states only every 2 s: what the overwatch holds between them comes from the registration (read
  // here within about 400 ms of it; the next full state comes about 2 s after it).
  // Down at the first failed check: the backend's state only has to change before the pin is deleted.
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, ['  heartbeat: { interval: 1s, full_interval: 2s }'], ['failure_threshold: 1']), quiet, { version: 'test' });
  t.after(() => agent.stop('test over', 1000));
  const claim = (): string | undefined => hub.agent(agent.agentId)?.backends[0]?.agent_health;
  const until = async (what: string, ok: () => boolean, ms = 8000): Promise<void> => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) assert.fail(`${what} within ${ms} ms; overwatch holds ${JSON.stringify(hub.agent(agent.agentId))}`);
      await setTimeout(50);
    }
  };
  await until('the overwatch holds the backend healthy', () => claim() === 'healthy');
  await web.stop();
  await until('the overwatch holds the backend unhealthy (the health update)', () => claim() === 'unhealthy');
  // An operator deletes the agent's pin: its next reliable message (the full heartbeat) is answered "register".
  assert.equal(await hub.forget(agent.agentId), true);
  const registered = agent.status().sent.register;
  await until('the agent registers again', () => agent.status().sent.register > registered && hub.agent(agent.agentId)?.backends.length === 1, 10_000);
  await setTimeout(300);
  assert.equal(claim(), 'unhealthy', 'the registration sent again says what the agent knows now');
  await stopBeforeItsOverwatch(agent);
});

test('an agent stopped while its overwatch restarts stays deregistered there: the overwatch back takes the deregistration and no registration after it', async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  // The overwatch's pins and agent backends outlive its restart, as in lmdb.
  const store = new MemoryStore();
  const key = randomBytes(32).toString('base64');
  const overwatchAt = (port: number): Promise<Overwatch> => appOverwatch(dir, token, key, store, port);
  const first = await overwatchAt(0);
  const port = first.agents?.receiver?.port;
  assert.ok(port !== undefined);
  const agent = await Agent.start(agentConfigFor(dir, token, { overwatch: first, key }, web, ['  heartbeat: { interval: 1s, full_interval: 30s }']), quiet, { version: 'test', backoff: { initialMs: 400, maxMs: 400 } });
  t.after(() => agent.stop('test over', 1000));
  const end = Date.now() + 5000;
  while (!(agent.status().nodes[0]?.registered === true && agent.status().nodes[0]?.queued === 0) && Date.now() < end) await setTimeout(50);
  assert.equal(agent.status().nodes[0]?.registered, true, 'registered');
  await first.stop(200);
  // SIGTERM while the overwatch is away: the deregistration fails once, and is retried when it is back.
  const stopping = agent.stop('stopped by SIGTERM', 3000);
  await setTimeout(600);
  const second = await overwatchAt(port);
  t.after(() => second.stop(200));
  assert.equal(await stopping, true, 'the overwatch back took the deregistration within the stop deadline');
  const held = second.agents?.agent(agent.agentId);
  assert.equal(held?.agent.state, 'deregistered', `the overwatch holds ${JSON.stringify(held)}`);
});

test('an agent stopped while it waits out its backoff to an overwatch that is back again deregisters there at once instead of after the stop deadline', async (t) => {
  const dir = await tempDir(t, 'opengslb-agent-');
  const token = 'agent-token-0123456789abcdef';
  const web = await httpBackend(t);
  const store = new MemoryStore();
  const key = randomBytes(32).toString('base64');
  const overwatchAt = (port: number): Promise<Overwatch> => appOverwatch(dir, token, key, store, port);
  const first = await overwatchAt(0);
  const port = first.agents?.receiver?.port;
  assert.ok(port !== undefined);
  // After a long absence the link retries every 30 s; 8 s stands for that here.
  const agent = await Agent.start(agentConfigFor(dir, token, { overwatch: first, key }, web, ['  heartbeat: { interval: 1s, full_interval: 1s }']), quiet, { version: 'test', backoff: { initialMs: 8000, maxMs: 8000 } });
  t.after(() => agent.stop('test over', 1000));
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    const end = Date.now() + 5000;
    while (!ok()) {
      if (Date.now() > end) assert.fail(`${what} within 5 s; nodes ${JSON.stringify(agent.status().nodes)}`);
      await setTimeout(50);
    }
  };
  await until('registered', () => agent.status().nodes[0]?.registered === true);
  await first.stop(200);
  await until('the next full heartbeat failed', () => agent.status().nodes[0]?.state === 'down');
  const second = await overwatchAt(port);
  t.after(() => second.stop(200));
  const started = Date.now();
  assert.equal(await agent.stop('stopped by SIGTERM', 2000), true, 'the deregistration was acked within the stop deadline');
  assert.ok(Date.now() - started < 1500, `the stop took ${Date.now() - started} ms`);
  const held = second.agents?.agent(agent.agentId);
  assert.equal(held?.agent.state, 'deregistered', `the overwatch holds ${JSON.stringify(held)}`);
});
