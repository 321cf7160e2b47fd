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
//                          (UNMEASURED_* for a server nothing measures)
//   then 1 word per slot   last up: seconds since LAST_UP_EPOCH_SEC of the last
//                          check that found the server healthy (0 = never)

export const LIVE_EPOCH = 0;
export const LIVE_CAPACITY = 1;
export const LIVE_HEALTH_BASE = 2;

/** No verdict yet: never answered (the health-check issue waits for the first round before serving). */
export const HEALTH_UNKNOWN = 0;
export const HEALTH_HEALTHY = 1;
export const HEALTH_UNHEALTHY = 2;
/**
 * An operator override took the server out (member words only): never
 * answered, not even by the fail-open when_all_down modes (last_healthy, all),
 * since a drain is an explicit "do not send traffic here".
 */
export const HEALTH_DRAINED = 3;

/** Last-up times count seconds from 2020-01-01T00:00:00Z, so an Int32 lasts until 2088. */
export const LAST_UP_EPOCH_SEC = 1577836800;

/**
 * The latency words of a server no check of ours measures (health_check type
 * none, an agent's backend the overwatch does not validate): the EMA reads as
 * slower than any max_latency_ms and the sample count as enough for any
 * min_samples, so the latency policy ranks it after every measured server
 * instead of waiting for samples it will never get, with no test of its own
 * on the workers' path. Written by the main thread at each publish
 * (markMeasured in src/overwatch/check-targets.ts); readers that show a
 * latency treat the pair as "not measured".
 */
export const UNMEASURED_EMA_US = 0x7fffffff;
export const UNMEASURED_SAMPLES = 0x7fffffff;

/** Is a latency sample count the UNMEASURED_SAMPLES mark (a server nothing measures)? */
export function isUnmeasured(samples: number): boolean {
  return samples === UNMEASURED_SAMPLES;
}

/** Computes the word index of a slot's latency EMA (µs); the sample count is the next word. */
export function latencyWord(capacity: number, slot: number): number {
  return LIVE_HEALTH_BASE + capacity + slot * 2;
}

/** Converts a last-up word to epoch milliseconds; 0 (never up) stays 0. */
export function lastUpMs(word: number): number {
  return word <= 0 ? 0 : (word + LAST_UP_EPOCH_SEC) * 1000;
}

/** Computes the word index of a slot's last-up time. */
export function lastUpWord(capacity: number, slot: number): number {
  return LIVE_HEALTH_BASE + capacity * 3 + slot;
}

/** Allocates a live-slot buffer for `capacity` servers, every slot HEALTH_UNKNOWN. */
export function createLiveSlots(capacity: number): Int32Array {
  const words = LIVE_HEALTH_BASE + capacity * 4;
  const slots = new Int32Array(new SharedArrayBuffer(words * 4));
  slots[LIVE_CAPACITY] = capacity;
  return slots;
}

/** Copies every slot's health, latency and last-up into a new, larger buffer; the epoch moves on by one. Main thread. */
export function growLiveSlots(old: Int32Array, capacity: number): Int32Array {
  const oldCap = old[LIVE_CAPACITY];
  if (capacity < oldCap) throw new RangeError(`live slots cannot shrink from ${oldCap} to ${capacity}`);
  const next = createLiveSlots(capacity);
  for (let s = 0; s < oldCap; s++) {
    next[LIVE_HEALTH_BASE + s] = Atomics.load(old, LIVE_HEALTH_BASE + s);
    next[latencyWord(capacity, s)] = Atomics.load(old, latencyWord(oldCap, s));
    next[latencyWord(capacity, s) + 1] = Atomics.load(old, latencyWord(oldCap, s) + 1);
    next[lastUpWord(capacity, s)] = Atomics.load(old, lastUpWord(oldCap, s));
  }
  next[LIVE_EPOCH] = Atomics.load(old, LIVE_EPOCH) + 1;
  return next;
}

/** Sets a slot's health without bumping the epoch; call bumpEpoch() after a batch. Main thread only. */
export function storeHealth(slots: Int32Array, slot: number, state: number): void {
  const capacity = slots[LIVE_CAPACITY];
  if (slot < 0 || slot >= capacity) throw new RangeError(`health slot ${slot} is outside 0..${capacity - 1}`);
  Atomics.store(slots, LIVE_HEALTH_BASE + slot, state);
}

/** Moves the epoch on so every worker recomputes its healthy lists on its next query. Main thread only. */
export function bumpEpoch(slots: Int32Array): void {
  Atomics.add(slots, LIVE_EPOCH, 1);
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

/** Records when a slot was last seen healthy (unix seconds). Main thread only. */
export function writeLastUp(slots: Int32Array, slot: number, unixSec: number): void {
  Atomics.store(slots, lastUpWord(slots[LIVE_CAPACITY], slot), Math.max(0, unixSec - LAST_UP_EPOCH_SEC));
}

/** Records a latency EMA (microseconds) and sample count for a slot. Main thread only. */
export function writeLatency(slots: Int32Array, slot: number, emaMicros: number, samples: number): void {
  const word = latencyWord(slots[LIVE_CAPACITY], slot);
  Atomics.store(slots, word, emaMicros);
  Atomics.store(slots, word + 1, samples);
}
