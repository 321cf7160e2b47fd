// Whole server on loopback, raw packets over real UDP sockets: protocol edge
// cases found by comparing answers with Knot DNS, each checked byte by byte
// (the replies are also decoded by dns-packet, the reference decoder). Once
// per UDP path (dns.udp_io): batched through the native addon, and node:dgram.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { rcodeOf, udpExchange } from '../helpers/dns-client.ts';
import { launchOnPath, type Started, udpPathSkip } from '../helpers/server.ts';

/** A header: id 0x4242, the given flags and counts. */
function header(flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0x4242, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(ar, 10);
  return h;
}

/** Wire question app.example.test A IN. */
const QUESTION = Buffer.from('03617070076578616d706c650474657374000001' + '0001', 'hex');
/** Our OPT record: root owner, size 1232, version 0, DO clear, no options. */
const OPT = Buffer.from('0000290' + '4d0000000000000', 'hex');
/** An OPT record with the DO bit and one 8-byte client COOKIE option. */
const OPT_DO_COOKIE = Buffer.from('00002904d000008000000c000a00080102030405060708', 'hex');

/** An OPT record with one ECS option: 192.0.2.0/24, scope 0. */
const OPT_ECS = Buffer.from('00002904d000000000000b' + '00080007' + '0001' + '1800' + 'c00002', 'hex');

const haveDig = spawnSync('dig', ['-v']).status === 0;
const execFileAsync = promisify(execFile);

/** A name in wire form, uncompressed. */
function wireName(name: string): Buffer {
  return Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l, 'latin1')])), Buffer.of(0)]);
}

/** The ECS option of a reply's OPT record, or null. */
function ecsOf(raw: Buffer): unknown {
  const decoded = dnsPacket.decode(raw);
  const opt = decoded.additionals?.find((r) => r.type === 'OPT') as { options?: { code: number; family?: number; sourcePrefixLength?: number; scopePrefixLength?: number; ip?: string }[] } | undefined;
  const ecs = opt?.options?.find((o) => o.code === 8);
  return ecs === undefined ? null : { family: ecs.family, sourcePrefixLength: ecs.sourcePrefixLength, scopePrefixLength: ecs.scopePrefixLength, ip: ecs.ip };
}

/** Asserts a FORMERR (or `rcode`) reply with no question and exactly our OPT record in the additional section. */
function assertErrorWithOpt(raw: Buffer | null, rcode: number, opcode = 0): void {
  assert.ok(raw, 'a reply');
  assert.equal(raw.readUInt16BE(0), 0x4242);
  assert.equal(rcodeOf(raw), rcode);
  assert.equal((raw[2] >> 3) & 0xf, opcode, 'opcode copied');
  assert.equal(raw.readUInt16BE(4), 0, 'no question');
  assert.equal(raw.readUInt16BE(10), 1, 'ARCOUNT 1: the OPT record (RFC 6891 §7)');
  const decoded = dnsPacket.decode(raw);
  const opt = decoded.additionals?.[0] as (dnsPacket.Answer & { udpPayloadSize?: number }) | undefined;
  assert.equal(opt?.type, 'OPT');
  assert.equal(opt?.udpPayloadSize, 1232);
}

