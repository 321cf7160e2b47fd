// Zone keys: DNSKEY rdata, key tag and DS checked against BIND's
// dnssec-dsfromkey; private material that never prints; keys that persist in
// the lmdb store across close and reopen (directory 0700, files 0600); corrupt
// stored keys and unknown algorithms refused with errors that name them; and
// which keys the workers sign with through each step of a rollover.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { open } from 'lmdb';
import { nameToWire } from '../../src/dns/names.ts';
import {
  algorithmNumber, dnskeyRdataOf, dnskeyRecordText, dsOf, ensureZoneKeys, generateZoneKey, keyFromStored, keyStatusView,
  keyTagOf, publishedDnskeys, signerKeyOf, toStoredKey,
} from '../../src/dnssec/keys.ts';
import { Keyring } from '../../src/dnssec/keyring.ts';
import { canonicalSigningInput, createSignerKey, rrsetOf, signingWindow, signRrset } from '../../src/dnssec/sign.ts';
import type { SignerKey } from '../../src/dnssec/sign.ts';
import type { DnssecAlgorithm } from '../../src/config/types.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';
import { LmdbStore, MemoryStore } from '../../src/state/store.ts';
import type { DnssecKeyId, StoredDnssecKey } from '../../src/state/store.ts';
import { missingTool } from './helpers.ts';

const run = promisify(execFile);

async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

for (const [algorithm, number, keyLen] of [['ECDSAP256SHA256', 13, 64], ['ED25519', 15, 32]] as const) {
  test(`a new key for ${algorithm} is a combined signing key with a ${keyLen}-byte DNSKEY public key`, async () => {
    const key = await generateZoneKey('example.test', algorithm);
    assert.equal(key.info.flags, 257);
    assert.equal(key.info.algorithm, number);
    assert.equal(key.info.state, 'active');
    const rdata = dnskeyRdataOf(key.info);
    assert.deepEqual([...rdata.subarray(0, 4)], [1, 1, 3, number]);
    assert.equal(rdata.length, 4 + keyLen);
    assert.equal(key.info.keyTag, keyTagOf(rdata));
  });

  test(`the key tag and DS of an ${algorithm} key equal what dnssec-dsfromkey computes`, { skip: missingTool('dnssec-dsfromkey', 'bind9utils') }, async (t) => {
    const dir = await tempDir(t, 'opengslb-ds-');
    const { info } = await generateZoneKey('example.test', algorithm);
    const file = join(dir, 'dnskey.zone');
    await writeFile(file, `${dnskeyRecordText(info)}\n`);
    const { stdout } = await run('dnssec-dsfromkey', ['-2', '-f', file, 'example.test']);
    assert.equal(stdout.trim(), dsOf(info).record);
    assert.match(dsOf(info).record, new RegExp(`^example\\.test\\. IN DS ${info.keyTag} ${number} 2 [0-9A-F]{64}$`));
  });

  test(`an ${algorithm} signature verifies with the public key published in the DNSKEY`, async () => {
    const key = await generateZoneKey('example.test', algorithm);
    const signer = signerKeyOf(key);
    const rrset = rrsetOf(nameToWire('app.example.test'), 1, 60, [Uint8Array.of(192, 0, 2, 1)]);
    const window = signingWindow(1_700_000_000, 86400);
    const rdata = signRrset(signer, rrset, window);
    const { data, rrsigPrefixLen } = canonicalSigningInput(signer, rrset, window);
    const pub = Buffer.from(key.info.publicKey, 'base64');
    const jwk = number === 13
      ? { kty: 'EC', crv: 'P-256', x: pub.subarray(0, 32).toString('base64url'), y: pub.subarray(32).toString('base64url') }
      : { kty: 'OKP', crv: 'Ed25519', x: pub.toString('base64url') };
    const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
    const signature = rdata.subarray(rrsigPrefixLen);
    const ok = number === 13
      ? verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)
      : verify(null, data, publicKey, signature);
    assert.ok(ok);
  });
}

