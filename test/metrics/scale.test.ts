// GET /metrics of a real overwatch with 10 000 servers (10 regions, TCP
// checks against a loopback listener): every server has its series, and a
// scrape stays far below what stalls the main thread for long. The bound is
// generous (a loaded 2-core machine); bench/metrics-scale.ts gives figures.

import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { parseExposition } from './scrape.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
const SERVERS = 10_000;
const REGIONS = 10;
/** Median of a few scrapes, in ms: the new code takes ~60 ms here, the one before ~250 ms. */
const BOUND_MS = 500;

test(`a scrape of ${SERVERS} servers serves every server's series within ${BOUND_MS} ms (median of 5)`, async (t) => {
  // The check target. 10 000 connects in 2.5 s on a loaded 2-core machine
  // drop segments on loopback: a FIN is then retransmitted with backoff for
  // minutes and ends in a reset. Measured at load average 10–15: 7 to 113
  // connections still open at the end in 5 runs of 14; close() alone waited
  // for them (the test took 175 and 222 s, the second failed on the uncaught
  // ECONNRESET). The target's teardown is not under test: a reset is ignored,
  // and the end destroys what is left instead of waiting for it.
  const open = new Set<net.Socket>();
  const backend = net.createServer((socket) => {
    open.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => open.delete(socket));
    socket.end();
  });
  await new Promise<void>((resolve) => backend.listen(0, '0.0.0.0', resolve));
  t.after(() => new Promise<void>((resolve) => {
    backend.close(() => resolve());
    for (const socket of open) socket.destroy();
  }));
  const port = (backend.address() as AddressInfo).port;
  let yaml = 'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }\nregions:\n';
  const perRegion = SERVERS / REGIONS;
  for (let r = 0; r < REGIONS; r++) {
    // One check round: the interval outlasts the test.
    yaml += `  - name: r${r}\n    health_check: { type: tcp, interval: 300s, timeout: 2s }\n    servers:\n`;
    for (let i = 0; i < perRegion; i++) yaml += `      - { address: 127.${10 + r}.${(i >> 8) & 255}.${i & 255}, port: ${port} }\n`;
  }
  yaml += 'domains:\n';
  for (let r = 0; r < REGIONS; r++) yaml += `  - { name: d${r}.example.test, regions: [r${r}] }\n`;
  const metrics = createMetrics({ version: 't', loadedAtMs: Date.now(), processMetrics: false });
  const overwatch = await Overwatch.start(parseConfigText(yaml, 'scale.yaml'), quiet, { healthChecks: 'run', onCheck: metrics.onCheck });
  metrics.attach(overwatch);
  t.after(async () => {
    metrics.close();
    await overwatch.stop(200);
  });

  const times: number[] = [];
  let text = '';
  for (let k = 0; k < 5; k++) {
    const started = performance.now();
    text = await metrics.registry.metrics();
    times.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = parseExposition(text);
  const count = (name: string): number => m.samples.filter((s) => s.name === name).length;
  assert.equal(count('opengslb_server_healthy'), SERVERS);
  assert.equal(count('opengslb_server_latency_samples'), SERVERS);
  assert.equal(count('opengslb_health_check_results_total'), 2 * SERVERS, 'success and failure of every server checked in the first round');
  assert.equal(m.sum('opengslb_health_check_results_total'), SERVERS, 'one probe each');
  assert.equal(m.value('opengslb_server_healthy', { region: 'r3', server: `127.13.0.7:${port}` }), m.value('opengslb_health_check_results_total', { region: 'r3', server: `127.13.0.7:${port}`, result: 'success' }));
  const median = [...times].sort((a, b) => a - b)[2];
  assert.ok(median < BOUND_MS, `scrapes took ${times.map((x) => x.toFixed(0)).join(', ')} ms`);
});
