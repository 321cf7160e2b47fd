// The dashboard when the admin API stops answering, and its load on the API,
// in Debian's headless Chromium driven by playwright-core (as
// test/e2e/dashboard.test.ts): a real `opengslb` child process is stopped
// (SIGSTOP: it accepts nothing and answers nothing), continued, then killed.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { browserSkip, startDashboardAndBrowser } from '../helpers/browser.ts';

const TOKEN = 'dashboard-stale-token-7b3a';
const DOMAINS = 30;
/** The page's poll interval here (?refresh_ms=): at its default 3 s the polls this test waits for took 15 s of its 26 s. */
const REFRESH_MS = 500;
/** REFRESH_MS in seconds as the page writes it, as a regular expression. */
const EVERY = String(REFRESH_MS / 1000).replace('.', '\\.');
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
  const { server, base, dir, browser } = await startDashboardAndBrowser(t, 'opengslb-dashboard-stale-', config());
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

  await page.goto(`${base}/?refresh_ms=${REFRESH_MS}`);
  await Promise.all(Array.from({ length: DOMAINS }, (_, i) => page.waitForSelector(`#domains tr[data-domain="d${i}.example.test"][data-rcode="NOERROR"]`, { timeout: 15_000 })));
  await page.waitForSelector('#domains tr[data-domain="other.example.test"][data-rcode="NOERROR"]');

  await t.test('a page opened without refresh_ms polls every 3 s; one with a refresh_ms out of range says so and polls every 3 s', async () => {
    const cases = [['', null], ['?refresh_ms=50', 'refresh_ms="50" in the page\'s address is not a whole number of milliseconds from 250 to 600000: refreshing every 3 s']] as const;
    // The two pages are independent: opened side by side.
    await Promise.all(cases.map(async ([query, problem]) => {
      const other = await browser.newPage();
      other.on('pageerror', (e) => pageErrors.push(e.message));
      await other.goto(`${base}/${query}`);
      await other.waitForSelector('body[data-updated]', { timeout: 10_000 });
      assert.match(await other.locator('#refresh').textContent() ?? '', new RegExp(`^updated ${TIME} · every 3 s$`), query);
      assert.equal(await other.locator('#notice-section').isVisible(), problem !== null, query);
      if (problem !== null) {
        assert.equal(await other.locator('#notice').textContent(), problem);
        assert.equal(await other.locator('#notice').getAttribute('class'), 'error');
      }
      await other.close();
    }));
  });

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
      assert.match(text, new RegExp(`^STALE: the API has not answered since ${TIME}: the API did not answer: no answer within 5 s · showing the data of ${TIME} \\(\\d+ s ago\\) · retrying every ${EVERY} s$`));
      assert.equal(await page.locator('#refresh').getAttribute('class'), 'warn');
      assert.equal(await page.locator('#domains tr[data-domain="other.example.test"]').getAttribute('data-answers'), '198.51.100.2', 'the last data is still shown');
    } finally {
      server.child.kill('SIGCONT');
    }
    await page.waitForSelector('body:not([data-stale])', { timeout: 15_000 });
    assert.match(await page.locator('#refresh').textContent() ?? '', new RegExp(`^updated ${TIME} · every ${EVERY} s$`));
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
