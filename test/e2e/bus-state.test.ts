// The operator state replicated through the bus's JetStream key-value bucket
// (src/bus/replica.ts), with real processes: a real nats-server with
// JetStream, two overwatches sharing overwatch.bus.state_secret, one agent on
// the bus, DNS asked over UDP, DNSSEC judged by delv. The second overwatch
// takes the first's DNSSEC key instead of making one, and a rollover started
// on the first reaches it; a geo mapping set on one routes the other's
// geolocated answers; a revocation on one makes the other refuse the agent,
// and deleting the revoked pin on the other lets it register again; forged, moved, replayed and bare-deleted entries change nothing; changes
// made on both sides while nats-server is stopped reach the other once it is
// back.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { operatorKvKey } from '../../src/bus/replica.ts';
import { deriveStateKey, sealEntry } from '../../src/bus/sealed-entry.ts';
import { writeAgentFile } from '../helpers/agents.ts';
import { httpBackend } from '../helpers/backends.ts';
import { freePort, startAgent, startOpengslb, type RunningServer } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { ask, dnskeysOf } from '../helpers/dns-client.ts';
import { eventually } from '../helpers/eventually.ts';
import { needsNats, startNats } from '../helpers/nats.ts';
import { delvAnchor, missingTool, tool } from '../dnssec/helpers.ts';

const APP = 'app.example.test';
const GEO = 'geo.example.test';
const AGENT_TOKEN = 'bus-state-agent-token-0123456789';
const API_TOKEN = 'bus-state-api-token-0123456789';
const EU = '192.0.2.1';
const US = '198.51.100.1';

const skip = needsNats || missingTool('delv', 'bind9-dnsutils') || posixOnly.skip;

interface Node {
  readonly server: RunningServer;
  readonly api: string;
  readonly metrics: string;
}

async function startNode(t: TestContext, dir: string, name: string, natsPort: number, gossipKey: string, stateSecret: string): Promise<Node> {
  const home = join(dir, name);
  await mkdir(home, { recursive: true });
  const [apiPort, metricsPort] = [await freePort(), await freePort()];
  const file = join(home, 'overwatch.yaml');
  await writeFile(file, [
    'dns:',
    '  listen_address: "127.0.0.1:0"',
    '  workers: 1',
    '  zones: [example.test]',
    '  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]',
    'regions:',
    `  - { name: eu, servers: [{ address: ${EU} }], health_check: { type: none } }`,
    `  - { name: us, servers: [{ address: ${US} }], health_check: { type: none } }`,
    '  - { name: edge, servers: [] }',
    'domains:',
    `  - { name: ${GEO}, routing_algorithm: geolocation, regions: [eu, us] }`,
    `  - { name: ${APP}, regions: [edge], max_answers: 8 }`,
    `api: { enabled: true, address: "127.0.0.1:${apiPort}", token: ${API_TOKEN} }`,
    `metrics: { enabled: true, address: "127.0.0.1:${metricsPort}" }`,
    'overwatch:',
    '  data_dir: ./state',
    `  agent_tokens: { ${APP}: ${AGENT_TOKEN} }`,
    `  gossip: { encryption_key: "${gossipKey}", bind_address: "127.0.0.1:0" }`,
    `  bus: { type: nats, servers: ["nats://127.0.0.1:${natsPort}"], state_secret: "${stateSecret}" }`,
    '  geolocation: { default_region: eu }',
    '  stale: { threshold: 30s, remove_after: 120s }',
    'logging: { level: info, format: json }',
  ].join('\n') + '\n', { mode: 0o600 });
  const server = await startOpengslb(t, file, { timeoutMs: 30_000 });
  await server.out.waitFor(/metrics listening/);
  return { server, api: `http://127.0.0.1:${apiPort}`, metrics: `http://127.0.0.1:${metricsPort}/metrics` };
}

