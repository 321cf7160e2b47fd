// DNS server cookies against the test vectors of RFC 9018 Appendix A: the
// cookie we make for a client cookie, address and time, and which cookies we
// recognise (including the client's reserved bytes, an IPv6 client and a
// secret that has been rotated away).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CookieScratch, cookieLengthOk, serverCookieValid, writeReplyCookie, type CookieKeys } from '../../src/dns/cookie.ts';
import { ipToBytes } from '../../src/lib/ip.ts';
import { sipKey } from '../../src/lib/siphash.ts';

const SECRET = 'e5e973e5a6b2a43f48e7dc849e37bfcf';

function keys(...hex: string[]): CookieKeys {
  const words = new Uint32Array(hex.length * 4);
  hex.forEach((h, i) => words.set(sipKey(Buffer.from(h, 'hex')), i * 4));
  return { words, count: hex.length };
}

const made = [
  { name: 'A.1, learning a new server cookie', client: '2464c4abcf10c957', ip: '198.51.100.100', at: 1559731985, want: '2464c4abcf10c957010000005cf79f111f8130c3eee29480' },
  { name: 'A.2, the same client renewing it', client: '2464c4abcf10c957', ip: '198.51.100.100', at: 1559734385, want: '2464c4abcf10c957010000005cf7a871d4a564a1442aca77' },
  { name: 'A.3, another client', client: 'fc93fc62807ddb86', ip: '203.0.113.203', at: 1559734700, want: 'fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e' },
];

for (const c of made) {
  test(`RFC 9018 ${c.name}: the cookie we answer with`, () => {
    const ip = ipToBytes(c.ip);
    const out = new Uint8Array(24);
    writeReplyCookie(out, 0, keys(SECRET), new CookieScratch(), Buffer.from(c.client, 'hex'), 0, c.at, ip, ip.length);
    assert.equal(Buffer.from(out).toString('hex'), c.want);
  });
}

const recognised = [
  { name: 'A.2: the cookie of A.1, 40 minutes later', secret: [SECRET], ip: '198.51.100.100', cookie: '2464c4abcf10c957010000005cf79f111f8130c3eee29480', at: 1559734385, want: true },
  { name: 'A.3: the client\'s old cookie, issued 1h52m before, has expired', secret: [SECRET], ip: '203.0.113.203', cookie: 'fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5', at: 1559734700, want: false },
  { name: 'A.3: reserved bytes the client set are part of the hash', secret: [SECRET], ip: '203.0.113.203', cookie: 'fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5', at: 1559727985 + 60, want: true },
  { name: 'A.3: the same cookie from another address is not ours', secret: [SECRET], ip: '203.0.113.204', cookie: 'fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5', at: 1559727985 + 60, want: false },
  {
    name: 'A.4: an IPv6 client, its cookie made with the previous secret, accepted while that secret is still held',
    secret: ['445536bcd2513298075a5d379663c962', 'dd3bdf9344b678b185a6f5cb60fca715'],
    ip: '2001:db8:220:1:59de:d0f4:8769:82b8',
    cookie: '22681ab97d52c298010000005cf7c57926556bd0934c72f8',
    at: 1559741817 + 600,
    want: true,
  },
  { name: 'A.4: not with the new secret alone', secret: ['445536bcd2513298075a5d379663c962'], ip: '2001:db8:220:1:59de:d0f4:8769:82b8', cookie: '22681ab97d52c298010000005cf7c57926556bd0934c72f8', at: 1559741817 + 600, want: false },
  { name: 'an hour and a second after it was made, A.1\'s cookie has expired', secret: [SECRET], ip: '198.51.100.100', cookie: '2464c4abcf10c957010000005cf79f111f8130c3eee29480', at: 1559731985 + 3601, want: false },
  { name: 'stamped more than 5 minutes in the future, it is not taken', secret: [SECRET], ip: '198.51.100.100', cookie: '2464c4abcf10c957010000005cf79f111f8130c3eee29480', at: 1559731985 - 301, want: false },
  { name: 'one flipped bit in the hash', secret: [SECRET], ip: '198.51.100.100', cookie: '2464c4abcf10c957010000005cf79f111f8130c3eee29481', at: 1559731985, want: false },
  { name: 'a server cookie of another length is not ours', secret: [SECRET], ip: '198.51.100.100', cookie: '2464c4abcf10c957010000005cf79f11', at: 1559731985, want: false },
];

for (const c of recognised) {
  test(`server cookie check: ${c.name}`, () => {
    const ip = ipToBytes(c.ip);
    const bytes = Buffer.from(c.cookie, 'hex');
    assert.equal(serverCookieValid(bytes, 0, bytes.length, keys(...c.secret), new CookieScratch(), c.at, ip, ip.length), c.want);
  });
}

test('COOKIE option lengths: 8 or 16 to 40 bytes (RFC 7873 §5.2.2)', () => {
  for (const [len, ok] of [[0, false], [7, false], [8, true], [9, false], [15, false], [16, true], [24, true], [40, true], [41, false]] as const) {
    assert.equal(cookieLengthOk(len), ok, `${len} bytes`);
  }
});
