// An algorithm rollover (ECDSAP256SHA256 → ED25519, docs/dnssec.md: "a
// rollover is also how a zone changes algorithm") judged by Unbound with
// harden-algo-downgrade: yes, which asks for a signature of every algorithm
// in the DS set (RFC 4035 §2.2: every RRset is signed with each algorithm of
// the apex DNSKEY RRset; RFC 6781 §4.1.4). So from the start of the rollover
// (the new key only published) until its finish, the data carry an RRSIG of
// each algorithm: a resolver that holds the old DS (the rollover's step 3 has
// not reached it yet) and hardens against downgrades stays secure, and after
// finish only the new algorithm signs. delv (no such check) judges too.

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

const SWITCH_AFTER_MS = 3000;
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

test(
  'an algorithm rollover keeps answers secure for a resolver with the old DS and harden-algo-downgrade (every algorithm signs until finish)',
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
    const overwatch = await Overwatch.start(parseConfigText(signedZoneYaml({ algorithm: 'ED25519' }), 'test.yaml'), logger, { store, healthChecks: 'off', rolloverSwitchAfterMs: SWITCH_AFTER_MS });
    const dir = await mkdtemp(join(tmpdir(), 'opengslb-alg-roll-'));
    t.after(async () => {
      await overwatch.stop(200);
      await rm(dir, { recursive: true, force: true });
    });
    const failures: string[] = [];
    /** Asks delv and unbound-host (harden-algo-downgrade) with `anchor` as the only trust; collects what did not validate. */
    const judge = async (phase: string, anchor: DnssecKeyInfo): Promise<void> => {
      const label = `${phase}-${anchor.keyTag}`;
      await writeFile(join(dir, `anchor-${label}.conf`), delvAnchor(anchor));
      await writeFile(join(dir, `unbound-${label}.conf`), unboundConfig(anchor, overwatch.port).replace('server:\n', 'server:\n  harden-algo-downgrade: yes\n'));
      for (const [name, type] of [['app.example.test', 'A'], ['example.test', 'DNSKEY'], ['example.test', 'SOA'], ['example.test', 'NS'], ['app.example.test', 'AAAA'], ['nothing.example.test', 'A']]) {
        const d = await tool('delv', ['@127.0.0.1', '-p', String(overwatch.port), '-a', join(dir, `anchor-${label}.conf`), '+root=example.test', name, type]);
        if (!/^; (negative response, )?fully validated$/m.test(d)) failures.push(`${label}: delv ${name} ${type}:\n${d}`);
        const u = await tool('unbound-host', ['-C', join(dir, `unbound-${label}.conf`), '-v', '-t', type, name]);
        if (!/\(secure\)/.test(u) || /BOGUS/.test(u)) failures.push(`${label}: unbound-host ${name} ${type}:\n${u}`);
      }
    };
    /** The algorithms of the RRSIGs over an answer, a denial's SOA and NSEC, and the DNSKEY RRset, over UDP and TCP. */
    const signedWith = async (phase: string, data: number[], dnskey: number[]): Promise<void> => {
      for (const transport of ['udp', 'tcp'] as const) {
        const a = await ask(overwatch.port, 'app.example.test', 'A', { edns: { do: true, udpSize: 4096 } }, transport);
        assert.deepEqual(rrsigAlgorithms(a.answers, 'A'), data, `${phase} ${transport}: RRSIGs over A`);
        const nx = await ask(overwatch.port, 'nothing.example.test', 'A', { edns: { do: true, udpSize: 4096 } }, transport);
        assert.deepEqual(rrsigAlgorithms(nx.authorities, 'SOA'), data, `${phase} ${transport}: RRSIGs over the denial's SOA`);
        assert.deepEqual(rrsigAlgorithms(nx.authorities, 'NSEC'), data, `${phase} ${transport}: RRSIGs over the denial's NSEC`);
        const k = await ask(overwatch.port, 'example.test', 'DNSKEY', { edns: { do: true, udpSize: 4096 } }, transport);
        assert.deepEqual(rrsigAlgorithms(k.answers, 'DNSKEY').sort(), dnskey, `${phase} ${transport}: RRSIGs over DNSKEY`);
      }
    };
    const keyInfo = (tag: number): DnssecKeyInfo => {
      const k = overwatch.keyring?.zones.get('example.test')?.keys.find((x) => x.info.keyTag === tag);
      assert.ok(k, `key ${tag}`);
      return k.info;
    };

    // The resolver holds the old (ECDSA) DS: it trusts the old key only, and refuses an algorithm downgrade.
    await signedWith('before', [ECDSA], [ECDSA]);
    await judge('before', old);

    // Published: the new key is not the signing key yet, but as it brings a new algorithm it signs the data already.
    const started = await overwatch.rolloverStart('example.test');
    assert.equal(started.phase, 'published');
    assert.ok(started.new_key !== null);
    const fresh = keyInfo(started.new_key);
    assert.equal(fresh.algorithm, ED25519);
    await signedWith('published', [ECDSA, ED25519], [ECDSA, ED25519]);
    await judge('published', old);

    // Signing: the new key leads; resolvers with either DS validate.
    await delay(SWITCH_AFTER_MS + 1000);
    assert.equal(overwatch.rolloverStatus('example.test').phase, 'signing');
    await signedWith('signing', [ED25519, ECDSA], [ECDSA, ED25519]);
    await judge('signing', old);
    await judge('signing', fresh);

    // Finished: the old key is gone; only the new algorithm signs, and the new DS validates.
    const finished = await overwatch.rolloverFinish('example.test');
    assert.equal(finished.phase, 'none');
    await signedWith('finished', [ED25519], [ED25519]);
    await judge('finished', fresh);
    assert.deepEqual(failures, []);
  },
);
