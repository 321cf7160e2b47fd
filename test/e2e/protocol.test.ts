// Whole server on loopback: a table of queries, each sent over real UDP and
// real TCP sockets, each reply decoded by dns-packet (the independent
// reference decoder) and checked field by field. The whole suite runs once
// per UDP path (dns.udp_io): batched through the native addon, and node:dgram.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { ask, buildQuery, rcodeOf, tcpConnect, udpExchange, type Decoded, type QueryOptions } from '../helpers/dns-client.ts';
import { launchServer, startServer, type Started, udpPathSkip } from '../helpers/server.ts';

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test, other.test]
  soa: { mname: ns1.example.test, rname: hostmaster@example.test, serial: 2026112601, refresh: 2h, retry: 15m, expire: 336h, minimum: 30s, ttl: 1h }
  nameservers:
    - { name: ns1.example.test, addresses: [192.0.2.53, "2001:db8::53"] }
    - ns2.elsewhere.test
  tcp_idle_timeout: 400ms
  udp_io: UDP_IO
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
  - name: us
    servers: [{ address: 192.0.2.3 }, { address: "2001:db8::3" }]
  - name: v6
    servers: [{ address: "2001:DB8:0::6" }]
  - name: down
    servers: [{ address: 192.0.2.99 }]
  - name: big
    servers:
${Array.from({ length: 32 }, (_, i) => `      - { address: "2001:db8::${(i + 1).toString(16)}" }`).join('\n')}
domains:
  - { name: app.example.test, regions: [eu, us], ttl: 30 }
  - { name: v6only.example.test, regions: [v6] }
  - { name: deep.a.b.example.test, regions: [eu] }
  - { name: down.example.test, regions: [down] }
  - { name: big.example.test, regions: [big], max_answers: 32 }
  - { name: www.other.test, regions: [eu] }
  - { name: example.test, regions: [us] }
