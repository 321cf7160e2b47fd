// What one TCP client can hold, through the real server: connections per
// client address, eviction of the idlest connection at the worker's cap,
// slow frames, and clients that pipeline queries and never read their
// replies (bounded memory, and everyone else still answered over UDP and TCP).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { OUT_BLOCK } from '../../workers/transport-tcp.ts';
import { COUNTER, COUNTER_STRIDE } from '../../src/metrics/counters-layout.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { startOpengslb } from '../helpers/child.ts';
import { tempDir, writeTree } from '../helpers/config-files.ts';
import { ask, buildQuery, tcpConnect, udpExchange } from '../helpers/dns-client.ts';
import { eventually } from '../helpers/eventually.ts';
import { startServer } from '../helpers/server.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { parseExposition } from '../metrics/scrape.ts';

const config = (dns: string, servers = 1, workers = 1): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: ${workers}
  zones: [example.test]
${dns}
regions:
  - name: r
    health_check: { type: none }
    servers: [${Array.from({ length: servers }, (_, i) => `{ address: "2001:db8::${(i + 1).toString(16)}" }`).join(', ')}]
domains:
  - { name: app.example.test, regions: [r], max_answers: 32 }
logging: { level: error }
`;

/** Opens a TCP connection from `local` and resolves once it is connected, or with null when the server closed it at once. */
function connectFrom(port: number, local: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: local });
    let settled = false;
    s.on('error', () => undefined);
    s.on('connect', () => {
      // A refused connection is accepted by the kernel and destroyed by the server: wait a moment for the close.
      setTimeout(() => {
        settled = true;
        resolve(s.destroyed || s.readyState !== 'open' ? null : s);
      }, 0);
    });
    s.on('close', () => {
      if (!settled) {
        settled = true;
        resolve(null);
      }
    });
  });
}

/**
 * Resolves when `socket` closes, whether the server ended it with a FIN or a
 * reset: the reset's ECONNRESET is expected here (events.once would reject
 * on it), and 'close' follows it.
 */
function closeOf(socket: net.Socket): Promise<void> {
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** A query as a TCP frame (two-byte length first). */
function tcpFrame(name: string, type: string, id: number): Buffer {
  const q = buildQuery(name, type, { id });
  return Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
}

/** Reads `count` framed messages from a socket that was paused; resolves with them, or rejects after `timeoutMs` or at a close. */
function readFrames(socket: net.Socket, count: number, timeoutMs: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const frames: Buffer[] = [];
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`${frames.length} of ${count} replies after ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      let off = 0;
      while (buf.length - off >= 2 && buf.length - off - 2 >= buf.readUInt16BE(off)) {
        const len = buf.readUInt16BE(off);
        frames.push(buf.subarray(off + 2, off + 2 + len));
        off += 2 + len;
      }
      buf = buf.subarray(off);
      if (frames.length >= count) {
        clearTimeout(timer);
        resolve(frames);
      }
    });
    socket.on('close', () => reject(new Error(`closed after ${frames.length} of ${count} replies`)));
    socket.resume();
  });
}

test('2 000 idle connections from one address hold only its cap, and a client from another address connects and is answered at once', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections: 256\n  tcp_max_connections_per_client: 16\n  tcp_idle_timeout: 60s'), 'tcp-hog.yaml');
  const held: net.Socket[] = [];
  t.after(() => {
    for (const c of held) c.destroy();
  });
  const batch = 100;
  for (let i = 0; i < 2000; i += batch) {
    const got = await Promise.all(Array.from({ length: batch }, () => connectFrom(s.port, '127.0.0.1')));
    for (const c of got) if (c !== null) held.push(c);
  }
  // Let the server's closes of the refused ones arrive.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const open = held.filter((c) => !c.destroyed && c.readyState === 'open');
  assert.ok(open.length <= 16, `the holder keeps at most its cap: ${open.length} open`);
  const counters = s.overwatch.readCounters();
  assert.ok(counters.TCP_CLIENT_CAP >= 2000 - 16, `refused per client: ${counters.TCP_CLIENT_CAP}`);

  const started = performance.now();
  const other = await tcpConnect(s.port, '127.0.0.1');
  other.socket.destroy();
  const viaOther = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port: s.port, localAddress: '127.0.0.2' }, () => resolve(c));
    c.on('error', reject);
  });
  t.after(() => viaOther.destroy());
  const q = buildQuery('app.example.test', 'AAAA');
  const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  viaOther.write(frame);
  const [reply] = (await once(viaOther, 'data')) as [Buffer];
  assert.ok(reply.length > 2, 'answered');
  assert.ok(performance.now() - started < 2000, `answered within ${Math.round(performance.now() - started)} ms`);
});

