// The bus transport in one process against a real nats-server: the agent's
// BusSender and overwatches' BusReceivers around real OverwatchChannels.
// Registrations reach every subscribed overwatch through the same checks as
// UDP/TCP (transport "bus"), the acks come back on the agent's ack subject,
// an overwatch that does not know the agent asks it to register again, and
// what is published while NATS is away is not queued.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BusReceiver } from '../../src/bus/receiver.ts';
import { BusSender } from '../../src/bus/sender.ts';
import type { BusConfig } from '../../src/config/types.ts';
import type { Keyring } from '../../src/gossip/envelope.ts';
import type { AgentIdentity } from '../../src/gossip/identity.ts';
import { buildRegistration, MessageSealer, type NodeEvent } from '../../src/gossip/sender.ts';
import { freePort } from '../helpers/child.ts';
import { needsNats, startNats } from '../helpers/nats.ts';
import { backend, newIdentity, newKeyring, startOverwatch, tempDir, type TestOverwatch } from '../gossip/helpers.ts';

const APP = 'app.example.test';
const TOKENS = { [APP]: 'token-for-app-0123456789' };

function busConfig(url: string): BusConfig {
  return { type: 'nats', servers: [url], token: null, credentialsFile: null, tls: null, subjectPrefix: 'test.gslb', stateSecret: null, previousStateSecrets: [] };
}

async function subscribed(t: TestContext, o: TestOverwatch, bus: BusConfig): Promise<BusReceiver> {
  const r = new BusReceiver({ bus, channel: o.channel, name: 'test overwatch' });
  t.after(() => r.close());
  await r.ready();
  return r;
}

function newBusSender(t: TestContext, bus: BusConfig, keyring: Keyring, identity: AgentIdentity) {
  const events: NodeEvent[] = [];
  let resyncs = 0;
  const sealer = new MessageSealer(keyring, identity);
  const registration = () => buildRegistration(identity, { region: 'eu-west', version: 'test', serviceTokens: TOKENS, heartbeatIntervalMs: 10_000, backends: [backend(APP, '192.0.2.10')] });
  const sender: BusSender = new BusSender({
    bus, region: 'eu-west', keyring, sealer, name: 'test agent',
    onResync: () => {
      resyncs++;
      sender.setRegistration(registration());
    },
    onNodeEvent: (e) => events.push(e),
  });
  t.after(() => sender.close());
  return { sender, events, registration, resyncs: () => resyncs };
}

