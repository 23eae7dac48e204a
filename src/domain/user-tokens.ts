import { and, eq, inArray, isNull } from 'drizzle-orm';
import { userTokens, type UserToken, type UserTokenPurpose } from '../db/schema.js';
import { hashToken, looksLikeOpaqueToken, newOpaqueToken } from './tokens.js';
import type { DbOrTx } from './users.js';

/**
 * Issues a single-use token for a mailed link. A new token of one purpose supersedes the user's
 * older unused ones, so only the latest link works.
 */
export async function issueUserToken(
  db: DbOrTx,
  input: { userId: string; purpose: UserTokenPurpose; ttlSeconds: number; newEmail?: string },
): Promise<string> {
  const now = new Date();
  await revokeUserTokens(db, input.userId, [input.purpose], now);
  const token = newOpaqueToken();
  await db.insert(userTokens).values({
    userId: input.userId,
    purpose: input.purpose,
    tokenHash: hashToken(token),
    newEmail: input.newEmail ?? null,
    createdAt: now,
    expiresAt: new Date(now.getTime() + input.ttlSeconds * 1000),
  });
  return token;
}

/**
 * Makes every unused link of these purposes dead (marked used, so it answers token_invalid).
 * Returns the purposes of those that would still have worked, one entry per link.
 */
export async function revokeUserTokens(
  db: DbOrTx,
  userId: string,
  purposes: UserTokenPurpose[],
  now = new Date(),
): Promise<UserTokenPurpose[]> {
  const rows = await db
    .update(userTokens)
    .set({ usedAt: now })
    .where(and(eq(userTokens.userId, userId), inArray(userTokens.purpose, purposes), isNull(userTokens.usedAt)))
    .returning({ purpose: userTokens.purpose, expiresAt: userTokens.expiresAt });
  return rows.filter((row) => row.expiresAt > now).map((row) => row.purpose);
}

export type ConsumeResult = { ok: true; token: UserToken } | { ok: false; code: 'token_invalid' | 'token_expired' };

/**
 * Marks the token used, once: of concurrent presentations only one succeeds. Run it inside the
 * transaction that applies the token's effect, so a failed effect leaves the token usable.
 */
export async function consumeUserToken(db: DbOrTx, token: string, purposes: UserTokenPurpose[]): Promise<ConsumeResult> {
  const found = await peekUserToken(db, token, purposes);
  if (!found.ok) return found;
  const now = new Date();
  const [claimed] = await db
    .update(userTokens)
    .set({ usedAt: now })
    .where(and(eq(userTokens.id, found.token.id), isNull(userTokens.usedAt)))
    .returning();
  return claimed ? { ok: true, token: claimed } : { ok: false, code: 'token_invalid' };
}

/** Checks a token without using it up (to know whose it is before slow work such as hashing). */
export async function peekUserToken(db: DbOrTx, token: string, purposes: UserTokenPurpose[]): Promise<ConsumeResult> {
  if (!looksLikeOpaqueToken(token)) return { ok: false, code: 'token_invalid' };
  const [found] = await db
    .select()
    .from(userTokens)
    .where(and(eq(userTokens.tokenHash, hashToken(token)), inArray(userTokens.purpose, purposes)));
  if (!found || found.usedAt) return { ok: false, code: 'token_invalid' };
  if (found.expiresAt <= new Date()) return { ok: false, code: 'token_expired' };
  return { ok: true, token: found };
}
