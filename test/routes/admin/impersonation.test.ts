import { eq } from 'drizzle-orm';
import { sessions } from '../../../src/db/schema.js';
import { adminToken, roleGranting, send, userWithPermissions, userWithRoles, type Actor } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { twoInstances } from '../../helpers/instances.js';
import { claimsOf } from '../../helpers/jwt.js';
import { enrolTotp } from '../../helpers/mfa.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, login, registerUser } from '../../helpers/users.js';
import { until } from '../../helpers/wait.js';
import type { FastifyInstance } from 'fastify';

const REASON = 'Ticket #4711: cannot see the invoices';

function impersonate(app: FastifyInstance, admin: Actor | { headers: Record<string, string> }, userId: string, reason = REASON) {
  return app.inject({ method: 'POST', url: `/admin/users/${userId}/impersonate`, headers: admin.headers, payload: { reason } });
}

async function impersonationToken(app: FastifyInstance, admin: Actor, userId: string): Promise<string> {
  const res = await impersonate(app, admin, userId);
  if (res.statusCode !== 200) throw new Error(`impersonate failed: ${res.statusCode} ${res.body}`);
  return res.json<{ accessToken: string }>().accessToken;
}

interface AuditRow {
  type: string;
  actorId: string | null;
  userId: string | null;
  detail: Record<string, unknown>;
}

async function auditOf(app: FastifyInstance, admin: Actor, type: string): Promise<AuditRow[]> {
  await app.gatehouse.background.idle();
  const res = await app.inject({ url: '/admin/audit', query: { type, limit: '100' }, headers: admin.headers });
  return res.json<{ items: AuditRow[] }>().items;
}

eachDatabase('an admin acts as a user for IMPERSONATION_TTL, with an act claim and no refresh token', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { IMPERSONATION_TTL: '5m' } });
  const admin = await adminToken(app);
  const user = await registerUser(app);

  const res = await impersonate(app, admin, user.user.id);
  t.equal(res.statusCode, 200);
  const body = res.json<{ accessToken: string; expiresIn: number }>();
  t.same(Object.keys(body).sort(), ['accessToken', 'expiresIn'], 'a token and its lifetime: no refresh token');
  t.equal(body.expiresIn, 300);
  const claims = claimsOf(body.accessToken) as ReturnType<typeof claimsOf> & { act?: { sub: string }; aal?: string };
  t.equal(claims.sub, user.user.id, 'the token is the user');
  t.same(claims.act, { sub: admin.userId }, 'acted by the admin');
  t.equal(claims.exp - claims.iat, 300, 'IMPERSONATION_TTL, not ACCESS_TOKEN_TTL');
  const ordinary = claimsOf(user.accessToken);
  t.equal(ordinary.exp - ordinary.iat, 900, 'ordinary tokens keep ACCESS_TOKEN_TTL');
  t.notOk('act' in ordinary, 'and carry no act claim');

  const [session] = await app.gatehouse.db.select().from(sessions).where(eq(sessions.id, claims.sid));
  t.equal(session!.impersonatorId, admin.userId);
  t.ok(Math.abs(session!.expiresAt.getTime() - claims.exp * 1000) < 2000, 'the session ends with its token');

  const me = await app.inject({ url: '/auth/me', headers: bearer(body.accessToken) });
  t.equal(me.statusCode, 200);
  t.equal(me.json<{ id: string }>().id, user.user.id, 'sees what the user sees');
  assertProblem(t, await app.inject({ url: '/admin/users', headers: bearer(body.accessToken) }), 403, 'permission_denied', "with the user's rights, not the admin's");
  const renamed = await app.inject({ method: 'PATCH', url: '/auth/me', headers: bearer(body.accessToken), payload: { name: 'Fixed by support' } });
  t.equal(renamed.statusCode, 200, 'ordinary routes work');
});

eachDatabase('an impersonation token stops working when it expires, and its session leaves the list', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { IMPERSONATION_TTL: '1s', JWT_CLOCK_SKEW: '0s' } });
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const token = await impersonationToken(app, admin, user.user.id);
  await until(async () => (await app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode === 401, 10_000, 'the token expires');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(token) }), 401, 'token_expired');
  const listed = await app.inject({ url: '/auth/sessions', headers: bearer(user.accessToken) });
  t.equal(listed.json<{ items: unknown[] }>().items.length, 1, "only the user's own session is left");
});

