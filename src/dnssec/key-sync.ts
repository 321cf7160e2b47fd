// Main thread, cold path. DNSSEC key sync between overwatches that serve the
// same zones (overwatch.dnssec.key_sync): each node polls every peer's admin
// API, GET /api/v1/dnssec/keysync, and merges what it gets into its state
// store, so every node publishes the same DNSKEY RRset and signs with the
// same key.
//
//   poller                                                  peer
//   ──────                                                  ────
//   nonce, t; mac = HMAC(authKey, "v1|t|nonce") ──GET────►  checks mac (same secret) and |now − t| ≤ 60 s,
//                                                           refuses a nonce seen before (403 otherwise)
//                                 ◄──{v, iv, sealed}──────  sealed = AES-256-GCM(encKey, iv, keys JSON,
//                                                                              aad = "v1|nonce")
//   opens it (a wrong secret or a changed byte fails the tag), checks every key
//   (keyFromStored: the public key and tag belong to the private key), merges:
//     a key it lacks ── stored as the peer has it
//     a key both have ── the state further along wins (published → active → withdrawn → retired)
//
// authKey and encKey are HKDF-SHA256 of shared_secret. The private keys only
// ever travel inside `sealed`: an answer read without the secret shows
// nothing, and an answer from another exchange does not open (the nonce is
// its additional data). "The newest key per zone wins": when two nodes made
// keys on their own, both end up with both; the newest active key signs
// everywhere (keys.ts newestActive) and the other keeps signing the DNSKEY
// RRset until `rollover finish`, so a DS uploaded for either keeps validating.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DnssecKeySyncConfig } from '../config/types.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { AnswerTooLargeError, fetchFailureText, PEER_TRUST_REMEDY, readTextCapped } from '../lib/fetch-failure.ts';
import type { StateStore, StoredDnssecKey } from '../state/store.ts';
import { keyFromStored } from './keys.ts';

/** The request header that carries the proof of the shared secret. */
export const KEY_SYNC_HEADER = 'x-opengslb-key-sync';
/** The route peers poll. */
export const KEY_SYNC_PATH = '/api/v1/dnssec/keysync';
/** How far a request's time may be from ours. */
export const KEY_SYNC_SKEW_MS = 60_000;
const VERSION = 'opengslb-keysync-v1';
/** Largest key-sync answer read (a zone's keys take a few KiB sealed): more is not a peer's keys. */
const KEY_SYNC_ANSWER_MAX_BYTES = 16 * 1024 * 1024;
/** Most nonces remembered (two minutes' worth at any sane poll rate). */
const MAX_NONCES = 10_000;

const STATE_RANK: Readonly<Record<string, number>> = { published: 0, active: 1, withdrawn: 2, retired: 3 };

/** The two keys derived from key_sync.shared_secret. */
interface SyncKeys {
  readonly auth: Buffer;
  readonly enc: Buffer;
}

function deriveKeys(sharedSecret: string): SyncKeys {
  const secret = Buffer.from(sharedSecret, 'base64');
  const derive = (info: string): Buffer => Buffer.from(hkdfSync('sha256', secret, Buffer.from(VERSION), Buffer.from(info), 32));
  return { auth: derive('request authentication'), enc: derive('key encryption') };
}

function requestMac(keys: SyncKeys, t: string, nonce: string): Buffer {
  return createHmac('sha256', keys.auth).update(`${VERSION}|${t}|${nonce}`).digest();
}

/** The header value a poller sends: t=<unix ms>, n=<nonce hex>, mac=<base64>. */
export function signRequest(sharedSecret: string, nowMs: number = Date.now()): { header: string; nonce: string } {
  const keys = deriveKeys(sharedSecret);
  const t = String(Math.floor(nowMs));
  const nonce = randomBytes(16).toString('hex');
  return { header: `t=${t}, n=${nonce}, mac=${requestMac(keys, t, nonce).toString('base64')}`, nonce };
}

/** The body of GET /api/v1/dnssec/keysync: the keys, sealed. */
export interface SealedKeys {
  readonly v: 1;
  /** AES-GCM IV, base64. */
  readonly iv: string;
  /** Ciphertext and 16-byte tag, base64. */
  readonly sealed: string;
}

/**
 * KeySyncServer answers peers: checks the proof of the shared secret and
 * seals the keys of the store for that one request. One per overwatch.
 */
