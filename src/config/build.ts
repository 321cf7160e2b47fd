// Cold path, main thread. The checks that need more than one key (unique names,
// references between sections, zone membership) and the step that turns the
// validated file tree into the normalised Config the rest of the server uses.

import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { DNSSEC_ACKNOWLEDGMENT, MAX_TTL_SEC, MAX_WORKERS } from './definition.ts';
import { buildStaticRecords, checkStaticRecords } from './static-records.ts';
import type { StaticRecordContext } from './static-records.ts';
import type { ConfigFile } from './definition.ts';
import { normaliseDomainName } from './domain-name.ts';
import { EnclosingNames } from '../dns/names.ts';
import { formatDuration } from './duration.ts';
import { networkOfCidr } from './ip.ts';
import { rrlEntriesFor } from '../dns/rrl.ts';
import { isKnownCountry } from '../geo/continents.ts';
import { parseIp } from './ip.ts';
import { readTlsPair } from './api-tls.ts';
import { HEADER_NAME } from '../lib/http-syntax.ts';
import { linearRegExp } from '../lib/linear-regexp.ts';
import { formatAddress, ipToBytes, unusableAddressProblem } from '../lib/ip.ts';
import { type PathSegment, type ProblemCollector } from './problem-collector.ts';
import type { Unchecked, Value } from './schema.ts';
import type {
  AgentBackendConfig, AgentConfig, BusConfig, Config, DomainConfig, HealthCheckConfig, NameserverConfig, OverwatchGossipConfig, RegionConfig, SoaConfig,
  ZoneConfig,
} from './types.ts';

type CheckedFile = Value<ConfigFile>;
type UncheckedFile = Unchecked<ConfigFile>;
type UncheckedHealthCheck = Unchecked<ConfigFile['keys']['regions']['items']['keys']['health_check']>;
type NameserverList = Value<ConfigFile['keys']['dns']['keys']['nameservers']>;
type UncheckedNameserverList = Unchecked<ConfigFile['keys']['dns']['keys']['nameservers']>;
type SoaFields = Value<ConfigFile['keys']['dns']['keys']['soa']>;
type ZoneSoaFields = Value<ConfigFile['keys']['dns']['keys']['zones']['items']['variants'][1]['keys']['soa']>;

/**
 * Reports every problem that involves more than one key of the file: duplicate
 * region, domain, zone and name-server names; duplicate address:port in a
 * region; health-check timeout not below the interval; references to regions
 * and domains that do not exist; domains outside every zone in dns.zones.
 * Values that already had a problem are undefined and skipped. Never throws.
 */
export function checkCrossReferences(file: UncheckedFile, sink: ProblemCollector): void {
  const regions = file.regions ?? [];
  const domains = file.domains ?? [];

  const regionNames = firstDefinitions(sink, ['regions'], regions.map((r) => r?.name), 'region names');
  const domainNames = firstDefinitions(sink, ['domains'], domains.map((d) => d?.name), 'domain names');
  const knownRegions = [...regionNames.keys()];
  const regionSpelling = checkRegionCase(sink, regions.map((r) => r?.name));
  /** The problem with a reference to region `name` (at `path`) that is not defined: a spelling that differs only in case is named. */
  const unknownRegion = (name: string, path: PathSegment[]): string => {
    const other = regionSpelling.get(name.toLowerCase());
    if (other === undefined) return `"${name}" is not a region in regions, expected one of ${listOrNone(knownRegions)}`;
    const where = sink.lineRef(sink.positionOf(['regions', other, 'name']), sink.positionOf(path));
    return `"${name}" is not a region in regions: regions[${other}].name (${where}) is "${regions[other]?.name}", which differs only in case; region names are case-sensitive, expected "${regions[other]?.name}"`;
  };

  regions.forEach((region, r) => {
    if (region === undefined) return;
    const seen = new Map<string, number>();
    (region.servers ?? []).forEach((server, s) => {
      if (server === undefined) return;
      checkCnameServer(sink, server, region.health_check?.type, ['regions', r, 'servers', s]);
      if (server.port === undefined || server.port === null) return;
      if ((server.address === undefined || server.address === null) && typeof server.cname !== 'string') return;
      const hostPort = server.address === undefined || server.address === null
        ? `${server.cname}:${server.port}`
        : server.address.family === 6 ? `[${server.address.address}]:${server.port}` : `${server.address.address}:${server.port}`;
      const first = seen.get(hostPort);
      const path = ['regions', r, 'servers', s, 'address'];
      if (first === undefined) seen.set(hostPort, s);
      else sink.reportAt(path, `${hostPort} is already regions[${r}].servers[${first}] (line ${sink.positionOf(['regions', r, 'servers', first]).line}), expected each address and port once per region`);
      if (typeof server.service === 'string' && !domainNames.has(server.service)) {
        sink.reportAt(['regions', r, 'servers', s, 'service'], `"${server.service}" is not a domain in domains, expected one of ${listOrNone([...domainNames.keys()])}`);
      }
    });
    // A region may be left to agents (servers: []), but only where an agent can reach this overwatch.
    if (Array.isArray(region.servers) && region.servers.length === 0 && file.mode !== 'agent' && typeof file.overwatch?.gossip?.encryption_key !== 'string') {
      sink.reportAt(
        ['regions', r, 'servers'],
        'is empty and the agent channel is off, so nothing can fill it: expected at least one server, or overwatch.gossip.encryption_key so agents can report backends for this region',
      );
    }
    checkTimeoutBelowInterval(sink, region.health_check, ['regions', r, 'health_check']);
    checkKeepAliveType(sink, region.health_check, ['regions', r, 'health_check']);
    checkRequestParts(sink, region.health_check, ['regions', r, 'health_check']);
  });

  domains.forEach((domain, d) => {
    (domain?.regions ?? []).forEach((name, i) => {
      if (name !== undefined && !regionNames.has(name)) {
        sink.reportAt(['domains', d, 'regions', i], unknownRegion(name, ['domains', d, 'regions', i]));
      }
    });
    checkAllDown(sink, domain, d);
    checkPoolKind(sink, domain, d, regions, regionNames, file.dns?.zones);
    checkSmoothingFactor(sink, domain, d, regions, regionNames);
    checkLatencyMeasured(sink, domain, d, regions, regionNames);
    warnAllWeightZero(sink, domain, d, regions, regionNames, typeof file.overwatch?.gossip?.encryption_key === 'string');
  });

  checkZones(file, sink);
  checkZoneRecords(file, sink, regions, regionNames);
  checkNameserverList(sink, file.dns?.nameservers, ['dns', 'nameservers']);
  checkDnssec(file, sink);
  checkCookies(file, sink);

  const geo = file.overwatch?.geolocation;
  const checkRegionRef = (name: string | null | undefined, path: PathSegment[]): void => {
    if (typeof name === 'string' && !regionNames.has(name)) {
      sink.reportAt(path, unknownRegion(name, path));
    }
  };
  checkRegionRef(geo?.default_region, ['overwatch', 'geolocation', 'default_region']);
  (geo?.custom_mappings ?? []).forEach((m, i) => checkRegionRef(m?.region, ['overwatch', 'geolocation', 'custom_mappings', i, 'region']));
  checkGeolocation(file, sink);
  // A backend listed twice: every overwatch drops a message that lists one twice (invalid_message), so
  // such an agent would run for ever without registering, logging only "overwatch unreachable".
  const firstAt = new Map<string, number>();
  (file.agent?.backends ?? []).forEach((b, i) => {
    checkTimeoutBelowInterval(sink, b?.health_check, ['agent', 'backends', i, 'health_check']);
    checkKeepAliveType(sink, b?.health_check, ['agent', 'backends', i, 'health_check']);
    checkRequestParts(sink, b?.health_check, ['agent', 'backends', i, 'health_check']);
    if (typeof b?.address === 'string') {
      const problem = backendAddressProblem(b.address);
      if (problem !== null) sink.reportAt(['agent', 'backends', i, 'address'], problem);
    }
    if (typeof b?.service !== 'string' || typeof b.address !== 'string' || typeof b.port !== 'number') return;
    const ip = parseIp(b.address);
    const address = 'error' in ip ? b.address.toLowerCase() : ip.address;
    const key = `${serviceName(b.service)}|${address}|${b.port}`;
    const first = firstAt.get(key);
    if (first === undefined) firstAt.set(key, i);
    else sink.reportAt(['agent', 'backends', i], `${serviceName(b.service)} ${formatAddress(address, b.port)} is listed twice (first at agent.backends[${first}]), expected each backend (service, address, port) once`);
  });
  checkAgentChannel(file, sink);
  checkApi(file, sink);
}

