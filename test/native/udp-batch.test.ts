// The batched-UDP addon (native/udp_batch.c) through its JS module
// (native/udp-batch.ts), on real loopback sockets: batches land in the shared
// slots with their sources as bytes, replies leave with one sendmmsg, errors
// are counted and skipped, a send backlog (EAGAIN) waits for POLLOUT and
// loses or repeats nothing, close() frees the port (also when the addon's
// layout is refused after open), and a worker thread
// terminated inside a batch or throwing from one never takes the process down.
// The loader's fallbacks (no binary, a binary that does not load) say why.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import { loadUdpBatch, META_ADDR_BYTE, META_ADDR_LEN, META_BYTES, META_PORT, META_RX_LEN, META_TX_LEN, openBatchSocket, type BatchSocket, type UdpBatchAddon } from '../../native/udp-batch.ts';

const loaded = loadUdpBatch();
/** Skips the native tests with the reason when the addon is not built here (the loader test still runs). */
const needsAddon = loaded.addon === null ? { skip: `the native addon is not available: ${loaded.reason}; build it with \`npm run build:native\` (needs python3, make and a C compiler: apt-get install python3 make gcc)` } : {};
const addon = loaded.addon as UdpBatchAddon;
const WORDS = META_BYTES / 4;

interface Seen {
  len: number;
  addrLen: number;
  port: number;
  addr: number[];
  text: string;
}

/** Opens a socket whose onBatch records every datagram and answers with `reply(text)` (null = no reply). */
function openRecorder(t: TestContext, host: string, reply: (text: string, i: number) => number | string | null, batch = 16): { socket: BatchSocket; seen: Seen[]; batches: number[] } {
  const seen: Seen[] = [];
  const batches: number[] = [];
  let socket: BatchSocket | null = null;
  socket = openBatchSocket(addon, { host, port: 0, receiveBuffer: 0, batch }, (count) => {
    const s = socket!;
    batches.push(count);
    for (let i = 0; i < count; i++) {
      const w = i * WORDS;
      const len = s.meta[w + META_RX_LEN];
      const addrLen = s.meta[w + META_ADDR_LEN];
      const text = Buffer.from(s.rx[i].subarray(0, len)).toString();
      seen.push({ len, addrLen, port: s.meta[w + META_PORT], addr: [...s.metaBytes.subarray(i * META_BYTES + META_ADDR_BYTE, i * META_BYTES + META_ADDR_BYTE + addrLen)], text });
      const r = reply(text, seen.length - 1);
      if (r === null) {
        s.meta[w + META_TX_LEN] = 0;
      } else if (typeof r === 'number') {
        s.meta[w + META_TX_LEN] = r;
      } else {
        const bytes = Buffer.from(r);
        s.tx[i].set(bytes);
        s.meta[w + META_TX_LEN] = bytes.length;
      }
    }
  });
  t.after(() => socket!.close());
  return { socket, seen, batches };
}

/** A client socket that collects replies; closed after the test. */
async function client(t: TestContext, type: 'udp4' | 'udp6', host: string): Promise<{ sock: dgram.Socket; replies: string[]; waitFor(n: number): Promise<void> }> {
  const sock = dgram.createSocket(type);
  await new Promise<void>((resolve) => sock.bind(0, host, resolve));
  t.after(() => sock.close());
  const replies: string[] = [];
  let wanted = Infinity;
  let wake: () => void = () => {};
  sock.on('message', (m) => {
    replies.push(m.toString());
    if (replies.length >= wanted) wake();
  });
  return {
    sock,
    replies,
    waitFor(n: number) {
      if (replies.length >= n) return Promise.resolve();
      wanted = n;
      return new Promise((resolve) => {
        wake = resolve;
      });
    },
  };
}

test('the loader finds the addon this repository built, or says why not', () => {
  if (loaded.addon === null) {
    assert.match(loaded.reason, /native addon|Linux-only|does not load|stale/);
  } else {
    assert.match(loaded.reason, /^native addon .*opengslb_udp\.node$/);
    assert.equal(loaded.addon.abiVersion, 1);
  }
});

test('a binary that does not load is reported with the file and dlopen\'s reason, and nothing throws', { skip: process.platform !== 'linux' ? 'the loader only tries binaries on Linux' : false }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-native-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bogus = join(dir, 'opengslb_udp.node');
  await writeFile(bogus, 'not an ELF file');
  const r = loadUdpBatch([bogus]);
  assert.equal(r.addon, null);
  assert.match(r.reason, /opengslb_udp\.node does not load: /);
  const none = loadUdpBatch([join(dir, 'missing.node')]);
  assert.equal(none.addon, null);
  assert.match(none.reason, /^no build of the native addon for linux-\w+ \(looked for .*missing\.node; `npm run build:native` builds it/);
});

