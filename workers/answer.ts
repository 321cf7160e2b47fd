// Worker, hot path. The answer stage: builds the response to a query that
// handleQuery (./handle-query.ts) has parsed and looked up, from the request's
// question and the snapshot's precomputed wire fragments, then seals it:
//
//   addresses / soaAnswer / nsAnswer / dnskeyAnswer / negative / errorReply
//        │ each RRset, then, with DO on a signed zone, its RRSIG(s) right
//        │ behind it (sign stage, ./sign-stage.ts: signAddresses, signSoa,
//        │ signNs, signDnskey, signDenial); counts and rcode on the scratch
//        ▼
//   seal ── OPT ── header (AA; never AD: an authoritative server does not validate)
//        ▼
//   finish ── count the reply; over UDP, cut to the client's size with TC=1
//
// The sign stage sits inside the builders rather than in seal() because an
// RRSIG must follow its RRset in the same section, before any later section
// (the NS answer's glue). Each builder asks signerOf(ctx) once: null without
// DO or for a zone without keys, and then nothing else changes.
//
// Per-packet state rides on the WorkerScratch: handleQuery sets the request,
// output buffer, transport and zone; each builder sets the rcode, the section
// counts and the record it answered before it calls seal(). Nothing here
// allocates.

import { FLAG, MIN_UDP_PAYLOAD, OUR_UDP_PAYLOAD, QCLASS, QTYPE, RCODE, TSIG_ERROR_BADKEY } from '../src/dns/constants.ts';
import { copyBytes, copyRecords, patchCounts, writeHeader, writeOpt, writeU16, writeU32 } from '../src/dns/write.ts';
import { bump, COUNTER, matrixSlot, TYPE_NONE, typeIndexOf } from '../src/metrics/counters-layout.ts';
import { DEGRADED_NONE, selectMembers } from '../src/routing/select.ts';
import * as L from '../src/snapshot/layout.ts';
import type { WorkerScratch } from './scratch.ts';
import { signAddresses, signDenial, signDnskey, signerOf, signGlue, signNs, signSoa } from './sign-stage.ts';

/** Counter slot per when_all_down mode, indexed by ALL_DOWN_*. */
const ALL_DOWN_COUNTER = [COUNTER.ALL_DOWN_SERVFAIL, COUNTER.ALL_DOWN_LAST_HEALTHY, COUNTER.ALL_DOWN_ALL, COUNTER.ALL_DOWN_FALLBACK] as const;

/** Response flags copied from the query: opcode, RD and CD (RFC 1035 §4.1.1, RFC 6840 §5.9). */
const COPIED_FLAGS = 0x7800 | FLAG.RD | FLAG.CD;

/** Copies the question from the request to the output; returns the offset after it. */
export function question(ctx: WorkerScratch): number {
  return copyBytes(ctx.out, 12, ctx.req, 12, ctx.query.questionEnd - 12);
}

/**
 * Writes the name src[nameOff, +nameLen) (lower-case wire form, uncompressed,
 * as the snapshot holds names) at `off`, compressed against the question
 * (RFC 1035 §4.1.4): its labels up to the longest suffix it shares with the
 * question name (two labels or more: a pointer is two bytes), then a pointer
 * to that suffix in the question at 12. Only for names the RFCs let us
 * compress: owners, and the rdata names of NS, CNAME, SOA, MX and PTR (RFC
 * 3597 §4); never an RRSIG's signer or an NSEC's next name (RFC 4034 §3.1.7,
 * §4.1.1), an SRV target (RFC 2782), or any other type's. The question is
 * matched in lower case (ctx.lower), as names compare case-insensitively.
 * Returns the new offset. Both names are well-formed: every walk is bounded
 * by their lengths.
 */
