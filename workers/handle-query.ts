// Worker, hot path. The per-packet boundary: accept check → parse → EDNS
// version → DNS cookies → (TSIG-signed: NOTAUTH) → look up → dispatch to the
// answer stage (./answer.ts), which builds, signs and seals → over UDP, response rate limiting on the built
// response (src/dns/rrl.ts: send, slip as TC=1, or drop). Returns the response length written to `out`, or 0 to drop. Synchronous and
// allocation-free; never throws for any input bytes (the transport's one
// try/catch is for bugs, answered SERVFAIL and counted). The transport sets
// ctx.client (who asked) before the call. docs/query-lifecycle.md draws this
// path with each stage's outcome.

import { OPCODE, QCLASS, QTYPE, RCODE } from '../src/dns/constants.ts';
import { CLIENT_COOKIE_LEN, cookieLengthOk, RCODE_BADCOOKIE, serverCookieValid, writeReplyCookie, type CookieKeys } from '../src/dns/cookie.ts';
import { PARSE_NO_QUESTION, parseQuery, PARSE_OK, PARSE_TSIG } from '../src/dns/parse.ts';
import { RRL_DROP, RRL_KIND_ERROR, RRL_KIND_NXDOMAIN, RRL_KIND_RESPONSE, RRL_PASS } from '../src/dns/rrl.ts';
import { bump, COUNTER } from '../src/metrics/counters-layout.ts';
import * as L from '../src/snapshot/layout.ts';
import { addresses, dnskeyAnswer, errorReply, negative, nsAnswer, questionlessReply, soaAnswer, truncatedReply, tsigErrorReply } from './answer.ts';
import type { WorkerScratch } from './scratch.ts';
import { chaosAnswer, cnameAnswer, dnssecTypeAnswer, referral, rrsetAnswer, staticAnswer } from './zone-answer.ts';

/** RRL counter slots by kind (RRL_KIND_*). */
const RRL_SLIPPED = [COUNTER.RRL_SLIPPED_RESPONSE, COUNTER.RRL_SLIPPED_NXDOMAIN, COUNTER.RRL_SLIPPED_ERROR] as const;
const RRL_DROPPED = [COUNTER.RRL_DROPPED_RESPONSE, COUNTER.RRL_DROPPED_NXDOMAIN, COUNTER.RRL_DROPPED_ERROR] as const;

/**
 * Handles one query. `req[0, reqLen)` is the packet; the response is written
 * to `out` (≥ 65 535 bytes, owned by the caller). Over UDP the answer is cut
 * to the client's size with TC=1; over TCP it is complete. `qnameHash` is
 * hashWire() of this packet's question name, lower-cased, as an int32, when
 * the caller has it (the batched UDP path's prefetch, ./batch-prefetch.ts),
 * so the name is hashed once per query; -1 otherwise. Returns the response
 * length, or 0 when the packet must be dropped (short, or a response).
 */
export function handleQuery(ctx: WorkerScratch, req: Uint8Array, reqLen: number, out: Uint8Array, tcp: boolean, qnameHash = -1): number {
  ctx.qnameHash = qnameHash;
  const len = respond(ctx, req, reqLen, out, tcp);
  // Rate limiting applies to UDP only (over TCP the source is proven by the
  // handshake), and never to a client that returned a server cookie of ours.
  if (tcp || len === 0 || ctx.rrl === null || ctx.cookieValid) return len;
  return limit(ctx, len);
}

