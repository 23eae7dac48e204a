import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { fromRow, queryRows } from '../db/rows.js';
import { ADMIN_ROLE, DEFAULT_ROLE } from '../db/seed.js';
import { roles, userRoles, users, type User } from '../db/schema.js';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type DbOrTx = Db | Tx;

/** A user with the names of their roles and the union of those roles' permissions. */
export interface UserWithAccess {
  user: User;
  roles: string[];
  permissions: string[];
  /** Whether the user has a confirmed authenticator app (TOTP). */
  mfaEnrolled: boolean;
  /** Whether the user has a passkey: a second factor too where PASSKEY_COUNTS_AS_MFA. */
  hasPasskey: boolean;
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

/** What the authorization cache holds about a user (see access-cache.ts). */
export interface AuthorizationState extends UserWithAccess {
  liveSessionIds: string[];
}

/**
 * The role names of the user in scope as `users`, and the union of those roles' permissions, both
 * sorted as JS sorts, and whether they have a second factor: for selects of users that need their
 * access too. The admin role is the
 * superuser: it holds every permission, including those created after it.
 */
export const accessColumns = sql`
  array(select r.name from user_roles ur join roles r on r.id = ur.role_id
        where ur.user_id = users.id order by r.name collate "C") as roles,
  array(select p.name collate "C" from permissions p
        where exists (select 1 from user_roles ur join role_permissions rp on rp.role_id = ur.role_id
                      where ur.user_id = users.id and rp.permission_id = p.id)
           or exists (select 1 from user_roles ur join roles r on r.id = ur.role_id
                      where ur.user_id = users.id and r.name = ${ADMIN_ROLE})
        order by 1) as permissions,
  exists(select 1 from totp_factors f where f.user_id = users.id and f.confirmed_at is not null) as mfa_enrolled,
  exists(select 1 from passkeys pk where pk.user_id = users.id) as has_passkey`;

/**
 * The columns of an AuthorizationState, for a select with the user's row in scope as `users`: the
 * user, their access and the ids of their live sessions. Expired ones are left out: nothing revokes
 * them, so a user who logs in daily would otherwise carry every session they ever opened. A
 * fragment, so that a statement that finds the user anyway (a refresh) can bring the state along
 * instead of a second round trip.
 */
export const authorizationColumns = sql`
  users.*, ${accessColumns},
  array(select s.id::text from sessions s
        where s.user_id = users.id and s.revoked_at is null and s.expires_at > now()) as live_session_ids`;

/** A row selected with `accessColumns`, as the user with their access. */
export function userWithAccessFrom(row: Record<string, unknown>): UserWithAccess {
  const { roles, permissions, mfa_enrolled, has_passkey } = row as { roles: string[]; permissions: string[]; mfa_enrolled: boolean; has_passkey: boolean };
  return { user: fromRow(users, row), roles, permissions, mfaEnrolled: mfa_enrolled, hasPasskey: has_passkey };
}

export function authorizationStateFrom(row: Record<string, unknown>): AuthorizationState {
  return { ...userWithAccessFrom(row), liveSessionIds: (row as { live_session_ids: string[] }).live_session_ids };
}

/** A user with their access, in one query. */
export async function loadUserWithAccess(db: DbOrTx, userId: string): Promise<UserWithAccess | undefined> {
  const [row] = await queryRows(db, sql`select users.*, ${accessColumns} from users where users.id = ${userId}::uuid`);
  return row && userWithAccessFrom(row);
}

/** Several users' AuthorizationStates in one query, by id: those that still exist. */
export async function loadAuthorizationStates(db: DbOrTx, userIds: readonly string[]): Promise<Map<string, AuthorizationState>> {
  // One text parameter, the same for both drivers; the ids are uuids (the cache's keys), so need no quoting.
  const rows = await queryRows(db, sql`select ${authorizationColumns} from users where users.id = any(${`{${userIds.join(',')}}`}::uuid[])`);
  return new Map(rows.map((row) => {
    const state = authorizationStateFrom(row);
    return [state.user.id, state];
  }));
}

/** A user's AuthorizationState in one query: one round trip on a cache miss. */
export async function loadAuthorizationState(db: DbOrTx, userId: string): Promise<AuthorizationState | undefined> {
  const [row] = await queryRows(db, sql`select ${authorizationColumns} from users where users.id = ${userId}::uuid`);
  return row && authorizationStateFrom(row);
}

export async function updatePasswordHash(db: DbOrTx, userId: string, passwordHash: string): Promise<void> {
  await db.update(users).set({ passwordHash, updatedAt: new Date() }).where(eq(users.id, userId));
}

export async function updateProfile(db: DbOrTx, userId: string, input: { name: string | null }): Promise<void> {
  await db.update(users).set({ name: input.name, updatedAt: new Date() }).where(eq(users.id, userId));
}
