// The admin API off loopback: a non-loopback api.address needs api.token,
// api.tls serves HTTPS (and a reload serves a renewed certificate), the CLI
// speaks HTTPS with --ca-file, and the token never reaches a log line. Real
// child processes, a real CA and certificates made in the test.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { parseConfigText } from '../../src/config/load.ts';
import type { ConfigError } from '../../src/config/problems.ts';
import { CLI, run, SERVER, startOpengslb, type RunningServer } from '../helpers/child.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';
import { testCertificates } from '../health/helpers.ts';

const TOKEN = 'opengslb-test-token-5f0c1d9a';
const WRONG = 'opengslb-wrong-token-77aa31be';

function yaml(api: string, extra = ''): string {
  return `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }, { address: 192.0.2.2, port: 80 }]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu] }
api: ${api}
overwatch: { data_dir: ./state }
${extra}`;
}

function problemsOf(text: string): string[] {
  try {
    parseConfigText(text, 'api.yaml');
  } catch (err) {
    return (err as ConfigError).problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`);
  }
  return [];
}

const addresses = [
  { address: '0.0.0.0:8080', loopback: false },
  { address: ':8080', loopback: false },
  { address: '"[::]:8080"', loopback: false },
  { address: '192.0.2.7:8080', loopback: false },
  { address: '"[2001:db8::1]:8080"', loopback: false },
  { address: '"[::ffff:192.0.2.7]:8080"', loopback: false },
  { address: '127.0.0.1:8080', loopback: true },
  { address: '127.1.2.3:8080', loopback: true },
  { address: '"[::1]:8080"', loopback: true },
  { address: '"[::ffff:127.0.0.1]:8080"', loopback: true },
];
for (const { address, loopback } of addresses) {
  test(`api.address ${address} without api.token is ${loopback ? 'accepted (loopback)' : 'refused, saying how to set a token'}`, () => {
    const problems = problemsOf(yaml(`{ enabled: true, address: ${address} }`));
    if (loopback) {
      assert.deepEqual(problems, []);
      return;
    }
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0], /^api\.yaml:9:\d+: api\.address: .* is not a loopback address and api\.token is not set/);
    assert.match(problems[0], /set api\.token \(at least 16 characters\)/);
    assert.match(problems[0], /OPENGSLB_API_TOKEN/);
    assert.deepEqual(problemsOf(yaml(`{ enabled: true, address: ${address}, token: ${TOKEN} }`)), []);
  });
}

test('a disabled API may name any address without a token', () => {
  assert.deepEqual(problemsOf(yaml('{ enabled: false, address: "0.0.0.0:8080" }')), []);
});

test('opengslb refuses to start with the API on 0.0.0.0 and no token, and says how to set one', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-offloop-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, yaml('{ enabled: true, address: "0.0.0.0:0" }'), { mode: 0o600 });
  const r = await run(SERVER, ['--config', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /config\.yaml:9:\d+: api\.address: 0\.0\.0\.0 is not a loopback address and api\.token is not set/);
  assert.match(r.stderr, /token: \$\{OPENGSLB_API_TOKEN\}/);
});

test('api.tls problems name the key, the file and what is wrong', posixOnly, async (t) => {
  const certs = await testCertificates();
  const dir = await tempDir(t, 'opengslb-tls-conf-');
  await writeFile(join(dir, 'leaf.pem'), certs.leafPem);
  await writeFile(join(dir, 'leaf.key'), certs.leafKeyPem, { mode: 0o600 });
  await writeFile(join(dir, 'other.key'), certs.selfSignedKeyPem, { mode: 0o600 });
  await writeFile(join(dir, 'garbage.pem'), 'not a certificate\n');
  const main = join(dir, 'api.yaml');
  const cases = [
    { tls: '{ cert_file: leaf.pem, key_file: leaf.key }', expect: null },
    { tls: '{ cert_file: missing.pem, key_file: leaf.key }', expect: /api\.tls\.cert_file: .*missing\.pem does not exist, expected a readable PEM file/ },
    { tls: '{ cert_file: garbage.pem, key_file: leaf.key }', expect: /api\.tls\.cert_file: .*garbage\.pem is not a PEM certificate/ },
    { tls: '{ cert_file: leaf.pem, key_file: garbage.pem }', expect: /api\.tls\.key_file: .*garbage\.pem is not an unencrypted PEM private key/ },
    { tls: '{ cert_file: leaf.pem, key_file: other.key }', expect: /api\.tls\.key_file: .*other\.key is not the private key of the certificate in .*leaf\.pem/ },
    { tls: '{ cert_file: leaf.pem }', expect: /api\.tls\.cert_file: is set without api\.tls\.key_file, expected both/ },
    { tls: '{ key_file: leaf.key }', expect: /api\.tls\.key_file: is set without api\.tls\.cert_file, expected both/ },
  ];
  for (const c of cases) {
    const text = yaml(`{ enabled: true, address: "127.0.0.1:0", tls: ${c.tls} }`);
    await writeFile(main, text, { mode: 0o600 });
    let problems: string[] = [];
    try {
      parseConfigText(text, main);
    } catch (err) {
      problems = (err as ConfigError).problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`);
    }
    if (c.expect === null) assert.deepEqual(problems, [], c.tls);
    else {
      assert.equal(problems.length, 1, `${c.tls}: ${problems.join('\n')}`);
      assert.match(problems[0], /api\.yaml:9:\d+: /, c.tls);
      assert.match(problems[0], c.expect, c.tls);
    }
  }
});

