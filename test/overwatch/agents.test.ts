// The overwatch's side of agent mode, in this process: an Overwatch with the
// agent channel on, and agents played by this test (real identities, real
// keys, real TCP to the channel's port). Backends DNS cannot answer are kept
// and shown; the overwatch's own validation outranks what an agent says;
// revocation, deletion and reloaded tokens act at once; two agents cannot
// report the same backend.

import { setTimeout } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import type { AckMessage, BackendReport } from '../../src/gossip/messages.ts';
import { buildRegistration, GossipSender, MessageSealer } from '../../src/gossip/sender.ts';
import type { CheckObserver } from '../../src/health/scheduler.ts';
import type { ProbeResult } from '../../src/health/types.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import { AgentHub, MAX_BACKENDS_PER_AGENT } from '../../src/overwatch/agents.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { Registry } from '../../src/registry/registry.ts';
import { LIVE_EPOCH } from '../../src/snapshot/live-slots.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { httpBackend } from '../helpers/backends.ts';
import { ask } from '../helpers/dns-client.ts';
import { backend, newIdentity, sendTcp, sendUdp, TestAgent, tempDir } from '../gossip/helpers.ts';

const APP = 'app.example.test';
const TOKEN = 'app-token-0123456789abcdef';
const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

function yaml(key: string, extra: readonly string[] = [], token = TOKEN, gossip = ''): string {
  return [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions: [{ name: eu-west, servers: [] }]',
    `domains: [{ name: ${APP}, regions: [eu-west], max_answers: 4 }]`,
    'overwatch:',
    `  agent_tokens: { ${APP}: ${token}, unserved.example.test: ${token} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0"${gossip} }`,
    ...extra,
  ].join('\n');
}

async function start(t: TestContext, extra: readonly string[] = [], options: { onCheck?: CheckObserver; logger?: Logger; gossip?: string } = {}) {
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const ow = await Overwatch.start(parseConfigText(yaml(key, extra, TOKEN, options.gossip), join(dir, 'overwatch.yaml')), options.logger ?? quiet, {
    store: new MemoryStore(),
    ...(options.onCheck === undefined ? {} : { onCheck: options.onCheck }),
  });
  t.after(() => ow.stop(200));
  const port = ow.agents?.receiver?.port as number;
  const send = async (bytes: Uint8Array): Promise<AckMessage | null> => (await sendTcp('127.0.0.1', port, [bytes], keyring))[0];
  const agent = async (tokens: Record<string, string> = { [APP]: TOKEN }): Promise<TestAgent> => new TestAgent((await newIdentity(t)).identity, keyring, tokens);
  const answers = async (): Promise<string[]> => (((await ask(ow.port, APP, 'A')).answers ?? []) as { data: string }[]).map((a) => a.data).sort();
  return { ow, key, dir, keyring, send, agent, answers };
}

test('a backend whose service names no domain, or whose address is a host name, is kept and shown with why, never answered', async (t) => {
  const s = await start(t);
  const web = await httpBackend(t);
  const a = await s.agent({ [APP]: TOKEN, 'unserved.example.test': TOKEN });
  const ack = await s.send(a.seal(a.register([backend(APP, web.address, web.port), backend('unserved.example.test', '192.0.2.60', 80), backend(APP, 'web-1.internal.example', 8080)])));
  assert.equal(ack?.status, 'ok', JSON.stringify(ack));
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address]);
  const rows = s.ow.backends().filter((b) => b.source === 'agent');
  const byAddress = new Map(rows.map((b) => [`${b.service} ${b.address}`, b]));
  assert.equal(byAddress.get(`${APP} ${web.address}`)?.answered, true);
  const unserved = byAddress.get('unserved.example.test 192.0.2.60');
  assert.equal(unserved?.answered, false);
  assert.match(unserved?.note ?? '', /no domain is named unserved\.example\.test: kept, not answered/);
  const named = byAddress.get(`${APP} web-1.internal.example`);
  assert.equal(named?.answered, false);
  assert.match(named?.note ?? '', /is a host name: kept and shown, never answered/);
  assert.equal(s.ow.agents?.counters().refused.host_name, 1);
  const view = s.ow.agents?.agent(a.identity.agentId)?.backends.find((b) => b.address === 'web-1.internal.example');
  assert.equal(view?.state, 'refused', 'the agent view agrees: never answered, whatever its agent claims');
});

test('a backend on an address the domain answers already (another port) is shown not answered with that reason, not a false "no region" note', async (t) => {
  const s = await start(t);
  const web = await httpBackend(t);
  const a = await s.agent();
  const ack = await s.send(a.seal(a.register([backend(APP, web.address, web.port), backend(APP, web.address, web.port + 1)])));
  assert.equal(ack?.status, 'ok', JSON.stringify(ack));
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address], 'an A record has no port: the address answers once');
  const rows = s.ow.backends().filter((b) => b.source === 'agent');
  assert.equal(rows.length, 2);
  const second = rows.find((b) => b.port === web.port + 1);
  assert.equal(second?.answered, false);
  assert.doesNotMatch(second?.note ?? '', /no region of domain/, 'the domain has the agent\'s region');
  assert.match(second?.note ?? '', new RegExp(`${web.address.replaceAll('.', '\\.')} is answered for ${APP.replaceAll('.', '\\.')} by eu-west/${web.address.replaceAll('.', '\\.')}:${web.port}`));
});

