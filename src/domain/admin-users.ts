import { and, eq, ilike, inArray, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { queryRows } from '../db/rows.js';
import { ADMIN_ROLE } from '../db/seed.js';
import { roles, userRoles, users, type Passkey, type User } from '../db/schema.js';
import { settleRaces } from '../db/errors.js';
import { problem } from '../errors.js';
import { isUuid } from '../lib/uuid.js';
import { assertGrantorHolds, assertGrantorHoldsMarkerRoles, lockAccessChanges, type Grantor } from './delegation.js';
import { permissionsGrantedBy, roleIds } from './roles.js';
import { removeSecondFactors } from './mfa.js';
import { listPasskeys, removePasskey } from './passkeys.js';
import { endImpersonationsOf, revokeUserSessions } from './sessions.js';
import { accessColumns, loadUserWithAccess, userWithAccessFrom, type DbOrTx, type Tx, type UserWithAccess } from './users.js';

interface Cursor {
  createdAt: string;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id])).toString('base64url');
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** Dates the pattern lets through but PostgreSQL cannot cast (a 500, not a 400): February 30th, year 0. */
function isRealInstant(text: string): boolean {
  const millis = `${text.slice(0, 23)}Z`;
  const date = new Date(millis);
  return !Number.isNaN(date.getTime()) && date.getUTCFullYear() > 0 && date.toISOString() === millis;
}

export function decodeCursor(raw: string): Cursor {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown[];
    if (typeof createdAt === 'string' && TIMESTAMP.test(createdAt) && isRealInstant(createdAt) && typeof id === 'string' && isUuid(id)) {
      return { createdAt, id };
    }
  } catch {
    // fall through to the 400 below
  }
  throw problem('validation_failed', 'The cursor is not one this API returned.', {
    errors: [{ path: 'querystring/cursor', message: 'is malformed' }],
  });
}

/** created_at at full (microsecond) precision: a JS Date would round it and break the keyset. */
const createdAtText = sql<string>`to_char(${users.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export async function listUsers(
  db: DbOrTx,
  query: { limit: number; cursor?: string; q?: string; role?: string },
): Promise<{ items: UserWithAccess[]; nextCursor: string | null }> {
  const conditions: SQL[] = [];
  if (query.cursor) {
    const cursor = decodeCursor(query.cursor);
    conditions.push(sql`(${users.createdAt}, ${users.id}) > (${cursor.createdAt}::timestamptz, ${cursor.id}::uuid)`);
  }
  if (query.q) {
    const pattern = `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    conditions.push(or(ilike(users.email, pattern), ilike(users.name, pattern))!);
  }
  if (query.role) {
    conditions.push(
      inArray(
        users.id,
        db.select({ id: userRoles.userId }).from(userRoles).innerJoin(roles, eq(roles.id, userRoles.roleId)).where(eq(roles.name, query.role)),
      ),
    );
  }
  // One statement, the users with their access: the admin list is the heaviest read of the API.
  const rows = await queryRows<{ id: string; created_at_text: string }>(
    db,
    sql`select ${accessColumns}, users.*, ${createdAtText} as created_at_text from users
        ${conditions.length ? sql`where ${and(...conditions)}` : sql``}
        order by users.created_at, users.id limit ${query.limit + 1}`,
  );
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return {
    items: page.map(userWithAccessFrom),
    nextCursor: rows.length > query.limit && last ? encodeCursor({ createdAt: last.created_at_text, id: last.id }) : null,
  };
}

async function isActiveAdmin(tx: Tx, userId: string): Promise<boolean> {
  const [row] = await tx
    .select({ id: users.id })
    .from(users)
    .innerJoin(userRoles, eq(userRoles.userId, users.id))
    .innerJoin(roles, eq(roles.id, userRoles.roleId))
    .where(and(eq(users.id, userId), eq(users.active, true), eq(roles.name, ADMIN_ROLE)));
  return Boolean(row);
}

/** Refuses a change that would leave no active admin: nobody may lock everyone out. */
async function assertNotLastAdmin(tx: Tx, userId: string, change: string): Promise<void> {
  if (!(await isActiveAdmin(tx, userId))) return;
  const [row] = await tx
    .select({ count: sql<number>`count(*)::int` })
    .from(users)
    .innerJoin(userRoles, eq(userRoles.userId, users.id))
    .innerJoin(roles, eq(roles.id, userRoles.roleId))
    .where(and(eq(users.active, true), eq(roles.name, ADMIN_ROLE)));
  if ((row?.count ?? 0) <= 1) throw problem('last_admin', `This is the last active admin: it cannot be ${change}.`);
}

async function lockUser(tx: Tx, id: string): Promise<User> {
  const [user] = await tx.select().from(users).where(eq(users.id, id)).for('update');
  if (!user) throw problem('not_found', `No user with id ${id}.`);
  return user;
}

/**
 * Locks access changes (so two concurrent demotions cannot both see "another admin is left", and
 * the grantor's rights cannot change under the check), then the target user, whose current access
 * the grantor must hold all of to act on them at all: a user manager cannot disable an admin.
 */
