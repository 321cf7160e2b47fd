// `includes:` with real files in a temporary directory: globbing and order,
// merging, duplicates across files, cycles, depth, and problems reported with
// the file they are in.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rename, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { MAX_INCLUDE_DEPTH } from '../../src/config/includes.ts';
import { configTree, posixOnly, writeTree } from '../helpers/config-files.ts';

const DNS = ['dns:', '  listen_address: "127.0.0.1:0"'];
const REGION = (name: string, address: string): string[] => ['regions:', `  - name: ${name}`, `    servers: [{ address: ${address} }]`];
const DOMAIN = (name: string, region: string): string[] => ['domains:', `  - { name: ${name}, regions: [${region}] }`];

/** Loads `main.yaml` under `dir` with an empty environment and returns its problems as `FILE:LINE:COL: path: message`, FILE relative to `dir`. */
async function problems(dir: string, main = 'main.yaml'): Promise<string[]> {
  try {
    await loadConfig(join(dir, main), { env: {} });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n').map((line) => line.replaceAll(`${dir}/`, ''));
  }
  assert.fail('expected the config to be refused');
}

/** Asserts that each expected entry starts one reported line, in order, and that nothing else is reported. */
function assertProblems(got: readonly string[], expected: readonly string[]): void {
  assert.equal(got.length, expected.length, `expected ${expected.length} problems, got:\n${got.join('\n')}`);
  expected.forEach((prefix, i) => assert.ok(got[i]?.startsWith(prefix), `line ${i + 1}:\n  got      ${got[i]}\n  expected ${prefix}…`));
}

test('merges regions and domains from conf.d/*.yaml and domains/**/*.yaml, each pattern in sorted order', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes:', '  - conf.d/*.yaml', '  - domains/**/*.yaml'],
    'conf.d/20-us.yaml': REGION('us-east', '192.0.2.20'),
    'conf.d/10-eu.yaml': REGION('eu-west', '192.0.2.10'),
    'conf.d/notes.txt': 'not matched',
    'domains/top.yaml': DOMAIN('top.example.test', 'eu-west'),
    'domains/b/deep/x.yaml': DOMAIN('x.example.test', 'us-east'),
    'domains/a/y.yaml': DOMAIN('y.example.test', 'eu-west'),
  });
  const { config, files } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.deepEqual(config.regions.map((r) => r.name), ['eu-west', 'us-east']);
  assert.deepEqual(config.domains.map((d) => d.name), ['y.example.test', 'x.example.test', 'top.example.test']);
  assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), [
    'main.yaml',
    'conf.d/10-eu.yaml',
    'conf.d/20-us.yaml',
    'domains/a/y.yaml',
    'domains/b/deep/x.yaml',
    'domains/top.yaml',
  ]);
});

test('puts the including file first and each include after it, depth first', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('r0', '192.0.2.1'), 'includes: [a.yaml, b.yaml]'],
    'a.yaml': [...REGION('r1', '192.0.2.2'), 'includes: [sub/c.yaml]'],
    'sub/c.yaml': REGION('r2', '192.0.2.3'),
    'b.yaml': [...REGION('r3', '192.0.2.4'), ...DOMAIN('app.example.test', 'r0')],
  });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.deepEqual(config.regions.map((r) => r.name), ['r0', 'r1', 'r2', 'r3']);
});

test('resolves the includes of an included file against that file\'s own directory', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [teams/eu/team.yaml]'],
    'teams/eu/team.yaml': ['includes: [regions/*.yaml, ../../domains.yaml]'],
    'teams/eu/regions/eu.yaml': REGION('eu-west', '192.0.2.10'),
    'domains.yaml': DOMAIN('app.example.test', 'eu-west'),
  });
  const { config, files } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.equal(config.regions[0]?.name, 'eu-west');
  assert.equal(config.domains[0]?.name, 'app.example.test');
  assert.equal(files.length, 4);
});

test('names included files relative to a relative main path, as the operator typed it', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), 'includes: [conf.d/*.yaml]'],
    'conf.d/d.yaml': DOMAIN('app.example.test', 'eu-west'),
  });
  const cwd = process.cwd();
  process.chdir(dir);
  t.after(() => process.chdir(cwd));
  const { files } = await loadConfig('main.yaml', { env: {} });
  assert.deepEqual(files, ['main.yaml', join('conf.d', 'd.yaml')]);
});

