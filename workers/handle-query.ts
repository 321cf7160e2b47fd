// Worker, hot path. The per-packet boundary: accept check → parse → lookup →
// route → build. Returns the response length written to `out`, or 0 to drop.
// Synchronous and allocation-free; never throws for any input bytes (the
// transport's one try/catch is for bugs, answered SERVFAIL and counted).
// docs/query-lifecycle.md draws this path with each stage's outcome.

import { FLAG, MIN_UDP_PAYLOAD, OPCODE, OUR_UDP_PAYLOAD, QCLASS, QTYPE, RCODE } from '../src/dns/constants.ts';
import { parseQuery, PARSE_OK } from '../src/dns/parse.ts';
import { COUNTER, matrixSlot, TYPE_NONE, typeIndexOf } from '../src/metrics/counters-layout.ts';
import { DEGRADED_NONE, selectMembers } from '../src/routing/select.ts';
import * as L from '../src/snapshot/layout.ts';
import { copyBytes, patchCounts, writeHeader, writeOpt, writeU16, writeU32 } from './answer.ts';
import type { WorkerScratch } from './scratch.ts';

/** Counter slot per when_all_down mode, indexed by ALL_DOWN_*. */
const ALL_DOWN_COUNTER = [COUNTER.ALL_DOWN_SERVFAIL, COUNTER.ALL_DOWN_LAST_HEALTHY, COUNTER.ALL_DOWN_ALL, COUNTER.ALL_DOWN_FALLBACK] as const;

/** Response flags copied from the query: opcode, RD and CD (RFC 1035 §4.1.1, RFC 6840 §5.9). */
const COPIED_FLAGS = 0x7800 | FLAG.RD | FLAG.CD;

/**
 * Handles one query. `req[0, reqLen)` is the packet; the response is written
 * to `out` (≥ 65 535 bytes, owned by the caller). Over UDP the answer is cut
 * to the client's size with TC=1; over TCP it is complete. Returns the
 * response length, or 0 when the packet must be dropped (short, or a response).
 */
export function handleQuery(ctx: WorkerScratch, req: Uint8Array, reqLen: number, out: Uint8Array, tcp: boolean): number {
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  // Header-only accept check first, before reading anything else.
  if (reqLen < 12) {
    Atomics.add(counters, cb + COUNTER.DROPPED_SHORT, 1);
    return 0;
  }
  if ((req[2] & 0x80) !== 0) {
    Atomics.add(counters, cb + COUNTER.DROPPED_RESPONSE, 1);
    return 0;
  }
  // QUERIES and QTYPE_* are derived from these and the reply matrix (readCounters()).
  Atomics.add(counters, cb + (tcp ? COUNTER.TCP_QUERIES : COUNTER.UDP_QUERIES), 1);

  const q = ctx.query;
  const status = parseQuery(req, reqLen, q, ctx.lower);
  if (q.opcode !== OPCODE.QUERY) return errorReply(ctx, req, out, RCODE.NOTIMP);
  if (status !== PARSE_OK) {
    Atomics.add(counters, cb + COUNTER.MALFORMED, 1);
    return errorReply(ctx, req, out, RCODE.FORMERR);
  }
  countQuestion(ctx);
  if (q.hasEdns && q.ednsVersion !== 0) return errorReply(ctx, req, out, RCODE.BADVERS);
  if (q.qclass !== QCLASS.IN) return errorReply(ctx, req, out, RCODE.REFUSED);
  // No zone transfers from a GSLB: the data changes with health every second.
  if (q.qtype === QTYPE.AXFR || q.qtype === QTYPE.IXFR) return errorReply(ctx, req, out, RCODE.REFUSED);
  return answer(ctx, req, out, tcp);
}

