// The admin API while the overwatch is still starting: it listens before the
// first health round ends, answers live/version, 503 on ready and on every
// other route, and serves normally from the moment the overwatch exists.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from '../helpers/server.ts';
import { call, startTestApi, YAML } from './helpers.ts';

const STARTING = { error: 'starting: the first health round has not finished', code: 503 };

test('answers ready with 503 before the overwatch has started and 200 after', async (t) => {
  const api = await startTestApi(t, null);
  const before = await call(api.base, 'GET', '/api/v1/ready');
  assert.equal(before.status, 503);
  assert.deepEqual(before.body, { ready: false, dns_ready: false, health_ready: false, message: 'starting: the first health round has not finished' });

  const { overwatch } = await startServer(t, YAML);
  api.overwatch = overwatch;
  const after = await call(api.base, 'GET', '/api/v1/ready');
  assert.equal(after.status, 200);
  assert.deepEqual(after.body, { ready: true, dns_ready: true, health_ready: true });
});

test('answers live, version and openapi.json while starting', async (t) => {
  const api = await startTestApi(t, null);
  assert.deepEqual((await call(api.base, 'GET', '/api/v1/live')).body, { alive: true });
  assert.equal((await call(api.base, 'GET', '/api/v1/version')).status, 200);
  assert.equal((await call(api.base, 'GET', '/api/v1/openapi.json')).status, 200);
});

test('answers every other route with 503 while starting', async (t) => {
  const api = await startTestApi(t, null);
  const routes = [
    ['GET', '/api/v1/health/servers'],
    ['GET', '/api/v1/health/regions'],
    ['GET', '/api/v1/domains'],
    ['GET', '/api/v1/overrides'],
    ['GET', '/api/v1/overrides/app.example.test/192.0.2.1'],
    ['DELETE', '/api/v1/overrides/app.example.test/192.0.2.1'],
    ['GET', '/api/v1/explain?name=app.example.test'],
    ['GET', '/api/v1/overwatch/backends'],
  ];
  for (const [method, path] of routes) {
    const r = await call(api.base, method, path);
    assert.equal(r.status, 503, `${method} ${path}`);
    assert.deepEqual(r.body, STARTING);
  }
  const put = await call(api.base, 'PUT', '/api/v1/overrides/app.example.test/192.0.2.1', { body: { healthy: false, source: 'alice' } });
  assert.deepEqual(put.body, STARTING);
  // Expected while starting (the dashboard polls through it): not an error line per request, which docs/api.md keeps for 500s.
  assert.deepEqual(api.logs.filter((l) => JSON.parse(l).level === 'error'), []);
});

test('still answers 404, 405 and 403 while starting', async (t) => {
  const api = await startTestApi(t, null);
  assert.equal((await call(api.base, 'GET', '/api/v1/nothing')).status, 404);
  assert.equal((await call(api.base, 'POST', '/api/v1/domains')).status, 405);
  api.config = { ...api.config, allowedNetworks: ['10.0.0.0/8'] };
  assert.equal((await call(api.base, 'GET', '/api/v1/domains')).status, 403);
  assert.equal((await call(api.base, 'GET', '/api/v1/ready')).status, 503);
});

test('answers ready with 503 from the moment the overwatch begins to stop, so probes take it out while DNS drains', async (t) => {
  const { overwatch } = await startServer(t, YAML);
  const api = await startTestApi(t, overwatch);
  assert.equal((await call(api.base, 'GET', '/api/v1/ready')).status, 200);
  const stopped = overwatch.stop(200);
  const during = await call(api.base, 'GET', '/api/v1/ready');
  assert.equal(during.status, 503);
  assert.deepEqual(during.body, { ready: false, dns_ready: false, health_ready: false, message: 'stopping: this overwatch is shutting down' });
  assert.deepEqual((await call(api.base, 'GET', '/api/v1/live')).body, { alive: true });
  await stopped;
});
