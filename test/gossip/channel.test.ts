// The overwatch side of the agent channel over real sockets on loopback:
// accepted messages reach the handlers, and every refusal is seen from
// outside (the ack's reason, or no answer), leaves pins and handlers
// untouched, and is counted by reason.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sealMessage } from '../../src/gossip/wire.ts';
import { LmdbStore, MemoryStore } from '../../src/state/store.ts';
import type { DropReason } from '../../src/gossip/drop-reasons.ts';
import { encodeFrame } from '../../src/gossip/framing.ts';
import { Keyring } from '../../src/gossip/envelope.ts';
import { rotateAgentIdentity } from '../../src/gossip/identity.ts';
import { OverwatchChannel } from '../../src/gossip/channel.ts';
import { join } from 'node:path';
import { connect } from 'node:net';
import { once } from 'node:events';
import {
  backend, newIdentity, newKeyring, sendOne, sendTcp, sendUdp, startOverwatch, tempDir, TestAgent, type TestOverwatch,
} from './helpers.ts';

const APP = 'app.example.test';
const API = 'api.example.test';
const TOKENS = { [APP]: 'token-for-app-0123456789', [API]: 'token-for-api-0123456789' };

interface World {
  overwatch: TestOverwatch;
  keyring: Keyring;
  agent: TestAgent;
}

/** An overwatch and one agent that has registered APP with one backend. */
async function world(t: TestContext): Promise<World> {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  const ack = await sendOne(overwatch, agent.seal(agent.register([backend(APP, '192.0.2.10')])), keyring);
  assert.equal(ack?.status, 'ok', `registration refused: ${ack?.reason}`);
  return { overwatch, keyring, agent };
}

function handled(o: TestOverwatch): number {
  return o.seen.registers.length + o.seen.heartbeats.length + o.seen.healthUpdates.length + o.seen.deregisters.length;
}

test('a registration over TCP is acked, pins the certificate and reaches onRegister with its backends', async (t) => {
  const { overwatch, agent } = await world(t);
  const [event] = overwatch.seen.registers;
  assert.equal(event.message.agentId, agent.identity.agentId);
  assert.equal(event.firstContact, true);
  assert.equal(event.rotated, false);
  assert.deepEqual(event.message.backends, [backend(APP, '192.0.2.10')]);
  assert.equal(event.source.transport, 'tcp');
  const pin = overwatch.channel.pin(agent.identity.agentId);
  assert.equal(pin?.fingerprint, agent.identity.fingerprint);
  assert.deepEqual(pin?.services, [APP]);
  assert.equal(overwatch.channel.counters().messages.register, 1);
  // Held for as long as the agent lives: in a buffer of its own, not a view of the message or of Buffer's shared pool.
  assert.ok(pin);
  assert.deepEqual(Buffer.from(pin.certificate), agent.identity.certificate);
  assert.equal(pin.certificate.byteOffset, 0);
  assert.equal(pin.certificate.buffer.byteLength, pin.certificate.length);
});

test('a heartbeat over UDP reaches onHeartbeat', async (t) => {
  const { overwatch, agent } = await world(t);
  const arrived = overwatch.next('heartbeats');
  await sendUdp('127.0.0.1', overwatch.receiver.port, agent.seal(agent.heartbeat([backend(APP, '192.0.2.10', 80, 'unhealthy')], false)));
  const event = (await arrived) as TestOverwatch['seen']['heartbeats'][number];
  assert.equal(event.source.transport, 'udp');
  assert.equal(event.message.backends[0].health, 'unhealthy');
  assert.equal(event.outOfOrder, false);
  assert.equal(overwatch.channel.counters().messages.heartbeat, 1);
  assert.equal(overwatch.receiver.counters().udpDatagrams, 1);
});

test('a health update and a deregistration reach their handlers', async (t) => {
  const { overwatch, agent, keyring } = await world(t);
  const acks = await sendTcp('127.0.0.1', overwatch.receiver.port, [
    agent.seal(agent.health([backend(APP, '192.0.2.10', 80, 'unhealthy')])),
    agent.seal(agent.deregister()),
  ], keyring);
  assert.deepEqual(acks.map((a) => a?.status), ['ok', 'ok']);
  assert.equal(overwatch.seen.healthUpdates.length, 1);
  assert.equal(overwatch.seen.deregisters[0].message.reason, 'shutdown');
});

