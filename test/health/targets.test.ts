import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { groupTargets, specFor } from '../../src/health/targets.ts';
import { targetKey } from '../../src/health/types.ts';
import { makeSpec, named } from './helpers.ts';

test('groupTargets gives servers with identical checks one target carrying all their slots', () => {
  const a = makeSpec({ address: '10.0.0.1' });
  const b = makeSpec({ address: '10.0.0.2' });
  const targets = groupTargets([
    { spec: a, slot: 0, server: named('eu/10.0.0.1:80') },
    { spec: b, slot: 1, server: named('eu/10.0.0.2:80') },
    { spec: { ...a, headers: {} }, slot: 2, server: named('us/10.0.0.1:80') },
  ]);
  assert.deepEqual(
    targets.map((t) => [t.key, t.slots, t.servers.map((s) => s.label)]),
    [
      [targetKey(a), [0, 2], ['eu/10.0.0.1:80', 'us/10.0.0.1:80']],
      [targetKey(b), [1], ['eu/10.0.0.2:80']],
    ],
  );
});

test('groupTargets keeps checks apart when any setting differs, header order aside', () => {
  const base = makeSpec({ headers: { A: '1', B: '2' } });
  const variants = [
    makeSpec({ headers: { B: '2', A: '1' } }),
    makeSpec({ headers: { A: '1', B: '2' }, path: '/other' }),
    makeSpec({ headers: { A: '1', B: '2' }, host: 'x.test' }),
    makeSpec({ headers: { A: '1', B: '2' }, ca: 'PEM' }),
    makeSpec({ headers: { A: '1', B: '2' }, intervalMs: 5000 }),
    makeSpec({ headers: { A: '1', B: '2' }, keepAlive: true }),
  ];
  const targets = groupTargets([base, ...variants].map((spec, slot) => ({ spec, slot, server: named(`s${slot}`) })));
  assert.deepEqual(targets.map((t) => t.slots), [[0, 1], [2], [3], [4], [5], [6]]);
});

/** A config of one region `eu` with `servers` (flow maps) and `healthCheck`, the health_check on line 10, serving app.example.test. */
function regionConfig(servers: readonly string[], healthCheck: string): string {
  return `dns:
  listen_address: "127.0.0.1:8053"
  zones: [example.test]
  nameservers:
    - name: ns1.example.test
      addresses: [127.0.0.1]
regions:
  - name: eu
    servers: [${servers.join(', ')}]
    health_check: ${healthCheck}
domains:
  - { name: app.example.test, regions: [eu] }
`;
}

test('a body_match /regex/ that needs backtracking (backreference, lookahead) is refused at its line: the probe runs regexes in linear time', () => {
  // Written in YAML double quotes, so "\\1" is \1, and the message quotes it as JSON ("\\1") again.
  for (const pattern of ['(ok)\\\\1', 'ok(?=!)', 'ok(?!x)', '(?<s>ok)\\\\k<s>']) {
    assert.throws(() => parseConfigText(regionConfig(['{ address: 192.0.2.1 }'], `{ body_match: "/${pattern}/" }`), 'inline.yaml'), (err: Error) => {
      assert.ok(
        err.message.includes(`inline.yaml:10:`) &&
          err.message.includes(`regions[0].health_check.body_match: "/${pattern}/" cannot be matched in linear time: it needs backtracking (a backreference \\1 or \\k<name>, or a lookahead (?=…) or (?!…)), which the linear-time engine cannot run, expected a /REGEX/ without backreferences or lookahead, or plain text`),
        `${pattern}: ${err.message}`,
      );
      return true;
    });
  }
  // Taken: nested quantifiers (linear here), lookbehind, named groups.
  parseConfigText(regionConfig(['{ address: 192.0.2.1 }'], '{ body_match: "/^(a+)+$|(?<=v)(?<n>\\\\d+)/" }'), 'inline.yaml');
});

test('specFor takes check_address, check_port and host from the server and the rest from health_check', () => {
  const config = parseConfigText(
    regionConfig(
      ['{ address: "2001:db8::10", port: 443, host: app.example.test, check_address: "::1", check_port: 8443 }', '{ address: 192.0.2.1 }'],
      '{ type: https, interval: 10s, timeout: 2s, expected_status: [200, "300-302"], body_match: "/ready|ok/", ema_alpha: 0.5 }',
    ),
    'inline.yaml',
  );
  const region = config.regions[0];
  assert.deepEqual(specFor(region.healthCheck, region.servers[0]), {
    type: 'https',
    address: '::1',
    port: 8443,
    host: 'app.example.test',
    path: '/health',
    expectedStatus: [[200, 200], [300, 302]],
    headers: {},
    bodyMatch: { kind: 'regex', pattern: 'ready|ok' },
    tlsVerify: true,
    keepAlive: false,
    intervalMs: 10_000,
    timeoutMs: 2000,
    failureThreshold: 3,
    successThreshold: 2,
    emaAlpha: 0.5,
  });
  const plain = specFor(region.healthCheck, region.servers[1]);
  assert.deepEqual([plain.address, plain.port, plain.host], ['192.0.2.1', 80, null]);
});

test('a health_check no probe could send is refused by the config loader, at its line, not left to take its servers down', () => {
  const cases: [string, RegExp][] = [
    ['{ body_match: "/(/" }', /inline\.yaml:10:\d+: regions\[0\]\.health_check\.body_match: "\/\(\/" is not a valid regular expression \(.*\), expected \/REGEX\/ or plain text/],
    ['{ path: "/h\u00e9alth" }', /regions\[0\]\.health_check\.path: .* expected a path that starts with "\/" and has visible ASCII characters only/],
    ['{ path: "/a b" }', /regions\[0\]\.health_check\.path: /],
    ['{ headers: { "Bad Name": "x" } }', /regions\[0\]\.health_check\.headers\["Bad Name"\]: "Bad Name" is not a header name, expected letters, digits/],
    ['{ headers: { "X-Ctl": "\\u0001" } }', /regions\[0\]\.health_check\.headers\.X-Ctl: .*expected a header value of visible characters, spaces and tabs/],
    ['{ headers: { Host: other.example } }', /regions\[0\]\.health_check\.headers\.Host: Host is set by the probe, expected other headers: set health_check\.host instead/],
    ['{ headers: { Content-Length: "5" } }', /Content-Length is set by the probe, expected other headers: a check sends no body/],
  ];
  for (const [hc, message] of cases) {
    assert.throws(() => parseConfigText(regionConfig(['{ address: 192.0.2.1 }'], hc), 'inline.yaml'), (err: Error) => {
      assert.match(err.message, message, hc);
      return true;
    }, hc);
  }
  // Still taken: a /regex/, a %-encoded path, an ordinary header.
  parseConfigText(regionConfig(['{ address: 192.0.2.1 }'], '{ body_match: "/ok|up/", path: "/h%C3%A9alth?full=1", headers: { X-Probe: "opengslb 1.0" } }'), 'inline.yaml');
});
