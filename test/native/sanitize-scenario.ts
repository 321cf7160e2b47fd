// Test fixture, run by sanitize.test.ts in a child Node with AddressSanitizer
// and UndefinedBehaviorSanitizer preloaded, on the addon built with them
// (process.argv[2]). Drives every path of udp_batch.c that touches memory:
// datagrams from 0 bytes to the largest IPv4 and IPv6 payloads, echoed whole;
// close() inside onBatch; close() and stats() on handles closed turns ago and
// after their state could have been reused; handles garbage collected open
// and closed; a worker terminated inside a batch. Prints "done" at the end;
// a sanitizer report makes the child exit non-zero with the report on stderr.

import dgram from 'node:dgram';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { loadUdpBatch, META_BYTES, META_RX_LEN, META_TX_LEN, openBatchSocket, type BatchSocket } from '../../native/udp-batch.ts';

const file = process.argv[2]!;
const loaded = loadUdpBatch([file]);
if (loaded.addon === null) throw new Error(loaded.reason);
const addon = loaded.addon;
const W = META_BYTES / 4;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const gc = (globalThis as { gc?: () => void }).gc!;

/** Sends each size from a udp4 / udp6 client to the socket and waits for as many echoes. */
async function echoes(port: number, type: 'udp4' | 'udp6', host: string, sizes: number[]): Promise<number[]> {
  const c = dgram.createSocket(type);
  const got: number[] = [];
  c.on('message', (m) => got.push(m.length));
  await new Promise<void>((resolve) => c.bind(0, host, resolve));
  for (const n of sizes) c.send(Buffer.alloc(n, 0x5a), port, host);
  const want = sizes.filter((n) => n > 0).length;
  for (let i = 0; i < 200 && got.length < want; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  c.close();
  return got.sort((a, b) => a - b);
}

// Echo every datagram whole: the largest payloads fill rx and tx slots to their last byte.
let echo: BatchSocket | null = null;
echo = openBatchSocket(addon, { host: '::', port: 0, receiveBuffer: 4 << 20, batch: 8 }, (count) => {
  const s = echo!;
  for (let i = 0; i < count; i++) {
    const len = s.meta[i * W + META_RX_LEN];
    s.tx[i].set(s.rx[i].subarray(0, len));
    s.meta[i * W + META_TX_LEN] = len;
  }
});
const v4 = await echoes(echo.port, 'udp4', '127.0.0.1', [0, 1, 12, 512, 65507]);
const v6 = await echoes(echo.port, 'udp6', '::1', [0, 12, 65527]);
if (JSON.stringify(v4) !== '[1,12,512,65507]' || JSON.stringify(v6) !== '[12,65527]') throw new Error(`echoes ${JSON.stringify({ v4, v6 })}`);
echo.close();

// close() inside onBatch, then the same handle again, turns later.
let inside: BatchSocket | null = null;
const closedInside = Promise.withResolvers<void>();
inside = openBatchSocket(addon, { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 4 }, () => {
  addon.close(inside!.handle);
  closedInside.resolve();
});
await echoes(inside.port, 'udp4', '127.0.0.1', [1]);
await closedInside.promise;

// Handles used after their socket closed and its state could have been freed and reused.
const a = addon.open({ host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 4 }, () => {});
addon.close(a.handle);
for (let i = 0; i < 3; i++) await turn();
const b = addon.open({ host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 4 }, () => {});
addon.close(a.handle);
addon.close(inside.handle);
addon.stats(a.handle);
addon.stats(inside.handle);
addon.close(b.handle);

// Handles garbage collected: one closed, one still open (its socket stays open until the thread ends).
(() => {
  const c = addon.open({ host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 2 }, () => {});
  addon.close(c.handle);
  addon.open({ host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 2 }, () => {});
})();
for (let i = 0; i < 3; i++) {
  gc();
  await turn();
}

// A worker terminated inside a batch: the environment's cleanup hook and the handle's finalizer both run.
const worker = new Worker(
  `const { parentPort } = require('node:worker_threads');
   const addon = require(${JSON.stringify(file)});
   const s = addon.open({ host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 4 }, () => { parentPort.postMessage('in-batch'); for (;;); });
   parentPort.postMessage(s.port);`,
  { eval: true },
);
const [wport] = (await once(worker, 'message')) as [number];
const c = dgram.createSocket('udp4');
c.send('q', wport, '127.0.0.1');
await once(worker, 'message');
await worker.terminate();
c.close();
gc();
await turn();
console.log('done');
// The socket whose handle was collected open still holds the event loop.
process.exit(0);
