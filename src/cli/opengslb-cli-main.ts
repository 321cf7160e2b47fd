// Cold path. The operator's command-line client: `config validate` checks
// config files with exactly the code the server runs; the other commands talk
// to a running overwatch's admin API (src/cli/admin/). Exit 0 on success, 1
// when the API or the connection fails (or a config is invalid), 2 for usage
// errors.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setDefaultCACertificates } from 'node:tls';
import type { ParseArgsOptionsConfig } from 'node:util';
import { parseDuration } from '../config/duration.ts';
import { ApiClient, CliFailure } from './admin/client.ts';
import { FlagError, parseFlags } from './args.ts';
import { COMMANDS, type Command, GROUPS, UsageError, type Values } from './admin/commands.ts';
import { CONFIG_VALIDATE_USAGE, runConfigValidate, type Output } from './config-validate.ts';
import { packageVersion } from './opengslb-main.ts';

const DEFAULT_API = 'http://127.0.0.1:8080';
const DEFAULT_TIMEOUT = '5s';

const GLOBAL_OPTIONS: ParseArgsOptionsConfig = {
  api: { type: 'string' },
  token: { type: 'string' },
  'ca-file': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** Global flags that take a value, so the value is not mistaken for a command word. */
const VALUE_FLAGS = new Set(['--api', '--token', '--ca-file', '--timeout']);

const GLOBAL_FLAGS = `global flags (before or after the command):
  --api URL         admin API base URL (default $OPENGSLB_API, else ${DEFAULT_API})
  --token TOKEN     bearer token for writes (default $OPENGSLB_API_TOKEN, else $OPENGSLB_TOKEN)
  --ca-file FILE    PEM CA certificate(s) to trust, instead of the system's, for an https:// API (api.tls)
  --timeout DUR     per request, e.g. 500ms, 5s (default ${DEFAULT_TIMEOUT}; a bare number is seconds)
  --json            print the API's JSON, pretty, instead of text
  -h, --help        print help (per command: opengslb-cli COMMAND --help)`;

function commandLine(c: Command): string {
  return `${c.name}${c.synopsis ? ' ' + c.synopsis : ''}`;
}

const USAGE = (() => {
  const lines = [...COMMANDS.map((c) => [commandLine(c), c.summary] as const)];
  lines.push([CONFIG_VALIDATE_USAGE, 'check a config file and its includes as the server would (exit 1 if invalid)']);
  lines.push(['version', 'print the version of this client']);
  return [
    'usage: opengslb-cli COMMAND [flags]',
    '',
    'commands:',
    ...lines.flatMap(([cmd, what]) => [`  ${cmd}`, `      ${what}`]),
    '',
    GLOBAL_FLAGS,
    '',
    'exit status: 0 success, 1 the API or the connection failed, 2 bad usage',
  ].join('\n');
})();

function commandUsage(c: Command): string {
  const flags = c.flags.length > 0 ? `\n\n${c.flags.map((f) => '  ' + f).join('\n')}` : '';
  return `usage: opengslb-cli ${commandLine(c)}\n\n${c.summary}${flags}\n\n${GLOBAL_FLAGS}`;
}

/**
 * Splits the command words (`servers`, `overrides set`, `geo mappings add`) from the rest,
 * skipping global flags and their values wherever they are.
 */
function splitCommand(argv: readonly string[]): { words: string[]; rest: string[] } {
  const words: string[] = [];
  const rest: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a.startsWith('-')) {
      rest.push(a);
      if (VALUE_FLAGS.has(a) && i + 1 < argv.length) rest.push(argv[++i]);
      continue;
    }
    words.push(a);
    i++;
    // A group ("overrides", "geo mappings") takes its sub-command as the next word that is not a global flag.
    for (; i < argv.length && GROUPS.includes(words.join(' ')); i++) {
      const b = argv[i];
      if (b.startsWith('-')) {
        rest.push(b);
        if (VALUE_FLAGS.has(b) && i + 1 < argv.length) rest.push(argv[++i]);
        continue;
      }
      words.push(b);
    }
    break;
  }
  rest.push(...argv.slice(i));
  return { words, rest };
}

/** Parses --timeout: a Go-style duration, or a bare number of seconds as the Go CLI took it. */
function parseTimeout(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) {
    const ms = Math.round(Number(text) * 1000);
    if (ms > 0) return ms;
  } else {
    const d = parseDuration(text);
    if ('ms' in d && d.ms > 0) return d.ms;
    if ('error' in d) throw new UsageError(`--timeout: ${d.error}`);
  }
  throw new UsageError(`--timeout: "${text}" must be longer than 0`);
}

/**
 * --ca-file: the certificates in FILE become the only roots TLS trusts in this
 * process, as curl's --cacert replaces its bundle. fetch has no per-request CA
 * option without the undici package, so this sets the process default (Node's
 * tls.setDefaultCACertificates); the CLI makes one request per run.
 */
