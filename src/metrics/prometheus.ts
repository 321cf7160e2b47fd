// Main thread, cold path. The prom-client registry behind GET /metrics: every
// opengslb_* metric of docs/metrics.md, read when scraped. DNS numbers come
// from the workers' shared counters, folded modulo 2^32 (src/metrics/fold.ts)
// on every scrape and once a minute; server, override and config numbers from
// the Overwatch's views; health-check results from the scheduler's observer.
// Nothing here runs per DNS query.
//
// Wiring, in src/cli/opengslb-main.ts (onCheck must exist before the
// overwatch starts, which runs the first health round):
//
//   const metrics = createMetrics({ version, loadedAtMs });
//   const overwatch = await Overwatch.start(config, logger, { onCheck: metrics.onCheck });
//   const reloader = new ConfigReloader({ …, loadedAtMs });
//   metrics.attach(overwatch, reloader);
//   const listener = config.metrics.enabled ? await startMetricsServer(metrics.registry, config.metrics.host, config.metrics.port, logger) : null;
//   … at stop: await listener?.close(); metrics.close();
//
// createMetrics({ version, loadedAtMs, overwatch, reloader }) attaches at once
// when the overwatch already exists (tests).

import { isIP } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Config } from '../config/types.ts';
import type { CheckObserver, HealthCounters } from '../health/scheduler.ts';
import type { CheckedServer } from '../health/types.ts';
import { byWeight } from '../routing/select.ts';
import { POLICY_CODE } from '../snapshot/model.ts';
import { decisionKey, geoDecisionKey, geoFallbackKey } from '../registry/keys.ts';
import { AUTHORITIES, type DecisionLabel } from '../registry/registry.ts';
import { DROP_REASON_NAMES } from '../gossip/drop-reasons.ts';
import type { AgentHub } from '../overwatch/agents.ts';
import { ACCEPTED_MESSAGE_TYPES, AGENT_STATES, BACKEND_REFUSALS, BACKEND_STATES } from '../overwatch/agent-states.ts';
import type { ServerState } from '../overwatch/overwatch.ts';
import type { DomainView, OverrideView } from '../overwatch/views.ts';
import {
  COUNTER, COUNTER_STRIDE, HIST_BASE, HIST_BOUNDS_US, HIST_BUCKETS, HIST_SUM, HIST_WORDS, MATRIX_BASE,
  RCODE_COUNT, RCODE_LABELS, TRANSPORT_LABELS, TYPE_COUNT, TYPE_LABELS,
} from './counters-layout.ts';
import { DecisionFolder, WrapFolder } from './fold.ts';
import type { BusReceiverCounters } from '../bus/receiver.ts';
import { OPERATOR_KINDS, REJECTION_REASONS, type ReplicaCounters } from '../bus/replica.ts';

/** What the metrics read of the agent channel's hub. */
type AgentHubReader = Pick<AgentHub, 'agents' | 'channelCounters' | 'counters' | 'pinUsage'>;

/** What the metrics read from the DNS worker pool (DnsPool satisfies it). */
export interface PoolSource {
  /** Worker restarts since start. */
  readonly restarts: number;
  /** Workers the watchdog terminated since start, by reason: heartbeat stood still, snapshot not confirmed. */
  readonly stuck: Readonly<Record<'heartbeat' | 'switch', number>>;
  /** Worker threads by index, null while one waits to be restarted. */
  readonly workers: readonly unknown[];
  /** Each worker's routing-decision buffer, null before it posted one. */
  readonly decisionCounters: readonly (Int32Array | null)[];
  on(event: 'decisions', listener: (index: number, buffer: Int32Array) => void): unknown;
  off(event: 'decisions', listener: (index: number, buffer: Int32Array) => void): unknown;
}

/** What the metrics read from the overwatch (Overwatch satisfies it; tests pass stand-ins). */
export interface OverwatchSource {
  /** The workers' counters: COUNTER_STRIDE words per worker (src/metrics/counters-layout.ts). */
  readonly counters: Int32Array;
  readonly config: Config;
  /** Generation of the snapshot published last. */
  readonly generation: number;
  readonly pool: PoolSource;
  /** Every server with what the per-server series show (Overwatch.serverStates(): no full API views). */
  serverStates(): readonly ServerState[];
  /** Domains as DNS serves them (status with overrides applied); optional for stand-ins (absent: no opengslb_domain_healthy_servers series). */
  domains?(): readonly DomainView[];
  /** The servers the health-check series may name (Registry satisfies it). */
  readonly registry: { servers(): readonly CheckedServer[] };
  overrides(): readonly OverrideView[];
  /** Overrides ended by their end time since start; optional for stand-ins (absent reads as 0). */
  readonly overridesExpired?: number;
  /** The health checker's probe and transition counts since start. */
  healthCounters(): HealthCounters;
  /** What each routing-decision stat id counts (REC_STAT_ID, geolocation's group ids); undefined for ids never used. */
  decisionLabels(): readonly (DecisionLabel | undefined)[];
  /** DNSSEC numbers of the main thread (keys, pre-signing, key sync); absent in stand-ins without DNSSEC. */
  dnssecMetrics?(): DnssecMetricsSource;
  /** The NATS bus's numbers; null or absent when overwatch.bus is off. */
  busMetrics?(): BusMetricsSource | null;
  /** The agent channel's side (Overwatch.agents); null or absent when overwatch.gossip is off. */
  readonly agents?: AgentHubReader | null;
}

/** What the DNSSEC metrics read from the main thread (Overwatch.dnssecMetrics). */
export interface DnssecMetricsSource {
  /** Keys in the DNSKEY RRsets (published and active), with their age. */
  readonly keys: readonly { readonly zone: string; readonly keyTag: number; readonly state: string; readonly ageSeconds: number }[];
  /** Keys generated since the start because their zone had no active key (Keyring.keysCreated). */
  readonly keysCreated: number;
  /** Signatures the CPU pool (or the main thread, for small plans) made ahead, and the time it took. */
  readonly presign: { readonly signatures: number; readonly signMs: number } | null;
  /** Key sync: per peer, whether its last poll succeeded; null when no peers are configured. */
  readonly keySync: { readonly inSync: boolean; readonly peers: readonly { readonly url: string; readonly ok: boolean }[] } | null;
}

/** What the metrics read of the NATS bus (Overwatch.busMetrics): the agent subscription and the operator-state replica, each null until it exists. */
export interface BusMetricsSource {
  readonly agents: BusReceiverCounters | null;
  readonly replica: ReplicaCounters | null;
}

/** What the metrics read from the config reloader (ConfigReloader satisfies it). */
export interface ReloaderSource {
  readonly reloads: Readonly<Record<'success' | 'failure', number>>;
  /** Did the last reload succeed (true before any ran)? Optional for stand-ins; absent reads as true. */
  readonly lastReloadSuccessful?: boolean;
  /** Unix ms of the last successful reload, or of the start-up load when none succeeded yet. */
  readonly lastSuccessMs: number;
}

