// Compact denial of existence: NSEC type bitmaps (RFC 4034 §4.1.2 and its
// §4.3 example), successor names, NSEC records as dns-packet decodes them;
// and a whole zone signed by our signer with an NSEC chain built by our
// encoder, judged by BIND's dnssec-verify.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { QTYPE } from '../../src/dns/constants.ts';
import { nameToWire, readWireName } from '../../src/dns/names.ts';
import {
  compactNsecRdata, negativeTtl, nodataBitmap, nsecRdata, NXNAME_BITMAP, typeBitmap, typesOfBitmap, writeNsec, writeSuccessorName,
} from '../../src/dnssec/denial.ts';
import { dnskeyRdataOf, dnskeyRecordText, generateZoneKey, signerKeyOf } from '../../src/dnssec/keys.ts';
import { DNSSEC_TYPE, rrsetOf, signingWindow, signRrset } from '../../src/dnssec/sign.ts';
import { missingTool } from './helpers.ts';

const run = promisify(execFile);

test('typeBitmap encodes the RFC 4034 §4.3 example (A MX RRSIG NSEC TYPE1234) byte for byte', () => {
  const expected = [
    0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03,
    0x04, 0x1b, ...new Array(26).fill(0), 0x20,
  ];
  assert.deepEqual([...typeBitmap([QTYPE.A, QTYPE.MX, DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC, 1234])], expected);
  assert.deepEqual([...typeBitmap([1234, DNSSEC_TYPE.NSEC, QTYPE.A, QTYPE.MX, DNSSEC_TYPE.RRSIG, QTYPE.A])], expected, 'order and repeats do not matter');
  assert.deepEqual(typesOfBitmap(Uint8Array.from(expected)), [1, 15, 46, 47, 1234]);
});

test('the NXDOMAIN bitmap holds RRSIG, NSEC and NXNAME (128) and nothing else', () => {
  assert.deepEqual(typesOfBitmap(NXNAME_BITMAP), [46, 47, 128]);
  // Window 0, 17 bytes: RRSIG (46) and NSEC (47) are the low bits of byte 5, NXNAME (128) the high bit of byte 16.
  assert.deepEqual([...NXNAME_BITMAP], [0, 17, 0, 0, 0, 0, 0, 0x03, ...new Array(10).fill(0), 0x80]);
});

test('a NODATA bitmap lists the types the name holds plus RRSIG and NSEC', () => {
  assert.deepEqual(typesOfBitmap(nodataBitmap([QTYPE.AAAA, QTYPE.A])), [1, 28, 46, 47]);
  assert.deepEqual(typesOfBitmap(nodataBitmap([])), [46, 47], 'an empty non-terminal');
});

test('typeBitmap refuses a type outside 1..65535', () => {
  assert.throws(() => typeBitmap([0]), /record type 0 cannot be in an NSEC bitmap/);
  assert.throws(() => typeBitmap([65536]), /record type 65536/);
});

test('the negative TTL is the smaller of the SOA TTL and its MINIMUM', () => {
  assert.equal(negativeTtl(3600, 300), 300);
  assert.equal(negativeTtl(60, 300), 60);
});

/** Canonical name order (RFC 4034 §6.1): labels compared right to left as lower-case octet strings. */
function compareNames(a: Uint8Array, b: Uint8Array): number {
  const labels = (w: Uint8Array): Uint8Array[] => {
    const out: Uint8Array[] = [];
    let p = 0;
    while (w[p] !== 0) {
      out.push(w.subarray(p + 1, p + 1 + w[p]).map((c) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c)));
      p += w[p] + 1;
    }
    return out.reverse();
  };
  const la = labels(a);
  const lb = labels(b);
  for (let i = 0; i < Math.min(la.length, lb.length); i++) {
    const x = la[i];
    const y = lb[i];
    for (let j = 0; j < Math.min(x.length, y.length); j++) if (x[j] !== y[j]) return x[j] - y[j];
    if (x.length !== y.length) return x.length - y.length;
  }
  return la.length - lb.length;
}

/** A wire name of `total` octets under example.test built from 63-octet labels of `fill`. */
function longName(total: number, fill: number): Uint8Array {
  const tail = nameToWire('example.test');
  const parts: number[] = [];
  let room = total - tail.length;
  while (room > 0) {
    const len = Math.min(63, room - 1);
    parts.push(len, ...new Array(len).fill(fill));
    room -= len + 1;
  }
  return Uint8Array.from([...parts, ...tail]);
}

/** A wire name of `total` octets under example.test whose first label has `first` octets of `fill`, the rest 63-octet labels (and one shorter) of `fill`. */
function nameWithFirstLabel(first: number, total: number, fill: number): Uint8Array {
  const rest = longName(total - first - 1, fill);
  return Uint8Array.from([first, ...new Array(first).fill(fill), ...rest]);
}

