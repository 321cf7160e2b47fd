// health_check.keep_alive end to end over real sockets: one kept connection per
// target, the retry when the server closed it meanwhile, every case that must
// not keep a connection, and closing kept connections on removal and stop().

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { KeepAliveConnection, runProbe } from '../../src/health/probe.ts';
import { HealthScheduler } from '../../src/health/scheduler.ts';
import { targetKey } from '../../src/health/types.ts';
import type { CheckSpec, ProbeResult } from '../../src/health/types.ts';
import { RecordingSink, captureLogger, listen, makeSpec, testCertificates, named } from './helpers.ts';

type TestContext = import('node:test').TestContext;

/** Counts accepted connections, connections closed, and requests with their Connection header. */
interface Seen {
  connections: number;
  closed: number;
  requests: number;
  connectionHeaders: (string | undefined)[];
  /** Server-side sockets, in accept order. */
  sockets: net.Socket[];
}

function watch(server: net.Server): Seen {
  const seen: Seen = { connections: 0, closed: 0, requests: 0, connectionHeaders: [], sockets: [] };
  server.on('connection', (socket: net.Socket) => {
    seen.connections++;
    seen.sockets.push(socket);
    socket.once('close', () => seen.closed++);
  });
  server.on('request', (req: http.IncomingMessage) => {
    seen.requests++;
    seen.connectionHeaders.push(req.headers.connection);
  });
  return seen;
}

/** An HTTP server that answers 200 "ok" (Content-Length framed) and keeps idle connections for `keepAliveMs`. */
async function keepAliveServer(t: TestContext, keepAliveMs: number, handler?: http.RequestListener) {
  const server = http.createServer(handler ?? ((_req, res) => res.end('ok')));
  server.keepAliveTimeout = keepAliveMs;
  // Node adds this to the advertised timeout before closing (1 s by default); the tests want the exact figure.
  server.keepAliveTimeoutBuffer = 0;
  const seen = watch(server);
  const port = await listen(t, server);
  return { port, seen, server };
}

/** Runs probes one after another on one kept connection. */
async function probeTimes(spec: CheckSpec, kept: KeepAliveConnection, n: number): Promise<ProbeResult[]> {
  const out: ProbeResult[] = [];
  for (let i = 0; i < n; i++) out.push(await runProbe(spec, undefined, kept));
  return out;
}

/** Resolves once `check()` is true, re-checking after every turn of the event loop; rejects after `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

test('keep_alive: five probes use one connection and send five requests with Connection: keep-alive', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000);
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const results = await probeTimes(makeSpec({ port, keepAlive: true }), kept, 5);
  assert.deepEqual(results.map((r) => [r.ok, r.reason]), Array(5).fill([true, '']));
  assert.equal(seen.connections, 1);
  assert.equal(seen.requests, 5);
  assert.deepEqual(seen.connectionHeaders, Array(5).fill('keep-alive'));
  assert.equal(kept.idle, true);
  for (const r of results) assert.ok(r.latencyMs > 0 && r.latencyMs < 2000, `latency ${r.latencyMs}`);
});

test('keep_alive: a chunked response and a body_match both keep the connection', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000, (_req, res) => {
    res.write('all ');
    res.end('systems go');
  });
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const results = await probeTimes(makeSpec({ port, keepAlive: true, bodyMatch: { kind: 'substring', pattern: 'systems go' } }), kept, 3);
  assert.deepEqual(results.map((r) => r.ok), [true, true, true]);
  assert.equal(seen.connections, 1);
  assert.equal(seen.requests, 3);
});

test('keep_alive false (the default): a new connection per probe, each sending Connection: close', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000);
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const results = await probeTimes(makeSpec({ port }), kept, 3);
  assert.deepEqual(results.map((r) => r.ok), [true, true, true]);
  assert.equal(seen.connections, 3);
  assert.deepEqual(seen.connectionHeaders, ['close', 'close', 'close']);
  assert.equal(kept.idle, false);
});

test('keep_alive without a KeepAliveConnection: every probe still uses a fresh connection', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000);
  const spec = makeSpec({ port, keepAlive: true });
  assert.equal((await runProbe(spec)).ok, true);
  assert.equal((await runProbe(spec)).ok, true);
  assert.equal(seen.connections, 2);
  await eventually(() => seen.closed === 2);
});

test('keep_alive: a server that closes idle connections after 50 ms, probed every 200 ms, never fails a check', async (t) => {
  const { port, seen } = await keepAliveServer(t, 50);
  const sink = new RecordingSink();
  const results: ProbeResult[] = [];
  const scheduler = new HealthScheduler({
    sink,
    logger: captureLogger().logger,
    random: () => 0.5,
    observer: (_target, result) => {
      results.push(result);
      sink.emit('result');
    },
  });
  t.after(() => scheduler.stop());
  const spec = makeSpec({ port, keepAlive: true, intervalMs: 200, timeoutMs: 150 });
  scheduler.update([{ key: targetKey(spec), spec, slots: [0], servers: [named('eu/127.0.0.1')] }]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${results.length} results`)), 5000);
    sink.on('result', () => {
      if (results.length < 5) return;
      clearTimeout(timer);
      resolve();
    });
  });
  scheduler.stop();
  assert.deepEqual(results.slice(0, 5).map((r) => [r.ok, r.reason]), Array(5).fill([true, '']));
  assert.equal(scheduler.counters.probes_total.fail, 0);
  // The server closed each connection while it idled, so every probe had to connect.
  assert.ok(seen.connections >= 5, `${seen.connections} connections`);
});

/**
 * A raw HTTP server: connection number i (from 0) runs `plan[i]`, called with
 * the socket and the index of the request on it each time a request arrives.
 */
