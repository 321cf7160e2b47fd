// Response rate limiting (dns.rrl) through the real server: two DNS workers,
// real UDP from several loopback source addresses (127.0.0.1 and 127.0.1.1
// are in different /24s), so one prefix floods while another is answered,
// and the limit holds across both workers' sockets. Each test has a server
// of its own and the clients of each flood a /24 of their own, so the tests
// run at once, as do the steps of a test whose floods and counters do not
// meet (most of this file is waiting for paced queries and late replies).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { readCounters } from '../../src/metrics/counters-layout.ts';
import { tempDir } from '../helpers/config-files.ts';
import { ask, buildQuery, newId, rcodeOf, udpExchange } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const run = promisify(execFile);

const config = (dataDir: string, rrl: string, udpIo = 'auto'): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  udp_io: ${udpIo}
  zones: [example.test]
  rrl: { enabled: true, ${rrl} }
regions:
  - name: r
    health_check: { type: none }
    servers: [{ address: "192.0.2.10" }]
domains:
  - { name: app.example.test, regions: [r] }
overwatch: { data_dir: "${dataDir}" }
logging: { level: error }
`;

interface Tally {
  sent: number;
  /** Full answers: TC clear. */
  full: number;
  /** Truncated (TC=1) replies: the slipped ones. */
  tc: number;
  /** Full answers by rcode. */
  rcodes: Map<number, number>;
  /** Seconds from the first query sent to the last (a loaded machine stretches a flood). */
  seconds: number;
}

/**
 * The most full answers a flood may get at `rate`: the rate for every second
 * the flood touched (an account earns `rate` a second and a slow flood may not
 * have run it into debt before the next second's credits), plus a few for
 * races between the workers. A flood sent within one second gets `rate`.
 */
function most(rate: number, t: Tally): number {
  return rate * (Math.ceil(t.seconds) + 1) + 4;
}

/**
 * Sends `count` queries (names from `name(i)`) from `local` over `sockets`
 * UDP sockets (different source ports, so the kernel spreads them over the
 * workers), evenly over `ms`, and counts what comes back (until replies stop
 * for 500 ms, or every query has its reply: none can come after that).
 */
async function flood(port: number, local: string, count: number, ms: number, name: (i: number) => string, opts: { cookie?: Uint8Array; sockets?: number; ednsVersion?: number; noEdns?: boolean } = {}): Promise<Tally> {
  const tally: Tally = { sent: 0, full: 0, tc: 0, rcodes: new Map(), seconds: 0 };
  let lastReply = Date.now();
  const socks = await Promise.all(Array.from({ length: opts.sockets ?? 8 }, async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind({ address: local, port: 0 }, resolve));
    s.on('message', (msg) => {
      lastReply = Date.now();
      if ((msg[2] & 0x02) !== 0) tally.tc++;
      else {
        tally.full++;
        const rc = msg[3] & 0xf;
        tally.rcodes.set(rc, (tally.rcodes.get(rc) ?? 0) + 1);
      }
    });
    return s;
  }));
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const due = start + (i * ms) / count;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const edns = opts.noEdns === true ? undefined : { ...(opts.cookie ? { cookie: opts.cookie } : {}), ...(opts.ednsVersion !== undefined ? { version: opts.ednsVersion } : {}) };
    socks[i % socks.length].send(buildQuery(name(i), 'A', { id: newId(), edns }), port, '127.0.0.1');
    tally.sent++;
  }
  // Replies still on their way (a loaded machine): wait until none has come for 500 ms, at most 5 s.
  const sentAll = Date.now();
  tally.seconds = (sentAll - start) / 1000;
  while (tally.full + tally.tc < tally.sent && Date.now() - Math.max(lastReply, sentAll) < 500 && Date.now() - sentAll < 5000) await new Promise((r) => setTimeout(r, 50));
  for (const s of socks) s.close();
  return tally;
}

const RATE = 20;
const NX_RATE = 5;

describe('RRL through the server', { concurrency: true }, () => {
  // Both UDP paths apply it: the batched native one (auto, where the addon loads) and node:dgram.
  // The steps after the first run at once: their floods come from /24s of
  // their own (the TCP retry's one UDP query is the first step's /24, done by
  // then), and the only counters they read (NXDOMAIN slips, at least) are
  // ones the others do not move.
  for (const udpIo of ['auto', 'dgram']) test(`RRL through the server (udp_io: ${udpIo}): floods are limited per prefix and kind, with the right share slipped; others are answered`, { concurrency: true }, async (t) => {
    const dir = await tempDir(t);
    // window 10: a flooder owes up to 10 s of credits, so however the load on
    // the machine stretches a flood (a stalled sender, a worker off its core),
    // a pause of a second or two does not pay the debt back: the count of
    // answers stays at the rate.
    const { overwatch, port } = await startServer(t, config(dir, `responses_per_second: ${RATE}, nxdomains_per_second: ${NX_RATE}, window: 10, slip: 2, exempt_clients: ["127.0.2.0/24"]`, udpIo));
    const before = readCounters(overwatch.counters);

    await t.test('a flood from one /24 gets the configured rate, half of the rest slips as TC; a second prefix meanwhile is answered in full', async () => {
      const [flooder, neighbour] = await Promise.all([
        flood(port, '127.0.0.1', 300, 1000, () => 'app.example.test'),
        flood(port, '127.0.1.1', 12, 900, () => 'app.example.test', { sockets: 2 }),
      ]);
      assert.equal(neighbour.full, 12, `the other /24 got every answer: ${JSON.stringify(neighbour)}`);
      assert.equal(neighbour.tc, 0);
      // BIND semantics: `rate` credits, then the account is in debt for as long as the flood lasts.
      assert.ok(flooder.full >= RATE && flooder.full <= most(RATE, flooder), `answered ${flooder.full} in ${flooder.seconds} s, expected ${RATE} (the rate; at most ${most(RATE, flooder)} for a flood stretched over that time)`);
      const limited = flooder.sent - flooder.full;
      assert.ok(Math.abs(flooder.tc - limited / 2) <= 2, `slip 2: ${flooder.tc} of ${limited} limited responses slipped, expected half`);
      const after = readCounters(overwatch.counters);
      assert.equal(after.RRL_SLIPPED_RESPONSE - before.RRL_SLIPPED_RESPONSE, flooder.tc, 'opengslb_dns_rrl_slipped_total{kind="response"}');
      assert.equal(after.RRL_DROPPED_RESPONSE - before.RRL_DROPPED_RESPONSE, limited - flooder.tc, 'opengslb_dns_rrl_dropped_total{kind="response"}');
    });

    const tcp = t.test('a limited client that retries over TCP gets its answer', async () => {
      const udp = await udpExchange(port, buildQuery('app.example.test', 'A', { edns: {} }), 500, '127.0.0.1', '127.0.0.1');
      assert.ok(udp === null || (udp[2] & 0x02) !== 0, 'the prefix is still limited over UDP');
      const reply = await ask(port, 'app.example.test', 'A', {}, 'tcp');
      assert.equal(reply.rcode, 'NOERROR');
      assert.deepEqual(reply.answers?.map((a) => (a as { data?: unknown }).data), ['192.0.2.10']);
    });

    const exempt = t.test('exempt_clients are never limited', async () => {
      const tally = await flood(port, '127.0.2.1', 150, 600, () => 'app.example.test');
      assert.equal(tally.full, 150);
    });

    const nxdomains = t.test('a random-subdomain flood is limited per zone at nxdomains_per_second, while real names from the same prefix are answered', async () => {
      const [nx, real] = await Promise.all([
        flood(port, '127.0.3.1', 200, 1000, (i) => `r${i}-${Math.random().toString(36).slice(2)}.example.test`),
        flood(port, '127.0.3.2', 15, 900, () => 'app.example.test', { sockets: 2 }),
      ]);
      assert.equal(real.full, 15, `real names answered in full: ${JSON.stringify(real)}`);
      assert.equal(real.rcodes.get(0), 15);
      assert.ok(nx.full >= NX_RATE && nx.full <= most(NX_RATE, nx), `NXDOMAIN answers ${nx.full} in ${nx.seconds} s, expected ${NX_RATE}`);
      assert.equal(nx.rcodes.get(3), nx.full, 'the answers that passed are NXDOMAIN');
      const after = readCounters(overwatch.counters);
      assert.ok(after.RRL_SLIPPED_NXDOMAIN - before.RRL_SLIPPED_NXDOMAIN >= nx.tc);
    });

    const cookies = t.test('a client that returns a valid server cookie is not limited', async () => {
      const client = Buffer.from('0123456789abcdef', 'hex');
      const first = dnsPacket.decode((await udpExchange(port, buildQuery('app.example.test', 'A', { edns: { cookie: client } }), 2000, '127.0.0.1', '127.0.4.1'))!);
      const opt = first.additionals?.find((a) => a.type === 'OPT') as unknown as { options: { code: number; data: Buffer }[] };
      const cookie = opt.options.find((o) => o.code === 10)!.data;
      assert.equal(cookie.length, 24);
      const proven = await flood(port, '127.0.4.1', 150, 600, () => 'app.example.test', { cookie });
      assert.equal(proven.full, 150, `every answer, with the cookie: ${JSON.stringify(proven)}`);
      // The same flood from the same prefix without the cookie is limited.
      const unproven = await flood(port, '127.0.4.2', 150, 600, () => 'app.example.test', { cookie: client });
      assert.ok(unproven.full <= most(RATE, unproven), `without a server cookie: ${unproven.full} answered in ${unproven.seconds} s`);
    });
    await Promise.all([tcp, exempt, nxdomains, cookies]);
  });

  test('RRL with slip 1: dig, a real client, gets TC=1 and retries over TCP', async (t) => {
    try {
      await run('dig', ['-v']);
    } catch {
      t.skip('dig is not installed (Debian package bind9-dnsutils)');
      return;
    }
    const dir = await tempDir(t);
    const { port } = await startServer(t, config(dir, 'responses_per_second: 1, window: 60, slip: 1'));
    // Run the prefix's account into debt (a minute's worth: dig starting slowly on a loaded machine cannot pay it back).
    await flood(port, '127.0.5.1', 100, 200, () => 'app.example.test');
    const { stdout: out } = await run('dig', ['-b', '127.0.5.1', '-p', String(port), '@127.0.0.1', 'app.example.test', 'A', '+tries=1', '+timeout=2']);
    assert.match(out, /Truncated, retrying in TCP mode/);
    assert.match(out, /status: NOERROR/);
    assert.match(out, /app\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10/);
  });

  test('RRL keys a referral by its delegation and BADVERS as an error: a flood of random names below a delegation, or with EDNS version 1, is limited like any other', async (t) => {
    const dir = await tempDir(t);
    // One worker, a delegation (child.example.test) with glue: a referral is NS + glue, an amplifier like any answer.
    const yaml = config(dir, 'responses_per_second: 5, errors_per_second: 5, window: 10, slip: 0', 'dgram')
      .replace('workers: 2', 'workers: 1')
      .replace('zones: [example.test]', 'zones: [{ name: example.test, nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }], records: ["child NS ns1.child", "ns1.child A 192.0.2.99"] }]');
    const { overwatch, port } = await startServer(t, yaml);
    const before = readCounters(overwatch.counters);
    const random = (i: number, suffix: string): string => `r${i}-${Math.random().toString(36).slice(2)}.${suffix}`;
    // Every name different: keyed by question name, each would get an account of its own and all would pass.
    const referrals = await flood(port, '127.0.6.1', 100, 500, (i) => random(i, 'child.example.test'));
    assert.ok(referrals.full >= 5 && referrals.full <= most(5, referrals), `referrals answered ${referrals.full} of 100 in ${referrals.seconds} s, expected 5 (one account for the delegation)`);
    const badvers = await flood(port, '127.0.7.1', 100, 500, (i) => random(i, 'example.test'), { ednsVersion: 1 });
    assert.ok(badvers.full >= 5 && badvers.full <= most(5, badvers), `BADVERS answered ${badvers.full} of 100 in ${badvers.seconds} s, expected 5 (errors, per client prefix)`);
    const after = readCounters(overwatch.counters);
    assert.equal(after.RRL_DROPPED_RESPONSE - before.RRL_DROPPED_RESPONSE, 100 - referrals.full, 'the limited referrals are counted as responses');
    assert.equal(after.RRL_DROPPED_ERROR - before.RRL_DROPPED_ERROR, 100 - badvers.full, 'the limited BADVERS replies are counted as errors');
    // An answer to the same prefix still has its own account.
    const answer = await udpExchange(port, buildQuery('app.example.test', 'A', { edns: {} }), 2000, '127.0.0.1', '127.0.6.1');
    assert.ok(answer !== null && (answer[2] & 0x02) === 0, 'an answer from the same prefix is not limited');
  });

  test('RRL keys a referral too big for the client (cut to TC=1) by its delegation too: a flood of random names below it is limited like any other', async (t) => {
    const dir = await tempDir(t);
    // Twelve name servers with long names: the referral (about 900 bytes) is over 512, so a query without EDNS gets it truncated.
    const long = 'n'.repeat(50);
    const ns = Array.from({ length: 12 }, (_, i) => `"child NS ns${i}-${long}.example.net."`).join(', ');
    const yaml = config(dir, 'responses_per_second: 5, window: 10, slip: 0', 'dgram')
      .replace('workers: 2', 'workers: 1')
      .replace('zones: [example.test]', `zones: [{ name: example.test, nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }], records: [${ns}] }]`);
    const { overwatch, port } = await startServer(t, yaml);
    const probe = await udpExchange(port, buildQuery('probe.child.example.test', 'A'), 2000, '127.0.0.1', '127.0.9.1');
    assert.ok(probe !== null && (probe[2] & 0x02) !== 0 && (probe[2] & 0x04) === 0, 'the referral is truncated (TC=1, AA clear) without EDNS');
    const before = readCounters(overwatch.counters);
    const random = (i: number): string => `r${i}-${Math.random().toString(36).slice(2)}.child.example.test`;
    // Every reply that passes is the truncated referral (TC=1); the limited ones are dropped (slip 0).
    const referrals = await flood(port, '127.0.8.1', 100, 500, random, { noEdns: true });
    const replies = referrals.full + referrals.tc;
    assert.ok(replies >= 5 && replies <= most(5, referrals), `truncated referrals answered ${replies} of 100 in ${referrals.seconds} s, expected 5 (one account for the delegation)`);
    const after = readCounters(overwatch.counters);
    assert.equal(after.RRL_DROPPED_RESPONSE - before.RRL_DROPPED_RESPONSE, 100 - replies, 'the limited referrals are counted as responses');
  });

  test('RRL keys an NXDOMAIN reached through a CNAME into another zone of ours by that zone, the one whose SOA the reply carries: a flood over many such names is one account', async (t) => {
    const dir = await tempDir(t);
    // Twenty names of example.test, each a CNAME to a name missing from a zone with a longer apex.
    const other = 'a-zone-with-a-longer-apex.test';
    const records = Array.from({ length: 20 }, (_, i) => `"w${i} CNAME gone${i}.${other}."`).join(', ');
    const yaml = config(dir, 'nxdomains_per_second: 5, window: 10, slip: 0', 'dgram')
      .replace('workers: 2', 'workers: 1')
      .replace('zones: [example.test]', `zones: [{ name: example.test, records: [${records}] }, ${other}]`);
    const { overwatch, port } = await startServer(t, yaml);
    const raw = await udpExchange(port, buildQuery('w0.example.test', 'A'), 2000, '127.0.0.1', '127.0.11.1');
    assert.ok(raw !== null);
    assert.equal(rcodeOf(raw), 3, 'NXDOMAIN');
    const probe = dnsPacket.decode(raw);
    assert.equal(probe.authorities?.[0]?.name, other, 'the reply carries the other zone\'s SOA');
    const before = readCounters(overwatch.counters);
    // Keyed by the question's last bytes (as long as the other apex) instead, each name had an account of its own: 100 of 100.
    const nx = await flood(port, '127.0.10.1', 100, 500, (i) => `w${i % 20}.example.test`);
    assert.ok(nx.full >= 5 && nx.full <= most(5, nx), `NXDOMAIN through CNAMEs answered ${nx.full} of 100 in ${nx.seconds} s, expected 5 (one account for the zone)`);
    const after = readCounters(overwatch.counters);
    assert.equal(after.RRL_DROPPED_NXDOMAIN - before.RRL_DROPPED_NXDOMAIN, 100 - nx.full, 'the limited ones are counted as NXDOMAIN');
  });
});
