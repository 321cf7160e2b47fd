// Overrides through the admin API, observed in real DNS answers from the real
// workers: an override takes a server out (or forces a down one in) by the
// next query, and DELETE gives the decision back to the health checks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';
import { call, startTestApi } from './helpers.ts';

// eu answers both servers in one answer, so one query shows who is in.
const YAML = `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }, { address: 192.0.2.2, port: 80 }]
  - name: v6
    servers: [{ address: "2001:db8::a", port: 80 }, { address: "2001:db8::b", port: 80 }]
domains:
  - { name: both.example.test, regions: [eu], max_answers: 2 }
  - { name: v6.example.test, regions: [v6], max_answers: 2 }
  - { name: other.example.test, regions: [eu], max_answers: 2 }
logging: { level: error }
`;

/** The sorted addresses of one answer over UDP, from every worker the kernel picks. */
async function addresses(port: number, name: string, type = 'A'): Promise<string[]> {
  const r = await ask(port, name, type);
  if (r.rcode !== 'NOERROR') return [r.rcode ?? 'UNKNOWN'];
  return (r.answers ?? []).map((a) => (a as { data: string }).data).sort();
}

/**
 * Asserts that the next `times` answers are `want`, with no wait and no retry:
 * the overwatch writes the live slots before the API answers, so the very first
 * query after the response must already see the change, on every worker.
 */
async function assertAnswers(port: number, name: string, want: string[], type = 'A', times = 6): Promise<void> {
  for (let i = 0; i < times; i++) assert.deepEqual(await addresses(port, name, type), want, `query ${i + 1} for ${name} ${type}`);
}

test('an override removes a server from real DNS answers by the next query, and DELETE brings it back', async (t) => {
  const { overwatch, port } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  assert.deepEqual(await addresses(port, 'both.example.test'), ['192.0.2.1', '192.0.2.2']);

  const put = await call(api.base, 'PUT', '/api/v1/overrides/both.example.test/192.0.2.1', { body: { healthy: false, reason: 'kernel upgrade', source: 'alice' } });
  assert.equal(put.status, 200);
  await assertAnswers(port, 'both.example.test', ['192.0.2.2']);
  // Per domain: the same address in another domain keeps being answered.
  assert.deepEqual(await addresses(port, 'other.example.test'), ['192.0.2.1', '192.0.2.2']);

  const del = await call(api.base, 'DELETE', '/api/v1/overrides/both.example.test/192.0.2.1');
  assert.equal(del.status, 204);
  assert.equal(del.body, null);
  await assertAnswers(port, 'both.example.test', ['192.0.2.1', '192.0.2.2']);
});

test('an override marked healthy outranks failing health checks until it is removed', async (t) => {
  const { overwatch, port } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  overwatch.setHealth(overwatch.slotOf('eu', '192.0.2.2', 80) as number, HEALTH_UNHEALTHY);
  await assertAnswers(port, 'both.example.test', ['192.0.2.1']);

  const put = await call(api.base, 'PUT', '/api/v1/overrides/both.example.test/192.0.2.2', { body: { healthy: true, reason: 'check is wrong', source: 'bob' } });
  assert.equal(put.status, 200);
  await assertAnswers(port, 'both.example.test', ['192.0.2.1', '192.0.2.2']);
  const domains = (await call(api.base, 'GET', '/api/v1/domains')).body.domains;
  const seen = domains.find((d: { name: string }) => d.name === 'both.example.test').servers.find((s: { address: string }) => s.address === '192.0.2.2');
  assert.equal(seen.status, 'healthy');
  assert.equal(seen.authority, 'override');
  assert.equal(seen.override.source, 'bob');
  const server = (await call(api.base, 'GET', '/api/v1/health/servers?region=eu')).body.servers.find((s: { address: string }) => s.address === '192.0.2.2');
  assert.equal(server.status, 'unhealthy', 'the health view keeps the checks\' verdict');
  assert.equal(server.authority, 'override');
  assert.deepEqual(server.overrides, [{ service: 'both.example.test', scope: 'domain', healthy: true, reason: 'check is wrong', source: 'bob', expires_at: null }]);

  assert.equal((await call(api.base, 'DELETE', '/api/v1/overrides/both.example.test/192.0.2.2')).status, 204);
  await assertAnswers(port, 'both.example.test', ['192.0.2.1']);
});

