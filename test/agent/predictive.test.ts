// Predictive health ("bleeding"): the signal rules on their own (duration,
// hysteresis, the error rate, /proc parsing on real files), then an agent and
// an overwatch in this process, talking over the real channel on loopback,
// with a stand-in load signal: held past bleed_duration it drains the backend
// (out of DNS, visible as draining with its reason); a brief spike does not.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { Agent } from '../../src/agent/agent.ts';
import { BleedSignal, cpuTimesOf, ErrorRate, memoryPercentOf, ProcSampler, type HostReading, type LoadSampler } from '../../src/agent/predictive.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import { httpBackend } from '../helpers/backends.ts';
import { ask } from '../helpers/dns-client.ts';
import { agentConfigFor, startAgentOverwatch } from '../helpers/agents.ts';

const signalCases: { name: string; readings: readonly (readonly [number, number])[]; expect: readonly boolean[] }[] = [
  { name: 'drains only once the signal held at or above the threshold for the whole duration', readings: [[0, 95], [1000, 95], [2000, 95]], expect: [false, false, true] },
  { name: 'does not drain on a brief spike', readings: [[0, 95], [1000, 50], [2000, 95], [3000, 50]], expect: [false, false, false, false] },
  { name: 'counts a reading exactly at the threshold as above it', readings: [[0, 90], [2000, 90]], expect: [false, true] },
  { name: 'stays drained while the signal hovers between the lower mark (81) and the threshold', readings: [[0, 95], [2000, 95], [3000, 85], [6000, 82], [9000, 89]], expect: [false, true, true, true, true] },
  { name: 'undrains once the signal stayed below the lower mark for the duration', readings: [[0, 95], [2000, 95], [3000, 70], [4000, 70], [5000, 70]], expect: [false, true, true, true, false] },
  // The wall clock stepped back an hour (NTP, an operator): the held signal takes its duration again, not an hour more.
  { name: 'restarts its clock when the clock steps back, instead of waiting until it is past the first reading again', readings: [[3_600_000, 95], [0, 95], [1000, 95], [2000, 95]], expect: [false, false, false, true] },
  { name: 'undrains within its duration after the clock stepped back while recovering', readings: [[0, 95], [2000, 95], [3_603_000, 70], [3000, 70], [5000, 70]], expect: [false, true, true, true, false] },
  { name: 'restarts the recovery clock when the signal rises above the lower mark again', readings: [[0, 95], [2000, 95], [3000, 70], [4000, 85], [5000, 70], [6000, 70], [7000, 70]], expect: [false, true, true, true, true, true, false] },
];

for (const c of signalCases) {
  test(`a bleed signal (threshold 90, duration 2 s) ${c.name}`, () => {
    const s = new BleedSignal(90, 2000);
    assert.deepEqual(c.readings.map(([at, v]) => (s.update(v, at), s.bleeding)), c.expect);
  });
}

test('the error rate is failed checks per minute over the window, and forgets failures older than it', () => {
  const rate = new ErrorRate(30_000);
  for (const at of [0, 1000, 2000]) rate.fail(at);
  assert.equal(rate.perMinute(10_000), 6, '3 failures in a 30 s window is 6 a minute');
  assert.equal(rate.perMinute(31_500), 2, 'the first two left the window');
  assert.equal(rate.perMinute(60_000), 0);
});

test('after the clock steps back, failures stamped later than now leave the error rate instead of holding a drain until the clock is past them', () => {
  const rate = new ErrorRate(30_000);
  for (const at of [3_600_000, 3_601_000, 3_602_000]) rate.fail(at);
  assert.equal(rate.perMinute(3_602_000), 6);
  // The clock went back an hour: those failures cannot be placed in the window ending now.
  rate.fail(1000);
  assert.equal(rate.perMinute(2000), 2, 'only the failure after the step is counted');
  rate.fail(3000);
  assert.equal(rate.perMinute(4000), 4);
  assert.equal(rate.perMinute(40_000), 0);
});

test('reads CPU from /proc/stat deltas and memory from MemAvailable, on real files', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'opengslb-proc-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const meminfo = 'MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n';
  await writeFile(join(root, 'meminfo'), meminfo);
  await writeFile(join(root, 'stat'), 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n');
  const sampler = new ProcSampler(root);
  assert.deepEqual(await sampler.sample(), { cpuPercent: null, memoryPercent: 75 }, 'the first CPU reading has nothing to compare with');
  await writeFile(join(root, 'stat'), 'cpu  250 0 250 900 100 0 0 0 0 0\n');
  assert.deepEqual(await sampler.sample(), { cpuPercent: 60, memoryPercent: 75 }, '300 busy of 500 jiffies');
  assert.equal(memoryPercentOf('MemTotal: 100 kB\n'), null);
  assert.equal(cpuTimesOf('intr 1 2 3\n'), null);
  assert.deepEqual(await new ProcSampler(join(root, 'missing')).sample(), { cpuPercent: null, memoryPercent: null }, 'a host without /proc gives no signal');
});

/** A load signal the test sets; every reading is announced, so the test can wait for readings instead of sleeping. */
class StandInSampler implements LoadSampler {
  cpu = 10;
  readings = 0;
  readonly #waiters: { n: number; resolve: () => void }[] = [];

  async sample(): Promise<HostReading> {
    this.readings++;
    for (const w of [...this.#waiters]) {
      if (this.readings >= w.n) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    return { cpuPercent: this.cpu, memoryPercent: 20 };
  }

  /** Resolves after `count` more readings. */
  after(count: number): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ n: this.readings + count, resolve }));
  }
}

