import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { problem } from './errors.js';
import { createLogger } from './logger.js';
import { keptSerializerFactory } from './plugins/compiled-schemas.js';
import { gatehousePlugin } from './plugin.js';
import { errorsPlugin, sendProblem, toProblem } from './plugins/errors.js';
import { trustProxyOption } from './plugins/client-ip.js';
import { httpHardeningPlugin } from './plugins/http-hardening.js';
import { openapiPlugin } from './plugins/openapi.js';
import { routeAccessOf, type RouteAccess } from './plugins/permissions.js';
import type { GatehouseDatabase } from './types.js';

declare module 'fastify' {
  interface FastifyInstance {
    routeAccess: RouteAccess[];
  }
}

export const BODY_LIMIT = 64 * 1024;

export interface BuildAppOptions {
  /** An already open database (tests, several apps on one database); otherwise opened from config. */
  database?: GatehouseDatabase;
  logger?: Logger;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The standalone Gatehouse server: the plugin at the root, plus docs and problem+json for everything. */
export async function buildApp(config: Config, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: (options.logger ?? createLogger(config)) as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // Left to genReqId, which keeps a caller's x-request-id only when it is harmless to log.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true },
    // Opening a new embedded database and migrating it can take longer than Fastify's default 10 s.
    pluginTimeout: 120_000,
    trustProxy: trustProxyOption(config.trustProxy),
    // Slow or stalled clients do not get to hold sockets open.
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    // The router answers a malformed URL (or an over-long path parameter) before any handler runs.
    frameworkErrors: (error, request, reply) => sendProblem(reply, request, toProblem(error)),
    // While closing, the hook below answers instead, in problem+json rather than Fastify's own body.
    return503OnClosing: false,
    // Response serializers compiled once per distinct schema, not once per route and build.
    schemaController: { compilersFactory: { buildSerializer: keptSerializerFactory } },
  });
  // Once close() has begun (a SIGTERM, see server.ts), a request that still arrives on an open
  // connection is not started: a 503 says it is safe to send again elsewhere. Every answer from
  // then on closes its connection, so no client reuses one that is about to go away.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!closing) return;
    return sendProblem(reply, request, problem('shutting_down', 'The server is shutting down: send the request again.'));
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
  });
  // Every route of the app, whoever registers it: what the secure-by-default test walks.
  const routes: RouteAccess[] = [];
  app.decorate('routeAccess', routes);
  app.addHook('onRoute', (routeOptions) => void routes.push(...routeAccessOf(routeOptions)));
  app.removeContentTypeParser('text/plain');
  await app.register(errorsPlugin);
  await app.register(httpHardeningPlugin, { config });
  await app.register(openapiPlugin, { publicUrl: config.publicUrl });
  await app.register(gatehousePlugin, { config, database: options.database, undeclaredRoutes: 'fail' });
  return app;
}
