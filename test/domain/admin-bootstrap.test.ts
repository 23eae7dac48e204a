import { eq } from 'drizzle-orm';
import { users } from '../../src/db/schema.js';
import { buildTestApp, eachDatabase, type Test } from '../helpers/app.js';
import type { DatabaseKind } from '../helpers/databases.js';
import { PASSWORD, bearer, login, post, registerUser, uniqueEmail } from '../helpers/users.js';

const OPERATOR_PASSWORD = 'the operator chose this one';

/** A database where `email` was registered (with `password`) before anyone set ADMIN_EMAIL. */
async function registeredEarlier(t: Test, kind: DatabaseKind, email: string, password: string) {
  const first = await buildTestApp(t, kind);
  await registerUser(first.app, { email, password });
  return first.database;
}

function logged(lines: string[]): { level: number; msg: string; email?: string }[] {
  return lines.map((line) => JSON.parse(line) as { level: number; msg: string; email?: string });
}

async function rolesOf(app: Parameters<typeof login>[0], email: string, password: string): Promise<string[]> {
  const me = await app.inject({ url: '/auth/me', headers: bearer((await login(app, email, password)).accessToken) });
  return (me.json() as { roles: string[] }).roles;
}

eachDatabase('ADMIN_EMAIL registered earlier by someone else is not made an admin, and the start logs why', async (t, kind) => {
  const email = uniqueEmail('squatter');
  const database = await registeredEarlier(t, kind, email, PASSWORD);
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, {
    database,
    logLines,
    env: { ADMIN_EMAIL: email.toUpperCase(), ADMIN_PASSWORD: OPERATOR_PASSWORD },
  });

  t.same(await rolesOf(app, email, PASSWORD), ['user'], 'the account that claimed the address holds no admin role');
  t.equal((await post(app, '/auth/login', { email, password: OPERATOR_PASSWORD })).statusCode, 401, 'ADMIN_PASSWORD does not open it either');
  const errors = logged(logLines).filter((line) => line.level >= 50);
  t.equal(errors.length, 1, 'one error line');
  t.equal(errors[0]?.email, email);
  t.match(errors[0]?.msg, /ADMIN_EMAIL.*password is not ADMIN_PASSWORD.*not made an admin/);
  t.notOk(logLines.join('\n').includes(OPERATOR_PASSWORD), 'the password is not logged');
});

eachDatabase('ADMIN_EMAIL of an existing account whose password is ADMIN_PASSWORD is promoted at start', async (t, kind) => {
  const email = uniqueEmail('owner');
  const database = await registeredEarlier(t, kind, email, OPERATOR_PASSWORD);
  const logLines: string[] = [];
  const env = { ADMIN_EMAIL: email, ADMIN_PASSWORD: OPERATOR_PASSWORD, REQUIRE_EMAIL_CONFIRMATION: 'true' };
  const { app } = await buildTestApp(t, kind, { database, logLines, env });

  t.same((await rolesOf(app, email, OPERATOR_PASSWORD)).sort(), ['admin', 'user'], 'logs in though the address was never confirmed by mail');
  t.ok(logged(logLines).some((line) => /promoted ADMIN_EMAIL/.test(line.msg)));
  t.notOk(logged(logLines).some((line) => line.level >= 50), 'no error logged');
});

eachDatabase('a fresh ADMIN_EMAIL is created as an admin who can log in with ADMIN_PASSWORD', async (t, kind) => {
  const email = uniqueEmail('root');
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines, env: { ADMIN_EMAIL: email, ADMIN_PASSWORD: OPERATOR_PASSWORD, REQUIRE_EMAIL_CONFIRMATION: 'true' } });

  t.same((await rolesOf(app, email, OPERATOR_PASSWORD)).sort(), ['admin', 'user'], 'logs in with REQUIRE_EMAIL_CONFIRMATION: the operator named the address');
  t.ok(logged(logLines).some((line) => /created admin from ADMIN_EMAIL/.test(line.msg)));
});

eachDatabase('two instances starting at once with a fresh ADMIN_EMAIL make one admin account between them', async (t, kind) => {
  const email = uniqueEmail('root');
  const env = { ADMIN_EMAIL: email, ADMIN_PASSWORD: OPERATOR_PASSWORD };
  const first = await buildTestApp(t, kind);
  const logLines: string[] = [];
  const [a, b] = await Promise.all([
    buildTestApp(t, kind, { database: first.database, logLines, env }),
    buildTestApp(t, kind, { database: first.database, logLines, env }),
  ]);

  t.equal((await a.app.gatehouse.db.select().from(users).where(eq(users.email, email))).length, 1, 'one account');
  t.same((await rolesOf(a.app, email, OPERATOR_PASSWORD)).sort(), ['admin', 'user']);
  t.same((await rolesOf(b.app, email, OPERATOR_PASSWORD)).sort(), ['admin', 'user']);
  t.notOk(logged(logLines).some((line) => line.level >= 50), 'neither instance logged an error');
});
