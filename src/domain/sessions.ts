import { and, desc, eq, gt, isNull, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { refreshTokens, sessions, type Session } from '../db/schema.js';
import { hashToken, hmac, looksLikeOpaqueToken, newOpaqueToken } from './tokens.js';
import { recordLogin, type DbOrTx } from './users.js';

export interface SessionSettings {
  /** Idle lifetime of a refresh token, renewed by each refresh (seconds). */
  refreshTokenTtl: number;
  /** Absolute lifetime of a session (seconds). */
  sessionMaxAge: number;
  /** How long a rotated token still answers with its successor (seconds). */
  refreshReuseGrace: number;
  /** Key that derives a token's successor from the token itself. */
  successorKey: Buffer;
}

export type RevocationReason = 'logout' | 'refresh_reuse' | 'admin' | 'user_disabled' | 'password_change' | 'password_reset' | 'user_request';

const addSeconds = (date: Date, seconds: number) => new Date(date.getTime() + seconds * 1000);

function idleExpiry(createdAt: Date, now: Date, settings: SessionSettings): Date {
  const absolute = addSeconds(createdAt, settings.sessionMaxAge);
  const idle = addSeconds(now, settings.refreshTokenTtl);
  return idle < absolute ? idle : absolute;
}

/** Opens a session (one per login) with its first refresh token. */
export async function openSession(
  db: DbOrTx,
  input: { userId: string; userAgent: string | null; ip: string | null },
  settings: SessionSettings,
): Promise<{ session: Session; refreshToken: string }> {
  const now = new Date();
  const [session] = await db
    .insert(sessions)
    .values({ ...input, createdAt: now, lastUsedAt: now, expiresAt: idleExpiry(now, now, settings) })
    .returning();
  const refreshToken = newOpaqueToken();
  await db.insert(refreshTokens).values({ sessionId: session!.id, tokenHash: hashToken(refreshToken), issuedAt: now });
  return { session: session!, refreshToken };
}

export type RotationResult =
  | { ok: true; session: Session; refreshToken: string }
  | { ok: false; code: 'invalid_refresh_token' | 'refresh_token_expired' | 'session_revoked' }
  | { ok: false; code: 'refresh_token_reused'; session: Session };

/**
 * Exchanges a refresh token for its successor. The successor is derived from the presented token
 * (HMAC under a server key), so a second presentation inside the grace window, two tabs racing,
 * gets the very same successor while the database still holds only hashes. Past the grace a rotated
 * token is treated as stolen and the whole session is revoked.
 */
export async function rotateRefreshToken(db: Db, presented: string, settings: SessionSettings): Promise<RotationResult> {
  if (!looksLikeOpaqueToken(presented)) return { ok: false, code: 'invalid_refresh_token' };
  const tokenHash = hashToken(presented);
  const successor = hmac(settings.successorKey, presented);

  return db.transaction(async (tx) => {
    const [found] = await tx
      .select({ token: refreshTokens, session: sessions })
      .from(refreshTokens)
      .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
      .where(eq(refreshTokens.tokenHash, tokenHash));
    if (!found) return { ok: false, code: 'invalid_refresh_token' } as const;
    const { session } = found;
    const now = new Date();
    if (session.revokedAt) return { ok: false, code: 'session_revoked' } as const;
    if (session.expiresAt <= now) return { ok: false, code: 'refresh_token_expired' } as const;

    // Claim the rotation: of concurrent presentations exactly one flips rotated_at; the others
    // wait on the row lock, then see it set and take the grace path below.
    const [claimed] = await tx
      .update(refreshTokens)
      .set({ rotatedAt: now })
      .where(and(eq(refreshTokens.id, found.token.id), isNull(refreshTokens.rotatedAt)))
      .returning({ id: refreshTokens.id });
    if (claimed) {
      const [next] = await tx
        .insert(refreshTokens)
        .values({ sessionId: session.id, tokenHash: hashToken(successor), issuedAt: now })
        .returning({ id: refreshTokens.id });
      await tx.update(refreshTokens).set({ successorId: next!.id }).where(eq(refreshTokens.id, found.token.id));
      const [renewed] = await tx
        .update(sessions)
        .set({ lastUsedAt: now, expiresAt: idleExpiry(session.createdAt, now, settings) })
        .where(eq(sessions.id, session.id))
        .returning();
      return { ok: true, session: renewed!, refreshToken: successor } as const;
    }

    const [current] = await tx
      .select({ rotatedAt: refreshTokens.rotatedAt })
      .from(refreshTokens)
      .where(eq(refreshTokens.id, found.token.id));
    const rotatedAt = current?.rotatedAt ?? now;
    if (now.getTime() - rotatedAt.getTime() <= settings.refreshReuseGrace * 1000) {
      return { ok: true, session, refreshToken: successor } as const;
    }
    await tx
      .update(sessions)
      .set({ revokedAt: now, revokedReason: 'refresh_reuse' })
      .where(and(eq(sessions.id, session.id), isNull(sessions.revokedAt)));
    return { ok: false, code: 'refresh_token_reused', session } as const;
  });
}

/** The session a refresh token belongs to, rotated or not. */
export async function findSessionByRefreshToken(db: DbOrTx, presented: string): Promise<Session | undefined> {
  if (!looksLikeOpaqueToken(presented)) return undefined;
  const [row] = await db
    .select({ session: sessions })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .where(eq(refreshTokens.tokenHash, hashToken(presented)));
  return row?.session;
}

export async function findSession(db: DbOrTx, sessionId: string): Promise<Session | undefined> {
  const [session] = await db.select().from(sessions).where(eq(sessions.id, sessionId));
  return session;
}

/** Idempotent: revoking a revoked session changes nothing. Returns true if it was live. */
export async function revokeSession(db: DbOrTx, sessionId: string, reason: RevocationReason): Promise<boolean> {
  const rows = await db
    .update(sessions)
    .set({ revokedAt: new Date(), revokedReason: reason })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  return rows.length > 0;
}

/** Logs a user out everywhere, or everywhere but `exceptSessionId`. Returns how many were live. */
export async function revokeUserSessions(
  db: DbOrTx,
  userId: string,
  reason: RevocationReason,
  exceptSessionId?: string,
): Promise<number> {
  const rows = await db
    .update(sessions)
    .set({ revokedAt: new Date(), revokedReason: reason })
    .where(
      and(
        eq(sessions.userId, userId),
        isNull(sessions.revokedAt),
        exceptSessionId ? ne(sessions.id, exceptSessionId) : sql`true`,
      ),
    )
    .returning({ id: sessions.id });
  return rows.length;
}

/** A login: a new session and the trackable counters, in one transaction. */
export async function startLoginSession(
  db: Db,
  input: { userId: string; userAgent: string | null; ip: string | null },
  settings: SessionSettings,
): Promise<{ session: Session; refreshToken: string }> {
  return db.transaction(async (tx) => {
    const opened = await openSession(tx, input, settings);
    await recordLogin(tx, input.userId, input.ip);
    return opened;
  });
}

/** Sessions that can still be refreshed, newest first. */
export async function listLiveSessions(db: DbOrTx, userId: string): Promise<Session[]> {
  return db
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, new Date())))
    .orderBy(desc(sessions.createdAt));
}
