// Who may call the admin API: the allowlist (IPv4, IPv6, IPv4-mapped peers,
// proxy headers) and the bearer token for writes, over real loopback
// connections from Node's fetch.

import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { launchServer, type Started } from '../helpers/server.ts';
import { call, openTestApi, startTestApi, YAML, type StartedApi } from './helpers.ts';

const TOKEN = 'correct-horse-battery-staple';
const OVERRIDE = '/api/v1/overrides/app.example.test/192.0.2.1';
const BODY = { healthy: true, source: 'access-test' };

let server: Started;

before(async () => {
  server = await launchServer(YAML);
});
after(() => server.overwatch.stop(500));

describe('allowlist', () => {
  test('refuses a client outside allowed_networks with 403 and a JSON {error, code} naming its address', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['10.0.0.0/8', '2001:db8::/32'] });
    for (const path of ['/api/v1/health/servers', '/api/v1/domains', '/api/v1/overrides', '/api/v1/openapi.json', '/api/v1/nothing']) {
      const r = await call(api.base, 'GET', path);
      assert.equal(r.status, 403, path);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(r.body, { error: 'client 127.0.0.1 is not in api.allowed_networks', code: 403 });
    }
    const put = await call(api.base, 'PUT', OVERRIDE, { body: BODY });
    assert.equal(put.status, 403);
  });

  test('answers live, ready and version to a client outside allowed_networks', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['10.0.0.0/8'] });
    for (const path of ['/api/v1/live', '/api/v1/ready', '/api/v1/version']) {
      assert.equal((await call(api.base, 'GET', path)).status, 200, path);
    }
  });

  test('applies a changed allowlist to the very next request, as after a reload', async (t) => {
    const api = await startTestApi(t, server.overwatch);
    assert.equal((await call(api.base, 'GET', '/api/v1/domains')).status, 200);
    api.config = { ...api.config, allowedNetworks: ['192.0.2.0/24'] };
    assert.equal((await call(api.base, 'GET', '/api/v1/domains')).status, 403);
    api.config = { ...api.config, allowedNetworks: ['127.0.0.0/8'] };
    assert.equal((await call(api.base, 'GET', '/api/v1/domains')).status, 200);
  });

  test('treats an empty allowed_networks as loopback only', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: [] });
    assert.equal((await call(api.base, 'GET', '/api/v1/domains')).status, 200);
  });

  const prefixes = [
    { cidr: '127.0.0.1/32', allowed: true },
    { cidr: '127.0.0.0/8', allowed: true },
    { cidr: '127.0.0.0/31', allowed: true },
    { cidr: '127.0.0.2/31', allowed: false },
    { cidr: '126.0.0.0/8', allowed: false },
    { cidr: '0.0.0.0/0', allowed: true },
    { cidr: '::/0', allowed: false },
  ];
  for (const p of prefixes) {
    test(`${p.allowed ? 'allows' : 'refuses'} 127.0.0.1 with allowed_networks [${p.cidr}]`, async (t) => {
      const api = await startTestApi(t, server.overwatch, { allowedNetworks: [p.cidr] });
      assert.equal((await call(api.base, 'GET', '/api/v1/overrides')).status, p.allowed ? 200 : 403);
    });
  }
});

describe('IPv6 clients', () => {
  test('allows a client on ::1 when ::1/128 is allowed', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['::1/128'] }, '::1');
    assert.equal(api.base.startsWith('http://[::1]:'), true);
    const r = await call(api.base, 'GET', '/api/v1/health/regions');
    assert.equal(r.status, 200);
  });

  test('refuses a client on ::1 when only IPv4 loopback is allowed', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['127.0.0.1/32'] }, '::1');
    const r = await call(api.base, 'GET', '/api/v1/health/regions');
    assert.deepEqual(r.body, { error: 'client ::1 is not in api.allowed_networks', code: 403 });
  });

  test('allows a client on ::1 by a wider IPv6 prefix and refuses it by a neighbouring one', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['::/127'] }, '::1');
    assert.equal((await call(api.base, 'GET', '/api/v1/overrides')).status, 200);
    api.config = { ...api.config, allowedNetworks: ['::2/127'] };
    assert.equal((await call(api.base, 'GET', '/api/v1/overrides')).status, 403);
  });

  test('treats an IPv4-mapped peer (::ffff:127.0.0.1 on a dual-stack socket) as the IPv4 client', async (t) => {
    const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['127.0.0.1/32'] }, '::');
    const v4 = `http://127.0.0.1:${api.api.port}`;
    assert.equal((await call(v4, 'GET', '/api/v1/overrides')).status, 200);
    api.config = { ...api.config, allowedNetworks: ['::1/128'] };
    const r = await call(v4, 'GET', '/api/v1/overrides');
    assert.deepEqual(r.body, { error: 'client 127.0.0.1 is not in api.allowed_networks', code: 403 });
  });
});

