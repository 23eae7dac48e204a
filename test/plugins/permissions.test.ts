import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Database } from '../../src/db/client.js';
import { ADMIN_PERMISSIONS } from '../../src/db/seed.js';
import { ACCESS_CHANNEL } from '../../src/domain/access-cache.js';
import { createPermission, createRole, listRoles } from '../../src/domain/roles.js';
import { gatehousePlugin } from '../../src/plugin.js';
import { errorsPlugin } from '../../src/plugins/errors.js';
import { adminToken, send, userWithPermissions, userWithRoles, type Actor } from '../helpers/admin.js';
import { buildTestApp, eachDatabase, testConfig, type Test } from '../helpers/app.js';
import { openTestDatabase, type DatabaseKind, type TestDatabase } from '../helpers/databases.js';
import { forgeToken, validClaims, claimsOf } from '../helpers/jwt.js';
import { assertBearerChallenge, assertProblem } from '../helpers/problems.js';
import { bearer, post, registerUser } from '../helpers/users.js';

/**
 * A host application that mounts Gatehouse as a plugin and declares access rules on its own
 * routes, the way an adopter would. `database` defaults to a fresh one, dropped with the test.
 */
async function buildHostApp(t: Test, kind: DatabaseKind, database?: Database): Promise<FastifyInstance> {
  const fresh = database ? undefined : await openTestDatabase(kind);
  const app = Fastify();
  t.teardown(async () => {
    await app.close();
    await fresh?.drop();
  });
  await app.register(errorsPlugin);
  await app.register(gatehousePlugin, { config: testConfig(), database: database ?? fresh! });
  const ok = async (request: { principal: { userId: string } | null }) => ({ userId: request.principal?.userId ?? null });
  app.get('/signed-in', { config: { authenticated: true } }, ok);
  app.get('/roles-required', { config: { rolesRequired: ['red', 'blue'] } }, ok);
  app.get('/roles-accepted', { config: { rolesAccepted: ['red', 'blue'] } }, ok);
  app.get('/permissions-required', { config: { permissionsRequired: ['p', 'q'] } }, ok);
  app.get('/permissions-accepted', { config: { permissionsAccepted: ['p', 'q'] } }, ok);
  app.get('/red-and-q', { config: { rolesAccepted: ['red'], permissionsRequired: ['q'] } }, ok);
  app.post(
    '/with-body',
    {
      config: { permissionsRequired: ['p'] },
      schema: { body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } }, additionalProperties: false } },
    },
    ok,
  );
  await app.ready();
  const { db } = app.gatehouse;
  await createPermission(db, { name: 'p' });
  await createPermission(db, { name: 'q' });
  for (const [name, permissions] of [['red', []], ['blue', []], ['gives-p', ['p']], ['gives-q', ['q']]] as const) {
    await createRole(db, 'system', { name, permissions: [...permissions] });
  }
  return app;
}

eachDatabase('each kind of access rule lets in exactly the users it names and tells the others what they lack', async (t, kind) => {
  const app = await buildHostApp(t, kind);
  const as = async (roles: string[]) => userWithRoles(app, ['user', ...roles]);
  const users = {
    plain: await as([]),
    red: await as(['red']),
    blue: await as(['blue']),
    redBlue: await as(['red', 'blue']),
    p: await as(['gives-p']),
    q: await as(['gives-q']),
    pq: await as(['gives-p', 'gives-q']),
    redQ: await as(['red', 'gives-q']),
  };
  type Who = keyof typeof users;
  // route -> who gets in; everyone else gets 403 with a detail matching `lacking`.
  const rules: [string, Who[], Partial<Record<Who, RegExp>>][] = [
    ['/signed-in', Object.keys(users) as Who[], {}],
    ['/roles-required', ['redBlue'], { plain: /roles red, blue/, red: /role blue/, blue: /role red/, p: /roles red, blue/ }],
    ['/roles-accepted', ['red', 'blue', 'redBlue', 'redQ'], { plain: /one of the roles red, blue/, pq: /one of the roles red, blue/ }],
    ['/permissions-required', ['pq'], { plain: /permissions p, q/, p: /permission q/, q: /permission p/, redBlue: /permissions p, q/ }],
    ['/permissions-accepted', ['p', 'q', 'pq', 'redQ'], { plain: /one of the permissions p, q/, red: /one of the permissions p, q/ }],
    ['/red-and-q', ['redQ'], { plain: /one of the roles red.*permission q/, red: /permission q/, q: /one of the roles red/, pq: /one of the roles red/ }],
  ];
  for (const [url, allowed, lacking] of rules) {
    for (const [who, user] of Object.entries(users) as [Who, Actor][]) {
      const res = await app.inject({ url, headers: user.headers });
      if (allowed.includes(who)) {
        t.equal(res.statusCode, 200, `${url}: ${who} gets in`);
        t.same(res.json(), { userId: user.userId }, `${url}: the handler sees ${who} as the principal`);
      } else {
        const body = assertProblem(t, res, 403, 'permission_denied', `${url}: ${who}`);
        const named = lacking[who];
        if (named) t.match(body.detail, named, `${url}: ${who} is told what is missing`);
        t.notMatch(body.detail, /\bundefined\b/, `${url}: ${who}: a readable detail`);
      }
    }
  }
  const wrongPermission = assertProblem(t, await app.inject({ url: '/permissions-required', headers: users.p.headers }), 403, 'permission_denied');
  t.notMatch(wrongPermission.detail, /permission p\b|p, q/, 'what the user already holds is not listed as missing');
});

