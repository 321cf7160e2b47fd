// The DNSSEC admin routes and `opengslb-cli dnssec …` against a real
// overwatch (worker threads, sockets on loopback) behind the real API:
// status shows public fields only, ds matches what BIND's dnssec-dsfromkey
// computes from the DNSKEY the server answers, and a whole key rollover runs
// without a validation gap: delv validates every step with the old key as
// trust anchor, then (once the new key signs) with either key, then with the
// new one only after the finish.

import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { parseConfigText } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
import type { DnssecKeyView } from '../../src/dnssec/keyring.ts';
import { ask } from '../helpers/dns-client.ts';
import { CLI, run } from '../helpers/child.ts';
import { startTestApi } from '../api/helpers.ts';
import { delvAnchor, missingTool, signedZoneYaml, tool } from './helpers.ts';

const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
regions:
  - name: eu
    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
domains:
  - { name: app.example.test, regions: [eu], ttl: 30, max_answers: 2 }
logging: { level: error }
`;

const TOKEN = 'dnssec-test-token-0123456789';

async function start(t: TestContext, switchAfterMs?: number): Promise<{ overwatch: Overwatch; api: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-dnssec-api-'));
  const quiet = new Writable({ write: (_c, _e, done) => done() });
  const overwatch = await Overwatch.start(parseConfigText(YAML, 'test.yaml'), createLogger({ level: 'error', format: 'json' }, quiet), {
    store: new MemoryStore(),
    healthChecks: 'off',
    ...(switchAfterMs === undefined ? {} : { rolloverSwitchAfterMs: switchAfterMs }),
  });
  const api = await startTestApi(t, overwatch, { token: TOKEN });
  t.after(async () => {
    await overwatch.stop(200);
    await rm(dir, { recursive: true, force: true });
  });
  return { overwatch, api: api.base, dir };
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const cli = (api: string, ...args: string[]) => run(CLI, ['--api', api, '--token', TOKEN, ...args]);

// The tests are independent (each its own overwatch, store, API and
// directory) and mostly wait for rollover timers: two run at once, the
// longest (the algorithm rollover, first) beside the others one by one,
// which take about as long together. Not all at once: five starting
// together slow the CLI children that must answer within a phase.
describe('the DNSSEC admin routes and opengslb-cli dnssec', { concurrency: 2 }, () => {
  // An algorithm rollover has a key that signs before it is in the DNSKEY RRset
  // and, after finish, a `withdrawn` key that signs after it left (phase
  // `withdrawing`): the CLI printed the first as plainly "published", said
  // "signs alone" at finish while the old key still signed for an hour, and
  // labelled the old key's retirement "Switch at".
  test('opengslb-cli dnssec status and rollover show an algorithm rollover\'s unpublished new key, the withdrawn old key and phase withdrawing', async (t) => {
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    const logger = createLogger({ level: 'error', format: 'json' }, quiet);
    const store = new MemoryStore();
    const first = await Overwatch.start(parseConfigText(signedZoneYaml({ algorithm: 'ECDSAP256SHA256' }), 'test.yaml'), logger, { store, healthChecks: 'off' });
    await first.stop(200);
    // The unpublished and the withdrawing phase each hold the CLI children
    // judged in them with room to spare (one child, about 1-1.7 s with the
    // machine busy; then two at once, about 2.5 s, and over 5 s with the
    // machine overloaded, hence 6 s); each is judged only when the phase
    // still stood after it answered.
    const overwatch = await Overwatch.start(parseConfigText(signedZoneYaml({ algorithm: 'ED25519' }), 'test.yaml'), logger, {
      store, healthChecks: 'off', rolloverPublishAfterMs: 4000, rolloverSwitchAfterMs: 6000,
    });
    const api = (await startTestApi(t, overwatch, { token: TOKEN })).base;
    t.after(() => overwatch.stop(200));
    const phase = async (): Promise<string> => String((await getJson(`${api}/api/v1/dnssec/rollover?zone=example.test`)).body.phase);

    const started = await cli(api, 'dnssec', 'rollover', 'start', '--zone', 'example.test');
    assert.equal(started.code, 0, started.stderr);
    assert.doesNotMatch(started.stdout, /is published\./, 'the new algorithm\'s key is not in the DNSKEY RRset yet');
    assert.match(started.stdout, /^Publish at:\s+\d{4}-\d\d-\d\dT\S+Z$/m);
    const keys = (await getJson(`${api}/api/v1/dnssec/status`)).body.keys as DnssecKeyView[];
    const newKey = keys.find((k) => k.algorithm === 'ED25519') as DnssecKeyView;
    assert.equal(newKey.in_dnskey_rrset, false);
    const unpublished = await cli(api, 'dnssec', 'status');
    assert.equal(unpublished.code, 0, unpublished.stderr);
    // Run at once, within the 4 s before the key joins the DNSKEY RRset (a slow CLI start is not a failure of the output).
    if (await phase() === 'published' && (await getJson(`${api}/api/v1/dnssec/rollover?zone=example.test`)).body.publish_at !== null) {
      assert.match(unpublished.stdout, new RegExp(`^example\\.test\\s+${newKey.key_tag}\\s+ED25519\\s+257\\s+published, not in DNSKEY yet \\(signing\\)\\s`, 'm'));
    } else {
      t.diagnostic('the CLI answered after the new key joined the DNSKEY RRset: its unpublished line was not judged');
    }

    const deadline = Date.now() + 30_000;
    while (await phase() !== 'signing') {
      assert.ok(Date.now() < deadline, 'the new key never started signing');
      await delay(50);
    }
    const finished = await cli(api, 'dnssec', 'rollover', 'finish', '--zone', 'example.test');
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stdout, /^Phase:\s+withdrawing$/m);
    assert.doesNotMatch(finished.stdout, /signs alone|^Switch at:/m, 'the old key still signs until it retires');
    const retireLine = /^Retires? at:\s+(\S+Z)$/m.exec(finished.stdout);
    assert.ok(retireLine, `a retire time:\n${finished.stdout}`);
    // Each CLI child is judged only when the phase still stood after it answered (the old key retires on its own).
    const [withdrawn, status] = await Promise.all([cli(api, 'dnssec', 'status'), cli(api, 'dnssec', 'rollover', 'status', '--zone', 'example.test')]);
    if (await phase() === 'withdrawing') {
      assert.match(withdrawn.stdout, /^example\.test\s+\d+\s+ECDSAP256SHA256\s+257\s+withdrawn \(signing\)\s/m);
      assert.match(status.stdout, /^Phase:\s+withdrawing$/m);
      assert.match(status.stdout, new RegExp(`^Retires? at:\\s+${retireLine[1].replace(/\./g, '\\.')}$`, 'm'));
    } else {
      t.diagnostic('the CLI answered after the old key retired: its withdrawing lines were not judged');
    }
    while (await phase() !== 'none') {
      assert.ok(Date.now() < deadline + 10_000, 'the withdrawn key never retired');
      await delay(50);
    }
    const done = await cli(api, 'dnssec', 'status');
    assert.match(done.stdout, /^example\.test\s+\d+\s+ECDSAP256SHA256\s+257\s+retired\s/m);
    assert.match(done.stdout, /^example\.test\s+\d+\s+ED25519\s+257\s+active \(signing\)\s/m);
  });

  test('GET /api/v1/dnssec/status shows each key\'s public fields and never private material', async (t) => {
    const { overwatch, api } = await start(t);
    const { status, body } = await getJson(`${api}/api/v1/dnssec/status`);
    assert.equal(status, 200);
    assert.equal(body.enabled, true);
    assert.equal(body.algorithm, 'ECDSAP256SHA256');
    assert.equal(body.signature_validity_seconds, 7 * 86400);
    const keys = body.keys as DnssecKeyView[];
    assert.equal(keys.length, 1);
    assert.deepEqual(Object.keys(keys[0]).sort(), ['age_seconds', 'algorithm', 'algorithm_number', 'created', 'flags', 'in_dnskey_rrset', 'key_tag', 'public_key', 'signing', 'state', 'zone']);
    assert.equal(keys[0].in_dnskey_rrset, true);
    assert.equal(keys[0].zone, 'example.test');
    assert.equal(keys[0].flags, 257);
    assert.equal(keys[0].state, 'active');
    assert.equal(keys[0].signing, true);
    // The served DNSKEY is this public key.
    const dnskey = await ask(overwatch.port, 'example.test', 'DNSKEY');
    const served = (dnskey.answers ?? [])[0] as unknown as { data: { key: Buffer } };
    assert.equal(served.data.key.toString('base64'), keys[0].public_key);
    const text = JSON.stringify(body);
    assert.doesNotMatch(text, /private|pkcs8|secret/i);
  });

  test('GET /api/v1/dnssec/ds equals what dnssec-dsfromkey computes from the served DNSKEY; the CLI prints it ready to paste', { skip: missingTool('dnssec-dsfromkey', 'bind9utils') }, async (t) => {
    const { overwatch, api, dir } = await start(t);
    const { status, body } = await getJson(`${api}/api/v1/dnssec/ds?zone=Example.Test.`);
    assert.equal(status, 200);
    const ds = body.ds as { record: string; key_tag: number; digest_type: number }[];
    assert.equal(ds.length, 1);
    assert.equal(ds[0].digest_type, 2);
    const dnskey = await ask(overwatch.port, 'example.test', 'DNSKEY');
    const k = (dnskey.answers ?? [])[0] as unknown as { ttl: number; data: { flags: number; algorithm: number; key: Buffer } };
    const file = join(dir, 'Kexample.test.key');
    await writeFile(file, `example.test. ${k.ttl} IN DNSKEY ${k.data.flags} 3 ${k.data.algorithm} ${k.data.key.toString('base64')}\n`);
    const fromBind = (await tool('dnssec-dsfromkey', ['-2', '-f', file, 'example.test'])).trim();
    assert.equal(ds[0].record, fromBind.replace(/\s+/g, ' '));

    const r = await cli(api, 'dnssec', 'ds', '--zone', 'example.test');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${ds[0].record}\n`);
    const missing = await getJson(`${api}/api/v1/dnssec/ds?zone=nope.test`);
    assert.equal(missing.status, 404);
    assert.match(String(missing.body.error), /zone "nope\.test" is not signed here; signed zones: example\.test/);
  });

  test('opengslb-cli dnssec status lists the keys, and --json gives the API\'s answer', async (t) => {
    const { api } = await start(t);
    const r = await cli(api, 'dnssec', 'status');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^DNSSEC on: new keys ECDSAP256SHA256, signatures valid 7d\.$/m);
    assert.match(r.stdout, /^ZONE\s+KEY TAG\s+ALGORITHM\s+FLAGS\s+STATE\s+CREATED\s+AGE$/m);
    assert.match(r.stdout, /^example\.test\s+\d+\s+ECDSAP256SHA256\s+257\s+active \(signing\)\s+\S+\s+\d+s$/m);
    const j = await cli(api, 'dnssec', 'status', '--json');
    assert.equal((JSON.parse(j.stdout) as { keys: unknown[] }).keys.length, 1);
    const bad = await cli(api, 'dnssec', 'rollover', 'begin', '--zone', 'example.test');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"begin" is not a rollover step, expected start, status or finish/);
  });

  /** delv's verdict on app.example.test A with `anchor` (a DnssecKeyView) as the only trust anchor. */
  async function delvWith(t: TestContext, dir: string, port: number, key: DnssecKeyView, name = 'app.example.test', type = 'A'): Promise<string> {
    return delvAt(port, await writeAnchor(dir, key), name, type);
  }

  /** Writes `key` as a delv trust-anchor file in `dir`; returns its path. */
  async function writeAnchor(dir: string, key: DnssecKeyView): Promise<string> {
    const file = join(dir, `anchor-${key.key_tag}.conf`);
    await writeFile(file, delvAnchor({ zone: key.zone, flags: key.flags, algorithm: key.algorithm_number as 13 | 15, publicKey: key.public_key }));
    return file;
  }

  function delvAt(port: number, anchorFile: string, name: string, type: string): Promise<string> {
    return tool('delv', ['@127.0.0.1', '-p', String(port), '-a', anchorFile, '+root=example.test', name, type]);
  }

  const VALIDATED: readonly [string, string, RegExp][] = [
    ['app.example.test', 'A', /^; fully validated$/m],
    ['example.test', 'DNSKEY', /^; fully validated$/m],
    ['example.test', 'SOA', /^; fully validated$/m],
    ['nothing.example.test', 'A', /^; negative response, fully validated$/m],
  ];

  /** Asks delv every VALIDATED question at once (one process each, one anchor file written first) with `key` as the only trust anchor. */
  async function assertValidates(t: TestContext, dir: string, port: number, key: DnssecKeyView, step: string): Promise<void> {
    const anchor = await writeAnchor(dir, key);
    const outs = await Promise.all(VALIDATED.map(([name, type]) => delvAt(port, anchor, name, type)));
    VALIDATED.forEach(([name, type, want], i) => assert.match(outs[i], want, `${step}: ${name} ${type} with trust anchor ${key.key_tag}:\n${outs[i]}`));
  }

  test('a key rollover keeps every answer valid: old anchor while the new key is published, either anchor once it signs, the new one after finish', { skip: missingTool('delv', 'bind9-dnsutils') }, async (t) => {
    // The published phase holds what follows the start (three requests and
    // four delv runs at once: well under 1 s, also loaded) several times over;
    // the check after the delv runs says it did.
    const SWITCH_MS = 4000;
    const { overwatch, api, dir } = await start(t, SWITCH_MS);
    const port = overwatch.port;
    const status = async (): Promise<DnssecKeyView[]> => (await getJson(`${api}/api/v1/dnssec/status`)).body.keys as DnssecKeyView[];
    const phase = async (): Promise<unknown> => (await getJson(`${api}/api/v1/dnssec/rollover?zone=example.test`)).body.phase;
    const [oldKey] = await status();
    await assertValidates(t, dir, port, oldKey, 'before');

    const started = await cli(api, 'dnssec', 'rollover', 'start', '--zone', 'example.test');
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^Rollover of example\.test started: key \d+ is published\.$/m);
    assert.match(started.stdout, /^Phase:\s+published$/m);
    const keys = await status();
    const newKey = keys.find((k) => k.key_tag !== oldKey.key_tag) as DnssecKeyView;
    assert.equal(newKey.state, 'published');
    assert.equal(newKey.signing, false);
    // Both keys are in the DNSKEY RRset at once; the old one still signs everything.
    const dnskey = await ask(port, 'example.test', 'DNSKEY', { edns: { do: true } });
    assert.equal((dnskey.answers ?? []).filter((a) => a.type === 'DNSKEY').length, 2);
    const sigTags = (r: typeof dnskey): number[] => (r.answers ?? []).filter((a) => a.type === 'RRSIG').map((a) => (a as unknown as { data: { keyTag: number } }).data.keyTag).sort();
    assert.deepEqual(sigTags(dnskey), [oldKey.key_tag]);

    // Finishing before the new key signs is refused, and says when it will
    // (asked at once: a CLI child can take seconds to start on a loaded machine).
    const early = await fetch(`${api}/api/v1/dnssec/rollover/finish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ zone: 'example.test' }) });
    assert.equal(early.status, 409);
    assert.match(((await early.json()) as { error: string }).error, new RegExp(`the new key ${newKey.key_tag} signs from \\S+ on; finish the rollover after that`));
    await assertValidates(t, dir, port, oldKey, 'published');
    assert.equal(await phase(), 'published', 'the delv runs for the published phase ended within it');

    // After the wait the new key signs the data; both sign the DNSKEY RRset.
    const deadline = Date.now() + SWITCH_MS + 10_000;
    while (await phase() !== 'signing') {
      assert.ok(Date.now() < deadline, 'the new key never started signing');
      await delay(200);
    }
    const a = await ask(port, 'app.example.test', 'A', { edns: { do: true } });
    assert.deepEqual(sigTags(a), [newKey.key_tag]);
    assert.deepEqual(sigTags(await ask(port, 'example.test', 'DNSKEY', { edns: { do: true } })), [oldKey.key_tag, newKey.key_tag].sort());
    // The signing phase lasts until the finish below: its checks run at once.
    const [mid, ds] = await Promise.all([
      cli(api, 'dnssec', 'rollover', 'status', '--zone', 'example.test'),
      cli(api, 'dnssec', 'ds', '--zone', 'example.test'),
      assertValidates(t, dir, port, oldKey, 'switched, old DS'),
      assertValidates(t, dir, port, newKey, 'switched, new DS'),
    ]);
    assert.match(mid.stdout, /^Phase:\s+signing$/m);
    assert.match(mid.stdout, new RegExp(`^Next step:\\s+publish the DS of key ${newKey.key_tag} at the parent`, 'm'));
    assert.equal(ds.stdout.trim().split('\n').length, 2, 'both DS records while both keys are published');

    const finished = await cli(api, 'dnssec', 'rollover', 'finish', '--zone', 'example.test');
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stdout, new RegExp(`^Rollover of example\\.test finished: key ${newKey.key_tag} signs alone\\.$`, 'm'));
    const after = await status();
    assert.equal(after.find((k) => k.key_tag === oldKey.key_tag)?.state, 'retired');
    assert.deepEqual(sigTags(await ask(port, 'example.test', 'DNSKEY', { edns: { do: true } })), [newKey.key_tag]);
    await assertValidates(t, dir, port, newKey, 'finished');
    assert.doesNotMatch(await delvWith(t, dir, port, oldKey), /fully validated/, 'the retired key no longer anchors anything');
  });
});
