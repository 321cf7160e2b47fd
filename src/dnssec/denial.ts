// Any thread: DNS workers (hot path: one NSEC per negative answer with the DO
// bit), the snapshot compiler and tests. Authenticated denial for online
// signing by compact denial of existence (RFC 9824): a negative answer carries
// one NSEC whose owner is the query name and whose next name is the query
// name's immediate successor, so it covers no other name, and the zone cannot
// be walked. A name that does not exist is answered NOERROR with NXNAME in the
// NSEC's type bitmap; a name without the asked type lists the types it has.
// Imports only src/dns and sign.ts; worker-safe.

import { MAX_LABEL_LEN, MAX_NAME_LEN, QCLASS, QTYPE } from '../dns/constants.ts';
import { DNSSEC_TYPE } from './sign.ts';

/**
 * Encodes an NSEC type bitmap (RFC 4034 §4.1.2): for each 256-type window
 * that has a type, the window number, the bitmap length (1..32, trailing zero
 * bytes dropped) and the bits, most significant bit = lowest type. Types may
 * come in any order and repeat.
 */
export function typeBitmap(types: readonly number[]): Uint8Array {
  const windows = new Map<number, Uint8Array>();
  for (const t of types) {
    if (!Number.isInteger(t) || t < 1 || t > 0xffff) throw new RangeError(`record type ${t} cannot be in an NSEC bitmap, expected 1..65535`);
    const w = t >> 8;
    const bits = windows.get(w) ?? new Uint8Array(32);
    bits[(t & 0xff) >> 3] |= 0x80 >> (t & 7);
    windows.set(w, bits);
  }
  const parts: number[] = [];
  for (const w of [...windows.keys()].sort((a, b) => a - b)) {
    const bits = windows.get(w) as Uint8Array;
    let len = 32;
    while (len > 0 && bits[len - 1] === 0) len--;
    parts.push(w, len, ...bits.subarray(0, len));
  }
  return Uint8Array.from(parts);
}

/** Decodes an NSEC type bitmap back to the sorted list of types (tests and tools). Throws a RangeError on a malformed bitmap. */
export function typesOfBitmap(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  let off = 0;
  let lastWindow = -1;
  while (off < bitmap.length) {
    if (off + 2 > bitmap.length) throw new RangeError(`NSEC bitmap cut short at byte ${off}`);
    const w = bitmap[off];
    const len = bitmap[off + 1];
    if (w <= lastWindow || len < 1 || len > 32 || off + 2 + len > bitmap.length) throw new RangeError(`bad NSEC bitmap window at byte ${off}`);
    lastWindow = w;
    for (let i = 0; i < len; i++) {
      const byte = bitmap[off + 2 + i];
      for (let bit = 0; bit < 8; bit++) if ((byte & (0x80 >> bit)) !== 0) out.push((w << 8) | (i * 8 + bit));
    }
    off += 2 + len;
  }
  return out;
}

/** The bitmap of a compact-denial NXDOMAIN (RFC 9824 §3.2): RRSIG, NSEC and NXNAME. */
export const NXNAME_BITMAP: Uint8Array = typeBitmap([DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC, DNSSEC_TYPE.NXNAME]);

/**
 * The bitmap of a NODATA answer for a name holding `types` (RFC 9824 §3.1):
 * those types plus RRSIG and NSEC. An empty non-terminal passes []. Precompute
 * it per name (snapshot compile time), not per query.
 */
export function nodataBitmap(types: readonly number[]): Uint8Array {
  return typeBitmap([...types, DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC]);
}

/** The TTL of a negative answer's NSEC: the smaller of the SOA's TTL and its MINIMUM field (RFC 9824 §3, RFC 9077 §3). */
export function negativeTtl(soaTtlSec: number, soaMinimumSec: number): number {
  return Math.min(soaTtlSec, soaMinimumSec);
}

