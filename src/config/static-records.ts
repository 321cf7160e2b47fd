// Cold path, main thread. Parses the static records of a zone (dns.zones[].records),
// one zone-file line each ("www 300 IN CNAME app", RFC 1035 §5.1 presentation
// form without $ directives, parentheses or comments), into typed records the
// snapshot compiler encodes. Names are relative to the zone unless they end in
// a dot; "@" is the apex. Every problem is returned as text for the caller to
// place at the record's file:line:col.

import { normaliseDomainName } from './domain-name.ts';
import { EnclosingNames, isAtOrBelow, parentName } from '../dns/names.ts';
import { parseIp } from './ip.ts';
import { unusableAddressProblem } from '../lib/ip.ts';
import type { StaticRdata, StaticRecordConfig } from './types.ts';

/** The record types a static line may hold. */
export const STATIC_TYPES = ['A', 'AAAA', 'CNAME', 'MX', 'TXT', 'CAA', 'SRV', 'NS', 'PTR'] as const;

/** The longest character-string of a TXT record (RFC 1035 §3.3: one length octet). */
const MAX_STRING_LEN = 255;
/** The largest RDATA (RFC 1035 §3.2.1: RDLENGTH is 16 bits; kept well inside a TCP message). */
const MAX_RDATA_LEN = 65_000;

/** A parsed record, or what is wrong with the line. */
export type StaticRecordResult = { readonly record: StaticRecordConfig } | { readonly error: string };

const EXPECTED_LINE = 'expected "OWNER [TTL] [IN] TYPE RDATA" such as "www 300 IN CNAME app" or "@ MX 10 mail"';

/**
 * Splits a line into tokens: runs of non-blank characters, or "quoted strings"
 * with \" \\ and \DDD escapes (RFC 1035 §5.1). A quoted token keeps its
 * decoded bytes as a latin1 string and is marked quoted. Returns an error for
 * an unterminated quote or a bad escape.
 */
function tokenize(line: string): { tokens: { text: string; quoted: boolean }[] } | { error: string } {
  const tokens: { text: string; quoted: boolean }[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === ';') break; // a comment runs to the end of the line
    if (c === '(' || c === ')') return { error: 'has parentheses; write each record on one line' };
    if (c !== '"') {
      let j = i;
      while (j < line.length && line[j] !== ' ' && line[j] !== '\t') j++;
      tokens.push({ text: line.slice(i, j), quoted: false });
      i = j;
      continue;
    }
    // A quoted string: decode to bytes (UTF-8 for plain characters).
    const bytes: number[] = [];
    i++;
    let closed = false;
    while (i < line.length) {
      const ch = line[i];
      if (ch === '"') {
        closed = true;
        i++;
        break;
      }
      if (ch === '\\') {
        const next = line.slice(i + 1, i + 4);
        if (/^[0-9]{3}$/.test(next)) {
          const v = Number(next);
          if (v > 255) return { error: `has the escape \\${next}, expected \\DDD of at most 255` };
          bytes.push(v);
          i += 4;
          continue;
        }
        if (i + 1 >= line.length) return { error: 'ends in a lone backslash inside a quoted string' };
        bytes.push(...Buffer.from(line[i + 1], 'utf8'));
        i += 2;
        continue;
      }
      const cp = line.codePointAt(i) as number;
      const s = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(s, 'utf8'));
      i += s.length;
    }
    if (!closed) return { error: 'has a quoted string without its closing quote' };
    tokens.push({ text: Buffer.from(bytes).toString('latin1'), quoted: true });
  }
  return { tokens };
}

/** Resolves an owner or rdata name against the zone: "@" is the apex, a trailing dot is absolute, else relative. */
function resolveName(text: string, apex: string, what: string): { name: string } | { error: string } {
  if (text === '@') return { name: apex };
  const absolute = text.endsWith('.');
  const full = absolute ? text : `${text}.${apex}`;
  const result = normaliseDomainName(full);
  if ('error' in result) return { error: `${what} ${JSON.stringify(text)}: ${result.error}` };
  return result;
}

function uint(text: string | undefined, max: number, what: string): number | string {
  if (text === undefined || !/^[0-9]+$/.test(text)) return `${what} ${text === undefined ? 'is missing' : JSON.stringify(text) + ' is not a number'}, expected a whole number 0..${max}`;
  const v = Number(text);
  if (v > max) return `${what} ${v} is too large, expected a whole number 0..${max}`;
  return v;
}