test('a registration far larger than a datagram goes over TCP whole (1 000 backends)', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, TOKENS);
  const backends = Array.from({ length: 1000 }, (_, i) => backend(i % 2 === 0 ? APP : API, `10.0.${i >> 8}.${i & 255}`, 8080));
  const sealed = agent.seal(agent.register(backends));
  assert.ok(sealed.length > 40_000, `${sealed.length} bytes`);
  const ack = await sendOne(overwatch, sealed, keyring);
  assert.equal(ack?.status, 'ok');
  assert.equal(overwatch.seen.registers[0].message.backends.length, 1000);
});

test('a reordered heartbeat inside the window is accepted once and flagged out of order', async (t) => {
  const { overwatch, agent, keyring } = await world(t);
  const late = agent.seal(agent.heartbeat([], false), { seq: agent.seq + 1 });
  const early = agent.seal(agent.heartbeat([], false), { seq: agent.seq + 5 });
  const acks = await sendTcp('127.0.0.1', overwatch.receiver.port, [early, late, late], keyring);
  assert.deepEqual(acks.map((a) => a?.reason ?? a?.status), ['ok', 'ok', 'replayed']);
  assert.deepEqual(overwatch.seen.heartbeats.map((e) => e.outOfOrder), [false, true]);
});

interface Refusal {
  name: string;
  reason: DropReason;
  /** Expected ack status; null when the sender gets no answer (bytes it cannot have sealed with our key). */
  ack: 'refused' | 'register' | null;
  /** Returns the bytes to send (and may prepare state, e.g. a revocation). */
  make(w: World, t: TestContext): Promise<Uint8Array> | Uint8Array;
}