/** Opens `count` connections from `local`, `batch` at a time; resolves with those the server kept. */
async function hold(port: number, local: string, count: number, batch = 100): Promise<net.Socket[]> {
  const held: net.Socket[] = [];
  for (let i = 0; i < count; i += batch) {
    const got = await Promise.all(Array.from({ length: Math.min(batch, count - i) }, () => connectFrom(port, local)));
    for (const c of got) if (c !== null) held.push(c);
  }
  // Let the server's closes of the refused ones arrive.
  await new Promise((resolve) => setTimeout(resolve, 200));
  return held.filter((c) => !c.destroyed && c.readyState === 'open');
}

/** Connects from `local`, sends one query and resolves with the reply's wire bytes (rejects on a close or after 2 s). */
async function askFrom(port: number, local: string): Promise<{ reply: Buffer; ms: number }> {
  const started = performance.now();
  const c = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: local }, () => resolve(s));
    s.on('error', reject);
  });
  try {
    c.write(tcpFrame('app.example.test', 'AAAA', 7));
    const [reply] = await readFrames(c, 1, 2000);
    return { reply, ms: performance.now() - started };
  } finally {
    c.destroy();
  }
}

test('with two workers, 2 000 idle connections from one address hold only its cap in all, and another address connects and is answered at once', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections: 256\n  tcp_max_connections_per_client: 16\n  tcp_idle_timeout: 60s', 1, 2), 'tcp-hog-2.yaml');
  const open = await hold(s.port, '127.0.0.1', 2000);
  t.after(() => {
    for (const c of open) c.destroy();
  });
  // Before the workers shared one count, each had its own: 32 here.
  assert.equal(open.length, 16, `the holder keeps its cap for the whole server: ${open.length} open`);
  const counters = s.overwatch.readCounters();
  assert.equal(counters.TCP_CLIENT_CAP, 2000 - 16, 'every other one was refused per client');
  // The kernel spread them over both workers: each refused some (the chance that one got none of 2 000 is 2^-1999).
  for (let w = 0; w < 2; w++) {
    const refused = s.overwatch.counters[w * COUNTER_STRIDE + COUNTER.TCP_CLIENT_CAP];
    assert.ok(refused > 0, `worker ${w} refused ${refused}`);
  }
  const { reply, ms } = await askFrom(s.port, '127.0.0.2');
  assert.equal(dnsPacket.decode(reply).id, 7, 'another address is answered');
  assert.ok(ms < 2000, `answered within ${Math.round(ms)} ms`);
  // The holder, closing some, gets exactly as many places back, on whichever worker.
  for (const c of open.splice(0, 5)) c.destroy();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const again = await hold(s.port, '127.0.0.1', 40, 40);
  t.after(() => {
    for (const c of again) c.destroy();
  });
  assert.equal(again.length, 5, `after closing 5 the holder got ${again.length} back`);
});

