import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { ADMIN_ROLE } from '../db/seed.js';
import { roles, userRoles, users } from '../db/schema.js';
import type { PasswordHasher } from './passwords.js';
import type { DbOrTx, Tx } from './users.js';

export type AdminBootstrapOutcome = 'created' | 'promoted' | 'already_admin' | 'refused_password_mismatch';

async function holdsAdmin(tx: Tx, userId: string): Promise<boolean> {
  const [row] = await tx
    .select({ id: userRoles.userId })
    .from(userRoles)
    .innerJoin(roles, eq(roles.id, userRoles.roleId))
    .where(and(eq(userRoles.userId, userId), eq(roles.name, ADMIN_ROLE)));
  return Boolean(row);
}

async function grantAdmin(tx: Tx, userId: string): Promise<void> {
  const assigned = await tx.select({ id: roles.id }).from(roles).where(inArray(roles.name, [ADMIN_ROLE, 'user']));
  await tx
    .insert(userRoles)
    .values(assigned.map((r) => ({ userId, roleId: r.id })))
    .onConflictDoNothing();
}

/**
 * The operator's admin (ADMIN_EMAIL/ADMIN_PASSWORD, create-admin): a new account is created as an
 * admin; an existing one is promoted (and reactivated) only when `password` is its password. Anyone
 * can register an email before the operator configures it: without that proof, the next start would
 * hand them the admin role. An active admin is left as it is. The operator named the address, so
 * it counts as confirmed (REQUIRE_EMAIL_CONFIRMATION would otherwise lock the admin out).
 */
export async function ensureAdmin(
  db: Db,
  input: { email: string; password: string; passwords: Pick<PasswordHasher, 'hash' | 'verify'> },
): Promise<{ userId: string; outcome: AdminBootstrapOutcome }> {
  const passwordHash = await input.passwords.hash(input.password);
  return db.transaction(async (tx) => {
    // Two instances starting at once: the unique email decides, the loser waits here for the
    // winner's commit and then finds its admin below.
    const [inserted] = await tx
      .insert(users)
      .values({ email: input.email, passwordHash, emailConfirmedAt: new Date() })
      .onConflictDoNothing({ target: users.email })
      .returning({ id: users.id });
    if (inserted) {
      await grantAdmin(tx, inserted.id);
      return { userId: inserted.id, outcome: 'created' as const };
    }
    const [user] = await tx.select().from(users).where(eq(users.email, input.email)).for('update');
    if (!user) throw new Error(`the account ${input.email} was deleted while the admin was being set up; try again`);
    if (user.active && (await holdsAdmin(tx, user.id))) return { userId: user.id, outcome: 'already_admin' as const };
    if (!(await input.passwords.verify(input.password, user.passwordHash))) {
      return { userId: user.id, outcome: 'refused_password_mismatch' as const };
    }
    await grantAdmin(tx, user.id);
    if (!user.active || !user.emailConfirmedAt) {
      await tx.update(users).set({ active: true, emailConfirmedAt: user.emailConfirmedAt ?? new Date(), updatedAt: new Date() }).where(eq(users.id, user.id));
    }
    return { userId: user.id, outcome: 'promoted' as const };
  });
}

export async function hasActiveAdmin(db: DbOrTx): Promise<boolean> {
  const [row] = await db
    .select({ id: users.id })
    .from(users)
    .innerJoin(userRoles, eq(userRoles.userId, users.id))
    .innerJoin(roles, eq(roles.id, userRoles.roleId))
    .where(and(eq(users.active, true), eq(roles.name, ADMIN_ROLE)))
    .limit(1);
  return Boolean(row);
}
