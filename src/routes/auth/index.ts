import type { FastifyPluginAsync } from 'fastify';
import type { Gatehouse } from '../../services.js';
import { emailRoutes } from './email.js';
import { loginRoute } from './login.js';
import { logoutRoute } from './logout.js';
import { meRoute } from './me.js';
import { passwordRoutes } from './password.js';
import { refreshRoute } from './refresh.js';
import { registerRoute } from './register.js';
import { sessionRoutes } from './sessions.js';

export const authRoutes: FastifyPluginAsync<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  // Tokens and personal data: no browser or proxy may keep a copy of any /auth answer.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    reply.header('pragma', 'no-cache');
  });
  const routes = [registerRoute, loginRoute, refreshRoute, logoutRoute, meRoute, emailRoutes, passwordRoutes, sessionRoutes];
  for (const route of routes) {
    await app.register(route, { gatehouse });
  }
};