test('accepts an absolute include path', async (t) => {
  const shared = await configTree(t, { 'shared.yaml': DOMAIN('app.example.test', 'eu-west') });
  const dir = await configTree(t, { 'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), `includes: ["${join(shared, 'shared.yaml')}"]`] });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.equal(config.domains[0]?.name, 'app.example.test');
});

test('joins lists and merges maps key by key, at any depth', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': ['dns:', '  listen_address: "127.0.0.1:0"', '  zones: [example.test]', '  soa: { refresh: 2h }', 'includes: [more.yaml]'],
    'more.yaml': [
      'dns:',
      '  default_ttl: 42',
      '  zones: [example.org]',
      '  soa: { retry: 20m }',
      ...REGION('eu-west', '192.0.2.10'),
      'domains:',
      '  - { name: app.example.test, regions: [eu-west] }',
      '  - { name: app.example.org, regions: [eu-west] }',
    ],
  });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.deepEqual(config.dns.zones.map((z) => z.name), ['example.test', 'example.org']);
  assert.equal(config.dns.defaultTtlSec, 42);
  assert.equal(config.dns.zones[0]?.soa.refreshSec, 7200);
  assert.equal(config.dns.zones[0]?.soa.retrySec, 1200);
});

test('lets an empty value in one file give way to the value in another', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, '  default_ttl:', 'includes: [more.yaml]'],
    'more.yaml': ['dns: { default_ttl: 7 }', ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west')],
  });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.equal(config.dns.defaultTtlSec, 7);
});

