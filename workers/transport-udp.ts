// Worker, hot path. One reusePort UDP socket per worker: 'message' →
// handleQuery → send, synchronously. The kernel spreads datagrams across the
// workers' sockets.

import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { once } from 'node:events';
import { OUR_UDP_PAYLOAD, MAX_MESSAGE_LEN } from '../src/dns/constants.ts';
import { bump, COUNTER, DurationRecorder, TRANSPORT_UDP } from '../src/metrics/counters-layout.ts';
import { copyBytes } from '../src/dns/write.ts';
import { handleQuery } from './handle-query.ts';
import type { WorkerScratch } from './scratch.ts';

/**
 * Responses in flight: a buffer handed to socket.send() may still be read
 * after send() returns (libuv queues the send when the socket cannot take it
 * at once), so it must not be reused until its callback fires. Sends on one socket complete
 * in order, so a ring of RING_SIZE slots is safe while fewer than RING_SIZE
 * sends are pending; past that we fall back to a fresh buffer.
 */
const RING_SIZE = 128;

/**
 * The `lookup` of a replying node:dgram socket. Every reply goes to
 * rinfo.address, an IP literal of the socket's family, and the bind address
 * is one too (dns.listen_address takes no host names); node:dgram's default
 * lookup checks that as well, then defers each send with process.nextTick.
 * This one hands a literal straight back, so send() passes the reply to the
 * socket at once; anything else is an error (no resolver in a DNS worker).
 * bind() then emits 'listening' before it returns: listen for it first, as
 * bind()'s own callback does.
 */
export const literalLookup = ((address: string, family: number, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void => {
  if (isIP(address) === family) {
    callback(null, address, family);
    return;
  }
  const err: NodeJS.ErrnoException = new Error(`${address} is not an IPv${family} literal; a DNS worker's UDP socket resolves no names`);
  err.code = 'EINVAL';
  callback(err, address, family);
}) as unknown as NonNullable<dgram.SocketOptions['lookup']>;

/** A worker's UDP socket, on either path (this file's node:dgram one, or ./transport-udp-batch.ts). */
export interface UdpListener {
  /** Bytes of queries the receive buffer holds, as granted by the kernel after bind. */
  readonly receiveBuffer: number;
  close(): Promise<void>;
}

/**
 * Binds the worker's UDP socket, sets its receive buffer (SO_RCVBUF) to
 * `receiveBuffer` bytes unless that is 0, and starts answering. Rejects with
 * the bind error (EADDRINUSE, EACCES…).
 */
export async function startUdp(ctx: WorkerScratch, host: string, port: number, receiveBuffer = 0): Promise<UdpListener> {
  const type = host.includes(':') ? 'udp6' : 'udp4';
  const socket = dgram.createSocket({ type, reuseAddr: false, reusePort: true, lookup: literalLookup });
  const build = Buffer.allocUnsafe(MAX_MESSAGE_LEN);
  const backing = Buffer.allocUnsafe(RING_SIZE * OUR_UDP_PAYLOAD);
  const ring: Buffer[] = [];
  for (let i = 0; i < RING_SIZE; i++) ring.push(backing.subarray(i * OUR_UDP_PAYLOAD, (i + 1) * OUR_UDP_PAYLOAD));
  let next = 0;
  let pending = 0;
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  const durations = new DurationRecorder(counters, cb, TRANSPORT_UDP);

  const onSent = (err: Error | null): void => {
    pending--;
    if (err) bump(counters, cb + COUNTER.SEND_ERRORS);
  };

  socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    // opengslb_dns_query_duration_seconds: from here to the return of send().
    const startMs = durations.start();
    let len: number;
    ctx.client.setSource(rinfo.address, rinfo.family === 'IPv6' ? 6 : 4);
    try {
      len = handleQuery(ctx, msg, msg.length, build, false);
    } catch (err) {
      // The one catch on the query path: a bug, not bad input. Answer
      // SERVFAIL with the query's ID so the client is not left waiting.
      ctx.caught(err, 'udp');
      len = writeServfail(build, msg);
    }
    if (len === 0) return;
    // A datagram from source port 0 (forged: no socket sends from it) cannot
    // be answered, and send() would throw ERR_SOCKET_BAD_PORT out of this
    // handler and take the worker down. Counted as a send error, as the
    // batched path counts the kernel's EINVAL for the same reply.
    if (rinfo.port === 0) {
      bump(counters, cb + COUNTER.SEND_ERRORS);
      return;
    }
    let slot: Buffer;
    if (pending < RING_SIZE - 1 && len <= OUR_UDP_PAYLOAD) {
      slot = ring[next];
      next = next + 1 === RING_SIZE ? 0 : next + 1;
    } else {
      slot = Buffer.allocUnsafe(len);
    }
    copyBytes(slot, 0, build, 0, len);
    pending++;
    socket.send(slot, 0, len, rinfo.port, rinfo.address, onSent);
    durations.record(startMs);
  });
  // A socket error after bind (rare: ICMP-driven errors are ignored by Node for
  // unconnected UDP) is counted; the socket stays open.
  socket.on('error', () => bump(counters, cb + COUNTER.SEND_ERRORS));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.bind({ address: host, port }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  // Linux caps SO_RCVBUF at net.core.rmem_max without an error; the caller
  // compares what it asked for with receiveBuffer below. Should setsockopt
  // fail outright, the socket keeps the kernel's default and the same
  // comparison reports it: a buffer size is no reason not to serve.
  if (receiveBuffer > 0) {
    try {
      socket.setRecvBufferSize(receiveBuffer);
    } catch {
      // Reported through receiveBuffer.
    }
  }
  return {
    // getsockopt reports SO_RCVBUF doubled on Linux: the kernel adds as much again for its bookkeeping (socket(7)).
    receiveBuffer: process.platform === 'linux' ? Math.floor(socket.getRecvBufferSize() / 2) : socket.getRecvBufferSize(),
    async close() {
      const closed = once(socket, 'close');
      socket.close();
      await closed;
    },
  };
}

/**
 * Writes a header-only SERVFAIL echoing the query's ID and opcode. Used when
 * handleQuery threw; relies on nothing but the first 4 bytes. Returns 0 when
 * even those are missing.
 */
export function writeServfail(out: Uint8Array, msg: Uint8Array): number {
  if (msg.length < 4 || (msg[2] & 0x80) !== 0) return 0;
  out[0] = msg[0];
  out[1] = msg[1];
  out[2] = 0x80 | (msg[2] & 0x79);
  out[3] = 2;
  for (let i = 4; i < 12; i++) out[i] = 0;
  return 12;
}

