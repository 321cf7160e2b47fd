// An agent's certificate rotation over the NATS bus (agent.bus, overwatch.bus)
// while one overwatch is away: a real nats-server, two overwatch processes
// with their own state directories, one agent process and real HTTP backends.
// On the bus the agent's acks do not name the overwatch that sent them, so
// one overwatch's ack must not be taken as "every overwatch has the new
// certificate": the overwatch that was away comes back with the old pin, and
// only a registration signed by the old key moves it to the new certificate.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Writable } from 'node:stream';
import { connect } from '@nats-io/transport-node';
import { Agent } from '../../src/agent/agent.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { loadOrCreateAgentIdentity, rotateAgentIdentity } from '../../src/gossip/identity.ts';
import { createLogger } from '../../src/log/logger.ts';
import { writeAgentFile } from '../helpers/agents.ts';
import { httpBackend } from '../helpers/backends.ts';
import { freePort, startAgent, startOpengslb, type RunningAgent, type RunningServer } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { answerLine, untilAnswered } from '../helpers/dns-client.ts';
import { needsNats, startNats } from '../helpers/nats.ts';

const TOKEN = 'bus-rotation-token-0123456789';
const NAME = 'app.example.test';
const skip = needsNats || posixOnly.skip;

async function writeOverwatch(dir: string, n: number, key: string, natsPort: number, stateSecret: string): Promise<string> {
  const home = join(dir, `ow${n}`);
  await mkdir(home, { recursive: true });
  const file = join(home, 'overwatch.yaml');
  await writeFile(file, [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions: [{ name: eu, servers: [] }]',
    `domains: [{ name: ${NAME}, regions: [eu], max_answers: 8 }]`,
    'api: { enabled: false }',
    'overwatch:',
    // Pins live here: the overwatch that was away comes back with the pin it had.
    '  data_dir: ./state',
    `  agent_tokens: { ${NAME}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
    `  bus: { type: nats, servers: ["nats://127.0.0.1:${natsPort}"], state_secret: "${stateSecret}" }`,
    '  stale: { threshold: 30s, remove_after: 120s }',
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  return file;
}

/** The addresses an overwatch answers for NAME, sorted, or its rcode. */
const answer = (port: number): Promise<string> => answerLine(port, NAME);
/** Asks until the overwatch answers `expected`. */
const until = (port: number, expected: string, timeoutMs: number): Promise<void> => untilAnswered(port, NAME, expected, timeoutMs);

async function stop(p: RunningServer | RunningAgent): Promise<void> {
  p.child.kill('SIGTERM');
  const exit = await p.exited;
  assert.equal(exit.code, 0, `exited ${JSON.stringify(exit)}`);
}

test('over NATS, an agent keeps its rotated-out key while an overwatch that was away still holds the old pin: that overwatch takes the new certificate when it is back and follows the agent again', { skip }, async (t: TestContext) => {
  const dir = await tempDir(t, 'opengslb-bus-rotation-');
  const key = randomBytes(32).toString('base64');
  const stateSecret = randomBytes(32).toString('base64');
  const natsPort = await freePort();
  await startNats(t, natsPort, join(dir, 'nats'));
  const configs = await Promise.all([0, 1].map((n) => writeOverwatch(dir, n, key, natsPort, stateSecret)));
  const [b0, b1] = await Promise.all([httpBackend(t), httpBackend(t)]);
  const agentHome = join(dir, 'agent');
  await mkdir(agentHome, { recursive: true });
  const agentFile = await writeAgentFile({
    file: join(agentHome, 'agent.yaml'), token: TOKEN, region: 'eu', key, overwatchPorts: [], natsPort,
    backends: [[NAME, b0!], [NAME, b1!]], heartbeat: { interval: '1s', full: '3s' },
  });
  const files = { certPath: join(agentHome, 'agent.crt'), keyPath: join(agentHome, 'agent.key'), region: 'eu' };
  const both = [b0!.address, b1!.address].sort().join(',');

  // Both overwatches pin the agent's first certificate.
  const [a, away] = await Promise.all(configs.map((c) => startOpengslb(t, c)));
  await Promise.all([a, away].map((ow) => ow.out.waitFor(/agent bus connected/)));
  const first = await startAgent(t, agentFile);
  await Promise.all([a, away].map((ow) => until(ow.port, both, 15_000)));
  await stop(first);

  // One overwatch goes away; meanwhile the agent's certificate rotates. The rotation is made on the agent's
  // files as the agent makes it (the current pair becomes <path>.previous), and the agent starts with it
  // pending, as after a rotation at start: it registers the new certificate signed by both keys.
  await stop(away);
  await rotateAgentIdentity(files, (await loadOrCreateAgentIdentity(files)).identity);
  const markA = a.out.lines.length;
  const agent = await startAgent(t, agentFile);
  await a.out.waitFor(/agent certificate rotated/, markA, 10_000);

  // Three more of the agent's messages (heartbeats, 1 s apart) reach NATS after the present overwatch took
  // the rotation: each heartbeat is when the agent decides whether to delete the previous key.
  const spy = await connect({ servers: [`nats://127.0.0.1:${natsPort}`] });
  t.after(() => spy.close());
  let seen = 0;
  const heard = new Promise<void>((resolve) => {
    spy.subscribe('opengslb.agents.>', { callback: (err) => { if (err === null && ++seen === 3) resolve(); } });
  });
  await spy.flush();
  await heard;
  await spy.close();
  assert.doesNotMatch(agent.out.text, /previous key is deleted/, 'one overwatch\'s ack on the bus was taken for every overwatch\'s');
  await access(`${files.keyPath}.previous`);
  await access(`${files.certPath}.previous`);

  // The overwatch that was away comes back with the old pin (its state directory): it takes the new
  // certificate, signed by the pinned key, without an operator, and follows the agent's backends again.
  const back = await startOpengslb(t, configs[1]!);
  await back.out.waitFor(/agent bus connected/);
  await back.out.waitFor(/agent certificate rotated/, 0, 15_000);
  b1!.status = 503;
  await Promise.all([a, back].map((ow) => until(ow.port, b0!.address, 15_000)));
  assert.match(agent.out.text, /certificate rotation pending on the NATS bus.*"keptUntil"|"keptUntil".*certificate rotation pending on the NATS bus/);
  assert.doesNotMatch(back.out.text, /certificate_mismatch/);
  assert.doesNotMatch(agent.out.text, /previous key is deleted/);
  // The agent's log names what happened, at info: not an "overwatch refused" error.
  assert.match(agent.out.text, /still holds the previous certificate/);
  assert.doesNotMatch(agent.out.text, /overwatch refused/);
});

test('over NATS, the rotated-out key is deleted once its certificate has expired (it approves nothing any more), not before', { skip }, async (t: TestContext) => {
  const dir = await tempDir(t, 'opengslb-bus-rotation-');
  const natsPort = await freePort();
  await startNats(t, natsPort, join(dir, 'nats'), { jetStream: false });
  const web = await httpBackend(t);
  const DAY_MS = 86_400_000;
  // The first certificate made 340 days ago (365-day validity: 25 days left), rotated now.
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu' };
  const old = await loadOrCreateAgentIdentity({ ...files, now: () => Date.now() - 340 * DAY_MS });
  const rotated = await rotateAgentIdentity(files, old.identity);
  assert.equal(rotated.previous?.notAfterMs, old.identity.notAfterMs);
  let offsetMs = 0;
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({ write: (c, _e, done) => { lines.push(String(c)); done(); } }));
  const config = parseConfigText([
    'mode: agent',
    'agent:',
    `  identity: { service_token: ${TOKEN}, region: eu, cert_path: ./agent.crt, key_path: ./agent.key }`,
    `  backends: [{ service: ${NAME}, address: ${web.address}, port: ${web.port}, health_check: { type: http, path: /health, interval: 1s, timeout: 500ms } }]`,
    `  gossip: { encryption_key: "${randomBytes(32).toString('base64')}" }`,
    `  bus: { type: nats, servers: ["nats://127.0.0.1:${natsPort}"] }`,
    '  heartbeat: { interval: 1s, full_interval: 1s }',
  ].join('\n'), join(dir, 'agent.yaml'));
  const agent = await Agent.start(config, logger, { version: 'test', now: () => Date.now() + offsetMs });
  t.after(() => agent.stop('test over', 500));
  const messages = (): string[] => lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  const pending = lines.find((l) => l.includes('certificate rotation pending on the NATS bus'));
  assert.ok(pending !== undefined, messages().join('\n'));
  assert.equal((JSON.parse(pending) as { keptUntil: string }).keptUntil, new Date(old.identity.notAfterMs).toISOString());

  // Two heartbeats (1 s apart) with the previous certificate still valid: the key stays.
  const published = (): number => agent.status().sender.busSent;
  const afterBeats = async (n: number): Promise<void> => {
    const target = published() + n;
    const end = Date.now() + n * 1000 + 3000;
    while (published() < target) {
      assert.ok(Date.now() < end, `${n} heartbeats not published within ${n} s and 3 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  await afterBeats(2);
  await access(`${files.keyPath}.previous`);
  assert.ok(!messages().some((m) => /previous key is deleted/.test(m)), messages().join('\n'));

  // The agent's clock past the previous certificate's end (the current one has 339 days left): the next heartbeat deletes it.
  offsetMs = 26 * DAY_MS;
  const end = Date.now() + 5000;
  while (!messages().some((m) => /previous key is deleted/.test(m)) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(messages().filter((m) => /previous key is deleted/.test(m)), ['the rotated-out certificate has expired, so its key approves nothing any more; the previous key is deleted']);
  await assert.rejects(access(`${files.keyPath}.previous`), { code: 'ENOENT' });
  await assert.rejects(access(`${files.certPath}.previous`), { code: 'ENOENT' });
  await agent.stop('test over', 500);
});
