// Any thread: DNS workers (hot path, on a cache miss), the piscina CPU pool
// (pre-signing) and the main thread (tests, tools). Online signing of RRsets:
// the canonical form of RFC 4034 §6, the RRSIG record of RFC 4034 §3, ECDSA
// P-256 (RFC 6605) and Ed25519 (RFC 8080) signatures over it, a bounded
// signature cache keyed by the canonical RRset, and the packed batch format of
// the CPU pool's pre-signing task. Imports only node:crypto, src/dns and
// src/lib: no config, no log, no store.

import { sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { QCLASS, QTYPE } from '../dns/constants.ts';
import { OpenGslbError } from '../lib/errors.ts';

/** DNSSEC algorithm numbers we sign with (IANA "DNS Security Algorithm Numbers"). */
export const DNSSEC_ALGORITHM = {
  ECDSAP256SHA256: 13,
  ED25519: 15,
} as const;

export type DnssecAlgorithmNumber = (typeof DNSSEC_ALGORITHM)[keyof typeof DNSSEC_ALGORITHM];

/** The record types of DNSSEC (RFC 4034, RFC 9824), by their names in src/dns/constants.ts. */
export const DNSSEC_TYPE = {
  DS: QTYPE.DS,
  RRSIG: QTYPE.RRSIG,
  NSEC: QTYPE.NSEC,
  DNSKEY: QTYPE.DNSKEY,
  /** RFC 9824 §2: the pseudo-type that marks a compact-denial NSEC as "this name does not exist". */
  NXNAME: QTYPE.NXNAME,
} as const;

/** Signature length in bytes: r||s of P-256 (RFC 6605 §4) and Ed25519 (RFC 8080 §4) are both 64. */
export const SIGNATURE_LEN = 64;
/** RRSIG rdata before the signer's name: type covered, algorithm, labels, original TTL, expiration, inception, key tag. */
const RRSIG_FIXED_LEN = 18;
/** Most records one RRset may hold in the cache and in a batch; a domain answers at most 32 (max_answers). */
export const MAX_RRSET_RECORDS = 64;
/** Most RRsets one packed batch may carry (the count is a uint32, this keeps a task bounded). */
export const MAX_BATCH_RRSETS = 1_000_000;

/**
 * SignerKey is one private key ready to sign for one zone. Build it once with
 * createSignerKey (main thread, or in a worker from the KeyObject it received:
 * KeyObjects survive workerData, postMessage and piscina tasks) and reuse it:
 * the KeyObject is parsed once, not per signature.
 */
export interface SignerKey {
  /** The zone apex (the RRSIG signer's name) as lower-case, uncompressed wire bytes. */
  readonly signerWire: Uint8Array;
  readonly keyTag: number;
  readonly algorithm: DnssecAlgorithmNumber;
  readonly privateKey: KeyObject;
}

/**
 * Creates a SignerKey after checking that the private key fits the algorithm
 * (a P-256 key for 13, an Ed25519 key for 15). Throws
 * OPENGSLB_ERR_DNSSEC_ALGORITHM naming the zone and key tag otherwise.
 */
export function createSignerKey(signerWire: Uint8Array, keyTag: number, algorithm: number, privateKey: KeyObject): SignerKey {
  const where = `DNSSEC key ${keyTag} of zone ${describeWire(signerWire)}`;
  if (privateKey.type !== 'private') {
    throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `${where}: got a ${privateKey.type} key, expected a private key`);
  }
  const kind = privateKey.asymmetricKeyType;
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (algorithm === DNSSEC_ALGORITHM.ECDSAP256SHA256) {
    if (kind !== 'ec' || curve !== 'prime256v1') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `${where}: algorithm 13 (ECDSAP256SHA256) needs a P-256 key, got ${kind}${curve ? ` ${curve}` : ''}`);
    }
  } else if (algorithm === DNSSEC_ALGORITHM.ED25519) {
    if (kind !== 'ed25519') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `${where}: algorithm 15 (ED25519) needs an Ed25519 key, got ${kind}`);
    }
  } else {
    throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `${where}: algorithm ${algorithm} is not supported, expected 13 (ECDSAP256SHA256) or 15 (ED25519)`);
  }
  if (!Number.isInteger(keyTag) || keyTag < 0 || keyTag > 0xffff) {
    throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ALGORITHM', `${where}: key tag must be an integer 0..65535`);
  }
  return { signerWire: Uint8Array.from(signerWire), keyTag, algorithm, privateKey };
}

/** When a signature is valid: unix seconds, written as RFC 4034 §3.1.5 serial numbers (mod 2^32). */
export interface SigningWindow {
  readonly inceptionSec: number;
  readonly expirationSec: number;
}

/** How far back inception lies, so that resolvers with a slow clock accept a fresh signature (the issue asks for one hour). */
export const INCEPTION_OFFSET_SEC = 3600;

