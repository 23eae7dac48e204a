import { and, eq, gt, isNull, lte, or, sql } from 'drizzle-orm';
import { loginAttempts } from '../db/schema.js';
import type { PasswordHasher } from './passwords.js';
import type { DbOrTx } from './users.js';

export interface LockoutSettings {
  maxFailures: number;
  /** Seconds within which failures add up. */
  window: number;
  /** Seconds of the first lockout; each further one doubles, up to maxLockout. */
  lockout: number;
  maxLockout: number;
}

export type AttemptGate = { allowed: true } | { allowed: false; retryAfter: number; lockedNow: boolean };

const secondsUntil = (date: Date, now: Date) => Math.max(1, Math.ceil((date.getTime() - now.getTime()) / 1000));

/**
 * Reserves one login attempt for this email before the password is checked, in one atomic
 * statement. Of 50 parallel guesses at most `maxFailures` get through to the password check; the
 * rest are refused as locked, whatever their password. Known and unknown emails are treated alike.
 */
export async function reserveLoginAttempt(db: DbOrTx, email: string, settings: LockoutSettings): Promise<AttemptGate> {
  const now = new Date();
  const windowStart = new Date(now.getTime() - settings.window * 1000);
  const t = loginAttempts;
  // Raw SQL skips Drizzle's column mapping, and postgres.js under Drizzle takes timestamps as strings.
  const at = now.toISOString();
  const stillLocked = sql`${t.lockedUntil} is not null and ${t.lockedUntil} > ${at}`;
  const windowOver = sql`${t.windowStartedAt} <= ${windowStart.toISOString()}`;
  const [row] = await db
    .insert(t)
    .values({ email, attempts: 1, windowStartedAt: now })
    .onConflictDoUpdate({
      target: t.email,
      set: {
        attempts: sql`case when ${stillLocked} then ${t.attempts} when ${windowOver} then 1 else ${t.attempts} + 1 end`,
        windowStartedAt: sql`case when ${stillLocked} then ${t.windowStartedAt} when ${windowOver} then ${at}::timestamptz else ${t.windowStartedAt} end`,
      },
    })
    .returning();
  if (row!.lockedUntil && row!.lockedUntil > now) {
    return { allowed: false, retryAfter: secondsUntil(row!.lockedUntil, now), lockedNow: false };
  }
  if (row!.attempts > settings.maxFailures) {
    // More parallel attempts than failures allowed: lock now, once, and refuse this one.
    const lockedUntil = await lock(db, email, settings, now);
    return { allowed: false, retryAfter: secondsUntil(lockedUntil, now), lockedNow: true };
  }
  return { allowed: true };
}

/** After a wrong password: the attempt stays counted; the last allowed failure locks the email. */
export async function loginFailed(db: DbOrTx, email: string, settings: LockoutSettings): Promise<{ lockedNow: boolean }> {
  const [row] = await db.select().from(loginAttempts).where(eq(loginAttempts.email, email));
  if (!row || row.attempts < settings.maxFailures) return { lockedNow: false };
  const now = new Date();
  if (row.lockedUntil && row.lockedUntil > now) return { lockedNow: false };
  await lock(db, email, settings, now);
  return { lockedNow: true };
}

/** A successful login or a password reset starts the count (and the doubling) afresh. */
export async function clearLoginFailures(db: DbOrTx, email: string): Promise<void> {
  await db.delete(loginAttempts).where(eq(loginAttempts.email, email));
}

export type PasswordCheck =
  | { ok: true }
  | { ok: false; reason: 'locked'; retryAfter: number; lockedNow: boolean }
  | { ok: false; reason: 'wrong_password'; lockedNow: boolean };

/**
 * The password check of a signed-in user (before a password or email change) is a login attempt
 * on their email: it counts toward the same lockout and is refused while the email is locked, so
 * a stolen access token is no unlimited way to guess the password.
 */
export async function checkPasswordWithLockout(
  db: DbOrTx,
  passwords: PasswordHasher,
  user: { email: string; passwordHash: string },
  password: string,
  settings: LockoutSettings,
): Promise<PasswordCheck> {
  const gate = await reserveLoginAttempt(db, user.email, settings);
  if (!gate.allowed) return { ok: false, reason: 'locked', retryAfter: gate.retryAfter, lockedNow: gate.lockedNow };
  if (!(await passwords.verify(password, user.passwordHash))) {
    const { lockedNow } = await loginFailed(db, user.email, settings);
    return { ok: false, reason: 'wrong_password', lockedNow };
  }
  // As after a login: the right password starts the count afresh (and the reservation is not a failure).
  await clearLoginFailures(db, user.email);
  return { ok: true };
}

async function lock(db: DbOrTx, email: string, settings: LockoutSettings, now: Date): Promise<Date> {
  const t = loginAttempts;
  // Only one of several concurrent lockers sets the lock: the one that finds it unset or over.
  const [locked] = await db
    .update(t)
    .set({
      lockedUntil: sql`${now.toISOString()}::timestamptz + make_interval(secs => least(${settings.lockout}::float8 * power(2, ${t.lockouts}), ${settings.maxLockout}::float8))`,
      lockouts: sql`${t.lockouts} + 1`,
      attempts: 0,
      windowStartedAt: now,
    })
    .where(and(eq(t.email, email), or(isNull(t.lockedUntil), lte(t.lockedUntil, now))))
    .returning({ lockedUntil: t.lockedUntil });
  if (locked?.lockedUntil) return locked.lockedUntil;
  const [current] = await db.select({ lockedUntil: t.lockedUntil }).from(t).where(and(eq(t.email, email), gt(t.lockedUntil, now)));
  return current?.lockedUntil ?? new Date(now.getTime() + settings.lockout * 1000);
}