const refusals: Refusal[] = [
  { name: 'a message sealed under another key', reason: 'unknown_key', ack: null, make: (w) => w.agent.seal(w.agent.heartbeat([]), { keyring: newKeyring() }) },
  {
    name: 'a message whose ciphertext was changed',
    reason: 'decrypt_failed',
    ack: null,
    make: (w) => {
      const bytes = w.agent.seal(w.agent.heartbeat([]));
      bytes[30] ^= 0x40;
      return bytes;
    },
  },
  { name: 'random bytes', reason: 'bad_magic', ack: null, make: () => randomBytes(200) },
  {
    name: 'a replayed heartbeat',
    reason: 'replayed',
    ack: 'refused',
    make: async (w) => {
      const bytes = w.agent.seal(w.agent.heartbeat([]));
      assert.equal((await sendOne(w.overwatch, bytes, w.keyring))?.status, 'ok');
      return bytes;
    },
  },
  {
    name: 'a heartbeat reordered beyond the window',
    reason: 'outside_window',
    ack: 'refused',
    make: async (w) => {
      const old = w.agent.seal(w.agent.heartbeat([]));
      assert.equal((await sendOne(w.overwatch, w.agent.seal(w.agent.heartbeat([]), { seq: w.agent.seq + 5000 }), w.keyring))?.status, 'ok');
      return old;
    },
  },
  { name: 'a heartbeat stamped two minutes ago', reason: 'too_old', ack: 'refused', make: (w) => w.agent.seal(w.agent.heartbeat([]), { timestampMs: Date.now() - 120_000 }) },
  { name: 'a heartbeat stamped two minutes ahead', reason: 'clock_skew', ack: 'refused', make: (w) => w.agent.seal(w.agent.heartbeat([]), { timestampMs: Date.now() + 120_000 }) },
  {
    name: 'a registration with a wrong token',
    reason: 'token_mismatch',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t)).identity, w.keyring, { [APP]: 'a-wrong-token-0123456789' });
      return other.seal(other.register([backend(APP, '192.0.2.20')]));
    },
  },
  {
    name: 'a registration with the token of another service',
    reason: 'token_mismatch',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t)).identity, w.keyring, { [APP]: TOKENS[API] });
      return other.seal(other.register([backend(APP, '192.0.2.20')]));
    },
  },
  {
    name: 'a registration with a token for one of its two services only',
    reason: 'token_missing',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t)).identity, w.keyring, { [APP]: TOKENS[APP] });
      return other.seal(other.register([backend(APP, '192.0.2.20'), backend(API, '192.0.2.21')]));
    },
  },
  {
    name: 'a registration for a service without a configured token',
    reason: 'token_unknown_service',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t)).identity, w.keyring, { 'other.example.test': TOKENS[APP] });
      return other.seal(other.register([backend('other.example.test', '192.0.2.20')]));
    },
  },
  {
    name: 'a registration without any token proof',
    reason: 'token_missing',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t)).identity, w.keyring, {});
      return other.seal(other.register([]));
    },
  },
  {
    name: 'a registration in a region the overwatch lacks',
    reason: 'unknown_region',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t, 'mars')).identity, w.keyring, { [APP]: TOKENS[APP] });
      return other.seal(other.register([backend(APP, '192.0.2.20')], undefined, 'mars'));
    },
  },
  {
    name: 'a second certificate for a pinned agent id',
    reason: 'certificate_mismatch',
    ack: 'refused',
    make: async (w, t) => {
      // Same agent id, another key pair: what a cloned or stolen id looks like.
      const rotated = await rotateAgentIdentity({ ...(await filesOf(t)), region: 'eu-west' }, w.agent.identity);
      const impostor = new TestAgent({ ...rotated, previous: null }, w.keyring, { [APP]: TOKENS[APP] });
      impostor.seq = w.agent.seq + 100;
      return impostor.seal(impostor.register([backend(APP, '192.0.2.10')]));
    },
  },
  {
    name: 'a registration whose certificate names another agent id',
    reason: 'certificate_invalid',
    ack: 'refused',
    make: async (w, t) => {
      const other = new TestAgent((await newIdentity(t)).identity, w.keyring, { [APP]: TOKENS[APP] });
      const reg = other.register([backend(APP, '192.0.2.20')]);
      // Token proofs are bound to the claimed id, so only the certificate check can catch this.
      const claimed = 'eu-west-000000000000';
      const proofs = { [APP]: (await import('../../src/gossip/token.ts')).tokenProof(TOKENS[APP], claimed, APP, other.identity.fingerprint) };
      return other.seal({ ...reg, tokenProofs: proofs }, { agentId: claimed });
    },
  },
  {
    name: 'a heartbeat signed by a key other than the pinned one',
    reason: 'bad_signature',
    ack: 'refused',
    make: async (w, t) => w.agent.seal(w.agent.heartbeat([]), { signer: (await newIdentity(t)).identity.privateKey }),
  },
  {
    name: 'a heartbeat from an agent that never registered',
    reason: 'unpinned',
    ack: 'register',
    make: async (w, t) => {
      const stranger = new TestAgent((await newIdentity(t)).identity, w.keyring, TOKENS);
      return stranger.seal(stranger.heartbeat([]));
    },
  },
  {
    name: 'a heartbeat from a revoked agent',
    reason: 'revoked',
    ack: 'refused',
    make: async (w) => {
      await w.overwatch.channel.revoke(w.agent.identity.agentId, 'host decommissioned');
      return w.agent.seal(w.agent.heartbeat([]));
    },
  },
  {
    name: 'a registration from a revoked agent, even with valid tokens',
    reason: 'revoked',
    ack: 'refused',
    make: async (w) => {
      await w.overwatch.channel.revoke(w.agent.identity.agentId, 'host decommissioned');
      return w.agent.seal(w.agent.register([backend(APP, '192.0.2.10')]));
    },
  },
  {
    name: 'a heartbeat carrying a service the agent did not register',
    reason: 'service_not_registered',
    ack: 'refused',
    make: (w) => w.agent.seal(w.agent.heartbeat([backend(API, '192.0.2.99')])),
  },
  {
    name: 'an ack sent to the overwatch',
    reason: 'unexpected_type',
    ack: null,
    make: (w) => sealMessage(w.keyring, { type: 'ack', agentId: w.agent.identity.agentId, seq: 1, timestampMs: Date.now(), status: 'ok', reason: null }, null),
  },
];

async function filesOf(t: TestContext): Promise<{ certPath: string; keyPath: string }> {
  const dir = await tempDir(t);
  return { certPath: join(dir, 'agent.crt'), keyPath: join(dir, 'agent.key') };
}

