// Worker, hot path per frame. One reusePort TCP listener per worker with
// RFC 7766 framing: a two-byte length before every message, several queries
// per connection answered in order. What one client can hold is bounded:
//
//   - unsent replies: a connection whose replies waiting to be sent exceed
//     MAX_UNSENT_PER_CONNECTION is not read (nor its buffered queries answered)
//     until they drain (RFC 7766 §6.2.1 lets a server stop reading); above
//     MAX_UNSENT_PER_WORKER for all the worker's connections together, every
//     connection with unsent replies of its own waits too;
//   - turns: a connection has at most FRAMES_PER_TURN frames answered (fewer
//     when many connections are open) before every other connection has had
//     its turn, and a pass over the waiting connections answers at most
//     FRAMES_PER_PASS frames before the event loop polls (and accepts) again;
//   - unread queries: every connection reads into the worker's one buffer of
//     READ_CHUNK bytes (net.Socket's `onread`), so nothing is allocated per
//     read and a paused connection stops reading at once; what a connection
//     keeps between reads is at most the rest of one read (frames waiting
//     for their turn or for replies to drain) or one partial frame (a frame
//     is at most 65 537 bytes);
//   - connections: dns.tcp_max_connections per worker, and
//     dns.tcp_max_connections_per_client from one client network (an IPv4
//     /32 or IPv6 /64 by default) for the whole server, counted in the table
//     all workers share (src/dns/tcp-clients.ts); at the worker's cap a new
//     connection closes the one idle longest instead of being refused;
//   - time: an idle connection is closed after dns.tcp_idle_timeout, shorter
//     as the worker fills up (RFC 7766 §6.2.3), and a message that has started
//     arriving must complete within dns.tcp_frame_timeout (slow senders).
//
// docs/architecture.md lists every bound with its figure.

import { once } from 'node:events';
import net from 'node:net';
import { MAX_MESSAGE_LEN } from '../src/dns/constants.ts';
import { CLIENT_REFUSED, type TcpClientTable } from '../src/dns/tcp-clients.ts';
import { copyBytes } from '../src/dns/write.ts';
import { bump, COUNTER, DurationRecorder, TRANSPORT_TCP } from '../src/metrics/counters-layout.ts';
import { handleQuery } from './handle-query.ts';
import type { TcpSettings } from './messages.ts';
import type { WorkerScratch } from './scratch.ts';
import { writeServfail } from './transport-udp.ts';

/** Unsent reply bytes above which a connection is not read until they drain: one of the largest messages. */
export const MAX_UNSENT_PER_CONNECTION = MAX_MESSAGE_LEN + 2;
/** Unsent reply bytes of all of a worker's connections above which every connection with unsent replies waits. */
export const MAX_UNSENT_PER_WORKER = 8 * 1024 * 1024;
/**
 * Bytes one read takes from the kernel, into the worker's one read buffer.
 * What a held connection keeps of its last read is at most this, so it
 * bounds the input held for 500 connections at 8 MiB. Measured with
 * `npx node bench/tcp-hold.ts` (500 connections pipelining 10 000 queries and
 * never reading): Node's own reads (64 kB each, a fresh buffer every time, and
 * going on after pause() up to the stream's high-water mark) and a buffer per
 * reply added 152 MB; this buffer alone, 60–80 MB; with reply blocks
 * (OUT_BLOCK), 19–32 MB.
 */
export const READ_CHUNK = 16 * 1024;
/**
 * Replies are copied into blocks of this many bytes and written from there; a
 * block is reused once the kernel has taken every write from it, so answering
 * allocates nothing per reply (a reply larger than a block gets a buffer of
 * its own). A connection's writes pin at most two partly used blocks beyond
 * its unsent bytes.
 */
