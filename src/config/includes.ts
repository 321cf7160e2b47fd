// Cold path, main thread. Reads a config file and everything it includes into
// one merged YAML tree: permission check and read of each file, YAML parse,
// ${VAR} expansion, `includes:` globbing with cycle and depth checks, then the
// merge (merge.ts). Every node remembers its file, so problems anywhere in the
// tree are reported as file:line:col of the file they came from. After the
// read, every file and glob is looked at again; if any changed meanwhile, the
// whole load is read again (READ_ATTEMPTS), so one load never mixes versions.

import { isUtf8 } from 'node:buffer';
import { constants } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { lstat, open, readlink, realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Composer, Document, isAlias, isMap, isNode, isScalar, isSeq, LineCounter, Parser, visit, YAMLParseError } from 'yaml';
import type { Alias, CST, DocumentOptions, Node, ParseOptions, Scalar, SchemaOptions } from 'yaml';
import { expandEnv } from './env.ts';
import type { Environment } from './env.ts';
import { matchGlob } from './glob.ts';
import { mergeNodes } from './merge.ts';
import type { MergeHost } from './merge.ts';
import { readError, unsafeModeProblem, wholeFile } from './permissions.ts';
import { formatPath } from './problem-collector.ts';
import type { PathSegment, Pos } from './problem-collector.ts';
import type { ConfigErrorCode, ConfigProblem } from './problems.ts';
import type { NodeOrigins } from './validate.ts';

/** Deepest nesting of includes: the main file is level 0, a file it includes level 1, and so on. */
export const MAX_INCLUDE_DEPTH = 10;

/** Files larger than this are refused unread: a config file is kilobytes, and a mistaken include of a log or disk image should not fill memory. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Most nodes the aliases of one file may stand for. Each alias counts as every
 * node it stands for, aliases inside it included, so a few hundred bytes of
 * nested aliases ("billion laughs") cannot make the validator walk, and report
 * on, millions of nodes. A config that shares a health check or a region list
 * among thousands of domains stays far below it.
 */
export const MAX_ALIAS_NODES = 100_000;

/**
 * Deepest nesting of maps and lists in one file (the root map is level 1). A
 * real config nests about 8 deep. The YAML composer and the walks after it
 * recurse once per level, so a file of a thousand "[" would otherwise end in
 * a stack overflow instead of a message.
 */
export const MAX_NESTING_DEPTH = 100;

/**
 * Loads made before one is given up when a file changes while it is read (an
 * editor's save that writes in several steps, or an edit landing between two
 * fragments) or is empty (a save between its truncate and its write): the
 * whole load is read again after a pause of 10, 20, 40 ms.
 */
export const READ_ATTEMPTS = 4;

/**
 * Points in a load where a test makes a real change to the files, to see the
 * change caught deterministically. Never set outside tests.
 */
export interface ReadHooks {
  /** After `name` is opened and its handle stat'ed, before its real path is taken. */
  readonly afterOpen?: (name: string, attempt: number) => Promise<void>;
  /** After every file of a load is read, before they are checked for changes. */
  readonly afterRead?: (attempt: number) => Promise<void>;
}

/** How to include a file that is empty on purpose: a 0-byte file is what an editor's save (truncate, then write) leaves for a moment. */
const EMPTY_FILE_HINT = 'a file caught between an editor\'s truncate and write? A file meant to be empty holds a comment such as "# nothing yet"';

/** The tags of the YAML 1.2 core schema: the only ones read; any other tag is reported, not ignored. */
const CORE_TAGS = '!!str, !!int, !!float, !!bool, !!null, !!map and !!seq';

/** One file that was read. */
export interface SourceFile {
  /** The path as messages show it: the main file as given, each include joined onto the directory of the file that includes it. */
  readonly name: string;
  /** Absolute path with symlinks resolved; two names for one file are the same file. */
  readonly real: string;
  /** Permission bits from the open file; null for text handed in directly. */
  readonly mode: number | null;
  readonly doc: Document;
  readonly lineCounter: LineCounter;
  /** The node each alias of the file stands for, found in one pass (Alias.resolve walks the whole document per call). */
  readonly aliases: Map<Alias, Node>;
}

type Code = ConfigErrorCode;

