// An algorithm rollover (ECDSAP256SHA256 → ED25519, docs/dnssec.md: "a
// rollover is also how a zone changes algorithm"), in the order of RFC 6781
// §4.1.4 (conservative algorithm rollover) and RFC 6840 §5.11: the new
// algorithm signs every RRset before its DNSKEY is published (so no resolver
// holds the new DNSKEY RRset beside cached RRsets whose RRSIGs lack the new
// algorithm), joins the DNSKEY RRset after the zone's largest TTL, signs as
// the zone's key after the DNSKEY TTL; at finish the old DNSKEY leaves the
// RRset first and the old algorithm stops signing a DNSKEY TTL later. A
// poller records what the server answers over DNS through the whole rollover
// and the phases must come in that order, at those times. Unbound with
// harden-algo-downgrade: yes (a signature of every algorithm in the DS set,
// RFC 4035 §2.2) and delv judge every phase.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Writable } from 'node:stream';
import type dnsPacket from 'dns-packet';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import type { DnssecKeyInfo } from '../../src/dnssec/keys.ts';
import { ask } from '../helpers/dns-client.ts';
import { delvAnchor, missingTool, signedZoneYaml, tool, unboundConfig } from './helpers.ts';

// The three timed phases (presigned, published, withdrawing) each hold one
// judgement: two DNS observations and eight validator runs at once, 0.3-0.9 s
// with both cores busy and up to 2 s with the machine overloaded (load 14);
// every judgement checks that it stayed within its phase.
/** How long a published key waits in the DNSKEY RRset before it signs, and a withdrawn key keeps signing (the DNSKEY TTL, shortened). */
const SWITCH_AFTER_MS = 3500;
/** How long a new algorithm's key signs before it joins the DNSKEY RRset (the zone's largest TTL, shortened). */
const PUBLISH_AFTER_MS = 3500;
/** How long past its due time a phase may take to show over DNS on a loaded machine before the test gives up. */
const PHASE_LATE_MS = 10_000;
const ECDSA = 13;
const ED25519 = 15;

/** The algorithms of a section's RRSIGs over `type`, in order. */
function rrsigAlgorithms(section: readonly dnsPacket.Answer[] | undefined, type: string): number[] {
  const out: number[] = [];
  for (const r of (section ?? []) as unknown as { type: string; data: { typeCovered?: string; algorithm?: number } }[]) {
    if (r.type === 'RRSIG' && r.data.typeCovered === type) out.push(r.data.algorithm ?? -1);
  }
  return out;
}

/** The algorithms of the DNSKEY records of a section, sorted. */
function dnskeyAlgorithms(section: readonly dnsPacket.Answer[] | undefined): number[] {
  const out: number[] = [];
  for (const r of (section ?? []) as unknown as { type: string; data: { algorithm?: number } }[]) if (r.type === 'DNSKEY') out.push(r.data.algorithm ?? -1);
  return out.sort();
}

