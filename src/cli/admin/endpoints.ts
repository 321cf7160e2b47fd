// Cold path. Which admin APIs `opengslb-cli` talks to: one or several
// overwatches, from --api (repeated), $OPENGSLB_API (comma-separated) or a
// cli.yaml that lists them, and the token and timeout that go with them.
// First found wins: flags, then the environment, then the file, then the
// default http://127.0.0.1:8080.
//
// cli.yaml is looked up at --cli-config FILE, else $OPENGSLB_CLI_CONFIG, else
// $XDG_CONFIG_HOME/opengslb/cli.yaml (~/.config/opengslb/cli.yaml); the last
// one only when it exists, the first two must exist.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { API_TOKEN_PATTERN, API_TOKEN_TEXT } from '../../config/definition.ts';
import { formatDuration, parseDuration } from '../../config/duration.ts';
import { CliFailure } from './client.ts';
import { UsageError } from './usage-error.ts';

export const DEFAULT_API = 'http://127.0.0.1:8080';

/** What cli.yaml may hold. */
export interface CliFile {
  /** Where it was read from. */
  readonly path: string;
  readonly apis: readonly string[];
  readonly token: string | null;
  readonly timeout: string | null;
}

/** Checks one API base URL: http(s), no query or fragment; returned without trailing slashes. */
export function parseApi(text: string, from: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${from}: "${text}" is not a URL, expected e.g. ${DEFAULT_API}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${from}: "${text}" is not an http:// or https:// URL`);
  if (url.search !== '' || url.hash !== '') throw new UsageError(`${from}: "${text}" must not have a query or fragment`);
  if (url.username !== '' || url.password !== '') {
    // fetch refuses a URL with credentials, and the message would repeat the
    // password; the API authenticates with its bearer token, never a user.
    url.username = '';
    url.password = '';
    throw new UsageError(`${from}: "${url.href.replace(/\/+$/, '')}" must not carry a user name or password; the API takes a token (--token or $OPENGSLB_API_TOKEN)`);
  }
  return url.href.replace(/\/+$/, '');
}

/** Longest --timeout: Node's timers wait at most 2^31 - 1 ms (about 24.8 days) and fire at once past that, so a cap well inside it. */
export const MAX_TIMEOUT_MS = 24 * 3_600_000;

/**
 * Parses a request timeout (--timeout, or cli.yaml's timeout): a Go-style
 * duration, or a bare number of seconds as the Go CLI took it; more than 0
 * and at most MAX_TIMEOUT_MS. Throws UsageError `FROM: …` naming what is wrong.
 */
export function parseTimeout(text: string, from: string): number {
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) {
    ms = Math.round(Number(text) * 1000);
  } else {
    const d = parseDuration(text);
    if ('error' in d) throw new UsageError(`${from}: ${d.error}`);
    ms = d.ms;
  }
  if (!(ms > 0)) throw new UsageError(`${from}: "${text}" must be longer than 0`);
  if (ms > MAX_TIMEOUT_MS) throw new UsageError(`${from}: "${text}" is longer than ${formatDuration(MAX_TIMEOUT_MS)}, expected at most ${formatDuration(MAX_TIMEOUT_MS)}`);
  return ms;
}

/**
 * Says what keeps `token` from being sent as `Authorization: Bearer TOKEN`,
 * or null when nothing does. The server's api.token is printable ASCII
 * without spaces (config/definition.ts API_TOKEN_PATTERN), and fetch refuses
 * a header with a line break or a character above U+00FF with a message
 * that quotes the whole header: the problem is named by position and kind,
 * never by quoting the token.
 */
export function tokenProblem(token: string): string | null {
  if (new RegExp(API_TOKEN_PATTERN).test(token)) return null;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c >= 0x21 && c <= 0x7e) continue;
    const what = c === 0x20 ? 'a space' : c === 0x0a || c === 0x0d ? 'a line break' : c < 0x20 || c === 0x7f ? 'a control character' : 'not ASCII';
    return `the token's character ${i + 1} (of ${token.length}) is ${what}, expected ${API_TOKEN_TEXT}`;
  }
  return null;
}

/** Where cli.yaml is read from, and whether it must exist; null: no file to read. */
export function cliConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): { readonly path: string; readonly required: boolean; readonly from: string } | null {
  if (flag !== undefined) return { path: flag, required: true, from: '--cli-config' };
  if (env.OPENGSLB_CLI_CONFIG) return { path: env.OPENGSLB_CLI_CONFIG, required: true, from: '$OPENGSLB_CLI_CONFIG' };
  const base = env.XDG_CONFIG_HOME || (env.HOME ? join(env.HOME, '.config') : join(homedir(), '.config'));
  return { path: join(base, 'opengslb', 'cli.yaml'), required: false, from: 'the default cli.yaml' };
}