async function scriptedServer(t: TestContext, plan: ((socket: net.Socket, request: number) => void)[]) {
  let accepted = 0;
  const server = net.createServer((socket) => {
    const step = plan[Math.min(accepted++, plan.length - 1)];
    let requests = 0;
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      while (pending.includes('\r\n\r\n')) {
        pending = pending.slice(pending.indexOf('\r\n\r\n') + 4);
        step(socket, requests++);
      }
    });
    socket.on('error', () => {});
  });
  const port = await listen(t, server);
  return { port, accepted: () => accepted };
}

const OK_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const answerAll = (socket: net.Socket): void => void socket.write(OK_RESPONSE);

for (const how of ['end', 'reset'] as const) {
  test(`keep_alive: a kept connection the server ${how === 'end' ? 'closes' : 'resets'} on the next request is retried once on a fresh one`, async (t) => {
    const { port, accepted } = await scriptedServer(t, [
      (socket, request) => {
        if (request === 0) socket.write(OK_RESPONSE);
        else if (how === 'end') socket.end();
        else socket.resetAndDestroy();
      },
      answerAll,
    ]);
    const kept = new KeepAliveConnection();
    t.after(() => kept.close());
    const results = await probeTimes(makeSpec({ port, keepAlive: true }), kept, 2);
    assert.deepEqual(results.map((r) => [r.ok, r.reason]), [[true, ''], [true, '']]);
    assert.equal(accepted(), 2);
    assert.equal(kept.idle, true);
  });
}

test('keep_alive: when the fresh connection of the retry fails too, the check fails with its reason', async (t) => {
  const { port, accepted } = await scriptedServer(t, [
    (socket, request) => (request === 0 ? socket.write(OK_RESPONSE) : socket.end()),
    (socket) => socket.end(),
  ]);
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const results = await probeTimes(makeSpec({ port, keepAlive: true }), kept, 2);
  assert.deepEqual(results.map((r) => [r.ok, r.reason]), [[true, ''], [false, 'closed']]);
  assert.equal(accepted(), 2);
  assert.equal(kept.idle, false);
});

test('keep_alive: a server answering Connection: close gets a new connection for every probe', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000, (_req, res) => {
    res.setHeader('Connection', 'close');
    res.end('ok');
  });
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const results = await probeTimes(makeSpec({ port, keepAlive: true }), kept, 3);
  assert.deepEqual(results.map((r) => r.ok), [true, true, true]);
  assert.equal(seen.connections, 3);
  assert.equal(kept.idle, false);
});

