// Bench only. Micro: selectMembers() for every routing policy with 3 and
// 1 000 servers behind the name, every when_all_down mode with all servers
// down, and the worst case for the per-worker health cache: health changing
// before every query, so each one rebuilds the record's healthy list.
// Expected: no allocation; O(1) for round-robin and failover whatever the
// server count, O(n) for latency (it reads every member's live EMA).

import { selectMembers } from '../src/routing/select.ts';
import { LIVE_EPOCH } from '../src/snapshot/live-slots.ts';
import { MAX_ANSWERS_LIMIT } from '../src/snapshot/layout.ts';
import { createFixture, recordOf, type EngineFixture, type FixtureOptions } from './lib/fixture.ts';
import type { AddCase } from './lib/micro-suite.ts';
import { microConfig, seededRandom, singleNameConfig } from './lib/scenarios.ts';

const APP = 'app.bench.test';

function routeCase(add: AddCase, name: string, fx: EngineFixture): void {
  const state = fx.scratch.route;
  const rec = recordOf(fx.view, APP);
  const picks = new Int32Array(MAX_ANSWERS_LIMIT);
  add('route', name, () => selectMembers(state, rec, picks, null) + picks[0]);
}

export default function register(add: AddCase): void {
  // Latency EMAs spread over 1–50 ms, 10 samples each: every member is eligible.
  const rnd = seededRandom(3);
  const emas: FixtureOptions = { latencyMicros: () => 1000 + Math.floor(rnd() * 49_000), samples: 10 };
  // Latency ranks by check latency, so its config needs a checked region (type none is refused); the fixture never probes, it writes the EMAs.
  const checked = (config: string): string => config.replace('health_check: { type: none }', 'health_check: { type: tcp }');
  for (const n of [3, 1000]) {
    routeCase(add, `round-robin, ${n} servers`, createFixture(microConfig(singleNameConfig('round-robin', n))));
    routeCase(add, `weighted, ${n} servers`, createFixture(microConfig(singleNameConfig('weighted', n, '', [100, 200, 300]))));
    routeCase(add, `failover, ${n} servers`, createFixture(microConfig(singleNameConfig('failover', n))));
    routeCase(add, `latency, ${n} servers`, createFixture(checked(microConfig(singleNameConfig('latency', n))), emas));
  }
  routeCase(add, 'weighted, 3 servers, max_answers 2', createFixture(microConfig(singleNameConfig('weighted', 3, 'max_answers: 2', [100, 200, 300]))));
  routeCase(add, 'latency, 3 servers, max_answers 2', createFixture(checked(microConfig(singleNameConfig('latency', 3, 'max_answers: 2'))), emas));

  const down: FixtureOptions = { health: 'down' };
  routeCase(add, 'all down: servfail (3 servers)', createFixture(microConfig(singleNameConfig('round-robin', 3, 'when_all_down: servfail')), down));
  routeCase(add, 'all down: last_healthy (3 servers)', createFixture(microConfig(singleNameConfig('round-robin', 3, 'when_all_down: last_healthy')), down));
  routeCase(add, 'all down: all (3 servers)', createFixture(microConfig(singleNameConfig('round-robin', 3, 'when_all_down: all')), down));
  routeCase(add, 'all down: fallback (3 servers)', createFixture(microConfig(singleNameConfig('round-robin', 3, 'when_all_down: fallback, fallback: [192.0.2.200]')), down));

  // Health flapping: the main thread bumps the epoch after every health write,
  // and the next query on each worker rebuilds the list (O(n)).
  for (const n of [3, 1000]) {
    const fx = createFixture(microConfig(singleNameConfig('round-robin', n)));
    const state = fx.scratch.route;
    const rec = recordOf(fx.view, APP);
    const picks = new Int32Array(MAX_ANSWERS_LIMIT);
    const live = fx.live;
    add('route', `round-robin, ${n} servers, health changed before every query`, () => {
      Atomics.add(live, LIVE_EPOCH, 1);
      return selectMembers(state, rec, picks, null);
    });
  }
}
