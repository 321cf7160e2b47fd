// The in-place query parser, table-driven, cross-checked against dns-packet.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { nameToWire, wireToName } from '../../src/dns/names.ts';
import { ParsedQuery, parseQuery, PARSE_FORMERR, PARSE_NO_QUESTION, PARSE_OK, skipName } from '../../src/dns/parse.ts';
import { buildQuery } from '../helpers/dns-client.ts';

function parse(packet: Uint8Array): { status: number; q: ParsedQuery; lower: Uint8Array } {
  const q = new ParsedQuery();
  const lower = new Uint8Array(256);
  return { status: parseQuery(packet, packet.length, q, lower), q, lower };
}

const ok: { name: string; packet: Buffer; expect: Partial<ParsedQuery> & { lowerName: string } }[] = [
  { name: 'a plain A query', packet: buildQuery('app.example.test', 'A', { id: 7 }), expect: { id: 7, qtype: 1, qclass: 1, hasEdns: false, lowerName: 'app.example.test' } },
  { name: 'a mixed-case name, lower-cased for lookup', packet: buildQuery('ApP.EXAMPLE.tESt', 'AAAA'), expect: { qtype: 28, lowerName: 'app.example.test' } },
  { name: 'the root name', packet: buildQuery('.', 'NS'), expect: { qtype: 2, qnameLen: 1, lowerName: '' } },
  { name: 'EDNS with size and DO', packet: buildQuery('a.test', 'A', { edns: { udpSize: 4096, do: true } }), expect: { hasEdns: true, udpSize: 4096, dnssecOk: true, ednsVersion: 0, lowerName: 'a.test' } },
  { name: 'EDNS version 1 (parsed; BADVERS is the handler’s call)', packet: buildQuery('a.test', 'A', { edns: { version: 1 } }), expect: { hasEdns: true, ednsVersion: 1, lowerName: 'a.test' } },
  {
    name: 'ECS IPv4 /24',
    packet: buildQuery('a.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: '198.51.100.0' } } }),
    expect: { ecsFamily: 1, ecsSourcePrefix: 24, ecsAddrLen: 3, lowerName: 'a.test' },
  },
  {
    name: 'ECS IPv6 /0 (no address bytes)',
    packet: buildQuery('a.test', 'A', { edns: { ecs: { family: 2, sourcePrefix: 0, address: '::' } } }),
    expect: { ecsFamily: 2, ecsSourcePrefix: 0, ecsAddrLen: 0, lowerName: 'a.test' },
  },
];

for (const c of ok) {
  test(`parses ${c.name}`, () => {
    const { status, q, lower } = parse(c.packet);
    assert.equal(status, PARSE_OK);
    const { lowerName, ...fields } = c.expect;
    for (const [k, v] of Object.entries(fields)) assert.equal(q[k as keyof ParsedQuery], v, k);
    assert.equal(wireToName(lower.subarray(0, q.qnameLen)), lowerName);
    // Cross-check with dns-packet: same question, same end offset.
    const ref = dnsPacket.decode(c.packet);
    assert.equal(ref.questions![0].name.toLowerCase().replace(/^\.$/, ''), lowerName);
    assert.equal(q.questionEnd, 12 + q.qnameLen + 4);
  });
}

const bad: { name: string; mutate: (p: Buffer) => Buffer }[] = [
  { name: 'QDCOUNT 2', mutate: (p) => (p.writeUInt16BE(2, 4), p) },
  { name: 'a name cut short', mutate: (p) => p.subarray(0, 16) },
  { name: 'a missing qclass', mutate: (p) => p.subarray(0, p.length - 2) },
  { name: 'a label of 64', mutate: (p) => ((p[12] = 64), p) },
  { name: 'a compression pointer in the question', mutate: (p) => Buffer.concat([p.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]) },
  { name: 'a reserved label type', mutate: (p) => ((p[12] = 0x41), p) },
  { name: 'an answer record in a query', mutate: (p) => (p.writeUInt16BE(1, 6), p) },
  { name: 'five additional records', mutate: (p) => (p.writeUInt16BE(5, 10), p) },
  { name: 'an additional count with no record', mutate: (p) => (p.writeUInt16BE(1, 10), p) },
  // Knot and BIND answer FORMERR for bytes after the last counted record.
  { name: 'bytes after the question', mutate: (p) => Buffer.concat([p, Buffer.from('deadbeef', 'hex')]) },
  { name: 'one byte after the question', mutate: (p) => Buffer.concat([p, Buffer.of(0)]) },
];
for (const c of bad) {
  test(`refuses ${c.name} as FORMERR`, () => {
    assert.equal(parse(c.mutate(buildQuery('app.example.test', 'A'))).status, PARSE_FORMERR);
  });
}

test('refuses a name longer than 255 octets', () => {
  const labels = Array.from({ length: 5 }, () => 'x'.repeat(63));
  const name = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.of(63), Buffer.from(l)])), Buffer.of(0)]);
  const packet = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1])]);
  assert.equal(parse(packet).status, PARSE_FORMERR);
});

test('accepts a name of exactly 255 octets', () => {
  const labels = [63, 63, 63, 61];
  const name = Buffer.concat([...labels.map((n) => Buffer.concat([Buffer.of(n), Buffer.alloc(n, 0x61)])), Buffer.of(0)]);
  assert.equal(name.length, 255);
  const packet = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1])]);
  const { status, q } = parse(packet);
  assert.equal(status, PARSE_OK);
  assert.equal(q.qnameLen, 255);
});

