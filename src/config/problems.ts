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

/** Orders problems by position so the report reads top to bottom; whole-file problems come first. */
export function sortProblems(problems: readonly ConfigProblem[]): ConfigProblem[] {
  // Array.prototype.sort is stable, so problems at the same spot keep the order they were found in.
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
}

type ConfigErrorCode = Extract<ErrorCode, `OPENGSLB_ERR_CONFIG_${string}`>;

/**
 * Creates the error the config loader throws: `code` is OPENGSLB_ERR_CONFIG_INVALID,
 * _READ or _PERMISSIONS, `problems` holds every problem found (never just the
 * first), and `message` is those problems formatted one per line.
 */
export class ConfigError extends OpenGslbError {
  readonly problems: readonly ConfigProblem[];
  constructor(code: ConfigErrorCode, problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    const sorted = sortProblems(problems);
    super(code, sorted.map(formatProblem).join('\n'), options);
    this.name = 'ConfigError';
    this.problems = Object.freeze(sorted.map((p) => Object.freeze({ ...p })));
  }
}
