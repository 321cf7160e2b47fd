// Main thread (agent and overwatch), per message. Seals plaintext bytes with
// AES-256-GCM under the shared gossip key, and opens sealed bytes again. A
// keyring holds the key messages are sealed with plus the keys still
// accepted, so a key can rotate without stopping every node at once (the
// idea of memberlist's keyring, with a key id in the header instead of
// trying every key). Opening never throws: bad bytes give a drop reason.
//
// Sealed layout (every multi-byte field big-endian):
//
//   off  len  field
//    0    4   magic "OGSL"
//    4    1   version (1)
//    5    1   flags (0; any other value is refused)
//    6    4   key id: the first 4 bytes of SHA-256("opengslb gossip key id v1" || key)
//   10   24   nonce: 192 random bits, fresh for every message
//   34    n   ciphertext (as long as the plaintext)
//   34+n 16   GCM authentication tag
//
// Bytes 0..33 are the additional authenticated data: changing the version,
// the key id or the nonce fails the tag check like changing the ciphertext.
//
// The 192-bit nonce works as in C2SP XAES-256-GCM: its first 12 bytes derive
// a one-message key, HMAC-SHA-256(key, context || nonce[0..12]), and its last
// 12 bytes are the GCM nonce. Plain AES-GCM with random 96-bit nonces must
// stop at 2^32 messages per key (NIST SP 800-38D §8.3), which 5 000 agents
// heartbeating every 10 s reach in about 99 days; with 192 random bits a
// repeat is not a concern for any fleet's lifetime. It costs one HMAC per
// message (a few µs, measured in docs/agents.md).

import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { OpenGslbError } from '../lib/errors.ts';
import type { DropReason } from './drop-reasons.ts';

/** "OGSL": OpenGSLB sealed message. */
export const ENVELOPE_MAGIC = 0x4f47534c;
/** The only envelope version this code writes and reads. */
export const ENVELOPE_VERSION = 1;
/** Bytes before the ciphertext: magic, version, flags, key id, nonce. */
export const ENVELOPE_HEADER_LEN = 34;
/** GCM tag length: the full 128 bits (shorter tags are never accepted). */
export const ENVELOPE_TAG_LEN = 16;
/** Bytes a sealed message adds to its plaintext. */
export const ENVELOPE_OVERHEAD = ENVELOPE_HEADER_LEN + ENVELOPE_TAG_LEN;
/** Length of a gossip key in bytes (AES-256). */
export const GOSSIP_KEY_LEN = 32;

const NONCE_OFF = 10;
const NONCE_LEN = 24;
/** Where the GCM nonce (the nonce's second half) starts. */
const GCM_NONCE_OFF = NONCE_OFF + 12;
const KEY_ID_CONTEXT = Buffer.from('opengslb gossip key id v1', 'ascii');
const MESSAGE_KEY_CONTEXT = Buffer.from('opengslb gossip message key v1\0', 'ascii');

/** Derives the one-message AES key from the gossip key and the nonce's first 12 bytes. */
function messageKey(key: Buffer, sealed: Buffer): Buffer {
  return createHmac('sha256', key).update(MESSAGE_KEY_CONTEXT).update(sealed.subarray(NONCE_OFF, GCM_NONCE_OFF)).digest();
}
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** One gossip key and its 32-bit id (derived from the key, so every node computes the same id). */
export interface GossipKey {
  readonly id: number;
  readonly key: Buffer;
}

/** Computes the key id of a 32-byte key: the first 4 bytes of SHA-256(context || key), as an unsigned integer. */
export function gossipKeyId(key: Uint8Array): number {
  return createHash('sha256').update(KEY_ID_CONTEXT).update(key).digest().readUInt32BE(0);
}

/**
 * Decodes one key written as standard base64 of exactly 32 bytes (what
 * `openssl rand -base64 32` prints). Returns `{ error }` saying what is wrong;
 * the error never quotes the key.
 */
export function parseGossipKey(text: string): Buffer | { readonly error: string } {
  const expected = 'expected standard base64 of exactly 32 bytes (44 characters ending in "="), for example from "openssl rand -base64 32"';
  if (!BASE64_KEY.test(text)) return { error: `is not a gossip key (${text.length} characters), ${expected}` };
  const key = Buffer.from(text, 'base64');
  // Non-canonical base64 (stray low bits in the last character) decodes too; refuse it so one key has one spelling.
  if (key.length !== GOSSIP_KEY_LEN || key.toString('base64') !== text) return { error: `is not canonical base64, ${expected}` };
  return key;
}

/**
 * Holds the key messages are sealed with (`primary`) and every key accepted
 * when opening (the primary plus `accepted`). Immutable.
 */
export class Keyring {
  readonly primary: GossipKey;
  readonly #byId: Map<number, GossipKey>;