async function apiAddress(server: RunningServer): Promise<{ host: string; port: number; line: string }> {
  const line = await server.out.waitFor(/API listening/);
  const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
  assert.ok(m, line);
  return { host: '127.0.0.1', port: Number(m[1]), line };
}

/** The certificate the API presents to a new connection, trusting nothing (only to look at it). */
async function servedCertificate(port: number): Promise<X509Certificate> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  const cert = socket.getPeerX509Certificate();
  socket.destroy();
  assert.ok(cert);
  return cert;
}

test('api.tls serves HTTPS that opengslb-cli speaks with --ca-file, refuses without it, and a reload serves a renewed certificate', posixOnly, async (t) => {
  const certs = await testCertificates();
  const dir = await tempDir(t, 'opengslb-tls-');
  await writeFile(join(dir, 'ca.pem'), certs.caPem);
  await writeFile(join(dir, 'api.pem'), certs.leafPem);
  await writeFile(join(dir, 'api.key'), certs.leafKeyPem, { mode: 0o600 });
  const file = join(dir, 'config.yaml');
  await writeFile(file, yaml(`{ enabled: true, address: "127.0.0.1:0", token: ${TOKEN}, tls: { cert_file: api.pem, key_file: api.key } }`), { mode: 0o600 });
  const server = await startOpengslb(t, file);
  const { port, line } = await apiAddress(server);
  assert.match(line, /"scheme":"https"/);
  const https = `https://127.0.0.1:${port}`;

  const servers = await run(CLI, ['servers', '--api', https, '--ca-file', join(dir, 'ca.pem')]);
  assert.equal(servers.code, 0, servers.stderr);
  assert.match(servers.stdout, /192\.0\.2\.1/);
  const set = await run(CLI, ['overrides', 'set', 'app.example.test', '192.0.2.1', '--unhealthy', '--reason', 'tls test', '--api', https, '--ca-file', join(dir, 'ca.pem'), '--token', TOKEN]);
  assert.equal(set.code, 0, set.stderr);

  const untrusted = await run(CLI, ['servers', '--api', https]);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /its TLS certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  assert.match(untrusted.stderr, /pass --ca-file with the CA that issued api\.tls\.cert_file/);
  const plain = await run(CLI, ['servers', '--api', `http://127.0.0.1:${port}`]);
  assert.equal(plain.code, 1);
  const caOnHttp = await run(CLI, ['servers', '--api', `http://127.0.0.1:${port}`, '--ca-file', join(dir, 'ca.pem')]);
  assert.equal(caOnHttp.code, 2);
  assert.match(caOnHttp.stderr, /--ca-file is for an https:\/\/ API/);
  const badCa = await run(CLI, ['servers', '--api', https, '--ca-file', join(dir, 'config.yaml')]);
  assert.equal(badCa.code, 1);
  assert.match(badCa.stderr, /--ca-file .*config\.yaml: not a PEM CA certificate/);

  const before = await servedCertificate(port);
  assert.equal(before.fingerprint256, new X509Certificate(certs.leafPem).fingerprint256);
  // A renewed certificate at the same paths: SIGHUP, and new connections get it.
  await writeFile(join(dir, 'api.pem'), certs.selfSignedPem);
  await writeFile(join(dir, 'api.key'), certs.selfSignedKeyPem, { mode: 0o600 });
  const from = server.out.lines.length;
  server.child.kill('SIGHUP');
  await server.out.waitFor(/reload succeeded/, from);
  const after = await servedCertificate(port);
  assert.equal(after.fingerprint256, new X509Certificate(certs.selfSignedPem).fingerprint256);
  // The CA no longer vouches for what is served: the CLI says so.
  const stale = await run(CLI, ['servers', '--api', https, '--ca-file', join(dir, 'ca.pem')]);
  assert.equal(stale.code, 1);
  assert.match(stale.stderr, /not trusted/);
});