test('with validation on, the overwatch checks an agent\'s backend with the backend\'s own check, and its verdict outranks the agent\'s claim and staleness', async (t) => {
  // Probe results and log lines are the events this test waits for.
  const results: ProbeResult[] = [];
  let onResult: (() => void) | null = null;
  const nextResult = (ok: boolean): Promise<void> => new Promise((resolve) => {
    onResult = () => {
      if (results.at(-1)?.ok === ok) resolve();
    };
  });
  let onStale: () => void = () => {};
  const stale = new Promise<void>((resolve) => (onStale = resolve));
  const logger = createLogger({ level: 'warn', format: 'json' }, new Writable({
    write(chunk: Buffer, _e, done) {
      if (/agent stale/.test(chunk.toString())) onStale();
      done();
    },
  }));
  const s = await start(t, ['  validation: { enabled: true, check_interval: 1s, check_timeout: 500ms }', '  stale: { threshold: 1s, remove_after: 1h }'], {
    logger,
    onCheck: (_target, result) => {
      results.push(result);
      onResult?.();
    },
  });
  const web = await httpBackend(t);
  const a = await s.agent();
  const report = { ...backend(APP, web.address, web.port, 'unhealthy'), check: { type: 'http' as const, path: '/ready', host: null, expectedStatus: [[200, 299]] as const, headers: { 'x-probe': 'overwatch' }, bodyMatch: null, tlsVerify: true, failureThreshold: 1, successThreshold: 1 } };
  const passed = nextResult(true);
  assert.equal((await s.send(a.seal(a.register([report]))))?.status, 'ok');
  await s.ow.whenPublished();
  await passed;
  // The agent says unhealthy; the overwatch's own check passes: answered, decided by health_check.
  const row = (): ReturnType<Overwatch['backends']>[number] | undefined => s.ow.backends().find((b) => b.source === 'agent');
  assert.equal(row()?.authority, 'health_check');
  assert.equal(row()?.agent_healthy, false);
  assert.equal(row()?.validation_healthy, true);
  assert.deepEqual(await s.answers(), [web.address]);
  assert.ok(web.requests > 0, 'the overwatch probed the backend itself');
  // The agent goes quiet (no more messages): stale, but validation still proves it up.
  await stale;
  assert.equal(row()?.stale, true);
  assert.deepEqual(await s.answers(), [web.address], 'a stale backend stays answered while the overwatch\'s checks pass');
  // Its checks fail (the backend's own expected status, 200-299): out, whatever the agent said.
  const failed = nextResult(false);
  web.status = 503;
  await failed;
  assert.equal(row()?.validation_error, 'status 503');
  assert.equal((await ask(s.ow.port, APP, 'A')).rcode, 'SERVFAIL');
});

test('revoking or deleting an agent takes its backends out of DNS at once; its next message is refused (revoked) or asked to register', async (t) => {
  const s = await start(t);
  const web = await httpBackend(t);
  const web2 = await httpBackend(t);
  const a = await s.agent();
  const b = await s.agent();
  assert.equal((await s.send(a.seal(a.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  assert.equal((await s.send(b.seal(b.register([backend(APP, web2.address, web2.port)]))))?.status, 'ok');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address, web2.address].sort());
  const hub = s.ow.agents;
  assert.ok(hub);
  assert.equal((await hub.revoke(a.identity.agentId, 'host compromised'))?.state, 'revoked');
  assert.deepEqual(await s.answers(), [web2.address], 'out at once, before the next snapshot');
  const refused = await s.send(a.seal(a.heartbeat([], false)));
  assert.deepEqual({ status: refused?.status, reason: refused?.reason }, { status: 'refused', reason: 'revoked' });
  assert.equal(hub.agent(a.identity.agentId)?.agent.state, 'revoked');

  assert.equal(await hub.forget(b.identity.agentId), true);
  assert.equal((await ask(s.ow.port, APP, 'A')).rcode, 'SERVFAIL', 'the deleted agent\'s backend is out at once');
  assert.equal((await s.send(b.seal(b.heartbeat([], false))))?.status, 'register', 'a forgotten agent is asked to register');
  assert.equal((await s.send(b.seal(b.register([backend(APP, web2.address, web2.port)]))))?.status, 'ok', 'and may, with its token');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web2.address]);
});

