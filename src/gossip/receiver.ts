// Main thread (overwatch), per datagram and TCP chunk. The agent channel's
// listeners on overwatch.gossip.bind_address: one UDP socket and one TCP
// server on the same port. Each datagram is one sealed message; on TCP each
// length-framed message (framing.ts) is answered with a sealed ack frame; a
// frame that does not open under our keyring closes the connection.
// Everything is bounded: message size, open connections, messages per
// connection, idle time and unsent reply bytes. Verification is the
// channel's (channel.ts); this module only moves bytes.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { OpenGslbError } from '../lib/errors.ts';
import type { MessageSource, OverwatchChannel } from './channel.ts';
import { encodeFrame, FrameReader } from './framing.ts';

/** Default overwatch.gossip.bind_address port (the Go original's memberlist port). */
export const DEFAULT_GOSSIP_PORT = 7946;
/** Default largest sealed message accepted over TCP: 1 MiB (a registration of MAX_BACKENDS backends, each of its own long-named service, measured 239 KB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_576;
/** Default cap on open TCP connections. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Default idle time before a TCP connection is closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Messages one TCP connection may carry before it is closed (the sender reconnects). */
export const DEFAULT_MAX_MESSAGES_PER_CONNECTION = 10_000;
/**
 * Default budget for partly received TCP messages across all connections:
 * 32 MiB. Without it, maxConnections peers each announcing a maximal message
 * and trickling its bytes could hold maxConnections × maxMessageBytes (1 GiB).
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 33_554_432;
/** Unsent ack bytes a connection may queue (a peer that never reads) before it is closed. */
const MAX_PENDING_WRITE_BYTES = 262_144;

export interface ReceiverOptions {
  readonly channel: OverwatchChannel;
  /** IP literal to bind (without brackets); "0.0.0.0" or "::" for all interfaces. */
  readonly host: string;
  /** Port for both UDP and TCP; 0 picks a free one (tests). */
  readonly port: number;
  readonly maxMessageBytes?: number;
  readonly maxConnections?: number;
  readonly idleTimeoutMs?: number;
  readonly maxMessagesPerConnection?: number;
  /** Budget for partly received TCP messages, all connections together. */
  readonly maxBufferedBytes?: number;
  /** SO_RCVBUF for the UDP socket; undefined keeps the kernel's default. */
  readonly udpReceiveBufferBytes?: number;
  /** A channel handler threw (a bug in the integration, not bad input): the message counts as accepted. */
  readonly onHandlerError?: (error: unknown) => void;
}

/** Transport counters (messages and drops by reason are the channel's). */
export interface ReceiverCounters {
  readonly udpDatagrams: number;
  readonly tcpConnections: number;
  readonly tcpOpenConnections: number;
  readonly tcpFrames: number;
  readonly tcpIdleTimeouts: number;
  /** Bytes of partly received TCP messages held right now. */
  readonly tcpBufferedBytes: number;
  readonly acksSent: number;
  readonly handlerErrors: number;
}

/**
 * The overwatch's UDP and TCP listeners for agent messages. Start with
 * GossipReceiver.listen(); stop with close().
 */
export class GossipReceiver {
  readonly #channel: OverwatchChannel;
  readonly #udp: UdpSocket;
  readonly #tcp: Server;
  readonly #connections = new Set<Socket>();
  readonly #maxMessageBytes: number;
  readonly #maxConnections: number;
  readonly #idleTimeoutMs: number;
  readonly #maxMessagesPerConnection: number;
  readonly #maxBufferedBytes: number;
  #bufferedBytes = 0;
  readonly #onHandlerError: (error: unknown) => void;
  readonly #counts = { udpDatagrams: 0, tcpConnections: 0, tcpFrames: 0, tcpIdleTimeouts: 0, acksSent: 0, handlerErrors: 0 };
  /** Bound address: the host as given, the port as the OS assigned it. */
  readonly host: string;
  port = 0;

  private constructor(options: ReceiverOptions) {
    this.#channel = options.channel;
    this.host = options.host;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#maxMessagesPerConnection = options.maxMessagesPerConnection ?? DEFAULT_MAX_MESSAGES_PER_CONNECTION;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#onHandlerError = options.onHandlerError ?? (() => {});
    this.#udp = createSocket({ type: isIPv6(options.host) ? 'udp6' : 'udp4', recvBufferSize: options.udpReceiveBufferBytes });
    this.#udp.on('message', (msg, rinfo) => this.#onDatagram(msg, `${rinfo.address}:${rinfo.port}`));
    this.#tcp = createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
  }

  /**
   * Binds UDP and TCP on options.host:options.port (with port 0, one free
   * port for both). Throws OPENGSLB_ERR_GOSSIP_BIND naming the address and
   * the cause.
   */
  static async listen(options: ReceiverOptions): Promise<GossipReceiver> {
    // With port 0 the TCP port the OS picks may be taken for UDP; try a few.
    for (let attempt = 0; ; attempt++) {
      const receiver = new GossipReceiver(options);
      try {
        await receiver.#bind(options.port);
        return receiver;
      } catch (err) {
        await receiver.close();
        const code = (err as NodeJS.ErrnoException).code;
        if (options.port === 0 && code === 'EADDRINUSE' && attempt < 5) continue;
        const where = isIPv6(options.host) ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
        throw new OpenGslbError(
          'OPENGSLB_ERR_GOSSIP_BIND',
          `overwatch.gossip.bind_address: cannot listen on ${where} (UDP and TCP): ${(err as Error).message}; pick a free port or stop what holds it`,
          { cause: err },
        );
      }
    }
  }

