// Main thread, cold path. Loads a GeoIP database (.mmdb) into one
// SharedArrayBuffer that every DNS worker reads through lookup.ts, checks it
// before anyone uses it, and reloads it when the file changes on disk or on
// SIGHUP. A file that cannot be read or is not a usable database is refused
// with its path and the reason; the database in use keeps serving.
//
//   file ──read──► SharedArrayBuffer ──check──► current ──onChange(db)──► overwatch posts db.sab to workers
//     ▲                                  │ refused: OpenGslbError, current unchanged
//     └── fs.watch(dir) ─ debounce ─ reload() ◄── SIGHUP

import { watch } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { Reader } from 'maxmind';
import type { Response } from 'maxmind';
import { BUNDLED_GEOIP_FILE, BUNDLED_GEOIP_PACKAGE } from './attribution.ts';
import { GeoIpReader, packGeoRecord } from './lookup.ts';
import { OpenGslbError } from '../lib/errors.ts';

/** Absolute path of the bundled DB-IP country database (attribution.ts). */
export const BUNDLED_GEOIP_PATH = join(
  dirname(createRequire(import.meta.url).resolve(`${BUNDLED_GEOIP_PACKAGE}/package.json`)),
  BUNDLED_GEOIP_FILE,
);

/** Largest database accepted: GeoIP2 City is about 120 MB; a file ten times that is not a GeoIP database. */
export const MAX_GEO_DATABASE_BYTES = 1024 * 1024 * 1024;

/** Default pause between the last change event of the file and the reload: writers such as cp emit several events. */
export const DEFAULT_GEO_RELOAD_DEBOUNCE_MS = 1000;

/** Distinct records decoded to check a new database's shape (the first ones in address order). */
const SAMPLE_RECORDS = 64;
/** Tree nodes visited at most while looking for those records. */
const SAMPLE_NODE_VISITS = 200_000;

const METADATA_MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex');

/** What was loaded, for logs, the admin API and `--version`. */
export interface GeoDatabaseInfo {
  /** Absolute path of the file. */
  readonly path: string;
  /** True for the database shipped in BUNDLED_GEOIP_PACKAGE. */
  readonly bundled: boolean;
  readonly sizeBytes: number;
  /** The metadata's database_type ("GeoLite2-Country", "country ipvAll", …). */
  readonly databaseType: string;
  /** The metadata's build_epoch, as an ISO 8601 time. */
  readonly builtAt: string;
  readonly ipVersion: 4 | 6;
  readonly recordSize: number;
  readonly nodeCount: number;
  /** Which record layout the sampled records have: MaxMind's `country.iso_code` / `continent.code`, or DB-IP's `country_code`. */
  readonly recordShape: 'maxmind' | 'country_code';
  /** When this copy was read, ISO 8601. */
  readonly loadedAt: string;
}

/** A checked database: the shared bytes workers attach to (new GeoIpReader(sab)) and what they hold. */
export interface LoadedGeoDatabase {
  readonly sab: SharedArrayBuffer;
  readonly info: GeoDatabaseInfo;
}

/**
 * Reads the .mmdb file at `path` into a new SharedArrayBuffer and checks it:
 * maxmind opens it, the metadata is sane (format 2, record size 24/28/32, IP
 * version 4 or 6, the tree and the data section fit the file), every record
 * of the search tree points inside the file, and the first records decode and
 * carry a country (`country.iso_code` or `country_code`) or a continent
 * (`continent.code`), which a lookup through GeoIpReader returns too.
 * Throws OpenGslbError OPENGSLB_ERR_GEO_DATABASE naming the path and the reason.
 */
export async function loadGeoDatabase(path: string): Promise<LoadedGeoDatabase> {
  const abs = resolve(path);
  const sab = await readShared(abs);
  const info = checkDatabase(sab, abs);
  return Object.freeze({ sab, info: Object.freeze(info) });
}

function refuse(path: string, reason: string, cause?: unknown): never {
  throw new OpenGslbError(
    'OPENGSLB_ERR_GEO_DATABASE',
    `GeoIP database ${path}: ${reason}; expected a MaxMind DB (.mmdb) file with country or continent data, such as GeoLite2-Country.mmdb`,
    cause === undefined ? undefined : { cause },
  );
}

