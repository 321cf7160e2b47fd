// Static checks of the Dockerfile and .dockerignore. No Docker engine runs on
// the machines these tests run on, so nothing is built here: the tests read the
// instructions and check the invariants the image depends on (base image,
// non-root user, production install, entry point present in the repository).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

/** Splits a Dockerfile into instructions: comments and blank lines dropped, backslash continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (pending === '' && (raw === '' || raw.startsWith('#'))) continue;
    if (pending === '') startLine = i + 1;
    if (raw.endsWith('\\')) {
      pending += raw.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + raw).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (m) out.push({ keyword: m[1].toUpperCase(), args: m[2], line: startLine });
  }
  return out;
}

const instructions = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const all = (keyword: string): Instruction[] => instructions.filter((i) => i.keyword === keyword);

/** Parses an exec-form (JSON array) ENTRYPOINT or CMD; fails the test for the shell form, which would not forward signals. */
function execForm(keyword: string): string[] {
  const found = all(keyword);
  assert.equal(found.length, 1, `exactly one ${keyword}`);
  const value: unknown = JSON.parse(found[0].args);
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === 'string'), `${keyword} in exec form (a JSON array of strings)`);
  return value as string[];
}

test('builds on the node:24-slim base image', () => {
  const from = all('FROM');
  assert.equal(from.length, 1, 'one stage');
  assert.equal(from[0].args, 'node:24-slim');
  assert.equal(instructions[0].keyword, 'FROM', 'FROM comes first');
});

test('runs as a user that is not root', () => {
  const users = all('USER');
  assert.ok(users.length > 0, 'a USER line');
  const last = users[users.length - 1];
  const name = last.args.split(':')[0];
  assert.notEqual(name, 'root');
  assert.notEqual(name, '0');
  // Nothing after the USER line may switch back or run as root.
  const after = instructions.slice(instructions.indexOf(last) + 1);
  assert.ok(!after.some((i) => i.keyword === 'RUN'), 'no RUN after USER');
});

test('installs only production dependencies from the lock file', () => {
  const runs = all('RUN').map((r) => r.args);
  assert.ok(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), runs.join('\n'));
  assert.ok(!runs.some((r) => /\bnpm (install|i)\b/.test(r)), 'npm ci, not npm install');
  const copies = all('COPY').map((c) => c.args);
  assert.ok(copies.some((c) => c.includes('package.json') && c.includes('package-lock.json')), 'copies package.json and package-lock.json');
});

test('copies only what runs, and every copied path exists', () => {
  const sources = all('COPY').flatMap((c) => {
    const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    return parts.slice(0, -1);
  });
  assert.deepEqual([...sources].sort(), ['NOTICE', 'config', 'package-lock.json', 'package.json', 'src', 'workers']);
  for (const s of sources) assert.ok(existsSync(join(ROOT, s)), `${s} exists`);
});

test('starts src/cli/opengslb.js with the config at /etc/opengslb/config.yaml, and the entry file exists', () => {
  const workdir = all('WORKDIR');
  assert.equal(workdir.at(-1)?.args, '/app');
  const entry = execForm('ENTRYPOINT');
  assert.deepEqual(entry, ['node', ...SERVER_NODE_FLAGS, 'src/cli/opengslb.js']);
  const envs = all('ENV').map((e) => e.args);
  for (const [k, v] of Object.entries(SERVER_ENV)) assert.ok(envs.includes(`${k}=${v}`), `ENV ${k}=${v} in ${JSON.stringify(envs)}`);
  assert.ok(existsSync(join(ROOT, entry[entry.length - 1])), `${entry[entry.length - 1]} exists`);
  assert.deepEqual(execForm('CMD'), ['--config', '/etc/opengslb/config.yaml']);
});

test('exposes DNS on port 53 over UDP and TCP', () => {
  const ports = all('EXPOSE').flatMap((e) => e.args.split(/\s+/));
  assert.ok(ports.includes('53/udp'), ports.join(' '));
  assert.ok(ports.includes('53/tcp'), ports.join(' '));
});

test('keeps node_modules, bench results, tests and git history out of the build context', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const p of ['node_modules', 'bench/results', 'test', '.git']) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
  // A copied path must never be ignored, or the build fails.
  for (const p of ['src', 'workers', 'config', 'package.json', 'package-lock.json']) assert.ok(!ignored.includes(p), `.dockerignore keeps ${p}`);
});
