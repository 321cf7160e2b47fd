// The dashboard when the admin API stops answering, and its load on the API,
// in Debian's headless Chromium driven by playwright-core (as
// test/e2e/dashboard.test.ts): a real `opengslb` child process is stopped
// (SIGSTOP: it accepts nothing and answers nothing), continued, then killed.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { browserSkip, launchBrowser, startDashboardServer } from '../helpers/browser.ts';

const TOKEN = 'dashboard-stale-token-7b3a';
const DOMAINS = 30;
/** A time as toLocaleTimeString() writes it in Chromium's default en-US locale. */
const TIME = String.raw`\d+:\d\d:\d\d(?: [AP]M)?`;

const skip = browserSkip;

function config(): string {
  const domains = Array.from({ length: DOMAINS }, (_, i) => `  - { name: d${i}.example.test, regions: [a] }`).join('\n');
  return `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - { name: a, servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }], health_check: { type: none } }
  - { name: b, servers: [{ address: 198.51.100.1 }, { address: 198.51.100.2 }], health_check: { type: none } }
domains:
${domains}
  - { name: other.example.test, regions: [b] }
api: { enabled: true, address: "127.0.0.1:0", token: "${TOKEN}" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;
}

test('the dashboard asks explain only for domains whose answer may have moved, marks its data stale while the API is down and recovers', { skip, timeout: 120_000 }, async (t) => {
  const { server, base, dir } = await startDashboardServer(t, 'opengslb-dashboard-stale-', config());

  const browser = await launchBrowser(t);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const explained: string[] = [];
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.pathname === '/api/v1/explain') explained.push(url.searchParams.get('name') ?? '');
  });
  /** Resolves after the page has finished `n` more successful polls. */
  const polls = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const before = await page.locator('body').getAttribute('data-updated');
      await page.waitForSelector(before === null ? 'body[data-updated]' : `body:not([data-updated="${before}"])`, { timeout: 10_000 });
    }
  };

  await page.goto(`${base}/`);
  for (let i = 0; i < DOMAINS; i++) await page.waitForSelector(`#domains tr[data-domain="d${i}.example.test"][data-rcode="NOERROR"]`, { timeout: 15_000 });
  await page.waitForSelector('#domains tr[data-domain="other.example.test"][data-rcode="NOERROR"]');

  await t.test('once every domain is explained, polls with nothing changed ask explain no more', async () => {
    await polls(1);
    const before = explained.length;
    await polls(2);
    assert.deepEqual(explained.slice(before), [], 'no explain call in two polls');
  });

  await t.test('a changed server status re-explains only the domains that server is in', async () => {
    const before = explained.length;
    const res = await fetch(`${base}/api/v1/overrides/server/198.51.100.1`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ healthy: false, source: 'test', reason: 'drain' }),
    });
    assert.equal(res.status, 200, await res.text());
    await page.waitForSelector('#domains tr[data-domain="other.example.test"][data-answers="198.51.100.2"]', { timeout: 10_000 });
    assert.deepEqual(explained.slice(before), ['other.example.test']);
  });

  await t.test('an API that stops answering leaves the last data on the page, marked stale since when; the page recovers when it answers again', async () => {
    assert.equal(await page.locator('body').getAttribute('data-stale'), null);
    server.child.kill('SIGSTOP');
    try {
      await page.waitForSelector('body[data-stale]', { timeout: 15_000 });
      const text = await page.locator('#refresh').textContent() ?? '';
      assert.match(text, new RegExp(`^STALE: the API has not answered since ${TIME}: the API did not answer: no answer within 5 s · showing the data of ${TIME} \\(\\d+ s ago\\) · retrying every 3 s$`));
      assert.equal(await page.locator('#refresh').getAttribute('class'), 'warn');
      assert.equal(await page.locator('#domains tr[data-domain="other.example.test"]').getAttribute('data-answers'), '198.51.100.2', 'the last data is still shown');
    } finally {
      server.child.kill('SIGCONT');
    }
    await page.waitForSelector('body:not([data-stale])', { timeout: 15_000 });
    assert.match(await page.locator('#refresh').textContent() ?? '', new RegExp(`^updated ${TIME} · every 3 s$`));
    assert.equal(await page.locator('body').getAttribute('class'), '');
  });

  await t.test('an API that is gone (connection refused) is named as such, with the time of the data shown', async () => {
    server.child.kill('SIGKILL');
    await server.exited;
    await page.waitForSelector('body[data-stale]', { timeout: 15_000 });
    assert.match(await page.locator('#refresh').textContent() ?? '', new RegExp(`^STALE: the API has not answered since ${TIME}: the API did not answer: .+ · showing the data of ${TIME} `));
    await page.screenshot({ path: join(dir, 'stale.png'), fullPage: true });
  });

  assert.deepEqual(pageErrors, []);
});