test('with dns.tcp_client_ipv4_prefix_length 24, two addresses of one /24 share a cap, and another /24 has its own', async (t) => {
  const s = await startServer(
    t,
    config('  tcp_max_connections: 64\n  tcp_max_connections_per_client: 4\n  tcp_client_ipv4_prefix_length: 24\n  tcp_idle_timeout: 60s', 1, 2),
    'tcp-prefix.yaml',
  );
  const a = await hold(s.port, '127.0.0.2', 3, 3);
  const b = await hold(s.port, '127.0.0.3', 3, 3);
  const other = await hold(s.port, '127.0.1.2', 6, 6);
  t.after(() => {
    for (const c of [...a, ...b, ...other]) c.destroy();
  });
  assert.equal(a.length, 3);
  assert.equal(b.length, 1, 'the second address of the /24 gets what the first left of the cap');
  assert.equal(other.length, 4, 'another /24 has a cap of its own');
  assert.equal(s.overwatch.readCounters().TCP_CLIENT_CAP, 2 + 2);
});

test('a reload that changes the TCP client prefix lengths is refused as needing a restart, as the other TCP settings are', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections_per_client: 4', 1, 2), 'tcp-prefix-reload.yaml');
  for (const [key, value] of [['tcp_client_ipv4_prefix_length', 24], ['tcp_client_ipv6_prefix_length', 56]] as const) {
    const next = parseConfigText(config(`  tcp_max_connections_per_client: 4\n  ${key}: ${value}`, 1, 2), 'next.yaml');
    const result = await s.overwatch.reload(next);
    assert.equal(result.ok, false);
    assert.equal(result.message, `dns.${key} changed; the socket settings are fixed when the workers start, so this needs a restart`);
  }
});

test('a DNS worker killed by the fault drill takes its connections\' counts with it: the holder gets them back, never more than its cap', async (t) => {
  const dir = await tempDir(t, 'opengslb-tcp-drill-');
  await writeTree(dir, { 'config.yaml': config('  tcp_max_connections: 256\n  tcp_max_connections_per_client: 16\n  tcp_idle_timeout: 60s', 1, 2).replace('logging: { level: error }', 'logging: { level: info }') });
  const server = await startOpengslb(t, join(dir, 'config.yaml'), { env: { ...process.env, OPENGSLB_FAULT_DRILL: '1' } });
  const held = await hold(server.port, '127.0.0.1', 200);
  t.after(() => {
    for (const c of held) c.destroy();
  });
  assert.equal(held.length, 16);
  // SIGUSR2 with OPENGSLB_FAULT_DRILL=1 terminates a DNS worker, worker 0 then
  // worker 1 (bench/soak.ts uses it); the pool restarts it. Which worker holds
  // how many of the 16 depends on which accepted first: if the first one
  // killed held none, the second did.
  let lost: net.Socket[] = [];
  for (let drill = 0; drill < 2 && lost.length === 0; drill++) {
    const from = server.out.lines.length;
    server.child.kill('SIGUSR2');
    await server.out.waitFor(/DNS worker restarted/, from, 10_000);
    // Let the closes of the dead worker's connections arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    lost = held.filter((c) => c.destroyed || c.readyState !== 'open');
  }
  assert.ok(lost.length > 0, `${lost.length} of the 16 died with the killed worker`);
  const survivors = held.length - lost.length;
  const more = await hold(server.port, '127.0.0.1', 200);
  t.after(() => {
    for (const c of more) c.destroy();
  });
  // Had the dead worker's counts stayed, the holder would get nothing back.
  assert.equal(survivors + more.length, 16, `${survivors} survivors + ${more.length} new`);
  const { reply } = await askFrom(server.port, '127.0.0.2');
  assert.equal(dnsPacket.decode(reply).id, 7);
});

