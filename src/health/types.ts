// Main thread, cold path. The contract between the overwatch and its health
// checker: what one check target is, what a probe reports, and where verdicts
// go. The checker never touches snapshots or live slots directly; it reports
// through a HealthSink the overwatch implements.

export type CheckType = 'http' | 'https' | 'tcp' | 'none';

/** One distinct probe: servers whose checks have identical settings share one target and one probe. */
export interface CheckSpec {
  readonly type: CheckType;
  /** IP literal to connect to (check_address, else the server address). */
  readonly address: string;
  /** Port to connect to (check_port, else the server port). */
  readonly port: number;
  /** Host header and TLS SNI / verification name; null = the address. */
  readonly host: string | null;
  /** HTTP(S) path, starting with "/". */
  readonly path: string;
  /** Inclusive [low, high] status ranges that count as healthy (default [[200, 399]]). */
  readonly expectedStatus: readonly (readonly [number, number])[];
  /** Extra request headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** Must appear in the first 64 KiB of the body; null = no body check. */
  readonly bodyMatch: { readonly kind: 'substring' | 'regex'; readonly pattern: string } | null;
  /** Verify the HTTPS certificate chain and name. */
  readonly tlsVerify: boolean;
  /** http/https: keep one connection per target open between probes (health_check.keep_alive); false = a fresh connection per probe. */
  readonly keepAlive: boolean;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  /** EMA weight of a new latency sample, 0 < alpha ≤ 1. */
  readonly emaAlpha: number;
  /** Extra trusted CA certificates (PEM) for https; absent or null = Node's default store. */
  readonly ca?: string | null;
}

/** What one probe found. */
export interface ProbeResult {
  readonly ok: boolean;
  /** Round-trip time of the probe in milliseconds (connect to verdict; on a kept connection, request write to verdict). */
  readonly latencyMs: number;
  /** Why it failed, short and stable: "status 503", "timeout", "refused", "body mismatch", "tls: <code>", "reset", …; "" when ok. */
  readonly reason: string;
  /**
   * Present (true) when the checker's own thread stalled while the probe was
   * in flight (a block of STALL_MS or more, src/health/probe.ts): `latencyMs`
   * includes the stall, so it is no latency sample. The verdict stands.
   */
  readonly stalled?: true;
}

/** Where the checker reports; the overwatch maps these onto the live slots. */
export interface HealthSink {
  /** Sets the health state (HEALTH_* from src/snapshot/live-slots.ts) of every slot of a target. */
  setHealth(slots: readonly number[], state: number): void;
  /** Records a latency EMA (microseconds) and sample count for every slot of a target. */
  setLatency(slots: readonly number[], emaMicros: number, samples: number): void;
  /** Records that the target's servers were healthy at `unixSec` (drives when_all_down: last_healthy). */
  setLastUp(slots: readonly number[], unixSec: number): void;
}

/** One server behind a target, as the registry names it (src/registry/registry.ts ServerRecord satisfies it). */
export interface CheckedServer {
  /** The server's identity (src/registry/keys.ts serverKey()). */
  readonly key: string;
  /** "region/address:port", for logs and the API. */
  readonly label: string;
  readonly region: string;
  /** "address:port", the `server` label of metrics. */
  readonly endpoint: string;
  /** The one domain a server bound to a service answers (an agent's backend), the `service` label of metrics; else null or absent. */
  readonly service?: string | null;
}

/** A target as the overwatch hands it to the scheduler: the spec and the live slots it decides. */
export interface CheckTarget {
  /** Stable identity: equal specs give equal keys (see targetKey()). */
  readonly key: string;
  readonly spec: CheckSpec;
  readonly slots: readonly number[];
  /** The servers behind the target, parallel to `slots`. */
  readonly servers: readonly CheckedServer[];
}

/** What the API (later) and tests read about one target. */
export interface TargetStatus {
  readonly key: string;
  readonly servers: readonly CheckedServer[];
  readonly type: CheckType;
  readonly state: 'unknown' | 'healthy' | 'unhealthy' | 'unchecked';
  readonly consecutiveSuccesses: number;
  readonly consecutiveFailures: number;
  readonly lastCheckAt: number | null;
  /** When the target entered its current state (wall-clock ms), null while unknown. */
  readonly stateSinceAt: number | null;
  readonly lastError: string | null;
  readonly lastLatencyMs: number | null;
  readonly emaLatencyMs: number | null;
  readonly samples: number;
  readonly transitions: number;
}

/** What a spec checks, in the order both keys below list it. */
function checkedFields(spec: CheckSpec): unknown[] {
  return [spec.type, spec.address, spec.port, spec.host, spec.path, spec.expectedStatus, Object.entries(spec.headers).sort(), spec.bodyMatch, spec.tlsVerify, spec.keepAlive, spec.ca ?? null];
}

/**
 * Returns what a spec checks (type, address, port, host, path, expected
 * status, headers, body match, TLS verification and CA, keep-alive), without
 * how often or how strictly (interval, timeout, thresholds, ema_alpha): a
 * reload that changes only the latter keeps the target's verdict and counts
 * (HealthScheduler.update()).
 */
export function checkIdentity(spec: CheckSpec): string {
  return JSON.stringify(checkedFields(spec));
}

/**
 * Returns what a spec's round trip measures: the check type (TCP, HTTP, HTTP
 * over TLS), the endpoint (check address and port) and whether a kept
 * connection leaves the handshake out. Two checks with the same measure
 * sample the same round trip, whatever path, Host, headers, expected status,
 * body match or TLS verification they ask for, so a reload that changes only
 * those keeps the latency average (HealthScheduler.update()); a change of
 * the measure starts it over.
 */
export function latencyIdentity(spec: CheckSpec): string {
  return JSON.stringify([spec.type, spec.address, spec.port, spec.keepAlive]);
}

/** Returns the identity of a spec: the same settings give the same key, so one probe serves them all. */
export function targetKey(spec: CheckSpec): string {
  return JSON.stringify([...checkedFields(spec), spec.intervalMs, spec.timeoutMs, spec.failureThreshold, spec.successThreshold, spec.emaAlpha]);
}
