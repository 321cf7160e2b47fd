// Cold path. The operator's command-line client: `config validate` checks
// config files with exactly the code the server runs; the other commands talk
// to a running overwatch's admin API (src/cli/admin/). Exit 0 on success, 1
// when the API or the connection fails (or a config is invalid), 2 for usage
// errors.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setDefaultCACertificates } from 'node:tls';
import type { ParseArgsOptionsConfig } from 'node:util';
import { ApiClient, CliFailure } from './admin/client.ts';
import { FlagError, parseFlags } from './args.ts';
import { dropOutputToClosedPipes } from './closed-pipe.ts';
import type { Command, Values } from './admin/command.ts';
import { COMMANDS, GROUPS, UsageError } from './admin/commands.ts';
import { cliConfigPath, DEFAULT_API, loadCliFile, parseTimeout, resolveApis, tokenProblem } from './admin/endpoints.ts';
import { checkConfigValidateLine, CONFIG_VALIDATE_SUMMARY, CONFIG_VALIDATE_USAGE, runConfigValidate, type Output } from './config-validate.ts';
import { packageVersion } from './version.ts';

const DEFAULT_TIMEOUT = '5s';

const GLOBAL_OPTIONS: ParseArgsOptionsConfig = {
  api: { type: 'string', multiple: true },
  'cli-config': { type: 'string' },
  all: { type: 'boolean' },
  token: { type: 'string' },
  'ca-file': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** Global flags that take a value, so the value is not mistaken for a command word. */
const VALUE_FLAGS = new Set(['--api', '--token', '--ca-file', '--timeout', '--cli-config']);

const GLOBAL_FLAGS = `global flags (before or after the command):
  --api URL         admin API base URL; repeat it for several overwatches (default $OPENGSLB_API,
                    comma-separated, else cli.yaml's apis, else ${DEFAULT_API})
  --cli-config FILE cli.yaml with apis, token, timeout (default $OPENGSLB_CLI_CONFIG,
                    else ~/.config/opengslb/cli.yaml when it exists)
  --all             with several APIs, ask every one and print each answer (reads ask the first that answers)
  --token TOKEN     bearer token for writes (default $OPENGSLB_API_TOKEN, else $OPENGSLB_TOKEN)
  --ca-file FILE    PEM CA certificate(s) to trust, instead of the system's, for an https:// API (api.tls)
  --timeout DUR     per request, e.g. 500ms, 5s (default ${DEFAULT_TIMEOUT}; a bare number is seconds)
  --json            print the API's JSON, pretty, instead of text
  -h, --help        print help (per command: opengslb-cli COMMAND --help)`;

const CONFIG_VALIDATE_HELP = `usage: opengslb-cli ${CONFIG_VALIDATE_USAGE}\n\n${CONFIG_VALIDATE_SUMMARY}\n`;

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

const processOutput: Output = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** Runs one command and returns the process exit code. */
export async function main(argv: readonly string[], io: Output = processOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (io === processOutput) dropOutputToClosedPipes();
  const { words, rest } = splitCommand(argv);
  const name = words.join(' ');
  const wantsHelp = rest.includes('--help') || rest.includes('-h');

  if (words.length === 0 || name === 'help') {
    if (wantsHelp || name === 'help') {
      const asked = name === 'help' ? rest.filter((a) => !a.startsWith('-')).join(' ') : '';
      if (asked === 'config validate') {
        io.out(CONFIG_VALIDATE_HELP);
        return 0;
      }
      const topic = COMMANDS.find((c) => c.name === asked);
      // `help NAME` for a command that does not exist is the same usage error as running it.
      if (asked !== '' && topic === undefined) return unknownCommand(io, asked);
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
      io.out(CONFIG_VALIDATE_HELP);
      return 0;
    }
    return runConfigValidate('opengslb-cli', rest, io, env);
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) return unknownCommand(io, name);

  const parsed = parseCommand(command, rest);
  if ('usage' in parsed) {
    if (parsed.usage === null) {
      io.out(commandUsage(command) + '\n');
      return 0;
    }
    return usageFailure(io, command, parsed.usage);
  }
  const { values, args } = parsed;

  try {
    const file = loadCliFile(cliConfigPath(typeof values['cli-config'] === 'string' ? values['cli-config'] : undefined, env) ?? { path: '', required: false, from: '' });
    const apis = resolveApis((values.api as unknown as string[] | undefined) ?? [], env, file);
    const tokenText = typeof values.token === 'string' ? values.token : (tokenFromEnv(env) ?? file?.token ?? undefined);
    // cli.yaml's token was checked where it was read, with its position.
    const badToken = tokenText ? tokenProblem(tokenText) : null;
    if (badToken !== null) throw new UsageError(`${typeof values.token === 'string' ? '--token' : env.OPENGSLB_API_TOKEN ? '$OPENGSLB_API_TOKEN' : '$OPENGSLB_TOKEN'}: ${badToken}`);
    const timeoutMs = parseTimeout(typeof values.timeout === 'string' ? values.timeout : (file?.timeout ?? DEFAULT_TIMEOUT), '--timeout');
    if (typeof values['ca-file'] === 'string') {
      if (!apis.some((a) => a.startsWith('https:'))) throw new UsageError(`--ca-file is for an https:// API, but the API is ${apis.join(', ')}`);
      trustOnly(values['ca-file']);
    }
    const clients = apis.map((api) => new ApiClient({ api, token: tokenText ? tokenText : null, timeoutMs }));
    const ctxFor = (client: ApiClient, out: (text: string) => void) => ({ client, json: values.json === true, out, env });
    if (clients.length === 1) {
      await command.run(ctxFor(clients[0]!, io.out), values, args);
      return 0;
    }
    if (command.write === true || values.all === true) return await runOnEach(command, clients, (c, out) => command.run(ctxFor(c, out), values, args), values.json === true, io);
    return await runOnFirst(command, clients, (c, out) => command.run(ctxFor(c, out), values, args), io);
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

/** What one run of a command on one overwatch gave. */
interface EndpointResult {
  readonly api: string;
  readonly output: string;
  readonly error: unknown;
}

async function runCaptured(client: ApiClient, run: (c: ApiClient, out: (text: string) => void) => Promise<void>): Promise<EndpointResult> {
  let output = '';
  try {
    await run(client, (text) => (output += text));
    return { api: client.api, output, error: null };
  } catch (err) {
    return { api: client.api, output, error: err };
  }
}

function errorText(err: unknown): string {
  if (err instanceof CliFailure) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A write (or --all): runs the command on every overwatch at once, prints
 * each one's answer under its URL in the order given, then which failed.
 * Exit 0 only when every overwatch took it; otherwise 1, naming each that
 * missed it and why. --json prints {results: [{api, ok, answer, error}], ok, failed}.
 */
async function runOnEach(command: Command, clients: readonly ApiClient[], run: (c: ApiClient, out: (text: string) => void) => Promise<void>, json: boolean, io: Output): Promise<number> {
  const results = await Promise.all(clients.map((c) => runCaptured(c, run)));
  // A usage problem is the same everywhere: report it once, as for one API.
  const usage = results.find((r) => r.error instanceof UsageError);
  if (usage !== undefined) throw usage.error;
  const failed = results.filter((r) => r.error !== null);
  const what = command.write === true ? 'applied on' : 'answered by';
  if (json) {
    const answer = (text: string): unknown => {
      try {
        return text.trim() === '' ? null : (JSON.parse(text) as unknown);
      } catch {
        return text;
      }
    };
    io.out(JSON.stringify({
      results: results.map((r) => ({ api: r.api, ok: r.error === null, answer: answer(r.output), error: r.error === null ? null : errorText(r.error) })),
      ok: results.length - failed.length,
      failed: failed.length,
    }, null, 2) + '\n');
  } else {
    for (const r of results) {
      io.out(`== ${r.api}: ${r.error === null ? 'ok' : 'FAILED'}\n${r.output}${r.error === null ? '' : `${errorText(r.error)}\n`}`);
    }
    io.out(`${command.name}: ${what} ${results.length - failed.length} of ${results.length} overwatches\n`);
  }
  if (failed.length === 0) return 0;
  io.err(`opengslb-cli: ${command.name} ${command.write === true ? 'missed' : 'failed on'} ${failed.length} of ${results.length} overwatches: ${failed.map((r) => `${r.api} (${errorText(r.error)})`).join('; ')}\n`);
  return 1;
}

/**
 * A read with several APIs and no --all: asks them in the order given and
 * prints the first answer; an overwatch that cannot be reached is named on
 * stderr and the next one asked. An answer that is an error (404, 401) is an
 * answer: it is not asked of the others.
 */
async function runOnFirst(command: Command, clients: readonly ApiClient[], run: (c: ApiClient, out: (text: string) => void) => Promise<void>, io: Output): Promise<number> {
  const missed: string[] = [];
  for (const client of clients) {
    const r = await runCaptured(client, run);
    if (r.error instanceof CliFailure && r.error.unreachable && client !== clients[clients.length - 1]) {
      missed.push(client.api);
      io.err(`opengslb-cli: ${errorText(r.error)}; asking the next API\n`);
      continue;
    }
    if (missed.length > 0 && r.error === null) io.err(`opengslb-cli: answered by ${client.api}\n`);
    io.out(r.output);
    if (r.error !== null) throw r.error;
    return 0;
  }
  return 1;
}

/**
 * Parses a command's flags and arguments (after the command words) against its
 * table entry: known flags with the right kind of value, and as many
 * positional arguments as it takes. Returns them, or `usage`: the message of
 * a usage error, or null when --help was asked for.
 */
function parseCommand(command: Command, rest: readonly string[]): { values: Values; args: string[] } | { usage: string | null } {
  let values: Values;
  let args: string[];
  try {
    const parsed = parseFlags(rest, { ...GLOBAL_OPTIONS, ...command.options }, true);
    values = parsed.values;
    args = parsed.positionals;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    return { usage: err.message };
  }
  if (values.help === true) return { usage: null };
  const [min, max] = command.args;
  if (max === 0 && args.length > 0) return { usage: `takes no arguments, got: ${args.join(' ')}` };
  if (args.length < min || args.length > max) {
    const expected = min === max ? `${min}` : `${min} to ${max}`;
    return { usage: `expected ${expected} argument${max === 1 ? '' : 's'}, got ${args.length}${args.length > 0 ? `: ${args.join(' ')}` : ''}` };
  }
  return { values, args };
}

/**
 * Checks a command line (the words after `opengslb-cli`) against the command
 * table without running it: the command exists, its flags and argument count
 * are right. Returns null when it would run, else what is wrong. For
 * documentation tests (docs/runbooks/); values a command checks when it runs
 * (durations, addresses) are not looked at.
 */
export function checkCommandLine(argv: readonly string[]): string | null {
  const { words, rest } = splitCommand(argv);
  const name = words.join(' ');
  if (name === 'version' || (words.length === 0 && (rest.includes('--version') || rest.includes('--help') || rest.includes('-h')))) return null;
  if (name === 'config validate') {
    return checkConfigValidateLine(rest);
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) return `unknown command "${name}"`;
  const parsed = parseCommand(command, rest);
  return 'usage' in parsed && parsed.usage !== null ? `${name}: ${parsed.usage}` : null;
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

/** Says that `name` is no command (naming a group's sub-commands when it starts with a group), with the overview; exit 2. */
function unknownCommand(io: Output, name: string): number {
  const first = name.split(' ')[0];
  const group = GROUPS.includes(first) ? ` (${first} takes: ${subcommands(first)})` : '';
  io.err(`opengslb-cli: unknown command "${name}"${group}\n${USAGE}\n`);
  return 2;
}

function usageFailure(io: Output, command: Command, message: string): number {
  io.err(`opengslb-cli ${command.name}: ${message}\n${commandUsage(command)}\n`);
  return 2;
}

function version(io: Output): number {
  io.out(`opengslb-cli ${packageVersion()}\n`);
  return 0;
}

/**
 * --ca-file: the certificates in FILE become the only roots TLS trusts in this
 * process, as curl's --cacert replaces its bundle. fetch has no per-request CA
 * option without the undici package, so this sets the process default (Node's
 * tls.setDefaultCACertificates); the CLI is one short-lived process.
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