/**
 * The admin API: off loopback it needs a token (else anyone on the allowed
 * networks could write); api.tls names both files or neither, readable, and
 * the key is the certificate's. Messages never quote the token.
 */
function checkApi(file: UncheckedFile, sink: ProblemCollector): void {
  const api = file.api;
  if (api === null || api === undefined || api.enabled !== true || file.mode === 'agent') return;
  const address = api.address;
  // A token written in the file whose ${VAR} is unset is reported there (api.token), not here again.
  const tokenWritten = (api.token !== null && api.token !== undefined) || sink.hasPosition(['api', 'token']);
  if (address !== null && address !== undefined && !isLoopbackHost(address.host ?? '0.0.0.0') && !tokenWritten) {
    sink.reportAt(
      ['api', 'address'],
      `${address.host ?? '0.0.0.0'} is not a loopback address and api.token is not set, so writes would be open to every allowed network: ` +
        'set api.token (at least 16 characters), for example "token: ${OPENGSLB_API_TOKEN}" with the token in the OPENGSLB_API_TOKEN environment variable, ' +
        'or listen on 127.0.0.1 or ::1',
    );
  }
  const tls = api.tls;
  const certFile = tls?.cert_file;
  const keyFile = tls?.key_file;
  if (typeof certFile === 'string' && typeof keyFile === 'string') {
    const base = dirname(resolve(sink.file));
    const pair = readTlsPair(resolve(base, certFile), resolve(base, keyFile));
    if ('which' in pair) sink.reportAt(['api', 'tls', pair.which], pair.message);
  } else if (typeof certFile === 'string' && keyFile === null) {
    sink.reportAt(['api', 'tls', 'cert_file'], 'is set without api.tls.key_file, expected both (the certificate and its private key) or neither');
  } else if (typeof keyFile === 'string' && certFile === null) {
    sink.reportAt(['api', 'tls', 'key_file'], 'is set without api.tls.cert_file, expected both (the certificate and its private key) or neither');
  }
}

/** 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: only this host can connect. */
export function isLoopbackHost(host: string): boolean {
  const ip = parseIp(host);
  if ('error' in ip) return false;
  const bytes = ipToBytes(ip.address);
  if (bytes.length === 4) return bytes[0] === 127;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  if (bytes[10] === 0xff && bytes[11] === 0xff) return bytes[12] === 127;
  if (bytes[10] !== 0 || bytes[11] !== 0) return false;
  return bytes[12] === 0 && bytes[13] === 0 && bytes[14] === 0 && bytes[15] === 1;
}

/** The default port of overwatch.gossip.bind_address (the Go original's memberlist port). */
export const DEFAULT_GOSSIP_PORT = 7946;
const OPENSSL_HINT = 'generate one with "openssl rand -base64 32"';

/** An agent backend address is an IP literal or a host name; text that looks like an IP must be a valid one. */
function backendAddressProblem(text: string): string | null {
  if (text.includes(':') || /^[0-9.]+$/.test(text)) {
    const ip = parseIp(text);
    return 'error' in ip ? ip.error : unusableAddressProblem(ip.address);
  }
  const name = normaliseDomainName(text);
  return 'error' in name ? name.error.replace('expected a domain name', 'expected an IP literal or a host name') : null;
}

/** A key that matches the schema pattern but has stray low bits in its last character decodes to the same bytes as another spelling. */
function isCanonicalKey(text: string): boolean {
  return Buffer.from(text, 'base64').toString('base64') === text;
}

/**
 * Checks the agent channel settings that involve more than one key: the
 * overwatch's channel needs its key once agent_tokens, bind_address or
 * accepted_keys turn it on; keys are canonical and distinct; timers are
 * ordered; service names of agent_tokens are domain names; overwatch_nodes
 * are distinct. Messages never quote a key or token.
 */