export function writeName(ctx: WorkerScratch, off: number, src: Uint8Array, nameOff: number, nameLen: number): number {
  const q = ctx.lower;
  const qLen = ctx.query.qnameLen;
  let n = 0;
  let p = 0;
  // Two label walks from the left; at equal suffix lengths, the suffixes may match.
  while (nameLen - n > 1 && qLen - p > 1) {
    const nSuffix = nameLen - n;
    const qSuffix = qLen - p;
    if (nSuffix > qSuffix) {
      n += src[nameOff + n] + 1;
    } else if (qSuffix > nSuffix) {
      p += q[p] + 1;
    } else {
      let i = 0;
      while (i < nSuffix && src[nameOff + n + i] === q[p + i]) i++;
      if (i === nSuffix) {
        off = copyBytes(ctx.out, off, src, nameOff, n);
        return writeU16(ctx.out, off, 0xc000 | (12 + p));
      }
      n += src[nameOff + n] + 1;
      p += q[p] + 1;
    }
  }
  return copyBytes(ctx.out, off, src, nameOff, nameLen);
}

/** Length of the uncompressed wire name at src[off]. */
function nameLength(src: Uint8Array, off: number): number {
  let o = off;
  while (src[o] !== 0) o += src[o] + 1;
  return o + 1 - off;
}

/**
 * Appends one RR body from the snapshot (TYPE CLASS TTL RDLENGTH RDATA at
 * src[at]) with owner pointer `ownerPtr`, the names of its rdata compressed
 * (writeName) where the type allows it (NS, CNAME, PTR, MX, SOA); any other
 * type is copied as it is. RDLENGTH is written for what went out. Returns
 * the new offset.
 */
export function writeBody(ctx: WorkerScratch, off: number, src: Uint8Array, at: number, ownerPtr: number): number {
  const out = ctx.out;
  const type = (src[at] << 8) | src[at + 1];
  const rdLen = (src[at + 8] << 8) | src[at + 9];
  off = writeU16(out, off, 0xc000 | ownerPtr);
  if (type !== QTYPE.NS && type !== QTYPE.CNAME && type !== QTYPE.PTR && type !== QTYPE.MX && type !== QTYPE.SOA) {
    return copyBytes(out, off, src, at, 10 + rdLen);
  }
  off = copyBytes(out, off, src, at, 8);
  const rdStart = off + 2;
  let rd = at + 10;
  off = rdStart;
  if (type === QTYPE.MX) {
    off = copyBytes(out, off, src, rd, 2);
    rd += 2;
  }
  let len = nameLength(src, rd);
  off = writeName(ctx, off, src, rd, len);
  if (type === QTYPE.SOA) {
    rd += len;
    len = nameLength(src, rd);
    off = writeName(ctx, off, src, rd, len);
    // SERIAL REFRESH RETRY EXPIRE MINIMUM.
    off = copyBytes(out, off, src, rd + len, 20);
  }
  writeU16(out, rdStart - 2, off - rdStart);
  return off;
}

/** Appends `count` RR bodies back to back from src[at] (writeBody each), owner pointer `ownerPtr`. */
export function writeBodies(ctx: WorkerScratch, off: number, src: Uint8Array, at: number, count: number, ownerPtr: number): number {
  for (let i = 0; i < count; i++) {
    off = writeBody(ctx, off, src, at, ownerPtr);
    at += 10 + ((src[at + 8] << 8) | src[at + 9]);
  }
  return off;
}

/**
 * Appends `count` glue RRs from the snapshot (each: owner name uncompressed,
 * then its body) at `off`: each owner a pointer to the NS record's target
 * written before with that same name (the NS bodies src[nsSrc], `nsCount`
 * of them, written from `nsOut` in the output by writeBodies), else
 * compressed against the question. Returns the new offset.
 */
export function writeGlue(ctx: WorkerScratch, off: number, glueSrc: number, count: number, nsSrc: number, nsCount: number, nsOut: number): number {
  const out = ctx.out;
  const u8 = ctx.view.u8;
  let at = glueSrc;
  for (let i = 0; i < count; i++) {
    const ownerLen = nameLength(u8, at);
    const target = nsTargetAt(ctx, u8, at, ownerLen, nsSrc, nsCount, nsOut);
    off = target >= 0 && target <= 0x3fff ? writeU16(out, off, 0xc000 | target) : writeName(ctx, off, u8, at, ownerLen);
    at += ownerLen;
    const bodyLen = 10 + ((u8[at + 8] << 8) | u8[at + 9]);
    off = copyBytes(out, off, u8, at, bodyLen);
    at += bodyLen;
  }
  return off;
}

