import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { OpenAPIV3_1 } from 'openapi-types';

/** Set on a route schema whose body may be left out entirely (cookie-mode refresh and logout). */
export const OPTIONAL_BODY = 'x-body-optional';

function markOptionalBodies(document: OpenAPIV3_1.Document): OpenAPIV3_1.Document {
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem ?? {})) {
      const op = operation as OpenAPIV3_1.OperationObject & { [OPTIONAL_BODY]?: boolean };
      if (typeof op !== 'object' || !op[OPTIONAL_BODY]) continue;
      delete op[OPTIONAL_BODY];
      if (op.requestBody && 'content' in op.requestBody) op.requestBody.required = false;
    }
  }
  return document;
}

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
      // @fastify/swagger marks every request body required; routes whose body may be absent say so.
      transformObject: (document) => markOptionalBodies((document as { openapiObject: OpenAPIV3_1.Document }).openapiObject),
      refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    });
    await app.register(async (docs) => {
      // The docs pages are public by nature; say so on each of their routes, as every route must.
      docs.addHook('onRoute', (routeOptions) => {
        routeOptions.config = { ...routeOptions.config, public: true };
        routeOptions.schema = { ...routeOptions.schema, hide: true };
      });
      await docs.register(swaggerUi, {
        routePrefix: '/docs',
        uiConfig: { deepLinking: true },
        // The one HTML page: it replaces the API's `default-src 'none'` with a policy naming exactly
        // its own scripts and styles (by hash), and still refuses to be framed.
        staticCSP: true,
        transformStaticCSP: (header) => header.replace("frame-ancestors 'self'", "frame-ancestors 'none'"),
      });
    });
    app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());
  },
  { name: 'gatehouse-openapi', fastify: '5.x' },
);
