// How many connections the admin API holds: api.max_connections in all, and
// at most OUTSIDE_CONNECTIONS from outside api.allowed_networks, each refused
// when accepted, before a byte of it is read. Real TCP sockets on loopback;
// 127.0.0.2 plays a client outside an allowlist of 127.0.0.1/32; the same
// gate holds over HTTPS, before the handshake.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { OUTSIDE_CONNECTIONS } from '../../src/api/server.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { testCertificates } from '../health/helpers.ts';
import { launchServer, type Started } from '../helpers/server.ts';
import { openTestApi, startTestApi, YAML, type StartedApi } from './helpers.ts';

let server: Started;

before(async () => {
  server = await launchServer(YAML);
});
after(() => server.overwatch.stop(500));

/** A connected socket (from `localAddress` when given) that collects what it receives and notes when it closes. */
interface Client {
  readonly socket: Socket;
  readonly received: () => string;
  readonly closed: Promise<void>;
}

async function open(api: StartedApi, localAddress?: string): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port: api.api.port, ...(localAddress === undefined ? {} : { localAddress }) });
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('error', () => {}); // a reset is what a refused connection may get
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed };
}

/** Sends one keep-alive GET and resolves with the response head once it has arrived whole (status line and headers). */
async function get(c: Client, path: string, headers: Record<string, string> = {}): Promise<{ status: number; head: string }> {
  const before = c.received().length;
  c.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = c.received().slice(before);
    const end = text.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(text);
    if (end >= 0 && length !== null && text.length >= end + 4 + Number(length[1])) return { status: Number(text.slice(9, 12)), head: text.slice(0, end) };
    if (Date.now() > deadline) throw new Error(`no whole response to ${path}; received ${JSON.stringify(text)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves true when the server closes the connection within `ms` having sent nothing, false when it stays open. */
async function refusedAtOnce(c: Client, ms = 1000): Promise<boolean> {
  c.socket.write('GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  return closed && c.received() === '';
}

test('api.max_connections: connections past it are closed when accepted, without a reply; one closing makes room; a reload applies a new value', async (t) => {
  const api = await startTestApi(t, server.overwatch, { maxConnections: 3 });
  const held: Client[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await open(api);
    assert.equal((await get(c, '/api/v1/domains')).status, 200, 'kept alive and counted');
    held.push(c);
  }
  const fourth = await open(api);
  assert.equal(await refusedAtOnce(fourth), true, 'the fourth is closed with nothing read or answered');
  assert.equal((await get(held[0], '/api/v1/overrides')).status, 200, 'the held ones are still served');
  assert.ok(api.logs.some((l) => l.includes('API connection refused: api.max_connections are open') && l.includes('"limit":3')), api.logs.join('\n'));
  // Counted, and served as opengslb_api_connections_refused_total by the metrics reading this API.
  assert.deepEqual({ ...api.api.refusedConnections }, { max_connections: 1, outside: 0 });
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, processMetrics: false, api: api.api });
  t.after(() => metrics.close());
  const text = await metrics.registry.metrics();
  assert.match(text, /^opengslb_api_connections_refused_total\{reason="max_connections"\} 1$/m);
  assert.match(text, /^opengslb_api_connections_refused_total\{reason="outside"\} 0$/m);

  held[0].socket.destroy();
  await held[0].closed;
  // The server sees the close a moment after the client: poll until a new connection is taken.
  let taken: Client | null = null;
  for (let i = 0; i < 50 && taken === null; i++) {
    const c = await open(api);
    if (!(await refusedAtOnce(c, 100))) taken = c;
  }
  assert.ok(taken, 'room again once one closed');
  // The probe above sent GET /api/v1/live on the taken connection: its answer came.
  await new Promise((r) => setTimeout(r, 50));
  assert.match(taken.received(), /^HTTP\/1\.1 200/);

  api.config = { ...api.config, maxConnections: 5 };
  const fifth = await open(api);
  assert.equal((await get(fifth, '/api/v1/domains')).status, 200, 'a reload raised the limit for the next connection');
  for (const c of [...held, fourth, taken, fifth]) c.socket.destroy();
});

test(`clients outside api.allowed_networks: at most ${OUTSIDE_CONNECTIONS} connections, closed after a probe's answer, still refused per request; allowed clients are not affected; with trust_proxy_headers only the total counts`, async (t) => {
  const api = await startTestApi(t, server.overwatch, { allowedNetworks: ['127.0.0.1/32'] });
  // An outsider's probe is answered and its connection closed after it.
  const probe = await open(api, '127.0.0.2');
  const live = await get(probe, '/api/v1/live');
  assert.equal(live.status, 200);
  assert.match(live.head, /\r\nconnection: close/i);
  await probe.closed;
  // Any other route is refused per request, as before.
  const other = await open(api, '127.0.0.2');
  assert.equal((await get(other, '/api/v1/domains')).status, 403);
  other.socket.destroy();
  await other.closed;

  // Outsiders holding connections without finishing a request: the first OUTSIDE_CONNECTIONS are held, the next is closed when accepted.
  const outsiders: Client[] = [];
  for (let i = 0; i < OUTSIDE_CONNECTIONS; i++) {
    const c = await open(api, '127.0.0.2');
    c.socket.write('GET /api/v1/live HTTP/1.1\r\n');
    outsiders.push(c);
  }
  // Accepted in order: once an allowed client's request (made after them) is answered, the server has counted them all.
  const insider = await open(api, '127.0.0.1');
  assert.equal((await get(insider, '/api/v1/domains')).status, 200);
  const extra = await open(api, '127.0.0.2');
  assert.equal(await refusedAtOnce(extra), true, 'past the outside share: closed at once');
  for (const c of outsiders) assert.equal(c.socket.destroyed, false, 'the held outsiders stay open (until the request timeout)');
  assert.ok(api.logs.some((l) => l.includes(`API connection refused: ${OUTSIDE_CONNECTIONS} connections from outside api.allowed_networks are open`)), api.logs.join('\n'));
  assert.deepEqual({ ...api.api.refusedConnections }, { max_connections: 0, outside: 1 });
  // Allowed clients still connect.
  const insider2 = await open(api, '127.0.0.1');
  assert.equal((await get(insider2, '/api/v1/overrides')).status, 200);

  // Behind a trusted proxy the peer is the proxy: only the headers name the client, so the connection is taken and the request decides.
  api.config = { ...api.config, trustProxyHeaders: true };
  const proxied = await open(api, '127.0.0.2');
  assert.equal((await get(proxied, '/api/v1/domains', { 'x-forwarded-for': '127.0.0.1' })).status, 200);
  assert.equal((await get(proxied, '/api/v1/domains', { 'x-forwarded-for': '192.0.2.9' })).status, 403);
  for (const c of [...outsiders, insider, insider2, proxied]) c.socket.destroy();
});

