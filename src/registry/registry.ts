// Main thread, cold path. The registry: every server the overwatch knows, from
// every source (the config now; agents and the API later), with its one
// identity key, its labels, its live slot and how it is checked; the
// operator overrides; and the one rule of who decides whether a server is
// answered (authorityOf). Nothing else builds server keys, allocates slots or
// decides authority.
//
//   config (load, SIGHUP) ──applyConfig()──┐
//   agents, API ──addServer()/removeServer()┴─► servers + routing definitions ──'changed'──► overwatch
//                                                       │                                 (debounced)
//                                               view() ─┴─► RegistryView ──► compileSnapshot() ──► publish
//                                                                                                   │
//                                               commit(view) ◄──────────────────────────────────────┘
//                                               (releases slots nothing serves any more;
//                                                freeSlots() once no worker reads them)
//
// A view is what one snapshot is compiled from: the zones and domains, and per
// domain its members (server + the domain's own member slot) in priority
// order. Slots are allocated here, when a server is added or a view is taken,
// never by the compiler.

import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { Config, CustomMappingConfig, DomainConfig, GeolocationConfig, IdentityConfig, RegionConfig, ZoneConfig } from '../config/types.ts';
import { MAX_CIDR_MAPPINGS, type GeoTableInput } from '../geo/cidr-table.ts';
import { geoTableInputOf, regionNumbers } from '../geo/table-input.ts';
import { specFor } from '../health/targets.ts';
import { targetKey, type CheckSpec } from '../health/types.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { formatAddress, unusableAddressProblem } from '../lib/ip.ts';
import { expectedRegion } from '../lib/region-names.ts';
import type { StoredGeoMapping } from '../state/store.ts';
import { decisionKey, geoDecisionKey, geoFallbackKey, memberKey, overrideKey, serverKey, serviceServerKey } from './keys.ts';
import { keyOfTarget, type Override, type OverrideTarget } from './overrides.ts';
import { SlotAllocator } from './slots.ts';

/** Where a server came from. */
export type ServerSource = 'config' | 'agent' | 'api';

/**
 * Who decides whether a server is answered, highest first:
 * - `override`: an operator override in force (PUT /api/v1/overrides/…; the most specific of
 *   domain, server and region scope, see overrideFor) outranks everything;
 * - `health_check`: the overwatch's own checks (for an agent's backend: its
 *   validation, when overwatch.validation.enabled and the backend is checkable);
 * - `unchecked`: health_check.type none, always answerable (config servers);
 * - `stale`: an agent's backend whose agent has not been heard from for
 *   overwatch.stale.threshold: out of answers (its claims are as old as its
 *   last heartbeat, its drain included);
 * - `draining`: the agent drains the backend (its predictive signal);
 * - `agent`: the agent's own checks (its claim in the last heartbeat).
 */
export type Authority = 'override' | 'health_check' | 'unchecked' | 'stale' | 'draining' | 'agent';

/** Every Authority, in the order of the rule (the API's enums list these). */
export const AUTHORITIES: readonly Authority[] = ['override', 'health_check', 'unchecked', 'stale', 'draining', 'agent'];

/** What the registry knows of an agent's backend besides the record: set by the overwatch's agent handling. */
export interface AgentServerState {
  /** The agent that reports it. */
  readonly agentId: string;
  /** The agent's own checks: its last claim. */
  readonly claim: 'healthy' | 'unhealthy' | 'unknown';
  /** Non-null while the agent drains it, with the reason (cpu_threshold_exceeded, …). */
  readonly drain: string | null;
  /** No heartbeat from its agent for overwatch.stale.threshold. */
  readonly stale: boolean;
}

/** One server as the registry holds it. Immutable: a change is a new record with the same key and slot. */
export interface ServerRecord {
  /** Identity (serverKey()): the same address and port in the same region is the same server. */
  readonly key: string;
  readonly region: string;
  /** Normalised IP literal; for a CNAME server, its target name (the server's name in keys, labels and the API). */
  readonly address: string;
  /** The target of a server answered as a CNAME (regions[].servers[].cname), else null. Only the config makes these: agents' backends are addresses. */
  readonly cname: string | null;
  readonly family: 4 | 6;
  readonly port: number;
  /** 0..65535; 0 is never answered by the weighted policy. */
  readonly weight: number;
  /** When set, only the domain of that name answers the server (an agent's backend service); null: every domain that lists the region. */
  readonly service: string | null;
  readonly source: ServerSource;
  /** How the overwatch checks it (type none: never checked, always answerable). */
  readonly check: CheckSpec;
  /** The server's live slot: check verdict, latency EMA, last up. */
  readonly slot: number;
  /** "address:port" (IPv6 in brackets): the `server` label of metrics. */
  readonly endpoint: string;
  /** "region/address:port": how logs, metrics and the API name the server. */
  readonly label: string;
}