test('the API token appears in no log line at any level, whatever tokens requests carry', posixOnly, async (t) => {
  const dir = await tempDir(t, 'opengslb-token-log-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, yaml(`{ enabled: true, address: "127.0.0.1:0", token: ${TOKEN} }`, 'logging: { level: debug }'), { mode: 0o600 });
  const server = await startOpengslb(t, file);
  const { port } = await apiAddress(server);
  const base = `http://127.0.0.1:${port}`;
  const path = '/api/v1/overrides/app.example.test/192.0.2.1';
  const body = JSON.stringify({ healthy: false, reason: 'token log test' });
  const statuses: number[] = [];
  for (const auth of [`Bearer ${TOKEN}`, `Bearer ${WRONG}`, `bearer ${TOKEN}`, `Basic ${TOKEN}`, `Bearer ${TOKEN}${TOKEN}`, `Bearer ${TOKEN}\u00e9`]) {
    for (const [method, route, sent] of [['PUT', path, body], ['PUT', path, '{"healthy": "no"}'], ['PUT', path, '{not json'], ['DELETE', path, undefined], ['POST', '/api/v1/reload', undefined]] as const) {
      const headers: Record<string, string> = { authorization: auth };
      if (sent !== undefined) headers['content-type'] = 'application/json';
      let res: Response;
      try {
        res = await fetch(base + route, { method, headers, ...(sent === undefined ? {} : { body: sent }) });
      } catch {
        continue; // fetch refuses a header value outside Latin-1 before sending; nothing reached the server
      }
      statuses.push(res.status);
      await res.arrayBuffer();
    }
  }
  // The token also reaches the server in a URL and in a body: still never logged.
  await (await fetch(`${base}/api/v1/overrides/${TOKEN}/192.0.2.1`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body })).arrayBuffer();
  await (await fetch(`${base}/api/v1/explain?name=${TOKEN}`)).arrayBuffer();
  assert.ok(statuses.includes(200) && statuses.includes(401) && statuses.includes(400), `statuses ${statuses.join(',')}`);
  server.child.kill('SIGHUP');
  await server.out.waitFor(/reload succeeded/);
  server.child.kill('SIGTERM');
  await server.exited;
  const logs = `${server.out.text}\n${server.err.text}`;
  assert.ok(server.out.lines.some((l) => l.includes('"level":"debug"')), 'debug lines were written');
  assert.ok(!logs.includes(TOKEN), 'the token is in a log line');
  assert.ok(!logs.includes(WRONG), 'a wrong token is in a log line');
});

interface PeerStatusBody {
  readonly peers: readonly { readonly url: string; readonly reachable: boolean; readonly error: string | null; readonly matches: boolean | null }[];
}

test('an overwatch asks a peer over HTTPS once it trusts the peer\'s CA (NODE_EXTRA_CA_CERTS), and says how when it does not', posixOnly, async (t) => {
  const certs = await testCertificates();
  const dir = await tempDir(t, 'opengslb-peer-tls-');
  await writeFile(join(dir, 'ca.pem'), certs.caPem);
  await writeFile(join(dir, 'api.pem'), certs.leafPem);
  await writeFile(join(dir, 'api.key'), certs.leafKeyPem, { mode: 0o600 });
  const peerFile = join(dir, 'peer.yaml');
  await writeFile(peerFile, yaml(`{ enabled: true, address: "127.0.0.1:0", token: ${TOKEN}, tls: { cert_file: api.pem, key_file: api.key } }`), { mode: 0o600 });
  const peer = await startOpengslb(t, peerFile);
  const peerUrl = `https://127.0.0.1:${(await apiAddress(peer)).port}`;

  // Two overwatches naming it as their peer, one of them started with the CA in NODE_EXTRA_CA_CERTS.
  const asker = (name: string): string => yaml('{ enabled: true, address: "127.0.0.1:0" }').replace(
    'overwatch: { data_dir: ./state }',
    `overwatch: { data_dir: ./state-${name}, peers: [{ url: "${peerUrl}", token: ${TOKEN} }] }`,
  );
  const statusOf = async (server: RunningServer): Promise<PeerStatusBody['peers'][number]> => {
    const res = await fetch(`http://127.0.0.1:${(await apiAddress(server)).port}/api/v1/cluster/status`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as PeerStatusBody;
    assert.equal(body.peers.length, 1);
    return body.peers[0]!;
  };
  await writeFile(join(dir, 'plain.yaml'), asker('plain'), { mode: 0o600 });
  await writeFile(join(dir, 'trusting.yaml'), asker('trusting'), { mode: 0o600 });
  const plain = await startOpengslb(t, join(dir, 'plain.yaml'));
  const trusting = await startOpengslb(t, join(dir, 'trusting.yaml'), { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') } });

  const untrusted = await statusOf(plain);
  assert.equal(untrusted.reachable, false);
  assert.match(untrusted.error ?? '', /its TLS certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  assert.match(untrusted.error ?? '', /NODE_EXTRA_CA_CERTS set to the PEM file of the CA that issued the peer's api\.tls\.cert_file/);
  const trusted = await statusOf(trusting);
  assert.deepEqual([trusted.url, trusted.reachable, trusted.error, trusted.matches], [peerUrl, true, null, true]);
});