function checkAgentChannel(file: UncheckedFile, sink: ProblemCollector): void {
  const ow = file.overwatch;
  const gossip = ow?.gossip;
  const tokens = ow?.agent_tokens ?? null;
  const mode = file.mode;
  const seenServices = new Map<string, string>();
  for (const service of Object.keys(tokens ?? {})) {
    const name = normaliseDomainName(service);
    if ('error' in name) {
      sink.reportAt(['overwatch', 'agent_tokens', service], `service name ${name.error}`);
    } else if (seenServices.has(name.name)) {
      sink.reportAt(['overwatch', 'agent_tokens', service], `names the same service as "${seenServices.get(name.name)}", expected each service once`);
    } else {
      seenServices.set(name.name, service);
    }
  }
  if (mode !== 'agent') {
    const key = gossip?.encryption_key;
    const turnedOn = [
      tokens !== null && Object.keys(tokens).length > 0 ? 'overwatch.agent_tokens' : null,
      gossip?.bind_address != null ? 'overwatch.gossip.bind_address' : null,
      (gossip?.accepted_keys?.length ?? 0) > 0 ? 'overwatch.gossip.accepted_keys' : null,
    ].filter((k) => k !== null);
    if (key === null && turnedOn.length > 0) {
      sink.reportAt(
        ['overwatch', 'gossip', 'encryption_key'],
        `is missing, expected standard base64 of exactly 32 bytes (${OPENSSL_HINT}): ${turnedOn.join(' and ')} ${turnedOn.length === 1 ? 'turns' : 'turn'} the agent channel on, and it needs the key the agents share`,
      );
    }
  }
  const keyPaths: { path: PathSegment[]; text: string | null | undefined }[] = [
    { path: ['overwatch', 'gossip', 'encryption_key'], text: gossip?.encryption_key },
    ...(gossip?.accepted_keys ?? []).map((text, i) => ({ path: ['overwatch', 'gossip', 'accepted_keys', i] as PathSegment[], text })),
    { path: ['agent', 'gossip', 'encryption_key'], text: file.agent?.gossip?.encryption_key },
  ];
  const firstOfKey = new Map<string, string>();
  for (const { path, text } of keyPaths) {
    if (typeof text !== 'string') continue;
    const where = path.join('.').replace(/\.(\d+)/g, '[$1]');
    if (!isCanonicalKey(text)) {
      sink.reportAt(path, `the secret value is not canonical base64 (its last character carries stray bits), expected the exact text "openssl rand -base64 32" printed`);
      continue;
    }
    if (path[0] === 'agent') continue; // the agent's own key may equal the overwatch's (one file for both in tests)
    const first = firstOfKey.get(text);
    if (first !== undefined) sink.reportAt(path, `is the same key as ${first}, expected each key once`);
    else firstOfKey.set(text, where);
  }

  const validation = ow?.validation;
  if (typeof validation?.check_timeout === 'number' && typeof validation.check_interval === 'number' && validation.check_timeout >= validation.check_interval) {
    sink.reportAt(
      ['overwatch', 'validation', 'check_timeout'],
      `${formatDuration(validation.check_timeout)} is not shorter than check_interval ${formatDuration(validation.check_interval)}, expected a timeout below the interval`,
    );
  }
  const stale = ow?.stale;
  if (typeof stale?.threshold === 'number' && typeof stale.remove_after === 'number' && stale.remove_after <= stale.threshold) {
    sink.reportAt(
      ['overwatch', 'stale', 'remove_after'],
      `${formatDuration(stale.remove_after)} is not longer than the threshold ${formatDuration(stale.threshold)}, expected backends to go stale before they are removed`,
    );
  }
  const heartbeat = file.agent?.heartbeat;
  if (typeof heartbeat?.interval === 'number' && typeof heartbeat.full_interval === 'number' && heartbeat.full_interval < heartbeat.interval) {
    sink.reportAt(
      ['agent', 'heartbeat', 'full_interval'],
      `${formatDuration(heartbeat.full_interval)} is shorter than the interval ${formatDuration(heartbeat.interval)}, expected full_interval of at least interval`,
    );
  }
  checkBus(file, sink);
  const nodes = new Map<string, number>();
  (file.agent?.gossip?.overwatch_nodes ?? []).forEach((node, i) => {
    if (node === undefined) return;
    const text = node.host !== null && node.host.includes(':') ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`;
    const first = nodes.get(text);
    if (first === undefined) nodes.set(text, i);
    else sink.reportAt(['agent', 'gossip', 'overwatch_nodes', i], `${text} is already overwatch_nodes[${first}], expected each overwatch once`);
  });
}

/**
 * agent.bus and overwatch.bus: a bus with `type` needs servers and at most one
 * of token and credentials_file, a client certificate comes with its key; the
 * agent has either overwatch_nodes or a bus; the overwatch's bus carries
 * sealed messages, so it needs the channel's key.
 */
function checkBus(file: UncheckedFile, sink: ProblemCollector): void {
  const sides = [
    { side: 'overwatch', bus: file.mode === 'agent' ? undefined : file.overwatch?.bus },
    { side: 'agent', bus: file.mode === 'agent' ? file.agent?.bus : undefined },
  ] as const;
  for (const { side, bus } of sides) {
    if (bus === undefined || bus === null) continue;
    const on = bus.type !== null && bus.type !== undefined;
    const set = (['servers', 'token', 'credentials_file'] as const).filter((k) => k === 'servers' ? (bus.servers?.length ?? 0) > 0 : bus[k] != null);
    if (!on) {
      if (set.length > 0) sink.reportAt([side, 'bus', set[0]], `is set but ${side}.bus.type is not, expected "type: nats" to turn the bus on (or remove ${side}.bus)`);
      continue;
    }
    if ((bus.servers?.length ?? 0) === 0) sink.reportAt([side, 'bus', 'type'], `turns the bus on without servers, expected ${side}.bus.servers to list at least one nats://HOST:PORT`);
    if (bus.token != null && bus.credentials_file != null) sink.reportAt([side, 'bus', 'credentials_file'], `is set together with ${side}.bus.token, expected one way to authenticate`);
    const tls = bus.tls;
    if (tls != null && (tls.cert_file == null) !== (tls.key_file == null)) {
      sink.reportAt([side, 'bus', 'tls', tls.cert_file == null ? 'key_file' : 'cert_file'], 'is set alone, expected both tls.cert_file and tls.key_file for a client certificate');
    }
    if (side === 'overwatch' && file.overwatch?.gossip?.encryption_key == null) {
      sink.reportAt(['overwatch', 'bus', 'type'], `turns the bus on without overwatch.gossip.encryption_key, expected the key the agents seal their messages with (${OPENSSL_HINT})`);
    }
    // null: absent (an invalid value is reported where it is, and reads as undefined).
    if (side === 'overwatch' && file.overwatch?.bus?.state_secret === null) {
      sink.reportAt(['overwatch', 'bus', 'type'], `turns the bus on without overwatch.bus.state_secret, expected a secret shared by every overwatch and no agent that seals the replicated operator state (${OPENSSL_HINT})`);
    }
    if (side === 'overwatch') {
      // A previous secret equal to state_secret or to another one (the same 32 bytes) is a copy-paste slip in a rotation.
      const seen = new Map<string, string>();
      const secrets = [{ path: ['overwatch', 'bus', 'state_secret'] as PathSegment[], text: file.overwatch?.bus?.state_secret }, ...(file.overwatch?.bus?.previous_state_secrets ?? []).map((text, i) => ({ path: ['overwatch', 'bus', 'previous_state_secrets', i] as PathSegment[], text }))];
      for (const { path, text } of secrets) {
        if (typeof text !== 'string') continue;
        const bytes = Buffer.from(text, 'base64').toString('hex');
        const first = seen.get(bytes);
        if (first !== undefined) sink.reportAt(path, `is the same secret as ${first}, expected each secret once`);
        else seen.set(bytes, path.join('.').replace(/\.(\d+)/g, '[$1]'));
      }
    }
    if (side === 'agent' && (file.agent?.gossip?.overwatch_nodes?.length ?? 0) > 0) {
      sink.reportAt(['agent', 'gossip', 'overwatch_nodes'], 'is set together with agent.bus, expected one of them: with the bus the agent publishes to NATS and every overwatch subscribes');
    }
  }
  if (file.mode === 'agent' && file.agent != null) {
    const busOn = file.agent.bus?.type != null;
    if (!busOn && (file.agent.gossip?.overwatch_nodes?.length ?? 0) === 0) {
      sink.reportAt(['agent', 'gossip', 'overwatch_nodes'], 'is missing, expected at least one HOST:PORT of an overwatch (or agent.bus with "type: nats" to publish to NATS instead)');
    }
  }
}

/** Formats where a value was written as FILE:LINE:COL, for messages that name a second place. */
function placeOf(sink: ProblemCollector, path: PathSegment[]): string {
  const pos = sink.positionOf(path);
  return `${pos.file ?? sink.file}:${pos.line}:${pos.col}`;
}

/**
 * Geolocation: every country code is an assigned ISO 3166-1 alpha-2 code (or
 * XK); a country or continent is in one region only; no network is mapped
 * twice (host bits ignored). The Go original let the later one win silently.
 */
function checkGeolocation(file: UncheckedFile, sink: ProblemCollector): void {
  const countryAt = new Map<string, PathSegment[]>();
  const continentAt = new Map<string, PathSegment[]>();
  (file.regions ?? []).forEach((region, r) => {
    const name = typeof region?.name === 'string' ? `"${region.name}"` : `regions[${r}]`;
    (region?.countries ?? []).forEach((code, i) => {
      if (typeof code !== 'string') return;
      const path: PathSegment[] = ['regions', r, 'countries', i];
      if (!isKnownCountry(code)) {
        sink.reportAt(path, `"${code}" is not an ISO 3166-1 alpha-2 country code, expected an assigned code such as "DE", "US" or "JP"`);
        return;
      }
      const first = countryAt.get(code);
      if (first === undefined) countryAt.set(code, path);
      else if (first[1] !== r) sink.reportAt(path, `"${code}" is already in region ${regionLabel(file, first[1])} at ${placeOf(sink, first)}, expected each country in one region only (region ${name} lists it too)`);
    });
    (region?.continents ?? []).forEach((code, i) => {
      if (typeof code !== 'string') return;
      const path: PathSegment[] = ['regions', r, 'continents', i];
      const first = continentAt.get(code);
      if (first === undefined) continentAt.set(code, path);
      else if (first[1] !== r) sink.reportAt(path, `"${code}" is already in region ${regionLabel(file, first[1])} at ${placeOf(sink, first)}, expected each continent in one region only (region ${name} lists it too)`);
    });
  });
  const networkAt = new Map<string, PathSegment[]>();
  (file.overwatch?.geolocation?.custom_mappings ?? []).forEach((m, i) => {
    if (typeof m?.cidr !== 'string') return;
    const path: PathSegment[] = ['overwatch', 'geolocation', 'custom_mappings', i, 'cidr'];
    const network = networkOfCidr(m.cidr);
    const first = networkAt.get(network);
    if (first === undefined) networkAt.set(network, path);
    else sink.reportAt(path, `${network} is already mapped at ${placeOf(sink, first)} (custom_mappings[${first[3]}]), expected each network once`);
  });
}

function regionLabel(file: UncheckedFile, r: PathSegment | undefined): string {
  const name = typeof r === 'number' ? file.regions?.[r]?.name : undefined;
  return typeof name === 'string' ? `"${name}"` : `regions[${String(r)}]`;
}

/**
 * DNSSEC is on unless the file turns it off with the exact acknowledgment
 * text; the message prints the text to copy. Key sync with peers needs the
 * shared secret.
 */
function checkDnssec(file: UncheckedFile, sink: ProblemCollector): void {
  const dnssec = file.overwatch?.dnssec;
  const ack = dnssec?.security_acknowledgment;
  if (dnssec?.enabled === false && ack !== DNSSEC_ACKNOWLEDGMENT) {
    const copy = `security_acknowledgment: "${DNSSEC_ACKNOWLEDGMENT}"`;
    if (typeof ack === 'string') {
      sink.reportAt(
        ['overwatch', 'dnssec', 'security_acknowledgment'],
        `does not match the required text, so DNSSEC stays required; expected exactly (copy this line into overwatch.dnssec): ${copy}`,
      );
    } else if (ack === null || ack === undefined) {
      sink.reportAt(
        ['overwatch', 'dnssec', 'enabled'],
        `is false without the acknowledgment; unsigned answers can be spoofed. To turn DNSSEC off anyway, add to overwatch.dnssec: ${copy}`,
      );
    }
  }
  const sync = dnssec?.key_sync;
  if (Array.isArray(sync?.peers) && sync.peers.length > 0 && (sync.shared_secret === null || sync.shared_secret === undefined)) {
    sink.reportAt(['overwatch', 'dnssec', 'key_sync', 'peers'], 'is set without key_sync.shared_secret, expected a shared_secret (base64 of 32 bytes, the same on every peer) to authenticate peers and encrypt the keys they exchange');
  }
}

/** dns.cookies: one secret source at most; rotate: false needs a shared secret (a random one would be the same as rotating it at start). */
function checkCookies(file: UncheckedFile, sink: ProblemCollector): void {
  const cookies = file.dns?.cookies;
  const hasSecret = typeof cookies?.secret === 'string';
  const hasFile = typeof cookies?.secret_file === 'string';
  if (hasSecret && hasFile) {
    sink.reportAt(['dns', 'cookies', 'secret_file'], 'is set together with dns.cookies.secret, expected one of them: the secret itself, or the file that holds it');
  }
  if (cookies?.rotate === false && !hasSecret && !hasFile) {
    sink.reportAt(['dns', 'cookies', 'rotate'], 'is false without dns.cookies.secret or secret_file, expected a shared secret to use as the key (without one, each start makes a random key)');
  }
}

/**
 * Records the first list index of each name under `listPath[i].name` and
 * reports every later repeat at its own position, naming the first one's line.
 */
function firstDefinitions(
  sink: ProblemCollector,
  listPath: PathSegment[],
  names: readonly (string | null | undefined)[],
  what: string,
): Map<string, number> {
  const first = new Map<string, number>();
  names.forEach((name, i) => {
    if (typeof name !== 'string') return;
    const earlier = first.get(name);
    if (earlier === undefined) {
      first.set(name, i);
      return;
    }
    // Lists from several files are joined, so the first definition may be in another file: lineRef names it then.
    const where = sink.lineRef(sink.positionOf([...listPath, earlier, 'name']), sink.positionOf([...listPath, i, 'name']));
    sink.reportAt(
      [...listPath, i, 'name'],
      `"${name}" is already defined at ${where} (${listPath.join('.')}[${earlier}]), expected unique ${what}`,
    );
  });
  return first;
}

/**
 * Reports a region name that differs from an earlier one only in case
 * ("EU-West" after "eu-west"). Region names are case-sensitive everywhere
 * they appear (API paths and output, metric labels, agents' regions, bus
 * subjects), so two such regions would be two regions that an operator reads
 * as one; the file is refused instead. Returns lower-cased name → index of
 * its first definition, to name the right spelling when a reference misses.
 */
function checkRegionCase(sink: ProblemCollector, names: readonly (string | null | undefined)[]): Map<string, number> {
  const first = new Map<string, number>();
  names.forEach((name, i) => {
    if (typeof name !== 'string') return;
    const key = name.toLowerCase();
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, i);
      return;
    }
    // An exact duplicate is firstDefinitions()'s to report.
    if (names[earlier] === name) return;
    const where = sink.lineRef(sink.positionOf(['regions', earlier, 'name']), sink.positionOf(['regions', i, 'name']));
    sink.reportAt(['regions', i, 'name'], `"${name}" differs only in case from "${names[earlier]}" defined at ${where} (regions[${earlier}]), expected region names that differ in more than case`);
  });
  return first;
}

