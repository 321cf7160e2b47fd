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
  return url.href.replace(/\/+$/, '');
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
  for (const key of ['token', 'timeout'] as const) {
    if (map[key] !== undefined && map[key] !== null && typeof map[key] !== 'string') throw new CliFailure(`${at(rangeOf(key))}: ${key}: expected a string`, 1);
  }
  return { path: where.path, apis, token: (map.token as string | undefined) || null, timeout: (map.timeout as string | undefined) ?? null };
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
