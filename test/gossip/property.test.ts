// Property tests (fast-check): whatever bytes arrive, the channel answers
// with a result and a drop reason, never an exception, and a drop never
// changes a pin or reaches a handler.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OverwatchChannel } from '../../src/gossip/channel.ts';
import { DROP_REASON_NAMES } from '../../src/gossip/drop-reasons.ts';
import { openEnvelope, sealEnvelope } from '../../src/gossip/envelope.ts';
import { encodeMsgpack } from '../../src/gossip/messages.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { backend, newIdentity, newKeyring, TestAgent } from './helpers.ts';

const APP = 'app.example.test';
const TOKENS = { [APP]: 'token-for-app-0123456789' };
const RUNS = 2000;

test('random bytes never throw and always give a known drop reason', () => {
  const keyring = newKeyring();
  let handled = 0;
  const count = (): void => {
    handled++;
  };
  const channel = new OverwatchChannel({
    keyring, agentTokens: TOKENS, pinStore: new MemoryStore(), regions: null,
    handlers: { onRegister: count, onHeartbeat: count, onHealthUpdate: count, onDeregister: count },
  });
  // Some inputs start with a valid header and key id, so they reach the tag check rather than bad_magic.
  const header = sealEnvelope(keyring, Buffer.alloc(0)).subarray(0, 10);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), (bytes, withHeader) => {
      const input = withHeader ? Buffer.concat([header, bytes]) : bytes;
      const result = channel.receive(input, { transport: 'udp', remote: 'test' });
      assert.equal(result.ok, false);
      assert.ok(!result.ok && DROP_REASON_NAMES.includes(result.reason));
    }),
    { numRuns: RUNS },
  );
  assert.equal(handled, 0);
  assert.deepEqual(channel.pins(), []);
});

test('mutated sealed messages never throw, and a mutation that still opens is a message the key holder sealed', async (t) => {
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, TOKENS);
  const store = new MemoryStore();
  const channel = new OverwatchChannel({ keyring, agentTokens: TOKENS, pinStore: store, regions: null });
  const registered = channel.receive(agent.seal(agent.register([backend(APP, '192.0.2.10')])), { transport: 'tcp', remote: 'test' });
  assert.ok(registered.ok);
  const pinsBefore = JSON.stringify(channel.pins());
  const samples = [
    agent.seal(agent.heartbeat([backend(APP, '192.0.2.10')])),
    agent.seal(agent.register([backend(APP, '192.0.2.10')])),
    agent.seal(agent.deregister()),
  ];
  const mutation = fc.record({
    sample: fc.integer({ min: 0, max: samples.length - 1 }),
    kind: fc.constantFrom('flip', 'truncate', 'extend', 'splice'),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
    extra: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  });
  fc.assert(
    fc.property(mutation, ({ sample, kind, at, bit, extra }) => {
      const original = samples[sample];
      const i = at % original.length;
      let bytes: Buffer;
      if (kind === 'flip') {
        bytes = Buffer.from(original);
        bytes[i] ^= 1 << bit;
      } else if (kind === 'truncate') bytes = original.subarray(0, i);
      else if (kind === 'extend') bytes = Buffer.concat([original, extra]);
      else bytes = Buffer.concat([original.subarray(0, i), extra, original.subarray(i + extra.length)]);
      // A splice that happens to write the same bytes back is no mutation.
      fc.pre(!bytes.equals(original));
      const result = channel.receive(bytes, { transport: 'udp', remote: 'test' });
      // A changed byte anywhere must fail authentication (or an earlier header check).
      assert.equal(result.ok, false, `${kind} at ${i} was accepted`);
      assert.ok(!result.ok && ['too_short', 'bad_magic', 'bad_version', 'unknown_key', 'decrypt_failed'].includes(result.reason), !result.ok ? result.reason : '');
    }),
    { numRuns: RUNS },
  );
  assert.equal(JSON.stringify(channel.pins()), pinsBefore);
});

test('garbage sealed under the right key (a key holder sending nonsense) never throws and changes nothing', async (t) => {
  const keyring = newKeyring();
  const { identity } = await newIdentity(t);
  const agent = new TestAgent(identity, keyring, TOKENS);
  const channel = new OverwatchChannel({ keyring, agentTokens: TOKENS, pinStore: new MemoryStore(), regions: null });
  assert.ok(channel.receive(agent.seal(agent.register([backend(APP, '192.0.2.10')])), { transport: 'tcp', remote: 'test' }).ok);
  const pinsBefore = JSON.stringify(channel.pins());
  const arbitraryValue = fc.anything({ maxDepth: 3, withTypedArray: true, withMap: true, withSet: true, withDate: true, withBigInt: true, withNullPrototype: true });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 512 }), arbitraryValue.map((v) => {
      try {
        return encodeMsgpack([encodeMsgpack(v), Buffer.alloc(64)]);
      } catch {
        return Buffer.from([0xc1]);
      }
    })), (plaintext) => {
      const sealed = sealEnvelope(keyring, plaintext);
      assert.ok(openEnvelope(keyring, sealed).ok);
      const result = channel.receive(sealed, { transport: 'udp', remote: 'test' });
      assert.equal(result.ok, false);
      assert.ok(!result.ok && ['malformed', 'invalid_message'].includes(result.reason), !result.ok ? `${result.reason}: ${result.detail}` : '');
    }),
    { numRuns: RUNS },
  );
  assert.equal(JSON.stringify(channel.pins()), pinsBefore);
});
