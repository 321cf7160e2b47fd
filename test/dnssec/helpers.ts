// Test helper. A small authoritative zone answered by a node:dgram server on
// loopback whose RRSIGs and NSECs come from src/dnssec (sign.ts, denial.ts),
// so real validators (delv, unbound-host, dnspython) can judge them; and the
// checks that say which Debian tool is missing.

import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { QTYPE } from '../../src/dns/constants.ts';
import { nameToWire } from '../../src/dns/names.ts';
import { NXNAME_BITMAP, negativeTtl, nodataBitmap, writeCompactNsecRdata, writeNsec } from '../../src/dnssec/denial.ts';
import { dnskeyRdataOf, dnskeyRecordText, generateZoneKey, signerKeyOf } from '../../src/dnssec/keys.ts';
import type { DnssecKey, DnssecKeyInfo } from '../../src/dnssec/keys.ts';
import { DNSSEC_TYPE, Rrset, SignatureCache, writeRrsig, writeRrsigUncompressed } from '../../src/dnssec/sign.ts';
import type { SignerKey } from '../../src/dnssec/sign.ts';

/**
 * The config of one signed zone (example.test) with one load-balanced name,
 * app.example.test, over `servers` addresses 192.0.2.1… (all in answers), one
 * DNS worker, and overwatch.dnssec.algorithm when `algorithm` is given.
 */
export function signedZoneYaml(opts: { readonly servers?: number; readonly algorithm?: string } = {}): string {
  const n = opts.servers ?? 1;
  const servers = Array.from({ length: n }, (_, i) => `{ address: 192.0.2.${i + 1} }`).join(', ');
  return `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones: [example.test]
  nameservers: [{ name: ns1.example.test, addresses: [192.0.2.53] }]
regions:
  - name: eu
    servers: [${servers}]
domains:
  - { name: app.example.test, regions: [eu], ttl: 30${n > 1 ? `, max_answers: ${n}` : ''} }
${opts.algorithm === undefined ? '' : `overwatch: { dnssec: { algorithm: ${opts.algorithm} } }
`}logging: { level: error }
`;
}

/** Returns false when `command` is on the PATH, else a skip message naming the Debian package that brings it. */
export function missingTool(command: string, debianPackage: string): string | false {
  const r = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return r.status === 0 ? false : `${command} is not installed (Debian package ${debianPackage}; .ci/run installs it)`;
}

const execFileAsync = promisify(execFile);

