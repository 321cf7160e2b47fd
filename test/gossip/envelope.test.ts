import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ENVELOPE_HEADER_LEN, ENVELOPE_OVERHEAD, gossipKeyId, Keyring, openEnvelope, parseGossipKey, sealEnvelope,
} from '../../src/gossip/envelope.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';

const plaintext = Buffer.from('a message that only key holders may read');

test('a sealed message opens with the same key and gives back the plaintext', () => {
  const keyring = new Keyring(randomBytes(32));
  const sealed = sealEnvelope(keyring, plaintext);
  assert.equal(sealed.length, plaintext.length + ENVELOPE_OVERHEAD);
  const opened = openEnvelope(keyring, sealed);
  assert.ok(opened.ok);
  assert.deepEqual(opened.plaintext, plaintext);
  assert.equal(opened.keyId, keyring.primary.id);
});

test('sealing the same plaintext twice gives different bytes (a fresh nonce each time)', () => {
  const keyring = new Keyring(randomBytes(32));
  const a = sealEnvelope(keyring, plaintext);
  const b = sealEnvelope(keyring, plaintext);
  assert.notDeepEqual(a.subarray(10, 34), b.subarray(10, 34));
  assert.notDeepEqual(a, b);
});

test('an empty plaintext seals and opens', () => {
  const keyring = new Keyring(randomBytes(32));
  const opened = openEnvelope(keyring, sealEnvelope(keyring, Buffer.alloc(0)));
  assert.ok(opened.ok);
  assert.equal(opened.plaintext.length, 0);
});

test('a message sealed under another key is dropped as unknown_key', () => {
  const sealed = sealEnvelope(new Keyring(randomBytes(32)), plaintext);
  assert.deepEqual(openEnvelope(new Keyring(randomBytes(32)), sealed), { ok: false, reason: 'unknown_key' });
});

test('changing any single byte of a sealed message makes it drop with a reason', () => {
  const keyring = new Keyring(randomBytes(32));
  const sealed = sealEnvelope(keyring, plaintext);
  for (let i = 0; i < sealed.length; i++) {
    const bad = Buffer.from(sealed);
    bad[i] ^= 0x01;
    const opened = openEnvelope(keyring, bad);
    assert.equal(opened.ok, false, `byte ${i} changed and still opened`);
    const expected = i < 4 ? 'bad_magic' : i < 6 ? 'bad_version' : i < 10 ? 'unknown_key' : 'decrypt_failed';
    assert.equal(!opened.ok && opened.reason, expected, `byte ${i}`);
  }
});

test('a truncated or extended message is dropped', () => {
  const keyring = new Keyring(randomBytes(32));
  const sealed = sealEnvelope(keyring, plaintext);
  for (let len = 0; len < sealed.length; len++) {
    const opened = openEnvelope(keyring, sealed.subarray(0, len));
    assert.equal(opened.ok, false, `length ${len}`);
    assert.equal(!opened.ok && opened.reason, len < ENVELOPE_OVERHEAD ? 'too_short' : 'decrypt_failed', `length ${len}`);
  }
  assert.deepEqual(openEnvelope(keyring, Buffer.concat([sealed, Buffer.of(0)])), { ok: false, reason: 'decrypt_failed' });
});

test('a keyring opens messages under each accepted key and seals under the primary only', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const agentsOld = new Keyring(oldKey);
  const agentsNew = new Keyring(newKey);
  const overwatch = new Keyring(newKey, [oldKey]);
  assert.ok(openEnvelope(overwatch, sealEnvelope(agentsOld, plaintext)).ok);
  assert.ok(openEnvelope(overwatch, sealEnvelope(agentsNew, plaintext)).ok);
  assert.equal(sealEnvelope(overwatch, plaintext).readUInt32BE(6), gossipKeyId(newKey));
  assert.deepEqual(overwatch.ids(), [gossipKeyId(newKey), gossipKeyId(oldKey)]);
  // Retiring the old key: its messages are refused by id, before any decryption.
  assert.deepEqual(openEnvelope(agentsNew, sealEnvelope(agentsOld, plaintext)), { ok: false, reason: 'unknown_key' });
});

test('the header is authenticated: a message re-labelled with another accepted key id fails the tag check', () => {
  const a = randomBytes(32);
  const b = randomBytes(32);
  const keyring = new Keyring(a, [b]);
  const sealed = sealEnvelope(keyring, plaintext);
  sealed.writeUInt32BE(gossipKeyId(b), 6);
  assert.deepEqual(openEnvelope(keyring, sealed), { ok: false, reason: 'decrypt_failed' });
  assert.equal(ENVELOPE_HEADER_LEN, 34);
});

const keyCases: { name: string; text: string; ok: boolean }[] = [
  { name: 'a key from openssl rand -base64 32', text: randomBytes(32).toString('base64'), ok: true },
  { name: 'an empty string', text: '', ok: false },
  { name: '31 bytes', text: randomBytes(31).toString('base64'), ok: false },
  { name: '33 bytes', text: randomBytes(33).toString('base64'), ok: false },
  { name: 'URL-safe base64', text: Buffer.alloc(32, 0xfb).toString('base64url') + '=', ok: false },
  { name: 'base64 without padding', text: randomBytes(32).toString('base64').slice(0, 43), ok: false },
  { name: 'non-canonical last character', text: `${'A'.repeat(42)}B=`, ok: false },
  { name: 'a hex key', text: randomBytes(32).toString('hex'), ok: false },
];

for (const c of keyCases) {
  test(`parseGossipKey ${c.ok ? 'accepts' : 'refuses'} ${c.name}`, () => {
    const parsed = parseGossipKey(c.text);
    if (c.ok) {
      assert.ok(Buffer.isBuffer(parsed));
      assert.equal(parsed.length, 32);
    } else {
      assert.ok(!Buffer.isBuffer(parsed));
      assert.match(parsed.error, /openssl rand -base64 32/);
    }
  });
}

test('Keyring.fromBase64 names the setting of a malformed key and never quotes the key', () => {
  const bad = 'c2VjcmV0LWJ1dC1zaG9ydA==';
  assert.throws(
    () => Keyring.fromBase64(bad, [], { primary: 'agent.gossip.encryption_key', accepted: 'overwatch.gossip.accepted_keys' }),
    (err: unknown) => {
      assert.ok(err instanceof OpenGslbError);
      assert.equal(err.code, 'OPENGSLB_ERR_GOSSIP_KEY');
      assert.match(err.message, /^agent\.gossip\.encryption_key /);
      assert.match(err.message, /openssl rand -base64 32/);
      assert.ok(!err.message.includes(bad));
      return true;
    },
  );
});

test('a keyring refuses a key that is not 32 bytes', () => {
  assert.throws(() => new Keyring(randomBytes(16)), { code: 'OPENGSLB_ERR_GOSSIP_KEY' });
});
