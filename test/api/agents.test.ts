// The agent routes of the admin API against a real overwatch: with the agent
// channel off (the listing says so, the others answer 404), and on: an agent
// registered over the real channel is listed, shown, revoked (its backend out
// of DNS) and deleted; bad ids and bodies are 400s, unknown agents 404s, and
// writes need the token when api.token is set.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { ask } from '../helpers/dns-client.ts';
import { backend, newIdentity, sendTcp, TestAgent } from '../gossip/helpers.ts';
import { call, startTestApi, YAML } from './helpers.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

test('with the agent channel off, the agents listing says so and the other agent routes answer 404', async (t) => {
  const ow = await Overwatch.start(parseConfigText(YAML, 'agents-off.yaml'), quiet, { healthChecks: 'off' });
  t.after(() => ow.stop(200));
  const { base } = await startTestApi(t, ow);
  const list = await call(base, 'GET', '/api/v1/overwatch/agents');
  assert.equal(list.status, 200);
  assert.deepEqual({ ...list.body, generated_at: typeof list.body.generated_at }, { channel_enabled: false, agents: [], messages: null, drops: null, generated_at: 'string' });
  for (const [method, path, body] of [['GET', '/api/v1/overwatch/agents/eu-0123456789ab', undefined], ['DELETE', '/api/v1/overwatch/agents/eu-0123456789ab', undefined], ['POST', '/api/v1/overwatch/agents/eu-0123456789ab/revoke', { reason: 'x' }]] as const) {
    const r = await call(base, method, path, body === undefined ? {} : { body });
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.match(r.body.error, /the agent channel is off on this overwatch \(overwatch\.gossip\.encryption_key is not set\)/);
  }
});

test('an agent is listed, shown, revoked (its backend leaves DNS) and deleted through the API; bad input is a 400, unknown agents a 404', async (t) => {
  const key = randomBytes(32).toString('base64');
  const token = 'app-token-0123456789abcdef';
  const yaml = `${YAML.replace('logging: { level: error }', '').replace('ttl: 30 }', 'ttl: 30, max_answers: 8 }')}overwatch:\n  agent_tokens: { app.example.test: ${token} }\n  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }\n`;
  const ow = await Overwatch.start(parseConfigText(yaml, 'agents-on.yaml'), quiet, { healthChecks: 'off', store: new MemoryStore() });
  t.after(() => ow.stop(200));
  const { base } = await startTestApi(t, ow, { token: 'api-token-0123456789abcdef' });
  const auth = { authorization: 'Bearer api-token-0123456789abcdef' };
  const keyring = Keyring.fromBase64(key);
  const agent = new TestAgent((await newIdentity(t)).identity, keyring, { 'app.example.test': token });
  const id = agent.identity.agentId;
  const [ack] = await sendTcp('127.0.0.1', ow.agents?.receiver?.port as number, [agent.seal(agent.register([backend('app.example.test', '192.0.2.99', 80)], agent.tokens, 'eu'))], keyring);
  assert.equal(ack?.status, 'ok');
  await ow.whenPublished();
  const addresses = async (): Promise<string[]> => (((await ask(ow.port, 'app.example.test', 'A')).answers ?? []) as { data: string }[]).map((a) => a.data);
  assert.ok((await addresses()).includes('192.0.2.99'));

  const list = await call(base, 'GET', '/api/v1/overwatch/agents');
  assert.equal(list.status, 200);
  assert.equal(list.body.channel_enabled, true);
  assert.deepEqual(list.body.agents.map((a: { agent_id: string; state: string; backend_count: number }) => [a.agent_id, a.state, a.backend_count]), [[id, 'live', 1]]);
  assert.equal(list.body.messages.register, 1);
  assert.equal(list.body.drops.replayed, 0);

  const show = await call(base, 'GET', `/api/v1/overwatch/agents/${id}`);
  assert.equal(show.status, 200);
  assert.equal(show.body.agent.fingerprint, agent.identity.fingerprint);
  assert.deepEqual(show.body.backends.map((b: { address: string; state: string; agent_health: string }) => [b.address, b.state, b.agent_health]), [['192.0.2.99', 'healthy', 'healthy']]);

  const cases: { name: string; method: string; path: string; body?: unknown; headers?: Record<string, string>; status: number; error: RegExp }[] = [
    { name: 'an id that is not one', method: 'GET', path: '/api/v1/overwatch/agents/bad%20id', status: 400, error: /id/ },
    { name: 'an unknown agent', method: 'GET', path: '/api/v1/overwatch/agents/eu-000000000000', status: 404, error: /no agent eu-000000000000 is known/ },
    { name: 'a revoke without a reason', method: 'POST', path: `/api/v1/overwatch/agents/${id}/revoke`, body: {}, headers: auth, status: 400, error: /reason/ },
    { name: 'a revoke without the token', method: 'POST', path: `/api/v1/overwatch/agents/${id}/revoke`, body: { reason: 'x' }, status: 401, error: /API token/ },
    { name: 'a revoke of an unknown agent', method: 'POST', path: '/api/v1/overwatch/agents/eu-000000000000/revoke', body: { reason: 'x' }, headers: auth, status: 404, error: /no agent/ },
    { name: 'a delete of an unknown agent', method: 'DELETE', path: '/api/v1/overwatch/agents/eu-000000000000', headers: auth, status: 404, error: /no agent/ },
  ];
  for (const c of cases) {
    const r = await call(base, c.method, c.path, { ...(c.body === undefined ? {} : { body: c.body }), ...(c.headers === undefined ? {} : { headers: c.headers }) });
    assert.equal(r.status, c.status, `${c.name}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.error, c.error, c.name);
  }

  const revoked = await call(base, 'POST', `/api/v1/overwatch/agents/${id}/revoke`, { body: { reason: 'host compromised' }, headers: auth });
  assert.equal(revoked.status, 200);
  assert.equal(revoked.body.state, 'revoked');
  assert.equal(revoked.body.revoked_reason, 'host compromised');
  assert.ok(!(await addresses()).includes('192.0.2.99'), 'out of DNS at once');
  const gone = await call(base, 'DELETE', `/api/v1/overwatch/agents/${id}`, { headers: auth });
  assert.equal(gone.status, 204);
  assert.equal((await call(base, 'GET', `/api/v1/overwatch/agents/${id}`)).status, 404);
});
