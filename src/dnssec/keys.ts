// Main thread, cold path. DNSSEC signing keys: one combined signing key
// (flags 257) per zone, generated off the event loop, stored in the state
// store and loaded back after a restart so the same key signs; the DNSKEY and
// DS records an operator publishes. Private material lives only inside
// PrivateKeyMaterial, which prints and serialises as "[redacted]", so a key
// logged or returned by mistake shows no secret.

import { createHash, createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { inspect, promisify } from 'node:util';
import { nameToWire } from '../dns/names.ts';
import { OpenGslbError } from '../lib/errors.ts';
import type { StateStore, StoredDnssecKey } from '../state/store.ts';
import { createSignerKey, DNSSEC_ALGORITHM } from './sign.ts';
import type { DnssecAlgorithmNumber, SignerKey } from './sign.ts';
import { MAX_DATE_MS } from '../lib/time.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Algorithm names of overwatch.dnssec.algorithm. */
export type DnssecAlgorithmName = keyof typeof DNSSEC_ALGORITHM;

/**
 * A key's place in a rollover: published (in the DNSKEY set from its
 * publishAtMs on, not the zone's signing key yet), active (in the DNSKEY set,
 * signing), withdrawn (an algorithm rollover's old key: out of the DNSKEY set
 * since withdrawnAtMs, still signing until it retires), retired (neither;
 * kept in the store for the record). Rollover order: docs/dnssec.md.
 */
export type DnssecKeyState = 'published' | 'active' | 'withdrawn' | 'retired';
const KEY_STATES: readonly DnssecKeyState[] = ['published', 'active', 'withdrawn', 'retired'];

/** DNSKEY flags of a combined signing key: Zone Key (256) + Secure Entry Point (1) (RFC 4034 §2.1.1). */
export const CSK_FLAGS = 257;
/** The DNSKEY protocol field is always 3 (RFC 4034 §2.1.2). */
export const DNSKEY_PROTOCOL = 3;
/** DS digest type 2: SHA-256 (RFC 4509). */
export const DS_DIGEST_SHA256 = 2;
/** TTL of the DNSKEY RRset: one hour, the Go original's value. */
export const DNSKEY_TTL_SEC = 3600;

/** Public-key field lengths: P-256 x||y (RFC 6605 §4), Ed25519 (RFC 8080 §3). */
const PUBLIC_KEY_LEN: Readonly<Record<DnssecAlgorithmNumber, number>> = { 13: 64, 15: 32 };

/** Returns the algorithm number of an algorithm name; throws OPENGSLB_ERR_DNSSEC_ALGORITHM for any other name. */
export function algorithmNumber(name: string): DnssecAlgorithmNumber {
  if (Object.hasOwn(DNSSEC_ALGORITHM, name)) return DNSSEC_ALGORITHM[name as DnssecAlgorithmName];
  throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `DNSSEC algorithm "${name}" is not supported, expected ECDSAP256SHA256 or ED25519`);
}

/** Returns the name of a supported algorithm number; throws OPENGSLB_ERR_DNSSEC_ALGORITHM for any other number. */
export function algorithmName(n: number): DnssecAlgorithmName {
  for (const [name, value] of Object.entries(DNSSEC_ALGORITHM)) if (value === n) return name as DnssecAlgorithmName;
  throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `DNSSEC algorithm ${n} is not supported, expected 13 (ECDSAP256SHA256) or 15 (ED25519)`);
}

/**
 * DnssecKeyInfo is everything public about a key: safe to log, to show in the
 * API and to send to a peer. `publicKey` is the DNSKEY public-key field in base64.
 */
export interface DnssecKeyInfo {
  /** Zone apex, lower-case, no trailing dot. */
  readonly zone: string;
  readonly keyTag: number;
  readonly algorithm: DnssecAlgorithmNumber;
  readonly flags: number;
  readonly publicKey: string;
  /** Epoch milliseconds. */
  readonly createdAtMs: number;
  readonly state: DnssecKeyState;
  /**
   * A published key of an algorithm the zone did not sign with: when it joins
   * the DNSKEY RRset (epoch ms). Until then it signs every RRset beside the
   * old algorithm but is not published (RFC 6781 §4.1.4: signatures first, so
   * no resolver holds the new DNSKEY RRset with data whose cached RRSIGs lack
   * the new algorithm). Absent: published from its creation.
   */
  readonly publishAtMs?: number;
  /** A withdrawn key: when it left the DNSKEY RRset (epoch ms); it retires a DNSKEY TTL later (Keyring.switchAfterMs). */
  readonly withdrawnAtMs?: number;
}

