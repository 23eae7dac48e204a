import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { listAuditEvents } from '../../domain/audit.js';
import { AuditEventSchema, AuditEventType } from '../../schemas/audit.js';
import { problemResponses } from '../../schemas/problem.js';
import { QueryObject } from '../../schemas/query.js';
import { jsonResponse } from '../../schemas/responses.js';
import { USER_EXAMPLE } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';

const AuditQuery = QueryObject({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ maxLength: 32, description: 'nextCursor of the previous page', examples: ['1042'] })),
  user: Type.Optional(Type.String({ format: 'uuid', description: 'Only events about this user', examples: [USER_EXAMPLE.id] })),
  type: Type.Optional({ ...AuditEventType, examples: ['login_failed'] }),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Only events at or after this instant', examples: ['2026-01-15T00:00:00Z'] })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Only events at or before this instant', examples: ['2026-01-16T00:00:00Z'] })),
});
const AuditPage = Type.Object({ items: Type.Array(Type.Ref(AuditEventSchema)), nextCursor: Type.Union([Type.String(), Type.Null()]) });

export const adminAuditRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.get(
    '/audit',
    {
      config: { permissionsRequired: ['audit:read'] },
      schema: {
        operationId: 'listAuditEvents',
        summary: 'The security audit log, newest first',
        tags: ['admin'],
        querystring: AuditQuery,
        response: {
          200: jsonResponse(AuditPage, 'A page of events', {
            items: [
              {
                id: '1042',
                type: 'login_succeeded',
                at: '2026-01-15T09:30:00.000Z',
                actorId: null,
                userId: USER_EXAMPLE.id,
                ip: '203.0.113.7',
                userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
                detail: { sessionId: '7c9e6679-7425-40de-944b-e07fc1f90ae7' },
              },
            ],
            nextCursor: '1042',
          }),
          ...problemResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const page = await listAuditEvents(gatehouse.db, request.query);
      return {
        items: page.items.map((e) => ({ ...e, id: String(e.id), at: e.at.toISOString() })),
        nextCursor: page.nextCursor,
      };
    },
  );
};