/** What the metrics read from the admin API (ApiServer satisfies it). */
export interface ApiMetricsSource {
  /** Connections refused when accepted, since the start, by why. */
  readonly refusedConnections: Readonly<Record<'max_connections' | 'outside', number>>;
}

export interface MetricsOptions {
  /** The package version, for opengslb_app_info. */
  readonly version: string;
  /** When the config was loaded at start-up, unix ms. */
  readonly loadedAtMs: number;
  /** Attach at once (else call attach() after Overwatch.start). */
  readonly overwatch?: OverwatchSource;
  readonly reloader?: ReloaderSource | null;
  /** The admin API, when it runs: its refused connections are counted. */
  readonly api?: ApiMetricsSource | null;
  /** Node's own process_* and nodejs_* metrics (prom-client defaults, unprefixed); default true. */
  readonly processMetrics?: boolean;
  /** How often the worker counters are folded besides every scrape, in ms; default 60 000 (well inside the shortest wrap period, 71 min). */
  readonly foldIntervalMs?: number;
}

export interface Metrics {
  /** The registry GET /metrics serves (startMetricsServer). */
  readonly registry: Registry;
  /** Pass as OverwatchOptions.onCheck: counts every health-check result. Never throws. */
  readonly onCheck: CheckObserver;
  /**
   * Starts reading the overwatch (and the reloader); throws when already
   * attached. Call it right after Overwatch.start resolves: routing-decision
   * buffers a worker replaced before this are not folded.
   */
  attach(overwatch: OverwatchSource, reloader?: ReloaderSource | null): void;
  /** Folds the workers' counters now (scrapes and a timer do this; tests call it to read exact totals). */
  fold(): void;
  /** Servers whose health-check result counts are held now (those checked since start and still in the registry, as of the last scrape or fold timer). */
  readonly checkedServers: number;
  /** Stops the fold timer and the pool listener. */
  close(): void;
}

/** Buckets of opengslb_health_check_duration_seconds, in seconds. */
export const CHECK_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The `mode` label of opengslb_routing_all_down_answers_total, with its counter slot (the when_all_down value that answered). */
const ALL_DOWN_MODES = [
  ['servfail', COUNTER.ALL_DOWN_SERVFAIL],
  ['last_healthy', COUNTER.ALL_DOWN_LAST_HEALTHY],
  ['all', COUNTER.ALL_DOWN_ALL],
  ['fallback', COUNTER.ALL_DOWN_FALLBACK],
] as const;

/** The `family` label of a domain's server: what query it answers (a CNAME pool's target, by its name, answers every query). */
function serverFamily(address: string): 'ipv4' | 'ipv6' | 'cname' {
  const v = isIP(address);
  return v === 4 ? 'ipv4' : v === 6 ? 'ipv6' : 'cname';
}

/** Agent states in which the overwatch still expects messages: the heartbeat-age series are theirs. */
const EXPECTED_AGENT_STATES: ReadonlySet<string> = new Set(['live', 'stale', 'unseen'] satisfies readonly (typeof AGENT_STATES)[number][]);

/** A label value as the text format writes it (prom-client's escaping: backslash, newline, double quote). */
function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Label text of each server record, built at its first scrape or check (a changed server is a new record). */
const serverLabelTexts = new WeakMap<CheckedServer, string>();

/**
 * The labels of one server's series without braces: region, server and, for a
 * server bound to a service (an agent's backend), service: two services'
 * backends on one address and port are two servers, each with its own series.
 */
function serverLabelText(s: CheckedServer): string {
  let text = serverLabelTexts.get(s);
  if (text === undefined) {
    text = `region="${escapeLabelValue(s.region)}",server="${escapeLabelValue(s.endpoint)}"`;
    if (s.service !== null && s.service !== undefined) text += `,service="${escapeLabelValue(s.service)}"`;
    serverLabelTexts.set(s, text);
  }
  return text;
}

/** The labels object of every value a WrittenMetric hands the registry: one shared empty object (the registry caches its formatting by identity). */
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * A metric of one series per server (10 000 and more), written by `read`
 * straight as label text and value, as FoldedHistogram reports its folded
 * counts: prom-client's Gauge and Counter hash every label set on set() and
 * inc() and keep the series between scrapes, which cost most of a scrape at
 * 10 000 servers (bench/metrics-scale.ts). The registry still writes HELP,
 * TYPE and each line (the label text rides in metricName, so its own label
 * formatting has nothing to do). Nothing is kept between scrapes.
 */
class WrittenMetric extends Gauge<string> {
  readonly #name: string;
  readonly #help: string;
  readonly #type: 'gauge' | 'counter';
  readonly #read: (emit: (labels: string, value: number) => void) => void;

  constructor(
    config: { name: string; help: string; labelNames: string[]; registers: Registry[] },
    type: 'gauge' | 'counter',
    read: (emit: (labels: string, value: number) => void) => void,
  ) {
    super(config);
    this.#name = config.name;
    this.#help = config.help;
    this.#type = type;
    this.#read = read;
  }

