// GET /metrics on a real overwatch: real worker threads count real UDP and
// TCP queries in shared memory, the metrics listener serves what they
// counted, and the totals survive a worker restart and a reload that grows
// the routing-decision buffers.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics/prometheus.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import type { Overwatch } from '../../src/overwatch/overwatch.ts';
import { ask, buildQuery, rcodeOf, udpExchange } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';
import { parseExposition, scrape } from './scrape.ts';

const quiet = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));

const yaml = (extraDomains = ''): string => `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - name: r1
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: "2001:db8::1" }]
  - name: r2
    servers: [{ address: 198.51.100.1, weight: 10 }]
domains:
  - { name: app.example.test, regions: [r1] }
  - { name: w.example.test, regions: [r2], routing_algorithm: weighted }
${extraDomains}
logging: { level: error }
`;

/** Starts an overwatch, attaches metrics and a metrics listener on port 0; all stopped in t.after(). */
async function start(t: TestContext, config = yaml()): Promise<{ overwatch: Overwatch; dnsPort: number; metricsPort: number; metrics: Metrics }> {
  const { overwatch, port } = await startServer(t, config);
  const metrics = createMetrics({ version: '9.9.9-test', loadedAtMs: 1_700_000_000_000, overwatch, processMetrics: false });
  const listener = await startMetricsServer(metrics.registry, '127.0.0.1', 0, quiet);
  t.after(async () => {
    await listener.close();
    metrics.close();
  });
  return { overwatch, dnsPort: port, metricsPort: listener.port, metrics };
}

/**
 * Sends `first` (which gets no reply) and then a well-formed query from the
 * same socket: the same 4-tuple reaches the same worker, which handles
 * datagrams in order, so once the reply arrives `first` has been counted.
 */
async function sendUnanswered(port: number, first: Uint8Array): Promise<void> {
  const socket = dgram.createSocket('udp4');
  try {
    socket.send(first, port, '127.0.0.1');
    socket.send(buildQuery('app.example.test', 'A'), port, '127.0.0.1');
    await once(socket, 'message');
  } finally {
    socket.close();
  }
}

