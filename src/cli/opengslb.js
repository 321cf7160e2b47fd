#!/usr/bin/env node
// The opengslb server entry point: a Node-version guard, then the TypeScript main.
import { requireSupportedNode } from './node-guard.js';

requireSupportedNode('opengslb');
const { main } = await import('./opengslb-main.ts');
await main(process.argv.slice(2));
