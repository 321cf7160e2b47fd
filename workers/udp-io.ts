// Worker, cold. Chooses the worker's UDP path once, at start (dns.udp_io):
// the batched native socket (./transport-udp-batch.ts) where the addon loads
// and `auto` is configured, node:dgram (./transport-udp.ts) otherwise, and
// says which and why for the main thread's start log line.

import { loadUdpBatch } from '../native/udp-batch.ts';
import { startUdpBatch, UDP_BATCH } from './transport-udp-batch.ts';
import { startUdp, type UdpListener } from './transport-udp.ts';
import type { WorkerScratch } from './scratch.ts';

/** dns.udp_io: `auto` = batched where the addon loads, `dgram` = always node:dgram. */
export type UdpIoSetting = 'auto' | 'dgram';
/** The path a worker answers UDP on. */
export type UdpIoPath = 'batched' | 'dgram';

export interface UdpStart {
  readonly listener: UdpListener;
  readonly path: UdpIoPath;
  /** One line: why this path (the addon's file, or why it is not used). */
  readonly reason: string;
}

/**
 * Binds the worker's UDP socket on the path `setting` asks for. Rejects with
 * the bind error (its `code` EADDRINUSE, EACCES…) on either path; any other
 * failure of the batched path falls back to node:dgram and says why.
 */
export async function startUdpIo(ctx: WorkerScratch, setting: UdpIoSetting, host: string, port: number, receiveBuffer: number): Promise<UdpStart> {
  let reason = 'dns.udp_io is dgram';
  if (setting === 'auto') {
    const loaded = loadUdpBatch();
    if (loaded.addon === null) {
      reason = loaded.reason;
    } else {
      try {
        const listener = startUdpBatch(ctx, loaded.addon, host, port, receiveBuffer);
        return { listener, path: 'batched', reason: `${loaded.reason}, up to ${UDP_BATCH} datagrams per recvmmsg/sendmmsg` };
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // The same address would not bind through node:dgram either.
        if (e.message.startsWith('bind ')) throw err;
        reason = `the batched socket could not be opened: ${e.message}`;
      }
    }
  }
  return { listener: await startUdp(ctx, host, port, receiveBuffer), path: 'dgram', reason };
}
