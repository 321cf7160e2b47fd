// Main thread, cold path. Ends overrides that carry an end time: one timer,
// armed for the earliest end among the registry's overrides, which at that
// instant removes every override whose end has passed, rewrites the member
// words they covered in one batch (one epoch bump, so DNS follows the health
// checks again from the next query), logs each one once, counts it, and
// removes it from the state store.
//
//   set/clear/start ─▶ schedule() ─▶ setTimeout(min(earliest end − now, 1 s))
//                                          │ fires: re-reads the wall clock
//                                          ▼
//   registry.deleteOverride (each due) ─▶ fanout.applyOverrides (all, one bump) ─▶ log + count ─▶ forget (state store)
//                                          │
//                                          ▼ schedule() again
//
// One rule decides whether an override is in force: it is while the registry
// holds it. DNS (the member words), the API and explain all read the
// registry (Registry.overrideFor), so they never disagree; this module is the
// one place an end is compared with the clock. The end is a wall-clock time
// (persisted, shared over the bus), and setTimeout runs on a monotonic clock,
// so the timer never sleeps longer than STEP_MS: after a wall-clock step
// (NTP) either way, the override ends within about a second of the wall
// clock reaching its end.

import type { Logger } from '../log/logger.ts';
import { describeTarget, type Override, type OverrideTarget } from '../registry/overrides.ts';
import type { Registry } from '../registry/registry.ts';

/** The timer's longest sleep: how late an end is honoured after the wall clock jumps forward past it. */
export const STEP_MS = 1_000;

export interface ExpiryOptions {
  readonly registry: Registry;
  /**
   * Removes an ended override from the state store. The overwatch runs it
   * after the override writes queued before it, and skips it when a new
   * override of the same target was set meanwhile.
   */
  readonly forget: (target: OverrideTarget) => Promise<void>;
  /** Rewrites the member words `targets` cover, with one epoch bump for them all (HealthFanout.applyOverrides). */
  readonly apply: (targets: readonly OverrideTarget[]) => void;
  readonly logger: Logger;
  /** The wall clock, epoch ms; Date.now when absent (tests inject a clock that jumps). */
  readonly now?: () => number;
}

/** Ends overrides at their end time; see the module comment. */
export class OverrideExpiry {
  readonly #opts: ExpiryOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #expired = 0;
  #stopped = false;

  constructor(opts: ExpiryOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Overrides ended since start, including those found past their end at start-up: opengslb_overwatch_overrides_expired_total. */
  get expired(): number {
    return this.#expired;
  }

  /** Arms the timer for the earliest end among the registry's overrides (or disarms it when none has one). Call after every change. */
  schedule(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#stopped) return;
    let earliest = Infinity;
    for (const o of this.#opts.registry.overrides()) if (o.expiresAtMs !== null && o.expiresAtMs < earliest) earliest = o.expiresAtMs;
    if (earliest === Infinity) return;
    const delay = Math.min(Math.max(0, earliest - this.#now()), STEP_MS);
    this.#timer = setTimeout(() => this.#fire(), delay);
    // The DNS sockets keep the process alive; this timer alone must not.
    this.#timer.unref();
  }

  /**
   * Removes every override past its end now and re-applies what it covered.
   * Returns them. Called by the timer, and once at start-up (restored
   * overrides that ended while the overwatch was stopped are dropped).
   */
  expireDue(): Override[] {
    const now = this.#now();
    const due = this.#opts.registry.overrides().filter((o) => o.expiresAtMs !== null && o.expiresAtMs <= now);
    const log = this.#opts.logger;
    if (due.length === 0) return due;
    // All out of the registry first, then one rewrite: each epoch bump makes every worker rebuild its healthy lists.
    for (const o of due) this.#opts.registry.deleteOverride(o.target);
    this.#opts.apply(due.map((o) => o.target));
    for (const o of due) {
      this.#expired++;
      log.info(
        {
          scope: o.target.scope,
          target: describeTarget(o.target),
          healthy: o.healthy,
          source: o.source,
          reason: o.reason,
          expiredAt: new Date(o.expiresAtMs as number).toISOString(),
        },
        'override expired; the health checks decide again',
      );
      // The store follows; a failed removal is harmless (an ended override is dropped at the next start) but worth a line.
      this.#opts.forget(o.target).catch((err: Error) => {
        log.error({ target: describeTarget(o.target), err: err.message }, 'could not remove the expired override from the state store; it is dropped at the next start');
      });
    }
    return due;
  }

  #fire(): void {
    this.#timer = null;
    this.expireDue();
    this.schedule();
  }

  /** Disarms the timer for good (overwatch stop). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
