// Routing policies through the real server: answers counted over real UDP
// queries, health flipped in the shared live slots by the main thread.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { ask } from '../helpers/dns-client.ts';
import { launchServer, startServer, type Started } from '../helpers/server.ts';
import { parseConfigText } from '../../src/config/load.ts';

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
regions:
  - name: r3
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }]
  - name: w
    servers: [{ address: 198.51.100.1, weight: 300 }, { address: 198.51.100.2, weight: 100 }, { address: 198.51.100.3, weight: 100 }, { address: 198.51.100.4, weight: 0 }]
  - name: p1
    servers: [{ address: 203.0.113.1 }]
  - name: p2
    servers: [{ address: 203.0.113.2 }]
  - name: p3
    servers: [{ address: 203.0.113.3 }, { address: 203.0.113.4 }]
domains:
  - { name: rr.example.test, routing_algorithm: round-robin, regions: [r3] }
  - { name: rr2.example.test, routing_algorithm: rr, regions: [r3], max_answers: 2 }
  - { name: w.example.test, routing_algorithm: weighted, regions: [w] }
  - { name: w2.example.test, routing_algorithm: weighted, regions: [w], max_answers: 3 }
  - { name: fo.example.test, routing_algorithm: failover, regions: [p1, p2, p3] }
  - { name: fo2.example.test, routing_algorithm: failover, regions: [p1, p2, p3], max_answers: 2 }
