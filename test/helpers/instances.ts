import type { FastifyInstance } from 'fastify';
import { openDatabase } from '../../src/db/client.js';
import { ensureAdmin } from '../../src/domain/admin-bootstrap.js';
import { buildTestApp, type Test } from './app.js';
import { openTestDatabase, type DatabaseKind } from './databases.js';
import { PASSWORD, bearer, login } from './users.js';

/**
 * Two Gatehouse instances on one database, with a signed-in admin of instance A. On PostgreSQL
 * each has its own connections, as two processes would; on PGlite they share the one in-process
 * database and its LISTEN/NOTIFY.
 */
export async function twoInstances(
  t: Test,
  kind: DatabaseKind,
): Promise<{ a: FastifyInstance; b: FastifyInstance; admin: { authorization: string }; url?: string }> {
  const shared = await openTestDatabase(kind);
  const second = shared.url ? await openDatabase({ databaseUrl: shared.url, poolSize: 3 }) : undefined;
  const a = await buildTestApp(t, kind, { database: shared });
  const b = await buildTestApp(t, kind, { database: second ? { ...second, url: shared.url } : shared });
  t.teardown(async () => {
    await a.app.close();
    await b.app.close();
    await second?.close();
    await shared.drop();
  });
  const adminEmail = 'root@example.com';
  await ensureAdmin(a.app.gatehouse.db, { email: adminEmail, password: PASSWORD, passwords: a.app.gatehouse.passwords });
  const admin = bearer((await login(a.app, adminEmail)).accessToken);
  return { a: a.app, b: b.app, admin, url: shared.url };
}
