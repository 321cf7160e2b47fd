// The agent's sender against real overwatch receivers on loopback: UDP for
// small messages, TCP for large and reliable ones, retry with backoff while an
// overwatch is away, and catching it up when it answers again.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { forgetPreviousIdentity, loadOrCreateAgentIdentity, rotateAgentIdentity, type AgentIdentity } from '../../src/gossip/identity.ts';
import type { Keyring } from '../../src/gossip/envelope.ts';
import { buildRegistration, GossipSender, MessageSealer, type NodeEvent, type OverwatchNode, type SenderOptions } from '../../src/gossip/sender.ts';
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

test('an overwatch given by a host name that resolves to an IPv6 address only gets the UDP messages too (sent on the IPv6 socket, to the address TCP reached)', { timeout: 10_000 }, async (t) => {
  const keyring = newKeyring();
  const o = await startOverwatch(t, { keyring, tokens: TOKENS, host: '::1' });
  const { identity } = await newIdentity(t);
  // "overwatch.test" has only an AAAA record: ::1 (a lookup given to the sender, as /etc/hosts is not ours to edit).
  const asked: string[] = [];
  const lookup = ((hostname: string, options: { all?: boolean }, callback: (err: Error | null, address: unknown, family?: number) => void): void => {
    asked.push(hostname);
    if (hostname !== 'overwatch.test') {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), undefined);
      return;
    }
    if (options.all === true) callback(null, [{ address: '::1', family: 6 }]);
    else callback(null, '::1', 6);
  }) as unknown as NonNullable<SenderOptions['lookup']>;
  const sealer = new MessageSealer(keyring, identity);
  const sender = new GossipSender({ nodes: [{ host: 'overwatch.test', port: o.receiver.port }], keyring, sealer, backoff: FAST, lookup });
  t.after(() => sender.close());
  // Before any TCP connection: resolved once; the datagram reaches the overwatch (which does not know the agent yet).
  const unpinned = o.next('drops');
  assert.equal(sender.send({ type: 'heartbeat', full: false, backends: [], load: null }), 'udp');
  const drop = (await unpinned) as { reason: string; source: { transport: string } };
  assert.deepEqual([drop.reason, drop.source.transport], ['unpinned', 'udp']);
  // Registered over TCP; heartbeats and health updates over UDP reach it.
  sender.setRegistration(registration(identity));
  assert.equal(await sender.flush(5000), true);
  assert.equal(sender.status()[0].registered, true);
  const heartbeat = o.next('heartbeats');
  assert.equal(sender.send({ type: 'heartbeat', full: false, backends: [], load: null }), 'udp');
  assert.equal(((await heartbeat) as { source: { transport: string; remote: string } }).source.transport, 'udp');
  const update = o.next('healthUpdates');
  assert.equal(sender.send({ type: 'health_update', backends: [backend(APP, '192.0.2.10', 80, 'unhealthy')] }), 'udp');
  const u = (await update) as { source: { transport: string }; message: { backends: { health: string }[] } };
  assert.deepEqual([u.source.transport, u.message.backends[0].health], ['udp', 'unhealthy']);
  assert.ok(asked.every((h) => h === 'overwatch.test'), asked.join(', '));
});

test('a message that waited in the TCP queue keeps the sequence number it was made with: a datagram made after it carries a higher one', { timeout: 10_000 }, async (t) => {
  const keyring = newKeyring();
  const o = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const { sender, events } = newSender(t, keyring, identity, [nodeOf(o)]);
  sender.setRegistration(registration(identity));
  assert.equal(await sender.flush(5000), true);
  const many = (n: number) => Array.from({ length: 40 }, (_, i) => backend(APP, `10.${n}.0.${i}`, 8080));
  // Two large ones: the second waits in the TCP queue for the first one's ack; the small one goes at once over UDP.
  assert.equal(sender.send({ type: 'heartbeat', full: true, backends: many(1), load: null }), 'tcp');
  assert.equal(sender.send({ type: 'heartbeat', full: true, backends: many(2), load: null }), 'tcp');
  assert.equal(sender.send({ type: 'heartbeat', full: false, backends: [], load: null }), 'udp');
  assert.equal(await sender.flush(5000), true);
  const seqOf = (pick: (m: { full: boolean; backends: readonly { address: string }[] }) => boolean): number => o.seen.heartbeats.find((e) => pick(e.message))?.message.seq as number;
  const first = seqOf((m) => m.full && m.backends[0].address === '10.1.0.0');
  const queued = seqOf((m) => m.full && m.backends[0].address === '10.2.0.0');
  const small = seqOf((m) => !m.full);
  assert.ok(first < queued && queued < small, `in the order made: ${first}, ${queued}, ${small}`);
  assert.deepEqual(events.filter((e) => e.kind === 'refused'), []);
});
