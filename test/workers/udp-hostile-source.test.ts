// Whole server on loopback, once per UDP path (dns.udp_io): a datagram with a
// source no reply can go to (port 0, forged through a raw socket) is counted
// as a send error and the worker keeps serving; it never takes the worker
// down. Raw sockets need CAP_NET_RAW: the test is skipped without it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { ask } from '../helpers/dns-client.ts';
import { launchOnPath, type Started, udpPathSkip } from '../helpers/server.ts';

/** Sends `app.example.test A` to 127.0.0.1:port from UDP source port 0 (a raw socket writes the UDP header; checksum 0 = none, IPv4). */
const FORGE = `
import socket, struct, sys
port = int(sys.argv[1])
q = bytes.fromhex('424201000001000000000000' '03617070076578616d706c650474657374000001' '0001')
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
s.sendto(struct.pack('!HHHH', 0, port, 8 + len(q), 0) + q, ('127.0.0.1', 0))
`;

/** Why a raw socket cannot be opened here, or false. */
function rawSkip(): string | false {
  const r = spawnSync('python3', ['-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)'], { encoding: 'utf8' });
  return r.status === 0 ? false : `no raw socket here (needs python3 and CAP_NET_RAW): ${(r.stderr ?? r.error?.message ?? '').trim().split('\n').pop()}`;
}
const noRaw = rawSkip();

for (const path of ['batched', 'dgram'] as const) describe(`a forged UDP source (the ${path} path)`, { skip: udpPathSkip(path) || noRaw }, () => {
  let server: Started;
  before(async () => {
    server = await launchOnPath(path);
  });
  after(() => server?.overwatch.stop(500));

  test('a query from source port 0 is answered by nothing, counted as a send error, and the worker keeps running', async () => {
    const before = server.overwatch.readCounters();
    const r = spawnSync('python3', ['-c', FORGE, String(server.port)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // The worker handled it once it counts the query; then the send error.
    for (let i = 0; i < 100 && server.overwatch.readCounters().UDP_QUERIES === before.UDP_QUERIES; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal((await ask(server.port, 'app.example.test', 'A')).rcode, 'NOERROR');
    const after = server.overwatch.readCounters();
    assert.equal(after.SEND_ERRORS - before.SEND_ERRORS, 1, 'the reply that cannot go out is counted');
    assert.equal(after.UDP_QUERIES - before.UDP_QUERIES, 2);
    assert.deepEqual(
      server.logs.filter((l) => /DNS worker (failed|exited)/.test(l)),
      [],
      'no worker failed or restarted',
    );
  });
});
