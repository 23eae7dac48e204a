import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';

/**
 * Headers for a JSON API (OWASP REST cheat sheet): nothing may be framed, sniffed, or run; and
 * CORS only for the origins listed in CORS_ORIGINS, which alone may send credentials.
 */
export const httpHardeningPlugin = fp(
  async (app: FastifyInstance, { config }: { config: Config }) => {
    await app.register(helmet, {
      global: true,
      contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      crossOriginResourcePolicy: { policy: 'same-site' },
      referrerPolicy: { policy: 'no-referrer' },
      hsts: config.cookieSecure ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    });
    // @fastify/cors answers preflights from its own `OPTIONS *` route, which takes no route
    // options: declare it public here, as every route must say what it is.
    app.addHook('onRoute', (routeOptions) => {
      if (routeOptions.method === 'OPTIONS' && routeOptions.url === '*') routeOptions.config = { ...routeOptions.config, public: true };
    });
    const allowed = new Set(config.corsOrigins);
    await app.register(cors, {
      // Only listed origins get CORS headers at all; every other origin is answered as if CORS
      // did not exist, so its browser refuses to hand the response to the page.
      origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
      credentials: true,
      methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-csrf-token', 'x-request-id'],
      exposedHeaders: ['x-request-id', 'retry-after', 'www-authenticate'],
      maxAge: 600,
    });
  },
  { name: 'gatehouse-http-hardening', fastify: '5.x' },
);