test('receives a burst in batches with IPv4 sources as bytes and sends every reply back to its sender', needsAddon, async (t) => {
  const { socket, seen, batches } = openRecorder(t, '127.0.0.1', (text) => `re:${text}`);
  const c = await client(t, 'udp4', '127.0.0.1');
  const n = 40;
  for (let i = 0; i < n; i++) c.sock.send(`q${i}`, socket.port, '127.0.0.1');
  await c.waitFor(n);
  assert.deepEqual([...c.replies].sort(), Array.from({ length: n }, (_, i) => `re:q${i}`).sort());
  assert.equal(seen.length, n);
  const clientPort = c.sock.address().port;
  for (const s of seen) {
    assert.equal(s.addrLen, 4);
    assert.deepEqual(s.addr, [127, 0, 0, 1]);
    assert.equal(s.port, clientPort);
    assert.equal(s.len, s.text.length);
  }
  assert.ok(batches.every((b) => b >= 1 && b <= 16), `batches ${batches.join(',')}`);
  const stats = socket.stats();
  assert.equal(stats.packets, n);
  assert.equal(stats.replies, n);
  assert.equal(stats.sendErrors, 0);
  assert.equal(stats.batches, batches.length);
});

test('IPv6 sources arrive as 16 bytes, and IPv4 clients of a dual-stack socket as 4', needsAddon, async (t) => {
  const { socket, seen } = openRecorder(t, '::', (text) => `re:${text}`);
  const v6 = await client(t, 'udp6', '::1');
  v6.sock.send('six', socket.port, '::1');
  await v6.waitFor(1);
  const v4 = await client(t, 'udp4', '127.0.0.1');
  v4.sock.send('four', socket.port, '127.0.0.1');
  await v4.waitFor(1);
  assert.deepEqual(v6.replies, ['re:six']);
  assert.deepEqual(v4.replies, ['re:four']);
  const six = seen.find((s) => s.text === 'six')!;
  assert.equal(six.addrLen, 16);
  assert.deepEqual(six.addr, [...Array(15).fill(0), 1]);
  const four = seen.find((s) => s.text === 'four')!;
  assert.equal(four.addrLen, 4, '::ffff:127.0.0.1 is an IPv4 client');
  assert.deepEqual(four.addr, [127, 0, 0, 1]);
});

test('a slot with no reply is skipped, and replies the kernel refuses or that overrun their slot are counted and skipped while the rest go out', needsAddon, async (t) => {
  // 65 537 bytes overruns the 65 536-byte slot: never handed to the kernel. 65 520 fits the slot but is over
  // IPv4's UDP maximum (65 507): sendmmsg refuses that message (EMSGSIZE) and the next call starts past it.
  const counters = new Int32Array(new SharedArrayBuffer(16));
  let socket: BatchSocket | null = null;
  const order: string[] = [];
  socket = openBatchSocket(addon, { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 16, counters, sendErrorIndex: 2 }, (count) => {
    const s = socket!;
    for (let i = 0; i < count; i++) {
      const text = Buffer.from(s.rx[i].subarray(0, s.meta[i * WORDS + META_RX_LEN])).toString();
      order.push(text);
      const w = i * WORDS + META_TX_LEN;
      if (text === 'silent') s.meta[w] = 0;
      else if (text === 'overrun') s.meta[w] = 65537;
      else if (text === 'too-big') s.meta[w] = 65520;
      else {
        s.tx[i].set(Buffer.from(`re:${text}`));
        s.meta[w] = 3 + text.length;
      }
    }
  });
  t.after(() => socket!.close());
  const c = await client(t, 'udp4', '127.0.0.1');
  const texts = ['a', 'silent', 'overrun', 'b', 'too-big', 'c'];
  // Sent back to back: usually one batch, so the refused message sits between good ones in one sendmmsg.
  for (const x of texts) c.sock.send(x, socket.port, '127.0.0.1');
  await c.waitFor(3);
  // A last exchange proves nothing more is coming for the first six.
  c.sock.send('z', socket.port, '127.0.0.1');
  await c.waitFor(4);
  assert.deepEqual([...c.replies].sort(), ['re:a', 're:b', 're:c', 're:z']);
  assert.deepEqual(order, [...texts, 'z']);
  assert.equal(socket.stats().sendErrors, 2);
  assert.equal(socket.stats().replies, 4, 'replies counts what the kernel took, not what was queued');
  assert.equal(counters[2], 2, 'counted in the shared counters too');
});