eachDatabase('while impersonating, fresh, aal2 and credential routes and nested impersonation answer impersonation_restricted', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  // Another admin: the target holds users:impersonate, so only the restriction stands in the way.
  const other = await adminToken(app);
  const third = await registerUser(app);
  const token = await impersonationToken(app, admin, other.userId);
  const headers = bearer(token);
  const attempts: [string, 'GET' | 'POST' | 'DELETE', unknown?][] = [
    [`/admin/users/${third.user.id}/impersonate`, 'POST', { reason: 'nested' }],
    ['/auth/api-keys', 'POST', { name: 'stolen', permissions: ['users:read'] }],
    ['/auth/api-keys', 'GET'],
    ['/auth/email/change', 'POST', { newEmail: 'new@example.com', password: PASSWORD }],
    ['/auth/password/change', 'POST', { currentPassword: PASSWORD, newPassword: 'another long passphrase' }],
    ['/auth/mfa/totp/enroll', 'POST'],
    ['/auth/mfa/recovery-codes', 'POST'],
    ['/auth/reauthenticate', 'POST', { password: PASSWORD }],
    ['/auth/sessions', 'GET'],
    ['/auth/logout-all', 'POST'],
    ['/admin/signing-keys', 'GET'],
  ];
  for (const [url, method, payload] of attempts) {
    const res = await app.inject({ method, url, headers, ...(payload ? { payload: payload as object } : {}) });
    assertProblem(t, res, 403, 'impersonation_restricted', `${method} ${url}`);
  }
  t.equal((await app.inject({ url: '/admin/users', headers })).statusCode, 200, "an ordinary route with the user's permission works");
  t.equal((await login(app, other.email)).user.id, other.userId, "the user's password is unchanged");
});

eachDatabase('an admin cannot impersonate a user who holds permissions they lack', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const support = await userWithPermissions(app, ['users:impersonate', 'users:read', 'read']);
  const peer = await userWithPermissions(app, ['users:read']);
  const manager = await userWithPermissions(app, ['users:read', 'users:delete']);

  t.equal((await impersonate(app, support, peer.userId)).statusCode, 200, 'a user with no more than the support user');
  const refused = assertProblem(t, await impersonate(app, support, manager.userId), 403, 'exceeds_own_permissions');
  t.match(refused.detail, /users:delete/, 'names what is missing');
  assertProblem(t, await impersonate(app, support, admin.userId), 403, 'exceeds_own_permissions', 'nor an admin');
  assertProblem(t, await impersonate(app, peer, manager.userId), 403, 'permission_denied', 'without users:impersonate');
  assertProblem(t, await send(app, null, 'POST', `/admin/users/${manager.userId}/impersonate`, { reason: 'x' }), 401, 'token_missing');
  assertProblem(t, await impersonate(app, support, '00000000-0000-4000-8000-000000000000'), 404, 'not_found');
  assertProblem(t, await impersonate(app, support, peer.userId, ''), 400, 'validation_failed', 'a reason is required');
  assertProblem(t, await send(app, support, 'POST', `/admin/users/${peer.userId}/impersonate`, {}), 400, 'validation_failed', 'a missing reason');

  // A role granting no permission (a marker for role rules) is not the support user's to act with.
  const staff = await userWithRoles(app, ['user', await roleGranting(app, [])]);
  const marker = assertProblem(t, await impersonate(app, support, staff.userId), 403, 'exceeds_own_permissions', 'a holder of a marker role');
  t.match(marker.detail, /the role grants\./, 'names the role');
  t.equal((await impersonate(app, admin, staff.userId)).statusCode, 200, 'an admin holds every role');

  t.equal((await send(app, admin, 'PATCH', `/admin/users/${peer.userId}`, { active: false })).statusCode, 200);
  assertProblem(t, await impersonate(app, support, peer.userId), 403, 'account_disabled', 'a disabled user');

  const refusals = await auditOf(app, admin, 'grant_refused');
  t.ok(refusals.some((e) => e.actorId === support.userId && e.userId === manager.userId), 'the refusal is audited');
});

eachDatabase('impersonating needs a recent factor, and the second one when the admin has it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const { sid } = claimsOf(admin.accessToken);
  const stale = app.signAccessToken({ sub: admin.userId, sid, auth_time: Math.floor(Date.now() / 1000) - 3600, amr: ['pwd'], aal: 'aal1' });
  assertProblem(t, await impersonate(app, { headers: bearer(stale) }, user.user.id), 403, 'reauthentication_required');

  const enrolled = await enrolTotp(app, admin.accessToken);
  const aal1 = app.signAccessToken({ sub: admin.userId, sid, auth_time: Math.floor(Date.now() / 1000), amr: ['pwd'], aal: 'aal1' });
  assertProblem(t, await impersonate(app, { headers: bearer(aal1) }, user.user.id), 403, 'insufficient_aal', 'an admin with a factor must have proved it');
  t.equal((await impersonate(app, { headers: bearer(enrolled.accessToken) }, user.user.id)).statusCode, 200, 'at aal2');
});

