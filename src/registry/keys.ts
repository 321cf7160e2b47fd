// Main thread, cold path. Every string key the overwatch builds, each in one
// function: a server's identity, one domain's use of a server (its member
// slot), an override, and a routing-decision counter. Keys are built, compared
// and stored; none is ever parsed back. Two of them are also persisted (the
// state store's last-up times and overrides), so changing a format here is a
// change of the store's format.
//
// Keys held in maps are joined, not written as template literals: V8 builds a
// long template result as a tree of cons strings (32 bytes a node, plus the
// pieces), join() as one flat string, about 70 bytes less a key; at 5 000
// agents × 3 backends the overwatch holds some 100 000 of them (server, member
// and backend keys, labels), 4 MB of heap (bench/agents-scale.ts heap snapshot).

/** Identifies a server: the same address and port in the same region is the same server. Persisted (last-up times). */
export function serverKey(region: string, address: string, port: number): string {
  return [region, address, port].join('|');
}

/**
 * Identifies a server bound to one service (an agent's backend): the same
 * address and port may serve two services, each with its own claims and
 * health, so the service is part of its identity. Persisted (last-up times).
 */
export function serviceServerKey(service: string, region: string, address: string, port: number): string {
  return [region, address, port, service].join('|');
}

/**
 * Identifies one domain's use of one server: its member slot, whose health
 * word carries the domain's override, so an override of (domain, address)
 * leaves the same server's answers in other domains alone.
 */
export function memberKey(domain: string, server: string): string {
  return [domain, server].join('#');
}

/**
 * Identifies an operator override of one server address in one domain
 * (service). Persisted (overrides): every version stored this format, so it
 * stays as it is.
 */
export function overrideKey(service: string, address: string): string {
  return [service, address].join('|');
}

// The wider scopes start with "@", which no domain name can start with
// (normaliseDomainName accepts only letters, digits, "-" and "_"), so
// their keys never meet a (service, address) key.

/** Identifies an override of one server address in every domain that answers it. Persisted (overrides). */
export function serverOverrideKey(address: string): string {
  return `@server|${address}`;
}

/** Identifies an override of every server of one region, in every domain. Persisted (overrides). */
export function regionOverrideKey(region: string): string {
  return `@region|${region}`;
}

/** Identifies a routing-decision counter: one per (domain, algorithm), so a policy change starts a new series. */
export function decisionKey(domain: string, algorithm: string): string {
  return `${domain}|${algorithm}`;
}

/** Identifies a geolocation decision counter: one per (domain, region, how the region was decided). */
export function geoDecisionKey(domain: string, region: string, match: string): string {
  return `${domain}|geo|${region}|${match}`;
}

/** Identifies a geolocation fallback counter: one per (domain, reason), with the decided region when there is one. */
export function geoFallbackKey(domain: string, region: string | null, reason: string): string {
  return `${domain}|geo-fallback|${region ?? ''}|${reason}`;
}
