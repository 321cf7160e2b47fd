// opengslb-cli with several overwatches: two real `opengslb` processes with
// their admin APIs, and a third address where nothing listens. Writes go to
// every API and a partial failure names the overwatch that missed it (exit 1);
// reads ask the first that answers, or each with --all; cli.yaml lists the
// APIs; `cluster status` compares the agents' views of the peers. One fleet
// serves the three parts: each leaves the overwatches as it found them (its
// override cleared, its geo mapping removed, its cli.yaml files its own).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { apiUrl, CLI, freePort, run, startOpengslb, type RunResult } from '../helpers/child.ts';
import { tempDir, writeTree } from '../helpers/config-files.ts';

const TOKEN = 'cli-fleet-token-0123456789';

interface Fixture {
  readonly dir: string;
  readonly a: string;
  readonly b: string;
  /** Where nothing listens. */
  readonly down: string;
  readonly cli: (args: readonly string[], env?: NodeJS.ProcessEnv) => Promise<RunResult>;
}

/** Two overwatches with the same config (static servers, no agents), each listing the other and the dead address as peers. */
async function startFleet(t: TestContext): Promise<Fixture> {
  const [pa, pb, pd] = await Promise.all([freePort(), freePort(), freePort()]);
  const dir = await tempDir(t, 'opengslb-cli-fleet-');
  const configFor = (name: string, port: number, peers: readonly number[]): Record<string, string[]> => ({
    [`${name}/config.yaml`]: [
      'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
      'regions:',
      '  - name: eu',
      '    servers: [{ address: 192.0.2.10, port: 80 }, { address: 192.0.2.11, port: 80 }]',
      '    health_check: { type: none }',
      'domains:',
      '  - { name: app.example.test, regions: [eu] }',
      `api: { enabled: true, address: "127.0.0.1:${port}", token: ${TOKEN} }`,
      'overwatch:',
      '  data_dir: ./state',
      `  peers: [${peers.map((p) => `{ url: "${apiUrl(p)}" }`).join(', ')}]`,
      'logging: { level: info, format: json }',
    ],
  });
  await writeTree(dir, { ...configFor('a', pa, [pb, pd]), ...configFor('b', pb, [pa]) }, 0o600);
  await Promise.all([startOpengslb(t, join(dir, 'a/config.yaml')), startOpengslb(t, join(dir, 'b/config.yaml'))]);
  const env: NodeJS.ProcessEnv = { ...process.env, USER: 'tester', HOME: dir, XDG_CONFIG_HOME: join(dir, 'xdg') };
  for (const k of ['OPENGSLB_API', 'OPENGSLB_TOKEN', 'OPENGSLB_API_TOKEN', 'OPENGSLB_CLI_CONFIG']) delete env[k];
  return { dir, a: apiUrl(pa), b: apiUrl(pb), down: apiUrl(pd), cli: (args, extra = {}) => run(CLI, args, { env: { ...env, ...extra } }) };
}

