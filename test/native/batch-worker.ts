// Test fixture, worker thread. Opens a batched UDP socket on 127.0.0.1:0,
// posts {port}, then behaves as workerData.mode says when a batch arrives:
//   'spin'  posts 'in-batch' and spins inside onBatch until terminated (a worker killed with a batch in flight)
//   'throw' throws from onBatch (a bug outside the per-packet boundary)
//   'close-throw' closes the socket, then throws from onBatch; the worker's
//           uncaughtException handler posts 'caught' and the worker lives on

import { parentPort, workerData } from 'node:worker_threads';
import { loadUdpBatch, openBatchSocket } from '../../native/udp-batch.ts';

const { mode } = workerData as { mode: 'spin' | 'throw' | 'close-throw' };
const port = parentPort!;
const loaded = loadUdpBatch();
if (loaded.addon === null) throw new Error(loaded.reason);
const socket = openBatchSocket(loaded.addon, { host: '127.0.0.1', port: 0, receiveBuffer: 0, batch: 8 }, () => {
  if (mode === 'throw') throw new Error('bug in onBatch');
  if (mode === 'close-throw') {
    socket.close();
    throw new Error('bug after close');
  }
  port.postMessage('in-batch');
  // Spin until worker.terminate() stops the JavaScript: the batch is in flight.
  for (;;) Atomics.load(spinWord, 0);
});
const spinWord = new Int32Array(1);
if (mode === 'close-throw') process.on('uncaughtException', (err) => port.postMessage(`caught: ${err.message}`));
port.postMessage({ port: socket.port });
