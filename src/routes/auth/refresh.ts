import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { rotateRefreshToken } from '../../domain/sessions.js';
import { problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { TOKEN_RESPONSE_EXAMPLE, TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { OPTIONAL_BODY } from '../../plugins/openapi.js';
import { absentBodyAsEmpty } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { presentedRefreshToken } from './refresh-credentials.js';
import { clearRefreshCookie, issueTokens } from './tokens.js';

export const RefreshBody = Type.Object(
  { refreshToken: Type.Optional(Type.String({ maxLength: 1024, description: 'Omit in cookie mode' })) },
  { additionalProperties: false, examples: [{ refreshToken: TOKEN_RESPONSE_EXAMPLE.refreshToken }] },
);

const DETAILS = {
  invalid_refresh_token: 'The refresh token is not valid.',
  refresh_token_expired: 'The session has expired: log in again.',
  session_revoked: 'This session has been revoked: log in again.',
  refresh_token_reused: 'This refresh token was already used. The session has been revoked: log in again.',
} as const;

export const refreshRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.post(
    '/refresh',
    {
      config: { public: true, rateLimit: perIp(gatehouse.config.rateLimits.refresh) },
      preValidation: absentBodyAsEmpty,
      schema: {
        operationId: 'refreshTokens',
        summary: 'Exchange a refresh token for new tokens',
        description:
          'Rotates the refresh token: the presented one stops working and a new one is returned. Presented again within the reuse grace it answers the same successor; later, the whole session is revoked. In cookie mode send no body token, but the X-CSRF-Token header.',
        tags: ['auth'],
        [OPTIONAL_BODY]: true,
        body: RefreshBody,
        response: {
          200: jsonResponse(Type.Ref(TokenResponseSchema), 'New tokens; the refresh token presented no longer works', TOKEN_RESPONSE_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const presented = await presentedRefreshToken(gatehouse, request, request.body.refreshToken);
      if (!presented) throw problem('invalid_refresh_token', 'Send the refresh token in the body or the cookie.');
      const ticket = gatehouse.access.ticket();
      const result = await rotateRefreshToken(gatehouse.db, presented.token, gatehouse.sessionSettings);
      if (!result.ok) {
        if (result.code === 'refresh_token_reused') {
          await gatehouse.access.changed(result.session.userId);
          gatehouse.audit({ type: 'refresh_reused', ...auditContext(request), userId: result.session.userId, detail: { sessionId: result.session.id } });
        }
        if (presented.fromCookie) clearRefreshCookie(gatehouse, request, reply);
        throw problem(result.code, DETAILS[result.code]);
      }
      // Clients refresh every few minutes, long after their cache entry expired: the rotation
      // brought the user's state along, so issueTokens finds it in the cache.
      gatehouse.access.prime(result.session.userId, result.authorization, ticket);
      return issueTokens(gatehouse, request, reply, {
        session: result.session,
        refreshToken: result.refreshToken,
        useCookie: presented.fromCookie,
      });
    },
  );
};
