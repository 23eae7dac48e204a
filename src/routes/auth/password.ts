import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { TOKEN_DETAILS, changePassword, resetPassword } from '../../domain/account.js';
import { clearLoginFailures } from '../../domain/login-lockout.js';
import { assertPasswordPolicy } from '../../domain/password-policy.js';
import { peekUserToken } from '../../domain/user-tokens.js';
import { findUserByEmail, findUserById } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { Password } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { assertCurrentPassword } from './current-password.js';
import { sendPasswordReset } from './email-links.js';
import { Accepted, LINK_TOKEN_EXAMPLE } from './email.js';

const NoContent = Type.Null({ description: 'Done' });
const WRONG_CURRENT = 'The current password is wrong.';

export const passwordRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access, passwords } = gatehouse;

  app.post(
    '/password/forgot',
    {
      config: { public: true, rateLimit: perIp(gatehouse.config.rateLimits.forgot) },
      preValidation: normalizeEmailFields('email'),
      schema: {
        operationId: 'requestPasswordReset',
        summary: 'Mail a password reset link',
        description: 'Answers 202 at once whether or not the address belongs to an account: the lookup and the mail happen afterwards.',
        tags: ['account'],
        body: Type.Object({ email: Type.String({ minLength: 1, maxLength: 320 }) }, { additionalProperties: false, examples: [{ email: 'ann@example.com' }] }),
        response: { 202: Accepted, ...problemResponses(...BODY_PROBLEMS, 429) },
      },
    },
    async (request, reply) => {
      const { email } = request.body;
      gatehouse.background.run('forgot-lookup', async () => {
        const user = await findUserByEmail(db, email);
        if (user?.active) sendPasswordReset(gatehouse, { userId: user.id, email: user.email });
      });
      return reply.code(202).send({ status: 'accepted' as const });
    },
  );

  app.post(
    '/password/reset',
    {
      config: { public: true },
      schema: {
        operationId: 'resetPassword',
        summary: 'Set a new password with the token from the mailed link',
        description: 'Single use. Logs the user out of every session, and ends every other reset link and a pending email change.',
        tags: ['account'],
        body: Type.Object(
          { token: Type.String({ minLength: 1, maxLength: 512 }), password: Password },
          { additionalProperties: false, examples: [{ token: LINK_TOKEN_EXAMPLE, password: 'a brand new passphrase' }] },
        ),
        response: { 204: NoContent, ...problemResponses(...BODY_PROBLEMS) },
      },
    },
    async (request, reply) => {
      const { token, password } = request.body;
      const peeked = await peekUserToken(db, token, ['reset_password']);
      if (!peeked.ok) throw problem(peeked.code, TOKEN_DETAILS[peeked.code], { status: 400 });
      const owner = await findUserById(db, peeked.token.userId);
      assertPasswordPolicy(password, owner?.email);
      const { userId, ...ended } = await resetPassword(db, token, await passwords.hash(password));
      if (owner) await clearLoginFailures(db, owner.email);
      await access.changed(userId);
      gatehouse.audit({ type: 'password_reset', ...auditContext(request), userId, detail: { ...ended } });
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/password/change',
    {
      config: { authenticated: true, ownCredentials: true, rateLimit: perIp(gatehouse.config.rateLimits.login) },
      schema: {
        operationId: 'changePassword',
        summary: 'Change the password',
        description:
          'Logs out every other session of the user (this one stays), and ends every reset link and a pending email change. A wrong current password counts toward the login lockout (429 login_locked).',
        tags: ['account'],
        body: Type.Object(
          { currentPassword: Type.String({ minLength: 1, maxLength: 1024 }), newPassword: Password },
          { additionalProperties: false, examples: [{ currentPassword: 'correct horse battery staple', newPassword: 'a brand new passphrase' }] },
        ),
        response: { 204: NoContent, ...problemResponses(...BODY_PROBLEMS, 401, 429) },
      },
    },
    async (request, reply) => {
      const { userId, sessionId } = request.principal!;
      const { currentPassword, newPassword } = request.body;
      const user = await findUserById(db, userId);
      if (!user) throw problem('invalid_credentials', WRONG_CURRENT);
      await assertCurrentPassword(gatehouse, request, { user, password: currentPassword, action: 'password_change', wrongDetail: WRONG_CURRENT });
      assertPasswordPolicy(newPassword, user.email);
      const ended = await changePassword(db, { userId, passwordHash: await passwords.hash(newPassword), keepSessionId: sessionId });
      await access.changed(userId);
      gatehouse.audit({ type: 'password_changed', ...auditContext(request), userId, detail: { ...ended } });
      return reply.code(204).send(null);
    },
  );
};
