import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { isUniqueViolation } from '../db/errors.js';
import { users } from '../db/schema.js';
import { problem } from '../errors.js';
import { revokeUserSessions } from './sessions.js';
import { consumeUserToken } from './user-tokens.js';

export const TOKEN_DETAILS = {
  token_invalid: 'This link is not valid, or has already been used.',
  token_expired: 'This link has expired: ask for a new one.',
} as const;

/** Confirms a sign-up address, or switches to a new address once its owner clicked the link. */
export async function confirmEmail(db: Db, token: string): Promise<{ userId: string; changedTo: string | null }> {
  try {
    return await db.transaction(async (tx) => {
      const result = await consumeUserToken(tx, token, ['confirm_email', 'change_email']);
      if (!result.ok) throw problem(result.code, TOKEN_DETAILS[result.code], { status: 400 });
      const { userId, newEmail, purpose } = result.token;
      const now = new Date();
      if (purpose === 'change_email' && newEmail) {
        await tx.update(users).set({ email: newEmail, emailConfirmedAt: now, updatedAt: now }).where(eq(users.id, userId));
        return { userId, changedTo: newEmail };
      }
      const [user] = await tx.select({ confirmed: users.emailConfirmedAt }).from(users).where(eq(users.id, userId));
      if (!user?.confirmed) await tx.update(users).set({ emailConfirmedAt: now, updatedAt: now }).where(eq(users.id, userId));
      return { userId, changedTo: null };
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
export async function resetPassword(db: Db, token: string, passwordHash: string): Promise<string> {
  return db.transaction(async (tx) => {
    const result = await consumeUserToken(tx, token, ['reset_password']);
    if (!result.ok) throw problem(result.code, TOKEN_DETAILS[result.code], { status: 400 });
    const { userId } = result.token;
    await tx.update(users).set({ passwordHash, updatedAt: new Date() }).where(eq(users.id, userId));
    await revokeUserSessions(tx, userId, 'password_reset');
    return userId;
  });
}
