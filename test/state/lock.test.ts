// One overwatch per state directory (src/state/lock.ts): two real opengslb
// processes on one data_dir, a pid file left by a SIGKILLed process, and the
// pid file's own rules (dead pid, reused pid, own pid, unreadable file).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { LOCK_FILE, lockStateDir, stateDirHolder } from '../../src/state/lock.ts';
import { LmdbStore } from '../../src/state/store.ts';
import { run, SERVER, startOpengslb } from '../helpers/child.ts';
import { STATEFUL_CONFIG } from '../helpers/config-files.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The pid of a process that has exited (and been reaped): nobody runs under it now, barring reuse within the test. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid as number;
}


test('a second overwatch on a state directory a running one holds refuses to start, naming the directory and the holder\'s pid', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, STATEFUL_CONFIG, { mode: 0o600 });
  const first = await startOpengslb(t, file);
  const state = join(dir, 'state');
  assert.equal(readFileSync(join(state, LOCK_FILE), 'utf8').split('\n')[0], String(first.child.pid));

  const second = await run(SERVER, ['--config', file]);
  assert.equal(second.code, 1);
  const lines = second.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, second.stderr);
  assert.match(lines[0], new RegExp(`^opengslb: state directory ${state} \\(overwatch\\.data_dir\\) is in use: another running instance holds it: pid ${first.child.pid}, since `));
  assert.match(lines[0], /stop that instance first, or give this one its own overwatch\.data_dir$/);
  assert.doesNotMatch(second.stdout, /DNS listening/);

  // The first one never noticed: it still holds the directory, and stops cleanly, giving it back.
  first.child.kill('SIGTERM');
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  assert.equal(existsSync(join(state, LOCK_FILE)), false, 'a clean stop removes the pid file');
});

test('a pid file left by a SIGKILLed overwatch does not block its restart', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, STATEFUL_CONFIG, { mode: 0o600 });
  const first = await startOpengslb(t, file);
  first.child.kill('SIGKILL');
  await first.exited;
  const pidFile = join(dir, 'state', LOCK_FILE);
  assert.equal(readFileSync(pidFile, 'utf8').split('\n')[0], String(first.child.pid), 'SIGKILL leaves the pid file');

  const second = await startOpengslb(t, file);
  assert.equal(readFileSync(pidFile, 'utf8').split('\n')[0], String(second.child.pid));
  second.child.kill('SIGTERM');
  assert.equal((await second.exited).code, 0);
});

test('LmdbStore.open refuses a directory this process holds already, and takes it again after close', async (t) => {
  const dir = join(await tempDir(t), 'data');
  const store = LmdbStore.open(dir);
  assert.throws(() => LmdbStore.open(dir), (err: unknown) => {
    assert.ok(err instanceof OpenGslbError);
    assert.equal(err.code, 'OPENGSLB_ERR_STATE_LOCKED');
    assert.match(err.message, new RegExp(`^state directory ${dir} \\(overwatch\\.data_dir\\) is in use: this process \\(pid ${process.pid}\\) already holds it;`));
    return true;
  });
  assert.equal((await stat(join(dir, LOCK_FILE))).mode & 0o777, 0o600);
  await store.close();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  const again = LmdbStore.open(dir);
  await again.close();
  assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('opengslb.pid')), [], 'no temporary or stale files are left');
});

for (const c of [
  { name: 'a pid that no process has', text: async () => `${await deadPid()}\nstart_ticks=\nboot_id=\nhost=h\nsince=2025-01-01T00:00:00.000Z\n` },
  { name: 'a live pid with another start time (the pid was reused)', text: async () => `1\nstart_ticks=999999999999\nboot_id=\nhost=h\nsince=2025-01-01T00:00:00.000Z\n` },
  { name: 'a live pid from before a reboot', text: async () => `1\nstart_ticks=\nboot_id=00000000-0000-0000-0000-000000000000\nhost=h\nsince=2025-01-01T00:00:00.000Z\n` },
  { name: 'this process\'s own pid, which it does not hold (a container restarted as pid 1)', text: async () => `${process.pid}\n` },
  { name: 'a file that is not a pid file', text: async () => 'garbage\n' },
]) {
  test(`a stale pid file is taken over: ${c.name}`, async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, LOCK_FILE), await c.text());
    const lock = lockStateDir(dir);
    t.after(() => lock.release());
    assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8').split('\n')[0], String(process.pid));
    assert.equal(stateDirHolder(dir), null, 'the holder is this process, which the check does not count');
  });
}

test('a pid file of a live process is respected, and release never removes a file that is not its own', async (t) => {
  const dir = await tempDir(t);
  // The parent of this test process is alive for the whole test; no start time recorded, so only liveness is checked.
  await writeFile(join(dir, LOCK_FILE), `${process.ppid}\nhost=h\n`);
  assert.throws(() => lockStateDir(dir), { name: 'OpenGslbError', message: new RegExp(`pid ${process.ppid}`) });
  assert.equal(stateDirHolder(dir)?.pid, process.ppid);

  await rm(join(dir, LOCK_FILE));
  const lock = lockStateDir(dir);
  // Someone replaced the file (an operator, another instance after a takeover): release leaves it.
  await writeFile(join(dir, LOCK_FILE), `${process.ppid}\n`);
  lock.release();
  assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), `${process.ppid}\n`);
});

test('a state directory that cannot be written is reported as such, not as locked', { skip: process.getuid?.() === 0 ? 'root writes anywhere' : false }, async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o500);
  t.after(() => chmod(dir, 0o700));
  assert.throws(() => lockStateDir(dir), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /EACCES/);
    return true;
  });
});

// Used to be taken as stale: a directory was renamed aside and the lock taken,
// a FIFO hung the start in read(2) for ever, a dangling symlink was retried
// until "another process keeps creating it". None of them is provably stale.
const NOT_A_PID_FILE: { name: string; make: (path: string) => Promise<void>; expect: RegExp }[] = [
  { name: 'a directory', make: (p) => mkdir(p), expect: /is a directory, expected a regular file/ },
  { name: 'a FIFO', make: async (p) => { assert.equal(spawnSync('mkfifo', [p]).status, 0); }, expect: /is a FIFO, expected a regular file/ },
  { name: 'a dangling symbolic link', make: (p) => symlink('/nonexistent/opengslb.pid', p), expect: /is a symbolic link \(to \/nonexistent\/opengslb\.pid\), expected a regular file/ },
];
for (const c of NOT_A_PID_FILE) {
  test(`a pid file that is ${c.name} is refused with the path and what was expected, and left as it was`, { skip: process.platform === 'win32' ? 'POSIX file types' : false }, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, LOCK_FILE);
    await c.make(path);
    assert.throws(() => lockStateDir(dir), (err: unknown) => {
      assert.ok(err instanceof OpenGslbError);
      assert.equal(err.code, 'OPENGSLB_ERR_STATE_OPEN');
      assert.ok(err.message.includes(path), err.message);
      assert.match(err.message, c.expect);
      assert.match(err.message, /overwatch\.data_dir/);
      return true;
    });
    assert.deepEqual((await readdir(dir)).sort(), [LOCK_FILE], 'nothing renamed aside, nothing created');
    assert.throws(() => stateDirHolder(dir), { code: 'OPENGSLB_ERR_STATE_OPEN' });
  });
}

test('a pid file cut short (empty, as after a power loss) is taken as stale: only a crash leaves one, every instance writes it whole before linking it', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, LOCK_FILE), '');
  const lock = lockStateDir(dir);
  t.after(() => lock.release());
  assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8').split('\n')[0], String(process.pid));
});