eachDatabase('the user sees the impersonation among their sessions, and a logout with its token ends it; every step is audited', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const token = await impersonationToken(app, admin, user.user.id);
  const { sid } = claimsOf(token);

  const listed = await app.inject({ url: '/auth/sessions', headers: bearer(user.accessToken) });
  t.equal(listed.statusCode, 200);
  const items = listed.json<{ items: { id: string; current: boolean; impersonation: { adminId: string; reason: string; expiresAt: string } | null }[] }>().items;
  t.equal(items.length, 2);
  const marked = items.find((s) => s.id === sid)!;
  t.match(marked.impersonation, { adminId: admin.userId, reason: REASON });
  t.ok(Date.parse(marked.impersonation!.expiresAt) > Date.now(), 'with its end');
  t.equal(items.find((s) => s.current)!.impersonation, null, "the user's own session is not marked");

  t.equal((await app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode, 200);
  assertProblem(t, await app.inject({ method: 'POST', url: '/auth/api-keys', headers: bearer(token), payload: { name: 'x', permissions: ['read'] } }), 403, 'impersonation_restricted');

  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(token) })).statusCode, 204);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(token) }), 401, 'session_revoked', 'ended by the logout');
  const after = await app.inject({ url: '/auth/sessions', headers: bearer(user.accessToken) });
  t.same(after.json<{ items: { id: string }[] }>().items.map((s) => s.id), [claimsOf(user.accessToken).sid], 'gone from the list');

  const [started] = await auditOf(app, admin, 'impersonation_started');
  t.match(started, { actorId: admin.userId, userId: user.user.id, detail: { adminId: admin.userId, reason: REASON, sessionId: sid } });
  const requests = (await auditOf(app, admin, 'impersonated_request')).filter((e) => e.detail.sessionId === sid).reverse();
  t.same(
    requests.map((e) => [e.actorId, e.userId, e.detail.method, e.detail.path, e.detail.status]),
    [
      [admin.userId, user.user.id, 'GET', '/auth/me', 200],
      [admin.userId, user.user.id, 'POST', '/auth/api-keys', 403],
    ],
    'every request made with the token, refused ones too, with both ids',
  );
  const logout = (await auditOf(app, admin, 'logout')).find((e) => e.detail.sessionId === sid);
  t.match(logout, { actorId: admin.userId, userId: user.user.id, detail: { adminId: admin.userId } }, 'the logout names the admin');
});

eachDatabase('disabling the user ends an impersonation of them', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const token = await impersonationToken(app, admin, user.user.id);
  t.equal((await send(app, admin, 'PATCH', `/admin/users/${user.user.id}`, { active: false })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(token) }), 401, 'session_revoked');
});

eachDatabase('an impersonation ends on the next request once its admin could no longer start it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const supportRole = await roleGranting(app, ['users:impersonate', 'users:read', 'read']);
  const support = await userWithRoles(app, ['user', supportRole]);
  const demoted = await registerUser(app);
  const promoted = await userWithPermissions(app, ['users:read']);
  const disabled = await registerUser(app);

  const first = await impersonationToken(app, support, demoted.user.id);
  const second = await impersonationToken(app, support, promoted.userId);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(first) })).statusCode, 200, 'cached');
  // The user gains a permission the admin lacks: the admin may no longer see as them.
  const deleter = await roleGranting(app, ['users:delete']);
  t.equal((await send(app, admin, 'PUT', `/admin/users/${promoted.userId}/roles`, { roles: ['user', deleter] })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(second) }), 401, 'session_revoked', 'the user now holds more than the admin');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(first) })).statusCode, 200, 'the other impersonation goes on');

  // The admin loses users:impersonate.
  t.equal((await send(app, admin, 'PUT', `/admin/users/${support.userId}/roles`, { roles: ['user'] })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(first) }), 401, 'session_revoked', 'the admin was demoted');

  // Another admin is disabled.
  const other = await adminToken(app);
  const third = await impersonationToken(app, other, disabled.user.id);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(third) })).statusCode, 200);
  t.equal((await send(app, admin, 'PATCH', `/admin/users/${other.userId}`, { active: false })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(third) }), 401, 'session_revoked', 'the admin was disabled');
});

