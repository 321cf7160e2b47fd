// Cold path, main thread. The whole config file, defined once as data with the
// schema language of schema.ts: types, doc strings, defaults and limits. The
// validator, the docs test and the JSON Schema generator (json-schema.ts) read this.

import {
  bool, choice, cidr, domain, duration, endpoint, float, int, ip, list, mailbox, map, object, oneOf, str,
} from './schema.ts';
import type { DurationSchema, Schema } from './schema.ts';
import { HEADER_VALUE, REQUEST_PATH } from '../lib/http-syntax.ts';

/** Largest TTL or SOA timer, in seconds (RFC 2181 §8: TTLs are 31-bit). */
export const MAX_TTL_SEC = 2147483647;
/** Largest SOA timer as a Go duration string: the whole hours below MAX_TTL_SEC (about 68 years). */
const MAX_TTL_DURATION = '596523h';
/** Default dns.udp_receive_buffer: 1 MiB, NSD's default receive buffer. */
export const DEFAULT_UDP_RECEIVE_BUFFER = 1048576;
/**
 * The exact text overwatch.dnssec.security_acknowledgment must hold to turn
 * DNSSEC off: the Go original's validator literal (reference §2.4), kept word
 * for word so existing configs carry over.
 */
export const DNSSEC_ACKNOWLEDGMENT =
  'I understand that disabling DNSSEC removes cryptographic authentication of DNS responses and allows DNS spoofing attacks against my zones';
/** Most DNS worker threads; more than this would only contend for the same sockets. */
export const MAX_WORKERS = 64;

const REGION_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
const REGION_NAME_TEXT = 'a region name of letters, digits, ".", "_" and "-" such as "eu-west"';

/** Region names are referenced from domains; one rule for both places. */
/** api.token: printable ASCII without spaces (RFC 9110 field-value characters a browser's fetch() sends as they are). */
export const API_TOKEN_PATTERN = '^[\\x21-\\x7e]+$';
export const API_TOKEN_TEXT = 'printable ASCII characters without spaces (as "openssl rand -hex 32" makes), what an Authorization header carries from any client';

function regionName(doc: string) {
  return str({ doc, pattern: REGION_NAME_PATTERN, patternText: REGION_NAME_TEXT, maxLength: 63, required: true });
}

const GOSSIP_KEY_PATTERN = '^[A-Za-z0-9+/]{43}=$';
const GOSSIP_KEY_TEXT = 'standard base64 of exactly 32 bytes (44 characters): generate one with "openssl rand -base64 32"';

/** A gossip key; `mode` makes it required in that run mode. */
function gossipKey(doc: string, requiredInMode?: 'agent') {
  return str({ doc, pattern: GOSSIP_KEY_PATTERN, patternText: GOSSIP_KEY_TEXT, secret: true, requiredInMode });
}

/** Default largest gap between the agent's and the overwatch's clocks. */
export const DEFAULT_MAX_CLOCK_SKEW = '30s';

/** Default subject prefix of the NATS bus. */
export const DEFAULT_BUS_SUBJECT_PREFIX = 'opengslb';

/** agent.bus and overwatch.bus: the same NATS connection settings on both sides, plus `extra` (the overwatch's state_secret). */
function busSchema<const E extends Record<string, Schema>>(doc: string, extra: E) {
  return object({
    doc,
    keys: {
      ...extra,
      type: choice({ doc: 'The bus; `nats` is the only one. Absent: the bus is off.', values: ['nats'], noun: 'bus type' }),
      servers: list({
        doc: 'NATS servers as nats://HOST:PORT (or tls://HOST:PORT); the client connects to one and fails over to the others.',
        items: str({ doc: 'A server URL.', pattern: '^(nats|tls)://\\S+$', patternText: 'a URL such as "nats://nats-1.example.test:4222"' }),
        default: [],
        maxItems: 32,
        itemNoun: 'server URL',
      }),
      token: str({ doc: 'Token the NATS server expects (its authorization.token); or use `credentials_file`.', minLength: 1, secret: true }),
      credentials_file: str({ doc: 'A NATS .creds file (user JWT and NKey seed), relative to this file; or use `token`.', minLength: 1 }),
      tls: object({
        doc: 'TLS to the NATS servers; any of these turns it on.',
        keys: {
          ca_file: str({ doc: 'PEM file of the CA the servers\' certificates are checked against; unset: the system CAs.', minLength: 1 }),
          cert_file: str({ doc: 'PEM client certificate (with `key_file`), for servers that verify clients.', minLength: 1 }),
          key_file: str({ doc: 'PEM private key of `cert_file`.', minLength: 1 }),
        },
      }),
      subject_prefix: str({
        doc: 'First tokens of every subject the bus uses (`<prefix>.agents.<region>`, `<prefix>.acks.<agent id>`); the same on every agent and overwatch of a deployment.',
        default: DEFAULT_BUS_SUBJECT_PREFIX,
        pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$',
        patternText: 'dot-separated tokens of letters, digits, "_" and "-", such as "opengslb" or "prod.gslb"',
        maxLength: 128,
      }),
    },
  });
}