test('PUT answers the override as stored, with the service and address normalised', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  const before = Date.now();
  const r = await call(api.base, 'PUT', '/api/v1/overrides/Both.Example.TEST./192.0.2.1', { body: { healthy: false, source: 'alice' } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  const { created_at: createdAt, ...rest } = r.body;
  assert.deepEqual(rest, {
    scope: 'domain', service: 'both.example.test', address: '192.0.2.1', region: null, healthy: false, reason: '', source: 'alice', expires_at: null, authority: 'override', active: true,
  });
  assert.ok(Date.parse(createdAt) >= before - 1000 && createdAt.endsWith('Z'));
  assert.deepEqual((await call(api.base, 'GET', '/api/v1/overrides')).body, { overrides: [r.body] });
  assert.deepEqual((await call(api.base, 'GET', '/api/v1/overrides/both.example.test/192.0.2.1')).body, r.body);
});

const V6_FORMS = [
  { name: 'plain with colons', path: '2001:db8::a' },
  { name: 'URL-encoded', path: '2001%3Adb8%3A%3Aa' },
  { name: 'in full, upper case', path: '2001:0DB8:0000:0000:0000:0000:0000:000A' },
];
for (const form of V6_FORMS) {
  test(`takes an IPv6 address ${form.name} and answers it in normal form`, async (t) => {
    const { overwatch, port } = await startServer(t, YAML);
    const api = await startTestApi(t, overwatch);
    const r = await call(api.base, 'PUT', `/api/v1/overrides/v6.example.test/${form.path}`, { body: { healthy: false, source: 'carol' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.address, '2001:db8::a');
    await assertAnswers(port, 'v6.example.test', ['2001:db8::b'], 'AAAA');
    assert.equal((await call(api.base, 'DELETE', `/api/v1/overrides/V6.example.test./${form.path}`)).status, 204);
    await assertAnswers(port, 'v6.example.test', ['2001:db8::a', '2001:db8::b'], 'AAAA');
  });
}

test('answers 404 for an address the domain does not answer, or a domain not served, and changes nothing', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  const body = { healthy: false, source: 'alice' };
  const unknownAddress = await call(api.base, 'PUT', '/api/v1/overrides/both.example.test/192.0.2.99', { body });
  assert.equal(unknownAddress.status, 404);
  assert.equal(unknownAddress.body.code, 404);
  assert.match(unknownAddress.body.error, /192\.0\.2\.99/);
  const wrongFamily = await call(api.base, 'PUT', '/api/v1/overrides/both.example.test/2001:db8::a', { body });
  assert.equal(wrongFamily.status, 404);
  const unknownDomain = await call(api.base, 'PUT', '/api/v1/overrides/nowhere.example.test/192.0.2.1', { body });
  assert.equal(unknownDomain.status, 404);
  assert.match(unknownDomain.body.error, /nowhere\.example\.test/);
  assert.deepEqual((await call(api.base, 'GET', '/api/v1/overrides')).body, { overrides: [] });
});

test('answers 404 to DELETE and GET of an override that does not exist', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  for (const method of ['DELETE', 'GET']) {
    const r = await call(api.base, method, '/api/v1/overrides/both.example.test/192.0.2.1');
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: 'no override of 192.0.2.1 in both.example.test; GET /api/v1/overrides lists them', code: 404 });
  }
});

test('logs one info line per change with who, why, from where and what', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  await call(api.base, 'PUT', '/api/v1/overrides/both.example.test/192.0.2.1', { body: { healthy: false, reason: 'disk full', source: 'alice' } });
  await call(api.base, 'DELETE', '/api/v1/overrides/both.example.test/192.0.2.1');
  await call(api.base, 'GET', '/api/v1/overrides');
  const lines = api.logs.map((l) => JSON.parse(l)).filter((l) => l.msg !== 'API listening');
  assert.equal(lines.length, 2, api.logs.join('\n'));
  for (const [line, msg] of [[lines[0], 'override set'], [lines[1], 'override cleared']] as const) {
    assert.equal(line.level, 'info');
    assert.equal(line.msg, msg);
    assert.equal(line.component, 'api');
    assert.equal(line.scope, 'domain');
    assert.equal(line.service, 'both.example.test');
    assert.equal(line.address, '192.0.2.1');
    assert.equal(line.healthy, false);
    assert.equal(line.source, 'alice');
    assert.equal(line.reason, 'disk full');
    assert.equal(line.client, '127.0.0.1');
  }
});

test('answers 500 with the reason when the override cannot be persisted, and logs it', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  // A stand-in whose store refuses writes, as OPENGSLB_ERR_STATE_WRITE reports it. Only setOverride is
  // called on it (inherited methods would miss the real instance's private fields).
  const refusing = Object.assign(Object.create(overwatch) as typeof overwatch, {
    setOverride: async () => {
      throw new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', 'could not write overrides/both.example.test/192.0.2.1: ENOSPC; the override was not applied');
    },
  });
  const api = await startTestApi(t, refusing);
  const r = await call(api.base, 'PUT', '/api/v1/overrides/both.example.test/192.0.2.1', { body: { healthy: false, source: 'alice' } });
  assert.equal(r.status, 500);
  assert.deepEqual(r.body, { error: 'could not write overrides/both.example.test/192.0.2.1: ENOSPC; the override was not applied', code: 500 });
  assert.ok(api.logs.some((l) => JSON.parse(l).level === 'error' && l.includes('OPENGSLB_ERR_STATE_WRITE')));
  assert.deepEqual(overwatch.overrides(), []);
});

test('a region override naming a configured region in another case is refused with 404 naming the configured spelling; nothing is stored', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  const r = await call(api.base, 'PUT', '/api/v1/overrides/region/EU', { body: { healthy: false, source: 'alice' } });
  assert.equal(r.status, 404);
  assert.match(r.body.error, /no region "EU" is served; region names are case-sensitive, expected "eu"/);
  assert.deepEqual(overwatch.registry.overrides(), []);
});
