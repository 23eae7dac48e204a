import { eq, sql } from 'drizzle-orm';
import { apiKeys, auditEvents } from '../../../src/db/schema.js';
import { adminToken, send, userWithPermissions, userWithRoles, type Actor } from '../../helpers/admin.js';
import { bearerKey, createKey, withKey } from '../../helpers/api-keys.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { twoInstances } from '../../helpers/instances.js';
import { openTestDatabase } from '../../helpers/databases.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD } from '../../helpers/users.js';
import { startRedisServer } from '../../helpers/servers.js';
import { until } from '../../helpers/wait.js';

const KEY_FORMAT = /^gh_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$/;

eachDatabase('a key acts for its owner with the permissions it lists and the owner holds', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const owner = await userWithPermissions(app, ['users:read', 'roles:read']);

  const created = await send(app, owner, 'POST', '/auth/api-keys', { name: 'export', permissions: ['users:read'], expiresIn: 3600 });
  t.equal(created.statusCode, 201);
  const body = created.json();
  t.match(body.key, KEY_FORMAT, 'gh_<keyId>_<secret>');
  t.same(body.permissions, ['users:read']);
  t.ok(Date.parse(body.expiresAt) > Date.now() + 3500_000, 'expiresAt follows expiresIn');

  for (const headers of [withKey(body.key), bearerKey(body.key)]) {
    t.equal((await app.inject({ url: '/admin/users', headers })).statusCode, 200, `${Object.keys(headers)[0]}: a listed permission works`);
    assertProblem(t, await app.inject({ url: '/admin/roles', headers }), 403, 'permission_denied', 'a permission the owner holds but the key does not list');
  }
  const me = (await app.inject({ url: '/auth/me', headers: withKey(body.key) })).json();
  t.equal(me.id, owner.userId, '/auth/me names the owner');
  t.same(me.permissions, ['users:read'], 'and what the key may do');
  t.same(me.roles, [], 'a key holds no roles');

  const listed = await send(app, owner, 'GET', '/auth/api-keys');
  t.equal(listed.statusCode, 200);
  const items = listed.json().items;
  t.equal(items.length, 1);
  t.equal(items[0].id, body.id);
  t.equal(items[0].prefix, body.key.slice(0, 15));
  t.notOk(listed.body.includes(body.key.slice(16)), 'the list never shows the secret');
  t.notOk('secretHash' in items[0] || 'key' in items[0], 'nor its hash');

  const [row] = await app.gatehouse.db.select().from(apiKeys).where(eq(apiKeys.id, body.id));
  t.match(row!.secretHash, /^v1:[A-Za-z0-9_-]{43}$/, 'stored as v1: + HMAC-SHA256');
  t.notOk(row!.secretHash.includes(body.key.slice(16)), 'never the secret itself');
});

eachDatabase('a key is created only with permissions the owner holds, and only from their own session', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const owner = await userWithPermissions(app, ['users:read']);
  const refused = await send(app, owner, 'POST', '/auth/api-keys', { name: 'too much', permissions: ['users:read', 'users:delete'] });
  assertProblem(t, refused, 403, 'exceeds_own_permissions');
  const invalid = await send(app, owner, 'POST', '/auth/api-keys', { name: 'x', permissions: [] });
  assertProblem(t, invalid, 400, 'validation_failed', 'an empty permission list');
  assertProblem(t, await send(app, owner, 'POST', '/auth/api-keys', { name: 'x', permissions: ['users:read'], expiresIn: 5 }), 400, 'validation_failed', 'expiresIn under a minute');
  assertProblem(t, await send(app, null, 'POST', '/auth/api-keys', { name: 'x', permissions: ['users:read'] }), 401, 'token_missing');
});

eachDatabase('keys never reach key, password, email, MFA, session, fresh or aal2 routes', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const { key } = await createKey(app, admin, ['keys:manage', 'users:read']);
  const headers = withKey(key);
  const attempts: [string, 'GET' | 'POST' | 'DELETE', unknown?][] = [
    ['/auth/api-keys', 'POST', { name: 'child', permissions: ['users:read'] }],
    ['/auth/api-keys', 'GET'],
    ['/auth/password/change', 'POST', { currentPassword: PASSWORD, newPassword: 'another long passphrase' }],
    ['/auth/email/change', 'POST', { newEmail: 'new@example.com', password: PASSWORD }],
    ['/auth/mfa', 'GET'],
    ['/auth/mfa/totp/enroll', 'POST'],
    ['/auth/reauthenticate', 'POST', { password: PASSWORD }],
    ['/auth/sessions', 'GET'],
    ['/auth/logout-all', 'POST'],
    ['/admin/signing-keys', 'GET'],
  ];
  for (const [url, method, payload] of attempts) {
    const res = await app.inject({ method, url, headers, ...(payload ? { payload: payload as object } : {}) });
    assertProblem(t, res, 403, 'api_key_not_allowed', `${method} ${url}`);
  }
  t.equal((await app.inject({ url: '/admin/users', headers })).statusCode, 200, 'an ordinary permission route still works');
  t.equal((await app.inject({ url: '/auth/me', headers: admin.headers })).statusCode, 200, "the owner's session is untouched");
});

