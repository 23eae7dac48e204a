import { randomUUID } from 'node:crypto';
import { and, desc, eq, gt, inArray, isNotNull, isNull, ne, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { fromRow, prefixedColumns, queryRows } from '../db/rows.js';
import { refreshTokens, sessions, userRoles, type Session } from '../db/schema.js';
import { constantTimeEqual, hashToken, looksLikeOpaqueToken } from './tokens.js';
import { newRefreshToken, parseRefreshToken, successorOf, type RefreshTokenParts } from './refresh-tokens.js';
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
  const id = randomUUID();
  const refreshToken = newRefreshToken(id);
  const [session] = await db
    .insert(sessions)
    .values({ ...input, id, createdAt: now, lastUsedAt: now, expiresAt: idleExpiry(now, now, settings), refreshTokenHash: hashToken(refreshToken) })
    .returning();
  return { session: session!, refreshToken };
}

export type RotationResult =
  | { ok: true; session: Session; refreshToken: string; authorization: AuthorizationState }
  | { ok: false; code: 'invalid_refresh_token' | 'refresh_token_expired' | 'session_revoked' }
  | { ok: false; code: 'refresh_token_reused'; session: Session };

const INVALID = { ok: false, code: 'invalid_refresh_token' } as const;

interface RotationRow extends Record<string, unknown> {
  renewed_last_used_at: string | null;
  renewed_expires_at: string | null;
}

/**
 * How far back a presented token is followed to the session's current one. Reuse of a token older
 * than this is refused without revoking the session: proving it genuine would take a hash per
 * generation, and a made-up token naming the session must not buy that much work.
 */
const MAX_GENERATIONS_BEHIND = 1024;

/**
 * How far back a token is followed where it only has to name its session (logout): a client holds
 * its current token, or the one before while a rotation's answer is on its way. Logout has no rate
 * limit of its own, so a made-up token must buy no more than this.
 */
const FINDING_GENERATIONS_BEHIND = 1;

type Standing = { is: 'current' | 'reused' | 'unknown' } | { is: 'in_grace'; successor: string };

/**
 * Where a token that did not rotate stands against the session's current token: that token itself,
 * its predecessor still inside the reuse grace (answered with its successor), an older token of
 * the session (reuse), or not one of its tokens at all.
 */
function standingOf(
  presented: string,
  parts: RefreshTokenParts,
  session: Session,
  settings: SessionSettings,
  now: Date,
  maxBehind = MAX_GENERATIONS_BEHIND,
): Standing {
  const behind = session.refreshGeneration - parts.generation;
  if (session.refreshTokenHash === null || behind < 0 || behind > maxBehind) return { is: 'unknown' };
  let token = presented;
  for (let generation = parts.generation; generation < session.refreshGeneration; generation++) {
    token = successorOf(token, { sessionId: session.id, generation }, settings.successorKey);
  }
  if (!constantTimeEqual(hashToken(token), session.refreshTokenHash)) return { is: 'unknown' };
  if (behind === 0) return { is: 'current' };
  const rotatedAt = session.refreshRotatedAt?.getTime() ?? 0;
  if (behind === 1 && now.getTime() - rotatedAt <= settings.refreshReuseGrace * 1000) return { is: 'in_grace', successor: token };
  return { is: 'reused' };
}

/**
 * The rotation's answer: the session (renewed, or as it stood), and the user's authorization state
 * read in the same statement, so that a refresh after the cache entry expired needs no second
 * round trip. `renew` is a data-modifying CTE named `renewed` returning the renewed times.
 */
function rotationStatement(sessionId: string, renew: SQL): SQL {
  return sql`
    with ${renew}
    select r.last_used_at as renewed_last_used_at, r.expires_at as renewed_expires_at,
           ${prefixedColumns(sessions, 's', 'session_')}, ${authorizationColumns}
    from sessions s join users on users.id = s.user_id left join renewed r on true
    where s.id = ${sessionId}::uuid`;
}

/** The session's renewal by its current token's successor (its hash): new generation, hash and idle expiry. */
function renewal(successorHash: string, generation: number, now: Date, settings: SessionSettings): SQL {
  const at = now.toISOString();
  return sql`
    set refresh_generation = ${generation}, refresh_token_hash = ${successorHash}, refresh_rotated_at = ${at}::timestamptz,
        last_used_at = ${at}::timestamptz,
        expires_at = least(${addSeconds(now, settings.refreshTokenTtl).toISOString()}::timestamptz,
                           s.created_at + ${settings.sessionMaxAge}::integer * interval '1 second')`;
}

