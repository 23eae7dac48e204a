import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { authenticate } from '../../domain/authentication.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { MfaRequiredSchema } from '../../schemas/mfa.js';
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
          'Opens a session. An unknown email and a wrong password get the same answer, at the same cost. After LOGIN_MAX_FAILURES failures an email is locked for a while (429 login_locked), whether or not it has an account. ' +
          'For a user with a second factor the right password opens no session yet: the answer is { mfaRequired: true, mfaToken, methods, expiresIn } (no tokens, no cookie), and POST /auth/mfa/verify finishes the login.',
        tags: ['auth'],
        body: LoginBody,
        response: {
          200: jsonResponse(
            Type.Union([Type.Ref(TokenResponseSchema), Type.Ref(MfaRequiredSchema)]),
            'Logged in: a new session; or, for a user with a second factor, no tokens yet but an mfaToken for POST /auth/mfa/verify',
            TOKEN_RESPONSE_EXAMPLE,
          ),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const { email, password, useCookie } = request.body;
      const result = await authenticate(gatehouse, { kind: 'password', email, password }, auditContext(request));
      if (result.status === 'second_factor_required') {
        const { mfaToken, methods, expiresIn } = result;
        return { mfaRequired: true as const, mfaToken, methods, expiresIn };
      }
      return issueTokens(gatehouse, request, reply, { ...result, useCookie: useCookie === true });
    },
  );
};
