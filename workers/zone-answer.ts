// Worker, hot path. Answers from a zone's static records (dns.zones[].records)
// and the server's identity, beside the GSLB answers of ./answer.ts:
//
//   staticAnswer  an RRset pre-built in the snapshot (owner pointer, bytes copied), signed when DO
//   cnameAnswer   a static CNAME, then its target's data while the target is ours
//                 (RFC 1034 §4.3.2), at most MAX_CNAME_CHAIN links
//   referral      a delegation: NS in authority, glue in additional, AA clear
//   chaosAnswer   CH TXT version.bind / id.server and friends (dns.identity)
//   dnssecTypeAnswer  type NSEC or RRSIG in a signed zone: the name's NSEC, or its RRSIG
//
// Like answer.ts: synchronous, no allocation, every loop bounded.

import { QTYPE, RCODE } from '../src/dns/constants.ts';
import { copyBytes, writeU16, writeU32 } from '../src/dns/write.ts';
import * as L from '../src/snapshot/layout.ts';
import { errorReply, negative, question, seal, sealWith, writeAddresses, writeBodies, writeGlue, writeNegative } from './answer.ts';
import type { WorkerScratch } from './scratch.ts';
import { dnssecTypeRecords, signerOf, signReferral, signStatic } from './sign-stage.ts';

/** The most CNAMEs one answer follows (CoreDNS plugin/file/lookup.go gives up on its 9th pass); config refuses longer chains. */
const MAX_CNAME_CHAIN = 8;
/** A compression pointer holds 14 bits: a CNAME target written past this offset cannot be pointed at, so the chain stops there. */
const MAX_POINTER = 0x3fff;

/**
 * Appends static RRset `rs` of node `node` at `off`, each RR's owner a
 * pointer to `ownerPtr` and the names in NS, CNAME, MX and PTR rdata
 * compressed (writeBodies), with its RRSIG when the answer is signed. Adds
 * to ctx.an and returns the new offset.
 */
function writeRrset(ctx: WorkerScratch, off: number, rs: number, node: number, ownerPtr: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const rb = view.rrsetBase(rs);
  const count = u32[rb + L.RS_COUNT];
  off = writeBodies(ctx, off, view.u8, u32[rb + L.RS_OFF], count, ownerPtr);
  ctx.an += count;
  const signers = signerOf(ctx);
  if (signers !== null) off = signStatic(ctx, off, signers, rs, node, ownerPtr);
  return off;
}

/** Answers the question type at `node` from its static records; NODATA (with the SOA) when it has none of that type. */
export function staticAnswer(ctx: WorkerScratch, node: number): number {
  const rs = ctx.view.findRrset(node, ctx.query.qtype);
  if (rs < 0) return negative(ctx, ctx.zone, RCODE.NOERROR, node);
  return rrsetAnswer(ctx, node, rs);
}

/** Answers static RRset `rs` of `node` (also ANY's one RRset, RFC 8482). */
export function rrsetAnswer(ctx: WorkerScratch, node: number, rs: number): number {
  ctx.an = 0;
  ctx.ns = 0;
  ctx.ar = 0;
  const off = writeRrset(ctx, question(ctx), rs, node, 12);
  ctx.rcode = RCODE.NOERROR;
  return seal(ctx, off);
}

/**
 * Answers a query at a name holding a CNAME: a static CNAME (any type but
 * CNAME), or a CNAME pool (any type: the CNAME its domain's policy picks
 * among the healthy targets). Then, unless the question is for the CNAME
 * itself, while the target lies in our zones: the target's records of the
 * question type (GSLB-routed or static), its CNAME in turn, or the target's
 * NODATA / NXDOMAIN (RFC 6604: the rcode is the last name's) with the target
 * zone's SOA. A target outside our zones, at a delegation, or a chain longer
 * than MAX_CNAME_CHAIN ends the answer after the last CNAME for the resolver
 * to follow (RFC 1034 §4.3.2). A pool with nothing answerable is SERVFAIL,
 * as an address pool's would be.
 */