/** The merged tree of a main file and its includes, with what went wrong reading them. */
export interface ConfigSources {
  /** Every file read, in load order: the main file first, then each include depth-first, in sorted order per pattern. */
  readonly files: readonly SourceFile[];
  /** The merged content; null when the main file is empty or could not be read. */
  readonly root: Node | null;
  /** Where each node of `root` came from. */
  readonly origins: SourceOrigins;
  /** Every problem found while reading, expanding and merging. */
  readonly problems: readonly ConfigProblem[];
  /** The error code those problems call for: _READ, else _PERMISSIONS, else _INVALID; null when there are none. */
  readonly code: Code | null;
  /**
   * True when a file could not be used at all (unreadable, YAML syntax,
   * unsafe permissions, include cycle or depth): the merged tree lacks its
   * content, so checking the tree against the schema would report misleading
   * problems (a region "missing" because its file did not parse).
   */
  readonly incomplete: boolean;
}

/** NodeOrigins over several files, plus what the loader needs to decide about secrets. */
export interface SourceOrigins extends NodeOrigins {
  /** The file a node was written in. */
  fileOf(node: unknown): SourceFile | undefined;
  /** True when the scalar's whole value came from environment variables, so its file does not hold the value. */
  fromEnvOnly(node: unknown): boolean;
}


/** The include entry that led to a file: where it was written, and the chain of files above it. */
interface IncludeSite {
  readonly from: SourceFile;
  readonly pos: Pos;
  readonly path: readonly PathSegment[];
  /** The file that includes, then its includer, up to the main file. */
  readonly chain: readonly SourceFile[];
}

/** One entry of a file's `includes:` list, after expansion. */
interface IncludePattern {
  readonly pattern: string;
  readonly pos: Pos;
  readonly index: number;
}

const CODE_RANK: Readonly<Record<Code, number>> = {
  OPENGSLB_ERR_CONFIG_READ: 3,
  OPENGSLB_ERR_CONFIG_PERMISSIONS: 2,
  OPENGSLB_ERR_CONFIG_INVALID: 1,
};

/**
 * Reads the file `mainPath` and every file it includes, and merges them,
 * expanding ${VAR} from `env`. Never throws for bad input: every problem is in
 * the result, with `incomplete` set when the tree misses a file's content.
 */
export async function readConfigSources(mainPath: string, env: Environment, hooks: ReadHooks = {}): Promise<ConfigSources> {
  for (let attempt = 1; ; attempt++) {
    const reader = new SourceReader(env, hooks, attempt);
    const roots = await reader.readFile(mainPath, undefined);
    await hooks.afterRead?.(attempt);
    // Every file must still be the one read, with the bytes read: else the tree may mix two versions of it, or of the set.
    const changed = [...(await reader.changedFiles()), ...(await reader.changedGlobs())];
    // A 0-byte file is most often a save between its truncate and its write: read again before refusing it.
    if (changed.length === 0 && (!reader.sawEmpty || attempt >= READ_ATTEMPTS)) return sourcesOf(reader, roots);
    if (attempt >= READ_ATTEMPTS) return changedSources(reader, changed);
    await sleep(10 * 2 ** (attempt - 1));
  }
}

/** What kept changing while a load read it: a file by name, or an include entry whose glob matched other files. */
type Change = string | ConfigProblem;

/** The result of a load given up because `changed` kept changing while it was read: nothing of it is used. */
function changedSources(reader: SourceReader, changed: readonly Change[]): ConfigSources {
  const message = `changed while being read, ${READ_ATTEMPTS} loads in a row, expected it to stay the same during a reload; retry once its writer is done (a save that writes a new file and renames it over the old one is never seen half-written)`;
  return {
    files: reader.files,
    root: null,
    origins: reader.origins,
    problems: changed.map((c) => (typeof c === 'string' ? wholeFile(c, message) : c)),
    code: 'OPENGSLB_ERR_CONFIG_READ',
    incomplete: true,
  };
}

/**
 * Reads config text that does not come from disk (tests, docs examples) as
 * readConfigSources reads a file, naming it `name` in messages; `includes:` is
 * reported, not followed.
 */
export function readConfigText(text: string, name: string, env: Environment): ConfigSources {
  const reader = new SourceReader(env, {}, 1);
  const parsed = reader.parseText(name, text, null, resolve(name), undefined);
  return sourcesOf(reader, parsed === null || parsed.root === null ? [] : [parsed.root]);
}

function sourcesOf(reader: SourceReader, roots: readonly Node[]): ConfigSources {
  let root: Node | null = null;
  for (const next of roots) root = root === null ? next : mergeNodes(root, next, [], reader.mergeHost);
  return {
    files: reader.files,
    root,
    origins: reader.origins,
    problems: reader.problems,
    code: reader.code,
    incomplete: reader.incomplete,
  };
}

