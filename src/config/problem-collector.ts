// Cold path, main thread. Collects config problems for one file and remembers
// where in the file each validated value came from, so checks that run after
// the tree walk (cross-references) can still point at a line and column.

import type { ConfigProblem } from './problems.ts';

/** A 1-based line and column. */
export interface Pos {
  readonly line: number;
  readonly col: number;
}

/** One step of a key path: a map key or a list index. */
export type PathSegment = string | number;

const START: Pos = { line: 1, col: 1 };

/** Formats a key path as `regions[0].servers[2].address`; `(root)` for the empty path. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(root)' : out;
}

/** Gathers every problem of one file; never throws. */
export class ProblemCollector {
  /** The file name as it appears in messages. */
  readonly file: string;
  readonly problems: ConfigProblem[] = [];
  /** Position of each value that was present in the file, keyed by formatPath(). */
  readonly positions = new Map<string, Pos>();

  constructor(file: string) {
    this.file = file;
  }

  /** Records a problem at an explicit position. */
  report(pos: Pos, path: readonly PathSegment[], message: string): void {
    this.problems.push({ file: this.file, line: pos.line, col: pos.col, path: formatPath(path), message });
  }

  /** Records a problem at the position of `path`'s value (or of its nearest ancestor that was in the file). */
  reportAt(path: readonly PathSegment[], message: string): void {
    this.report(this.positionOf(path), path, message);
  }

  /** Returns where `path`'s value was written; for a defaulted value, where its nearest written ancestor was; else 1:1. */
  positionOf(path: readonly PathSegment[]): Pos {
    for (let n = path.length; n >= 0; n--) {
      const pos = this.positions.get(formatPath(path.slice(0, n)));
      if (pos !== undefined) return pos;
    }
    return START;
  }
}