/** Builds the response (without rate limiting); returns its length or 0 to drop. */
function respond(ctx: WorkerScratch, req: Uint8Array, reqLen: number, out: Uint8Array, tcp: boolean): number {
  ctx.replyCookie = null;
  ctx.cookieValid = false;
  ctx.nxdomain = false;
  ctx.zone = -1;
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  // Header-only accept check first, before reading anything else.
  if (reqLen < 12) {
    bump(counters, cb + COUNTER.DROPPED_SHORT);
    return 0;
  }
  if ((req[2] & 0x80) !== 0) {
    bump(counters, cb + COUNTER.DROPPED_RESPONSE);
    return 0;
  }
  // QUERIES and QTYPE_* are derived from these and the reply matrix (readCounters()).
  bump(counters, cb + (tcp ? COUNTER.TCP_QUERIES : COUNTER.UDP_QUERIES));
  ctx.req = req;
  ctx.out = out;
  ctx.tcp = tcp;
  ctx.client.request = req;

  const q = ctx.query;
  const status = parseQuery(req, reqLen, q, ctx.lower);
  if (q.opcode !== OPCODE.QUERY) return q.opcode === OPCODE.NOTIFY ? notify(ctx, status, tcp) : errorReply(ctx, RCODE.NOTIMP);
  if (status !== PARSE_OK) {
    if (status === PARSE_TSIG) return signedQuery(ctx, tcp);
    // No question but a COOKIE, cookies on: a client asking for (or checking) a server cookie.
    if (status === PARSE_NO_QUESTION && q.cookieOff !== 0 && ctx.cookieKeys !== null) return cookieOnly(ctx);
    bump(counters, cb + COUNTER.MALFORMED);
    return errorReply(ctx, RCODE.FORMERR);
  }
  countQuestion(ctx);
  // RFC 6891 §6.1.3: a version we do not implement is BADVERS before any of
  // its options is looked at; COOKIE is an option of version 0 (Knot, too,
  // answers BADVERS, with no cookie, before BADCOOKIE or a bad COOKIE's FORMERR).
  if (q.hasEdns && q.ednsVersion !== 0) return errorReply(ctx, RCODE.BADVERS);
  // One compare for a query without the option (every UDP query's cost).
  if (q.keepaliveLen >= 0) {
    const malformed = keepalive(ctx, tcp);
    if (malformed > 0) return malformed;
  }
  if (ctx.cookieKeys !== null) {
    const refused = cookies(ctx, tcp);
    if (refused >= 0) return refused;
  }
  if (q.qclass !== QCLASS.IN) return q.qclass === QCLASS.CH ? chaosAnswer(ctx) : errorReply(ctx, RCODE.REFUSED);
  // The meta-types (128 and up), RRSIG (46) and NSEC (47; qtype | 1 is 47 for both): two compares for the common types.
  if (q.qtype >= QTYPE.NXNAME || (q.qtype | 1) === QTYPE.NSEC) return unusualType(ctx);
  return lookup(ctx);
}

/**
 * A query with an edns-tcp-keepalive option (RFC 7828). Over UDP the option
 * is ignored, whatever it holds, and never answered. Over TCP an option with
 * data (a TIMEOUT, which only a server sends) is FORMERR; an empty one has
 * the reply carry the option with the connection's idle timeout as the
 * transport set it (ctx.tcpKeepalive, units of 100 ms). Returns the FORMERR's
 * length, or 0 to go on.
 */
function keepalive(ctx: WorkerScratch, tcp: boolean): number {
  const q = ctx.query;
  if (!tcp) return 0;
  if (q.keepaliveLen !== 0) {
    bump(ctx.counters, ctx.counterBase + COUNTER.MALFORMED);
    return errorReply(ctx, RCODE.FORMERR);
  }
  q.keepaliveTimeout = ctx.tcpKeepalive;
  return 0;
}

/**
 * A well-formed query signed with TSIG (RFC 8945): checked like any other for
 * its EDNS version and cookies (Knot's order too), then answered NOTAUTH with
 * a BADKEY TSIG, as we hold no keys (RFC 8945 §5.2). Kept off the common path:
 * parseQuery reports the TSIG as a status of its own.
 */
function signedQuery(ctx: WorkerScratch, tcp: boolean): number {
  const refused = ednsChecks(ctx, tcp);
  return refused >= 0 ? refused : tsigErrorReply(ctx);
}

/**
 * Counts the question and checks a well-formed query's EDNS version,
 * edns-tcp-keepalive option and cookies, as respond() does: returns the
 * length of the reply that refuses it (BADVERS, FORMERR, BADCOOKIE…), or -1
 * to go on. For the messages kept off the common path (TSIG-signed, NOTIFY).
 */