/**
 * Parses one static record line of zone `apex`; `defaultTtlSec` is the TTL of
 * a line without one. Names inside the rdata are resolved like the owner.
 * The owner must lie inside the zone. Never throws.
 */
export function parseStaticRecord(line: string, apex: string, defaultTtlSec: number, maxTtlSec: number): StaticRecordResult {
  const tok = tokenize(line);
  if ('error' in tok) return { error: `${JSON.stringify(line)} ${tok.error}` };
  const tokens = tok.tokens;
  const fail = (why: string): StaticRecordResult => ({ error: `${JSON.stringify(line)}: ${why}` });
  if (tokens.length < 3) return fail(`too few fields, ${EXPECTED_LINE}`);
  if (tokens[0].quoted) return fail('the owner is quoted, expected a name');
  const owner = resolveName(tokens[0].text, apex, 'owner');
  if ('error' in owner) return fail(owner.error);
  if (!isAtOrBelow(owner.name, apex)) return fail(`owner ${owner.name} is outside the zone ${apex}, expected a name equal to or below it`);
  let i = 1;
  let ttlSec = defaultTtlSec;
  // TTL and class may come in either order (RFC 1035 §5.1), each at most once: a second one is a typo.
  const once = 'expected at most one TTL and one class before the type';
  let ttlText: string | null = null;
  let classText: string | null = null;
  while (i < tokens.length && !tokens[i].quoted) {
    const t = tokens[i].text;
    if (/^[0-9]+$/.test(t)) {
      if (ttlText !== null) return fail(`a second TTL ${t} after ${ttlText}, ${once}`);
      const v = uint(t, maxTtlSec, 'TTL');
      if (typeof v === 'string') return fail(v);
      ttlSec = v;
      ttlText = t;
    } else if (/^(IN|CH|HS|CLASS[0-9]+)$/i.test(t)) {
      if (classText !== null) return fail(`a second class ${t}, ${once}`);
      if (t.toUpperCase() !== 'IN') return fail(`class ${t} is not served, expected IN`);
      classText = t;
    } else {
      break;
    }
    i++;
  }
  if (i >= tokens.length) return fail(`the type is missing, ${EXPECTED_LINE}`);
  const type = tokens[i].text.toUpperCase();
  i++;
  if (!(STATIC_TYPES as readonly string[]).includes(type)) return fail(`type ${tokens[i - 1].text} is not one of ${STATIC_TYPES.join(', ')}`);
  const args = tokens.slice(i);
  const rdata = parseRdata(type as StaticRdata['type'], args, apex);
  if (typeof rdata === 'string') return fail(rdata);
  return { record: { owner: owner.name, ttlSec, rdata, text: line.trim() } };
}