/** When a key is in its zone's DNSKEY RRset at `nowMs`: active, or published and past its publishAtMs. */
export function inDnskeySet(info: DnssecKeyInfo, nowMs: number): boolean {
  return info.state === 'active' || (info.state === 'published' && (info.publishAtMs ?? info.createdAtMs) <= nowMs);
}

/**
 * PrivateKeyMaterial holds a private key. It never shows it: JSON.stringify,
 * String() and util.inspect (so pino and console) give "[redacted]". Only
 * exportPkcs8 (for the store and the encrypted key sync) reveals the bytes.
 */
export class PrivateKeyMaterial {
  readonly #key: KeyObject;

  constructor(key: KeyObject) {
    if (key.type !== 'private') throw new TypeError(`expected a private KeyObject, got a ${key.type} one`);
    this.#key = key;
  }

  /** The KeyObject to sign with; hand it to createSignerKey, workerData or a pool task (KeyObjects clone across threads). */
  get keyObject(): KeyObject {
    return this.#key;
  }

  /** The private key as PKCS#8 DER: for the state store and the encrypted key sync only. */
  exportPkcs8(): Uint8Array {
    return new Uint8Array(this.#key.export({ format: 'der', type: 'pkcs8' }));
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'PrivateKeyMaterial [redacted]';
  }
}

/** DnssecKey is one zone key: its public info and, apart, its private material. */
export interface DnssecKey {
  readonly info: DnssecKeyInfo;
  readonly secret: PrivateKeyMaterial;
}

/** Returns the DNSKEY public-key field of a key pair (P-256: x||y, 64 bytes; Ed25519: 32 bytes). */
export function publicKeyField(key: KeyObject, algorithm: DnssecAlgorithmNumber): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  if (algorithm === DNSSEC_ALGORITHM.ECDSAP256SHA256) {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || jwk.x === undefined || jwk.y === undefined) throw new TypeError('expected a P-256 key');
    const x = Buffer.from(jwk.x, 'base64url');
    const y = Buffer.from(jwk.y, 'base64url');
    const out = new Uint8Array(64);
    out.set(x, 32 - x.length);
    out.set(y, 64 - y.length);
    return out;
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || jwk.x === undefined) throw new TypeError('expected an Ed25519 key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

/** Encodes DNSKEY rdata (RFC 4034 §2.1): flags, protocol 3, algorithm, public key. */
export function dnskeyRdata(flags: number, algorithm: number, publicKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + publicKey.length);
  out[0] = flags >> 8;
  out[1] = flags & 0xff;
  out[2] = DNSKEY_PROTOCOL;
  out[3] = algorithm;
  out.set(publicKey, 4);
  return out;
}

/** The DNSKEY rdata of a key. */
export function dnskeyRdataOf(info: DnssecKeyInfo): Uint8Array {
  return dnskeyRdata(info.flags, info.algorithm, Buffer.from(info.publicKey, 'base64'));
}

/** Computes the key tag of DNSKEY rdata (RFC 4034 Appendix B; algorithm 1 is not supported, so no special case). */
export function keyTagOf(rdata: Uint8Array): number {
  let ac = 0;
  for (let i = 0; i < rdata.length; i++) ac += (i & 1) === 1 ? rdata[i] : rdata[i] << 8;
  ac += (ac >> 16) & 0xffff;
  return ac & 0xffff;
}

/** Encodes DS rdata with a SHA-256 digest (RFC 4034 §5.1.4, RFC 4509): key tag, algorithm, digest type 2, SHA-256(owner | DNSKEY rdata). */
export function dsRdata(zone: string, dnskey: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(nameToWire(zone)).update(dnskey).digest();
  const out = new Uint8Array(4 + digest.length);
  const tag = keyTagOf(dnskey);
  out[0] = tag >> 8;
  out[1] = tag & 0xff;
  out[2] = dnskey[3];
  out[3] = DS_DIGEST_SHA256;
  out.set(digest, 4);
  return out;
}

