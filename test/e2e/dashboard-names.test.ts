// The dashboard with awkward data, in Debian's headless Chromium driven by
// playwright-core (as test/e2e/dashboard.test.ts): names as long as DNS
// allows, a dozen regions, IPv6 servers on other ports, and an override whose
// source and reason are HTML. The page must show them as text, stay within the
// window's width, and write each server as the metrics and the logs do.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserSkip, startDashboardAndBrowser } from '../helpers/browser.ts';

const TOKEN = 'dashboard-names-token-9d2e';

const skip = browserSkip;

const LABEL = 'a'.repeat(63);
/** A domain name of 230 characters, labels of 63. */
const LONG_DOMAIN = `${LABEL}.${LABEL}.${LABEL}.${'b'.repeat(40)}.example.test`;
const region = (i: number): string => `region-${i}-${'r'.repeat(40)}`;

function config(): string {
  const regions = Array.from({ length: 12 }, (_, i) => `  - name: ${region(i)}
    servers: [{ address: 192.0.2.${i + 1} }, { address: "2001:db8::${i + 1}", port: 8443 }]
    health_check: { type: none }`).join('\n');
  return `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
${regions}
domains:
  - { name: ${LONG_DOMAIN}, regions: [${region(0)}] }
  - { name: v6.example.test, regions: [${region(1)}] }
api: { enabled: true, address: "127.0.0.1:0", token: "${TOKEN}" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;
}

test('long names, many regions, IPv6 servers and HTML in an override show as text within the window', { skip, timeout: 90_000 }, async (t) => {
  // The server and Chromium start side by side (each took a second or more, one after the other).
  const { server, base, browser } = await startDashboardAndBrowser(t, 'opengslb-dashboard-names-', config());

  const reason = `<script>alert("reason")</script>${'x'.repeat(300)}`;
  const source = '"><img src=x onerror=alert(1)>';
  const put = await fetch(`${base}/api/v1/overrides/server/192.0.2.1`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ healthy: false, source, reason }),
  });
  assert.equal(put.status, 200, await put.text());

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(`${base}/`);
  await page.waitForSelector(`#domains tr[data-domain="${LONG_DOMAIN}"]`, { timeout: 10_000 });
  await page.waitForSelector('#overrides tr[data-scope="server"]', { timeout: 10_000 });

  // The HTML is shown as the text it is, and nothing of it ran.
  const overrides = await page.locator('#overrides tbody').innerText();
  assert.ok(overrides.includes(reason) && overrides.includes(source), overrides.slice(0, 200));
  assert.equal(await page.locator('#overrides img, #overrides script').count(), 0);

  // An IPv6 server is written [address]:port, as in opengslb_server_healthy{server} and the logs: 2001:db8::1:8443 reads as an address without a port.
  const v6 = page.locator('#regions tr[data-address="2001:db8::1"]');
  assert.equal(await v6.getAttribute('data-server'), '[2001:db8::1]:8443');
  assert.equal((await v6.locator('td.name').innerText()).trim(), '[2001:db8::1]:8443');
  assert.equal(await page.locator('#regions tr[data-address="192.0.2.2"]').getAttribute('data-server'), '192.0.2.2:80');

  // Nothing pushes the page wider than the window: long names and reasons wrap.
  const [scrollWidth, clientWidth] = await page.evaluate('[document.documentElement.scrollWidth, document.documentElement.clientWidth]') as [number, number];
  assert.ok(scrollWidth <= clientWidth, `the page is ${scrollWidth} px wide in a ${clientWidth} px window`);
  assert.deepEqual(problems, []);
});