function fail(r: RunResult, code = 1): void {
  assert.equal(r.code, code, `exit ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
}

function ok(r: RunResult): string {
  fail(r, 0);
  return r.stdout;
}

test('opengslb-cli against two overwatches and an address where nothing listens', async (t) => {
  const f = await startFleet(t);

  await t.test('a write goes to every overwatch; one down: the others take it, the missed one is named, exit 1; reads ask the first that answers or each with --all', async () => {
    const set = await f.cli(['overrides', 'set', 'app.example.test', '192.0.2.10', '--unhealthy', '--reason', 'maintenance', '--token', TOKEN, '--api', f.a, '--api', f.down, '--api', f.b]);
    fail(set);
    assert.match(set.stdout, new RegExp(`== ${f.a}: ok\\n.*192\\.0\\.2\\.10`));
    assert.match(set.stdout, new RegExp(`== ${f.down}: FAILED\\ncannot reach the admin API at ${f.down}/api/v1/overrides/app\\.example\\.test/192\\.0\\.2\\.10: connection refused`));
    assert.match(set.stdout, new RegExp(`== ${f.b}: ok\\n`));
    assert.match(set.stdout, /overrides set: applied on 2 of 3 overwatches/);
    assert.equal(set.stderr, `opengslb-cli: overrides set missed 1 of 3 overwatches: ${f.down} (cannot reach the admin API at ${f.down}/api/v1/overrides/app.example.test/192.0.2.10: connection refused)\n`);

    // Three reads, at once.
    const [all, read, missing] = await Promise.all([
      f.cli(['overrides', 'list', '--all', '--api', f.a, '--api', f.b]),
      f.cli(['overrides', 'list', '--api', f.down, '--api', f.b]),
      f.cli(['agents', 'show', 'eu-000000000000', '--api', f.a, '--api', f.b]),
    ]);
    // Both reachable overwatches hold it: --all prints each one's listing.
    const listed = ok(all);
    assert.equal(listed.match(/192\.0\.2\.10 .*maintenance/g)?.length, 2, listed);
    assert.match(listed, /overrides list: answered by 2 of 2 overwatches/);

    // A read without --all: the dead one first is skipped, named on stderr.
    assert.match(ok(read), /maintenance/);
    assert.match(read.stderr, new RegExp(`connection refused; asking the next API\\nopengslb-cli: answered by ${f.b}\\n$`));

    // An error answer is an answer: not asked of the next one.
    fail(missing);
    assert.doesNotMatch(missing.stderr, /asking the next API/);

    // --json of a write: one result per overwatch.
    const cleared = await f.cli(['overrides', 'clear', 'app.example.test', '192.0.2.10', '--json', '--token', TOKEN, '--api', f.a, '--api', f.b]);
    const body = JSON.parse(ok(cleared)) as { results: { api: string; ok: boolean; answer: { cleared: boolean } }[]; ok: number; failed: number };
    assert.deepEqual(body.results.map((r) => [r.api, r.ok, r.answer.cleared]), [[f.a, true, true], [f.b, true, true]]);
    assert.deepEqual([body.ok, body.failed], [2, 0]);
  });

  await t.test('cli.yaml lists the APIs (--cli-config, $OPENGSLB_CLI_CONFIG, ~/.config/opengslb/cli.yaml); --api outranks it; a bad key is named with file:line:col', async (st) => {
    // The file at the default place would be read by every later command of the fleet.
    st.after(() => rm(join(f.dir, 'xdg'), { recursive: true, force: true }));
    const file = join(f.dir, 'cli.yaml');
    await writeFile(file, `apis:\n  - ${f.a}\n  - ${f.b}\ntoken: ${TOKEN}\ntimeout: 2s\n`, { mode: 0o600 });
    const added = await f.cli(['geo', 'mappings', 'add', '10.1.0.0/16', 'eu', '--cli-config', file]);
    assert.match(ok(added), /geo mappings add: applied on 2 of 2 overwatches/);
    assert.equal(ok(added).match(/Mapped 10\.1\.0\.0\/16 to eu/g)?.length, 2);

    const viaEnv = await f.cli(['geo', 'mappings', 'remove', '10.1.0.0/16'], { OPENGSLB_CLI_CONFIG: file });
    assert.match(ok(viaEnv), /geo mappings remove: applied on 2 of 2 overwatches/);

    // The default place, under $XDG_CONFIG_HOME; --api outranks the file's list.
    await writeTree(join(f.dir, 'xdg'), { 'opengslb/cli.yaml': [`apis: [${f.down}, ${f.b}]`] });
    const [skipped, only] = await Promise.all([f.cli(['domains']), f.cli(['domains', '--api', f.a])]);
    assert.match(ok(skipped), /app\.example\.test/);
    assert.match(skipped.stderr, /connection refused; asking the next API/);
    assert.equal(only.stderr, '');

    await writeFile(file, `apis: [${f.a}]\nendpoints: [${f.b}]\n`);
    const [bad, absent] = await Promise.all([f.cli(['domains', '--cli-config', file]), f.cli(['domains'], { OPENGSLB_CLI_CONFIG: join(f.dir, 'nope.yaml') })]);
    fail(bad);
    assert.equal(bad.stderr, `opengslb-cli: ${file}:2:1: unknown key "endpoints", expected apis, token or timeout\n`);
    fail(absent);
    assert.match(absent.stderr, /cannot read .*nope\.yaml \(\$OPENGSLB_CLI_CONFIG\): no such file/);
  });

  await t.test('cluster status: a peer that answers and sees the same agents matches; one that is down is named; exit 1 unless every peer matches', async () => {
    const [a, b] = await Promise.all([f.cli(['cluster', 'status', '--api', f.a]), f.cli(['cluster', 'status', '--api', f.b])]);
    fail(a);
    assert.match(a.stdout, /Cluster: +1 of 2 peers see the same agents/);
    assert.match(a.stdout, new RegExp(`${f.b} +yes +0 +[0-9a-f]{16} +yes`));
    assert.match(a.stdout, new RegExp(`${f.down} +no: connection refused`));
    assert.match(a.stderr, new RegExp(`not every peer sees the same agents: ${f.down} \\(connection refused\\)`));
    assert.match(ok(b), /Cluster: +every peer sees the same agents \(1 of 1\)/);
    assert.match(b.stdout, /Backends: +2 total: 2 healthy, 0 unhealthy, 0 unknown; 0 stale, 0 draining/);
  });
});
