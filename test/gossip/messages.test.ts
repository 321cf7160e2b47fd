import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  decodeMsgpack, encodeMsgpack, MAX_BACKENDS, validateMessage, type Message,
} from '../../src/gossip/messages.ts';

const header = { agentId: 'eu-west-0123456789ab', seq: 7, timestampMs: 1_700_000_000_000 };
const b1 = { service: 'app.example.test', address: '192.0.2.10', port: 8080, weight: 100, health: 'healthy', drain: null, check: null };

const valid: Record<string, Message> = {
  register: {
    type: 'register',
    ...header,
    region: 'eu-west',
    version: '0.1.0',
    certificate: randomBytes(300),
    tokenProofs: { 'app.example.test': randomBytes(32) },
    heartbeatIntervalMs: 10_000,
    backends: [b1],
  },
  heartbeat: { type: 'heartbeat', ...header, full: false, backends: [], load: { cpuPercent: 12.5, memoryPercent: 40, errorRatePerMin: 0 } },
  health_update: { type: 'health_update', ...header, backends: [{ ...b1, health: 'unhealthy', drain: 'cpu_threshold_exceeded' }] },
  deregister: { type: 'deregister', ...header, reason: 'shutdown' },
  ack: { type: 'ack', ...header, status: 'register', reason: 'unpinned' },
} as Record<string, Message>;

/** Encodes and decodes like the wire does, so the validator sees what msgpackr produces. */
function roundTrip(value: unknown): unknown {
  const decoded = decodeMsgpack(encodeMsgpack(value));
  assert.ok(decoded !== undefined);
  return decoded.value;
}

for (const [type, message] of Object.entries(valid)) {
  test(`a valid ${type} survives encoding and validation unchanged`, () => {
    const result = validateMessage(roundTrip(message));
    assert.ok(result.ok, result.ok ? '' : result.detail);
    assert.deepEqual(encodeMsgpack(result.message), encodeMsgpack(message));
  });
}

const hb = valid.heartbeat as unknown as Record<string, unknown>;
const reg = valid.register as unknown as Record<string, unknown>;

