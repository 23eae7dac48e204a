import { createHmac, createPublicKey } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { buildApp } from '../../src/app.js';
import { createPermission } from '../../src/domain/roles.js';
import { createLogger } from '../../src/logger.js';
import { gatehousePlugin, type GatehouseOptions } from '../../src/plugin.js';
import { errorsPlugin } from '../../src/plugins/errors.js';
import { userWithPermissions, userWithRoles } from '../helpers/admin.js';
import { eachDatabase, testConfig, type Test } from '../helpers/app.js';
import { openTestDatabase, type DatabaseKind } from '../helpers/databases.js';
import { claimsOf, forgeToken, validClaims } from '../helpers/jwt.js';
import { assertProblem } from '../helpers/problems.js';
import { bearer, registerUser } from '../helpers/users.js';

const whoCalls = async (request: FastifyRequest) => ({ userId: request.principal?.userId ?? null });

/** The routes an adopter declares, under `/${at}`: one of each kind of rule, and an open one. */
function declaredRoutes(scope: FastifyInstance, at: string): void {
  scope.get(`/${at}/needs-p`, { config: { permissionsRequired: ['p'] } }, whoCalls);
  scope.get(`/${at}/signed-in`, { config: { authenticated: true } }, whoCalls);
  scope.get(`/${at}/user-with-p-or-q`, { config: { rolesAccepted: ['user'], rolesRequired: ['user'], permissionsAccepted: ['p', 'q'] } }, whoCalls);
  scope.post(
    `/${at}/with-body`,
    {
      config: { permissionsRequired: ['p'] },
      schema: { body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } }, additionalProperties: false } },
    },
    whoCalls,
  );
  scope.get(`/${at}/open`, { config: { public: true } }, whoCalls);
}

/**
 * A host app that mounts Gatehouse with `setup` registering routes around it: `before` runs before
 * the plugin is registered, `after` once it is. The log is kept in `logLines` when given.
 */
async function hostApp(
  t: Test,
  kind: DatabaseKind,
  setup: { before?: (app: FastifyInstance) => void; after?: (app: FastifyInstance) => void },
  options: { undeclaredRoutes?: GatehouseOptions['undeclaredRoutes']; logLines?: string[] } = {},
): Promise<FastifyInstance> {
  const database = await openTestDatabase(kind);
  const logger = createLogger({ logLevel: options.logLines ? 'warn' : 'silent' }, { write: (line: string) => void options.logLines?.push(line) });
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger });
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });
  await app.register(errorsPlugin);
  setup.before?.(app);
  await app.register(gatehousePlugin, { config: testConfig(), database, undeclaredRoutes: options.undeclaredRoutes });
  setup.after?.(app);
  return app;
}

const logged = (lines: string[], level: number) =>
  lines.map((line) => JSON.parse(line) as { level: number; route?: string; msg: string }).filter((l) => l.level === level && l.route);

eachDatabase('a host route is guarded by its rule whether it was registered before or after Gatehouse, at the root or in an encapsulated plugin', async (t, kind) => {
  const app = await hostApp(t, kind, {
    before: (root) => {
      declaredRoutes(root, 'root-before');
      void root.register(async (child) => {
        declaredRoutes(child, 'child-before');
        await child.register(async (grandchild) => declaredRoutes(grandchild, 'grandchild-before'));
      });
    },
    after: (root) => {
      declaredRoutes(root, 'root-after');
      void root.register(async (child) => declaredRoutes(child, 'child-after'));
    },
  });
  await app.ready();
  await createPermission(app.gatehouse.db, { name: 'p' });
  await createPermission(app.gatehouse.db, { name: 'q' });
  const holdsP = await userWithPermissions(app, ['p']);
  const holdsQ = await userWithPermissions(app, ['q']);
  const plain = await userWithRoles(app, ['user']);

  for (const at of ['root-before', 'child-before', 'grandchild-before', 'root-after', 'child-after']) {
    assertProblem(t, await app.inject({ url: `/${at}/needs-p` }), 401, 'token_missing', `${at}: anonymous`);
    t.equal((await app.inject({ method: 'HEAD', url: `/${at}/needs-p` })).statusCode, 401, `${at}: anonymous HEAD`);
    assertProblem(t, await app.inject({ url: `/${at}/needs-p`, headers: bearer('not-a-jwt') }), 401, 'token_invalid', `${at}: a bad token`);
    const denied = assertProblem(t, await app.inject({ url: `/${at}/needs-p`, headers: holdsQ.headers }), 403, 'permission_denied', `${at}: the wrong permission`);
    t.match(denied.detail, /permission p/, `${at}: told what is missing`);
    const allowed = await app.inject({ url: `/${at}/needs-p`, headers: holdsP.headers });
    t.equal(allowed.statusCode, 200, `${at}: the right permission`);
    t.same(allowed.json(), { userId: holdsP.userId }, `${at}: the handler sees the caller`);

    assertProblem(t, await app.inject({ url: `/${at}/signed-in` }), 401, 'token_missing', `${at}: authenticated, anonymous`);
    t.equal((await app.inject({ url: `/${at}/signed-in`, headers: plain.headers })).statusCode, 200, `${at}: authenticated, signed in`);
    assertProblem(t, await app.inject({ url: `/${at}/user-with-p-or-q`, headers: plain.headers }), 403, 'permission_denied', `${at}: roles and permissions, plain`);
    t.equal((await app.inject({ url: `/${at}/user-with-p-or-q`, headers: holdsQ.headers })).statusCode, 200, `${at}: roles and permissions, q`);

    const badBody = { method: 'POST' as const, url: `/${at}/with-body`, payload: { n: 'not a number' } };
    assertProblem(t, await app.inject(badBody), 401, 'token_missing', `${at}: anonymous with a bad body is refused before validation`);
    assertProblem(t, await app.inject({ ...badBody, headers: holdsQ.headers }), 403, 'permission_denied', `${at}: unentitled with a bad body`);
    assertProblem(t, await app.inject({ ...badBody, headers: holdsP.headers }), 400, 'validation_failed', `${at}: entitled with a bad body`);

    const open = await app.inject({ url: `/${at}/open` });
    t.same([open.statusCode, open.json()], [200, { userId: null }], `${at}: a public route stays open`);
  }
});

