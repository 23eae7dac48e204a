import { randomBytes, randomUUID } from 'node:crypto';
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
import { newRefreshToken, parseRefreshToken, successorOf } from '../../src/domain/refresh-tokens.js';
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

eachDatabase('a refresh token names its session and is stored only as its SHA-256 hash', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session, refreshToken } = await openSession(db, context(userId), settings());
  t.same(parseRefreshToken(refreshToken), { sessionId: session.id, generation: 0 });
  const [row] = await db.select().from(sessions).where(eq(sessions.id, session.id));
  t.equal(row!.refreshTokenHash, hashToken(refreshToken));
  t.not(row!.refreshTokenHash, refreshToken);
  t.equal((await db.select().from(refreshTokens)).length, 0, 'no token row: the session row holds its current token');
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
  await db.update(sessions).set({ refreshRotatedAt: new Date(Date.now() - 30_000) }).where(eq(sessions.id, session.id));

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
  const [row] = await db.select().from(sessions).where(eq(sessions.id, session.id));
  t.equal(row!.refreshGeneration, 0);
  t.equal(row!.refreshTokenHash, hashToken(refreshToken), 'the token is still the current one');
});

eachDatabase('unknown and malformed refresh tokens find no session', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session } = await openSession(db, context(userId), settings());
  const madeUp = [newRefreshToken(session.id), successorOf(newRefreshToken(session.id), { sessionId: session.id, generation: 0 }, randomBytes(32))];
  for (const presented of [newOpaqueToken(), 'short', '', `${newOpaqueToken()}x`, "' or 1=1 --", newRefreshToken(randomUUID()), ...madeUp]) {
    const result = await rotateRefreshToken(db, presented, settings());
    t.equal(result.ok ? 'ok' : result.code, 'invalid_refresh_token', JSON.stringify(presented));
    t.equal(await findSessionByRefreshToken(db, presented, settings()), undefined, JSON.stringify(presented));
  }
  const [row] = await db.select().from(sessions).where(eq(sessions.id, session.id));
  t.equal(row!.revokedAt, null, 'a made-up token naming the session does not revoke it');
});

eachDatabase('any older token of the session is a reuse; only the current one and the one before find the session', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session, refreshToken: first } = await openSession(db, context(userId), settings());
  const tokens = [first];
  for (let i = 0; i < 3; i++) {
    const rotated = await rotateRefreshToken(db, tokens.at(-1)!, settings());
    if (!rotated.ok) throw new Error(`rotation failed: ${rotated.code}`);
    t.same(parseRefreshToken(rotated.refreshToken), { sessionId: session.id, generation: i + 1 });
    tokens.push(rotated.refreshToken);
  }
  t.equal((await findSessionByRefreshToken(db, tokens[3]!, settings()))?.id, session.id, 'the current token');
  t.equal((await findSessionByRefreshToken(db, tokens[2]!, settings()))?.id, session.id, 'the one before, its rotation answer on its way');
  // Finding follows one generation back only: logout has no rate limit, and a made-up token naming
  // the session at an old generation must not buy a walk of up to 1,024 hashes.
  for (const token of tokens.slice(0, 2)) t.equal(await findSessionByRefreshToken(db, token, settings()), undefined, 'older tokens find nothing');
  const [unrevoked] = await db.select().from(sessions).where(eq(sessions.id, session.id));
  t.equal(unrevoked!.revokedAt, null, 'finding revokes nothing');

  // Two generations back: inside the grace or not, no tab holds it any more.
  const reused = await rotateRefreshToken(db, tokens[1]!, settings());
  t.equal(reused.ok ? 'ok' : reused.code, 'refresh_token_reused');
  t.equal((await rotateRefreshToken(db, tokens[3]!, settings())).ok, false, 'the current token died with the session');
});

eachDatabase('a token more generations back than are followed is refused without revoking the session', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const { session, refreshToken } = await openSession(db, context(userId), settings());
  // The session as 1,025 rotations would leave it, without making them.
  let current = refreshToken;
  for (let generation = 0; generation < 1025; generation++) current = successorOf(current, { sessionId: session.id, generation }, settings().successorKey);
  await db.update(sessions).set({ refreshGeneration: 1025, refreshTokenHash: hashToken(current) }).where(eq(sessions.id, session.id));

  const ancient = await rotateRefreshToken(db, refreshToken, settings());
  t.equal(ancient.ok ? 'ok' : ancient.code, 'invalid_refresh_token');
  const rotated = await rotateRefreshToken(db, current, settings());
  t.equal(rotated.ok && parseRefreshToken(rotated.refreshToken)?.generation, 1026, 'the session is live and its current token rotates');
});

eachDatabase('a token row from before tokens named their session is converted once, then ages like generation 0', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  // A session as an older version left it: no current token of its own, one row in refresh_tokens.
  const { session } = await openSession(db, context(userId), settings());
  await db.update(sessions).set({ refreshTokenHash: null }).where(eq(sessions.id, session.id));
  const legacy = newOpaqueToken();
  await db.insert(refreshTokens).values({ sessionId: session.id, tokenHash: hashToken(legacy) });
  t.equal((await findSessionByRefreshToken(db, legacy, settings()))?.id, session.id, 'found by its row');

  const converted = await rotateRefreshToken(db, legacy, settings());
  if (!converted.ok) throw new Error(`conversion failed: ${converted.code}`);
  t.same(parseRefreshToken(converted.refreshToken), { sessionId: session.id, generation: 1 });
  const again = await rotateRefreshToken(db, legacy, settings());
  t.equal(again.ok && again.refreshToken, converted.refreshToken, 'inside the grace: the same successor');

  const next = await rotateRefreshToken(db, converted.refreshToken, settings());
  if (!next.ok) throw new Error(`rotation failed: ${next.code}`);
  const reused = await rotateRefreshToken(db, legacy, settings());
  t.equal(reused.ok ? 'ok' : reused.code, 'refresh_token_reused', 'two generations back');
  const [row] = await db.select().from(sessions).where(eq(sessions.id, session.id));
  t.equal(row!.revokedReason, 'refresh_reuse');
});

eachDatabase('a token row rotated before the upgrade is a reuse past the grace, and only refused inside it', async (t, kind) => {
  const { db, userId } = await setup(t, kind);
  const rotatedLongAgo = await openSession(db, context(userId), settings());
  const rotatedJustNow = await openSession(db, context(userId), settings());
  const tokens = new Map<string, string>();
  for (const [opened, rotatedAt] of [[rotatedLongAgo, new Date(Date.now() - 60_000)], [rotatedJustNow, new Date()]] as const) {
    await db.update(sessions).set({ refreshTokenHash: null }).where(eq(sessions.id, opened.session.id));
    const legacy = newOpaqueToken();
    tokens.set(opened.session.id, legacy);
    await db.insert(refreshTokens).values({ sessionId: opened.session.id, tokenHash: hashToken(legacy), rotatedAt });
  }
  const inGrace = await rotateRefreshToken(db, tokens.get(rotatedJustNow.session.id)!, settings());
  t.equal(inGrace.ok ? 'ok' : inGrace.code, 'invalid_refresh_token');
  const late = await rotateRefreshToken(db, tokens.get(rotatedLongAgo.session.id)!, settings());
  t.equal(late.ok ? 'ok' : late.code, 'refresh_token_reused');
  const rows = await db.select().from(sessions).where(eq(sessions.userId, userId));
  t.same(
    rows.map((r) => [r.id === rotatedLongAgo.session.id ? 'long ago' : 'just now', r.revokedReason]).sort(),
    [['just now', null], ['long ago', 'refresh_reuse']],
  );
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
