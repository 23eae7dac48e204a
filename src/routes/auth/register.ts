import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { assertPasswordPolicy } from '../../domain/password-policy.js';
import { createUser } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { RegisterResponseSchema, TOKEN_RESPONSE_EXAMPLE } from '../../schemas/tokens.js';
import { Email, Name, Password, toUserView } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { sendConfirmation } from './email-links.js';
import { auditContext } from '../request-context.js';
import { issueTokens, openLoginSession } from './tokens.js';

export const RegisterBody = Type.Object(
  {
    email: Email,
    password: Password,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: Name.maxLength })),
    useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
  },
  { additionalProperties: false, examples: [{ email: 'ann@example.com', password: 'correct horse battery staple', name: 'Ann' }] },
);

export const registerRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.post(
    '/register',
    {
      config: { public: true, rateLimit: perIp(gatehouse.config.rateLimits.register) },
      preValidation: [
        // Closed whatever the body says: a malformed sign-up is no more welcome than a good one.
        async () => {
          if (gatehouse.config.registration === 'invite-only') {
            throw problem('registration_closed', 'Sign-up is by invitation only: ask an administrator for one.');
          }
        },
        normalizeEmailFields('email'),
      ],
      schema: {
        operationId: 'register',
        summary: 'Create an account',
        description:
          'Creates the user with the default role and mails a confirmation link. Unless REQUIRE_EMAIL_CONFIRMATION is set, it also opens a session (the first login) and answers with tokens. ' +
          'With REGISTRATION=invite-only: 403 registration_closed (accounts come from invitations: POST /auth/invitations/accept).',
        tags: ['auth'],
        body: RegisterBody,
        response: {
          201: jsonResponse(Type.Ref(RegisterResponseSchema), 'Registered; with tokens unless REQUIRE_EMAIL_CONFIRMATION is set', TOKEN_RESPONSE_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 403, 409, 429),
        },
      },
    },
    async (request, reply) => {
      const { email, password, name, useCookie } = request.body;
      assertPasswordPolicy(password, email);
      const passwordHash = await gatehouse.passwords.hash(password);
      const user = await createUser(gatehouse.db, { email, passwordHash, name });
      if (!user) throw problem('email_taken', 'An account with this email already exists.');
      sendConfirmation(gatehouse, { userId: user.id, email: user.email });
      gatehouse.audit({ type: 'registered', ...auditContext(request), userId: user.id });
      reply.code(201);
      if (gatehouse.config.requireEmailConfirmation) {
        return { user: toUserView((await gatehouse.access.get(user.id))!) };
      }
      const opened = await openLoginSession(gatehouse, request, user.id);
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
