// Bench only, cold. The benchmark scenarios: for each, the engine config it
// runs (rendered YAML, the production config format), the queries it sends
// ("name TYPE" lines, dnsperf's format) and what it is compared with. The
// micro benchmarks compile the same configs, so a micro figure and an e2e
// figure describe the same snapshot.
//
// Servers of scenarios without health checks get unreachable 10/8 addresses
// and `health_check: { type: none }`: nothing is ever sent to them. Scenarios
// with checks use 127.1.x.y on the port of bench/health-scale.ts's HTTP
// servers (--role servers), the same numbering health-scale.ts uses.

import { CookieScratch, REPLY_COOKIE_LEN, writeReplyCookie } from '../../src/dns/cookie.ts';
import { sipKey } from '../../src/lib/siphash.ts';

export type TargetKind = 'bare' | 'engine' | 'knot' | 'floor';
export type Transport = 'udp' | 'tcp';

/** Values a config needs at start time. */
export interface ConfigContext {
  readonly port: number;
  readonly workers: number;
  /** Port of the local HTTP backends, or 0 when none run. */
  readonly backendPort: number;
  /** Servers checked in the `health` scenario, and their check interval. */
  readonly healthServers: number;
  readonly healthIntervalSec: number;
}

export interface Scenario {
  readonly id: string;
  /** One line for tables and docs: what the scenario shows. */
  readonly meaning: string;
  readonly target: TargetKind;
  readonly transport: Transport;
  /** Scenario whose QPS and p99 this one is compared with; null for the ceilings themselves. */
  readonly ceiling: string | null;
  /** Needs the local HTTP backends (health-scale.ts --role servers). */
  readonly needsBackends: boolean;
  /**
   * Started only for its own runs and stopped after: its health checks keep
   * the main thread busy and would slow every other scenario down.
   */
  readonly exclusive: boolean;
  /** Run only when its program is installed (knotd) or can be built (the floor responder, with cc), and not in --quick unless named. */
  readonly optional?: boolean;
  /** Renders the engine config; undefined for the bare and floor responders and Knot. */
  readonly config?: (ctx: ConfigContext) => string;
  /** The query file's lines. */
  readonly queries: () => string[];
  /** The A name the readiness probe asks for. */
  readonly probe: string;
  /** Queries carry EDNS with the DO bit: the engine answers with RRSIGs (DNSSEC is on by default). */
  readonly dnssecOk?: boolean;
  /** One EDNS option every query carries, as dnsperf's -E takes it ("code:hex"); dnsperf only. */
  readonly ednsOption?: string;
  /**
   * The UDP path: for the bare responder, which one it answers on (--io);
   * for the engine, 'dgram' renders `udp_io: dgram` (absent = the default,
   * auto: batched where the addon loads).
   */
  readonly udpIo?: 'batched' | 'dgram';
}

/** The cookie secret of the a-rr-3-cookie scenario (used as the SipHash key itself: rotate: false). */
const BENCH_COOKIE_SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

/**
 * A client cookie and a server cookie the a-rr-3-cookie server accepts from
 * 127.0.0.1, stamped when the bench starts (valid for an hour), as hex.
 */
function benchCookie(): string {
  const client = Buffer.from('0123456789abcdef', 'hex');
  const out = new Uint8Array(REPLY_COOKIE_LEN);
  writeReplyCookie(out, 0, { words: sipKey(Buffer.from(BENCH_COOKIE_SECRET, 'hex')), count: 1 }, new CookieScratch(), client, 0, Math.floor(Date.now() / 1000), Uint8Array.of(127, 0, 0, 1), 4);
  return Buffer.from(out).toString('hex');
}

/** The scenario whose engine/bare ratio is the headline: one A name, round-robin over 3 servers. */
export const HEADLINE = 'a-rr-3';
export const BARE = 'bare';
/** The bare responder on the batched path: the ceiling of the engine's default UDP path. */
export const BARE_BATCHED = 'bare-batched';
export const BARE_TCP = 'bare-tcp';
/** bench/floor-responder.c: the kernel's UDP path alone, on the batched design. */
export const FLOOR = 'floor';