/** Returns the window of a signature made at `nowSec`: inception one hour back, expiration `validitySec` ahead. */
export function signingWindow(nowSec: number, validitySec: number): SigningWindow {
  const now = Math.floor(nowSec);
  return { inceptionSec: now - INCEPTION_OFFSET_SEC, expirationSec: now + validitySec };
}

/**
 * Rrset is one RRset to sign, by reference: the owner and each rdata are
 * (buffer, offset, length) slices, so a worker fills one preallocated Rrset
 * per packet from snapshot bytes without copying or allocating. Rdata must be
 * in canonical form (RFC 4034 §6.2: uncompressed names, lower-case where that
 * section says so); the owner is case-folded here. Class is always IN.
 */
export class Rrset {
  ownerBuf: Uint8Array = EMPTY;
  ownerOff = 0;
  ownerLen = 0;
  type = 0;
  ttlSec = 0;
  count = 0;
  readonly rdataBuf: Uint8Array[];
  readonly rdataOff: Int32Array;
  readonly rdataLen: Int32Array;

  constructor(capacity: number = MAX_RRSET_RECORDS) {
    this.rdataBuf = new Array<Uint8Array>(capacity).fill(EMPTY);
    this.rdataOff = new Int32Array(capacity);
    this.rdataLen = new Int32Array(capacity);
  }

  /** Starts a new RRset: owner wire name at (buf, off, len), type, TTL; no records yet. */
  reset(ownerBuf: Uint8Array, ownerOff: number, ownerLen: number, type: number, ttlSec: number): this {
    this.ownerBuf = ownerBuf;
    this.ownerOff = ownerOff;
    this.ownerLen = ownerLen;
    this.type = type;
    this.ttlSec = ttlSec;
    this.count = 0;
    return this;
  }

  /** Adds one record's rdata, the slice (buf, off, len); returns false when the RRset is full. */
  add(buf: Uint8Array, off: number, len: number): boolean {
    if (this.count >= this.rdataOff.length) return false;
    this.rdataBuf[this.count] = buf;
    this.rdataOff[this.count] = off;
    this.rdataLen[this.count] = len;
    this.count++;
    return true;
  }
}

const EMPTY = new Uint8Array(0);

/** Cold-path convenience: an Rrset over whole arrays (owner wire name and one array per rdata). */
export function rrsetOf(ownerWire: Uint8Array, type: number, ttlSec: number, rdatas: readonly Uint8Array[]): Rrset {
  const rrset = new Rrset(Math.max(rdatas.length, 1)).reset(ownerWire, 0, ownerWire.length, type, ttlSec);
  for (const rdata of rdatas) rrset.add(rdata, 0, rdata.length);
  return rrset;
}

