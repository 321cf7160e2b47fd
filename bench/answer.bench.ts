// Bench only. Micro: building a response from the snapshot's precomputed wire
// fragments with the byte writers of src/dns/write.ts, in the same steps the
// answer stage (workers/answer.ts: addresses()/negative() then seal()) takes: header, the question copied from the
// request, the answer RR or the zone's SOA, and the OPT record. The query is
// parsed once up front, so this is the build stage alone; truncation is only
// reachable through handleQuery and is measured in handle-query.bench.ts.
// Expected: no allocation.

import { FLAG, QTYPE, RCODE } from '../src/dns/constants.ts';
import { ParsedQuery, parseQuery } from '../src/dns/parse.ts';
import * as L from '../src/snapshot/layout.ts';
import { copyBytes, writeHeader, writeOpt, writeU16, writeU32 } from '../src/dns/write.ts';
import { createFixture, queryBuffer, recordOf, responseBuffer } from './lib/fixture.ts';
import type { AddCase } from './lib/micro-suite.ts';
import { configFor } from './lib/scenarios.ts';

export default function register(add: AddCase): void {
  const fx = createFixture(configFor('a-rr-3'));
  const view = fx.view;
  const u32 = view.u32;
  const out = responseBuffer();
  const rec = recordOf(view, 'app.bench.test');
  const fragLen = u32[view.recordBase(rec) + L.REC_FRAG_LEN];
  const fragOff = u32[view.memberBase(u32[view.recordBase(rec) + L.REC_MEMBER_START]) + L.MEM_FRAG_OFF];

  const parsed = (req: Buffer): ParsedQuery => {
    const q = new ParsedQuery();
    parseQuery(req, req.length, q, new Uint8Array(256));
    return q;
  };

  /** addresses() + seal() for one picked member. */
  const buildA = (req: Buffer, q: ParsedQuery): number => {
    let off = copyBytes(out, 12, req, 12, q.questionEnd - 12);
    off = copyBytes(out, off, view.u8, fragOff, fragLen);
    let ar = 0;
    if (q.hasEdns) {
      off = writeOpt(out, off, q, req, RCODE.NOERROR, true, 0);
      ar = 1;
    }
    writeHeader(out, q.id, FLAG.QR | FLAG.AA, RCODE.NOERROR, 1, 1, 0, ar);
    return off;
  };

  const plain = queryBuffer('app.bench.test', QTYPE.A);
  const plainQ = parsed(plain);
  add('build', 'A answer: header + question + 1 RR', () => buildA(plain, plainQ));

  const ecs = queryBuffer('app.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: true, ecs: { address: '192.0.2.0', prefix: 24 } });
  const ecsQ = parsed(ecs);
  add('build', 'A answer + OPT echoing ECS', () => buildA(ecs, ecsQ));

  // negative(): the SOA's owner is a pointer to the apex suffix of the question.
  const zb = view.zoneBase(0);
  const nx = queryBuffer('nope.app.bench.test', QTYPE.A);
  const nxQ = parsed(nx);
  add('build', 'NXDOMAIN: question + SOA (negative TTL)', () => {
    let off = copyBytes(out, 12, nx, 12, nxQ.questionEnd - 12);
    off = writeU16(out, off, 0xc000 | (12 + nxQ.qnameLen - u32[zb + L.ZONE_APEX_LEN]));
    const body = off;
    off = copyBytes(out, off, view.u8, u32[zb + L.ZONE_SOA_OFF], u32[zb + L.ZONE_SOA_LEN]);
    writeU32(out, body + 4, u32[zb + L.ZONE_NEG_TTL]);
    writeHeader(out, nxQ.id, FLAG.QR | FLAG.AA, RCODE.NXDOMAIN, 1, 0, 1, 0);
    return off;
  });
}
