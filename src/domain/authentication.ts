import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { eq } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import { sessions, type Session, type User } from '../db/schema.js';
import { problem } from '../errors.js';
import type { KeyRing } from '../lib/encryption.js';
import type { AccessCache } from './access-cache.js';
import type { AuditEventInput } from './audit.js';
import { checkPasswordWithLockout, clearLoginFailures, loginFailed, reserveLoginAttempt } from './login-lockout.js';
import { CODES_PER_MFA_TOKEN, consumeChallenge, issueMfaChallenge, releaseCodeAttempt, reserveChallengeAttempt, reserveCodeAttempt } from './mfa-challenges.js';
import { countsAsSecondFactor, secondFactorsOf, useTotpCode, withSecondFactor } from './mfa.js';
import { checkPasskeyAssertion, type AssertionCheck } from './passkeys.js';
import type { PasswordHasher } from './passwords.js';
import { consumeRecoveryCode } from './recovery-codes.js';
import { setSessionAssurance, startLoginSession, type Assurance, type SessionSettings } from './sessions.js';
import { findUserByEmail, findUserById, updatePasswordHash } from './users.js';

export type { Assurance };

/** The second factors a login can finish with, as `mfaRequired` answers name them. */
export const SECOND_FACTOR_METHODS = ['totp', 'recovery_code', 'passkey'] as const;
export type SecondFactorMethod = (typeof SECOND_FACTOR_METHODS)[number];
/** The second factors that are typed codes (POST /auth/mfa/verify); a passkey has its own route. */
export const CODE_METHODS = ['totp', 'recovery_code'] as const;
export type CodeMethod = (typeof CODE_METHODS)[number];

/**
 * What a caller offers to prove who they are. Each factor is one more kind here, handled by
 * `authenticate`, never a new copy of the login flow in a route: a password opens a login, a
 * second factor finishes one (its mfaToken stands for the password already proved).
 */
export type Credential =
  | { kind: 'password'; email: string; password: string }
  | { kind: CodeMethod; mfaToken: string; code: string }
  | PasskeyCredential;

/**
 * A passkey's assertion over a challenge Gatehouse issued: a sign-in of its own (usernameless), or,
 * with an mfaToken, the second step after a password.
 */
export interface PasskeyCredential {
  kind: 'passkey';
  challengeId: string;
  response: AuthenticationResponseJSON;
  mfaToken?: string;
}

/** What proves again, to a signed-in user's own session, that it is them (a step-up). */
export type StepUpCredential =
  | { kind: 'password'; password: string }
  | { kind: 'totp'; code: string }
  | { kind: 'passkey'; challengeId: string; response: AuthenticationResponseJSON };

/** Where a request came from and who made it, as sessions and the audit log record it. */
export interface AuthenticationContext {
  ip: string | null;
  userAgent: string | null;
  actorId?: string | null;
}

/** What authentication needs of the app's services; a Gatehouse (services.ts) is one. */
export interface Authenticator {
  db: Db;
  passwords: PasswordHasher;
  access: AccessCache;
  sessionSettings: SessionSettings;
  /** Opens sealed TOTP secrets (ENCRYPTION_KEYS). */
  keyRing: KeyRing;
  /** Hashes recovery codes (derived from PASSWORD_PEPPER). */
  recoveryCodeKey: Buffer;
  config: Pick<Config, 'lockout' | 'requireEmailConfirmation' | 'webauthn' | 'passkeysMaxPerUser' | 'passkeyCountsAsMfa'>;
  audit(event: AuditEventInput): void;
}

/** A new session, which carries its assurance, and its first refresh token. */
export interface OpenedSession {
  session: Session;
  refreshToken: string;
}

export type AuthenticationResult =
  | ({ status: 'authenticated' } & OpenedSession)
  | { status: 'second_factor_required'; userId: string; mfaToken: string; expiresIn: number; methods: SecondFactorMethod[] };

