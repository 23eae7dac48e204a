import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { findSession, listLiveSessions, revokeSession, revokeUserSessions } from '../../domain/sessions.js';
import { problem } from '../../errors.js';
import { problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { auditContext } from '../request-context.js';
import { SESSION_ID_EXAMPLE, SessionSchema } from '../../schemas/session.js';
import type { Gatehouse } from '../../services.js';
import { REFRESH_COOKIE, clearRefreshCookie } from './tokens.js';

export const sessionRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.get(
    '/sessions',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'listSessions',
        summary: "The caller's live sessions",
        tags: ['account'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(Type.Ref(SessionSchema)) }), 'Every session not yet revoked or expired', {
            items: [
              {
                id: SESSION_ID_EXAMPLE,
                userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
                ip: '203.0.113.7',
                createdAt: '2026-01-15T09:30:00.000Z',
                lastUsedAt: '2026-01-15T10:05:00.000Z',
                current: true,
                impersonation: null,
              },
            ],
          }),
          ...problemResponses(401),
        },
      },
    },
    async (request) => {
      const { userId, sessionId } = request.principal!;
      const sessions = await listLiveSessions(db, userId);
      return {
        items: sessions.map((s) => ({
          id: s.id,
          userAgent: s.userAgent,
          ip: s.ip,
          createdAt: s.createdAt.toISOString(),
          lastUsedAt: s.lastUsedAt.toISOString(),
          current: s.id === sessionId,
          impersonation: s.impersonatorId
            ? { adminId: s.impersonatorId, reason: s.impersonationReason ?? '', expiresAt: s.expiresAt.toISOString() }
            : null,
        })),
      };
    },
  );

  app.delete(
    '/sessions/:id',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'revokeSession',
        summary: 'End one of your sessions',
        tags: ['account'],
        params: Type.Object({ id: Type.String({ format: 'uuid', examples: [SESSION_ID_EXAMPLE] }) }),
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      const session = await findSession(db, request.params.id);
      // Someone else's session is as unknown to the caller as one that does not exist.
      if (!session || session.userId !== userId) throw problem('not_found', 'No such session.');
      if (await revokeSession(db, session.id, 'user_request')) {
        await access.changed(userId);
        gatehouse.audit({ type: 'logout', ...auditContext(request), userId, detail: { sessionId: session.id } });
      }
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/logout-all',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'logoutAll',
        summary: 'Log out of every session, this one included',
        tags: ['account'],
        response: { 204: Type.Null({ description: 'Every session revoked' }), ...problemResponses(401) },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      const revoked = await revokeUserSessions(db, userId, 'logout');
      await access.changed(userId);
      gatehouse.audit({ type: 'logout', ...auditContext(request), userId, detail: { sessions: revoked, scope: 'all' } });
      // A browser in cookie mode keeps no dead refresh cookie either.
      if (request.cookies[REFRESH_COOKIE]) clearRefreshCookie(gatehouse, request, reply);
      return reply.code(204).send(null);
    },
  );
};
