// Geolocation routing through the real server: queries over UDP and TCP with
// EDNS Client Subnet options (and without, from the packet's source), the
// bundled DB-IP database for addresses it places in known countries, a
// database of our own (built with the test mmdb writer) for exact ECS scopes
// and for a reload while queries run, custom CIDRs beating GeoIP, continent
// and default fallbacks, failover across regions, and FORMERR for bad ECS.

import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { DEFAULT_GEO_RELOAD_DEBOUNCE_MS } from '../../src/geo/database.ts';
import { HEALTH_HEALTHY, HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { ask, buildQuery, tcpConnect, udpExchange, type Decoded, type QueryOptions } from '../helpers/dns-client.ts';
import { KNOWN_LOCATIONS } from '../helpers/geo-known.ts';
import { dbipCountry, maxmindCountry, writeMmdb } from '../helpers/mmdb-writer.ts';
import { launchServer, startServer, type Started } from '../helpers/server.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { parseExposition } from '../metrics/scrape.ts';

/** The ECS option of a reply, as dns-packet decodes it, or null. */
function ecsOf(reply: Decoded): { sourcePrefixLength: number; scopePrefixLength: number; ip: string } | null {
  for (const rr of (reply.additionals ?? []) as { type: string; options?: { code: number; sourcePrefixLength: number; scopePrefixLength: number; ip: string }[] }[]) {
    if (rr.type !== 'OPT') continue;
    for (const o of rr.options ?? []) if (o.code === 8) return o;
  }
  return null;
}

function addresses(reply: Decoded): string[] {
  return (reply.answers ?? []).map((a) => (a as { data: string }).data).sort();
}

/** Asks with an ECS option for `address`/`prefix`, over `transport`. */
function askEcs(port: number, name: string, address: string, prefix: number, transport: 'udp' | 'tcp' = 'udp', type = 'A'): Promise<Decoded> {
  const edns: QueryOptions['edns'] = { ecs: { family: address.includes(':') ? 2 : 1, sourcePrefix: prefix, address } };
  return ask(port, name, type, { edns }, transport);
}

const REGIONS = `
regions:
  - { name: eu, countries: [DE, NL], servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }] }
  - { name: us, countries: [US], servers: [{ address: 198.51.100.1 }] }
  - { name: asia, continents: [AS], servers: [{ address: 203.0.113.1 }] }
  - { name: sa, continents: [SA], servers: [{ address: 203.0.113.50 }] }
  - { name: dflt, servers: [{ address: 192.0.2.99 }] }
domains:
  - { name: geo.example.test, routing_algorithm: geolocation, regions: [eu, us, asia, sa, dflt] }
  - { name: geo2.example.test, routing_algorithm: geo, regions: [eu, us], max_answers: 2 }
  - { name: rr.example.test, regions: [eu] }
logging: { level: error }
`;

describe('geolocation with the bundled DB-IP database', () => {
  let s: Started;
  before(async () => {
    s = await launchServer(`
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
overwatch:
  geolocation:
    default_region: dflt
    custom_mappings:
      - { cidr: 10.0.0.0/8, region: us, comment: a private network routed to us }
      - { cidr: 10.1.0.0/16, region: eu }
      - { cidr: 8.8.8.0/24, region: asia, comment: beats the database's US }
      - { cidr: "2001:db8::/32", region: asia }
      - { cidr: "2001:db8:1::/48", region: sa }
      - { cidr: 127.0.0.0/8, region: sa, comment: the source of these tests' queries }
${REGIONS}`, 'geo-bundled.yaml');
  });
  after(() => s?.overwatch.stop(500));

  for (const transport of ['udp', 'tcp'] as const) {
    test(`answers the region of the client's country, with the ECS scope of the database's network (${transport})`, async () => {
      const de = KNOWN_LOCATIONS.find((k) => k.country === 'DE' && !k.ip.includes(':'));
      const nl6 = KNOWN_LOCATIONS.find((k) => k.country === 'NL' && k.ip.includes(':'));
      assert.ok(de && nl6);
      const reply = await askEcs(s.port, 'geo.example.test', de.ip, 24, transport);
      assert.equal(reply.rcode, 'NOERROR');
      assert.equal(addresses(reply).length, 1);
      assert.ok(['192.0.2.1', '192.0.2.2'].includes(addresses(reply)[0]), addresses(reply).join());
      const ecs = ecsOf(reply);
      assert.ok(ecs && ecs.scopePrefixLength > 0, 'a location answer tells the cache which network it holds for');
      const six = await askEcs(s.port, 'geo.example.test', nl6.ip, 48, transport, 'A');
      assert.ok(['192.0.2.1', '192.0.2.2'].includes(addresses(six)[0]));
    });
  }

  test('takes the continent when no region lists the country, and the default region when nothing matches', async () => {
    const jp = KNOWN_LOCATIONS.find((k) => k.country === 'JP' && !k.ip.includes(':'));
    const br = KNOWN_LOCATIONS.find((k) => k.country === 'BR' && !k.ip.includes(':'));
    const za = KNOWN_LOCATIONS.find((k) => k.country === 'ZA');
    assert.ok(jp && br && za);
    assert.deepEqual(addresses(await askEcs(s.port, 'geo.example.test', jp.ip, 24)), ['203.0.113.1']);
    assert.deepEqual(addresses(await askEcs(s.port, 'geo.example.test', br.ip, 24)), ['203.0.113.50']);
    // South Africa: no region lists ZA or AF, so default_region decides.
    assert.deepEqual(addresses(await askEcs(s.port, 'geo.example.test', za.ip, 24)), ['192.0.2.99']);
  });

  test('a custom CIDR beats the database, the longest prefix wins, and the scope leaves out the more specific mappings (IPv4 and IPv6)', async () => {
    let r = await askEcs(s.port, 'geo.example.test', '8.8.8.0', 24);
    assert.deepEqual(addresses(r), ['203.0.113.1'], '8.8.8.0/24 is mapped to asia though the database says US');
    assert.equal(ecsOf(r)?.scopePrefixLength, 24);
    r = await askEcs(s.port, 'geo.example.test', '10.1.2.0', 24);
    assert.ok(['192.0.2.1', '192.0.2.2'].includes(addresses(r)[0]), '10.1/16 beats 10/8');
    assert.equal(ecsOf(r)?.scopePrefixLength, 16);
    r = await askEcs(s.port, 'geo.example.test', '10.2.3.0', 24);
    assert.deepEqual(addresses(r), ['198.51.100.1']);
    assert.equal(ecsOf(r)?.scopePrefixLength, 15, '10.2.0.0/15 is the widest network around the client that 10.1/16 does not cut');
    r = await askEcs(s.port, 'geo.example.test', '2001:db8:2::', 48);
    assert.deepEqual(addresses(r), ['203.0.113.1']);
    assert.equal(ecsOf(r)?.scopePrefixLength, 47);
    r = await askEcs(s.port, 'geo.example.test', '2001:db8:1::', 48);
    assert.deepEqual(addresses(r), ['203.0.113.50']);
    assert.equal(ecsOf(r)?.scopePrefixLength, 48);
  });

  test('without ECS the packet source decides; an ECS source prefix of 0 gets the default region with scope 0', async () => {
    assert.deepEqual(addresses(await ask(s.port, 'geo.example.test', 'A')), ['203.0.113.50'], '127.0.0.1 is mapped to sa');
    const zero = await askEcs(s.port, 'geo.example.test', '0.0.0.0', 0);
    assert.deepEqual(addresses(zero), ['192.0.2.99']);
    assert.equal(ecsOf(zero)?.scopePrefixLength, 0);
  });

  test('scope 0 for every answer that does not depend on the client: other policies, NXDOMAIN, NODATA, REFUSED', async () => {
    for (const [name, type, rcode] of [
      ['rr.example.test', 'A', 'NOERROR'],
      ['nope.example.test', 'A', 'NXDOMAIN'],
      ['geo.example.test', 'MX', 'NOERROR'],
      ['example.test', 'SOA', 'NOERROR'],
      ['www.example.org', 'A', 'REFUSED'],
    ] as const) {
      const r = await askEcs(s.port, name, '8.8.8.0', 24, 'udp', type);
      assert.equal(r.rcode, rcode, `${name} ${type}`);
      if (rcode !== 'REFUSED') assert.equal(ecsOf(r)?.scopePrefixLength, 0, `${name} ${type}`);
    }
  });

  test('picks by weight within the region, honouring max_answers, never mixing regions', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await askEcs(s.port, 'geo2.example.test', '10.1.0.0', 16);
      assert.deepEqual(addresses(r), ['192.0.2.1', '192.0.2.2']);
    }
    assert.deepEqual(addresses(await askEcs(s.port, 'geo2.example.test', '10.9.0.0', 16)), ['198.51.100.1']);
  });

  test('a region with no healthy server hands its clients to the next region in the domain’s order', async () => {
    const eu = ['192.0.2.1', '192.0.2.2'].map((a) => s.overwatch.slotOf('eu', a, 80) as number);
    for (const slot of eu) s.overwatch.setHealth(slot, HEALTH_UNHEALTHY);
    try {
      assert.deepEqual(addresses(await askEcs(s.port, 'geo.example.test', '10.1.0.0', 16)), ['198.51.100.1'], 'eu is down: us is next');
      // A region at the end of the list wraps round to the first that answers.
      const dflt = s.overwatch.slotOf('dflt', '192.0.2.99', 80) as number;
      s.overwatch.setHealth(dflt, HEALTH_UNHEALTHY);
      const za = KNOWN_LOCATIONS.find((k) => k.country === 'ZA') as { ip: string };
      assert.deepEqual(addresses(await askEcs(s.port, 'geo.example.test', za.ip, 24)), ['198.51.100.1']);
      s.overwatch.setHealth(dflt, HEALTH_HEALTHY);
    } finally {
      for (const slot of eu) s.overwatch.setHealth(slot, HEALTH_HEALTHY);
    }
    assert.ok(['192.0.2.1', '192.0.2.2'].includes(addresses(await askEcs(s.port, 'geo.example.test', '10.1.0.0', 16))[0]));
  });

  test('explain shows the geo step for a client, agrees with DNS, and names the fallback when the region is down', async () => {
    let e = s.overwatch.explain('geo.example.test', 'A', '10.1.2.3');
    assert.equal(e.policy, 'geolocation');
    assert.deepEqual(
      [e.geo?.region, e.geo?.match_type, e.geo?.matched_cidr, e.geo?.scope_prefix_length, e.geo?.answered_region, e.geo?.fallback],
      ['eu', 'custom_mapping', '10.1.0.0/16', 16, 'eu', null],
    );
    assert.deepEqual([...e.answers].sort(), ['192.0.2.1', '192.0.2.2']);
    assert.equal(e.candidates.find((c) => c.address === '198.51.100.1')?.reason, "in region us; this client's answers come from region eu");
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) for (const a of addresses(await askEcs(s.port, 'geo.example.test', '10.1.2.3', 32))) seen.add(a);
    assert.deepEqual([...seen].sort(), e.answers.slice().sort());
    const eu = ['192.0.2.1', '192.0.2.2'].map((a) => s.overwatch.slotOf('eu', a, 80) as number);
    for (const slot of eu) s.overwatch.setHealth(slot, HEALTH_UNHEALTHY);
    try {
      e = s.overwatch.explain('geo.example.test', 'A', '10.1.2.3');
      assert.deepEqual([e.geo?.region, e.geo?.answered_region, e.geo?.fallback], ['eu', 'us', 'region_down']);
      assert.deepEqual(e.answers, ['198.51.100.1']);
      assert.ok(e.notes.some((n) => n.includes('the next region of the domain in order that has one answers (us)')));
    } finally {
      for (const slot of eu) s.overwatch.setHealth(slot, HEALTH_HEALTHY);
    }
    e = s.overwatch.explain('geo.example.test', 'A', null);
    assert.deepEqual([e.geo?.region, e.geo?.match_type, e.geo?.answered_region], ['dflt', 'default', 'dflt']);
  });

  test('counts decisions by domain, region and match, and fallbacks by reason, with one series per configured domain × region', async () => {
    const metrics = createMetrics({ version: 't', loadedAtMs: 0, overwatch: s.overwatch, processMetrics: false });
    try {
      const value = async (name: string, labels: Record<string, string>): Promise<number> => parseExposition(await metrics.registry.metrics()).value(name, labels) ?? 0;
      const custom = await value('opengslb_geo_decisions_total', { domain: 'geo.example.test', region: 'eu', match: 'custom_mapping' });
      const geoip = await value('opengslb_geo_decisions_total', { domain: 'geo.example.test', region: 'asia', match: 'geoip' });
      const dflt = await value('opengslb_geo_decisions_total', { domain: 'geo.example.test', region: 'dflt', match: 'default' });
      const down = await value('opengslb_geo_fallbacks_total', { domain: 'geo.example.test', reason: 'region_down' });
      const jp = KNOWN_LOCATIONS.find((k) => k.country === 'JP' && !k.ip.includes(':')) as { ip: string };
      for (let i = 0; i < 3; i++) await askEcs(s.port, 'geo.example.test', '10.1.0.0', 16);
      for (let i = 0; i < 2; i++) await askEcs(s.port, 'geo.example.test', jp.ip, 24);
      await askEcs(s.port, 'geo.example.test', '0.0.0.0', 0);
      const slot = s.overwatch.slotOf('sa', '203.0.113.50', 80) as number;
      s.overwatch.setHealth(slot, HEALTH_UNHEALTHY);
      try {
        await askEcs(s.port, 'geo.example.test', '2001:db8:1::', 48);
      } finally {
        s.overwatch.setHealth(slot, HEALTH_HEALTHY);
      }
      assert.equal(await value('opengslb_geo_decisions_total', { domain: 'geo.example.test', region: 'eu', match: 'custom_mapping' }), custom + 3);
      assert.equal(await value('opengslb_geo_decisions_total', { domain: 'geo.example.test', region: 'asia', match: 'geoip' }), geoip + 2);
      assert.equal(await value('opengslb_geo_decisions_total', { domain: 'geo.example.test', region: 'dflt', match: 'default' }), dflt + 1);
      assert.equal(await value('opengslb_geo_fallbacks_total', { domain: 'geo.example.test', reason: 'region_down' }), down + 1);
      const series = parseExposition(await metrics.registry.metrics()).samples.filter((x) => x.name === 'opengslb_geo_decisions_total');
      // Two geolocation domains: 5 regions × 3 matches + 2 regions × 3 matches, whatever the clients were.
      assert.equal(series.length, 21);
    } finally {
      metrics.close();
    }
  });

  test('answers FORMERR to a malformed ECS option (RFC 7871 §7.1.2)', async () => {
    const bad = [
      { why: 'family 3', data: [0, 3, 24, 0, 10, 0, 0] },
      { why: 'source prefix longer than the address', data: [0, 1, 33, 0, 10, 0, 0, 0, 0] },
      { why: 'bits set beyond the source prefix', data: [0, 1, 20, 0, 10, 1, 0xff] },
      { why: 'too many address bytes', data: [0, 1, 8, 0, 10, 0] },
      { why: 'a scope in a query', data: [0, 1, 24, 8, 10, 0, 0] },
    ];
    for (const b of bad) {
      const query = dnsPacket.encode({
        type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: 'A', name: 'geo.example.test' }],
        additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [{ code: 8, data: Buffer.from(b.data) }] } as unknown as dnsPacket.Answer],
      });
      const raw = await udpExchange(s.port, query);
      assert.ok(raw, b.why);
      assert.equal((dnsPacket.decode(raw) as Decoded).rcode, 'FORMERR', b.why);
    }
  });
});