function ednsChecks(ctx: WorkerScratch, tcp: boolean): number {
  countQuestion(ctx);
  const q = ctx.query;
  if (q.hasEdns && q.ednsVersion !== 0) return errorReply(ctx, RCODE.BADVERS);
  if (q.keepaliveLen >= 0) {
    const malformed = keepalive(ctx, tcp);
    if (malformed > 0) return malformed;
  }
  if (ctx.cookieKeys !== null) {
    const refused = cookies(ctx, tcp);
    if (refused >= 0) return refused;
  }
  return -1;
}

/**
 * A NOTIFY (opcode 4, RFC 1996): a primary telling its secondaries that a
 * zone changed. We are no zone's secondary (our data comes from the config
 * and health, never from a transfer), so a well-formed one is answered
 * NOTAUTH, for our zones and others alike, without AA: "not authoritative"
 * in RFC 2136 §2.2's sense, as Knot and BIND answer a NOTIFY for a zone they
 * are not a secondary of; the primary's log then names the misdirected
 * notify. A signed one gets the TSIG path's NOTAUTH with BADKEY; a malformed
 * one FORMERR, as any query (Knot too). EDNS version and cookies are checked
 * first, as for a query.
 */
function notify(ctx: WorkerScratch, status: number, tcp: boolean): number {
  if (status === PARSE_TSIG) return signedQuery(ctx, tcp);
  if (status !== PARSE_OK) {
    bump(ctx.counters, ctx.counterBase + COUNTER.MALFORMED);
    return errorReply(ctx, RCODE.FORMERR);
  }
  const refused = ednsChecks(ctx, tcp);
  return refused >= 0 ? refused : errorReply(ctx, RCODE.NOTAUTH);
}

/**
 * Answers the query types the common path never sees, apart from lookup() so
 * that it stays as small as the common types need: zone transfers, NXNAME,
 * and NSEC/RRSIG in a signed zone; any other goes to lookup().
 */
function unusualType(ctx: WorkerScratch): number {
  const qtype = ctx.query.qtype;
  // No zone transfers from a GSLB: the data changes with health every second.
  if (qtype === QTYPE.AXFR || qtype === QTYPE.IXFR) return errorReply(ctx, RCODE.REFUSED);
  // RFC 9824 §3.5: NXNAME only ever appears in a compact-denial NSEC's bitmap.
  if (qtype === QTYPE.NXNAME) return errorReply(ctx, RCODE.FORMERR);
  if (qtype === QTYPE.NSEC || qtype === QTYPE.RRSIG) {
    const len = dnssecTypeLookup(ctx);
    if (len >= 0) return len;
  }
  return lookup(ctx);
}

/**
 * NSEC or RRSIG at the question name: in a signed zone, held or not, at a
 * CNAME or a delegation too (the NSEC there is this zone's: RFC 2181 §10.1,
 * RFC 4035 §2.3), the name's NSEC or its RRSIG (zone-answer.ts
 * dnssecTypeAnswer). Returns -1 where lookup() answers as for any type: a
 * zone that is not signed, a name outside every zone or below a delegation.
 */
function dnssecTypeLookup(ctx: WorkerScratch): number {
  const view = ctx.view;
  const u32 = view.u32;
  const lower = ctx.lower;
  const nameLen = ctx.query.qnameLen;
  ctx.answered = -1;
  ctx.ecsScope = 0;
  const node = ctx.qnameHash !== -1 ? view.findNodeHashed(lower, 0, nameLen, ctx.qnameHash) : view.findNode(lower, 0, nameLen);
  if (node >= 0) {
    ctx.zone = u32[view.nodeBase(node) + L.NODE_ZONE];
    return dnssecTypeAnswer(ctx, node);
  }
  // As in lookup(): the closest enclosing name we hold decides.
  let off = 0;
  while (lower[off] !== 0) {
    off += lower[off] + 1;
    const enc = view.findNode(lower, off, nameLen - off);
    if (enc < 0) continue;
    const eb = view.nodeBase(enc);
    if ((u32[eb + L.NODE_FLAGS] & L.NODE_FLAG_CUT) !== 0) return -1;
    ctx.zone = u32[eb + L.NODE_ZONE];
    return dnssecTypeAnswer(ctx, -1);
  }
  return -1;
}

