// DNSSEC key sync between overwatches (src/dnssec/key-sync.ts): the sealed
// exchange on its own (a wrong secret, a stale or replayed request, a changed
// byte are refused; private keys never travel in the clear), then two real
// `opengslb` processes polling each other: the second takes the first's key
// instead of making one, both serve the same DNSKEY and both answers
// validate with one trust anchor; a third node with another secret is
// refused, keeps signing with its own key and says so in the status API and
// the metrics.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateZoneKey, toStoredKey } from '../../src/dnssec/keys.ts';
import { KEY_SYNC_HEADER, KeySyncClient, KeySyncServer, openSealed, signRequest } from '../../src/dnssec/key-sync.ts';
import type { OpenGslbError } from '../../src/lib/errors.ts';
import { MemoryStore } from '../../src/state/store.ts';
import { endlessHttpServer } from '../helpers/backends.ts';
import { ask, dnskeysOf } from '../helpers/dns-client.ts';
import { eventually } from '../helpers/eventually.ts';
import { startOpengslb, type RunningServer } from '../helpers/child.ts';
import { delvAnchor, missingTool, tool } from './helpers.ts';

const SECRET = randomBytes(32).toString('base64');
const OTHER = randomBytes(32).toString('base64');

test('a sealed answer opens only with the same secret and for the request it answers', async () => {
  const key = await generateZoneKey('example.test', 'ECDSAP256SHA256');
  const stored = [toStoredKey(key)];
  const server = new KeySyncServer(SECRET);
  const now = Date.now();
  const { header, nonce } = signRequest(SECRET, now);
  const sealed = server.answer(header, stored, now);
  // No private material in the clear.
  assert.doesNotMatch(JSON.stringify(sealed), new RegExp(stored[0].privateKeyPkcs8.slice(0, 40).replace(/[+/]/g, '.')));
  assert.doesNotMatch(JSON.stringify(sealed), /privateKeyPkcs8|example\.test/);
  assert.deepEqual(openSealed(SECRET, nonce, sealed), stored);

  const refused = (fn: () => unknown, re: RegExp): void => {
    assert.throws(fn, (err: OpenGslbError) => {
      assert.equal(err.code, 'OPENGSLB_ERR_DNSSEC_KEY_SYNC');
      assert.equal(err.httpStatus, 403);
      assert.match(err.message, re);
      return true;
    });
  };
  refused(() => server.answer(header, stored, now), /seen before \(a replay\)/);
  refused(() => server.answer(signRequest(OTHER, now).header, stored, now), /not signed with this node's overwatch\.dnssec\.key_sync\.shared_secret/);
  refused(() => server.answer(signRequest(SECRET, now - 120_000).header, stored, now), /made -?120 s from now .* expected within 60 s/);
  refused(() => server.answer(undefined, stored, now), new RegExp(`no ${KEY_SYNC_HEADER} header`));
  refused(() => server.answer('t=1, n=zz, mac=x', stored, now), /malformed/);
  refused(() => openSealed(OTHER, nonce, sealed), /does not open with this node's shared_secret/);
  refused(() => openSealed(SECRET, 'a'.repeat(32), sealed), /does not open/);
  const bytes = Buffer.from(sealed.sealed, 'base64');
  bytes[5] ^= 1;
  refused(() => openSealed(SECRET, nonce, { ...sealed, sealed: bytes.toString('base64') }), /does not open/);
});

test('a key-sync peer URL that streams without end fails that peer once its answer passes 16 MiB, well before the timeout', async (t) => {
  const { url } = await endlessHttpServer(t);
  const client = new KeySyncClient(new MemoryStore(), { peers: [url], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: SECRET });
  const started = performance.now();
  assert.deepEqual(await client.pollOnce(new Set(['example.test'])), []);
  assert.ok(performance.now() - started < 15_000, 'ended by the size limit, not the 30 s timeout');
  const [peer] = client.status().peers;
  assert.equal(peer.ok, false);
  assert.match(peer.last_error ?? '', /: the answer is larger than 16777216 bytes, expected at most 16777216 \(a peer's keys take a few KiB per zone\)$/);
});

/** A free TCP port on 127.0.0.1 (closed again at once; the server binds it moments later). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function config(apiPort: number, peers: readonly number[], secret: string, metricsPort: number | null): string {
  return [
    'dns:',
    '  listen_address: "127.0.0.1:0"',
    '  workers: 1',
    '  zones: [example.test]',
    '  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]',
    'regions:',
    '  - name: eu',
    '    servers: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]',
    '    health_check: { type: none }',
    'domains:',
    '  - { name: app.example.test, regions: [eu], max_answers: 2 }',
    `api: { enabled: true, address: "127.0.0.1:${apiPort}" }`,
    metricsPort === null ? 'metrics: { enabled: false }' : `metrics: { enabled: true, address: "127.0.0.1:${metricsPort}" }`,
    'logging: { level: info, format: json }',
    'overwatch:',
    '  data_dir: ./state',
    '  dnssec:',
    '    key_sync:',
    `      peers: [${peers.map((p) => `"http://127.0.0.1:${p}"`).join(', ')}]`,
    '      poll_interval: 1s',
    '      timeout: 2s',
    `      shared_secret: "${secret}"`,
    '',
  ].join('\n');
}

interface Node {
  readonly server: RunningServer;
  readonly api: string;
}

async function startNode(t: TestContext, name: string, apiPort: number, peers: readonly number[], secret: string, metricsPort: number | null = null): Promise<Node> {
  const dir = await mkdtemp(join(tmpdir(), `opengslb-sync-${name}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  // The secret is a secret: the loader refuses a file others may read.
  await writeFile(file, config(apiPort, peers, secret, metricsPort), { mode: 0o600 });
  const server = await startOpengslb(t, file, { timeoutMs: 30_000 });
  return { server, api: `http://127.0.0.1:${apiPort}` };
}

interface Status {
  keys: { key_tag: number; public_key: string; state: string; signing: boolean; flags: number; algorithm_number: number; zone: string }[];
  key_sync: { enabled: boolean; in_sync: boolean; peers: { url: string; ok: boolean; last_error: string | null }[] };
}

async function status(node: Node): Promise<Status> {
  return (await (await fetch(`${node.api}/api/v1/dnssec/status`)).json()) as Status;
}

test('two overwatches share one key: the second takes the first\'s, both serve the same DNSKEY, and both validate with one trust anchor', { skip: missingTool('delv', 'bind9-dnsutils') }, async (t) => {
  const [apiA, apiB, apiC] = [await freePort(), await freePort(), await freePort()];
  // A starts alone: B is not up, so A makes its own key and says it is not in sync.
  const a = await startNode(t, 'a', apiA, [apiB], SECRET);
  await a.server.out.waitFor(/DNSSEC key created/);
  await eventually('A reports its peer down', async () => (await status(a)).key_sync.peers[0]?.last_error !== null, 15_000, 200);
  const aStatus = await status(a);
  assert.equal(aStatus.key_sync.enabled, true);
  assert.equal(aStatus.key_sync.in_sync, false);
  assert.equal(aStatus.keys.length, 1);
  const keyA = aStatus.keys[0];

  // B joins: it asks A before making a key, so it makes none. C (another
  // secret, judged at the end) starts meanwhile: it asks only A, which never
  // gives it anything, and B and A never ask C.
  const metricsC = await freePort();
  const [b, c] = await Promise.all([startNode(t, 'b', apiB, [apiA], SECRET), startNode(t, 'c', apiC, [apiA], OTHER, metricsC)]);
  assert.doesNotMatch(b.server.out.text, /DNSSEC key created/, 'B took the key from A');
  const bStatus = await status(b);
  assert.deepEqual(bStatus.keys.map((k) => [k.key_tag, k.public_key, k.state]), [[keyA.key_tag, keyA.public_key, 'active']]);
  assert.equal(bStatus.key_sync.in_sync, true);
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-sync-anchor-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A's next poll (poll_interval 1 s) finds B; the checks of the shared key
  // read only what A and B serve already, so they run meanwhile.
  await Promise.all([
    eventually('A in sync once B answers', async () => (await status(a)).key_sync.in_sync, 15_000, 200),
    (async () => {
      // The same DNSKEY from both; answers from both validate with A's key as the only anchor.
      assert.deepEqual(await dnskeysOf(a.server.port, 'example.test'), [keyA.public_key]);
      assert.deepEqual(await dnskeysOf(b.server.port, 'example.test'), [keyA.public_key]);
      const anchor = join(dir, 'anchor.conf');
      await writeFile(anchor, delvAnchor({ zone: 'example.test', flags: keyA.flags, algorithm: keyA.algorithm_number as 13, publicKey: keyA.public_key }));
      // Each delv run is its own process and resolver: all four at once.
      await Promise.all([a, b].flatMap((node) => ([['app.example.test', 'A', /^; fully validated$/m], ['nothing.example.test', 'A', /^; negative response, fully validated$/m]] as const).map(async ([name, type, want]) => {
        const out = await tool('delv', ['@127.0.0.1', '-p', String(node.server.port), '-a', anchor, '+root=example.test', name, type]);
        assert.match(out, want, `${node.api} ${name} ${type}:\n${out}`);
      })));
    })(),
  ]);

  // A rollover started on A reaches B: both publish the new key.
  const started = await fetch(`${a.api}/api/v1/dnssec/rollover/start`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ zone: 'example.test' }) });
  assert.equal(started.status, 200);
  // B's next poll takes the new key; A's sync route is checked meanwhile.
  await Promise.all([
    eventually('B publishes the new key', async () => (await dnskeysOf(b.server.port, 'example.test')).length === 2, 15_000, 200),
    (async () => {
      // The sync route refuses a request without the proof, and one made with another secret.
      const bare = await fetch(`${a.api}/api/v1/dnssec/keysync`);
      assert.equal(bare.status, 403);
      assert.match(((await bare.json()) as { error: string }).error, /key sync refused: no x-opengslb-key-sync header/);
      const wrong = await fetch(`${a.api}/api/v1/dnssec/keysync`, { headers: { [KEY_SYNC_HEADER]: signRequest(OTHER).header } });
      assert.equal(wrong.status, 403);
      const right = signRequest(SECRET);
      const sealed = await fetch(`${a.api}/api/v1/dnssec/keysync`, { headers: { [KEY_SYNC_HEADER]: right.header } });
      assert.equal(sealed.status, 200);
      const body = await sealed.text();
      assert.doesNotMatch(body, /privateKeyPkcs8|example\.test/, 'nothing readable without the secret');
      assert.equal(openSealed(SECRET, right.nonce, JSON.parse(body)).length, 2);
    })(),
  ]);
  assert.deepEqual(await dnskeysOf(b.server.port, 'example.test'), await dnskeysOf(a.server.port, 'example.test'));

  // C has another secret: A refuses it, C keeps its own key and says it is not in sync.
  await c.server.out.waitFor(/DNSSEC key created/);
  const cStatus = await status(c);
  assert.equal(cStatus.key_sync.in_sync, false);
  assert.match(cStatus.key_sync.peers[0].last_error ?? '', /answered 403: key sync refused: the request is not signed with this node's overwatch\.dnssec\.key_sync\.shared_secret/);
  assert.notEqual(cStatus.keys[0].public_key, keyA.public_key);
  const signed = await ask(c.server.port, 'app.example.test', 'A', { edns: { do: true } });
  assert.ok((signed.answers ?? []).some((r) => r.type === 'RRSIG'), 'C keeps signing with its own key');
  const metrics = await (await fetch(`http://127.0.0.1:${metricsC}/metrics`)).text();
  assert.match(metrics, /^opengslb_dnssec_key_sync_in_sync 0$/m);
  assert.match(metrics, new RegExp(`^opengslb_dnssec_key_sync_peer_up\\{peer="http://127\\.0\\.0\\.1:${apiA}"\\} 0$`, 'm'));
  assert.match(a.server.out.text, /key sync request refused/);
});
