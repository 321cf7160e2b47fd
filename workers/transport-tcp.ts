// Worker, hot path per frame. One reusePort TCP listener per worker with
// RFC 7766 framing: a two-byte length before every message, several queries
// per connection answered in order, an idle timeout, a cap on connections and
// on queries per connection, and read back-pressure when a client does not
// read its answers.

import { once } from 'node:events';
import net from 'node:net';
import { MAX_MESSAGE_LEN } from '../src/dns/constants.ts';
import { COUNTER, DurationRecorder, TRANSPORT_TCP } from '../src/metrics/counters-layout.ts';
import { copyBytes } from '../src/dns/write.ts';
import { handleQuery } from './handle-query.ts';
import type { WorkerScratch } from './scratch.ts';
import { writeServfail } from './transport-udp.ts';

export interface TcpOptions {
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxQueriesPerConnection: number;
}

export interface TcpListener {
  readonly server: net.Server;
  /** Stops accepting, lets each connection finish the query it is receiving (up to `graceMs`), then closes it. */
  close(graceMs: number): Promise<void>;
}

/** Per-connection framing state. */
class Connection {
  readonly socket: net.Socket;
  /** The client's address and family (4 or 6), read once when the connection is accepted. */
  readonly clientText: string;
  readonly clientFamily: number;
  /** Bytes of an incomplete frame carried over to the next 'data' event, or null. */
  partial: Buffer | null = null;
  answered = 0;
  /** Stopping: end the connection once the frame being received is answered. */
  closing = false;
  /** Ended by us; bytes that still arrive are ignored. */
  done = false;
  constructor(socket: net.Socket) {
    this.socket = socket;
    this.clientText = socket.remoteAddress ?? '';
    this.clientFamily = socket.remoteFamily === 'IPv6' ? 6 : socket.remoteFamily === 'IPv4' ? 4 : 0;
  }
}

/** Binds the worker's TCP listener and starts answering. Rejects with the bind error. */
export async function startTcp(ctx: WorkerScratch, host: string, port: number, options: TcpOptions): Promise<TcpListener> {
  const build = Buffer.allocUnsafe(MAX_MESSAGE_LEN);
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  const durations = new DurationRecorder(counters, cb, TRANSPORT_TCP);
  const open = new Set<Connection>();
  let stopping = false;

  /** Answers every complete frame in `data`; keeps the incomplete tail. Returns false when the connection was closed. */
  const consume = (conn: Connection, data: Buffer): boolean => {
    if (conn.done) return false;
    let buf = data;
    if (conn.partial !== null) {
      buf = Buffer.concat([conn.partial, data]);
      conn.partial = null;
    }
    const socket = conn.socket;
    let off = 0;
    socket.cork();
    try {
      while (buf.length - off >= 2) {
        const frameLen = (buf[off] << 8) | buf[off + 1];
        if (frameLen === 0) {
          // RFC 7766 §8 leaves no room for empty messages; the stream cannot be
          // resynchronised. end(), not destroy(): answers already written for
          // earlier frames on this connection still go out before the FIN.
          Atomics.add(counters, cb + COUNTER.TCP_BAD_FRAME, 1);
          conn.done = true;
          socket.end();
          return false;
        }
        if (buf.length - off - 2 < frameLen) break;
        const frame = buf.subarray(off + 2, off + 2 + frameLen);
        off += 2 + frameLen;
        // opengslb_dns_query_duration_seconds: from here to the return of write().
        const startMs = durations.start();
        let len: number;
        ctx.client.setSource(conn.clientText, conn.clientFamily);
        try {
          len = handleQuery(ctx, frame, frameLen, build, true);
        } catch {
          Atomics.add(counters, cb + COUNTER.EXCEPTIONS, 1);
          len = writeServfail(build, frame);
        }
        if (len > 0) {
          const reply = Buffer.allocUnsafe(len + 2);
          reply[0] = len >>> 8;
          reply[1] = len & 0xff;
          copyBytes(reply, 2, build, 0, len);
          if (!socket.write(reply)) socket.pause();
          durations.record(startMs);
        }
        if (++conn.answered >= options.maxQueriesPerConnection) {
          conn.done = true;
          socket.end();
          return false;
        }
      }
    } finally {
      socket.uncork();
    }
    if (off < buf.length) conn.partial = Buffer.from(buf.subarray(off));
    if (conn.closing && conn.partial === null) {
      conn.done = true;
      socket.end();
      return false;
    }
    return true;
  };

  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (stopping || open.size >= options.maxConnections) {
      Atomics.add(counters, cb + COUNTER.TCP_REJECTED, 1);
      socket.destroy();
      return;
    }
    Atomics.add(counters, cb + COUNTER.TCP_ACCEPTED, 1);
    const conn = new Connection(socket);
    open.add(conn);
    socket.setTimeout(options.idleTimeoutMs);
    socket.on('timeout', () => {
      Atomics.add(counters, cb + COUNTER.TCP_IDLE_CLOSED, 1);
      socket.destroy();
    });
    socket.on('data', (data: Buffer) => {
      consume(conn, data);
    });
    socket.on('drain', () => socket.resume());
    socket.on('end', () => socket.end());
    // Resets and write errors end the connection; nothing to report per client.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => open.delete(conn));
  });
  server.maxConnections = options.maxConnections + 16;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, reusePort: true, backlog: 511 }, () => {
      server.off('error', onError);
      resolve();
    });
  });

  return {
    server,
    async close(graceMs: number) {
      stopping = true;
      const closed = once(server, 'close');
      server.close();
      for (const conn of open) {
        conn.closing = true;
        if (conn.partial === null) conn.socket.end();
      }
      const deadline = setTimeout(() => {
        for (const conn of open) conn.socket.destroy();
      }, graceMs);
      await closed;
      clearTimeout(deadline);
    },
  };
}