export class KeySyncServer {
  readonly #keys: SyncKeys;
  readonly #nonces = new Map<string, number>();

  constructor(sharedSecret: string) {
    this.#keys = deriveKeys(sharedSecret);
  }

  /**
   * Answers a poll whose proof header is `header`: the keys sealed for it.
   * Throws OPENGSLB_ERR_DNSSEC_KEY_SYNC (403) when the header is missing,
   * malformed, signed with another secret, too old or seen before.
   */
  answer(header: string | undefined, keys: readonly StoredDnssecKey[], nowMs: number = Date.now()): SealedKeys {
    const refuse = (why: string): never => {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_KEY_SYNC', `key sync refused: ${why}`);
    };
    if (header === undefined) return refuse(`no ${KEY_SYNC_HEADER} header; only an overwatch with the same overwatch.dnssec.key_sync.shared_secret may poll this`);
    const m = /^t=(\d{1,16}), n=([0-9a-f]{32}), mac=([A-Za-z0-9+/]{43}=)$/.exec(header);
    if (m === null) return refuse(`the ${KEY_SYNC_HEADER} header is malformed, expected "t=<unix ms>, n=<32 hex digits>, mac=<base64>"`);
    const [, t, nonce, mac] = m;
    const want = requestMac(this.#keys, t, nonce);
    const got = Buffer.from(mac, 'base64');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return refuse('the request is not signed with this node\'s overwatch.dnssec.key_sync.shared_secret; check that every peer has the same one');
    if (Math.abs(nowMs - Number(t)) > KEY_SYNC_SKEW_MS) return refuse(`the request was made ${Math.round((nowMs - Number(t)) / 1000)} s from now by this node's clock, expected within ${KEY_SYNC_SKEW_MS / 1000} s; check the clocks`);
    for (const [n, at] of this.#nonces) if (nowMs - at > 2 * KEY_SYNC_SKEW_MS) this.#nonces.delete(n);
    if (this.#nonces.has(nonce)) return refuse('the request was seen before (a replay)');
    if (this.#nonces.size >= MAX_NONCES) this.#nonces.delete(this.#nonces.keys().next().value as string);
    this.#nonces.set(nonce, nowMs);
    return seal(this.#keys, nonce, keys);
  }
}

function seal(keys: SyncKeys, nonce: string, stored: readonly StoredDnssecKey[]): SealedKeys {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keys.enc, iv);
  cipher.setAAD(Buffer.from(`${VERSION}|${nonce}`));
  const body = Buffer.concat([cipher.update(JSON.stringify({ keys: stored })), cipher.final(), cipher.getAuthTag()]);
  return { v: 1, iv: iv.toString('base64'), sealed: body.toString('base64') };
}

/** Opens an answer to the request with `nonce`; throws OPENGSLB_ERR_DNSSEC_KEY_SYNC when it does not open or parse. */
export function openSealed(sharedSecret: string, nonce: string, body: unknown): StoredDnssecKey[] {
  const fail = (why: string): never => {
    throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_KEY_SYNC', why);
  };
  const b = body as Partial<SealedKeys> | null;
  if (typeof b !== 'object' || b === null || b.v !== 1 || typeof b.iv !== 'string' || typeof b.sealed !== 'string') return fail('the answer is not sealed keys (expected {v: 1, iv, sealed})');
  const keys = deriveKeys(sharedSecret);
  const data = Buffer.from(b.sealed, 'base64');
  if (data.length < 16) return fail('the sealed keys are cut short');
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.enc, Buffer.from(b.iv, 'base64'));
    decipher.setAAD(Buffer.from(`${VERSION}|${nonce}`));
    decipher.setAuthTag(data.subarray(data.length - 16));
    plain = Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]);
  } catch {
    return fail('the answer does not open with this node\'s shared_secret (another secret, or changed on the way)');
  }
  const parsed = JSON.parse(plain.toString('utf8')) as { keys?: unknown };
  if (!Array.isArray(parsed.keys)) return fail('the opened answer has no key list');
  return parsed.keys as StoredDnssecKey[];
}

/** One peer's key-sync state, as the status API shows it. */
export interface KeySyncPeerView {
  readonly url: string;
  /** The last poll succeeded. */
  readonly ok: boolean;
  readonly last_attempt: string | null;
  readonly last_success: string | null;
  readonly last_error: string | null;
}

