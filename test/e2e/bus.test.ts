// The NATS bus (agent.bus, overwatch.bus): a real nats-server (Debian's
// nats-server, with JetStream), two overwatch processes and one agent
// process that reaches them only through NATS (no overwatch_nodes), real HTTP
// backends, DNS asked over UDP. Both overwatches answer the agent's backends;
// a failing backend leaves both; with nats-server stopped both keep answering
// from what they last heard; a change made meanwhile reaches both once
// nats-server is back (the agent sends its whole state again on reconnect).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { httpBackend, type Backend } from '../helpers/backends.ts';
import { writeAgentFile } from '../helpers/agents.ts';
import { freePort, startAgent, startOpengslb, type RunningServer } from '../helpers/child.ts';
import { needsNats, startNats } from '../helpers/nats.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { answerLine, untilAnswered } from '../helpers/dns-client.ts';

const TOKEN = 'bus-token-0123456789abcdef';
const NAME = 'app.example.test';

const skip = needsNats || posixOnly.skip;

/** Extra settings of one test's overwatches: static, unchecked servers in the region, and the admin API. */
interface OverwatchExtras {
  readonly servers?: readonly string[];
  readonly api?: { readonly port: number; readonly token: string };
  /** false: the same overwatch without overwatch.bus (as before it was turned on). */
  readonly bus?: boolean;
}

