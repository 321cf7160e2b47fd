// Packaging, not the server: run by `npm pack` (the prepack script) and the
// Docker build. Writes dist/, the plain JavaScript an installed package runs:
// Node strips TypeScript from files in a clone but refuses to under
// node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING). The .ts sources
// stay the only truth; dist/ is never edited and never committed.
//
//   src/**, workers/**  ──strip types (module.stripTypeScriptTypes, mode "strip")──►  dist/src/**, dist/workers/**
//                       ──'./x.ts' → './x.js' in every quoted relative path──►
//
// Why this and not tsc: mode "strip" is the very transform Node applies when it
// runs the sources in a clone, and it blanks types in place, so every line and
// column of dist/ is that of its .ts file and a stack trace from an installed
// server points into the sources of that version without source maps. The
// extension rewrite keeps lengths too. tsc's rewriteRelativeImportExtensions
// reprints the code (lines move) and rewrites import specifiers only, not the
// worker entries started as new URL('./x.ts', import.meta.url).
//
// It also builds the batched-UDP addon's prebuilt binary, which the package
// ships in native/prebuilds/ (package.json "files") so an install needs no
// compiler: on linux-x64 with glibc only (the one prebuilt target), with
// node-gyp from native/binding.gyp; elsewhere it says so and builds none.
//
//   native/{binding.gyp,udp_batch.c} ──copy──► <tmp>/ ──node-gyp──► <tmp>/build/Release/opengslb_udp.node
//                                   ──copy, rename──► native/prebuilds/linux-x64-glibc/
//
// Never in place: a server or a test running from this checkout may have
// native/build/Release/'s addon or the prebuilt loaded, and a shared library
// rewritten under a process that maps it kills that process (SIGBUS, no
// message). `npm pack` in test/package did that, now and then, to the test
// file running beside it (test/registry/registry.test.ts died at file level
// with no message while its DNS workers were loading the addon).
//
//   node scripts/build-dist.ts [--out DIR] [--no-native]   DIR defaults to dist (relative to the repository)

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as nodeModule from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** The folders whose code runs (DESIGN.md): the main thread's and the DNS workers', and the addon's JS module. */
export const BUILT_FOLDERS = ['src', 'workers', 'native'] as const;

/**
 * Folders of which only the TypeScript is built: native/ ships its C source,
 * build file, install script and binaries from native/ itself.
 */
const TS_ONLY_FOLDERS: ReadonlySet<string> = new Set(['native']);

/**
 * The entry points and their Node-version guard: plain JavaScript that the
 * package ships as it is, in its src/cli/ (package.json "bin" and "files"),
 * and that loads dist/src/cli/*-main.js when no .ts source is beside it.
 */
export const SHIPPED_AS_IS = /^src\/cli\/[^/]+\.js$/;

const ROOT = resolve(import.meta.dirname, '..');