/** ASCII upper case to lower case; every other byte unchanged (RFC 4034 §6.2: US-ASCII letters only). */
function lower(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

/** Compares two rdata slices as left-justified unsigned octet strings, a shorter prefix first (RFC 4034 §6.3). */
function compareRdata(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
  const n = aLen < bLen ? aLen : bLen;
  for (let i = 0; i < n; i++) {
    const d = a[aOff + i] - b[bOff + i];
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** Counts the labels of a wire name for the RRSIG Labels field: the root and a leading "*" label do not count (RFC 4034 §3.1.3). */
function countLabels(buf: Uint8Array, off: number, len: number): number {
  let labels = 0;
  let p = off;
  const end = off + len;
  while (p < end && buf[p] !== 0) {
    labels++;
    p += buf[p] + 1;
  }
  if (labels > 0 && buf[off] === 1 && buf[off + 1] === 0x2a) labels--;
  return labels;
}

/**
 * Returns the indices of the rrset's records in canonical order with exact
 * duplicates dropped (RFC 4034 §6.3; RFC 2181 §5: an RRset has no duplicates).
 * Insertion sort: an RRset has at most a few dozen records.
 */
function canonicalOrder(rrset: Rrset): number[] {
  const order: number[] = [];
  for (let i = 0; i < rrset.count; i++) {
    let j = order.length;
    let dup = false;
    while (j > 0) {
      const k = order[j - 1];
      const c = compareRdata(rrset.rdataBuf[i], rrset.rdataOff[i], rrset.rdataLen[i], rrset.rdataBuf[k], rrset.rdataOff[k], rrset.rdataLen[k]);
      if (c === 0) {
        dup = true;
        break;
      }
      if (c > 0) break;
      j--;
    }
    if (!dup) order.splice(j, 0, i);
  }
  return order;
}

/**
 * Builds the bytes RFC 4034 §3.1.8.1 signs: RRSIG rdata without the
 * signature, then every record in canonical form (lower-case uncompressed
 * owner, type, class IN, original TTL, rdata length, rdata) in canonical
 * order. Returns them with the length of the RRSIG rdata prefix.
 */
export function canonicalSigningInput(key: SignerKey, rrset: Rrset, window: SigningWindow): { data: Uint8Array; rrsigPrefixLen: number } {
  if (rrset.count === 0) throw new RangeError('cannot sign an empty RRset');
  const order = canonicalOrder(rrset);
  const signerLen = key.signerWire.length;
  const prefixLen = RRSIG_FIXED_LEN + signerLen;
  let total = prefixLen;
  for (const i of order) total += rrset.ownerLen + 10 + rrset.rdataLen[i];
  const data = new Uint8Array(total);
  const view = new DataView(data.buffer);
  view.setUint16(0, rrset.type);
  data[2] = key.algorithm;
  data[3] = countLabels(rrset.ownerBuf, rrset.ownerOff, rrset.ownerLen);
  view.setUint32(4, rrset.ttlSec >>> 0);
  view.setUint32(8, window.expirationSec >>> 0);
  view.setUint32(12, window.inceptionSec >>> 0);
  view.setUint16(16, key.keyTag);
  data.set(key.signerWire, RRSIG_FIXED_LEN);
  let off = prefixLen;
  for (const i of order) {
    for (let b = 0; b < rrset.ownerLen; b++) data[off + b] = lower(rrset.ownerBuf[rrset.ownerOff + b]);
    off += rrset.ownerLen;
    view.setUint16(off, rrset.type);
    view.setUint16(off + 2, QCLASS.IN);
    view.setUint32(off + 4, rrset.ttlSec >>> 0);
    view.setUint16(off + 8, rrset.rdataLen[i]);
    off += 10;
    data.set(rrset.rdataBuf[i].subarray(rrset.rdataOff[i], rrset.rdataOff[i] + rrset.rdataLen[i]), off);
    off += rrset.rdataLen[i];
  }
  return { data, rrsigPrefixLen: prefixLen };
}

/** Signs `data` with the key's algorithm: ECDSA P-256/SHA-256 as r||s (RFC 6605 §4), or pure Ed25519 (RFC 8080 §4). */
function rawSign(key: SignerKey, data: Uint8Array): Uint8Array {
  if (key.algorithm === DNSSEC_ALGORITHM.ECDSAP256SHA256) {
    return cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  }
  return cryptoSign(null, data, key.privateKey);
}

/**
 * Signs one RRset and returns the complete RRSIG rdata (RFC 4034 §3.1):
 * type covered, algorithm, labels, original TTL (the RRset's TTL), expiration,
 * inception, key tag, signer's name (uncompressed, RFC 4034 §3.1.7) and the
 * 64-byte signature. The owner may be in any case; records in any order.
 */
export function signRrset(key: SignerKey, rrset: Rrset, window: SigningWindow): Uint8Array {
  const { data, rrsigPrefixLen } = canonicalSigningInput(key, rrset, window);
  const signature = rawSign(key, data);
  const rdata = new Uint8Array(rrsigPrefixLen + signature.length);
  rdata.set(data.subarray(0, rrsigPrefixLen), 0);
  rdata.set(signature, rrsigPrefixLen);
  return rdata;
}

/** Reads the original TTL of an RRSIG rdata; it is also the TTL the RRSIG record carries (RFC 4034 §3). */
export function rrsigOriginalTtl(rdata: Uint8Array): number {
  return ((rdata[4] << 24) | (rdata[5] << 16) | (rdata[6] << 8) | rdata[7]) >>> 0;
}

/** Reads the expiration (unix seconds, as written mod 2^32) of an RRSIG rdata. */
export function rrsigExpiration(rdata: Uint8Array): number {
  return ((rdata[8] << 24) | (rdata[9] << 16) | (rdata[10] << 8) | rdata[11]) >>> 0;
}

/** Reads the inception (unix seconds, as written mod 2^32) of an RRSIG rdata. */
export function rrsigInception(rdata: Uint8Array): number {
  return ((rdata[12] << 24) | (rdata[13] << 16) | (rdata[14] << 8) | rdata[15]) >>> 0;
}

/** Bytes an RRSIG record takes with a 2-byte compressed owner. */
export function rrsigRecordLen(rdata: Uint8Array): number {
  return 2 + 10 + rdata.length;
}

/**
 * Writes an RRSIG record whose owner is a compression pointer to
 * `ownerPointer` (the offset of the owner name in the message, 12 for the
 * question name), with the TTL taken from the rdata's original TTL. Returns
 * the offset after the record, or -1 when it does not fit in `out` (the caller
 * truncates). Hot path: no allocation.
 */
export function writeRrsig(out: Uint8Array, off: number, ownerPointer: number, rdata: Uint8Array): number {
  const end = off + 12 + rdata.length;
  if (end > out.length || ownerPointer < 0 || ownerPointer > 0x3fff) return -1;
  out[off] = 0xc0 | (ownerPointer >> 8);
  out[off + 1] = ownerPointer & 0xff;
  writeRrsigTail(out, off + 2, rdata);
  return end;
}

/** Writes an RRSIG record with an uncompressed owner `ownerWire`; returns the offset after it, or -1 when it does not fit. */
export function writeRrsigUncompressed(out: Uint8Array, off: number, ownerWire: Uint8Array, rdata: Uint8Array): number {
  const end = off + ownerWire.length + 10 + rdata.length;
  if (end > out.length) return -1;
  out.set(ownerWire, off);
  writeRrsigTail(out, off + ownerWire.length, rdata);
  return end;
}

function writeRrsigTail(out: Uint8Array, off: number, rdata: Uint8Array): void {
  out[off] = 0;
  out[off + 1] = DNSSEC_TYPE.RRSIG;
  out[off + 2] = 0;
  out[off + 3] = QCLASS.IN;
  // TTL = original TTL, copied from rdata bytes 4..7.
  out[off + 4] = rdata[4];
  out[off + 5] = rdata[5];
  out[off + 6] = rdata[6];
  out[off + 7] = rdata[7];
  out[off + 8] = rdata.length >> 8;
  out[off + 9] = rdata.length & 0xff;
  out.set(rdata, off + 10);
}

/**
 * Returns a complete RRSIG record: owner as a compression pointer (a number,
 * the owner's offset in the message) or uncompressed (wire bytes), then type,
 * class, TTL and rdata. Cold-path convenience over writeRrsig.
 */
export function rrsigRecord(owner: number | Uint8Array, rdata: Uint8Array): Uint8Array {
  if (typeof owner === 'number') {
    const out = new Uint8Array(rrsigRecordLen(rdata));
    if (writeRrsig(out, 0, owner, rdata) < 0) throw new RangeError(`compression pointer ${owner} is outside 0..16383`);
    return out;
  }
  const out = new Uint8Array(owner.length + 10 + rdata.length);
  writeRrsigUncompressed(out, 0, owner, rdata);
  return out;
}

/** Describes wire bytes as a presentation name for messages ("." for the root). */
function describeWire(wire: Uint8Array): string {
  const labels: string[] = [];
  let p = 0;
  while (p < wire.length && wire[p] !== 0) {
    labels.push(String.fromCharCode(...wire.subarray(p + 1, p + 1 + wire[p])));
    p += wire[p] + 1;
  }
  return labels.length === 0 ? '.' : labels.join('.');
}

// ---------------------------------------------------------------------------
// Signature cache
// ---------------------------------------------------------------------------

/** Fraction of a signature's validity period after which the cache re-signs (CoreDNS's rule in plugin/dnssec/dnssec.go). */
export const REFRESH_FRACTION = 0.75;

/** The moment (unix seconds) a signature with this window stops being served from a cache: 75 % of the way from inception to expiration. */
export function refreshAt(inceptionSec: number, expirationSec: number): number {
  return inceptionSec + Math.floor((expirationSec - inceptionSec) * REFRESH_FRACTION);
}

/** 32-bit finaliser of MurmurHash3: spreads the bits of an FNV value before they are summed. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

function fnvSlice(buf: Uint8Array, off: number, len: number, fold: boolean): number {
  let h = 0x811c9dc5;
  const end = off + len;
  for (let i = off; i < end; i++) {
    h ^= fold ? lower(buf[i]) : buf[i];
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/**
 * Hashes the RRset as a set: owner (case-folded), type, TTL, key, and the sum
 * and xor of per-record hashes, so any rotation order of the same records
 * gives the same value. Hot path: no allocation.
 */
function hashRrset(key: SignerKey, rrset: Rrset): number {
  let sum = 0;
  let xor = 0;
  for (let i = 0; i < rrset.count; i++) {
    const h = fmix32(fnvSlice(rrset.rdataBuf[i], rrset.rdataOff[i], rrset.rdataLen[i], false));
    sum = (sum + h) | 0;
    xor ^= h;
  }
  let h = fnvSlice(rrset.ownerBuf, rrset.ownerOff, rrset.ownerLen, true);
  h = fmix32(h ^ Math.imul(rrset.type, 0x9e3779b1));
  h = fmix32(h ^ rrset.ttlSec ^ Math.imul(key.keyTag | (key.algorithm << 16), 0x85ebca6b));
  h = fmix32(h ^ sum ^ Math.imul(rrset.count, 0xc2b2ae35));
  return (h ^ xor) | 0;
}

/**
 * The same signing key: the same object, or one rebuilt from the same key
 * (a new snapshot or workerData hands a worker new SignerKey objects; the
 * cached signatures stay good). Zone, tag and algorithm identify a key: a zone
 * never holds two keys with one tag (keys.ts avoids it).
 */
function sameSigner(a: SignerKey, b: SignerKey): boolean {
  if (a === b) return true;
  if (a.keyTag !== b.keyTag || a.algorithm !== b.algorithm || a.signerWire.length !== b.signerWire.length) return false;
  for (let i = 0; i < a.signerWire.length; i++) if (a.signerWire[i] !== b.signerWire[i]) return false;
  return true;
}

/** Options of a SignatureCache. */
export interface SignatureCacheOptions {
  /** Most entries held; the oldest unused one is evicted past this (CLOCK). */
  readonly capacity: number;
  /** Validity of the signatures this cache makes on a miss, in seconds (overwatch.dnssec.signature_validity). */
  readonly validitySec: number;
}

/** Bytes of the first slab; it doubles as entries need (a 3-address set and its RRSIG take about 140). */
const INITIAL_SLAB_BYTES = 64 * 1024;

/**
 * SignatureCache keeps RRSIG rdata per distinct RRset, keyed by the canonical
 * RRset (lower-case owner, type, TTL, the set of rdatas: rotation order does
 * not matter) and the signing key. An entry is served from its inception
 * until 75 % of its validity period has passed, then re-signed on the next
 * lookup; its expiration is therefore always at least 25 % of the validity
 * ahead. Bounded: at `capacity` entries the CLOCK hand evicts one not used
 * since it last passed, so a flood of one-off names (random NXDOMAIN) cannot
 * push out the RRsets that are asked for all the time.
 *
 * Compact: an entry's bytes (owner, records in canonical order each after
 * its u16 length, then the RRSIG rdata) sit in one shared slab, its numbers
 * in typed arrays by slot, and the only object per entry is the view of its
 * RRSIG that find() returns. One object, array and copied array per record
 * per entry took about 1.4 KB for a 3-address set (22 MB at 16 384 entries,
 * per worker); this takes about 300 bytes. Evicted and replaced entries leave
 * holes; when the slab is full it is copied without them, into one twice the
 * size when more than half of it is in use.
 *
 * One per thread (each DNS worker has its own); lookups allocate nothing.
 * Counters are plain numbers the owner reads (and, in a worker, copies to
 * shared counters).
 */
export class SignatureCache {
  /** Lookups that found a fresh entry. */
  hits = 0;
  /** Lookups that found none, or a stale one. */
  misses = 0;
  /** Signatures made by sign() and findOrSign(). */
  signatures = 0;
  /** Entries dropped to make room. */
  evictions = 0;
  /** Total time spent in sign(), milliseconds. */
  signMs = 0;
  readonly capacity: number;
  readonly validitySec: number;
  readonly #buckets: Int32Array;
  readonly #mask: number;
  // Per slot; a slot is in use when #keys[slot] is not null.
  readonly #next: Int32Array;
  readonly #hash: Int32Array;
  readonly #keys: (SignerKey | null)[];
  readonly #type: Uint16Array;
  readonly #ttl: Uint32Array;
  /** Unix seconds after which the entry is re-signed: 75 % of its validity period. */
  readonly #refreshAt: Float64Array;
  /** Unix seconds of the signature's inception; an entry is not served before it. */
  readonly #inception: Float64Array;
  /** CLOCK reference bit: set on every hit, cleared as the eviction hand passes. */
  readonly #used: Uint8Array;
  readonly #ownerLen: Uint8Array;
  readonly #count: Uint16Array;
  /** Where the entry's bytes start in the slab, and how many. */
  readonly #at: Int32Array;
  readonly #len: Int32Array;
  /** The RRSIG rdata, a view of the entry's last bytes in the slab. */
  readonly #rrsig: (Uint8Array | null)[];
  #slab = new Uint8Array(INITIAL_SLAB_BYTES);
  /** Slab bytes handed out, and those of them no entry holds any more. */
  #top = 0;
  #dead = 0;
  #hand = 0;
  #size = 0;

  constructor(opts: SignatureCacheOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1) throw new RangeError(`capacity ${opts.capacity}: expected an integer of at least 1`);
    if (!(opts.validitySec >= 60)) throw new RangeError(`validitySec ${opts.validitySec}: expected at least 60 seconds`);
    const n = opts.capacity;
    this.capacity = n;
    this.validitySec = opts.validitySec;
    let buckets = 16;
    while (buckets < n * 2) buckets *= 2;
    this.#buckets = new Int32Array(buckets);
    this.#mask = buckets - 1;
    this.#next = new Int32Array(n);
    this.#hash = new Int32Array(n);
    this.#keys = new Array<SignerKey | null>(n).fill(null);
    this.#type = new Uint16Array(n);
    this.#ttl = new Uint32Array(n);
    this.#refreshAt = new Float64Array(n);
    this.#inception = new Float64Array(n);
    this.#used = new Uint8Array(n);
    this.#ownerLen = new Uint8Array(n);
    this.#count = new Uint16Array(n);
    this.#at = new Int32Array(n);
    this.#len = new Int32Array(n);
    this.#rrsig = new Array<Uint8Array | null>(n).fill(null);
  }

  /** Entries held now. */
  get size(): number {
    return this.#size;
  }

  /** Slab bytes reserved now (entries, holes and room to grow), for tests and benches. */
  get slabBytes(): number {
    return this.#slab.length;
  }

  /** Does slot `s` hold exactly this owner (case-folded) and these records (as sets, both ways)? */
  #sameRrset(s: number, rrset: Rrset): boolean {
    const slab = this.#slab;
    const ownerLen = this.#ownerLen[s];
    if (ownerLen !== rrset.ownerLen || this.#count[s] !== rrset.count) return false;
    const at = this.#at[s];
    for (let i = 0; i < ownerLen; i++) if (slab[at + i] !== lower(rrset.ownerBuf[rrset.ownerOff + i])) return false;
    const first = at + ownerLen;
    const count = this.#count[s];
    // Every record of the rrset is held...
    for (let i = 0; i < rrset.count; i++) {
      const len = rrset.rdataLen[i];
      let found = false;
      for (let k = 0, p = first; k < count && !found; k++) {
        const l = (slab[p] << 8) | slab[p + 1];
        found = l === len && compareRdata(slab, p + 2, l, rrset.rdataBuf[i], rrset.rdataOff[i], len) === 0;
        p += 2 + l;
      }
      if (!found) return false;
    }
    // ...and every held record is in the rrset, so duplicates in the input cannot match a different set.
    for (let k = 0, p = first; k < count; k++) {
      const l = (slab[p] << 8) | slab[p + 1];
      let found = false;
      for (let i = 0; i < rrset.count && !found; i++) {
        found = rrset.rdataLen[i] === l && compareRdata(slab, p + 2, l, rrset.rdataBuf[i], rrset.rdataOff[i], l) === 0;
      }
      if (!found) return false;
      p += 2 + l;
    }
    return true;
  }

  /** Returns the slot index of the entry for (key, rrset) regardless of freshness, or -1. */
  #findSlot(key: SignerKey, rrset: Rrset, hash: number): number {
    let s = this.#buckets[hash & this.#mask] - 1;
    while (s >= 0) {
      if (this.#hash[s] === hash && sameSigner(this.#keys[s] as SignerKey, key) && this.#type[s] === rrset.type && this.#ttl[s] === rrset.ttlSec >>> 0 && this.#sameRrset(s, rrset)) return s;
      s = this.#next[s] - 1;
    }
    return -1;
  }

  /**
   * Returns the cached RRSIG rdata for the RRset when it is fresh at `nowSec`
   * (inception ≤ now < refresh point), else null. Counts a hit or a miss.
   * Hot path: no allocation (the array returned is a view of the cache's
   * slab, made when the entry was stored).
   */
  find(key: SignerKey, rrset: Rrset, nowSec: number): Uint8Array | null {
    const s = this.#findSlot(key, rrset, hashRrset(key, rrset));
    if (s >= 0 && nowSec < this.#refreshAt[s] && nowSec >= this.#inception[s]) {
      this.#used[s] = 1;
      this.hits++;
      return this.#rrsig[s];
    }
    this.misses++;
    return null;
  }

  /** Signs the RRset with a window starting now (signingWindow), stores the result and returns the RRSIG rdata. */
  sign(key: SignerKey, rrset: Rrset, nowSec: number): Uint8Array {
    const t0 = performance.now();
    const rdata = signRrset(key, rrset, signingWindow(nowSec, this.validitySec));
    this.signMs += performance.now() - t0;
    this.signatures++;
    return this.insert(key, rrset, rdata);
  }

  /** find(), and on a miss sign(): the worker's one call per RRset. */
  findOrSign(key: SignerKey, rrset: Rrset, nowSec: number): Uint8Array {
    return this.find(key, rrset, nowSec) ?? this.sign(key, rrset, nowSec);
  }

  /**
   * Stores a signature made elsewhere (the CPU pool's pre-signing) for the
   * RRset; its window is read from the rdata. Replaces the entry of the same
   * RRset and key. Copies what it keeps, so the caller may reuse its buffers
   * (the rdata is usually a view into a whole batch's signatures, which a
   * kept view would keep alive); returns the copy it serves.
   */
  insert(key: SignerKey, rrset: Rrset, rrsigRdata: Uint8Array): Uint8Array {
    const hash = hashRrset(key, rrset);
    const inception = rrsigInception(rrsigRdata);
    const refresh = refreshAt(inception, rrsigExpiration(rrsigRdata));
    const existing = this.#findSlot(key, rrset, hash);
    if (existing >= 0) {
      // Anew, not in place: an array find() returned earlier never changes.
      this.#unlink(existing);
    }
    const order = canonicalOrder(rrset);
    let bytes = rrset.ownerLen + rrsigRdata.length;
    for (const i of order) bytes += 2 + rrset.rdataLen[i];
    // A slot first (its eviction may free slab bytes), then the bytes.
    const slot = this.#freeSlot();
    let p = this.#reserve(bytes);
    const slab = this.#slab;
    this.#at[slot] = p;
    this.#len[slot] = bytes;
    for (let b = 0; b < rrset.ownerLen; b++) slab[p++] = lower(rrset.ownerBuf[rrset.ownerOff + b]);
    for (const i of order) {
      const len = rrset.rdataLen[i];
      slab[p] = len >> 8;
      slab[p + 1] = len & 0xff;
      slab.set(rrset.rdataBuf[i].subarray(rrset.rdataOff[i], rrset.rdataOff[i] + len), p + 2);
      p += 2 + len;
    }
    slab.set(rrsigRdata, p);
    const rrsig = slab.subarray(p, p + rrsigRdata.length);
    this.#hash[slot] = hash;
    this.#keys[slot] = key;
    this.#type[slot] = rrset.type;
    this.#ttl[slot] = rrset.ttlSec >>> 0;
    this.#refreshAt[slot] = refresh;
    this.#inception[slot] = inception;
    this.#used[slot] = 0;
    this.#ownerLen[slot] = rrset.ownerLen;
    this.#count[slot] = order.length;
    this.#rrsig[slot] = rrsig;
    const b = hash & this.#mask;
    this.#next[slot] = this.#buckets[b];
    this.#buckets[b] = slot + 1;
    this.#size++;
    return rrsig;
  }

  /** Returns the slab offset of `bytes` free bytes: after the last entry, else after a compaction (into a larger slab when needed). */
  #reserve(bytes: number): number {
    if (this.#top + bytes > this.#slab.length) {
      const live = this.#top - this.#dead;
      let size = this.#slab.length;
      while ((live + bytes) * 2 > size) size *= 2;
      this.#compact(size);
    }
    const at = this.#top;
    this.#top += bytes;
    return at;
  }

  /** Copies every held entry into a new slab of `size` bytes, without the holes; the RRSIG views follow. */
  #compact(size: number): void {
    const old = this.#slab;
    const slab = new Uint8Array(size);
    let top = 0;
    for (let s = 0; s < this.capacity; s++) {
      const rrsig = this.#rrsig[s];
      if (rrsig === null) continue;
      const at = this.#at[s];
      const len = this.#len[s];
      slab.set(old.subarray(at, at + len), top);
      this.#at[s] = top;
      this.#rrsig[s] = slab.subarray(top + len - rrsig.length, top + len);
      top += len;
    }
    this.#slab = slab;
    this.#top = top;
    this.#dead = 0;
  }

  /** Finds a slot for a new entry: an empty one, or the CLOCK victim (first entry whose reference bit is clear). */
  #freeSlot(): number {
    if (this.#size < this.capacity) {
      for (let i = 0; i < this.capacity; i++) {
        const s = (this.#hand + i) % this.capacity;
        if (this.#keys[s] === null) {
          this.#hand = (s + 1) % this.capacity;
          return s;
        }
      }
    }
    for (;;) {
      const s = this.#hand;
      this.#hand = (s + 1) % this.capacity;
      if (this.#used[s] === 1) {
        this.#used[s] = 0;
        continue;
      }
      this.#unlink(s);
      this.evictions++;
      return s;
    }
  }

  /** Takes the entry in `slot` out of its bucket chain and frees the slot; its slab bytes become a hole. */
  #unlink(slot: number): void {
    const b = this.#hash[slot] & this.#mask;
    let prev = -1;
    let s = this.#buckets[b] - 1;
    while (s >= 0 && s !== slot) {
      prev = s;
      s = this.#next[s] - 1;
    }
    if (s < 0) return;
    if (prev < 0) this.#buckets[b] = this.#next[slot];
    else this.#next[prev] = this.#next[slot];
    this.#keys[slot] = null;
    this.#rrsig[slot] = null;
    this.#dead += this.#len[slot];
    this.#size--;
  }

  /** Drops every entry (a key change); counters keep counting. */
  clear(): void {
    this.#buckets.fill(0);
    this.#next.fill(0);
    this.#keys.fill(null);
    this.#rrsig.fill(null);
    this.#slab = new Uint8Array(INITIAL_SLAB_BYTES);
    this.#top = 0;
    this.#dead = 0;
    this.#size = 0;
    this.#hand = 0;
  }
}

