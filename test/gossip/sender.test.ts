// The agent's sender against real overwatch receivers on loopback: UDP for
// small messages, TCP for large and reliable ones, retry with backoff while an
// overwatch is away, and catching it up when it answers again.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { forgetPreviousIdentity, loadOrCreateAgentIdentity, rotateAgentIdentity, type AgentIdentity } from '../../src/gossip/identity.ts';
import type { Keyring } from '../../src/gossip/envelope.ts';
import { buildRegistration, GossipSender, MessageSealer, type NodeEvent, type OverwatchNode } from '../../src/gossip/sender.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { backend, newIdentity, newKeyring, startOverwatch, tempDir, type TestOverwatch } from './helpers.ts';

const APP = 'app.example.test';
const TOKENS = { [APP]: 'token-for-app-0123456789' };
const FAST = { initialMs: 20, maxMs: 200 };

/** A sender whose node events can be awaited. */
function newSender(t: TestContext, keyring: Keyring, identity: AgentIdentity, nodes: OverwatchNode[]) {
  const events: NodeEvent[] = [];
  const waiters: { match: (e: NodeEvent) => boolean; resolve: (e: NodeEvent) => void }[] = [];
  const sealer = new MessageSealer(keyring, identity);
  const sender = new GossipSender({
    nodes,
    keyring,
    sealer,
    backoff: FAST,
    ackTimeoutMs: 2000,
    connectTimeoutMs: 2000,
    onNodeEvent: (e) => {
      events.push(e);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].match(e)) {
          waiters[i].resolve(e);
          waiters.splice(i, 1);
        }
      }
    },
  });
  t.after(() => sender.close());
  const until = (match: (e: NodeEvent) => boolean): Promise<NodeEvent> => new Promise((resolve) => waiters.push({ match, resolve }));
  return { sender, sealer, events, until };
}

function registration(identity: AgentIdentity, tokens: Record<string, string> = TOKENS) {
  return buildRegistration(identity, { region: 'eu-west', version: 'test', serviceTokens: tokens, heartbeatIntervalMs: 10_000, backends: [backend(APP, '192.0.2.10')] });
}

function nodeOf(o: TestOverwatch): OverwatchNode {
  return { host: '127.0.0.1', port: o.receiver.port };
}

test('the registration reaches every overwatch over TCP, small heartbeats go over UDP and large ones over TCP', async (t) => {
  const keyring = newKeyring();
  const a = await startOverwatch(t, { keyring, tokens: TOKENS });
  const b = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const { sender } = newSender(t, keyring, identity, [nodeOf(a), nodeOf(b)]);
  const registered = Promise.all([a.next('registers'), b.next('registers')]);
  sender.setRegistration(registration(identity));
  await registered;
  assert.equal(await sender.flush(5000), true);
  assert.deepEqual(sender.status().map((s) => [s.state, s.registered]), [['up', true], ['up', true]]);

  const small = Promise.all([a.next('heartbeats'), b.next('heartbeats')]);
  assert.equal(sender.send({ type: 'heartbeat', full: false, backends: [], load: null }), 'udp');
  const [ha] = (await small) as { source: { transport: string } }[];
  assert.equal(ha.source.transport, 'udp');

  const many = Array.from({ length: 40 }, (_, i) => backend(APP, `10.1.0.${i}`, 8080));
  const large = Promise.all([a.next('heartbeats'), b.next('heartbeats')]);
  assert.equal(sender.send({ type: 'heartbeat', full: true, backends: many, load: null }), 'tcp');
  const [la] = (await large) as { source: { transport: string }; message: { backends: unknown[] } }[];
  assert.equal(la.source.transport, 'tcp');
  assert.equal(la.message.backends.length, 40);
  assert.equal(sender.counters().udpSent, 2);
});

test('an overwatch that is down at start is retried with backoff and gets the registration when it comes up', async (t) => {
  const keyring = newKeyring();
  // Find a free port, then leave it closed: the overwatch is "away".
  const probe = await startOverwatch(t, { keyring, tokens: TOKENS });
  const port = probe.receiver.port;
  await probe.receiver.close();
  const { identity } = await newIdentity(t);
  const { sender, until } = newSender(t, keyring, identity, [{ host: '127.0.0.1', port }]);
  const down = until((e) => e.kind === 'down');
  sender.setRegistration(registration(identity));
  const event = await down;
  assert.equal(event.kind, 'down');
  assert.ok(event.kind === 'down' && event.retryInMs >= 10 && event.retryInMs <= 20, `retry in ${event.kind === 'down' ? event.retryInMs : ''} ms`);
  assert.equal(sender.status()[0].state, 'down');

  const up = until((e) => e.kind === 'up');
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, port });
  const registered = overwatch.next('registers');
  await up;
  await registered;
  assert.equal(sender.status()[0].state, 'up');
  assert.ok(sender.counters().failures >= 1);
});

test('one overwatch away does not hold up the others', async (t) => {
  const keyring = newKeyring();
  const probe = await startOverwatch(t, { keyring, tokens: TOKENS });
  const awayPort = probe.receiver.port;
  await probe.receiver.close();
  const present = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const { sender, until } = newSender(t, keyring, identity, [{ host: '127.0.0.1', port: awayPort }, nodeOf(present)]);
  const up = until((e) => e.kind === 'up');
  const down = until((e) => e.kind === 'down');
  sender.setRegistration(registration(identity));
  await Promise.all([up, down]);
  assert.equal(present.seen.registers.length, 1);
  assert.deepEqual(sender.status().map((s) => s.state), ['down', 'up']);
  assert.equal(await sender.flush(50), false, 'the registration still waits for the away overwatch');
});