/** Finds the question name in the snapshot and dispatches to the answer it gets. */
function lookup(ctx: WorkerScratch): number {
  const view = ctx.view;
  const u32 = view.u32;
  const q = ctx.query;
  const lower = ctx.lower;
  const nameLen = q.qnameLen;
  ctx.answered = -1;
  ctx.ecsScope = 0;
  // The batched UDP path hashed the name in its prefetch: not again here.
  let node = ctx.qnameHash !== -1 ? view.findNodeHashed(lower, 0, nameLen, ctx.qnameHash) : view.findNode(lower, 0, nameLen);
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
    if (node < 0) return errorReply(ctx, RCODE.REFUSED);
    const eb = view.nodeBase(node);
    ctx.zone = u32[eb + L.NODE_ZONE];
    // Below a delegation of ours: the child's name servers know (a referral).
    if ((u32[eb + L.NODE_FLAGS] & L.NODE_FLAG_CUT) !== 0) return referral(ctx, node, off);
    ctx.nxdomain = true;
    return negative(ctx, ctx.zone, RCODE.NXDOMAIN, -1);
  }
  const nb = view.nodeBase(node);
  const zone = u32[nb + L.NODE_ZONE];
  ctx.zone = zone;
  const flags = u32[nb + L.NODE_FLAGS];
  const isApex = (flags & L.NODE_FLAG_APEX) !== 0;
  if ((flags & (L.NODE_FLAG_CUT | L.NODE_FLAG_CNAME | L.NODE_FLAG_CNAME_POOL)) !== 0) {
    // The DS of a delegation is the parent's data (RFC 4035 §3.1.4.1): we hold none, so NODATA.
    if ((flags & L.NODE_FLAG_CUT) !== 0) return q.qtype === QTYPE.DS ? negative(ctx, zone, RCODE.NOERROR, node) : referral(ctx, node, 0);
    return cnameAnswer(ctx, node);
  }
  switch (q.qtype) {
    case QTYPE.A: {
      const rec = u32[nb + L.NODE_REC_A];
      if (rec === 0) return staticAnswer(ctx, node);
      warmAddresses(ctx, nb, rec - 1);
      return addresses(ctx, rec - 1);
    }
    case QTYPE.AAAA: {
      const rec = u32[nb + L.NODE_REC_AAAA];
      if (rec === 0) return staticAnswer(ctx, node);
      warmAddresses(ctx, nb, rec - 1);
      return addresses(ctx, rec - 1);
    }
    case QTYPE.ANY: {
      // RFC 8482 §4.2: answer ANY with one RRset we hold, not all of them.
      const recA = u32[nb + L.NODE_REC_A];
      if (recA !== 0) return addresses(ctx, recA - 1);
      const recAAAA = u32[nb + L.NODE_REC_AAAA];
      if (recAAAA !== 0) return addresses(ctx, recAAAA - 1);
      if (isApex) return soaAnswer(ctx, zone);
      if (u32[nb + L.NODE_RRSET_COUNT] !== 0) return rrsetAnswer(ctx, node, u32[nb + L.NODE_RRSET_START]);
      return negative(ctx, zone, RCODE.NOERROR, node);
    }
    case QTYPE.SOA:
      return isApex ? soaAnswer(ctx, zone) : negative(ctx, zone, RCODE.NOERROR, node);
    case QTYPE.NS:
      return isApex ? nsAnswer(ctx, zone) : negative(ctx, zone, RCODE.NOERROR, node);
    case QTYPE.DNSKEY:
      // A signed zone publishes its keys at the apex; elsewhere, and for an unsigned zone, there are none.
      return isApex && u32[view.zoneBase(zone) + L.ZONE_DNSKEY_COUNT] !== 0 ? dnskeyAnswer(ctx, zone) : negative(ctx, zone, RCODE.NOERROR, node);
    default:
      return staticAnswer(ctx, node);
  }
}