  /**
   * Creates a keyring from raw 32-byte keys. Throws OPENGSLB_ERR_GOSSIP_KEY
   * when a key has the wrong length or two different keys share an id.
   */
  constructor(primary: Uint8Array, accepted: readonly Uint8Array[] = []) {
    this.#byId = new Map();
    const all = [primary, ...accepted];
    for (let i = 0; i < all.length; i++) {
      const raw = all[i];
      const where = i === 0 ? 'the primary key' : `accepted key ${i}`;
      if (raw.length !== GOSSIP_KEY_LEN) {
        throw new OpenGslbError('OPENGSLB_ERR_GOSSIP_KEY', `${where} is ${raw.length} bytes, expected ${GOSSIP_KEY_LEN} (generate one with: openssl rand -base64 32)`);
      }
      const key: GossipKey = { id: gossipKeyId(raw), key: Buffer.from(raw) };
      const same = this.#byId.get(key.id);
      if (same !== undefined) {
        if (same.key.equals(key.key)) continue;
        throw new OpenGslbError('OPENGSLB_ERR_GOSSIP_KEY', `${where} has the same key id as another key (a 1 in 4 billion chance), expected a different key: generate one with openssl rand -base64 32`);
      }
      this.#byId.set(key.id, key);
    }
    this.primary = this.#byId.get(gossipKeyId(primary)) as GossipKey;
  }

  /**
   * Creates a keyring from base64 keys (config values). Throws
   * OPENGSLB_ERR_GOSSIP_KEY naming `names[i]` (the config key) when one is malformed.
   */
  static fromBase64(primary: string, accepted: readonly string[] = [], names?: { primary: string; accepted: string }): Keyring {
    const decode = (text: string, name: string): Buffer => {
      const key = parseGossipKey(text);
      if ('error' in key) throw new OpenGslbError('OPENGSLB_ERR_GOSSIP_KEY', `${name} ${key.error}`);
      return key;
    };
    return new Keyring(
      decode(primary, names?.primary ?? 'the gossip key'),
      accepted.map((text, i) => decode(text, `${names?.accepted ?? 'accepted key'}[${i}]`)),
    );
  }

  /** Returns the key with this id, or undefined when the keyring has none. */
  find(id: number): GossipKey | undefined {
    return this.#byId.get(id);
  }

  /** Key ids in the keyring, primary first. */
  ids(): number[] {
    return [this.primary.id, ...[...this.#byId.keys()].filter((id) => id !== this.primary.id)];
  }
}

/**
 * Seals `plaintext` under the keyring's primary key, or under its key
 * `keyId` when it holds that one (an ack goes out under the key its message
 * came in under), with a fresh random 192-bit nonce. Returns a new Buffer of
 * plaintext.length + ENVELOPE_OVERHEAD bytes. Never throws for any plaintext.
 */
export function sealEnvelope(keyring: Keyring, plaintext: Uint8Array, keyId?: number): Buffer {
  const key = (keyId === undefined ? undefined : keyring.find(keyId)) ?? keyring.primary;
  const out = Buffer.allocUnsafe(ENVELOPE_OVERHEAD + plaintext.length);
  out.writeUInt32BE(ENVELOPE_MAGIC, 0);
  out[4] = ENVELOPE_VERSION;
  out[5] = 0;
  out.writeUInt32BE(key.id, 6);
  randomBytes(NONCE_LEN).copy(out, NONCE_OFF);
  const cipher = createCipheriv('aes-256-gcm', messageKey(key.key, out), out.subarray(GCM_NONCE_OFF, ENVELOPE_HEADER_LEN), { authTagLength: ENVELOPE_TAG_LEN });
  cipher.setAAD(out.subarray(0, ENVELOPE_HEADER_LEN));
  let off = ENVELOPE_HEADER_LEN;
  off += cipher.update(plaintext).copy(out, off);
  off += cipher.final().copy(out, off);
  cipher.getAuthTag().copy(out, off);
  return out;
}

/** What opening sealed bytes gives: the plaintext and the id of the key that opened it, or why not. */
export type OpenResult =
  | { readonly ok: true; readonly plaintext: Buffer; readonly keyId: number }
  | { readonly ok: false; readonly reason: DropReason };

/**
 * Opens sealed bytes: checks the header, finds the key by id, verifies the
 * tag and decrypts. Never throws: too short, bad magic, unknown version or
 * flags, an unknown key id, or a failed tag check (wrong key, any changed
 * byte, truncation) give `{ ok: false, reason }`. `sealed` is only read.
 */
export function openEnvelope(keyring: Keyring, sealed: Uint8Array): OpenResult {
  if (sealed.length < ENVELOPE_OVERHEAD) return { ok: false, reason: 'too_short' };
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (buf.readUInt32BE(0) !== ENVELOPE_MAGIC) return { ok: false, reason: 'bad_magic' };
  if (buf[4] !== ENVELOPE_VERSION || buf[5] !== 0) return { ok: false, reason: 'bad_version' };
  const key = keyring.find(buf.readUInt32BE(6));
  if (key === undefined) return { ok: false, reason: 'unknown_key' };
  const tagOff = buf.length - ENVELOPE_TAG_LEN;
  try {
    const decipher = createDecipheriv('aes-256-gcm', messageKey(key.key, buf), buf.subarray(GCM_NONCE_OFF, ENVELOPE_HEADER_LEN), { authTagLength: ENVELOPE_TAG_LEN });
    decipher.setAAD(buf.subarray(0, ENVELOPE_HEADER_LEN));
    decipher.setAuthTag(buf.subarray(tagOff));
    const head = decipher.update(buf.subarray(ENVELOPE_HEADER_LEN, tagOff));
    const tail = decipher.final();
    return { ok: true, plaintext: tail.length === 0 ? head : Buffer.concat([head, tail]), keyId: key.id };
  } catch {
    // final() throws when the tag does not match: wrong key (with a colliding id) or changed bytes.
    return { ok: false, reason: 'decrypt_failed' };
  }
}
