// Cold path, main thread. Collects config problems for one configuration (a
// main file and its includes) and remembers where each validated value came
// from, so checks that run after the tree walk (cross-references) can still
// point at a file, line and column.

import type { ConfigProblem } from './problems.ts';

/** A 1-based line and column; `file` names the file when it is not the collector's main file. */
export interface Pos {
  readonly line: number;
  readonly col: number;
  readonly file?: string;
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

/** A value of a key marked `secret` in the definition, as the tree walk found it. */
export interface SecretValue {
  /** The dotted key path, as formatPath() writes it. */
  readonly path: string;
  /** The YAML node holding the value (the loader asks where its text came from). */
  readonly node: unknown;
  readonly pos: Pos;
}

/** One step of the tree of recorded positions. */
interface PosNode {
  pos: Pos | undefined;
  children: Map<PathSegment, PosNode> | undefined;
}

/** Gathers every problem of one configuration; never throws. */
export class ProblemCollector {
  /** The main file's name as it appears in messages; positions without a file are in it. */
  readonly file: string;
  readonly problems: ConfigProblem[] = [];
  /**
   * Things that load but are most likely not what the operator meant (a
   * domain whose every server has weight 0): never refuse the config; start,
   * reload and `config validate` print them.
   */
  readonly warnings: ConfigProblem[] = [];
  /**
   * Position of each value that was present in a file, by key path: a tree of
   * path segments, so recording one costs no formatPath() string (a third of
   * validating 100 000 geo mappings was those strings and their garbage).
   */
  readonly #positions: PosNode = { pos: undefined, children: undefined };
  /** Every value of a secret key that was present, in walk order. */
  readonly secrets: SecretValue[] = [];

  constructor(file: string) {
    this.file = file;
  }

  /** Records a problem at an explicit position. */
  report(pos: Pos, path: readonly PathSegment[], message: string): void {
    this.problems.push({ file: pos.file ?? this.file, line: pos.line, col: pos.col, path: formatPath(path), message });
  }

  /**
   * Names an earlier position for a message about a later one: "line 4" when
   * both are in the same file, else "conf.d/eu.yaml:4:5", so a duplicate split
   * across files names both files.
   */
  lineRef(earlier: Pos, later: Pos): string {
    const a = earlier.file ?? this.file;
    return a === (later.file ?? this.file) ? `line ${earlier.line}` : `${a}:${earlier.line}:${earlier.col}`;
  }

  /** Records a problem at the position of `path`'s value (or of its nearest ancestor that was in the file). */
  reportAt(path: readonly PathSegment[], message: string): void {
    this.report(this.positionOf(path), path, message);
  }

  /** Records a warning at the position of `path`'s value, as reportAt() places a problem. */
  warnAt(path: readonly PathSegment[], message: string): void {
    const pos = this.positionOf(path);
    this.warnings.push({ file: pos.file ?? this.file, line: pos.line, col: pos.col, path: formatPath(path), message });
  }

  /** Records where `path`'s value was written. */
  setPosition(path: readonly PathSegment[], pos: Pos): void {
    let node = this.#positions;
    for (const seg of path) {
      let children = node.children;
      if (children === undefined) node.children = children = new Map();
      let child = children.get(seg);
      if (child === undefined) children.set(seg, (child = { pos: undefined, children: undefined }));
      node = child;
    }
    node.pos = pos;
  }

  /** Was `path`'s value written in a file? */
  hasPosition(path: readonly PathSegment[]): boolean {
    let node: PosNode | undefined = this.#positions;
    for (let i = 0; i < path.length && node !== undefined; i++) node = node.children?.get(path[i]);
    return node?.pos !== undefined;
  }

  /** Returns where `path`'s value was written; for a defaulted value, where its nearest written ancestor was; else 1:1. */
  positionOf(path: readonly PathSegment[]): Pos {
    let node: PosNode | undefined = this.#positions;
    let found = node.pos;
    for (let i = 0; i < path.length; i++) {
      node = node.children?.get(path[i]);
      if (node === undefined) break;
      if (node.pos !== undefined) found = node.pos;
    }
    return found ?? START;
  }
}
