// The dashboard as an operator meets it: Debian's headless Chromium, driven by
// playwright-core, opens the page of a real `opengslb` child process whose
// health checks probe real HTTP backends on loopback. Everything the page
// claims is checked against DNS with real queries. It fails on any console
// error or Content-Security-Policy violation. With OPENGSLB_UPDATE_SCREENSHOT=1
// it also writes docs/dashboard.png.

import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpBackend, type Backend } from '../helpers/backends.ts';
import { run, SERVER, type RunningServer } from '../helpers/child.ts';
import { ask } from '../helpers/dns-client.ts';
import { ROOT } from '../helpers/markdown.ts';
import { browserSkip, startDashboardAndBrowser } from '../helpers/browser.ts';

const TOKEN = 'dashboard-test-token-4f1c';
const INTERVAL_MS = 1000;
const TIMEOUT_MS = 300;
const FAILURE_THRESHOLD = 2;
const UPDATE_SCREENSHOT = process.env.OPENGSLB_UPDATE_SCREENSHOT === '1';
/**
 * The page's poll interval here (?refresh_ms=; 3 s by default, dashboard.js
 * POLL_MS), and how often the API samples the chart's reply rates
 * (OPENGSLB_QUERY_RATE_INTERVAL_MS; 5 s by default). A line needs two samples
 * after the baseline: at the defaults the chart took 15 s from the API's start
 * and the test waited 8-13 s for it after the rest was done. The screenshot
 * for the docs shows the page and the chart as operators see them.
 */
const PAGE_POLL_MS = UPDATE_SCREENSHOT ? 3000 : 1000;
const PAGE_PATH = UPDATE_SCREENSHOT ? '/' : `/?refresh_ms=${PAGE_POLL_MS}`;
const SERVER_ENV: NodeJS.ProcessEnv = UPDATE_SCREENSHOT ? process.env : { ...process.env, OPENGSLB_QUERY_RATE_INTERVAL_MS: '1000' };

const skip = browserSkip;

