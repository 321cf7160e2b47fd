// Worker, hot path (and the main thread for the secrets). DNS cookies (RFC
// 7873) with interoperable server cookies (RFC 9018): what a query's COOKIE
// option holds, whether its server cookie is one of ours, and the fresh
// server cookie we answer with. The server cookie is 16 bytes:
//
//   Version (1) = 1 │ Reserved (3) │ Timestamp (4, unix s) │ Hash (8)
//   Hash = SipHash-2-4(secret, Client Cookie │ Version │ Reserved │ Timestamp │ Client IP)
//
// The secrets are derived by the main thread (src/overwatch/cookie-secrets.ts)
// and handed to every worker; a worker checks a cookie against the current
// secret, then the previous and the next one (rotation overlap, and peers
// whose clock crossed the rotation a little earlier). Nothing here allocates.

import { siphash24 } from '../lib/siphash.ts';

/** A client cookie is exactly 8 bytes (RFC 7873 §4.1). */
export const CLIENT_COOKIE_LEN = 8;
/** Our server cookies are 16 bytes (RFC 9018 §4). */
export const SERVER_COOKIE_LEN = 16;
/** The COOKIE option we answer with: the client cookie and our server cookie. */
export const REPLY_COOKIE_LEN = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
/** RFC 9018 §4.3: a server cookie older than this is not accepted. */
export const COOKIE_MAX_AGE_SEC = 3600;
/** RFC 9018 §4.3: a server cookie more than this far in the future (clock skew between servers) is not accepted. */
export const COOKIE_MAX_FUTURE_SEC = 300;
/** BADCOOKIE, an extended rcode (RFC 7873 §8). */
export const RCODE_BADCOOKIE = 23;

/** Is an option length a well-formed COOKIE (RFC 7873 §5.2.2: 8, or 16 to 40 bytes)? */
export function cookieLengthOk(len: number): boolean {
  return len === CLIENT_COOKIE_LEN || (len >= 16 && len <= 40);
}

/**
 * The secrets a worker checks cookies with: up to three SipHash keys (sipKey
 * form, 4 words each) in the order current, previous, next. Replaced whole
 * by the main thread's message; the worker swaps between packets.
 */
export interface CookieKeys {
  /** 4 × count words. */
  readonly words: Uint32Array;
  readonly count: number;
}

/** Per-worker scratch for building the hashed message: 8 + 1 + 3 + 4 + 16 bytes. */
export class CookieScratch {
  readonly msg = new Uint8Array(32);
  readonly hash = new Uint8Array(8);
}

/**
 * Fills scratch.msg with client cookie (req[clientOff…+8]) | version 1 |
 * reserved (3 bytes from `reservedSrc` at reservedOff, or zeros when null) |
 * timestamp | client IP (ip[0, ipLen)); returns the message length.
 */
function message(scratch: CookieScratch, req: Uint8Array, clientOff: number, reservedSrc: Uint8Array | null, reservedOff: number, ts: number, ip: Uint8Array, ipLen: number): number {
  const m = scratch.msg;
  for (let i = 0; i < CLIENT_COOKIE_LEN; i++) m[i] = req[clientOff + i];
  m[8] = 1;
  if (reservedSrc === null) {
    m[9] = 0;
    m[10] = 0;
    m[11] = 0;
  } else {
    m[9] = reservedSrc[reservedOff];
    m[10] = reservedSrc[reservedOff + 1];
    m[11] = reservedSrc[reservedOff + 2];
  }
  m[12] = ts >>> 24;
  m[13] = (ts >>> 16) & 0xff;
  m[14] = (ts >>> 8) & 0xff;
  m[15] = ts & 0xff;
  for (let i = 0; i < ipLen; i++) m[16 + i] = ip[i];
  return 16 + ipLen;
}

/**
 * Writes our 24-byte COOKIE option data to out[off…]: the client cookie from
 * req[clientOff…] and a fresh server cookie stamped `nowSec`, hashed with the
 * current key (keys.words[0…3]). The client address is ip[0, ipLen) (4 or 16).
 */
export function writeReplyCookie(out: Uint8Array, off: number, keys: CookieKeys, scratch: CookieScratch, req: Uint8Array, clientOff: number, nowSec: number, ip: Uint8Array, ipLen: number): void {
  const len = message(scratch, req, clientOff, null, 0, nowSec, ip, ipLen);
  for (let i = 0; i < CLIENT_COOKIE_LEN; i++) out[off + i] = req[clientOff + i];
  const s = off + CLIENT_COOKIE_LEN;
  out[s] = 1;
  out[s + 1] = 0;
  out[s + 2] = 0;
  out[s + 3] = 0;
  out[s + 4] = nowSec >>> 24;
  out[s + 5] = (nowSec >>> 16) & 0xff;
  out[s + 6] = (nowSec >>> 8) & 0xff;
  out[s + 7] = nowSec & 0xff;
  siphash24(keys.words, 0, scratch.msg, 0, len, out, s + 8);
}

/**
 * Is the COOKIE option at req[off, off + len) (len already checked by
 * cookieLengthOk) carrying a server cookie of ours for this client address,
 * within its lifetime at `nowSec`? Only 16-byte version-1 server cookies can
 * be ours; the reserved bytes are hashed as the client sent them (RFC 9018
 * §4.2). Tries each key in keys.
 */
export function serverCookieValid(req: Uint8Array, off: number, len: number, keys: CookieKeys, scratch: CookieScratch, nowSec: number, ip: Uint8Array, ipLen: number): boolean {
  if (len !== REPLY_COOKIE_LEN || ipLen === 0) return false;
  const s = off + CLIENT_COOKIE_LEN;
  if (req[s] !== 1) return false;
  const ts = ((req[s + 4] << 24) | (req[s + 5] << 16) | (req[s + 6] << 8) | req[s + 7]) >>> 0;
  // Serial-number arithmetic on the 32-bit timestamp (RFC 9018 §4.3, RFC 1982): age in [-300, 3600].
  const age = (nowSec - ts) | 0;
  if (age > COOKIE_MAX_AGE_SEC || age < -COOKIE_MAX_FUTURE_SEC) return false;
  const mlen = message(scratch, req, off, req, s + 1, ts, ip, ipLen);
  const hash = scratch.hash;
  for (let k = 0; k < keys.count; k++) {
    siphash24(keys.words, k * 4, scratch.msg, 0, mlen, hash, 0);
    let diff = 0;
    for (let i = 0; i < 8; i++) diff |= hash[i] ^ req[s + 8 + i];
    if (diff === 0) return true;
  }
  return false;
}
