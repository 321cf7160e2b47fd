// Whole server on loopback against hostile input (STYLE §3 and §4). Every
// crafted packet in test/fixtures/packets/ must get the action named in
// expectations.json, over UDP and over framed TCP; then a seeded mutation run
// over both transports must leave every worker alive, count no exception, and
// get a well-formed reply (valid header, our ID, QR=1, decodable by dns-packet)
// to every packet that is not a drop. All of it runs once per UDP path
// (dns.udp_io): batched through the native addon, and node:dgram.
//
//
// Reproduce a mutation run: FUZZ_SEED=<seed> FUZZ_COUNT=<n> node --test test/e2e/hostile.test.ts

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { RCODE } from '../../src/dns/constants.ts';
import { COUNTER, COUNTER_STRIDE } from '../../src/metrics/counters-layout.ts';
import { buildQuery, tcpConnect, udpExchange, type QueryOptions } from '../helpers/dns-client.ts';
import { startServer, udpPathSkip } from '../helpers/server.ts';
import { seededRandom } from '../../src/lib/random.ts';

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
  udp_io: UDP_IO
regions:
  - name: r1
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: "2001:db8::1" }]
domains:
  - { name: app.example.test, regions: [r1] }
logging: { level: error }
`;

const HOST = '127.0.0.1';
const APP_ADDRESSES = ['192.0.2.1', '192.0.2.2'];
/** Per-case limit: a reply or the sentinel's reply arrives within milliseconds; this only turns a hang into a failure. */
const CASE_TIMEOUT_MS = 5000;

// ---------------------------------------------------------------------------
// The corpus

type RcodeName = keyof typeof RCODE;
interface ReplyExpectation {
  rcode: RcodeName;
  question: boolean;
  opt: boolean;
}
type Expectation = 'drop' | ReplyExpectation;

interface Fixture {
  file: string;
  /** The first comment line of the .hex file. */
  title: string;
  packet: Buffer;
  expect: Expectation;
}

const FIXTURE_DIR = new URL('../fixtures/packets/', import.meta.url);
const EXPECTATIONS = JSON.parse(readFileSync(new URL('expectations.json', FIXTURE_DIR), 'utf8')) as Record<string, Expectation>;
const HEX_FILES = readdirSync(FIXTURE_DIR)
  .filter((f) => f.endsWith('.hex'))
  .sort();

/** Reads fixture hex text: `#` lines are comments (the first says what the packet is), whitespace is ignored. */
function parseHexFixture(file: string, text: string): { title: string; packet: Buffer } {
  let title = '';
  let hex = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) {
      if (title === '') title = line.slice(1).trim();
      continue;
    }
    hex += line.replace(/\s+/g, '');
  }
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`${file}: not an even number of hex digits`);
  if (title === '') throw new Error(`${file}: the first comment line must say what the packet is`);
  return { title, packet: Buffer.from(hex, 'hex') };
}

const FIXTURES: Fixture[] = HEX_FILES.filter((file) => file in EXPECTATIONS).map((file) => ({
  file,
  ...parseHexFixture(file, readFileSync(new URL(file, FIXTURE_DIR), 'utf8')),
  expect: EXPECTATIONS[file],
}));

function caseName(f: Fixture): string {
  if (f.expect === 'drop') return `drops ${f.file} without a reply: ${f.title}`;
  const e = f.expect;
  return `answers ${f.file} with ${e.rcode}, ${e.question ? 'question echoed' : 'no question'}, ${e.opt ? 'OPT' : 'no OPT'}: ${f.title}`;
}

// ---------------------------------------------------------------------------
// Reply checks

/** Returns the offset just past the question of a message whose question name is uncompressed (as our echo is). */
function questionEnd(msg: Buffer): number {
  let off = 12;
  while (off < msg.length && msg[off] !== 0) off += msg[off] + 1;
  return off + 1 + 4;
}

interface Inspected {
  /** Full rcode: header low 4 bits plus the OPT's extended-rcode byte << 4. */
  rcode: number;
  hasOpt: boolean;
  decoded: ReturnType<typeof dnsPacket.decode>;
}

/**
 * Asserts what holds for every reply, whatever the query: a 12-byte header with
 * QR=1; dns-packet decodes all of it and nothing is left over; at most one OPT,
 * of version 0; an error reply carries no answer or authority records.
 */
