// The dashboard's reply-rate history (src/metrics/query-rates.ts) over a real
// overwatch's counters: real worker threads count real UDP queries; the test
// only chooses the wall-clock times sample() is called with, as the API's
// timer passes Date.now().

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueryRateHistory } from '../../src/metrics/query-rates.ts';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const yaml = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: r1
    servers: [{ address: 192.0.2.1 }]
domains:
  - { name: app.example.test, regions: [r1] }
logging: { level: error }
`;

test('keeps sampling after the wall clock steps back (NTP), instead of freezing until it catches up', async (t) => {
  const { overwatch, port } = await startServer(t, yaml);
  const history = new QueryRateHistory(120);
  const t0 = 1_800_000_000_000;
  history.sample(overwatch.counters, t0);
  for (let i = 0; i < 3; i++) await ask(port, 'app.example.test', 'A');
  history.sample(overwatch.counters, t0 + 5_000);
  assert.equal(history.samples().length, 1);
  assert.equal(Math.round(history.samples()[0].total * history.samples()[0].seconds), 3);

  // The clock is set back an hour; the timer keeps firing every 5 s.
  const back = t0 - 3_600_000;
  history.sample(overwatch.counters, back);
  for (let i = 0; i < 4; i++) await ask(port, 'app.example.test', 'A');
  history.sample(overwatch.counters, back + 5_000);
  for (let i = 0; i < 2; i++) await ask(port, 'app.example.test', 'A');
  history.sample(overwatch.counters, back + 10_000);

  const samples = history.samples();
  const last = samples[samples.length - 1];
  assert.equal(last.atMs, back + 10_000, 'the latest sample is the latest reading, not one from before the step');
  assert.equal(Math.round(last.total * last.seconds), 2);
  // No sample claims a negative or zero length, and the times read oldest first.
  for (const s of samples) assert.ok(s.seconds > 0);
  for (let i = 1; i < samples.length; i++) assert.ok(samples[i].atMs > samples[i - 1].atMs, 'oldest first');
  // Every reply after the step is in some sample (the interval across the step is not lost).
  const afterStep = samples.filter((s) => s.atMs > back).reduce((n, s) => n + s.total * s.seconds, 0);
  assert.equal(Math.round(afterStep), 6);
});