function checkTimeoutBelowInterval(sink: ProblemCollector, hc: UncheckedHealthCheck | null | undefined, path: PathSegment[]): void {
  if (typeof hc?.timeout !== 'number' || typeof hc.interval !== 'number') return;
  if (hc.timeout >= hc.interval) {
    sink.reportAt(
      [...path, 'timeout'],
      `${formatDuration(hc.timeout)} is not shorter than the interval ${formatDuration(hc.interval)}, expected a timeout below the interval`,
    );
  }
}

/** keep_alive keeps an HTTP connection: refused (not silently ignored) for tcp and none. */
function checkKeepAliveType(sink: ProblemCollector, hc: UncheckedHealthCheck | null | undefined, path: PathSegment[]): void {
  if (hc?.keep_alive !== true || (hc.type !== 'tcp' && hc.type !== 'none')) return;
  sink.reportAt([...path, 'keep_alive'], `true does not apply to type ${hc.type}, expected keep_alive only with type http or https`);
}

/** Headers the probe sets itself (health_check.host, keep_alive) or that would frame a body a check never sends. */
const PROBE_HEADERS: ReadonlyMap<string, string> = new Map([
  ['host', 'set health_check.host instead'],
  ['connection', 'set health_check.keep_alive instead'],
  ['content-length', 'a check sends no body'],
  ['transfer-encoding', 'a check sends no body'],
]);

/**
 * A check whose request could never be sent, or never answered as meant, is
 * refused at load: otherwise every probe fails ("error: invalid header") and
 * a reload takes a whole region down. The path and the header values are
 * checked by their patterns (definition.ts); header names and body_match here.
 */
function checkRequestParts(sink: ProblemCollector, hc: UncheckedHealthCheck | null | undefined, path: PathSegment[]): void {
  if (hc === null || hc === undefined) return;
  if (hc.headers !== null && typeof hc.headers === 'object') {
    // Header names ignore case, and the probe keeps one value per name: "X-Env" and "x-env" would lose one silently.
    const seen = new Map<string, string>();
    for (const name of Object.keys(hc.headers)) {
      const first = seen.get(name.toLowerCase());
      if (first !== undefined) {
        sink.reportAt([...path, 'headers', name], `names the same header as "${first}" (header names ignore case), expected each header once`);
        continue;
      }
      seen.set(name.toLowerCase(), name);
      if (!HEADER_NAME.test(name)) {
        sink.reportAt([...path, 'headers', name], `${JSON.stringify(name)} is not a header name, expected letters, digits and !#$%&'*+-.^_\`|~ only (RFC 9110 §5.1)`);
      } else {
        const why = PROBE_HEADERS.get(name.toLowerCase());
        if (why !== undefined) sink.reportAt([...path, 'headers', name], `${name} is set by the probe, expected other headers: ${why}`);
      }
    }
  }
  const match = typeof hc.body_match === 'string' ? bodyMatchOf(hc.body_match) : null;
  if (match?.kind === 'regex') {
    // The probe runs it with the linear-time engine (src/lib/linear-regexp.ts): a pattern it cannot run is refused here.
    try {
      linearRegExp(match.pattern);
    } catch (err) {
      const message = (err as Error).message;
      if ((err as Error).cause !== undefined) {
        sink.reportAt([...path, 'body_match'], `${JSON.stringify(hc.body_match)} cannot be matched in linear time: ${message}, expected a /REGEX/ without backreferences or lookahead, or plain text`);
      } else {
        sink.reportAt([...path, 'body_match'], `${JSON.stringify(hc.body_match)} is not a valid regular expression (${message}), expected /REGEX/ or plain text`);
      }
    }
  }
}

