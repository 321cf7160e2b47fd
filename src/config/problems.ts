// Cold path, main thread. The shape of a configuration problem and the one
// error class the config loader throws, carrying every problem at once.

import { OpenGslbError } from '../lib/errors.ts';
import type { ErrorCode } from '../lib/errors.ts';

/**
 * Describes one thing wrong with a configuration file. `line` and `col` are
 * 1-based; both are 0 when the problem concerns the whole file (it cannot be
 * read, or its permissions are unsafe). `path` is the dotted key path
 * (`regions[0].servers[2].address`), `(root)` for the document itself, or ''
 * for whole-file problems.
 */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly path: string;
  readonly message: string;
}

/** Formats one problem as `FILE:LINE:COL: PATH: message` (or `FILE: message` for whole-file problems). */
export function formatProblem(p: ConfigProblem): string {
  if (p.line === 0) return `${p.file}: ${p.message}`;
  return `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`;
}

/**
 * Orders problems so the report reads top to bottom: file by file in
 * `fileOrder` (files it lacks follow in the order their first problem was
 * found), and by position within a file, whole-file problems first.
 */
export function sortProblems(problems: readonly ConfigProblem[], fileOrder: readonly string[] = []): ConfigProblem[] {
  const rank = new Map<string, number>();
  for (const file of [...fileOrder, ...problems.map((p) => p.file)]) if (!rank.has(file)) rank.set(file, rank.size);
  // Array.prototype.sort is stable, so problems at the same spot keep the order they were found in.
  return [...problems].sort((a, b) => (rank.get(a.file) ?? 0) - (rank.get(b.file) ?? 0) || a.line - b.line || a.col - b.col);
}

/** The codes a ConfigError can carry. */
export type ConfigErrorCode = Extract<ErrorCode, `OPENGSLB_ERR_CONFIG_${string}`>;

/**
 * Creates the error the config loader throws: `code` is OPENGSLB_ERR_CONFIG_INVALID,
 * _READ or _PERMISSIONS, `problems` holds every problem found (never just the
 * first), and `message` is those problems formatted one per line.
 */
export class ConfigError extends OpenGslbError {
  readonly problems: readonly ConfigProblem[];
  constructor(code: ConfigErrorCode, problems: readonly ConfigProblem[], options?: { cause?: unknown; fileOrder?: readonly string[] }) {
    const sorted = sortProblems(problems, options?.fileOrder);
    super(code, sorted.map(formatProblem).join('\n'), options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.problems = Object.freeze(sorted.map((p) => Object.freeze({ ...p })));
  }
}
