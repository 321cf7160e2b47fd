// Property tests (fast-check) of the query path: the parser and the answer
// writer through the real handleQuery on a real compiled snapshot (a signed
// zone, names with 1, 8 and 32 servers, a CNAME, missing and outside names).
// Every reply to a well-formed query parses with dns-packet and echoes the ID
// and the question byte for byte; over UDP a reply never exceeds the client's
// size and a truncated one (TC=1) carries whole records only; any bytes at all
// are answered with a reply dns-packet parses, or dropped, never an exception.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { createFixture, responseBuffer } from '../../bench/lib/fixture.ts';
import { handleQuery } from '../../workers/handle-query.ts';

const RUNS = 3000;
const big = (n: number, v6: boolean): string => Array.from({ length: n }, (_, i) => `{ address: "${v6 ? `2001:db8::${(i + 1).toString(16)}` : `192.0.2.${i + 1}`}" }`).join(', ');
const fixture = createFixture(
  `
dns: { zones: [example.test] }
regions:
  - name: one
    servers: [{ address: 192.0.2.200 }]
    health_check: { type: none }
  - name: eight
    servers: [${big(8, false)}]
    health_check: { type: none }
  - name: wide4
    servers: [${big(32, false)}]
    health_check: { type: none }
  - name: wide6
    servers: [${big(32, true)}]
    health_check: { type: none }
domains:
  - { name: one.example.test, regions: [one] }
  - { name: eight.example.test, regions: [eight], max_answers: 8 }
  - { name: wide.example.test, regions: [wide4, wide6], max_answers: 32 }
`,
  { signed: 'ECDSAP256SHA256' },
);
const out = responseBuffer();

const NAMES = ['one.example.test', 'eight.example.test', 'wide.example.test', 'example.test', 'missing.example.test', 'a.b.wide.example.test', 'www.example.com', '.'];
const TYPES = ['A', 'AAAA', 'ANY', 'SOA', 'NS', 'DNSKEY', 'MX', 'TXT', 'CNAME', 'DS', 'NSEC', 'RRSIG', 'CAA'] as const;

/** A well-formed query: any of the names in any letter case, any type, EDNS or not, any buffer size and DO bit. */
const queryArb = fc.record({
  id: fc.integer({ min: 0, max: 0xffff }),
  name: fc.oneof(fc.constantFrom(...NAMES), fc.stringMatching(/^[a-z0-9-]{1,20}\.(wide\.)?example\.test$/)),
  upper: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
  type: fc.constantFrom(...TYPES),
  rd: fc.boolean(),
  cd: fc.boolean(),
  edns: fc.option(fc.record({ udpSize: fc.integer({ min: 0, max: 4096 }), dnssecOk: fc.boolean() }), { nil: null }),
});
type QueryCase = typeof queryArb extends fc.Arbitrary<infer T> ? T : never;

function encode(c: QueryCase): { wire: Buffer; qname: string } {
  // 0x20 case randomisation, as resolvers do: the reply must echo the name's exact bytes.
  const qname = [...c.name].map((ch, i) => (c.upper[i % c.upper.length] ? ch.toUpperCase() : ch)).join('');
  const packet: dnsPacket.Packet = {
    type: 'query',
    id: c.id,
    flags: (c.rd ? dnsPacket.RECURSION_DESIRED : 0) | (c.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ name: qname, type: c.type as dnsPacket.RecordType, class: 'IN' }],
    additionals: c.edns === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: c.edns.udpSize, flags: c.edns.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as dnsPacket.Answer],
  };
  return { wire: dnsPacket.encode(packet), qname };
}

/** The question section's bytes of a message (header is 12 bytes, one question). */
function questionBytes(msg: Buffer): Buffer {
  let off = 12;
  while (msg[off] !== 0) off += 1 + msg[off];
  return msg.subarray(12, off + 5);
}

function answer(wire: Uint8Array, tcp: boolean): Buffer | null {
  fixture.scratch.client.setSource('198.51.100.7', 4);
  const n = handleQuery(fixture.scratch, wire, wire.length, out, tcp);
  return n === 0 ? null : Buffer.from(out.subarray(0, n));
}