/** health_check.body_match as written: `/…/` is a regular expression (no flags), anything else text to find. */
function bodyMatchOf(text: string): { kind: 'regex' | 'substring'; pattern: string } {
  return /^\/.+\/$/.test(text) ? { kind: 'regex', pattern: text.slice(1, -1) } : { kind: 'substring', pattern: text };
}

function checkNameserverList(sink: ProblemCollector, list: UncheckedNameserverList | null | undefined, path: PathSegment[]): void {
  const seen = new Map<string, number>();
  (list ?? []).forEach((ns, i) => {
    const name = typeof ns === 'string' ? ns : ns?.name;
    if (typeof name !== 'string') return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else sink.reportAt([...path, i], `"${name}" is listed twice (first at ${sink.lineRef(sink.positionOf([...path, first]), sink.positionOf([...path, i]))}), expected each name server once`);
  });
}

/** Checks dns.zones: unique apexes, derived default names that fit, and every domain inside one zone. */
function checkZones(file: UncheckedFile, sink: ProblemCollector): void {
  const zones = file.dns?.zones;
  const domains = file.domains ?? [];
  const apexes: string[] = [];
  if (zones === null || zones === undefined) {
    // Each domain is its own apex; the derived ns1.<apex> and hostmaster.<apex> must still be valid names.
    domains.forEach((d, i) => {
      if (typeof d?.name === 'string') checkDerivedNames(sink, d.name, ['domains', i, 'name'], file.dns?.nameservers == null);
    });
    return;
  }
  const seen = new Map<string, number>();
  zones.forEach((zone, z) => {
    const name = typeof zone === 'string' ? zone : zone?.name;
    if (typeof name !== 'string') return;
    const path: PathSegment[] = typeof zone === 'string' ? ['dns', 'zones', z] : ['dns', 'zones', z, 'name'];
    const first = seen.get(name);
    if (first !== undefined) {
      sink.reportAt(path, `"${name}" is already listed at ${sink.lineRef(sink.positionOf(['dns', 'zones', first]), sink.positionOf(path))}, expected each zone once`);
      return;
    }
    seen.set(name, z);
    apexes.push(name);
    const ownNameservers = typeof zone === 'object' && zone !== null ? zone.nameservers : null;
    if (ownNameservers !== null && ownNameservers !== undefined) checkNameserverList(sink, ownNameservers, ['dns', 'zones', z, 'nameservers']);
    checkDerivedNames(sink, name, path, file.dns?.nameservers == null && ownNameservers == null);
  });
  const enclosing = new EnclosingNames(apexes);
  domains.forEach((d, i) => {
    if (typeof d?.name !== 'string' || apexes.length === 0) return;
    if (enclosing.closest(d.name) < 0) {
      sink.reportAt(
        ['domains', i, 'name'],
        `"${d.name}" is not inside any zone in dns.zones (${apexes.join(', ')}), expected a name equal to or below one of them`,
      );
    }
  });
}

type UncheckedServer = NonNullable<NonNullable<NonNullable<UncheckedRegions[number]>['servers']>[number]>;

/** A server has an address or a CNAME target, not both; a CNAME server's check needs check_address (where to probe). */
function checkCnameServer(sink: ProblemCollector, server: UncheckedServer, checkType: string | null | undefined, path: PathSegment[]): void {
  const hasAddress = server.address !== undefined && server.address !== null;
  const hasCname = typeof server.cname === 'string';
  // A value that failed its own check is undefined: its problem is reported already.
  if (server.address === undefined && 'address' in server) return;
  if (!hasAddress && !hasCname) {
    if (server.cname === undefined && 'cname' in server) return;
    sink.reportAt(path, 'has neither address nor cname, expected an IP address (answered as A/AAAA) or a cname target name (answered as a CNAME)');
    return;
  }
  if (hasAddress && hasCname) {
    sink.reportAt([...path, 'cname'], 'is set beside address, expected one of them: a server is answered either by its address or as a CNAME');
    return;
  }
  if (hasCname && (server.check_address === undefined || server.check_address === null) && (checkType ?? 'http') !== 'none') {
    sink.reportAt([...path, 'cname'], `"${server.cname}" is a CNAME target, so its check needs check_address (the IP address to probe; the target name is sent as Host and TLS server name), or health_check.type none`);
  }
}

/**
 * A domain is an address pool or a CNAME pool (a name pool), never both: its
 * regions' servers are all addresses or all CNAME targets. A CNAME pool
 * answers one CNAME: not at a zone apex (beside SOA and NS, RFC 1034 §3.6.2),
 * max_answers 1, no fallback addresses.
 */
function checkPoolKind(
  sink: ProblemCollector,
  domain: UncheckedDomain | undefined,
  d: number,
  regions: UncheckedRegions,
  regionNames: ReadonlyMap<string, number>,
  zones: NonNullable<UncheckedFile['dns']>['zones'] | undefined,
): void {
  if (domain === undefined || !Array.isArray(domain.regions)) return;
  let cnameRegion: string | null = null;
  let addressRegion: string | null = null;
  for (const name of domain.regions) {
    const region = regionNamed(regions, regionNames, name);
    for (const server of region?.servers ?? []) {
      if (typeof server?.cname === 'string' && (server.address === null || server.address === undefined)) cnameRegion ??= name ?? null;
      else if (server?.address !== undefined && server.address !== null) addressRegion ??= name ?? null;
    }
  }
  if (cnameRegion === null) return;
  if (addressRegion !== null) {
    sink.reportAt(['domains', d, 'regions'], `mixes address servers (region "${addressRegion}") and cname servers (region "${cnameRegion}"), expected a domain to be an address pool or a CNAME pool`);
    return;
  }
  const apexes = Array.isArray(zones) ? zones.map((z) => (typeof z === 'string' ? z : z?.name)) : [domain.name];
  if (typeof domain.name === 'string' && apexes.includes(domain.name)) {
    const why = Array.isArray(zones) ? '' : ' (without dns.zones every domain is its own zone apex: list a zone above it in dns.zones)';
    sink.reportAt(['domains', d, 'name'], `"${domain.name}" is a zone apex, where SOA and NS live, so it cannot be a CNAME pool (RFC 1034 §3.6.2: a CNAME stands alone)${why}, expected a name below the apex`);
  }
  if (typeof domain.max_answers === 'number' && domain.max_answers > 1) {
    sink.reportAt(['domains', d, 'max_answers'], `is ${domain.max_answers}, but a CNAME pool answers one CNAME (a name has at most one, RFC 2181 §10.1), expected 1 or nothing`);
  }
  if (Array.isArray(domain.fallback) && domain.fallback.length > 0) {
    sink.reportAt(['domains', d, 'fallback'], 'lists addresses, but the domain is a CNAME pool (its servers have cname), expected no fallback: use when_all_down servfail, last_healthy or all');
  }
}