test('a backend two agents report is kept by the first; the second\'s is shown refused', async (t) => {
  const s = await start(t);
  const web = await httpBackend(t);
  const first = await s.agent();
  const second = await s.agent();
  assert.equal((await s.send(first.seal(first.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  assert.equal((await s.send(second.seal(second.register([{ ...backend(APP, web.address, web.port), weight: 7 }]))))?.status, 'ok');
  const rows = s.ow.backends().filter((b) => b.source === 'agent');
  const kept = rows.find((b) => b.agent_id === first.identity.agentId);
  assert.equal(kept?.weight, 100, 'the second agent changed nothing of it');
  const refused = rows.find((b) => b.agent_id === second.identity.agentId);
  assert.equal(refused?.answered, false);
  assert.match(refused?.note ?? '', new RegExp(`agent ${first.identity.agentId} reports the same backend`));
  assert.equal(s.ow.agents?.counters().refused.other_agent, 1);
  // The agent view says the same as the backends listing: refused, not the second agent's claim.
  const view = s.ow.agents?.agent(second.identity.agentId)?.backends[0];
  assert.deepEqual({ state: view?.state, server_key: view?.server_key, agent_health: view?.agent_health }, { state: 'refused', server_key: null, agent_health: 'healthy' });
  assert.match(view?.problem ?? '', new RegExp(`agent ${first.identity.agentId} reports the same backend`));
  assert.equal(s.ow.agents?.agent(first.identity.agentId)?.backends[0]?.state, 'healthy');
  assert.equal(s.ow.agents?.counters().transitions.refused, 1, 'entering refused is a transition, logged and counted');
});

test('when the agent keeping a backend deregisters, a second agent reporting it takes it over at once, with its own report', async (t) => {
  const s = await start(t);
  const web = await httpBackend(t);
  const first = await s.agent();
  const second = await s.agent();
  assert.equal((await s.send(first.seal(first.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  assert.equal((await s.send(second.seal(second.register([{ ...backend(APP, web.address, web.port), weight: 7 }]))))?.status, 'ok');
  assert.equal(s.ow.agents?.agent(second.identity.agentId)?.backends[0]?.state, 'refused');
  assert.equal((await s.send(first.seal(first.deregister())))?.status, 'ok');
  // Not at the second agent's next full report: the overwatch holds its last one.
  const view = s.ow.agents?.agent(second.identity.agentId)?.backends[0];
  assert.deepEqual({ state: view?.state, problem: view?.problem, taken: view?.server_key !== null }, { state: 'healthy', problem: null, taken: true });
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address]);
  const row = s.ow.backends().find((b) => b.source === 'agent' && b.address === web.address);
  assert.deepEqual({ agent: row?.agent_id, weight: row?.weight, answered: row?.answered }, { agent: second.identity.agentId, weight: 7, answered: true });
});

test('when the agent keeping a backend goes stale, a live second agent reporting it takes it over; the first, back, is refused', async (t) => {
  const s = await start(t, ['  stale: { threshold: 1s, remove_after: 1h }']);
  const web = await httpBackend(t);
  const first = await s.agent();
  const second = await s.agent();
  assert.equal((await s.send(first.seal(first.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  assert.equal((await s.send(second.seal(second.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  const stateOf = (id: string): string | undefined => s.ow.agents?.agent(id)?.backends[0]?.state;
  // Only the second agent keeps talking, as a live one would.
  const until = Date.now() + 6000;
  while (Date.now() < until && s.ow.agents?.agent(first.identity.agentId)?.agent.state !== 'stale') {
    assert.equal((await s.send(second.seal(second.heartbeat([], false))))?.status, 'ok');
    await setTimeout(200);
  }
  assert.equal(s.ow.agents?.agent(first.identity.agentId)?.agent.state, 'stale');
  assert.equal(stateOf(second.identity.agentId), 'healthy');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address]);
  assert.equal((await s.send(first.seal(first.heartbeat([backend(APP, web.address, web.port)]))))?.status, 'ok');
  assert.equal(stateOf(first.identity.agentId), 'refused', 'the second keeps it now');
  assert.equal(stateOf(second.identity.agentId), 'healthy');
});

test('a stale agent\'s backend a live agent vouches for changes hands in place: same slot, never out of answers, no republish, no stale transition; the first, back, stays refused (counted once) and takes it back when the heir leaves', async (t) => {
  const lines: { level: string; msg: string; agent?: string; to?: string; reason?: string }[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l));
      done();
    },
  }));
  const s = await start(t, ['  stale: { threshold: 1s, remove_after: 1h }'], { logger });
  const web = await httpBackend(t);
  const first = await s.agent();
  const second = await s.agent();
  const id1 = first.identity.agentId;
  const id2 = second.identity.agentId;
  assert.equal((await s.send(first.seal(first.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  assert.equal((await s.send(second.seal(second.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  await s.ow.whenPublished();
  const server = s.ow.registry.servers().find((x) => x.address === web.address);
  assert.ok(server !== undefined);
  const epoch = Atomics.load(s.ow.live, LIVE_EPOCH);
  const version = s.ow.registry.version;
  const generation = s.ow.generation;
  const until = Date.now() + 6000;
  while (Date.now() < until && s.ow.agents?.agent(id1)?.agent.state !== 'stale') {
    assert.equal((await s.send(second.seal(second.heartbeat([], false))))?.status, 'ok');
    await setTimeout(200);
  }
  assert.equal(s.ow.agents?.agent(id1)?.agent.state, 'stale');
  await s.ow.whenPublished();
  // The slot never left healthy: no health write (every one moves the epoch), no structural change, no new snapshot.
  assert.equal(Atomics.load(s.ow.live, LIVE_EPOCH), epoch, 'no health write: the backend never blinked out of answers');
  assert.deepEqual({ version: s.ow.registry.version, generation: s.ow.generation }, { version, generation });
  const now = s.ow.registry.servers().find((x) => x.address === web.address);
  assert.deepEqual({ key: now?.key, slot: now?.slot, agent: s.ow.registry.agentStateOf(server.key)?.agentId, owner: s.ow.agents?.agentOf(server.key) }, { key: server.key, slot: server.slot, agent: id2, owner: id2 });
  assert.equal(s.ow.servers().find((x) => x.address === web.address)?.healthy, true);
  assert.deepEqual(await s.answers(), [web.address]);
  const outOfAnswers = lines.filter((l) => l.msg === 'agent backend out of answers');
  assert.deepEqual(outOfAnswers, [], 'nothing logged the backend out of answers: it never was');
  // The stale line says where its backend went, not "its backends are out of answers".
  const staleLine = lines.find((l) => l.agent === id1 && l.msg.startsWith('agent stale')) as unknown as Record<string, unknown> | undefined;
  assert.ok(staleLine !== undefined, 'the first agent\'s stale line');
  assert.doesNotMatch(String(staleLine.msg), /out of answers|left answers/);
  assert.match(String(staleLine.msg), /1 handed over to live agents that report them, still answered/);
  assert.deepEqual({ outOfAnswers: staleLine.outOfAnswers, handedOverTo: staleLine.handedOverTo }, { outOfAnswers: 0, handedOverTo: [`${APP} ${web.address}:${web.port} -> ${id2}`] });
  const firstCopy = s.ow.agents?.agent(id1)?.backends[0];
  assert.equal(firstCopy?.state, 'refused', 'the stale agent\'s copy is another\'s now, not "stale"');
  assert.match(firstCopy?.problem ?? '', new RegExp(`agent ${id2} reports the same backend and took it over while this agent was stale`));
  assert.deepEqual({ refused: s.ow.agents?.counters().refused.other_agent, transitions: s.ow.agents?.counters().transitions.refused }, { refused: 2, transitions: 2 }, 'the second\'s copy at its registration, the first\'s at the hand-over');

  // The first comes back and reports it, twice: still refused, with the same reason, not counted again.
  for (const full of [true, false]) assert.equal((await s.send(first.seal(first.heartbeat([backend(APP, web.address, web.port)], full))))?.status, 'ok');
  const back = s.ow.agents?.agent(id1)?.backends[0];
  assert.equal(back?.state, 'refused');
  assert.match(back?.problem ?? '', new RegExp(`agent ${id2} reports the same backend`));
  assert.deepEqual({ refused: s.ow.agents?.counters().refused.other_agent, transitions: s.ow.agents?.counters().transitions.refused }, { refused: 2, transitions: 2 });
  assert.equal(s.ow.agents?.agentOf(server.key), id2);

  // The heir leaves: the first takes it over at once, in place again.
  const before = Atomics.load(s.ow.live, LIVE_EPOCH);
  assert.equal((await s.send(second.seal(second.deregister())))?.status, 'ok');
  assert.equal(s.ow.agents?.agentOf(server.key), id1);
  assert.deepEqual({ state: s.ow.agents?.agent(id1)?.backends[0]?.state, problem: s.ow.agents?.agent(id1)?.backends[0]?.problem }, { state: 'healthy', problem: null });
  assert.equal(Atomics.load(s.ow.live, LIVE_EPOCH), before, 'no health write at that hand-over either');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address]);
  assert.equal(s.ow.registry.server(server.key)?.slot, server.slot);
});

test('a reload with new tokens refuses the old one and accepts the new one for the next registration', async (t) => {
  const s = await start(t);
  const fresh = 'new-app-token-0123456789abcdef';
  const result = await s.ow.reload(parseConfigText(yaml(s.key, [], fresh), join(s.dir, 'overwatch.yaml')));
  assert.equal(result.ok, true, result.message);
  const old = await s.agent();
  const refused = await s.send(old.seal(old.register([backend(APP, '192.0.2.70', 80)])));
  assert.deepEqual({ status: refused?.status, reason: refused?.reason }, { status: 'refused', reason: 'token_mismatch' });
  const renewed = await s.agent({ [APP]: fresh });
  assert.equal((await s.send(renewed.seal(renewed.register([backend(APP, '192.0.2.71', 80)]))))?.status, 'ok');
});

test('explain says why an agent\'s backend is not answered: its agent\'s checks fail, or it drains', async (t) => {
  const s = await start(t);
  const a = await s.agent();
  const reports = [backend(APP, '192.0.2.80', 80, 'unhealthy'), { ...backend(APP, '192.0.2.81', 80), drain: 'memory_threshold_exceeded' as const }];
  assert.equal((await s.send(a.seal(a.register(reports))))?.status, 'ok');
  await s.ow.whenPublished();
  const e = s.ow.explain(APP, 'A', null);
  const reasons = Object.fromEntries(e.candidates.map((c) => [c.address, [c.authority, c.reason]]));
  assert.deepEqual(reasons['192.0.2.80'], ['agent', 'unhealthy: its agent\'s checks fail']);
  assert.deepEqual(reasons['192.0.2.81'], ['draining', 'draining: its agent drains it (memory_threshold_exceeded)']);
});

test('partial updates cannot grow an agent past MAX_BACKENDS_PER_AGENT: the new backends past it are not taken, known ones are updated, nothing held is lost, and the next full set replaces the set', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', format: 'json' }, new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(chunk.toString());
      done();
    },
  }));
  const s = await start(t, [], { logger });
  const hub = s.ow.agents;
  assert.ok(hub);
  const a = await s.agent();
  const id = a.identity.agentId;
  const addr = (i: number): string => `10.77.${i >> 8}.${i & 255}`;
  const held = (): number => hub.agent(id)?.agent.backend_count ?? -1;
  assert.equal((await s.send(a.seal(a.register([backend(APP, '192.0.2.10', 80)]))))?.status, 'ok');
  // A health_update adding MAX - 1 backends: exactly at the limit, all taken.
  const fill = Array.from({ length: MAX_BACKENDS_PER_AGENT - 1 }, (_, i) => backend(APP, addr(i), 80));
  assert.equal((await s.send(a.seal(a.health(fill))))?.status, 'ok');
  assert.equal(held(), MAX_BACKENDS_PER_AGENT);
  // Two new ones and a change of a known one, in a health_update, then one new in a partial heartbeat.
  assert.equal((await s.send(a.seal(a.health([backend(APP, '192.0.2.10', 80, 'unhealthy'), backend(APP, '198.51.100.1', 80), backend(APP, '198.51.100.2', 80)]))))?.status, 'ok');
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, '198.51.100.3', 80), backend(APP, addr(5), 80, 'unhealthy')], false))))?.status, 'ok');
  assert.equal(held(), MAX_BACKENDS_PER_AGENT);
  const rows = hub.agent(id)?.backends ?? [];
  assert.equal(rows.find((b) => b.address === '192.0.2.10')?.agent_health, 'unhealthy', 'the known backend was updated');
  assert.equal(rows.find((b) => b.address === addr(5))?.agent_health, 'unhealthy');
  assert.equal(rows.filter((b) => b.address.startsWith('198.51.100.')).length, 0, 'the new ones were not taken');
  assert.equal(hub.counters().refused.backend_limit, 3);
  const warned = lines.filter((l) => l.includes('agent backends not taken'));
  assert.equal(warned.length, 1, 'logged once a minute per agent');
  assert.match(warned[0], /"ignored":2/);
  assert.match(warned[0], /"limit":1024/);
  // A full set replaces the set: room again.
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, '192.0.2.10', 80)], true))))?.status, 'ok');
  assert.equal(held(), 1);
  assert.equal((await s.send(a.seal(a.health([backend(APP, '198.51.100.1', 80)]))))?.status, 'ok');
  assert.equal(held(), 2);
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), ['192.0.2.10', '198.51.100.1']);
});