export function cnameAnswer(ctx: WorkerScratch, node: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const u8 = view.u8;
  const qtype = ctx.query.qtype;
  ctx.an = 0;
  ctx.ns = 0;
  ctx.ar = 0;
  ctx.rcode = RCODE.NOERROR;
  let off = question(ctx);
  let ownerPtr = 12;
  let cur = node;
  for (let hop = 0; hop < MAX_CNAME_CHAIN; hop++) {
    // The target name is the CNAME's rdata: 2 (owner pointer) + 10 (type, class, TTL, length) into the RR.
    const targetPtr = off + 12;
    let nameOff: number;
    let chase: number;
    const pool = u32[view.nodeBase(cur) + L.NODE_REC_CNAME];
    if (pool !== 0) {
      const end = writeAddresses(ctx, off, pool - 1, ownerPtr);
      if (end < 0) return errorReply(ctx, RCODE.SERVFAIL);
      off = end;
      nameOff = u32[view.memberBase(ctx.picks[0]) + L.MEM_FRAG_OFF] + 12;
      chase = u32[view.recordBase(pool - 1) + L.REC_CHASE];
    } else {
      const rs = view.findRrset(cur, QTYPE.CNAME);
      if (rs < 0) break;
      const rb = view.rrsetBase(rs);
      off = writeRrset(ctx, off, rs, cur, ownerPtr);
      nameOff = u32[rb + L.RS_OFF] + 10;
      chase = u32[rb + L.RS_CHASE];
    }
    if (chase === 0 || qtype === QTYPE.CNAME || targetPtr > MAX_POINTER) break;
    const nameLen = (u8[nameOff - 2] << 8) | u8[nameOff - 1];
    const target = view.findNode(u8, nameOff, nameLen);
    if (target < 0) {
      // Not a name we hold: the closest enclosing one decides (as in handle-query's lookup).
      let o = 0;
      let enc = -1;
      while (o < nameLen && u8[nameOff + o] !== 0) {
        o += u8[nameOff + o] + 1;
        enc = view.findNode(u8, nameOff + o, nameLen - o);
        if (enc >= 0) break;
      }
      if (enc < 0) break;
      const eb = view.nodeBase(enc);
      if ((u32[eb + L.NODE_FLAGS] & L.NODE_FLAG_CUT) !== 0) break;
      ctx.zone = u32[eb + L.NODE_ZONE];
      off = writeNegative(ctx, off, ctx.zone, RCODE.NXDOMAIN, -1, u8, nameOff, nameLen, targetPtr);
      break;
    }
    const tb = view.nodeBase(target);
    ctx.zone = u32[tb + L.NODE_ZONE];
    const flags = u32[tb + L.NODE_FLAGS];
    if ((flags & L.NODE_FLAG_CUT) !== 0) break;
    if ((flags & (L.NODE_FLAG_CNAME | L.NODE_FLAG_CNAME_POOL)) !== 0) {
      cur = target;
      ownerPtr = targetPtr;
      continue;
    }
    const rec = qtype === QTYPE.A ? u32[tb + L.NODE_REC_A] : qtype === QTYPE.AAAA ? u32[tb + L.NODE_REC_AAAA] : 0;
    if (rec !== 0) {
      const end = writeAddresses(ctx, off, rec - 1, targetPtr);
      // Every server of the target down (and when_all_down says so): SERVFAIL, as for the target itself.
      if (end < 0) return errorReply(ctx, RCODE.SERVFAIL);
      off = end;
      break;
    }
    const trs = view.findRrset(target, qtype);
    if (trs >= 0) {
      off = writeRrset(ctx, off, trs, target, targetPtr);
      break;
    }
    // ANY (RFC 8482: the CNAME is one RRset) and the apex's own types end with the chain so far.
    if (qtype === QTYPE.ANY || (flags & L.NODE_FLAG_APEX) !== 0) break;
    off = writeNegative(ctx, off, ctx.zone, RCODE.NOERROR, target, u8, u32[tb + L.NODE_NAME_OFF], u32[tb + L.NODE_NAME_LEN], targetPtr);
    break;
  }
  return seal(ctx, off);
}

/**
 * Answers a query for type NSEC or RRSIG at node `node` (-1: a name that
 * does not exist) of a signed zone (sign-stage.ts dnssecTypeRecords):
 * compact denial puts an NSEC, and so an RRSIG, at every name of the zone,
 * also at a CNAME or a delegation (RFC 2181 §10.1, RFC 4035 §2.3), so a
 * NODATA would carry an NSEC listing the very type it denies, which a
 * validator rejects. Returns -1 for a zone that is not signed: there these
 * types exist nowhere and the caller answers as for any other type.
 */
export function dnssecTypeAnswer(ctx: WorkerScratch, node: number): number {
  const zone = ctx.zone;
  const signers = zone >= 0 && zone < ctx.signers.length ? ctx.signers[zone] : null;
  if (signers === null) return -1;
  ctx.an = 0;
  ctx.ns = 0;
  ctx.ar = 0;
  ctx.rcode = RCODE.NOERROR;
  const q = ctx.query;
  return seal(ctx, dnssecTypeRecords(ctx, question(ctx), signers, node, q.qtype, q.dnssecOk));
}

