// Main thread, cold path (once per API request). Who may call the admin API:
// the client address (socket peer, or a proxy header when trusted) against
// api.allowed_networks, the host it was reached by (Host) against
// api.allowed_hosts, and the bearer token every write must carry.
// Allowlists and token digests are compiled once per config, not per request.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { asciiLower, normaliseDomainName } from '../config/domain-name.ts';
import { parseIp } from '../config/ip.ts';
import { ipToBytes } from '../lib/ip.ts';

/** One allowed network: the prefix's address bytes (4 or 16) and its length in bits. */
interface Network {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** The client address of a request, normalised (IPv4-mapped IPv6 becomes IPv4), or why there is none. */
export type ClientAddress = { readonly address: string; readonly bytes: Uint8Array } | { readonly error: string };

/**
 * Matches client addresses against a list of CIDR prefixes. Build one per
 * config (`allowlistFor` caches it); `allows` allocates nothing.
 */
export class Allowlist {
  readonly #v4: Network[] = [];
  readonly #v6: Network[] = [];

  /** Compiles normalised CIDR prefixes ("127.0.0.1/32", "::1/128"), as config validation leaves them. Throws TypeError on anything else. */
  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const slash = cidr.indexOf('/');
      const bytes = ipToBytes(cidr.slice(0, slash));
      const net = { bytes, bits: Number(cidr.slice(slash + 1)) };
      (bytes.length === 4 ? this.#v4 : this.#v6).push(net);
    }
  }

  /** Returns true when the 4- or 16-byte address falls in one of the networks. */
  allows(address: Uint8Array): boolean {
    const list = address.length === 4 ? this.#v4 : this.#v6;
    for (let i = 0; i < list.length; i++) {
      if (inPrefix(address, list[i])) return true;
    }
    return false;
  }
}

function inPrefix(address: Uint8Array, net: Network): boolean {
  const whole = net.bits >> 3;
  for (let i = 0; i < whole; i++) {
    if (address[i] !== net.bytes[i]) return false;
  }
  const rest = net.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole] & mask) === (net.bytes[whole] & mask);
}

// A reload hands over a new, frozen config: the array's identity says whether to recompile.
let cachedNetworks: readonly string[] | null = null;
let cachedAllowlist: Allowlist = new Allowlist([]);

/** Returns the compiled allowlist for a config's api.allowed_networks, compiling it only when the list changed. */
export function allowlistFor(networks: readonly string[]): Allowlist {
  if (networks !== cachedNetworks) {
    cachedAllowlist = new Allowlist(networks);
    cachedNetworks = networks;
  }
  return cachedAllowlist;
}

/**
 * Finds the address a request comes from: the socket peer, or with
 * `trustProxy` the address the proxy in front of us saw: the last
 * X-Forwarded-For element (the one that proxy added; every element before it
 * came from the client, which can write anything there) and X-Real-IP, which
 * must agree when both are sent (a proxy that sets one passes the other on as
 * the client wrote it); without either header the peer. A proxy header that is
 * not an IP literal is an error, never a fallback to the peer: the peer is
 * then the proxy, which is likely allowed, and falling back would let anyone in.
 */
export function findClientAddress(peer: string | undefined, headers: IncomingHttpHeaders, trustProxy: boolean): ClientAddress {
  if (trustProxy) {
    const forwarded = headers['x-forwarded-for'];
    const real = headers['x-real-ip'];
    let fromForwarded: ClientAddress | null = null;
    if (typeof forwarded === 'string' && forwarded !== '') {
      // Node joins repeated X-Forwarded-For headers with ", ", so the last element is still the nearest proxy's.
      fromForwarded = fromText(forwarded.slice(forwarded.lastIndexOf(',') + 1).trim(), 'the last X-Forwarded-For element');
      if ('error' in fromForwarded) return fromForwarded;
    }
    if (typeof real === 'string' && real !== '') {
      const fromReal = fromText(real.trim(), 'X-Real-IP');
      if ('error' in fromReal || fromForwarded === null) return fromReal;
      if (fromReal.address !== fromForwarded.address) {
        return { error: `X-Real-IP ${fromReal.address} and the last X-Forwarded-For element ${fromForwarded.address} disagree (the proxy sets one of them; the other came from the client)` };
      }
    }
    if (fromForwarded !== null) return fromForwarded;
  }
  if (peer === undefined) return { error: 'the connection has no peer address' };
  return fromText(peer, 'the peer address');
}