function inspectReply(reply: Buffer, context: string): Inspected {
  assert.ok(reply.length >= 12, `${context}: reply of ${reply.length} bytes is shorter than a header`);
  assert.equal(reply[2] & 0x80, 0x80, `${context}: QR is not set in the reply`);
  let decoded: ReturnType<typeof dnsPacket.decode>;
  try {
    decoded = dnsPacket.decode(reply);
  } catch (err) {
    assert.fail(`${context}: dns-packet cannot decode the reply (${(err as Error).message}): ${reply.toString('hex')}`);
  }
  assert.equal(dnsPacket.decode.bytes, reply.length, `${context}: ${reply.length - dnsPacket.decode.bytes} bytes after the last counted record`);
  const opts = (decoded.additionals ?? []).filter((a) => a.type === 'OPT') as dnsPacket.OptAnswer[];
  assert.ok(opts.length <= 1, `${context}: ${opts.length} OPT records in the reply`);
  const hasOpt = opts.length === 1;
  if (hasOpt) assert.equal(opts[0].ednsVersion, 0, `${context}: reply OPT has version ${opts[0].ednsVersion}`);
  const rcode = ((hasOpt ? opts[0].extendedRcode : 0) << 4) | (reply[3] & 0x0f);
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) {
    assert.equal(reply.readUInt16BE(6), 0, `${context}: rcode ${rcode} reply with answers`);
    assert.equal(reply.readUInt16BE(8), 0, `${context}: rcode ${rcode} reply with authority records`);
  }
  return { rcode, hasOpt, decoded };
}

/** Adds what a reply owes its query: the same ID, opcode and RD bit, and a question copied byte for byte (0x20 case kept). */
function inspectReplyTo(query: Buffer, reply: Buffer, context: string): Inspected {
  const r = inspectReply(reply, context);
  assert.equal(reply.readUInt16BE(0), query.readUInt16BE(0), `${context}: reply ID differs from the query's`);
  assert.equal(reply[2] & 0x79, query[2] & 0x79, `${context}: opcode or RD not echoed`);
  const qd = reply.readUInt16BE(4);
  assert.ok(qd <= 1, `${context}: ${qd} questions in the reply`);
  if (qd === 1) {
    const end = questionEnd(reply);
    assert.ok(end <= query.length && reply.subarray(12, end).equals(query.subarray(12, end)), `${context}: the question is not the query's, byte for byte`);
  }
  return r;
}

function assertExpectedReply(query: Buffer, reply: Buffer, expect: ReplyExpectation, context: string): void {
  const r = inspectReplyTo(query, reply, context);
  assert.equal(r.rcode, RCODE[expect.rcode], `${context}: rcode ${r.rcode}, expected ${expect.rcode} (${RCODE[expect.rcode]})`);
  assert.equal(reply.readUInt16BE(4), expect.question ? 1 : 0, `${context}: question ${expect.question ? 'missing' : 'present'}`);
  assert.equal(r.hasOpt, expect.opt, `${context}: OPT ${expect.opt ? 'missing' : 'present'}`);
  assert.equal(reply[2] & 0x02, 0, `${context}: TC set on a small reply`);
}

/** The sentinel sent after each corpus packet on the same socket or connection: its reply proves the packet before it was handled. */
function sentinelFor(packet: Buffer): { id: number; query: Buffer } {
  const id = packet.length >= 2 ? packet.readUInt16BE(0) ^ 0x5a5a : 0x5a5a;
  return { id, query: buildQuery('app.example.test', 'A', { id }) };
}

/** Returns the rdata of the first answer as text ('' when there is none). */
function firstAnswerData(decoded: Inspected['decoded']): string {
  const a = decoded.answers?.[0];
  return a !== undefined && 'data' in a ? String(a.data) : '';
}

function assertSentinelReply(sentinel: Buffer, reply: Buffer): void {
  const r = inspectReplyTo(sentinel, reply, 'sentinel');
  assert.equal(r.rcode, RCODE.NOERROR);
  assert.ok(APP_ADDRESSES.includes(firstAnswerData(r.decoded)), 'sentinel answered with one of the app addresses');
}

// ---------------------------------------------------------------------------
// Counters

