import Fastify, { type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
// In your own project: import { gatehousePlugin, errorsPlugin, ... } from 'gatehouse';
import { errorsPlugin, gatehousePlugin, problem, type Config, type Database } from '../../src/index.js';

const Note = Type.Object({ id: Type.Integer(), text: Type.String(), author: Type.String() });

/**
 * A host app with its own resource, protected by Gatehouse's route rules: anyone signed in with
 * `read` lists notes, `write` adds them, `delete` removes them, and only the `admin` role sees the
 * stats, like the seed system's admin-only route. Gatehouse's own routes live under /identity.
 */
export async function buildNotesApp(config: Config, database: Database): Promise<FastifyInstance> {
  const app = Fastify({ logger: false }).withTypeProvider<TypeBoxTypeProvider>();
  // Optional: problem+json for the host's own errors too (permission_denied included).
  await app.register(errorsPlugin);
  // 'fail': a route below that forgets to declare its access stops the app at ready instead of
  // being served to anyone (the plugin's default only warns).
  await app.register(gatehousePlugin, { config, database, prefix: '/identity', undeclaredRoutes: 'fail' });

  const notes: { id: number; text: string; author: string }[] = [];
  let nextId = 1;

  app.get('/hello', { config: { public: true } }, async () => ({ hello: 'world' }));

  app.get(
    '/notes',
    { config: { permissionsRequired: ['read'] }, schema: { response: { 200: Type.Object({ items: Type.Array(Note) }) } } },
    async () => ({ items: notes }),
  );

  app.post(
    '/notes',
    {
      config: { permissionsRequired: ['write'] },
      schema: { body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 1000 }) }), response: { 201: Note } },
    },
    async (request, reply) => {
      const note = { id: nextId++, text: request.body.text, author: request.principal!.access.user.email };
      notes.push(note);
      return reply.code(201).send(note);
    },
  );

  app.delete(
    '/notes/:id',
    { config: { permissionsRequired: ['delete'] }, schema: { params: Type.Object({ id: Type.Integer() }) } },
    async (request, reply) => {
      const index = notes.findIndex((n) => n.id === request.params.id);
      if (index < 0) throw problem('not_found', `No note ${request.params.id}.`);
      notes.splice(index, 1);
      return reply.code(204).send();
    },
  );

  app.get('/notes/stats', { config: { rolesRequired: ['admin'] } }, async () => ({ count: notes.length }));

  return app;
}
