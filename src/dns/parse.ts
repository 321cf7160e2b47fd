// Worker, hot path. Parses a query in place into a reusable ParsedQuery:
// header fields, the one question (lower-cased into a scratch buffer for
// lookup, the original bytes left where they are for echoing: resolvers use
// 0x20 case randomisation), and the OPT record with EDNS Client Subnet.
// Returns a status code, never throws, allocates nothing. Every loop over
// packet bytes is bounded by the packet length and the RFC limits.

import { EDNS_DO_BIT, EDNS_OPTION, HEADER_LEN, MAX_ADDITIONAL_RECORDS, MAX_EDNS_OPTIONS, MAX_LABEL_LEN, MAX_NAME_LEN, MAX_POINTER_JUMPS, OPCODE, QTYPE } from './constants.ts';
import { ECS_OK, readEcsOption } from './ecs.ts';

/** The question and EDNS state of one query; one instance per worker, overwritten by every packet. */
export class ParsedQuery {
  id = 0;
  flags = 0;
  opcode = 0;
  /** Offset just past the question (12 + name + 4), or 0 when the question did not parse. */
  questionEnd = 0;
  /** Wire length of the question name; the name starts at offset 12. */
  qnameLen = 0;
  qtype = 0;
  qclass = 0;
  /** An OPT record was present and well-formed. */
  hasEdns = false;
  ednsVersion = 0;
  /** The client's advertised UDP payload size (raw, before clamping). */
  udpSize = 512;
  dnssecOk = false;
  /** ECS family (1 IPv4, 2 IPv6), 0 = no ECS option. */
  ecsFamily = 0;
  ecsSourcePrefix = 0;
  /** Offset and length of the ECS address bytes inside the request. */
  ecsAddrOff = 0;
  ecsAddrLen = 0;
  /** The ECS address, zero-padded to 4 (IPv4) or 16 (IPv6) bytes; valid while ecsFamily is not 0. */
  readonly ecsAddr = new Uint8Array(16);
  /** Offset of the first COOKIE option's data inside the request (RFC 7873), 0 = none; its length is cookieLen (not yet checked). */
  cookieOff = 0;
  cookieLen = 0;
  /** Length of the first edns-tcp-keepalive option's data (RFC 7828; 0 as a client must send it), -1 = none. Judged by the worker, which knows the transport. */
  keepaliveLen = -1;
  /**
   * The TIMEOUT (units of 100 ms) the reply's OPT carries in an
   * edns-tcp-keepalive option, -1 = none. Set by the worker for a TCP query
   * that asked; reset by every parse.
   */
  keepaliveTimeout = -1;
  // The TSIG record (RFC 8945), valid only when parseQuery returned
  // PARSE_TSIG: not reset per packet, so a query without one costs nothing.
  /** The key name (the TSIG owner), uncompressed wire form, as sent. */
  readonly tsigKey = new Uint8Array(255);
  tsigKeyLen = 0;
  /** Offset of the TSIG RDATA (the algorithm name, uncompressed, then time signed and fudge) inside the request. */
  tsigRdataOff = 0;
  /** Length of the algorithm name, from tsigRdataOff. */
  tsigAlgorithmLen = 0;
  tsigOriginalId = 0;
}

/** The query parsed; answer it. */
export const PARSE_OK = 0;
/** Malformed: answer FORMERR (questionEnd > 0 when the question itself was fine and can be echoed). */
export const PARSE_FORMERR = -1;
/**
 * No question (QDCOUNT 0), the rest well-formed: with cookies on and a
 * COOKIE option, a client asking for a server cookie (RFC 7873 §5.4); else
 * FORMERR.
 */
export const PARSE_NO_QUESTION = 1;
/**
 * Well-formed, and signed: the last additional record is a TSIG (RFC 8945),
 * read into the tsig* fields. We hold no TSIG keys, so the worker answers
 * NOTAUTH with a BADKEY TSIG (RFC 8945 §5.2).
 */
export const PARSE_TSIG = 2;

/**
 * Parses `msg[0, len)` into `q`, writing the lower-cased question name to
 * `lower` (≥ 255 bytes). The caller has already checked len ≥ 12 and QR = 0.
 * Returns PARSE_OK, PARSE_FORMERR, PARSE_NO_QUESTION or PARSE_TSIG.
 */
