import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { IMPERSONATE_PERMISSION, startImpersonation } from '../../domain/impersonation.js';
import { UserId } from '../../schemas/admin.js';
import { IMPERSONATION_TOKEN_EXAMPLE, ImpersonateBody, ImpersonationTokenSchema } from '../../schemas/impersonation.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { auditContext, requestContext } from '../request-context.js';

export const adminImpersonationRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access, config } = gatehouse;

  app.post(
    '/users/:id/impersonate',
    {
      // Seeing what a user sees, as them: a recent factor, and the second one when the admin has it.
      config: { permissionsRequired: [IMPERSONATE_PERMISSION], fresh: true, aal2IfEnrolled: true },
      schema: {
        operationId: 'impersonateUser',
        summary: 'Act as a user for a while (support)',
        description:
          'Answers an access token that acts as the user for IMPERSONATION_TTL, with no refresh token; its `act` claim names you. You must hold every permission the user holds (403 exceeds_own_permissions), and keep holding them: the token stops working (401 session_revoked) once you are disabled or lose one of them, or users:impersonate. ' +
          'With it, fresh and aal2 routes and those that manage credentials (API keys, password, email, second factors, sessions, impersonation) answer 403 impersonation_restricted. ' +
          'Audited: the start (impersonation_started, with your reason) and every request made with the token (impersonated_request). The user sees the session in GET /auth/sessions; POST /auth/logout with the token ends it.',
        tags: ['admin'],
        params: UserId,
        body: ImpersonateBody,
        response: {
          200: jsonResponse(ImpersonationTokenSchema, 'A token acting as the user', IMPERSONATION_TOKEN_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const admin = { userId: request.principal!.userId };
      const session = await startImpersonation(db, admin, request.params.id, { reason: request.body.reason, ...requestContext(request), ttl: config.impersonationTtl });
      await access.changed(session.userId);
      gatehouse.audit({
        type: 'impersonation_started',
        ...auditContext(request),
        userId: session.userId,
        detail: { adminId: admin.userId, reason: request.body.reason, sessionId: session.id, expiresAt: session.expiresAt.toISOString() },
      });
      const iat = session.createdAt.getTime() / 1000;
      const exp = session.expiresAt.getTime() / 1000;
      // Proves none of the user's factors: never fresh, never aal2.
      const accessToken = app.signAccessToken({ sub: session.userId, sid: session.id, act: { sub: admin.userId }, iat, exp, auth_time: 0, amr: [], aal: 'aal1' });
      return { accessToken, expiresIn: exp - iat };
    },
  );
};