async function writeOverwatch(dir: string, n: number, key: string, natsPort: number, stateSecret: string, extras: OverwatchExtras = {}): Promise<string> {
  const home = join(dir, `ow${n}`);
  await mkdir(home, { recursive: true });
  const file = join(home, 'overwatch.yaml');
  await writeFile(file, [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions:',
    extras.servers === undefined
      ? '  - { name: eu, servers: [] }'
      : `  - { name: eu, servers: [${extras.servers.map((a) => `{ address: ${a} }`).join(', ')}], health_check: { type: none } }`,
    'domains:',
    `  - { name: ${NAME}, regions: [eu], max_answers: 8 }`,
    extras.api === undefined ? 'api: { enabled: false }' : `api: { enabled: true, address: "127.0.0.1:${extras.api.port}", token: ${extras.api.token} }`,
    'overwatch:',
    '  data_dir: ./state',
    `  agent_tokens: { ${NAME}: ${TOKEN} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:0" }`,
    ...(extras.bus === false ? [] : [`  bus: { type: nats, servers: ["nats://127.0.0.1:${natsPort}"], state_secret: "${stateSecret}" }`]),
    // Longer than NATS stays down here: the overwatches keep the agent's backends meanwhile.
    '  stale: { threshold: 30s, remove_after: 120s }',
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  return file;
}

async function writeAgent(dir: string, key: string, natsPort: number, backends: readonly Backend[]): Promise<string> {
  const home = join(dir, 'agent');
  await mkdir(home, { recursive: true });
  return writeAgentFile({
    file: join(home, 'agent.yaml'),
    token: TOKEN,
    region: 'eu',
    key,
    overwatchPorts: [],
    natsPort,
    backends: backends.map((b) => [NAME, b] as const),
    heartbeat: { interval: '1s', full: '3s' },
  });
}

/** The addresses an overwatch answers for NAME, sorted, or its rcode. */
const answer = (port: number): Promise<string> => answerLine(port, NAME);
/** Asks until the overwatch answers `expected`. */
const until = (port: number, expected: string, timeoutMs: number): Promise<void> => untilAnswered(port, NAME, expected, timeoutMs);

test('two overwatches and an agent over NATS: both answer its backends, a failure leaves both, NATS down keeps the last state, and a change made meanwhile reaches both after NATS returns', { skip }, async (t: TestContext) => {
  const dir = await tempDir(t, 'opengslb-bus-');
  const key = randomBytes(32).toString('base64');
  const natsPort = await freePort();
  const natsDir = join(dir, 'nats');
  let nats = await startNats(t, natsPort, natsDir);

  const stateSecret = randomBytes(32).toString('base64');
  const overwatches = await Promise.all([0, 1].map(async (n) => startOpengslb(t, await writeOverwatch(dir, n, key, natsPort, stateSecret))));
  for (const ow of overwatches) await ow.out.waitFor(/agent bus connected/);
  const b = await Promise.all([0, 1].map(() => httpBackend(t)));
  const both = b.map((x) => x.address).sort().join(',');

  // Anyone on NATS can read the subject; what they see is sealed. Keep what the agent sends while both
  // backends are up, from its registration on (listening before it starts, while the overwatches take it).
  const spy = await connect({ servers: [`nats://127.0.0.1:${natsPort}`] });
  t.after(() => spy.close());
  const captured: Uint8Array[] = [];
  const capturedAtMs: number[] = [];
  spy.subscribe('opengslb.agents.>', { callback: (err, msg) => { if (err === null) { captured.push(msg.data); capturedAtMs.push(Date.now()); } } });
  await spy.flush();

  const agent = await startAgent(t, await writeAgent(dir, key, natsPort, b));
  const running = Date.now();
  assert.match(agent.out.text, /publishing to the NATS bus/);

  // The agent has no overwatch_nodes: whatever the overwatches know came over NATS.
  for (const ow of overwatches) await until(ow.port, both, 15_000);
  for (const ow of overwatches) assert.match(ow.out.text, /"via":"bus".*agent registered/);

  // The registration and heartbeats (1 s apart) since: 2 at least within 3.5 s of the agent's start.
  const inTime = (): number => capturedAtMs.filter((at) => at <= running + 3500).length;
  while (inTime() < 2 && Date.now() <= running + 3500) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(inTime() >= 2, `captured ${inTime()} messages in 3.5 s at a 1 s heartbeat`);
  assert.ok(captured.every((m) => !Buffer.from(m).includes(Buffer.from(NAME))), 'a bus message shows the service name in clear');

  // A backend failing its checks leaves both overwatches' answers.
  b[1]!.status = 503;
  for (const ow of overwatches) await until(ow.port, b[0]!.address, 10_000);

  // Replayed and forged bytes on the subject change nothing: replay window and key, as on UDP/TCP.
  const marks = overwatches.map((ow) => ow.out.lines.length);
  for (const m of captured) spy.publish('opengslb.agents.eu', m);
  spy.publish('opengslb.agents.eu', randomBytes(200));
  // A reply subject NATS would refuse to publish to: no ack, no crash.
  spy.publish('opengslb.agents.eu', captured[0]!, { reply: 'opengslb.acks.*' });
  await spy.flush();
  for (const [i, ow] of overwatches.entries()) await ow.out.waitFor(/"transport":"bus".*agent message dropped/, marks[i], 5000);
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const ow of overwatches) assert.equal(ow.child.exitCode ?? ow.child.signalCode, null, `an overwatch exited after hostile bus messages:\n${ow.err.text}`);
  for (const ow of overwatches) assert.equal(await answer(ow.port), b[0]!.address, 'a replayed message brought the failed backend back');
  await spy.close();

  // NATS stopped: both keep answering from the last state.
  await nats.stop();
  const stoppedAt = Date.now();
  for (const ow of overwatches) await ow.out.waitFor(/agent bus disconnected/, 0, 10_000);
  for (const ow of overwatches) assert.equal(await answer(ow.port), b[0]!.address, 'an overwatch changed its answer as NATS went down');

  // Meanwhile the backends swap: b0 fails, b1 recovers; the agent sees it (its checks run every second) but cannot tell anyone.
  const swapped = agent.out.lines.length;
  b[0]!.status = 503;
  b[1]!.status = 200;
  const seen = (x: Backend, msg: string): RegExp => new RegExp(`"backend":"${`${NAME} ${x.address}:${x.port}`.replaceAll('.', '\\.')}".*"msg":"${msg}"`);
  await agent.out.waitFor(seen(b[0]!, 'backend down'), swapped, 10_000);
  await agent.out.waitFor(seen(b[1]!, 'backend up'), swapped, 10_000);
  // NATS down for 2 s at least (about what the agent's checks take to see b0 fail), then asked again.
  const downForMs = Date.now() - stoppedAt;
  if (downForMs < 2000) await new Promise((resolve) => setTimeout(resolve, 2000 - downForMs));
  for (const ow of overwatches) assert.equal(await answer(ow.port), b[0]!.address, 'an overwatch changed its answer while NATS was down');

  // NATS back on the same port: the agent reconnects and sends its whole state; both overwatches follow.
  const mark = agent.out.lines.length;
  nats = await startNats(t, natsPort, natsDir);
  await agent.out.waitFor(/agent bus reconnected/, mark, 15_000);
  for (const ow of overwatches) await until(ow.port, b[1]!.address, 15_000);
});

/**
 * A NATS server with JetStream and what two overwatches with the admin API need to run on it:
 * config(n) writes overwatch n's config (with the bus unless `bus` is false), override(n, method, body)
 * PUTs or DELETEs the override of 127.0.0.20 in app.example.test through overwatch n's API.
 */
async function apiFleet(t: TestContext, prefix: string) {
  const dir = await tempDir(t, prefix);
  const key = randomBytes(32).toString('base64');
  const natsPort = await freePort();
  const natsDir = join(dir, 'nats');
  const nats = await startNats(t, natsPort, natsDir);
  const apiToken = 'bus-api-token-0123456789';
  const stateSecret = randomBytes(32).toString('base64');
  const apiPorts = [await freePort(), await freePort()];
  return {
    nats,
    restartNats: () => startNats(t, natsPort, natsDir),
    apiPorts,
    config: (n: number, bus = true): Promise<string> =>
      writeOverwatch(dir, n, key, natsPort, stateSecret, { servers: ['127.0.0.10', '127.0.0.20'], api: { port: apiPorts[n]!, token: apiToken }, bus }),
    override: (n: number, method: 'PUT' | 'DELETE', body?: unknown): Promise<Response> => fetch(`http://127.0.0.1:${apiPorts[n]}/api/v1/overrides/${NAME}/127.0.0.20`, {
      method,
      headers: { authorization: `Bearer ${apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  };
}

/** The overrides overwatch `apiPort` lists: address, healthy, reason, source. */
async function listedOverrides(apiPort: number): Promise<[string, boolean, string, string][]> {
  const body = await (await fetch(`http://127.0.0.1:${apiPort}/api/v1/overrides`)).json() as { overrides: { address: string; healthy: boolean; reason: string; source: string }[] };
  return body.overrides.map((o) => [o.address, o.healthy, o.reason, o.source]);
}

test('with the bus, an override set through one overwatch\'s API shows up on the other (JetStream key-value bucket), and a clear through the other reaches the first', { skip }, async (t: TestContext) => {
  const f = await apiFleet(t, 'opengslb-bus-kv-');
  const overwatches = await Promise.all([0, 1].map(async (n) => startOpengslb(t, await f.config(n))));
  for (const ow of overwatches) await ow.out.waitFor(/operator state replicated through the JetStream bucket/, 0, 10_000);
  for (const ow of overwatches) await until(ow.port, '127.0.0.10,127.0.0.20', 5000);

  const put = await f.override(0, 'PUT', { healthy: false, reason: 'kernel upgrade', source: 'alice' });
  assert.equal(put.status, 200, await put.text());
  await until(overwatches[0]!.port, '127.0.0.10', 5000);
  await until(overwatches[1]!.port, '127.0.0.10', 5000);
  assert.deepEqual(await listedOverrides(f.apiPorts[1]!), [['127.0.0.20', false, 'kernel upgrade', 'alice']]);
  await overwatches[1]!.out.waitFor(/override set by another overwatch/);

  const del = await f.override(1, 'DELETE');
  assert.equal(del.status, 204, await del.text());
  await until(overwatches[0]!.port, '127.0.0.10,127.0.0.20', 5000);
});

test('turning the bus on puts what an overwatch held before (an override set without it) in the bucket, and another overwatch applies it', { skip }, async (t: TestContext) => {
  const f = await apiFleet(t, 'opengslb-bus-seed-');

  // Before the bus: an override set through the first overwatch's API, kept in its state store.
  const before = await startOpengslb(t, await f.config(0, false));
  const put = await f.override(0, 'PUT', { healthy: false, reason: 'set before the bus', source: 'alice' });
  assert.equal(put.status, 200, await put.text());
  await until(before.port, '127.0.0.10', 5000);
  before.child.kill('SIGTERM');
  await once(before.child, 'exit');

  // The same overwatch with the bus on, then a second one that never saw the override.
  const first = await startOpengslb(t, await f.config(0));
  await first.out.waitFor(/operator state this overwatch held that the bucket did not have is put in it/, 0, 10_000);
  const second = await startOpengslb(t, await f.config(1));
  await second.out.waitFor(/override set by another overwatch/, 0, 10_000);
  await until(second.port, '127.0.0.10', 5000);
  assert.deepEqual(await listedOverrides(f.apiPorts[1]!), [['127.0.0.20', false, 'set before the bus', 'alice']]);
  // Started again, the first finds its override in the bucket: nothing more to put.
  first.child.kill('SIGTERM');
  await once(first.child, 'exit');
  const again = await startOpengslb(t, await f.config(0));
  await again.out.waitFor(/operator state replicated through the JetStream bucket/, 0, 10_000);
  await until(again.port, '127.0.0.10', 5000);
  // Seeding follows the bucket's opening within milliseconds; a second is ample for a line that must not come.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.ok(!again.out.lines.some((l) => /is put in it \(set before the bus was on\)/.test(l)), 'the second start seeds nothing');
});

test('an override cleared while NATS is down stays cleared through a restart of its overwatch before NATS returns, and then is cleared on the other', { skip }, async (t: TestContext) => {
  const f = await apiFleet(t, 'opengslb-bus-pending-');
  const [first, second] = await Promise.all([0, 1].map(async (n) => startOpengslb(t, await f.config(n)))) as [RunningServer, RunningServer];
  for (const ow of [first, second]) await ow.out.waitFor(/operator state replicated through the JetStream bucket/, 0, 10_000);

  // Set with NATS up: both overwatches leave 127.0.0.20 out, and the bucket holds the override.
  const put = await f.override(0, 'PUT', { healthy: false, reason: 'maintenance', source: 'alice' });
  assert.equal(put.status, 200, await put.text());
  await until(second.port, '127.0.0.10', 5000);

  // NATS down; the override is cleared on the first, which then restarts before NATS is back.
  await f.nats.stop();
  await first.out.waitFor(/operator state bucket unreachable/, 0, 10_000);
  const del = await f.override(0, 'DELETE');
  assert.equal(del.status, 204, await del.text());
  await until(first.port, '127.0.0.10,127.0.0.20', 5000);
  first.child.kill('SIGTERM');
  await once(first.child, 'exit');
  const again = await startOpengslb(t, await f.config(0));
  await until(again.port, '127.0.0.10,127.0.0.20', 5000);

  // NATS back: the clear kept in the first's state store is put (it is the bucket's entry now); the second
  // clears too, and the first does not take the override back.
  await f.restartNats();
  await second.out.waitFor(/override cleared by another overwatch/, 0, 15_000);
  await until(second.port, '127.0.0.10,127.0.0.20', 5000);
  assert.ok(!again.out.lines.some((l) => /override set by another overwatch/.test(l)), 'the restarted overwatch applied the old override from the bucket');
  assert.equal(await answer(again.port), '127.0.0.10,127.0.0.20', 'the restarted overwatch took the cleared override back from the bucket');
});
