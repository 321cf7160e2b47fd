// Sticky routing and IPv4-mapped ECS addresses, through the real server: a
// resolver may send the client as ::ffff:a.b.c.d (ECS family 2). That client
// is the IPv4 one it maps, as a dual-stack socket's source is and as
// geolocation places it, so it must get the server (and the scope, in IPv6
// terms) of the same address sent as IPv4.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { buildQuery, udpExchangeMany, type Decoded } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const YAML = `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - name: pool
    servers: [${Array.from({ length: 8 }, (_, i) => `{ address: 192.0.2.${i + 1} }`).join(', ')}]
domains:
  - { name: st.example.test, routing_algorithm: sticky, regions: [pool] }
logging: { level: error }
`;

const NETWORKS = 64;

function scopeOf(reply: Decoded): number | null {
  for (const rr of (reply.additionals ?? []) as { type: string; options?: { code: number; scopePrefixLength: number }[] }[]) {
    if (rr.type !== 'OPT') continue;
    for (const o of rr.options ?? []) if (o.code === 8) return o.scopePrefixLength;
  }
  return null;
}

/** Asks once per network 10.i.7.0 with the given ECS form; returns [answer, scope] per network. */
async function ask(port: number, form: (i: number) => { family: 1 | 2; sourcePrefix: number; address: string }): Promise<[string, number | null][]> {
  const packets = Array.from({ length: NETWORKS }, (_, i) => buildQuery('st.example.test', 'A', { id: i, edns: { ecs: form(i) } }));
  const raw = await udpExchangeMany(port, packets, { window: 32 });
  return raw.map((r) => {
    const reply = dnsPacket.decode(r) as Decoded;
    assert.equal(reply.rcode, 'NOERROR');
    return [(reply.answers?.[0] as { data: string }).data, scopeOf(reply)];
  });
}

test('an IPv4-mapped ECS address is hashed as the IPv4 client it maps, cut to ipv4_prefix, not as one IPv6 /56 for every such client', async (t) => {
  const { port } = await startServer(t, YAML);
  const v4 = await ask(port, (i) => ({ family: 1, sourcePrefix: 32, address: `10.${i}.7.9` }));
  const mapped = await ask(port, (i) => ({ family: 2, sourcePrefix: 128, address: `::ffff:10.${i}.7.9` }));
  assert.ok(new Set(v4.map((a) => a[0])).size > 1, 'IPv4 networks spread over the servers');
  for (let i = 0; i < NETWORKS; i++) {
    assert.equal(mapped[i][0], v4[i][0], `::ffff:10.${i}.7.9 gets the server of 10.${i}.7.9`);
    assert.equal(v4[i][1], 24);
    assert.equal(mapped[i][1], 96 + 24, 'the scope is the IPv4 /24 in IPv6 terms');
  }
});
