// The ECS scope of an answer that holds two client-dependent decisions: a
// CNAME pool routed by sticky or geolocation whose chosen target is a
// geolocation or sticky domain of ours, answered in one reply (RFC 1034
// §4.3.2). Each decision holds for its own network around the client; the
// reply holds for both only inside the smaller one (the longer prefix), so
// that is the scope a resolver must be told (RFC 7871 §7.2.1). Real server,
// real UDP queries with ECS.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask, type Decoded } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

function scopeOf(reply: Decoded): number | null {
  for (const rr of (reply.additionals ?? []) as { type: string; options?: { code: number; scopePrefixLength: number }[] }[]) {
    if (rr.type !== 'OPT') continue;
    for (const o of rr.options ?? []) if (o.code === 8) return o.scopePrefixLength;
  }
  return null;
}

function askEcs(port: number, name: string, address: string, prefix: number): Promise<Decoded> {
  return ask(port, name, 'A', { edns: { ecs: { family: address.includes(':') ? 2 : 1, sourcePrefix: prefix, address } } });
}

test('a chain through two client-dependent decisions carries the longer of their ECS scopes, whichever comes last', async (t) => {
  const s = await startServer(t, `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones: [example.test]
regions:
  - { name: us, servers: [{ address: 198.51.100.1 }] }
  - { name: eu, servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }, { address: 192.0.2.4 }] }
  - { name: cdn, health_check: { type: none }, servers: [{ cname: geo1.example.test }, { cname: geo2.example.test }, { cname: geo3.example.test }, { cname: geo4.example.test }] }
  - { name: cdn-near, health_check: { type: none }, servers: [{ cname: sticky.example.test }] }
  - { name: cdn-far, health_check: { type: none }, servers: [{ cname: geo1.example.test }] }
domains:
  - { name: geo1.example.test, routing_algorithm: geolocation, regions: [us] }
  - { name: geo2.example.test, routing_algorithm: geolocation, regions: [us] }
  - { name: geo3.example.test, routing_algorithm: geolocation, regions: [us] }
  - { name: geo4.example.test, routing_algorithm: geolocation, regions: [us] }
  - { name: spool.example.test, routing_algorithm: sticky, regions: [cdn] }
  - { name: gpool.example.test, routing_algorithm: geolocation, regions: [cdn-far, cdn-near] }
  - { name: sticky.example.test, routing_algorithm: sticky, regions: [eu] }
overwatch:
  geolocation:
    default_region: us
    custom_mappings:
      - { cidr: 10.0.0.0/8, region: us }
      - { cidr: 10.9.9.7/32, region: cdn-near }
logging: { level: error }
`, 'geo-cname-scope.yaml');

  // Sticky pool (scope /24, the client network it hashed) → geolocation target (scope /8, the mapping).
  const targets = new Set<string>();
  for (let i = 0; i < 16; i++) {
    const client = `10.${i + 1}.${i * 7}.0`;
    const pool = await askEcs(s.port, 'spool.example.test', client, 24);
    const chain = (pool.answers ?? []) as { type: string; data: string }[];
    targets.add(chain[0].data);
    assert.equal(chain.length, 2, `the pool's CNAME and the target's address: ${JSON.stringify(chain)}`);
    assert.equal(scopeOf(pool), 24, `${client}/24 via ${chain[0].data}: the CNAME the sticky pool picked differs across 10.0.0.0/8, so the reply holds for /24, not the target's /8`);
  }
  assert.ok(targets.size > 1, `the clients spread over the pool's targets (${[...targets].join(', ')})`);

  // Geolocation pool (scope /32, the mapping of one address) → sticky target (scope /24).
  const near = await askEcs(s.port, 'gpool.example.test', '10.9.9.7', 32);
  assert.equal(((near.answers ?? [])[0] as { data: string }).data, 'sticky.example.test');
  assert.equal(scopeOf(near), 32, 'only 10.9.9.7 is sent to cdn-near: the reply holds for /32, not the sticky target\'s /24');
});
