// Latency routing while the main thread writes the EMAs: the DNS worker reads
// them several times per answer, so every answer must still name one of the
// record's own servers whatever moved between those reads. A second thread
// flips two servers' EMAs as fast as it can (the health checks' writes at
// their fastest), while real UDP queries for the latency name alternate with
// queries for another name on the same DNS worker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { LIVE_CAPACITY, latencyWord, writeLatency } from '../../src/snapshot/live-slots.ts';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const FLIPPER = `
const { workerData, parentPort } = require('node:worker_threads');
const live = new Int32Array(workerData.sab);
const [a, b] = workerData.words;
const stop = new Int32Array(workerData.stop);
let i = 0;
parentPort.postMessage('flipping');
while (Atomics.load(stop, 0) === 0) {
  const fast = (i++ & 1) === 0;
  Atomics.store(live, a, fast ? 1000 : 90000);
  Atomics.store(live, b, fast ? 90000 : 1000);
}
`;

test('latency answers only its own servers while their EMAs change under it', async (t) => {
  const s = await startServer(t, `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones: [example.test]
regions:
  - name: a
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
  - name: o
    servers: [{ address: 198.51.100.9 }]
domains:
  - { name: lat.example.test, routing_algorithm: latency, regions: [a], latency_config: { min_samples: 1, tie_margin_ms: 0 } }
  - { name: other.example.test, routing_algorithm: round-robin, regions: [o] }
logging: { level: error }
`);
  const live = s.overwatch.live;
  const slotA = s.overwatch.slotOf('a', '192.0.2.1', 80)!;
  const slotB = s.overwatch.slotOf('a', '192.0.2.2', 80)!;
  writeLatency(live, slotA, 1000, 5);
  writeLatency(live, slotB, 90000, 5);
  const cap = live[LIVE_CAPACITY];
  const stop = new SharedArrayBuffer(4);
  const flipper = new Worker(FLIPPER, { eval: true, workerData: { sab: live.buffer, words: [latencyWord(cap, slotA), latencyWord(cap, slotB)], stop } });
  await new Promise((resolve) => flipper.once('message', resolve));
  const wrong = new Map<string, number>();
  let asked = 0;
  try {
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ask(s.port, i % 2 === 0 ? 'lat.example.test' : 'other.example.test', 'A').then(
            (r) => (r.answers ?? []).map((a) => (a as { data: string }).data).join(','),
            (err: Error) => `unreadable answer: ${err.message}`,
          ),
        ),
      );
      for (let i = 0; i < batch.length; i += 2) {
        asked++;
        if (batch[i] !== '192.0.2.1' && batch[i] !== '192.0.2.2') wrong.set(batch[i], (wrong.get(batch[i]) ?? 0) + 1);
      }
    }
  } finally {
    Atomics.store(new Int32Array(stop), 0, 1);
    await flipper.terminate();
  }
  assert.ok(asked > 1000, `asked ${asked} times`);
  assert.deepEqual([...wrong], [], `of ${asked} answers for lat.example.test`);
});
