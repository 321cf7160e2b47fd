// Main thread, warm path (about 1 000 probes/s at 10 000 targets every 10 s).
// One health probe: an HTTP(S) GET over a fresh raw socket (or, with
// keep_alive, the target's kept one), a TCP connect, or nothing. Everything
// derivable from a spec (request bytes, TLS context, the compiled body_match
// RegExp) is computed once per spec and cached; a probe itself allocates one
// Probe object, a reader, a timer and its result, plus a socket unless it
// reuses one. The scheduler starts probes with startProbe() and a callback:
// no promise, no AbortSignal listener and no closure per probe, which took a
// probe from about 181 000 to 161 000 instructions of user space (callgrind,
// 2 000 probes against nginx). runProbe() is the promise form for the rest.
//
//   startProbe ─► net.connect (onread into one shared buffer) ─► write request ─► ResponseReader.feed
//           ├─► tls.connect (secureContext per spec) ─► secureConnect ─► write ─► 'data' ─► feed
//           └─► keep_alive: KeepAliveConnection.take() ─► write on the idle socket ─► feed
//   verdict: status range → (body_match on ≤ 64 KiB) → resolve once; destroy the socket, or with
//            keep_alive and a complete persistent response park it (unref'd) in the KeepAliveConnection

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { HEADER_NAME, HEADER_VALUE, REQUEST_PATH } from '../lib/http-syntax.ts';
import { linearRegExp } from '../lib/linear-regexp.ts';
import { ResponseReader, READ_DONE, readErrorReason } from './http-response.ts';
import type { CheckSpec, ProbeResult } from './types.ts';

export { BODY_LIMIT_BYTES } from './http-response.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The User-Agent every HTTP(S) probe sends (a `headers` entry may override it). */
export const USER_AGENT = `OpenGSLB-healthcheck/${VERSION}`;

/** Socket error codes with a short reason of their own; anything else is "error: <code>". */
const ERRNO_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  ECONNABORTED: 'reset',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ENETDOWN: 'unreachable',
  EADDRNOTAVAIL: 'unreachable',
  ETIMEDOUT: 'timeout',
};

/**
 * Maps a socket or TLS error to its short, stable reason. `duringTls` says the
 * error came from a TLS socket before its handshake (certificate verification
 * included) finished; OpenSSL and Node name those by code, e.g.
 * "tls: DEPTH_ZERO_SELF_SIGNED_CERT" or "tls: ERR_TLS_CERT_ALTNAME_INVALID".
 */
export function reasonForError(err: unknown, duringTls: boolean): string {
  const code = typeof (err as { code?: unknown } | null)?.code === 'string' ? (err as { code: string }).code : '';
  const known = ERRNO_REASONS[code];
  if (known !== undefined) return known;
  if (duringTls || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_')) return `tls: ${code || 'handshake failed'}`;
  return code === '' ? `error: ${err instanceof Error ? err.message : String(err)}` : `error: ${code}`;
}

/** Formats the Host header: `host` (else the address; IPv6 in brackets) plus `:port` unless it is the scheme's default. */
export function hostHeader(spec: CheckSpec): string {
  const name = spec.host ?? spec.address;
  const bracketed = net.isIPv6(name) ? `[${name}]` : name;
  const defaultPort = spec.type === 'https' ? 443 : 80;
  return spec.port === defaultPort ? bracketed : `${bracketed}:${spec.port}`;
}

/** True when `status` lies within one of the inclusive ranges. */
export function statusExpected(status: number, ranges: CheckSpec['expectedStatus']): boolean {
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i];
    if (status >= r[0] && status <= r[1]) return true;
  }
  return false;
}