async function eventually(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('over NATS: the registration reaches every subscribed overwatch as transport "bus" and is acked; an overwatch without the pin asks for a registration; nothing is queued while NATS is away', { skip: needsNats }, async (t) => {
  const dir = await tempDir(t, 'opengslb-bus-');
  const port = await freePort();
  const nats = await startNats(t, port, join(dir, 'nats'));
  const bus = busConfig(nats.url);
  const keyring = newKeyring();
  const a = await startOverwatch(t, { keyring, tokens: TOKENS });
  const b = await startOverwatch(t, { keyring, tokens: TOKENS });
  const [ra, rb] = [await subscribed(t, a, bus), await subscribed(t, b, bus)];
  const { identity } = await newIdentity(t);
  const { sender, events, registration, resyncs } = newBusSender(t, bus, keyring, identity);

  sender.setRegistration(registration());
  await eventually('both overwatches take the registration', () => a.seen.registers.length === 1 && b.seen.registers.length === 1);
  for (const o of [a, b]) assert.equal(o.seen.registers[0]!.source.transport, 'bus');
  await eventually('an ok ack for the registration', () => sender.status()[0]!.registered);
  await eventually('both acks counted', () => sender.counters().acked === 2);
  assert.equal(ra.counters().acksSent + rb.counters().acksSent, 2);
  assert.deepEqual(events.map((e) => e.kind), ['up']);

  // A third overwatch that never heard the registration answers a heartbeat with "register"; the agent registers again.
  const c = await startOverwatch(t, { keyring, tokens: TOKENS });
  await subscribed(t, c, bus);
  sender.send({ type: 'heartbeat', full: false, backends: [], load: null });
  await eventually('the unknown agent asked to register, and registered with the third', () => resyncs() === 1 && c.seen.registers.length === 1);
  assert.ok(events.some((e) => e.kind === 'register_requested'));
  assert.equal(c.seen.drops[0]?.reason, 'unpinned');

  // NATS away: published messages are counted as dropped, not queued; back, the agent resyncs once.
  const heartbeatsBefore = a.seen.heartbeats.length;
  await nats.stop();
  await eventually('the sender sees NATS down', () => sender.status()[0]!.state === 'down');
  const dropsBefore = sender.counters().queueDrops;
  sender.send({ type: 'heartbeat', full: false, backends: [], load: null });
  assert.equal(sender.counters().queueDrops, dropsBefore + 1);
  const again = await startNats(t, port, join(dir, 'nats'));
  t.after(() => again.stop());
  await eventually('back on NATS, the agent registers again', () => resyncs() === 2, 10_000);
  await eventually('a registration reaches an overwatch after the restart', () => a.seen.registers.length + b.seen.registers.length > 2, 10_000);
  assert.equal(a.seen.heartbeats.length, heartbeatsBefore, 'a message published while NATS was away arrived late');
});

test('a bus link closed before NATS ever answered stops trying to connect (no connection attempts after close, the process may exit)', async (t) => {
  // Loopback port that accepts and at once drops every connection: each accept is one attempt of the client.
  const { createServer } = await import('node:net');
  let attempts = 0;
  const server = createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  const receiver = new BusReceiver({ bus: busConfig(`nats://127.0.0.1:${port}`), channel: null as never, name: 'never connected' });
  await eventually('the client tries to connect', () => attempts >= 2);
  await receiver.close();
  // A dial under way when close() ran may still land; none after it.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const atClose = attempts;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(attempts, atClose, 'connection attempts went on after close()');
});

test('acks replayed on the agent\'s ack subject (captured earlier, published again by anyone with NATS access) change nothing: no ack counted, no registration asked', { skip: needsNats }, async (t) => {
  const dir = await tempDir(t, 'opengslb-bus-replay-ack-');
  const nats = await startNats(t, await freePort(), join(dir, 'nats'));
  const bus = busConfig(nats.url);
  const keyring = newKeyring();
  const a = await startOverwatch(t, { keyring, tokens: TOKENS });
  await subscribed(t, a, bus);
  const { identity } = await newIdentity(t);
  const { sender, registration, resyncs } = newBusSender(t, bus, keyring, identity);
  // Someone on NATS records every ack sent to this agent.
  const { connect } = await import('@nats-io/transport-node');
  const spy = await connect({ servers: [nats.url] });
  t.after(() => spy.close());
  const captured: Uint8Array[] = [];
  spy.subscribe(`test.gslb.acks.${identity.agentId}`, { callback: (err, msg) => { if (err === null) captured.push(msg.data); } });
  await spy.flush();

  sender.setRegistration(registration());
  await eventually('registered', () => sender.status()[0]!.registered && captured.length === 1);
  // An overwatch that does not know the agent answers its heartbeat with "register".
  const b = await startOverwatch(t, { keyring, tokens: TOKENS });
  await subscribed(t, b, bus);
  sender.send({ type: 'heartbeat', full: false, backends: [], load: null });
  await eventually('the register ack and the registration it asked for', () => resyncs() === 1 && b.seen.registers.length === 1 && captured.length >= 3);
  await eventually('every ack taken', () => sender.counters().acked === captured.length);
  const acked = sender.counters().acked;
  const lastAckMs = sender.status()[0]!.lastAckMs;
  // Past the one-second gap between resyncs, then every captured ack again.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  for (const bytes of captured.slice()) spy.publish(`test.gslb.acks.${identity.agentId}`, bytes);
  await spy.flush();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(resyncs(), 1, 'a replayed "register" ack made the agent register again');
  assert.equal(sender.counters().acked, acked, 'replayed acks were counted');
  assert.equal(sender.status()[0]!.lastAckMs, lastAckMs);
});

test('closing while the nats-server does not answer (stopped with SIGSTOP: a black hole, not yet seen as down) ends within a few seconds instead of waiting forever for the drain', { skip: needsNats }, async (t) => {
  const dir = await tempDir(t, 'opengslb-bus-stall-');
  const nats = await startNats(t, await freePort(), join(dir, 'nats'));
  const o = await startOverwatch(t, { keyring: newKeyring(), tokens: TOKENS });
  const receiver = new BusReceiver({ bus: busConfig(nats.url), channel: o.channel, name: 'stalled' });
  await receiver.ready();
  nats.child.kill('SIGSTOP');
  t.after(() => { nats.child.kill('SIGCONT'); });
  const started = Date.now();
  const closed = await Promise.race([receiver.close().then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 8000))]);
  assert.ok(closed, 'close() still waiting after 8 s');
  assert.ok(Date.now() - started < 5000, `close() took ${Date.now() - started} ms`);
});
