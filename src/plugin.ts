import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from './config.js';
import { openConfiguredDatabase } from './db/client.js';
import { seed } from './db/seed.js';
import { ensureAdmin, hasActiveAdmin } from './domain/admin-bootstrap.js';
import { normalizeEmail } from './domain/email.js';
import { authPlugin } from './plugins/auth.js';
import { errorsPlugin } from './plugins/errors.js';
import { openapiPlugin } from './plugins/openapi.js';
import { permissionsPlugin, type UndeclaredRoutes } from './plugins/permissions.js';
import { rateLimitBackend, useRateLimits } from './plugins/rate-limit.js';
import { useStrictBodyValidation } from './plugins/validation.js';
import { adminRoutes } from './routes/admin/index.js';
import { authRoutes } from './routes/auth/index.js';
import { healthRoutes } from './routes/health/index.js';
import { wellKnownRoutes } from './routes/well-known.js';
import { AdminUserSchema, PermissionSchema, RoleSchema } from './schemas/admin.js';
import { AuditEventSchema } from './schemas/audit.js';
import { MfaRequiredSchema } from './schemas/mfa.js';
import { PasskeySchema } from './schemas/passkeys.js';
import { ProblemSchema } from './schemas/problem.js';
import { SessionSchema } from './schemas/session.js';
import { RegisterResponseSchema, TokenResponseSchema } from './schemas/tokens.js';
import { UserSchema } from './schemas/user.js';
import { createGatehouse } from './services.js';
import type { GatehouseDatabase, GatehouseServices } from './types.js';

export interface GatehouseOptions {
  config: Config;
  /** An open database; without one Gatehouse opens (and closes) its own from `config`. */
  database?: GatehouseDatabase;
  /** Where Gatehouse's routes are mounted, e.g. '/identity'. Default: the root. */
  prefix?: string;
  /**
   * What happens at ready to a route of the app with neither an access rule in its `config`
   * (`authenticated`, `rolesRequired`, ...) nor `config.public: true`: 'fail' rejects ready with an
   * error naming the routes, 'warn' logs each of them once, 'allow' says nothing. A route
   * registered before this plugin is judged at its first request instead, and under 'fail' is
   * refused with a 500 rather than served. Default: 'warn' (buildApp's server uses 'fail').
   */
  undeclaredRoutes?: UndeclaredRoutes;
  /**
   * Serve Gatehouse's own OpenAPI document at `<prefix>/openapi.json` and its docs page at
   * `<prefix>/docs`: its paths are Gatehouse's routes only, relative to its server,
   * `config.publicUrl` (PUBLIC_URL) followed by the prefix. An app's own @fastify/swagger, if any,
   * is not affected. Off by default: it adds two public routes to the app.
   */
  openapi?: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    gatehouse: GatehouseServices;
  }
}

/**
 * Gatehouse as a Fastify plugin. Wrapped with fastify-plugin so that the access-rule hook, the
 * `authenticate` decorator and `request.principal` reach the host app's own routes too; its own
 * routes live in an encapsulated scope with their own validation and problem+json errors.
 */
export const gatehousePlugin = fp(
  async (app: FastifyInstance, options: GatehouseOptions) => {
    const { config } = options;
    const database = options.database ?? (await openConfiguredDatabase(config, app.log));
    await seed(database.db);

    const gatehouse = createGatehouse(config, database, app.log);
    await gatehouse.access.start();
    await gatehouse.signingKeys.start();
    const rateLimits = await rateLimitBackend(config, app.log);
    gatehouse.retention.start();
    // One hook, in order: finish work in flight, stop listening, then let go of the database.
    app.addHook('onClose', async () => {
      gatehouse.retention.stop();
      await gatehouse.background.idle();
      // Audit events kept through an outage get half of SHUTDOWN_TIMEOUT to reach the database.
      await gatehouse.auditQueue.close(config.shutdownTimeout * 500);
      await gatehouse.mailer.idle();
      gatehouse.mailer.close();
      await gatehouse.access.stop();
      await gatehouse.signingKeys.stop();
      await rateLimits.close();
      if (!options.database) await database.close();
    });
    if (config.admin && !(await hasActiveAdmin(database.db))) {
      const email = normalizeEmail(config.admin.email);
      const { userId, outcome } = await ensureAdmin(database.db, { email, password: config.admin.password, passwords: gatehouse.passwords });
      if (outcome === 'refused_password_mismatch') {
        // Gatehouse still starts: refusing to would let whoever registered the address keep it down.
        app.log.error(
          { email },
          'ADMIN_EMAIL belongs to an existing account whose password is not ADMIN_PASSWORD, so it was not made an admin: if the account is yours, set ADMIN_PASSWORD to its password; otherwise choose another ADMIN_EMAIL',
        );
      } else if (outcome !== 'already_admin') {
        await gatehouse.access.changed(userId);
        app.log.warn({ email }, outcome === 'created' ? 'created admin from ADMIN_EMAIL' : 'promoted ADMIN_EMAIL to admin (its password verified)');
      }
    }
    app.decorate('gatehouse', gatehouse);
    // Shared schemas live at the top so the OpenAPI document can name them as components.
    const shared = [ProblemSchema, UserSchema, TokenResponseSchema, RegisterResponseSchema, MfaRequiredSchema, SessionSchema, PasskeySchema, AdminUserSchema, RoleSchema, PermissionSchema, AuditEventSchema];
    for (const schema of shared) {
      if (!app.getSchema(schema.$id!)) app.addSchema(schema);
    }
    await app.register(authPlugin, { gatehouse, apiKeyLimiter: rateLimits.apiKeys, apiKeyLookupLimiter: rateLimits.apiKeyLookups });
    await app.register(permissionsPlugin, {
      undeclaredRoutes: options.undeclaredRoutes ?? 'warn',
      assurance: { reauthMaxAge: config.reauthMaxAge, mfaRequiredPermissions: config.mfaRequiredPermissions, mfaEnforceForRoles: config.mfaEnforceForRoles, passkeyCountsAsMfa: config.passkeyCountsAsMfa },
    });

    await app.register(
      async (scope) => {
        useStrictBodyValidation(scope);
        // JSON only: without this, text/plain bodies would be parsed as strings and reach validation.
        scope.removeContentTypeParser('text/plain');
        await scope.register(errorsPlugin, { notFound: false });
        await useRateLimits(scope, rateLimits);
        if (options.openapi) await scope.register(openapiPlugin, { publicUrl: config.publicUrl, prefix: options.prefix ?? '' });
        await scope.register(healthRoutes, { gatehouse });
        await scope.register(wellKnownRoutes, { gatehouse, mountedAt: options.prefix ?? '' });
        await scope.register(authRoutes, { gatehouse, prefix: '/auth' });
        await scope.register(adminRoutes, { gatehouse, prefix: '/admin' });
      },
      { prefix: options.prefix ?? '' },
    );
  },
  { name: 'gatehouse', fastify: '5.x' },
);
