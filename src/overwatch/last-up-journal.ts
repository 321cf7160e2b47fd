// Main thread. Keeps the state store's last-up times in step with the live
// slots: every "seen healthy" time the checker writes is noted by server key,
// and the pending ones are written in one transaction every 30 s, when a
// server goes down (its time is then final) and at stop. Wired before the
// first health round, so that round's times are kept too.
//
// Pruning: servers come and go (agents' backends on short-lived addresses),
// and the store would keep every key ever seen healthy. With each timer tick,
// one bounded step (PRUNE_STEP keys, one transaction) walks the stored keys
// in order: a key whose server has left the registry is marked absent (the
// mark is stored, so a restart does not start its absence over), and removed
// once absent for LAST_UP_RETENTION_SEC; a server back before then keeps its
// time. A crash loses at most the step under way, which is redone.

import type { Logger } from '../log/logger.ts';
import type { ServerRecord } from '../registry/registry.ts';
import type { StateStore } from '../state/store.ts';

/** How often pending last-up times are written (and one pruning step taken). */
const FLUSH_MS = 30_000;

/**
 * How long the last-up time of a server absent from the registry is kept: 7
 * days. A last_healthy window is relative (seconds from the most recent
 * server of the domain), so no window bounds the age of a time that can still
 * matter; a week covers a backend taken out of the config and put back after
 * a maintenance, a rollback or a long weekend, and an agent away as long.
 * (docs/configuration.md, "State directory")
 */
export const LAST_UP_RETENTION_SEC = 7 * 24 * 3600;

/** Stored keys looked at per pruning step (one write transaction of at most this many entries). */
export const PRUNE_STEP = 1000;

export interface LastUpJournalOptions {
  /** Is this server key in the registry now? Without it, nothing is pruned. */
  readonly present?: (key: string) => boolean;
  /** Now, unix seconds (tests). */
  readonly nowSec?: () => number;
  readonly retentionSec?: number;
  readonly pruneStep?: number;
}

export class LastUpJournal {
  readonly #store: StateStore;
  readonly #logger: Logger;
  /** Server key per server slot of the served snapshot. */
  #keyOfSlot = new Map<number, string>();
  readonly #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();
  readonly #present: ((key: string) => boolean) | null;
  readonly #nowSec: () => number;
  readonly #retentionSec: number;
  readonly #pruneStep: number;
  /** Where the next pruning step starts (after this key; null: from the first). */
  #pruneAfter: string | null = null;
  #pruning: Promise<void> = Promise.resolve();

  constructor(store: StateStore, logger: Logger, options: LastUpJournalOptions = {}) {
    this.#store = store;
    this.#logger = logger;
    this.#present = options.present ?? null;
    this.#nowSec = options.nowSec ?? (() => Math.floor(Date.now() / 1000));
    this.#retentionSec = options.retentionSec ?? LAST_UP_RETENTION_SEC;
    this.#pruneStep = options.pruneStep ?? PRUNE_STEP;
  }

  /** Follows the servers of a newly published snapshot (RegistryView.served). */
  index(servers: readonly ServerRecord[]): void {
    const keys = new Map<number, string>();
    for (const s of servers) keys.set(s.slot, s.key);
    this.#keyOfSlot = keys;
  }

  /** Notes that these server slots were seen healthy at `unixSec`. */
  note(slots: readonly number[], unixSec: number): void {
    for (const slot of slots) {
      const key = this.#keyOfSlot.get(slot);
      if (key !== undefined) this.#pending.set(key, unixSec);
    }
  }

  /** Starts the periodic flush (unref'd). */
  start(): void {
    this.#timer ??= setInterval(() => {
      void this.flush();
      void this.prune();
    }, FLUSH_MS);
    this.#timer.unref();
  }

  /** Stops the periodic flush and writes what is pending. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#pruning;
    await this.flush();
  }

  /**
   * Takes one pruning step (see the head of this file), one at a time; a
   * failure is logged and the step is taken again at the next tick. Resolves
   * to the entries removed.
   */
  prune(): Promise<number> {
    const present = this.#present;
    if (present === null) return Promise.resolve(0);
    const step = this.#pruning.then(async () => {
      const nowSec = this.#nowSec();
      try {
        const { next, removed } = await this.#store.pruneLastUp({ after: this.#pruneAfter, limit: this.#pruneStep, present, nowSec, removeMarkedBefore: nowSec - this.#retentionSec });
        this.#pruneAfter = next;
        if (removed > 0) this.#logger.info({ removed }, 'removed the last-up times of servers absent from the registry for over the retention');
        return removed;
      } catch (err) {
        this.#logger.error({ err: (err as Error).message }, 'could not prune last-up times; retrying later');
        return 0;
      }
    });
    this.#pruning = step.then(() => undefined);
    return step;
  }

  /** Writes pending times to the store, one flush at a time; a failure is logged and the times stay pending. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const batch = new Map(this.#pending);
      this.#pending.clear();
      try {
        await this.#store.putLastUp(batch);
      } catch (err) {
        for (const [key, sec] of batch) if (!this.#pending.has(key)) this.#pending.set(key, sec);
        this.#logger.error({ err: (err as Error).message }, 'could not persist last-up times; retrying later');
      }
    });
    return this.#flushing;
  }
}