/** Runs a command without blocking the event loop (a server may answer from this process); never rejects: returns stdout, stderr and any error text. */
export async function tool(cmd: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, args, { timeout: 20_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}`;
  }
}

/**
 * Runs `jobs` (validator runs: each its own process and resolver) at most
 * `limit` at once; resolves with their results in the order of `jobs`,
 * rejects with the first rejection.
 */
export async function runLimited<T>(jobs: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, lane));
  return out;
}

/** A delv trust-anchor file (-a) holding one key as a static key. */
export function delvAnchor(info: Pick<DnssecKeyInfo, 'zone' | 'flags' | 'algorithm' | 'publicKey'>): string {
  return `trust-anchors {\n  "${info.zone}." static-key ${info.flags} 3 ${info.algorithm} "${info.publicKey}";\n};\n`;
}

/** An unbound-host config (-C) that trusts `info` and sends queries for its zone to 127.0.0.1@port. */
export function unboundConfig(info: DnssecKeyInfo, port: number): string {
  return [
    'server:',
    '  do-not-query-localhost: no',
    // .test is a special-use name Unbound answers NXDOMAIN for by default (RFC 6761).
    '  local-zone: "test." nodefault',
    `  trust-anchor: "${dnskeyRecordText(info).replace(/ \d+ IN /, ' ')}"`,
    '  module-config: "validator iterator"',
    '  verbosity: 0',
    'stub-zone:',
    `  name: "${info.zone}"`,
    `  stub-addr: 127.0.0.1@${port}`,
    '',
  ].join('\n');
}

/** The Python that has Debian's python3-dnspython (and python3-cryptography): /usr/bin/python3, not a pyenv shim. */
export const PYTHON = '/usr/bin/python3';

/** Returns false when dnspython with DNSSEC support imports, else a skip message naming the package. */
export function missingDnspython(): string | false {
  if (!existsSync(PYTHON)) return `${PYTHON} is not installed (Debian package python3; .ci/run installs python3-dnspython)`;
  const r = spawnSync(PYTHON, ['-c', 'import dns.dnssec, cryptography'], { encoding: 'utf8' });
  return r.status === 0 ? false : 'dnspython with DNSSEC support is not installed (Debian packages python3-dnspython and python3-cryptography; .ci/run installs them)';
}

/** One RRset of the test zone. */
interface ZoneRrset {
  readonly ttlSec: number;
  readonly rdatas: Uint8Array[];
}

/** A zone served by the test server: names (lower-case, no trailing dot) → type → RRset. */
export interface TestZone {
  readonly apex: string;
  readonly apexWire: Uint8Array;
  readonly key: DnssecKey;
  readonly signer: SignerKey;
  readonly names: Map<string, Map<number, ZoneRrset>>;
  readonly soaTtlSec: number;
  readonly soaMinimumSec: number;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function ip4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function ip6(text: string): Uint8Array {
  const [head, tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => new DataView(out.buffer).setUint16(i * 2, parseInt(g, 16)));
  return out;
}

/**
 * Builds the test zone "example.test" signed with a new key of `algorithm`:
 * apex SOA, NS and DNSKEY; ns1 (A); app (three A records, answered in a new
 * rotation order every time); v6 (two AAAA); mixed (A and AAAA).
 */
export async function createTestZone(algorithm: string, apex = 'example.test'): Promise<TestZone> {
  const key = await generateZoneKey(apex, algorithm);
  const soaTtlSec = 3600;
  const soaMinimumSec = 300;
  const names = new Map<string, Map<number, ZoneRrset>>();
  const put = (name: string, type: number, ttlSec: number, rdatas: Uint8Array[]): void => {
    const byType = names.get(name) ?? new Map<number, ZoneRrset>();
    byType.set(type, { ttlSec, rdatas });
    names.set(name, byType);
  };
  put(apex, QTYPE.SOA, soaTtlSec, [concat([nameToWire(`ns1.${apex}`), nameToWire(`hostmaster.${apex}`), u32(2024010101), u32(3600), u32(600), u32(604800), u32(soaMinimumSec)])]);
  put(apex, QTYPE.NS, soaTtlSec, [nameToWire(`ns1.${apex}`)]);
  put(apex, DNSSEC_TYPE.DNSKEY, 3600, [dnskeyRdataOf(key.info)]);
  put(`ns1.${apex}`, QTYPE.A, 3600, [ip4('192.0.2.53')]);
  put(`app.${apex}`, QTYPE.A, 60, [ip4('192.0.2.1'), ip4('192.0.2.2'), ip4('192.0.2.3')]);
  put(`v6.${apex}`, QTYPE.AAAA, 30, [ip6('2001:db8::1'), ip6('2001:db8::2')]);
  put(`mixed.${apex}`, QTYPE.A, 60, [ip4('198.51.100.7')]);
  put(`mixed.${apex}`, QTYPE.AAAA, 60, [ip6('2001:db8::7')]);
  return { apex, apexWire: nameToWire(apex), key, signer: signerKeyOf(key), names, soaTtlSec, soaMinimumSec };
}

/** What the server did, for tests that look at the cache. */
export interface SigningServer {
  readonly port: number;
  readonly cache: SignatureCache;
  /** Rotation orders served for multi-record RRsets (first rdata byte sequence), to show several were validated. */
  readonly rotations: Set<string>;
  close(): Promise<void>;
}

const HEADER = 12;

/**
 * Starts a UDP server on 127.0.0.1 (port 0) answering authoritatively for the
 * zone: positive answers (RRsets rotated per query) with RRSIGs when the DO bit
 * is set; NODATA and NXDOMAIN with SOA and, with DO, compact-denial NSECs
 * (RFC 9824: NXDOMAIN answered NOERROR with NXNAME); REFUSED outside the zone.
 */
export async function startSigningServer(zone: TestZone, validitySec = 7 * 86400): Promise<SigningServer> {
  const cache = new SignatureCache({ capacity: 256, validitySec });
  const rotations = new Set<string>();
  const socket = dgram.createSocket('udp4');
  let turn = 0;
  const scratch = new Uint8Array(512);
  const rrset = new Rrset();

  const answer = (msg: Buffer): Buffer | null => {
    if (msg.length < HEADER) return null;
    // Question name: plain labels (queries carry no compression).
    let p = HEADER;
    const labels: string[] = [];
    while (p < msg.length && msg[p] !== 0) {
      labels.push(msg.subarray(p + 1, p + 1 + msg[p]).toString('latin1').toLowerCase());
      p += msg[p] + 1;
    }
    const qnameEnd = p + 1;
    const qtype = msg.readUInt16BE(qnameEnd);
    const questionEnd = qnameEnd + 4;
    const qname = labels.join('.');
    const qnameLower = nameToWire(qname);
    const decoded = dnsPacket.decode(msg);
    const opt = decoded.additionals?.find((a) => a.type === 'OPT') as { flags?: number } | undefined;
    const dnssecOk = opt !== undefined && ((opt.flags ?? 0) & dnsPacket.DNSSEC_OK) !== 0;
    const nowSec = Math.floor(Date.now() / 1000);

    const answers: Uint8Array[] = [];
    const authority: Uint8Array[] = [];
    let rcode = 0;
    const inZone = qname === zone.apex || qname.endsWith(`.${zone.apex}`);
    // Owner of an RRset: the question name (pointer 12) or the apex (uncompressed).
    const rrBytes = (ownerPtr: number | null, type: number, ttlSec: number, rdata: Uint8Array): Uint8Array => {
      const owner = ownerPtr === null ? zone.apexWire : Uint8Array.of(0xc0 | (ownerPtr >> 8), ownerPtr & 0xff);
      const fixed = new Uint8Array(10);
      const v = new DataView(fixed.buffer);
      v.setUint16(0, type);
      v.setUint16(2, 1);
      v.setUint32(4, ttlSec);
      v.setUint16(8, rdata.length);
      return concat([owner, fixed, rdata]);
    };
    const rrsigBytes = (ownerPtr: number | null, rrsig: Uint8Array): Uint8Array => {
      const out = new Uint8Array(zone.apexWire.length + 10 + rrsig.length);
      const end = ownerPtr === null ? writeRrsigUncompressed(out, 0, zone.apexWire, rrsig) : writeRrsig(out, 0, ownerPtr, rrsig);
      return out.subarray(0, end);
    };
    const addSoa = (): void => {
      const soa = zone.names.get(zone.apex)?.get(QTYPE.SOA) as ZoneRrset;
      authority.push(rrBytes(null, QTYPE.SOA, soa.ttlSec, soa.rdatas[0]));
      if (dnssecOk) {
        rrset.reset(zone.apexWire, 0, zone.apexWire.length, QTYPE.SOA, soa.ttlSec).add(soa.rdatas[0], 0, soa.rdatas[0].length);
        authority.push(rrsigBytes(null, cache.findOrSign(zone.signer, rrset, nowSec)));
      }
    };
    const addNsec = (bitmap: Uint8Array): void => {
      const ttl = negativeTtl(zone.soaTtlSec, zone.soaMinimumSec);
      const end = writeCompactNsecRdata(scratch, 0, qnameLower, 0, qnameLower.length, bitmap);
      const rec = new Uint8Array(12 + end);
      writeNsec(rec, 0, HEADER, ttl, scratch, 0, end);
      authority.push(rec);
      rrset.reset(qnameLower, 0, qnameLower.length, DNSSEC_TYPE.NSEC, ttl).add(scratch, 0, end);
      authority.push(rrsigBytes(HEADER, cache.findOrSign(zone.signer, rrset, nowSec)));
    };

    if (!inZone) {
      rcode = 5;
    } else {
      const node = zone.names.get(qname);
      const data = node?.get(qtype);
      if (data !== undefined) {
        const n = data.rdatas.length;
        const shift = turn++ % n;
        const order = data.rdatas.map((_, i) => data.rdatas[(i + shift) % n]);
        if (n > 1) rotations.add(order.map((r) => r.join('.')).join(' '));
        for (const r of order) answers.push(rrBytes(HEADER, qtype, data.ttlSec, r));
        if (dnssecOk) {
          rrset.reset(qnameLower, 0, qnameLower.length, qtype, data.ttlSec);
          for (const r of order) rrset.add(r, 0, r.length);
          answers.push(rrsigBytes(HEADER, cache.findOrSign(zone.signer, rrset, nowSec)));
        }
      } else if (node !== undefined) {
        addSoa();
        if (dnssecOk) addNsec(nodataBitmap([...node.keys()]));
      } else if (dnssecOk) {
        // RFC 9824: the name "exists" with no data; NXNAME says it does not really.
        addSoa();
        addNsec(NXNAME_BITMAP);
      } else {
        rcode = 3;
        addSoa();
      }
    }
    const header = Buffer.alloc(HEADER);
    header.writeUInt16BE(msg.readUInt16BE(0), 0);
    header.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | rcode, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    header.writeUInt16BE(authority.length, 8);
    const additional: Uint8Array[] = [];
    if (opt !== undefined) {
      const o = Buffer.alloc(11);
      o[0] = 0;
      o.writeUInt16BE(41, 1);
      o.writeUInt16BE(1232, 3);
      o.writeUInt32BE(dnssecOk ? 0x8000 : 0, 5);
      o.writeUInt16BE(0, 9);
      additional.push(o);
    }
    header.writeUInt16BE(additional.length, 10);
    return Buffer.from(concat([header, msg.subarray(HEADER, questionEnd), ...answers, ...authority, ...additional]));
  };

  socket.on('message', (msg, rinfo) => {
    let reply: Buffer | null = null;
    try {
      reply = answer(msg);
    } catch {
      reply = null;
    }
    if (reply !== null) socket.send(reply, rinfo.port, rinfo.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    port: socket.address().port,
    cache,
    rotations,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
