import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';

// The smallest valid overwatch config; cases below add to it or replace parts of it.
const REGION = ['regions:', '  - name: eu-west', '    servers:', '      - address: 192.0.2.10'];
const DOMAIN = ['domains:', '  - name: app.example.test', '    regions: [eu-west]'];
const MINIMAL = [...REGION, ...DOMAIN];

interface Case {
  name: string;
  yaml: string[];
  /** Projects the part of the Config the case is about. */
  get: (c: Config) => unknown;
  expect: unknown;
}

const cases: Case[] = [
  // Defaults
  { name: 'defaults mode to overwatch', yaml: MINIMAL, get: (c) => c.mode, expect: 'overwatch' },
  {
    name: 'defaults dns.listen_address to ":53", which listens on 0.0.0.0',
    yaml: MINIMAL,
    get: (c) => [c.dns.listenHost, c.dns.listenPort],
    expect: ['0.0.0.0', 53],
  },
  { name: 'defaults dns.default_ttl to 60 seconds', yaml: MINIMAL, get: (c) => c.dns.defaultTtlSec, expect: 60 },
  { name: 'defaults dns.return_last_healthy to false', yaml: MINIMAL, get: (c) => c.dns.returnLastHealthy, expect: false },
  {
    name: 'defaults dns.workers to the available parallelism, at most 64',
    yaml: MINIMAL,
    get: (c) => c.dns.workers,
    expect: Math.min(availableParallelism(), 64),
  },
  { name: 'defaults dns.tcp_idle_timeout to 10 seconds', yaml: MINIMAL, get: (c) => c.dns.tcpIdleTimeoutMs, expect: 10_000 },
  { name: 'defaults dns.udp_receive_buffer to 1 MiB', yaml: MINIMAL, get: (c) => c.dns.udpReceiveBufferBytes, expect: 1048576 },
  { name: 'defaults dns.udp_io to auto (batched where the native addon loads)', yaml: MINIMAL, get: (c) => c.dns.udpIo, expect: 'auto' },
  { name: 'defaults dns.tcp_max_connections to 256 per worker', yaml: MINIMAL, get: (c) => c.dns.tcpMaxConnectionsPerWorker, expect: 256 },
  { name: 'defaults dns.tcp_max_connections_per_client to 16 for the whole server', yaml: MINIMAL, get: (c) => c.dns.tcpMaxConnectionsPerClient, expect: 16 },
  {
    name: 'defaults the TCP client network to the IPv4 address and the IPv6 /64',
    yaml: MINIMAL,
    get: (c) => [c.dns.tcpClientIpv4PrefixLength, c.dns.tcpClientIpv6PrefixLength],
    expect: [32, 64],
  },
  {
    name: 'defaults dns.tcp_max_queries_per_connection to 10000',
    yaml: MINIMAL,
    get: (c) => c.dns.tcpMaxQueriesPerConnection,
    expect: 10_000,
  },
  // dns.rrl: nxdomains_per_second and errors_per_second default to responses_per_second (BIND's rule),
  // whether that is its own default or set; a 0 set for one of them stays 0 (not limited), not the default.
  {
    name: 'defaults dns.rrl to off, 20 responses, NXDOMAINs and errors per second, window 15, slip 2, /24 and /56',
    yaml: MINIMAL,
    get: (c) => {
      const r = c.dns.rrl;
      return [r.enabled, r.responsesPerSecond, r.nxdomainsPerSecond, r.errorsPerSecond, r.windowSec, r.slip, r.ipv4PrefixLength, r.ipv6PrefixLength];
    },
    expect: [false, 20, 20, 20, 15, 2, 24, 56],
  },
  {
    name: 'defaults dns.rrl.nxdomains_per_second and errors_per_second to a set responses_per_second',
    yaml: [...MINIMAL, 'dns:', '  rrl: { enabled: true, responses_per_second: 7 }'],
    get: (c) => [c.dns.rrl.responsesPerSecond, c.dns.rrl.nxdomainsPerSecond, c.dns.rrl.errorsPerSecond],
    expect: [7, 7, 7],
  },
  {
    name: 'keeps a set dns.rrl.nxdomains_per_second, and defaults only errors_per_second to responses_per_second',
    yaml: [...MINIMAL, 'dns:', '  rrl: { responses_per_second: 50, nxdomains_per_second: 3 }'],
    get: (c) => [c.dns.rrl.responsesPerSecond, c.dns.rrl.nxdomainsPerSecond, c.dns.rrl.errorsPerSecond],
    expect: [50, 3, 50],
  },
  {
    name: 'keeps a set dns.rrl.errors_per_second, and defaults only nxdomains_per_second to responses_per_second',
    yaml: [...MINIMAL, 'dns:', '  rrl: { responses_per_second: 50, errors_per_second: 4 }'],
    get: (c) => [c.dns.rrl.responsesPerSecond, c.dns.rrl.nxdomainsPerSecond, c.dns.rrl.errorsPerSecond],
    expect: [50, 50, 4],
  },
  {
    name: 'keeps dns.rrl.nxdomains_per_second and errors_per_second of 0 (not limited) instead of defaulting them',
    yaml: [...MINIMAL, 'dns:', '  rrl: { responses_per_second: 9, nxdomains_per_second: 0, errors_per_second: 0 }'],
    get: (c) => [c.dns.rrl.responsesPerSecond, c.dns.rrl.nxdomainsPerSecond, c.dns.rrl.errorsPerSecond],
    expect: [9, 0, 0],
  },
  {
    name: 'makes each domain its own zone apex when dns.zones is absent',
    yaml: [...REGION, 'domains:', '  - { name: app.example.test, regions: [eu-west] }', '  - { name: www.other.test, regions: [eu-west] }'],
    get: (c) => [c.dns.zones.map((z) => z.name), c.domains.map((d) => d.zone)],
    expect: [['app.example.test', 'www.other.test'], ['app.example.test', 'www.other.test']],
  },
  {
    name: 'defaults the name servers of a zone to ns1.<zone> without addresses',
    yaml: MINIMAL,
    get: (c) => c.dns.zones[0]?.nameservers,
    expect: [{ name: 'ns1.app.example.test', addresses: [] }],
  },
  {
    name: 'defaults every SOA field (mname from the first name server, rname hostmaster.<zone>, timers)',
    yaml: MINIMAL,
    get: (c) => c.dns.zones[0]?.soa,
    expect: {
      mname: 'ns1.app.example.test',
      rname: 'hostmaster.app.example.test',
      serial: null,
      refreshSec: 3600,
      retrySec: 600,
      expireSec: 604800,
      minimumSec: 60,
      ttlSec: 3600,
    },
  },
  {
    name: 'defaults a server to port 80, weight 100, no host, and checks at its own address and port',
    yaml: MINIMAL,
    get: (c) => c.regions[0]?.servers[0],
    expect: { address: '192.0.2.10', cname: null, family: 4, port: 80, weight: 100, host: null, checkAddress: '192.0.2.10', checkPort: 80 },
  },
  {
    name: 'defaults the health check to http every 30s, 5s timeout, /health, thresholds 3 and 2, status 200-399, verified TLS, EMA alpha 0.3',
    yaml: MINIMAL,
    get: (c) => c.regions[0]?.healthCheck,
    expect: {
      type: 'http',
      intervalMs: 30_000,
      timeoutMs: 5_000,
      path: '/health',
      failureThreshold: 3,
      successThreshold: 2,
      expectedStatus: [[200, 399]],
      headers: {},
      bodyMatch: null,
      tlsVerify: true,
      keepAlive: false,
      emaAlpha: 0.3,
    },
  },
  {
    name: 'reads expected_status codes and ranges, headers, a regex body_match and check_address/check_port',
    yaml: [
      'regions:',
      '  - name: eu-west',
      '    servers: [{ address: 192.0.2.10, port: 443, check_address: 10.0.0.10, check_port: 8443 }]',
      '    health_check: { type: https, expected_status: [200, "204-206"], headers: { X-Probe: gslb }, body_match: "/^ok$/", tls_verify: false }',
      ...DOMAIN,
    ],
    get: (c) => [c.regions[0]?.servers[0]?.checkAddress, c.regions[0]?.servers[0]?.checkPort, c.regions[0]?.healthCheck.expectedStatus, c.regions[0]?.healthCheck.headers, c.regions[0]?.healthCheck.bodyMatch, c.regions[0]?.healthCheck.tlsVerify],
    expect: ['10.0.0.10', 8443, [[200, 200], [204, 206]], { 'X-Probe': 'gslb' }, { kind: 'regex', pattern: '^ok$' }, false],
  },
  {
    name: 'reads keep_alive on http and https checks, and accepts keep_alive: false on a tcp check',
    yaml: [
      'regions:',
      '  - name: eu-west',
      '    servers: [{ address: 192.0.2.10 }]',
      '    health_check: { type: http, keep_alive: true }',
      '  - name: eu-east',
      '    servers: [{ address: 192.0.2.11, port: 443 }]',
      '    health_check: { type: https, keep_alive: true }',
      '  - name: us-west',
      '    servers: [{ address: 192.0.2.12 }]',
      '    health_check: { type: tcp, keep_alive: false }',
      'domains:',
      '  - name: app.example.test',
      '    regions: [eu-west, eu-east, us-west]',
    ],
    get: (c) => c.regions.map((r) => r.healthCheck.keepAlive),
    expect: [true, true, false],
  },
  {
    name: 'defaults countries and continents to empty lists',
    yaml: MINIMAL,
    get: (c) => [c.regions[0]?.countries, c.regions[0]?.continents],
    expect: [[], []],
  },
  {
    name: 'defaults a domain to round-robin, dns.default_ttl and one answer',
    yaml: [...MINIMAL, 'dns: { default_ttl: 45 }'],
    get: (c) => c.domains[0],
    expect: {
      name: 'app.example.test',
      routingAlgorithm: 'round-robin',
      regions: ['eu-west'],
      ttlSec: 45,
      maxAnswers: 1,
      zone: 'app.example.test',
      whenAllDown: 'servfail',
      fallback: [],
      sticky: { ipv4Prefix: 24, ipv6Prefix: 56 },
      latency: { maxLatencyMs: 500, minSamples: 3, tieMarginMs: 5 },
    },
  },
  {
    name: 'reads sticky routing and its prefix lengths',
    yaml: [...REGION, 'domains:', '  - { name: app.example.test, regions: [eu-west], routing_algorithm: sticky, sticky: { ipv4_prefix: 16, ipv6_prefix: 48 } }'],
    get: (c) => [c.domains[0]?.routingAlgorithm, c.domains[0]?.sticky],
    expect: ['sticky', { ipv4Prefix: 16, ipv6Prefix: 48 }],
  },
  {
    name: 'makes last_healthy the all-down default when dns.return_last_healthy is true, as the Go original intended',
    yaml: [...MINIMAL, 'dns: { return_last_healthy: true }'],
    get: (c) => c.domains[0]?.whenAllDown,
    expect: 'last_healthy',
  },
  {
    name: 'reads when_all_down fallback with its addresses',
    yaml: [...REGION, 'domains:', '  - { name: app.example.test, regions: [eu-west], when_all_down: fallback, fallback: ["2001:DB8::1", 192.0.2.9] }'],
    get: (c) => [c.domains[0]?.whenAllDown, c.domains[0]?.fallback],
    expect: ['fallback', ['2001:db8::1', '192.0.2.9']],
  },
  {
    name: 'treats a domain ttl of 0 as "use dns.default_ttl", as the Go original does',
    yaml: [...REGION, 'domains:', '  - { name: app.example.test, regions: [eu-west], ttl: 0 }'],
    get: (c) => c.domains[0]?.ttlSec,
    expect: 60,
  },
  { name: 'defaults logging to info and json', yaml: MINIMAL, get: (c) => c.logging, expect: { level: 'info', format: 'json' } },
  {
    name: 'treats an empty value as an absent key, so its default applies',
    yaml: [...REGION.slice(0, 3), '      - { address: 192.0.2.10, port: , weight: "" }', ...DOMAIN],
    get: (c) => [c.regions[0]?.servers[0]?.port, c.regions[0]?.servers[0]?.weight],
    expect: [80, 100],
  },
  {
    name: 'sets Config.source to the absolute path of the file',
    yaml: MINIMAL,
    get: (c) => c.source,
    expect: resolve('test.yaml'),
  },

  // Explicit values and normalisation
  {
    name: 'reads a ":PORT" listen address with port 0 for tests',
    yaml: [...MINIMAL, 'dns: { listen_address: ":0" }'],
    get: (c) => [c.dns.listenHost, c.dns.listenPort],
    expect: ['0.0.0.0', 0],
  },
  {
    name: 'reads a bracketed IPv6 listen address without the brackets',
    yaml: [...MINIMAL, 'dns: { listen_address: "[::]:5353" }'],
    get: (c) => [c.dns.listenHost, c.dns.listenPort],
    expect: ['::', 5353],
  },
  {
    name: 'lower-cases names and drops the trailing dot',
    yaml: [...REGION, 'domains:', '  - { name: App.Example.TEST., regions: [eu-west] }'],
    get: (c) => [c.domains[0]?.name, c.dns.zones[0]?.name],
    expect: ['app.example.test', 'app.example.test'],
  },
  {
    name: 'compresses IPv6 server addresses to RFC 5952 form',
    yaml: ['regions:', '  - name: eu-west', '    servers:', '      - address: "2001:0DB8:0:0:0:0:0:0010"', ...DOMAIN],
    get: (c) => c.regions[0]?.servers[0],
    expect: { address: '2001:db8::10', cname: null, family: 6, port: 80, weight: 100, host: null, checkAddress: '2001:db8::10', checkPort: 80 },
  },
  {
    name: 'turns an IPv4-mapped IPv6 server address into IPv4, as the Go original does',
    yaml: ['regions:', '  - name: eu-west', '    servers:', '      - address: "::ffff:192.0.2.10"', ...DOMAIN],
    get: (c) => [c.regions[0]?.servers[0]?.address, c.regions[0]?.servers[0]?.family],
    expect: ['192.0.2.10', 4],
  },
  {
    name: 'allows weight 0, which keeps a server out of weighted answers',
    yaml: ['regions:', '  - name: eu-west', '    servers:', '      - { address: 192.0.2.10, weight: 0 }', ...DOMAIN],
    get: (c) => c.regions[0]?.servers[0]?.weight,
    expect: 0,
  },
  ...(
    [
      ['rr', 'round-robin'],
      ['RoundRobin', 'round-robin'],
      ['Round-Robin', 'round-robin'],
      ['weight', 'weighted'],
      ['WEIGHTED', 'weighted'],
      ['active-standby', 'failover'],
      ['ActiveStandby', 'failover'],
      ['failover', 'failover'],
    ] as const
  ).map(([alias, canonical]): Case => ({
    name: `accepts the routing algorithm alias "${alias}" as ${canonical}`,
    yaml: [...REGION, 'domains:', `  - { name: app.example.test, regions: [eu-west], routing_algorithm: ${alias} }`],
    get: (c) => c.domains[0]?.routingAlgorithm,
    expect: canonical,
  })),
  {
    name: 'accepts the log level "warning" as warn and any case',
    yaml: [...MINIMAL, 'logging: { level: WARNING, format: Text }'],
    get: (c) => c.logging,
    expect: { level: 'warn', format: 'text' },
  },
  {
    name: 'turns an e-mail SOA rname into domain-name form',
    yaml: [...MINIMAL, 'dns:', '  soa: { rname: Hostmaster@Example.TEST }'],
    get: (c) => c.dns.zones[0]?.soa.rname,
    expect: 'hostmaster.example.test',
  },
  {
    name: 'upper-cases country and continent codes',
    yaml: [...REGION, '    countries: [de, Fr]', '    continents: [eu, Na]', ...DOMAIN],
    get: (c) => [c.regions[0]?.countries, c.regions[0]?.continents],
    expect: [['DE', 'FR'], ['EU', 'NA']],
  },
  {
    name: 'converts health-check durations to milliseconds',
    yaml: [...REGION, '    health_check: { type: tcp, interval: 1m30s, timeout: 1500ms }', ...DOMAIN],
    get: (c) => [c.regions[0]?.healthCheck.type, c.regions[0]?.healthCheck.intervalMs, c.regions[0]?.healthCheck.timeoutMs],
    expect: ['tcp', 90_000, 1_500],
  },
  {
    name: 'places each domain in the longest matching zone of dns.zones',
    yaml: [
      ...REGION,
      'dns:',
      '  zones: [example.test, eu.example.test]',
      'domains:',
      '  - { name: app.eu.example.test, regions: [eu-west] }',
      '  - { name: app.example.test, regions: [eu-west] }',
      '  - { name: example.test, regions: [eu-west] }',
    ],
    get: (c) => c.domains.map((d) => d.zone),
    expect: ['eu.example.test', 'example.test', 'example.test'],
  },
  {
    name: 'takes SOA fields and name servers of a zone map over the dns-level ones',
    yaml: [
      ...REGION,
      'dns:',
      '  soa: { retry: 5m, serial: 2024010101 }',
      '  nameservers: [ns1.example.test, { name: ns2.example.test, addresses: [192.0.2.53, "2001:db8::53"] }]',
      '  zones:',
      '    - example.test',
      '    - name: other.test',
      '      soa: { refresh: 2h, rname: dns@other.test }',
      '      nameservers: [ns.other.test]',
      'domains:',
      '  - { name: a.example.test, regions: [eu-west] }',
      '  - { name: b.other.test, regions: [eu-west] }',
    ],
    get: (c) => c.dns.zones,
    expect: [
      {
        name: 'example.test',
        soa: { mname: 'ns1.example.test', rname: 'hostmaster.example.test', serial: 2024010101, refreshSec: 3600, retrySec: 300, expireSec: 604800, minimumSec: 60, ttlSec: 3600 },
        nameservers: [{ name: 'ns1.example.test', addresses: [] }, { name: 'ns2.example.test', addresses: ['192.0.2.53', '2001:db8::53'] }],
        records: [],
      },
      {
        name: 'other.test',
        soa: { mname: 'ns.other.test', rname: 'dns.other.test', serial: 2024010101, refreshSec: 7200, retrySec: 300, expireSec: 604800, minimumSec: 60, ttlSec: 3600 },
        nameservers: [{ name: 'ns.other.test', addresses: [] }],
        records: [],
      },
    ],
  },
  {
    name: 'uses an explicit dns.soa.mname for every zone',
    yaml: [...MINIMAL, 'dns: { soa: { mname: Primary.Example.NET. } }'],
    get: (c) => c.dns.zones[0]?.soa.mname,
    expect: 'primary.example.net',
  },
  {
    name: 'accepts mode agent without regions or domains',
    yaml: [
      'mode: agent',
      'agent:',
      '  identity: { service_token: token-for-app-0123456789, region: eu-west }',
      '  backends:',
      '    - { service: app.example.test, address: backend.local, port: 8080 }',
      '  gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", overwatch_nodes: ["ow-1.example.test:7946"] }',
    ],
    get: (c) => [c.mode, c.regions, c.domains, c.dns.zones, c.gossip],
    expect: ['agent', [], [], [], null],
  },
  {
    name: 'normalises the agent section: paths from the file\'s folder, backends with the region check keys, nodes',
    yaml: [
      'mode: agent',
      'agent:',
      '  identity: { service_token: token-for-app-0123456789, region: eu-west, cert_path: state/agent.crt }',
      '  backends:',
      '    - { service: App.Example.Test., address: "::ffff:10.0.0.1", port: 8080, weight: 0, health_check: { type: tcp, interval: 5s, timeout: 1s, host: app.internal } }',
      '    - { service: app.example.test, address: Backend.Local, port: 8081 }',
      '  predictive: { enabled: true, cpu: { threshold: 80, bleed_duration: 1m } }',
      '  gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", overwatch_nodes: ["10.0.0.5:7946", "[2001:db8::5]:7946"] }',
      '  heartbeat: { interval: 5s, full_interval: 20s }',
    ],
    get: (c) => {
      const a = c.agent;
      return [
        a?.identity.certPath, a?.identity.keyPath, a?.backends.map((b) => [b.service, b.address, b.family, b.weight, b.host, b.healthCheck.type, b.healthCheck.intervalMs]),
        a?.predictive.cpu, a?.gossip.overwatchNodes, a?.heartbeat,
      ];
    },
    expect: [
      resolve('state/agent.crt'),
      '/var/lib/opengslb/agent.key',
      [['app.example.test', '10.0.0.1', 4, 0, 'app.internal', 'tcp', 5000], ['app.example.test', 'backend.local', null, 100, null, 'http', 30000]],
      { thresholdPercent: 80, bleedDurationMs: 60000 },
      [{ host: '10.0.0.5', port: 7946 }, { host: '2001:db8::5', port: 7946 }],
      { intervalMs: 5000, missedThreshold: 3, fullIntervalMs: 20000 },
    ],
  },
  {
    name: 'accepts the Go original sections metrics, api and overwatch, and reads api, metrics and data_dir from them',
    yaml: [
      ...MINIMAL,
      'metrics: { enabled: true, address: ":9091" }',
      'api: { enabled: true, address: "127.0.0.1:8080", allowed_networks: [10.0.0.0/8, "::1/128"], allowed_hosts: [GSLB1.Example.NET., gslb2.example.net], trust_proxy_headers: false }',
      'overwatch:',
      '  identity: { node_id: ow-1, region: eu-west }',
      '  agent_tokens: { App.Example.Test.: some-token-value }',
      '  gossip: { bind_address: "0.0.0.0:7946", encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", probe_interval: 1s }',
      '  validation: { enabled: true, check_interval: 30s, check_timeout: 5s }',
      '  stale: { threshold: 30s, remove_after: 5m }',
      '  dnssec: { enabled: false, security_acknowledgment: "I understand that disabling DNSSEC removes cryptographic authentication of DNS responses and allows DNS spoofing attacks against my zones", algorithm: ecdsap256sha256, key_sync: { peers: ["https://peer:8080"], poll_interval: 1h, timeout: 30s, shared_secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" } }',
      '  geolocation: { database_path: /var/lib/GeoLite2-Country.mmdb, default_region: eu-west, ecs_enabled: true, custom_mappings: [{ cidr: 10.0.0.0/8, region: eu-west, comment: office }] }',
      '  data_dir: /var/lib/opengslb',
    ],
    get: (c) => [Object.keys(c), c.api, c.metrics, c.dataDir, c.gossip, c.agentTokens, c.validation, c.stale, c.agent],
    expect: [
      ['source', 'mode', 'dns', 'regions', 'domains', 'logging', 'api', 'metrics', 'dataDir', 'geolocation', 'dnssec', 'gossip', 'agentTokens', 'validation', 'stale', 'peers', 'bus', 'agent'],
      { enabled: true, host: '127.0.0.1', port: 8080, allowedNetworks: ['10.0.0.0/8', '::1/128'], allowedHosts: ['gslb1.example.net', 'gslb2.example.net'], trustProxyHeaders: false, maxConnections: 256, token: null, tls: null },
      { enabled: true, host: '0.0.0.0', port: 9091 },
      '/var/lib/opengslb',
      { bindHost: '0.0.0.0', bindPort: 7946, encryptionKey: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=', acceptedKeys: [], maxClockSkewMs: 30000, maxAgents: 10000 },
      { 'app.example.test': 'some-token-value' },
      { enabled: true, checkIntervalMs: 30000, checkTimeoutMs: 5000 },
      { thresholdMs: 30000, removeAfterMs: 300000 },
      null,
    ],
  },
  {
    name: 'resolves YAML anchors and aliases',
    yaml: [
      'regions:',
      '  - name: eu-west',
      '    servers: [{ address: 192.0.2.10 }]',
      '    health_check: &fast { interval: 5s, timeout: 1s }',
      '  - name: us-east',
      '    servers: [{ address: 192.0.2.20 }]',
      '    health_check: *fast',
      ...DOMAIN,
    ],
    get: (c) => c.regions.map((r) => r.healthCheck.intervalMs),
    expect: [5_000, 5_000],
  },
  // Geolocation
  {
    name: 'defaults geolocation to the bundled database, no default region, ECS on and no mappings',
    yaml: MINIMAL,
    get: (c) => c.geolocation,
    expect: { databasePath: null, defaultRegion: null, ecsEnabled: true, customMappings: [] },
  },
  {
    name: 'takes a relative geolocation.database_path from the config file\'s folder',
    yaml: [...MINIMAL, 'overwatch:', '  geolocation: { database_path: geo/GeoLite2-Country.mmdb }'],
    get: (c) => c.geolocation.databasePath === resolve(dirname(c.source), 'geo/GeoLite2-Country.mmdb'),
    expect: true,
  },
  {
    name: 'reads custom mappings as networks with host bits cleared, IPv4-mapped prefixes as IPv4',
    yaml: [
      ...REGION,
      '    countries: [de, AT]',
      '    continents: [eu]',
      ...DOMAIN,
      'overwatch:',
      '  geolocation:',
      '    default_region: eu-west',
      '    ecs_enabled: false',
      '    custom_mappings:',
      '      - { cidr: 10.1.2.3/8, region: eu-west, comment: office }',
      '      - { cidr: "2001:DB8:0:1::/32", region: eu-west }',
      '      - { cidr: "::ffff:192.0.2.0/120", region: eu-west }',
    ],
    get: (c) => [c.regions[0]?.countries, c.regions[0]?.continents, c.geolocation],
    expect: [['DE', 'AT'], ['EU'], {
      databasePath: null,
      defaultRegion: 'eu-west',
      ecsEnabled: false,
      customMappings: [
        { cidr: '10.0.0.0/8', region: 'eu-west', comment: 'office' },
        { cidr: '2001:db8::/32', region: 'eu-west', comment: null },
        { cidr: '192.0.2.0/24', region: 'eu-west', comment: null },
      ],
    }],
  },
  {
    name: 'upper-cases country codes in ASCII only, so a dotless i is not taken for "I"',
    yaml: [...REGION, '    countries: [ie]', ...DOMAIN],
    get: (c) => c.regions[0]?.countries,
    expect: ['IE'],
  },
  {
    name: 'accepts XK (Kosovo), which GeoIP databases use',
    yaml: [...REGION, '    countries: [xk]', ...DOMAIN],
    get: (c) => c.regions[0]?.countries,
    expect: ['XK'],
  },
];

for (const c of cases) {
  test(c.name, () => {
    const config = parseConfigText(c.yaml.join('\n'), 'test.yaml');
    assert.deepEqual(c.get(config), c.expect);
  });
}

test('deep-freezes the returned config', () => {
  const config = parseConfigText(MINIMAL.join('\n'), 'test.yaml');
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.dns.zones));
  assert.ok(Object.isFrozen(config.dns.zones[0]?.soa));
  assert.ok(Object.isFrozen(config.regions[0]?.servers[0]));
  assert.throws(() => {
    (config.domains as unknown as unknown[]).push({});
  }, TypeError);
});

