// Cold path, main thread. Finds the files an `includes:` entry names: a plain
// path, or a glob with `*`, `?`, `[...]` and `**` path segments.

import { lstat, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, parse, resolve, sep } from 'node:path';

/** Most files one pattern may match; a pattern that matches more is almost certainly a mistake (`/**`). */
export const MAX_GLOB_MATCHES = 1000;
/** Deepest directory level below a `**` that is searched. */
const MAX_GLOBSTAR_DEPTH = 32;

/** The files a pattern matched, sorted; or what is wrong with the pattern. */
export type GlobResult = { readonly files: readonly string[]; readonly isGlob: boolean } | { readonly error: string };

/** Reports whether `pattern` has a glob character that is not escaped. */
export function hasGlobChars(pattern: string): boolean {
  return /(^|[^\\])[*?[]/.test(pattern);
}

/**
 * Resolves `pattern` against `baseDir`. A pattern without glob characters
 * names one file, returned whether or not it exists (reading it reports a
 * missing file). Otherwise each path segment is matched against directory
 * entries: `*` any run of characters but "/", `?` one character, `[abc]`,
 * `[a-z]` and `[!abc]` one of a set, `\` escapes the next character, and a
 * segment that is exactly `**` matches zero or more directories. A leading
 * "." is matched only by a segment that starts with "."; symlinked
 * directories are not descended by `**` (no loops). Only regular files (or
 * symlinks to them, or symlinks that lead nowhere, which reading reports) match. Returns the matches sorted by code unit, so the
 * order never depends on the file system. Never throws.
 */
export async function matchGlob(pattern: string, baseDir: string): Promise<GlobResult> {
  const full = isAbsolute(pattern) ? pattern : join(baseDir, pattern);
  if (!hasGlobChars(pattern)) return { files: [resolve(full.replace(/\\(.)/g, '$1'))], isGlob: false };
  const { root } = parse(full);
  const segments = full.slice(root.length).split(sep).filter((s) => s !== '' && s !== '.');
  const matchers: (RegExp | '**' | string)[] = [];
  for (const segment of segments) {
    if (segment === '**') matchers.push('**');
    else if (!hasGlobChars(segment)) matchers.push(segment.replace(/\\(.)/g, '$1'));
    else {
      const re = segmentRegExp(segment);
      if (re === null) return { error: `${JSON.stringify(pattern)} has a "[" without its "]", expected a glob such as "conf.d/*.yaml"` };
      matchers.push(re);
    }
  }
  const found = new Set<string>();
  const tooMany = await walk(root, matchers, 0, found, 0);
  if (tooMany) return { error: `${JSON.stringify(pattern)} matches more than ${MAX_GLOB_MATCHES} files, expected a narrower pattern` };
  return { files: [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), isGlob: true };
}

/** Turns one glob segment into an anchored RegExp; null for an unclosed "[". */
function segmentRegExp(segment: string): RegExp | null {
  let src = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '\\' && i + 1 < segment.length) {
      src += escapeRe(segment[++i]);
    } else if (c === '*') {
      src += '[^/]*';
    } else if (c === '?') {
      src += '[^/]';
    } else if (c === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close < 0) return null;
      let body = segment.slice(i + 1, close);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      src += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = close;
    } else {
      src += escapeRe(c);
    }
  }
  return new RegExp(`^${src}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Reads a directory's entries, or none when it cannot be read (a missing directory simply matches nothing). */
async function entries(dir: string): Promise<{ name: string; isDir: boolean; isLink: boolean }[]> {
  try {
    const list = await readdir(dir, { withFileTypes: true });
    return list.map((d) => ({ name: d.name, isDir: d.isDirectory(), isLink: d.isSymbolicLink() }));
  } catch {
    return [];
  }
}

/**
 * Whether `path` is a regular file, following symlinks; or a symlink that
 * leads to nothing (its target missing, or a loop). That one matches too, so
 * that reading it reports the broken link: skipped, a fragment linked into
 * conf.d whose target moved would drop out of the next reload unnoticed.
 */
async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    try {
      return (await lstat(path)).isSymbolicLink();
    } catch {
      return false;
    }
  }
}

/** Whether `path` is a directory, following symlinks (an explicit segment may name a symlinked directory). */
async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Matches `matchers[i..]` below `dir`, adding files to `found`; returns true once there are too many. */
async function walk(dir: string, matchers: readonly (RegExp | '**' | string)[], i: number, found: Set<string>, globstarDepth: number): Promise<boolean> {
  if (found.size > MAX_GLOB_MATCHES) return true;
  const m = matchers[i];
  const last = i === matchers.length - 1;
  if (m === undefined) return false;
  if (m === '**') {
    // Zero directories: the rest of the pattern right here.
    if (last) return false; // a trailing "**" names directories, never files
    if (await walk(dir, matchers, i + 1, found, globstarDepth)) return true;
    if (globstarDepth >= MAX_GLOBSTAR_DEPTH) return false;
    for (const e of await entries(dir)) {
      if (!e.isDir || e.isLink || e.name.startsWith('.')) continue;
      if (await walk(join(dir, e.name), matchers, i, found, globstarDepth + 1)) return true;
    }
    return false;
  }
  if (typeof m === 'string') {
    const path = join(dir, m);
    if (last) {
      if (await isFile(path)) found.add(path);
      return found.size > MAX_GLOB_MATCHES;
    }
    return (await isDirectory(path)) ? walk(path, matchers, i + 1, found, globstarDepth) : false;
  }
  const names = (await entries(dir)).filter((e) => m.test(e.name) && (!e.name.startsWith('.') || m.source.startsWith('^\\.')));
  for (const e of names) {
    const path = join(dir, e.name);
    if (last) {
      if (await isFile(path)) found.add(path);
      if (found.size > MAX_GLOB_MATCHES) return true;
    } else if (await isDirectory(path)) {
      if (await walk(path, matchers, i + 1, found, globstarDepth)) return true;
    }
  }
  return false;
}
