// Whole-process tests of opengslb-cli's HTTP side: the real entry point as a
// child process against a small HTTP server of the test's own, which records
// what the CLI sent and answers what the test says (errors, stalls, odd
// bodies); the real admin API is exercised in opengslb-cli-api.test.ts.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { CLI, run } from '../helpers/child.ts';
import { findClientAddress } from '../../src/api/access.ts';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Starts an HTTP server on 127.0.0.1 port 0 that records every request and answers with `handler`; closed after the test. */
async function apiStandIn(t: TestContext, handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (s: string) => (body += s));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'], body });
      handler(req, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function json(status: number, body: unknown): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}

/** The test process's environment without the CLI's own variables, plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('OPENGSLB_API' in extra)) delete e.OPENGSLB_API;
  if (!('OPENGSLB_TOKEN' in extra)) delete e.OPENGSLB_TOKEN;
  if (!('OPENGSLB_API_TOKEN' in extra)) delete e.OPENGSLB_API_TOKEN;
  return e;
}

/** A port on 127.0.0.1 that nothing listens on: bound by the OS, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

const OVERRIDE = {
  scope: 'domain',
  service: 'app.example.test',
  address: '2001:db8::1',
  region: null,
  healthy: false,
  reason: 'kernel upgrade',
  source: 'alice@ops1',
  created_at: '2025-06-01T11:00:00.000Z',
  expires_at: null,
  authority: 'override',
  active: true,
};

test('exits 1 naming the URL and hinting at --api when nothing listens there', async () => {
  const port = await closedPort();
  const r = await run(CLI, ['servers', '--api', `http://127.0.0.1:${port}`], { env: env() });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const [line, hint] = r.stderr.split('\n');
  assert.equal(line, `opengslb-cli: cannot reach the admin API at http://127.0.0.1:${port}/api/v1/health/servers: connection refused`);
  assert.match(hint, /^hint: .*--api URL or set \$OPENGSLB_API$/);
});

test('exits 1 after --timeout when the API accepts the request but never answers', async (t) => {
  const api = await apiStandIn(t, () => {
    /* never answers */
  });
  const started = Date.now();
  const r = await run(CLI, ['servers', '--api', api.url, '--timeout', '300ms'], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^opengslb-cli: GET ${api.url}/api/v1/health/servers: no answer within 300ms\\nhint: .*--timeout`));
  // Well under the 5 s default: the flag was applied (process start-up included).
  assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
});

test('a bare --timeout number is seconds, as in the Go CLI', async (t) => {
  const api = await apiStandIn(t, () => {});
  const r = await run(CLI, ['servers', '--api', api.url, '--timeout', '0.2'], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no answer within 200ms/);
});

test('exits 1 with the API\'s error message and status for an {error, code} body', async (t) => {
  const api = await apiStandIn(t, json(404, { error: 'no override of 192.0.2.1 in app.example.test', code: 404 }));
  const r = await run(CLI, ['overrides', 'clear', 'app.example.test', '192.0.2.1', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'opengslb-cli: no override of 192.0.2.1 in app.example.test (HTTP 404)\n');
  assert.equal(r.stdout, '');
});

test('a plain-text 403 from the allow-list is quoted, with a hint about api.allowed_networks', async (t) => {
  const api = await apiStandIn(t, (_req, res) => {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('Forbidden');
  });
  const r = await run(CLI, ['status', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^opengslb-cli: Forbidden \(HTTP 403\)\nhint: .*api\.allowed_networks\n$/);
});

test('a 403 for proxy headers the API cannot read hints at the proxy, not at api.allowed_networks', async (t) => {
  // The API's own wording (src/api/server.ts words the 403 from what findClientAddress says).
  const client = findClientAddress('127.0.0.1', { 'x-forwarded-for': 'unknown' }, true);
  assert.ok('error' in client);
  const message = `${client.error}, so the allowlist cannot be checked`;
  const api = await apiStandIn(t, json(403, { error: message, code: 403 }));
  const r = await run(CLI, ['status', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.equal(r.stderr.split('\n')[0], `opengslb-cli: ${message} (HTTP 403)`);
  assert.match(r.stderr, /\nhint: the API trusts proxy headers \(api\.trust_proxy_headers\) and the X-Forwarded-For or X-Real-IP .*without that proxy\n$/);
  assert.doesNotMatch(r.stderr, /allowed_networks/);
});

test('a 401 hints at --token and $OPENGSLB_API_TOKEN', async (t) => {
  const api = await apiStandIn(t, json(401, { error: 'missing or wrong bearer token', code: 401 }));
  const r = await run(CLI, ['overrides', 'set', 'app.example.test', '192.0.2.1', '--unhealthy', '--reason', 'x', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^opengslb-cli: missing or wrong bearer token \(HTTP 401\)\nhint: .*--token TOKEN or set \$OPENGSLB_API_TOKEN\n$/);
});

test('exits 1 when a success status carries a body that is not JSON', async (t) => {
  const api = await apiStandIn(t, (_req, res) => res.end('<html>proxy</html>'));
  const r = await run(CLI, ['domains', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /answered HTTP 200 with a body that is not JSON: "<html>proxy<\/html>"/);
});

test('says that --api is not the admin API when a plain HTTP server answers there with a page', async (t) => {
  const api = await apiStandIn(t, (_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html><body>Cannot GET /api/v1/health/servers</body></html>');
  });
  const r = await run(CLI, ['servers', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    `opengslb-cli: GET ${api.url}/api/v1/health/servers answered HTTP 404 with a text/html body (not JSON)\n` +
      `hint: is ${api.url} the overwatch's admin API (api.address)? Pass --api URL or set $OPENGSLB_API\n`,
  );
});

