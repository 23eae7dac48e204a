import type { FastifyInstance } from 'fastify';

/**
 * No browser or proxy may keep a copy of any answer of this scope (tokens, personal data, users
 * and their roles), errors included.
 */
export function noStore(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    reply.header('pragma', 'no-cache');
  });
}
