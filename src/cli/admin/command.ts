// Cold path. What every `opengslb-cli` admin command is (its shape, what it
// runs with) and the two helpers each one uses: reading a string flag, and
// printing its result as text or, with --json, as the API's JSON.

import type { ParseArgsOptionsConfig } from 'node:util';
import type { ApiClient } from './client.ts';

/** What a command runs with. */
export interface CommandContext {
  readonly client: ApiClient;
  /** --json: print the API's JSON (pretty) instead of text. */
  readonly json: boolean;
  readonly out: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export type Values = Readonly<Record<string, string | boolean | undefined>>;

export interface Command {
  /** The command words: "servers", "overrides set". */
  readonly name: string;
  /** Arguments and flags after the command words. */
  readonly synopsis: string;
  /** One line for the overview. */
  readonly summary: string;
  /** Flag lines for the command's --help (the global flags are added by the entry). */
  readonly flags: readonly string[];
  readonly options: ParseArgsOptionsConfig;
  /** How many positional arguments it takes: [min, max]. */
  readonly args: readonly [number, number];
  /**
   * It changes operator state every overwatch must hold alike (overrides,
   * revocations, geo mappings) or reloads: with several API endpoints it goes
   * to every one of them. Other commands ask the first that answers (or each,
   * with --all).
   */
  readonly write?: true;
  run(ctx: CommandContext, values: Values, args: readonly string[]): Promise<void>;
}

/** Prints a command's result: the body as JSON with --json, else the text `text` makes of it. */
export function print<T>(ctx: CommandContext, body: T, text: (body: T) => string): void {
  ctx.out(ctx.json ? JSON.stringify(body, null, 2) + '\n' : text(body));
}

/** The value of string flag `key`, or undefined when it was not given. */
export function str(values: Values, key: string): string | undefined {
  const v = values[key];
  return typeof v === 'string' ? v : undefined;
}
