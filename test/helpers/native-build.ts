// Test helper. Whether this machine can build the batched-UDP addon from
// source the way the package's install step and the prepack build do, and
// with what: npm's node-gyp and Node's headers.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findNodeHeaders } from '../../native/install.js';

/** npm's node-gyp (set for scripts run by npm and npx), or undefined. */
export const nodeGyp = process.env.npm_config_node_gyp;

/** Node's headers for an offline build, or null. */
export const nodeHeaders = findNodeHeaders();

/** false when the addon can be built here, else why not (a test's skip reason). */
export const cannotBuild: string | false =
  process.platform !== 'linux'
    ? 'the addon is built on Linux only'
    : nodeGyp === undefined || !existsSync(nodeGyp)
      ? 'npm\'s node-gyp is not known here (run the tests through npm or npx, which set npm_config_node_gyp)'
      : nodeHeaders === null
        ? 'no Node.js headers next to this Node or in the pinned node package'
        : spawnSync('make', ['--version']).status !== 0 || spawnSync('cc', ['--version']).status !== 0
          ? 'make and a C compiler are needed (apt-get install make g++ python3)'
          : false;
