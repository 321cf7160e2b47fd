// Main thread, cold path. The `opengslb` command: flags, mode, start-up, signals
// and exit codes. Exit 0 after a clean stop; 1 when it cannot serve (bad
// config, cannot bind, agent mode not available yet); 2 for bad flags.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { createLogger } from '../log/logger.ts';
import { formatAddress, Overwatch } from '../overwatch/overwatch.ts';

const USAGE = `usage: opengslb [--config FILE] [--mode overwatch|agent] [--version]

  --config FILE   configuration file (default /etc/opengslb/config.yaml)
  --mode MODE     overwatch (default) or agent; overrides "mode:" in the file
  --version       print the version and exit

Signals: SIGTERM/SIGINT stop gracefully (exit 0), SIGHUP reloads the config.`;

/** Returns the package version from package.json. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Accepts Go-style single-dash long flags (-config x) as the Go original did, and the usual --config x / --config=x. */
function normaliseFlags(argv: readonly string[]): string[] {
  return argv.map((a) => (/^-(config|mode|version|help)(=|$)/.test(a) ? '-' + a : a));
}

function fail(message: string, code: number): never {
  process.stderr.write(`opengslb: ${message}\n`);
  process.exit(code);
}

/** Runs the server until a signal stops it. Never returns normally on failure: it exits with the code above. */
export async function main(argv: readonly string[]): Promise<void> {
  let values: { config?: string; mode?: string; version?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: normaliseFlags(argv),
      options: {
        config: { type: 'string', short: 'c' },
        mode: { type: 'string' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (values.version) {
    process.stdout.write(`OpenGSLB ${packageVersion()}\n`);
    return;
  }
  if (values.mode !== undefined && values.mode !== 'overwatch' && values.mode !== 'agent') {
    fail(`--mode: "${values.mode}" is not a mode, expected overwatch or agent`, 2);
  }
  const configPath = values.config ?? '/etc/opengslb/config.yaml';

  let config: Config;
  try {
    config = await loadConfigFile(configPath);
  } catch (err) {
    // A config error lists every problem, one per line; anything else is one line.
    fail(err instanceof OpenGslbError ? err.message : `cannot load ${configPath}: ${(err as Error).message}`, 1);
  }
  const mode = (values.mode as Config['mode'] | undefined) ?? config.mode;
  if (mode === 'agent') {
    fail('agent mode is not available in this version yet (it arrives with the agent work); run with --mode overwatch', 1);
  }

  const logger = createLogger(config.logging);
  logger.info({ version: packageVersion(), node: process.version, config: config.source, mode }, 'OpenGSLB starting');
  let overwatch: Overwatch;
  try {
    overwatch = await Overwatch.start(config, logger);
  } catch (err) {
    logger.flush?.();
    fail(err instanceof Error ? err.message : String(err), 1);
  }
  logger.info({ address: formatAddress(overwatch.host, overwatch.port) }, 'OpenGSLB running');

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: no new queries, finishing TCP queries in flight');
    // The whole stop stays under 5 s: workers get 3 s of grace, a worker still
    // running a second later is terminated, and this timer is the last resort.
    const hard = setTimeout(() => {
      logger.warn('stop took too long; exiting');
      process.exit(0);
    }, 4500);
    hard.unref();
    overwatch.stop().then(
      () => {
        logger.info('stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err: Error) => {
        logger.error({ err: err.message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    void reload(overwatch, configPath, values.mode as Config['mode'] | undefined, logger);
  });
}

/** Reads, validates and swaps in the config; any failure keeps the old one serving and logs why. */
async function reload(overwatch: Overwatch, path: string, modeFlag: Config['mode'] | undefined, logger: ReturnType<typeof createLogger>): Promise<void> {
  const log = logger.child({ component: 'config' });
  let next: Config;
  try {
    next = await loadConfigFile(path);
  } catch (err) {
    log.error({ file: path, reason: (err as Error).message }, 'reload failed; still serving the previous config');
    return;
  }
  if (modeFlag !== undefined) next = { ...next, mode: modeFlag };
  const result = overwatch.reload(next);
  if (result.ok) log.info({ generation: result.generation }, 'reload succeeded');
  else log.error({ reason: result.message }, 'reload refused; still serving the previous config');
}