/** What a caller gives to register a server at run time. */
export interface ServerSpec {
  readonly region: string;
  /** Normalised IP literal. */
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly check: CheckSpec;
  readonly source: Exclude<ServerSource, 'config'>;
  /** Restricts the server to the domain of this name; default null (every domain that lists the region). */
  readonly service?: string | null;
}

/** One domain's use of one server: the unit a snapshot's member row stands for. */
export interface MemberModel {
  readonly domain: string;
  readonly server: ServerRecord;
  /** This domain's own health word for the server: the verdict with the domain's override applied. */
  readonly memberSlot: number;
  /** Failover level: index of the server's region in the domain's regions. */
  readonly priority: number;
}

/** One domain with its members in priority order (regions in the domain's order, then registry order), one per address. */
export interface DomainModel {
  readonly config: DomainConfig;
  readonly members: readonly MemberModel[];
  /** Routing-decision counter id of (domain, algorithm); ids are never reused. */
  readonly decisionId: number;
  /** Longest check round (interval + timeout) of the domain's regions, in ms: the last_healthy window. */
  readonly checkRoundMs: number;
  /** Geolocation domains: the counter ids of each region of the domain, in order, and of the fallbacks; null otherwise. */
  readonly geo: GeoCounters | null;
  /** The domain's servers are CNAME targets: it answers one CNAME (the members' `server.cname`), not addresses. */
  readonly cnamePool: boolean;
}

/** Where a geolocation domain counts its decisions (ids in the routing-decision buffers). */
export interface GeoCounters {
  /** Per region of the domain, in the domain's order: its index in the config's regions and its counter ids. */
  readonly regions: readonly { readonly region: number; readonly custom: number; readonly geoip: number; readonly default: number; readonly regionDown: number }[];
  /** The decided region is not one of the domain's. */
  readonly notServed: number;
  /** No region decided (no mapping matched, no default_region). */
  readonly undecided: number;
}

/** What a routing-decision counter id counts. */
export type DecisionLabel =
  | { readonly kind: 'route'; readonly domain: string; readonly algorithm: string }
  | { readonly kind: 'geo'; readonly domain: string; readonly region: string; readonly match: 'custom_mapping' | 'geoip' | 'default' }
  | { readonly kind: 'geo_fallback'; readonly domain: string; readonly region: string | null; readonly reason: 'region_down' | 'region_not_served' | 'no_region' };

/** Everything one snapshot is compiled from. */
export interface RegistryView {
  /** The registry's structural version this view was taken at. */
  readonly version: number;
  readonly zones: readonly ZoneConfig[];
  readonly domains: readonly DomainModel[];
  /** Region names by index (the config's order): the indexes the geo table decides. */
  readonly regionNames: readonly string[];
  /** The geo table's input: regions' countries and continents, default_region, the config's and the run-time custom mappings. */
  readonly geo: GeoTableInput;
  /** overwatch.geolocation.ecs_enabled. */
  readonly ecsEnabled: boolean;
  /** dns.identity: the CH TXT answers (null = REFUSED). */
  readonly identity: IdentityConfig;
  /** Servers in a region that some domain lists, in registry order. */
  readonly served: readonly ServerRecord[];
  /** Of `served`, the ones the overwatch checks itself: config servers, and agents' backends it validates (checkedByOverwatch()). */
  readonly checked: readonly ServerRecord[];
  /** Every slot key the view holds (servers and members), built when first read: commit() keeps these. */
  readonly slotKeys: ReadonlySet<string>;
}