/** A logger whose lines a test can wait for. */
function watchedLogger(): { logger: Logger; waitFor(re: RegExp): Promise<string>; lines: string[] } {
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        lines.push(line);
        for (const w of [...waiters]) {
          if (w.re.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
      done();
    },
  });
  return {
    logger: createLogger({ level: 'info', format: 'json' }, stream),
    lines,
    waitFor: (re) => {
      const hit = lines.find((l) => re.test(l));
      return hit !== undefined ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ re, resolve }));
    },
  };
}

async function agentAndOverwatch(t: TestContext, sampler: StandInSampler) {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-predictive-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const token = 'predictive-token-0123456789';
  const web = await httpBackend(t);
  const owLog = watchedLogger();
  const started = await startAgentOverwatch(t, dir, token, owLog.logger);
  const ow = started.overwatch;
  const agentLog = watchedLogger();
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, [
    '  heartbeat: { interval: 1s }',
    // bleed_duration under one check_interval (its minimum, 1 s): a held signal drains at its second reading,
    // whatever the timer's jitter, and a spike of one reading is still told from it.
    '  predictive: { enabled: true, check_interval: 1s, cpu: { threshold: 80, bleed_duration: 500ms } }',
  ]), agentLog.logger, { version: 'test', sampler });
  t.after(() => agent.stop('test over', 1000));
  await owLog.waitFor(/"to":"healthy"/);
  // The registration's server reaches DNS with the next snapshot (after the registry's debounce).
  await ow.whenPublished();
  return { ow, agent, web, owLog, agentLog };
}

test('a load signal held past bleed_duration drains the backend: out of DNS, draining with its reason; a brief spike does not', async (t) => {
  const sampler = new StandInSampler();
  const { ow, agent, web, owLog, agentLog } = await agentAndOverwatch(t, sampler);
  const answered = async (): Promise<string> => {
    const reply = await ask(ow.port, 'app.example.test', 'A');
    return reply.rcode === 'NOERROR' ? ((reply.answers ?? [])[0] as { data: string }).data : reply.rcode ?? '';
  };
  assert.equal(await answered(), web.address);

  // A spike of one reading, then readings below: more than bleed_duration (500 ms) of readings, no drain.
  // (A wait for readings resolves before the agent judges the last one: of the two readings below, the
  // first, 1 s after the spike, is judged when it resolves.)
  sampler.cpu = 95;
  await sampler.after(1);
  sampler.cpu = 30;
  await sampler.after(2);
  assert.equal(agent.status().backends[0].drain, null);
  assert.ok(!agentLog.lines.some((l) => /backend draining/.test(l)), 'no drain logged');
  assert.equal(await answered(), web.address);

  // Held: drained once it stayed above for 500 ms, at the reading that saw it (readings are 1 s apart: the second).
  sampler.cpu = 95;
  const drained = await agentLog.waitFor(/backend draining/);
  assert.match(drained, /"reason":"cpu_threshold_exceeded"/);
  const out = await owLog.waitFor(/"to":"draining"/);
  assert.match(out, /drained by its agent: cpu_threshold_exceeded/);
  assert.equal(await answered(), 'SERVFAIL', 'the only backend is drained: out of answers');
  const row = ow.backends().find((b) => b.agent_id === agent.agentId);
  assert.equal(row?.authority, 'draining');
  assert.equal(row?.drain_reason, 'cpu_threshold_exceeded');

  // Hysteresis: back below the lower mark (72) for 500 ms, it returns.
  sampler.cpu = 30;
  await agentLog.waitFor(/backend no longer draining/);
  await owLog.waitFor(/"from":"draining","to":"healthy"/);
  assert.equal(await answered(), web.address);
  // Stopped before its overwatch (whose t.after hook, registered first, runs first), so the deregistration
  // is acked at once instead of waiting out the stop's deadline.
  await agent.stop('test over', 1000);
});

test('a forward step of the wall clock does not shorten bleed_duration: the signal is timed on the monotonic clock', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'opengslb-predictive-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const token = 'predictive-token-0123456789';
  const web = await httpBackend(t);
  const started = await startAgentOverwatch(t, dir, token, watchedLogger().logger);
  const sampler = new StandInSampler();
  sampler.cpu = 95;
  let aheadMs = 0;
  const agent = await Agent.start(agentConfigFor(dir, token, started, web, [
    '  predictive: { enabled: true, check_interval: 1s, cpu: { threshold: 80, bleed_duration: 1h } }',
  ]), watchedLogger().logger, { version: 'test', sampler, now: () => Date.now() + aheadMs });
  // Stamped two hours ahead, far past the overwatch's clock skew, the stop's deregistration is never acked:
  // a short stop deadline, not the 1 s the others wait (nothing here is about the stop).
  t.after(() => agent.stop('test over', 200));
  // The start took the first reading (held since then); one more on the right clock.
  await sampler.after(1);
  // NTP or an operator steps the wall clock two hours ahead: 2 s of a 1 h bleed_duration have passed, not 2 h.
  // (The second reading's wait resolves once the agent has judged the first reading after the step.)
  aheadMs = 2 * 3_600_000;
  await sampler.after(2);
  assert.equal(agent.status().backends[0].drain, null, 'held for seconds, not for its bleed_duration');
});