/** A file as it was when read: the identity and version of the open handle, and the bytes read (null when refused before reading). */
interface ReadVersion {
  readonly name: string;
  readonly stats: BigIntStats;
  readonly bytes: Buffer | null;
}

/** True when two stats of a path are of the same file in the same version. */
function sameVersion(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

class SourceReader {
  readonly files: SourceFile[] = [];
  readonly problems: ConfigProblem[] = [];
  code: Code | null = null;
  incomplete = false;
  /** True when a file read was empty (0 bytes). */
  sawEmpty = false;
  readonly #env: Environment;
  readonly #fileOf = new WeakMap<object, SourceFile>();
  /** Text before expansion of each scalar that ${VAR} expansion changed; 'failed' when it could not be expanded. */
  readonly #expandedFrom = new WeakMap<object, string | 'failed'>();
  readonly #envOnly = new WeakSet<object>();
  /** Files already read, by real path, with the include entry that first read them. */
  readonly #seen = new Map<string, { file: SourceFile; site: IncludeSite | undefined }>();
  readonly origins: SourceOrigins;
  readonly mergeHost: MergeHost;
  readonly #hooks: ReadHooks;
  readonly #attempt: number;
  /** Every file opened, as it was read, in load order. */
  readonly #versions: ReadVersion[] = [];
  /** Files seen to change while this load read them. */
  readonly #changed = new Set<string>();
  /** Every glob include entry followed, with the files it matched. */
  readonly #globs: { pattern: string; baseDir: string; files: readonly string[]; site: IncludeSite }[] = [];

  constructor(env: Environment, hooks: ReadHooks, attempt: number) {
    this.#env = env;
    this.#hooks = hooks;
    this.#attempt = attempt;
    const locate = (node: Node): Pos | undefined => {
      const file = this.#fileOf.get(node);
      if (file === undefined || !node.range) return undefined;
      return { ...file.lineCounter.linePos(node.range[0]), file: file.name };
    };
    const resolveAlias = (alias: Alias): Node | undefined => {
      return this.#fileOf.get(alias)?.aliases.get(alias);
    };
    this.origins = {
      locate,
      resolve: resolveAlias,
      expandedFrom: (node: Scalar) => this.#expandedFrom.get(node),
      fileOf: (node: unknown) => (typeof node === 'object' && node !== null ? this.#fileOf.get(node) : undefined),
      fromEnvOnly: (node: unknown) => typeof node === 'object' && node !== null && this.#envOnly.has(node),
    };
    this.mergeHost = {
      locate: (node: Node): Pos => locate(node) ?? { line: 1, col: 1 },
      resolve: resolveAlias,
      adopt: (made: Node, from: Node): void => {
        const file = this.#fileOf.get(from);
        if (file !== undefined) this.#fileOf.set(made, file);
      },
      report: (pos: Pos, path: readonly PathSegment[], message: string): void => {
        this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: pos.file ?? '', line: pos.line, col: pos.col, path: formatPath(path), message });
      },
    };
  }

  #problem(code: Code, problem: ConfigProblem, makesIncomplete = false): void {
    this.problems.push(problem);
    if (this.code === null || CODE_RANK[code] > CODE_RANK[this.code]) this.code = code;
    if (makesIncomplete) this.incomplete = true;
  }

  /** Reports a problem about an include entry at its position, or about the whole file when there is no entry (the main file). */
  #problemAt(code: Code, site: IncludeSite | undefined, name: string, message: string, makesIncomplete: boolean): void {
    if (site === undefined) this.#problem(code, wholeFile(name, message), makesIncomplete);
    else this.#problem(code, { file: site.from.name, line: site.pos.line, col: site.pos.col, path: formatPath(site.path), message: `${name} ${message}` }, makesIncomplete);
  }

  /**
   * Reads one file and, depth-first, the files it includes. Returns the roots
   * to merge, this file's first.
   */
  async readFile(name: string, site: IncludeSite | undefined, expectedReal?: string): Promise<Node[]> {
    const read = await this.#readFromDisk(name, site);
    if (read === null) return [];
    // The cycle and duplicate checks were made on the real path found before the read: it must be the file read.
    if (expectedReal !== undefined && read.real !== expectedReal) this.#changed.add(name);
    const parsed = this.parseText(name, read.text, read.mode, read.real, site);
    if (parsed === null) return [];
    const roots: Node[] = parsed.root === null ? [] : [parsed.root];
    const chain = site === undefined ? [parsed.file] : [parsed.file, ...site.chain];
    for (const p of parsed.patterns) {
      const here: IncludeSite = { from: parsed.file, pos: p.pos, path: ['includes', p.index], chain };
      roots.push(...(await this.#readPattern(parsed.file, p.pattern, here)));
    }
    return roots;
  }

  /**
   * Parses one file's text, expands it and takes its `includes:` out. Returns
   * null after a YAML syntax error. `mode` null means the text did not come
   * from disk: then includes are reported, not returned.
   */
  parseText(name: string, text: string, mode: number | null, real: string, site: IncludeSite | undefined): { file: SourceFile; root: Node | null; patterns: IncludePattern[] } | null {
    const lineCounter = new LineCounter();
    // The parser is iterative and safe at any depth; the composer is not, so the depth is measured in between.
    const tokens = [...new Parser(lineCounter.addNewLine).parse(text)];
    const deepAt = tooDeepAt(tokens);
    const doc = deepAt < 0 ? composeFirstDocument(tokens, text.length) : new Document();
    const file: SourceFile = { name, real, mode, doc, lineCounter, aliases: new Map() };
    this.files.push(file);
    this.#seen.set(real, { file, site });
    if (deepAt >= 0) {
      const message = `maps and lists are nested more than ${MAX_NESTING_DEPTH} levels deep here, expected at most ${MAX_NESTING_DEPTH} levels (a config nests about 8)`;
      this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: name, ...lineCounter.linePos(deepAt), path: '(root)', message }, true);
      return null;
    }
    if (doc.errors.length > 0) {
      // After a syntax error the tree is a guess; schema problems found in it would mislead.
      for (const err of doc.errors) {
        const pos = lineCounter.linePos(err.pos[0]);
        this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: name, ...pos, path: '(root)', message: `${err.message}, expected valid YAML` }, true);
      }
      return null;
    }
    // An alias stands for the latest node before it with its anchor (YAML 1.2 §3.2.2.2); visit()
    // meets nodes in document order, a collection before its items.
    const anchored = new Map<string, Node>();
    visit(doc, {
      Node: (_key, node) => {
        this.#fileOf.set(node, file);
        if (isAlias(node)) {
          const target = anchored.get(node.source);
          if (target !== undefined) file.aliases.set(node, target);
        } else if (node.anchor !== undefined) {
          anchored.set(node.anchor, node);
        }
      },
    });
    const untaggable: Scalar[] = [];
    for (const warning of doc.warnings) {
      // A tag this loader does not understand (an Ansible !vault, !!js/function) must not be read as its plain text.
      const pos = lineCounter.linePos(warning.pos[0]);
      const tag = /^Unresolved tag: (.*)$/.exec(warning.message)?.[1];
      const message = tag === undefined
        ? `${warning.message}, expected valid YAML`
        : `has the tag ${tag.replace(/^tag:yaml\.org,2002:/, '!!')}, which is not understood here, expected a value without a tag (or one of the YAML 1.2 core tags ${CORE_TAGS}, matching its value)`;
      const at = this.#nodeAt(doc, warning.pos[0]);
      this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: name, ...pos, path: formatPath(at.path), message });
      if (tag !== undefined && isScalar(at.node)) untaggable.push(at.node);
    }
    const tooMany = this.#aliasOverflow(file);
    if (tooMany !== null) {
      const pos = this.origins.locate(tooMany) ?? { line: 1, col: 1 };
      this.#problem('OPENGSLB_ERR_CONFIG_INVALID', {
        file: name,
        line: pos.line,
        col: pos.col,
        path: formatPath(this.#nodeAt(doc, tooMany.range?.[0] ?? 0).path),
        message: `*${tooMany.source} brings the nodes the aliases of this file stand for above ${MAX_ALIAS_NODES}, expected aliases that repeat less (each alias counts as every node it stands for)`,
      }, true);
      return null;
    }
    const root = doc.contents as Node | null;
    this.#expandTree(file, root, []);
    // A scalar whose tag was reported has no value to check: the walk skips it as it skips a failed ${VAR}.
    for (const node of untaggable) this.#expandedFrom.set(node, 'failed');
    if (!isMap(root)) return { file, root, patterns: [] };
    const includesPair = root.items.find((p) => isScalar(p.key) && p.key.value === 'includes');
    if (includesPair === undefined) return { file, root, patterns: [] };
    // The includes are this file's business only: they must not be merged with other files' includes.
    root.items = root.items.filter((p) => p !== includesPair);
    const patterns = this.#includePatterns(file, includesPair.value as Node | null);
    if (patterns.length > 0 && mode === null) {
      const pos = this.origins.locate(includesPair.key as Node) ?? { line: 1, col: 1 };
      this.#problem('OPENGSLB_ERR_CONFIG_INVALID', {
        file: name,
        line: pos.line,
        col: pos.col,
        path: 'includes',
        message: 'is followed only when the config is read from a file (opengslb --config FILE, opengslb-cli config validate FILE); this text has no directory to resolve it against',
      });
      return { file, root, patterns: [] };
    }
    return { file, root, patterns };
  }

  /**
   * Returns the first alias at which the nodes the file's aliases stand for
   * pass MAX_ALIAS_NODES, or null. Sizes are memoised, so nested aliases cost
   * one walk of each anchored node; an alias inside the node it names counts as one node.
   */
  #aliasOverflow(file: SourceFile): Alias | null {
    const sizes = new Map<Node, number>();
    const sizeOf = (node: unknown): number => {
      if (!isNode(node)) return 1;
      const known = sizes.get(node);
      if (known !== undefined) return known;
      sizes.set(node, 1); // a cycle through this node counts it once
      let size = 1;
      if (isAlias(node)) size = sizeOf(file.aliases.get(node));
      else if (isMap(node)) for (const pair of node.items) size += sizeOf(pair.key) + sizeOf(pair.value);
      else if (isSeq(node)) for (const item of node.items) size += sizeOf(item);
      sizes.set(node, size);
      return size;
    };
    let total = 0;
    for (const alias of file.aliases.keys()) {
      total += sizeOf(alias);
      if (total > MAX_ALIAS_NODES) return alias;
    }
    return null;
  }

  /**
   * The innermost map value or list item that holds `offset`, and its key
   * path, for messages about a spot in the text. A value's range starts after
   * its tag and anchor, so the child taken is the first one that ends after
   * `offset`, and an offset before its start is in that child's tag.
   */
  #nodeAt(doc: Document, offset: number): { path: PathSegment[]; node: unknown } {
    const path: PathSegment[] = [];
    let node: unknown = doc.contents;
    for (;;) {
      const children: [PathSegment, unknown][] = isMap(node)
        ? node.items.map((pair) => [isScalar(pair.key) ? String(pair.key.value) : '?', pair.value])
        : isSeq(node) ? node.items.map((item, i) => [i, item]) : [];
      const next = children.find(([, child]) => isNode(child) && child.range !== undefined && child.range !== null && offset < child.range[1]);
      if (next === undefined) return { path, node };
      path.push(next[0]);
      node = next[1];
      // Before the child's own text: the offset is in its tag or anchor, so the child is the node.
      if (offset < ((node as Node).range?.[0] ?? 0)) return { path, node };
    }
  }

  /** Opens, checks and reads one file; null (after reporting why) when it cannot be used. */
  async #readFromDisk(name: string, site: IncludeSite | undefined): Promise<{ text: string; mode: number; real: string } | null> {
    let handle;
    try {
      // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, forever, and the
      // load (start-up, every later reload, `config validate`) with it. The fstat below refuses it.
      handle = await open(name, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    } catch (err) {
      const broken = await brokenLink(name, err);
      if (broken !== null) this.#problemAt('OPENGSLB_ERR_CONFIG_READ', site, name, `${broken}, expected a readable YAML config file`, true);
      else this.#readProblem(name, site, err);
      return null;
    }
    try {
      // Stat the open handle, not the path: the mode checked is the mode of the bytes read, and
      // its identity and version are what changedFiles() compares the path with after the load.
      const info = await handle.stat({ bigint: true });
      const version = { name, stats: info, bytes: null as Buffer | null };
      this.#versions.push(version);
      await this.#hooks.afterOpen?.(name, this.#attempt);
      if (!info.isFile()) {
        this.#problemAt('OPENGSLB_ERR_CONFIG_READ', site, name, 'is not a regular file, expected a YAML config file', true);
        return null;
      }
      if (info.size > MAX_FILE_BYTES) {
        this.#problemAt('OPENGSLB_ERR_CONFIG_READ', site, name, `is ${info.size} bytes, expected a config file of at most ${MAX_FILE_BYTES} bytes`, true);
        return null;
      }
      const mode = Number(info.mode);
      const unsafe = unsafeModeProblem(name, mode, {});
      if (unsafe !== null) {
        // A file anyone can write is not read at all: not even its includes are followed.
        this.#problem('OPENGSLB_ERR_CONFIG_PERMISSIONS', unsafe, true);
        return null;
      }
      const bytes = await handle.readFile();
      version.bytes = bytes;
      // A write during the read: the bytes may be half of one version and half of another.
      if (BigInt(bytes.length) !== info.size || !sameVersion(info, await handle.stat({ bigint: true }))) this.#changed.add(name);
      // Checked on the bytes read, not the size stat gave: the file may have been truncated in between.
      if (bytes.length === 0) {
        this.sawEmpty = true;
        this.#problemAt('OPENGSLB_ERR_CONFIG_INVALID', site, name, `is empty (0 bytes), expected YAML (${EMPTY_FILE_HINT})`, true);
        return null;
      }
      const text = this.#decode(name, bytes);
      if (text === null) return null;
      return { text, mode: mode & 0o777, real: await this.#realPathOf(name, info) };
    } catch (err) {
      this.#readProblem(name, site, err);
      return null;
    } finally {
      await handle.close();
    }
  }

  /**
   * The real path of the open file `name`, for the cycle and duplicate
   * checks. Taken by path after the open, so it is checked to lead to the
   * file of the handle (`opened`): when the name was renamed or relinked in
   * between, the file counts as changed and the load is read again.
   */
  async #realPathOf(name: string, opened: BigIntStats): Promise<string> {
    try {
      const real = await realpath(name);
      const there = await stat(real, { bigint: true });
      if (there.dev === opened.dev && there.ino === opened.ino) return real;
    } catch {
      // gone since the open: changed as well
    }
    this.#changed.add(name);
    return resolve(name);
  }

  /**
   * The files that changed while this load read them: seen changing during
   * their own read, or, looked at again by path now, no longer the same file
   * (dev, inode), of the same size and times, or holding the same bytes. The
   * bytes are compared as well because file times may be as coarse as a
   * kernel tick, and a save of the same length within one tick changes neither.
   */
  async changedFiles(): Promise<string[]> {
    const changed = new Set(this.#changed);
    for (const { name, stats, bytes } of this.#versions) {
      if (changed.has(name) || !(await this.#sameAsRead(name, stats, bytes))) changed.add(name);
    }
    return [...changed];
  }

  /**
   * The glob include entries that, matched again now, match other files than
   * when they were followed (a fragment added or removed during the load:
   * moving a domain to a new file would otherwise drop it from both), each
   * reported at its entry.
   */
  async changedGlobs(): Promise<ConfigProblem[]> {
    const out: ConfigProblem[] = [];
    for (const { pattern, baseDir, files, site } of this.#globs) {
      const now = await matchGlob(pattern, baseDir);
      const nowFiles = 'error' in now ? [] : now.files;
      const added = nowFiles.filter((f) => !files.includes(f));
      const gone = files.filter((f) => !nowFiles.includes(f));
      if (added.length === 0 && gone.length === 0 && !('error' in now)) continue;
      const shown = (list: readonly string[]): string => list.map((f) => relative(baseDir, f)).join(', ');
      const what = [added.length > 0 ? `now also ${shown(added)}` : '', gone.length > 0 ? `no longer ${shown(gone)}` : '', 'error' in now ? now.error : ''].filter((w) => w !== '').join('; ');
      out.push({
        file: site.from.name,
        line: site.pos.line,
        col: site.pos.col,
        path: formatPath(site.path),
        message: `${pattern} matched other files while the config was being read (${what}), expected the files it matches to stay the same during a reload; retry once they are in place`,
      });
    }
    return out;
  }

  async #sameAsRead(name: string, stats: BigIntStats, bytes: Buffer | null): Promise<boolean> {
    let handle;
    try {
      handle = await open(name, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    } catch {
      return false;
    }
    try {
      if (!sameVersion(stats, await handle.stat({ bigint: true }))) return false;
      return bytes === null || bytes.equals(await handle.readFile());
    } catch {
      return false;
    } finally {
      await handle.close();
    }
  }

  /**
   * The text of a file's bytes, which must be UTF-8 (a UTF-8 byte-order mark
   * is allowed; YAML skips it). Anything else is reported at the line and
   * column of the first bad byte and gives null: decoding it anyway would turn
   * each bad byte into U+FFFD, and "café" saved as Latin-1 would be served as
   * "caf\uFFFD" without a word.
   */
  #decode(name: string, bytes: Buffer): string | null {
    if (isUtf8(bytes)) return bytes.toString('utf8');
    const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff);
    const at = utf16 ? 0 : firstNonUtf8(bytes);
    const before = bytes.subarray(0, at).toString('utf8');
    const lineStart = before.lastIndexOf('\n') + 1;
    const pos = { line: before.split('\n').length, col: before.length - lineStart + 1 };
    const message = utf16
      ? 'is UTF-16 text (it starts with a UTF-16 byte-order mark), expected a UTF-8 text file (convert it, e.g. iconv -f utf-16 -t utf-8)'
      : `has the byte 0x${(bytes[at] ?? 0).toString(16).toUpperCase().padStart(2, '0')}, which is not UTF-8, expected a UTF-8 text file (convert it, e.g. iconv -f latin1 -t utf-8)`;
    this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: name, ...pos, path: '(root)', message }, true);
    return null;
  }

  #readProblem(name: string, site: IncludeSite | undefined, err: unknown): void {
    const problem = readError(name, err).problems[0];
    if (problem === undefined) return;
    this.#problemAt('OPENGSLB_ERR_CONFIG_READ', site, name, problem.message, true);
  }

  /** Reads the `includes:` value of a file: a list of non-empty texts; anything else is reported and skipped. */
  #includePatterns(file: SourceFile, value: Node | null): IncludePattern[] {
    const out: IncludePattern[] = [];
    // Anchors and aliases work here as anywhere: `includes: *common`, `- *pattern`.
    const deref = (node: Node): Node => (isAlias(node) ? (file.aliases.get(node) ?? node) : node);
    if (value !== null) value = deref(value);
    if (value === null || (isScalar(value) && (value.value === null || value.value === ''))) return out;
    const posOf = (node: Node): Pos => this.origins.locate(node) ?? { line: 1, col: 1, file: file.name };
    const invalid = (node: Node, path: PathSegment[], message: string): void => {
      const pos = posOf(node);
      this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: file.name, line: pos.line, col: pos.col, path: formatPath(path), message });
    };
    if (!isSeq(value)) {
      invalid(value, ['includes'], 'is not a list, expected a list of paths or glob patterns such as ["conf.d/*.yaml"]');
      return out;
    }
    value.items.forEach((item, index) => {
      const node = deref(item as Node);
      if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
        invalid(node, ['includes', index], 'is not a path, expected a path or glob pattern such as "conf.d/*.yaml"');
        return;
      }
      if (this.#expandedFrom.get(node) === 'failed') return;
      out.push({ pattern: node.value, pos: posOf(node), index });
    });
    return out;
  }

  /** Reads every file one include entry names, in sorted order. */
  async #readPattern(file: SourceFile, pattern: string, site: IncludeSite): Promise<Node[]> {
    const baseDir = dirname(resolve(file.name));
    const matched = await matchGlob(pattern, baseDir);
    if ('error' in matched) {
      this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: file.name, line: site.pos.line, col: site.pos.col, path: formatPath(site.path), message: matched.error });
      return [];
    }
    if (matched.isGlob) this.#globs.push({ pattern, baseDir, files: matched.files, site });
    const roots: Node[] = [];
    for (const abs of matched.files) {
      // Show an include the way its includer was named: relative stays relative.
      const name = isAbsolute(pattern) ? abs : join(dirname(file.name), relative(baseDir, abs));
      let real: string;
      try {
        real = await realpath(abs);
      } catch {
        real = abs; // missing: reading it reports that, at the include entry
      }
      const looped = site.chain.findIndex((f) => f.real === real);
      if (looped >= 0) {
        const cycle = [...site.chain.slice(0, looped + 1)].reverse().map((f) => f.name);
        this.#problemAt('OPENGSLB_ERR_CONFIG_INVALID', site, name, `closes an include cycle: ${[...cycle, site.chain[looped]?.name ?? name].join(' → ')}, expected includes that never lead back to a file that includes them`, true);
        continue;
      }
      if (site.chain.length > MAX_INCLUDE_DEPTH) {
        const chain = [...site.chain].reverse().map((f) => f.name);
        this.#problemAt('OPENGSLB_ERR_CONFIG_INVALID', site, name, `is nested too deep: ${[...chain, name].join(' → ')}, expected at most ${MAX_INCLUDE_DEPTH} levels of includes`, true);
        continue;
      }
      const earlier = this.#seen.get(real);
      if (earlier !== undefined) {
        const by = earlier.site === undefined ? 'is the main file' : `is already included at ${earlier.site.from.name}:${earlier.site.pos.line}:${earlier.site.pos.col}`;
        this.#problemAt('OPENGSLB_ERR_CONFIG_INVALID', site, name, `${by}, expected each file included once`, false);
        continue;
      }
      roots.push(...(await this.readFile(name, site, real)));
    }
    return roots;
  }

  /** Expands ${VAR} in every string scalar of a file (map keys excepted), reporting failures at the value. */
  #expandTree(file: SourceFile, node: Node | null, path: PathSegment[]): void {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        this.#expandTree(file, pair.value as Node | null, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => this.#expandTree(file, item as Node | null, [...path, i]));
    } else if (isScalar(node) && typeof node.value === 'string') {
      const before = node.value;
      const result = expandEnv(before, this.#env);
      if ('error' in result) {
        this.#expandedFrom.set(node, 'failed');
        const pos = this.origins.locate(node) ?? { line: 1, col: 1 };
        this.#problem('OPENGSLB_ERR_CONFIG_INVALID', { file: file.name, line: pos.line, col: pos.col, path: formatPath(path), message: result.error });
        return;
      }
      if (!result.changed) return;
      node.value = result.text;
      this.#expandedFrom.set(node, before);
      if (result.fromEnvOnly) this.#envOnly.add(node);
    }
    // Aliases are skipped: the node they point at is expanded where it is written.
  }
}

