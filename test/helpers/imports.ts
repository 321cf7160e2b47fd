// Walks a set of modules' value imports transitively (type-only imports do
// not load anything at run time) and lists every import that leaves an
// allowed set: the check behind "this side of the tree stays worker-safe".

import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The specifiers a file imports for their values. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*import\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)]
    .filter((m) => !/^\s*import\s+type\s/.test(m[0]))
    .map((m) => m[1] as string);
}

/**
 * Follows the relative imports of `entries` (absolute paths) through files
 * whose repository-relative path matches one of `allowed`, and checks every
 * package import against `packages`. Returns the offending imports, one line
 * each ("a.ts imports b.ts", "a.ts imports package p"), and how many files
 * it walked.
 */
export function importViolations(entries: readonly string[], allowed: readonly RegExp[], packages: ReadonlySet<string>): { bad: string[]; walked: number } {
  const queue = [...entries];
  const seen = new Set<string>();
  const bad: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of importsOf(file)) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec);
        const rel = relative(repoRoot, target);
        if (!allowed.some((re) => re.test(rel))) bad.push(`${relative(repoRoot, file)} imports ${rel}`);
        else queue.push(target);
      } else if (!packages.has(spec)) {
        bad.push(`${relative(repoRoot, file)} imports package ${spec}`);
      }
    }
  }
  return { bad, walked: seen.size };
}
