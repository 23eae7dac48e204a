import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import tap from 'tap';
import { MIGRATIONS_FOLDER, openDatabase, type Database, type OpenDatabaseOptions } from '../../src/db/client.js';

export type DatabaseKind = 'pglite' | 'postgres';

/**
 * PGlite always; PostgreSQL too when TEST_DATABASE_URL names a server (`.ci/run` sets it).
 * TEST_DATABASE_KINDS=postgres runs the PostgreSQL half alone (`.ci/run`, through PgBouncer).
 */
export const DATABASE_KINDS: DatabaseKind[] = process.env.TEST_DATABASE_URL
  ? (['pglite', 'postgres'] as const).filter((kind) => (process.env.TEST_DATABASE_KINDS ?? kind).split(',').includes(kind))
  : ['pglite'];

export interface TestDatabase extends Database {
  /** postgres:// URL of this test's own database (PostgreSQL only), to open more handles on it. */
  url?: string;
}

/**
 * TEST_DATABASE_URL is where the pools connect, possibly a PgBouncer in transaction mode (`.ci/run`
 * runs a file that way); TEST_DATABASE_LISTEN_URL then reaches the same server directly, for what
 * needs a session: creating and dropping databases under a lock, migrations, LISTEN.
 * TEST_DATABASE_PREPARED_STATEMENTS=false turns the pools' prepared statements off, as behind one.
 */
const directServerUrl = () => process.env.TEST_DATABASE_LISTEN_URL ?? process.env.TEST_DATABASE_URL!;

/** Migrations change rarely; a template per migration set spares each test the work. */
const migrationsHash = (() => {
  const hash = createHash('sha256');
  for (const file of readdirSync(MIGRATIONS_FOLDER).filter((f) => f.endsWith('.sql')).sort()) {
    hash.update(file).update(readFileSync(join(MIGRATIONS_FOLDER, file)));
  }
  return hash.digest('hex').slice(0, 12);
})();

/*
 * V8 compiles a WebAssembly module's hot functions again, optimized, on background threads: for
 * PGlite's 9 MB of PostgreSQL that cost a test process about a second of CPU per PGlite it started
 * (about 10% of a typical file's), taken from the other test process on a 2-core machine, and a
 * test process is over before it pays back. Baseline code only, then, for every module this process
 * compiles from now on (the test helpers' PGlites and those the product opens under DATA_DIR alike);
 * the processes the tests start are left as they are.
 */
setFlagsFromString('--liftoff-only');

let pgliteTemplate: Promise<Blob> | undefined;
let pgliteModules: Promise<NonNullable<OpenDatabaseOptions['pglite']>> | undefined;

// Node has WebAssembly; the "ES2023" lib without "DOM" does not declare it.
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<NonNullable<NonNullable<OpenDatabaseOptions['pglite']>['pgliteWasmModule']>> };

/** PGlite's WebAssembly compiled once per test process instead of once per database. */
function precompiledPglite(): Promise<NonNullable<OpenDatabaseOptions['pglite']>> {
  pgliteModules ??= (async () => {
    const dist = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
    const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
      WebAssembly.compile(readFileSync(join(dist, 'pglite.wasm'))),
      WebAssembly.compile(readFileSync(join(dist, 'initdb.wasm'))),
    ]);
    // A test database is thrown away: it need not survive a power cut.
    return { pgliteWasmModule, initdbWasmModule, fsBundle: new Blob([readFileSync(join(dist, 'pglite.data'))]), relaxedDurability: true };
  })();
  return pgliteModules;
}

/** A migrated PGlite data directory, made once per migration set and shared by test processes. */
function pgliteTemplateDump(): Promise<Blob> {
  pgliteTemplate ??= (async () => {
    const file = join(tmpdir(), `gatehouse-test-pglite-${migrationsHash}.tar`);
    if (!existsSync(file)) {
      const client = await PGlite.create();
      await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
      const dump = await client.dumpDataDir('none');
      await client.close();
      // Write then rename: test files running in parallel never read a half-written template.
      const partial = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
      writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
      renameSync(partial, file);
    }
    return new Blob([readFileSync(file)]);
  })();
  return pgliteTemplate;
}