function fromText(text: string, what: string): ClientAddress {
  const ip = parseIp(text);
  if ('error' in ip) return { error: `${what} ${JSON.stringify(text)} is not an IP address` };
  return { address: ip.address, bytes: ipToBytes(ip.address) };
}

/**
 * Finds why a request names a host this API is not reached by, or returns
 * null when it names none other: Host, and with `trustProxy` every element of
 * X-Forwarded-Host and every host= of Forwarded (the name the browser used,
 * when a proxy passes its upstream's address as Host). Accepted: an IP literal (a bracketed one for
 * IPv6), "localhost", or a name of `allowed` (lower case, no trailing dot, as
 * config validation leaves api.allowed_hosts), each with an optional port.
 * No Host at all (HTTP/1.0) is accepted: every browser sends one.
 *
 * Why: a web page whose DNS name the attacker makes resolve to this API's
 * address (DNS rebinding) is of the same origin as the API, so the browser
 * lets it read every answer and the cross-origin write check sees a
 * same-origin request; its requests still carry the page's name as Host.
 */
export function findHostProblem(headers: IncomingHttpHeaders, allowed: readonly string[], trustProxy: boolean): string | null {
  const host = headers.host;
  if (host !== undefined) {
    const problem = hostValueProblem(host, allowed, 'Host');
    if (problem !== null) return problem;
  }
  if (!trustProxy) return null;
  const forwarded = headers['x-forwarded-host'];
  if (typeof forwarded === 'string') {
    // Node joins repeated X-Forwarded-Host headers with ", "; a chain of proxies appends one name each.
    for (const element of forwarded.split(',')) {
      const value = element.trim();
      if (value === '') continue;
      const problem = hostValueProblem(value, allowed, 'X-Forwarded-Host');
      if (problem !== null) return problem;
    }
  }
  // RFC 7239 carries the same name as host= (HAProxy's "option forwarded", Envoy, nginx by hand). Checking it can only
  // refuse more, so a client that writes one itself gains nothing; a proxy that uses it instead of X-Forwarded-Host
  // would otherwise let a rebound name through.
  const standard = headers.forwarded;
  if (typeof standard === 'string') {
    const hosts = forwardedHosts(standard);
    if (typeof hosts === 'string') return hosts;
    for (const value of hosts) {
      const problem = hostValueProblem(value, allowed, 'Forwarded host');
      if (problem !== null) return problem;
    }
  }
  return null;
}

/**
 * Returns the host= values of a Forwarded header (RFC 7239 §4: elements
 * separated by ",", pairs by ";", each value a token or a quoted string),
 * unquoted, in order; or why the header is not of that form.
 */
function forwardedHosts(header: string): string[] | string {
  const hosts: string[] = [];
  const bad = (what: string, at: number): string =>
    `Forwarded ${JSON.stringify(header.length > MAX_SHOWN_HOST ? `${header.slice(0, MAX_SHOWN_HOST)}…` : header)}: ${what} at character ${at + 1}, expected RFC 7239 pairs such as for=192.0.2.60;host=gslb.example.net;proto=https, elements separated by ","`;
  let i = 0;
  const skipSpace = (): void => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  while (i < header.length) {
    skipSpace();
    if (header[i] === ',' || header[i] === ';') {
      i++;
      continue;
    }
    if (i >= header.length) break;
    const start = i;
    while (i < header.length && TOKEN_CHAR.test(header[i])) i++;
    const name = header.slice(start, i).toLowerCase();
    if (name === '' || header[i] !== '=') return bad(name === '' ? `${JSON.stringify(header[i])} where a parameter name belongs` : `parameter ${JSON.stringify(name)} without "="`, i);
    i++;
    let value = '';
    if (header[i] === '"') {
      const open = i;
      i++;
      for (;;) {
        if (i >= header.length) return bad('a quoted value that is not closed', open);
        const c = header[i];
        if (c === '"') break;
        if (c === '\\' && i + 1 < header.length) i++;
        value += header[i];
        i++;
      }
      i++;
    } else {
      // A token by the RFC; read up to the next separator, since proxies leave host=name:port unquoted.
      const from = i;
      while (i < header.length && !',; \t"'.includes(header[i])) i++;
      value = header.slice(from, i);
      if (value === '') return bad(`an empty value of ${JSON.stringify(name)}`, i);
    }
    if (name === 'host') hosts.push(value);
    skipSpace();
    if (i < header.length && header[i] !== ',' && header[i] !== ';') return bad(`${JSON.stringify(header[i])} after the value of ${JSON.stringify(name)}`, i);
  }
  return hosts;
}

