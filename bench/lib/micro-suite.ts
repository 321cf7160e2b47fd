// Bench only, cold. The contract between bench/*.bench.ts files and the micro
// runner (bench/micro.ts): each file's default export registers cases; the
// runner times them with tinybench and measures bytes allocated per call.

/**
 * One measured operation. `fn` performs exactly one operation and returns a
 * number derived from its result, which the runner folds into a sink so V8
 * cannot drop the call as dead code.
 */
export interface MicroCase {
  /** The hot-path piece: parse, lookup, route, build, handleQuery. */
  readonly group: string;
  readonly name: string;
  readonly fn: () => number;
}

/** Adds a case; called by a bench file's register function. */
export type AddCase = (group: string, name: string, fn: () => number) => void;

/** What a bench/*.bench.ts file exports by default. */
export type RegisterCases = (add: AddCase) => void;