/** What runProbe needs of a spec, prepared once. */
interface Prepared {
  /** The whole HTTP request, shared by every probe of the spec (never mutated). */
  readonly request: Buffer | null;
  /**
   * TLS options of an https spec, shared by its probes. `session` is the one
   * mutable field: the last TLS session the server gave this spec, offered on
   * the next fresh connection so it resumes instead of a full handshake (as
   * HAProxy's SSL checks do); cleared after a failed check, and not offered
   * once the certificate it was verified with expired or the full handshake
   * is TLS_SESSION_MAX_AGE_MS old (tlsSession, sessionUsable()).
   */
  readonly tlsOptions: tls.ConnectionOptions | null;
  /** Stores a session the server sent (the 'session' listener; one per spec, not per probe). */
  readonly onSession: ((this: tls.TLSSocket, session: Buffer) => void) | null;
  /** When and until when the certificate behind `tlsOptions.session` was verified; null for other specs. */
  readonly tlsSession: TlsSessionState | null;
  readonly needBody: boolean;
  readonly matchText: string | null;
  readonly matchRegex: RegExp | null;
  /** Set when the spec can never pass (an invalid regex or header): every probe fails with this reason. */
  readonly invalid: string | null;
}

/** The full handshake a kept TLS session stands for (see sessionUsable()). */
interface TlsSessionState {
  /** Date.now() at the full handshake that verified the certificate. */
  verifiedAtMs: number;
  /** The certificate's notAfter (ms since the epoch); Infinity when it is not verified (tls_verify false) or unreadable. */
  notAfterMs: number;
}

/**
 * A resumed TLS session skips the certificate: the check stands on the
 * verification of the full handshake that made the session. A session is
 * offered no longer than this after that handshake, so a replaced
 * certificate is verified within it even when the server keeps accepting the
 * session (5 min, the session lifetime of Node's and nginx's defaults).
 */
export const TLS_SESSION_MAX_AGE_MS = 300_000;

/**
 * True while the kept session may still be offered: younger than
 * TLS_SESSION_MAX_AGE_MS and the certificate it was verified with not
 * expired. Past its notAfter the next check does a full handshake, which
 * fails with "tls: CERT_HAS_EXPIRED" unless the server has a new certificate.
 */
function sessionUsable(state: TlsSessionState, nowMs: number): boolean {
  return nowMs < state.notAfterMs && nowMs - state.verifiedAtMs < TLS_SESSION_MAX_AGE_MS;
}

/** The notAfter of the peer's certificate in ms since the epoch; Infinity when there is none or it cannot be read. */
function peerNotAfterMs(socket: tls.TLSSocket): number {
  const validTo = socket.getPeerCertificate().valid_to;
  const ms = typeof validTo === 'string' ? Date.parse(validTo) : Number.NaN;
  return Number.isFinite(ms) ? ms : Infinity;
}

// Specs are immutable and live as long as their target, so a WeakMap keyed by
// the spec object caches the prepared form without any eviction.
const preparedBySpec = new WeakMap<CheckSpec, Prepared>();

