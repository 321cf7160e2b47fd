// Any thread. Facts about time values that more than one module checks.

/** The latest epoch milliseconds a Date can hold (ECMA-262 §21.4.1.1): past it, toISOString() throws. */
export const MAX_DATE_MS = 8.64e15;
