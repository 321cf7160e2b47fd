// Cold path, main thread. Parses Go-style duration strings ("500ms", "1h30m")
// as the Go original's config files write them.

/** Nanoseconds per unit, as Go's time.ParseDuration knows them (no days or weeks). */
const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const NS_PER_MS = 1_000_000n;

/** One `<number><unit>` piece; the number may have a fraction, as in Go ("1.5h"). */
const PIECE = /(\d*)(?:\.(\d*))?([a-zµμ]+)/y;

/** The result of parsing a duration: whole milliseconds, or what is wrong with the text. */
export type DurationResult = { readonly ms: number } | { readonly error: string };

/**
 * Parses a Go duration string into whole milliseconds. Accepts a sequence of
 * `<number><unit>` pieces with units ns, us/µs, ms, s, m, h, and the bare
 * string "0" (Go accepts it too). Rejects signs, missing units, unknown units
 * (including `d` and `w`, which Go lacks) and values finer than 1 ms (a
 * fraction below 1 ns too, which Go would truncate). Never throws.
 */
export function parseDuration(text: string): DurationResult {
  const expected = 'expected a duration string with a unit such as "500ms", "30s", "5m", "1h30m" or "168h"';
  if (text === '0') return { ms: 0 };
  if (text === '') return { error: `is empty, ${expected}` };
  if (/^[+-]/.test(text)) return { error: `${JSON.stringify(text)} has a sign, ${expected} (durations are never negative)` };
  if (/^\d+(\.\d*)?$/.test(text)) return { error: `${JSON.stringify(text)} has no unit, ${expected}` };
  let totalNs = 0n;
  PIECE.lastIndex = 0;
  while (PIECE.lastIndex < text.length) {
    const at = PIECE.lastIndex;
    const m = PIECE.exec(text);
    if (m === null || m.index !== at) return { error: `${JSON.stringify(text)} is not a duration, ${expected}` };
    const [, whole = '', frac = '', unit = ''] = m;
    if (whole === '' && frac === '') return { error: `${JSON.stringify(text)} is not a duration, ${expected}` };
    const unitNs = UNIT_NS[unit];
    if (unitNs === undefined) {
      const hint = unit === 'd' || unit === 'w' ? ' (there are no day or week units: write 24h or 168h)' : '';
      return { error: `${JSON.stringify(text)} has the unknown unit "${unit}"${hint}, ${expected}` };
    }
    // Exact integer arithmetic, as Go does: "0.1s" is exactly 100 ms.
    let ns = BigInt(whole === '' ? '0' : whole) * unitNs;
    if (frac !== '') {
      const scaled = BigInt(frac) * unitNs;
      const scale = 10n ** BigInt(frac.length);
      // Go truncates digits below 1 ns ("0.5ns" is 0): refused, as a value the file cannot mean.
      if (scaled % scale !== 0n) return { error: `${JSON.stringify(text)} is finer than a nanosecond, expected a whole number of milliseconds` };
      ns += scaled / scale;
    }
    totalNs += ns;
  }
  if (totalNs % NS_PER_MS !== 0n) {
    return { error: `${JSON.stringify(text)} is finer than a millisecond, expected a whole number of milliseconds` };
  }
  const ms = totalNs / NS_PER_MS;
  if (ms > BigInt(Number.MAX_SAFE_INTEGER)) return { error: `${JSON.stringify(text)} is too long, ${expected}` };
  return { ms: Number(ms) };
}

/** Formats milliseconds as the shortest Go-style duration string ("90000" → "1m30s"); used in messages and docs. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}