  /** Returns the series `read` writes now (the registry prefers this method when it exists). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const name = this.#name;
    const values: { metricName: string; labels: Readonly<Record<string, string>>; sharedLabels: Readonly<Record<string, string>>; value: number }[] = [];
    this.#read((labels, value) => values.push({ metricName: `${name}{${labels}}`, labels: NO_LABELS, sharedLabels: NO_LABELS, value }));
    // prom-client types `type` as an ambient enum that has no runtime value; the string is what it uses.
    return { name, help: this.#help, type: this.#type, values, aggregator: 'sum' } as unknown as MetricObjectWithValues<MetricValue<string>>;
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    return this.getForPromString();
  }
}

/**
 * Creates the registry and every opengslb_* metric. Collection happens on
 * scrape (prom-client collect()), reading shared memory and the overwatch's
 * views; the only other work is the fold timer once attached and onCheck.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  const registers = [registry];
  let overwatch: OverwatchSource | null = null;
  let reloader: ReloaderSource | null = null;
  let counterFold: WrapFolder | null = null;
  const decisionFold = new DecisionFolder();
  let timer: NodeJS.Timeout | null = null;
  const onDecisions = (index: number, buffer: Int32Array): void => decisionFold.setBuffer(index, buffer);

  const fold = (): void => {
    if (overwatch === null || counterFold === null) return;
    const counters = overwatch.counters;
    for (let w = 0, base = 0; base + COUNTER_STRIDE <= counters.length; w++, base += COUNTER_STRIDE) counterFold.fold(w, counters, base);
    decisionFold.fold();
  };
  const total = (word: number): number => (counterFold === null ? 0 : counterFold.totals[word]);

  // One scrape calls every metric's collect() in one synchronous run (the
  // registry starts every get() before awaiting any), so the fold and the
  // server views are taken once per scrape and every metric sees the same
  // reading; the flag clears on the next microtask.
  let fresh = false;
  let servers: readonly ServerState[] = [];
  const refresh = (): void => {
    if (fresh) return;
    fresh = true;
    queueMicrotask(() => {
      fresh = false;
      // Not held between scrapes: one view per server (15 000 at 5 000 agents).
      servers = [];
    });
    fold();
    servers = overwatch === null ? [] : overwatch.serverStates();
    pruneChecks();
  };

  // ---- DNS: the workers' shared counters

  new Counter({
    name: 'opengslb_dns_queries_total',
    help: 'Replies sent, by query type and response code (type NONE: FORMERR or NOTIMP given before the question was read).',
    labelNames: ['type', 'rcode'],
    registers,
    collect() {
      refresh();
      this.reset();
      for (let t = 0; t < TYPE_COUNT; t++) {
        for (let r = 0; r < RCODE_COUNT; r++) {
          const v = total(MATRIX_BASE + t * RCODE_COUNT + r);
          if (v > 0) this.inc({ type: TYPE_LABELS[t], rcode: RCODE_LABELS[r] }, v);
        }
      }
    },
  });

  new FoldedHistogram(
    {
      name: 'opengslb_dns_query_duration_seconds',
      help: 'Time from a query reaching the worker to its reply being handed to the socket, by transport.',
      labelNames: ['transport'],
      registers,
    },
    () => {
      refresh();
      const series: HistogramSeries[] = [];
      for (let t = 0; t < TRANSPORT_LABELS.length; t++) {
        const base = HIST_BASE + t * HIST_WORDS;
        const buckets: number[] = [];
        for (let b = 0; b < HIST_BUCKETS; b++) buckets.push(total(base + b));
        series.push({ labels: { transport: TRANSPORT_LABELS[t] }, buckets, sum: total(base + HIST_SUM) / 1e6 });
      }
      return series;
    },
  );

  labelledCounter('opengslb_dns_queries_received_total', 'Queries that passed the header check (12 bytes or more, QR=0), by transport.', 'transport', [
    ['udp', COUNTER.UDP_QUERIES],
    ['tcp', COUNTER.TCP_QUERIES],
  ]);
  labelledCounter('opengslb_dns_dropped_total', 'Packets dropped without a reply: shorter than a DNS header, or a response (QR=1).', 'reason', [
    ['short', COUNTER.DROPPED_SHORT],
    ['response', COUNTER.DROPPED_RESPONSE],
  ]);
  plainCounter('opengslb_dns_malformed_total', 'Queries answered FORMERR because the packet could not be parsed.', COUNTER.MALFORMED);
  plainCounter('opengslb_dns_truncated_total', 'UDP answers sent with TC=1 because they did not fit the client\'s size.', COUNTER.TRUNCATED);
  plainCounter('opengslb_dns_worker_exceptions_total', 'Exceptions caught at the per-packet boundary, answered with a header-only SERVFAIL (each is a bug).', COUNTER.EXCEPTIONS);
  plainCounter('opengslb_dns_edns_queries_total', 'Parsed queries with a well-formed OPT record.', COUNTER.EDNS_QUERIES);
  plainCounter('opengslb_dns_ecs_queries_total', 'Parsed queries with an EDNS Client Subnet option.', COUNTER.ECS_QUERIES);
  plainCounter('opengslb_dns_do_queries_total', 'Parsed queries with the DNSSEC OK bit set.', COUNTER.DO_QUERIES);
  labelledCounter('opengslb_dns_tcp_connections_total', 'TCP connections accepted, refused (the worker full of busy connections, or stopping; or the client at dns.tcp_max_connections_per_client), or closed to make room (the idlest, at the worker cap).', 'result', [
    ['accepted', COUNTER.TCP_ACCEPTED],
    ['rejected', COUNTER.TCP_REJECTED],
    ['rejected_per_client', COUNTER.TCP_CLIENT_CAP],
    ['evicted', COUNTER.TCP_EVICTED],
  ]);
  plainCounter(
    'opengslb_dns_tcp_connections_uncounted_total',
    'TCP connections accepted without being counted for their client (its place in the shared table not to be had), so dns.tcp_max_connections_per_client did not apply to them; the worker cap still did.',
    COUNTER.TCP_CLIENT_UNCOUNTED,
  );
  labelledCounter('opengslb_dns_tcp_queries_dropped_total', 'TCP queries not answered, by reason: query_limit (sent on a connection after its dns.tcp_max_queries_per_connection-th query, before or after the server ended it).', 'reason', [
    ['query_limit', COUNTER.TCP_QUERY_LIMIT_DROPPED],
  ]);
  plainCounter('opengslb_dns_tcp_read_pauses_total', 'Times a TCP connection stopped being read until its unsent replies (or all of the worker\'s) drained below the bound.', COUNTER.TCP_READ_PAUSED);
  plainCounter('opengslb_dns_tcp_frame_timeouts_total', 'TCP connections closed because a message that had started arriving did not complete within dns.tcp_frame_timeout.', COUNTER.TCP_FRAME_TIMEOUT);
  plainCounter('opengslb_dns_tcp_idle_closed_total', 'TCP connections closed after dns.tcp_idle_timeout without traffic.', COUNTER.TCP_IDLE_CLOSED);
  plainCounter('opengslb_dns_tcp_bad_frames_total', 'TCP connections closed for a zero-length frame.', COUNTER.TCP_BAD_FRAME);
  const rrlKinds = [
    ['response', COUNTER.RRL_SLIPPED_RESPONSE, COUNTER.RRL_DROPPED_RESPONSE],
    ['nxdomain', COUNTER.RRL_SLIPPED_NXDOMAIN, COUNTER.RRL_DROPPED_NXDOMAIN],
    ['error', COUNTER.RRL_SLIPPED_ERROR, COUNTER.RRL_DROPPED_ERROR],
  ] as const;
  new Counter({
    name: 'opengslb_dns_rrl_limited_total',
    help: 'UDP responses over the rate of dns.rrl (slipped or dropped), by kind: response (answers), nxdomain, error.',
    labelNames: ['kind'],
    registers,
    collect() {
      refresh();
      this.reset();
      for (const [kind, slipped, dropped] of rrlKinds) this.inc({ kind }, total(slipped) + total(dropped));
    },
  });
  labelledCounter('opengslb_dns_rrl_slipped_total', 'Rate-limited UDP responses sent truncated (TC=1, no records) so the client retries over TCP (every dns.rrl.slip-th), by kind.', 'kind', rrlKinds.map(([kind, slipped]) => [kind, slipped] as const));
  labelledCounter('opengslb_dns_rrl_dropped_total', 'Rate-limited UDP responses not sent, by kind.', 'kind', rrlKinds.map(([kind, , dropped]) => [kind, dropped] as const));
  labelledCounter('opengslb_dns_cookies_total', 'Queries with a COOKIE option (dns.cookies on), by what it held: valid (a server cookie of ours, so the address is proven), client_only, invalid (a server cookie not ours, expired, or for another address), malformed (bad length, answered FORMERR).', 'result', [
    ['valid', COUNTER.COOKIE_VALID],
    ['client_only', COUNTER.COOKIE_CLIENT_ONLY],
    ['invalid', COUNTER.COOKIE_INVALID],
    ['malformed', COUNTER.COOKIE_MALFORMED],
  ]);
  plainCounter('opengslb_dns_send_errors_total', 'UDP sends that failed, and errors on a bound UDP socket.', COUNTER.SEND_ERRORS);
  labelledCounter(
    'opengslb_routing_all_down_answers_total',
    'Answers for a name whose servers of the asked family were all down, by what answered (when_all_down; servfail also when the mode had nothing to offer).',
    'mode',
    ALL_DOWN_MODES,
  );

  // ---- DNSSEC: the workers' signature caches, the pre-signing pool, the keys

  labelledCounter('opengslb_dnssec_signature_cache_lookups_total', 'RRSIGs the DNS workers looked up in their signature caches, by result (a miss is signed on the spot).', 'result', [
    ['hit', COUNTER.DNSSEC_CACHE_HITS],
    ['miss', COUNTER.DNSSEC_CACHE_MISSES],
  ]);
  plainCounter('opengslb_dnssec_presigned_total', 'Signatures made ahead by the pre-signing pool that the DNS workers put into their caches (summed over workers).', COUNTER.DNSSEC_PRESIGNED);
  const dnssec = (): DnssecMetricsSource | null => (overwatch?.dnssecMetrics === undefined ? null : overwatch.dnssecMetrics());
  new Counter({
    name: 'opengslb_dnssec_signatures_total',
    help: 'Signatures made, by who made them: a DNS worker on a cache miss, or the pre-signing pool.',
    labelNames: ['by'],
    registers,
    collect() {
      refresh();
      this.reset();
      this.inc({ by: 'worker' }, total(COUNTER.DNSSEC_SIGNATURES));
      this.inc({ by: 'pool' }, dnssec()?.presign?.signatures ?? 0);
    },
  });
  new Counter({
    name: 'opengslb_dnssec_signing_seconds_total',
    help: 'Time spent making signatures, by who made them (worker: on the query path; pool: ahead of time).',
    labelNames: ['by'],
    registers,
    collect() {
      refresh();
      this.reset();
      this.inc({ by: 'worker' }, total(COUNTER.DNSSEC_SIGN_US) / 1e6);
      this.inc({ by: 'pool' }, (dnssec()?.presign?.signMs ?? 0) / 1000);
    },
  });
  new Counter({
    name: 'opengslb_dnssec_keys_created_total',
    help: 'DNSSEC keys generated because their zone had no active key (a new zone, or its keys gone from the state store or all retired): each needs its DS published at the parent; the log says which (warn, "DNSSEC key created").',
    registers,
    collect() {
      this.reset();
      this.inc(dnssec()?.keysCreated ?? 0);
    },
  });
  new Gauge({
    name: 'opengslb_dnssec_key_age_seconds',
    help: 'Age of each key of a zone that is not retired (published, active, or withdrawn: an algorithm rollover\'s old key still signing after finish), in seconds.',
    labelNames: ['zone', 'key_tag', 'state'],
    registers,
    collect() {
      this.reset();
      for (const k of dnssec()?.keys ?? []) this.set({ zone: k.zone, key_tag: String(k.keyTag), state: k.state }, k.ageSeconds);
    },
  });
  new Gauge({
    name: 'opengslb_dnssec_key_sync_in_sync',
    help: 'Key sync: 1 when the last poll of every peer succeeded (or no peers are configured), 0 when one failed (this node keeps signing with its keys).',
    registers,
    collect() {
      const sync = dnssec()?.keySync ?? null;
      this.set(sync === null || sync.inSync ? 1 : 0);
    },
  });
  new Gauge({
    name: 'opengslb_dnssec_key_sync_peer_up',
    help: 'Key sync: 1 when the last poll of the peer succeeded (its secret and answer checked out), else 0.',
    labelNames: ['peer'],
    registers,
    collect() {
      this.reset();
      for (const p of dnssec()?.keySync?.peers ?? []) this.set({ peer: p.url }, p.ok ? 1 : 0);
    },
  });

  new Counter({
    name: 'opengslb_dns_worker_restarts_total',
    help: 'DNS worker threads restarted after they died.',
    registers,
    collect() {
      this.reset();
      this.inc(overwatch === null ? 0 : overwatch.pool.restarts);
    },
  });
  new Counter({
    name: 'opengslb_dns_worker_stuck_total',
    help: 'DNS worker threads terminated (then restarted) as hung, by reason: heartbeat (the thread\'s event loop had not turned for 10 s) or switch (it had not confirmed a new snapshot within 10 s).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const reason of ['heartbeat', 'switch'] as const) this.inc({ reason }, overwatch === null ? 0 : overwatch.pool.stuck[reason]);
    },
  });
  new Gauge({
    name: 'opengslb_dns_workers_running',
    help: 'DNS worker threads running (not waiting to be restarted).',
    registers,
    collect() {
      let n = 0;
      if (overwatch !== null) for (const w of overwatch.pool.workers) if (w !== null) n++;
      this.set(n);
    },
  });
  new Gauge({
    name: 'opengslb_dns_worker_snapshot_generation',
    help: 'Generation of the snapshot each running DNS worker serves; no series for a worker waiting to be restarted (it serves nothing).',
    labelNames: ['worker'],
    registers,
    collect() {
      this.reset();
      if (overwatch === null) return;
      const counters = overwatch.counters;
      const workers = overwatch.pool.workers;
      for (let w = 0, base = 0; base + COUNTER_STRIDE <= counters.length; w++, base += COUNTER_STRIDE) {
        // A dead worker's word keeps the generation it last served; its replacement writes its own once it serves.
        if (workers[w] === null) continue;
        this.set({ worker: String(w) }, Atomics.load(counters, base + COUNTER.SNAPSHOT_GENERATION) >>> 0);
      }
    },
  });
  new Gauge({
    name: 'opengslb_snapshot_generation',
    help: 'Generation of the snapshot published last (1 at start, +1 per successful reload).',
    registers,
    collect() {
      this.set(overwatch === null ? 0 : overwatch.generation);
    },
  });

  // ---- Routing decisions: the workers' per-stat-id buffers

  new Counter({
    name: 'opengslb_routing_decisions_total',
    help: 'A and AAAA answers given with servers picked by the routing policy, by configured domain and algorithm.',
    labelNames: ['domain', 'algorithm'],
    registers,
    collect() {
      refresh();
      this.reset();
      if (overwatch === null) return;
      // Configured domains only: a removed domain's series goes away, and
      // comes back (as a new counter) if the domain returns.
      const byKey = new Map<string, { domain: string; algorithm: string; value: number }>();
      for (const d of overwatch.config.domains) byKey.set(decisionKey(d.name, d.routingAlgorithm), { domain: d.name, algorithm: d.routingAlgorithm, value: 0 });
      const labels = overwatch.decisionLabels();
      const totals = decisionFold.totals;
      for (let id = 0; id < labels.length && id < totals.length; id++) {
        const l = labels[id];
        if (l === undefined || l.kind !== 'route') continue;
        const entry = byKey.get(decisionKey(l.domain, l.algorithm));
        if (entry !== undefined) entry.value += totals[id];
      }
      for (const e of byKey.values()) this.inc({ domain: e.domain, algorithm: e.algorithm }, e.value);
    },
  });
  const GEO_MATCHES = ['custom_mapping', 'geoip', 'default'] as const;
  const GEO_FALLBACKS = ['region_down', 'region_not_served', 'no_region'] as const;
  new Counter({
    name: 'opengslb_geo_decisions_total',
    help: 'Geolocation answers by domain, the region the client\'s address mapped to (one of the domain\'s regions), and how: custom_mapping, geoip (country or continent) or default.',
    labelNames: ['domain', 'region', 'match'],
    registers,
    collect() {
      refresh();
      this.reset();
      if (overwatch === null) return;
      const byKey = new Map<string, { domain: string; region: string; match: string; value: number }>();
      for (const d of overwatch.config.domains) {
        if (d.routingAlgorithm !== 'geolocation') continue;
        for (const region of d.regions) for (const match of GEO_MATCHES) byKey.set(geoDecisionKey(d.name, region, match), { domain: d.name, region, match, value: 0 });
      }
      const labels = overwatch.decisionLabels();
      const totals = decisionFold.totals;
      for (let id = 0; id < labels.length && id < totals.length; id++) {
        const l = labels[id];
        if (l === undefined || l.kind !== 'geo') continue;
        const entry = byKey.get(geoDecisionKey(l.domain, l.region, l.match));
        if (entry !== undefined) entry.value += totals[id];
      }
      for (const e of byKey.values()) this.inc({ domain: e.domain, region: e.region, match: e.match }, e.value);
    },
  });
  new Counter({
    name: 'opengslb_geo_fallbacks_total',
    help: 'Geolocation answers not from the region the client mapped to, by domain and reason: region_down (no answerable server there; the next region in the domain\'s order answered), region_not_served (the region is not one of the domain\'s), no_region (nothing mapped and no default_region).',
    labelNames: ['domain', 'reason'],
    registers,
    collect() {
      refresh();
      this.reset();
      if (overwatch === null) return;
      const byKey = new Map<string, { domain: string; reason: string; value: number }>();
      for (const d of overwatch.config.domains) {
        if (d.routingAlgorithm !== 'geolocation') continue;
        for (const reason of GEO_FALLBACKS) byKey.set(geoFallbackKey(d.name, null, reason), { domain: d.name, reason, value: 0 });
      }
      const labels = overwatch.decisionLabels();
      const totals = decisionFold.totals;
      for (let id = 0; id < labels.length && id < totals.length; id++) {
        const l = labels[id];
        if (l === undefined || l.kind !== 'geo_fallback') continue;
        const entry = byKey.get(geoFallbackKey(l.domain, null, l.reason));
        if (entry !== undefined) entry.value += totals[id];
      }
      for (const e of byKey.values()) this.inc({ domain: e.domain, reason: e.reason }, e.value);
    },
  });

  // ---- Servers and health checks

  // One series per server, written straight out (WrittenMetric): `service` only for a server bound to a service.
  new WrittenMetric(
    {
      name: 'opengslb_server_healthy',
      help: 'Whether the health checks find a configured server healthy (1) or not (0; unknown counts as 0). Overrides are per domain and not shown here.',
      labelNames: ['region', 'server', 'service'],
      registers,
    },
    'gauge',
    (emit) => {
      refresh();
      for (const s of servers) emit(serverLabelText(s.server), s.healthy ? 1 : 0);
    },
  );
  new WrittenMetric(
    {
      name: 'opengslb_server_latency_seconds',
      help: 'Moving average (EMA) of a server\'s health-check round trip; absent until its first successful check.',
      labelNames: ['region', 'server', 'service'],
      registers,
    },
    'gauge',
    (emit) => {
      refresh();
      for (const s of servers) if (s.latencyMs !== null) emit(serverLabelText(s.server), s.latencyMs / 1000);
    },
  );
  new WrittenMetric(
    {
      name: 'opengslb_server_latency_samples',
      help: 'Successful health checks behind a server\'s latency average.',
      labelNames: ['region', 'server', 'service'],
      registers,
    },
    'gauge',
    (emit) => {
      refresh();
      for (const s of servers) emit(serverLabelText(s.server), s.samples);
    },
  );
  new Gauge({
    name: 'opengslb_healthy_servers',
    help: 'Configured servers the health checks find healthy, by region.',
    labelNames: ['region'],
    registers,
    collect() {
      refresh();
      this.reset();
      if (overwatch === null) return;
      const healthy = new Map<string, number>();
      for (const r of overwatch.config.regions) healthy.set(r.name, 0);
      for (const s of servers) if (s.healthy) healthy.set(s.server.region, (healthy.get(s.server.region) ?? 0) + 1);
      for (const [region, n] of healthy) this.set({ region }, n);
    },
  });

  new Gauge({
    name: 'opengslb_domain_healthy_servers',
    help: 'Servers DNS may answer for each configured domain now, by family (ipv4, ipv6; cname for a CNAME pool): healthy by the status DNS uses there (overrides applied), and of weight above 0 where the policy picks by weight. 0 means the domain answers queries of that family by its when_all_down mode (label): SERVFAIL with servfail.',
    labelNames: ['domain', 'family', 'when_all_down'],
    registers,
    collect() {
      this.reset();
      if (overwatch?.domains === undefined) return;
      for (const d of overwatch.domains()) {
        // The workers' rule 1 (select.ts healthyVerdict): a policy that picks by weight never answers weight 0, so a
        // domain whose healthy servers all have weight 0 answers by its when_all_down, SERVFAIL included.
        const weighted = byWeight(POLICY_CODE[d.algorithm]);
        // Each family answers on its own: with every IPv4 server down an A query gets when_all_down while AAAA is
        // answered. A family without servers answers NODATA (no series); a domain with no server at all yet SERVFAILs both.
        const byFamily = new Map<string, number>();
        for (const s of d.servers) {
          const family = serverFamily(s.address);
          byFamily.set(family, (byFamily.get(family) ?? 0) + (s.status === 'healthy' && (!weighted || s.weight > 0) ? 1 : 0));
        }
        if (byFamily.size === 0) for (const family of ['ipv4', 'ipv6']) byFamily.set(family, 0);
        for (const [family, n] of byFamily) this.set({ domain: d.name, family, when_all_down: d.when_all_down }, n);
      }
    },
  });

  /** One checked server's result counts; both results are served from its first check, so increase() sees the first failure. */
  interface CheckSeries {
    readonly region: { region: string };
    /** The server's label text (serverLabelText). */
    readonly labels: string;
    success: number;
    failure: number;
  }
  /** By server key: the key tells apart servers that share labels' values only in part (two services on one address). */
  const checked = new Map<string, CheckSeries>();
  new WrittenMetric(
    {
      name: 'opengslb_health_check_results_total',
      help: 'Health-check probes by server and result (success or failure); a probe shared by several servers counts for each.',
      labelNames: ['region', 'server', 'service', 'result'],
      registers,
    },
    'counter',
    (emit) => {
      refresh();
      for (const c of checked.values()) {
        emit(`${c.labels},result="success"`, c.success);
        emit(`${c.labels},result="failure"`, c.failure);
      }
    },
  );
  // By region, not by server: a histogram per server would be a dozen series
  // per server (120 000 at 10 000 servers) in every scrape; the per-server
  // latency is opengslb_server_latency_seconds.
  const checkDuration = new Histogram({
    name: 'opengslb_health_check_duration_seconds',
    help: 'Round trip of health-check probes (connect to verdict), by region.',
    labelNames: ['region'],
    buckets: [...CHECK_DURATION_BUCKETS],
    registers,
    collect() {
      refresh();
    },
  });
  const checkStalled = new Counter({
    name: 'opengslb_health_check_stalled_total',
    help: 'Health-check probes in flight while the overwatch\'s main thread stalled (a publish of a big config, a long scrape): their verdict counts, their round trip is left out of the latency average and of opengslb_health_check_duration_seconds.',
    registers,
  });
  // Series of servers no longer in the registry (removed by a reload, or an
  // agent's backend gone) are dropped, on every scrape and on the fold timer,
  // so the counts held stay the servers there are even when nothing scrapes.
  const pruneChecks = (): void => {
    if (overwatch === null || checked.size === 0) return;
    const current = new Set<string>();
    for (const s of overwatch.registry.servers()) current.add(s.key);
    const regions = new Set(overwatch.config.regions.map((r) => r.name));
    for (const [key, series] of checked) {
      if (current.has(key)) continue;
      checked.delete(key);
      if (!regions.has(series.region.region)) checkDuration.remove(series.region);
    }
  };
  const onCheck: CheckObserver = (target, result) => {
    try {
      for (const s of target.servers) {
        let series = checked.get(s.key);
        if (series === undefined) {
          series = { region: { region: s.region }, labels: serverLabelText(s), success: 0, failure: 0 };
          checked.set(s.key, series);
        }
        if (result.ok) series.success++;
        else series.failure++;
        // A round trip measured across a stall of this thread measured the stall, not the backend (as the latency average).
        if (result.stalled !== true && result.latencyMs >= 0 && Number.isFinite(result.latencyMs)) checkDuration.observe(series.region, result.latencyMs / 1000);
      }
      if (result.stalled === true) checkStalled.inc();
    } catch {
      // The scheduler's contract: an observer never throws. A bad label is a bug here, not a reason to stop checking.
    }
  };