const invalid: { name: string; value: unknown; detail: RegExp }[] = [
  { name: 'a list instead of a map', value: [1, 2], detail: /^\(message\): got a list, expected a map/ },
  { name: 'an unknown type', value: { ...hb, type: 'gossip' }, detail: /^type: .*expected one of register, heartbeat/ },
  { name: 'an unknown field', value: { ...hb, extra: 1 }, detail: /unknown field "extra"/ },
  { name: 'a __proto__ field', value: JSON.parse(`{"__proto__": 1, "type": "deregister", "agentId": "a", "seq": 1, "timestampMs": 1, "reason": "x"}`), detail: /unknown field "__proto_"/ },
  { name: 'a missing field', value: Object.fromEntries(Object.entries(hb).filter(([k]) => k !== 'load')), detail: /missing field load/ },
  { name: 'an undefined field', value: { ...hb, load: undefined }, detail: /^load: got undefined/ },
  { name: 'a negative sequence number', value: { ...hb, seq: -1 }, detail: /^seq: .*whole number/ },
  { name: 'a fractional sequence number', value: { ...hb, seq: 1.5 }, detail: /^seq:/ },
  { name: 'a sequence number above 2^53', value: { ...hb, seq: 2 ** 60 }, detail: /^seq:/ },
  { name: 'a string timestamp', value: { ...hb, timestampMs: '2024-01-01T00:00:00Z' }, detail: /^timestampMs:/ },
  { name: 'an agent id with a space', value: { ...hb, agentId: 'eu west' }, detail: /^agentId:/ },
  { name: 'an empty agent id', value: { ...hb, agentId: '' }, detail: /^agentId:/ },
  { name: 'a non-boolean full', value: { ...hb, full: 1 }, detail: /^full:/ },
  { name: 'a port of 0', value: { ...hb, backends: [{ ...b1, port: 0 }] }, detail: /^backends\[0\]\.port:/ },
  { name: 'a weight above 65535', value: { ...hb, backends: [{ ...b1, weight: 70000 }] }, detail: /^backends\[0\]\.weight:/ },
  { name: 'an upper-case service', value: { ...hb, backends: [{ ...b1, service: 'App.Example.test' }] }, detail: /^backends\[0\]\.service:/ },
  { name: 'a service with a trailing dot', value: { ...hb, backends: [{ ...b1, service: 'app.example.test.' }] }, detail: /^backends\[0\]\.service:/ },
  { name: 'an address with a slash', value: { ...hb, backends: [{ ...b1, address: '10.0.0.0/8' }] }, detail: /^backends\[0\]\.address:/ },
  { name: 'an unknown health state', value: { ...hb, backends: [{ ...b1, health: 'up' }] }, detail: /^backends\[0\]\.health:/ },
  { name: 'an unknown drain reason', value: { ...hb, backends: [{ ...b1, drain: 'tired' }] }, detail: /^backends\[0\]\.drain:/ },
  { name: 'a backend listed twice', value: { ...hb, backends: [b1, b1] }, detail: /^backends\[1\]: .*listed twice/ },
  { name: 'too many backends', value: { ...hb, backends: Array.from({ length: MAX_BACKENDS + 1 }, (_, i) => ({ ...b1, port: (i % 65535) + 1 })) }, detail: /at most 1024/ },
  { name: 'a load above 100 %', value: { ...hb, load: { cpuPercent: 101, memoryPercent: 1, errorRatePerMin: 0 } }, detail: /^load\.cpuPercent:/ },
  { name: 'a token proof of 31 bytes', value: { ...reg, tokenProofs: { 'app.example.test': randomBytes(31) } }, detail: /^tokenProofs\.app\.example\.test:/ },
  { name: 'a token proof keyed by a bad name', value: { ...reg, tokenProofs: { 'a b': randomBytes(32) } }, detail: /^tokenProofs key "a b":/ },
  { name: 'a certificate as text', value: { ...reg, certificate: '-----BEGIN CERTIFICATE-----' }, detail: /^certificate:/ },
  { name: 'an oversized certificate', value: { ...reg, certificate: randomBytes(9000) }, detail: /^certificate:/ },
  { name: 'a heartbeat interval of 0', value: { ...reg, heartbeatIntervalMs: 0 }, detail: /^heartbeatIntervalMs:/ },
  { name: 'a non-printable deregister reason', value: { ...valid.deregister, reason: 'bye\n' }, detail: /^reason:/ },
  { name: 'an ack with an unknown status', value: { ...valid.ack, status: 'maybe' }, detail: /^status:/ },
];

for (const c of invalid) {
  test(`the validator refuses ${c.name}, naming the field`, () => {
    const result = validateMessage(roundTrip(c.value));
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.detail : '', c.detail);
  });
}

test('the validator refuses values MessagePack extensions decode into (dates, sets, errors)', () => {
  for (const value of [new Date(0), new Set([1]), new Error('x'), new Map([['type', 'heartbeat']])]) {
    const result = validateMessage(value);
    assert.equal(result.ok, false);
  }
  // 0xd6 0xff: a MessagePack timestamp, which msgpackr decodes into a Date.
  const date = decodeMsgpack(Buffer.from('d6ff00000001', 'hex'));
  assert.equal(validateMessage(date?.value).ok, false);
});

test('decodeMsgpack refuses truncated input, trailing bytes and deep nesting without throwing', () => {
  const good = encodeMsgpack({ a: [1, 2, 3] });
  assert.equal(decodeMsgpack(good.subarray(0, good.length - 1)), undefined);
  assert.equal(decodeMsgpack(Buffer.concat([good, Buffer.of(0)])), undefined);
  assert.equal(decodeMsgpack(Buffer.alloc(100_000, 0x91)), undefined);
  assert.equal(decodeMsgpack(Buffer.alloc(0)), undefined);
});
