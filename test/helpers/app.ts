import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import tap, { type Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { DATABASE_KINDS, openTestDatabase, type DatabaseKind, type TestDatabase } from './databases.js';

export type { Test };

/** Configuration as the server would read it from the environment, with cheap bcrypt and fixed secrets. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig(
    {
      JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123456789',
      PASSWORD_PEPPER: 'test-pepper-that-is-long-enough-0123456789',
      ENCRYPTION_KEYS: 'test:dGVzdC1lbmNyeXB0aW9uLWtleS0wMTIzNDU2Nzg5YWI=',
      BCRYPT_COST: '4',
      LOG_LEVEL: 'silent',
      COOKIE_SECURE: 'false',
      DATA_DIR: join(tmpdir(), 'gatehouse-test-unused'),
      // Every test request comes from 127.0.0.1: the abuse limits are raised here and tested
      // on purpose, with their own settings, where they are the subject.
      RATE_LIMIT_LOGIN: '100000/1m',
      RATE_LIMIT_REGISTER: '100000/1m',
      RATE_LIMIT_FORGOT: '100000/1m',
      RATE_LIMIT_RESEND: '100000/1m',
      RATE_LIMIT_REFRESH: '100000/1m',
      RATE_LIMIT_API_KEY: '100000/1m',
      RATE_LIMIT_API_KEY_LOOKUPS: '100000/1m',
      LOGIN_MAX_FAILURES: '1000',
      ...env,
    },
    () => {},
  );
}

export interface TestApp {
  app: FastifyInstance;
  database: TestDatabase;
  config: Config;
}

/**
 * A Gatehouse app on a fresh database of `kind`, torn down with the test. Pass `database` to build a
 * second app on the same database (several instances).
 */
export async function buildTestApp(
  t: Test,
  kind: DatabaseKind,
  options: { env?: Record<string, string>; database?: TestDatabase; logLines?: string[] } = {},
): Promise<TestApp> {
  const config = testConfig(options.env);
  const fresh = options.database ? undefined : await openTestDatabase(kind);
  const database = options.database ?? fresh!;
  const logger = options.logLines
    ? createLogger({ logLevel: 'trace' }, { write: (line: string) => void options.logLines!.push(line) })
    : undefined;
  const app = await buildApp(config, { database, logger });
  // One teardown, in order: the app lets go of the database before the database goes away.
  t.teardown(async () => {
    await app.close();
    await fresh?.drop();
  });
  await app.ready();
  return { app, database, config };
}

/** Runs `fn` once per configured database kind, as a subtest named after it. */
export function eachDatabase(name: string, fn: (t: Test, kind: DatabaseKind) => Promise<void>): void {
  for (const kind of DATABASE_KINDS) {
    void tap.test(`${name} [${kind}]`, (t) => fn(t, kind));
  }
}

/** A throwaway data directory for tests that exercise the on-disk PGlite default. */
export function tempDataDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-data-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