describe('proxy headers', () => {
  let api: StartedApi;
  before(async () => {
    api = await openTestApi(server.overwatch, { allowedNetworks: ['10.0.0.0/8'] });
  });
  after(() => api.api.close());

  const cases: { name: string; trust: boolean; headers: Record<string, string>; status: number; client?: string }[] = [
    { name: 'ignores X-Forwarded-For when trust_proxy_headers is off', trust: false, headers: { 'x-forwarded-for': '10.1.2.3' }, status: 403, client: '127.0.0.1' },
    { name: 'ignores X-Real-IP when trust_proxy_headers is off', trust: false, headers: { 'x-real-ip': '10.1.2.3' }, status: 403, client: '127.0.0.1' },
    { name: 'takes the client from X-Forwarded-For when trusted', trust: true, headers: { 'x-forwarded-for': '10.1.2.3' }, status: 200 },
    { name: 'takes the last X-Forwarded-For element, the one the proxy in front added', trust: true, headers: { 'x-forwarded-for': '192.0.2.7, 10.1.2.3' }, status: 200 },
    { name: 'refuses when the last X-Forwarded-For element is outside, whatever the client wrote before it', trust: true, headers: { 'x-forwarded-for': '10.1.2.3, 192.0.2.7' }, status: 403, client: '192.0.2.7' },
    { name: 'takes the last of several X-Forwarded-For elements (proxies in a chain)', trust: true, headers: { 'x-forwarded-for': '10.1.2.3, 10.1.2.4, 192.0.2.7' }, status: 403, client: '192.0.2.7' },
    { name: 'refuses the trusted proxy itself when the header names an outside client', trust: true, headers: { 'x-forwarded-for': '203.0.113.9' }, status: 403, client: '203.0.113.9' },
    { name: 'takes the client from X-Real-IP when there is no X-Forwarded-For', trust: true, headers: { 'x-real-ip': '10.9.9.9' }, status: 200 },
    { name: 'takes X-Forwarded-For and X-Real-IP that agree (in any text form)', trust: true, headers: { 'x-forwarded-for': '192.0.2.7, ::ffff:10.9.9.9', 'x-real-ip': '10.9.9.9' }, status: 200 },
    { name: 'normalises an IPv4-mapped address in X-Forwarded-For', trust: true, headers: { 'x-forwarded-for': '::ffff:10.1.2.3' }, status: 200 },
    { name: 'falls back to the peer when trusted but no header is sent', trust: true, headers: {}, status: 403, client: '127.0.0.1' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      api.config = { ...api.config, trustProxyHeaders: c.trust };
      const r = await call(api.base, 'GET', '/api/v1/overrides', { headers: c.headers });
      assert.equal(r.status, c.status);
      if (c.client !== undefined) assert.equal(r.body.error, `client ${c.client} is not in api.allowed_networks`);
    });
  }

  test('refuses a trusted X-Forwarded-For that is not an IP address rather than falling back to the proxy', async () => {
    api.config = { ...api.config, trustProxyHeaders: true, allowedNetworks: ['127.0.0.0/8'] };
    const r = await call(api.base, 'GET', '/api/v1/overrides', { headers: { 'x-forwarded-for': 'unknown' } });
    assert.equal(r.status, 403);
    assert.match(r.body.error, /^the last X-Forwarded-For element "unknown" is not an IP address/);
  });

  test('refuses X-Forwarded-For and X-Real-IP that disagree: the proxy set one, the client wrote the other', async () => {
    api.config = { ...api.config, trustProxyHeaders: true, allowedNetworks: ['10.0.0.0/8'] };
    for (const headers of [
      { 'x-forwarded-for': '10.1.2.3', 'x-real-ip': '192.0.2.7' },
      { 'x-forwarded-for': '192.0.2.7', 'x-real-ip': '10.9.9.9' },
    ]) {
      const r = await call(api.base, 'GET', '/api/v1/overrides', { headers });
      assert.equal(r.status, 403);
      assert.match(r.body.error, /^X-Real-IP \S+ and the last X-Forwarded-For element \S+ disagree \(the proxy sets one of them; the other came from the client\), so the allowlist cannot be checked$/);
    }
  });

  // A reverse proxy on loopback as nginx forwards: "X-Forwarded-For: $proxy_add_x_forwarded_for" appends the peer
  // it saw to what the client sent; "X-Real-IP: $remote_addr" replaces the client's. Other headers pass as sent.
  const proxies: { name: string; set: (headers: IncomingHttpHeaders, peer: string) => void }[] = [
    { name: 'appends to X-Forwarded-For', set: (h, peer) => void (h['x-forwarded-for'] = typeof h['x-forwarded-for'] === 'string' ? `${h['x-forwarded-for']}, ${peer}` : peer) },
    { name: 'sets X-Real-IP', set: (h, peer) => void (h['x-real-ip'] = peer) },
    {
      name: 'sets both',
      set: (h, peer) => {
        h['x-forwarded-for'] = typeof h['x-forwarded-for'] === 'string' ? `${h['x-forwarded-for']}, ${peer}` : peer;
        h['x-real-ip'] = peer;
      },
    },
  ];
  for (const proxy of proxies) {
    test(`behind a real proxy that ${proxy.name}, a client outside the allowlist cannot pass by writing an allowed address into either header`, async (t) => {
      api.config = { ...api.config, trustProxyHeaders: true, allowedNetworks: ['10.0.0.0/8'] };
      const front = await startProxy(api.api.port, proxy.set);
      t.after(() => front.close());
      const base = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
      for (const headers of [{ 'x-forwarded-for': '10.1.2.3' }, { 'x-real-ip': '10.1.2.3' }, { 'x-forwarded-for': '10.1.2.3', 'x-real-ip': '10.1.2.3' }] as Record<string, string>[]) {
        const r = await call(base, 'PUT', OVERRIDE, { body: BODY, headers });
        assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
      }
      assert.equal(server.overwatch.overrides().length, 0);
      // And the client the proxy saw is the one the allowlist decides on.
      api.config = { ...api.config, allowedNetworks: ['127.0.0.0/8'] };
      assert.equal((await call(base, 'GET', '/api/v1/overrides', { headers: { 'x-forwarded-for': '192.0.2.7' } })).status, proxy.name === 'sets X-Real-IP' ? 403 : 200);
      assert.equal((await call(base, 'GET', '/api/v1/overrides')).status, 200);
    });
  }
});