test('serves every query counted by the workers, by type and rcode, with the duration histogram and routing decisions', async (t) => {
  const { dnsPort, metricsPort } = await start(t);
  for (let i = 0; i < 5; i++) assert.equal((await ask(dnsPort, 'app.example.test', 'A')).rcode, 'NOERROR');
  for (let i = 0; i < 3; i++) assert.equal((await ask(dnsPort, 'app.example.test', 'AAAA')).answers?.length, 1);
  for (let i = 0; i < 2; i++) await ask(dnsPort, 'w.example.test', 'A');
  assert.equal((await ask(dnsPort, 'w.example.test', 'AAAA')).answers?.length, 0, 'NODATA: w has no IPv6 server');
  await ask(dnsPort, 'app.example.test', 'MX');
  for (let i = 0; i < 2; i++) assert.equal((await ask(dnsPort, 'nope.example.test', 'A')).rcode, 'NXDOMAIN');
  assert.equal((await ask(dnsPort, 'example.com', 'A')).rcode, 'REFUSED');
  assert.equal((await ask(dnsPort, 'app.example.test', 'A', {}, 'tcp')).rcode, 'NOERROR');
  // QDCOUNT = 2: malformed, FORMERR before any question is read.
  const malformed = buildQuery('app.example.test', 'A');
  malformed[5] = 2;
  const formerr = await udpExchange(dnsPort, malformed);
  assert.ok(formerr !== null);
  assert.equal(rcodeOf(formerr), 1);
  // Shorter than a header: dropped, never answered, in no histogram.
  await sendUnanswered(dnsPort, Buffer.from([1, 2, 3, 4, 5]));

  const m = await scrape(metricsPort);
  assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const q = (type: string, rcode: string): number | undefined => m.value('opengslb_dns_queries_total', { type, rcode });
  // 5 A app + 2 A w + 1 A app over TCP + the query after the short packet.
  assert.equal(q('A', 'NOERROR'), 9);
  assert.equal(q('AAAA', 'NOERROR'), 4);
  assert.equal(q('MX', 'NOERROR'), 1);
  assert.equal(q('A', 'NXDOMAIN'), 2);
  assert.equal(q('A', 'REFUSED'), 1);
  assert.equal(q('NONE', 'FORMERR'), 1);
  const answered = m.sum('opengslb_dns_queries_total');
  assert.equal(answered, 18, 'no other type/rcode pair was counted');

  assert.equal(m.value('opengslb_dns_query_duration_seconds_count', { transport: 'udp' }), 17);
  assert.equal(m.value('opengslb_dns_query_duration_seconds_count', { transport: 'tcp' }), 1);
  assert.equal(m.value('opengslb_dns_query_duration_seconds_bucket', { transport: 'udp', le: '+Inf' }), 17);
  const sum = m.value('opengslb_dns_query_duration_seconds_sum', { transport: 'udp' }) as number;
  assert.ok(sum > 0 && sum < 17 * 0.1, `a plausible sum of 17 reply times: ${sum} s`);
  // Buckets are cumulative.
  const buckets = m.samples.filter((s) => s.name === 'opengslb_dns_query_duration_seconds_bucket' && s.labels.transport === 'udp').map((s) => s.value);
  assert.deepEqual([...buckets].sort((a, b) => a - b), buckets);

  assert.equal(m.value('opengslb_routing_decisions_total', { domain: 'app.example.test', algorithm: 'round-robin' }), 5 + 3 + 1 + 1);
  assert.equal(m.value('opengslb_routing_decisions_total', { domain: 'w.example.test', algorithm: 'weighted' }), 2);
  assert.equal(m.value('opengslb_dns_queries_received_total', { transport: 'udp' }), 17);
  assert.equal(m.value('opengslb_dns_queries_received_total', { transport: 'tcp' }), 1);
  assert.equal(m.value('opengslb_dns_malformed_total'), 1);
  assert.equal(m.value('opengslb_dns_dropped_total', { reason: 'short' }), 1);
  assert.equal(m.value('opengslb_dns_dropped_total', { reason: 'response' }), 0);
  assert.equal(m.value('opengslb_dns_tcp_connections_total', { result: 'accepted' }), 1);
  assert.equal(m.value('opengslb_dns_worker_exceptions_total'), 0);
  assert.equal(m.value('opengslb_app_info', { version: '9.9.9-test' }), 1);
  assert.equal(m.value('opengslb_configured_domains'), 2);
  assert.equal(m.value('opengslb_configured_servers'), 4);
  assert.equal(m.value('opengslb_config_load_timestamp_seconds'), 1_700_000_000);
  assert.equal(m.value('opengslb_dns_workers_running'), 2);
  assert.equal(m.value('opengslb_dns_worker_snapshot_generation', { worker: '0' }), 1);
  assert.equal(m.value('opengslb_server_healthy', { region: 'r1', server: '[2001:db8::1]:80' }), 1);
  assert.equal(m.value('opengslb_healthy_servers', { region: 'r1' }), 3);
  for (const scope of ['domain', 'server', 'region']) assert.equal(m.value('opengslb_overwatch_overrides_active', { scope }), 0);
  assert.equal(m.value('opengslb_overwatch_overrides_expired_total'), 0);
  // Never a query name or a client address in a label.
  for (const s of m.samples) {
    for (const v of Object.values(s.labels)) assert.ok(!/nope|example\.com|127\.0\.0\.1/.test(v), `${s.name} has label value ${v}`);
  }
});

