// Main thread, cold path (start and stop only). One overwatch per state
// directory: a pid file, `opengslb.pid`, created atomically (link(2) of a
// fully written temporary file, which fails if the name exists) and checked
// for liveness when another instance finds it. lmdb's own lock file does not
// serve here: it lets any number of processes share one environment, which is
// what two overwatches writing the same overrides must not do.
//
//   acquire ─▶ link(tmp, opengslb.pid) ──ok──▶ held
//                     │ EEXIST
//                     ▼
//              read holder ── alive (same pid, same start time, same boot) ──▶ OPENGSLB_ERR_STATE_LOCKED
//                     │   └── not a readable regular file (directory, FIFO, symlink, EACCES) ──▶ OPENGSLB_ERR_STATE_OPEN
//                     │ dead (killed, crashed, rebooted, pid reused), or cut short by a crash
//                     ▼
//              rename it aside (atomic), check it was the file judged, retry
//
// A process killed with SIGKILL leaves its pid file behind; the next start
// finds that pid dead (or reused by another process, told apart by its start
// time) and takes the directory over, so a stale file never blocks a restart.
// A pid that runs as another user (EPERM) while the pid file is this user's
// is reused too: the holder ran as the file's owner and could be signalled.
// That also holds where other users' /proc entries are hidden (the shipped
// unit's ProtectProc=invisible) and the start time cannot be read.

import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readFileSync, readlinkSync, readSync, renameSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { OpenGslbError } from '../lib/errors.ts';

/** The pid file's name inside the state directory. */
export const LOCK_FILE = 'opengslb.pid';

/** Who holds a state directory, as its pid file says. */
export interface LockHolder {
  readonly pid: number;
  /** The process's start time in clock ticks since boot (Linux /proc/PID/stat field 22), or null where unknown. */
  readonly startTicks: number | null;
  /** The kernel's boot id (Linux), or null: a pid file from before a reboot is stale whatever its pid. */
  readonly bootId: string | null;
  readonly host: string;
  /** When it took the directory, epoch ms. */
  readonly sinceMs: number;
  /** The uid owning the pid file (the user the holder ran as), or null where unknown. */
  readonly fileUid: number | null;
}

/** A held state directory; release() gives it up (idempotent). */
export interface DirLock {
  readonly path: string;
  release(): void;
}

/** Directories this process holds, so a second open in the same process is refused too, and its own stale file told apart. */
const heldHere = new Set<string>();

/** How often a stale file may be set aside before giving up (another process keeps racing for the directory). */
const MAX_ATTEMPTS = 5;

/**
 * Takes the state directory `dir` (which must exist) for this process.
 * Throws OpenGslbError(OPENGSLB_ERR_STATE_LOCKED) naming the directory and
 * the holder's pid when a running process holds it, and
 * OPENGSLB_ERR_STATE_OPEN when the pid file cannot be written, or when what
 * is at its path is not a readable regular file (a directory, a FIFO, a
 * symbolic link, EACCES): left as it is, since nothing proves it stale.
 */
export function lockStateDir(dir: string): DirLock {
  const path = join(dir, LOCK_FILE);
  if (heldHere.has(path)) throw lockedError(dir, path, selfHolder(), true);
  const me = selfHolder();
  const text = formatHolder(me);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (tryCreate(path, text)) return held(path);
    const found = readHolder(path);
    if (found === 'absent') continue; // released between our link and our read
    if (typeof found === 'object' && 'problem' in found) throw notPidFileError(dir, path, found);
    if (found !== 'unreadable' && isAlive(found)) throw lockedError(dir, path, found, false);
    // Stale (or a regular file cut short: link(2) of a fully written file
    // makes that impossible for a live instance's, so only a crash, say a
    // power loss before the data reached the disk, leaves one): set it aside
    // atomically, then make sure what was set aside is the file judged, not
    // a live one that replaced it.
    const aside = `${path}.stale-${process.pid}`;
    try {
      renameSync(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw openError(dir, path, err);
    }
    const moved = readHolder(aside);
    if (typeof moved === 'object' && 'problem' in moved) {
      // Replaced by something that is not a pid file between our read and our rename: put it back, untouched.
      try {
        renameSync(aside, path);
      } catch {
        // Something took its place meanwhile; the aside name says what it was.
      }
      throw notPidFileError(dir, path, moved);
    }
    if (moved !== 'absent' && moved !== 'unreadable' && isAlive(moved)) {
      // Another instance took the directory between our read and our rename: put its file back.
      try {
        linkSync(aside, path);
      } catch {
        // A third instance is already in; it holds the directory now.
      }
      unlinkQuietly(aside);
      throw lockedError(dir, path, moved, false);
    }
    unlinkQuietly(aside);
  }
  throw new OpenGslbError('OPENGSLB_ERR_STATE_LOCKED', `${dir} (overwatch.data_dir): could not take ${path} after ${MAX_ATTEMPTS} attempts; another process keeps creating it`);
}

