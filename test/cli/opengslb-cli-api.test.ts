// Whole-system tests of opengslb-cli: the real `opengslb` binary with its
// admin API on 127.0.0.1 port 0, real HTTP health-check targets, and every
// command run as a child process against it, including an override set →
// seen by servers, domains, explain and status → cleared.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { httpBackend } from '../helpers/backends.ts';
import { CLI, run, startOpengslb, type RunResult } from '../helpers/child.ts';
import { tempDir, writeTree } from '../helpers/config-files.ts';
import { ROOT } from '../helpers/markdown.ts';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TOKEN = 'cli-test-token-0123456789';

interface Fixture {
  readonly api: string;
  readonly up: string;
  readonly down: string;
  readonly cli: (...args: string[]) => Promise<RunResult>;
}

/** Starts opengslb with the API enabled (token set) over one healthy and one failing HTTP backend plus an unchecked IPv6 server. */
async function startFixture(t: TestContext): Promise<Fixture> {
  const up = await httpBackend(t, 200);
  const down = await httpBackend(t, 503);
  const dir = await tempDir(t, 'opengslb-cli-api-');
  await writeTree(
    dir,
    {
      'config.yaml': [
        'dns:',
        '  listen_address: "127.0.0.1:0"',
        '  workers: 1',
        '  zones: [example.test]',
        '  nameservers:',
        '    - name: ns1.example.test',
        '      addresses: [127.0.0.1]',
        'regions:',
        '  - name: eu-west',
        '    servers:',
        `      - { address: ${up.address}, port: ${up.port} }`,
        `      - { address: ${down.address}, port: ${down.port} }`,
        '    health_check: { type: http, interval: 1s, timeout: 500ms, path: /health }',
        '  - name: v6',
        '    servers:',
        '      - { address: "::1", port: 80 }',
        '    health_check: { type: none }',
        'domains:',
        '  - { name: app.example.test, regions: [eu-west, v6], ttl: 30 }',
        '  - { name: www.example.test, routing_algorithm: weighted, regions: [eu-west], when_all_down: fallback, fallback: [192.0.2.99] }',
        'api:',
        '  enabled: true',
        '  address: "127.0.0.1:0"',
        `  token: ${TOKEN}`,
        'overwatch: { data_dir: ./data }',
        'logging: { level: info, format: text }',
      ],
    },
    // The token is a secret: the loader refuses a world-readable file holding one.
    0o600,
  );
  const server = await startOpengslb(t, join(dir, 'config.yaml'));
  // The API starts before DNS, so its line is already there.
  const line = await server.out.waitFor(/API listening/);
  const m = /address=(127\.0\.0\.1:\d+)/.exec(line);
  assert.ok(m, line);
  const api = `http://${m[1]}`;
  const env: NodeJS.ProcessEnv = { ...process.env, USER: 'tester' };
  delete env.OPENGSLB_API;
  delete env.OPENGSLB_TOKEN;
  delete env.OPENGSLB_API_TOKEN;
  return { api, up: up.address, down: down.address, cli: (...args) => run(CLI, [...args, '--api', api], { env }) };
}

/** Asserts exit 0 and nothing on stderr, and returns stdout. */
function ok(r: RunResult): string {
  assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  assert.equal(r.stderr, '');
  return r.stdout;
}

/** Returns the table row of stdout that starts with `first` (then whitespace), split into cells. */
function row(stdout: string, first: string): string[] {
  const line = stdout.split('\n').find((l) => l.trimStart().startsWith(first + ' '));
  assert.ok(line !== undefined, `no row for ${first} in:\n${stdout}`);
  return line.trim().split(/\s{2,}/);
}

