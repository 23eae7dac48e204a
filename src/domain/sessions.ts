import { randomUUID } from 'node:crypto';
import { and, desc, eq, gt, isNotNull, isNull, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { fromRow, prefixedColumns, queryRows } from '../db/rows.js';
import { refreshTokens, sessions, type Session } from '../db/schema.js';
import { hashToken, hmac, looksLikeOpaqueToken, newOpaqueToken } from './tokens.js';
import { ACCESS_CHANNEL } from './access-cache.js';
import { authorizationColumns, authorizationStateFrom, type AuthorizationState, type DbOrTx } from './users.js';

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

/** How sure we are of who opened a session: RFC 8176 method references and a NIST assurance level. */
export interface Assurance {
  aal: 'aal1' | 'aal2';
  amr: string[];
  /** When the user last proved a factor. */
  authTime: Date;
}

const textArray = (items: readonly string[]) => sql`array[${sql.join(items.map((item) => sql`${item}`), sql`, `)}]::text[]`;

export type RevocationReason = 'logout' | 'refresh_reuse' | 'admin' | 'user_disabled' | 'password_change' | 'password_reset' | 'user_request' | 'roles_changed';

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
  | { ok: true; session: Session; refreshToken: string; authorization: AuthorizationState }
  | { ok: false; code: 'invalid_refresh_token' | 'refresh_token_expired' | 'session_revoked' }
  | { ok: false; code: 'refresh_token_reused'; session: Session };

interface RotationRow extends Record<string, unknown> {
  token_rotated_at: string | null;
  renewed_last_used_at: string | null;
  renewed_expires_at: string | null;
}

/**
 * Exchanges a refresh token for its successor. The successor is derived from the presented token
 * (HMAC under a server key), so a second presentation inside the grace window, two tabs racing,
 * gets the very same successor while the database still holds only hashes. Past the grace a rotated
 * token is treated as stolen and the whole session is revoked.
 *
 * The common case is one statement, so one round trip and one commit: a refresh is the one write
 * every client makes every few minutes. Its data-modifying CTEs claim the token (of concurrent
 * presentations exactly one flips rotated_at; the others wait on the row lock, then find it set),
 * insert the successor and renew the session, all or nothing.
 */
export async function rotateRefreshToken(db: Db, presented: string, settings: SessionSettings): Promise<RotationResult> {
  if (!looksLikeOpaqueToken(presented)) return { ok: false, code: 'invalid_refresh_token' };
  const successor = hmac(settings.successorKey, presented);
  const now = new Date();
  const at = now.toISOString();
  const successorId = randomUUID();

  const [row] = await queryRows<RotationRow>(
    db,
    sql`
      with found as (
        select id, session_id, rotated_at from refresh_tokens where token_hash = ${hashToken(presented)}
      ),
      claimed as (
        update refresh_tokens t set rotated_at = ${at}::timestamptz, successor_id = ${successorId}::uuid
        from sessions s
        where t.id = (select id from found) and t.rotated_at is null
          and s.id = t.session_id and s.revoked_at is null and s.expires_at > ${at}::timestamptz
        returning t.session_id
      ),
      successor as (
        insert into refresh_tokens (id, session_id, token_hash, issued_at)
        select ${successorId}::uuid, session_id, ${hashToken(successor)}, ${at}::timestamptz from claimed
      ),
      renewed as (
        update sessions s
        set last_used_at = ${at}::timestamptz,
            expires_at = least(${addSeconds(now, settings.refreshTokenTtl).toISOString()}::timestamptz,
                               s.created_at + ${settings.sessionMaxAge}::integer * interval '1 second')
        where s.id = (select session_id from claimed)
        returning s.last_used_at, s.expires_at
      )
      select f.rotated_at as token_rotated_at, r.last_used_at as renewed_last_used_at,
             r.expires_at as renewed_expires_at, ${prefixedColumns(sessions, 's', 'session_')},
             ${authorizationColumns}
      from found f join sessions s on s.id = f.session_id join users on users.id = s.user_id
        left join renewed r on true`,
  );
  if (!row) return { ok: false, code: 'invalid_refresh_token' };
  const session = fromRow(sessions, row, 'session_');
  // Read in the same statement: what the answer needs (the user) without a second round trip.
  const authorization = authorizationStateFrom(row);
  if (row.renewed_expires_at !== null) {
    const renewed = { ...session, lastUsedAt: new Date(row.renewed_last_used_at!), expiresAt: new Date(row.renewed_expires_at) };
    return { ok: true, session: renewed, refreshToken: successor, authorization };
  }
  if (session.revokedAt) return { ok: false, code: 'session_revoked' };
  if (session.expiresAt <= now) return { ok: false, code: 'refresh_token_expired' };

  // Rotated before, or by a concurrent presentation that won the row lock after this statement's
  // snapshot was taken (then only a fresh read knows when).
  const rotatedAt = row.token_rotated_at
    ? new Date(row.token_rotated_at)
    : ((await db.select({ rotatedAt: refreshTokens.rotatedAt }).from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(presented))))[0]
        ?.rotatedAt ?? now);
  if (now.getTime() - rotatedAt.getTime() <= settings.refreshReuseGrace * 1000) {
    return { ok: true, session, refreshToken: successor, authorization };
  }
  await db
    .update(sessions)
    .set({ revokedAt: now, revokedReason: 'refresh_reuse' })
    .where(and(eq(sessions.id, session.id), isNull(sessions.revokedAt)));
  return { ok: false, code: 'refresh_token_reused', session };
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

