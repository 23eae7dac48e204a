import { eq, inArray } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';
import { loginAttempts, refreshTokens, sessions, userTokens, users } from '../../src/db/schema.js';
import { purgeEndedRecords } from '../../src/domain/retention.js';
import { hashToken, newOpaqueToken } from '../../src/domain/tokens.js';
import { buildTestApp, eachDatabase, type Test } from '../helpers/app.js';
import { openTestDatabase, type DatabaseKind } from '../helpers/databases.js';
import { claimsOf } from '../helpers/jwt.js';
import { assertProblem } from '../helpers/problems.js';
import { bearer, post, registerUser } from '../helpers/users.js';

const DAY = 86_400_000;
/** Every time below is relative to this fixed instant, never to the clock. */
const NOW = new Date('2026-06-01T12:00:00Z');
const daysAgo = (days: number) => new Date(NOW.getTime() - days * DAY);
const CUTOFF = daysAgo(30);

async function setup(t: Test, kind: DatabaseKind): Promise<{ db: Db; userId: string }> {
  const database = await openTestDatabase(kind);
  t.teardown(() => database.drop());
  const [user] = await database.db.insert(users).values({ email: 'retention@example.com', passwordHash: 'unused' }).returning();
  return { db: database.db, userId: user!.id };
}

async function addSession(db: Db, userId: string, label: string, times: { expires: number; revoked?: number }): Promise<[string, string]> {
  const [row] = await db
    .insert(sessions)
    .values({
      userId,
      userAgent: label,
      createdAt: daysAgo(100),
      lastUsedAt: daysAgo(100),
      expiresAt: daysAgo(times.expires),
      revokedAt: times.revoked === undefined ? null : daysAgo(times.revoked),
      revokedReason: times.revoked === undefined ? null : 'logout',
    })
    .returning({ id: sessions.id });
  return [label, row!.id];
}

const labelsOf = async (db: Db) => (await db.select({ label: sessions.userAgent }).from(sessions)).map((r) => r.label).sort();

eachDatabase('a purge deletes sessions that ended before the cutoff, and keeps live and recently ended ones', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const made = Object.fromEntries([
    await addSession(db, userId, 'live', { expires: -5 }),
    await addSession(db, userId, 'expired yesterday', { expires: 1 }),
    await addSession(db, userId, 'revoked yesterday', { expires: -5, revoked: 1 }),
    await addSession(db, userId, 'expired long ago', { expires: 31 }),
    await addSession(db, userId, 'revoked long ago', { expires: -5, revoked: 31 }),
    await addSession(db, userId, 'revoked long ago, expired later', { expires: 10, revoked: 40 }),
  ]);
  // A token row from before tokens named their session goes with its session.
  await db.insert(refreshTokens).values([
    { sessionId: made['revoked long ago']!, tokenHash: hashToken(newOpaqueToken()) },
    { sessionId: made['live']!, tokenHash: hashToken(newOpaqueToken()) },
  ]);

  const counts = await purgeEndedRecords(db, CUTOFF);
  t.same(counts, { sessions: 3, userTokens: 0, loginAttempts: 0 });
  t.same(await labelsOf(db), ['expired yesterday', 'live', 'revoked yesterday'].sort());
  t.same(
    (await db.select({ sessionId: refreshTokens.sessionId }).from(refreshTokens)).map((r) => r.sessionId),
    [made['live']],
    "the purged session's token row went with it",
  );
  t.same(await purgeEndedRecords(db, CUTOFF), { sessions: 0, userTokens: 0, loginAttempts: 0 }, 'a second purge finds nothing');
});

eachDatabase('a purge walks the table in batches until nothing before the cutoff is left', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  for (let i = 0; i < 7; i++) await addSession(db, userId, `old ${i}`, { expires: 40 + i });
  for (let i = 0; i < 3; i++) await addSession(db, userId, `new ${i}`, { expires: -1 });
  // Batches of 2: three full batches and one of one, past the rows kept in between.
  t.same(await purgeEndedRecords(db, CUTOFF, 2), { sessions: 7, userTokens: 0, loginAttempts: 0 });
  t.same(await labelsOf(db), ['new 0', 'new 1', 'new 2']);
});

