// dns.udp_io: which path the workers answer UDP on, and the start line that
// says so. `dgram` forces node:dgram; `auto` takes the batched native path
// where the addon loads; a package whose binary is missing or does not load
// still serves (through node:dgram) and says why; a reload cannot change it.

import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadUdpBatch } from '../../native/udp-batch.ts';
import { buildDist } from '../../scripts/build-dist.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { ask } from '../helpers/dns-client.ts';
import { ROOT } from '../helpers/markdown.ts';
import { startServer } from '../helpers/server.ts';
import { Lines, reapAfter } from '../helpers/child.ts';
import { spawn } from 'node:child_process';

const yaml = (udpIo: string | null): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]${udpIo === null ? '' : `\n  udp_io: ${udpIo}`}
regions:
  - name: r1
    health_check: { type: none }
    servers: [{ address: 192.0.2.1 }]
domains:
  - { name: app.example.test, regions: [r1] }
logging: { level: info }
`;

const loaded = loadUdpBatch();

/** The fields of the "DNS listening" line. */
function listeningLine(logs: readonly string[]): { udpIo: string[]; udpIoReason: string } {
  const line = logs.find((l) => l.includes('"msg":"DNS listening on UDP and TCP"'));
  assert.ok(line, `a DNS listening line in:\n${logs.join('\n')}`);
  return JSON.parse(line) as { udpIo: string[]; udpIoReason: string };
}

test('udp_io: dgram forces node:dgram on every worker, and the start line says so and why', async (t) => {
  const { overwatch, port, logs } = await startServer(t, yaml('dgram'));
  const line = listeningLine(logs);
  assert.deepEqual(line.udpIo, ['dgram', 'dgram']);
  assert.equal(line.udpIoReason, 'dns.udp_io is dgram');
  assert.deepEqual(
    overwatch.pool.udpIo.map((w) => w.path),
    ['dgram', 'dgram'],
  );
  assert.equal((await ask(port, 'app.example.test', 'A')).rcode, 'NOERROR');
});

test('the default (auto) answers in batches where the addon loads, else through node:dgram, and the start line names the addon or the reason', async (t) => {
  const { port, logs } = await startServer(t, yaml(null));
  const line = listeningLine(logs);
  if (loaded.addon !== null) {
    assert.deepEqual(line.udpIo, ['batched', 'batched']);
    assert.match(line.udpIoReason, /^native addon native\/(build\/Release|prebuilds\/[\w-]+)\/opengslb_udp\.node, up to 64 datagrams per recvmmsg\/sendmmsg$/);
  } else {
    assert.deepEqual(line.udpIo, ['dgram', 'dgram']);
    assert.equal(line.udpIoReason, loaded.reason);
  }
  assert.equal((await ask(port, 'app.example.test', 'A')).rcode, 'NOERROR');
});

test('a reload that changes udp_io is refused as needing a restart, and the workers keep their path', async (t) => {
  const { overwatch } = await startServer(t, yaml('dgram'));
  const result = await overwatch.reload(parseConfigText(yaml('auto'), 'next.yaml'));
  assert.equal(result.ok, false);
  assert.equal(result.message, 'dns.udp_io changed; the socket settings are fixed when the workers start, so this needs a restart');
  assert.deepEqual(
    overwatch.pool.udpIo.map((w) => w.path),
    ['dgram', 'dgram'],
  );
});

/**
 * Lays out the built package in a temp dir as an install has it (dist/, the
 * entry points, native/ with only what `files` ships), with `prebuilt` as the
 * binary (null: none), and resolves with its DNS listening line.
 */
async function runPackage(t: TestContext, prebuilt: string | null): Promise<{ udpIo: string[]; udpIoReason: string; port: number }> {
  const app = await mkdtemp(join(tmpdir(), 'opengslb-udp-io-'));
  t.after(() => rm(app, { recursive: true, force: true }));
  for (const f of ['package.json', 'src/cli/opengslb.js', 'src/cli/node-guard.js', 'src/cli/runtime-flags.js', 'native/binding.gyp', 'native/udp_batch.c', 'native/install.js']) {
    cpSync(join(ROOT, f), join(app, f), { recursive: true });
  }
  buildDist(join(app, 'dist'));
  await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
  if (prebuilt !== null) {
    const dir = join(app, 'native', 'prebuilds', `${process.platform}-${process.arch}-glibc`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'opengslb_udp.node'), prebuilt);
  }
  const config = join(app, 'config.yaml');
  await writeFile(config, `${yaml(null)}overwatch: { data_dir: ./state }\n`, { mode: 0o600 });
  const child = spawn(process.execPath, [join(app, 'src/cli/opengslb.js'), '--config', config], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
  reapAfter(t, child);
  const out = new Lines(child.stdout);
  const err = new Lines(child.stderr);
  const line = await out.waitFor(/DNS listening on UDP and TCP/, 0, 20_000).catch((e: Error) => assert.fail(`${e.message}\nstderr:\n${err.text}`));
  const parsed = JSON.parse(line) as { udpIo: string[]; udpIoReason: string; address: string };
  return { ...parsed, port: Number(parsed.address.split(':').at(-1)) };
}

test('an installed package without its binary serves through node:dgram and says where it looked', { skip: process.platform !== 'linux' ? 'the addon is Linux-only' : false }, async (t) => {
  const { udpIo, udpIoReason, port } = await runPackage(t, null);
  assert.deepEqual(udpIo, ['dgram', 'dgram']);
  assert.match(udpIoReason, /^no build of the native addon for linux-\w+ \(looked for native\/build\/Release\/opengslb_udp\.node and native\/prebuilds\/linux-\w+-glibc\/opengslb_udp\.node; `npm run build:native` builds it where a C compiler is installed\)$/);
  assert.equal((await ask(port, 'app.example.test', 'A')).rcode, 'NOERROR');
});

test('an installed package whose binary does not load serves through node:dgram and says why', { skip: process.platform !== 'linux' ? 'the addon is Linux-only' : false }, async (t) => {
  const { udpIo, udpIoReason, port } = await runPackage(t, 'this is not a shared object');
  assert.deepEqual(udpIo, ['dgram', 'dgram']);
  assert.match(udpIoReason, /^native\/prebuilds\/linux-\w+-glibc\/opengslb_udp\.node does not load: .*(invalid ELF header|too short)/);
  assert.equal((await ask(port, 'app.example.test', 'A')).rcode, 'NOERROR');
});
