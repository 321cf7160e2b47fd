// Pre-signing (src/overwatch/presign.ts) against a real overwatch: which
// RRsets a snapshot and the current health call for (per policy and
// max_answers), that the workers then answer signed queries from their cache
// without signing themselves (DNSSEC_CACHE_MISSES stays 0), also after a
// health change and through the piscina pool when there are many sets, and
// that what the pool signed validates.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch, PRESIGN_SETTLE_MS } from '../../src/overwatch/overwatch.ts';
import { inlineRunner, Presigner } from '../../src/overwatch/presign.ts';
import { HEALTH_UNHEALTHY } from '../../src/snapshot/live-slots.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { QTYPE } from '../../src/dns/constants.ts';
import { ask } from '../helpers/dns-client.ts';
import { missingDnspython, PYTHON, tool } from './helpers.ts';

const servers = (n: number, base: string): string => Array.from({ length: n }, (_, i) => `{ address: ${base}.${i + 1} }`).join(', ');

const YAML = (weighted: number) => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
regions:
  - name: three
    servers: [${servers(3, '192.0.2')}]
  - name: many
    servers: [${servers(weighted, '198.51.100')}]
domains:
  - { name: rr1.example.test, regions: [three], ttl: 30 }
  - { name: rr2.example.test, regions: [three], ttl: 30, max_answers: 2 }
  - { name: fo.example.test, regions: [three], routing_algorithm: failover, max_answers: 2 }
  - { name: w2.example.test, regions: [many], routing_algorithm: weighted, max_answers: 2 }
logging: { level: error }
`;

async function start(t: TestContext, weighted: number, presign = true): Promise<Overwatch> {
  const quiet = new Writable({ write: (_c, _e, done) => done() });
  const overwatch = await Overwatch.start(parseConfigText(YAML(weighted), 'test.yaml'), createLogger({ level: 'error', format: 'json' }, quiet), { store: new MemoryStore(), healthChecks: 'off', presign });
  t.after(() => overwatch.stop(200));
  return overwatch;
}

/** Counts planned sets by owner's first label and type. */
function planOf(overwatch: Overwatch): Map<string, number> {
  const presigner = new Presigner({ pool: () => inlineRunner, send: () => undefined });
  const zones = overwatch.snapshot.view.zones.map((z) => z.name);
  const sets = presigner.plan(overwatch.snapshot.buffer, overwatch.live, overwatch.keyring!.workerDnssec(zones));
  const out = new Map<string, number>();
  for (const s of sets) {
    const r = s.rrset;
    const label = Buffer.from(r.ownerBuf.subarray(r.ownerOff + 1, r.ownerOff + 1 + r.ownerBuf[r.ownerOff])).toString('latin1');
    const type = r.type === QTYPE.A ? 'A' : r.type === 47 ? 'NSEC' : r.type === 48 ? 'DNSKEY' : r.type === QTYPE.SOA ? 'SOA' : r.type === QTYPE.NS ? 'NS' : String(r.type);
    const k = `${label} ${type}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

test('the plan holds the sets each policy produces: rotations, one failover set, every weighted pair, zone RRsets and NODATA NSECs', async (t) => {
  const overwatch = await start(t, 10, false);
  const plan = planOf(overwatch);
  assert.equal(plan.get('rr1 A'), 3, 'round-robin, max_answers 1: each server alone');
  assert.equal(plan.get('rr2 A'), 3, 'round-robin, max_answers 2 over 3: three rotations');
  assert.equal(plan.get('fo A'), 1, 'failover: the first two');
  assert.equal(plan.get('w2 A'), 45, 'weighted, max_answers 2 over 10: every pair');
  assert.equal(plan.get('example SOA'), 1);
  assert.equal(plan.get('example NS'), 1);
  assert.equal(plan.get('example DNSKEY'), 1);
  assert.equal(plan.get('rr1 NSEC'), 1, 'a NODATA NSEC per name');
  // A server down: the rotations over the other two, the failover set moves down.
  const server = overwatch.registry.servers().find((s) => s.address === '192.0.2.1');
  assert.ok(server);
  overwatch.setHealth(server.slot, HEALTH_UNHEALTHY);
  const after = planOf(overwatch);
  assert.equal(after.get('rr1 A'), 2);
  assert.equal(after.get('rr2 A'), 1, 'two left, max_answers 2: one set');
  assert.equal(after.get('fo A'), 1);
});

/** Waits until every worker has put at least `n` pre-signed signatures into its cache. */
async function waitPresigned(overwatch: Overwatch, n: number, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (overwatch.readCounters().DNSSEC_PRESIGNED < n * overwatch.config.dns.workers) {
    assert.ok(Date.now() < deadline, `${what}: pre-signed ${overwatch.readCounters().DNSSEC_PRESIGNED}, expected ${n} per worker`);
    await delay(50);
  }
}