test('at the worker cap a new connection closes the idlest one instead of being refused', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections: 4\n  tcp_max_connections_per_client: 4\n  tcp_idle_timeout: 60s'), 'tcp-evict.yaml');
  const first = await connectFrom(s.port, '127.0.0.11');
  assert.ok(first);
  const closedFirst = closeOf(first);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const others: net.Socket[] = [];
  for (const local of ['127.0.0.12', '127.0.0.13', '127.0.0.14']) {
    const c = await connectFrom(s.port, local);
    assert.ok(c);
    others.push(c);
  }
  t.after(() => {
    for (const c of others) c.destroy();
  });
  const newcomer = await tcpConnect(s.port, '127.0.0.1');
  t.after(() => newcomer.socket.destroy());
  newcomer.send(buildQuery('app.example.test', 'AAAA'));
  assert.ok(await newcomer.next(), 'the newcomer is answered');
  await closedFirst;
  assert.equal(s.overwatch.readCounters().TCP_EVICTED, 1, 'the first (idlest) connection made room');
  for (const c of others) assert.equal(c.readyState, 'open');
});

test('at the worker cap, connections the server has already ended (a zero-length frame, or tcp_max_queries_per_connection) but the client keeps half-open make room for a new one', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections: 4\n  tcp_max_connections_per_client: 8\n  tcp_max_queries_per_connection: 1\n  tcp_idle_timeout: 60s'), 'tcp-evict-ended.yaml');
  const ended: net.Socket[] = [];
  t.after(() => {
    for (const c of ended) c.destroy();
  });
  // Each is ended by the server (FIN) and stays half-open: the client reads but never closes its side.
  for (let i = 0; i < 4; i++) {
    const c = net.connect({ host: '127.0.0.1', port: s.port, allowHalfOpen: true });
    c.on('error', () => undefined);
    c.on('data', () => undefined);
    await once(c, 'connect');
    const gotFin = once(c, 'end');
    c.write(i % 2 === 0 ? Buffer.from([0, 0]) : tcpFrame('app.example.test', 'AAAA', 100 + i));
    await gotFin;
    ended.push(c);
  }
  const newcomer = await tcpConnect(s.port, '127.0.0.1');
  t.after(() => newcomer.socket.destroy());
  newcomer.send(buildQuery('app.example.test', 'AAAA'));
  assert.ok(await newcomer.next(), 'the newcomer is answered, not refused');
  const counters = s.overwatch.readCounters();
  assert.equal(counters.TCP_REJECTED, 0, 'nobody refused');
  assert.equal(counters.TCP_EVICTED, 1, 'one ended connection made room');
});

test('a connection the server has ended (a zero-length frame, or tcp_max_queries_per_connection) is closed at the idle timeout though its client keeps sending', async (t) => {
  // Node.js restarts a socket's timeout at every read: bytes trickled after
  // our FIN kept such a connection, and its client's place, open for ever.
  const s = await startServer(t, config('  tcp_max_queries_per_connection: 1\n  tcp_idle_timeout: 600ms'), 'tcp-ended-trickle.yaml');
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  t.after(() => {
    for (const timer of timers) clearInterval(timer);
    for (const c of sockets) c.destroy();
  });
  const started = performance.now();
  const closes = [Buffer.from([0, 0]), tcpFrame('app.example.test', 'AAAA', 7)].map(async (first) => {
    const c = net.connect({ host: '127.0.0.1', port: s.port, allowHalfOpen: true });
    sockets.push(c);
    c.on('data', () => undefined);
    const closed = closeOf(c);
    await once(c, 'connect');
    c.setNoDelay(true);
    c.write(first);
    // A byte every 100 ms, well inside the idle timeout, until the server closes it.
    timers.push(setInterval(() => c.destroyed || c.write(Buffer.from([0x41])), 100));
    await closed;
    return performance.now() - started;
  });
  const deadline = new Promise<number>((resolve) => setTimeout(() => resolve(-1), 4000).unref());
  for (const took of await Promise.all(closes.map((closed) => Promise.race([closed, deadline])))) {
    assert.ok(took >= 0, 'closed by the server within 4 s (the idle timeout is 0.6 s)');
  }
  assert.equal(s.overwatch.readCounters().TCP_IDLE_CLOSED, 2);
});