test('close() frees the port at once, also when called inside onBatch (that batch is not answered)', needsAddon, async (t) => {
  let socket: BatchSocket | null = null;
  const called = Promise.withResolvers<void>();
  socket = openBatchSocket(addon, { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 4 }, (count) => {
    for (let i = 0; i < count; i++) {
      socket!.tx[i].set([1, 2, 3]);
      socket!.meta[i * WORDS + META_TX_LEN] = 3;
    }
    socket!.close();
    called.resolve();
  });
  const port = socket.port;
  const c = await client(t, 'udp4', '127.0.0.1');
  c.sock.send('x', port, '127.0.0.1');
  await called.promise;
  // This continuation runs in the callback's microtask checkpoint; the close follows its return.
  await new Promise((resolve) => setImmediate(resolve));
  // An exclusive bind succeeds only when no socket holds the port any more.
  const probe = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind({ port, address: '127.0.0.1', exclusive: true }, resolve);
  });
  probe.close();
  assert.deepEqual(c.replies, []);
  socket.close(); // a second close is a no-op
});

test('binding a port held without SO_REUSEPORT fails with EADDRINUSE, as node:dgram does', needsAddon, async (t) => {
  const holder = dgram.createSocket({ type: 'udp4' });
  await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  assert.throws(() => openBatchSocket(addon, { host: '127.0.0.1', port: holder.address().port, receiveBuffer: 0, batch: 4 }, () => {}), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'EADDRINUSE');
    assert.match(err.message, /^bind EADDRINUSE: /);
    return true;
  });
});

test('a binary whose memory layout this module cannot read is refused with the reason, and the socket it opened is closed (the port binds exclusively again)', needsAddon, async (t) => {
  // A stale build of another layout: open() succeeds, binds and polls, then the views cannot be made. A socket left
  // open would stay in the port's SO_REUSEPORT group beside the node:dgram fallback, taking its share of the
  // queries into an onBatch with no views (a worker crash on the first one, in a loop).
  const stale: UdpBatchAddon = { ...addon, open: (options, onBatch) => ({ ...addon.open(options, onBatch), metaBytes: 16 }) };
  const holder = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
  const port = holder.address().port;
  await new Promise<void>((resolve) => holder.close(() => resolve()));
  assert.throws(() => openBatchSocket(stale, { host: '127.0.0.1', port, receiveBuffer: 0, batch: 4 }, () => {}), /the addon's slot metadata is 16 bytes, this module reads 32/);
  const probe = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  t.after(() => probe.close());
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind({ port, address: '127.0.0.1', exclusive: true }, resolve);
  });
});

