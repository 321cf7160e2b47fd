// Sticky routing through the real server: 10 000 client networks asked over
// UDP with ECS options, real HTTP backends whose health checks decide, one
// backend failing and recovering, weights, scopes, the packet source when no
// ECS is sent, explain, and a second overwatch (a child process) that must
// give every network the same server.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { httpBackend, type Backend } from '../helpers/backends.ts';
import { startOpengslb } from '../helpers/child.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ask, buildQuery, udpExchangeMany, type Decoded } from '../helpers/dns-client.ts';
import { startServer, type Started } from '../helpers/server.ts';
import { parseConfigText } from '../../src/config/load.ts';

const NETWORKS = 10_000;
const STICKY = 'sticky.example.test';
const WEIGHTED = 'sticky-w.example.test';
/** Weights of the weighted domain's servers (static addresses, never checked). */
const WEIGHTS = [100, 100, 200, 400];

/** Network i as an ECS /24: 10.x.y.0 spread over the 10/8 space. */
function network(i: number): string {
  return `10.${(i >> 8) & 0xff}.${i & 0xff}.0`;
}

function config(backends: readonly Backend[]): string {
  return `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - name: pool
    servers:
${backends.map((b) => `      - { address: ${b.address}, port: ${b.port} }`).join('\n')}
    health_check: { type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 1, success_threshold: 1 }
  - name: weighted
    servers:
${WEIGHTS.map((w, i) => `      - { address: 192.0.2.${i + 1}, weight: ${w} }`).join('\n')}
    health_check: { type: none }
domains:
  - { name: ${STICKY}, routing_algorithm: sticky, regions: [pool] }
  - { name: ${WEIGHTED}, routing_algorithm: sticky, regions: [weighted], sticky: { ipv4_prefix: 24 } }
logging: { level: error, format: json }
`;
}

/** The ECS option of a reply, or null. */
function ecsOf(reply: Decoded): { sourcePrefixLength: number; scopePrefixLength: number } | null {
  for (const rr of (reply.additionals ?? []) as { type: string; options?: { code: number; sourcePrefixLength: number; scopePrefixLength: number }[] }[]) {
    if (rr.type !== 'OPT') continue;
    for (const o of rr.options ?? []) if (o.code === 8) return o;
  }
  return null;
}

/** Asks `name` A for every network (ECS /`prefix`) and returns each one's single answer; asserts the scope of every reply. */
async function answersFor(port: number, name: string, count = NETWORKS, prefix = 24): Promise<string[]> {
  const packets = Array.from({ length: count }, (_, i) => buildQuery(name, 'A', { id: i, edns: { ecs: { family: 1, sourcePrefix: prefix, address: network(i) } } }));
  const raw = await udpExchangeMany(port, packets, { window: 128 });
  return raw.map((r, i) => {
    const reply = dnsPacket.decode(r) as Decoded;
    assert.equal(reply.rcode, 'NOERROR', `network ${network(i)}`);
    assert.equal(reply.answers?.length, 1, `network ${network(i)}: one address per answer`);
    assert.equal(ecsOf(reply)?.scopePrefixLength, Math.min(prefix, 24), `network ${network(i)}: the scope is the prefix the answer was decided on`);
    return (reply.answers?.[0] as { data: string }).data;
  });
}

function counts(answers: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const a of answers) out.set(a, (out.get(a) ?? 0) + 1);
  return out;
}

