import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { deleteUser, listUsers, passkeysOf, removePasskeyOf, resetSecondFactorOf, revokeSessionsOf, setUserRoles, updateUser } from '../../domain/admin-users.js';
import { loadUserWithAccess } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { ADMIN_USER_EXAMPLE, AdminUserSchema, NameList, RoleName, UserId, toAdminUserView } from '../../schemas/admin.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { PASSKEY_EXAMPLE, PasskeySchema, toPasskeyView } from '../../schemas/passkeys.js';
import { QueryObject } from '../../schemas/query.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { grantorOf } from '../grantor.js';
import { auditContext } from '../request-context.js';

const ListQuery = QueryObject({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(
    Type.String({ maxLength: 200, description: 'nextCursor of the previous page', examples: ['WyIyMDI2LTEyLTAxVDA5OjMwOjAwLjEyMzQ1NloiLCIwZjhmYWQ1Yi1kOWNiLTQ2OWYtYTE2NS03MDg2NzcyODk1MGUiXQ'] }),
  ),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive substring of email or name', examples: ['ann'] })),
  role: Type.Optional(Type.String({ ...RoleName, description: 'Only holders of this role', examples: ['editor'] })),
});
const UserPage = Type.Object({ items: Type.Array(Type.Ref(AdminUserSchema)), nextCursor: Type.Union([Type.String(), Type.Null()]) });
const PatchBody = Type.Object(
  {
    name: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()])),
    active: Type.Optional(Type.Boolean({ description: 'false logs the user out everywhere' })),
  },
  { additionalProperties: false, examples: [{ active: false }] },
);
const RolesBody = Type.Object(
  { roles: NameList('The complete set of roles the user will hold') },
  { additionalProperties: false, examples: [{ roles: ['user', 'editor'] }] },
);
const AdminUser = (description: string, example = ADMIN_USER_EXAMPLE) => jsonResponse(Type.Ref(AdminUserSchema), description, example);
const READ_PROBLEMS = problemResponses(400, 401, 403, 404);
const WRITE_PROBLEMS = problemResponses(...BODY_PROBLEMS, 401, 403, 404, 409);