for (const r of refusals) {
  test(`${r.name} is dropped as ${r.reason}: ${r.ack === null ? 'no answer' : `ack ${r.ack}`}, nothing changes, the drop is counted`, async (t) => {
    const w = await world(t);
    const bytes = await r.make(w, t);
    const pinsBefore = JSON.stringify(w.overwatch.channel.pins());
    const handledBefore = handled(w.overwatch);
    const dropsBefore = w.overwatch.channel.counters().drops[r.reason];
    const ack = await sendOne(w.overwatch, bytes, w.keyring);
    if (r.ack === null) assert.equal(ack, null);
    else {
      assert.equal(ack?.status, r.ack);
      assert.equal(ack?.reason, r.reason);
    }
    assert.equal(JSON.stringify(w.overwatch.channel.pins()), pinsBefore, 'pins changed');
    assert.equal(handled(w.overwatch), handledBefore, 'a handler ran');
    assert.equal(w.overwatch.channel.counters().drops[r.reason], dropsBefore + 1);
    assert.equal(w.overwatch.seen.drops.at(-1)?.reason, r.reason);
  });
}

test('the same refusals over UDP are dropped and counted just the same', async (t) => {
  const w = await world(t);
  const dropped = w.overwatch.next('drops');
  await sendUdp('127.0.0.1', w.overwatch.receiver.port, w.agent.seal(w.agent.heartbeat([]), { keyring: newKeyring() }));
  assert.equal(((await dropped) as { reason: string }).reason, 'unknown_key');
  assert.equal(w.overwatch.channel.counters().drops.unknown_key, 1);
  assert.equal(handled(w.overwatch), 1);
});

test('a certificate rotation signed by the pinned key is accepted and re-pins', async (t) => {
  const w = await world(t);
  const rotated = await rotateAgentIdentity({ ...(await filesOf(t)), region: 'eu-west' }, w.agent.identity);
  w.agent.identity = rotated;
  const ack = await sendOne(w.overwatch, w.agent.seal(w.agent.register([backend(APP, '192.0.2.10')])), w.keyring);
  assert.equal(ack?.status, 'ok');
  const event = w.overwatch.seen.registers.at(-1);
  assert.equal(event?.rotated, true);
  assert.equal(event?.firstContact, false);
  const pin = w.overwatch.channel.pin(rotated.agentId);
  assert.equal(pin?.fingerprint, rotated.fingerprint);
  assert.equal(pin?.previousFingerprint, rotated.previous?.fingerprint);
  // From now on the old key is refused and the new one accepted.
  const acks = await sendTcp('127.0.0.1', w.overwatch.receiver.port, [
    w.agent.seal(w.agent.heartbeat([]), { signer: rotated.previous?.privateKey }),
    w.agent.seal(w.agent.heartbeat([])),
  ], w.keyring);
  assert.deepEqual(acks.map((a) => a?.reason ?? a?.status), ['bad_signature', 'ok']);
});

test('a deleted pin makes the next heartbeat ask for registration, and any certificate may then register', async (t) => {
  const w = await world(t);
  assert.equal(await w.overwatch.channel.deletePin(w.agent.identity.agentId), true);
  assert.equal((await sendOne(w.overwatch, w.agent.seal(w.agent.heartbeat([])), w.keyring))?.status, 'register');
  const fresh = await rotateAgentIdentity({ ...(await filesOf(t)), region: 'eu-west' }, w.agent.identity);
  w.agent.identity = { ...fresh, previous: null };
  assert.equal((await sendOne(w.overwatch, w.agent.seal(w.agent.register([backend(APP, '192.0.2.10')])), w.keyring))?.status, 'ok');
  assert.equal(w.overwatch.seen.registers.at(-1)?.firstContact, true);
  assert.equal(await w.overwatch.channel.deletePin('no-such-agent'), false);
  assert.equal(await w.overwatch.channel.revoke('no-such-agent', 'x'), null);
});

test('a TCP frame above the size limit closes the connection and counts too_large', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, maxMessageBytes: 4096 });
  const socket = connect({ host: '127.0.0.1', port: overwatch.receiver.port });
  await once(socket, 'connect');
  socket.on('error', () => {});
  socket.write(encodeFrame(randomBytes(5000)));
  await once(socket, 'close');
  assert.equal(overwatch.channel.counters().drops.too_large, 1);
});