// ---------------------------------------------------------------------------
// Batch signing (the CPU pool's task)
// ---------------------------------------------------------------------------

/**
 * Packs RRsets into one buffer for a pre-signing task, so the task crosses to
 * the pool thread as one transferable ArrayBuffer. Layout (big-endian):
 * u32 count, then per RRset: u8 owner length, owner wire, u16 type, u32 TTL,
 * u16 record count, then per record u16 length and the rdata.
 */
export function packRrsets(rrsets: readonly Rrset[]): Uint8Array {
  if (rrsets.length > MAX_BATCH_RRSETS) throw new RangeError(`${rrsets.length} RRsets in one batch, expected at most ${MAX_BATCH_RRSETS}`);
  let total = 4;
  for (const r of rrsets) {
    total += 1 + r.ownerLen + 8;
    for (let i = 0; i < r.count; i++) total += 2 + r.rdataLen[i];
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, rrsets.length);
  let off = 4;
  for (const r of rrsets) {
    out[off++] = r.ownerLen;
    out.set(r.ownerBuf.subarray(r.ownerOff, r.ownerOff + r.ownerLen), off);
    off += r.ownerLen;
    view.setUint16(off, r.type);
    view.setUint32(off + 2, r.ttlSec >>> 0);
    view.setUint16(off + 6, r.count);
    off += 8;
    for (let i = 0; i < r.count; i++) {
      view.setUint16(off, r.rdataLen[i]);
      out.set(r.rdataBuf[i].subarray(r.rdataOff[i], r.rdataOff[i] + r.rdataLen[i]), off + 2);
      off += 2 + r.rdataLen[i];
    }
  }
  return out;
}