/** What applyConfig() changed, by server label. */
export interface ConfigChange {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

interface Routing {
  readonly config: Config | null;
  readonly zones: readonly ZoneConfig[];
  readonly domains: readonly DomainConfig[];
  readonly regions: ReadonlyMap<string, RegionConfig>;
  /** Each region's position in `regions` (config order): the geo table's region numbers. */
  readonly regionIndex: ReadonlyMap<string, number>;
  readonly geolocation: GeolocationConfig;
  /** The networks of geolocation.customMappings: a run-time mapping of one of them does not apply. */
  readonly configCidrs: ReadonlySet<string>;
}

const NO_IDENTITY: IdentityConfig = { id: null, version: null };

const EMPTY_ROUTING: Routing = {
  config: null, zones: [], domains: [], regions: new Map(), regionIndex: new Map(), geolocation: { databasePath: null, defaultRegion: null, ecsEnabled: true, customMappings: [] }, configCidrs: new Set(),
};

/**
 * Holds servers, overrides and the routing definitions. Events: 'changed'
 * (version) after every structural change (a server added, removed or
 * changed, a config applied); overrides are not structural (they go to the
 * live slots, not the snapshot).
 */
export class Registry extends EventEmitter {
  readonly #slots = new SlotAllocator();
  readonly #decisionIds = new SlotAllocator();
  readonly #decisionLabels: (DecisionLabel | undefined)[] = [];
  /** Custom geo mappings added at run time (the API), by network; the config's are in the routing. */
  readonly #geoMappings = new Map<string, StoredGeoMapping>();
  readonly #servers = new Map<string, ServerRecord>();
  /** Config servers' keys per region, in file order (failover order within a region). */
  #configOrder = new Map<string, readonly string[]>();
  #routing: Routing = EMPTY_ROUTING;
  readonly #overrides = new Map<string, Override>();
  /** Overrides held per scope: overrideFor skips building the keys of a scope that has none (the usual case). */
  readonly #perScope: Record<OverrideTarget['scope'], number> = { domain: 0, server: 0, region: 0 };
  /** Agents' backends: what their agents say, by server key (not structural: it reaches the workers through the live slots). */
  readonly #agentStates = new Map<string, AgentServerState>();
  /** Of the view last committed: the addresses each domain answers (what overrideKey(domain, address) names), the addresses and regions answered, and the domains of each server key. */
  #answered = new Map<string, Set<string>>();
  #answeredAddresses = new Set<string>();
  #answeredRegions = new Set<string>();
  #domainsOf = new Map<string, string[]>();
  #version = 0;
  /** Structural version: moves on with every 'changed'. */
  get version(): number {
    return this.#version;
  }

  /** Every zone, domain and region of the config now applied. */
  get zones(): readonly ZoneConfig[] {
    return this.#routing.zones;
  }

  get domains(): readonly DomainConfig[] {
    return this.#routing.domains;
  }

  region(name: string): RegionConfig | undefined {
    return this.#routing.regions.get(name);
  }

  // ---- Servers

  /**
   * Takes the zones, domains, regions and servers of `config`: its servers
   * replace the config's previous ones (a server that stays keeps its slot,
   * so its health and latency carry over); servers from other sources stay.
   * Emits 'changed'. The caller compiles and publishes.
   */
  applyConfig(config: Config): ConfigChange {
    const added: string[] = [];
    const changed: string[] = [];
    const removed: string[] = [];
    const order = new Map<string, string[]>();
    // Every config server's key (a key names its region): looked up, not searched for in the region's list.
    const inConfig = new Set<string>();
    for (const region of config.regions) {
      const keys: string[] = [];
      order.set(region.name, keys);
      for (const server of region.servers) {
        const key = serverKey(region.name, server.address, server.port);
        if (inConfig.has(key)) continue;
        inConfig.add(key);
        keys.push(key);
        const record = this.#record(key, region.name, server.address, server.port, server.weight, specFor(region.healthCheck, server), 'config', null, server.cname);
        const old = this.#servers.get(key);
        if (old === undefined) added.push(record.label);
        else if (!sameServer(old, record)) changed.push(record.label);
        this.#servers.set(key, record);
      }
    }
    for (const [key, record] of this.#servers) {
      if (record.source !== 'config' || inConfig.has(key)) continue;
      this.#servers.delete(key);
      removed.push(record.label);
    }
    this.#configOrder = order;
    this.#routing = {
      config,
      zones: config.dns.zones,
      domains: config.domains,
      regions: new Map(config.regions.map((r) => [r.name, r])),
      regionIndex: regionNumbers(config),
      geolocation: config.geolocation,
      configCidrs: new Set(config.geolocation.customMappings.map((m) => m.cidr)),
    };
    this.#changed();
    return { added, removed, changed };
  }

