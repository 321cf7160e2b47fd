// The real overwatch signs: an Overwatch on loopback (real DNS worker
// threads, keys in a real lmdb store under a temporary data_dir) is asked by
// BIND's delv and Unbound's unbound-host with the zone's DNSKEY as the only
// trust anchor. Every kind of answer must fully validate (A, AAAA, a rotated
// three-address set, SOA, NS, DNSKEY, NODATA, an empty non-terminal, and a
// name that does not exist, by compact denial), before and after a health
// change and after a restart with the same data_dir. Plus the wire facts a
// validator does not show: no RRSIG without DO, AD never set, RRSIG TTL =
// RRset TTL, a signed answer too big for UDP truncates and completes over TCP,
// and through a key rollover one RRSIG per RRset, or one per algorithm while
// a rollover changes the algorithm.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import dnsPacket from 'dns-packet';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { LmdbStore, MemoryStore } from '../../src/state/store.ts';
import { algorithmNumber, type KeyStatusView } from '../../src/dnssec/keys.ts';
import { ask } from '../helpers/dns-client.ts';
import { delvAnchor, missingTool, runLimited, signedZoneYaml, tool, unboundConfig } from './helpers.ts';

const noDelv = missingTool('delv', 'bind9-dnsutils');
const noUnbound = missingTool('unbound-host', 'unbound-host');

const YAML = (algorithm: string): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
  soa: { mname: ns1.example.test, rname: hostmaster@example.test, serial: 2026120601, refresh: 2h, retry: 15m, expire: 336h, minimum: 30s, ttl: 1h }
  nameservers:
    - { name: ns1.example.test, addresses: [192.0.2.53] }
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }]
  - name: v6
    servers: [{ address: "2001:db8::1" }, { address: "2001:db8::2" }]
domains:
  - { name: app.example.test, regions: [eu], ttl: 30, max_answers: 3 }
  - { name: one.example.test, regions: [eu], ttl: 20 }
  - { name: v6.example.test, regions: [v6], ttl: 40, max_answers: 2 }
  - { name: deep.ent.example.test, regions: [eu] }
overwatch:
  data_dir: ./state
  dnssec: { algorithm: ${algorithm} }