/** Why the send-backlog test cannot run here, or false: it needs root, unshare, ip and tc (iproute2) for a network namespace of its own. */
function backlogSkip(): string | false {
  if (loaded.addon === null) return `the native addon is not available: ${loaded.reason}`;
  if (process.getuid?.() !== 0) return 'needs root: it shapes the loopback of a network namespace of its own with tc';
  for (const tool of ['unshare', 'ip', 'tc']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (util-linux, iproute2)`;
  }
  return false;
}

test('when sendmmsg takes part of a batch and then says EAGAIN, the rest waits for POLLOUT: every reply leaves exactly once and reading resumes', { skip: backlogSkip() }, () => {
  // 3 000 replies of 1 200 bytes through an 8 Mbit/s loopback: the send buffer (212 992 bytes by default) fills
  // many times over, so most batches go out in parts across writable waits.
  const script = `ip link set lo up && tc qdisc add dev lo root tbf rate 8mbit burst 4000 limit 8000000 && exec "$0" "$1" 3000 1200`;
  const r = spawnSync('unshare', ['-n', 'sh', '-c', script, process.execPath, new URL('./send-backlog-scenario.ts', import.meta.url).pathname], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { distinct: number; duplicates: number; after: boolean; stats: { packets: number; replies: number; sendErrors: number; writableWaits: number } };
  assert.ok(result.stats.writableWaits > 0, `the backlog never made sendmmsg wait: ${r.stdout}`);
  assert.equal(result.distinct, 3000, 'no reply lost');
  assert.equal(result.duplicates, 0, 'no reply sent twice');
  assert.equal(result.after, true, 'the socket reads again once the backlog is out');
  assert.equal(result.stats.packets, 3001);
  assert.equal(result.stats.replies, 3001);
  assert.equal(result.stats.sendErrors, 0);
});

const BAD_OPTIONS: { name: string; options: Record<string, unknown>; error: RegExp }[] = [
  { name: 'a host name', options: { host: 'localhost', port: 0, receiveBuffer: 0, batch: 4 }, error: /options\.host is not an IPv4 or IPv6 address literal/ },
  { name: 'a port past 65535', options: { host: '127.0.0.1', port: 70000, receiveBuffer: 0, batch: 4 }, error: /options\.port must be an integer from 0 to 65535/ },
  { name: 'a port of NaN', options: { host: '127.0.0.1', port: NaN, receiveBuffer: 0, batch: 4 }, error: /options\.port must be an integer from 0 to 65535/ },
  { name: 'a fractional port', options: { host: '127.0.0.1', port: 53.5, receiveBuffer: 0, batch: 4 }, error: /options\.port must be an integer from 0 to 65535/ },
  { name: 'a port that wraps to 0 as an int32', options: { host: '127.0.0.1', port: 2 ** 32, receiveBuffer: 0, batch: 4 }, error: /options\.port must be an integer from 0 to 65535/ },
  { name: 'a batch of 0', options: { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 0 }, error: /options\.batch must be an integer from 1 to 256/ },
  { name: 'a batch of 257', options: { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 257 }, error: /options\.batch must be an integer from 1 to 256/ },
  { name: 'a negative receive buffer', options: { host: '127.0.0.1', port: 0, receiveBuffer: -1, batch: 4 }, error: /options\.receiveBuffer must be an integer ≥ 0/ },
  { name: 'a counter index outside the array', options: { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 4, counters: new Int32Array(2), sendErrorIndex: 2 }, error: /options\.counters must be an Int32Array/ },
];

for (const c of BAD_OPTIONS) {
  test(`open() refuses ${c.name} with a message naming the option`, needsAddon, () => {
    assert.throws(() => addon.open(c.options as never, () => {}), c.error);
  });
}

test('a worker terminated while its JavaScript is inside a batch exits cleanly, frees its port and leaves the process running', needsAddon, async () => {
  const worker = new Worker(new URL('./batch-worker.ts', import.meta.url), { workerData: { mode: 'spin' } });
  const [first] = (await once(worker, 'message')) as [{ port: number }];
  const c = dgram.createSocket('udp4');
  c.send('q', first.port, '127.0.0.1');
  const [inBatch] = (await once(worker, 'message')) as [string];
  assert.equal(inBatch, 'in-batch');
  const exited = once(worker, 'exit');
  await worker.terminate();
  const [code] = (await exited) as [number];
  assert.equal(code, 1, 'terminate() ends a worker with code 1');
  c.close();
  // The environment's cleanup hook closed the socket: the port binds exclusively again.
  const probe = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind({ port: first.port, address: '127.0.0.1', exclusive: true }, resolve);
  });
  probe.close();
});

test('an exception thrown by onBatch reaches the worker\'s error event like any uncaught one; the process keeps running', needsAddon, async () => {
  const worker = new Worker(new URL('./batch-worker.ts', import.meta.url), { workerData: { mode: 'throw' } });
  const [first] = (await once(worker, 'message')) as [{ port: number }];
  const errored = once(worker, 'error');
  const exited = new Promise<[number]>((resolve) => worker.once('exit', (code) => resolve([code])));
  const c = dgram.createSocket('udp4');
  c.send('q', first.port, '127.0.0.1');
  const [err] = (await errored) as [Error];
  assert.match(err.message, /bug in onBatch/);
  const [code] = (await exited) as [number];
  assert.equal(code, 1);
  c.close();
});

test('close() inside onBatch takes effect also when onBatch then throws: the port is free and no batch follows', needsAddon, async (t) => {
  const worker = new Worker(new URL('./batch-worker.ts', import.meta.url), { workerData: { mode: 'close-throw' } });
  t.after(() => worker.terminate());
  const [first] = (await once(worker, 'message')) as [{ port: number }];
  const c = dgram.createSocket('udp4');
  t.after(() => c.close());
  c.send('q', first.port, '127.0.0.1');
  const [caught] = (await once(worker, 'message')) as [string];
  assert.equal(caught, 'caught: bug after close');
  // The worker lives on (its uncaughtException handler took the error); its socket must be closed all the same.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const probe = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  t.after(() => probe.close());
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind({ port: first.port, address: '127.0.0.1', exclusive: true }, resolve);
  });
});

test('trimMemory() gives freed C memory back on glibc (src/lib/memory-trim.ts calls it every 30 s)', needsAddon, () => {
  assert.equal(typeof addon.trimMemory, 'function');
  // glibc on every Linux this project builds the addon for; false would mean another C library, where it does nothing.
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
  assert.equal(addon.trimMemory?.(), header.glibcVersionRuntime !== undefined);
});

test('startMemoryTrim() runs an unref\'d timer and stops', async () => {
  const { startMemoryTrim } = await import('../../src/lib/memory-trim.ts');
  const stop = startMemoryTrim(10);
  await new Promise((resolve) => setTimeout(resolve, 30));
  stop();
});
