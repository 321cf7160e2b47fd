// A revoked agent, end to end: the opengslb binary as overwatch and as agent
// (child processes on loopback), the revocation made through the admin API.
// What the agent's operator reads must name the revocation and what ends it,
// not send them to the service token. Waits are for log lines.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpBackend } from '../helpers/backends.ts';
import { gossipPortOf, writeAgentFile } from '../helpers/agents.ts';
import { startAgent, startOpengslb } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';

const TOKEN = 'e2e-token-0123456789abcdef';
const APP = 'app.example.test';

async function writeOverwatch(dir: string, key: string): Promise<string> {
  const file = join(dir, 'overwatch.yaml');
  await writeFile(file, [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    '  - { name: eu, servers: [] }',
    'domains:',
    `  - { name: ${APP}, regions: [eu], max_answers: 4 }`,
    'api: { enabled: true, address: "127.0.0.1:0" }',
    'overwatch:',
    '  data_dir: ./state',
    `  agent_tokens: { ${APP}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  return file;
}

test('a revoked agent says it is revoked and how that ends, for its messages and for its registration after a restart, not "check the service token"', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-agents-');
  const key = randomBytes(32).toString('base64');
  const app = await httpBackend(t);
  const ow = await startOpengslb(t, await writeOverwatch(dir, key));
  const gossipPort = await gossipPortOf(ow);
  const base = `http://${/"address":"(127\.0\.0\.1:\d+)"/.exec(await ow.out.waitFor(/API listening/))?.[1]}`;
  const agentFile = await writeAgentFile({ file: join(dir, 'agent.yaml'), token: TOKEN, region: 'eu', key, overwatchPorts: [gossipPort], backends: [[APP, app]], heartbeat: { interval: '1s', full: '1s' } });
  const agent = await startAgent(t, agentFile);
  await ow.out.waitFor(/agent registered/);
  const id = agent.agentId;
  const revoked = await fetch(`${base}/api/v1/overwatch/agents/${id}/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'host compromised' }) });
  assert.equal(revoked.status, 200, await revoked.text());

  const running = await agent.out.waitFor(/"reason":"revoked"/, 0, 10_000);
  assert.match(running, new RegExp(`overwatch refused a message: this agent \\(${id}\\) is revoked there.*opengslb-cli agents delete ${id}`));
  agent.child.kill('SIGTERM');
  await agent.exited;

  const restarted = await startAgent(t, agentFile);
  const told = await restarted.out.waitFor(/overwatch refused the registration/, 0, 10_000);
  assert.match(told, /"reason":"revoked"/);
  assert.match(told, new RegExp(`this agent \\(${id}\\) is revoked there, so it takes nothing from it.*opengslb-cli agents delete ${id}.*; retrying slowly`));
  assert.doesNotMatch(told, /service_token/, 'a revoked agent\'s token is not the problem');
});
