// Test worker: counts TCP connections in the shared per-client table as fast
// as it can, in column `index`, from a start signal: acquire a connection of
// one of `clients` addresses, hold it while checking that the holders of
// that client never number more than the cap, release it. Mode 'run' stops
// after `ms` and reports; mode 'hold' keeps what it holds and never stops
// (the test kills it).

import { parentPort, workerData } from 'node:worker_threads';
import { type TcpClientShared, TcpClientTable } from '../../src/dns/tcp-clients.ts';

const { table, index, ms, go, held, mode, clients } = workerData as {
  table: TcpClientShared;
  index: number;
  ms: number;
  go: Int32Array;
  /** Per client: connections held right now, by every thread (counted after acquire, before release). */
  held: Int32Array;
  mode: 'run' | 'hold';
  clients: readonly string[];
};
const t = new TcpClientTable(table, index);
Atomics.wait(go, 0, 0);
const end = Date.now() + ms;
let acquired = 0;
let refused = 0;
let uncounted = 0;
let worst = 0;
const mine: { slot: number; client: number }[] = [];
let n = index;
while (mode === 'hold' || Date.now() < end) {
  for (let i = 0; i < 64; i++) {
    // A worker does other work between two accepts (a few microseconds at the least): without it the
    // thread that just released the lock takes it again before a waiter wakes, for as long as it loops.
    const until = performance.now() + 0.005;
    while (performance.now() < until);
    const client = n++ % clients.length;
    const slot = t.acquire(clients[client]);
    if (slot === -1) {
      refused++;
    } else if (slot < 0) {
      uncounted++;
    } else {
      acquired++;
      const now = Atomics.add(held, client, 1) + 1;
      if (now > worst) worst = now;
      mine.push({ slot, client });
    }
    // Keep a few, release the oldest: connections come and go.
    if (mine.length > 6 || (mode === 'run' && mine.length > 0 && (n & 1) === 0)) {
      const c = mine.shift() as { slot: number; client: number };
      Atomics.sub(held, c.client, 1);
      t.release(c.slot);
    }
  }
  if (mode === 'hold') parentPort?.postMessage({ acquired });
}
for (const c of mine) {
  Atomics.sub(held, c.client, 1);
  t.release(c.slot);
}
parentPort?.postMessage({ acquired, refused, uncounted, worst });