/** The output offset of the rdata of the NS record (of those written from `nsOut`) whose target is the name u8[at, +len), or -1. */
function nsTargetAt(ctx: WorkerScratch, u8: Uint8Array, at: number, len: number, nsSrc: number, nsCount: number, nsOut: number): number {
  const out = ctx.out;
  let s = nsSrc;
  let o = nsOut;
  for (let i = 0; i < nsCount; i++) {
    const srcLen = (u8[s + 8] << 8) | u8[s + 9];
    if (srcLen === len) {
      let j = 0;
      while (j < len && u8[s + 10 + j] === u8[at + j]) j++;
      if (j === len) return o + 12;
    }
    s += 10 + srcLen;
    o += 12 + ((out[o + 10] << 8) | out[o + 11]);
  }
  return -1;
}

/**
 * The output offset of the suffix of the name at `ptr` in the output that
 * follows its first `skip` bytes in uncompressed form (a label boundary):
 * walks its labels, following compression pointers. For pointing at the
 * zone apex inside a name that may have been written compressed.
 */
function suffixPointer(out: Uint8Array, ptr: number, skip: number): number {
  let p = ptr;
  // Each step either skips a label or follows a pointer backwards; 128 labels at most, so bound the walk.
  for (let steps = 0; skip > 0 && steps < 256; steps++) {
    const b = out[p];
    if ((b & 0xc0) === 0xc0) {
      p = ((b & 0x3f) << 8) | out[p + 1];
    } else {
      skip -= b + 1;
      p += b + 1;
    }
  }
  while ((out[p] & 0xc0) === 0xc0) p = ((out[p] & 0x3f) << 8) | out[p + 1];
  return p;
}

/**
 * Per zone of the snapshot last used: where the SOA's mname and rname meet
 * the zone apex (the length of the labels before it), -1 when the name is not
 * under the apex, -2 not yet known. Worked out once per snapshot and zone, so
 * a negative answer compresses its SOA with two loads (a general writeName
 * per name cost a NODATA answer about 60 ns more, bench/micro.ts).
 */
let soaSplitView: unknown = null;
let soaSplit = new Int32Array(0);

/** The length of the labels of the name at u8[off] before its suffix at the apex (`apexOff`, `apexLen` bytes), or -1. */
function apexSplit(u8: Uint8Array, off: number, apexOff: number, apexLen: number): number {
  let p = 0;
  const len = nameLength(u8, off);
  while (len - p > apexLen) p += u8[off + p] + 1;
  if (len - p !== apexLen) return -1;
  for (let i = 0; i < apexLen; i++) if (u8[off + p + i] !== u8[apexOff + i]) return -1;
  return p;
}

/**
 * Appends the SOA body of zone `zone` (row at `zb`) with owner pointer
 * `apexPtr`, which points at the zone apex in the output (the SOA's owner):
 * mname and rname under the apex are their leading labels and a pointer to
 * it; others are written by writeName.
 */
