// Crash safety of the state store: a real overwatch (child process) is
// SIGKILLed at a random moment 20–300 ms after its API starts taking writes,
// while overrides are being written through the API, over and over on one
// state directory (8 times in npm test, 100 with
// OPENGSLB_TEST_CRASH_KILLS=100). After every restart each override whose
// PUT was acknowledged (2xx received) is there, unless a PUT to the same
// target still in flight when it was sent (acknowledged or cut off by the
// kill) replaced it; and the store opens as it is (no repair step exists to
// hide a broken file: lmdb opens it or the start fails).
//
// What a SIGKILL proves: nothing acknowledged is lost when the process dies,
// so no write is acknowledged before lmdb has committed it. It cannot prove
// the fsync (the page cache outlives the process); lmdb resolves a write only
// once it is flushed (its default, not separateFlushed), which the store
// relies on.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { SERVER_ENV, SERVER_NODE_FLAGS } from '../../src/cli/runtime-flags.js';
import { SERVER } from '../helpers/child.ts';
import { ROOT } from '../helpers/markdown.ts';
import { posixOnly, tempDir } from '../helpers/config-files.ts';

// A hundred kills is the requirement; one start-and-kill round costs 1–2 s of
// two cores (Node's start, the TypeScript sources, a DNS worker), so a
// hundred do not fit the test suite's budget: npm test runs 8, and
// OPENGSLB_TEST_CRASH_KILLS=100 runs the full hundred, as CI does after npm
// test (.ci/run; docs/benchmarks.md has the last full run). Eight rounds do
// what twenty did: each kill lands with 3–4 PUTs in flight (72 cut off in 20
// rounds), and each restart opens a directory that earlier kills left. With
// the acknowledgement moved before the commit (Overwatch.setOverride not
// awaiting store.putOverride, tried on a copy), the kill that lost an
// acknowledged write was the 1st to the 4th in 6 runs of 6. The start is 93 %
// of a round (57.2 of 61.7 s for 20 at load average 8), so the count is the
// cost. Rare timings are the hundred's job.
const KILLS = Number(process.env.OPENGSLB_TEST_CRASH_KILLS ?? 8);
const SERVERS = 64;
const WRITERS = 4;
const address = (i: number): string => `192.0.2.${i + 1}`;

const CONFIG = `
dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }
regions:
  - name: eu
    servers: [${Array.from({ length: SERVERS }, (_, i) => `{ address: ${address(i)}, port: 80 }`).join(', ')}]
    health_check: { type: none }
domains:
  - { name: app.example.test, regions: [eu] }
api: { enabled: true, address: "127.0.0.1:0" }
overwatch:
  data_dir: ./state
  dnssec: { enabled: false, security_acknowledgment: "I understand that disabling DNSSEC removes cryptographic authentication of DNS responses and allows DNS spoofing attacks against my zones" }
logging: { level: info }
`;

/** One PUT: its target, the reason that names it, whether its 2xx arrived, and when it was sent and ended (2xx or cut off). */
interface Write {
  readonly address: string;
  readonly reason: string;
  readonly healthy: boolean;
  readonly sentAt: number;
  acked: boolean;
  endedAt: number;
}

interface Stored {
  readonly address: string;
  readonly reason: string;
  readonly healthy: boolean;
}

