import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { startLoginSession } from '../../domain/sessions.js';
import { findUserByEmail, updatePasswordHash } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { issueTokens, requestContext } from './tokens.js';

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
  app.post(
    '/login',
    {
      config: { public: true },
      preValidation: normalizeEmailFields('email'),
      schema: {
        summary: 'Log in with email and password',
        description:
          'Opens a session. An unknown email and a wrong password get the same answer, at the same cost.',
        tags: ['auth'],
        body: LoginBody,
        response: { 200: TokenResponseSchema, ...problemResponses(...BODY_PROBLEMS, 401, 403) },
      },
    },
    async (request, reply) => {
      const { email, password, useCookie } = request.body;
      const { passwords, db } = gatehouse;
      const user = await findUserByEmail(db, email);
      if (!user) {
        await passwords.verifyAgainstNothing(password);
        throw problem('invalid_credentials', INVALID);
      }
      if (!(await passwords.verify(password, user.passwordHash))) throw problem('invalid_credentials', INVALID);
      // Only someone who knows the password learns that the account is disabled.
      if (!user.active) throw problem('account_disabled', 'This account has been disabled.');
      if (gatehouse.config.requireEmailConfirmation && !user.emailConfirmedAt) {
        throw problem('email_not_confirmed', 'Confirm your email address first: follow the link we mailed, or ask for a new one.');
      }
      if (passwords.needsRehash(user.passwordHash)) {
        await updatePasswordHash(db, user.id, await passwords.hash(password));
      }
      const opened = await startLoginSession(db, { userId: user.id, ...requestContext(request) }, gatehouse.sessionSettings);
      await gatehouse.access.changed(user.id);
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
