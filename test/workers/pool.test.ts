// The DNS worker pool with real worker threads: a killed worker is restarted
// while the others keep answering; snapshots are swapped between packets;
// per-worker counters add up; a bug caught at the per-packet boundary is
// answered SERVFAIL, counted and logged (rate-limited).

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { HEALTH_HEALTHY, HEALTH_UNKNOWN, readHealth } from '../../src/snapshot/live-slots.ts';
import { parseExposition } from '../metrics/scrape.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { COUNTER, COUNTER_STRIDE } from '../../src/metrics/counters-layout.ts';
import { ask, buildQuery, udpExchange } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';
import { testCertificates } from '../health/helpers.ts';

const yaml = (ttl: number, servers: string[], workers = 2): string => `
dns: { listen_address: "127.0.0.1:0", workers: ${workers}, zones: [example.test] }
regions:
  - name: r
    servers: [${servers.map((a) => `{ address: ${a} }`).join(', ')}]
domains:
  - { name: app.example.test, regions: [r], ttl: ${ttl} }
logging: { level: error }
`;

test('keeps answering while a killed worker is restarted, then serves from every worker again', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1']));
  const pool = overwatch.pool;
  const victim = pool.workers[0]!;
  const restarted = once(pool, 'worker-restarted');
  await victim.terminate();
  // While worker 0 is down (its restart waits ≥ 100 ms), every query is answered by the other.
  const during = await Promise.all(Array.from({ length: 100 }, () => udpExchange(port, buildQuery('app.example.test', 'A'), 1000)));
  assert.equal(during.filter((r) => r === null).length, 0, 'no query was lost while a worker was down');
  const [index] = await restarted;
  assert.equal(index, 0);
  assert.ok(pool.workers.every((w) => w !== null), 'every worker is running again');
  assert.notEqual(pool.workers[0], victim);
  // New source ports spread over both sockets again; every query is answered.
  const after = await Promise.all(Array.from({ length: 100 }, () => udpExchange(port, buildQuery('app.example.test', 'A'), 1000)));
  assert.equal(after.filter((r) => r === null).length, 0);
  assert.equal(pool.restarts, 1);
});

test('restarts a worker that keeps dying with a growing backoff', async (t) => {
  const { overwatch } = await startServer(t, yaml(30, ['192.0.2.1'], 1));
  const delays: number[] = [];
  overwatch.pool.on('worker-exit', (_i: number, _code: number, delay: number) => delays.push(delay));
  for (let i = 0; i < 3; i++) {
    const restarted = once(overwatch.pool, 'worker-restarted');
    await overwatch.pool.workers[0]!.terminate();
    await restarted;
  }
  assert.deepEqual(delays, [100, 200, 400]);
});

test('counts queries per worker in shared memory, and the sums match what was sent', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1']));
  for (let i = 0; i < 40; i++) await ask(port, 'app.example.test', i % 2 === 0 ? 'A' : 'AAAA');
  await ask(port, 'nope.example.test', 'A');
  await ask(port, 'example.com', 'A', {}, 'tcp');
  const c = overwatch.readCounters();
  assert.equal(c.QUERIES, 42);
  assert.equal(c.QTYPE_A, 22);
  assert.equal(c.QTYPE_AAAA, 20);
  assert.equal(c.RCODE_0, 40);
  assert.equal(c.RCODE_3, 1);
  assert.equal(c.RCODE_5, 1);
  assert.equal(c.UDP_QUERIES, 41);
  assert.equal(c.TCP_QUERIES, 1);
  // Each worker writes only its own stride.
  let perWorker = 0;
  for (let w = 0; w < 2; w++) perWorker += Atomics.load(overwatch.counters, w * COUNTER_STRIDE + COUNTER.UDP_QUERIES) + Atomics.load(overwatch.counters, w * COUNTER_STRIDE + COUNTER.TCP_QUERIES);
  assert.equal(perWorker, 42);
});

