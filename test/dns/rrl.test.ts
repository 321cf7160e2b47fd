// The response-rate-limiting accounts (src/dns/rrl.ts): BIND's credit
// scheme on a simulated clock, the per-kind and per-prefix keys, exempt
// networks, the bounded table, and one account shared exactly by real worker
// threads hammering it at once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createRrlClock, createRrlTable, ENTRY_WORDS, RateLimiter, RRL_DROP, RRL_KIND_ERROR, RRL_KIND_NXDOMAIN, RRL_KIND_RESPONSE, RRL_PASS, RRL_SLIP, rrlEntriesFor, type RrlSettings,
} from '../../src/dns/rrl.ts';
import { ipToBytes } from '../../src/lib/ip.ts';
import { raceWorkers } from '../helpers/race-workers.ts';

const T0 = 1_800_000_000;
const APP = Uint8Array.of(3, 0x61, 0x70, 0x70, 4, 0x74, 0x65, 0x73, 0x74, 0);
const WWW = Uint8Array.of(3, 0x77, 0x77, 0x77, 4, 0x74, 0x65, 0x73, 0x74, 0);

function settings(over: Partial<RrlSettings> = {}): RrlSettings {
  return { rates: [5, 5, 5], windowSec: 2, slip: 2, ipv4PrefixLength: 24, ipv6PrefixLength: 56, exempt: [], table: createRrlTable(1024), clock: createRrlClock(), ...over };
}

/** Charges `n` answers for APP from `ip` at second `t`; returns the verdicts. */
function charge(l: RateLimiter, n: number, t: number, ip = '192.0.2.1', kind = RRL_KIND_RESPONSE, name = APP): number[] {
  const bytes = ipToBytes(ip);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(l.charge(kind, bytes, bytes.length, name, 0, name.length, 1, t));
  return out;
}

const count = (v: number[], what: number): number => v.filter((x) => x === what).length;

test('an account holds `rate` credits: the first 5 answers pass, then every 2nd limited one slips and the rest are dropped', () => {
  const l = new RateLimiter(settings());
  const v = charge(l, 15, T0);
  assert.deepEqual(v.slice(0, 5), [RRL_PASS, RRL_PASS, RRL_PASS, RRL_PASS, RRL_PASS]);
  assert.deepEqual(v.slice(5), [RRL_DROP, RRL_SLIP, RRL_DROP, RRL_SLIP, RRL_DROP, RRL_SLIP, RRL_DROP, RRL_SLIP, RRL_DROP, RRL_SLIP]);
});

test('debt is capped at window × rate: a client that stops is answered again after `window` seconds, not before', () => {
  const l = new RateLimiter(settings());
  charge(l, 1000, T0); // deep in debt: capped at -10 (window 2 × rate 5)
  assert.equal(count(charge(l, 1, T0 + 1), RRL_PASS), 0, 'one second later the account still owes (-10 + 5 < 0)');
  // The probe above cost a credit: -6 at T0+1; +10 over two more seconds → 4 left, so 4 pass.
  assert.equal(count(charge(l, 10, T0 + 3), RRL_PASS), 4);
  // A long pause refills at most to `rate`.
  assert.equal(count(charge(l, 10, T0 + 100), RRL_PASS), 5);
});

test('accounts are kept in whole seconds: after a flood in second T, the first answer is in second T + window + 1 (BIND\'s arithmetic), a wait of window to window + 1 s', () => {
  for (const windowSec of [1, 2, 15]) {
    const early = new RateLimiter(settings({ windowSec }));
    charge(early, 1000, T0);
    assert.equal(count(charge(early, 1, T0 + windowSec), RRL_PASS), 0, `window ${windowSec}: second T + window still owes (0 credits left, the answer would be -1)`);
    const onTime = new RateLimiter(settings({ windowSec }));
    charge(onTime, 1000, T0);
    assert.equal(count(charge(onTime, 1, T0 + windowSec + 1), RRL_PASS), 1, `window ${windowSec}: answered in second T + window + 1`);
  }
});

test('under a steady flood above the rate nothing passes after the first second (BIND: limited while the account is negative)', () => {
  const l = new RateLimiter(settings({ rates: [5, 5, 5], windowSec: 1 }));
  let passed = 0;
  for (let s = 0; s < 10; s++) passed += count(charge(l, 50, T0 + s), RRL_PASS);
  assert.equal(passed, 5);
});

test('a client querying at the rate is never limited', () => {
  const l = new RateLimiter(settings());
  for (let s = 0; s < 20; s++) assert.equal(count(charge(l, 5, T0 + s), RRL_PASS), 5, `second ${s}`);
});

test('accounts are per /24 (IPv4) and per /56 (IPv6): a neighbour in the prefix shares it, the next prefix does not', () => {
  const l = new RateLimiter(settings());
  charge(l, 5, T0, '192.0.2.1');
  assert.equal(count(charge(l, 1, T0, '192.0.2.200'), RRL_PASS), 0, 'same /24');
  assert.equal(count(charge(l, 5, T0, '192.0.3.1'), RRL_PASS), 5, 'next /24');
  charge(l, 5, T0, '2001:db8:0:1::1');
  assert.equal(count(charge(l, 1, T0, '2001:db8:0:ff::1'), RRL_PASS), 0, 'same /56');
  assert.equal(count(charge(l, 5, T0, '2001:db8:0:100::1'), RRL_PASS), 5, 'next /56');
});