/** Starts the overwatch and resolves with its API base URL once it answers writes (the overwatch is running). */
async function start(file: string): Promise<{ child: ReturnType<typeof spawn>; base: string; exited: Promise<unknown>; output: () => string }> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, SERVER, '--config', file], { cwd: ROOT, env: { ...process.env, ...SERVER_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const deadline = Date.now() + 20_000;
  let base: string | null = null;
  while (Date.now() < deadline) {
    base ??= /"API listening"/.test(out) ? `http://${/"address":"(127\.0\.0\.1:\d+)"[^\n]*"API listening"/.exec(out)?.[1]}` : null;
    if (base !== null && /"OpenGSLB running"/.test(out)) return { child, base, exited, output: () => out };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGKILL');
  throw new Error(`the overwatch did not start:\n${out}`);
}

async function listOverrides(base: string): Promise<Stored[]> {
  const res = await fetch(`${base}/api/v1/overrides`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { overrides: { scope: string; service: string; address: string; reason: string; healthy: boolean }[] };
  return body.overrides.filter((o) => o.scope === 'domain').map((o) => ({ address: o.address, reason: o.reason, healthy: o.healthy }));
}

test(`acknowledged overrides survive ${KILLS} SIGKILLs at random moments while overrides are written, over one state directory`, { ...posixOnly, timeout: Math.max(240_000, KILLS * 12_000) }, async (t) => {
  const dir = await tempDir(t, 'opengslb-crash-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, CONFIG, { mode: 0o600 });
  // Every write ever made, per target, in the order they were sent.
  const history = new Map<string, Write[]>();
  let serial = 0;
  let acked = 0;
  let cutOff = 0;
  // Targets found holding a write sent before their last acknowledged one, which it overlapped.
  let overtaken = 0;
  const startedAt = Date.now();

  let current = await start(file);
  t.after(() => current.child.kill('SIGKILL'));
  for (let round = 0; round <= KILLS; round++) {
    // Check what the previous process acknowledged, as this one loaded it.
    const stored = new Map((await listOverrides(current.base)).map((o) => [o.address, o]));
    for (const [target, writes] of history) {
      const lastAcked = writes.findLastIndex((w) => w.acked);
      if (lastAcked < 0) continue;
      // What may be stored: the last acknowledged write, or any write still
      // in flight when it was sent. Two writers' PUTs to one target can
      // overlap and be committed in either order; one sent later (its 2xx
      // cut off by the kill) may have been committed too. A write that had
      // ended before the last acknowledged one was sent cannot be there.
      const since = writes[lastAcked].sentAt;
      const allowed = writes.filter((w) => w.endedAt > since).map((w) => w.reason);
      const got = stored.get(target);
      assert.ok(got !== undefined, `round ${round}: the acknowledged override of ${target} (${writes[lastAcked].reason}) is gone`);
      assert.ok(allowed.includes(got.reason), `round ${round}: ${target} holds "${got.reason}", expected one of ${allowed.join(', ')}`);
      const w = writes.find((x) => x.reason === got.reason)!;
      if (writes.indexOf(w) < lastAcked) overtaken++;
      assert.equal(got.healthy, w.healthy, `round ${round}: ${target} healthy`);
    }
    if (round === KILLS) break;

    // Writers PUT overrides on random targets until the kill, 20–300 ms from now.
    let alive = true;
    const killAfterMs = 20 + Math.floor(Math.random() * 280);
    const writers = Array.from({ length: WRITERS }, async () => {
      while (alive) {
        const target = address(Math.floor(Math.random() * SERVERS));
        const w: Write = { address: target, reason: `crash ${round} write ${serial++}`, healthy: Math.random() < 0.5, sentAt: performance.now(), acked: false, endedAt: Infinity };
        const list = history.get(target) ?? [];
        list.push(w);
        history.set(target, list);
        try {
          const res = await fetch(`${current.base}/api/v1/overrides/app.example.test/${target}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ healthy: w.healthy, reason: w.reason, source: 'crash-test' }),
          });
          await res.arrayBuffer();
          w.endedAt = performance.now();
          if (res.status >= 200 && res.status < 300) {
            w.acked = true;
            acked++;
          } else assert.fail(`PUT ${target} answered ${res.status}`);
        } catch (err) {
          w.endedAt = performance.now();
          if (alive) throw err;
          cutOff++;
          return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, killAfterMs));
    alive = false;
    current.child.kill('SIGKILL');
    await current.exited;
    const settled = await Promise.allSettled(writers);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    const next = await start(file).catch((err: Error) => {
      throw new Error(`round ${round + 1}: the overwatch did not start on the state directory a SIGKILL left: ${err.message}`);
    });
    assert.doesNotMatch(next.output(), /"level":"(warn|error)"[^\n]*(state|lmdb|mdb)/i, 'the store opened with a warning');
    current = next;
  }
  const seconds = (Date.now() - startedAt) / 1000;
  t.diagnostic(`${KILLS} kills in ${seconds.toFixed(1)} s: ${acked} writes acknowledged, ${cutOff} cut off by a kill, ${history.size} targets; ${overtaken} times a target held a write sent before its last acknowledged one, which overtook it`);
  assert.ok(acked >= KILLS, `only ${acked} writes were acknowledged in ${KILLS} rounds: the kills came before any write`);
  assert.ok(cutOff > 0, 'no kill ever cut a write off: the kills did not land while writes were in flight');
  current.child.kill('SIGTERM');
  await current.exited;
});
