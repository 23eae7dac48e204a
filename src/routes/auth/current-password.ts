import type { FastifyRequest } from 'fastify';
import type { User } from '../../db/schema.js';
import { checkPasswordWithLockout } from '../../domain/login-lockout.js';
import { problem } from '../../errors.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';

export const LOGIN_LOCKED_DETAIL = 'Too many failed logins for this account. Try again later.';

/**
 * The password a signed-in user types again before a change to the account. It gets the login's
 * answers and audit events: 401 invalid_credentials, and 429 login_locked while the email is locked.
 */
export async function assertCurrentPassword(
  gatehouse: Gatehouse,
  request: FastifyRequest,
  input: { user: User; password: string; action: 'password_change' | 'email_change'; wrongDetail: string },
): Promise<void> {
  const { user, action } = input;
  const check = await checkPasswordWithLockout(gatehouse.db, gatehouse.passwords, user, input.password, gatehouse.config.lockout);
  if (check.ok) return;
  const context = auditContext(request);
  const detail = { email: user.email, action };
  if (check.reason === 'wrong_password') {
    gatehouse.audit({ type: 'login_failed', ...context, userId: user.id, detail: { ...detail, reason: 'wrong_password' } });
  }
  if (check.lockedNow) gatehouse.audit({ type: 'locked_out', ...context, userId: user.id, detail });
  if (check.reason === 'locked') {
    throw problem('login_locked', LOGIN_LOCKED_DETAIL, { headers: { 'retry-after': String(check.retryAfter) } });
  }
  throw problem('invalid_credentials', input.wrongDetail);
}
