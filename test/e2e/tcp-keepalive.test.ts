// EDNS TCP keepalive (RFC 7828, option 11) through the real server: over TCP
// a query carrying the option (empty) is answered with it and the idle
// timeout the connection really has, in units of 100 ms; over UDP the option
// is ignored; a query whose option has data is FORMERR over TCP. dig
// +keepalive, when installed, reads the option as a resolver's stub would.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { tcpConnect, udpExchange } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const run = promisify(execFile);
const KEEPALIVE = 11;

const config = (dns: string): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones: [example.test]
${dns}
regions:
  - name: r
    health_check: { type: none }
    servers: [{ address: 192.0.2.1 }]
domains:
  - { name: app.example.test, regions: [r] }
logging: { level: error }
`;

/** A query for app.example.test A with an OPT record; `keepalive`: undefined = no option 11, 0 = the option empty (as a client sends it), n = with a TIMEOUT of n (malformed in a query). */
function query(id: number, keepalive?: number): Buffer {
  const options = keepalive === undefined ? [] : [{ code: KEEPALIVE, ...(keepalive > 0 ? { timeout: keepalive } : {}) }];
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name: 'app.example.test', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options } as unknown as dnsPacket.Answer],
  });
}

/** The reply's rcode (low four bits; the OPT adds none here) and its keepalive options, as raw option data lengths and TIMEOUT values. */
function read(raw: Buffer): { id: number; rcode: number; answers: number; hasOpt: boolean; keepalive: { length: number; timeout: number | undefined }[] } {
  const m = dnsPacket.decode(raw);
  const opt = (m.additionals ?? []).find((a) => a.type === 'OPT') as { options: { code: number; timeout?: number }[] } | undefined;
  // dns-packet reads the TIMEOUT when the option has two bytes; the length is read from the wire to catch any other.
  const keepalive = (opt?.options ?? []).filter((o) => o.code === KEEPALIVE).map((o) => ({ length: o.timeout === undefined ? 0 : 2, timeout: o.timeout }));
  return { id: m.id ?? -1, rcode: raw[3] & 0x0f, answers: (m.answers ?? []).length, hasOpt: opt !== undefined, keepalive };
}

test('over TCP a query with the keepalive option is answered with it and the idle timeout the connection has, which shrinks as the worker fills; the connection is closed at that timeout', async (t) => {
  // 5 connections at most: with one open the idle timeout is 4/5 of 3 s, with two 3/5 (docs/query-lifecycle.md).
  const s = await startServer(t, config('  tcp_idle_timeout: 3s\n  tcp_max_connections: 5\n  tcp_max_connections_per_client: 5'), 'keepalive.yaml');
  const a = await tcpConnect(s.port);
  t.after(() => a.close());
  a.send(query(1, 0));
  const first = read((await a.next()) as Buffer);
  assert.equal(first.rcode, 0);
  assert.equal(first.answers, 1);
  assert.deepEqual(first.keepalive, [{ length: 2, timeout: 24 }], 'one connection open: 2.4 s');

  a.send(query(2));
  const plain = read((await a.next()) as Buffer);
  assert.equal(plain.id, 2);
  assert.ok(plain.hasOpt);
  assert.deepEqual(plain.keepalive, [], 'not asked, not sent');

  const b = await tcpConnect(s.port);
  t.after(() => b.close());
  b.send(query(3, 0));
  assert.deepEqual(read((await b.next()) as Buffer).keepalive, [{ length: 2, timeout: 18 }], 'two connections open: 1.8 s');
  // What it signalled is what it does: b, idle from now, is closed 1.8 s later.
  const started = performance.now();
  await b.closed;
  const took = performance.now() - started;
  assert.ok(took >= 1700 && took < 2600, `closed after ${Math.round(took)} ms (signalled 1 800 ms)`);
  assert.equal(s.overwatch.readCounters().TCP_IDLE_CLOSED, 1);
});

test('over TCP a keepalive option with a TIMEOUT in the query is FORMERR (with an OPT, without the option), and the connection goes on', async (t) => {
  const s = await startServer(t, config('  tcp_idle_timeout: 10s'), 'keepalive-formerr.yaml');
  const c = await tcpConnect(s.port);
  t.after(() => c.close());
  c.send(query(7, 100));
  const bad = read((await c.next()) as Buffer);
  assert.equal(bad.id, 7);
  assert.equal(bad.rcode, 1, 'FORMERR');
  assert.ok(bad.hasOpt, 'the client speaks EDNS: the FORMERR carries an OPT');
  assert.deepEqual(bad.keepalive, []);
  assert.equal(s.overwatch.readCounters().MALFORMED, 1);
  c.send(query(8, 0));
  const good = read((await c.next()) as Buffer);
  assert.equal(good.rcode, 0);
  assert.equal(good.keepalive.length, 1, 'the same connection answers the next query, with the option');
});

test('over UDP the keepalive option is ignored, empty or not: answered as without it, and never sent back', async (t) => {
  const s = await startServer(t, config('  tcp_idle_timeout: 10s'), 'keepalive-udp.yaml');
  for (const keepalive of [0, 100]) {
    const raw = await udpExchange(s.port, query(20 + keepalive, keepalive));
    assert.ok(raw !== null, 'answered');
    const reply = read(raw);
    assert.equal(reply.rcode, 0, `NOERROR (option ${keepalive === 0 ? 'empty' : 'with a TIMEOUT'})`);
    assert.equal(reply.answers, 1);
    assert.deepEqual(reply.keepalive, []);
  }
  assert.equal(s.overwatch.readCounters().MALFORMED, 0);
});

const haveDig = spawnSync('dig', ['-v']).status === 0;

test('dig +keepalive over TCP prints the idle timeout the server signals, and over UDP none', { skip: haveDig ? false : 'dig is not installed (Debian: bind9-dnsutils)' }, async (t) => {
  const s = await startServer(t, config('  tcp_idle_timeout: 10s\n  tcp_max_connections: 10\n  tcp_max_connections_per_client: 10'), 'keepalive-dig.yaml');
  const args = ['@127.0.0.1', '-p', String(s.port), '+keepalive', '+norec', '+tries=1', 'app.example.test', 'A'];
  const tcp = (await run('dig', [...args, '+tcp'])).stdout;
  assert.match(tcp, /status: NOERROR/);
  // dig's one connection of 10: 9/10 of 10 s.
  assert.match(tcp, /TCP KEEPALIVE: 9\.0 secs/, tcp);
  const udp = (await run('dig', args)).stdout;
  assert.match(udp, /status: NOERROR/);
  assert.doesNotMatch(udp, /KEEPALIVE/, udp);
});