test('says that --api is not the admin API when another JSON API answers 200 without the expected fields', async (t) => {
  const api = await apiStandIn(t, json(200, { status: 'ok', items: [] }));
  const r = await run(CLI, ['domains', '--api', api.url], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^opengslb-cli: GET ${api.url}/api/v1/domains answered HTTP 200 with JSON that is not the admin API's answer \\(no "domains" field\\)\nhint: is `));
  const wrongType = await apiStandIn(t, json(200, { domains: 'all' }));
  const r2 = await run(CLI, ['domains', '--api', wrongType.url], { env: env() });
  assert.match(r2.stderr, /\("domains" is a string, expected an array\)/);
});

test('says that --api is not the admin API when what answers there does not speak HTTP', async (t) => {
  const server = createNetServer((socket) => socket.on('data', () => socket.end('SSH-2.0-OpenSSH_9.2\r\n')));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const r = await run(CLI, ['status', '--api', url], { env: env() });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^opengslb-cli: cannot reach the admin API at ${url}/api/v1/\\S+: what answers there does not speak HTTP, so it is not the admin API\nhint: `));
});

test('overrides set PUTs {healthy, reason, source} to the URL-encoded path with the bearer token from $OPENGSLB_API_TOKEN', async (t) => {
  const api = await apiStandIn(t, json(200, OVERRIDE));
  const r = await run(CLI, ['overrides', 'set', 'app.example.test', '2001:db8::1', '--unhealthy', '--reason', 'kernel upgrade'], {
    env: env({ OPENGSLB_API: api.url, OPENGSLB_API_TOKEN: 's3cret', USER: 'alice' }),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(api.seen.length, 1);
  const [req] = api.seen;
  assert.equal(req.method, 'PUT');
  assert.equal(req.url, '/api/v1/overrides/app.example.test/2001%3Adb8%3A%3A1');
  assert.equal(req.authorization, 'Bearer s3cret');
  assert.equal(req.contentType, 'application/json');
  assert.deepEqual(JSON.parse(req.body), { healthy: false, reason: 'kernel upgrade', source: `alice@${hostname()}` });
  assert.match(r.stdout, /^Override set: 2001:db8::1 in app\.example\.test is unhealthy \(reason: kernel upgrade; source: alice@ops1;/);
});

test('--source and --token flags win over the defaults, and without $USER the source is opengslb-cli', async (t) => {
  const api = await apiStandIn(t, json(200, OVERRIDE));
  const noUser = env({ OPENGSLB_TOKEN: 'from-env' });
  delete noUser.USER;
  delete noUser.LOGNAME;
  delete noUser.USERNAME;
  let r = await run(CLI, ['overrides', 'set', 'app.example.test', '192.0.2.1', '--healthy', '--reason', 'pin', '--source', 'change-42', '--token', 'from-flag', '--api', api.url], { env: noUser });
  assert.equal(r.code, 0, r.stderr);
  r = await run(CLI, ['--api', api.url, 'overrides', 'set', 'app.example.test', '192.0.2.1', '--healthy', '--reason', 'pin'], { env: noUser });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(api.seen[0].authorization, 'Bearer from-flag');
  assert.deepEqual(JSON.parse(api.seen[0].body), { healthy: true, reason: 'pin', source: 'change-42' });
  assert.equal(api.seen[1].authorization, 'Bearer from-env');
  assert.deepEqual(JSON.parse(api.seen[1].body), { healthy: true, reason: 'pin', source: 'opengslb-cli' });
});

test('the token comes from $OPENGSLB_API_TOKEN, else from its alias $OPENGSLB_TOKEN', async (t) => {
  const api = await apiStandIn(t, json(200, OVERRIDE));
  const args = ['overrides', 'set', 'app.example.test', '192.0.2.1', '--healthy', '--reason', 'pin', '--api', api.url];
  const cases: Record<string, string>[] = [{ OPENGSLB_API_TOKEN: 'primary', OPENGSLB_TOKEN: 'alias' }, { OPENGSLB_TOKEN: 'alias' }, { OPENGSLB_API_TOKEN: '', OPENGSLB_TOKEN: 'alias' }];
  for (const extra of cases) {
    const r = await run(CLI, args, { env: env(extra) });
    assert.equal(r.code, 0, r.stderr);
  }
  assert.deepEqual(api.seen.map((s) => s.authorization), ['Bearer primary', 'Bearer alias', 'Bearer alias']);
});

test('reads requests send no Authorization header when no token is given', async (t) => {
  const api = await apiStandIn(t, json(200, { overrides: [] }));
  const r = await run(CLI, ['overrides', 'list', '--api', api.url], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'No overrides.\n');
  assert.equal(api.seen[0].authorization, undefined);
});

test('servers passes --domain, --region and --status as query parameters', async (t) => {
  const api = await apiStandIn(t, json(200, { servers: [], generated_at: '2025-06-01T12:00:00.000Z' }));
  const r = await run(CLI, ['servers', '--domain', 'app.example.test', '--region', 'eu west', '--status', 'unhealthy', '--api', api.url + '/'], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(api.seen[0].url, '/api/v1/health/servers?domain=app.example.test&region=eu+west&status=unhealthy');
  assert.equal(r.stdout, 'No servers match.\n');
});

test('overrides clear reads the override, DELETEs it and prints what was cleared', async (t) => {
  const api = await apiStandIn(t, (req, res) => {
    if (req.method === 'GET') return json(200, OVERRIDE)(req, res);
    res.writeHead(204);
    res.end();
  });
  const r = await run(CLI, ['overrides', 'clear', 'APP.example.test.', '2001:DB8:0::1', '--api', api.url], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  const path = '/api/v1/overrides/APP.example.test./2001%3ADB8%3A0%3A%3A1';
  assert.deepEqual(api.seen.map((s) => `${s.method} ${s.url}`), [`GET ${path}`, `DELETE ${path}`]);
  assert.equal(r.stdout, 'Override cleared: 2001:db8::1 in app.example.test was forced unhealthy (reason: kernel upgrade; source: alice@ops1; since 2025-06-01T11:00:00.000Z); the health checks decide again, unless a wider override covers it.\n');
});

test('overrides set --server and --region PUT to their scope\'s path, with --for as expires_in and --until as expires_at in UTC', async (t) => {
  const api = await apiStandIn(t, json(200, { ...OVERRIDE, scope: 'region', service: null, address: null, region: 'eu-west', expires_at: '2026-11-26T17:00:00.000Z' }));
  let r = await run(CLI, ['overrides', 'set', '--server', '2001:db8::1', '--unhealthy', '--reason', 'disk', '--for', '2h', '--api', api.url], { env: env({ USER: 'alice' }) });
  assert.equal(r.code, 0, r.stderr);
  r = await run(CLI, ['overrides', 'set', '--region', 'eu-west', '--unhealthy', '--reason', 'network work', '--until', '2026-11-26T18:00+01:00', '--api', api.url], { env: env({ USER: 'alice' }) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Override set: region eu-west is unhealthy until 2026-11-26T17:00:00.000Z (reason: kernel upgrade; source: alice@ops1; at 2025-06-01T11:00:00.000Z)\n');
  r = await run(CLI, ['overrides', 'clear', '--region', 'eu-west', '--api', api.url], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(api.seen.map((s) => `${s.method} ${s.url}`), [
    'PUT /api/v1/overrides/server/2001%3Adb8%3A%3A1',
    'PUT /api/v1/overrides/region/eu-west',
    'GET /api/v1/overrides/region/eu-west',
    'DELETE /api/v1/overrides/region/eu-west',
  ]);
  assert.deepEqual(JSON.parse(api.seen[0].body), { healthy: false, reason: 'disk', source: `alice@${hostname()}`, expires_in: '2h' });
  assert.deepEqual(JSON.parse(api.seen[1].body), { healthy: false, reason: 'network work', source: `alice@${hostname()}`, expires_at: '2026-11-26T17:00:00.000Z' });
});

test('--json prints the API\'s body unchanged, pretty', async (t) => {
  const body = { overrides: [OVERRIDE], extra_field_from_a_newer_server: 1 };
  const api = await apiStandIn(t, json(200, body));
  const r = await run(CLI, ['overrides', 'list', '--json', '--api', api.url], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, JSON.stringify(body, null, 2) + '\n');
});

test('status treats 503 from /api/v1/ready as "not ready", not as an error', async (t) => {
  const api = await apiStandIn(t, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const bodies: Record<string, [number, unknown]> = {
      '/api/v1/version': [200, { version: '9.9.9', node_version: 'v24.21.0', platform: 'linux-x64', generated_at: '2025-06-01T12:00:00.000Z' }],
      '/api/v1/ready': [503, { ready: false, dns_ready: true, health_ready: false, message: 'first health round running' }],
      '/api/v1/health/regions': [200, { regions: [], generated_at: '2025-06-01T12:00:00.000Z' }],
      '/api/v1/domains': [200, { domains: [], generated_at: '2025-06-01T12:00:00.000Z' }],
      '/api/v1/overrides': [200, { overrides: [] }],
      '/api/v1/status': [200, {
        version: '9.9.9', generation: 1, config: { file: 'config.yaml', generation: 1, loaded_at: '2025-06-01T11:59:00.000Z' },
        reloads: { success: 0, failure: 0 }, last_reload: null, last_failed_reload: null, generated_at: '2025-06-01T12:00:00.000Z',
      }],
    };
    const [status, body] = bodies[path] ?? [404, { error: 'not found', code: 404 }];
    json(status, body)(req, res);
  });
  const r = await run(CLI, ['status', '--api', api.url], { env: env() });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^OpenGSLB 9\.9\.9 at http:\/\/127\.0\.0\.1:\d+\n/);
  assert.match(r.stdout, /\nReady: +no: first health round running \(DNS listening: yes, first health round done: no\)\n/);
});

for (const c of [
  { name: 'an unknown command', args: ['frobnicate'], expect: /^opengslb-cli: unknown command "frobnicate"\nusage: opengslb-cli COMMAND/ },
  { name: 'a group without its sub-command', args: ['overrides'], expect: /^opengslb-cli: unknown command "overrides" \(overrides takes: list, set, clear\)\n/ },
  { name: 'an unknown flag', args: ['servers', '--colour'], expect: /^opengslb-cli servers: unknown flag --colour\nusage: opengslb-cli servers / },
  { name: 'a misspelt flag', args: ['servers', '--regoin', 'eu'], expect: /^opengslb-cli servers: unknown flag --regoin; did you mean --region\?\nusage: opengslb-cli servers / },
  { name: 'a flag without its value', args: ['servers', '--domain'], expect: /^opengslb-cli servers: --domain needs a value\nusage: opengslb-cli servers / },
  { name: 'a flag whose value looks like a flag', args: ['servers', '--domain', '--json'], expect: /^opengslb-cli servers: --domain needs a value, but the next word "--json" is a flag; if that is the value, write --domain=--json\nusage: / },
  { name: 'a value given to a switch', args: ['servers', '--json=yes'], expect: /^opengslb-cli servers: --json is a switch and takes no value\nusage: opengslb-cli servers / },
  { name: 'a bad --status', args: ['servers', '--status', 'down'], expect: /^opengslb-cli servers: --status: "down" is not a health state, expected healthy, unhealthy or unknown\n/ },
  { name: 'both --healthy and --unhealthy', args: ['overrides', 'set', 'a.test', '192.0.2.1', '--healthy', '--unhealthy', '--reason', 'x'], expect: /give exactly one of --healthy and --unhealthy/ },
  { name: 'an override without --reason', args: ['overrides', 'set', 'a.test', '192.0.2.1', '--healthy'], expect: /--reason TEXT is required/ },
  { name: 'a missing argument', args: ['overrides', 'clear', 'a.test'], expect: /^opengslb-cli overrides clear: SERVICE ADDRESS: expected both, got only a\.test\n/ },
  { name: 'two override targets at once', args: ['overrides', 'set', 'a.test', '192.0.2.1', '--region', 'eu', '--healthy', '--reason', 'x'], expect: /^opengslb-cli overrides set: name exactly one target: SERVICE ADDRESS \| --server ADDRESS \| --region NAME \(got 2\)\n/ },
  { name: 'no override target', args: ['overrides', 'clear'], expect: /^opengslb-cli overrides clear: name exactly one target: SERVICE ADDRESS \| --server ADDRESS \| --region NAME\n/ },
  { name: 'both --for and --until', args: ['overrides', 'set', '--server', '192.0.2.1', '--healthy', '--reason', 'x', '--for', '1h', '--until', '2030-01-01T00:00:00Z'], expect: /^opengslb-cli overrides set: give --for DURATION or --until TIME, not both\n/ },
  { name: 'a --for that is not a duration', args: ['overrides', 'set', '--server', '192.0.2.1', '--healthy', '--reason', 'x', '--for', '2d'], expect: /^opengslb-cli overrides set: --for: "2d" has the unknown unit "d" \(there are no day or week units: write 24h or 168h\)/ },
  { name: 'an --until without a time zone', args: ['overrides', 'set', '--server', '192.0.2.1', '--healthy', '--reason', 'x', '--until', '2030-01-01 10:00'], expect: /^opengslb-cli overrides set: --until: "2030-01-01 10:00" is not a time with a zone, expected RFC 3339/ },
  // Date.parse rolls an impossible day or hour 24 over to another day; the API refuses them, but the CLI sent the rolled-over instant.
  { name: 'an --until on a day its month does not have', args: ['overrides', 'set', '--server', '192.0.2.1', '--healthy', '--reason', 'x', '--until', '2030-02-30T10:00Z'], expect: /^opengslb-cli overrides set: --until: "2030-02-30T10:00Z" is not a time with a zone, expected RFC 3339/ },
  { name: 'an --until at hour 24', args: ['overrides', 'set', '--server', '192.0.2.1', '--healthy', '--reason', 'x', '--until', '2030-01-31T24:00:00Z'], expect: /^opengslb-cli overrides set: --until: "2030-01-31T24:00:00Z" is not a time with a zone, expected RFC 3339/ },
  { name: 'an argument to a command that takes none', args: ['status', 'now'], expect: /^opengslb-cli status: takes no arguments, got: now\nusage: opengslb-cli status/ },
  { name: 'a bad --timeout', args: ['status', '--timeout', '5x'], expect: /^opengslb-cli status: --timeout: "5x" has the unknown unit "x"/ },
  { name: 'an --api that is not http(s)', args: ['status', '--api', 'ftp://example.test'], expect: /^opengslb-cli status: --api: "ftp:\/\/example\.test" is not an http:\/\/ or https:\/\/ URL\n/ },
  { name: 'no command at all', args: [], expect: /^opengslb-cli: a command is needed\nusage: opengslb-cli COMMAND/ },
  // Node's timers cannot wait longer than 2^31 - 1 ms: a longer --timeout used to fire at once (every request "timed out"), or past 2^32 ms fail as "cannot reach".
  { name: 'a --timeout longer than 24h', args: ['status', '--timeout', '600h'], expect: /^opengslb-cli status: --timeout: "600h" is longer than 24h, expected at most 24h\n/ },
  { name: 'a bare --timeout number of seconds longer than 24h', args: ['status', '--timeout', '9999999999'], expect: /^opengslb-cli status: --timeout: "9999999999" is longer than 24h, expected at most 24h\n/ },
  // fetch refuses such a URL; it used to be reported as "cannot reach the admin API", password included.
  { name: 'an --api with a user and password', args: ['status', '--api', 'http://ops:s3cret@127.0.0.1:9'], expect: /^opengslb-cli status: --api: "http:\/\/127\.0\.0\.1:9" must not carry a user name or password; the API takes a token \(--token or \$OPENGSLB_API_TOKEN\)\n/ },
  { name: 'help for an unknown command', args: ['help', 'frobnicate'], expect: /^opengslb-cli: unknown command "frobnicate"\nusage: opengslb-cli COMMAND/ },
]) {
  test(`exits 2 with the usage on stderr for ${c.name}`, async () => {
    const r = await run(CLI, c.args, { env: env() });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, c.expect);
    assert.equal(r.stdout, '');
  });
}

test('an --api password never appears in the error', async () => {
  const r = await run(CLI, ['status', '--api', 'http://ops:s3cret@127.0.0.1:9'], { env: env() });
  assert.equal(r.code, 2);
  assert.ok(!r.stderr.includes('s3cret'), r.stderr);
});

test('help config validate prints that command\'s usage (exit 0), as config validate --help does', async () => {
  const viaHelp = await run(CLI, ['help', 'config', 'validate'], { env: env() });
  const viaFlag = await run(CLI, ['config', 'validate', '--help'], { env: env() });
  assert.equal(viaHelp.code, 0, viaHelp.stderr);
  assert.match(viaHelp.stdout, /^usage: opengslb-cli config validate FILE \[--mode overwatch\|agent\] \[--environment-file FILE\] \[--json\]\n/);
  assert.equal(viaHelp.stdout, viaFlag.stdout);
});

test('a cli.yaml timeout may be a bare number of seconds, as --timeout may', async (t) => {
  const api = await apiStandIn(t, () => {});
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-cli-yaml-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'cli.yaml');
  await writeFile(file, `apis: [${api.url}]\ntimeout: 0.2\n`, { mode: 0o600 });
  const r = await run(CLI, ['servers', '--cli-config', file], { env: env() });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /no answer within 200ms/);
});

test('a bad cli.yaml timeout is named with FILE:LINE:COL (exit 1), not blamed on --timeout', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-cli-yaml-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'cli.yaml');
  await writeFile(file, 'apis: [http://127.0.0.1:9]\ntimeout: soon\n', { mode: 0o600 });
  const r = await run(CLI, ['servers', '--cli-config', file], { env: env() });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^opengslb-cli: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:1: timeout: "soon" is not a duration`));
  assert.ok(!r.stderr.includes('--timeout'), r.stderr);
});

