import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseDomainName, normaliseMailbox } from '../../src/config/domain-name.ts';
import { formatDuration, parseDuration } from '../../src/config/duration.ts';
import { parseEndpoint } from '../../src/config/endpoint.ts';
import { parseCidr, parseIp } from '../../src/config/ip.ts';

// Each table row: the input text and either the normal form or a phrase the error must contain.
type Row<T> = { name: string; input: string; expect: T | { error: string } };

function run<T>(rows: readonly Row<T>[], parse: (text: string) => object, pick: (ok: Record<string, unknown>) => T): void {
  for (const row of rows) {
    test(row.name, () => {
      const result = parse(row.input) as Record<string, unknown>;
      if (typeof row.expect === 'object' && row.expect !== null && 'error' in row.expect) {
        assert.ok('error' in result, `expected an error, got ${JSON.stringify(result)}`);
        assert.match(String(result.error), new RegExp(escape(row.expect.error)));
      } else {
        assert.ok(!('error' in result), `unexpected error: ${String(result.error)}`);
        assert.deepEqual(pick(result), row.expect);
      }
    });
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

run<number>([
  { name: 'parses "500ms" as 500 milliseconds', input: '500ms', expect: 500 },
  { name: 'parses "30s" as 30000 milliseconds', input: '30s', expect: 30_000 },
  { name: 'parses a compound duration "1h30m"', input: '1h30m', expect: 5_400_000 },
  { name: 'parses "168h" as one week', input: '168h', expect: 604_800_000 },
  { name: 'parses a fractional duration "1.5s" exactly', input: '1.5s', expect: 1500 },
  { name: 'parses microseconds that add up to whole milliseconds', input: '2000us', expect: 2 },
  { name: 'refuses a duration finer than a millisecond', input: '1500us', expect: { error: '"1500us" is finer than a millisecond' } },
  { name: 'parses "2000µs" with the micro sign', input: '2000µs', expect: 2 },
  { name: 'accepts the bare "0" as Go does', input: '0', expect: 0 },
  { name: 'refuses a number without a unit and says a unit is needed', input: '30', expect: { error: '"30" has no unit, expected a duration string with a unit' } },
  { name: 'refuses days, which Go lacks, and suggests hours', input: '1d', expect: { error: 'unknown unit "d" (there are no day or week units: write 24h or 168h)' } },
  { name: 'refuses a negative duration', input: '-5s', expect: { error: 'has a sign' } },
  { name: 'refuses trailing garbage after a duration', input: '5s!', expect: { error: 'is not a duration' } },
  { name: 'refuses a unit without a number', input: 'ms', expect: { error: 'is not a duration' } },
  { name: 'refuses the empty string', input: '', expect: { error: 'is empty' } },
  { name: 'refuses a fraction of a nanosecond instead of truncating it to 0', input: '0.5ns', expect: { error: '"0.5ns" is finer than a nanosecond, expected a whole number of milliseconds' } },
  { name: 'refuses digits below 1 ns after whole seconds', input: '1.0000000001s', expect: { error: 'is finer than a nanosecond' } },
  { name: 'refuses exponent notation and names the unit it read', input: '1e-12s', expect: { error: 'unknown unit "e"' } },
], parseDuration, (ok) => ok.ms as number);

test('formats milliseconds as the shortest Go duration', () => {
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(1500), '1s500ms');
  assert.equal(formatDuration(0), '0s');
});

run<string>([
  { name: 'keeps a plain IPv4 address', input: '192.0.2.1', expect: '192.0.2.1/4' },
  { name: 'compresses the longest run of zero groups in IPv6 (RFC 5952 §4.2.1)', input: '2001:0DB8:0000:0000:0000:0000:0000:0001', expect: '2001:db8::1/6' },
  { name: 'compresses the first of two equally long zero runs (RFC 5952 §4.2.3)', input: '2001:db8:0:0:1:0:0:1', expect: '2001:db8::1:0:0:1/6' },
  { name: 'does not compress a single zero group (RFC 5952 §4.2.2)', input: '2001:db8:0:1:1:1:1:1', expect: '2001:db8:0:1:1:1:1:1/6' },
  { name: 'lower-cases IPv6 hex digits', input: 'FE80::ABCD', expect: 'fe80::abcd/6' },
  { name: 'turns an IPv4-mapped IPv6 address into IPv4', input: '::ffff:192.0.2.1', expect: '192.0.2.1/4' },
  { name: 'turns a hex IPv4-mapped IPv6 address into IPv4', input: '::FFFF:c000:0201', expect: '192.0.2.1/4' },
  { name: 'keeps the unspecified IPv6 address', input: '::', expect: '::/6' },
  { name: 'keeps the IPv6 loopback', input: '0:0:0:0:0:0:0:1', expect: '::1/6' },
  { name: 'refuses an IPv4 octet above 255', input: '10.0.0.300', expect: { error: '"10.0.0.300" is not an IP address, expected an IPv4 or IPv6 literal' } },
  { name: 'refuses IPv4 octets with leading zeros', input: '010.0.0.1', expect: { error: 'is not an IP address' } },
  { name: 'refuses an IPv6 address with two "::"', input: '1::2::3', expect: { error: 'is not an IP address' } },
  { name: 'refuses an IPv6 address with nine groups', input: '1:2:3:4:5:6:7:8:9', expect: { error: 'is not an IP address' } },
  { name: 'refuses an IPv6 zone index', input: 'fe80::1%eth0', expect: { error: 'has a zone index' } },
  { name: 'refuses a host name', input: 'localhost', expect: { error: 'is not an IP address' } },
], parseIp, (ok) => `${String(ok.address)}/${String(ok.family)}`);

run<string>([
  { name: 'normalises the address of a CIDR prefix', input: '2001:DB8:0::/32', expect: '2001:db8::/32' },
  { name: 'turns an IPv4-mapped CIDR prefix into the IPv4 prefix', input: '::ffff:10.0.0.0/104', expect: '10.0.0.0/8' },
  { name: 'refuses a bare address where a prefix is needed', input: '10.0.0.1', expect: { error: 'has no prefix length' } },
  { name: 'refuses an IPv4 prefix longer than 32', input: '10.0.0.0/33', expect: { error: 'prefix length over 32' } },
  { name: 'refuses a prefix length with a leading zero', input: '10.0.0.0/08', expect: { error: '"10.0.0.0/08" has a prefix length with a leading zero, expected a CIDR prefix' } },
  { name: 'refuses an IPv6 prefix length with a leading zero', input: '2001:db8::/032', expect: { error: 'has a prefix length with a leading zero' } },
  { name: 'accepts the prefix length 0', input: '0.0.0.0/0', expect: '0.0.0.0/0' },
], parseCidr, (ok) => String(ok.cidr));

run<string>([
  { name: 'lower-cases a name and drops the trailing dot', input: 'App.Example.TEST.', expect: 'app.example.test' },
  { name: 'accepts underscores and hyphens in labels', input: '_dmarc.my-host.example.test', expect: '_dmarc.my-host.example.test' },
  { name: 'accepts a 63-character label', input: `${'a'.repeat(63)}.test`, expect: `${'a'.repeat(63)}.test` },
  { name: 'refuses a 64-character label', input: `${'a'.repeat(64)}.test`, expect: { error: 'a label of 64 characters, expected at most 63' } },
  { name: 'refuses a name longer than 255 octets in wire form', input: Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.'), expect: { error: 'octets long in wire form, expected at most 255' } },
  { name: 'accepts a name of exactly 255 octets in wire form', input: ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.'), expect: ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.') },
  { name: 'refuses an empty label', input: 'a..example.test', expect: { error: 'has an empty label' } },
  { name: 'refuses a wildcard for now', input: '*.example.test', expect: { error: 'is a wildcard, which is not supported yet' } },
  { name: 'refuses a space and names the character', input: 'my host.test', expect: { error: 'contains " "' } },
  { name: 'refuses non-ASCII and points to the xn-- form', input: 'bücher.test', expect: { error: 'xn-- form' } },
  { name: 'refuses the root name', input: '.', expect: { error: 'is the root name' } },
  // Lower-casing is ASCII only: the Kelvin sign (U+212A) would become "k" and the dotted capital I
  // (U+0130) "i" plus a combining dot, turning a non-ASCII name into another, ASCII or garbled, one.
  { name: 'refuses the Kelvin sign instead of lower-casing it to "k"', input: 'app.example.\u212Aest', expect: { error: 'contains "\u212A" (write internationalised names in their xn-- form)' } },
  { name: 'names a dotted capital I as the offending character', input: '\u0130stanbul.test', expect: { error: 'contains "\u0130"' } },
], normaliseDomainName, (ok) => String(ok.name));

run<string>([
  { name: 'turns an e-mail RNAME into domain-name form', input: 'hostmaster@Example.test', expect: 'hostmaster.example.test' },
  { name: 'keeps an RNAME already in domain-name form', input: 'hostmaster.example.test.', expect: 'hostmaster.example.test' },
  { name: 'refuses a dot in the e-mail local part', input: 'host.master@example.test', expect: { error: 'has a dot in the part before "@"' } },
  { name: 'refuses an e-mail with nothing before "@"', input: '@example.test', expect: { error: 'nothing before "@"' } },
], normaliseMailbox, (ok) => String(ok.name));

const listenRules = { host: 'ip', allowEmptyHost: true, minPort: 0 } as const;
run<string>([
  { name: 'reads ":53" as all interfaces on port 53', input: ':53', expect: 'null 53' },
  { name: 'reads an IPv4 host and port', input: '127.0.0.1:8053', expect: '127.0.0.1 8053' },
  { name: 'reads a bracketed IPv6 host and normalises it', input: '[2001:DB8::0:1]:53', expect: '2001:db8::1 53' },
  { name: 'accepts port 0 for listeners (the OS picks one)', input: '[::1]:0', expect: '::1 0' },
  { name: 'refuses an IPv6 host without brackets', input: '::1:53', expect: { error: 'IPv6 host without brackets' } },
  { name: 'refuses a host name where an IP literal is needed', input: 'localhost:53', expect: { error: 'has the host "localhost", which is not an IP literal' } },
  { name: 'refuses a missing port', input: '127.0.0.1', expect: { error: 'has no port' } },
  { name: 'refuses a port above 65535', input: ':65536', expect: { error: 'expected a port from 0 to 65535' } },
  { name: 'refuses brackets around an IPv4 host', input: '[127.0.0.1]:53', expect: { error: 'is not HOST:PORT' } },
], (text) => parseEndpoint(text, listenRules), (ok) => `${String(ok.host)} ${String(ok.port)}`);

run<string>([
  { name: 'accepts a host name for a peer endpoint', input: 'Overwatch-1.Example.com:7946', expect: 'overwatch-1.example.com 7946' },
  { name: 'refuses port 0 for a peer endpoint', input: 'overwatch-1.example.com:0', expect: { error: 'expected a port from 1 to 65535' } },
  { name: 'refuses ":PORT" for a peer endpoint', input: ':7946', expect: { error: 'has no host' } },
], (text) => parseEndpoint(text, { host: 'name', allowEmptyHost: false, minPort: 1 }), (ok) => `${String(ok.host)} ${String(ok.port)}`);
