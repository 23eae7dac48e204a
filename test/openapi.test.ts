import { readFileSync } from 'node:fs';
import tap from 'tap';
import { OPENAPI_FILE, generateOpenApi } from '../scripts/openapi.js';

tap.test('openapi/openapi.json is current: regenerate it with `npm run openapi`', async (t) => {
  const generated = await generateOpenApi();
  const committed = readFileSync(OPENAPI_FILE, 'utf8');
  t.ok(generated === committed, 'the committed document equals the one generated from the routes');
});

/** POST routes that are actions on the URL alone and take no body. */
const BODILESS_ACTIONS = new Set(['/auth/logout-all', '/admin/users/{id}/sessions/revoke', '/auth/mfa/totp/enroll', '/auth/mfa/recovery-codes', '/auth/passkeys/registration/options']);

tap.test('every operation declares its responses, and errors as problem+json', async (t) => {
  const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as {
    paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, unknown> }>; requestBody?: unknown }>>;
  };
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const label = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(operation.responses ?? {});
      t.ok(statuses.some((s) => s.startsWith('2')), `${label} declares a success response`);
      for (const status of statuses.filter((s) => Number(s) >= 400)) {
        t.ok(operation.responses![status]!.content?.['application/problem+json'], `${label} ${status} is problem+json`);
      }
      if (method === 'put' || method === 'patch' || (method === 'post' && !BODILESS_ACTIONS.has(path))) {
        t.ok(operation.requestBody, `${label} declares its request body`);
      }
    }
  }
});

interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  'x-api-keys'?: boolean;
  parameters?: { in: string; name: string; required?: boolean; schema?: { default?: unknown } }[];
  requestBody?: { content: Record<string, { example?: unknown; examples?: unknown }> };
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string }; example?: unknown }> }>;
}
interface Document {
  info: { license?: { name: string; identifier?: string } };
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
}
const committed = () => JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document;
const operationsOf = (document: Document) =>
  Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ label: `${method.toUpperCase()} ${path}`, method, path, operation })),
  );

tap.test('every operation has a unique camelCase operationId, as generated clients name their methods', async (t) => {
  const seen = new Map<string, string>();
  for (const { label, operation } of operationsOf(committed())) {
    const id = operation.operationId;
    t.match(id, /^[a-z][a-zA-Z]*$/, `${label}: ${id}`);
    t.notOk(seen.has(id!), `${label}: ${id} is not also ${seen.get(id!)}`);
    seen.set(id!, label);
  }
  t.same(
    ['login', 'refreshTokens', 'logout', 'register', 'getCurrentUser', 'listUsers', 'setUserRoles', 'deleteRole'].filter((id) => !seen.has(id)),
    [],
    'the names clients call',
  );
});

tap.test('every operation states its security, and a public one needs no credential', async (t) => {
  // The document is built from the same route config the access check reads.
  const { buildTestApp } = await import('./helpers/app.js');
  const { app } = await buildTestApp(t, 'pglite');
  const document = committed();
  const documented = operationsOf(document);
  for (const route of app.routeAccess) {
    const path = route.url.replace(/:(\w+)/g, '{$1}');
    const operation = document.paths[path]?.[route.method.toLowerCase()];
    if (!operation) continue;
    const label = `${route.method} ${path}`;
    if (route.public) {
      // Logout takes a Bearer token if there is one: a credential it accepts, not one it needs.
      t.ok(operation.security?.length === 0 || operation.security?.some((s) => Object.keys(s).length === 0), `${label} is public in the document`);
    } else {
      // An API key is the other way in, except where the rule keeps keys out (x-api-keys: false).
      const expected = operation['x-api-keys'] === false ? [{ bearerAuth: [] }] : [{ bearerAuth: [] }, { apiKeyAuth: [] }];
      t.same(operation.security, expected, `${label} needs a Bearer token (or an API key) in the document`);
    }
  }
  t.equal(documented.filter(({ operation }) => operation.security === undefined).length, 0, 'no operation leaves security unsaid');
  t.same(document.paths['/auth/login']?.post?.security, []);
  t.same(document.paths['/auth/me']?.get?.security, [{ bearerAuth: [] }, { apiKeyAuth: [] }]);
  t.same(document.paths['/auth/api-keys']?.post?.security, [{ bearerAuth: [] }], 'a key cannot create keys');
});

tap.test('examples on every request body and every success response with a body', async (t) => {
  for (const { label, operation } of operationsOf(committed())) {
    const body = operation.requestBody?.content['application/json'];
    if (body) t.ok(body.example ?? body.examples, `${label} request body has an example`);
    for (const [status, response] of Object.entries(operation.responses)) {
      const json = response.content?.['application/json'];
      if (status.startsWith('2') && json) t.ok(json.example, `${label} ${status} has an example`);
    }
  }
});

