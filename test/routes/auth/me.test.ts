import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import tap from 'tap';
import { sessions } from '../../../src/db/schema.js';
import { loadAuthorizationState } from '../../../src/domain/users.js';
import type { UserView } from '../../../src/schemas/user.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { assertBearerChallenge, assertProblem } from '../../helpers/problems.js';
import { bearer, json, login, registerUser } from '../../helpers/users.js';

// An access token is waited out in real time (its exp is in whole seconds): the tests run two at
// a time, so that wait overlaps the others.
tap.jobs = 2;

eachDatabase('me returns the calling user with roles, permissions and login history', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const registered = await registerUser(app, { name: 'Ann Lee' });
  const { accessToken } = await login(app, registered.email);
  const res = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  t.equal(res.statusCode, 200);
  const me = json<UserView>(res);
  for (const field of ['id', 'email', 'name', 'roles', 'permissions', 'createdAt', 'lastLoginAt', 'loginCount']) {
    t.ok(field in me, `has ${field}`);
  }
  for (const secret of ['passwordHash', 'password_hash', 'password', 'active']) {
    t.notOk(secret in me, `has no ${secret}`);
  }
  t.equal(me.id, registered.user.id);
  t.equal(me.id, claimsOf(accessToken).sub, 'the user the token names');
  t.equal(me.email, registered.email);
  t.equal(me.name, 'Ann Lee');
  t.same(me.roles, ['user']);
  t.same(me.permissions, ['read']);
  t.equal(me.createdAt, registered.user.createdAt);
  t.equal(me.loginCount, 2, 'registration and one login');
  t.ok(me.lastLoginAt && me.lastLoginAt >= registered.user.lastLoginAt!, 'the latest login');
  t.notMatch(res.body, /\$2[aby]\$/, 'no password hash');
});

eachDatabase('me without a token answers 401 token_missing with a bare Bearer challenge', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const res = await app.inject({ url: '/auth/me' });
  assertProblem(t, res, 401, 'token_missing');
  t.equal(res.headers['www-authenticate'], 'Bearer');
});

eachDatabase('me with a malformed Authorization header answers 401 token_invalid', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken } = await registerUser(app);
  const cases: [string, string][] = [
    ['Basic credentials', 'Basic YWxhZGRpbjpvcGVuc2VzYW1l'],
    ['a bare token', accessToken],
    ['Bearer without a token', 'Bearer'],
    ['another scheme', `Token ${accessToken}`],
    ['two tokens', `Bearer ${accessToken} ${accessToken}`],
    ['a token with odd characters', 'Bearer a!b#c'],
    ['not a JWT', 'Bearer abc.def.ghi'],
  ];
  for (const [label, authorization] of cases) {
    const res = await app.inject({ url: '/auth/me', headers: { authorization } });
    assertProblem(t, res, 401, 'token_invalid', label);
    assertBearerChallenge(t, res, label);
    t.match(res.headers['www-authenticate'], /error="invalid_token"/, `${label}: the challenge says why`);
  }
});

eachDatabase('me refuses forged and tampered tokens with 401 token_invalid', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken } = await registerUser(app);
  const other = await registerUser(app);
  const session = claimsOf(accessToken);
  // The control: built the same way with the right secret and claims, the token is accepted.
  const control = await app.inject({ url: '/auth/me', headers: bearer(forgeToken(validClaims(session))) });
  t.equal(control.statusCode, 200, 'a correctly built token is accepted');

  const [header, payload, signature] = accessToken.split('.') as [string, string, string];
  const otherPayload = other.accessToken.split('.')[1]!;
  const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
  const { sid: _sid, ...withoutSid } = validClaims(session);
  const cases: [string, string][] = [
    ['tampered payload (another user, original signature)', `${header}.${otherPayload}.${signature}`],
    ['tampered signature', `${header}.${payload}.${flipped}`],
    ['no signature', `${header}.${payload}.`],
    ['signed with another secret', forgeToken(validClaims(session), { secret: 'some-other-secret-that-is-long-enough-012' })],
    ['alg none', forgeToken(validClaims(session), { alg: 'none' })],
    ['HS512 with the right secret', forgeToken(validClaims(session), { alg: 'HS512' })],
    ['wrong issuer', forgeToken(validClaims(session, { iss: 'evil' }))],
    ['wrong audience', forgeToken(validClaims(session, { aud: 'evil' }))],
    ['no issuer', forgeToken(validClaims(session, { iss: undefined }))],
    ['no audience', forgeToken(validClaims(session, { aud: undefined }))],
    ['no expiry', forgeToken(validClaims(session, { exp: undefined }))],
    ['no session id', forgeToken(withoutSid)],
    ['not yet valid', forgeToken(validClaims(session, { nbf: Math.floor(Date.now() / 1000) + 3600 }))],
  ];
  for (const [label, token] of cases) {
    const res = await app.inject({ url: '/auth/me', headers: bearer(token) });
    assertProblem(t, res, 401, 'token_invalid', label);
    assertBearerChallenge(t, res, label);
  }
});

eachDatabase('me with an expired access token answers 401 token_expired', async (t, kind) => {
  // Three seconds, of which at least two are left once issued (exp is in whole seconds).
  const { app } = await buildTestApp(t, kind, { env: { ACCESS_TOKEN_TTL: '3', JWT_CLOCK_SKEW: '0' } });
  const { accessToken, expiresIn } = await registerUser(app);
  t.equal(expiresIn, 3, 'the access token lives three seconds');
  const expiresAt = claimsOf(accessToken).exp * 1000;
  // Used while valid first, so it sits in the verified-token cache: expiry must still win.
  const first = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  if (Date.now() < expiresAt) t.equal(first.statusCode, 200, 'valid at first');
  await sleep(Math.max(0, expiresAt + 100 - Date.now()));
  const res = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  assertProblem(t, res, 401, 'token_expired');
  assertBearerChallenge(t, res, 'token_expired');
});

eachDatabase('a validly signed token for a session that does not exist answers 401 session_revoked', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken } = await registerUser(app);
  const { sub } = claimsOf(accessToken);
  for (const [label, claims] of [
    ['unknown session of a real user', validClaims({ sub, sid: randomUUID() })],
    ['unknown user', validClaims({ sub: randomUUID(), sid: randomUUID() })],
  ] as const) {
    const res = await app.inject({ url: '/auth/me', headers: bearer(forgeToken(claims)) });
    assertProblem(t, res, 401, 'session_revoked', label);
    assertBearerChallenge(t, res, label);
  }
});

eachDatabase('a session past its expiry is not live: its access token is refused, and the user no longer carries it', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const registered = await registerUser(app);
  const second = await login(app, registered.email);
  const expiring = claimsOf(second.accessToken).sid;
  // Nothing revokes a session that just expires: SESSION_MAX_AGE passed, as far as the database knows.
  await database.db.update(sessions).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(sessions.id, expiring));
  app.gatehouse.access.invalidateLocal(claimsOf(registered.accessToken).sub);

  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(second.accessToken) }), 401, 'session_revoked');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(registered.accessToken) })).statusCode, 200, 'the other session is live');
  const state = await loadAuthorizationState(database.db, claimsOf(registered.accessToken).sub);
  t.same(state?.liveSessionIds, [claimsOf(registered.accessToken).sid]);
});
