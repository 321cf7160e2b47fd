// Main thread, cold path. Config reload (SIGHUP): read the main file and its
// includes, validate, then let the overwatch compile and swap in a new
// snapshot. Any failure keeps the old config serving and is logged with every
// problem. Counts reloads by result for the metrics endpoint.
//
//   SIGHUP ─▶ request() ─▶ loadConfigIsolated ──fail──▶ log error, failure += 1
//                              │ ok
//                              ▼
//                     overwatch.reload(next) ──refused──▶ log error, failure += 1
//                              │ ok (every worker on the new snapshot)
//                              ▼
//                     success += 1, lastSuccess = now, log info

import type { Environment } from '../config/env.ts';
import { ConfigError } from '../config/load.ts';
import { loadConfigIsolated } from '../config/load-isolated.ts';
import type { ConfigProblem } from '../config/problems.ts';
import type { Config, RunMode } from '../config/types.ts';
import type { Logger } from '../log/logger.ts';
import type { ReloadResult } from './overwatch.ts';

/** The values of the `result` label of opengslb_config_reloads_total. */
export const RELOAD_RESULTS = ['success', 'failure'] as const;
/** One value of the `result` label. */
export type ReloadResultLabel = (typeof RELOAD_RESULTS)[number];

/** Names under which the metrics endpoint exposes this module's numbers. */
export const RELOAD_METRICS = {
  /** Counter, label `result` (RELOAD_RESULTS). */
  reloadsTotal: 'opengslb_config_reloads_total',
  /** Gauge: unix time of the last successful load (start-up counts), in seconds. */
  lastSuccessTimestampSeconds: 'opengslb_config_reload_timestamp_seconds',
} as const;

/** What a reload swaps the config of: the Overwatch, or a stand-in in tests. */
export interface ReloadTarget {
  readonly config: Config;
  reload(next: Config): Promise<ReloadResult>;
}

/** What ConfigReloader needs: the file to read, what to swap, where to log. */
export interface ReloaderOptions {
  /** The main config file, as given on the command line. */
  readonly path: string;
  readonly target: ReloadTarget;
  readonly logger: Logger;
  /** The --mode flag, which overrides `mode:` in the file on every reload as at start-up. */
  readonly modeOverride?: RunMode;
  /** Variables for ${VAR} expansion; process.env when absent. */
  readonly env?: Environment;
  /** Clock in unix milliseconds; Date.now when absent. */
  readonly now?: () => number;
  /** When the config now serving was loaded at start-up (unix ms); now() when absent. */
  readonly loadedAtMs?: number;
}

/** How one reload ended. */
export interface ReloadOutcome {
  readonly result: ReloadResultLabel;
  /** Snapshot generation serving afterwards. */
  readonly generation: number | null;
  /** One line for a refusal or success; every problem, one per line, for an invalid config. */
  readonly message: string;
  /** The config problems, when loading failed. */
  readonly problems: readonly ConfigProblem[];
  /** The files read, when loading succeeded. */
  readonly files: readonly string[];
}

/**
 * Runs config reloads one at a time. Requests that arrive while one runs are
 * folded into a single follow-up reload, which reads the files after all of
 * them, so a burst of SIGHUPs costs at most two reloads.
 */
export class ConfigReloader {
  readonly #opts: ReloaderOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #counts: Record<ReloadResultLabel, number> = { success: 0, failure: 0 };
  #lastSuccessMs: number;
  #running: Promise<ReloadOutcome> | null = null;
  #queued: Promise<ReloadOutcome> | null = null;

  constructor(opts: ReloaderOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'config' });
    this.#now = opts.now ?? Date.now;
    this.#lastSuccessMs = opts.loadedAtMs ?? this.#now();
  }

  /** Reloads by result so far: opengslb_config_reloads_total{result}. */
  get reloads(): Readonly<Record<ReloadResultLabel, number>> {
    return { ...this.#counts };
  }

  /** Unix ms of the last successful reload, or of the start-up load when none has succeeded yet. */
  get lastSuccessMs(): number {
    return this.#lastSuccessMs;
  }

  /**
   * Starts a reload, or joins the one queued behind the running one. Resolves
   * with how it ended; never rejects (a failure is an outcome, logged here).
   */
  request(): Promise<ReloadOutcome> {
    if (this.#queued !== null) return this.#queued;
    if (this.#running === null) return this.#start();
    this.#queued = this.#running.then(() => {
      this.#queued = null;
      return this.#start();
    });
    return this.#queued;
  }

  #start(): Promise<ReloadOutcome> {
    const run = this.#reload().finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }

  async #reload(): Promise<ReloadOutcome> {
    const { path, target } = this.#opts;
    let next: Config;
    let files: readonly string[];
    try {
      ({ config: next, files } = await loadConfigIsolated(path, {
        ...(this.#opts.env === undefined ? {} : { env: this.#opts.env }),
        ...(this.#opts.modeOverride === undefined ? {} : { mode: this.#opts.modeOverride }),
      }));
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [];
      const reason = err instanceof Error ? err.message : String(err);
      this.#counts.failure++;
      this.#log.error(
        { file: path, code: err instanceof ConfigError ? err.code : undefined, problems: problems.length, reason, reloads: this.reloads },
        'reload failed; still serving the previous config',
      );
      return { result: 'failure', generation: null, message: reason, problems, files: [] };
    }
    if (this.#opts.modeOverride !== undefined) next = { ...next, mode: this.#opts.modeOverride };
    let swapped: ReloadResult;
    try {
      swapped = await target.reload(next);
    } catch (err) {
      // overwatch.reload reports refusals as results; an exception here is a bug, but still must not stop the server.
      swapped = { ok: false, generation: 0, message: err instanceof Error ? err.message : String(err) };
    }
    if (!swapped.ok) {
      this.#counts.failure++;
      this.#log.error({ file: path, reason: swapped.message, reloads: this.reloads }, 'reload refused; still serving the previous config');
      return { result: 'failure', generation: swapped.generation, message: swapped.message, problems: [], files };
    }
    this.#counts.success++;
    this.#lastSuccessMs = this.#now();
    this.#log.info(
      {
        file: path,
        files: files.length,
        generation: swapped.generation,
        detail: swapped.message,
        reloads: this.reloads,
        lastSuccess: new Date(this.#lastSuccessMs).toISOString(),
      },
      'reload succeeded',
    );
    return { result: 'success', generation: swapped.generation, message: swapped.message, problems: [], files };
  }
}