function trustOnly(file: string): void {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliFailure(`--ca-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 1);
  }
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  try {
    if (certs.length === 0) throw new Error('no "-----BEGIN CERTIFICATE-----" block');
    for (const c of certs) new X509Certificate(c);
    setDefaultCACertificates(certs);
  } catch (err) {
    throw new CliFailure(`--ca-file ${file}: not a PEM CA certificate (${(err as Error).message}), expected one or more "-----BEGIN CERTIFICATE-----" blocks`, 1);
  }
}

/** Checks --api: an http(s) URL, returned without trailing slashes. */
function parseApi(text: string, from: string): string {
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

const processOutput: Output = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** Runs one command and returns the process exit code. */
export async function main(argv: readonly string[], io: Output = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { words, rest } = splitCommand(argv);
  const name = words.join(' ');
  const wantsHelp = rest.includes('--help') || rest.includes('-h');

  if (words.length === 0 || name === 'help') {
    if (wantsHelp || name === 'help') {
      const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest.filter((a) => !a.startsWith('-')).join(' ')) : undefined;
      io.out((topic ? commandUsage(topic) : USAGE) + '\n');
      return 0;
    }
    if (rest.includes('--version')) return version(io);
    io.err(`${argv.length === 0 ? 'opengslb-cli: a command is needed' : `opengslb-cli: a command is needed, got only flags: ${argv.join(' ')}`}\n${USAGE}\n`);
    return 2;
  }
  if (name === 'version') return version(io);
  if (name === 'config validate') {
    if (wantsHelp) {
      io.out(`usage: opengslb-cli ${CONFIG_VALIDATE_USAGE}\n\nCheck FILE and its includes exactly as the server does at start-up and on reload.\nPrints a summary (exit 0) or every problem as FILE:LINE:COL: path: message (exit 1);\n--json prints one JSON object instead.\n`);
      return 0;
    }
    return runConfigValidate('opengslb-cli', rest, io, env);
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    const group = GROUPS.includes(words[0]) ? ` (${words[0]} takes: ${subcommands(words[0])})` : '';
    io.err(`opengslb-cli: unknown command "${name}"${group}\n${USAGE}\n`);
    return 2;
  }

  let values: Values;
  let args: string[];
  try {
    const parsed = parseFlags(rest, { ...GLOBAL_OPTIONS, ...command.options }, true);
    values = parsed.values;
    args = parsed.positionals;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    return usageFailure(io, command, err.message);
  }
  if (values.help === true) {
    io.out(commandUsage(command) + '\n');
    return 0;
  }
  const [min, max] = command.args;
  if (max === 0 && args.length > 0) return usageFailure(io, command, `takes no arguments, got: ${args.join(' ')}`);
  if (args.length < min || args.length > max) {
    const expected = min === max ? `${min}` : `${min} to ${max}`;
    return usageFailure(io, command, `expected ${expected} argument${max === 1 ? '' : 's'}, got ${args.length}${args.length > 0 ? `: ${args.join(' ')}` : ''}`);
  }

  try {
    const api = typeof values.api === 'string' ? parseApi(values.api, '--api') : env.OPENGSLB_API ? parseApi(env.OPENGSLB_API, '$OPENGSLB_API') : DEFAULT_API;
    const tokenText = typeof values.token === 'string' ? values.token : tokenFromEnv(env);
    const timeoutMs = parseTimeout(typeof values.timeout === 'string' ? values.timeout : DEFAULT_TIMEOUT);
    if (typeof values['ca-file'] === 'string') {
      if (!api.startsWith('https:')) throw new UsageError(`--ca-file is for an https:// API, but the API is ${api}`);
      trustOnly(values['ca-file']);
    }
    const client = new ApiClient({ api, token: tokenText ? tokenText : null, timeoutMs });
    await command.run({ client, json: values.json === true, out: io.out, env }, values, args);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return usageFailure(io, command, err.message);
    if (err instanceof CliFailure) {
      io.err(`opengslb-cli: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      return err.exitCode;
    }
    // A bug of this program, not a problem of the API: still one line that names the program, not a stack trace.
    io.err(`opengslb-cli ${command.name}: unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/**
 * The token from the environment: OPENGSLB_API_TOKEN, the name the server's
 * config convention (`token: ${OPENGSLB_API_TOKEN}`), the Docker image and the
 * systemd units use; else OPENGSLB_TOKEN, the name earlier versions of this
 * CLI read, kept as an alias. An empty value counts as unset.
 */
export function tokenFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  return env.OPENGSLB_API_TOKEN || env.OPENGSLB_TOKEN || undefined;
}

function subcommands(group: string): string {
  if (group === 'config') return 'validate';
  return COMMANDS.filter((c) => c.name.startsWith(group + ' ')).map((c) => c.name.slice(group.length + 1)).join(', ');
}

function usageFailure(io: Output, command: Command, message: string): number {
  io.err(`opengslb-cli ${command.name}: ${message}\n${commandUsage(command)}\n`);
  return 2;
}

function version(io: Output): number {
  io.out(`opengslb-cli ${packageVersion()}\n`);
  return 0;
}