// The two tests run at once: each has its server and a folder of its own, and most of their time is the watcher's debounce.
describe('geolocation with a database of our own (database_path)', { concurrency: true }, () => {
  test('gives the exact scope of the database network, takes MaxMind and DB-IP shaped records, and reloads a changed file with no query lost', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'geo.mmdb');
    await writeFile(path, writeMmdb({
      networks: [
        { cidr: '198.18.0.0/15', data: maxmindCountry('DE', 'EU') },
        { cidr: '198.18.128.0/17', data: maxmindCountry('US', 'NA') },
        { cidr: '100.64.0.0/10', data: dbipCountry('JP') },
      ],
    }));
    const s = await startServer(t, `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
overwatch:
  geolocation: { database_path: ${JSON.stringify(path)}, default_region: dflt }
${REGIONS}`, 'geo-own.yaml');
    let r = await askEcs(s.port, 'geo.example.test', '198.18.1.0', 24);
    assert.ok(['192.0.2.1', '192.0.2.2'].includes(addresses(r)[0]));
    assert.equal(ecsOf(r)?.scopePrefixLength, 17, '198.18.0.0/17 holds the client: the /15 is cut by the /17');
    r = await askEcs(s.port, 'geo.example.test', '198.18.200.0', 24, 'tcp');
    assert.deepEqual(addresses(r), ['198.51.100.1']);
    assert.equal(ecsOf(r)?.scopePrefixLength, 17);
    r = await askEcs(s.port, 'geo.example.test', '100.70.0.0', 16);
    assert.deepEqual(addresses(r), ['203.0.113.1'], 'JP (a DB-IP shaped record) is in Asia');
    assert.equal(ecsOf(r)?.scopePrefixLength, 10);

    // Replace the file (as geoipupdate does: write aside, rename over) while queries run.
    let lost = 0;
    let answered = 0;
    let stop = false;
    const seen = new Set<string>();
    const load = (async () => {
      while (!stop) {
        const reply = await askEcs(s.port, 'geo.example.test', '100.70.0.0', 16).catch(() => null);
        if (reply === null || reply.rcode !== 'NOERROR' || addresses(reply).length !== 1) lost++;
        else {
          answered++;
          seen.add(addresses(reply)[0]);
        }
      }
    })();
    await writeFile(join(dir, 'next.mmdb'), writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('BR', 'SA') }] }));
    await rename(join(dir, 'next.mmdb'), path);
    const deadline = Date.now() + 10_000;
    while (!seen.has('203.0.113.50') && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    stop = true;
    await load;
    assert.ok(seen.has('203.0.113.50'), `the new database decides: seen ${[...seen].join(', ')}`);
    assert.equal(lost, 0, `${answered} answered, ${lost} lost`);

    // A file that is not a database is refused, and the one in use keeps serving.
    await writeFile(join(dir, 'broken.mmdb'), 'not a database');
    await rename(join(dir, 'broken.mmdb'), path);
    const reloaded = await s.overwatch.reload(s.overwatch.config);
    assert.equal(reloaded.ok, true);
    assert.match(reloaded.message, /geo\.mmdb/);
    assert.deepEqual(addresses(await askEcs(s.port, 'geo.example.test', '100.70.0.0', 16)), ['203.0.113.50']);
  });

  test('a reload naming a database_path that is refused keeps the database in use, stops following its old file and loads the new one once it is valid', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'opengslb-geo-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const oldPath = join(dir, 'old.mmdb');
    const newPath = join(dir, 'new.mmdb');
    await writeFile(oldPath, writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('JP', 'AS') }] }));
    const yaml = (path: string): string => `
dns: { listen_address: "127.0.0.1:0", workers: 2, zones: [example.test] }
overwatch:
  geolocation: { database_path: ${JSON.stringify(path)}, default_region: dflt }
${REGIONS}`;
    const s = await startServer(t, yaml(oldPath), 'geo-move.yaml');
    const region = async (): Promise<string[]> => addresses(await askEcs(s.port, 'geo.example.test', '100.70.0.0', 16));
    assert.deepEqual(await region(), ['203.0.113.1'], 'JP: asia');

    // The config now names a file that does not exist yet: the reload goes through, the database in use keeps serving.
    const moved = parseConfigText(yaml(newPath), 'geo-move.yaml');
    const reloaded = await s.overwatch.reload(moved);
    assert.equal(reloaded.ok, true, reloaded.message);
    assert.match(reloaded.message, /new\.mmdb: does not exist/);
    assert.match(reloaded.message, /old\.mmdb keeps serving/);
    assert.match(reloaded.message, /new\.mmdb is watched/);
    assert.deepEqual(await region(), ['203.0.113.1']);

    // The old file changes on disk: the config no longer names it, so it is not published (checked below, once
    // the watcher of the configured file has reacted to a change made after this one, and well past the debounce).
    await writeFile(join(dir, 'old.next'), writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('BR', 'SA') }] }));
    await rename(join(dir, 'old.next'), oldPath);
    const oldChangedAt = Date.now();

    // A SIGHUP-style reload of the same config tries the configured file again (still missing): still the old database.
    const again = await s.overwatch.reload(moved);
    assert.equal(again.ok, true, again.message);
    assert.match(again.message, /new\.mmdb: does not exist/);
    assert.deepEqual(await region(), ['203.0.113.1']);

    // A broken file appears at the configured path: refused (logged), the old database keeps serving.
    const refusals = (): number => s.logs.filter((l) => l.includes('GeoIP database change refused') && l.includes('new.mmdb')).length;
    const refusedBefore = refusals();
    await writeFile(join(dir, 'new.tmp'), 'not a database');
    await rename(join(dir, 'new.tmp'), newPath);
    // The refusal comes a debounce after the rename; the old file's change, made before it, would have been
    // published by then had its watch been kept. A second more of margin for a loaded machine.
    const waitUntil = oldChangedAt + DEFAULT_GEO_RELOAD_DEBOUNCE_MS + 1000;
    const refusedBy = Date.now() + 10_000;
    while ((refusals() === refusedBefore || Date.now() < waitUntil) && Date.now() < refusedBy) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(refusals() > refusedBefore, 'the broken file at the configured path is refused, and logged');
    assert.deepEqual(await region(), ['203.0.113.1'], 'neither the change of the file the config no longer names nor the broken configured file is published');

    // The configured file becomes valid (as geoipupdate writes it: aside, then renamed over): it is loaded and published.
    await writeFile(join(dir, 'new.tmp'), writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('US', 'NA') }] }));
    await rename(join(dir, 'new.tmp'), newPath);
    const deadline = Date.now() + 10_000;
    let seen = await region();
    while (seen[0] !== '198.51.100.1' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      seen = await region();
    }
    assert.deepEqual(seen, ['198.51.100.1'], 'the database the config names decides once it is valid');
    assert.ok(s.logs.some((l) => l.includes('new.mmdb') && l.includes('refused')), 'the refused file at the configured path is logged');

    // From now on the new file is followed like any database in use.
    await writeFile(join(dir, 'new.tmp'), writeMmdb({ networks: [{ cidr: '100.64.0.0/10', data: maxmindCountry('DE', 'EU') }] }));
    await rename(join(dir, 'new.tmp'), newPath);
    const until = Date.now() + 10_000;
    seen = await region();
    while (!seen.includes('192.0.2.1') && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      seen = await region();
    }
    assert.ok(seen.includes('192.0.2.1') || seen.includes('192.0.2.2'), `DE: eu, seen ${seen.join(', ')}`);
  });
});