test('counts each domain\'s servers DNS may answer by family, overrides applied, labelled with its when_all_down', async (t) => {
  const { overwatch, dnsPort, metricsPort } = await start(t);
  let m = await scrape(metricsPort);
  const app = (family: string): Record<string, string> => ({ domain: 'app.example.test', family, when_all_down: 'servfail' });
  const w = { domain: 'w.example.test', family: 'ipv4', when_all_down: 'servfail' };
  assert.equal(m.value('opengslb_domain_healthy_servers', app('ipv4')), 2);
  assert.equal(m.value('opengslb_domain_healthy_servers', app('ipv6')), 1);
  assert.equal(m.value('opengslb_domain_healthy_servers', w), 1);
  assert.equal(m.value('opengslb_domain_healthy_servers', { ...w, family: 'ipv6' }), undefined, 'no IPv6 server: AAAA is NODATA, nothing to be down');
  // Drain region r2: w.example.test has nothing left and answers SERVFAIL; the gauge says 0 before any query.
  await overwatch.setOverride({ scope: 'region', region: 'r2' }, { healthy: false, reason: 'test', source: 'test' });
  m = await scrape(metricsPort);
  assert.equal(m.value('opengslb_domain_healthy_servers', w), 0);
  assert.equal(m.value('opengslb_domain_healthy_servers', app('ipv4')), 2);
  assert.equal((await ask(dnsPort, 'w.example.test', 'A')).rcode, 'SERVFAIL');
  // Both IPv4 servers of the dual-stack domain down: every A query gets SERVFAIL while AAAA is answered, and the IPv4 series says 0.
  for (const address of ['192.0.2.1', '192.0.2.2']) await overwatch.setOverride({ scope: 'server', address }, { healthy: false, reason: 'test', source: 'test' });
  assert.equal((await ask(dnsPort, 'app.example.test', 'A')).rcode, 'SERVFAIL');
  assert.equal((await ask(dnsPort, 'app.example.test', 'AAAA')).rcode, 'NOERROR');
  m = await scrape(metricsPort);
  assert.equal(m.value('opengslb_domain_healthy_servers', app('ipv4')), 0);
  assert.equal(m.value('opengslb_domain_healthy_servers', app('ipv6')), 1);
});

test('leaves weight-0 servers out of a domain\'s answerable servers where its policy picks by weight, so the SERVFAIL alert can fire', async (t) => {
  // r2 holds a drained server (weight 0: checked, never answered by weighted, geolocation or sticky) beside the one that answers.
  const config = yaml(`  - { name: rr.example.test, regions: [r2] }`).replace('servers: [{ address: 198.51.100.1, weight: 10 }]', 'servers: [{ address: 198.51.100.1, weight: 10 }, { address: 198.51.100.2, weight: 0 }]');
  const { overwatch, dnsPort, metricsPort } = await start(t, config);
  let m = await scrape(metricsPort);
  const w = { domain: 'w.example.test', family: 'ipv4', when_all_down: 'servfail' };
  const rr = { domain: 'rr.example.test', family: 'ipv4', when_all_down: 'servfail' };
  assert.equal(m.value('opengslb_domain_healthy_servers', w), 1);
  assert.equal(m.value('opengslb_domain_healthy_servers', rr), 2, 'round-robin answers weight 0 too');
  // The answering server goes down: the weighted domain has nothing it may answer, and says so.
  await overwatch.setOverride({ scope: 'server', address: '198.51.100.1' }, { healthy: false, reason: 'test', source: 'test' });
  assert.equal((await ask(dnsPort, 'w.example.test', 'A')).rcode, 'SERVFAIL');
  assert.equal((await ask(dnsPort, 'rr.example.test', 'A')).rcode, 'NOERROR');
  m = await scrape(metricsPort);
  assert.equal(m.value('opengslb_domain_healthy_servers', w), 0);
  assert.equal(m.value('opengslb_domain_healthy_servers', rr), 1);
});
test('counts a CNAME pool\'s targets under family cname', async (t) => {
  const { dnsPort, metricsPort } = await start(t, `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - { name: cdn, servers: [{ cname: eu.cdn.example.net }], health_check: { type: none } }
domains:
  - { name: pool.example.test, regions: [cdn] }
logging: { level: error }
`);
  const m = await scrape(metricsPort);
  assert.equal(m.value('opengslb_domain_healthy_servers', { domain: 'pool.example.test', family: 'cname', when_all_down: 'servfail' }), 1);
  for (const family of ['ipv4', 'ipv6']) assert.equal(m.value('opengslb_domain_healthy_servers', { domain: 'pool.example.test', family, when_all_down: 'servfail' }), undefined);
  assert.equal((await ask(dnsPort, 'pool.example.test', 'A')).rcode, 'NOERROR');
});