test('key generation runs off the event loop: the loop keeps turning while keys are made', async () => {
  // A setImmediate chain counts turns of the loop. setInterval(…, 0) waits 1 ms for its first tick, and 20
  // keys made on the thread pool may take less than that: the test then failed on a quiet machine. Keys made
  // on the loop itself would let no turn happen before they are all done.
  let ticks = 0;
  let spinning = true;
  const spin = (): void => {
    if (!spinning) return;
    ticks++;
    setImmediate(spin);
  };
  setImmediate(spin);
  try {
    await Promise.all(Array.from({ length: 20 }, () => generateZoneKey('example.test', 'ECDSAP256SHA256')));
  } finally {
    spinning = false;
  }
  assert.ok(ticks > 0, 'the event loop ran while 20 keys were generated');
});

test('private key material never shows in JSON, String() or util.inspect', async () => {
  const key = await generateZoneKey('example.test', 'ECDSAP256SHA256');
  const secret = Buffer.from(key.secret.exportPkcs8()).toString('base64');
  for (const shown of [JSON.stringify(key), String(key.secret), inspect(key, { depth: 10 }), JSON.stringify(keyStatusView(key.info, Date.now()))]) {
    assert.ok(!shown.includes(secret.slice(40, 80)), shown);
  }
  assert.match(JSON.stringify(key), /"secret":"\[redacted\]"/);
});

test('the status view carries zone, tag, algorithm name, flags, public key, created and age', async () => {
  const key = await generateZoneKey('example.test', 'ED25519', { nowMs: Date.UTC(2025, 0, 1) });
  const view = keyStatusView(key.info, Date.UTC(2025, 0, 1, 0, 1, 40));
  assert.deepEqual(view, {
    zone: 'example.test', keyTag: key.info.keyTag, algorithm: 'ED25519', flags: 257, publicKey: key.info.publicKey,
    created: '2025-01-01T00:00:00.000Z', ageSeconds: 100, state: 'active',
  });
});

test('an unknown algorithm is refused with OPENGSLB_ERR_DNSSEC_ALGORITHM naming it', async () => {
  await assert.rejects(generateZoneKey('example.test', 'RSASHA256'), (err: OpenGslbError) => {
    assert.equal(err.code, 'OPENGSLB_ERR_DNSSEC_ALGORITHM');
    assert.match(err.message, /"RSASHA256" is not supported, expected ECDSAP256SHA256 or ED25519/);
    return true;
  });
  assert.throws(() => algorithmNumber('ECDSAP384SHA384'), { code: 'OPENGSLB_ERR_DNSSEC_ALGORITHM' });
  const ed = await generateZoneKey('example.test', 'ED25519');
  assert.throws(() => createSignerKey(nameToWire('example.test'), ed.info.keyTag, 13, ed.secret.keyObject), (err: OpenGslbError) => {
    assert.equal(err.code, 'OPENGSLB_ERR_DNSSEC_ALGORITHM');
    assert.match(err.message, new RegExp(`DNSSEC key ${ed.info.keyTag} of zone example.test: algorithm 13 \\(ECDSAP256SHA256\\) needs a P-256 key, got ed25519`));
    return true;
  });
});

test('ensureZoneKeys generates one key per zone once, and the same key comes back on the next start', async () => {
  const store = new MemoryStore();
  const first = await ensureZoneKeys(store, ['example.test', 'other.test'], 'ECDSAP256SHA256');
  assert.equal(first.created.length, 2);
  const second = await ensureZoneKeys(store, ['example.test', 'other.test'], 'ECDSAP256SHA256');
  assert.equal(second.created.length, 0);
  for (const zone of ['example.test', 'other.test']) {
    assert.deepEqual(second.zones.get(zone)?.active.info, first.zones.get(zone)?.active.info);
    assert.equal(publishedDnskeys(second.zones.get(zone) as never, Date.now()).length, 1);
  }
  // The config now asks for Ed25519: the zone keeps its key (changing it is a rollover) and the mismatch is reported.
  const third = await ensureZoneKeys(store, ['example.test'], 'ED25519');
  assert.deepEqual(third.algorithmMismatches, [{ zone: 'example.test', keyTag: first.zones.get('example.test')?.active.info.keyTag, algorithm: 'ECDSAP256SHA256' }]);
});

