import { inArray } from 'drizzle-orm';
import type { Db } from './client.js';
import { permissions, rolePermissions, roles } from './schema.js';

/** Permissions that guard Gatehouse's own admin API; the `admin` role always holds all of them. */
export const ADMIN_PERMISSIONS = [
  'users:read',
  'users:write',
  'users:delete',
  'users:mfa',
  'users:impersonate',
  'roles:read',
  'roles:write',
  'roles:assign',
  'audit:read',
  'keys:manage',
] as const;

export const DEFAULT_ROLE = 'user';
export const ADMIN_ROLE = 'admin';

/** The seed system's defaults: `user` can read, `admin` can read, write, delete and administer. */
export const BUILT_IN_ROLES: Record<string, { description: string; permissions: readonly string[] }> = {
  [DEFAULT_ROLE]: { description: 'Every registered user', permissions: ['read'] },
  [ADMIN_ROLE]: { description: 'Administrators', permissions: ['read', 'write', 'delete', ...ADMIN_PERMISSIONS] },
};

/**
 * Idempotent find-or-create of the built-in roles and permissions. Runs at every start and on
 * every instance, so it only ever inserts what is missing and never removes anything.
 */
export async function seed(db: Db): Promise<void> {
  const permissionNames = [...new Set(Object.values(BUILT_IN_ROLES).flatMap((r) => r.permissions))];
  await db.transaction(async (tx) => {
    await tx
      .insert(roles)
      .values(Object.entries(BUILT_IN_ROLES).map(([name, r]) => ({ name, description: r.description })))
      .onConflictDoNothing({ target: roles.name });
    await tx
      .insert(permissions)
      .values(permissionNames.map((name) => ({ name })))
      .onConflictDoNothing({ target: permissions.name });
    const roleRows = await tx.select().from(roles).where(inArray(roles.name, Object.keys(BUILT_IN_ROLES)));
    const permissionRows = await tx.select().from(permissions).where(inArray(permissions.name, permissionNames));
    const permissionId = new Map(permissionRows.map((p) => [p.name, p.id]));
    const links = roleRows.flatMap((role) =>
      (BUILT_IN_ROLES[role.name]?.permissions ?? []).map((name) => ({ roleId: role.id, permissionId: permissionId.get(name)! })),
    );
    await tx.insert(rolePermissions).values(links).onConflictDoNothing();
  });
}