/** Routes with neither a rule nor `public: true`, next to declared ones. */
function undeclaredRoutes(scope: FastifyInstance, at: string): void {
  scope.get(`/${at}/loose`, async () => ({ loose: true }));
  scope.post(`/${at}/loose`, async () => ({ loose: true }));
  declaredRoutes(scope, at);
}

const afterGatehouse = {
  after: (root: FastifyInstance) => {
    undeclaredRoutes(root, 'root');
    void root.register(async (child) => undeclaredRoutes(child, 'child'));
  },
};

eachDatabase("undeclaredRoutes 'fail': ready rejects with an error naming each undeclared route once", async (t, kind) => {
  const app = await hostApp(t, kind, afterGatehouse, { undeclaredRoutes: 'fail' });
  const error = await app.ready().then(
    () => undefined,
    (err: Error) => err,
  );
  t.ok(error, 'ready rejects');
  t.match(error?.message, /GET \/root\/loose, POST \/root\/loose, GET \/child\/loose, POST \/child\/loose have neither an access rule nor config\.public/);
  t.notMatch(error?.message, /HEAD/, "the HEAD route Fastify made for a GET is not listed on its own");
  t.notMatch(error?.message, /needs-p|open|\/auth\/|\/admin\//, 'declared routes, and Gatehouse’s own, are not listed');
});

eachDatabase("undeclaredRoutes 'warn', the plugin's default: each undeclared route is logged once at ready and still served", async (t, kind) => {
  const logLines: string[] = [];
  const app = await hostApp(t, kind, afterGatehouse, { logLines });
  await app.ready();
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/root/loose' })).statusCode, 200, 'served to anyone');
  const warnings = logged(logLines, 40);
  t.same(
    warnings.map((w) => w.route),
    ['GET /root/loose', 'POST /root/loose', 'GET /child/loose', 'POST /child/loose'],
    'one line per undeclared route, none for HEAD or for requests',
  );
  t.match(warnings[0]?.msg, /neither an access rule nor config\.public/);
});

eachDatabase("undeclaredRoutes 'allow': undeclared routes are served and nothing is logged", async (t, kind) => {
  const logLines: string[] = [];
  const app = await hostApp(t, kind, afterGatehouse, { undeclaredRoutes: 'allow', logLines });
  await app.ready();
  t.equal((await app.inject({ url: '/child/loose' })).statusCode, 200);
  t.same(logged(logLines, 40), [], 'no warning');
});

eachDatabase('the standalone server refuses to start with a route that declares no access', async (t, kind) => {
  const database = await openTestDatabase(kind);
  const app = await buildApp(testConfig(), { database });
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });
  app.get('/loose', async () => ({ loose: true }));
  await t.rejects(async () => app.ready(), /GET \/loose has neither an access rule/);
});

const beforeGatehouse = {
  before: (root: FastifyInstance) => {
    root.get('/early/loose', async () => ({ loose: true }));
    void root.register(async (child) => declaredRoutes(child, 'early'));
  },
};

