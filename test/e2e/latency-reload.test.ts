// Latency routing across a reload, with real HTTP backends and real DNS
// queries: a reload that changes a server's check but not what it measures
// (the same type, address, port and keep-alive) keeps the measured latency,
// so a latency domain goes on ranking instead of falling back to round-robin
// until min_samples is met again; one that changes the port starts over.

import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import type { Overwatch } from '../../src/overwatch/overwatch.ts';
import { httpBackend, type Backend } from '../helpers/backends.ts';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const NAME = 'lat.example.test';
// More than 1 (the reload that kept the check used to drop a domain with
// min_samples > 1 to round-robin); 2 proves that as 3 did, a check round
// (1 s) sooner each time the samples are awaited, and still leaves a round
// between the moved check's first sample and its second for the round-robin
// answers to be read.
const MIN_SAMPLES = 2;

function yaml(servers: readonly { address: string; port: number; extra?: string }[], check: string): string {
  return `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - { name: r, servers: [${servers.map((s) => `{ address: ${s.address}, port: ${s.port}${s.extra ?? ''} }`).join(', ')}], health_check: { type: http, ${check} } }
domains:
  - { name: ${NAME}, routing_algorithm: latency, regions: [r], latency_config: { min_samples: ${MIN_SAMPLES}, tie_margin_ms: 20 } }
logging: { level: error }
`;
}

async function answers(port: number, n: number): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < n; i++) for (const a of (await ask(port, NAME, 'A')).answers ?? []) out.add((a as { data: string }).data);
  return out;
}

async function until(check: () => boolean | Promise<boolean>, what: string, limitMs: number): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    assert.ok(Date.now() - started < limitMs, `${what} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The latency samples of the server at `address` as the servers API shows them (read from its live slot). */
function samplesOf(ow: Overwatch, address: string): number {
  const s = ow.servers().find((v) => v.address === address);
  assert.ok(s, `${address} is a server`);
  return s.latency_samples;
}

/** True once every check whose key mentions `part` has a result of its own (not only the verdict it took over). */
function newChecksDone(ow: Overwatch, part: string): boolean {
  const mine = ow.healthStatus().filter((s) => s.key.includes(part));
  return mine.length > 0 && mine.every((s) => s.consecutiveSuccesses + s.consecutiveFailures > 0);
}

async function ranked(t: TestContext): Promise<{ ow: Overwatch; port: number; fast: Backend; slow: Backend }> {
  const [fast, slow] = [await httpBackend(t), await httpBackend(t)];
  slow.delayMs = 80;
  const { overwatch: ow, port } = await startServer(t, yaml([fast, slow], 'interval: 1s, timeout: 500ms, path: /health'), 'lat.yaml', { healthChecks: 'run' });
  // Round-robin until both have MIN_SAMPLES samples, then only the fast one.
  await until(async () => samplesOf(ow, slow.address) >= MIN_SAMPLES && samplesOf(ow, fast.address) >= MIN_SAMPLES, 'both measured', 8000);
  assert.deepEqual([...(await answers(port, 10))], [fast.address]);
  return { ow, port, fast, slow };
}

// The two run at once: each has its own server and backends, and nearly all
// of their time is waiting for check rounds (interval 1 s, the least allowed).
describe('latency routing across a reload', { concurrency: true }, () => {
  test('a reload that changes the path, interval and timeout of a check keeps the measured latency: the latency domain never answers round-robin', async (t) => {
    const { ow, port, fast, slow } = await ranked(t);
    const before = Math.min(samplesOf(ow, fast.address), samplesOf(ow, slow.address));
    const result = await ow.reload(parseConfigText(yaml([fast, slow], 'interval: 2s, timeout: 700ms, path: /ready'), 'lat.yaml'));
    assert.ok(result.ok, result.message);
    // The new checks' first results are in: the average carries on from the old one.
    await until(() => newChecksDone(ow, '"/ready"'), 'the new checks ran', 5000);
    for (const b of [fast, slow]) assert.ok(samplesOf(ow, b.address) > before, `${b.address}: ${samplesOf(ow, b.address)} samples after the reload, more than the ${before} before it`);
    assert.deepEqual([...(await answers(port, 20))], [fast.address], 'latency still ranks: only the fast backend is answered');
  });

  test('a reload that points a check at another port starts that server\'s latency over: the domain answers round-robin until min_samples again', async (t) => {
    const { ow, port, fast, slow } = await ranked(t);
    // The same server (address and port, so the same slot), its check now on another endpoint: measured afresh.
    const probed = await httpBackend(t);
    const servers = [{ address: fast.address, port: fast.port, extra: `, check_address: ${probed.address}, check_port: ${probed.port}` }, { ...slow, extra: '' }];
    const text = yaml(servers, 'interval: 1s, timeout: 500ms, path: /health');
    const result = await ow.reload(parseConfigText(text, 'lat.yaml'));
    assert.ok(result.ok, result.message);
    await until(() => probed.requests > 0 && samplesOf(ow, fast.address) < MIN_SAMPLES, 'the moved check measured afresh', 5000);
    assert.ok(samplesOf(ow, slow.address) >= MIN_SAMPLES, 'the unchanged server keeps its samples');
    assert.deepEqual([...(await answers(port, 20))].sort(), [fast.address, slow.address].sort(), 'round-robin until the moved check has min_samples');
    await until(async () => samplesOf(ow, fast.address) >= MIN_SAMPLES && (await answers(port, 10)).size === 1, 'latency ranks again', 8000);
  });
});
