// Main thread, cold path. Starts worker threads whose TypeScript modules the
// main thread has type-stripped, once, so that a worker never loads a
// TypeScript stripper of its own.
//
// Why: Node strips a .ts module with amaro (swc built to WebAssembly), and
// every isolate that loads TypeScript instantiates its own copy. Measured on
// Node 24.21 (a worker importing one small module): +35 MB RSS for the first
// worker and +22 MB for the second when it loads .ts, +18 and +12 MB when it
// loads the same module as JavaScript. The main thread holds a copy anyway,
// for its own modules. See docs/architecture.md ("Threads and memory").
//
//   createWorker(entry) ─► walk entry's static relative .ts imports, strip each one (cached per entry)
//                       ─► new Worker(worker-boot.js, { workerData: {...data, [MODULES_KEY]: {entry, sources}} })
//   worker-boot.js      ─► module.registerHooks({ load: the stripped source for those URLs }) ─► import(entry)
//
// Correctness never depends on the walk: a module it missed (a dynamic
// import, say) is loaded, and stripped, by the worker's Node as usual.
//
// In an installed package the code is the JavaScript built into dist/
// (scripts/build-dist.ts rewrites './x.ts' to './x.js' everywhere, worker
// entries included): a .js entry starts as a plain Worker, with nothing to strip.

import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** The workerData key the boot module takes its modules from (and deletes before the entry runs). */
export const MODULES_KEY = 'opengslb.workerModules';

const BOOT_URL = new URL('./worker-boot.js', import.meta.url);

// Static forms only: import … from, bare import, export … from. Type-only
// imports are gone after stripping, so every match is a module the worker runs.
const RELATIVE_TS_IMPORT = /(?:^|[\s;}])(?:import|export)\s*(?:[^'";]*?\sfrom\s*)?['"](\.{1,2}\/[^'"]+\.ts)['"]/g;

type StripTypes = (code: string, options: { mode: 'strip' }) => string;
type RegisterHooks = (hooks: object) => unknown;
const strip = (nodeModule as { stripTypeScriptTypes?: StripTypes }).stripTypeScriptTypes;
const canPreload = typeof strip === 'function' && typeof (nodeModule as { registerHooks?: RegisterHooks }).registerHooks === 'function';

const sourcesByEntry = new Map<string, Readonly<Record<string, string>>>();

/**
 * module.stripTypeScriptTypes, without the ExperimentalWarning it prints once
 * per process on Node 24: it is the stripper Node already runs on every .ts
 * module it loads, so the line would tell an operator nothing. Only that
 * warning is dropped.
 */
function stripQuietly(code: string): string {
  const emit = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (text.startsWith('stripTypeScriptTypes ')) return;
    (emit as (w: string | Error, ...r: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return (strip as StripTypes)(code, { mode: 'strip' });
  } finally {
    process.emitWarning = emit;
  }
}

/**
 * Returns the stripped JavaScript of `entry` and of every .ts module it
 * reaches through static relative imports, keyed by file URL. Mode "strip"
 * blanks the types in place, so lines and columns in stack traces stay those
 * of the .ts files.
 */
export function strippedModules(entry: URL): Readonly<Record<string, string>> {
  const cached = sourcesByEntry.get(entry.href);
  if (cached !== undefined) return cached;
  const sources: Record<string, string> = {};
  const queue = [entry.href];
  while (queue.length > 0) {
    const url = queue.pop() as string;
    if (Object.hasOwn(sources, url)) continue;
    const js = stripQuietly(readFileSync(new URL(url), 'utf8'));
    sources[url] = js;
    for (const m of js.matchAll(RELATIVE_TS_IMPORT)) queue.push(new URL(m[1], url).href);
  }
  sourcesByEntry.set(entry.href, sources);
  return sources;
}

/**
 * Starts a worker thread running the TypeScript module `entry`, as
 * `new Worker(entry, options)` would, but from sources stripped here (see the
 * header). `options.workerData` must be a plain object or absent; the worker
 * sees it unchanged. Falls back to a plain `new Worker(entry, options)` for an
 * entry that is not a .ts file (the built package), on a Node without
 * module.registerHooks and module.stripTypeScriptTypes (before 22.15), when
 * workerData is not an object, and when a module cannot be read or stripped
 * (so the worker reports it, as it always did). Never throws where
 * new Worker(entry) would not.
 */
export function createWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const data: unknown = options.workerData ?? {};
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  if (!canPreload || typeof data !== 'object' || data === null || Array.isArray(data)) return new Worker(entry, options);
  let sources: Readonly<Record<string, string>>;
  try {
    sources = strippedModules(entry);
  } catch {
    // A module that cannot be read or stripped: the worker's own loader meets it too and
    // reports it the usual way (file, line, column), as a worker 'error'.
    return new Worker(entry, options);
  }
  const workerData = { ...(data as Record<string, unknown>), [MODULES_KEY]: { entry: entry.href, sources } };
  return new Worker(BOOT_URL, { ...options, workerData });
}
