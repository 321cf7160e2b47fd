// Worker, hot path. The sign stage of the answer (./answer.ts): with the DO
// bit on a query for a signed zone, the builders call these right after each
// RRset they wrote, and they append its RRSIG(s) from the worker's signature
// cache (signing on a miss), or, for a negative answer, the compact-denial
// NSEC (RFC 9824) with its RRSIG(s). Without DO, or for a zone without a key,
// nothing here runs: signerOf() returns null and the builders skip it.
//
// One RRSIG per data key (ZoneSigners.data): one key, but two during an
// algorithm rollover (RFC 4035 §2.2: each algorithm of the DNSKEY RRset signs
// every RRset). The extra RRSIGs make the answer longer and nothing else:
// the output buffer holds a whole TCP message, and finish() (./answer.ts)
// cuts a UDP answer that outgrew the client's size to TC=1.
//
// RRsets are handed to the cache by reference into the snapshot (owner =
// the node's lower-case name, rdata = the bytes after each precomputed RR's
// fixed part), so a lookup copies nothing and allocates nothing. The cache is
// keyed by the canonical RRset: a rotated address set hits the same entry in
// any order. Counters: DNSSEC_CACHE_HITS / _MISSES / _SIGNATURES / _SIGN_US.

import { QTYPE } from '../src/dns/constants.ts';
import { copyBytes, writeU32 } from '../src/dns/write.ts';
import { NXNAME_BITMAP, writeCompactNsecRdata, writeNsec, writeSuccessorName } from '../src/dnssec/denial.ts';
import { DNSSEC_TYPE, unpackRrsets, unpackSignatures, writeRrsig } from '../src/dnssec/sign.ts';
import type { SignerKey } from '../src/dnssec/sign.ts';
import { bump, COUNTER } from '../src/metrics/counters-layout.ts';
import * as L from '../src/snapshot/layout.ts';
import type { SignatureBatch, ZoneSigners } from './messages.ts';
import type { WorkerScratch } from './scratch.ts';

/**
 * Returns the signers of the answer's zone when the answer must be signed
 * (DO set, the zone has keys), else null. One array load and a flag test.
 */
export function signerOf(ctx: WorkerScratch): ZoneSigners | null {
  const zone = ctx.zone;
  if (!ctx.query.dnssecOk || zone < 0 || zone >= ctx.signers.length) return null;
  return ctx.signers[zone];
}

/** The RRSIG rdata for ctx.rrset by `key`: from the cache, or signed now (a miss), counted either way. */
function rrsigOf(ctx: WorkerScratch, key: SignerKey): Uint8Array {
  const cache = ctx.signatures;
  const nowSec = ctx.nowSec;
  const hit = cache.find(key, ctx.rrset, nowSec);
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  if (hit !== null) {
    bump(counters, cb + COUNTER.DNSSEC_CACHE_HITS);
    return hit;
  }
  bump(counters, cb + COUNTER.DNSSEC_CACHE_MISSES);
  const before = cache.signMs;
  const rdata = cache.sign(key, ctx.rrset, nowSec);
  bump(counters, cb + COUNTER.DNSSEC_SIGNATURES);
  bump(counters, cb + COUNTER.DNSSEC_SIGN_US, Math.round((cache.signMs - before) * 1000));
  return rdata;
}

/**
 * Appends one RRSIG of ctx.rrset with owner pointer `ownerPtr`; `ttlSec` ≥ 0
 * overrides the record's TTL (a negative answer's SOA is served with the
 * negative TTL while its signature keeps the SOA's Original TTL, RFC 4035
 * §2.2 / RFC 2308 §3). Returns the new offset (unchanged when nothing fit).
 */
function appendRrsig(ctx: WorkerScratch, off: number, key: SignerKey, ownerPtr: number, ttlSec: number): number {
  const end = writeRrsig(ctx.out, off, ownerPtr, rrsigOf(ctx, key));
  if (end < 0) return off;
  if (ttlSec >= 0) writeU32(ctx.out, off + 6, ttlSec);
  return end;
}