export const LOGIN_LOCKED_DETAIL = 'Too many failed logins for this account. Try again later.';
const INVALID = 'The email or password is wrong.';
const MFA_TOKEN_INVALID = 'This mfaToken is not valid: it expired, was used, or had too many wrong codes. Log in again.';
// One answer whatever went wrong, so that it tells nobody which credentials or accounts exist.
const PASSKEY_INVALID = 'This passkey cannot sign in here.';

/** Assurance of a session opened with a password alone. */
export function passwordAssurance(at = new Date()): Assurance {
  return { aal: 'aal1', amr: ['pwd'], authTime: at };
}

/**
 * Checks a credential against lockout, the account's state and the factor itself, and opens a
 * session, or, for a password of a user with a second factor, answers with the step still to
 * take. Every refusal is a coded problem; every step worth keeping goes to the audit log.
 */
export async function authenticate(
  auth: Authenticator,
  credential: Exclude<Credential, { kind: 'password' }>,
  context: AuthenticationContext,
): Promise<Extract<AuthenticationResult, { status: 'authenticated' }>>;
export async function authenticate(auth: Authenticator, credential: Credential, context: AuthenticationContext): Promise<AuthenticationResult>;
export async function authenticate(auth: Authenticator, credential: Credential, context: AuthenticationContext): Promise<AuthenticationResult> {
  if (credential.kind === 'password') return authenticateWithPassword(auth, credential, context);
  if (credential.kind === 'passkey') return credential.mfaToken === undefined ? authenticateWithPasskey(auth, credential, context) : authenticateWithSecondFactor(auth, credential, context);
  return authenticateWithSecondFactor(auth, credential, context);
}

async function authenticateWithPassword(
  auth: Authenticator,
  { email, password }: Extract<Credential, { kind: 'password' }>,
  context: AuthenticationContext,
): Promise<AuthenticationResult> {
  const { db, passwords, config } = auth;
  const gate = await reserveLoginAttempt(db, email, config.lockout);
  if (!gate.allowed) {
    if (gate.lockedNow) auth.audit({ type: 'locked_out', ...context, detail: { email } });
    throw problem('login_locked', LOGIN_LOCKED_DETAIL, { retryAfter: gate.retryAfter });
  }

  const user = await findUserByEmail(db, email);
  const verified = user ? await passwords.verify(password, user.passwordHash) : (await passwords.verifyAgainstNothing(password), false);
  if (!user || !verified) {
    const { lockedNow } = await loginFailed(db, email, config.lockout);
    auth.audit({ type: 'login_failed', ...context, userId: user?.id, detail: { email, reason: user ? 'wrong_password' : 'unknown_email' } });
    if (lockedNow) auth.audit({ type: 'locked_out', ...context, userId: user?.id, detail: { email } });
    throw problem('invalid_credentials', INVALID);
  }
  // Only someone who knows the password learns that the account is disabled or unconfirmed.
  // A right password clears the failure count either way (below, in the login's own statement).
  if (!user.active) {
    await clearLoginFailures(db, email);
    auth.audit({ type: 'login_failed', ...context, userId: user.id, detail: { email, reason: 'disabled' } });
    throw problem('account_disabled', 'This account has been disabled.');
  }
  if (config.requireEmailConfirmation && !user.emailConfirmedAt) {
    await clearLoginFailures(db, email);
    auth.audit({ type: 'login_failed', ...context, userId: user.id, detail: { email, reason: 'email_not_confirmed' } });
    throw problem('email_not_confirmed', 'Confirm your email address first: follow the link we mailed, or ask for a new one.');
  }
  // A hash made at an older BCRYPT_COST is redone now, while the password is at hand.
  if (passwords.needsRehash(user.passwordHash)) {
    await updatePasswordHash(db, user.id, await passwords.hash(password));
  }
  // No session yet for a user with a second factor: whatever the first factor, it must follow.
  const factors = await secondFactorsOf(db, user.id);
  if (countsAsSecondFactor(factors, config.passkeyCountsAsMfa)) {
    await clearLoginFailures(db, email);
    const challenge = await issueMfaChallenge(db, user.id, ['pwd']);
    const methods: SecondFactorMethod[] = [...(factors.totp ? CODE_METHODS : []), ...(factors.passkey ? (['passkey'] as const) : [])];
    return { status: 'second_factor_required', userId: user.id, ...challenge, methods };
  }
  const opened = await openAuthenticatedSession(auth, user.id, passwordAssurance(), context, { clearFailuresOf: email });
  auth.audit({ type: 'login_succeeded', ...context, userId: user.id, detail: { sessionId: opened.session.id } });
  return { status: 'authenticated', ...opened };
}