  async #bind(port: number): Promise<void> {
    this.#tcp.listen({ host: this.host, port, exclusive: true });
    await Promise.race([once(this.#tcp, 'listening'), once(this.#tcp, 'error').then(([err]) => Promise.reject(err))]);
    this.port = (this.#tcp.address() as { port: number }).port;
    this.#udp.bind({ address: this.host, port: this.port, exclusive: true });
    await Promise.race([once(this.#udp, 'listening'), once(this.#udp, 'error').then(([err]) => Promise.reject(err))]);
    // After binding, socket errors (rare: ENOMEM) must not crash the process; the sockets stay up.
    this.#udp.on('error', () => {});
    this.#tcp.on('error', () => {});
  }

  /** A snapshot of the transport counters. */
  counters(): ReceiverCounters {
    return { ...this.#counts, tcpOpenConnections: this.#connections.size, tcpBufferedBytes: this.#bufferedBytes };
  }

  /** Stops listening and closes every open connection. Safe to call twice. */
  async close(): Promise<void> {
    for (const socket of this.#connections) socket.destroy();
    this.#connections.clear();
    await Promise.all([
      new Promise<void>((resolve) => {
        try {
          this.#udp.close(() => resolve());
        } catch {
          resolve(); // not bound or already closed
        }
      }),
      new Promise<void>((resolve) => this.#tcp.close(() => resolve())),
    ]);
  }

  #deliver(bytes: Buffer, source: MessageSource): ReturnType<OverwatchChannel['receive']> | null {
    try {
      return this.#channel.receive(bytes, source);
    } catch (err) {
      // receive() never throws for bad bytes; this is a handler's exception.
      this.#counts.handlerErrors++;
      this.#onHandlerError(err);
      return null;
    }
  }

  #onDatagram(msg: Buffer, remote: string): void {
    this.#counts.udpDatagrams++;
    // UDP gets no ack: an answer to a spoofed source address would go to someone else.
    this.#deliver(msg, { transport: 'udp', remote });
  }

  #onConnection(socket: Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const source: MessageSource = { transport: 'tcp', remote };
    if (this.#connections.size >= this.#maxConnections) {
      this.#channel.countDrop('connection_limit', `${this.#maxConnections} connections open`, source);
      socket.destroy();
      return;
    }
    this.#counts.tcpConnections++;
    this.#connections.add(socket);
    const reader = new FrameReader(this.#maxMessageBytes);
    let messages = 0;
    /** The connection carried its last message: what comes after is not read. */
    let ending = false;
    // Acks go out in message order even when a registration waits for its pin to be stored.
    let replies: Promise<void> = Promise.resolve();
    socket.setTimeout(this.#idleTimeoutMs, () => {
      this.#counts.tcpIdleTimeouts++;
      socket.destroy();
    });
    let held = 0;
    const release = (): void => {
      this.#bufferedBytes -= held;
      held = 0;
    };
    socket.on('close', () => {
      release();
      this.#connections.delete(socket);
    });
    socket.on('error', () => {}); // resets and the like: 'close' follows
    socket.on('data', (chunk: Buffer) => {
      if (socket.destroyed || ending) return;
      if (this.#bufferedBytes + chunk.length > this.#maxBufferedBytes) {
        this.#channel.countDrop('buffer_limit', `${this.#bufferedBytes} bytes held, budget ${this.#maxBufferedBytes}`, source);
        socket.destroy();
        return;
      }
      const frames = reader.push(chunk);
      this.#bufferedBytes += reader.buffered - held;
      held = reader.buffered;
      if (frames === 'too_large') {
        this.#channel.countDrop('too_large', `a TCP frame above ${this.#maxMessageBytes} bytes`, source);
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        this.#counts.tcpFrames++;
        const result = this.#deliver(frame, source);
        if (result !== null && result.ack === null) {
          // Bytes we could not open (not sealed under our key, or no agent message): this peer has nothing to say to us.
          socket.destroy();
          return;
        }
        if (result !== null && result.ack !== null) {
          const ack = result.ack;
          const keyId = result.keyId;
          const persisted = result.ok ? result.persisted : Promise.resolve();
          replies = replies.then(() => persisted).then(() => {
            if (socket.destroyed || !socket.writable) return;
            if (socket.writableLength > MAX_PENDING_WRITE_BYTES) {
              socket.destroy();
              return;
            }
            socket.write(encodeFrame(this.#channel.sealAck(ack, keyId)));
            this.#counts.acksSent++;
          });
        }
        if (++messages >= this.#maxMessagesPerConnection) {
          // End only after the acks queued so far are written (end() at once left the last message
          // unacked, so its agent counted the overwatch down and resent it). Frames after it are
          // not taken: they would get no ack; the agent resends them on a new connection.
          ending = true;
          replies = replies.then(() => {
            if (!socket.destroyed) socket.end();
          });
          return;
        }
      }
    });
  }
}
