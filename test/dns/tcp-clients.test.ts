// The per-client TCP connection table all DNS workers share
// (src/dns/tcp-clients.ts): keys by client network, a strict cap across
// threads, no false sharing between clients, and a dead worker's counts
// reclaimed.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import {
  CLIENT_REFUSED,
  CLIENT_UNCOUNTED,
  KEY_WORDS,
  clientKeyInto,
  createTcpClientTable,
  reclaimColumn,
  TCP_CLIENT_MAX_SLOTS,
  TcpClientTable,
  tcpClientSlotsFor,
  tcpClientTableBytes,
  WINDOW,
} from '../../src/dns/tcp-clients.ts';
import { createWorker } from '../../src/lib/worker-thread.ts';
import { raceWorkers } from '../helpers/race-workers.ts';

const table = (workers: number, maxPerClient: number, v4 = 32, v6 = 64, slots?: number) =>
  createTcpClientTable({ workers, maxConnectionsPerWorker: 256, maxPerClient, ipv4PrefixLength: v4, ipv6PrefixLength: v6, ...(slots === undefined ? {} : { slots }) });

const keyOf = (address: string, v4 = 32, v6 = 64): number[] | null => {
  const out = new Int32Array(5);
  return clientKeyInto(address, v4, v6, out) ? [...out] : null;
};

/** Every slot's TOTAL is the sum of the workers' columns. */
function assertConsistent(t: ReturnType<typeof table>): void {
  for (let s = 0; s < t.slots; s++) {
    let sum = 0;
    for (let w = 0; w < t.workers; w++) sum += t.counts[w * t.slots + s];
    assert.equal(t.keys[s * KEY_WORDS + 5], sum, `slot ${s}`);
  }
}

test('a client is its IPv4 address or IPv6 /64 by default, or the network of the configured prefix length', () => {
  assert.deepEqual(keyOf('192.0.2.7'), [4, (0xc0000207 | 0), 0, 0, 0]);
  assert.deepEqual(keyOf('::ffff:192.0.2.7'), keyOf('192.0.2.7'), 'an IPv4-mapped address is its IPv4 address');
  assert.notDeepEqual(keyOf('192.0.2.7'), keyOf('192.0.2.8'));
  assert.deepEqual(keyOf('192.0.2.7', 24), keyOf('192.0.2.200', 24));
  assert.notDeepEqual(keyOf('192.0.2.7', 24), keyOf('192.0.3.7', 24));
  assert.deepEqual(keyOf('198.51.100.1', 0), keyOf('203.0.113.9', 0), 'prefix 0: every IPv4 client is one');
  assert.deepEqual(keyOf('2001:db8:1:2:3:4:5:6'), keyOf('2001:db8:1:2::9'));
  assert.notDeepEqual(keyOf('2001:db8:1:2::9'), keyOf('2001:db8:1:3::9'));
  assert.deepEqual(keyOf('2001:db8:1:2::9', 32, 48), keyOf('2001:db8:1:ff::9', 32, 48));
  assert.notDeepEqual(keyOf('2001:db8::1', 32, 128), keyOf('2001:db8::2', 32, 128));
  assert.deepEqual(keyOf('2001:db8::1', 32, 127), keyOf('2001:db8::0', 32, 127));
  assert.notDeepEqual(keyOf('::c000:207', 32, 128), keyOf('192.0.2.7', 32, 128), 'an IPv6 address is never an IPv4 one');
  assert.equal(keyOf(''), null);
  assert.equal(keyOf('not an address'), null);
});

test('the cap holds for a client across workers; other clients are counted apart', () => {
  const t = table(2, 3);
  const w0 = new TcpClientTable(t, 0);
  const w1 = new TcpClientTable(t, 1);
  const a = [w0.acquire('192.0.2.1'), w1.acquire('192.0.2.1'), w0.acquire('192.0.2.1')];
  assert.ok(a.every((s) => s >= 0));
  assert.equal(w1.acquire('192.0.2.1'), CLIENT_REFUSED);
  assert.equal(w0.acquire('::ffff:192.0.2.1'), CLIENT_REFUSED, 'the same client over an IPv4-mapped address');
  assert.ok(w1.acquire('192.0.2.2') >= 0, 'another address has a cap of its own');
  assert.equal(w0.countOf('192.0.2.1'), 3);
  w1.release(a[1]);
  const again = w1.acquire('192.0.2.1');
  assert.ok(again >= 0, 'a place freed by one worker is taken by another');
  assert.equal(w0.countOf('192.0.2.1'), 3);
  assert.equal(w0.acquire('garbage'), CLIENT_UNCOUNTED);
  assertConsistent(t);
});

test('many clients whose windows overlap never share a count', () => {
  // The smallest table, nearly a quarter full: windows overlap everywhere.
  const t = table(1, 1, 32, 64, 1024);
  const w = new TcpClientTable(t, 0);
  const slots = new Set<number>();
  for (let i = 0; i < 250; i++) {
    const s = w.acquire(`10.0.${i >> 8}.${i & 0xff}`);
    assert.ok(s >= 0, `client ${i} is counted`);
    assert.ok(!slots.has(s));
    slots.add(s);
  }
  for (let i = 0; i < 250; i++) assert.equal(w.acquire(`10.0.${i >> 8}.${i & 0xff}`), CLIENT_REFUSED, `client ${i} is at its cap of 1`);
  for (const s of slots) w.release(s);
  for (let i = 0; i < 250; i++) assert.equal(w.countOf(`10.0.${i >> 8}.${i & 0xff}`), 0);
  assertConsistent(t);
});