/** The section an RRSIG is counted in (appendRrsigs). */
const ANSWER = 0;
const AUTHORITY = 1;
const ADDITIONAL = 2;

/**
 * Appends one RRSIG of ctx.rrset per key of `keys` (appendRrsig; ctx.rrset
 * stays as it is across them), counted in ctx.an, ctx.ns or ctx.ar by
 * `section` (ANSWER, AUTHORITY, ADDITIONAL). Returns the new offset. An indexed loop over a one- or two-key
 * array: no allocation, and the one-key case costs what one appendRrsig did
 * (bench/handle-query.bench.ts, signed headline: median 666 ns before the
 * loop, 573-585 ns with it, on a loaded 2-core box; 0.3 B/op both).
 */
function appendRrsigs(ctx: WorkerScratch, off: number, keys: readonly SignerKey[], ownerPtr: number, ttlSec: number, section: number): number {
  for (let i = 0; i < keys.length; i++) {
    const end = appendRrsig(ctx, off, keys[i], ownerPtr, ttlSec);
    if (end === off) continue;
    if (section === ANSWER) ctx.an++;
    else if (section === AUTHORITY) ctx.ns++;
    else ctx.ar++;
    off = end;
  }
  return off;
}

/** Points ctx.rrset's owner at node `node`'s lower-case wire name in the snapshot. */
function resetAtNode(ctx: WorkerScratch, node: number, type: number, ttlSec: number): void {
  const view = ctx.view;
  const nb = view.nodeBase(node);
  ctx.rrset.reset(view.u8, view.u32[nb + L.NODE_NAME_OFF], view.u32[nb + L.NODE_NAME_LEN], type, ttlSec);
}

/**
 * Signs the `k` address records of record `rec` just written (members
 * ctx.picks[0 … k)), owner = the name at `ownerPtr`. Returns the offset
 * after the RRSIG(s); adds them to ctx.an.
 */
export function signAddresses(ctx: WorkerScratch, off: number, signers: ZoneSigners, rec: number, k: number, ownerPtr: number): number {
  const view = ctx.view;
  const u32 = view.u32;
  const rb = view.recordBase(rec);
  resetAtNode(ctx, u32[rb + L.REC_NODE], u32[rb + L.REC_QTYPE], u32[rb + L.REC_TTL]);
  // Each fragment is 2 (owner pointer) + 10 (type, class, TTL, length) + rdata.
  const rdataLen = u32[rb + L.REC_FRAG_LEN] - 12;
  const rrset = ctx.rrset;
  const u8 = view.u8;
  for (let i = 0; i < k; i++) {
    const fo = u32[view.memberBase(ctx.picks[i]) + L.MEM_FRAG_OFF];
    // REC_FRAG_LEN 0 (a CNAME pool): each fragment carries its own RDLENGTH.
    rrset.add(u8, fo + 12, rdataLen >= 0 ? rdataLen : (u8[fo + 10] << 8) | u8[fo + 11]);
  }
  return appendRrsigs(ctx, off, signers.data, ownerPtr, -1, ANSWER);
}

/** Fills ctx.rrset with the zone's SOA (owner: the apex node). */
function soaRrset(ctx: WorkerScratch, zb: number): void {
  const u32 = ctx.view.u32;
  resetAtNode(ctx, u32[zb + L.ZONE_NODE], QTYPE.SOA, u32[zb + L.ZONE_SOA_TTL]);
  ctx.rrset.add(ctx.view.u8, u32[zb + L.ZONE_SOA_OFF] + 10, u32[zb + L.ZONE_SOA_LEN] - 10);
}

/** Fills ctx.rrset with `count` RR bodies (TYPE CLASS TTL RDLENGTH RDATA) back to back from `src`, owner the apex. */
function bodiesRrset(ctx: WorkerScratch, zb: number, type: number, src: number, count: number): void {
  bodiesAtNode(ctx, ctx.view.u32[zb + L.ZONE_NODE], type, src, count);
}

