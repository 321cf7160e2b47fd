import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';
import { OpenGslbError } from '../../src/lib/errors.ts';

interface Case {
  name: string;
  /** The file, one string per line, so positions can be counted by eye. */
  yaml: string[];
  /** Each reported line, in order, must start with the matching entry ("FILE:LINE:COL: PATH: message…"). */
  expect: string[];
}

const SERVER = ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10 }]'];
const DOMAIN = ['domains:', '  - { name: app.example.test, regions: [eu-west] }'];

const cases: Case[] = [
  {
    name: 'reports a YAML syntax error with its position',
    yaml: ['regions:', '  - name: [eu-west', 'domains: []'],
    expect: ['x.yaml:3:1: (root): Flow sequence in block collection must be sufficiently indented and end with a ]'],
  },
  {
    name: 'reports a duplicate YAML key with its position',
    yaml: [...SERVER, ...DOMAIN, 'logging: { level: info }', 'logging: { level: debug }'],
    expect: ['x.yaml:7:1: (root): Map keys must be unique'],
  },
  {
    name: 'reports a document that is not a map',
    yaml: ['- regions'],
    expect: ['x.yaml:1:1: (root): got a list, expected a map with the keys mode, dns, regions, domains, logging'],
  },
  {
    name: 'requires regions and domains in overwatch mode',
    yaml: ['mode: overwatch'],
    expect: [
      'x.yaml:1:1: regions: is missing, expected a list of regions (required when mode is overwatch)',
      'x.yaml:1:1: domains: is missing, expected a list of domains (required when mode is overwatch)',
    ],
  },
  {
    name: 'reports includes in text that did not come from a file, which has no directory to resolve them against',
    yaml: [...SERVER, ...DOMAIN, 'includes:', '  - regions/*.yaml'],
    expect: ['x.yaml:6:1: includes: is followed only when the config is read from a file'],
  },
  {
    name: 'reports unknown keys at several depths at once, with the allowed keys and a suggestion',
    yaml: [
      'dnss: {}',
      'dns:',
      '  listen_addr: ":53"',
      'regions:',
      '  - name: eu-west',
      '    servers:',
      '      - { address: 192.0.2.10, wieght: 5 }',
      '    health_check: { type: http, expect_status: [200] }',
      ...DOMAIN,
    ],
    expect: [
      'x.yaml:1:1: dnss: unknown key "dnss" (did you mean "dns"?), expected one of mode, dns, regions, domains, logging, metrics, api, overwatch, agent',
      'x.yaml:3:3: dns.listen_addr: unknown key "listen_addr" (did you mean "listen_address"?), expected one of listen_address, default_ttl,',
      'x.yaml:7:32: regions[0].servers[0].wieght: unknown key "wieght" (did you mean "weight"?), expected one of address, cname, port, weight, host, service',
      'x.yaml:8:33: regions[0].health_check.expect_status: unknown key "expect_status" (did you mean "expected_status"?), expected one of type, interval, timeout, path,',
    ],
  },
  {
    name: 'reports an IP address that is not one, with the expected forms',
    yaml: ['regions:', '  - name: eu-west', '    servers:', '      - address: 192.0.2.10', '      - address: "10.0.0.300"', ...DOMAIN],
    expect: ['x.yaml:5:18: regions[0].servers[1].address: "10.0.0.300" is not an IP address, expected an IPv4 or IPv6 literal'],
  },
  {
    name: 'reports a wrong scalar type and names the expected type',
    yaml: [...SERVER, ...DOMAIN, 'dns:', '  default_ttl: sixty', '  return_last_healthy: yes'],
    expect: [
      'x.yaml:7:16: dns.default_ttl: "sixty" is not an integer, expected an integer from 0 to 2147483647',
      'x.yaml:8:24: dns.return_last_healthy: "yes" is not a boolean, expected true or false',
    ],
  },
  {
    name: 'reports a map where a list is expected',
    yaml: ['regions:', '  - name: eu-west', '    servers: { address: 192.0.2.10 }', ...DOMAIN],
    expect: ['x.yaml:3:14: regions[0].servers: got a map, expected a list of servers'],
  },
  {
    name: 'reports integers out of range',
    yaml: ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10, port: 70000, weight: -1 }]', ...DOMAIN, 'dns: { workers: 65 }'],
    expect: [
      'x.yaml:3:44: regions[0].servers[0].port: 70000 is out of range, expected an integer from 1 to 65535',
      'x.yaml:3:59: regions[0].servers[0].weight: -1 is out of range, expected an integer from 0 to 65535',
      'x.yaml:6:17: dns.workers: 65 is out of range, expected an integer from 1 to 64',
    ],
  },
  {
    name: 'reports TCP client prefix lengths out of range',
    yaml: [...SERVER, ...DOMAIN, 'dns:', '  tcp_client_ipv4_prefix_length: 33', '  tcp_client_ipv6_prefix_length: -1'],
    expect: [
      'x.yaml:7:34: dns.tcp_client_ipv4_prefix_length: 33 is out of range, expected an integer from 0 to 32',
      'x.yaml:8:34: dns.tcp_client_ipv6_prefix_length: -1 is out of range, expected an integer from 0 to 128',
    ],
  },
  {
    name: 'reports a duration without a unit and says a unit is required',
    yaml: [...SERVER, '    health_check: { interval: 30 }', ...DOMAIN],
    expect: ['x.yaml:4:31: regions[0].health_check.interval: "30" has no unit, expected a duration string with a unit such as "500ms", "30s"'],
  },
  {
    name: 'reports a duration in days, which Go duration strings lack',
    yaml: [...SERVER, ...DOMAIN, 'dns: { soa: { expire: 7d } }'],
    expect: ['x.yaml:6:23: dns.soa.expire: "7d" has the unknown unit "d" (there are no day or week units: write 24h or 168h)'],
  },
  {
    name: 'reports SOA timers that are not whole seconds',
    yaml: [...SERVER, ...DOMAIN, 'dns: { soa: { minimum: 1500ms } }'],
    expect: ['x.yaml:6:24: dns.soa.minimum: "1500ms" is not a whole number of seconds, expected a duration from 1s to 596523h'],
  },
  {
    name: 'reports a health-check timeout that is not below the interval',
    yaml: [...SERVER, '    health_check:', '      interval: 5s', '      timeout: 5s', ...DOMAIN],
    expect: ['x.yaml:6:16: regions[0].health_check.timeout: 5s is not shorter than the interval 5s, expected a timeout below the interval'],
  },
  {
    name: 'reports a default timeout that is not below a short interval, at the health check',
    yaml: [...SERVER, '    health_check: { interval: 2s }', ...DOMAIN],
    expect: ['x.yaml:4:19: regions[0].health_check.timeout: 5s is not shorter than the interval 2s'],
  },
  {
    name: 'reports a health-check keep_alive that is not a boolean',
    yaml: [...SERVER, '    health_check: { keep_alive: "yes" }', ...DOMAIN],
    expect: ['x.yaml:4:33: regions[0].health_check.keep_alive: "yes" is not a boolean, expected true or false'],
  },
  {
    name: 'refuses keep_alive on a tcp check, which has no HTTP connection to keep',
    yaml: [...SERVER, '    health_check: { type: tcp, keep_alive: true }', ...DOMAIN],
    expect: ['x.yaml:4:44: regions[0].health_check.keep_alive: true does not apply to type tcp, expected keep_alive only with type http or https'],
  },
  {
    name: 'refuses keep_alive on type none',
    yaml: [...SERVER, '    health_check: { type: none, keep_alive: true }', ...DOMAIN],
    expect: ['x.yaml:4:45: regions[0].health_check.keep_alive: true does not apply to type none, expected keep_alive only with type http or https'],
  },
  {
    name: 'reports a health-check path that does not start with a slash',
    yaml: [...SERVER, '    health_check: { path: health }', ...DOMAIN],
    expect: ['x.yaml:4:27: regions[0].health_check.path: "health" is invalid, expected a path that starts with "/" and has visible ASCII characters only (%-encode spaces and others)'],
  },
  {
    name: 'reports an unknown routing algorithm with the accepted ones',
    yaml: [...SERVER, 'domains:', '  - { name: app.example.test, regions: [eu-west], routing_algorithm: random }'],
    expect: ['x.yaml:5:70: domains[0].routing_algorithm: "random" is not a known routing algorithm, expected one of round-robin, weighted, failover'],
  },
  {
    name: 'reports a Go routing algorithm that is not available yet',
    yaml: [...SERVER, 'domains:', '  - { name: app.example.test, regions: [eu-west], routing_algorithm: Learned_Latency }'],
    expect: ['x.yaml:5:70: domains[0].routing_algorithm: routing_algorithm "Learned_Latency" is not available yet in this version; expected one of round-robin, weighted, failover, latency, geolocation'],
  },
  {
    name: 'reports when_all_down fallback without addresses, and addresses without the mode',
    yaml: [
      ...SERVER,
      'domains:',
      '  - { name: a.example.test, regions: [eu-west], when_all_down: fallback }',
      '  - { name: b.example.test, regions: [eu-west], fallback: [192.0.2.99] }',
    ],
    expect: [
      'x.yaml:5:64: domains[0].when_all_down: is "fallback" but the domain has no fallback addresses',
      'x.yaml:6:59: domains[1].fallback: is never answered without when_all_down: fallback',
    ],
  },
  {
    name: 'reports a Go smoothing_factor that disagrees with the health check that now owns the moving average',
    yaml: [
      'regions:',
      '  - { name: eu-west, servers: [{ address: 192.0.2.10 }], health_check: { ema_alpha: 0.5 } }',
      'domains:',
      '  - { name: a.example.test, regions: [eu-west], routing_algorithm: latency, latency_config: { smoothing_factor: 0.3 } }',
    ],
    expect: ['x.yaml:4:113: domains[0].latency_config.smoothing_factor: 0.3 differs from regions[0].health_check.ema_alpha (0.5)'],
  },
  {
    name: 'refuses a latency domain over a region that is never checked (health_check type none), naming the region',
    yaml: [
      'regions:',
      '  - { name: eu-west, servers: [{ address: 192.0.2.10 }], health_check: { type: http } }',
      '  - { name: us-east, servers: [{ address: 192.0.2.20 }, { address: 192.0.2.21 }], health_check: { type: none } }',
      '  - { name: agents-only, servers: [], health_check: { type: none } }',
      'domains:',
      '  - { name: a.example.test, regions: [eu-west, us-east], routing_algorithm: latency }',
      '  - { name: b.example.test, regions: [eu-west, us-east] }',
      '  - { name: c.example.test, regions: [eu-west, agents-only], routing_algorithm: latency }',
      'overwatch: { gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" } }',
    ],
    expect: [
      'x.yaml:6:48: domains[0].regions[1]: "us-east" (regions[1]) has health_check type none, so its 2 servers are never checked and never get a latency, ' +
        'but latency routing ranks servers by their check round-trip time: expected a health check (type http, https or tcp) on that region, or another routing_algorithm for this domain',
    ],
  },
  {
    name: 'reports an unknown log level and format',
    yaml: [...SERVER, ...DOMAIN, 'logging: { level: trace, format: xml }'],
    expect: [
      'x.yaml:6:19: logging.level: "trace" is not a known log level, expected one of debug, info, warn, error',
      'x.yaml:6:34: logging.format: "xml" is not a known log format, expected one of json, text',
    ],
  },
  {
    name: 'reports a UDP I/O mode other than auto or dgram',
    yaml: [...SERVER, ...DOMAIN, 'dns: { udp_io: recvmmsg }'],
    expect: ['x.yaml:6:16: dns.udp_io: "recvmmsg" is not a known UDP I/O mode, expected one of auto, dgram'],
  },
  {
    name: 'reports a listen address whose host is not an IP literal',
    yaml: [...SERVER, ...DOMAIN, 'dns: { listen_address: "localhost:53" }'],
    expect: ['x.yaml:6:24: dns.listen_address: "localhost:53" has the host "localhost", which is not an IP literal'],
  },
  {
    name: 'reports an IPv6 listen address without brackets',
    yaml: [...SERVER, ...DOMAIN, 'dns: { listen_address: "::1:53" }'],
    expect: ['x.yaml:6:24: dns.listen_address: "::1:53" has an IPv6 host without brackets, expected HOST:PORT such as "127.0.0.1:53", "[::1]:53" or ":53"'],
  },
  {
    name: 'reports bad domain names: empty label, long label, wildcard, bad character',
    yaml: [
      ...SERVER,
      'domains:',
      '  - { name: a..example.test, regions: [eu-west] }',
      `  - { name: ${'x'.repeat(64)}.test, regions: [eu-west] }`,
      '  - { name: "*.example.test", regions: [eu-west] }',
      '  - { name: app!.example.test, regions: [eu-west] }',
    ],
    expect: [
      'x.yaml:5:13: domains[0].name: "a..example.test" has an empty label',
      `x.yaml:6:13: domains[1].name: "${'x'.repeat(64)}.test" has a label of 64 characters, expected at most 63 per label`,
      'x.yaml:7:13: domains[2].name: "*.example.test" is a wildcard, which is not supported yet',
      'x.yaml:8:13: domains[3].name: "app!.example.test" contains "!", expected only letters, digits, hyphens and underscores',
    ],
  },
  {
    name: 'reports an e-mail rname with a dot in the local part',
    yaml: [...SERVER, ...DOMAIN, 'dns: { soa: { rname: first.last@example.test } }'],
    expect: ['x.yaml:6:22: dns.soa.rname: "first.last@example.test" has a dot in the part before "@"'],
  },
  {
    name: 'reports missing required keys where their parent is',
    yaml: ['regions:', '  - servers: [{ port: 80 }]', '  - name: us-east', 'domains:', '  - { name: app.example.test }'],
    expect: [
      'x.yaml:2:5: regions[0].name: is missing, expected a region name',
      'x.yaml:2:15: regions[0].servers[0]: has neither address nor cname, expected an IP address (answered as A/AAAA) or a cname target name (answered as a CNAME)',
      'x.yaml:3:5: regions[1].servers: is missing, expected a list of servers',
      'x.yaml:5:5: domains[0].regions: is missing, expected a list of region names',
    ],
  },
  {
    name: 'reports an empty server list when no agent can fill it (the agent channel is off)',
    yaml: ['regions:', '  - { name: eu-west, servers: [] }', ...DOMAIN],
    expect: ['x.yaml:2:31: regions[0].servers: is empty and the agent channel is off, so nothing can fill it: expected at least one server, or overwatch.gossip.encryption_key so agents can report backends for this region'],
  },
  {
    name: 'reports a duplicate region name and the line of the first one',
    yaml: [...SERVER, '  - name: eu-west', '    servers: [{ address: 192.0.2.20 }]', ...DOMAIN],
    expect: ['x.yaml:4:11: regions[1].name: "eu-west" is already defined at line 2 (regions[0]), expected unique region names'],
  },
  {
    name: 'reports a duplicate domain name after normalisation, naming both lines',
    yaml: [...SERVER, 'domains:', '  - { name: app.example.test, regions: [eu-west] }', '  - { name: APP.example.test., regions: [eu-west] }'],
    expect: ['x.yaml:6:13: domains[1].name: "app.example.test" is already defined at line 5 (domains[0]), expected unique domain names'],
  },
  {
    name: 'reports a domain that references an undefined region, at the list item',
    yaml: [...SERVER, 'domains:', '  - { name: app.example.test, regions: [eu-west, us-east] }'],
    expect: ['x.yaml:5:50: domains[0].regions[1]: "us-east" is not a region in regions, expected one of eu-west'],
  },
  {
    name: 'refuses two region names that differ only in case, naming both spellings',
    yaml: [...SERVER, '  - name: EU-West', '    servers: [{ address: 192.0.2.20 }]', ...DOMAIN],
    expect: ['x.yaml:4:11: regions[1].name: "EU-West" differs only in case from "eu-west" defined at line 2 (regions[0]), expected region names that differ in more than case'],
  },
  {
    name: 'names the defined spelling when a domain references a region in another case',
    yaml: [...SERVER, 'domains:', '  - { name: app.example.test, regions: [EU-West] }'],
    expect: ['x.yaml:5:41: domains[0].regions[0]: "EU-West" is not a region in regions: regions[0].name (line 2) is "eu-west", which differs only in case; region names are case-sensitive, expected "eu-west"'],
  },
  {
    name: 'names the defined spelling when default_region or a custom mapping uses another case',
    yaml: [...SERVER, ...DOMAIN, 'overwatch:', '  geolocation:', '    default_region: EU-WEST', '    custom_mappings: [{ cidr: 10.0.0.0/8, region: Eu-West }]'],
    expect: [
      'x.yaml:8:21: overwatch.geolocation.default_region: "EU-WEST" is not a region in regions: regions[0].name (line 2) is "eu-west", which differs only in case; region names are case-sensitive, expected "eu-west"',
      'x.yaml:9:51: overwatch.geolocation.custom_mappings[0].region: "Eu-West" is not a region in regions: regions[0].name (line 2) is "eu-west", which differs only in case; region names are case-sensitive, expected "eu-west"',
    ],
  },
  {
    name: 'reports a region listed twice in one domain',
    yaml: [...SERVER, 'domains:', '  - { name: app.example.test, regions: [eu-west, eu-west] }'],
    expect: ['x.yaml:5:50: domains[0].regions[1]: "eu-west" is listed twice (first at line 5), expected each region name once'],
  },
  {
    name: 'reports the same address and port twice in one region, after normalisation',
    yaml: ['regions:', '  - name: eu-west', '    servers:', '      - address: 192.0.2.10', '      - address: "::ffff:192.0.2.10"', ...DOMAIN],
    expect: ['x.yaml:5:18: regions[0].servers[1].address: 192.0.2.10:80 is already regions[0].servers[0] (line 4), expected each address and port once per region'],
  },
  {
    name: 'reports a server service that names no domain',
    yaml: ['regions:', '  - name: eu-west', '    servers: [{ address: 192.0.2.10, service: www.example.test }]', ...DOMAIN],
    expect: ['x.yaml:3:47: regions[0].servers[0].service: "www.example.test" is not a domain in domains, expected one of app.example.test'],
  },
  {
    name: 'reports a domain outside every zone in dns.zones',
    yaml: [...SERVER, 'dns: { zones: [example.test, example.org] }', 'domains:', '  - { name: app.example.net, regions: [eu-west] }'],
    expect: ['x.yaml:6:13: domains[0].name: "app.example.net" is not inside any zone in dns.zones (example.test, example.org), expected a name equal to or below one of them'],
  },
  {
    name: 'reports a zone listed twice',
    yaml: [...SERVER, ...DOMAIN, 'dns:', '  zones:', '    - example.test', '    - { name: Example.Test. }'],
    expect: ['x.yaml:9:15: dns.zones[1].name: "example.test" is already listed at line 8, expected each zone once'],
  },
  {
    name: 'reports a bad continent and a bad country code',
    yaml: [...SERVER, '    countries: [DE, DEU]', '    continents: [EU, XX]', ...DOMAIN],
    expect: [
      'x.yaml:4:21: regions[0].countries[1]: "DEU" is invalid, expected a two-letter ISO 3166-1 country code such as "DE"',
      'x.yaml:5:22: regions[0].continents[1]: "XX" is not a known continent code, expected one of AF, AN, AS, EU, NA, OC, SA',
    ],
  },
  {
    name: 'reports a two-letter code that is not an assigned country',
    yaml: [...SERVER, '    countries: [DE, zz, UK]', ...DOMAIN],
    expect: [
      'x.yaml:4:21: regions[0].countries[1]: "ZZ" is not an ISO 3166-1 alpha-2 country code, expected an assigned code such as "DE", "US" or "JP"',
      'x.yaml:4:25: regions[0].countries[2]: "UK" is not an ISO 3166-1 alpha-2 country code',
    ],
  },
  {
    name: 'reports a country and a continent in two regions, naming both places',
    yaml: [
      ...SERVER,
      '    countries: [DE, FR]',
      '    continents: [EU]',
      '  - name: eu-central',
      '    servers: [{ address: 192.0.2.11 }]',
      '    countries: [AT, fr]',
      '    continents: [eu, AS]',
      ...DOMAIN,
    ],
    expect: [
      'x.yaml:8:21: regions[1].countries[1]: "FR" is already in region "eu-west" at x.yaml:4:21, expected each country in one region only (region "eu-central" lists it too)',
      'x.yaml:9:18: regions[1].continents[0]: "EU" is already in region "eu-west" at x.yaml:5:18, expected each continent in one region only (region "eu-central" lists it too)',
    ],
  },
  {
    name: 'reports the same network mapped twice, host bits or not, naming both places',
    yaml: [
      ...SERVER,
      ...DOMAIN,
      'overwatch:',
      '  geolocation:',
      '    custom_mappings:',
      '      - { cidr: 10.0.0.0/8, region: eu-west }',
      '      - { cidr: 10.0.0.0/16, region: eu-west }',
      '      - { cidr: 10.9.9.9/8, region: eu-west, comment: again }',
    ],
    expect: ['x.yaml:11:17: overwatch.geolocation.custom_mappings[2].cidr: 10.0.0.0/8 is already mapped at x.yaml:9:17 (custom_mappings[0]), expected each network once'],
  },
  {
    name: 'refuses server, check, fallback and name-server addresses that no client can connect to, and keeps loopback and private ones',
    yaml: [
      'regions:',
      '  - name: eu-west',
      '    servers:',
      '      - address: 0.0.0.0',
      '      - address: "::"',
      '      - address: 255.255.255.255',
      '      - address: 239.1.2.3',
      '      - { address: "ff02::1", port: 81 }',
      '      - { address: 127.0.0.1, check_address: 224.0.0.1 }',
      '      - { address: 10.0.0.1 }',
      '      - { address: "::1" }',
      'domains:',
      '  - { name: app.example.test, regions: [eu-west], when_all_down: fallback, fallback: ["::ffff:0.0.0.0"] }',
      'dns: { zones: [{ name: example.test, nameservers: [{ name: ns1.example.test, addresses: [224.0.0.53] }] }] }',
      'agent:',
      '  backends: [{ service: app.example.test, address: 255.255.255.255, port: 80 }]',
    ],
    expect: [
      'x.yaml:4:18: regions[0].servers[0].address: "0.0.0.0" is the unspecified address (it names no host), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:5:18: regions[0].servers[1].address: "::" is the unspecified address (it names no host), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:6:18: regions[0].servers[2].address: "255.255.255.255" is the IPv4 broadcast address, which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:7:18: regions[0].servers[3].address: "239.1.2.3" is a multicast address (224.0.0.0/4), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:8:20: regions[0].servers[4].address: "ff02::1" is a multicast address (ff00::/8), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:9:46: regions[0].servers[5].check_address: "224.0.0.1" is a multicast address (224.0.0.0/4), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:13:87: domains[0].fallback[0]: "0.0.0.0" is the unspecified address (it names no host), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:14:90: dns.zones[0].nameservers[0].addresses[0]: "224.0.0.53" is a multicast address (224.0.0.0/4), which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
      'x.yaml:16:52: agent.backends[0].address: "255.255.255.255" is the IPv4 broadcast address, which no client can connect to, expected a unicast address (loopback and private addresses are fine)',
    ],
  },
  {
    name: 'refuses flow lists nested 1000 deep with the nesting limit, not a stack overflow',
    yaml: [...SERVER, ...DOMAIN, `x: ${'['.repeat(1000)}${']'.repeat(1000)}`],
    expect: ['x.yaml:6:103: (root): maps and lists are nested more than 100 levels deep here, expected at most 100 levels (a config nests about 8)'],
  },
  {
    name: 'refuses block lists nested 1000 deep with the nesting limit, not a stack overflow',
    yaml: [...SERVER, ...DOMAIN, 'x:', ...Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i + 1)}-`)],
    expect: ['x.yaml:106:101: (root): maps and lists are nested more than 100 levels deep here'],
  },
  {
    name: 'reads maps and lists nested exactly 100 deep (then reports the unknown key)',
    yaml: [...SERVER, ...DOMAIN, `x: ${'['.repeat(99)}${']'.repeat(99)}`],
    expect: ['x.yaml:6:1: x: unknown key "x"'],
  },
  {
    name: 'reports problems in the Go original sections too',
    yaml: [
      ...SERVER,
      ...DOMAIN,
      'overwatch:',
      '  gossip: { encryption_key: short }',
      '  geolocation: { default_region: asia }',
      'agent:',
      '  backends: [{ service: app.example.test, address: 10.0.0.1 }]',
      'api: { allowed_networks: [10.0.0.1] }',
    ],
    expect: [
      // A secret is never quoted: the message may end up in a log.
      'x.yaml:7:29: overwatch.gossip.encryption_key: the secret value is invalid, expected standard base64 of exactly 32 bytes',
      'x.yaml:8:34: overwatch.geolocation.default_region: "asia" is not a region in regions, expected one of eu-west',
      'x.yaml:10:14: agent.backends[0].port: is missing, expected an integer from 1 to 65535',
      'x.yaml:11:27: api.allowed_networks[0]: "10.0.0.1" has no prefix length',
    ],
  },
  {
    name: 'reports an api.allowed_hosts entry that is not a host name, and a name given twice',
    yaml: [...SERVER, ...DOMAIN, 'api: { allowed_hosts: ["gslb.example.net:8080", gslb.example.net, GSLB.Example.NET., "gslb:http"] }'],
    expect: [
      'x.yaml:6:24: api.allowed_hosts[0]: "gslb.example.net:8080" has a port (":8080"), expected the host name alone: leave out the port, a name matches with any port',
      'x.yaml:6:67: api.allowed_hosts[2]: "gslb.example.net" is listed twice (first at line 6), expected each host name once',
      'x.yaml:6:86: api.allowed_hosts[3]: "gslb:http" contains ":", expected only letters, digits, hyphens and underscores in each label',
    ],
  },
  {
    name: 'reports several problems of different kinds at once, in file order',
    yaml: [
      'mode: both',
      'dns: { default_ttl: -5 }',
      'regions:',
      '  - name: eu-west',
      '    servers: [{ address: 192.0.2.999 }]',
      'domains:',
      '  - { name: app.example.test, regions: [nowhere] }',
    ],
    expect: [
      'x.yaml:1:7: mode: "both" is not a known mode, expected one of overwatch, agent',
      'x.yaml:2:21: dns.default_ttl: -5 is out of range',
      'x.yaml:5:26: regions[0].servers[0].address: "192.0.2.999" is not an IP address',
      'x.yaml:7:41: domains[0].regions[0]: "nowhere" is not a region in regions',
    ],
  },
  {
    name: 'refuses a predictive threshold of 0, which would drain for ever',
    yaml: [
      'mode: agent',
      'agent:',
      '  identity: { service_token: agent-token-0123456789abcdef, region: eu, cert_path: ./agent.crt, key_path: ./agent.key }',
      '  backends: [{ service: app.example.test, address: 127.0.0.1, port: 9, health_check: { type: tcp } }]',
      '  gossip: { encryption_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", overwatch_nodes: ["127.0.0.1:9"] }',
      '  predictive: { enabled: true, cpu: { threshold: 0 }, error_rate: { threshold: 0 } }',
    ],
    expect: [
      'x.yaml:6:50: agent.predictive.cpu.threshold: 0 is out of range, expected a number greater than 0 and at most 100',
      'x.yaml:6:80: agent.predictive.error_rate.threshold: 0 is out of range, expected a number greater than 0 and at most 1000000000',
    ],
  },
  {
    name: 'refuses an api.token no client could send in a header (a space, a non-ASCII character), without echoing it',
    yaml: [...SERVER, ...DOMAIN, 'api:', '  token: "abcdefgh ijklmnop"', 'overwatch:', '  peers: [{ url: "http://192.0.2.9:8080", token: "abcdefghijklmnop€" }]'],
    expect: [
      'x.yaml:7:10: api.token: the secret value is invalid, expected printable ASCII characters without spaces (as "openssl rand -hex 32" makes), what an Authorization header carries from any client',
      'x.yaml:9:50: overwatch.peers[0].token: the secret value is invalid, expected printable ASCII characters without spaces (as "openssl rand -hex 32" makes), what an Authorization header carries from any client',
    ],
  },
  // Tags: a value tagged with something this loader does not understand (an Ansible "!vault", a
  // language-specific "!!js/function", the YAML 1.1 "!!binary") must not be used as its plain text.
  {
    name: 'reports a value with an unknown local tag instead of using its text',
    yaml: [...SERVER, ...DOMAIN, 'api:', '  token: !vault abcdefabcdefabcdefabcdefabcdef'],
    expect: ['x.yaml:7:10: api.token: has the tag !vault, which is not understood here, expected a value without a tag'],
  },
  {
    name: 'reports YAML 1.1 and language-specific tags (!!binary, !!js/function, !!set) instead of reading them',
    yaml: [...SERVER, ...DOMAIN, 'dns:', '  listen_address: !!binary OjUz', 'logging: !!set', '  ? level', 'metrics: { address: !!js/function "f" }'],
    expect: [
      'x.yaml:7:19: dns.listen_address: has the tag !!binary, which is not understood here',
      'x.yaml:8:10: logging: has the tag !!set, which is not understood here',
      'x.yaml:10:21: metrics.address: has the tag !!js/function, which is not understood here',
    ],
  },
  {
    name: 'reports a core tag that does not fit its value (!!int on text)',
    yaml: [...SERVER, ...DOMAIN, 'dns: { listen_address: !!int ":53" }'],
    expect: ['x.yaml:6:24: dns.listen_address: has the tag !!int, which is not understood here'],
  },
  {
    name: 'reads a file with a %YAML 1.1 directive as YAML 1.2 all the same: "yes" is not a boolean',
    yaml: ['%YAML 1.1', '---', ...SERVER, ...DOMAIN, 'dns: { return_last_healthy: yes }'],
    expect: ['x.yaml:8:29: dns.return_last_healthy: "yes" is not a boolean, expected true or false'],
  },
  // Aliases: each one counts as every node it stands for, so a few hundred bytes cannot make the
  // validator walk (and report on) millions of nodes ("billion laughs").
  {
    name: 'refuses aliases that stand for more nodes than a config holds, at the alias that crosses the limit',
    yaml: [
      'x: &s [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5, 192.0.2.6, 192.0.2.7, 192.0.2.8, 192.0.2.9, 192.0.2.10]',
      'y: &t [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]',
      'z: &u [*t, *t, *t, *t, *t, *t, *t, *t, *t, *t]',
      'w: &v [*u, *u, *u, *u, *u, *u, *u, *u, *u, *u]',
      'v: &w [*v, *v, *v, *v, *v, *v, *v, *v, *v, *v]',
      'u: [*w, *w, *w, *w, *w, *w, *w, *w, *w, *w]',
    ],
    expect: ['x.yaml:5:36: v[7]: *v brings the nodes the aliases of this file stand for above 100000, expected aliases that repeat less'],
  },
  {
    name: 'reports a list used as a key where it is written, not at the top of the map',
    yaml: [...SERVER, ...DOMAIN, '? [a, b]', ': 1'],
    expect: ['x.yaml:6:3: (root): has a key that is a list, expected a plain key name'],
  },
  {
    name: 'reports a map used as a header name where it is written',
    yaml: [
      'regions:',
      '  - name: eu-west',
      '    servers: [{ address: 192.0.2.10 }]',
      '    health_check:',
      '      type: http',
      '      headers:',
      '        ? { a: b }',
      '        : x',
      ...DOMAIN,
    ],
    expect: ['x.yaml:7:11: regions[0].health_check.headers: has a key that is a map, expected a header name'],
  },
  {
    // The probe keeps one value per header name, whatever its case: the first value was dropped without a word.
    name: 'reports two health-check headers whose names differ only in case',
    yaml: [
      'regions:',
      '  - name: eu-west',
      '    servers: [{ address: 192.0.2.10 }]',
      '    health_check:',
      '      type: http',
      '      headers: { X-Env: prod, x-env: staging }',
      ...DOMAIN,
    ],
    expect: ['x.yaml:6:38: regions[0].health_check.headers.x-env: names the same header as "X-Env" (header names ignore case), expected each header once'],
  },
];

for (const c of cases) {
  test(c.name, () => {
    const err = catchError(() => parseConfigText(c.yaml.join('\n'), 'x.yaml'));
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.ok(err instanceof OpenGslbError);
    assert.equal(err.code, 'OPENGSLB_ERR_CONFIG_INVALID');
    const lines = err.message.split('\n');
    assert.equal(lines.length, c.expect.length, `got:\n${err.message}`);
    c.expect.forEach((prefix, i) => {
      assert.ok(lines[i]?.startsWith(prefix), `line ${i + 1}:\n  got      ${lines[i]}\n  expected ${prefix}…`);
    });
    assert.equal(err.problems.length, c.expect.length);
  });
}

test('gives each problem its file, line, column and path as fields too', () => {
  const err = catchError(() => parseConfigText([...SERVER, ...DOMAIN, 'dns: { default_ttl: x }'].join('\n'), 'conf/a.yaml'));
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(err.problems, [
    {
      file: 'conf/a.yaml',
      line: 6,
      col: 21,
      path: 'dns.default_ttl',
      message: '"x" is not an integer, expected an integer from 0 to 2147483647',
    },
  ]);
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected the call to throw');
}
