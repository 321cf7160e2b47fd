// Test helper. Real worker threads racing on shared memory: each is started
// with the `go` word in its workerData and waits on it (Atomics.wait(go, 0, 0));
// once every one has had time to reach the wait, all are released at the
// same instant. Returns what each posted, then terminates them.

import { createWorker } from '../../src/lib/worker-thread.ts';

/**
 * Starts one worker of `entry` per element of `data` (its workerData, with
 * `go` added), releases them together after `settleMs`, and resolves to each
 * worker's first message, in order. Rejects with a worker's error.
 */
export async function raceWorkers<T>(entry: URL, data: readonly Record<string, unknown>[], settleMs = 300): Promise<T[]> {
  const go = new Int32Array(new SharedArrayBuffer(4));
  const workers = data.map((d) => createWorker(entry, { workerData: { ...d, go } }));
  const results = workers.map(
    (w) =>
      new Promise<T>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  await new Promise((r) => setTimeout(r, settleMs));
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  try {
    return await Promise.all(results);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