/** A DS record as an operator pastes it at the registrar or parent zone. */
export interface DsView {
  readonly zone: string;
  readonly keyTag: number;
  readonly algorithm: number;
  readonly digestType: 2;
  /** SHA-256 digest, upper-case hex. */
  readonly digest: string;
  /** The presentation record, in the form dnssec-dsfromkey prints: "example.com. IN DS 12345 13 2 ABCD…". */
  readonly record: string;
}

/** Builds the DS of a key, with its ready-to-paste presentation record. */
export function dsOf(info: DnssecKeyInfo): DsView {
  const rdata = dsRdata(info.zone, dnskeyRdataOf(info));
  const digest = Buffer.from(rdata.subarray(4)).toString('hex').toUpperCase();
  return {
    zone: info.zone,
    keyTag: info.keyTag,
    algorithm: info.algorithm,
    digestType: DS_DIGEST_SHA256,
    digest,
    record: `${info.zone}. IN DS ${info.keyTag} ${info.algorithm} ${DS_DIGEST_SHA256} ${digest}`,
  };
}

/** The DNSKEY presentation record ("example.com. 3600 IN DNSKEY 257 3 13 base64"), e.g. for a trust anchor file. */
export function dnskeyRecordText(info: DnssecKeyInfo, ttlSec: number = DNSKEY_TTL_SEC): string {
  return `${info.zone}. ${ttlSec} IN DNSKEY ${info.flags} ${DNSKEY_PROTOCOL} ${info.algorithm} ${info.publicKey}`;
}

/** The API/status view of a key: public fields, creation time and age; never private material. */
export interface KeyStatusView {
  readonly zone: string;
  readonly keyTag: number;
  readonly algorithm: DnssecAlgorithmName;
  readonly flags: number;
  readonly publicKey: string;
  readonly created: string;
  readonly ageSeconds: number;
  readonly state: DnssecKeyState;
}

/** Builds the status view of a key at `nowMs`. */
export function keyStatusView(info: DnssecKeyInfo, nowMs: number): KeyStatusView {
  return {
    zone: info.zone,
    keyTag: info.keyTag,
    algorithm: algorithmName(info.algorithm),
    flags: info.flags,
    publicKey: info.publicKey,
    created: new Date(info.createdAtMs).toISOString(),
    ageSeconds: Math.max(0, Math.floor((nowMs - info.createdAtMs) / 1000)),
    state: info.state,
  };
}

/** Builds the key's info from a private KeyObject. */
function infoOf(zone: string, algorithm: DnssecAlgorithmNumber, privateKey: KeyObject, createdAtMs: number, state: DnssecKeyState): DnssecKeyInfo {
  const publicKey = publicKeyField(privateKey, algorithm);
  const rdata = dnskeyRdata(CSK_FLAGS, algorithm, publicKey);
  return Object.freeze({
    zone,
    keyTag: keyTagOf(rdata),
    algorithm,
    flags: CSK_FLAGS,
    publicKey: Buffer.from(publicKey).toString('base64'),
    createdAtMs,
    state,
  });
}

/** Options of generateZoneKey. */
export interface GenerateKeyOptions {
  /** Creation time, epoch milliseconds (default Date.now()). */
  readonly nowMs?: number;
  readonly state?: DnssecKeyState;
  /** When a published key joins the DNSKEY RRset (DnssecKeyInfo.publishAtMs); default: at once. */
  readonly publishAtMs?: number;
  /** Key tags already used in the zone; the new key gets another one (a rollover must tell two keys apart by tag). */
  readonly avoidTags?: ReadonlySet<number>;
}

/**
 * Generates a combined signing key (flags 257) for `zone` with
 * crypto.generateKeyPair, which runs on libuv's thread pool: the event loop
 * keeps serving meanwhile (so no piscina task is needed for it).
 * Throws OPENGSLB_ERR_DNSSEC_ALGORITHM for an unknown algorithm name.
 */
