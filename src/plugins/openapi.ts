import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export const OPENAPI_INFO = {
  title: 'Gatehouse',
  version: '0.1.0',
  description:
    'User management API: registration, login, JWT access tokens with rotating refresh tokens, roles and permissions. Every error is application/problem+json (RFC 9457) with a stable `code`.',
};

/** The OpenAPI 3.1 document, generated from the route schemas and served at /openapi.json and /docs. */
export const openapiPlugin = fp(
  async (app: FastifyInstance) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: OPENAPI_INFO,
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          },
        },
      },
      // Name components after each schema's $id instead of def-0, def-1...
      refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    });
    await app.register(async (docs) => {
      // The docs pages are public by nature; say so on each of their routes, as every route must.
      docs.addHook('onRoute', (routeOptions) => {
        routeOptions.config = { ...routeOptions.config, public: true };
        routeOptions.schema = { ...routeOptions.schema, hide: true };
      });
      await docs.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } });
    });
    app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());
  },
  { name: 'gatehouse-openapi', fastify: '5.x' },
);