/** A tchar of RFC 9110 §5.6.2 (what a parameter name or an unquoted value is made of). */
const TOKEN_CHAR = /^[!#$%&'*+.^_`|~0-9A-Za-z-]$/;

/** Longest Host value quoted back in a message; a header may be up to 16 KiB. */
const MAX_SHOWN_HOST = 300;

function hostValueProblem(value: string, allowed: readonly string[], header: string): string | null {
  const name = hostName(value);
  if (name !== null) {
    if (!name.startsWith('[') && 'error' in parseIp(name)) {
      const lower = asciiLower(name.endsWith('.') ? name.slice(0, -1) : name);
      if (lower !== 'localhost' && !allowed.includes(lower)) {
        const n = normaliseDomainName(name);
        const fix = 'error' in n
          ? 'expected a host name, an IPv4 address or an IPv6 address in brackets, with an optional :PORT'
          : `if clients reach the API by this name, add ${JSON.stringify(n.name)} to api.allowed_hosts`;
        return `${header} ${JSON.stringify(value)} is not an IP address, "localhost" or a name in api.allowed_hosts (a web page whose name is made to resolve to this API, by DNS rebinding, sends such a ${header}); ${fix}`;
      }
    }
    return null;
  }
  const shown = value.length > MAX_SHOWN_HOST ? `${value.slice(0, MAX_SHOWN_HOST)}…` : value;
  return `${header} ${JSON.stringify(shown)} is not an IP address, "localhost" or a name in api.allowed_hosts; expected a host name, an IPv4 address or an IPv6 address in brackets, with an optional :PORT`;
}

/**
 * Returns the host part of a Host value (RFC 9110 §7.2: uri-host [":" port]):
 * a bracketed IPv6 literal kept with its brackets when valid, else the text
 * before the port; null when the value is not of that form (an IPv6 address
 * without brackets, a port that is not a number, nothing before the port).
 */
function hostName(value: string): string | null {
  let name: string;
  let rest: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0) return null;
    const ip = parseIp(value.slice(1, end));
    if ('error' in ip) return null;
    name = value.slice(0, end + 1);
    rest = value.slice(end + 1);
  } else {
    const colon = value.indexOf(':');
    name = colon < 0 ? value : value.slice(0, colon);
    rest = colon < 0 ? '' : value.slice(colon);
  }
  if (name === '' || (rest !== '' && !/^:\d{1,5}$/.test(rest))) return null;
  return name;
}

let cachedToken: string | null = null;
let cachedDigest: Buffer = Buffer.alloc(0);

/**
 * Checks an Authorization header against the configured token. Compares
 * SHA-256 digests with timingSafeEqual, so neither the token's bytes nor its
 * length leak through timing. Returns 'missing', 'wrong' or 'ok'.
 */
export function checkBearer(header: string | undefined, token: string): 'missing' | 'wrong' | 'ok' {
  if (header === undefined) return 'missing';
  // RFC 7235 §2.1: the scheme name is case-insensitive; RFC 6750 §2.1: "Bearer" SP token.
  if (header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return 'missing';
  if (token !== cachedToken) {
    cachedDigest = sha256(token);
    cachedToken = token;
  }
  // Node hands header values over as latin1, one char per byte: back to those bytes, so a token with
  // non-ASCII characters, sent as UTF-8 (curl), matches the UTF-8 of the configured one.
  return timingSafeEqual(sha256(Buffer.from(header.slice(7).trim(), 'latin1')), cachedDigest) ? 'ok' : 'wrong';
}

function sha256(data: string | Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}
