// Bench only. Micro: handleQuery() end to end in-process, exactly as a DNS
// worker calls it for each datagram (WorkerScratch + a compiled snapshot +
// live slots, counters in shared memory), with no sockets: parse, lookup,
// route, build, size check. The difference between these figures and the
// e2e ones is the socket path. Expected: no allocation.

import { QTYPE } from '../src/dns/constants.ts';
import { prefetchBatch, PrefetchScratch } from '../workers/batch-prefetch.ts';
import { handleQuery } from '../workers/handle-query.ts';
import { createFixture, queryBuffer, responseBuffer } from './lib/fixture.ts';
import type { AddCase } from './lib/micro-suite.ts';
import { encodeQuery, parseQueryFile } from './lib/query-wire.ts';
import { MANY_NAMES, configFor, geoEcsQueries, manyName, microConfig, mixedQueries, seededRandom, singleNameConfig } from './lib/scenarios.ts';
import { BUNDLED_GEOIP_PATH, loadGeoDatabase } from '../src/geo/database.ts';
import { GeoIpReader } from '../src/geo/lookup.ts';
import { CookieScratch, REPLY_COOKIE_LEN, writeReplyCookie } from '../src/dns/cookie.ts';
import { createRrlClock, createRrlTable, RateLimiter } from '../src/dns/rrl.ts';
import { sipKey } from '../src/lib/siphash.ts';

/** Returns a copy of an EDNS query (its OPT the last record, with no options) with a COOKIE option appended. */
function withCookie(query: Buffer, cookie: Uint8Array): Buffer {
  const option = Buffer.alloc(4 + cookie.length);
  option.writeUInt16BE(10, 0);
  option.writeUInt16BE(cookie.length, 2);
  option.set(cookie, 4);
  const out = Buffer.concat([query, option]);
  // The OPT's RDLENGTH is the last two bytes of the original query (it had no options).
  out.writeUInt16BE(option.length, query.length - 2);
  return out;
}

const geoDb = await loadGeoDatabase(BUNDLED_GEOIP_PATH);

