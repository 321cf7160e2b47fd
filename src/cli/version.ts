// Cold path. The package version, in a module of its own: `opengslb-cli`
// prints it and must not load the server (overwatch, lmdb, NATS, pino) to do so.

import { readFileSync } from 'node:fs';

/** Returns the package version from package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