/** Fills ctx.rrset with `count` RR bodies back to back from `src`, owner node `node`'s name. */
function bodiesAtNode(ctx: WorkerScratch, node: number, type: number, src: number, count: number): void {
  const u8 = ctx.view.u8;
  // Every body of one RRset carries the same TTL: read it from the first.
  const ttl = count === 0 ? 0 : ((u8[src + 4] << 24) | (u8[src + 5] << 16) | (u8[src + 6] << 8) | u8[src + 7]) >>> 0;
  resetAtNode(ctx, node, type, ttl);
  for (let i = 0; i < count; i++) {
    const len = (u8[src + 8] << 8) | u8[src + 9];
    ctx.rrset.add(u8, src + 10, len);
    src += 10 + len;
  }
}

/** Signs the apex SOA answer just written (owner pointer 12). Adds the RRSIG(s) to ctx.an. */
export function signSoa(ctx: WorkerScratch, off: number, signers: ZoneSigners): number {
  soaRrset(ctx, ctx.view.zoneBase(ctx.zone));
  return appendRrsigs(ctx, off, signers.data, 12, -1, ANSWER);
}

/** Signs the apex NS RRset just written (owner pointer 12). Adds the RRSIG(s) to ctx.an. */
export function signNs(ctx: WorkerScratch, off: number, signers: ZoneSigners): number {
  const u32 = ctx.view.u32;
  const zb = ctx.view.zoneBase(ctx.zone);
  bodiesRrset(ctx, zb, QTYPE.NS, u32[zb + L.ZONE_NS_OFF], u32[zb + L.ZONE_NS_COUNT]);
  return appendRrsigs(ctx, off, signers.data, 12, -1, ANSWER);
}

/**
 * Signs the DNSKEY RRset just written (owner pointer 12) with every key in
 * signers.dnskey: one RRSIG each (two during a rollover). Adds them to ctx.an.
 */
export function signDnskey(ctx: WorkerScratch, off: number, signers: ZoneSigners): number {
  const u32 = ctx.view.u32;
  const zb = ctx.view.zoneBase(ctx.zone);
  bodiesRrset(ctx, zb, DNSSEC_TYPE.DNSKEY, u32[zb + L.ZONE_DNSKEY_OFF], u32[zb + L.ZONE_DNSKEY_COUNT]);
  return appendRrsigs(ctx, off, signers.dnskey, 12, -1, ANSWER);
}

/**
 * Signs static RRset `rs` of node `node` just written (owner pointer
 * `ownerPtr`). Adds the RRSIG(s) to ctx.an.
 */
export function signStatic(ctx: WorkerScratch, off: number, signers: ZoneSigners, rs: number, node: number, ownerPtr: number): number {
  const u32 = ctx.view.u32;
  const rb = ctx.view.rrsetBase(rs);
  bodiesAtNode(ctx, node, u32[rb + L.RS_TYPE], u32[rb + L.RS_OFF], u32[rb + L.RS_COUNT]);
  return appendRrsigs(ctx, off, signers.data, ownerPtr, -1, ANSWER);
}

/**
 * Signs the glue of an apex NS answer just written: `count` RRs from
 * `glueOut` in the output, written from the zone's glue at `glueSrc` in the
 * snapshot (ZONE_GLUE_OFF; owner names uncompressed there). Each RRset of them (one
 * owner and type; the first RR of it leads) whose owner is a name of ours
 * with that RRset as its authoritative data (a static A/AAAA record or a
 * name server's static addresses; not below a delegation, not a GSLB
 * domain's routed set) in a signed zone gets its RRSIG(s) by that zone's
 * keys, from the same cache as an answer for it (same owner, type, TTL and
 * rdata: one cache entry), owner a pointer to the glue RR's owner. Added to
 * ctx.ar; nothing for glue we are not authoritative for. Cost only with DO.
 */
