// docs/runbooks/backup-restore.md, run as written: the command lines of its
// "Back up" and "Restore" blocks, in order, against a real overwatch whose
// state directory is <tmp>/var/lib/opengslb. Only what this machine has no
// stand-in for is translated: `systemctl stop` is SIGTERM to the server (what
// the unit sends) and waiting for it to exit, `systemctl start` starts it
// again, `sudo` is dropped, /var/lib and /root are directories of the test,
// the dated archive name of the restore is the one the backup wrote, and the
// `chown` to the service user (absent here) is skipped. The archive must be
// mode 600 (it holds the DNSSEC private keys in clear), and the restore must
// bring back what the backup held: an override set before it, the DNSSEC
// key, and not an override set after it.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, run, startOpengslb, type RunningServer } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ROOT } from '../helpers/markdown.ts';

const NO_TAR = spawnSync('tar', ['--version']).status === 0 ? false : 'tar is not installed: the backup and restore lines of docs/runbooks/backup-restore.md were not run';

/** The command lines of the indented sh blocks under `## heading` (up to the next `## `). */
function shLinesUnder(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/runbooks/backup-restore.md has no "## ${heading}" section`);
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end).split('\n');
  const out: string[] = [];
  for (let i = 0; i < section.length; i++) {
    if (!/^\s*```sh\s*$/.test(section[i])) continue;
    for (i++; i < section.length && !/^\s*```\s*$/.test(section[i]); i++) if (section[i].trim() !== '') out.push(section[i].trim());
  }
  return out;
}

test('the backup and restore of docs/runbooks/backup-restore.md, run as written, keep the keys private and bring the state back', { skip: NO_TAR }, async (t: TestContext) => {
  const dir = await tempDir(t, 'opengslb-backup-');
  const varLib = join(dir, 'var/lib');
  const rootHome = join(dir, 'root');
  spawnSync('mkdir', ['-p', join(varLib, 'opengslb'), rootHome]);
  const config = join(dir, 'config.yaml');
  await writeFile(config, [
    'dns: { listen_address: "127.0.0.1:0", zones: [example.test], nameservers: [{ name: ns1.example.test, addresses: [127.0.0.1] }] }',
    'regions: [{ name: us-east, servers: [{ address: 127.0.0.20 }, { address: 127.0.0.21 }], health_check: { type: none } }]',
    'domains: [{ name: app.example.test, regions: [us-east] }]',
    'api: { enabled: true, address: "127.0.0.1:0" }',
    `overwatch: { data_dir: ${join(varLib, 'opengslb')} }`,
    'logging: { level: info, format: text }',
  ].join('\n') + '\n', { mode: 0o600 });

  let server: RunningServer | null = null;
  const env: NodeJS.ProcessEnv = { ...process.env };
  const start = async () => {
    server = await startOpengslb(t, config);
    const line = await server.out.waitFor(/API listening/);
    env.OPENGSLB_API = `http://127.0.0.1:${/address=127\.0\.0\.1:(\d+)/.exec(line)?.[1]}`;
    await server.out.waitFor(/OpenGSLB running/);
  };
  const stop = async () => {
    assert.ok(server !== null, 'the page stops an overwatch that is not running');
    const s: RunningServer = server;
    s.child.kill('SIGTERM');
    const exit = await s.exited;
    assert.equal(exit.code, 0, `the overwatch did not stop cleanly: ${s.err.text}`);
    server = null;
  };
  const cli = async (args: string[]) => {
    const r = await run(CLI, args, { env });
    assert.equal(r.code, 0, `opengslb-cli ${args.join(' ')}\n${r.stderr}`);
    return r.stdout;
  };
  let archive = '';
  /** One line of the page, as the operator runs it. */
  const operator = async (line: string) => {
    const cmd = line.replace(/^sudo /, '');
    if (cmd === 'systemctl stop opengslb-overwatch') return stop();
    if (cmd === 'systemctl start opengslb-overwatch') return start();
    if (/^chown -R opengslb:opengslb /.test(cmd)) return; // no service user on this machine
    if (/^opengslb-cli /.test(cmd)) return void (await cli(cmd.split(' ').slice(1)));
    const shell = cmd
      .replaceAll('/var/lib', varLib)
      .replaceAll('/root/', `${rootHome}/`)
      .replace(/opengslb-state-\d{4}-\d{2}-\d{2}\.tgz/, archive);
    const r = spawnSync('bash', ['-c', shell], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${line}\n(ran: ${shell})\n${r.stderr}`);
  };

  const page = await readFile(join(ROOT, 'docs/runbooks/backup-restore.md'), 'utf8');
  const backup = shLinesUnder(page, 'Back up');
  const restore = shLinesUnder(page, 'Restore');
  assert.ok(backup.some((l) => /tar .*-c/.test(l)) && restore.some((l) => /tar .*-x/.test(l)), `no tar lines found:\n${backup.join('\n')}\n${restore.join('\n')}`);

  await start();
  // Independent of each other: at once.
  const [, keysBefore] = await Promise.all([
    cli(['overrides', 'set', 'app.example.test', '127.0.0.20', '--unhealthy', '--reason', 'before the backup']),
    cli(['dnssec', 'status']),
  ]);
  for (const line of backup) await operator(line);

  const archives = await readdir(rootHome);
  assert.equal(archives.length, 1, archives.join(', '));
  archive = archives[0];
  assert.equal((await stat(join(rootHome, archive))).mode & 0o777, 0o600, `${archive} holds the DNSSEC private keys in clear: it must be mode 600, not readable by others`);

  await cli(['overrides', 'set', 'app.example.test', '127.0.0.21', '--unhealthy', '--reason', 'after the backup']);
  for (const line of restore) await operator(line);

  const [overrides, keysAfter] = await Promise.all([cli(['overrides', 'list']), cli(['dnssec', 'status'])]);
  assert.match(overrides, /before the backup/);
  assert.doesNotMatch(overrides, /after the backup/);
  const tag = (text: string) => /^example\.test\s+(\d+)/m.exec(text)?.[1];
  assert.ok(tag(keysBefore) !== undefined, keysBefore);
  assert.equal(tag(keysAfter), tag(keysBefore), 'the restored overwatch signs with the key of the backup');
  assert.ok((await readdir(varLib)).includes('opengslb.broken'), 'the restore moves the current directory aside');
  assert.equal((await stat(join(varLib, 'opengslb'))).mode & 0o777, 0o700);
  await stop();
});