/**
 * The second step of a login: the mfaToken names the user and what was proved, the code proves
 * the second factor. Attempts are reserved before the code is checked, per mfaToken (it dies
 * after CODES_PER_MFA_TOKEN codes) and per user (mfa_locked past CODES_PER_USER wrong codes in
 * CODE_WINDOW, whichever mfaToken they came with).
 */
async function authenticateWithSecondFactor(
  auth: Authenticator,
  credential: Extract<Credential, { kind: CodeMethod }> | PasskeyCredential,
  context: AuthenticationContext,
): Promise<Extract<AuthenticationResult, { status: 'authenticated' }>> {
  const method = credential.kind;
  const mfaToken = credential.mfaToken ?? '';
  const { db } = auth;
  const now = new Date();
  const challenge = await reserveChallengeAttempt(db, mfaToken, now);
  if (!challenge) throw problem('mfa_token_invalid', MFA_TOKEN_INVALID);
  const userId = challenge.userId;
  await assertCodeAttemptAllowed(auth, userId, context, now);
  const user = await findUserById(db, userId);
  if (!user?.active) throw problem('account_disabled', 'This account has been disabled.');

  let remaining: number | undefined;
  let failure: 'wrong_code' | 'replayed' | 'not_enrolled' | Extract<AssertionCheck, { ok: false }>['reason'] | undefined;
  if (credential.kind === 'passkey') {
    const check = await checkPasskeyAssertion(db, auth.config, { challengeId: credential.challengeId, response: credential.response, userId }, now);
    if (!check.ok) {
      auth.audit({ type: 'mfa_failed', ...context, userId, detail: { method, reason: check.reason, action: 'login', mfaTokenAttempts: challenge.attempts } });
      throw problem('passkey_invalid', PASSKEY_INVALID);
    }
  } else if (credential.kind === 'totp') {
    const check = await useTotpCode(db, auth.keyRing, userId, credential.code, now);
    if (!check.ok) failure = check.reason;
  } else {
    const used = await consumeRecoveryCode(db, auth.recoveryCodeKey, userId, credential.code);
    if (used) remaining = used.remaining;
    else failure = 'wrong_code';
  }
  if (failure) {
    const usedUp = challenge.attempts >= CODES_PER_MFA_TOKEN;
    auth.audit({ type: 'mfa_failed', ...context, userId, detail: { method, reason: failure, action: 'login', mfaTokenAttempts: challenge.attempts } });
    throw problem(
      'mfa_code_invalid',
      usedUp ? 'The code is wrong, and this mfaToken has had all its tries: log in again.' : 'The code is wrong, or was used already.',
    );
  }
  await releaseCodeAttempt(db, userId);
  // Two right codes in parallel on one mfaToken: one session, not two.
  if (!(await consumeChallenge(db, challenge.id))) throw problem('mfa_token_invalid', MFA_TOKEN_INVALID);

  const amr = withSecondFactor(challenge.amr, method === 'totp' ? 'otp' : method === 'passkey' ? 'hwk' : 'rc');
  const opened = await openAuthenticatedSession(auth, userId, { aal: 'aal2', amr, authTime: now }, context);
  auth.audit({ type: 'login_succeeded', ...context, userId, detail: { sessionId: opened.session.id, amr } });
  if (remaining !== undefined) auth.audit({ type: 'recovery_code_used', ...context, userId, detail: { sessionId: opened.session.id, remaining } });
  return { status: 'authenticated', ...opened };
}

