// Config warnings: what loads but is most likely not meant. A weighted,
// geolocation or sticky domain whose every server (of a family) has weight 0
// is always "all down" (weight 0 drains), so only when_all_down answers it.
// Real files, loaded by the same loadConfig start-up and reload use.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { configTree } from '../helpers/config-files.ts';

const HEAD = ['dns:', '  listen_address: "127.0.0.1:0"', '  zones: [example.test]'];

async function warningsOf(t: import('node:test').TestContext, lines: readonly string[]): Promise<string[]> {
  const dir = await configTree(t, { 'config.yaml': [...HEAD, ...lines] });
  const { warnings } = await loadConfig(join(dir, 'config.yaml'));
  return warnings.map((w) => `${w.line}:${w.col} ${w.path}: ${w.message}`);
}

const REGIONS = [
  'regions:',
  '  - name: eu',
  '    servers: [{ address: 192.0.2.10, weight: 0 }, { address: 2001:db8::10, weight: 5 }]',
  '  - name: us',
  '    servers: [{ address: 192.0.2.20, weight: 0 }]',
];

test('a weighted, geolocation or sticky domain whose every server has weight 0 warns at its name, once per domain', async (t) => {
  const w = await warningsOf(t, [
    ...REGIONS,
    'domains:',
    '  - { name: w.example.test, regions: [us], routing_algorithm: weighted }',
    '  - { name: g.example.test, regions: [us], routing_algorithm: geolocation, when_all_down: fallback, fallback: [198.51.100.1] }',
    '  - { name: s.example.test, regions: [us], routing_algorithm: sticky, when_all_down: last_healthy }',
    '  - { name: rr.example.test, regions: [us] }',
    '  - { name: f.example.test, regions: [us], routing_algorithm: failover }',
  ]);
  assert.equal(w.length, 3, w.join('\n'));
  assert.match(w[0]!, /^10:13 domains\[0\]\.name: every server of w\.example\.test has weight 0 \(weight 0 drains a server under weighted\): DNS answers it only by when_all_down, and every mode but fallback leaves weight-0 servers out, so it answers SERVFAIL; expected at least one server with a weight above 0/);
  assert.match(w[1]!, /^11:13 domains\[1\]\.name: every server of g\.example\.test has weight 0 .*under geolocation\): DNS answers it only by when_all_down, so it always answers its fallback addresses;/);
  assert.match(w[2]!, /^12:13 domains\[2\]\.name: every server of s\.example\.test .*so it answers SERVFAIL \(when_all_down: last_healthy\);/);
});

test('a family whose every server has weight 0 beside one that answers names the family, across every region of the domain', async (t) => {
  const w = await warningsOf(t, [
    ...REGIONS,
    'domains:',
    '  - { name: mixed.example.test, regions: [eu], routing_algorithm: weighted }',
    '  - { name: both.example.test, regions: [eu, us], routing_algorithm: weighted }',
    '  - { name: v6.example.test, regions: [eu], routing_algorithm: round-robin }',
  ]);
  // eu has IPv4 weight 0 and IPv6 weight 5, us IPv4 weight 0: A queries of mixed and both have nothing answerable.
  assert.equal(w.length, 2, w.join('\n'));
  assert.match(w[0]!, /^10:13 domains\[0\]\.name: every IPv4 server of mixed\.example\.test has weight 0/);
  assert.match(w[1]!, /^11:13 domains\[1\]\.name: every IPv4 server of both\.example\.test has weight 0/);
});

test('no warning when a server of every family has a weight above 0', async (t) => {
  const w = await warningsOf(t, [
    'regions:',
    '  - name: eu',
    '    servers: [{ address: 192.0.2.10, weight: 0 }, { address: 192.0.2.11 }]',
    'domains:',
    '  - { name: w.example.test, regions: [eu], routing_algorithm: weighted }',
  ]);
  assert.deepEqual(w, []);
});
