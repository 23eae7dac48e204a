import type { FastifyPluginAsync } from 'fastify';
import { problem } from '../../errors.js';
import type { Gatehouse } from '../../services.js';
import { noStore } from '../no-store.js';
import { adminApiKeyRoutes } from './api-keys.js';
import { adminAuditRoutes } from './audit.js';
import { auditGrantRefusals } from './grant-refusals.js';
import { adminImpersonationRoutes } from './impersonation.js';
import { adminInvitationRoutes } from './invitations.js';
import { adminPermissionRoutes } from './permissions.js';
import { adminRoleRoutes } from './roles.js';
import { adminSigningKeyRoutes } from './signing-keys.js';
import { adminUserRoutes } from './users.js';

export const adminRoutes: FastifyPluginAsync<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  noStore(app);
  // So that a mistyped /admin/... URL is answered in this scope, and with the header above, too.
  app.setNotFoundHandler((request) => {
    throw problem('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`);
  });
  auditGrantRefusals(app, gatehouse);
  for (const routes of [adminUserRoutes, adminRoleRoutes, adminPermissionRoutes, adminAuditRoutes, adminSigningKeyRoutes, adminApiKeyRoutes, adminImpersonationRoutes, adminInvitationRoutes]) {
    await app.register(routes, { gatehouse });
  }
};
