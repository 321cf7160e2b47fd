// Main thread. The GeoIP database the overwatch serves from: opened when some
// domain routes by geolocation (or when the API first asks), from
// overwatch.geolocation.database_path or the bundled DB-IP database, kept as
// one SharedArrayBuffer that every DNS worker reads, reloaded on SIGHUP and
// when the file changes on disk. A file that cannot be read or is not a valid
// .mmdb is refused with its path and the reason, and the database in use
// keeps serving. A config reload reads a new database first (prepare) and
// puts it in use only with the new snapshot (commit), or drops it (abandon).

import type { Config } from '../config/types.ts';
import { GeoDatabase, type LoadedGeoDatabase } from '../geo/database.ts';
import { GeoIpReader } from '../geo/lookup.ts';
import type { Logger } from '../log/logger.ts';

/** Does some domain of `config` route by geolocation? */
export function usesGeolocation(config: Config): boolean {
  return config.domains.some((d) => d.routingAlgorithm === 'geolocation');
}

/** A database change read by GeoSource.prepare(): commit() puts it in use and resolves with a note for the reload's result (or null); abandon() drops it. */
export interface PreparedGeo {
  commit(): Promise<string | null>;
  abandon(): void;
}

const NOTHING_PREPARED: PreparedGeo = { commit: async () => null, abandon: () => undefined };

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
   * Follows `config` in one step (start-up): prepare(config), then commit().
   * At start (nothing open yet) a refused file throws OPENGSLB_ERR_GEO_DATABASE.
   * Returns a note for the reload's result, or null.
   */
  async apply(config: Config): Promise<string | null> {
    return (await this.prepare(config)).commit();
  }

  /**
   * Reads what `config` asks for without making it current: opens the
   * database when some domain starts routing by geolocation, or the file of a
   * changed database_path. A reload calls this before it compiles and commits
   * only once the snapshot is compiled, so a reload that fails later leaves
   * the database in use (and the workers' copy) as it was: a reload takes
   * effect whole or not at all. Rejects with OPENGSLB_ERR_GEO_DATABASE when
   * nothing is open yet and the file is refused; a refused file for a changed
   * path is logged and the commit's note says why (the database in use keeps
   * serving). The caller must commit() or abandon() what it gets.
   */
  async prepare(config: Config): Promise<PreparedGeo> {
    const path = config.geolocation.databasePath;
    if (this.#db === null) {
      if (!usesGeolocation(config)) return NOTHING_PREPARED;
      // reader() may have opened one meanwhile (the API's geo test): the commit replaces it.
      return this.#replacing(await this.#load(path), path, null);
    }
    if (path === this.#path) {
      // The same file read again (SIGHUP): only in the commit, so a failed reload does not re-read it either.
      return { commit: () => this.#reread(), abandon: () => undefined };
    }
    let db: GeoDatabase;
    try {
      db = await this.#load(path);
    } catch (err) {
      const message = (err as Error).message;
      return {
        commit: async () => {
          this.#log.error({ err: message }, 'GeoIP database not reloaded; the one in use keeps serving');
          return message;
        },
        abandon: () => undefined,
      };
    }
    return this.#replacing(db, path, `GeoIP database: ${db.path}`);
  }

  /** A prepared change to `db`, opened from `path`: commit() puts it in use (and hands it to the workers) and closes the one it replaces, resolving with `note`; abandon() closes it. */
  #replacing(db: GeoDatabase, path: string | null, note: string | null): PreparedGeo {
    return {
      commit: async () => {
        const old = this.#db;
        this.#install(db, path);
        old?.close();
        this.onChange?.(db.current.sab);
        return note;
      },
      abandon: () => db.close(),
    };
  }

  /** Reads the file in use again; a refused file is logged and its reason returned, and the database in use keeps serving. */
  async #reread(): Promise<string | null> {
    const db = this.#db;
    if (db === null) return null;
    try {
      await db.reload();
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
      const path = config.geolocation.databasePath;
      this.#opening ??= this.#load(path)
        .then((db) => {
          // A reload may have committed a database while this one was
          // opening: that one is in use and the workers have it, so this one
          // goes (installing it would drop the committed one, still watching
          // its folder, and hand the workers a database the config no longer names).
          if (this.#db !== null) {
            db.close();
            return;
          }
          this.#install(db, path);
          // The workers get it too: a reload that later adds a geolocation domain
          // finds this database open and unchanged (apply() publishes nothing
          // then), and the workers would place no client by country or continent.
          this.onChange?.(db.current.sab);
        })
        .finally(() => (this.#opening = null));
      await this.#opening;
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

  /** Opens (and starts watching) the database at `path`, not yet in use: its changes on disk are handed on only once it is. */
  async #load(path: string | null): Promise<GeoDatabase> {
    const db = await GeoDatabase.open({
      path,
      onChange: (next) => {
        if (this.#db !== db) return;
        this.#reader = null;
        this.#log.info({ path: db.path, built: next.info.builtAt }, 'GeoIP database reloaded');
        this.onChange?.(next.sab);
      },
      onError: (err) => this.#log.error({ err: err.message }, 'GeoIP database change refused; the one in use keeps serving'),
    });
    return db;
  }

  /** Makes `db` (opened from `path`) the database in use. */
  #install(db: GeoDatabase, path: string | null): void {
    this.#db = db;
    this.#path = path;
    this.#reader = null;
    const info = db.current.info;
    this.#log.info({ path: db.path, type: info.databaseType, built: info.builtAt, bytes: info.sizeBytes }, 'GeoIP database loaded');
  }
}