/**
 * A passkey sign-in on its own (usernameless): the credential names the user. Its assurance is
 * that of a hardware key with user verification: aal2 when PASSKEY_COUNTS_AS_MFA, else aal1.
 * Every refusal, whether the credential is unknown, the signature or counter wrong, or the user
 * disabled, is the same passkey_invalid; the audit log keeps the reason.
 */
async function authenticateWithPasskey(
  auth: Authenticator,
  credential: PasskeyCredential,
  context: AuthenticationContext,
): Promise<Extract<AuthenticationResult, { status: 'authenticated' }>> {
  const { db, config } = auth;
  const now = new Date();
  const check = await checkPasskeyAssertion(db, config, { challengeId: credential.challengeId, response: credential.response }, now);
  const user = check.ok ? await findUserById(db, check.passkey.userId) : undefined;
  const refused = !check.ok ? check.reason : !user?.active ? 'disabled' : config.requireEmailConfirmation && !user.emailConfirmedAt ? 'email_not_confirmed' : undefined;
  if (refused || !check.ok || !user) {
    const userId = check.ok ? check.passkey.userId : check.userId;
    auth.audit({ type: 'login_failed', ...context, userId, detail: { method: 'passkey', reason: refused } });
    throw problem('passkey_invalid', PASSKEY_INVALID);
  }
  const assurance: Assurance = { aal: config.passkeyCountsAsMfa && check.userVerified ? 'aal2' : 'aal1', amr: ['hwk', 'user'], authTime: now };
  const opened = await openAuthenticatedSession(auth, user.id, assurance, context);
  auth.audit({ type: 'login_succeeded', ...context, userId: user.id, detail: { sessionId: opened.session.id, amr: assurance.amr, passkeyId: check.passkey.id } });
  return { status: 'authenticated', ...opened };
}

/** Reserves a code attempt of the user, or refuses it with mfa_locked (audited once, as the lock begins). */
async function assertCodeAttemptAllowed(auth: Authenticator, userId: string, context: AuthenticationContext, now: Date): Promise<void> {
  const gate = await reserveCodeAttempt(auth.db, userId, now);
  if (gate.allowed) return;
  if (gate.lockedNow) auth.audit({ type: 'mfa_locked', ...context, userId, detail: { retryAfter: gate.retryAfter } });
  throw problem('mfa_locked', 'Too many wrong codes for this account. Try again later.', { retryAfter: gate.retryAfter });
}

/**
 * Step-up: the signed-in user proves a factor again, and their session records it (auth_time now;
 * with the authenticator, aal2). A wrong password counts toward the login lockout, a wrong code
 * toward the second-factor one. Returns the session with its new assurance.
 */