test('a connection the per-client table cannot count (its lock held by a worker that died) is answered all the same, and counted as uncounted', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections_per_client: 4\n  tcp_idle_timeout: 60s'), 'tcp-uncounted.yaml');
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, overwatch: s.overwatch, processMetrics: false });
  t.after(() => metrics.close());
  const uncounted = async (): Promise<number | undefined> => parseExposition(await metrics.registry.metrics()).value('opengslb_dns_tcp_connections_uncounted_total', {});
  assert.equal(await uncounted(), 0);
  // The table's lock word (header[0]) held by owner 9, a worker that is not
  // there: as a worker killed holding it, before the main thread reclaims it.
  const header = s.overwatch.pool.tcpClients.header;
  Atomics.store(header, 0, 9);
  const held = performance.now();
  const first = await tcpConnect(s.port);
  t.after(() => first.socket.destroy());
  first.send(buildQuery('app.example.test', 'AAAA'));
  assert.ok(await first.next(2_000), 'answered though uncounted');
  assert.ok(performance.now() - held >= 150, 'after the worker waited for the lock');
  Atomics.store(header, 0, 0);
  assert.equal(await uncounted(), 1);
  assert.equal(s.overwatch.readCounters().TCP_ACCEPTED, 1);
  // With the lock free again, the next one is counted for its client.
  const second = await tcpConnect(s.port);
  t.after(() => second.socket.destroy());
  second.send(buildQuery('app.example.test', 'AAAA'));
  assert.ok(await second.next(2_000));
  assert.equal(await uncounted(), 1);
  assert.equal(s.overwatch.readCounters().TCP_ACCEPTED, 2);
});

test('a message that starts and never completes is closed after dns.tcp_frame_timeout, long before the idle timeout', async (t) => {
  const s = await startServer(t, config('  tcp_frame_timeout: 300ms\n  tcp_idle_timeout: 30s'), 'tcp-slow.yaml');
  const c = net.connect({ host: '127.0.0.1', port: s.port });
  t.after(() => c.destroy());
  await once(c, 'connect');
  const started = performance.now();
  c.write(Buffer.from([0, 40, 0x12])); // a 40-byte message, 1 byte of it
  await closeOf(c);
  const took = performance.now() - started;
  assert.ok(took >= 250 && took < 5000, `closed after ${Math.round(took)} ms`);
  assert.equal(s.overwatch.readCounters().TCP_FRAME_TIMEOUT, 1);
});

test('a message that trickles in a byte at a time is closed dns.tcp_frame_timeout after its first byte, though bytes keep arriving', async (t) => {
  const s = await startServer(t, config('  tcp_frame_timeout: 300ms\n  tcp_idle_timeout: 30s'), 'tcp-trickle.yaml');
  const c = net.connect({ host: '127.0.0.1', port: s.port });
  c.on('error', () => undefined);
  // Read whatever comes, so a reply (were the message answered) cannot keep 'close' from being emitted.
  c.resume();
  t.after(() => c.destroy());
  await once(c, 'connect');
  c.setNoDelay(true);
  const closed = closeOf(c);
  const started = performance.now();
  // A 40-byte message, its length and then a byte every 100 ms: complete after
  // about 4 s, each byte well inside 300 ms of the one before.
  c.write(Buffer.from([0, 40]));
  let sent = 0;
  while (!c.destroyed && sent < 40) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (!c.destroyed) c.write(Buffer.from([0x12]));
    sent++;
  }
  await closed;
  const took = performance.now() - started;
  assert.ok(took >= 250 && took < 2000, `closed after ${Math.round(took)} ms, ${sent} bytes trickled`);
  assert.equal(s.overwatch.readCounters().TCP_FRAME_TIMEOUT, 1);
});