logging: { level: error }
`;

/** Asks `n` times (a few in flight at once) and returns every answer's addresses. */
async function collect(port: number, name: string, n: number): Promise<string[][]> {
  const out: string[][] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => ask(port, name, 'A')));
    for (const r of batch) out.push((r.answers ?? []).map((a) => (a as { data: string }).data));
  }
  return out;
}

function tally(answers: string[][]): Map<string, number> {
  const m = new Map<string, number>();
  for (const a of answers) for (const ip of a) m.set(ip, (m.get(ip) ?? 0) + 1);
  return m;
}

describe('routing policies', () => {
  let s: Started;
  before(async () => {
    s = await launchServer(YAML);
  });
  after(() => s?.overwatch.stop(500));
  const slot = (region: string, address: string): number => {
    const v = s.overwatch.slotOf(region, address, 80);
    assert.notEqual(v, undefined, `${region} ${address} has a slot`);
    return v!;
  };

  test('round-robin spreads answers evenly over the healthy servers', async () => {
    const counts = tally(await collect(s.port, 'rr.example.test', 300));
    assert.deepEqual([...counts.keys()].sort(), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    for (const [ip, n] of counts) assert.ok(n >= 70 && n <= 130, `${ip} got ${n} of 300`);
  });

  test('round-robin with max_answers 2 returns two distinct servers that rotate', async () => {
    const answers = await collect(s.port, 'rr2.example.test', 60);
    for (const a of answers) {
      assert.equal(a.length, 2);
      assert.notEqual(a[0], a[1]);
    }
    assert.equal(new Set(answers.map((a) => a[0])).size, 3, 'every server leads some answer');
  });

  test('round-robin stops answering an unhealthy server on the very next query, without a snapshot rebuild', async () => {
    const generation = s.overwatch.generation;
    const down = slot('r3', '192.0.2.2');
    s.overwatch.setHealth(down, HEALTH_UNHEALTHY);
    try {
      const counts = tally(await collect(s.port, 'rr.example.test', 100));
      assert.equal(counts.get('192.0.2.2'), undefined);
      assert.deepEqual([...counts.keys()].sort(), ['192.0.2.1', '192.0.2.3']);
      assert.equal(s.overwatch.generation, generation, 'no new snapshot was published');
    } finally {
      s.overwatch.setHealth(down, HEALTH_HEALTHY);
    }
    const back = tally(await collect(s.port, 'rr.example.test', 60));
    assert.ok(back.has('192.0.2.2'), 'the server is answered again once healthy');
  });

  test('weighted answers follow the weights over 1 000 answers and never give a weight-0 server', async () => {
    const counts = tally(await collect(s.port, 'w.example.test', 1000));
    assert.equal(counts.get('198.51.100.4'), undefined, 'weight 0 is never answered');
    const share = (ip: string): number => (counts.get(ip) ?? 0) / 1000;
    // Expected 0.6 / 0.2 / 0.2; bounds are about 5 standard deviations wide.
    assert.ok(share('198.51.100.1') > 0.52 && share('198.51.100.1') < 0.68, `weight 300 got ${share('198.51.100.1')}`);
    assert.ok(share('198.51.100.2') > 0.13 && share('198.51.100.2') < 0.27, `weight 100 got ${share('198.51.100.2')}`);
    assert.ok(share('198.51.100.3') > 0.13 && share('198.51.100.3') < 0.27, `weight 100 got ${share('198.51.100.3')}`);
  });

  test('weighted with max_answers returns distinct servers and still never the weight-0 one', async () => {
    const answers = await collect(s.port, 'w2.example.test', 100);
    for (const a of answers) {
      assert.equal(a.length, 3);
      assert.equal(new Set(a).size, 3);
      assert.ok(!a.includes('198.51.100.4'));
    }
  });

  test('weighted skips unhealthy servers and renormalises over the rest', async () => {
    const heavy = slot('w', '198.51.100.1');
    s.overwatch.setHealth(heavy, HEALTH_UNHEALTHY);
    try {
      const counts = tally(await collect(s.port, 'w.example.test', 200));
      assert.equal(counts.get('198.51.100.1'), undefined);
      assert.equal(counts.get('198.51.100.4'), undefined);
      assert.ok((counts.get('198.51.100.2') ?? 0) > 60 && (counts.get('198.51.100.3') ?? 0) > 60);
    } finally {
      s.overwatch.setHealth(heavy, HEALTH_HEALTHY);
    }
  });

  test('failover walks down three levels of priority and returns to the primary when it recovers', async () => {
    const first = async (): Promise<string[]> => [...new Set((await collect(s.port, 'fo.example.test', 20)).map((a) => a[0]))];
    assert.deepEqual(await first(), ['203.0.113.1']);
    const p1 = slot('p1', '203.0.113.1');
    const p2 = slot('p2', '203.0.113.2');
    s.overwatch.setHealth(p1, HEALTH_UNHEALTHY);
    assert.deepEqual(await first(), ['203.0.113.2']);
    s.overwatch.setHealth(p2, HEALTH_UNHEALTHY);
    assert.deepEqual(await first(), ['203.0.113.3'], 'third level, first server in file order');
    s.overwatch.setHealth(p1, HEALTH_HEALTHY);
    assert.deepEqual(await first(), ['203.0.113.1'], 'back to the primary');
    s.overwatch.setHealth(p2, HEALTH_HEALTHY);
  });

  test('failover with max_answers 2 returns the two highest-priority healthy servers in order', async () => {
    const answers = await collect(s.port, 'fo2.example.test', 10);
    for (const a of answers) assert.deepEqual(a, ['203.0.113.1', '203.0.113.2']);
    const p2 = slot('p2', '203.0.113.2');
    s.overwatch.setHealth(p2, HEALTH_UNHEALTHY);
    try {
      for (const a of await collect(s.port, 'fo2.example.test', 10)) assert.deepEqual(a, ['203.0.113.1', '203.0.113.3']);
    } finally {
      s.overwatch.setHealth(p2, HEALTH_HEALTHY);
    }
  });

  test('answers SERVFAIL when every server of a name is down, and recovers', async () => {
    const slots = ['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((ip) => slot('r3', ip));
    for (const sl of slots) s.overwatch.setHealth(sl, HEALTH_UNHEALTHY);
    try {
      const r = await ask(s.port, 'rr.example.test', 'A');
      assert.equal(r.rcode, 'SERVFAIL');
      assert.ok(s.overwatch.readCounters().ALL_DOWN >= 1);
    } finally {
      for (const sl of slots) s.overwatch.setHealth(sl, HEALTH_HEALTHY);
    }
    assert.equal((await ask(s.port, 'rr.example.test', 'A')).rcode, 'NOERROR');
  });
});

test('round-robin does not restart at the first server on every snapshot: answers after each of 24 reloads spread over the servers', async (t) => {
  // Each reload (or run-time republish: an agent's backend, a key) gives the
  // workers a new snapshot; a rotor that restarted at 0 there answered the
  // first server to every worker's first query after it, so a name asked
  // less often than snapshots change went to one server only.
  const config = (ttl: number): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
regions:
  - name: r3
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }]
domains:
  - { name: rr.example.test, routing_algorithm: round-robin, regions: [r3] }
  - { name: other.example.test, routing_algorithm: round-robin, regions: [r3], ttl: ${ttl} }
logging: { level: error }
`;
  const s = await startServer(t, config(30));
  const firsts: string[] = [];
  for (let i = 0; i < 24; i++) {
    const generation = s.overwatch.generation;
    const result = await s.overwatch.reload(parseConfigText(config(31 + i), 'rr.yaml'));
    assert.equal(result.ok, true, result.message);
    assert.ok(s.overwatch.generation > generation, 'each reload publishes a new snapshot');
    const r = await ask(s.port, 'rr.example.test', 'A');
    firsts.push(((r.answers ?? [])[0] as { data: string }).data);
  }
  const counts = tally([firsts]);
  // Random starting positions: all 24 on one server has odds 3 x 3^-24.
  assert.ok(counts.size >= 2, `the first answer after each reload: ${JSON.stringify(Object.fromEntries(counts))}`);
});
