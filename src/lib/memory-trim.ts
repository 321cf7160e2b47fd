// Main thread, cold: a timer. Every TRIM_INTERVAL_MS the overwatch asks the C
// library to give memory it holds freed back to the system (malloc_trim,
// through the native addon's trimMemory()).
//
// glibc returns a heap's top on its own, but not the free pages between
// chunks still in use. After a burst (thousands of agents registering:
// certificates parsed, messages read in 64 KiB chunks, pre-signing batches)
// those pages stay resident: with 5 000 agents × 3 backends
// (bench/agents-scale.ts) 20 MB of the overwatch's RSS was such pages, given
// back by one malloc_trim(0). A call walks the free lists and madvise()s whole
// free pages away: 0.9–1.8 ms there (measured in that bench), every 30 s.
// Without the addon (another platform, no build) or with another C library
// nothing runs.

import { loadUdpBatch } from '../../native/udp-batch.ts';

/** How often freed memory is given back. */
export const TRIM_INTERVAL_MS = 30_000;

/** Starts the timer (unref'd: it never keeps the process alive); returns what stops it. */
export function startMemoryTrim(intervalMs: number = TRIM_INTERVAL_MS): () => void {
  const { addon } = loadUdpBatch();
  const trim = addon?.trimMemory;
  if (typeof trim !== 'function') return () => undefined;
  const timer = setInterval(() => trim.call(addon), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
