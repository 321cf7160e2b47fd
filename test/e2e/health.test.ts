// Health checks driving real DNS answers: real HTTP and TCP backends on
// loopback are stopped, started, failed and slowed, and every transition is
// observed through DNS queries to the real server, never by reading state.

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { ask } from '../helpers/dns-client.ts';
import { httpBackend, tcpBackend, type Backend } from '../helpers/backends.ts';
import { startServer } from '../helpers/server.ts';

const INTERVAL_MS = 1000;
const TIMEOUT_MS = 300;

/** The addresses in one A answer, or the rcode when there is none. */
async function answer(port: number, name: string): Promise<string[] | string> {
  const r = await ask(port, name, 'A');
  if (r.rcode !== 'NOERROR') return r.rcode ?? 'UNKNOWN';
  return (r.answers ?? []).map((a) => (a as { data: string }).data);
}

/** Asks `n` times and returns the set of addresses seen (or rcodes). */
async function seen(port: number, name: string, n = 12): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < n; i++) {
    const a = await answer(port, name);
    if (typeof a === 'string') out.add(a);
    else for (const ip of a) out.add(ip);
  }
  return out;
}

/** Polls DNS every 100 ms until `ok(set)` holds; returns the ms it took, or fails after `limitMs`. */
async function until(port: number, name: string, ok: (s: Set<string>) => boolean, limitMs: number, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    const s = await seen(port, name, 6);
    if (ok(s)) return Date.now() - started;
    if (Date.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms; last answers ${[...s].join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function config(regions: string, domains: string): string {
  return `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
${regions}
domains:
${domains}
logging: { level: error }
`;
}

const check = (type: string, extra = ''): string =>
  `{ type: ${type}, interval: ${INTERVAL_MS}ms, timeout: ${TIMEOUT_MS}ms, failure_threshold: 2, success_threshold: 2${extra} }`;

function servers(list: Backend[]): string {
  return list.map((b) => `{ address: ${b.address}, port: ${b.port} }`).join(', ');
}

// Leaving takes failure_threshold probes (the first may come up to one
// interval after the failure starts) plus the timeout; returning takes
// success_threshold probes. One extra interval covers jitter and polling.
const LEAVE_LIMIT_MS = 2 * INTERVAL_MS + INTERVAL_MS + TIMEOUT_MS + INTERVAL_MS;
const RETURN_LIMIT_MS = 2 * INTERVAL_MS + INTERVAL_MS + INTERVAL_MS;

describe('health checks drive DNS answers', { concurrency: true }, () => {
  test('round-robin drops a stopped HTTP backend within the thresholds and takes it back once it answers again', async (t: TestContext) => {
    const backends = [await httpBackend(t), await httpBackend(t), await httpBackend(t)];
    const { port } = await startServer(t, config(`  - { name: r, servers: [${servers(backends)}], health_check: ${check('http')} }`, '  - { name: rr.example.test, regions: [r] }'), 'rr.yaml', { healthChecks: 'run' });
    const all = backends.map((b) => b.address).sort();
    assert.deepEqual([...(await seen(port, 'rr.example.test'))].sort(), all, 'every backend is answered after the first round');
    await backends[1].stop();
    const left = await until(port, 'rr.example.test', (s) => !s.has(backends[1].address) && s.size === 2, LEAVE_LIMIT_MS, 'stopped backend leaves');
    t.diagnostic(`left the answers ${left} ms after it stopped`);
    await backends[1].start();
    const back = await until(port, 'rr.example.test', (s) => s.has(backends[1].address), RETURN_LIMIT_MS, 'restarted backend returns');
    t.diagnostic(`back in the answers ${back} ms after it restarted`);
  });

  test('an HTTP status outside expected_status takes a server out, and a good one brings it back', async (t: TestContext) => {
    const [a, b] = [await httpBackend(t), await httpBackend(t)];
    const { port } = await startServer(
      t,
      config(`  - { name: r, servers: [${servers([a, b])}], health_check: ${check('http', ', expected_status: [200, "204-204"], path: /ready')} }`, '  - { name: st.example.test, regions: [r] }'),
      'status.yaml',
      { healthChecks: 'run' },
    );
    a.status = 503;
    await until(port, 'st.example.test', (s) => s.size === 1 && s.has(b.address), LEAVE_LIMIT_MS, '503 leaves');
    a.status = 204;
    await until(port, 'st.example.test', (s) => s.has(a.address), RETURN_LIMIT_MS, '204 returns');
    assert.ok(a.requests >= 4, 'the check really requested the backend');
  });

  test('a TCP check follows a listener that stops and starts', async (t: TestContext) => {
    const [a, b] = [await tcpBackend(t), await tcpBackend(t)];
    const { port } = await startServer(t, config(`  - { name: r, servers: [${servers([a, b])}], health_check: ${check('tcp')} }`, '  - { name: tcp.example.test, regions: [r] }'), 'tcp.yaml', { healthChecks: 'run' });
    assert.equal((await seen(port, 'tcp.example.test')).size, 2);
    await a.stop();
    await until(port, 'tcp.example.test', (s) => s.size === 1 && s.has(b.address), LEAVE_LIMIT_MS, 'stopped listener leaves');
    await a.start();
    await until(port, 'tcp.example.test', (s) => s.has(a.address), RETURN_LIMIT_MS, 'listener returns');
  });

  test('a server that is down at start is never answered: the first round decides before DNS listens', async (t: TestContext) => {
    const [up, down] = [await httpBackend(t), await httpBackend(t)];
    await down.stop();
    const { port } = await startServer(t, config(`  - { name: r, servers: [${servers([up, down])}], health_check: ${check('http')} }`, '  - { name: first.example.test, regions: [r] }'), 'first.yaml', { healthChecks: 'run' });
    // The very first answers already exclude it: no answer ever comes from an unknown state.
    assert.deepEqual([...(await seen(port, 'first.example.test', 20))], [up.address]);
  });

  test('failover walks down three levels as backends stop and returns to the primary when it recovers', async (t: TestContext) => {
    const [p1, p2, p3] = [await httpBackend(t), await httpBackend(t), await httpBackend(t)];
    const regions = [p1, p2, p3].map((b, i) => `  - { name: p${i + 1}, servers: [${servers([b])}], health_check: ${check('http')} }`).join('\n');
    const { port } = await startServer(t, config(regions, '  - { name: fo.example.test, routing_algorithm: failover, regions: [p1, p2, p3] }'), 'fo.yaml', { healthChecks: 'run' });
    const only = (b: Backend) => (s: Set<string>) => s.size === 1 && s.has(b.address);
    assert.ok(only(p1)(await seen(port, 'fo.example.test')));
    await p1.stop();
    await until(port, 'fo.example.test', only(p2), LEAVE_LIMIT_MS, 'second level');
    await p2.stop();
    await until(port, 'fo.example.test', only(p3), LEAVE_LIMIT_MS, 'third level');
    await p1.start();
    await until(port, 'fo.example.test', only(p1), RETURN_LIMIT_MS, 'back to the primary');
  });

  test('latency routing answers the fastest backend and switches when it is slowed', async (t: TestContext) => {
    const [a, b] = [await httpBackend(t), await httpBackend(t)];
    b.delayMs = 120;
    const hc = `{ type: http, interval: ${INTERVAL_MS}ms, timeout: 800ms, ema_alpha: 0.7 }`;
    const { port } = await startServer(
      t,
      config(`  - { name: r, servers: [${servers([a, b])}], health_check: ${hc} }`, '  - { name: lat.example.test, routing_algorithm: latency, regions: [r], latency_config: { min_samples: 2, tie_margin_ms: 20 } }'),
      'lat.yaml',
      { healthChecks: 'run' },
    );
    // Until both have two samples the domain answers round-robin; then only the fast one.
    await until(port, 'lat.example.test', (s) => s.size === 1 && s.has(a.address), 4 * INTERVAL_MS, 'fast backend preferred');
    a.delayMs = 200;
    b.delayMs = 0;
    const switched = await until(port, 'lat.example.test', (s) => s.size === 1 && s.has(b.address), 6 * INTERVAL_MS, 'switch to the now faster backend');
    t.diagnostic(`switched ${switched} ms after the delays changed`);
  });

  test('latency routing skips a backend above max_latency_ms and spreads near-ties round-robin', async (t: TestContext) => {
    const [a, b, c] = [await httpBackend(t), await httpBackend(t), await httpBackend(t)];
    c.delayMs = 150;
    const hc = `{ type: http, interval: ${INTERVAL_MS}ms, timeout: 800ms }`;
    const { port } = await startServer(
      t,
      config(`  - { name: r, servers: [${servers([a, b, c])}], health_check: ${hc} }`, '  - { name: tie.example.test, routing_algorithm: latency, regions: [r], latency_config: { min_samples: 1, max_latency_ms: 100, tie_margin_ms: 30 } }'),
      'tie.yaml',
      { healthChecks: 'run' },
    );
    // a and b answer in about the same time: both share answers; c is over the ceiling.
    await until(port, 'tie.example.test', (s) => s.size === 2 && s.has(a.address) && s.has(b.address), 3 * INTERVAL_MS, 'near-ties share, slow one skipped');
  });

  describe('when every server is down', { concurrency: true }, () => {
    const modes = [
      { mode: 'servfail', extra: '', expect: (s: Set<string>, _all: string[]) => s.size === 1 && s.has('SERVFAIL') },
      { mode: 'all', extra: '', expect: (s: Set<string>, all: string[]) => all.every((a) => s.has(a)) },
      { mode: 'fallback', extra: ', fallback: [192.0.2.250, "2001:db8::250"]', expect: (s: Set<string>) => s.size === 1 && s.has('192.0.2.250') },
      { mode: 'last_healthy', extra: '', expect: (s: Set<string>, all: string[]) => s.size === 1 && s.has(all[1]) },
    ] as const;
    for (const m of modes) {
      test(`when_all_down: ${m.mode} answers as configured and is counted`, async (t: TestContext) => {
        const [a, b] = [await httpBackend(t), await httpBackend(t)];
        const { port, overwatch } = await startServer(
          t,
          config(`  - { name: r, servers: [${servers([a, b])}], health_check: ${check('http')} }`, `  - { name: down.example.test, regions: [r], when_all_down: ${m.mode}${m.extra} }`),
          `${m.mode}.yaml`,
          { healthChecks: 'run' },
        );
        assert.equal((await seen(port, 'down.example.test')).size, 2);
        // a goes down first, b a few seconds later: b is the last healthy one.
        await a.stop();
        await until(port, 'down.example.test', (s) => s.size === 1 && s.has(b.address), LEAVE_LIMIT_MS, 'a leaves');
        await new Promise((r) => setTimeout(r, 3 * INTERVAL_MS + 100));
        await b.stop();
        // Counted once all are down; the answers from then on follow the mode.
        const counter = `ALL_DOWN_${m.mode.toUpperCase()}`;
        await until(port, 'down.example.test', () => overwatch.readCounters()[counter] > 0, LEAVE_LIMIT_MS, `${counter} counted`);
        assert.ok(m.expect(await seen(port, 'down.example.test'), [a.address, b.address]), `all-down answers follow ${m.mode}`);
        assert.ok(overwatch.readCounters().ALL_DOWN > 0, 'ALL_DOWN counted');
        // And back to normal once a server recovers.
        await a.start();
        await until(port, 'down.example.test', (s) => s.size === 1 && s.has(a.address), RETURN_LIMIT_MS, 'recovered server answers');
      });
    }
  });
});