/** Key sync as the status API shows it. */
export interface KeySyncView {
  readonly enabled: boolean;
  /** Every peer's last poll succeeded (true without peers). */
  readonly in_sync: boolean;
  readonly peers: readonly KeySyncPeerView[];
}

interface PeerState {
  url: string;
  ok: boolean;
  lastAttemptMs: number | null;
  lastSuccessMs: number | null;
  lastError: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * KeySyncClient polls the peers and merges their keys into the store. It
 * never deletes a key and never moves a key's state back; a key whose parts
 * do not belong together is refused (keyFromStored) and the poll counts as
 * failed.
 */
export class KeySyncClient {
  readonly #store: StateStore;
  readonly #config: DnssecKeySyncConfig;
  readonly #peers: PeerState[];
  readonly #nowMs: () => number;

  constructor(store: StateStore, config: DnssecKeySyncConfig, nowMs: () => number = Date.now) {
    this.#store = store;
    this.#config = config;
    this.#peers = config.peers.map((url) => ({ url, ok: false, lastAttemptMs: null, lastSuccessMs: null, lastError: null }));
    this.#nowMs = nowMs;
  }

  get enabled(): boolean {
    return this.#peers.length > 0;
  }

  status(): KeySyncView {
    return {
      enabled: this.enabled,
      in_sync: this.#peers.every((p) => p.ok),
      peers: this.#peers.map((p) => ({ url: p.url, ok: p.ok, last_attempt: iso(p.lastAttemptMs), last_success: iso(p.lastSuccessMs), last_error: p.lastError })),
    };
  }