/** The check keys shared by region checks and agent backend checks; `hostDoc` says what `host` does in each. */
function healthCheckSchema(doc: string, host: ReturnType<typeof str>) {
  return object({
  doc,
  keys: {
    type: choice({
      doc: 'Check protocol; `none` marks every server healthy without checking (shown as unchecked).',
      values: ['http', 'https', 'tcp', 'none'],
      noun: 'health-check type',
      default: 'http',
    }),
    interval: duration({ doc: 'Time between two checks of one server.', default: '30s', min: '1s', max: '24h' }),
    timeout: duration({ doc: 'Time a check may take; must be shorter than `interval`.', default: '5s', min: '100ms', max: '1h' }),
    path: str({
      doc: 'HTTP(S) request path; a status listed in `expected_status` is healthy.',
      default: '/health',
      pattern: REQUEST_PATH.source,
      patternText: 'a path that starts with "/" and has visible ASCII characters only (%-encode spaces and others)',
      maxLength: 2048,
    }),
    host,
    failure_threshold: int({ doc: 'Consecutive failed checks before a server counts as down.', default: 3, min: 1, max: 100 }),
    success_threshold: int({ doc: 'Consecutive good checks before a down server counts as up again.', default: 2, min: 1, max: 100 }),
    expected_status: list({
      doc: 'HTTP status codes that count as healthy: codes (`200`) and inclusive ranges (`"200-299"`).',
      items: str({
        doc: 'A status code or a range "LOW-HIGH".',
        pattern: '^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$',
        patternText: 'a status code such as 200 or a range such as "200-399"',
      }),
      default: ['200-399'],
      minItems: 1,
      itemNoun: 'status code',
    }),
    headers: map({
      doc: 'Extra HTTP request headers sent with every check.',
      keyNoun: 'header name',
      values: str({ doc: 'Header value.', pattern: HEADER_VALUE.source, patternText: 'a header value of visible characters, spaces and tabs (no control characters)' }),
      default: {},
    }),
    body_match: str({
      doc: 'Text that must appear in the first 64 KiB of the response body; written as `/.../` it is a regular expression.',
      minLength: 1,
      maxLength: 4096,
    }),
    tls_verify: bool({ doc: 'Verify the HTTPS certificate chain and name (`host`, else the address).', default: true }),
    keep_alive: bool({
      doc: 'For `http` and `https`: keep one connection per server open and reuse it for the next check, instead of a new connection (and TLS handshake) per check. Latency samples then exclude the handshake.',
      default: false,
    }),
    ema_alpha: float({ doc: 'Weight of a new round-trip sample in the latency moving average used by latency routing.', default: 0.3, min: 0, exclusiveMin: true, max: 1 }),
  },
  });
}

const healthCheck = healthCheckSchema(
  'How the overwatch checks each server: a request every `interval`, given up after `timeout`.',
  str({
    doc: "Accepted for compatibility with the Go original, which ignores it for region checks; set `host` on each server instead.",
    minLength: 1,
    notUsedYet: true,
  }),
);

const backendHealthCheck = healthCheckSchema(
  'How the agent checks this backend: the same keys and defaults as a region\'s `health_check`.',
  str({
    doc: 'Host header and TLS server name of this backend\'s HTTP(S) check; absent means the address.',
    pattern: '^[^\\s/]+$',
    patternText: 'a host name without spaces or slashes',
  }),
);

const server = object({
  doc: 'One backend server of a region.',
  keys: {
    address: ip({ doc: 'IP literal answered in A or AAAA records and checked by the health checks. Each server has either `address` or `cname`.' }),
    cname: domain({
      doc: 'A target name answered as a CNAME instead of an address (a CDN or cloud load balancer); the server then needs `check_address`, and its check sends the target name as Host and TLS server name unless `host` says otherwise.',
    }),
    port: int({ doc: 'Port the health check connects to.', default: 80, min: 1, max: 65535 }),
    weight: int({
      doc: 'Share of answers under the weighted algorithm; 0 keeps the server out of weighted answers (it is still health-checked).',
      default: 100,
      min: 0,
      max: 65535,
    }),
    host: str({
      doc: 'Host header and TLS server name for this server\'s HTTP(S) check; absent means the address.',
      pattern: '^[^\\s/]+$',
      patternText: 'a host name without spaces or slashes',
    }),
    service: domain({
      doc: 'The domain this server answers for (a later version of the Go original); when set it must name a domain in `domains`.',
      notUsedYet: true,
    }),
    check_address: ip({ doc: 'Address the health check probes instead of `address` (for example a management interface).' }),
    check_port: int({ doc: 'Port the health check probes instead of `port`.', min: 1, max: 65535 }),
  },
});

const region = object({
  doc: 'A group of servers with one health-check setting.',
  keys: {
    name: regionName('Unique name, used by `domains[].regions`.'),
    servers: list({
      doc: 'The servers of this region. `[]` (written out) leaves the region to agents, which fill it with their backends; it needs the agent channel (overwatch.gossip.encryption_key).',
      items: server,
      required: true,
      itemNoun: 'server',
    }),
    health_check: healthCheck,
    countries: list({
      doc: 'ISO 3166-1 alpha-2 country codes (or XK) whose clients geolocation routing sends to this region; a country may be in one region only.',
      items: str({
        doc: 'Country code, any case; stored upper-case.',
        pattern: '^[A-Za-z]{2}$',
        patternText: 'a two-letter ISO 3166-1 country code such as "DE"',
        case: 'upper',
      }),
      default: [],
      uniqueItems: true,
      itemNoun: 'country code',
    }),
    continents: list({
      doc: 'Continent codes whose clients geolocation routing sends to this region when their country is in no region; a continent may be in one region only.',
      items: choice({
        doc: 'Continent code, any case; stored upper-case.',
        values: ['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'],
        noun: 'continent code',
      }),
      default: [],
      uniqueItems: true,
      itemNoun: 'continent code',
    }),
  },
});

