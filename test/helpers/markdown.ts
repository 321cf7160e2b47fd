// Test helper. Finds the YAML examples of Markdown docs and the config files
// of config/, for the tests that keep docs and examples valid.

import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, with a trailing separator. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** First line of a block that is not a whole config (a fragment, or an example of an error). */
export const NOT_A_CONFIG = /^# not-a-config\b/;
/** First line of a block that shows a file of the repository verbatim: `# file: config/x/main.yaml`. */
export const FILE_BLOCK = /^# file: (\S+)\s*$/;

/** One ```yaml block: the line its content starts on (1-based) and its text. */
export interface YamlBlock {
  readonly line: number;
  readonly text: string;
}

/** Returns every ```yaml block of a Markdown text whose fence starts a line, with the line its content starts on. */
export function yamlBlocks(markdown: string): YamlBlock[] {
  const blocks: YamlBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ya?ml\s*$/.test(lines[i] ?? '')) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? '')) end++;
    blocks.push({ line: start + 1, text: lines.slice(start, end).join('\n') });
    i = end;
  }
  return blocks;
}

/** Lists the files under `dir` (relative to the root) whose names end with `suffix`, recursively, sorted. */
export async function filesUnder(dir: string, suffix: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(join(ROOT, dir), { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}

/**
 * Lists the whole configs of config/: each top-level YAML file, and the
 * main.yaml of each directory (its other files are includes, not configs).
 */
export async function configEntryFiles(): Promise<string[]> {
  const all = await filesUnder('config', '.yaml');
  return all.filter((f) => /^config\/[^/]+\.yaml$/.test(f) || /^config\/[^/]+\/main\.yaml$/.test(f));
}

/** Splits a documented command line into words as sh would for such lines (double and single quotes, no expansions). */
export function shellWords(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}
