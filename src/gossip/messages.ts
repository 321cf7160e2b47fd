// Main thread (agent and overwatch), per message. The agent ↔ overwatch
// messages as TypeScript types, their MessagePack encoding (msgpackr, plain
// MessagePack: no records, no structured clone), and a strict validator that
// turns decoded bytes into a typed message or says which field is wrong.
// Every field is always present (null stands for "none"), so a body has
// exactly the listed keys: an unknown or missing key is refused.

import { isIP } from 'node:net';
import { Packr, Unpackr } from 'msgpackr';
import { HEADER_NAME, HEADER_VALUE, REQUEST_PATH } from '../lib/http-syntax.ts';

/** Backends one message may carry; more is refused (bounds the work per message). */
export const MAX_BACKENDS = 1024;
/** Largest certificate (DER) a registration may carry. */
export const MAX_CERTIFICATE_BYTES = 8192;
/** Longest agent id, region, version or reason text. */
export const MAX_ID_LEN = 128;
/** Bytes of one token proof: an HMAC-SHA-256 (token.ts). */
export const TOKEN_PROOF_LEN = 32;

/** The message types, in the order docs/agents.md lists them. */
export const MESSAGE_TYPES = ['register', 'heartbeat', 'health_update', 'deregister', 'ack'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** What the agent's own checks say about a backend (the threshold state machine of health/). */
export type BackendHealth = 'healthy' | 'unhealthy' | 'unknown';
const BACKEND_HEALTH: readonly string[] = ['healthy', 'unhealthy', 'unknown'];

/** Why the agent drains a backend (its predictive signals; the Go original's bleed reasons). */
export type DrainReason = 'cpu_threshold_exceeded' | 'memory_threshold_exceeded' | 'error_rate_threshold_exceeded';
const DRAIN_REASONS: readonly string[] = ['cpu_threshold_exceeded', 'memory_threshold_exceeded', 'error_rate_threshold_exceeded'];

/** Check types an agent backend may have (health_check.type). */
export const BACKEND_CHECK_TYPES = ['http', 'https', 'tcp', 'none'] as const;
/** Most expected_status ranges and headers one backend check may carry. */
export const MAX_CHECK_LIST = 32;

/**
 * How the agent checks a backend (its health_check, without interval and
 * timeout: the overwatch's validation uses overwatch.validation's), so the
 * overwatch can check it the same way when overwatch.validation.enabled.
 */
export interface BackendCheck {
  readonly type: (typeof BACKEND_CHECK_TYPES)[number];
  /** HTTP(S) path, starting with "/". */
  readonly path: string;
  /** Host header and TLS name, or null for the address. */
  readonly host: string | null;
  /** Inclusive [low, high] status ranges that count as healthy. */
  readonly expectedStatus: readonly (readonly [number, number])[];
  readonly headers: Readonly<Record<string, string>>;
  /** Substring, or a regular expression (which the overwatch does not run: patterns from the network are not compiled). */
  readonly bodyMatch: { readonly kind: 'substring' | 'regex'; readonly pattern: string } | null;
  readonly tlsVerify: boolean;
  readonly failureThreshold: number;
  readonly successThreshold: number;
}

/** One backend as the agent reports it; (service, address, port) identifies it. */
export interface BackendReport {
  /** Domain name the backend serves: lower-case, no trailing dot. */
  readonly service: string;
  /** IP literal (what DNS can answer) or host name (kept, never answered). */
  readonly address: string;
  readonly port: number;
  /** 0..65535, as `weight` in regions[].servers[]. */
  readonly weight: number;
  readonly health: BackendHealth;
  /** Non-null while the agent drains the backend, with the reason. */
  readonly drain: DrainReason | null;
  /** How the agent checks it: in registrations and full heartbeats; null in deltas (the overwatch keeps what it knows). */
  readonly check: BackendCheck | null;
}

/** Host load the agent measured, for the API (percent 0..100, errors per minute). */
export interface HostLoad {
  readonly cpuPercent: number;
  readonly memoryPercent: number;
  readonly errorRatePerMin: number;
}

/** Fields every agent message starts with; the sender fills them when it seals. */
export interface MessageHeader {
  readonly agentId: string;
  /** Per-agent sequence number, increasing with every message (replay.ts). */
  readonly seq: number;
  /** Sender's clock, epoch milliseconds. */
  readonly timestampMs: number;
}

/**
 * First contact, and every later re-registration: who the agent is, its
 * certificate, a token proof per service, and the full backend list.
 */
export interface RegisterMessage extends MessageHeader {
  readonly type: 'register';
  readonly region: string;
  /** The agent's software version (shown in the API). */
  readonly version: string;
  /** The agent's self-signed certificate, DER; the register is signed by its key. */
  readonly certificate: Uint8Array;
  /** Service → HMAC-SHA-256 proof of that service's token (token.ts); one per service in `backends`. */
  readonly tokenProofs: Readonly<Record<string, Uint8Array>>;
  /** The agent's heartbeat.interval, so the overwatch can tell how late a heartbeat is. */
  readonly heartbeatIntervalMs: number;
  readonly backends: readonly BackendReport[];
}

/**
 * Periodic liveness. `full: true` carries every backend (the authoritative
 * set: backends missing from it are gone); `full: false` only those whose
 * state changed since the previous heartbeat (possibly none).
 */
export interface HeartbeatMessage extends MessageHeader {
  readonly type: 'heartbeat';
  readonly full: boolean;
  readonly backends: readonly BackendReport[];
  readonly load: HostLoad | null;
}

/** Sent at once when backends change state, carrying just those backends. */
export interface HealthUpdateMessage extends MessageHeader {
  readonly type: 'health_update';
  readonly backends: readonly BackendReport[];
}

/** Sent at a graceful stop: every backend of the agent leaves DNS now. */
export interface DeregisterMessage extends MessageHeader {
  readonly type: 'deregister';
  readonly reason: string;
}

/** How the overwatch answered a message received over TCP. */
export type AckStatus = 'ok' | 'register' | 'refused';

/**
 * The overwatch's answer on a TCP connection, sealed but not signed (the
 * overwatch has no key of its own): it only steers the agent's retries.
 * `status: 'register'` asks the agent to register again (no pin for it).
 */
export interface AckMessage extends MessageHeader {
  readonly type: 'ack';
  readonly status: AckStatus;
  /** The drop reason when refused, else null. */
  readonly reason: string | null;
}

/** A message from an agent. */
export type AgentMessage = RegisterMessage | HeartbeatMessage | HealthUpdateMessage | DeregisterMessage;
/** Any message on the channel. */
export type Message = AgentMessage | AckMessage;

/** A message as the agent writes it: the sender adds agentId, seq and timestampMs. */
export type OutgoingMessage =
  | Omit<RegisterMessage, keyof MessageHeader>
  | Omit<HeartbeatMessage, keyof MessageHeader>
  | Omit<HealthUpdateMessage, keyof MessageHeader>
  | Omit<DeregisterMessage, keyof MessageHeader>;

// Plain MessagePack only: records and structured cloning would let the bytes
// define shapes and references; bin comes back as Buffer. 64-bit integers are
// read as numbers (sequence numbers stay below 2^53).
const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false, bundleStrings: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: 'number' });

