// The admin API's read routes, error shapes, schema validation and OpenAPI
// document, against a real overwatch (real DNS workers) and the real API on
// loopback port 0, called with Node's fetch.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ROOT } from '../helpers/markdown.ts';
import { after, before, describe, test } from 'node:test';
import { launchServer, type Started } from '../helpers/server.ts';
import { call, openTestApi, YAML, type StartedApi } from './helpers.ts';

const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

let server: Started;
let api: StartedApi;

before(async () => {
  server = await launchServer(YAML);
  api = await openTestApi(server.overwatch);
});
after(async () => {
  await api.api.close();
  await server.overwatch.stop(500);
});

describe('status routes', () => {
  test('GET /api/v1/live answers {alive: true}', async () => {
    const r = await call(api.base, 'GET', '/api/v1/live');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { alive: true });
  });

  test('GET /api/v1/ready answers 200 with every readiness flag set once the overwatch runs', async () => {
    const r = await call(api.base, 'GET', '/api/v1/ready');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ready: true, dns_ready: true, health_ready: true });
  });

  test('GET /api/v1/version names the OpenGSLB version, the Node.js version and the platform', async () => {
    const r = await call(api.base, 'GET', '/api/v1/version');
    assert.equal(r.status, 200);
    assert.equal(r.body.version, '0.0.0-test');
    assert.equal(r.body.node_version, process.version);
    assert.equal(r.body.platform, `${process.platform}/${process.arch}`);
    assert.match(r.body.generated_at, RFC3339_UTC);
  });
});

