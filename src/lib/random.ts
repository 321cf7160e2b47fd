// Any thread, cold path. A small seeded PRNG for reproducible tests and
// benchmarks (mutation runs, query files). Not for anything secret.

/** Returns mulberry32 seeded with `seed`: a 32-bit-state generator of floats in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