function writeSoa(ctx: WorkerScratch, off: number, zb: number, zone: number, apexPtr: number): number {
  const view = ctx.view;
  const u8 = view.u8;
  const u32 = view.u32;
  if (soaSplitView !== view) {
    soaSplitView = view;
    soaSplit = new Int32Array(2 * view.zoneCount).fill(-2);
  }
  const body = u32[zb + L.ZONE_SOA_OFF];
  let split = soaSplit[2 * zone];
  if (split === -2) {
    const apexOff = u32[view.nodeBase(u32[zb + L.ZONE_NODE]) + L.NODE_NAME_OFF];
    const apexLen = u32[zb + L.ZONE_APEX_LEN];
    soaSplit[2 * zone] = split = apexSplit(u8, body + 10, apexOff, apexLen);
    soaSplit[2 * zone + 1] = apexSplit(u8, body + 10 + nameLength(u8, body + 10), apexOff, apexLen);
  }
  const rsplit = soaSplit[2 * zone + 1];
  if (split < 0 || rsplit < 0) return writeBody(ctx, off, u8, body, apexPtr);
  const out = ctx.out;
  off = writeU16(out, off, 0xc000 | apexPtr);
  off = copyBytes(out, off, u8, body, 8);
  const rdStart = off + 2;
  const apexLen = u32[zb + L.ZONE_APEX_LEN];
  off = copyBytes(out, rdStart, u8, body + 10, split);
  off = writeU16(out, off, 0xc000 | apexPtr);
  const rname = body + 10 + split + apexLen;
  off = copyBytes(out, off, u8, rname, rsplit);
  off = writeU16(out, off, 0xc000 | apexPtr);
  off = copyBytes(out, off, u8, rname + rsplit + apexLen, 20);
  writeU16(out, rdStart - 2, off - rdStart);
  return off;
}

/** Answers with the routed A or AAAA records of record `rec`; SERVFAIL when none is answerable. */
export function addresses(ctx: WorkerScratch, rec: number): number {
  ctx.an = 0;
  ctx.ns = 0;
  ctx.ar = 0;
  const off = writeAddresses(ctx, question(ctx), rec, 12);
  if (off < 0) return errorReply(ctx, RCODE.SERVFAIL);
  ctx.rcode = RCODE.NOERROR;
  return seal(ctx, off);
}

/**
 * Appends the routed A or AAAA records of record `rec` at `off`, owner =
 * the name at `ownerPtr` in the output (12: the question; else the target of
 * a CNAME just written), with their RRSIG when signed. Adds to ctx.an.
 * Returns the new offset, or -1 when no member is answerable (SERVFAIL).
 */
export function writeAddresses(ctx: WorkerScratch, off: number, rec: number, ownerPtr: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const picks = ctx.picks;
  const route = ctx.route;
  const k = selectMembers(route, rec, picks, ctx.client);
  const degraded = route.degradedMode(rec);
  if (degraded !== DEGRADED_NONE) {
    bump(ctx.counters, ctx.counterBase + COUNTER.ALL_DOWN);
    // Counted by what was answered: a mode with nothing to offer ends in SERVFAIL.
    bump(ctx.counters, ctx.counterBase + (k === 0 ? COUNTER.ALL_DOWN_SERVFAIL : ALL_DOWN_COUNTER[degraded]));
  }
  if (k === 0) return -1;
  const rb = view.recordBase(rec);
  // One routing decision for the record's (domain, algorithm). Static records
  // carry NO_SLOT (0xffffffff), which fails the bound check, as does an id the
  // worker's buffer cannot hold yet (dns-worker.ts grows it at attach).
  const statId = u32[rb + L.REC_STAT_ID];
  const decisions = ctx.decisions;
  if (statId < decisions.length) bump(decisions, statId);
  const policy = u32[rb + L.REC_POLICY];
  // The answer holds for the network that decided it (RFC 7871 §7.2.1). A
  // CNAME chain can hold two decisions (a sticky or geolocation pool, then
  // its target): both networks hold the client, so the reply holds for the
  // smaller one, the longer prefix.
  if ((policy === L.POLICY_GEOLOCATION || policy === L.POLICY_STICKY) && route.ecsScope > ctx.ecsScope) ctx.ecsScope = route.ecsScope;
  if (policy === L.POLICY_GEOLOCATION) {
    if (route.geoStat < decisions.length) bump(decisions, route.geoStat);
    if (route.geoFallbackStat < decisions.length) bump(decisions, route.geoFallbackStat);
  }
  const out = ctx.out;
  const fragLen = u32[rb + L.REC_FRAG_LEN];
  const src = view.u8;
  if (fragLen === 0) {
    // A CNAME pool: one member, its fragment as long as its target name (RDLENGTH at +10).
    // The target written compressed (writeBody); the fragment's own pointer owner (+0) is replaced.
    off = writeBody(ctx, off, src, u32[view.memberBase(picks[0]) + L.MEM_FRAG_OFF] + 2, ownerPtr);
  } else {
    // Fixed-length fragments lie back to back from REC_FRAG_BASE in member
    // order: the member rows themselves are not read (one cache line fewer
    // for a name not asked recently).
    const base = u32[rb + L.REC_FRAG_BASE] - u32[rb + L.REC_MEMBER_START] * fragLen;
    if (ownerPtr === 12) {
      for (let i = 0; i < k; i++) off = copyBytes(out, off, src, base + picks[i] * fragLen, fragLen);
    } else {
      // Each fragment starts with the pointer to the question (C0 0C): point at the CNAME target instead.
      for (let i = 0; i < k; i++) {
        off = writeU16(out, off, 0xc000 | ownerPtr);
        off = copyBytes(out, off, src, base + picks[i] * fragLen + 2, fragLen - 2);
      }
    }
  }
  ctx.answered = rec;
  ctx.an += k;
  const signers = signerOf(ctx);
  if (signers !== null) off = signAddresses(ctx, off, signers, rec, k, ownerPtr);
  return off;
}