/** Waits until the overwatch's checks call `address` `status`. */
async function until(s: Started, address: string, status: 'healthy' | 'unhealthy'): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (s.overwatch.servers().find((v) => v.address === address)?.status === status) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${address} did not become ${status} within 15 s`);
}

// The two run at once: each has a server of its own, and the first spends
// much of its time waiting for check rounds.
describe('sticky routing through the real server', { concurrency: true }, () => {
  test('sticky routing', async (t) => {
    const backends: Backend[] = [];
    for (let i = 0; i < 5; i++) backends.push(await httpBackend(t));
    const dir = await tempDir(t, 'opengslb-sticky-');
    const s = await startServer(t, config(backends), 'sticky.yaml', { healthChecks: 'run' });
    // The second overwatch (last step) starts now, so its start and first check rounds overlap the steps
    // before it; it probes the same backends, and so sees the failing one of the second step fail and recover.
    const file = join(dir, 'second.yaml');
    await writeFile(file, `${config(backends).replace('level: error', 'level: info')}overwatch: { data_dir: ./state }\n`, { mode: 0o600 });
    const secondStarted = startOpengslb(t, file);
    secondStarted.catch(() => {}); // Awaited (and its failure reported) in its step.
    for (const b of backends) await until(s, b.address, 'healthy');
    const before0 = await answersFor(s.port, STICKY);

    await t.test('10 000 networks spread over 5 equal servers, one server each, the same on every ask and every worker', async () => {
      const spread = counts(before0);
      assert.equal(spread.size, 5, `every server gets networks: ${[...spread]}`);
      for (const [address, n] of spread) assert.ok(n > 1600 && n < 2400, `${address} got ${n} of 10 000 networks, expected about 2 000`);
      // Asked again (the two workers share the port, so the replies come from both): nothing moves.
      assert.deepEqual(await answersFor(s.port, STICKY), before0);
    });

    await t.test('one of 5 failing moves only its own networks (each to its next best) and they come back when it recovers', async () => {
      const failing = backends[2];
      const had = before0.filter((a) => a === failing.address).length;
      failing.status = 503;
      await until(s, failing.address, 'unhealthy');
      const during = await answersFor(s.port, STICKY);
      let moved = 0;
      for (let i = 0; i < NETWORKS; i++) {
        if (before0[i] === failing.address) {
          assert.notEqual(during[i], failing.address);
          moved++;
        } else {
          assert.equal(during[i], before0[i], `network ${network(i)} moved although its server ${before0[i]} is healthy`);
        }
      }
      assert.equal(moved, had);
      assert.ok(had > 1600 && had < 2400, `about a fifth moved: ${had}`);
      // The moved networks spread over the 4 others instead of piling onto one.
      const to = counts(during.filter((_, i) => before0[i] === failing.address));
      assert.equal(to.size, 4, `moved networks went to ${[...to]}`);
      for (const [address, n] of to) assert.ok(n > had / 8, `${address} took ${n} of the ${had} moved networks`);

      failing.status = 200;
      await until(s, failing.address, 'healthy');
      assert.deepEqual(await answersFor(s.port, STICKY), before0, 'every network is back on its server');
    });

    await t.test('networks spread in proportion to the weights', async () => {
      const answers = await answersFor(s.port, WEIGHTED);
      const spread = counts(answers);
      const total = WEIGHTS.reduce((a, b) => a + b, 0);
      WEIGHTS.forEach((w, i) => {
        const share = (spread.get(`192.0.2.${i + 1}`) ?? 0) / NETWORKS;
        assert.ok(Math.abs(share - w / total) < 0.03, `192.0.2.${i + 1} (weight ${w}) got ${(share * 100).toFixed(1)} %, expected ${((w / total) * 100).toFixed(1)} %`);
      });
    });

    await t.test('the network is the ECS address cut to ipv4_prefix (scope /24); a shorter ECS prefix is its own network (scope = that prefix)', async () => {
      for (let i = 0; i < 50; i++) {
        const host = network(i).replace(/\.0$/, `.${1 + i}`);
        const reply = await ask(s.port, STICKY, 'A', { edns: { ecs: { family: 1, sourcePrefix: 32, address: host } } });
        assert.equal((reply.answers?.[0] as { data: string }).data, before0[i], `${host}/32 is in ${network(i)}/24`);
        assert.equal(ecsOf(reply)?.scopePrefixLength, 24);
      }
      const wide = await ask(s.port, STICKY, 'A', { edns: { ecs: { family: 1, sourcePrefix: 16, address: '10.0.0.0' } } });
      assert.equal(ecsOf(wide)?.scopePrefixLength, 16);
      assert.equal(wide.answers?.length, 1);
      // IPv6: cut to ipv6_prefix (/56); two /64s of one /56 are one network.
      const v6 = async (address: string): Promise<Decoded> => ask(s.port, STICKY, 'A', { edns: { ecs: { family: 2, sourcePrefix: 64, address } } });
      for (let i = 0; i < 20; i++) {
        const a = await v6(`2001:db8:${i}:ff01::`);
        const b = await v6(`2001:db8:${i}:ff02::`);
        assert.equal(ecsOf(a)?.scopePrefixLength, 56);
        assert.deepEqual(b.answers, a.answers, `2001:db8:${i}:ff01::/64 and …:ff02::/64 are in one /56`);
      }
    });

    await t.test('without ECS the packet source decides, and explain names the server a query gets', async () => {
      const first = await ask(s.port, STICKY, 'A');
      const answer = (first.answers?.[0] as { data: string }).data;
      for (let i = 0; i < 20; i++) assert.equal((((await ask(s.port, STICKY, 'A')).answers?.[0]) as { data: string }).data, answer);
      const explained = s.overwatch.explain(STICKY, 'A', '127.0.0.1');
      assert.equal(explained.policy, 'sticky');
      assert.deepEqual(explained.answers, [answer]);
      assert.ok(explained.notes.some((n) => n.includes('127.0.0.1/24')), explained.notes.join('\n'));
      assert.ok(explained.notes.some((n) => n.startsWith('if it fails, this client')), explained.notes.join('\n'));
    });

    await t.test('a second overwatch of the same config (its own process) gives every network the same server', async () => {
      const second = await secondStarted;
      // Its checks find the backends healthy (the failed one recovered too) within a round or two.
      const deadline = Date.now() + 15_000;
      let answers: string[] = [];
      while (Date.now() < deadline) {
        answers = await answersFor(second.port, STICKY, 2000);
        if (counts(answers).size === 5) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(answers, before0.slice(0, 2000));
    });
  });

  test('a reload that adds a server moves only the networks the new one wins, and removing it brings exactly those back', async (t) => {
    const yaml = (extra: string): string => `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
