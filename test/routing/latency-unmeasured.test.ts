// Latency routing with a server the overwatch never measures: an agent's
// backend without overwatch.validation gets no check of ours, so no latency
// sample. A real Overwatch (real DNS worker, real HTTP backend checked every
// second, a real agent over TCP): the domain must rank the measured server
// once it has min_samples, not rotate for ever waiting for the unmeasured one.

import { setTimeout } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { httpBackend } from '../helpers/backends.ts';
import { ask } from '../helpers/dns-client.ts';
import { backend, newIdentity, sendTcp, TestAgent, tempDir } from '../gossip/helpers.ts';

const APP = 'app.example.test';
const TOKEN = 'app-token-0123456789abcdef';
const AGENT_BACKEND = '192.0.2.60';
const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

test('a latency domain ranks its measured servers although an agent\'s unvalidated backend never gets a sample; the unmeasured one ranks last, and explain agrees', async (t) => {
  const web = await httpBackend(t);
  const dir = await tempDir(t);
  const key = randomBytes(32).toString('base64');
  const keyring = Keyring.fromBase64(key);
  const yaml = [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    `  - { name: dc, servers: [{ address: ${web.address}, port: ${web.port} }], health_check: { type: http, path: /health, interval: 1s, timeout: 500ms } }`,
    '  - { name: eu-west, servers: [] }',
    `domains: [{ name: ${APP}, regions: [dc, eu-west], routing_algorithm: latency, latency_config: { min_samples: 2 } }]`,
    'overwatch:',
    `  agent_tokens: { ${APP}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
  ].join('\n');
  const ow = await Overwatch.start(parseConfigText(yaml, join(dir, 'overwatch.yaml')), quiet, { store: new MemoryStore() });
  t.after(() => ow.stop(200));
  const port = ow.agents?.receiver?.port as number;
  const agent = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKEN });
  const ack = (await sendTcp('127.0.0.1', port, [agent.seal(agent.register([backend(APP, AGENT_BACKEND, 80)]))], keyring))[0];
  assert.equal(ack?.status, 'ok', JSON.stringify(ack));
  await ow.whenPublished();

  // The checked server reaches min_samples 2 within about two check intervals.
  const measured = (): number => ow.servers().find((s) => s.address === web.address)?.latency_samples ?? 0;
  for (let i = 0; measured() < 2; i++) {
    assert.ok(i < 100, `the checked server has ${measured()} samples after 10 s`);
    await setTimeout(100);
  }
  const agentRow = ow.servers().find((s) => s.address === AGENT_BACKEND);
  assert.equal(agentRow?.status, 'healthy', 'the agent says its backend is healthy');
  assert.equal(agentRow?.latency_ms, null, 'an unmeasured server shows no latency');
  assert.equal(agentRow?.latency_samples, 0);

  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const r = await ask(ow.port, APP, 'A');
    for (const a of (r.answers ?? []) as { data: string }[]) seen.add(a.data);
  }
  assert.deepEqual([...seen], [web.address], 'latency answers the measured server, not a rotation that waits for the unmeasured one');

  const e = ow.explain(APP, 'A', null);
  assert.deepEqual(e.answers, [web.address]);
  assert.equal(e.selection, 'fixed');
  const unmeasured = e.candidates.find((c) => c.address === AGENT_BACKEND);
  assert.equal(unmeasured?.eligible, false);
  assert.equal(unmeasured?.latency_ms, null);
  assert.match(unmeasured?.reason ?? '', /^never measured: the overwatch does not check it .*ranks after every measured server/);

  // The measured server fails: the unmeasured one answers, as the last in rank.
  web.status = 503;
  for (let i = 0; ow.servers().find((s) => s.address === web.address)?.status !== 'unhealthy'; i++) {
    assert.ok(i < 100, 'the checked server is unhealthy within 10 s');
    await setTimeout(100);
  }
  const r = await ask(ow.port, APP, 'A');
  assert.deepEqual(((r.answers ?? []) as { data: string }[]).map((a) => a.data), [AGENT_BACKEND]);
  assert.deepEqual(ow.explain(APP, 'A', null).answers, [AGENT_BACKEND]);
});
