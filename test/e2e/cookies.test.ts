// DNS cookies (RFC 7873, RFC 9018) through the real server, with real
// clients: dig +cookie, dnspython, and our own packets for the malformed
// options. Then dns.cookies.require (BADCOOKIE), a secret shared by two
// servers, and cookies turned off.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { readCounters } from '../../src/metrics/counters-layout.ts';
import { PYTHON } from '../dnssec/helpers.ts';
import { tempDir } from '../helpers/config-files.ts';
import { buildQuery, tcpExchange, udpExchange } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';

const run = promisify(execFile);

const config = (dataDir: string, cookies = ''): string => `
dns:
  listen_address: "127.0.0.1:0"
  workers: 2
  zones: [example.test]
${cookies === '' ? '' : `  cookies: { ${cookies} }\n`}regions:
  - name: r
    health_check: { type: none }
    servers: [{ address: "192.0.2.10" }]
domains:
  - { name: app.example.test, regions: [r] }
overwatch: { data_dir: "${dataDir}" }
logging: { level: error }
`;

const CLIENT = Buffer.from('24a1b2c3d4e5f607', 'hex');

interface Reply {
  raw: Buffer;
  /** The full rcode: header bits and the OPT's extended bits (BADCOOKIE is 23). */
  rcode: number;
  tc: boolean;
  answers: string[];
  /** Our COOKIE option's data, or null. */
  cookie: Buffer | null;
  hasOpt: boolean;
}

function decode(raw: Buffer): Reply {
  const m = dnsPacket.decode(raw);
  const opt = m.additionals?.find((a) => a.type === 'OPT') as unknown as { extendedRcode?: number; flags?: number; options: { code: number; data: Buffer }[] } | undefined;
  // dns-packet folds the extended rcode into the OPT's ttl; read the byte directly: it follows owner (1), type (2), class (2).
  let ext = 0;
  if (opt !== undefined) {
    const at = raw.lastIndexOf(Buffer.from([0, 0, 41]));
    ext = raw[at + 5];
  }
  return {
    raw,
    rcode: (ext << 4) | (raw[3] & 0xf),
    tc: (raw[2] & 0x02) !== 0,
    answers: (m.answers ?? []).map((a) => String((a as { data?: unknown }).data)),
    cookie: opt?.options.find((o) => o.code === 10)?.data ?? null,
    hasOpt: opt !== undefined,
  };
}

async function udp(port: number, opts: { cookie?: Uint8Array; edns?: boolean } = {}, from?: string): Promise<Reply> {
  const packet = buildQuery('app.example.test', 'A', opts.edns === false ? {} : { edns: { cookie: opts.cookie } });
  const raw = await udpExchange(port, packet, 2000, '127.0.0.1', from);
  if (raw === null) throw new Error('no UDP reply');
  return decode(raw);
}

function haveDig(): boolean {
  return spawnSync('dig', ['-v']).status === 0;
}

function haveDnspython(): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import dns.message, dns.query, dns.edns']).status === 0;
}

