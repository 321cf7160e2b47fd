// DNS rebinding against the admin API: a web page whose DNS name is made to
// resolve to 127.0.0.1 is of the same origin as a loopback API, so neither the
// browser's same-origin policy nor the API's cross-origin write check stops it;
// only the Host header names the page's host. Raw HTTP requests on loopback,
// each with the Host a browser would send, against the real API and overwatch.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { launchServer, type Started } from '../helpers/server.ts';
import { openTestApi, YAML, type StartedApi } from './helpers.ts';

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

interface RawAnswer {
  readonly status: number;
  readonly body: any;
}

/** Sends one request as written (no client rewrites Host) and reads the answer until the server closes. */
function send(method: string, path: string, headers: Record<string, string>, body = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(api.api.port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 2 s; read: ${JSON.stringify(text.slice(0, 300))}`));
    }, 2000);
    socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      const [head, ...rest] = text.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
      const payload = rest.join('\r\n\r\n');
      resolve({ status, body: payload === '' ? null : JSON.parse(payload) });
    });
    const lines = Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(body)), connection: 'close' }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`${method} ${path} HTTP/1.1\r\n${lines}\r\n${body}`);
  });
}

describe('Host header check (DNS rebinding)', () => {
  const refused = [
    { name: 'a rebound name, as a browser sends it', host: 'attacker.example:8080', shown: 'attacker.example' },
    { name: 'a rebound name without a port', host: 'evil.test', shown: 'evil.test' },
    { name: 'a subdomain of localhost (not "localhost" itself)', host: 'x.localhost', shown: 'x.localhost' },
    { name: 'a name that only starts like an IP address', host: '127.0.0.1.evil.test', shown: '127.0.0.1.evil.test' },
  ];
  for (const r of refused) {
    test(`refuses a read with ${r.name} with 403 naming api.allowed_hosts`, async () => {
      const a = await send('GET', '/api/v1/health/servers', { host: r.host });
      assert.equal(a.status, 403, JSON.stringify(a.body));
      assert.equal(a.body.code, 403);
      assert.equal(
        a.body.error,
        `Host ${JSON.stringify(r.host)} is not an IP address, "localhost" or a name in api.allowed_hosts (a web page whose name is made to resolve to this API, by DNS rebinding, sends such a Host); if clients reach the API by this name, add ${JSON.stringify(r.shown)} to api.allowed_hosts`,
      );
    });
  }

  test('refuses a same-origin write from a rebound page (Sec-Fetch-Site: same-origin) and changes nothing', async () => {
    const a = await send('POST', '/api/v1/reload', { host: 'attacker.example:8080', 'sec-fetch-site': 'same-origin', origin: 'http://attacker.example:8080' });
    assert.equal(a.status, 403, JSON.stringify(a.body));
    assert.match(a.body.error, /^Host "attacker\.example:8080" is not an IP address/);
    const put = await send('PUT', '/api/v1/overrides/region/eu', { host: 'attacker.example', 'content-type': 'application/json' }, '{"healthy": false, "source": "evil"}');
    assert.equal(put.status, 403);
    assert.deepEqual((await send('GET', '/api/v1/overrides', { host: '127.0.0.1' })).body.overrides, []);
  });

  test('refuses the dashboard page to a rebound name', async () => {
    const a = await send('GET', '/', { host: 'attacker.example' });
    assert.equal(a.status, 403);
  });

  const accepted = ['127.0.0.1', `127.0.0.1:PORT`, '[::1]:PORT', '[::1]', 'localhost', 'LocalHost:PORT', 'localhost.:PORT', '192.0.2.7:80'];
  for (const host of accepted) {
    test(`answers a Host of ${host} (an IP address or localhost)`, async () => {
      const a = await send('GET', '/api/v1/health/servers', { host: host.replace('PORT', String(api.api.port)) });
      assert.equal(a.status, 200, JSON.stringify(a.body));
    });
  }

  test('answers a name listed in api.allowed_hosts, in any case and with a trailing dot, and applies a reload at once', async (t) => {
    t.after(() => (api.config = { ...api.config, allowedHosts: [] }));
    assert.equal((await send('GET', '/api/v1/domains', { host: 'gslb1.example.net:8080' })).status, 403);
    api.config = { ...api.config, allowedHosts: ['gslb1.example.net'] };
    assert.equal((await send('GET', '/api/v1/domains', { host: 'gslb1.example.net:8080' })).status, 200);
    assert.equal((await send('GET', '/api/v1/domains', { host: 'GSLB1.Example.NET.' })).status, 200);
    assert.equal((await send('GET', '/api/v1/domains', { host: 'gslb2.example.net' })).status, 403);
  });

  test('answers live, ready and version whatever the Host, for probes and load balancers', async () => {
    for (const path of ['/api/v1/live', '/api/v1/ready', '/api/v1/version']) {
      const a = await send('GET', path, { host: 'lb-probe.internal' });
      assert.equal(a.status, 200, `${path}: ${JSON.stringify(a.body)}`);
    }
  });

  test('refuses a malformed Host, such as an IPv6 address without brackets', async () => {
    const a = await send('GET', '/api/v1/domains', { host: '::1' });
    assert.equal(a.status, 403);
    assert.match(a.body.error, /^Host "::1" is not an IP address/);
  });

  test('answers an HTTP/1.0 request without Host (no browser sends one)', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(api.api.port, '127.0.0.1');
      let read = '';
      socket.on('data', (d: Buffer) => (read += d.toString('utf8')));
      socket.on('error', reject);
      socket.on('close', () => resolve(read));
      socket.write('GET /api/v1/domains HTTP/1.0\r\n\r\n');
    });
    assert.match(text, /^HTTP\/1\.1 200 /);
  });

  describe('behind a proxy (trust_proxy_headers)', () => {
    test('checks each X-Forwarded-Host name as well as Host', async (t) => {
      t.after(() => (api.config = { ...api.config, trustProxyHeaders: false, allowedHosts: [] }));
      api.config = { ...api.config, trustProxyHeaders: true, allowedHosts: ['gslb.example.net'] };
      // The proxy sends its upstream's address as Host and the name the browser used as X-Forwarded-Host.
      assert.equal((await send('GET', '/api/v1/domains', { host: '127.0.0.1:8080', 'x-forwarded-host': 'gslb.example.net' })).status, 200);
      const a = await send('GET', '/api/v1/domains', { host: '127.0.0.1:8080', 'x-forwarded-host': 'attacker.example' });
      assert.equal(a.status, 403);
      assert.match(a.body.error, /^X-Forwarded-Host "attacker\.example" is not an IP address, "localhost" or a name in api\.allowed_hosts/);
      // A chain: every name must be one this API is reached by.
      assert.equal((await send('GET', '/api/v1/domains', { host: '127.0.0.1', 'x-forwarded-host': 'gslb.example.net, attacker.example' })).status, 403);
      // The Host the proxy passes on ($host) is checked too.
      assert.equal((await send('GET', '/api/v1/domains', { host: 'attacker.example', 'x-forwarded-host': 'gslb.example.net' })).status, 403);
    });

    test('checks each RFC 7239 Forwarded host= as well, quoted or not', async (t) => {
      t.after(() => (api.config = { ...api.config, trustProxyHeaders: false, allowedHosts: [] }));
      api.config = { ...api.config, trustProxyHeaders: true, allowedHosts: ['gslb.example.net'] };
      const ok = ['for=192.0.2.60;proto=https;host=gslb.example.net', 'host="gslb.example.net:8443";for="[2001:db8::1]"', 'for=192.0.2.60, for=10.0.0.1;host=GSLB.example.net.', 'for=192.0.2.60'];
      for (const forwarded of ok) {
        const a = await send('GET', '/api/v1/domains', { host: '127.0.0.1:8080', forwarded });
        assert.equal(a.status, 200, `${forwarded}: ${JSON.stringify(a.body)}`);
      }
      const a = await send('GET', '/api/v1/domains', { host: '127.0.0.1:8080', forwarded: 'for=192.0.2.60;host="attacker.example:8080";proto=http' });
      assert.equal(a.status, 403);
      assert.match(a.body.error, /^Forwarded host "attacker\.example:8080" is not an IP address, "localhost" or a name in api\.allowed_hosts .*add "attacker\.example" to api\.allowed_hosts$/);
      // A chain: every element's host counts, as for X-Forwarded-Host.
      assert.equal((await send('GET', '/api/v1/domains', { host: '127.0.0.1', forwarded: 'host=gslb.example.net, host=attacker.example' })).status, 403);
      // Malformed: refused, saying where and what was expected, rather than read past.
      const m = await send('GET', '/api/v1/domains', { host: '127.0.0.1', forwarded: 'for=192.0.2.60;host="attacker.example' });
      assert.equal(m.status, 403);
      assert.match(m.body.error, /^Forwarded "for=192\.0\.2\.60;host=\\"attacker\.example": a quoted value that is not closed at character 21, expected RFC 7239 pairs/);
    });

    test('ignores X-Forwarded-Host and Forwarded without trust_proxy_headers (a client can write them)', async () => {
      assert.equal((await send('GET', '/api/v1/domains', { host: '127.0.0.1', 'x-forwarded-host': 'attacker.example' })).status, 200);
      assert.equal((await send('GET', '/api/v1/domains', { host: '127.0.0.1', forwarded: 'host=attacker.example' })).status, 200);
    });
  });
});
