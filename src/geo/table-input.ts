// Main thread, cold path. Glue between the config and the geo table: what
// compileGeoTable needs from a Config (plus mappings added at run time), and
// the admin API's view of one decision (GET /api/v1/geo/test).

import type { Config, CustomMappingConfig } from '../config/types.ts';
import { GeoDecision, MATCH_CUSTOM, MATCH_TYPE_NAMES, decideRegion, maskedCidr } from './cidr-table.ts';
import type { GeoTableInput } from './cidr-table.ts';
import { CONTINENT_CODES, countryCodeOf } from './continents.ts';
import type { GeoIpReader } from './lookup.ts';
import { ipToBytes } from '../lib/ip.ts';

/** Each region's number in the geo table: its position in config.regions. */
export function regionNumbers(config: Config): Map<string, number> {
  return new Map(config.regions.map((r, i) => [r.name, i]));
}

/**
 * Builds compileGeoTable's input from `config`: region indexes are positions
 * in config.regions; `extra` mappings (such as those added through the API)
 * follow the config's. A mapping naming a region that does not exist, or a
 * network in both lists, makes compileGeoTable throw OPENGSLB_ERR_SNAPSHOT_COMPILE
 * (the API should refuse such a mapping before it gets here).
 */
export function geoTableInputOf(config: Config, extra: readonly CustomMappingConfig[] = []): GeoTableInput {
  const index = regionNumbers(config);
  const regionIndex = (name: string): number => index.get(name) ?? -1;
  const geo = config.geolocation;
  return {
    regions: config.regions.map((r) => ({ countries: r.countries, continents: r.continents })),
    defaultRegion: geo.defaultRegion === null ? -1 : regionIndex(geo.defaultRegion),
    mappings: [...geo.customMappings, ...extra].map((m) => ({ cidr: m.cidr, region: regionIndex(m.region) })),
  };
}

/** One decision as the admin API shows it: the Go original's fields (region, match_type, matched_cidr, country, continent) and the ECS scope. */
export interface GeoTestResult {
  readonly ip: string;
  /** Region name, or null when nothing decided (no mapping, no match, no default_region). */
  readonly region: string | null;
  readonly match_type: (typeof MATCH_TYPE_NAMES)[number];
  /** The custom mapping that decided ("10.0.0.0/8"), or null. */
  readonly matched_cidr: string | null;
  readonly country: string | null;
  readonly continent: string | null;
  /** The database network holding the address ("8.8.0.0/17"), or null when the database was not asked. */
  readonly geoip_network: string | null;
  /** The SCOPE PREFIX-LENGTH DNS echoes to this client (as an ECS address): 0 with ecs_enabled off (the packet's source decides then). */
  readonly scope_prefix_length: number;
}

/**
 * Decides the region of the IP literal `ip` with the same table and reader
 * the workers use, and describes the outcome; `ecsEnabled` is the snapshot's
 * overwatch.geolocation.ecs_enabled. Throws TypeError when `ip` is not an IP
 * literal (the API validates it first).
 */
export function explainGeo(
  regionNames: readonly string[],
  table: Uint32Array,
  base: number,
  reader: GeoIpReader | null,
  ip: string,
  ecsEnabled: boolean,
): GeoTestResult {
  const bytes = ipToBytes(ip);
  const d = new GeoDecision();
  decideRegion(table, base, bytes, 0, bytes.length, reader, d);
  return {
    ip,
    region: d.region < 0 ? null : (regionNames[d.region] ?? null),
    match_type: MATCH_TYPE_NAMES[d.match],
    matched_cidr: d.match === MATCH_CUSTOM ? maskedCidr(bytes, d.cidrLen) : null,
    country: d.country < 0 ? null : countryCodeOf(d.country),
    continent: d.continent < 0 ? null : CONTINENT_CODES[d.continent],
    geoip_network: d.geoPrefixLen < 0 ? null : maskedCidr(bytes, d.geoPrefixLen),
    // What DNS echoes (routing/select.ts pickGeo): with ecs_enabled off the
    // packet's source decided, so one answer serves every client behind it.
    scope_prefix_length: ecsEnabled ? d.scopeLen : 0,
  };
}
