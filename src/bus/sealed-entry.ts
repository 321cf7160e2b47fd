// Main thread (overwatch), cold path. The seal on every entry of the
// operator-state bucket: AES-256-GCM under a key derived from
// overwatch.bus.state_secret (shared by the overwatches, never by agents),
// with the bucket and the entry's key as additional data. NATS stores only
// these bytes: it can neither read an entry (DNSSEC private keys included)
// nor forge one, nor move one to another key. Entries are also opened with
// keys from overwatch.bus.previous_state_secrets (never sealed with), so the
// secret rotates one overwatch at a time (docs/scaling.md).
//
//   bytes = 0x01 | iv (12) | AES-256-GCM(key, iv, JSON {atMs, by, value}, aad "opengslb-operator-v1|<bucket>|<kv key>") | tag (16)

import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { MAX_DATE_MS } from '../lib/time.ts';

const VERSION = 'opengslb-operator-v1';
const FORMAT = 1;
const IV_LEN = 12;
const TAG_LEN = 16;

/** What every sealed entry carries besides its value. */
export interface EntryPayload {
  /** When the writing overwatch made the change, epoch milliseconds (the newer write wins). */
  readonly atMs: number;
  /** The writing overwatch process (a random id per start): its own writes coming back are skipped. */
  readonly by: string;
  /** The kind's value, or null for a removal (a tombstone: removals are sealed puts, never KV deletes). */
  readonly value: unknown;
}

/**
 * The keys entries are opened with: state_secret's first (the only one
 * entries are sealed with), then one per overwatch.bus.previous_state_secrets.
 */
export function deriveStateKeys(stateSecret: string, previousStateSecrets: readonly string[]): Buffer[] {
  return [stateSecret, ...previousStateSecrets].map(deriveStateKey);
}

/** The AES key of the bucket, from state_secret (standard base64 of 32 bytes, checked by the config). */
export function deriveStateKey(stateSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(stateSecret, 'base64'), Buffer.from(VERSION), Buffer.from('operator state bucket'), 32));
}

function aad(bucket: string, kvKey: string): Buffer {
  return Buffer.from(`${VERSION}|${bucket}|${kvKey}`);
}

/** Seals one entry for `kvKey` in `bucket`. The returned bytes are the caller's. */
export function sealEntry(key: Buffer, bucket: string, kvKey: string, payload: EntryPayload): Buffer {
  const iv = randomBytes(IV_LEN);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(bucket, kvKey));
  const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT), iv, body, cipher.getAuthTag()]);
}

/** An entry's atMs: whole epoch milliseconds a Date can show (the replica prints them, and compares them). */
function isEntryTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_DATE_MS;
}

/** Why an entry was not opened. */
export type OpenFailure = 'unauthenticated' | 'malformed';

/**
 * Opens the bytes found under `kvKey`. Never throws: bytes that do not open
 * under this key for this entry (another secret, a changed byte, an entry
 * copied from another key) are 'unauthenticated'; bytes that open but are
 * not a payload are 'malformed'.
 */
export function openEntry(key: Buffer, bucket: string, kvKey: string, bytes: Uint8Array): { readonly ok: true; readonly payload: EntryPayload } | { readonly ok: false; readonly reason: OpenFailure } {
  if (bytes.length < 1 + IV_LEN + TAG_LEN || bytes[0] !== FORMAT) return { ok: false, reason: 'unauthenticated' };
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(1, 1 + IV_LEN));
    decipher.setAAD(aad(bucket, kvKey));
    decipher.setAuthTag(data.subarray(data.length - TAG_LEN));
    plain = Buffer.concat([decipher.update(data.subarray(1 + IV_LEN, data.length - TAG_LEN)), decipher.final()]);
  } catch {
    return { ok: false, reason: 'unauthenticated' };
  }
  try {
    const p = JSON.parse(plain.toString('utf8')) as Record<string, unknown>;
    if (typeof p !== 'object' || p === null || !isEntryTime(p.atMs) || typeof p.by !== 'string' || !('value' in p)) return { ok: false, reason: 'malformed' };
    return { ok: true, payload: { atMs: p.atMs, by: p.by, value: p.value } };
  } catch {
    return { ok: false, reason: 'malformed' };
  }
}

/**
 * Opens the bytes found under `kvKey` with the first of `keys` that
 * authenticates them (deriveStateKeys: the current one first); `keyIndex`
 * says which (0: the current secret; more: a previous one, so the entry
 * should be sealed again). Bytes that open under a key but hold no payload
 * are 'malformed' (they are authentic: the other keys are not tried).
 * Never throws.
 */
export function openEntryWithAny(keys: readonly Buffer[], bucket: string, kvKey: string, bytes: Uint8Array): { readonly ok: true; readonly payload: EntryPayload; readonly keyIndex: number } | { readonly ok: false; readonly reason: OpenFailure } {
  for (let i = 0; i < keys.length; i++) {
    const opened = openEntry(keys[i], bucket, kvKey, bytes);
    if (opened.ok) return { ok: true, payload: opened.payload, keyIndex: i };
    if (opened.reason === 'malformed') return opened;
  }
  return { ok: false, reason: 'unauthenticated' };
}