eachDatabase('a protected route without a usable token answers 401 and says how to authenticate', async (t, kind) => {
  const app = await buildHostApp(t, kind);
  const user = await userWithPermissions(app, ['p', 'q']);
  const otherSecret = 'another-secret-that-is-long-enough-0123456789';
  const cases: [string, Record<string, string>, string][] = [
    ['no Authorization header', {}, 'token_missing'],
    ['a Basic header', { authorization: 'Basic dXNlcjpwYXNz' }, 'token_invalid'],
    ['Bearer with nothing after it', { authorization: 'Bearer ' }, 'token_invalid'],
    ['a token that is not a JWT', bearer('not-a-jwt'), 'token_invalid'],
    ['a token signed with another secret', bearer(forgeToken(validClaims(claimsOf(user.accessToken)), { secret: otherSecret })), 'token_invalid'],
    ['an unsigned token', bearer(forgeToken(validClaims(claimsOf(user.accessToken)), { alg: 'none' })), 'token_invalid'],
    ['a token for a session that never existed', bearer(forgeToken(validClaims({ sub: user.userId, sid: randomUUID() }))), 'session_revoked'],
    ['a token for a user that never existed', bearer(forgeToken(validClaims({ sub: randomUUID(), sid: randomUUID() }))), 'session_revoked'],
  ];
  for (const url of ['/signed-in', '/roles-required', '/roles-accepted', '/permissions-required', '/permissions-accepted']) {
    for (const [label, headers, code] of cases) {
      const res = await app.inject({ url, headers });
      assertProblem(t, res, 401, code, `${url}, ${label}`);
      assertBearerChallenge(t, res, `${url}, ${label}`);
    }
  }
  const missing = await app.inject({ url: '/signed-in' });
  t.equal(missing.headers['www-authenticate'], 'Bearer', 'no error attribute when no credentials were sent');
  t.equal((await app.inject({ url: '/permissions-required', headers: user.headers })).statusCode, 200, 'the real token works');
});

eachDatabase('the access rule is checked before the body: strangers get 401, the unentitled 403, and only the entitled 400', async (t, kind) => {
  const app = await buildHostApp(t, kind);
  const entitled = await userWithRoles(app, ['gives-p']);
  const unentitled = await userWithRoles(app, ['user']);
  const bad = { method: 'POST' as const, url: '/with-body', payload: { n: 'not a number', extra: true } };
  assertProblem(t, await app.inject(bad), 401, 'token_missing', 'anonymous, invalid body');
  assertProblem(t, await app.inject({ ...bad, payload: '{not json', headers: { 'content-type': 'application/json' } }), 401, 'token_missing', 'anonymous, malformed JSON');
  assertProblem(t, await app.inject({ ...bad, headers: unentitled.headers }), 403, 'permission_denied', 'unentitled, invalid body');
  assertProblem(t, await app.inject({ ...bad, headers: entitled.headers }), 400, 'validation_failed', 'entitled, invalid body');
  const good = await app.inject({ method: 'POST', url: '/with-body', payload: { n: 1 }, headers: entitled.headers });
  t.equal(good.statusCode, 200);

  // The same holds for Gatehouse's own routes.
  assertProblem(t, await post(app, '/admin/roles', { name: 'Not Valid', surprise: 1 }), 401, 'token_missing', 'admin route, anonymous, invalid body');
  assertProblem(t, await post(app, '/admin/roles', { name: 'Not Valid' }, unentitled.headers), 403, 'permission_denied', 'admin route, unentitled, invalid body');
});

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