/**
 * Reads RRsets packed by packRrsets, as views into `packed` (no copies).
 * Throws a RangeError naming the offset when the buffer is cut short.
 */
export function unpackRrsets(packed: Uint8Array): Rrset[] {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const need = (off: number, n: number): void => {
    if (off + n > packed.length) throw new RangeError(`packed RRsets cut short at byte ${off} of ${packed.length}`);
  };
  need(0, 4);
  const count = view.getUint32(0);
  if (count > MAX_BATCH_RRSETS) throw new RangeError(`packed RRsets claim ${count} RRsets, expected at most ${MAX_BATCH_RRSETS}`);
  const out: Rrset[] = [];
  let off = 4;
  for (let n = 0; n < count; n++) {
    need(off, 1);
    const ownerLen = packed[off++];
    need(off, ownerLen + 8);
    const ownerOff = off;
    off += ownerLen;
    const type = view.getUint16(off);
    const ttl = view.getUint32(off + 2);
    const records = view.getUint16(off + 6);
    off += 8;
    const rrset = new Rrset(Math.max(records, 1)).reset(packed, ownerOff, ownerLen, type, ttl);
    for (let i = 0; i < records; i++) {
      need(off, 2);
      const len = view.getUint16(off);
      need(off + 2, len);
      rrset.add(packed, off + 2, len);
      off += 2 + len;
    }
    out.push(rrset);
  }
  return out;
}