export default function register(add: AddCase): void {
  const out = responseBuffer();
  const headline = createFixture(configFor('a-rr-3')).scratch;

  const one = (name: string, ctx: typeof headline, req: Buffer): void => {
    const len = req.length;
    add('handleQuery', name, () => handleQuery(ctx, req, len, out, false));
  };

  one('A, round-robin 3 servers (headline)', headline, queryBuffer('app.bench.test', QTYPE.A));
  one('A, EDNS + ECS /24', headline, queryBuffer('app.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: false, ecs: { address: '192.0.2.0', prefix: 24 } }));
  one('AAAA → NODATA + SOA', headline, queryBuffer('app.bench.test', QTYPE.AAAA));
  one('NXDOMAIN + SOA', headline, queryBuffer('missing.bench.test', QTYPE.A));
  one('REFUSED (outside every zone)', headline, queryBuffer('www.example.com', QTYPE.A));
  one('A, round-robin 1 000 servers', createFixture(configFor('rr-1000')).scratch, queryBuffer('app.bench.test', QTYPE.A));

  // DNSSEC: the same answers to DO queries in a signed zone. After the first
  // query of each set the RRSIG comes from the worker's signature cache: the
  // difference to the EDNS-without-DO case is the cost of a cached signed answer.
  const signed = createFixture(configFor('a-rr-3'), { signed: 'ECDSAP256SHA256' }).scratch;
  const doBit = { udpSize: 1232, dnssecOk: true } as const;
  one('A, EDNS without DO, signed zone (baseline for the next)', signed, queryBuffer('app.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: false }));
  one('A + RRSIG from the cache, DO, round-robin 3 (signed headline)', signed, queryBuffer('app.bench.test', QTYPE.A, doBit));
  one('NODATA + SOA + NSEC, 2 RRSIGs from the cache, DO', signed, queryBuffer('app.bench.test', QTYPE.AAAA, doBit));
  one('A + RRSIG from the cache, DO, weighted max_answers 2 of 10 (45 sets)', createFixture(configFor('weighted-2of10'), { signed: 'ECDSAP256SHA256' }).scratch, queryBuffer('app.bench.test', QTYPE.A, doBit));

  // 32 AAAA answers (1 000+ bytes) to a query without EDNS: cut to 512 with TC=1.
  const v6 = [
    'dns: { listen_address: "127.0.0.1:53", zones: [bench.test] }',
    'regions:',
    '  - name: r1',
    '    health_check: { type: none }',
    '    servers:',
    ...Array.from({ length: 32 }, (_, i) => `      - { address: "2001:db8::${(i + 1).toString(16)}" }`),
    'domains:',
    '  - { name: app.bench.test, regions: [r1], max_answers: 32 }',
    '',
  ].join('\n');
  one('truncated: 32 AAAA > 512 bytes → TC=1', createFixture(v6).scratch, queryBuffer('app.bench.test', QTYPE.AAAA));
  one('A, weighted 3 servers, max_answers 2', createFixture(microConfig(singleNameConfig('weighted', 3, 'max_answers: 2', [100, 200, 300]))).scratch, queryBuffer('app.bench.test', QTYPE.A));

  // Many different queries in turn: 10 000 names, and the mixed query file.
  // 1 024 names keep their snapshot entries in the CPU caches; all 10 000 in a
  // shuffled order (as the e2e names-10k query file) do not, which is what
  // that scenario pays for end to end.
  const many = createFixture(configFor('names-10k')).scratch;
  const rnd = seededRandom(2);
  const fewReqs = Array.from({ length: 1024 }, () => queryBuffer(manyName(Math.floor(rnd() * MANY_NAMES)), QTYPE.A));
  let i = 0;
  add('handleQuery', 'A, 10 000 names (1 024 of them in turn)', () => {
    i = (i + 1) & 1023;
    const req = fewReqs[i];
    return handleQuery(many, req, req.length, out, false);
  });
  const order = Array.from({ length: MANY_NAMES }, (_, k) => k);
  for (let k = order.length - 1; k > 0; k--) {
    const j = Math.floor(rnd() * (k + 1));
    [order[k], order[j]] = [order[j], order[k]];
  }
  const allReqs = order.map((k) => queryBuffer(manyName(k), QTYPE.A));
  let n = 0;
  add('handleQuery', 'A, 10 000 names (all, shuffled, as in e2e)', () => {
    n = n + 1 === allReqs.length ? 0 : n + 1;
    const req = allReqs[n];
    return handleQuery(many, req, req.length, out, false);
  });
  // The same order as the batched UDP path answers it: batches of 32, each
  // warmed by prefetchBatch (which hashes every name) before its queries are
  // answered with the prefetch's hash; the prefetch's share is in each query's time.
  const BATCH = 32;
  const prefetch = new PrefetchScratch(BATCH);
  const rxBatch: Uint8Array[] = allReqs.slice(0, BATCH);
  const lensBatch = new Int32Array(BATCH);
  let nextReq = 0;
  let slot = BATCH;
  add('handleQuery', 'A, 10 000 names (all, shuffled), batches of 32 after prefetchBatch (batched UDP)', () => {
    if (slot === BATCH) {
      for (let s = 0; s < BATCH; s++) {
        const req = allReqs[nextReq];
        nextReq = nextReq + 1 === allReqs.length ? 0 : nextReq + 1;
        rxBatch[s] = req;
        lensBatch[s] = req.length;
      }
      prefetchBatch(many, prefetch, rxBatch, lensBatch, 1, BATCH);
      slot = 0;
    }
    const req = rxBatch[slot];
    const len = lensBatch[slot];
    const hash = prefetch.hash[slot];
    slot++;
    return handleQuery(many, req, len, out, false, hash);
  });

  // Geolocation over the bundled GeoIP database: ECS from 1 000 subnets in
  // turn (as the geo-ecs e2e scenario), and without ECS, where the packet's
  // source (set per query as the UDP transport does) decides.
  const geo = createFixture(configFor('geo-ecs')).scratch;
  geo.setGeo(new GeoIpReader(geoDb.sab));
  const geoReqs = parseQueryFile(geoEcsQueries().join('\n')).map((q) => Buffer.from(encodeQuery(0x1234, q)));
  let g = 0;
  add('handleQuery', 'A, geolocation, ECS from 1 000 subnets in turn', () => {
    g = g + 1 === geoReqs.length ? 0 : g + 1;
    const req = geoReqs[g];
    geo.client.setSource('127.0.0.1', 4);
    return handleQuery(geo, req, req.length, out, false);
  });
  const plain = queryBuffer('app.bench.test', QTYPE.A);
  add('handleQuery', 'A, geolocation, no ECS (the source decides)', () => {
    geo.client.setSource('127.0.0.1', 4);
    return handleQuery(geo, plain, plain.length, out, false);
  });

  // DNS cookies and response rate limiting, on the headline, the source given
  // as bytes (as the batched UDP path does). Cookies: a query without one
  // (what the e2e load sends), a client cookie only (one SipHash: the fresh
  // server cookie), a valid server cookie (two: check, then the fresh one).
  // RRL at a rate never reached: the accounting alone.
  const source = Uint8Array.of(127, 0, 0, 1);
  const cookieKeys = { words: sipKey(Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex')), count: 1 };
  const cookied = createFixture(configFor('a-rr-3')).scratch;
  cookied.cookieKeys = cookieKeys;
  const client = Buffer.from('0123456789abcdef', 'hex');
  const serverCookie = new Uint8Array(REPLY_COOKIE_LEN);
  writeReplyCookie(serverCookie, 0, cookieKeys, new CookieScratch(), client, 0, cookied.nowSec, source, 4);
  const withSource = (name: string, ctx: typeof headline, req: Buffer): void => {
    const len = req.length;
    add('handleQuery', name, () => {
      ctx.client.setSourceBytes(source, 0, 4);
      return handleQuery(ctx, req, len, out, false);
    });
  };
  const edns = queryBuffer('app.bench.test', QTYPE.A, { udpSize: 1232, dnssecOk: false });
  withSource('A, EDNS, cookies on, no cookie in the query (baseline for the next two)', cookied, edns);
  withSource('A, EDNS, client cookie → fresh server cookie', cookied, withCookie(edns, client));
  withSource('A, EDNS, valid server cookie → checked, fresh one', cookied, withCookie(edns, Buffer.from(serverCookie)));
  const limited = createFixture(configFor('a-rr-3')).scratch;
  limited.rrl = new RateLimiter({ rates: [1_000_000, 1_000_000, 1_000_000], windowSec: 15, slip: 2, ipv4PrefixLength: 24, ipv6PrefixLength: 56, exempt: [], table: createRrlTable(65536), clock: createRrlClock() });
  const plainHeadline = queryBuffer('app.bench.test', QTYPE.A);
  withSource('A, round-robin 3 (headline), source as bytes, RRL off (baseline for the next)', headline, plainHeadline);
  withSource('A, round-robin 3 (headline), RRL on (one shared-table account)', limited, plainHeadline);

  const mixed = createFixture(configFor('mixed')).scratch;
  const mixedReqs = parseQueryFile(mixedQueries().join('\n')).map((q) => queryBuffer(q.name, q.qtype));
  let j = 0;
  add('handleQuery', 'mixed query file (1 000 queries in turn)', () => {
    j = j + 1 === mixedReqs.length ? 0 : j + 1;
    const req = mixedReqs[j];
    return handleQuery(mixed, req, req.length, out, false);
  });
}
