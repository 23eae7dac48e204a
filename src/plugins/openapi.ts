import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
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
  license: { name: 'MIT', identifier: 'MIT' },
};

const TAGS = [
  { name: 'auth', description: 'Sign up, log in, refresh and log out; the current user' },
  { name: 'account', description: "Email confirmation and change, password reset and change, the caller's sessions" },
  { name: 'mfa', description: "Two-factor authentication: an authenticator app (TOTP), recovery codes, a login's second step and step-up re-authentication" },
  { name: 'passkeys', description: 'Passkeys (WebAuthn): registering them, signing in without a password, and as a second step after one' },
  { name: 'api-keys', description: 'Keys for scripts and services, acting for their owner with at most the permissions given them' },
  { name: 'admin', description: 'Users, roles, permissions and the audit log, each behind its own permission' },
  { name: 'health', description: 'Probes for load balancers and orchestrators' },
  { name: 'keys', description: 'The public keys that verify access tokens (JWKS) and the discovery document, for resource servers' },
];

export interface OpenapiOptions {
  /** Where clients reach the app (PUBLIC_URL). */
  publicUrl: string;
  /** Where Gatehouse's routes are mounted: the server URL ends with it and the paths start after it. */
  prefix?: string;
}

/**
 * The document's side of each route's access: a public route says it needs no credential
 * (`security: []`), read from the same `config.public` that lets its requests through. Routes with
 * a rule get theirs from the permissions plugin; a route stating its own `security` keeps it.
 */
function documentPublicAccess(schema: FastifySchema, route: RouteOptions): FastifySchema {
  if (route.config?.public !== true || 'security' in schema) return schema;
  return { ...schema, security: [] } as FastifySchema;
}

/** The OpenAPI 3.1 document, generated from the route schemas and served at /openapi.json and /docs. */
export const openapiPlugin = fp(
  async (app: FastifyInstance, { publicUrl, prefix = '' }: OpenapiOptions) => {
    // As Fastify mounts it: '/identity/' and '/identity' are the same prefix.
    const base = prefix.replace(/\/+$/, '');
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: OPENAPI_INFO,
        servers: [{ url: `${publicUrl}${base}` }],
        tags: TAGS,
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
            apiKeyAuth: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'gh_<keyId>_<secret> (also accepted as "Authorization: Bearer gh_...")' },
          },
        },
      },
      // The prefix is taken off here rather than by matching the server URL's path, which would
      // miss it when PUBLIC_URL has a path of its own (a proxy's /api). Every route this document
      // sees was registered in the scope it was, so under the prefix.
      stripBasePath: false,
      transform: ({ schema, url, route }) => ({
        // A route without a schema (none of Gatehouse's, but an app's own may) comes with none at all.
        schema: documentPublicAccess(schema ?? {}, route),
        url: url.slice(base.length),
      }),
      // @fastify/swagger marks every request body required; routes whose body may be absent say so.
      transformObject: (document) => markOptionalBodies((document as { openapiObject: OpenAPIV3_1.Document }).openapiObject),
      // Name components after each schema's $id instead of def-0, def-1...
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
        // BaseLayout: no top bar, whose inline SVG logo carries a <style> the CSP below refuses
        // (and whose box for loading another document's URL Gatehouse has no use for).
        uiConfig: { deepLinking: true, layout: 'BaseLayout' },
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
