// The registry of servers: identity, slots, the views snapshots are compiled
// from, overrides and the one authority rule; then, through a running
// overwatch, servers registered at run time reaching DNS, and a burst of them
// making one snapshot.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import type { CheckSpec } from '../../src/health/types.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { Registry, type ServerSpec } from '../../src/registry/registry.ts';
import type { Override } from '../../src/registry/overrides.ts';
import { ask } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2, weight: 50 }]
  - name: us
    servers: [{ address: 198.51.100.1 }, { address: 192.0.2.1 }]
    health_check: { type: none }
  - name: idle
    servers: [{ address: 203.0.113.9 }]
domains:
  - { name: app.example.test, regions: [eu, us], routing_algorithm: failover, max_answers: 4 }
  - { name: us.example.test, regions: [us] }
logging: { level: error }
`;

const config = parseConfigText(YAML, 'registry.yaml');

/** A check that never probes: what a server registered in these tests needs. */
const NONE: CheckSpec = {
  type: 'none', address: '0.0.0.0', port: 80, host: null, path: '/health', expectedStatus: [[200, 399]], headers: {}, bodyMatch: null,
  tlsVerify: true, keepAlive: false, intervalMs: 30_000, timeoutMs: 5000, failureThreshold: 3, successThreshold: 2, emaAlpha: 0.3,
};

function spec(address: string, over: Partial<ServerSpec> = {}): ServerSpec {
  return { region: 'eu', address, port: 80, weight: 100, check: { ...NONE, address }, source: 'api', ...over };
}

function override(service: string, address: string, healthy = false): Override {
  return { target: { scope: 'domain', service, address }, healthy, reason: 'test', source: 'tester', createdAtMs: 1, expiresAtMs: null };
}

describe('the registry', () => {
  test('holds every config server once, with one key, its labels and a slot of its own', () => {
    const r = new Registry();
    r.applyConfig(config);
    const servers = r.servers();
    assert.deepEqual(servers.map((s) => s.label), ['eu/192.0.2.1:80', 'eu/192.0.2.2:80', 'us/198.51.100.1:80', 'us/192.0.2.1:80', 'idle/203.0.113.9:80']);
    assert.equal(new Set(servers.map((s) => s.key)).size, 5);
    assert.equal(new Set(servers.map((s) => s.slot)).size, 5);
    const eu = r.serverAt('eu', '192.0.2.2', 80);
    assert.ok(eu);
    assert.equal(eu.endpoint, '192.0.2.2:80');
    assert.equal(eu.weight, 50);
    assert.equal(eu.source, 'config');
    assert.equal(r.server(eu.key), eu);
  });

  test('a view lists each domain’s members in priority order, one per address, and only servers some domain uses are checked', () => {
    const r = new Registry();
    r.applyConfig(config);
    const view = r.view();
    const app = view.domains.find((d) => d.config.name === 'app.example.test');
    assert.ok(app);
    // 192.0.2.1 is in eu and us: the first (higher-priority) region keeps it.
    assert.deepEqual(app.members.map((m) => [m.server.label, m.priority]), [['eu/192.0.2.1:80', 0], ['eu/192.0.2.2:80', 0], ['us/198.51.100.1:80', 1]]);
    for (const m of app.members) assert.notEqual(m.memberSlot, m.server.slot);
    assert.deepEqual(view.served.map((s) => s.label), ['eu/192.0.2.1:80', 'eu/192.0.2.2:80', 'us/198.51.100.1:80', 'us/192.0.2.1:80']);
    // The same domain's member keeps its slot in the next view.
    assert.deepEqual(r.view().domains[0].members.map((m) => m.memberSlot), app.members.map((m) => m.memberSlot));
  });

  test('a server registered at run time joins its region in every domain that lists it, after the config servers', () => {
    const r = new Registry();
    r.applyConfig(config);
    const before = r.version;
    let changes = 0;
    r.on('changed', () => changes++);
    const added = r.addServer(spec('192.0.2.77'));
    assert.equal(r.version, before + 1);
    assert.equal(changes, 1);
    assert.equal(added.source, 'api');
    const app = r.view().domains.find((d) => d.config.name === 'app.example.test');
    assert.deepEqual(app?.members.map((m) => m.server.address), ['192.0.2.1', '192.0.2.2', '192.0.2.77', '198.51.100.1']);
    // Registering the same server again unchanged is not a change.
    r.addServer(spec('192.0.2.77'));
    assert.equal(changes, 1);
    assert.equal(r.removeServer(added.key), true);
    assert.equal(r.removeServer(added.key), false);
    assert.equal(changes, 2);
  });

  test('a server bound to a service is answered by that domain only', () => {
    const r = new Registry();
    r.applyConfig(config);
    r.addServer(spec('198.51.100.50', { region: 'us', source: 'agent', service: 'us.example.test' }));
    const view = r.view();
    const addresses = (name: string): string[] => view.domains.find((d) => d.config.name === name)?.members.map((m) => m.server.address) ?? [];
    assert.ok(addresses('us.example.test').includes('198.51.100.50'));
    assert.ok(!addresses('app.example.test').includes('198.51.100.50'));
  });

  test('refuses a server in a region it does not serve, with a bad address, or that another source owns', () => {
    const r = new Registry();
    r.applyConfig(config);
    const refused = (s: ServerSpec, pattern: RegExp): void => {
      assert.throws(() => r.addServer(s), (err: unknown) => err instanceof OpenGslbError && err.code === 'OPENGSLB_ERR_REGISTRY_REFUSED' && pattern.test(err.message));
    };
    refused(spec('192.0.2.9', { region: 'mars' }), /no region "mars" is served here; expected one of: eu, us, idle/);
    refused(spec('not-an-ip'), /"not-an-ip" is not an IP literal/);
    // An agent reports what it was configured with; the overwatch checks it as the config loader does.
    refused(spec('0.0.0.0', { source: 'agent' }), /server 0\.0\.0\.0:80 in region "eu": "0\.0\.0\.0" is the unspecified address \(it names no host\), which no client can connect to/);
    refused(spec('224.0.0.1', { source: 'agent' }), /"224\.0\.0\.1" is a multicast address \(224\.0\.0\.0\/4\)/);
    refused(spec('ff05::2', { source: 'agent' }), /"ff05::2" is a multicast address \(ff00::\/8\)/);
    refused(spec('255.255.255.255', { source: 'agent' }), /is the IPv4 broadcast address/);
    assert.equal(r.addServer(spec('127.0.0.2', { source: 'agent' })).address, '127.0.0.2');
    refused(spec('192.0.2.9', { port: 0 }), /port 0 is not 1\.\.65535/);
    refused(spec('192.0.2.1'), /server 192\.0\.2\.1:80 in region "eu": already registered by the config/);
    r.addServer(spec('192.0.2.9', { source: 'agent' }));
    refused(spec('192.0.2.9', { source: 'api' }), /already registered by the agent/);
    assert.equal(r.removeServer(r.serverAt('eu', '192.0.2.1', 80)?.key ?? ''), false, 'config servers go only with the config');
  });

  test('a config applied again keeps every staying server’s slot, reports what changed, and keeps servers from other sources', () => {
    const r = new Registry();
    r.applyConfig(config);
    const agent = r.addServer(spec('192.0.2.88', { source: 'agent' }));
    const slotOf = (label: string): number | undefined => r.servers().find((s) => s.label === label)?.slot;
    const kept = slotOf('eu/192.0.2.2:80');
    const next = parseConfigText(YAML.replace('{ address: 192.0.2.2, weight: 50 }', '{ address: 192.0.2.2, weight: 60 }').replace('servers: [{ address: 203.0.113.9 }]', 'servers: [{ address: 203.0.113.10 }]'), 'registry.yaml');
    const change = r.applyConfig(next);
    assert.deepEqual(change, { added: ['idle/203.0.113.10:80'], removed: ['idle/203.0.113.9:80'], changed: ['eu/192.0.2.2:80'] });
    assert.equal(slotOf('eu/192.0.2.2:80'), kept);
    assert.equal(r.server(agent.key), agent);
  });

  test('releases a slot only at the commit of a view that no longer holds it, so a rollback gets the same slot back', () => {
    const r = new Registry();
    r.applyConfig(config);
    r.commit(r.view());
    const idle = r.serverAt('idle', '203.0.113.9', 80);
    assert.ok(idle);
    const without = parseConfigText(YAML.replace('servers: [{ address: 203.0.113.9 }]', 'servers: [{ address: 203.0.113.10 }]'), 'registry.yaml');
    r.applyConfig(without);
    r.applyConfig(config); // a failed reload puts the old config back
    assert.equal(r.serverAt('idle', '203.0.113.9', 80)?.slot, idle.slot);
    r.applyConfig(without);
    const released = r.commit(r.view());
    assert.ok(released.includes(idle.slot), `slot ${idle.slot} released: ${released.join(', ')}`);
    // Released is not free: a worker still on the old snapshot may read it, so nobody else gets it until freeSlots().
    const early = r.addServer(spec('192.0.2.91', { source: 'agent' }));
    assert.ok(!released.includes(early.slot), `slot ${early.slot} is not a released one (${released.join(', ')})`);
    r.freeSlots(released);
    const late = r.addServer(spec('192.0.2.92', { source: 'agent' }));
    assert.ok(released.includes(late.slot), `once freed, slot ${late.slot} is reused (${released.join(', ')})`);
  });

  test('decides authority in one place: an override of the domain, else the server’s own check', () => {
    const r = new Registry();
    r.applyConfig(config);
    r.commit(r.view());
    const eu1 = r.serverAt('eu', '192.0.2.1', 80);
    const us1 = r.serverAt('us', '198.51.100.1', 80);
    assert.ok(eu1 && us1);
    assert.equal(r.authorityOf(eu1, 'app.example.test'), 'health_check');
    assert.equal(r.authorityOf(us1, 'us.example.test'), 'unchecked');
    r.setOverride(override('us.example.test', '198.51.100.1'));
    assert.equal(r.authorityOf(us1, 'us.example.test'), 'override');
    assert.equal(r.authorityOf(us1, 'app.example.test'), 'unchecked', 'an override holds in its own domain only');
    assert.equal(r.authorityOf(us1, null), 'override', 'a server is overridden when any domain that answers it is');
    assert.equal(r.authorityOf(eu1, null), 'health_check');
    assert.equal(r.answers('us.example.test', '198.51.100.1'), true);
    assert.equal(r.answers('us.example.test', '192.0.2.2'), false);
    assert.equal(r.deleteOverride({ scope: 'domain', service: 'us.example.test', address: '198.51.100.1' })?.reason, 'test');
    assert.equal(r.deleteOverride({ scope: 'domain', service: 'us.example.test', address: '198.51.100.1' }), null);
    assert.equal(r.authorityOf(us1, null), 'unchecked');
  });

  test('decides an agent backend by the rule: override > validation > stale > draining > the agent\'s claim', () => {
    const r = new Registry();
    r.applyConfig(config);
    const b = r.addServer(spec('198.51.100.60', { region: 'us', source: 'agent', service: 'us.example.test', check: { ...NONE, type: 'http', address: '198.51.100.60' } }));
    assert.equal(r.authorityOf(b, null), 'stale', 'nothing heard from its agent yet');
    r.setAgentState(b.key, { agentId: 'us-1', claim: 'healthy', drain: null, stale: false });
    assert.equal(r.authorityOf(b, null), 'agent');
    r.setAgentState(b.key, { agentId: 'us-1', claim: 'healthy', drain: 'cpu_threshold_exceeded', stale: false });
    assert.equal(r.authorityOf(b, null), 'draining');
    r.setAgentState(b.key, { agentId: 'us-1', claim: 'healthy', drain: 'cpu_threshold_exceeded', stale: true });
    assert.equal(r.authorityOf(b, null), 'stale', 'a stale agent\'s drain is as old as its claim');
    assert.deepEqual(r.view().checked.map((s) => s.key).includes(b.key), false, 'not checked by the overwatch without validation');
    r.commit(r.view());
    r.setOverride(override('us.example.test', '198.51.100.60'));
    assert.equal(r.authorityOf(b, 'us.example.test'), 'override');
    r.deleteOverride({ scope: 'domain', service: 'us.example.test', address: '198.51.100.60' });

    const validated = new Registry();
    validated.applyConfig(parseConfigText(YAML + 'overwatch: { validation: { enabled: true } }\n', 'registry.yaml'));
    const v = validated.addServer(spec('198.51.100.60', { region: 'us', source: 'agent', service: 'us.example.test', check: { ...NONE, type: 'http', address: '198.51.100.60' } }));
    validated.setAgentState(v.key, { agentId: 'us-1', claim: 'healthy', drain: null, stale: true });
    assert.equal(validated.authorityOf(v, null), 'health_check', 'validation outranks a stale agent');
    assert.ok(validated.view().checked.some((s) => s.key === v.key));
    const tcpNone = validated.addServer(spec('198.51.100.61', { region: 'us', source: 'agent', service: 'us.example.test' }));
    assert.equal(validated.authorityOf(tcpNone, null), 'stale', 'a backend checked with type none cannot be validated');
  });

  test('keeps one server per service for agent backends on the same address and port', () => {
    const r = new Registry();
    r.applyConfig(config);
    const a = r.addServer(spec('198.51.100.70', { region: 'us', source: 'agent', service: 'us.example.test' }));
    const b = r.addServer(spec('198.51.100.70', { region: 'us', source: 'agent', service: 'app.example.test' }));
    assert.notEqual(a.key, b.key);
    assert.notEqual(a.slot, b.slot);
    assert.equal(r.serverAt('us', '198.51.100.70', 80, 'app.example.test'), b);
  });

  test('run-time geo mappings cost one lookup each against the config\'s, not a walk of them: 10 000 of each compile in well under a second', () => {
    const mappings = Array.from({ length: 10_000 }, (_, i) => `      - { cidr: "10.${i >> 8}.${i & 255}.0/24", region: eu }`).join('\n');
    const r = new Registry();
    r.applyConfig(parseConfigText(`${YAML}overwatch:\n  geolocation:\n    custom_mappings:\n${mappings}\n`, 'geo-many.yaml'));
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) r.setGeoMapping({ cidr: `172.16.${i >> 8}.${i & 255}/32`, region: 'us', comment: null, source: 'api', createdAtMs: 0 });
    const view = r.view();
    const took = performance.now() - started;
    assert.equal(view.geo.mappings.length, 20_000);
    // The config's own networks are refused at run time, and a mapping of one does not apply.
    assert.throws(() => r.checkGeoMapping({ cidr: '10.0.7.0/24', region: 'us', comment: null }), /the config maps this network already/);
    assert.equal(r.geoMappingActive({ cidr: '10.0.7.0/24', region: 'us', comment: null }), false);
    assert.equal(r.geoMappingActive({ cidr: '172.16.0.7/32', region: 'us', comment: null }), true);
    // Walking the config's list for each one took 7.5 s here (10 000 × 10 000 compares); a set lookup takes milliseconds.
    assert.ok(took < 1000, `setting 10 000 mappings and compiling the view took ${Math.round(took)} ms`);
  });

  test('finds one run-time geo mapping by its network, and none for a network only the config maps or one removed', () => {
    const r = new Registry();
    r.applyConfig(parseConfigText(`${YAML}overwatch:\n  geolocation:\n    custom_mappings:\n      - { cidr: "10.0.0.0/8", region: eu }\n`, 'geo-one.yaml'));
    const a = { cidr: '172.16.0.0/12', region: 'us', comment: 'office', source: 'api', createdAtMs: 1 };
    const b = { cidr: '2001:db8::/32', region: 'eu', comment: null, source: 'bus', createdAtMs: 2 };
    r.setGeoMapping(a);
    r.setGeoMapping(b);
    assert.equal(r.geoMapping('172.16.0.0/12'), a);
    assert.equal(r.geoMapping('2001:db8::/32'), b);
    assert.equal(r.geoMapping('10.0.0.0/8'), undefined, 'the config\'s mappings are not run-time ones');
    assert.equal(r.geoMapping('172.16.0.0/16'), undefined, 'a network inside a mapped one is another network');
    r.deleteGeoMapping('172.16.0.0/12');
    assert.equal(r.geoMapping('172.16.0.0/12'), undefined);
    assert.deepEqual(r.geoMappings(), [b]);
  });

  test('a mapping set again with only its source or time changed is kept as given, in its place, without a republish; a new region republishes', () => {
    const r = new Registry();
    r.applyConfig(config);
    const first = { cidr: '172.16.0.0/12', region: 'us', comment: null, source: 'api', createdAtMs: 1 };
    const other = { cidr: '192.168.0.0/16', region: 'eu', comment: null, source: 'api', createdAtMs: 2 };
    r.setGeoMapping(first);
    r.setGeoMapping(other);
    let changes = 0;
    r.on('changed', () => changes++);
    // The same mapping as another overwatch wrote it (the bus): what the store now holds too.
    const fromBus = { ...first, source: 'bus', createdAtMs: 3 };
    r.restoreGeoMapping(fromBus);
    assert.equal(r.geoMapping(first.cidr), fromBus, 'the registry holds what the store holds: the next resync finds it unchanged');
    assert.deepEqual(r.geoMappings(), [fromBus, other], 'in its place in the order');
    assert.equal(changes, 0, 'who set it changes no answer');
    r.restoreGeoMapping({ ...fromBus, region: 'eu' });
    assert.equal(changes, 1);
  });
});

describe('run-time registration through a running overwatch', () => {
  test('a server added to the registry, with no config change, is answered after the next publish and leaves DNS when removed', async (t) => {
    const s = await startServer(t, YAML, 'registry-e2e.yaml');
    const addresses = async (): Promise<string[]> => ((await ask(s.port, 'app.example.test', 'A')).answers ?? []).map((a) => (a as { data: string }).data).sort();
    assert.deepEqual(await addresses(), ['192.0.2.1', '192.0.2.2', '198.51.100.1']);
    const generation = s.overwatch.generation;
    const added = s.overwatch.registry.addServer(spec('192.0.2.77'));
    await s.overwatch.whenPublished();
    assert.equal(s.overwatch.generation, generation + 1);
    assert.deepEqual(await addresses(), ['192.0.2.1', '192.0.2.2', '192.0.2.77', '198.51.100.1']);
    assert.ok(s.overwatch.servers().some((v) => v.address === '192.0.2.77' && v.region === 'eu' && v.domains.includes('app.example.test')));
    s.overwatch.registry.removeServer(added.key);
    await s.overwatch.whenPublished();
    assert.deepEqual(await addresses(), ['192.0.2.1', '192.0.2.2', '198.51.100.1']);
  });

  test('with 30 000 run-time geo mappings, looking one up to delete it costs one map lookup, not a copy and walk of them all', async (t) => {
    const s = await startServer(t, YAML, 'registry-geo-many.yaml');
    const n = 30_000;
    for (let i = 0; i < n; i++) s.overwatch.registry.setGeoMapping({ cidr: `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, region: 'us', comment: null, source: 'api', createdAtMs: i });
    await s.overwatch.whenPublished();
    // Networks none of them maps: each is looked up and found missing (the lookup a bus entry and the DELETE route both make).
    const started = performance.now();
    for (let i = 0; i < n; i++) assert.equal(await s.overwatch.deleteGeoMapping(`192.168.${(i >> 8) & 255}.${i & 255}/32`), null);
    const took = performance.now() - started;
    // Copying geoMappings() and walking it for each took 16 to 20 s here; a map lookup each takes tens of milliseconds.
    assert.ok(took < 2000, `${n} lookups of unmapped networks took ${Math.round(took)} ms`);
    // A mapped one is found and removed.
    const removed = await s.overwatch.deleteGeoMapping('172.16.0.7/32');
    assert.equal(removed?.cidr, '172.16.0.7/32');
    assert.equal(removed?.region, 'us');
    assert.equal(s.overwatch.registry.geoMapping('172.16.0.7/32'), undefined);
    assert.equal(s.overwatch.registry.geoMappings().length, n - 1);
  });

  test('a burst of a thousand registrations makes one snapshot', async (t) => {
    const s = await startServer(t, YAML.replace('max_answers: 4', 'max_answers: 32'), 'registry-burst.yaml');
    const generation = s.overwatch.generation;
    for (let i = 0; i < 1000; i++) s.overwatch.registry.addServer(spec(`10.${(i >> 8) & 0xff}.${i & 0xff}.1`));
    await s.overwatch.whenPublished();
    assert.equal(s.overwatch.generation, generation + 1, 'one publish for the whole burst');
    assert.equal(s.overwatch.snapshot.view.version, s.overwatch.registry.version);
    const answer = await ask(s.port, 'app.example.test', 'A', {}, 'tcp');
    assert.equal((answer.answers ?? []).length, 32);
    assert.equal(s.overwatch.servers().filter((v) => v.region === 'eu').length, 1002);
  });
});