const domainEntry = object({
  doc: 'A name the server answers for, and how it picks servers.',
  keys: {
    name: domain({ doc: 'Owner name, any case, trailing dot optional.', required: true }),
    routing_algorithm: choice({
      doc: 'How servers are picked among the healthy ones.',
      values: ['round-robin', 'weighted', 'failover', 'latency', 'geolocation', 'sticky'],
      noun: 'routing algorithm',
      default: 'round-robin',
      aliases: {
        roundrobin: 'round-robin',
        rr: 'round-robin',
        weight: 'weighted',
        'active-standby': 'failover',
        activestandby: 'failover',
        geo: 'geolocation',
      },
      notYet: ['learned_latency'],
    }),
    regions: list({
      doc: 'Regions whose servers answer for this name; the order is the failover priority.',
      items: regionName('Name of a region defined in `regions`.'),
      required: true,
      minItems: 1,
      uniqueItems: true,
      itemNoun: 'region name',
    }),
    ttl: int({
      doc: 'TTL of the answers in seconds; 0 means `dns.default_ttl`, as in the Go original.',
      min: 0,
      max: MAX_TTL_SEC,
      defaultText: 'dns.default_ttl',
    }),
    max_answers: int({ doc: 'How many distinct servers one answer carries.', default: 1, min: 1, max: 32 }),
    when_all_down: choice({
      doc: 'What to answer when every server of the asked family is down: SERVFAIL, the servers that were healthy last, every configured server (fail open), or the `fallback` addresses.',
      values: ['servfail', 'last_healthy', 'all', 'fallback'],
      noun: 'all-down mode',
      aliases: { 'last-healthy': 'last_healthy', fail_open: 'all' },
      defaultText: 'last_healthy when dns.return_last_healthy is true, else servfail',
    }),
    fallback: list({
      doc: 'Addresses answered when every server is down and `when_all_down` is `fallback`.',
      items: ip({ doc: 'IPv4 or IPv6 literal.' }),
      uniqueItems: true,
      itemNoun: 'address',
    }),
    latency_config: object({
      doc: 'Latency routing settings, used when `routing_algorithm` is `latency`.',
      keys: {
        smoothing_factor: float({
          doc: 'Accepted for compatibility with the Go original; the moving average belongs to the health check (`health_check.ema_alpha`), so when set it must equal that of every region of the domain.',
          min: 0,
          exclusiveMin: true,
          max: 1,
        }),
        max_latency_ms: int({ doc: 'Servers whose average round trip is above this are skipped while any server is below it.', default: 500, min: 1, max: 600000 }),
        min_samples: int({ doc: 'Samples every healthy server needs before latency decides; until then the domain answers round-robin.', default: 3, min: 1, max: 1000000 }),
        tie_margin_ms: float({ doc: 'Servers within this many milliseconds of the fastest count as tied and share answers round-robin.', default: 5, min: 0, max: 600000 }),
      },
    }),
    sticky: object({
      doc: 'Sticky routing settings, used when `routing_algorithm` is `sticky`: clients of one subnet keep landing on one server while it is healthy.',
      keys: {
        ipv4_prefix: int({ doc: 'Prefix length an IPv4 client address (ECS or source) is cut to: every client of one such network gets the same server.', default: 24, min: 0, max: 32 }),
        ipv6_prefix: int({ doc: 'Prefix length an IPv6 client address is cut to.', default: 56, min: 0, max: 128 }),
      },
    }),
  },
});

/** A SOA timer schema; it has a default only at dns level (`D` true), so the value type says whether null can occur. */
type SoaTimer<D extends boolean> = DurationSchema & { readonly kind: 'duration' } & (D extends true ? { readonly default: string } : unknown);

/** SOA keys; at dns level they carry defaults, inside a zone they override those, so they have none. */
function soaKeys<const D extends boolean>(withDefaults: D) {
  const timer = (doc: string, def: string): SoaTimer<D> =>
    duration({ doc, wholeSeconds: true, min: '1s', max: MAX_TTL_DURATION, ...(withDefaults ? { default: def } : {}) }) as SoaTimer<D>;
  return {
    mname: domain({ doc: 'Primary name server in the SOA.', defaultText: 'the name of the zone\'s first name server' }),
    rname: mailbox({
      doc: 'Responsible mailbox, as "hostmaster@example.com" or "hostmaster.example.com".',
      defaultText: 'hostmaster.<zone>',
    }),
    serial: int({
      doc: 'Fixed SOA serial.',
      min: 0,
      max: 4294967295,
      defaultText: 'derived from the zone\'s content: the same on every overwatch with the same config, one higher after every change',
    }),
    refresh: timer('SOA refresh timer.', '1h'),
    retry: timer('SOA retry timer.', '10m'),
    expire: timer('SOA expire timer.', '168h'),
    minimum: timer('Negative-caching TTL (RFC 2308 §4): how long resolvers cache NXDOMAIN and NODATA.', '60s'),
    ttl: timer('TTL of the SOA and NS records themselves.', '1h'),
  };
}

const nameserverEntry = oneOf({
  doc: 'A name server of the zone: a name, or a map with the name and its addresses.',
  variants: [
    domain({ doc: 'Name server name.' }),
    object({
      doc: 'Name server with addresses.',
      keys: {
        name: domain({ doc: 'Name server name.', required: true }),
        addresses: list({
          doc: 'Its IP addresses, answered as A/AAAA (and used as glue) when the name is inside one of our zones.',
          items: ip({ doc: 'IP literal.' }),
          default: [],
          uniqueItems: true,
          itemNoun: 'address',
        }),
      },
    }),
  ],
});

const nameservers = list({
  doc: 'The NS records of the zone apex, in order.',
  items: nameserverEntry,
  minItems: 1,
  itemNoun: 'name server',
  defaultText: 'ns1.<zone> without addresses',
});

const soaWithDefaults = object({ doc: 'SOA fields for every zone.', keys: soaKeys(true) });

const zoneEntry = oneOf({
  doc: 'A zone apex: a name, or a map that also overrides `dns.soa` fields and `dns.nameservers` for this zone.',
  variants: [
    domain({ doc: 'Zone apex.' }),
    object({
      doc: 'Zone with its own SOA fields or name servers.',
      keys: {
        name: domain({ doc: 'Zone apex.', required: true }),
        soa: object({ doc: 'SOA fields for this zone; each absent field comes from `dns.soa`.', keys: soaKeys(false) }),
        nameservers,
        records: list({
          doc: 'Static records of the zone, one zone-file line each: `"OWNER [TTL] [IN] TYPE RDATA"` (A, AAAA, CNAME, MX, TXT, CAA, SRV, NS, PTR). Names are relative to the zone unless they end in a dot; `@` is the apex; the TTL defaults to the zone\'s SOA `ttl`. NS below the apex delegates a child zone (answered as a referral).',
          items: str({ doc: 'One record in zone-file syntax, such as "www 300 IN CNAME app" or "@ MX 10 mail".', minLength: 1, maxLength: 70000 }),
          default: [],
          itemNoun: 'record',
        }),
      },
    }),
  ],
});