export async function lockTarget(tx: Tx, grantor: Grantor, id: string, what: string): Promise<UserWithAccess> {
  await lockAccessChanges(tx);
  await lockUser(tx, id);
  const target = (await loadUserWithAccess(tx, id))!;
  await assertGrantorHolds(tx, grantor, target.permissions, `${what} this user`);
  return target;
}

/** Name and active flag. Deactivating logs the user out everywhere. */
export async function updateUser(
  db: Db,
  grantor: Grantor,
  id: string,
  input: { name?: string | null; active?: boolean },
): Promise<{ activeChanged: boolean }> {
  return settleRaces('Changing the user', db.transaction(async (tx) => {
    const { user } = await lockTarget(tx, grantor, id, 'change');
    if (input.active === false && user.active) {
      await assertNotLastAdmin(tx, id, 'deactivated');
      await revokeUserSessions(tx, id, 'user_disabled');
    }
    await tx
      .update(users)
      .set({ ...(input.name !== undefined ? { name: input.name } : {}), ...(input.active !== undefined ? { active: input.active } : {}), updatedAt: new Date() })
      .where(eq(users.id, id));
    return { activeChanged: input.active !== undefined && input.active !== user.active };
  }));
}

export async function deleteUser(db: Db, grantor: Grantor, id: string): Promise<void> {
  await settleRaces('Deleting the user', db.transaction(async (tx) => {
    await lockTarget(tx, grantor, id, 'delete');
    await assertNotLastAdmin(tx, id, 'deleted');
    await tx.delete(users).where(eq(users.id, id));
  }));
}

/**
 * Replaces the user's roles with exactly these. The grantor must hold everything the user holds
 * now and every permission of each role added or removed. A role added ends the user's
 * impersonations: the admin behind one may not hold it.
 */
export async function setUserRoles(
  db: Db,
  grantor: Grantor,
  id: string,
  names: readonly string[],
): Promise<{ added: string[]; removed: string[]; impersonationsEnded: number }> {
  return settleRaces("Changing the user's roles", db.transaction(async (tx) => {
    const before = await lockTarget(tx, grantor, id, 'change the roles of');
    const ids = await roleIds(tx, names);
    const wanted = new Set(names);
    const held = new Set(before.roles);
    const added = [...wanted].filter((r) => !held.has(r));
    const removed = [...held].filter((r) => !wanted.has(r));
    await assertGrantorHolds(tx, grantor, await permissionsGrantedBy(tx, [...added, ...removed]), `grant or take away the roles ${[...added, ...removed].join(', ')}`);
    await assertGrantorHoldsMarkerRoles(tx, grantor, [...added, ...removed], `grant or take away the roles ${[...added, ...removed].join(', ')}`);
    const [admin] = await tx.select({ id: roles.id }).from(roles).where(eq(roles.name, ADMIN_ROLE));
    if (admin && !ids.includes(admin.id)) await assertNotLastAdmin(tx, id, `stripped of ${ADMIN_ROLE}`);
    await tx.delete(userRoles).where(eq(userRoles.userId, id));
    if (ids.length) await tx.insert(userRoles).values(ids.map((roleId) => ({ userId: id, roleId })));
    const impersonationsEnded = added.length ? await endImpersonationsOf(tx, id, 'roles_changed') : 0;
    return { added, removed, impersonationsEnded };
  }));
}

/**
 * Takes away the user's second factor (a lost authenticator) and logs them out everywhere, for a
 * grantor who holds everything the user holds.
 */
export async function resetSecondFactorOf(
  db: Db,
  grantor: Grantor,
  id: string,
  options: { countsAsMfa: boolean },
): Promise<{ hadFactor: boolean; sessions: number }> {
  return db.transaction(async (tx) => {
    await lockTarget(tx, grantor, id, 'reset the second factor of');
    const hadFactor = await removeSecondFactors(tx, id, options);
    return { hadFactor, sessions: await revokeUserSessions(tx, id, 'admin') };
  });
}

/** Logs the user out everywhere, for a grantor who holds everything the user holds; returns how many sessions ended. */
export async function revokeSessionsOf(db: Db, grantor: Grantor, id: string): Promise<number> {
  return db.transaction(async (tx) => {
    await lockTarget(tx, grantor, id, 'log out');
    return revokeUserSessions(tx, id, 'admin');
  });
}

/** The passkeys of a user, for an admin; not_found when there is no such user. */
export async function passkeysOf(db: DbOrTx, id: string): Promise<Passkey[]> {
  const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
  if (!user) throw problem('not_found', `No user with id ${id}.`);
  return listPasskeys(db, id);
}

/**
 * Removes one passkey of the user (a lost or stolen device), for a grantor who holds everything
 * the user holds. Their sessions stay; without another second factor they are back to aal1.
 */
export async function removePasskeyOf(db: Db, grantor: Grantor, id: string, passkeyId: string, options: { countsAsMfa: boolean }): Promise<Passkey> {
  return db.transaction(async (tx) => {
    await lockTarget(tx, grantor, id, 'remove a passkey of');
    return removePasskey(tx, id, passkeyId, options);
  });
}