export function signGlue(ctx: WorkerScratch, off: number, glueSrc: number, glueOut: number, count: number): number {
  const view = ctx.view;
  const u8 = view.u8;
  const out = ctx.out;
  let at = glueSrc;
  let o = glueOut;
  for (let i = 0; i < count; i++) {
    const ownerLen = nameLength(u8, at);
    const body = at + ownerLen;
    const type = (u8[body] << 8) | u8[body + 1];
    const next = body + 10 + ((u8[body + 8] << 8) | u8[body + 9]);
    const ownerOut = o;
    o = skipName(out, o);
    o += 10 + ((out[o + 8] << 8) | out[o + 9]);
    if (!firstOfRrset(u8, glueSrc, at, ownerLen, type)) {
      at = next;
      continue;
    }
    const node = view.findNode(u8, at, ownerLen);
    const keys = node < 0 ? null : glueSigners(ctx, node, type);
    if (keys !== null) {
      const ttl = ((u8[body + 4] << 24) | (u8[body + 5] << 16) | (u8[body + 6] << 8) | u8[body + 7]) >>> 0;
      resetAtNode(ctx, node, type, ttl);
      // This RR and every later one of the same owner and type.
      for (let j = i, g = at; j < count; j++) {
        const gLen = nameLength(u8, g);
        const gBody = g + gLen;
        const rdLen = (u8[gBody + 8] << 8) | u8[gBody + 9];
        if (gLen === ownerLen && ((u8[gBody] << 8) | u8[gBody + 1]) === type && sameBytes(u8, g, at, gLen)) ctx.rrset.add(u8, gBody + 10, rdLen);
        g = gBody + 10 + rdLen;
      }
      off = appendRrsigs(ctx, off, keys, ownerOut, -1, ADDITIONAL);
    }
    at = next;
  }
  return off;
}

/**
 * The data keys that sign node `node`'s RRset of `type` (A or AAAA) when it
 * is authoritative static data of a signed zone of ours, else null.
 */
function glueSigners(ctx: WorkerScratch, node: number, type: number): readonly SignerKey[] | null {
  const view = ctx.view;
  const u32 = view.u32;
  const nb = view.nodeBase(node);
  if ((u32[nb + L.NODE_FLAGS] & L.NODE_FLAG_CUT) !== 0) return null;
  const zone = u32[nb + L.NODE_ZONE];
  const signers = zone < ctx.signers.length ? ctx.signers[zone] : null;
  if (signers === null) return null;
  const rec = u32[nb + (type === QTYPE.A ? L.NODE_REC_A : L.NODE_REC_AAAA)];
  if (rec !== 0) return u32[view.recordBase(rec - 1) + L.REC_POLICY] === L.POLICY_STATIC ? signers.data : null;
  return view.findRrset(node, type) >= 0 ? signers.data : null;
}

/** Whether no glue RR before the one at `at` (from `start`) has the same owner (`len` bytes) and type. */
function firstOfRrset(u8: Uint8Array, start: number, at: number, len: number, type: number): boolean {
  for (let g = start; g < at;) {
    const gLen = nameLength(u8, g);
    const gBody = g + gLen;
    if (gLen === len && ((u8[gBody] << 8) | u8[gBody + 1]) === type && sameBytes(u8, g, at, len)) return false;
    g = gBody + 10 + ((u8[gBody + 8] << 8) | u8[gBody + 9]);
  }
  return true;
}

function sameBytes(u8: Uint8Array, a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (u8[a + i] !== u8[b + i]) return false;
  return true;
}

/** Length of the uncompressed wire name at src[off]. */
function nameLength(src: Uint8Array, off: number): number {
  let o = off;
  while (src[o] !== 0) o += src[o] + 1;
  return o + 1 - off;
}

/** The offset after the (possibly compressed) name at out[off]. */
function skipName(out: Uint8Array, off: number): number {
  let o = off;
  while (out[o] !== 0) {
    if ((out[o] & 0xc0) === 0xc0) return o + 2;
    o += out[o] + 1;
  }
  return o + 1;
}