const dns = object({
  doc: 'The authoritative DNS server.',
  onlyInMode: 'overwatch',
  keys: {
    listen_address: endpoint({
      doc: 'UDP and TCP address to listen on. ":PORT" listens on all IPv4 interfaces (0.0.0.0); write "[::]:PORT" for IPv6. Port 0 lets the OS pick one (tests).',
      default: ':53',
      host: 'ip',
      allowEmptyHost: true,
      minPort: 0,
    }),
    default_ttl: int({ doc: 'TTL in seconds for domains without their own `ttl`.', default: 60, min: 0, max: MAX_TTL_SEC }),
    return_last_healthy: bool({
      doc: 'When every server of a domain is down, answer the last healthy ones instead of SERVFAIL.',
      default: false,
    }),
    workers: int({ doc: 'Number of DNS worker threads.', min: 1, max: MAX_WORKERS, defaultText: 'os.availableParallelism(), at most 64' }),
    zones: list({
      doc: 'Zones served authoritatively; every domain must lie inside one. Names outside every zone get REFUSED.',
      items: zoneEntry,
      minItems: 1,
      itemNoun: 'zone',
      defaultText: 'one zone per domain, with the domain name as apex',
    }),
    soa: soaWithDefaults,
    nameservers,
    udp_receive_buffer: int({
      doc: "Receive buffer (SO_RCVBUF) of each worker's UDP socket, in bytes: queries that arrive while the worker is busy wait here instead of being dropped. 0 keeps the kernel's default (net.core.rmem_default). Linux grants at most net.core.rmem_max; a smaller grant is logged at start.",
      default: DEFAULT_UDP_RECEIVE_BUFFER,
      min: 0,
      max: 268435456,
    }),
    udp_io: choice({
      doc: "How the workers answer UDP. auto: in batches (recvmmsg/sendmmsg through the bundled native addon, Linux) where the addon loads, else node:dgram; dgram: always node:dgram. The start log line says which path each worker uses and why.",
      values: ['auto', 'dgram'],
      noun: 'UDP I/O mode',
      default: 'auto',
    }),
    tcp_idle_timeout: duration({
      doc: 'A TCP connection with no query for this long is closed; the timeout shrinks as a worker fills up (RFC 7766 §6.2.3).',
      default: '10s',
      min: '100ms',
      max: '1h',
    }),
    tcp_frame_timeout: duration({
      doc: 'A TCP message that has started arriving must be complete within this long, or the connection is closed (slow senders).',
      default: '2s',
      min: '100ms',
      max: '1h',
    }),
    tcp_max_connections: int({ doc: 'Most open TCP connections per worker; at the cap a new connection closes the longest-idle one.', default: 256, min: 1, max: 65535 }),
    tcp_max_connections_per_client: int({
      doc: 'Most open TCP connections from one client (its network: see tcp_client_ipv4_prefix_length and tcp_client_ipv6_prefix_length) to the whole server, however many workers; the workers share one count.',
      default: 16,
      min: 1,
      max: 65535,
    }),
    tcp_client_ipv4_prefix_length: int({
      doc: 'IPv4 clients share one tcp_max_connections_per_client per network of this prefix length (32: each address).',
      default: 32,
      min: 0,
      max: 32,
    }),
    tcp_client_ipv6_prefix_length: int({
      doc: 'IPv6 clients share one tcp_max_connections_per_client per network of this prefix length (64: one subscriber\'s network, RFC 6177).',
      default: 64,
      min: 0,
      max: 128,
    }),
    tcp_max_queries_per_connection: int({
      doc: 'Most queries answered on one TCP connection before it is closed.',
      default: 10000,
      min: 1,
      max: 1000000,
    }),
    rrl: object({
      doc: 'Response rate limiting over UDP (BIND and Knot semantics, BIND\'s names): each client prefix earns `responses_per_second` credits per second and kind of response, and pays one per response; while it owes, responses are dropped, and every `slip`-th goes out truncated so real clients retry over TCP. Nothing is limited over TCP, nor for clients that return a valid DNS cookie.',
      keys: {
        enabled: bool({ doc: 'Limit responses.', default: false }),
        responses_per_second: int({ doc: 'Answers (NOERROR, with data or without) per second per client prefix, question name and type; 0 = not limited.', default: 20, min: 0, max: 1000000 }),
        nxdomains_per_second: int({ doc: 'NXDOMAIN answers per second per client prefix and zone (so a random-subdomain flood is one account); 0 = not limited.', min: 0, max: 1000000, defaultText: 'responses_per_second' }),
        errors_per_second: int({ doc: 'Error answers (REFUSED, SERVFAIL, FORMERR, …) per second per client prefix; 0 = not limited.', min: 0, max: 1000000, defaultText: 'responses_per_second' }),
        window: int({ doc: 'Seconds: an account owes at most `window` × its rate, so a client that stops is answered again within `window` seconds.', default: 15, min: 1, max: 3600 }),
        slip: int({ doc: 'Every `slip`-th limited response is sent truncated (TC=1, no records) instead of dropped; 0 = drop every one, 1 = truncate every one.', default: 2, min: 0, max: 10 }),
        ipv4_prefix_length: int({ doc: 'IPv4 clients are counted per network of this prefix length.', default: 24, min: 8, max: 32 }),
        ipv6_prefix_length: int({ doc: 'IPv6 clients are counted per network of this prefix length.', default: 56, min: 16, max: 128 }),
        exempt_clients: list({
          doc: 'Client networks never limited (your own resolvers, monitoring).',
          items: cidr({ doc: 'CIDR prefix.' }),
          default: [],
          itemNoun: 'CIDR prefix',
        }),
        max_table_size: int({
          doc: 'Accounts in the table all DNS workers share (rounded up to a power of two, 16 bytes each); when it is full the account touched least recently of two candidates is reused, so a flood from many sources cannot grow memory.',
          default: 65536,
          min: 1024,
          max: 16777216,
        }),
      },
    }),
    cookies: object({
      doc: 'DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): a query with a COOKIE option gets the client cookie back with a fresh server cookie; a valid server cookie proves the client\'s address (no rate limiting).',
      keys: {
        enabled: bool({ doc: 'Answer COOKIE options (and reject malformed ones with FORMERR); off: they are ignored.', default: true }),
        require: bool({ doc: 'Answer UDP queries without a valid server cookie with BADCOOKIE (or TC=1 without EDNS), so only clients that proved their address get answers over UDP.', default: false }),
        secret: str({
          doc: 'Shared secret, 32 hex digits (16 bytes): overwatches (anycast, several NS) with the same secret accept each other\'s cookies. Unset, and no `secret_file`: a random secret made at start, for this process only.',
          pattern: '^[0-9A-Fa-f]{32}$',
          patternText: '32 hexadecimal digits (16 bytes): generate one with "openssl rand -hex 16"',
          secret: true,
        }),
        secret_file: str({
          doc: 'File holding the shared secret (32 hex digits), instead of `secret`; relative paths are taken from the main config file\'s folder.',
          minLength: 1,
        }),
        secret_lifetime: duration({
          doc: 'The server-cookie key is derived from the secret for each period of this length (the same periods on every overwatch, by the clock); cookies made with the previous and next period\'s keys are accepted too.',
          default: '26h',
          min: '1h',
          max: '8760h',
        }),
        rotate: bool({
          doc: 'Derive a new key every `secret_lifetime`. false: the secret itself is the SipHash-2-4 key, as BIND\'s `cookie-secret` and Knot\'s static secret are, for anycast sets that mix OpenGSLB with those servers.',
          default: true,
        }),
      },
    }),
    identity: object({
      doc: 'What the server says about itself to CH TXT queries; each name is REFUSED while its key is unset, as Knot does.',
      keys: {
        id: str({ doc: 'Answered to `id.server` and `hostname.bind` (CH TXT).', minLength: 1, maxLength: 255 }),
        version: str({ doc: 'Answered to `version.bind` and `version.server` (CH TXT).', minLength: 1, maxLength: 255 }),
      },
    }),
  },
});