/**
 * SignBatchTask is what one pre-signing task carries to the CPU pool: the key
 * (a KeyObject clones into the pool thread), the window every signature of
 * the batch gets, and the RRsets packed by packRrsets (move its buffer with
 * Piscina.move so it is transferred, not copied).
 */
export interface SignBatchTask {
  readonly privateKey: KeyObject;
  readonly algorithm: number;
  readonly keyTag: number;
  readonly signerWire: Uint8Array;
  readonly inceptionSec: number;
  readonly expirationSec: number;
  readonly rrsets: Uint8Array;
}

/**
 * SignBatchResult: the RRSIG rdatas in the order of the task's RRsets, packed
 * as u32 count then per signature u16 length and the rdata (read them with
 * unpackSignatures), and the time the signing took.
 */
export interface SignBatchResult {
  readonly signatures: Uint8Array;
  readonly count: number;
  readonly signMs: number;
}

/**
 * Builds the task that pre-signs `rrsets` with `key` over `window`, and the
 * transfer list to pass with it: `pool.run(task, { transferList })` moves the
 * packed RRsets to the pool thread instead of copying them.
 */
export function createSignBatchTask(key: SignerKey, window: SigningWindow, rrsets: readonly Rrset[]): { task: SignBatchTask; transferList: ArrayBuffer[] } {
  const packed = packRrsets(rrsets);
  const task: SignBatchTask = {
    privateKey: key.privateKey,
    algorithm: key.algorithm,
    keyTag: key.keyTag,
    signerWire: key.signerWire,
    inceptionSec: window.inceptionSec,
    expirationSec: window.expirationSec,
    rrsets: packed,
  };
  return { task, transferList: [packed.buffer as ArrayBuffer] };
}

