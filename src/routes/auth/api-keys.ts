import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { createApiKey, listApiKeys, revokeApiKey } from '../../domain/api-keys.js';
import {
  API_KEY_EXAMPLE,
  API_KEY_ID_EXAMPLE,
  ApiKeySchema,
  CREATED_API_KEY_EXAMPLE,
  CreateApiKeyBody,
  CreatedApiKeySchema,
  toApiKeyView,
} from '../../schemas/api-keys.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';

export const ApiKeyParams = Type.Object({ id: Type.String({ format: 'uuid', examples: [API_KEY_ID_EXAMPLE] }) });

export const apiKeyRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.post(
    '/api-keys',
    {
      // Handing out a credential that outlives the session: a recent factor, and never from another key.
      config: { authenticated: true, fresh: true, ownCredentials: true },
      schema: {
        operationId: 'createApiKey',
        summary: 'Create an API key for your scripts and services',
        description:
          'Answers the key once: store it then. It acts as you with at most the permissions listed, each of which you must hold (403 exceeds_own_permissions); from then on with only those you still hold, so a key never does more than its owner.',
        tags: ['api-keys'],
        body: CreateApiKeyBody,
        response: {
          201: jsonResponse(CreatedApiKeySchema, 'Created: the key, shown this once', CREATED_API_KEY_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      const { row, key } = await createApiKey(db, gatehouse.apiKeyHashKey, { userId, ...request.body });
      gatehouse.audit({ type: 'api_key_created', ...auditContext(request), userId, detail: { apiKeyId: row.id, name: row.name, permissions: row.permissions } });
      const view = toApiKeyView(row);
      return reply.code(201).send({ id: view.id, name: view.name, key, permissions: view.permissions, expiresAt: view.expiresAt, createdAt: view.createdAt });
    },
  );

  app.get(
    '/api-keys',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'listApiKeys',
        summary: 'Your API keys (never their secrets)',
        tags: ['api-keys'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(ApiKeySchema) }), 'Every key not revoked, newest first', { items: [API_KEY_EXAMPLE] }),
          ...problemResponses(401, 403),
        },
      },
    },
    async (request) => ({ items: (await listApiKeys(db, request.principal!.userId)).map(toApiKeyView) }),
  );

  app.delete(
    '/api-keys/:id',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'revokeApiKey',
        summary: 'Revoke one of your API keys',
        description: 'Refused from the next request on, on every instance. Idempotent.',
        tags: ['api-keys'],
        params: ApiKeyParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      const { revoked } = await revokeApiKey(db, request.params.id, userId);
      if (revoked) {
        await access.changed(userId);
        gatehouse.audit({ type: 'api_key_revoked', ...auditContext(request), userId, detail: { apiKeyId: request.params.id } });
      }
      return reply.code(204).send(null);
    },
  );
};
