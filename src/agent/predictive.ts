// Main thread (agent), every predictive.check_interval. The "bleeding"
// signals: host CPU and memory (read from /proc), and each backend's error
// rate (its failed checks per minute). A signal drains only after it held at
// or above its threshold for its whole bleed_duration, and undrains only after
// it held below the lower mark (90 % of the threshold) for the same duration,
// so a host hovering at the threshold does not flap.
//
//   sampler.sample() ──► BleedSignal(cpu) ──┐
//                   └──► BleedSignal(mem) ──┼──► drain reason per backend (cpu > memory > error rate)
//   failed checks ──► ErrorRate(b) ──► BleedSignal(err b) ──┘

import { readFile } from 'node:fs/promises';
import type { PredictiveConfig } from '../config/types.ts';
import type { DrainReason } from '../gossip/messages.ts';

/** Share of the threshold below which a draining signal counts as recovered. */
export const RECOVERY_SHARE = 0.9;
/** Failed checks remembered per backend for the error rate; more in one window are counted as this many. */
const MAX_FAILURES_KEPT = 10_000;

/** One reading of the host's load; null fields are signals the host cannot give. */
export interface HostReading {
  /** Busy share of all CPUs since the previous reading, percent. */
  readonly cpuPercent: number | null;
  /** (MemTotal − MemAvailable) / MemTotal, percent. */
  readonly memoryPercent: number | null;
}

/** Where host load comes from; tests pass a stand-in. */
export interface LoadSampler {
  sample(): Promise<HostReading>;
}

/**
 * Reads /proc/stat (the aggregate `cpu` line) and /proc/meminfo (MemTotal,
 * MemAvailable). The first CPU reading has no earlier one to compare with and
 * gives null. On a host without these files both are null.
 */
export class ProcSampler implements LoadSampler {
  readonly #root: string;
  #lastBusy = -1;
  #lastTotal = -1;

  constructor(root = '/proc') {
    this.#root = root;
  }

  async sample(): Promise<HostReading> {
    const [stat, meminfo] = await Promise.all([readFile(`${this.#root}/stat`, 'utf8').catch(() => null), readFile(`${this.#root}/meminfo`, 'utf8').catch(() => null)]);
    return { cpuPercent: stat === null ? null : this.#cpu(stat), memoryPercent: meminfo === null ? null : memoryPercentOf(meminfo) };
  }

  #cpu(stat: string): number | null {
    const times = cpuTimesOf(stat);
    if (times === null) return null;
    const { busy, total } = times;
    const previous = this.#lastTotal;
    const dBusy = busy - this.#lastBusy;
    const dTotal = total - previous;
    this.#lastBusy = busy;
    this.#lastTotal = total;
    if (previous < 0 || dTotal <= 0) return null;
    return clampPercent((dBusy / dTotal) * 100);
  }
}

/** Parses the aggregate `cpu` line of /proc/stat: busy (all but idle and iowait) and total jiffies; null when absent. */
export function cpuTimesOf(stat: string): { readonly busy: number; readonly total: number } | null {
  const line = stat.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) return null;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  if (fields.length < 4 || fields.some((f) => !Number.isFinite(f))) return null;
  // user nice system idle iowait irq softirq steal (guest and guest_nice are already inside user and nice).
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = fields[3] + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Parses /proc/meminfo into the used share of memory, percent; null when MemTotal or MemAvailable is missing. */
export function memoryPercentOf(meminfo: string): number | null {
  const kb = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(meminfo);
    return m === null ? null : Number(m[1]);
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  if (total === null || available === null || total <= 0) return null;
  return clampPercent(((total - available) / total) * 100);
}

function clampPercent(v: number): number {
  return Math.min(100, Math.max(0, Math.round(v * 10) / 10));
}

/**
 * One signal with a duration and hysteresis: it starts bleeding after
 * holding at or above `threshold` for `durationMs`, and stops after holding
 * below RECOVERY_SHARE × threshold for `durationMs`. Readings in between
 * reset the clock that was running.
 */
export class BleedSignal {
  readonly threshold: number;
  readonly durationMs: number;
  bleeding = false;
  /** Since when the reading has been at or above the threshold (while not bleeding), or below the lower mark (while bleeding). */
  #since: number | null = null;

  constructor(threshold: number, durationMs: number) {
    this.threshold = threshold;
    this.durationMs = durationMs;
  }