test('the idle timeout shrinks as the worker fills: the last connection before the cap gets the floor of 0.5 s, the first almost all of it', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections: 4\n  tcp_max_connections_per_client: 4\n  tcp_idle_timeout: 10s'), 'tcp-shrink.yaml');
  const conns: net.Socket[] = [];
  t.after(() => {
    for (const c of conns) c.destroy();
  });
  // Timeouts as each connection is accepted: 10 s × (1 − open/cap) = 7.5 s, 5 s, 2.5 s, then the floor (0.5 s).
  for (let i = 0; i < 4; i++) {
    const c = await connectFrom(s.port, '127.0.0.1');
    assert.ok(c, `connection ${i + 1} accepted`);
    conns.push(c);
  }
  const started = performance.now();
  await closeOf(conns[3]);
  const took = performance.now() - started;
  assert.ok(took < 2000, `the fourth was closed after ${Math.round(took)} ms`);
  for (const c of conns.slice(0, 3)) assert.equal(c.readyState, 'open', 'the earlier ones, given longer, are still open');
  assert.equal(s.overwatch.readCounters().TCP_IDLE_CLOSED, 1);
});

test('clients that pipeline queries for a large answer and never read stay within the bounds, and others are answered meanwhile', async (t) => {
  const dir = await tempDir(t, 'opengslb-tcp-hog-');
  await writeTree(dir, { 'config.yaml': config('  tcp_max_connections: 1024\n  tcp_max_connections_per_client: 1024\n  tcp_idle_timeout: 60s', 32).replace('logging: { level: error }', 'logging: { level: info }\noverwatch: { data_dir: ./data }') });
  const server = await startOpengslb(t, join(dir, 'config.yaml'));
  const rssMb = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  // Warm up: one answer of each kind, so the baseline includes the code paths.
  await ask(server.port, 'app.example.test', 'AAAA', {}, 'tcp');
  const before = rssMb();
  const q = buildQuery('app.example.test', 'AAAA');
  const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  const pipeline = Buffer.concat(Array.from({ length: 2000 }, () => frame));
  const hogs: net.Socket[] = [];
  t.after(() => {
    for (const h of hogs) h.destroy();
  });
  for (let i = 0; i < 200; i++) {
    const h = net.connect({ host: '127.0.0.1', port: server.port });
    h.on('error', () => undefined);
    h.pause(); // never read a reply
    h.on('connect', () => h.write(pipeline));
    hogs.push(h);
  }
  await Promise.all(hogs.map((h) => once(h, 'connect')));
  // The others: answered over UDP and TCP while the hogs are stuck (the
  // worker polls, and accepts one connection, after every 128 frames of the
  // hogs' turns; on a loaded machine that can still take a while, 5 s is generous).
  let slowest = 0;
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    const udp = await udpExchange(server.port, buildQuery('app.example.test', 'AAAA'), 5000);
    assert.ok(udp, 'a UDP client is answered');
    const tcp = await tcpConnect(server.port);
    tcp.send(buildQuery('app.example.test', 'AAAA'));
    const reply = await tcp.next(5000);
    tcp.socket.destroy();
    assert.ok(reply, 'a TCP client is answered');
    slowest = Math.max(slowest, performance.now() - started);
  }
  const grown = rssMb() - before;
  t.diagnostic(`RSS ${before.toFixed(1)} MB before, grew ${grown.toFixed(1)} MB with 200 connections × 2 000 unread queries; the slowest UDP + TCP pair of another client took ${Math.round(slowest)} ms`);
  // 200 × 2 000 queries of a 1 kB answer would be ~400 MB if all were answered into memory.
  // Bounded: 8 MiB of unsent replies (one worker), + per connection at most one read kept
  // (READ_CHUNK, 16 KiB) and two partly used reply blocks (2 × OUT_BLOCK, 16 KiB): 6.25 MiB,
  // + the worker's heap before its next GC. Measured 4–9 MB (load 8–9); 18–65 MB before the
  // reads went into one buffer and the replies into reused blocks.
  assert.ok(grown < 48, `the server grew by ${grown.toFixed(1)} MB`);
});