test('answers GET /health with OK, other paths with 404 and other methods with 405', async (t) => {
  const { metricsPort } = await start(t);
  const health = await fetch(`http://127.0.0.1:${metricsPort}/health`);
  assert.equal(health.status, 200);
  assert.equal(await health.text(), 'OK');
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/nope`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404);
  const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  // HEAD is answered as GET without the body (docs/metrics.md), on both paths.
  for (const path of ['/metrics', '/health']) {
    const head = await fetch(`http://127.0.0.1:${metricsPort}${path}`, { method: 'HEAD' });
    assert.equal(head.status, 200, path);
    assert.equal(await head.text(), '', path);
  }
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'HEAD' })).headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
});

/** Sends one raw HTTP/1.1 request on a new connection and returns the status line and the body. */
async function rawRequest(port: number, head: string): Promise<{ status: string; body: string }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.end(`${head}\r\nHost: scraper\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const chunk of socket) text += String(chunk);
  const [headers, ...body] = text.split('\r\n\r\n');
  return { status: headers.split('\r\n')[0], body: body.join('\r\n\r\n') };
}

test('answers a request line in absolute form (through a forward proxy) as the same path', async (t) => {
  const { metricsPort } = await start(t);
  // RFC 9112 §3.2.2: a server must accept the absolute form of the request target.
  const metrics = await rawRequest(metricsPort, `GET http://127.0.0.1:${metricsPort}/metrics HTTP/1.1`);
  assert.equal(metrics.status, 'HTTP/1.1 200 OK');
  assert.match(metrics.body, /opengslb_app_info/);
  assert.equal((await rawRequest(metricsPort, `GET http://127.0.0.1:${metricsPort}/health?probe=1 HTTP/1.1`)).status, 'HTTP/1.1 200 OK');
  assert.equal((await rawRequest(metricsPort, `GET http://127.0.0.1:${metricsPort}/other HTTP/1.1`)).status, 'HTTP/1.1 404 Not Found');
  assert.equal((await rawRequest(metricsPort, 'GET * HTTP/1.1')).status, 'HTTP/1.1 404 Not Found');
});

test('keeps every count across a worker restart: the new worker carries on in the same counters', async (t) => {
  const { overwatch, dnsPort, metricsPort } = await start(t);
  for (let i = 0; i < 20; i++) await ask(dnsPort, 'app.example.test', 'A');
  const before = await scrape(metricsPort);
  assert.equal(before.value('opengslb_dns_queries_total', { type: 'A', rcode: 'NOERROR' }), 20);
  const restarted = once(overwatch.pool, 'worker-restarted');
  await overwatch.pool.workers[0]!.terminate();
  await restarted;
  for (let i = 0; i < 20; i++) await ask(dnsPort, 'app.example.test', 'A');
  const after = await scrape(metricsPort);
  assert.equal(after.value('opengslb_dns_queries_total', { type: 'A', rcode: 'NOERROR' }), 40);
  assert.equal(after.value('opengslb_routing_decisions_total', { domain: 'app.example.test', algorithm: 'round-robin' }), 40);
  assert.equal(after.value('opengslb_dns_query_duration_seconds_count', { transport: 'udp' }), 40);
  assert.equal(after.value('opengslb_dns_worker_restarts_total'), 1);
});