test('a query with QDCOUNT 0 is PARSE_NO_QUESTION (a cookie-only query, RFC 7873 §5.4; FORMERR without a COOKIE), or FORMERR when malformed besides', () => {
  const header = (): Buffer => { const p = buildQuery('app.example.test', 'A').subarray(0, 12); p.writeUInt16BE(0, 4); return p; };
  assert.equal(parse(header()).status, PARSE_NO_QUESTION);
  // The question left behind a QDCOUNT of 0 is bytes after the last counted record.
  assert.equal(parse((() => { const p = buildQuery('app.example.test', 'A'); p.writeUInt16BE(0, 4); return p; })()).status, PARSE_FORMERR);
  const withAnswer = buildQuery('app.example.test', 'A');
  withAnswer.writeUInt16BE(0, 4);
  withAnswer.writeUInt16BE(1, 6);
  assert.equal(parse(withAnswer).status, PARSE_FORMERR);
});

test('reads the OPT of a query with QDCOUNT 0 or 2 so the FORMERR can carry one (RFC 6891 §7), and echoes no question', () => {
  const withOpt = buildQuery('app.example.test', 'A', { edns: { udpSize: 4096, do: true } });
  // QDCOUNT 0: the OPT record follows the header directly.
  const noQuestion = Buffer.concat([withOpt.subarray(0, 12), withOpt.subarray(12 + 18 + 4)]);
  noQuestion.writeUInt16BE(0, 4);
  // QDCOUNT 2: the question twice, then the OPT.
  const twoQuestions = Buffer.concat([withOpt.subarray(0, 34), withOpt.subarray(12, 34), withOpt.subarray(34)]);
  twoQuestions.writeUInt16BE(2, 4);
  for (const packet of [noQuestion, twoQuestions]) {
    const { status, q } = parse(packet);
    assert.equal(status, packet === noQuestion ? PARSE_NO_QUESTION : PARSE_FORMERR);
    assert.equal(q.questionEnd, 0);
    assert.equal(q.hasEdns, true);
    assert.equal(q.udpSize, 4096);
    assert.equal(q.dnssecOk, true);
  }
  // A QDCOUNT the packet cannot hold: FORMERR, bounded by the packet length.
  const huge = Buffer.from(noQuestion);
  huge.writeUInt16BE(0xffff, 4);
  assert.equal(parse(huge).status, PARSE_FORMERR);
});

test('refuses bytes after the OPT record as FORMERR, the OPT still read so the FORMERR carries one (RFC 6891 §6.1.1), its ECS not echoed', () => {
  const packet = Buffer.concat([buildQuery('app.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: '198.51.100.0' } } }), Buffer.of(0xde, 0xad)]);
  const { status, q } = parse(packet);
  assert.equal(status, PARSE_FORMERR);
  assert.equal(q.hasEdns, true);
  assert.equal(q.questionEnd, 12 + 18 + 4);
  assert.equal(q.ecsFamily, 0);
});

test('refuses two OPT records and an OPT not owned by the root', () => {
  const twice = dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [{ type: 'A', name: 'a.test' }],
    additionals: [
      { type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer,
      { type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer,
    ],
  });
  assert.equal(parse(twice).status, PARSE_FORMERR);
  // dns-packet will not encode an OPT with an owner, so write one by hand.
  const base = buildQuery('a.test', 'A');
  const owned = Buffer.concat([base, Buffer.from(nameToWire('x.test')), Buffer.from([0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0])]);
  owned.writeUInt16BE(1, 10);
  assert.equal(parse(owned).status, PARSE_FORMERR);
});

test('refuses malformed ECS options (RFC 7871 §7.1.1)', () => {
  const withEcs = (bytes: number[]): Buffer => {
    const base = buildQuery('a.test', 'A', { edns: {} });
    const opt = Buffer.from([0, 8, 0, bytes.length, ...bytes]);
    const rdlenOff = base.length - 2;
    const out = Buffer.concat([base, opt]);
    out.writeUInt16BE(opt.length, rdlenOff);
    return out;
  };
  assert.equal(parse(withEcs([0, 1, 24, 0, 198, 51, 100])).status, PARSE_OK, 'the well-formed baseline parses');
  assert.equal(parse(withEcs([0, 3, 24, 0, 198, 51, 100])).status, PARSE_FORMERR, 'family 3');
  assert.equal(parse(withEcs([0, 1, 33, 0, 1, 2, 3, 4, 5])).status, PARSE_FORMERR, 'IPv4 prefix 33');
  assert.equal(parse(withEcs([0, 1, 24, 8, 198, 51, 100])).status, PARSE_FORMERR, 'scope in a query');
  assert.equal(parse(withEcs([0, 1, 24, 0, 198, 51])).status, PARSE_FORMERR, 'too few address bytes');
  assert.equal(parse(withEcs([0, 1, 20, 0, 198, 51, 0x11])).status, PARSE_FORMERR, 'bits set past the prefix');
});

test('skips compressed names only through backward pointers', () => {
  const msg = Buffer.concat([Buffer.alloc(12), nameToWire('a.test'), Buffer.from([0xc0, 12]), Buffer.from([0xc0, 40])]);
  assert.equal(skipName(msg, 12, msg.length), 12 + 8);
  assert.equal(skipName(msg, 20, msg.length), 22, 'a pointer back to offset 12');
  assert.equal(skipName(msg, 22, msg.length), -1, 'a pointer forwards');
  assert.equal(skipName(msg, 23, msg.length), -1, 'runs off the end');
});