test('clients that stop reading and then read get every reply intact and in order, small and larger than a reply block', async (t) => {
  // 40 TXT strings of 250 bytes: a ~10 kB answer, larger than one reply block.
  const txt = Array.from({ length: 40 }, (_, i) => `        - 'big TXT "${String(i).padStart(3, '0')}${'x'.repeat(247)}"'`).join('\n');
  const yaml = config('  tcp_max_connections: 64\n  tcp_max_connections_per_client: 64\n  tcp_idle_timeout: 60s', 32).replace(
    '  zones: [example.test]',
    `  zones:\n    - name: example.test\n      records:\n${txt}`,
  );
  const s = await startServer(t, yaml, 'tcp-intact.yaml');
  const queries = 3000;
  // Every 4th query is for the large answer: ~750 × 10 kB + 2 250 × 1 kB per connection, far more than the kernel buffers of a client that does not read.
  const nameOf = (i: number): [string, string] => (i % 4 === 3 ? ['big.example.test', 'TXT'] : i % 4 === 1 ? ['example.test', 'SOA'] : ['app.example.test', 'AAAA']);
  const conns: net.Socket[] = [];
  t.after(() => {
    for (const c of conns) c.destroy();
  });
  for (let c = 0; c < 6; c++) {
    const socket = net.connect({ host: '127.0.0.1', port: s.port });
    socket.pause();
    await once(socket, 'connect');
    socket.write(Buffer.concat(Array.from({ length: queries }, (_, i) => tcpFrame(...nameOf(i), i))));
    conns.push(socket);
  }
  // Let the server fill the kernel buffers and stop reading.
  const deadline = Date.now() + 10_000;
  while (s.overwatch.readCounters().TCP_READ_PAUSED < conns.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(s.overwatch.readCounters().TCP_READ_PAUSED >= conns.length, `every connection was held: ${s.overwatch.readCounters().TCP_READ_PAUSED}`);
  const all = await Promise.all(conns.map((socket) => readFrames(socket, queries, 60_000)));
  for (const frames of all) {
    assert.equal(frames.length, queries);
    for (let i = 0; i < queries; i++) {
      const reply = dnsPacket.decode(frames[i]);
      const [name, type] = nameOf(i);
      assert.equal(reply.id, i, 'in order');
      assert.equal(reply.questions?.[0]?.name, name);
      assert.equal(reply.questions?.[0]?.type, type);
      if (type === 'TXT') {
        assert.equal(reply.answers?.length, 40);
        assert.ok(frames[i].length > OUT_BLOCK, `the large answer is larger than a block: ${frames[i].length}`);
      }
      if (type === 'AAAA') assert.equal(reply.answers?.length, 32);
    }
  }
});

test('a client that half-closes with a message half sent is answered what it sent in full and closed at once', async (t) => {
  const s = await startServer(t, config('  tcp_frame_timeout: 30s\n  tcp_idle_timeout: 30s'), 'tcp-half.yaml');
  const c = net.connect({ host: '127.0.0.1', port: s.port });
  t.after(() => c.destroy());
  await once(c, 'connect');
  const started = performance.now();
  // One whole query, then the first bytes of another, then FIN.
  c.end(Buffer.concat([tcpFrame('app.example.test', 'AAAA', 7), Buffer.from([0, 40, 0x12])]));
  const replies = await readFrames(c, 1, 5000);
  assert.equal(replies[0].readUInt16BE(0), 7);
  await closeOf(c);
  const took = performance.now() - started;
  assert.ok(took < 5000, `closed after ${Math.round(took)} ms, not at the 30 s frame timeout`);
});

test('a burst of connections at the worker cap is counted in full: each one accepted or rejected, none dropped unseen by the listener', async (t) => {
  // A cap of 1: every newcomer evicts the one before it, whose close completes
  // only after the burst's turn, so the listener's own count runs ahead of
  // ours; past its backstop (server.maxConnections) Node.js closes the
  // connection itself before our handler sees it.
  const s = await startServer(t, config('  tcp_max_connections: 1\n  tcp_max_connections_per_client: 65535\n  tcp_idle_timeout: 60s'), 'tcp-burst.yaml');
  const before = s.overwatch.readCounters();
  const sockets: net.Socket[] = [];
  t.after(() => {
    for (const c of sockets) c.destroy();
  });
  let connected = 0;
  await Promise.all(Array.from({ length: 300 }, () => new Promise<void>((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port: s.port });
    sockets.push(c);
    c.on('error', () => undefined);
    c.on('connect', () => {
      connected++;
      resolve();
    });
    c.on('close', () => resolve());
  })));
  const seen = (): number => {
    const now = s.overwatch.readCounters();
    return now.TCP_ACCEPTED + now.TCP_REJECTED + now.TCP_CLIENT_CAP - before.TCP_ACCEPTED - before.TCP_REJECTED - before.TCP_CLIENT_CAP;
  };
  await eventually(`${connected} connections made, counted as accepted or rejected`, async () => seen() >= connected, 5000).catch(() => undefined);
  assert.equal(seen(), connected, `connections made ${connected}, counted ${seen()} (accepted ${s.overwatch.readCounters().TCP_ACCEPTED - before.TCP_ACCEPTED})`);
});

