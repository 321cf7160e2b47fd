// Main thread, cold path. The `opengslb` command: flags, mode, start-up, signals
// and exit codes, for both modes (overwatch: DNS, API, metrics; agent: checks
// and reports, its own metrics). Exit 0 after a clean stop; 1 when it cannot
// run (bad config, cannot bind, no usable identity); 2 for bad flags.

import { ConfigError } from '../config/load.ts';
import { loadConfigIsolated } from '../config/load-isolated.ts';
import type { Config } from '../config/types.ts';
import type { ConfigProblem } from '../config/problems.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { createLogger, dropLogOnStreamError, type Logger } from '../log/logger.ts';
import { formatAddress } from '../lib/ip.ts';
import { GEOIP_ATTRIBUTION } from '../geo/attribution.ts';
import { Overwatch } from '../overwatch/overwatch.ts';
import type { ApiServer } from '../api/server.ts';
import { LmdbStore, type StateStore } from '../state/store.ts';
import type { MetricsListener } from '../metrics/server.ts';
import { ConfigReloader, logConfigWarnings, type ReloadTarget } from '../overwatch/reload.ts';
import { FlagError, parseFlags } from './args.ts';
import { dropOutputToClosedPipes } from './closed-pipe.ts';
import { shutdownOnce } from './shutdown.ts';
import { packageVersion } from './version.ts';
import { checkConfigValidateLine, CONFIG_VALIDATE_USAGE, formatConfigError, runConfigValidate } from './config-validate.ts';

const USAGE = `usage: opengslb [--config FILE] [--mode overwatch|agent] [--version] [--help]
       opengslb ${CONFIG_VALIDATE_USAGE}

  -c, --config FILE   configuration file (default /etc/opengslb/config.yaml)
      --mode MODE     overwatch (default) or agent; overrides "mode:" in the file
  -v, --version       print the version and exit
  -h, --help          print this help and exit
  (Go-style single-dash long flags such as -config FILE work too.)

  config validate FILE   check FILE and its includes exactly as start-up and reload do,
                         print a summary or every problem, exit 0 or 1 (--json: one JSON object)

Signals: SIGTERM/SIGINT stop gracefully (exit 0), SIGHUP reloads the config.`;

/** The server's flags. */
const SERVER_FLAGS = {
  config: { type: 'string', short: 'c' },
  mode: { type: 'string' },
  version: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Checks a command line (the words after `opengslb`) without running it: the
 * flags and the `config validate FILE` command the server takes. Returns
 * null when it is one the server accepts, else what is wrong. For the
 * documentation tests (docs/runbooks/).
 */
export function checkServerCommandLine(argv: readonly string[]): string | null {
  if (argv[0] === 'config') {
    if (argv[1] !== 'validate') return `unknown command "${argv.slice(0, 2).join(' ')}"`;
    return checkConfigValidateLine(argv.slice(2));
  }
  try {
    const { values } = parseFlags(normaliseFlags(argv), SERVER_FLAGS, false);
    if (values.mode !== undefined && values.mode !== 'overwatch' && values.mode !== 'agent') return `--mode: "${String(values.mode)}" is not a mode, expected overwatch or agent`;
    return null;
  } catch (err) {
    if (err instanceof FlagError) return err.message;
    throw err;
  }
}

/** Accepts Go-style single-dash long flags (-config x) as the Go original did, and the usual --config x / --config=x. */
function normaliseFlags(argv: readonly string[]): string[] {
  return argv.map((a) => (/^-(config|mode|version|help)(=|$)/.test(a) ? '-' + a : a));
}

/** Prints a one-line reason after the program name and exits. */
function fail(message: string, code: number): never {
  process.stderr.write(`opengslb: ${message}\n`);
  process.exit(code);
}

/**
 * Reads OPENGSLB_QUERY_RATE_INTERVAL_MS, how often the API samples the reply
 * rates of the dashboard's chart (GET /api/v1/stats/queries), in ms: a test
 * knob, as a browser test would otherwise wait 15 s for the two samples a line
 * needs. Unset (production): {}, and the API samples every 5 s. Exits 2
 * naming the variable when it is not a whole number from 100 to 60000.
 */
function readQueryRateInterval(value: string | undefined): { queryRateIntervalMs?: number } {
  if (value === undefined) return {};
  const ms = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(ms >= 100 && ms <= 60_000)) fail(`OPENGSLB_QUERY_RATE_INTERVAL_MS=${JSON.stringify(value)} in the environment: expected a whole number of milliseconds from 100 to 60000, or no such variable`, 2);
  return { queryRateIntervalMs: ms };
}