/** Every admin route, with the permission it needs and a request that changes nothing when allowed. */
const ADMIN_ROUTES: { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; route: string; url: string; payload?: unknown; permission: string; allowed: number }[] = [
  { method: 'GET', route: '/admin/users', url: '/admin/users', permission: 'users:read', allowed: 200 },
  { method: 'GET', route: '/admin/users/:id', url: `/admin/users/${UNKNOWN_ID}`, permission: 'users:read', allowed: 404 },
  { method: 'PATCH', route: '/admin/users/:id', url: `/admin/users/${UNKNOWN_ID}`, payload: { name: 'x' }, permission: 'users:write', allowed: 404 },
  { method: 'DELETE', route: '/admin/users/:id', url: `/admin/users/${UNKNOWN_ID}`, permission: 'users:delete', allowed: 404 },
  { method: 'PUT', route: '/admin/users/:id/roles', url: `/admin/users/${UNKNOWN_ID}/roles`, payload: { roles: ['user'] }, permission: 'roles:assign', allowed: 404 },
  { method: 'POST', route: '/admin/users/:id/sessions/revoke', url: `/admin/users/${UNKNOWN_ID}/sessions/revoke`, permission: 'users:write', allowed: 404 },
  { method: 'DELETE', route: '/admin/users/:id/mfa', url: `/admin/users/${UNKNOWN_ID}/mfa`, permission: 'users:mfa', allowed: 404 },
  { method: 'GET', route: '/admin/users/:id/passkeys', url: `/admin/users/${UNKNOWN_ID}/passkeys`, permission: 'users:mfa', allowed: 404 },
  { method: 'DELETE', route: '/admin/users/:id/passkeys/:pid', url: `/admin/users/${UNKNOWN_ID}/passkeys/${UNKNOWN_ID}`, permission: 'users:mfa', allowed: 404 },
  { method: 'POST', route: '/admin/users/:id/impersonate', url: `/admin/users/${UNKNOWN_ID}/impersonate`, payload: { reason: 'support' }, permission: 'users:impersonate', allowed: 404 },
  { method: 'GET', route: '/admin/roles', url: '/admin/roles', permission: 'roles:read', allowed: 200 },
  { method: 'POST', route: '/admin/roles', url: '/admin/roles', payload: { name: 'user' }, permission: 'roles:write', allowed: 409 },
  { method: 'GET', route: '/admin/roles/:name', url: '/admin/roles/user', permission: 'roles:read', allowed: 200 },
  { method: 'PATCH', route: '/admin/roles/:name', url: '/admin/roles/nope', payload: { description: 'x' }, permission: 'roles:write', allowed: 404 },
  { method: 'DELETE', route: '/admin/roles/:name', url: '/admin/roles/nope', permission: 'roles:write', allowed: 404 },
  { method: 'PUT', route: '/admin/roles/:name/permissions', url: '/admin/roles/nope/permissions', payload: { permissions: [] }, permission: 'roles:write', allowed: 404 },
  { method: 'GET', route: '/admin/permissions', url: '/admin/permissions', permission: 'roles:read', allowed: 200 },
  { method: 'POST', route: '/admin/permissions', url: '/admin/permissions', payload: { name: 'read' }, permission: 'roles:write', allowed: 409 },
  { method: 'DELETE', route: '/admin/permissions/:name', url: '/admin/permissions/nope', permission: 'roles:write', allowed: 404 },
  { method: 'GET', route: '/admin/audit', url: '/admin/audit', permission: 'audit:read', allowed: 200 },
  { method: 'GET', route: '/admin/signing-keys', url: '/admin/signing-keys', permission: 'keys:manage', allowed: 200 },
  { method: 'POST', route: '/admin/signing-keys', url: '/admin/signing-keys', payload: {}, permission: 'keys:manage', allowed: 201 },
  { method: 'POST', route: '/admin/signing-keys/:kid/activate', url: '/admin/signing-keys/nope/activate', payload: {}, permission: 'keys:manage', allowed: 404 },
  { method: 'POST', route: '/admin/signing-keys/:kid/revoke', url: '/admin/signing-keys/nope/revoke', payload: {}, permission: 'keys:manage', allowed: 404 },
  { method: 'GET', route: '/admin/api-keys', url: '/admin/api-keys', permission: 'users:read', allowed: 200 },
  { method: 'DELETE', route: '/admin/api-keys/:id', url: `/admin/api-keys/${UNKNOWN_ID}`, permission: 'users:write', allowed: 404 },
  // An unknown role: 400 once the access rule is through.
  { method: 'POST', route: '/admin/invitations', url: '/admin/invitations', payload: { email: 'invited@example.com', roles: ['no-such-role'] }, permission: 'users:write', allowed: 400 },
  { method: 'GET', route: '/admin/invitations', url: '/admin/invitations', permission: 'users:read', allowed: 200 },
  { method: 'DELETE', route: '/admin/invitations/:id', url: `/admin/invitations/${UNKNOWN_ID}`, permission: 'users:write', allowed: 404 },
];

