// ${VAR} and ${VAR:-default} expansion: the expansion rules one case at a
// time, then through the loader with real files: typed keys, positions of
// unset variables, includes and the environment of the process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { expandEnv } from '../../src/config/env.ts';
import type { Environment } from '../../src/config/env.ts';
import { ConfigError, loadConfig, parseConfigText } from '../../src/config/load.ts';
import { configTree } from '../helpers/config-files.ts';

const ENV: Environment = { HOST: '10.0.0.1', PORT: '8053', EMPTY: '', KEY: 'c2VjcmV0' };

const cases: { name: string; input: string; expect: { text: string; fromEnvOnly: boolean } | { error: RegExp } }[] = [
  { name: 'replaces ${NAME} with the value', input: '${HOST}:${PORT}', expect: { text: '10.0.0.1:8053', fromEnvOnly: false } },
  { name: 'says when the whole text came from the environment', input: '${KEY}${PORT}', expect: { text: 'c2VjcmV08053', fromEnvOnly: true } },
  { name: 'keeps the text around a reference', input: 'http://${HOST}/x', expect: { text: 'http://10.0.0.1/x', fromEnvOnly: false } },
  { name: 'uses the default when the variable is unset', input: '${NOPE:-127.0.0.1}', expect: { text: '127.0.0.1', fromEnvOnly: false } },
  { name: 'uses the default when the variable is empty, as sh does', input: '${EMPTY:-x}', expect: { text: 'x', fromEnvOnly: false } },
  { name: 'uses the value over the default when it is set', input: '${PORT:-53}', expect: { text: '8053', fromEnvOnly: true } },
  { name: 'gives an empty text for a set but empty variable without default', input: '${EMPTY}', expect: { text: '', fromEnvOnly: true } },
  { name: 'takes a default with colons, spaces and dollars as written', input: '${NOPE:-a:b $c}', expect: { text: 'a:b $c', fromEnvOnly: false } },
  { name: 'writes $${ as a literal ${', input: 'cost $${HOST}', expect: { text: 'cost ${HOST}', fromEnvOnly: false } },
  { name: 'keeps a $ that does not start a reference', input: 'a$b $ ${KEY}', expect: { text: 'a$b $ c2VjcmV0', fromEnvOnly: false } },
  { name: 'refuses an unset variable without a default', input: 'x${NOPE}', expect: { error: /^uses \$\{NOPE\}, but the environment variable NOPE is not set, expected it set or a default such as \$\{NOPE:-value\}$/ } },
  { name: 'refuses an unterminated reference', input: '${HOST', expect: { error: /has a "\$\{" without its "\}"/ } },
  { name: 'refuses an empty name', input: '${}', expect: { error: /"\$\{\}" is not a variable reference/ } },
  { name: 'refuses a name that starts with a digit', input: '${1X}', expect: { error: /"\$\{1X\}" is not a variable reference/ } },
  { name: 'refuses the sh forms it does not support', input: '${HOST-x}', expect: { error: /"\$\{HOST-x\}" is not a variable reference, expected \$\{NAME\} or \$\{NAME:-default\}/ } },
];

for (const c of cases) {
  test(`expansion ${c.name}`, () => {
    const got = expandEnv(c.input, ENV);
    if ('error' in c.expect) {
      assert.ok('error' in got, JSON.stringify(got));
      assert.match(got.error, c.expect.error);
    } else {
      assert.deepEqual(got, { text: c.expect.text, changed: true, fromEnvOnly: c.expect.fromEnvOnly });
    }
  });
}

test('leaves text without ${ alone', () => {
  assert.deepEqual(expandEnv('plain $text', ENV), { text: 'plain $text', changed: false, fromEnvOnly: false });
});

const BASE = ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10 }]', 'domains:', '  - { name: app.example.test, regions: [eu-west] }'];

/** Parses BASE plus `extra` lines with `env`; the extra lines start at line 6. */
function parse(extra: string[], env: Environment) {
  return parseConfigText([...BASE, ...extra].join('\n'), 'x.yaml', { env });
}

