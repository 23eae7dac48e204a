import { and, asc, eq, inArray, notInArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { ADMIN_PERMISSIONS, ADMIN_ROLE, BUILT_IN_ROLES } from '../db/seed.js';
import { permissions, rolePermissions, roles, userRoles } from '../db/schema.js';
import { problem } from '../errors.js';
import { uniqueNames } from './names.js';
import type { DbOrTx } from './users.js';

export interface RoleWithPermissions {
  name: string;
  description: string | null;
  permissions: string[];
  builtIn: boolean;
  createdAt: Date;
}

async function permissionsByRole(db: DbOrTx, roleIds: string[]): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  if (roleIds.length === 0) return map;
  const rows = await db
    .select({ roleId: rolePermissions.roleId, name: permissions.name })
    .from(rolePermissions)
    .innerJoin(permissions, eq(permissions.id, rolePermissions.permissionId))
    .where(inArray(rolePermissions.roleId, roleIds))
    .orderBy(asc(permissions.name));
  for (const row of rows) map.set(row.roleId, [...(map.get(row.roleId) ?? []), row.name]);
  return map;
}

export async function listRoles(db: DbOrTx): Promise<RoleWithPermissions[]> {
  const rows = await db.select().from(roles).orderBy(asc(roles.name));
  const granted = await permissionsByRole(db, rows.map((r) => r.id));
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
  const granted = await permissionsByRole(db, [role.id]);
  return { name: role.name, description: role.description, permissions: granted.get(role.id) ?? [], builtIn: Object.hasOwn(BUILT_IN_ROLES, role.name), createdAt: role.createdAt };
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

export async function createRole(db: Db, input: { name: string; description?: string; permissions?: string[] }): Promise<RoleWithPermissions> {
  return db.transaction(async (tx) => {
    const ids = await permissionIds(tx, input.permissions ?? []);
    const [role] = await tx
      .insert(roles)
      .values({ name: input.name, description: input.description ?? null })
      .onConflictDoNothing({ target: roles.name })
      .returning();
    if (!role) throw problem('role_exists', `A role named ${input.name} already exists.`);
    if (ids.length) await tx.insert(rolePermissions).values(ids.map((permissionId) => ({ roleId: role.id, permissionId })));
    return getRole(tx, role.name);
  });
}

export async function updateRole(db: Db, name: string, input: { description?: string | null }): Promise<RoleWithPermissions> {
  // A field left out of a PATCH stays as it is; only null clears the description.
  if (input.description === undefined) return getRole(db, name);
  const [role] = await db.update(roles).set({ description: input.description }).where(eq(roles.name, name)).returning();
  if (!role) throw problem('not_found', `No role named ${name}.`);
  return getRole(db, name);
}

/** Deletes a role. Built-in roles stay; a role still held by users needs `force`. */
export async function deleteRole(db: Db, name: string, force: boolean): Promise<void> {
  if (Object.hasOwn(BUILT_IN_ROLES, name)) throw problem('built_in_role', `The built-in role ${name} cannot be deleted.`);
  await db.transaction(async (tx) => {
    const [role] = await tx.select().from(roles).where(eq(roles.name, name)).for('update');
    if (!role) throw problem('not_found', `No role named ${name}.`);
    if (!force) {
      const [holder] = await tx.select({ userId: userRoles.userId }).from(userRoles).where(eq(userRoles.roleId, role.id)).limit(1);
      if (holder) throw problem('role_in_use', `The role ${name} is still assigned; delete with ?force=true to remove it from its users.`);
    }
    await tx.delete(roles).where(eq(roles.id, role.id));
  });
}

/** Replaces a role's permissions. `admin` keeps every admin permission whatever is asked. */
export async function setRolePermissions(db: Db, name: string, names: readonly string[]): Promise<RoleWithPermissions> {
  if (name === ADMIN_ROLE) {
    const dropped = ADMIN_PERMISSIONS.filter((p) => !names.includes(p));
    if (dropped.length) {
      throw problem('built_in_role', `The admin role always keeps ${dropped.join(', ')}.`);
    }
  }
  return db.transaction(async (tx) => {
    const [role] = await tx.select().from(roles).where(eq(roles.name, name)).for('update');
    if (!role) throw problem('not_found', `No role named ${name}.`);
    const ids = await permissionIds(tx, names);
    await tx
      .delete(rolePermissions)
      .where(and(eq(rolePermissions.roleId, role.id), ids.length ? notInArray(rolePermissions.permissionId, ids) : sql`true`));
    if (ids.length) {
      await tx.insert(rolePermissions).values(ids.map((permissionId) => ({ roleId: role.id, permissionId }))).onConflictDoNothing();
    }
    return getRole(tx, name);
  });
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

export async function deletePermission(db: Db, name: string): Promise<void> {
  if ((ADMIN_PERMISSIONS as readonly string[]).includes(name)) {
    throw problem('built_in_role', `${name} guards the admin API and cannot be deleted.`);
  }
  const deleted = await db.delete(permissions).where(eq(permissions.name, name)).returning({ id: permissions.id });
  if (deleted.length === 0) throw problem('not_found', `No permission named ${name}.`);
}
