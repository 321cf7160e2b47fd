// The peer comparison behind GET /api/v1/cluster/status
// (src/overwatch/cluster-status.ts askPeers) against real HTTP servers on
// loopback: whatever a peer URL answers, each peer gets a row (unreachable,
// with why, for anything that is not a cluster status) and the question
// itself never fails.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { askPeers, type AgentsDigest } from '../../src/overwatch/cluster-status.ts';
import { endlessHttpServer } from '../helpers/backends.ts';

const mine: AgentsDigest = { count: 1, digest: 'ab'.repeat(32) };

test('a peer answering JSON that is not a cluster status (null, an array, a number, a string, agents_view null) is unreachable with why; the others are still compared', async (t) => {
  const bodies: Record<string, string> = {
    '/null': 'null',
    '/array': '[]',
    '/number': '7',
    '/string': '"ok"',
    '/view-null': '{"agents_view":null}',
    '/good': JSON.stringify({ agents_view: mine }),
  };
  const server = createServer((req, res) => {
    const path = Object.keys(bodies).find((p) => req.url!.startsWith(`${p}/`));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(path === undefined ? '{}' : bodies[path]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const peers = Object.keys(bodies).map((p) => ({ url: `${base}${p}`, token: null }));
  const rows = await askPeers(peers, mine, 2000);
  assert.equal(rows.length, peers.length);
  for (const row of rows) {
    if (row.url.endsWith('/good')) {
      assert.deepEqual(row, { url: row.url, reachable: true, error: null, agent_count: 1, digest: mine.digest, matches: true });
    } else {
      assert.equal(row.reachable, false, row.url);
      assert.equal(row.matches, null, row.url);
      assert.match(row.error ?? '', /no agents_view: is the URL the peer's admin API\?/, row.url);
    }
  }
});

test('a peer URL that streams without end is unreachable once its answer passes the limit, well before the timeout, and the stream is cut', async (t) => {
  const peer = await endlessHttpServer(t);
  const started = performance.now();
  const [row] = await askPeers([{ url: peer.url, token: null }], mine, 20_000, 1024 * 1024);
  assert.ok(performance.now() - started < 10_000, 'ended by the size limit, not the 20 s timeout');
  assert.equal(row.reachable, false);
  assert.match(row.error ?? '', /^the answer is larger than 1048576 bytes, expected at most 1048576: is the URL the peer's admin API\?$/);
  await peer.cut;
  assert.ok(peer.streamed() < 64 * 1024 * 1024, `the peer's stream was cut (it wrote ${peer.streamed()} bytes)`);
});