export const adminUserRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;
  const view = async (id: string) => {
    const found = await loadUserWithAccess(db, id);
    if (!found) throw problem('not_found', `No user with id ${id}.`);
    return toAdminUserView(found);
  };

  app.get(
    '/users',
    {
      config: { permissionsRequired: ['users:read'] },
      schema: {
        operationId: 'listUsers',
        summary: 'List users, oldest first, a page at a time',
        tags: ['admin'],
        querystring: ListQuery,
        response: {
          200: jsonResponse(UserPage, 'A page of users', { items: [ADMIN_USER_EXAMPLE], nextCursor: null }),
          ...problemResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const page = await listUsers(db, request.query);
      return { items: page.items.map(toAdminUserView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/users/:id',
    {
      config: { permissionsRequired: ['users:read'] },
      schema: { operationId: 'getUser', summary: 'One user', tags: ['admin'], params: UserId, response: { 200: AdminUser('The user'), ...READ_PROBLEMS } },
    },
    async (request) => view(request.params.id),
  );

  app.patch(
    '/users/:id',
    {
      config: { permissionsRequired: ['users:write'] },
      schema: {
        operationId: 'updateUser',
        summary: 'Rename, deactivate or reactivate a user',
        description: 'You can act only on a user whose every permission you hold yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: UserId,
        body: PatchBody,
        response: { 200: AdminUser('The user as changed', { ...ADMIN_USER_EXAMPLE, active: false }), ...WRITE_PROBLEMS },
      },
    },
    async (request) => {
      const { activeChanged } = await updateUser(db, grantorOf(request), request.params.id, request.body);
      await access.changed(request.params.id);
      if (activeChanged) {
        gatehouse.audit({ type: request.body.active ? 'user_reactivated' : 'user_deactivated', ...auditContext(request), userId: request.params.id });
      }
      return view(request.params.id);
    },
  );

  app.delete(
    '/users/:id',
    {
      config: { permissionsRequired: ['users:delete'] },
      schema: {
        operationId: 'deleteUser',
        summary: 'Delete a user and all their sessions',
        description: 'You can act only on a user whose every permission you hold yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: UserId,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await deleteUser(db, grantorOf(request), request.params.id);
      await access.changed(request.params.id);
      gatehouse.audit({ type: 'user_deleted', ...auditContext(request), userId: request.params.id });
      return reply.code(204).send(null);
    },
  );

  app.put(
    '/users/:id/roles',
    {
      config: { permissionsRequired: ['roles:assign'] },
      schema: {
        operationId: 'setUserRoles',
        summary: "Replace a user's roles",
        description:
          'You can change the roles only of a user whose every permission you hold, and add or remove only roles whose every permission you hold (403 exceeds_own_permissions, naming what you lack; nothing changes). Adding a role ends any impersonation of the user.',
        tags: ['admin'],
        params: UserId,
        body: RolesBody,
        response: {
          200: AdminUser('The user with the new roles', { ...ADMIN_USER_EXAMPLE, roles: ['editor', 'user'], permissions: ['read', 'write'] }),
          ...WRITE_PROBLEMS,
        },
      },
    },
    async (request) => {
      const { added, removed, impersonationsEnded } = await setUserRoles(db, grantorOf(request), request.params.id, request.body.roles);
      await access.changed(request.params.id);
      const context = { ...auditContext(request), userId: request.params.id };
      for (const role of added) gatehouse.audit({ type: 'role_assigned', ...context, detail: { role, ...(impersonationsEnded ? { impersonationsEnded } : {}) } });
      for (const role of removed) gatehouse.audit({ type: 'role_removed', ...context, detail: { role } });
      return view(request.params.id);
    },
  );

  app.post(
    '/users/:id/sessions/revoke',
    {
      config: { permissionsRequired: ['users:write'] },
      schema: {
        operationId: 'revokeUserSessions',
        summary: 'Log a user out everywhere',
        description: 'You can act only on a user whose every permission you hold yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: UserId,
        response: { 204: Type.Null({ description: 'Every session revoked' }), ...READ_PROBLEMS },
      },
    },
    async (request, reply) => {
      const revoked = await revokeSessionsOf(db, grantorOf(request), request.params.id);
      await access.changed(request.params.id);
      gatehouse.audit({ type: 'sessions_revoked', ...auditContext(request), userId: request.params.id, detail: { sessions: revoked } });
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/users/:id/mfa',
    {
      config: { permissionsRequired: ['users:mfa'] },
      schema: {
        operationId: 'resetUserMfa',
        summary: "Remove a user's second factor (a lost authenticator)",
        description:
          'Removes the authenticator and the recovery codes and logs the user out everywhere: their next login takes the password alone. You can act only on a user whose every permission you hold yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: UserId,
        response: { 204: Type.Null({ description: 'Reset' }), ...READ_PROBLEMS },
      },
    },
    async (request, reply) => {
      const reset = await resetSecondFactorOf(db, grantorOf(request), request.params.id, { countsAsMfa: gatehouse.config.passkeyCountsAsMfa });
      await access.changed(request.params.id);
      gatehouse.audit({ type: 'mfa_reset', ...auditContext(request), userId: request.params.id, detail: { ...reset } });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/users/:id/passkeys',
    {
      config: { permissionsRequired: ['users:mfa'] },
      schema: {
        operationId: 'listUserPasskeys',
        summary: "A user's passkeys",
        tags: ['admin'],
        params: UserId,
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(Type.Ref(PasskeySchema)) }), 'Oldest first', { items: [PASSKEY_EXAMPLE] }),
          ...READ_PROBLEMS,
        },
      },
    },
    async (request) => ({ items: (await passkeysOf(db, request.params.id)).map(toPasskeyView) }),
  );

  app.delete(
    '/users/:id/passkeys/:pid',
    {
      config: { permissionsRequired: ['users:mfa'] },
      schema: {
        operationId: 'removeUserPasskey',
        summary: "Remove a user's passkey (a lost or stolen device)",
        description:
          'It signs in no more; without another second factor the user’s sessions are back to aal1. You can act only on a user whose every permission you hold yourself (403 exceeds_own_permissions otherwise).',
        tags: ['admin'],
        params: Type.Object({ id: UserId.properties.id, pid: Type.String({ format: 'uuid', examples: [PASSKEY_EXAMPLE.id] }) }),
        response: { 204: Type.Null({ description: 'Removed' }), ...READ_PROBLEMS },
      },
    },
    async (request, reply) => {
      const { id, pid } = request.params;
      const removed = await removePasskeyOf(db, grantorOf(request), id, pid, { countsAsMfa: gatehouse.config.passkeyCountsAsMfa });
      await access.changed(id);
      gatehouse.audit({ type: 'passkey_removed', ...auditContext(request), userId: id, detail: { passkeyId: removed.id } });
      return reply.code(204).send(null);
    },
  );
};