/**
 * Answers NXDOMAIN (`node` = -1) or NOERROR/NODATA (`node` = the question
 * name's node) with the zone's SOA in the authority section, its TTL lowered
 * to the negative-caching TTL (RFC 2308 §3). The owner is a pointer to the
 * apex suffix of the question name. With DO on a signed zone the denial is
 * compact (RFC 9824): the SOA's RRSIG and an NSEC at the question name with
 * its RRSIG; a name that does not exist is then answered NOERROR with NXNAME
 * in the NSEC bitmap (RFC 9824 §3.2), not NXDOMAIN.
 */
export function negative(ctx: WorkerScratch, zone: number, rcode: number, node: number): number {
  ctx.an = 0;
  const off = writeNegative(ctx, question(ctx), zone, rcode, node, ctx.lower, 0, ctx.query.qnameLen, 12);
  return seal(ctx, off);
}

/**
 * Appends the authority section of a negative answer for the name
 * name[nameOff, +nameLen) (lower-case wire), which sits uncompressed at
 * `ownerPtr` in the output: the zone's SOA (owner = the apex suffix of that
 * name), and with DO on a signed zone its RRSIG and the compact-denial NSEC.
 * Sets ctx.rcode (NOERROR when signed, RFC 9824) and ctx.ns; ctx.ar = 0.
 */
export function writeNegative(
  ctx: WorkerScratch, off: number, zone: number, rcode: number, node: number, name: Uint8Array, nameOff: number, nameLen: number, ownerPtr: number,
): number {
  const view = ctx.view;
  const u32 = view.u32;
  const out = ctx.out;
  const zb = view.zoneBase(zone);
  // The name at ownerPtr is the question (uncompressed) or a CNAME target (maybe compressed).
  const skip = nameLen - u32[zb + L.ZONE_APEX_LEN];
  const soaPtr = ownerPtr === 12 ? 12 + skip : suffixPointer(out, ownerPtr, skip);
  const body = off + 2;
  off = writeSoa(ctx, off, zb, zone, soaPtr);
  writeU32(out, body + 4, u32[zb + L.ZONE_NEG_TTL]);
  ctx.rcode = rcode;
  ctx.ns = 1;
  ctx.ar = 0;
  const signers = signerOf(ctx);
  if (signers !== null) {
    off = signDenial(ctx, off, signers, soaPtr, node, name, nameOff, nameLen, ownerPtr);
    ctx.rcode = RCODE.NOERROR;
  }
  return off;
}

/** Answers the apex SOA. */
export function soaAnswer(ctx: WorkerScratch, zone: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const zb = view.zoneBase(zone);
  let off = writeSoa(ctx, question(ctx), zb, zone, 12);
  ctx.rcode = RCODE.NOERROR;
  ctx.an = 1;
  ctx.ns = 0;
  ctx.ar = 0;
  const signers = signerOf(ctx);
  if (signers !== null) off = signSoa(ctx, off, signers);
  return seal(ctx, off);
}

