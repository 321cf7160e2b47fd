// Worker, hot path. Batched UDP (Linux): the worker's own SO_REUSEPORT socket
// in the native addon (native/udp_batch.c), polled by libuv. Each wake-up
// receives up to UDP_BATCH datagrams with one recvmmsg and makes ONE call
// into this file, which runs handleQuery for every datagram, straight from
// the addon's receive slot into its send slot; the addon then sends every
// reply with one sendmmsg. Nothing is allocated per packet.
//
//   recvmmsg ─► onBatch(n): for i < n: source bytes → ctx.client; handleQuery(rx[i] → tx[i]); txLen[i] ─► sendmmsg

import { COUNTER, DurationRecorder, TRANSPORT_UDP } from '../src/metrics/counters-layout.ts';
import { META_ADDR_BYTE, META_ADDR_LEN, META_BYTES, META_RX_LEN, META_TX_LEN, openBatchSocket, type UdpBatchAddon } from '../native/udp-batch.ts';
import { prefetchBatch, PrefetchScratch } from './batch-prefetch.ts';
import { handleQuery } from './handle-query.ts';
import type { WorkerScratch } from './scratch.ts';
import { writeServfail, type UdpListener } from './transport-udp.ts';

/**
 * Datagrams per recvmmsg (Knot's udp-handler reads up to 64 per call, NSD up
 * to 100). Measured with an echo on this socket and dnsperf (-c 8 -q 100, the
 * e2e settings) on the loaded 2-core dev machine: at saturation (84k q/s) the
 * mean batch was 17 datagrams and 60 % of datagrams came in full batches of
 * 64 (the worker had been off its core meanwhile); at 20 000 q/s the mean was
 * 3. A wake-up reads at most 4 full batches before timers, snapshot swaps and
 * messages get their turn.
 */
export const UDP_BATCH = 64;

const WORDS = META_BYTES / 4;

/**
 * Snapshots with at least this many names get their batches prefetched
 * (./batch-prefetch.ts). Below it the names a worker answers stay in its
 * caches anyway and the extra pass would only cost time.
 */
const PREFETCH_MIN_NODES = 1024;

/**
 * Binds the worker's batched UDP socket on host:port with SO_REUSEPORT and
 * SO_RCVBUF = `receiveBuffer` (0 keeps the kernel's default), and starts
 * answering. Throws the bind error with its errno name as `code`
 * (EADDRINUSE, EACCES…), as startUdp rejects.
 */
export function startUdpBatch(ctx: WorkerScratch, addon: UdpBatchAddon, host: string, port: number, receiveBuffer = 0): UdpListener {
  const counters = ctx.counters;
  const cb = ctx.counterBase;
  const client = ctx.client;
  const durations = new DurationRecorder(counters, cb, TRANSPORT_UDP);
  let meta: Int32Array = new Int32Array(0);
  let metaBytes: Uint8Array = new Uint8Array(0);
  let rx: Uint8Array[] = [];
  let tx: Uint8Array[] = [];
  const prefetch = new PrefetchScratch(UDP_BATCH);

  const onBatch = (count: number): void => {
    // opengslb_dns_query_duration_seconds: from the batch's arrival in
    // JavaScript to the end of its last handleQuery, for every reply of the
    // batch: the replies leave together (one sendmmsg) right after this
    // function returns, so that is each one's time here, read once.
    const startMs = durations.start();
    let replies = 0;
    // The prefetch hashed each question name: handleQuery takes the hash (prefetch.hash) instead of hashing again.
    let hashed = false;
    if (count > 1 && ctx.view.nodeCount >= PREFETCH_MIN_NODES) {
      try {
        prefetchBatch(ctx, prefetch, rx, meta, WORDS, count);
        hashed = true;
      } catch (err) {
        // Only warms caches: a bug here must not cost an answer. Counted and reported like any other.
        ctx.caught(err, 'udp-prefetch');
      }
    }
    for (let i = 0; i < count; i++) {
      const w = i * WORDS;
      const reqLen = meta[w + META_RX_LEN];
      const addrLen = meta[w + META_ADDR_LEN];
      if (addrLen === 4 || addrLen === 16) client.setSourceBytes(metaBytes, i * META_BYTES + META_ADDR_BYTE, addrLen);
      else client.setSource('', 0);
      const req = rx[i];
      const out = tx[i];
      let len: number;
      try {
        len = handleQuery(ctx, req, reqLen, out, false, hashed ? prefetch.hash[i] : -1);
      } catch (err) {
        // The one catch on the query path: a bug, not bad input. Answer
        // SERVFAIL with the query's ID so the client is not left waiting;
        // the batch goes on (the subarray is the rare path's only allocation).
        ctx.caught(err, 'udp');
        len = writeServfail(out, req.subarray(0, reqLen));
      }
      meta[w + META_TX_LEN] = len;
      if (len !== 0) replies++;
    }
    durations.recordMany(startMs, replies);
  };

  const socket = openBatchSocket(addon, { host, port, receiveBuffer, batch: UDP_BATCH, counters, sendErrorIndex: cb + COUNTER.SEND_ERRORS }, onBatch);
  meta = socket.meta;
  metaBytes = socket.metaBytes;
  rx = socket.rx;
  tx = socket.tx;
  return {
    receiveBuffer: socket.receiveBuffer,
    close() {
      socket.close();
      return Promise.resolve();
    },
  };
}
