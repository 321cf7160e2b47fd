// Bench only. Micro: DNSSEC online signing with src/dnssec/sign.ts. Signing
// one RRset (what a cache miss costs a DNS worker, per algorithm), a
// signature-cache hit for a 3-address set asked in rotating order (the steady
// state: what a signed answer costs on top of the unsigned one), a hit in a
// cache of 10 000 sets, and the per-packet writes (RRSIG record, compact-denial
// NSEC rdata). Expected: hits and writes allocate nothing; a signature
// allocates its input and output buffers.

import { generateKeyPairSync } from 'node:crypto';
import { QTYPE } from '../src/dns/constants.ts';
import { nameToWire } from '../src/dns/names.ts';
import { NXNAME_BITMAP, writeCompactNsecRdata } from '../src/dnssec/denial.ts';
import { dnskeyRdata, keyTagOf, publicKeyField } from '../src/dnssec/keys.ts';
import { createSignerKey, DNSSEC_ALGORITHM, Rrset, rrsetOf, SignatureCache, signingWindow, signRrset, writeRrsig } from '../src/dnssec/sign.ts';
import type { SignerKey } from '../src/dnssec/sign.ts';
import type { AddCase } from './lib/micro-suite.ts';

const APEX = nameToWire('bench.test');
const APP = nameToWire('app.bench.test');

function signer(algorithm: 13 | 15): SignerKey {
  const { privateKey } = algorithm === 13 ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const tag = keyTagOf(dnskeyRdata(257, algorithm, publicKeyField(privateKey, algorithm)));
  return createSignerKey(APEX, tag, algorithm, privateKey);
}

export default function register(add: AddCase): void {
  const ecdsa = signer(DNSSEC_ALGORITHM.ECDSAP256SHA256);
  const ed = signer(DNSSEC_ALGORITHM.ED25519);
  const now = Math.floor(Date.now() / 1000);
  const window = signingWindow(now, 7 * 86400);
  // The three addresses as a snapshot would hold them: back to back in one buffer.
  const addrs = Uint8Array.of(192, 0, 2, 1, 192, 0, 2, 2, 192, 0, 2, 3);
  const three = rrsetOf(APP, QTYPE.A, 60, [addrs.subarray(0, 4), addrs.subarray(4, 8), addrs.subarray(8, 12)]);

  add('sign', 'sign one A RRset (3 addresses), ECDSAP256SHA256', () => signRrset(ecdsa, three, window).length);
  add('sign', 'sign one A RRset (3 addresses), ED25519', () => signRrset(ed, three, window).length);

  // Steady state: the worker refills one preallocated Rrset per packet, in the rotation order routing chose.
  const cache = new SignatureCache({ capacity: 1024, validitySec: 7 * 86400 });
  cache.sign(ecdsa, three, now);
  const scratch = new Rrset();
  let turn = 0;
  add('sign', 'cache hit: 3-address set in rotating order', () => {
    turn = turn === 2 ? 0 : turn + 1;
    scratch.reset(APP, 0, APP.length, QTYPE.A, 60);
    for (let i = 0; i < 3; i++) {
      const k = (turn + i) % 3;
      scratch.add(addrs, k * 4, 4);
    }
    return cache.find(ecdsa, scratch, now)?.length ?? -1;
  });

  // 10 000 distinct two-address sets (weighted max_answers: 2 over many servers) in one cache.
  const SETS = 10_000;
  const big = new SignatureCache({ capacity: 16_384, validitySec: 7 * 86400 });
  const pool = new Uint8Array(SETS * 8);
  for (let i = 0; i < SETS * 2; i++) pool.set([10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff], i * 4);
  // Pre-signed entries, as the CPU pool hands them over; one real signature stands in for all (a lookup does not verify).
  const presigned = signRrset(ed, rrsetOf(APP, QTYPE.A, 60, [pool.subarray(0, 4), pool.subarray(4, 8)]), window);
  for (let s = 0; s < SETS; s++) {
    const r = new Rrset(2).reset(APP, 0, APP.length, QTYPE.A, 60);
    r.add(pool, s * 8, 4);
    r.add(pool, s * 8 + 4, 4);
    big.insert(ed, r, presigned);
  }
  let s = 0;
  add('sign', 'cache hit: one of 10 000 cached 2-address sets', () => {
    s = (s * 7919 + 1) % SETS;
    scratch.reset(APP, 0, APP.length, QTYPE.A, 60);
    scratch.add(pool, s * 8 + 4, 4);
    scratch.add(pool, s * 8, 4);
    return big.find(ed, scratch, now)?.length ?? -1;
  });

  const rrsig = signRrset(ecdsa, three, window);
  const out = new Uint8Array(1232);
  add('sign', 'write the RRSIG record (owner pointer)', () => writeRrsig(out, 100, 12, rrsig));

  const qname = nameToWire('nothing-here.bench.test');
  add('sign', 'write compact-denial NSEC rdata (NXNAME)', () => writeCompactNsecRdata(out, 100, qname, 0, qname.length, NXNAME_BITMAP));
}
