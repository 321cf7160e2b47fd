// Main thread, cold path. The SOA serial of each zone without an explicit
// soa.serial, derived from the zone's content so that several overwatches
// serving the same config answer the same serial (from outside the zone looks
// like one zone: Zonemaster's CONSISTENCY01), and rising whenever the content
// changes.
//
// The content is what the config says the zone holds: its SOA timers and
// name servers, its static records (delegations and glue among them), and
// each of its domains with its settings, regions and the config's servers of
// those regions. Health, overrides and servers that
// agents register at run time are not content: they change answers, not the
// zone, and overwatches see them at different moments.
//
//   first time a digest is seen, with nothing stored: serial = derived(digest),
//     the same on every overwatch that starts with this content
//   the stored digest again (a restart, a reload that changed nothing else): the stored serial
//   a new digest: the stored serial + 1 (RFC 1982 arithmetic, never 0), stored
//   an explicit soa.serial: that serial, stored with the digest, so that
//     removing it later keeps it (same content) or goes on from it
//
// Overwatches that go through the same configs therefore stay equal. One that
// starts afresh with a config others reached by changes gets derived(digest),
// not their serial: set soa.serial explicitly, or copy the state directory,
// where a fleet must agree through every change (docs/configuration.md says so).

import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.ts';
import type { RegistryView } from '../registry/registry.ts';
import type { StateStore, StoredZoneSerial } from '../state/store.ts';

/** Digest of each zone's content in `view`, by apex. */
export function zoneDigests(view: RegistryView): Map<string, string> {
  const out = new Map<string, string>();
  // Each domain names its zone: grouped in one pass, not one scan of all domains per zone.
  const byZone = new Map<string, (typeof view.domains)[number][]>();
  for (const d of view.domains) {
    const list = byZone.get(d.config.zone);
    if (list === undefined) byZone.set(d.config.zone, [d]);
    else list.push(d);
  }
  for (const zone of view.zones) {
    const domains = (byZone.get(zone.name) ?? [])
      .map((d) => ({
        ...d.config,
        servers: d.members.filter((m) => m.server.source === 'config').map((m) => [m.server.key, m.server.weight, m.priority]),
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const { serial: _explicit, ...soa } = zone.soa;
    // Owner, TTL and data of each record, in no particular order (the line as written is not content).
    // Left out when there are none, so zones without records keep the digest they had before records counted.
    const records = zone.records.map((r) => JSON.stringify([r.owner, r.ttlSec, r.rdata])).sort();
    const content = JSON.stringify({ apex: zone.name, soa, nameservers: zone.nameservers, domains, ...(records.length > 0 ? { records } : {}) });
    out.set(zone.name, createHash('sha256').update(content).digest('hex'));
  }
  return out;
}

/** The serial a digest gives an overwatch that has seen no other: 1 … 2^31 − 1, a function of the digest alone. */
export function derivedSerial(digest: string): number {
  return (Number.parseInt(digest.slice(0, 8), 16) % 0x7ffffffe) + 1;
}

/** RFC 1982: the next serial after `serial`, skipping 0 (which some secondaries treat as unset). */
function nextSerial(serial: number): number {
  const next = (serial + 1) >>> 0;
  return next === 0 ? 1 : next;
}

/**
 * Says what is wrong with a stored zone serial, or null when it is usable: an
 * object with the hex SHA-256 `digest` of zoneDigests and a `serial` that is an
 * integer 0 … 2^32 − 1 (RFC 1035 §3.3.13: an unsigned 32-bit number).
 */
export function storedSerialProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${describe(value)} is not an object with digest and serial`;
  const { digest, serial } = value as Record<string, unknown>;
  if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) return `digest ${describe(digest)} is not a SHA-256 in hex`;
  if (!Number.isInteger(serial) || (serial as number) < 0 || (serial as number) > 0xffffffff) return `serial ${describe(serial)} is not an integer 0..4294967295`;
  return null;
}

/** A stored value in a log line: short, and JSON so that a string shows its quotes. */
function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Keeps each zone's serial: derived from its content, stored so that it rises with every change. */
export class ZoneSerials {
  readonly #store: StateStore;
  readonly #known: Map<string, StoredZoneSerial>;

  /**
   * Loads the stored serials. A stored entry that is damaged (not an object,
   * no SHA-256 digest, a serial that is not an integer 0 … 2^32 − 1) is
   * refused with a warning naming the zone: served, it would crash the start
   * or give the SOA a serial the zone never had (2^33 answers as 0). The zone
   * then gets its serial as if none was stored, and the next write replaces
   * the entry.
   */
  constructor(store: StateStore, log: Logger) {
    this.#store = store;
    this.#known = new Map();
    for (const [zone, value] of store.loadZoneSerials()) {
      const problem = storedSerialProblem(value);
      if (problem === null) this.#known.set(zone, value);
      else log.warn({ store: store.location, zone, reason: problem }, 'stored SOA serial refused; the zone\'s serial is derived again as if none was stored');
    }
  }

  /**
   * The serial of every zone of `view` (an explicit soa.serial included,
   * stored like a derived one). A zone whose content changed gets the next
   * serial, written to the state store before it is returned; a write that
   * fails rejects with OPENGSLB_ERR_STATE_WRITE and changes nothing.
   */
  async serialsFor(view: RegistryView): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const explicit = new Map(view.zones.map((z) => [z.name, z.soa.serial]));
    for (const [zone, digest] of zoneDigests(view)) {
      const known = this.#known.get(zone);
      const fixed = explicit.get(zone) ?? null;
      if (fixed !== null) {
        // The zone answers its explicit serial: kept as the zone's serial, so
        // that taking soa.serial out of the config later goes on from it
        // instead of falling back to an older or derived one (the serial
        // would go backwards).
        if (known === undefined || known.digest !== digest || known.serial !== fixed) {
          await this.#store.putZoneSerial(zone, { digest, serial: fixed });
          this.#known.set(zone, { digest, serial: fixed });
        }
        out.set(zone, fixed);
        continue;
      }
      if (known !== undefined && known.digest === digest) {
        out.set(zone, known.serial);
        continue;
      }
      const serial = known === undefined ? derivedSerial(digest) : nextSerial(known.serial);
      await this.#store.putZoneSerial(zone, { digest, serial });
      this.#known.set(zone, { digest, serial });
      out.set(zone, serial);
    }
    return out;
  }
}
