// A state write that the file system refuses (a full disk; here the child's
// RLIMIT_FSIZE, which fails a write or fallocate past it with EFBIG the way a
// full disk fails them with ENOSPC, without privileges or a mount). The store
// keeps room allocated ahead of lmdb (fallocate through the native addon), so
// the refusal comes from that top-up, before lmdb writes: lmdb-js 3.5.6's own
// page-write error overruns a heap buffer and glibc aborts the process. The
// write is refused with the reason, and the process goes on serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { Lines, reapAfter, SERVER } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ROOT } from '../helpers/markdown.ts';
import { ask } from '../helpers/dns-client.ts';
import { loadUdpBatch } from '../../native/udp-batch.ts';

const native = loadUdpBatch();
/** The store keeps room ahead of lmdb with the native addon's fallocate (Linux); without it lmdb meets the full disk itself. */
const nativeSkip = native.addon?.reserveFile === undefined ? `needs the native addon's reserveFile: ${native.reason}` : false;

const CONFIG = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu] }
api: { enabled: true, address: "127.0.0.1:0" }
overwatch: { data_dir: ./state }
logging: { level: info }
`;

/**
 * The file-size limit of the child, in /bin/sh's ulimit -f blocks (512
 * bytes): 384 KiB, room for the empty state database and the store's first
 * 256 KiB of room ahead (src/state/store.ts ROOM_BYTES), not for 100
 * mappings of 1 KiB each and the room after them.
 */
const FSIZE_BLOCKS = 768;

/** Runs `script` (ES module text) in a Node child whose files may not grow past FSIZE_BLOCKS. */
async function runLimited(script: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child = spawn('/bin/sh', ['-c', `ulimit -f ${FSIZE_BLOCKS} && exec "$0" "$@"`, process.execPath, '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  return { code, signal, stdout, stderr };
}

test('LmdbStore refuses a write the file system has no room for, with the reason, and the process goes on reading', { skip: nativeSkip }, async (t) => {
  const dir = await tempDir(t, 'opengslb-full-store-');
  const store = new URL('../../src/state/store.ts', import.meta.url).href;
  const r = await runLimited(`
    import { LmdbStore } from ${JSON.stringify(store)};
    process.on('unhandledRejection', (reason) => { console.log('UNHANDLED ' + (reason && reason.message)); process.exitCode = 3; });
    const s = LmdbStore.open(${JSON.stringify(join(dir, 'state'))});
    let written = 0;
    try {
      for (; written < 1000; written++) {
        await s.putGeoMapping({ cidr: '10.' + written + '.0.0/16', region: 'eu', comment: 'x'.repeat(1024), source: 't', createdAtMs: 1 });
      }
    } catch (err) {
      console.log('REFUSED ' + err.code + ' ' + err.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    console.log('READ ' + (s.loadGeoMappings().length === written));
    try {
      await s.putLastUp(new Map([['eu|192.0.2.1|80', 1]]));
      console.log('SMALL WRITE ' + s.loadLastUp().size);
    } catch (err) {
      console.log('SMALL WRITE REFUSED ' + err.code);
    }
    await s.close();
  `);
  assert.equal(r.signal, null, r.stderr);
  assert.doesNotMatch(r.stdout, /UNHANDLED/, r.stdout);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  // Refused by the top-up, before lmdb wrote: the reason is the file system's.
  assert.match(r.stdout, /^REFUSED OPENGSLB_ERR_STATE_WRITE could not write the geo mapping of 10\.\d+\.0\.0\/16 to \S+state\.mdb: no room for the file to grow by \d+ bytes: fallocate EFBIG: File too large/m);
  assert.ok(Number(/^REFUSED .*10\.(\d+)\.0\.0/m.exec(r.stdout)![1]) > 10, r.stdout);
  assert.match(r.stdout, /^READ true$/m);
  // Still no room: refused the same way (and answered), not a crash.
  assert.match(r.stdout, /^SMALL WRITE (1|REFUSED OPENGSLB_ERR_STATE_WRITE)$/m);
});

test('a state write the file system has no room for is answered 500 with the reason, and the overwatch keeps serving and stops cleanly', { skip: nativeSkip }, async (t) => {
  const dir = await tempDir(t, 'opengslb-full-disk-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, CONFIG, { mode: 0o600 });
  const child = spawn('/bin/sh', ['-c', `ulimit -f ${FSIZE_BLOCKS} && exec "$0" "$@"`, process.execPath, ...SERVER_NODE_FLAGS, SERVER, '--config', file], {
    cwd: ROOT,
    env: { ...process.env, ...SERVER_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = reapAfter(t, child);
  const out = new Lines(child.stdout!);
  const err = new Lines(child.stderr!);
  const api = /"address":"(127\.0\.0\.1:\d+)"/.exec(await out.waitFor(/API listening/))![1];
  const port = Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(await out.waitFor(/OpenGSLB running/))![1]);

  // Ten PUTs at a time: the overwatch stores geo writes one after another
  // anyway, and each PUT is answered only once the snapshot with it is served,
  // after the 100 ms republish debounce (src/overwatch/overwatch.ts); sent one
  // by one, the ~55 writes that fill the room took 6 s, ten at a time share one
  // debounce. The first refused in the order sent is the one looked at.
  const put = async (i: number): Promise<{ status: number; body: { error?: string; code?: number } }> => {
    const res = await fetch(`http://${api}/api/v1/geo/mappings`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cidr: `10.${i}.0.0/16`, region: 'eu', comment: 'x'.repeat(1024), source: 'full-disk-test' }),
    });
    return { status: res.status, body: (await res.json()) as { error?: string; code?: number } };
  };
  let refused: { status: number; body: { error?: string; code?: number } } | null = null;
  for (let first = 0; first < 100 && refused === null; first += 10) {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, k) => put(first + k)));
    refused = answers.find((a) => a.status !== 200) ?? null;
  }
  assert.ok(refused !== null, `every write fitted in ${FSIZE_BLOCKS} blocks`);
  assert.equal(refused.status, 500, JSON.stringify(refused.body));
  assert.match(refused.body.error ?? '', /^could not write the geo mapping of 10\.\d+\.0\.0\/16 to \S+state\.mdb: no room for the file to grow by \d+ bytes: fallocate EFBIG: File too large/);

  // Still alive: give an unhandled rejection its turn, then ask DNS and the API.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(child.exitCode, null, `the overwatch exited:\n${err.text}\n${out.text}`);
  assert.equal((await ask(port, 'app.example.test', 'A')).rcode, 'NOERROR');
  assert.equal((await fetch(`http://${api}/api/v1/ready`, { headers: { connection: 'close' } })).status, 200);
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
});
