import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { updateProfile } from '../../domain/users.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { Name, UserSchema, toUserView } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';

export const meRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.get(
    '/me',
    {
      config: { authenticated: true },
      schema: {
        summary: 'The calling user, with roles and effective permissions',
        tags: ['auth'],
        response: { 200: Type.Ref(UserSchema), ...problemResponses(401) },
      },
    },
    // Served from the authorization cache the access check just used: no database query.
    async (request) => toUserView(request.principal!.access),
  );

  app.patch(
    '/me',
    {
      config: { authenticated: true },
      schema: {
        summary: 'Update your profile',
        tags: ['auth'],
        body: Type.Object({ name: Type.Optional(Type.Union([Name, Type.Null()])) }, { additionalProperties: false }),
        response: { 200: Type.Ref(UserSchema), ...problemResponses(...BODY_PROBLEMS, 401) },
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