/** Parses the rdata fields of `type`; returns the rdata or what is wrong. */
function parseRdata(type: StaticRdata['type'], args: { text: string; quoted: boolean }[], apex: string): StaticRdata | string {
  const count = (n: number, form: string): string | null => (args.length === n ? null : `${type} takes ${n} field${n === 1 ? '' : 's'} (${form}), got ${args.length}`);
  const name = (text: string, what: string): string | { error: string } => {
    const r = resolveName(text, apex, what);
    return 'error' in r ? r : r.name;
  };
  switch (type) {
    case 'A':
    case 'AAAA': {
      const bad = count(1, 'an address');
      if (bad !== null) return bad;
      const ip = parseIp(args[0].text);
      const family = type === 'A' ? 4 : 6;
      // parseIp turns ::ffff:a.b.c.d into a.b.c.d (servers are addressed that way); written as an AAAA's
      // data it is an IPv6 address like any other, kept in RFC 5952 §5 form.
      if (type === 'AAAA' && !('error' in ip) && ip.family === 4 && args[0].text.includes(':')) return { type, address: `::ffff:${ip.address}` };
      if ('error' in ip || ip.family !== family) return `${JSON.stringify(args[0].text)} is not an IPv${family} address, expected one for an ${type} record`;
      return unusableAddressProblem(ip.address) ?? { type, address: ip.address };
    }
    case 'CNAME':
    case 'NS':
    case 'PTR': {
      const bad = count(1, 'a name');
      if (bad !== null) return bad;
      const target = name(args[0].text, 'target');
      if (typeof target !== 'string') return target.error;
      return { type, target };
    }
    case 'MX': {
      const bad = count(2, 'PREFERENCE EXCHANGE');
      if (bad !== null) return bad;
      const preference = uint(args[0].text, 65535, 'preference');
      if (typeof preference === 'string') return preference;
      // "." is the null MX of RFC 7505: the domain accepts no mail.
      if (args[1].text === '.') return { type, preference, exchange: '' };
      const exchange = name(args[1].text, 'exchange');
      if (typeof exchange !== 'string') return exchange.error;
      return { type, preference, exchange };
    }
    case 'SRV': {
      const bad = count(4, 'PRIORITY WEIGHT PORT TARGET');
      if (bad !== null) return bad;
      const nums: number[] = [];
      for (const [k, what] of [[0, 'priority'], [1, 'weight'], [2, 'port']] as const) {
        const v = uint(args[k].text, 65535, what);
        if (typeof v === 'string') return v;
        nums.push(v);
      }
      // "." means the service is not offered here (RFC 2782).
      if (args[3].text === '.') return { type, priority: nums[0], weight: nums[1], port: nums[2], target: '' };
      const target = name(args[3].text, 'target');
      if (typeof target !== 'string') return target.error;
      return { type, priority: nums[0], weight: nums[1], port: nums[2], target };
    }
    case 'TXT': {
      if (args.length === 0) return 'TXT needs at least one string';
      // Each string longer than a character-string may hold is cut into 255-octet pieces.
      const strings: string[] = [];
      let total = 0;
      for (const a of args) {
        const bytes = a.quoted ? a.text : Buffer.from(a.text, 'utf8').toString('latin1');
        if (bytes.length === 0) strings.push('');
        for (let off = 0; off < bytes.length; off += MAX_STRING_LEN) strings.push(bytes.slice(off, off + MAX_STRING_LEN));
        total += bytes.length + Math.ceil(bytes.length / MAX_STRING_LEN);
      }
      if (total > MAX_RDATA_LEN) return `TXT data of ${total} octets is too large, expected at most ${MAX_RDATA_LEN}`;
      return { type, strings };
    }
    case 'CAA': {
      const bad = count(3, 'FLAGS TAG "VALUE"');
      if (bad !== null) return bad;
      const flags = uint(args[0].text, 255, 'flags');
      if (typeof flags === 'string') return flags;
      const tag = args[1].text;
      // RFC 8659 §4.1: the tag is 1..15 letters and digits.
      if (!/^[A-Za-z0-9]{1,15}$/.test(tag)) return `CAA tag ${JSON.stringify(tag)} is not 1 to 15 letters and digits (issue, issuewild, iodef)`;
      const value = args[2].quoted ? args[2].text : Buffer.from(args[2].text, 'utf8').toString('latin1');
      return { type, flags, tag: tag.toLowerCase(), value };
    }
  }
}

/** What the checks need of the config, already reduced to plain values (apexes normalised). */
export interface StaticRecordContext {
  /** Zones in order: apex, the TTL (seconds) of a record without one, and each record line with its key path. */
  readonly zones: readonly { readonly apex: string; readonly defaultTtlSec: number; readonly lines: readonly { readonly text: string; readonly path: readonly (string | number)[] }[] }[];
  /** GSLB domain names, each with its key path. */
  readonly domains: readonly { readonly name: string; readonly path: readonly (string | number)[] }[];
  /** Name-server host names that carry addresses (answered as A/AAAA already). */
  readonly nameserverHosts: ReadonlySet<string>;
  readonly maxTtlSec: number;
  /** CNAME pools: GSLB domains whose servers are CNAME targets, with the targets and the domain's key path. */
  readonly pools: readonly { readonly name: string; readonly targets: readonly string[]; readonly path: readonly (string | number)[] }[];
}

/** A problem at a key path. */
export interface StaticRecordProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** The most CNAMEs one answer follows (CoreDNS plugin/file/lookup.go stops at its 9th pass; so do we at 8). */
export const MAX_CNAME_CHAIN = 8;