test('keys persist in the lmdb store across close and reopen, and the same key signs', async (t) => {
  const dir = join(await tempDir(t, 'opengslb-keys-'), 'data');
  let store = LmdbStore.open(dir);
  const before = await ensureZoneKeys(store, ['example.test'], 'ED25519');
  const rrset = rrsetOf(nameToWire('app.example.test'), 1, 60, [Uint8Array.of(192, 0, 2, 1)]);
  const window = signingWindow(1_700_000_000, 86400);
  const sigBefore = signRrset(signerKeyOf(before.zones.get('example.test')!.active), rrset, window);
  await store.close();

  store = LmdbStore.open(dir);
  t.after(() => store.close());
  const after = await ensureZoneKeys(store, ['example.test'], 'ED25519');
  assert.equal(after.created.length, 0);
  assert.deepEqual(after.zones.get('example.test')?.active.info, before.zones.get('example.test')?.active.info);
  // Ed25519 is deterministic: the same key gives the same signature.
  assert.deepEqual(signRrset(signerKeyOf(after.zones.get('example.test')!.active), rrset, window), sigBefore);
});

test('the data directory is 0700 and the lmdb files 0600, also when the directory existed with looser modes', { skip: process.platform === 'win32' }, async (t) => {
  const dir = await tempDir(t, 'opengslb-perm-');
  const data = join(dir, 'data');
  const store = LmdbStore.open(data);
  await ensureZoneKeys(store, ['example.test'], 'ECDSAP256SHA256');
  await store.close();
  assert.equal((await stat(data)).mode & 0o777, 0o700);
  const files = await readdir(data);
  assert.ok(files.includes('state.mdb'), files.join(', '));
  for (const f of files) assert.equal((await stat(join(data, f))).mode & 0o777, 0o600, f);

  const { chmod } = await import('node:fs/promises');
  await chmod(data, 0o755);
  await chmod(join(data, 'state.mdb'), 0o644);
  const again = LmdbStore.open(data);
  await again.close();
  assert.equal((await stat(data)).mode & 0o777, 0o700);
  assert.equal((await stat(join(data, 'state.mdb'))).mode & 0o777, 0o600);
});

/** Writes `text` as the raw stored value of key id [zone, tag] in the store's dnssec_keys database. */
async function writeRaw(dataDir: string, id: DnssecKeyId, text: string): Promise<void> {
  const root = open({ path: join(dataDir, 'state.mdb'), maxDbs: 8 });
  const db = root.openDB<string, DnssecKeyId>({ name: 'dnssec_keys', encoding: 'string' });
  await db.put(id, text);
  await root.close();
}

