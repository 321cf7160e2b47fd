// Main thread, cold path. What the overwatch keeps across restarts: operator
// overrides, when each server was last seen healthy (for
// when_all_down: last_healthy), the DNSSEC signing keys and the pinned
// certificates of agents and the backends they reported. Backed by lmdb under overwatch.data_dir (directory
// 0700, files 0600: it holds private keys): a write resolves only once lmdb
// has committed it, so an acknowledged override survives a crash. Tests and
// tools may use the in-memory store instead.

import { accessSync, chmodSync, closeSync, constants, mkdirSync, openSync, readdirSync, readSync, statSync, type Stats } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { loadUdpBatch } from '../../native/udp-batch.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { describeTarget, fromStored, keyOfTarget, type OverrideTarget } from '../registry/overrides.ts';
import { lockStateDir, LOCK_FILE, type DirLock } from './lock.ts';
import type { BackendReport } from '../gossip/messages.ts';

/**
 * An override as stored, one per target (src/registry/overrides.ts converts
 * it). Earlier versions stored only (service, address) overrides, without
 * `scope`, `region` and `expiresAtMs`; such a record still loads, as a
 * (service, address) override without an end.
 */
export interface StoredOverride {
  /** "domain" (one address in one domain), "server" (one address, every domain) or "region"; absent: "domain". */
  readonly scope?: 'domain' | 'server' | 'region';
  /** The domain, for scope "domain"; "" otherwise. */
  readonly service: string;
  /** The server address, for scopes "domain" and "server"; "" for "region". */
  readonly address: string;
  /** The region, for scope "region". */
  readonly region?: string;
  readonly healthy: boolean;
  readonly reason: string;
  readonly source: string;
  /** Epoch milliseconds. */
  readonly createdAtMs: number;
  /** When it ends, epoch milliseconds; absent or null: never. */
  readonly expiresAtMs?: number | null;
}

/** The store key of a stored override: the registry's key of its target (src/registry/keys.ts). */
function storedKey(o: StoredOverride): string {
  return keyOfTarget(fromStored(o).target);
}

/**
 * A DNSSEC key as stored: public fields, and the private key as base64 PKCS#8
 * DER. Only src/dnssec/keys.ts reads and writes these (toStoredKey,
 * keyFromStored); nothing logs them.
 */