test('every reply to a well-formed query parses with dns-packet and echoes the ID and the question byte for byte, over UDP and TCP', () => {
  fc.assert(
    fc.property(queryArb, fc.boolean(), (c, tcp) => {
      const { wire } = encode(c);
      const reply = answer(wire, tcp);
      assert.ok(reply !== null, 'a well-formed query is answered');
      const decoded = dnsPacket.decode(reply) as dnsPacket.Packet & { rcode?: string };
      assert.equal(decoded.id, c.id);
      assert.equal(decoded.type, 'response');
      assert.equal(reply.readUInt16BE(4), 1, 'QDCOUNT');
      assert.ok(questionBytes(reply).equals(questionBytes(wire)), 'the question is echoed byte for byte (0x20 case kept)');
      assert.equal((reply[2] & 0x01) !== 0, c.rd, 'RD is copied');
    }),
    { numRuns: RUNS },
  );
});

test('over UDP a reply fits the client\'s size, and a truncated one (TC=1) cuts between records, never inside one', () => {
  let truncated = 0;
  fc.assert(
    fc.property(queryArb, fc.constantFrom('wide.example.test', 'eight.example.test', 'example.test'), fc.constantFrom('A', 'AAAA', 'ANY', 'DNSKEY', 'NS'), (c, name, type) => {
      // Big answers and small sizes: plain 512, or EDNS from 0 (means 512) upward, often with DO (RRSIGs).
      const q: QueryCase = { ...c, name, type, edns: c.edns === null ? null : { udpSize: c.edns.udpSize % 1500, dnssecOk: c.edns.dnssecOk } };
      const { wire } = encode(q);
      const reply = answer(wire, false);
      assert.ok(reply !== null);
      // dns-packet writes a size of 0 as 4096; the server caps what it sends at 1232 and never goes below 512.
      const asked = q.edns === null ? 512 : q.edns.udpSize || 4096;
      const limit = Math.min(1232, Math.max(512, asked));
      assert.ok(reply.length <= limit, `${reply.length} bytes for a ${limit}-byte client`);
      // dns-packet reads exactly the counts the header gives: a record cut in half throws here.
      const decoded = dnsPacket.decode(reply);
      const counts = [reply.readUInt16BE(6), reply.readUInt16BE(8), reply.readUInt16BE(10)];
      assert.deepEqual(counts, [decoded.answers?.length ?? 0, decoded.authorities?.length ?? 0, decoded.additionals?.length ?? 0]);
      if ((reply[2] & 0x02) !== 0) {
        truncated++;
        // A whole reply re-encoded is exactly as long: nothing trails the last record.
        assert.equal(dnsPacket.encodingLength(decoded), reply.length, 'no partial record after the counted ones');
      }
      // Over TCP the same query gets the whole answer.
      const whole = answer(wire, true);
      assert.ok(whole !== null && (whole[2] & 0x02) === 0, 'TC is never set over TCP');
      dnsPacket.decode(whole);
    }),
    { numRuns: RUNS },
  );
  assert.ok(truncated > RUNS / 10, `only ${truncated} of ${RUNS} replies were truncated: the property did not exercise truncation`);
});

test('any bytes, and any mutation of a valid query, are dropped or answered with a reply dns-packet parses, never an exception', () => {
  const mutated = fc.tuple(queryArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.option(fc.nat(), { nil: null })).map(([c, flips, cut]) => {
    const wire = Buffer.from(encode(c).wire);
    for (const [at, byte] of flips) wire[at % wire.length] = byte;
    return cut === null ? wire : wire.subarray(0, cut % (wire.length + 1));
  });
  fc.assert(
    fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b))), fc.boolean(), (wire, tcp) => {
      const reply = answer(wire, tcp);
      if (reply === null) {
        // Dropped only when too short to answer or a response (QR=1).
        assert.ok(wire.length < 12 || (wire[2] & 0x80) !== 0, `dropped ${wire.toString('hex')}`);
        return;
      }
      assert.equal(reply.readUInt16BE(0), wire.readUInt16BE(0), 'the ID is echoed');
      assert.ok((reply[2] & 0x80) !== 0, 'QR is set');
      dnsPacket.decode(reply);
    }),
    { numRuns: RUNS * 2 },
  );
});
