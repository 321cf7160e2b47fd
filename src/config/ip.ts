// Cold path, main thread. Parses IP literals and CIDR prefixes from config text
// and normalises them: IPv6 to RFC 5952 form, IPv4-mapped IPv6 to plain IPv4.

import { formatIpBytes, formatIpv6Groups, ipToBytes } from '../lib/ip.ts';

/** A parsed IP literal in normal form. */
export interface IpAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** The result of parsing an IP literal: the normalised address, or what is wrong with the text. */
export type IpResult = IpAddress | { readonly error: string };

const IPV4_EXPECTED = 'expected an IPv4 or IPv6 literal such as "192.0.2.10" or "2001:db8::10"';

/**
 * Parses an IPv4 dotted-quad or an IPv6 literal (no brackets, no zone index)
 * and normalises it. `::ffff:a.b.c.d` becomes the IPv4 address a.b.c.d, as in
 * the Go original. Never throws.
 */
export function parseIp(text: string): IpResult {
  const notIp = { error: `${JSON.stringify(text)} is not an IP address, ${IPV4_EXPECTED}` };
  if (text.includes('%')) {
    return { error: `${JSON.stringify(text)} has a zone index ("%..."), expected an IP literal without one (link-local scopes are not supported)` };
  }
  if (text.includes(':')) {
    const groups = parseIpv6Groups(text);
    if (groups === null) return notIp;
    // RFC 4291 §2.5.5.2: IPv4-mapped addresses are ::ffff:0:0/96.
    if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
      const [hi = 0, lo = 0] = groups.slice(6);
      return { address: `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`, family: 4 };
    }
    return { address: formatIpv6Groups(groups), family: 6 };
  }
  const octets = parseIpv4Octets(text);
  if (octets === null) return notIp;
  return { address: octets.join('.'), family: 4 };
}

/**
 * Parses a prefix in CIDR notation ("10.0.0.0/8", "2001:db8::/32") and returns it
 * with the address normalised; host bits may be set (as Go's net.ParseCIDR allows).
 * Never throws.
 */
export function parseCidr(text: string): { readonly cidr: string } | { readonly error: string } {
  const expected = 'expected a CIDR prefix such as "10.0.0.0/8" or "2001:db8::/32"';
  const slash = text.indexOf('/');
  if (slash < 0) return { error: `${JSON.stringify(text)} has no prefix length, ${expected} (write /32 or /128 for one address)` };
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if ('error' in ip || !/^\d{1,3}$/.test(lenText)) return { error: `${JSON.stringify(text)} is not a CIDR prefix, ${expected}` };
  // As for octets: "/08" is read as 8 by some tools and as an error (or octal) by others.
  if (lenText.length > 1 && lenText.startsWith('0')) return { error: `${JSON.stringify(text)} has a prefix length with a leading zero, ${expected}` };
  let len = Number(lenText);
  const writtenAsIpv6 = text.slice(0, slash).includes(':');
  const max = writtenAsIpv6 ? 128 : 32;
  if (len > max) return { error: `${JSON.stringify(text)} has a prefix length over ${max}, ${expected}` };
  if (writtenAsIpv6 && ip.family === 4) {
    // An IPv4-mapped prefix becomes the IPv4 prefix it covers; shorter ones cover more than ::ffff:0:0/96.
    if (len < 96) return { error: `${JSON.stringify(text)} is an IPv4-mapped prefix shorter than /96, ${expected}` };
    len -= 96;
  }
  return { cidr: `${ip.address}/${len}` };
}

/**
 * Returns the network a normalised CIDR (parseCidr's output) names, host bits
 * cleared: "10.1.2.3/8" → "10.0.0.0/8". Throws TypeError for text parseCidr
 * did not produce.
 */
export function networkOfCidr(cidr: string): string {
  const slash = cidr.indexOf('/');
  const bytes = ipToBytes(cidr.slice(0, slash));
  const len = Number(cidr.slice(slash + 1));
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    bytes[i] &= (0xff00 >> keep) & 0xff;
  }
  return `${formatIpBytes(bytes, 0, bytes.length)}/${len}`;
}

/** Returns the four octets of a strict dotted-quad, or null (leading zeros are refused: they read as octal in some tools). */
function parseIpv4Octets(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const octets: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    octets.push(n);
  }
  return octets;
}

/** Returns the eight 16-bit groups of an IPv6 literal (RFC 4291 §2.2 text forms), or null. */
function parseIpv6Groups(text: string): number[] | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = parseGroupList(halves[0] ?? '', halves.length === 1);
  if (head === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const tail = parseGroupList(halves[1] ?? '', true);
  if (tail === null) return null;
  // "::" stands for at least one zero group.
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** Parses "a:b:c" (possibly empty) into groups; a trailing dotted quad counts as two groups when allowed. */
function parseGroupList(text: string, mayEndInIpv4: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] ?? '';
    if (i === parts.length - 1 && mayEndInIpv4 && p.includes('.')) {
      const octets = parseIpv4Octets(p);
      if (octets === null) return null;
      const [a = 0, b = 0, c = 0, d = 0] = octets;
      groups.push((a << 8) | b, (c << 8) | d);
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
    groups.push(parseInt(p, 16));
  }
  return groups;
}