logging: { level: info }
`;

/** What every validator must accept: the data validates, or the denial does. */
const CASES: readonly { name: string; type: string; kind: 'positive' | 'negative' | 'rrsig' }[] = [
  { name: 'app.example.test', type: 'A', kind: 'positive' },
  { name: 'one.example.test', type: 'A', kind: 'positive' },
  { name: 'v6.example.test', type: 'AAAA', kind: 'positive' },
  { name: 'ns1.example.test', type: 'A', kind: 'positive' },
  { name: 'example.test', type: 'SOA', kind: 'positive' },
  { name: 'example.test', type: 'NS', kind: 'positive' },
  { name: 'example.test', type: 'DNSKEY', kind: 'positive' },
  { name: 'app.example.test', type: 'AAAA', kind: 'negative' },
  { name: 'example.test', type: 'A', kind: 'negative' },
  { name: 'ent.example.test', type: 'A', kind: 'negative' },
  { name: 'nothing-here.example.test', type: 'A', kind: 'negative' },
  { name: 'deep.below.nothing.example.test', type: 'AAAA', kind: 'negative' },
  // Compact denial puts an NSEC at every name: asked for, it is data, also where nothing else is.
  { name: 'app.example.test', type: 'NSEC', kind: 'positive' },
  { name: 'example.test', type: 'NSEC', kind: 'positive' },
  { name: 'ent.example.test', type: 'NSEC', kind: 'positive' },
  { name: 'nothing-here.example.test', type: 'NSEC', kind: 'positive' },
  // An RRSIG RRset is not signed: a validator can only take it as insecure data, never bogus (delv cannot ask
  // for type RRSIG at all: "shut down hung fetch", against Knot too; unbound-host is the judge here).
  { name: 'app.example.test', type: 'RRSIG', kind: 'rrsig' },
  { name: 'nothing-here.example.test', type: 'RRSIG', kind: 'rrsig' },
];

interface Running {
  overwatch: Overwatch;
  store: LmdbStore;
  logs: string[];
  stop(): Promise<void>;
}

async function startSigned(dir: string, algorithm: string): Promise<Running> {
  const config = parseConfigText(YAML(algorithm), join(dir, 'config.yaml'));
  const store = LmdbStore.open(config.dataDir);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const overwatch = await Overwatch.start(config, createLogger({ level: 'info', format: 'json' }, sink), { store, healthChecks: 'off' });
  return {
    overwatch,
    store,
    logs,
    async stop() {
      await overwatch.stop(200);
      await store.close();
    },
  };
}

function keyOf(overwatch: Overwatch): KeyStatusView {
  const keys = overwatch.keyring?.status() ?? [];
  assert.equal(keys.length, 1, JSON.stringify(keys));
  return keys[0];
}

/**
 * How many validator runs validateAll keeps going at once: each is a short
 * process of its own with its own resolver state, so they need not wait for
 * each other; a bound keeps a loaded machine from running 30 at a time.
 */
const VALIDATORS_AT_ONCE = 8;

/** Asks delv and unbound-host every case; returns the failures (empty when all validated), in case order. */
async function validateAll(port: number, dir: string, key: KeyStatusView, label: string): Promise<string[]> {
  const jobs: (() => Promise<string | null>)[] = [];
  const info = { zone: key.zone, flags: key.flags, algorithm: key.algorithm === 'ED25519' ? 15 : 13, publicKey: key.publicKey } as const;
  const anchor = join(dir, `anchor-${label}.conf`);
  await writeFile(anchor, delvAnchor(info));
  const conf = join(dir, `unbound-${label}.conf`);
  await writeFile(conf, unboundConfig({ ...info, keyTag: key.keyTag, createdAtMs: 0, state: 'active' }, port));
  for (const c of CASES) {
    if (c.kind === 'rrsig') {
      if (noUnbound === false) {
        jobs.push(async () => {
          const out = await tool('unbound-host', ['-C', conf, '-v', '-t', c.type, c.name]);
          return !new RegExp(`^${c.name.replaceAll('.', '\\.')} has RRSIG record NSEC 1[35] `, 'm').test(out) || /BOGUS/.test(out) ? `${label}: unbound-host ${c.name} ${c.type}:\n${out}` : null;
        });
      }
      continue;
    }
    if (noDelv === false) {
      jobs.push(async () => {
        const out = await tool('delv', ['@127.0.0.1', '-p', String(port), '-a', anchor, '+root=example.test', c.name, c.type]);
        const want = c.kind === 'positive' ? /^; fully validated$/m : /^; negative response, fully validated$/m;
        return want.test(out) ? null : `${label}: delv ${c.name} ${c.type} (${c.kind}):\n${out}`;
      });
    }
    if (noUnbound === false) {
      jobs.push(async () => {
        const out = await tool('unbound-host', ['-C', conf, '-v', '-t', c.type, c.name]);
        const lines = out.split('\n').filter((l) => l.includes(c.name));
        const secure = lines.length > 0 && lines.every((l) => /\(secure\)$/.test(l)) && (c.kind === 'positive' || /has no .*\(secure\)/.test(out));
        return secure ? null : `${label}: unbound-host ${c.name} ${c.type} (${c.kind}):\n${out}`;
      });
    }
  }
  return (await runLimited(jobs, VALIDATORS_AT_ONCE)).filter((f) => f !== null);
}

for (const algorithm of ['ECDSAP256SHA256', 'ED25519']) {
  test(`delv and unbound validate every ${algorithm} answer of the real server, after a health change and after a restart`, { skip: noDelv && noUnbound }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'opengslb-signed-'));
    let running = await startSigned(dir, algorithm);
    t.after(async () => {
      await running.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const key = keyOf(running.overwatch);
    assert.equal(key.algorithm, algorithm);
    // The new key is logged with the DS to publish, and nothing private.
    const created = running.logs.find((l) => l.includes('DNSSEC key created'));
    assert.ok(created, running.logs.join('\n'));
    assert.match(created, new RegExp(`example\\.test\\. IN DS ${key.keyTag} ${algorithm === 'ED25519' ? 15 : 13} 2 [0-9A-F]{64}`));
    assert.doesNotMatch(running.logs.join('\n'), /privateKey|PRIVATE|pkcs8/i);

    assert.deepEqual(await validateAll(running.overwatch.port, dir, key, 'start'), []);
    // The three-address set in several rotation orders, each validated (the delv runs at once: each is its own resolver).
    const orders = new Set<string>();
    const rotated: Promise<string>[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await ask(running.overwatch.port, 'app.example.test', 'A', { edns: { do: true } });
      orders.add(rrs(r.answers).filter((a) => a.type === 'A').map((a) => String(a.data)).join(' '));
      if (noDelv === false) rotated.push(tool('delv', ['@127.0.0.1', '-p', String(running.overwatch.port), '-a', join(dir, 'anchor-start.conf'), '+root=example.test', 'app.example.test', 'A']));
    }
    for (const out of await Promise.all(rotated)) assert.match(out, /^; fully validated$/m);
    assert.ok(orders.size >= 2, `rotation orders seen: ${[...orders].join(' | ')}`);

    // A health change: 192.0.2.1 goes down, the sets answered change and still validate.
    const server = running.overwatch.registry.servers().find((s) => s.address === '192.0.2.1');
    assert.ok(server);
    running.overwatch.setHealth(server.slot, HEALTH_UNHEALTHY);
    const after = await ask(running.overwatch.port, 'app.example.test', 'A', { edns: { do: true } });
    assert.deepEqual(rrs(after.answers).filter((a) => a.type === 'A').map((a) => String(a.data)).sort(), ['192.0.2.2', '192.0.2.3']);
    assert.deepEqual(await validateAll(running.overwatch.port, dir, key, 'health'), []);

    // A restart with the same data_dir: the same key signs, the same anchor validates.
    await running.stop();
    running = await startSigned(dir, algorithm);
    assert.deepEqual(keyOf(running.overwatch), { ...key, ageSeconds: keyOf(running.overwatch).ageSeconds });
    assert.ok(!running.logs.some((l) => l.includes('DNSSEC key created')), 'no new key after a restart');
    assert.deepEqual(await validateAll(running.overwatch.port, dir, key, 'restart'), []);
  });
}

/** A decoded record, as dns-packet gives it, loosely typed for the checks below. */
interface Rr {
  readonly type: string;
  readonly name: string;
  readonly ttl: number;
  readonly data: {
    typeCovered?: string; algorithm?: number; originalTTL?: number; keyTag?: number; signersName?: string; inception?: number; expiration?: number; nextDomain?: string;
    rrtypes?: string[]; flags?: number; key?: Buffer;
  };
}

function rrs(section: readonly dnsPacket.Answer[] | undefined): Rr[] {
  return (section ?? []) as unknown as Rr[];
}

/** The first RRSIG of a section covering `type`. */
function rrsigOf(section: readonly dnsPacket.Answer[] | undefined, type: string): Rr | undefined {
  return rrs(section).find((r) => r.type === 'RRSIG' && r.data.typeCovered === type);
}

/** The NSEC of a section's type bitmap, sorted. */
function nsecTypes(section: readonly dnsPacket.Answer[] | undefined): string[] {
  const nsec = rrs(section).find((r) => r.type === 'NSEC');
  assert.ok(nsec, JSON.stringify(section));
  return [...(nsec.data.rrtypes ?? [])].sort();
}

test('signed answers on the wire: RRSIG only with DO, TTL of the RRset, AD never set, compact denial with NXNAME', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-wire-'));
  const running = await startSigned(dir, 'ECDSAP256SHA256');
  t.after(async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const port = running.overwatch.port;
  const key = keyOf(running.overwatch);
  const AD = 1 << 5;

  const plain = await ask(port, 'app.example.test', 'A', { edns: {} });
  assert.equal((plain.answers ?? []).filter((a) => a.type === 'RRSIG').length, 0, 'no RRSIG without DO');
  const plainNx = await ask(port, 'nothing.example.test', 'A', { edns: {} });
  assert.equal(plainNx.rcode, 'NXDOMAIN');
  assert.equal((plainNx.authorities ?? []).filter((a) => a.type !== 'SOA').length, 0, 'no NSEC or RRSIG without DO');

  const signed = await ask(port, 'app.example.test', 'A', { edns: { do: true } });
  assert.equal((signed.flags ?? 0) & AD, 0, 'AD is never set by an authoritative server');
  const sig = rrsigOf(signed.answers, 'A');
  assert.ok(sig, JSON.stringify(signed.answers));
  assert.equal(sig.ttl, 30);
  assert.equal(sig.data.originalTTL, 30);
  assert.equal(sig.data.keyTag, key.keyTag);
  assert.equal(sig.data.signersName?.toLowerCase(), 'example.test');
  const nowSec = Date.now() / 1000;
  const inception = Number(sig.data.inception);
  const expiration = Number(sig.data.expiration);
  assert.ok(Math.abs(nowSec - 3600 - inception) < 120, `inception ${inception} is about an hour back`);
  assert.ok(Math.abs(nowSec + 7 * 86400 - expiration) < 120, `expiration ${expiration} is about 7 days ahead`);

  // Case randomisation in the question changes nothing: same RRSIG from the cache.
  const mixed = await ask(port, 'ApP.ExAmPlE.TeSt', 'A', { edns: { do: true } });
  assert.ok(rrsigOf(mixed.answers, 'A'));

  const nx = await ask(port, 'nothing.example.test', 'A', { edns: { do: true } });
  assert.equal(nx.rcode, 'NOERROR', 'RFC 9824: a missing name is answered NOERROR with an NXNAME NSEC');
  const nsec = rrs(nx.authorities).find((a) => a.type === 'NSEC');
  assert.ok(nsec, JSON.stringify(nx.authorities));
  assert.equal(nsec.name.toLowerCase(), 'nothing.example.test');
  // The successor \000.<qname> (dns-packet decodes the zero octet as is).
  assert.equal(nsec.data.nextDomain, '\x00.nothing.example.test');
  assert.deepEqual(nsecTypes(nx.authorities), ['NSEC', 'RRSIG', 'UNKNOWN_128']);
  assert.equal(nsec.ttl, 30, 'NSEC TTL = min(SOA TTL, MINIMUM)');
  const soaSig = rrsigOf(nx.authorities, 'SOA');
  assert.ok(soaSig);
  assert.equal(soaSig.ttl, 30, 'the SOA RRSIG is served with the negative TTL, like the SOA');
  assert.equal(soaSig.data.originalTTL, 3600, 'its Original TTL is the SOA TTL');
  assert.ok(rrsigOf(nx.authorities, 'NSEC'));

  const nodata = await ask(port, 'app.example.test', 'AAAA', { edns: { do: true } });
  assert.deepEqual(nsecTypes(nodata.authorities), ['A', 'NSEC', 'RRSIG']);
  const apex = await ask(port, 'example.test', 'TXT', { edns: { do: true } });
  assert.deepEqual(nsecTypes(apex.authorities), ['DNSKEY', 'NS', 'NSEC', 'RRSIG', 'SOA']);
  const ent = await ask(port, 'ent.example.test', 'A', { edns: { do: true } });
  assert.deepEqual(nsecTypes(ent.authorities), ['NSEC', 'RRSIG'], 'an empty non-terminal holds no type');

  const dnskey = await ask(port, 'example.test', 'DNSKEY', { edns: { do: true } });
  const keys = rrs(dnskey.answers).filter((a) => a.type === 'DNSKEY');
  assert.equal(keys.length, 1);
  assert.equal(keys[0].data.flags, 257);
  assert.equal(keys[0].data.key?.toString('base64'), key.publicKey);
  assert.equal(keys[0].ttl, 3600);
  assert.ok(rrsigOf(dnskey.answers, 'DNSKEY'));
  const notApex = await ask(port, 'app.example.test', 'DNSKEY', { edns: { do: true } });
  assert.equal((notApex.answers ?? []).length, 0, 'DNSKEY only at the apex');
});

test('a signed answer that does not fit the UDP size is truncated and completes over TCP', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-tc-'));
  const running = await startSigned(dir, 'ECDSAP256SHA256');
  t.after(async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const port = running.overwatch.port;
  // The compact denial of a long name (the question, the SOA and its RRSIG,
  // an NSEC whose next name repeats the 204-byte name, its RRSIG) is over
  // 600 bytes: more than a client with a 512-byte EDNS size takes.
  const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example.test`;
  const udp = await ask(port, long, 'A', { edns: { do: true, udpSize: 512 } });
  const tc = ((udp.flags ?? 0) & (1 << 9)) !== 0;
  assert.ok(tc, `expected TC for a ${long.length}-character name's signed denial over 512 bytes`);
  assert.equal((udp.authorities ?? []).length, 0);
  const tcp = await ask(port, long, 'A', { edns: { do: true, udpSize: 512 } }, 'tcp');
  assert.equal(((tcp.flags ?? 0) & (1 << 9)), 0);
  assert.ok((tcp.authorities ?? []).some((a) => a.type === 'NSEC'));
  assert.equal((tcp.authorities ?? []).filter((a) => a.type === 'RRSIG').length, 2);
  const counters = running.overwatch.readCounters();
  assert.ok(counters.TRUNCATED >= 1);
  // The SOA's RRSIG was made ahead (pre-signing); the NSEC of a name nobody asked before is signed by the worker.
  assert.ok(counters.DNSSEC_SIGNATURES >= 1, JSON.stringify(counters));
});