const logging = object({
  doc: 'Log output.',
  keys: {
    level: choice({
      doc: 'Lowest level written.',
      values: ['debug', 'info', 'warn', 'error'],
      aliases: { warning: 'warn' },
      noun: 'log level',
      default: 'info',
    }),
    format: choice({ doc: 'json (one object per line) or text.', values: ['json', 'text'], noun: 'log format', default: 'json' }),
  },
});

const metrics = object({
  doc: 'Prometheus metrics endpoint: `GET /metrics` (Prometheus text format) and `GET /health`, on its own listener without an allowlist.',
  keys: {
    enabled: bool({ doc: 'Serve /metrics.', default: false }),
    address: endpoint({ doc: 'Listen address of the metrics endpoint.', default: ':9090', host: 'ip', allowEmptyHost: true, minPort: 0 }),
  },
});

const api = object({
  doc: 'Admin HTTP API: health, domains, overrides, explain, agents (see docs/api.md).',
  onlyInMode: 'overwatch',
  keys: {
    enabled: bool({ doc: 'Serve the admin API.', default: false }),
    address: endpoint({ doc: 'Listen address of the API.', default: '127.0.0.1:8080', host: 'ip', allowEmptyHost: true, minPort: 0 }),
    allowed_networks: list({
      doc: 'Client networks allowed to call the API.',
      items: cidr({ doc: 'CIDR prefix.' }),
      default: ['127.0.0.1/32', '::1/128'],
      itemNoun: 'CIDR prefix',
    }),
    allowed_hosts: list({
      doc: 'Host names clients reach the API by (the Host header; with trust_proxy_headers every X-Forwarded-Host name and Forwarded host= too), besides IP addresses and `localhost`, which are always accepted; a request naming any other host is refused with 403. This stops DNS rebinding: a web page whose name is made to resolve to this API would be of the same origin as it. Applies on reload.',
      items: domain({ doc: 'A host name, such as gslb1.example.net (any case, no port).', portless: true }),
      default: [],
      maxItems: 64,
      uniqueItems: true,
      itemNoun: 'host name',
    }),
    trust_proxy_headers: bool({ doc: 'Take the client address from X-Forwarded-For / X-Real-IP.', default: false }),
    max_connections: int({
      doc: 'Most connections the API holds open at once; past it a new connection is closed as soon as it is accepted, before any request is read. Of these, at most 8 may come from outside `allowed_networks` (for /api/v1/live, ready and version; unless trust_proxy_headers is on). Applies on reload.',
      default: 256,
      min: 1,
      max: 65535,
    }),
    token: str({
      doc: 'Bearer token every write (PUT, POST, DELETE) must carry as `Authorization: Bearer <token>`; unset: writes are open to the allowed networks. Required when `address` is not a loopback address. Printable ASCII without spaces, what an HTTP header carries from any client (a browser cannot send other characters).',
      minLength: 16,
      pattern: API_TOKEN_PATTERN,
      patternText: API_TOKEN_TEXT,
      secret: true,
    }),
    tls: object({
      doc: 'Serve the API over HTTPS instead of HTTP: both keys or neither. The files are read at start-up and again on every reload (SIGHUP or POST /api/v1/reload), so a renewed certificate is served to new connections without a restart.',
      keys: {
        cert_file: str({ doc: 'PEM certificate (the server\'s first, then any intermediates). Relative paths are taken from the main config file\'s folder.', minLength: 1 }),
        key_file: str({ doc: 'PEM private key of that certificate (unencrypted). Relative paths are taken from the main config file\'s folder.', minLength: 1 }),
      },
    }),
  },
});

