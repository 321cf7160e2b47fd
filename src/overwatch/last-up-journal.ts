// Main thread. Keeps the state store's last-up times in step with the live
// slots: every "seen healthy" time the checker writes is noted by server key,
// and the pending ones are written in one transaction every 30 s, when a
// server goes down (its time is then final) and at stop. Wired before the
// first health round, so that round's times are kept too.

import type { Logger } from '../log/logger.ts';
import type { ServerRecord } from '../registry/registry.ts';
import type { StateStore } from '../state/store.ts';

/** How often pending last-up times are written. */
const FLUSH_MS = 30_000;

export class LastUpJournal {
  readonly #store: StateStore;
  readonly #logger: Logger;
  /** Server key per server slot of the served snapshot. */
  #keyOfSlot = new Map<number, string>();
  readonly #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();

  constructor(store: StateStore, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
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
    this.#timer ??= setInterval(() => void this.flush(), FLUSH_MS);
    this.#timer.unref();
  }

  /** Stops the periodic flush and writes what is pending. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
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
