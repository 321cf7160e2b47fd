// Cold path, main thread. Merges the YAML trees of a main file and its
// includes into one tree, node by node, without copying scalars: every leaf
// keeps its identity, so the validator can still say which file and line it
// came from. Nothing here mutates a parsed document.

import { isAlias, isMap, isScalar, isSeq, Pair, YAMLMap, YAMLSeq } from 'yaml';
import type { Alias, Node } from 'yaml';
import type { PathSegment, Pos } from './problem-collector.ts';

/** What merging needs from the loader. */
export interface MergeHost {
  /** Where a node was written (with its file). */
  locate(node: Node): Pos;
  /** Resolves an alias in its own document. */
  resolve(alias: Alias): Node | undefined;
  /** Records that `made` (a new map or list) stands where `from` was written. */
  adopt(made: Node, from: Node): void;
  /** Records a merge conflict at `pos`. */
  report(pos: Pos, path: readonly PathSegment[], message: string): void;
}

/**
 * Merges `later` into `earlier` (both the content of a file, or of one key):
 * maps are merged key by key, recursively; lists are joined, earlier items
 * first; an empty value (`key:`) gives way to the other. Anything else, such
 * as a scalar set in both or a list in one and a map in the other, is a
 * conflict: it is reported at `later`'s position naming `earlier`'s, and
 * `earlier` is kept. Returns the merged node; new maps and lists are adopted
 * at `earlier`'s position. Never throws.
 */
export function mergeNodes(earlier: Node | null, later: Node | null, path: readonly PathSegment[], host: MergeHost): Node | null {
  if (isEmptyNode(later)) return earlier;
  if (isEmptyNode(earlier)) return later;
  const a = deref(earlier as Node, host);
  const b = deref(later as Node, host);
  if (isMap(a) && isMap(b)) return mergeMaps(a, b, path, host);
  if (isSeq(a) && isSeq(b)) {
    const joined = new YAMLSeq();
    joined.items = [...a.items, ...b.items];
    joined.range = a.range;
    host.adopt(joined, a);
    return joined;
  }
  const first = host.locate(earlier as Node);
  const where = `${first.file}:${first.line}:${first.col}`;
  if (isScalar(a) && isScalar(b)) {
    host.report(
      host.locate(later as Node),
      path,
      `is already set at ${where}, expected each value in one file only (lists from several files are joined and maps merged, but a single value cannot be set twice)`,
    );
  } else {
    host.report(
      host.locate(later as Node),
      path,
      `is ${shapeOf(b)} here but ${shapeOf(a)} at ${where}, expected the same shape in every file so the two can be merged`,
    );
  }
  return earlier;
}

function mergeMaps(a: YAMLMap, b: YAMLMap, path: readonly PathSegment[], host: MergeHost): YAMLMap {
  const merged = new YAMLMap();
  merged.range = a.range;
  merged.flow = a.flow;
  host.adopt(merged, a);
  const index = new Map<string, number>();
  for (const pair of a.items) {
    const key = keyOf(pair.key);
    if (key !== null) index.set(key, merged.items.length);
    merged.items.push(pair);
  }
  for (const pair of b.items) {
    const key = keyOf(pair.key);
    const at = key === null ? undefined : index.get(key);
    if (key === null || at === undefined) {
      if (key !== null) index.set(key, merged.items.length);
      merged.items.push(pair);
      continue;
    }
    const existing = merged.items[at] as Pair;
    const value = mergeNodes(existing.value as Node | null, pair.value as Node | null, [...path, key], host);
    // The earlier key node stays, so the key's position is where it was first written.
    merged.items[at] = new Pair(existing.key, value);
  }
  return merged;
}

/** The text of a plain key; null for keys that are not scalars (the validator reports those). */
function keyOf(key: unknown): string | null {
  if (!isScalar(key) || key.value === null || typeof key.value === 'object') return null;
  return String(key.value);
}

function deref(node: Node, host: MergeHost): Node {
  return isAlias(node) ? (host.resolve(node) ?? node) : node;
}

/** `key:`, `key: null` and `key: ""` count as absent everywhere (see validate.ts), so they never conflict. */
function isEmptyNode(node: Node | null | undefined): boolean {
  return node === null || node === undefined || (isScalar(node) && (node.value === null || node.value === ''));
}

function shapeOf(node: Node): string {
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  return 'a single value';
}