const ZONE = 'bench.test';
const APP = `app.${ZONE}`;

/** An unreachable address for server i (type none: never contacted): 10.0.0.1, 10.0.0.2, … */
export function unreachableAddress(i: number): string {
  const n = i + 1;
  return `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The loopback address of backend i, numbered as bench/health-scale.ts does: 127.1.0.1, 127.1.0.2, … */
export function backendAddress(i: number): string {
  const n = i + 1;
  return `127.${1 + (n >>> 16)}.${(n >>> 8) & 255}.${n & 255}`;
}

import { seededRandom } from '../../src/lib/random.ts';

export { seededRandom };

function shuffle<T>(items: T[], seed: number): T[] {
  const rnd = seededRandom(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function header(ctx: ConfigContext): string[] {
  return ['dns:', `  listen_address: "127.0.0.1:${ctx.port}"`, `  workers: ${ctx.workers}`, `  zones: [${ZONE}]`];
}

// State (overrides, last-up times) next to the generated config, never in /var/lib/opengslb.
const FOOTER = 'logging: { level: warn, format: json }\noverwatch: { data_dir: ./state }';
const UNCHECKED = '    health_check: { type: none }';

/** A region of `count` unreachable, unchecked servers starting at server number `from`. */
function uncheckedRegion(name: string, from: number, count: number, weights?: readonly number[]): string[] {
  const lines = [`  - name: ${name}`, UNCHECKED, '    servers:'];
  for (let i = 0; i < count; i++) {
    lines.push(weights === undefined ? `      - { address: ${unreachableAddress(from + i)} }` : `      - { address: ${unreachableAddress(from + i)}, weight: ${weights[i]} }`);
  }
  return lines;
}

/**
 * One name, `servers` unchecked servers in one region, the given policy;
 * `extra` is appended to the domain's flow map (e.g. "when_all_down: all").
 * Weights, when given, are cycled over the servers.
 */
export function singleNameConfig(policy: string, servers: number, extra = '', weights?: readonly number[]): (ctx: ConfigContext) => string {
  const w = weights === undefined ? undefined : Array.from({ length: servers }, (_, i) => weights[i % weights.length]);
  return (ctx) =>
    [
      ...header(ctx),
      'regions:',
      ...uncheckedRegion('r1', 0, servers, w),
      'domains:',
      `  - { name: ${APP}, routing_algorithm: ${policy}, regions: [r1]${extra === '' ? '' : `, ${extra}`} }`,
      FOOTER,
      '',
    ].join('\n');
}

/** The same config with `udp_io: dgram`: the engine on its node:dgram path. */
export function dgramConfig(render: (ctx: ConfigContext) => string): (ctx: ConfigContext) => string {
  return (ctx) => render(ctx).replace(`  zones: [${ZONE}]\n`, `  zones: [${ZONE}]\n  udp_io: dgram\n`);
}

/** Renders a config for the micro benchmarks (ports are never opened). */
export function microConfig(render: (ctx: ConfigContext) => string): string {
  return render({ port: 53, workers: 1, backendPort: 8080, healthServers: 1000, healthIntervalSec: 1 });
}

function failoverConfig(ctx: ConfigContext): string {
  // Three regions of one server each, in priority order, as failover is used.
  return [
    ...header(ctx),
    'regions:',
    ...uncheckedRegion('primary', 0, 1),
    ...uncheckedRegion('secondary', 1, 1),
    ...uncheckedRegion('tertiary', 2, 1),
    'domains:',
    `  - { name: ${APP}, routing_algorithm: failover, regions: [primary, secondary, tertiary] }`,
    FOOTER,
    '',
  ].join('\n');
}

function latencyConfig(ctx: ConfigContext): string {
  // Checked every second so every server has a latency sample by the time the
  // server answers (min_samples 1); then the latency policy, not its
  // round-robin warm-up, picks every answer.
  return [
    ...header(ctx),
    'regions:',
    '  - name: r1',
    '    health_check: { type: http, interval: 1s, timeout: 500ms, path: /health }',
    '    servers:',
    ...[0, 1, 2].map((i) => `      - { address: ${backendAddress(i)}, port: ${ctx.backendPort} }`),
    'domains:',
    `  - { name: ${APP}, routing_algorithm: latency, regions: [r1], latency_config: { min_samples: 1 } }`,
    FOOTER,
    '',
  ].join('\n');
}

/**
 * The headline config with the per-connection query cap at its maximum. At
 * the default (10 000) the server closes each of dnsperf's pipelined
 * connections every ~0.1 s at saturation; dnsperf then stalls on the queries
 * that were in flight (each waits out its 5 s timeout) and the server idles
 * at ~17 % CPU, so the run would measure dnsperf's reconnect handling.
 */
function tcpConfig(ctx: ConfigContext): string {
  return singleNameConfig('round-robin', 3)(ctx).replace(`  zones: [${ZONE}]\n`, `  zones: [${ZONE}]\n  tcp_max_queries_per_connection: 1000000\n`);
}

/** Servers per region in the health scenario (the config format has no per-region cap; 1 000 keeps regions readable). */
const HEALTH_REGION_SIZE = 1000;

function healthConfig(ctx: ConfigContext): string {
  const lines = [...header(ctx), 'regions:'];
  const check = `    health_check: { type: http, interval: ${ctx.healthIntervalSec}s, timeout: ${Math.min(2000, Math.floor((ctx.healthIntervalSec * 1000) / 2))}ms, path: /health }`;
  for (let r = 0; r * HEALTH_REGION_SIZE < ctx.healthServers; r++) {
    lines.push(`  - name: h${r}`, check, '    servers:');
    const end = Math.min(ctx.healthServers, (r + 1) * HEALTH_REGION_SIZE);
    for (let i = r * HEALTH_REGION_SIZE; i < end; i++) lines.push(`      - { address: ${backendAddress(i)}, port: ${ctx.backendPort} }`);
  }
  // The queried name is served by the first three servers. The overwatch
  // checks only servers some domain answers with (src/overwatch/check-targets.ts),
  // so the fleet sits behind a second name that is never queried. The same
  // address, port and check settings in two regions are probed once.
  lines.push('  - name: app-servers', check, '    servers:');
  for (let i = 0; i < 3; i++) lines.push(`      - { address: ${backendAddress(i)}, port: ${ctx.backendPort} }`);
  const fleet = Array.from({ length: Math.ceil(ctx.healthServers / HEALTH_REGION_SIZE) }, (_, r) => `h${r}`).join(', ');
  lines.push(
    'domains:',
    `  - { name: ${APP}, routing_algorithm: round-robin, regions: [app-servers] }`,
    `  - { name: fleet.${ZONE}, routing_algorithm: round-robin, regions: [${fleet}] }`,
    FOOTER,
    '',
  );
  return lines.join('\n');
}

/** Number of names in the names-10k scenario. */
export const MANY_NAMES = 10_000;

/** The i-th name of the names-10k scenario. */
export function manyName(i: number): string {
  return `n${i}.${ZONE}`;
}

/** The names-10k query file: every name once, in a fixed shuffled order. */
function manyNamesQueries(): string[] {
  return shuffle(Array.from({ length: MANY_NAMES }, (_, i) => `${manyName(i)} A`), 10);
}

function manyNamesConfig(ctx: ConfigContext): string {
  const lines = [...header(ctx), 'regions:', ...uncheckedRegion('r1', 0, 3), 'domains:'];
  for (let i = 0; i < MANY_NAMES; i++) lines.push(`  - { name: ${manyName(i)}, regions: [r1] }`);
  lines.push(FOOTER, '');
  return lines.join('\n');
}

/** The mixed scenario's names: app has IPv4 and IPv6 servers, the rest IPv4 only. */
const MIXED_NAMES = ['app', 'www', 'api', 's1', 's2', 's3', 's4', 's5', 's6', 's7'].map((n) => `${n}.${ZONE}`);

function mixedConfig(ctx: ConfigContext): string {
  return [
    ...header(ctx),
    'regions:',
    ...uncheckedRegion('v4a', 0, 3),
    ...uncheckedRegion('v4b', 3, 3, [100, 200, 300]),
    '  - name: v6',
    UNCHECKED,
    '    servers:',
    '      - { address: "2001:db8::1" }',
    '      - { address: "2001:db8::2" }',
    'domains:',
    `  - { name: ${MIXED_NAMES[0]}, routing_algorithm: round-robin, regions: [v4a, v6] }`,
    `  - { name: ${MIXED_NAMES[1]}, routing_algorithm: weighted, regions: [v4b] }`,
    `  - { name: ${MIXED_NAMES[2]}, routing_algorithm: failover, regions: [v4a, v4b] }`,
    ...MIXED_NAMES.slice(3).map((n) => `  - { name: ${n}, routing_algorithm: round-robin, regions: [v4b] }`),
    FOOTER,
    '',
  ].join('\n');
}

/**
 * The mixed query file, 1 000 lines in a fixed shuffled order: 70 % A for
 * names we hold, 10 % AAAA (half answered, half NODATA with SOA), 10 % names
 * in our zone that do not exist (NXDOMAIN with SOA), 10 % names outside every
 * zone (REFUSED after walking every suffix).
 */
export function mixedQueries(): string[] {
  const lines: string[] = [];
  for (let i = 0; i < 700; i++) lines.push(`${MIXED_NAMES[i % MIXED_NAMES.length]} A`);
  for (let i = 0; i < 100; i++) lines.push(`${MIXED_NAMES[i % 2 === 0 ? 0 : 1]} AAAA`);
  for (let i = 0; i < 100; i++) lines.push(`missing-${i}.${ZONE} A`);
  for (let i = 0; i < 100; i++) lines.push(`www.example-${i}.com A`);
  return shuffle(lines, 6);
}

const single = (): string[] => [`${APP} A`];

/** A CNAME pool: one name answered with one of three CNAME targets outside the zone (never checked), by `policy`. */
function cnamePoolConfig(policy: string): (ctx: ConfigContext) => string {
  return (ctx) =>
    [
      ...header(ctx),
      'regions:',
      '  - name: cdn',
      UNCHECKED,
      '    servers:',
      ...[1, 2, 3].map((i) => `      - { cname: edge${i}.cdn.example.net }`),
      'domains:',
      `  - { name: ${APP}, routing_algorithm: ${policy}, regions: [cdn] }`,
      FOOTER,
      '',
    ].join('\n');
}

/** Static records beside the headline domain: the asked name is a static A RRset (dns.zones[].records) of three addresses. */
function staticConfig(ctx: ConfigContext): string {
  return [
    'dns:', `  listen_address: "127.0.0.1:${ctx.port}"`, `  workers: ${ctx.workers}`,
    '  zones:', `    - name: ${ZONE}`, '      records:',
    ...[1, 2, 3].map((i) => `        - "static 300 A 192.0.2.${i}"`),
    '        - "@ MX 10 mail"', '        - \'@ TXT "v=spf1 -all"\'',
    'regions:', ...uncheckedRegion('r1', 0, 3),
    'domains:', `  - { name: ${APP}, routing_algorithm: round-robin, regions: [r1] }`,
    FOOTER, '',
  ].join('\n');
}

/**
 * Geolocation: three regions of three servers placed by country and
 * continent from the bundled DB-IP database, a default region, and a custom
 * mapping for the loopback network the load generator sends from.
 */
function geoConfig(ctx: ConfigContext): string {
  const region = (name: string, from: number, place: string): string[] => [...uncheckedRegion(name, from, 3), `    ${place}`];
  return [
    ...header(ctx),
    'regions:',
    ...region('eu', 0, 'countries: [DE, FR, GB, NL]\n    continents: [EU, AF]'),
    ...region('us', 3, 'countries: [US, CA]\n    continents: [NA, SA]'),
    ...region('apac', 6, 'continents: [AS, OC]'),
    'domains:',
    `  - { name: ${APP}, routing_algorithm: geolocation, regions: [eu, us, apac] }`,
    'overwatch:',
    '  data_dir: ./state',
    '  geolocation:',
    '    default_region: us',
    '    custom_mappings: [{ cidr: 127.0.0.0/8, region: eu }]',
    'logging: { level: warn, format: json }',
    '',
  ].join('\n');
}

/** Number of distinct ECS client subnets in the geo-ecs query file. */
export const GEO_CLIENTS = 1000;

/** The geo-ecs query file: one /24 per line, spread over the public IPv4 space (1.0.0.0–223.255.255.0) in a fixed order. */
export function geoEcsQueries(): string[] {
  const rnd = seededRandom(14);
  const lines: string[] = [];
  for (let i = 0; i < GEO_CLIENTS; i++) {
    const a = 1 + Math.floor(rnd() * 223);
    lines.push(`${APP} A ecs=${a === 127 || a === 10 ? 11 : a}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.0/24`);
  }
  return lines;
}

/** A program from outside the project answering the headline's name, run when it is there, compared with the batched ceiling. */
function outsideProgram(id: string, target: 'knot' | 'floor', meaning: string): Scenario {
  return { id, meaning, target, transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, optional: true, queries: single, probe: APP };
}

/**
 * Every scenario, in the order a repetition runs them: each ceiling right
 * before what it bounds, and the scale scenarios (1 000 servers, 10 000
 * names) right after the one-name run they are compared with, Knot between
 * on the batched path: their CPU per query is judged as a ratio to it within
 * the repetition, and this machine drifts by tens of percent within minutes.
 * The floor responder goes first on the batched path, out of that sequence.
 */
export const SCENARIOS: readonly Scenario[] = [
  { id: BARE, meaning: 'bare node:dgram responder, fixed answer: the ceiling of the node:dgram path', target: 'bare', transport: 'udp', ceiling: null, needsBackends: false, exclusive: false, queries: single, probe: APP, udpIo: 'dgram' },
  { id: 'a-rr-3-dgram', meaning: 'the headline config on the node:dgram path (udp_io: dgram)', target: 'engine', transport: 'udp', ceiling: BARE, needsBackends: false, exclusive: false, config: dgramConfig(singleNameConfig('round-robin', 3)), queries: single, probe: APP, udpIo: 'dgram' },
  { id: 'rr-1000-dgram', meaning: 'rr-1000 on the node:dgram path', target: 'engine', transport: 'udp', ceiling: BARE, needsBackends: false, exclusive: false, config: dgramConfig(singleNameConfig('round-robin', 1000)), queries: single, probe: APP, udpIo: 'dgram' },
  { id: 'names-10k-dgram', meaning: 'names-10k on the node:dgram path', target: 'engine', transport: 'udp', ceiling: BARE, needsBackends: false, exclusive: false, config: dgramConfig(manyNamesConfig), queries: manyNamesQueries, probe: manyName(0), udpIo: 'dgram' },
  outsideProgram(FLOOR, 'floor', "a C program on Knot's and the addon's I/O design (epoll, recvmmsg, sendmmsg) doing no DNS work, fixed answer: what the kernel's UDP path costs, the floor for any server on this design"),
  {
    id: BARE_BATCHED,
    meaning: 'bare responder on the batched path (recvmmsg, one JS call per batch, sendmmsg), fixed answer: the ceiling of the engine\'s default UDP path',
    target: 'bare',
    transport: 'udp',
    ceiling: null,
    needsBackends: false,
    exclusive: false,
    queries: single,
    probe: APP,
    udpIo: 'batched',
  },
  { id: HEADLINE, meaning: 'one A name, round-robin over 3 servers, batched UDP (the headline)', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: singleNameConfig('round-robin', 3), queries: single, probe: APP },
  outsideProgram('knot', 'knot', 'Knot DNS (C) serving the same name from a static zone, one A record: a mature server on the same machine'),
  { id: 'rr-1000', meaning: 'one name, round-robin over 1 000 servers', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: singleNameConfig('round-robin', 1000), queries: single, probe: APP },
  { id: 'names-10k', meaning: '10 000 names, each round-robin over 3 servers, queried in a shuffled order', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: manyNamesConfig, queries: manyNamesQueries, probe: manyName(0) },
  {
    id: 'a-rr-3-rrl',
    meaning: 'the headline with response rate limiting on at a rate dnsperf never reaches: the cost of the accounting (one shared-table account per query)',
    target: 'engine',
    transport: 'udp',
    ceiling: BARE_BATCHED,
    needsBackends: false,
    exclusive: false,
    config: (ctx) => singleNameConfig('round-robin', 3)(ctx).replace(`  zones: [${ZONE}]\n`, `  zones: [${ZONE}]\n  rrl: { enabled: true, responses_per_second: 1000000 }\n`),
    queries: single,
    probe: APP,
  },
  {
    id: 'a-rr-3-cookie',
    meaning: 'the headline with a valid DNS server cookie in every query: one SipHash to check it, one to make the fresh one answered',
    target: 'engine',
    transport: 'udp',
    ceiling: BARE_BATCHED,
    needsBackends: false,
    exclusive: false,
    config: (ctx) => singleNameConfig('round-robin', 3)(ctx).replace(`  zones: [${ZONE}]\n`, `  zones: [${ZONE}]\n  cookies: { secret: "${BENCH_COOKIE_SECRET}", rotate: false }\n`),
    queries: single,
    probe: APP,
    ednsOption: `10:${benchCookie()}`,
  },
  { id: 'mixed', meaning: 'query mix: 70 % A hits, 10 % AAAA, 10 % NXDOMAIN, 10 % outside our zones', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: mixedConfig, queries: mixedQueries, probe: APP },
  { id: 'weighted-3', meaning: 'one name, weighted over 3 servers (weights 100/200/300)', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: singleNameConfig('weighted', 3, '', [100, 200, 300]), queries: single, probe: APP },
  {
    id: 'a-rr-3-do',
    meaning: 'the headline with the DO bit: every answer signed (RRSIG from the workers\' signature cache, pre-signed); compared with the unsigned headline',
    target: 'engine',
    transport: 'udp',
    ceiling: HEADLINE,
    needsBackends: false,
    exclusive: false,
    config: singleNameConfig('round-robin', 3),
    queries: single,
    probe: APP,
    dnssecOk: true,
  },
  { id: 'weighted-2of10', meaning: 'one name, weighted max_answers 2 over 10 servers (45 distinct answer sets)', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: singleNameConfig('weighted', 10, 'max_answers: 2'), queries: single, probe: APP },
  {
    id: 'weighted-2of10-do',
    meaning: 'weighted max_answers 2 over 10 with the DO bit: 45 signed sets, all pre-signed; compared with the same unsigned',
    target: 'engine',
    transport: 'udp',
    ceiling: 'weighted-2of10',
    needsBackends: false,
    exclusive: false,
    config: singleNameConfig('weighted', 10, 'max_answers: 2'),
    queries: single,
    probe: APP,
    dnssecOk: true,
  },
  { id: 'failover-3', meaning: 'one name, failover over 3 regions of one server', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: failoverConfig, queries: single, probe: APP },
  { id: 'latency-3', meaning: 'one name, latency over 3 local backends checked every second', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: true, exclusive: false, config: latencyConfig, queries: single, probe: APP },
  { id: 'rr-100', meaning: 'one name, round-robin over 100 servers', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: singleNameConfig('round-robin', 100), queries: single, probe: APP },
  {
    id: 'geo-ecs',
    meaning: `one name, geolocation over 3 regions, queried with ECS from ${GEO_CLIENTS} client subnets across the IPv4 space (the bundled GeoIP database decides)`,
    target: 'engine',
    transport: 'udp',
    ceiling: BARE_BATCHED,
    needsBackends: false,
    exclusive: false,
    config: geoConfig,
    queries: geoEcsQueries,
    probe: APP,
  },
  {
    id: 'sticky-ecs',
    meaning: `one name, sticky over 3 servers, queried with ECS from ${GEO_CLIENTS} client subnets (each worker remembers recent networks' servers)`,
    target: 'engine',
    transport: 'udp',
    ceiling: BARE_BATCHED,
    needsBackends: false,
    exclusive: false,
    config: singleNameConfig('sticky', 3),
    queries: geoEcsQueries,
    probe: APP,
  },
  { id: 'cname-pool', meaning: 'one name that is a CNAME pool: round-robin over 3 CNAME targets outside the zone, one CNAME per answer', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: cnamePoolConfig('round-robin'), queries: single, probe: APP },
  { id: 'static-a', meaning: 'a static A RRset of 3 addresses (dns.zones[].records), pre-built bytes copied per answer', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: staticConfig, queries: () => [`static.${ZONE} A`], probe: `static.${ZONE}` },
  { id: 'sticky-100-ecs', meaning: `one name, sticky over 100 servers, ECS from ${GEO_CLIENTS} client subnets`, target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: singleNameConfig('sticky', 100), queries: geoEcsQueries, probe: APP },
  { id: 'geo-source', meaning: 'the same name without ECS: the packet source (127.0.0.1, a custom mapping) decides', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: false, exclusive: false, config: geoConfig, queries: single, probe: APP },
  { id: 'health', meaning: 'the headline name while the overwatch HTTP-checks 1 000 local backends every second (--health-servers, --health-interval)', target: 'engine', transport: 'udp', ceiling: BARE_BATCHED, needsBackends: true, exclusive: true, config: healthConfig, queries: single, probe: APP },
  { id: BARE_TCP, meaning: 'bare responder over TCP: the ceiling for TCP', target: 'bare', transport: 'tcp', ceiling: null, needsBackends: false, exclusive: false, queries: single, probe: APP },
  {
    id: 'tcp',
    meaning: 'the headline config over TCP (RFC 7766 framing, up to 1 000 000 queries per connection)',
    target: 'engine',
    transport: 'tcp',
    ceiling: BARE_TCP,
    needsBackends: false,
    exclusive: false,
    config: tcpConfig,
    queries: single,
    probe: APP,
  },
];

/**
 * The zone Knot serves in the knot scenario: the headline name with one A
 * record (the engine answers one of its three servers per query, so replies
 * are the same size), the same SOA timers as the engine's defaults.
 */
export function knotZone(): string {
  return [
    `$ORIGIN ${ZONE}.`,
    '$TTL 3600',
    `@    SOA ns1.${ZONE}. hostmaster.${ZONE}. 1 3600 600 86400 60`,
    `@    NS  ns1.${ZONE}.`,
    'ns1  A   127.0.0.1',
    `app  30 A ${unreachableAddress(0)}`,
    '',
  ].join('\n');
}

/** Renders a scenario's config for the micro benchmarks (no sockets are opened from it). */
export function configFor(id: string): string {
  const s = SCENARIOS.find((x) => x.id === id);
  if (s?.config === undefined) throw new Error(`no engine config for scenario "${id}"`);
  return microConfig(s.config);
}