export interface StoredDnssecKey {
  /** Zone apex, lower-case, no trailing dot. */
  readonly zone: string;
  readonly keyTag: number;
  readonly algorithm: number;
  readonly flags: number;
  /** DNSKEY public-key field, base64. */
  readonly publicKey: string;
  /** Epoch milliseconds. */
  readonly createdAtMs: number;
  /** "published", "active", "withdrawn" or "retired" (checked by keyFromStored). */
  readonly state: string;
  /** Epoch ms a published key of a new algorithm joins the DNSKEY RRset (src/dnssec/keys.ts DnssecKeyInfo); absent: at once. */
  readonly publishAtMs?: number;
  /** Epoch ms a withdrawn key left the DNSKEY RRset. */
  readonly withdrawnAtMs?: number;
  /** Base64 of the PKCS#8 DER private key. */
  readonly privateKeyPkcs8: string;
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

/**
 * The highest sequence number accepted from one agent, and when: where that
 * agent's replay window starts after a restart (src/gossip/channel.ts), so a
 * message recorded before the restart is refused after it however its
 * timestamp reads.
 */
export interface StoredReplayMark {
  readonly seq: number;
  /** When it was accepted, epoch milliseconds. */
  readonly atMs: number;
}

/** Where pinned agent certificates and replay marks persist (gossip/channel.ts keeps the working copy in memory). */
export interface PinStore {
  /** Every stored pin. */
  loadPins(): StoredPin[];
  /** Stores (or replaces) the pin of `pin.agentId`; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putPin(pin: StoredPin): Promise<void>;
  /** Removes an agent's pin; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deletePin(agentId: string): Promise<void>;
  /** Every stored replay mark by agent id; an entry that is not a mark (a damaged file) is left out. */
  loadReplayMarks(): Map<string, StoredReplayMark>;
  /** Stores (or replaces) an agent's replay mark; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putReplayMark(agentId: string, mark: StoredReplayMark): Promise<void>;
  /** Removes an agent's replay mark; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteReplayMark(agentId: string): Promise<void>;
}

/**
 * An agent's backends as the overwatch last knew them, stored so that after a
 * restart they are back in the registry (stale until the agent's next
 * heartbeat): one entry per agent id.
 */
export interface StoredAgentBackends {
  readonly agentId: string;
  readonly region: string;
  /** The agent's software version and heartbeat interval, from its registration. */
  readonly version: string;
  readonly heartbeatIntervalMs: number;
  /** When the overwatch last heard from the agent (written at most once per stale threshold), epoch milliseconds. */
  readonly lastSeenMs: number;
  /** Every backend with the agent's last claim, drain and check. */
  readonly backends: readonly BackendReport[];
}

/** Where agents' backends persist. */
export interface AgentBackendStore {
  /** Every stored agent's backends. */
  loadAgentBackends(): StoredAgentBackends[];
  /** Stores (or replaces) one agent's backends; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putAgentBackends(entry: StoredAgentBackends): Promise<void>;
  /** Forgets one agent's backends; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteAgentBackends(agentId: string): Promise<void>;
}

/** A zone's SOA serial and the digest of the content it was given for. */
export interface StoredZoneSerial {
  readonly digest: string;
  readonly serial: number;
}

/** A custom geo mapping added at run time (the API), as stored: one per network. */
export interface StoredGeoMapping {
  /** The network, host bits clear ("10.0.0.0/8"). */
  readonly cidr: string;
  readonly region: string;
  readonly comment: string | null;
  /** Who added it, and when (epoch milliseconds). */
  readonly source: string;
  readonly createdAtMs: number;
}

/**
 * An operator-state change sealed for the bus's bucket (src/bus/replica.ts)
 * and not put in it yet (NATS away): kept so that a restart before NATS
 * returns does not lose it.
 */
export interface StoredBusPending {
  /** The bucket key (operatorKvKey()). */
  readonly key: string;
  /** The sealed entry, as it will be put. */
  readonly sealed: Uint8Array;
}

/** Where the bus's waiting puts persist. */
export interface BusPendingStore {
  loadBusPending(): StoredBusPending[];
  /** Stores (or replaces) the waiting entry of `entry.key`; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putBusPending(entry: StoredBusPending): Promise<void>;
  /** Forgets the waiting entry of a bucket key (put, or replaced); rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteBusPending(key: string): Promise<void>;
}

export interface StateStore extends PinStore, AgentBackendStore, BusPendingStore {
  /** Where the state lives ("memory" for the in-memory store). */
  readonly location: string;
  /** The SOA serial of each zone, with the digest of the content it was given for (src/overwatch/zone-serials.ts). */
  loadZoneSerials(): Map<string, StoredZoneSerial>;
  /** Stores a zone's serial; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putZoneSerial(zone: string, serial: StoredZoneSerial): Promise<void>;
  /** Every stored run-time geo mapping. */
  loadGeoMappings(): StoredGeoMapping[];
  /** Stores (or replaces) the mapping of `mapping.cidr`; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putGeoMapping(mapping: StoredGeoMapping): Promise<void>;
  /** Removes the mapping of a network; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteGeoMapping(cidr: string): Promise<void>;
  /** Every stored override. */
  loadOverrides(): StoredOverride[];
  /** Stores (or replaces) the override of its target; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putOverride(override: StoredOverride): Promise<void>;
  /** Removes the override of `target`; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteOverride(target: OverrideTarget): Promise<void>;
  /** Last-up times (unix seconds) by server key (src/registry/keys.ts serverKey()). */
  loadLastUp(): Map<string, number>;
  /** Stores last-up times by server key; rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putLastUp(entries: ReadonlyMap<string, number>): Promise<void>;
  /**
   * One bounded step of last-up pruning (src/overwatch/last-up-journal.ts):
   * looks at up to `step.limit` stored last-up keys after `step.after` (null:
   * from the first), in one write transaction. A key whose server is
   * `present` loses its absence mark; an absent one without a mark is marked
   * absent since `step.nowSec`; an absent one marked at or before
   * `step.removeMarkedBefore`, and not seen healthy since the mark, is
   * removed with its mark. Returns the last key looked at (null: the end was
   * reached) and how many entries were removed; rejects with
   * OPENGSLB_ERR_STATE_WRITE when the write fails.
   */
  pruneLastUp(step: LastUpPruneStep): Promise<LastUpPruneResult>;
  /**
   * Every stored DNSSEC key. Throws OPENGSLB_ERR_DNSSEC_KEY_CORRUPT naming the
   * zone and key tag when an entry cannot be read back (src/dnssec/keys.ts
   * keyFromStored then checks the key itself).
   */
  loadDnssecKeys(): StoredDnssecKey[];
  /**
   * The stored DNSSEC key (zone, keyTag), or undefined when there is none;
   * reads and parses that one entry only. Throws OPENGSLB_ERR_DNSSEC_KEY_CORRUPT
   * as loadDnssecKeys does when the entry cannot be read back.
   */
  loadDnssecKey(zone: string, keyTag: number): StoredDnssecKey | undefined;
  /**
   * Every stored DNSSEC key of `zone`, and no other zone's; reads only those
   * entries. Throws OPENGSLB_ERR_DNSSEC_KEY_CORRUPT as loadDnssecKeys does.
   */
  loadZoneDnssecKeys(zone: string): StoredDnssecKey[];
  /** Stores (or replaces) the key (zone, keyTag); rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  putDnssecKey(key: StoredDnssecKey): Promise<void>;
  /** Removes the key (zone, keyTag); rejects with OPENGSLB_ERR_STATE_WRITE when the write fails. */
  deleteDnssecKey(zone: string, keyTag: number): Promise<void>;
  close(): Promise<void>;
}

/** One step of StateStore.pruneLastUp. */
export interface LastUpPruneStep {
  /** Start after this key; null: from the first. */
  readonly after: string | null;
  /** At most this many keys are looked at. */
  readonly limit: number;
  /** Is the server of this key in the registry now? */
  readonly present: (key: string) => boolean;
  /** Now, unix seconds: the absence mark given to a key first seen absent. */
  readonly nowSec: number;
  /** An absent key marked at or before this (unix seconds) is removed. */
  readonly removeMarkedBefore: number;
}

export interface LastUpPruneResult {
  /** The last key looked at, to continue after; null when the end was reached. */
  readonly next: string | null;
  readonly removed: number;
}

/**
 * The decision of one pruning step over (key, last-up, absence mark), shared
 * by both stores: what to do with the entry's mark and whether to remove it.
 * A server seen healthy after its mark was present then: its absence starts
 * again now.
 */
function pruneDecision(present: boolean, lastUp: number, mark: number | undefined, step: LastUpPruneStep): 'unmark' | 'mark' | 'remove' | 'keep' {
  if (present) return mark === undefined ? 'keep' : 'unmark';
  if (mark === undefined || lastUp > mark) return 'mark';
  return mark <= step.removeMarkedBefore ? 'remove' : 'keep';
}

/** Where a DNSSEC key is stored: an lmdb array key (zone, key tag), so no string format is built or parsed. */
export type DnssecKeyId = [zone: string, keyTag: number];

/** The fields every stored key has (the optional rollover times are checked by keyFromStored). */
const STORED_KEY_FIELDS: Readonly<Record<Exclude<keyof StoredDnssecKey, 'publishAtMs' | 'withdrawnAtMs'>, 'string' | 'number'>> = {
  zone: 'string',
  keyTag: 'number',
  algorithm: 'number',
  flags: 'number',
  publicKey: 'string',
  createdAtMs: 'number',
  state: 'string',
  privateKeyPkcs8: 'string',
};

/**
 * Parses one stored key's text (JSON) and checks that every field is there with
 * its type and that it is stored under its own id. Throws
 * OPENGSLB_ERR_DNSSEC_KEY_CORRUPT naming the store, the zone and the key tag.
 */
export function parseStoredDnssecKey(id: DnssecKeyId, text: string, location: string): StoredDnssecKey {
  const [zone, tag] = id;
  const fail = (what: string, cause?: unknown): OpenGslbError => new OpenGslbError(
    'OPENGSLB_ERR_DNSSEC_KEY_CORRUPT',
    `${location}: DNSSEC key ${tag} of zone ${zone} is corrupt: ${what}; the zone is not signed with it. Restore overwatch.data_dir from a backup, or remove the key so a new one is generated (which needs a new DS at the parent)`,
    cause === undefined ? undefined : { cause },
  );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw fail(`the stored entry is not readable (${(err as Error).message})`, err);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail('the stored entry is not an object');
  const record = value as Record<string, unknown>;
  for (const [field, type] of Object.entries(STORED_KEY_FIELDS)) {
    if (typeof record[field] !== type) throw fail(`field ${field} is ${record[field] === undefined ? 'missing' : typeof record[field]}, expected a ${type}`);
  }
  const key = record as unknown as StoredDnssecKey;
  if (key.zone !== zone || key.keyTag !== tag) throw fail(`it says it is key ${key.keyTag} of zone ${key.zone}`);
  return key;
}

/** A stored value that is a replay mark (a safe integer sequence number and a finite time), or null. */
function replayMarkOf(value: unknown): StoredReplayMark | null {
  if (typeof value !== 'object' || value === null) return null;
  const { seq, atMs } = value as Record<string, unknown>;
  return Number.isSafeInteger(seq) && typeof atMs === 'number' && Number.isFinite(atMs) ? { seq: seq as number, atMs } : null;
}

/**
 * The error of a failed write, with lmdb's reason. lmdb-js rejects every write
 * of a failed commit with "Commit failed (see commitError for details)" and
 * puts the reason (ENOSPC, EIO…) in `commitError`, a rejected promise of its
 * own that nothing else handles: left alone, Node's unhandled-rejection rule
 * would end the process at the first write to a full disk.
 */
async function writeError(what: string, location: string, err: unknown): Promise<OpenGslbError> {
  let reason = (err as Error).message;
  const commit = (err as { commitError?: unknown }).commitError;
  if (commit instanceof Promise) reason = await commit.then(() => reason, (cause: unknown) => `${reason}: ${(cause as Error).message}`);
  return new OpenGslbError('OPENGSLB_ERR_STATE_WRITE', `could not write ${what} to ${location}: ${reason}`, { cause: err });
}

/** Keeps state in memory only: nothing survives a restart. */
export class MemoryStore implements StateStore {
  readonly location = 'memory';
  readonly #overrides = new Map<string, StoredOverride>();
  readonly #lastUp = new Map<string, number>();
  readonly #lastUpAbsent = new Map<string, number>();
  /** Stored text by zone, then key tag. */
  readonly #dnssecKeys = new Map<string, Map<number, string>>();
  readonly #pins = new Map<string, StoredPin>();
  readonly #replayMarks = new Map<string, StoredReplayMark>();
  readonly #geoMappings = new Map<string, StoredGeoMapping>();
  readonly #agentBackends = new Map<string, StoredAgentBackends>();
  readonly #zoneSerials = new Map<string, StoredZoneSerial>();
  readonly #busPending = new Map<string, StoredBusPending>();