/** The algorithms of a section's RRSIGs over `type`, sorted. */
function rrsigAlgorithms(section: readonly dnsPacket.Answer[] | undefined, type: string): number[] {
  return rrs(section).filter((r) => r.type === 'RRSIG' && r.data.typeCovered === type).map((r) => r.data.algorithm ?? -1).sort();
}

const ROLLOVER_CASES = [
  { name: 'within one algorithm signs each RRset with exactly one RRSIG', from: 'ECDSAP256SHA256', to: 'ECDSAP256SHA256', published: [13], signing: [13] },
  { name: 'to another algorithm signs each RRset with one RRSIG per algorithm, from publish on', from: 'ECDSAP256SHA256', to: 'ED25519', published: [13, 15], signing: [13, 15] },
] as const;

for (const c of ROLLOVER_CASES) {
  test(`a key rollover ${c.name}, over UDP and TCP, in positive, negative and truncated answers`, async (t) => {
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    const logger = createLogger({ level: 'error', format: 'json' }, quiet);
    const store = new MemoryStore();
    // The zone's key is made with c.from; the config then asks for c.to, which the rollover's new key has.
    const first = await Overwatch.start(parseConfigText(signedZoneYaml({ servers: 3, algorithm: c.from }), 'test.yaml'), logger, { store, healthChecks: 'off' });
    await first.stop(200);
    // One check() is some 30 queries on loopback, about 10 ms (well under 1 s loaded): 1 s phases hold it with room to spare.
    const overwatch = await Overwatch.start(parseConfigText(signedZoneYaml({ servers: 3, algorithm: c.to }), 'test.yaml'), logger, { store, healthChecks: 'off', rolloverSwitchAfterMs: 1000, rolloverPublishAfterMs: 1000 });
    t.after(() => overwatch.stop(200));
    const port = overwatch.port;
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example.test`;

    /** Every data RRset of the answers carries one RRSIG of each algorithm in `algs` (sorted), over both transports. */
    const check = async (phase: string, algs: readonly number[]): Promise<void> => {
      const want = [...algs];
      for (const transport of ['udp', 'tcp'] as const) {
        const at = `${phase}, ${transport}`;
        const edns = { do: true, udpSize: 1232 };
        const a = await ask(port, 'app.example.test', 'A', { edns }, transport);
        assert.equal(rrs(a.answers).filter((r) => r.type === 'A').length, 3, at);
        assert.deepEqual(rrsigAlgorithms(a.answers, 'A'), want, `${at}: A`);
        assert.deepEqual(rrsigAlgorithms((await ask(port, 'example.test', 'SOA', { edns }, transport)).answers, 'SOA'), want, `${at}: SOA`);
        assert.deepEqual(rrsigAlgorithms((await ask(port, 'example.test', 'NS', { edns }, transport)).answers, 'NS'), want, `${at}: NS`);
        assert.deepEqual(rrsigAlgorithms((await ask(port, 'app.example.test', 'NSEC', { edns }, transport)).answers, 'NSEC'), want, `${at}: NSEC asked for`);
        // Negative answers: NODATA and a name that does not exist (compact denial), the SOA and the NSEC each signed.
        for (const [name, type] of [['app.example.test', 'AAAA'], ['nothing.example.test', 'A']]) {
          const neg = await ask(port, name, type, { edns }, transport);
          assert.equal(neg.rcode, 'NOERROR', `${at}: ${name} ${type}`);
          assert.equal(rrs(neg.authorities).filter((r) => r.type === 'NSEC').length, 1, `${at}: ${name} ${type}`);
          assert.deepEqual(rrsigAlgorithms(neg.authorities, 'SOA'), want, `${at}: ${name} ${type}: SOA`);
          assert.deepEqual(rrsigAlgorithms(neg.authorities, 'NSEC'), want, `${at}: ${name} ${type}: NSEC`);
          assert.equal(rrs(neg.authorities).length, 2 + 2 * want.length, `${at}: ${name} ${type}: SOA, NSEC and their RRSIGs, nothing else`);
        }
      }
      // A long name's denial does not fit 512 bytes: TC over UDP, the whole answer with every RRSIG over TCP.
      const udp = await ask(port, long, 'A', { edns: { do: true, udpSize: 512 } });
      assert.ok(((udp.flags ?? 0) & (1 << 9)) !== 0, `${phase}: TC over UDP`);
      assert.equal((udp.authorities ?? []).length, 0, `${phase}: a truncated answer carries no records`);
      const tcp = await ask(port, long, 'A', { edns: { do: true, udpSize: 512 } }, 'tcp');
      assert.equal((tcp.flags ?? 0) & (1 << 9), 0, `${phase}: no TC over TCP`);
      assert.deepEqual(rrsigAlgorithms(tcp.authorities, 'SOA'), want, `${phase}: TCP: SOA`);
      assert.deepEqual(rrsigAlgorithms(tcp.authorities, 'NSEC'), want, `${phase}: TCP: NSEC`);
    };

    await check('before', [algorithmNumber(c.from)]);
    const started = await overwatch.rolloverStart('example.test');
    assert.equal(started.phase, 'published');
    await check('published', c.published);
    assert.equal(overwatch.rolloverStatus('example.test').phase, 'published', 'the published checks ended within the phase');
    while (overwatch.rolloverStatus('example.test').phase !== 'signing') await delay(25);
    await check('signing', c.signing);
    await overwatch.rolloverFinish('example.test');
    // An algorithm rollover's old key leaves the DNSKEY RRset first and signs for a DNSKEY TTL more (docs/dnssec.md).
    while (overwatch.rolloverStatus('example.test').phase !== 'none') await delay(25);
    await check('finished', [algorithmNumber(c.to)]);
  });
}