function lower(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

/**
 * Writes the immediate successor of the wire name at (name, nameOff,
 * nameLen) in canonical order (RFC 4034 §6.1), lower-cased, at `off` in `out`:
 *
 *   - "\000.<name>", its first child (RFC 9824 §3, RFC 4470 §3.1.2), while
 *     that fits in 255 octets (a name of up to 253);
 *   - else, when one more octet fits (a 254-octet name whose first label has
 *     fewer than 63), the name with its first label extended by a 0x00
 *     octet: no child can exist, and a label sorts right before itself
 *     extended by 0x00, so that 255-octet sibling comes next;
 *   - else the first label with its last octet below 0xff raised by one
 *     (skipping A-Z, which sort as a-z) and cut after it, since no longer
 *     label or child name can exist.
 *
 * Returns the offset after it, or -1 when it does not fit in `out` or the
 * first label (of a name that cannot grow) is all 0xff. Hot path: no allocation.
 */
export function writeSuccessorName(out: Uint8Array, off: number, name: Uint8Array, nameOff: number, nameLen: number): number {
  if (nameLen + 2 <= MAX_NAME_LEN) {
    if (off + nameLen + 2 > out.length) return -1;
    out[off] = 1;
    out[off + 1] = 0;
    for (let i = 0; i < nameLen; i++) out[off + 2 + i] = lower(name[nameOff + i]);
    return off + 2 + nameLen;
  }
  const labelLen = name[nameOff];
  if (nameLen + 1 <= MAX_NAME_LEN && labelLen < MAX_LABEL_LEN) {
    if (off + nameLen + 1 > out.length) return -1;
    out[off] = labelLen + 1;
    for (let i = 1; i <= labelLen; i++) out[off + i] = lower(name[nameOff + i]);
    out[off + labelLen + 1] = 0;
    for (let i = labelLen + 1; i < nameLen; i++) out[off + 1 + i] = lower(name[nameOff + i]);
    return off + nameLen + 1;
  }
  let pos = labelLen;
  while (pos >= 1 && name[nameOff + pos] === 0xff) pos--;
  if (pos < 1) return -1;
  const restOff = nameOff + 1 + labelLen;
  const restLen = nameLen - 1 - labelLen;
  if (off + 1 + pos + restLen > out.length) return -1;
  out[off] = pos;
  for (let i = 1; i < pos; i++) out[off + i] = lower(name[nameOff + i]);
  let raised = lower(name[nameOff + pos]) + 1;
  if (raised >= 0x41 && raised <= 0x5a) raised = 0x5b;
  out[off + pos] = raised;
  for (let i = 0; i < restLen; i++) out[off + 1 + pos + i] = lower(name[restOff + i]);
  return off + 1 + pos + restLen;
}

/**
 * Writes compact-denial NSEC rdata for the query name at (qname, qnameOff,
 * qnameLen) at `off`: next name = the name's successor (writeSuccessorName),
 * then `bitmap` (NXNAME_BITMAP for a name that does not exist, a
 * nodataBitmap for one that does). Returns the offset after it, or -1 when it
 * does not fit. Hot path: no allocation.
 */
export function writeCompactNsecRdata(out: Uint8Array, off: number, qname: Uint8Array, qnameOff: number, qnameLen: number, bitmap: Uint8Array): number {
  const end = writeSuccessorName(out, off, qname, qnameOff, qnameLen);
  if (end < 0 || end + bitmap.length > out.length) return -1;
  out.set(bitmap, end);
  return end + bitmap.length;
}

/** Cold-path convenience: the compact-denial NSEC rdata of a lower-case wire name. */
export function compactNsecRdata(qnameWire: Uint8Array, bitmap: Uint8Array): Uint8Array {
  const out = new Uint8Array(MAX_NAME_LEN + 1 + bitmap.length);
  const end = writeCompactNsecRdata(out, 0, qnameWire, 0, qnameWire.length, bitmap);
  if (end < 0) throw new RangeError('the name has no successor (its first label is all 0xff octets)');
  return out.slice(0, end);
}

/** Encodes NSEC rdata from a next name (uncompressed wire, RFC 4034 §4.1.1 forbids compression) and a type bitmap. */
export function nsecRdata(nextWire: Uint8Array, bitmap: Uint8Array): Uint8Array {
  const out = new Uint8Array(nextWire.length + bitmap.length);
  out.set(nextWire, 0);
  out.set(bitmap, nextWire.length);
  return out;
}

/**
 * Writes an NSEC record whose owner is a compression pointer to
 * `ownerPointer` (12: the question name), TTL `ttlSec`, and the rdata slice
 * (rdata, rdataOff, rdataLen). Returns the offset after it, or -1 when it does
 * not fit. Hot path: no allocation.
 */
export function writeNsec(out: Uint8Array, off: number, ownerPointer: number, ttlSec: number, rdata: Uint8Array, rdataOff: number, rdataLen: number): number {
  const end = off + 12 + rdataLen;
  if (end > out.length || ownerPointer < 0 || ownerPointer > 0x3fff) return -1;
  out[off] = 0xc0 | (ownerPointer >> 8);
  out[off + 1] = ownerPointer & 0xff;
  out[off + 2] = 0;
  out[off + 3] = DNSSEC_TYPE.NSEC;
  out[off + 4] = 0;
  out[off + 5] = QCLASS.IN;
  out[off + 6] = (ttlSec >>> 24) & 0xff;
  out[off + 7] = (ttlSec >>> 16) & 0xff;
  out[off + 8] = (ttlSec >>> 8) & 0xff;
  out[off + 9] = ttlSec & 0xff;
  out[off + 10] = rdataLen >> 8;
  out[off + 11] = rdataLen & 0xff;
  for (let i = 0; i < rdataLen; i++) out[off + 12 + i] = rdata[rdataOff + i];
  return end;
}

/** Types an apex holds in every zone we serve: SOA, NS and DNSKEY (plus A/AAAA when a domain sits at the apex). */
export const APEX_TYPES: readonly number[] = [QTYPE.SOA, QTYPE.NS, DNSSEC_TYPE.DNSKEY];
