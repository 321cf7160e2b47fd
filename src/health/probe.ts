// Main thread, warm path (about 1 000 probes/s at 10 000 targets every 10 s).
// One health probe: an HTTP(S) GET over a fresh raw socket, a TCP connect, or
// nothing. Everything derivable from a spec (request bytes, TLS context, the
// compiled body_match RegExp) is computed once per spec and cached; a probe
// itself allocates a socket, one Probe object, a reader and its promise.
//
//   runProbe ─► net.connect (onread into one shared buffer) ─► write request ─► ResponseReader.feed
//           └─► tls.connect (secureContext per spec) ─► secureConnect ─► write ─► 'data' ─► feed
//   verdict: status range → (body_match on ≤ 64 KiB) → resolve once, destroy the socket

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
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

// RFC 9110 §5.1 token, §5.5 field value; the path is sent as is, so it must be visible ASCII.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const PATH = /^\/[\x21-\x7e]*$/;

/** What runProbe needs of a spec, prepared once. */
interface Prepared {
  /** The whole HTTP request, shared by every probe of the spec (never mutated). */
  readonly request: Buffer | null;
  readonly tlsOptions: tls.ConnectionOptions | null;
  readonly needBody: boolean;
  readonly matchText: string | null;
  readonly matchRegex: RegExp | null;
  /** Set when the spec can never pass (an invalid regex or header): every probe fails with this reason. */
  readonly invalid: string | null;
}

// Specs are immutable and live as long as their target, so a WeakMap keyed by
// the spec object caches the prepared form without any eviction.
const preparedBySpec = new WeakMap<CheckSpec, Prepared>();