/** Returns the problem lines of parsing BASE plus `extra` with `env`. */
function problemsOf(extra: string[], env: Environment): string[] {
  try {
    parse(extra, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  assert.fail('expected problems');
}

test('expands an integer key from the environment and reads it as an integer, quoted or not', () => {
  const config = parse(['dns:', '  default_ttl: ${TTL}', '  workers: "${WORKERS}"'], { TTL: '300', WORKERS: '3' });
  assert.equal(config.dns.defaultTtlSec, 300);
  assert.equal(config.dns.workers, 3);
});

test('reads an expanded integer in every form YAML reads written plainly: 0x10, 0o20, 16.0, 1.6e1', () => {
  // The docs promise the same reading as the word written plainly; plainly, each of these is 16.
  assert.equal(parse(['dns:', '  default_ttl: 0x10'], {}).dns.defaultTtlSec, 16);
  for (const ttl of ['0x10', '0o20', '16.0', '1.6e1', '+16']) {
    assert.equal(parse(['dns:', '  default_ttl: ${TTL}'], { TTL: ttl }).dns.defaultTtlSec, 16, `TTL=${ttl}`);
  }
});

test('expands boolean, duration, endpoint and list items from the environment', () => {
  const config = parse(
    ['dns:', '  return_last_healthy: ${LAST}', '  listen_address: "${ADDR:-127.0.0.1:0}"', '  tcp_idle_timeout: ${IDLE}', '  zones: ["${ZONE}"]'],
    { LAST: 'true', IDLE: '2s', ZONE: 'Example.Test.' },
  );
  assert.equal(config.dns.returnLastHealthy, true);
  assert.equal(config.dns.listenHost, '127.0.0.1');
  assert.equal(config.dns.tcpIdleTimeoutMs, 2000);
  assert.deepEqual(config.dns.zones.map((z) => z.name), ['example.test']);
});

test('reports a variable that expands to the wrong type with the text it came from', () => {
  assert.deepEqual(problemsOf(['dns:', '  default_ttl: ${TTL}'], { TTL: 'soon' }), [
    'x.yaml:7:16: dns.default_ttl: "soon" is not an integer, expected an integer from 0 to 2147483647 (after expanding "${TTL}")',
  ]);
});

test('reports every unset variable at once, each at its value', () => {
  assert.deepEqual(problemsOf(['dns:', '  listen_address: ${ADDR}', 'logging: { level: "${LEVEL}" }'], {}), [
    'x.yaml:7:19: dns.listen_address: uses ${ADDR}, but the environment variable ADDR is not set, expected it set or a default such as ${ADDR:-value}',
    'x.yaml:8:19: logging.level: uses ${LEVEL}, but the environment variable LEVEL is not set, expected it set or a default such as ${LEVEL:-value}',
  ]);
});

test('treats an empty expansion like an absent key, so the default applies', () => {
  assert.equal(parse(['dns:', '  default_ttl: ${TTL:-}'], {}).dns.defaultTtlSec, 60);
});

test('does not expand map keys', () => {
  assert.deepEqual(problemsOf(['dns:', '  ${KEY}: 1'], { KEY: 'default_ttl' }).map((l) => l.split(', expected')[0]), [
    'x.yaml:7:3: dns["${KEY}"]: unknown key "${KEY}"',
  ]);
});

test('expands the same anchored value everywhere an alias repeats it', () => {
  const config = parse(['dns:', '  default_ttl: &ttl ${TTL}', '  tcp_max_connections: *ttl'], { TTL: '77' });
  assert.equal(config.dns.defaultTtlSec, 77);
  assert.equal(config.dns.tcpMaxConnectionsPerWorker, 77);
});

test('expands values in included files and in include patterns', async (t) => {
  const dir = await configTree(t, {
    'main.yaml': ['dns: { listen_address: "127.0.0.1:0" }', 'includes: ["${TEAM_DIR}/*.yaml"]'],
    'teams/eu.yaml': ['regions:', '  - name: ${REGION:-eu-west}', '    servers: [{ address: "${EU_IP}" }]', 'domains:', '  - { name: app.example.test, regions: [eu-west] }'],
  });
  const { config } = await loadConfig(join(dir, 'main.yaml'), { env: { TEAM_DIR: 'teams', EU_IP: '192.0.2.77' } });
  assert.equal(config.regions[0]?.servers[0]?.address, '192.0.2.77');
  await assert.rejects(loadConfig(join(dir, 'main.yaml'), { env: { TEAM_DIR: 'teams' } }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, `${dir}/teams/eu.yaml:3:26: regions[0].servers[0].address: uses \${EU_IP}, but the environment variable EU_IP is not set, expected it set or a default such as \${EU_IP:-value}`);
    return true;
  });
});

test('reads the process environment when no environment is given', async (t) => {
  const dir = await configTree(t, { 'main.yaml': [...BASE, 'dns: { listen_address: "127.0.0.1:0", default_ttl: "${OPENGSLB_TEST_TTL}" }'] });
  process.env.OPENGSLB_TEST_TTL = '123';
  t.after(() => delete process.env.OPENGSLB_TEST_TTL);
  const { config } = await loadConfig(join(dir, 'main.yaml'));
  assert.equal(config.dns.defaultTtlSec, 123);
});
