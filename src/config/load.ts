// Cold path, main thread. The entry points of the config module: read a file
// (after the permission check), or take text, and return the validated,
// normalised, deep-frozen Config; start-up, reload and `config validate` all
// come through parseConfigText.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { buildConfig, checkCrossReferences } from './build.ts';
import { CONFIG_SCHEMA } from './definition.ts';
import type { ConfigFile } from './definition.ts';
import { checkConfigFilePermissions, readError } from './permissions.ts';
import { ProblemCollector } from './problem-collector.ts';
import { ConfigError } from './problems.ts';
import type { Unchecked, Value } from './schema.ts';
import type { Config } from './types.ts';
import { validateDocument } from './validate.ts';

export { ConfigError } from './problems.ts';
export type { ConfigProblem } from './problems.ts';

/**
 * Loads the config file at `path`: checks its permissions, reads it as UTF-8
 * and hands it to parseConfigText. Rejects with ConfigError: _PERMISSIONS for
 * an unsafe mode, _READ when the file is missing or unreadable, _INVALID with
 * every problem of the content.
 */
export async function loadConfigFile(path: string): Promise<Config> {
  // TODO(config): pass holdsSecret: true once the file can carry secrets (gossip keys, tokens).
  await checkConfigFilePermissions(path, { holdsSecret: false });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw readError(path, err);
  }
  return parseConfigText(text, path);
}

/**
 * Parses, validates and normalises config text; `file` names it in messages
 * and its absolute form becomes Config.source. Reports YAML syntax errors, or
 * else every schema and cross-reference problem, all at once. Returns a
 * deep-frozen Config; throws ConfigError (OPENGSLB_ERR_CONFIG_INVALID) whose
 * `problems` lists each problem with its line and column.
 */
export function parseConfigText(text: string, file: string): Config {
  const sink = new ProblemCollector(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // After a syntax error the tree is a guess; schema problems found in it would mislead.
    for (const err of doc.errors) sink.report(lineCounter.linePos(err.pos[0]), [], `${err.message}, expected valid YAML`);
    throw new ConfigError('OPENGSLB_ERR_CONFIG_INVALID', sink.problems);
  }
  const tree = validateDocument(doc, lineCounter, CONFIG_SCHEMA, sink) as Unchecked<ConfigFile> | undefined;
  if (tree !== undefined) checkCrossReferences(tree, sink);
  if (tree === undefined || sink.problems.length > 0) throw new ConfigError('OPENGSLB_ERR_CONFIG_INVALID', sink.problems);
  // No problem was reported, so every value is present and valid.
  return buildConfig(tree as Value<ConfigFile>, resolve(file));
}
