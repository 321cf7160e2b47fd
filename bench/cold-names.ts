// Bench only, one thread. What a name not asked recently costs on the
// node:dgram path, where queries come one at a time: handleQuery for the
// one-name headline config against 10 000 names in the e2e's shuffled order,
// with --dist KiB of other memory written between queries (0, then each
// listed size), as the kernel's network path, libuv and V8 do between two
// datagrams. Prints ns per query (medians of --rounds rounds) and the
// difference, the cost of the cache misses a big snapshot adds per query.
//
// Usage: npx node bench/cold-names.ts [--dist 0,16,64] [--rounds 7]

import { parseArgs } from 'node:util';
import { handleQuery } from '../workers/handle-query.ts';
import { responseBuffer } from './lib/fixture.ts';
import { namesPair } from './lib/names-10k.ts';
import { MANY_NAMES } from './lib/scenarios.ts';
import type { WorkerScratch } from '../workers/scratch.ts';

const { values } = parseArgs({ options: { dist: { type: 'string', default: '0,16,64' }, rounds: { type: 'string', default: '7' } } });
const DISTS = values.dist.split(',').map((k) => Number(k) * 1024);
const ROUNDS = Number(values.rounds);
const QUERIES = 100_000;

const { one, oneQuery, many, manyQueries } = namesPair();
const out = responseBuffer();
const other = new Uint8Array(8 << 20);
let at = 0;
let sink = 0;

/** Nanoseconds per query (the handleQuery call alone), `dist` bytes of other memory written before each. */
function measure(ctx: WorkerScratch, query: (i: number) => Buffer, dist: number): number {
  let total = 0n;
  for (let i = 0; i < QUERIES; i++) {
    for (let d = 0; d < dist; d += 64) {
      other[at]++;
      at = (at + 64) & (other.length - 1);
    }
    const q = query(i);
    const t0 = process.hrtime.bigint();
    ctx.client.setSource('192.0.2.1', 4);
    sink += handleQuery(ctx, q, q.length, out, false);
    total += process.hrtime.bigint() - t0;
  }
  return Number(total) / QUERIES;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
process.stdout.write(`handleQuery ns/query (with the clock reads around it), median of ${ROUNDS} rounds of ${QUERIES} queries\n`);
for (const dist of DISTS) {
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(measure(one, () => oneQuery, dist));
    b.push(measure(many, (i) => manyQueries[i % MANY_NAMES], dist));
  }
  const oneNs = median(a);
  const manyNs = median(b);
  process.stdout.write(`${String(dist / 1024).padStart(3)} KiB between queries: one name ${oneNs.toFixed(0).padStart(4)}, 10 000 names ${manyNs.toFixed(0).padStart(4)}, +${(manyNs - oneNs).toFixed(0)} ns\n`);
}
if (sink === 0.5) process.stdout.write('\n');
