// @ts-check
// Install time (npm's "install" script), and the build behind `npm run
// build:native` and the prepack prebuild (scripts/build-dist.ts). Plain
// JavaScript because it runs inside an installed package, where Node strips
// no types. It never fails an install: the server answers UDP through
// node:dgram whenever the addon is missing, and says so at start.
//
//   npm run build:native ──► node native/install.js --rebuild   (always builds; exit 1 when it cannot)
//   npm install ──► node native/install.js
//                     the shipped prebuilt loads? ──yes──► done
//                     └─no──► node-gyp rebuild (where a C compiler is) ──► native/build/Release/opengslb_udp.node
//                                └─fails──► one line: the workers will use node:dgram; exit 0

import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This folder: binding.gyp, udp_batch.c, build/ and prebuilds/. */
export const NATIVE_DIR = dirname(fileURLToPath(import.meta.url));
export const ADDON_FILE = 'opengslb_udp.node';
/** The interface version udp_batch.c reports (native/udp-batch.ts ADDON_ABI). */
const ADDON_ABI = 1;

/**
 * Returns the folder of Node's own headers for this Node (one that holds
 * include/node/node_api.h and common.gypi) so node-gyp builds offline, or
 * null to let node-gyp fetch them. Official builds keep them next to bin/;
 * the pinned `node` devDependency keeps them in its platform package.
 * @returns {string | null}
 */
export function findNodeHeaders() {
  const candidates = [dirname(dirname(realpathSync(process.execPath)))];
  const pkgRoot = dirname(NATIVE_DIR);
  candidates.push(join(pkgRoot, 'node_modules', 'node', 'node_modules', `node-${process.platform}-${process.arch}`));
  for (const dir of candidates) {
    if (existsSync(join(dir, 'include', 'node', 'node_api.h')) && existsSync(join(dir, 'include', 'node', 'common.gypi'))) return dir;
  }
  return null;
}

/**
 * Returns how to run node-gyp: npm's own (npm_config_node_gyp, set for
 * scripts run by npm and npx), else `node-gyp` on PATH.
 * @returns {{ command: string, args: string[] }}
 */
export function findNodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm !== undefined && fromNpm !== '' && existsSync(fromNpm)) {
    return fromNpm.endsWith('.js') ? { command: process.execPath, args: [fromNpm] } : { command: fromNpm, args: [] };
  }
  return { command: 'node-gyp', args: [] };
}

/**
 * Builds the addon from udp_batch.c with node-gyp into `dir`/build/Release/
 * (`dir` holds binding.gyp and udp_batch.c: this folder by default, or the
 * prepack build's scratch copy). Returns the built file, or throws an Error
 * whose message ends with the tail of node-gyp's output.
 * @param {string} [dir]
 * @returns {string}
 */
export function buildFromSource(dir = NATIVE_DIR) {
  const gyp = findNodeGyp();
  const args = [...gyp.args, 'rebuild', '--directory', dir, '--loglevel=error'];
  const headers = findNodeHeaders();
  if (headers !== null && !process.env.npm_config_nodedir) args.push('--nodedir', headers);
  const r = spawnSync(gyp.command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
  const file = join(dir, 'build', 'Release', ADDON_FILE);
  if (r.error !== undefined || r.status !== 0 || !existsSync(file)) {
    const why = r.error !== undefined ? r.error.message : `node-gyp exited ${r.status}`;
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${why}${tail === '' ? '' : `\n${tail}`}`);
  }
  return file;
}

/**
 * Returns null when `file` loads as the addon this package expects, else why not.
 * @param {string} file
 * @returns {string | null}
 */
export function checkLoads(file) {
  if (!existsSync(file)) return 'missing';
  try {
    const addon = /** @type {{ abiVersion?: number }} */ (createRequire(import.meta.url)(file));
    return addon.abiVersion === ADDON_ABI ? null : `interface ${String(addon.abiVersion)}, expected ${ADDON_ABI}`;
  } catch (err) {
    return /** @type {Error} */ (err).message.split('\n')[0] ?? 'does not load';
  }
}

/** The install step: keeps a prebuilt that loads, else builds, else explains; always exits 0. */
function install() {
  const say = (/** @type {string} */ line) => process.stderr.write(`opengslb: ${line}\n`);
  if (process.platform !== 'linux') {
    say(`batched UDP (recvmmsg/sendmmsg) is Linux-only; on ${process.platform} the DNS workers answer UDP through node:dgram`);
    return;
  }
  const prebuilt = join(NATIVE_DIR, 'prebuilds', `${process.platform}-${process.arch}-glibc`, ADDON_FILE);
  const prebuiltProblem = checkLoads(prebuilt);
  if (prebuiltProblem === null) return;
  try {
    const built = buildFromSource();
    const problem = checkLoads(built);
    if (problem !== null) throw new Error(`the build does not load: ${problem}`);
    say(`built the batched-UDP addon from source: ${relative(dirname(NATIVE_DIR), built)}`);
  } catch (err) {
    const prebuiltNote = prebuiltProblem === 'missing' ? 'no prebuilt binary for this platform' : `the prebuilt binary does not load (${prebuiltProblem})`;
    say(`${prebuiltNote}, and building from source failed (needs python3, make and a C compiler): ${/** @type {Error} */ (err).message}`);
    say('the server works without it: the DNS workers answer UDP through node:dgram (see docs/configuration.md, dns.udp_io)');
  }
}

/** `npm run build:native`: always builds from source; exits 1 with node-gyp's output when that fails. */
function rebuild() {
  try {
    const built = buildFromSource();
    const problem = checkLoads(built);
    if (problem !== null) throw new Error(`the build does not load: ${problem}`);
    process.stderr.write(`opengslb: built ${relative(dirname(NATIVE_DIR), built)}\n`);
  } catch (err) {
    process.stderr.write(`opengslb: building the batched-UDP addon failed: ${/** @type {Error} */ (err).message}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--rebuild')) rebuild();
  else install();
}