test('a dead DNS worker has no snapshot-generation series until its replacement runs', async (t) => {
  const { overwatch, metrics } = await start(t);
  const generation = (text: string, worker: string): number | undefined => parseExposition(text).value('opengslb_dns_worker_snapshot_generation', { worker });
  const before = await metrics.registry.metrics();
  assert.equal(generation(before, '0'), 1);
  assert.equal(generation(before, '1'), 1);
  // Read when the exit is seen, before the restart (100 ms later at the least): the dead worker serves nothing.
  let whileDead: Promise<string> | null = null;
  overwatch.pool.once('worker-exit', () => {
    whileDead = metrics.registry.metrics();
  });
  const restarted = once(overwatch.pool, 'worker-restarted');
  await overwatch.pool.workers[0]!.terminate();
  await restarted;
  assert.ok(whileDead !== null, 'the exit was seen');
  const dead = await (whileDead as Promise<string>);
  assert.equal(generation(dead, '0'), undefined, 'no generation for a worker that is not running');
  assert.equal(generation(dead, '1'), 1);
  assert.equal(parseExposition(dead).value('opengslb_dns_workers_running'), 1);
  const after = await metrics.registry.metrics();
  assert.equal(generation(after, '0'), 1);
});

test('keeps routing-decision totals when a reload adds more domains than the workers\' buffers hold, and drops removed domains', async (t) => {
  const { overwatch, dnsPort, metricsPort } = await start(t);
  for (let i = 0; i < 6; i++) await ask(dnsPort, 'app.example.test', 'A');
  const grown: Int32Array[] = [];
  overwatch.pool.on('decisions', (_i: number, buffer: Int32Array) => grown.push(buffer));
  const many = Array.from({ length: 150 }, (_, i) => `  - { name: d${i}.example.test, regions: [r1] }`).join('\n');
  const result = await overwatch.reload(parseConfigText(yaml(many), 'grown.yaml'));
  assert.ok(result.ok, result.message);
  assert.equal(grown.length, 2, 'both workers switched to a larger buffer');
  assert.ok(grown.every((b) => b.length >= 152));
  for (let i = 0; i < 4; i++) await ask(dnsPort, 'app.example.test', 'A');
  for (let i = 0; i < 3; i++) await ask(dnsPort, 'd149.example.test', 'A');
  const m = await scrape(metricsPort);
  assert.equal(m.value('opengslb_routing_decisions_total', { domain: 'app.example.test', algorithm: 'round-robin' }), 10);
  assert.equal(m.value('opengslb_routing_decisions_total', { domain: 'd149.example.test', algorithm: 'round-robin' }), 3);
  assert.equal(m.value('opengslb_routing_decisions_total', { domain: 'd0.example.test', algorithm: 'round-robin' }), 0);
  assert.equal(m.value('opengslb_configured_domains'), 152);
  assert.equal(m.value('opengslb_snapshot_generation'), 2);

  const back = await overwatch.reload(parseConfigText(yaml(), 'back.yaml'));
  assert.ok(back.ok, back.message);
  const after = await scrape(metricsPort);
  assert.equal(after.value('opengslb_routing_decisions_total', { domain: 'd149.example.test', algorithm: 'round-robin' }), undefined, 'a removed domain has no series');
  assert.equal(after.value('opengslb_routing_decisions_total', { domain: 'app.example.test', algorithm: 'round-robin' }), 10);
});

test('rejects with the bind error, its code kept, when the metrics address is taken', async (t) => {
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, processMetrics: false });
  const first = await startMetricsServer(metrics.registry, '127.0.0.1', 0, quiet);
  t.after(async () => {
    await first.close();
    metrics.close();
  });
  await assert.rejects(startMetricsServer(metrics.registry, '127.0.0.1', first.port, quiet), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'EADDRINUSE');
    assert.match(err.message, new RegExp(`^cannot listen for metrics on 127\\.0\\.0\\.1:${first.port}: EADDRINUSE`));
    return true;
  });
});
