import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { EVERYONE } from '../../domain/access-cache.js';
import { createPermission, deletePermission, listPermissions } from '../../domain/roles.js';
import { PermissionName, PermissionSchema, RoleParams, toPermissionView } from '../../schemas/admin.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { grantorOf } from '../grantor.js';
import type { Gatehouse } from '../../services.js';

const CreateBody = Type.Object({ name: PermissionName, description: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });
const PermissionRef = Type.Ref(PermissionSchema);

export const adminPermissionRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.get(
    '/permissions',
    {
      config: { permissionsRequired: ['roles:read'] },
      schema: { summary: 'List permissions', tags: ['admin'], response: { 200: Type.Object({ items: Type.Array(PermissionRef) }), ...problemResponses(401, 403) } },
    },
    async () => ({ items: (await listPermissions(db)).map(toPermissionView) }),
  );

  app.post(
    '/permissions',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        summary: 'Create a permission',
        description: 'The admin role holds it at once, as it holds every permission.',
        tags: ['admin'],
        body: CreateBody,
        response: { 201: PermissionRef, ...problemResponses(...BODY_PROBLEMS, 401, 403, 409) },
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
        summary: 'Delete a permission, taking it from every role',
        description: 'You must hold the permission yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: RoleParams,
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
