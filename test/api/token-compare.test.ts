// checkBearer() (src/api/access.ts) on its own, without a server: the right
// token, a prefix of it, longer and shorter ones, and headers that are not
// Bearer. Constant time itself cannot be asserted from a test (timings on a
// shared machine are noise far above the nanoseconds a byte-by-byte compare
// would leak); what is asserted is the structure that gives it: every
// candidate is hashed with SHA-256 and compared with crypto.timingSafeEqual,
// two 32-byte digests whatever the candidate's length, so a length mismatch
// neither throws (timingSafeEqual throws on unequal lengths) nor returns early.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { checkBearer } from '../../src/api/access.ts';

const TOKEN = 'correct-horse-battery-staple';
const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** The calls access.ts made to timingSafeEqual: a spy put into the builtin's ESM binding, which access.ts imports by name. */
let compare: ReturnType<typeof mock.method<typeof crypto, 'timingSafeEqual'>>;

beforeEach(() => {
  compare = mock.method(crypto, 'timingSafeEqual');
  syncBuiltinESMExports();
});
afterEach(() => {
  mock.restoreAll();
  syncBuiltinESMExports();
});

/** Asserts one comparison was made, of the candidate's SHA-256 digest against the token's. */
function assertComparedDigests(candidate: string, token: string): void {
  assert.equal(compare.mock.callCount(), 1, 'one timingSafeEqual call per check');
  const [a, b] = compare.mock.calls[0].arguments as unknown as [Buffer, Buffer];
  assert.equal(a.length, 32);
  assert.equal(b.length, 32);
  // The candidate as Node hands a header over (latin1, one char per byte) is hashed as those bytes; the token as UTF-8.
  assert.deepEqual(Buffer.from(a), createHash('sha256').update(Buffer.from(candidate, 'latin1')).digest());
  assert.deepEqual(Buffer.from(b), sha256(token));
}

describe('checkBearer', () => {
  test('the right token is ok, through timingSafeEqual over the two SHA-256 digests', () => {
    assert.equal(checkBearer(`Bearer ${TOKEN}`, TOKEN), 'ok');
    assertComparedDigests(TOKEN, TOKEN);
  });

  test('the scheme in any case, and spaces around the token, are ok (RFC 7235 §2.1)', () => {
    assert.equal(checkBearer(`bearer ${TOKEN}`, TOKEN), 'ok');
    assert.equal(checkBearer(`BEARER   ${TOKEN}  `, TOKEN), 'ok');
  });

  const wrong: [string, string][] = [
    ['a prefix of the token', TOKEN.slice(0, -1)],
    ['its first byte', TOKEN.slice(0, 1)],
    ['the token and one more byte', `${TOKEN}x`],
    ['the token twice', TOKEN + TOKEN],
    ['the same length, last byte changed', `${TOKEN.slice(0, -1)}f`],
    ['an empty token', ''],
    ['10 000 bytes', 'a'.repeat(10_000)],
    ['non-ASCII of the same length in characters', 'é'.repeat(TOKEN.length)],
  ];
  for (const [what, candidate] of wrong) {
    test(`${what} is wrong, compared as digests, and nothing throws`, () => {
      assert.equal(checkBearer(`Bearer ${candidate}`, TOKEN), 'wrong');
      assertComparedDigests(candidate, TOKEN);
    });
  }

  test('a non-ASCII token sent as UTF-8 (as Node hands those bytes over: latin1) is ok; its characters sent as latin1 bytes are wrong', () => {
    const token = 'pässwörd-ünïcode-1234';
    assert.equal(checkBearer(`Bearer ${Buffer.from(token, 'utf8').toString('latin1')}`, token), 'ok');
    assert.equal(checkBearer(`Bearer ${token}`, token), 'wrong');
  });

  test('no header, another scheme or a bare token is missing, and no comparison is made', () => {
    for (const header of [undefined, '', 'Bearer', TOKEN, `Basic ${TOKEN}`, `Token ${TOKEN}`]) {
      assert.equal(checkBearer(header, TOKEN), 'missing', String(header));
    }
    assert.equal(compare.mock.callCount(), 0);
  });

  test('a changed token (a reload) is compared at the next call; the old one is then wrong', () => {
    const next = 'another-token-of-16+';
    assert.equal(checkBearer(`Bearer ${TOKEN}`, TOKEN), 'ok');
    assert.equal(checkBearer(`Bearer ${TOKEN}`, next), 'wrong');
    assert.equal(checkBearer(`Bearer ${next}`, next), 'ok');
    assert.equal(compare.mock.callCount(), 3);
    assert.deepEqual(Buffer.from(compare.mock.calls[2].arguments[1] as unknown as Buffer), sha256(next));
  });

  test('tokens of every length from 0 to 100 bytes against tokens of every length: the right one only is ok', () => {
    for (let n = 0; n <= 100; n += 7) {
      const token = 't'.repeat(Math.max(1, n));
      for (let m = 0; m <= 100; m += 3) {
        const candidate = 't'.repeat(m);
        assert.equal(checkBearer(`Bearer ${candidate}`, token), candidate === token ? 'ok' : 'wrong', `${m} against ${token.length}`);
      }
    }
  });
});