export async function generateZoneKey(zone: string, algorithm: string, opts: GenerateKeyOptions = {}): Promise<DnssecKey> {
  const alg = algorithmNumber(algorithm);
  const nowMs = opts.nowMs ?? Date.now();
  for (let attempt = 0; ; attempt++) {
    const { privateKey } = alg === DNSSEC_ALGORITHM.ECDSAP256SHA256
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : await generateKeyPairAsync('ed25519');
    const made = infoOf(zone, alg, privateKey, nowMs, opts.state ?? 'active');
    const info = opts.publishAtMs === undefined ? made : Object.freeze({ ...made, publishAtMs: opts.publishAtMs });
    if (opts.avoidTags?.has(info.keyTag) !== true || attempt >= 16) return { info, secret: new PrivateKeyMaterial(privateKey) };
  }
}

/** Turns a key into the record the state store keeps (the only place the private key leaves PrivateKeyMaterial besides the key sync). */
export function toStoredKey(key: DnssecKey): StoredDnssecKey {
  const { info } = key;
  return {
    zone: info.zone,
    keyTag: info.keyTag,
    algorithm: info.algorithm,
    flags: info.flags,
    publicKey: info.publicKey,
    createdAtMs: info.createdAtMs,
    state: info.state,
    ...(info.publishAtMs === undefined ? {} : { publishAtMs: info.publishAtMs }),
    ...(info.withdrawnAtMs === undefined ? {} : { withdrawnAtMs: info.withdrawnAtMs }),
    privateKeyPkcs8: Buffer.from(key.secret.exportPkcs8()).toString('base64'),
  };
}