test('--help prints the overview, COMMAND --help the command\'s usage, both on stdout with exit 0', async () => {
  let r = await run(CLI, ['--help'], { env: env() });
  assert.equal(r.code, 0);
  for (const cmd of ['status', 'reload', 'servers', 'domains', 'overrides list', 'overrides set', 'overrides clear', 'explain', 'config validate FILE']) {
    assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'));
  }
  r = await run(CLI, ['overrides', 'set', '--help'], { env: env() });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: opengslb-cli overrides set SERVICE ADDRESS \| --server ADDRESS \| --region NAME --healthy\|--unhealthy --reason TEXT \[--for DURATION \| --until TIME\] \[--source WHO\]\n/);
  assert.match(r.stdout, /--api URL/);
});

// "." and ".." survive any encoding as dot segments (the WHATWG URL parser reads "%2e%2e" as ".." too):
// "agents show ." would GET the agent list, "agents revoke .." POST /api/v1/overwatch/revoke.
for (const args of [
  ['agents', 'show', '.'],
  ['agents', 'revoke', '..', '--reason', 'x'],
  ['agents', 'delete', '..'],
  ['overrides', 'clear', '--region', '..'],
  ['overrides', 'set', 'app.example.test', '.', '--unhealthy', '--reason', 'x'],
]) {
  test(`refuses a dot-segment target with a usage error (exit 2) and sends nothing: ${args.join(' ')}`, async (t) => {
    const api = await apiStandIn(t, json(200, {}));
    const r = await run(CLI, [...args, '--api', api.url], { env: env() });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^opengslb-cli [a-z ]+: (agent id|region|server address) "\.{1,2}" cannot be sent: "\." and "\.\." are URL path steps, expected any other \1\n/);
    assert.deepEqual(api.seen, []);
  });
}