/**
 * Starts, together, the loads an address answer for record `rec` of the node
 * row at word `nb` waits for: the record row, the record's routing state and
 * the answer fragments (they follow the node's name in the blob). For a name
 * not asked recently each is a cache miss; issued here, one after the other
 * with nothing between them, the CPU has all three in flight at once, where
 * the answer would meet them one at a time (the fragments only once the
 * record row has said where they are). JavaScript has no prefetch: the values
 * are loaded and dropped in ctx.warm so the loads are not optimised away.
 */
function warmAddresses(ctx: WorkerScratch, nb: number, rec: number): void {
  const view = ctx.view;
  const u32 = view.u32;
  ctx.warm = u32[view.recordBase(rec)] ^ ctx.route.listEpoch(rec) ^ view.u8[u32[nb + L.NODE_NAME_OFF] + u32[nb + L.NODE_NAME_LEN]];
}

function countQuestion(ctx: WorkerScratch): void {
  const q = ctx.query;
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  if (q.hasEdns) {
    bump(counters, cb + COUNTER.EDNS_QUERIES);
    if (q.ecsFamily !== 0) bump(counters, cb + COUNTER.ECS_QUERIES);
    if (q.dnssecOk) bump(counters, cb + COUNTER.DO_QUERIES);
  }
}

/**
 * DNS cookies (RFC 7873, RFC 9018), with cookies on: a malformed COOKIE
 * option is FORMERR; a well-formed one gets our COOKIE in every reply to this
 * query (the client cookie and a fresh server cookie); a server cookie of
 * ours, still in its lifetime and made for this source address, proves the
 * address (ctx.cookieValid). Under dns.cookies.require a UDP query without
 * one is refused: BADCOOKIE (with our cookie, so the client retries with it),
 * or, when the query has no OPT to carry an extended rcode, TC=1 so it
 * retries over TCP. Returns the reply length when the query is answered
 * here, else -1.
 */
function cookies(ctx: WorkerScratch, tcp: boolean): number {
  if (ctx.cookieKeys === null) return -1;
  if (ctx.query.cookieOff !== 0) {
    const malformed = readCookie(ctx);
    if (malformed >= 0) return malformed;
  }
  if (ctx.cookieRequire && !tcp && !ctx.cookieValid) {
    if (ctx.query.hasEdns) return errorReply(ctx, RCODE_BADCOOKIE);
    bump(ctx.counters, ctx.counterBase + COUNTER.TRUNCATED);
    return truncatedReply(ctx, true);
  }
  return -1;
}

/**
 * Reads the query's COOKIE option (present, cookies on): a bad length is
 * FORMERR (returns the reply length); else it is counted, ctx.cookieValid
 * says whether it carries a valid server cookie of ours, and ctx.replyCookie
 * holds ours for the reply (the client cookie and a fresh server cookie).
 * Returns -1 then.
 */
function readCookie(ctx: WorkerScratch): number {
  const q = ctx.query;
  const keys = ctx.cookieKeys as CookieKeys;
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  if (!cookieLengthOk(q.cookieLen)) {
    bump(counters, cb + COUNTER.MALFORMED);
    bump(counters, cb + COUNTER.COOKIE_MALFORMED);
    return errorReply(ctx, RCODE.FORMERR);
  }
  const client = ctx.client;
  const ipLen = client.sourceBytes();
  if (ipLen !== 0) {
    if (q.cookieLen === CLIENT_COOKIE_LEN) {
      bump(counters, cb + COUNTER.COOKIE_CLIENT_ONLY);
    } else if (serverCookieValid(ctx.req, q.cookieOff, q.cookieLen, keys, ctx.cookieScratch, ctx.nowSec, client.bytes, ipLen)) {
      ctx.cookieValid = true;
      bump(counters, cb + COUNTER.COOKIE_VALID);
    } else {
      bump(counters, cb + COUNTER.COOKIE_INVALID);
    }
    writeReplyCookie(ctx.cookieOut, 0, keys, ctx.cookieScratch, ctx.req, q.cookieOff, ctx.nowSec, client.bytes, ipLen);
    ctx.replyCookie = ctx.cookieOut;
  }
  return -1;
}

