// native/install.js, the package's install step, run as npm runs it in an
// installed package that has no prebuilt binary for its platform: it builds
// the addon from source where a compiler is present (and the build loads),
// and where the build cannot run it says so in one line and exits 0, so the
// install goes on and the server answers through node:dgram.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadUdpBatch } from '../../native/udp-batch.ts';
import { ROOT } from '../helpers/markdown.ts';
import { cannotBuild, nodeGyp, nodeHeaders as headers } from '../helpers/native-build.ts';

/** A package directory holding only what the tarball ships of native/ (no build, no prebuilt). */
async function packageDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-install-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['binding.gyp', 'udp_batch.c', 'install.js']) cpSync(join(ROOT, 'native', f), join(dir, 'native', f));
  return dir;
}

test('without a prebuilt binary, the install step builds the addon from source and it loads', { skip: cannotBuild }, async (t) => {
  const dir = await packageDir(t);
  const r = spawnSync(process.execPath, [join(dir, 'native', 'install.js')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, npm_config_node_gyp: nodeGyp, npm_config_nodedir: headers! },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, 'opengslb: built the batched-UDP addon from source: native/build/Release/opengslb_udp.node\n');
  const loaded = loadUdpBatch([join(dir, 'native', 'build', 'Release', 'opengslb_udp.node')]);
  assert.notEqual(loaded.addon, null, loaded.reason);
});

test('when the build cannot run, the install step says the workers will use node:dgram and exits 0', { skip: process.platform !== 'linux' ? 'on other platforms it only says the addon is Linux-only' : false }, async (t) => {
  const dir = await packageDir(t);
  // A node-gyp that does not exist: the build fails the way a missing toolchain makes it fail, without depending on one being absent.
  const r = spawnSync(process.execPath, [join(dir, 'native', 'install.js')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, npm_config_node_gyp: join(dir, 'no-such-node-gyp.js'), PATH: '/nonexistent' },
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[0]!, /^opengslb: no prebuilt binary for this platform, and building from source failed \(needs python3, make and a C compiler\): /);
  assert.equal(lines.at(-1), 'opengslb: the server works without it: the DNS workers answer UDP through node:dgram (see docs/configuration.md, dns.udp_io)');
  assert.ok(!existsSync(join(dir, 'native', 'build', 'Release', 'opengslb_udp.node')));
});