test('sends an agent id or region carrying "/", "?" and "#" as one encoded path segment', async (t) => {
  const api = await apiStandIn(t, json(404, { error: { code: 'OPENGSLB_ERR_NOT_FOUND', message: 'no such agent' } }));
  await run(CLI, ['agents', 'show', 'a/b?c#d', '--api', api.url], { env: env() });
  await run(CLI, ['overrides', 'clear', '--region', 'eu/west?x#y', '--api', api.url], { env: env() });
  assert.deepEqual(api.seen.map((s) => `${s.method} ${s.url}`), [
    'GET /api/v1/overwatch/agents/a%2Fb%3Fc%23d',
    'GET /api/v1/overrides/region/eu%2Fwest%3Fx%23y',
    'DELETE /api/v1/overrides/region/eu%2Fwest%3Fx%23y',
  ]);
});

test('a reader that closes the pipe early (| head, | grep -q) ends the command quietly with its own exit status, not an EPIPE stack trace', async (t) => {
  // The answer comes after the reader is gone, as when `head -1` has its line or `grep -q` its match.
  const api = await apiStandIn(t, (req, res) => setTimeout(() => json(200, { overrides: [OVERRIDE] })(req, res), 300));
  // Three independent children, at once: each waits the 300 ms for its answer.
  await Promise.all([['overrides', 'list'], ['overrides', 'list', '--json'], ['overrides', 'list', '--api', 'http://127.0.0.1:1']].map(async (args) => {
    const child = spawn(process.execPath, [CLI, ...args, '--api', api.url], { stdio: ['ignore', 'pipe', 'pipe'], env: env() });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.doesNotMatch(stderr, /EPIPE|Unhandled|node:events/, `${args.join(' ')}: ${stderr}`);
    // Two --api: the first refuses, the second answers; the note about it goes to stderr, which is still open.
    if (args.includes('http://127.0.0.1:1')) assert.match(stderr, /asking the next API/);
    else assert.equal(stderr, '');
    assert.equal(code, 0, `${args.join(' ')}: ${stderr}`);
  }));
});