/** Checks dns.zones[].records (src/config/static-records.ts) against each other, the zones and the GSLB domains. */
function checkZoneRecords(file: UncheckedFile, sink: ProblemCollector, regions: UncheckedRegions, regionNames: ReadonlyMap<string, number>): void {
  const zones = file.dns?.zones ?? [];
  const baseTtlMs = file.dns?.soa?.ttl;
  const nameserverHosts = new Set<string>();
  const addHosts = (list: UncheckedNameserverList | null | undefined): void => {
    for (const ns of list ?? []) {
      if (typeof ns === 'object' && ns !== null && typeof ns.name === 'string' && Array.isArray(ns.addresses) && ns.addresses.length > 0) nameserverHosts.add(ns.name);
    }
  };
  addHosts(file.dns?.nameservers);
  const context: StaticRecordContext = {
    zones: zones.flatMap((zone, z) => {
      if (zone === undefined || zone === null) return [];
      if (typeof zone === 'string') return [{ apex: zone, defaultTtlSec: 3600, lines: [] }];
      if (typeof zone.name !== 'string') return [];
      addHosts(zone.nameservers);
      const ttlMs = zone.soa?.ttl ?? baseTtlMs;
      return [{
        apex: zone.name,
        defaultTtlSec: typeof ttlMs === 'number' ? ttlMs / 1000 : 3600,
        lines: (zone.records ?? []).flatMap((text, i) => (typeof text === 'string' ? [{ text, path: ['dns', 'zones', z, 'records', i] }] : [])),
      }];
    }),
    domains: (file.domains ?? []).flatMap((d, i) => (typeof d?.name === 'string' ? [{ name: d.name, path: ['domains', i, 'name'] }] : [])),
    nameserverHosts,
    maxTtlSec: MAX_TTL_SEC,
    pools: (file.domains ?? []).flatMap((d, i) => {
      if (typeof d?.name !== 'string' || !Array.isArray(d.regions)) return [];
      const targets: string[] = [];
      for (const name of d.regions) {
        for (const server of regionNamed(regions, regionNames, name)?.servers ?? []) if (typeof server?.cname === 'string') targets.push(server.cname);
      }
      return targets.length === 0 ? [] : [{ name: d.name, targets, path: ['domains', i, 'name'] }];
    }),
  };
  for (const p of checkStaticRecords(context)) sink.reportAt(p.path, p.message);
}

/** Reports `fallback` without `when_all_down: fallback`, and the mode without addresses. */
type UncheckedDomain = NonNullable<NonNullable<UncheckedFile['domains']>[number]>;
type UncheckedRegions = NonNullable<UncheckedFile['regions']>;

/** The region a domain names (the first of that name: firstDefinitions' map), or undefined. */
function regionNamed(regions: UncheckedRegions, regionNames: ReadonlyMap<string, number>, name: string | undefined): UncheckedRegions[number] | undefined {
  const at = name === undefined ? undefined : regionNames.get(name);
  return at === undefined ? undefined : regions[at];
}

function checkAllDown(sink: ProblemCollector, domain: UncheckedDomain | undefined, d: number): void {
  if (domain === undefined) return;
  const hasFallback = Array.isArray(domain.fallback) && domain.fallback.length > 0;
  if (domain.when_all_down === 'fallback' && !hasFallback) {
    sink.reportAt(['domains', d, 'when_all_down'], 'is "fallback" but the domain has no fallback addresses, expected a non-empty `fallback` list');
  }
  if (hasFallback && domain.when_all_down !== 'fallback' && domain.when_all_down != null) {
    sink.reportAt(['domains', d, 'fallback'], `is never answered because when_all_down is "${domain.when_all_down}", expected when_all_down: fallback (or no fallback list)`);
  }
  if (hasFallback && domain.when_all_down == null) {
    sink.reportAt(['domains', d, 'fallback'], 'is never answered without when_all_down: fallback, expected that setting beside it');
  }
}

/** The policies that never answer a server of weight 0 (selectMembers' OUT_WEIGHT_ZERO). */
const WEIGHT_ZERO_POLICIES: ReadonlySet<string> = new Set(['weighted', 'geolocation', 'sticky']);

/**
 * Warns (never refuses) when a weighted, geolocation or sticky domain has
 * configured servers of a family and every one of them has weight 0: weight 0
 * is this project's drain, so such a family is always "all down" and only
 * when_all_down answers it (Route 53 instead answers all of a name's records
 * alike when every weight is 0). Agents' backends, which come at run time,
 * are not counted; the message says so when the agent channel is on.
 */
function warnAllWeightZero(
  sink: ProblemCollector,
  domain: UncheckedDomain | undefined,
  d: number,
  regions: UncheckedRegions,
  regionNames: ReadonlyMap<string, number>,
  agentChannel: boolean,
): void {
  if (domain === undefined || typeof domain.name !== 'string' || !WEIGHT_ZERO_POLICIES.has(domain.routing_algorithm ?? '')) return;
  // Per family, as a query sees them: [servers, of which weight 0]. A CNAME server answers both families.
  const count = { IPv4: [0, 0], IPv6: [0, 0] };
  for (const name of new Set(domain.regions ?? [])) {
    for (const server of regionNamed(regions, regionNames, name)?.servers ?? []) {
      if (server === undefined) continue;
      const zero = server.weight === 0 ? 1 : 0;
      const families = server.address != null ? [server.address.family === 6 ? count.IPv6 : count.IPv4] : typeof server.cname === 'string' ? [count.IPv4, count.IPv6] : [];
      for (const f of families) {
        f[0]++;
        f[1] += zero;
      }
    }
  }
  const drained = (Object.keys(count) as (keyof typeof count)[]).filter((k) => count[k][0] > 0 && count[k][0] === count[k][1]);
  if (drained.length === 0) return;
  const other = (Object.keys(count) as (keyof typeof count)[]).filter((k) => count[k][0] > 0 && !drained.includes(k));
  const which = other.length === 0 ? 'server' : `${drained[0]} server`;
  const mode = domain.when_all_down ?? null;
  const outcome = mode === 'fallback'
    ? 'so it always answers its fallback addresses'
    : `and every mode but fallback leaves weight-0 servers out, so it answers SERVFAIL${mode === null ? '' : ` (when_all_down: ${mode})`}`;
  const agents = agentChannel ? '; agents\' backends reported at run time are not counted here' : '';
  sink.warnAt(
    ['domains', d, 'name'],
    `every ${which} of ${domain.name} has weight 0 (weight 0 drains a server under ${domain.routing_algorithm}): DNS answers it only by when_all_down, ${outcome}; ` +
      `expected at least one server with a weight above 0, or when_all_down: fallback to answer fixed addresses while every server is drained${agents}`,
  );
}

/** The Go original's per-domain smoothing factor must agree with the health checks that now own the moving average. */
function checkSmoothingFactor(
  sink: ProblemCollector,
  domain: UncheckedDomain | undefined,
  d: number,
  regions: UncheckedRegions,
  regionNames: ReadonlyMap<string, number>,
): void {
  const factor = domain?.latency_config?.smoothing_factor;
  if (typeof factor !== 'number') return;
  for (const name of domain?.regions ?? []) {
    const r = name === undefined ? undefined : regionNames.get(name);
    const alpha = r === undefined ? undefined : regions[r]?.health_check?.ema_alpha;
    if (typeof alpha === 'number' && alpha !== factor) {
      sink.reportAt(
        ['domains', d, 'latency_config', 'smoothing_factor'],
        `${factor} differs from regions[${r}].health_check.ema_alpha (${alpha}); the moving average is per health check now, expected the same value or no smoothing_factor`,
      );
      return;
    }
  }
}

/**
 * Latency routing ranks servers by their health checks' round-trip time, so a
 * latency domain may not list a region whose configured servers are never
 * checked (health_check.type none): they would never have a latency.
 */
