// POST /api/v1/reload and GET /api/v1/status against the real opengslb binary
// (a child process with its config files in a temp directory), and the CLI's
// `reload` and `status` against the same process: a reload that adds and
// changes things says what, an invalid config names every problem with
// file:line:col, a change that needs a restart is refused with its reason,
// and in both failure cases the previous config keeps answering DNS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CLI, run, startOpengslb, type RunningServer } from '../helpers/child.ts';
import { tempDir, writeTree } from '../helpers/config-files.ts';
import { ask } from '../helpers/dns-client.ts';

const TOKEN = 'reload-test-token-0123456789';

const MAIN = [
  'dns:',
  '  listen_address: "127.0.0.1:0"',
  '  workers: 1',
  '  zones: [example.test]',
  'api: { enabled: true, address: "127.0.0.1:0", token: ' + TOKEN + ' }',
  'metrics: { enabled: true, address: "127.0.0.1:0" }',
  'overwatch: { data_dir: ./data }',
  'logging: { level: info, format: json }',
  'includes: [conf.d/*.yaml]',
];

function app(opts: { servers: string[]; ttl: number; extraDomain?: boolean; broken?: boolean; drained?: boolean }): string[] {
  return [
    'regions:',
    '  - name: pool',
    '    health_check: { type: none }',
    `    servers: [${opts.servers.map((a) => `{ address: ${a}${opts.drained ? ', weight: 0' : ''} }`).join(', ')}]`,
    'domains:',
    `  - { name: app.example.test, regions: [pool], ttl: ${opts.ttl}, max_answers: 4${opts.drained ? ', routing_algorithm: weighted' : ''} }`,
    '  - { name: old.example.test, regions: [pool] }',
    ...(opts.extraDomain ? ['  - { name: new.example.test, regions: [pool] }'] : []),
    ...(opts.broken ? ['  - { name: bad.example.test, regions: [mars], ttl: soon }'] : []),
  ];
}

async function addressOf(server: RunningServer, what: RegExp): Promise<string> {
  const line = await server.out.waitFor(what);
  const m = /"address":"(127\.0\.0\.1:\d+)"/.exec(line);
  assert.ok(m, line);
  return `http://${m[1]}`;
}

async function call(url: string, method = 'GET', token: string | null = TOKEN): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}

async function answers(port: number, name: string): Promise<{ rcode: string; data: string[]; ttl: number | undefined }> {
  const reply = await ask(port, name, 'A');
  const records = (reply.answers ?? []) as { data: string; ttl?: number }[];
  return { rcode: (reply as { rcode?: string }).rcode ?? '', data: records.map((r) => r.data).sort(), ttl: records[0]?.ttl };
}

