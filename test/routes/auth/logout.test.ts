import { newOpaqueToken } from '../../../src/domain/tokens.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { assertBearerChallenge, assertProblem } from '../../helpers/problems.js';
import { bearer, login, post, registerUser } from '../../helpers/users.js';

eachDatabase('logout with the access token ends its session', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken, refreshToken } = await registerUser(app);
  const res = await post(app, '/auth/logout', undefined, bearer(accessToken));
  t.equal(res.statusCode, 204);
  t.equal(res.body, '', 'no body');
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'session_revoked', 'its refresh token');
  const me = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  assertProblem(t, me, 401, 'session_revoked', 'its access token');
  assertBearerChallenge(t, me, 'its access token');
});

eachDatabase('logout with the refresh token in the body ends its session', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken, refreshToken } = await registerUser(app);
  const res = await post(app, '/auth/logout', { refreshToken });
  t.equal(res.statusCode, 204);
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'session_revoked', 'its refresh token');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(accessToken) }), 401, 'session_revoked', 'its access token');
});

eachDatabase('logging out twice answers 204 both times', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const first = await registerUser(app);
  t.equal((await post(app, '/auth/logout', undefined, bearer(first.accessToken))).statusCode, 204, 'access token, first time');
  t.equal((await post(app, '/auth/logout', undefined, bearer(first.accessToken))).statusCode, 204, 'access token, again');
  t.equal((await post(app, '/auth/logout', { refreshToken: first.refreshToken })).statusCode, 204, 'its refresh token, after that');

  const second = await login(app, first.email);
  t.equal((await post(app, '/auth/logout', { refreshToken: second.refreshToken })).statusCode, 204, 'refresh token, first time');
  t.equal((await post(app, '/auth/logout', { refreshToken: second.refreshToken })).statusCode, 204, 'refresh token, again');
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken: second.refreshToken }), 401, 'session_revoked');
});

eachDatabase("logging out of one session leaves the user's other sessions working", async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const laptop = await registerUser(app);
  const phone = await login(app, laptop.email);
  const tablet = await login(app, laptop.email);
  t.equal((await post(app, '/auth/logout', undefined, bearer(laptop.accessToken))).statusCode, 204);
  t.equal((await post(app, '/auth/logout', { refreshToken: tablet.refreshToken })).statusCode, 204);

  t.equal((await app.inject({ url: '/auth/me', headers: bearer(phone.accessToken) })).statusCode, 200, 'the phone is still signed in');
  t.equal((await post(app, '/auth/refresh', { refreshToken: phone.refreshToken })).statusCode, 200, 'and can refresh');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(laptop.accessToken) }), 401, 'session_revoked', 'laptop');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(tablet.accessToken) }), 401, 'session_revoked', 'tablet');
});

eachDatabase('logout without any credential answers 401 token_missing', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  for (const [label, payload] of [
    ['no body', undefined],
    ['an empty body', {}],
  ] as const) {
    const res = await post(app, '/auth/logout', payload);
    assertProblem(t, res, 401, 'token_missing', label);
    t.equal(res.headers['www-authenticate'], 'Bearer', `${label}: a bare Bearer challenge`);
  }
});

eachDatabase('logout with a malformed or forged access token answers 401 token_invalid and ends nothing', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken, refreshToken } = await registerUser(app);
  const session = claimsOf(accessToken);
  const cases: [string, string][] = [
    ['Basic credentials', 'Basic YWxhZGRpbjpvcGVuc2VzYW1l'],
    ['Bearer without a token', 'Bearer'],
    ['two tokens', `Bearer ${accessToken} ${accessToken}`],
    ['not a JWT', 'Bearer not-a-jwt'],
    ['another secret', `Bearer ${forgeToken(validClaims(session), { secret: 'some-other-secret-that-is-long-enough-012' })}`],
    ['alg none', `Bearer ${forgeToken(validClaims(session), { alg: 'none' })}`],
    ['wrong audience', `Bearer ${forgeToken(validClaims(session, { aud: 'elsewhere' }))}`],
  ];
  for (const [label, authorization] of cases) {
    const res = await post(app, '/auth/logout', undefined, { authorization });
    assertProblem(t, res, 401, 'token_invalid', label);
    assertBearerChallenge(t, res, label);
  }
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(accessToken) })).statusCode, 200, 'the session is still live');
  t.equal((await post(app, '/auth/refresh', { refreshToken })).statusCode, 200);
});

eachDatabase('logout with an expired access token still ends its session', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken, refreshToken } = await registerUser(app);
  const now = Math.floor(Date.now() / 1000);
  const expired = forgeToken(validClaims(claimsOf(accessToken), { iat: now - 120, exp: now - 60 }));
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(expired) }), 401, 'token_expired', 'the token is expired');
  t.equal((await post(app, '/auth/logout', undefined, bearer(expired))).statusCode, 204);
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'session_revoked');
});

eachDatabase('logout with an unknown refresh token answers 401 invalid_refresh_token, with a non-string one 400', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  for (const refreshToken of [newOpaqueToken(), 'garbage', '']) {
    assertProblem(t, await post(app, '/auth/logout', { refreshToken }), 401, 'invalid_refresh_token', JSON.stringify(refreshToken));
  }
  assertProblem(t, await post(app, '/auth/logout', { refreshToken: 42 }), 400, 'validation_failed', 'a number');
});

eachDatabase('logout takes the current refresh token or the one it replaced, and no older one', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken, refreshToken: first } = await registerUser(app);
  const second = (await post(app, '/auth/refresh', { refreshToken: first })).json<{ refreshToken: string }>().refreshToken;
  const third = (await post(app, '/auth/refresh', { refreshToken: second })).json<{ refreshToken: string }>().refreshToken;
  // Following a token further back costs a hash per generation, and logout has no rate limit.
  assertProblem(t, await post(app, '/auth/logout', { refreshToken: first }), 401, 'invalid_refresh_token', 'two rotations back');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(accessToken) })).statusCode, 200, 'which ends nothing');
  t.equal((await post(app, '/auth/logout', { refreshToken: second })).statusCode, 204, 'the one before: its rotation answer may have been lost');
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken: third }), 401, 'session_revoked', 'the session ended');
});