function checkLatencyMeasured(
  sink: ProblemCollector,
  domain: UncheckedDomain | undefined,
  d: number,
  regions: UncheckedRegions,
  regionNames: ReadonlyMap<string, number>,
): void {
  if (typeof domain?.routing_algorithm !== 'string' || domain.routing_algorithm.toLowerCase() !== 'latency') return;
  (domain.regions ?? []).forEach((name, i) => {
    const r = name === undefined ? undefined : regionNames.get(name);
    const region = r === undefined ? undefined : regions[r];
    const type = region?.health_check?.type;
    if (typeof type !== 'string' || type.toLowerCase() !== 'none') return;
    const servers = region?.servers ?? [];
    if (servers.length === 0) return;
    sink.reportAt(
      ['domains', d, 'regions', i],
      `"${name}" (regions[${r}]) has health_check type none, so its ${servers.length === 1 ? 'server is never checked and never gets' : `${servers.length} servers are never checked and never get`} a latency, ` +
        'but latency routing ranks servers by their check round-trip time: expected a health check (type http, https or tcp) on that region, or another routing_algorithm for this domain',
    );
  });
}

/** Reports an apex so long that the default SOA RNAME or name server built from it is not a valid name. */
function checkDerivedNames(sink: ProblemCollector, apex: string, path: PathSegment[], usesDefaultNameserver: boolean): void {
  const derived = usesDefaultNameserver ? [`hostmaster.${apex}`, `ns1.${apex}`] : [`hostmaster.${apex}`];
  for (const name of derived) {
    if ('error' in normaliseDomainName(name)) {
      sink.reportAt(path, `"${apex}" is too long to derive the default name ${JSON.stringify(name)}, expected a shorter apex or explicit dns.soa.rname and dns.nameservers`);
      return;
    }
  }
}

function listOrNone(names: readonly string[]): string {
  return names.length === 0 ? '(none defined)' : names.join(', ');
}

/**
 * Builds the normalised Config from a file tree that passed every check:
 * resolves zones (one per domain when dns.zones is absent), fills computed
 * defaults (workers, SOA names, name servers, domain TTLs), converts units and
 * deep-freezes the result. `source` is the absolute path of the file.
 */
export function buildConfig(file: CheckedFile, source: string): Config {
  const dns = file.dns;
  const apexOrder: { name: string; soa: ZoneSoaFields | null; nameservers: NameserverList | null; records: readonly string[] }[] =
    dns.zones === null
      ? file.domains.map((d) => ({ name: d.name, soa: null, nameservers: null, records: [] }))
      : dns.zones.map((z) => (typeof z === 'string' ? { name: z, soa: null, nameservers: null, records: [] } : z));
  const zones: ZoneConfig[] = apexOrder.map((z) => buildZone(z.name, dns.soa, z.soa, z.nameservers ?? dns.nameservers, z.records));

  const regions: RegionConfig[] = file.regions.map((r) => ({
    name: r.name,
    servers: r.servers.map((s) => ({
      address: s.address?.address ?? (s.cname as string),
      cname: s.address === null ? s.cname : null,
      family: s.address?.family ?? 4,
      port: s.port,
      weight: s.weight,
      // A CNAME server's check names its target (Host, TLS SNI): what the CDN or load balancer serves.
      host: s.host ?? (s.address === null ? s.cname : null),
      checkAddress: s.check_address?.address ?? s.address?.address ?? '',
      checkPort: s.check_port ?? s.port,
    })),
    healthCheck: buildHealthCheck(r.health_check),
    countries: r.countries,
    continents: r.continents,
  }));

  const enclosing = new EnclosingNames(zones.map((z) => z.name));
  const domains: DomainConfig[] = file.domains.map((d) => ({
    name: d.name,
    routingAlgorithm: d.routing_algorithm,
    regions: d.regions,
    // The Go original treats ttl 0 as "use the default"; so do we.
    ttlSec: d.ttl === null || d.ttl === 0 ? dns.default_ttl : d.ttl,
    maxAnswers: d.max_answers,
    // The longest zone containing it; checkZones guarantees there is one.
    zone: zones[enclosing.closest(d.name)]?.name ?? '',
    // dns.return_last_healthy was the Go original's (unwired) switch for this; it sets the default.
    whenAllDown: d.when_all_down ?? (dns.return_last_healthy ? 'last_healthy' : 'servfail'),
    fallback: (d.fallback ?? []).map((a) => a.address),
    sticky: { ipv4Prefix: d.sticky.ipv4_prefix, ipv6Prefix: d.sticky.ipv6_prefix },
    latency: {
      maxLatencyMs: d.latency_config.max_latency_ms,
      minSamples: d.latency_config.min_samples,
      tieMarginMs: d.latency_config.tie_margin_ms,
    },
  }));

  const config: Config = {
    source,
    mode: file.mode,
    dns: {
      listenHost: dns.listen_address.host ?? '0.0.0.0',
      listenPort: dns.listen_address.port,
      workers: dns.workers ?? Math.min(availableParallelism(), MAX_WORKERS),
      defaultTtlSec: dns.default_ttl,
      returnLastHealthy: dns.return_last_healthy,
      zones,
      udpReceiveBufferBytes: dns.udp_receive_buffer,
      udpIo: dns.udp_io,
      tcpIdleTimeoutMs: dns.tcp_idle_timeout,
      tcpFrameTimeoutMs: dns.tcp_frame_timeout,
      tcpMaxConnectionsPerWorker: dns.tcp_max_connections,
      tcpMaxConnectionsPerClient: dns.tcp_max_connections_per_client,
      tcpClientIpv4PrefixLength: dns.tcp_client_ipv4_prefix_length,
      tcpClientIpv6PrefixLength: dns.tcp_client_ipv6_prefix_length,
      tcpMaxQueriesPerConnection: dns.tcp_max_queries_per_connection,
      rrl: {
        enabled: dns.rrl.enabled,
        responsesPerSecond: dns.rrl.responses_per_second,
        nxdomainsPerSecond: dns.rrl.nxdomains_per_second ?? dns.rrl.responses_per_second,
        errorsPerSecond: dns.rrl.errors_per_second ?? dns.rrl.responses_per_second,
        windowSec: dns.rrl.window,
        slip: dns.rrl.slip,
        ipv4PrefixLength: dns.rrl.ipv4_prefix_length,
        ipv6PrefixLength: dns.rrl.ipv6_prefix_length,
        exemptClients: dns.rrl.exempt_clients.map(networkOfCidr),
        tableEntries: rrlEntriesFor(dns.rrl.max_table_size),
      },
      cookies: {
        enabled: dns.cookies.enabled,
        require: dns.cookies.require,
        secret: dns.cookies.secret ?? null,
        secretFile: dns.cookies.secret_file === null || dns.cookies.secret_file === undefined ? null : resolve(dirname(source), dns.cookies.secret_file),
        secretLifetimeMs: dns.cookies.secret_lifetime,
        rotate: dns.cookies.rotate,
      },
      identity: { id: dns.identity.id, version: dns.identity.version },
    },
    regions,
    domains,
    logging: { level: file.logging.level, format: file.logging.format },
    api: {
      enabled: file.api.enabled,
      host: file.api.address.host ?? '0.0.0.0',
      port: file.api.address.port,
      allowedNetworks: file.api.allowed_networks,
      allowedHosts: file.api.allowed_hosts,
      trustProxyHeaders: file.api.trust_proxy_headers,
      maxConnections: file.api.max_connections,
      token: file.api.token ?? null,
      tls:
        file.api.tls.cert_file === null || file.api.tls.key_file === null
          ? null
          : { certPath: resolve(dirname(source), file.api.tls.cert_file), keyPath: resolve(dirname(source), file.api.tls.key_file) },
    },
    metrics: {
      enabled: file.metrics.enabled,
      host: file.metrics.address.host ?? '0.0.0.0',
      port: file.metrics.address.port,
    },
    dataDir: resolve(dirname(source), file.overwatch.data_dir),
    geolocation: {
      databasePath: file.overwatch.geolocation.database_path === null ? null : resolve(dirname(source), file.overwatch.geolocation.database_path),
      defaultRegion: file.overwatch.geolocation.default_region,
      ecsEnabled: file.overwatch.geolocation.ecs_enabled,
      customMappings: file.overwatch.geolocation.custom_mappings.map((m) => ({
        cidr: networkOfCidr(m.cidr),
        region: m.region,
        comment: m.comment,
      })),
    },
    dnssec: {
      enabled: file.overwatch.dnssec.enabled,
      algorithm: file.overwatch.dnssec.algorithm,
      signatureValiditySec: file.overwatch.dnssec.signature_validity / 1000,
      keySync: {
        peers: file.overwatch.dnssec.key_sync.peers,
        pollIntervalMs: file.overwatch.dnssec.key_sync.poll_interval,
        timeoutMs: file.overwatch.dnssec.key_sync.timeout,
        sharedSecret: file.overwatch.dnssec.key_sync.shared_secret ?? null,
      },
    },
    gossip: buildOverwatchGossip(file),
    agentTokens: Object.fromEntries(Object.entries(file.overwatch.agent_tokens ?? {}).map(([service, token]) => [serviceName(service), token])),
    validation: {
      enabled: file.overwatch.validation.enabled,
      checkIntervalMs: file.overwatch.validation.check_interval,
      checkTimeoutMs: file.overwatch.validation.check_timeout,
    },
    stale: { thresholdMs: file.overwatch.stale.threshold, removeAfterMs: file.overwatch.stale.remove_after },
    peers: file.overwatch.peers.map((p) => ({ url: p.url.replace(/\/+$/, ''), token: p.token ?? null })),
    bus: file.mode === 'agent' ? null : buildBus(file.overwatch.bus, source, file.overwatch.bus.state_secret, file.overwatch.bus.previous_state_secrets),
    agent: file.mode === 'agent' ? buildAgent(file, source) : null,
  };
  return deepFreeze(config);
}