/** Answers a well-formed IN query from the snapshot. */
function answer(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, tcp: boolean): number {
  const view = ctx.view;
  const u32 = view.u32;
  const q = ctx.query;
  const lower = ctx.lower;
  const nameLen = q.qnameLen;
  let node = view.findNode(lower, 0, nameLen);
  if (node < 0) {
    // Not a name we hold: find the closest enclosing name we do hold. Every
    // name between an apex and our owners exists (empty non-terminals), so
    // the first hit decides: inside a zone of ours → NXDOMAIN, else REFUSED.
    let off = 0;
    while (lower[off] !== 0) {
      off += lower[off] + 1;
      node = view.findNode(lower, off, nameLen - off);
      if (node >= 0) break;
    }
    if (node < 0) return errorReply(ctx, req, out, RCODE.REFUSED);
    return negative(ctx, req, out, u32[view.nodeBase(node) + L.NODE_ZONE], RCODE.NXDOMAIN, tcp);
  }
  const nb = view.nodeBase(node);
  const zone = u32[nb + L.NODE_ZONE];
  const isApex = (u32[nb + L.NODE_FLAGS] & L.NODE_FLAG_APEX) !== 0;
  switch (q.qtype) {
    case QTYPE.A: {
      const rec = u32[nb + L.NODE_REC_A];
      return rec !== 0 ? addresses(ctx, req, out, rec - 1, tcp) : negative(ctx, req, out, zone, RCODE.NOERROR, tcp);
    }
    case QTYPE.AAAA: {
      const rec = u32[nb + L.NODE_REC_AAAA];
      return rec !== 0 ? addresses(ctx, req, out, rec - 1, tcp) : negative(ctx, req, out, zone, RCODE.NOERROR, tcp);
    }
    case QTYPE.ANY: {
      // RFC 8482 §4.2: answer ANY with one RRset we hold, not all of them.
      const recA = u32[nb + L.NODE_REC_A];
      if (recA !== 0) return addresses(ctx, req, out, recA - 1, tcp);
      const recAAAA = u32[nb + L.NODE_REC_AAAA];
      if (recAAAA !== 0) return addresses(ctx, req, out, recAAAA - 1, tcp);
      return isApex ? soaAnswer(ctx, req, out, zone, tcp) : negative(ctx, req, out, zone, RCODE.NOERROR, tcp);
    }
    case QTYPE.SOA:
      return isApex ? soaAnswer(ctx, req, out, zone, tcp) : negative(ctx, req, out, zone, RCODE.NOERROR, tcp);
    case QTYPE.NS:
      return isApex ? nsAnswer(ctx, req, out, zone, tcp) : negative(ctx, req, out, zone, RCODE.NOERROR, tcp);
    default:
      return negative(ctx, req, out, zone, RCODE.NOERROR, tcp);
  }
}

/** Answers with the routed A or AAAA records of record `rec`; SERVFAIL when none is healthy. */
function addresses(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, rec: number, tcp: boolean): number {
  const view = ctx.view;
  const u32 = view.u32;
  const picks = ctx.picks;
  const k = selectMembers(ctx.route, rec, picks);
  const degraded = ctx.route.degraded[rec];
  if (degraded !== DEGRADED_NONE) {
    Atomics.add(ctx.counters, ctx.counterBase + COUNTER.ALL_DOWN, 1);
    // Counted by what was answered: a mode with nothing to offer ends in SERVFAIL.
    Atomics.add(ctx.counters, ctx.counterBase + (k === 0 ? COUNTER.ALL_DOWN_SERVFAIL : ALL_DOWN_COUNTER[degraded]), 1);
  }
  if (k === 0) return errorReply(ctx, req, out, RCODE.SERVFAIL);
  const rb = view.recordBase(rec);
  // One routing decision for the record's (domain, algorithm). Static records
  // carry NO_SLOT (0xffffffff), which fails the bound check, as does an id the
  // worker's buffer cannot hold yet (dns-worker.ts grows it at attach).
  const statId = u32[rb + L.REC_STAT_ID];
  const decisions = ctx.decisions;
  if (statId < decisions.length) Atomics.add(decisions, statId, 1);
  const q = ctx.query;
  let off = copyBytes(out, 12, req, 12, q.questionEnd - 12);
  const fragLen = u32[rb + L.REC_FRAG_LEN];
  const src = view.u8;
  for (let i = 0; i < k; i++) {
    off = copyBytes(out, off, src, u32[view.memberBase(picks[i]) + L.MEM_FRAG_OFF], fragLen);
  }
  return seal(ctx, req, out, off, RCODE.NOERROR, k, 0, 0, tcp);
}

/**
 * Answers NXDOMAIN or NOERROR/NODATA with the zone's SOA in the authority
 * section, its TTL lowered to the negative-caching TTL (RFC 2308 §3). The
 * owner is a pointer to the apex suffix of the question name.
 */
function negative(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, zone: number, rcode: number, tcp: boolean): number {
  const view = ctx.view;
  const u32 = view.u32;
  const q = ctx.query;
  const zb = view.zoneBase(zone);
  let off = copyBytes(out, 12, req, 12, q.questionEnd - 12);
  off = writeU16(out, off, 0xc000 | (12 + q.qnameLen - u32[zb + L.ZONE_APEX_LEN]));
  const body = off;
  off = copyBytes(out, off, view.u8, u32[zb + L.ZONE_SOA_OFF], u32[zb + L.ZONE_SOA_LEN]);
  writeU32(out, body + 4, u32[zb + L.ZONE_NEG_TTL]);
  return seal(ctx, req, out, off, rcode, 0, 1, 0, tcp);
}

/** Answers the apex SOA. */
function soaAnswer(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, zone: number, tcp: boolean): number {
  const view = ctx.view;
  const u32 = view.u32;
  const q = ctx.query;
  const zb = view.zoneBase(zone);
  let off = copyBytes(out, 12, req, 12, q.questionEnd - 12);
  off = writeU16(out, off, 0xc00c);
  off = copyBytes(out, off, view.u8, u32[zb + L.ZONE_SOA_OFF], u32[zb + L.ZONE_SOA_LEN]);
  return seal(ctx, req, out, off, RCODE.NOERROR, 1, 0, 0, tcp);
}