/** Builds the request text; returns a reason string instead when a part could be used for header injection. */
function buildRequest(spec: CheckSpec): Buffer | string {
  if (!PATH.test(spec.path)) return 'error: invalid path';
  const headers = new Map<string, [string, string]>();
  const set = (name: string, value: string): void => void headers.set(name.toLowerCase(), [name, value]);
  set('Host', hostHeader(spec));
  set('User-Agent', USER_AGENT);
  set('Accept', '*/*');
  // A health check wants a fresh connection each time (a dead listener must not hide behind a pooled socket).
  set('Connection', 'close');
  for (const [name, value] of Object.entries(spec.headers)) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) return `error: invalid header ${JSON.stringify(name)}`;
    set(name, value);
  }
  let text = `GET ${spec.path} HTTP/1.1\r\n`;
  for (const [name, value] of headers.values()) {
    if (!FIELD_VALUE.test(value)) return `error: invalid header ${JSON.stringify(name)}`;
    text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${text}\r\n`, 'latin1');
}

function prepare(spec: CheckSpec): Prepared {
  const cached = preparedBySpec.get(spec);
  if (cached !== undefined) return cached;
  let matchText: string | null = null;
  let matchRegex: RegExp | null = null;
  let invalid: string | null = null;
  let request: Buffer | null = null;
  let tlsOptions: tls.ConnectionOptions | null = null;
  if (spec.bodyMatch !== null) {
    if (spec.bodyMatch.kind === 'substring') matchText = spec.bodyMatch.pattern;
    else {
      try {
        matchRegex = new RegExp(spec.bodyMatch.pattern);
      } catch {
        invalid = 'error: invalid body_match regex';
      }
    }
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
  const p: Prepared = { request, tlsOptions, needBody: matchText !== null || matchRegex !== null, matchText, matchRegex, invalid };
  preparedBySpec.set(spec, p);
  return p;
}

// One read buffer for every plain-HTTP socket (net.connect's `onread`): a read
// lands here and is consumed synchronously by ResponseReader.feed, which copies
// the few body bytes it keeps, so no Buffer is allocated per read.
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const PROBE = Symbol('opengslb.probe');
type ProbeSocket = net.Socket & { [PROBE]?: Probe };

/** One in-flight probe. Also the abort listener (handleEvent), so a probe needs no closures. */
class Probe {
  readonly spec: CheckSpec;
  readonly p: Prepared;
  readonly startMs: number;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (r: ProbeResult) => void;
  readonly reader: ResponseReader | null;
  socket: ProbeSocket | null = null;
  timer: NodeJS.Timeout | null = null;
  tlsPending = false;
  done = false;
  constructor(spec: CheckSpec, p: Prepared, startMs: number, signal: AbortSignal | undefined, resolve: (r: ProbeResult) => void) {
    this.spec = spec;
    this.p = p;
    this.startMs = startMs;
    this.signal = signal;
    this.resolve = resolve;
    this.reader = spec.type === 'tcp' ? null : new ResponseReader(p.needBody);
  }

  handleEvent(): void {
    this.finish(false, 'aborted');
  }

  finish(ok: boolean, reason: string): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this);
    this.socket?.destroy();
    this.resolve({ ok, latencyMs: performance.now() - this.startMs, reason });
  }

  /** Feeds response bytes and finishes as soon as the verdict is known. */
  data(buf: Buffer, off: number, end: number): void {
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

function onTimeout(probe: Probe): void {
  probe.finish(false, 'timeout');
}

function onError(this: ProbeSocket, err: Error): void {
  const probe = this[PROBE] as Probe;
  probe.finish(false, reasonForError(err, probe.tlsPending));
}

function onTcpConnect(this: ProbeSocket): void {
  (this[PROBE] as Probe).finish(true, '');
}

function onRead(this: ProbeSocket, nread: number, buf: Buffer): boolean {
  const probe = this[PROBE] as Probe;
  if (!probe.done) probe.data(buf, 0, nread);
  return !probe.done;
}

function onTlsData(this: ProbeSocket, chunk: Buffer): void {
  const probe = this[PROBE] as Probe;
  if (!probe.done) probe.data(chunk, 0, chunk.length);
}

function onSecureConnect(this: ProbeSocket): void {
  const probe = this[PROBE] as Probe;
  probe.tlsPending = false;
  this.write(probe.p.request as Buffer);
}

function onEnd(this: ProbeSocket): void {
  const probe = this[PROBE] as Probe;
  if (probe.done) return;
  const r = (probe.reader as ResponseReader).end();
  if (r === READ_DONE) probe.judge();
  else probe.finish(false, readErrorReason(r));
}

function onClose(this: ProbeSocket): void {
  (this[PROBE] as Probe).finish(false, 'closed');
}

/**
 * Runs one probe of `spec` and reports the verdict. Never rejects: every
 * failure, an abort through `signal` included (reason "aborted"), becomes
 * `{ ok: false, reason }`. One timer of `spec.timeoutMs` covers connect, TLS,
 * headers and body. `latencyMs` runs from the call to the verdict
 * (performance.now()); type "none" resolves ok with latency 0.
 */
export function runProbe(spec: CheckSpec, signal?: AbortSignal): Promise<ProbeResult> {
  const startMs = performance.now();
  if (spec.type === 'none') return Promise.resolve({ ok: true, latencyMs: 0, reason: '' });
  if (signal?.aborted) return Promise.resolve({ ok: false, latencyMs: 0, reason: 'aborted' });
  let p: Prepared;
  try {
    p = prepare(spec);
  } catch (err) {
    // tls.createSecureContext throws on an unreadable CA bundle; a probe reports, it never throws.
    return Promise.resolve({ ok: false, latencyMs: 0, reason: reasonForError(err, false) });
  }
  if (p.invalid !== null) return Promise.resolve({ ok: false, latencyMs: 0, reason: p.invalid });
  return new Promise<ProbeResult>((resolve) => {
    const probe = new Probe(spec, p, startMs, signal, resolve);
    try {
      connect(spec, p, probe);
    } catch (err) {
      // net.connect throws synchronously on options it rejects (a bad port, say).
      probe.finish(false, reasonForError(err, false));
    }
  });
}

/** Opens the probe's socket and arms its timer and abort listener; may throw on options net/tls reject. */
function connect(spec: CheckSpec, p: Prepared, probe: Probe): void {
  let socket: ProbeSocket;
  if (spec.type === 'tcp') {
    socket = net.connect({ host: spec.address, port: spec.port });
    socket.once('connect', onTcpConnect);
  } else if (p.tlsOptions !== null) {
    probe.tlsPending = true;
    socket = tls.connect(p.tlsOptions);
    socket.once('secureConnect', onSecureConnect);
    socket.on('data', onTlsData);
    socket.once('end', onEnd);
  } else {
    socket = net.connect({ host: spec.address, port: spec.port, onread: { buffer: SHARED_READ_BUFFER, callback: onRead } });
    // Queued by net.Socket until the connection is up.
    socket.write(p.request as Buffer);
    socket.once('end', onEnd);
  }
  socket[PROBE] = probe;
  probe.socket = socket;
  socket.on('error', onError);
  socket.once('close', onClose);
  probe.timer = setTimeout(onTimeout, spec.timeoutMs, probe);
  probe.signal?.addEventListener('abort', probe, { once: true });
}