function perWorker(counters: Int32Array, slot: number): number[] {
  const out: number[] = [];
  for (let base = 0; base < counters.length; base += COUNTER_STRIDE) out.push(Atomics.load(counters, base + slot) >>> 0);
  return out;
}

// ---------------------------------------------------------------------------
// Deterministic mutation

const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name}=${raw} is not a non-negative integer`);
  return v;
};
const FUZZ_SEED = envInt('FUZZ_SEED', 0x6d15c0de);
const FUZZ_COUNT = envInt('FUZZ_COUNT', 100_000);
const TCP_FUZZ_FRAMED = 1600;
const TCP_FUZZ_BAD_FRAMING = 400;

interface Seed {
  bytes: Buffer;
  /** Offsets of length fields: label lengths (1 byte), rdlen and EDNS option lengths (2 bytes). */
  lengths: { off: number; size: 1 | 2 }[];
}

/** Records where a seed's length fields are, so mutations can aim at them. */
function describeSeed(bytes: Buffer): Seed {
  const lengths: Seed['lengths'] = [];
  let off = 12;
  while (bytes[off] !== 0) {
    lengths.push({ off, size: 1 });
    off += bytes[off] + 1;
  }
  off += 1 + 4;
  const arcount = bytes.readUInt16BE(10);
  for (let i = 0; i < arcount; i++) {
    off += 1; // dns-packet writes the OPT owner as the root label
    const type = bytes.readUInt16BE(off);
    const rdlen = bytes.readUInt16BE(off + 8);
    lengths.push({ off: off + 8, size: 2 });
    const rdata = off + 10;
    if (type === 41) {
      for (let o = rdata; o + 4 <= rdata + rdlen; o += 4 + bytes.readUInt16BE(o + 2)) lengths.push({ off: o + 2, size: 2 });
    }
    off = rdata + rdlen;
  }
  return { bytes, lengths };
}

function createSeeds(): Seed[] {
  const names = ['app.example.test', 'APP.EXAMPLE.TEST', 'aPp.eXaMpLe.TeSt', 'example.test', 'ExAmPlE.tEsT', 'ns1.example.test', 'nx.example.test', 'a.b.c.app.example.test', 'www.example.com', '.'];
  const types = ['A', 'AAAA', 'SOA', 'NS', 'ANY'];
  const edns: (QueryOptions['edns'] | undefined)[] = [
    undefined,
    {},
    { do: true, udpSize: 4096 },
    { ecs: { family: 1, sourcePrefix: 24, address: '10.1.2.0' } },
    { ecs: { family: 2, sourcePrefix: 56, address: '2001:db8:1:200::' } },
    { udpSize: 512, ecs: { family: 1, sourcePrefix: 0, address: '0.0.0.0' } },
  ];
  const seeds: Seed[] = [];
  for (const name of names) {
    for (const type of types) {
      for (const e of edns) seeds.push(describeSeed(buildQuery(name, type, e === undefined ? { id: 0 } : { id: 0, edns: e })));
    }
  }
  return seeds;
}

const INTERESTING_BYTES = [0x00, 0x01, 0x08, 0x29, 0x3f, 0x40, 0x41, 0x7f, 0x80, 0xc0, 0xff];
const INTERESTING_COUNTS = [0, 1, 2, 3, 4, 5, 16, 255, 0x8000, 0xffff];

/** Returns a new packet: one seed, 1 to 4 mutations. Uses only `rand`, so a seed reproduces the sequence. */
function mutate(rand: () => number, seeds: Seed[]): Buffer {
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: T[]): T => xs[int(xs.length)];
  const seed = pick(seeds);
  let p = Buffer.from(seed.bytes);
  const rounds = 1 + int(4);
  for (let r = 0; r < rounds; r++) {
    switch (int(8)) {
      case 0: // bit flip
        if (p.length > 0) p[int(p.length)] ^= 1 << int(8);
        break;
      case 1: // byte set
        if (p.length > 0) p[int(p.length)] = rand() < 0.5 ? pick(INTERESTING_BYTES) : int(256);
        break;
      case 2: // truncate
        p = Buffer.from(p.subarray(0, int(p.length + 1)));
        break;
      case 3: {
        // extend with random bytes
        const extra = Buffer.alloc(1 + int(32));
        for (let i = 0; i < extra.length; i++) extra[i] = int(256);
        p = Buffer.concat([p, extra]);
        break;
      }
      case 4: // a header count field
        if (p.length >= 12) p.writeUInt16BE(rand() < 0.7 ? pick(INTERESTING_COUNTS) : int(0x10000), 4 + 2 * int(4));
        break;
      case 5: {
        // a length byte or field of the seed
        if (seed.lengths.length === 0) break; // the root name without EDNS has none
        const field = pick(seed.lengths);
        if (field.off + field.size > p.length) break;
        const old = field.size === 1 ? p[field.off] : p.readUInt16BE(field.off);
        const choices = [0, old + 1, old - 1, old + 8, 63, 64, 0xc0, field.size === 1 ? 0xff : 0xffff, int(field.size === 1 ? 256 : 0x10000)];
        const v = pick(choices) & (field.size === 1 ? 0xff : 0xffff);
        if (field.size === 1) p[field.off] = v;
        else p.writeUInt16BE(v, field.off);
        break;
      }
      case 6: {
        // splice: a prefix of this packet, a suffix of another seed
        const other = pick(seeds).bytes;
        p = Buffer.concat([p.subarray(0, int(p.length + 1)), other.subarray(int(other.length + 1))]);
        break;
      }
      case 7: // flags: AA/TC/RD/RA/Z/AD/CD and rcode at random; half keep opcode QUERY; 1 in 16 is a response (dropped)
        if (p.length >= 4) {
          p[2] = (int(256) & (rand() < 0.5 ? 0x07 : 0x7f)) | (rand() < 1 / 16 ? 0x80 : 0);
          p[3] = int(256);
        }
        break;
    }
  }
  return p;
}

/** STYLE §3: the server drops exactly the packets shorter than a header and the responses. */
const expectsReply = (p: Buffer): boolean => p.length >= 12 && (p[2] & 0x80) === 0;

/**
 * Checks a reply to a mutated query. Stricter than needed for FORMERR and
 * NOTIMP: those must decode too, because the worker echoes a question only
 * once it has parsed it, so no unchecked mutated bytes reach a reply.
 */
function assertFuzzReply(query: Buffer, reply: Buffer, context: string): Inspected {
  const r = inspectReplyTo(query, reply, context);
  // RFC 1035 §4.2.1 / RFC 6891 §6.2.5: 512 bytes without EDNS, our advertised 1232 with it.
  const limit = r.hasOpt ? 1232 : 512;
  assert.ok(reply.length <= limit, `${context}: UDP reply of ${reply.length} bytes exceeds ${limit}`);
  return r;
}

// ---------------------------------------------------------------------------
// Transports

/** Opens a client socket on an ephemeral port. Unref'd: a case that times out must not keep the process alive. */
async function openUdpSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  socket.unref();
  socket.bind(0, HOST);
  await once(socket, 'listening');
  return socket;
}

/** Sends one datagram on `socket` and resolves with the next datagram it receives. */
async function exchangeOn(socket: dgram.Socket, port: number, packet: Buffer): Promise<Buffer> {
  const reply = once(socket, 'message') as Promise<[Buffer, dgram.RemoteInfo]>;
  socket.send(packet, port, HOST);
  return (await reply)[0];
}

/**
 * Sends `packet` and then the sentinel from one fresh UDP socket. Both reach
 * the same worker (reusePort hashes the 4-tuple) and are handled in order, so
 * whatever arrives before the sentinel's reply is the packet's reply.
 */
async function udpCase(port: number, packet: Buffer): Promise<Buffer[]> {
  const socket = await openUdpSocket();
  try {
    const sentinel = sentinelFor(packet);
    const before: Buffer[] = [];
    const done = new Promise<Buffer>((resolve) => {
      socket.on('message', (msg: Buffer) => {
        // A reply to the hostile packet never has the sentinel's ID: the IDs differ by construction.
        if (msg.length >= 12 && msg.readUInt16BE(0) === sentinel.id) {
          resolve(msg);
        } else {
          before.push(msg);
        }
      });
    });
    socket.send(packet, port, HOST, () => socket.send(sentinel.query, port, HOST));
    assertSentinelReply(sentinel.query, await done);
    return before;
  } finally {
    socket.close();
  }
}

/** The same over one fresh TCP connection: the packet framed as is, then the sentinel. Resolves null when the server closed the connection instead. */
async function tcpCase(port: number, packet: Buffer): Promise<Buffer[] | null> {
  const conn = await tcpConnect(port, HOST);
  try {
    const sentinel = sentinelFor(packet);
    conn.send(packet);
    conn.send(sentinel.query);
    const before: Buffer[] = [];
    for (;;) {
      const reply = await conn.next(CASE_TIMEOUT_MS);
      if (reply === null) return null;
      if (reply.length >= 12 && reply.readUInt16BE(0) === sentinel.id) {
        assertSentinelReply(sentinel.query, reply);
        return before;
      }
      before.push(reply);
    }
  } finally {
    conn.close();
  }
}

/** Splits a TCP byte stream into DNS messages; keeps the incomplete tail. */
class FrameReader {
  #buf: Buffer = Buffer.alloc(0);
  readonly frames: Buffer[] = [];
  push(data: Buffer): void {
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
    while (this.#buf.length >= 2 && this.#buf.length >= 2 + this.#buf.readUInt16BE(0)) {
      const len = this.#buf.readUInt16BE(0);
      this.frames.push(this.#buf.subarray(2, 2 + len));
      this.#buf = this.#buf.subarray(2 + len);
    }
  }
}

const frame = (packet: Buffer, prefix = packet.length): Buffer => Buffer.concat([Buffer.from([prefix >>> 8, prefix & 0xff]), packet]);

/** Writes `bytes`, half-closes, and resolves with every frame received once the server has closed too. */
async function tcpSendAll(port: number, bytes: Buffer): Promise<Buffer[]> {
  const socket = net.connect({ port, host: HOST });
  socket.unref();
  const reader = new FrameReader();
  socket.on('data', (d: Buffer) => reader.push(d));
  // Bad framing may make the server reset the connection while we still write.
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  socket.end(bytes);
  await closed;
  return reader.frames;
}

// ---------------------------------------------------------------------------
// The tests

test('every crafted packet has an expectation and every expectation a packet', () => {
  assert.ok(HEX_FILES.length >= 30, `only ${HEX_FILES.length} corpus files`);
  assert.deepEqual(HEX_FILES, Object.keys(EXPECTATIONS).sort());
  for (const [file, e] of Object.entries(EXPECTATIONS)) {
    if (e === 'drop') continue;
    assert.ok(e.rcode in RCODE, `${file}: unknown rcode ${e.rcode}`);
    assert.equal(typeof e.question, 'boolean', `${file}: question must be true or false`);
    assert.equal(typeof e.opt, 'boolean', `${file}: opt must be true or false`);
  }
});

for (const path of ['batched', 'dgram'] as const) {
  test(`a real server survives hostile packets, UDP on the ${path} path`, { skip: udpPathSkip(path) }, async (t) => {
    const { overwatch, port } = await startServer(t, YAML.replace('UDP_IO', path === 'batched' ? 'auto' : 'dgram'));
    assert.deepEqual(
      overwatch.pool.udpIo.map((w) => w.path),
      [path, path],
      `every worker answers UDP on the ${path} path: ${overwatch.pool.udpIo.map((w) => w.reason).join('; ')}`,
    );
    const workersAtStart = [...overwatch.pool.workers];
    const workerCount = workersAtStart.length;
    assert.ok(workersAtStart.every((w) => w !== null));

    await t.test('over UDP, each crafted packet gets its expected action', async (t) => {
      for (const f of FIXTURES) {
        await t.test(caseName(f), { timeout: CASE_TIMEOUT_MS }, async () => {
          const before = overwatch.readCounters();
          const replies = await udpCase(port, f.packet);
          const after = overwatch.readCounters();
          if (f.expect === 'drop') {
            assert.equal(replies.length, 0, `got a reply to a packet that must be dropped: ${replies[0]?.toString('hex')}`);
            // STYLE §3: dropped silently, but counted.
            assert.equal(after.DROPPED_SHORT + after.DROPPED_RESPONSE - before.DROPPED_SHORT - before.DROPPED_RESPONSE, 1, 'the drop was counted');
          } else {
            assert.equal(replies.length, 1, `${replies.length} replies`);
            assertExpectedReply(f.packet, replies[0], f.expect, f.file);
          }
        });
      }
    });

    await t.test('over TCP, each crafted packet gets its expected action', async (t) => {
      for (const f of FIXTURES) {
        await t.test(caseName(f), { timeout: CASE_TIMEOUT_MS }, async () => {
          const before = overwatch.readCounters();
          const replies = await tcpCase(port, f.packet);
          const after = overwatch.readCounters();
          if (f.packet.length === 0) {
            // RFC 7766 §8 has no empty messages: a zero length prefix leaves the stream unusable.
            assert.equal(f.expect, 'drop');
            assert.equal(replies, null, 'the connection was closed without a reply');
            assert.equal(after.TCP_BAD_FRAME - before.TCP_BAD_FRAME, 1, 'the bad frame was counted');
            return;
          }
          assert.ok(replies !== null, 'the server closed the connection instead of answering');
          if (f.expect === 'drop') {
            assert.equal(replies.length, 0, `got a reply to a packet that must be dropped: ${replies[0]?.toString('hex')}`);
            assert.equal(after.DROPPED_SHORT + after.DROPPED_RESPONSE - before.DROPPED_SHORT - before.DROPPED_RESPONSE, 1, 'the drop was counted');
          } else {
            assert.equal(replies.length, 1, `${replies.length} replies`);
            assertExpectedReply(f.packet, replies[0], f.expect, f.file);
          }
        });
      }
    });

    await t.test(
      'over TCP, answers the queries framed before a zero-length frame, then closes the connection',
      { timeout: CASE_TIMEOUT_MS },
      async () => {
        const first = buildQuery('app.example.test', 'A', { id: 0x2001 });
        const second = buildQuery('example.test', 'SOA', { id: 0x2002 });
        const before = overwatch.readCounters();
        const replies = await tcpSendAll(port, Buffer.concat([frame(first), frame(second), Buffer.from([0, 0])]));
        assert.equal(overwatch.readCounters().TCP_BAD_FRAME - before.TCP_BAD_FRAME, 1, 'the bad frame was counted');
        assert.equal(replies.length, 2, `${replies.length} of 2 replies delivered before the close`);
        assert.equal(inspectReplyTo(first, replies[0], 'first').rcode, RCODE.NOERROR);
        assert.equal(inspectReplyTo(second, replies[1], 'second').rcode, RCODE.NOERROR);
      },
    );

    const seeds = createSeeds();

    await t.test(`answers ${FUZZ_COUNT} seeded mutations of valid queries over UDP with well-formed replies (FUZZ_SEED=${FUZZ_SEED})`, async (t) => {
      t.diagnostic(`FUZZ_SEED=${FUZZ_SEED} FUZZ_COUNT=${FUZZ_COUNT}`);
      // Pick client sockets so that every worker gets the same number of them:
      // each probe's reply shows, through the per-worker counters, which worker
      // the kernel hashed that socket to.
      const lanesPerWorker = 4;
      const windowPerLane = 8; // 2 workers x 4 lanes x 8 = 64 packets in flight
      const byWorker: dgram.Socket[][] = Array.from({ length: workerCount }, () => []);
      const spare: dgram.Socket[] = [];
      t.after(() => {
        for (const s of [...byWorker.flat(), ...spare]) s.close();
      });
      for (let tries = 0; tries < 256 && byWorker.some((l) => l.length < lanesPerWorker); tries++) {
        const socket = await openUdpSocket();
        const seen = perWorker(overwatch.counters, COUNTER.UDP_QUERIES);
        const probe = sentinelFor(Buffer.from([tries >> 8, tries & 0xff]));
        assertSentinelReply(probe.query, await exchangeOn(socket, port, probe.query));
        const now = perWorker(overwatch.counters, COUNTER.UDP_QUERIES);
        const w = now.findIndex((n, i) => n !== seen[i]);
        (byWorker[w].length < lanesPerWorker ? byWorker[w] : spare).push(socket);
      }
      assert.ok(
        byWorker.every((l) => l.length === lanesPerWorker),
        `could not reach every worker: ${byWorker.map((l) => l.length)}`,
      );
      const lanes = byWorker.flat().map((socket) => ({ socket, inflight: new Map<number, Buffer>() }));

      const rand = seededRandom(FUZZ_SEED);
      const before = overwatch.readCounters();
      let next = 0;
      let expected = 0;
      let answered = 0;
      let dropped = 0;
      const rcodes = new Map<number, number>();
      let lastProgress = Date.now();
      const started = Date.now();

      await new Promise<void>((resolve, reject) => {
        let finished = false;
        const finish = (err?: unknown): void => {
          if (finished) return;
          finished = true;
          clearInterval(watchdog);
          for (const lane of lanes) lane.socket.removeAllListeners('message');
          if (err) reject(err);
          else resolve();
        };
        const pump = (lane: (typeof lanes)[number]): void => {
          while (lane.inflight.size < windowPerLane && next < FUZZ_COUNT) {
            const index = next++;
            const packet = mutate(rand, seeds);
            // Unique IDs among packets in flight (ID = index mod 2^16) so each reply finds its query.
            if (packet.length >= 2) packet.writeUInt16BE(index & 0xffff, 0);
            if (expectsReply(packet)) {
              lane.inflight.set(index & 0xffff, packet);
              expected++;
            } else {
              dropped++;
            }
            lane.socket.send(packet, port, HOST);
          }
          if (next === FUZZ_COUNT && lanes.every((l) => l.inflight.size === 0)) finish();
        };
        for (const lane of lanes) {
          lane.socket.on('message', (reply: Buffer) => {
            try {
              const id = reply.length >= 2 ? reply.readUInt16BE(0) : -1;
              const query = lane.inflight.get(id);
              assert.ok(query !== undefined, `reply ${reply.toString('hex')} has ID ${id}, which matches no query in flight on this socket`);
              lane.inflight.delete(id);
              const r = assertFuzzReply(query, reply, `FUZZ_SEED=${FUZZ_SEED} query ${query.toString('hex')}`);
              rcodes.set(r.rcode, (rcodes.get(r.rcode) ?? 0) + 1);
              answered++;
              lastProgress = Date.now();
              pump(lane);
            } catch (err) {
              finish(err);
            }
          });
        }
        // Loopback UDP with a bounded window loses nothing; a reply still
        // missing after 5 s is a query the server swallowed.
        const watchdog = setInterval(() => {
          if (Date.now() - lastProgress < 5000) return;
          const missing = lanes.flatMap((l) => [...l.inflight.values()].map((p) => p.toString('hex')));
          finish(new Error(`FUZZ_SEED=${FUZZ_SEED}: no reply for ${missing.length} queries, e.g. ${missing.slice(0, 5).join(', ')}`));
        }, 250);
        for (const lane of lanes) pump(lane);
      });

      // A last normal query per socket: its reply means every packet sent before it was handled.
      for (const lane of lanes) {
        const s = sentinelFor(Buffer.from([0xfe, 0xed]));
        assertSentinelReply(s.query, await exchangeOn(lane.socket, port, s.query));
      }
      const after = overwatch.readCounters();
      const ms = Date.now() - started;
      t.diagnostic(`${FUZZ_COUNT} packets in ${ms} ms: ${answered} answered, ${dropped} dropped; rcodes ${JSON.stringify(Object.fromEntries([...rcodes].sort((a, b) => a[0] - b[0])))}`);
      assert.equal(answered, expected);
      assert.equal(after.EXCEPTIONS - before.EXCEPTIONS, 0, 'exceptions at the per-packet boundary');
      assert.equal(after.DROPPED_SHORT + after.DROPPED_RESPONSE - before.DROPPED_SHORT - before.DROPPED_RESPONSE, dropped, 'every drop counted');
      assert.equal(after.UDP_QUERIES - before.UDP_QUERIES, expected + lanes.length, 'every other packet counted as a query');
      // Sanity: a full-size run reaches past the header checks into every outcome.
      if (FUZZ_COUNT >= 10_000) {
        for (const rc of [RCODE.NOERROR, RCODE.FORMERR, RCODE.NXDOMAIN, RCODE.NOTIMP, RCODE.REFUSED, RCODE.BADVERS]) {
          assert.ok((rcodes.get(rc) ?? 0) > 0, `no reply with rcode ${rc} in the whole run`);
        }
      }
    });

    await t.test(`answers ${TCP_FUZZ_FRAMED + TCP_FUZZ_BAD_FRAMING} mutated queries over TCP and keeps accepting connections after bad framing`, async (t) => {
      const rand = seededRandom(FUZZ_SEED ^ 0x7c9);
      const before = overwatch.readCounters();

      // Correctly framed mutated packets on 4 connections: the replies come back in order, one per non-drop packet.
      await Promise.all(
        Array.from({ length: 4 }, async (_, c) => {
          const sent: Buffer[] = [];
          while (sent.length < TCP_FUZZ_FRAMED / 4) {
            const packet = mutate(rand, seeds);
            // A zero length prefix would end the connection (covered by the corpus): skip those.
            if (packet.length === 0) continue;
            if (packet.length >= 2) packet.writeUInt16BE((c << 12) | sent.length, 0);
            sent.push(packet);
          }
          const replies = await tcpSendAll(port, Buffer.concat(sent.map((p) => frame(p))));
          const answerable = sent.filter(expectsReply);
          assert.equal(replies.length, answerable.length, `connection ${c}: ${replies.length} replies for ${answerable.length} answerable queries`);
          for (let i = 0; i < replies.length; i++) inspectReplyTo(answerable[i], replies[i], `FUZZ_SEED=${FUZZ_SEED} TCP query ${answerable[i].toString('hex')}`);
        }),
      );

      // Mutated length prefixes on 16 more connections, 1 frame in 10: zero,
      // a little off, or random. A connection runs in step until its first bad
      // prefix; after that the server may answer garbage frames, wait for bytes
      // that never come, or close. Whatever it sends must be well-formed.
      let badReplies = 0;
      const badConnections = 16;
      await Promise.all(
        Array.from({ length: badConnections }, async () => {
          const frames: Buffer[] = [];
          for (let i = 0; i < TCP_FUZZ_BAD_FRAMING / badConnections; i++) {
            const packet = mutate(rand, seeds);
            const roll = rand();
            let prefix = packet.length;
            if (roll < 0.03) prefix = 0;
            else if (roll < 0.07) prefix = Math.max(0, packet.length + Math.floor(rand() * 17) - 8);
            else if (roll < 0.1) prefix = Math.floor(rand() * 0x10000);
            frames.push(frame(packet, prefix));
          }
          const replies = await tcpSendAll(port, Buffer.concat(frames));
          for (const reply of replies) inspectReply(reply, `FUZZ_SEED=${FUZZ_SEED} bad-framing TCP reply`);
          badReplies += replies.length;
        }),
      );
      t.diagnostic(`${badReplies} replies on the badly framed connections`);

      // New connections are still accepted and answered.
      for (let i = 0; i < 4; i++) {
        const conn = await tcpConnect(port, HOST);
        const s = sentinelFor(Buffer.from([0x7c, i]));
        conn.send(s.query);
        const reply = await conn.next(CASE_TIMEOUT_MS);
        conn.close();
        assert.ok(reply !== null, 'no reply on a new TCP connection');
        assertSentinelReply(s.query, reply);
      }
      assert.equal(overwatch.readCounters().EXCEPTIONS - before.EXCEPTIONS, 0, 'exceptions at the per-packet boundary');
    });

    await t.test('still answers correctly on every worker afterwards, with no worker restarted and no exception counted', async () => {
      const seen = perWorker(overwatch.counters, COUNTER.UDP_QUERIES);
      const replies = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const query = buildQuery(i % 2 === 0 ? 'app.example.test' : 'ApP.ExAmPlE.TeSt', 'A', { id: 0x4000 + i });
          return { query, reply: await udpExchange(port, query) };
        }),
      );
      for (const { query, reply } of replies) {
        assert.ok(reply !== null, 'no reply to a normal query');
        const r = inspectReplyTo(query, reply, 'final query');
        assert.equal(r.rcode, RCODE.NOERROR);
        assert.equal(r.decoded.answers?.length, 1);
        assert.ok(APP_ADDRESSES.includes(firstAnswerData(r.decoded)));
      }
      const now = perWorker(overwatch.counters, COUNTER.UDP_QUERIES);
      assert.ok(
        now.every((n, i) => n > seen[i]),
        `not every worker answered one of 50 sockets: ${now.map((n, i) => n - seen[i])}`,
      );
      const workersNow = overwatch.pool.workers;
      assert.equal(workersNow.length, workerCount);
      for (let i = 0; i < workerCount; i++) assert.ok(workersNow[i] !== null && workersNow[i] === workersAtStart[i], `worker ${i} exited or was replaced`);
      assert.equal(overwatch.readCounters().EXCEPTIONS, 0, 'exceptions at the per-packet boundary');
    });
  });
}