test('a domain routed by geolocation over TCP pipelines answers each query with its own client’s region', async (t) => {
  const s = await startServer(t, `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
overwatch:
  geolocation:
    custom_mappings: [{ cidr: 10.0.0.0/8, region: us }, { cidr: 10.1.0.0/16, region: eu }]
${REGIONS}`, 'geo-tcp.yaml');
  const c = await tcpConnect(s.port);
  t.after(() => c.socket.destroy());
  c.send(buildQuery('geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 16, address: '10.1.0.0' } } }));
  c.send(buildQuery('geo.example.test', 'A', { edns: { ecs: { family: 1, sourcePrefix: 16, address: '10.2.0.0' } } }));
  const one = dnsPacket.decode((await c.next()) as Buffer);
  const two = dnsPacket.decode((await c.next()) as Buffer);
  assert.ok(['192.0.2.1', '192.0.2.2'].includes(addresses(one)[0]));
  assert.deepEqual(addresses(two), ['198.51.100.1']);
});

test('with ecs_enabled: false the packet source decides and an ECS option is echoed with scope 0, not the scope of the source’s network', async (t) => {
  // The scope tells the resolver's cache which client networks (of the ECS
  // address) the answer holds for. Here the answer depends on the resolver's
  // own address only, so it holds for every client: scope 0, as sticky does.
  // The source's /32 was echoed instead, in the ECS family's terms (so also
  // 32 for an IPv6 ECS /48, and a /128 source would give an IPv4 option
  // scope 128, which no resolver accepts).
  const s = await startServer(t, `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
overwatch:
  geolocation:
    ecs_enabled: false
    default_region: dflt
    custom_mappings: [{ cidr: 127.0.0.1/32, region: us }, { cidr: 10.0.0.0/8, region: eu }]
${REGIONS}`, 'geo-no-ecs.yaml');
  for (const [address, prefix] of [['10.0.0.0', 8], ['2001:db8::', 48]] as const) {
    const r = await askEcs(s.port, 'geo.example.test', address, prefix);
    assert.deepEqual(addresses(r), ['198.51.100.1'], `${address}/${prefix}: the source 127.0.0.1 decides (us), not the ECS address`);
    assert.equal(ecsOf(r)?.scopePrefixLength, 0, `${address}/${prefix}`);
  }
  const e = s.overwatch.explain('geo.example.test', 'A', '10.1.2.3');
  assert.ok(e.notes.some((n) => n.includes('ecs_enabled is off')), e.notes.join(' | '));
  assert.ok(!e.notes.some((n) => n.includes('carries scope /')), e.notes.join(' | '));
});

test('a geolocation answer from when_all_down fallback addresses counts no region decision (not the last query\'s, of another domain)', async (t) => {
  const s = await startServer(t, `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
overwatch:
  geolocation:
    custom_mappings: [{ cidr: 127.0.0.0/8, region: eu, comment: the source of these queries }]
regions:
  - { name: eu, servers: [{ address: 192.0.2.1 }] }
  - { name: us, servers: [{ address: 198.51.100.1 }] }
domains:
  - { name: geo.example.test, routing_algorithm: geolocation, regions: [eu] }
  - { name: down.example.test, routing_algorithm: geolocation, regions: [us], when_all_down: fallback, fallback: [192.0.2.200] }
logging: { level: error }
`, 'geo-fallback.yaml');
  s.overwatch.setHealth(s.overwatch.slotOf('us', '198.51.100.1', 80) as number, HEALTH_UNHEALTHY);
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, overwatch: s.overwatch, processMetrics: false });
  t.after(() => metrics.close());
  const value = async (labels: Record<string, string>): Promise<number> => parseExposition(await metrics.registry.metrics()).value('opengslb_geo_decisions_total', labels) ?? 0;
  assert.deepEqual(addresses(await ask(s.port, 'geo.example.test', 'A')), ['192.0.2.1']);
  const eu = await value({ domain: 'geo.example.test', region: 'eu', match: 'custom_mapping' });
  assert.equal(eu, 1);
  for (let i = 0; i < 4; i++) assert.deepEqual(addresses(await ask(s.port, 'down.example.test', 'A')), ['192.0.2.200']);
  assert.equal(await value({ domain: 'geo.example.test', region: 'eu', match: 'custom_mapping' }), eu, 'the other domain\'s answers leave this series alone');
  const down = parseExposition(await metrics.registry.metrics()).samples.filter((x) => x.name === 'opengslb_geo_decisions_total' && x.labels.domain === 'down.example.test');
  assert.equal(down.reduce((sum, x) => sum + x.value, 0), 0, 'a fallback answer decided no region');
});