/**
 * Answers the apex NS RRset, with A/AAAA glue for in-zone name servers in
 * the additional section (each owner a pointer to its NS target). With DO
 * on a signed zone, the glue of a name we are authoritative for carries its
 * RRSIG(s) behind it (RFC 4035 §3.1.1; sign-stage.ts signGlue), which seal()
 * drops, last first, rather than truncate when they alone do not fit the
 * client's UDP size.
 */
export function nsAnswer(ctx: WorkerScratch, zone: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const zb = view.zoneBase(zone);
  const nsStart = question(ctx);
  const nsSrc = u32[zb + L.ZONE_NS_OFF];
  const nsCount = u32[zb + L.ZONE_NS_COUNT];
  let off = writeBodies(ctx, nsStart, view.u8, nsSrc, nsCount, 12);
  ctx.an = nsCount;
  const signers = signerOf(ctx);
  if (signers !== null) off = signNs(ctx, off, signers);
  const glueOut = off;
  const glueSrc = u32[zb + L.ZONE_GLUE_OFF];
  const glueCount = u32[zb + L.ZONE_GLUE_COUNT];
  off = writeGlue(ctx, off, glueSrc, glueCount, nsSrc, nsCount, nsStart);
  ctx.rcode = RCODE.NOERROR;
  ctx.ns = 0;
  ctx.ar = glueCount;
  if (signers !== null && glueCount > 0) {
    ctx.optionalFrom = off;
    off = signGlue(ctx, off, glueSrc, glueOut, glueCount);
  }
  return seal(ctx, off);
}

/**
 * Answers the apex DNSKEY RRset of a signed zone (the caller checked
 * ZONE_DNSKEY_COUNT > 0), signed by every active key when DO is set.
 */
export function dnskeyAnswer(ctx: WorkerScratch, zone: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const u8 = view.u8;
  const out = ctx.out;
  const zb = view.zoneBase(zone);
  let off = question(ctx);
  const count = u32[zb + L.ZONE_DNSKEY_COUNT];
  off = copyRecords(out, off, u8, u32[zb + L.ZONE_DNSKEY_OFF], count, 12);
  ctx.rcode = RCODE.NOERROR;
  ctx.an = count;
  ctx.ns = 0;
  ctx.ar = 0;
  const signers = signerOf(ctx);
  if (signers !== null) off = signDnskey(ctx, off, signers);
  return seal(ctx, off);
}

/**
 * Answers an error or refusal without data: header, the question when it
 * parsed, and an OPT when the query had a valid one. AA is clear: these are
 * not authoritative answers. BADVERS (16) goes out through the OPT's
 * extended-rcode byte (RFC 6891 §6.1.3).
 */
export function errorReply(ctx: WorkerScratch, rcode: number): number {
  const off = emptyReply(ctx, rcode, 0);
  countReply(ctx, rcode);
  return off;
}

/**
 * Answers a TSIG-signed query (parseQuery returned PARSE_TSIG): we hold no
 * TSIG keys, so NOTAUTH with an unsigned TSIG RR carrying error BADKEY (RFC
 * 8945 §5.2, §5.3.2: MAC size 0), last in the additional section after our
 * OPT; it echoes the key name, algorithm, time signed, fudge and original ID
 * of the query's TSIG, as Knot does. The key name is written uncompressed.
 */
export function tsigErrorReply(ctx: WorkerScratch): number {
  const q = ctx.query;
  const out = ctx.out;
  let off = emptyReply(ctx, RCODE.NOTAUTH, 0);
  off = copyBytes(out, off, q.tsigKey, 0, q.tsigKeyLen);
  off = writeU16(out, off, QTYPE.TSIG);
  off = writeU16(out, off, QCLASS.ANY);
  off = writeU32(out, off, 0);
  // RDATA: algorithm name + time signed (6) + fudge (2), as sent; MAC size 0,
  // original ID, error, other len 0.
  const fixedLen = q.tsigAlgorithmLen + 8;
  off = writeU16(out, off, fixedLen + 8);
  off = copyBytes(out, off, ctx.req, q.tsigRdataOff, fixedLen);
  off = writeU16(out, off, 0);
  off = writeU16(out, off, q.tsigOriginalId);
  off = writeU16(out, off, TSIG_ERROR_BADKEY);
  off = writeU16(out, off, 0);
  out[11]++; // ARCOUNT: emptyReply wrote 0 or 1 (the OPT)
  // Two names of up to 255 bytes besides the question: over UDP it may not fit the client's size.
  return finish(ctx, off, RCODE.NOTAUTH);
}