test('a token no Authorization header can carry is refused where it came from, without quoting it and without sending anything', async (t) => {
  const api = await apiStandIn(t, json(200, { cidr: '10.0.0.0/8', region: 'eu', comment: null, source: 'x', created_at: null, active: false }));
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-cli-yaml-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'cli.yaml');
  // A folded block keeps the line break at its end only; a literal one with two lines keeps the inner one too.
  await writeFile(file, `apis: [${api.url}]\ntoken: |\n  first-half-of-the-token\n  second-half-0123456789\n`, { mode: 0o600 });
  const cases: { args: string[]; env: Record<string, string>; code: number; message: RegExp; secret: string }[] = [
    { args: ['--token', 'sécret-token-0123456789', '--api', api.url], env: {}, code: 2, message: /^opengslb-cli geo mappings remove: --token: the token's character 2 \(of 23\) is not ASCII, expected printable ASCII characters without spaces/, secret: 'cret-token' },
    { args: ['--api', api.url], env: { OPENGSLB_API_TOKEN: 'line-one-token\nline-two-0123456789' }, code: 2, message: /^opengslb-cli geo mappings remove: \$OPENGSLB_API_TOKEN: the token's character 15 \(of 34\) is a line break/, secret: 'line-one' },
    { args: ['--api', api.url], env: { OPENGSLB_TOKEN: 'two words-0123456789' }, code: 2, message: /^opengslb-cli geo mappings remove: \$OPENGSLB_TOKEN: the token's character 4 \(of 20\) is a space/, secret: 'words-01' },
    { args: ['--cli-config', file], env: {}, code: 1, message: new RegExp(`^opengslb-cli: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:1: token: the token's character 24 \\(of 47\\) is a line break`), secret: 'half-of' },
  ];
  // Independent cases, at once; what the stand-in saw is checked after all of them.
  const results = await Promise.all(cases.map((c) => run(CLI, ['geo', 'mappings', 'remove', '10.0.0.0/8', ...c.args], { env: env(c.env) })));
  for (const [i, c] of cases.entries()) {
    const r = results[i];
    assert.equal(r.code, c.code, r.stderr);
    assert.match(r.stderr, c.message);
    assert.ok(!r.stderr.includes(c.secret), `the token is not printed: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /cannot reach/);
  }
  assert.deepEqual(api.seen, [], 'nothing was sent');
});