eachDatabase('every admin route needs its own permission: a plain user is refused, an admin is not', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const registered = app.routeAccess
    .filter((r) => r.url.startsWith('/admin') && r.method !== 'HEAD')
    .map((r) => `${r.method} ${r.url}`)
    .sort();
  t.same(ADMIN_ROUTES.map((r) => `${r.method} ${r.route}`).sort(), registered, 'the walk covers every admin route');

  const admin = await adminToken(app);
  const plain = (await registerUser(app)).accessToken;
  const only = new Map<string, Actor>();
  const allBut = new Map<string, Actor>();
  for (const permission of ADMIN_PERMISSIONS) {
    only.set(permission, await userWithPermissions(app, [permission]));
    allBut.set(permission, await userWithPermissions(app, ADMIN_PERMISSIONS.filter((p) => p !== permission)));
  }

  for (const r of ADMIN_ROUTES) {
    const label = `${r.method} ${r.route}`;
    const denied = assertProblem(t, await app.inject({ method: r.method, url: r.url, headers: bearer(plain), payload: r.payload as object }), 403, 'permission_denied', `${label}, plain user`);
    t.match(denied.detail, r.permission, `${label}: the detail names ${r.permission}`);
    const without = assertProblem(t, await send(app, allBut.get(r.permission)!, r.method, r.url, r.payload), 403, 'permission_denied', `${label}, every other admin permission`);
    t.match(without.detail, r.permission, `${label}: still missing ${r.permission}`);
    t.equal((await send(app, only.get(r.permission)!, r.method, r.url, r.payload)).statusCode, r.allowed, `${label}: ${r.permission} alone is enough`);
    t.equal((await send(app, admin, r.method, r.url, r.payload)).statusCode, r.allowed, `${label}: an admin gets through`);
    assertProblem(t, await app.inject({ method: r.method, url: r.url, payload: r.payload as object }), 401, 'token_missing', `${label}, anonymous`);
  }
});

eachDatabase('logging out takes effect on the very next request', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  t.equal((await send(app, admin, 'GET', '/admin/roles')).statusCode, 200, 'signed in, cache warm');
  t.equal((await post(app, '/auth/logout', undefined, admin.headers)).statusCode, 204);
  assertProblem(t, await send(app, admin, 'GET', '/admin/roles'), 401, 'session_revoked', 'the next request');
});

/** The database with every call on its Drizzle handle counted: what "no query" is measured by. */
function countingDatabase(database: Database) {
  let calls: string[] = [];
  const db = new Proxy(database.db, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      // The relational API (db.query.x.findMany) is an object, not a call: count reaching for it.
      if (property === 'query') calls.push('query');
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(property));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    database: { ...database, db } satisfies Database,
    calls: () => calls,
    reset: () => void (calls = []),
  };
}

/** A host app on a fresh database whose every call is counted; `raw` is the uncounted handle. */
async function countedHostApp(t: Test, kind: DatabaseKind) {
  const raw = await openTestDatabase(kind);
  t.teardown(() => raw.drop()); // registered first, so it runs after the app has closed
  const counter = countingDatabase(raw);
  const app = await buildHostApp(t, kind, counter.database);
  return { raw, counter, app };
}

/**
 * Waits until every notification sent so far has reached this database's listeners, the access
 * cache's included: a late NOTIFY from an earlier login would otherwise empty the cache mid-count.
 */
