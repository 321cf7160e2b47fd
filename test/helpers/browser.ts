// Tests that drive the dashboard in a real browser: headless Chromium through
// playwright-core (a devDependency; .ci/run installs the Debian chromium).
// One place says whether a test can run and, when not, why.

import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startOpengslb, type RunningServer, type RunOptions } from './child.ts';
import { posixOnly, tempDir } from './config-files.ts';

export const CHROMIUM = '/usr/bin/chromium';

/** playwright-core, or null when the package is not installed. */
export const playwright: typeof import('playwright-core') | null = await import('playwright-core').catch(() => null);

/** A browser test's `skip`: why it cannot run here, or false. */
export const browserSkip: string | boolean = playwright === null
  ? 'the npm package playwright-core is not installed (npm ci installs it: it is a devDependency)'
  : !existsSync(CHROMIUM)
    ? `${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`
    : posixOnly.skip;

/**
 * Starts an `opengslb` child on `config` (written, mode 600 as a config with
 * api.token must be, to a new directory named from `prefix`) and waits for
 * its API; `base` is the API's URL. `opts` go to startOpengslb (env).
 */
export async function startDashboardServer(t: TestContext, prefix: string, config: string, opts: RunOptions = {}): Promise<{ server: RunningServer; base: string; dir: string }> {
  const dir = await tempDir(t, prefix);
  const file = join(dir, 'config.yaml');
  await writeFile(file, config, { mode: 0o600 });
  const server = await startOpengslb(t, file, opts);
  const line = await server.out.waitFor(/API listening/);
  return { server, base: `http://${(/"address":"(127\.0\.0\.1:\d+)"/.exec(line) as RegExpExecArray)[1]}`, dir };
}

/** Headless Chromium, closed when the test ends. Call only when browserSkip is false. */
export async function launchBrowser(t: TestContext): Promise<import('playwright-core').Browser> {
  const browser = await (playwright as typeof import('playwright-core')).chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  return browser;
}

/**
 * Starts the server (as startDashboardServer) and headless Chromium side by
 * side: each takes a second or so. Both settle before this returns, so each
 * is cleaned up when the test ends, whichever of them failed.
 */
export async function startDashboardAndBrowser(t: TestContext, prefix: string, config: string, opts: RunOptions = {}): Promise<{ server: RunningServer; base: string; dir: string; browser: import('playwright-core').Browser }> {
  const [started, browser] = await Promise.allSettled([startDashboardServer(t, prefix, config, opts), launchBrowser(t)]);
  if (started.status === 'rejected') throw started.reason;
  if (browser.status === 'rejected') throw browser.reason;
  return { ...started.value, browser: browser.value };
}
