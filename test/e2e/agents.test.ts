// Agent mode end to end: the opengslb binary as overwatch and as agent, two
// child processes talking over the real encrypted channel on loopback, real
// HTTP backends checked by the agent, and DNS asked over UDP. Waits are for
// log lines (each transition is logged once, after it is written), never
// fixed sleeps.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { httpBackend, type Backend } from '../helpers/backends.ts';
import { gossipPortOf, writeAgentFile } from '../helpers/agents.ts';
import { freePort, startAgent, startOpengslb, type RunningServer } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';

const TOKEN = 'e2e-token-0123456789abcdef';
const APP = 'app.example.test';
const API = 'api.example.test';

interface Setup {
  readonly dir: string;
  readonly key: string;
}

async function setup(t: TestContext): Promise<Setup> {
  return { dir: await tempDir(t, 'opengslb-agents-'), key: randomBytes(32).toString('base64') };
}

/** An overwatch whose one region is left to agents; `gossipPort` 0 the first time, the same port after a restart. */
async function writeOverwatch(s: Setup, gossipPort: number, extra: readonly string[] = [], gossip = ''): Promise<string> {
  const file = join(s.dir, 'overwatch.yaml');
  await writeFile(file, [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    '  - { name: eu, servers: [] }',
    'domains:',
    `  - { name: ${APP}, regions: [eu], max_answers: 4 }`,
    `  - { name: ${API}, regions: [eu], max_answers: 4 }`,
    'api: { enabled: true, address: "127.0.0.1:0" }',
    'overwatch:',
    '  data_dir: ./state',
    `  agent_tokens: { ${APP}: ${TOKEN}, ${API}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${s.key}", bind_address: "127.0.0.1:${gossipPort}"${gossip} }`,
    // Two heartbeat intervals (1 s) to go stale; removed one more second after that.
    '  stale: { threshold: 2s, remove_after: 3s }',
    'logging: { level: info, format: json }',
    ...extra,
  ].join('\n') + '\n', { mode: 0o600 });
  return file;
}

/** An agent reporting `backends` (service, backend) to the overwatch's channel port. */
async function writeAgent(s: Setup, gossipPort: number, backends: readonly (readonly [string, Backend])[], full = '2s'): Promise<string> {
  return writeAgentFile({
    file: join(s.dir, 'agent.yaml'),
    token: TOKEN,
    region: 'eu',
    key: s.key,
    overwatchPorts: [gossipPort],
    backends,
    heartbeat: { interval: '1s', full },
  });
}

async function answers(port: number, name: string): Promise<string[]> {
  const reply = await ask(port, name, 'A');
  return ((reply.answers ?? []) as { data: string }[]).map((a) => a.data).sort();
}

/** Waits for the overwatch's log line of a backend transition: `to` (healthy, unhealthy, stale, removed…) of `service`. */
function transition(server: RunningServer, service: string, to: string, from: number): Promise<string> {
  return server.out.waitFor(new RegExp(`"service":"${service.replaceAll('.', '\\.')}".*"to":"${to}"`), from);
}