/**
 * Completes a negative answer whose authority section holds the SOA (owner
 * pointer `soaPtr`, TTL lowered to the negative TTL): the SOA's RRSIG(s), then
 * the compact-denial NSEC at the denied name with its RRSIG(s) (RFC 9824 §3).
 * The denied name is name[nameOff, +nameLen) in lower-case wire form, at
 * `ownerPtr` in the output (the question, or a CNAME's target). `node` is
 * that name's node for NODATA (its type bitmap), or -1 for a name that does
 * not exist (bitmap RRSIG NSEC NXNAME). Adds to ctx.ns.
 */
export function signDenial(
  ctx: WorkerScratch, off: number, signers: ZoneSigners, soaPtr: number, node: number, name: Uint8Array, nameOff: number, nameLen: number, ownerPtr: number,
): number {
  const zb = ctx.view.zoneBase(ctx.zone);
  const negTtl = ctx.view.u32[zb + L.ZONE_NEG_TTL];
  soaRrset(ctx, zb);
  const end = appendRrsigs(ctx, off, signers.data, soaPtr, negTtl, AUTHORITY);
  return appendNsec(ctx, end, signers, node, name, nameOff, nameLen, ownerPtr, negTtl);
}

/**
 * Builds the compact-denial NSEC of name[nameOff, +nameLen) in ctx.nsec:
 * next name \000.<name>, the bitmap of node `node` (or NXNAME when -1), and
 * points ctx.rrset at it (TTL `ttlSec`) for its RRSIG. Returns the rdata
 * length, or -1 when the name has no NSEC (a first label of all 0xff octets
 * has no successor).
 */
function nsecRrset(ctx: WorkerScratch, node: number, name: Uint8Array, nameOff: number, nameLen: number, ttlSec: number): number {
  const view = ctx.view;
  const u8 = view.u8;
  const nsec = ctx.nsec;
  let rdataLen: number;
  if (node < 0) {
    rdataLen = writeCompactNsecRdata(nsec, 0, name, nameOff, nameLen, NXNAME_BITMAP);
  } else {
    // The bitmap sits in the blob behind its length byte; copied by hand, as
    // a subarray() view per query cost 104 bytes (bench/handle-query.bench.ts).
    const bitmapOff = view.u32[view.nodeBase(node) + L.NODE_NSEC_OFF];
    const bitmapLen = u8[bitmapOff];
    rdataLen = writeSuccessorName(nsec, 0, name, nameOff, nameLen);
    if (rdataLen >= 0 && rdataLen + bitmapLen <= nsec.length) rdataLen = copyBytes(nsec, rdataLen, u8, bitmapOff + 1, bitmapLen);
    else rdataLen = -1;
  }
  if (rdataLen >= 0) ctx.rrset.reset(name, nameOff, nameLen, DNSSEC_TYPE.NSEC, ttlSec).add(nsec, 0, rdataLen);
  return rdataLen;
}

/**
 * Appends the compact-denial NSEC of name[nameOff, +nameLen) (owner pointer
 * `ownerPtr`) with its RRSIG(s) to the authority section (nsecRrset). Adds
 * to ctx.ns.
 */
function appendNsec(ctx: WorkerScratch, off: number, signers: ZoneSigners, node: number, name: Uint8Array, nameOff: number, nameLen: number, ownerPtr: number, ttlSec: number): number {
  const rdataLen = nsecRrset(ctx, node, name, nameOff, nameLen, ttlSec);
  if (rdataLen < 0) return off;
  const end = writeNsec(ctx.out, off, ownerPtr, ttlSec, ctx.nsec, 0, rdataLen);
  if (end < 0) return off;
  ctx.ns++;
  return appendRrsigs(ctx, end, signers.data, ownerPtr, -1, AUTHORITY);
}

