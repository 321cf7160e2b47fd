// Worker entry, cold path. Loads one config file for the main thread (see
// load-isolated.ts) and exits, taking every byte the YAML parse allocated with it.

import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError, loadConfig } from './load.ts';
import type { Environment } from './env.ts';
import type { RunMode } from './types.ts';

const { path, env, mode } = workerData as { path: string; env: Environment; mode?: RunMode };
try {
  const { config, files, warnings } = await loadConfig(path, mode === undefined ? { env } : { env, mode });
  parentPort?.postMessage({ ok: true, config, files, warnings });
} catch (err) {
  if (err instanceof ConfigError) {
    parentPort?.postMessage({ ok: false, code: err.code, problems: err.problems });
  } else {
    parentPort?.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) });
  }
}
