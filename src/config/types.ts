// Cold path, main thread. The normalised, validated, deep-frozen configuration
// that the loader hands to the rest of the overwatch. Nothing downstream ever
// sees raw YAML: names are lower-case without the trailing dot, durations are
// milliseconds, defaults are applied and cross-references are resolved.

export type RunMode = 'overwatch' | 'agent';
export type RoutingAlgorithm = 'round-robin' | 'weighted' | 'failover' | 'latency' | 'geolocation' | 'sticky';
export type WhenAllDown = 'servfail' | 'last_healthy' | 'all' | 'fallback';
export type HealthCheckType = 'http' | 'https' | 'tcp' | 'none';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';

export interface Config {
  /** Absolute path of the main file the config was loaded from. */
  readonly source: string;
  readonly mode: RunMode;
  readonly dns: DnsConfig;
  readonly regions: readonly RegionConfig[];
  readonly domains: readonly DomainConfig[];
  readonly logging: LoggingConfig;
  readonly api: ApiConfig;
  readonly metrics: MetricsConfig;
  /** overwatch.data_dir, absolute (relative paths are taken from the main config file's folder). */
  readonly dataDir: string;
  /** overwatch.geolocation, with regions[].countries/continents in `regions`. */
  readonly geolocation: GeolocationConfig;
  /** overwatch.dnssec. */
  readonly dnssec: DnssecConfig;
  /** The overwatch's agent channel (overwatch.gossip); null when no encryption_key is set: the channel is off. */
  readonly gossip: OverwatchGossipConfig | null;
  /** overwatch.agent_tokens: service name (lower-case, no trailing dot) → token. */
  readonly agentTokens: Readonly<Record<string, string>>;
  /** overwatch.validation. */
  readonly validation: ValidationConfig;
  /** overwatch.stale. */
  readonly stale: StaleConfig;
  /** overwatch.peers: the other overwatches' admin APIs, for GET /api/v1/cluster/status. */
  readonly peers: readonly PeerConfig[];
  /** overwatch.bus: agent messages also taken from NATS; null when off. */
  readonly bus: BusConfig | null;
  /** The agent section; null unless the file's mode is agent. */
  readonly agent: AgentConfig | null;
}

/** agent.bus / overwatch.bus with `type: nats`. */
export interface BusConfig {
  readonly type: 'nats';
  /** nats:// or tls:// URLs, in file order; at least one. */
  readonly servers: readonly string[];
  readonly token: string | null;
  /** Absolute path of a .creds file, or null. */
  readonly credentialsFile: string | null;
  /** Absolute paths; null when no tls key is set. */
  readonly tls: { readonly caFile: string | null; readonly certFile: string | null; readonly keyFile: string | null } | null;
  /** Without a trailing dot. */
  readonly subjectPrefix: string;
  /** overwatch.bus.state_secret (standard base64 of 32 bytes; src/bus/sealed-entry.ts derives the bucket's key from it); null on the agent side. */
  readonly stateSecret: string | null;
  /** overwatch.bus.previous_state_secrets: entries are opened with these too (never sealed); empty on the agent side. */
  readonly previousStateSecrets: readonly string[];
}

export interface PeerConfig {
  /** Base URL of its admin API, without a trailing slash. */
  readonly url: string;
  /** Its api.token, or null. */
  readonly token: string | null;
}

export interface GeolocationConfig {
  /** overwatch.geolocation.database_path, absolute; null: the bundled DB-IP database (src/geo/database.ts). */
  readonly databasePath: string | null;
  /** Name of a region in `regions`, or null. */
  readonly defaultRegion: string | null;
  /** Route on the EDNS Client Subnet address when a query carries one (default true). */
  readonly ecsEnabled: boolean;
  /** In file order; each network once. */
  readonly customMappings: readonly CustomMappingConfig[];
}

export interface CustomMappingConfig {
  /** The network, host bits cleared ("10.0.0.0/8", "2001:db8::/32"; IPv4-mapped prefixes as IPv4). */
  readonly cidr: string;
  /** Name of a region in `regions`. */
  readonly region: string;
  readonly comment: string | null;
}

export type DnssecAlgorithm = 'ECDSAP256SHA256' | 'ED25519';