/**
 * Exchanges a refresh token for its successor. The successor is derived from the presented token
 * (refresh-tokens.ts), so a second presentation inside the grace window, two tabs racing, gets the
 * very same successor while the database holds only the current token's hash. Past the grace, or
 * for any older token of the session, the token is treated as stolen and the session is revoked.
 *
 * The common case is one statement, so one round trip and one commit: a refresh is the one write
 * every client makes every few minutes. It updates the session row by its primary key only if the
 * presented token is still its current one (of concurrent presentations exactly one matches; the
 * others wait on the row lock, then find the generation moved on), and reads the user alongside.
 */
export async function rotateRefreshToken(db: Db, presented: string, settings: SessionSettings): Promise<RotationResult> {
  const parts = parseRefreshToken(presented);
  if (!parts) return looksLikeOpaqueToken(presented) ? rotateTokenRow(db, presented, settings) : INVALID;
  const rotation = await runRotation(db, presented, parts, settings, (successorHash, now, at) => sql`renewed as (
    update sessions s ${renewal(successorHash, parts.generation + 1, now, settings)}
    where s.id = ${parts.sessionId}::uuid and s.refresh_generation = ${parts.generation}
      and s.refresh_token_hash = ${hashToken(presented)} and s.revoked_at is null and s.expires_at > ${at}::timestamptz
    returning s.last_used_at, s.expires_at
  )`);
  return rotation.row ? settle(db, { ...rotation, row: rotation.row }, presented, parts, settings) : INVALID;
}

interface Rotation {
  row: RotationRow | undefined;
  successor: string;
  successorHash: string;
  now: Date;
}

/** Runs a rotation for the session `parts` names: `renew` writes its CTEs, given the successor's hash and the time. */
async function runRotation(
  db: Db,
  presented: string,
  parts: RefreshTokenParts,
  settings: SessionSettings,
  renew: (successorHash: string, now: Date, at: string) => SQL,
): Promise<Rotation> {
  const successor = successorOf(presented, parts, settings.successorKey);
  const successorHash = hashToken(successor);
  const now = new Date();
  const [row] = await queryRows<RotationRow>(db, rotationStatement(parts.sessionId, renew(successorHash, now, now.toISOString())));
  return { row, successor, successorHash, now };
}

async function settle(
  db: Db,
  { row, successor, successorHash, now }: Rotation & { row: RotationRow },
  presented: string,
  parts: RefreshTokenParts,
  settings: SessionSettings,
): Promise<RotationResult> {
  const session = fromRow(sessions, row, 'session_');
  const authorization = authorizationStateFrom(row);
  if (row.renewed_expires_at !== null) {
    const renewed: Session = {
      ...session,
      lastUsedAt: new Date(row.renewed_last_used_at!),
      expiresAt: new Date(row.renewed_expires_at),
      refreshGeneration: parts.generation + 1,
      refreshTokenHash: successorHash,
      refreshRotatedAt: now,
    };
    return { ok: true, session: renewed, refreshToken: successor, authorization };
  }
  return judgeUnrotated(db, session, presented, parts, settings, now, authorization);
}

async function judgeUnrotated(
  db: Db,
  session: Session,
  presented: string,
  parts: RefreshTokenParts,
  settings: SessionSettings,
  now: Date,
  authorization: AuthorizationState,
  fresh = false,
): Promise<RotationResult> {
  if (session.revokedAt) return { ok: false, code: 'session_revoked' };
  if (session.expiresAt <= now) return { ok: false, code: 'refresh_token_expired' };
  const standing = standingOf(presented, parts, session, settings, now);
  switch (standing.is) {
    case 'unknown':
      return INVALID;
    case 'in_grace':
      return { ok: true, session, refreshToken: standing.successor, authorization };
    case 'current': {
      // Current as this statement saw the session, yet not rotated: a concurrent presentation
      // won the row lock and rotated it after the snapshot was taken. Only a fresh read knows when.
      if (fresh) return INVALID;
      const current = await findSession(db, session.id);
      return current ? judgeUnrotated(db, current, presented, parts, settings, now, authorization, true) : INVALID;
    }
    case 'reused':
      await revokeSession(db, session.id, 'refresh_reuse');
      return { ok: false, code: 'refresh_token_reused', session };
  }
}

/**
 * A token from before refresh tokens named their session (a row in refresh_tokens): claimed once,
 * its successor is the session's generation 1, derived from it as any successor is. Presented
 * again, it stands as generation 0 of the session: answered in the grace, reuse after it.
 */
