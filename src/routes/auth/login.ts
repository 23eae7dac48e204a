import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { authenticate } from '../../domain/authentication.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { TOKEN_RESPONSE_EXAMPLE, TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { issueTokens } from './tokens.js';

export const LoginBody = Type.Object(
  {
    // Not format-checked: a malformed address is simply an unknown account (401, not 400).
    email: Type.String({ minLength: 1, maxLength: 320 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
  },
  { additionalProperties: false, examples: [{ email: 'ann@example.com', password: 'correct horse battery staple' }] },
);

export const loginRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { config } = gatehouse;

  app.post(
    '/login',
    {
      config: { public: true, rateLimit: perIp(config.rateLimits.login) },
      preValidation: normalizeEmailFields('email'),
      schema: {
        operationId: 'login',
        summary: 'Log in with email and password',
        description:
          'Opens a session. An unknown email and a wrong password get the same answer, at the same cost. After LOGIN_MAX_FAILURES failures an email is locked for a while (429 login_locked), whether or not it has an account.',
        tags: ['auth'],
        body: LoginBody,
        response: {
          200: jsonResponse(Type.Ref(TokenResponseSchema), 'Logged in: a new session', TOKEN_RESPONSE_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const { email, password, useCookie } = request.body;
      const opened = await authenticate(gatehouse, { kind: 'password', email, password }, auditContext(request));
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