  // ---- Admin API

  new Counter({
    name: 'opengslb_api_connections_refused_total',
    help: 'Connections the admin API closed when it accepted them, before reading a byte, by reason: max_connections (api.max_connections were open) or outside (the share for clients outside api.allowed_networks was full).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const refused = options.api?.refusedConnections;
      this.inc({ reason: 'max_connections' }, refused?.max_connections ?? 0);
      this.inc({ reason: 'outside' }, refused?.outside ?? 0);
    },
  });

  // ---- Config, overrides, build

  new Counter({
    name: 'opengslb_config_reloads_total',
    help: 'Config reloads (SIGHUP or POST /api/v1/reload) by result.',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const counts = reloader === null ? { success: 0, failure: 0 } : reloader.reloads;
      this.inc({ result: 'success' }, counts.success);
      this.inc({ result: 'failure' }, counts.failure);
    },
  });
  new Gauge({
    name: 'opengslb_config_reload_timestamp_seconds',
    help: 'Unix time the config now serving was loaded: the last successful reload, else the start-up load.',
    registers,
    collect() {
      this.set((reloader === null ? options.loadedAtMs : reloader.lastSuccessMs) / 1000);
    },
  });
  new Gauge({
    name: 'opengslb_config_last_reload_successful',
    help: 'Whether the last config reload succeeded (1, also before any reload) or failed (0; the previous config still serves).',
    registers,
    collect() {
      this.set(reloader === null || reloader.lastReloadSuccessful !== false ? 1 : 0);
    },
  });
  new Gauge({
    name: 'opengslb_config_load_timestamp_seconds',
    help: 'Unix time the config was loaded at start-up.',
    registers,
    collect() {
      this.set(options.loadedAtMs / 1000);
    },
  });
  new Gauge({
    name: 'opengslb_configured_domains',
    help: 'Domains in the config now serving.',
    registers,
    collect() {
      this.set(overwatch === null ? 0 : overwatch.config.domains.length);
    },
  });
  new Gauge({
    name: 'opengslb_configured_servers',
    help: 'Servers in the config now serving, over all regions.',
    registers,
    collect() {
      let n = 0;
      if (overwatch !== null) for (const r of overwatch.config.regions) n += r.servers.length;
      this.set(n);
    },
  });
  new Counter({
    name: 'opengslb_health_transitions_total',
    help: 'Health-state changes of checked targets by the state entered (healthy, unhealthy; unchecked for type none at start); each is also one log line.',
    labelNames: ['to'],
    registers,
    collect() {
      this.reset();
      if (overwatch === null) return;
      const t = overwatch.healthCounters().transitions_total;
      this.inc({ to: 'healthy' }, t.healthy);
      this.inc({ to: 'unhealthy' }, t.unhealthy);
      this.inc({ to: 'unchecked' }, t.unchecked);
    },
  });
  new Gauge({
    name: 'opengslb_overwatch_overrides_active',
    help: 'Operator overrides in force that cover something the config now serving answers, by scope (domain: one address in one domain; server: one address in every domain; region: a whole region).',
    labelNames: ['scope'],
    registers,
    collect() {
      const n: Record<OverrideView['scope'], number> = { domain: 0, server: 0, region: 0 };
      if (overwatch !== null) for (const o of overwatch.overrides()) if (o.active) n[o.scope]++;
      for (const [scope, count] of Object.entries(n)) this.set({ scope }, count);
    },
  });
  new Counter({
    name: 'opengslb_overwatch_overrides_expired_total',
    help: 'Operator overrides that reached their end time (expires_at, --for, --until) and were removed, so the health checks decide again; each is also one log line.',
    registers,
    collect() {
      this.reset();
      this.inc(overwatch?.overridesExpired ?? 0);
    },
  });
  // ---- Agents (the overwatch's side of agent mode)

  new Gauge({
    name: 'opengslb_overwatch_servers_by_authority',
    help: 'Servers (config and agents\' backends) by who decides whether they are answered: override, health_check, unchecked, stale, draining, agent.',
    labelNames: ['authority'],
    registers,
    collect() {
      refresh();
      this.reset();
      if (overwatch === null) return;
      const counts = new Map<string, number>(AUTHORITIES.map((a) => [a, 0]));
      for (const s of servers) counts.set(s.authority, (counts.get(s.authority) ?? 0) + 1);
      for (const [authority, n] of counts) this.set({ authority }, n);
    },
  });
  // The agent channel's metrics: each one label, read from the AgentHub at
  // scrape time (none while the channel is off).
  const fromAgents = (
    Kind: typeof Gauge | typeof Counter,
    name: string,
    help: string,
    label: string,
    read: (hub: AgentHubReader) => Iterable<readonly [string, number]>,
  ): void => {
    new Kind({
      name,
      help,
      labelNames: [label],
      registers,
      collect(this: Gauge | Counter) {
        this.reset();
        const hub = overwatch?.agents ?? null;
        if (hub === null) return;
        // A Counter cannot be set: it is reset, then advanced to the hub's total.
        for (const [value, n] of read(hub)) (this instanceof Counter ? this.inc({ [label]: value }, n) : this.set({ [label]: value }, n));
      },
    });
  };
  fromAgents(Gauge, 'opengslb_overwatch_agents', 'Agents known to this overwatch (pinned or reporting) by state: live, stale, unseen, deregistered, removed, revoked.', 'state', (hub) => {
    const counts = new Map<string, number>(AGENT_STATES.map((a) => [a, 0]));
    for (const a of hub.agents()) counts.set(a.state, (counts.get(a.state) ?? 0) + 1);
    return counts;
  });
  fromAgents(
    Gauge,
    'opengslb_overwatch_agent_heartbeat_age_seconds',
    'Seconds since a message of each agent this overwatch expects to hear from (live, stale or unseen) was last accepted (agents heard from since this overwatch started, or restored from the state store).',
    'agent',
    // An agent that left (deregistered, removed, revoked) sends nothing more: its age would grow for as long as its pin
    // is kept (until an operator deletes it), one series per agent that ever came and went. opengslb_overwatch_agents counts them.
    (hub) => hub.agents().flatMap((a) => (a.heartbeat_age_seconds === null || !EXPECTED_AGENT_STATES.has(a.state) ? [] : [[a.agent_id, a.heartbeat_age_seconds] as const])),
  );
  // Pins against overwatch.gossip.max_agents: alert before new agents are refused (agent_limit).
  for (const [name, help, read] of [
    ['opengslb_overwatch_agent_pins', 'Agent pins this overwatch holds, revoked ones included (what overwatch.gossip.max_agents bounds).', (hub: AgentHubReader) => hub.pinUsage().pinned],
    ['opengslb_overwatch_agent_pins_max', 'overwatch.gossip.max_agents as in effect (no series without a limit).', (hub: AgentHubReader) => hub.pinUsage().maxAgents],
  ] as const) {
    new Gauge({
      name,
      help,
      registers,
      collect(this: Gauge) {
        this.reset();
        const hub = overwatch?.agents ?? null;
        const n = hub === null ? null : read(hub);
        if (n !== null) this.set(n);
      },
    });
  }
  fromAgents(Counter, 'opengslb_overwatch_agent_messages_total', 'Agent messages accepted by the channel, by type (register, heartbeat, health_update, deregister).', 'type', (hub) => {
    const m = hub.channelCounters().messages;
    return ACCEPTED_MESSAGE_TYPES.map((t) => [t, m[t]] as const);
  });
  fromAgents(Counter, 'opengslb_overwatch_agent_drops_total', 'Agent messages dropped by the channel, by reason (docs/agents.md lists them); a drop changes nothing.', 'reason', (hub) => {
    const d = hub.channelCounters().drops;
    return DROP_REASON_NAMES.map((r) => [r, d[r]] as const);
  });
  fromAgents(
    Counter,
    'opengslb_overwatch_agent_backend_transitions_total',
    "State changes of agents' backends by the state entered (healthy, unhealthy, unknown, draining, stale, validated, refused, removed); each is also one log line.",
    'to',
    (hub) => {
      const t = hub.counters().transitions;
      return BACKEND_STATES.map((to) => [to, t[to]] as const);
    },
  );
  fromAgents(
    Counter,
    'opengslb_overwatch_agent_backends_refused_total',
    "Agents' backends the overwatch keeps but cannot answer, by reason: host_name, registry_refused, other_agent (another agent reports the same backend); and backend_limit: backends a partial update would have added past the 1024 one agent may hold, not taken.",
    'reason',
    (hub) => {
      const r = hub.counters().refused;
      return BACKEND_REFUSALS.map((reason) => [reason, r[reason]] as const);
    },
  );

  // ---- The NATS bus (overwatch.bus): no series while it is off.

  /** Series of one bus metric: `read` gets the bus's numbers at scrape time. */
  const fromBus = (
    Kind: typeof Gauge | typeof Counter,
    name: string,
    help: string,
    labelNames: readonly string[],
    read: (bus: BusMetricsSource) => Iterable<readonly [Record<string, string>, number]>,
  ): void => {
    new Kind({
      name,
      help,
      labelNames: [...labelNames],
      registers,
      collect(this: Gauge | Counter) {
        this.reset();
        const bus = overwatch?.busMetrics?.() ?? null;
        if (bus === null) return;
        for (const [labels, n] of read(bus)) (this instanceof Counter ? this.inc(labels, n) : this.set(labels, n));
      },
    });
  };
  /** Both NATS connections by their `link` label: agents (the subscription) and operator_state (the bucket). */
  const links = (bus: BusMetricsSource, read: (c: { readonly connected: boolean; readonly reconnects: number }) => number): [Record<string, string>, number][] => [
    [{ link: 'agents' }, bus.agents === null ? 0 : read(bus.agents)],
    [{ link: 'operator_state' }, bus.replica === null ? 0 : read(bus.replica)],
  ];
  fromBus(Gauge, 'opengslb_overwatch_bus_connected', 'Whether each NATS connection of the bus is up (1) or not (0), by link: agents (the agent subjects), operator_state (the key-value bucket).', ['link'], (bus) => links(bus, (c) => (c.connected ? 1 : 0)));
  fromBus(Counter, 'opengslb_overwatch_bus_reconnects_total', 'NATS connections of the bus made again after a loss, by link (agents, operator_state).', ['link'], (bus) => links(bus, (c) => c.reconnects));
  fromBus(Counter, 'opengslb_overwatch_bus_messages_total', 'Agent messages taken from NATS, by result: accepted, refused (dropped by the channel; the reason is in opengslb_overwatch_agent_drops_total), handler_error.', ['result'], (bus) => {
    const c = bus.agents;
    return [[{ result: 'accepted' }, c?.accepted ?? 0], [{ result: 'refused' }, c?.refused ?? 0], [{ result: 'handler_error' }, c?.handlerErrors ?? 0]];
  });
  fromBus(Counter, 'opengslb_overwatch_bus_acks_total', 'Sealed acks to agents over NATS, by result: published (on the agent\'s reply subject), refused (NATS refused the reply subject).', ['result'], (bus) => [
    [{ result: 'published' }, bus.agents?.acksSent ?? 0],
    [{ result: 'refused' }, bus.agents?.badReplies ?? 0],
  ]);
  fromBus(Counter, 'opengslb_overwatch_bus_kv_puts_total', 'Operator-state changes made here and put in the bucket, by kind (override, geo_mapping, revocation, dnssec_key) and result (ok; failed: NATS away or refusing, put again later; superseded: waited for NATS, then not put, the bucket holding a newer entry for its key, applied here instead).', ['kind', 'result'], (bus) => {
    const c = bus.replica;
    return OPERATOR_KINDS.flatMap((kind) => [[{ kind, result: 'ok' }, c?.puts[kind] ?? 0], [{ kind, result: 'failed' }, c?.putFailures[kind] ?? 0], [{ kind, result: 'superseded' }, c?.superseded[kind] ?? 0]] as const);
  });
  fromBus(Counter, 'opengslb_overwatch_bus_kv_applies_total', 'Other overwatches\' operator-state changes that changed this overwatch, by kind.', ['kind'], (bus) => OPERATOR_KINDS.map((kind) => [{ kind }, bus.replica?.applies[kind] ?? 0] as const));
  fromBus(Counter, 'opengslb_overwatch_bus_kv_rejections_total', 'Bucket entries that changed nothing here, by kind (unknown: a key no kind builds) and reason: unauthenticated (does not open with state_secret, or a bare delete), malformed, older (than the change held here), future (stamped over 60 s ahead of this clock), refused (does not apply here).', ['kind', 'reason'], (bus) => {
    const r = bus.replica?.rejections;
    return [...OPERATOR_KINDS, 'unknown' as const].flatMap((kind) => REJECTION_REASONS.map((reason) => [{ kind, reason }, r?.[kind][reason] ?? 0] as const));
  });
  fromBus(Gauge, 'opengslb_overwatch_bus_kv_pending', 'Operator-state changes made here waiting to be put in the bucket (NATS away).', [], (bus) => [[{}, bus.replica?.pending ?? 0]]);

  const info = new Gauge({ name: 'opengslb_app_info', help: 'Always 1; the version label says what runs.', labelNames: ['version'], registers });
  info.set({ version: options.version }, 1);

  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });

  const metrics: Metrics = {
    registry,
    onCheck,
    attach(source, rl = null) {
      if (overwatch !== null) throw new Error('metrics are already attached to an overwatch');
      overwatch = source;
      reloader = rl;
      counterFold = new WrapFolder(COUNTER_STRIDE, Math.floor(source.counters.length / COUNTER_STRIDE));
      const buffers = source.pool.decisionCounters;
      for (let i = 0; i < buffers.length; i++) {
        const b = buffers[i];
        if (b !== null && b !== undefined) decisionFold.setBuffer(i, b);
      }
      source.pool.on('decisions', onDecisions);
      timer = setInterval(() => {
        fold();
        pruneChecks();
      }, options.foldIntervalMs ?? 60_000);
      timer.unref();
    },
    fold,
    get checkedServers() {
      return checked.size;
    },
    close() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      overwatch?.pool.off('decisions', onDecisions);
    },
  };
  if (options.overwatch !== undefined) metrics.attach(options.overwatch, options.reloader ?? null);
  return metrics;

  function plainCounter(name: string, help: string, word: number): void {
    new Counter({
      name,
      help,
      registers,
      collect() {
        refresh();
        this.reset();
        this.inc(total(word));
      },
    });
  }

  function labelledCounter(name: string, help: string, label: string, entries: readonly (readonly [string, number])[]): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers,
      collect() {
        refresh();
        this.reset();
        for (const [value, word] of entries) this.inc({ [label]: value }, total(word));
      },
    });
  }
}

