// Cold path. `config validate FILE [--mode MODE] [--environment-file FILE] [--json]`,
// shared by `opengslb` and `opengslb-cli`: runs exactly the loader the server
// runs at start-up and on reload (includes, ${VAR} expansion, permissions,
// defaults, cross-checks) and reports a summary or every problem.

import { readFile } from 'node:fs/promises';
import { parseEnv } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { RunMode } from '../config/types.ts';
import { formatProblem, type ConfigProblem } from '../config/problems.ts';
import type { Environment } from '../config/env.ts';
import { FlagError, parseFlags } from './args.ts';

/** The command line of the subcommand, for usage texts. */
export const CONFIG_VALIDATE_USAGE = 'config validate FILE [--mode overwatch|agent] [--environment-file FILE] [--json]';

/** What the subcommand does, for its --help. */
export const CONFIG_VALIDATE_SUMMARY = 'Check FILE and its includes exactly as the server does at start-up and on reload.\n--mode checks it as the server run with that --mode would (it overrides "mode:" in the file).\n--environment-file adds the NAME=value lines of a file to the environment ${VAR} is expanded from,\nas the EnvironmentFile= of the unit gives them to the server (/etc/opengslb/opengslb.env).\nPrints a summary (exit 0) or every problem as FILE:LINE:COL: path: message (exit 1);\n--json prints one JSON object instead.';

/** What `--json` prints for a valid config. */
export interface ValidSummary {
  readonly mode: string;
  readonly zones: number;
  readonly regions: number;
  readonly domains: number;
  readonly servers: number;
  /** Every file read, main first, as messages name them. */
  readonly files: readonly string[];
}

/** Where the command writes; process streams in the CLIs, strings in tests. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/**
 * Prints a config error as the programs do: every problem on a line of its
 * own, `PROGRAM: FILE:LINE:COL: path: message`, so each line names the
 * program and still reads as a location an editor can jump to.
 */
export function formatConfigError(program: string, err: ConfigError): string {
  return err.problems.map((p) => `${program}: ${formatProblem(p)}\n`).join('');
}

/** Formats config warnings, one per line, `PROGRAM: warning: FILE:LINE:COL: PATH: message`; '' when there are none. */
export function formatConfigWarnings(program: string, warnings: readonly ConfigProblem[]): string {
  return warnings.map((p) => `${program}: warning: ${formatProblem(p)}\n`).join('');
}

/**
 * Checks the words after `config validate` without running it, for the
 * documentation tests (docs/runbooks/): one FILE, --mode with a mode,
 * --environment-file with a value, no other flag than --json and --help. Returns null
 * when it would run, else what is wrong.
 */
export function checkConfigValidateLine(rest: readonly string[]): string | null {
  // --mode and --environment-file take a value, which is not a FILE.
  const modeAt = rest.indexOf('--mode');
  const mode = modeAt < 0 ? undefined : rest[modeAt + 1];
  if (modeAt >= 0 && mode !== 'overwatch' && mode !== 'agent') return `config validate: --mode ${mode ?? ''} is not a mode, expected overwatch or agent`;
  const envAt = rest.indexOf('--environment-file');
  if (envAt >= 0 && (rest[envAt + 1] === undefined || rest[envAt + 1].startsWith('-'))) return 'config validate: --environment-file needs a value';
  const taken = new Set([modeAt, envAt].filter((at) => at >= 0).flatMap((at) => [at, at + 1]));
  const args = rest.filter((_, i) => !taken.has(i));
  const files = args.filter((a) => !a.startsWith('-'));
  const unknown = args.filter((a) => a.startsWith('-') && a !== '--json' && a !== '--help' && a !== '-h');
  if (unknown.length > 0) return `config validate: unknown flag ${unknown[0]}`;
  return files.length === 1 ? null : `config validate: expected one FILE, got ${files.length}`;
}

/**
 * Runs `config validate` with the arguments after "validate"; `program` is
 * the program name every error line begins with. Prints to stdout
 * `FILE: valid (…)` and the files read, or with --json one object
 * `{ valid: true, summary }`; for a config with problems prints every problem
 * to stderr one per line (PROGRAM: FILE:LINE:COL: path: message), or with
 * --json `{ valid: false, code, problems: [{ file, line, col, path, message }] }`
 * to stdout. Returns the exit code: 0 valid, 1 not valid, 2 bad arguments.
 */
