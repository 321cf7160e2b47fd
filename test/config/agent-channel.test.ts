// Config of the agent channel: overwatch.gossip, overwatch.agent_tokens,
// overwatch.validation, overwatch.stale and the agent section. A missing or
// malformed key refuses the file naming the key and showing how to make one;
// no message ever quotes a key or a token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';

const KEY = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';
const KEY2 = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=';
const TOKEN = 'token-for-app-0123456789';
const OVERWATCH = ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10 }]', 'domains:', '  - { name: app.example.test, regions: [eu-west] }'];
const AGENT = [
  'mode: agent',
  'agent:',
  `  identity: { service_token: ${TOKEN}, region: eu-west }`,
  '  backends: [{ service: app.example.test, address: 10.0.0.1, port: 8080 }]',
  `  gossip: { encryption_key: "${KEY}", overwatch_nodes: ["ow-1.example.test:7946"] }`,
];

function problems(yaml: string[]): string[] {
  try {
    parseConfigText(yaml.join('\n'), 'x.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    for (const secret of [KEY, KEY2, TOKEN]) assert.ok(!err.message.includes(secret), `a message quotes a secret:\n${err.message}`);
    return err.message.split('\n');
  }
  return [];
}

const cases: { name: string; yaml: string[]; expect: string[] }[] = [
  { name: 'a complete agent section', yaml: AGENT, expect: [] },
  {
    name: 'an agent without its key, token, region, backends and overwatches',
    yaml: ['mode: agent'],
    expect: [
      'x.yaml:1:1: agent.identity.service_token: is missing',
      'x.yaml:1:1: agent.identity.region: is missing',
      'x.yaml:1:1: agent.backends: is missing, expected a list of backends (required when mode is agent)',
      'x.yaml:1:1: agent.gossip.encryption_key: is missing, expected standard base64 of exactly 32 bytes (44 characters): generate one with "openssl rand -base64 32" (required when mode is agent)',
      'x.yaml:1:1: agent.gossip.overwatch_nodes: is missing',
    ],
  },
  {
    name: 'an agent key that is not 32 bytes of base64',
    yaml: [...AGENT.slice(0, 4), '  gossip: { encryption_key: "c2hvcnQ=", overwatch_nodes: ["ow-1:7946"] }'],
    expect: ['x.yaml:5:29: agent.gossip.encryption_key: the secret value is invalid, expected standard base64 of exactly 32 bytes (44 characters): generate one with "openssl rand -base64 32"'],
  },
  {
    name: 'a key whose last character carries stray bits',
    yaml: [...AGENT.slice(0, 4), `  gossip: { encryption_key: "${'A'.repeat(42)}B=", overwatch_nodes: ["ow-1:7946"] }`],
    expect: ['x.yaml:5:29: agent.gossip.encryption_key: the secret value is not canonical base64'],
  },
  {
    name: 'overwatch agent tokens without the channel key',
    yaml: [...OVERWATCH, 'overwatch:', `  agent_tokens: { app.example.test: ${TOKEN} }`],
    expect: [
      'x.yaml:7:3: overwatch.gossip.encryption_key: is missing, expected standard base64 of exactly 32 bytes (generate one with "openssl rand -base64 32"): overwatch.agent_tokens turns the agent channel on',
    ],
  },
  {
    name: 'a bind address without the channel key',
    yaml: [...OVERWATCH, 'overwatch:', '  gossip: { bind_address: ":7946" }'],
    expect: ['x.yaml:7:11: overwatch.gossip.encryption_key: is missing, expected standard base64 of exactly 32 bytes (generate one with "openssl rand -base64 32"): overwatch.gossip.bind_address turns'],
  },
  {
    name: 'an accepted key equal to the key',
    yaml: [...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}", accepted_keys: ["${KEY2}", "${KEY}"] }`],
    expect: ['x.yaml:7:141: overwatch.gossip.accepted_keys[1]: is the same key as overwatch.gossip.encryption_key, expected each key once'],
  },
  {
    name: 'a token shorter than 16 characters',
    yaml: [...OVERWATCH, 'overwatch:', '  agent_tokens: { app.example.test: short }', `  gossip: { encryption_key: "${KEY}" }`],
    expect: ['x.yaml:7:37: overwatch.agent_tokens["app.example.test"]: the secret value is too short'],
  },
  {
    name: 'a token keyed by something that is not a service name',
    yaml: [...OVERWATCH, 'overwatch:', `  agent_tokens: { "app example": ${TOKEN} }`, `  gossip: { encryption_key: "${KEY}" }`],
    expect: ['x.yaml:7:34: overwatch.agent_tokens["app example"]: service name "app example" contains " "'],
  },
  {
    name: 'the same service twice in agent tokens',
    yaml: [...OVERWATCH, 'overwatch:', '  agent_tokens:', `    app.example.test: ${TOKEN}`, `    App.Example.Test.: ${TOKEN}`, `  gossip: { encryption_key: "${KEY}" }`],
    expect: ['x.yaml:9:24: overwatch.agent_tokens["App.Example.Test."]: names the same service as "app.example.test", expected each service once'],
  },
  {
    name: 'a validation timeout not below its interval, and stale removal before staleness',
    yaml: [...OVERWATCH, 'overwatch:', '  validation: { check_interval: 5s, check_timeout: 5s }', '  stale: { threshold: 1m, remove_after: 30s }'],
    expect: [
      'x.yaml:7:52: overwatch.validation.check_timeout: 5s is not shorter than check_interval 5s',
      'x.yaml:8:41: overwatch.stale.remove_after: 30s is not longer than the threshold 1m',
    ],
  },
  {
    name: 'a full-state interval shorter than the heartbeat interval',
    yaml: [...AGENT, '  heartbeat: { interval: 10s, full_interval: 5s }'],
    expect: ['x.yaml:6:46: agent.heartbeat.full_interval: 5s is shorter than the interval 10s'],
  },
  {
    name: 'an overwatch listed twice',
    yaml: [...AGENT.slice(0, 4), `  gossip: { encryption_key: "${KEY}", overwatch_nodes: ["ow-1:7946", "OW-1:7946"] }`],
    expect: ['x.yaml:5:108: agent.gossip.overwatch_nodes[1]: ow-1:7946 is already overwatch_nodes[0], expected each overwatch once'],
  },
  {
    name: 'a backend address that looks like an IP but is not one',
    yaml: [...AGENT.slice(0, 3), '  backends: [{ service: app.example.test, address: 10.0.0.300, port: 8080 }]', AGENT[4]],
    expect: ['x.yaml:4:52: agent.backends[0].address: "10.0.0.300" is not an IP address'],
  },
  {
    name: 'a backend check with keep_alive on tcp, as for regions',
    yaml: [...AGENT.slice(0, 3), '  backends: [{ service: app.example.test, address: 10.0.0.1, port: 8080, health_check: { type: tcp, keep_alive: true } }]', AGENT[4]],
    expect: ['x.yaml:4:113: agent.backends[0].health_check.keep_alive: true does not apply to type tcp'],
  },
  {
    name: 'a region left to agents (servers: []) when the agent channel is on',
    yaml: ['regions:', '  - { name: eu-west, servers: [] }', 'domains:', '  - { name: app.example.test, regions: [eu-west] }', 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`],
    expect: [],
  },
  {
    name: 'a region without its servers key, even with the agent channel on (write servers: [] to leave it to agents)',
    yaml: ['regions:', '  - { name: eu-west }', 'domains:', '  - { name: app.example.test, regions: [eu-west] }', 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`],
    expect: ['x.yaml:2:5: regions[0].servers: is missing, expected a list of servers'],
  },
  {
    name: 'an agent on the NATS bus without overwatch_nodes',
    yaml: [...AGENT.slice(0, 4), `  gossip: { encryption_key: "${KEY}" }`, '  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], token: nats-token-1 }'],
    expect: [],
  },
  {
    name: 'an agent with both overwatch_nodes and the bus',
    yaml: [...AGENT, '  bus: { type: nats, servers: ["nats://127.0.0.1:4222"] }'],
    expect: ['x.yaml:5:94: agent.gossip.overwatch_nodes: is set together with agent.bus, expected one of them'],
  },
  {
    name: 'a bus without servers, with two ways to authenticate, a certificate without its key and a bad URL',
    yaml: [...AGENT.slice(0, 4), `  gossip: { encryption_key: "${KEY}" }`, '  bus:', '    type: nats', '    token: t', '    credentials_file: x.creds', '    tls: { cert_file: c.pem }'],
    expect: [
      'x.yaml:7:11: agent.bus.type: turns the bus on without servers',
      'x.yaml:9:23: agent.bus.credentials_file: is set together with agent.bus.token',
      'x.yaml:10:23: agent.bus.tls.cert_file: is set alone, expected both tls.cert_file and tls.key_file',
    ],
  },
  {
    name: 'a bus server that is not a nats:// URL, and bus keys without type',
    yaml: [...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, '  bus: { servers: ["http://127.0.0.1:4222"] }'],
    expect: [
      'x.yaml:8:19: overwatch.bus.servers: is set but overwatch.bus.type is not',
      'x.yaml:8:20: overwatch.bus.servers[0]: "http://127.0.0.1:4222" is invalid, expected a URL such as "nats://nats-1.example.test:4222"',
    ],
  },
  {
    name: 'servers without type',
    yaml: [...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, '  bus: { servers: ["nats://127.0.0.1:4222"] }'],
    expect: ['x.yaml:8:19: overwatch.bus.servers: is set but overwatch.bus.type is not, expected "type: nats"'],
  },
  {
    name: 'an overwatch bus without the channel key',
    yaml: [...OVERWATCH, 'overwatch:', `  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], state_secret: "${KEY2}" }`],
    expect: ['x.yaml:7:16: overwatch.bus.type: turns the bus on without overwatch.gossip.encryption_key'],
  },
  {
    name: 'an overwatch bus without state_secret (it seals the replicated operator state)',
    yaml: [...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, '  bus: { type: nats, servers: ["nats://127.0.0.1:4222"] }'],
    expect: ['x.yaml:8:16: overwatch.bus.type: turns the bus on without overwatch.bus.state_secret, expected a secret shared by every overwatch and no agent'],
  },
  {
    name: 'an overwatch bus state_secret that is not 32 bytes of base64',
    yaml: [...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, '  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], state_secret: "c2hvcnQ=" }'],
    expect: ['x.yaml:8:72: overwatch.bus.state_secret: the secret value is invalid, expected standard base64 of exactly 32 bytes'],
  },
  {
    name: 'previous_state_secrets that are not 32 bytes of base64, or repeat state_secret or each other',
    yaml: [...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, `  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], state_secret: "${KEY2}",`, `    previous_state_secrets: ["c2hvcnQ=", "${KEY2}", "${KEY}", "${KEY}"] }`],
    expect: [
      'x.yaml:9:30: overwatch.bus.previous_state_secrets[0]: the secret value is invalid, expected standard base64 of exactly 32 bytes',
      'x.yaml:9:42: overwatch.bus.previous_state_secrets[1]: is the same secret as overwatch.bus.state_secret, expected each secret once',
      'x.yaml:9:138: overwatch.bus.previous_state_secrets[3]: is the same secret as overwatch.bus.previous_state_secrets[2], expected each secret once',
    ],
  },
  {
    name: 'state_secret in an agent\'s bus (only overwatches hold it)',
    yaml: [...AGENT.slice(0, 4), `  gossip: { encryption_key: "${KEY}" }`, `  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], state_secret: "${KEY2}" }`],
    expect: ['x.yaml:6:58: agent.bus.state_secret: unknown key "state_secret", expected one of type, servers, token, credentials_file, tls, subject_prefix'],
  },
  {
    name: 'DNS, region, domain and API keys in an agent file, each named',
    yaml: [...AGENT, 'dns: { listen_address: ":53" }', ...OVERWATCH, 'api: { enabled: true }'],
    expect: [
      'x.yaml:6:1: dns: is an overwatch key, and this file runs in agent mode (an agent serves no DNS and has no admin API); remove it, or run with --mode overwatch',
      'x.yaml:7:1: regions: is an overwatch key',
      'x.yaml:10:1: domains: is an overwatch key',
      'x.yaml:12:1: api: is an overwatch key',
    ],
  },
];

for (const c of cases) {
  test(`${c.expect.length === 0 ? 'accepts' : 'refuses'} ${c.name}`, () => {
    const got = problems(c.yaml);
    assert.equal(got.length, c.expect.length, `got:\n${got.join('\n')}`);
    c.expect.forEach((prefix, i) => assert.ok(got[i]?.startsWith(prefix), `line ${i + 1}:\n  got      ${got[i]}\n  expected ${prefix}…`));
  });
}

test('overwatch.gossip is null without a key, and has the default port with one', () => {
  const off = parseConfigText(OVERWATCH.join('\n'), 'x.yaml');
  assert.equal(off.gossip, null);
  assert.equal(off.agent, null);
  const on = parseConfigText([...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}", accepted_keys: ["${KEY2}"], max_clock_skew: 10s }`].join('\n'), 'x.yaml');
  assert.deepEqual(on.gossip, { bindHost: '0.0.0.0', bindPort: 7946, encryptionKey: KEY, acceptedKeys: [KEY2], maxClockSkewMs: 10_000, maxAgents: 10_000 });
});

test('the --mode flag (LoadOptions.mode) decides the mode-dependent rules and Config.mode, whatever the file says', () => {
  const agentBody = AGENT.slice(1);
  const config = parseConfigText(agentBody.join('\n'), 'x.yaml', { mode: 'agent' });
  assert.equal(config.mode, 'agent');
  assert.equal(config.agent?.identity.region, 'eu-west');
  assert.throws(
    () => parseConfigText([...OVERWATCH].join('\n'), 'x.yaml', { mode: 'agent' }),
    (err: unknown) => err instanceof ConfigError && /regions: is an overwatch key/.test(err.message) && /agent\.backends: is missing/.test(err.message),
  );
});

test('agent.bus and overwatch.bus are built with the default prefix and paths from the file\'s folder, and are null when off', () => {
  const agent = parseConfigText([...AGENT.slice(0, 4), `  gossip: { encryption_key: "${KEY}" }`, '  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], credentials_file: nats.creds, tls: { ca_file: ca.pem } }'].join('\n'), '/etc/opengslb/x.yaml');
  assert.deepEqual(agent.agent?.bus, {
    type: 'nats', servers: ['nats://127.0.0.1:4222'], token: null, credentialsFile: '/etc/opengslb/nats.creds',
    tls: { caFile: '/etc/opengslb/ca.pem', certFile: null, keyFile: null }, subjectPrefix: 'opengslb', stateSecret: null, previousStateSecrets: [],
  });
  assert.deepEqual(agent.agent?.gossip.overwatchNodes, []);
  const ow = parseConfigText([...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, `  bus: { type: NATS, servers: ["nats://127.0.0.1:4222"], subject_prefix: prod.gslb, state_secret: "${KEY2}" }`].join('\n'), 'x.yaml');
  assert.equal(ow.bus?.subjectPrefix, 'prod.gslb');
  assert.equal(ow.bus?.stateSecret, KEY2);
  assert.deepEqual(ow.bus?.previousStateSecrets, []);
  const rotating = parseConfigText([...OVERWATCH, 'overwatch:', `  gossip: { encryption_key: "${KEY}" }`, `  bus: { type: nats, servers: ["nats://127.0.0.1:4222"], state_secret: "${KEY2}", previous_state_secrets: ["${KEY}"] }`].join('\n'), 'x.yaml');
  assert.deepEqual(rotating.bus?.previousStateSecrets, [KEY]);
  assert.equal(ow.bus?.tls, null);
  assert.equal(parseConfigText(OVERWATCH.join('\n'), 'x.yaml').bus, null);
  assert.equal(parseConfigText(AGENT.join('\n'), 'x.yaml').agent?.bus, null);
});
