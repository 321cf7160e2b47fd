// Tests that drive the dashboard in a real browser: headless Chromium through
// playwright-core (a devDependency; .ci/run installs the Debian chromium).
// One place says whether a test can run and, when not, why.

import { existsSync } from 'node:fs';
import { posixOnly } from './config-files.ts';

export const CHROMIUM = '/usr/bin/chromium';

/** playwright-core, or null when the package is not installed. */
export const playwright: typeof import('playwright-core') | null = await import('playwright-core').catch(() => null);

/** A browser test's `skip`: why it cannot run here, or false. */
export const browserSkip: string | boolean = playwright === null
  ? 'the npm package playwright-core is not installed (npm ci installs it: it is a devDependency)'
  : !existsSync(CHROMIUM)
    ? `${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`
    : posixOnly.skip;