export async function runConfigValidate(program: string, args: readonly string[], io: Output, env: Environment = process.env): Promise<number> {
  let file: string;
  let json: boolean;
  let mode: RunMode | undefined;
  let envFile: string | undefined;
  try {
    const { values, positionals } = parseFlags(args, { json: { type: 'boolean' }, mode: { type: 'string' }, 'environment-file': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
    // `opengslb config validate --help` answers as `opengslb-cli config validate --help` does: the usage, exit 0.
    if (values.help === true) {
      io.out(`usage: ${program} ${CONFIG_VALIDATE_USAGE}\n\n${CONFIG_VALIDATE_SUMMARY}\n`);
      return 0;
    }
    if (positionals.length !== 1) throw new FlagError(positionals.length === 0 ? 'missing FILE' : `one FILE expected, got ${positionals.length}: ${positionals.join(' ')}`);
    file = positionals[0] as string;
    json = values.json === true;
    // The server's --mode decides which keys the file may and must have: an agent's file without
    // `mode: agent` is only valid with it, so validate must take the same flag to give the same verdict.
    if (values.mode !== undefined && values.mode !== 'overwatch' && values.mode !== 'agent') {
      throw new FlagError(`--mode: "${String(values.mode)}" is not a mode, expected overwatch or agent`);
    }
    mode = values.mode as RunMode | undefined;
    envFile = values['environment-file'] as string | undefined;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`${program} config validate: ${err.message}\nusage: ${program} ${CONFIG_VALIDATE_USAGE}\n`);
    return 2;
  }
  let vars = env;
  if (envFile !== undefined) {
    // The server under systemd expands ${VAR} from the unit's EnvironmentFile=, which the
    // operator's shell does not have: without it a config with ${OPENGSLB_API_TOKEN} fails
    // here although the service starts.
    let text: string;
    try {
      text = await readFile(envFile, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EACCES' ? 'permission denied (a unit reads its EnvironmentFile= as root, and /etc/opengslb/opengslb.env is mode 600: run this with sudo)' : e.code === 'ENOENT' ? 'no such file' : e.message;
      io.err(`${program} config validate: --environment-file ${envFile}: cannot read it: ${why}\n`);
      return 1;
    }
    vars = { ...env, ...(parseEnv(text) as Record<string, string>) };
  }
  try {
    const { config, files, warnings } = await loadConfig(file, mode === undefined ? { env: vars } : { env: vars, mode });
    const summary: ValidSummary = {
      mode: config.mode,
      zones: config.dns.zones.length,
      regions: config.regions.length,
      domains: config.domains.length,
      servers: config.regions.reduce((n, r) => n + r.servers.length, 0),
      files,
    };
    if (json) {
      const listed = warnings.map((p: ConfigProblem) => ({ file: p.file, line: p.line, col: p.col, path: p.path, message: p.message }));
      io.out(JSON.stringify({ valid: true, summary, warnings: listed }) + '\n');
    } else {
      const s = summary;
      io.out(`${file}: valid (mode ${s.mode}, ${s.zones} zones, ${s.regions} regions, ${s.domains} domains, ${s.servers} servers, ${s.files.length} files)\n`);
      for (const f of s.files) io.out(`  read ${f}\n`);
      // Valid all the same (exit 0); on stderr, as problems are, so a script reading stdout sees the same summary.
      if (warnings.length > 0) io.err(formatConfigWarnings(program, warnings));
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      // Not a problem of the config but of this program; say so rather than pretend the file is bad.
      io.err(`${program}: ${file}: cannot validate: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    if (json) {
      const problems = err.problems.map((p: ConfigProblem) => ({ file: p.file, line: p.line, col: p.col, path: p.path, message: p.message }));
      io.out(JSON.stringify({ valid: false, code: err.code, problems }) + '\n');
    } else {
      io.err(formatConfigError(program, err));
    }
    return 1;
  }
}
