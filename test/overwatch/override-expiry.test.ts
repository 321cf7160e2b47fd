// Overrides ending together (OverrideExpiry.expireDue through
// HealthFanout.applyOverrides): every member word ends as rewriting one
// override at a time with a pass over every member left it, each ended
// override is logged, counted and forgotten once, in the registry's order,
// and a large batch costs a few milliseconds, not members × overrides.
// And the timer against a wall clock that jumps (NTP step) either way: the
// end is honoured within about a second, and DNS (the member word) and the
// registry (the API, explain) agree at every instant.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { HealthFanout } from '../../src/overwatch/fanout.ts';
import { OverrideExpiry } from '../../src/overwatch/override-expiry.ts';
import { covers, describeTarget, keyOfTarget, type Override, type OverrideTarget } from '../../src/registry/overrides.ts';
import { Registry, type MemberModel } from '../../src/registry/registry.ts';
import { seededRandom } from '../../src/lib/random.ts';
import { compileSnapshot } from '../../src/snapshot/compile.ts';
import {
  createLiveSlots, HEALTH_DRAINED, HEALTH_HEALTHY, HEALTH_UNHEALTHY, HEALTH_UNKNOWN, LIVE_EPOCH, LIVE_HEALTH_BASE, storeHealth,
} from '../../src/snapshot/live-slots.ts';

const NOW = 1_750_000_000_000;
/** Ends before the clock is moved on by AFTER_MS: due. */
const DUE = NOW + 1_000;
/** Ends after it: still in force. */
const LATER = NOW + 60_000;
const AFTER_MS = 2_000;

interface Rig {
  readonly registry: Registry;
  readonly fanout: HealthFanout;
  readonly clock: { now: number };
}

/** A registry and fanout over `yaml`, every member word written from the checks (nothing set yet). */
function rig(yaml: string): Rig {
  const clock = { now: NOW };
  const registry = new Registry();
  registry.applyConfig(parseConfigText(yaml, 'expiry.yaml'));
  const view = registry.view();
  const snapshot = compileSnapshot(view, { generation: 1, serial: 1 });
  registry.commit(view);
  const fanout = new HealthFanout(createLiveSlots(Math.max(256, registry.slotHighWater * 2)), registry);
  fanout.setMembers(snapshot.members);
  fanout.apply();
  return { registry, fanout, clock };
}

function override(target: OverrideTarget, healthy: boolean, expiresAtMs: number | null): Override {
  return { target, healthy, reason: 'maintenance', source: 'test', createdAtMs: NOW, expiresAtMs };
}

function word(fanout: HealthFanout, m: MemberModel): number {
  return Atomics.load(fanout.live, LIVE_HEALTH_BASE + m.memberSlot);
}

/** Names a member as the failure messages show it: "a.example.test eu/192.0.2.1:80". */
function memberName(m: MemberModel): string {
  return `${m.domain} ${m.server.label}`;
}

const STATE_NAMES: Record<number, string> = {
  [HEALTH_UNKNOWN]: 'unknown (not rewritten)', [HEALTH_HEALTHY]: 'healthy', [HEALTH_UNHEALTHY]: 'unhealthy', [HEALTH_DRAINED]: 'drained',
};

function words(fanout: HealthFanout): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of fanout.members) out.set(memberName(m), STATE_NAMES[word(fanout, m)] ?? String(word(fanout, m)));
  return out;
}

/** Overwrites every member word with HEALTH_UNKNOWN, so a word still unknown afterwards is one nothing rewrote. */
function markAllUnwritten(fanout: HealthFanout): void {
  for (const m of fanout.members) storeHealth(fanout.live, m.memberSlot, HEALTH_UNKNOWN);
}

/**
 * Ends the due overrides as the code did before the member index: in the
 * registry's order, each deleted and then every member it covers rewritten
 * after a pass over all members. The reference the batch is held to.
 */
function expireOneByOneWithFullPasses(r: Rig): void {
  for (const o of r.registry.overrides()) {
    if (o.expiresAtMs === null || o.expiresAtMs > r.clock.now) continue;
    r.registry.deleteOverride(o.target);
    for (const m of r.fanout.members) {
      if (covers(o.target, m.domain, m.server.address, m.server.region)) storeHealth(r.fanout.live, m.memberSlot, r.fanout.effective(m));
    }
  }
}