/**
 * Reads cli.yaml: `apis` (a list of URLs, or one), `token`, `timeout`; any
 * other key is an error naming it, with file:line:col. Null when the file is
 * optional and absent.
 */
export function loadCliFile(where: { readonly path: string; readonly required: boolean; readonly from: string }): CliFile | null {
  let text: string;
  try {
    text = readFileSync(where.path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!where.required && code === 'ENOENT') return null;
    throw new CliFailure(`cannot read ${where.path} (${where.from}): ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, 1);
  }
  const doc = parseDocument(text, { prettyErrors: false });
  const at = (offset: number | undefined): string => {
    if (offset === undefined) return where.path;
    const before = text.slice(0, offset).split('\n');
    return `${where.path}:${before.length}:${before[before.length - 1]!.length + 1}`;
  };
  if (doc.errors.length > 0) throw new CliFailure(`${at(doc.errors[0]!.pos[0])}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`, 1);
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) return { path: where.path, apis: [], token: null, timeout: null };
  if (typeof value !== 'object' || Array.isArray(value)) throw new CliFailure(`${at(0)}: expected a map with apis, token and timeout`, 1);
  const rangeOf = (key: string): number | undefined => {
    const contents = doc.contents as { items?: { key?: { value?: unknown; range?: [number] } }[] } | null;
    return contents?.items?.find((i) => i.key?.value === key)?.key?.range?.[0];
  };
  const map = value as Record<string, unknown>;
  for (const key of Object.keys(map)) {
    if (!['apis', 'token', 'timeout'].includes(key)) throw new CliFailure(`${at(rangeOf(key))}: unknown key "${key}", expected apis, token or timeout`, 1);
  }
  const raw = map.apis === undefined ? [] : Array.isArray(map.apis) ? map.apis : [map.apis];
  const apis = raw.map((a, i) => {
    if (typeof a !== 'string') throw new CliFailure(`${at(rangeOf('apis'))}: apis[${i}]: expected a URL string such as ${DEFAULT_API}`, 1);
    try {
      return parseApi(a, `apis[${i}]`);
    } catch (err) {
      throw new CliFailure(`${at(rangeOf('apis'))}: ${(err as Error).message}`, 1);
    }
  });
  if (map.token !== undefined && map.token !== null && typeof map.token !== 'string') throw new CliFailure(`${at(rangeOf('token'))}: token: expected a string`, 1);
  // YAML reads `timeout: 5` as a number: a bare number of seconds, as --timeout takes it.
  const timeoutValue = map.timeout;
  let timeout: string | null = null;
  if (typeof timeoutValue === 'number' || typeof timeoutValue === 'string') timeout = String(timeoutValue);
  else if (timeoutValue !== undefined && timeoutValue !== null) throw new CliFailure(`${at(rangeOf('timeout'))}: timeout: expected a duration such as 5s, or a number of seconds`, 1);
  if (timeout !== null) {
    // Checked here, so a bad value is named in this file (exit 1) rather than blamed on --timeout.
    try {
      parseTimeout(timeout, 'timeout');
    } catch (err) {
      throw new CliFailure(`${at(rangeOf('timeout'))}: ${(err as Error).message}`, 1);
    }
  }
  const token = (map.token as string | undefined) || null;
  const badToken = token === null ? null : tokenProblem(token);
  if (badToken !== null) throw new CliFailure(`${at(rangeOf('token'))}: token: ${badToken}`, 1);
  return { path: where.path, apis, token, timeout };
}

/** The endpoints: --api (each), else $OPENGSLB_API (comma-separated), else the file's apis, else the default. Duplicates are dropped. */
export function resolveApis(flags: readonly string[], env: NodeJS.ProcessEnv, file: CliFile | null): string[] {
  let apis: string[];
  if (flags.length > 0) apis = flags.map((a) => parseApi(a, '--api'));
  else if (env.OPENGSLB_API) apis = env.OPENGSLB_API.split(',').map((a) => a.trim()).filter((a) => a !== '').map((a) => parseApi(a, '$OPENGSLB_API'));
  else if (file !== null && file.apis.length > 0) apis = [...file.apis];
  else apis = [DEFAULT_API];
  return [...new Set(apis)];
}
