import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { clearLoginFailures, loginFailed, reserveLoginAttempt } from '../../domain/login-lockout.js';
import { findUserByEmail, updatePasswordHash } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { issueTokens, openLoginSession } from './tokens.js';

export const LoginBody = Type.Object(
  {
    // Not format-checked: a malformed address is simply an unknown account (401, not 400).
    email: Type.String({ minLength: 1, maxLength: 320 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
  },
  { additionalProperties: false },
);

const INVALID = 'The email or password is wrong.';

export const loginRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { passwords, db, config } = gatehouse;

  app.post(
    '/login',
    {
      config: { public: true, rateLimit: perIp(config.rateLimits.login) },
      preValidation: normalizeEmailFields('email'),
      schema: {
        summary: 'Log in with email and password',
        description:
          'Opens a session. An unknown email and a wrong password get the same answer, at the same cost. After LOGIN_MAX_FAILURES failures an email is locked for a while (429 login_locked), whether or not it has an account.',
        tags: ['auth'],
        body: LoginBody,
        response: { 200: TokenResponseSchema, ...problemResponses(...BODY_PROBLEMS, 401, 403, 429) },
      },
    },
    async (request, reply) => {
      const { email, password, useCookie } = request.body;
      const context = auditContext(request);

      const gate = await reserveLoginAttempt(db, email, config.lockout);
      if (!gate.allowed) {
        if (gate.lockedNow) gatehouse.audit({ type: 'locked_out', ...context, detail: { email } });
        throw problem('login_locked', 'Too many failed logins for this account. Try again later.', {
          headers: { 'retry-after': String(gate.retryAfter) },
        });
      }

      const user = await findUserByEmail(db, email);
      const verified = user ? await passwords.verify(password, user.passwordHash) : (await passwords.verifyAgainstNothing(password), false);
      if (!user || !verified) {
        const { lockedNow } = await loginFailed(db, email, config.lockout);
        gatehouse.audit({ type: 'login_failed', ...context, userId: user?.id, detail: { email, reason: user ? 'wrong_password' : 'unknown_email' } });
        if (lockedNow) gatehouse.audit({ type: 'locked_out', ...context, userId: user?.id, detail: { email } });
        throw problem('invalid_credentials', INVALID);
      }
      // Only someone who knows the password learns that the account is disabled or unconfirmed.
      // A right password clears the failure count either way (below, in the login's own statement).
      if (!user.active) {
        await clearLoginFailures(db, email);
        gatehouse.audit({ type: 'login_failed', ...context, userId: user.id, detail: { email, reason: 'disabled' } });
        throw problem('account_disabled', 'This account has been disabled.');
      }
      if (config.requireEmailConfirmation && !user.emailConfirmedAt) {
        await clearLoginFailures(db, email);
        gatehouse.audit({ type: 'login_failed', ...context, userId: user.id, detail: { email, reason: 'email_not_confirmed' } });
        throw problem('email_not_confirmed', 'Confirm your email address first: follow the link we mailed, or ask for a new one.');
      }
      // A hash made at an older BCRYPT_COST is redone now, while the password is at hand.
      if (passwords.needsRehash(user.passwordHash)) {
        await updatePasswordHash(db, user.id, await passwords.hash(password));
      }
      const opened = await openLoginSession(gatehouse, request, user.id, { clearFailuresOf: email });
      gatehouse.audit({ type: 'login_succeeded', ...context, userId: user.id, detail: { sessionId: opened.session.id } });
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
