// Worker, hot path. Who asked: the client address a query's routing may
// depend on. The transport records the packet's source for every query in the
// form it has it: node:dgram and node:net give a string (stored as is, no
// parsing), a batched socket gives bytes (copied into this object's buffer).
// The EDNS Client Subnet option stays where the parser put it (ParsedQuery's
// ecs* fields, the address bytes inside the request). A policy that routes by
// client (geolocation, sticky) asks for sourceBytes(), which parses a string
// source once per query, only then; the other policies never look, so the
// client costs them a few stores per query.

import type { ParsedQuery } from '../dns/parse.ts';

/** The source was given as text (sourceText). */
const FORM_TEXT = 0;
/** The source was given as bytes (bytes[0, sourceLen)). */
const FORM_BYTES = 1;

/** One per worker, overwritten for every query. Every field is set in the constructor so the shape never changes. */
export class ClientAddress {
  /** The packet's source address as text ("192.0.2.1", "2001:db8::1"), "" when unknown or given as bytes. */
  sourceText = '';
  /** 4 or 6; 0 when unknown. */
  sourceFamily = 0;
  /** The query being answered: its ECS option (ecsFamily 0 = none; RFC 7871 §6) with the address bytes in `request`. */
  readonly query: ParsedQuery;
  /** The request the query was parsed from (holds the ECS address bytes at query.ecsAddrOff). */
  request: Uint8Array = EMPTY;
  /** The source address in network byte order: 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes = new Uint8Array(16);
  #form = FORM_TEXT;
  /** Bytes of `bytes` that hold the source; 0 until known. */
  #len = 0;

  constructor(query: ParsedQuery) {
    this.query = query;
  }

  /** Records the packet's source as the socket's text form (per query, from node:dgram / node:net). */
  setSource(text: string, family: number): void {
    this.sourceText = text;
    this.sourceFamily = family;
    this.#form = FORM_TEXT;
    this.#len = 0;
  }

  /** Records the packet's source as 4 (IPv4) or 16 (IPv6) bytes at src[off]; per query, from a batched socket. */
  setSourceBytes(src: Uint8Array, off: number, len: 4 | 16): void {
    for (let i = 0; i < len; i++) this.bytes[i] = src[off + i];
    this.sourceText = '';
    this.sourceFamily = len === 4 ? 4 : 6;
    this.#form = FORM_BYTES;
    this.#len = len;
  }

  /**
   * Returns how many bytes of `bytes` hold the source address (4 or 16),
   * parsing a text source on the first call for this query; 0 when the
   * source is unknown or not an address. An IPv4-mapped IPv6 source
   * (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 clients) is IPv4.
   */
  sourceBytes(): number {
    if (this.#len !== 0 || this.#form === FORM_BYTES) return this.#len;
    this.#len = parseAddress(this.sourceText, this.bytes);
    return this.#len;
  }
}

const EMPTY = new Uint8Array(0);

/** Parses a dotted IPv4 or an RFC 4291 IPv6 text address into `out`; returns 4, 16, or 0 when it is neither. Allocation-free. */
export function parseAddress(text: string, out: Uint8Array): number {
  if (text.indexOf(':') < 0) return parseIpv4(text, 0, text.length, out, 0) ? 4 : 0;
  // IPv6: up to eight groups, one "::", optionally a dotted IPv4 tail; a zone
  // ("fe80::1%eth0", as sockets report link-local peers) is not part of the address.
  const zone = text.indexOf('%');
  const end = zone < 0 ? text.length : zone;
  if (end === 0) return 0;
  let gap = -1;
  let n = 0;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return 0;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (n >= 16) return 0;
    // A dotted IPv4 tail takes the last four bytes.
    let dot = -1;
    let j = i;
    let value = 0;
    let digits = 0;
    for (; j < end; j++) {
      const c = text.charCodeAt(j);
      if (c === 46) {
        dot = j;
        break;
      }
      const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (v < 0) break;
      value = value * 16 + v;
      if (++digits > 4) return 0;
    }
    if (dot >= 0) {
      if (n > 12 || !parseIpv4(text, i, end, out, n)) return 0;
      n += 4;
      i = end;
      break;
    }
    if (digits === 0) return 0;
    out[n++] = value >>> 8;
    out[n++] = value & 0xff;
    if (j === end) {
      i = end;
      break;
    }
    if (text.charCodeAt(j) !== 58) return 0;
    if (j + 1 < end && text.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return 0;
      gap = n;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === end) return 0;
    }
  }
  if (gap >= 0) {
    if (n > 14) return 0;
    const shift = 16 - n;
    for (let k = n - 1; k >= gap; k--) out[k + shift] = out[k];
    for (let k = gap; k < gap + shift; k++) out[k] = 0;
  } else if (n !== 16) {
    return 0;
  }
  // ::ffff:a.b.c.d is an IPv4 client.
  let mapped = out[10] === 0xff && out[11] === 0xff;
  for (let k = 0; k < 10 && mapped; k++) if (out[k] !== 0) mapped = false;
  if (mapped) {
    for (let k = 0; k < 4; k++) out[k] = out[12 + k];
    return 4;
  }
  return 16;
}

/** Parses a dotted quad text[from, to) into out[at..at+4); false when it is not one. */
function parseIpv4(text: string, from: number, to: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part === 3) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // no leading zeros
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return false;
    } else {
      return false;
    }
  }
  if (digits === 0 || part !== 3) return false;
  out[at + 3] = value;
  return true;
}
