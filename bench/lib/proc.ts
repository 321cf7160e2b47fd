// Bench only, cold. What /proc says about a process (CPU time, resident
// memory) and what the machine is, for the results file. Linux only; every
// reader returns null elsewhere.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

/** Clock ticks per second of /proc/<pid>/stat's CPU fields. */
export const CLOCK_TICKS_PER_SEC = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

function statFields(path: string): string[] | null {
  try {
    const stat = fs.readFileSync(path, 'utf8');
    // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Reads utime+stime of a process (all its threads), in clock ticks; null off Linux or when it is gone. */
export function readProcTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  const f = statFields(`/proc/${pid}/stat`);
  return f === null ? null : Number(f[11]) + Number(f[12]);
}

/** Sums readProcTicks over several processes (a server and its helpers, say); a process that is gone counts 0. */
export function readProcsTicks(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += readProcTicks(pid) ?? 0;
  return sum;
}

/**
 * Reads utime+stime per thread of a process, summed by thread name (comm:
 * "dns-0" for a DNS worker, "node"/"MainThread" for the main thread,
 * "V8Worker" for GC helpers…), in clock ticks; null when unreadable.
 */
export function readThreadTicks(pid: number | undefined): Map<string, number> | null {
  if (pid === undefined) return null;
  const out = new Map<string, number>();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(comm, (out.get(comm) ?? 0) + Number(f[11]) + Number(f[12]));
    }
  } catch {
    // Not Linux, or a thread ended while we read: no per-thread figures.
    return null;
  }
  return out;
}

/** Converts two readThreadTicks() snapshots to % of one core per thread name, leaving out idle ones. */
export function threadCpuPct(t0: Map<string, number> | null, t1: Map<string, number> | null, seconds: number): Record<string, number> | null {
  if (t0 === null || t1 === null || seconds <= 0) return null;
  const out: Record<string, number> = {};
  for (const [name, ticks] of t1) {
    const pct = Math.round(((ticks - (t0.get(name) ?? 0)) / CLOCK_TICKS_PER_SEC / seconds) * 1000) / 10;
    if (pct >= 0.5) out[name] = pct;
  }
  return out;
}

/** Machine-wide CPU ticks from /proc/stat: busy (user, nice, system, irq, softirq, steal) and softirq alone; zeros when unreadable. */
export function readMachineTicks(): { busy: number; softirq: number } {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { busy: f[0] + f[1] + f[2] + f[5] + f[6] + f[7], softirq: f[6] };
  } catch {
    return { busy: 0, softirq: 0 };
  }
}

/** Reads cutime+cstime of this process: CPU of the children it has reaped, in ticks. */
export function readReapedChildTicks(): number | null {
  const f = statFields('/proc/self/stat');
  return f === null ? null : Number(f[13]) + Number(f[14]);
}

/** Reads VmRSS and VmHWM (peak RSS) of a process in bytes. */
export function readRss(pid: number | undefined): { rssBytes: number; peakRssBytes: number } | null {
  if (pid === undefined) return null;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m === null ? 0 : Number(m[1]) * 1024;
    };
    return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** Converts a tick delta over `seconds` of wall time to % of one core (one decimal); null when unknown. */
export function cpuPct(ticks0: number | null, ticks1: number | null, seconds: number): number | null {
  if (ticks0 === null || ticks1 === null || seconds <= 0) return null;
  return Math.round(((ticks1 - ticks0) / CLOCK_TICKS_PER_SEC / seconds) * 1000) / 10;
}

/** The 1-minute load average and the busiest other processes, to say whether the machine was quiet. */
export function describeLoad(): { loadAvg1: number; loadAvg5: number; busiest: string[] } {
  const [l1, l5] = os.loadavg();
  const r = spawnSync('ps', ['-eo', 'pcpu,comm', '--sort=-pcpu', '--no-headers'], { encoding: 'utf8', timeout: 5_000 });
  const busiest = (r.stdout ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && Number(l.split(/\s+/)[0]) >= 5)
    .slice(0, 5);
  return { loadAvg1: Math.round(l1 * 100) / 100, loadAvg5: Math.round(l5 * 100) / 100, busiest };
}

/** Describes the machine and the tools for the results file. */
export function describeMachine(extra: Record<string, string | null>): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    nproc: os.availableParallelism(),
    totalMemoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    hostname: os.hostname(),
    node: process.version,
    v8: process.versions.v8,
    ...extra,
  };
}