test('cookies on (the default): clients get a server cookie, malformed options FORMERR, and returned cookies verify', async (t) => {
  const dir = await tempDir(t);
  const { overwatch, port } = await startServer(t, config(dir));

  await t.test('a client cookie is answered with itself and a fresh 16-byte server cookie (version 1, current time)', async () => {
    const r = await udp(port, { cookie: CLIENT });
    assert.equal(r.rcode, 0);
    assert.deepEqual(r.answers, ['192.0.2.10']);
    assert.ok(r.cookie !== null && r.cookie.length === 24, 'client cookie + server cookie');
    assert.deepEqual(r.cookie.subarray(0, 8), CLIENT);
    assert.equal(r.cookie[8], 1, 'RFC 9018 version');
    assert.deepEqual([...r.cookie.subarray(9, 12)], [0, 0, 0], 'reserved');
    const ts = r.cookie.readUInt32BE(12);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 5, `timestamp ${ts} is now`);
  });

  await t.test('the server cookie returned is recognised; one from another address, or altered, is not (and the query is still answered)', async () => {
    const before = readCounters(overwatch.counters);
    const first = await udp(port, { cookie: CLIENT }, '127.0.0.1');
    const again = await udp(port, { cookie: first.cookie! }, '127.0.0.1');
    assert.equal(again.rcode, 0);
    assert.deepEqual(again.cookie!.subarray(0, 8), CLIENT);
    const elsewhere = await udp(port, { cookie: first.cookie! }, '127.0.9.9');
    assert.equal(elsewhere.rcode, 0);
    const altered = Buffer.from(first.cookie!);
    altered[23] ^= 1;
    await udp(port, { cookie: altered }, '127.0.0.1');
    const after = readCounters(overwatch.counters);
    assert.equal(after.COOKIE_VALID - before.COOKIE_VALID, 1);
    assert.equal(after.COOKIE_INVALID - before.COOKIE_INVALID, 2);
    assert.equal(after.COOKIE_CLIENT_ONLY - before.COOKIE_CLIENT_ONLY, 1);
  });

  await t.test('a COOKIE option of 0, 7, 9, 15 or 41 bytes is FORMERR, with an OPT and no answer', async () => {
    for (const len of [0, 7, 9, 15, 41]) {
      const r = await udp(port, { cookie: Buffer.alloc(len, 0xab) });
      assert.equal(r.rcode, 1, `${len} bytes: FORMERR`);
      assert.equal(r.hasOpt, true, `${len} bytes: the FORMERR carries an OPT (RFC 6891 §7)`);
      assert.deepEqual(r.answers, []);
      assert.equal(r.cookie, null);
    }
    for (const len of [8, 16, 40]) assert.equal((await udp(port, { cookie: Buffer.alloc(len, 0xab) })).rcode, 0, `${len} bytes is well-formed`);
  });

  await t.test('over TCP the cookie is answered too', async () => {
    const raw = await tcpExchange(port, buildQuery('app.example.test', 'A', { edns: { cookie: CLIENT } }));
    const r = decode(raw!);
    assert.equal(r.rcode, 0);
    assert.equal(r.cookie?.length, 24);
  });

  await t.test('dig +cookie: dig sees its own cookie come back with a server cookie, and the server accepts it on the next query', { skip: !haveDig() && 'dig is not installed (Debian package bind9-dnsutils)' }, async () => {
    const { stdout } = await run('dig', ['-p', String(port), '@127.0.0.1', 'app.example.test', 'A', '+cookie', '+tries=1']);
    const m = /; COOKIE: ([0-9a-f]{16})([0-9a-f]{32}) \(good\)/.exec(stdout);
    assert.ok(m !== null, `dig reports a good cookie:\n${stdout}`);
    const before = readCounters(overwatch.counters).COOKIE_VALID;
    const again = await run('dig', ['-p', String(port), '@127.0.0.1', 'app.example.test', 'A', `+cookie=${m[1]}${m[2]}`, '+tries=1']);
    assert.match(again.stdout, /status: NOERROR/);
    assert.match(again.stdout, /; COOKIE: [0-9a-f]{48} \(good\)/);
    assert.equal(readCounters(overwatch.counters).COOKIE_VALID - before, 1, 'the server cookie dig sent back verified');
  });

  await t.test('dnspython: a query with a client cookie gets it back with a server cookie; sending that back is answered', { skip: !haveDnspython() && 'dnspython is not installed (Debian package python3-dnspython)' }, async () => {
    const script = `
import sys, dns.message, dns.query, dns.edns, dns.rcode
port = int(sys.argv[1])
client = bytes.fromhex('${CLIENT.toString('hex')}')
def ask(cookie):
    q = dns.message.make_query('app.example.test', 'A', use_edns=0, options=[dns.edns.GenericOption(10, cookie)])
    r = dns.query.udp(q, '127.0.0.1', port=port, timeout=2)
    got = [o for o in r.options if o.otype == 10]
    return r, (got[0].to_wire() if got else b'')
r, cookie = ask(client)
assert dns.rcode.to_text(r.rcode()) == 'NOERROR', r.rcode()
assert len(cookie) == 24 and cookie[:8] == client, cookie.hex()
r2, cookie2 = ask(cookie)
assert dns.rcode.to_text(r2.rcode()) == 'NOERROR'
assert cookie2[:8] == client and len(cookie2) == 24
print(cookie.hex(), r2.answer[0].to_text())
`;
    const before = readCounters(overwatch.counters).COOKIE_VALID;
    const { stdout } = await run(PYTHON, ['-c', script, String(port)]);
    assert.match(stdout, /^[0-9a-f]{48} app\.example\.test\. \d+ IN A 192\.0\.2\.10/);
    assert.equal(readCounters(overwatch.counters).COOKIE_VALID - before, 1);
  });

  await t.test('a query without a cookie is answered without one', async () => {
    const r = await udp(port);
    assert.equal(r.rcode, 0);
    assert.equal(r.cookie, null);
  });
});

test('dns.cookies.require: UDP without a valid server cookie gets BADCOOKIE (or TC without EDNS); with one, or over TCP, it is answered', async (t) => {
  const dir = await tempDir(t);
  const { overwatch, port } = await startServer(t, config(dir, 'require: true'));
  const noCookie = await udp(port);
  assert.equal(noCookie.rcode, 23, 'BADCOOKIE');
  assert.deepEqual(noCookie.answers, []);
  const noEdns = await udp(port, { edns: false });
  assert.equal(noEdns.tc, true, 'no OPT to carry BADCOOKIE: TC=1, so the client asks over TCP');
  const first = await udp(port, { cookie: CLIENT });
  assert.equal(first.rcode, 23);
  assert.equal(first.cookie?.length, 24, 'BADCOOKIE carries the server cookie to retry with (RFC 7873 §5.2.3)');
  const retry = await udp(port, { cookie: first.cookie! });
  assert.equal(retry.rcode, 0);
  assert.deepEqual(retry.answers, ['192.0.2.10']);
  const overTcp = decode((await tcpExchange(port, buildQuery('app.example.test', 'A', { edns: {} })))!);
  assert.equal(overTcp.rcode, 0, 'TCP is never refused for want of a cookie');
  assert.deepEqual(overTcp.answers, ['192.0.2.10']);
  // Every query is one reply in the type × rcode matrix, the TC=1 one too (docs/metrics.md's relations).
  const c = overwatch.readCounters();
  const replies = Object.entries(c).filter(([name]) => name.startsWith('RCODE_')).reduce((sum, [, n]) => sum + n, 0);
  assert.equal(c.QUERIES, 5);
  assert.equal(replies, c.QUERIES);
  assert.equal(c.QTYPE_A, c.QUERIES);
  assert.equal(c.TRUNCATED, 1);
  if (haveDig()) {
    // dig retries a BADCOOKIE once with the server cookie it was given.
    const { stdout } = await run('dig', ['-p', String(port), '@127.0.0.1', 'app.example.test', 'A', '+cookie', '+tries=2']);
    assert.match(stdout, /status: NOERROR/);
  }
});