async function rotateTokenRow(db: Db, presented: string, settings: SessionSettings): Promise<RotationResult> {
  const [found] = await db
    .select({ sessionId: refreshTokens.sessionId, rotatedAt: refreshTokens.rotatedAt })
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, hashToken(presented)));
  if (!found) return INVALID;
  const parts = { sessionId: found.sessionId, generation: 0 };
  const rotation = await runRotation(db, presented, parts, settings, (successorHash, now, at) => sql`claimed as (
    update refresh_tokens t set rotated_at = ${at}::timestamptz
    from sessions s
    where t.token_hash = ${hashToken(presented)} and t.rotated_at is null
      and s.id = t.session_id and s.revoked_at is null and s.expires_at > ${at}::timestamptz
    returning t.session_id
  ),
  renewed as (
    update sessions s ${renewal(successorHash, 1, now, settings)}
    where s.id = (select session_id from claimed)
    returning s.last_used_at, s.expires_at
  )`);
  const { row, now } = rotation;
  if (!row) return INVALID;
  const result = await settle(db, { ...rotation, row }, presented, parts, settings);
  // Rotated in its own time, before the session's tokens were named: its successor is of the old
  // kind, which no longer answers. Refused without revoking only inside the grace (tabs racing an upgrade).
  if (!result.ok && result.code === 'invalid_refresh_token' && found.rotatedAt && now.getTime() - found.rotatedAt.getTime() > settings.refreshReuseGrace * 1000) {
    const session = fromRow(sessions, row, 'session_');
    await revokeSession(db, session.id, 'refresh_reuse');
    return { ok: false, code: 'refresh_token_reused', session };
  }
  return result;
}

/**
 * The session a refresh token belongs to: what a logout ends.
 * A token naming a session is checked to be its current token or the one before it.
 */
export async function findSessionByRefreshToken(db: DbOrTx, presented: string, settings: SessionSettings): Promise<Session | undefined> {
  const parts = parseRefreshToken(presented);
  if (!parts) {
    if (!looksLikeOpaqueToken(presented)) return undefined;
    const [row] = await db
      .select({ session: sessions })
      .from(refreshTokens)
      .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
      .where(eq(refreshTokens.tokenHash, hashToken(presented)));
    return row?.session;
  }
  const session = await findSession(db, parts.sessionId);
  const standing = session && standingOf(presented, parts, session, settings, new Date(), FINDING_GENERATIONS_BEHIND);
  return standing && standing.is !== 'unknown' ? session : undefined;
}

/**
 * The session a refresh token names, unchecked: what a cookie's CSRF token is checked against,
 * before the token itself is. Read off a token that names its session; looked up for one from before.
 */
export async function sessionNamedByRefreshToken(db: DbOrTx, presented: string): Promise<string | undefined> {
  const parts = parseRefreshToken(presented);
  if (parts) return parts.sessionId;
  if (!looksLikeOpaqueToken(presented)) return undefined;
  const [row] = await db.select({ sessionId: refreshTokens.sessionId }).from(refreshTokens).where(eq(refreshTokens.tokenHash, hashToken(presented)));
  return row?.sessionId;
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
  const refreshToken = newRefreshToken(sessionId);
  const { assurance } = input;
  const [row] = await queryRows(
    db,
    sql`
      with opened as (
        insert into sessions (id, user_id, user_agent, ip, created_at, last_used_at, expires_at, auth_time, amr, aal, refresh_token_hash)
        values (${sessionId}::uuid, ${input.userId}::uuid, ${input.userAgent}, ${input.ip}, ${at}::timestamptz,
                ${at}::timestamptz, ${idleExpiry(now, now, settings).toISOString()}::timestamptz,
                ${assurance.authTime.toISOString()}::timestamptz, ${textArray(assurance.amr)}, ${assurance.aal},
                ${hashToken(refreshToken)})
        returning *
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

/** Revokes the live impersonation sessions (sessions an admin opened as someone) of the users `whose` selects. */
async function endImpersonations(db: DbOrTx, whose: SQL, reason: RevocationReason): Promise<number> {
  const rows = await db
    .update(sessions)
    .set({ revokedAt: new Date(), revokedReason: reason })
    .where(and(whose, isNull(sessions.revokedAt), isNotNull(sessions.impersonatorId)))
    .returning({ id: sessions.id });
  return rows.length;
}

/**
 * Ends every impersonation of the user, returning how many. The check on each request compares
 * permissions only; a role that grants none (a marker for role rules) is checked when an
 * impersonation starts, so gaining one must end those already running.
 */
export async function endImpersonationsOf(db: DbOrTx, userId: string, reason: RevocationReason): Promise<number> {
  return endImpersonations(db, eq(sessions.userId, userId), reason);
}

/**
 * Ends every impersonation of the role's holders, returning how many: the role has just become a
 * marker (it grants no permission any more), which the per-request comparison of permissions cannot
 * see and an admin impersonating a holder may not hold.
 */
export async function endImpersonationsOfHolders(db: DbOrTx, roleId: string, reason: RevocationReason): Promise<number> {
  const holders = db.select({ userId: userRoles.userId }).from(userRoles).where(eq(userRoles.roleId, roleId));
  return endImpersonations(db, inArray(sessions.userId, holders), reason);
}
