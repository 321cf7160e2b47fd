// `config validate FILE [--json]` through both real entry points, as child
// processes, on real files in a temporary directory: the same verdict as the
// server's loader, a summary or every problem, exit 0/1/2.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, run, SERVER } from '../helpers/child.ts';
import { configTree, posixOnly } from '../helpers/config-files.ts';

const MAIN = [
  'dns:',
  '  listen_address: "${LISTEN:-127.0.0.1:0}"',
  '  zones: [example.test, example.org]',
  'includes: [conf.d/*.yaml]',
];
const REGIONS = ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10 }, { address: 192.0.2.11 }]', '  - name: us-east', '    servers: [{ address: 192.0.2.20 }]'];
const DOMAINS = ['domains:', '  - { name: app.example.test, regions: [eu-west] }', '  - { name: www.example.org, regions: [us-east, eu-west] }'];

const entries = [
  { program: 'opengslb-cli', entry: CLI },
  { program: 'opengslb', entry: SERVER },
];

for (const { program, entry } of entries) {
  test(`${program} config validate prints a summary with every file read and exits 0 for a valid multi-file config`, async (t) => {
    const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': REGIONS, 'conf.d/20-domains.yaml': DOMAINS });
    const r = await run(entry, ['config', 'validate', 'main.yaml'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'main.yaml: valid (mode overwatch, 2 zones, 2 regions, 2 domains, 3 servers, 3 files)',
        '  read main.yaml',
        '  read conf.d/10-regions.yaml',
        '  read conf.d/20-domains.yaml',
        '',
      ].join('\n'),
    );
    assert.equal(r.stderr, '');
  });

  test(`${program} config validate --json prints { valid: true, summary } for a valid config`, async (t) => {
    const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': REGIONS, 'conf.d/20-domains.yaml': DOMAINS });
    const r = await run(entry, ['config', 'validate', '--json', 'main.yaml'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      valid: true,
      summary: { mode: 'overwatch', zones: 2, regions: 2, domains: 2, servers: 3, files: ['main.yaml', 'conf.d/10-regions.yaml', 'conf.d/20-domains.yaml'] },
      warnings: [],
    });
  });

  test(`${program} config validate warns (exit 0) about a weighted domain whose every server has weight 0, naming its file and line`, async (t) => {
    const regions = ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10, weight: 0 }, { address: 192.0.2.11, weight: 0 }]', '  - name: us-east', '    servers: [{ address: 192.0.2.20 }]'];
    const domains = [
      'domains:',
      '  - { name: app.example.test, regions: [eu-west], routing_algorithm: weighted }',
      '  - { name: www.example.org, regions: [us-east, eu-west], routing_algorithm: weighted }',
      '  - { name: rr.example.org, regions: [eu-west] }',
    ];
    const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': regions, 'conf.d/20-domains.yaml': domains });
    const r = await run(entry, ['config', 'validate', 'main.yaml'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^main\.yaml: valid \(mode overwatch, 2 zones, 2 regions, 3 domains, 3 servers, 3 files\)\n/);
    // Only app.example.test: www.example.org has a server of weight 100, rr.example.org's policy does not read weights.
    assert.equal(
      r.stderr,
      `${program}: warning: conf.d/20-domains.yaml:2:13: domains[0].name: every server of app.example.test has weight 0 (weight 0 drains a server under weighted): ` +
        'DNS answers it only by when_all_down, and every mode but fallback leaves weight-0 servers out, so it answers SERVFAIL; ' +
        'expected at least one server with a weight above 0, or when_all_down: fallback to answer fixed addresses while every server is drained\n',
    );
    const j = await run(entry, ['config', 'validate', 'main.yaml', '--json'], { cwd: dir });
    assert.equal(j.code, 0, j.stderr);
    assert.equal(j.stderr, '');
    const out = JSON.parse(j.stdout) as { valid: boolean; warnings: { file: string; line: number; col: number; path: string; message: string }[] };
    assert.equal(out.valid, true);
    assert.deepEqual(out.warnings.map((w) => [w.file, w.line, w.col, w.path]), [['conf.d/20-domains.yaml', 2, 13, 'domains[0].name']]);
    assert.match(out.warnings[0]?.message ?? '', /^every server of app\.example\.test has weight 0/);
  });

  test(`${program} config validate prints every problem of every file on stderr and exits 1`, async (t) => {
    const dir = await configTree(t, {
      'main.yaml': MAIN,
      'conf.d/10-regions.yaml': REGIONS.map((l) => l.replace('192.0.2.11', '192.0.2.311')),
      'conf.d/20-domains.yaml': DOMAINS.map((l) => l.replace('[us-east, eu-west]', '[us-east, mars]')),
    });
    const r = await run(entry, ['config', 'validate', 'main.yaml'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0] ?? '', new RegExp(`^${program}: `));
    assert.match(lines[1] ?? '', new RegExp(`^${program}: `));
    assert.match(lines[0]?.slice(program.length + 2) ?? '', /^conf\.d\/10-regions\.yaml:3:51: regions\[0\]\.servers\[1\]\.address: "192\.0\.2\.311" is not an IP address/);
    assert.match(lines[1]?.slice(program.length + 2) ?? '', /^conf\.d\/20-domains\.yaml:3:49: domains\[1\]\.regions\[1\]: "mars" is not a region in regions/);
  });

  test(`${program} config validate --json prints { valid: false, problems } with file, line, col, path and message`, async (t) => {
    const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': REGIONS, 'conf.d/20-domains.yaml': [...DOMAINS, 'logging: { level: loud }'] });
    const r = await run(entry, ['config', 'validate', 'main.yaml', '--json'], { cwd: dir });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, '');
    assert.deepEqual(JSON.parse(r.stdout), {
      valid: false,
      code: 'OPENGSLB_ERR_CONFIG_INVALID',
      problems: [
        {
          file: 'conf.d/20-domains.yaml',
          line: 4,
          col: 19,
          path: 'logging.level',
          message: '"loud" is not a known log level, expected one of debug, info, warn, error',
        },
      ],
    });
  });

  test(`${program} config validate expands \${VAR} from its own environment, as the server would`, async (t) => {
    const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': REGIONS, 'conf.d/20-domains.yaml': DOMAINS });
    const r = await run(entry, ['config', 'validate', '--json', 'main.yaml'], { cwd: dir, env: { ...process.env, LISTEN: 'localhost:53' } });
    assert.equal(r.code, 1);
    const problem = (JSON.parse(r.stdout) as { problems: { path: string; message: string }[] }).problems[0];
    assert.equal(problem?.path, 'dns.listen_address');
    assert.match(problem?.message ?? '', /"localhost:53" has the host "localhost", which is not an IP literal.*\(after expanding "\$\{LISTEN:-127\.0\.0\.1:0\}"\)$/);
  });

  test(`${program} config validate refuses a world-writable include with the permissions error code`, posixOnly, async (t) => {
    const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': REGIONS, 'conf.d/20-domains.yaml': DOMAINS });
    await chmod(join(dir, 'conf.d/20-domains.yaml'), 0o666);
    const r = await run(entry, ['config', 'validate', '--json', 'main.yaml'], { cwd: dir });
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout) as { code: string; problems: { file: string; line: number; message: string }[] };
    assert.equal(out.code, 'OPENGSLB_ERR_CONFIG_PERMISSIONS');
    assert.deepEqual(out.problems.map((p) => [p.file, p.line]), [['conf.d/20-domains.yaml', 0]]);
    assert.match(out.problems[0]?.message ?? '', /chmod o-w conf\.d\/20-domains\.yaml/);
  });

  test(`${program} config validate exits 2 with the usage when FILE is missing`, async () => {
    const r = await run(entry, ['config', 'validate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^${program} config validate: missing FILE\nusage: ${program} config validate FILE \\[--mode overwatch\\|agent\\] \\[--environment-file FILE\\] \\[--json\\]\n$`));
    assert.equal(r.stdout, '');
  });
}

// The unit gives the server its secrets through EnvironmentFile=/etc/opengslb/opengslb.env
// (docs/install.md); the operator's shell has none of them, so a config with
// ${OPENGSLB_API_TOKEN} failed `config validate` although the service starts with it.
const WITH_TOKEN = [...MAIN, 'api: { enabled: true, address: "127.0.0.1:0", token: "${OPENGSLB_API_TOKEN}" }'];

for (const { program, entry } of entries) {
  test(`${program} config validate --environment-file expands \${VAR} from the unit's environment file, as the service gets them`, async (t) => {
    const dir = await configTree(t, {
      'main.yaml': WITH_TOKEN,
      'conf.d/10-regions.yaml': REGIONS,
      'conf.d/20-domains.yaml': DOMAINS,
      'opengslb.env': ['# read by systemd before it drops privileges', 'OPENGSLB_API_TOKEN=Zm9yLXRoZS1hcGktMDEyMzQ1Njc4OWFi+/=='],
    }, 0o640);
    const env = { ...process.env };
    delete env.OPENGSLB_API_TOKEN;
    const shell = await run(entry, ['config', 'validate', 'main.yaml'], { cwd: dir, env });
    assert.equal(shell.code, 1, shell.stdout);
    assert.match(shell.stderr, /api\.token: uses \$\{OPENGSLB_API_TOKEN\}, but the environment variable OPENGSLB_API_TOKEN is not set/);
    const unit = await run(entry, ['config', 'validate', 'main.yaml', '--environment-file', 'opengslb.env'], { cwd: dir, env });
    assert.equal(unit.code, 0, unit.stderr);
    assert.match(unit.stdout, /^main\.yaml: valid \(mode overwatch, /);
    const missing = await run(entry, ['config', 'validate', 'main.yaml', '--environment-file', 'nothing.env'], { cwd: dir, env });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `${program} config validate: --environment-file nothing.env: cannot read it: no such file\n`);
  });
}

// An agent's file may leave `mode:` out and rely on `opengslb --mode agent`: without the same
// flag, validate checked it as an overwatch's file and refused what the server runs.
const AGENT = [
  'agent:',
  '  identity: { service_token: token-for-app-0123456789, region: eu-west }',
  '  backends: [{ service: app.example.test, address: 10.0.0.1, port: 8080 }]',
  '  gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", overwatch_nodes: ["ow-1.example.test:7946"] }',
];

for (const { program, entry } of entries) {
  test(`${program} config validate --mode agent checks a file as opengslb --mode agent runs it`, async (t) => {
    const dir = await configTree(t, { 'agent.yaml': AGENT }, 0o640);
    const plain = await run(entry, ['config', 'validate', 'agent.yaml'], { cwd: dir });
    assert.equal(plain.code, 1, plain.stdout);
    assert.match(plain.stderr, /agent\.yaml:1:1: regions: is missing, expected a list of regions \(required when mode is overwatch\)/);
    const agent = await run(entry, ['config', 'validate', 'agent.yaml', '--mode', 'agent'], { cwd: dir });
    assert.equal(agent.code, 0, agent.stderr);
    assert.match(agent.stdout, /^agent\.yaml: valid \(mode agent, /);
    const bad = await run(entry, ['config', 'validate', '--mode', 'relay', 'agent.yaml'], { cwd: dir });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--mode: "relay" is not a mode, expected overwatch or agent/);
  });
}

test('opengslb still takes its flags after the config subcommand was added', async () => {
  const r = await run(SERVER, ['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^OpenGSLB \d+\.\d+\.\d+\nIP geolocation by DB-IP /);
});

test('opengslb exits 2 for an unknown config subcommand', async () => {
  const r = await run(SERVER, ['config', 'frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "config frobnicate"/);
});

test('both programs give the same verdict, byte for byte, on the same files', async (t) => {
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-regions.yaml': REGIONS, 'conf.d/20-domains.yaml': [...DOMAINS, '  - { name: bad..name, regions: [eu-west] }'] });
  const [a, b] = await Promise.all(entries.map(({ entry }) => run(entry, ['config', 'validate', '--json', 'main.yaml'], { cwd: dir })));
  assert.equal(a?.code, 1);
  assert.equal(a?.stdout, b?.stdout);
  assert.equal(a?.code, b?.code);
});