eachDatabase('every bad key answers the same 401 api_key_invalid', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const owner = await userWithPermissions(app, ['users:read']);
  const good = await createKey(app, owner, ['users:read']);
  const expiring = await createKey(app, owner, ['users:read'], { expiresIn: 3600 });
  const revoked = await createKey(app, owner, ['users:read']);
  // Expiry moved into the past in the database: no waiting on the clock.
  await app.gatehouse.db.update(apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiKeys.id, expiring.id));
  await app.gatehouse.access.changed(owner.userId);
  t.equal((await send(app, owner, 'DELETE', `/auth/api-keys/${revoked.id}`)).statusCode, 204);
  t.equal((await send(app, owner, 'DELETE', `/auth/api-keys/${revoked.id}`)).statusCode, 204, 'revoking twice is fine');

  const secret = good.key.slice(16);
  const wrongSecret = `${good.key.slice(0, 16)}${secret[0] === 'A' ? 'B' : 'A'}${secret.slice(1)}`;
  const cases: [string, Record<string, string>][] = [
    ['unknown keyId', withKey(`gh_${'a'.repeat(12)}_${secret}`)],
    ['wrong secret', withKey(wrongSecret)],
    ['wrong secret as Bearer', bearerKey(wrongSecret)],
    ['malformed', withKey('gh_short')],
    ['not a key at all', withKey('hello')],
    ['expired', withKey(expiring.key)],
    ['revoked', withKey(revoked.key)],
  ];
  const details = new Set<string>();
  for (const [label, headers] of cases) {
    // Twice: the first answer may come from the database, the second from the cache.
    for (const round of [1, 2]) {
      const res = await app.inject({ url: '/admin/users', headers });
      details.add(assertProblem(t, res, 401, 'api_key_invalid', `${label} (${round})`).detail);
    }
  }
  t.equal(details.size, 1, 'one answer for every case');
  t.equal((await app.inject({ url: '/admin/users', headers: withKey(good.key) })).statusCode, 200, 'the good key still works');
  // The good key was just proved (its check is now remembered): a wrong secret is still refused.
  assertProblem(t, await app.inject({ url: '/admin/users', headers: withKey(wrongSecret) }), 401, 'api_key_invalid', 'wrong secret after the good key was proved');
  t.equal((await app.inject({ url: '/admin/users', headers: withKey(good.key) })).statusCode, 200, 'and the good key again');
});

eachDatabase('a disabled or deleted owner disables the key', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const owner = await userWithPermissions(app, ['users:read']);
  const { key } = await createKey(app, owner, ['users:read']);
  t.equal((await app.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200);
  t.equal((await send(app, admin, 'PATCH', `/admin/users/${owner.userId}`, { active: false })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: withKey(key) }), 401, 'api_key_invalid', 'owner disabled');
  t.equal((await send(app, admin, 'PATCH', `/admin/users/${owner.userId}`, { active: true })).statusCode, 200);
  t.equal((await app.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200, 'reactivated: the key works again');
  t.equal((await send(app, admin, 'DELETE', `/admin/users/${owner.userId}`)).statusCode, 204);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: withKey(key) }), 401, 'api_key_invalid', 'owner deleted');
});

