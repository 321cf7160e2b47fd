// Main thread, cold path. The overwatch's DNSSEC keys as one object: every
// signed zone's keys (loaded from the state store, generated when missing),
// what the snapshot publishes from them (the DNSKEY RRset per zone), what the
// DNS workers sign with (SignerKeys per zone, KeyObjects that clone into the
// workers), and the public views the API and the CLI show. Private material
// never leaves it except into the store and, encrypted, to a key-sync peer.

import type { Config, DnssecConfig } from '../config/types.ts';
import type { StateStore, StoredDnssecKey } from '../state/store.ts';
import type { WorkerDnssec, ZoneSigners } from '../../workers/messages.ts';
import { OpenGslbError } from '../lib/errors.ts';
import {
  algorithmNumber, DNSKEY_TTL_SEC, dsOf, ensureZoneKeys, generateZoneKey, inDnskeySet, keyFromStored, keyStatusView, publishedDnskeys, signerKeyOf, toStoredKey,
  type DnssecKey, type DnssecKeyInfo, type DnssecKeyState, type DsView, type EnsureKeysResult, type KeyStatusView, type ZoneKeys,
} from './keys.ts';

/**
 * How long after a new key is published it starts signing: the DNSKEY TTL,
 * so every resolver that cached the old DNSKEY RRset has fetched the new one
 * (with both keys) before it sees a signature by the new key, plus five
 * minutes for the snapshot to reach every overwatch and for clock skew.
 */
export const ROLLOVER_SWITCH_AFTER_MS = (DNSKEY_TTL_SEC + 300) * 1000;

/** The margin added to every rollover wait: the snapshot reaching every overwatch, clock skew. */
const ROLLOVER_MARGIN_SEC = 300;

/**
 * The largest TTL each zone of `config` serves a signed RRset with (its SOA
 * and NS, its static records, its load-balanced names, the DNSKEY RRset):
 * how long a resolver may hold an RRset with the signatures it had.
 */
export function largestTtlsOf(config: Config): Map<string, number> {
  const out = new Map<string, number>();
  for (const z of config.dns.zones) {
    let ttl = Math.max(DNSKEY_TTL_SEC, z.soa.ttlSec);
    for (const r of z.records) ttl = Math.max(ttl, r.ttlSec);
    out.set(z.name, ttl);
  }
  for (const d of config.domains) if (out.has(d.zone)) out.set(d.zone, Math.max(out.get(d.zone)!, d.ttlSec));
  return out;
}

/** Where a zone's key rollover stands. */
export type RolloverPhase = 'none' | 'published' | 'signing' | 'withdrawing';

/** GET /api/v1/dnssec/rollover: one zone's rollover, with the next step in words. */
export interface RolloverView {
  readonly zone: string;
  /**
   * none: one key signs; published: a new key is in the DNSKEY RRset, waiting for the DNSKEY TTL; signing: the new key signs, the old one still signs the DNSKEY RRset until finish;
   * withdrawing: after the finish of an algorithm rollover, the old key is out of the DNSKEY RRset and still signs until it retires.
   * A new key of another algorithm signs the data from published on, first without being in the DNSKEY RRset (until its publishAtMs), and the old one until it retires (zoneSigners()).
   */
  readonly phase: RolloverPhase;
  /** The key that signs the zone's data now. */
  readonly signing_key: number;
  /** The key being rolled to, or null. */
  readonly new_key: number | null;
  /** Keys the finish step retires. */
  readonly old_keys: readonly number[];
  /** When the new key starts signing (RFC 3339), or null; withdrawing: when the old key retires. */
  readonly switch_at: string | null;
  /** published: when a new algorithm's key joins the DNSKEY RRset (RFC 3339) while it signs unpublished; null once it is in it, and in the other phases. */
  readonly publish_at: string | null;
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
  /** published: in the DNSKEY RRset (a new algorithm's key: from its publish time on), not the zone's signing key yet; active: signing; withdrawn: out of the DNSKEY RRset, still signing; retired: neither. */
  readonly state: string;
  /** This key signs the zone's data now: the newest active key, and during an algorithm rollover one key of the other algorithm too (dataSigners()). */
  readonly signing: boolean;
  /** This key is in the zone's DNSKEY RRset now (inDnskeySet): false for a retired or withdrawn key, and for a new algorithm's published key before its publish time. */
  readonly in_dnskey_rrset: boolean;
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
  /** How long a published key waits before it signs (ROLLOVER_SWITCH_AFTER_MS; tests shorten it); also how long a withdrawn key keeps signing. */
  readonly switchAfterMs: number;
  /** How long a new algorithm's key signs before it is published; null: the zone's largest TTL and five minutes (publishAfterMs()). Tests shorten it. */
  readonly #publishAfterMs: number | null;
  /** The largest TTL of each zone's signed data (largestTtlsOf), from useTtls(). */
  #largestTtlSec = new Map<string, number>();
  /** Up to when switchDue() reported publications. */
  #dueCheckedMs: number;
  /** Told of every key generated because its zone had no active key, once it is stored and held (see open()). */
  readonly #onKeyCreated: (info: DnssecKeyInfo) => void;
  #keysCreated = 0;