export interface DnssecConfig {
  /** True unless turned off with the acknowledgment (checked at load). */
  readonly enabled: boolean;
  /** Algorithm of keys generated for zones that have none. */
  readonly algorithm: DnssecAlgorithm;
  /** Validity of a signature from the moment it is made (default 7 days). */
  readonly signatureValiditySec: number;
  readonly keySync: DnssecKeySyncConfig;
}

export interface DnssecKeySyncConfig {
  /** Base URLs of the peers' admin APIs; empty = no sync. */
  readonly peers: readonly string[];
  readonly pollIntervalMs: number;
  readonly timeoutMs: number;
  /** Standard base64 of 32 bytes shared by every peer, or null when there are no peers. */
  readonly sharedSecret: string | null;
}

export interface OverwatchGossipConfig {
  /** IP literal without brackets ("0.0.0.0" when bind_address had no host or was absent). */
  readonly bindHost: string;
  /** Default 7946; 0 asks the OS for a free port (tests). */
  readonly bindPort: number;
  /** Standard base64 of 32 bytes (Keyring.fromBase64 in src/gossip/envelope.ts turns it into a key). */
  readonly encryptionKey: string;
  /** Further keys accepted while a key rotates, base64 like encryptionKey. */
  readonly acceptedKeys: readonly string[];
  readonly maxClockSkewMs: number;
  /** overwatch.gossip.max_agents: most pinned agents; a new agent past it is refused (agent_limit). */
  readonly maxAgents: number;
}

export interface ValidationConfig {
  readonly enabled: boolean;
  readonly checkIntervalMs: number;
  readonly checkTimeoutMs: number;
}

export interface StaleConfig {
  readonly thresholdMs: number;
  readonly removeAfterMs: number;
}

export interface AgentConfig {
  readonly identity: AgentIdentityConfig;
  readonly backends: readonly AgentBackendConfig[];
  readonly predictive: PredictiveConfig;
  readonly gossip: AgentGossipConfig;
  /** agent.bus: messages go to NATS instead of overwatch_nodes; null when off. */
  readonly bus: BusConfig | null;
  readonly heartbeat: HeartbeatConfig;
}

export interface AgentIdentityConfig {
  readonly serviceToken: string;
  readonly region: string;
  /** Absolute (relative paths are taken from the main config file's folder). */
  readonly certPath: string;
  /** Absolute, as certPath. */
  readonly keyPath: string;
}

export interface AgentBackendConfig {
  /** Lower-case, no trailing dot. */
  readonly service: string;
  /** Normalised IP literal, or a lower-case host name (never answered in DNS). */
  readonly address: string;
  /** 4 or 6 for an IP literal, null for a host name. */
  readonly family: 4 | 6 | null;
  readonly port: number;
  readonly weight: number;
  /** health_check.host: Host header / TLS name of the check, or null. */
  readonly host: string | null;
  readonly healthCheck: HealthCheckConfig;
}

export interface PredictiveConfig {
  readonly enabled: boolean;
  readonly checkIntervalMs: number;
  readonly cpu: { readonly thresholdPercent: number; readonly bleedDurationMs: number };
  readonly memory: { readonly thresholdPercent: number; readonly bleedDurationMs: number };
  readonly errorRate: { readonly thresholdPerMin: number; readonly windowMs: number; readonly bleedDurationMs: number };
}

export interface AgentGossipConfig {
  /** Standard base64 of 32 bytes. */
  readonly encryptionKey: string;
  /** Host (IP literal without brackets, or lower-case name) and port of every overwatch; empty when agent.bus is on. */
  readonly overwatchNodes: readonly { readonly host: string; readonly port: number }[];
}

export interface HeartbeatConfig {
  readonly intervalMs: number;
  readonly missedThreshold: number;
  readonly fullIntervalMs: number;
}

export interface ApiConfig {
  readonly enabled: boolean;
  /** IP literal without brackets; "0.0.0.0" when api.address had no host. */
  readonly host: string;
  /** 0 asks the OS for a free port (tests). */
  readonly port: number;
  /** Normalised CIDR prefixes ("127.0.0.1/32", "::1/128"). */
  readonly allowedNetworks: readonly string[];
  /** api.allowed_hosts: lower-case host names without the trailing dot, accepted in Host besides IP literals and "localhost". */
  readonly allowedHosts: readonly string[];
  readonly trustProxyHeaders: boolean;
  /** api.max_connections: most connections open at once (outsiders of allowedNetworks: at most OUTSIDE_CONNECTIONS of them). */
  readonly maxConnections: number;
  /** Bearer token for writes, or null when writes need none. */
  readonly token: string | null;
  /** api.tls as absolute paths: HTTPS with this certificate and key; null serves plain HTTP. */
  readonly tls: { readonly certPath: string; readonly keyPath: string } | null;
}

