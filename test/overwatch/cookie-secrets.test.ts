// The server-cookie keys the main thread derives and rotates
// (src/overwatch/cookie-secrets.ts): the same secret gives every overwatch
// the same keys at the same time; a cookie made just before a rotation is
// still accepted after it (the previous key), and one made by a peer whose
// clock is ahead (the next key); a secret file that is unreadable or not a
// secret stops the start with a clear message.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CookiesConfig } from '../../src/config/types.ts';
import { CookieScratch, serverCookieValid, writeReplyCookie, type CookieKeys } from '../../src/dns/cookie.ts';
import { CookieSecrets, periodKey } from '../../src/overwatch/cookie-secrets.ts';
import { tempDir } from '../helpers/config-files.ts';

const HOUR = 3_600_000;
const base: CookiesConfig = { enabled: true, require: false, secret: 'e5e973e5a6b2a43f48e7dc849e37bfcf', secretFile: null, secretLifetimeMs: 26 * HOUR, rotate: true };
const ip = Uint8Array.of(192, 0, 2, 1);
const client = Buffer.from('0011223344556677', 'hex');

/** A cookie made with the current key of `keys` at `sec`. */
function cookieWith(keys: CookieKeys, sec: number): Buffer {
  const out = new Uint8Array(24);
  writeReplyCookie(out, 0, keys, new CookieScratch(), client, 0, sec, ip, 4);
  return Buffer.from(out);
}

const valid = (cookie: Buffer, keys: CookieKeys, sec: number): boolean => serverCookieValid(cookie, 0, 24, keys, new CookieScratch(), sec, ip, 4);

test('two overwatches with the same secret derive the same keys; another secret, other keys', () => {
  const now = Date.UTC(2026, 11, 6, 10);
  const a = new CookieSecrets(base).keysAt(now);
  const b = new CookieSecrets(base).keysAt(now);
  assert.deepEqual(a, b);
  assert.equal(a.count, 3);
  const c = new CookieSecrets({ ...base, secret: '00112233445566778899aabbccddeeff' }).keysAt(now);
  assert.notDeepEqual(a.words, c.words);
  // No secret: random per process.
  assert.notDeepEqual(new CookieSecrets({ ...base, secret: null }).keysAt(now).words, new CookieSecrets({ ...base, secret: null }).keysAt(now).words);
});

test('across a rotation: a cookie of the old period is accepted after it (previous key), and one from a peer already past it before (next key)', () => {
  const s = new CookieSecrets(base);
  const lifetime = base.secretLifetimeMs;
  const boundary = Math.ceil(Date.UTC(2026, 11, 6) / lifetime) * lifetime;
  const before = s.keysAt(boundary - 60_000);
  const after = s.keysAt(boundary + 60_000);
  assert.notDeepEqual(before.words.subarray(0, 4), after.words.subarray(0, 4), 'the current key changed');
  const sec = (ms: number): number => Math.floor(ms / 1000);
  assert.equal(valid(cookieWith(before, sec(boundary - 60_000)), after, sec(boundary + 60_000)), true, 'old cookie, new keys');
  assert.equal(valid(cookieWith(after, sec(boundary + 60_000)), before, sec(boundary - 30_000)), true, 'a peer ahead of us');
  // Two periods on, the old key is gone.
  const later = s.keysAt(boundary + lifetime + 60_000);
  assert.equal(valid(cookieWith(before, sec(boundary - 60_000)), later, sec(boundary - 60_000) + 600), false);
});

test('the derived key is HMAC-SHA256(secret, "opengslb dns cookie key " + period), first 16 bytes', () => {
  const secret = Buffer.from(base.secret!, 'hex');
  const k = periodKey(secret, 12345);
  assert.equal(k.length, 16);
  assert.deepEqual(k, periodKey(secret, 12345));
  assert.notDeepEqual(k, periodKey(secret, 12346));
});

test('rotate: false uses the secret itself as the one key', () => {
  const keys = new CookieSecrets({ ...base, rotate: false }).keysAt(Date.now());
  assert.equal(keys.count, 1);
  // RFC 9018 A.1 with that secret as the key.
  const out = new Uint8Array(24);
  writeReplyCookie(out, 0, keys, new CookieScratch(), Buffer.from('2464c4abcf10c957', 'hex'), 0, 1559731985, Uint8Array.of(198, 51, 100, 100), 4);
  assert.equal(Buffer.from(out).toString('hex'), '2464c4abcf10c957010000005cf79f111f8130c3eee29480');
});

test('secret_file: read from its first line; unreadable or not 32 hex digits is a clear error', async (t) => {
  const dir = await tempDir(t);
  const good = join(dir, 'good');
  await writeFile(good, `${base.secret}\n# rotated 2026-12-06\n`, { mode: 0o600 });
  const fromFile = new CookieSecrets({ ...base, secret: null, secretFile: good }).keysAt(0);
  assert.deepEqual(fromFile, new CookieSecrets(base).keysAt(0));
  const bad = join(dir, 'bad');
  await writeFile(bad, 'not a secret\n', { mode: 0o600 });
  assert.throws(() => new CookieSecrets({ ...base, secret: null, secretFile: bad }), /dns\.cookies\.secret_file: .*bad does not start with 32 hexadecimal digits \(16 bytes\); write one with "openssl rand -hex 16 > /);
  assert.throws(() => new CookieSecrets({ ...base, secret: null, secretFile: join(dir, 'missing') }), /dns\.cookies\.secret_file: cannot read .*missing: ENOENT/);
});
