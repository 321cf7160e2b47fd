#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=4
// The opengslb server entry point: a Node-version guard, then the TypeScript main.
// The shebang's environment and flags are SERVER_ENV and SERVER_NODE_FLAGS (./runtime-flags.js); `env -S` splits them.
import { requireSupportedNode } from './node-guard.js';

requireSupportedNode('opengslb');
const { main } = await import('./opengslb-main.ts');
await main(process.argv.slice(2));