/**
 * Checks the static records of every zone: each line parses; an owner
 * belongs to the zone it is listed in (not a more specific zone of ours); a
 * CNAME is alone at its name; no static record sits at a GSLB domain's name,
 * except types other than A/AAAA/CNAME/NS at a domain that is a zone apex; NS
 * only below the apex (a delegation), with nothing at or below the cut but
 * the NS and glue addresses, and no GSLB domain or zone of ours there; no
 * A/AAAA beside a name server's configured addresses; one TTL per RRset; no
 * record twice; CNAME chains inside our data end within MAX_CNAME_CHAIN and
 * never loop. Returns every problem; never throws.
 */
export function checkStaticRecords(ctx: StaticRecordContext): StaticRecordProblem[] {
  const problems: StaticRecordProblem[] = [];
  const apexes = ctx.zones.map((z) => z.apex);
  const zonesOf = new EnclosingNames(apexes);
  const domainPath = new Map(ctx.domains.map((d) => [d.name, d.path]));
  type Parsed = { record: StaticRecordConfig; path: readonly (string | number)[] };
  const all: Parsed[] = [];
  for (const zone of ctx.zones) {
    for (const line of zone.lines) {
      const r = parseStaticRecord(line.text, zone.apex, zone.defaultTtlSec, ctx.maxTtlSec);
      if ('error' in r) {
        problems.push({ path: line.path, message: r.error });
        continue;
      }
      const owner = r.record.owner;
      const closest = apexes[zonesOf.closest(owner)];
      if (closest !== zone.apex) {
        problems.push({ path: line.path, message: `owner ${owner} belongs to the zone ${closest} of dns.zones, expected the record in that zone's records` });
        continue;
      }
      all.push({ record: r.record, path: line.path });
    }
  }
  // Delegations: NS below an apex.
  const cuts = new Set<string>();
  for (const p of all) {
    if (p.record.rdata.type !== 'NS') continue;
    if (zonesOf.has(p.record.owner)) {
      problems.push({ path: p.path, message: `NS at the zone apex ${p.record.owner}: the apex's name servers are dns.nameservers (or the zone's nameservers), expected NS records only below the apex (a delegation)` });
      continue;
    }
    cuts.add(p.record.owner);
  }
  const cutList = [...cuts];
  const cutsOf = new EnclosingNames(cutList);
  /** The closest delegation at or above `name` (strictly above with `strict`), or null. */
  const cutAbove = (name: string, strict: boolean): string | null => {
    const i = cutsOf.closest(name, strict);
    return i < 0 ? null : cutList[i];
  };
  // Our zones at or below each delegation: each apex's own ancestors, looked up.
  const zonesBelowCut = new Map<string, string[]>();
  for (const apex of apexes) {
    for (let n = apex; n !== ''; n = parentName(n)) {
      if (!cuts.has(n)) continue;
      const list = zonesBelowCut.get(n);
      if (list === undefined) zonesBelowCut.set(n, [apex]);
      else list.push(apex);
    }
  }
  for (const cut of cuts) {
    for (const apex of zonesBelowCut.get(cut) ?? []) {
      problems.push({ path: all.find((p) => p.record.owner === cut && p.record.rdata.type === 'NS')?.path ?? [], message: `delegates ${cut}, but ${apex} at or below it is a zone of ours, expected either the delegation or the zone` });
    }
  }
  for (const d of ctx.domains) {
    const cut = cutAbove(d.name, false);
    if (cut !== null) problems.push({ path: d.path, message: `"${d.name}" is at or below the delegation ${cut} (an NS record in dns.zones records), expected GSLB names outside delegated zones` });
  }
  const byName = new Map<string, Parsed[]>();
  for (const p of all) {
    const owner = p.record.owner;
    const type = p.record.rdata.type;
    const cut = cutAbove(owner, true);
    if (cut !== null && type !== 'A' && type !== 'AAAA') {
      problems.push({ path: p.path, message: `${owner} is below the delegation ${cut}, where only glue addresses (A, AAAA) may be written, not ${type}` });
      continue;
    }
    if (cuts.has(owner) && type !== 'NS') {
      problems.push({ path: p.path, message: `${owner} is a delegation (NS); its other data lives in the child zone, expected no ${type} here` });
      continue;
    }
    const dPath = domainPath.get(owner);
    if (dPath !== undefined) {
      const atApex = zonesOf.has(owner);
      if (!atApex || type === 'A' || type === 'AAAA' || type === 'CNAME') {
        problems.push({
          path: p.path,
          message: atApex
            ? `${owner} is a GSLB domain (domains), which answers its ${type === 'CNAME' ? 'A and AAAA' : type}; expected only other types (MX, TXT, CAA, SRV, PTR) beside it`
            : `${owner} is a GSLB domain (domains); static records may sit beside a GSLB name only at a zone apex, expected another name`,
        });
        continue;
      }
    }
    if ((type === 'A' || type === 'AAAA') && ctx.nameserverHosts.has(owner) && cut === null) {
      problems.push({ path: p.path, message: `${owner} is a name server whose addresses are in nameservers[].addresses, expected its addresses in one place` });
      continue;
    }
    let list = byName.get(owner);
    if (list === undefined) byName.set(owner, (list = []));
    list.push(p);
  }
  for (const [owner, list] of byName) {
    const cname = list.find((p) => p.record.rdata.type === 'CNAME');
    if (cname !== undefined) {
      const other = list.find((p) => p !== cname);
      if (other !== undefined || zonesOf.has(owner) || domainPath.has(owner)) {
        problems.push({ path: cname.path, message: `${owner} has a CNAME beside other data (${other === undefined ? 'the zone apex\'s SOA and NS' : other.record.text}); RFC 1034 §3.6.2: a CNAME must be alone at its name` });
      }
    }
    const seenTtl = new Map<string, Parsed>();
    const seenText = new Set<string>();
    for (const p of list) {
      const key = rdataKey(p.record.rdata);
      if (seenText.has(key)) {
        problems.push({ path: p.path, message: `${p.record.text} repeats a record already listed for ${owner}` });
        continue;
      }
      seenText.add(key);
      const first = seenTtl.get(p.record.rdata.type);
      if (first === undefined) seenTtl.set(p.record.rdata.type, p);
      else if (first.record.ttlSec !== p.record.ttlSec) {
        problems.push({ path: p.path, message: `TTL ${p.record.ttlSec} differs from ${first.record.ttlSec} of "${first.record.text}" in the same RRset (RFC 2181 §5.2), expected one TTL per name and type` });
      }
    }
  }
  // CNAME chains inside our data (static CNAMEs and CNAME pools, whose every target is a link): bounded, no loops.
  const links = new Map<string, { targets: readonly string[]; path: readonly (string | number)[] }>();
  for (const p of all) if (p.record.rdata.type === 'CNAME') links.set(p.record.owner, { targets: [p.record.rdata.target], path: p.path });
  for (const pool of ctx.pools) links.set(pool.name, { targets: pool.targets, path: pool.path });
  for (const [start, link] of links) {
    // Depth-first over every path from `start`; the first loop or over-long chain is reported once.
    const problem = chainProblem(start, [start], links);
    if (problem !== null) problems.push({ path: link.path, message: problem });
  }
  return problems;
}

