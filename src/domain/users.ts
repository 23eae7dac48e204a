import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { DEFAULT_ROLE } from '../db/seed.js';
import { permissions, rolePermissions, roles, sessions, userRoles, users, type User } from '../db/schema.js';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type DbOrTx = Db | Tx;

/** A user with the names of their roles and the union of those roles' permissions. */
export interface UserWithAccess {
  user: User;
  roles: string[];
  permissions: string[];
}

/**
 * Creates the user with the default role, or returns null when the email is taken. The unique
 * index settles races between parallel registrations, not a read before the write.
 */
export async function createUser(
  db: Db,
  input: { email: string; passwordHash: string; name?: string | null },
): Promise<User | null> {
  return db.transaction(async (tx) => {
    const [user] = await tx
      .insert(users)
      .values({ email: input.email, passwordHash: input.passwordHash, name: input.name ?? null })
      .onConflictDoNothing({ target: users.email })
      .returning();
    if (!user) return null;
    const [role] = await tx.select({ id: roles.id }).from(roles).where(eq(roles.name, DEFAULT_ROLE));
    if (role) await tx.insert(userRoles).values({ userId: user.id, roleId: role.id });
    return user;
  });
}

export async function findUserByEmail(db: DbOrTx, email: string): Promise<User | undefined> {
  const [user] = await db.select().from(users).where(eq(users.email, email));
  return user;
}

export async function findUserById(db: DbOrTx, id: string): Promise<User | undefined> {
  const [user] = await db.select().from(users).where(eq(users.id, id));
  return user;
}

export async function loadUserWithAccess(db: DbOrTx, userId: string): Promise<UserWithAccess | undefined> {
  const user = await findUserById(db, userId);
  if (!user) return undefined;
  const [access] = await loadAccessFor(db, [userId]);
  return { user, roles: access?.roles ?? [], permissions: access?.permissions ?? [] };
}

/** Role and permission names for many users in two queries, sorted for stable output. */
export async function loadAccessFor(db: DbOrTx, userIds: string[]): Promise<{ userId: string; roles: string[]; permissions: string[] }[]> {
  if (userIds.length === 0) return [];
  const roleRows = await db
    .select({ userId: userRoles.userId, roleId: roles.id, role: roles.name })
    .from(userRoles)
    .innerJoin(roles, eq(roles.id, userRoles.roleId))
    .where(inArray(userRoles.userId, userIds));
  const roleIds = [...new Set(roleRows.map((r) => r.roleId))];
  const permissionRows = roleIds.length
    ? await db
        .select({ roleId: rolePermissions.roleId, permission: permissions.name })
        .from(rolePermissions)
        .innerJoin(permissions, eq(permissions.id, rolePermissions.permissionId))
        .where(inArray(rolePermissions.roleId, roleIds))
    : [];
  const permissionsByRole = new Map<string, string[]>();
  for (const row of permissionRows) {
    permissionsByRole.set(row.roleId, [...(permissionsByRole.get(row.roleId) ?? []), row.permission]);
  }
  return userIds.map((userId) => {
    const mine = roleRows.filter((r) => r.userId === userId);
    const granted = new Set(mine.flatMap((r) => permissionsByRole.get(r.roleId) ?? []));
    return { userId, roles: mine.map((r) => r.role).sort(), permissions: [...granted].sort() };
  });
}

/** Trackable: the previous login moves down one slot, as the seed system's trackable does. */
export async function recordLogin(db: DbOrTx, userId: string, ip: string | null): Promise<void> {
  await db
    .update(users)
    .set({
      previousLoginAt: sql`${users.lastLoginAt}`,
      previousLoginIp: sql`${users.lastLoginIp}`,
      lastLoginAt: new Date(),
      lastLoginIp: ip,
      loginCount: sql`${users.loginCount} + 1`,
    })
    .where(eq(users.id, userId));
}

export async function updatePasswordHash(db: DbOrTx, userId: string, passwordHash: string): Promise<void> {
  await db.update(users).set({ passwordHash, updatedAt: new Date() }).where(eq(users.id, userId));
}

export async function liveSessionIds(db: DbOrTx, userId: string): Promise<string[]> {
  const rows = await db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.userId, userId), sql`${sessions.revokedAt} is null`));
  return rows.map((r) => r.id);
}

export async function updateProfile(db: DbOrTx, userId: string, input: { name: string | null }): Promise<void> {
  await db.update(users).set({ name: input.name, updatedAt: new Date() }).where(eq(users.id, userId));
}
