import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { problemResponses } from '../../schemas/problem.js';
import { UserSchema, toUserView } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';

export const meRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app) => {
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
};