eachDatabase('an undeclared route registered before Gatehouse is judged at its first request, by the same setting', async (t, kind) => {
  await t.test("'warn': served, and logged once", async (t) => {
    const logLines: string[] = [];
    const app = await hostApp(t, kind, beforeGatehouse, { logLines });
    await app.ready();
    t.same(logged(logLines, 40), [], 'not seen at ready');
    for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/early/loose' })).statusCode, 200, 'served');
    t.equal((await app.inject({ method: 'HEAD', url: '/early/loose' })).statusCode, 200, 'HEAD served');
    t.same(logged(logLines, 40).map((w) => w.route), ['GET /early/loose'], 'one line, on the first request, none for its HEAD');
  });

  await t.test("'fail': refused with a 500, never served, and logged once", async (t) => {
    const logLines: string[] = [];
    const app = await hostApp(t, kind, beforeGatehouse, { undeclaredRoutes: 'fail', logLines });
    await app.ready();
    for (let i = 0; i < 2; i++) {
      const res = assertProblem(t, await app.inject({ url: '/early/loose' }), 500, 'internal_error', 'refused');
      t.notMatch(res.detail, /loose: true/);
    }
    t.equal((await app.inject({ method: 'HEAD', url: '/early/loose' })).statusCode, 500, 'its HEAD refused too');
    t.same(logged(logLines, 50).filter((l) => /neither an access rule/.test(l.msg)).map((l) => l.route), ['GET /early/loose'], 'one error line names it');
    assertProblem(t, await app.inject({ url: '/early/needs-p' }), 401, 'token_missing', 'its declared neighbours are guarded as usual');
    t.equal((await app.inject({ url: '/early/open' })).statusCode, 200, 'and a public one is open');
    assertProblem(t, await app.inject({ url: '/nowhere' }), 404, 'not_found', 'an unknown URL is a 404, not an undeclared route');
  });

  await t.test("'allow': served, nothing logged", async (t) => {
    const logLines: string[] = [];
    const app = await hostApp(t, kind, beforeGatehouse, { undeclaredRoutes: 'allow', logLines });
    await app.ready();
    t.equal((await app.inject({ url: '/early/loose' })).statusCode, 200);
    t.same(logged(logLines, 40), []);
  });
});

eachDatabase('a rule a later onRoute hook of the host adds to a route is enforced too', async (t, kind) => {
  const app = await hostApp(t, kind, {
    after: (root) => {
      void root.register(async (scope) => {
        // An adopter's own convention, applied after Gatehouse's hook has seen the route.
        scope.addHook('onRoute', (routeOptions) => {
          if (routeOptions.url.startsWith('/staff/')) routeOptions.config = { ...routeOptions.config, rolesRequired: ['staff'] };
        });
        scope.get('/staff/list', whoCalls);
      });
    },
  });
  await app.ready();
  assertProblem(t, await app.inject({ url: '/staff/list' }), 401, 'token_missing', 'anonymous');
  const plain = await userWithRoles(app, ['user']);
  assertProblem(t, await app.inject({ url: '/staff/list', headers: plain.headers }), 403, 'permission_denied', 'without the role');
});

eachDatabase("request.jwtVerify() in a host route checks Gatehouse's tokens with Gatehouse's keys, each pinned to its algorithm", async (t, kind) => {
  const app = await hostApp(t, kind, {
    after: (root) => {
      root.get('/host/claims', { config: { public: true } }, async (request) => {
        const claims = await request.jwtVerify<{ sub: string }>();
        return { sub: claims.sub };
      });
    },
  });
  await app.ready();
  const user = await registerUser(app);
  const verified = await app.inject({ url: '/host/claims', headers: bearer(user.accessToken) });
  t.equal(verified.statusCode, 200, verified.body);
  t.equal(verified.json<{ sub: string }>().sub, user.user.id, 'a token Gatehouse issued (ES256, the default) passes');

  const [published] = (await app.inject({ url: '/.well-known/jwks.json' })).json<{ keys: Record<string, string>[] }>().keys;
  const publicPem = createPublicKey({ key: published!, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  const payload = validClaims(claimsOf(user.accessToken));
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  const hmacSigned = (header: object, secret: string) => {
    const input = `${encode(header)}.${encode(payload)}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const forged = {
    'HS256 signed with the public key, naming its kid': hmacSigned({ alg: 'HS256', typ: 'JWT', kid: published!.kid }, publicPem),
    'alg none': forgeToken(payload, { alg: 'none' }),
    'an unknown kid': hmacSigned({ alg: 'HS256', typ: 'JWT', kid: 'not-a-key' }, testConfig().jwtSecret),
    'a jku header': hmacSigned({ alg: 'HS256', typ: 'JWT', jku: 'https://attacker.example/jwks.json' }, testConfig().jwtSecret),
    'JWT_SECRET, expiring after the switch window': forgeToken({ ...payload, exp: (payload.exp as number) + 3600 }),
  };
  for (const [name, token] of Object.entries(forged)) {
    const res = await app.inject({ url: '/host/claims', headers: bearer(token) });
    t.equal(res.statusCode, 401, name);
    t.match(res.headers['content-type'], /^application\/problem\+json/, name);
  }
  t.equal((await app.inject({ url: '/host/claims', headers: bearer(forgeToken(payload)) })).statusCode, 200, 'JWT_SECRET within the window of a switch, as Gatehouse accepts it');
});