export const OUT_BLOCK = 8 * 1024;
/** Free blocks kept for reuse; a block freed beyond these is left to the garbage collector (after a burst). */
const MAX_FREE_BLOCKS = 256;
/** The idle timeout never shrinks below this, however full the worker. */
const MIN_IDLE_TIMEOUT_MS = 500;
/**
 * Frames one connection may have answered per turn of the event loop; the
 * rest wait for its next turn, after every other connection (and new ones
 * waiting to be accepted) had theirs. Without it one 64 kB read of pipelined
 * queries (~1 800 frames, ~25 ms of work) held the worker, and 100 such
 * clients kept a new connection waiting for seconds.
 */
const FRAMES_PER_TURN = 32;
/**
 * Frames answered in one pass over the connections waiting for a turn; the
 * rest wait for the next pass, after the event loop has polled again. The
 * event loop accepts one connection per poll (libuv does since 1.45), so a
 * pass must stay short however many connections pipeline. Measured with
 * `npx node bench/tcp-hold.ts` (500 connections pipelining, never reading):
 * serving every waiting connection in one pass made passes of 16 000 frames,
 * the accept queue drained at about 100 connections a second (ss), and
 * another client's TCP query waited up to 3.3 s to be accepted; 512 frames,
 * still 1.4–1.7 s; 128, all 500 accepted in about a second and the other
 * client answered within 0.1 s in 3 runs of 4 (1.1 s in the fourth). Each
 * turn is also shorter with many connections open (at least one frame), which
 * bounds the frames answered for the reads of one poll.
 */
const FRAMES_PER_PASS = 128;

export interface TcpListener {
  readonly server: net.Server;
  /** Stops accepting, lets each connection finish the query it is receiving (up to `graceMs`), then closes it. */
  close(graceMs: number): Promise<void>;
}

/**
 * A block of replies (see OUT_BLOCK), filled by one connection and written
 * from in one or more pieces; back in the worker's free list once the kernel
 * has taken all of it.
 */
class OutBlock {
  readonly buf = Buffer.allocUnsafeSlow(OUT_BLOCK);
  /** Filled up to here. */
  end = 0;
  /** Handed to the socket up to here. */
  flushed = 0;
  /** The connection's count of bytes handed to its socket just after this block's last piece: the kernel has all of it once it has taken that many. */
  upTo = 0;
}

/** Per-connection state. */
class Connection {
  readonly socket: net.Socket;
  /** The client's address and family (4 or 6), read once when the connection is accepted. */
  readonly clientText: string;
  readonly clientFamily: number;
  /** Its slot in the shared per-client table (released when it closes), or a negative number when it is not counted there. */
  clientSlot: number;
  /**
   * Bytes received and not yet answered, copied out of the read buffer: one
   * incomplete frame (reading goes on), or the rest of a read whose frames
   * wait for their turn or for replies to drain (reading is paused); null when none.
   */
  pending: Buffer | null = null;
  answered = 0;
  /** Reading is paused until unsent replies drain. */
  held = false;
  /** Waiting for its next turn (it had its turn's frames answered in this one); reading is paused meanwhile. */
  queued = false;
  /** Unsent reply bytes last counted into the worker's total. */
  unsent = 0;
  /** The blocks holding its replies the kernel has not all taken, oldest first; the last is the one being filled. */
  readonly blocks: OutBlock[] = [];
  /** Bytes handed to its socket so far. */
  handed = 0;
  /** The callback of its writes, made once. */
  readonly written: () => void;
  /** Stopping, or the client half-closed: end the connection once what it sent is answered. */
  closing = false;
  /** The client half-closed: a partial message can no longer complete. */
  eof = false;
  /** Ended by us; bytes that still arrive are ignored. */
  done = false;
  /**
   * Ended by us at dns.tcp_max_queries_per_connection: the queries it sent
   * past the cap (already received, or arriving after our FIN) are counted as
   * dropped (TCP_QUERY_LIMIT_DROPPED), following the framing across reads
   * with `dropLeft` and `dropHalf`.
   */
  dropping = false;
  /** Bytes of the dropped message being skipped still to come. */
  dropLeft = 0;
  /** The first byte of a dropped message's length prefix when the read ended after it, or -1. */
  dropHalf = -1;
  /**
   * When a connection we ended must be closed (performance.now()), or -1:
   * its timeout when we ended it, counted from then. Node.js restarts the
   * socket's timeout at every read, so a client that kept sending after our
   * FIN held the connection (and its place) for ever.
   */
  closeBy = -1;
  /**
   * When the first byte of the message now partly received arrived
   * (performance.now()), or -1 when none is: the message must be complete
   * within dns.tcp_frame_timeout of it, however its bytes trickle in.
   */
  frameSince = -1;
  constructor(socket: net.Socket, clientText: string, clientFamily: number, clientSlot: number, onWritten: (conn: Connection) => void) {
    this.socket = socket;
    this.written = () => onWritten(this);
    this.clientText = clientText;
    this.clientFamily = clientFamily;
    this.clientSlot = clientSlot;
  }
}