test('past overwatch.gossip.max_agents a new agent\'s registration is refused (agent_limit) and the agent told so, logged once per agent; pinned agents go on; a deleted pin makes room', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', format: 'json' }, new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(chunk.toString());
      done();
    },
  }));
  const s = await start(t, [], { logger, gossip: ', max_agents: 2' });
  const hub = s.ow.agents;
  assert.ok(hub);
  const [a, b, c] = [await s.agent(), await s.agent(), await s.agent()];
  assert.equal((await s.send(a.seal(a.register([backend(APP, '192.0.2.21', 80)]))))?.status, 'ok');
  assert.equal((await s.send(b.seal(b.register([backend(APP, '192.0.2.22', 80)]))))?.status, 'ok');
  for (let i = 0; i < 2; i++) {
    const ack = await s.send(c.seal(c.register([backend(APP, '192.0.2.23', 80)])));
    assert.deepEqual([ack?.status, ack?.reason], ['refused', 'agent_limit']);
  }
  assert.equal(hub.channelCounters().drops.agent_limit, 2);
  assert.equal(hub.channel.pin(c.identity.agentId), undefined, 'not pinned');
  const refusals = lines.filter((l) => l.includes('agent refused'));
  assert.equal(refusals.length, 1, 'logged once per agent');
  assert.match(refusals[0], /"detail":"2 agents pinned, overwatch.gossip.max_agents is 2"/);
  // Agents already pinned register again and send as before.
  assert.equal((await s.send(a.seal(a.register([backend(APP, '192.0.2.21', 80)]))))?.status, 'ok');
  assert.equal((await s.send(b.seal(b.heartbeat([backend(APP, '192.0.2.22', 80)]))))?.status, 'ok');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), ['192.0.2.21', '192.0.2.22']);
  // An operator deletes a pin: room for the third.
  assert.equal(await hub.forget(b.identity.agentId), true);
  assert.equal((await s.send(c.seal(c.register([backend(APP, '192.0.2.23', 80)]))))?.status, 'ok');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), ['192.0.2.21', '192.0.2.23']);
  // A reload applies a new value: full at 2 again, room at 3.
  const d = await s.agent();
  assert.equal((await s.send(d.seal(d.register([backend(APP, '192.0.2.24', 80)]))))?.reason, 'agent_limit');
  const result = await s.ow.reload(parseConfigText(yaml(s.key, [], TOKEN, ', max_agents: 3'), join(s.dir, 'overwatch.yaml')));
  assert.equal(result.ok, true, result.message);
  assert.equal((await s.send(d.seal(d.register([backend(APP, '192.0.2.24', 80)]))))?.status, 'ok');
});

