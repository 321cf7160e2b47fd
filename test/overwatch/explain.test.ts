// explain() against the real server: for every policy and lookup outcome, the
// explanation is compared with what real UDP queries to the running workers
// return (rcode, AA, TTL, and the set of addresses over many queries).

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { explain, type ExplainInput, type Explanation } from '../../src/overwatch/explain.ts';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY, writeLastUp, writeLatency } from '../../src/snapshot/live-slots.ts';
import { ask } from '../helpers/dns-client.ts';
import { launchServer, type Started } from '../helpers/server.ts';

const execFileP = promisify(execFile);

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
  nameservers:
    - { name: ns1.example.test, addresses: [192.0.2.53, 192.0.2.54, "2001:db8::53"] }
regions:
  - name: r3
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }]
  - name: w
    servers: [{ address: 198.51.100.1, weight: 300 }, { address: 198.51.100.2, weight: 100 }, { address: 198.51.100.3, weight: 100 }, { address: 198.51.100.4, weight: 0 }]
  - name: z
    servers: [{ address: 198.51.100.9, weight: 0 }]
  - name: wx
    servers: [{ address: 198.51.100.21, weight: 1 }, { address: 198.51.100.22, weight: 65535 }]
  - name: p1
    servers: [{ address: 203.0.113.1 }]
  - name: p2
    servers: [{ address: 203.0.113.2 }]
  - name: p3
    servers: [{ address: 203.0.113.3 }, { address: 203.0.113.4 }]
  - name: l
    servers: [{ address: 192.0.2.61 }, { address: 192.0.2.62 }, { address: 192.0.2.63 }]
  - name: d
    servers: [{ address: 192.0.2.41 }, { address: 192.0.2.42 }]
  - name: v6
    servers: [{ address: "2001:db8::1" }, { address: "2001:db8::2" }]
  - name: dw
    servers: [{ address: 192.0.2.45, weight: 100 }, { address: 192.0.2.46, weight: 0 }]
  - name: big
    servers: [{ address: 10.9.0.1 }, { address: 10.9.0.2 }, { address: 10.9.0.3 }, { address: 10.9.0.4 }, { address: 10.9.0.5 }, { address: 10.9.0.6 }, { address: 10.9.0.7 }, { address: 10.9.0.8 }, { address: 10.9.0.9 }, { address: 10.9.0.10 }, { address: 10.9.0.11 }, { address: 10.9.0.12 }, { address: 10.9.0.13 }, { address: 10.9.0.14 }, { address: 10.9.0.15 }, { address: 10.9.0.16 }, { address: 10.9.0.17 }, { address: 10.9.0.18 }, { address: 10.9.0.19 }, { address: 10.9.0.20 }, { address: 10.9.0.21 }, { address: 10.9.0.22 }, { address: 10.9.0.23 }, { address: 10.9.0.24 }, { address: 10.9.0.25 }, { address: 10.9.0.26 }, { address: 10.9.0.27 }, { address: 10.9.0.28 }, { address: 10.9.0.29 }, { address: 10.9.0.30 }, { address: 10.9.0.31 }, { address: 10.9.0.32 }]
domains:
  - { name: rr.example.test, routing_algorithm: round-robin, regions: [r3], ttl: 42 }
  - { name: rr2.example.test, routing_algorithm: round-robin, regions: [r3], max_answers: 2 }
  - { name: w.example.test, routing_algorithm: weighted, regions: [w] }
  - { name: w2.example.test, routing_algorithm: weighted, regions: [w], max_answers: 2 }
  - { name: w0.example.test, routing_algorithm: weighted, regions: [z] }
  - { name: wx.example.test, routing_algorithm: weighted, regions: [wx] }
  - { name: gw.example.test, routing_algorithm: geolocation, regions: [w] }
  - { name: sw.example.test, routing_algorithm: sticky, regions: [w] }
  - { name: g0.example.test, routing_algorithm: geolocation, regions: [z], when_all_down: all }
  - { name: fo.example.test, routing_algorithm: failover, regions: [p1, p2, p3] }
  - { name: fo2.example.test, routing_algorithm: failover, regions: [p1, p2, p3], max_answers: 2 }
  - name: lat.example.test
    routing_algorithm: latency
    regions: [l]
    latency_config: { max_latency_ms: 100, min_samples: 3, tie_margin_ms: 5 }
  - name: lat2.example.test
    routing_algorithm: latency
    regions: [l]
    max_answers: 2
    latency_config: { max_latency_ms: 100, min_samples: 3, tie_margin_ms: 5 }
  - { name: sf.example.test, routing_algorithm: round-robin, regions: [d], when_all_down: servfail }
  - { name: lh.example.test, routing_algorithm: round-robin, regions: [d], when_all_down: last_healthy }
  - { name: lhw.example.test, routing_algorithm: weighted, regions: [dw], when_all_down: last_healthy }
  - { name: lhg.example.test, routing_algorithm: geolocation, regions: [dw], when_all_down: last_healthy }
  - { name: lhs.example.test, routing_algorithm: sticky, regions: [dw], when_all_down: last_healthy }
  - { name: all.example.test, routing_algorithm: round-robin, regions: [d], when_all_down: all }
  - { name: fb.example.test, routing_algorithm: failover, regions: [d], when_all_down: fallback, fallback: [192.0.2.250, 192.0.2.251] }
  - { name: v6.example.test, routing_algorithm: round-robin, regions: [v6], when_all_down: fallback, fallback: [192.0.2.250] }
  - { name: a.b.example.test, routing_algorithm: round-robin, regions: [r3] }
  - { name: big.example.test, routing_algorithm: round-robin, regions: [big], max_answers: 32 }
  - { name: mid.example.test, routing_algorithm: round-robin, regions: [big], max_answers: 20 }