function corrupt(location: string, stored: { zone: unknown; keyTag: unknown }, what: string, cause?: unknown): OpenGslbError {
  return new OpenGslbError(
    'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT',
    `${location}: DNSSEC key ${String(stored.keyTag)} of zone ${String(stored.zone)} is corrupt: ${what}; the zone is not signed with it. Restore overwatch.data_dir from a backup, or remove the key so a new one is generated (which needs a new DS at the parent)`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * A stored key a newer OpenGSLB wrote: a state or a field this version does
 * not know. Not damage, so not the advice of corrupt() (restore a backup,
 * remove the key): the fix is to run one version everywhere.
 */
function newer(location: string, stored: { zone: unknown; keyTag: unknown }, what: string): OpenGslbError {
  return new OpenGslbError(
    'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT',
    `${location}: DNSSEC key ${String(stored.keyTag)} of zone ${String(stored.zone)} has ${what}: written by a newer OpenGSLB? upgrade every overwatch to the same version (docs/dnssec.md#upgrading-several-overwatches)`,
  );
}

/** What a state name looks like (a newer version's state is one too). */
const STATE_NAME = /^[a-z][a-z_]{0,31}$/;
/** What a field name looks like; another one is quoted in a message. */
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]{0,39}$/;
/** Every field of StoredDnssecKey: toStoredKey writes no other. */
const STORED_FIELDS: ReadonlySet<string> = new Set<keyof StoredDnssecKey>(['zone', 'keyTag', 'algorithm', 'flags', 'publicKey', 'createdAtMs', 'state', 'publishAtMs', 'withdrawnAtMs', 'privateKeyPkcs8']);

/**
 * Rebuilds a key from the store's record and checks it completely: a known
 * algorithm, state and fields, a private key that parses and matches the
 * algorithm, and a public key and key tag that match the private key. Throws
 * OPENGSLB_ERR_DNSSEC_KEY_CORRUPT naming `location`, the zone and the key tag
 * when anything is off, so a damaged key never signs (a state or field of a
 * newer version: the message says so, newer()).
 */
export function keyFromStored(stored: StoredDnssecKey, location: string): DnssecKey {
  let alg: DnssecAlgorithmNumber;
  try {
    alg = algorithmNumber(algorithmName(stored.algorithm));
  } catch (err) {
    throw corrupt(location, stored, `algorithm ${stored.algorithm} is not one we sign with (13 or 15)`, err);
  }
  if (stored.flags !== CSK_FLAGS) throw corrupt(location, stored, `flags ${stored.flags}, expected ${CSK_FLAGS}`);
  if (!KEY_STATES.includes(stored.state as DnssecKeyState)) {
    // A state name this version lacks is a newer overwatch's (mixed versions during an upgrade), not damage.
    if (typeof stored.state === 'string' && STATE_NAME.test(stored.state)) throw newer(location, stored, `state "${stored.state}", which this version does not know (it knows ${KEY_STATES.join(', ')})`);
    throw corrupt(location, stored, `state ${JSON.stringify(stored.state) ?? String(stored.state)}, expected one of ${KEY_STATES.join(', ')}`);
  }
  const unknown = Object.keys(stored).filter((f) => !STORED_FIELDS.has(f));
  if (unknown.length > 0) {
    const names = unknown.slice(0, 5).map((f) => (FIELD_NAME.test(f) ? f : JSON.stringify(f.slice(0, 40)))).join(', ');
    throw newer(location, stored, `field${unknown.length > 1 ? 's' : ''} ${names}${unknown.length > 5 ? ', …' : ''}, which this version does not know`);
  }
  // A key from a peer or the bus is stored as given: a creation time the store
  // would not read back (not a number), or one no Date can show (the status
  // API, the rollover switch), would break this node's next start or reload.
  const created: unknown = stored.createdAtMs;
  if (typeof created !== 'number' || !Number.isFinite(created) || created < 0 || created > MAX_DATE_MS) {
    throw corrupt(location, stored, `created ${JSON.stringify(created) ?? String(created)}, expected epoch milliseconds, 0..${MAX_DATE_MS}`);
  }
  for (const field of ['publishAtMs', 'withdrawnAtMs'] as const) {
    const at: unknown = stored[field];
    if (at !== undefined && (typeof at !== 'number' || !Number.isFinite(at) || at < 0 || at > MAX_DATE_MS)) {
      throw corrupt(location, stored, `${field} ${JSON.stringify(at) ?? String(at)}, expected epoch milliseconds, 0..${MAX_DATE_MS}`);
    }
  }
  if (stored.state === 'withdrawn' && stored.withdrawnAtMs === undefined) throw corrupt(location, stored, 'state "withdrawn" without withdrawnAtMs, expected the time it left the DNSKEY RRset');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(stored.privateKeyPkcs8, 'base64'), format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw corrupt(location, stored, `the private key does not parse as PKCS#8 (${(err as Error).message})`, err);
  }
  try {
    createSignerKey(nameToWire(stored.zone), stored.keyTag, alg, privateKey);
  } catch (err) {
    throw corrupt(location, stored, (err as Error).message, err);
  }
  const publicKey = Buffer.from(publicKeyField(privateKey, alg));
  if (publicKey.length !== PUBLIC_KEY_LEN[alg] || publicKey.toString('base64') !== stored.publicKey) {
    throw corrupt(location, stored, 'the stored public key does not belong to the private key');
  }
  const tag = keyTagOf(dnskeyRdata(stored.flags, alg, publicKey));
  if (tag !== stored.keyTag) throw corrupt(location, stored, `the key's tag is ${tag}, not the stored ${stored.keyTag}`);
  const info: DnssecKeyInfo = Object.freeze({
    zone: stored.zone,
    keyTag: stored.keyTag,
    algorithm: alg,
    flags: stored.flags,
    publicKey: stored.publicKey,
    createdAtMs: stored.createdAtMs,
    state: stored.state as DnssecKeyState,
    ...(stored.publishAtMs === undefined ? {} : { publishAtMs: stored.publishAtMs }),
    ...(stored.withdrawnAtMs === undefined ? {} : { withdrawnAtMs: stored.withdrawnAtMs }),
  });
  return { info, secret: new PrivateKeyMaterial(privateKey) };
}

/** SignerKeys made so far: a key (immutable; a new state is a new key) is checked once, not at every publish. */
const signerKeys = new WeakMap<DnssecKey, SignerKey>();

/** The SignerKey that signs a zone with this key (pass it, or its parts, to a worker). */
export function signerKeyOf(key: DnssecKey): SignerKey {
  let signer = signerKeys.get(key);
  if (signer === undefined) {
    signer = createSignerKey(nameToWire(key.info.zone), key.info.keyTag, key.info.algorithm, key.secret.keyObject);
    signerKeys.set(key, signer);
  }
  return signer;
}

