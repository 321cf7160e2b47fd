// The agent series of GET /metrics on a real overwatch with the agent channel
// on: agents played by this test (real identities and keys, real TCP to the
// channel's port) come and go, and the per-agent series must follow them, not
// stay for as long as the agent's pin does.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import type { AckMessage } from '../../src/gossip/messages.ts';
import { createLogger } from '../../src/log/logger.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { backend, newIdentity, sendTcp, TestAgent, tempDir } from '../gossip/helpers.ts';
import { scrape } from './scrape.ts';

const APP = 'app.example.test';
const TOKEN = 'app-token-0123456789abcdef';
const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

/** An overwatch of `yaml` with metrics attached and served on a loopback port, all stopped after the test. */
async function overwatchWithMetrics(t: TestContext, yaml: string, dir: string): Promise<{ ow: Overwatch; listener: Awaited<ReturnType<typeof startMetricsServer>> }> {
  const metrics = createMetrics({ version: 't', loadedAtMs: Date.now(), processMetrics: false });
  const ow = await Overwatch.start(parseConfigText(yaml, join(dir, 'overwatch.yaml')), quiet, { store: new MemoryStore(), onCheck: metrics.onCheck });
  metrics.attach(ow);
  const listener = await startMetricsServer(metrics.registry, '127.0.0.1', 0, quiet);
  t.after(async () => {
    await listener.close();
    metrics.close();
    await ow.stop(200);
  });
  return { ow, listener };
}

