// Bench only, main thread + worker threads. The machine's ceiling for the e2e
// benchmark: N worker threads, each with its own reusePort UDP socket, answer
// every query with one fixed A record and do nothing else.
//
// Usage: npx node bench/bare-responder.ts --port P [--workers N] [--host 127.0.0.1] [--tcp] [--io dgram|batched]
//   --port 0 asks the OS for a port: the first worker binds it, the others join it.
//   --tcp also answers over TCP on the same port (RFC 7766 framing, several
//   queries per connection, no per-connection cap): the ceiling for TCP scenarios.
//   --io batched answers UDP through the engine's batched path instead
//   (native/udp_batch.c: recvmmsg, one JS call per batch, sendmmsg) with the
//   same fixed reply: the ceiling for the engine's batched path. It exits 1
//   when the addon does not load.
//   Prints {"ready":true,"port":P} on stdout once every worker is bound; exits on SIGTERM/SIGINT.
//
//   main ──spawn──▶ worker 0 ──bind(P)──▶ {bound, port}
//        ──spawn──▶ worker 1..N-1 ──bind(port)──▶ {bound}
//        ──stdout──▶ {"ready":true,"port":port}

import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { DEFAULT_UDP_RECEIVE_BUFFER } from '../src/config/definition.ts';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { loadUdpBatch, META_BYTES, META_RX_LEN, META_TX_LEN, openBatchSocket } from '../native/udp-batch.ts';
import { UDP_BATCH } from '../workers/transport-udp-batch.ts';
import { literalLookup } from '../workers/transport-udp.ts';

/** The data each worker thread receives. */
interface ResponderWorkerData {
  readonly host: string;
  readonly port: number;
  readonly tcp: boolean;
  readonly io: 'dgram' | 'batched';
}

/** The message a worker posts once its socket is bound. */
interface BoundMessage {
  readonly type: 'bound';
  readonly port: number;
}

const HEADER_LEN = 12;
// RFC 1035 §2.3.4: a name is at most 255 octets and a label at most 63.
const MAX_NAME_LEN = 255;
const MAX_LABEL_LEN = 63;
// Replies are header + question (≤ 4 + 255) + one 16-byte A record: 287 bytes.
const OUT_BUF_LEN = 512;
// Enough slots for the sends that are still in flight at saturation; when every
// slot is busy the handler falls back to a fresh buffer instead of overwriting.
const RING_SIZE = 64;

const FLAG_QR = 0x80; // in byte 2
const OPCODE_MASK = 0x78; // in byte 2
const FLAG_RD = 0x01; // in byte 2
const FLAG_AA = 0x04; // in byte 2
const RCODE_FORMERR = 1;
const RCODE_NOTIMP = 4;
const QTYPE_A = 1;
const QTYPE_ANY = 255;
const QCLASS_IN = 1;

// The one answer: owner = pointer to the question name at offset 12 (RFC 1035
// §4.1.4), type A, class IN, TTL 60, rdlength 4, rdata 127.0.0.1.
const ANSWER_WIRE = Buffer.from([
  0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 127, 0, 0, 1,
]);

/**
 * Finds the end of the single question that starts at offset 12.
 * Returns the offset just past QCLASS, or -1 when the name is malformed or
 * truncated. Reads only; never throws. Compression pointers are refused: a
 * question name has nothing earlier to point to.
 */
function readQuestionEnd(msg: Buffer, msgLen: number): number {
  let off = HEADER_LEN;
  // Bounded: each pass consumes ≥ 1 byte and the name is capped at 255 bytes.
  for (;;) {
    if (off >= msgLen || off - HEADER_LEN >= MAX_NAME_LEN) return -1;
    const labelLen = msg[off];
    if (labelLen === 0) {
      off += 1;
      break;
    }
    if (labelLen > MAX_LABEL_LEN) return -1;
    off += 1 + labelLen;
  }
  if (off - HEADER_LEN > MAX_NAME_LEN) return -1;
  if (off + 4 > msgLen) return -1;
  return off + 4;
}

/**
 * Writes the reply to the query `msg[0, msgLen)` into `out` at `base` (the
 * reply's own offset 0) and returns its length. The caller has checked the
 * length and QR. Fixed answer for A/ANY IN, NODATA for other types, FORMERR
 * or NOTIMP as the header demands.
 */