test('an agent registers two services and DNS answers them; a failing backend leaves DNS within its thresholds; SIGTERM takes the rest out at once', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  const api = await httpBackend(t);
  const ow = await startOpengslb(t, await writeOverwatch(s, 0));
  const gossipPort = await gossipPortOf(ow);
  // Regions left to agents, none reported yet: SERVFAIL, not "no such data".
  assert.equal((await ask(ow.port, APP, 'A')).rcode, 'SERVFAIL');
  assert.equal((await ask(ow.port, API, 'AAAA')).rcode, 'SERVFAIL');

  const from = ow.out.lines.length;
  const agent = await startAgent(t, await writeAgent(s, gossipPort, [[APP, app], [API, api]]));
  await ow.out.waitFor(/agent pinned \(first contact\)/, from);
  await transition(ow, APP, 'healthy', from);
  await transition(ow, API, 'healthy', from);
  assert.deepEqual(await eventuallyAnswers(ow.port, APP, [app.address]), [app.address]);
  assert.deepEqual(await answers(ow.port, API), [api.address]);

  // The app backend fails its checks: after failure_threshold (2) checks 1 s apart the agent says so, at once.
  const failing = ow.out.lines.length;
  app.status = 503;
  const t0 = Date.now();
  await agent.out.waitFor(/"msg":"backend down"/, 0, 10_000);
  await transition(ow, APP, 'unhealthy', failing);
  const tookMs = Date.now() - t0;
  assert.ok(tookMs < 2 * 1000 + 500 + 1500, `out of DNS after ${tookMs} ms; the thresholds allow 2 checks 1 s apart`);
  assert.equal((await ask(ow.port, APP, 'A')).rcode, 'SERVFAIL');
  assert.deepEqual(await answers(ow.port, API), [api.address], 'the other service is untouched');

  // SIGTERM: the deregistration takes the agent's backends out of DNS at once.
  const stopping = ow.out.lines.length;
  agent.child.kill('SIGTERM');
  assert.deepEqual(await agent.exited, { code: 0, signal: null });
  await ow.out.waitFor(/agent deregistered/, stopping, 2000);
  assert.equal((await ask(ow.port, API, 'A')).rcode, 'SERVFAIL');
  ow.child.kill('SIGTERM');
  assert.deepEqual(await ow.exited, { code: 0, signal: null });
});

test('an agent killed with SIGKILL goes stale (out of answers) after stale.threshold and is removed after remove_after', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  const ow = await startOpengslb(t, await writeOverwatch(s, 0));
  const gossipPort = await gossipPortOf(ow);
  const from = ow.out.lines.length;
  const agent = await startAgent(t, await writeAgent(s, gossipPort, [[APP, app]]));
  await transition(ow, APP, 'healthy', from);
  assert.deepEqual(await eventuallyAnswers(ow.port, APP, [app.address]), [app.address]);

  const killed = ow.out.lines.length;
  agent.child.kill('SIGKILL');
  await agent.exited;
  const stale = await transition(ow, APP, 'stale', killed);
  assert.match(stale, /no message from its agent for 2 s/);
  assert.equal((await ask(ow.port, APP, 'A')).rcode, 'SERVFAIL', 'a stale backend is out of answers');
  const removed = await transition(ow, APP, 'removed', killed);
  assert.match(removed, /remove_after/);
  ow.child.kill('SIGTERM');
  assert.deepEqual(await ow.exited, { code: 0, signal: null });
});

test('after an overwatch restart the agent\'s backends are back from the state store: stale until its next heartbeat, then answered', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  const api = await httpBackend(t);
  const first = await startOpengslb(t, await writeOverwatch(s, 0));
  const gossipPort = await gossipPortOf(first);
  const from = first.out.lines.length;
  await startAgent(t, await writeAgent(s, gossipPort, [[APP, app], [API, api]]));
  await transition(first, APP, 'healthy', from);
  await transition(first, API, 'healthy', from);
  // The backends are stored shortly (500 ms) after they change; a full heartbeat every 2 s rewrites them.
  await first.out.waitFor(/"msg":"agent backend state"/, from);
  first.child.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });

  // Same state directory, same channel port: the agent keeps sending to it.
  const second = await startOpengslb(t, await writeOverwatch(s, gossipPort));
  const restored = await second.out.waitFor(/agent backends restored from the state store/);
  assert.match(restored, /"backends":2/);
  const resumed = await transition(second, APP, 'healthy', 0);
  assert.match(resumed, /"from":"stale"/, 'stale until the agent was heard from again');
  await transition(second, API, 'healthy', 0);
  assert.deepEqual(await answers(second.port, APP), [app.address]);
  assert.deepEqual(await answers(second.port, API), [api.address]);
});

