// Worker, hot path. The byte writers of the wire codec, the other half of
// ./parse.ts: write header fields, integers and our OPT record into the
// caller's output buffer. Every function takes an offset and returns the
// offset after what it wrote; none allocates. The caller guarantees `out` has
// room for a 64 KiB message. The answers built from them are in
// workers/answer.ts.

import { EDNS_DO_BIT, EDNS_OPTION, OUR_UDP_PAYLOAD, QTYPE } from './constants.ts';
import type { ParsedQuery } from './parse.ts';

/** Copies `len` bytes; a plain loop beats subarray()+set() for the 16–60 byte pieces we copy (no view object per call). */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): number {
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i];
  return dstOff + len;
}

/**
 * Writes `count` resource records whose bodies (TYPE, CLASS, TTL, RDLENGTH,
 * RDATA: 10 + RDLENGTH bytes each) lie back to back at src[srcOff…], each
 * behind the compression pointer `ownerPtr` as its owner name; returns the
 * offset after the last one.
 */
export function copyRecords(out: Uint8Array, off: number, src: Uint8Array, srcOff: number, count: number, ownerPtr: number): number {
  let at = srcOff;
  for (let i = 0; i < count; i++) {
    const bodyLen = 10 + ((src[at + 8] << 8) | src[at + 9]);
    off = writeU16(out, off, 0xc000 | ownerPtr);
    off = copyBytes(out, off, src, at, bodyLen);
    at += bodyLen;
  }
  return off;
}

export function writeU16(out: Uint8Array, off: number, v: number): number {
  out[off] = v >>> 8;
  out[off + 1] = v & 0xff;
  return off + 2;
}

export function writeU32(out: Uint8Array, off: number, v: number): number {
  out[off] = v >>> 24;
  out[off + 1] = (v >>> 16) & 0xff;
  out[off + 2] = (v >>> 8) & 0xff;
  out[off + 3] = v & 0xff;
  return off + 4;
}

/**
 * Writes the 12-byte header. `flags` carries QR/AA/TC and the copied
 * opcode/RD/CD bits; `rcode` is the low 4 bits of the response code.
 */
export function writeHeader(out: Uint8Array, id: number, flags: number, rcode: number, qd: number, an: number, ns: number, ar: number): void {
  out[0] = id >>> 8;
  out[1] = id & 0xff;
  const f = flags | (rcode & 0xf);
  out[2] = f >>> 8;
  out[3] = f & 0xff;
  out[4] = 0;
  out[5] = qd;
  patchCounts(out, an, ns, ar);
}

/** Patches the answer/authority/additional counts of a header already written. */
export function patchCounts(out: Uint8Array, an: number, ns: number, ar: number): void {
  out[6] = an >>> 8;
  out[7] = an & 0xff;
  out[8] = ns >>> 8;
  out[9] = ns & 0xff;
  out[10] = ar >>> 8;
  out[11] = ar & 0xff;
}

/**
 * Writes our OPT record (RFC 6891 §6.1.2): payload size 1232, the high 8 bits
 * of the extended rcode, version 0, the DO bit copied from the query (RFC 3225
 * §3), and, when `withEcs`, the query's ECS option echoed with SCOPE
 * PREFIX-LENGTH `scope` (RFC 7871 §7.2.1): the prefix length of the network
 * the answer holds for, 0 when it is the same for every client. `cookie`,
 * when not null, is our COOKIE option's data (client cookie + server cookie,
 * RFC 7873 §4), appended after the ECS option; then, when the worker set
 * `q.keepaliveTimeout` (a TCP query that asked, RFC 7828), the
 * edns-tcp-keepalive option with it.
 */
export function writeOpt(out: Uint8Array, off: number, q: ParsedQuery, req: Uint8Array, extRcode: number, withEcs: boolean, scope: number, cookie: Uint8Array | null = null): number {
  out[off++] = 0; // owner: root
  off = writeU16(out, off, QTYPE.OPT);
  off = writeU16(out, off, OUR_UDP_PAYLOAD);
  out[off++] = extRcode >>> 4;
  out[off++] = 0; // version
  off = writeU16(out, off, q.dnssecOk ? EDNS_DO_BIT : 0);
  const rdlenAt = off;
  off += 2;
  if (withEcs && q.ecsFamily !== 0) {
    const optLen = 4 + q.ecsAddrLen;
    off = writeU16(out, off, EDNS_OPTION.ECS);
    off = writeU16(out, off, optLen);
    off = writeU16(out, off, q.ecsFamily);
    out[off++] = q.ecsSourcePrefix;
    out[off++] = scope;
    off = copyBytes(out, off, req, q.ecsAddrOff, q.ecsAddrLen);
  }
  if (cookie !== null) {
    off = writeU16(out, off, EDNS_OPTION.COOKIE);
    off = writeU16(out, off, cookie.length);
    off = copyBytes(out, off, cookie, 0, cookie.length);
  }
  if (q.keepaliveTimeout >= 0) {
    // RFC 7828: the idle timeout of the TCP connection, in units of 100 ms.
    off = writeU16(out, off, EDNS_OPTION.TCP_KEEPALIVE);
    off = writeU16(out, off, 2);
    off = writeU16(out, off, q.keepaliveTimeout);
  }
  writeU16(out, rdlenAt, off - rdlenAt - 2);
  return off;
}