  private constructor(store: StateStore, config: DnssecConfig, nowMs: () => number, switchAfterMs: number, publishAfterMs: number | null, onKeyCreated: (info: DnssecKeyInfo) => void) {
    this.#store = store;
    this.#config = config;
    this.#nowMs = nowMs;
    this.switchAfterMs = switchAfterMs;
    this.#publishAfterMs = publishAfterMs;
    this.#dueCheckedMs = nowMs();
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
    opts: {
      readonly nowMs?: () => number;
      readonly switchAfterMs?: number;
      /** How long a new algorithm's key signs before it is published (default: the zone's largest TTL, from useTtls(), and five minutes). */
      readonly publishAfterMs?: number;
      readonly onKeyCreated?: (info: DnssecKeyInfo) => void;
    } = {},
  ): Promise<{ keyring: Keyring; changes: KeyringChanges }> {
    const keyring = new Keyring(store, config, opts.nowMs ?? Date.now, opts.switchAfterMs ?? ROLLOVER_SWITCH_AFTER_MS, opts.publishAfterMs ?? null, opts.onKeyCreated ?? (() => undefined));
    const changes = await keyring.ensure(zones, config);
    return { keyring, changes };
  }

  /** Takes the TTLs of `config` (at start and after each reload): a new algorithm's key signs for the zone's largest TTL before it is published. */
  useTtls(config: Config): void {
    this.#largestTtlSec = largestTtlsOf(config);
  }

  /**
   * How long a new algorithm's key of `zone` signs before it joins the DNSKEY
   * RRset: the largest TTL of the zone's signed data and five minutes, so
   * every RRset a resolver holds carries its signature by then.
   */
  publishAfterMs(zone: string): number {
    return this.#publishAfterMs ?? (Math.max(DNSKEY_TTL_SEC, this.#largestTtlSec.get(zone) ?? 0) + ROLLOVER_MARGIN_SEC) * 1000;
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
  static dnskeysOf(zones: ReadonlyMap<string, ZoneKeys>, nowMs: number = Date.now()): Map<string, Uint8Array[]> {
    const out = new Map<string, Uint8Array[]>();
    for (const [zone, keys] of zones) out.set(zone, publishedDnskeys(keys, nowMs));
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

  /** The DNSKEY rdatas each zone publishes now (inDnskeySet), for the snapshot compiler. */
  dnskeys(): Map<string, Uint8Array[]> {
    return Keyring.dnskeysOf(this.#zones, this.#nowMs());
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
          in_dnskey_rrset: inDnskeySet(k.info, nowMs),
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
   * null): one per key in the DNSKEY RRset now (inDnskeySet). Throws
   * OPENGSLB_ERR_NOT_FOUND for a zone that is not signed here.
   */
  ds(zone: string | null): DsView[] {
    if (zone !== null && !this.#zones.has(zone)) {
      throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `zone "${zone}" is not signed here; signed zones: ${[...this.#zones.keys()].join(', ') || '(none)'}`);
    }
    const out: DsView[] = [];
    for (const [name, keys] of this.#zones) {
      if (zone !== null && name !== zone) continue;
      const now = this.#nowMs();
      for (const k of keys.keys) if (inDnskeySet(k.info, now)) out.push(dsOf(k.info));
    }
    return out;
  }

  // ---- Key rollover (docs/dnssec.md#key-rollover)

  #zoneKeys(zone: string): ZoneKeys {
    const keys = this.#zones.get(zone);
    if (keys === undefined) throw new OpenGslbError('OPENGSLB_ERR_NOT_FOUND', `zone "${zone}" is not signed here; signed zones: ${[...this.#zones.keys()].join(', ') || '(none)'}`);
    return keys;
  }

  /** When a published key starts signing as the zone's key: the DNSKEY TTL and five minutes (switchAfterMs) after it joined the DNSKEY RRset. */
  #switchAtMs(info: DnssecKeyInfo): number {
    return (info.publishAtMs ?? info.createdAtMs) + this.switchAfterMs;
  }