test('over HTTPS (api.tls) a connection past api.max_connections is closed before its handshake', async (t) => {
  const certs = await testCertificates();
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-api-conn-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'api.pem'), certs.leafPem);
  await writeFile(join(dir, 'api.key'), certs.leafKeyPem, { mode: 0o600 });
  const api = await startTestApi(t, server.overwatch, { maxConnections: 1, tls: { certPath: join(dir, 'api.pem'), keyPath: join(dir, 'api.key') } });
  const handshake = (): Promise<TLSSocket | Error> => new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: api.api.port, ca: certs.caPem, servername: 'localhost', rejectUnauthorized: false });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', (err) => resolve(err));
    socket.once('close', () => resolve(new Error('closed before the handshake')));
  });
  const first = await handshake();
  assert.ok(!(first instanceof Error), String(first));
  const second = await handshake();
  assert.ok(second instanceof Error, 'the second connection got no handshake');
  first.destroy();
});

test('close() cuts connections still mid-request after a short grace: one that sent nothing, half its headers or half its body cannot hold the stop', async () => {
  const api = await openTestApi(server.overwatch);
  const silent = await open(api);
  const halfHeaders = await open(api);
  halfHeaders.socket.write('GET /api/v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const halfBody = await open(api);
  halfBody.socket.write('PUT /api/v1/overrides/region/eu HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"healthy":');
  const idle = await open(api);
  assert.equal((await get(idle, '/api/v1/live')).status, 200);
  const clients = [silent, halfHeaders, halfBody, idle];
  // Node stops its request-timeout checks on close: these clients used to hold close() until they left.
  const started = Date.now();
  try {
    const outcome = await Promise.race([api.api.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 6 s'), 6000))]);
    assert.equal(outcome, 'closed');
    assert.ok(Date.now() - started < 4500, `close took ${Date.now() - started} ms, inside the process's 4.5 s stop`);
    await Promise.all(clients.map((c) => c.closed));
  } finally {
    for (const c of clients) c.socket.destroy();
  }
});
