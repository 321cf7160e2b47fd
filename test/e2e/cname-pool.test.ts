// CNAME pools through the real server: servers named by a target
// (regions[].servers[].cname) health-checked at their check_address with the
// target as Host, answered as one CNAME chosen by every routing policy
// (failover, geolocation, round-robin, weighted, sticky, latency), the chain
// followed when the target is ours (a GSLB address pool, a static record),
// when_all_down for a pool, and the servers and explain views naming the
// targets. Every query over UDP and TCP, decoded by dns-packet.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpBackend, type Backend } from '../helpers/backends.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ask, type Decoded } from '../helpers/dns-client.ts';
import { startServer, type Started } from '../helpers/server.ts';
import { startTestApi } from '../api/helpers.ts';

type Rr = { name: string; type: string; ttl: number; data: unknown };
const rrs = (l: unknown): Rr[] => (l ?? []) as Rr[];
const AA = 1 << 10;

function config(dir: string, eu: Backend, us: Backend, dead: Backend, inzone: Backend): string {
  const check = 'health_check: { type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 1, success_threshold: 1 }';
  return `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones:
    - name: example.test
      records: ["static 300 A 192.0.2.80", "alias CNAME cdn"]
regions:
  - name: cdn-eu
    servers: [{ cname: eu.cdn.example.net, check_address: ${eu.address}, port: ${eu.port} }]
    ${check}
  - name: cdn-us
    servers: [{ cname: us.cdn.example.net., check_address: ${us.address}, port: ${us.port}, host: us.origin.example.net }]
    ${check}
  - name: dead
    servers: [{ cname: dead.cdn.example.net, check_address: ${dead.address}, port: ${dead.port} }]
    ${check}
  - name: inzone
    servers: [{ cname: app.example.test, check_address: ${inzone.address}, port: ${inzone.port} }, { cname: static.example.test, check_address: ${inzone.address}, port: ${inzone.port} }]
    ${check}
  - name: wide
    servers:
      - { cname: w1.cdn.example.net, weight: 100 }
      - { cname: w2.cdn.example.net, weight: 100 }
      - { cname: w3.cdn.example.net, weight: 200 }
    health_check: { type: none }
  - name: addr
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
    health_check: { type: none }
domains:
  - { name: cdn.example.test, routing_algorithm: failover, regions: [cdn-eu, cdn-us], ttl: 45 }
  - { name: geo.example.test, routing_algorithm: geolocation, regions: [cdn-eu, cdn-us] }
  - { name: lat.example.test, routing_algorithm: latency, regions: [cdn-eu, cdn-us] }
  - { name: rr.example.test, routing_algorithm: round-robin, regions: [inzone], ttl: 20 }
  - { name: w.example.test, routing_algorithm: weighted, regions: [wide] }
  - { name: s.example.test, routing_algorithm: sticky, regions: [wide] }
  - { name: down.example.test, regions: [dead] }
  - { name: open.example.test, regions: [dead], when_all_down: all }
  - { name: app.example.test, regions: [addr], max_answers: 2, ttl: 30 }
overwatch:
  data_dir: ${dir}/state
  dnssec: { enabled: false, security_acknowledgment: "I understand that disabling DNSSEC removes cryptographic authentication of DNS responses and allows DNS spoofing attacks against my zones" }
  geolocation:
    custom_mappings: [{ cidr: 10.0.0.0/8, region: cdn-eu }, { cidr: 10.1.0.0/16, region: cdn-us }]
logging: { level: error }
`;
}

