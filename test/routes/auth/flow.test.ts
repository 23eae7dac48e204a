import { eq, isNotNull } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { sessions, users } from '../../../src/db/schema.js';
import { hashToken } from '../../../src/domain/tokens.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, uniqueEmail } from '../../helpers/users.js';

eachDatabase('register, log in, read me, refresh, log out: then the refresh token is refused', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const email = uniqueEmail('flow');
  const registered = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD, name: 'Flo' } });
  t.equal(registered.statusCode, 201, 'register');

  const loggedIn = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } });
  t.equal(loggedIn.statusCode, 200, 'login');
  const { accessToken, refreshToken } = json(loggedIn);

  const me = await app.inject({ url: '/auth/me', headers: bearer(accessToken) });
  t.equal(me.statusCode, 200, 'me');
  t.equal(json<{ email: string; loginCount: number }>(me).email, email);
  t.equal(json<{ email: string; loginCount: number }>(me).loginCount, 2);

  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } });
  t.equal(refreshed.statusCode, 200, 'refresh');
  const current = json(refreshed);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(current.accessToken) })).statusCode, 200, 'me with the new token');

  const loggedOut = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(current.accessToken) });
  t.equal(loggedOut.statusCode, 204, 'logout');

  const again = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: current.refreshToken } });
  assertProblem(t, again, 401, 'session_revoked', 'refresh after logout');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(current.accessToken) }), 401, 'session_revoked', 'me after logout');
  const registeredSession = json(registered);
  t.equal(
    (await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: registeredSession.refreshToken } })).statusCode,
    200,
    'the session opened at registration is another session and lives on',
  );
});

interface Step {
  label: string;
  request: InjectOptions;
  /** The expected problem, for steps that must fail. */
  problem?: [status: number, code: string];
}