/** The name with its first label extended by one 0x00 octet: the label's immediate successor (RFC 4034 §6.1), or null when the label or the name would be too long. */
function extendedFirstLabel(name: Uint8Array): Uint8Array | null {
  if (name[0] >= 63 || name.length >= 255) return null;
  return Uint8Array.from([name[0] + 1, ...name.subarray(1, 1 + name[0]), 0, ...name.subarray(1 + name[0])]);
}

const SUCCESSORS: readonly { name: string; qname: Uint8Array; expect?: (next: Uint8Array) => void }[] = [
  {
    name: 'a short name gets \\000.<name>, lower-cased',
    qname: Uint8Array.from([2, 0x4e, 0x78, ...nameToWire('example.test')]),
    expect: (next) => assert.equal(readWireName(next, 0).name, '\u0000.nx.example.test'),
  },
  { name: 'a 253-octet name still gets \\000.<name> (255 octets)', qname: longName(253, 0x61), expect: (next) => assert.equal(next.length, 255) },
  { name: 'a 254-octet name whose first label has 63 octets gets it raised by one', qname: longName(254, 0x61), expect: (next) => assert.equal(next[0], 63) },
  {
    // Its child would be 256 octets, but a 255-octet name still follows it:
    // its first label with a 0x00 octet appended. Raising the label's last
    // octet instead covered that name and every 255-octet one up to it.
    name: 'a 254-octet name whose first label is shorter gets that label extended by \\000 (255 octets)',
    qname: nameWithFirstLabel(10, 254, 0x61),
    expect: (next) => assert.deepEqual(next, extendedFirstLabel(nameWithFirstLabel(10, 254, 0x61))),
  },
  { name: 'a 254-octet name whose first label ends in 0xff gets \\000 appended too (not the octet before raised)', qname: (() => { const n = nameWithFirstLabel(10, 254, 0x61); n[10] = 0xff; return n; })(), expect: (next) => assert.equal(next.length, 255) },
  { name: 'a 255-octet name gets its first label raised by one', qname: longName(255, 0x61) },
  { name: 'a label ending in 0xff is raised before it and cut', qname: (() => { const n = longName(255, 0x61); n[n[0]] = 0xff; return n; })() },
  { name: 'a raised "@" skips the upper-case letters', qname: (() => { const n = longName(255, 0x40); return n; })() },
];
for (const c of SUCCESSORS) {
  test(`writeSuccessorName: ${c.name}, which sorts after the name and fits in 255 octets`, () => {
    const out = new Uint8Array(300);
    const end = writeSuccessorName(out, 0, c.qname, 0, c.qname.length);
    assert.ok(end > 0 && end <= 255, `end ${end}`);
    const next = out.slice(0, end);
    assert.ok(compareNames(c.qname, next) < 0, 'next sorts after the name');
    // Immediate: no name that can exist sorts between (RFC 4034 §6.1). The
    // closest candidates: the first child (\000.<name>) and the first label
    // extended by 0x00, whichever fits in 255 octets.
    const child = c.qname.length + 2 <= 255 ? Uint8Array.from([1, 0, ...c.qname]) : null;
    for (const between of [child, extendedFirstLabel(c.qname)]) {
      if (between !== null) assert.ok(compareNames(between, next) >= 0, `${between.length}-octet name sorts between the name and next`);
    }
    for (let i = 0; i < end; i++) {
      if (next[i] >= 0x41 && next[i] <= 0x5a) {
        // Only label-length octets may fall in that range; letters must be lower-case.
        let p = 0;
        const lengths = new Set<number>();
        while (next[p] !== 0) {
          lengths.add(p);
          p += next[p] + 1;
        }
        assert.ok(lengths.has(i), `octet ${i} is an upper-case letter`);
      }
    }
    c.expect?.(next);
  });
}

test('writeSuccessorName gives -1 when the first label is all 0xff or the buffer is too small', () => {
  const all = longName(255, 0xff);
  assert.equal(writeSuccessorName(new Uint8Array(300), 0, all, 0, all.length), -1);
  const short = nameToWire('nx.example.test');
  assert.equal(writeSuccessorName(new Uint8Array(short.length + 1), 0, short, 0, short.length), -1);
});