test('a reload applies a new overwatch.gossip.max_clock_skew to the next message', async (t) => {
  const s = await start(t, [], { gossip: ', max_clock_skew: 60s' });
  const a = await s.agent();
  // 40 s ahead: inside 60 s.
  assert.equal((await s.send(a.seal(a.register([backend(APP, '192.0.2.31', 80)]), { timestampMs: Date.now() + 40_000 })))?.status, 'ok');
  const result = await s.ow.reload(parseConfigText(yaml(s.key, [], TOKEN, ', max_clock_skew: 10s'), join(s.dir, 'overwatch.yaml')));
  assert.equal(result.ok, true, result.message);
  // The same 40 s is now past 10 s: refused as clock skew, and counted.
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, '192.0.2.31', 80)]), { timestampMs: Date.now() + 40_000 })))?.reason, 'clock_skew');
  assert.equal(s.ow.agents?.channel.counters().drops.clock_skew, 1);
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, '192.0.2.31', 80)]), { timestampMs: Date.now() + 5_000 })))?.status, 'ok');
});

test('an agent with no backends that goes quiet is removed after remove_after too, not left stale for ever', async (t) => {
  const s = await start(t, ['  stale: { threshold: 1s, remove_after: 2s }']);
  const a = await s.agent();
  assert.equal((await s.send(a.seal(a.register([]))))?.status, 'ok');
  const stateOf = (): string | undefined => s.ow.agents?.agents().find((g) => g.agent_id === a.identity.agentId)?.state;
  assert.equal(stateOf(), 'live');
  const until = Date.now() + 6000;
  while (Date.now() < until && stateOf() !== 'removed') await setTimeout(100);
  assert.equal(stateOf(), 'removed');
});

test('a forward step of the wall clock neither makes live agents stale nor removes them: quiet time is measured on the monotonic clock', async (t) => {
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const config = parseConfigText(yaml(key, ['  stale: { threshold: 1s, remove_after: 1h }']), join(dir, 'overwatch.yaml'));
  const registry = new Registry();
  registry.applyConfig(config);
  let aheadMs = 0;
  const events: string[] = [];
  let onEvent: () => void = () => {};
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({
    write(chunk: Buffer, _e, done) {
      const m = /"msg":"(agent stale|agent removed)[^"]*"/.exec(chunk.toString());
      if (m !== null) {
        events.push(m[1]);
        onEvent();
      }
      done();
    },
  }));
  const hub = AgentHub.create({ config, registry, store: new MemoryStore(), logger, now: () => Date.now() + aheadMs });
  t.after(() => hub.stop());
  const receiver = await hub.listen();
  const a = new TestAgent((await newIdentity(t)).identity, Keyring.fromBase64(key), { [APP]: TOKEN });
  const ack = (await sendTcp('127.0.0.1', receiver.port, [a.seal(a.register([backend(APP, '192.0.2.80', 80)]))], Keyring.fromBase64(key)))[0];
  assert.equal(ack?.status, 'ok', JSON.stringify(ack));
  // NTP or an operator steps the clock two hours ahead, past remove_after (1 h): the agent was heard from a moment ago.
  aheadMs = 2 * 3_600_000;
  await new Promise<void>((resolve) => (onEvent = resolve));
  assert.deepEqual(events, ['agent stale'], 'stale after its threshold of real quiet, not removed at once');
  const found = hub.agent(a.identity.agentId);
  assert.equal(found?.agent.state, 'stale');
  assert.deepEqual(found?.backends.map((b) => b.state), ['stale'], 'its backend is kept until remove_after of real quiet');
});

