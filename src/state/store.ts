// Main thread, cold path. What the overwatch keeps across restarts: operator
// overrides, and when each server was last seen healthy (for
// when_all_down: last_healthy). Backed by lmdb under overwatch.data_dir: a
// write resolves only once lmdb has committed it, so an acknowledged override
// survives a crash. Tests and tools may use the in-memory store instead.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { OpenGslbError } from '../lib/errors.ts';
import { overrideKey } from '../registry/keys.ts';

/** An override as stored: one per (service, address). */
export interface StoredOverride {
  readonly service: string;
  readonly address: string;
  readonly healthy: boolean;
  readonly reason: string;
  readonly source: string;
  /** Epoch milliseconds. */
  readonly createdAtMs: number;
}

export interface StateStore {
  /** Where the state lives ("memory" for the in-memory store). */
  readonly location: string;
  /** Every stored override. */
  loadOverrides(): StoredOverride[];
  /** Stores (or replaces) an override; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putOverride(override: StoredOverride): Promise<void>;
  /** Removes an override; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteOverride(service: string, address: string): Promise<void>;
  /** Last-up times (unix seconds) by server key (src/registry/keys.ts serverKey()). */
  loadLastUp(): Map<string, number>;
  /** Stores last-up times by server key; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putLastUp(entries: ReadonlyMap<string, number>): Promise<void>;
  close(): Promise<void>;
}

function writeError(what: string, location: string, err: unknown): OpenGslbError {
  return new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', `could not write ${what} to ${location}: ${(err as Error).message}`, { cause: err });
}

/** Keeps state in memory only: nothing survives a restart. */
export class MemoryStore implements StateStore {
  readonly location = 'memory';
  readonly #overrides = new Map<string, StoredOverride>();
  readonly #lastUp = new Map<string, number>();

  loadOverrides(): StoredOverride[] {
    return [...this.#overrides.values()];
  }

  async putOverride(override: StoredOverride): Promise<void> {
    this.#overrides.set(overrideKey(override.service, override.address), override);
  }

  async deleteOverride(service: string, address: string): Promise<void> {
    this.#overrides.delete(overrideKey(service, address));
  }

  loadLastUp(): Map<string, number> {
    return new Map(this.#lastUp);
  }

  async putLastUp(entries: ReadonlyMap<string, number>): Promise<void> {
    for (const [key, sec] of entries) this.#lastUp.set(key, sec);
  }

  async close(): Promise<void> {}
}

/** The lmdb-backed store: one environment file `state.mdb` in the data directory, one named database per kind. */
export class LmdbStore implements StateStore {
  readonly location: string;
  readonly #root: RootDatabase;
  readonly #overrides: Database<StoredOverride, string>;
  readonly #lastUp: Database<number, string>;

  private constructor(location: string, root: RootDatabase) {
    this.location = location;
    this.#root = root;
    this.#overrides = root.openDB<StoredOverride, string>({ name: 'overrides' });
    this.#lastUp = root.openDB<number, string>({ name: 'last_up' });
  }

  /**
   * Opens (creating if needed) the state database in `dataDir`. Throws
   * OPENGSLB_ERR_STATE_OPEN saying which directory and what to do about it.
   */
  static open(dataDir: string): LmdbStore {
    const path = join(dataDir, 'state.mdb');
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o750 });
      const root = open({ path, maxDbs: 8 });
      return new LmdbStore(path, root);
    } catch (err) {
      throw new OpenGslbError(
        'OPENGSLB_ERR_STATE_OPEN',
        `cannot open the state database ${path} (overwatch.data_dir: ${dataDir}): ${(err as Error).message}; create the directory and make it writable by this user, or point overwatch.data_dir at one that is`,
        { cause: err },
      );
    }
  }

  loadOverrides(): StoredOverride[] {
    const out: StoredOverride[] = [];
    for (const { value } of this.#overrides.getRange()) out.push(value);
    return out;
  }

  async putOverride(override: StoredOverride): Promise<void> {
    try {
      await this.#overrides.put(overrideKey(override.service, override.address), override);
    } catch (err) {
      throw writeError(`the override of ${override.address} in ${override.service}`, this.location, err);
    }
  }

  async deleteOverride(service: string, address: string): Promise<void> {
    try {
      await this.#overrides.remove(overrideKey(service, address));
    } catch (err) {
      throw writeError(`the removal of the override of ${address} in ${service}`, this.location, err);
    }
  }

  loadLastUp(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { key, value } of this.#lastUp.getRange()) out.set(key, value);
    return out;
  }

  async putLastUp(entries: ReadonlyMap<string, number>): Promise<void> {
    try {
      await this.#lastUp.transaction(() => {
        for (const [key, sec] of entries) this.#lastUp.put(key, sec);
      });
    } catch (err) {
      throw writeError(`${entries.size} last-up times`, this.location, err);
    }
  }

  async close(): Promise<void> {
    await this.#root.close();
  }
}
