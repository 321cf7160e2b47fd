// Any thread, cold path. Exponential backoff with jitter for retrying
// something that is away (an overwatch that is down, a peer restarting).

/** Backoff limits: the first delay, and the cap the doubling stops at. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/**
 * Returns the delay before retry number `attempt` (0 for the first retry):
 * initialMs · 2^attempt capped at maxMs, then scaled into [50 %, 100 %] of that
 * by `random` (a value in [0, 1)), so many clients that failed together do
 * not retry together. Never below 1 ms.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(exp / 2 + (exp / 2) * random()));
}
