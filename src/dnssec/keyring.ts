// Main thread, cold path. The overwatch's DNSSEC keys as one object: every
// signed zone's keys (loaded from the state store, generated when missing),
// what the snapshot publishes from them (the DNSKEY RRset per zone), what the
// DNS workers sign with (SignerKeys per zone, KeyObjects that clone into the
// workers), and the public views the API and the CLI show. Private material
// never leaves it except into the store and, encrypted, to a key-sync peer.

import type { DnssecConfig } from '../config/types.ts';
import type { StateStore, StoredDnssecKey } from '../state/store.ts';
import type { WorkerDnssec, ZoneSigners } from '../../workers/messages.ts';
import { OpenGslbError } from '../lib/errors.ts';
import {
  DNSKEY_TTL_SEC, dsOf, ensureZoneKeys, generateZoneKey, keyFromStored, keyStatusView, publishedDnskeys, signerKeyOf, toStoredKey,
  type DnssecKey, type DnssecKeyInfo, type DnssecKeyState, type DsView, type EnsureKeysResult, type KeyStatusView, type ZoneKeys,
} from './keys.ts';

/**
 * How long after a new key is published it starts signing: the DNSKEY TTL,
 * so every resolver that cached the old DNSKEY RRset has fetched the new one
 * (with both keys) before it sees a signature by the new key, plus five
 * minutes for the snapshot to reach every overwatch and for clock skew.
 */
export const ROLLOVER_SWITCH_AFTER_MS = (DNSKEY_TTL_SEC + 300) * 1000;

/** Where a zone's key rollover stands. */
export type RolloverPhase = 'none' | 'published' | 'signing';

/** GET /api/v1/dnssec/rollover: one zone's rollover, with the next step in words. */
export interface RolloverView {
  readonly zone: string;
  /**
   * none: one key signs; published: a new key is in the DNSKEY RRset, waiting for the DNSKEY TTL; signing: the new key signs, the old one still signs the DNSKEY RRset until finish.
   * A new key of another algorithm signs the data from published on, and the old one until finish (zoneSigners()).
   */
  readonly phase: RolloverPhase;
  /** The key that signs the zone's data now. */
  readonly signing_key: number;
  /** The key being rolled to, or null. */
  readonly new_key: number | null;
  /** Keys the finish step retires. */
  readonly old_keys: readonly number[];
  /** When the new key starts signing (RFC 3339), or null. */
  readonly switch_at: string | null;
  readonly next_step: string;
}

/** One key as GET /api/v1/dnssec/status shows it: public fields only. */
export interface DnssecKeyView {
  readonly zone: string;
  readonly key_tag: number;
  readonly algorithm: string;
  readonly algorithm_number: number;
  readonly flags: number;
  /** The DNSKEY public-key field, base64. */
  readonly public_key: string;
  /** RFC 3339. */
  readonly created: string;
  readonly age_seconds: number;
  /** published: in the DNSKEY RRset, not signing yet; active: signing; retired: neither. */
  readonly state: string;
  /** This key signs the zone's data now: the newest active key, and during an algorithm rollover one key of the other algorithm too (dataSigners()). */
  readonly signing: boolean;
}

/** A DS record as GET /api/v1/dnssec/ds shows it. */
export interface DsRecordView {
  readonly zone: string;
  readonly key_tag: number;
  readonly algorithm: number;
  readonly digest_type: number;
  /** SHA-256, upper-case hex. */
  readonly digest: string;
  /** Ready to paste: "example.com. IN DS 12345 13 2 ABCD…". */
  readonly record: string;
}

/** What a start or a reload did to the keys, for the caller to log. */
export interface KeyringChanges {
  readonly created: readonly DnssecKeyInfo[];
  readonly algorithmMismatches: EnsureKeysResult['algorithmMismatches'];
}

/**
 * The keys a new config's zones would have, from Keyring.prepare(): new keys
 * are generated but neither stored nor held until Keyring.commit(), so a
 * reload refused after prepare() leaves no trace of them.
 */
export interface PreparedKeys {
  readonly zones: ReadonlyMap<string, ZoneKeys>;
  readonly config: DnssecConfig;
  readonly changes: KeyringChanges;
}

/**
 * Keyring holds the keys of every configured zone. Create it with
 * Keyring.open(). A reload calls prepare() with the zones of the new config,
 * compiles its snapshot with the prepared keys (dnskeysOf), and commit()s them
 * only once the snapshot compiled, so a new zone has a key the moment it is
 * served and a refused reload creates none.
 */
