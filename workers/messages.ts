// Any thread, types only. What the main thread and a DNS worker say to each
// other: the worker's start data, and the messages both ways. The main side is
// src/overwatch/dns-pool.ts, the worker side workers/dns-worker.ts; nothing on
// the query path goes through them.

/** The TCP listener's limits (dns.tcp_*), fixed when the workers start. */
export interface TcpSettings {
  /** A connection with no query for this long is closed (shorter as the worker fills up). */
  readonly idleTimeoutMs: number;
  /** A message that has started arriving must complete within this long. */
  readonly frameTimeoutMs: number;
  readonly maxConnections: number;
  /** Per client: one IPv4 address, or one IPv6 /64. */
  readonly maxConnectionsPerClient: number;
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
  readonly tcp: TcpSettings;
}

export type WorkerToMain =
  /** udpReceiveBuffer: the bytes the UDP socket's receive buffer was granted (UdpListener.receiveBuffer). */
  | { type: 'listening'; index: number; udpReceiveBuffer: number }
  | { type: 'bind-failed'; index: number; transport: 'udp' | 'tcp'; code: string; message: string }
  | { type: 'attached'; index: number; generation: number }
  | { type: 'attach-failed'; index: number; generation: number; message: string }
  | { type: 'decisions'; index: number; buffer: Int32Array }
  | { type: 'stopped'; index: number };

export type MainToWorker =
  | { type: 'snapshot'; buffer: SharedArrayBuffer; live: Int32Array; generation: number }
  /** A new GeoIP database: switch to it between two packets. */
  | { type: 'geo'; buffer: SharedArrayBuffer }
  | { type: 'stop'; graceMs: number };
