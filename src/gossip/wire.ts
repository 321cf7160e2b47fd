// Main thread (agent and overwatch), per message. One message on the wire:
// the MessagePack body, signed by the agent's key, wrapped with its
// signature(s) and sealed (envelope.ts). The agent seals a message once and
// sends the same bytes to every overwatch (and, later, to a NATS subject).
//
//   sealed = envelope( msgpack([ body, signature ]) )                 agent message
//          | envelope( msgpack([ body, signature, previousSignature ]) )  register during a key rotation
//          | envelope( msgpack([ body ]) )                            ack (overwatch → agent, unsigned)
//   body   = msgpack(message map)                                     (messages.ts)
//   signature = Sign(agent key, "opengslb agent message v1\0" || body)
//
// Signing the body bytes (not a re-encoding) means the verifier checks
// exactly what it decodes.

import { sign, verify, type KeyObject } from 'node:crypto';
import type { DropReason } from './drop-reasons.ts';
import { openEnvelope, sealEnvelope, type Keyring } from './envelope.ts';
import { decodeMsgpack, encodeMsgpack, validateMessage, type Message } from './messages.ts';

/** Prefix of every signed byte string: a signature over a message can never pass for anything else. */
export const SIGN_CONTEXT = Buffer.from('opengslb agent message v1\0', 'ascii');
/** Longest signature accepted (Ed25519 and P-256 in IEEE P1363 form are 64 bytes). */
const MAX_SIGNATURE_LEN = 132;

/**
 * Signs `body` with an Ed25519 or P-256 private key. P-256 signatures are
 * IEEE P1363 (r || s, 64 bytes) so their size is fixed. Throws TypeError for
 * another key type (identity.ts only makes these two).
 */
export function signBody(key: KeyObject, body: Uint8Array): Buffer {
  const data = Buffer.concat([SIGN_CONTEXT, body]);
  if (key.asymmetricKeyType === 'ed25519') return sign(null, data, key);
  if (key.asymmetricKeyType === 'ec') return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
  throw new TypeError(`cannot sign with a ${key.asymmetricKeyType} key, expected ed25519 or ec (P-256)`);
}

/** Checks a signature made by signBody against a public key. Never throws: false for any mismatch or unusable key. */
export function verifyBody(key: KeyObject, body: Uint8Array, signature: Uint8Array): boolean {
  try {
    const data = Buffer.concat([SIGN_CONTEXT, body]);
    if (key.asymmetricKeyType === 'ed25519') return verify(null, data, key, signature);
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
      return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    return false;
  } catch {
    return false;
  }
}

/**
 * Encodes, signs and seals one message. `previousKey` adds a second
 * signature by the key being rotated out (register only); `envelopeKeyId`
 * picks the keyring's key to seal under (default: its primary). Returns the
 * sealed bytes; they may be sent to any number of receivers.
 */
export function sealMessage(keyring: Keyring, message: Message, key: KeyObject | null, previousKey: KeyObject | null = null, envelopeKeyId?: number): Buffer {
  const body = encodeMsgpack(message);
  const parts: Buffer[] = [body];
  if (key !== null) parts.push(signBody(key, body));
  if (key !== null && previousKey !== null) parts.push(signBody(previousKey, body));
  return sealEnvelope(keyring, encodeMsgpack(parts), envelopeKeyId);
}

/** An opened, validated message with the exact body bytes its signatures cover. */
export interface OpenedMessage {
  readonly message: Message;
  readonly body: Buffer;
  /** null for an unsigned message (ack). */
  readonly signature: Buffer | null;
  readonly previousSignature: Buffer | null;
  readonly keyId: number;
}

/** What opening sealed bytes gives: the message, or why it is dropped (and, for invalid_message, which field). */
export type OpenMessageResult =
  | { readonly ok: true; readonly opened: OpenedMessage }
  | { readonly ok: false; readonly reason: DropReason; readonly detail: string | null };

/**
 * Opens sealed bytes into a validated message. Checks signatures' presence
 * and size but not their validity (that needs the pin: verifier.ts). Never
 * throws; `sealed` is only read.
 */
export function openMessage(keyring: Keyring, sealed: Uint8Array): OpenMessageResult {
  const envelope = openEnvelope(keyring, sealed);
  if (!envelope.ok) return { ok: false, reason: envelope.reason, detail: null };
  const outer = decodeMsgpack(envelope.plaintext);
  const parts = outer?.value;
  if (!Array.isArray(parts) || parts.length < 1 || parts.length > 3 || !parts.every((p) => Buffer.isBuffer(p))) {
    return { ok: false, reason: 'malformed', detail: 'expected a MessagePack list of 1 to 3 byte strings' };
  }
  const [body, signature = null, previousSignature = null] = parts as Buffer[];
  if ((signature !== null && signature.length > MAX_SIGNATURE_LEN) || (previousSignature !== null && previousSignature.length > MAX_SIGNATURE_LEN)) {
    return { ok: false, reason: 'malformed', detail: `a signature longer than ${MAX_SIGNATURE_LEN} bytes` };
  }
  const decoded = decodeMsgpack(body);
  if (decoded === undefined) return { ok: false, reason: 'malformed', detail: 'the body is not one MessagePack value' };
  const valid = validateMessage(decoded.value);
  if (!valid.ok) return { ok: false, reason: 'invalid_message', detail: valid.detail };
  const signed = valid.message.type !== 'ack';
  if (signed !== (signature !== null) || (previousSignature !== null && valid.message.type !== 'register')) {
    return { ok: false, reason: 'malformed', detail: signed ? `a ${valid.message.type} without its signature` : 'an ack must not be signed' };
  }
  return { ok: true, opened: { message: valid.message, body, signature, previousSignature, keyId: envelope.keyId } };
}