test('reports a value set in two files at the second place, naming the first as file:line:col', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [conf.d/*.yaml]'],
    'conf.d/x.yaml': ['logging: { level: debug }', 'dns:', '  listen_address: "127.0.0.1:53"'],
    'conf.d/y.yaml': ['logging: { level: warn }'],
  });
  assertProblems(await problems(dir), [
    'conf.d/x.yaml:3:19: dns.listen_address: is already set at main.yaml:2:19, expected each value in one file only',
    'conf.d/y.yaml:1:19: logging.level: is already set at conf.d/x.yaml:1:19, expected each value in one file only',
  ]);
});

test('reports a list in one file and a map in another as a shape conflict', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [x.yaml]'],
    'x.yaml': ['regions: { name: us-east }'],
  });
  assertProblems(await problems(dir), ['x.yaml:1:10: regions: is a map here but a list at main.yaml:4:3, expected the same shape in every file']);
});

test('reports a region defined in two files, naming both files and lines', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...DOMAIN('app.example.test', 'eu-west'), 'includes: [conf.d/*.yaml]'],
    'conf.d/a.yaml': REGION('eu-west', '192.0.2.10'),
    'conf.d/b.yaml': ['# the same region again', ...REGION('eu-west', '192.0.2.11')],
  });
  assertProblems(await problems(dir), [
    'conf.d/b.yaml:3:11: regions[1].name: "eu-west" is already defined at conf.d/a.yaml:2:11 (regions[0]), expected unique region names',
  ]);
});

test('reports a domain defined in the main file and again in an include, naming both files and lines', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [d.yaml]'],
    'd.yaml': ['domains:', '  - name: APP.example.test.', '    regions: [eu-west]'],
  });
  assertProblems(await problems(dir), [
    'd.yaml:2:11: domains[1].name: "app.example.test" is already defined at main.yaml:7:13 (domains[0]), expected unique domain names',
  ]);
});

test('reports problems in several files at once, each at the file, line and column it is in', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, '  colour: blue', 'includes: [conf.d/*.yaml, domains/*.yaml]'],
    'conf.d/eu.yaml': REGION('eu-west', '192.0.2.300'),
    'conf.d/us.yaml': ['regions:', '  - name: us-east', '    servers: [{ address: 192.0.2.20, wieght: 5 }]'],
    'domains/app.yaml': DOMAIN('app.example.test', 'mars'),
  });
  assertProblems(await problems(dir), [
    'main.yaml:3:3: dns.colour: unknown key "colour"',
    'conf.d/eu.yaml:3:26: regions[0].servers[0].address: "192.0.2.300" is not an IP address',
    'conf.d/us.yaml:3:38: regions[1].servers[0].wieght: unknown key "wieght" (did you mean "weight"?)',
    'domains/app.yaml:2:41: domains[0].regions[0]: "mars" is not a region in regions, expected one of eu-west, us-east',
  ]);
});

test('reports YAML syntax errors of two included files at once, and no schema problems after them', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'includes: [a.yaml, b.yaml]'],
    'a.yaml': ['regions:', '  - name: [eu-west'],
    'b.yaml': ['domains: {'],
  });
  const got = await problems(dir);
  assert.equal(got.length, 2, got.join('\n'));
  assert.match(got[0] ?? '', /^a\.yaml:\d+:\d+: \(root\): .*expected valid YAML$/);
  assert.match(got[1] ?? '', /^b\.yaml:\d+:\d+: \(root\): .*expected valid YAML$/);
});

test('reports an include cycle with the chain of files', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [a.yaml]'],
    'a.yaml': ['includes: [b.yaml]'],
    'b.yaml': ['includes: [a.yaml]'],
  });
  assertProblems(await problems(dir), [
    `b.yaml:1:12: includes[0]: ${dir}/a.yaml closes an include cycle: ${dir}/a.yaml → ${dir}/b.yaml → ${dir}/a.yaml, expected includes that never lead back`.replaceAll(`${dir}/`, ''),
  ]);
});

test('reports a glob that matches the file it is written in as a cycle', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), 'includes: ["*.yaml"]'],
    'domains.yaml': DOMAIN('app.example.test', 'eu-west'),
  });
  assertProblems(await problems(dir), ['main.yaml:6:12: includes[0]: main.yaml closes an include cycle: main.yaml → main.yaml']);
});

test('reports a file that two patterns include, at the second one', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), 'includes:', '  - conf.d/*.yaml', '  - conf.d/app.yaml'],
    'conf.d/app.yaml': DOMAIN('app.example.test', 'eu-west'),
  });
  assertProblems(await problems(dir), ['main.yaml:8:5: includes[1]: conf.d/app.yaml is already included at main.yaml:7:5, expected each file included once']);
});

/** A chain main.yaml → l1.yaml → … → l<levels>.yaml, the last one holding the domain. */
function chainOf(levels: number): Record<string, string[]> {
  const files: Record<string, string[]> = { 'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), 'includes: [l1.yaml]'] };
  for (let i = 1; i <= levels; i++) files[`l${i}.yaml`] = i === levels ? DOMAIN('app.example.test', 'eu-west') : [`includes: [l${i + 1}.yaml]`];
  return files;
}

test(`follows includes ${MAX_INCLUDE_DEPTH} levels deep`, async (t) => {
  const dir = await configTree(t, chainOf(MAX_INCLUDE_DEPTH));
  const { config, files } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.equal(config.domains[0]?.name, 'app.example.test');
  assert.equal(files.length, MAX_INCLUDE_DEPTH + 1);
});

test(`refuses includes ${MAX_INCLUDE_DEPTH + 1} levels deep, showing the chain`, async (t) => {
  const dir = await configTree(t, chainOf(MAX_INCLUDE_DEPTH + 1));
  const got = await problems(dir);
  assert.equal(got.length, 1, got.join('\n'));
  const chain = ['main.yaml', ...Array.from({ length: MAX_INCLUDE_DEPTH + 1 }, (_, i) => `l${i + 1}.yaml`)].map((f) => `${dir}/${f}`.replaceAll(`${dir}/`, ''));
  assert.equal(
    got[0],
    `l${MAX_INCLUDE_DEPTH}.yaml:1:12: includes[0]: l${MAX_INCLUDE_DEPTH + 1}.yaml is nested too deep: ${chain.join(' → ')}, expected at most ${MAX_INCLUDE_DEPTH} levels of includes`,
  );
});

test('reports a missing include at its entry, and accepts a glob that matches nothing', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [empty.d/*.yaml, missing.yaml]'],
  });
  const got = await problems(dir);
  assertProblems(got, ['main.yaml:8:28: includes[1]: missing.yaml does not exist, expected a readable YAML config file']);
  await assert.rejects(loadConfig(join(dir, 'main.yaml'), { env: {} }), (err: unknown) => err instanceof ConfigError && err.code === 'OPENGSLB_ERR_CONFIG_READ');
});

test('reports an includes value that is not a list of paths', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: conf.d/*.yaml'],
  });
  assertProblems(await problems(dir), ['main.yaml:8:11: includes: is not a list, expected a list of paths or glob patterns']);
});

test('follows an includes list, or an entry, written as an alias, as anchors and aliases work everywhere else', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, 'x-includes: &inc [conf.d/a.yaml]', 'includes: *inc'],
    'conf.d/a.yaml': [...REGION('eu-west', '192.0.2.10'), 'x: &b conf.d/b.yaml', 'includes: [*b]'],
    'conf.d/conf.d/b.yaml': DOMAIN('app.example.test', 'eu-west'),
  });
  // Only the unknown keys that hold the anchors remain: the includes themselves were followed.
  assertProblems(await problems(dir), [
    'main.yaml:3:1: x-includes: unknown key "x-includes"',
    'conf.d/a.yaml:4:1: x: unknown key "x"',
  ]);
});

test('skips hidden files and directories in globs unless the pattern names them', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), 'includes: ["domains/**/*.yaml"]'],
    'domains/app.yaml': DOMAIN('app.example.test', 'eu-west'),
    'domains/.draft.yaml': DOMAIN('draft.example.test', 'eu-west'),
    'domains/.git/x.yaml': DOMAIN('git.example.test', 'eu-west'),
  });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.deepEqual(config.domains.map((d) => d.name), ['app.example.test']);
});

test('matches ?, [abc] and [!abc] in a glob segment', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), 'includes: ["d/[ab]?.yaml", "d/[!abx]*.yaml"]'],
    'd/a1.yaml': DOMAIN('a1.example.test', 'eu-west'),
    'd/b2.yaml': DOMAIN('b2.example.test', 'eu-west'),
    'd/c3.yaml': DOMAIN('c3.example.test', 'eu-west'),
    'd/x4.yaml': DOMAIN('x4.example.test', 'eu-west'),
    'd/a10.yaml': DOMAIN('a10.example.test', 'eu-west'),
  });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: {} });
  assert.deepEqual(config.domains.map((d) => d.name), ['a1.example.test', 'b2.example.test', 'c3.example.test']);
});