const CORRUPTIONS: readonly { name: string; change: (k: StoredDnssecKey) => string | StoredDnssecKey; expect: RegExp }[] = [
  { name: 'an unreadable entry', change: () => '{"zone": "example.test", "keyT', expect: /the stored entry is not readable/ },
  { name: 'a missing field', change: (k) => JSON.stringify({ ...k, privateKeyPkcs8: undefined }), expect: /field privateKeyPkcs8 is missing, expected a string/ },
  { name: 'a private key that does not parse', change: (k) => ({ ...k, privateKeyPkcs8: Buffer.from('not a key').toString('base64') }), expect: /the private key does not parse as PKCS#8/ },
  { name: 'a public key of another key', change: (k) => ({ ...k, publicKey: Buffer.alloc(64, 7).toString('base64') }), expect: /the stored public key does not belong to the private key/ },
  { name: 'an unknown algorithm', change: (k) => ({ ...k, algorithm: 8 }), expect: /algorithm 8 is not one we sign with/ },
  { name: 'a private key of the other algorithm', change: (k) => ({ ...k, algorithm: 15 }), expect: /algorithm 15 \(ED25519\) needs an Ed25519 key/ },
];

for (const c of CORRUPTIONS) {
  test(`a stored key with ${c.name} is refused with an error naming the zone and key tag`, async (t) => {
    const dir = join(await tempDir(t, 'opengslb-corrupt-'), 'data');
    const store = LmdbStore.open(dir);
    const { zones } = await ensureZoneKeys(store, ['example.test'], 'ECDSAP256SHA256');
    await store.close();
    const key = zones.get('example.test')!.active;
    const stored = toStoredKey(key);
    const changed = c.change(stored);
    await writeRaw(dir, ['example.test', key.info.keyTag], typeof changed === 'string' ? changed : JSON.stringify(changed));
    const reopened = LmdbStore.open(dir);
    t.after(() => reopened.close());
    await assert.rejects(ensureZoneKeys(reopened, ['example.test'], 'ECDSAP256SHA256'), (err: OpenGslbError) => {
      assert.equal(err.code, 'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT');
      assert.match(err.message, new RegExp(`state\\.mdb: DNSSEC key ${key.info.keyTag} of zone example\\.test is corrupt: `));
      assert.match(err.message, c.expect);
      return true;
    });
  });
}

test('keyFromStored gives back a key that signs like the original', async () => {
  const key = await generateZoneKey('example.test', 'ECDSAP256SHA256');
  const back = keyFromStored(toStoredKey(key), 'memory');
  assert.deepEqual(back.info, key.info);
  assert.deepEqual(back.secret.exportPkcs8(), key.secret.exportPkcs8());
});

/**
 * A rollover's keys as the workers get them (Keyring.workerDnssec), by role
 * (the zone's key before the rollover, or the new one), and the keys in the
 * DNSKEY RRset (`set`), at each step: an algorithm rollover signs with the
 * new key before it publishes it, and unpublishes the old key before it
 * stops signing with it (RFC 6781 §4.1.4).
 */
type Step = { data: string[]; dnskey: string[]; set: string[] };
const ROLLOVERS: readonly {
  name: string;
  from: DnssecAlgorithm;
  to: DnssecAlgorithm;
  /** presigned and withdrawn: only an algorithm rollover has them. */
  expect: Record<'published' | 'signing' | 'finished', Step> & Partial<Record<'presigned' | 'withdrawn', Step>>;
}[] = [
  {
    name: 'within one algorithm (ECDSAP256SHA256): one data signer at every step',
    from: 'ECDSAP256SHA256',
    to: 'ECDSAP256SHA256',
    expect: {
      published: { data: ['old'], dnskey: ['old'], set: ['old', 'new'] },
      signing: { data: ['new'], dnskey: ['old', 'new'], set: ['old', 'new'] },
      finished: { data: ['new'], dnskey: ['new'], set: ['new'] },
    },
  },
  ...(['ECDSAP256SHA256 → ED25519', 'ED25519 → ECDSAP256SHA256'] as const).map((pair) => {
    const [from, to] = pair.split(' → ') as [DnssecAlgorithm, DnssecAlgorithm];
    return {
      name: `to another algorithm (${pair}): the new key signs before it is published, the old one signs until a DNSKEY TTL after it left the DNSKEY RRset, the newest active key first`,
      from,
      to,
      expect: {
        presigned: { data: ['old', 'new'], dnskey: ['old', 'new'], set: ['old'] },
        published: { data: ['old', 'new'], dnskey: ['old', 'new'], set: ['old', 'new'] },
        signing: { data: ['new', 'old'], dnskey: ['old', 'new'], set: ['old', 'new'] },
        withdrawn: { data: ['new', 'old'], dnskey: ['new', 'old'], set: ['new'] },
        finished: { data: ['new'], dnskey: ['new'], set: ['new'] },
      },
    };
  }),
];

for (const c of ROLLOVERS) {
  test(`a key rollover ${c.name}`, async () => {
    const store = new MemoryStore();
    let nowMs = Date.UTC(2026, 0, 1);
    const config = (algorithm: DnssecAlgorithm) => ({
      enabled: true, algorithm, signatureValiditySec: 604_800, keySync: { peers: [], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: null },
    }) as const;
    await Keyring.open(store, ['example.test'], config(c.from), { nowMs: () => nowMs });
    // The config now asks for c.to: the zone keeps its key until a rollover makes one of c.to.
    const { keyring } = await Keyring.open(store, ['example.test'], config(c.to), { nowMs: () => nowMs, switchAfterMs: 1000, publishAfterMs: 2000 });
    const old = keyring.zones.get('example.test')!.active.info;
    assert.equal(old.algorithm, algorithmNumber(c.from));
    const roles = new Map<number, string>([[old.keyTag, 'old']]);
    const signers = (): Step => {
      const z = keyring.workerDnssec(['example.test']).zones[0];
      assert.ok(z);
      const role = (k: SignerKey): string => roles.get(k.keyTag) ?? `key ${k.keyTag}`;
      const data = z.data.map(role);
      // The API's `signing` marks exactly the keys that sign the data.
      const marked = keyring.keyViews().filter((v) => v.signing).map((v) => roles.get(v.key_tag) ?? `key ${v.key_tag}`);
      assert.deepEqual(marked.sort(), [...data].sort(), 'keyViews() signing');
      const set = (keyring.dnskeys().get('example.test') ?? []).map((rdata) => roles.get(keyTagOf(rdata)) ?? `key ${keyTagOf(rdata)}`);
      // The DS records offered are those of the DNSKEY RRset.
      assert.deepEqual(keyring.ds('example.test').map((d) => roles.get(d.keyTag)), set, 'ds()');
      return { data, dnskey: z.dnskey.map(role), set };
    };
    assert.deepEqual(signers(), { data: ['old'], dnskey: ['old'], set: ['old'] });

    // A minute on: the new key is the younger one (keys of one millisecond order by tag).
    nowMs += 60_000;
    const started = await keyring.rolloverStart('example.test');
    assert.equal(started.phase, 'published');
    roles.set(started.new_key!, 'new');
    if (c.expect.presigned !== undefined) {
      assert.deepEqual(signers(), c.expect.presigned, 'presigned');
      assert.equal(keyring.nextSwitchMs(), nowMs + 2000, 'the publication is the next step due');
      assert.equal(started.switch_at, new Date(nowMs + 3000).toISOString(), 'the switch comes a DNSKEY TTL after the publication');
      nowMs += 2000;
      assert.deepEqual(await keyring.switchDue(), { stored: [], steps: [{ zone: 'example.test', keyTag: started.new_key, step: 'published' }] });
    }
    assert.deepEqual(signers(), c.expect.published, 'published');

    nowMs += 1000;
    assert.deepEqual(await keyring.switchDue(), { stored: ['example.test'], steps: [{ zone: 'example.test', keyTag: started.new_key, step: 'switched' }] });
    assert.deepEqual(signers(), c.expect.signing, 'signing');

    const finished = await keyring.rolloverFinish('example.test');
    if (c.expect.withdrawn !== undefined) {
      assert.equal(finished.phase, 'withdrawing');
      assert.deepEqual(signers(), c.expect.withdrawn, 'withdrawn');
      await assert.rejects(keyring.rolloverStart('example.test'), /already running \(withdrawing\)/);
      await assert.rejects(keyring.rolloverFinish('example.test'), /finished already/);
      nowMs += 999;
      assert.deepEqual(await keyring.switchDue(), { stored: [], steps: [] }, 'not before a DNSKEY TTL');
      nowMs += 1;
      assert.deepEqual(await keyring.switchDue(), { stored: ['example.test'], steps: [{ zone: 'example.test', keyTag: old.keyTag, step: 'retired' }] });
    }
    assert.equal(keyring.rolloverStatus('example.test').phase, 'none');
    assert.deepEqual(signers(), c.expect.finished, 'finished');
  });
}
