// opengslb-cli's geolocation commands as child processes against the real
// opengslb binary's admin API: `geo test`, and `geo mappings list|add|remove`
// with the mapping seen by DNS as soon as `add` returns.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, run, startOpengslb, type RunResult } from '../helpers/child.ts';
import { tempDir, writeTree } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';

function ok(r: RunResult): string {
  assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  return r.stdout;
}

test('geo test says how an address is decided, and geo mappings add/list/remove change DNS answers at once', async (t) => {
  const dir = await tempDir(t, 'opengslb-cli-geo-');
  await writeTree(dir, {
    'config.yaml': [
      'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
      'overwatch:',
      '  data_dir: ./data',
      '  geolocation:',
      '    default_region: eu',
      '    custom_mappings: [{ cidr: 10.0.0.0/8, region: us, comment: office }]',
      'regions:',
      '  - { name: eu, health_check: { type: none }, servers: [{ address: 192.0.2.1 }] }',
      '  - { name: us, health_check: { type: none }, servers: [{ address: 198.51.100.1 }] }',
      'domains:',
      '  - { name: geo.example.test, routing_algorithm: geolocation, regions: [eu, us] }',
      'api: { enabled: true, address: "127.0.0.1:0" }',
      'logging: { level: info, format: text }',
    ],
  });
  const server = await startOpengslb(t, join(dir, 'config.yaml'));
  const apiLine = await server.out.waitFor(/API listening/);
  const api = `http://${(/address=(127\.0\.0\.1:\d+)/.exec(apiLine) as RegExpExecArray)[1]}`;
  const dnsLine = await server.out.waitFor(/DNS listening/);
  const port = Number((/address=127\.0\.0\.1:(\d+)/.exec(dnsLine) as RegExpExecArray)[1]);
  const env: NodeJS.ProcessEnv = { ...process.env, USER: 'tester' };
  const cli = (...args: string[]): Promise<RunResult> => run(CLI, [...args, '--api', api], { env });
  const dnsFor = async (ecs: string): Promise<string> => {
    const r = await ask(port, 'geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: ecs } } });
    return (r.answers?.[0] as { data: string } | undefined)?.data ?? 'none';
  };

  const tested = ok(await cli('geo', 'test', '10.1.2.3'));
  assert.match(tested, /^Region: +us$/m);
  assert.match(tested, /^Decided by: +custom mapping$/m);
  assert.match(tested, /^Custom mapping: +10\.0\.0\.0\/8$/m);
  assert.match(tested, /^ECS scope: +\/8$/m);

  assert.equal(await dnsFor('172.20.0.0'), '192.0.2.1');
  assert.equal(ok(await cli('geo', 'mappings', 'add', '172.16.0.0/12', 'us', '--comment', 'VPN')), 'Mapped 172.16.0.0/12 to us (source: tester@' + (await import('node:os')).hostname() + ')\n');
  assert.equal(await dnsFor('172.20.0.0'), '198.51.100.1', 'DNS follows the mapping once add has returned');
  const listed = ok(await cli('geo', 'mappings', 'list'));
  assert.match(listed, /^10\.0\.0\.0\/8 +us +config +yes +office/m);
  assert.match(listed, /^172\.16\.0\.0\/12 +us +tester@\S+ +yes +VPN/m);
  assert.equal(ok(await cli('geo', 'mappings', 'remove', '172.16.0.0/12')), 'Removed the mapping of 172.16.0.0/12 (was us)\n');
  assert.equal(await dnsFor('172.20.0.0'), '192.0.2.1');

  const refused = await cli('geo', 'mappings', 'add', '10.0.0.0/8', 'eu');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /the config maps this network already/);
  const json = JSON.parse(ok(await cli('geo', 'test', '10.9.9.9', '--json'))) as { region: string; match_type: string };
  assert.deepEqual([json.region, json.match_type], ['us', 'custom_mapping']);
});

test('a reload that adds a geolocation domain routes by the GeoIP database also when geo test opened it before', async (t) => {
  const dir = await tempDir(t, 'opengslb-cli-geo-');
  const base = [
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'overwatch: { data_dir: ./data }',
    'regions:',
    '  - { name: eu, countries: [DE], health_check: { type: none }, servers: [{ address: 192.0.2.1 }] }',
    '  - { name: us, countries: [US], health_check: { type: none }, servers: [{ address: 198.51.100.1 }] }',
    'api: { enabled: true, address: "127.0.0.1:0" }',
    'logging: { level: info, format: text }',
    'domains:',
    '  - { name: www.example.test, regions: [eu] }',
  ];
  await writeTree(dir, { 'config.yaml': base });
  const server = await startOpengslb(t, join(dir, 'config.yaml'));
  const apiLine = await server.out.waitFor(/API listening/);
  const api = `http://${(/address=(127\.0\.0\.1:\d+)/.exec(apiLine) as RegExpExecArray)[1]}`;
  const dnsLine = await server.out.waitFor(/DNS listening/);
  const port = Number((/address=127\.0\.0\.1:(\d+)/.exec(dnsLine) as RegExpExecArray)[1]);
  const cli = (...args: string[]): Promise<RunResult> => run(CLI, [...args, '--api', api], { env: { ...process.env, USER: 'tester' } });

  // No domain routes by geolocation yet: the API opens the database for this question.
  assert.match(ok(await cli('geo', 'test', '217.160.0.1')), /^Country: +DE$/m);
  // us first: a client the workers cannot place falls back to it (reason no_region), so an answer from eu shows the database decided.
  await writeTree(dir, { 'config.yaml': [...base, '  - { name: geo.example.test, routing_algorithm: geolocation, regions: [us, eu] }'] });
  ok(await cli('reload'));
  const r = await ask(port, 'geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: '217.160.0.0' } } });
  assert.equal((r.answers?.[0] as { data: string } | undefined)?.data, '192.0.2.1', 'a client in DE gets eu, by the GeoIP database');
});