test('two servers with the same dns.cookies.secret accept each other\'s cookies (anycast, several NS); a third with another secret does not', async (t) => {
  const secret = 'e5e973e5a6b2a43f48e7dc849e37bfcf';
  const a = await startServer(t, config(await tempDir(t), `secret: "${secret}"`));
  const b = await startServer(t, config(await tempDir(t), `secret: "${secret}", require: true`));
  const c = await startServer(t, config(await tempDir(t), 'secret: "00112233445566778899aabbccddeeff", require: true'));
  const fromA = await udp(a.port, { cookie: CLIENT });
  assert.equal((await udp(b.port, { cookie: fromA.cookie! })).rcode, 0, 'B takes A\'s cookie');
  assert.equal((await udp(c.port, { cookie: fromA.cookie! })).rcode, 23, 'C does not');
});

test('dns.cookies.secret_file holds the shared secret; rotate: false uses it as the SipHash key itself (RFC 9018 vectors)', async (t) => {
  const dir = await tempDir(t);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(`${dir}/cookie.secret`, 'e5e973e5a6b2a43f48e7dc849e37bfcf\n', { mode: 0o600 });
  const { port } = await startServer(t, config(dir, `secret_file: "${dir}/cookie.secret", rotate: false`));
  const r = await udp(port, { cookie: CLIENT });
  // Recompute with the RFC's construction and the plain secret as key.
  const { CookieScratch, writeReplyCookie } = await import('../../src/dns/cookie.ts');
  const { sipKey } = await import('../../src/lib/siphash.ts');
  const expect = new Uint8Array(24);
  writeReplyCookie(expect, 0, { words: sipKey(Buffer.from('e5e973e5a6b2a43f48e7dc849e37bfcf', 'hex')), count: 1 }, new CookieScratch(), CLIENT, 0, r.cookie!.readUInt32BE(12), Uint8Array.of(127, 0, 0, 1), 4);
  assert.deepEqual(r.cookie, Buffer.from(expect));
});

test('cookies off: the COOKIE option is ignored, malformed or not', async (t) => {
  const { port } = await startServer(t, config(await tempDir(t), 'enabled: false'));
  const r = await udp(port, { cookie: CLIENT });
  assert.equal(r.rcode, 0);
  assert.equal(r.cookie, null);
  assert.equal((await udp(port, { cookie: Buffer.alloc(7) })).rcode, 0);
});

test('new keys posted to the workers (a rotation) take effect between packets; a restarted worker starts with the newest', async (t) => {
  const { overwatch, port } = await startServer(t, config(await tempDir(t), 'require: true'));
  const { CookieSecrets } = await import('../../src/overwatch/cookie-secrets.ts');
  const first = await udp(port, { cookie: CLIENT });
  const cookie = first.cookie!;
  assert.equal((await udp(port, { cookie })).rcode, 0, 'valid under the keys of start');
  // Keys that know nothing of the start's secret: the old cookie is refused by every worker.
  const other = new CookieSecrets({ enabled: true, require: true, secret: '00112233445566778899aabbccddeeff', secretFile: null, secretLifetimeMs: 26 * 3_600_000, rotate: true });
  overwatch.pool.publishCookieKeys(other.keysAt(Date.now()));
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 8; i++) assert.equal((await udp(port, { cookie })).rcode, 23, `query ${i}: the old cookie after the keys changed`);
  const fresh = (await udp(port, { cookie: CLIENT })).cookie!;
  assert.equal((await udp(port, { cookie: fresh })).rcode, 0, 'a cookie of the new keys');
  // A worker that dies is restarted with the newest keys.
  const worker = overwatch.pool.workers[0];
  assert.ok(worker !== null);
  const restarted = new Promise<void>((resolve) => overwatch.pool.once('worker-restarted', () => resolve()));
  await worker.terminate();
  await restarted;
  for (let i = 0; i < 8; i++) assert.equal((await udp(port, { cookie: fresh })).rcode, 0, `query ${i} after the restart`);
});