async function askAll(port: number, names: readonly string[], times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    for (const name of names) {
      const r = await ask(port, name, 'A', { edns: { do: true } });
      assert.ok([...(r.answers ?? []), ...(r.authorities ?? [])].some((a) => a.type === 'RRSIG'), `${name}: signed`);
    }
  }
}

test('with pre-signing the workers answer every signed query from their cache, also after a health change', async (t) => {
  const overwatch = await start(t, 10);
  const planned = overwatch.presignStats();
  assert.ok(planned);
  await waitPresigned(overwatch, 60, 'after start');
  const names = ['rr1.example.test', 'rr2.example.test', 'fo.example.test', 'w2.example.test', 'example.test'];
  await askAll(overwatch.port, names, 12);
  const before = overwatch.readCounters();
  assert.equal(before.DNSSEC_CACHE_MISSES, 0, JSON.stringify(before));
  assert.ok(before.DNSSEC_CACHE_HITS >= 60);

  const presignedBefore = before.DNSSEC_PRESIGNED;
  const server = overwatch.registry.servers().find((s) => s.address === '198.51.100.1');
  assert.ok(server);
  overwatch.setHealth(server.slot, HEALTH_UNHEALTHY);
  // The new pairs without that server were planned before; the change only re-plans (nothing new to sign) or adds sets.
  const deadline = Date.now() + 10_000;
  while (overwatch.presignStats()!.plans < 2) {
    assert.ok(Date.now() < deadline, 'no new plan after the health change');
    await delay(50);
  }
  await askAll(overwatch.port, names, 12);
  const after = overwatch.readCounters();
  assert.equal(after.DNSSEC_CACHE_MISSES, 0, JSON.stringify(after));
  assert.ok(after.DNSSEC_PRESIGNED >= presignedBefore);
});

test('a burst of health changes is planned once, after it settles; its changed answers are signed by the workers meanwhile', async (t) => {
  const overwatch = await start(t, 10);
  await waitPresigned(overwatch, 60, 'after start');
  // Quiet for longer than the settle time: nothing more is planned.
  await delay(PRESIGN_SETTLE_MS + 500);
  const before = overwatch.presignStats()!.plans;
  const servers = overwatch.registry.servers().filter((s) => s.address.startsWith('198.51.100.'));
  // Five changes 100 ms apart, each a new set of answerable pairs.
  for (const server of servers.slice(0, 5)) {
    overwatch.setHealth(server.slot, HEALTH_UNHEALTHY);
    await delay(100);
  }
  // Answered at once, signed: whatever was not pre-signed, the worker signs.
  await askAll(overwatch.port, ['w2.example.test'], 4);
  const deadline = Date.now() + 10_000;
  while (overwatch.presignStats()!.plans === before) {
    assert.ok(Date.now() < deadline, 'no plan after the burst');
    await delay(50);
  }
  await delay(PRESIGN_SETTLE_MS + 500);
  assert.equal(overwatch.presignStats()!.plans - before, 1, 'one plan for the whole burst');
});

test('many sets go to the piscina pool, and what it signed validates (dnspython)', { skip: missingDnspython() }, async (t) => {
  // Weighted max_answers 2 over 30 servers: 435 pairs, more than are signed inline.
  const overwatch = await start(t, 30);
  await waitPresigned(overwatch, 435, 'pool');
  const stats = overwatch.presignStats()!;
  assert.ok(stats.signatures >= 435, JSON.stringify(stats));
  const script = String.raw`
import sys, time, dns.dnssec, dns.message, dns.name, dns.query, dns.rdatatype
port = int(sys.argv[1]); zone = dns.name.from_text('example.test')
def ask(name, t):
    return dns.query.udp(dns.message.make_query(name, t, want_dnssec=True), '127.0.0.1', port=port, timeout=5)
keys = ask(zone, 'DNSKEY').find_rrset(dns.message.ANSWER, zone, 1, dns.rdatatype.DNSKEY)
seen = set()
for i in range(40):
    r = ask('w2.example.test', 'A')
    a = next(x for x in r.answer if x.rdtype == dns.rdatatype.A)
    s = next(x for x in r.answer if x.rdtype == dns.rdatatype.RRSIG)
    dns.dnssec.validate(a, s, {zone: keys}, now=time.time())
    seen.add(tuple(sorted(str(x) for x in a)))
print('validated', len(seen))
`;
  const out = await tool(PYTHON, ['-c', script, String(overwatch.port)]);
  const m = /validated (\d+)/.exec(out);
  assert.ok(m, out);
  assert.ok(Number(m[1]) >= 10, `distinct pairs validated: ${m[1]}`);
  assert.equal(overwatch.readCounters().DNSSEC_CACHE_MISSES, 0, 'every pair came from the pool');
});