interface Captured {
  readonly expiry: OverrideExpiry;
  readonly lines: Record<string, unknown>[];
  readonly forgotten: string[];
}

/** An OverrideExpiry over `r` whose logger and state store are in-memory stand-ins; `onForget` runs inside each forget. */
function expiryOf(r: Rig, level: 'info' | 'error', onForget: (target: OverrideTarget) => void = () => {}): Captured {
  const lines: Record<string, unknown>[] = [];
  const forgotten: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const expiry = new OverrideExpiry({
    registry: r.registry,
    apply: (targets) => r.fanout.applyOverrides(targets),
    forget: async (target) => {
      forgotten.push(keyOfTarget(target));
      onForget(target);
    },
    logger: createLogger({ level, format: 'json' }, sink),
    now: () => r.clock.now,
  });
  return { expiry, lines, forgotten };
}

const SMALL = `
dns: { listen_address: "127.0.0.1:0", zones: [example.test] }
regions:
  - { name: eu, servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }] }
  - { name: us, servers: [{ address: 198.51.100.1 }, { address: 198.51.100.2 }, { address: 192.0.2.1, port: 8080 }] }
  - { name: ap, servers: [{ address: 203.0.113.1 }, { address: 203.0.113.2 }] }
domains:
  - { name: a.example.test, regions: [eu, us] }
  - { name: b.example.test, regions: [eu] }
  - { name: c.example.test, regions: [us, ap] }
  - { name: d.example.test, regions: [ap, eu] }
logging: { level: error }
`;

/** The checks' verdicts: mixed, so a word left by an ended override and one from the checks differ. */
const VERDICTS: readonly { region: string; address: string; port: number; state: number }[] = [
  { region: 'eu', address: '192.0.2.1', port: 80, state: HEALTH_HEALTHY },
  { region: 'eu', address: '192.0.2.2', port: 80, state: HEALTH_UNHEALTHY },
  { region: 'eu', address: '192.0.2.3', port: 80, state: HEALTH_HEALTHY },
  { region: 'us', address: '198.51.100.1', port: 80, state: HEALTH_UNHEALTHY },
  { region: 'us', address: '198.51.100.2', port: 80, state: HEALTH_HEALTHY },
  { region: 'us', address: '192.0.2.1', port: 8080, state: HEALTH_UNHEALTHY },
  { region: 'ap', address: '203.0.113.1', port: 80, state: HEALTH_UNHEALTHY },
  { region: 'ap', address: '203.0.113.2', port: 80, state: HEALTH_UNHEALTHY },
];

/** Ending together: every scope, overlapping on some members, two that cover nothing served. */
const ENDING: readonly Override[] = [
  override({ scope: 'domain', service: 'a.example.test', address: '192.0.2.1' }, false, DUE),
  override({ scope: 'domain', service: 'b.example.test', address: '192.0.2.2' }, true, DUE),
  override({ scope: 'server', address: '192.0.2.1' }, false, DUE),
  override({ scope: 'server', address: '198.51.100.1' }, true, DUE),
  override({ scope: 'region', region: 'ap' }, true, DUE),
  override({ scope: 'region', region: 'gone' }, false, DUE),
  override({ scope: 'server', address: '192.0.2.99' }, true, DUE),
];

/** Staying: what decides some of the members above once the ended ones are gone. */
const STAYING: readonly Override[] = [
  override({ scope: 'domain', service: 'c.example.test', address: '198.51.100.1' }, true, LATER),
  override({ scope: 'region', region: 'us' }, false, LATER),
  override({ scope: 'server', address: '203.0.113.2' }, true, null),
  override({ scope: 'domain', service: 'd.example.test', address: '192.0.2.3' }, false, null),
];

