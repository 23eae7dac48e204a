import { and, asc, eq, inArray, notInArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { ADMIN_PERMISSIONS, ADMIN_ROLE, BUILT_IN_ROLES } from '../db/seed.js';
import { permissions, rolePermissions, roles, userRoles } from '../db/schema.js';
import { settleRaces } from '../db/errors.js';
import { problem } from '../errors.js';
import { assertGrantorHolds, lockAccessChanges, type Grantor } from './delegation.js';
import { endImpersonationsOfHolders } from './sessions.js';
import { uniqueNames } from './names.js';
import type { DbOrTx } from './users.js';

export interface RoleWithPermissions {
  name: string;
  description: string | null;
  permissions: string[];
  builtIn: boolean;
  createdAt: Date;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The permissions each role grants; the admin role grants every permission there is. */
async function permissionsByRole(db: DbOrTx, rows: readonly { id: string; name: string }[]): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  if (rows.length === 0) return map;
  const links = await db
    .select({ roleId: rolePermissions.roleId, name: permissions.name })
    .from(rolePermissions)
    .innerJoin(permissions, eq(permissions.id, rolePermissions.permissionId))
    .where(inArray(rolePermissions.roleId, rows.map((r) => r.id)));
  for (const link of links) map.set(link.roleId, [...(map.get(link.roleId) ?? []), link.name]);
  const admin = rows.find((r) => r.name === ADMIN_ROLE);
  if (admin) map.set(admin.id, (await db.select({ name: permissions.name }).from(permissions)).map((p) => p.name));
  for (const names of map.values()) names.sort(byName);
  return map;
}

export async function listRoles(db: DbOrTx): Promise<RoleWithPermissions[]> {
  const rows = await db.select().from(roles).orderBy(asc(roles.name));
  const granted = await permissionsByRole(db, rows);
  return rows.map((r) => ({
    name: r.name,
    description: r.description,
    permissions: granted.get(r.id) ?? [],
    builtIn: Object.hasOwn(BUILT_IN_ROLES, r.name),
    createdAt: r.createdAt,
  }));
}

export async function getRole(db: DbOrTx, name: string): Promise<RoleWithPermissions> {
  const [role] = await db.select().from(roles).where(eq(roles.name, name));
  if (!role) throw problem('not_found', `No role named ${name}.`);
  const granted = await permissionsByRole(db, [role]);
  return { name: role.name, description: role.description, permissions: granted.get(role.id) ?? [], builtIn: Object.hasOwn(BUILT_IN_ROLES, role.name), createdAt: role.createdAt };
}

/** Every permission the named roles grant between them (unknown names grant nothing). */
export async function permissionsGrantedBy(db: DbOrTx, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const rows = await db.select({ id: roles.id, name: roles.name }).from(roles).where(inArray(roles.name, [...names]));
  return [...new Set([...(await permissionsByRole(db, rows)).values()].flat())];
}

/** Ids of the named roles or permissions; any unknown name is a 400 that lists them all. */
async function idsByName(db: DbOrTx, table: typeof roles | typeof permissions, names: readonly string[]): Promise<string[]> {
  const wanted = uniqueNames(names);
  if (wanted.length === 0) return [];
  const rows: { id: string; name: string }[] = await db.select({ id: table.id, name: table.name }).from(table).where(inArray(table.name, wanted));
  const unknown = wanted.filter((n) => !rows.some((r) => r.name === n));
  if (unknown.length) {
    const kind = table === roles ? 'role' : 'permission';
    throw problem('validation_failed', `Unknown ${kind}${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}.`, {
      errors: unknown.map((n) => ({ path: `body/${kind}s`, message: `unknown ${kind} ${n}` })),
    });
  }
  return rows.map((r) => r.id);
}

export const permissionIds = (db: DbOrTx, names: readonly string[]) => idsByName(db, permissions, names);
export const roleIds = (db: DbOrTx, names: readonly string[]) => idsByName(db, roles, names);

export async function createRole(db: Db, grantor: Grantor, input: { name: string; description?: string; permissions?: string[] }): Promise<RoleWithPermissions> {
  return settleRaces('Creating the role', db.transaction(async (tx) => {
    await lockAccessChanges(tx);
    const ids = await permissionIds(tx, input.permissions ?? []);
    await assertGrantorHolds(tx, grantor, input.permissions ?? [], `create a role that grants ${uniqueNames(input.permissions ?? []).join(', ')}`);
    const [role] = await tx
      .insert(roles)
      .values({ name: input.name, description: input.description ?? null })
      .onConflictDoNothing({ target: roles.name })
      .returning();
    if (!role) throw problem('role_exists', `A role named ${input.name} already exists.`);
    if (ids.length) await tx.insert(rolePermissions).values(ids.map((permissionId) => ({ roleId: role.id, permissionId })));
    return getRole(tx, role.name);
  }));
}

export async function updateRole(db: Db, name: string, input: { description?: string | null }): Promise<RoleWithPermissions> {
  // A field left out of a PATCH stays as it is; only null clears the description.
  if (input.description === undefined) return getRole(db, name);
  const [role] = await db.update(roles).set({ description: input.description }).where(eq(roles.name, name)).returning();
  if (!role) throw problem('not_found', `No role named ${name}.`);
  return getRole(db, name);
}

/**
 * Deletes a role. Built-in roles stay; a role still held by users needs `force`. Deleting takes
 * the role's permissions from its holders: the grantor must hold them.
 */
export async function deleteRole(db: Db, grantor: Grantor, name: string, force: boolean): Promise<void> {
  if (Object.hasOwn(BUILT_IN_ROLES, name)) throw problem('built_in_role', `The built-in role ${name} cannot be deleted.`);
  await settleRaces('Deleting the role', db.transaction(async (tx) => {
    await lockAccessChanges(tx);
    const [role] = await tx.select().from(roles).where(eq(roles.name, name)).for('update');
    if (!role) throw problem('not_found', `No role named ${name}.`);
    await assertGrantorHolds(tx, grantor, (await permissionsByRole(tx, [role])).get(role.id) ?? [], `delete the role ${name}`);
    if (!force) {
      const [holder] = await tx.select({ userId: userRoles.userId }).from(userRoles).where(eq(userRoles.roleId, role.id)).limit(1);
      if (holder) throw problem('role_in_use', `The role ${name} is still assigned; delete with ?force=true to remove it from its users.`);
    }
    await tx.delete(roles).where(eq(roles.id, role.id));
  }));
}

/**
 * Replaces a role's permissions; the grantor must hold every permission added or removed. The
 * admin role holds every permission by definition: asking it for less is refused.
 */
export async function setRolePermissions(
  db: Db,
  grantor: Grantor,
  name: string,
  names: readonly string[],
): Promise<{ role: RoleWithPermissions; impersonationsEnded: number }> {
  return settleRaces("Changing the role's permissions", db.transaction(async (tx) => {
    await lockAccessChanges(tx);
    const [role] = await tx.select().from(roles).where(eq(roles.name, name)).for('update');
    if (!role) throw problem('not_found', `No role named ${name}.`);
    const ids = await permissionIds(tx, names);
    const current = (await permissionsByRole(tx, [role])).get(role.id) ?? [];
    const wanted = new Set(names);
    if (name === ADMIN_ROLE) {
      const dropped = current.filter((p) => !wanted.has(p));
      if (dropped.length) throw problem('built_in_role', `The admin role holds every permission; it cannot lose ${dropped.join(', ')}.`);
      return { role: await getRole(tx, name), impersonationsEnded: 0 };
    }
    const changed = [...current.filter((p) => !wanted.has(p)), ...[...wanted].filter((p) => !current.includes(p))];
    await assertGrantorHolds(tx, grantor, changed, `change ${changed.join(', ')} on the role ${name}`);
    await tx
      .delete(rolePermissions)
      .where(and(eq(rolePermissions.roleId, role.id), ids.length ? notInArray(rolePermissions.permissionId, ids) : sql`true`));
    if (ids.length) {
      await tx.insert(rolePermissions).values(ids.map((permissionId) => ({ roleId: role.id, permissionId }))).onConflictDoNothing();
    }
    const becameMarker = current.length > 0 && ids.length === 0;
    const impersonationsEnded = becameMarker ? await endImpersonationsOfHolders(tx, role.id, 'roles_changed') : 0;
    return { role: await getRole(tx, name), impersonationsEnded };
  }));
}

export async function listPermissions(db: DbOrTx) {
  return db.select().from(permissions).orderBy(asc(permissions.name));
}

export async function createPermission(db: Db, input: { name: string; description?: string }) {
  const [created] = await db
    .insert(permissions)
    .values({ name: input.name, description: input.description ?? null })
    .onConflictDoNothing({ target: permissions.name })
    .returning();
  if (!created) throw problem('permission_exists', `A permission named ${input.name} already exists.`);
  return created;
}

/** Deletes a permission, taking it from every role: the grantor must hold it. */
export async function deletePermission(db: Db, grantor: Grantor, name: string): Promise<void> {
  if ((ADMIN_PERMISSIONS as readonly string[]).includes(name)) {
    throw problem('built_in_role', `${name} guards the admin API and cannot be deleted.`);
  }
  await settleRaces('Deleting the permission', db.transaction(async (tx) => {
    await lockAccessChanges(tx);
    const [permission] = await tx.select({ id: permissions.id }).from(permissions).where(eq(permissions.name, name)).for('update');
    if (!permission) throw problem('not_found', `No permission named ${name}.`);
    await assertGrantorHolds(tx, grantor, [name], `delete the permission ${name}`);
    await tx.delete(permissions).where(eq(permissions.id, permission.id));
  }));
}