test('an agent that deregisters or is revoked leaves no heartbeat-age series behind (its pin stays); live agents keep theirs', async (t) => {
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const yaml = [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions: [{ name: eu-west, servers: [] }]',
    `domains: [{ name: ${APP}, regions: [eu-west], max_answers: 4 }]`,
    'overwatch:',
    `  agent_tokens: { ${APP}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
  ].join('\n');
  const { ow, listener } = await overwatchWithMetrics(t, yaml, dir);
  const port = ow.agents?.receiver?.port as number;
  const send = async (bytes: Uint8Array): Promise<AckMessage | null> => (await sendTcp('127.0.0.1', port, [bytes], keyring))[0];
  // No agent has reported yet: the domain has no server at all and answers SERVFAIL to A and AAAA alike.
  let m = await scrape(listener.port);
  for (const family of ['ipv4', 'ipv6']) assert.equal(m.value('opengslb_domain_healthy_servers', { domain: APP, family, when_all_down: 'servfail' }), 0);
  for (const type of ['A', 'AAAA'] as const) assert.equal((await ask(ow.port, APP, type)).rcode, 'SERVFAIL');
  const agents: TestAgent[] = [];
  for (let i = 0; i < 3; i++) {
    const a = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKEN });
    assert.equal((await send(a.seal(a.register([backend(APP, `192.0.2.${10 + i}`, 80)]))))?.status, 'ok');
    agents.push(a);
  }
  const [stays, leaves, revoked] = agents.map((a) => a.identity.agentId);
  await ow.whenPublished();
  m = await scrape(listener.port);
  for (const id of [stays, leaves, revoked]) assert.ok((m.value('opengslb_overwatch_agent_heartbeat_age_seconds', { agent: id }) ?? -1) >= 0, `${id} has a heartbeat age`);
  assert.equal(m.value('opengslb_overwatch_agents', { state: 'live' }), 3);
  assert.equal(m.value('opengslb_overwatch_agent_pins', {}), 3, 'the pins against max_agents (default 10 000)');
  assert.equal(m.value('opengslb_overwatch_agent_pins_max', {}), 10_000);
  assert.equal(m.value('opengslb_server_healthy', { region: 'eu-west', server: '192.0.2.11:80', service: APP }), 1);
  assert.equal(m.value('opengslb_domain_healthy_servers', { domain: APP, family: 'ipv4', when_all_down: 'servfail' }), 3);
  assert.equal(m.value('opengslb_domain_healthy_servers', { domain: APP, family: 'ipv6', when_all_down: 'servfail' }), undefined, 'IPv4 backends only: AAAA is NODATA');

  // One stops gracefully, one is revoked: neither is expected to send anything again.
  assert.equal((await send(agents[1].seal(agents[1].deregister())))?.status, 'ok');
  assert.ok(await ow.agents?.revoke(revoked, 'host retired'));
  await ow.whenPublished();
  m = await scrape(listener.port);
  assert.equal(m.value('opengslb_overwatch_agents', { state: 'live' }), 1);
  assert.equal(m.value('opengslb_overwatch_agents', { state: 'deregistered' }), 1);
  assert.equal(m.value('opengslb_overwatch_agents', { state: 'revoked' }), 1);
  assert.ok((m.value('opengslb_overwatch_agent_heartbeat_age_seconds', { agent: stays }) ?? -1) >= 0);
  assert.equal(m.value('opengslb_overwatch_agent_heartbeat_age_seconds', { agent: leaves }), undefined, 'a deregistered agent\'s age would grow for as long as its pin is kept');
  assert.equal(m.value('opengslb_overwatch_agent_heartbeat_age_seconds', { agent: revoked }), undefined, 'a revoked agent\'s likewise');
  // Their backends left DNS, and their per-server series with them.
  assert.equal(m.value('opengslb_server_healthy', { region: 'eu-west', server: '192.0.2.11:80', service: APP }), undefined);
  assert.equal(m.value('opengslb_server_healthy', { region: 'eu-west', server: '192.0.2.12:80', service: APP }), undefined);
  assert.equal(m.value('opengslb_server_healthy', { region: 'eu-west', server: '192.0.2.10:80', service: APP }), 1);
});

test('two services\' backends on one address and port have a series each (label service): removing one leaves the other\'s counts and gauge alone', async (t) => {
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const OTHER = 'other.example.test';
  const OTHER_TOKEN = 'other-token-0123456789abcdef';
  // A real TCP backend on loopback: the overwatch's own checks (validation) probe it for both services.
  const tcp = net.createServer((socket) => socket.end());
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => tcp.close(() => resolve())));
  const port = (tcp.address() as AddressInfo).port;
  const yaml = [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions: [{ name: eu-west, servers: [] }]',
    `domains: [{ name: ${APP}, regions: [eu-west] }, { name: ${OTHER}, regions: [eu-west] }]`,
    'overwatch:',
    `  agent_tokens: { ${APP}: ${TOKEN}, ${OTHER}: ${OTHER_TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
    '  validation: { enabled: true, check_interval: 1s, check_timeout: 500ms }',
  ].join('\n');
  const { ow, listener } = await overwatchWithMetrics(t, yaml, dir);
  const channelPort = ow.agents?.receiver?.port as number;
  const send = async (bytes: Uint8Array): Promise<AckMessage | null> => (await sendTcp('127.0.0.1', channelPort, [bytes], keyring))[0];
  const agent = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKEN, [OTHER]: OTHER_TOKEN });
  assert.equal((await send(agent.seal(agent.register([backend(APP, '127.0.0.1', port), backend(OTHER, '127.0.0.1', port)]))))?.status, 'ok');
  await ow.whenPublished();
  const server = `127.0.0.1:${port}`;
  const app = { region: 'eu-west', server, service: APP };
  const other = { region: 'eu-west', server, service: OTHER };
  // Both probed a few times (one probe, shared, counts for each; interval 1 s).
  let m = await scrape(listener.port);
  for (let started = Date.now(); ; ) {
    if ((m.value('opengslb_health_check_results_total', { ...app, result: 'success' }) ?? 0) >= 3) break;
    assert.ok(Date.now() - started < 10_000, 'three successful checks within 10 s');
    await new Promise((r) => setTimeout(r, 200));
    m = await scrape(listener.port);
  }
  const counted = m.value('opengslb_health_check_results_total', { ...app, result: 'success' }) as number;
  assert.equal(m.value('opengslb_health_check_results_total', { ...other, result: 'success' }), counted, 'the shared probe counted for each, not twice for one');
  assert.equal(m.value('opengslb_health_check_results_total', { ...app, result: 'failure' }), 0, 'both results from the first check');
  for (const labels of [app, other]) assert.equal(m.value('opengslb_server_healthy', labels), 1, JSON.stringify(labels));
  assert.equal(m.value('opengslb_server_healthy', { region: 'eu-west', server }), undefined, 'no series without the service');

  // The agent stops reporting the other service's backend: its series go, the app's stay and keep counting.
  assert.equal((await send(agent.seal(agent.heartbeat([backend(APP, '127.0.0.1', port)]))))?.status, 'ok');
  await ow.whenPublished();
  m = await scrape(listener.port);
  assert.equal(m.value('opengslb_server_healthy', other), undefined);
  assert.equal(m.value('opengslb_health_check_results_total', { ...other, result: 'success' }), undefined);
  assert.equal(m.value('opengslb_server_healthy', app), 1);
  const after = m.value('opengslb_health_check_results_total', { ...app, result: 'success' }) as number;
  assert.ok(after >= counted, `the app's counter went on (${counted} -> ${after}), no reset`);
});
