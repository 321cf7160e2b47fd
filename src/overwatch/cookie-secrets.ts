// Main thread. The server-cookie keys (dns.cookies) every DNS worker checks
// and makes cookies with (src/dns/cookie.ts). One secret, from the config
// (`secret`, `secret_file`) or random at start, and from it one SipHash-2-4
// key per period of `secret_lifetime`:
//
//   key(p) = first 16 bytes of HMAC-SHA256(secret, "opengslb dns cookie key " + p),  p = floor(unix ms / lifetime)
//
// The periods come from the clock, so every overwatch with the same secret
// derives the same key at the same time without talking to the others
// (anycast, several NS). Workers accept the current key, the previous one
// (cookies issued just before a rotation, RFC 9018 §5: rotate with overlap)
// and the next one (a peer whose clock crossed the boundary a little
// earlier). With `rotate: false` the secret itself is the one key, as BIND's
// cookie-secret and Knot's are, for anycast sets that mix servers.

import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CookiesConfig } from '../config/types.ts';
import type { CookieKeys } from '../dns/cookie.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { sipKey } from '../lib/siphash.ts';

/** Reads the secret a config names: the hex string, the file's first line, or null for a random one. Throws OpenGslbError for a bad file. */
export function cookieSecretOf(config: CookiesConfig): Buffer | null {
  if (config.secret !== null) return Buffer.from(config.secret, 'hex');
  if (config.secretFile === null) return null;
  let text: string;
  try {
    text = readFileSync(config.secretFile, 'utf8');
  } catch (err) {
    throw new OpenGslbError('OPENGSLB_ERR_CONFIG_READ', `dns.cookies.secret_file: cannot read ${config.secretFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const line = text.split('\n')[0]?.trim() ?? '';
  if (!/^[0-9A-Fa-f]{32}$/.test(line)) {
    throw new OpenGslbError('OPENGSLB_ERR_CONFIG_READ', `dns.cookies.secret_file: ${config.secretFile} does not start with 32 hexadecimal digits (16 bytes); write one with "openssl rand -hex 16 > ${config.secretFile}"`);
  }
  return Buffer.from(line, 'hex');
}

/** The key of period `p` derived from `secret`. */
export function periodKey(secret: Buffer, p: number): Buffer {
  return createHmac('sha256', secret).update(`opengslb dns cookie key ${p}`).digest().subarray(0, 16);
}

/** Keeps the workers' cookie keys current: computes them for the period of `nowMs` and calls `publish` at every rotation. */
export class CookieSecrets {
  readonly #secret: Buffer;
  readonly #rotate: boolean;
  readonly #lifetimeMs: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(config: CookiesConfig) {
    const secret = cookieSecretOf(config);
    this.#secret = secret ?? randomBytes(32);
    this.#rotate = config.rotate;
    this.#lifetimeMs = config.secretLifetimeMs;
  }

  /** The keys in force at `nowMs`: current, previous, next (or the one fixed key). */
  keysAt(nowMs: number): CookieKeys {
    if (!this.#rotate) return { words: sipKey(this.#secret.subarray(0, 16)), count: 1 };
    const p = Math.floor(nowMs / this.#lifetimeMs);
    const words = new Uint32Array(12);
    words.set(sipKey(periodKey(this.#secret, p)), 0);
    words.set(sipKey(periodKey(this.#secret, p - 1)), 4);
    words.set(sipKey(periodKey(this.#secret, p + 1)), 8);
    return { words, count: 3 };
  }

  /** Calls `publish` with the new keys at each period boundary until stop(). */
  start(publish: (keys: CookieKeys) => void): void {
    if (!this.#rotate) return;
    const schedule = (): void => {
      const now = Date.now();
      const next = (Math.floor(now / this.#lifetimeMs) + 1) * this.#lifetimeMs;
      // A few ms past the boundary, so the period has moved on when we compute it.
      this.#timer = setTimeout(() => {
        publish(this.keysAt(Date.now()));
        schedule();
      }, Math.min(next - now + 5, 2 ** 31 - 1));
      this.#timer.unref();
    };
    schedule();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * True when `config` (a reload's, with the same settings) names the secret
   * in use: its secret_file is read again, so a file rewritten since the
   * start is told apart. Throws as cookieSecretOf does for a bad file.
   */
  holdsSecretOf(config: CookiesConfig): boolean {
    const secret = cookieSecretOf(config);
    return secret === null || secret.equals(this.#secret);
  }
}