  /**
   * Polls every peer once (in parallel, each within key_sync.timeout) and
   * merges the keys of `zones` into the store. Returns the zones whose keys
   * changed. Never rejects: a peer that fails is marked so in status().
   */
  async pollOnce(zones: ReadonlySet<string>): Promise<string[]> {
    const secret = this.#config.sharedSecret;
    if (secret === null) return [];
    const results = await Promise.all(this.#peers.map((p) => this.#fetch(p, secret)));
    const changed = new Set<string>();
    for (let i = 0; i < results.length; i++) {
      const keys = results[i];
      if (keys === null) continue;
      try {
        for (const z of await mergeKeys(this.#store, keys, zones, `key-sync peer ${this.#peers[i].url}`)) changed.add(z);
      } catch (err) {
        this.#peers[i].ok = false;
        this.#peers[i].lastError = (err as Error).message;
      }
    }
    return [...changed];
  }

  async #fetch(peer: PeerState, secret: string): Promise<StoredDnssecKey[] | null> {
    peer.lastAttemptMs = this.#nowMs();
    const { header, nonce } = signRequest(secret, peer.lastAttemptMs);
    const url = `${peer.url.replace(/\/+$/, '')}${KEY_SYNC_PATH}`;
    try {
      const res = await fetch(url, { headers: { [KEY_SYNC_HEADER]: header, accept: 'application/json' }, signal: AbortSignal.timeout(this.#config.timeoutMs) });
      let body: unknown = null;
      try {
        body = JSON.parse(await readTextCapped(res, KEY_SYNC_ANSWER_MAX_BYTES)) as unknown;
      } catch (err) {
        if (err instanceof AnswerTooLargeError) throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_KEY_SYNC', `${url}: ${err.message} (a peer's keys take a few KiB per zone)`);
        if ((err as Error).name === 'TimeoutError') throw err;
      }
      if (res.status !== 200) {
        const said = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' ? (body as { error: string }).error : `HTTP ${res.status}`;
        throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_KEY_SYNC', `${url} answered ${res.status}: ${said}`);
      }
      const keys = openSealed(secret, nonce, body);
      peer.ok = true;
      peer.lastSuccessMs = this.#nowMs();
      peer.lastError = null;
      return keys;
    } catch (err) {
      peer.ok = false;
      const e = err as Error;
      peer.lastError = e.name === 'TimeoutError' ? `${url}: no answer within ${this.#config.timeoutMs} ms (key_sync.timeout)` : e instanceof OpenGslbError ? e.message : `${url}: ${fetchFailureText(err, url, PEER_TRUST_REMEDY)}`;
      return null;
    }
  }
}

/**
 * Merges keys another overwatch holds (a key-sync peer, the operator-state
 * bucket) into `store`, for the zones in `zones`: a key it lacks is stored as
 * given, a key both have takes the state further along (published → active →
 * withdrawn → retired); nothing is deleted or moved back. Returns the zones that changed.
 * Throws OPENGSLB_ERR_DNSSEC_KEY_CORRUPT for a key whose parts do not belong
 * together (or when the store's own keys cannot be read back),
 * OPENGSLB_ERR_DNSSEC_KEY_SYNC for another key under a tag the store holds
 * (`from` names the source in both); keys before it are merged. With
 * `onRefused`, such a key is handed to it instead and the merge goes on with
 * the next one: one call then does what one call per key did, in one read of
 * the store.
 */
export async function mergeKeys(
  store: StateStore,
  keys: readonly StoredDnssecKey[],
  zones: ReadonlySet<string>,
  from: string,
  onRefused?: (key: StoredDnssecKey, err: Error) => void,
): Promise<string[]> {
  // One read and parse of every stored key per call, not per key: a call per
  // key read them all each time, 8 s for 2000 keys already held (the start of
  // an overwatch that takes the bucket's keys; see mergeKey for one entry).
  let held: StoredDnssecKey[];
  try {
    held = store.loadDnssecKeys();
  } catch (err) {
    if (onRefused === undefined) throw err;
    // As a call per key did: each key is reported with the store's error.
    for (const k of keys) onRefused(k, err as Error);
    return [];
  }
  const local = new Map<string, StoredDnssecKey>();
  for (const k of held) local.set(`${k.zone}|${k.keyTag}`, k);
  const changed = new Set<string>();
  for (const k of keys) {
    if (typeof k !== 'object' || k === null || !zones.has(k.zone)) continue;
    const id = `${k.zone}|${k.keyTag}`;
    try {
      const stored = await mergeOne(store, local.get(id), k, from);
      if (stored === null) continue;
      // A later entry for the same key is judged against what is stored now,
      // as a call of its own would be: a state never moves back within a call.
      local.set(id, stored);
      changed.add(k.zone);
    } catch (err) {
      if (onRefused === undefined) throw err;
      onRefused(k, err as Error);
    }
  }
  return [...changed];
}

/**
 * Merges one key as mergeKeys does, reading only that key from the store
 * (one bus entry at a time must not cost a read of every key); `zones` is
 * asked with has() only, so the keyring's map serves without a copy. Resolves
 * to whether the store changed; throws as mergeKeys does, but reads no other
 * stored key, so only a damaged copy of this one is reported.
 */
export async function mergeKey(store: StateStore, key: StoredDnssecKey, zones: { has(zone: string): boolean }, from: string): Promise<boolean> {
  if (typeof key !== 'object' || key === null || !zones.has(key.zone)) return false;
  return (await mergeOne(store, store.loadDnssecKey(key.zone, key.keyTag), key, from)) !== null;
}

/** Stores `k` (or `mine` moved on to k's state) when the merge rule says so; resolves to what it stored, or null when nothing changed. */
async function mergeOne(store: StateStore, mine: StoredDnssecKey | undefined, k: StoredDnssecKey, from: string): Promise<StoredDnssecKey | null> {
  // Checks every field and that the key's parts belong together.
  keyFromStored(k, from);
  if (mine === undefined) {
    await store.putDnssecKey(k);
    return k;
  }
  if (mine.publicKey !== k.publicKey) {
    throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_KEY_SYNC', `${from} has another key with tag ${k.keyTag} in zone ${k.zone}; not merged (remove one of them and start a rollover)`);
  }
  if (keyStateRank(k.state) <= keyStateRank(mine.state)) return null;
  // A withdrawn key brings the time it left the DNSKEY RRset: it retires a DNSKEY TTL after, on every node alike.
  const moved = { ...mine, state: k.state, ...(k.withdrawnAtMs === undefined ? {} : { withdrawnAtMs: k.withdrawnAtMs }) };
  await store.putDnssecKey(moved);
  return moved;
}

/** How far along a key state is (published 0, active 1, withdrawn 2, retired 3; anything else -1): merges only move forward. */
export function keyStateRank(state: string): number {
  return STATE_RANK[state] ?? -1;
}