test('an overwatch back after seconds away hears from the agent within one heartbeat interval, though every heartbeat is a full one and the reliable link to it waits out its backoff', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  const first = await startOpengslb(t, await writeOverwatch(s, 0));
  const gossipPort = await gossipPortOf(first);
  const from = first.out.lines.length;
  // full_interval = interval: every tick sends the full set reliably (TCP).
  await startAgent(t, await writeAgent(s, gossipPort, [[APP, app]], '1s'));
  await transition(first, APP, 'healthy', from);
  await first.out.waitFor(/"msg":"agent backend state"/, from);
  first.child.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  // Away long enough for the agent's TCP link to it to back off several times
  // (retries about 0.3, 0.7, 1.3, 2.5, 5 s apart): the next retry is seconds
  // after the overwatch is back.
  await new Promise((resolve) => setTimeout(resolve, 7000));
  const second = await startOpengslb(t, await writeOverwatch(s, gossipPort));
  const listened = performance.now();
  const resumed = await transition(second, APP, 'healthy', 0);
  const tookMs = performance.now() - listened;
  assert.match(resumed, /"from":"stale"/);
  t.diagnostic(`heard from the agent ${Math.round(tookMs)} ms after it listened`);
  // One interval (1 s) and a loaded machine's delays. Before the agent sent its
  // small heartbeat on full ticks too, this waited for the TCP retry: seconds.
  assert.ok(tookMs < 1800, `the agent's backend resumed ${Math.round(tookMs)} ms after the overwatch listened; the heartbeat interval is 1 s`);
  assert.deepEqual(await eventuallyAnswers(second.port, APP, [app.address]), [app.address]);
});

/**
 * Asks until `name` answers `expected`: a registration reaches DNS with the
 * next snapshot, published after the registry's 100 ms debounce, which no
 * log line marks. Bounded: 3 s.
 */
async function eventuallyAnswers(port: number, name: string, expected: readonly string[]): Promise<string[]> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const got = await answers(port, name);
    if (JSON.stringify(got) === JSON.stringify([...expected].sort()) || Date.now() > deadline) return got;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('an agent started while its overwatch is down keeps running, retries with backoff, and registers once the overwatch is up', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  // A port nobody holds, outside the kernel's ephemeral range: the agent's connects to it while it is
  // closed could otherwise be given it as their own local port (Linux then connects the socket to
  // itself) and the overwatch could not bind it (seen once in CI).
  const gossipPort = await freePort();

  const agent = await startAgent(t, await writeAgent(s, gossipPort, [[APP, app]]));
  await agent.out.waitFor(/overwatch unreachable; retrying with backoff/, 0, 15_000);
  assert.equal(agent.child.exitCode, null, 'the agent does not exit because its overwatch is away');

  const ow = await startOpengslb(t, await writeOverwatch(s, gossipPort));
  await agent.out.waitFor(/overwatch reachable/, 0, 40_000);
  await transition(ow, APP, 'healthy', 0);
  assert.deepEqual(await eventuallyAnswers(ow.port, APP, [app.address]), [app.address]);
});

test('an agent past overwatch.gossip.max_agents is refused with agent_limit: the agent says why, the overwatch logs it once and counts it, the pinned agent is answered', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  const other = await httpBackend(t);
  const ow = await startOpengslb(t, await writeOverwatch(s, 0, [], ', max_agents: 1'));
  const gossipPort = await gossipPortOf(ow);
  const base = `http://${/"address":"(127\.0\.0\.1:\d+)"/.exec(await ow.out.waitFor(/API listening/))?.[1]}`;
  const from = ow.out.lines.length;
  await startAgent(t, await writeAgent(s, gossipPort, [[APP, app]]));
  await ow.out.waitFor(/agent pinned \(first contact\)/, from);
  // A second agent with its own identity (its own folder) and the same key and token.
  const second = await startAgent(t, await writeAgent({ ...s, dir: await tempDir(t, 'opengslb-agents-') }, gossipPort, [[API, other]]));
  const told = await second.out.waitFor(/overwatch refused the registration/, 0, 10_000);
  assert.match(told, /it holds as many agents as its overwatch\.gossip\.max_agents allows; retrying slowly/);
  assert.match(told, /"reason":"agent_limit"/);
  const logged = await ow.out.waitFor(new RegExp(`"agent":"${second.agentId}".*agent refused: this overwatch pins overwatch\.gossip\.max_agents agents already`), from);
  assert.match(logged, /"detail":"1 agents pinned, overwatch\.gossip\.max_agents is 1"/);
  assert.deepEqual(await eventuallyAnswers(ow.port, APP, [app.address]), [app.address]);
  assert.equal((await ask(ow.port, API, 'A')).rcode, 'SERVFAIL', 'the refused agent\'s backend is not answered');
  const body = (await (await fetch(`${base}/api/v1/overwatch/agents`)).json()) as { agents: { agent_id: string }[]; drops: Record<string, number> };
  assert.ok(body.drops.agent_limit >= 1, JSON.stringify(body.drops));
  assert.deepEqual(body.agents.map((a) => a.agent_id).includes(second.agentId), false);
  assert.equal(ow.out.lines.filter((l) => l.includes('agent refused: this overwatch pins')).length, 1, 'logged once per agent');
});

