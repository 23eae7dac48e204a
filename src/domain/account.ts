import { and, eq, ne } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { isUniqueViolation } from '../db/errors.js';
import { users } from '../db/schema.js';
import { problem } from '../errors.js';
import { revokeUserSessions } from './sessions.js';
import { consumeUserToken, issueUserToken, revokeUserTokens } from './user-tokens.js';
import type { Tx } from './users.js';

export const TOKEN_DETAILS = {
  token_invalid: 'This link is not valid, or has already been used.',
  token_expired: 'This link has expired: ask for a new one.',
} as const;

/** What became of a user's outstanding links when the owner acted. */
export interface LinksEnded {
  resetLinksRevoked: number;
  emailChangeCancelled: boolean;
}

/**
 * A new password ends every reset link still out (whoever holds one must not set a password of
 * their own afterwards) and a pending email change (which may be the intruder's way to keep the account).
 */
async function endPendingLinks(tx: Tx, userId: string): Promise<LinksEnded> {
  const ended = await revokeUserTokens(tx, userId, ['reset_password', 'change_email']);
  return {
    resetLinksRevoked: ended.filter((purpose) => purpose === 'reset_password').length,
    emailChangeCancelled: ended.includes('change_email'),
  };
}

export type EmailConfirmation =
  | { userId: string; changedTo: null; previousEmail: null }
  | { userId: string; changedTo: string; previousEmail: string };

/**
 * Confirms a sign-up address, or switches to a new address once its owner clicked the link. A
 * switch also ends the reset links mailed to the old address, which is no longer the account's.
 */
export async function confirmEmail(db: Db, token: string): Promise<EmailConfirmation> {
  try {
    return await db.transaction(async (tx): Promise<EmailConfirmation> => {
      const result = await consumeUserToken(tx, token, ['confirm_email', 'change_email']);
      if (!result.ok) throw problem(result.code, TOKEN_DETAILS[result.code], { status: 400 });
      const { userId, newEmail, purpose } = result.token;
      const now = new Date();
      if (purpose === 'change_email' && newEmail) {
        const [before] = await tx.select({ email: users.email }).from(users).where(eq(users.id, userId)).for('update');
        if (!before) throw problem('token_invalid', TOKEN_DETAILS.token_invalid, { status: 400 });
        await tx.update(users).set({ email: newEmail, emailConfirmedAt: now, updatedAt: now }).where(eq(users.id, userId));
        await revokeUserTokens(tx, userId, ['reset_password'], now);
        return { userId, changedTo: newEmail, previousEmail: before.email };
      }
      const [user] = await tx.select({ confirmed: users.emailConfirmedAt }).from(users).where(eq(users.id, userId));
      if (!user?.confirmed) await tx.update(users).set({ emailConfirmedAt: now, updatedAt: now }).where(eq(users.id, userId));
      return { userId, changedTo: null, previousEmail: null };
    });
  } catch (err) {
    // Someone registered the new address between the request and the click.
    if (isUniqueViolation(err)) throw problem('email_taken', 'An account with this email already exists.');
    throw err;
  }
}

/**
 * Sets a new password from a reset link and logs the user out everywhere. The hash is made by the
 * caller before this short transaction (after `peekUserToken` told whose token it is): bcrypt
 * inside it would hold the database.
 */
export async function resetPassword(db: Db, token: string, passwordHash: string): Promise<{ userId: string } & LinksEnded> {
  return db.transaction(async (tx) => {
    const result = await consumeUserToken(tx, token, ['reset_password']);
    if (!result.ok) throw problem(result.code, TOKEN_DETAILS[result.code], { status: 400 });
    const { userId } = result.token;
    await tx.update(users).set({ passwordHash, updatedAt: new Date() }).where(eq(users.id, userId));
    await revokeUserSessions(tx, userId, 'password_reset');
    return { userId, ...(await endPendingLinks(tx, userId)) };
  });
}

/** Sets a new password chosen by the signed-in user: every other session ends, and so do old links. */
export async function changePassword(
  db: Db,
  input: { userId: string; passwordHash: string; keepSessionId: string },
): Promise<LinksEnded> {
  return db.transaction(async (tx) => {
    await tx.update(users).set({ passwordHash: input.passwordHash, updatedAt: new Date() }).where(eq(users.id, input.userId));
    await revokeUserSessions(tx, input.userId, 'password_change', input.keepSessionId);
    return endPendingLinks(tx, input.userId);
  });
}

/**
 * Starts an email change: the token of the confirmation link to mail to `newEmail`, or null when
 * another account has that address. Either way an older pending change ends. For a taken address
 * nothing is stored, so no link can ever complete that change; the caller answers alike in both
 * cases, so the answer does not tell whether an address has an account.
 */
export async function requestEmailChange(
  db: Db,
  input: { userId: string; newEmail: string; ttlSeconds: number },
): Promise<string | null> {
  return db.transaction(async (tx) => {
    const [taken] = await tx
      .select({ id: users.id })
      .from(users)
      .where(and(eq(users.email, input.newEmail), ne(users.id, input.userId)));
    if (taken) {
      await revokeUserTokens(tx, input.userId, ['change_email']);
      return null;
    }
    return issueUserToken(tx, { userId: input.userId, purpose: 'change_email', ttlSeconds: input.ttlSeconds, newEmail: input.newEmail });
  });
}
