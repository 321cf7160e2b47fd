#!/usr/bin/env node
// The opengslb-cli entry point: a Node-version guard, then the main module
// (the TypeScript source in a clone, the built JavaScript in an installed package).
import { locateMain, requireSupportedNode } from './node-guard.js';

const entry = locateMain(import.meta.url, 'opengslb-cli-main');
requireSupportedNode('opengslb-cli', entry.fromSources);
const { main } = await import(entry.url);
process.exitCode = await main(process.argv.slice(2));
