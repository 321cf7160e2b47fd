// readEcsOption over real query packets: dns-packet encodes each query with
// its OPT record, and the ECS option is either dns-packet's own encoding or
// raw DATA bytes for the malformed cases.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import {
  ECS_ERR_FAMILY, ECS_ERR_LENGTH, ECS_ERR_PADDING, ECS_ERR_PREFIX, ECS_ERR_SCOPE, ECS_OK, ecsAddressLength, readEcsOption,
} from '../../src/dns/ecs.ts';
import { ParsedQuery, parseQuery, PARSE_OK } from '../../src/dns/parse.ts';
import { formatIpBytes } from '../../src/lib/ip.ts';

type Option = { family: number; source: number; address: string; scope?: number } | { data: number[] };

/** Encodes an A query for a.test whose OPT carries one ECS option; returns the packet and where the option's DATA starts and ends. */
function queryWith(option: Option): { packet: Buffer; dataOff: number; dataLen: number } {
  const ecs = 'data' in option
    ? { code: 8, data: Buffer.from(option.data) }
    : { code: 8, family: option.family, sourcePrefixLength: option.source, scopePrefixLength: option.scope ?? 0, ip: option.address };
  const packet = dnsPacket.encode({
    type: 'query',
    id: 1,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name: 'a.test', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [ecs] } as unknown as dnsPacket.Answer],
  });
  // The option is the last thing in the packet: code (2), length (2), DATA.
  for (let off = 12; off + 4 <= packet.length; off++) {
    const len = packet.readUInt16BE(off + 2);
    if (packet.readUInt16BE(off) === 8 && off + 4 + len === packet.length) return { packet, dataOff: off + 4, dataLen: len };
  }
  throw new Error('no ECS option found in the encoded packet');
}

const v4 = (...bytes: number[]): number[] => [0, 1, ...bytes];
const v6 = (...bytes: number[]): number[] => [0, 2, ...bytes];

const cases: { name: string; option: Option; expect: number; address?: string }[] = [
  { name: 'IPv4 /24', option: { family: 1, source: 24, address: '198.51.100.0' }, expect: ECS_OK, address: '198.51.100.0' },
  { name: 'IPv4 /32', option: { family: 1, source: 32, address: '198.51.100.7' }, expect: ECS_OK, address: '198.51.100.7' },
  { name: 'IPv4 /20 with its spare bits zero', option: { family: 1, source: 20, address: '198.51.96.0' }, expect: ECS_OK, address: '198.51.96.0' },
  { name: 'IPv4 /0 (no address bytes)', option: { family: 1, source: 0, address: '0.0.0.0' }, expect: ECS_OK, address: '0.0.0.0' },
  { name: 'IPv6 /56', option: { family: 2, source: 56, address: '2001:db8:1:200::' }, expect: ECS_OK, address: '2001:db8:1:200::' },
  { name: 'IPv6 /128', option: { family: 2, source: 128, address: '2001:db8::1' }, expect: ECS_OK, address: '2001:db8::1' },
  { name: 'IPv6 /0', option: { family: 2, source: 0, address: '::' }, expect: ECS_OK, address: '::' },
  { name: 'FAMILY 0', option: { data: [0, 0, 0, 0] }, expect: ECS_ERR_FAMILY },
  { name: 'FAMILY 3', option: { data: [0, 3, 8, 0, 10] }, expect: ECS_ERR_FAMILY },
  { name: 'DATA of 3 bytes', option: { data: [0, 1, 0] }, expect: ECS_ERR_FAMILY },
  { name: 'empty DATA', option: { data: [] }, expect: ECS_ERR_FAMILY },
  { name: 'IPv4 /33', option: { data: v4(33, 0, 1, 2, 3, 4, 0) }, expect: ECS_ERR_PREFIX },
  { name: 'IPv6 /129', option: { data: v6(129, 0, ...new Array<number>(17).fill(0)) }, expect: ECS_ERR_PREFIX },
  { name: 'IPv4 /24 with 4 address bytes', option: { data: v4(24, 0, 198, 51, 100, 0) }, expect: ECS_ERR_LENGTH },
  { name: 'IPv4 /24 with 2 address bytes', option: { data: v4(24, 0, 198, 51) }, expect: ECS_ERR_LENGTH },
  { name: 'IPv4 /0 with an address byte', option: { data: v4(0, 0, 0) }, expect: ECS_ERR_LENGTH },
  { name: 'IPv4 /20 with a bit set past the prefix', option: { family: 1, source: 20, address: '198.51.100.0' }, expect: ECS_ERR_PADDING },
  { name: 'IPv4 /31 with the last bit set', option: { data: v4(31, 0, 198, 51, 100, 1) }, expect: ECS_ERR_PADDING },
  { name: 'IPv6 /57 with bit 58 set', option: { data: v6(57, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 2, 0x40) }, expect: ECS_ERR_PADDING },
  { name: 'a SCOPE of 8 in a query', option: { family: 1, source: 24, address: '198.51.100.0', scope: 8 }, expect: ECS_ERR_SCOPE },
];

for (const c of cases) {
  test(`an ECS option with ${c.name} reads as ${c.expect === ECS_OK ? 'ECS_OK' : `error ${c.expect}`}`, () => {
    const { packet, dataOff, dataLen } = queryWith(c.option);
    const addr = new Uint8Array(16).fill(0xee);
    const code = readEcsOption(packet, dataOff, dataLen, addr);
    assert.equal(code, c.expect);
    if (c.expect !== ECS_OK) {
      assert.ok(addr.every((b) => b === 0xee), 'the scratch is untouched on error');
      return;
    }
    const family = packet.readUInt16BE(dataOff);
    const len = ecsAddressLength(family);
    assert.equal(formatIpBytes(addr, 0, len), c.address);
    // The in-place parser accepts the same packet and points at the same address bytes.
    const q = new ParsedQuery();
    assert.equal(parseQuery(packet, packet.length, q, new Uint8Array(256)), PARSE_OK);
    assert.equal(q.ecsFamily, family);
    assert.equal(q.ecsAddrOff, dataOff + 4);
  });
}

test('the address bytes past the source prefix are zero even when the scratch held another address', () => {
  const addr = new Uint8Array(16).fill(0xff);
  const { packet, dataOff, dataLen } = queryWith({ family: 1, source: 16, address: '198.51.0.0' });
  assert.equal(readEcsOption(packet, dataOff, dataLen, addr), ECS_OK);
  assert.deepEqual([...addr.subarray(0, 4)], [198, 51, 0, 0]);
});

test('ecsAddressLength knows the two families only', () => {
  assert.equal(ecsAddressLength(1), 4);
  assert.equal(ecsAddressLength(2), 16);
  assert.equal(ecsAddressLength(0), 0);
  assert.equal(ecsAddressLength(3), 0);
});