test('a main thread blocked past stale.threshold does not call an agent stale whose heartbeat arrived during the block (the sweep waits for the sockets to be read)', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', format: 'json' }, new Writable({ write: (c, _e, done) => { lines.push(String(c)); done(); } }));
  const s = await start(t, ['  stale: { threshold: 1s, remove_after: 1h }'], { logger });
  const web = await httpBackend(t);
  const a = await s.agent();
  assert.equal((await s.send(a.seal(a.register([backend(APP, web.address, web.port)]))))?.status, 'ok');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), [web.address]);
  // The agent lives in another process: its heartbeat (sealed here, sent there
  // 400 ms from now) reaches the channel's socket while this thread is blocked
  // for 1.6 s (a publish of a big config), past the 1 s threshold.
  const { spawn } = await import('node:child_process');
  const bytes = a.seal(a.heartbeat([backend(APP, web.address, web.port)], false)).toString('base64');
  const port = s.ow.agents?.receiver?.port as number;
  const child = spawn(process.execPath, ['-e', `const s = require('node:dgram').createSocket('udp4'); console.log('ready'); setTimeout(() => s.send(Buffer.from('${bytes}', 'base64'), ${port}, '127.0.0.1', () => s.close()), 400);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  await new Promise((resolve) => child.stdout.once('data', resolve));
  const until = performance.now() + 1600;
  while (performance.now() < until);
  await setTimeout(500);
  assert.equal(s.ow.agents?.agent(a.identity.agentId)?.agent.state, 'live');
  assert.deepEqual(lines.filter((l) => l.includes('agent stale')), [], 'no stale transition');
  assert.deepEqual(await s.answers(), [web.address]);
  // An agent that really went quiet is still called stale after such a block, one sweep later.
  const again = performance.now() + 1600;
  while (performance.now() < again);
  const startMs = performance.now();
  while (performance.now() < startMs + 2000 && s.ow.agents?.agent(a.identity.agentId)?.agent.state !== 'stale') await setTimeout(20);
  assert.equal(s.ow.agents?.agent(a.identity.agentId)?.agent.state, 'stale');
  assert.ok(performance.now() - startMs < 1000, `stale ${(performance.now() - startMs).toFixed(0)} ms after the block`);
});

test('an overwatch back from an absence ends with the agent\'s current states: large health updates queued over TCP while it was away, delivered after the fresh registration, change nothing', async (t) => {
  // A port nobody listens on yet: the overwatch is away while the agent's states change.
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const { identity } = await newIdentity(t);
  // 30 backends: a health update listing them all does not fit a datagram and waits in the TCP queue.
  const addresses = Array.from({ length: 30 }, (_, i) => `192.0.2.${i + 1}`);
  const states = new Map(addresses.map((a) => [a, 'healthy' as BackendReport['health']]));
  const reports = (only?: readonly string[]): BackendReport[] => (only ?? addresses).map((a) => backend(APP, a, 80, states.get(a)));
  const registration = (): ReturnType<typeof buildRegistration> => buildRegistration(identity, { region: 'eu-west', version: 'test', serviceTokens: { [APP]: TOKEN }, heartbeatIntervalMs: 10_000, backends: reports() });
  const sender = new GossipSender({
    nodes: [{ host: '127.0.0.1', port }], keyring, sealer: new MessageSealer(keyring, identity), backoff: { initialMs: 20, maxMs: 100 }, currentRegistration: registration,
  });
  t.after(() => sender.close());
  sender.setRegistration(registration());
  // Away: 192.0.2.1 fails (a large update, queued over TCP), then recovers (a small one over UDP, lost).
  states.set('192.0.2.1', 'unhealthy');
  assert.equal(sender.send({ type: 'health_update', backends: reports() }), 'tcp');
  states.set('192.0.2.1', 'healthy');
  assert.equal(sender.send({ type: 'health_update', backends: reports(['192.0.2.1']) }), 'udp');
  const config = parseConfigText(yaml(key).replace('bind_address: "127.0.0.1:0"', `bind_address: "127.0.0.1:${port}"`), join(dir, 'overwatch.yaml'));
  const registry = new Registry();
  registry.applyConfig(config);
  const hub = AgentHub.create({ config, registry, store: new MemoryStore(), logger: quiet });
  t.after(() => hub.stop());
  await hub.listen();
  assert.equal(await sender.flush(10_000), true, 'the registration and the queued update were taken');
  const first = hub.backends().find((b) => b.address === '192.0.2.1');
  assert.equal(first?.agent_health, 'healthy', 'the queued update (older than the registration) did not overwrite the current state');
  assert.equal(hub.backends().filter((b) => b.agent_health === 'healthy').length, 30);
});

test('each backend changes only by a message newer than the one that set it: a late or reordered update of one backend still applies when a newer message only touched another; an older one of the same backend, a late full set or a late deregistration change nothing; a restarted agent is taken at once', async (t) => {
  const s = await start(t);
  const a = await s.agent();
  const port = s.ow.agents?.receiver?.port as number;
  const hub = s.ow.agents as AgentHub;
  const health = (): Record<string, string> => Object.fromEntries(hub.backends().map((b) => [b.address, b.agent_health]));
  const A = '192.0.2.10';
  const B = '192.0.2.11';
  const C = '192.0.2.12';
  a.seq = 999; // the registration is 1000
  assert.equal((await s.send(a.seal(a.register([backend(APP, A), backend(APP, B)]))))?.status, 'ok');
  // Over UDP: B's change (1002) overtakes A's (1001); A's still applies, it is the newest word on A.
  await sendUdp('127.0.0.1', port, a.seal(a.health([backend(APP, B, 80, 'unhealthy')]), { seq: 1002 }));
  await waitFor(() => health()[B] === 'unhealthy');
  await sendUdp('127.0.0.1', port, a.seal(a.health([backend(APP, A, 80, 'unhealthy')]), { seq: 1001 }));
  await waitFor(() => health()[A] === 'unhealthy');
  // B recovers (1004); an older report of B (1003, a TCP queue flushed late) does not undo it.
  await sendUdp('127.0.0.1', port, a.seal(a.health([backend(APP, B)]), { seq: 1004 }));
  await waitFor(() => health()[B] === 'healthy');
  assert.equal((await s.send(a.seal(a.health([backend(APP, B, 80, 'unhealthy')]), { seq: 1003 })))?.status, 'ok');
  // A newer full set (1006) with C; a late full set (1005) without C and with A healthy changes nothing of it.
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, A, 80, 'unhealthy'), backend(APP, B), backend(APP, C)]), { seq: 1006 })))?.status, 'ok');
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, A), backend(APP, B)]), { seq: 1005 })))?.status, 'ok');
  assert.deepEqual(health(), { [A]: 'unhealthy', [B]: 'healthy', [C]: 'healthy' });
  // A late deregistration (1007, after a newer heartbeat 1008) does not take the backends out.
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, A, 80, 'unhealthy')], false), { seq: 1008 })))?.status, 'ok');
  assert.equal((await s.send(a.seal(a.deregister(), { seq: 1007 })))?.status, 'ok');
  assert.equal(hub.agent(a.identity.agentId)?.agent.state, 'live');
  assert.deepEqual(health(), { [A]: 'unhealthy', [B]: 'healthy', [C]: 'healthy' });
  // The agent restarts: its new process numbers from its start time × 1024 (far above), and its registration is the new baseline.
  a.seq = Date.now() * 1024;
  assert.equal((await s.send(a.seal(a.register([backend(APP, A), backend(APP, B, 80, 'unhealthy')]))))?.status, 'ok');
  assert.deepEqual(health(), { [A]: 'healthy', [B]: 'unhealthy' });
  assert.equal((await s.send(a.seal(a.health([backend(APP, B)]))))?.status, 'ok');
  assert.deepEqual(health(), { [A]: 'healthy', [B]: 'healthy' });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > until) throw new Error('condition not met in time');
    await setTimeout(10);
  }
}

/** An AgentHub on a real channel port with its wall clock `aheadMs` ahead (see the forward-step test), its info lines kept. */
async function hubWithClock(t: TestContext, gossip: string, store = new MemoryStore()) {
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const config = parseConfigText(yaml(key, [], TOKEN, gossip), join(dir, 'overwatch.yaml'));
  const registry = new Registry();
  registry.applyConfig(config);
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(chunk.toString());
      done();
    },
  }));
  const clock = { aheadMs: 0 };
  const hub = AgentHub.create({ config, registry, store, logger, now: () => Date.now() + clock.aheadMs });
  t.after(() => hub.stop());
  const receiver = await hub.listen();
  const send = async (bytes: Uint8Array): Promise<AckMessage | null> => (await sendTcp('127.0.0.1', receiver.port, [bytes], keyring))[0];
  const agent = async (): Promise<TestAgent> => new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKEN });
  return { hub, lines, clock, send, agent, store };
}

test('pins of agents gone (deregistered, removed, never heard since the start) for 7 days are deleted in the background and free their place; revoked and expected agents stay; 80 % and 90 % of max_agents are warned once each', async (t) => {
  const s = await hubWithClock(t, ', max_agents: 5');
  const [gone, live, revoked, newcomer] = [await s.agent(), await s.agent(), await s.agent(), await s.agent()];
  for (const [i, a] of [gone, live, revoked].entries()) assert.equal((await s.send(a.seal(a.register([backend(APP, `192.0.2.4${i}`, 80)]))))?.status, 'ok');
  assert.equal(s.lines.filter((l) => l.includes('% of overwatch.gossip.max_agents')).length, 0, '3 of 5: no warning');
  assert.equal((await s.send(newcomer.seal(newcomer.register([]))))?.status, 'ok');
  const warnings = (): string[] => s.lines.filter((l) => l.includes('% of overwatch.gossip.max_agents'));
  assert.equal(warnings().length, 1);
  assert.match(warnings()[0], /"level":"warn".*"pinned":4,"max_agents":5.*agent pins at 80 % of overwatch.gossip.max_agents/);
  assert.deepEqual(s.hub.pinUsage(), { pinned: 4, maxAgents: 5 });
  assert.equal((await s.send(gone.seal(gone.deregister())))?.status, 'ok');
  assert.equal(await s.hub.revoke(revoked.identity.agentId, 'host compromised') !== null, true);

  // Six days on: nothing is old enough.
  s.clock.aheadMs = 6 * 86_400_000;
  assert.deepEqual(await s.hub.forgetDepartedPins(), []);
  // Eight days on (the wall clock; the live agents are still live by the monotonic one): only the deregistered one goes.
  s.clock.aheadMs = 8 * 86_400_000;
  assert.deepEqual(await s.hub.forgetDepartedPins(), [gone.identity.agentId]);
  assert.equal(s.hub.channel.pin(gone.identity.agentId), undefined);
  assert.equal(await s.store.loadPins().some((p) => p.agentId === gone.identity.agentId), false, 'deleted from the store too');
  assert.equal(s.hub.agent(gone.identity.agentId), null, 'and from the agents list');
  assert.equal(s.hub.channel.pin(revoked.identity.agentId)?.revokedReason, 'host compromised', 'a revocation stays');
  assert.ok(s.hub.channel.pin(live.identity.agentId));
  assert.ok(s.lines.some((l) => /"pins":1,.*agent pins deleted: not revoked and not heard from for 7 days/.test(l)));
  assert.deepEqual(s.hub.pinUsage(), { pinned: 3, maxAgents: 5 });

  // Its place is free: the agent comes back as a new one (its token, any certificate); 4 of 5 warns again (it fell below 80 %).
  assert.equal((await s.send(gone.seal(gone.register([]), { timestampMs: Date.now() + s.clock.aheadMs })))?.status, 'ok');
  assert.equal(warnings().length, 2);
  const fifth = await s.agent();
  assert.equal((await s.send(fifth.seal(fifth.register([]), { timestampMs: Date.now() + s.clock.aheadMs })))?.status, 'ok');
  assert.equal(warnings().length, 3);
  assert.match(warnings()[2], /agent pins at 90 % of overwatch.gossip.max_agents/);
});

test('departed pins go at the first sweep after a start too: a pin not heard from for 7 days by its stored replay mark, not restored as an agent', async (t) => {
  const store = new MemoryStore();
  const first = await hubWithClock(t, '', store);
  const a = await first.agent();
  assert.equal((await first.send(a.seal(a.register([]))))?.status, 'ok');
  assert.equal((await first.send(a.seal(a.deregister())))?.status, 'ok');
  await first.hub.stop();
  // Restarted 8 days later (the clock says so): no agent record, a pin and an old mark.
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  // threshold 1 s: a sweep every 250 ms.
  const config = parseConfigText(yaml(key, ['  stale: { threshold: 1s, remove_after: 1h }']), join(dir, 'overwatch.yaml'));
  const registry = new Registry();
  registry.applyConfig(config);
  const hub = AgentHub.create({ config, registry, store, logger: quiet, now: () => Date.now() + 8 * 86_400_000 });
  t.after(() => hub.stop());
  assert.ok(hub.channel.pin(a.identity.agentId));
  await hub.listen();
  const until = Date.now() + 5000;
  while (Date.now() < until && hub.channel.pin(a.identity.agentId) !== undefined) await setTimeout(50);
  assert.equal(hub.channel.pin(a.identity.agentId), undefined, 'deleted by the first sweep');
});

test('an agent revoked before this overwatch heard from it (pinned before the start, or a revocation from another overwatch) shows no last_seen', async (t) => {
  const store = new MemoryStore();
  const first = await hubWithClock(t, '', store);
  const a = await first.agent();
  const restored = await first.agent();
  assert.equal((await first.send(a.seal(a.register([]))))?.status, 'ok');
  assert.equal((await first.send(a.seal(a.deregister())))?.status, 'ok');
  assert.equal((await first.send(restored.seal(restored.register([backend(APP, '192.0.2.91', 80)]))))?.status, 'ok');
  const lastHeard = first.hub.agent(restored.identity.agentId)?.agent.last_seen;
  await first.hub.stop();
  await setTimeout(20);
  const second = await hubWithClock(t, '', store);
  const view = await second.hub.revoke(a.identity.agentId, 'retired');
  assert.equal(view?.state, 'revoked');
  assert.equal(view?.last_seen, null, 'not heard from since the start (a pin only): no last seen, not the revocation time');
  assert.equal(view?.heartbeat_age_seconds, null);
  // One restored from the state store keeps its last message's time.
  assert.equal((await second.hub.revoke(restored.identity.agentId, 'retired'))?.last_seen, lastHeard);
  // A revocation adopted for an agent never seen here.
  const other = await first.agent();
  const pin = { ...(second.hub.channel.pin(a.identity.agentId) as NonNullable<ReturnType<typeof second.hub.channel.pin>>), agentId: other.identity.agentId };
  assert.equal(await second.hub.adoptRevocation(pin), true);
  assert.equal(second.hub.agent(other.identity.agentId)?.agent.last_seen, null);
  // A deregistration is a message heard: it keeps its time.
  const b = await second.agent();
  assert.equal((await second.send(b.seal(b.register([]))))?.status, 'ok');
  assert.equal((await second.send(b.seal(b.deregister())))?.status, 'ok');
  assert.notEqual(second.hub.agent(b.identity.agentId)?.agent.last_seen, null);
});

test('the agent_limit refusal is logged once per agent however many other drops are logged meanwhile (the drop log is bounded by dropping its oldest keys)', async (t) => {
  const s = await hubWithClock(t, ', max_agents: 1');
  const [a, c] = [await s.agent(), await s.agent()];
  assert.equal((await s.send(a.seal(a.register([]))))?.status, 'ok');
  assert.equal((await s.send(c.seal(c.register([]))))?.reason, 'agent_limit');
  // 10 001 other drops from as many senders (each logged once a minute).
  for (let i = 0; i < 10_001; i++) s.hub.channel.countDrop('too_large', null, { transport: 'tcp', remote: `127.0.0.${1 + (i >> 16)}:${i & 0xffff}` });
  assert.equal((await s.send(c.seal(c.register([]))))?.reason, 'agent_limit');
  assert.equal(s.lines.filter((l) => l.includes('agent refused')).length, 1, 'still once');
  assert.equal(s.lines.filter((l) => l.includes('agent message dropped')).length, 10_001);
});

test('after a pin is deleted a running agent\'s UDP heartbeats are dropped unanswered as unpinned, and its next full (TCP) heartbeat is answered register (the docs\' "up to full_interval")', async (t) => {
  const s = await start(t);
  const hub = s.ow.agents;
  assert.ok(hub);
  const a = await s.agent();
  assert.equal((await s.send(a.seal(a.register([backend(APP, '192.0.2.71', 80)]))))?.status, 'ok');
  await s.ow.whenPublished();
  assert.equal(await hub.forget(a.identity.agentId), true);
  const port = hub.receiver?.port as number;
  await sendUdp('127.0.0.1', port, a.seal(a.heartbeat([backend(APP, '192.0.2.71', 80)], false)));
  const until = Date.now() + 3000;
  while (Date.now() < until && hub.channelCounters().drops.unpinned === 0) await setTimeout(20);
  assert.equal(hub.channelCounters().drops.unpinned, 1, 'the datagram is dropped as unpinned');
  assert.equal((await ask(s.ow.port, APP, 'A')).rcode, 'SERVFAIL', 'still out');
  assert.equal((await s.send(a.seal(a.heartbeat([backend(APP, '192.0.2.71', 80)], true))))?.status, 'register', 'the full heartbeat over TCP is asked to register');
  assert.equal((await s.send(a.seal(a.register([backend(APP, '192.0.2.71', 80)]))))?.status, 'ok');
  await s.ow.whenPublished();
  assert.deepEqual(await s.answers(), ['192.0.2.71']);
});
