// Any thread. Facts about time values that more than one module checks.

/** The latest epoch milliseconds a Date can hold (ECMA-262 §21.4.1.1): past it, toISOString() throws. */
export const MAX_DATE_MS = 8.64e15;

/**
 * Epoch ms of an RFC 3339 date-time that `pattern` matched (its groups: year,
 * month, day, hour), or NaN when it does not match or names no real time.
 * Date.parse alone rolls an impossible day over ("2030-02-30" is 2 March,
 * "04-31" is 1 May) and takes hour 24 (ECMAScript's end of day), so a typo
 * would name another day than the one written.
 */
export function parseCalendarTime(text: string, pattern: RegExp): number {
  const m = pattern.exec(text);
  if (m === null) return NaN;
  const [year, month, day, hour] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate(); // day 0 of the next month: the month's last day
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23) return NaN;
  return Date.parse(text);
}