eachDatabase("a demoted admin's impersonation, and one logged out, are refused on another instance within a second", async (t, kind) => {
  const { a, b } = await twoInstances(t, kind);
  const admin = await adminToken(a);
  const support = await userWithRoles(a, ['user', await roleGranting(a, ['users:impersonate', 'read'])]);
  const user = await registerUser(a);
  const token = await impersonationToken(a, support, user.user.id);
  t.equal((await b.inject({ url: '/auth/me', headers: bearer(token) })).statusCode, 200, 'B serves it (and caches both users)');
  t.equal((await send(a, admin, 'PUT', `/admin/users/${support.userId}/roles`, { roles: ['user'] })).statusCode, 200);
  const ms = await until(async () => (await b.inject({ url: '/auth/me', headers: bearer(token) })).statusCode === 401, 1000, 'B refusing the demoted admin');
  t.pass(`B refused the demoted admin's impersonation after ${ms} ms`);

  const other = await impersonationToken(a, admin, user.user.id);
  t.equal((await b.inject({ url: '/auth/me', headers: bearer(other) })).statusCode, 200);
  t.equal((await a.inject({ method: 'POST', url: '/auth/logout', headers: bearer(other) })).statusCode, 204);
  const loggedOutMs = await until(async () => (await b.inject({ url: '/auth/me', headers: bearer(other) })).statusCode === 401, 1000, 'B refusing the ended impersonation');
  t.pass(`B refused the logged-out impersonation after ${loggedOutMs} ms`);
});

eachDatabase('a role added to the user ends the impersonations of them: the admin behind one may lack it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const support = await userWithPermissions(app, ['users:impersonate', 'users:read', 'read']);
  const marker = await roleGranting(app, []);
  const user = await userWithRoles(app, ['user', marker]);
  const token = await impersonationToken(app, admin, user.userId);
  const supportToken = await impersonationToken(app, support, (await userWithPermissions(app, ['read'])).userId);

  // Taking a role away leaves the user with less than the admin: the impersonation goes on.
  t.equal((await send(app, admin, 'PUT', `/admin/users/${user.userId}/roles`, { roles: ['user'] })).statusCode, 200);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode, 200, 'still impersonating after a role was removed');

  // The marker role back: an admin who lacked it could now pass its role rules as the user.
  t.equal((await send(app, admin, 'PUT', `/admin/users/${user.userId}/roles`, { roles: ['user', marker] })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(token) }), 401, 'session_revoked', 'the impersonation ended');
  t.equal((await app.inject({ url: '/auth/me', headers: user.headers })).statusCode, 200, "the user's own session goes on");
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(supportToken) })).statusCode, 200, 'impersonations of other users go on');
  const [assigned] = (await auditOf(app, admin, 'role_assigned')).filter((e) => e.userId === user.userId && e.detail.role === marker).slice(0, 1);
  t.equal(assigned?.detail.impersonationsEnded, 1, 'the audit entry says one impersonation ended');
  t.equal((await impersonate(app, admin, user.userId)).statusCode, 200, 'an admin may start again');
});

eachDatabase("a role that stops granting permissions ends the impersonations of its holders: it is now a marker the admin may lack", async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const support = await userWithPermissions(app, ['users:impersonate', 'users:read', 'read', 'write']);
  const role = await roleGranting(app, ['write']);
  const holder = await userWithRoles(app, ['user', role]);
  const bystander = await userWithPermissions(app, ['read']);
  const token = await impersonationToken(app, support, holder.userId);
  const other = await impersonationToken(app, support, bystander.userId);

  // Fewer permissions, not none: the support admin still holds all the role grants.
  t.equal((await send(app, admin, 'PUT', `/admin/roles/${role}/permissions`, { permissions: ['write', 'read'] })).statusCode, 200);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode, 200, 'still impersonating after the role changed');

  t.equal((await send(app, admin, 'PUT', `/admin/roles/${role}/permissions`, { permissions: [] })).statusCode, 200);
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(token) }), 401, 'session_revoked', 'the impersonation of a holder ended');
  t.equal((await app.inject({ url: '/auth/me', headers: holder.headers })).statusCode, 200, "the holder's own session goes on");
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(other) })).statusCode, 200, 'impersonations of others go on');
  const [changed] = (await auditOf(app, admin, 'role_permissions_changed')).filter((e) => e.detail.role === role && (e.detail.permissions as string[]).length === 0);
  t.equal(changed?.detail.impersonationsEnded, 1, 'the audit entry says one impersonation ended');
  assertProblem(t, await impersonate(app, support, holder.userId), 403, 'exceeds_own_permissions', 'the support admin, lacking the marker, may not start again');
});
