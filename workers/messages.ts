// Any thread, types only. What the main thread and a DNS worker say to each
// other: the worker's start data, and the messages both ways. The main side is
// src/overwatch/dns-pool.ts, the worker side workers/dns-worker.ts; nothing on
// the query path goes through them.

import type { CookieKeys } from '../src/dns/cookie.ts';
import type { RrlSettings } from '../src/dns/rrl.ts';
import type { TcpClientShared } from '../src/dns/tcp-clients.ts';
import type { SignerKey } from '../src/dnssec/sign.ts';

/**
 * ZoneSigners: the keys one signed zone signs with. `data` signs every RRset
 * but the DNSKEY RRset, one RRSIG per key: the newest active key first, then
 * one key of each other algorithm in the DNSKEY RRset (RFC 4035 §2.2, RFC
 * 6840 §5.11: every algorithm of the DNSKEY RRset signs every RRset), so it
 * holds one key but during an algorithm rollover, two. `dnskey` lists every
 * key whose RRSIG goes over the DNSKEY RRset (the active keys, plus a data
 * signer not active yet: two during a rollover, so resolvers holding either
 * DS validate). KeyObjects clone into workers.
 */
export interface ZoneSigners {
  readonly data: readonly SignerKey[];
  readonly dnskey: readonly SignerKey[];
}

/** The DNSSEC part of a snapshot: signers per zone index (null = not signed) and the validity of signatures made on a miss. */
export interface WorkerDnssec {
  readonly zones: readonly (ZoneSigners | null)[];
  readonly validitySec: number;
}

/**
 * SignatureBatch: RRSIGs the CPU pool made in advance with one key, for the
 * workers' signature caches: the RRsets packed by packRrsets and their RRSIG
 * rdatas packed by signBatch, in the same order (src/dnssec/sign.ts).
 */
export interface SignatureBatch {
  readonly signerWire: Uint8Array;
  readonly keyTag: number;
  readonly algorithm: number;
  readonly rrsets: Uint8Array;
  readonly signatures: Uint8Array;
}

/** The TCP listener's limits (dns.tcp_*), fixed when the workers start. */
export interface TcpSettings {
  /** A connection with no query for this long is closed (shorter as the worker fills up). */
  readonly idleTimeoutMs: number;
  /** A message that has started arriving must complete within this long. */
  readonly frameTimeoutMs: number;
  readonly maxConnections: number;
  /** Per client network, for the whole server (counted in DnsWorkerData.tcpClients). */
  readonly maxConnectionsPerClient: number;
  /** The client network the cap counts by: IPv4 addresses cut to this many bits (dns.tcp_client_ipv4_prefix_length). */
  readonly clientIpv4PrefixLength: number;
  /** IPv6 addresses cut to this many bits (dns.tcp_client_ipv6_prefix_length). */
  readonly clientIpv6PrefixLength: number;
  readonly maxQueriesPerConnection: number;
}

/** What the main thread passes to every DNS worker. */
export interface DnsWorkerData {
  readonly index: number;
  readonly snapshot: SharedArrayBuffer;
  readonly live: Int32Array;
  /** The GeoIP database (an .mmdb file's bytes) every worker reads, or null. */
  readonly geo: SharedArrayBuffer | null;
  readonly counters: Int32Array;
  readonly counterBase: number;
  /** The routing-decision buffer this worker index counted in before a restart (it carries on in it), or null. */
  readonly decisions: Int32Array | null;
  readonly host: string;
  readonly port: number;
  /** SO_RCVBUF to ask for on the UDP socket; 0 keeps the kernel's default. */
  readonly udpReceiveBuffer: number;
  /** dns.udp_io: 'auto' answers UDP in batches through the native addon where it loads, 'dgram' always through node:dgram. */
  readonly udpIo: 'auto' | 'dgram';
  readonly tcp: TcpSettings;
  /** The per-client TCP connection counts every worker shares (made by the pool); this worker counts in column `index`. */
  readonly tcpClients: TcpClientShared;
  /** The signers of the snapshot's zones. */
  readonly dnssec: WorkerDnssec;
  /** Signatures made in advance, to fill a (re)started worker's cache. */
  readonly signatures: readonly SignatureBatch[];
  /** dns.rrl with the table every worker shares, or null when rate limiting is off. */
  readonly rrl: RrlSettings | null;
  /** dns.cookies: the current keys and whether cookies are required, or null when cookies are off. */
  readonly cookies: WorkerCookies | null;
}

/** DNS cookies as a worker applies them. */
export interface WorkerCookies {
  readonly require: boolean;
  readonly keys: CookieKeys;
}

export type WorkerToMain =
  /**
   * udpReceiveBuffer: the bytes the UDP socket's receive buffer was granted (UdpListener.receiveBuffer);
   * udpIo: the UDP path this worker answers on, udpIoReason: why (workers/udp-io.ts).
   */
  | { type: 'listening'; index: number; udpReceiveBuffer: number; udpIo: 'batched' | 'dgram'; udpIoReason: string }
  | { type: 'bind-failed'; index: number; transport: 'udp' | 'tcp'; code: string; message: string }
  | { type: 'attached'; index: number; generation: number }
  | { type: 'attach-failed'; index: number; generation: number; message: string }
  | { type: 'decisions'; index: number; buffer: Int32Array }
  /**
   * An exception caught at the per-packet boundary, at most one every
   * EXCEPTION_REPORT_MS per worker; `unreported`: those caught since the last
   * report and not reported themselves (opengslb_dns_worker_exceptions_total counts all).
   */
  | { type: 'exception'; index: number; where: ExceptionSite; message: string; stack: string; unreported: number }
  | { type: 'stopped'; index: number };

/** Where a worker caught an exception: answering over UDP or TCP, or warming the caches for a UDP batch. */
export type ExceptionSite = 'udp' | 'tcp' | 'udp-prefetch';

export type MainToWorker =
  | { type: 'snapshot'; buffer: SharedArrayBuffer; live: Int32Array; generation: number; dnssec: WorkerDnssec }
  | { type: 'signatures'; batches: readonly SignatureBatch[] }
  /** A new GeoIP database: switch to it between two packets. */
  | { type: 'geo'; buffer: SharedArrayBuffer }
  /** The server-cookie keys after a rotation (current, previous, next): switch between two packets. */
  | { type: 'cookie-keys'; keys: CookieKeys }
  | { type: 'stop'; graceMs: number }
  /** Test seam (DnsPool.holdWorker): block this thread until gate[0] is non-zero, to lag behind a publish. */
  | { type: 'hold'; gate: Int32Array };
