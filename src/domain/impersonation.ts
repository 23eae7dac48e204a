import type { Db } from '../db/client.js';
import { sessions, type Session } from '../db/schema.js';
import { settleRaces } from '../db/errors.js';
import { problem } from '../errors.js';
import { lockTarget } from './admin-users.js';
import { assertGrantorHoldsMarkerRoles } from './delegation.js';

/** What an admin needs to act as a user, for as long as they do. */
export const IMPERSONATE_PERMISSION = 'users:impersonate';

/**
 * Opens a session in which `admin` acts as the user `targetId`, for `ttl` seconds: no refresh token,
 * so it ends with its one access token (or a logout). The admin must hold every permission the user
 * holds, and any role of theirs that grants no permission (exceeds_own_permissions otherwise),
 * checked under the same lock as any change of access.
 */
export async function startImpersonation(
  db: Db,
  admin: { userId: string },
  targetId: string,
  input: { reason: string; ip: string | null; userAgent: string | null; ttl: number },
): Promise<Session> {
  return settleRaces('Starting the impersonation', db.transaction(async (tx) => {
    const target = await lockTarget(tx, admin, targetId, 'impersonate');
    // A role granting no permission opens only role rules: acting as its holder needs it too.
    await assertGrantorHoldsMarkerRoles(tx, admin, target.roles, 'impersonate this user');
    if (!target.user.active) throw problem('account_disabled', 'This account is disabled: it cannot be impersonated.');
    // Whole seconds, as the token's iat and exp: the token and its session end together.
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const [session] = await tx
      .insert(sessions)
      .values({
        userId: targetId,
        impersonatorId: admin.userId,
        impersonationReason: input.reason,
        userAgent: input.userAgent,
        ip: input.ip,
        createdAt: now,
        lastUsedAt: now,
        expiresAt: new Date(now.getTime() + input.ttl * 1000),
        // Proves no factor of the user's: never fresh, never aal2.
        authTime: new Date(0),
        amr: [],
        aal: 'aal1',
      })
      .returning();
    return session!;
  }));
}