logging: { level: error }
`;

interface Case {
  name: string;
  qname: string;
  qtype: string;
  opts?: QueryOptions;
  expect: (r: Decoded & { raw: Buffer }, transport: 'udp' | 'tcp') => void;
}

const EU = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
const flag = (r: Decoded, bit: number): boolean => ((r.flags ?? 0) & bit) !== 0;
const AA = 1 << 10;
const TC = 1 << 9;
const RD = 1 << 8;

/** Asserts a negative answer: no answers, one SOA in authority owned by the apex, TTL = min(SOA TTL, MINIMUM) = 30. */
function assertNegative(r: Decoded, rcode: string, apex: string): void {
  assert.equal(r.rcode, rcode);
  assert.ok(flag(r, AA), 'AA must be set on an authoritative negative answer');
  assert.equal(r.answers?.length ?? 0, 0);
  assert.equal(r.authorities?.length, 1);
  const soa = r.authorities![0] as dnsPacket.Answer & { data: dnsPacket.SoaData };
  assert.equal(soa.type, 'SOA');
  assert.equal(soa.name.toLowerCase(), apex);
  assert.equal(soa.ttl, 30);
  assert.equal(soa.data.serial, 2026112601);
  assert.equal(soa.data.minimum, 30);
}

const CASES: Case[] = [
  {
    name: 'answers A for a GSLB name with one healthy server, AA set, TTL from the domain',
    qname: 'app.example.test',
    qtype: 'A',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.ok(flag(r, AA));
      assert.equal(r.answers?.length, 1);
      const a = r.answers![0] as dnsPacket.Answer & { data: string };
      assert.equal(a.type, 'A');
      assert.equal(a.ttl, 30);
      assert.ok(EU.includes(a.data), `${a.data} is one of the domain's IPv4 servers`);
    },
  },
  {
    name: 'echoes the question exactly as sent, keeping 0x20 mixed case, and matches it case-insensitively',
    qname: 'aPp.ExAmPlE.tEsT',
    qtype: 'A',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.equal(r.questions![0].name, 'aPp.ExAmPlE.tEsT');
      assert.equal(r.answers![0].name, 'aPp.ExAmPlE.tEsT');
    },
  },
  {
    name: 'answers AAAA from the IPv6 servers of the regions',
    qname: 'app.example.test',
    qtype: 'AAAA',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(r.answers!.map((a) => (a as { data: string }).data), ['2001:db8::3']);
    },
  },
  {
    name: 'answers NODATA with the SOA for A at an IPv6-only name (the Go original said SERVFAIL)',
    qname: 'v6only.example.test',
    qtype: 'A',
    expect: (r) => assertNegative(r, 'NOERROR', 'example.test'),
  },
  {
    name: 'answers NODATA with the SOA for a type the name does not have',
    qname: 'app.example.test',
    qtype: 'MX',
    expect: (r) => assertNegative(r, 'NOERROR', 'example.test'),
  },
  {
    name: 'answers NXDOMAIN with the SOA for an unknown name inside the zone',
    qname: 'nope.example.test',
    qtype: 'A',
    expect: (r) => assertNegative(r, 'NXDOMAIN', 'example.test'),
  },
  {
    name: 'answers NXDOMAIN for a name below a GSLB name',
    qname: 'x.app.example.test',
    qtype: 'A',
    expect: (r) => assertNegative(r, 'NXDOMAIN', 'example.test'),
  },
  {
    name: 'answers NODATA, not NXDOMAIN, for an empty non-terminal (RFC 8020)',
    qname: 'b.example.test',
    qtype: 'A',
    expect: (r) => assertNegative(r, 'NOERROR', 'example.test'),
  },
  {
    name: 'answers from the right zone when we serve several',
    qname: 'missing.other.test',
    qtype: 'AAAA',
    expect: (r) => assertNegative(r, 'NXDOMAIN', 'other.test'),
  },
  {
    name: 'answers REFUSED without AA for a name outside every zone',
    qname: 'example.com',
    qtype: 'A',
    expect: (r) => {
      assert.equal(r.rcode, 'REFUSED');
      assert.ok(!flag(r, AA));
      assert.equal(r.answers?.length ?? 0, 0);
      assert.equal(r.questions![0].name, 'example.com');
    },
  },
  {
    name: 'answers REFUSED for the root name',
    qname: '.',
    qtype: 'NS',
    expect: (r) => assert.equal(r.rcode, 'REFUSED'),
  },
  {
    name: 'answers the SOA at the apex with the configured fields',
    qname: 'example.test',
    qtype: 'SOA',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.ok(flag(r, AA));
      const soa = r.answers![0] as dnsPacket.Answer & { data: dnsPacket.SoaData };
      assert.equal(soa.type, 'SOA');
      assert.equal(soa.ttl, 3600);
      assert.deepEqual(
        { ...soa.data },
        { mname: 'ns1.example.test', rname: 'hostmaster.example.test', serial: 2026112601, refresh: 7200, retry: 900, expire: 1209600, minimum: 30 },
      );
    },
  },
  {
    name: 'answers the NS RRset at the apex with glue for the in-zone name server',
    qname: 'example.test',
    qtype: 'NS',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.ok(flag(r, AA));
      assert.deepEqual(r.answers!.map((a) => (a as { data: string }).data), ['ns1.example.test', 'ns2.elsewhere.test']);
      const glue = r.additionals!.filter((a) => a.type !== 'OPT').map((a) => `${a.name} ${a.type} ${(a as { data: string }).data}`);
      assert.deepEqual(glue, ['ns1.example.test A 192.0.2.53', 'ns1.example.test AAAA 2001:db8::53']);
    },
  },
  {
    name: 'answers NODATA for NS below the apex',
    qname: 'app.example.test',
    qtype: 'NS',
    expect: (r) => assertNegative(r, 'NOERROR', 'example.test'),
  },
  {
    name: 'answers the address of an in-zone name server',
    qname: 'ns1.example.test',
    qtype: 'AAAA',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(r.answers!.map((a) => (a as { data: string }).data), ['2001:db8::53']);
    },
  },
  {
    name: 'answers a GSLB name at the zone apex as well as its SOA',
    qname: 'example.test',
    qtype: 'A',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual(r.answers!.map((a) => (a as { data: string }).data), ['192.0.2.3']);
    },
  },
  {
    name: 'answers ANY with one RRset (RFC 8482)',
    qname: 'app.example.test',
    qtype: 'ANY',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.equal(r.answers!.length, 1);
      assert.equal(r.answers![0].type, 'A');
    },
  },
  {
    name: 'answers SERVFAIL without AA when the name has servers of the family but none is healthy',
    qname: 'down.example.test',
    qtype: 'A',
    expect: (r) => {
      assert.equal(r.rcode, 'SERVFAIL');
      assert.ok(!flag(r, AA));
      assert.equal(r.answers?.length ?? 0, 0);
    },
  },
  {
    name: 'answers REFUSED for class CH',
    qname: 'app.example.test',
    qtype: 'A',
    opts: { qclass: 'CH' },
    expect: (r) => assert.equal(r.rcode, 'REFUSED'),
  },
  {
    name: 'answers REFUSED for a zone transfer',
    qname: 'example.test',
    qtype: 'AXFR',
    expect: (r) => assert.equal(r.rcode, 'REFUSED'),
  },
  {
    name: 'copies RD from the query and never sets RA',
    qname: 'app.example.test',
    qtype: 'A',
    opts: { flags: RD },
    expect: (r) => {
      assert.ok(flag(r, RD));
      assert.ok(!flag(r, 1 << 7));
    },
  },
  {
    name: 'sends no OPT record to a query without one',
    qname: 'app.example.test',
    qtype: 'A',
    expect: (r) => assert.equal((r.additionals ?? []).filter((a) => a.type === 'OPT').length, 0),
  },
  {
    name: 'answers an EDNS query with an OPT record advertising 1232 bytes',
    qname: 'app.example.test',
    qtype: 'A',
    opts: { edns: { udpSize: 4096 } },
    expect: (r) => {
      const opt = r.additionals!.find((a) => a.type === 'OPT') as unknown as { udpPayloadSize: number; ednsVersion: number; flags: number };
      assert.ok(opt, 'OPT present');
      assert.equal(opt.udpPayloadSize, 1232);
      assert.equal(opt.ednsVersion, 0);
      assert.equal(opt.flags & dnsPacket.DNSSEC_OK, 0);
    },
  },
  {
    name: 'copies the DO bit into the reply OPT and signs the answer (DNSSEC is on by default)',
    qname: 'app.example.test',
    qtype: 'A',
    opts: { edns: { do: true } },
    expect: (r) => {
      const opt = r.additionals!.find((a) => a.type === 'OPT') as unknown as { flags: number };
      assert.equal(opt.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
      const types = (r.answers ?? []).map((a) => a.type);
      assert.deepEqual(types, ['A', 'RRSIG']);
      const sig = r.answers![1] as unknown as { ttl: number; data: { typeCovered: string; signersName: string } };
      assert.equal(sig.data.typeCovered, 'A');
      assert.equal(sig.data.signersName.toLowerCase(), 'example.test');
      assert.equal(sig.ttl, 30);
      assert.ok(!flag(r, 1 << 5), 'AD is never set');
    },
  },
  {
    name: 'signs nothing for a query without the DO bit',
    qname: 'nx.example.test',
    qtype: 'A',
    opts: { edns: {} },
    expect: (r) => {
      assertNegative(r, 'NXDOMAIN', 'example.test');
      assert.equal((r.answers ?? []).length, 0);
    },
  },
  {
    name: 'answers a missing name with DO by compact denial: NOERROR, SOA and NSEC, each with its RRSIG',
    qname: 'nx.example.test',
    qtype: 'A',
    opts: { edns: { do: true } },
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.deepEqual((r.authorities ?? []).map((a) => a.type), ['SOA', 'RRSIG', 'NSEC', 'RRSIG']);
    },
  },
  {
    name: 'answers DNSKEY at the apex with the zone key',
    qname: 'example.test',
    qtype: 'DNSKEY',
    expect: (r) => {
      assert.equal(r.rcode, 'NOERROR');
      assert.ok(flag(r, AA));
      assert.deepEqual((r.answers ?? []).map((a) => a.type), ['DNSKEY']);
      assert.equal((r.answers![0] as unknown as { data: { flags: number } }).data.flags, 257);
    },
  },
  {
    name: 'answers BADVERS with an OPT record for EDNS version 1',
    qname: 'app.example.test',
    qtype: 'A',
    opts: { edns: { version: 1 } },
    expect: (r) => {
      const opt = r.additionals!.find((a) => a.type === 'OPT') as unknown as { extendedRcode: number; ednsVersion: number };
      assert.ok(opt, 'OPT present');
      assert.equal(r.raw[3] & 0x0f, 0, 'low rcode bits are 0');
      assert.equal(opt.extendedRcode, 1, 'extended rcode 1 << 4 = 16 = BADVERS');
      assert.equal(opt.ednsVersion, 0);
      assert.equal(r.answers?.length ?? 0, 0);
    },
  },
  {
    name: 'echoes EDNS Client Subnet with scope 0 (IPv4)',
    qname: 'app.example.test',
    qtype: 'A',
    opts: { edns: { ecs: { family: 1, sourcePrefix: 24, address: '198.51.100.0' } } },
    expect: (r) => {
      const opt = r.additionals!.find((a) => a.type === 'OPT') as unknown as { options: { code: number; family: number; sourcePrefixLength: number; scopePrefixLength: number; ip: string }[] };
      const ecs = opt.options.find((o) => o.code === 8)!;
      assert.deepEqual({ family: ecs.family, source: ecs.sourcePrefixLength, scope: ecs.scopePrefixLength, ip: ecs.ip }, { family: 1, source: 24, scope: 0, ip: '198.51.100.0' });
    },
  },
  {
    name: 'echoes EDNS Client Subnet with scope 0 (IPv6)',
    qname: 'app.example.test',
    qtype: 'AAAA',
    opts: { edns: { ecs: { family: 2, sourcePrefix: 56, address: '2001:db8:1234:5600::' } } },
    expect: (r) => {
      const opt = r.additionals!.find((a) => a.type === 'OPT') as unknown as { options: { code: number; family: number; sourcePrefixLength: number; scopePrefixLength: number; ip: string }[] };
      const ecs = opt.options.find((o) => o.code === 8)!;
      assert.deepEqual({ family: ecs.family, source: ecs.sourcePrefixLength, scope: ecs.scopePrefixLength, ip: ecs.ip }, { family: 2, source: 56, scope: 0, ip: '2001:db8:1234:5600::' });
    },
  },
  {
    name: 'truncates an answer that does not fit 512 bytes without EDNS, and completes it over TCP',
    qname: 'big.example.test',
    qtype: 'AAAA',
    expect: (r, transport) => {
      assert.equal(r.rcode, 'NOERROR');
      if (transport === 'udp') {
        assert.ok(flag(r, TC), 'TC set');
        assert.equal(r.answers?.length ?? 0, 0);
        assert.equal(r.questions!.length, 1);
        assert.ok(r.raw.length <= 512);
      } else {
        assert.ok(!flag(r, TC));
        assert.equal(r.answers!.length, 32);
        assert.equal(new Set(r.answers!.map((a) => (a as { data: string }).data)).size, 32, '32 distinct servers');
      }
    },
  },
  {
    name: 'fits 32 AAAA records in one UDP answer when the client allows 1232 bytes',
    qname: 'big.example.test',
    qtype: 'AAAA',
    opts: { edns: { udpSize: 1232 } },
    expect: (r) => {
      assert.ok(!flag(r, TC));
      assert.equal(r.answers!.length, 32);
      assert.ok(r.raw.length <= 1232);
    },
  },
  {
    name: 'truncates to the client size when it advertises less than the answer needs',
    qname: 'big.example.test',
    qtype: 'AAAA',
    opts: { edns: { udpSize: 600 } },
    expect: (r, transport) => {
      if (transport === 'udp') {
        assert.ok(flag(r, TC));
        assert.ok(r.raw.length <= 600);
        assert.ok(r.additionals!.some((a) => a.type === 'OPT'), 'the truncated reply keeps its OPT');
      } else {
        assert.equal(r.answers!.length, 32);
      }
    },
  },
];