test('queries pipelined past dns.tcp_max_queries_per_connection are counted as dropped, and the connection ends (FIN) and closes as soon as the client closes its side', async (t) => {
  // 3 answered in the first turn, then the cap; and 40, which is past the
  // first turn (32 frames), so the cap is reached in a later turn.
  for (const cap of [3, 40]) {
    const s = await startServer(t, config(`  tcp_max_queries_per_connection: ${cap}\n  tcp_idle_timeout: 60s`), `tcp-cap-${cap}.yaml`);
    const metrics = createMetrics({ version: 't', loadedAtMs: 0, overwatch: s.overwatch, processMetrics: false });
    t.after(() => metrics.close());
    const c = net.connect({ host: '127.0.0.1', port: s.port, allowHalfOpen: true });
    t.after(() => c.destroy());
    const closed = closeOf(c);
    await once(c, 'connect');
    const gotFin = once(c, 'end');
    const sent = cap + 10;
    c.write(Buffer.concat(Array.from({ length: sent }, (_, i) => tcpFrame('app.example.test', 'AAAA', 1000 + i))));
    const replies = await readFrames(c, cap, 2000);
    assert.deepEqual(replies.map((r) => r.readUInt16BE(0)), Array.from({ length: cap }, (_, i) => 1000 + i), 'the first queries are answered in order');
    await gotFin;
    // Two more whole queries and the start of a third after the server's FIN: dropped too.
    const more = Buffer.concat([tcpFrame('app.example.test', 'A', 1), tcpFrame('app.example.test', 'A', 2)]);
    c.write(Buffer.concat([more, tcpFrame('app.example.test', 'A', 3).subarray(0, 5)]));
    const dropped = sent - cap + 3;
    await eventually(`${dropped} queries counted as dropped`, async () => s.overwatch.readCounters().TCP_QUERY_LIMIT_DROPPED === dropped, 2000).catch((err) => { throw new Error(`${err.message}: ${s.overwatch.readCounters().TCP_QUERY_LIMIT_DROPPED}`); });
    const started = performance.now();
    c.end();
    await closed;
    assert.ok(performance.now() - started < 2000, `closed ${Math.round(performance.now() - started)} ms after the client's FIN (the idle timeout is 60 s)`);
    const exposition = parseExposition(await metrics.registry.metrics());
    assert.equal(exposition.value('opengslb_dns_tcp_queries_dropped_total', { reason: 'query_limit' }), dropped);
    assert.equal(s.overwatch.readCounters().TCP_QUERIES, cap, 'the dropped queries are not counted as received');
    assert.equal(s.overwatch.readCounters().TCP_IDLE_CLOSED, 0);
  }
});