regions:
  - name: weighted
    servers:
${WEIGHTS.map((w, i) => `      - { address: 192.0.2.${i + 1}, weight: ${w} }`).join('\n')}${extra}
    health_check: { type: none }
domains:
  - { name: ${WEIGHTED}, routing_algorithm: sticky, regions: [weighted] }
logging: { level: error, format: json }
`;
    const s = await startServer(t, yaml(''), 'sticky-reload.yaml');
    const before = await answersFor(s.port, WEIGHTED, 4000);
    const added = await s.overwatch.reload(parseConfigText(yaml('\n      - { address: 192.0.2.9, weight: 200 }'), 'sticky-reload.yaml'));
    assert.equal(added.ok, true, added.message);
    const during = await answersFor(s.port, WEIGHTED, 4000);
    let moved = 0;
    for (let i = 0; i < during.length; i++) {
      if (during[i] === before[i]) continue;
      moved++;
      assert.equal(during[i], '192.0.2.9', `network ${network(i)} moved from ${before[i]} to ${during[i]}, not to the new server`);
    }
    // The new server has 200 of 1 000 weight: about a fifth of the networks, and only those, move.
    assert.ok(moved > 4000 * 0.15 && moved < 4000 * 0.25, `${moved} of 4 000 networks moved, expected about 800`);
    const removed = await s.overwatch.reload(parseConfigText(yaml(''), 'sticky-reload.yaml'));
    assert.equal(removed.ok, true, removed.message);
    assert.deepEqual(await answersFor(s.port, WEIGHTED, 4000), before);
  });
});
