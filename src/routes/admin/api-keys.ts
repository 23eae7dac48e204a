import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { listApiKeys, revokeApiKey } from '../../domain/api-keys.js';
import { ADMIN_API_KEY_EXAMPLE, AdminApiKeySchema, toAdminApiKeyView } from '../../schemas/api-keys.js';
import { USER_EXAMPLE } from '../../schemas/user.js';
import { problemResponses } from '../../schemas/problem.js';
import { QueryObject } from '../../schemas/query.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';
import { ApiKeyParams } from '../auth/api-keys.js';

const ListQuery = QueryObject({
  user: Type.Optional(Type.String({ format: 'uuid', description: "Only this user's keys", examples: [USER_EXAMPLE.id] })),
});

export const adminApiKeyRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.get(
    '/api-keys',
    {
      config: { permissionsRequired: ['users:read'] },
      schema: {
        operationId: 'adminListApiKeys',
        summary: "Users' API keys (never their secrets)",
        description: 'Every key not revoked, newest first (at most 1000), with its owner.',
        tags: ['admin'],
        querystring: ListQuery,
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(AdminApiKeySchema) }), 'The keys', { items: [ADMIN_API_KEY_EXAMPLE] }),
          ...problemResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ items: (await listApiKeys(db, request.query.user)).map(toAdminApiKeyView) }),
  );

  app.delete(
    '/api-keys/:id',
    {
      config: { permissionsRequired: ['users:write'] },
      schema: {
        operationId: 'adminRevokeApiKey',
        summary: "Revoke a user's API key",
        description: 'Refused from the next request on, on every instance. Idempotent.',
        tags: ['admin'],
        params: ApiKeyParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { userId, revoked } = await revokeApiKey(db, request.params.id);
      if (revoked) {
        await access.changed(userId);
        gatehouse.audit({ type: 'api_key_revoked', ...auditContext(request), userId, detail: { apiKeyId: request.params.id } });
      }
      return reply.code(204).send(null);
    },
  );
};
