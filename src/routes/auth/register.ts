import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { startLoginSession } from '../../domain/sessions.js';
import { createUser } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { TokenResponseSchema } from '../../schemas/tokens.js';
import { Email, Name, Password } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { issueTokens, requestContext } from './tokens.js';

export const RegisterBody = Type.Object(
  {
    email: Email,
    password: Password,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: Name.maxLength })),
    useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
  },
  { additionalProperties: false },
);

export const registerRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.post(
    '/register',
    {
      config: { public: true },
      preValidation: normalizeEmailFields('email'),
      schema: {
        summary: 'Create an account',
        description: 'Creates the user with the default role and, as the first login, opens a session.',
        tags: ['auth'],
        body: RegisterBody,
        response: { 201: TokenResponseSchema, ...problemResponses(...BODY_PROBLEMS, 409) },
      },
    },
    async (request, reply) => {
      const { email, password, name, useCookie } = request.body;
      const passwordHash = await gatehouse.passwords.hash(password);
      const user = await createUser(gatehouse.db, { email, passwordHash, name });
      if (!user) throw problem('email_taken', 'An account with this email already exists.');
      const opened = await startLoginSession(gatehouse.db, { userId: user.id, ...requestContext(request) }, gatehouse.sessionSettings);
      reply.code(201);
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