/** One labelled series of a FoldedHistogram: counts per bucket (not cumulative, +Inf last) and the sum in seconds. */
interface HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly buckets: readonly number[];
  readonly sum: number;
}

type HistogramData = Awaited<ReturnType<Histogram<string>['get']>>;

/** `le` label values of the DNS duration buckets, in seconds, then +Inf. */
const DURATION_LE = [...HIST_BOUNDS_US.map((us) => String(us / 1e6)), '+Inf'];

/**
 * A histogram whose buckets are counted elsewhere (in the workers' shared
 * memory): prom-client's Histogram only counts observe() calls, so this one
 * replaces the two methods the registry reads with ones that report the
 * folded counts. Everything else (name checks, registration) is prom-client's.
 */
class FoldedHistogram extends Histogram<string> {
  readonly #read: () => readonly HistogramSeries[];
  readonly #name: string;
  readonly #help: string;

  constructor(config: { name: string; help: string; labelNames: string[]; registers: Registry[] }, read: () => readonly HistogramSeries[]) {
    super({ ...config, buckets: HIST_BOUNDS_US.map((us) => us / 1e6) });
    this.#name = config.name;
    this.#help = config.help;
    this.#read = read;
  }

  /** Returns the exposition of the folded counts (the registry prefers this method when it exists). */
  async getForPromString(): Promise<HistogramData> {
    const name = this.#name;
    const values: { metricName: string; labels: Record<string, string>; value: number }[] = [];
    for (const s of this.#read()) {
      let cumulative = 0;
      for (let b = 0; b < HIST_BUCKETS; b++) {
        cumulative += s.buckets[b];
        values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: DURATION_LE[b] }, value: cumulative });
      }
      values.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: s.sum });
      values.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: cumulative });
    }
    // prom-client types `type` as an ambient enum that has no runtime value; the string is what it uses.
    return { name, help: this.#help, type: 'histogram', values, aggregator: 'sum' } as unknown as HistogramData;
  }

  override async get(): Promise<HistogramData> {
    return this.getForPromString();
  }
}