/** The small rig with VERDICTS written, ENDING and STAYING set (interleaved) and applied, then every word marked unwritten. */
function smallRig(): Rig {
  const r = rig(SMALL);
  for (const v of VERDICTS) {
    const server = r.registry.serverAt(v.region, v.address, v.port);
    assert.ok(server !== undefined && server !== null, `${v.region}/${v.address}:${v.port} is not in the SMALL config`);
    r.fanout.setServerHealth([server.slot], v.state);
  }
  for (let i = 0; i < Math.max(ENDING.length, STAYING.length); i++) {
    if (i < ENDING.length) r.registry.setOverride(ENDING[i]);
    if (i < STAYING.length) r.registry.setOverride(STAYING[i]);
  }
  r.fanout.apply();
  markAllUnwritten(r.fanout);
  r.clock.now = NOW + AFTER_MS;
  return r;
}

test('overrides of every scope ending together leave each member word as the checks and the remaining overrides decide, and touch no other', () => {
  const r = smallRig();
  const { expiry } = expiryOf(r, 'error');
  expiry.expireDue();
  // Members an ended override covered hold what decides them now; the others
  // were not rewritten (still the HEALTH_UNKNOWN marker).
  assert.deepEqual(Object.fromEntries(words(r.fanout)), {
    'a.example.test eu/192.0.2.1:80': 'healthy', // domain + server ended: the checks
    'a.example.test eu/192.0.2.2:80': 'unknown (not rewritten)',
    'a.example.test eu/192.0.2.3:80': 'unknown (not rewritten)',
    'a.example.test us/198.51.100.1:80': 'drained', // server ended: region us (false) decides
    'a.example.test us/198.51.100.2:80': 'unknown (not rewritten)',
    'b.example.test eu/192.0.2.1:80': 'healthy',
    'b.example.test eu/192.0.2.2:80': 'unhealthy', // (b, 192.0.2.2) ended: the checks
    'b.example.test eu/192.0.2.3:80': 'unknown (not rewritten)',
    'c.example.test us/198.51.100.1:80': 'healthy', // server ended: (c, 198.51.100.1) decides over region us
    'c.example.test us/198.51.100.2:80': 'unknown (not rewritten)',
    'c.example.test us/192.0.2.1:8080': 'drained',
    'c.example.test ap/203.0.113.1:80': 'unhealthy', // region ap ended: the checks
    'c.example.test ap/203.0.113.2:80': 'healthy', // region ap ended: server 203.0.113.2 decides
    'd.example.test ap/203.0.113.1:80': 'unhealthy',
    'd.example.test ap/203.0.113.2:80': 'healthy',
    'd.example.test eu/192.0.2.1:80': 'healthy',
    'd.example.test eu/192.0.2.2:80': 'unknown (not rewritten)',
    'd.example.test eu/192.0.2.3:80': 'unknown (not rewritten)',
  });
  assert.deepEqual(r.registry.overrides().map((o) => keyOfTarget(o.target)).sort(), STAYING.map((o) => keyOfTarget(o.target)).sort());
});

test('overrides ending together move the health epoch once, so workers rebuild their healthy lists once, not once per override', () => {
  const r = smallRig();
  const { expiry } = expiryOf(r, 'error');
  const before = Atomics.load(r.fanout.live, LIVE_EPOCH);
  assert.equal(expiry.expireDue().length, ENDING.length);
  assert.equal(Atomics.load(r.fanout.live, LIVE_EPOCH) - before, 1);
  // Nothing due: no write, no bump.
  assert.equal(expiry.expireDue().length, 0);
  assert.equal(Atomics.load(r.fanout.live, LIVE_EPOCH) - before, 1);
});

test('applyOverride rewrites exactly the members a target covers and says how many, for every scope', () => {
  const r = smallRig();
  r.clock.now = NOW;
  for (const o of [...ENDING, ...STAYING]) {
    markAllUnwritten(r.fanout);
    const covered = r.fanout.members.filter((m) => covers(o.target, m.domain, m.server.address, m.server.region));
    assert.equal(r.fanout.applyOverride(o.target), covered.length, `members touched for ${describeTarget(o.target)}`);
    for (const m of r.fanout.members) {
      const expected = covered.includes(m) ? r.fanout.effective(m) : HEALTH_UNKNOWN;
      assert.equal(word(r.fanout, m), expected, `${memberName(m)} after applyOverride(${describeTarget(o.target)})`);
    }
  }
});

