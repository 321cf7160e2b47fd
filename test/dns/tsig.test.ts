// Whole server on loopback, raw packets: TSIG-signed queries (RFC 8945) and
// the order of the EDNS checks, compared with Knot DNS (knotd answers a key
// it does not hold with the same bytes). We hold no TSIG keys: a signed query
// gets NOTAUTH with an unsigned BADKEY TSIG. Once per UDP path (dns.udp_io:
// batched through the native addon, and node:dgram), and over TCP.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { rcodeOf, tcpExchange, udpExchange } from '../helpers/dns-client.ts';
import { launchOnPath, type Started, udpPathSkip } from '../helpers/server.ts';

/** A query header: id 0x4242, RD, one question, `ar` additional records. */
function header(ar: number): Buffer {
  const h = Buffer.from('424201000001000000000000', 'hex');
  h.writeUInt16BE(ar, 10);
  return h;
}

/** Wire question app.example.test A IN. */
const QUESTION = Buffer.from('03617070076578616d706c6504746573740000010001', 'hex');

/** An OPT record: size 1232, EDNS `version`, DO clear, with a COOKIE option of `cookie` when given. */
function opt(version = 0, cookie?: Buffer): Buffer {
  const options = cookie === undefined ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0, 10, 0, cookie.length]), cookie]);
  const fixed = Buffer.from('00002904d000000000', 'hex');
  fixed[6] = version;
  const rdlen = Buffer.alloc(2);
  rdlen.writeUInt16BE(options.length);
  return Buffer.concat([fixed, rdlen, options]);
}

/** Wire form of a name given in dotted form (no trailing dot). */
function wire(name: string): Buffer {
  return Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l)])), Buffer.of(0)]);
}

const KEY = wire('Foo.Key');
const ALGORITHM = wire('hmac-sha256');
/** Time signed (48 bits) and fudge, as dig -y sends them. */
const TIME_FUDGE = Buffer.from('00006b16976b012c', 'hex');
const MAC = Buffer.alloc(32, 0xab);
/** The TSIG's original ID, not the header's (0x4242): the reply must echo this one. */
const ORIGINAL_ID = 0x1234;

/** A TSIG RR with `owner` (wire, possibly a pointer), `algorithm` and the fields above; `otherLen` lies about the other data when given. */
function tsig(owner: Buffer = KEY, otherLen?: number, algorithm: Buffer = ALGORITHM): Buffer {
  const tail = Buffer.alloc(6);
  tail.writeUInt16BE(ORIGINAL_ID, 0);
  tail.writeUInt16BE(otherLen ?? 0, 4);
  const macSize = Buffer.alloc(2);
  macSize.writeUInt16BE(MAC.length);
  const rdata = Buffer.concat([algorithm, TIME_FUDGE, macSize, MAC, tail]);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(250, 0);
  fixed.writeUInt16BE(255, 2);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([owner, fixed, rdata]);
}

/** The BADKEY TSIG RR we expect at the end of a reply (Knot's bytes): key name uncompressed, class ANY, TTL 0, MAC size 0, error 17. */
const BADKEY_TSIG = Buffer.concat([KEY, Buffer.from('00fa00ff00000000', 'hex'), Buffer.from([0, ALGORITHM.length + 16]), ALGORITHM, TIME_FUDGE, Buffer.from('0000123400110000', 'hex')]);

/** The full rcode: header bits and the OPT's extended bits, when the reply has an OPT. */
function fullRcode(raw: Buffer): number {
  const decoded = dnsPacket.decode(raw);
  const o = decoded.additionals?.find((a) => a.type === 'OPT') as (dnsPacket.Answer & { extendedRcode?: number }) | undefined;
  return rcodeOf(raw) | ((o?.extendedRcode ?? 0) << 4);
}