// The core schema whatever a %YAML 1.1 directive says (so `yes` stays text and `<<` a plain
// key, as the docs promise), and no YAML 1.1 tags (!!binary, !!set, !!timestamp): they warn.
const COMPOSE_OPTIONS: DocumentOptions & ParseOptions & SchemaOptions = { prettyErrors: false, uniqueKeys: true, schema: 'core', resolveKnownTags: false };

/** Composes the first document of parsed tokens, as yaml's parseDocument does (a second document is an error). */
function composeFirstDocument(tokens: readonly CST.Token[], length: number): Document {
  let doc: Document | undefined;
  // forceDoc: compose() always yields a document, an empty one for empty text.
  for (const next of new Composer(COMPOSE_OPTIONS).compose(tokens, true, length)) {
    if (doc === undefined) {
      doc = next;
    } else {
      doc.errors.push(new YAMLParseError([next.range[0], next.range[1]], 'MULTIPLE_DOCS', 'Source contains multiple documents; please use YAML.parseAllDocuments()'));
      break;
    }
  }
  return doc ?? new Document();
}

/**
 * Returns the offset of a map or list nested deeper than MAX_NESTING_DEPTH in
 * parsed tokens, or -1. Walks with its own stack: a recursive walk would
 * overflow on the very input it is measuring.
 */
