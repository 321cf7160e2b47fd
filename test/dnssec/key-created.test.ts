// A key the keyring generates because a zone has no active key means a new DS
// to publish at the parent: it is never silent. Whatever made it (a start, a
// config reload, a re-read after key sync, the bus or a rollover step) it is
// reported (Keyring onKeyCreated: a warn log line with zone, key tag,
// algorithm and DS) and counted (opengslb_dnssec_keys_created_total).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dsOf, type DnssecKeyInfo } from '../../src/dnssec/keys.ts';
import { Keyring } from '../../src/dnssec/keyring.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { createMetrics } from '../../src/metrics/prometheus.ts';
import { LmdbStore } from '../../src/state/store.ts';
import { startServer } from '../helpers/server.ts';
import { parseExposition } from '../metrics/scrape.ts';
import { signedZoneYaml } from './helpers.ts';

const DNSSEC = {
  enabled: true,
  algorithm: 'ECDSAP256SHA256',
  signatureValiditySec: 604_800,
  keySync: { peers: [], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: null },
} as const;

test('a re-read that finds a zone without an active key (its key retired in the store) generates one and reports and counts it, as a start does', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-key-created-'));
  const store = LmdbStore.open(join(dir, 'data'));
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const told: DnssecKeyInfo[] = [];
  const { keyring, changes } = await Keyring.open(store, ['example.test', 'other.test'], DNSSEC, { onKeyCreated: (info) => told.push(info) });
  assert.equal(changes.created.length, 2);
  assert.deepEqual(told.map((k) => k.zone), ['example.test', 'other.test'], 'the start reports each new key');
  assert.equal(keyring.keysCreated, 2);

  // What a key-sync or bus merge can leave: the zone's active key retired, no other active.
  const first = keyring.zones.get('example.test')!.active.info;
  const [stored] = store.loadZoneDnssecKeys('example.test');
  await store.putDnssecKey({ ...stored, state: 'retired' });
  await keyring.reload(['example.test', 'other.test']);
  assert.equal(told.length, 3, 'the re-read reports the key it generated');
  const made = told[2];
  assert.equal(made.zone, 'example.test');
  assert.notEqual(made.keyTag, first.keyTag);
  assert.equal(made.state, 'active');
  assert.equal(keyring.keysCreated, 3);
  assert.equal(keyring.zones.get('example.test')!.active.info.keyTag, made.keyTag, 'the zone signs with it');
  assert.ok(store.loadDnssecKey('example.test', made.keyTag), 'and it is stored');
  // other.test kept its key: nothing more reported.
  await keyring.reload();
  assert.equal(told.length, 3);
});

test('the overwatch logs a generated key at warn with zone, key tag, algorithm and the DS to publish, and counts it, at the start and at a config reload that adds a zone', async (t) => {
  const s = await startServer(t, signedZoneYaml(), 'key-created.yaml');
  const metrics = createMetrics({ version: 't', loadedAtMs: 0, overwatch: s.overwatch, processMetrics: false });
  t.after(() => metrics.close());
  const created = (): { level: unknown; zone: string; keyTag: number; algorithm: number; ds: string; msg: string }[] =>
    s.logs.map((l) => JSON.parse(l)).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('DNSSEC key created'));
  const counted = async (): Promise<number | undefined> => parseExposition(await metrics.registry.metrics()).value('opengslb_dnssec_keys_created_total', {});

  assert.equal(created().length, 1, s.logs.join('\n'));
  const [line] = created();
  assert.ok(line.level === 40 || line.level === 'warn', `logged at warn: ${JSON.stringify(line)}`);
  const key = s.overwatch.keyring!.zones.get('example.test')!.active.info;
  assert.equal(line.zone, 'example.test');
  assert.equal(line.keyTag, key.keyTag);
  assert.equal(line.algorithm, 13);
  assert.equal(line.ds, dsOf(key).record);
  assert.match(line.ds, new RegExp(`^example\\.test\\. IN DS ${key.keyTag} 13 2 [0-9A-F]{64}$`));
  assert.equal(await counted(), 1);

  const more = signedZoneYaml().replace('zones: [example.test]', 'zones: [example.test, other.test]');
  const result = await s.overwatch.reload(parseConfigText(more, 'key-created.yaml'));
  assert.ok(result.ok, result.message);
  assert.equal(created().length, 2, s.logs.join('\n'));
  assert.equal(created()[1].zone, 'other.test');
  assert.ok(created()[1].level === 40 || created()[1].level === 'warn');
  assert.equal(await counted(), 2);
});