test('partly received messages beyond the memory budget close the connection, count buffer_limit and release the budget', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, maxBufferedBytes: 8192 });
  const socket = connect({ host: '127.0.0.1', port: overwatch.receiver.port });
  await once(socket, 'connect');
  socket.on('error', () => {});
  // Announce a 100 000-byte message (within the message limit), then send more than the budget of it.
  const head = Buffer.alloc(4);
  head.writeUInt32BE(100_000, 0);
  socket.write(Buffer.concat([head, randomBytes(12_000)]));
  await once(socket, 'close');
  assert.equal(overwatch.channel.counters().drops.buffer_limit, 1);
  while (overwatch.receiver.counters().tcpOpenConnections > 0) await new Promise((r) => setImmediate(r));
  assert.equal(overwatch.receiver.counters().tcpBufferedBytes, 0);
});

test('connections beyond the limit are closed at once and counted', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, maxConnections: 1 });
  const first = connect({ host: '127.0.0.1', port: overwatch.receiver.port });
  t.after(() => first.destroy());
  await once(first, 'connect');
  // The server may see the first connection slightly after the client does; wait until it counts it.
  while (overwatch.receiver.counters().tcpOpenConnections < 1) await new Promise((r) => setImmediate(r));
  const second = connect({ host: '127.0.0.1', port: overwatch.receiver.port });
  second.on('error', () => {});
  await once(second, 'close');
  assert.equal(overwatch.channel.counters().drops.connection_limit, 1);
});

test('pins survive closing and reopening the lmdb store', async (t) => {
  const dir = await tempDir(t);
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  {
    const store = LmdbStore.open(dir);
    const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, store });
    assert.equal((await sendOne(overwatch, agent.seal(agent.register([backend(APP, '192.0.2.10')])), keyring))?.status, 'ok');
    await overwatch.channel.settled();
    await overwatch.receiver.close();
    await store.close();
  }
  const store = LmdbStore.open(dir);
  t.after(() => store.close());
  const [pin] = store.loadPins();
  assert.equal(pin.agentId, identity.agentId);
  assert.equal(pin.fingerprint, identity.fingerprint);
  assert.deepEqual(Buffer.from(pin.certificate), identity.certificate);
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, store });
  // The restarted overwatch knows the agent: a heartbeat is accepted without a new registration.
  assert.equal((await sendOne(overwatch, agent.seal(agent.heartbeat([backend(APP, '192.0.2.10')])), keyring))?.status, 'ok');
  // Revocation is stored too.
  await overwatch.channel.revoke(identity.agentId, 'test');
  await store.close();
  const reopened = LmdbStore.open(dir);
  t.after(() => reopened.close());
  assert.equal(reopened.loadPins()[0].revokedReason, 'test');
});

test('a message recorded before the overwatch started is refused after a restart', async (t) => {
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  const recorded = agent.seal(agent.register([backend(APP, '192.0.2.10')]), { timestampMs: Date.now() - 5 });
  await new Promise((r) => setTimeout(r, 10)); // the recorded message must be older than the overwatch's clock at start
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS });
  const ack = await sendOne(overwatch, recorded, keyring);
  assert.equal(ack?.reason, 'too_old');
});

test('a timestamp past the last date JavaScript can show is dropped as clock_skew, counted and answered, never thrown', async (t) => {
  const w = await world(t);
  // A safe integer, so it passes validation, but beyond Date's range (8.64e15 ms): formatting it for the drop's detail threw.
  const ack = await sendOne(w.overwatch, w.agent.seal(w.agent.heartbeat([]), { timestampMs: Number.MAX_SAFE_INTEGER }), w.keyring);
  assert.equal(ack?.reason, 'clock_skew');
  assert.equal(w.overwatch.channel.counters().drops.clock_skew, 1);
  assert.equal(w.overwatch.receiver.counters().handlerErrors, 0);
});

test('the last message a connection may carry is acked before the connection ends, and no message past it is taken', async (t) => {
  const keyring = newKeyring();
  const overwatch = await startOverwatch(t, { keyring, tokens: TOKENS, maxMessagesPerConnection: 2 });
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  // Three messages in one write: the first two are taken and acked, the third is not read (the agent resends it on a new connection).
  const acks = await sendTcp('127.0.0.1', overwatch.receiver.port, [
    agent.seal(agent.register([backend(APP, '192.0.2.10')])),
    agent.seal(agent.heartbeat([])),
    agent.seal(agent.heartbeat([])),
  ], keyring);
  assert.deepEqual(acks.map((a) => a?.status ?? null), ['ok', 'ok', null]);
  assert.equal(overwatch.seen.heartbeats.length, 1);
});

