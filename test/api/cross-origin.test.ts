// Cross-site request forgery against the admin API, in a real browser: a page
// of another origin that the operator opens on the overwatch's host must not
// make the browser write to the API on its behalf. A form POST is a "simple"
// request (no preflight), so the browser sends it whatever the API answers;
// without api.token (the loopback default) nothing else would stop it.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { browserSkip, launchBrowser, startDashboardServer } from '../helpers/browser.ts';
import { call } from './helpers.ts';

const CONFIG = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - { name: a, servers: [{ address: 192.0.2.1 }], health_check: { type: none } }
domains:
  - { name: app.example.test, regions: [a] }
api: { enabled: true, address: "127.0.0.1:0" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;

test('a page of another origin cannot reload the config through a form POST; the dashboard of the API\'s own origin still writes', { skip: browserSkip, timeout: 120_000 }, async (t) => {
  const { base } = await startDashboardServer(t, 'opengslb-cross-origin-', CONFIG);
  // The attacker's page: same host, another port, so another origin (and the same site).
  const evil = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><form id="f" method="post" action="${base}/api/v1/reload"></form><script>document.getElementById('f').submit()</script>`);
  });
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
  t.after(() => evil.close());

  const browser = await launchBrowser(t);
  const page = await browser.newPage();
  const submitted = page.waitForResponse((r) => r.url() === `${base}/api/v1/reload`);
  await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
  const answer = await submitted;
  assert.equal(answer.status(), 403);
  assert.match(((await answer.json()) as { error: string }).error, /^a write from a page of another origin \(http:\/\/127\.0\.0\.1:\d+\) is refused/);
  const status = await call(base, 'GET', '/api/v1/status');
  assert.deepEqual(status.body.reloads, { success: 0, failure: 0 });

  // The same POST from a page the API itself serves (same origin) is a write like any other.
  await page.goto(`${base}/`);
  const own = await page.evaluate(async () => (await fetch('/api/v1/reload', { method: 'POST' })).status);
  assert.equal(own, 200);
  assert.equal((await call(base, 'GET', '/api/v1/status')).body.reloads.success, 1);
});
