// Bench only. Micro: parseQuery() on the query shapes resolvers send: plain,
// with EDNS (DO bit, as validating resolvers send), and with EDNS Client
// Subnet (as public resolvers send). Expected: no allocation.

import { QTYPE } from '../src/dns/constants.ts';
import { ParsedQuery, parseQuery } from '../src/dns/parse.ts';
import { queryBuffer } from './lib/fixture.ts';
import type { AddCase } from './lib/micro-suite.ts';

export default function register(add: AddCase): void {
  const q = new ParsedQuery();
  const lower = new Uint8Array(256);
  const cases: Array<[string, Buffer]> = [
    ['A, no EDNS', queryBuffer('app.bench.test', QTYPE.A)],
    ['A, EDNS (DO, 1232)', queryBuffer('app.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: true })],
    ['A, EDNS + ECS /24', queryBuffer('app.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: false, ecs: { address: '192.0.2.0', prefix: 24 } })],
    ['A, 8-label name (54 bytes), EDNS', queryBuffer('a1.b2.c3.d4.e5.f6.service.deployment.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: false })],
  ];
  for (const [name, req] of cases) {
    const len = req.length;
    add('parse', name, () => parseQuery(req, len, q, lower) + q.qnameLen);
  }
}
