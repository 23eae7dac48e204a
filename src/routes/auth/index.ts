import type { FastifyPluginAsync } from 'fastify';
import type { Gatehouse } from '../../services.js';
import { loginRoute } from './login.js';
import { logoutRoute } from './logout.js';
import { meRoute } from './me.js';
import { refreshRoute } from './refresh.js';
import { registerRoute } from './register.js';

export const authRoutes: FastifyPluginAsync<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  for (const route of [registerRoute, loginRoute, refreshRoute, logoutRoute, meRoute]) {
    await app.register(route, { gatehouse });
  }
};
