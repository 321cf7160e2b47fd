// Any thread, cold (loading) and hot (the views). The one JavaScript module
// in front of the batched-UDP addon (udp_batch.c): finds and loads the binary
// once per thread, says why when it cannot (the DNS workers then answer
// through node:dgram), and wraps an open socket in typed views over the
// memory the addon shares, so the batch handler reads packets and writes
// replies without a Buffer per packet.
//
//   loadUdpBatch() ──dlopen──► native/build/Release/opengslb_udp.node   (built here from source)
//                          └─► native/prebuilds/<platform>-<arch>-glibc/opengslb_udp.node   (shipped in the npm package)
//   openBatchSocket(addon, options, onBatch) ──► BatchSocket { rx[i], tx[i], meta, metaBytes }

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Name of the addon's file, in native/build/Release/ and native/prebuilds/<target>/. */
export const ADDON_FILE = 'opengslb_udp.node';
/** The addon's interface version; a binary reporting another one is stale and not used. */
export const ADDON_ABI = 1;
/** Folder of the prebuilt binary for this platform under native/prebuilds/ (the npm package ships linux-x64-glibc). */
export const PREBUILD_TARGET = `${process.platform}-${process.arch}-glibc`;

/** Bytes of one slot's metadata; the words are META_* below. */
export const META_BYTES = 32;
/** Int32 word indexes within a slot's metadata (udp_batch.c's META_*). */
export const META_RX_LEN = 0;
export const META_TX_LEN = 1;
export const META_ADDR_LEN = 2;
export const META_PORT = 3;
/** Byte offset of the source address (network byte order) within a slot's metadata. */
export const META_ADDR_BYTE = 16;

export interface OpenOptions {
  /** IPv4 or IPv6 literal to bind ("0.0.0.0", "::", "127.0.0.1"). */
  readonly host: string;
  readonly port: number;
  /** SO_RCVBUF to ask for; 0 keeps the kernel's default. */
  readonly receiveBuffer: number;
  /** Datagrams per recvmmsg, 1–256. */
  readonly batch: number;
  /** The worker's shared counters and the word that counts send errors (optional). */
  readonly counters?: Int32Array;
  readonly sendErrorIndex?: number;
}

/** What the addon's open() returns. */
interface Opened {
  readonly handle: object;
  readonly buffer: ArrayBuffer;
  readonly port: number;
  readonly family: number;
  readonly receiveBuffer: number;
  readonly batch: number;
  readonly slotBytes: number;
  readonly stride: number;
  readonly metaBytes: number;
  readonly rxOffset: number;
  readonly txOffset: number;
}

/** Totals since open, for tests and the bench. */
export interface BatchStats {
  readonly batches: number;
  readonly packets: number;
  /** Replies the kernel accepted (not those refused or overrunning their slot: sendErrors). */
  readonly replies: number;
  readonly sendErrors: number;
  readonly writableWaits: number;
  readonly largestBatch: number;
}

/** The addon's exports (udp_batch.c init()). */
export interface UdpBatchAddon {
  readonly abiVersion: number;
  open(options: OpenOptions, onBatch: (count: number) => void): Opened;
  close(handle: object): void;
  stats(handle: object): BatchStats;
  /** malloc_trim(0) where the C library is glibc (true), else nothing (false); absent from builds before it (src/lib/memory-trim.ts). */
  readonly trimMemory?: () => boolean;
  /** Gives the file's first `length` bytes disk blocks (fallocate); throws an Error coded ENOSPC, EFBIG… Absent from builds before it (src/state/store.ts). */
  readonly reserveFile?: (path: string, length: number) => void;
}

export type LoadResult = { readonly addon: UdpBatchAddon; readonly file: string; readonly reason: string } | { readonly addon: null; readonly file: null; readonly reason: string };

/**
 * The folder holding binding.gyp and the binaries: this file's own folder in
 * a clone (native/), the package's native/ when this runs as the built
 * dist/native/udp-batch.js of an installed package.
 */
function nativeRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return existsSync(join(here, 'binding.gyp')) ? here : join(here, '..', '..', 'native');
}

/** The files loadUdpBatch() tries, in order: a local build first (made for this machine), then the shipped prebuilt. */
export function addonCandidates(): string[] {
  const root = nativeRoot();
  return [join(root, 'build', 'Release', ADDON_FILE), join(root, 'prebuilds', PREBUILD_TARGET, ADDON_FILE)];
}

let cached: LoadResult | null = null;

/**
 * Loads the batched-UDP addon, once per thread (later calls return the same
 * result). Never throws: on another platform, with no binary, or with one
 * that does not load (another libc, a stale build), `addon` is null and
 * `reason` says why in one line. `candidates` replaces the default search
 * (tests); such a call is not cached.
 */