function writeReply(msg: Buffer, msgLen: number, out: Buffer, base: number): number {
  // Header: echo the ID and RD, set QR and AA; counts filled in below.
  out[base] = msg[0];
  out[base + 1] = msg[1];
  out[base + 2] = FLAG_QR | FLAG_AA | (msg[2] & FLAG_RD);
  out[base + 3] = 0;
  out.writeUInt32BE(0, base + 4); // QDCOUNT, ANCOUNT = 0 until known
  out.writeUInt32BE(0, base + 8); // NSCOUNT, ARCOUNT = 0

  const qdcount = msg.readUInt16BE(4);
  const qEnd = qdcount === 1 ? readQuestionEnd(msg, msgLen) : -1;
  let len = HEADER_LEN;
  if ((msg[2] & OPCODE_MASK) !== 0) {
    out[base + 2] = FLAG_QR | (msg[2] & (OPCODE_MASK | FLAG_RD));
    out[base + 3] = RCODE_NOTIMP;
  } else if (qEnd < 0) {
    out[base + 3] = RCODE_FORMERR;
  } else {
    // Copy the question as sent (keeps 0x20 case randomisation intact).
    msg.copy(out, base + HEADER_LEN, HEADER_LEN, qEnd);
    len = qEnd;
    out[base + 5] = 1; // QDCOUNT = 1
    const qtype = msg.readUInt16BE(qEnd - 4);
    const qclass = msg.readUInt16BE(qEnd - 2);
    // Any other type gets NODATA (NOERROR, no answer): still correct DNS.
    // The query's OPT record is not echoed: dnsperf sends none without -e.
    if (qclass === QCLASS_IN && (qtype === QTYPE_A || qtype === QTYPE_ANY)) {
      ANSWER_WIRE.copy(out, base + len);
      len += ANSWER_WIRE.length;
      out[base + 7] = 1; // ANCOUNT = 1
    }
  }
  return len;
}

/**
 * Runs one responder worker: binds a reusePort UDP socket and answers until
 * the process exits. Socket errors are thrown, which ends the worker and the
 * main thread reports them.
 */
function runWorker(data: ResponderWorkerData, port: MessagePortLike): void {
  if (data.io === 'batched') {
    runBatchedWorker(data, port);
    return;
  }
  // The engine's lookup (workers/transport-udp.ts), so the ceiling sends as the engine does.
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false, reusePort: true, lookup: literalLookup });

  // Preallocated ring: a slot is busy from send() until its callback fires, so
  // a reply is never overwritten while the kernel may still be reading it.
  const ring: Buffer[] = [];
  const busy = new Uint8Array(RING_SIZE);
  const done: Array<() => void> = [];
  for (let i = 0; i < RING_SIZE; i++) {
    ring.push(Buffer.allocUnsafe(OUT_BUF_LEN));
    // One callback per slot, made once, so the hot path creates no closures.
    const slot = i;
    done.push(() => {
      busy[slot] = 0;
    });
  }
  let next = 0;

  socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    // Never answer a response or a runt (no ID to echo).
    if (msg.length < HEADER_LEN || (msg[2] & FLAG_QR) !== 0) return;

    let out: Buffer;
    let cb: () => void;
    const slot = next;
    if (busy[slot] === 0) {
      busy[slot] = 1;
      out = ring[slot];
      cb = done[slot];
      next = slot + 1 === RING_SIZE ? 0 : slot + 1;
    } else {
      out = Buffer.allocUnsafe(OUT_BUF_LEN);
      cb = noop;
    }
    const len = writeReply(msg, msg.length, out, 0);
    socket.send(out, 0, len, rinfo.port, rinfo.address, cb);
  });

  socket.once('listening', () => {
    // The engine's default dns.udp_receive_buffer, so both queue the same bursts.
    socket.setRecvBufferSize(DEFAULT_UDP_RECEIVE_BUFFER);
    const bound = socket.address().port;
    const ready = data.tcp ? listenTcp(data.host, bound) : Promise.resolve();
    ready.then(
      () => {
        const message: BoundMessage = { type: 'bound', port: bound };
        port.postMessage(message);
      },
      (err: unknown) => {
        throw err;
      },
    );
  });
  socket.on('error', (err) => {
    throw err;
  });
  socket.bind(data.port, data.host);
}

/**
 * The same responder on the engine's batched path: the worker's own
 * SO_REUSEPORT socket in the native addon with the engine's batch size and
 * receive buffer; each batch is one call that writes every reply into its
 * send slot. Buffer views over the slots are made once.
 */
function runBatchedWorker(data: ResponderWorkerData, port: MessagePortLike): void {
  const loaded = loadUdpBatch();
  if (loaded.addon === null) throw new Error(`--io batched: ${loaded.reason}`);
  const words = META_BYTES / 4;
  let meta: Int32Array = new Int32Array(0);
  const rx: Buffer[] = [];
  const tx: Buffer[] = [];
  const onBatch = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const w = i * words;
      const len = meta[w + META_RX_LEN];
      const msg = rx[i];
      // Never answer a response or a runt (no ID to echo).
      meta[w + META_TX_LEN] = len < HEADER_LEN || (msg[2] & FLAG_QR) !== 0 ? 0 : writeReply(msg, len, tx[i], 0);
    }
  };
  const socket = openBatchSocket(loaded.addon, { host: data.host, port: data.port, receiveBuffer: DEFAULT_UDP_RECEIVE_BUFFER, batch: UDP_BATCH }, onBatch);
  meta = socket.meta;
  for (let i = 0; i < socket.batch; i++) {
    rx.push(Buffer.from(socket.rx[i].buffer, socket.rx[i].byteOffset, socket.rx[i].byteLength));
    tx.push(Buffer.from(socket.tx[i].buffer, socket.tx[i].byteOffset, socket.tx[i].byteLength));
  }
  const ready = data.tcp ? listenTcp(data.host, socket.port) : Promise.resolve();
  ready.then(
    () => {
      const message: BoundMessage = { type: 'bound', port: socket.port };
      port.postMessage(message);
    },
    (err: unknown) => {
      throw err;
    },
  );
}