/** Asserts a NOTAUTH reply to a signed query: the question, our OPT when `withOpt`, and the BADKEY TSIG last. */
function assertBadKey(raw: Buffer | null, withOpt: boolean): void {
  assert.ok(raw, 'a reply');
  assert.equal(raw.readUInt16BE(0), 0x4242);
  assert.equal(rcodeOf(raw), 9, 'NOTAUTH (RFC 8945 §5.2)');
  assert.equal(raw[2] & 0x04, 0, 'AA clear, as Knot');
  assert.equal(raw.readUInt16BE(4), 1, 'the question');
  assert.equal(raw.readUInt16BE(6) + raw.readUInt16BE(8), 0, 'no answer or authority records');
  assert.equal(raw.readUInt16BE(10), withOpt ? 2 : 1, withOpt ? 'the OPT, then the TSIG' : 'the TSIG');
  assert.deepEqual(raw.subarray(raw.length - BADKEY_TSIG.length), BADKEY_TSIG, 'the BADKEY TSIG, last, echoing key, algorithm, time, fudge and original ID');
  const decoded = dnsPacket.decode(raw);
  assert.equal(decoded.additionals?.at(-1)?.name, 'Foo.Key', 'dns-packet reads the TSIG owner');
}

for (const path of ['batched', 'dgram', 'tcp'] as const) describe(`TSIG-signed queries and EDNS check order (the ${path} path)`, { skip: udpPathSkip(path) }, () => {
  let server: Started;
  let strict: Started;
  const exchange = (s: Started, packet: Buffer): Promise<Buffer | null> => (path === 'tcp' ? tcpExchange(s.port, packet) : udpExchange(s.port, packet));
  before(async () => {
    server = await launchOnPath(path);
    strict = await launchOnPath(path, 'cookies: { require: true }');
  });
  after(async () => {
    await server?.overwatch.stop(500);
    await strict?.overwatch.stop(500);
  });

  test('a signed query with an unknown key gets NOTAUTH and an unsigned BADKEY TSIG after our OPT (RFC 8945 §5.2), as Knot answers', async () => {
    assertBadKey(await exchange(server, Buffer.concat([header(2), QUESTION, opt(), tsig()])), true);
  });

  test('a signed query without EDNS gets NOTAUTH and the BADKEY TSIG alone in the additional section', async () => {
    assertBadKey(await exchange(server, Buffer.concat([header(1), QUESTION, tsig()])), false);
  });

  test('a key name compressed to a pointer at the question is echoed uncompressed', async () => {
    const raw = await exchange(server, Buffer.concat([header(1), QUESTION, tsig(Buffer.from('c00c', 'hex'))]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 9);
    const expected = Buffer.concat([QUESTION.subarray(0, QUESTION.length - 4), BADKEY_TSIG.subarray(KEY.length)]);
    assert.deepEqual(raw.subarray(raw.length - expected.length), expected);
  });

  test('a BADKEY reply too big for a client without EDNS (two long names) is truncated over UDP (TC=1, the question), whole over TCP', async () => {
    const long = wire(Array.from({ length: 4 }, (_, i) => `${'k'.repeat(59)}${i}`).join('.'));
    const raw = await exchange(server, Buffer.concat([header(1), QUESTION, tsig(long, undefined, long)]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 9);
    if (path === 'tcp') {
      assert.equal(raw[2] & 0x02, 0, 'no TC over TCP');
      assert.equal(raw.readUInt16BE(10), 1, 'the TSIG');
      assert.ok(raw.length > 512);
    } else {
      assert.ok(raw.length <= 512, `${raw.length} bytes to a client without EDNS`);
      assert.equal(raw[2] & 0x02, 0x02, 'TC=1: ask again over TCP');
      assert.equal(raw.readUInt16BE(10), 0, 'no records');
    }
  });

  test('a TSIG that is not the last record is FORMERR, with our OPT', async () => {
    const raw = await exchange(server, Buffer.concat([header(2), QUESTION, tsig(), opt()]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 1);
    assert.equal(raw.readUInt16BE(10), 1, 'just our OPT');
    assert.equal(dnsPacket.decode(raw).additionals?.[0]?.type, 'OPT');
  });

  test('two TSIG records are FORMERR', async () => {
    const raw = await exchange(server, Buffer.concat([header(3), QUESTION, opt(), tsig(), tsig()]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 1);
  });

  test('a TSIG whose fields do not fill its RDATA exactly is FORMERR', async () => {
    const raw = await exchange(server, Buffer.concat([header(2), QUESTION, opt(), tsig(KEY, 4)]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 1);
  });

  test('an EDNS version 1 query gets BADVERS before anything else, under dns.cookies.require too, and with no cookie in it (RFC 6891 §6.1.3; Knot does the same)', async () => {
    const cases: [string, Buffer][] = [
      ['no cookie', opt(1)],
      ['a client cookie', opt(1, Buffer.from('0102030405060708', 'hex'))],
      ['a COOKIE option of a bad length', opt(1, Buffer.from('0102030405', 'hex'))],
    ];
    for (const s of [strict, server]) {
      for (const [name, o] of cases) {
        for (const extra of [Buffer.alloc(0), tsig()]) {
          const raw = await exchange(s, Buffer.concat([header(extra.length === 0 ? 1 : 2), QUESTION, o, extra]));
          assert.ok(raw, name);
          assert.equal(fullRcode(raw), 16, `BADVERS for ${name}${extra.length === 0 ? '' : ', signed'}`);
          assert.equal(raw.readUInt16BE(10), 1, 'only our OPT');
          const ours = dnsPacket.decode(raw).additionals?.[0] as (dnsPacket.Answer & { options?: unknown[] }) | undefined;
          assert.deepEqual(ours?.options, [], 'our OPT carries no option (no cookie)');
        }
      }
    }
  });

  test('an EDNS version 1 query with a well-formed ECS option gets BADVERS echoing it, and with an ECS option Knot finds malformed too gets FORMERR, as Knot answers both', async () => {
    // knotd 3 (edns-client-subnet: on) reads ECS before it looks at the
    // version: family 9, a /33 IPv4 prefix or a 2-byte option are FORMERR at
    // version 1 as at version 0, and only an option it takes gets BADVERS.
    const ecs = (hex: string): Buffer => {
      const data = Buffer.from(hex, 'hex');
      const o = opt(1);
      o.writeUInt16BE(4 + data.length, 9);
      return Buffer.concat([o, Buffer.from([0, 8, 0, data.length]), data]);
    };
    const cases: [string, string, number][] = [
      ['a well-formed ECS (1.2.3.0/24)', '00011800010203', 16],
      ['ECS family 9', '00091800010203', 1],
      ['ECS family 1 with a /33 prefix', '000121000102030405', 1],
      ['an ECS option of 2 bytes', '0001', 1],
    ];
    for (const [name, hex, rcode] of cases) {
      const raw = await exchange(server, Buffer.concat([header(1), QUESTION, ecs(hex)]));
      assert.ok(raw, name);
      assert.equal(fullRcode(raw), rcode, name);
      assert.equal(raw.readUInt16BE(10), 1, `${name}: our OPT`);
      // Knot's BADVERS echoes the ECS option with scope 0 (RFC 7871 §7.2.1); its OPT, byte for byte.
      if (rcode === 16) assert.equal(raw.subarray(raw.length - 22).toString('hex'), '00002904d001000000000b0008000700011800010203', `${name}: the OPT echoes the ECS option`);
    }
  });

  test('under dns.cookies.require, a signed UDP query without a server cookie gets BADCOOKIE first (as Knot); over TCP, NOTAUTH', async () => {
    const raw = await exchange(strict, Buffer.concat([header(2), QUESTION, opt(0, Buffer.from('0102030405060708', 'hex')), tsig()]));
    assert.ok(raw);
    if (path === 'tcp') assert.equal(rcodeOf(raw), 9);
    else assert.equal(fullRcode(raw), 23);
  });

  test('still answers normally afterwards, with no exception counted', async () => {
    const raw = await exchange(server, Buffer.concat([header(1), QUESTION, opt()]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 0);
    assert.equal(raw.readUInt16BE(6), 1);
    assert.equal(server.overwatch.readCounters().EXCEPTIONS, 0);
  });
});