async function until(s: Started, address: string, status: 'healthy' | 'unhealthy'): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (s.overwatch.servers().find((v) => v.address === address)?.status === status) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${address} did not become ${status} within 15 s: ${JSON.stringify(s.overwatch.servers().map((v) => [v.address, v.status]))}`);
}

/** Asks over UDP and TCP; both must agree on everything but the rotation (`same` false). */
async function both(port: number, name: string, type: string, opts: Parameters<typeof ask>[3] = {}): Promise<Decoded[]> {
  return [await ask(port, name, type, opts, 'udp'), await ask(port, name, type, opts, 'tcp')];
}

const cnameOf = (r: Decoded): string => {
  const c = rrs(r.answers).filter((a) => a.type === 'CNAME');
  assert.equal(c.length, 1, JSON.stringify(r.answers));
  return String(c[0].data);
};

test('CNAME pools', async (t) => {
  const eu = await httpBackend(t);
  const us = await httpBackend(t);
  const dead = await httpBackend(t, 500);
  const inzone = await httpBackend(t);
  const dir = await tempDir(t, 'opengslb-cname-');
  const s = await startServer(t, config(dir, eu, us, dead, inzone), 'cname.yaml', { healthChecks: 'run' });
  await until(s, 'eu.cdn.example.net', 'healthy');
  await until(s, 'us.cdn.example.net', 'healthy');
  await until(s, 'dead.cdn.example.net', 'unhealthy');
  await until(s, 'app.example.test', 'healthy');

  await t.test('every query type at a failover pool gets the one CNAME, authoritative, with the domain TTL', async () => {
    for (const type of ['A', 'AAAA', 'TXT', 'MX', 'CNAME', 'ANY']) {
      for (const r of await both(s.port, 'cdn.example.test', type)) {
        assert.equal(r.rcode, 'NOERROR', type);
        assert.notEqual((r.flags ?? 0) & AA, 0);
        assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.type, a.ttl, a.data]), [['cdn.example.test', 'CNAME', 45, 'eu.cdn.example.net']], type);
        assert.equal(rrs(r.authorities).length, 0, 'a target outside our zones ends the answer');
      }
    }
  });

  await t.test('the check probes check_address with the target as Host, or the server\'s own host', async () => {
    assert.equal(eu.lastHost, `eu.cdn.example.net:${eu.port}`);
    assert.equal(us.lastHost, `us.origin.example.net:${us.port}`);
  });

  await t.test('the servers view names CNAME members by their target, with their health', () => {
    const views = s.overwatch.servers();
    const euView = views.find((v) => v.address === 'eu.cdn.example.net');
    assert.ok(euView);
    assert.equal(euView.status, 'healthy');
    assert.equal(views.find((v) => v.address === 'dead.cdn.example.net')?.status, 'unhealthy');
  });

  await t.test('explain shows the pool, its candidates by target and its answer', () => {
    const e = s.overwatch.explain('cdn.example.test', 'A', null);
    assert.equal(e.rcode, 'NOERROR');
    assert.equal(e.policy, 'failover');
    assert.deepEqual(e.answers, ['eu.cdn.example.net']);
    assert.ok(e.notes.some((n) => n.includes('CNAME pool')), e.notes.join('\n'));
  });

  await t.test('failover moves to the next region when the first target\'s check fails, and back', async () => {
    eu.status = 500;
    await until(s, 'eu.cdn.example.net', 'unhealthy');
    for (const r of await both(s.port, 'cdn.example.test', 'A')) assert.equal(cnameOf(r), 'us.cdn.example.net');
    eu.status = 200;
    await until(s, 'eu.cdn.example.net', 'healthy');
    for (const r of await both(s.port, 'cdn.example.test', 'A')) assert.equal(cnameOf(r), 'eu.cdn.example.net');
  });

  await t.test('geolocation picks the target of the client\'s region, with the ECS scope', async () => {
    for (const [client, want] of [['10.1.2.0', 'us.cdn.example.net'], ['10.9.0.0', 'eu.cdn.example.net']] as const) {
      for (const r of await both(s.port, 'geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address: client } } })) assert.equal(cnameOf(r), want, client);
    }
  });

  await t.test('latency picks one of the healthy targets', async () => {
    for (const r of await both(s.port, 'lat.example.test', 'A')) assert.ok(['eu.cdn.example.net', 'us.cdn.example.net'].includes(cnameOf(r)));
  });

  await t.test('weighted spreads the one CNAME by weight', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const r = await ask(s.port, 'w.example.test', 'A', {}, i % 2 === 0 ? 'udp' : 'tcp');
      const c = cnameOf(r);
      seen.set(c, (seen.get(c) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['w1.cdn.example.net', 'w2.cdn.example.net', 'w3.cdn.example.net']);
    const w3 = seen.get('w3.cdn.example.net') ?? 0;
    assert.ok(w3 > 140 && w3 < 260, `w3 (half the weight) got ${w3} of 400`);
  });

  await t.test('sticky keeps one network on one target, with the ECS scope of the hashing prefix', async () => {
    const first = new Map<string, string>();
    for (let i = 0; i < 50; i++) {
      const address = `10.${i}.7.0`;
      for (const r of await both(s.port, 's.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 24, address } } })) {
        const c = cnameOf(r);
        if (!first.has(address)) first.set(address, c);
        assert.equal(c, first.get(address), address);
      }
    }
    assert.ok(new Set(first.values()).size >= 2);
  });

  await t.test('a target in our zones is followed: the GSLB addresses, or the static record, behind the CNAME', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      for (const r of await both(s.port, 'rr.example.test', 'A')) {
        const a = rrs(r.answers);
        assert.equal(a[0].type, 'CNAME');
        assert.equal(a[0].ttl, 20);
        const target = String(a[0].data);
        seen.add(target);
        if (target === 'app.example.test') {
          assert.deepEqual(a.slice(1).map((x) => [x.name, x.type]), [['app.example.test', 'A'], ['app.example.test', 'A']]);
        } else {
          assert.deepEqual(a.slice(1).map((x) => [x.name, x.type, x.data]), [['static.example.test', 'A', '192.0.2.80']]);
        }
      }
    }
    assert.deepEqual([...seen].sort(), ['app.example.test', 'static.example.test'], 'round-robin rotates over both targets');
    // AAAA: the target has none: the CNAME, then NODATA for the target with the SOA.
    for (const r of await both(s.port, 'rr.example.test', 'AAAA')) {
      assert.equal(r.rcode, 'NOERROR');
      assert.equal(rrs(r.answers).length, 1);
      assert.deepEqual(rrs(r.authorities).map((a) => a.type), ['SOA']);
    }
  });

  await t.test('a static CNAME to a pool follows into the pool\'s CNAME', async () => {
    for (const r of await both(s.port, 'alias.example.test', 'A')) {
      assert.deepEqual(rrs(r.answers).map((a) => [a.name, a.type, a.data]), [['alias.example.test', 'CNAME', 'cdn.example.test'], ['cdn.example.test', 'CNAME', 'eu.cdn.example.net']]);
    }
  });

  await t.test('the API lists CNAME members by target and takes overrides by target; metrics label them by target', async (tt) => {
    const api = (await startTestApi(tt, s.overwatch)).base;
    const { servers } = (await (await fetch(`${api}/api/v1/health/servers`)).json()) as { servers: { address: string; region: string }[] };
    const euRow = servers.find((v) => v.address === 'eu.cdn.example.net');
    assert.ok(euRow, JSON.stringify(servers));
    assert.equal(euRow.region, 'cdn-eu');
    const put = await fetch(`${api}/api/v1/overrides/cdn.example.test/EU.cdn.example.net.`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ healthy: false, reason: 'cdn maintenance', source: 'test' }),
    });
    assert.equal(put.status, 200, await put.text());
    for (const r of await both(s.port, 'cdn.example.test', 'A')) assert.equal(cnameOf(r), 'us.cdn.example.net', 'the override takes the target out of this domain');
    const del = await fetch(`${api}/api/v1/overrides/cdn.example.test/eu.cdn.example.net`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    for (const r of await both(s.port, 'cdn.example.test', 'A')) assert.equal(cnameOf(r), 'eu.cdn.example.net');
    const bad = await fetch(`${api}/api/v1/overrides/cdn.example.test/not..a.name`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"healthy":false}' });
    assert.equal(bad.status, 400);
    // The metrics' server label is the record's endpoint.
    assert.equal(s.overwatch.registry.servers().find((v) => v.cname === 'eu.cdn.example.net')?.endpoint, `eu.cdn.example.net:${eu.port}`);
  });

  await t.test('when_all_down holds: servfail by default, every target with all', async () => {
    for (const r of await both(s.port, 'down.example.test', 'A')) assert.equal(r.rcode, 'SERVFAIL');
    for (const r of await both(s.port, 'open.example.test', 'A')) assert.equal(cnameOf(r), 'dead.cdn.example.net');
  });
});