test('a registration replayed after its pin was deleted does not pin the agent again', async (t) => {
  const w = await world(t);
  const recorded = w.agent.seal(w.agent.register([backend(APP, '192.0.2.10')]));
  assert.equal((await sendOne(w.overwatch, recorded, w.keyring))?.status, 'ok');
  assert.equal(await w.overwatch.channel.deletePin(w.agent.identity.agentId), true);
  // Within the clock-skew window: only the sequence window can tell it was seen.
  assert.equal((await sendOne(w.overwatch, recorded, w.keyring))?.reason, 'replayed');
  assert.equal(w.overwatch.channel.pin(w.agent.identity.agentId), undefined);
  // The agent itself registers again with its next sequence number.
  assert.equal((await sendOne(w.overwatch, w.agent.seal(w.agent.register([backend(APP, '192.0.2.10')])), w.keyring))?.status, 'ok');
});

test('messages recorded before a restart from an agent whose clock runs ahead are refused after it (replay marks in a real lmdb file)', async (t) => {
  const dir = await tempDir(t);
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  const ahead = (): number => Date.now() + 20_000; // within the default 30 s max_clock_skew: stamped after the restart
  const recorded: Buffer[] = [];
  {
    const store = LmdbStore.open(dir);
    const first = await startOverwatch(t, { keyring, tokens: TOKENS, store });
    recorded.push(agent.seal(agent.register([backend(APP, '192.0.2.10')]), { timestampMs: ahead() }));
    recorded.push(agent.seal(agent.heartbeat([backend(APP, '192.0.2.10')]), { timestampMs: ahead() }));
    recorded.push(agent.seal(agent.deregister(), { timestampMs: ahead() }));
    // Acked means stored: the process may die right after the last ack (no settled(), no clean close of the channel).
    for (const bytes of recorded) assert.equal((await sendOne(first, bytes, keyring))?.status, 'ok');
    await first.receiver.close();
    await store.close();
  }
  const store = LmdbStore.open(dir);
  t.after(() => store.close());
  const second = await startOverwatch(t, { keyring, tokens: TOKENS, store });
  // The highest (the deregistration) and those under it, in any order.
  for (const bytes of [...recorded].reverse()) {
    assert.equal((await sendOne(second, bytes, keyring))?.reason, 'replayed', 'a message recorded before the restart was taken again');
  }
  assert.equal(second.seen.registers.length + second.seen.heartbeats.length + second.seen.deregisters.length, 0);
  // The agent itself goes on above its mark, and a message it sent out of order is still taken once.
  const late = agent.seal(agent.heartbeat([backend(APP, '192.0.2.10')]));
  assert.equal((await sendOne(second, agent.seal(agent.heartbeat([backend(APP, '192.0.2.10')])), keyring))?.status, 'ok');
  assert.equal((await sendOne(second, late, keyring))?.status, 'ok');
  assert.equal((await sendOne(second, late, keyring))?.reason, 'replayed');
});

test('a replay mark outlives a pin deletion across a restart, and is forgotten once no message it covers can pass the clock check', async (t) => {
  const store = new MemoryStore();
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  const first = await startOverwatch(t, { keyring, tokens: TOKENS, store });
  const recorded = agent.seal(agent.register([backend(APP, '192.0.2.10')]), { timestampMs: Date.now() + 20_000 });
  assert.equal((await sendOne(first, recorded, keyring))?.status, 'ok');
  const pin = first.channel.pin(identity.agentId);
  assert.ok(pin !== undefined);
  assert.equal(await first.channel.deletePin(identity.agentId), true);
  await first.receiver.close();
  // Restarted at once: the registration would pin the agent again; the mark refuses it.
  const second = await startOverwatch(t, { keyring, tokens: TOKENS, store });
  assert.equal((await sendOne(second, recorded, keyring))?.reason, 'replayed');
  assert.equal(second.channel.pin(identity.agentId), undefined);
  await second.receiver.close();
  // A mark of an agent with no pin, older than 2 × max_clock_skew: nothing it covers passes the clock check; dropped at the next start.
  await store.putReplayMark(identity.agentId, { seq: 1, atMs: Date.now() - 61_000 });
  const { identity: pinned } = await newIdentity(t);
  await store.putReplayMark(pinned.agentId, { seq: 1, atMs: Date.now() - 61_000 });
  await store.putPin({ ...pin, agentId: pinned.agentId });
  const third = await startOverwatch(t, { keyring, tokens: TOKENS, store });
  await third.channel.settled();
  assert.deepEqual([...store.loadReplayMarks().keys()], [pinned.agentId], 'the pinned agent\'s mark stays, the other is forgotten');
});

