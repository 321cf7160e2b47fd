// Config reload against the real server: the opengslb binary as a child
// process, reloaded with SIGHUP while several clients query it without pause,
// and an in-process overwatch reloaded through ConfigReloader with real
// health-check backends. Every answer is checked: none lost, none mixing the
// data of two configs.

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import type { webcrypto } from 'node:crypto';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import dnsPacket from 'dns-packet';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { ConfigReloader, RELOAD_RESULTS } from '../../src/overwatch/reload.ts';
import { LmdbStore } from '../../src/state/store.ts';
import { testCertificates } from '../health/helpers.ts';
import { httpBackend } from '../helpers/backends.ts';
import { startOpengslb } from '../helpers/child.ts';
import { configTree, posixOnly, writeTree } from '../helpers/config-files.ts';
import { ask, buildQuery, tcpConnect } from '../helpers/dns-client.ts';

/** How long one query may wait for its answer before it counts as lost. */
const ANSWER_TIMEOUT_MS = 2000;
/** Answers each phase of the load test waits for (old config, after the good reload, after the bad one). */
const ANSWERS_PER_PHASE = 1000;
/** Upper bound of the whole load: a phase not done by then fails the test (and the clients stop). */
const LOAD_LIMIT_MS = 5000;

const MAIN = [
  'dns:',
  '  listen_address: "127.0.0.1:0"',
  '  workers: 2',
  '  zones: [example.test]',
  '  nameservers: [{ name: ns1.example.test, addresses: [127.0.0.1] }]',
  '  tcp_max_queries_per_connection: 1000000',
  'logging: { level: info, format: json }',
  // Its own state directory (next to main.yaml): never the shared default.
  'overwatch: { data_dir: ./state }',
  'includes: [conf.d/*.yaml]',
];

/**
 * The servers and the domain of one generation. Each answer carries all four
 * servers (max_answers 4), so an answer is wholly one generation exactly when
 * its four addresses are that generation's four and each TTL is its TTL.
 */
function generation(prefix: string, ttl: number): string[] {
  return [
    'regions:',
    '  - name: pool',
    '    health_check: { type: none }',
    '    servers:',
    ...[1, 2, 3, 4].map((i) => `      - { address: ${prefix}.${i} }`),
    'domains:',
    `  - { name: app.example.test, regions: [pool], ttl: ${ttl}, max_answers: 4 }`,
  ];
}
const OLD = { prefix: '192.0.2', ttl: 30 };
const NEW = { prefix: '198.51.100', ttl: 45 };

interface Answer {
  /** Order in which the query was sent, over all clients. */
  readonly sentSeq: number;
  /** 'old', 'new', or what was wrong with it. */
  readonly kind: string;
}

/** Classifies one reply: 'old' or 'new' when wholly one generation, else a description of the problem. */
function classify(raw: Buffer, id: number): string {
  const reply = dnsPacket.decode(raw) as ReturnType<typeof dnsPacket.decode> & { rcode?: string };
  if (reply.id !== id) return `wrong id ${reply.id}, expected ${id}`;
  if (reply.rcode !== 'NOERROR') return `rcode ${reply.rcode}`;
  const records = (reply.answers ?? []) as { type: string; data: string; ttl?: number }[];
  const addresses = records.map((r) => r.data).sort().join(',');
  const ttls = [...new Set(records.map((r) => r.ttl))];
  for (const [kind, g] of [['old', OLD], ['new', NEW]] as const) {
    const expected = [1, 2, 3, 4].map((i) => `${g.prefix}.${i}`).join(',');
    if (addresses === expected && ttls.length === 1 && ttls[0] === g.ttl) return kind;
  }
  return `mixed: ${records.map((r) => `${r.data}/${r.ttl}`).join(' ')}`;
}