test('the index follows setMembers: after a recompile, an override reaches the new members and not the dropped ones', () => {
  const r = smallRig();
  r.clock.now = NOW;
  const server: OverrideTarget = { scope: 'server', address: '192.0.2.1' };
  // A domain answers an address once: a.example.test has eu/192.0.2.1 and not us/192.0.2.1:8080.
  assert.equal(r.fanout.applyOverride(server), 4, 'members of 192.0.2.1 before the recompile');
  r.registry.applyConfig(parseConfigText(SMALL.replace('  - { name: b.example.test, regions: [eu] }\n', '').replace('{ address: 192.0.2.1, port: 8080 }', '{ address: 192.0.2.4 }'), 'expiry.yaml'));
  const view = r.registry.view();
  const snapshot = compileSnapshot(view, { generation: 2, serial: 2 });
  r.registry.commit(view);
  r.fanout.setMembers(snapshot.members);
  markAllUnwritten(r.fanout);
  assert.equal(r.fanout.applyOverride(server), 2, 'members of 192.0.2.1 after b.example.test and us/192.0.2.1:8080 went');
  assert.equal(r.fanout.applyOverride({ scope: 'server', address: '192.0.2.4' }), 2, 'members of the new server us/192.0.2.4');
  assert.deepEqual(
    r.fanout.members.filter((m) => word(r.fanout, m) !== HEALTH_UNKNOWN).map(memberName),
    ['a.example.test eu/192.0.2.1:80', 'a.example.test us/192.0.2.4:80', 'c.example.test us/192.0.2.4:80', 'd.example.test eu/192.0.2.1:80'],
  );
});

test('each ended override is logged, counted and forgotten once, in the registry\'s order, after its members were rewritten', async () => {
  const r = smallRig();
  const unwrittenAtForget: string[] = [];
  const { expiry, lines, forgotten } = expiryOf(r, 'info', (target) => {
    // By the time the store is told, the words this override covered hold their final values.
    for (const m of r.fanout.members) {
      if (covers(target, m.domain, m.server.address, m.server.region) && word(r.fanout, m) !== r.fanout.effective(m)) unwrittenAtForget.push(memberName(m));
    }
  });
  const order = r.registry.overrides().filter((o) => o.expiresAtMs === DUE).map((o) => keyOfTarget(o.target));
  const due = expiry.expireDue();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(due.map((o) => keyOfTarget(o.target)), order);
  assert.equal(expiry.expired, ENDING.length);
  assert.deepEqual(forgotten, order);
  assert.deepEqual(unwrittenAtForget, []);
  assert.deepEqual(
    lines.map((l) => [l.msg, l.target, l.healthy]),
    due.map((o) => ['override expired; the health checks decide again', describeTarget(o.target), o.healthy]),
  );
  // Expiring again finds nothing: each override ends once.
  assert.deepEqual(expiry.expireDue(), []);
  assert.equal(expiry.expired, ENDING.length);
});

/**
 * Servers spread over `regions` regions, with some addresses in two regions
 * (another port); each domain lists a rotation of the regions, every other
 * one leaving the last out unless `allRegions`.
 */
function wideYaml(servers: number, regions: number, domains: number, allRegions = false): string {
  const addr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  let y = 'dns: { listen_address: "127.0.0.1:0", zones: [example.test] }\nregions:\n';
  for (let g = 0; g < regions; g++) {
    y += `  - name: r${g}\n    health_check: { type: none }\n    servers:\n`;
    for (let i = g; i < servers; i += regions) y += `      - { address: ${addr(i)} }\n`;
    // The first addresses of the previous region again, on another port: a server-scope override covers both.
    for (let i = (g + regions - 1) % regions; i < Math.min(servers, 8 * regions); i += regions) y += `      - { address: ${addr(i)}, port: 8080 }\n`;
  }
  y += 'domains:\n';
  const all = Array.from({ length: regions }, (_, g) => `r${g}`);
  for (let d = 0; d < domains; d++) {
    const mine = all.slice(d % regions).concat(all.slice(0, d % regions)).slice(0, allRegions || d % 2 === 0 ? regions : regions - 1);
    y += `  - { name: d${d}.example.test, regions: [${mine.join(', ')}] }\n`;
  }
  return `${y}logging: { level: error }\n`;
}