/** Binds the worker's TCP listener and starts answering. Rejects with the bind error. */
export async function startTcp(ctx: WorkerScratch, host: string, port: number, options: TcpSettings, clients: TcpClientTable): Promise<TcpListener> {
  const build = Buffer.allocUnsafe(MAX_MESSAGE_LEN);
  const freeBlocks: OutBlock[] = [];
  /** Every connection's reads land here; what a connection keeps of a read is copied out before the next one. */
  const readBuffer = Buffer.allocUnsafe(READ_CHUNK);
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  const durations = new DurationRecorder(counters, cb, TRANSPORT_TCP);
  /** Open connections, least recently active first (activity moves one to the end). */
  const open = new Map<net.Socket, Connection>();
  /** Unsent reply bytes of every connection, as last counted. */
  let unsentTotal = 0;
  /** Connections held back by the worker-wide bound, to read again once it clears. */
  const heldByWorker = new Set<Connection>();
  /** Connections that used up their turn with frames left, in order from `turnsHead`; served by setImmediate, FRAMES_PER_PASS frames at a time. */
  let turns: Connection[] = [];
  let turnsHead = 0;
  let turnScheduled = false;
  /** Frames answered in the current pass. */
  let passFrames = 0;
  let stopping = false;

  /**
   * Gives the connections that used up their turn another one, in order,
   * after the event loop's other work, until the pass has answered
   * FRAMES_PER_PASS frames; the rest wait for the next pass.
   */
  const nextTurn = (): void => {
    turnScheduled = false;
    passFrames = 0;
    while (turnsHead < turns.length && passFrames < FRAMES_PER_PASS) {
      const conn = turns[turnsHead++];
      conn.queued = false;
      if (conn.done) continue;
      if (answerPending(conn) && !conn.held && !conn.queued) {
        conn.socket.resume();
        touch(conn);
      }
    }
    if (turnsHead === turns.length) {
      turns.length = 0;
      turnsHead = 0;
    } else {
      if (turnsHead >= 1024) {
        turns = turns.slice(turnsHead);
        turnsHead = 0;
      }
      scheduleTurns();
    }
  };

  const scheduleTurns = (): void => {
    if (turnScheduled) return;
    turnScheduled = true;
    setImmediate(nextTurn);
  };

  /** Re-counts a connection's unsent bytes into the worker's total. */
  const recount = (conn: Connection): void => {
    const now = conn.socket.destroyed ? 0 : conn.socket.writableLength;
    unsentTotal += now - conn.unsent;
    conn.unsent = now;
  };

  /**
   * A write of the connection was taken by the kernel (or dropped with its
   * socket): free its blocks the kernel has, re-count its unsent bytes, and
   * read it (or every connection the worker-wide bound held back) again when
   * the bounds allow.
   */
  const written = (conn: Connection): void => {
    reclaim(conn);
    recount(conn);
    if (conn.held) release(conn);
    if (heldByWorker.size > 0 && unsentTotal <= MAX_UNSENT_PER_WORKER) for (const held of [...heldByWorker]) release(held);
  };

  /**
   * Puts the connection's blocks the kernel has taken all of back in the
   * free list. A write the kernel takes at once (the usual case: the client
   * reads its replies) frees its block before the next reply is copied, so
   * one block serves every connection in turn.
   */
  const reclaim = (conn: Connection): void => {
    const blocks = conn.blocks;
    const taken = conn.handed - conn.socket.writableLength;
    while (blocks.length > 0) {
      const block = blocks[0];
      if (block.flushed !== block.end || block.upTo > taken) break;
      blocks.shift();
      if (freeBlocks.length < MAX_FREE_BLOCKS) freeBlocks.push(block);
    }
  };

  /** Hands what the connection's newest block holds and the socket has not had yet to the socket. */
  const flush = (conn: Connection): void => {
    const blocks = conn.blocks;
    const block = blocks.length === 0 ? null : blocks[blocks.length - 1];
    if (block === null || block.flushed === block.end) return;
    conn.handed += block.end - block.flushed;
    block.upTo = conn.handed;
    conn.socket.write(block.buf.subarray(block.flushed, block.end), conn.written);
    block.flushed = block.end;
    reclaim(conn);
    recount(conn);
  };

  /** Copies the reply of `len` bytes in `build`, with its length prefix, into the connection's newest block (a fresh one when it has no room) or, when larger than a block, writes it from a buffer of its own. */
  const putReply = (conn: Connection, len: number): void => {
    const size = len + 2;
    const blocks = conn.blocks;
    if (size > OUT_BLOCK) {
      flush(conn);
      const reply = Buffer.allocUnsafe(size);
      reply[0] = len >>> 8;
      reply[1] = len & 0xff;
      copyBytes(reply, 2, build, 0, len);
      conn.handed += size;
      conn.socket.write(reply, conn.written);
      recount(conn);
      return;
    }
    let block = blocks.length === 0 ? null : blocks[blocks.length - 1];
    if (block === null || OUT_BLOCK - block.end < size) {
      flush(conn);
      block = freeBlocks.pop() ?? new OutBlock();
      block.end = 0;
      block.flushed = 0;
      blocks.push(block);
    }
    const buf = block.buf;
    buf[block.end] = len >>> 8;
    buf[block.end + 1] = len & 0xff;
    copyBytes(buf, block.end + 2, build, 0, len);
    block.end += size;
  };

  /** Reply bytes of the connection the kernel has not taken: the socket's queue and what its newest block holds unflushed. */
  const unsentOf = (conn: Connection): number => {
    const blocks = conn.blocks;
    const block = blocks.length === 0 ? null : blocks[blocks.length - 1];
    return conn.socket.writableLength + (block === null ? 0 : block.end - block.flushed);
  };

  /**
   * The idle timeout a connection gets now, in ms: dns.tcp_idle_timeout,
   * shorter as the worker fills (RFC 7766 §6.2.3), never under
   * MIN_IDLE_TIMEOUT_MS (unless the setting is). Also what a reply tells a
   * client that asked with edns-tcp-keepalive (RFC 7828).
   */
  const idleTimeout = (): number => {
    const room = 1 - open.size / options.maxConnections;
    return Math.max(Math.min(MIN_IDLE_TIMEOUT_MS, options.idleTimeoutMs), Math.round(options.idleTimeoutMs * room));
  };

  /** Marks activity: the connection becomes the most recently active, with a fresh idle timeout (shorter as the worker fills). */
  const touch = (conn: Connection): void => {
    open.delete(conn.socket);
    open.set(conn.socket, conn);
    const idle = idleTimeout();
    const pending = conn.pending;
    if (pending === null || conn.held) {
      conn.frameSince = -1;
      conn.socket.setTimeout(idle);
    } else if (conn.queued || (pending.length >= 2 && pending.length >= ((pending[0] << 8) | pending[1]) + 2)) {
      // Whole frames waiting for their turn: the wait is ours, not the
      // client's, so the deadline starts afresh with every turn.
      conn.frameSince = -1;
      conn.socket.setTimeout(Math.min(idle, options.frameTimeoutMs));
    } else {
      // Part of a message: its deadline runs from its first byte. The socket's
      // own timeout restarts at every read (Node.js refreshes it), so it is
      // set to what is left, and a client that trickles a byte now and then
      // is still closed in time.
      const now = performance.now();
      if (conn.frameSince < 0) conn.frameSince = now;
      const left = Math.max(1, Math.ceil(options.frameTimeoutMs - (now - conn.frameSince)));
      conn.socket.setTimeout(Math.min(idle, left));
    }
  };

  /** Stops reading a connection until its (or the worker's) unsent replies drain. */
  const hold = (conn: Connection, byWorker: boolean): void => {
    if (!conn.held) bump(counters, cb + COUNTER.TCP_READ_PAUSED);
    conn.held = true;
    conn.socket.pause();
    if (byWorker) heldByWorker.add(conn);
  };

  /** Ends the connection once the replies already written have gone (end(), not destroy()); what still arrives is ignored. */
  const finish = (conn: Connection): void => {
    conn.done = true;
    conn.pending = null;
    conn.closeBy = performance.now() + (conn.socket.timeout ?? options.idleTimeoutMs);
    flush(conn);
    conn.socket.end();
    // Read on (a connection ended in a later turn was paused for it): what
    // still arrives is ignored (counted when past the query cap), and the
    // client's FIN is seen, which closes the connection at once.
    conn.socket.resume();
  };

  /**
   * Counts the messages that start in `buf` from `off` to `end` on a
   * connection ended at its query cap (each once, from its length prefix,
   * whether or not the rest of it arrives), carrying a message that spans
   * reads over in `dropLeft` and `dropHalf`. A zero length ends the counting:
   * the stream cannot be followed past it.
   */
  const countDropped = (conn: Connection, buf: Buffer, off: number, end: number): void => {
    let dropped = 0;
    while (off < end && conn.dropping) {
      if (conn.dropLeft > 0) {
        const skip = Math.min(conn.dropLeft, end - off);
        conn.dropLeft -= skip;
        off += skip;
        continue;
      }
      let len: number;
      if (conn.dropHalf >= 0) {
        len = (conn.dropHalf << 8) | buf[off];
        conn.dropHalf = -1;
        off += 1;
      } else if (end - off >= 2) {
        len = (buf[off] << 8) | buf[off + 1];
        off += 2;
      } else {
        conn.dropHalf = buf[off];
        break;
      }
      if (len === 0) {
        conn.dropping = false;
        break;
      }
      dropped++;
      conn.dropLeft = len;
    }
    if (dropped > 0) bump(counters, cb + COUNTER.TCP_QUERY_LIMIT_DROPPED, dropped);
  };

  /**
   * Answers the complete frames of `buf` from `off` to `end` in order while
   * the connection's unsent replies stay under the bounds and its turn lasts.
   * Returns the offset of the first byte not answered (the rest waits: a
   * partial frame, or frames held back with reading paused), or -1 when the
   * connection was closed.
   */
  const answerFrames = (conn: Connection, buf: Buffer, off: number, end: number): number => {
    const socket = conn.socket;
    let frames = 0;
    const turnFrames = Math.max(1, Math.min(FRAMES_PER_TURN, Math.floor(FRAMES_PER_PASS / open.size)));
    // For replies to queries with edns-tcp-keepalive (RFC 7828): the idle
    // timeout touch() gives the connection once these frames are answered
    // (the number of open connections does not change in between), in units
    // of 100 ms, rounded down so that the client lets go first.
    ctx.tcpKeepalive = Math.min(0xffff, Math.floor(idleTimeout() / 100));
    try {
      while (end - off >= 2) {
        if (frames === turnFrames) {
          // Its turn is over: the rest waits for the next one, and reading with it.
          conn.queued = true;
          socket.pause();
          turns.push(conn);
          scheduleTurns();
          break;
        }
        const unsent = unsentOf(conn);
        if (unsent > MAX_UNSENT_PER_CONNECTION) {
          hold(conn, false);
          break;
        }
        // Over the worker-wide bound only connections with replies of their
        // own still unsent wait; one that reads its replies is answered.
        if (unsentTotal > MAX_UNSENT_PER_WORKER && unsent > 0) {
          hold(conn, true);
          break;
        }
        const frameLen = (buf[off] << 8) | buf[off + 1];
        if (frameLen === 0) {
          // RFC 7766 §8 leaves no room for empty messages; the stream cannot be
          // resynchronised. end(), not destroy(): answers already written for
          // earlier frames on this connection still go out before the FIN.
          bump(counters, cb + COUNTER.TCP_BAD_FRAME);
          finish(conn);
          return -1;
        }
        if (end - off - 2 < frameLen) break;
        const frame = buf.subarray(off + 2, off + 2 + frameLen);
        off += 2 + frameLen;
        frames++;
        passFrames++;
        // opengslb_dns_query_duration_seconds: from here to the reply being queued for the socket.
        const startMs = durations.start();
        let len: number;
        ctx.client.setSource(conn.clientText, conn.clientFamily);
        try {
          len = handleQuery(ctx, frame, frameLen, build, true);
        } catch (err) {
          ctx.caught(err, 'tcp');
          len = writeServfail(build, frame);
        }
        if (len > 0) {
          putReply(conn, len);
          durations.record(startMs);
        }
        if (++conn.answered >= options.maxQueriesPerConnection) {
          finish(conn);
          // What the client sent past its cap is not answered: counted, never silent.
          conn.dropping = true;
          countDropped(conn, buf, off, end);
          return -1;
        }
      }
    } finally {
      // One write for the turn's replies (one per block filled).
      flush(conn);
    }
    return off;
  };

  /**
   * Answers what `conn.pending` holds, as far as the bounds and its turn
   * allow, and keeps the rest. Returns false when the connection was closed.
   */
  const answerPending = (conn: Connection): boolean => {
    const buf = conn.pending;
    if (buf !== null) {
      const next = answerFrames(conn, buf, 0, buf.length);
      if (next < 0) return false;
      // The rest is a view of our own copy: at most one read, or one partial frame.
      conn.pending = next === buf.length ? null : next === 0 ? buf : buf.subarray(next);
    }
    return !endIfFinished(conn);
  };

  /**
   * Ends a closing connection that waits for nothing more: all it sent is
   * answered, and no message is half received (or one is, but the client has
   * half-closed, so it can never complete). Returns whether it was ended.
   */
  const endIfFinished = (conn: Connection): boolean => {
    if (!conn.closing || conn.held || conn.queued || (conn.pending !== null && !conn.eof)) return false;
    finish(conn);
    return true;
  };

  /**
   * Takes `n` bytes just read into the worker's read buffer: completes the
   * partial frame kept from the last read, answers the frames the read holds
   * straight from the buffer, and copies out what has to wait. A read only
   * arrives while nothing but a partial frame waits: a connection with whole
   * frames waiting is paused.
   */
  const consume = (conn: Connection, n: number): void => {
    if (conn.done) {
      // Ended by us: the read restarted the socket's timeout, set it back to what is left.
      if (conn.closeBy >= 0) conn.socket.setTimeout(Math.max(1, Math.ceil(conn.closeBy - performance.now())));
      if (conn.dropping) countDropped(conn, readBuffer, 0, n);
      return;
    }
    let off = 0;
    const kept = conn.pending;
    // No message was partly received before this read: one left partial by it starts now.
    if (kept === null) conn.frameSince = -1;
    if (kept !== null) {
      const frameEnd = (kept.length >= 2 ? (kept[0] << 8) | kept[1] : (kept[0] << 8) | readBuffer[0]) + 2;
      off = frameEnd > kept.length ? Math.min(n, frameEnd - kept.length) : n;
      conn.pending = Buffer.concat([kept, readBuffer.subarray(0, off)]);
      if (conn.pending.length < frameEnd) {
        touch(conn);
        return;
      }
      // That message is complete: a partial one after it has a deadline of its own.
      conn.frameSince = -1;
      if (!answerPending(conn)) {
        // Ended at its query cap by that frame: the rest of this read is past the cap.
        if (conn.dropping) countDropped(conn, readBuffer, off, n);
        return;
      }
      if (conn.pending !== null) {
        // Held back before that frame: the rest of the read waits behind it.
        if (off < n) conn.pending = Buffer.concat([conn.pending, readBuffer.subarray(off, n)]);
        touch(conn);
        return;
      }
    }
    const next = answerFrames(conn, readBuffer, off, n);
    if (next < 0) return;
    // readBuffer is overwritten by the next read of any connection: keep a copy.
    if (next < n) conn.pending = Buffer.from(readBuffer.subarray(next, n));
    if (!endIfFinished(conn)) touch(conn);
  };

  /** Reads a held connection again once its unsent replies are under the bounds, answering what it had buffered first. */
  const release = (conn: Connection): void => {
    if (!conn.held || conn.done) return;
    const unsent = unsentOf(conn);
    if (unsent > MAX_UNSENT_PER_CONNECTION || (unsentTotal > MAX_UNSENT_PER_WORKER && unsent > 0)) return;
    conn.held = false;
    heldByWorker.delete(conn);
    if (conn.queued || !answerPending(conn)) return;
    if (!conn.held && !conn.queued) {
      conn.socket.resume();
      touch(conn);
    }
  };

  /**
   * Closes the connection that has been idle longest (no partial frame, no
   * unsent replies), if any; returns whether one was closed. One we ended
   * ourselves (a bad frame, its query quota) counts: once its last replies
   * have gone it only waits for the client's FIN, which a client that keeps
   * it half-open never sends, and skipping those let such clients hold every
   * place until their idle timeouts, refusing everyone else.
   */
  const evictIdlest = (): boolean => {
    for (const conn of open.values()) {
      if (conn.pending !== null || conn.unsent > 0 || conn.socket.destroyed) continue;
      bump(counters, cb + COUNTER.TCP_EVICTED);
      conn.done = true;
      conn.socket.destroy();
      forget(conn);
      return true;
    }
    return false;
  };

  /** Drops a connection from the books (idempotent). */
  const forget = (conn: Connection): void => {
    if (!open.delete(conn.socket)) return;
    conn.done = true;
    heldByWorker.delete(conn);
    // Its socket is closed: nothing reads its blocks any more.
    for (const block of conn.blocks) if (freeBlocks.length < MAX_FREE_BLOCKS) freeBlocks.push(block);
    conn.blocks.length = 0;
    unsentTotal -= conn.unsent;
    conn.unsent = 0;
    conn.pending = null;
    clients.release(conn.clientSlot);
    conn.clientSlot = -1;
    // Room again under the worker-wide bound: read the connections it held back.
    if (heldByWorker.size > 0 && unsentTotal <= MAX_UNSENT_PER_WORKER) for (const held of [...heldByWorker]) release(held);
  };

  /**
   * Takes over an accepted connection's handle with a socket that reads into
   * `readBuffer`. net.Server has no `onread` option (only the net.Socket
   * constructor has), so the socket the server made (paused, it never reads)
   * hands its handle over; it is destroyed when ours closes, which keeps the
   * server's connection count, and so server.close(), right. Returns null if
   * this Node.js has no such handle.
   */
  const adopt = (accepted: net.Socket, clientText: string, clientFamily: number, clientSlot: number): Connection | null => {
    const wrapper = accepted as unknown as { _handle: object | null };
    const handle = wrapper._handle;
    if (handle === null || typeof handle !== 'object') return null;
    wrapper._handle = null;
    let conn: Connection | null = null;
    const socket = new net.Socket({
      // A TCP handle, which the constructor takes as it takes its own (the types know only BoundSocket).
      handle: handle as net.SocketConstructorOpts['handle'],
      allowHalfOpen: true,
      onread: {
        buffer: readBuffer,
        callback: (n: number): boolean => {
          if (conn !== null) consume(conn, n);
          // consume() pauses the socket itself when it must stop reading.
          return true;
        },
      },
    });
    socket.once('close', () => accepted.destroy());
    conn = new Connection(socket, clientText, clientFamily, clientSlot, written);
    return conn;
  };

  // allowHalfOpen: a client's FIN must not end our side before the queries it
  // sent are answered (they may wait for their turn); we end it ourselves.
  // pauseOnConnect: the server's socket never reads; adopt() takes it over.
  const server = net.createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
    if (stopping) {
      bump(counters, cb + COUNTER.TCP_REJECTED);
      accepted.destroy();
      return;
    }
    const clientText = accepted.remoteAddress ?? '';
    // Counted for the whole server (every worker shares the table); from here
    // on every way out that does not keep the connection releases the slot.
    const clientSlot = clients.acquire(clientText);
    if (clientSlot === CLIENT_REFUSED) {
      bump(counters, cb + COUNTER.TCP_CLIENT_CAP);
      accepted.destroy();
      return;
    }
    if (open.size >= options.maxConnections && !evictIdlest()) {
      clients.release(clientSlot);
      bump(counters, cb + COUNTER.TCP_REJECTED);
      accepted.destroy();
      return;
    }
    const clientFamily = accepted.remoteFamily === 'IPv6' ? 6 : accepted.remoteFamily === 'IPv4' ? 4 : 0;
    const conn = adopt(accepted, clientText, clientFamily, clientSlot);
    if (conn === null) {
      clients.release(clientSlot);
      // A Node.js without the handle this relies on: counted, never silent (every TCP test fails on it).
      bump(counters, cb + COUNTER.EXCEPTIONS);
      accepted.destroy();
      return;
    }
    const socket = conn.socket;
    bump(counters, cb + COUNTER.TCP_ACCEPTED);
    if (clientSlot < 0) bump(counters, cb + COUNTER.TCP_CLIENT_UNCOUNTED);
    open.set(socket, conn);
    touch(conn);
    socket.on('timeout', () => {
      bump(counters, cb + (conn.pending !== null && !conn.held ? COUNTER.TCP_FRAME_TIMEOUT : COUNTER.TCP_IDLE_CLOSED));
      socket.destroy();
    });
    // The client has sent all it will (a half-close, RFC 7766 §6.2.3 allows it):
    // answer what it sent, then close our side.
    socket.on('end', () => {
      conn.closing = true;
      conn.eof = true;
      endIfFinished(conn);
    });
    // Resets and write errors end the connection; nothing to report per client.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => forget(conn));
  });
  // The listener's own cap is a backstop above ours: we accept, then evict or refuse in the handler.
  server.maxConnections = options.maxConnections + 64;
  // Past it (a burst of evictions whose closes have not completed yet) Node.js
  // closes the connection before the handler sees it, and says so only with
  // 'drop': counted as refused, so no refused client goes unseen.
  server.on('drop', () => bump(counters, cb + COUNTER.TCP_REJECTED));

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
      for (const conn of open.values()) {
        conn.closing = true;
        endIfFinished(conn);
      }
      const deadline = setTimeout(() => {
        for (const conn of open.values()) conn.socket.destroy();
      }, graceMs);
      await closed;
      clearTimeout(deadline);
    },
  };
}
