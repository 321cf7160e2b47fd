// Worker thread, cold path. The first module of a worker started by
// createWorker() (./worker-thread.ts): it serves the worker's TypeScript
// modules from the JavaScript the main thread stripped, so this isolate never
// instantiates a stripper of its own, then runs the entry. Plain JavaScript,
// because nothing may need stripping before the hook is in place.

import { registerHooks } from 'node:module';
import { workerData } from 'node:worker_threads';

// Same as MODULES_KEY in ./worker-thread.ts: importing that .ts module from here would load the very stripper this avoids.
const MODULES_KEY = 'opengslb.workerModules';

const { entry, sources } = workerData[MODULES_KEY];
// The entry sees exactly the workerData its starter passed.
delete workerData[MODULES_KEY];

registerHooks({
  load(url, context, nextLoad) {
    const source = sources[url];
    return source === undefined ? nextLoad(url, context) : { format: 'module', source, shortCircuit: true };
  },
});

await import(entry);
