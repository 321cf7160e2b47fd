// The pid file's liveness check where the shipped overwatch unit runs it
// (deploy/systemd/opengslb-overwatch.service: its own user, ProtectProc=
// invisible): another user's processes cannot be signalled (EPERM) and their
// /proc entries are hidden. Made real here with throwaway uids (setpriv) and
// a /proc mounted hidepid=invisible in a mount namespace of the child's own
// (unshare): needs root, setpriv and unshare, else skipped with the reason.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE } from '../../src/state/lock.ts';
import { ROOT } from '../helpers/markdown.ts';

/** Throwaway uids no account has (checked below): the overwatch's user and another user. */
const OWATCH_UID = 61_000 + (process.pid % 1000) * 2;
const OTHER_UID = OWATCH_UID + 1;

/** Why these tests cannot run here, or false. */
function skipReason(): string | false {
  if (process.platform !== 'linux') return 'needs Linux (setpriv, hidepid)';
  if (process.getuid?.() !== 0) return 'needs root to run processes as throwaway uids';
  for (const tool of ['setpriv', 'unshare']) {
    if (spawnSync(tool, ['--version']).status !== 0) return `needs ${tool} (util-linux), not found`;
  }
  for (const uid of [OWATCH_UID, OTHER_UID]) {
    if (spawnSync('getent', ['passwd', String(uid)]).status === 0) return `uid ${uid} belongs to an account here`;
  }
  const probe = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t proc -o hidepid=invisible proc /proc']);
  if (probe.status !== 0) return `cannot mount /proc with hidepid=invisible in a mount namespace: ${probe.stderr.toString().trim()}`;
  return false;
}
const skip = skipReason();

async function ownedDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-lock-uid-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chown(dir, OWATCH_UID, OWATCH_UID);
  await chmod(dir, 0o700);
  return dir;
}

/** A process of `uid` that lives until the test ends. */
function sleeper(t: TestContext, uid: number): ChildProcess {
  const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sleep', '600'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  return child;
}

function startTicks(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

const BOOT_ID = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
})();

/** Runs lockStateDir(dir) as the overwatch's uid, with other users' /proc entries hidden; its outcome. */
function lockAsOverwatch(dir: string): { ok: true; pid: number; held: number } | { ok: false; code: string; message: string } {
  const script = `
    import { readFileSync } from 'node:fs';
    import { LOCK_FILE, lockStateDir } from ${JSON.stringify(join(ROOT, 'src/state/lock.ts'))};
    try {
      lockStateDir(process.argv[1]);
      const held = readFileSync(process.argv[1] + '/' + LOCK_FILE, 'utf8').split('\\n')[0];
      console.log(JSON.stringify({ ok: true, pid: process.pid, held: Number(held) }));
    }
    catch (err) { console.log(JSON.stringify({ ok: false, code: err.code, message: err.message })); }`;
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t proc -o hidepid=invisible proc /proc && exec setpriv --reuid="$1" --regid="$1" --clear-groups "$2" --input-type=module -e "$3" "$4"', 'sh', String(OWATCH_UID), process.execPath, script, dir], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

async function pidFile(dir: string, pid: number, ticks: string, ownerUid: number, mode = 0o600): Promise<string> {
  const path = join(dir, LOCK_FILE);
  await writeFile(path, `${pid}\nstart_ticks=${ticks}\nboot_id=${BOOT_ID}\nhost=h\nsince=2026-01-01T00:00:00.000Z\n`);
  await chown(path, ownerUid, ownerUid);
  await chmod(path, mode);
  return path;
}

test('a stale pid file of the overwatch\'s own user whose pid now runs another user\'s process (EPERM, /proc hidden) is taken over', { skip }, async (t) => {
  const dir = await ownedDir(t);
  const other = sleeper(t, OTHER_UID);
  // The holder that wrote the file is gone; its pid was reused by the other user's process, started at another time.
  const path = await pidFile(dir, other.pid!, String(Number(startTicks(other.pid!)) + 1), OWATCH_UID);
  const got = lockAsOverwatch(dir);
  assert.equal(got.ok, true, JSON.stringify(got));
  const { pid, held } = got as { pid: number; held: number };
  assert.equal(held, pid, 'the pid file names the new holder while it runs');
  assert.equal(existsSync(path), false, 'and is removed when it exits');
  assert.deepEqual(readdirSync(dir), [], 'nothing set aside is left');
});

test('a readable pid file written by another user whose pid runs another user\'s process is still respected, with what to do', { skip }, async (t) => {
  const dir = await ownedDir(t);
  const other = sleeper(t, OTHER_UID);
  // Readable: one of ours (0600) written by root cannot be read, which is refused as OPENGSLB_ERR_STATE_OPEN (lock.test.ts).
  const path = await pidFile(dir, other.pid!, String(Number(startTicks(other.pid!)) + 1), 0, 0o644);
  const got = lockAsOverwatch(dir);
  assert.equal(got.ok, false);
  const { code, message } = got as { code: string; message: string };
  assert.equal(code, 'OPENGSLB_ERR_STATE_LOCKED');
  assert.match(message, new RegExp(`pid ${other.pid}`));
  assert.match(message, new RegExp(`${path} belongs to uid 0, not to this user \\(uid ${OWATCH_UID}\\)`));
  assert.match(message, /if no OpenGSLB runs on this directory, remove the file/);
  assert.equal(readFileSync(path, 'utf8').split('\n')[0], String(other.pid), 'left as it was');
});

test('a live instance of the overwatch\'s own user is still respected with other users\' /proc hidden', { skip }, async (t) => {
  const dir = await ownedDir(t);
  const holder = sleeper(t, OWATCH_UID);
  await pidFile(dir, holder.pid!, startTicks(holder.pid!), OWATCH_UID);
  const got = lockAsOverwatch(dir);
  assert.equal(got.ok, false);
  assert.equal((got as { code: string }).code, 'OPENGSLB_ERR_STATE_LOCKED');
  assert.match((got as { message: string }).message, new RegExp(`another running instance holds it: pid ${holder.pid}`));
});

test('a pid file of root\'s, mode 600 (a start as root), that this user cannot read is refused as another user\'s, with the chown or remove advice', { skip }, async (t) => {
  const dir = await ownedDir(t);
  const other = sleeper(t, OTHER_UID);
  const path = await pidFile(dir, other.pid!, startTicks(other.pid!), 0, 0o600);
  const got = lockAsOverwatch(dir);
  assert.equal(got.ok, false);
  const { code, message } = got as { code: string; message: string };
  assert.equal(code, 'OPENGSLB_ERR_STATE_OPEN');
  assert.match(message, new RegExp(`${path.replaceAll('.', '\\.')} belongs to uid 0, not to this user \\(uid ${OWATCH_UID}\\), and is mode 600: this user cannot read it, as after a start as another user \\(sudo\\)`));
  assert.match(message, new RegExp(`if no OpenGSLB runs on ${dir}, give the directory back to this user \\(chown -R ${OWATCH_UID} ${dir}\\) or remove the file$`));
  assert.doesNotMatch(message, /expected a regular file/);
  assert.equal(readFileSync(path, 'utf8').split('\n')[0], String(other.pid), 'left as it was');
});
