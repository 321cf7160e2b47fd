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
import { clientKeyOf } from '../../workers/transport-tcp.ts';
import { startOpengslb } from '../helpers/child.ts';
import { tempDir, writeTree } from '../helpers/config-files.ts';
import { ask, buildQuery, tcpConnect, udpExchange } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const config = (dns: string, servers = 1): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
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

test('the per-client key is the IPv4 address or the IPv6 /64', () => {
  assert.equal(clientKeyOf('192.0.2.7'), '192.0.2.7');
  assert.equal(clientKeyOf('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientKeyOf('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(clientKeyOf('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKeyOf('2001:0db8:0001:0002::9'), '2001:db8:1:2::/64');
});

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

test('at the worker cap a new connection closes the idlest one instead of being refused', async (t) => {
  const s = await startServer(t, config('  tcp_max_connections: 4\n  tcp_max_connections_per_client: 4\n  tcp_idle_timeout: 60s'), 'tcp-evict.yaml');
  const first = await connectFrom(s.port, '127.0.0.11');
  assert.ok(first);
  const closedFirst = once(first, 'close');
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

test('a message that starts and never completes is closed after dns.tcp_frame_timeout, long before the idle timeout', async (t) => {
  const s = await startServer(t, config('  tcp_frame_timeout: 300ms\n  tcp_idle_timeout: 30s'), 'tcp-slow.yaml');
  const c = net.connect({ host: '127.0.0.1', port: s.port });
  t.after(() => c.destroy());
  await once(c, 'connect');
  const started = performance.now();
  c.write(Buffer.from([0, 40, 0x12])); // a 40-byte message, 1 byte of it
  await once(c, 'close');
  const took = performance.now() - started;
  assert.ok(took >= 250 && took < 5000, `closed after ${Math.round(took)} ms`);
  assert.equal(s.overwatch.readCounters().TCP_FRAME_TIMEOUT, 1);
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
  // The others: answered over UDP and TCP while the hogs are stuck (every
  // hog's connection gets its turn of 32 frames before a new one is read, so
  // on a loaded machine that can take a while; 5 s is generous).
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
  // Bounded: 2 workers × 8 MiB of unsent replies, + at most one 64 KiB read per connection (12.5 MiB),
  // + the workers' heaps growing before their next GC (measured 18–65 MB in all on this 2-core machine).
  assert.ok(grown < 96, `the server grew by ${grown.toFixed(1)} MB`);
});