export async function reauthenticate(
  auth: Authenticator,
  principal: { userId: string; sessionId: string },
  credential: StepUpCredential,
  context: AuthenticationContext,
): Promise<Session> {
  const { db } = auth;
  const now = new Date();
  const user = await findUserById(db, principal.userId);
  if (!user) throw problem('session_revoked', 'This session has been revoked: log in again.');
  if (credential.kind === 'password') {
    await verifyCurrentPassword(auth, user, credential.password, context, { action: 'reauthenticate', wrongDetail: 'The password is wrong.' });
  } else if (credential.kind === 'passkey') {
    await assertCodeAttemptAllowed(auth, user.id, context, now);
    const check = await checkPasskeyAssertion(db, auth.config, { challengeId: credential.challengeId, response: credential.response, userId: user.id }, now);
    if (!check.ok) {
      auth.audit({ type: 'mfa_failed', ...context, userId: user.id, detail: { method: 'passkey', reason: check.reason, action: 'reauthenticate' } });
      throw problem('passkey_invalid', 'This passkey is not one of yours, or could not be verified.');
    }
    await releaseCodeAttempt(db, user.id);
  } else {
    await assertCodeAttemptAllowed(auth, user.id, context, now);
    const check = await useTotpCode(db, auth.keyRing, user.id, credential.code, now);
    if (!check.ok) {
      auth.audit({ type: 'mfa_failed', ...context, userId: user.id, detail: { method: 'totp', reason: check.reason, action: 'reauthenticate' } });
      throw problem('mfa_code_invalid', check.reason === 'not_enrolled' ? 'You have no authenticator: re-authenticate with your password.' : 'The code is wrong, or was used already.');
    }
    await releaseCodeAttempt(db, user.id);
  }
  const session = await db.transaction(async (tx) => {
    // Locked, so that it cannot be revoked between this read and the update.
    const [current] = await tx.select().from(sessions).where(eq(sessions.id, principal.sessionId)).for('update');
    if (!current || current.revokedAt) throw problem('session_revoked', 'This session has been revoked: log in again.');
    const assurance: Assurance =
      credential.kind === 'password'
        ? { aal: current.aal, amr: [...new Set([...current.amr, 'pwd'])], authTime: now }
        : credential.kind === 'passkey'
          ? auth.config.passkeyCountsAsMfa
            ? { aal: 'aal2', amr: withSecondFactor([...current.amr, 'user'], 'hwk'), authTime: now }
            : { aal: current.aal, amr: [...new Set([...current.amr, 'hwk', 'user'])], authTime: now }
          : { aal: 'aal2', amr: withSecondFactor(current.amr, 'otp'), authTime: now };
    return (await setSessionAssurance(tx, current.id, assurance))!;
  });
  auth.audit({ type: 'reauthenticated', ...context, userId: user.id, detail: { sessionId: session.id, method: credential.kind, aal: session.aal } });
  return session;
}

/**
 * The password a signed-in user types again (a step-up, before a password or email change). It
 * is a login attempt on their email, with the login's answers and audit events: 401
 * invalid_credentials, and 429 login_locked while the email is locked, so a stolen access token
 * is no unlimited way to guess the password.
 */
export async function verifyCurrentPassword(
  auth: Pick<Authenticator, 'db' | 'passwords' | 'config' | 'audit'>,
  user: User,
  password: string,
  context: AuthenticationContext,
  { action, wrongDetail }: { action: 'password_change' | 'email_change' | 'reauthenticate'; wrongDetail: string },
): Promise<void> {
  const check = await checkPasswordWithLockout(auth.db, auth.passwords, user, password, auth.config.lockout);
  if (check.ok) return;
  const detail = { email: user.email, action };
  if (check.reason === 'wrong_password') {
    auth.audit({ type: 'login_failed', ...context, userId: user.id, detail: { ...detail, reason: 'wrong_password' } });
  }
  if (check.lockedNow) auth.audit({ type: 'locked_out', ...context, userId: user.id, detail });
  if (check.reason === 'locked') throw problem('login_locked', LOGIN_LOCKED_DETAIL, { retryAfter: check.retryAfter });
  throw problem('invalid_credentials', wrongDetail);
}

/**
 * Opens a session for a user who has just proved who they are (startLoginSession: one statement,
 * which also tells the other instances) and leaves the user's new state in this instance's
 * authorization cache, for the token response and the first request with the new token.
 */
export async function openAuthenticatedSession(
  auth: Pick<Authenticator, 'db' | 'access' | 'sessionSettings'>,
  userId: string,
  assurance: Assurance,
  context: AuthenticationContext,
  options: { clearFailuresOf?: string } = {},
): Promise<OpenedSession> {
  const ticket = auth.access.ticket();
  const opened = await startLoginSession(
    auth.db,
    { userId, ip: context.ip, userAgent: context.userAgent, accessNotice: auth.access.notice(userId), assurance, ...options },
    auth.sessionSettings,
  );
  auth.access.prime(userId, opened.authorization, ticket);
  return { session: opened.session, refreshToken: opened.refreshToken };
}