async function call(node: Node, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${node.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function json<T>(node: Node, path: string): Promise<T> {
  const res = await call(node, 'GET', path);
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return (await res.json()) as T;
}

/** The value of one metric series (labels as written in the exposition), or 0 when absent. */
async function metric(node: Node, series: string): Promise<number> {
  const text = await (await fetch(node.metrics)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** The address GEO answers for a client in `clientNet` (an ECS /24). */
async function geoAnswer(node: Node, clientNet: string): Promise<string> {
  const r = await ask(node.server.port, GEO, 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: clientNet } } });
  return ((r.answers ?? []) as { type: string; data: string }[]).filter((a) => a.type === 'A').map((a) => a.data).join(',');
}

interface DnssecStatus {
  keys: { key_tag: number; public_key: string; state: string; flags: number; algorithm_number: number }[];
}

test('two overwatches over the bus share operator state: DNSSEC keys, geo mappings, revocations and their lifting reach the other; forged, moved, replayed and deleted entries change nothing; changes made while NATS is down converge once it is back', { skip }, async (t: TestContext) => {
  const dir = await tempDir(t, 'opengslb-bus-state-');
  const gossipKey = randomBytes(32).toString('base64');
  const stateSecret = randomBytes(32).toString('base64');
  const natsPort = await freePort();
  const natsDir = join(dir, 'nats');
  let nats = await startNats(t, natsPort, natsDir);

  // A starts alone and makes the zone's key; it puts it in the bucket.
  const a = await startNode(t, dir, 'a', natsPort, gossipKey, stateSecret);
  await a.server.out.waitFor(/DNSSEC key created/);
  await eventually('A puts its key', async () => (await metric(a, 'opengslb_overwatch_bus_kv_puts_total{kind="dnssec_key",result="ok"}')) === 1);
  const keyA = (await json<DnssecStatus>(a, '/api/v1/dnssec/status')).keys;
  assert.equal(keyA.length, 1);

  // B joins: it reads the bucket before making a key, so it makes none and signs with A's.
  const b = await startNode(t, dir, 'b', natsPort, gossipKey, stateSecret);
  assert.doesNotMatch(b.server.out.text, /DNSSEC key created/, 'B took the key from the bucket');
  assert.deepEqual((await json<DnssecStatus>(b, '/api/v1/dnssec/status')).keys.map((k) => [k.key_tag, k.public_key, k.state]), [[keyA[0].key_tag, keyA[0].public_key, 'active']]);
  await b.server.out.waitFor(/operator state replicated through the JetStream bucket/);
  const anchor = join(dir, 'anchor.conf');
  await writeFile(anchor, delvAnchor({ zone: 'example.test', flags: keyA[0].flags, algorithm: keyA[0].algorithm_number as 13, publicKey: keyA[0].public_key }));
  const delv = (node: Node, name: string) => tool('delv', ['@127.0.0.1', '-p', String(node.server.port), '-a', anchor, '+root=example.test', name, 'A']);
  for (const node of [a, b]) assert.match(await delv(node, GEO), /^; fully validated$/m, `${node.api}: answers validate with A's key as the only anchor`);

  // The agent of the revocation step, started now: its start (a process's) overlaps the two steps before
  // that one, which it does not touch (it only registers a backend of APP, in region edge).
  const backend = await httpBackend(t);
  const agentHome = join(dir, 'agent');
  await mkdir(agentHome, { recursive: true });
  const agentStarted = writeAgentFile({
    file: join(agentHome, 'agent.yaml'),
    token: AGENT_TOKEN,
    region: 'edge',
    key: gossipKey,
    overwatchPorts: [],
    natsPort,
    backends: [[APP, backend]],
    heartbeat: { interval: '1s', full: '3s' },
  }).then((file) => startAgent(t, file));
  // Awaited in that step; settled here too, so a failure before it is not reported as an unhandled rejection.
  agentStarted.catch(() => {});

  await t.test('a rollover started on A is published by B', async () => {
    const started = await call(a, 'POST', '/api/v1/dnssec/rollover/start', { zone: 'example.test' });
    assert.equal(started.status, 200, await started.text());
    await eventually('B publishes the new key', async () => (await dnskeysOf(b.server.port, 'example.test')).length === 2);
    assert.deepEqual(await dnskeysOf(b.server.port, 'example.test'), await dnskeysOf(a.server.port, 'example.test'));
    // The DNSKEY RRset B serves (both keys) still validates from the old anchor.
    const out = await tool('delv', ['@127.0.0.1', '-p', String(b.server.port), '-a', anchor, '+root=example.test', 'example.test', 'DNSKEY']);
    assert.match(out, /^; fully validated$/m, out);
    assert.match(b.server.out.text, /DNSSEC key taken from another overwatch \(bus\)/);
  });

  await t.test('a geo mapping set through A routes B\'s geolocated answers, and its removal through B reaches A', async () => {
    assert.equal(await geoAnswer(b, '10.9.1.0'), EU, 'no mapping: the default region');
    const put = await call(a, 'PUT', '/api/v1/geo/mappings', { cidr: '10.9.0.0/16', region: 'us', source: 'alice', comment: 'a test network' });
    assert.equal(put.status, 200, await put.text());
    assert.equal(await geoAnswer(a, '10.9.1.0'), US);
    await eventually('B answers by the mapping', async () => (await geoAnswer(b, '10.9.1.0')) === US);
    const listed = await json<{ mappings: { cidr: string; region: string; source: string; comment: string | null }[] }>(b, '/api/v1/geo/mappings');
    assert.deepEqual(listed.mappings.map((m) => [m.cidr, m.region, m.source, m.comment]), [['10.9.0.0/16', 'us', 'alice', 'a test network']]);
    assert.equal(await metric(b, 'opengslb_overwatch_bus_kv_applies_total{kind="geo_mapping"}'), 1);

    const del = await call(b, 'DELETE', '/api/v1/geo/mappings?cidr=10.9.0.0/16');
    assert.equal(del.status, 200, await del.text());
    await eventually('A drops the mapping', async () => (await geoAnswer(a, '10.9.1.0')) === EU);
    // And back: a re-add after a removal works.
    assert.equal((await call(b, 'PUT', '/api/v1/geo/mappings', { cidr: '10.9.0.0/16', region: 'us', source: 'bob' })).status, 200);
    await eventually('A takes the re-added mapping', async () => (await geoAnswer(a, '10.9.1.0')) === US);
    // Neither put the other's change back: one put per change made on it.
    assert.equal(await metric(a, 'opengslb_overwatch_bus_kv_puts_total{kind="geo_mapping",result="ok"}'), 1);
    assert.equal(await metric(b, 'opengslb_overwatch_bus_kv_puts_total{kind="geo_mapping",result="ok"}'), 2);
  });

  await t.test('a revocation on A makes B refuse the agent\'s next message; deleting the revoked pin on B lets it register with both again', async () => {
    await agentStarted;
    const appAnswer = async (node: Node) => ((await ask(node.server.port, APP, 'A')).answers ?? []).map((x) => (x as { data: string }).data).join(',');
    for (const node of [a, b]) await eventually(`${node.api} answers the agent's backend`, async () => (await appAnswer(node)) === backend.address, 15_000);
    const agentId = (await json<{ agents: { agent_id: string }[] }>(a, '/api/v1/overwatch/agents')).agents[0].agent_id;
    const dropsBefore = (await json<{ drops: Record<string, number> }>(b, '/api/v1/overwatch/agents')).drops.revoked;

    const revoked = await call(a, 'POST', `/api/v1/overwatch/agents/${encodeURIComponent(agentId)}/revoke`, { reason: 'key leaked' });
    assert.equal(revoked.status, 200, await revoked.text());
    const viewOnB = async () => (await json<{ agent: { state: string; revoked_reason: string | null } }>(b, `/api/v1/overwatch/agents/${encodeURIComponent(agentId)}`)).agent;
    await eventually('B shows the agent revoked', async () => (await viewOnB()).state === 'revoked');
    await eventually('B refuses the agent\'s next message', async () => (await json<{ drops: Record<string, number> }>(b, '/api/v1/overwatch/agents')).drops.revoked > dropsBefore);
    assert.equal(await appAnswer(b), '', 'the revoked agent\'s backend left B\'s answers');
    assert.equal((await viewOnB()).revoked_reason, 'key leaked');
    // The agent's messages over the bus, as B's metrics count them: taken, refused once revoked, acked.
    assert.ok((await metric(b, 'opengslb_overwatch_bus_messages_total{result="accepted"}')) > 0);
    assert.ok((await metric(b, 'opengslb_overwatch_bus_messages_total{result="refused"}')) > 0);
    assert.ok((await metric(b, 'opengslb_overwatch_bus_acks_total{result="published"}')) > 0);
    assert.equal(await metric(b, 'opengslb_overwatch_bus_connected{link="agents"}'), 1);
    assert.equal(await metric(b, 'opengslb_overwatch_bus_kv_applies_total{kind="revocation"}'), 1);

    // Deleting the revoked agent's pin on B lifts the revocation on A too: the agent registers again with both.
    const deleted = await call(b, 'DELETE', `/api/v1/overwatch/agents/${encodeURIComponent(agentId)}`);
    assert.equal(deleted.status, 204, await deleted.text());
    for (const node of [a, b]) await eventually(`${node.api} answers the agent's backend again`, async () => (await appAnswer(node)) === backend.address, 15_000);
    assert.match(a.server.out.text, /revoked agent's pin deleted by another overwatch \(bus\)/);
  });

  await t.test('forged, moved, replayed and bare-deleted entries in the bucket change nothing, and are counted', async () => {
    const nc = await connect({ servers: [`nats://127.0.0.1:${natsPort}`] });
    t.after(() => nc.close());
    const kv = await new Kvm(nc).open('opengslb_operator');
    const key10 = operatorKvKey({ kind: 'geo_mapping', cidr: '10.9.0.0/16' });
    const key11 = operatorKvKey({ kind: 'geo_mapping', cidr: '10.11.0.0/16' });
    // Nothing in the bucket is readable without the secret.
    const held = await kv.get(key10);
    assert.ok(held !== null && held.operation === 'PUT');
    assert.ok(!Buffer.from(held.value).includes(Buffer.from('bob')), 'an entry shows its source in clear');
    const keyEntry = await kv.get(operatorKvKey({ kind: 'dnssec_key', zone: 'example.test', keyTag: keyA[0].key_tag }));
    assert.ok(keyEntry !== null && !Buffer.from(keyEntry.value).includes(Buffer.from('privateKeyPkcs8')), 'a DNSSEC key entry is readable without the secret');
    const old = Buffer.from(held.value);
    // Changed on A (to eu), so the copy taken above is now an old entry.
    assert.equal((await call(a, 'PUT', '/api/v1/geo/mappings', { cidr: '10.9.0.0/16', region: 'eu', source: 'carol' })).status, 200);
    await eventually('B follows A', async () => (await geoAnswer(b, '10.9.1.0')) === EU);
    const rejected = (node: Node, reason: string): Promise<number> => metric(node, `opengslb_overwatch_bus_kv_rejections_total{kind="geo_mapping",reason="${reason}"}`);
    const both = async (reason: string): Promise<number[]> => Promise.all([a, b].map((n) => rejected(n, reason)));
    const sum = (xs: number[]): number => xs.reduce((x, y) => x + y, 0);

    // On a key nobody holds (nothing puts an entry back there): random bytes,
    // an entry sealed with another secret, a real entry moved from another
    // key. The bucket keeps only the newest entry of a key, so each goes in
    // once both overwatches have read the one before.
    const before = await both('unauthenticated');
    const forged = sealEntry(deriveStateKey(randomBytes(32).toString('base64')), 'opengslb_operator', key11, { atMs: Date.now(), by: 'mallory', value: { cidr: '10.11.0.0/16', region: 'us', comment: null, source: 'mallory', createdAtMs: Date.now() } });
    for (const [i, value] of [randomBytes(120), forged, old].entries()) {
      await kv.put(key11, value);
      for (const [n, node] of [a, b].entries()) {
        await eventually(`${node.api} counts bad entry ${i + 1} on a key nobody holds`, async () => (await rejected(node, 'unauthenticated')) >= before[n] + i + 1);
      }
    }
    // On a key both hold: the old entry put back (a replay), then a bare
    // delete. The first overwatch to read either puts its newer entry back,
    // which can replace it in the bucket before the other has read it, so
    // each is counted by at least one of them.
    const olderBefore = sum(await both('older'));
    await kv.put(key10, old);
    await eventually('an overwatch refuses the replayed entry', async () => sum(await both('older')) >= olderBefore + 1);
    const deleteBefore = sum(await both('unauthenticated'));
    await kv.delete(key10);
    await eventually('an overwatch counts the bare delete', async () => sum(await both('unauthenticated')) >= deleteBefore + 1);
    for (const node of [a, b]) {
      assert.equal(await geoAnswer(node, '10.9.1.0'), EU, 'a replayed entry brought the old mapping back');
      assert.equal(await geoAnswer(node, '10.11.1.0'), EU, 'a forged entry added a mapping');
      assert.equal(node.server.child.exitCode ?? node.server.child.signalCode, null);
    }
    assert.match(a.server.out.text, /operator state entry refused: it changed nothing here/);
    // Back to the mapping the tests that follow expect.
    assert.equal((await call(a, 'PUT', '/api/v1/geo/mappings', { cidr: '10.9.0.0/16', region: 'us', source: 'carol' })).status, 200);
    await eventually('B follows A', async () => (await geoAnswer(b, '10.9.1.0')) === US);
  });

  await t.test('with NATS stopped each keeps its own copy; changes made on both meanwhile reach the other once NATS is back', async () => {
    await nats.stop();
    for (const node of [a, b]) await eventually(`${node.api} sees NATS down`, async () => (await metric(node, 'opengslb_overwatch_bus_connected{link="operator_state"}')) === 0);
    // Both keep answering from their own copy.
    for (const node of [a, b]) assert.equal(await geoAnswer(node, '10.9.1.0'), US);
    assert.equal((await call(a, 'PUT', '/api/v1/geo/mappings', { cidr: '10.7.0.0/16', region: 'us', source: 'dave' })).status, 200);
    assert.equal((await call(b, 'DELETE', '/api/v1/geo/mappings?cidr=10.9.0.0/16')).status, 200);
    assert.equal(await geoAnswer(a, '10.7.1.0'), US);
    assert.equal(await geoAnswer(b, '10.7.1.0'), EU, 'B cannot know yet');
    assert.equal(await geoAnswer(a, '10.9.1.0'), US, 'A cannot know yet');
    assert.equal(await metric(a, 'opengslb_overwatch_bus_kv_pending'), 1);

    nats = await startNats(t, natsPort, natsDir);
    await eventually('B takes A\'s mapping', async () => (await geoAnswer(b, '10.7.1.0')) === US, 15_000);
    await eventually('A takes B\'s removal', async () => (await geoAnswer(a, '10.9.1.0')) === EU, 15_000);
    for (const node of [a, b]) {
      assert.equal(await metric(node, 'opengslb_overwatch_bus_kv_pending'), 0);
      assert.ok((await metric(node, 'opengslb_overwatch_bus_reconnects_total{link="operator_state"}')) >= 1);
      assert.equal(await metric(node, 'opengslb_overwatch_bus_connected{link="operator_state"}'), 1);
    }
  });
});
