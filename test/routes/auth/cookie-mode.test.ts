import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildTestApp, eachDatabase, type Test } from '../../helpers/app.js';
import { claimsOf } from '../../helpers/jwt.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, post, registerUser, uniqueEmail } from '../../helpers/users.js';

const COOKIE = 'gatehouse_refresh';

interface ResponseCookie {
  name: string;
  value: string;
  path?: string;
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: string;
  expires?: Date;
  maxAge?: number;
}

function refreshCookie(res: LightMyRequestResponse): ResponseCookie | undefined {
  return (res.cookies as ResponseCookie[]).find((c) => c.name === COOKIE);
}

/** Checks the cookie's attributes and returns its value. */
function assertRefreshCookie(t: Test, res: LightMyRequestResponse, { secure = false } = {}): string {
  const cookie = refreshCookie(res);
  t.ok(cookie, 'sets the refresh cookie');
  t.match(cookie?.value, /^[A-Za-z0-9_-]{70}$/, 'holding a refresh token');
  t.equal(cookie?.httpOnly, true, 'httpOnly: scripts cannot read it');
  t.equal(cookie?.sameSite, 'Strict', 'SameSite=Strict');
  t.equal(cookie?.path, '/auth', 'sent only to the /auth routes');
  t.equal(cookie?.secure === true, secure, secure ? 'Secure' : 'not Secure');
  t.ok(cookie?.expires && cookie.expires.getTime() > Date.now(), 'persists until the session expires');
  return cookie?.value ?? '';
}

async function cookieLogin(app: FastifyInstance): Promise<{ email: string; cookie: string; csrfToken: string; accessToken: string }> {
  const email = uniqueEmail('spa');
  await registerUser(app, { email });
  const res = await post(app, '/auth/login', { email, password: PASSWORD, useCookie: true });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  const body = json(res);
  return { email, cookie: refreshCookie(res)!.value, csrfToken: body.csrfToken!, accessToken: body.accessToken };
}

function cookieRequest(app: FastifyInstance, url: string, cookie: string, csrfToken?: string) {
  return app.inject({
    method: 'POST',
    url,
    cookies: { [COOKIE]: cookie },
    headers: csrfToken === undefined ? {} : { 'x-csrf-token': csrfToken },
  });
}

eachDatabase('login with useCookie puts the refresh token in an httpOnly SameSite=Strict cookie instead of the body', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { email } = await registerUser(app);
  const res = await post(app, '/auth/login', { email, password: PASSWORD, useCookie: true });
  t.equal(res.statusCode, 200);
  assertRefreshCookie(t, res);
  const body = json(res);
  t.notOk('refreshToken' in body, 'no refresh token in the body');
  t.match(body.csrfToken, /^[A-Za-z0-9_-]{20,}$/, 'a CSRF token instead');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(body.accessToken) })).statusCode, 200, 'the access token works as usual');
});

eachDatabase('register with useCookie puts the refresh token in the cookie too', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const res = await post(app, '/auth/register', { email: uniqueEmail(), password: PASSWORD, useCookie: true });
  t.equal(res.statusCode, 201);
  assertRefreshCookie(t, res);
  const body = json(res);
  t.notOk('refreshToken' in body, 'no refresh token in the body');
  t.type(body.csrfToken, 'string');
});

eachDatabase('with COOKIE_SECURE=true the refresh cookie is Secure', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { COOKIE_SECURE: 'true' } });
  const res = await post(app, '/auth/register', { email: uniqueEmail(), password: PASSWORD, useCookie: true });
  t.equal(res.statusCode, 201);
  assertRefreshCookie(t, res, { secure: true });
  t.match(String(res.headers['set-cookie']), /;\s*Secure/i, 'the Set-Cookie header says Secure');
});

eachDatabase('a cookie-mode refresh needs the session csrfToken in X-CSRF-Token', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const mine = await cookieLogin(app);
  const someoneElse = await cookieLogin(app);
  for (const [label, header] of [
    ['no header', undefined],
    ['an empty header', ''],
    ['a wrong token', 'not-the-csrf-token'],
    ["another session's token", someoneElse.csrfToken],
    ['the access token', mine.accessToken],
  ] as const) {
    const res = await cookieRequest(app, '/auth/refresh', mine.cookie, header);
    assertProblem(t, res, 403, 'csrf_failed', label);
    t.equal(refreshCookie(res), undefined, `${label}: the cookie is left alone`);
  }
  const res = await cookieRequest(app, '/auth/refresh', mine.cookie, mine.csrfToken);
  t.equal(res.statusCode, 200, 'with the right header the refresh works, and none of the refusals used up the token');
});

