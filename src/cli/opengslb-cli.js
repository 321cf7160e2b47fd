#!/usr/bin/env node
// The opengslb-cli entry point: a Node-version guard, then the TypeScript main.
import { requireSupportedNode } from './node-guard.js';

requireSupportedNode('opengslb-cli');
const { main } = await import('./opengslb-cli-main.ts');
process.exitCode = await main(process.argv.slice(2));