tap.test('shared response shapes are named components, not copies', async (t) => {
  const document = committed();
  const schemaOf = (path: string, method: string, status: string) =>
    document.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema;
  t.same(
    schemaOf('/auth/login', 'post', '200'),
    { anyOf: [{ $ref: '#/components/schemas/TokenResponse' }, { $ref: '#/components/schemas/MfaRequired' }] },
    'a login answers tokens, or the second step for a user with a factor',
  );
  t.same(schemaOf('/auth/mfa/verify', 'post', '200'), { $ref: '#/components/schemas/TokenResponse' });
  t.same(schemaOf('/auth/refresh', 'post', '200'), { $ref: '#/components/schemas/TokenResponse' });
  t.same(schemaOf('/auth/register', 'post', '201'), { $ref: '#/components/schemas/RegisterResponse' });
  for (const { label, operation } of operationsOf(document)) {
    for (const [status, response] of Object.entries(operation.responses)) {
      if (Number(status) >= 400) t.same(response.content?.['application/problem+json']?.schema, { $ref: '#/components/schemas/Problem' }, `${label} ${status}`);
    }
  }
});

tap.test('a query parameter with a default is optional, and every operation declares an error response', async (t) => {
  const document = committed();
  const optional = [] as string[];
  for (const { label, operation } of operationsOf(document)) {
    for (const parameter of operation.parameters ?? []) {
      if (parameter.in === 'query' && parameter.schema?.default !== undefined) {
        t.equal(parameter.required, false, `${label} ?${parameter.name}`);
        optional.push(parameter.name);
      }
    }
    t.ok(Object.keys(operation.responses).some((status) => Number(status) >= 400), `${label} declares a 4xx or 5xx`);
  }
  t.same([...new Set(optional)].sort(), ['force', 'limit']);
  t.same(document.info.license, { name: 'MIT', identifier: 'MIT' });
  t.same(document.servers, [{ url: 'http://127.0.0.1:3000' }], 'the committed document names the default PUBLIC_URL');
});

tap.test('the served document names PUBLIC_URL as its server', async (t) => {
  const { buildApp } = await import('../src/app.js');
  const { testConfig } = await import('./helpers/app.js');
  const { openTestDatabase } = await import('./helpers/databases.js');
  const database = await openTestDatabase('pglite');
  const app = await buildApp(testConfig({ PUBLIC_URL: 'https://auth.example.test/' }), { database });
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });
  // A route added to the standalone app without a schema is documented, and its access too.
  app.get('/extra', { config: { public: true } }, async () => 'extra');
  const served = (await app.inject('/openapi.json')).json() as Document;
  t.same(served.servers, [{ url: 'https://auth.example.test' }]);
  t.ok(served.paths['/auth/login'], 'paths are relative to it');
  t.same(served.paths['/extra']?.get?.security, [], 'a public route without a schema needs no credential either');
});

tap.test('in plugin mode under a prefix, the served document names PUBLIC_URL plus the prefix, and its paths follow it', async (t) => {
  const Fastify = (await import('fastify')).default;
  const { gatehousePlugin } = await import('../src/index.js');
  const { testConfig } = await import('./helpers/app.js');
  const { openTestDatabase } = await import('./helpers/databases.js');
  const database = await openTestDatabase('pglite');
  const host = Fastify();
  t.teardown(async () => {
    await host.close();
    await database.drop();
  });
  host.get('/notes', { config: { public: true } }, async () => []);
  // A proxy in front serves the whole app under /api.
  const config = testConfig({ PUBLIC_URL: 'https://example.test/api' });
  await host.register(gatehousePlugin, { config, database, prefix: '/identity', openapi: true });
  await host.ready();

  const res = await host.inject('/identity/openapi.json');
  t.equal(res.statusCode, 200);
  const served = res.json() as Document;
  t.same(served.servers, [{ url: 'https://example.test/api/identity' }]);
  t.same(Object.keys(served.paths).sort(), Object.keys(committed().paths).sort(), "the paths are Gatehouse's, relative to the prefix");
  t.same(served.paths['/auth/register']?.post?.security, [], 'public routes say so in plugin mode too');
  t.equal((await host.inject('/identity/docs')).statusCode, 200, 'the docs page is under the prefix');
  const login = await host.inject({ method: 'POST', url: '/identity/auth/login', payload: { email: 'nobody@example.test', password: 'x' } });
  t.equal(login.statusCode, 401, 'server + path is a real route');

  const plain = Fastify();
  t.teardown(() => plain.close());
  await plain.register(gatehousePlugin, { config, database, prefix: '/identity' });
  t.equal((await plain.inject('/identity/openapi.json')).statusCode, 404, 'without openapi: true the app gets no extra routes');
});