/**
 * A query with no question and a COOKIE option, cookies on (RFC 7873 §5.4):
 * a client asking for a server cookie, or whether the one it holds is still
 * good. The reply has no question and no records, and our cookie in its OPT:
 * BADCOOKIE when the query's server cookie is not valid (another server's,
 * expired, or made for another address), else NOERROR, under
 * dns.cookies.require too (it answers nothing but the cookie).
 */
function cookieOnly(ctx: WorkerScratch): number {
  countQuestion(ctx);
  const malformed = readCookie(ctx);
  if (malformed >= 0) return malformed;
  const q = ctx.query;
  return questionlessReply(ctx, q.cookieLen !== CLIENT_COOKIE_LEN && !ctx.cookieValid ? RCODE_BADCOOKIE : RCODE.NOERROR);
}

/**
 * Response rate limiting (src/dns/rrl.ts) of a UDP response of `len` bytes
 * already built in ctx.out: charges it to the account of (client prefix,
 * kind, name) in the table all workers share. Answers are keyed by question
 * name and type, referrals by their delegation and NXDOMAIN by zone (so a
 * random-subdomain flood is one account), errors (BADVERS too) by prefix
 * alone. Returns len, the length of a truncated reply (slip), or 0 (drop).
 */
function limit(ctx: WorkerScratch, len: number): number {
  const rrl = ctx.rrl;
  if (rrl === null) return len;
  const client = ctx.client;
  const ipLen = client.sourceBytes();
  if (ipLen === 0 || rrl.exempt(client.bytes, ipLen)) return len;
  const q = ctx.query;
  const rcode = ctx.out[3] & 0xf;
  let kind = RRL_KIND_ERROR;
  let name: Uint8Array = ctx.lower;
  let nameOff = 0;
  let nameLen = 0;
  let qtype = 0;
  if ((ctx.nxdomain || rcode === RCODE.NXDOMAIN) && ctx.zone >= 0) {
    kind = RRL_KIND_NXDOMAIN;
    // Keyed by the apex of the zone whose SOA the reply carries, read from
    // the snapshot: the question's last bytes are that apex only when the
    // question is in that zone. A CNAME into another zone of ours that ends
    // in NXDOMAIN there was keyed by a slice of the question (from before
    // its start when that apex is longer), an account per name.
    const view = ctx.view;
    const u32 = view.u32;
    const apex = view.nodeBase(u32[view.zoneBase(ctx.zone) + L.ZONE_NODE]);
    name = view.u8;
    nameOff = u32[apex + L.NODE_NAME_OFF];
    nameLen = u32[apex + L.NODE_NAME_LEN];
  } else if (rcode === RCODE.NOERROR && q.questionEnd > 0 && q.ednsVersion === 0) {
    // An EDNS version above 0 got BADVERS, whose header rcode is 0 (16 is
    // split with the OPT): an error, keyed by prefix. Keyed by question name,
    // a flood of random names with version 1 was never limited.
    kind = RRL_KIND_RESPONSE;
    nameLen = q.qnameLen;
    qtype = q.qtype;
    // A referral is keyed by its delegation, as BIND and Knot do, for every
    // type: keyed by question name, a flood of random names below a
    // delegation was never limited. It is the one NOERROR reply with AA clear
    // from a zone of ours (errors, BADVERS and the cookie TC=1 come before the
    // lookup, zone -1); read from the scratch, not from the reply's NS, which
    // a referral too big for the client no longer holds (TC=1, no records).
    if ((ctx.out[2] & 0x04) === 0 && ctx.zone >= 0) {
      nameOff = ctx.cutOff;
      nameLen = q.qnameLen - nameOff;
      qtype = 0;
    }
  }
  const verdict = rrl.charge(kind, client.bytes, ipLen, name, nameOff, nameLen, qtype, ctx.nowSec);
  if (verdict === RRL_PASS) return len;
  if (verdict === RRL_DROP) {
    bump(ctx.counters, ctx.counterBase + RRL_DROPPED[kind]);
    return 0;
  }
  bump(ctx.counters, ctx.counterBase + RRL_SLIPPED[kind]);
  return truncatedReply(ctx, false);
}
