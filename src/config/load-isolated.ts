// Main thread, cold path. Loads a config file in a short-lived worker thread.
//
// Why: parsing YAML with positions and validating it allocates several times
// the size of the result (a 10 000-server file took the process from 88 to
// 263 MB RSS for 64 MB of live heap), and V8 does not hand that memory back
// to the OS once the heap has grown. Done in a throwaway isolate, all of it
// goes away when the worker exits; the main thread only receives the result.

import { createWorker } from '../lib/worker-thread.ts';
import { deepFreeze } from './build.ts';
import { formatDuration } from './duration.ts';
import type { Environment } from './env.ts';
import { ConfigError, type LoadedConfig, type LoadOptions } from './load.ts';
import type { ConfigErrorCode, ConfigProblem } from './problems.ts';

type Reply =
  | { ok: true; config: LoadedConfig['config']; files: string[]; warnings: ConfigProblem[] }
  | { ok: false; code: ConfigErrorCode; problems: ConfigProblem[] }
  | { ok: false; message: string; code?: undefined };

const WORKER_URL = new URL('./load-worker.ts', import.meta.url);

/**
 * How long the loader may take before it is stopped: far more than reading
 * and validating a large config takes, while a file on a stuck network file
 * system would hold the read (and so every later reload, which waits for this
 * one) forever. docs/configuration.md ("Reloading") states it.
 */
export const LOAD_TIMEOUT_MS = 30_000;

/** How to load in the worker: loadConfig's options and a time limit. */
export interface IsolatedLoadOptions extends LoadOptions {
  /** Time limit of the whole load; LOAD_TIMEOUT_MS when absent. */
  readonly timeoutMs?: number;
}

/**
 * Loads `path` exactly as loadConfig() does (same checks, same problems),
 * in a worker thread. Resolves with the deep-frozen config, the files read
 * and the warnings; rejects with the same ConfigError loadConfig would throw, or an Error
 * when the worker itself fails or does not answer within `opts.timeoutMs`
 * (then it is terminated).
 */
export function loadConfigIsolated(path: string, opts: IsolatedLoadOptions = {}): Promise<LoadedConfig> {
  const env: Environment = { ...(opts.env ?? process.env) };
  const timeoutMs = opts.timeoutMs ?? LOAD_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const worker = createWorker(WORKER_URL, { workerData: { path, env, mode: opts.mode }, name: 'config-loader' });
    let settled = false;
    // A read blocked in the file system cannot be cancelled from here; terminating the worker
    // frees its isolate, and the blocked read ends (or not) in the thread pool on its own.
    const timer = setTimeout(() => {
      settled = true;
      void worker.terminate();
      reject(new Error(
        `config loader timed out: ${path} and its includes were not read and validated within ${formatDuration(timeoutMs)} (a file on a stuck network file system?); ` +
          'the loader was stopped, expected a load that finishes in time',
      ));
    }, timeoutMs);
    worker.once('message', (reply: Reply) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      if (reply.ok) {
        resolve({ config: deepFreeze(reply.config), files: reply.files, warnings: reply.warnings });
      } else if (reply.code !== undefined) {
        // Keep the order the loader gave: files as they were read, then line and column.
        const fileOrder = [...new Set(reply.problems.map((p) => p.file))];
        reject(new ConfigError(reply.code, reply.problems, { fileOrder }));
      } else {
        reject(new Error(`config loader failed: ${reply.message}`));
      }
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`config loader failed: ${err.message}`));
      settled = true;
    });
    worker.once('exit', (code) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`config loader exited with code ${code} before answering`));
    });
  });
}
