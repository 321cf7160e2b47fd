// Bench only. Micro: not the engine's code, but the alternatives the figures
// above suggest, measured the same way so a proposed change starts from a
// number (STYLE.md §2.11):
//  - the weighted policy drew with Math.random(), which returns a freshly
//    allocated heap number (16 bytes per call in Node 24); a per-worker
//    xorshift32 draw allocates nothing (RouteState.draw(), since 2026-12-06);
//  - handleQuery bumped ~4 shared counters per query with Atomics.add (a locked
//    read-modify-write); each worker owns its counter slice, so a plain
//    increment that the main thread reads with Atomics.load does (bump() in
//    src/metrics/counters-layout.ts, since 2026-12-06).

import type { AddCase } from './lib/micro-suite.ts';

export default function register(add: AddCase): void {
  const cum = new Float64Array([100, 300, 600]);
  const pick = (u: number): number => {
    // The binary search over cumulative weights of routing/select.ts pickWeighted().
    const target = u * cum[2];
    let lo = 0;
    let hi = 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  add('alternative', 'weighted draw with Math.random() (before RouteState.draw())', () => pick(Math.random()));
  let state = 0x9e3779b9 | 0;
  add('alternative', 'weighted draw with a per-worker xorshift32 (RouteState.draw(), as today)', () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return pick((state >>> 0) / 4294967296);
  });

  const counters = new Int32Array(new SharedArrayBuffer(64 * 4));
  add('alternative', '4 counter bumps with Atomics.add (before bump())', () => {
    Atomics.add(counters, 1, 1);
    Atomics.add(counters, 2, 1);
    Atomics.add(counters, 3, 1);
    Atomics.add(counters, 4, 1);
    return 0;
  });
  add('alternative', '4 counter bumps as plain increments (bump(), as today)', () => {
    counters[1]++;
    counters[2]++;
    counters[3]++;
    counters[4]++;
    return 0;
  });
}