async function notificationsSettled(database: TestDatabase): Promise<void> {
  const marker = `settled-${randomUUID()}`;
  let unlisten: (() => Promise<void>) | undefined;
  await new Promise<void>((resolve, reject) => {
    setTimeout(() => reject(new Error('the marker notification never arrived')), 10_000).unref();
    database
      .listen(ACCESS_CHANNEL, (payload) => payload === marker && resolve())
      .then((stop) => {
        unlisten = stop;
        return database.db.execute(sql`select pg_notify(${ACCESS_CHANNEL}, ${marker})`);
      })
      .catch(reject);
  });
  await unlisten?.();
}

eachDatabase('with a warm cache, /auth/me and access checks cost no database query', async (t, kind) => {
  const { raw, counter, app } = await countedHostApp(t, kind);
  const admin = await adminToken(app);
  const holder = await userWithRoles(app, ['user', 'gives-p', 'gives-q']);
  const plain = await userWithRoles(app, ['user']);
  await notificationsSettled(raw);

  const requests = (who: Actor) => [
    () => app.inject({ url: '/auth/me', headers: who.headers }),
    () => app.inject({ url: '/permissions-required', headers: who.headers }),
    () => app.inject({ url: '/admin/users', headers: who.headers }),
  ];
  for (const who of [admin, holder, plain]) await app.inject({ url: '/auth/me', headers: who.headers });

  counter.reset();
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    for (const request of [...requests(holder), ...requests(plain)]) statuses.push((await request()).statusCode);
  }
  t.same([...new Set(statuses)].sort(), [200, 403], 'allowed and refused requests both ran');
  t.same(counter.calls(), [], '30 requests, allowed and refused, cost no query');

  // An allowed admin request costs exactly what its handler asks of the database, nothing for the check.
  await listRoles(counter.database.db);
  const handlerCost = counter.calls().length;
  t.ok(handlerCost > 0, 'the counter sees the handler queries');
  counter.reset();
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ url: '/admin/roles', headers: admin.headers })).statusCode, 200);
  t.equal(counter.calls().length, 5 * handlerCost, 'five admin requests cost only their handlers');

  // The cache is what saves the queries: after a change the next check reads the database again.
  counter.reset();
  await app.gatehouse.access.changed(holder.userId);
  const afterChange = counter.calls().length;
  t.equal((await app.inject({ url: '/auth/me', headers: holder.headers })).statusCode, 200);
  t.ok(counter.calls().length > afterChange, 'a cold entry is read from the database');
});

eachDatabase('a refresh is one statement, cold cache or not, and leaves the cache warm for the new token', async (t, kind) => {
  const { raw, counter, app } = await countedHostApp(t, kind);
  const registered = await registerUser(app);
  await app.gatehouse.background.idle(); // the confirmation mail and the audit event
  await notificationsSettled(raw);
  const userId = claimsOf(registered.accessToken).sub;

  // As a client refreshing after 15 minutes finds it: its entry long expired.
  app.gatehouse.access.invalidateLocal(userId);
  counter.reset();
  const refreshed = await post(app, '/auth/refresh', { refreshToken: registered.refreshToken });
  t.equal(refreshed.statusCode, 200);
  t.same(counter.calls(), ['execute'], 'one statement rotates the token and reads the user');
  const { accessToken, user } = refreshed.json<{ accessToken: string; user: { id: string; roles: string[] } }>();
  t.equal(user.id, userId);
  t.same(user.roles, ['user']);

  const me = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  t.equal(me.statusCode, 200);
  t.same(counter.calls(), ['execute'], 'the new token is served from the cache the refresh filled');
});

eachDatabase('a login leaves the cache holding its new session and login fields: its token needs no query', async (t, kind) => {
  const { counter, app } = await countedHostApp(t, kind);
  const registered = await registerUser(app);
  const first = await app.inject({ url: '/auth/me', headers: bearer(registered.accessToken) });
  t.equal(first.json<{ loginCount: number }>().loginCount, 1, 'cached with one login');

  const loggedIn = await post(app, '/auth/login', { email: registered.email, password: registered.password });
  t.equal(loggedIn.statusCode, 200);
  await app.gatehouse.background.idle();
  counter.reset();
  const me = await app.inject({ url: '/auth/me', headers: bearer(loggedIn.json<{ accessToken: string }>().accessToken) });
  t.equal(me.statusCode, 200);
  t.equal(me.json<{ loginCount: number }>().loginCount, 2, 'the login fields are the new ones');
  t.same(counter.calls(), [], 'the new session was already in the cache');
});