/** Several clients asking app.example.test A back to back until stopped; every reply classified. */
class Load {
  readonly answers: Answer[] = [];
  lost = 0;
  #seq = 0;
  #stopped = false;
  readonly #waiters: { n: number; resolve: () => void }[] = [];
  readonly #clients: Promise<void>[] = [];

  constructor(port: number, udpClients: number, tcpClients: number) {
    for (let i = 0; i < udpClients; i++) this.#clients.push(this.#udpClient(port));
    for (let i = 0; i < tcpClients; i++) this.#clients.push(this.#tcpClient(port));
  }

  /** Resolves once `n` more replies have arrived than now. */
  more(n: number): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ n: this.answers.length + n, resolve }));
  }

  /** The sequence number the next query will get. */
  get nextSeq(): number {
    return this.#seq;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#clients);
  }

  #record(sentSeq: number, kind: string): void {
    this.answers.push({ sentSeq, kind });
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const w = this.#waiters[i];
      if (w !== undefined && this.answers.length >= w.n) {
        this.#waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  async #udpClient(port: number): Promise<void> {
    const socket = dgram.createSocket('udp4');
    const pending = new Map<number, (msg: Buffer) => void>();
    socket.on('message', (msg) => pending.get(msg.readUInt16BE(0))?.(msg));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      let id = 0;
      while (!this.#stopped) {
        id = (id + 1) & 0xffff;
        const seq = this.#seq++;
        const reply = await new Promise<Buffer | null>((resolve) => {
          const timer = setTimeout(() => resolve(null), ANSWER_TIMEOUT_MS);
          pending.set(id, (msg) => {
            clearTimeout(timer);
            resolve(msg);
          });
          socket.send(buildQuery('app.example.test', 'A', { id }), port, '127.0.0.1');
        });
        pending.delete(id);
        if (reply === null) this.lost++;
        else this.#record(seq, classify(reply, id));
      }
    } finally {
      socket.close();
    }
  }

  async #tcpClient(port: number): Promise<void> {
    const conn = await tcpConnect(port);
    try {
      let id = 0;
      while (!this.#stopped) {
        id = (id + 1) & 0xffff;
        const seq = this.#seq++;
        conn.send(buildQuery('app.example.test', 'A', { id }));
        const reply = await conn.next(ANSWER_TIMEOUT_MS);
        if (reply === null) this.lost++;
        else this.#record(seq, classify(reply, id));
      }
    } finally {
      conn.close();
    }
  }
}