/** A reverse proxy on 127.0.0.1 port 0 in front of the API on `port`, setting the proxy headers with `set`. */
async function startProxy(port: number, set: (headers: IncomingHttpHeaders, peer: string) => void): Promise<Server> {
  const front = createServer((req, res) => {
    const headers = { ...req.headers };
    set(headers, req.socket.remoteAddress ?? '');
    const upstream = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  return front;
}

describe('writes a browser sends for a page of another origin', () => {
  let api: StartedApi;
  before(async () => {
    api = await openTestApi(server.overwatch);
  });
  after(() => api.api.close());

  const host = (): string => new URL(api.base).host;
  const cases: { name: string; headers: () => Record<string, string>; status: number }[] = [
    { name: 'refuses Sec-Fetch-Site cross-site', headers: () => ({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }), status: 403 },
    { name: 'refuses Sec-Fetch-Site same-site (another port of this host)', headers: () => ({ 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:1' }), status: 403 },
    { name: 'refuses an Origin other than the Host, from a browser without Sec-Fetch-Site', headers: () => ({ origin: 'http://127.0.0.1:1' }), status: 403 },
    { name: 'refuses Origin null (a sandboxed page or a file)', headers: () => ({ origin: 'null' }), status: 403 },
    { name: 'takes Sec-Fetch-Site same-origin (the dashboard)', headers: () => ({ 'sec-fetch-site': 'same-origin', origin: 'https://gslb.example.net' }), status: 200 },
    { name: 'takes Sec-Fetch-Site none (typed by the user)', headers: () => ({ 'sec-fetch-site': 'none' }), status: 200 },
    { name: 'takes an Origin equal to the Host, from a browser without Sec-Fetch-Site', headers: () => ({ origin: `http://${host()}` }), status: 200 },
    { name: 'takes a request without either header (opengslb-cli, curl)', headers: () => ({}), status: 200 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await call(api.base, 'PUT', OVERRIDE, { body: BODY, headers: c.headers() });
      assert.equal(r.status, c.status, JSON.stringify(r.body));
      if (c.status === 403) assert.match(r.body.error, /^a write from a page of another origin \(.+\) is refused: a browser sent it on that page's behalf; expected a client such as opengslb-cli or curl, or the dashboard this API serves$/);
      await server.overwatch.clearOverride({ scope: 'domain', service: 'app.example.test', address: '192.0.2.1' });
    });
  }

  test('answers reads whatever the origin (the browser keeps a cross-origin answer from the page)', async () => {
    assert.equal((await call(api.base, 'GET', '/api/v1/overrides', { headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' } })).status, 200);
  });
});

describe('bearer token', () => {
  let api: StartedApi;
  before(async () => {
    api = await openTestApi(server.overwatch, { token: TOKEN });
  });
  after(() => api.api.close());

  test('answers a write without a token with 401 and WWW-Authenticate: Bearer', async () => {
    const r = await call(api.base, 'PUT', OVERRIDE, { body: BODY });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/);
    assert.deepEqual(r.body, { error: 'this write needs the API token: send "Authorization: Bearer <api.token>"', code: 401 });
  });

  test('answers a write with a wrong token, or another scheme, with 401', async () => {
    for (const authorization of [`Bearer ${TOKEN}x`, 'Bearer ', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`, TOKEN]) {
      const r = await call(api.base, 'DELETE', OVERRIDE, { headers: { authorization } });
      assert.equal(r.status, 401, authorization);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/);
    }
    assert.deepEqual(server.overwatch.overrides(), []);
  });

  test('accepts a write with the right token (the scheme in any case)', async () => {
    const set = await call(api.base, 'PUT', OVERRIDE, { body: BODY, headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(set.status, 200);
    const cleared = await call(api.base, 'DELETE', OVERRIDE, { headers: { authorization: `bearer ${TOKEN}` } });
    assert.equal(cleared.status, 204);
  });

  test('answers reads without a token', async () => {
    for (const path of ['/api/v1/health/servers', '/api/v1/overrides', '/api/v1/domains', OVERRIDE.replace('192.0.2.1', '192.0.2.2')]) {
      const r = await call(api.base, 'GET', path);
      assert.notEqual(r.status, 401, path);
    }
  });

  test('answers a wrong method (405) or an unknown path (404) without asking for the token', async () => {
    const wrong = await call(api.base, 'POST', '/api/v1/domains');
    assert.equal(wrong.status, 405);
    const missing = await call(api.base, 'DELETE', '/api/v1/nothing');
    assert.equal(missing.status, 404);
  });

  test('checks the allowlist before the token', async () => {
    api.config = { ...api.config, allowedNetworks: ['10.0.0.0/8'] };
    try {
      const r = await call(api.base, 'PUT', OVERRIDE, { body: BODY, headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 403);
    } finally {
      api.config = { ...api.config, allowedNetworks: ['127.0.0.1/32'] };
    }
  });

  test('applies a token set by a reload to the next write', async () => {
    api.config = { ...api.config, token: 'another-token-of-16+' };
    try {
      assert.equal((await call(api.base, 'PUT', OVERRIDE, { body: BODY, headers: { authorization: `Bearer ${TOKEN}` } })).status, 401);
      api.config = { ...api.config, token: null };
      assert.equal((await call(api.base, 'PUT', OVERRIDE, { body: BODY })).status, 200);
      assert.equal((await call(api.base, 'DELETE', OVERRIDE)).status, 204);
    } finally {
      api.config = { ...api.config, token: TOKEN };
    }
  });

  test('accepts a token with non-ASCII characters sent as UTF-8, as curl sends it', async () => {
    // fetch refuses such a header value, so the request goes over a raw socket.
    const token = 'pässwörd-ünïcode-1234';
    api.config = { ...api.config, token };
    try {
      const body = JSON.stringify(BODY);
      const head = `PUT ${OVERRIDE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(api.api.port, '127.0.0.1');
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
        socket.end(Buffer.from(head + body, 'utf8'));
      });
      // Node reads header bytes as latin1: the token used to be compared as "pÃ¤sswÃ¶rd…" and never matched.
      assert.match(answer, /^HTTP\/1\.1 200 /, answer);
      assert.equal((await call(api.base, 'DELETE', OVERRIDE, { headers: { authorization: `Bearer ${Buffer.from(token, 'utf8').toString('latin1')}` } })).status, 204);
    } finally {
      api.config = { ...api.config, token: TOKEN };
    }
  });
});
