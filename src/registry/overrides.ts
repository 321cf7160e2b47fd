// Main thread, cold path. What an operator override is: its scope (one
// server address in one domain, one address in every domain, or every server
// of a region in every domain), its verdict and its optional end; how it is
// stored (src/state/store.ts keeps the flat StoredOverride, whose older form
// has no scope); and which one applies when several cover one domain's server.
//
// Resolution, most specific first (Registry.overrideFor):
//
//   domain  (service, address)   "192.0.2.1 in app.example.test"
//     └─ server  (address)       "192.0.2.1 in every domain"
//          └─ region  (region)   "every server of eu-west, every domain"
//
// An override is in force while the registry holds it; the expiry
// (src/overwatch/override-expiry.ts) removes it when the wall clock reaches
// its end. DNS, the API and explain read the same registry, so they agree.

import type { StoredOverride } from '../state/store.ts';
import { overrideKey, regionOverrideKey, serverOverrideKey } from './keys.ts';

/** The scopes, most specific first: that order is the resolution order. */
export const OVERRIDE_SCOPES = ['domain', 'server', 'region'] as const;
export type OverrideScope = (typeof OVERRIDE_SCOPES)[number];

/** What an override covers. Names are normalised (domain lower case, no trailing dot; address in normal form). */
export type OverrideTarget =
  | { readonly scope: 'domain'; readonly service: string; readonly address: string }
  | { readonly scope: 'server'; readonly address: string }
  | { readonly scope: 'region'; readonly region: string };

/** One operator override as the registry holds it. Immutable: a change is a new record under the same key. */
export interface Override {
  readonly target: OverrideTarget;
  /** The health DNS uses for what it covers while it lasts. */
  readonly healthy: boolean;
  readonly reason: string;
  /** Who set it: a person or a tool. */
  readonly source: string;
  /** Epoch milliseconds. */
  readonly createdAtMs: number;
  /** When the health checks decide again, epoch milliseconds; null: until cleared. */
  readonly expiresAtMs: number | null;
}

/** The override's identity key (src/registry/keys.ts): also its key in the state store. */
export function keyOfTarget(target: OverrideTarget): string {
  switch (target.scope) {
    case 'domain':
      return overrideKey(target.service, target.address);
    case 'server':
      return serverOverrideKey(target.address);
    case 'region':
      return regionOverrideKey(target.region);
  }
}

/** Does `target` cover the server at `address` in `region`, as domain `domain` answers it? */
export function covers(target: OverrideTarget, domain: string, address: string, region: string): boolean {
  switch (target.scope) {
    case 'domain':
      return target.service === domain && target.address === address;
    case 'server':
      return target.address === address;
    case 'region':
      return target.region === region;
  }
}

/** Names the target for messages and logs: "192.0.2.1 in app.example.test", "192.0.2.1 in every domain", "region eu-west". */
export function describeTarget(target: OverrideTarget): string {
  switch (target.scope) {
    case 'domain':
      return `${target.address} in ${target.service}`;
    case 'server':
      return `${target.address} in every domain`;
    case 'region':
      return `every server of region ${target.region}`;
  }
}

/** Has the override's end not yet come at wall-clock `nowMs` (no end, or an end still ahead)? Decides what the expiry removes and whether a received one is taken. */
export function inForce(o: Override, nowMs: number): boolean {
  return o.expiresAtMs === null || o.expiresAtMs > nowMs;
}

/** Converts a stored override to the registry's form; one stored without a scope (by earlier versions) is a (domain, address) override. */
export function fromStored(s: StoredOverride): Override {
  const scope = s.scope ?? 'domain';
  const target: OverrideTarget =
    scope === 'server' ? { scope, address: s.address }
    : scope === 'region' ? { scope, region: s.region ?? '' }
    : { scope: 'domain', service: s.service, address: s.address };
  return { target, healthy: s.healthy, reason: s.reason, source: s.source, createdAtMs: s.createdAtMs, expiresAtMs: s.expiresAtMs ?? null };
}

/** Converts an override to its stored form: the fields earlier versions wrote, plus scope, region and expiry. */
export function toStored(o: Override): StoredOverride {
  const t = o.target;
  return {
    scope: t.scope,
    service: t.scope === 'domain' ? t.service : '',
    address: t.scope === 'region' ? '' : t.address,
    ...(t.scope === 'region' ? { region: t.region } : {}),
    healthy: o.healthy,
    reason: o.reason,
    source: o.source,
    createdAtMs: o.createdAtMs,
    expiresAtMs: o.expiresAtMs,
  };
}