const overwatch = object({
  doc: 'Overwatch settings: the state directory, the agent channel (`gossip`, `agent_tokens`, `validation`, `stale`), peers, the bus, geolocation and DNSSEC. `identity` and the memberlist timers of `gossip` are accepted from the Go original and ignored.',
  keys: {
    identity: object({
      notUsedYet: true,
      doc: 'Who this overwatch is.',
      keys: {
        node_id: str({ doc: 'Node id.', minLength: 1, defaultText: 'the host name' }),
        region: str({ doc: 'Region of this node (logging only).', minLength: 1 }),
      },
    }),
    agent_tokens: map({
      doc: 'Service name (a domain name) → the token an agent must prove it holds to register backends for that service. An agent registering several services must hold the token of every one.',
      keyNoun: 'service name',
      values: str({ doc: 'Token, at least 16 characters.', minLength: 16, secret: true }),
    }),
    gossip: object({
      doc: 'The agent channel: where agents send their encrypted messages (UDP and TCP on one port).',
      keys: {
        bind_address: endpoint({
          doc: 'UDP and TCP address agents send to. ":PORT" listens on all IPv4 interfaces; write "[::]:PORT" for IPv6. Port 0 lets the OS pick one (tests).',
          host: 'ip',
          allowEmptyHost: true,
          minPort: 0,
          defaultText: '0.0.0.0:7946 when encryption_key is set',
        }),
        encryption_key: gossipKey('Key every agent message is sealed with (AES-256-GCM), shared by all agents and overwatches: standard base64 of exactly 32 bytes. Setting it turns the agent channel on.'),
        accepted_keys: list({
          doc: 'More keys accepted for incoming messages while a key rotates (see docs/agents.md); messages are sealed under `encryption_key` only.',
          items: gossipKey('A key accepted besides encryption_key.'),
          default: [],
          maxItems: 4,
          itemNoun: 'key',
        }),
        max_clock_skew: duration({
          doc: 'How far an agent message\'s timestamp may be from this overwatch\'s clock, either way, before it is dropped (replay protection).',
          default: DEFAULT_MAX_CLOCK_SKEW,
          min: '1s',
          max: '1h',
        }),
        max_agents: int({
          doc: 'Most agents this overwatch pins (revoked ones included): a registration of a new agent id past it is dropped as agent_limit and its agent told so; pinned agents are not affected. Applies on reload; deleting pins (DELETE /api/v1/overwatch/agents/{id}) makes room.',
          default: 10_000,
          min: 1,
          max: 1_000_000,
        }),
        probe_interval: duration({ doc: 'memberlist SWIM probe interval of the Go original; this channel has no SWIM membership and ignores it.', default: '1s', min: '1ms', notUsedYet: true }),
        probe_timeout: duration({ doc: 'memberlist SWIM probe timeout of the Go original; ignored.', default: '500ms', min: '1ms', notUsedYet: true }),
        gossip_interval: duration({ doc: 'memberlist gossip interval of the Go original; ignored.', default: '200ms', min: '1ms', notUsedYet: true }),
      },
    }),
    peers: list({
      doc: 'The other overwatches of the same deployment (serving the same zones, hearing the same agents), by their admin APIs. GET /api/v1/cluster/status asks each for its view of the agents and says whether it matches this one\'s (a count and a digest; no consensus protocol, no health shared).',
      default: [],
      itemNoun: 'peer',
      maxItems: 64,
      items: object({
        doc: 'One peer overwatch.',
        keys: {
          url: str({ doc: 'Base URL of its admin API (its api.address), e.g. http://ow-2.example.test:8080.', required: true, pattern: '^https?://\\S+$', patternText: 'an http:// or https:// URL' }),
          token: str({ doc: 'Its api.token, sent as a bearer token; unset: none is sent (reads need only its api.allowed_networks to hold this host).', minLength: 16, pattern: API_TOKEN_PATTERN, patternText: API_TOKEN_TEXT, secret: true }),
        },
      }),
    }),
    bus: busSchema('NATS as the agent bus (docs/scaling.md): with `type: nats` this overwatch also takes agent messages from the bus subjects, through the same checks as the UDP/TCP channel, and replicates operator state (overrides, geo mappings, revocations, DNSSEC keys) through a JetStream key-value bucket; it needs gossip.encryption_key and state_secret.', {
      state_secret: str({
        doc: 'Secret shared by every overwatch on the bus and by no agent: standard base64 of exactly 32 bytes. Every entry of the operator-state bucket is sealed with it (AES-256-GCM), so NATS stores nothing readable (DNSSEC private keys included) and an entry put by anyone without it is refused; required when `type` is set.',
        pattern: GOSSIP_KEY_PATTERN,
        patternText: GOSSIP_KEY_TEXT,
        secret: true,
      }),
      previous_state_secrets: list({
        doc: 'More secrets entries of the operator-state bucket are opened with (never sealed with) while state_secret rotates, each validated like it (docs/scaling.md, "Rotating state_secret"); an entry that opens only with one of these when this overwatch starts is put back sealed with state_secret.',
        items: str({ doc: 'A secret entries are also opened with.', pattern: GOSSIP_KEY_PATTERN, patternText: GOSSIP_KEY_TEXT, secret: true }),
        default: [],
        maxItems: 4,
        itemNoun: 'secret',
      }),
    }),
    validation: object({
      doc: 'The overwatch\'s own checks of agent-reported backends, with each backend\'s own check settings; their result outranks the agent\'s claim.',
      keys: {
        enabled: bool({ doc: 'Check agent backends from the overwatch too.', default: false }),
        check_interval: duration({ doc: 'Time between two checks of one backend.', default: '30s', min: '1s', max: '24h' }),
        check_timeout: duration({ doc: 'Time one check may take; must be shorter than `check_interval`.', default: '5s', min: '100ms', max: '1h' }),
      },
    }),
    stale: object({
      doc: 'When agent backends without a heartbeat go stale (out of answers) and are removed.',
      keys: {
        threshold: duration({ doc: 'No heartbeat for this long marks an agent\'s backends stale.', default: '30s', min: '1s', max: '24h' }),
        remove_after: duration({ doc: 'No heartbeat for this long removes them; must be longer than `threshold`.', default: '5m', min: '1s', max: '720h' }),
      },
    }),
    dnssec: object({
      doc: 'DNSSEC: online signing of every zone with one combined signing key per zone, kept in `data_dir` (see docs/dnssec.md).',
      keys: {
        enabled: bool({ doc: 'Sign the zones. Turning it off needs `security_acknowledgment`.', default: true }),
        security_acknowledgment: str({
          doc: 'Required when `enabled` is false, with exactly the text of DNSSEC_ACKNOWLEDGMENT (docs/dnssec.md quotes it); the server refuses to start otherwise.',
        }),
        algorithm: choice({
          doc: 'Algorithm of the keys generated for zones that have none: ECDSA P-256 with SHA-256 (13) or Ed25519 (15). A zone that already has a key keeps it.',
          values: ['ECDSAP256SHA256', 'ED25519'],
          noun: 'DNSSEC algorithm',
          default: 'ECDSAP256SHA256',
          notYet: ['ecdsap384sha384'],
        }),
        signature_validity: duration({
          doc: 'How long a signature is valid from the moment it is made (inception is one hour before); signatures are re-made once 75 % of it has passed.',
          default: '168h',
          min: '1h',
          max: '2160h',
          wholeSeconds: true,
        }),
        key_sync: object({
          doc: 'Key exchange between overwatch nodes serving the same zones: newest key per zone wins.',
          keys: {
            peers: list({
              doc: 'Base URLs of the peers\' admin APIs.',
              items: str({ doc: 'URL.', pattern: '^https?://\\S+$', patternText: 'an http:// or https:// URL' }),
              default: [],
              itemNoun: 'peer URL',
            }),
            // Capped: Node timers take at most 2^31-1 ms (about 596h); a longer one fires after 1 ms,
            // which would poll the peers in a busy loop and abort every poll at once.
            poll_interval: duration({ doc: 'Time between two polls of every peer.', default: '1h', min: '1s', max: '168h' }),
            timeout: duration({ doc: 'Time one poll of a peer may take.', default: '30s', min: '100ms', max: '1h' }),
            shared_secret: str({
              doc: 'Secret shared by every overwatch of the set: standard base64 of exactly 32 bytes. It authenticates the peers to each other and encrypts the private keys they exchange; required when `peers` is set.',
              pattern: '^[A-Za-z0-9+/]{43}=$',
              patternText: 'standard base64 of exactly 32 bytes (44 characters, for example from "openssl rand -base64 32")',
              secret: true,
            }),
          },
        }),
      },
    }),
    geolocation: object({
      doc: 'Geolocation routing: the GeoIP database, custom network mappings, the default region and EDNS Client Subnet.',
      keys: {
        database_path: str({
          doc: 'GeoIP database: a MaxMind DB (.mmdb) such as GeoLite2-Country or GeoLite2-City, or any with `country.iso_code` / `continent.code` or `country_code` records; reloaded when the file changes. Relative paths are taken from the main config file\'s folder.',
          minLength: 1,
          defaultText: 'the bundled DB-IP IP to Country Lite database (CC BY 4.0)',
        }),
        default_region: str({
          doc: 'Region for clients no mapping, country or continent places; must be defined in `regions`.',
          pattern: REGION_NAME_PATTERN,
          patternText: REGION_NAME_TEXT,
        }),
        ecs_enabled: bool({ doc: 'Route on the EDNS Client Subnet address (RFC 7871) when a query carries one, instead of the resolver\'s own address.', default: true }),
        custom_mappings: list({
          doc: 'Networks (IPv4 and IPv6) mapped to regions before the database is asked; the longest prefix holding the client wins. The same network twice is an error. At most 100000 (the geo table\'s MAX_CIDR_MAPPINGS, shared with mappings added through the API).',
          default: [],
          // src/geo/cidr-table.ts MAX_CIDR_MAPPINGS: more would fail at the snapshot compile, without a file position.
          maxItems: 100_000,
          itemNoun: 'mapping',
          items: object({
            doc: 'One mapping.',
            keys: {
              cidr: cidr({ doc: 'Client network.', required: true }),
              region: regionName('Region for that network; must be defined in `regions`.'),
              comment: str({ doc: 'Free text.' }),
            },
          }),
        }),
      },
    }),
    data_dir: str({
      doc: 'State directory (an lmdb database): overrides and last-healthy answers survive restarts. Relative paths are taken from the main config file\'s folder.',
      default: '/var/lib/opengslb',
      minLength: 1,
    }),
  },
});

