import { and, eq, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { mfaChallenges, passkeys, recoveryCodes, sessions, totpFactors, type Session } from '../db/schema.js';
import { problem } from '../errors.js';
import type { KeyRing } from '../lib/encryption.js';
import { recoveryCodesLeft, replaceRecoveryCodes } from './recovery-codes.js';
import { dropSecondFactor, setSessionAssurance } from './sessions.js';
import { matchTotpCode, newTotpSecret, totpUri } from './totp.js';
import type { DbOrTx } from './users.js';

/** How long an enrolled authenticator waits for its first code (seconds) before it must start over. */
export const ENROLMENT_TTL = 10 * 60;

/** What seals TOTP secrets (ENCRYPTION_KEYS) and hashes recovery codes (a key from PASSWORD_PEPPER). */
export interface MfaKeys {
  keyRing: KeyRing;
  recoveryCodeKey: Buffer;
}

/** Bound into each sealed secret: one user's secret copied onto another's row does not open. */
const sealedFor = (userId: string) => `totp:${userId}`;

/** A session's method references once a second factor was proved in it (RFC 8176: otp, rc or hwk, then mfa). */
export function withSecondFactor(amr: readonly string[], method: 'otp' | 'rc' | 'hwk'): string[] {
  return [...new Set([...amr, method, 'mfa'])];
}

/** The second factors the user has: a confirmed authenticator, passkeys. */
export async function secondFactorsOf(db: DbOrTx, userId: string): Promise<{ totp: boolean; passkey: boolean }> {
  const [row] = await db
    .select({
      totp: sql<boolean>`exists(select 1 from ${totpFactors} where ${totpFactors.userId} = ${userId} and ${totpFactors.confirmedAt} is not null)`,
      passkey: sql<boolean>`exists(select 1 from ${passkeys} where ${passkeys.userId} = ${userId})`,
    })
    .from(sql`(select 1) as one`);
  return { totp: Boolean(row?.totp), passkey: Boolean(row?.passkey) };
}

/** Whether these factors make a second factor: an authenticator app, or a passkey when PASSKEY_COUNTS_AS_MFA. */
export function countsAsSecondFactor(factors: { totp: boolean; passkey: boolean }, passkeyCountsAsMfa: boolean): boolean {
  return factors.totp || (passkeyCountsAsMfa && factors.passkey);
}

/**
 * Whether the user has a second factor, what decides that a login needs one: a confirmed
 * authenticator, or a passkey where PASSKEY_COUNTS_AS_MFA makes it one.
 */
export async function hasSecondFactor(db: DbOrTx, userId: string, { countsAsMfa }: { countsAsMfa: boolean }): Promise<boolean> {
  return countsAsSecondFactor(await secondFactorsOf(db, userId), countsAsMfa);
}

export interface MfaStatus {
  factors: { type: 'totp'; confirmedAt: Date }[];
  recoveryCodesLeft: number;
}

export async function mfaStatus(db: DbOrTx, userId: string): Promise<MfaStatus> {
  const [factor] = await db
    .select({ confirmedAt: totpFactors.confirmedAt })
    .from(totpFactors)
    .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt)));
  return {
    factors: factor ? [{ type: 'totp', confirmedAt: factor.confirmedAt! }] : [],
    recoveryCodesLeft: await recoveryCodesLeft(db, userId),
  };
}

/**
 * A new authenticator secret for the user, unconfirmed until its first code comes back. It
 * replaces an unconfirmed one; a confirmed one must be removed first (mfa_already_enrolled).
 */
export async function startTotpEnrolment(
  db: DbOrTx,
  keyRing: KeyRing,
  user: { id: string; email: string },
  issuer: string,
  now = new Date(),
): Promise<{ secret: string; otpauthUri: string }> {
  const secret = newTotpSecret();
  const sealed = keyRing.seal(secret, sealedFor(user.id));
  // One statement: a confirmed factor is never overwritten, whatever runs in parallel.
  const [replaced] = await db
    .insert(totpFactors)
    .values({ userId: user.id, secret: sealed, createdAt: now })
    .onConflictDoUpdate({
      target: totpFactors.userId,
      set: { secret: sealed, createdAt: now, lastUsedStep: null },
      setWhere: isNull(totpFactors.confirmedAt),
    })
    .returning({ userId: totpFactors.userId });
  if (!replaced) throw problem('mfa_already_enrolled', 'An authenticator is already enrolled: remove it first (DELETE /auth/mfa/totp).');
  return { secret, otpauthUri: totpUri(secret, { issuer, label: user.email }) };
}

/**
 * Confirms the enrolment with a first code, in one transaction: the factor counts from now on
 * (the code's time step as used, so it cannot log in again), ten new recovery codes replace any
 * old ones, and the confirming session is raised to aal2. The user's other sessions stay as they
 * are until they prove the factor themselves.
 */