eachDatabase("a demoted owner's key, and a revoked key, are refused on another instance within a second", async (t, kind) => {
  const { a, b, admin } = await twoInstances(t, kind);
  const owner = await userWithPermissions(a, ['users:read', 'roles:read']);
  const demoted = await createKey(a, owner, ['users:read']);
  const other = await createKey(a, owner, ['roles:read']);
  t.equal((await b.inject({ url: '/admin/users', headers: withKey(demoted.key) })).statusCode, 200, 'B serves the key (and caches it)');
  t.equal((await b.inject({ url: '/admin/roles', headers: withKey(other.key) })).statusCode, 200);

  // The owner loses users:read through A: the role that granted it is taken away.
  t.equal((await a.inject({ method: 'PUT', url: `/admin/users/${owner.userId}/roles`, headers: admin, payload: { roles: ['user'] } })).statusCode, 200);
  const ms = await until(async () => (await b.inject({ url: '/admin/users', headers: withKey(demoted.key) })).statusCode === 403, 1000, 'B refusing the demoted key');
  t.pass(`B refused the demoted owner's key after ${ms} ms`);
  assertProblem(t, await b.inject({ url: '/admin/users', headers: withKey(demoted.key) }), 403, 'permission_denied');

  // A key revoked through A (by an admin) is refused by B.
  const third = await userWithPermissions(a, ['users:read']);
  const revoked = await createKey(a, third, ['users:read']);
  t.equal((await b.inject({ url: '/admin/users', headers: withKey(revoked.key) })).statusCode, 200);
  t.equal((await a.inject({ method: 'DELETE', url: `/admin/api-keys/${revoked.id}`, headers: admin })).statusCode, 204);
  const revokedMs = await until(async () => (await b.inject({ url: '/admin/users', headers: withKey(revoked.key) })).statusCode === 401, 1000, 'B refusing the revoked key');
  t.pass(`B refused the revoked key after ${revokedMs} ms`);
});

eachDatabase('each key has its own rate limit, RATE_LIMIT_API_KEY', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { RATE_LIMIT_API_KEY: '3/1m' } });
  const owner = await userWithPermissions(app, ['users:read']);
  const first = await createKey(app, owner, ['users:read']);
  const second = await createKey(app, owner, ['users:read']);
  for (let i = 1; i <= 3; i++) t.equal((await app.inject({ url: '/auth/me', headers: withKey(first.key) })).statusCode, 200, `request ${i}`);
  const limited = await app.inject({ url: '/admin/users', headers: withKey(first.key) });
  assertProblem(t, limited, 429, 'rate_limited', 'the fourth request, on another route');
  t.ok(Number(limited.headers['retry-after']) >= 1, 'with Retry-After');
  t.equal((await app.inject({ url: '/auth/me', headers: withKey(second.key) })).statusCode, 200, 'another key of the same owner is not limited');
  t.equal((await app.inject({ url: '/auth/me', headers: owner.headers })).statusCode, 200, "nor is the owner's session");
});

const ID_ENDINGS = 'abcdefgh';

eachDatabase('API keys not in memory are looked up at most RATE_LIMIT_API_KEY_LOOKUPS times per client IP', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { RATE_LIMIT_API_KEY_LOOKUPS: '3/1m' } });
  const owner = await userWithPermissions(app, ['users:read']);
  const { key } = await createKey(app, owner, ['users:read']);
  t.equal((await app.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200, 'a real key: looked up once (the first of three), then kept in memory');
  t.equal((await app.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200, 'and not counted again');
  // Each key not in memory is fetched with apiKeys.get, which reads the database.
  const { apiKeys: keys } = app.gatehouse;
  const get = keys.get.bind(keys);
  let queries = 0;
  keys.get = (keyId) => (queries++, get(keyId));
  t.teardown(() => delete (keys as { get?: unknown }).get);
  // Well-formed ids (base32) that no key has.
  const madeUp = (i: number) => withKey(`gh_${'z'.repeat(11)}${ID_ENDINGS[i]}_${'b'.repeat(43)}`);
  for (let i = 1; i <= 2; i++) assertProblem(t, await app.inject({ url: '/auth/me', headers: madeUp(i) }), 401, 'api_key_invalid', `made-up key ${i}`);
  t.equal(queries, 2, 'each looked up in the database');
  const before = queries;
  const limited = assertProblem(t, await app.inject({ url: '/auth/me', headers: madeUp(3) }), 429, 'rate_limited', 'the fourth lookup from this address');
  t.match(limited.detail, /unknown API keys from this address/);
  t.equal(queries, before, 'refused without a query');
  t.equal((await app.inject({ url: '/admin/users', headers: withKey(key) })).statusCode, 200, 'the key in memory still works from the same address');
});

eachDatabase('lastUsedAt and lastUsedIp are written on first use, and not again within a minute', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const owner = await userWithPermissions(app, ['users:read']);
  const { id, key } = await createKey(app, owner, ['users:read']);
  const lastUsed = async () => (await app.gatehouse.db.select().from(apiKeys).where(eq(apiKeys.id, id)))[0]!.lastUsedAt;
  t.equal(await lastUsed(), null, 'never used yet');
  await app.inject({ url: '/auth/me', headers: withKey(key) });
  await app.gatehouse.background.idle();
  const first = await lastUsed();
  t.ok(first instanceof Date, 'written after the first use');
  for (let i = 0; i < 5; i++) await app.inject({ url: '/admin/users', headers: withKey(key) });
  await app.gatehouse.background.idle();
  t.same(await lastUsed(), first, 'not rewritten by the next requests');
  const listed = (await send(app, owner, 'GET', '/auth/api-keys')).json().items[0];
  t.equal(listed.lastUsedAt, first!.toISOString());
  t.equal(listed.lastUsedIp, '127.0.0.1');
});

