// What the overwatch refuses, seen from outside: the opengslb binary as
// overwatch (a child process), and this test as the agent and the attacker,
// sealing real messages with real keys and certificates and sending them over
// TCP to the channel's port. Each refused message must leave the agents and
// their backends exactly as they were, and be counted under its reason in the
// API and the metrics.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Keyring } from '../../src/gossip/envelope.ts';
import { rotateAgentIdentity } from '../../src/gossip/identity.ts';
import type { AckMessage } from '../../src/gossip/messages.ts';
import { httpBackend } from '../helpers/backends.ts';
import { startOpengslb } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';
import { backend, newIdentity, sendTcp, TestAgent } from '../gossip/helpers.ts';

const APP = 'app.example.test';
const API = 'api.example.test';
const APP_TOKEN = 'app-token-0123456789abcdef';
const API_TOKEN = 'api-token-0123456789abcdef';

interface AgentsBody {
  agents: { agent_id: string; state: string; backend_count: number; services: string[]; revoked_at: string | null }[];
  drops: Record<string, number>;
  messages: Record<string, number>;
}

test('every refused agent message leaves the state as it was and is counted under its reason in the API and the metrics', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-refusals-');
  const keyString = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(keyString);
  const file = join(dir, 'overwatch.yaml');
  await writeFile(file, [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    '  - { name: eu-west, servers: [] }',
    'domains:',
    `  - { name: ${APP}, regions: [eu-west] }`,
    `  - { name: ${API}, regions: [eu-west] }`,
    'api: { enabled: true, address: "127.0.0.1:0" }',
    'metrics: { enabled: true, address: "127.0.0.1:0" }',
    'overwatch:',
    '  data_dir: ./state',
    `  agent_tokens: { ${APP}: ${APP_TOKEN}, ${API}: ${API_TOKEN} }`,
    `  gossip: { encryption_key: "${keyString}", bind_address: "127.0.0.1:0" }`,
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  const ow = await startOpengslb(t, file);
  const apiLine = await ow.out.waitFor(/API listening/);
  const base = `http://${/"address":"(127\.0\.0\.1:\d+)"/.exec(apiLine)?.[1]}`;
  const metricsLine = await ow.out.waitFor(/metrics listening/);
  const metricsUrl = `http://${/"address":"(127\.0\.0\.1:\d+)"/.exec(metricsLine)?.[1]}/metrics`;
  const gossipLine = await ow.out.waitFor(/agent channel listening/);
  const port = Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(gossipLine)?.[1]);
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${base}${path}`)).json()) as T;
  const send = async (bytes: Uint8Array, withKeyring = keyring): Promise<AckMessage | null> => (await sendTcp('127.0.0.1', port, [bytes], withKeyring))[0];

  // The legitimate agent: pinned for app.example.test, its backend answered.
  const web = await httpBackend(t);
  const a = await newIdentity(t);
  const agent = new TestAgent(a.identity, keyring, { [APP]: APP_TOKEN });
  const ok = await send(agent.seal(agent.register([backend(APP, web.address, web.port)])));
  assert.equal(ok?.status, 'ok', JSON.stringify(ok));
  // A second one, revoked below.
  const b = await newIdentity(t);
  const other = new TestAgent(b.identity, keyring, { [API]: API_TOKEN });
  assert.equal((await send(other.seal(other.register([backend(API, web.address, web.port)]))))?.status, 'ok');
  // Both backends checked healthy, and the legitimate one in DNS (its server published), before the state is taken.
  await ow.out.waitFor(new RegExp(`"agent":"${a.identity.agentId}".*"to":"healthy"`));
  await ow.out.waitFor(new RegExp(`"agent":"${b.identity.agentId}".*"to":"healthy"`));
  for (let i = 0; i < 100 && (await ask(ow.port, APP, 'A')).answers?.length !== 1; i++) await new Promise((r) => setTimeout(r, 50));
  const revoke = await fetch(`${base}/api/v1/overwatch/agents/${b.identity.agentId}/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'host compromised' }) });
  assert.equal(revoke.status, 200, await revoke.clone().text());

  /** What must not change: the agents and every agent backend, without the clocks. */
  const state = async (): Promise<string> => {
    const agents = await get<AgentsBody>('/api/v1/overwatch/agents');
    const backends = await get<{ backends: Record<string, unknown>[] }>('/api/v1/overwatch/backends?source=agent');
    return JSON.stringify({
      agents: agents.agents.map((x) => ({ id: x.agent_id, state: x.state, backends: x.backend_count, services: x.services, revoked: x.revoked_at !== null })),
      backends: backends.backends.map(({ agent_last_seen: _seen, ...rest }) => rest),
    });
  };
  // The revocation takes the revoked agent's backend out at the next snapshot: take the state once it has.
  let before = await state();
  for (let i = 0; i < 100 && before.includes(`"service":"${API}"`); i++) {
    await new Promise((r) => setTimeout(r, 50));
    before = await state();
  }
  assert.match(before, new RegExp(`"id":"${a.identity.agentId}","state":"live"`));
  assert.match(before, /"authority":"agent"/);

  // An accepted heartbeat, sent again below as a replay.
  const heartbeat = agent.seal(agent.heartbeat([], false));
  assert.equal((await send(heartbeat))?.status, 'ok');

  const wrongKey = new Keyring(randomBytes(32));
  const rotated = await rotateAgentIdentity({ certPath: join(a.dir, 'agent.crt'), keyPath: join(a.dir, 'agent.key'), region: 'eu-west' }, a.identity);
  const impostor = new TestAgent(rotated, keyring, { [APP]: APP_TOKEN });
  // The same agent id: numbered above the real agent's messages, so only the certificate can refuse it.
  impostor.seq = agent.seq + 1000;
  const stranger = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: APP_TOKEN });
  const cases: { name: string; bytes: () => Buffer; reason: string; ack: 'refused' | 'none' }[] = [
    { name: 'a message sealed under another key', bytes: () => new TestAgent(a.identity, wrongKey, {}).seal(agent.heartbeat([], false)), reason: 'unknown_key', ack: 'none' },
    {
      name: 'a tampered ciphertext',
      bytes: () => {
        const sealed = agent.seal(agent.heartbeat([backend(APP, web.address, web.port, 'unhealthy')], false));
        sealed[40] ^= 0x01;
        return sealed;
      },
      reason: 'decrypt_failed',
      ack: 'none',
    },
    { name: 'a replayed heartbeat', bytes: () => heartbeat, reason: 'replayed', ack: 'refused' },
    { name: 'a registration with a wrong token', bytes: () => stranger.seal(stranger.register([backend(APP, '192.0.2.50', 80)], { [APP]: 'not-the-token-0123456789' })), reason: 'token_mismatch', ack: 'refused' },
    { name: 'a registration proving another service\'s token', bytes: () => stranger.seal(stranger.register([backend(APP, '192.0.2.50', 80)], { [APP]: API_TOKEN })), reason: 'token_mismatch', ack: 'refused' },
    { name: 'a pinned agent reporting a service it did not register', bytes: () => agent.seal(agent.heartbeat([backend(API, '192.0.2.51', 80)], false)), reason: 'service_not_registered', ack: 'refused' },
    { name: 'a second certificate for a pinned agent, not signed by the pinned key', bytes: () => impostor.seal(impostor.register([backend(APP, '192.0.2.52', 80)]), { previous: null }), reason: 'certificate_mismatch', ack: 'refused' },
    { name: 'a heartbeat of a revoked agent', bytes: () => other.seal(other.heartbeat([backend(API, web.address, web.port)], true)), reason: 'revoked', ack: 'refused' },
    { name: 'a registration of a revoked agent with its valid token', bytes: () => other.seal(other.register([backend(API, web.address, web.port)])), reason: 'revoked', ack: 'refused' },
    { name: 'a registration in a region this overwatch lacks', bytes: () => stranger.seal(stranger.register([backend(APP, '192.0.2.53', 80)], { [APP]: APP_TOKEN }, 'mars')), reason: 'unknown_region', ack: 'refused' },
  ];
  for (const c of cases) {
    await t.test(`refuses ${c.name} (${c.reason})`, async () => {
      const drops = (await get<AgentsBody>('/api/v1/overwatch/agents')).drops[c.reason];
      const ack = await send(c.bytes());
      if (c.ack === 'none') assert.equal(ack, null, 'bytes that do not open get no answer');
      else assert.deepEqual({ status: ack?.status, reason: ack?.reason }, { status: 'refused', reason: c.reason });
      const after = await get<AgentsBody>('/api/v1/overwatch/agents');
      assert.equal(after.drops[c.reason], drops + 1, `${c.reason} counted once`);
      assert.equal(await state(), before, 'the agents and their backends are as they were');
    });
  }
  assert.deepEqual((await ask(ow.port, APP, 'A')).answers?.map((x) => (x as { data: string }).data), [web.address], 'DNS still answers the legitimate agent\'s backend');
  const metrics = await (await fetch(metricsUrl)).text();
  assert.match(metrics, /^opengslb_overwatch_agent_drops_total\{reason="token_mismatch"\} 2$/m);
  assert.match(metrics, /^opengslb_overwatch_agent_drops_total\{reason="revoked"\} 2$/m);
  assert.match(metrics, /^opengslb_overwatch_agents\{state="revoked"\} 1$/m);
  assert.match(metrics, /^opengslb_overwatch_agents\{state="live"\} 1$/m);
});