export interface MetricsConfig {
  readonly enabled: boolean;
  readonly host: string;
  readonly port: number;
}

export interface DnsConfig {
  /** IP literal from dns.listen_address, without brackets ("127.0.0.1", "::1", "0.0.0.0", "::"). */
  readonly listenHost: string;
  /** Port from dns.listen_address; 0 asks the OS for a free port (tests). */
  readonly listenPort: number;
  /** Number of DNS worker threads (default: os.availableParallelism()). */
  readonly workers: number;
  readonly defaultTtlSec: number;
  /** dns.return_last_healthy (parsed now, used by the health-check issue). */
  readonly returnLastHealthy: boolean;
  /** Zones we are authoritative for, resolved: one per domain when dns.zones is absent. */
  readonly zones: readonly ZoneConfig[];
  /** SO_RCVBUF asked for on every worker's UDP socket; 0 keeps the kernel's default. */
  readonly udpReceiveBufferBytes: number;
  /** dns.udp_io: 'auto' = batched native UDP where the addon loads, 'dgram' = always node:dgram. */
  readonly udpIo: 'auto' | 'dgram';
  readonly tcpIdleTimeoutMs: number;
  /** Time a TCP message that has started arriving may take to complete. */
  readonly tcpFrameTimeoutMs: number;
  /** Cap on concurrently open TCP connections per worker. */
  readonly tcpMaxConnectionsPerWorker: number;
  /** Cap on concurrently open TCP connections per worker from one client (IPv4 address, IPv6 /64). */
  readonly tcpMaxConnectionsPerClient: number;
  /** dns.tcp_client_ipv4_prefix_length: the IPv4 network the per-client cap counts by. */
  readonly tcpClientIpv4PrefixLength: number;
  /** dns.tcp_client_ipv6_prefix_length: the IPv6 network the per-client cap counts by. */
  readonly tcpClientIpv6PrefixLength: number;
  /** Cap on queries answered over one TCP connection before it is closed. */
  readonly tcpMaxQueriesPerConnection: number;
  readonly identity: IdentityConfig;
  /** dns.rrl: response rate limiting over UDP. */
  readonly rrl: RrlConfig;
  /** dns.cookies: DNS cookies (RFC 7873, RFC 9018). */
  readonly cookies: CookiesConfig;
}

export interface RrlConfig {
  readonly enabled: boolean;
  readonly responsesPerSecond: number;
  readonly nxdomainsPerSecond: number;
  readonly errorsPerSecond: number;
  readonly windowSec: number;
  readonly slip: number;
  readonly ipv4PrefixLength: number;
  readonly ipv6PrefixLength: number;
  /** Normalised CIDR prefixes ("192.0.2.0/24"). */
  readonly exemptClients: readonly string[];
  /** Entries of the shared table, a power of two. */
  readonly tableEntries: number;
}

export interface CookiesConfig {
  readonly enabled: boolean;
  readonly require: boolean;
  /** The configured secret (32 hex digits), or null. */
  readonly secret: string | null;
  /** Absolute path of dns.cookies.secret_file, or null. */
  readonly secretFile: string | null;
  readonly secretLifetimeMs: number;
  readonly rotate: boolean;
}

export interface ZoneConfig {
  /** Apex, lower-case, no trailing dot ("example.test"). */
  readonly name: string;
  readonly soa: SoaConfig;
  /** NS RRset at the apex, in order; never empty. */
  readonly nameservers: readonly NameserverConfig[];
  /** Static records of the zone (dns.zones[].records), in file order. */
  readonly records: readonly StaticRecordConfig[];
}

/** The rdata of one static record, by type (src/config/static-records.ts parses it). */
export type StaticRdata =
  | { readonly type: 'A' | 'AAAA'; readonly address: string }
  | { readonly type: 'CNAME' | 'NS' | 'PTR'; readonly target: string }
  | { readonly type: 'MX'; readonly preference: number; readonly exchange: string }
  /** Each string is the octets of one character-string, as latin1 (≤ 255 each). */
  | { readonly type: 'TXT'; readonly strings: readonly string[] }
  | { readonly type: 'SRV'; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string }
  | { readonly type: 'CAA'; readonly flags: number; readonly tag: string; readonly value: string };