/** Encodes any value as MessagePack; returns a new Buffer. */
export function encodeMsgpack(value: unknown): Buffer {
  return packr.pack(value);
}

/**
 * Decodes MessagePack bytes; returns undefined for anything that is not
 * exactly one well-formed value (truncated, trailing bytes, too deep).
 * Never throws.
 */
export function decodeMsgpack(bytes: Uint8Array): { readonly value: unknown } | undefined {
  try {
    return { value: unpackr.unpack(bytes) };
  } catch {
    return undefined;
  }
}

/** The validator's answer: the typed message, or the first problem as "path: what, expected what". */
export type ValidateResult = { readonly ok: true; readonly message: Message } | { readonly ok: false; readonly detail: string };

class Invalid extends Error {}

function fail(path: string, what: string): never {
  throw new Invalid(`${path}: ${what}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `a string of ${v.length} characters`;
  return `${typeof v} ${String(v)}`;
}

function record(v: unknown, path: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) fail(path, `got ${describe(v)}, expected a map`);
  const obj = v as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!keys.includes(key)) fail(path, `unknown field ${JSON.stringify(key.slice(0, 40))}, expected only ${keys.join(', ')}`);
  }
  for (const key of keys) if (!Object.hasOwn(obj, key)) fail(path, `missing field ${key}`);
  return obj;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(path, `got ${describe(v)}, expected a whole number ${min}..${max}`);
  return v;
}

function num(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(path, `got ${describe(v)}, expected a number ${min}..${max}`);
  return v;
}

/**
 * A copy of a decoded string that holds only itself. msgpackr decodes a
 * message's strings as slices of one string of the whole message, so a
 * kept agent id, service or address kept that whole string alive: about
 * 15 MB of heap at 5 000 agents (bench/agents-scale.ts).
 */
function own(v: string): string {
  return Buffer.from(v, 'utf8').toString('utf8');
}

function text(v: unknown, path: string, pattern: RegExp, expected: string, maxLen = MAX_ID_LEN): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > maxLen || !pattern.test(v)) fail(path, `got ${describe(v)}, expected ${expected}`);
  return own(v);
}

function oneOf<T extends string>(v: unknown, path: string, values: readonly string[]): T {
  const i = typeof v === 'string' ? values.indexOf(v) : -1;
  if (i < 0) fail(path, `got ${describe(v)}, expected one of ${values.join(', ')}`);
  // The constant, not the decoded string (see own()).
  return values[i] as T;
}

function bytes(v: unknown, path: string, minLen: number, maxLen: number): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < minLen || v.length > maxLen) fail(path, `got ${describe(v)}, expected ${minLen}..${maxLen} bytes`);
  return v;
}

function list(v: unknown, path: string, max: number): readonly unknown[] {
  if (!Array.isArray(v) || v.length > max) fail(path, `got ${describe(v)}${Array.isArray(v) ? ` of ${v.length}` : ''}, expected a list of at most ${max}`);
  return v;
}

/** Ids, regions: the config's region-name syntax. */
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Lower-case domain name without the trailing dot, labels 1..63, at most 253 characters. */
const SERVICE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

function address(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length > 253 || (isIP(v) === 0 && !HOST_NAME.test(v))) fail(path, `got ${describe(v)}, expected an IP literal or a host name`);
  return own(v);
}

const BACKEND_KEYS = ['service', 'address', 'port', 'weight', 'health', 'drain', 'check'] as const;
const CHECK_KEYS = ['type', 'path', 'host', 'expectedStatus', 'headers', 'bodyMatch', 'tlsVerify', 'failureThreshold', 'successThreshold'] as const;

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, `got ${describe(v)}, expected true or false`);
  return v;
}

function check(v: unknown, path: string): BackendCheck | null {
  if (v === null) return null;
  const c = record(v, path, CHECK_KEYS);
  const ranges = list(c.expectedStatus, `${path}.expectedStatus`, MAX_CHECK_LIST).map((r, i) => {
    const at = `${path}.expectedStatus[${i}]`;
    const pair = list(r, at, 2);
    if (pair.length !== 2) fail(at, `got a list of ${pair.length}, expected [low, high]`);
    const low = int(pair[0], `${at}[0]`, 100, 599);
    const high = int(pair[1], `${at}[1]`, low, 599);
    return [low, high] as const;
  });
  if (typeof c.headers !== 'object' || c.headers === null || Object.getPrototypeOf(c.headers) !== Object.prototype) fail(`${path}.headers`, `got ${describe(c.headers)}, expected a map`);
  const entries = Object.entries(c.headers as Record<string, unknown>);
  if (entries.length > MAX_CHECK_LIST) fail(`${path}.headers`, `has ${entries.length} entries, expected at most ${MAX_CHECK_LIST}`);
  const headers: Record<string, string> = Object.create(null);
  for (const [name, value] of entries) {
    text(name, `${path}.headers key`, HEADER_NAME, 'an HTTP header name', 64);
    if (typeof value !== 'string' || value.length > 1024 || !HEADER_VALUE.test(value)) fail(`${path}.headers.${name}`, `got ${describe(value)}, expected a header value of visible characters, spaces and tabs`);
    headers[name] = own(value);
  }
  let bodyMatch: BackendCheck['bodyMatch'] = null;
  if (c.bodyMatch !== null) {
    const b = record(c.bodyMatch, `${path}.bodyMatch`, ['kind', 'pattern']);
    bodyMatch = {
      kind: oneOf<'substring' | 'regex'>(b.kind, `${path}.bodyMatch.kind`, ['substring', 'regex']),
      pattern: text(b.pattern, `${path}.bodyMatch.pattern`, /^[\s\S]*$/, 'text', 4096),
    };
  }
  return {
    type: oneOf<BackendCheck['type']>(c.type, `${path}.type`, BACKEND_CHECK_TYPES),
    path: text(c.path, `${path}.path`, REQUEST_PATH, 'a path that starts with "/" and has visible ASCII characters only', 2048),
    host: c.host === null ? null : address(c.host, `${path}.host`),
    expectedStatus: ranges,
    headers,
    bodyMatch,
    tlsVerify: bool(c.tlsVerify, `${path}.tlsVerify`),
    failureThreshold: int(c.failureThreshold, `${path}.failureThreshold`, 1, 100),
    successThreshold: int(c.successThreshold, `${path}.successThreshold`, 1, 100),
  };
}

function backends(v: unknown, path: string): BackendReport[] {
  const items = list(v, path, MAX_BACKENDS);
  const out: BackendReport[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < items.length; i++) {
    const at = `${path}[${i}]`;
    const b = record(items[i], at, BACKEND_KEYS);
    const report: BackendReport = {
      service: text(b.service, `${at}.service`, SERVICE, 'a lower-case domain name without the trailing dot', 253),
      address: address(b.address, `${at}.address`),
      port: int(b.port, `${at}.port`, 1, 65535),
      weight: int(b.weight, `${at}.weight`, 0, 65535),
      health: oneOf<BackendHealth>(b.health, `${at}.health`, BACKEND_HEALTH),
      drain: b.drain === null ? null : oneOf<DrainReason>(b.drain, `${at}.drain`, DRAIN_REASONS),
      check: check(b.check, `${at}.check`),
    };
    const key = `${report.service}|${report.address}|${report.port}`;
    if (seen.has(key)) fail(at, `${report.service} ${report.address}:${report.port} is listed twice, expected each backend once`);
    seen.add(key);
    out.push(report);
  }
  return out;
}

const HEADER_KEYS = ['type', 'agentId', 'seq', 'timestampMs'] as const;
const KEYS: Readonly<Record<MessageType, readonly string[]>> = {
  register: [...HEADER_KEYS, 'region', 'version', 'certificate', 'tokenProofs', 'heartbeatIntervalMs', 'backends'],
  heartbeat: [...HEADER_KEYS, 'full', 'backends', 'load'],
  health_update: [...HEADER_KEYS, 'backends'],
  deregister: [...HEADER_KEYS, 'reason'],
  ack: [...HEADER_KEYS, 'status', 'reason'],
};

function header(m: Record<string, unknown>): MessageHeader {
  return {
    agentId: text(m.agentId, 'agentId', ID, 'an agent id of letters, digits, ".", "_" and "-"'),
    seq: int(m.seq, 'seq', 0, Number.MAX_SAFE_INTEGER),
    timestampMs: int(m.timestampMs, 'timestampMs', 0, Number.MAX_SAFE_INTEGER),
  };
}

function tokenProofs(v: unknown): Record<string, Uint8Array> {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) fail('tokenProofs', `got ${describe(v)}, expected a map of service → proof`);
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_BACKENDS) fail('tokenProofs', `has ${entries.length} entries, expected at most ${MAX_BACKENDS}`);
  // A null-prototype map: service names such as "constructor" stay plain keys.
  const out: Record<string, Uint8Array> = Object.create(null);
  for (const [service, proof] of entries) {
    text(service, `tokenProofs key ${JSON.stringify(service.slice(0, 40))}`, SERVICE, 'a lower-case domain name', 253);
    out[service] = bytes(proof, `tokenProofs.${service}`, TOKEN_PROOF_LEN, TOKEN_PROOF_LEN);
  }
  return out;
}

function load(v: unknown): HostLoad | null {
  if (v === null) return null;
  const l = record(v, 'load', ['cpuPercent', 'memoryPercent', 'errorRatePerMin']);
  return {
    cpuPercent: num(l.cpuPercent, 'load.cpuPercent', 0, 100),
    memoryPercent: num(l.memoryPercent, 'load.memoryPercent', 0, 100),
    errorRatePerMin: num(l.errorRatePerMin, 'load.errorRatePerMin', 0, 1e9),
  };
}

/**
 * Checks that a decoded value is exactly one Message: a map with the keys of
 * its type and nothing else, each of the right type and range. Returns a new
 * object (the input is not kept). Never throws.
 */
export function validateMessage(value: unknown): ValidateResult {
  try {
    if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) fail('(message)', `got ${describe(value)}, expected a map`);
    const type = oneOf<MessageType>((value as Record<string, unknown>).type, 'type', MESSAGE_TYPES);
    const m = record(value, '(message)', KEYS[type]);
    const h = header(m);
    let message: Message;
    switch (type) {
      case 'register':
        message = {
          type,
          ...h,
          region: text(m.region, 'region', ID, 'a region name of letters, digits, ".", "_" and "-"'),
          version: text(m.version, 'version', PRINTABLE, 'printable text', 64),
          certificate: bytes(m.certificate, 'certificate', 1, MAX_CERTIFICATE_BYTES),
          tokenProofs: tokenProofs(m.tokenProofs),
          heartbeatIntervalMs: int(m.heartbeatIntervalMs, 'heartbeatIntervalMs', 1, 86_400_000),
          backends: backends(m.backends, 'backends'),
        };
        break;
      case 'heartbeat':
        if (typeof m.full !== 'boolean') fail('full', `got ${describe(m.full)}, expected true or false`);
        message = { type, ...h, full: m.full, backends: backends(m.backends, 'backends'), load: load(m.load) };
        break;
      case 'health_update':
        message = { type, ...h, backends: backends(m.backends, 'backends') };
        break;
      case 'deregister':
        message = { type, ...h, reason: text(m.reason, 'reason', PRINTABLE, 'printable text', 256) };
        break;
      case 'ack':
        message = {
          type,
          ...h,
          status: oneOf<AckStatus>(m.status, 'status', ['ok', 'register', 'refused']),
          reason: m.reason === null ? null : text(m.reason, 'reason', ID, 'a drop reason'),
        };
        break;
    }
    return { ok: true, message };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, detail: err.message };
    // Anything else (a getter on an exotic object) is still bad input, never an escape.
    return { ok: false, detail: `(message): ${(err as Error).message}` };
  }
}
