import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { EVERYONE } from '../../domain/access-cache.js';
import { createRole, deleteRole, getRole, listRoles, setRolePermissions, updateRole } from '../../domain/roles.js';
import { NameList, ROLE_EXAMPLE, RoleName, RoleParams, RoleSchema, toRoleView } from '../../schemas/admin.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { QueryObject } from '../../schemas/query.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { grantorOf } from '../grantor.js';
import { auditContext } from '../request-context.js';

const Description = Type.String({ maxLength: 500 });
const CreateBody = Type.Object(
  { name: RoleName, description: Type.Optional(Description), permissions: Type.Optional(NameList('Permissions the role grants')) },
  { additionalProperties: false, examples: [{ name: ROLE_EXAMPLE.name, description: ROLE_EXAMPLE.description, permissions: ROLE_EXAMPLE.permissions }] },
);
const NEW_DESCRIPTION = 'Writes, edits and publishes articles';
const PatchBody = Type.Object(
  { description: Type.Optional(Type.Union([Description, Type.Null()])) },
  { additionalProperties: false, examples: [{ description: NEW_DESCRIPTION }] },
);
const NEW_PERMISSIONS = ['articles:publish', 'read', 'write'];
const PermissionsBody = Type.Object(
  { permissions: NameList('The complete set of permissions the role will grant') },
  { additionalProperties: false, examples: [{ permissions: NEW_PERMISSIONS }] },
);
const DeleteQuery = QueryObject({ force: Type.Boolean({ default: false, description: 'Also remove the role from the users who hold it' }) });
const RoleRef = Type.Ref(RoleSchema);
const Role = (description: string, example = ROLE_EXAMPLE) => jsonResponse(RoleRef, description, example);

export const adminRoleRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.get(
    '/roles',
    {
      config: { permissionsRequired: ['roles:read'] },
      schema: {
        operationId: 'listRoles',
        summary: 'List roles with their permissions',
        tags: ['admin'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(RoleRef) }), 'Every role', {
            items: [
              { name: 'admin', description: 'Administrators', permissions: ['audit:read', 'delete', 'read', 'write'], builtIn: true, createdAt: '2026-01-15T09:00:00.000Z' },
              ROLE_EXAMPLE,
            ],
          }),
          ...problemResponses(401, 403),
        },
      },
    },
    async () => ({ items: (await listRoles(db)).map(toRoleView) }),
  );

  app.post(
    '/roles',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        operationId: 'createRole',
        summary: 'Create a role',
        description: 'The role may grant only permissions you hold yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        body: CreateBody,
        response: { 201: Role('Created'), ...problemResponses(...BODY_PROBLEMS, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const role = await createRole(db, grantorOf(request), request.body);
      return reply.code(201).send(toRoleView(role));
    },
  );

  app.get(
    '/roles/:name',
    {
      config: { permissionsRequired: ['roles:read'] },
      schema: { operationId: 'getRole', summary: 'One role', tags: ['admin'], params: RoleParams, response: { 200: Role('The role'), ...problemResponses(401, 403, 404) } },
    },
    async (request) => toRoleView(await getRole(db, request.params.name)),
  );

  app.patch(
    '/roles/:name',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        operationId: 'updateRole',
        summary: "Change a role's description (roles are not renamed)",
        tags: ['admin'],
        params: RoleParams,
        body: PatchBody,
        response: { 200: Role('The role as changed', { ...ROLE_EXAMPLE, description: NEW_DESCRIPTION }), ...problemResponses(...BODY_PROBLEMS, 401, 403, 404) },
      },
    },
    async (request) => toRoleView(await updateRole(db, request.params.name, request.body)),
  );

  app.delete(
    '/roles/:name',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        operationId: 'deleteRole',
        summary: 'Delete a role',
        description:
          'A role still assigned answers 409 role_in_use unless ?force=true; built-in roles are never deleted. Deleting takes its permissions from its holders: you must hold them all (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: RoleParams,
        querystring: DeleteQuery,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await deleteRole(db, grantorOf(request), request.params.name, request.query.force);
      await access.changed(EVERYONE);
      return reply.code(204).send(null);
    },
  );

  app.put(
    '/roles/:name/permissions',
    {
      config: { permissionsRequired: ['roles:write'] },
      schema: {
        operationId: 'setRolePermissions',
        summary: "Replace a role's permissions",
        description: 'You can add or remove only permissions you hold yourself (403 exceeds_own_permissions, naming what you lack; nothing changes). The admin role holds every permission and cannot lose any (409 built_in_role).',
        tags: ['admin'],
        params: RoleParams,
        body: PermissionsBody,
        response: {
          200: Role('The role with its new permissions', { ...ROLE_EXAMPLE, permissions: NEW_PERMISSIONS }),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const { role, impersonationsEnded } = await setRolePermissions(db, grantorOf(request), request.params.name, request.body.permissions);
      // Every holder of the role is affected: drop every cached entry.
      await access.changed(EVERYONE);
      gatehouse.audit({
        type: 'role_permissions_changed',
        ...auditContext(request),
        detail: { role: role.name, permissions: role.permissions, ...(impersonationsEnded ? { impersonationsEnded } : {}) },
      });
      return toRoleView(role);
    },
  );
};