/**
 * Answers with TC=1 and no records: the question (when it parsed) and an OPT
 * (when the query had one, with our cookie), rcode NOERROR, so the client
 * asks again over TCP. Used for a rate-limited response that slips (`count`
 * false: the response it replaces was counted already), and under
 * dns.cookies.require for a UDP query that cannot be sent BADCOOKIE (`count`
 * true: the one reply to that query, counted in the reply matrix as NOERROR).
 */
export function truncatedReply(ctx: WorkerScratch, count: boolean): number {
  const off = emptyReply(ctx, RCODE.NOERROR, FLAG.TC);
  if (count) countReply(ctx, RCODE.NOERROR);
  return off;
}

/**
 * A reply to a query without a question (a cookie-only query, RFC 7873
 * §5.4): no records, the OPT with our cookie; counted in the reply matrix
 * under type NONE, as there is no question type.
 */
export function questionlessReply(ctx: WorkerScratch, rcode: number): number {
  const off = emptyReply(ctx, rcode, 0);
  bump(ctx.counters, ctx.counterBase + matrixSlot(TYPE_NONE, rcode));
  return off;
}

/** A reply with no records: header (with `flags` besides QR and the copied ones), the question when it parsed, an OPT when the query had one. */
function emptyReply(ctx: WorkerScratch, rcode: number, flags: number): number {
  const q = ctx.query;
  let off = 12;
  let qd = 0;
  if (q.questionEnd > 0) {
    off = question(ctx);
    qd = 1;
  }
  let ar = 0;
  if (q.hasEdns) {
    // Every error reply (REFUSED, NOTIMP, NOTAUTH, SERVFAIL, BADVERS…) echoes
    // a well-formed ECS option with SCOPE PREFIX-LENGTH 0, as Knot does: the
    // reply holds for every client address (RFC 7871 §7.2.1: FAMILY, SOURCE
    // PREFIX-LENGTH and ADDRESS copied; scope 0 when the answer does not
    // depend on the address), so a resolver caches it once, for everyone; and
    // an answer without the option would read to it as a server that does
    // not do ECS (§7.1.3). A malformed option was never read (FORMERR, no
    // echo: parseQuery clears it), and questionless replies have none.
    off = writeOpt(ctx.out, off, q, ctx.req, rcode, true, 0, ctx.replyCookie);
    ar = 1;
  }
  writeHeader(ctx.out, q.id, FLAG.QR | flags | (q.flags & COPIED_FLAGS), rcode, qd, 0, 0, ar);
  return off;
}

/**
 * Completes an authoritative answer whose sections end at `off`, as the
 * builder described it on the scratch (rcode; an, ns, ar records, RRSIGs and
 * NSECs included; the record answered): the OPT (when the query had one), the
 * header with AA set and the counts, and finish() for the size check. A
 * signed answer too big for the client's UDP size is truncated there like
 * any other and completes over TCP.
 */
export function seal(ctx: WorkerScratch, off: number): number {
  return sealWith(ctx, off, FLAG.AA);
}

