// Main thread, cold path. Config reload (SIGHUP, or POST /api/v1/reload): read
// the main file and its includes, validate, then let the overwatch compile and
// swap in a new snapshot. Any failure keeps the old config serving and is
// logged with every problem. Each reload's outcome says what changed (domains
// and servers added, removed, changed) or every problem; the reloader keeps
// the last one and the last failure for the status route, and counts reloads
// by result for the metrics endpoint.
//
//   SIGHUP ─┬▶ request() ─▶ loadConfigIsolated ──fail──▶ log error, failure += 1, lastFailure
//   POST  ──┘                  │ ok ──server stopping──▶ not applied, log warn, failure += 1
//                              ▼
//                     overwatch.reload(next) ──refused──▶ log error, failure += 1, lastFailure
//                              │ ok (every worker on the new snapshot)
//                              ▼
//                     success += 1, lastSuccess = now, log info (with the changes)

import type { Environment } from '../config/env.ts';
import { ConfigError } from '../config/load.ts';
import { loadConfigIsolated } from '../config/load-isolated.ts';
import { formatProblem, type ConfigProblem } from '../config/problems.ts';
import type { Config, DomainConfig, RunMode } from '../config/types.ts';
import type { Logger } from '../log/logger.ts';
import type { ConfigChange } from '../registry/registry.ts';
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
  /** Gauge: 1 when the last reload succeeded (or none was tried yet), 0 when it failed. */
  lastReloadSuccessful: 'opengslb_config_last_reload_successful',
} as const;

/** What a reload swaps the config of: the Overwatch, or a stand-in in tests. */
export interface ReloadTarget {
  readonly config: Config;
  /** Generation of the snapshot published last. */
  readonly generation: number;
  /**
   * True once the server has begun to stop. A reload whose files are read by
   * then is not applied: the stop does not wait for it, so it would reach a
   * stopped overwatch and a closed state store (an uncaught lmdb error).
   */
  readonly stopping?: boolean;
  reload(next: Config): Promise<ReloadResult>;
}

/** Names added, removed and changed by a reload. */
export interface ChangeList {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

/** What a successful reload changed: domains by name, servers by label ("region/address:port"). */
export interface ReloadChanges {
  readonly domains: ChangeList;
  readonly servers: ChangeList;
}

/** The last failed reload, for the status route. */
export interface ReloadFailure {
  /** When it failed, unix ms. */
  readonly atMs: number;
  /** The reason in one line (the first problem when the config was invalid). */
  readonly message: string;
  readonly problems: readonly ConfigProblem[];
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
  /** Time limit of one load (read and validate); LOAD_TIMEOUT_MS (30 s) when absent. */
  readonly loadTimeoutMs?: number;
}

/** How one reload ended. */
export interface ReloadOutcome {
  readonly result: ReloadResultLabel;
  /** Snapshot generation serving afterwards: the new one on success, the old one (still serving) on failure. */
  readonly generation: number;
  /** One line for a refusal or success; every problem, one per line, for an invalid config. */
  readonly message: string;
  /** The config problems, when loading failed. */
  readonly problems: readonly ConfigProblem[];
  /** The files read, when loading succeeded. */
  readonly files: readonly string[];
  /** What changed, on success; null on failure. */
  readonly changes: ReloadChanges | null;
  /** The new config's warnings (loads, but most likely not what was meant), on success; empty on failure. */
  readonly warnings: readonly ConfigProblem[];
  /** When it finished, unix ms. */
  readonly atMs: number;
}

/** The config now serving and the reloads so far, for GET /api/v1/status. */
export interface ReloadStatus {
  /** The main config file, as given on the command line. */
  readonly path: string;
  /** Snapshot generation the config now serving was published with (1 at start). */
  readonly configGeneration: number;
  /** When the config now serving was loaded (start-up or the last successful reload), unix ms. */
  readonly loadedAtMs: number;
  readonly reloads: Readonly<Record<ReloadResultLabel, number>>;
  /** The last reload, or null when none ran yet. */
  readonly last: ReloadOutcome | null;
  /** The last failed reload, or null when none failed. */
  readonly lastFailure: ReloadFailure | null;
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
  #configGeneration: number;
  #last: ReloadOutcome | null = null;
  #lastFailure: ReloadFailure | null = null;
  #running: Promise<ReloadOutcome> | null = null;
  #queued: Promise<ReloadOutcome> | null = null;