for (const path of ['batched', 'dgram'] as const) {
  describe(`DNS protocol over UDP and TCP, UDP on the ${path} path`, { skip: udpPathSkip(path) }, () => {
    let server: Started;
    after(() => server?.overwatch.stop(500));
    before(async () => {
      server = await launchServer(YAML.replace('UDP_IO', path === 'batched' ? 'auto' : 'dgram'));
      assert.deepEqual(
        server.overwatch.pool.udpIo.map((w) => w.path),
        [path, path],
        `every worker answers UDP on the ${path} path: ${server.overwatch.pool.udpIo.map((w) => w.reason).join('; ')}`,
      );
      const slot = server.overwatch.slotOf('down', '192.0.2.99', 80);
      assert.notEqual(slot, undefined);
      server.overwatch.setHealth(slot!, HEALTH_UNHEALTHY);
    });

    for (const transport of ['udp', 'tcp'] as const) {
      for (const c of CASES) {
        test(`${c.name} (${transport})`, async () => {
          const r = await ask(server.port, c.qname, c.qtype, c.opts, transport);
          assert.equal(r.type, 'response');
          c.expect(r, transport);
        });
      }
    }

    test('answers NOTIMP for an opcode other than QUERY, echoing the ID', async () => {
      const packet = buildQuery('app.example.test', 'A', { id: 0x1234 });
      packet[2] = (packet[2] & 0x87) | (2 << 3); // opcode STATUS
      const raw = await udpExchange(server.port, packet);
      assert.ok(raw);
      assert.equal(raw.readUInt16BE(0), 0x1234);
      assert.equal(rcodeOf(raw), 4);
      assert.equal((raw[2] >> 3) & 0xf, 2, 'opcode copied');
      assert.equal(raw[2] & 0x04, 0, 'AA clear');
      dnsPacket.decode(raw);
    });

    test('answers FORMERR for two questions', async () => {
      const packet = dnsPacket.encode({
        type: 'query',
        id: 77,
        questions: [
          { type: 'A', name: 'app.example.test' },
          { type: 'A', name: 'app.example.test' },
        ],
      });
      const raw = await udpExchange(server.port, packet);
      assert.ok(raw);
      assert.equal(raw.readUInt16BE(0), 77);
      assert.equal(rcodeOf(raw), 1);
      assert.equal(raw.readUInt16BE(4), 0, 'no question echoed when QDCOUNT was wrong');
    });

    test('drops and counts responses (QR=1) and packets shorter than a header', async () => {
      const before = server.overwatch.readCounters();
      const response = buildQuery('app.example.test', 'A');
      response[2] |= 0x80;
      assert.equal(await udpExchange(server.port, response, 300), null);
      assert.equal(await udpExchange(server.port, Buffer.from([1, 2, 3]), 300), null);
      const after = server.overwatch.readCounters();
      assert.equal(after.DROPPED_RESPONSE - before.DROPPED_RESPONSE, 1);
      assert.equal(after.DROPPED_SHORT - before.DROPPED_SHORT, 1);
    });

    test('answers several pipelined queries on one TCP connection, in order', async () => {
      const conn = await tcpConnect(server.port);
      const ids = [101, 102, 103, 104];
      const names = ['app.example.test', 'nope.example.test', 'example.test', 'example.com'];
      // All four frames in one write: the server must split them itself.
      const frames = ids.map((id, i) => {
        const q = buildQuery(names[i], 'A', { id });
        const f = Buffer.alloc(q.length + 2);
        f.writeUInt16BE(q.length, 0);
        q.copy(f, 2);
        return f;
      });
      conn.socket.write(Buffer.concat(frames));
      const rcodes: number[] = [];
      for (const id of ids) {
        const raw = await conn.next();
        assert.ok(raw, `reply for ${id}`);
        assert.equal(raw.readUInt16BE(0), id);
        rcodes.push(rcodeOf(raw));
      }
      assert.deepEqual(rcodes, [0, 3, 0, 5]);
      conn.close();
    });

    test('reassembles a TCP query that arrives one byte at a time', async () => {
      const conn = await tcpConnect(server.port);
      const q = buildQuery('app.example.test', 'A', { id: 4242 });
      const f = Buffer.alloc(q.length + 2);
      f.writeUInt16BE(q.length, 0);
      q.copy(f, 2);
      conn.socket.setNoDelay(true);
      for (const byte of f) {
        conn.socket.write(Buffer.of(byte));
        await new Promise((r) => setImmediate(r));
      }
      const raw = await conn.next();
      assert.ok(raw);
      assert.equal(raw.readUInt16BE(0), 4242);
      conn.close();
    });

    test('closes an idle TCP connection after tcp_idle_timeout', async () => {
      const before = server.overwatch.readCounters().TCP_IDLE_CLOSED;
      const conn = await tcpConnect(server.port);
      const started = Date.now();
      await conn.closed;
      const waited = Date.now() - started;
      assert.ok(waited >= 300 && waited < 3000, `closed after ${waited} ms (timeout 400 ms)`);
      assert.equal(server.overwatch.readCounters().TCP_IDLE_CLOSED - before, 1);
    });

    test('closes a TCP connection that sends a zero-length frame', async () => {
      const conn = await tcpConnect(server.port);
      conn.socket.write(Buffer.from([0, 0]));
      await conn.closed;
    });
  });
}

