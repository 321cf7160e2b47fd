// Cold path, main thread. The one place that decides whether a config file's
// permissions are safe to load: the loader asks unsafeModeProblem about every
// file it reads (the main file and each include), before and after it knows
// whether the file holds a secret.

import { stat } from 'node:fs/promises';
import { ConfigError } from './problems.ts';
import type { ConfigProblem } from './problems.ts';

/** What the caller knows about the file's content. */
export interface PermissionCheckOptions {
  /** True when the file holds a secret (keys, tokens): then world-readable is refused too. */
  readonly holdsSecret: boolean;
}

const WORLD_WRITABLE = 0o002;
const WORLD_READABLE = 0o004;

/**
 * Refuses a config file that any local user could change (world-writable) or,
 * when it holds a secret, read (world-readable). Follows symlinks, like the
 * read that comes after it. Skipped on Windows, whose ACLs the mode bits do not
 * describe. Throws ConfigError with OPENGSLB_ERR_CONFIG_PERMISSIONS naming the
 * file and the fix, or OPENGSLB_ERR_CONFIG_READ if the file cannot be stat'ed
 * or is not a regular file.
 */
export async function checkConfigFilePermissions(path: string, opts: PermissionCheckOptions): Promise<void> {
  let mode: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) {
      throw new ConfigError('OPENGSLB_ERR_CONFIG_READ', [wholeFile(path, 'is not a regular file, expected a YAML config file')]);
    }
    mode = info.mode;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw readError(path, err);
  }
  const problem = unsafeModeProblem(path, mode, opts.holdsSecret ? { secret: null } : {});
  if (problem !== null) throw new ConfigError('OPENGSLB_ERR_CONFIG_PERMISSIONS', [problem]);
}

/** Where a secret was found in a file, for the message; null when the caller only knows that there is one. */
export interface SecretLocation {
  readonly path: string;
  readonly line: number;
}

/**
 * Decides whether a config file with permission bits `mode` is safe: returns
 * the whole-file problem naming `file` and the chmod to run, or null. Refuses a
 * world-writable file always, and a world-readable one when `secret` is given
 * (the file writes the value of a key marked secret). Always null on Windows,
 * whose ACLs the mode bits do not describe.
 */
export function unsafeModeProblem(file: string, mode: number, opts: { readonly secret?: SecretLocation | null }): ConfigProblem | null {
  if (process.platform === 'win32') return null;
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  if ((mode & WORLD_WRITABLE) !== 0) {
    return wholeFile(file, `is world-writable (mode ${octal}), so any local user could change what this server answers; run "chmod o-w ${file}" (or set mode 640 or 600)`);
  }
  if (opts.secret !== undefined && (mode & WORLD_READABLE) !== 0) {
    const what = opts.secret === null ? '' : `: ${opts.secret.path} at line ${opts.secret.line}`;
    return wholeFile(
      file,
      `holds a secret and is world-readable (mode ${octal})${what}; run "chmod o-rw ${file}" (or set mode 640 or 600), or take the value from the environment with \${VAR}`,
    );
  }
  return null;
}

/** Creates the READ error for a file system failure on `path`, keeping the cause. */
export function readError(path: string, err: unknown): ConfigError {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  const why = code === 'ENOENT'
    ? 'does not exist'
    : code === 'EACCES' || code === 'EPERM'
      ? 'cannot be read by this user (permission denied)'
      : code === 'EISDIR'
        ? 'is a directory'
        : `cannot be read (${err instanceof Error ? err.message : String(err)})`;
  return new ConfigError('OPENGSLB_ERR_CONFIG_READ', [wholeFile(path, `${why}, expected a readable YAML config file`)], { cause: err });
}

/** Creates a problem about a whole file (line and column 0). */
export function wholeFile(file: string, message: string): ConfigProblem {
  return { file, line: 0, col: 0, path: '', message };
}