// A quoted path that starts with ./ or ../ and ends in .ts: every relative
// module reference (import, export … from, import(), new URL(…, import.meta.url)).
// Replacing ".ts" by ".js" keeps the length, so columns do not move.
const RELATIVE_TS = /(['"])(\.{1,2}\/[^'"\n]*?)\.ts\1/g;
// The forms that name a module or a file next to the code; each target must exist in the output.
const REFERENCE = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bnew URL\(\s*)(['"])(\.{1,2}\/[^'"\n]+)\1/g;

type StripTypes = (code: string, options: { mode: 'strip' }) => string;

/** Returns `code` without its TypeScript types, blanked in place; throws Node's ERR_INVALID_TYPESCRIPT_SYNTAX / ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX naming nothing but the position. */
function stripTypes(code: string): string {
  const strip = (nodeModule as { stripTypeScriptTypes?: StripTypes }).stripTypeScriptTypes;
  if (typeof strip !== 'function') throw new Error(`build-dist: this Node.js (${process.version}) has no module.stripTypeScriptTypes; run it with Node.js >= 22.13 (npm runs the project's pinned Node 24)`);
  // Node 24 prints an ExperimentalWarning for this function once per process; the build's one summary line says what happened.
  const emit = process.emitWarning;
  process.emitWarning = (() => {}) as typeof process.emitWarning;
  try {
    return strip(code, { mode: 'strip' });
  } finally {
    process.emitWarning = emit;
  }
}

/** Returns `code` with './x.ts' and '../y.ts' in quotes rewritten to .js, same length. */
export function rewriteExtensions(code: string): string {
  return code.replace(RELATIVE_TS, (_m, q: string, path: string) => `${q}${path}.js${q}`);
}

/** Lists the files under `dir` of `root`, recursively, as /-separated paths relative to root; none when dir is absent. */
function filesUnder(root: string, dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(join(root, dir), { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)).split('\\').join('/'))
    .sort();
}

/** Returns the 1-based line of offset `at` in `text`. */
function lineOf(text: string, at: number): number {
  let line = 1;
  for (let i = 0; i < at; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

export interface BuildResult {
  readonly outDir: string;
  /** Files written, relative to outDir. */
  readonly files: readonly string[];
}

/**
 * Builds the runnable JavaScript tree of the repository at `root` into
 * `outDir` (emptied first): every .ts of BUILT_FOLDERS type-stripped to .js, every other file copied, relative
 * '.ts' references rewritten to '.js', and a package.json carrying the
 * version (src/cli/version.ts and src/health/probe.ts read
 * ../../package.json, which is dist/package.json from dist/src/*). Throws when
 * a file cannot be stripped (Node's error, with the file named) or when a
 * reference points at a file the output lacks ("FILE:LINE: … not in the build").
 */
export function buildDist(outDir: string, root = ROOT): BuildResult {
  rmSync(outDir, { recursive: true, force: true });
  const written: string[] = [];
  for (const folder of BUILT_FOLDERS) {
    for (const file of filesUnder(root, folder)) {
      if (SHIPPED_AS_IS.test(file)) continue;
      const from = join(root, file);
      const isTs = file.endsWith('.ts') && !file.endsWith('.d.ts');
      if (TS_ONLY_FOLDERS.has(folder) && !isTs) continue;
      const target = isTs ? file.slice(0, -3) + '.js' : file;
      mkdirSync(dirname(join(outDir, target)), { recursive: true });
      if (!isTs && !file.endsWith('.js')) {
        copyFileSync(from, join(outDir, target));
      } else {
        const text = readFileSync(from, 'utf8');
        let js: string;
        try {
          js = isTs ? stripTypes(text) : text;
        } catch (err) {
          throw new Error(`build-dist: ${file}: ${(err as Error).message}`);
        }
        writeFileSync(join(outDir, target), rewriteExtensions(js));
      }
      written.push(target);
    }
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
  const distPkg = { name: `${pkg.name}-dist`, version: pkg.version, private: true, type: 'module', description: 'Generated by scripts/build-dist.ts from the sources; do not edit.' };
  writeFileSync(join(outDir, 'package.json'), JSON.stringify(distPkg, null, 2) + '\n');
  written.push('package.json');

  // Every module or file the built code names by a relative path must be in the build.
  const present = new Set(written);
  const missing: string[] = [];
  for (const file of written) {
    if (!file.endsWith('.js')) continue;
    const js = readFileSync(join(outDir, file), 'utf8');
    for (const m of js.matchAll(REFERENCE)) {
      const target = join(dirname(file), m[2] as string).split('\\').join('/');
      if (!present.has(target)) missing.push(`${file}:${lineOf(js, m.index)}: ${m[2]} is not in the build`);
    }
  }
  if (missing.length > 0) throw new Error(`build-dist: ${missing.length} reference(s) to files outside the build:\n${missing.join('\n')}`);
  return { outDir, files: written };
}

/** Where the prebuilt binary goes, relative to the repository. */
export const PREBUILT_TARGET = 'linux-x64-glibc';

/**
 * Builds the addon from source in a scratch copy of native/ and puts it in
 * native/prebuilds/linux-x64-glibc/ as a new file (copied beside it, then
 * renamed over it: a process that maps the old one keeps it whole). Returns
 * the file, or the reason no prebuilt is made on this machine (another
 * platform, or musl). Throws when the build fails on linux-x64 with glibc
 * (node-gyp's output in the message): a package without its prebuilt would
 * quietly need a compiler.
 */
export async function buildPrebuilt(root = ROOT): Promise<{ file: string } | { skipped: string }> {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  if (`${process.platform}-${process.arch}` !== 'linux-x64' || header?.glibcVersionRuntime === undefined) {
    return { skipped: `the prebuilt binary is for linux-x64 with glibc, and this is ${process.platform}-${process.arch}${process.platform === 'linux' ? ' without glibc' : ''}` };
  }
  const { buildFromSource, checkLoads, ADDON_FILE } = (await import(join(root, 'native', 'install.js'))) as typeof import('../native/install.js');
  const scratch = mkdtempSync(join(tmpdir(), 'opengslb-prebuild-'));
  try {
    for (const f of ['binding.gyp', 'udp_batch.c']) copyFileSync(join(root, 'native', f), join(scratch, f));
    let built: string;
    try {
      built = buildFromSource(scratch);
    } catch (err) {
      throw new Error(`build-dist: building the native addon failed (python3, make and a C compiler are needed to pack): ${(err as Error).message}`);
    }
    const problem = checkLoads(built);
    if (problem !== null) throw new Error(`build-dist: the native addon built but does not load: ${problem}`);
    const dir = join(root, 'native', 'prebuilds', PREBUILT_TARGET);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, ADDON_FILE);
    const partial = `${file}.${process.pid}.partial`;
    copyFileSync(built, partial);
    renameSync(partial, file);
    return { file };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' }, 'no-native': { type: 'boolean', default: false } } });
  const out = values.out as string;
  const outDir = isAbsolute(out) ? out : join(ROOT, out);
  const started = performance.now();
  try {
    const { files } = buildDist(outDir);
    // stderr: `npm pack --json` prints its answer on stdout, where this line would break it.
    process.stderr.write(`build-dist: ${files.length} files into ${relative(process.cwd(), outDir) || '.'} in ${Math.round(performance.now() - started)} ms\n`);
    if (values['no-native'] !== true) {
      const t0 = performance.now();
      const prebuilt = await buildPrebuilt();
      if ('file' in prebuilt) process.stderr.write(`build-dist: native addon into ${relative(process.cwd(), prebuilt.file)} in ${Math.round(performance.now() - t0)} ms\n`);
      else process.stderr.write(`build-dist: no prebuilt native addon: ${prebuilt.skipped}\n`);
    }
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
