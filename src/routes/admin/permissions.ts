import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { EVERYONE } from '../../domain/access-cache.js';
import { createPermission, deletePermission, listPermissions } from '../../domain/roles.js';
import { PERMISSION_EXAMPLE, PermissionName, PermissionParams, PermissionSchema, toPermissionView } from '../../schemas/admin.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { grantorOf } from '../grantor.js';
import type { Gatehouse } from '../../services.js';

const CreateBody = Type.Object(
  { name: PermissionName, description: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false, examples: [{ name: PERMISSION_EXAMPLE.name, description: PERMISSION_EXAMPLE.description }] },
);
const PermissionRef = Type.Ref(PermissionSchema);

export const adminPermissionRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.get(
    '/permissions',
    {
      config: { permissionsRequired: ['roles:read'] },
      schema: {
        operationId: 'listPermissions',
        summary: 'List permissions',
        tags: ['admin'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(PermissionRef) }), 'Every permission', {
            items: [PERMISSION_EXAMPLE, { name: 'read', description: null, createdAt: '2026-01-15T09:00:00.000Z' }],
          }),
          ...problemResponses(401, 403),
        },
      },
    },
    async () => ({ items: (await listPermissions(db)).map(toPermissionView) }),
  );

  app.post(
    '/permissions',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        operationId: 'createPermission',
        summary: 'Create a permission',
        description: 'The admin role holds it at once, as it holds every permission.',
        tags: ['admin'],
        body: CreateBody,
        response: { 201: jsonResponse(PermissionRef, 'Created', PERMISSION_EXAMPLE), ...problemResponses(...BODY_PROBLEMS, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const created = await createPermission(db, request.body);
      // Admins hold every permission, the new one included.
      await access.changed(EVERYONE);
      return reply.code(201).send(toPermissionView(created));
    },
  );

  app.delete(
    '/permissions/:name',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        operationId: 'deletePermission',
        summary: 'Delete a permission, taking it from every role',
        description: 'You must hold the permission yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: PermissionParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await deletePermission(db, grantorOf(request), request.params.name);
      await access.changed(EVERYONE);
      return reply.code(204).send(null);
    },
  );
};