describe('TCP limits', () => {
  test('refuses TCP connections beyond tcp_max_connections per worker and counts them', async (t) => {
    const { overwatch, port } = await startServer(
      t,
      `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test], tcp_max_connections: 2 }
regions: [{ name: r, servers: [{ address: 192.0.2.1 }] }]
domains: [{ name: app.example.test, regions: [r] }]
logging: { level: error }
`,
    );
    const a = await tcpConnect(port);
    const b = await tcpConnect(port);
    // Make sure both are accepted, and busy (an idle one would be evicted to
    // make room), before the third arrives: each sends a query and, in the
    // same segment, the start of another message; once the first is answered
    // the server holds the partial one.
    const q = buildQuery('app.example.test', 'A');
    for (const c of [a, b]) {
      c.socket.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q, Buffer.from([0, q.length])]));
      assert.ok(await c.next());
    }
    const c = await tcpConnect(port);
    await c.closed;
    assert.equal(overwatch.readCounters().TCP_REJECTED, 1);
    a.close();
    await a.closed;
    // The slot is free again once the server has seen the close, which may
    // take an event-loop turn or two on its side: retry a bounded number of times.
    let answered = false;
    for (let attempt = 0; attempt < 20 && !answered; attempt++) {
      const d = await tcpConnect(port);
      d.send(buildQuery('app.example.test', 'A'));
      answered = (await d.next(500)) !== null;
      d.close();
    }
    assert.ok(answered, 'a new connection is accepted after one closes');
    b.close();
  });

  test('closes a TCP connection after tcp_max_queries_per_connection answers', async (t) => {
    const { port } = await startServer(
      t,
      `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test], tcp_max_queries_per_connection: 3 }
regions: [{ name: r, servers: [{ address: 192.0.2.1 }] }]
domains: [{ name: app.example.test, regions: [r] }]
logging: { level: error }
`,
    );
    const conn = await tcpConnect(port);
    for (let i = 0; i < 4; i++) conn.send(buildQuery('app.example.test', 'A', { id: 500 + i }));
    const got: number[] = [];
    for (let i = 0; i < 4; i++) {
      const raw = await conn.next(1000);
      if (raw) got.push(raw.readUInt16BE(0));
    }
    assert.deepEqual(got, [500, 501, 502]);
    await conn.closed;
  });
});