export class Keyring {
  readonly #store: StateStore;
  #config: DnssecConfig;
  #zones = new Map<string, ZoneKeys>();
  /**
   * The keys parsed so far, by their stored text: a reload parses again only
   * a key whose stored form changed (keyFromStored's private-key parse and
   * checks cost 0.1-0.2 ms a key: 1.4 s for a reload of 10 000 zones).
   */
  #parsed = new Map<string, DnssecKey>();
  /** keyFromStored, once per stored text. */
  readonly #parse = (stored: StoredDnssecKey): DnssecKey => {
    const text = JSON.stringify(stored);
    let key = this.#parsed.get(text);
    if (key === undefined) {
      key = keyFromStored(stored, this.#store.location);
      this.#parsed.set(text, key);
    }
    return key;
  };
  readonly #nowMs: () => number;
  /** How long a published key waits before it signs (ROLLOVER_SWITCH_AFTER_MS; tests shorten it). */
  readonly switchAfterMs: number;
  /** Told of every key generated because its zone had no active key, once it is stored and held (see open()). */
  readonly #onKeyCreated: (info: DnssecKeyInfo) => void;
  #keysCreated = 0;

  private constructor(store: StateStore, config: DnssecConfig, nowMs: () => number, switchAfterMs: number, onKeyCreated: (info: DnssecKeyInfo) => void) {
    this.#store = store;
    this.#config = config;
    this.#nowMs = nowMs;
    this.switchAfterMs = switchAfterMs;
    this.#onKeyCreated = onKeyCreated;
  }

  /**
   * Keys generated since open() because their zone had no active key (a new
   * zone, or its keys gone from the state store or all retired), however it
   * came to be (start, config reload, or a re-read after a rollover step,
   * key sync or the bus): each is a new DS to publish at the parent.
   * opengslb_dnssec_keys_created_total.
   */
  get keysCreated(): number {
    return this.#keysCreated;
  }