function config(a: Backend, b: Backend): string {
  const check = `{ type: http, path: /health, interval: ${INTERVAL_MS}ms, timeout: ${TIMEOUT_MS}ms, failure_threshold: ${FAILURE_THRESHOLD}, success_threshold: 1 }`;
  return `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu-west
    servers: [{ address: ${a.address}, port: ${a.port} }, { address: ${b.address}, port: ${b.port} }]
    health_check: ${check}
domains:
  - { name: app.example.test, regions: [eu-west], routing_algorithm: round-robin, max_answers: 2, ttl: 5 }
api: { enabled: true, address: "127.0.0.1:0", token: "${TOKEN}" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;
}

/** The addresses of one A answer, sorted, or the rcode when it is not NOERROR. */
async function answers(server: RunningServer): Promise<string[] | string> {
  const reply = await ask(server.port, 'app.example.test', 'A');
  if (reply.rcode !== 'NOERROR') return reply.rcode ?? '?';
  return ((reply.answers ?? []) as { data: string }[]).map((r) => r.data).sort();
}

test('the dashboard shows live health, sets and clears overrides that reach DNS, explains and geo-tests, in headless Chromium', { skip, timeout: 120_000 }, async (t) => {
  const a = await httpBackend(t);
  const b = await httpBackend(t);
  const { server, base, dir, browser } = await startDashboardAndBrowser(t, 'opengslb-dashboard-', config(a, b), { env: SERVER_ENV });
  const both = [a.address, b.address].sort();
  assert.deepEqual(await answers(server), both);

  // Steady traffic while the page is open, so the chart has something to draw: names that answer and names that do not.
  let traffic = true;
  const sending = (async () => {
    for (let i = 0; traffic; i++) {
      try {
        await ask(server.port, i % 5 === 4 ? `missing-${i}.example.test` : 'app.example.test', 'A');
      } catch {
        // A lost datagram on a loaded machine: the chart does not need every one.
      }
      await new Promise((r) => setTimeout(r, 40));
    }
  })();
  const stopTraffic = async (): Promise<void> => {
    traffic = false;
    await sending;
  };
  t.after(stopTraffic);

  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // CSP violations reach the console too; the event says which directive, should one slip past.
  // (Browser code as strings: this file is type-checked without the DOM library.)
  await page.addInitScript({ content: "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));" });

  const res = await page.goto(`${base}${PAGE_PATH}`);
  assert.ok(res !== null && res.ok(), `GET / answered ${res?.status()}`);
  assert.match((await res.allHeaders())['content-security-policy'] ?? '', /script-src 'self'/);
  const row = (backend: Backend): string => `#regions tr[data-server="${backend.address}:${backend.port}"]`;
  await page.waitForSelector(`${row(a)}[data-status="healthy"]`, { timeout: 10_000 });
  await page.waitForSelector(`${row(b)}[data-status="healthy"]`, { timeout: 10_000 });
  await page.waitForSelector(`#domains tr[data-domain="app.example.test"][data-answers="${both.join(',')}"]`, { timeout: 10_000 });
  assert.equal(await page.locator('#agents-note').textContent(), 'The agent channel is off (no overwatch.gossip.encryption_key).');

  await t.test('a write without the token is refused and the page says so; a wrong token is named as wrong', async () => {
    await page.locator(`${row(a)} button`, { hasText: 'Drain' }).click();
    await page.waitForSelector('#notice.error');
    assert.match(await page.locator('#notice').textContent() ?? '', /refused, this server needs the API token for writes/);
    assert.equal(await page.locator('#token-section').isVisible(), true);
    await page.fill('#token-input', 'not-the-token');
    await page.click('#token-form button[type="submit"]');
    await page.locator(`${row(a)} button`, { hasText: 'Drain' }).click();
    // Locators run in Playwright's own isolated world: waitForFunction would evaluate a string in the page, which its CSP refuses (no eval).
    await page.locator('#notice', { hasText: 'token kept in this tab is wrong' }).waitFor();
    assert.deepEqual(await answers(server), both, 'nothing changed');
  });

  await t.test('Drain, clicked with the token, takes the server out of DNS; the page shows the override', async () => {
    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button[type="submit"]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('opengslb.api-token')), TOKEN);
    await page.locator(`${row(a)} button`, { hasText: 'Drain' }).click();
    await page.locator('#notice', { hasText: `override ${a.address} down: done` }).waitFor();
    assert.deepEqual(await answers(server), [b.address]);
    await page.waitForSelector(`#overrides tr[data-scope="server"][data-target="${a.address}"]`);
    await page.waitForSelector(`${row(a)}[data-authority="override"]`);
    await page.waitForSelector(`#domains tr[data-domain="app.example.test"][data-answers="${b.address}"]`);
  });

  await t.test('Clear, clicked in the overrides table, gives the server back to its checks', async () => {
    await page.locator(`#overrides tr[data-target="${a.address}"] button`, { hasText: 'Clear' }).click();
    await page.waitForSelector('#overrides tbody tr:not([data-scope])');
    assert.deepEqual(await answers(server), both);
    await page.waitForSelector(`#domains tr[data-domain="app.example.test"][data-answers="${both.join(',')}"]`);
  });

  await t.test('an override set with the form (domain scope, expiring) reaches DNS', async () => {
    await page.selectOption('#ov-scope', 'domain');
    await page.fill('#ov-domain', 'app.example.test');
    await page.fill('#ov-address', b.address);
    await page.fill('#ov-reason', 'kernel upgrade');
    await page.fill('#ov-expires', '1h');
    await page.click('#ov-submit');
    await page.waitForSelector(`#overrides tr[data-scope="domain"][data-target="${b.address}"]`);
    assert.deepEqual(await answers(server), [a.address]);
    await page.locator(`#overrides tr[data-target="${b.address}"] button`, { hasText: 'Clear' }).click();
    await page.waitForSelector('#overrides tbody tr:not([data-scope])');
    assert.deepEqual(await answers(server), both);
  });

  await t.test('a backend stopped turns unhealthy on the page within its thresholds and a page refresh', async () => {
    await b.stop();
    const stopped = Date.now();
    // failure_threshold failed probes, each at most interval + timeout apart, then at most one poll of the page.
    const limitMs = FAILURE_THRESHOLD * (INTERVAL_MS + TIMEOUT_MS) + PAGE_POLL_MS + 1500;
    await page.waitForSelector(`${row(b)}[data-status="unhealthy"]`, { timeout: limitMs });
    const tookMs = Date.now() - stopped;
    assert.ok(tookMs <= limitMs, `${tookMs} ms`);
    assert.deepEqual(await answers(server), [a.address]);
    assert.match(await page.locator(`${row(b)} td.error`).textContent() ?? '', /\S/, 'the last error is shown');
    await page.waitForSelector(`#domains tr[data-domain="app.example.test"][data-answers="${a.address}"]`);
  });

  await t.test('explain answers for a name and a client address; geo test names what decided', async () => {
    await page.fill('#ex-name', 'app.example.test');
    await page.fill('#ex-client', '198.51.100.7');
    await page.click('#explain-form button[type="submit"]');
    await page.waitForSelector('#explain-answer');
    assert.match(await page.locator('#explain-answer').textContent() ?? '', new RegExp(`^NOERROR: ${a.address.replace(/\./g, '\\.')} · policy round-robin`));
    assert.equal(await page.locator('#explain-result table.candidates tbody tr').count(), 2);
    await page.fill('#geo-ip', '192.0.2.1');
    await page.click('#geo-form button[type="submit"]');
    await page.waitForSelector('#geo-answer');
    assert.match(await page.locator('#geo-answer').textContent() ?? '', /^192\.0\.2\.1 → region \(none\) by none/);
  });

  await t.test('the chart draws the replies per second by rcode', async () => {
    // The API samples every second (every 5 s for the screenshot): the first sample is the baseline and a line needs two more. The page polls every PAGE_POLL_MS; the traffic above runs all along.
    await page.waitForSelector('#chart-legend .key[data-rcode="NXDOMAIN"]', { timeout: 15_000 });
    await page.waitForSelector('#chart svg polyline[data-rcode="NOERROR"]');
    assert.ok(Number(await page.locator('#chart svg').getAttribute('data-samples')) >= 1);
  });

  await stopTraffic();
  const shot = join(dir, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  if (UPDATE_SCREENSHOT) await copyFile(shot, join(ROOT, 'docs/dashboard.png'));
  // The two writes refused on purpose (no token, wrong token) are the only failed loads Chromium reports.
  const refused = `console error: Failed to load resource: the server responded with a status of 401 (Unauthorized) (${base}/api/v1/overrides/server/${encodeURIComponent(a.address)})`;
  assert.deepEqual(problems, [refused, refused], 'no console errors, warnings or CSP violations other than the two refused writes');
});

test('a start with OPENGSLB_QUERY_RATE_INTERVAL_MS out of range stops before reading the config, naming the variable and what it takes', async () => {
  const res = await run(SERVER, ['--config', '/nonexistent/opengslb.yaml'], { env: { ...process.env, OPENGSLB_QUERY_RATE_INTERVAL_MS: '50' } });
  assert.equal(res.code, 2, res.stderr);
  assert.equal(res.stderr, 'opengslb: OPENGSLB_QUERY_RATE_INTERVAL_MS="50" in the environment: expected a whole number of milliseconds from 100 to 60000, or no such variable\n');
});