  /** Where the rollover of `zone` stands. Throws OPENGSLB_ERR_NOT_FOUND for a zone that is not signed here. */
  rolloverStatus(zone: string): RolloverView {
    const keys = this.#zoneKeys(zone);
    const published = keys.keys.filter((k) => k.info.state === 'published');
    const active = keys.keys.filter((k) => k.info.state === 'active');
    const withdrawn = keys.keys.filter((k) => k.info.state === 'withdrawn');
    const signing = keys.active.info.keyTag;
    const now = this.#nowMs();
    if (published.length > 0) {
      const next = published[published.length - 1];
      const switchAt = new Date(this.#switchAtMs(next.info)).toISOString();
      const publishAt = next.info.publishAtMs ?? next.info.createdAtMs;
      const nextStep = publishAt > now
        ? `wait: key ${next.info.keyTag} of the new algorithm signs every RRset beside the old key and joins the DNSKEY RRset at ${new Date(publishAt).toISOString()} (once every RRset a resolver holds carries its signature: the zone's largest TTL), then starts signing as the zone's key at ${switchAt}; nothing to do until then`
        : `wait: key ${next.info.keyTag} is published in the DNSKEY RRset and starts signing at ${switchAt}, once every resolver has seen it (the DNSKEY TTL); nothing to do until then`;
      return {
        zone, phase: 'published', signing_key: signing, new_key: next.info.keyTag, old_keys: active.map((k) => k.info.keyTag), switch_at: switchAt,
        publish_at: publishAt > now ? new Date(publishAt).toISOString() : null, next_step: nextStep,
      };
    }
    if (active.length > 1) {
      const old = active.filter((k) => k !== keys.active).map((k) => k.info.keyTag);
      return {
        zone, phase: 'signing', signing_key: signing, new_key: signing, old_keys: old, switch_at: null, publish_at: null,
        next_step: `publish the DS of key ${signing} at the parent (opengslb-cli dnssec ds --zone ${zone}), wait until the parent serves it and the old DS's TTL has passed, then run opengslb-cli dnssec rollover finish --zone ${zone} to retire key${old.length > 1 ? 's' : ''} ${old.join(', ')}`,
      };
    }
    if (withdrawn.length > 0) {
      const retireAt = Math.max(...withdrawn.map((k) => (k.info.withdrawnAtMs ?? 0) + this.switchAfterMs));
      const tags = withdrawn.map((k) => k.info.keyTag);
      return {
        zone, phase: 'withdrawing', signing_key: signing, new_key: null, old_keys: tags, switch_at: new Date(retireAt).toISOString(), publish_at: null,
        next_step: `wait: key${tags.length > 1 ? 's' : ''} ${tags.join(', ')} of the old algorithm left the DNSKEY RRset and still sign${tags.length > 1 ? '' : 's'} every RRset until ${new Date(retireAt).toISOString()} (the DNSKEY TTL), then retire on their own; nothing to do`,
      };
    }
    return {
      zone, phase: 'none', signing_key: signing, new_key: null, old_keys: [], switch_at: null, publish_at: null,
      next_step: `no rollover running; opengslb-cli dnssec rollover start --zone ${zone} publishes a new key`,
    };
  }

  /**
   * Starts a rollover of `zone`: makes a new key (the configured algorithm)
   * and stores it as published, so the next snapshot carries it in the DNSKEY
   * RRset while the current key keeps signing. A key of an algorithm no
   * active key has (an algorithm rollover) first signs every RRset without
   * being in the DNSKEY RRset, for publishAfterMs(zone) (RFC 6781 §4.1.4).
   * Throws OPENGSLB_ERR_DNSSEC_ROLLOVER when a rollover is already running,
   * OPENGSLB_ERR_NOT_FOUND for a zone not signed here,
   * OPENGSLB_ERR_STATE_WRITE when the key cannot be stored.
   */
  async rolloverStart(zone: string): Promise<RolloverView> {
    const keys = this.#zoneKeys(zone);
    const status = this.rolloverStatus(zone);
    if (status.phase !== 'none') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: a rollover is already running (${status.phase}); next step: ${status.next_step}`);
    }
    const now = this.#nowMs();
    const wanted = algorithmNumber(this.#config.algorithm);
    const newAlgorithm = !keys.keys.some((k) => k.info.state === 'active' && k.info.algorithm === wanted);
    const key = await generateZoneKey(zone, this.#config.algorithm, {
      nowMs: now,
      state: 'published',
      ...(newAlgorithm ? { publishAtMs: now + this.publishAfterMs(zone) } : {}),
      avoidTags: new Set(keys.keys.map((k) => k.info.keyTag)),
    });
    await this.#store.putDnssecKey(toStoredKey(key));
    await this.reload([zone]);
    return this.rolloverStatus(zone);
  }

  /**
   * The earliest time (epoch ms) after `nowMs` a rollover step is due (a new
   * algorithm's key joins the DNSKEY RRset, a published key starts signing,
   * a withdrawn key retires), or null when none waits. A step already due
   * counts as now: switchDue() takes it.
   */
  nextSwitchMs(nowMs: number = this.#nowMs()): number | null {
    let next: number | null = null;
    const take = (at: number): void => {
      if (next === null || at < next) next = at;
    };
    for (const keys of this.#zones.values()) {
      for (const k of keys.keys) {
        if (k.info.state === 'published') {
          if (k.info.publishAtMs !== undefined && k.info.publishAtMs > this.#dueCheckedMs) take(k.info.publishAtMs);
          take(this.#switchAtMs(k.info));
        } else if (k.info.state === 'withdrawn') {
          take((k.info.withdrawnAtMs ?? 0) + this.switchAfterMs);
        }
      }
    }
    return next === null ? null : Math.max(next, nowMs);
  }

  /**
   * Takes the rollover steps that are due: a new algorithm's key whose
   * publish time came joins the DNSKEY RRset (nothing stored changes: the
   * next snapshot carries it); a published key whose wait is over
   * (switchAfterMs after it joined the DNSKEY RRset) becomes active and, being the newest
   * active key, signs the zone's data from the next snapshot on; a withdrawn
   * key whose wait is over retires and stops signing. Returns the zones whose
   * keys changed in the store (`stored`: the caller replicates them) and what
   * happened, for the log; the caller publishes a new snapshot when either is
   * not empty.
   */
  async switchDue(nowMs: number = this.#nowMs()): Promise<{ stored: string[]; steps: { zone: string; keyTag: number; step: 'published' | 'switched' | 'retired' }[] }> {
    const stored: string[] = [];
    const steps: { zone: string; keyTag: number; step: 'published' | 'switched' | 'retired' }[] = [];
    for (const [zone, keys] of this.#zones) {
      for (const k of keys.keys) {
        const { state, publishAtMs, withdrawnAtMs, keyTag } = k.info;
        let next: DnssecKeyState | null = null;
        if (state === 'published' && this.#switchAtMs(k.info) <= nowMs) next = 'active';
        else if (state === 'withdrawn' && (withdrawnAtMs ?? 0) + this.switchAfterMs <= nowMs) next = 'retired';
        else if (state === 'published' && publishAtMs !== undefined && publishAtMs > this.#dueCheckedMs && publishAtMs <= nowMs) steps.push({ zone, keyTag, step: 'published' });
        if (next === null) continue;
        await this.#store.putDnssecKey(toStoredKey(withState(k, next)));
        steps.push({ zone, keyTag, step: next === 'active' ? 'switched' : 'retired' });
        if (!stored.includes(zone)) stored.push(zone);
      }
    }
    this.#dueCheckedMs = Math.max(this.#dueCheckedMs, nowMs);
    if (stored.length > 0) await this.reload(stored);
    return { stored, steps };
  }

  /**
   * Finishes the rollover of `zone` once the new key signs: the older active
   * keys leave the DNSKEY RRset. One of the new key's algorithm retires at
   * once; one of another algorithm (an algorithm rollover) is withdrawn: it
   * keeps signing every RRset for switchAfterMs (the DNSKEY TTL), until no
   * resolver holds a DNSKEY RRset with it, then switchDue() retires it
   * (RFC 6781 §4.1.4). The operator runs it after the new DS is at the
   * parent. Throws OPENGSLB_ERR_DNSSEC_ROLLOVER when the new key does not
   * sign yet or no rollover is running.
   */
  async rolloverFinish(zone: string): Promise<RolloverView> {
    const keys = this.#zoneKeys(zone);
    const status = this.rolloverStatus(zone);
    if (status.phase === 'published') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: the new key ${status.new_key} signs from ${status.switch_at} on; finish the rollover after that, once its DS is at the parent`);
    }
    if (status.phase === 'withdrawing') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: the rollover is finished already; ${status.next_step}`);
    }
    if (status.phase === 'none') {
      throw new OpenGslbError('OPENGSLB_ERR_DNSSEC_ROLLOVER', `zone ${zone}: no rollover is running (key ${status.signing_key} signs alone); start one with opengslb-cli dnssec rollover start --zone ${zone}`);
    }
    const now = this.#nowMs();
    for (const k of keys.keys) {
      if (k.info.state !== 'active' || k === keys.active) continue;
      const moved = k.info.algorithm === keys.active.info.algorithm ? withState(k, 'retired') : { info: Object.freeze({ ...k.info, state: 'withdrawn' as const, withdrawnAtMs: now }), secret: k.secret };
      await this.#store.putDnssecKey(toStoredKey(moved));
    }
    await this.reload([zone]);
    return this.rolloverStatus(zone);
  }
}

/**
 * The keys that sign one zone's data: the newest active key, then, for each
 * other algorithm among the zone's published, active and withdrawn keys, one
 * key of it: its newest active key, else its newest withdrawn one, else its
 * newest published one. RFC 4035 §2.2 has every RRset signed with each
 * algorithm of the apex DNSKEY RRset, and a validator that hardens against
 * downgrades (Unbound's harden-algo-downgrade) asks for a signature of every
 * algorithm of the DS it holds. RFC 6781 §4.1.4 and RFC 6840 §5.11 order an
 * algorithm rollover so that no resolver holds a DNSKEY RRset with an
 * algorithm whose signature its cached data lack: the new algorithm signs
 * before its key is published (published with a future publishAtMs), and the
 * old one keeps signing after its key left the DNSKEY RRset (withdrawn). A
 * rollover within one algorithm keeps one data signer.
 */
function dataSigners(zone: ZoneKeys): DnssecKey[] {
  const data: DnssecKey[] = [zone.active];
  const rank = (k: DnssecKey): number => (k.info.state === 'active' ? 2 : k.info.state === 'withdrawn' ? 1 : 0);
  // Keys are oldest first: the last one of an algorithm seen in a state is its newest.
  for (const k of zone.keys) {
    if (k.info.state === 'retired' || k.info.algorithm === zone.active.info.algorithm) continue;
    const i = data.findIndex((d) => d.info.algorithm === k.info.algorithm);
    if (i < 0) data.push(k);
    else if (rank(k) >= rank(data[i])) data[i] = k;
  }
  return data;
}

/** What the DNS workers sign one zone with: dataSigners() for its data; for its DNSKEY RRset every active key, plus a data signer that is not active (a new algorithm's key, a withdrawn one). */
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