test('accounts are per kind and name: a flood of one name (or of NXDOMAINs) leaves other names and kinds their credits', () => {
  const l = new RateLimiter(settings({ rates: [5, 3, 2] }));
  charge(l, 50, T0, '192.0.2.1', RRL_KIND_NXDOMAIN, APP);
  assert.equal(count(charge(l, 5, T0, '192.0.2.1', RRL_KIND_RESPONSE, APP), RRL_PASS), 5, 'answers for app');
  assert.equal(count(charge(l, 10, T0, '192.0.2.1', RRL_KIND_RESPONSE, WWW), RRL_PASS), 5, 'answers for www');
  assert.equal(count(charge(l, 10, T0, '192.0.2.2', RRL_KIND_ERROR, new Uint8Array(0)), RRL_PASS), 2, 'errors at their own rate');
  assert.equal(count(charge(l, 10, T0, '192.0.3.1', RRL_KIND_NXDOMAIN, APP), RRL_PASS), 3, 'NXDOMAIN at its own rate');
});

test('a rate of 0 does not limit that kind; slip 0 drops every limited response, slip 1 truncates every one', () => {
  assert.equal(count(charge(new RateLimiter(settings({ rates: [0, 5, 5] })), 100, T0), RRL_PASS), 100);
  assert.equal(count(charge(new RateLimiter(settings({ slip: 0 })), 20, T0), RRL_DROP), 15);
  assert.equal(count(charge(new RateLimiter(settings({ slip: 1 })), 20, T0), RRL_SLIP), 15);
});

test('exempt_clients: networks matched by prefix', () => {
  const l = new RateLimiter(settings({ exempt: [{ bytes: ipToBytes('198.51.100.0'), prefix: 22 }, { bytes: ipToBytes('2001:db8::'), prefix: 32 }] }));
  const yes = ['198.51.100.1', '198.51.103.255', '2001:db8:ffff::1'];
  const no = ['198.51.104.0', '192.0.2.1', '2001:db9::1'];
  for (const a of yes) assert.equal(l.exempt(ipToBytes(a), ipToBytes(a).length), true, a);
  for (const a of no) assert.equal(l.exempt(ipToBytes(a), ipToBytes(a).length), false, a);
});

test('the table never grows: a flood from a million sources keeps it at its size, and a real client is limited again right after', () => {
  const s = settings({ table: createRrlTable(rrlEntriesFor(4096)) });
  const l = new RateLimiter(s);
  const words = s.table.length;
  const ip = new Uint8Array(4);
  for (let i = 0; i < 1_000_000; i++) {
    ip[0] = 10 + (i >>> 24);
    ip[1] = (i >>> 16) & 0xff;
    ip[2] = (i >>> 8) & 0xff;
    l.charge(RRL_KIND_RESPONSE, ip, 4, APP, 0, APP.length, 1, T0);
  }
  assert.equal(s.table.length, words);
  assert.equal(s.table.length, 4096 * ENTRY_WORDS);
  assert.equal(count(charge(l, 10, T0, '192.0.2.1'), RRL_PASS), 5);
});

test('table sizes are powers of two within bounds', () => {
  assert.equal(rrlEntriesFor(1), 1024);
  assert.equal(rrlEntriesFor(65536), 65536);
  assert.equal(rrlEntriesFor(65537), 131072);
});

test('one account, four real threads charging it at once: the rate holds for all of them together', async () => {
  const rate = 2000;
  const s = settings({ rates: [rate, rate, rate], windowSec: 1, slip: 2, table: createRrlTable(1024) });
  const ms = 1000;
  // One second for every charge: a test of the shared balance under races,
  // not of the clock (with the wall clock, threads held off the CPU past a
  // second boundary by a busy machine let a second's credit in: 2 777 passed
  // once in a full test run).
  const nowSec = Math.floor(Date.now() / 1000);
  const all = await raceWorkers<{ passed: number; slipped: number; dropped: number }>(new URL('./rrl-charger.ts', import.meta.url), Array.from({ length: 4 }, () => ({ settings: s, ms, nowSec })));
  const passed = all.reduce((a, r) => a + r.passed, 0);
  const slipped = all.reduce((a, r) => a + r.slipped, 0);
  const dropped = all.reduce((a, r) => a + r.dropped, 0);
  assert.ok(slipped + dropped > 10 * rate, `the threads flooded (${passed + slipped + dropped} charges)`);
  // A flood far above the rate gets the first `rate` of the second and then nothing.
  // Threads that meet the new account at once may each set it up, so a
  // handful more can pass.
  assert.ok(passed >= rate && passed <= rate + 8, `passed ${passed}, expected ${rate} (+ at most a few for races)`);
  assert.ok(Math.abs(slipped - dropped) <= 4, `slip 2: as many slipped (${slipped}) as dropped (${dropped})`);
});