test('replay marks: the lmdb store reads back what it wrote and leaves out entries that are not marks', async (t) => {
  const dir = await tempDir(t);
  {
    const store = LmdbStore.open(dir);
    await store.putReplayMark('a', { seq: 2 ** 50, atMs: 1_700_000_000_000 });
    await store.putReplayMark('b', { seq: 7, atMs: 1 });
    await store.putReplayMark('b', { seq: 9, atMs: 2 });
    await store.putReplayMark('c', { seq: 1.5, atMs: 3 } as never);
    await store.putReplayMark('d', 'text' as never);
    await store.putReplayMark('e', { seq: 1, atMs: 1 });
    await store.deleteReplayMark('e');
    await store.close();
  }
  const store = LmdbStore.open(dir);
  t.after(() => store.close());
  assert.deepEqual([...store.loadReplayMarks()], [['a', { seq: 2 ** 50, atMs: 1_700_000_000_000 }], ['b', { seq: 9, atMs: 2 }]]);
});

test('acks go back under the gossip key the message came in under (key rotation, step 2)', async (t) => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const overwatch = await startOverwatch(t, { keyring: new Keyring(oldKey, [newKey]), tokens: TOKENS });
  const { identity } = await newIdentity(t);
  const moved = new Keyring(newKey);
  const agent = new TestAgent(identity, moved, { [APP]: TOKENS[APP] });
  // An ok ack and a refusal both open with the agent's new key alone.
  const acks = await sendTcp('127.0.0.1', overwatch.receiver.port, [
    agent.seal(agent.register([backend(APP, '192.0.2.10')])),
    agent.seal(agent.heartbeat([backend(API, '192.0.2.11')])),
  ], moved);
  assert.deepEqual(acks.map((a) => a?.reason ?? a?.status ?? null), ['ok', 'service_not_registered']);
  // An agent still on the old key reads its acks too.
  const { identity: other } = await newIdentity(t);
  const stayed = new TestAgent(other, new Keyring(oldKey), { [APP]: TOKENS[APP] });
  assert.equal((await sendOne(overwatch, stayed.seal(stayed.register([backend(APP, '192.0.2.12')])), new Keyring(oldKey)))?.status, 'ok');
});

test('a registration in a configured region spelt in another case is dropped as unknown_region, and the drop names the configured spelling', async (t) => {
  const w = await world(t);
  const other = new TestAgent((await newIdentity(t, 'EU-West')).identity, w.keyring, { [APP]: TOKENS[APP] });
  const ack = await sendOne(w.overwatch, other.seal(other.register([backend(APP, '192.0.2.20')], undefined, 'EU-West')), w.keyring);
  assert.deepEqual({ status: ack?.status, reason: ack?.reason }, { status: 'refused', reason: 'unknown_region' });
  const drop = w.overwatch.seen.drops.at(-1) as { reason: string; detail: string } | undefined;
  assert.equal(drop?.reason, 'unknown_region');
  assert.match(drop?.detail ?? '', /region "EU-West" is not a region of this overwatch; region names are case-sensitive, expected "eu-west"/);
  assert.equal(w.overwatch.channel.pin(other.identity.agentId), undefined, 'not pinned');
});

