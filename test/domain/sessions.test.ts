import { eq } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';
import { refreshTokens, sessions, users } from '../../src/db/schema.js';
import {
  findSessionByRefreshToken,
  openSession,
  revokeSession,
  revokeUserSessions,
  rotateRefreshToken,
  type SessionSettings,
} from '../../src/domain/sessions.js';
import { deriveKey, hashToken, newOpaqueToken } from '../../src/domain/tokens.js';
import { eachDatabase, type Test } from '../helpers/app.js';
import { openTestDatabase, type DatabaseKind } from '../helpers/databases.js';

const settings = (overrides: Partial<SessionSettings> = {}): SessionSettings => ({
  refreshTokenTtl: 3600,
  sessionMaxAge: 86_400,
  refreshReuseGrace: 10,
  successorKey: deriveKey('test-jwt-secret-that-is-long-enough-0123456789', 'refresh-successor'),
  ...overrides,
});

async function setup(t: Test, kind: DatabaseKind): Promise<{ db: Db; userId: string }> {
  const database = await openTestDatabase(kind);
  t.teardown(() => database.drop());
  const [user] = await database.db.insert(users).values({ email: `u${Date.now()}@example.com`, passwordHash: 'unused' }).returning();
  return { db: database.db, userId: user!.id };
}

const context = (userId: string) => ({ userId, userAgent: 'tap', ip: '127.0.0.1' });

eachDatabase('a refresh token is stored only as its SHA-256 hash', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session, refreshToken } = await openSession(db, context(userId), settings());
  const rows = await db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, session.id));
  t.equal(rows.length, 1);
  t.equal(rows[0]!.tokenHash, hashToken(refreshToken));
  t.not(rows[0]!.tokenHash, refreshToken);
});

eachDatabase('a session never outlives its maximum age, however often it is refreshed', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const capped = settings({ refreshTokenTtl: 3600, sessionMaxAge: 60 });
  const { session, refreshToken } = await openSession(db, context(userId), capped);
  const limit = session.createdAt.getTime() + 60_000;
  t.equal(session.expiresAt.getTime(), limit, 'the first expiry is the maximum age, not the idle lifetime');
  const rotated = await rotateRefreshToken(db, refreshToken, capped);
  if (!rotated.ok) throw new Error(`rotation failed: ${rotated.code}`);
  t.equal(rotated.session.expiresAt.getTime(), limit, 'a refresh does not push it further');
});

eachDatabase('each refresh pushes the idle expiry forward', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const idle = settings({ refreshTokenTtl: 60, sessionMaxAge: 86_400 });
  const { session, refreshToken } = await openSession(db, context(userId), idle);
  t.equal(session.expiresAt.getTime(), session.createdAt.getTime() + 60_000);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const rotated = await rotateRefreshToken(db, refreshToken, idle);
  if (!rotated.ok) throw new Error(`rotation failed: ${rotated.code}`);
  t.equal(rotated.session.expiresAt.getTime(), rotated.session.lastUsedAt.getTime() + 60_000);
  t.ok(rotated.session.expiresAt > session.expiresAt, 'the session now lives longer');
});

eachDatabase('a token rotated longer ago than the grace revokes its whole session', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session, refreshToken } = await openSession(db, context(userId), settings());
  const rotated = await rotateRefreshToken(db, refreshToken, settings());
  if (!rotated.ok) throw new Error(`rotation failed: ${rotated.code}`);
  // The rotation happened half a minute ago, as far as the database knows.
  await db
    .update(refreshTokens)
    .set({ rotatedAt: new Date(Date.now() - 30_000) })
    .where(eq(refreshTokens.tokenHash, hashToken(refreshToken)));

  const reused = await rotateRefreshToken(db, refreshToken, settings());
  t.equal(reused.ok ? 'ok' : reused.code, 'refresh_token_reused');
  const [after] = await db.select().from(sessions).where(eq(sessions.id, session.id));
  t.ok(after!.revokedAt, 'the session is revoked');
  t.equal(after!.revokedReason, 'refresh_reuse');
  const successor = await rotateRefreshToken(db, rotated.refreshToken, settings());
  t.equal(successor.ok ? 'ok' : successor.code, 'session_revoked', 'the newest token dies with it');
});

eachDatabase('an expired session refuses to rotate and stays unrotated', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session, refreshToken } = await openSession(db, context(userId), settings());
  await db.update(sessions).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(sessions.id, session.id));
  const result = await rotateRefreshToken(db, refreshToken, settings());
  t.equal(result.ok ? 'ok' : result.code, 'refresh_token_expired');
  const [row] = await db.select().from(refreshTokens).where(eq(refreshTokens.sessionId, session.id));
  t.equal(row!.rotatedAt, null);
});

eachDatabase('unknown and malformed refresh tokens find no session', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  await openSession(db, context(userId), settings());
  for (const presented of [newOpaqueToken(), 'short', '', `${newOpaqueToken()}x`, "' or 1=1 --"]) {
    const result = await rotateRefreshToken(db, presented, settings());
    t.equal(result.ok ? 'ok' : result.code, 'invalid_refresh_token', JSON.stringify(presented));
    t.equal(await findSessionByRefreshToken(db, presented), undefined, JSON.stringify(presented));
  }
});

eachDatabase('revoking is idempotent and can spare one session', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const first = await openSession(db, context(userId), settings());
  const second = await openSession(db, context(userId), settings());
  const third = await openSession(db, context(userId), settings());
  t.equal(await revokeSession(db, first.session.id, 'logout'), true, 'a live session is revoked');
  t.equal(await revokeSession(db, first.session.id, 'logout'), false, 'a revoked one is left alone');
  t.equal(await revokeUserSessions(db, userId, 'user_request', third.session.id), 1, 'only the second was still live');
  const live = await db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, userId));
  const revoked = await db.select().from(sessions).where(eq(sessions.id, second.session.id));
  t.equal(live.length, 3);
  t.equal(revoked[0]!.revokedReason, 'user_request');
  const [kept] = await db.select().from(sessions).where(eq(sessions.id, third.session.id));
  t.equal(kept!.revokedAt, null, 'the spared session is live');
});