/** A migrated PGlite folder on disk, loaded from the template: cheaper than creating and migrating one. */
export async function migratedPgliteFolder(dataDir: string): Promise<void> {
  const database = await openDatabase({ dataDir, pgliteLoadDataDir: await pgliteTemplateDump(), pglite: await precompiledPglite() });
  await database.close();
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

const TEMPLATE_LOCK = 4_718_201_338;

/**
 * Loading a PGlite data directory costs seconds; emptying its tables costs milliseconds. So each
 * test process keeps the PGlites it loaded and hands them out emptied, each to one test at a time:
 * a test that needs a database while every kept one is in use gets a new one, kept in its turn
 * once that test is done. A test that closed its database gets a new one next time.
 */
interface Kept {
  database: Database;
  inUse: boolean;
  closed: boolean;
}
const kept = new Set<Kept>();
let keptTeardown = false;

async function freshPglite(): Promise<Database> {
  return openDatabase({ pgliteLoadDataDir: await pgliteTemplateDump(), pglite: await precompiledPglite() });
}

async function openPglite(): Promise<TestDatabase & { drop(): Promise<void> }> {
  let entry = [...kept].find((candidate) => !candidate.inUse && !candidate.closed);
  if (entry) {
    entry.inUse = true;
    const { rows } = (await entry.database.db.execute(
      sql`select string_agg(quote_ident(tablename), ', ') as tables from pg_tables where schemaname = 'public'`,
    )) as unknown as { rows: { tables: string }[] };
    await entry.database.db.execute(sql.raw(`truncate ${rows[0]!.tables} restart identity cascade`));
  } else {
    if (!keptTeardown) {
      keptTeardown = true;
      // The kept databases would hold the test process open: close them once every test is done.
      tap.teardown(async () => {
        for (const left of kept) {
          left.closed = true;
          await left.database.close();
        }
      });
    }
    entry = { database: await freshPglite(), inUse: true, closed: false };
    kept.add(entry);
  }
  const mine = entry;
  return {
    ...mine.database,
    close: async () => {
      mine.closed = true;
      kept.delete(mine);
      await mine.database.close();
    },
    drop: async () => {
      mine.inUse = false;
    },
  };
}

/** A new database copied from the migrated template (made first if missing); returns its name. */
async function createFromTemplate(): Promise<string> {
  const serverUrl = directServerUrl();
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const template = `gh_tpl_${migrationsHash}`;
  const name = `gh_t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  try {
    await admin`select pg_advisory_lock(${TEMPLATE_LOCK})`;
    try {
      const [exists] = await admin`select 1 from pg_database where datname = ${template}`;
      if (!exists) {
        const building = `${template}_build_${randomBytes(3).toString('hex')}`;
        await admin.unsafe(`create database "${building}"`);
        const migrated = await openDatabase({ databaseUrl: withDatabase(serverUrl, building), poolSize: 1 });
        await migrated.close();
        await admin.unsafe(`alter database "${building}" rename to "${template}"`);
      }
      await admin.unsafe(`create database "${name}" template "${template}"`);
    } finally {
      await admin`select pg_advisory_unlock(${TEMPLATE_LOCK})`;
    }
  } finally {
    await admin.end();
  }
  return name;
}

async function dropDatabase(name: string): Promise<void> {
  const dropper = postgres(directServerUrl(), { max: 1, onnotice: () => {} });
  try {
    await dropper.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await dropper.end();
  }
}

/**
 * Copying the template and dropping a copy are the server's work, and take longer than many a
 * test: so the next test's database is copied while this one runs, and a finished test's database
 * is dropped while the next one runs. Every test still gets a database of its own that no test used
 * before; the process waits for the last drops before it ends.
 */
let spare: Promise<string> | undefined;
let taken = 0;
const dropping = new Set<Promise<void>>();
const dropFailures: string[] = [];
let cleanupRegistered = false;

function nextPostgresDatabase(): Promise<string> {
  if (!cleanupRegistered) {
    cleanupRegistered = true;
    tap.teardown(async () => {
      const left = spare;
      spare = undefined;
      if (left) await left.then(dropLater, () => {});
      await Promise.all(dropping);
      if (dropFailures.length) throw new Error(`test databases not dropped:\n${dropFailures.join('\n')}`);
    });
  }
  const next = spare ?? createFromTemplate();
  spare = undefined;
  // A file that asked for one database is likely to ask for more (the first may be its only one).
  if (++taken > 1) {
    spare = createFromTemplate();
    // A failure shows when a test takes this one; until then it must not be an unhandled rejection.
    spare.catch(() => {});
  }
  return next;
}

function dropLater(name: string): void {
  const drop: Promise<void> = dropDatabase(name)
    .catch((error: unknown) => void dropFailures.push(`${name}: ${String(error)}`))
    .finally(() => dropping.delete(drop));
  dropping.add(drop);
}

/** A fresh database of the given kind, migrated, owned by the caller (close it; PostgreSQL: drop it). */
export async function openTestDatabase(kind: DatabaseKind): Promise<TestDatabase & { drop(): Promise<void> }> {
  if (kind === 'pglite') return openPglite();
  const serverUrl = directServerUrl();
  const name = await nextPostgresDatabase();
  const url = withDatabase(process.env.TEST_DATABASE_URL!, name);
  const database = await openDatabase({
    databaseUrl: url,
    listenUrl: withDatabase(serverUrl, name),
    preparedStatements: process.env.TEST_DATABASE_PREPARED_STATEMENTS !== 'false',
    poolSize: 5,
  });
  return {
    ...database,
    url,
    async drop() {
      await database.close();
      dropLater(name);
    },
  };
}
