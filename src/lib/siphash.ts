// Any thread, hot on the worker side (DNS cookies, src/dns/cookie.ts).
// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// 2012): the keyed hash RFC 9018 names for interoperable DNS server cookies.
// node:crypto has none, so this is a direct reading of the paper's algorithm
// on 32-bit halves: JavaScript has no unboxed 64-bit integer, and BigInt
// arithmetic allocates. Every 64-bit word is a (hi, lo) pair of uint32 held
// in locals; nothing is allocated per call. Checked against the paper's 64
// reference vectors in test/lib/siphash.test.ts.

/** The key as four little-endian uint32 words: k0 low, k0 high, k1 low, k1 high. */
export function sipKey(key16: Uint8Array): Uint32Array {
  if (key16.length !== 16) throw new RangeError(`a SipHash key is 16 bytes, got ${key16.length}`);
  const words = new Uint32Array(4);
  for (let w = 0; w < 4; w++) words[w] = (key16[w * 4] | (key16[w * 4 + 1] << 8) | (key16[w * 4 + 2] << 16) | (key16[w * 4 + 3] << 24)) >>> 0;
  return words;
}

/**
 * SipHash-2-4 of msg[off, off + len) under `key` (sipKey's four words at
 * key[kOff…kOff+3]); writes the 8-byte result to out[outOff…] in the byte
 * order of the reference implementation (little-endian).
 */
export function siphash24(key: Uint32Array, kOff: number, msg: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): void {
  const k0l = key[kOff];
  const k0h = key[kOff + 1];
  const k1l = key[kOff + 2];
  const k1h = key[kOff + 3];
  // "somepseudorandomlygeneratedbytes"
  let v0h = (k0h ^ 0x736f6d65) >>> 0;
  let v0l = (k0l ^ 0x70736575) >>> 0;
  let v1h = (k1h ^ 0x646f7261) >>> 0;
  let v1l = (k1l ^ 0x6e646f6d) >>> 0;
  let v2h = (k0h ^ 0x6c796765) >>> 0;
  let v2l = (k0l ^ 0x6e657261) >>> 0;
  let v3h = (k1h ^ 0x74656462) >>> 0;
  let v3l = (k1l ^ 0x79746573) >>> 0;

  const end = off + len;
  const whole = off + (len & ~7);
  let p = off;
  // One pass per 8-byte word, then one for the last partial word with the
  // length in its top byte (2 rounds each: compression), then one pass of 4
  // rounds after v2 ^= 0xff (finalization); every pass runs the same SipRound.
  let ml = 0;
  let mh = 0;
  let rounds = 2;
  let stage = 0; // 0: whole words, 1: the last word, 2: finalization
  for (;;) {
    if (stage < 2) {
      if (p < whole) {
        ml = (msg[p] | (msg[p + 1] << 8) | (msg[p + 2] << 16) | (msg[p + 3] << 24)) >>> 0;
        mh = (msg[p + 4] | (msg[p + 5] << 8) | (msg[p + 6] << 16) | (msg[p + 7] << 24)) >>> 0;
        p += 8;
      } else {
        stage = 1;
        ml = 0;
        mh = (len & 0xff) << 24;
        const rest = end - p;
        for (let i = 0; i < rest; i++) {
          if (i < 4) ml |= msg[p + i] << (8 * i);
          else mh |= msg[p + i] << (8 * (i - 4));
        }
        ml >>>= 0;
        mh >>>= 0;
      }
      v3l = (v3l ^ ml) >>> 0;
      v3h = (v3h ^ mh) >>> 0;
    }
    for (let r = 0; r < rounds; r++) {
      // SipRound, on (hi, lo) pairs. Additions carry from lo into hi.
      let lo = (v0l + v1l) >>> 0;
      v0h = (v0h + v1h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      let th = v1h;
      v1h = ((th << 13) | (v1l >>> 19)) >>> 0;
      v1l = ((v1l << 13) | (th >>> 19)) >>> 0;
      v1h = (v1h ^ v0h) >>> 0;
      v1l = (v1l ^ v0l) >>> 0;
      th = v0h;
      v0h = v0l;
      v0l = th;
      lo = (v2l + v3l) >>> 0;
      v2h = (v2h + v3h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      th = v3h;
      v3h = ((th << 16) | (v3l >>> 16)) >>> 0;
      v3l = ((v3l << 16) | (th >>> 16)) >>> 0;
      v3h = (v3h ^ v2h) >>> 0;
      v3l = (v3l ^ v2l) >>> 0;
      lo = (v0l + v3l) >>> 0;
      v0h = (v0h + v3h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      th = v3h;
      v3h = ((th << 21) | (v3l >>> 11)) >>> 0;
      v3l = ((v3l << 21) | (th >>> 11)) >>> 0;
      v3h = (v3h ^ v0h) >>> 0;
      v3l = (v3l ^ v0l) >>> 0;
      lo = (v2l + v1l) >>> 0;
      v2h = (v2h + v1h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      th = v1h;
      v1h = ((th << 17) | (v1l >>> 15)) >>> 0;
      v1l = ((v1l << 17) | (th >>> 15)) >>> 0;
      v1h = (v1h ^ v2h) >>> 0;
      v1l = (v1l ^ v2l) >>> 0;
      th = v2h;
      v2h = v2l;
      v2l = th;
    }
    if (stage === 2) break;
    v0l = (v0l ^ ml) >>> 0;
    v0h = (v0h ^ mh) >>> 0;
    if (stage === 1) {
      stage = 2;
      rounds = 4;
      v2l = (v2l ^ 0xff) >>> 0;
    }
  }
  const rl = (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
  const rh = (v0h ^ v1h ^ v2h ^ v3h) >>> 0;
  out[outOff] = rl & 0xff;
  out[outOff + 1] = (rl >>> 8) & 0xff;
  out[outOff + 2] = (rl >>> 16) & 0xff;
  out[outOff + 3] = rl >>> 24;
  out[outOff + 4] = rh & 0xff;
  out[outOff + 5] = (rh >>> 8) & 0xff;
  out[outOff + 6] = (rh >>> 16) & 0xff;
  out[outOff + 7] = rh >>> 24;
}
