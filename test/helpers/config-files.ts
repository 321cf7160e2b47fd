// Test helper. Writes a tree of config files into a fresh temporary directory
// with real permission bits, and removes it after the test; and asserts the
// problems a refused config is reported with.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';

/** Mode bits are checked on POSIX only; tests that depend on them skip on Windows. */
export const posixOnly = { skip: process.platform === 'win32' ? 'mode bits do not describe Windows ACLs' : false };

/** Creates an empty temporary directory, removed after the test. */
export async function tempDir(t: TestContext, prefix = 'opengslb-config-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // t.after hooks run in the order they were registered, so this one runs
  // before those of processes started later in the directory (a nats-server
  // writing its JetStream store, an overwatch its state), which may still
  // write: rm then meets ENOTEMPTY, and tries again.
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));
  return dir;
}

/**
 * Writes `files` (relative path → text, one string or one string per line)
 * under `dir` with mode `mode` (0o644 unless given; chmod, so the umask does
 * not change it) and returns `dir`.
 */
export async function writeTree(dir: string, files: Readonly<Record<string, string | readonly string[]>>, mode = 0o644): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, typeof content === 'string' ? content : content.join('\n') + '\n');
    await chmod(path, mode);
  }
  return dir;
}

/** Creates a temporary directory holding `files` (see writeTree) and returns it. */
export async function configTree(t: TestContext, files: Readonly<Record<string, string | readonly string[]>>, mode = 0o644): Promise<string> {
  return writeTree(await tempDir(t), files, mode);
}

/**
 * Loads `yaml` as the file x.yaml and asserts it is refused with exactly
 * `expect.length` problems, the i-th starting with expect[i] (its
 * "x.yaml:line:col: key:" prefix, or more).
 */
export function assertProblems(yaml: string, expect: readonly string[]): void {
  let err: unknown;
  try {
    parseConfigText(yaml, 'x.yaml');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  const lines = err.message.split('\n').filter((l) => l.startsWith('x.yaml:'));
  assert.equal(lines.length, expect.length, `got:\n${err.message}`);
  expect.forEach((prefix, i) => assert.ok(lines[i]?.startsWith(prefix), `line ${i + 1}:\n  got      ${lines[i]}\n  expected ${prefix}…`));
}

/** One worker, one zone, one domain and a state directory (./state): an overwatch whose start and stop tests look at its state store. */
export const STATEFUL_CONFIG = [
  'dns:',
  '  listen_address: "127.0.0.1:0"',
  '  workers: 1',
  '  zones: [example.test]',
  'regions:',
  '  - name: eu',
  '    servers: [{ address: 192.0.2.10 }]',
  '    health_check: { type: none }',
  'domains:',
  '  - { name: app.example.test, regions: [eu] }',
  'logging: { level: info, format: json }',
  'overwatch: { data_dir: ./state }',
  '',
].join('\n');
