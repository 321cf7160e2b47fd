// deploy/systemd/: the overwatch and agent units and the sysusers file.
// systemd-analyze and systemd-sysusers (Debian package systemd) check them for
// real where they are installed; no systemd runs as PID 1 here, so nothing is
// started. The rest reads the units and holds them against the server's own
// flags (src/cli/runtime-flags.js), the package layout and the config defaults.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { parseConfigText } from '../../src/config/load.ts';
import { ROOT } from '../helpers/markdown.ts';

const DIR = join(ROOT, 'deploy/systemd');
const UNITS = ['opengslb-overwatch.service', 'opengslb-agent.service'] as const;
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; bin: Record<string, string>; scripts: Record<string, string> };

/** A unit file as section → key → every value the key was given, in order. */
type Unit = Record<string, Record<string, string[]>>;

/** Parses a unit file: [Section] headers, Key=Value lines, comments dropped (no continuation lines are used here). */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0 && section !== '', `a Key=Value line in a section: ${line}`);
    ((unit[section] as Record<string, string[]>)[line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return unit;
}

const units = Object.fromEntries(UNITS.map((u) => [u, parseUnit(readFileSync(join(DIR, u), 'utf8'))])) as Record<(typeof UNITS)[number], Unit>;

/** The one value of [Service] `key`, failing when it is absent or given twice. */
function service(unit: (typeof UNITS)[number], key: string): string {
  const values = units[unit].Service?.[key] ?? [];
  assert.equal(values.length, 1, `${unit}: exactly one ${key}= (got ${JSON.stringify(values)})`);
  return values[0]!;
}

/** Where a tool is, or why the test that needs it is skipped. */
function tool(name: string): { path: string } | { skip: string } {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? { path: r.stdout.trim() } : { skip: `${name} is not installed: install the Debian package systemd (apt-get install systemd; .ci/run does)` };
}
const analyze = tool('systemd-analyze');
const sysusers = tool('systemd-sysusers');

test('systemd-analyze verify accepts both units without a warning', { skip: 'skip' in analyze ? analyze.skip : false }, () => {
  const r = spawnSync('systemd-analyze', ['verify', ...UNITS.map((u) => join(DIR, u))], { encoding: 'utf8', timeout: 30_000 });
  // verify resolves ExecStart=node on systemd's own search path (/usr/local/bin, /usr/bin, …).
  assert.ok(!/Command node is not executable/.test(r.stderr), `systemd-analyze verify needs a \`node\` on systemd's search path to check ExecStart=node …:\n${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  // Unknown keys and bad values are warnings on stderr with exit 0: none allowed.
  assert.equal(r.stderr, '');
});

test('systemd-analyze security rates both units OK (exposure below 3.0 of 10)', { skip: 'skip' in analyze ? analyze.skip : false }, (t) => {
  for (const u of UNITS) {
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', join(DIR, u)], { encoding: 'utf8', timeout: 30_000 });
    if (/unrecognized option|unknown option/i.test(r.stderr)) {
      t.skip(`this systemd-analyze has no --offline (systemd < 250): ${r.stderr.trim()}`);
      return;
    }
    const m = /Overall exposure level for \S+: (\d+\.\d+) (\S+)/.exec(r.stdout);
    assert.ok(m, `${u}: no exposure line\n${r.stdout}\n${r.stderr}`);
    assert.ok(Number(m[1]) < 3, `${u}: exposure ${m[1]} ${m[2]}`);
  }
});

for (const u of UNITS) {
  test(`${u} runs the installed server with the Node flags and environment of npm start`, () => {
    const exec = service(u, 'ExecStart').split(/\s+/);
    const entry = `/opt/opengslb/lib/node_modules/${PKG.name}/${PKG.bin.opengslb}`;
    assert.deepEqual(exec.slice(0, SERVER_NODE_FLAGS.length + 2), ['node', ...SERVER_NODE_FLAGS, entry]);
    const env = units[u].Service?.Environment ?? [];
    for (const [k, v] of Object.entries(SERVER_ENV)) assert.ok(env.includes(`${k}=${v}`), `${u}: Environment=${k}=${v}`);
    // npm start carries the same (test/cli/opengslb.test.ts checks it against runtime-flags.js too).
    for (const [k, v] of Object.entries(SERVER_ENV)) assert.ok(PKG.scripts.start!.includes(`${k}=${v}`));
    for (const f of SERVER_NODE_FLAGS) assert.ok(PKG.scripts.start!.includes(f));
    assert.equal(exec[exec.indexOf('--config') + 1], u === 'opengslb-overwatch.service' ? '/etc/opengslb/config.yaml' : '/etc/opengslb/agent.yaml');
    if (u === 'opengslb-agent.service') assert.equal(exec[exec.indexOf('--mode') + 1], 'agent');
  });
}

const SETTINGS: { unit: (typeof UNITS)[number]; key: string; value: string }[] = [
  ...UNITS.flatMap((unit) => [
    { unit, key: 'User', value: 'opengslb' },
    { unit, key: 'Group', value: 'opengslb' },
    { unit, key: 'ProtectSystem', value: 'strict' },
    { unit, key: 'StateDirectory', value: 'opengslb' },
    { unit, key: 'NoNewPrivileges', value: 'yes' },
    { unit, key: 'ExecReload', value: 'kill -HUP $MAINPID' },
    { unit, key: 'Restart', value: 'on-failure' },
    { unit, key: 'RestartPreventExitStatus', value: '2' },
  ]),
  { unit: 'opengslb-overwatch.service', key: 'CapabilityBoundingSet', value: 'CAP_NET_BIND_SERVICE' },
  { unit: 'opengslb-overwatch.service', key: 'AmbientCapabilities', value: 'CAP_NET_BIND_SERVICE' },
  // The agent binds no privileged port: an empty set, stricter than the overwatch's one capability.
  { unit: 'opengslb-agent.service', key: 'CapabilityBoundingSet', value: '' },
  { unit: 'opengslb-agent.service', key: 'AmbientCapabilities', value: '' },
];

for (const s of SETTINGS) {
  test(`${s.unit} sets ${s.key}=${s.value}`, () => {
    assert.equal(service(s.unit, s.key), s.value);
  });
}

test('the units give the server time to stop cleanly and keep state where the config defaults put it', () => {
  for (const u of UNITS) {
    // The server exits within 5 s of SIGTERM; systemd must not SIGKILL it sooner.
    const stop = /^(\d+)s$/.exec(service(u, 'TimeoutStopSec'));
    assert.ok(stop && Number(stop[1]) > 5, `${u}: TimeoutStopSec above 5 s`);
    assert.deepEqual(units[u].Install?.WantedBy, ['multi-user.target']);
  }
  // StateDirectory=opengslb is /var/lib/opengslb, overwatch.data_dir's default.
  const config = parseConfigText('dns: { listen_address: "127.0.0.1:0", zones: [example.test] }\nregions: [{ name: r, servers: [{ address: 192.0.2.1 }] }]\ndomains: [{ name: a.example.test, regions: [r] }]\n', '/etc/opengslb/config.yaml', { env: {} });
  assert.equal(config.dataDir, `/var/lib/${service('opengslb-overwatch.service', 'StateDirectory')}`);
});

test('the sysusers file creates the opengslb system user and group, with no login shell', { skip: 'skip' in sysusers ? sysusers.skip : false }, async (t: TestContext) => {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-sysusers-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'etc'));
  const r = spawnSync('systemd-sysusers', [`--root=${root}`, join(DIR, 'opengslb.sysusers.conf')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
  const m = /^opengslb:x:(\d+):(\d+):[^:]*:\/var\/lib\/opengslb:\/usr\/sbin\/nologin$/m.exec(passwd);
  assert.ok(m, passwd);
  assert.ok(Number(m[1]) < 1000, `a system uid: ${m[1]}`);
  assert.match(readFileSync(join(root, 'etc/group'), 'utf8'), new RegExp(`^opengslb:x:${m[2]}:`, 'm'));
});
