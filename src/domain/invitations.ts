import { and, desc, eq, gt, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { settleRaces } from '../db/errors.js';
import { DEFAULT_ROLE } from '../db/seed.js';
import { invitations, roles, userRoles, users, type InvitationRow, type User } from '../db/schema.js';
import { problem } from '../errors.js';
import { assertGrantorHolds, assertGrantorHoldsMarkerRoles, lockAccessChanges, type Grantor } from './delegation.js';
import { uniqueNames } from './names.js';
import { permissionsGrantedBy, roleIds } from './roles.js';
import { hashToken, looksLikeOpaqueToken, newOpaqueToken } from './tokens.js';
import type { DbOrTx } from './users.js';

export type InvitationStatus = 'pending' | 'accepted' | 'revoked' | 'expired';

export function statusOf(invitation: InvitationRow, now = new Date()): InvitationStatus {
  if (invitation.acceptedAt) return 'accepted';
  if (invitation.revokedAt) return 'revoked';
  return invitation.expiresAt <= now ? 'expired' : 'pending';
}

const invalid = () => problem('invitation_invalid', 'This invitation is not valid: it is unknown, expired, used or revoked. Ask for a new one.');

/**
 * Invites `email` to sign up with `roleNames` (besides the default role). The grantor must hold every
 * permission those roles grant (the delegation rule, as for assigning them), and no account may have
 * the address yet. A newer invitation to the same address supersedes the pending ones, so only the
 * latest link works. Answers the row and the token, which only the mail carries.
 */
export async function createInvitation(
  db: Db,
  grantor: Grantor,
  input: { email: string; roles: readonly string[]; ttlSeconds: number },
): Promise<{ invitation: InvitationRow; token: string }> {
  const names = uniqueNames(input.roles);
  return settleRaces('The invitation', db.transaction(async (tx) => {
    await lockAccessChanges(tx);
    await roleIds(tx, names);
    await assertGrantorHolds(tx, grantor, await permissionsGrantedBy(tx, names), `invite someone with the roles ${names.join(', ')}`);
    await assertGrantorHoldsMarkerRoles(tx, grantor, names, `invite someone with the roles ${names.join(', ')}`);
    const [taken] = await tx.select({ id: users.id }).from(users).where(eq(users.email, input.email));
    if (taken) throw problem('email_taken', 'An account with this email already exists.');
    const now = new Date();
    await tx
      .update(invitations)
      .set({ revokedAt: now })
      .where(and(eq(invitations.email, input.email), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)));
    const token = newOpaqueToken();
    const [invitation] = await tx
      .insert(invitations)
      .values({
        email: input.email,
        roles: names,
        tokenHash: hashToken(token),
        invitedBy: grantor === 'system' ? null : grantor.userId,
        createdAt: now,
        expiresAt: new Date(now.getTime() + input.ttlSeconds * 1000),
      })
      .returning();
    return { invitation: invitation!, token };
  }));
}

/** Every invitation, newest first (at most 1000), whatever its status. */
export async function listInvitations(db: DbOrTx): Promise<InvitationRow[]> {
  return db.select().from(invitations).orderBy(desc(invitations.createdAt)).limit(1000);
}

/** Idempotent: revoking a used or revoked invitation changes nothing. Answers whether it was usable. */
export async function revokeInvitation(db: DbOrTx, id: string): Promise<{ revoked: boolean; invitation: InvitationRow }> {
  const [revoked] = await db
    .update(invitations)
    .set({ revokedAt: new Date() })
    .where(and(eq(invitations.id, id), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)))
    .returning();
  if (revoked) return { revoked: true, invitation: revoked };
  const [found] = await db.select().from(invitations).where(eq(invitations.id, id));
  if (!found) throw problem('not_found', `No invitation with id ${id}.`);
  return { revoked: false, invitation: found };
}

/** The invitation a token stands for, if it can still be accepted (to check the password against its email before hashing). */
export async function usableInvitation(db: DbOrTx, token: string): Promise<InvitationRow> {
  if (!looksLikeOpaqueToken(token)) throw invalid();
  const [found] = await db.select().from(invitations).where(eq(invitations.tokenHash, hashToken(token)));
  if (!found || statusOf(found) !== 'pending') throw invalid();
  return found;
}

/**
 * Creates the invited account, its email confirmed by the acceptance, with the default role and the
 * invited roles that still exist. One transaction: the claim of the invitation (of parallel
 * acceptances exactly one flips acceptedAt, the others wait on the row lock and then find it used)
 * and the account stand or fall together, so an address taken meanwhile (email_taken) leaves the
 * invitation as it was.
 */
export async function acceptInvitation(
  db: Db,
  input: { token: string; passwordHash: string; name?: string | null },
): Promise<{ user: User; invitation: InvitationRow }> {
  if (!looksLikeOpaqueToken(input.token)) throw invalid();
  return settleRaces('Accepting the invitation', db.transaction(async (tx) => {
    const now = new Date();
    const [claimed] = await tx
      .update(invitations)
      .set({ acceptedAt: now })
      .where(and(eq(invitations.tokenHash, hashToken(input.token)), isNull(invitations.acceptedAt), isNull(invitations.revokedAt), gt(invitations.expiresAt, now)))
      .returning();
    if (!claimed) throw invalid();
    const [user] = await tx
      .insert(users)
      .values({ email: claimed.email, passwordHash: input.passwordHash, name: input.name ?? null, emailConfirmedAt: now })
      .onConflictDoNothing({ target: users.email })
      .returning();
    if (!user) throw problem('email_taken', 'An account with this email already exists.');
    const granted = await tx.select({ id: roles.id }).from(roles).where(inArray(roles.name, uniqueNames([DEFAULT_ROLE, ...claimed.roles])));
    if (granted.length) await tx.insert(userRoles).values(granted.map((role) => ({ userId: user.id, roleId: role.id })));
    await tx.update(invitations).set({ userId: user.id }).where(eq(invitations.id, claimed.id));
    return { user, invitation: { ...claimed, userId: user.id } };
  }));
}