test('a compact-denial NSEC record decodes with dns-packet: owner = qname, next = \\000.qname', () => {
  const qname = nameToWire('nx.example.test');
  const rdata = compactNsecRdata(qname, NXNAME_BITMAP);
  const record = new Uint8Array(12 + rdata.length);
  assert.equal(writeNsec(record, 0, 12, 300, rdata, 0, rdata.length), record.length);
  const header = Buffer.from([0, 1, 0x84, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
  const decoded = dnsPacket.decode(Buffer.concat([header, qname, Buffer.from([0, 1, 0, 1]), record]));
  const nsec = decoded.authorities?.[0] as unknown as { name: string; type: string; ttl: number; data: { nextDomain: string; rrtypes: string[] } };
  assert.equal(nsec.name, 'nx.example.test');
  assert.equal(nsec.type, 'NSEC');
  assert.equal(nsec.ttl, 300);
  assert.equal(nsec.data.nextDomain, '\u0000.nx.example.test');
  assert.deepEqual(nsec.data.rrtypes.slice(0, 2), ['RRSIG', 'NSEC']);
  assert.equal(nsec.data.rrtypes.length, 3);
});

// ---------------------------------------------------------------------------
// A whole signed zone, judged by dnssec-verify.
// ---------------------------------------------------------------------------

const TYPE_NAMES = new Map<number, string>([[1, 'A'], [2, 'NS'], [6, 'SOA'], [28, 'AAAA'], [46, 'RRSIG'], [47, 'NSEC'], [48, 'DNSKEY']]);
const typeName = (t: number): string => TYPE_NAMES.get(t) ?? `TYPE${t}`;

function stamp(sec: number): string {
  return new Date(sec * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/** Presentation form of RRSIG rdata. */
function rrsigText(rdata: Uint8Array): string {
  const v = new DataView(rdata.buffer, rdata.byteOffset, rdata.byteLength);
  const signer = readWireName(rdata, 18);
  return [typeName(v.getUint16(0)), rdata[2], rdata[3], v.getUint32(4), stamp(v.getUint32(8)), stamp(v.getUint32(12)), v.getUint16(16), `${signer.name}.`, Buffer.from(rdata.subarray(signer.end)).toString('base64')].join(' ');
}

for (const algorithm of ['ECDSAP256SHA256', 'ED25519']) {
  test(`dnssec-verify accepts a zone signed by our ${algorithm} signer with an NSEC chain from our encoder`, { skip: missingTool('dnssec-verify', 'bind9utils') }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'opengslb-verify-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const key = await generateZoneKey('example.test', algorithm);
    const signer = signerKeyOf(key);
    const window = signingWindow(Math.floor(Date.now() / 1000), 7 * 86400);
    const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    // name → type → [ttl, rdata wire[], rdata text[]]
    const zone = new Map<string, Map<number, { ttl: number; wire: Uint8Array[]; text: string[] }>>();
    const put = (name: string, type: number, ttl: number, wire: Uint8Array[], text: string[]): void => {
      const byType = zone.get(name) ?? new Map();
      byType.set(type, { ttl, wire, text });
      zone.set(name, byType);
    };
    put('example.test', QTYPE.SOA, 3600, [Uint8Array.from([...nameToWire('ns1.example.test'), ...nameToWire('hostmaster.example.test'), ...u32(1), ...u32(3600), ...u32(600), ...u32(604800), ...u32(300)])], ['ns1.example.test. hostmaster.example.test. 1 3600 600 604800 300']);
    put('example.test', QTYPE.NS, 3600, [nameToWire('ns1.example.test')], ['ns1.example.test.']);
    put('example.test', DNSSEC_TYPE.DNSKEY, 3600, [dnskeyRdataOf(key.info)], [dnskeyRecordText(key.info).split(' IN DNSKEY ')[1]]);
    put('ns1.example.test', QTYPE.A, 3600, [Uint8Array.of(192, 0, 2, 53)], ['192.0.2.53']);
    put('app.example.test', QTYPE.A, 60, [Uint8Array.of(192, 0, 2, 3), Uint8Array.of(192, 0, 2, 1), Uint8Array.of(192, 0, 2, 2)], ['192.0.2.3', '192.0.2.1', '192.0.2.2']);
    put('v6.example.test', QTYPE.AAAA, 30, [Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1])], ['2001:db8::1']);
    // The NSEC chain in canonical order, each NSEC listing the types of its owner.
    const names = [...zone.keys()].sort((a, b) => compareNames(nameToWire(a), nameToWire(b)));
    names.forEach((name, i) => {
      const types = [...(zone.get(name) as Map<number, unknown>).keys()];
      const next = names[(i + 1) % names.length];
      const bitmap = nodataBitmap(types);
      put(name, DNSSEC_TYPE.NSEC, 300, [nsecRdata(nameToWire(next), bitmap)], [`${next}. ${typesOfBitmap(bitmap).map(typeName).join(' ')}`]);
    });
    const lines: string[] = [];
    for (const [name, byType] of zone) {
      for (const [type, rrs] of byType) {
        for (const text of rrs.text) lines.push(`${name}. ${rrs.ttl} IN ${typeName(type)} ${text}`);
        const rrsig = signRrset(signer, rrsetOf(nameToWire(name), type, rrs.ttl, rrs.wire), window);
        lines.push(`${name}. ${rrs.ttl} IN RRSIG ${rrsigText(rrsig)}`);
      }
    }
    const file = join(dir, 'example.test.zone');
    await writeFile(file, `${lines.join('\n')}\n`);
    // -z: the KSK flag does not mean "signs only the DNSKEY set" here; ours is a combined signing key.
    const result = await run('dnssec-verify', ['-z', '-o', 'example.test', file]).catch((err: { stdout: string; stderr: string }) => err);
    const out = `${result.stdout}${result.stderr}`;
    assert.match(out, /Zone fully signed/, `${out}\n${lines.join('\n')}`);
    assert.match(out, new RegExp(`Algorithm: ${algorithm}: KSKs: 1 active`), out);
  });
}