/**
 * Answers a query at or below the delegation at node `cut` with a referral
 * (RFC 1034 §4.3.2 step 3b): no answer, the cut's NS in the authority
 * section (owner: the cut's suffix of the question name, at `cutOff` into it;
 * never signed, the child's data), glue in the additional section, AA clear.
 * With DO on a signed zone, the NSEC at the cut and its RRSIG prove there is
 * no DS (an unsigned child).
 */
export function referral(ctx: WorkerScratch, cut: number, cutOff: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const rs = view.findRrset(cut, QTYPE.NS);
  if (rs < 0) return negative(ctx, ctx.zone, RCODE.NXDOMAIN, -1);
  const rb = view.rrsetBase(rs);
  const ownerPtr = 12 + cutOff;
  // Rate limiting keys a referral by its delegation, even once cut to TC=1 (handle-query.ts limit).
  ctx.cutOff = cutOff;
  const nsStart = question(ctx);
  const nsSrc = u32[rb + L.RS_OFF];
  const count = u32[rb + L.RS_COUNT];
  let off = writeBodies(ctx, nsStart, view.u8, nsSrc, count, ownerPtr);
  ctx.an = 0;
  ctx.ns = count;
  ctx.ar = 0;
  ctx.rcode = RCODE.NOERROR;
  const signers = signerOf(ctx);
  if (signers !== null) off = signReferral(ctx, off, signers, cut, ownerPtr);
  // Glue below the cut is the child's data: never signed.
  const glueCount = u32[rb + L.RS_GLUE_COUNT];
  off = writeGlue(ctx, off, u32[rb + L.RS_GLUE_OFF], glueCount, nsSrc, count, nsStart);
  ctx.ar = glueCount;
  return sealWith(ctx, off, 0);
}

// The CH names of RFC 4892 and BIND, lower-case wire form.
const VERSION_BIND = Uint8Array.of(7, 118, 101, 114, 115, 105, 111, 110, 4, 98, 105, 110, 100, 0);
const VERSION_SERVER = Uint8Array.of(7, 118, 101, 114, 115, 105, 111, 110, 6, 115, 101, 114, 118, 101, 114, 0);
const ID_SERVER = Uint8Array.of(2, 105, 100, 6, 115, 101, 114, 118, 101, 114, 0);
const HOSTNAME_BIND = Uint8Array.of(8, 104, 111, 115, 116, 110, 97, 109, 101, 4, 98, 105, 110, 100, 0);

function sameName(lower: Uint8Array, len: number, wire: Uint8Array): boolean {
  if (len !== wire.length) return false;
  for (let i = 0; i < len; i++) if (lower[i] !== wire[i]) return false;
  return true;
}

/**
 * Answers a CH-class query: TXT (or ANY) for version.bind / version.server
 * with dns.identity.version and for id.server / hostname.bind with
 * dns.identity.id, TTL 0, AA set. Everything else in CH, and those names
 * while their key is unset, is REFUSED (as Knot does without `identity` and
 * `version`).
 */
export function chaosAnswer(ctx: WorkerScratch): number {
  const q = ctx.query;
  const lower = ctx.lower;
  const len = q.qnameLen;
  const u32 = ctx.view.u32;
  if (q.qtype !== QTYPE.TXT && q.qtype !== QTYPE.ANY) return errorReply(ctx, RCODE.REFUSED);
  let txtOff: number;
  let txtLen: number;
  if (sameName(lower, len, VERSION_BIND) || sameName(lower, len, VERSION_SERVER)) {
    txtOff = u32[L.HDR_VERSION_TXT_OFF];
    txtLen = u32[L.HDR_VERSION_TXT_LEN];
  } else if (sameName(lower, len, ID_SERVER) || sameName(lower, len, HOSTNAME_BIND)) {
    txtOff = u32[L.HDR_ID_TXT_OFF];
    txtLen = u32[L.HDR_ID_TXT_LEN];
  } else {
    return errorReply(ctx, RCODE.REFUSED);
  }
  if (txtLen === 0) return errorReply(ctx, RCODE.REFUSED);
  const out = ctx.out;
  let off = writeU16(out, question(ctx), 0xc00c);
  off = writeU16(out, off, QTYPE.TXT);
  off = writeU16(out, off, 3); // CH
  off = writeU32(out, off, 0);
  off = writeU16(out, off, txtLen);
  off = copyBytes(out, off, ctx.view.u8, txtOff, txtLen);
  ctx.zone = -1; // never signed
  ctx.rcode = RCODE.NOERROR;
  ctx.an = 1;
  ctx.ns = 0;
  ctx.ar = 0;
  return seal(ctx, off);
}