export async function confirmTotpEnrolment(
  db: Db,
  keys: MfaKeys,
  input: { userId: string; sessionId: string; code: string },
  now = new Date(),
): Promise<{ recoveryCodes: string[]; session: Session }> {
  const { userId, sessionId } = input;
  const [factor] = await db.select().from(totpFactors).where(eq(totpFactors.userId, userId));
  if (factor?.confirmedAt) throw problem('mfa_already_enrolled', 'An authenticator is already enrolled.');
  if (!factor || factor.createdAt.getTime() <= now.getTime() - ENROLMENT_TTL * 1000) {
    throw problem('mfa_not_enrolled', 'No authenticator is waiting for its first code (an enrolment lasts 10 minutes): start with POST /auth/mfa/totp/enroll.');
  }
  const { plaintext: secret } = keys.keyRing.open(factor.secret, sealedFor(userId));
  const step = await matchTotpCode(secret, input.code, { at: now });
  if (step === null) throw problem('mfa_code_invalid', 'The code is wrong: enter the one your authenticator shows now.');
  return db.transaction(async (tx) => {
    // Only the enrolment whose code was checked: not one a parallel enroll replaced meanwhile.
    const [confirmed] = await tx
      .update(totpFactors)
      .set({ confirmedAt: now, lastUsedStep: step })
      .where(and(eq(totpFactors.userId, userId), isNull(totpFactors.confirmedAt), eq(totpFactors.secret, factor.secret)))
      .returning({ userId: totpFactors.userId });
    if (!confirmed) throw problem('mfa_already_enrolled', 'This enrolment was confirmed or replaced meanwhile.');
    const codes = await replaceRecoveryCodes(tx, keys.recoveryCodeKey, userId);
    // Locked, so that it cannot be revoked between this read and the update.
    const [current] = await tx.select({ amr: sessions.amr, revokedAt: sessions.revokedAt }).from(sessions).where(eq(sessions.id, sessionId)).for('update');
    if (!current || current.revokedAt) throw problem('session_revoked', 'This session has been revoked: log in again.');
    const session = await setSessionAssurance(tx, sessionId, { aal: 'aal2', amr: withSecondFactor(current.amr, 'otp'), authTime: now });
    return { recoveryCodes: codes, session: session! };
  });
}

export type CodeCheck = { ok: true } | { ok: false; reason: 'wrong_code' | 'replayed' | 'not_enrolled' };

/**
 * Checks a code of the user's authenticator and marks its time step used, atomically: of two
 * requests with the same code exactly one gets through, and a code whose step (or a later one)
 * was used before is a replay. A secret sealed under an older key is sealed again under the
 * first one as it is used (key rotation).
 */
export async function useTotpCode(db: DbOrTx, keyRing: KeyRing, userId: string, code: string, now = new Date()): Promise<CodeCheck> {
  const [factor] = await db
    .select()
    .from(totpFactors)
    .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt)));
  if (!factor) return { ok: false, reason: 'not_enrolled' };
  const { plaintext: secret, stale } = keyRing.open(factor.secret, sealedFor(userId));
  const step = await matchTotpCode(secret, code, { afterStep: factor.lastUsedStep, at: now });
  if (step === null) {
    const replayed = factor.lastUsedStep !== null && (await matchTotpCode(secret, code, { at: now })) !== null;
    return { ok: false, reason: replayed ? 'replayed' : 'wrong_code' };
  }
  const [claimed] = await db
    .update(totpFactors)
    .set({ lastUsedStep: step, ...(stale ? { secret: keyRing.seal(secret, sealedFor(userId)) } : {}) })
    .where(
      and(
        eq(totpFactors.userId, userId),
        isNotNull(totpFactors.confirmedAt),
        or(isNull(totpFactors.lastUsedStep), lt(totpFactors.lastUsedStep, step)),
      ),
    )
    .returning({ userId: totpFactors.userId });
  return claimed ? { ok: true } : { ok: false, reason: 'replayed' };
}

/**
 * Everything of the user's authenticator goes: the authenticator, the recovery codes and the
 * logins waiting for a code. Every session is back to aal1 unless a passkey that counts as a second
 * factor remains (as removing a passkey leaves them while an authenticator remains). True when a
 * confirmed factor was there.
 */
export async function removeSecondFactors(tx: DbOrTx, userId: string, options: { countsAsMfa: boolean }): Promise<boolean> {
  const removed = await tx.delete(totpFactors).where(eq(totpFactors.userId, userId)).returning({ confirmedAt: totpFactors.confirmedAt });
  await tx.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  await tx.delete(mfaChallenges).where(eq(mfaChallenges.userId, userId));
  if (!(await hasSecondFactor(tx, userId, options))) await dropSecondFactor(tx, userId);
  return removed.some((factor) => factor.confirmedAt !== null);
}

export async function disableTotp(db: Db, userId: string, options: { countsAsMfa: boolean }): Promise<boolean> {
  return db.transaction((tx) => removeSecondFactors(tx, userId, options));
}

/** Ten new recovery codes for a user with an authenticator; the old ones stop working. */
export async function regenerateRecoveryCodes(db: Db, key: Buffer, userId: string): Promise<string[]> {
  return db.transaction(async (tx) => {
    // Locked: a parallel removal of the factor cannot leave codes behind it.
    const [factor] = await tx
      .select({ userId: totpFactors.userId })
      .from(totpFactors)
      .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt)))
      .for('update');
    if (!factor) throw problem('mfa_not_enrolled', 'Recovery codes come with an authenticator: enrol one first.');
    return replaceRecoveryCodes(tx, key, userId);
  });
}