/**
 * Answers framed queries on one TCP connection: every complete frame in a
 * 'data' chunk is answered in order, writes corked into one segment, as the
 * engine's transport does. Assumes a well-behaved client (the load
 * generator): a zero-length or runt frame closes the connection.
 */
function serveTcpConnection(conn: net.Socket): void {
  let partial: Buffer | null = null;
  conn.setNoDelay(true);
  conn.on('data', (data: Buffer) => {
    const buf = partial === null ? data : Buffer.concat([partial, data]);
    partial = null;
    let off = 0;
    conn.cork();
    while (buf.length - off >= 2) {
      const frameLen = (buf[off] << 8) | buf[off + 1];
      if (buf.length - off - 2 < frameLen) break;
      const frame = buf.subarray(off + 2, off + 2 + frameLen);
      off += 2 + frameLen;
      if (frameLen < HEADER_LEN || (frame[2] & FLAG_QR) !== 0) {
        conn.destroy();
        return;
      }
      const reply = Buffer.allocUnsafe(OUT_BUF_LEN + 2);
      const len = writeReply(frame, frameLen, reply, 2);
      reply[0] = len >>> 8;
      reply[1] = len & 0xff;
      conn.write(reply.subarray(0, len + 2));
    }
    conn.uncork();
    if (off < buf.length) partial = Buffer.from(buf.subarray(off));
  });
  conn.on('end', () => conn.end());
  conn.on('error', () => conn.destroy());
}

/** Starts the worker's TCP listener on host:port (reusePort); resolves once it listens. */
function listenTcp(host: string, port: number): Promise<void> {
  const server = net.createServer(serveTcpConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, reusePort: true, backlog: 511 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function noop(): void {}

/** The part of a MessagePort that runWorker needs. */
interface MessagePortLike {
  postMessage(value: unknown): void;
}

/**
 * Starts one worker bound to host:port and resolves with the port it bound.
 * Rejects if the worker fails or exits before binding.
 */
function startWorker(host: string, port: number, tcp: boolean, io: 'dgram' | 'batched'): Promise<number> {
  const data: ResponderWorkerData = { host, port, tcp, io };
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    worker.once('message', (msg: BoundMessage) => resolve(msg.port));
    worker.once('error', (err) => reject(err));
    worker.once('exit', (code) => reject(new Error(`responder worker exited with code ${code} before binding`)));
  }).then((boundPort) => {
    // After binding, a dead worker means a broken ceiling: stop loudly.
    worker.removeAllListeners('exit');
    worker.removeAllListeners('error');
    worker.on('error', (err) => {
      process.stderr.write(`bare-responder: worker failed: ${err.stack ?? String(err)}\n`);
      process.exit(1);
    });
    return boundPort as number;
  });
}

/** Parses the command line, starts the workers and prints the ready line. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      workers: { type: 'string', default: '1' },
      host: { type: 'string', default: '127.0.0.1' },
      tcp: { type: 'boolean', default: false },
      io: { type: 'string', default: 'dgram' },
    },
    strict: true,
  });
  const port = Number(values.port);
  const workers = Number(values.workers);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${values.port}" is not a port (0-65535)`);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error(`--workers: "${values.workers}" is not an integer in 1-64`);
  const io = values.io;
  if (io !== 'dgram' && io !== 'batched') throw new Error(`--io: "${io}" is not one of dgram, batched`);

  process.once('SIGTERM', () => process.exit(0));
  process.once('SIGINT', () => process.exit(0));

  // The first worker settles the port (it may be 0); the rest join it.
  const tcp = values.tcp === true;
  const boundPort = await startWorker(values.host, port, tcp, io);
  const rest: Promise<number>[] = [];
  for (let i = 1; i < workers; i++) rest.push(startWorker(values.host, boundPort, tcp, io));
  await Promise.all(rest);
  process.stdout.write(`${JSON.stringify({ ready: true, port: boundPort })}\n`);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`bare-responder: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
} else {
  runWorker(workerData as ResponderWorkerData, parentPort as MessagePortLike);
}