/**
 * Reads who holds `dir` now, or null when nobody does (no pid file, or a
 * stale one). Throws OPENGSLB_ERR_STATE_OPEN when the pid file is not a
 * readable regular file (nobody can tell whether it is stale).
 */
export function stateDirHolder(dir: string): LockHolder | null {
  const path = join(dir, LOCK_FILE);
  const found = readHolder(path);
  if (typeof found === 'object' && 'problem' in found) throw notPidFileError(dir, path, found);
  return found === 'absent' || found === 'unreadable' || !isAlive(found) ? null : found;
}

function held(path: string): DirLock {
  heldHere.add(path);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    heldHere.delete(path);
    process.off('exit', release);
    // Remove it only while it is still ours: never someone else's after a takeover.
    const found = readHolder(path);
    if (typeof found === 'object' && 'pid' in found && found.pid === process.pid) unlinkQuietly(path);
  };
  // A process that exits without closing its store (process.exit on a fatal error) still gives the directory back.
  process.on('exit', release);
  return { path, release };
}

/** Creates `path` holding `text`, atomically and only if absent: link(2) of a fully written temporary file. */
function tryCreate(path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
  } catch (err) {
    // A full disk: no temporary file is left behind.
    closeSync(fd);
    unlinkQuietly(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkQuietly(tmp);
  }
}

/** The pid file's text: the pid alone on the first line (for `kill $(head -1 opengslb.pid)`), then key=value lines. */
function formatHolder(h: LockHolder): string {
  return `${h.pid}\nstart_ticks=${h.startTicks ?? ''}\nboot_id=${h.bootId ?? ''}\nhost=${h.host}\nsince=${new Date(h.sinceMs).toISOString()}\n`;
}

/**
 * What is wrong with a pid file that is not a readable regular file:
 * `problem` completes "<path> …"; `advice`, when set, replaces the generic
 * "expected a regular file …; remove it" ending.
 */
interface NotPidFile {
  readonly problem: string;
  readonly advice?: string;
}

/**
 * A pid file this user may not open because another user owns it (a start
 * as root leaves one, mode 600): said as such, with the chown or remove
 * advice the other open errors give; null when it is this user's (or
 * cannot be stat'ed).
 */
function foreignOwner(path: string): NotPidFile | null {
  const me = process.geteuid?.();
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  if (me === undefined || st.uid === me) return null;
  const dir = dirname(path);
  return {
    problem: `belongs to uid ${st.uid}, not to this user (uid ${me}), and is mode ${(st.mode & 0o777).toString(8)}: this user cannot read it, as after a start as another user (sudo)`,
    advice: `if no OpenGSLB runs on ${dir}, give the directory back to this user (chown -R ${me} ${dir}) or remove the file`,
  };
}

/** The longest pid file read: ours are under 200 bytes; a bigger file is not one (and is not read whole). */
const MAX_PID_FILE_BYTES = 4096;

/**
 * Reads a pid file: its holder; 'absent'; 'unreadable' for a regular file
 * whose text names no pid (cut short by a crash: stale); or `{ problem }`
 * for what is not a readable regular file (a directory, a FIFO, a symbolic
 * link, a device; a read error such as EACCES), which nobody can call
 * stale. O_NOFOLLOW and O_NONBLOCK: a symbolic link is not followed, and
 * opening a FIFO does not wait for a writer (readFileSync hung there).
 */
function readHolder(path: string): LockHolder | 'absent' | 'unreadable' | NotPidFile {
  let text: string;
  let fd: number;
  let fileUid: number | null = null;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'absent';
    // ELOOP is O_NOFOLLOW meeting a symbolic link (a dangling one too, which ENOENT-retried until "keeps creating it").
    if (code === 'ELOOP') return { problem: `is a symbolic link${linkTarget(path)}` };
    if (code === 'EACCES' || code === 'EPERM') {
      const foreign = foreignOwner(path);
      if (foreign !== null) return foreign;
    }
    return { problem: `cannot be read (${(err as Error).message})` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { problem: `is ${fileKind(st)}` };
    fileUid = process.platform === 'win32' ? null : st.uid;
    const buf = Buffer.alloc(MAX_PID_FILE_BYTES);
    const n = readSync(fd, buf, 0, buf.length, 0);
    text = buf.toString('utf8', 0, n);
  } catch (err) {
    return { problem: `cannot be read (${(err as Error).message})` };
  } finally {
    closeSync(fd);
  }
  const [first, ...rest] = text.split('\n');
  const pid = Number(first);
  if (!Number.isInteger(pid) || pid <= 0) return 'unreadable';
  const fields = new Map<string, string>();
  for (const line of rest) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const ticks = fields.get('start_ticks');
  const since = Date.parse(fields.get('since') ?? '');
  return {
    pid,
    startTicks: ticks === undefined || ticks === '' ? null : Number(ticks),
    bootId: fields.get('boot_id') || null,
    host: fields.get('host') ?? '',
    sinceMs: Number.isNaN(since) ? 0 : since,
    fileUid,
  };
}