/** Signs every RRset of a task; pure and synchronous, so it runs the same inline, in a worker or in a piscina task. */
export function signBatch(task: SignBatchTask): SignBatchResult {
  const t0 = performance.now();
  const key = createSignerKey(task.signerWire, task.keyTag, task.algorithm, task.privateKey);
  const window: SigningWindow = { inceptionSec: task.inceptionSec, expirationSec: task.expirationSec };
  const rrsets = unpackRrsets(task.rrsets);
  const rdatas: Uint8Array[] = [];
  let total = 4;
  for (const rrset of rrsets) {
    const rdata = signRrset(key, rrset, window);
    rdatas.push(rdata);
    total += 2 + rdata.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, rdatas.length);
  let off = 4;
  for (const rdata of rdatas) {
    view.setUint16(off, rdata.length);
    out.set(rdata, off + 2);
    off += 2 + rdata.length;
  }
  return { signatures: out, count: rdatas.length, signMs: performance.now() - t0 };
}

/** Splits a batch result into RRSIG rdatas (views into `packed`). */
export function unpackSignatures(packed: Uint8Array): Uint8Array[] {
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  if (packed.length < 4) throw new RangeError('packed signatures shorter than their 4-byte count');
  const count = view.getUint32(0);
  const out: Uint8Array[] = [];
  let off = 4;
  for (let n = 0; n < count; n++) {
    if (off + 2 > packed.length) throw new RangeError(`packed signatures cut short at byte ${off} of ${packed.length}`);
    const len = view.getUint16(off);
    if (off + 2 + len > packed.length) throw new RangeError(`packed signatures cut short at byte ${off} of ${packed.length}`);
    out.push(packed.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return out;
}