for (const path of ['batched', 'dgram'] as const) describe(`DNS protocol edge cases (raw UDP, the ${path} path)`, { skip: udpPathSkip(path) }, () => {
  let server: Started;
  before(async () => {
    server = await launchOnPath(path);
  });
  after(() => server?.overwatch.stop(500));

  test('a query with QDCOUNT 0 and an OPT record gets FORMERR with an OPT, as Knot answers (docs: "OPT if the OPT itself was valid")', async () => {
    assertErrorWithOpt(await udpExchange(server.port, Buffer.concat([header(0x0100, 0, 0, 0, 1), OPT])), 1);
  });

  test('a query with QDCOUNT 0 and a client COOKIE (dig +header-only +cookie) gets NOERROR and a server cookie (RFC 7873 §5.4); the cookie then proves the client, a forged one gets BADCOOKIE', async () => {
    const ask = async (cookie: Buffer): Promise<{ raw: Buffer; cookie: Buffer }> => {
      // OPT with DO and one COOKIE option.
      const opt = Buffer.concat([Buffer.from('00002904d0000080000000', 'hex'), Buffer.of(0, 10, 0, cookie.length), cookie]);
      opt.writeUInt16BE(4 + cookie.length, 9);
      const raw = await udpExchange(server.port, Buffer.concat([header(0x0100, 0, 0, 0, 1), opt]));
      assert.ok(raw, 'a reply');
      assert.equal(raw.readUInt16BE(4), 0, 'no question');
      assert.equal(raw.readUInt16BE(6) + raw.readUInt16BE(8), 0, 'no records');
      assert.equal(raw.readUInt16BE(10), 1, 'the OPT');
      assert.equal(raw.readUInt16BE(12 + 7) & 0x8000, 0x8000, 'DO copied (RFC 3225 §3)');
      const decoded = dnsPacket.decode(raw) as { additionals?: { options?: { code: number; data: Buffer }[] }[] };
      const option = decoded.additionals?.[0]?.options?.find((o) => o.code === 10);
      assert.ok(option !== undefined, 'our COOKIE');
      assert.deepEqual(option.data.subarray(0, 8), cookie.subarray(0, 8), 'the client cookie echoed');
      assert.equal(option.data.length, 24, 'client cookie + a 16-byte server cookie (RFC 9018)');
      return { raw, cookie: option.data };
    };
    const client = Buffer.from('0102030405060708', 'hex');
    const first = await ask(client);
    assert.equal(rcodeOf(first.raw), 0, 'NOERROR for a client cookie alone');
    const before = server.overwatch.readCounters();
    const again = await ask(first.cookie);
    assert.equal(rcodeOf(again.raw), 0, 'NOERROR for our valid server cookie');
    assert.equal(server.overwatch.readCounters().COOKIE_VALID - before.COOKIE_VALID, 1);
    const forged = Buffer.from(first.cookie);
    forged[20] ^= 0xff;
    const refused = await ask(forged);
    assert.equal(rcodeOf(refused.raw), 7, 'BADCOOKIE (23: header 7, OPT extended rcode 1)');
    assert.equal(refused.raw[12 + 5], 1, 'extended rcode 1');
    // A COOKIE of a bad length is still FORMERR.
    assertErrorWithOpt(await udpExchange(server.port, Buffer.concat([header(0x0100, 0, 0, 0, 1), Buffer.from('00002904d00000000000080' + '00a000401020304', 'hex')])), 1);
  });

  test('a query with two questions and an OPT record gets FORMERR with an OPT', async () => {
    assertErrorWithOpt(await udpExchange(server.port, Buffer.concat([header(0x0100, 2, 0, 0, 1), QUESTION, QUESTION, OPT])), 1);
  });

  test('a NOTIFY with QDCOUNT 0 and an OPT record is malformed: FORMERR with an OPT, as Knot answers', async () => {
    assertErrorWithOpt(await udpExchange(server.port, Buffer.concat([header(0x2000, 0, 0, 0, 1), OPT])), 1, 4);
  });

  test('a NOTIFY (opcode 4, RFC 1996) for our zone or another gets NOTAUTH, no AA, the question and the ECS option echoed with scope 0, as Knot answers: we are no zone\'s secondary', async () => {
    for (const [zone, flags] of [['example.test', 0x2000], ['example.test', 0x2400], ['other.test', 0x2000]] as const) {
      const question = Buffer.concat([wireName(zone), Buffer.from('00060001', 'hex')]);
      const raw = await udpExchange(server.port, Buffer.concat([header(flags, 1, 0, 0, 1), question, OPT_ECS]));
      assert.ok(raw, `a reply for ${zone}`);
      assert.equal(rcodeOf(raw), 9, `${zone}: NOTAUTH`);
      assert.equal((raw[2] >> 3) & 0xf, 4, 'opcode NOTIFY copied');
      assert.equal(raw[2] & 0x04, 0, 'no AA');
      assert.equal(raw.readUInt16BE(4), 1, 'the question echoed');
      assert.deepEqual(ecsOf(raw), { family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '192.0.2.0' });
    }
  });

  test('REFUSED and NOTIMP echo a well-formed ECS option with scope 0, as Knot does (RFC 7871 §7.2.1)', async () => {
    const outside = Buffer.concat([wireName('app.other.test'), Buffer.from('00010001', 'hex')]);
    const refused = await udpExchange(server.port, Buffer.concat([header(0x0000, 1, 0, 0, 1), outside, OPT_ECS]));
    assert.ok(refused);
    assert.equal(rcodeOf(refused), 5);
    assert.deepEqual(ecsOf(refused), { family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '192.0.2.0' });
    const status = await udpExchange(server.port, Buffer.concat([header(0x1000, 1, 0, 0, 1), QUESTION, OPT_ECS]));
    assert.ok(status);
    assert.equal(rcodeOf(status), 4, 'opcode STATUS: NOTIMP');
    assert.deepEqual(ecsOf(status), { family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '192.0.2.0' });
  });

  test('dig +opcode=notify gets NOTAUTH and dig +subnet sees its subnet echoed on REFUSED and NOTIMP', { skip: haveDig ? false : 'dig is not installed (Debian: bind9-dnsutils)' }, async () => {
    const dig = async (...args: string[]): Promise<string> => (await execFileAsync('dig', ['@127.0.0.1', '-p', String(server.port), '+norec', '+subnet=192.0.2.0/24', ...args], { timeout: 10_000 })).stdout;
    const notify = await dig('+opcode=notify', 'example.test', 'SOA');
    assert.match(notify, /opcode: NOTIFY, status: NOTAUTH/);
    assert.match(notify, /CLIENT-SUBNET: 192\.0\.2\.0\/24\/0/);
    const refused = await dig('app.other.test', 'A');
    assert.match(refused, /status: REFUSED/);
    assert.match(refused, /CLIENT-SUBNET: 192\.0\.2\.0\/24\/0/);
    const notimp = await dig('+opcode=status', 'app.example.test', 'A');
    assert.match(notimp, /opcode: STATUS, status: NOTIMP/);
    assert.match(notimp, /CLIENT-SUBNET: 192\.0\.2\.0\/24\/0/);
  });

  test('a query with QDCOUNT 0 and no OPT still gets a bare FORMERR', async () => {
    const raw = await udpExchange(server.port, header(0x0100, 0, 0, 0, 0));
    assert.ok(raw);
    assert.equal(raw.length, 12);
    assert.equal(rcodeOf(raw), 1);
  });

  test('a question count that promises more questions than the packet holds is FORMERR without an OPT', async () => {
    const raw = await udpExchange(server.port, Buffer.concat([header(0x0100, 0xffff, 0, 0, 1), QUESTION, OPT]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 1);
    assert.equal(raw.readUInt16BE(4), 0);
  });

  test('still answers normally afterwards, with no exception counted', async () => {
    const raw = await udpExchange(server.port, Buffer.concat([header(0x0100, 1, 0, 0, 1), QUESTION, OPT]));
    assert.ok(raw);
    assert.equal(rcodeOf(raw), 0);
    assert.equal(raw.readUInt16BE(6), 1);
    assert.equal(server.overwatch.readCounters().EXCEPTIONS, 0);
  });
});
