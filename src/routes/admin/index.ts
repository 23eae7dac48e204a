import type { FastifyPluginAsync } from 'fastify';
import type { Gatehouse } from '../../services.js';
import { adminAuditRoutes } from './audit.js';
import { adminPermissionRoutes } from './permissions.js';
import { adminRoleRoutes } from './roles.js';
import { adminUserRoutes } from './users.js';

export const adminRoutes: FastifyPluginAsync<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  for (const routes of [adminUserRoutes, adminRoleRoutes, adminPermissionRoutes, adminAuditRoutes]) {
    await app.register(routes, { gatehouse });
  }
};