logging: { level: error }
`;

interface Observed {
  rcodes: Set<string>;
  aa: Set<boolean>;
  answers: string[][];
  ttls: Set<number>;
}

/** Asks `n` times (20 in flight at once) and gathers what came back. */
async function observe(port: number, name: string, type: string, n: number): Promise<Observed> {
  const out: Observed = { rcodes: new Set(), aa: new Set(), answers: [], ttls: new Set() };
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => ask(port, name, type)));
    for (const r of batch) {
      out.rcodes.add(r.rcode ?? '?');
      out.aa.add((r as { flag_aa?: boolean }).flag_aa === true);
      const answers = (r.answers ?? []) as { type: string; data: unknown; ttl?: number }[];
      out.answers.push(answers.map((a) => (typeof a.data === 'string' ? a.data : JSON.stringify(a.data))));
      for (const a of answers) if (a.ttl !== undefined) out.ttls.add(a.ttl);
      for (const a of (r.authorities ?? []) as { ttl?: number }[]) if (a.ttl !== undefined) out.ttls.add(a.ttl);
    }
  }
  return out;
}

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

/**
 * Checks an explanation against `n` real answers: same rcode and AA bit, the
 * same set of addresses, the answer size, the exact answer when fixed, only
 * cycle members when rotating, and the TTL.
 */
async function assertAgrees(port: number, e: Explanation, n = 40): Promise<Observed> {
  const got = await observe(port, e.name, e.type, n);
  assert.deepEqual([...got.rcodes], [e.rcode], `rcode of ${e.name} ${e.type}`);
  assert.deepEqual([...got.aa], [e.aa], `AA of ${e.name} ${e.type}`);
  assert.deepEqual(sorted(new Set(got.answers.flat())), sorted(e.answers), `addresses of ${e.name} ${e.type}`);
  for (const a of got.answers) assert.equal(a.length, e.answer_size, `answer size of ${e.name}`);
  if (e.selection === 'fixed') for (const a of got.answers) assert.deepEqual(a, e.answers);
  if (e.cycle !== null) {
    const cycle = new Set(e.cycle.map((c) => c.join(' ')));
    for (const a of got.answers) assert.ok(cycle.has(a.join(' ')), `${a.join(' ')} is in the cycle ${[...cycle].join(' | ')}`);
  }
  if (e.candidates.length > 0 && e.all_down?.mode !== 'fallback') {
    assert.deepEqual(sorted(e.candidates.filter((c) => c.eligible).map((c) => c.address)), sorted(e.answers), 'eligible candidates are the answer pool');
  }
  if (e.ttl !== null) assert.deepEqual([...got.ttls], [e.ttl], `TTL of ${e.name} ${e.type}`);
  return got;
}

const byAddress = (e: Explanation, address: string) => {
  const c = e.candidates.find((x) => x.address === address);
  assert.ok(c, `${address} is a candidate of ${e.name}`);
  return c;
};

const digMissing = spawnSync('dig', ['-v']).error === undefined ? false : 'dig (bind9-dnsutils) is not installed';

/** Runs dig against the server on loopback (no recursion bit, as a resolver asks an authority) and returns its output. */
async function dig(port: number, name: string, ...flags: string[]): Promise<string> {
  const { stdout } = await execFileP('dig', ['@127.0.0.1', '-p', String(port), '+norec', '+tries=1', '+time=2', ...flags, name, 'A']);
  return stdout;
}

describe('explain', () => {
  let s: Started;
  let lastErrors = new Map<number, string>();
  before(async () => {
    s = await launchServer(YAML);
  });
  after(() => s?.overwatch.stop(500));

  const input = (): ExplainInput => ({
    snapshot: s.overwatch.snapshot,
    live: s.overwatch.live,
    registry: s.overwatch.registry,
    lastErrorOf: (server) => lastErrors.get(server.slot) ?? null,
  });
  const ex = (name: string, type = 'A', client: string | null = null): Explanation => explain(input(), name, type, client);
  const slot = (region: string, address: string): number => {
    const v = s.overwatch.slotOf(region, address, 80);
    assert.notEqual(v, undefined, `${region} ${address} has a slot`);
    return v as number;
  };
  const setHealth = (region: string, addresses: string[], state: number): void => {
    for (const a of addresses) s.overwatch.setHealth(slot(region, a), state);
  };

  test('explains round-robin as a rotation over every healthy server, as real answers rotate', async () => {
    const e = ex('rr.example.test');
    assert.equal(e.rcode, 'NOERROR');
    assert.equal(e.policy, 'round-robin');
    assert.equal(e.selection, 'rotation');
    assert.equal(e.rotation, true);
    assert.equal(e.ttl, 42);
    assert.deepEqual(e.cycle, [['192.0.2.1'], ['192.0.2.2'], ['192.0.2.3']]);
    assert.ok(e.notes.some((n) => n.includes('each DNS worker keeps its own rotation')));
    await assertAgrees(s.port, e);
  });

  test('explains round-robin with max_answers 2 by listing every answer of the cycle', async () => {
    const e = ex('rr2.example.test');
    assert.equal(e.answer_size, 2);
    assert.deepEqual(e.cycle, [['192.0.2.1', '192.0.2.2'], ['192.0.2.2', '192.0.2.3'], ['192.0.2.3', '192.0.2.1']]);
    await assertAgrees(s.port, e);
  });

  test('says an unhealthy server is skipped, with its last check error', async () => {
    const down = slot('r3', '192.0.2.2');
    lastErrors = new Map([[down, 'status 503']]);
    s.overwatch.setHealth(down, HEALTH_UNHEALTHY);
    try {
      const e = ex('rr2.example.test');
      const c = byAddress(e, '192.0.2.2');
      assert.equal(c.eligible, false);
      assert.equal(c.status, 'unhealthy');
      assert.equal(c.reason, 'unhealthy: status 503');
      assert.deepEqual(e.cycle, [['192.0.2.1', '192.0.2.3'], ['192.0.2.3', '192.0.2.1']]);
      await assertAgrees(s.port, e);
    } finally {
      s.overwatch.setHealth(down, HEALTH_HEALTHY);
      lastErrors = new Map();
    }
  });

  test('names the operator and reason of an override that drains a server in one domain only', async () => {
    await s.overwatch.setOverride({ scope: 'domain', service: 'rr.example.test', address: '192.0.2.3' }, { healthy: false, reason: 'disk replacement', source: 'alice' });
    try {
      const e = ex('rr.example.test');
      const c = byAddress(e, '192.0.2.3');
      assert.equal(c.status, 'drained');
      assert.equal(c.authority, 'override');
      assert.equal(c.check_status, 'healthy');
      assert.equal(c.reason, 'overridden down by alice (this domain only, until cleared): disk replacement');
      assert.deepEqual(c.override, { scope: 'domain', target: '192.0.2.3', healthy: false, source: 'alice', reason: 'disk replacement', expires_at: null });
      await assertAgrees(s.port, e);
      // The same server in another domain is untouched.
      const other = ex('rr2.example.test');
      assert.equal(byAddress(other, '192.0.2.3').eligible, true);
      await assertAgrees(s.port, other);
    } finally {
      await s.overwatch.clearOverride({ scope: 'domain', service: 'rr.example.test', address: '192.0.2.3' });
    }
  });

  test('gives weighted probabilities and marks the weight-0 server never answered', async () => {
    const e = ex('w.example.test');
    assert.equal(e.selection, 'weighted_random');
    assert.deepEqual(e.probabilities?.map((p) => [p.address, p.first]), [['198.51.100.1', 0.6], ['198.51.100.2', 0.2], ['198.51.100.3', 0.2]]);
    const zero = byAddress(e, '198.51.100.4');
    assert.equal(zero.eligible, false);
    assert.match(zero.reason ?? '', /^weight 0/);
    await assertAgrees(s.port, e, 100);
  });

  test('never rounds a weighted chance that is neither 0 nor 1 to 0 or 1 (weight 1 against 65535)', () => {
    // Weight 1 of 65 536 leads about 1 answer in 65 536 (DNS gave it 3 of
    // 200 000); rounded to 4 decimals it read 0 ("never") and its partner 1.
    const e = ex('wx.example.test');
    assert.deepEqual(e.probabilities?.map((p) => [p.address, p.first, p.in_answer]), [['198.51.100.21', 0.000015, 0.000015], ['198.51.100.22', 0.999985, 0.999985]]);
    assert.match(byAddress(e, '198.51.100.21').detail ?? '', /weight 1 of 65536: leads 0\.0015% of answers/);
    assert.match(byAddress(e, '198.51.100.22').detail ?? '', /weight 65535 of 65536: leads 99\.9985% of answers/);
  });

  test('computes the chance of being anywhere in a weighted answer of two, and real answers follow it', async () => {
    const e = ex('w2.example.test');
    // 300/100/100 drawn twice without replacement: 0.6 + 2·0.2·0.75 = 0.9, and 0.55 for each 100.
    assert.deepEqual(e.probabilities?.map((p) => p.in_answer), [0.9, 0.55, 0.55]);
    const got = await assertAgrees(s.port, e, 400);
    const share = got.answers.filter((a) => a.includes('198.51.100.1')).length / got.answers.length;
    assert.ok(share > 0.84 && share < 0.96, `198.51.100.1 was in ${share} of answers, expected about 0.9`);
  });

  test('explains that healthy servers of weight 0 leave nothing answerable, so when_all_down decides', async () => {
    const e = ex('w0.example.test');
    assert.equal(e.rcode, 'SERVFAIL');
    assert.equal(e.aa, false);
    assert.deepEqual(e.all_down, { mode: 'servfail', answered: false });
    assert.ok(e.notes.some((n) => n.includes('weight 0')));
    await assertAgrees(s.port, e, 5);
  });

  // Geolocation and sticky pick by weight too (select.ts byWeight): explain
  // must give the same reason there, not "not chosen", and must not call a
  // weight-0 server answerable when every server is down.
  for (const policy of ['geolocation', 'sticky']) {
    test(`marks the weight-0 server of a ${policy} domain never answered, naming the policy`, async () => {
      const e = ex(policy === 'geolocation' ? 'gw.example.test' : 'sw.example.test', 'A', '192.0.2.77');
      const zero = byAddress(e, '198.51.100.4');
      assert.equal(zero.eligible, false);
      assert.equal(zero.reason, `weight 0: the ${policy} policy never answers it (it is still checked)`);
      await assertAgrees(s.port, e, 20);
    });
  }

  test('explains a geolocation domain whose only server has weight 0 as when_all_down decides, not as answered although down', async () => {
    const e = ex('g0.example.test');
    assert.equal(e.rcode, 'SERVFAIL');
    assert.deepEqual(e.all_down, { mode: 'all', answered: false });
    const zero = byAddress(e, '198.51.100.9');
    assert.equal(zero.reason, 'weight 0: the geolocation policy never answers it, not even when all are down');
    assert.ok(e.notes.some((n) => n.includes('weight 0')), e.notes.join(' | '));
    await assertAgrees(s.port, e, 5);
  });

  test('walks failover down three levels, saying which level answers and why the others do not', async () => {
    const p1 = slot('p1', '203.0.113.1');
    const p2 = slot('p2', '203.0.113.2');
    try {
      let e = ex('fo.example.test');
      assert.deepEqual(e.answers, ['203.0.113.1']);
      assert.equal(byAddress(e, '203.0.113.2').reason, 'lower failover level 1 (p2) while level 0 (p1) has a healthy server');
      await assertAgrees(s.port, e, 20);
      s.overwatch.setHealth(p1, HEALTH_UNHEALTHY);
      e = ex('fo.example.test');
      assert.deepEqual(e.answers, ['203.0.113.2']);
      assert.equal(byAddress(e, '203.0.113.1').reason, 'unhealthy: failed its health checks');
      assert.equal(byAddress(e, '203.0.113.3').reason, 'lower failover level 2 (p3) while level 1 (p2) has a healthy server');
      await assertAgrees(s.port, e, 20);
      s.overwatch.setHealth(p2, HEALTH_UNHEALTHY);
      e = ex('fo.example.test');
      assert.deepEqual(e.answers, ['203.0.113.3']);
      assert.match(byAddress(e, '203.0.113.4').reason ?? '', /^same failover level 2 \(p3\) but later in file order/);
      await assertAgrees(s.port, e, 20);
      const e2 = ex('fo2.example.test');
      assert.deepEqual(e2.answers, ['203.0.113.3', '203.0.113.4']);
      await assertAgrees(s.port, e2, 20);
    } finally {
      s.overwatch.setHealth(p1, HEALTH_HEALTHY);
      s.overwatch.setHealth(p2, HEALTH_HEALTHY);
    }
  });

  test('explains latency: round-robin until min_samples, then the fastest, ties, max_latency_ms and the all-slow case', async () => {
    const l = ['192.0.2.61', '192.0.2.62', '192.0.2.63'].map((a) => slot('l', a));
    const setLatency = (ms: number[], samples = 5): void => {
      for (let i = 0; i < 3; i++) writeLatency(s.overwatch.live, l[i], ms[i] * 1000, samples);
    };
    try {
      setLatency([20, 30, 40], 2);
      let e = ex('lat.example.test', 'A', '198.51.100.77');
      assert.equal(e.selection, 'rotation');
      assert.match(byAddress(e, '192.0.2.61').detail ?? '', /2 of 3 samples/);
      assert.ok(e.notes.some((n) => n.includes('min_samples 3')));
      assert.ok(e.notes.some((n) => n.includes('not used by the latency policy')));
      await assertAgrees(s.port, e);

      setLatency([20, 22, 50]);
      e = ex('lat.example.test');
      assert.deepEqual(sorted(e.answers), ['192.0.2.61', '192.0.2.62']);
      assert.equal(byAddress(e, '192.0.2.61').detail, 'fastest (20 ms)');
      assert.equal(byAddress(e, '192.0.2.63').reason, 'slower than the fastest beyond tie_margin_ms (50 ms > 20 + 5 ms)');
      await assertAgrees(s.port, e);

      setLatency([150, 200, 90]);
      e = ex('lat.example.test');
      assert.deepEqual(e.answers, ['192.0.2.63']);
      assert.equal(e.selection, 'fixed');
      assert.equal(byAddress(e, '192.0.2.61').reason, 'above max_latency_ms (150 ms > 100 ms) while a server is below it');
      await assertAgrees(s.port, e);

      setLatency([150, 152, 300]);
      e = ex('lat.example.test');
      assert.deepEqual(sorted(e.answers), ['192.0.2.61', '192.0.2.62']);
      assert.ok(e.notes.some((n) => n.includes('every healthy server is above max_latency_ms')));
      await assertAgrees(s.port, e);
    } finally {
      setLatency([0, 0, 0], 0);
    }
  });

  test('explains latency with max_answers 2: a tied leader, then ascending latency', async () => {
    const l = ['192.0.2.61', '192.0.2.62', '192.0.2.63'].map((a) => slot('l', a));
    const setLatency = (ms: number[]): void => {
      for (let i = 0; i < 3; i++) writeLatency(s.overwatch.live, l[i], ms[i] * 1000, 5);
    };
    try {
      setLatency([20, 40, 50]);
      let e = ex('lat2.example.test');
      assert.deepEqual(e.answers, ['192.0.2.61', '192.0.2.62']);
      assert.match(byAddress(e, '192.0.2.63').reason ?? '', /and the 2 places of an answer go to faster servers$/);
      await assertAgrees(s.port, e);
      setLatency([50, 20, 22]);
      e = ex('lat2.example.test');
      assert.deepEqual(e.cycle, [['192.0.2.62', '192.0.2.63'], ['192.0.2.63', '192.0.2.62']]);
      await assertAgrees(s.port, e);
    } finally {
      for (const sl of l) writeLatency(s.overwatch.live, sl, 0, 0);
    }
  });

  test('latency with max_answers 2 never fills the answer with a server above max_latency_ms while one is below it', async () => {
    const l = ['192.0.2.61', '192.0.2.62', '192.0.2.63'].map((a) => slot('l', a));
    const setLatency = (ms: number[]): void => {
      for (let i = 0; i < 3; i++) writeLatency(s.overwatch.live, l[i], ms[i] * 1000, 5);
    };
    try {
      // One server under the 100 ms ceiling: the answer carries it alone.
      setLatency([20, 150, 200]);
      let e = ex('lat2.example.test');
      assert.deepEqual(e.answers, ['192.0.2.61']);
      assert.equal(e.answer_size, 1);
      assert.equal(byAddress(e, '192.0.2.62').reason, 'above max_latency_ms (150 ms > 100 ms) while a server is below it');
      assert.ok(e.notes.some((n) => n.includes('only 1 server is at or below max_latency_ms 100')), e.notes.join(' | '));
      await assertAgrees(s.port, e);

      // Two under it (not tied): both, the slower second; the third never.
      setLatency([20, 90, 101]);
      e = ex('lat2.example.test');
      assert.deepEqual(e.answers, ['192.0.2.61', '192.0.2.62']);
      assert.equal(e.answer_size, 2);
      assert.equal(byAddress(e, '192.0.2.63').reason, 'above max_latency_ms (101 ms > 100 ms) while a server is below it');
      await assertAgrees(s.port, e);

      // Every server above it: the fastest leads and the rest fill as before.
      setLatency([150, 300, 200]);
      e = ex('lat2.example.test');
      assert.deepEqual(e.answers, ['192.0.2.61', '192.0.2.63']);
      assert.equal(e.answer_size, 2);
      assert.ok(e.notes.some((n) => n.includes('every healthy server is above max_latency_ms')));
      await assertAgrees(s.port, e);
    } finally {
      for (const sl of l) writeLatency(s.overwatch.live, sl, 0, 0);
    }
  });

  test('explains every when_all_down mode and agrees with the answers', async () => {
    const d = ['192.0.2.41', '192.0.2.42'];
    setHealth('d', d, HEALTH_UNHEALTHY);
    try {
      let e = ex('sf.example.test');
      assert.equal(e.rcode, 'SERVFAIL');
      assert.deepEqual(e.all_down, { mode: 'servfail', answered: false });
      await assertAgrees(s.port, e, 5);

      // No last-up time yet: last_healthy has nothing to fall back on.
      e = ex('lh.example.test');
      assert.equal(e.rcode, 'SERVFAIL');
      assert.ok(e.notes.some((n) => n.includes('no server has been healthy since the overwatch started')));
      await assertAgrees(s.port, e, 5);

      const now = Math.floor(Date.now() / 1000);
      writeLastUp(s.overwatch.live, slot('d', '192.0.2.41'), now - 1000);
      writeLastUp(s.overwatch.live, slot('d', '192.0.2.42'), now - 5);
      // Last-up writes do not bump the health epoch; a verdict write does.
      setHealth('d', d, HEALTH_UNHEALTHY);
      e = ex('lh.example.test');
      assert.deepEqual(e.answers, ['192.0.2.42']);
      assert.deepEqual(e.all_down, { mode: 'last_healthy', answered: true });
      assert.match(byAddress(e, '192.0.2.41').reason ?? '', /last up 995 s before the most recent server, outside the \d+ s last_healthy window$/);
      await assertAgrees(s.port, e);

      e = ex('all.example.test');
      assert.deepEqual(sorted(e.answers), d);
      assert.match(byAddress(e, '192.0.2.41').detail ?? '', /when_all_down: all fails open/);
      await assertAgrees(s.port, e);

      e = ex('fb.example.test');
      assert.deepEqual(e.answers, ['192.0.2.250']);
      assert.deepEqual(e.fallback, ['192.0.2.250', '192.0.2.251']);
      assert.deepEqual(e.all_down, { mode: 'fallback', answered: true });
      await assertAgrees(s.port, e, 10);
    } finally {
      setHealth('d', d, HEALTH_HEALTHY);
    }
  });

  test('last_healthy takes its window from the servers a drain leaves: a drained server up more recently does not push them out (DNS and explain agree)', async () => {
    const d = ['192.0.2.41', '192.0.2.42'];
    const target = { scope: 'domain' as const, service: 'lh.example.test', address: '192.0.2.42' };
    await s.overwatch.setOverride(target, { healthy: false, reason: 'decommissioned', source: 'ops-bot' });
    const now = Math.floor(Date.now() / 1000);
    // The drained server was up 5 s ago, the other 100 s ago: outside a window counted from the drained one.
    writeLastUp(s.overwatch.live, slot('d', '192.0.2.41'), now - 100);
    writeLastUp(s.overwatch.live, slot('d', '192.0.2.42'), now - 5);
    setHealth('d', d, HEALTH_UNHEALTHY);
    try {
      const e = ex('lh.example.test');
      assert.equal(e.rcode, 'NOERROR');
      assert.deepEqual(e.answers, ['192.0.2.41']);
      assert.deepEqual(e.all_down, { mode: 'last_healthy', answered: true });
      assert.match(byAddress(e, '192.0.2.42').reason ?? '', /^overridden down by ops-bot/);
      const seen = await assertAgrees(s.port, e, 10);
      assert.deepEqual(seen.rcodes, new Set(['NOERROR']));
    } finally {
      setHealth('d', d, HEALTH_HEALTHY);
      await s.overwatch.clearOverride(target);
    }
  });

  for (const [policy, name] of [['weighted', 'lhw.example.test'], ['geolocation', 'lhg.example.test'], ['sticky', 'lhs.example.test']]) {
    test(`last_healthy under ${policy} takes its window from the servers of weight above 0: a weight-0 server up more recently does not push them out (DNS and explain agree)`, async () => {
      // The weight-0 server is never answered by this policy, so, as a drained
      // one, it must not be "the most recent server" of the window: it made the
      // domain SERVFAIL while its other server went down 100 s earlier.
      const now = Math.floor(Date.now() / 1000);
      writeLastUp(s.overwatch.live, slot('dw', '192.0.2.45'), now - 100);
      writeLastUp(s.overwatch.live, slot('dw', '192.0.2.46'), now - 5);
      setHealth('dw', ['192.0.2.45', '192.0.2.46'], HEALTH_UNHEALTHY);
      try {
        const e = ex(name);
        assert.equal(e.rcode, 'NOERROR', e.notes.join('; '));
        assert.deepEqual(e.answers, ['192.0.2.45']);
        assert.deepEqual(e.all_down, { mode: 'last_healthy', answered: true });
        assert.match(byAddress(e, '192.0.2.46').reason ?? '', /^weight 0/);
        const seen = await assertAgrees(s.port, e, 10);
        assert.deepEqual(seen.rcodes, new Set(['NOERROR']));
        // A healthy server of weight 0 leaves nothing answerable either: the same window.
        setHealth('dw', ['192.0.2.46'], HEALTH_HEALTHY);
        writeLastUp(s.overwatch.live, slot('dw', '192.0.2.46'), now);
        const healthyZero = ex(name);
        assert.deepEqual([healthyZero.rcode, healthyZero.answers], ['NOERROR', ['192.0.2.45']], healthyZero.notes.join('; '));
        await assertAgrees(s.port, healthyZero, 10);
      } finally {
        setHealth('dw', ['192.0.2.45', '192.0.2.46'], HEALTH_HEALTHY);
      }
    });
  }

  test('keeps a drained server out even when when_all_down: all fails open', async () => {
    const d = ['192.0.2.41', '192.0.2.42'];
    await s.overwatch.setOverride({ scope: 'domain', service: 'all.example.test', address: '192.0.2.41' }, { healthy: false, reason: 'decommissioned', source: 'ops-bot' });
    setHealth('d', d, HEALTH_UNHEALTHY);
    try {
      const e = ex('all.example.test');
      assert.deepEqual(e.answers, ['192.0.2.42']);
      assert.equal(byAddress(e, '192.0.2.41').reason, 'overridden down by ops-bot (this domain only, until cleared): decommissioned (a drain holds even when when_all_down fails open)');
      await assertAgrees(s.port, e);
    } finally {
      setHealth('d', d, HEALTH_HEALTHY);
      await s.overwatch.clearOverride({ scope: 'domain', service: 'all.example.test', address: '192.0.2.41' });
    }
  });

  test('answers SERVFAIL when fallback has no address of the asked family', async () => {
    const v6 = ['2001:db8::1', '2001:db8::2'];
    setHealth('v6', v6, HEALTH_UNHEALTHY);
    try {
      const e = ex('v6.example.test', 'AAAA');
      assert.equal(e.rcode, 'SERVFAIL');
      assert.deepEqual(e.fallback, []);
      assert.ok(e.notes.some((n) => n.includes('no IPv6 fallback address')));
      await assertAgrees(s.port, e, 5);
    } finally {
      setHealth('v6', v6, HEALTH_HEALTHY);
    }
    await assertAgrees(s.port, ex('v6.example.test', 'AAAA'));
  });

  test('explains name-server addresses as static data answered in full', async () => {
    const a = ex('ns1.example.test', 'A');
    assert.equal(a.source, 'nameserver');
    assert.equal(a.policy, 'static');
    assert.deepEqual(a.answers, ['192.0.2.53', '192.0.2.54']);
    assert.equal(a.candidates[0].status, 'static');
    await assertAgrees(s.port, a, 5);
    const aaaa = ex('NS1.Example.Test.', 'aaaa');
    assert.equal(aaaa.name, 'ns1.example.test');
    assert.deepEqual(aaaa.answers, ['2001:db8::53']);
    await assertAgrees(s.port, aaaa, 5);
  });

  test('explains the apex NS and SOA answers, with glue', async () => {
    const ns = ex('example.test', 'NS');
    assert.deepEqual(ns.answers, ['ns1.example.test']);
    assert.deepEqual(ns.additional, ['ns1.example.test A 192.0.2.53', 'ns1.example.test A 192.0.2.54', 'ns1.example.test AAAA 2001:db8::53']);
    await assertAgrees(s.port, ns, 3);
    const soa = ex('example.test', 'SOA');
    assert.equal(soa.source, 'zone');
    const got = await observe(s.port, 'example.test', 'SOA', 1);
    assert.deepEqual([...got.rcodes], ['NOERROR']);
    assert.deepEqual([...got.ttls], [soa.ttl]);
  });

  test('answers REFUSED for a name outside every zone, and says so', async () => {
    const e = ex('www.example.org');
    assert.equal(e.rcode, 'REFUSED');
    assert.equal(e.aa, false);
    assert.equal(e.zone, null);
    assert.match(e.notes[0], /not inside any zone served here \(example\.test\)/);
    await assertAgrees(s.port, e, 3);
    const axfr = ex('example.test', 'AXFR');
    assert.equal(axfr.rcode, 'REFUSED');
  });

  test('answers NXDOMAIN below a domain and names the closest name held', async () => {
    const e = ex('x.rr.example.test');
    assert.equal(e.rcode, 'NXDOMAIN');
    assert.equal(e.zone, 'example.test');
    assert.ok(e.notes.some((n) => n.includes('the closest name held is rr.example.test')));
    await assertAgrees(s.port, e, 3);
  });

  test('answers NODATA for a missing family, an empty non-terminal and an unserved type', async () => {
    const v4of6 = ex('v6.example.test', 'A');
    assert.equal(v4of6.rcode, 'NOERROR');
    assert.equal(v4of6.domain, 'v6.example.test');
    assert.deepEqual(v4of6.answers, []);
    assert.ok(v4of6.notes.some((n) => n.includes('has no IPv4 servers')));
    await assertAgrees(s.port, v4of6, 3);
    const ent = ex('b.example.test', 'A');
    assert.ok(ent.notes.some((n) => n.includes('empty non-terminal')));
    await assertAgrees(s.port, ent, 3);
    const mx = ex('rr.example.test', 'MX');
    assert.equal(mx.rcode, 'NOERROR');
    assert.equal(mx.type, 'MX');
    await assertAgrees(s.port, mx, 3);
  });

  test('answers ANY with the A RRset, as the workers do', async () => {
    const e = ex('fo.example.test', 'ANY');
    assert.deepEqual(e.answers, ['203.0.113.1']);
    assert.ok(e.notes.some((n) => n.includes('RFC 8482')));
    await assertAgrees(s.port, e, 5);
  });

  test('rejects a malformed name, type or client with a RangeError', () => {
    assert.throws(() => ex('a..example.test'), RangeError);
    assert.throws(() => ex('rr.example.test', 'BOGUS'), RangeError);
    assert.throws(() => ex('rr.example.test', 'A', 'not-an-ip'), RangeError);
    assert.throws(() => ex('münchen.example.test'), RangeError);
    assert.equal(ex('rr.example.test', 'TYPE28').type, 'AAAA');
  });

  test('refuses a name ending in two dots (an empty last label) instead of explaining it without them', () => {
    // One trailing dot is the root; a second is an empty label no query can
    // carry: "rr.example.test.." was explained as rr.example.test (NOERROR).
    for (const name of ['rr.example.test..', 'RR.example.test..', 'a..', '..']) {
      assert.throws(() => ex(name), { name: 'RangeError', message: `name "${name}" has an empty label (two dots in a row, or a leading dot), expected labels of 1..63 octets` }, name);
    }
    assert.equal(ex('rr.example.test.').name, 'rr.example.test');
    assert.equal(ex('.').rcode, 'REFUSED');
  });

  test('says how big the response is and whether UDP truncates it, as dig sees it with and without EDNS', { skip: digMissing }, async () => {
    // 32 A records: 546 bytes without EDNS, over 512, so a client without EDNS gets TC=1 (explain said only answer_size 32).
    const big = ex('big.example.test');
    assert.equal(big.answer_size, 32);
    assert.deepEqual(big.wire, { bytes: 546, bytes_edns: 557, truncated_without_edns: true, truncated_at_1232: false });
    assert.ok(big.notes.some((n) => n.includes('546 bytes without EDNS') && n.includes('TC=1')), big.notes.join('\n'));
    const noEdns = await dig(s.port, 'big.example.test', '+noedns', '+ignore');
    assert.match(noEdns, /flags: qr aa tc;/);
    assert.match(noEdns, /ANSWER: 0,/);
    const edns = await dig(s.port, 'big.example.test', '+bufsize=1232', '+nocookie'); // explain's query carries no COOKIE option (dig's adds 28 bytes to the reply)
    assert.match(edns, /flags: qr aa;/);
    assert.match(edns, /ANSWER: 32,/);
    assert.match(edns, /MSG SIZE {2}rcvd: 557\n/);
    // 20 records fit 512 bytes: no TC either way, and dig's size is explain's.
    const mid = ex('mid.example.test');
    assert.deepEqual(mid.wire, { bytes: 354, bytes_edns: 365, truncated_without_edns: false, truncated_at_1232: false });
    assert.ok(!mid.notes.some((n) => n.includes('TC=1')));
    const midNoEdns = await dig(s.port, 'mid.example.test', '+noedns');
    assert.match(midNoEdns, /flags: qr aa;/);
    assert.match(midNoEdns, /MSG SIZE {2}rcvd: 354\n/);
  });

  test('serialises to JSON as is', () => {
    const e = ex('w2.example.test', 'A', '192.0.2.99');
    assert.deepEqual(JSON.parse(JSON.stringify(e)), e);
  });
});
