// What a browser does with the admin API's answers, in Debian's headless
// Chromium driven by playwright-core (as test/e2e/dashboard.test.ts), against
// a real `opengslb` child process: every JSON answer, errors included, is
// marked not to be sniffed, cached or framed (a page of another origin
// framing the dashboard or a JSON route gets nothing); and the page with a
// region that has no servers (the agent channel on, no agent yet).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { browserSkip, startDashboardAndBrowser } from '../helpers/browser.ts';

const TOKEN = 'dashboard-security-token-7a31';
const GOSSIP_KEY = Buffer.alloc(32, 7).toString('base64');

const skip = browserSkip;

function config(): string {
  return `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu-west
    servers: [{ address: 192.0.2.1 }]
    health_check: { type: none }
  - name: agents-only
    servers: []
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu-west] }
  - { name: empty.example.test, regions: [agents-only] }
api: { enabled: true, address: "127.0.0.1:0", token: "${TOKEN}" }
overwatch: { data_dir: ./state, gossip: { encryption_key: "${GOSSIP_KEY}", bind_address: "127.0.0.1:0" } }
logging: { level: info }
`;
}

test('the admin API and the dashboard in a browser, one server and one Chromium for both checks', { skip, timeout: 90_000 }, async (t) => {
  // Both checks only read (no write, no token sent) and each opens its own pages: they share the
  // server and the browser, which took most of each one's time to start.
  const { base, browser } = await startDashboardAndBrowser(t, 'opengslb-dashboard-security-', config());

  await t.test('API answers, errors included, are not sniffed, cached or framed', async (st) => {
    const page = await browser.newPage();

    // JSON routes, an error from a route, and the 404 of no route: each as the browser receives it.
    for (const path of ['/api/v1/status', '/api/v1/overrides', '/api/v1/explain?name=%3Cimg%20src%3Dx%3E.example.test', '/api/v1/%3Cscript%3E']) {
      const res = await page.goto(`${base}${path}`);
      assert.ok(res !== null, path);
      const headers = res.headers();
      assert.equal(headers['content-type'], 'application/json; charset=utf-8', path);
      assert.equal(headers['x-content-type-options'], 'nosniff', path);
      // Overrides' reasons, agents and backends: nothing of it kept in the browser's cache or on a proxy's disk.
      assert.equal(headers['cache-control'], 'no-store', path);
      assert.match(headers['content-security-policy'] ?? '', /default-src 'none'.*frame-ancestors 'none'/, path);
      assert.equal(headers['x-frame-options'], 'DENY', path);
      assert.equal(headers['referrer-policy'], 'no-referrer', path);
      // Shown as the JSON text it is: no element was made from the names in it.
      assert.equal(await page.locator('img, script').count(), 0, path);
    }
    // The page keeps its own (stricter for scripts, cacheable after revalidation) policy.
    const home = await page.goto(`${base}/`);
    assert.equal(home?.headers()['cache-control'], 'no-cache');
    assert.match(home?.headers()['content-security-policy'] ?? '', /script-src 'self'/);

    // A page of another origin (another loopback port) frames the dashboard, with its write buttons, and a JSON route: both stay empty.
    const foreign = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><iframe name="dash" src="${base}/"></iframe><iframe name="json" src="${base}/api/v1/overrides"></iframe>`);
    });
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    st.after(() => foreign.close());
    const framing = await browser.newPage();
    // goto waits for the page's load event, and that for its frames': by then each frame shows what it will show (Chromium's
    // error page where the headers refused the framing; a framed page's words are in its HTML or JSON, not drawn later by a
    // script). Each frame's own load is waited for too, rather than a fixed 1.5 s.
    await framing.goto(`http://127.0.0.1:${(foreign.address() as AddressInfo).port}/`);
    for (const name of ['dash', 'json']) {
      const frame = framing.frame({ name });
      assert.ok(frame !== null, name);
      await frame.waitForLoadState('load');
      const html = await frame.content().catch(() => '');
      assert.doesNotMatch(html, /OpenGSLB|"overrides"/, `${name}: a foreign page framed ${frame.url()}`);
    }
  });

  await t.test('a region with no servers (the agent channel on, no agent yet) is not shown healthy', async () => {
    const page = await browser.newPage();
    // It answers nothing (empty.example.test is SERVFAIL): the page used to paint it green, "0/0 healthy".
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-updated]', { timeout: 10_000 });
    const empty = page.locator('#regions div.region', { hasText: 'agents-only' });
    const badge = empty.locator('h3 span.badge');
    assert.equal(await badge.getAttribute('class'), 'badge unhealthy');
    assert.match(await badge.innerText(), /no servers/);
    assert.equal(await page.locator('#regions div.region', { hasText: 'eu-west' }).locator('h3 span.badge').getAttribute('class'), 'badge healthy');
  });
});