eachDatabase('a cookie-mode refresh rotates the cookie and keeps the same csrfToken', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { cookie, csrfToken, accessToken } = await cookieLogin(app);
  const first = await cookieRequest(app, '/auth/refresh', cookie, csrfToken);
  t.equal(first.statusCode, 200);
  const rotated = assertRefreshCookie(t, first);
  t.not(rotated, cookie, 'the cookie holds a new refresh token');
  const body = json(first);
  t.notOk('refreshToken' in body, 'still no refresh token in the body');
  t.equal(body.csrfToken, csrfToken, 'the csrfToken is the same');
  t.equal(claimsOf(body.accessToken).sid, claimsOf(accessToken).sid, 'the same session');

  const second = await cookieRequest(app, '/auth/refresh', rotated, csrfToken);
  t.equal(second.statusCode, 200, 'the rotated cookie works with the same csrfToken');
  t.equal(json(second).csrfToken, csrfToken);
  t.not(refreshCookie(second)?.value, rotated, 'and rotates again');
});

eachDatabase('a cookie-mode refresh works with no body and no content type', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { cookie, csrfToken } = await cookieLogin(app);
  const res = await app.inject({ method: 'POST', url: '/auth/refresh', cookies: { [COOKIE]: cookie }, headers: { 'x-csrf-token': csrfToken } });
  t.notOk(res.raw.req.headers['content-type'], 'the request had no content type');
  t.equal(res.statusCode, 200, res.body);
  t.equal(json(res).csrfToken, csrfToken);
  t.ok(refreshCookie(res), 'sets the rotated cookie');
});

eachDatabase('a refresh token in the body is used over the cookie and needs no CSRF header', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const spa = await cookieLogin(app);
  const registered = await registerUser(app);
  const res = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    cookies: { [COOKIE]: spa.cookie },
    payload: { refreshToken: registered.refreshToken },
  });
  t.equal(res.statusCode, 200);
  const body = json(res);
  t.equal(body.user.email, registered.email, 'the body token decided');
  t.type(body.refreshToken, 'string', 'and it is answered in the body');
  t.equal(refreshCookie(res), undefined, 'the cookie is not touched');
});

eachDatabase('a cookie-mode logout needs the CSRF header, ends the session and clears the cookie', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { cookie, csrfToken, accessToken } = await cookieLogin(app);
  assertProblem(t, await cookieRequest(app, '/auth/logout', cookie), 403, 'csrf_failed', 'without the header');
  assertProblem(t, await cookieRequest(app, '/auth/logout', cookie, 'wrong'), 403, 'csrf_failed', 'with a wrong header');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(accessToken) })).statusCode, 200, 'the refusals ended nothing');

  const res = await cookieRequest(app, '/auth/logout', cookie, csrfToken);
  t.equal(res.statusCode, 204);
  const cleared = refreshCookie(res);
  t.equal(cleared?.value, '', 'the cookie is emptied');
  t.equal(cleared?.path, '/auth', 'on the path it was set on');
  t.ok(cleared?.expires && cleared.expires.getTime() <= Date.now(), 'and expired');

  assertProblem(t, await cookieRequest(app, '/auth/refresh', cookie, csrfToken), 401, 'session_revoked', 'the old cookie');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(accessToken) }), 401, 'session_revoked', 'the access token');
  t.equal((await cookieRequest(app, '/auth/logout', cookie, csrfToken)).statusCode, 204, 'logging out again is fine');
});

eachDatabase('logout-all from a cookie-mode session clears the refresh cookie too', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { cookie, accessToken } = await cookieLogin(app);
  const res = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(accessToken), cookies: { [COOKIE]: cookie } });
  t.equal(res.statusCode, 204);
  t.equal(refreshCookie(res)?.value, '', 'the cookie is emptied');
  const withoutCookie = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer((await cookieLogin(app)).accessToken) });
  t.equal(refreshCookie(withoutCookie), undefined, 'no cookie sent, none cleared');
});

eachDatabase('a failed cookie-mode refresh clears the cookie', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const res = await cookieRequest(app, '/auth/refresh', 'not-a-refresh-token', 'whatever');
  assertProblem(t, res, 401, 'invalid_refresh_token');
  t.equal(refreshCookie(res)?.value, '', 'the useless cookie is cleared');
});

eachDatabase('a cookie left behind by later rotations still needs the CSRF header, so a cross-site request cannot spend it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { cookie: stale, csrfToken, accessToken } = await cookieLogin(app);
  const second = assertRefreshCookie(t, await cookieRequest(app, '/auth/refresh', stale, csrfToken));
  assertRefreshCookie(t, await cookieRequest(app, '/auth/refresh', second, csrfToken));
  // Presented, a token two rotations back is a reuse and revokes its session: without the header
  // it must not get that far.
  for (const route of ['/auth/refresh', '/auth/logout']) {
    assertProblem(t, await cookieRequest(app, route, stale), 403, 'csrf_failed', route);
  }
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(accessToken) })).statusCode, 200, 'the session is still live');
  assertProblem(t, await cookieRequest(app, '/auth/refresh', stale, csrfToken), 401, 'refresh_token_reused', 'with the header it is judged');
});
