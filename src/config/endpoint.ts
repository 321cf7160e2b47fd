// Cold path, main thread. Parses HOST:PORT strings (listen addresses, peers)
// the way Go's net.SplitHostPort reads them: IPv6 hosts go in brackets.

import { normaliseDomainName } from './domain-name.ts';
import { parseIp } from './ip.ts';

/** A parsed HOST:PORT; `host` is null for ":PORT" (all interfaces). */
export interface Endpoint {
  readonly host: string | null;
  readonly port: number;
}

/** How strict parseEndpoint is about the host part. */
export interface EndpointRules {
  /** 'ip': the host must be an IP literal; 'name': an IP literal or a domain name. */
  readonly host: 'ip' | 'name';
  /** Whether ":PORT" (no host) is allowed. */
  readonly allowEmptyHost: boolean;
  /** Lowest port accepted: 0 lets the OS choose (listeners), 1 for peers. */
  readonly minPort: number;
}

/**
 * Parses "HOST:PORT", "[IPV6]:PORT" or (if allowed) ":PORT". The host is
 * returned normalised (IP literal in normal form without brackets, or a
 * lower-case name). Never throws; returns `{ error }` saying what is wrong.
 */
export function parseEndpoint(text: string, rules: EndpointRules): Endpoint | { readonly error: string } {
  const quoted = JSON.stringify(text);
  const example = rules.host === 'ip' ? '"127.0.0.1:53", "[::1]:53"' : '"10.0.0.5:7946", "overwatch-1.example.com:7946"';
  const expected = `expected HOST:PORT such as ${example}${rules.allowEmptyHost ? ' or ":53"' : ''}`;
  let hostText: string;
  let portText: string;
  let bracketed = false;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return { error: `${quoted} is not HOST:PORT, ${expected}` };
    hostText = text.slice(1, close);
    portText = text.slice(close + 2);
    bracketed = true;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { error: `${quoted} has no port, ${expected}` };
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText.includes(':')) return { error: `${quoted} has an IPv6 host without brackets, ${expected}` };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535 || Number(portText) < rules.minPort) {
    return { error: `${quoted} has the port ${JSON.stringify(portText)}, expected a port from ${rules.minPort} to 65535` };
  }
  const port = Number(portText);
  if (hostText === '') {
    if (bracketed || !rules.allowEmptyHost) return { error: `${quoted} has no host, ${expected}` };
    return { host: null, port };
  }
  const ip = parseIp(hostText);
  if (!('error' in ip)) {
    // Brackets are for IPv6 text only, as in Go's net.SplitHostPort.
    if (bracketed && !hostText.includes(':')) return { error: `${quoted} is not HOST:PORT, ${expected}` };
    return { host: ip.address, port };
  }
  if (rules.host === 'name' && !bracketed) {
    const name = normaliseDomainName(hostText);
    if (!('error' in name)) return { host: name.name, port };
  }
  const what = rules.host === 'ip' ? 'an IP literal' : 'an IP literal or a host name';
  return { error: `${quoted} has the host ${JSON.stringify(hostText)}, which is not ${what}; ${expected}` };
}