// An editor that saves by truncating and then writing leaves the file empty for
// a moment; a reload (a SIGHUP from a path watcher, say) that reads it then must
// not take that fragment's domains out of service.
test('refuses an empty (0-byte) include at its entry instead of merging nothing; a file with only a comment is empty on purpose', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [conf.d/*.yaml]'],
    'conf.d/10-shop.yaml': DOMAIN('shop.example.test', 'eu-west'),
    'conf.d/20-none.yaml': '# nothing here yet\n',
  });
  assert.deepEqual((await loadConfig(join(dir, 'main.yaml'), { env: {} })).config.domains.map((d) => d.name), ['app.example.test', 'shop.example.test']);
  await writeTree(dir, { 'conf.d/10-shop.yaml': '' });
  assertProblems(await problems(dir), ['main.yaml:8:12: includes[0]: conf.d/10-shop.yaml is empty (0 bytes), expected YAML']);
  await writeTree(dir, { 'main.yaml': '' });
  assertProblems(await problems(dir), ['main.yaml: is empty (0 bytes), expected YAML']);
});

// A fragment linked into conf.d (sites-enabled style) whose target moved away
// must not silently drop its domains from the next reload.
test('reports a symlink matched by a glob whose target is missing, or that loops, at the include entry instead of skipping it', posixOnly, async (t) => {
  const dir = await configTree(t, {
    'main.yaml': [...DNS, ...REGION('eu-west', '192.0.2.10'), ...DOMAIN('app.example.test', 'eu-west'), 'includes: [conf.d/*.yaml]'],
    'available/shop.yaml': DOMAIN('shop.example.test', 'eu-west'),
  });
  await mkdir(join(dir, 'conf.d'));
  await symlink('../available/shop.yaml', join(dir, 'conf.d/shop.yaml'));
  assert.deepEqual((await loadConfig(join(dir, 'main.yaml'), { env: {} })).config.domains.map((d) => d.name), ['app.example.test', 'shop.example.test']);
  await rename(join(dir, 'available/shop.yaml'), join(dir, 'available/shop.yaml.old'));
  await symlink('loop.yaml', join(dir, 'conf.d/loop.yaml'));
  assertProblems(await problems(dir), [
    'main.yaml:8:12: includes[0]: conf.d/loop.yaml is a symbolic link that loops, expected a readable YAML config file',
    'main.yaml:8:12: includes[0]: conf.d/shop.yaml is a symbolic link to ../available/shop.yaml, which does not exist, expected a readable YAML config file',
  ]);
});