test('a full window is counted nowhere rather than refused', () => {
  const t = table(1, 1, 32, 64, 64);
  const w = new TcpClientTable(t, 0);
  for (let i = 0; i < WINDOW; i++) assert.ok(w.acquire(`10.1.0.${i}`) >= 0);
  assert.equal(w.acquire('10.1.1.1'), CLIENT_UNCOUNTED);
});

test('the table is sized for four times the connections all workers can hold, within bounds', () => {
  assert.equal(tcpClientSlotsFor(1, 4), 1024);
  assert.equal(tcpClientSlotsFor(8, 256), 8192);
  assert.equal(tcpClientSlotsFor(64, 65535), TCP_CLIENT_MAX_SLOTS);
  assert.equal(tcpClientTableBytes(8192, 8), (16 + 8) * 4 + 8192 * 24 + 8192 * 8 * 2);
});

test('a dead worker\'s counts are reclaimed, even when it died holding the lock', () => {
  const t = table(2, 4);
  const w0 = new TcpClientTable(t, 0);
  const w1 = new TcpClientTable(t, 1);
  for (let i = 0; i < 4; i++) assert.ok(w0.acquire('192.0.2.1') >= 0);
  const mine = w1.acquire('192.0.2.9');
  assert.equal(w1.acquire('192.0.2.1'), CLIENT_REFUSED);
  // Worker 0 "dies" holding the lock halfway through a change: its column
  // raised, the total not yet, and the slot named in its INTENT.
  const slot = w0.acquire('192.0.2.7');
  Atomics.store(t.header, 0, 1);
  t.header[16] = slot;
  t.counts[slot] += 1;
  assert.equal(reclaimColumn(t, 0), true);
  assert.equal(Atomics.load(t.header, 0), 0, 'the lock is free again');
  assert.equal(w1.countOf('192.0.2.1'), 0);
  assert.equal(w1.countOf('192.0.2.7'), 0);
  assert.equal(w1.countOf('192.0.2.9'), 1, 'the live worker keeps its own');
  assertConsistent(t);
  for (let i = 0; i < 4; i++) assert.ok(w1.acquire('192.0.2.1') >= 0);
  w1.release(mine);
  // A live worker holding the lock: reclaiming waits.
  Atomics.store(t.header, 0, 2);
  assert.equal(reclaimColumn(t, 0), false);
  Atomics.store(t.header, 0, 0);
});

test('four threads counting the same few clients at once never hold more than the cap, and leave the table empty', async () => {
  const cap = 3;
  const clients = ['192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8::2'];
  const t = table(4, cap);
  const held = new Int32Array(new SharedArrayBuffer(4 * clients.length));
  const all = await raceWorkers<{ acquired: number; refused: number; uncounted: number; worst: number }>(
    new URL('./tcp-clients-worker.ts', import.meta.url),
    [0, 1, 2, 3].map((index) => ({ table: t, index, ms: 800, held, mode: 'run', clients })),
  );
  const worst = Math.max(...all.map((r) => r.worst));
  assert.ok(all.reduce((a, r) => a + r.acquired, 0) > 2_000, `the threads raced (${JSON.stringify(all)})`);
  assert.ok(all.reduce((a, r) => a + r.refused, 0) > 0, 'some were refused at the cap');
  assert.equal(all.reduce((a, r) => a + r.uncounted, 0), 0, 'none went uncounted');
  assert.ok(worst <= cap, `at most ${cap} held at once, saw ${worst}`);
  const view = new TcpClientTable(t, 0);
  for (const c of clients) assert.equal(view.countOf(c), 0);
  assertConsistent(t);
});

test('threads killed while counting leave nothing behind once their columns are reclaimed', async () => {
  const clients = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];
  const t = table(3, 64);
  const go = new Int32Array(new SharedArrayBuffer(4));
  const held = new Int32Array(new SharedArrayBuffer(4 * clients.length));
  for (let round = 0; round < 3; round++) {
    const workers = [0, 1].map((index) =>
      createWorker(new URL('./tcp-clients-worker.ts', import.meta.url), { workerData: { table: t, index, ms: 0, go, held, mode: 'hold', clients } }),
    );
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    // Let them count for a while, then kill them wherever they are (inside the lock or not).
    await Promise.all(workers.map((w) => once(w, 'message')));
    await new Promise((r) => setTimeout(r, 20 + round * 15));
    for (const [index, w] of workers.entries()) {
      const exited = once(w, 'exit');
      await w.terminate();
      await exited;
      while (!reclaimColumn(t, index)) await new Promise((r) => setTimeout(r, 1));
    }
    held.fill(0);
    assertConsistent(t);
    const view = new TcpClientTable(t, 2);
    for (const c of clients) assert.equal(view.countOf(c), 0, `round ${round}: ${c}`);
  }
});