const agent = object({
  doc: 'Agent mode (`opengslb --mode agent`): who the agent is, the backends it checks, and the overwatches it reports to (see docs/agents.md).',
  keys: {
    identity: object({
      doc: 'Who this agent is.',
      keys: {
        service_token: str({
          doc: 'The token of the services this agent registers (overwatch.agent_tokens on the overwatches), at least 16 characters. It never leaves the agent: registrations carry a proof made with it.',
          minLength: 16,
          secret: true,
          requiredInMode: 'agent',
        }),
        region: str({
          doc: 'Region this agent\'s backends belong to; it must be a region of the overwatches. Part of the agent id made at first start.',
          pattern: REGION_NAME_PATTERN,
          patternText: REGION_NAME_TEXT,
          maxLength: 63,
          requiredInMode: 'agent',
        }),
        cert_path: str({
          doc: 'The agent\'s self-signed certificate, created at first start. Relative paths are taken from the main config file\'s folder.',
          default: '/var/lib/opengslb/agent.crt',
          minLength: 1,
        }),
        key_path: str({
          doc: 'The agent\'s private key, created at first start with mode 0600; refused when others may read it. Relative paths are taken from the main config file\'s folder.',
          default: '/var/lib/opengslb/agent.key',
          minLength: 1,
        }),
      },
    }),
    backends: list({
      doc: 'The local backends this agent checks and reports.',
      default: [],
      minItems: 1,
      maxItems: 1024,
      requiredInMode: 'agent',
      itemNoun: 'backend',
      items: object({
        doc: 'One backend.',
        keys: {
          service: domain({ doc: 'The domain this backend answers for on the overwatches.', required: true }),
          address: str({
            doc: 'IP literal (answered in DNS) or host name (kept and shown, never answered) of the backend; the agent checks it here.',
            required: true,
            pattern: '^[^\\s/]+$',
            patternText: 'an IP literal or a host name',
            maxLength: 253,
          }),
          port: int({ doc: 'Backend port, checked by the agent.', required: true, min: 1, max: 65535 }),
          weight: int({ doc: 'Share of answers under the weighted algorithm; 0 keeps the backend out of weighted answers.', default: 100, min: 0, max: 65535 }),
          health_check: backendHealthCheck,
        },
      }),
    }),
    predictive: object({
      doc: 'Predictive draining ("bleeding"): a signal at or above its threshold for its whole `bleed_duration` drains the backend (out of answers while others are healthy); it is undrained once the signal stayed below 90 % of the threshold for the same duration.',
      keys: {
        enabled: bool({ doc: 'Drain on host CPU, host memory and backend error rate. Off: the agent still reports its load, never drains.', default: false }),
        check_interval: duration({ doc: 'Time between two readings of CPU, memory and error rate.', default: '10s', min: '1s', max: '1h' }),
        cpu: object({
          doc: 'Host CPU: the busy share of all CPUs between two readings (/proc/stat); drains every backend of the host.',
          keys: {
            threshold: float({ doc: 'Percent, above 0 and at most 100 (0 would drain for ever: every reading is at or above it, none below 90 % of it).', default: 90, min: 0, exclusiveMin: true, max: 100 }),
            bleed_duration: duration({ doc: 'How long CPU must stay at or above the threshold before the backends drain (and below 90 % of it before they return).', default: '30s', max: '24h' }),
          },
        }),
        memory: object({
          doc: 'Host memory: (MemTotal − MemAvailable) / MemTotal (/proc/meminfo); drains every backend of the host.',
          keys: {
            threshold: float({ doc: 'Percent, above 0 and at most 100 (0 would drain for ever: every reading is at or above it, none below 90 % of it).', default: 85, min: 0, exclusiveMin: true, max: 100 }),
            bleed_duration: duration({ doc: 'How long memory must stay at or above the threshold before the backends drain (and below 90 % of it before they return).', default: '30s', max: '24h' }),
          },
        }),
        error_rate: object({
          doc: 'A backend\'s error rate: its failed health checks per minute over `window`; drains that backend only.',
          keys: {
            threshold: float({ doc: 'Failed checks per minute, above 0 (0 would drain for ever, with no failure at all).', default: 10, min: 0, exclusiveMin: true, max: 1e9 }),
            window: duration({ doc: 'The window the failed checks are counted over.', default: '60s', min: '1s', max: '24h' }),
            bleed_duration: duration({ doc: 'How long the error rate must stay at or above the threshold before the backend drains (and below 90 % of it before it returns).', default: '30s', max: '24h' }),
          },
        }),
      },
    }),
    gossip: object({
      doc: 'The overwatches this agent reports to.',
      keys: {
        encryption_key: gossipKey('The key shared with the overwatches (their overwatch.gossip.encryption_key): standard base64 of exactly 32 bytes.', 'agent'),
        overwatch_nodes: list({
          doc: 'Every overwatch\'s overwatch.gossip.bind_address as HOST:PORT (host names allowed); the agent reports to all of them. Required in agent mode unless `agent.bus` is set (then not allowed).',
          items: endpoint({ doc: 'HOST:PORT.', host: 'name', allowEmptyHost: false, minPort: 1 }),
          default: [],
          minItems: 1,
          itemNoun: 'HOST:PORT',
        }),
      },
    }),
    bus: busSchema('NATS as the agent bus (docs/scaling.md): with `type: nats` the agent publishes its sealed messages to the bus instead of sending them to `gossip.overwatch_nodes`.', {}),
    heartbeat: object({
      doc: 'Heartbeats to the overwatches.',
      keys: {
        interval: duration({ doc: 'Time between heartbeats; a heartbeat carries only the backends whose state changed.', default: '10s', min: '1s', max: '1h' }),
        missed_threshold: int({ doc: 'Consecutive failed sends to one overwatch before the agent logs at warn instead of debug.', default: 3, min: 1, max: 1000 }),
        full_interval: duration({
          doc: 'Time between heartbeats that carry every backend (the Go original\'s fixed 30 s full report); at least `interval`.',
          default: '30s',
          min: '1s',
          max: '24h',
        }),
      },
    }),
    latency_learning: object({
      doc: 'Passive latency learning (a later version of the Go original).',
      notUsedYet: true,
      keys: {
        enabled: bool({ doc: 'Learn client latency from TCP statistics.', default: false }),
        poll_interval: duration({ doc: 'Poll interval.', default: '10s', min: '1s' }),
        min_connection_age: duration({ doc: 'Youngest connection sampled.', default: '5s' }),
        ipv4_prefix: int({ doc: 'IPv4 aggregation prefix length.', default: 24, min: 0, max: 32 }),
        ipv6_prefix: int({ doc: 'IPv6 aggregation prefix length.', default: 48, min: 0, max: 128 }),
        ewma_alpha: float({ doc: 'EWMA weight of a new sample.', default: 0.3, min: 0, exclusiveMin: true, max: 1 }),
        max_subnets: int({ doc: 'Most subnets kept.', default: 100000, min: 1, max: 10000000 }),
        subnet_ttl: duration({ doc: 'Subnets unseen for this long are dropped.', default: '168h', min: '1s' }),
        min_samples: int({ doc: 'Samples before a subnet is reported.', default: 5, min: 1, max: 1000000 }),
        report_interval: duration({ doc: 'Report interval.', default: '30s', min: '1s' }),
      },
    }),
  },
});

