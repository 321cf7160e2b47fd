// The client address the query path hands to routing: text sources from
// node:dgram / node:net parsed only when asked, byte sources from a batched
// socket kept as given, both checked against the project's reference parser.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ParsedQuery } from '../../src/dns/parse.ts';
import { ipToBytes } from '../../src/lib/ip.ts';
import { ClientAddress, parseAddress } from '../../src/routing/client.ts';

const VALID = [
  '192.0.2.1', '0.0.0.0', '255.255.255.255', '10.1.2.3',
  '::', '::1', '1::', '2001:db8::1', '2001:DB8:0:0:0:0:0:1', 'fe80::1:2:3:4', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6::8',
  '64:ff9b::192.0.2.33', '2001:db8:0:1:1:1:1:1', 'fe80::1%eth0',
];
const INVALID = ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..2.3', 'a.b.c.d', ':', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::1', '%eth0', '1:', 'g::1', '::1.2.3.4.5', '1:2:3:4:5:6:7:1.2.3.4'];

for (const text of VALID) {
  test(`parses ${text} to the bytes the reference parser gives`, () => {
    const out = new Uint8Array(16);
    const len = parseAddress(text, out);
    const want = ipToBytes(text.toLowerCase());
    assert.equal(len, want.length);
    assert.deepEqual([...out.subarray(0, len)], [...want]);
  });
}

for (const text of INVALID) {
  test(`refuses ${JSON.stringify(text)} as an address`, () => {
    assert.equal(parseAddress(text, new Uint8Array(16)), 0);
  });
}

test('reads an IPv4-mapped IPv6 source (how a dual-stack socket reports IPv4 clients) as IPv4', () => {
  const out = new Uint8Array(16);
  assert.equal(parseAddress('::ffff:192.0.2.7', out), 4);
  assert.deepEqual([...out.subarray(0, 4)], [192, 0, 2, 7]);
  assert.equal(parseAddress('::ffff:c000:207', out), 4);
  assert.deepEqual([...out.subarray(0, 4)], [192, 0, 2, 7]);
});

test('a text source is parsed only when a policy asks, once per query, and a new query starts over', () => {
  const client = new ClientAddress(new ParsedQuery());
  client.setSource('2001:db8::9', 6);
  assert.equal(client.sourceBytes(), 16);
  assert.equal(client.bytes[15], 9);
  client.setSource('192.0.2.200', 4);
  assert.equal(client.sourceBytes(), 4);
  assert.deepEqual([...client.bytes.subarray(0, 4)], [192, 0, 2, 200]);
  client.setSource('not an address', 4);
  assert.equal(client.sourceBytes(), 0);
});

test('a byte source is kept as given, with its family', () => {
  const client = new ClientAddress(new ParsedQuery());
  const packet = Uint8Array.from([9, 9, 198, 51, 100, 7, 9]);
  client.setSourceBytes(packet, 2, 4);
  assert.equal(client.sourceFamily, 4);
  assert.equal(client.sourceBytes(), 4);
  assert.deepEqual([...client.bytes.subarray(0, 4)], [198, 51, 100, 7]);
  assert.equal(client.sourceText, '');
});
