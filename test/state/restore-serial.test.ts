// The SOA serial across a backup and restore of the state directory, with a
// real overwatch process, real tar archives and real SOA queries: a backup
// taken before two changes of a zone gives, once restored, a serial lower than
// the one served before (the store holds the backup's serial, and the restored
// overwatch cannot tell how many changes it missed), and the steps of
// docs/runbooks/backup-restore.md "The SOA serial after a restore" bring it
// back above: the zone's soa.serial set to the noted serial + 1, reloaded,
// taken out again and reloaded, keeps that serial; the next change gives one
// more.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startOpengslb, type RunningServer } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';
import { ROOT } from '../helpers/markdown.ts';

const NO_TAR = spawnSync('tar', ['--version']).status === 0 ? false : 'tar is not installed: the state directory cannot be backed up and restored as the runbook does';

async function serialOf(port: number): Promise<number> {
  const r = await ask(port, 'example.test', 'SOA');
  const serial = (r.answers?.[0] as { data?: { serial?: number } } | undefined)?.data?.serial;
  assert.ok(typeof serial === 'number', `no SOA serial in the answer: ${JSON.stringify(r.answers)}`);
  return serial;
}

test('a restored backup older than two changes serves a lower SOA serial; the runbook\'s steps bring it back above the one served', { skip: NO_TAR }, async (t: TestContext) => {
  const page = await readFile(join(ROOT, 'docs/runbooks/backup-restore.md'), 'utf8');
  assert.match(page, /\n## The SOA serial after a restore\n/, 'docs/runbooks/backup-restore.md lost its section on the serial after a restore');

  const dir = await tempDir(t, 'opengslb-restore-serial-');
  const data = join(dir, 'opengslb');
  const config = join(dir, 'config.yaml');
  /** The config with `servers` in the region and, when given, the zone's explicit serial. */
  const write = (servers: string, serial?: number) => writeFile(config, [
    `dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [{ name: example.test${serial === undefined ? '' : `, soa: { serial: ${serial} }`} }], nameservers: [{ name: ns1.example.test, addresses: [127.0.0.1] }] }`,
    `regions: [{ name: us-east, servers: [${servers}], health_check: { type: none } }]`,
    'domains: [{ name: app.example.test, regions: [us-east] }]',
    `overwatch: { data_dir: ${data} }`,
    'logging: { level: info, format: text }',
  ].join('\n') + '\n', { mode: 0o600 });

  let server: RunningServer | null = null;
  const start = async () => {
    server = await startOpengslb(t, config);
  };
  const stop = async () => {
    const s = server as RunningServer | null;
    assert.ok(s !== null);
    s.child.kill('SIGTERM');
    assert.equal((await s.exited).code, 0, s.err.text);
    server = null;
  };
  const reload = async () => {
    const s = server as RunningServer | null;
    assert.ok(s !== null);
    const from = s.out.lines.length;
    s.child.kill('SIGHUP');
    await s.out.waitFor(/reload succeeded/, from);
  };
  const port = () => (server as RunningServer | null)?.port ?? assert.fail('not running');
  const sh = (line: string) => {
    const r = spawnSync('bash', ['-c', line], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${line}\n${r.stderr}`);
  };

  await write('{ address: 127.0.0.20 }');
  await start();
  const backedUp = await serialOf(port());
  await stop();
  sh(`umask 077 && tar -C ${dir} -czf ${dir}/state.tgz opengslb`);
  await start();
  await write('{ address: 127.0.0.20 }, { address: 127.0.0.21 }');
  await reload();
  await write('{ address: 127.0.0.20 }, { address: 127.0.0.21 }, { address: 127.0.0.22 }');
  await reload();
  const served = await serialOf(port());
  assert.equal(served, backedUp + 2, 'two changes give two more');

  // Step 1 of the runbook: the serial was noted (served). The restore, as the runbook's Restore block does it.
  await stop();
  sh(`mv ${data} ${data}.broken && tar -C ${dir} -xzf ${dir}/state.tgz`);
  await start();
  const restored = await serialOf(port());
  assert.equal(restored, backedUp + 1, 'the restored store gives the backup\'s serial + 1 for the changed content');
  assert.ok(restored < served, `the restored overwatch serves ${restored}, below the ${served} it served before: what the runbook section corrects`);

  // Step 2: the zone's serial set to the noted one + 1, reloaded.
  const servers = '{ address: 127.0.0.20 }, { address: 127.0.0.21 }, { address: 127.0.0.22 }';
  await write(servers, served + 1);
  await reload();
  assert.equal(await serialOf(port()), served + 1);
  // Step 3: taken out again and reloaded: the serial stays, across a restart too, and the next change gives one more.
  await write(servers);
  await reload();
  assert.equal(await serialOf(port()), served + 1, 'taking soa.serial out keeps the serial it set');
  await stop();
  await start();
  assert.equal(await serialOf(port()), served + 1, 'and a restart keeps it');
  await write(`${servers}, { address: 127.0.0.23 }`);
  await reload();
  assert.equal(await serialOf(port()), served + 2, 'the next change gives one more');
  await stop();
});

