// Bench only, main thread + worker threads. The machine's ceiling for the e2e
// benchmark: N worker threads, each with its own reusePort UDP socket, answer
// every query with one fixed A record and do nothing else.
//
// Usage: npx node bench/bare-responder.ts --port P [--workers N] [--host 127.0.0.1]
//   --port 0 asks the OS for a port: the first worker binds it, the others join it.
//   Prints {"ready":true,"port":P} on stdout once every worker is bound; exits on SIGTERM/SIGINT.
//
//   main ──spawn──▶ worker 0 ──bind(P)──▶ {bound, port}
//        ──spawn──▶ worker 1..N-1 ──bind(port)──▶ {bound}
//        ──stdout──▶ {"ready":true,"port":port}

import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** The data each worker thread receives. */
interface ResponderWorkerData {
  readonly host: string;
  readonly port: number;
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
function readQuestionEnd(msg: Buffer): number {
  const msgLen = msg.length;
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
 * Runs one responder worker: binds a reusePort UDP socket and answers until
 * the process exits. Socket errors are thrown, which ends the worker and the
 * main thread reports them.
 */
function runWorker(data: ResponderWorkerData, port: MessagePortLike): void {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false, reusePort: true });

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

    // Header: echo the ID and RD, set QR and AA; counts filled in below.
    out[0] = msg[0];
    out[1] = msg[1];
    out[2] = FLAG_QR | FLAG_AA | (msg[2] & FLAG_RD);
    out[3] = 0;
    out.writeUInt32BE(0, 4); // QDCOUNT, ANCOUNT = 0 until known
    out.writeUInt32BE(0, 8); // NSCOUNT, ARCOUNT = 0

    const qdcount = msg.readUInt16BE(4);
    const qEnd = qdcount === 1 ? readQuestionEnd(msg) : -1;
    let len = HEADER_LEN;
    if ((msg[2] & OPCODE_MASK) !== 0) {
      out[2] = FLAG_QR | (msg[2] & (OPCODE_MASK | FLAG_RD));
      out[3] = RCODE_NOTIMP;
    } else if (qEnd < 0) {
      out[3] = RCODE_FORMERR;
    } else {
      // Copy the question as sent (keeps 0x20 case randomisation intact).
      msg.copy(out, HEADER_LEN, HEADER_LEN, qEnd);
      len = qEnd;
      out[5] = 1; // QDCOUNT = 1
      const qtype = msg.readUInt16BE(qEnd - 4);
      const qclass = msg.readUInt16BE(qEnd - 2);
      // Any other type gets NODATA (NOERROR, no answer): still correct DNS.
      // The query's OPT record is not echoed: dnsperf sends none without -e.
      if (qclass === QCLASS_IN && (qtype === QTYPE_A || qtype === QTYPE_ANY)) {
        ANSWER_WIRE.copy(out, len);
        len += ANSWER_WIRE.length;
        out[7] = 1; // ANCOUNT = 1
      }
    }
    socket.send(out, 0, len, rinfo.port, rinfo.address, cb);
  });

  socket.once('listening', () => {
    const message: BoundMessage = { type: 'bound', port: socket.address().port };
    port.postMessage(message);
  });
  socket.on('error', (err) => {
    throw err;
  });
  socket.bind(data.port, data.host);
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
function startWorker(host: string, port: number): Promise<number> {
  const data: ResponderWorkerData = { host, port };
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
    },
    strict: true,
  });
  const port = Number(values.port);
  const workers = Number(values.workers);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${values.port}" is not a port (0-65535)`);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error(`--workers: "${values.workers}" is not an integer in 1-64`);

  process.once('SIGTERM', () => process.exit(0));
  process.once('SIGINT', () => process.exit(0));

  // The first worker settles the port (it may be 0); the rest join it.
  const boundPort = await startWorker(values.host, port);
  const rest: Promise<number>[] = [];
  for (let i = 1; i < workers; i++) rest.push(startWorker(values.host, boundPort));
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
