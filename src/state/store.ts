// Main thread, cold path. What the overwatch keeps across restarts: operator
// overrides, when each server was last seen healthy (for
// when_all_down: last_healthy), and the pinned certificates of agents. Backed by lmdb under overwatch.data_dir: a
// write resolves only once lmdb has committed it, so an acknowledged override
// survives a crash. Tests and tools may use the in-memory store instead.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { OpenGslbError } from '../lib/errors.ts';

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

/** An agent's pinned certificate (trust on first use), as stored: one per agent id. */
export interface StoredPin {
  readonly agentId: string;
  /** Hex SHA-256 of `certificate`. */
  readonly fingerprint: string;
  /** The pinned certificate, DER. */
  readonly certificate: Uint8Array;
  /** Region of the latest accepted registration. */
  readonly region: string;
  /** Services the latest accepted registration proved a token for; later messages may report only these. */
  readonly services: readonly string[];
  /** When the agent was first pinned, epoch milliseconds. */
  readonly firstSeenMs: number;
  /** When its latest registration was accepted, epoch milliseconds. */
  readonly registeredAtMs: number;
  /** End of the certificate's validity, epoch milliseconds. */
  readonly notAfterMs: number;
  /** Non-null once revoked: every message is refused until the pin is deleted. */
  readonly revokedAtMs: number | null;
  readonly revokedReason: string | null;
  /** Fingerprint of the certificate this one replaced by a signed rotation, or null. */
  readonly previousFingerprint: string | null;
}

/** Where pinned agent certificates persist (gossip/verifier.ts keeps the working copy in memory). */
export interface PinStore {
  /** Every stored pin. */
  loadPins(): StoredPin[];
  /** Stores (or replaces) the pin of `pin.agentId`; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putPin(pin: StoredPin): Promise<void>;
  /** Removes an agent's pin; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deletePin(agentId: string): Promise<void>;
}

export interface StateStore extends PinStore {
  /** Where the state lives ("memory" for the in-memory store). */
  readonly location: string;
  /** Every stored override. */
  loadOverrides(): StoredOverride[];
  /** Stores (or replaces) an override; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putOverride(override: StoredOverride): Promise<void>;
  /** Removes an override; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteOverride(service: string, address: string): Promise<void>;
  /** Last-up times (unix seconds) by server key (registry/slots.ts serverKey()). */
  loadLastUp(): Map<string, number>;
  /** Stores last-up times by server key; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putLastUp(entries: ReadonlyMap<string, number>): Promise<void>;
  close(): Promise<void>;
}

function overrideKey(service: string, address: string): string {
  return `${service}|${address}`;
}

function writeError(what: string, location: string, err: unknown): OpenGslbError {
  return new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', `could not write ${what} to ${location}: ${(err as Error).message}`, { cause: err });
}

/** Keeps state in memory only: nothing survives a restart. */
export class MemoryStore implements StateStore {
  readonly location = 'memory';
  readonly #overrides = new Map<string, StoredOverride>();
  readonly #lastUp = new Map<string, number>();
  readonly #pins = new Map<string, StoredPin>();

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

  loadPins(): StoredPin[] {
    return [...this.#pins.values()];
  }

  async putPin(pin: StoredPin): Promise<void> {
    this.#pins.set(pin.agentId, pin);
  }

  async deletePin(agentId: string): Promise<void> {
    this.#pins.delete(agentId);
  }

  async close(): Promise<void> {}
}

/** The lmdb-backed store: one environment file `state.mdb` in the data directory, one named database per kind. */
export class LmdbStore implements StateStore {
  readonly location: string;
  readonly #root: RootDatabase;
  readonly #overrides: Database<StoredOverride, string>;
  readonly #lastUp: Database<number, string>;
  readonly #pins: Database<StoredPin, string>;

  private constructor(location: string, root: RootDatabase) {
    this.location = location;
    this.#root = root;
    this.#overrides = root.openDB<StoredOverride, string>({ name: 'overrides' });
    this.#lastUp = root.openDB<number, string>({ name: 'last_up' });
    this.#pins = root.openDB<StoredPin, string>({ name: 'agent_pins' });
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

  loadPins(): StoredPin[] {
    const out: StoredPin[] = [];
    for (const { value } of this.#pins.getRange()) out.push(value);
    return out;
  }

  async putPin(pin: StoredPin): Promise<void> {
    try {
      await this.#pins.put(pin.agentId, pin);
    } catch (err) {
      throw writeError(`the pinned certificate of agent ${pin.agentId}`, this.location, err);
    }
  }

  async deletePin(agentId: string): Promise<void> {
    try {
      await this.#pins.remove(agentId);
    } catch (err) {
      throw writeError(`the removal of the pin of agent ${agentId}`, this.location, err);
    }
  }

  async close(): Promise<void> {
    await this.#root.close();
  }
}
