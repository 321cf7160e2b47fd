// native/udp_batch.c built with -fsanitize=address,undefined (and the
// shipped warnings as errors) into a scratch folder, then driven by
// sanitize-scenario.ts in a child Node with the sanitizers preloaded: no
// out-of-bounds access, no use after free, no undefined behaviour on any
// path it takes. Needs gcc with libasan and libubsan, and Node's headers.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/markdown.ts';
import { nodeHeaders } from '../helpers/native-build.ts';

/** gcc's path of a sanitizer runtime, or null. */
function runtime(name: string): string | null {
  const r = spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  return path.startsWith('/') && existsSync(path) ? path : null;
}
const asan = runtime('libasan.so');
const ubsan = runtime('libubsan.so');
const skip =
  process.platform !== 'linux' ? 'the addon is built on Linux only' : nodeHeaders === null ? 'no Node.js headers here' : asan === null || ubsan === null ? 'gcc with libasan and libubsan is needed' : false;

test('the addon runs clean under AddressSanitizer and UBSan: whole-slot datagrams, close inside a batch, handles used after close, garbage collected, terminated', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-asan-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const addonFile = join(dir, 'opengslb_udp.node');
  const cc = spawnSync(
    'gcc',
    ['-std=gnu11', '-O1', '-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared',
      '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=opengslb_udp', '-I', join(nodeHeaders!, 'include', 'node'), join(ROOT, 'native', 'udp_batch.c'), '-o', addonFile],
    { encoding: 'utf8' },
  );
  assert.equal(cc.status, 0, cc.stderr);
  const run = spawnSync(process.execPath, ['--expose-gc', join(ROOT, 'test', 'native', 'sanitize-scenario.ts'), addonFile], {
    encoding: 'utf8',
    timeout: 60_000,
    // Node itself is not instrumented: its own allocations are not leaks to report.
    env: { ...process.env, LD_PRELOAD: `${asan}:${ubsan}`, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0:exitcode=86', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' },
  });
  assert.equal(run.status, 0, `exit ${run.status} ${run.signal ?? ''}\n${run.stderr.split('\n').slice(0, 30).join('\n')}`);
  assert.match(run.stdout, /done/);
  assert.doesNotMatch(run.stderr, /Sanitizer|runtime error/);
});