/** The keys of one zone, in creation order, and which one signs. */
export interface ZoneKeys {
  readonly zone: string;
  /** Every key of the zone in the store (published, active, retired), oldest first. */
  readonly keys: readonly DnssecKey[];
  /** The newest active key: the one that signs. */
  readonly active: DnssecKey;
}

/** What ensureZoneKeys did, for the caller to log. */
export interface EnsureKeysResult {
  readonly zones: ReadonlyMap<string, ZoneKeys>;
  /** Keys generated now (zones that had none). */
  readonly created: readonly DnssecKeyInfo[];
  /** Zones whose active key uses another algorithm than the config asks for: they keep signing with it until a rollover. */
  readonly algorithmMismatches: readonly { readonly zone: string; readonly keyTag: number; readonly algorithm: DnssecAlgorithmName }[];
}

/**
 * Loads the keys of each zone of `zones` from the store and generates (and
 * stores) a key for each that has no active one, so the same key signs after
 * a restart. Keys of zones not listed stay in the store untouched (not read).
 * Throws OPENGSLB_ERR_DNSSEC_KEY_CORRUPT for a damaged stored key,
 * OPENGSLB_ERR_DNSSEC_ALGORITHM for an unknown algorithm name, and
 * OPENGSLB_ERR_STATE_WRITE when a new key cannot be stored (then nothing signs
 * with it: a key that is not stored would change at the next start). With
 * `write: false` a new key is generated but not stored: the caller stores it
 * (the zone's `active`) before anything signs with it (Keyring.commit).
 */
export async function ensureZoneKeys(
  store: StateStore,
  zones: readonly string[],
  algorithm: string,
  opts: {
    readonly nowMs?: () => number;
    /** Turns a stored key into a key (default keyFromStored); the keyring passes one that remembers the keys it parsed. */
    readonly parse?: (stored: StoredDnssecKey) => DnssecKey;
    /** false: leave new keys unstored (default true). */
    readonly write?: boolean;
  } = {},
): Promise<EnsureKeysResult> {
  const wanted = algorithmNumber(algorithm);
  const now = opts.nowMs ?? Date.now;
  const parse = opts.parse ?? ((stored: StoredDnssecKey) => keyFromStored(stored, store.location));
  const result = new Map<string, ZoneKeys>();
  const created: DnssecKeyInfo[] = [];
  const mismatches: { zone: string; keyTag: number; algorithm: DnssecAlgorithmName }[] = [];
  for (const zone of zones) {
    const keys = store.loadZoneDnssecKeys(zone).map(parse).sort((a, b) => a.info.createdAtMs - b.info.createdAtMs || a.info.keyTag - b.info.keyTag);
    let active = newestActive(keys);
    if (active === null) {
      active = await generateZoneKey(zone, algorithm, { nowMs: now(), avoidTags: new Set(keys.map((k) => k.info.keyTag)) });
      if (opts.write !== false) await store.putDnssecKey(toStoredKey(active));
      keys.push(active);
      created.push(active.info);
    } else if (active.info.algorithm !== wanted) {
      mismatches.push({ zone, keyTag: active.info.keyTag, algorithm: algorithmName(active.info.algorithm) });
    }
    result.set(zone, { zone, keys, active });
  }
  return { zones: result, created, algorithmMismatches: mismatches };
}

function newestActive(keys: readonly DnssecKey[]): DnssecKey | null {
  let best: DnssecKey | null = null;
  for (const k of keys) if (k.info.state === 'active' && (best === null || k.info.createdAtMs >= best.info.createdAtMs)) best = k;
  return best;
}

/** The DNSKEY rdatas a zone publishes at `nowMs`: its active keys and its published ones past their publishAtMs (inDnskeySet). */
export function publishedDnskeys(zone: ZoneKeys, nowMs: number): Uint8Array[] {
  return zone.keys.filter((k) => inDnskeySet(k.info, nowMs)).map((k) => dnskeyRdataOf(k.info));
}
