// Cold path. Command-line flags for both programs: Node's util.parseArgs does
// the parsing, and this module turns the errors it throws (whose wording is
// Node's, with advice about '--' that fits no command of ours) into the
// project's own words: which flag, what was wrong, what was expected.

import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

/** A flag or argument parseArgs refused, said in our words; the caller prints it with its usage line (exit 2). */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

/** What parseFlags returns: flag values by long name, and the positional arguments. */
export interface ParsedFlags {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: string[];
}

/**
 * Parses `args` strictly against `options`. Throws FlagError for an unknown
 * flag (naming the nearest known one when there is a close one), a flag
 * missing its value, a value given to a switch, or a positional argument a
 * command without arguments was given.
 */
export function parseFlags(args: readonly string[], options: ParseArgsOptionsConfig, allowPositionals: boolean): ParsedFlags {
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, strict: true, allowPositionals });
    return { values: values as ParsedFlags['values'], positionals };
  } catch (err) {
    throw new FlagError(describeParseError(err, args, options));
  }
}

/** Every flag `options` accepts, as typed: "--config", "-c". */
function knownFlags(options: ParseArgsOptionsConfig): string[] {
  const out: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    out.push(`--${name}`);
    if (o.short !== undefined) out.push(`-${o.short}`);
  }
  return out;
}

/** The long form of a flag as typed ("-c" → "--config"), for messages. */
function longName(flag: string, options: ParseArgsOptionsConfig): string {
  if (flag.startsWith('--')) return flag;
  for (const [name, o] of Object.entries(options)) if (`-${o.short}` === flag) return `--${name}`;
  return flag;
}

function describeParseError(err: unknown, args: readonly string[], options: ParseArgsOptionsConfig): string {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  // Node quotes the flag or argument it refuses: "Unknown option '--bogus'", "Option '-c, --config <value>' argument missing".
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? '';
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const near = nearest(quoted, knownFlags(options));
      return `unknown flag ${quoted}${near === null ? '' : `; did you mean ${near}?`}`;
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${quoted}": this command takes flags only`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      // "'-c, --config <value>'" names both forms; the long one is what the usage line shows.
      const flag = /--[\w-]+/.exec(quoted)?.[0] ?? longName(quoted.split(' ')[0], options);
      if (/argument missing/.test(message)) return `${flag} needs a value`;
      if (/does not take an argument/.test(message)) return `${flag} is a switch and takes no value`;
      if (/ambiguous/.test(message)) {
        const typed = quoted.split(' ')[0];
        const next = args[args.indexOf(typed) + 1] ?? '';
        return `${flag} needs a value, but the next word "${next}" is a flag; if that is the value, write ${flag}=${next}`;
      }
      return `${flag}: ${message}`;
    }
    default:
      return message;
  }
}

/** The known flag within edit distance 2 of `typed` (a typo), or null. */
function nearest(typed: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    if (k.length < 3) continue; // short flags are one letter: every one is "near"
    const d = editDistance(typed.replace(/=.*$/, ''), k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance; flags are short, so the O(n·m) table is tiny. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}
