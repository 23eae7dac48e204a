import { eq } from 'drizzle-orm';
import { auditEvents, recoveryCodes, totpFactors, users } from '../../../src/db/schema.js';
import { issueUserToken } from '../../../src/domain/user-tokens.js';
import { adminToken, roleGranting, send, userWithRoles } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf } from '../../helpers/jwt.js';
import { enrolTotp, mfaTokenFor } from '../../helpers/mfa.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, login, post, registerUser } from '../../helpers/users.js';

const aalOf = (token: string) => (claimsOf(token) as { aal?: string }).aal;

eachDatabase('removing the authenticator needs aal2 and a fresh session; it takes the recovery codes along and drops every session to aal1', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const other = await login(app, ann.email);
  const { accessToken, recoveryCodes: codes } = await enrolTotp(app, ann.accessToken);
  const otherRaised = await post(app, '/auth/mfa/verify', { mfaToken: await mfaTokenFor(app, ann.email, PASSWORD), method: 'recovery_code', code: codes[0] });
  const third = json(otherRaised);
  t.equal(aalOf(third.accessToken), 'aal2');

  assertProblem(t, await app.inject({ method: 'DELETE', url: '/auth/mfa/totp', headers: bearer(other.accessToken) }), 403, 'insufficient_aal', 'an aal1 session');
  const removed = await app.inject({ method: 'DELETE', url: '/auth/mfa/totp', headers: bearer(accessToken) });
  t.equal(removed.statusCode, 204);
  t.same(await database.db.select().from(totpFactors).where(eq(totpFactors.userId, ann.user.id)), []);
  t.same(await database.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, ann.user.id)), [], 'the recovery codes are gone');
  t.equal(aalOf(json(await post(app, '/auth/refresh', { refreshToken: third.refreshToken })).accessToken), 'aal1', "another aal2 session's next refresh is aal1");
  t.match((await app.inject({ url: '/auth/mfa', headers: bearer(accessToken) })).json(), { factors: [], recoveryCodesLeft: 0 });
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(other.accessToken) })).json().mfaEnrolled, false);
  t.ok(json(await post(app, '/auth/login', { email: ann.email, password: PASSWORD })).accessToken, 'logins take the password alone again');
  t.equal((await app.inject({ method: 'DELETE', url: '/auth/mfa/totp', headers: bearer(accessToken) })).statusCode, 204, 'removing nothing is no error');
  assertProblem(t, await post(app, '/auth/mfa/recovery-codes', undefined, bearer(accessToken)), 409, 'mfa_not_enrolled', 'no recovery codes without an authenticator (the token still says aal2)');
  assertProblem(t, await post(app, '/auth/reauthenticate', { method: 'totp', code: '123456' }, bearer(other.accessToken)), 401, 'mfa_code_invalid', 'no code without an authenticator');

  await app.gatehouse.background.idle();
  const types = (await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id))).map((e) => e.type);
  t.equal(types.filter((type) => type === 'mfa_disabled').length, 1);
  t.equal(types.filter((type) => type === 'recovery_code_used').length, 1);
});

eachDatabase('new recovery codes replace the old ones; they need aal2, a fresh session and an authenticator', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  assertProblem(t, await post(app, '/auth/mfa/recovery-codes', undefined, bearer(ann.accessToken)), 403, 'insufficient_aal', 'without an authenticator');
  const { accessToken, recoveryCodes: old } = await enrolTotp(app, ann.accessToken);
  const res = await post(app, '/auth/mfa/recovery-codes', undefined, bearer(accessToken));
  t.equal(res.statusCode, 200);
  const fresh = json<{ recoveryCodes: string[] }>(res).recoveryCodes;
  t.equal(fresh.length, 10);
  t.notOk(fresh.some((code) => old.includes(code)));
  const mfaToken = await mfaTokenFor(app, ann.email, PASSWORD);
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken, method: 'recovery_code', code: old[1] }), 401, 'mfa_code_invalid', 'an old code');
  t.equal((await post(app, '/auth/mfa/verify', { mfaToken, method: 'recovery_code', code: fresh[1] })).statusCode, 200, 'a new one');
});

eachDatabase('a password reset does not bypass the second factor', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  await enrolTotp(app, ann.accessToken);
  const token = await issueUserToken(app.gatehouse.db, { userId: ann.user.id, purpose: 'reset_password', ttlSeconds: 600 });
  t.equal((await post(app, '/auth/password/reset', { token, password: 'a brand new passphrase' })).statusCode, 204);
  const res = await post(app, '/auth/login', { email: ann.email, password: 'a brand new passphrase' });
  t.equal(res.statusCode, 200);
  t.match(res.json(), { mfaRequired: true }, 'after the reset the login still takes its second step');
  t.notOk(res.json().accessToken);
});

eachDatabase('an admin with users:mfa resets a lost authenticator: factor and codes gone, sessions revoked, audited', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const ann = await registerUser(app);
  const { accessToken } = await enrolTotp(app, ann.accessToken);
  const url = `/admin/users/${ann.user.id}/mfa`;

  const reader = await userWithRoles(app, ['user', await roleGranting(app, ['users:read'])]);
  assertProblem(t, await send(app, reader, 'DELETE', url), 403, 'permission_denied', 'without users:mfa');
  const helpdesk = await userWithRoles(app, ['user', await roleGranting(app, ['users:mfa'])]);
  const adminUrl = `/admin/users/${admin.userId}/mfa`;
  assertProblem(t, await send(app, helpdesk, 'DELETE', adminUrl), 403, 'exceeds_own_permissions', "on a user holding more than the caller");
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/users/00000000-0000-4000-8000-000000000000/mfa'), 404, 'not_found');

  const res = await send(app, helpdesk, 'DELETE', url);
  t.equal(res.statusCode, 204, 'a helpdesk role holding users:mfa and all of the user’s permissions');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(accessToken) }), 401, 'session_revoked', "the user's sessions are revoked");
  t.same(await database.db.select().from(totpFactors).where(eq(totpFactors.userId, ann.user.id)), []);
  t.same(await database.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, ann.user.id)), []);
  const again = json(await post(app, '/auth/login', { email: ann.email, password: PASSWORD }));
  t.ok(again.accessToken, 'the next login takes the password alone');
  t.equal(again.user.mfaEnrolled, false);
  t.equal((await send(app, admin, 'GET', `/admin/users/${ann.user.id}`)).json().mfaEnrolled, false, 'admins see mfaEnrolled');

  await app.gatehouse.background.idle();
  const [event] = await database.db.select().from(auditEvents).where(eq(auditEvents.type, 'mfa_reset'));
  t.match(event, { actorId: helpdesk.userId, userId: ann.user.id, detail: { hadFactor: true, sessions: 1 } });
  t.ok((await database.db.select().from(auditEvents).where(eq(auditEvents.type, 'grant_refused'))).length >= 1, 'the refusal is audited');
});

eachDatabase('admins hold users:mfa, shown in the permission list', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const me = (await app.inject({ url: '/auth/me', headers: admin.headers })).json() as { permissions: string[] };
  t.ok(me.permissions.includes('users:mfa'));
});

eachDatabase('an account disabled between the password and the code gets no session', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { recoveryCodes: codes } = await enrolTotp(app, ann.accessToken);
  const mfaToken = await mfaTokenFor(app, ann.email, PASSWORD);
  await database.db.update(users).set({ active: false }).where(eq(users.id, ann.user.id));
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken, method: 'recovery_code', code: codes[0] }), 403, 'account_disabled');
});