  loadOverrides(): StoredOverride[] {
    return [...this.#overrides.values()];
  }

  loadBusPending(): StoredBusPending[] {
    return [...this.#busPending.values()];
  }

  async putBusPending(entry: StoredBusPending): Promise<void> {
    this.#busPending.set(entry.key, entry);
  }

  async deleteBusPending(key: string): Promise<void> {
    this.#busPending.delete(key);
  }

  loadAgentBackends(): StoredAgentBackends[] {
    return [...this.#agentBackends.values()];
  }

  async putAgentBackends(entry: StoredAgentBackends): Promise<void> {
    this.#agentBackends.set(entry.agentId, entry);
  }

  async deleteAgentBackends(agentId: string): Promise<void> {
    this.#agentBackends.delete(agentId);
  }

  async putOverride(override: StoredOverride): Promise<void> {
    this.#overrides.set(storedKey(override), override);
  }

  async deleteOverride(target: OverrideTarget): Promise<void> {
    this.#overrides.delete(keyOfTarget(target));
  }

  loadLastUp(): Map<string, number> {
    return new Map(this.#lastUp);
  }

  async putLastUp(entries: ReadonlyMap<string, number>): Promise<void> {
    for (const [key, sec] of entries) this.#lastUp.set(key, sec);
  }

  async pruneLastUp(step: LastUpPruneStep): Promise<LastUpPruneResult> {
    // Key order, as lmdb's: a cursor that survives removals between steps.
    const keys = [...this.#lastUp.keys()].filter((k) => step.after === null || k > step.after).sort().slice(0, step.limit);
    let removed = 0;
    for (const key of keys) {
      const mark = this.#lastUpAbsent.get(key);
      const what = pruneDecision(step.present(key), this.#lastUp.get(key)!, mark, step);
      if (what === 'unmark') this.#lastUpAbsent.delete(key);
      else if (what === 'mark') this.#lastUpAbsent.set(key, step.nowSec);
      else if (what === 'remove') {
        this.#lastUp.delete(key);
        this.#lastUpAbsent.delete(key);
        removed++;
      }
    }
    return { next: keys.length < step.limit ? null : keys[keys.length - 1]!, removed };
  }

  loadDnssecKeys(): StoredDnssecKey[] {
    const out: StoredDnssecKey[] = [];
    for (const [zone, byTag] of this.#dnssecKeys) for (const [tag, text] of byTag) out.push(parseStoredDnssecKey([zone, tag], text, this.location));
    return out;
  }

  loadDnssecKey(zone: string, keyTag: number): StoredDnssecKey | undefined {
    const text = this.#dnssecKeys.get(zone)?.get(keyTag);
    return text === undefined ? undefined : parseStoredDnssecKey([zone, keyTag], text, this.location);
  }

  loadZoneDnssecKeys(zone: string): StoredDnssecKey[] {
    const out: StoredDnssecKey[] = [];
    for (const [tag, text] of this.#dnssecKeys.get(zone) ?? []) out.push(parseStoredDnssecKey([zone, tag], text, this.location));
    return out;
  }

  async putDnssecKey(key: StoredDnssecKey): Promise<void> {
    let byTag = this.#dnssecKeys.get(key.zone);
    if (byTag === undefined) this.#dnssecKeys.set(key.zone, (byTag = new Map()));
    byTag.set(key.keyTag, JSON.stringify(key));
  }

  async deleteDnssecKey(zone: string, keyTag: number): Promise<void> {
    this.#dnssecKeys.get(zone)?.delete(keyTag);
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

  loadReplayMarks(): Map<string, StoredReplayMark> {
    return new Map(this.#replayMarks);
  }

  async putReplayMark(agentId: string, mark: StoredReplayMark): Promise<void> {
    this.#replayMarks.set(agentId, { ...mark });
  }

  async deleteReplayMark(agentId: string): Promise<void> {
    this.#replayMarks.delete(agentId);
  }

  loadGeoMappings(): StoredGeoMapping[] {
    return [...this.#geoMappings.values()];
  }

  loadZoneSerials(): Map<string, StoredZoneSerial> {
    return new Map(this.#zoneSerials);
  }

  async putZoneSerial(zone: string, serial: StoredZoneSerial): Promise<void> {
    this.#zoneSerials.set(zone, serial);
  }

  async putGeoMapping(mapping: StoredGeoMapping): Promise<void> {
    this.#geoMappings.set(mapping.cidr, mapping);
  }

  async deleteGeoMapping(cidr: string): Promise<void> {
    this.#geoMappings.delete(cidr);
  }

  async close(): Promise<void> {}
}

/** Mode of the data directory: only the overwatch's user may list or enter it (it holds private keys). */
export const DATA_DIR_MODE = 0o700;
/** Mode of the files in it. */
export const DATA_FILE_MODE = 0o600;

/**
 * Makes the data directory 0700 and the lmdb files in it 0600 (lmdb creates
 * them 0644 under the usual umask). Skipped on Windows, whose ACLs the mode
 * bits do not describe.
 */
function restrictPermissions(dataDir: string): void {
  if (process.platform === 'win32') return;
  if ((statSync(dataDir).mode & 0o777) !== DATA_DIR_MODE) chmodSync(dataDir, DATA_DIR_MODE);
  for (const name of readdirSync(dataDir)) {
    if (name !== 'state.mdb' && !name.startsWith('state.mdb-') && name !== LOCK_FILE) continue;
    const file = join(dataDir, name);
    if ((statSync(file).mode & 0o777) !== DATA_FILE_MODE) chmodSync(file, DATA_FILE_MODE);
  }
}

/**
 * Checks that the lmdb data and lock files, where they exist, are regular
 * files this user may read and write; throws the error openAdvice() explains.
 * lmdb-js does not report a lock file it may not open: the process dies of
 * SIGSEGV with no message.
 */
function checkStateFilesUsable(path: string): void {
  for (const file of [path, `${path}-lock`]) {
    let st: Stats;
    try {
      st = statSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (!st.isFile()) {
      throw Object.assign(new Error(`${file} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}`), { code: 'EISDIR', path: file });
    }
    accessSync(file, constants.R_OK | constants.W_OK);
  }
}

/**
 * Whether the nearest existing directory on the way to `dataDir` is on a
 * read-only file system: Node's recursive mkdir reports a missing directory
 * there as ENOENT, not EROFS (access(2) with W_OK says EROFS, even to root).
 */
function nearestOnReadOnly(dataDir: string): boolean {
  let part = dataDir;
  for (;;) {
    try {
      accessSync(part, constants.W_OK);
      return false;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EROFS') return true;
      if (code !== 'ENOENT' || dirname(part) === part) return false;
      part = dirname(part);
    }
  }
}

/** The advice when the directory itself is missing or not writable (and for an error nothing else explains). */
const MAKE_DIR_ADVICE = 'create the directory and make it writable by this user, or point overwatch.data_dir at one that is';

/**
 * What to do about `err`, which failed opening the state directory `dataDir`
 * (creating it, setting its modes, the pid file, the lmdb files): by its errno
 * and the path it names.
 */
function openAdvice(err: NodeJS.ErrnoException, dataDir: string): string {
  const failed = typeof err.path === 'string' ? err.path : dataDir;
  const me = process.geteuid?.();
  switch (err.code === 'ENOENT' && nearestOnReadOnly(dataDir) ? 'EROFS' : err.code) {
    case 'EACCES':
    case 'EPERM': {
      let st: Stats | null = null;
      try {
        st = statSync(failed);
      } catch {
        // Missing: the directory above it is what this user cannot write.
      }
      if (st !== null && !st.isDirectory()) {
        if (me !== undefined && st.uid !== me) {
          return `${failed} belongs to uid ${st.uid}, not to this user (uid ${me}), as after a start as another user (sudo): give the directory back to this user (chown -R ${me} ${dataDir})`;
        }
        return `${failed} is mode ${(st.mode & 0o777).toString(8)}: make it readable and writable by this user (chmod 600 ${failed})`;
      }
      if (st !== null && me !== undefined && st.uid !== me) {
        return `${failed} belongs to uid ${st.uid}, not to this user (uid ${me}): give it to this user (chown -R ${me} ${dataDir}), or point overwatch.data_dir at a directory this user owns`;
      }
      return MAKE_DIR_ADVICE;
    }
    case 'ENOSPC':
      return `the file system holding ${dataDir} is full (no space or no inodes left): free room there, or point overwatch.data_dir at another file system`;
    case 'EDQUOT':
      return `this user's disk quota on the file system holding ${dataDir} is used up: raise it or free room, or point overwatch.data_dir elsewhere`;
    case 'EROFS':
      return `${dataDir} is on a read-only file system: mount it read-write; under the shipped systemd unit (ProtectSystem=strict) only /var/lib/opengslb is writable, so leave overwatch.data_dir unset or add ${dataDir} to ReadWritePaths= in a drop-in`;
    case 'EISDIR':
      return `the lmdb files must be regular files (or absent, to be created): move ${failed} aside`;
    case 'ENOTDIR': {
      // The nearest existing part of the path is what is in the way.
      let part = dataDir;
      for (;;) {
        try {
          statSync(part);
          break;
        } catch {
          if (dirname(part) === part) break;
          part = dirname(part);
        }
      }
      return `${part} is a file, expected a directory on the way to ${dataDir}: point overwatch.data_dir at a directory, or move ${part} aside`;
    }
    default:
      return MAKE_DIR_ADVICE;
  }
}

// The head of an lmdb data file (lmdb-js 3's liblmdb, 64-bit build), which
// checkStateFile reads before lmdb maps the file. Pages 0 and 1 are meta
// pages: a 24-byte page header (page number, txnid, pad, flags, bounds), then
// MDB_meta: magic, version, fixed-map address, map size, the free and main
// databases' MDB_db (48 bytes each; the first one's md_pad is the page size),
// the last page in use and the txnid that wrote the meta. Written in the
// host's byte order.
const LMDB_MAGIC = 0xbeefc0de;
/** MDB_DATA_VERSION of the lmdb this package ships. */
const LMDB_DATA_VERSION = 2;
const META_MAGIC_AT = 24;
const META_VERSION_AT = 28;
const META_PAGE_SIZE_AT = 48;
const META_LAST_PAGE_AT = 144;
const META_TXNID_AT = 152;
const META_END = 160;
/** lmdb's page sizes: a power of two between these. */
const MIN_PAGE_SIZE = 512;
const MAX_PAGE_SIZE = 0x10000;

/**
 * Checks that the existing state file `path` is an lmdb data file of the
 * format this lmdb reads and holds every page its meta pages refer to;
 * returns what is wrong, or null (a missing or empty file is created anew by
 * lmdb). lmdb-js does not report these: it maps the file and the process dies
 * of SIGSEGV or SIGBUS with no message (a truncated copy, a file of another
 * LMDB data version, a file that is not lmdb at all). Damage inside the pages
 * is not seen here: lmdb keeps no checksums.
 */
function checkStateFile(path: string): string | null {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (size === 0) return null;
  const head = Buffer.alloc(Math.min(size, 2 * MAX_PAGE_SIZE));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const le = endianness() === 'LE';
  const u32 = (at: number): number => (le ? head.readUInt32LE(at) : head.readUInt32BE(at));
  const u64 = (at: number): bigint => (le ? head.readBigUInt64LE(at) : head.readBigUInt64BE(at));
  if (size < META_END) return `it is ${size} bytes, too short for an lmdb data file (cut short?)`;
  if (u32(META_MAGIC_AT) !== LMDB_MAGIC) return 'it is not an lmdb data file (no lmdb header)';
  const version = u32(META_VERSION_AT) & 0xffff;
  if (version !== LMDB_DATA_VERSION) return `it is in lmdb data format ${version}, and this OpenGSLB reads format ${LMDB_DATA_VERSION} (written by another version?)`;
  const pageSize = u32(META_PAGE_SIZE_AT);
  if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) return `its header gives a page size of ${pageSize}`;
  if (size < pageSize + META_END) return `it is ${size} bytes, shorter than its two header pages of ${pageSize} bytes (cut short?)`;
  // lmdb opens the meta with the highest txnid; the file must hold the pages of either.
  let lastPage = u64(META_LAST_PAGE_AT);
  if (u32(pageSize + META_MAGIC_AT) === LMDB_MAGIC && u64(pageSize + META_TXNID_AT) > 0n) {
    const other = u64(pageSize + META_LAST_PAGE_AT);
    if (other > lastPage) lastPage = other;
  }
  const needed = (lastPage + 1n) * BigInt(pageSize);
  if (BigInt(size) < needed) return `it is ${size} bytes, and its last committed write uses ${needed} (cut short?)`;
  return null;
}

/**
 * Disk room kept allocated past lmdb's last page: topped up to ROOM_BYTES
 * (plus twice the write's own size) before a write that would leave less
 * than half of it. A full disk then fails the top-up, refused here with the
 * reason, instead of lmdb's own page write, whose error path in lmdb-js
 * 3.5.6 formats its message past the end of a 100-byte heap buffer (mdb.c
 * mdb_page_flush, "Attempting to write page…") and glibc aborts the process.
 * A small write of ours changes a few pages; lmdb's copy-on-write and page
 * splits at most double a value's size.
 */
const ROOM_BYTES = 256 * 1024;

/** The lmdb-backed store: one environment file `state.mdb` in the data directory, one named database per kind. */
export class LmdbStore implements StateStore {
  readonly location: string;
  readonly #root: RootDatabase;
  readonly #overrides: Database<StoredOverride, string>;
  readonly #lastUp: Database<number, string>;
  /** By server key: since when (unix seconds) a key of `#lastUp` has been seen absent from the registry (pruneLastUp). */
  readonly #lastUpAbsent: Database<number, string>;
  /** JSON text per key id [zone, keyTag]: parsed by hand, so a damaged entry is reported by name instead of failing the whole read. */
  readonly #dnssecKeys: Database<string, DnssecKeyId>;
  readonly #pins: Database<StoredPin, string>;
  /** By agent id. */
  readonly #replayMarks: Database<StoredReplayMark, string>;
  /** By network ("10.0.0.0/8"): the mapping's own identity, not a built key. */
  readonly #geoMappings: Database<StoredGeoMapping, string>;
  /** By agent id. */
  readonly #agentBackends: Database<StoredAgentBackends, string>;
  /** By zone apex. */
  readonly #zoneSerials: Database<StoredZoneSerial, string>;
  /** Sealed bytes by bucket key. */
  readonly #busPending: Database<Uint8Array, string>;
  readonly #lock: DirLock;
  /** The native addon's fallocate, or null: no addon here, or a file system that cannot preallocate (then lmdb's write meets a full disk itself). */
  #reserve: ((path: string, length: number) => void) | null;
  /** Bytes of the file known allocated by the last top-up. */
  #roomEnd = 0;

  private constructor(location: string, root: RootDatabase, lock: DirLock) {
    this.location = location;
    this.#root = root;
    this.#lock = lock;
    const { addon } = loadUdpBatch();
    this.#reserve = addon?.reserveFile === undefined ? null : addon.reserveFile.bind(addon);
    this.#overrides = root.openDB<StoredOverride, string>({ name: 'overrides' });
    this.#lastUp = root.openDB<number, string>({ name: 'last_up' });
    this.#lastUpAbsent = root.openDB<number, string>({ name: 'last_up_absent' });
    this.#dnssecKeys = root.openDB<string, DnssecKeyId>({ name: 'dnssec_keys', encoding: 'string' });
    this.#pins = root.openDB<StoredPin, string>({ name: 'agent_pins' });
    this.#replayMarks = root.openDB<StoredReplayMark, string>({ name: 'agent_replay_marks' });
    this.#geoMappings = root.openDB<StoredGeoMapping, string>({ name: 'geo_mappings' });
    this.#agentBackends = root.openDB<StoredAgentBackends, string>({ name: 'agent_backends' });
    this.#zoneSerials = root.openDB<StoredZoneSerial, string>({ name: 'zone_serials' });
    this.#busPending = root.openDB<Uint8Array, string>({ name: 'bus_pending', encoding: 'binary' });
  }

  /**
   * Takes the state directory `dataDir` for this process (src/state/lock.ts)
   * and opens (creating if needed) the state database in it; close() gives
   * the directory back. Throws OPENGSLB_ERR_STATE_LOCKED naming the directory
   * and the pid of the running instance that holds it, and
   * OPENGSLB_ERR_STATE_OPEN saying which directory and what to do about it.
   */
  static open(dataDir: string): LmdbStore {
    const path = join(dataDir, 'state.mdb');
    let lock: DirLock | null = null;
    try {
      mkdirSync(dataDir, { recursive: true, mode: DATA_DIR_MODE });
      restrictPermissions(dataDir);
      lock = lockStateDir(dataDir);
      // Before lmdb opens them: lmdb-js dies of SIGSEGV on a lock file it may not open (one left by a run as root).
      checkStateFilesUsable(path);
      // Checked under the lock: another instance may not be writing it meanwhile.
      const damage = checkStateFile(path);
      if (damage !== null) {
        throw new OpenGslbError(
          'OPENGSLB_ERR_STATE_OPEN',
          `the state database ${path} (overwatch.data_dir: ${dataDir}) is damaged: ${damage}; it was left as it is. Restore the directory from a backup (docs/runbooks/backup-restore.md), or move state.mdb aside to start with empty state (losing overrides, DNSSEC keys and agent pins)`,
        );
      }
      // eventTurnBatching off: with it, lmdb-js starts each event turn's batch
      // with a write of its own whose promise nobody holds; when that commit
      // fails (a full disk), the promise rejects unhandled and Node ends the
      // process. Writes still commit in batches (setImmediate), each resolving
      // once committed.
      const root = open({ path, maxDbs: 16, eventTurnBatching: false });
      restrictPermissions(dataDir);
      return new LmdbStore(path, root, lock);
    } catch (err) {
      lock?.release();
      if (err instanceof OpenGslbError) throw err;
      throw new OpenGslbError(
        'OPENGSLB_ERR_STATE_OPEN',
        `cannot open the state database ${path} (overwatch.data_dir: ${dataDir}): ${(err as Error).message}; ${openAdvice(err as NodeJS.ErrnoException, dataDir)}`,
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
    await this.#write(() => `the override of ${describeTarget(fromStored(override).target)}`, () => this.#overrides.put(storedKey(override), override));
  }

  async deleteOverride(target: OverrideTarget): Promise<void> {
    await this.#write(() => `the removal of the override of ${describeTarget(target)}`, () => this.#overrides.remove(keyOfTarget(target)));
  }

  loadLastUp(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { key, value } of this.#lastUp.getRange()) out.set(key, value);
    return out;
  }

  async putLastUp(entries: ReadonlyMap<string, number>): Promise<void> {
    // About 64 bytes per entry (key, value, node header).
    await this.#write(() => `${entries.size} last-up times`, () => this.#lastUp.transaction(() => {
      for (const [key, sec] of entries) this.#lastUp.put(key, sec);
    }), entries.size * 64);
  }

  async pruneLastUp(step: LastUpPruneStep): Promise<LastUpPruneResult> {
    let next: string | null = null;
    let removed = 0;
    // Read and decided inside the write transaction: a flush committed meanwhile is seen, never overwritten.
    await this.#write(() => 'a last-up pruning step', () => this.#lastUp.transaction(() => {
      next = null;
      removed = 0;
      // Collected first: no removal under a live range cursor.
      const batch: { key: string; value: number }[] = [];
      for (const { key, value } of this.#lastUp.getRange(step.after === null ? { limit: step.limit } : { start: step.after, limit: step.limit + 1 })) {
        if (key === step.after) continue;
        if (batch.length === step.limit) break;
        batch.push({ key, value });
      }
      for (const { key, value } of batch) {
        next = key;
        const mark = this.#lastUpAbsent.get(key);
        const what = pruneDecision(step.present(key), value, mark, step);
        if (what === 'unmark') this.#lastUpAbsent.remove(key);
        else if (what === 'mark') this.#lastUpAbsent.put(key, step.nowSec);
        else if (what === 'remove') {
          this.#lastUp.remove(key);
          this.#lastUpAbsent.remove(key);
          removed++;
        }
      }
      if (batch.length < step.limit) next = null;
    }), step.limit * 64);
    return { next, removed };
  }

  loadDnssecKeys(): StoredDnssecKey[] {
    const out: StoredDnssecKey[] = [];
    for (const { key, value } of this.#dnssecKeys.getRange()) out.push(parseStoredDnssecKey(key, value, this.location));
    return out;
  }

  loadDnssecKey(zone: string, keyTag: number): StoredDnssecKey | undefined {
    const text = this.#dnssecKeys.get([zone, keyTag]);
    return text === undefined ? undefined : parseStoredDnssecKey([zone, keyTag], text, this.location);
  }

  loadZoneDnssecKeys(zone: string): StoredDnssecKey[] {
    const out: StoredDnssecKey[] = [];
    // [zone] sorts before every [zone, tag], and a tag is at most 65 535.
    for (const { key, value } of this.#dnssecKeys.getRange({ start: [zone], end: [zone, 65_536] })) {
      if (key[0] === zone) out.push(parseStoredDnssecKey(key, value, this.location));
    }
    return out;
  }

  async putDnssecKey(key: StoredDnssecKey): Promise<void> {
    await this.#write(() => `DNSSEC key ${key.keyTag} of zone ${key.zone}`, () => this.#dnssecKeys.put([key.zone, key.keyTag], JSON.stringify(key)));
  }

  async deleteDnssecKey(zone: string, keyTag: number): Promise<void> {
    await this.#write(() => `the removal of DNSSEC key ${keyTag} of zone ${zone}`, () => this.#dnssecKeys.remove([zone, keyTag]));
  }

  loadPins(): StoredPin[] {
    const out: StoredPin[] = [];
    for (const { value } of this.#pins.getRange()) out.push(value);
    return out;
  }

  async putPin(pin: StoredPin): Promise<void> {
    await this.#write(() => `the pinned certificate of agent ${pin.agentId}`, () => this.#pins.put(pin.agentId, pin));
  }

  async deletePin(agentId: string): Promise<void> {
    await this.#write(() => `the removal of the pin of agent ${agentId}`, () => this.#pins.remove(agentId));
  }

  loadReplayMarks(): Map<string, StoredReplayMark> {
    const out = new Map<string, StoredReplayMark>();
    for (const { key, value } of this.#replayMarks.getRange()) {
      const mark = replayMarkOf(value);
      if (mark !== null) out.set(key, mark);
    }
    return out;
  }

  async putReplayMark(agentId: string, mark: StoredReplayMark): Promise<void> {
    await this.#write(() => `the replay mark of agent ${agentId}`, () => this.#replayMarks.put(agentId, mark));
  }

  async deleteReplayMark(agentId: string): Promise<void> {
    await this.#write(() => `the removal of the replay mark of agent ${agentId}`, () => this.#replayMarks.remove(agentId));
  }

  loadBusPending(): StoredBusPending[] {
    const out: StoredBusPending[] = [];
    for (const { key, value } of this.#busPending.getRange()) out.push({ key, sealed: new Uint8Array(value) });
    return out;
  }

  async putBusPending(entry: StoredBusPending): Promise<void> {
    await this.#write(() => `the bus entry ${entry.key} waiting for NATS`, () => this.#busPending.put(entry.key, entry.sealed), entry.sealed.length);
  }

  async deleteBusPending(key: string): Promise<void> {
    await this.#write(() => `the removal of the bus entry ${key} put in the bucket`, () => this.#busPending.remove(key));
  }

  loadZoneSerials(): Map<string, StoredZoneSerial> {
    const out = new Map<string, StoredZoneSerial>();
    for (const { key, value } of this.#zoneSerials.getRange()) out.set(key, value);
    return out;
  }

  async putZoneSerial(zone: string, serial: StoredZoneSerial): Promise<void> {
    await this.#write(() => `the SOA serial of ${zone}`, () => this.#zoneSerials.put(zone, serial));
  }

  loadGeoMappings(): StoredGeoMapping[] {
    const out: StoredGeoMapping[] = [];
    for (const { value } of this.#geoMappings.getRange()) out.push(value);
    return out;
  }

  async putGeoMapping(mapping: StoredGeoMapping): Promise<void> {
    await this.#write(() => `the geo mapping of ${mapping.cidr}`, () => this.#geoMappings.put(mapping.cidr, mapping));
  }

  async deleteGeoMapping(cidr: string): Promise<void> {
    await this.#write(() => `the removal of the geo mapping of ${cidr}`, () => this.#geoMappings.remove(cidr));
  }

  loadAgentBackends(): StoredAgentBackends[] {
    const out: StoredAgentBackends[] = [];
    for (const { value } of this.#agentBackends.getRange()) out.push(value);
    return out;
  }

  async putAgentBackends(entry: StoredAgentBackends): Promise<void> {
    await this.#write(() => `the backends of agent ${entry.agentId}`, () => this.#agentBackends.put(entry.agentId, entry), entry.backends.length * 512);
  }

  async deleteAgentBackends(agentId: string): Promise<void> {
    await this.#write(() => `the removal of the backends of agent ${agentId}`, () => this.#agentBackends.remove(agentId));
  }

  /** Runs one write (`what` names it for the error): room on disk first, then lmdb's commit; any failure is OPENGSLB_ERR_STATE_WRITE with the reason. */
  async #write(what: () => string, op: () => Promise<unknown>, bytes = 0): Promise<void> {
    try {
      this.#keepRoom(ROOM_BYTES + 2 * bytes);
      await op();
    } catch (err) {
      throw await writeError(what(), this.location, err);
    }
  }

  /** Tops the room past lmdb's last page up to `room` bytes when less than half of it is left (see ROOM_BYTES). */
  #keepRoom(room: number): void {
    const reserve = this.#reserve;
    if (reserve === null) return;
    const stats = this.#root.getStats() as { lastPageNumber: number; root: { pageSize: number } };
    const used = (stats.lastPageNumber + 1) * stats.root.pageSize;
    if (used + room / 2 <= this.#roomEnd) return;
    try {
      reserve(this.location, used + room);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A file system without preallocation (some network ones): nothing to keep; lmdb writes as before.
      if (code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        this.#reserve = null;
        return;
      }
      throw new Error(`no room for the file to grow by ${room} bytes: ${(err as Error).message}`, { cause: err });
    }
    this.#roomEnd = used + room;
  }

  async close(): Promise<void> {
    try {
      await this.#root.close();
    } finally {
      this.#lock.release();
    }
  }
}
