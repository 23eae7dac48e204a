import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { UserAccess } from '../../domain/access-cache.js';
import { updateProfile } from '../../domain/users.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { Name, USER_EXAMPLE, UserSchema, toUserView, type UserView } from '../../schemas/user.js';
import type { Principal } from '../../plugins/auth.js';
import type { Gatehouse } from '../../services.js';

// A cache entry is replaced when what it says changes (a renewal only moves its read time): so are the answers made from it,
// one per assurance level of the calling session, kept serialized (the serializing was most of
// the route's own cost).
const bodies = new WeakMap<UserAccess, Partial<Record<Principal['aal'], string>>>();
const JSON_TYPE = 'application/json';
function bodyOf({ access, aal }: Principal, reply: FastifyReply): string {
  let byLevel = bodies.get(access);
  if (!byLevel) bodies.set(access, (byLevel = {}));
  return (byLevel[aal] ??= reply.getSerializationFunction('200', JSON_TYPE)!({ ...toUserView(access), aal } satisfies UserView));
}

export const meRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.get(
    '/me',
    {
      config: { authenticated: true },
      schema: {
        operationId: 'getCurrentUser',
        summary: 'The calling user, with roles and effective permissions',
        tags: ['auth'],
        response: { 200: jsonResponse(Type.Ref(UserSchema), 'The calling user', USER_EXAMPLE), ...problemResponses(401) },
      },
    },
    // Served from the authorization cache the access check just used: no database query. A string
    // with a JSON type is sent as it is.
    async (request, reply) => reply.type(`${JSON_TYPE}; charset=utf-8`).send(bodyOf(request.principal!, reply)),
  );

  app.patch(
    '/me',
    {
      config: { authenticated: true },
      schema: {
        operationId: 'updateCurrentUser',
        summary: 'Update your profile',
        tags: ['auth'],
        body: Type.Object({ name: Type.Optional(Type.Union([Name, Type.Null()])) }, { additionalProperties: false, examples: [{ name: 'Ann Smith' }] }),
        response: {
          200: jsonResponse(Type.Ref(UserSchema), 'The user as changed', { ...USER_EXAMPLE, name: 'Ann Smith' }),
          ...problemResponses(...BODY_PROBLEMS, 401),
        },
      },
    },
    async (request) => {
      const { userId } = request.principal!;
      if (request.body.name !== undefined) await updateProfile(gatehouse.db, userId, { name: request.body.name });
      await gatehouse.access.changed(userId);
      return toUserView((await gatehouse.access.get(userId))!);
    },
  );
};