/** Rejects after `ms` with `what`, so a phase that never completes fails the test instead of hanging it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

test('two SIGHUP reloads under continuous load, one good and one bad, lose no query and never mix two configs in one answer', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': generation(OLD.prefix, OLD.ttl) }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  const load = new Load(server.port, 4, 2);
  const deadline = Date.now() + LOAD_LIMIT_MS;
  const left = (): number => Math.max(1, deadline - Date.now());
  let goodSentFrom = -1;
  try {
    await within(load.more(ANSWERS_PER_PHASE), left(), 'answers under the old config');

    // Good reload: only the included file changes; every address and the TTL change with it.
    await writeTree(dir, { 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl) }, 0o600);
    let from = server.out.lines.length;
    server.child.kill('SIGHUP');
    const good = await server.out.waitFor(/reload (succeeded|failed|refused)/, from, left());
    assert.match(good, /reload succeeded/, good);
    assert.match(good, /"reloads":\{"success":1,"failure":0\}/);
    goodSentFrom = load.nextSeq;
    await within(load.more(ANSWERS_PER_PHASE), left(), 'answers after the good reload');

    // Bad reload: the file no longer validates, so the new config keeps serving.
    await writeTree(dir, { 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl).map((l) => l.replace('198.51.100.3', '198.51.100.300')) }, 0o600);
    from = server.out.lines.length;
    server.child.kill('SIGHUP');
    const bad = await server.out.waitFor(/reload (succeeded|failed|refused)/, from, left());
    assert.match(bad, /reload failed; still serving the previous config/, bad);
    assert.ok(bad.includes(`${dir}/conf.d/app.yaml:7:20: regions[0].servers[2].address: \\"198.51.100.300\\" is not an IP address`), bad);
    assert.match(bad, /"reloads":\{"success":1,"failure":1\}/);
    await within(load.more(ANSWERS_PER_PHASE), left(), 'answers after the bad reload');
  } finally {
    await load.stop();
  }

  const byKind = new Map<string, number>();
  for (const a of load.answers) byKind.set(a.kind, (byKind.get(a.kind) ?? 0) + 1);
  t.diagnostic(`${load.answers.length} answers in all: ${JSON.stringify(Object.fromEntries(byKind))}, ${load.lost} lost`);
  assert.equal(load.lost, 0, 'every query is answered');
  const wrong = load.answers.filter((a) => a.kind !== 'old' && a.kind !== 'new');
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} answers were not wholly one config`);
  assert.ok((byKind.get('old') ?? 0) >= ANSWERS_PER_PHASE, 'the old config answered before the reload');
  assert.ok((byKind.get('new') ?? 0) >= 2 * ANSWERS_PER_PHASE, 'the new config answered after it');
  // The success is logged once every worker serves the new snapshot: nothing sent later gets the old one.
  const staleAfterSwitch = load.answers.filter((a) => a.sentSeq >= goodSentFrom && a.kind === 'old');
  assert.equal(staleAfterSwitch.length, 0, 'no old answer to a query sent after the reload was reported done');
  assert.equal(server.child.exitCode, null, 'still running');
});

test('refuses a reload that changes the listen address, the mode, dns.rrl or dns.cookies, saying it needs a restart, and keeps serving', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': generation(OLD.prefix, OLD.ttl) }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  const changes = [
    { what: 'listen address', main: MAIN.map((l) => l.replace('127.0.0.1:0', `127.0.0.1:${server.port === 65535 ? 65534 : server.port + 1}`)), reason: /dns\.listen_address changed; a new listen address needs a restart/ },
    {
      what: 'mode',
      // A complete agent file (no DNS keys, which agent mode refuses), so the file is valid and the refusal is about the mode change itself.
      main: [
        'mode: agent',
        'logging: { level: info, format: json }',
        'agent:',
        '  identity: { service_token: token-for-app-0123456789, region: eu-west }',
        '  backends: [{ service: app.example.test, address: 127.0.0.1, port: 8080 }]',
        '  gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", overwatch_nodes: ["127.0.0.1:7946"] }',
      ],
      reason: /mode changed from overwatch to agent; a mode change needs a restart/,
    },
    { what: 'rate limiting', main: [...MAIN.slice(0, 6), '  rrl: { enabled: true }', ...MAIN.slice(6)], reason: /dns\.rrl changed; rate limiting and its shared table are fixed when the workers start, so this needs a restart/ },
    { what: 'cookies', main: [...MAIN.slice(0, 6), '  cookies: { require: true }', ...MAIN.slice(6)], reason: /dns\.cookies changed; the cookie settings and secret are fixed when the workers start, so this needs a restart/ },
  ];
  for (const [i, c] of changes.entries()) {
    await writeTree(dir, { 'main.yaml': c.main, 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl) }, 0o600);
    const from = server.out.lines.length;
    server.child.kill('SIGHUP');
    const line = await server.out.waitFor(/reload (succeeded|failed|refused)/, from);
    assert.match(line, /reload refused; still serving the previous config/, `${c.what}: ${line}`);
    assert.match(line, c.reason);
    assert.match(line, new RegExp(`"reloads":\\{"success":0,"failure":${i + 1}\\}`));
    const reply = await ask(server.port, 'app.example.test', 'A');
    assert.deepEqual((reply.answers ?? []).map((a) => (a as { ttl?: number }).ttl), [OLD.ttl, OLD.ttl, OLD.ttl, OLD.ttl], `${c.what}: the old config still answers`);
  }
});

test('a reload that changes several keys that need a restart names every one of them, not just the first, and applies nothing', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': generation(OLD.prefix, OLD.ttl) }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  const port = server.port === 65535 ? 65534 : server.port + 1;
  const main = MAIN.map((l) => l.replace('127.0.0.1:0', `127.0.0.1:${port}`).replace('workers: 2', 'workers: 1').replace('format: json', 'format: text'));
  await writeTree(dir, { 'main.yaml': [...main, 'metrics: { enabled: true, address: "127.0.0.1:0" }'], 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl) }, 0o600);
  const from = server.out.lines.length;
  server.child.kill('SIGHUP');
  const line = await server.out.waitFor(/reload (succeeded|failed|refused)/, from);
  assert.match(line, /reload refused; still serving the previous config/, line);
  for (const reason of [
    'dns.listen_address changed; a new listen address needs a restart',
    'dns.workers changed from 2 to 1; a new worker count needs a restart',
    'logging.format changed from json to text; a new log format needs a restart',
    'metrics.enabled or metrics.address changed; the metrics listener is fixed at start, so this needs a restart',
  ]) assert.ok(line.includes(reason), `${reason}\nmissing from: ${line}`);
  const reply = await ask(server.port, 'app.example.test', 'A');
  assert.deepEqual((reply.answers ?? []).map((a) => (a as { ttl?: number }).ttl), [OLD.ttl, OLD.ttl, OLD.ttl, OLD.ttl], 'the old config still answers');
});

test('a burst of SIGHUPs is folded into at most two reloads that run one after another', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': generation(OLD.prefix, OLD.ttl) }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  await writeTree(dir, { 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl) }, 0o600);
  const from = server.out.lines.length;
  for (let i = 0; i < 5; i++) server.child.kill('SIGHUP');
  await server.out.waitFor(/reload succeeded/, from);
  // Another request after the burst proves the queue drained: its reload is the last one logged.
  const probe = server.out.lines.length;
  server.child.kill('SIGHUP');
  const last = await server.out.waitFor(/reload succeeded/, probe);
  const reloads = server.out.lines.slice(from).filter((l) => /reload (succeeded|failed|refused)/.test(l));
  assert.ok(reloads.length <= 3, `5 SIGHUPs and one more gave ${reloads.length} reloads:\n${reloads.join('\n')}`);
  assert.equal(reloads.at(-1), last);
  const reply = await ask(server.port, 'app.example.test', 'A');
  assert.equal((reply.answers?.[0] as { ttl?: number } | undefined)?.ttl, NEW.ttl);
});

test('an editor\'s save caught between its truncate and its write fails the reload: the fragment\'s domains keep answering, and the reload after the write takes it', posixOnly, async (t) => {
  const shop = ['domains:', '  - { name: shop.example.test, regions: [pool], ttl: 77 }'];
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/10-app.yaml': generation(OLD.prefix, OLD.ttl), 'conf.d/20-shop.yaml': shop }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  // Truncate, as vim (backupcopy=yes), nano or `cat >` do first; a path watcher's SIGHUP arrives now.
  await truncate(join(dir, 'conf.d/20-shop.yaml'), 0);
  let from = server.out.lines.length;
  server.child.kill('SIGHUP');
  const caught = await server.out.waitFor(/reload (succeeded|failed|refused)/, from);
  assert.match(caught, /reload failed; still serving the previous config/, caught);
  assert.ok(caught.includes(`${dir}/main.yaml:9:12: includes[0]: ${dir}/conf.d/20-shop.yaml is empty (0 bytes), expected YAML`), caught);
  const during = await ask(server.port, 'shop.example.test', 'A');
  assert.equal(during.rcode, 'NOERROR');
  assert.deepEqual((during.answers ?? []).map((a) => (a as { ttl?: number }).ttl), [77]);
  // The write lands; the next reload takes the file as written.
  await writeTree(dir, { 'conf.d/20-shop.yaml': shop.map((l) => l.replace('ttl: 77', 'ttl: 78')) }, 0o600);
  from = server.out.lines.length;
  server.child.kill('SIGHUP');
  assert.match(await server.out.waitFor(/reload (succeeded|failed|refused)/, from), /reload succeeded/);
  const after = await ask(server.port, 'shop.example.test', 'A');
  assert.deepEqual((after.answers ?? []).map((a) => (a as { ttl?: number }).ttl), [78]);
});

test('a reload whose files are still being read when the server starts stopping is not applied: nothing reaches the stopped overwatch or its closed state store', posixOnly, async (t) => {
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': generation(OLD.prefix, OLD.ttl) }, 0o600);
  const path = join(dir, 'main.yaml');
  const logger = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
  const { config } = await loadConfig(path, { env: {} });
  const store = LmdbStore.open(join(dir, 'state'));
  const overwatch = await Overwatch.start(config, logger, { store });
  // A change to the zone: applying it would write the zone's next serial to the store.
  await writeTree(dir, { 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl) }, 0o600);
  // The overwatch is a ReloadTarget itself (opengslb-main.ts wraps it to reload the API's certificate too): stopping from the moment the stop begins.
  const reloader = new ConfigReloader({ path, target: overwatch, logger, env: {} });
  // SIGHUP, then SIGTERM while the loader thread reads the files: the stop
  // (workers, then the store) is over long before the files are read.
  const pending = reloader.request();
  await overwatch.stop(100);
  await store.close();
  const outcome = await pending;
  // A late write to the closed store would throw from lmdb's next tick: give it the time.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(outcome.result, 'failure');
  assert.match(outcome.message, /stopping/);
  assert.equal(outcome.generation, 1);
  assert.equal(overwatch.generation, 1, 'nothing was published after the stop');
  // Called directly, after the stop, the overwatch refuses it too.
  const direct = await overwatch.reload(config);
  assert.equal(direct.ok, false);
  assert.match(direct.message, /stopping/);
});

/** Starts an in-process overwatch with real health checks from the file at `path`, and a reloader for it; both stopped after the test. */
async function startInProcess(t: TestContext, path: string): Promise<{ overwatch: Overwatch; reloader: ConfigReloader; logs: string[] }> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ level: 'info', format: 'json' }, sink);
  const { config } = await loadConfig(path, { env: {} });
  const overwatch = await Overwatch.start(config, logger, { healthChecks: 'run' });
  t.after(() => overwatch.stop(500));
  let clock = 1_700_000_000_000;
  const reloader = new ConfigReloader({ path, target: overwatch, logger, env: {}, loadedAtMs: clock, now: () => (clock += 1000) });
  return { overwatch, reloader, logs };
}