/** Runs the server until a signal stops it. Never returns normally on failure: it exits with the code above. */
export async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === 'config') {
    dropOutputToClosedPipes();
    if (argv[1] !== 'validate') fail(`unknown command "${argv.slice(0, 2).join(' ')}"\n${USAGE}`, 2);
    process.exitCode = await runConfigValidate('opengslb', argv.slice(2), { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
    return;
  }
  let values: { config?: string; mode?: string; version?: boolean; help?: boolean };
  try {
    ({ values } = parseFlags(normaliseFlags(argv), SERVER_FLAGS, false));
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    fail(`${err.message}\n${USAGE}`, 2);
  }
  if (values.help || values.version) dropOutputToClosedPipes();
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (values.version) {
    // The bundled GeoIP database's licence (CC BY 4.0) asks for the credit wherever its data is used.
    process.stdout.write(`OpenGSLB ${packageVersion()}\n${GEOIP_ATTRIBUTION}\n`);
    return;
  }
  if (values.mode !== undefined && values.mode !== 'overwatch' && values.mode !== 'agent') {
    fail(`--mode: "${values.mode}" is not a mode, expected overwatch or agent`, 2);
  }
  const configPath = values.config ?? '/etc/opengslb/config.yaml';
  const modeFlag = values.mode as Config['mode'] | undefined;

  // One listener per signal for the whole life of the process, dispatching
  // through `onSignal`: while starting, signals are remembered and acted on
  // once the overwatch is up (or ignored if start-up fails). The listeners are
  // never swapped: libuv queues a caught signal for the handle that was
  // listening, and a handle closed before the loop reads that queue loses it,
  // so replacing listeners while DNS workers already answer could drop a
  // SIGTERM sent by a client that saw an answer.
  // SIGTERM and SIGINT before anything is served (DNS not bound, no agent
  // registered) end the start at once instead: it may wait many seconds (a
  // first health round, a key-sync peer that does not answer), and a stop
  // then has nothing to finish. Once the DNS workers answer (Overwatch.start's
  // onServing, before the start returns) a signal waits for the clean stop,
  // which gives TCP queries in flight their grace. The pid file goes at exit (src/state/lock.ts);
  // lmdb keeps every committed write, as after a crash.
  const early: string[] = [];
  let serving = false;
  let logger: Logger | null = null;
  let onSignal = (signal: string): void => {
    if (serving || (signal !== 'SIGTERM' && signal !== 'SIGINT')) return void early.push(signal);
    if (logger === null) process.stderr.write(`opengslb: ${signal}: stopped during start-up, before serving\n`);
    else {
      logger.info({ signal }, 'stopped during start-up, before serving');
      logger.flush?.();
    }
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => onSignal(signal));
  // Fault drills (bench/soak.ts): with OPENGSLB_FAULT_DRILL=1, SIGUSR2 terminates
  // one DNS worker, as a crash would, and the pool restarts it. Off by default,
  // so a stray SIGUSR2 keeps Node's default action elsewhere.
  const drills = process.env.OPENGSLB_FAULT_DRILL === '1';
  if (drills) process.on('SIGUSR2', () => onSignal('SIGUSR2'));
  const queryRate = readQueryRateInterval(process.env.OPENGSLB_QUERY_RATE_INTERVAL_MS);

  let config: Config;
  let files: readonly string[];
  let warnings: readonly ConfigProblem[];
  const loadedAtMs = Date.now();
  try {
    // The --mode flag decides which keys the file may and must have, as the file's own mode: would.
    ({ config, files, warnings } = await loadConfigIsolated(configPath, modeFlag === undefined ? {} : { mode: modeFlag }));
  } catch (err) {
    // A config error lists every problem, one per line, each opengslb: FILE:LINE:COL: … (or FILE: … for a whole file); anything else is one line.
    if (err instanceof ConfigError) {
      process.stderr.write(formatConfigError('opengslb', err));
      process.exit(1);
    }
    if (err instanceof OpenGslbError) fail(err.message, 1);
    fail(`cannot load ${configPath}: ${(err as Error).message}`, 1);
  }
  const mode = config.mode;

  logger = createLogger(config.logging);
  dropLogOnStreamError(process.stdout);
  logger.info({ version: packageVersion(), node: process.version, config: config.source, files: files.length, mode }, 'OpenGSLB starting');
  logConfigWarnings(logger.child({ component: 'config' }), warnings);
  if (mode === 'agent') {
    const { runAgent } = await import('./agent-main.ts');
    await runAgent(config, logger, packageVersion(), {
      started: () => void (serving = true),
      listen: (handler) => {
        onSignal = handler;
        for (const signal of early) onSignal(signal);
      },
    });
    return;
  }
  let store: StateStore;
  try {
    store = LmdbStore.open(config.dataDir);
  } catch (err) {
    fail((err as Error).message, 1);
  }
  // The API starts first, so /api/v1/ready says 503 while the first health round runs.
  let running: Overwatch | null = null;
  let reloading: ConfigReloader | null = null;
  let api: ApiServer | null = null;
  if (config.api.enabled) {
    try {
      // Loaded only when enabled: Fastify and its schemas cost memory a DNS-only node need not pay.
      const { startApi } = await import('../api/server.ts');
      api = await startApi(
        { apiConfig: () => (running?.config ?? config).api, overwatch: () => running, reloader: () => reloading, logger, version: packageVersion(), ...queryRate },
        config.api.host,
        config.api.port,
      );
    } catch (err) {
      await store.close();
      fail(`cannot start the admin API on ${formatAddress(config.api.host, config.api.port)} (api.address): ${(err as Error).message}`, 1);
    }
  }
  // Created before the start: the first health round's results are counted too.
  const metrics = config.metrics.enabled ? (await import('../metrics/prometheus.ts')).createMetrics({ version: packageVersion(), loadedAtMs, api }) : null;
  let overwatch: Overwatch;
  try {
    // From the moment the DNS workers answer, a SIGTERM waits for the start to finish and takes the clean stop below (TCP grace).
    overwatch = await Overwatch.start(config, logger, { store, onServing: () => void (serving = true), ...(metrics ? { onCheck: metrics.onCheck } : {}) });
  } catch (err) {
    logger.flush?.();
    await api?.close();
    await store.close();
    fail(err instanceof Error ? err.message : String(err), 1);
  }
  running = overwatch;
  serving = true;
  let metricsListener: MetricsListener | null = null;
  if (metrics !== null) {
    try {
      const { startMetricsServer } = await import('../metrics/server.ts');
      metricsListener = await startMetricsServer(metrics.registry, config.metrics.host, config.metrics.port, logger);
    } catch (err) {
      await Promise.all([overwatch.stop(), api?.close()]);
      await store.close();
      fail(`cannot start the metrics listener (metrics.address): ${(err as Error).message}`, 1);
    }
  }
  logger.info({ address: formatAddress(overwatch.host, overwatch.port) }, 'OpenGSLB running');

  // The whole stop stays under 5 s: workers get 3 s of grace, a worker still
  // running a second later is terminated, and the last-resort timer fires at 4.5 s.
  const shutdown = shutdownOnce(logger, {
    announce: 'stopping: no new queries, finishing TCP queries in flight',
    deadlineMs: 4500,
    stop: () =>
      Promise.all([overwatch.stop(), api?.close(), metricsListener?.close()]).then(() => {
        metrics?.close();
        return store.close();
      }),
  });
  // A reload that swapped the config also hands the API its certificate again (a renewed one is served to new connections).
  const target: ReloadTarget = {
    get config() {
      return overwatch.config;
    },
    get generation() {
      return overwatch.generation;
    },
    // True from the first stop() call: a reload still reading its files then is not applied (reload.ts).
    get stopping() {
      return overwatch.stopping;
    },
    reload: async (next) => {
      const result = await overwatch.reload(next);
      // The new snapshot serves from here on: a throw would be reported as a
      // refused reload ("still serving the previous config") when it is not.
      let kept: string | null = null;
      try {
        kept = result.ok && api !== null ? api.reloadTls(next.api.tls) : null;
      } catch (err) {
        kept = (err as Error).message;
      }
      if (kept !== null) logger.child({ component: 'api' }).error({ reason: kept }, 'API certificate not reloaded');
      return result;
    },
  };
  const reloader = new ConfigReloader({
    path: configPath,
    target,
    logger,
    loadedAtMs,
    ...(values.mode === undefined ? {} : { modeOverride: values.mode as Config['mode'] }),
  });
  reloading = reloader;
  metrics?.attach(overwatch, reloader);
  // The reloader runs reloads one after another and logs each outcome itself.
  const onHup = (): void => void reloader.request();
  let nextDrillWorker = 0;
  const drill = (): void => {
    const workers = overwatch.pool.workers;
    const index = nextDrillWorker++ % workers.length;
    const worker = workers[index];
    if (worker === null) return void logger.warn({ worker: index }, 'fault drill: DNS worker is already restarting');
    logger.warn({ worker: index }, 'fault drill (SIGUSR2, OPENGSLB_FAULT_DRILL=1): terminating a DNS worker');
    void worker.terminate();
  };
  onSignal = (signal) => (signal === 'SIGHUP' ? onHup() : signal === 'SIGUSR2' ? drill() : shutdown(signal));
  for (const signal of early) onSignal(signal);
}