/** A service name as written (checkAgentChannel made sure it is one), lower-case without the trailing dot. */
function serviceName(text: string): string {
  const name = normaliseDomainName(text);
  return 'name' in name ? name.name : text;
}

function buildOverwatchGossip(file: CheckedFile): OverwatchGossipConfig | null {
  const g = file.overwatch.gossip;
  if (g.encryption_key === null) return null;
  return {
    bindHost: g.bind_address?.host ?? '0.0.0.0',
    bindPort: g.bind_address?.port ?? DEFAULT_GOSSIP_PORT,
    encryptionKey: g.encryption_key,
    acceptedKeys: g.accepted_keys,
    maxClockSkewMs: g.max_clock_skew,
    maxAgents: g.max_agents,
  };
}

/** agent.bus or overwatch.bus as the code takes it; null when `type` is not set. Paths are taken from the main file's folder. */
function buildBus(bus: CheckedFile['agent']['bus'], source: string, stateSecret: string | null = null, previousStateSecrets: readonly string[] = []): BusConfig | null {
  if (bus.type === null) return null;
  const path = (p: string | null): string | null => (p === null ? null : resolve(dirname(source), p));
  const tls = bus.tls;
  const tlsOn = tls.ca_file !== null || tls.cert_file !== null || tls.key_file !== null || bus.servers.some((u) => u.startsWith('tls://'));
  return {
    type: bus.type,
    servers: bus.servers,
    token: bus.token,
    credentialsFile: path(bus.credentials_file),
    tls: tlsOn ? { caFile: path(tls.ca_file), certFile: path(tls.cert_file), keyFile: path(tls.key_file) } : null,
    subjectPrefix: bus.subject_prefix,
    stateSecret,
    previousStateSecrets,
  };
}

/** Builds the agent section; the mode's required keys are present (the validator reported them otherwise). */
function buildAgent(file: CheckedFile, source: string): AgentConfig {
  const a = file.agent;
  const backends: AgentBackendConfig[] = a.backends.map((b) => {
    const ip = parseIp(b.address);
    return {
      service: b.service,
      address: 'error' in ip ? b.address.toLowerCase() : ip.address,
      family: 'error' in ip ? null : ip.family,
      port: b.port,
      weight: b.weight,
      host: b.health_check.host,
      healthCheck: buildHealthCheck(b.health_check),
    };
  });
  const p = a.predictive;
  return {
    identity: {
      serviceToken: a.identity.service_token ?? '',
      region: a.identity.region ?? '',
      certPath: resolve(dirname(source), a.identity.cert_path),
      keyPath: resolve(dirname(source), a.identity.key_path),
    },
    backends,
    predictive: {
      enabled: p.enabled,
      checkIntervalMs: p.check_interval,
      cpu: { thresholdPercent: p.cpu.threshold, bleedDurationMs: p.cpu.bleed_duration },
      memory: { thresholdPercent: p.memory.threshold, bleedDurationMs: p.memory.bleed_duration },
      errorRate: { thresholdPerMin: p.error_rate.threshold, windowMs: p.error_rate.window, bleedDurationMs: p.error_rate.bleed_duration },
    },
    gossip: {
      encryptionKey: a.gossip.encryption_key ?? '',
      overwatchNodes: a.gossip.overwatch_nodes.map((n) => ({ host: n.host ?? '', port: n.port })),
    },
    bus: buildBus(a.bus, source),
    heartbeat: { intervalMs: a.heartbeat.interval, missedThreshold: a.heartbeat.missed_threshold, fullIntervalMs: a.heartbeat.full_interval },
  };
}

function buildZone(apex: string, base: SoaFields, own: ZoneSoaFields | null, nameserverList: NameserverList | null, records: readonly string[]): ZoneConfig {
  const nameservers: NameserverConfig[] = nameserverList === null
    ? [{ name: `ns1.${apex}`, addresses: [] }]
    : nameserverList.map((ns) => (typeof ns === 'string'
      ? { name: ns, addresses: [] }
      : { name: ns.name, addresses: ns.addresses.map((a) => a.address) }));
  const seconds = (ms: number): number => ms / 1000;
  const soa: SoaConfig = {
    mname: own?.mname ?? base.mname ?? nameservers[0]?.name ?? `ns1.${apex}`,
    rname: own?.rname ?? base.rname ?? `hostmaster.${apex}`,
    serial: own?.serial ?? base.serial ?? null,
    refreshSec: seconds(own?.refresh ?? base.refresh),
    retrySec: seconds(own?.retry ?? base.retry),
    expireSec: seconds(own?.expire ?? base.expire),
    minimumSec: seconds(own?.minimum ?? base.minimum),
    ttlSec: seconds(own?.ttl ?? base.ttl),
  };
  return { name: apex, soa, nameservers, records: buildStaticRecords(records, apex, soa.ttlSec, MAX_TTL_SEC) };
}

function buildHealthCheck(hc: Value<ConfigFile['keys']['regions']['items']['keys']['health_check']>): HealthCheckConfig {
  return {
    type: hc.type,
    intervalMs: hc.interval,
    timeoutMs: hc.timeout,
    path: hc.path,
    failureThreshold: hc.failure_threshold,
    successThreshold: hc.success_threshold,
    expectedStatus: hc.expected_status.map((text) => {
      const [low, high] = text.split('-').map(Number);
      return [low, high ?? low] as const;
    }),
    headers: hc.headers,
    bodyMatch: hc.body_match === null ? null : bodyMatchOf(hc.body_match),
    tlsVerify: hc.tls_verify,
    keepAlive: hc.keep_alive,
    emaAlpha: hc.ema_alpha,
  };
}

/** Freezes an object graph in place (objects and arrays) and returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