  /** Counts the keys just stored and held and tells the owner of each (onKeyCreated). */
  #created(infos: readonly DnssecKeyInfo[]): void {
    for (const info of infos) {
      this.#keysCreated++;
      this.#onKeyCreated(info);
    }
  }

  /**
   * Loads the keys of `zones` from `store`, generating (and storing) one for
   * each zone that has none. `onKeyCreated` is told of every key the keyring
   * generates for a zone without an active key, now and later (the overwatch
   * logs it at warn with the DS to publish); it must not throw. Throws OPENGSLB_ERR_DNSSEC_KEY_CORRUPT for a
   * damaged stored key, OPENGSLB_ERR_DNSSEC_ALGORITHM for an unknown
   * algorithm, OPENGSLB_ERR_STATE_WRITE when a new key cannot be stored.
   */
  static async open(
    store: StateStore,
    zones: readonly string[],
    config: DnssecConfig,
    opts: { readonly nowMs?: () => number; readonly switchAfterMs?: number; readonly onKeyCreated?: (info: DnssecKeyInfo) => void } = {},
  ): Promise<{ keyring: Keyring; changes: KeyringChanges }> {
    const keyring = new Keyring(store, config, opts.nowMs ?? Date.now, opts.switchAfterMs ?? ROLLOVER_SWITCH_AFTER_MS, opts.onKeyCreated ?? (() => undefined));
    const changes = await keyring.ensure(zones, config);
    return { keyring, changes };
  }

  /** The state store the keys live in (its location names it in messages). */
  get store(): StateStore {
    return this.#store;
  }

  /** Validity of new signatures, seconds (overwatch.dnssec.signature_validity). */
  get validitySec(): number {
    return this.#config.signatureValiditySec;
  }

  /** The keys per zone apex. */
  get zones(): ReadonlyMap<string, ZoneKeys> {
    return this.#zones;
  }

  /**
   * Makes sure every zone of `zones` has an active key (same errors as open)
   * and takes `config` (a reload may change the algorithm of keys generated
   * from now on, and the signature validity). Zones no longer listed drop out
   * of the keyring; their keys stay in the store.
   */
  async ensure(zones: readonly string[], config: DnssecConfig = this.#config): Promise<KeyringChanges> {
    return this.commit(await this.prepare(zones, config));
  }

  /**
   * Loads the keys of `zones` and generates a key for each zone that has no
   * active one, without storing it or changing what the keyring holds (see
   * PreparedKeys). Throws as open() does, OPENGSLB_ERR_STATE_WRITE aside.
   */
  async prepare(zones: readonly string[], config: DnssecConfig = this.#config): Promise<PreparedKeys> {
    const result = await ensureZoneKeys(this.#store, zones, config.algorithm, { nowMs: this.#nowMs, parse: this.#parse, write: false });
    return { zones: result.zones, config, changes: { created: result.created, algorithmMismatches: result.algorithmMismatches } };
  }

  /**
   * Stores the keys `prepared` generated and makes its zones and config the
   * keyring's. Throws OPENGSLB_ERR_STATE_WRITE when a key cannot be stored;
   * then the keys of `prepared` stored so far are removed again and the
   * keyring is unchanged.
   */
  async commit(prepared: PreparedKeys): Promise<KeyringChanges> {
    const written: DnssecKeyInfo[] = [];
    try {
      for (const info of prepared.changes.created) {
        // A generated key is its zone's active one (ensureZoneKeys makes one only for a zone without).
        await this.#store.putDnssecKey(toStoredKey(prepared.zones.get(info.zone)!.active));
        written.push(info);
      }
    } catch (err) {
      // Nobody has seen these keys (not held, so neither served, put on the bus nor sent to key-sync peers): dropping them is safe.
      for (const info of written) await this.#store.deleteDnssecKey(info.zone, info.keyTag).catch(() => undefined);
      throw err;
    }
    this.#config = prepared.config;
    this.#zones = new Map(prepared.zones);
    // Forget the parsed keys no zone holds now (older states, zones dropped, zones of refused reloads).
    const held = new Set<DnssecKey>();
    for (const z of this.#zones.values()) for (const k of z.keys) held.add(k);
    for (const [text, key] of this.#parsed) if (!held.has(key)) this.#parsed.delete(text);
    this.#created(prepared.changes.created);
    return prepared.changes;
  }

  /** The DNSKEY rdatas each of `zones` publishes: the keyring's (dnskeys()), or a reload's prepared ones for compiling the snapshot that commits them. */
  static dnskeysOf(zones: ReadonlyMap<string, ZoneKeys>): Map<string, Uint8Array[]> {
    const out = new Map<string, Uint8Array[]>();
    for (const [zone, keys] of zones) out.set(zone, publishedDnskeys(keys));
    return out;
  }

  /**
   * Re-reads from the store the keys of `zones` (default: every zone held),
   * after a rollover step, a key-sync import or a key from the bus wrote
   * there. Only those zones' keys are read and parsed; a zone not held is
   * left out. A zone found without an active key (its keys all retired or
   * gone from the store) gets a new one, stored, counted and reported to
   * onKeyCreated like one generated at a start: never silently, as its DS
   * must be published at the parent.
   */
  async reload(zones: Iterable<string> = this.#zones.keys()): Promise<void> {
    const held = [...zones].filter((zone) => this.#zones.has(zone));
    const result = await ensureZoneKeys(this.#store, held, this.#config.algorithm, { nowMs: this.#nowMs, parse: this.#parse });
    for (const [zone, keys] of result.zones) this.#zones.set(zone, keys);
    this.#created(result.created);
  }

  /** The DNSKEY rdatas each zone publishes (published and active keys), for the snapshot compiler. */
  dnskeys(): Map<string, Uint8Array[]> {
    return Keyring.dnskeysOf(this.#zones);
  }

  /**
   * What the DNS workers sign with, per zone index of `zoneOrder` (the
   * snapshot's zones, in order): see zoneSigners().
   */
  workerDnssec(zoneOrder: readonly string[]): WorkerDnssec {
    const zones: (ZoneSigners | null)[] = zoneOrder.map((name) => {
      const keys = this.#zones.get(name);
      return keys === undefined ? null : zoneSigners(keys);
    });
    return { zones, validitySec: this.#config.signatureValiditySec };
  }

  /** Every key of every zone (retired ones included), in the API's form. */
  keyViews(nowMs: number = this.#nowMs()): DnssecKeyView[] {
    const out: DnssecKeyView[] = [];
    for (const keys of this.#zones.values()) {
      const signers = dataSigners(keys);
      for (const k of keys.keys) {
        const v = keyStatusView(k.info, nowMs);
        out.push({
          zone: v.zone,
          key_tag: v.keyTag,
          algorithm: v.algorithm,
          algorithm_number: k.info.algorithm,
          flags: v.flags,
          public_key: v.publicKey,
          created: v.created,
          age_seconds: v.ageSeconds,
          state: v.state,
          signing: signers.includes(k),
        });
      }
    }
    return out;
  }

  /** The DS records of ds(zone) in the API's form. */
  dsViews(zone: string | null): DsRecordView[] {
    return this.ds(zone).map((d) => ({ zone: d.zone, key_tag: d.keyTag, algorithm: d.algorithm, digest_type: d.digestType, digest: d.digest, record: d.record }));
  }

  /** Every key of every zone (retired ones included), as the status API shows them. */
  status(nowMs: number = this.#nowMs()): KeyStatusView[] {
    const out: KeyStatusView[] = [];
    for (const keys of this.#zones.values()) for (const k of keys.keys) out.push(keyStatusView(k.info, nowMs));
    return out;
  }

  /**
   * The DS records to publish at the parent for `zone` (every zone when
   * null): one per key in the DNSKEY RRset (published and active). Throws
   * OPENGSLB_ERR_NOT_FOUND for a zone that is not signed here.
   */
  ds(zone: string | null): DsView[] {
    if (zone !== null && !this.#zones.has(zone)) {
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `zone "${zone}" is not signed here; signed zones: ${[...this.#zones.keys()].join(', ') || '(none)'}`);
    }
    const out: DsView[] = [];
    for (const [name, keys] of this.#zones) {
      if (zone !== null && name !== zone) continue;
      for (const k of keys.keys) if (k.info.state !== 'retired') out.push(dsOf(k.info));
    }
    return out;
  }

  // ---- Key rollover (docs/dnssec.md#key-rollover)

  #zoneKeys(zone: string): ZoneKeys {
    const keys = this.#zones.get(zone);
    if (keys === undefined) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `zone "${zone}" is not signed here; signed zones: ${[...this.#zones.keys()].join(', ') || '(none)'}`);
    return keys;
  }

  /** Where the rollover of `zone` stands. Throws OPENGSLB_ERR_NOT_FOUND for a zone that is not signed here. */
  rolloverStatus(zone: string): RolloverView {
    const keys = this.#zoneKeys(zone);
    const published = keys.keys.filter((k) => k.info.state === 'published');
    const active = keys.keys.filter((k) => k.info.state === 'active');
    const signing = keys.active.info.keyTag;
    if (published.length > 0) {
      const next = published[published.length - 1];
      const switchAt = new Date(next.info.createdAtMs + this.switchAfterMs).toISOString();
      return {
        zone, phase: 'published', signing_key: signing, new_key: next.info.keyTag, old_keys: active.map((k) => k.info.keyTag), switch_at: switchAt,
        next_step: `wait: key ${next.info.keyTag} is published in the DNSKEY RRset and starts signing at ${switchAt}, once every resolver has seen it (the DNSKEY TTL); nothing to do until then`,
      };
    }
    if (active.length > 1) {
      const old = active.filter((k) => k !== keys.active).map((k) => k.info.keyTag);
      return {
        zone, phase: 'signing', signing_key: signing, new_key: signing, old_keys: old, switch_at: null,
        next_step: `publish the DS of key ${signing} at the parent (opengslb-cli dnssec ds --zone ${zone}), wait until the parent serves it and the old DS's TTL has passed, then run opengslb-cli dnssec rollover finish --zone ${zone} to retire key${old.length > 1 ? 's' : ''} ${old.join(', ')}`,
      };
    }
    return {
      zone, phase: 'none', signing_key: signing, new_key: null, old_keys: [], switch_at: null,
      next_step: `no rollover running; opengslb-cli dnssec rollover start --zone ${zone} publishes a new key`,
    };
  }

  /**
   * Starts a rollover of `zone`: makes a new key (the configured algorithm)
   * and stores it as published, so the next snapshot carries it in the DNSKEY
   * RRset while the current key keeps signing. Throws OPENGSLB_ERR_DNSSEC_ROLLOVER
   * when a rollover is already running, OPENGSLB_ERR_NOT_FOUND for a zone not
   * signed here, OPENGSLB_ERR_STATE_WRITE when the key cannot be stored.
   */
  async rolloverStart(zone: string): Promise<RolloverView> {
    const keys = this.#zoneKeys(zone);
    const status = this.rolloverStatus(zone);
    if (status.phase !== 'none') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: a rollover is already running (${status.phase}); next step: ${status.next_step}`);
    }
    const key = await generateZoneKey(zone, this.#config.algorithm, { nowMs: this.#nowMs(), state: 'published', avoidTags: new Set(keys.keys.map((k) => k.info.keyTag)) });
    await this.#store.putDnssecKey(toStoredKey(key));
    await this.reload([zone]);
    return this.rolloverStatus(zone);
  }

  /** The earliest time (epoch ms) a published key is due to start signing, or null when none waits. */
  nextSwitchMs(): number | null {
    let next: number | null = null;
    for (const keys of this.#zones.values()) {
      for (const k of keys.keys) {
        if (k.info.state !== 'published') continue;
        const at = k.info.createdAtMs + this.switchAfterMs;
        if (next === null || at < next) next = at;
      }
    }
    return next;
  }

  /**
   * Makes every published key whose wait is over (switchAfterMs after it was
   * made) active: being the newest active key, it signs the zone's data from
   * the next snapshot on, and the old key keeps signing the DNSKEY RRset.
   * Returns the zones that changed (the caller publishes a new snapshot).
   */
  async switchDue(nowMs: number = this.#nowMs()): Promise<string[]> {
    const changed: string[] = [];
    for (const [zone, keys] of this.#zones) {
      for (const k of keys.keys) {
        if (k.info.state === 'published' && k.info.createdAtMs + this.switchAfterMs <= nowMs) {
          await this.#store.putDnssecKey(toStoredKey(withState(k, 'active')));
          if (!changed.includes(zone)) changed.push(zone);
        }
      }
    }
    if (changed.length > 0) await this.reload(changed);
    return changed;
  }

  /**
   * Finishes the rollover of `zone` once the new key signs: retires the older
   * active keys, so they leave the DNSKEY RRset and stop signing it. The
   * operator runs it after the new DS is at the parent. Throws
   * OPENGSLB_ERR_DNSSEC_ROLLOVER when the new key does not sign yet or no
   * rollover is running.
   */
  async rolloverFinish(zone: string): Promise<RolloverView> {
    const keys = this.#zoneKeys(zone);
    const status = this.rolloverStatus(zone);
    if (status.phase === 'published') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: the new key ${status.new_key} signs from ${status.switch_at} on; finish the rollover after that, once its DS is at the parent`);
    }
    if (status.phase === 'none') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: no rollover is running (key ${status.signing_key} signs alone); start one with opengslb-cli dnssec rollover start --zone ${zone}`);
    }
    for (const k of keys.keys) {
      if (k.info.state === 'active' && k !== keys.active) await this.#store.putDnssecKey(toStoredKey(withState(k, 'retired')));
    }
    await this.reload([zone]);
    return this.rolloverStatus(zone);
  }
}

/**
 * The keys that sign one zone's data: the newest active key, then, for each other
 * algorithm among the keys in the DNSKEY RRset (published or active), one
 * key of it: its newest active key, else its newest published one. RFC 4035
 * §2.2 has every RRset signed with each algorithm of the apex DNSKEY RRset,
 * and a validator that hardens against downgrades (Unbound's
 * harden-algo-downgrade) asks for a signature of every algorithm of the DS it
 * holds; so from the start of an algorithm rollover until its finish both
 * algorithms sign the data (RFC 6781 §4.1.4), while a rollover within one
 * algorithm keeps one data signer.
 */
function dataSigners(zone: ZoneKeys): DnssecKey[] {
  const data: DnssecKey[] = [zone.active];
  // Keys are oldest first: the last one of an algorithm seen in a state is its newest.
  for (const k of zone.keys) {
    if (k.info.state === 'retired' || k.info.algorithm === zone.active.info.algorithm) continue;
    const i = data.findIndex((d) => d.info.algorithm === k.info.algorithm);
    if (i < 0) data.push(k);
    else if (k.info.state === 'active' || data[i].info.state === 'published') data[i] = k;
  }
  return data;
}

/** What the DNS workers sign one zone with: dataSigners() for its data; for its DNSKEY RRset every active key, plus a data signer that is not active yet. */
function zoneSigners(zone: ZoneKeys): ZoneSigners {
  const data = dataSigners(zone);
  const dnskey = zone.keys.filter((k) => k.info.state === 'active');
  for (const k of data) if (!dnskey.includes(k)) dnskey.push(k);
  return { data: data.map(signerKeyOf), dnskey: dnskey.map(signerKeyOf) };
}

/** The same key in another rollover state. */
function withState(key: DnssecKey, state: DnssecKeyState): DnssecKey {
  return { info: Object.freeze({ ...key.info, state }), secret: key.secret };
}
