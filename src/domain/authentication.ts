import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { Session } from '../db/schema.js';
import { problem } from '../errors.js';
import type { AccessCache } from './access-cache.js';
import type { AuditEventInput } from './audit.js';
import { clearLoginFailures, loginFailed, reserveLoginAttempt } from './login-lockout.js';
import type { PasswordHasher } from './passwords.js';
import { startLoginSession, type Assurance, type SessionSettings } from './sessions.js';

export type { Assurance };
import { findUserByEmail, updatePasswordHash } from './users.js';

/**
 * What a caller offers to prove who they are. Each factor is one more kind here, handled by
 * `authenticate`, never a new copy of the login flow in a route.
 */
export type Credential = { kind: 'password'; email: string; password: string };

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
  config: Pick<Config, 'lockout' | 'requireEmailConfirmation'>;
  audit(event: AuditEventInput): void;
}

/** A new session, which carries its assurance, and its first refresh token. */
export interface OpenedSession {
  session: Session;
  refreshToken: string;
}

export type AuthenticationResult = { status: 'authenticated' } & OpenedSession;

export const LOGIN_LOCKED_DETAIL = 'Too many failed logins for this account. Try again later.';
const INVALID = 'The email or password is wrong.';

/** Assurance of a session opened with a password alone. */
export function passwordAssurance(at = new Date()): Assurance {
  return { aal: 'aal1', amr: ['pwd'], authTime: at };
}

/**
 * Checks a credential against lockout, the account's state and the factor itself, and opens a
 * session. Every refusal is a coded problem; every step worth keeping goes to the audit log.
 */
export async function authenticate(auth: Authenticator, credential: Credential, context: AuthenticationContext): Promise<AuthenticationResult> {
  return authenticateWithPassword(auth, credential, context);
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
  const opened = await openAuthenticatedSession(auth, user.id, passwordAssurance(), context, { clearFailuresOf: email });
  auth.audit({ type: 'login_succeeded', ...context, userId: user.id, detail: { sessionId: opened.session.id } });
  return { status: 'authenticated', ...opened };
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
