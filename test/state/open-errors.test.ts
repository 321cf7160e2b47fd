// LmdbStore.open's advice follows the errno and the path that failed
// (src/state/store.ts openAdvice): state files left by a run as root in a
// directory this user owns, a full file system, a read-only one, a directory
// in place of state.mdb. Each case is made real: throwaway uids (setpriv),
// tmpfs mounts in a mount namespace of the child's own (unshare). Cases that
// need those skip with the reason when they are missing. A state.mdb that is
// not an lmdb file is test/state/damaged-file.test.ts.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbStore } from '../../src/state/store.ts';
import { ROOT } from '../helpers/markdown.ts';

const UID = 62_000 + (process.pid % 1000);

function rootSkip(tools: readonly string[]): string | false {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (throwaway uids, mounts)';
  for (const tool of tools) if (spawnSync(tool, ['--version']).status !== 0) return `needs ${tool} (util-linux), not found`;
  if (spawnSync('getent', ['passwd', String(UID)]).status === 0) return `uid ${UID} belongs to an account here`;
  if (tools.includes('unshare')) {
    const probe = spawnSync('unshare', ['-m', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" && rmdir "$d"']);
    if (probe.status !== 0) return `cannot mount a tmpfs in a mount namespace: ${probe.stderr.toString().trim()}`;
  }
  return false;
}
const asUserSkip = rootSkip(['setpriv']);
const mountSkip = rootSkip(['unshare']);

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-open-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Other users may pass through it to the data_dir inside (mkdtemp makes it 0700).
  await chmod(dir, 0o755);
  return dir;
}

const SCRIPT = `
  import { LmdbStore } from ${JSON.stringify(join(ROOT, 'src/state/store.ts'))};
  try { const s = LmdbStore.open(process.argv[1]); await s.close(); console.log(JSON.stringify({ ok: true })); }
  catch (err) { console.log(JSON.stringify({ ok: false, code: err.code, message: err.message })); }`;

type Outcome = { ok: true } | { ok: false; code: string; message: string };

/** LmdbStore.open(dataDir) in a child: `prefix` (argv) runs it (setpriv, unshare…); "$NODE" and "$SCRIPT" and "$DIR" are set for a shell prefix. */
function openInChild(argv: readonly string[], dataDir: string): Outcome & { stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE: process.execPath, SCRIPT, DIR: dataDir } });
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  return { ...(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Outcome), stderr: r.stderr };
}

function asUser(dataDir: string): Outcome & { stderr: string } {
  return openInChild(['setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', 'sh', '-c', 'exec "$NODE" --input-type=module -e "$SCRIPT" "$DIR"'], dataDir);
}

function refused(o: Outcome): string {
  assert.equal(o.ok, false, 'the open was refused');
  const { code, message } = o as { code: string; message: string };
  assert.equal(code, 'OPENGSLB_ERR_STATE_OPEN', message);
  return message;
}

for (const file of ['state.mdb', 'state.mdb-lock']) {
  test(`a ${file} left by a run as root, in a directory this user owns: the advice names the file and its owner`, { skip: asUserSkip }, async (t) => {
    const dir = join(await tempDir(t), 'state');
    // A start as root (sudo) creates the files; then the directory is this user's, the files root's.
    (await LmdbStore.open(dir).close());
    await chown(dir, UID, UID);
    for (const name of readdirSync(dir)) if (name !== file) await chown(join(dir, name), UID, UID);
    const message = refused(asUser(dir));
    const path = join(dir, file);
    assert.ok(message.includes(path), message);
    assert.match(message, new RegExp(`${path.replaceAll('.', '\\.')} belongs to uid 0, not to this user \\(uid ${UID}\\), as after a start as another user \\(sudo\\): give the directory back to this user \\(chown -R ${UID} ${dir}\\)$`));
    assert.doesNotMatch(message, /create the directory/);
    assert.equal(existsSync(join(dir, 'opengslb.pid')), false, 'the pid file is given back');
  });
}

test('a data_dir whose parent this user cannot write still says to create the directory', { skip: asUserSkip }, async (t) => {
  const dir = join(await tempDir(t), 'state');
  const message = refused(asUser(dir));
  assert.match(message, /EACCES: permission denied, mkdir/);
  assert.match(message, /create the directory and make it writable by this user, or point overwatch\.data_dir at one that is$/);
});

test('a full file system is reported as full, and no temporary pid file is left', { skip: mountSkip }, async (t) => {
  const mnt = await tempDir(t);
  const dir = join(mnt, 'state');
  const got = openInChild(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$0" && mkdir -m 700 "$DIR" && (dd if=/dev/zero of="$0/fill" bs=4k count=64 2>/dev/null; true) && "$NODE" --input-type=module -e "$SCRIPT" "$DIR" && echo "left: $(ls -A "$DIR")" >&2', mnt], dir);
  const message = refused(got);
  assert.equal(got.stderr.trim(), 'left:', 'nothing left in the directory (no opengslb.pid.*.tmp)');
  assert.match(message, /ENOSPC/);
  assert.match(message, new RegExp(`the file system holding ${dir} is full \\(no space or no inodes left\\): free room there, or point overwatch\\.data_dir at another file system$`));
});

test('a read-only file system is reported as such, with the systemd unit\'s ReadWritePaths', { skip: mountSkip }, async (t) => {
  const mnt = await tempDir(t);
  const dir = join(mnt, 'state');
  const got = openInChild(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs tmpfs "$0" && mkdir -m 700 "$DIR" && mount -o remount,ro "$0" && exec "$NODE" --input-type=module -e "$SCRIPT" "$DIR"', mnt], dir);
  const message = refused(got);
  assert.match(message, /EROFS/);
  assert.match(message, new RegExp(`${dir} is on a read-only file system: mount it read-write; under the shipped systemd unit \\(ProtectSystem=strict\\) only /var/lib/opengslb is writable, so leave overwatch\\.data_dir unset or add ${dir} to ReadWritePaths= in a drop-in$`));
});

test('a data_dir missing on a read-only file system (mkdir reports ENOENT there) gets the read-only advice, not "create the directory"', { skip: mountSkip }, async (t) => {
  const mnt = await tempDir(t);
  const dir = join(mnt, 'var', 'state');
  const got = openInChild(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs tmpfs "$0" && mount -o remount,ro "$0" && exec "$NODE" --input-type=module -e "$SCRIPT" "$DIR"', mnt], dir);
  const message = refused(got);
  assert.doesNotMatch(message, /create the directory/);
  assert.match(message, new RegExp(`${dir} is on a read-only file system: mount it read-write; under the shipped systemd unit \\(ProtectSystem=strict\\) only /var/lib/opengslb is writable, so leave overwatch\\.data_dir unset or add ${dir} to ReadWritePaths= in a drop-in$`));
});

test('a directory in the place of state.mdb is named, and the advice is to move it aside', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'state.mdb'));
  assert.throws(() => LmdbStore.open(dir), (err: unknown) => {
    const message = (err as Error).message;
    assert.equal((err as { code?: string }).code, 'OPENGSLB_ERR_STATE_OPEN');
    assert.match(message, new RegExp(`the lmdb files must be regular files \\(or absent, to be created\\): move ${join(dir, 'state.mdb')} aside$`));
    return true;
  });
  assert.equal(existsSync(join(dir, 'opengslb.pid')), false);
});