test('an overwatch that lost the pin asks for the registration, and the sender sends it by itself', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const { sender, until } = newSender(t, keyring, identity, [nodeOf(overwatch)]);
  sender.setRegistration(registration(identity));
  await overwatch.next('registers');
  await sender.flush(5000);
  await overwatch.channel.deletePin(identity.agentId);
  const asked = until((e) => e.kind === 'register_requested');
  const again = overwatch.next('registers');
  sender.sendReliable({ type: 'heartbeat', full: true, backends: [backend(APP, '192.0.2.10')], load: null }, 'state');
  await asked;
  const event = (await again) as { firstContact: boolean };
  assert.equal(event.firstContact, true);
  assert.equal(await sender.flush(5000), true);
  assert.equal(sender.status()[0].registered, true);
});

test('an overwatch that restarts is caught up with the registration once it answers again', async (t) => {
  const keyring = newKeyring();
  const store = new MemoryStore();
  const first = await startOverwatch(t, { keyring, tokens: TOKENS, store });
  const port = first.receiver.port;
  const { identity } = await newIdentity(t);
  const { sender, until } = newSender(t, keyring, identity, [{ host: '127.0.0.1', port }]);
  sender.setRegistration(registration(identity));
  await first.next('registers');
  await sender.flush(5000);
  await first.receiver.close();

  const down = until((e) => e.kind === 'down');
  sender.sendReliable({ type: 'heartbeat', full: true, backends: [backend(APP, '192.0.2.10')], load: null }, 'state');
  await down;
  const second = await startOverwatch(t, { keyring, tokens: TOKENS, store, port });
  const heartbeat = second.next('heartbeats');
  const registered = second.next('registers');
  await Promise.all([heartbeat, registered]);
  assert.equal(await sender.flush(5000), true);
  assert.equal(second.seen.registers[0].firstContact, false, 'the pin came back from the store');
});

test('a refused registration is reported with the overwatch\'s reason', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const { sender, until } = newSender(t, keyring, identity, [nodeOf(overwatch)]);
  const refused = until((e) => e.kind === 'refused');
  sender.setRegistration(registration(identity, { [APP]: 'not-the-right-token-000' }));
  const event = await refused;
  assert.deepEqual(event.kind === 'refused' && [event.type, event.reason], ['register', 'token_mismatch']);
  assert.equal(overwatch.seen.registers.length, 0);
});

test('a deregistration sent reliably is flushed before close', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const { sender } = newSender(t, keyring, identity, [nodeOf(overwatch)]);
  sender.setRegistration(registration(identity));
  sender.sendReliable({ type: 'deregister', reason: 'shutdown' });
  assert.equal(await sender.flush(5000), true);
  assert.equal(overwatch.seen.deregisters.length, 1);
  await sender.close();
  assert.equal(sender.send({ type: 'heartbeat', full: false, backends: [], load: null }), 'udp', 'send after close is a no-op, not a throw');
});

test('a certificate rotation reaches a pinned overwatch signed by both keys, and the old key can then be forgotten', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const dir = await tempDir(t);
  const files = { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key'), region: 'eu-west' };
  const { identity } = await loadOrCreateAgentIdentity(files);
  const { sender, sealer } = newSender(t, keyring, identity, [nodeOf(overwatch)]);
  sender.setRegistration(registration(identity));
  await overwatch.next('registers');
  assert.equal(await sender.flush(5000), true);

  const rotated = await rotateAgentIdentity(files, identity);
  sealer.setIdentity(rotated);
  const again = overwatch.next('registers');
  sender.setRegistration(registration(rotated));
  const event = (await again) as { rotated: boolean };
  assert.equal(event.rotated, true);
  assert.equal(await sender.flush(5000), true);
  assert.ok(sender.status().every((s) => s.registered));
  const done = await forgetPreviousIdentity(files, rotated);
  sealer.setIdentity(done);
  const beat = overwatch.next('heartbeats');
  sender.sendReliable({ type: 'heartbeat', full: true, backends: [backend(APP, '192.0.2.10')], load: null }, 'state');
  await beat;
  assert.equal(overwatch.channel.pin(identity.agentId)?.fingerprint, rotated.fingerprint);
});

test('an overwatch that ends a connection after its message limit is not counted down, and nothing is sent twice', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, maxMessagesPerConnection: 3 });
  const { identity } = await newIdentity(t);
  const { sender, events } = newSender(t, keyring, identity, [nodeOf(overwatch)]);
  sender.setRegistration(registration(identity));
  for (let i = 0; i < 8; i++) sender.sendReliable({ type: 'deregister', reason: `r${i}` });
  assert.equal(await sender.flush(5000), true);
  assert.deepEqual(events.map((e) => e.kind), ['up'], 'the overwatch never looked down');
  assert.equal(overwatch.seen.registers.length, 1, 'no catch-up registration');
  assert.equal(overwatch.seen.deregisters.length, 8);
  assert.equal(sender.counters().failures, 0);
});
