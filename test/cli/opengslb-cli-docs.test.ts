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
import { tempDir, writeTree } from '../helpers/config-files.ts';
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

test('the config problems the reload examples of docs/cli.md and docs/api.md show are worded as the validator words them', async (t) => {
  // The examples' files are not shipped; a config with the same two mistakes (a region that does not exist, a ttl
  // that is not a number) gets the same messages, whatever the file, line and index.
  const dir = await tempDir(t, 'opengslb-cli-docs-');
  await writeTree(dir, {
    'main.yaml': [
      'dns: { listen_address: "127.0.0.1:0", zones: [example.test], nameservers: [{ name: ns1.example.test, addresses: [127.0.0.1] }] }',
      'regions: [{ name: pool, servers: [{ address: 192.0.2.3, port: 80 }], health_check: { type: none } }]',
      'domains: [{ name: new.example.test, regions: [mars], ttl: soon }]',
    ],
  });
  const r = await run(CLI, ['config', 'validate', join(dir, 'main.yaml')]);
  assert.equal(r.code, 1, r.stderr);
  const said = [...r.stderr.matchAll(/^[^\n]*?:\d+:\d+: [^:\n]+: (.*)$/gm)].map((m) => m[1]);
  assert.equal(said.length, 2, r.stderr);
  const block = /```console\n\$ opengslb-cli reload\nopengslb-cli: reload failed[^\n]*\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'no failed "opengslb-cli reload" example');
  const shown = [...block[1].matchAll(/^opengslb-cli: [^\n]*?:\d+:\d+: [^:\n]+: (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(shown, said, 'docs/cli.md, reload');
  const api = await readFile(join(ROOT, 'docs/api.md'), 'utf8');
  const failure = /\n422, the reload failed[\s\S]*?```json\n([\s\S]*?)```/.exec(api);
  assert.ok(failure, 'no 422 reload example in docs/api.md');
  const outcome = JSON.parse(failure[1]) as { problems: { message: string }[] };
  assert.deepEqual(outcome.problems.map((p) => p.message), said, 'docs/api.md, POST /api/v1/reload');
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