/** seal() with the AA flag given: FLAG.AA, or 0 for a referral (RFC 1034 §4.3.2: not authoritative for the child). */
export function sealWith(ctx: WorkerScratch, off: number, aa: number): number {
  const q = ctx.query;
  let ar = ctx.ar;
  const optional = ctx.optionalFrom;
  if (optional >= 0) {
    ctx.optionalFrom = -1;
    if (!ctx.tcp) {
      const dropped = dropOptional(ctx, optional, off);
      off -= dropped >>> 16;
      ar -= dropped & 0xffff;
    }
  }
  if (q.hasEdns) {
    off = writeOpt(ctx.out, off, q, ctx.req, ctx.rcode, true, ctx.ecsScope, ctx.replyCookie);
    ar++;
  }
  writeHeader(ctx.out, q.id, FLAG.QR | aa | (q.flags & COPIED_FLAGS), ctx.rcode, 1, ctx.an, ctx.ns, ar);
  return finish(ctx, off, ctx.rcode);
}

/** The most a UDP answer to this query may hold: 512 without EDNS (RFC 1035 §4.2.1), else the client's size within [512, our 1232]. */
function udpLimit(ctx: WorkerScratch): number {
  const q = ctx.query;
  if (!q.hasEdns) return MIN_UDP_PAYLOAD;
  return q.udpSize < MIN_UDP_PAYLOAD ? MIN_UDP_PAYLOAD : q.udpSize > OUR_UDP_PAYLOAD ? OUR_UDP_PAYLOAD : q.udpSize;
}

/**
 * The additional section's RRSIGs from `from` to `end` (each with a pointer
 * owner) may be left out where they do not fit, the RRsets they cover kept,
 * without TC (RFC 4035 §3.1.1). Keeps those that fit, in order, with room
 * for the OPT still to come (measured by writing it once past the end; the
 * buffer holds a whole TCP message). Returns (bytes dropped << 16) |
 * records dropped; 0 when it all fits.
 */
function dropOptional(ctx: WorkerScratch, from: number, end: number): number {
  const q = ctx.query;
  let optLen = 0;
  if (q.hasEdns) optLen = writeOpt(ctx.out, end, q, ctx.req, ctx.rcode, true, ctx.ecsScope, ctx.replyCookie) - end;
  const limit = udpLimit(ctx) - optLen;
  if (end <= limit) return 0;
  const out = ctx.out;
  let keep = from;
  while (keep < end) {
    const rrLen = 12 + ((out[keep + 10] << 8) | out[keep + 11]);
    if (keep + rrLen > limit) break;
    keep += rrLen;
  }
  let records = 0;
  for (let o = keep; o < end; o += 12 + ((out[o + 10] << 8) | out[o + 11])) records++;
  return ((end - keep) << 16) | records;
}

/** Counts the reply and, over UDP, replaces an answer too big for the client with a truncated one (TC=1). */
function finish(ctx: WorkerScratch, len: number, rcode: number): number {
  countReply(ctx, rcode);
  if (ctx.tcp) return len;
  const q = ctx.query;
  // Without EDNS the limit is 512 (RFC 1035 §4.2.1); with it, the client's
  // size, but never above our 1232 (fragmentation-safe, DNS Flag Day 2020).
  if (len <= udpLimit(ctx)) return len;
  bump(ctx.counters, ctx.counterBase + COUNTER.TRUNCATED);
  // RFC 2181 §9: with TC set the client retries over TCP; send just the
  // question (and OPT) so the truncated reply itself is well-formed.
  const out = ctx.out;
  let off = q.questionEnd;
  let ar = 0;
  if (q.hasEdns) {
    off = writeOpt(out, off, q, ctx.req, rcode, true, ctx.ecsScope, ctx.replyCookie);
    ar = 1;
  }
  out[2] |= FLAG.TC >>> 8;
  patchCounts(out, 0, 0, ar);
  return off;
}

function countReply(ctx: WorkerScratch, rcode: number): void {
  // One count per reply, in the type × rcode matrix behind
  // opengslb_dns_queries_total and readCounters()'s RCODE_n. FORMERR and
  // NOTIMP are given before the question counts (as QTYPE_* do): type NONE.
  const typeIdx = rcode === RCODE.FORMERR || rcode === RCODE.NOTIMP ? TYPE_NONE : typeIndexOf(ctx.query.qtype);
  bump(ctx.counters, ctx.counterBase + matrixSlot(typeIdx, rcode));
}