/** Defines the whole config file: the root map and everything below it. */
export const CONFIG_SCHEMA = object({
  doc: 'OpenGSLB configuration file.',
  keys: {
    mode: choice({ doc: 'Run mode; the --mode flag overrides it.', values: ['overwatch', 'agent'], noun: 'mode', default: 'overwatch' }),
    dns,
    regions: list({
      doc: 'Groups of backend servers.',
      items: region,
      default: [],
      minItems: 1,
      requiredInMode: 'overwatch',
      onlyInMode: 'overwatch',
      itemNoun: 'region',
    }),
    domains: list({
      doc: 'Names answered with healthy servers.',
      items: domainEntry,
      default: [],
      minItems: 1,
      requiredInMode: 'overwatch',
      onlyInMode: 'overwatch',
      itemNoun: 'domain',
    }),
    logging,
    metrics,
    api,
    overwatch,
    agent,
    // Read by the loader (includes.ts), which removes it from each file before
    // the files are merged; it is defined here for the JSON Schema and the docs.
    includes: list({
      doc: 'Files merged into this one: paths or globs such as `conf.d/*.yaml` or `domains/**/*.yaml`, relative to this file, each read in sorted order; included files may include others, at most 10 levels deep.',
      items: str({ doc: 'A path or glob pattern (`*`, `?`, `[...]`, `**`).', minLength: 1 }),
      default: [],
      itemNoun: 'include pattern',
    }),
  },
}) satisfies Schema;

/** The validated, defaulted (but not yet cross-checked) shape of the file. */
export type ConfigFile = typeof CONFIG_SCHEMA;
