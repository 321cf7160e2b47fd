// overwatch.dnssec: on by default, turned off only with the exact
// acknowledgment (the message prints it to copy), the two algorithms we sign
// with, signature_validity, and key_sync needing its shared secret.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DNSSEC_ACKNOWLEDGMENT } from '../../src/config/definition.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';
import type { Config } from '../../src/config/types.ts';

const MINIMAL = [
  'regions:',
  '  - name: eu-west',
  '    servers: [{ address: 192.0.2.10 }]',
  'domains:',
  '  - { name: app.example.test, regions: [eu-west] }',
];
const SECRET = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';

function load(extra: string[]): Config {
  return parseConfigText([...MINIMAL, ...extra].join('\n'), 'x.yaml', { env: {} });
}

function problems(extra: string[]): string[] {
  try {
    load(extra);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  return assert.fail('expected the config to be refused');
}

const VALID: readonly { name: string; yaml: string[]; expect: Config['dnssec'] }[] = [
  {
    name: 'a config without overwatch.dnssec signs with ECDSAP256SHA256 and 7-day signatures',
    yaml: [],
    expect: { enabled: true, algorithm: 'ECDSAP256SHA256', signatureValiditySec: 604800, keySync: { peers: [], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: null } },
  },
  {
    name: 'ED25519 in any case and a 14-day validity',
    yaml: ['overwatch: { dnssec: { algorithm: ed25519, signature_validity: 336h } }'],
    expect: { enabled: true, algorithm: 'ED25519', signatureValiditySec: 1_209_600, keySync: { peers: [], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: null } },
  },
  {
    name: 'DNSSEC off with the exact acknowledgment',
    yaml: ['overwatch:', '  dnssec:', '    enabled: false', `    security_acknowledgment: "${DNSSEC_ACKNOWLEDGMENT}"`],
    expect: { enabled: false, algorithm: 'ECDSAP256SHA256', signatureValiditySec: 604800, keySync: { peers: [], pollIntervalMs: 3_600_000, timeoutMs: 30_000, sharedSecret: null } },
  },
  {
    name: 'key sync with peers and the shared secret',
    yaml: ['overwatch:', '  dnssec:', '    key_sync: { peers: ["https://ow2:8080"], poll_interval: 5m, timeout: 2s, shared_secret: "' + SECRET + '" }'],
    expect: { enabled: true, algorithm: 'ECDSAP256SHA256', signatureValiditySec: 604800, keySync: { peers: ['https://ow2:8080'], pollIntervalMs: 300_000, timeoutMs: 2000, sharedSecret: SECRET } },
  },
];
for (const c of VALID) {
  test(`loads ${c.name}`, () => {
    assert.deepEqual(load(c.yaml).dnssec, c.expect);
  });
}

test('refuses DNSSEC off without the acknowledgment and prints the line to copy', () => {
  const lines = problems(['overwatch: { dnssec: { enabled: false } }']);
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.ok(lines[0].startsWith('x.yaml:6:33: overwatch.dnssec.enabled: is false without the acknowledgment'), lines[0]);
  assert.ok(lines[0].endsWith(`add to overwatch.dnssec: security_acknowledgment: "${DNSSEC_ACKNOWLEDGMENT}"`), lines[0]);
});

test('refuses DNSSEC off with an acknowledgment that is not the exact text, and prints the text', () => {
  const lines = problems(['overwatch:', '  dnssec:', '    enabled: false', '    security_acknowledgment: "I understand"']);
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.ok(lines[0].startsWith('x.yaml:9:30: overwatch.dnssec.security_acknowledgment: does not match the required text'), lines[0]);
  assert.ok(lines[0].includes(`security_acknowledgment: "${DNSSEC_ACKNOWLEDGMENT}"`), lines[0]);
});

test('refuses an algorithm we do not sign with, naming the ones we do', () => {
  const lines = problems(['overwatch: { dnssec: { algorithm: RSASHA256 } }']);
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0], /^x\.yaml:6:35: overwatch\.dnssec\.algorithm: .*RSASHA256.*ECDSAP256SHA256, ED25519/);
});

test('says ECDSAP384SHA384 (known to the Go original) is not available yet', () => {
  const lines = problems(['overwatch: { dnssec: { algorithm: ECDSAP384SHA384 } }']);
  assert.match(lines[0], /overwatch\.dnssec\.algorithm: .*not available yet/);
});

test('refuses a signature validity below one hour', () => {
  const lines = problems(['overwatch: { dnssec: { signature_validity: 30m } }']);
  assert.match(lines[0], /overwatch\.dnssec\.signature_validity: .*1h/);
});

test('refuses key-sync peers without the shared secret', () => {
  const lines = problems(['overwatch: { dnssec: { key_sync: { peers: ["https://ow2:8080"] } } }']);
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0], /overwatch\.dnssec\.key_sync\.peers: is set without key_sync\.shared_secret/);
});

test('refuses a shared secret that is not base64 of 32 bytes, without quoting it', () => {
  const lines = problems(['overwatch: { dnssec: { key_sync: { shared_secret: "hunter2hunter2" } } }']);
  assert.match(lines[0], /overwatch\.dnssec\.key_sync\.shared_secret: .*base64 of exactly 32 bytes/);
  assert.ok(!lines[0].includes('hunter2'), lines[0]);
});

// Node timers take at most 2^31-1 ms; setInterval(fn, 1000h) fires every 1 ms
// instead (TimeoutOverflowWarning), so an unbounded poll_interval polled the
// peers in a busy loop and an unbounded timeout aborted every poll at once.
test('refuses a key-sync poll interval or timeout longer than a timer can wait', () => {
  const lines = problems(['overwatch: { dnssec: { key_sync: { poll_interval: 1000h, timeout: 1000h } } }']);
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0], /^x\.yaml:6:\d+: overwatch\.dnssec\.key_sync\.poll_interval: "1000h" \(1000h\) is out of range, expected a duration from 1s to 168h/);
  assert.match(lines[1], /^x\.yaml:6:\d+: overwatch\.dnssec\.key_sync\.timeout: "1000h" \(1000h\) is out of range, expected a duration from 100ms to 1h/);
  assert.equal(load(['overwatch: { dnssec: { key_sync: { poll_interval: 168h, timeout: 1h } } }']).dnssec.keySync.pollIntervalMs, 604_800_000);
});