  /**
   * Registers (or updates) a server at run time; it is answered from the next
   * published snapshot. Throws OpenGslbError(OPENGSLB_ERR_REGISTRY_REFUSED)
   * when its region is not served here, its address is not an IP literal, or
   * another source owns the same server.
   */
  addServer(spec: ServerSpec): ServerRecord {
    const where = `server ${formatAddress(spec.address, spec.port)} in region "${spec.region}"`;
    if (!this.#routing.regions.has(spec.region)) {
      throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `${where}: no region "${spec.region}" is served here; ${expectedRegion(spec.region, this.#routing.regions.keys())}`);
    }
    if (isIP(spec.address) === 0) throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `${where}: "${spec.address}" is not an IP literal`);
    // An agent's report is checked as the config is (src/lib/ip.ts): 0.0.0.0 or a multicast group would be answered to clients.
    const unusable = unusableAddressProblem(spec.address);
    if (unusable !== null) throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `${where}: ${unusable}`);
    if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `${where}: port ${spec.port} is not 1..65535`);
    if (!Number.isInteger(spec.weight) || spec.weight < 0 || spec.weight > 65535) throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `${where}: weight ${spec.weight} is not 0..65535`);
    const service = spec.service ?? null;
    const key = service === null ? serverKey(spec.region, spec.address, spec.port) : serviceServerKey(service, spec.region, spec.address, spec.port);
    const old = this.#servers.get(key);
    if (old !== undefined && old.source !== spec.source) {
      throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `${where}: already registered by ${old.source === 'config' ? 'the config' : `the ${old.source}`}`);
    }
    const record = this.#record(key, spec.region, spec.address, spec.port, spec.weight, spec.check, spec.source, spec.service ?? null, null);
    if (old !== undefined && sameServer(old, record)) return old;
    this.#servers.set(key, record);
    this.#changed();
    return record;
  }

  /** Removes a server added at run time; it leaves DNS with the next published snapshot. Returns false when there was none. Config servers go only with the config. */
  removeServer(key: string): boolean {
    const record = this.#servers.get(key);
    if (record === undefined || record.source === 'config') return false;
    this.#servers.delete(key);
    this.#agentStates.delete(key);
    this.#changed();
    return true;
  }

  // ---- Agents' backends: what their agents say (not structural)

  /** Records what the agent says of one of its backends (a server of source 'agent'); authorityOf() reads it. Ignored for any other server. */
  setAgentState(key: string, state: AgentServerState): void {
    if (this.#servers.get(key)?.source !== 'agent') return;
    this.#agentStates.set(key, state);
  }

  /** What the agent last said of one of its backends, or undefined. */
  agentStateOf(key: string): AgentServerState | undefined {
    return this.#agentStates.get(key);
  }

  /** overwatch.validation.enabled of the config now applied. */
  get validationEnabled(): boolean {
    return this.#routing.config?.validation.enabled ?? false;
  }

  /**
   * Does the overwatch check this server itself? Config servers always (type
   * none makes it unchecked); an agent's backend only when
   * overwatch.validation.enabled and its check is not type none.
   */
  checkedByOverwatch(server: ServerRecord): boolean {
    if (server.source !== 'agent') return true;
    return this.validationEnabled && server.check.type !== 'none';
  }

  /** The server with this key, or undefined. */
  server(key: string): ServerRecord | undefined {
    return this.#servers.get(key);
  }

  /** The server at (region, address, port), bound to `service` when given (an agent's backend), or undefined. */
  serverAt(region: string, address: string, port: number, service: string | null = null): ServerRecord | undefined {
    return this.#servers.get(service === null ? serverKey(region, address, port) : serviceServerKey(service, region, address, port));
  }

  /** Every server, region by region (regions in config order), config servers first in file order, then the others in the order they came. */
  servers(): ServerRecord[] {
    const out: ServerRecord[] = [];
    for (const list of this.#serversByRegion().values()) for (const s of list) out.push(s);
    return out;
  }

  /**
   * Every configured region's servers in the order of servers(), in one pass
   * over the servers. A pass per region and domain, as view() made, cost 51
   * domains × 4 regions × 15 000 agents' backends per snapshot, and a burst of
   * registrations makes a snapshot every 100 ms (bench/agents-scale.ts).
   */
  #serversByRegion(): Map<string, ServerRecord[]> {
    const out = new Map<string, ServerRecord[]>();
    for (const name of this.#routing.regions.keys()) {
      const list: ServerRecord[] = [];
      for (const key of this.#configOrder.get(name) ?? []) {
        const record = this.#servers.get(key);
        if (record !== undefined) list.push(record);
      }
      out.set(name, list);
    }
    for (const record of this.#servers.values()) if (record.source !== 'config') out.get(record.region)?.push(record);
    return out;
  }

  #record(key: string, region: string, address: string, port: number, weight: number, check: CheckSpec, source: ServerSource, service: string | null, cname: string | null): ServerRecord {
    const endpoint = formatAddress(address, port);
    return {
      key, region, address, cname, family: isIP(address) === 6 ? 6 : 4, port, weight, service, source, check,
      slot: this.#slots.slotFor(key),
      endpoint,
      label: [region, endpoint].join('/'),
    };
  }

  #changed(): void {
    this.#version++;
    this.emit('changed', this.#version);
  }

  // ---- Views and slots

  /**
   * Takes what the next snapshot is compiled from, allocating the member
   * slots and decision ids it needs. Nothing is released until commit().
   */
  view(): RegistryView {
    const served = new Set<string>();
    const domains: DomainModel[] = [];
    // Each region's servers once, with the positions of those bound to each service (null: not bound, every
    // domain of the region takes them): a domain walks its own and the unbound ones, not every agent's backend.
    const byRegion = this.#serversByRegion();
    const positions = new Map<string, Map<string | null, number[]>>();
    for (const [name, list] of byRegion) {
      const byService = new Map<string | null, number[]>();
      for (let i = 0; i < list.length; i++) {
        const service = list[i]!.service;
        let at = byService.get(service);
        if (at === undefined) byService.set(service, (at = []));
        at.push(i);
      }
      positions.set(name, byService);
    }
    for (const domain of this.#routing.domains) {
      const members: MemberModel[] = [];
      const seen = new Set<string>();
      let checkRoundMs = 0;
      // A domain is an address pool or a CNAME pool (config validation keeps its config servers of one kind):
      // servers of the other kind in its regions (an agent's backend beside CNAME servers) are not its members.
      const cnamePool = domain.regions.some((name) => this.#routing.regions.get(name)?.servers.some((s) => s.cname !== null) ?? false);
      for (let priority = 0; priority < domain.regions.length; priority++) {
        const region = this.#routing.regions.get(domain.regions[priority]);
        if (region === undefined) continue;
        checkRoundMs = Math.max(checkRoundMs, region.healthCheck.intervalMs + region.healthCheck.timeoutMs);
        const all = byRegion.get(region.name) ?? [];
        const unbound = positions.get(region.name)?.get(null) ?? [];
        const bound = positions.get(region.name)?.get(domain.name) ?? [];
        // The two position lists merged: the region's order.
        for (let a = 0, b = 0; a < unbound.length || b < bound.length;) {
          const server = all[b >= bound.length || (a < unbound.length && unbound[a]! < bound[b]!) ? unbound[a++]! : bound[b++]!]!;
          if ((server.cname !== null) !== cnamePool) continue;
          served.add(server.key);
          // One address answers once per RRset: the first (highest-priority) region keeps it.
          if (seen.has(server.address)) continue;
          seen.add(server.address);
          members.push({ domain: domain.name, server, memberSlot: this.#slots.memberSlotFor(domain.name, server.key), priority });
        }
      }
      const decisionId = this.#counter(decisionKey(domain.name, domain.routingAlgorithm), { kind: 'route', domain: domain.name, algorithm: domain.routingAlgorithm });
      const geo = domain.routingAlgorithm === 'geolocation' ? this.#geoCounters(domain) : null;
      domains.push({ config: domain, members, decisionId, checkRoundMs, geo, cnamePool });
    }
    const serverKeys = [...this.#servers.keys()];
    const config = this.#routing.config;
    const servedList: ServerRecord[] = [];
    for (const list of byRegion.values()) for (const s of list) if (served.has(s.key)) servedList.push(s);
    let slotKeys: Set<string> | undefined;
    const view: RegistryView = {
      version: this.#version,
      zones: this.#routing.zones,
      domains,
      regionNames: [...this.#routing.regions.keys()],
      geo: config === null ? { regions: [], defaultRegion: -1, mappings: [] } : geoTableInputOf(config, this.compiledGeoMappings()),
      ecsEnabled: this.#routing.geolocation.ecsEnabled,
      identity: this.#routing.config?.dns.identity ?? NO_IDENTITY,
      served: servedList,
      checked: servedList.filter((s) => this.checkedByOverwatch(s)),
      // Built when asked (tests, diagnostics): commit() reads the members and serverKeys instead, so a
      // republish does not join and hash a key per member (800 000 at 4 000 domains x 200 servers).
      get slotKeys(): ReadonlySet<string> {
        if (slotKeys === undefined) {
          slotKeys = new Set<string>();
          for (const d of domains) for (const m of d.members) slotKeys.add(memberKey(m.domain, m.server.key));
          for (const key of serverKeys) slotKeys.add(key);
        }
        return slotKeys;
      },
    };
    VIEW_SERVER_KEYS.set(view, serverKeys);
    return view;
  }

  /** The id of a routing-decision counter, allocated on first use; ids are never reused. */
  #counter(key: string, label: DecisionLabel): number {
    const id = this.#decisionIds.slotFor(key);
    this.#decisionLabels[id] = label;
    return id;
  }

  #geoCounters(domain: DomainConfig): GeoCounters {
    const index = this.#routing.regionIndex;
    const d = domain.name;
    return {
      regions: domain.regions.map((region) => ({
        region: index.get(region) ?? -1,
        custom: this.#counter(geoDecisionKey(d, region, 'custom_mapping'), { kind: 'geo', domain: d, region, match: 'custom_mapping' }),
        geoip: this.#counter(geoDecisionKey(d, region, 'geoip'), { kind: 'geo', domain: d, region, match: 'geoip' }),
        default: this.#counter(geoDecisionKey(d, region, 'default'), { kind: 'geo', domain: d, region, match: 'default' }),
        regionDown: this.#counter(geoFallbackKey(d, region, 'region_down'), { kind: 'geo_fallback', domain: d, region, reason: 'region_down' }),
      })),
      notServed: this.#counter(geoFallbackKey(d, null, 'region_not_served'), { kind: 'geo_fallback', domain: d, region: null, reason: 'region_not_served' }),
      undecided: this.#counter(geoFallbackKey(d, null, 'no_region'), { kind: 'geo_fallback', domain: d, region: null, reason: 'no_region' }),
    };
  }

  /**
   * Records `view` as the one now served (its snapshot is published) and
   * releases the slots that neither it nor the registry holds any more.
   * Returns the released slot ids: no new key gets one of them until
   * freeSlots() is called with it, which the caller does once no worker can
   * read them any more and their words are reset.
   */
  commit(view: RegistryView): number[] {
    const answered = new Map<string, Set<string>>();
    const addresses = new Set<string>();
    const regions = new Set<string>();
    const domainsOf = new Map<string, string[]>();
    // The server keys each domain's members hold, by domain: the member slots commit keeps.
    const memberKeys = new Map<string, Set<string>>();
    for (const d of view.domains) {
      for (const m of d.members) {
        let inDomain = answered.get(m.domain);
        if (inDomain === undefined) answered.set(m.domain, (inDomain = new Set()));
        inDomain.add(m.server.address);
        let keys = memberKeys.get(m.domain);
        if (keys === undefined) memberKeys.set(m.domain, (keys = new Set()));
        keys.add(m.server.key);
        addresses.add(m.server.address);
        regions.add(m.server.region);
        // A literal of one: `[]` then push() reserves 17 slots, 2 MB over 15 000 servers that are each in one domain.
        const list = domainsOf.get(m.server.key);
        if (list === undefined) domainsOf.set(m.server.key, [m.domain]);
        else list.push(m.domain);
      }
    }
    this.#answered = answered;
    this.#answeredAddresses = addresses;
    this.#answeredRegions = regions;
    this.#domainsOf = domainsOf;
    const servers = this.#servers;
    // The server keys of the view (a view not taken by view(), built by hand: its slot keys).
    const viewServers = VIEW_SERVER_KEYS.get(view);
    const inView = viewServers === undefined ? view.slotKeys : new Set(viewServers);
    return this.#slots.retain((key) => inView.has(key) || servers.has(key), memberKeys);
  }

  /** Lets new keys reuse slots commit() released (their words reset, no worker reading them). */
  freeSlots(slots: readonly number[]): void {
    this.#slots.free(slots);
  }

  /** Slots allocated since the last call (new servers and members), for their first health word. */
  takeFreshSlots(): number[] {
    return this.#slots.takeFresh();
  }

  /** The number of slot ids handed out so far: the live slots must hold at least this many. */
  get slotHighWater(): number {
    return this.#slots.highWater;
  }

  /** What each routing-decision counter id counts; ids are never reused. */
  decisionLabels(): readonly (DecisionLabel | undefined)[] {
    return this.#decisionLabels;
  }

  // ---- Custom geo mappings added at run time (structural: they are compiled into the snapshot's geo table)

  /** The custom mappings added at run time, in the order they came. */
  geoMappings(): StoredGeoMapping[] {
    return [...this.#geoMappings.values()];
  }

  /**
   * The run-time mapping of network `cidr` (normalised: host bits clear), or
   * undefined when there is none. One map lookup: a bus sync asks this once
   * per entry, and copying geoMappings() to find one took 2 s for 20 000.
   */
  geoMapping(cidr: string): StoredGeoMapping | undefined {
    return this.#geoMappings.get(cidr);
  }

  /**
   * Does a run-time mapping apply? Not while its region is not served or the
   * config maps the same network (after a reload changed either): it is kept,
   * and applies again if that changes back.
   */
  geoMappingActive(mapping: CustomMappingConfig): boolean {
    return this.#routing.regions.has(mapping.region) && !this.#routing.configCidrs.has(mapping.cidr);
  }

  /**
   * The run-time mappings the snapshot compiles: the active ones, in the
   * order they came, as many as the geo table holds beside the config's
   * (MAX_CIDR_MAPPINGS). checkGeoMapping() keeps them within it; only a
   * config that grew since (a reload, or a restart with a longer list) leaves
   * the last ones out, so the compile never fails on the count and an
   * overwatch still starts. Those left out apply again once there is room.
   */
  compiledGeoMappings(): StoredGeoMapping[] {
    const room = MAX_CIDR_MAPPINGS - this.#routing.geolocation.customMappings.length;
    const out: StoredGeoMapping[] = [];
    for (const m of this.#geoMappings.values()) {
      if (out.length >= room) break;
      if (this.geoMappingActive(m)) out.push(m);
    }
    return out;
  }

  /** The config's custom mappings. */
  get configGeoMappings(): readonly CustomMappingConfig[] {
    return this.#routing.geolocation.customMappings;
  }

  /**
   * Adds (or replaces) a run-time mapping of network `mapping.cidr` (already
   * normalised: host bits clear). Throws OPENGSLB_ERR_REGISTRY_REFUSED when its
   * region is not served here or the config maps the same network. Emits 'changed'.
   */
  setGeoMapping(mapping: StoredGeoMapping): void {
    this.checkGeoMapping(mapping);
    this.restoreGeoMapping(mapping);
  }

  /** Throws OPENGSLB_ERR_REGISTRY_REFUSED when setGeoMapping() would refuse `mapping`. */
  checkGeoMapping(mapping: CustomMappingConfig): void {
    if (!this.#routing.regions.has(mapping.region)) {
      throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `mapping ${mapping.cidr}: no region "${mapping.region}" is served here; ${expectedRegion(mapping.region, this.#routing.regions.keys())}`);
    }
    if (this.#routing.configCidrs.has(mapping.cidr)) {
      throw new OpenGslbError('OPENGSLB_ERR_REGISTRY_REFUSED', `mapping ${mapping.cidr}: the config maps this network already (overwatch.geolocation.custom_mappings); change it there`);
    }
    // A new network past the geo table's limit would make every later snapshot compile fail; replacing one is fine.
    // Inactive run-time mappings count too: a reload can make them apply again.
    const fromConfig = this.#routing.geolocation.customMappings.length;
    const fromApi = this.#geoMappings.size;
    if (!this.#geoMappings.has(mapping.cidr) && fromConfig + fromApi >= MAX_CIDR_MAPPINGS) {
      throw new OpenGslbError(
        'OPENGSLB_ERR_REGISTRY_REFUSED',
        `mapping ${mapping.cidr}: the geo table takes at most ${MAX_CIDR_MAPPINGS} custom mappings, config and run-time together, and ${fromConfig + fromApi} are set (${fromConfig} in the config, ${fromApi} at run time); remove one first (DELETE /api/v1/geo/mappings)`,
      );
    }
  }

  /** Takes a stored mapping back (at start) without checking it: one that does not apply now is kept and shown inactive. Emits 'changed' when it changed anything. */
  restoreGeoMapping(mapping: StoredGeoMapping): void {
    const old = this.#geoMappings.get(mapping.cidr);
    // Kept whole, in its place in the order: who set it and when are what the
    // store holds too (a bus entry that only changes those must not look new
    // again at every resync), but they change no answer, so no republish.
    this.#geoMappings.set(mapping.cidr, mapping);
    if (old !== undefined && old.region === mapping.region && old.comment === mapping.comment) return;
    this.#changed();
  }

  /** Removes the run-time mapping of network `cidr` (normalised); returns it, or null when there was none. Emits 'changed' when it removed one. */
  deleteGeoMapping(cidr: string): StoredGeoMapping | null {
    const old = this.#geoMappings.get(cidr);
    if (old === undefined) return null;
    this.#geoMappings.delete(cidr);
    this.#changed();
    return old;
  }

  /** The domains that answer a server in the view last committed. */
  domainsOf(server: ServerRecord): readonly string[] {
    return this.#domainsOf.get(server.key) ?? [];
  }

  /** Does the committed view answer `address` in domain `service`? */
  answers(service: string, address: string): boolean {
    return this.#answered.get(service)?.has(address) ?? false;
  }

  /** Does the committed view answer some domain's server that `target` covers (an override of it is active)? */
  covered(target: OverrideTarget): boolean {
    switch (target.scope) {
      case 'domain':
        return this.#answered.get(target.service)?.has(target.address) ?? false;
      case 'server':
        return this.#answeredAddresses.has(target.address);
      case 'region':
        return this.#answeredRegions.has(target.region);
    }
  }

  // ---- Overrides (not structural: they reach the workers through the live slots)

  /** Sets (or replaces) the override of its target. The caller persists it first and then applies it to the live slots. */
  setOverride(override: Override): void {
    const key = keyOfTarget(override.target);
    if (!this.#overrides.has(key)) this.#perScope[override.target.scope]++;
    this.#overrides.set(key, override);
  }

  /** Removes the override of `target`, in force or not; returns it, or null when there was none. */
  deleteOverride(target: OverrideTarget): Override | null {
    const key = keyOfTarget(target);
    const existing = this.#overrides.get(key);
    if (existing === undefined) return null;
    this.#overrides.delete(key);
    this.#perScope[target.scope]--;
    return existing;
  }

  /** The override set on exactly `target` (in force or past its end but not yet removed), or null. */
  overrideAt(target: OverrideTarget): Override | null {
    return this.#overrides.get(keyOfTarget(target)) ?? null;
  }

  /** Every override, whether the served view answers what it covers or not. */
  overrides(): Override[] {
    return [...this.#overrides.values()];
  }

  /**
   * The override that decides `server` in `domain` now, or null: the most
   * specific one held, (domain, address) over the address in every domain
   * over the server's region. An override is in force while it is held: the
   * expiry (src/overwatch/override-expiry.ts) removes it when the wall clock
   * reaches its end, so DNS, the API and explain always agree.
   */
  overrideFor(domain: string, server: ServerRecord): Override | null {
    if (this.#overrides.size === 0) return null;
    const count = this.#perScope;
    // Measured: about 0.2 µs a call with overrides of every scope held (10 000 members, Node 24), so a full rewrite of the member words stays near 2 ms.
    const member = count.domain > 0 ? this.#overrides.get(overrideKey(domain, server.address)) : undefined;
    if (member !== undefined) return member;
    const byAddress = count.server > 0 ? this.#overrides.get(keyOfTarget({ scope: 'server', address: server.address })) : undefined;
    if (byAddress !== undefined) return byAddress;
    const byRegion = count.region > 0 ? this.#overrides.get(keyOfTarget({ scope: 'region', region: server.region })) : undefined;
    if (byRegion !== undefined) return byRegion;
    return null;
  }

  /**
   * Who decides whether `server` is answered: for one domain, or, with
   * domain null, for the server as a whole (an override deciding it in any
   * domain that answers it makes it `override`). The API, the metrics and explain all ask here.
   */
  authorityOf(server: ServerRecord, domain: string | null): Authority {
    if (domain !== null) {
      if (this.overrideFor(domain, server) !== null) return 'override';
    } else {
      for (const d of this.domainsOf(server)) if (this.overrideFor(d, server) !== null) return 'override';
    }
    if (server.source !== 'agent') return server.check.type === 'none' ? 'unchecked' : 'health_check';
    if (this.checkedByOverwatch(server)) return 'health_check';
    const agent = this.#agentStates.get(server.key);
    if (agent === undefined || agent.stale) return 'stale';
    return agent.drain !== null ? 'draining' : 'agent';
  }
}

/** The server keys at the time of each view() (the slot keys a view holds beside its members'). */
const VIEW_SERVER_KEYS = new WeakMap<RegistryView, readonly string[]>();

function sameServer(a: ServerRecord, b: ServerRecord): boolean {
  return a.weight === b.weight && a.service === b.service && a.source === b.source && a.cname === b.cname && targetKey(a.check) === targetKey(b.check);
}
