// Cold path, main thread. The entry points of the config module: read a main
// file and its includes (includes.ts), or take text, validate the merged tree
// against the definition, cross-check it, check the permissions of files that
// hold secrets, and return the normalised, deep-frozen Config. Start-up,
// reload and `config validate` all come through validateSources.

import { resolve } from 'node:path';
import { buildConfig, checkCrossReferences } from './build.ts';
import { CONFIG_SCHEMA } from './definition.ts';
import type { ConfigFile } from './definition.ts';
import type { Environment } from './env.ts';
import { readConfigSources, readConfigText } from './includes.ts';
import type { ConfigSources } from './includes.ts';
import { unsafeModeProblem } from './permissions.ts';
import { ProblemCollector } from './problem-collector.ts';
import { ConfigError, sortProblems } from './problems.ts';
import type { ConfigErrorCode, ConfigProblem } from './problems.ts';
import type { Unchecked, Value } from './schema.ts';
import type { Config, RunMode } from './types.ts';
import { validateTree } from './validate.ts';

export { ConfigError } from './problems.ts';
export type { ConfigProblem } from './problems.ts';

/** How to load. */
export interface LoadOptions {
  /** Variables for ${VAR} expansion; process.env when absent. */
  readonly env?: Environment;
  /** The --mode flag: validates for this mode and sets Config.mode, whatever `mode:` the file has. */
  readonly mode?: RunMode;
}

/** A loaded configuration and the files it was read from. */
export interface LoadedConfig {
  readonly config: Config;
  /** Every file read, main first, then includes in the order they were merged, named as messages name them. */
  readonly files: readonly string[];
  /** What loads but is most likely not meant (ProblemCollector.warnings), in file order: start, reload and `config validate` print them. */
  readonly warnings: readonly ConfigProblem[];
}

/**
 * Loads the config file at `path` with everything it includes: each file's
 * permissions are checked and it is read, parsed and ${VAR}-expanded; the
 * files are merged and validated as one. Rejects with ConfigError carrying
 * every problem found, each with the file it is in: code _READ when a file
 * is missing or unreadable, else _PERMISSIONS for an unsafe mode, else
 * _INVALID.
 */
export async function loadConfig(path: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  const sources = await readConfigSources(path, opts.env ?? process.env);
  const { config, warnings } = validateSources(sources, path, opts.mode);
  return { config, files: sources.files.map((f) => f.name), warnings };
}

/** Loads the config file at `path` as loadConfig does and returns the Config alone. */
export async function loadConfigFile(path: string, opts: LoadOptions = {}): Promise<Config> {
  return (await loadConfig(path, opts)).config;
}

/**
 * Parses, validates and normalises config text; `file` names it in messages
 * and its absolute form becomes Config.source. `includes:` is reported, not
 * followed (there is no directory to resolve it against), and no permission
 * is checked. Returns a deep-frozen Config; throws ConfigError
 * (OPENGSLB_ERR_CONFIG_INVALID) whose `problems` lists each problem with its
 * line and column.
 */
export function parseConfigText(text: string, file: string, opts: LoadOptions = {}): Config {
  return validateSources(readConfigText(text, file, opts.env ?? process.env), file, opts.mode).config;
}

/**
 * Validates merged sources: unless a file could not be used (then the
 * reading problems alone are reported), walks the tree against the schema,
 * cross-checks it, and refuses world-readable files that write a secret.
 * Returns the built Config and the warnings (sorted as problems are);
 * throws ConfigError with every problem otherwise.
 */
function validateSources(sources: ConfigSources, mainName: string, mode: RunMode | undefined): { config: Config; warnings: ConfigProblem[] } {
  const sink = new ProblemCollector(mainName);
  sink.problems.push(...sources.problems);
  let code: ConfigErrorCode | null = sources.code;
  const fail = (): ConfigError =>
    new ConfigError(code ?? 'OPENGSLB_ERR_CONFIG_INVALID', sink.problems, { fileOrder: sources.files.map((f) => f.name) });
  if (sources.incomplete) throw fail();

  const tree = validateTree(sources.root, sources.origins, CONFIG_SCHEMA, sink, mode) as Unchecked<ConfigFile> | undefined;
  if (tree !== undefined && mode !== undefined) (tree as { mode: RunMode }).mode = mode;
  if (tree !== undefined) checkCrossReferences(tree, sink);

  // A secret written in a file makes that file secret; one problem per file, naming the first secret in it.
  const reported = new Set<string>();
  for (const secret of sink.secrets) {
    const file = sources.origins.fileOf(secret.node);
    if (file === undefined || file.mode === null || reported.has(file.name) || sources.origins.fromEnvOnly(secret.node)) continue;
    const problem = unsafeModeProblem(file.name, file.mode, { secret: { path: secret.path, line: secret.pos.line } });
    if (problem === null) continue;
    reported.add(file.name);
    sink.problems.push(problem);
    if (code !== 'OPENGSLB_ERR_CONFIG_READ') code = 'OPENGSLB_ERR_CONFIG_PERMISSIONS';
  }

  if (tree === undefined || sink.problems.length > 0) throw fail();
  // No problem was reported, so every value is present and valid.
  const warnings = sortProblems(sink.warnings, sources.files.map((f) => f.name));
  return { config: buildConfig(tree as Value<ConfigFile>, resolve(mainName)), warnings };
}