/** Builds the request text; returns a reason string instead when a part could be used for header injection. */
function buildRequest(spec: CheckSpec): Buffer | string {
  if (!REQUEST_PATH.test(spec.path)) return 'error: invalid path';
  const headers = new Map<string, [string, string]>();
  const set = (name: string, value: string): void => void headers.set(name.toLowerCase(), [name, value]);
  set('Host', hostHeader(spec));
  set('User-Agent', USER_AGENT);
  set('Accept', '*/*');
  // By default a check opens a fresh connection each time, as HAProxy, F5 and gdnsd do: the
  // listener's accept path is checked every time. keep_alive trades that for far fewer
  // connections (see docs/health-checks.md, "Keep-alive").
  set('Connection', spec.keepAlive === true ? 'keep-alive' : 'close');
  for (const [name, value] of Object.entries(spec.headers)) {
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value)) return `error: invalid header ${JSON.stringify(name)}`;
    set(name, value);
  }
  let text = `GET ${spec.path} HTTP/1.1\r\n`;
  for (const [name, value] of headers.values()) {
    if (!HEADER_VALUE.test(value)) return `error: invalid header ${JSON.stringify(name)}`;
    text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/** Compiles a body_match; a reason string when its regex does not compile or cannot run in linear time. */
function compileMatch(bodyMatch: CheckSpec['bodyMatch']): { text: string | null; regex: RegExp | null } | string {
  if (bodyMatch === null) return { text: null, regex: null };
  if (bodyMatch.kind === 'substring') return { text: bodyMatch.pattern, regex: null };
  // Linear time in the body: an operator's pattern with catastrophic backtracking must not block this thread.
  try {
    return { text: null, regex: linearRegExp(bodyMatch.pattern) };
  } catch {
    return 'error: invalid body_match regex';
  }
}

/**
 * Why every probe of `spec` would fail before connecting (an invalid
 * body_match regex, a path or header that cannot be sent), or null. The
 * probe reports these as its reason; a config loader can call this to refuse
 * such a check up front instead of letting it take its servers down.
 */
export function specProblem(spec: CheckSpec): string | null {
  const match = compileMatch(spec.bodyMatch);
  if (typeof match === 'string') return match;
  if (spec.type !== 'http' && spec.type !== 'https') return null;
  const built = buildRequest(spec);
  return typeof built === 'string' ? built : null;
}

function prepare(spec: CheckSpec): Prepared {
  const cached = preparedBySpec.get(spec);
  if (cached !== undefined) return cached;
  let matchText: string | null = null;
  let matchRegex: RegExp | null = null;
  let invalid: string | null = null;
  let request: Buffer | null = null;
  let tlsOptions: tls.ConnectionOptions | null = null;
  const match = compileMatch(spec.bodyMatch);
  if (typeof match === 'string') invalid = match;
  else {
    matchText = match.text;
    matchRegex = match.regex;
  }
  if (spec.type === 'http' || spec.type === 'https') {
    const built = buildRequest(spec);
    if (typeof built === 'string') invalid ??= built;
    else request = built;
  }
  if (spec.type === 'https' && invalid === null) {
    const verifyName = spec.host ?? spec.address;
    tlsOptions = {
      host: spec.address,
      port: spec.port,
      rejectUnauthorized: spec.tlsVerify,
      ALPNProtocols: ['http/1.1'],
      // One context per spec: building one per connection would re-read the CA list every probe.
      secureContext: tls.createSecureContext(spec.ca ? { ca: spec.ca } : {}),
      // RFC 6066 §3: SNI carries host names only, never IP literals.
      ...(net.isIP(verifyName) === 0 ? { servername: verifyName } : {}),
      // Without a servername Node verifies against `host` (the address dialled); an
      // IP-literal `host` that differs from it must be the name verified instead.
      ...(spec.host !== null && net.isIP(spec.host) !== 0
        ? { checkServerIdentity: (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(verifyName, cert) }
        : {}),
    };
  }
  const options = tlsOptions;
  const tlsSession: TlsSessionState | null = options === null ? null : { verifiedAtMs: 0, notAfterMs: 0 };
  // Only a session from a connection that passed verification (or whose spec does not verify) is kept.
  // A resumed connection's new ticket stands on the same full handshake: its time and notAfter stay.
  const onSession =
    options === null
      ? null
      : function (this: tls.TLSSocket, session: Buffer): void {
          const verified = options.rejectUnauthorized !== false;
          if (verified && !this.authorized) return;
          if (!this.isSessionReused()) {
            (tlsSession as TlsSessionState).verifiedAtMs = Date.now();
            (tlsSession as TlsSessionState).notAfterMs = verified ? peerNotAfterMs(this) : Infinity;
          }
          options.session = session;
        };
  const p: Prepared = { request, tlsOptions, onSession, tlsSession, needBody: matchText !== null || matchRegex !== null, matchText, matchRegex, invalid };
  preparedBySpec.set(spec, p);
  return p;
}

// One read buffer for every plain-HTTP socket (net.connect's `onread`): a read
// lands here and is consumed synchronously by ResponseReader.feed, which copies
// the few body bytes it keeps, so no Buffer is allocated per read.
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const PROBE = Symbol('opengslb.probe');
const KEPT_BY = Symbol('opengslb.keptBy');
/** A probe's socket: [PROBE] is the probe using it, null while it idles in a KeepAliveConnection ([KEPT_BY]). */
type ProbeSocket = net.Socket & { [PROBE]?: Probe | null; [KEPT_BY]?: KeepAliveConnection | null };

/**
 * The one idle keep-alive connection of a check target (health_check.keep_alive),
 * held between probes. The scheduler owns one per keep-alive target and calls
 * close() when the target is removed or the scheduler stops; this object is
 * the only reference to the idle socket. An idle socket is unref'd (it never
 * keeps the process alive) and dropped silently when it errors, ends or
 * receives bytes nobody asked for.
 */
export class KeepAliveConnection {
  #socket: ProbeSocket | null = null;
  #closed = false;

  /** True while a connection idles here. */
  get idle(): boolean {
    return this.#socket !== null;
  }

  /** Destroys the idle connection, if any; a probe still in flight will close its socket instead of keeping it. Idempotent. */
  close(): void {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = null;
    socket?.destroy();
  }

  /** Hands out the idle socket (ref'd again) when it is still open both ways; null otherwise. */
  take(): ProbeSocket | null {
    const socket = this.#socket;
    if (socket === null) return null;
    this.#socket = null;
    if (socket.destroyed || !socket.writable || socket.readableEnded) {
      socket.destroy();
      return null;
    }
    socket.ref();
    return socket;
  }

  /** Keeps `socket` as the idle connection; false when it cannot be kept (closed, or the socket is half gone). */
  park(socket: ProbeSocket): boolean {
    if (this.#closed || socket.destroyed || !socket.writable || socket.readableEnded) return false;
    // Never happens (a target's probes do not overlap), but one idle socket per target is the rule.
    this.#socket?.destroy();
    socket[PROBE] = null;
    socket[KEPT_BY] = this;
    socket.unref();
    this.#socket = socket;
    return true;
  }

  /** Forgets `socket` if it is the idle one. */
  drop(socket: ProbeSocket): void {
    if (this.#socket === socket) this.#socket = null;
  }
}

/** Closes a socket that errored, ended or spoke while idle (or a reused one given up for a retry). Never throws. */
function dropIdle(socket: ProbeSocket): void {
  socket[KEPT_BY]?.drop(socket);
  socket.destroy();
}

/** Errors that, on a reused connection before any response byte, mean the server closed it while idle. */
function closedWhileIdle(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

// ── main-thread stalls ──────────────────────────────────────────────────────
// A probe in flight while this thread is blocked (a publish of a big config
// takes seconds) measures the block: its round trip ends only when the
// thread reads the socket again. The verdict stands (the timers above see to
// that); the latency is no sample of the server and is flagged `stalled`, so
// the scheduler keeps it out of the average latency routing ranks by.

/** Period of the stall monitor's timer while probes are in flight. */
export const STALL_TICK_MS = 50;
/** A tick this much later than due (or more) marks a stall of this thread. */
export const STALL_MS = 100;

let inFlight = 0;
let stallTimer: NodeJS.Timeout | null = null;
/** performance.now() at the monitor's last tick (or its start). */
let lastTickMs = 0;
/** performance.now() at the tick that found the last stall ended; -Infinity before any. */
let lastStallSeenMs = Number.NEGATIVE_INFINITY;

function stallTick(): void {
  const nowMs = performance.now();
  if (nowMs - lastTickMs >= STALL_TICK_MS + STALL_MS) lastStallSeenMs = nowMs;
  lastTickMs = nowMs;
}

function probeStarted(): void {
  if (inFlight++ > 0) return;
  lastTickMs = performance.now();
  stallTimer = setInterval(stallTick, STALL_TICK_MS);
  stallTimer.unref();
}

function probeEnded(): void {
  if (--inFlight > 0) return;
  clearInterval(stallTimer as NodeJS.Timeout);
  stallTimer = null;
}

/**
 * True when this thread stalled while a probe started at `startMs` was in
 * flight: a stall the monitor found since, one it has not seen yet (its tick
 * is overdue now, the block just ended), or one the probe's own timer found.
 * A stall the monitor found just after a probe started may have come just
 * before it; that sample is dropped too (one sample less, never a wrong one).
 */
function stalledSince(startMs: number, nowMs: number): boolean {
  return lastStallSeenMs >= startMs || nowMs - lastTickMs >= STALL_TICK_MS + STALL_MS;
}

/** Receives a probe's verdict, once, with the context it was started with. */
export type ProbeDone<C> = (context: C, result: ProbeResult) => void;

/** A probe in flight. */
export interface ProbeHandle {
  /** Ends the probe now with reason "aborted" (its callback runs at once, unless it already ran). */
  abort(): void;
}

/** One in-flight probe; the only object a probe needs besides its socket, reader and timer. */
class Probe<C = unknown> implements ProbeHandle {
  readonly spec: CheckSpec;
  readonly p: Prepared;
  /** performance.now() at connect start, or at the write on a reused connection. */
  startMs: number;
  readonly onDone: ProbeDone<C>;
  readonly context: C;
  readonly reader: ResponseReader | null;
  /** Where a kept connection comes from and goes back to; null = a fresh connection, closed after the verdict. */
  readonly kept: KeepAliveConnection | null;
  socket: ProbeSocket | null = null;
  timer: NodeJS.Timeout | null = null;
  /** performance.now() at which the timer is due. */
  deadlineMs = 0;
  /** The deadline was moved once for a timer that fired late or a step that waited behind this thread (see onTimeout). */
  extended = false;
  /** The verdict of an expired timer waiting for one more read of the sockets (see onTimeout); null otherwise. */
  immediate: NodeJS.Immediate | null = null;
  /** stepOf() when the timer fired, compared after that read. */
  deferredStep = 0;
  tlsPending = false;
  /** The socket came from `kept` (no connect, no handshake). */
  reused = false;
  /** At least one response byte arrived. */
  received = false;
  done = false;
  constructor(spec: CheckSpec, p: Prepared, startMs: number, onDone: ProbeDone<C>, context: C, kept: KeepAliveConnection | null) {
    this.spec = spec;
    this.p = p;
    this.startMs = startMs;
    this.onDone = onDone;
    this.context = context;
    this.kept = spec.type === 'tcp' || spec.keepAlive !== true ? null : kept;
    this.reader = spec.type === 'tcp' ? null : new ResponseReader(p.needBody, this.kept !== null);
    probeStarted();
  }

  abort(): void {
    this.finish(false, 'aborted');
  }

  finish(ok: boolean, reason: string): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    const socket = this.socket;
    if (socket !== null) {
      const keep = ok && this.kept !== null && (this.reader as ResponseReader).reusable && this.kept.park(socket);
      if (!keep) socket.destroy();
    }
    // A failed https check starts the next one with a full handshake, so the certificate is verified afresh.
    if (!ok && this.p.tlsOptions !== null) this.p.tlsOptions.session = undefined;
    const nowMs = performance.now();
    const latencyMs = nowMs - this.startMs;
    // `extended`: the probe's timer came late, or a step waited behind this thread.
    const stalled = this.extended || stalledSince(this.startMs, nowMs);
    probeEnded();
    this.onDone(this.context, stalled ? { ok, latencyMs, reason, stalled } : { ok, latencyMs, reason });
  }

  /** A reused connection failed before any response byte: the server closed it while it idled. */
  retryable(): boolean {
    return this.reused && !this.received && !this.done;
  }

  /**
   * Gives up the reused socket and tries once more on a fresh connection,
   * under the same timer (the timeout budget is the probe's, not per attempt).
   */
  retry(): void {
    const old = this.socket as ProbeSocket;
    this.reused = false;
    // Detached first, so its 'close' and any late event go to dropIdle, not to this probe.
    old[PROBE] = null;
    dropIdle(old);
    this.startMs = performance.now();
    try {
      openSocket(this.spec, this.p, this as Probe);
    } catch (err) {
      this.finish(false, reasonForError(err, false));
    }
  }

  /** Feeds response bytes and finishes as soon as the verdict is known. */
  data(buf: Buffer, off: number, end: number): void {
    this.received = true;
    const reader = this.reader as ResponseReader;
    const r = reader.feed(buf, off, end);
    if (r < 0) return this.finish(false, readErrorReason(r));
    if (reader.status !== 0 && !statusExpected(reader.status, this.spec.expectedStatus)) {
      return this.finish(false, `status ${reader.status}`);
    }
    if (r === READ_DONE) this.judge();
  }

  judge(): void {
    if (!this.p.needBody) return this.finish(true, '');
    const body = (this.reader as ResponseReader).bodyText();
    const matched = this.p.matchRegex !== null ? this.p.matchRegex.test(body) : body.includes(this.p.matchText as string);
    this.finish(matched, matched ? '' : 'body mismatch');
  }
}

/** Reason phrases of the 1xx statuses (RFC 9110 §15.2, RFC 8297), for the timeout reason. */
const INTERIM_NAMES: Readonly<Record<number, string>> = { 100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints' };

/**
 * A timer this share of timeout_ms late (or more) means the checker's own
 * thread was blocked (a long reload, a GC pause), not that the server was slow.
 */
const LATE_TIMER_SHARE = 0.25;

/**
 * How far a probe has come: connected (1), TLS done (2), first response byte
 * (3). A step taken in the one poll after the timer fired was waiting behind
 * this thread (see onTimeout).
 */
function stepOf(probe: Probe): number {
  const socket = probe.socket;
  if (socket === null || socket.connecting) return 0;
  if (probe.tlsPending) return 1;
  return probe.received ? 3 : 2;
}

/** Gives the probe once more time: the time it lost to this thread, at most another timeout_ms. */
function extend(probe: Probe, extraMs: number): void {
  probe.extended = true;
  probe.deadlineMs = performance.now() + extraMs;
  probe.timer = setTimeout(onTimeout, extraMs, probe);
}

function onTimeout(probe: Probe): void {
  probe.timer = null;
  if (probe.done) return;
  if (!probe.extended) {
    // Timers run before the poll phase reads the sockets, so after a block a
    // reply that arrived in time would still be called a timeout: every check
    // in flight would fail at once. A timer that fired late gives the check
    // the time it lost, once (at most another timeout_ms), so it is judged on
    // what the server did.
    const lateMs = performance.now() - probe.deadlineMs;
    if (lateMs >= probe.spec.timeoutMs * LATE_TIMER_SHARE) return extend(probe, Math.min(lateMs, probe.spec.timeoutMs));
    // A block that ended just before (or just after) the deadline leaves the
    // timer on time but the sockets unread since the block began: judge only
    // after the sockets were read once more (setImmediate runs after the poll
    // phase). A reply read then finishes the probe as it should; a step taken
    // then (connected, TLS done, a first byte) was waiting behind this thread,
    // and the check gets another timeout_ms, once.
    probe.deferredStep = stepOf(probe);
    probe.immediate = setImmediate(onTimeoutAfterPoll, probe);
    return;
  }
  timedOut(probe);
}

function onTimeoutAfterPoll(probe: Probe): void {
  probe.immediate = null;
  if (probe.done) return;
  if (stepOf(probe) > probe.deferredStep) return extend(probe, probe.spec.timeoutMs);
  timedOut(probe);
}

function timedOut(probe: Probe): void {
  // A server that sends 1xx interim responses and never the final one is
  // bounded by this same timer; saying what came apart tells it from silence.
  const interim = probe.reader !== null && probe.reader.status === 0 ? probe.reader.interimStatus : 0;
  if (interim === 0) return probe.finish(false, 'timeout');
  const name = INTERIM_NAMES[interim];
  probe.finish(false, `timeout: no final response (got ${interim}${name === undefined ? '' : ` ${name}`})`);
}

// Every handler below first checks for an idle socket ([PROBE] null): whatever
// happens to it then is dropped silently (no unhandled 'error', no verdict).

function onError(this: ProbeSocket, err: Error): void {
  const probe = this[PROBE] as Probe | null;
  if (probe === null) return dropIdle(this);
  if (probe.retryable() && closedWhileIdle(err)) return probe.retry();
  probe.finish(false, reasonForError(err, probe.tlsPending));
}

function onTcpConnect(this: ProbeSocket): void {
  (this[PROBE] as Probe).finish(true, '');
}

function onRead(this: ProbeSocket, nread: number, buf: Buffer): boolean {
  const probe = this[PROBE] as Probe | null;
  if (probe === null) {
    // Bytes on an idle connection (a 408, say): it is out of step with us.
    dropIdle(this);
    return false;
  }
  if (!probe.done) probe.data(buf, 0, nread);
  // A parked socket keeps reading, so a FIN from the server drops it while idle.
  return !this.destroyed;
}

function onTlsData(this: ProbeSocket, chunk: Buffer): void {
  const probe = this[PROBE] as Probe | null;
  if (probe === null) return dropIdle(this);
  if (!probe.done) probe.data(chunk, 0, chunk.length);
}

function onSecureConnect(this: ProbeSocket): void {
  const probe = this[PROBE] as Probe | null;
  if (probe === null) return;
  probe.tlsPending = false;
  this.write(probe.p.request as Buffer);
}

function onEnd(this: ProbeSocket): void {
  const probe = this[PROBE] as Probe | null;
  if (probe === null) return dropIdle(this);
  if (probe.done) return;
  if (probe.retryable()) return probe.retry();
  const r = (probe.reader as ResponseReader).end();
  if (r === READ_DONE) probe.judge();
  else probe.finish(false, readErrorReason(r));
}

function onClose(this: ProbeSocket): void {
  const probe = this[PROBE] as Probe | null;
  if (probe === null) return dropIdle(this);
  if (probe.retryable()) return probe.retry();
  probe.finish(false, 'closed');
}

/** A probe that is over before it starts (type none, an invalid spec): its verdict arrives on the next tick, never inside startProbe. */
const SETTLED: ProbeHandle = { abort() {} };

function settleLater<C>(onDone: ProbeDone<C>, context: C, result: ProbeResult): ProbeHandle {
  process.nextTick(onDone, context, result);
  return SETTLED;
}

/**
 * Starts one probe of `spec` and calls `onDone(context, result)` exactly
 * once, never before startProbe has returned. Never throws: every failure
 * becomes `{ ok: false, reason }`, abort() included (reason "aborted"). One
 * timer of `spec.timeoutMs` covers connect, TLS, headers and body (moved
 * once when it fires late because this thread was blocked, see onTimeout).
 * `latencyMs` runs from the call to the verdict (performance.now()); type
 * "none" reports ok with latency 0.
 *
 * With `spec.keepAlive` (http, https) and a `kept` connection holder, the
 * probe writes on the holder's idle connection when it has one, measuring
 * latency from that write (no connect, no TLS handshake), and after a
 * complete persistent response leaves its socket there for the next probe. A
 * reused connection that turns out closed (EOF, ECONNRESET, EPIPE before any
 * response byte) is retried once on a fresh connection within the same
 * timeout. Without a holder every probe uses a fresh connection.
 */
export function startProbe<C>(spec: CheckSpec, kept: KeepAliveConnection | null, onDone: ProbeDone<C>, context: C): ProbeHandle {
  const startMs = performance.now();
  if (spec.type === 'none') return settleLater(onDone, context, { ok: true, latencyMs: 0, reason: '' });
  let p: Prepared;
  try {
    p = prepare(spec);
  } catch (err) {
    // tls.createSecureContext throws on an unreadable CA bundle; a probe reports, it never throws.
    return settleLater(onDone, context, { ok: false, latencyMs: 0, reason: reasonForError(err, false) });
  }
  if (p.invalid !== null) return settleLater(onDone, context, { ok: false, latencyMs: 0, reason: p.invalid });
  const probe = new Probe(spec, p, startMs, onDone, context, kept);
  try {
    start(spec, p, probe as Probe);
  } catch (err) {
    // net.connect throws synchronously on options it rejects (a bad port, say); report on the next tick, as promised.
    process.nextTick(failProbe, probe, reasonForError(err, false));
  }
  return probe;
}

function failProbe(probe: Probe, reason: string): void {
  probe.finish(false, reason);
}

/**
 * startProbe as a promise, with an optional AbortSignal (an abort resolves
 * it with reason "aborted"). Never rejects.
 */
export function runProbe(spec: CheckSpec, signal?: AbortSignal, kept: KeepAliveConnection | null = null): Promise<ProbeResult> {
  if (signal?.aborted) return Promise.resolve({ ok: false, latencyMs: 0, reason: 'aborted' });
  return new Promise<ProbeResult>((resolve) => {
    const onAbort = (): void => handle.abort();
    // startProbe never calls back before it has returned, so `handle` is set by then.
    const handle = startProbe(
      spec,
      kept,
      (_: null, result: ProbeResult) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(result);
      },
      null,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Writes on the kept connection or opens a fresh one, and arms the probe's timer. */
function start(spec: CheckSpec, p: Prepared, probe: Probe): void {
  const idle = probe.kept === null ? null : probe.kept.take();
  if (idle !== null) {
    idle[PROBE] = probe;
    probe.socket = idle;
    probe.reused = true;
    probe.startMs = performance.now();
    idle.write(p.request as Buffer);
  } else {
    openSocket(spec, p, probe);
  }
  probe.deadlineMs = performance.now() + spec.timeoutMs;
  probe.timer = setTimeout(onTimeout, spec.timeoutMs, probe);
}

/** Opens a fresh socket for the probe and wires its handlers; may throw on options net/tls reject. */
function openSocket(spec: CheckSpec, p: Prepared, probe: Probe): void {
  let socket: ProbeSocket;
  if (spec.type === 'tcp') {
    socket = net.connect({ host: spec.address, port: spec.port });
    socket.on('connect', onTcpConnect);
  } else if (p.tlsOptions !== null) {
    probe.tlsPending = true;
    if (p.tlsOptions.session !== undefined && !sessionUsable(p.tlsSession as TlsSessionState, Date.now())) p.tlsOptions.session = undefined;
    socket = tls.connect(p.tlsOptions);
    socket.on('secureConnect', onSecureConnect);
    socket.on('session', p.onSession as (this: tls.TLSSocket, session: Buffer) => void);
    socket.on('data', onTlsData);
    socket.on('end', onEnd);
  } else {
    socket = net.connect({ host: spec.address, port: spec.port, onread: { buffer: SHARED_READ_BUFFER, callback: onRead } });
    // Queued by net.Socket until the connection is up.
    socket.write(p.request as Buffer);
    socket.on('end', onEnd);
  }
  socket[PROBE] = probe;
  socket[KEPT_BY] = null;
  probe.socket = socket;
  socket.on('error', onError);
  // 'on', not 'once', here and above: each event fires at most once per socket, and once() wraps its listener in a new closure.
  socket.on('close', onClose);
}