test('a reload swaps the snapshot on every worker and keeps health for servers that stay', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1', '192.0.2.2']));
  const slot = overwatch.slotOf('r', '192.0.2.2', 80)!;
  overwatch.setHealth(slot, 2);
  const result = await overwatch.reload(parseConfigText(yaml(99, ['192.0.2.2', '192.0.2.1', '192.0.2.3']), 'next.yaml'));
  assert.ok(result.ok, result.message);
  assert.equal(overwatch.generation, 2);
  for (let w = 0; w < 2; w++) assert.equal(Atomics.load(overwatch.counters, w * COUNTER_STRIDE + COUNTER.SNAPSHOT_GENERATION), 2);
  const seen = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const r = await ask(port, 'app.example.test', 'A');
    assert.equal((r.answers![0] as { ttl?: number }).ttl, 99);
    seen.add((r.answers![0] as { data: string }).data);
  }
  assert.equal(overwatch.slotOf('r', '192.0.2.2', 80), slot, 'a server that stays keeps its slot');
  assert.deepEqual([...seen].sort(), ['192.0.2.1', '192.0.2.3'], 'the unhealthy server stays out; the new one is in');
});

test('a reload that outgrows the live slots hands workers a larger buffer without losing state', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1']));
  const capacity = overwatch.live[1];
  const many = Array.from({ length: capacity + 10 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1`);
  const result = await overwatch.reload(parseConfigText(yaml(30, ['192.0.2.1', ...many]), 'big.yaml'));
  assert.ok(result.ok, result.message);
  assert.ok(overwatch.live[1] > capacity, 'capacity grew');
  const last = overwatch.slotOf('r', many.at(-1)!, 80)!;
  assert.ok(last >= capacity);
  // Take every server but one out, through the new live buffer: answers follow.
  for (const a of ['192.0.2.1', ...many.slice(0, -1)]) overwatch.setHealth(overwatch.slotOf('r', a, 80)!, 2);
  for (let i = 0; i < 10; i++) {
    const r = await ask(port, 'app.example.test', 'A');
    assert.equal((r.answers![0] as { data: string }).data, many.at(-1));
  }
});

test('a reload that needs a restart is refused and the old snapshot keeps serving', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1']));
  const result = await overwatch.reload(parseConfigText(yaml(99, ['192.0.2.1'], 3), 'workers.yaml'));
  assert.equal(result.ok, false);
  assert.match(result.message, /dns\.workers changed from 2 to 3; .*restart/);
  assert.equal(overwatch.generation, 1);
  assert.equal(((await ask(port, "app.example.test", "A")).answers![0] as { ttl?: number }).ttl, 30);
});

test('a reload is refused when the file dns.cookies.secret_file names holds a new secret, or when api.tls is turned on, and a bad secret file is named', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-reload-refusals-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'cookie.secret');
  await writeFile(secretFile, '00112233445566778899aabbccddeeff\n', { mode: 0o600 });
  const certs = await testCertificates();
  await writeFile(join(dir, 'api.pem'), certs.leafPem);
  await writeFile(join(dir, 'api.key'), certs.leafKeyPem, { mode: 0o600 });
  const text = (tls: boolean): string => yaml(30, ['192.0.2.1'], 1)
    .replace('zones: [example.test] }', `zones: [example.test], cookies: { secret_file: "${secretFile}" } }`)
    .replace('logging:', `api: { enabled: true, address: "127.0.0.1:0"${tls ? `, tls: { cert_file: "${join(dir, 'api.pem')}", key_file: "${join(dir, 'api.key')}" }` : ''} }\nlogging:`);
  const { overwatch } = await startServer(t, text(false), join(dir, 'refusals.yaml'));
  const reload = (tls = false) => overwatch.reload(parseConfigText(text(tls), join(dir, 'refusals.yaml')));
  // The same file, the same secret: taken.
  assert.equal((await reload()).ok, true);
  await writeFile(secretFile, 'ffeeddccbbaa99887766554433221100\n', { mode: 0o600 });
  let result = await reload();
  assert.equal(result.ok, false);
  assert.equal(result.message, `the secret in dns.cookies.secret_file (${secretFile}) changed; the cookie secret is fixed when the workers start, so this needs a restart`);
  await writeFile(secretFile, 'not a secret\n', { mode: 0o600 });
  result = await reload();
  assert.match(result.message, /dns\.cookies\.secret_file: .*cookie\.secret does not start with 32 hexadecimal digits/);
  await writeFile(secretFile, '00112233445566778899aabbccddeeff\n', { mode: 0o600 });
  result = await reload(true);
  assert.equal(result.ok, false);
  assert.equal(result.message, 'api.tls turned on; the API listener\'s scheme is fixed at start, so this needs a restart');
  assert.equal((await reload()).ok, true, 'back as it started: taken');
});

test('keeps retrying a restart whose bind fails, and recovers once the port is free', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1'], 1));
  const pool = overwatch.pool;
  const errors: unknown[] = [];
  pool.on('worker-error', (_i: number, err: unknown) => errors.push(err));
  const exited = once(pool, 'worker-exit');
  await pool.workers[0]!.terminate();
  await exited;
  // The only worker is gone, so the port is free: take it without reusePort
  // so the restart's bind fails with EADDRINUSE.
  const { createSocket } = await import('node:dgram');
  const squatter = createSocket('udp4');
  await new Promise<void>((resolve) => squatter.bind(port, '127.0.0.1', () => resolve()));
  while (errors.length === 0) await once(pool, 'worker-error');
  assert.match(String((errors[0] as Error).message), /EADDRINUSE/);
  const restarted = once(pool, 'worker-restarted');
  squatter.close();
  await restarted;
  const r = await ask(port, 'app.example.test', 'A');
  assert.equal(r.rcode, 'NOERROR');
});

test('a worker terminated in the middle of a UDP flood (a batch in flight) is restarted and the process keeps serving', async (t) => {
  const { overwatch, port } = await startServer(t, yaml(30, ['192.0.2.1'], 1));
  const pool = overwatch.pool;
  const path = pool.udpIo[0]!.path;
  t.diagnostic(`UDP path: ${path} (${pool.udpIo[0]!.reason})`);
  const { createSocket } = await import('node:dgram');
  const senders = Array.from({ length: 4 }, () => createSocket('udp4'));
  t.after(() => {
    for (const s of senders) s.close();
  });
  const query = buildQuery('app.example.test', 'A');
  let flooding = true;
  const flood = (): void => {
    if (!flooding) return;
    for (const s of senders) for (let i = 0; i < 50; i++) s.send(query, port, '127.0.0.1');
    setImmediate(flood);
  };
  flood();
  // The worker is busy answering batches once thousands have been counted.
  const counted = (): number => Atomics.load(overwatch.counters, COUNTER.UDP_QUERIES);
  while (counted() < 5000) await new Promise((resolve) => setTimeout(resolve, 5));
  const restarted = once(pool, 'worker-restarted');
  await pool.workers[0]!.terminate();
  flooding = false;
  await restarted;
  assert.equal(pool.restarts, 1);
  assert.equal(pool.udpIo[0]!.path, path, 'the restarted worker answers on the same path');
  const r = await ask(port, 'app.example.test', 'A');
  assert.equal(r.rcode, 'NOERROR');
});

test('an exception inside a query is answered SERVFAIL, counted, and logged with its error once per 10 s per worker, on UDP and TCP', async (t) => {
  const { overwatch, port, logs } = await startServer(t, yaml(30, ['192.0.2.1'], 1));
  const worker = overwatch.pool.workers[0]!;
  // A bug the worker cannot know about: the zone's signer claims algorithm 13
  // (ECDSA P-256) but holds an Ed25519 key, so signing an answer throws.
  const bad = { signerWire: nameToWire('example.test'), keyTag: 4242, algorithm: 13, privateKey: generateKeyPairSync('ed25519').privateKey };
  /** Sends the worker the snapshot with the bad signer and resolves at its 'attached', the next message it posts after the packets before. */
  const attach = (): Promise<void> => {
    const attached = new Promise<void>((resolve) => {
      const onMessage = (m: { type: string }): void => {
        if (m.type !== 'attached') return;
        worker.off('message', onMessage);
        resolve();
      };
      worker.on('message', onMessage);
    });
    worker.postMessage({ type: 'snapshot', buffer: overwatch.snapshot.buffer, live: overwatch.live, generation: overwatch.generation, dnssec: { zones: [{ data: [bad], dnskey: [bad] }], validitySec: 3600 } });
    return attached;
  };
  await attach();
  const before = overwatch.readCounters().EXCEPTIONS;
  const reply = await ask(port, 'app.example.test', 'A', { edns: { do: true } });
  assert.equal(reply.rcode, 'SERVFAIL');
  assert.equal(reply.answers?.length ?? 0, 0);
  const logged = (): string[] => logs.filter((l) => l.includes('DNS worker caught an exception'));
  // The worker posts a report while it handles the packet (workers/dns-worker.ts,
  // onException), and its messages arrive in order: once its 'attached' for a
  // snapshot sent after the replies came in, every report of those packets is
  // logged (the pool logs it in its own 'message' listener). No sleep: a wait
  // that can only prove a report absent would have to guess how long.
  await attach();
  const [line] = logged();
  assert.ok(line, `no report was logged: ${JSON.stringify(logs)}`);
  const entry = JSON.parse(line) as { level: number | string; worker: number; where: string; err: string; stack: string; unreported: number; msg: string };
  assert.equal(entry.worker, 0);
  assert.equal(entry.where, 'udp');
  assert.match(entry.msg, /answering over UDP \(the query got SERVFAIL\)/);
  assert.ok(entry.err.length > 0 && entry.stack.includes('at '), line);
  assert.equal(entry.unreported, 0);
  // More of the same within 10 s, over TCP too: each answered and counted, none logged.
  assert.equal((await ask(port, 'app.example.test', 'AAAA', { edns: { do: true } }, 'tcp')).rcode, 'SERVFAIL');
  assert.equal((await ask(port, 'app.example.test', 'A', { edns: { do: true } })).rcode, 'SERVFAIL');
  assert.equal(overwatch.readCounters().EXCEPTIONS - before, 3);
  await attach();
  assert.equal(logged().length, 1, 'one report in 10 s');
  // Without DO nothing is signed: answered as usual by the same worker.
  assert.equal((await ask(port, 'app.example.test', 'A')).rcode, 'NOERROR');
});

/** Collects a logger's JSON lines. */
function capture(): { logs: { level: string | number; msg: string; [k: string]: unknown }[]; logger: ReturnType<typeof createLogger> } {
  const logs: { level: string | number; msg: string; [k: string]: unknown }[] = [];
  const logger = createLogger({ level: 'info', format: 'json' }, new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') logs.push(JSON.parse(l) as { level: string | number; msg: string });
      done();
    },
  }));
  return { logs, logger };
}

/** Blocks worker `index` (Atomics.wait) until the test ends or the returned function is called. */
function hold(t: { after: (fn: () => void) => void }, ow: Overwatch, index: number): () => void {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const open = (): void => {
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
  };
  t.after(open);
  ow.pool.holdWorker(index, gate);
  return open;
}

const isError = (level: string | number): boolean => level === 'error' || level === 50;

// The three watchdog tests mostly wait for a deadline to pass (3 s, 3 s and
// 4 s, then the watchdog's next look). Each has its own overwatch, workers and
// ports, and what one holds blocks only its own worker, so their waits run
// side by side; the flood below runs alone, after them, since it loads both cores.
describe('the watchdog of hung DNS workers', { concurrency: true }, () => {
  it('a worker that hangs while nothing is reloaded (its heartbeat stops) is terminated at the deadline, logged at error with the reason, counted, and restarted; the other is left alone', async (t) => {
    const { logs, logger } = capture();
    const DEADLINE_MS = 3000;
    const ow = await Overwatch.start(parseConfigText(yaml(30, ['192.0.2.1']), 'hang.yaml'), logger, { healthChecks: 'off', workerSwitchDeadlineMs: DEADLINE_MS });
    t.after(() => ow.stop(200));
    const metrics = createMetrics({ version: 'test', loadedAtMs: 0, overwatch: ow, processMetrics: false });
    const [healthy, hung] = ow.pool.workers;
    const stuck = once(ow.pool, 'worker-stuck');
    const restarted = once(ow.pool, 'worker-restarted');
    const heldAt = performance.now();
    // No reload, no message it would have to confirm: only its heartbeat can tell.
    hold(t, ow, 1);
    const [index, info] = (await stuck) as [number, { reason: string; silentMs: number; generation: number | null; waitedMs: number | null }];
    const elapsed = performance.now() - heldAt;
    assert.equal(index, 1);
    assert.deepEqual([info.reason, info.generation, info.waitedMs], ['heartbeat', null, null]);
    assert.ok(info.silentMs >= DEADLINE_MS && info.silentMs < DEADLINE_MS + 1500, `silent ${info.silentMs} ms`);
    // The last heartbeat came at most 500 ms before the hold; the watchdog looks every second.
    assert.ok(elapsed >= DEADLINE_MS - 600 && elapsed < DEADLINE_MS + 2500, `terminated ${elapsed.toFixed(0)} ms after the hold`);
    const line = logs.find((l) => /is hung/.test(l.msg));
    assert.ok(line, JSON.stringify(logs));
    assert.ok(isError(line.level), `logged at error: ${JSON.stringify(line)}`);
    assert.deepEqual([line.worker, line.reason, line.silentMs, line.generation], [1, 'heartbeat', info.silentMs, null]);
    assert.equal(line.msg, `DNS worker 1 is hung: its event loop has not turned for ${info.silentMs} ms (no heartbeat; deadline 3000 ms); terminating it, it is restarted on the newest snapshot`);
    await restarted;
    assert.notEqual(ow.pool.workers[1], hung);
    assert.equal(ow.pool.workers[0], healthy, 'the worker whose heartbeat moved is left alone');
    const exposition = parseExposition(await metrics.registry.metrics());
    assert.equal(exposition.value('opengslb_dns_worker_stuck_total', { reason: 'heartbeat' }), 1);
    assert.equal(exposition.value('opengslb_dns_worker_stuck_total', { reason: 'switch' }), 0);
    assert.equal(exposition.value('opengslb_dns_worker_restarts_total'), 1);
    // Both workers answer again (new source ports spread over both sockets).
    const answers = await Promise.all(Array.from({ length: 40 }, () => udpExchange(ow.port, buildQuery('app.example.test', 'A'), 1000)));
    assert.equal(answers.filter((r) => r === null).length, 0, 'every query is answered');
  });

  it('a worker that never confirms a snapshot is terminated at the switch deadline, logged at error and counted, restarted on the newest snapshot, and the slots it held are freed', async (t) => {
    const { logs, logger } = capture();
    // Longer than the 2 s a reload waits, so the reload still names the worker.
    const DEADLINE_MS = 3000;
    const ow = await Overwatch.start(parseConfigText(yaml(30, ['192.0.2.1', '192.0.2.2']), 'stuck.yaml'), logger, { healthChecks: 'off', workerSwitchDeadlineMs: DEADLINE_MS });
    t.after(() => ow.stop(200));
    const metrics = createMetrics({ version: 'test', loadedAtMs: 0, overwatch: ow, processMetrics: false });
    const removed = ow.slotOf('r', '192.0.2.2', 80)!;
    const [healthy, hung] = ow.pool.workers;
    // Worker 1 handles no message (no snapshot, no stop) and no packet until the gate opens, which only t.after does;
    // its heartbeat is kept moving from here, as if its event loop turned: only the unconfirmed snapshot can tell.
    hold(t, ow, 1);
    const beating = setInterval(() => Atomics.add(ow.counters, COUNTER_STRIDE + COUNTER.HEARTBEAT, 1), 200);
    t.after(() => clearInterval(beating));
    const stuck = once(ow.pool, 'worker-stuck');
    const restarted = once(ow.pool, 'worker-restarted');
    const sentAt = performance.now();
    const result = await ow.reload(parseConfigText(yaml(30, ['192.0.2.1']), 'stuck.yaml'));
    assert.equal(result.ok, true, result.message);
    assert.equal(result.message, 'serving generation 2 (workers 1 had not confirmed the switch within 2 s; a worker that has not within 3 s is restarted)');
    assert.equal(readHealth(ow.live, removed), HEALTH_HEALTHY, 'the hung worker may still read the removed server\'s slot');
    // Another reload while it hangs: the deadline runs from the first snapshot it left unconfirmed, not the newest.
    const second = ow.reload(parseConfigText(yaml(31, ['192.0.2.1']), 'stuck.yaml'));

    const [index, info] = (await stuck) as [number, { reason: string; silentMs: number; generation: number | null; waitedMs: number }];
    const elapsed = performance.now() - sentAt;
    clearInterval(beating);
    assert.deepEqual([index, info.reason, info.generation], [1, 'switch', 3]);
    assert.ok(info.silentMs < DEADLINE_MS, `its heartbeat moved (${info.silentMs} ms)`);
    assert.ok(info.waitedMs >= DEADLINE_MS && info.waitedMs < DEADLINE_MS + 1500, `waited ${info.waitedMs} ms`);
    assert.ok(elapsed >= DEADLINE_MS - 5, `terminated ${elapsed.toFixed(0)} ms after the publish, not before the deadline`);
    const line = logs.find((l) => /confirmed no new snapshot/.test(l.msg));
    assert.ok(line, JSON.stringify(logs));
    assert.ok(isError(line.level), `logged at error: ${JSON.stringify(line)}`);
    assert.deepEqual([line.worker, line.reason, line.generation, line.waitedMs], [1, 'switch', 3, info.waitedMs]);
    assert.equal(line.msg, `DNS worker 1 confirmed no new snapshot for ${info.waitedMs} ms (deadline 3000 ms, waiting for generation 3); terminating it, it is restarted on the newest snapshot`);
    assert.equal((await second).ok, true);

    // Gone, it holds nothing: the released slot is reset, and the worker comes back on generation 3.
    for (let i = 0; readHealth(ow.live, removed) !== HEALTH_UNKNOWN; i++) {
      assert.ok(i < 100, 'the released slot is reset once the hung worker is gone');
      await new Promise((r) => setTimeout(r, 20));
    }
    await restarted;
    assert.notEqual(ow.pool.workers[1], hung);
    assert.equal(ow.pool.workers[0], healthy, 'the worker that switched in time is left alone');
    assert.equal(Atomics.load(ow.counters, COUNTER_STRIDE + COUNTER.SNAPSHOT_GENERATION), 3);
    const exposition = parseExposition(await metrics.registry.metrics());
    assert.equal(exposition.value('opengslb_dns_worker_stuck_total', { reason: 'switch' }), 1);
    assert.equal(exposition.value('opengslb_dns_worker_stuck_total', { reason: 'heartbeat' }), 0);
    assert.equal(exposition.value('opengslb_dns_worker_restarts_total'), 1);
    for (let i = 0; i < 20; i++) assert.deepEqual(((await ask(ow.port, 'app.example.test', 'A')).answers ?? []).map((a) => (a as { data: string }).data), ['192.0.2.1']);
  });

  it('a worker held up for less than the deadline is not terminated, neither for its heartbeat nor for the snapshot it confirms late', async (t) => {
    const ow = await Overwatch.start(parseConfigText(yaml(30, ['192.0.2.1', '192.0.2.2']), 'slow.yaml'), createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() })), { healthChecks: 'off', workerSwitchDeadlineMs: 4000 });
    t.after(() => ow.stop(200));
    const held = ow.pool.workers[0];
    const release = hold(t, ow, 0);
    let stuck = 0;
    ow.pool.on('worker-stuck', () => stuck++);
    const reload = ow.reload(parseConfigText(yaml(30, ['192.0.2.1']), 'slow.yaml'));
    // Released before the deadline (with the 500 ms between two heartbeats): it confirms late, and is left alone.
    await new Promise((r) => setTimeout(r, 2500));
    release();
    assert.match((await reload).message, /workers 0 had not confirmed the switch within 2 s/);
    assert.equal((await ow.reload(parseConfigText(yaml(31, ['192.0.2.1']), 'slow.yaml'))).message, 'serving generation 3');
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(stuck, 0);
    assert.equal(ow.pool.workers[0], held);
    assert.deepEqual(ow.pool.stuck, { heartbeat: 0, switch: 0 });
  });
});

test('no worker is taken for hung while a flood from another process keeps both busy on this 2-core machine', async (t) => {
  const ow = await Overwatch.start(parseConfigText(yaml(30, ['192.0.2.1']), 'flood.yaml'), createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() })), { healthChecks: 'off', workerSwitchDeadlineMs: 2000 });
  t.after(() => ow.stop(200));
  const workers = [...ow.pool.workers];
  let stuck = 0;
  ow.pool.on('worker-stuck', () => stuck++);
  const beats = (): number[] => [0, 1].map((w) => Atomics.load(ow.counters, w * COUNTER_STRIDE + COUNTER.HEARTBEAT));
  const before = beats();
  const udpBefore = Atomics.load(ow.counters, COUNTER.UDP_QUERIES) + Atomics.load(ow.counters, COUNTER_STRIDE + COUNTER.UDP_QUERIES);
  // Four processes, each sending as fast as its loop turns from many source ports, for 4 s: two deadlines,
  // so the watchdog looks at least once with a whole deadline of flood behind it (a look every second).
  // Heartbeats of each worker over the flood and the 1.5 s after it, measured: 15–16 with 6 s of flood,
  // 11–13 with 4 s at load average 15–18 (8 are asked for below).
  const { spawn } = await import('node:child_process');
  const script = `
    const dgram = require('node:dgram');
    const q = Buffer.from(process.argv[1], 'hex');
    const socks = Array.from({ length: 8 }, () => dgram.createSocket('udp4'));
    const end = Date.now() + 4000;
    const go = () => { if (Date.now() > end) { for (const s of socks) s.close(); return; } for (const s of socks) for (let i = 0; i < 40; i++) s.send(q, ${ow.port}, '127.0.0.1'); setImmediate(go); };
    go();`;
  const floods = Array.from({ length: 4 }, () => spawn(process.execPath, ['-e', script, Buffer.from(buildQuery('app.example.test', 'A')).toString('hex')], { stdio: 'ignore' }));
  t.after(() => {
    for (const f of floods) if (f.exitCode === null) f.kill();
  });
  await Promise.all(floods.map((f) => once(f, 'exit')));
  await new Promise((r) => setTimeout(r, 1500));
  const answered = Atomics.load(ow.counters, COUNTER.UDP_QUERIES) + Atomics.load(ow.counters, COUNTER_STRIDE + COUNTER.UDP_QUERIES) - udpBefore;
  t.diagnostic(`queries counted during the flood: ${answered}`);
  assert.ok(answered > 10_000, `the workers were busy: ${answered} queries`);
  const after = beats();
  assert.ok(after[0] - before[0] >= 8 && after[1] - before[1] >= 8, `both heartbeats moved during the flood: ${before} → ${after}`);
  assert.equal(stuck, 0);
  assert.deepEqual(ow.pool.workers, workers, 'no worker was restarted');
});
