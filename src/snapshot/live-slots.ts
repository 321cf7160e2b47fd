// Any thread. Per-server state that changes without a snapshot rebuild: health
// (and, later, operator overrides) and the latency EMA. One SharedArrayBuffer of
// Int32 words; the main thread writes with Atomics.store, workers read with
// Atomics.load. Layout:
//
//   word 0                 HEALTH_EPOCH: bumped after every health write, so a
//                          worker can cache per-record healthy lists and
//                          recompute only when something changed
//   word 1                 CAPACITY (number of server slots)
//   words 2 .. 2+cap       health state per server slot (HEALTH_*)
//   then 2 words per slot  latency: EMA in microseconds, sample count

export const LIVE_EPOCH = 0;
export const LIVE_CAPACITY = 1;
export const LIVE_HEALTH_BASE = 2;

/** No verdict yet: never answered (the health-check issue waits for the first round before serving). */
export const HEALTH_UNKNOWN = 0;
export const HEALTH_HEALTHY = 1;
export const HEALTH_UNHEALTHY = 2;

/** Computes the word index of a slot's latency EMA (µs); the sample count is the next word. */
export function latencyWord(capacity: number, slot: number): number {
  return LIVE_HEALTH_BASE + capacity + slot * 2;
}

/** Allocates a live-slot buffer for `capacity` servers, every slot HEALTH_UNKNOWN. */
export function createLiveSlots(capacity: number): Int32Array {
  const words = LIVE_HEALTH_BASE + capacity * 3;
  const slots = new Int32Array(new SharedArrayBuffer(words * 4));
  slots[LIVE_CAPACITY] = capacity;
  return slots;
}

/**
 * Sets a server slot's health and bumps the epoch so every worker notices on
 * its next query. Main thread only. Throws RangeError on a slot out of range.
 */
export function writeHealth(slots: Int32Array, slot: number, state: number): void {
  const capacity = slots[LIVE_CAPACITY];
  if (slot < 0 || slot >= capacity) throw new RangeError(`health slot ${slot} is outside 0..${capacity - 1}`);
  Atomics.store(slots, LIVE_HEALTH_BASE + slot, state);
  Atomics.add(slots, LIVE_EPOCH, 1);
}

/** Reads a server slot's health state (HEALTH_*). Worker-safe, allocation-free. */
export function readHealth(slots: Int32Array, slot: number): number {
  return Atomics.load(slots, LIVE_HEALTH_BASE + slot);
}

/** Records a latency EMA (microseconds) and sample count for a slot. Main thread only. */
export function writeLatency(slots: Int32Array, slot: number, emaMicros: number, samples: number): void {
  const word = latencyWord(slots[LIVE_CAPACITY], slot);
  Atomics.store(slots, word, emaMicros);
  Atomics.store(slots, word + 1, samples);
}
