// Any thread, cold path. IP literal helpers shared by config, snapshot and tests.

import { isIPv4, isIPv6 } from 'node:net';

/** Converts an IPv4 or IPv6 literal to its 4 or 16 network-order bytes. Throws TypeError on anything else. */
export function ipToBytes(address: string): Uint8Array {
  if (isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  if (!isIPv6(address)) throw new TypeError(`"${address}" is not an IP literal`);
  let text = address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded dotted quad ("::ffff:1.2.3.4") becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...new Array<string>(fill).fill('0'), ...restGroups];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const v = parseInt(groups[i], 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

/** Formats eight 16-bit groups per RFC 5952 §4: lower case, no leading zeros, the first longest run of two or more zero groups as "::". */
export function formatIpv6Groups(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1; // RFC 5952 §4.2.2: a single zero group is never shortened
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Formats 4 or 16 network-order bytes at `off` as an IP literal (the inverse of ipToBytes). */
export function formatIpBytes(bytes: Uint8Array, off: number, len: 4 | 16 | number): string {
  if (len === 4) return `${bytes[off]}.${bytes[off + 1]}.${bytes[off + 2]}.${bytes[off + 3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[off + i * 2] << 8) | bytes[off + i * 2 + 1]);
  return formatIpv6Groups(groups);
}

/** Formats host and port as "192.0.2.1:53" or, for IPv6, "[2001:db8::1]:53". */
export function formatAddress(host: string, port: number): string {
  // Joined: one flat string, not a cons-string tree (the registry keeps one per server; src/registry/keys.ts).
  return host.includes(':') ? ['[', host, ']:', port].join('') : [host, port].join(':');
}

/**
 * Says why `address` (an IP literal, as parseIp or node:net writes it) can
 * never be a useful answer or health-check target: it is the unspecified
 * address (0.0.0.0, ::), the IPv4 limited broadcast (255.255.255.255) or a
 * multicast address (224.0.0.0/4, ff00::/8). Returns that message, naming the
 * address and what is expected, or null for any other address: loopback and
 * private ranges stay allowed (tests and labs answer them). Throws TypeError
 * for text that is not an IP literal.
 */
export function unusableAddressProblem(address: string): string | null {
  const b = ipToBytes(address);
  let what: string | null = null;
  if (b.every((x) => x === 0)) what = 'the unspecified address (it names no host)';
  else if (b.length === 4 && b.every((x) => x === 255)) what = 'the IPv4 broadcast address';
  // RFC 5771: 224.0.0.0/4; RFC 4291 §2.7: ff00::/8.
  else if (b.length === 4 ? (b[0] & 0xf0) === 0xe0 : b[0] === 0xff) what = `a multicast address (${b.length === 4 ? '224.0.0.0/4' : 'ff00::/8'})`;
  if (what === null) return null;
  return `${JSON.stringify(address)} is ${what}, which no client can connect to, expected a unicast address (loopback and private addresses are fine)`;
}