/** Answers the apex NS RRset, with A/AAAA glue for in-zone name servers in the additional section. */
function nsAnswer(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, zone: number, tcp: boolean): number {
  const view = ctx.view;
  const u32 = view.u32;
  const u8 = view.u8;
  const q = ctx.query;
  const zb = view.zoneBase(zone);
  let off = copyBytes(out, 12, req, 12, q.questionEnd - 12);
  const nsCount = u32[zb + L.ZONE_NS_COUNT];
  let src = u32[zb + L.ZONE_NS_OFF];
  for (let i = 0; i < nsCount; i++) {
    const bodyLen = 10 + ((u8[src + 8] << 8) | u8[src + 9]);
    off = writeU16(out, off, 0xc00c);
    off = copyBytes(out, off, u8, src, bodyLen);
    src += bodyLen;
  }
  off = copyBytes(out, off, u8, u32[zb + L.ZONE_GLUE_OFF], u32[zb + L.ZONE_GLUE_LEN]);
  return seal(ctx, req, out, off, RCODE.NOERROR, nsCount, 0, u32[zb + L.ZONE_GLUE_COUNT], tcp);
}

/**
 * Answers an error or refusal without data: header, the question when it
 * parsed, and an OPT when the query had a valid one. AA is clear: these are
 * not authoritative answers. BADVERS (16) goes out through the OPT's
 * extended-rcode byte (RFC 6891 §6.1.3).
 */
export function errorReply(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, rcode: number): number {
  const q = ctx.query;
  let off = 12;
  let qd = 0;
  if (q.questionEnd > 0) {
    off = copyBytes(out, 12, req, 12, q.questionEnd - 12);
    qd = 1;
  }
  let ar = 0;
  if (q.hasEdns) {
    off = writeOpt(out, off, q, req, rcode, false);
    ar = 1;
  }
  writeHeader(out, q.id, FLAG.QR | (q.flags & COPIED_FLAGS), rcode, qd, 0, 0, ar);
  countRcode(ctx, rcode);
  return off;
}

/**
 * Completes an authoritative answer whose sections end at `off`: appends the
 * OPT (when the query had one), writes the header with AA set and the counts
 * (`ar` counts records already written to the additional section), then
 * hands over to finish() for the size check.
 */
function seal(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, off: number, rcode: number, an: number, ns: number, ar: number, tcp: boolean): number {
  const q = ctx.query;
  if (q.hasEdns) {
    off = writeOpt(out, off, q, req, rcode, true);
    ar++;
  }
  writeHeader(out, q.id, FLAG.QR | FLAG.AA | (q.flags & COPIED_FLAGS), rcode, 1, an, ns, ar);
  return finish(ctx, req, out, off, rcode, tcp);
}

/** Counts the rcode and, over UDP, replaces an answer too big for the client with a truncated one (TC=1). */
function finish(ctx: WorkerScratch, req: Uint8Array, out: Uint8Array, len: number, rcode: number, tcp: boolean): number {
  countRcode(ctx, rcode);
  if (tcp) return len;
  const q = ctx.query;
  // Without EDNS the limit is 512 (RFC 1035 §4.2.1); with it, the client's
  // size, but never above our 1232 (fragmentation-safe, DNS Flag Day 2020).
  let limit = MIN_UDP_PAYLOAD;
  if (q.hasEdns) limit = q.udpSize < MIN_UDP_PAYLOAD ? MIN_UDP_PAYLOAD : q.udpSize > OUR_UDP_PAYLOAD ? OUR_UDP_PAYLOAD : q.udpSize;
  if (len <= limit) return len;
  Atomics.add(ctx.counters, ctx.counterBase + COUNTER.TRUNCATED, 1);
  // RFC 2181 §9: with TC set the client retries over TCP; send just the
  // question (and OPT) so the truncated reply itself is well-formed.
  let off = q.questionEnd;
  let ar = 0;
  if (q.hasEdns) {
    off = writeOpt(out, off, q, req, rcode, true);
    ar = 1;
  }
  out[2] |= FLAG.TC >>> 8;
  patchCounts(out, 0, 0, ar);
  return off;
}

function countRcode(ctx: WorkerScratch, rcode: number): void {
  // One count per reply, in the type × rcode matrix behind
  // opengslb_dns_queries_total and readCounters()'s RCODE_n. FORMERR and
  // NOTIMP are given before the question counts (as QTYPE_* do): type NONE.
  const typeIdx = rcode === RCODE.FORMERR || rcode === RCODE.NOTIMP ? TYPE_NONE : typeIndexOf(ctx.query.qtype);
  Atomics.add(ctx.counters, ctx.counterBase + matrixSlot(typeIdx, rcode), 1);
}

function countQuestion(ctx: WorkerScratch): void {
  const q = ctx.query;
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  if (q.hasEdns) {
    Atomics.add(counters, cb + COUNTER.EDNS_QUERIES, 1);
    if (q.ecsFamily !== 0) Atomics.add(counters, cb + COUNTER.ECS_QUERIES, 1);
    if (q.dnssecOk) Atomics.add(counters, cb + COUNTER.DO_QUERIES, 1);
  }
}