/** The first loop or over-long chain on a path from `path`'s last name, or null. */
function chainProblem(start: string, path: string[], links: ReadonlyMap<string, { targets: readonly string[] }>): string | null {
  const last = path[path.length - 1];
  for (const next of links.get(last)?.targets ?? []) {
    if (!links.has(next)) continue;
    if (path.includes(next)) return `CNAME chain ${[...path, next].join(' → ')} loops, expected a chain that ends at data`;
    if (path.length >= MAX_CNAME_CHAIN) return `CNAME chain from ${start} is longer than ${MAX_CNAME_CHAIN} links (${[...path, next].join(' → ')} …), expected at most ${MAX_CNAME_CHAIN}`;
    const deeper = chainProblem(start, [...path, next], links);
    if (deeper !== null) return deeper;
  }
  return null;
}

/** A record's identity inside its RRset (type and rdata), for duplicate detection. */
function rdataKey(rdata: StaticRdata): string {
  return JSON.stringify(rdata);
}

/** Parses every record of a zone whose lines passed checkStaticRecords(); throws on a line that does not parse (a bug). */
export function buildStaticRecords(lines: readonly string[], apex: string, defaultTtlSec: number, maxTtlSec: number): StaticRecordConfig[] {
  return lines.map((line) => {
    const r = parseStaticRecord(line, apex, defaultTtlSec, maxTtlSec);
    if ('error' in r) throw new Error(`static record of ${apex} passed the checks but does not parse: ${r.error}`);
    return r.record;
  });
}
