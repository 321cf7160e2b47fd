// Main thread. The GeoIP database the overwatch serves from: opened when some
// domain routes by geolocation (or when the API first asks), from
// overwatch.geolocation.database_path or the bundled DB-IP database, kept as
// one SharedArrayBuffer that every DNS worker reads, reloaded on SIGHUP and
// when the file changes on disk. A file that cannot be read or is not a valid
// .mmdb is refused with its path and the reason, and the database in use
// keeps serving.

import type { Config } from '../config/types.ts';
import { GeoDatabase, type LoadedGeoDatabase } from '../geo/database.ts';
import { GeoIpReader } from '../geo/lookup.ts';
import type { Logger } from '../log/logger.ts';

/** Does some domain of `config` route by geolocation? */
export function usesGeolocation(config: Config): boolean {
  return config.domains.some((d) => d.routingAlgorithm === 'geolocation');
}

export class GeoSource {
  readonly #log: Logger;
  #db: GeoDatabase | null = null;
  /** The configured path (null: the bundled database) the open database came from. */
  #path: string | null = null;
  #reader: GeoIpReader | null = null;
  /** The open reader() started, while it runs. */
  #opening: Promise<void> | null = null;
  /** Called with every new database after it replaced the one in use (the overwatch hands it to the workers). */
  onChange: ((sab: SharedArrayBuffer) => void) | null = null;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** The database in use, or null while none is open. */
  get current(): LoadedGeoDatabase | null {
    return this.#db?.current ?? null;
  }

  /** The database's bytes every worker reads, or null. */
  get buffer(): SharedArrayBuffer | null {
    return this.#db?.current.sab ?? null;
  }

  /**
   * Follows `config`: opens the database when some domain routes by
   * geolocation, switches to another file when database_path changed, and
   * re-reads the file otherwise (SIGHUP). At start (nothing open yet) a
   * refused file throws OPENGSLB_ERR_GEO_DATABASE; later it is logged and the
   * database in use keeps serving. Returns a note for the reload's result, or null.
   */
  async apply(config: Config): Promise<string | null> {
    const path = config.geolocation.databasePath;
    if (this.#db === null) {
      if (!usesGeolocation(config)) return null;
      await this.#open(path);
      const sab = this.buffer;
      if (sab !== null) this.onChange?.(sab);
      return null;
    }
    try {
      if (path !== this.#path) {
        const old = this.#db;
        await this.#open(path);
        old.close();
        this.onChange?.(this.#db.current.sab);
        return `GeoIP database: ${this.#db.path}`;
      }
      await this.#db.reload();
      return null;
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'GeoIP database not reloaded; the one in use keeps serving');
      return (err as Error).message;
    }
  }

  /** A reader of the database in use for the main thread (the API's geo test), opening the database first when needed. */
  async reader(config: Config): Promise<GeoIpReader> {
    if (this.#db === null) {
      // One open for concurrent questions (each open would watch the folder, and all but the last watcher would leak).
      this.#opening ??= this.#open(config.geolocation.databasePath).finally(() => (this.#opening = null));
      await this.#opening;
      // The workers get it too: a reload that later adds a geolocation domain
      // finds this database open and unchanged (apply() publishes nothing
      // then), and the workers would place no client by country or continent.
      const sab = this.buffer;
      if (sab !== null) this.onChange?.(sab);
    }
    return this.readerNow() as GeoIpReader;
  }

  /** A reader of the database in use, or null while none is open (explain, which cannot wait). */
  readerNow(): GeoIpReader | null {
    if (this.#db === null) return null;
    this.#reader ??= new GeoIpReader(this.#db.current.sab);
    return this.#reader;
  }

  /** Stops watching the file. */
  close(): void {
    this.#db?.close();
    this.#db = null;
  }

  async #open(path: string | null): Promise<void> {
    const db = await GeoDatabase.open({
      path,
      onChange: (next) => {
        this.#reader = null;
        this.#log.info({ path: db.path, built: next.info.builtAt }, 'GeoIP database reloaded');
        this.onChange?.(next.sab);
      },
      onError: (err) => this.#log.error({ err: err.message }, 'GeoIP database change refused; the one in use keeps serving'),
    });
    this.#db = db;
    this.#path = path;
    this.#reader = null;
    const info = db.current.info;
    this.#log.info({ path: db.path, type: info.databaseType, built: info.builtAt, bytes: info.sizeBytes }, 'GeoIP database loaded');
  }
}