/** Random overrides of every scope over `r`'s members (and a few names nothing serves), a third of them ending before now + AFTER_MS. */
function randomOverrides(r: Rig, count: number, seed: number): Override[] {
  const rand = seededRandom(seed);
  const members = r.fanout.members;
  const regions = [...new Set(members.map((m) => m.server.region)), 'gone'];
  const out: Override[] = [];
  for (let i = 0; i < count; i++) {
    const m = members[Math.floor(rand() * members.length)];
    const pick = rand();
    const target: OverrideTarget =
      pick < 0.45 ? { scope: 'domain', service: m.domain, address: m.server.address }
      : pick < 0.85 ? { scope: 'server', address: rand() < 0.05 ? '192.0.2.250' : m.server.address }
      : { scope: 'region', region: regions[Math.floor(rand() * regions.length)] };
    const end = rand();
    out.push(override(target, rand() < 0.5, end < 0.34 ? DUE : end < 0.67 ? LATER : null));
  }
  return out;
}

test('many overrides of mixed scopes ending together leave every member word as ending them one at a time with full passes did', () => {
  for (const seed of [1, 2, 3]) {
    const batch = rig(wideYaml(60, 4, 6));
    const reference = rig(wideYaml(60, 4, 6));
    const rand = seededRandom(seed + 100);
    const states = [HEALTH_HEALTHY, HEALTH_UNHEALTHY, HEALTH_UNKNOWN];
    for (const slot of new Set(batch.fanout.members.map((m) => m.server.slot))) {
      const state = states[Math.floor(rand() * states.length)];
      batch.fanout.setServerHealth([slot], state);
      reference.fanout.setServerHealth([slot], state);
    }
    for (const o of randomOverrides(batch, 400, seed)) {
      batch.registry.setOverride(o);
      reference.registry.setOverride(o);
    }
    const due = batch.registry.overrides().filter((o) => o.expiresAtMs === DUE).length;
    assert.ok(due > 50, `seed ${seed}: only ${due} overrides end together; the case needs many`);
    for (const r of [batch, reference]) {
      r.fanout.apply();
      // A marker no server verdict uses here: a word still holding it was not rewritten.
      for (const m of r.fanout.members) storeHealth(r.fanout.live, m.memberSlot, HEALTH_DRAINED + 10);
      r.clock.now = NOW + AFTER_MS;
    }
    expiryOf(batch, 'error').expiry.expireDue();
    expireOneByOneWithFullPasses(reference);
    assert.deepEqual(words(batch.fanout), words(reference.fanout), `seed ${seed}: member words after the batch ended`);
    assert.deepEqual(batch.registry.overrides(), reference.registry.overrides(), `seed ${seed}: overrides left`);
  }
});

test('ending 31 500 overrides over 30 000 members takes well under 2 s on the main thread', (t: TestContext) => {
  // 1 500 servers × 20 domains, one override per (domain, address), per
  // address and per region, all ending together. A pass over every member
  // per override (the old applyOverride) took over 5 s here; the member
  // index takes tens of milliseconds. The bound leaves room for a slow,
  // shared machine while still failing the quadratic walk.
  const r = rig(wideYaml(1500, 4, 20, true));
  const targets = new Map<string, OverrideTarget>();
  for (const m of r.fanout.members) {
    const own: OverrideTarget = { scope: 'domain', service: m.domain, address: m.server.address };
    const address: OverrideTarget = { scope: 'server', address: m.server.address };
    const region: OverrideTarget = { scope: 'region', region: m.server.region };
    for (const target of [own, address, region]) targets.set(keyOfTarget(target), target);
  }
  let i = 0;
  for (const target of targets.values()) r.registry.setOverride(override(target, i++ % 2 === 0, DUE));
  r.fanout.apply();
  r.clock.now = NOW + AFTER_MS;
  const { expiry } = expiryOf(r, 'error');
  const started = performance.now();
  const due = expiry.expireDue();
  const tookMs = performance.now() - started;
  t.diagnostic(`${r.fanout.members.length} members, ${due.length} overrides ended in ${tookMs.toFixed(0)} ms`);
  assert.equal(due.length, targets.size);
  assert.ok(r.fanout.members.length >= 30_000 && due.length >= 31_000, `the case shrank: ${r.fanout.members.length} members, ${due.length} overrides`);
  assert.ok(tookMs < 2_000, `ending ${due.length} overrides over ${r.fanout.members.length} members took ${tookMs.toFixed(0)} ms; expected under 2000 ms (a pass over every member per override?)`);
  // Every member is back to its server's verdict (health_check none: nothing wrote one, so unknown).
  for (const m of r.fanout.members) assert.equal(word(r.fanout, m), HEALTH_UNKNOWN, `${memberName(m)} after every override ended`);
});

