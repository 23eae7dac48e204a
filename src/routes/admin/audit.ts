import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { listAuditEvents } from '../../domain/audit.js';
import { AuditEventSchema, AuditEventType } from '../../schemas/audit.js';
import { problemResponses } from '../../schemas/problem.js';
import type { Gatehouse } from '../../services.js';

const AuditQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    cursor: Type.Optional(Type.String({ maxLength: 32, description: 'nextCursor of the previous page' })),
    user: Type.Optional(Type.String({ format: 'uuid', description: 'Only events about this user' })),
    type: Type.Optional(AuditEventType),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

export const adminAuditRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.get(
    '/audit',
    {
      config: { permissionsRequired: ['audit:read'] },
      schema: {
        summary: 'The security audit log, newest first',
        tags: ['admin'],
        querystring: AuditQuery,
        response: {
          200: Type.Object({ items: Type.Array(Type.Ref(AuditEventSchema)), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
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