export function loadUdpBatch(candidates?: readonly string[]): LoadResult {
  if (candidates === undefined && cached !== null) return cached;
  const result = load(candidates ?? addonCandidates());
  if (candidates === undefined) cached = result;
  return result;
}

function load(candidates: readonly string[]): LoadResult {
  if (process.platform !== 'linux') return { addon: null, file: null, reason: `recvmmsg/sendmmsg batches are Linux-only and this is ${process.platform}` };
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    try {
      const addon = require(file) as UdpBatchAddon;
      if (addon.abiVersion !== ADDON_ABI) {
        failures.push(`${shortPath(file)} is a stale build (interface ${String(addon.abiVersion)}, expected ${ADDON_ABI})`);
        continue;
      }
      return { addon, file, reason: `native addon ${shortPath(file)}` };
    } catch (err) {
      // dlopen's message names the missing symbol or library (another libc, another architecture).
      failures.push(`${shortPath(file)} does not load: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (failures.length > 0) return { addon: null, file: null, reason: failures.join('; ') };
  return {
    addon: null,
    file: null,
    reason: `no build of the native addon for ${process.platform}-${process.arch} (looked for ${candidates.map(shortPath).join(' and ')}; \`npm run build:native\` builds it where a C compiler is installed)`,
  };
}

/** A path relative to the package root when inside it, for log lines. */
function shortPath(file: string): string {
  const rel = relative(dirname(nativeRoot()), file);
  return rel.startsWith('..') ? file : rel;
}

/**
 * One worker's batched UDP socket and the typed views over its shared
 * memory. Slot i's datagram is rx[i][0, meta[i*8 + META_RX_LEN]); the batch
 * handler writes slot i's reply to tx[i] and its length to
 * meta[i*8 + META_TX_LEN] (0 = no reply). The views are valid from the
 * onBatch call to its return; the addon sends the replies right after.
 */
export class BatchSocket {
  readonly addon: UdpBatchAddon;
  readonly handle: object;
  /** The port bound (the one asked for, or the kernel's pick for 0). */
  readonly port: number;
  /** Bytes of receive buffer the kernel granted. */
  readonly receiveBuffer: number;
  readonly batch: number;
  /** Per slot: META_BYTES / 4 int32 words. */
  readonly meta: Int32Array;
  /** The same memory as bytes: the source address of slot i is at i*META_BYTES + META_ADDR_BYTE. */
  readonly metaBytes: Uint8Array;
  /** Received datagrams, one view per slot (each as long as the largest datagram). */
  readonly rx: Uint8Array[] = [];
  /** Replies, one view per slot (65 536 bytes each: a DNS message is built whole, then cut to the client's size). */
  readonly tx: Uint8Array[] = [];
  #closed = false;

  constructor(addon: UdpBatchAddon, opened: Opened) {
    this.addon = addon;
    this.handle = opened.handle;
    this.port = opened.port;
    this.receiveBuffer = opened.receiveBuffer;
    this.batch = opened.batch;
    if (opened.metaBytes !== META_BYTES) throw new Error(`udp-batch: the addon's slot metadata is ${opened.metaBytes} bytes, this module reads ${META_BYTES}`);
    this.meta = new Int32Array(opened.buffer, 0, (opened.batch * META_BYTES) / 4);
    this.metaBytes = new Uint8Array(opened.buffer, 0, opened.batch * META_BYTES);
    for (let i = 0; i < opened.batch; i++) {
      this.rx.push(new Uint8Array(opened.buffer, opened.rxOffset + i * opened.stride, opened.slotBytes));
      this.tx.push(new Uint8Array(opened.buffer, opened.txOffset + i * opened.stride, opened.slotBytes));
    }
  }

  /** Stops receiving and closes the socket (the port is free on return); inside onBatch, once it returns. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.addon.close(this.handle);
  }

  /** Returns the totals since open; throws after close() (a closed socket has no totals to watch). */
  stats(): BatchStats {
    if (this.#closed) throw new Error('udp-batch: stats() after close()');
    return this.addon.stats(this.handle);
  }
}

/**
 * Opens a batched UDP socket (SO_REUSEPORT, bound to host:port) that calls
 * `onBatch(count)` with slots 0 … count−1 filled. Throws the bind error with
 * its errno name as `code` (EADDRINUSE, EACCES…), a TypeError/RangeError for
 * bad options, and an Error when the addon's memory layout is not the one
 * this module reads (a stale build); the socket is closed again then.
 */
export function openBatchSocket(addon: UdpBatchAddon, options: OpenOptions, onBatch: (count: number) => void): BatchSocket {
  const opened = addon.open(options, onBatch);
  try {
    return new BatchSocket(addon, opened);
  } catch (err) {
    // The socket is bound and polled already: left open, it would stay in the
    // port's SO_REUSEPORT group beside the node:dgram fallback and hand its
    // share of the datagrams to an onBatch that has no views.
    addon.close(opened.handle);
    throw err;
  }
}