eachDatabase('a purge deletes mailed tokens that expired before the cutoff, used or not', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const token = (purpose: 'confirm_email' | 'reset_password', expires: number, used?: number) => ({
    userId,
    purpose,
    tokenHash: hashToken(newOpaqueToken()),
    createdAt: daysAgo(expires + 1),
    expiresAt: daysAgo(expires),
    usedAt: used === undefined ? null : daysAgo(used),
  });
  const rows = await db
    .insert(userTokens)
    .values([token('confirm_email', 31), token('reset_password', 45, 45), token('reset_password', 2), token('confirm_email', -1, 0)])
    .returning({ id: userTokens.id });
  t.same(await purgeEndedRecords(db, CUTOFF), { sessions: 0, userTokens: 2, loginAttempts: 0 });
  const left = await db.select({ id: userTokens.id }).from(userTokens).where(inArray(userTokens.id, rows.map((r) => r.id)));
  t.same(left.map((r) => r.id).sort(), [rows[2]!.id, rows[3]!.id].sort(), 'the recent ones stay, used or not');
});

eachDatabase('a purge deletes failed-login counters quiet since the cutoff, and keeps recent failures and lockouts', async (t, kind) => {
  const { db } = await setup(t, kind);
  await db.insert(loginAttempts).values([
    { email: 'quiet@example.com', attempts: 3, windowStartedAt: daysAgo(31) },
    { email: 'locked-then-quiet@example.com', attempts: 5, windowStartedAt: daysAgo(40), lockedUntil: daysAgo(39), lockouts: 2 },
    { email: 'recent@example.com', attempts: 2, windowStartedAt: daysAgo(1) },
    // An escalated lockout still running past the cutoff keeps its counter (and so its escalation).
    { email: 'still-locked@example.com', attempts: 5, windowStartedAt: daysAgo(35), lockedUntil: daysAgo(-1), lockouts: 6 },
  ]);
  t.same(await purgeEndedRecords(db, CUTOFF), { sessions: 0, userTokens: 0, loginAttempts: 2 });
  t.same((await db.select({ email: loginAttempts.email }).from(loginAttempts)).map((r) => r.email).sort(), ['recent@example.com', 'still-locked@example.com']);
});

eachDatabase("the app's purge keeps RETENTION_PERIOD and logs what it purged", async (t, kind) => {
  const logLines: string[] = [];
  const { app, database } = await buildTestApp(t, kind, { logLines, env: { RETENTION_PERIOD: '30d' } });
  const [user] = await database.db.insert(users).values({ email: 'purged@example.com', passwordHash: 'unused' }).returning();
  const now = Date.now();
  await database.db.insert(sessions).values([
    { userId: user!.id, userAgent: 'revoked 40 days ago', createdAt: new Date(now - 50 * DAY), expiresAt: new Date(now + DAY), revokedAt: new Date(now - 40 * DAY), revokedReason: 'logout' },
    { userId: user!.id, userAgent: 'revoked 20 days ago', createdAt: new Date(now - 50 * DAY), expiresAt: new Date(now + DAY), revokedAt: new Date(now - 20 * DAY), revokedReason: 'logout' },
  ]);
  t.same(await app.gatehouse.retention.purgeNow(), { sessions: 1, userTokens: 0, loginAttempts: 0 });
  t.same(await labelsOf(database.db), ['revoked 20 days ago']);
  const logged = logLines.map((line) => JSON.parse(line) as { msg: string; purged?: unknown }).find((entry) => entry.msg === 'purged records past RETENTION_PERIOD');
  t.same(logged?.purged, { sessions: 1, userTokens: 0, loginAttempts: 0 });
  t.same(await app.gatehouse.retention.purgeNow(), { sessions: 0, userTokens: 0, loginAttempts: 0 }, 'nothing left to purge');
  t.equal(logLines.filter((line) => line.includes('purged records')).length, 1, 'and a purge of nothing logs nothing');
});

eachDatabase("a purged session's tokens stay refused: a replay after the purge finds nothing to revive", async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { accessToken, refreshToken } = await registerUser(app);
  const { sid } = claimsOf(accessToken);
  t.equal((await post(app, '/auth/logout', undefined, bearer(accessToken))).statusCode, 204);
  // Logged out 40 days ago, as the purge sees it.
  await database.db.update(sessions).set({ revokedAt: new Date(Date.now() - 40 * DAY) }).where(eq(sessions.id, sid));
  t.same(await app.gatehouse.retention.purgeNow(), { sessions: 1, userTokens: 0, loginAttempts: 0 });
  t.same(await database.db.select().from(sessions).where(eq(sessions.id, sid)), [], 'the session row is gone');

  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'invalid_refresh_token', 'its refresh token');
  assertProblem(t, await post(app, '/auth/logout', { refreshToken }), 401, 'invalid_refresh_token', 'logout with it');
  const me = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  t.equal(me.statusCode, 401, 'its access token');
  t.same(await database.db.select().from(sessions).where(eq(sessions.id, sid)), [], 'and nothing brought it back');
});