describe('health and domain views', () => {
  test('GET /api/v1/health/servers lists every configured server with its check state', async () => {
    const r = await call(api.base, 'GET', '/api/v1/health/servers');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.match(r.body.generated_at, RFC3339_UTC);
    assert.deepEqual(
      r.body.servers.map((s: { region: string; address: string; port: number }) => `${s.region} ${s.address}:${s.port}`),
      ['eu 192.0.2.1:80', 'eu 192.0.2.2:80', 'us 2001:db8::3:443', 'us 192.0.2.3:80'],
    );
    const first = r.body.servers[0];
    assert.deepEqual(first.domains, ['app.example.test', 'eu.example.test']);
    assert.equal(first.status, 'healthy');
    assert.equal(first.healthy, true);
    assert.equal(first.authority, 'health_check');
    assert.equal(first.check_type, 'http');
    assert.deepEqual(first.overrides, []);
  });

  const filters = [
    { name: 'by domain', query: 'domain=eu.example.test', expect: ['192.0.2.1', '192.0.2.2'] },
    { name: 'by domain in any case with a trailing dot', query: 'domain=EU.Example.Test.', expect: ['192.0.2.1', '192.0.2.2'] },
    { name: 'by region', query: 'region=us', expect: ['2001:db8::3', '192.0.2.3'] },
    { name: 'by status', query: 'status=unhealthy', expect: [] },
    { name: 'by region and status together', query: 'region=eu&status=healthy', expect: ['192.0.2.1', '192.0.2.2'] },
  ];
  for (const f of filters) {
    test(`GET /api/v1/health/servers filters ${f.name}`, async () => {
      const r = await call(api.base, 'GET', `/api/v1/health/servers?${f.query}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.servers.map((s: { address: string }) => s.address), f.expect);
    });
  }

  test('GET /api/v1/health/regions totals each region', async () => {
    const r = await call(api.base, 'GET', '/api/v1/health/regions');
    assert.equal(r.status, 200);
    assert.match(r.body.generated_at, RFC3339_UTC);
    assert.deepEqual(r.body.regions, [
      { name: 'eu', total_servers: 2, healthy_count: 2, unhealthy_count: 0, unknown_count: 0, health_percent: 100 },
      { name: 'us', total_servers: 2, healthy_count: 2, unhealthy_count: 0, unknown_count: 0, health_percent: 100 },
    ]);
  });

  test('GET /api/v1/domains shows each domain with its policy and servers as DNS sees them', async () => {
    const r = await call(api.base, 'GET', '/api/v1/domains');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.domains.map((d: { name: string }) => d.name), ['app.example.test', 'eu.example.test']);
    const app = r.body.domains[0];
    assert.equal(app.zone, 'example.test');
    assert.equal(app.algorithm, 'round-robin');
    assert.equal(app.ttl, 30);
    assert.equal(app.servers.length, 4);
    assert.deepEqual(app.servers[0], {
      address: '192.0.2.1', port: 80, region: 'eu', weight: 100, priority: 0, status: 'healthy', authority: 'health_check', override: null,
    });
    assert.equal(app.servers.find((s: { region: string }) => s.region === 'us').priority, 1);
  });

  test('GET /api/v1/overwatch/backends lists one row per domain and server, as the Go original did', async () => {
    const r = await call(api.base, 'GET', '/api/v1/overwatch/backends');
    assert.equal(r.status, 200);
    assert.match(r.body.generated_at, RFC3339_UTC);
    assert.equal(r.body.backends.length, 6);
    assert.deepEqual(r.body.backends[0], {
      service: 'app.example.test', address: '192.0.2.1', port: 80, weight: 100, region: 'eu', source: 'config', agent_id: '',
      effective_status: 'healthy', authority: 'health_check', answered: true, agent_healthy: null, agent_last_seen: null, draining: false, drain_reason: null, stale: false,
      validation_healthy: true, validation_last_check: null, validation_error: null,
      override_status: null, override_reason: null, override_by: null, override_at: null, note: null,
    });
    const filtered = await call(api.base, 'GET', '/api/v1/overwatch/backends?service=EU.example.test.&region=eu&status=healthy');
    assert.deepEqual(filtered.body.backends.map((b: { service: string; address: string }) => `${b.service} ${b.address}`), ['eu.example.test 192.0.2.1', 'eu.example.test 192.0.2.2']);
    const bad = await call(api.base, 'GET', '/api/v1/overwatch/backends?status=draining');
    assert.equal(bad.status, 400);
  });

  test('GET /api/v1/overrides answers an empty list when nobody has set one', async () => {
    const r = await call(api.base, 'GET', '/api/v1/overrides');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { overrides: [] });
  });
});

describe('error shapes', () => {
  test('answers an unknown path with 404 and a JSON {error, code}', async () => {
    const r = await call(api.base, 'GET', '/api/v1/nothing/here');
    assert.equal(r.status, 404);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(Object.keys(r.body).sort(), ['code', 'error']);
    assert.equal(r.body.code, 404);
    assert.match(r.body.error, /no route GET \/api\/v1\/nothing\/here/);
  });

  const wrongMethods = [
    { method: 'POST', path: '/api/v1/live', allow: 'GET, HEAD' },
    { method: 'DELETE', path: '/api/v1/health/servers', allow: 'GET, HEAD' },
    { method: 'POST', path: '/api/v1/overrides/app.example.test/192.0.2.1', allow: 'GET, HEAD, PUT, DELETE' },
    { method: 'PUT', path: '/api/v1/overrides', allow: 'GET, HEAD' },
    { method: 'PATCH', path: '/api/v1/domains', allow: 'GET, HEAD' },
  ];
  for (const w of wrongMethods) {
    test(`answers ${w.method} ${w.path} with 405, an Allow header and a JSON {error, code}`, async () => {
      const r = await call(api.base, w.method, w.path);
      assert.equal(r.status, 405);
      assert.equal(r.headers.get('allow'), w.allow);
      assert.equal(r.body.code, 405);
      assert.match(r.body.error, new RegExp(`^${w.method} is not allowed on .*; expected ${w.allow}$`));
    });
  }

  // What Node's HTTP parser refuses never reaches a route: it used to get Fastify's own {"error","message","statusCode"} body.
  const unparsable = [
    { name: 'an unknown method', request: 'FOO /api/v1/overrides HTTP/1.1\r\nHost: x\r\n\r\n', status: 400, error: /^request: unknown HTTP method, expected one of GET, HEAD/ },
    { name: 'both Content-Length and chunked framing', request: 'PUT /api/v1/overrides/region/eu HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', status: 400, error: /^request: not valid HTTP\/1\.1/ },
    { name: 'headers over the size limit', request: `GET /api/v1/overrides HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, error: /^request: the request line and headers exceed \d+ bytes$/ },
  ];
  for (const u of unparsable) {
    test(`answers a request with ${u.name} with ${u.status} and a JSON {error, code}, then closes`, async () => {
      const text = await rawExchange(api.api.port, u.request);
      const [head, body] = text.split('\r\n\r\n');
      assert.match(head, new RegExp(`^HTTP/1\\.1 ${u.status} `));
      assert.match(head, /content-type: application\/json/i);
      const parsed = JSON.parse(body);
      assert.deepEqual(Object.keys(parsed).sort(), ['code', 'error']);
      assert.equal(parsed.code, u.status);
      assert.match(parsed.error, u.error);
    });
  }

  test('takes a path parameter of a valid domain name longer than 100 characters to its route', async () => {
    // 127 characters: a valid name (labels of 63 and 50), not served here, so the route's own 404.
    const long = `${'a'.repeat(63)}.${'b'.repeat(50)}.example.test`;
    const r = await call(api.base, 'GET', `/api/v1/overrides/${long}/192.0.2.1`);
    assert.equal(r.status, 404, JSON.stringify(r.body));
    assert.equal(r.body.code, 404);
    assert.doesNotMatch(r.body.error, /max param length/);
  });

  test('answers a path parameter longer than any route takes with 400 saying what was expected', async () => {
    const r = await call(api.base, 'GET', `/api/v1/overrides/${'a'.repeat(2000)}/192.0.2.1`);
    assert.equal(r.status, 400);
    assert.match(r.body.error, /^path: a parameter longer than \d+ bytes, expected one of at most 256 characters$/);
  });

  test('answers a path with a broken %-escape with 400 and a JSON {error, code}', async () => {
    const r = await call(api.base, 'GET', '/api/v1/overrides/app.example.test/%zz');
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 400);
    assert.match(r.body.error, /%-escape/);
  });
});

describe('schema validation', () => {
  const PUT = '/api/v1/overrides/app.example.test/192.0.2.1';
  const cases: { name: string; method: string; path: string; body?: unknown; rawBody?: string; contentType?: string; error: RegExp }[] = [
    { name: 'a status filter outside the enum', method: 'GET', path: '/api/v1/health/servers?status=sick', error: /^query parameter "status": got the string "sick", expected one of "healthy", "unhealthy", "unknown"$/ },
    { name: 'an unknown query parameter', method: 'GET', path: '/api/v1/health/servers?colour=red', error: /^query parameter "colour": unknown parameter, expected only domain, region, status$/ },
    { name: 'a repeated query parameter', method: 'GET', path: '/api/v1/health/servers?region=eu&region=us', error: /^query parameter "region": got an array, expected a non-empty string/ },
    // Used to answer an empty list: region names are case-sensitive, so "EU" matched nothing and looked like "no servers".
    { name: 'a region filter differing only in case', method: 'GET', path: '/api/v1/health/servers?region=EU', error: /^query parameter "region": no region "EU" is configured; region names are case-sensitive, expected "eu"$/ },
    { name: 'a region filter naming no configured region', method: 'GET', path: '/api/v1/health/servers?region=asia', error: /^query parameter "region": no region "asia" is configured; expected one of: eu, us$/ },
    { name: 'a backends region filter differing only in case', method: 'GET', path: '/api/v1/overwatch/backends?region=EU', error: /^query parameter "region": no region "EU" is configured; region names are case-sensitive, expected "eu"$/ },
    { name: 'a backends region filter naming no configured region', method: 'GET', path: '/api/v1/overwatch/backends?region=asia', error: /^query parameter "region": no region "asia" is configured; expected one of: eu, us$/ },
    { name: 'a malformed domain filter', method: 'GET', path: '/api/v1/health/servers?domain=a..b', error: /^query parameter "domain": "a\.\.b" has an empty label/ },
    // Used to answer 200 with an empty list, read as "no servers", while an unknown region was a 400.
    { name: 'a domain filter naming no configured domain', method: 'GET', path: '/api/v1/health/servers?domain=nope.example.test', error: /^query parameter "domain": no domain "nope\.example\.test" is configured; expected one of: app\.example\.test, eu\.example\.test$/ },
    { name: 'a backends service filter naming no configured domain', method: 'GET', path: '/api/v1/overwatch/backends?service=Nope.Example.Test.', error: /^query parameter "service": no domain "nope\.example\.test" is configured, and no agent reports that service; expected one of: app\.example\.test, eu\.example\.test$/ },
    // Override text ends up in log lines, the dashboard and the CLI's table: a newline or an escape sequence would forge or garble them.
    { name: 'a source with a newline', method: 'PUT', path: PUT, body: { healthy: false, source: 'alice\nINFO forged line' }, error: /^body field "source": has the control character U\+000A at character 6, expected a non-empty string, not only spaces, of printable text \(no control characters: no newline, tab or escape\), of at most 256 characters$/ },
    { name: 'a reason with a terminal escape sequence', method: 'PUT', path: PUT, body: { healthy: false, source: 'alice', reason: 'x\u001b[2J' }, error: /^body field "reason": has the control character U\+001B at character 2, expected a string of printable text \(no control characters: no newline, tab or escape\), of at most 1024 characters$/ },
    { name: 'a reason with a C1 control character', method: 'PUT', path: PUT, body: { healthy: false, source: 'alice', reason: 'ok\u009b31m' }, error: /^body field "reason": has the control character U\+009B at character 3, expected a string of printable text/ },
    { name: 'a source with a right-to-left override', method: 'PUT', path: PUT, body: { healthy: false, source: 'bob\u202eecila' }, error: /^body field "source": has the control character U\+202E at character 4, expected a non-empty string, not only spaces, of printable text/ },
    { name: 'a geo mapping comment with a tab', method: 'PUT', path: '/api/v1/geo/mappings', body: { cidr: '10.9.0.0/16', region: 'eu', source: 'a', comment: 'office\tberlin' }, error: /^body field "comment": has the control character U\+0009 at character 7, expected a string of printable text/ },
    { name: 'an agent revoke reason with a carriage return', method: 'POST', path: '/api/v1/overwatch/agents/a1/revoke', body: { reason: 'gone\r' }, error: /^body field "reason": has the control character U\+000D at character 5, expected a string of printable text/ },
    { name: 'healthy given as a string', method: 'PUT', path: PUT, body: { healthy: 'yes', source: 'alice' }, error: /^body field "healthy": got the string "yes", expected true or false/ },
    { name: 'a missing source', method: 'PUT', path: PUT, body: { healthy: false, reason: 'x' }, error: /^body field "source": missing, expected a non-empty string/ },
    { name: 'an empty source', method: 'PUT', path: PUT, body: { healthy: false, source: '' }, error: /^body field "source": got the string "", expected a non-empty string/ },
    { name: 'a blank source', method: 'PUT', path: PUT, body: { healthy: false, source: '   ' }, error: /^body field "source": got the string " {3}", expected a non-empty string/ },
    { name: 'a missing healthy', method: 'PUT', path: PUT, body: { source: 'alice' }, error: /^body field "healthy": missing, expected true or false/ },
    { name: 'an extra body field', method: 'PUT', path: PUT, body: { healthy: true, source: 'alice', until: 'tomorrow' }, error: /^body field "until": unknown field, expected only healthy, reason, source, expires_at, expires_in$/ },
    { name: 'a reason that is not a string', method: 'PUT', path: PUT, body: { healthy: true, source: 'alice', reason: 42 }, error: /^body field "reason": got the number 42, expected a string/ },
    { name: 'a body that is an array', method: 'PUT', path: PUT, body: [true], error: /^request body: got an array, expected a JSON object with healthy, source \(optional: reason, expires_at, expires_in\)$/ },
    { name: 'no body at all', method: 'PUT', path: PUT, error: /^request body: missing, expected a JSON object with healthy, source/ },
    { name: 'a body that is not JSON', method: 'PUT', path: PUT, rawBody: '{healthy: true', contentType: 'application/json', error: /^request body: not valid JSON, expected a JSON object$/ },
    // JSON.parse keeps the last of two equal keys: {"healthy": false, …, "healthy": true} set the server healthy, silently.
    { name: 'a body field given twice', method: 'PUT', path: PUT, rawBody: '{"healthy": false, "source": "a", "healthy": true}', contentType: 'application/json', error: /^request body: the field "healthy" is given twice, expected each field once$/ },
    { name: 'a body field given twice, as a differently escaped key', method: 'PUT', path: PUT, rawBody: '{"healthy": false, "source": "a", "h\\u0065althy": true}', contentType: 'application/json', error: /^request body: the field "healthy" is given twice, expected each field once$/ },
    { name: 'equal keys in two objects of an array (not a duplicate)', method: 'PUT', path: PUT, rawBody: '[{"healthy": true, "k": "}"}, {"healthy": true, "k": "{"}]', contentType: 'application/json', error: /^request body: got an array, expected a JSON object/ },
    // Used to be ignored: a reload ran whatever the body asked for ({"dry_run": true} is no such option).
    { name: 'a body on a write that takes none', method: 'POST', path: '/api/v1/reload', body: { dry_run: true }, error: /^request body: POST \/api\/v1\/reload takes none, expected no body$/ },
    { name: 'a body on a DELETE', method: 'DELETE', path: '/api/v1/overrides/region/eu', body: { healthy: true }, error: /^request body: DELETE \/api\/v1\/overrides\/region\/\{region\} takes none, expected no body$/ },
    // Used to say "not valid JSON" of valid JSON.
    { name: 'a __proto__ key', method: 'PUT', path: PUT, rawBody: '{"healthy": false, "source": "a", "__proto__": {"x": 1}}', contentType: 'application/json', error: /^request body: the field "__proto__" is refused \(it would set an object's prototype\), expected only the route's fields$/ },
    { name: 'an empty JSON body', method: 'PUT', path: PUT, rawBody: '', contentType: 'application/json', error: /^request body: missing, expected a JSON object with healthy, source/ },
    // Used to be ignored: the override was set with no end at all.
    { name: 'a query parameter on a write that takes none', method: 'PUT', path: `${PUT}?expires_in=2h`, body: { healthy: false, source: 'a' }, error: /^query parameter "expires_in": unknown parameter, expected none$/ },
    { name: 'an unknown query parameter on a write that takes one', method: 'DELETE', path: '/api/v1/geo/mappings?cidr=10.0.0.0/8&all=1', error: /^query parameter "all": unknown parameter, expected only cidr$/ },
    // Date.parse rolls these over (to 2 March, 1 May, the next day's 00:00): the override would end on a day nobody wrote.
    { name: 'an expires_at on 30 February', method: 'PUT', path: PUT, body: { healthy: true, source: 'a', expires_at: '2030-02-30T00:00:00Z' }, error: /^body field "expires_at": "2030-02-30T00:00:00Z" is not an RFC 3339 time/ },
    { name: 'an expires_at on 31 April', method: 'PUT', path: PUT, body: { healthy: true, source: 'a', expires_at: '2030-04-31T12:00:00+02:00' }, error: /^body field "expires_at": "2030-04-31T12:00:00\+02:00" is not an RFC 3339 time/ },
    { name: 'an expires_at on 29 February of a common year', method: 'PUT', path: PUT, body: { healthy: true, source: 'a', expires_at: '2031-02-29T00:00:00Z' }, error: /^body field "expires_at": "2031-02-29T00:00:00Z" is not an RFC 3339 time/ },
    { name: 'an expires_at at hour 24', method: 'PUT', path: PUT, body: { healthy: true, source: 'a', expires_at: '2030-01-01T24:00:00Z' }, error: /^body field "expires_at": "2030-01-01T24:00:00Z" is not an RFC 3339 time/ },
    { name: 'a malformed service', method: 'PUT', path: '/api/v1/overrides/bad_na*me.test/192.0.2.1', body: { healthy: true, source: 'a' }, error: /^path parameter "service": .*wildcard/ },
    { name: 'an address that is not an IP', method: 'PUT', path: '/api/v1/overrides/app.example.test/192.0.2.300', body: { healthy: true, source: 'a' }, error: /^path parameter "address": "192\.0\.2\.300" is not an IP address/ },
    { name: 'a host name as the address', method: 'DELETE', path: '/api/v1/overrides/app.example.test/www.example.test', error: /^path parameter "address": "www\.example\.test" is not an IP address/ },
    // Used to say "expected a non-empty string of at most 63 characters" of a short non-empty name: not what was wrong.
    { name: 'a region path parameter with a character no region name has', method: 'PUT', path: '/api/v1/overrides/region/eu%20west', body: { healthy: true, source: 'a' }, error: /^path parameter "region": got the string "eu west", expected a name of letters, digits, "\.", "_" and "-", starting with a letter or digit, of at most 63 characters$/ },
    { name: 'an agent id with a character no id has', method: 'GET', path: '/api/v1/overwatch/agents/-eu', error: /^path parameter "id": got the string "-eu", expected a name of letters, digits, "\.", "_" and "-", starting with a letter or digit, of at most 128 characters$/ },
    { name: 'an explain without a name', method: 'GET', path: '/api/v1/explain?type=A', error: /^query parameter "name": missing, expected a non-empty string/ },
    { name: 'an explain with a client that is not an IP', method: 'GET', path: '/api/v1/explain?name=app.example.test&client=me', error: /^query parameter "client": "me" is not an IP address/ },
    { name: 'an explain with a type that is no mnemonic', method: 'GET', path: '/api/v1/explain?name=app.example.test&type=A%20B', error: /^query parameter "type": got the string "A B", expected a DNS type/ },
  ];
  for (const c of cases) {
    test(`answers 400 saying which field and what was expected for ${c.name}`, async () => {
      const headers = c.contentType === undefined ? undefined : { 'content-type': c.contentType };
      const r = await call(api.base, c.method, c.path, { body: c.body, rawBody: c.rawBody, headers });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.code, 400);
      assert.match(r.body.error, c.error);
    });
  }

  test('answers 415 for a body that is not JSON by its Content-Type', async () => {
    const r = await call(api.base, 'PUT', PUT, { rawBody: '<override/>', headers: { 'content-type': 'application/xml' } });
    assert.equal(r.status, 415);
    assert.deepEqual(r.body, { error: 'request body: this Content-Type is not accepted, expected application/json', code: 415 });
  });

  test('takes an expires_at on 29 February of a leap year, with an offset, as the instant it names', async () => {
    const r = await call(api.base, 'PUT', PUT, { body: { healthy: true, source: 'a', expires_at: '2028-02-29T23:30:00-01:00' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.expires_at, '2028-03-01T00:30:00.000Z');
    assert.equal((await call(api.base, 'DELETE', PUT)).status, 204);
  });

  test('takes a DELETE that names a JSON Content-Type but sends no body, as curl -H does', async () => {
    assert.equal((await call(api.base, 'PUT', PUT, { body: { healthy: false, source: 'a' } })).status, 200);
    // It used to be a 400 "request body: empty, expected a JSON object", and the override stayed.
    const r = await call(api.base, 'DELETE', PUT, { headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 204, JSON.stringify(r.body));
    assert.equal((await call(api.base, 'GET', PUT)).status, 404);
  });

  test('answers 415 for a text/plain body, as for any Content-Type but JSON', async () => {
    // Fastify parses text/plain by default: the JSON text used to reach the schema as a string and get a 400.
    const r = await call(api.base, 'PUT', PUT, { rawBody: '{"healthy": true, "source": "a"}', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 415, JSON.stringify(r.body));
    assert.deepEqual(r.body, { error: 'request body: this Content-Type is not accepted, expected application/json', code: 415 });
    assert.equal((await call(api.base, 'GET', '/api/v1/overrides')).body.overrides.length, 0);
  });

  // The body used to be decoded as UTF-8 whatever the charset said: "Müller" sent as latin1 became "M\ufffdller".
  for (const contentType of ['application/json; charset=latin1', 'application/json; charset=ISO-8859-1', 'application/json;charset="utf-16"']) {
    test(`answers 415 for a JSON body of another charset than UTF-8 (${contentType}) and sets nothing`, async () => {
      const r = await call(api.base, 'PUT', PUT, { rawBody: '{"healthy": false, "source": "M\u00fcller"}', headers: { 'content-type': contentType } });
      assert.equal(r.status, 415, JSON.stringify(r.body));
      const charset = /charset="?([^";]+)/.exec(contentType)?.[1];
      assert.deepEqual(r.body, { error: `request body: Content-Type charset ${JSON.stringify(charset)} is not accepted, expected JSON in UTF-8: application/json, with no charset or charset=utf-8`, code: 415 });
      assert.equal((await call(api.base, 'GET', '/api/v1/overrides')).body.overrides.length, 0);
    });
  }

  test('takes a JSON body with charset=utf-8 in any case and quoted', async () => {
    for (const contentType of ['application/json; charset=utf-8', 'application/json; charset=UTF-8', 'application/json;charset="utf-8"']) {
      const r = await call(api.base, 'PUT', PUT, { rawBody: '{"healthy": false, "source": "M\u00fcller"}', headers: { 'content-type': contentType } });
      assert.equal(r.status, 200, `${contentType}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.source, 'Müller');
      assert.equal((await call(api.base, 'DELETE', PUT)).status, 204);
    }
  });

  test('takes printable non-ASCII text in source and reason', async () => {
    const r = await call(api.base, 'PUT', PUT, { body: { healthy: false, source: 'Zoë Łukasiewicz', reason: 'Wartung – 計画 🛠' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.reason, 'Wartung – 計画 🛠');
    assert.equal((await call(api.base, 'DELETE', PUT)).status, 204);
  });

  test('answers 413 for a body over 16 KiB', async () => {
    const r = await call(api.base, 'PUT', PUT, { body: { healthy: true, source: 'a', reason: 'x'.repeat(20_000) } });
    assert.equal(r.status, 413);
    assert.equal(r.body.code, 413);
  });
});

describe('OpenAPI document', () => {
  const ROUTES: Record<string, string[]> = {
    '/api/v1/live': ['get'],
    '/api/v1/ready': ['get'],
    '/api/v1/version': ['get'],
    '/api/v1/openapi.json': ['get'],
    '/api/v1/health/servers': ['get'],
    '/api/v1/health/regions': ['get'],
    '/api/v1/domains': ['get'],
    '/api/v1/overrides': ['get'],
    '/api/v1/overrides/{service}/{address}': ['delete', 'get', 'put'],
    '/api/v1/overrides/server/{address}': ['delete', 'get', 'put'],
    '/api/v1/overrides/region/{region}': ['delete', 'get', 'put'],
    '/api/v1/explain': ['get'],
    '/api/v1/overwatch/backends': ['get'],
    '/api/v1/reload': ['post'],
    '/api/v1/status': ['get'],
    '/api/v1/dnssec/status': ['get'],
    '/api/v1/dnssec/ds': ['get'],
    '/api/v1/dnssec/rollover': ['get'],
    '/api/v1/dnssec/rollover/start': ['post'],
    '/api/v1/dnssec/rollover/finish': ['post'],
    '/api/v1/dnssec/keysync': ['get'],
    '/api/v1/overwatch/agents': ['get'],
    '/api/v1/overwatch/agents/{id}': ['delete', 'get'],
    '/api/v1/overwatch/agents/{id}/revoke': ['post'],
    '/api/v1/cluster/status': ['get'],
    '/api/v1/geo/test': ['get'],
    '/api/v1/geo/mappings': ['delete', 'get', 'put'],
    '/api/v1/stats/queries': ['get'],
  };

  test('docs/api.md\'s route table lists exactly the routes of the OpenAPI document', async () => {
    const doc = await readFile(join(ROOT, 'docs/api.md'), 'utf8');
    const documented: Record<string, string[]> = {};
    // A query string in the table ("/api/v1/geo/test?ip=") says what to pass; the route is the path.
    for (const m of doc.matchAll(/^\| (GET|POST|PUT|DELETE|PATCH) \| `(\/api\/v1\/[^`?]*)[^`]*` \|/gm)) (documented[m[2]] ??= []).push(m[1].toLowerCase());
    for (const list of Object.values(documented)) list.sort();
    assert.deepEqual(documented, ROUTES);
  });

  test('GET /api/v1/openapi.json lists every route with its methods', async () => {
    const r = await call(api.base, 'GET', '/api/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.match(r.body.openapi, /^3\./);
    const paths: Record<string, string[]> = {};
    for (const [path, ops] of Object.entries(r.body.paths as Record<string, object>)) paths[path] = Object.keys(ops).sort();
    assert.deepEqual(paths, ROUTES);
  });

  test('every operation in the OpenAPI document has a success schema and the JSON error schema', async () => {
    const doc = (await call(api.base, 'GET', '/api/v1/openapi.json')).body;
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { content?: { 'application/json': { schema: object } } }> }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const codes = Object.keys(op.responses);
        const success = codes.find((c) => c.startsWith('2'));
        assert.ok(success, `${method} ${path} has no 2xx response`);
        if (success !== '204') assert.ok(op.responses[success].content?.['application/json'].schema, `${method} ${path} ${success} has no schema`);
        if (!['/api/v1/live', '/api/v1/ready', '/api/v1/version'].includes(path)) {
          assert.deepEqual(op.responses['403'].content?.['application/json'].schema, { $ref: '#/components/schemas/Error' }, `${method} ${path}`);
        }
      }
    }
    assert.deepEqual(doc.components.schemas.Error.required, ['error', 'code']);
  });

  test('the OpenAPI document carries the PUT override body schema and the bearer security on writes', async () => {
    const doc = (await call(api.base, 'GET', '/api/v1/openapi.json')).body;
    const put = doc.paths['/api/v1/overrides/{service}/{address}'].put;
    const body = put.requestBody.content['application/json'].schema;
    assert.deepEqual(body.required, ['healthy', 'source']);
    assert.equal(body.additionalProperties, false);
    assert.equal(body.properties.healthy.type, 'boolean');
    assert.equal(body.properties.source.type, 'string');
    assert.equal(body.properties.source.minLength, 1);
    assert.equal(body.properties.reason.default, '');
    assert.deepEqual(put.parameters.map((p: { in: string; name: string }) => `${p.in}:${p.name}`), ['path:service', 'path:address']);
    assert.deepEqual(put.security, [{ bearer: [] }]);
    assert.deepEqual(doc.paths['/api/v1/overrides/{service}/{address}'].delete.security, [{ bearer: [] }]);
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
    const servers = doc.paths['/api/v1/health/servers'].get;
    assert.deepEqual(servers.parameters.map((p: { name: string }) => p.name), ['domain', 'region', 'status']);
    assert.deepEqual(doc.components.schemas.Server.properties.status.enum, ['healthy', 'unhealthy', 'unknown']);
  });
});

/** Writes one raw request on a new connection and reads until the server closes it (2 s at most). */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within 2 s; read: ${JSON.stringify(text.slice(0, 300))}`));
    }, 2000);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(request);
  });
}