function tooDeepAt(tokens: readonly CST.Token[]): number {
  const stack: { token: CST.Token; depth: number }[] = tokens.map((token) => ({ token, depth: 0 }));
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const { token, depth } = top;
    if (token.type === 'document') {
      if (token.value !== undefined) stack.push({ token: token.value, depth });
      continue;
    }
    if (token.type !== 'block-map' && token.type !== 'block-seq' && token.type !== 'flow-collection') continue;
    if (depth >= MAX_NESTING_DEPTH) return token.offset;
    for (const item of token.items) {
      if ('key' in item && item.key !== undefined && item.key !== null) stack.push({ token: item.key, depth: depth + 1 });
      if (item.value !== undefined) stack.push({ token: item.value, depth: depth + 1 });
    }
  }
  return -1;
}

/**
 * Offset of the first byte of `bytes` that does not belong to a well-formed
 * UTF-8 sequence (RFC 3629 §4: no overlong forms, no surrogates, nothing
 * above U+10FFFF); bytes.length when there is none.
 */
function firstNonUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] ?? 0;
    if (b < 0x80) {
      i++;
      continue;
    }
    // The sequence's length and the range its second byte must be in (the rest: 0x80..0xBF).
    const [n, lo, hi] = b >= 0xc2 && b <= 0xdf ? [2, 0x80, 0xbf]
      : b === 0xe0 ? [3, 0xa0, 0xbf]
      : b === 0xed ? [3, 0x80, 0x9f]
      : b >= 0xe1 && b <= 0xef ? [3, 0x80, 0xbf]
      : b === 0xf0 ? [4, 0x90, 0xbf]
      : b === 0xf4 ? [4, 0x80, 0x8f]
      : b >= 0xf1 && b <= 0xf3 ? [4, 0x80, 0xbf]
      : [0, 0, 0];
    if (n === 0) return i;
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n;
  }
  return bytes.length;
}

/**
 * What is wrong with `name` when opening it failed with `err` because it is a
 * symbolic link that leads to nothing ("does not exist" would puzzle whoever
 * sees it in ls); null when it is not such a link.
 */
async function brokenLink(name: string, err: unknown): Promise<string | null> {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ENOENT' && code !== 'ELOOP') return null;
  try {
    if (!(await lstat(name)).isSymbolicLink()) return null;
    return code === 'ELOOP' ? 'is a symbolic link that loops' : `is a symbolic link to ${await readlink(name)}, which does not exist`;
  } catch {
    return null;
  }
}