export function parseQuery(msg: Uint8Array, len: number, q: ParsedQuery, lower: Uint8Array): number {
  q.id = (msg[0] << 8) | msg[1];
  q.flags = (msg[2] << 8) | msg[3];
  q.opcode = (q.flags >> 11) & 0xf;
  q.questionEnd = 0;
  q.qnameLen = 0;
  q.qtype = 0;
  q.qclass = 0;
  q.hasEdns = false;
  q.ednsVersion = 0;
  q.udpSize = 512;
  q.dnssecOk = false;
  q.ecsFamily = 0;
  q.ecsSourcePrefix = 0;
  q.ecsAddrOff = 0;
  q.ecsAddrLen = 0;
  q.cookieOff = 0;
  q.cookieLen = 0;
  q.keepaliveLen = -1;
  q.keepaliveTimeout = -1;

  const qdcount = (msg[4] << 8) | msg[5];
  let off = HEADER_LEN;
  if (qdcount !== 1) {
    // A query has one question (RFC 9619), but for QDCOUNT 0 with a COOKIE
    // (PARSE_NO_QUESTION), and a FORMERR must still carry an OPT when the
    // query had a readable one (RFC 6891 §7; Knot does the same): without it
    // a client concludes we do not speak EDNS. Skip the questions, echoing
    // none, and read on to the OPT. Each question takes at least 5 bytes, so
    // the loop is bounded by the packet length whatever QDCOUNT claims.
    // A TSIG-signed query without a question is FORMERR too (RFC 9619): there
    // is nothing in it a BADKEY could refuse.
    if (qdcount === 0) return readRecords(msg, off, len, q, false) === PARSE_OK ? PARSE_NO_QUESTION : PARSE_FORMERR;
    for (let i = 0; i < qdcount; i++) {
      off = skipName(msg, off, len);
      if (off < 0 || off + 4 > len) return PARSE_FORMERR;
      off += 4;
    }
    return readRecords(msg, off, len, q, true);
  }

  // The question name: labels only. A compression pointer here could only
  // point into the header (RFC 1035 §4.1.4: pointers refer to earlier data),
  // so it is malformed; so are the reserved label types 0x40 and 0x80.
  let nameLen = 0;
  for (;;) {
    if (off >= len) return PARSE_FORMERR;
    const labelLen = msg[off];
    if (labelLen === 0) {
      lower[nameLen++] = 0;
      off++;
      break;
    }
    if (labelLen > MAX_LABEL_LEN) return PARSE_FORMERR;
    if (nameLen + labelLen + 2 > MAX_NAME_LEN) return PARSE_FORMERR;
    if (off + 1 + labelLen > len) return PARSE_FORMERR;
    lower[nameLen++] = labelLen;
    for (let i = 1; i <= labelLen; i++) {
      const c = msg[off + i];
      lower[nameLen++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    off += labelLen + 1;
  }
  if (off + 4 > len) return PARSE_FORMERR;
  q.qnameLen = nameLen;
  q.qtype = (msg[off] << 8) | msg[off + 1];
  q.qclass = (msg[off + 2] << 8) | msg[off + 3];
  off += 4;
  q.questionEnd = off;
  // OPT, TSIG and TKEY are meta types that never appear as a question.
  return readRecords(msg, off, len, q, q.qtype === QTYPE.OPT || q.qtype === QTYPE.TSIG || q.qtype === QTYPE.TKEY);
}

/**
 * Walks the answer, authority and additional sections from `off` (just past
 * the questions), recording the OPT record; `malformed` says the header or
 * question already was. Returns PARSE_OK, PARSE_FORMERR, or PARSE_TSIG when
 * the query is well-formed and its last record is a TSIG.
 */
function readRecords(msg: Uint8Array, off: number, len: number, q: ParsedQuery, malformed: boolean): number {
  // A query carries no answer records and, except for IXFR's SOA (RFC 1995
  // §3), no authority records (miekg/dns's accept function is similar); a
  // NOTIFY may carry the zone's new SOA as one answer record (RFC 1996 §3.7).
  // We still walk past them to reach the OPT record, so that the FORMERR we
  // answer carries an OPT when the query had a readable one (RFC 6891 §7).
  const ancount = (msg[6] << 8) | msg[7];
  const nscount = (msg[8] << 8) | msg[9];
  const arcount = (msg[10] << 8) | msg[11];
  if (ancount > (q.opcode === OPCODE.NOTIFY ? 1 : 0) || (nscount !== 0 && !(nscount === 1 && q.qtype === QTYPE.IXFR))) malformed = true;
  if (ancount + nscount > MAX_ADDITIONAL_RECORDS || arcount > MAX_ADDITIONAL_RECORDS) return PARSE_FORMERR;

  let status = PARSE_OK;
  for (let rr = 0; rr < ancount + nscount; rr++) {
    off = skipRecord(msg, off, len);
    if (off < 0) return PARSE_FORMERR;
  }
  for (let rr = 0; rr < arcount; rr++) {
    const ownerStart = off;
    off = skipName(msg, off, len);
    if (off < 0) return PARSE_FORMERR;
    if (off + 10 > len) return PARSE_FORMERR;
    const type = (msg[off] << 8) | msg[off + 1];
    const rdlen = (msg[off + 8] << 8) | msg[off + 9];
    const rdataOff = off + 10;
    if (rdataOff + rdlen > len) return PARSE_FORMERR;
    if (type === QTYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT, owned by the root. A second one, or another
      // owner, is FORMERR; the first readable OPT still shapes our reply.
      if (q.hasEdns || off - ownerStart !== 1) {
        malformed = true;
        if (q.hasEdns) return PARSE_FORMERR;
      }
      q.udpSize = (msg[off + 2] << 8) | msg[off + 3];
      q.ednsVersion = msg[off + 5];
      q.dnssecOk = (((msg[off + 6] << 8) | msg[off + 7]) & EDNS_DO_BIT) !== 0;
      q.hasEdns = true;
      if (parseOptions(msg, rdataOff, rdlen, q) < 0) {
        // Only an option inside the OPT is broken: the FORMERR carries our
        // OPT (the client speaks EDNS; RFC 6891 §6.1.1: a request with an
        // OPT gets one back, where Knot sends none), but echoes no ECS.
        q.ecsFamily = 0;
        return PARSE_FORMERR;
      }
    } else if (type === QTYPE.TSIG) {
      // RFC 8945 §5.2: one TSIG, the last record (so a second one is never
      // last either); else, or when it cannot be read, FORMERR.
      if (rr !== arcount - 1 || readTsig(msg, ownerStart, rdataOff, rdlen, len, q) < 0) malformed = true;
      status = PARSE_TSIG;
    }
    off = rdataOff + rdlen;
  }
  // Bytes after the last record the header counts are malformed (Knot and
  // BIND answer FORMERR; over TCP they sit inside the length-prefixed
  // message, over UDP inside the datagram: one rule for both). The readable
  // OPT still shapes the FORMERR (RFC 6891 §6.1.1: a request with an OPT
  // gets one back), where Knot sends none.
  if (malformed || off !== len) {
    q.ecsFamily = 0;
    return PARSE_FORMERR;
  }
  return status;
}

/**
 * Reads a TSIG record (owner at `ownerOff`, RDATA at msg[rdataOff, +rdlen))
 * into q's tsig* fields: the key name, uncompressed (owner names may be
 * compressed), and where the algorithm name, time signed, fudge and
 * original ID are. Returns 0, or -1 when the RDATA does not hold exactly
 * RFC 8945 §4.2's fields (the algorithm name must be uncompressed: TSIG is
 * not one of RFC 1035's types, RFC 3597 §4).
 */
function readTsig(msg: Uint8Array, ownerOff: number, rdataOff: number, rdlen: number, len: number, q: ParsedQuery): number {
  const keyLen = expandName(msg, ownerOff, len, q.tsigKey);
  if (keyLen < 0) return -1;
  const end = rdataOff + rdlen;
  let off = rdataOff;
  // The algorithm name: labels only, bounded by the RDATA and MAX_NAME_LEN.
  for (;;) {
    if (off >= end) return -1;
    const b = msg[off];
    if (b === 0) break;
    if (b > MAX_LABEL_LEN) return -1;
    off += b + 1;
    if (off - rdataOff + 1 > MAX_NAME_LEN) return -1;
  }
  off++;
  const algorithmLen = off - rdataOff;
  // Time signed (6), fudge (2), MAC size (2), MAC, original ID (2), error (2), other len (2), other data.
  if (off + 10 > end) return -1;
  off += 10 + ((msg[off + 8] << 8) | msg[off + 9]);
  if (off + 6 > end) return -1;
  const originalId = (msg[off] << 8) | msg[off + 1];
  if (off + 6 + ((msg[off + 4] << 8) | msg[off + 5]) !== end) return -1;
  q.tsigKeyLen = keyLen;
  q.tsigRdataOff = rdataOff;
  q.tsigAlgorithmLen = algorithmLen;
  q.tsigOriginalId = originalId;
  return 0;
}

/**
 * Copies the possibly compressed name at msg[off] (inside msg[0, len)) into
 * `dst` (≥ 255 bytes), uncompressed. Every pointer must point before the
 * label sequence it ends (RFC 1035 §4.1.4), which, with MAX_POINTER_JUMPS,
 * bounds the work. Returns the name's length, or -1.
 */
function expandName(msg: Uint8Array, off: number, len: number, dst: Uint8Array): number {
  let n = 0;
  let start = off;
  let jumps = 0;
  for (;;) {
    if (off >= len) return -1;
    const b = msg[off];
    if (b === 0) {
      dst[n++] = 0;
      return n;
    }
    if ((b & 0xc0) === 0xc0) {
      if (++jumps > MAX_POINTER_JUMPS || off + 1 >= len) return -1;
      const target = ((b & 0x3f) << 8) | msg[off + 1];
      if (target >= start) return -1;
      off = target;
      start = target;
      continue;
    }
    if (b > MAX_LABEL_LEN || n + b + 2 > MAX_NAME_LEN || off + b >= len) return -1;
    for (let i = 0; i <= b; i++) dst[n++] = msg[off + i];
    off += b + 1;
  }
}

/**
 * Skips a possibly compressed name starting at `off`. Returns the offset after
 * it, or -1 when it runs past `len`, uses a reserved label type, or has a
 * pointer that does not point backwards. Pointers are not followed: skipping
 * needs only their two bytes, which bounds the work by the packet length.
 */
export function skipName(msg: Uint8Array, off: number, len: number): number {
  const start = off;
  let total = 0;
  for (;;) {
    if (off >= len) return -1;
    const b = msg[off];
    if (b === 0) return off + 1;
    const kind = b & 0xc0;
    if (kind === 0xc0) {
      if (off + 2 > len) return -1;
      const target = ((b & 0x3f) << 8) | msg[off + 1];
      if (target >= start) return -1;
      return off + 2;
    }
    if (kind !== 0) return -1;
    total += b + 1;
    if (total + 1 > MAX_NAME_LEN) return -1;
    off += b + 1;
  }
}

/** Skips one whole resource record (owner, fixed fields, rdata). Returns the offset after it, or -1. */
function skipRecord(msg: Uint8Array, off: number, len: number): number {
  off = skipName(msg, off, len);
  if (off < 0 || off + 10 > len) return -1;
  const end = off + 10 + ((msg[off + 8] << 8) | msg[off + 9]);
  return end > len ? -1 : end;
}

/** Walks the OPT record's options (bounded count); validates and records ECS. Returns 0 or -1. */
function parseOptions(msg: Uint8Array, off: number, rdlen: number, q: ParsedQuery): number {
  const end = off + rdlen;
  let seen = 0;
  while (off < end) {
    if (++seen > MAX_EDNS_OPTIONS) return -1;
    if (off + 4 > end) return -1;
    const code = (msg[off] << 8) | msg[off + 1];
    const optLen = (msg[off + 2] << 8) | msg[off + 3];
    const data = off + 4;
    if (data + optLen > end) return -1;
    if (code === EDNS_OPTION.ECS) {
      // RFC 7871 §6 and §7.1.2: a malformed option (family, prefix, address
      // length, bits past the prefix, scope in a query) is FORMERR
      // (readEcsOption checks each). One ECS option per query.
      if (q.ecsFamily !== 0 || readEcsOption(msg, data, optLen, q.ecsAddr) !== ECS_OK) return -1;
      q.ecsFamily = (msg[data] << 8) | msg[data + 1];
      q.ecsSourcePrefix = msg[data + 2];
      q.ecsAddrOff = data + 4;
      q.ecsAddrLen = optLen - 4;
    } else if (code === EDNS_OPTION.COOKIE && q.cookieOff === 0) {
      // Only the first COOKIE option counts (RFC 7873 §5.2). Its length is
      // judged by the worker, which answers a malformed one with FORMERR
      // only while cookies are on (a server without cookies ignores it).
      q.cookieOff = data;
      q.cookieLen = optLen;
    } else if (code === EDNS_OPTION.TCP_KEEPALIVE && q.keepaliveLen < 0) {
      // Its length is judged by the worker: over UDP the option is ignored,
      // however malformed, over TCP one with data is FORMERR (RFC 7828 §3).
      q.keepaliveLen = optLen;
    }
    off = data + optLen;
  }
  return 0;
}
