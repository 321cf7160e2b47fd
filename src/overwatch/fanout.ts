// Main thread. Turns per-server verdicts into the per-domain health words the
// DNS workers read. A server has one slot (check verdict, latency, last up);
// each domain that answers it has its own member word, which carries the
// check verdict unless an operator override, held and resolved by the
// registry (Registry.overrideFor: domain > server > region scope), says otherwise. Every write ends with one epoch bump, so a worker
// sees a verdict or an override on its very next query.

import { covers, type OverrideTarget } from '../registry/overrides.ts';
import type { MemberModel, Registry } from '../registry/registry.ts';
import {
  bumpEpoch, HEALTH_DRAINED, HEALTH_HEALTHY, LIVE_CAPACITY, readHealth, storeHealth, writeLastUp, writeLatency,
} from '../snapshot/live-slots.ts';
import type { HealthSink } from '../health/types.ts';

const NO_MEMBERS: readonly MemberModel[] = [];

/** The members an override can cover, by the names its target gives; each list in members order. */
interface MemberIndex {
  /** By server address: what server- and domain-scope targets name. */
  readonly byAddress: Map<string, MemberModel[]>;
  /** By the server's region: what region-scope targets name. */
  readonly byRegion: Map<string, MemberModel[]>;
}

/** Builds the MemberIndex of `members`: one pass, two map lookups a member. */
function indexMembers(members: readonly MemberModel[]): MemberIndex {
  const byAddress = new Map<string, MemberModel[]>();
  const byRegion = new Map<string, MemberModel[]>();
  for (const m of members) {
    // A literal of one, as in setMembers: most addresses have one member per domain.
    const forAddress = byAddress.get(m.server.address);
    if (forAddress === undefined) byAddress.set(m.server.address, [m]);
    else forAddress.push(m);
    const forRegion = byRegion.get(m.server.region);
    if (forRegion === undefined) byRegion.set(m.server.region, [m]);
    else forRegion.push(m);
  }
  return { byAddress, byRegion };
}

export class HealthFanout {
  /** The live slots currently published (replaced when a publish grows them). */
  live: Int32Array;
  readonly #registry: Registry;
  #byServer = new Map<number, MemberModel[]>();
  /** Members by what overrides name; built by the first applyOverride() after setMembers(), null until then. */
  #index: MemberIndex | null = null;
  #members: readonly MemberModel[] = [];
  /** Called with server slots whose verdict just became unhealthy (their last-up time is final). */
  onDown: ((slots: readonly number[]) => void) | null = null;
  /** Called with server slots whose last-up time moved. */
  onLastUp: ((slots: readonly number[], unixSec: number) => void) | null = null;

  constructor(live: Int32Array, registry: Registry) {
    this.live = live;
    this.#registry = registry;
  }

  /** Takes the members of a newly compiled snapshot; call apply() before publishing it. */
  setMembers(members: readonly (MemberModel | null)[]): void {
    const list: MemberModel[] = [];
    const byServer = new Map<number, MemberModel[]>();
    for (const m of members) {
      if (m === null) continue;
      list.push(m);
      // A literal of one: `[]` then push() reserves 17 slots (2 MB at 15 000 servers, most in one domain).
      const forServer = byServer.get(m.server.slot);
      if (forServer === undefined) byServer.set(m.server.slot, [m]);
      else forServer.push(m);
    }
    this.#members = list;
    this.#byServer = byServer;
    // Built when an override is next written, not here: building it with the
    // other index took setMembers from 4 to 10 ms at 40 000 members (Node 24),
    // paid at every publish, while override writes are rare.
    this.#index = null;
  }

  /** Every member of the served snapshot. */
  get members(): readonly MemberModel[] {
    return this.#members;
  }

  /** Computes what a member's word should hold: the override that decides it (the registry's choice), else the server's verdict. */
  effective(member: MemberModel): number {
    const override = this.#registry.overrideFor(member.domain, member.server);
    if (override !== null) return override.healthy ? HEALTH_HEALTHY : HEALTH_DRAINED;
    return readHealth(this.live, member.server.slot);
  }

  /** Rewrites every member word from the server verdicts and overrides (after a compile, or a bulk change). */
  apply(): void {
    for (const m of this.#members) storeHealth(this.live, m.memberSlot, this.effective(m));
    bumpEpoch(this.live);
  }

  /**
   * Rewrites the member words `target` covers (one domain's address, an
   * address in every domain, or a region's servers) after an override of it
   * was set, cleared or ended, in members order; returns how many. Visits
   * only the members of the target's address or region; the first call after
   * setMembers() also builds that index (one pass over the members).
   */
  applyOverride(target: OverrideTarget): number {
    return this.applyOverrides([target]);
  }

  /**
   * Rewrites the member words of every target, as applyOverride() does, with
   * one epoch bump for the batch (none for an empty one); returns how many
   * words. Overrides ending together (OverrideExpiry) use it: every bump makes
   * every worker rebuild its healthy lists.
   */
  applyOverrides(targets: readonly OverrideTarget[]): number {
    if (targets.length === 0) return 0;
    let touched = 0;
    for (const target of targets) touched += this.#rewriteCovered(target);
    bumpEpoch(this.live);
    return touched;
  }

  /** Rewrites the member words `target` covers without bumping the epoch; returns how many. */
  #rewriteCovered(target: OverrideTarget): number {
    // Why an index: when a batch of overrides ends together (OverrideExpiry.expireDue,
    // or the bus replaying them one by one), a pass over every member per override cost
    // members × overrides on the main thread: 0.3–0.8 s at 40 000 members × 2 000
    // server overrides, now 15–40 ms including the index build (Node 24). A domain-scope
    // target walks its address's members (one per domain that answers the address)
    // rather than a third index keyed by domain and address, a string key per member.
    // covers() stays the one definition of what a target covers.
    const index = (this.#index ??= indexMembers(this.#members));
    const candidates = (target.scope === 'region' ? index.byRegion.get(target.region) : index.byAddress.get(target.address)) ?? NO_MEMBERS;
    let touched = 0;
    for (const m of candidates) {
      if (covers(target, m.domain, m.server.address, m.server.region)) {
        storeHealth(this.live, m.memberSlot, this.effective(m));
        touched++;
      }
    }
    return touched;
  }

  /** Sets server verdicts and passes them to their members. */
  setServerHealth(slots: readonly number[], state: number): void {
    for (const slot of slots) {
      storeHealth(this.live, slot, state);
      const members = this.#byServer.get(slot);
      if (members === undefined) continue;
      for (const m of members) storeHealth(this.live, m.memberSlot, this.effective(m));
    }
    bumpEpoch(this.live);
  }

  /** The sink the health scheduler writes its verdicts through. */
  sink(): HealthSink {
    return {
      setHealth: (slots, state) => {
        this.setServerHealth(slots, state);
        if (state !== HEALTH_HEALTHY) this.onDown?.(slots);
      },
      setLatency: (slots, emaMicros, samples) => {
        for (const slot of slots) writeLatency(this.live, slot, emaMicros, samples);
      },
      setLastUp: (slots, unixSec) => {
        for (const slot of slots) writeLastUp(this.live, slot, unixSec);
        this.onLastUp?.(slots, unixSec);
      },
    };
  }

  /** Number of slots the live buffer holds. */
  get capacity(): number {
    return this.live[LIVE_CAPACITY];
  }
}