/**
 * A login: a new session with its first refresh token, the trackable fields moved down one slot
 * (as the seed system's trackable does), the email's failed-login count cleared when given, and a
 * notice to every other instance's authorization cache (`accessNotice`, from AccessCache.notice),
 * which now misses a session and shows old login fields. One statement: one round trip and one
 * commit on the path that already waits for bcrypt. It also reads the user's authorization state,
 * for the caller to prime its own cache with.
 */
export async function startLoginSession(
  db: Db,
  input: { userId: string; userAgent: string | null; ip: string | null; accessNotice: string; clearFailuresOf?: string; assurance: Assurance },
  settings: SessionSettings,
): Promise<{ session: Session; refreshToken: string; authorization: AuthorizationState }> {
  const now = new Date();
  const at = now.toISOString();
  const sessionId = randomUUID();
  const refreshToken = newOpaqueToken();
  const { assurance } = input;
  const [row] = await queryRows(
    db,
    sql`
      with opened as (
        insert into sessions (id, user_id, user_agent, ip, created_at, last_used_at, expires_at, auth_time, amr, aal)
        values (${sessionId}::uuid, ${input.userId}::uuid, ${input.userAgent}, ${input.ip}, ${at}::timestamptz,
                ${at}::timestamptz, ${idleExpiry(now, now, settings).toISOString()}::timestamptz,
                ${assurance.authTime.toISOString()}::timestamptz, ${textArray(assurance.amr)}, ${assurance.aal})
        returning *
      ),
      first_token as (
        insert into refresh_tokens (session_id, token_hash, issued_at)
        values (${sessionId}::uuid, ${hashToken(refreshToken)}, ${at}::timestamptz)
      ),
      tracked as (
        update users set previous_login_at = last_login_at, previous_login_ip = last_login_ip,
          last_login_at = ${at}::timestamptz, last_login_ip = ${input.ip}, login_count = login_count + 1
        where id = ${input.userId}::uuid
        returning *
      ),
      cleared as (delete from login_attempts where email = ${input.clearFailuresOf ?? null}),
      notified as (select pg_notify(${ACCESS_CHANNEL}, ${input.accessNotice}))
      select ${prefixedColumns(sessions, 'o', 'session_')}, ${authorizationColumns}
      from opened o cross join tracked users cross join notified`,
  );
  if (!row) throw new Error(`startLoginSession: no user ${input.userId}`);
  const authorization = authorizationStateFrom(row);
  // The statement's reads see the database as it was before it: the new session is not among them.
  authorization.liveSessionIds.push(sessionId);
  return { session: fromRow(sessions, row, 'session_'), refreshToken, authorization };
}

/**
 * A live session's new assurance after the user proved a factor again (a step-up, a confirmed
 * authenticator): its next tokens, and every refresh after, carry it. Undefined when the session
 * is no longer live.
 */
export async function setSessionAssurance(db: DbOrTx, sessionId: string, assurance: Assurance): Promise<Session | undefined> {
  const [session] = await db
    .update(sessions)
    .set({ aal: assurance.aal, amr: assurance.amr, authTime: assurance.authTime })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
    .returning();
  return session;
}

/**
 * The user no longer has a second factor: every session of theirs is back to what a password
 * proves, and the next refresh issues aal1 tokens.
 */
export async function dropSecondFactor(db: DbOrTx, userId: string): Promise<void> {
  await db
    .update(sessions)
    .set({ aal: 'aal1', amr: sql`array(select m from unnest(${sessions.amr}) m where m not in ('otp', 'rc', 'hwk', 'mfa'))` })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)));
}

/** Sessions that can still be refreshed, newest first. */
export async function listLiveSessions(db: DbOrTx, userId: string): Promise<Session[]> {
  return db
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, new Date())))
    .orderBy(desc(sessions.createdAt));
}

/**
 * Ends every impersonation of the user (sessions an admin opened as them), returning how many. The
 * check on each request compares permissions only; a role that grants none (a marker for role
 * rules) is checked when an impersonation starts, so gaining one must end those already running.
 */
export async function endImpersonationsOf(db: DbOrTx, userId: string, reason: RevocationReason): Promise<number> {
  const rows = await db
    .update(sessions)
    .set({ revokedAt: new Date(), revokedReason: reason })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), isNotNull(sessions.impersonatorId)))
    .returning({ id: sessions.id });
  return rows.length;
}