async function readShared(path: string): Promise<SharedArrayBuffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be opened (${code ?? String(err)})`;
    return refuse(path, why, err);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return refuse(path, 'is not a regular file');
    if (stat.size === 0) return refuse(path, 'is empty');
    if (stat.size > MAX_GEO_DATABASE_BYTES) return refuse(path, `is ${stat.size} bytes, larger than the ${MAX_GEO_DATABASE_BYTES} bytes accepted`);
    const sab = new SharedArrayBuffer(stat.size);
    const view = new Uint8Array(sab);
    let done = 0;
    while (done < stat.size) {
      const { bytesRead } = await handle.read(view, done, stat.size - done, done);
      if (bytesRead === 0) return refuse(path, `ended after ${done} of ${stat.size} bytes (was it being written?)`);
      done += bytesRead;
    }
    return sab;
  } catch (err) {
    if (err instanceof OpenGslbError) throw err;
    return refuse(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
  } finally {
    await handle.close();
  }
}

/** Checks a database in memory; returns its description or throws OPENGSLB_ERR_GEO_DATABASE. */
function checkDatabase(sab: SharedArrayBuffer, path: string): GeoDatabaseInfo {
  const buf = Buffer.from(sab);
  const markerAt = buf.lastIndexOf(METADATA_MARKER);
  if (markerAt < 0) refuse(path, 'has no MaxMind DB metadata section (the "\\xAB\\xCD\\xEFMaxMind.com" marker is missing)');
  let reader: Reader<Response>;
  try {
    reader = new Reader<Response>(buf);
  } catch (err) {
    return refuse(path, `cannot be opened by maxmind: ${(err as Error).message}`, err);
  }
  const m = reader.metadata;
  if (m.binaryFormatMajorVersion !== 2) refuse(path, `has binary format version ${String(m.binaryFormatMajorVersion)}, expected 2`);
  if (m.ipVersion !== 4 && m.ipVersion !== 6) refuse(path, `has ip_version ${String(m.ipVersion)}, expected 4 or 6`);
  if (!Number.isSafeInteger(m.nodeCount) || m.nodeCount < 1) refuse(path, `has node_count ${String(m.nodeCount)}, expected a positive integer`);
  const dataStart = m.searchTreeSize + 16;
  if (dataStart > markerAt) refuse(path, `has a search tree of ${m.searchTreeSize} bytes, which does not fit before its metadata at byte ${markerAt}`);
  for (let i = m.searchTreeSize; i < dataStart; i++) {
    if (buf[i] !== 0) refuse(path, `has no 16 zero bytes after its search tree (byte ${i} is ${buf[i]}): the file is damaged`);
  }
  checkTree(buf, m.nodeCount, m.recordSize, markerAt - dataStart, path);
  const shape = sampleRecords(reader, new GeoIpReader(sab), buf, m.nodeCount, m.recordSize, m.ipVersion, path);
  return {
    path,
    bundled: path === BUNDLED_GEOIP_PATH,
    sizeBytes: sab.byteLength,
    databaseType: String(m.databaseType),
    builtAt: Number.isNaN(m.buildEpoch.getTime()) ? 'unknown' : m.buildEpoch.toISOString(),
    ipVersion: m.ipVersion as 4 | 6,
    recordSize: m.recordSize,
    nodeCount: m.nodeCount,
    recordShape: shape,
    loadedAt: new Date().toISOString(),
  };
}

/** Reads record `bit` of node `node` (the same arithmetic as lookup.ts, kept local so the check does not trust it). */
function recordOf(buf: Buffer, recordSize: number, node: number, bit: number): number {
  if (recordSize === 24) return buf.readUIntBE(node * 6 + bit * 3, 3);
  if (recordSize === 28) {
    const o = node * 7;
    return bit === 0 ? ((buf[o + 3] & 0xf0) << 20) | buf.readUIntBE(o, 3) : ((buf[o + 3] & 0x0f) << 24) | buf.readUIntBE(o + 4, 3);
  }
  return buf.readUInt32BE(node * 8 + bit * 4);
}

/** Checks every record of the tree: a node, "not found", or a pointer into the data section (so no lookup reads past it). */
function checkTree(buf: Buffer, nodeCount: number, recordSize: number, dataSize: number, path: string): void {
  for (let node = 0; node < nodeCount; node++) {
    for (let bit = 0; bit < 2; bit++) {
      const v = recordOf(buf, recordSize, node, bit);
      if (v > nodeCount && v - nodeCount - 16 >= dataSize) {
        refuse(path, `has node ${node} pointing at data offset ${v - nodeCount - 16}, past its ${dataSize}-byte data section: the file is damaged`);
      }
    }
  }
}

/**
 * Walks the tree depth-first from address zero until SAMPLE_RECORDS distinct
 * records are found, decodes each through maxmind (asked with an address of
 * its network) and through GeoIpReader, and checks they carry a country or a
 * continent and agree. Returns the record shape.
 */
function sampleRecords(reader: Reader<Response>, geo: GeoIpReader, buf: Buffer, nodeCount: number, recordSize: number, ipVersion: number, path: string): 'maxmind' | 'country_code' {
  const bits = ipVersion === 6 ? 128 : 32;
  const addr = new Uint8Array(bits / 8);
  const seen = new Set<number>();
  let visits = 0;
  let withGeo = 0;
  let maxmindShape = 0;
  const visit = (node: number, depth: number): void => {
    for (let bit = 0; bit < 2 && seen.size < SAMPLE_RECORDS && visits < SAMPLE_NODE_VISITS; bit++) {
      if (bit === 1) addr[depth >> 3] |= 0x80 >> (depth & 7);
      const next = recordOf(buf, recordSize, node, bit);
      if (next < nodeCount && depth + 1 < bits) {
        visits++;
        visit(next, depth + 1);
      } else if (next > nodeCount && !seen.has(next)) {
        seen.add(next);
        const { text, bytes } = addressText(addr);
        let record: unknown;
        try {
          record = reader.get(text);
        } catch (err) {
          refuse(path, `has a record (for ${text}) that maxmind cannot decode: ${(err as Error).message}`, err);
        }
        const packed = packGeoRecord(record);
        if (packed !== 0) withGeo++;
        const r = record as { country?: unknown; continent?: unknown } | null;
        if (r !== null && typeof r === 'object' && (r.country !== undefined || r.continent !== undefined)) maxmindShape++;
        const found = geo.find(bytes, 0, bytes.length);
        if ((found & ~0xff) !== packed) refuse(path, `gives different answers for ${text} through its search tree and through maxmind: the file is damaged`);
      }
      if (bit === 1) addr[depth >> 3] &= ~(0x80 >> (depth & 7));
    }
  };
  visit(0, 0);
  if (seen.size === 0) refuse(path, 'holds no network at all');
  if (withGeo === 0) {
    refuse(path, `has records without country.iso_code, country_code or continent.code (database_type "${String(reader.metadata.databaseType)}"; ${seen.size} records checked)`);
  }
  return maxmindShape > 0 ? 'maxmind' : 'country_code';
}

/** Formats a tree path as the address maxmind is asked with: IPv4 text when it lies in ::/96 of an IPv6 tree (where maxmind's IPv4 lookups start). */
function addressText(addr: Uint8Array): { text: string; bytes: Uint8Array } {
  if (addr.length === 4) return { text: addr.join('.'), bytes: addr.slice() };
  let v4 = true;
  for (let i = 0; i < 12; i++) if (addr[i] !== 0) v4 = false;
  if (v4) return { text: addr.subarray(12).join('.'), bytes: addr.slice(12) };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i] << 8) | addr[i + 1]).toString(16));
  return { text: groups.join(':'), bytes: addr.slice() };
}

/** How a GeoDatabase is opened. */
export interface GeoDatabaseOptions {
  /** The .mmdb file (overwatch.geolocation.database_path, absolute); absent or null: the bundled database. */
  readonly path?: string | null;
  /** Reload when the file changes on disk (default true). */
  readonly watch?: boolean;
  /** Quiet time after the last change event before reloading, in ms (default DEFAULT_GEO_RELOAD_DEBOUNCE_MS). */
  readonly debounceMs?: number;
  /** Called with each new database after a reload published it (the old one stays valid for whoever still holds it). */
  readonly onChange?: (db: LoadedGeoDatabase) => void;
  /** Called when a reload started by the watcher refused the file (reload() throws instead). */
  readonly onError?: (err: OpenGslbError) => void;
}

/**
 * One GeoIP database kept current: the file's checked contents in a
 * SharedArrayBuffer, replaced only by a newer file that passes the checks.
 */
export class GeoDatabase {
  readonly path: string;
  #current: LoadedGeoDatabase;
  readonly #opts: GeoDatabaseOptions;
  /** Stops watching the file, while it is watched. */
  #unwatch: (() => void) | null = null;
  /** The reload in progress; reloads run one at a time. */
  #pending: Promise<boolean> = Promise.resolve(false);
  #closed = false;

  private constructor(path: string, first: LoadedGeoDatabase, opts: GeoDatabaseOptions) {
    this.path = path;
    this.#current = first;
    this.#opts = opts;
  }

  /**
   * Loads the database (loadGeoDatabase) and, unless `watch` is false,
   * watches its folder for changes to the file (a replacement by rename, as
   * geoipupdate does, included). Throws OPENGSLB_ERR_GEO_DATABASE when the
   * file is refused: at start there is nothing to keep serving.
   */
  static async open(opts: GeoDatabaseOptions = {}): Promise<GeoDatabase> {
    const path = resolve(opts.path ?? BUNDLED_GEOIP_PATH);
    const db = new GeoDatabase(path, await loadGeoDatabase(path), opts);
    if (opts.watch !== false) db.#startWatching();
    return db;
  }

  /** The database in use. */
  get current(): LoadedGeoDatabase {
    return this.#current;
  }

  /**
   * Reads the file again (SIGHUP, or the watcher). Resolves true when a
   * changed, valid file became current (onChange was called), false when the
   * file holds the same bytes as the current database. Rejects with
   * OPENGSLB_ERR_GEO_DATABASE when the file is refused; the current database
   * is kept. Concurrent calls run one after the other.
   */
  reload(): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      let next: LoadedGeoDatabase;
      try {
        next = await loadGeoDatabase(this.path);
      } catch (err) {
        if (err instanceof OpenGslbError) {
          throw new OpenGslbError(err.code, `${err.message} (the database loaded at ${this.#current.info.loadedAt} keeps serving)`, { cause: err.cause });
        }
        throw err;
      }
      if (this.#closed) return false;
      const old = Buffer.from(this.#current.sab);
      if (Buffer.from(next.sab).equals(old)) return false;
      this.#current = next;
      this.#opts.onChange?.(next);
      return true;
    };
    const result = this.#pending.then(run, run);
    this.#pending = result.catch(() => false);
    return result;
  }

  /** Stops watching; a reload in progress finishes but publishes nothing. */
  close(): void {
    this.#closed = true;
    this.#unwatch?.();
    this.#unwatch = null;
  }

  #startWatching(): void {
    this.#unwatch = watchGeoFile(
      this.path,
      this.#opts.debounceMs ?? DEFAULT_GEO_RELOAD_DEBOUNCE_MS,
      () => {
        this.reload().catch((err: unknown) => {
          if (err instanceof OpenGslbError) this.#opts.onError?.(err);
          else this.#opts.onError?.(new OpenGslbError('OPENGSLB_ERR_GEO_DATABASE', `GeoIP database ${this.path}: reload failed: ${String(err)}`, { cause: err }));
        });
      },
      (err) => {
        this.#opts.onError?.(new OpenGslbError('OPENGSLB_ERR_GEO_DATABASE', `GeoIP database ${this.path}: cannot watch its folder any more (${err.code ?? err.message}); reload it with SIGHUP`, { cause: err }));
      },
    );
  }
}

/**
 * Watches the folder of the file at `path` (absolute) for changes to that
 * file, a replacement by rename (as geoipupdate does) and a first creation
 * included, and calls `settled` once no change was seen for `debounceMs`
 * (writers such as cp emit several events). A later error of the watch goes
 * to `failed`. Throws the fs error when the folder cannot be watched (it does
 * not exist). Returns the function that stops watching.
 */
export function watchGeoFile(path: string, debounceMs: number, settled: () => void, failed: (err: NodeJS.ErrnoException) => void): () => void {
  const name = basename(path);
  let timer: NodeJS.Timeout | null = null;
  const watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
    if (filename !== null && filename !== name) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      settled();
    }, debounceMs);
    timer.unref();
  });
  watcher.on('error', failed);
  return () => {
    watcher.close();
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
}