/** The addresses of one A answer of app.example.test, sorted. */
async function addressesOf(port: number): Promise<string[]> {
  const reply = await ask(port, 'app.example.test', 'A');
  return (reply.answers ?? []).map((a) => (a as { data: string }).data).sort();
}

test('a reload keeps the health of servers that stay, checks added ones at once, stops checking removed ones, and counts every result', posixOnly, async (t) => {
  const down = await httpBackend(t, 500);
  const up = await httpBackend(t, 200);
  const added = await httpBackend(t, 200);
  const region = (list: { address: string; port: number }[]): string[] => [
    'regions:',
    '  - name: pool',
    // A long interval: anything probed within a second of a reload was probed because of the reload.
    '    health_check: { type: http, interval: 5s, timeout: 500ms, failure_threshold: 1, success_threshold: 1 }',
    `    servers: [${list.map((b) => `{ address: ${b.address}, port: ${b.port} }`).join(', ')}]`,
    'domains:',
    '  - { name: app.example.test, regions: [pool], max_answers: 4 }',
  ];
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': region([down, up]) }, 0o600);
  const { overwatch, reloader, logs } = await startInProcess(t, join(dir, 'main.yaml'));
  assert.deepEqual(await addressesOf(overwatch.port), [up.address], 'the first round found one server down');

  await writeTree(dir, { 'conf.d/app.yaml': region([down, up, added]) }, 0o600);
  const outcome = await reloader.request();
  assert.equal(outcome.result, 'success', outcome.message);
  // Kept: right after the swap the up server is still answered and the down one still is not.
  const afterSwap = await addressesOf(overwatch.port);
  assert.ok(afterSwap.includes(up.address), `the healthy server stays healthy: ${afterSwap.join(', ')}`);
  assert.ok(!afterSwap.includes(down.address), `the down server stays down: ${afterSwap.join(', ')}`);
  // Added: probed at once, long before its 5 s interval, and answered once healthy.
  const addedAt = Date.now();
  while (!(await addressesOf(overwatch.port)).includes(added.address)) {
    assert.ok(Date.now() - addedAt < 1000, `the added server was not checked and answered within 1 s (requests: ${added.requests})`);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(await addressesOf(overwatch.port), [up.address, added.address].sort());

  // Removed: the server is no longer answered or probed.
  await writeTree(dir, { 'conf.d/app.yaml': region([down, added]) }, 0o600);
  assert.equal((await reloader.request()).result, 'success');
  assert.deepEqual(await addressesOf(overwatch.port), [added.address]);
  const checked = overwatch.healthStatus().flatMap((s) => s.servers.map((server) => server.label));
  assert.ok(checked.some((name) => name.endsWith(`${added.address}:${added.port}`)), checked.join(', '));
  assert.ok(!checked.some((name) => name.endsWith(`${up.address}:${up.port}`)), `the removed server is no longer checked: ${checked.join(', ')}`);

  // A failed reload is counted and logged with every problem; the last success time is the one before it.
  await writeTree(dir, { 'conf.d/app.yaml': [...region([down, added]), 'dns: { default_ttl: soon }'] }, 0o600);
  const failed = await reloader.request();
  assert.equal(failed.result, 'failure');
  assert.equal(failed.problems[0]?.path, 'dns.default_ttl');
  assert.deepEqual(reloader.reloads, { success: 2, failure: 1 });
  assert.deepEqual(Object.keys(reloader.reloads), [...RELOAD_RESULTS]);
  assert.equal(reloader.lastSuccessMs, 1_700_000_002_000, 'the time of the second success, from the injected clock');
  const failLog = logs.find((l) => l.includes('reload failed'));
  assert.ok(failLog?.includes('conf.d/app.yaml:7:21: dns.default_ttl: \\"soon\\" is not an integer'), failLog);
  assert.deepEqual(await addressesOf(overwatch.port), [added.address], 'the last good config still serves');
});

test('a reload that changes what a check does keeps each server answered with its verdict and its status_since until the new check has a result', posixOnly, async (t) => {
  const up = await httpBackend(t, 200);
  const down = await httpBackend(t, 500);
  const region = (path: string): string[] => [
    'regions:',
    '  - name: pool',
    `    health_check: { type: http, path: ${path}, interval: 5s, timeout: 2s, failure_threshold: 1, success_threshold: 1 }`,
    `    servers: [{ address: ${up.address}, port: ${up.port} }, { address: ${down.address}, port: ${down.port} }]`,
    'domains:',
    '  - { name: app.example.test, regions: [pool], max_answers: 4 }',
  ];
  const dir = await configTree(t, { 'main.yaml': MAIN, 'conf.d/app.yaml': region('/health') }, 0o600);
  const { overwatch, reloader } = await startInProcess(t, join(dir, 'main.yaml'));
  const rowOf = (b: { address: string }) => overwatch.servers().find((s) => s.address === b.address);
  const before = { up: rowOf(up), down: rowOf(down) };
  assert.deepEqual([before.up?.status, before.down?.status], ['healthy', 'unhealthy']);
  assert.ok(before.up?.status_since !== null && before.down?.status_since !== null);

  // The new check's first answers are held back: until they come, the old verdicts stand.
  up.delayMs = 1500;
  down.delayMs = 1500;
  await writeTree(dir, { 'conf.d/app.yaml': region('/ready') }, 0o600);
  const outcome = await reloader.request();
  assert.equal(outcome.result, 'success', outcome.message);
  assert.deepEqual(await addressesOf(overwatch.port), [up.address], 'the healthy server is still answered, the failing one still is not');
  for (const [name, b] of [['up', up], ['down', down]] as const) {
    const row = rowOf(b);
    assert.equal(row?.status, before[name]?.status, `${name}: status kept`);
    assert.equal(row?.status_since, before[name]?.status_since, `${name}: a known status always says since when (${JSON.stringify(row)})`);
  }
  assert.deepEqual(overwatch.healthStatus().map((s) => s.state).sort(), ['healthy', 'unhealthy']);

  // The new check's first result decides alone: the failing server's new path answers 200.
  down.status = 200;
  const changedAt = Date.now();
  while (rowOf(down)?.status !== 'healthy') {
    assert.ok(Date.now() - changedAt < 5000, `the new check's first result did not decide: ${JSON.stringify(rowOf(down))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.notEqual(rowOf(down)?.status_since, before.down?.status_since, 'the verdict changed: status_since moves');
  assert.equal(rowOf(up)?.status_since, before.up?.status_since, 'the healthy server never left healthy');
});

/**
 * A self-signed certificate with a 512-bit RSA key, and the key (PEM): both
 * parse and belong together, but OpenSSL refuses to build a TLS context from
 * them ("ee key too small").
 */
async function weakCertificate(): Promise<{ cert: string; key: string }> {
  x509.cryptoProvider.set(globalThis.crypto);
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 512 };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86400_000),
    signingAlgorithm: alg,
    keys,
  });
  return { cert: cert.toString('pem'), key: x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY') };
}

test('a reload whose api.tls certificate the TLS stack refuses (a 512-bit RSA key) is refused whole: the previous config keeps serving DNS, and the outcome says so truthfully', posixOnly, async (t) => {
  const certs = await testCertificates();
  const api = ['api: { enabled: true, address: "127.0.0.1:0", tls: { cert_file: api.pem, key_file: api.key } }'];
  const dir = await configTree(t, { 'main.yaml': [...MAIN, ...api], 'conf.d/app.yaml': generation(OLD.prefix, OLD.ttl), 'api.pem': certs.leafPem, 'api.key': certs.leafKeyPem }, 0o600);
  const server = await startOpengslb(t, join(dir, 'main.yaml'));
  // A new DNS config and, renewed in place, a certificate that parses and
  // matches its key but that no TLS context can be built from.
  const weak = await weakCertificate();
  await writeTree(dir, { 'conf.d/app.yaml': generation(NEW.prefix, NEW.ttl), 'api.pem': weak.cert, 'api.key': weak.key }, 0o600);
  const from = server.out.lines.length;
  server.child.kill('SIGHUP');
  const line = await server.out.waitFor(/reload (succeeded|failed|refused)/, from);
  const ttl = (await ask(server.port, 'app.example.test', 'A')).answers?.map((a) => (a as { ttl?: number }).ttl);
  // Before the fix the overwatch swapped in the new snapshot, then the API
  // threw building its TLS context: the reload was logged as "refused; still
  // serving the previous config" while DNS answered from the new one.
  assert.deepEqual(ttl, [OLD.ttl, OLD.ttl, OLD.ttl, OLD.ttl], `DNS must still answer from the previous config after: ${line}`);
  assert.match(line, /reload failed; still serving the previous config/);
  assert.match(line, /api\.tls\.(cert_file|key_file)/, 'the problem names the key');
  assert.match(line, /too small|TLS/, 'and says what is wrong');
});