/** Is the holder a process running now: same boot, pid alive, same start time where both are known. */
function isAlive(h: LockHolder): boolean {
  const boot = bootId();
  if (h.bootId !== null && boot !== null && h.bootId !== boot) return false;
  // Our own pid in a file we do not hold: left by an earlier process that had
  // our pid (a container's pid 1 after a restart), so it is stale.
  if (h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
    // EPERM: the pid runs as another user. The holder ran as the pid file's
    // owner; when that is this user, the holder could be signalled by us, so
    // the pid is not the holder's any more (reused). Under ProtectProc=
    // invisible its /proc entry is hidden too, and the start-time check
    // below would count it alive until that unrelated process ends.
    if (h.fileUid !== null && h.fileUid === process.geteuid?.()) return false;
    // Another user's file (a run as root, say): its holder may be that
    // process, and nothing here can tell; the start time decides where
    // readable, and lockedError says what to do.
  }
  const ticks = startTicksOf(h.pid);
  return h.startTicks === null || ticks === null || ticks === h.startTicks;
}

/** Does signalling `pid` fail with EPERM (it runs as another user)? */
function signalDenied(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function selfHolder(): LockHolder {
  return { pid: process.pid, startTicks: startTicksOf(process.pid), bootId: bootId(), host: hostname(), sinceMs: Date.now(), fileUid: process.geteuid?.() ?? null };
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot); null off Linux or when unreadable. */
function startTicksOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function lockedError(dir: string, path: string, h: LockHolder, here: boolean): OpenGslbError {
  const who = here
    ? `this process (pid ${h.pid}) already holds it`
    : `another running instance holds it: pid ${h.pid}${h.host !== '' && h.host !== hostname() ? ` on ${h.host}` : ''}${h.sinceMs > 0 ? `, since ${new Date(h.sinceMs).toISOString()}` : ''} (${path})`;
  const me = process.geteuid?.();
  // Another user's pid file naming another user's process: the only case where a reused pid cannot be told from the holder.
  const foreign = !here && h.fileUid !== null && me !== undefined && h.fileUid !== me && signalDenied(h.pid)
    ? `; ${path} belongs to uid ${h.fileUid}, not to this user (uid ${me}), and pid ${h.pid} is a process this user cannot inspect: if no OpenGSLB runs on this directory, remove the file`
    : '';
  return new OpenGslbError(
    'OPENGSLB_ERR_STATE_LOCKED',
    `state directory ${dir} (overwatch.data_dir) is in use: ${who}${foreign}; stop that instance first, or give this one its own overwatch.data_dir`,
  );
}

/** What kind of file `st` is, with its article, for "… is a directory, expected a regular file". */
function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** " (to TARGET)" for the symbolic link at `path`, or "" when it cannot be read. */
function linkTarget(path: string): string {
  try {
    return ` (to ${readlinkSync(path)})`;
  } catch {
    return '';
  }
}

/** The pid file is not a readable regular file: refused, never taken as stale or moved (an operator's, or a mistake to look at). */
function notPidFileError(dir: string, path: string, found: NotPidFile): OpenGslbError {
  const ending = found.advice ?? `expected a regular file holding the pid of the instance using the directory (or no file); remove it if no instance uses ${dir}`;
  return new OpenGslbError(
    'OPENGSLB_ERR_STATE_OPEN',
    `cannot take the state directory ${dir} (overwatch.data_dir): ${path} ${found.problem}${found.advice === undefined ? ', ' : '; '}${ending}`,
  );
}

function openError(dir: string, path: string, err: unknown): OpenGslbError {
  return new OpenGslbError(
    'OPENGSLB_ERR_STATE_OPEN',
    `cannot take the state directory ${dir} (overwatch.data_dir): ${path}: ${(err as Error).message}; make the directory writable by this user`,
    { cause: err },
  );
}
