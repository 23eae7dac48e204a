import type { FastifyPluginAsync } from 'fastify';
import type { Gatehouse } from '../../services.js';
import { noStore } from '../no-store.js';
import { apiKeyRoutes } from './api-keys.js';
import { emailRoutes } from './email.js';
import { invitationRoutes } from './invitations.js';
import { loginRoute } from './login.js';
import { logoutRoute } from './logout.js';
import { meRoute } from './me.js';
import { mfaRoutes } from './mfa.js';
import { passkeyRoutes } from './passkeys.js';
import { passwordRoutes } from './password.js';
import { reauthenticateRoute } from './reauthenticate.js';
import { refreshRoute } from './refresh.js';
import { registerRoute } from './register.js';
import { sessionRoutes } from './sessions.js';

export const authRoutes: FastifyPluginAsync<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  noStore(app);
  const routes = [registerRoute, loginRoute, refreshRoute, logoutRoute, meRoute, emailRoutes, passwordRoutes, sessionRoutes, mfaRoutes, passkeyRoutes, reauthenticateRoute, apiKeyRoutes, invitationRoutes];
  for (const route of routes) {
    await app.register(route, { gatehouse });
  }
};