test(
  'an algorithm rollover signs with the new algorithm before publishing its DNSKEY and unpublishes the old DNSKEY before it stops signing, secure throughout for a resolver with either DS and harden-algo-downgrade',
  { skip: missingTool('unbound-host', 'unbound-host') || missingTool('delv', 'bind9-dnsutils') },
  async (t) => {
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    const logger = createLogger({ level: 'error', format: 'json' }, quiet);
    const store = new MemoryStore();
    // The zone's first key is ECDSA; the config then asks for Ed25519, so the rollover changes the algorithm.
    const first = await Overwatch.start(parseConfigText(signedZoneYaml({ algorithm: 'ECDSAP256SHA256' }), 'test.yaml'), logger, { store, healthChecks: 'off' });
    const old = first.keyring?.zones.get('example.test')?.active.info;
    await first.stop(200);
    assert.ok(old);
    const overwatch = await Overwatch.start(parseConfigText(signedZoneYaml({ algorithm: 'ED25519' }), 'test.yaml'), logger, {
      store, healthChecks: 'off', rolloverSwitchAfterMs: SWITCH_AFTER_MS, rolloverPublishAfterMs: PUBLISH_AFTER_MS,
    });
    const dir = await mkdtemp(join(tmpdir(), 'opengslb-alg-roll-'));
    let polling = true;
    let poller: Promise<void> = Promise.resolve();
    t.after(async () => {
      polling = false;
      await poller;
      await overwatch.stop(200);
      await rm(dir, { recursive: true, force: true });
    });
    const failures: string[] = [];
    /**
     * Asks delv and unbound-host (harden-algo-downgrade) with `anchor` as the
     * only trust, all questions at once (each run is its own process and
     * resolver); collects what did not validate, in question order.
     */
    const judge = async (phase: string, anchor: DnssecKeyInfo): Promise<void> => {
      const label = `${phase}-${anchor.keyTag}`;
      await writeFile(join(dir, `anchor-${label}.conf`), delvAnchor(anchor));
      await writeFile(join(dir, `unbound-${label}.conf`), unboundConfig(anchor, overwatch.port).replace('server:\n', 'server:\n  harden-algo-downgrade: yes\n'));
      const verdicts = await Promise.all([['app.example.test', 'A'], ['example.test', 'DNSKEY'], ['example.test', 'SOA'], ['nothing.example.test', 'A']].flatMap(([name, type]) => [
        tool('delv', ['@127.0.0.1', '-p', String(overwatch.port), '-a', join(dir, `anchor-${label}.conf`), '+root=example.test', name, type])
          .then((d) => (/^; (negative response, )?fully validated$/m.test(d) ? null : `${label}: delv ${name} ${type}:\n${d}`)),
        tool('unbound-host', ['-C', join(dir, `unbound-${label}.conf`), '-v', '-t', type, name])
          .then((u) => (/\(secure\)/.test(u) && !/BOGUS/.test(u) ? null : `${label}: unbound-host ${name} ${type}:\n${u}`)),
      ]));
      for (const v of verdicts) if (v !== null) failures.push(v);
    };
    /** What the server answers now: the DNSKEY RRset's algorithms, and the algorithms of the RRSIGs over it, over an A answer, over a denial's SOA and NSEC. */
    const observe = async (transport: 'udp' | 'tcp' = 'udp'): Promise<string> => {
      const k = await ask(overwatch.port, 'example.test', 'DNSKEY', { edns: { do: true, udpSize: 4096 } }, transport);
      const a = await ask(overwatch.port, 'app.example.test', 'A', { edns: { do: true, udpSize: 4096 } }, transport);
      const nx = await ask(overwatch.port, 'nothing.example.test', 'A', { edns: { do: true, udpSize: 4096 } }, transport);
      const data = rrsigAlgorithms(a.answers, 'A').sort();
      // The poller's three questions may straddle a snapshot change; the phase checks (TCP) ask within one phase.
      if (transport === 'tcp') {
        assert.deepEqual(rrsigAlgorithms(nx.authorities, 'SOA').sort(), data, `${transport}: the denial's SOA is signed as the A answer`);
        assert.deepEqual(rrsigAlgorithms(nx.authorities, 'NSEC').sort(), data, `${transport}: the denial's NSEC is signed as the A answer`);
      }
      return `dnskey=${dnskeyAlgorithms(k.answers).join(',')} dnskey-sigs=${rrsigAlgorithms(k.answers, 'DNSKEY').sort().join(',')} data-sigs=${data.join(',')}`;
    };
    const phaseNow = (): string => overwatch.rolloverStatus('example.test').phase;
    /**
     * Runs `judges` within one phase and proves it: the server answers `view`
     * and reports `phase` before and after (views and phases only move
     * forward, and a step changes the reported phase before the snapshot
     * that shows it, so equal before and after means the judges saw this
     * phase only). Fails when they straddled a phase change.
     */
    const inPhase = async (name: string, view: string, phase: string, judges: () => Promise<unknown>): Promise<void> => {
      assert.equal(phaseNow(), phase, `${name}: rollover phase before the judges`);
      assert.equal(await observe('tcp'), view, `${name}: answers before the judges`);
      const beganAt = Date.now();
      await judges();
      assert.equal(phaseNow(), phase, `${name}: the judges (${Date.now() - beganAt} ms) ended within the phase`);
      assert.equal(await observe('tcp'), view, `${name}: the judges (${Date.now() - beganAt} ms) ended within the phase's answers`);
      t.diagnostic(`${name}: judged in ${Date.now() - beganAt} ms`);
    };
    /**
     * Waits until the server answers `view` over DNS, failing after
     * `deadlineMs` (epoch). Asks as the poller does: these questions may
     * straddle the snapshot change awaited (the DNSKEY question is asked
     * first, so the view matches only once every question saw the change).
     */
    const untilView = async (view: string, deadlineMs: number): Promise<void> => {
      for (;;) {
        const now = await observe();
        if (now === view) return;
        assert.ok(Date.now() < deadlineMs, `still "${now}", expected "${view}"`);
        await delay(50);
      }
    };
    const keyInfo = (tag: number): DnssecKeyInfo => {
      const k = overwatch.keyring?.zones.get('example.test')?.keys.find((x) => x.info.keyTag === tag);
      assert.ok(k, `key ${tag}`);
      return k.info;
    };

    // The resolver holds the old (ECDSA) DS: it trusts the old key only, and refuses an algorithm downgrade.
    await inPhase('before', 'dnskey=13 dnskey-sigs=13 data-sigs=13', 'none', () => judge('before', old));

    // Every 100 ms, what the server answers, with the time it changed: a
    // change counts once two polls in a row saw it (one poll's questions may
    // straddle a snapshot change).
    const seen: { atMs: number; what: string }[] = [];
    poller = (async () => {
      let previous: { atMs: number; what: string } | null = null;
      while (polling) {
        const now = { atMs: Date.now(), what: await observe() };
        if (previous?.what === now.what && seen.at(-1)?.what !== now.what) seen.push(previous);
        previous = now;
        await delay(100);
      }
    })();
    while (seen.length === 0) await delay(50);

    // Start: the new algorithm signs every RRset (the DNSKEY RRset too) but its DNSKEY is not published yet.
    const started = await overwatch.rolloverStart('example.test');
    const startedAt = Date.now();
    assert.equal(started.phase, 'published');
    assert.ok(started.new_key !== null);
    const fresh = keyInfo(started.new_key);
    assert.equal(fresh.algorithm, ED25519);
    assert.ok(fresh.publishAtMs !== undefined && fresh.publishAtMs >= startedAt - 1000 + PUBLISH_AFTER_MS - 1000, `publishAtMs ${fresh.publishAtMs}`);
    assert.match(started.next_step, /joins the DNSKEY RRset at/);
    assert.deepEqual(overwatch.dnssecDs('example.test').map((d) => d.key_tag), [old.keyTag], 'no DS for a key not in the DNSKEY RRset');
    await inPhase('presigned', 'dnskey=13 dnskey-sigs=13,15 data-sigs=13,15', 'published', () => judge('presigned', old));

    // Published: the DNSKEY RRset has both keys once the publish time came.
    await untilView('dnskey=13,15 dnskey-sigs=13,15 data-sigs=13,15', (fresh.publishAtMs ?? 0) + PHASE_LATE_MS);
    assert.ok(Date.now() >= (fresh.publishAtMs ?? 0), 'the new DNSKEY is published no sooner than its publish time');
    await inPhase('published', 'dnskey=13,15 dnskey-sigs=13,15 data-sigs=13,15', 'published', () => judge('published', old));

    // Signing: the new key leads after the DNSKEY TTL; resolvers with either DS validate.
    const switchAt = Date.parse(started.switch_at ?? '');
    assert.ok(switchAt >= (fresh.publishAtMs ?? 0) + SWITCH_AFTER_MS, `switch_at ${started.switch_at} is a DNSKEY TTL after the publication`);
    while (phaseNow() !== 'signing') {
      assert.ok(Date.now() < switchAt + PHASE_LATE_MS, `the new key never started signing (phase ${phaseNow()})`);
      await delay(50);
    }
    assert.ok(Date.now() >= switchAt, 'the new key signs as the zone\'s key no sooner than its switch time');
    await inPhase('signing', 'dnskey=13,15 dnskey-sigs=13,15 data-sigs=13,15', 'signing', () => Promise.all([judge('signing', old), judge('signing', fresh)]));

    // Finish: the old DNSKEY leaves the RRset; the old algorithm still signs everything until the DNSKEY TTL has passed.
    const finished = await overwatch.rolloverFinish('example.test');
    const finishedAt = Date.now();
    assert.equal(finished.phase, 'withdrawing');
    assert.deepEqual(finished.old_keys, [old.keyTag]);
    assert.equal(keyInfo(old.keyTag).state, 'withdrawn');
    await inPhase('withdrawn', 'dnskey=15 dnskey-sigs=13,15 data-sigs=13,15', 'withdrawing', async () => {
      await judge('withdrawn', fresh);
      await assert.rejects(overwatch.rolloverStart('example.test'), /already running \(withdrawing\)/);
    });

    // Retired: only the new algorithm signs.
    await untilView('dnskey=15 dnskey-sigs=15 data-sigs=15', finishedAt + SWITCH_AFTER_MS + PHASE_LATE_MS);
    assert.equal(keyInfo(old.keyTag).state, 'retired');
    await inPhase('finished', 'dnskey=15 dnskey-sigs=15 data-sigs=15', 'none', () => judge('finished', fresh));
    // The poller takes a phase once two polls in a row saw it: it must have the last one too before it stops.
    const lastPollDeadline = Date.now() + PHASE_LATE_MS;
    while (seen.at(-1)?.what !== 'dnskey=15 dnskey-sigs=15 data-sigs=15') {
      assert.ok(Date.now() < lastPollDeadline, `the poller never confirmed the last phase: ${JSON.stringify(seen)}`);
      await delay(50);
    }
    polling = false;
    await poller;

    // Over DNS, the phases came in this order and no sooner than due.
    assert.deepEqual(seen.map((s) => s.what), [
      'dnskey=13 dnskey-sigs=13 data-sigs=13',
      'dnskey=13 dnskey-sigs=13,15 data-sigs=13,15',
      'dnskey=13,15 dnskey-sigs=13,15 data-sigs=13,15',
      'dnskey=15 dnskey-sigs=13,15 data-sigs=13,15',
      'dnskey=15 dnskey-sigs=15 data-sigs=15',
    ]);
    assert.ok(seen[2].atMs >= (fresh.publishAtMs ?? 0), 'the new DNSKEY is published no sooner than its publish time');
    assert.ok(seen[4].atMs >= finishedAt + SWITCH_AFTER_MS - 50, 'the old algorithm stops signing no sooner than a DNSKEY TTL after it left the DNSKEY RRset');
    assert.deepEqual(failures, []);
  },
);