/** Walks every auth route through its successes and its failures, and returns every response. */
async function exerciseEverything(app: FastifyInstance, setInactive: (email: string) => Promise<void>) {
  const responses: { step: Step; res: LightMyRequestResponse }[] = [];
  const run = async (step: Step) => {
    const res = await app.inject(step.request);
    responses.push({ step, res });
    return res;
  };
  const email = uniqueEmail('all');
  const post = (url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    ({ method: 'POST', url, payload: payload as object, headers }) as InjectOptions;

  await run({ label: 'register', request: post('/auth/register', { email, password: PASSWORD }) });
  await run({ label: 'register again', request: post('/auth/register', { email, password: PASSWORD }), problem: [409, 'email_taken'] });
  await run({ label: 'register with a bad email', request: post('/auth/register', { email: 'x', password: PASSWORD }), problem: [400, 'validation_failed'] });
  const loggedIn = json(await run({ label: 'login', request: post('/auth/login', { email, password: PASSWORD }) }));
  const spa = await run({ label: 'cookie login', request: post('/auth/login', { email, password: PASSWORD, useCookie: true }) });
  const cookie = (spa.cookies as { name: string; value: string }[]).find((c) => c.name === 'gatehouse_refresh')!.value;
  await run({ label: 'wrong password', request: post('/auth/login', { email, password: 'wrong password' }), problem: [401, 'invalid_credentials'] });
  await run({ label: 'unknown email', request: post('/auth/login', { email: 'nobody@example.com', password: PASSWORD }), problem: [401, 'invalid_credentials'] });
  await run({
    label: 'malformed JSON',
    request: { method: 'POST', url: '/auth/login', payload: '{"email":', headers: { 'content-type': 'application/json' } },
    problem: [400, 'invalid_json'],
  });
  await run({
    label: 'form body',
    request: { method: 'POST', url: '/auth/login', payload: 'email=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
    problem: [415, 'unsupported_media_type'],
  });
  await run({ label: 'me', request: { url: '/auth/me', headers: bearer(loggedIn.accessToken) } });
  await run({ label: 'me without a token', request: { url: '/auth/me' }, problem: [401, 'token_missing'] });
  await run({ label: 'me with a bad token', request: { url: '/auth/me', headers: bearer('a.b.c') }, problem: [401, 'token_invalid'] });
  const now = Math.floor(Date.now() / 1000);
  const expired = forgeToken(validClaims(claimsOf(loggedIn.accessToken), { iat: now - 60, exp: now - 30 }));
  await run({ label: 'me with an expired token', request: { url: '/auth/me', headers: bearer(expired) }, problem: [401, 'token_expired'] });
  const rotated = json(await run({ label: 'refresh', request: post('/auth/refresh', { refreshToken: loggedIn.refreshToken }) }));
  await run({ label: 'refresh within the grace', request: post('/auth/refresh', { refreshToken: loggedIn.refreshToken }) });
  await run({ label: 'refresh with garbage', request: post('/auth/refresh', { refreshToken: 'garbage' }), problem: [401, 'invalid_refresh_token'] });
  await run({ label: 'refresh with a number', request: post('/auth/refresh', { refreshToken: 1 }), problem: [400, 'validation_failed'] });
  await run({
    label: 'cookie refresh without CSRF',
    request: { method: 'POST', url: '/auth/refresh', cookies: { gatehouse_refresh: cookie } },
    problem: [403, 'csrf_failed'],
  });
  await run({
    label: 'cookie refresh',
    request: { method: 'POST', url: '/auth/refresh', cookies: { gatehouse_refresh: cookie }, headers: { 'x-csrf-token': json(spa).csrfToken! } },
  });
  await run({ label: 'logout', request: post('/auth/logout', undefined, bearer(rotated.accessToken)) });
  await run({ label: 'refresh after logout', request: post('/auth/refresh', { refreshToken: rotated.refreshToken }), problem: [401, 'session_revoked'] });
  await run({ label: 'me after logout', request: { url: '/auth/me', headers: bearer(rotated.accessToken) }, problem: [401, 'session_revoked'] });
  await run({ label: 'logout without credentials', request: post('/auth/logout'), problem: [401, 'token_missing'] });
  await run({ label: 'unknown route', request: { url: '/auth/nope' }, problem: [404, 'not_found'] });
  await setInactive(email);
  await run({ label: 'login while disabled', request: post('/auth/login', { email, password: PASSWORD }), problem: [403, 'account_disabled'] });
  return responses;
}

eachDatabase('every error response is problem+json with type, title, status, detail and code', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const responses = await exerciseEverything(app, async (email) => {
    await database.db.update(users).set({ active: false }).where(eq(users.email, email));
  });
  for (const { step, res } of responses) {
    if (step.problem) {
      assertProblem(t, res, step.problem[0], step.problem[1], step.label);
    } else {
      t.ok(res.statusCode < 400, `${step.label}: succeeds (${res.statusCode})`);
    }
  }
  const errors = responses.filter(({ res }) => res.statusCode >= 400);
  t.equal(errors.length, responses.filter(({ step }) => step.problem).length, 'only the expected steps failed');
});

eachDatabase('no response ever carries a password hash or a refresh-token hash', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const responses = await exerciseEverything(app, async (email) => {
    await database.db.update(users).set({ active: false }).where(eq(users.email, email));
  });
  const stored = (await database.db.select({ hash: sessions.refreshTokenHash }).from(sessions).where(isNotNull(sessions.refreshTokenHash))).map((r) => r.hash!);
  // The database keeps only each session's current token; the walk saw the rotated ones too.
  const issued = responses.flatMap(({ res }) => /"refreshToken":"([^"]+)"/.exec(res.body)?.[1] ?? []);
  const tokenHashes = [...new Set([...stored, ...issued.map(hashToken)])];
  const passwordHashes = (await database.db.select({ hash: users.passwordHash }).from(users)).map((r) => r.hash);
  t.ok(stored.length >= 3, `the walk left sessions with refresh tokens behind (${stored.length})`);
  t.ok(tokenHashes.length >= 4, `the walk saw refresh tokens issued and rotated (${tokenHashes.length})`);
  t.ok(passwordHashes.length >= 1);
  const everything = responses.map(({ res }) => `${JSON.stringify(res.headers)}\n${res.body}`);
  t.ok(everything.length >= 20, `${everything.length} responses collected`);
  t.notOk(
    everything.some((text) => /\$2[aby]\$/.test(text)),
    'no bcrypt hash anywhere',
  );
  for (const hash of [...tokenHashes, ...passwordHashes]) {
    const leaked = responses.filter((_, i) => everything[i]!.includes(hash)).map(({ step }) => step.label);
    t.same(leaked, [], `hash ${hash.slice(0, 12)}... appears in no response`);
  }
});
