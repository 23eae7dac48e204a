import { sql } from 'drizzle-orm';
import { queryRows } from '../db/rows.js';
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
 * The grantor's permissions as committed now (not as cached): an account that is disabled or gone
 * holds nothing. Call after lockAccessChanges, in the transaction of the change.
 */
async function permissionsHeldBy(tx: Tx, grantor: { userId: string }): Promise<ReadonlySet<string>> {
  const [row] = await queryRows<{ permissions: string[] }>(
    tx,
    sql`select ${accessColumns} from users where users.id = ${grantor.userId}::uuid and users.active`,
  );
  return new Set(row?.permissions ?? []);
}

/**
 * Refuses, as `exceeds_own_permissions`, a change that needs permissions the grantor lacks. `what`
 * finishes the sentence "You cannot ...".
 */
export async function assertGrantorHolds(tx: Tx, grantor: Grantor, needed: Iterable<string>, what: string): Promise<void> {
  if (grantor === 'system') return;
  const held = await permissionsHeldBy(tx, grantor);
  const missing = [...new Set(needed)].filter((p) => !held.has(p)).sort();
  if (missing.length === 0) return;
  throw problem(
    'exceeds_own_permissions',
    `You cannot ${what}: that needs ${missing.length > 1 ? 'the permissions' : 'the permission'} ${missing.join(', ')}, which you do not hold.`,
    { data: { missingPermissions: missing } },
  );
}
