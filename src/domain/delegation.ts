import { and, eq, inArray, notExists, sql } from 'drizzle-orm';
import { rolePermissions, roles } from '../db/schema.js';
import { queryRows } from '../db/rows.js';
import { ADMIN_ROLE } from '../db/seed.js';
import { problem } from '../errors.js';
import { accessColumns, type Tx } from './users.js';

/**
 * Who changes access. A signed-in user can hand out, take away and act on only what they hold
 * themselves; 'system' (the bootstrap, the CLI, tests) is bound by nothing.
 */
export type Grantor = { userId: string } | 'system';

// One lock for every change to who holds what (user roles, role permissions, roles, permissions),
// taken before the grantor's rights are read: a parallel change to those rights (or a demotion of
// the last admin) waits for this one to commit instead of slipping between the check and the write.
const ACCESS_CHANGE_LOCK = 4_718_201_339;

export async function lockAccessChanges(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${ACCESS_CHANGE_LOCK})`);
}

/**
 * The grantor's roles and permissions as committed now (not as cached): an account that is disabled
 * or gone holds nothing. Call after lockAccessChanges, in the transaction of the change.
 */
async function accessHeldBy(tx: Tx, grantor: { userId: string }): Promise<{ roles: ReadonlySet<string>; permissions: ReadonlySet<string> }> {
  const [row] = await queryRows<{ roles: string[]; permissions: string[] }>(
    tx,
    sql`select ${accessColumns} from users where users.id = ${grantor.userId}::uuid and users.active`,
  );
  return { roles: new Set(row?.roles ?? []), permissions: new Set(row?.permissions ?? []) };
}

function exceeds(what: string, kind: 'permission' | 'role', missing: string[]): Error {
  const named = `${missing.length > 1 ? `the ${kind}s` : `the ${kind}`} ${missing.join(', ')}`;
  return problem('exceeds_own_permissions', `You cannot ${what}: that needs ${named}, which you do not hold.`, {
    data: kind === 'permission' ? { missingPermissions: missing } : { missingPermissions: [], missingRoles: missing },
  });
}

/**
 * Refuses, as `exceeds_own_permissions`, a change that needs permissions the grantor lacks. `what`
 * finishes the sentence "You cannot ...".
 */
export async function assertGrantorHolds(tx: Tx, grantor: Grantor, needed: Iterable<string>, what: string): Promise<void> {
  if (grantor === 'system') return;
  const held = await accessHeldBy(tx, grantor);
  const missing = [...new Set(needed)].filter((p) => !held.permissions.has(p)).sort();
  if (missing.length > 0) throw exceeds(what, 'permission', missing);
}

/**
 * Refuses giving or taking away a role that grants no permission unless the grantor holds it (an
 * admin holds every role). Such a role means something only to role rules (`rolesRequired`), and
 * holding "all of its permissions" would otherwise let anyone with roles:assign hand it out.
 */
export async function assertGrantorHoldsMarkerRoles(tx: Tx, grantor: Grantor, roleNames: Iterable<string>, what: string): Promise<void> {
  if (grantor === 'system') return;
  const names = [...new Set(roleNames)];
  if (names.length === 0) return;
  const markers = await tx
    .select({ name: roles.name })
    .from(roles)
    .where(and(inArray(roles.name, names), notExists(tx.select({ one: sql`1` }).from(rolePermissions).where(eq(rolePermissions.roleId, roles.id)))));
  if (markers.length === 0) return;
  const held = await accessHeldBy(tx, grantor);
  if (held.roles.has(ADMIN_ROLE)) return;
  const missing = markers.map((m) => m.name).filter((r) => !held.roles.has(r)).sort();
  if (missing.length > 0) throw exceeds(what, 'role', missing);
}