test('an overwatch started with its clock an hour ahead takes agents\' messages once NTP steps it back (not "older than this process" for the hour), and still refuses one recorded before it started', async (t) => {
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, { [APP]: TOKENS[APP] });
  const recorded = agent.seal(agent.register([backend(APP, '192.0.2.10')]), { timestampMs: Date.now() - 5 });
  await new Promise((r) => setTimeout(r, 10));
  let offsetMs = 3600_000;
  const channel = new OverwatchChannel({ keyring, agentTokens: TOKENS, pinStore: new MemoryStore(), regions: null, now: () => Date.now() + offsetMs });
  const source = { transport: 'udp', remote: '127.0.0.1:1' } as const;
  // Until NTP steps this clock, a message stamped by the agent's right clock is an hour behind: too old.
  const before = channel.receive(agent.seal(agent.register([backend(APP, '192.0.2.10')])), source);
  assert.equal(before.ok ? 'ok' : before.reason, 'too_old');
  offsetMs = 0;
  const after = channel.receive(agent.seal(agent.register([backend(APP, '192.0.2.10')])), source);
  assert.equal(after.ok ? 'ok' : `${after.reason}: ${after.detail}`, 'ok');
  const heartbeat = channel.receive(agent.seal(agent.heartbeat([backend(APP, '192.0.2.10')])), source);
  assert.equal(heartbeat.ok ? 'ok' : heartbeat.reason, 'ok');
  // Recorded before the process started (by the right clock): still refused.
  const replayed = channel.receive(recorded, source);
  assert.equal(replayed.ok ? 'ok' : replayed.reason, 'too_old');
});

test('an expired pinned key cannot approve a rotation (certificate_mismatch, naming the expiry and the pin deletion that ends it); one inside its validity can; after the deletion the new certificate is pinned', async (t) => {
  const DAY = 86_400_000;
  const keyring = newKeyring();
  let offsetMs = 0;
  const drops: string[] = [];
  const channel = new OverwatchChannel({
    keyring, agentTokens: TOKENS, pinStore: new MemoryStore(), regions: null, now: () => Date.now() + offsetMs,
    handlers: { onDrop: (e) => drops.push(`${e.reason}: ${e.detail}`) },
  });
  const source = { transport: 'tcp', remote: '127.0.0.1:1' } as const;
  const receive = (agent: TestAgent, bytes: Uint8Array): string => {
    const r = channel.receive(bytes, source);
    return r.ok ? 'ok' : `${r.reason}: ${r.detail}`;
  };
  const retired = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKENS[APP] });
  const away = new TestAgent((await newIdentity(t)).identity, keyring, { [APP]: TOKENS[APP] });
  for (const a of [retired, away]) assert.equal(receive(a, a.seal(a.register([backend(APP, '192.0.2.10')]))), 'ok');
  const pinned = channel.pin(retired.identity.agentId);
  assert.ok(pinned);

  // 300 days on (inside the 365-day certificate): a rotation signed by the pinned key is taken.
  offsetMs = 300 * DAY;
  away.identity = await rotateAgentIdentity({ ...(await filesOf(t)), region: 'eu-west', now: () => Date.now() + offsetMs }, away.identity);
  assert.equal(receive(away, away.seal(away.register([backend(APP, '192.0.2.11')]), { timestampMs: Date.now() + offsetMs })), 'ok');

  // 400 days on: the first key expired; a host retired long ago (its key on an old disk) signs a rotation with it.
  offsetMs = 400 * DAY;
  retired.identity = await rotateAgentIdentity({ ...(await filesOf(t)), region: 'eu-west', now: () => Date.now() + offsetMs }, retired.identity);
  const refused = receive(retired, retired.seal(retired.register([backend(APP, '192.0.2.66')]), { timestampMs: Date.now() + offsetMs }));
  assert.match(refused, /^certificate_mismatch: a rotation signed by the pinned certificate's key, which expired \d{4}-\d\d-\d\dT[^ ]+: an expired key cannot approve a new certificate; delete the pin \(opengslb-cli agents delete [^)]+\) to take this one$/);
  assert.equal(channel.pin(retired.identity.agentId)?.fingerprint, pinned.fingerprint, 'the pin is unchanged');
  assert.equal(channel.counters().messages.register, 3);

  // The operator, who knows the host, deletes the pin: the new certificate is pinned as a first contact.
  assert.equal(await channel.deletePin(retired.identity.agentId), true);
  assert.equal(receive(retired, retired.seal(retired.register([backend(APP, '192.0.2.66')]), { timestampMs: Date.now() + offsetMs })), 'ok');
  assert.equal(channel.pin(retired.identity.agentId)?.fingerprint, retired.identity.fingerprint);
});
