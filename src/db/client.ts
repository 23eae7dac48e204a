import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite, PGliteOptions } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { sharedListeners, type ListenEvents, type NotificationHandler } from './listener.js';
import { lockFolder } from './pglite-lock.js';
import { boundQueries } from './query-timeout.js';
import * as schema from './schema.js';
import { describeTarget, whenReachable, type StartupLog } from './startup.js';
import { TEXT_ARRAY } from './text-array.js';

/** One handle type for both drivers, so nothing above this file cares which one is behind. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type { ListenEvents, NotificationHandler };

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /**
   * LISTEN on a channel. `events` hears when the listening connection is lost (`onDown`) and when
   * LISTEN is back (`onUp`): notifications sent in between are missed. PGlite never loses it.
   */
  listen(channel: string, onMessage: NotificationHandler, events?: ListenEvents): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// The public GatehouseDatabase is this interface, seen from inside the package: see types.ts.
declare module '../types.js' {
  interface GatehouseDatabase extends Database {}
}

/**
 * The package's `migrations/` folder: the nearest one above this file. Not a fixed relative path,
 * because this file runs from src/db, dist/db, a bench build (build/bench/src/db) or node_modules.
 */
export const MIGRATIONS_FOLDER = findMigrationsFolder(dirname(fileURLToPath(import.meta.url)));

function findMigrationsFolder(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    // Not found: the package root's folder, so the migrator's error names the expected place.
    if (dirname(dir) === dir) return join(from, '..', '..', 'migrations');
  }
}

// Any fixed number works; it only has to be the same for every Gatehouse instance.
const MIGRATION_LOCK_KEY = 4_718_201_337;

export interface OpenDatabaseOptions {
  databaseUrl?: string;
  dataDir?: string;
  /** A PGlite data directory dump to start from (tests use a migrated template). */
  pgliteLoadDataDir?: Blob | File;
  /** More PGlite options, e.g. precompiled WebAssembly modules shared by many databases in one process. */
  pglite?: Pick<PGliteOptions, 'pgliteWasmModule' | 'initdbWasmModule' | 'fsBundle' | 'relaxedDurability'>;
  /** Pool size for postgres.js. */
  poolSize?: number;
  /**
   * A direct connection to the same database, for LISTEN and migrations (a session advisory lock),
   * when `databaseUrl` goes through a pooler in transaction mode. Default: `databaseUrl`.
   */
  listenUrl?: string;
  /**
   * Named prepared statements on the pool's connections (default true, faster): false behind a
   * pooler in transaction mode, which may run a statement's next execution on another server.
   */
  preparedStatements?: boolean;
  /** Longest wait for one query, a pool connection included, in seconds. Default 5. */
  queryTimeout?: number;
  /** How long opening waits for a database out of reach, in seconds. Default 0: one attempt. */
  startupTimeout?: number;
  /** Where the wait at opening reports each failed attempt and its cause. */
  log?: StartupLog;
}

/** The database the configuration names: PostgreSQL at DATABASE_URL, else PGlite under DATA_DIR. */
export function openConfiguredDatabase(
  config: Pick<Config, 'databaseUrl' | 'databaseListenUrl' | 'databasePoolSize' | 'databasePreparedStatements' | 'dataDir' | 'databaseQueryTimeout' | 'databaseStartupTimeout'>,
  log?: StartupLog,
): Promise<Database> {
  return openDatabase({
    databaseUrl: config.databaseUrl,
    listenUrl: config.databaseListenUrl,
    poolSize: config.databasePoolSize,
    preparedStatements: config.databasePreparedStatements,
    dataDir: join(config.dataDir, 'pglite'),
    queryTimeout: config.databaseQueryTimeout,
    startupTimeout: config.databaseStartupTimeout,
    log,
  });
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  return options.databaseUrl ? openPostgres(options.databaseUrl, options.poolSize ?? 10, options) : openPglite(options);
}

