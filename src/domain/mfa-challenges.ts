import { and, eq, gt, isNull, lt, sql } from 'drizzle-orm';
import { mfaAttempts, mfaChallenges, type MfaChallenge } from '../db/schema.js';
import { hashToken, looksLikeOpaqueToken, newOpaqueToken } from './tokens.js';
import type { DbOrTx } from './users.js';

/** How long a login waits for its second factor (seconds), and how many codes one mfaToken may try. */
export const MFA_TOKEN_TTL = 300;
export const CODES_PER_MFA_TOKEN = 5;
/** Codes one user may try, whatever the mfaToken, within the window (seconds). */
export const CODES_PER_USER = 10;
export const CODE_WINDOW = 15 * 60;

/**
 * A login whose password was right, waiting for the second factor. The mfaToken is opaque and
 * single use; only its SHA-256 is stored, bound to the user and to what was proved so far.
 */
export async function issueMfaChallenge(db: DbOrTx, userId: string, amr: string[], now = new Date()): Promise<{ mfaToken: string; expiresIn: number }> {
  const mfaToken = newOpaqueToken();
  // The user's challenges that ran out are of no use to anyone: they go as new ones come.
  await db.delete(mfaChallenges).where(and(eq(mfaChallenges.userId, userId), lt(mfaChallenges.expiresAt, now)));
  await db.insert(mfaChallenges).values({
    userId,
    tokenHash: hashToken(mfaToken),
    amr,
    createdAt: now,
    expiresAt: new Date(now.getTime() + MFA_TOKEN_TTL * 1000),
  });
  return { mfaToken, expiresIn: MFA_TOKEN_TTL };
}

/**
 * Reserves one code attempt on the challenge before the code is checked, in one statement, so that
 * parallel guesses cannot exceed CODES_PER_MFA_TOKEN. Undefined for an unknown, expired, used or
 * used-up token.
 */
export async function reserveChallengeAttempt(db: DbOrTx, mfaToken: string, now = new Date()): Promise<MfaChallenge | undefined> {
  if (!looksLikeOpaqueToken(mfaToken)) return undefined;
  const [challenge] = await db
    .update(mfaChallenges)
    .set({ attempts: sql`${mfaChallenges.attempts} + 1` })
    .where(
      and(
        eq(mfaChallenges.tokenHash, hashToken(mfaToken)),
        isNull(mfaChallenges.usedAt),
        gt(mfaChallenges.expiresAt, now),
        lt(mfaChallenges.attempts, CODES_PER_MFA_TOKEN),
      ),
    )
    .returning();
  return challenge;
}

/** The live challenge of an mfaToken, without spending one of its attempts: whom a passkey's second step is for. */
export async function findLiveChallenge(db: DbOrTx, mfaToken: string, now = new Date()): Promise<MfaChallenge | undefined> {
  if (!looksLikeOpaqueToken(mfaToken)) return undefined;
  const [challenge] = await db
    .select()
    .from(mfaChallenges)
    .where(
      and(
        eq(mfaChallenges.tokenHash, hashToken(mfaToken)),
        isNull(mfaChallenges.usedAt),
        gt(mfaChallenges.expiresAt, now),
        lt(mfaChallenges.attempts, CODES_PER_MFA_TOKEN),
      ),
    );
  return challenge;
}

/** Ends the challenge once its second factor was proved; false when a parallel request did first. */
export async function consumeChallenge(db: DbOrTx, challengeId: string): Promise<boolean> {
  const used = await db
    .update(mfaChallenges)
    .set({ usedAt: new Date() })
    .where(and(eq(mfaChallenges.id, challengeId), isNull(mfaChallenges.usedAt)))
    .returning({ id: mfaChallenges.id });
  return used.length > 0;
}

export type CodeGate = { allowed: true } | { allowed: false; retryAfter: number; lockedNow: boolean };

/**
 * Reserves one second-factor attempt for the user, whatever the mfaToken or the route (a login's
 * second step, a re-authentication), in one atomic statement: past CODES_PER_USER within
 * CODE_WINDOW the user's codes are refused until the window ends. A right code gives its
 * reservation back (releaseCodeAttempt), so only wrong ones add up.
 */
export async function reserveCodeAttempt(db: DbOrTx, userId: string, now = new Date()): Promise<CodeGate> {
  const at = now.toISOString();
  const windowOver = sql`${mfaAttempts.windowStartedAt} <= ${at}::timestamptz - make_interval(secs => ${CODE_WINDOW}::float8)`;
  const [row] = await db
    .insert(mfaAttempts)
    .values({ userId, attempts: 1, windowStartedAt: now })
    .onConflictDoUpdate({
      target: mfaAttempts.userId,
      set: {
        attempts: sql`case when ${windowOver} then 1 else ${mfaAttempts.attempts} + 1 end`,
        windowStartedAt: sql`case when ${windowOver} then ${at}::timestamptz else ${mfaAttempts.windowStartedAt} end`,
      },
    })
    .returning();
  if (row!.attempts <= CODES_PER_USER) return { allowed: true };
  const ends = row!.windowStartedAt.getTime() + CODE_WINDOW * 1000;
  return { allowed: false, retryAfter: Math.max(1, Math.ceil((ends - now.getTime()) / 1000)), lockedNow: row!.attempts === CODES_PER_USER + 1 };
}

export async function releaseCodeAttempt(db: DbOrTx, userId: string): Promise<void> {
  await db
    .update(mfaAttempts)
    .set({ attempts: sql`greatest(${mfaAttempts.attempts} - 1, 0)` })
    .where(eq(mfaAttempts.userId, userId));
}