test('every opengslb-cli command works against the live admin API of a running opengslb', async (t) => {
  const f = await startFixture(t);

  await t.test('status shows the server version, readiness, per-region health and the domain count', async () => {
    const out = ok(await f.cli('status'));
    assert.match(out, new RegExp(`^OpenGSLB ${VERSION.replace(/\./g, '\\.')} at ${f.api}\\n`));
    assert.match(out, /\nReady: +yes \(DNS listening: yes, first health round done: yes\)\n/);
    assert.match(out, /\nDomains: +2\n/);
    assert.match(out, /\nOverrides: +0 active\n/);
    assert.deepEqual(row(out, 'eu-west'), ['eu-west', '2', '1', '1', '0', '50.0%']);
    assert.deepEqual(row(out, 'v6'), ['v6', '1', '1', '0', '0', '100.0%']);
    assert.deepEqual(row(out, '(all)'), ['(all)', '3', '2', '1', '0', '66.7%']);
  });

  await t.test('servers lists every server with status, authority, latency, last check and last error', async () => {
    const out = ok(await f.cli('servers'));
    assert.match(out.split('\n')[0], /^ADDRESS +PORT +REGION +STATUS +AUTHORITY +LATENCY +LAST-CHECK +LAST-ERROR$/);
    const up = row(out, f.up);
    assert.deepEqual(up.slice(2, 5), ['eu-west', 'healthy', 'health_check']);
    assert.match(up[5], /^\d+\.\dms$/);
    assert.match(up[6], /^\d+s ago$/);
    assert.equal(up[7], '-');
    const down = row(out, f.down);
    assert.deepEqual(down.slice(2, 5), ['eu-west', 'unhealthy', 'health_check']);
    assert.match(down[7], /503/);
    assert.deepEqual(row(out, '::1'), ['::1', '80', 'v6', 'healthy', 'unchecked', '-', '-', '-']);
  });

  await t.test('servers passes --status, --region and --domain to the API, which filters', async () => {
    // Reads only: the five run at once.
    const [byStatus, byRegion, byDomain, r, unknown] = await Promise.all([
      f.cli('servers', '--status', 'unhealthy'),
      f.cli('servers', '--region', 'v6'),
      f.cli('servers', '--domain', 'www.example.test'),
      f.cli('servers', '--region', 'nowhere'),
      f.cli('servers', '--status', 'unknown'),
    ]);
    assert.deepEqual(ok(byStatus).trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), [f.down]);
    assert.deepEqual(ok(byRegion).trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['::1']);
    assert.deepEqual(ok(byDomain).trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]).sort(), [f.up, f.down].sort());
    // A region no config has is the API's 400 (it used to be an empty list that read as "no servers there").
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, 'opengslb-cli: query parameter "region": no region "nowhere" is configured; expected one of: eu-west, v6 (HTTP 400)\n');
    assert.equal(ok(unknown), 'No servers match.\n');
  });

  await t.test('domains shows each domain\'s policy, healthy/total servers and all-down behaviour', async () => {
    const out = ok(await f.cli('domains'));
    assert.deepEqual(row(out, 'app.example.test'), ['app.example.test', 'round-robin', '30', '2/3', 'servfail']);
    assert.deepEqual(row(out, 'www.example.test'), ['www.example.test', 'weighted', '60', '1/2', 'fallback 192.0.2.99']);
  });

  await t.test('an override needs the token: without one the API answers 401 and the CLI says how to pass it', async () => {
    const r = await f.cli('overrides', 'set', 'app.example.test', '::1', '--unhealthy', '--reason', 'kernel upgrade');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^opengslb-cli: .+ \(HTTP 401\)\nhint: .*--token TOKEN or set \$OPENGSLB_API_TOKEN\n$/);
    assert.equal(ok(await f.cli('overrides', 'list')), 'No overrides.\n');
  });

  await t.test('overrides set stores the override (IPv6 address in the path) and prints what the API stored', async () => {
    const out = ok(await f.cli('overrides', 'set', 'APP.example.test.', '::1', '--unhealthy', '--reason', 'kernel upgrade', '--token', TOKEN));
    assert.match(out, /^Override set: ::1 in app\.example\.test is unhealthy \(reason: kernel upgrade; source: tester@.+; at \d{4}-\d\d-\d\dT/);
    assert.doesNotMatch(out, /Not active/);
  });

  await t.test('overrides list, servers, domains, explain and status all show the override', async () => {
    // Reads only: the five run at once.
    const [listed, serversOut, domainsOut, explainOut, statusOut] = await Promise.all([
      f.cli('overrides', 'list'),
      f.cli('servers'),
      f.cli('domains', 'app.example.test'),
      f.cli('explain', 'app.example.test', '--type', 'AAAA'),
      f.cli('status'),
    ]);
    const list = ok(listed);
    assert.deepEqual(row(list, 'domain').slice(0, 6), ['domain', '::1 in app.example.test', 'unhealthy', 'yes', '-', 'kernel upgrade']);

    const servers = ok(serversOut);
    // STATUS stays the checks' verdict; AUTHORITY and the block below say an override decides in app.example.test.
    assert.deepEqual(row(servers, '::1').slice(0, 5), ['::1', '80', 'v6', 'healthy', 'override']);
    assert.match(servers, /\n {2}app\.example\.test +::1 +80 +unhealthy +domain +- +kernel upgrade +tester@/);

    const domains = ok(domainsOut);
    assert.deepEqual(row(domains, 'app.example.test'), ['app.example.test', 'round-robin', '30', '1/3', 'servfail']);
    assert.match(row(domains, '::1').join('|'), /^::1\|80\|v6\|100\|1\|unhealthy\|override\|kernel upgrade \(tester@.+\)$/);

    // ::1 is the domain's only IPv6 server: with it overridden down, AAAA has nothing to answer and when_all_down decides.
    const explain = ok(explainOut);
    assert.match(explain, /\nResult: +SERVFAIL, not authoritative\n/);
    const v6 = row(explain, '::1');
    assert.deepEqual(v6.slice(5, 10), ['drained', 'healthy', 'override', '-', 'no']);
    assert.match(v6[10], /^overridden down by tester@.+ \(this domain only, until cleared\): kernel upgrade$/);
    assert.match(explain, /\nAll down: +no server is eligible: when_all_down servfail gives SERVFAIL\n/);

    const status = ok(statusOut);
    assert.match(status, /\nOverrides: +1 active\n/);
    assert.match(status, /\nActive overrides:\n {2}SCOPE.*\n {2}domain +::1 in app\.example\.test +unhealthy +- +kernel upgrade +tester@/);
  });

  await t.test('overrides clear removes it, says what it was, and the listings go back to the checks', async () => {
    const out = ok(await f.cli('overrides', 'clear', 'app.example.test', '::1', '--token', TOKEN));
    assert.match(out, /^Override cleared: ::1 in app\.example\.test was forced unhealthy \(reason: kernel upgrade; source: tester@.+; since .+\); the health checks decide again, unless a wider override covers it\.\n$/);
    // After the clear, three reads at once.
    const [list, servers, domains] = await Promise.all([f.cli('overrides', 'list'), f.cli('servers'), f.cli('domains')]);
    assert.equal(ok(list), 'No overrides.\n');
    assert.deepEqual(row(ok(servers), '::1').slice(3, 5), ['healthy', 'unchecked']);
    assert.deepEqual(row(ok(domains), 'app.example.test')[3], '2/3');
  });

  await t.test('clearing an override that is not there exits 1 with the API\'s 404 message', async () => {
    const r = await f.cli('overrides', 'clear', 'app.example.test', '::1', '--token', TOKEN);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^opengslb-cli: .*::1.* \(HTTP 404\)\n$/);
    assert.equal(r.stdout, '');
  });

  await t.test('explain prints the answer, the policy and every candidate with why it is or is not eligible', async () => {
    const out = ok(await f.cli('explain', 'app.example.test'));
    assert.match(out, /^Query: +app\.example\.test A\n/);
    assert.match(out, /\nPolicy: +round-robin, max_answers 1, when_all_down servfail\n/);
    assert.match(out, new RegExp(`\\nAnswer: +${f.up.replace(/\./g, '\\.')} \\(`));
    assert.equal(row(out, f.up)[9], 'yes');
    const down = row(out, f.down);
    assert.equal(down[9], 'no');
    assert.match(down[10], /503/);
  });

  await t.test('explain of a name outside every zone says REFUSED and why', async () => {
    const out = ok(await f.cli('explain', 'www.elsewhere.test'));
    assert.match(out, /\nResult: +REFUSED, not authoritative\n/);
    assert.match(out, /\nNotes:\n {2}- www\.elsewhere\.test is not inside any zone/);
  });

  await t.test('an API validation error (a bad --type) exits 1 with the API\'s message and HTTP 400', async () => {
    const r = await f.cli('explain', 'app.example.test', '--type', 'NOPE');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^opengslb-cli: .*"NOPE".* \(HTTP 400\)\n$/);
  });

  await t.test('an --api by a name not in api.allowed_hosts prints the API\'s 403 and a hint naming the key and the name', async (st) => {
    // The machine's own name, when it resolves to loopback (as /etc/hosts usually makes it): the one name a test can reach the API by.
    const name = hostname();
    const address = await lookup(name).then((a) => a.address, () => null);
    if (address !== '127.0.0.1') {
      st.skip(`${name} (this machine's name) resolves to ${address ?? 'nothing'}, not 127.0.0.1, so no host name reaches the API`);
      return;
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.OPENGSLB_API;
    const r = await run(CLI, ['servers', '--api', f.api.replace('127.0.0.1', name)], { env });
    assert.equal(r.code, 1);
    const lower = name.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(r.stderr, new RegExp(`^opengslb-cli: Host "${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+" is not an IP address, "localhost" or a name in api\\.allowed_hosts .*add "${lower}" to api\\.allowed_hosts \\(HTTP 403\\)\n`));
    assert.match(r.stderr, new RegExp(`\nhint: the overwatch answers only names in its api\\.allowed_hosts \\(against DNS rebinding\\): add "${lower}" there and reload it, or give --api by IP address\n$`));
    assert.doesNotMatch(r.stderr, /allowed_networks/);
  });

  await t.test('--json prints the API\'s own JSON for each command', async () => {
    // Reads only: the four run at once.
    const [serversOut, domainsOut, statusOut, explainOut] = await Promise.all([
      f.cli('servers', '--json'),
      f.cli('domains', '--json'),
      f.cli('status', '--json'),
      f.cli('explain', 'www.example.test', '--json'),
    ]);
    const servers = JSON.parse(ok(serversOut)) as { servers: { address: string }[]; generated_at: string };
    assert.equal(servers.servers.length, 3);
    assert.equal(typeof servers.generated_at, 'string');
    const domains = JSON.parse(ok(domainsOut)) as { domains: { name: string }[] };
    assert.deepEqual(domains.domains.map((d) => d.name).sort(), ['app.example.test', 'www.example.test']);
    const status = JSON.parse(ok(statusOut)) as Record<string, { version?: string; ready?: boolean }>;
    assert.deepEqual(Object.keys(status), ['version', 'ready', 'config', 'regions', 'domains', 'overrides']);
    assert.equal(status.version.version, VERSION);
    assert.equal(status.ready.ready, true);
    const explain = JSON.parse(ok(explainOut)) as { policy: string; candidates: unknown[] };
    assert.equal(explain.policy, 'weighted');
    assert.equal(explain.candidates.length, 2);
  });
});