/** One static record of a zone: lower-case absolute owner, TTL, rdata, and the line it was written as. */
export interface StaticRecordConfig {
  readonly owner: string;
  readonly ttlSec: number;
  readonly rdata: StaticRdata;
  readonly text: string;
}

/** dns.identity: what CH TXT version.bind / id.server answer; null = REFUSED (as Knot does). */
export interface IdentityConfig {
  /** Answered for id.server and hostname.bind. */
  readonly id: string | null;
  /** Answered for version.bind and version.server. */
  readonly version: string | null;
}

export interface SoaConfig {
  /** Primary name server (lower-case, no trailing dot). */
  readonly mname: string;
  /** Responsible mailbox in domain-name form ("hostmaster.example.test"). */
  readonly rname: string;
  /** Explicit serial, or null: the snapshot compiler derives one (unix seconds, increasing across reloads). */
  readonly serial: number | null;
  readonly refreshSec: number;
  readonly retrySec: number;
  readonly expireSec: number;
  /** Negative-caching TTL (RFC 2308 §4). */
  readonly minimumSec: number;
  /** TTL of the SOA and NS RRsets themselves. */
  readonly ttlSec: number;
}

export interface NameserverConfig {
  /** Lower-case, no trailing dot. */
  readonly name: string;
  /** IP literals (normalised); answered as A/AAAA and used as glue when the name is inside one of our zones. */
  readonly addresses: readonly string[];
}

export interface HealthCheckConfig {
  readonly type: HealthCheckType;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly path: string;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  /** Inclusive status ranges that count as healthy. */
  readonly expectedStatus: readonly (readonly [number, number])[];
  readonly headers: Readonly<Record<string, string>>;
  /** Substring, or regex when written /…/; null = no body check. */
  readonly bodyMatch: { readonly kind: 'substring' | 'regex'; readonly pattern: string } | null;
  readonly tlsVerify: boolean;
  /** http/https only: reuse one connection per check target instead of connecting for every check. */
  readonly keepAlive: boolean;
  readonly emaAlpha: number;
}

export interface ServerConfig {
  /** Normalised IP literal (IPv6 in RFC 5952 form, "::ffff:a.b.c.d" turned into IPv4); for a CNAME server, its target name. */
  readonly address: string;
  /** The CNAME target (lower-case, no trailing dot) of a server answered as a CNAME, else null. */
  readonly cname: string | null;
  readonly family: 4 | 6;
  readonly port: number;
  /** 0..65535; 0 means "never answered" by the weighted policy. Default 100. */
  readonly weight: number;
  /** Host header / TLS SNI for this server's HTTP(S) check, or null. */
  readonly host: string | null;
  /** Address and port the health check probes (check_address/check_port, else address/port). */
  readonly checkAddress: string;
  readonly checkPort: number;
}

export interface RegionConfig {
  readonly name: string;
  readonly servers: readonly ServerConfig[];
  readonly healthCheck: HealthCheckConfig;
  /** ISO 3166-1 alpha-2 (or XK), upper-case; each country is in one region only. */
  readonly countries: readonly string[];
  /** AF AN AS EU NA OC SA; each continent is in one region only. */
  readonly continents: readonly string[];
}

export interface DomainConfig {
  /** Lower-case, no trailing dot. */
  readonly name: string;
  readonly routingAlgorithm: RoutingAlgorithm;
  /** Region names in failover-priority order; each exists. */
  readonly regions: readonly string[];
  readonly ttlSec: number;
  /** How many distinct servers one answer carries (1..32). */
  readonly maxAnswers: number;
  /** Apex of the zone (from DnsConfig.zones) the name belongs to: the longest matching suffix. */
  readonly zone: string;
  readonly whenAllDown: WhenAllDown;
  /** Normalised IP literals answered when whenAllDown is 'fallback'. */
  readonly fallback: readonly string[];
  readonly latency: LatencyConfig;
  readonly sticky: StickyConfig;
}

export interface StickyConfig {
  /** Prefix lengths the client address is cut to before hashing. */
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
}

export interface LatencyConfig {
  readonly maxLatencyMs: number;
  readonly minSamples: number;
  readonly tieMarginMs: number;
}

export interface LoggingConfig {
  readonly level: LogLevel;
  readonly format: LogFormat;
}