  constructor(opts: ReloaderOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'config' });
    this.#now = opts.now ?? Date.now;
    this.#lastSuccessMs = opts.loadedAtMs ?? this.#now();
    this.#configGeneration = opts.target.generation;
  }

  /** The config now serving, the reload counts, the last reload and the last failure. */
  status(): ReloadStatus {
    return {
      path: this.#opts.path,
      configGeneration: this.#configGeneration,
      loadedAtMs: this.#lastSuccessMs,
      reloads: this.reloads,
      last: this.#last,
      lastFailure: this.#lastFailure,
    };
  }

  /** Did the last reload succeed (true before any ran): opengslb_config_last_reload_successful. */
  get lastReloadSuccessful(): boolean {
    return this.#last === null || this.#last.result === 'success';
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
    const outcome = await this.#attempt();
    this.#last = outcome;
    if (outcome.result === 'failure') {
      const first = outcome.problems[0];
      this.#lastFailure = { atMs: outcome.atMs, message: first === undefined ? outcome.message : formatProblem(first), problems: outcome.problems };
    }
    return outcome;
  }

  async #attempt(): Promise<ReloadOutcome> {
    const { path, target } = this.#opts;
    const before = target.config;
    let next: Config;
    let files: readonly string[];
    let warnings: readonly ConfigProblem[];
    try {
      ({ config: next, files, warnings } = await loadConfigIsolated(path, {
        ...(this.#opts.env === undefined ? {} : { env: this.#opts.env }),
        ...(this.#opts.loadTimeoutMs === undefined ? {} : { timeoutMs: this.#opts.loadTimeoutMs }),
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
      return { result: 'failure', generation: target.generation, message: reason, problems, files: [], changes: null, warnings: [], atMs: this.#now() };
    }
    if (this.#opts.modeOverride !== undefined) next = { ...next, mode: this.#opts.modeOverride };
    if (target.stopping === true) {
      this.#counts.failure++;
      const reason = 'the server is stopping; the reload was not applied';
      this.#log.warn({ file: path, reason, reloads: this.reloads }, 'reload not applied; the server is stopping');
      return { result: 'failure', generation: target.generation, message: reason, problems: [], files, changes: null, warnings: [], atMs: this.#now() };
    }
    let swapped: ReloadResult;
    try {
      swapped = await target.reload(next);
    } catch (err) {
      // overwatch.reload reports refusals as results; an exception here is a bug, but still must not stop the server.
      swapped = { ok: false, generation: target.generation, message: err instanceof Error ? err.message : String(err) };
    }
    if (!swapped.ok) {
      this.#counts.failure++;
      this.#log.error({ file: path, reason: swapped.message, reloads: this.reloads }, 'reload refused; still serving the previous config');
      return { result: 'failure', generation: swapped.generation, message: swapped.message, problems: [], files, changes: null, warnings: [], atMs: this.#now() };
    }
    this.#counts.success++;
    this.#lastSuccessMs = this.#now();
    this.#configGeneration = swapped.generation;
    const changes: ReloadChanges = { domains: diffDomains(before.domains, next.domains), servers: swapped.servers ?? EMPTY_CHANGE };
    this.#log.info(
      {
        file: path,
        files: files.length,
        generation: swapped.generation,
        detail: swapped.message,
        domains: countChanges(changes.domains),
        servers: countChanges(changes.servers),
        reloads: this.reloads,
        lastSuccess: new Date(this.#lastSuccessMs).toISOString(),
      },
      'reload succeeded',
    );
    logConfigWarnings(this.#log, warnings);
    return { result: 'success', generation: swapped.generation, message: swapped.message, problems: [], files, changes, warnings, atMs: this.#lastSuccessMs };
  }
}

/**
 * Logs each config warning (a config that loads but is most likely not what
 * was meant, ProblemCollector.warnings) at warn, one line each: at start and
 * after each reload that was applied, so it is named again until fixed.
 */
export function logConfigWarnings(log: Logger, warnings: readonly ConfigProblem[]): void {
  for (const w of warnings) log.warn({ file: w.file, line: w.line, col: w.col, path: w.path }, `config warning: ${formatProblem(w)}`);
}

const EMPTY_CHANGE: ConfigChange = { added: [], removed: [], changed: [] };

/** "+1 -0 ~2": a change list's sizes, for the log line. */
function countChanges(c: ChangeList): string {
  return `+${c.added.length} -${c.removed.length} ~${c.changed.length}`;
}

/**
 * Compares two configs' domains by name: added, removed, and changed (any
 * key of the domain differs: regions, policy, TTL, fallback…). Domain configs
 * are plain frozen data, so their JSON says whether two are the same.
 */
export function diffDomains(before: readonly DomainConfig[], after: readonly DomainConfig[]): ChangeList {
  const old = new Map(before.map((d) => [d.name, JSON.stringify(d)]));
  const added: string[] = [];
  const changed: string[] = [];
  const seen = new Set<string>();
  for (const d of after) {
    seen.add(d.name);
    const was = old.get(d.name);
    if (was === undefined) added.push(d.name);
    else if (was !== JSON.stringify(d)) changed.push(d.name);
  }
  const removed = before.filter((d) => !seen.has(d.name)).map((d) => d.name);
  return { added, removed, changed };
}