const notKept: { name: string; response: string }[] = [
  { name: 'a close-delimited response (no length, no chunks)', response: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close' },
  { name: 'an HTTP/1.0 response', response: 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok' },
  { name: 'a response with Connection: close', response: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok' },
  { name: 'a body over 64 KiB', response: `HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n${'b'.repeat(70000)}` },
];
for (const c of notKept) {
  test(`keep_alive: ${c.name} passes but its connection is closed, not kept`, async (t) => {
    // The server never closes on its own: only the prober can end these connections.
    const closedByPeer: Promise<unknown>[] = [];
    const { port, accepted } = await scriptedServer(t, [
      (socket) => {
        // Not events.once: a reset while the server still writes is an 'error', and that would reject it.
        closedByPeer.push(new Promise((resolve) => socket.once('close', resolve)));
        socket.write(c.response);
      },
    ]);
    const kept = new KeepAliveConnection();
    t.after(() => kept.close());
    const results = await probeTimes(makeSpec({ port, keepAlive: true }), kept, 2);
    assert.deepEqual(results.map((r) => [r.ok, r.reason]), [[true, ''], [true, '']]);
    assert.equal(accepted(), 2);
    assert.equal(kept.idle, false);
    await Promise.all(closedByPeer);
  });
}

test('keep_alive: a failed check (status 503) closes the connection', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000, (_req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const results = await probeTimes(makeSpec({ port, keepAlive: true }), kept, 2);
  assert.deepEqual(results.map((r) => r.reason), ['status 503', 'status 503']);
  assert.equal(seen.connections, 2);
  assert.equal(kept.idle, false);
});

test('keep_alive: an idle connection the server resets is dropped without an error, and the next probe connects again', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000);
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const spec = makeSpec({ port, keepAlive: true });
  assert.equal((await runProbe(spec, undefined, kept)).ok, true);
  assert.equal(kept.idle, true);
  seen.sockets[0].resetAndDestroy();
  await eventually(() => !kept.idle);
  assert.equal((await runProbe(spec, undefined, kept)).ok, true);
  assert.equal(seen.connections, 2);
});

test('keep_alive https: the TLS connection is kept and reused', async (t) => {
  const certs = await testCertificates();
  const server = https.createServer({ key: certs.selfSignedKeyPem, cert: certs.selfSignedPem }, (_req, res) => res.end('secure ok'));
  server.keepAliveTimeout = 10_000;
  const seen = watch(server);
  const port = await listen(t, server);
  let handshakes = 0;
  server.on('secureConnection', () => handshakes++);
  const kept = new KeepAliveConnection();
  t.after(() => kept.close());
  const spec = makeSpec({ type: 'https', port, tlsVerify: false, keepAlive: true, bodyMatch: { kind: 'substring', pattern: 'secure ok' } });
  const results = await probeTimes(spec, kept, 4);
  assert.deepEqual(results.map((r) => [r.ok, r.reason]), Array(4).fill([true, '']));
  assert.equal(seen.connections, 1);
  assert.equal(handshakes, 1);
  assert.equal(seen.requests, 4);
  assert.equal(kept.idle, true);
});

test('keep_alive: KeepAliveConnection.close() closes the idle connection and refuses to keep a later one', async (t) => {
  const { port, seen } = await keepAliveServer(t, 10_000);
  const kept = new KeepAliveConnection();
  const spec = makeSpec({ port, keepAlive: true });
  assert.equal((await runProbe(spec, undefined, kept)).ok, true);
  kept.close();
  await eventually(() => seen.closed === 1);
  assert.equal((await runProbe(spec, undefined, kept)).ok, true);
  assert.equal(kept.idle, false);
  await eventually(() => seen.closed === 2);
});

/** Starts a scheduler with one keep-alive target on `port` and waits until its first check left an idle connection. */
async function schedulerWithKeptConnection(t: TestContext, port: number) {
  const sink = new RecordingSink();
  const scheduler = new HealthScheduler({ sink, logger: captureLogger().logger });
  t.after(() => scheduler.stop());
  const spec = makeSpec({ port, keepAlive: true, intervalMs: 60_000 });
  scheduler.update([{ key: targetKey(spec), spec, slots: [3], servers: [named('eu/127.0.0.1')] }]);
  await scheduler.firstRound();
  assert.equal(scheduler.status()[0].state, 'healthy');
  return scheduler;
}

test('keep_alive: removing the target in update() closes its idle connection', async (t) => {
  const { port, seen } = await keepAliveServer(t, 60_000);
  const scheduler = await schedulerWithKeptConnection(t, port);
  assert.deepEqual([seen.connections, seen.closed], [1, 0]);
  scheduler.update([]);
  await eventually(() => seen.closed === 1);
});

test('keep_alive: stop() closes every idle connection', async (t) => {
  const { port, seen } = await keepAliveServer(t, 60_000);
  const scheduler = await schedulerWithKeptConnection(t, port);
  assert.deepEqual([seen.connections, seen.closed], [1, 0]);
  scheduler.stop();
  await eventually(() => seen.closed === 1);
});

test('keep_alive: an idle connection does not keep the process alive', async (t) => {
  const { port, seen } = await keepAliveServer(t, 60_000);
  const probeModule = fileURLToPath(new URL('../../src/health/probe.ts', import.meta.url));
  const helpers = fileURLToPath(new URL('./helpers.ts', import.meta.url));
  // The child probes once, leaves the connection idle and simply returns: it must exit by itself.
  const script = [
    `const { KeepAliveConnection, runProbe } = await import(${JSON.stringify(probeModule)});`,
    `const { makeSpec } = await import(${JSON.stringify(helpers)});`,
    'const kept = new KeepAliveConnection();',
    `const r = await runProbe(makeSpec({ port: ${port}, keepAlive: true }), undefined, kept);`,
    'console.log(JSON.stringify({ ok: r.ok, idle: kept.idle }));',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  t.after(() => clearTimeout(timer));
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  assert.equal(signal, null, 'the child had to be killed: the idle connection kept it alive');
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(out), { ok: true, idle: true });
  assert.equal(seen.connections, 1);
});