test('refuses a country code that upper-cases to ASCII only outside ASCII (dotless i, sharp s)', () => {
  // "\u0131e".toUpperCase() is "IE" and "\u00df".toUpperCase() is "SS": both passed the pattern.
  for (const code of ['\u0131e', '\u00df']) {
    assert.throws(() => parseConfigText([...REGION, `    countries: ["${code}"]`, ...DOMAIN].join('\n'), 'test.yaml'), /is invalid, expected a two-letter ISO 3166-1 country code/);
  }
});

test('resolves thousands of aliases in one file in linear time', () => {
  // yaml's Alias.resolve() walks the whole document for every alias: 5000 domains that share
  // `regions: *all` took half a minute. The loader resolves each file's anchors in one pass.
  const domains = Array.from({ length: 5000 }, (_, i) => `  - { name: d${i}.example.test, regions: *all }`);
  const yaml = [...REGION, 'domains:', '  - { name: app.example.test, regions: &all [eu-west] }', ...domains];
  const started = performance.now();
  const config = parseConfigText(yaml.join('\n'), 'test.yaml');
  const ms = performance.now() - started;
  assert.equal(config.domains.length, 5001);
  assert.deepEqual(config.domains[5000]?.regions, ['eu-west']);
  assert.ok(ms < 5000, `took ${Math.round(ms)} ms`);
});