test('an agent whose region differs from the overwatch\'s only in case is refused with unknown_region: the agent says which region, the overwatch names the configured spelling, nothing is pinned', posixOnly, async (t) => {
  const s = await setup(t);
  const app = await httpBackend(t);
  const ow = await startOpengslb(t, await writeOverwatch(s, 0));
  const gossipPort = await gossipPortOf(ow);
  const base = `http://${/"address":"(127\.0\.0\.1:\d+)"/.exec(await ow.out.waitFor(/API listening/))?.[1]}`;
  const from = ow.out.lines.length;
  const agent = await startAgent(t, await writeAgentFile({ file: join(s.dir, 'agent.yaml'), token: TOKEN, region: 'EU', key: s.key, overwatchPorts: [gossipPort], backends: [[APP, app]], heartbeat: { interval: '1s', full: '2s' } }));
  const told = await agent.out.waitFor(/overwatch refused the registration/, 0, 10_000);
  assert.match(told, /it has no region \\"EU\\" \(agent\.identity\.region\); region names are case-sensitive/);
  const logged = await ow.out.waitFor(/"reason":"unknown_region"/, from);
  assert.match(logged, /region \\"EU\\" is not a region of this overwatch; region names are case-sensitive, expected \\"eu\\"/);
  const body = (await (await fetch(`${base}/api/v1/overwatch/agents`)).json()) as { agents: unknown[]; drops: Record<string, number> };
  assert.deepEqual(body.agents, []);
  assert.ok(body.drops.unknown_region >= 1, JSON.stringify(body.drops));
});

test('the gossip key rotates in three steps without an agent losing its overwatch: acks go back under the key each message came in under', posixOnly, async (t) => {
  const s = await setup(t);
  const next = { ...s, key: randomBytes(32).toString('base64') };
  const app = await httpBackend(t);
  const ow = await startOpengslb(t, await writeOverwatch(s, 0));
  const gossipPort = await gossipPortOf(ow);
  const reload = async (file: Promise<string>): Promise<void> => {
    await file;
    const from = ow.out.lines.length;
    ow.child.kill('SIGHUP');
    await ow.out.waitFor(/"msg":"reload succeeded"/, from);
  };
  let from = ow.out.lines.length;
  const first = await startAgent(t, await writeAgent(s, gossipPort, [[APP, app]]));
  await transition(ow, APP, 'healthy', from);
  await first.out.waitFor(/"msg":"overwatch reachable"/);

  // 1. The overwatch accepts the new key besides its own.
  await reload(writeOverwatch(s, 0, [], `, accepted_keys: ["${next.key}"]`));
  // 2. The agent moves to the new key (a restart: agents do not reload). Its messages come in under
  // the accepted key, and the acks go back under it, so it hears from the overwatch at once.
  first.child.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  from = ow.out.lines.length;
  const second = await startAgent(t, await writeAgent(next, gossipPort, [[APP, app]]));
  await second.out.waitFor(/"msg":"overwatch reachable"/, 0, 5000);
  await transition(ow, APP, 'healthy', from);
  assert.deepEqual(await eventuallyAnswers(ow.port, APP, [app.address]), [app.address]);
  // 3. The new key becomes the overwatch's own, the old one goes: the agent carries on.
  await reload(writeOverwatch(next, 0));
  const failing = ow.out.lines.length;
  app.status = 503;
  await transition(ow, APP, 'unhealthy', failing);
  assert.doesNotMatch(second.out.text, /overwatch unreachable/);
  assert.equal((await ask(ow.port, APP, 'A')).rcode, 'SERVFAIL');
});
