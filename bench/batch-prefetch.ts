// Bench only, one thread, cold caches on purpose. What a batch of queries for
// names not asked recently costs with and without the batch prefetch of the
// batched UDP path (workers/batch-prefetch.ts): the names-10k snapshot,
// batches of --batch queries in the e2e's shuffled order, every CPU cache
// swept (--sweep MiB written) before each batch, as the kernel's network path
// and other processes would. Prints ns per query, median of --rounds rounds,
// for the one-name headline config (the floor), 10 000 names, and 10 000
// names prefetched; alternated so drift hits all three alike.
//
// Usage: npx node bench/batch-prefetch.ts [--batch 32] [--sweep 8] [--rounds 9]

import { parseArgs } from 'node:util';
import { handleQuery } from '../workers/handle-query.ts';
import { prefetchBatch, PrefetchScratch } from '../workers/batch-prefetch.ts';
import { responseBuffer } from './lib/fixture.ts';
import { namesPair } from './lib/names-10k.ts';
import { MANY_NAMES } from './lib/scenarios.ts';
import type { WorkerScratch } from '../workers/scratch.ts';

const { values } = parseArgs({ options: { batch: { type: 'string', default: '32' }, sweep: { type: 'string', default: '8' }, rounds: { type: 'string', default: '9' } } });
const BATCH = Number(values.batch);
const SWEEP_BYTES = Number(values.sweep) * 1024 * 1024;
const ROUNDS = Number(values.rounds);
const QUERIES = 20_000;

const { one, oneQuery, many, manyQueries } = namesPair();
const out = responseBuffer();
const sweep = new Uint8Array(SWEEP_BYTES);
const scratch = new PrefetchScratch(BATCH);
const lens = new Int32Array(BATCH);
// Fixed receive slots, as the batched socket's: each batch's datagrams are copied in.
const slots: Uint8Array[] = Array.from({ length: BATCH }, () => new Uint8Array(512));
let sink = 0;

/** Nanoseconds per query over QUERIES queries in batches, caches swept before each batch. */
function measure(ctx: WorkerScratch, query: (i: number) => Buffer, prefetch: boolean): number {
  let total = 0n;
  for (let b = 0; b < QUERIES; b += BATCH) {
    for (let i = 0; i < BATCH; i++) {
      const q = query(b + i);
      slots[i].set(q);
      lens[i] = q.length;
    }
    for (let i = 0; i < sweep.length; i += 64) sweep[i]++;
    // The datagrams themselves are hot (the kernel just wrote them).
    for (let i = 0; i < BATCH; i++) sink += slots[i][0] + slots[i][lens[i] - 1];
    const t0 = process.hrtime.bigint();
    if (prefetch) sink += prefetchBatch(ctx, scratch, slots, lens, 1, BATCH);
    for (let i = 0; i < BATCH; i++) {
      ctx.client.setSource('192.0.2.1', 4);
      // As the batched UDP path: the prefetch's hash of each name, so it is not hashed again.
      sink += handleQuery(ctx, slots[i], lens[i], out, false, prefetch ? scratch.hash[i] : -1);
    }
    total += process.hrtime.bigint() - t0;
  }
  return Number(total) / QUERIES;
}

const cases: [string, () => number][] = [
  ['one name (a-rr-3)', () => measure(one, () => oneQuery, false)],
  ['10 000 names, shuffled', () => measure(many, (i) => manyQueries[i % MANY_NAMES], false)],
  ['10 000 names, shuffled, batch prefetched', () => measure(many, (i) => manyQueries[i % MANY_NAMES], true)],
];
const results: number[][] = cases.map(() => []);
for (let r = 0; r < ROUNDS; r++) cases.forEach(([, run], i) => results[i].push(run()));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
process.stdout.write(`batches of ${BATCH}, ${values.sweep} MiB swept before each, median of ${ROUNDS} rounds of ${QUERIES} queries\n`);
for (let i = 0; i < cases.length; i++) process.stdout.write(`${cases[i][0].padEnd(42)} ${median(results[i]).toFixed(0).padStart(6)} ns/query\n`);
if (sink === 0.5) process.stdout.write('\n');