  /** Takes one reading at `nowMs`; returns true when bleeding changed. A null reading changes nothing. */
  update(value: number | null, nowMs: number): boolean {
    if (value === null) return false;
    const crossing = this.bleeding ? value < this.threshold * RECOVERY_SHARE : value >= this.threshold;
    if (!crossing) {
      this.#since = null;
      return false;
    }
    // A wall clock that stepped back (NTP, an operator) restarts the clock at now: otherwise
    // the signal would wait for its duration plus the whole step (an hour's step, an hour).
    if (this.#since === null || nowMs < this.#since) this.#since = nowMs;
    if (nowMs - this.#since < this.durationMs) return false;
    this.bleeding = !this.bleeding;
    this.#since = null;
    return true;
  }
}

/** Failed checks of one backend per minute over a sliding window. */
export class ErrorRate {
  readonly #windowMs: number;
  readonly #failures: number[] = [];

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Records a failed check at `nowMs`. */
  fail(nowMs: number): void {
    this.#failures.push(nowMs);
    if (this.#failures.length > MAX_FAILURES_KEPT) this.#failures.shift();
  }

  /** Failed checks per minute in the window ending at `nowMs`. */
  perMinute(nowMs: number): number {
    const from = nowMs - this.#windowMs;
    let drop = 0;
    while (drop < this.#failures.length && this.#failures[drop] <= from) drop++;
    if (drop > 0) this.#failures.splice(0, drop);
    // Failures stamped after now: the wall clock stepped back. They cannot be placed in the
    // window, and kept they would hold a drain for as long as the step; they are forgotten.
    if (this.#failures.some((at) => at > nowMs)) {
      const placed = this.#failures.filter((at) => at <= nowMs);
      this.#failures.length = 0;
      this.#failures.push(...placed);
    }
    return Math.round((this.#failures.length / (this.#windowMs / 60_000)) * 100) / 100;
  }
}

/** What one evaluation found. */
export interface PredictiveReading {
  readonly cpuPercent: number | null;
  readonly memoryPercent: number | null;
  /** Per backend, in config order. */
  readonly errorRatePerMin: readonly number[];
  /** Per backend: why it drains, or null. */
  readonly drains: readonly (DrainReason | null)[];
}

/**
 * The agent's predictive health over `backendCount` backends. Feed failed
 * checks with fail(); call evaluate() every check_interval. Times are
 * monotonic ms (performance.now()): bleed_duration and the error-rate window
 * are durations, which a wall-clock step would shorten or stretch. With
 * predictive.enabled false it still reads the load (reported in heartbeats)
 * and never drains.
 */
export class Predictor {
  readonly #config: PredictiveConfig;
  readonly #sampler: LoadSampler;
  readonly #cpu: BleedSignal;
  readonly #memory: BleedSignal;
  readonly #errors: ErrorRate[];
  readonly #errorSignals: BleedSignal[];
  #last: PredictiveReading;

  constructor(config: PredictiveConfig, backendCount: number, sampler: LoadSampler) {
    this.#config = config;
    this.#sampler = sampler;
    this.#cpu = new BleedSignal(config.cpu.thresholdPercent, config.cpu.bleedDurationMs);
    this.#memory = new BleedSignal(config.memory.thresholdPercent, config.memory.bleedDurationMs);
    this.#errors = Array.from({ length: backendCount }, () => new ErrorRate(config.errorRate.windowMs));
    this.#errorSignals = Array.from({ length: backendCount }, () => new BleedSignal(config.errorRate.thresholdPerMin, config.errorRate.bleedDurationMs));
    this.#last = { cpuPercent: null, memoryPercent: null, errorRatePerMin: this.#errors.map(() => 0), drains: this.#errors.map(() => null) };
  }

  /** Records a failed check of backend `index`. */
  fail(index: number, nowMs: number): void {
    this.#errors[index]?.fail(nowMs);
  }

  /** The last evaluation. */
  get last(): PredictiveReading {
    return this.#last;
  }

  /** Reads the host and the error rates, moves every signal on, and returns the drains now. */
  async evaluate(nowMs: number): Promise<PredictiveReading> {
    const host = await this.#sampler.sample();
    this.#cpu.update(host.cpuPercent, nowMs);
    this.#memory.update(host.memoryPercent, nowMs);
    const rates = this.#errors.map((e) => e.perMinute(nowMs));
    rates.forEach((rate, i) => this.#errorSignals[i].update(rate, nowMs));
    const enabled = this.#config.enabled;
    const drains = rates.map((_, i): DrainReason | null => {
      if (!enabled) return null;
      if (this.#cpu.bleeding) return 'cpu_threshold_exceeded';
      if (this.#memory.bleeding) return 'memory_threshold_exceeded';
      if (this.#errorSignals[i].bleeding) return 'error_rate_threshold_exceeded';
      return null;
    });
    this.#last = { cpuPercent: host.cpuPercent, memoryPercent: host.memoryPercent, errorRatePerMin: rates, drains };
    return this.#last;
  }
}
