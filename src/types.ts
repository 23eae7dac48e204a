import type { Config } from './config.js';

/*
 * Gatehouse's own types, as the package entry shows them to a host app. Nothing reachable from
 * index.ts may name drizzle-orm or PGlite: their declaration files do not type-check under a
 * host's `skipLibCheck: false`, and a type that names them pulls them into the host's program.
 * Gatehouse's modules add their internal members to GatehouseDatabase and GatehouseServices by
 * declaration merging (db/client.ts, services.ts); the package's declarations never load those
 * modules, so a host sees what is declared here. test/serial/package.test.ts checks it.
 */

/** An open database, PostgreSQL or embedded PGlite: see openDatabase in index.ts. */
export interface GatehouseDatabase {
  driver: 'pglite' | 'postgres';
  close(): Promise<void>;
}

/** `app.gatehouse` as a host app sees it. */
export interface GatehouseServices {
  config: Config;
  database: GatehouseDatabase;
}

/** A user as stored, without the password hash (test/types.test.ts keeps it equal to the table). */
export interface GatehouseUser {
  id: string;
  email: string;
  name: string | null;
  active: boolean;
  emailConfirmedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  lastLoginAt: Date | null;
  lastLoginIp: string | null;
  previousLoginAt: Date | null;
  previousLoginIp: string | null;
  loginCount: number;
}

/** What the hot path needs to authorize a request, held in memory per user. */
export interface UserAccess {
  user: GatehouseUser;
  roles: ReadonlySet<string>;
  permissions: ReadonlySet<string>;
  liveSessions: ReadonlySet<string>;
  /** Whether the user has a confirmed authenticator app (TOTP). */
  mfaEnrolled: boolean;
  /** Whether the user has a passkey: a second factor too where PASSKEY_COUNTS_AS_MFA. */
  hasPasskey: boolean;
  /** When this entry was read from the database (ms since epoch). */
  loadedAt: number;
}