test('reload over the API and the CLI answers with its outcome, and status says which config serves', async (t) => {
  const dir = await tempDir(t, 'opengslb-reload-api-');
  await writeTree(dir, { 'main.yaml': MAIN, 'conf.d/app.yaml': app({ servers: ['192.0.2.1', '192.0.2.2'], ttl: 30 }) }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  const api = await addressOf(server, /API listening/);
  const metrics = await addressOf(server, /metrics listening/);
  const env: NodeJS.ProcessEnv = { ...process.env, OPENGSLB_API: api };
  delete env.OPENGSLB_API_TOKEN;
  delete env.OPENGSLB_TOKEN;
  const cli = (...args: string[]) => run(CLI, args, { env });

  await t.test('status before any reload: generation 1, loaded at start, no failure', async () => {
    const { status, body } = await call(`${api}/api/v1/status`);
    assert.equal(status, 200);
    assert.equal(body.generation, 1);
    assert.deepEqual(body.config.generation, 1);
    assert.equal(body.config.file, join(dir, 'main.yaml'));
    assert.match(body.config.loaded_at, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(body.reloads, { success: 0, failure: 0 });
    assert.equal(body.last_reload, null);
    assert.equal(body.last_failed_reload, null);
  });

  await t.test('a reload needs the token, as every write does', async () => {
    const { status, body } = await call(`${api}/api/v1/reload`, 'POST', null);
    assert.equal(status, 401);
    assert.match(body.error, /needs the API token/);
    assert.deepEqual((await call(`${api}/api/v1/status`)).body.reloads, { success: 0, failure: 0 });
  });

  await t.test('a successful reload names the domains and servers added, removed and changed', async () => {
    await writeTree(dir, { 'conf.d/app.yaml': app({ servers: ['192.0.2.1', '192.0.2.3'], ttl: 45, extraDomain: true }) }, 0o600);
    const { status, body } = await call(`${api}/api/v1/reload`, 'POST');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.result, 'success');
    assert.equal(body.generation, 2);
    assert.equal(body.message, 'serving generation 2');
    assert.deepEqual(body.files, [join(dir, 'main.yaml'), join(dir, 'conf.d/app.yaml')]);
    assert.deepEqual(body.changes, {
      domains: { added: ['new.example.test'], removed: [], changed: ['app.example.test'] },
      servers: { added: ['pool/192.0.2.3:80'], removed: ['pool/192.0.2.2:80'], changed: [] },
    });
    assert.deepEqual(body.problems, []);
    assert.deepEqual(body.warnings, []);
    assert.deepEqual(await answers(server.port, 'app.example.test'), { rcode: 'NOERROR', data: ['192.0.2.1', '192.0.2.3'], ttl: 45 });
    assert.equal((await answers(server.port, 'new.example.test')).rcode, 'NOERROR');
  });

  await t.test('an invalid config fails with 422 and every problem at file:line:col; the previous config still answers', async () => {
    await writeTree(dir, { 'conf.d/app.yaml': app({ servers: ['192.0.2.1', '192.0.2.3'], ttl: 45, extraDomain: true, broken: true }) }, 0o600);
    const { status, body } = await call(`${api}/api/v1/reload`, 'POST');
    assert.equal(status, 422, JSON.stringify(body));
    assert.equal(body.result, 'failure');
    assert.equal(body.code, 422);
    assert.equal(body.generation, 2, 'the generation still serving');
    assert.equal(body.changes, null);
    const file = join(dir, 'conf.d/app.yaml');
    assert.deepEqual(body.problems.map((p: { text: string }) => p.text.replace(/: .*$/, '')), [`${file}:9:41`, `${file}:9:53`]);
    assert.match(body.problems[0].text, /domains\[3\]\.regions\[0\]: "mars" is not a region/);
    assert.match(body.error, new RegExp(`^reload failed; the previous config still serves \\(generation 2\\): ${file}:9:41: .* \\(and 1 more problems\\)$`));
    assert.deepEqual(await answers(server.port, 'app.example.test'), { rcode: 'NOERROR', data: ['192.0.2.1', '192.0.2.3'], ttl: 45 });
    const scrape = await (await fetch(`${metrics}/metrics`)).text();
    assert.match(scrape, /^opengslb_config_last_reload_successful 0$/m);
    assert.match(scrape, /^opengslb_config_reloads_total\{result="failure"\} 1$/m);
  });

  await t.test('a change that needs a restart is a failure with that reason', async () => {
    await writeTree(dir, { 'main.yaml': MAIN.map((l) => l.replace('workers: 1', 'workers: 2')), 'conf.d/app.yaml': app({ servers: ['192.0.2.1', '192.0.2.3'], ttl: 45, extraDomain: true }) }, 0o600);
    const { status, body } = await call(`${api}/api/v1/reload`, 'POST');
    assert.equal(status, 422);
    assert.equal(body.message, 'dns.workers changed from 1 to 2; a new worker count needs a restart');
    assert.equal(body.error, 'reload failed; the previous config still serves (generation 2): dns.workers changed from 1 to 2; a new worker count needs a restart');
    assert.deepEqual(body.problems, []);
  });

  await t.test('status shows the config serving, the counts and the last failed reload', async () => {
    const { body } = await call(`${api}/api/v1/status`);
    assert.equal(body.generation, 2);
    assert.equal(body.config.generation, 2);
    assert.deepEqual(body.reloads, { success: 1, failure: 2 });
    assert.equal(body.last_reload.result, 'failure');
    assert.equal(body.last_failed_reload.message, 'dns.workers changed from 1 to 2; a new worker count needs a restart');
    assert.equal(body.last_failed_reload.problems, 0);
  });

  await t.test('opengslb-cli reload prints every problem after its name and exits 1 when the reload fails', async () => {
    await writeTree(dir, { 'main.yaml': MAIN, 'conf.d/app.yaml': app({ servers: ['192.0.2.1'], ttl: 45, broken: true }) }, 0o600);
    const r = await cli('reload', '--token', TOKEN);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'opengslb-cli: reload failed; the previous config still serves (generation 2)');
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[1], new RegExp(`^opengslb-cli: ${join(dir, 'conf.d/app.yaml')}:8:41: domains\\[2\\]\\.regions\\[0\\]: "mars" is not a region`));
    const status = await cli('status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`\\nConfig: +${join(dir, 'main.yaml')}, generation 2, loaded \\S+ \\(\\d+s ago\\)\\n`));
    assert.match(status.stdout, /\nReloads: +1 succeeded, 3 failed\n/);
    assert.match(status.stdout, new RegExp(`\\nLast failed: +\\S+ \\(\\d+s ago\\): ${join(dir, 'conf.d/app.yaml')}:8:41: .* \\(and 1 more problems\\)\\n`));
  });

  await t.test('opengslb-cli reload prints the new generation and what changed, and exits 0', async () => {
    await writeTree(dir, { 'conf.d/app.yaml': app({ servers: ['192.0.2.1'], ttl: 45 }) }, 0o600);
    const r = await cli('reload', '--token', TOKEN);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `Reloaded from ${join(dir, 'main.yaml')} and 1 more files: serving generation 3\n` +
        'Domains:  -new.example.test\n' +
        'Servers:  -pool/192.0.2.3:80\n',
    );
    const scrape = await (await fetch(`${metrics}/metrics`)).text();
    assert.match(scrape, /^opengslb_config_last_reload_successful 1$/m);
  });

  await t.test('a reload of a config that loads with warnings applies it and names each warning in its outcome and in opengslb-cli reload', async () => {
    await writeTree(dir, { 'conf.d/app.yaml': app({ servers: ['192.0.2.1', '192.0.2.4'], ttl: 45, drained: true }) }, 0o600);
    const { status, body } = await call(`${api}/api/v1/reload`, 'POST');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.result, 'success');
    assert.deepEqual(body.changes.domains.changed, ['app.example.test']);
    assert.equal(body.warnings.length, 1, JSON.stringify(body.warnings));
    const w = body.warnings[0];
    assert.equal(w.file, join(dir, 'conf.d/app.yaml'));
    assert.deepEqual([w.line, w.path], [6, 'domains[0].name']);
    assert.match(w.message, /every server of app\.example\.test has weight 0 .*expected at least one server with a weight above 0/);
    assert.equal(w.text, `${w.file}:${w.line}:${w.col}: ${w.path}: ${w.message}`);
    // The status keeps the last reload's warnings; the CLI prints them after what changed.
    assert.deepEqual((await call(`${api}/api/v1/status`)).body.last_reload.warnings, body.warnings);
    const r = await cli('reload', '--token', TOKEN);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Reloaded from ${join(dir, 'main.yaml')} and 1 more files: serving generation ${body.generation + 1}\n` +
      'Domains:  no change\n' +
      'Servers:  no change\n' +
      `warning: ${w.text}\n`);
    // A failed reload has no warnings of its own: the new config did not load.
    await writeTree(dir, { 'conf.d/app.yaml': app({ servers: ['192.0.2.1'], ttl: 45, drained: true, broken: true }) }, 0o600);
    const failed = await call(`${api}/api/v1/reload`, 'POST');
    assert.equal(failed.status, 422);
    assert.deepEqual(failed.body.warnings, []);
    await writeTree(dir, { 'conf.d/app.yaml': app({ servers: ['192.0.2.1'], ttl: 45 }) }, 0o600);
  });

  await t.test('requests while a reload runs are folded into the next one: reloads never interleave', async () => {
    const before = (await call(`${api}/api/v1/status`)).body.reloads.success;
    const outcomes = await Promise.all([1, 2, 3, 4].map(() => call(`${api}/api/v1/reload`, 'POST')));
    for (const o of outcomes) assert.equal(o.status, 200);
    const after = (await call(`${api}/api/v1/status`)).body.reloads.success;
    assert.ok(after - before >= 1 && after - before <= 2, `4 concurrent requests ran ${after - before} reloads`);
    const generations = outcomes.map((o) => o.body.generation as number);
    assert.equal(new Set(generations).size, after - before, `each reload published once: ${generations.join(', ')}`);
  });
});
