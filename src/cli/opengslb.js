#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=4 --heap-growing-percent=25
// The opengslb server entry point: a Node-version guard, then the main module
// (the TypeScript source in a clone, the built JavaScript in an installed package).
// The shebang's environment and flags are SERVER_ENV and SERVER_NODE_FLAGS (./runtime-flags.js); `env -S` splits them.
import { locateMain, requireSupportedNode } from './node-guard.js';

const entry = locateMain(import.meta.url, 'opengslb-main');
requireSupportedNode('opengslb', entry.fromSources);
const { main } = await import(entry.url);
await main(process.argv.slice(2));