/** One member, the checks saying unhealthy, overridden healthy until `end`; the expiry on the rig's clock, its timer armed. */
function jumpRig(end: number): { r: Rig; m: MemberModel; target: OverrideTarget; expiry: OverrideExpiry } {
  const r = rig(SMALL);
  const server = r.registry.serverAt('eu', '192.0.2.2', 80);
  assert.ok(server !== undefined && server !== null);
  r.fanout.setServerHealth([server.slot], HEALTH_UNHEALTHY);
  const target: OverrideTarget = { scope: 'domain', service: 'b.example.test', address: '192.0.2.2' };
  r.registry.setOverride(override(target, true, end));
  r.fanout.applyOverride(target);
  const m = r.fanout.members.find((x) => x.domain === 'b.example.test' && x.server === server) as MemberModel;
  const { expiry } = expiryOf(r, 'error');
  expiry.schedule();
  return { r, m, target, expiry };
}

/** Polls every 50 ms for up to `ms`: checks that DNS's word and the registry's verdict agree each time, returns how long `done` took (or Infinity). */
async function watch(j: ReturnType<typeof jumpRig>, ms: number, done: () => boolean): Promise<number> {
  const started = performance.now();
  for (;;) {
    const held = j.r.registry.overrideFor(j.m.domain, j.m.server) !== null;
    const dnsOverridden = word(j.r.fanout, j.m) === HEALTH_HEALTHY;
    assert.equal(dnsOverridden, held, `DNS ${dnsOverridden ? 'applies' : 'no longer applies'} the override while the registry (API, explain) says it is ${held ? 'in force' : 'gone'}`);
    if (done()) return performance.now() - started;
    if (performance.now() - started > ms) return Infinity;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a wall-clock jump forward past an override\'s end ends it within about a second, and DNS and the API agree meanwhile', async () => {
  const j = jumpRig(NOW + 3_600_000);
  try {
    assert.equal(word(j.r.fanout, j.m), HEALTH_HEALTHY, 'the override decides before the jump');
    j.r.clock.now = NOW + 7_200_000; // NTP steps the clock an hour past the end; the monotonic timer still waits an hour
    const took = await watch(j, 2_500, () => j.r.registry.overrideAt(j.target) === null);
    assert.ok(took < 1_600, `the override ended ${took === Infinity ? 'not within 2.5 s' : `after ${took.toFixed(0)} ms`} of the wall clock passing its end; expected within about a second`);
    assert.equal(word(j.r.fanout, j.m), HEALTH_UNHEALTHY, 'DNS follows the checks again');
  } finally {
    j.expiry.stop();
  }
});

test('a wall-clock jump backward keeps an override until the wall clock reaches its end, then ends it within about a second', async () => {
  const j = jumpRig(NOW + 500);
  try {
    j.r.clock.now = NOW - 3_600_000; // stepped back an hour: the end is an hour away again
    assert.equal(await watch(j, 1_200, () => false), Infinity);
    assert.notEqual(j.r.registry.overrideAt(j.target), null, 'still in force: its wall-clock end has not come');
    j.r.clock.now = NOW + 600; // the wall clock reaches the end
    const took = await watch(j, 2_500, () => j.r.registry.overrideAt(j.target) === null);
    assert.ok(took < 1_600, `the override ended ${took === Infinity ? 'not within 2.5 s' : `after ${took.toFixed(0)} ms`} of the wall clock reaching its end; expected within about a second`);
    assert.equal(word(j.r.fanout, j.m), HEALTH_UNHEALTHY);
  } finally {
    j.expiry.stop();
  }
});