/**
 * The answer records of a query for type NSEC or RRSIG at the question name
 * in a signed zone (node `node`, or -1 for a name that does not exist, which
 * compact denial says exists with only its NSEC): for NSEC the name's NSEC,
 * with its RRSIG(s) when `dnssecOk`; for RRSIG "some RRSIGs, not all" (as
 * Knot answers it, RFC 8482's spirit): those over that NSEC. Owner: the
 * question (pointer 12); TTL the negative TTL (RFC 9077). Adds to ctx.an;
 * nothing when the name has no NSEC.
 */
export function dnssecTypeRecords(ctx: WorkerScratch, off: number, signers: ZoneSigners, node: number, qtype: number, dnssecOk: boolean): number {
  const negTtl = ctx.view.u32[ctx.view.zoneBase(ctx.zone) + L.ZONE_NEG_TTL];
  const rdataLen = nsecRrset(ctx, node, ctx.lower, 0, ctx.query.qnameLen, negTtl);
  if (rdataLen < 0) return off;
  if (qtype === DNSSEC_TYPE.NSEC) {
    const end = writeNsec(ctx.out, off, 12, negTtl, ctx.nsec, 0, rdataLen);
    if (end < 0) return off;
    ctx.an++;
    off = end;
    if (!dnssecOk) return off;
  }
  return appendRrsigs(ctx, off, signers.data, 12, -1, ANSWER);
}

/**
 * Completes a referral to the delegation at node `cut` (its NS, unsigned, is
 * in the authority section with owner pointer `ownerPtr`): the NSEC at the
 * cut, whose bitmap (NS, no DS) proves the child unsigned (RFC 4035 §3.1.4),
 * with its RRSIG(s). Adds to ctx.ns.
 */
export function signReferral(ctx: WorkerScratch, off: number, signers: ZoneSigners, cut: number, ownerPtr: number): number {
  const view = ctx.view;
  const nb = view.nodeBase(cut);
  const negTtl = view.u32[view.zoneBase(ctx.zone) + L.ZONE_NEG_TTL];
  return appendNsec(ctx, off, signers, cut, view.u8, view.u32[nb + L.NODE_NAME_OFF], view.u32[nb + L.NODE_NAME_LEN], ownerPtr, negTtl);
}

/**
 * Puts signatures made in advance by the CPU pool into the worker's cache:
 * each batch goes to the zone key it was made with, when this worker still
 * signs with that key (a batch for a key that is gone is skipped). Cold path:
 * runs between packets, allocates (the cache copies each RRset's records).
 * Returns how many signatures went in.
 */
export function insertSignatures(ctx: WorkerScratch, batches: readonly SignatureBatch[]): number {
  let inserted = 0;
  for (const batch of batches) {
    const key = findKey(ctx.signers, batch);
    if (key === null) continue;
    const rrsets = unpackRrsets(batch.rrsets);
    const rrsigs = unpackSignatures(batch.signatures);
    const n = rrsets.length < rrsigs.length ? rrsets.length : rrsigs.length;
    for (let i = 0; i < n; i++) ctx.signatures.insert(key, rrsets[i], rrsigs[i]);
    inserted += n;
  }
  bump(ctx.counters, ctx.counterBase + COUNTER.DNSSEC_PRESIGNED, inserted);
  return inserted;
}

/** The worker's signer with the batch's zone, tag and algorithm, or null. */
function findKey(zones: readonly (ZoneSigners | null)[], batch: SignatureBatch): SignerKey | null {
  for (const z of zones) {
    if (z === null) continue;
    for (const k of z.data) if (sameKey(k, batch)) return k;
    for (const k of z.dnskey) if (sameKey(k, batch)) return k;
  }
  return null;
}

function sameKey(key: SignerKey, batch: SignatureBatch): boolean {
  if (key.keyTag !== batch.keyTag || key.algorithm !== batch.algorithm || key.signerWire.length !== batch.signerWire.length) return false;
  for (let i = 0; i < key.signerWire.length; i++) if (key.signerWire[i] !== batch.signerWire[i]) return false;
  return true;
}