test('a plan of several pool tasks runs them in one pool thread (they arrived together and each started its own pool)', { skip: process.platform !== 'linux' && 'reads /proc/self/task' }, async (t) => {
  // Weighted max_answers 2 over 45 servers: 990 pairs, with the other sets two tasks (SETS_PER_TASK) sent at once.
  const overwatch = await start(t, 45);
  await waitPresigned(overwatch, 990, 'pool');
  // Node names a worker started without a name (piscina's) "WorkerThread"; ours are dns-N.
  const unnamed = readdirSync('/proc/self/task').filter((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'latin1').trim() === 'WorkerThread');
  assert.equal(unnamed.length, 1, `pool threads: ${unnamed.length}`);
});

test('GET /metrics shows cache hits and misses, signatures by worker and pool, and key age', async (t) => {
  const { createMetrics } = await import('../../src/metrics/prometheus.ts');
  const overwatch = await start(t, 10);
  await waitPresigned(overwatch, 60, 'metrics');
  await askAll(overwatch.port, ['rr1.example.test', 'w2.example.test'], 5);
  // A missing name: its NSEC is signed by the worker (a miss).
  await ask(overwatch.port, 'nothing.example.test', 'A', { edns: { do: true } });
  const metrics = createMetrics({ version: 'test', loadedAtMs: Date.now(), overwatch, processMetrics: false });
  t.after(() => metrics.close());
  const text = await metrics.registry.metrics();
  const value = (re: RegExp): number => {
    const m = re.exec(text);
    assert.ok(m, `${re} not in:\n${text.split('\n').filter((l) => l.includes('dnssec')).join('\n')}`);
    return Number(m[1]);
  };
  assert.ok(value(/^opengslb_dnssec_signature_cache_lookups_total\{result="hit"\} (\d+)$/m) >= 10);
  assert.equal(value(/^opengslb_dnssec_signature_cache_lookups_total\{result="miss"\} (\d+)$/m), 1, 'the NSEC of the missing name');
  assert.equal(value(/^opengslb_dnssec_signatures_total\{by="worker"\} (\d+)$/m), 1);
  assert.ok(value(/^opengslb_dnssec_signatures_total\{by="pool"\} (\d+)$/m) >= 60);
  assert.ok(value(/^opengslb_dnssec_signing_seconds_total\{by="pool"\} ([\d.e-]+)$/m) > 0);
  assert.ok(value(/^opengslb_dnssec_presigned_total (\d+)$/m) >= 120);
  const tag = overwatch.keyring!.status()[0].keyTag;
  assert.ok(value(new RegExp(`^opengslb_dnssec_key_age_seconds\\{zone="example\\.test",key_tag="${tag}",state="active"\\} (\\d+)$`, 'm')) >= 0);
  assert.equal(value(/^opengslb_dnssec_key_sync_in_sync (\d)$/m), 1, 'nothing to be out of sync with');
});

test('the signatures held between plans stay within maxHeld: the sets planned longest ago are forgotten, the latest plan\'s kept', async (t) => {
  const overwatch = await start(t, 10, false);
  const zones = overwatch.snapshot.view.zones.map((z) => z.name);
  const dnssec = overwatch.keyring!.workerDnssec(zones);
  let now = 1_000_000;
  // Bound at one full plan: every set a later plan adds pushes out one planned longest ago.
  const full = new Presigner({ pool: () => inlineRunner, send: () => undefined }).plan(overwatch.snapshot.buffer, overwatch.live, dnssec).length;
  const presigner = new Presigner({ pool: () => inlineRunner, send: () => undefined, maxSets: full, maxHeld: full, nowMs: () => now });
  await presigner.update(overwatch.snapshot.buffer, overwatch.live, dnssec);
  assert.equal(presigner.size, full);
  // The failover and rotation domains' servers going down in turn make sets no plan had: {2, 3}, then {3}.
  let signed = presigner.stats.signatures;
  for (const address of ['192.0.2.1', '192.0.2.2']) {
    const server = overwatch.registry.servers().find((s) => s.address === address);
    assert.ok(server);
    overwatch.setHealth(server.slot, HEALTH_UNHEALTHY);
    now += 1000;
    await presigner.update(overwatch.snapshot.buffer, overwatch.live, dnssec);
    assert.ok(presigner.size <= full, `${presigner.size} held after a plan, expected at most ${full}`);
    assert.ok(presigner.size >= presigner.stats.lastPlanned, 'the latest plan\'s sets are held');
  }
  signed = presigner.stats.signatures - signed;
  assert.ok(signed > 0, 'the health changes made new sets: the test went past the bound');
});
