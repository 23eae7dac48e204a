import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { findSessionByRefreshToken, revokeSession } from '../../domain/sessions.js';
import { problem, unauthorized } from '../../errors.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import type { Gatehouse } from '../../services.js';
import { bearerToken, isAccessTokenClaims } from '../../plugins/auth.js';
import { OPTIONAL_BODY } from '../../plugins/openapi.js';
import { absentBodyAsEmpty } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { presentedRefreshToken } from './refresh-credentials.js';
import { RefreshBody } from './refresh.js';
import { clearRefreshCookie } from './tokens.js';

export const logoutRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.post(
    '/logout',
    {
      // Public on purpose: a client may log out with an access token (even an expired one) or with
      // its refresh token, so the route checks whichever credential it is given itself.
      config: { public: true },
      preValidation: absentBodyAsEmpty,
      schema: {
        operationId: 'logout',
        summary: 'Log out: revoke this session',
        description:
          'Revokes the session of the Bearer access token or of the refresh token (body, or cookie with X-CSRF-Token): the current one, or the one it replaced while its rotation answer was lost. Idempotent.',
        tags: ['auth'],
        security: [{ bearerAuth: [] }, {}],
        [OPTIONAL_BODY]: true,
        body: RefreshBody,
        response: { 204: Type.Null({ description: 'Logged out' }), ...problemResponses(...BODY_PROBLEMS, 401, 403) },
      },
    },
    async (request, reply) => {
      let sessionId: string | undefined;
      let userId: string | undefined;
      let impersonatorId: string | undefined;
      if (request.headers.authorization) {
        const token = bearerToken(request.headers.authorization);
        let claims: unknown;
        try {
          // An expired token still names its session, and ending one's own session is harmless.
          claims = gatehouse.signingKeys.verify(token, { ignoreExpiration: true });
        } catch {
          claims = undefined;
        }
        if (!isAccessTokenClaims(claims)) throw unauthorized('token_invalid', 'The access token is not valid.');
        ({ sid: sessionId, sub: userId } = claims);
        impersonatorId = claims.act?.sub;
      } else {
        const presented = await presentedRefreshToken(gatehouse, request, request.body.refreshToken);
        if (!presented) throw unauthorized('token_missing', 'Send an access token, or the refresh token in the body or cookie.');
        if (presented.fromCookie) clearRefreshCookie(gatehouse, request, reply);
        const session = await findSessionByRefreshToken(gatehouse.db, presented.token, gatehouse.sessionSettings);
        if (!session) throw problem('invalid_refresh_token', 'The refresh token is not valid.');
        ({ id: sessionId, userId } = session);
      }
      if (sessionId && userId && (await revokeSession(gatehouse.db, sessionId, 'logout'))) {
        await gatehouse.access.changed(userId);
        // An impersonation ends with a logout of its token: the admin acted, not the user.
        const actorId = impersonatorId ?? userId;
        gatehouse.audit({ type: 'logout', ...auditContext(request), actorId, userId, detail: { sessionId, ...(impersonatorId ? { adminId: impersonatorId } : {}) } });
      }
      return reply.code(204).send(null);
    },
  );
};