async function openPglite({ dataDir, pgliteLoadDataDir, pglite }: OpenDatabaseOptions): Promise<Database> {
  // PGlite does not create missing parent folders.
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  // One process per folder: a second one would silently overwrite what the first acknowledged.
  const lock = dataDir ? lockFolder(dataDir) : undefined;
  let client: PGlite;
  let db: Db;
  try {
    // Loaded here, not at the top: a deployment on PostgreSQL never pays PGlite's memory (about 33 MB).
    const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
      import('@electric-sql/pglite'),
      import('drizzle-orm/pglite'),
      import('drizzle-orm/pglite/migrator'),
    ]);
    client = await PGlite.create(dataDir, { ...pglite, ...(pgliteLoadDataDir ? { loadDataDir: pgliteLoadDataDir } : {}) });
    db = drizzlePglite(client, { schema }) as unknown as Db;
    await migratePglite(db as never, { migrationsFolder: MIGRATIONS_FOLDER });
  } catch (err) {
    lock?.release();
    throw err;
  }
  return {
    db,
    driver: 'pglite',
    async listen(channel, onMessage) {
      // In-process database: no connection to lose, so no reconnect to report.
      const unlisten = await client.listen(channel, onMessage);
      return async () => {
        if (!client.closed) await unlisten();
      };
    },
    async close() {
      if (!client.closed) await client.close();
      lock?.release();
    },
  };
}

/** A pool connection unused this long is closed: the next query opens a fresh one. */
const IDLE_TIMEOUT_SECONDS = 30;

/**
 * The wait before reconnecting after a failed attempt, in seconds. postgres.js grows it to 20 s,
 * which held each query of an outage that long and kept Gatehouse failing for as long after the
 * database came back; half a second at most (jittered, so instances do not knock in step) keeps both short.
 */
function reconnectDelaySeconds(failures: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** failures, 0.5);
}

/** postgres.js options of every Gatehouse connection to PostgreSQL. */
function connectionOptions(queryTimeout: number) {
  return {
    onnotice: () => {},
    // A connection that cannot be made within a query's time is of no use to that query.
    connect_timeout: queryTimeout,
    idle_timeout: IDLE_TIMEOUT_SECONDS,
    backoff: reconnectDelaySeconds,
    // See text-array.ts: the query this runs on each new connection could crash the process.
    fetch_types: false,
    types: { textArray: TEXT_ARRAY },
  } satisfies postgres.Options<{ textArray: typeof TEXT_ARRAY }>;
}

async function openPostgres(
  url: string,
  poolSize: number,
  { listenUrl = url, preparedStatements = true, queryTimeout = 5, startupTimeout = 0, log }: OpenDatabaseOptions,
): Promise<Database> {
  const options = connectionOptions(queryTimeout);
  // Migrate on a dedicated single connection, under an advisory lock so that several instances
  // starting at once do not race each other through the same migration. The direct connection:
  // through a pooler in transaction mode, the unlock could reach another server than the lock.
  // Started with the database down, wait for it; each attempt on a client of its own.
  await whenReachable(
    async () => {
      const migrationClient = postgres(listenUrl, { ...options, max: 1 });
      try {
        const migrationDb = drizzlePostgres(migrationClient);
        await migrationDb.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
        try {
          await migratePostgres(migrationDb, { migrationsFolder: MIGRATIONS_FOLDER });
        } finally {
          await migrationDb.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
        }
      } finally {
        await migrationClient.end({ timeout: 1 });
      }
    },
    { timeoutSeconds: startupTimeout, target: describeTarget(listenUrl), log },
  );

  const client = postgres(url, { ...options, max: poolSize, prepare: preparedStatements });
  // Not the pool's own listen: that reconnects with the pool's backoff (up to 20 s) and says
  // nothing when the connection drops, so the cache could not stop trusting itself in time.
  const listeners = sharedListeners(listenUrl);
  const db = drizzlePostgres(boundQueries(client, queryTimeout * 1000), { schema }) as unknown as Db;
  return {
    db,
    driver: 'postgres',
    listen: (channel, onMessage, events) => listeners.listen(channel, onMessage, events),
    async close() {
      await listeners.close();
      await client.end({ timeout: 5 });
    },
  };
}
