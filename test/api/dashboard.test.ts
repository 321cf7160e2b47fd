// The dashboard's HTTP side: the page and its files at / and /dashboard/*,
// with their security headers, behind the API's allowlist; and
// GET /api/v1/stats/queries, the reply rates the page charts, counted from
// real DNS queries to a real overwatch. (The page in a browser:
// test/e2e/dashboard.test.ts.)

import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { API_HEADERS, CONTENT_SECURITY_POLICY, DASHBOARD_DIR } from '../../src/api/dashboard-routes.ts';
import { ask } from '../helpers/dns-client.ts';
import { launchServer, type Started } from '../helpers/server.ts';
import { call, openTestApi, startTestApi, YAML, type StartedApi } from './helpers.ts';

const INTERVAL_MS = 200;
let server: Started;
let api: StartedApi;

before(async () => {
  server = await launchServer(YAML);
  api = await openTestApi(server.overwatch, {}, '127.0.0.1', { queryRateIntervalMs: INTERVAL_MS });
});
after(async () => {
  await api.api.close();
  await server.overwatch.stop(500);
});

describe('the dashboard page', () => {
  test('GET / answers the HTML page with a strict Content-Security-Policy, nosniff and no referrer', async () => {
    const res = await fetch(`${api.base}/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|https?:/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    const html = await res.text();
    assert.match(html, /<script type="module" src="\/dashboard\/dashboard\.js"><\/script>/);
    // Nothing inline that the policy would block: no script body, no style element or attribute, no on* handler.
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i);
  });

  test('every file of src/api/dashboard is served under /dashboard/ with its type and the same headers', async () => {
    const files = (await readdir(DASHBOARD_DIR)).filter((f) => f !== 'index.html').sort();
    assert.deepEqual(files, ['api.js', 'chart.js', 'dashboard.js', 'icon.svg', 'style.css']);
    for (const f of files) {
      const res = await fetch(`${api.base}/dashboard/${f}`);
      assert.equal(res.status, 200, f);
      assert.equal(res.headers.get('content-type'), { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' }[f.split('.').pop() as string], f);
      assert.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, f);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', f);
      assert.ok((await res.text()).length > 100, f);
    }
    const missing = await call(api.base, 'GET', '/dashboard/nothing.js');
    assert.equal(missing.status, 404);
  });

  test('the page and its files need the allowlist, as the API does', async (t) => {
    const outside = await startTestApi(t, server.overwatch, { allowedNetworks: ['10.0.0.0/8'] });
    for (const path of ['/', '/dashboard/dashboard.js']) {
      const r = await call(outside.base, 'GET', path);
      assert.equal(r.status, 403, path);
      assert.deepEqual(r.body, { error: 'client 127.0.0.1 is not in api.allowed_networks', code: 403 });
    }
  });

  test('the page answers while the overwatch starts; the JSON routes it reads answer 503 then', async (t) => {
    const starting = await startTestApi(t, null);
    assert.equal((await fetch(`${starting.base}/`)).status, 200);
    assert.equal((await fetch(`${starting.base}/dashboard/style.css`)).status, 200);
    assert.equal((await call(starting.base, 'GET', '/api/v1/stats/queries')).status, 503);
  });

  test('a write to the page is 405 with the methods it takes', async () => {
    const r = await call(api.base, 'POST', '/');
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
  });
});

describe('the API\'s security headers', () => {
  /** The raw head of the answer to `request` sent as is (what Node's parser refuses never reaches a route). */
  async function rawHead(request: string): Promise<string> {
    const { port } = new URL(api.base);
    return await new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(request));
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('end', () => resolve(text.split('\r\n\r\n')[0].toLowerCase()));
      socket.on('error', reject);
    });
  }

  test('every JSON answer, errors and refusals included, carries nosniff, no-store and a policy that frames nothing', async (t) => {
    const outside = await startTestApi(t, server.overwatch, { allowedNetworks: ['10.0.0.0/8'] });
    const answers = [
      await fetch(`${api.base}/api/v1/status`),
      await fetch(`${api.base}/api/v1/nothing`),
      await fetch(`${api.base}/api/v1/overrides/%zz`),
      await fetch(`${api.base}/api/v1/overrides/server/192.0.2.1`, { method: 'PUT', body: 'x', headers: { 'content-type': 'text/plain' } }),
      await fetch(`${outside.base}/api/v1/status`),
    ];
    for (const res of answers) {
      for (const [name, value] of Object.entries(API_HEADERS)) assert.equal(res.headers.get(name), value, `${res.url} ${res.status} ${name}`);
      await res.body?.cancel();
    }
    assert.deepEqual(answers.map((r) => r.status), [200, 404, 400, 415, 403]);
    // Refused by Node's HTTP parser, written to the socket before any route.
    const head = await rawHead('BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.match(head, /^http\/1\.1 400 /);
    for (const [name, value] of Object.entries(API_HEADERS)) assert.ok(head.includes(`\r\n${name}: ${value}\r\n`.toLowerCase()), `${name} in ${head}`);
  });

  test('the page keeps its own policy and revalidates; the shared headers come with it', async () => {
    const res = await fetch(`${api.base}/`);
    assert.equal(res.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    await res.body?.cancel();
  });
});

describe('GET /api/v1/stats/queries', () => {
  test('counts real DNS replies per second by rcode, one sample per interval', async () => {
    // Give the sampler a baseline, then send a known mix: NOERROR, NXDOMAIN, REFUSED.
    await new Promise((r) => setTimeout(r, INTERVAL_MS * 2));
    const sent = { NOERROR: 30, NXDOMAIN: 10, REFUSED: 5 };
    for (let i = 0; i < sent.NOERROR; i++) assert.equal((await ask(server.port, 'app.example.test', 'A')).rcode, 'NOERROR');
    for (let i = 0; i < sent.NXDOMAIN; i++) assert.equal((await ask(server.port, 'missing.example.test', 'A')).rcode, 'NXDOMAIN');
    for (let i = 0; i < sent.REFUSED; i++) assert.equal((await ask(server.port, 'elsewhere.test', 'A')).rcode, 'REFUSED');
    await new Promise((r) => setTimeout(r, INTERVAL_MS * 3));
    const r = await call(api.base, 'GET', '/api/v1/stats/queries');
    assert.equal(r.status, 200);
    assert.equal(r.body.interval_seconds, INTERVAL_MS / 1000);
    assert.equal(r.body.window_seconds, (INTERVAL_MS / 1000) * 120);
    const samples = r.body.samples as { at: string; seconds: number; queries_per_second: number; by_rcode: Record<string, number> }[];
    assert.ok(samples.length >= 3, `${samples.length} samples`);
    for (let i = 1; i < samples.length; i++) assert.ok(Date.parse(samples[i].at) > Date.parse(samples[i - 1].at), 'oldest first');
    // Rates × interval lengths add back up to the replies sent (each sample's own length, as measured).
    const counted: Record<string, number> = {};
    let total = 0;
    for (const s of samples) {
      total += s.queries_per_second * s.seconds;
      for (const [code, perSec] of Object.entries(s.by_rcode)) counted[code] = (counted[code] ?? 0) + perSec * s.seconds;
    }
    for (const [code, n] of Object.entries(sent)) assert.equal(Math.round(counted[code] ?? 0), n, code);
    assert.deepEqual(Object.keys(counted).sort(), Object.keys(sent).sort());
    assert.equal(Math.round(total), sent.NOERROR + sent.NXDOMAIN + sent.REFUSED);
  });

  test('is listed in the OpenAPI document with its schema', async () => {
    const doc = (await call(api.base, 'GET', '/api/v1/openapi.json')).body;
    const op = doc.paths['/api/v1/stats/queries'].get;
    assert.deepEqual(op.responses['200'].content['application/json'].schema.required, ['interval_seconds', 'window_seconds', 'samples', 'generated_at']);
    assert.equal(doc.paths['/'], undefined, 'the page is not a JSON route');
  });
});
