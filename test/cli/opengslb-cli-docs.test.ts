// Keeps docs/cli.md in step with opengslb-cli: every command's synopsis and
// every global flag is documented, and the usage error shown there is what
// the CLI prints today.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/admin/commands.ts';
import { CONFIG_VALIDATE_USAGE } from '../../src/cli/config-validate.ts';
import { CLI, run } from '../helpers/child.ts';
import { ROOT } from '../helpers/markdown.ts';

const doc = await readFile(join(ROOT, 'docs/cli.md'), 'utf8');

for (const c of COMMANDS) {
  test(`docs/cli.md has a section for "${c.name}" with its synopsis`, () => {
    assert.match(doc, new RegExp(`^### ${c.name}$`, 'm'));
    assert.ok(doc.includes('`opengslb-cli ' + `${c.name}${c.synopsis ? ' ' + c.synopsis : ''}` + '`'), `synopsis of ${c.name} not found`);
  });
}

test('docs/cli.md documents config validate with its synopsis', () => {
  assert.ok(doc.includes('`opengslb-cli ' + CONFIG_VALIDATE_USAGE + '`'));
});

test('docs/cli.md has a table row for every global flag the CLI prints in its help', async () => {
  const r = await run(CLI, ['--help']);
  const flags = [...r.stdout.matchAll(/^ {2}(?:-h, )?(--[a-z-]+)/gm)].map((m) => m[1]);
  assert.deepEqual(flags, ['--api', '--cli-config', '--all', '--token', '--ca-file', '--timeout', '--json', '--help']);
  // The flag in the first cell of a table row: "| `--api URL` |", "| `-h`, `--help` |".
  for (const flag of flags) assert.ok(new RegExp(`^\\|[^|\\n]*\`${flag}[ \`]`, 'm').test(doc), `no row for ${flag}`);
});

test('the usage error shown in docs/cli.md is what the CLI prints', async () => {
  const block = /```console\n\$ opengslb-cli servers --status down\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'no "servers --status down" example');
  const r = await run(CLI, ['servers', '--status', 'down']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, block[1]);
});

test('the docs\' command lines run in their npx form: npx opengslb-cli and npx opengslb resolve to the package bins in a clone', async (t) => {
  const { spawnSync } = await import('node:child_process');
  if (spawnSync('npx', ['--version'], { encoding: 'utf8' }).status !== 0) return t.skip('npx is not on PATH (it comes with npm)');
  // test/docs/examples-run.test.ts runs every command line through these same entry files.
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; version: string };
  assert.equal(join(ROOT, pkg.bin['opengslb-cli']), CLI);
  for (const [bin, expected] of [['opengslb-cli', `opengslb-cli ${pkg.version}`], ['opengslb', `OpenGSLB ${pkg.version}`]]) {
    const r = spawnSync('npx', ['--no-install', bin, '--version'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n')[0], expected);
  }
});
