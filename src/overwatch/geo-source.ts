// Main thread. The GeoIP database the overwatch serves from: opened when some
// domain routes by geolocation (or when the API first asks), from
// overwatch.geolocation.database_path or the bundled DB-IP database, kept as
// one SharedArrayBuffer that every DNS worker reads, reloaded on SIGHUP and
// when the file changes on disk. A file that cannot be read or is not a valid
// .mmdb is refused with its path and the reason, and the database in use
// keeps serving. A config reload reads a new database first (prepare) and
// puts it in use only with the new snapshot (commit), or drops it (abandon).
// When a reload names a file that is refused, the database in use keeps
// serving but its old file is no longer followed: the file the config names
// is watched instead and put in use once it is valid (or at SIGHUP).

import { resolve } from 'node:path';
import type { Config } from '../config/types.ts';
import { BUNDLED_GEOIP_PATH, DEFAULT_GEO_RELOAD_DEBOUNCE_MS, GeoDatabase, watchGeoFile, type LoadedGeoDatabase } from '../geo/database.ts';
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
  /** The configured path (null: the bundled database): the open database came from it, unless #awaiting is set. */
  #path: string | null = null;
  /**
   * Set while the database in use came from another file than the configured
   * one (a reload named a file that was refused): that file is watched (stop
   * ends the watch) and put in use once it is valid.
   */
  #awaiting: { readonly path: string | null; readonly stop: () => void; readonly watching: string } | null = null;
  /** The loads the watch of an awaited file started, one at a time. */
  #awaitLoads: Promise<void> = Promise.resolve();
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
    if (path === this.#path && this.#awaiting === null) {
      // The same file read again (SIGHUP): only in the commit, so a failed reload does not re-read it either.
      return { commit: () => this.#reread(), abandon: () => undefined };
    }
    // A changed path, or the configured file that was refused before (tried again).
    let db: GeoDatabase;
    try {
      db = await this.#load(path);
    } catch (err) {
      const message = (err as Error).message;
      return { commit: async () => this.#await(path, message), abandon: () => undefined };
    }
    return this.#replacing(db, path, `GeoIP database: ${db.path}`);
  }

  /**
   * The configured file at `path` was refused for `reason` (a reload's
   * commit): the database in use keeps serving, its own file is no longer
   * followed (the config names another), and `path` is watched so that the
   * file is put in use once it is valid. Logs and returns the reload's note.
   */
  #await(path: string | null, reason: string): string {
    const inUse = this.#db?.path ?? '(none)';
    // Its file is not followed any more; its contents stay in use.
    this.#db?.close();
    this.#path = path;
    // Awaited already (a SIGHUP that tried it again): the watch goes on.
    if (this.#awaiting?.path !== path) {
      this.#awaiting?.stop();
      const file = resolve(path ?? BUNDLED_GEOIP_PATH);
      try {
        const stop = watchGeoFile(file, DEFAULT_GEO_RELOAD_DEBOUNCE_MS, () => this.#loadAwaited(path), (err) => {
          this.#log.error({ path: file, err: err.code ?? err.message }, 'GeoIP database folder cannot be watched any more; send SIGHUP once the file is in place');
        });
        this.#awaiting = { path, stop, watching: `${file} is watched: it is put in use once it is a valid database (or at SIGHUP)` };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        this.#awaiting = { path, stop: () => undefined, watching: `the folder of ${file} cannot be watched (${code}): send SIGHUP once the file is in place` };
      }
    }
    const { watching } = this.#awaiting as { watching: string };
    this.#log.error({ err: reason, serving: inUse }, `GeoIP database not loaded; the one in use keeps serving, and ${watching}`);
    return `${reason}; the database from ${inUse} keeps serving, and ${watching}`;
  }

  /** The awaited configured file changed on disk: loads it, and puts it in use when it is valid and still the one awaited. */
  #loadAwaited(path: string | null): void {
    const awaiting = this.#awaiting;
    this.#awaitLoads = this.#awaitLoads.then(async () => {
      if (this.#awaiting !== awaiting) return;
      let db: GeoDatabase;
      try {
        db = await this.#load(path);
      } catch (err) {
        this.#log.error({ err: (err as Error).message }, 'GeoIP database change refused; the one in use keeps serving');
        return;
      }
      // A reload may have put another database in use, or named another file, meanwhile.
      if (this.#awaiting !== awaiting) {
        db.close();
        return;
      }
      await this.#replacing(db, path, null).commit();
    });
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
    this.#awaiting?.stop();
    this.#awaiting = null;
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
    this.#awaiting?.stop();
    this.#awaiting = null;
    this.#db = db;
    this.#path = path;
    this.#reader = null;
    const info = db.current.info;
    this.#log.info({ path: db.path, type: info.databaseType, built: info.builtAt, bytes: info.sizeBytes }, 'GeoIP database loaded');
  }
}