eachDatabase('admins list and revoke keys; each creation and revocation is audited', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const owner = await userWithPermissions(app, ['users:read']);
  const stranger: Actor = await userWithRoles(app, ['user']);
  const created = await createKey(app, owner, ['users:read'], { name: 'ci' });
  await createKey(app, admin, ['users:read'], { name: 'admin script' });

  const mine = await send(app, admin, 'GET', `/admin/api-keys?user=${owner.userId}`);
  t.equal(mine.statusCode, 200);
  t.same(mine.json().items.map((k: { name: string; userId: string }) => [k.name, k.userId]), [['ci', owner.userId]]);
  t.equal((await send(app, admin, 'GET', '/admin/api-keys')).json().items.length, 2, 'every key without ?user');
  assertProblem(t, await send(app, stranger, 'GET', '/admin/api-keys'), 403, 'permission_denied');
  assertProblem(t, await send(app, stranger, 'DELETE', `/admin/api-keys/${created.id}`), 403, 'permission_denied');
  assertProblem(t, await send(app, stranger, 'DELETE', `/auth/api-keys/${created.id}`), 404, 'not_found', "someone else's key");
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/api-keys/00000000-0000-4000-8000-000000000000'), 404, 'not_found');

  t.equal((await send(app, admin, 'DELETE', `/admin/api-keys/${created.id}`)).statusCode, 204);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: withKey(created.key) }), 401, 'api_key_invalid');
  t.equal((await send(app, owner, 'GET', '/auth/api-keys')).json().items.length, 0, 'a revoked key leaves the list');

  await app.gatehouse.background.idle();
  await until(async () => {
    const rows = await app.gatehouse.db.select().from(auditEvents).where(sql`${auditEvents.type} in ('api_key_created', 'api_key_revoked')`);
    return rows.length === 3;
  }, 5000, 'the audit events');
  const revokedEvent = (await app.gatehouse.db.select().from(auditEvents).where(eq(auditEvents.type, 'api_key_revoked')))[0]!;
  t.equal(revokedEvent.userId, owner.userId, 'the owner is the subject');
  t.equal(revokedEvent.actorId, admin.userId, 'the admin the actor');
});

eachDatabase('keys never appear in log lines', async (t, kind) => {
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines });
  const owner = await userWithPermissions(app, ['users:read']);
  const { key } = await createKey(app, owner, ['users:read']);
  const secret = key.slice(16);
  await app.inject({ url: '/admin/users', headers: withKey(key) });
  await app.inject({ url: '/admin/users', headers: bearerKey(key) });
  await app.inject({ url: '/admin/roles', headers: withKey(key) });
  await app.inject({ url: '/auth/api-keys', method: 'POST', headers: withKey(key), payload: { name: 'x', permissions: ['users:read'] } });
  await app.inject({ url: '/admin/users', headers: withKey(`${key.slice(0, 16)}${'A'.repeat(43)}`) });
  await app.gatehouse.background.idle();
  t.ok(logLines.length > 5, `requests were logged (${logLines.length} lines)`);
  t.notOk(logLines.some((line) => line.includes(secret)), 'no line holds the secret');
  t.notOk(logLines.some((line) => line.includes('A'.repeat(43))), 'nor a wrong one');
});

eachDatabase("with REDIS_URL, a key's budget is shared by every instance", async (t, kind) => {
  const redis = await startRedisServer(t);
  const shared = await openTestDatabase(kind);
  const env = { REDIS_URL: redis.url, RATE_LIMIT_API_KEY: '3/1m' };
  const a = (await buildTestApp(t, kind, { database: shared, env })).app;
  const b = (await buildTestApp(t, kind, { database: shared, env })).app;
  t.teardown(async () => {
    await a.close();
    await b.close();
    await shared.drop();
  });
  const owner = await userWithPermissions(a, ['users:read']);
  const { key } = await createKey(a, owner, ['users:read']);
  t.equal((await a.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200);
  t.equal((await b.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200);
  t.equal((await a.inject({ url: '/auth/me', headers: withKey(key) })).statusCode, 200);
  assertProblem(t, await b.inject({ url: '/auth/me', headers: withKey(key) }), 429, 'rate_limited', 'the fourth request, on the other instance');
});
