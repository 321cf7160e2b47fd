// Bench only, cold. The pair of in-process engines the names-10k benches
// compare (bench/batch-prefetch.ts, bench/cold-names.ts): the one-name
// headline config and the 10 000-name one, with the 10 000 names' queries in
// a fixed shuffled order, as the e2e's query file sends them.

import { seededRandom } from '../../src/lib/random.ts';
import type { WorkerScratch } from '../../workers/scratch.ts';
import { createFixture, queryBuffer } from './fixture.ts';
import { configFor, manyName, MANY_NAMES } from './scenarios.ts';

export interface NamesPair {
  /** Scratch state attached to the a-rr-3 snapshot (one name). */
  readonly one: WorkerScratch;
  readonly oneQuery: Buffer;
  /** Scratch state attached to the names-10k snapshot. */
  readonly many: WorkerScratch;
  /** One A query per name, shuffled (seed 10). */
  readonly manyQueries: readonly Buffer[];
}

export function namesPair(): NamesPair {
  const rnd = seededRandom(10);
  const order = Array.from({ length: MANY_NAMES }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return {
    one: createFixture(configFor('a-rr-3')).scratch,
    oneQuery: queryBuffer('app.bench.test', 1),
    many: createFixture(configFor('names-10k')).scratch,
    manyQueries: order.map((i) => queryBuffer(manyName(i), 1)),
  };
}
