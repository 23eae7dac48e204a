import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { eq } from 'drizzle-orm';
import tap from 'tap';
import { sessions } from '../../../src/db/schema.js';
import { newRefreshToken, successorOf } from '../../../src/domain/refresh-tokens.js';
import { hashToken, newOpaqueToken } from '../../../src/domain/tokens.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf } from '../../helpers/jwt.js';
import { assertProblem } from '../../helpers/problems.js';
import { bearer, json, login, post, registerUser } from '../../helpers/users.js';

// Expiries are waited out in real time: the tests run two at a time, so the waits overlap.
tap.jobs = 2;

/** Just past a one-second REFRESH_REUSE_GRACE or REFRESH_TOKEN_TTL. */
const PAST_ONE_SECOND = 1100;

eachDatabase('refresh exchanges the refresh token for new tokens and a new refresh token', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const registered = await registerUser(app, { name: 'Ann' });
  const res = await post(app, '/auth/refresh', { refreshToken: registered.refreshToken });
  t.equal(res.statusCode, 200);
  const body = json(res);
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, 900);
  t.match(body.refreshToken, /^[A-Za-z0-9_-]{70}$/);
  t.not(body.refreshToken, registered.refreshToken, 'the refresh token rotated');
  t.notOk('csrfToken' in body);
  t.same(body.user, registered.user, 'the same user');
  t.equal(claimsOf(body.accessToken).sid, claimsOf(registered.accessToken).sid, 'the same session');

  t.equal((await app.inject({ url: '/auth/me', headers: bearer(body.accessToken) })).statusCode, 200, 'the new access token works');
  const next = await post(app, '/auth/refresh', { refreshToken: body.refreshToken });
  t.equal(next.statusCode, 200, 'the new refresh token works');
  t.not(json(next).refreshToken, body.refreshToken, 'and rotates in turn');
});

eachDatabase('a rotated token presented again within the grace answers the very same successor', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { REFRESH_REUSE_GRACE: '10s' } });
  const { refreshToken } = await registerUser(app);
  const first = json(await post(app, '/auth/refresh', { refreshToken }));
  const again = await post(app, '/auth/refresh', { refreshToken });
  t.equal(again.statusCode, 200);
  t.equal(json(again).refreshToken, first.refreshToken, 'the same successor');
  t.equal(claimsOf(json(again).accessToken).sid, claimsOf(first.accessToken).sid, 'in the same session');
  t.equal((await post(app, '/auth/refresh', { refreshToken: first.refreshToken })).statusCode, 200, 'the successor still works');
});

eachDatabase('a rotated token reused after the grace is refused and revokes the whole session', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { REFRESH_REUSE_GRACE: '1' } });
  const { email, refreshToken } = await registerUser(app);
  const other = await login(app, email);
  const rotated = json(await post(app, '/auth/refresh', { refreshToken }));
  await sleep(PAST_ONE_SECOND);

  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'refresh_token_reused', 'the rotated token');
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken: rotated.refreshToken }), 401, 'session_revoked', 'its newest token');
  const me = await app.inject({ url: '/auth/me', headers: bearer(rotated.accessToken) });
  assertProblem(t, me, 401, 'session_revoked', "the session's access token");
  t.match(me.headers['www-authenticate'], /^Bearer/);

  t.equal((await app.inject({ url: '/auth/me', headers: bearer(other.accessToken) })).statusCode, 200, "the user's other session lives on");
  t.equal((await post(app, '/auth/refresh', { refreshToken: other.refreshToken })).statusCode, 200);
});

eachDatabase('a refresh token unused for REFRESH_TOKEN_TTL expires', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { REFRESH_TOKEN_TTL: '1' } });
  const { refreshToken } = await registerUser(app);
  await sleep(PAST_ONE_SECOND);
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'refresh_token_expired');
});

eachDatabase('a session ends at SESSION_MAX_AGE even while it keeps being refreshed', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { SESSION_MAX_AGE: '2', REFRESH_TOKEN_TTL: '1h' } });
  const opened = Date.now();
  const { refreshToken, user } = await registerUser(app);
  const refreshed = await post(app, '/auth/refresh', { refreshToken });
  // Unless the machine stood still for the session's two seconds, it was young then.
  if (Date.now() - opened < 2000) t.equal(refreshed.statusCode, 200, 'refreshing works while the session is young');
  // The session opened just before the login was recorded: two seconds after that, it is over.
  await sleep(Math.max(0, new Date(user.lastLoginAt!).getTime() + 2100 - Date.now()));
  const later = await post(app, '/auth/refresh', { refreshToken: refreshed.statusCode === 200 ? json(refreshed).refreshToken : refreshToken });
  assertProblem(t, later, 401, 'refresh_token_expired');
});

/** The token's last character holds 2 bits of its bytes and 4 spare ones: another spelling of the same bytes. */
function respelled(token: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(token.at(-1)!);
  return token.slice(0, -1) + alphabet[last ^ 1];
}

/** The token with its generation (bytes 16-19) replaced. */
function atGeneration(token: string, generation: number): string {
  const bytes = Buffer.from(token, 'base64url');
  bytes.writeUInt32BE(generation, 16);
  return bytes.toString('base64url');
}

eachDatabase('unknown and malformed refresh tokens get 401 invalid_refresh_token', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { refreshToken, accessToken } = await registerUser(app);
  const { sid } = claimsOf(accessToken);
  const cases: [string, unknown][] = [
    ['an unknown token of the old shape', { refreshToken: newOpaqueToken() }],
    ['a made-up token naming the session', { refreshToken: newRefreshToken(sid) }],
    ['a made-up token naming the session at a later generation', { refreshToken: successorOf(newRefreshToken(sid), { sessionId: sid, generation: 4 }, randomBytes(32)) }],
    ['the same bytes spelled with other spare bits', { refreshToken: respelled(refreshToken!) }],
    ['naming the session at a generation past a signed integer', { refreshToken: atGeneration(refreshToken!, 2 ** 31) }],
    ['naming the session at the largest generation', { refreshToken: atGeneration(refreshToken!, 2 ** 32 - 1) }],
    ['too short', { refreshToken: 'abc' }],
    ['one character too many', { refreshToken: `${refreshToken}A` }],
    ['empty', { refreshToken: '' }],
    ['with spaces', { refreshToken: ` ${refreshToken} ` }],
    ['an access token', { refreshToken: accessToken }],
    ['unicode', { refreshToken: 'ü'.repeat(43) }],
    ['no token at all', {}],
  ];
  for (const [label, payload] of cases) {
    assertProblem(t, await post(app, '/auth/refresh', payload), 401, 'invalid_refresh_token', label);
  }
  t.equal((await post(app, '/auth/refresh', { refreshToken })).statusCode, 200, 'none of that harmed the real token or revoked its session');
});

eachDatabase('a refresh token that is not a string gets 400 validation_failed', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const cases: [string, unknown][] = [
    ['a number', { refreshToken: 42 }],
    ['null', { refreshToken: null }],
    ['an array', { refreshToken: ['x'] }],
    ['an object', { refreshToken: { $ne: null } }],
    ['a boolean', { refreshToken: true }],
    ['over 1024 characters', { refreshToken: 'x'.repeat(1025) }],
    ['an unknown field', { refreshToken: 'x', extra: 1 }],
  ];
  for (const [label, payload] of cases) {
    const problem = assertProblem(t, await post(app, '/auth/refresh', payload), 400, 'validation_failed', label);
    t.ok(problem.errors?.some((e) => e.path.startsWith('body')), `${label}: names the field`);
  }
});

eachDatabase('10 parallel refreshes of one token all get the same successor, and only it survives the grace', async (t, kind) => {
  // Ten seconds of grace: ten refreshes queued on one database all land well inside it.
  const { app, database } = await buildTestApp(t, kind, { env: { REFRESH_REUSE_GRACE: '10' } });
  const { refreshToken, accessToken } = await registerUser(app);
  const results = await Promise.all(Array.from({ length: 10 }, () => post(app, '/auth/refresh', { refreshToken })));
  t.same(
    results.map((r) => r.statusCode),
    Array(10).fill(200),
    'no 5xx, no refusal',
  );
  const successors = new Set(results.map((r) => json(r).refreshToken));
  t.equal(successors.size, 1, 'one successor for all');
  const [successor] = successors;

  const sid = claimsOf(accessToken).sid;
  const [row] = await database.db.select().from(sessions).where(eq(sessions.id, sid));
  t.equal(row!.refreshGeneration, 1, 'the session rotated once');
  t.equal(row!.refreshTokenHash, hashToken(successor!), 'and holds the successor as its current token');

  // Past the grace, as far as the database knows: the rotation moved 11 s back.
  await database.db.update(sessions).set({ refreshRotatedAt: new Date(Date.now() - 11_000) }).where(eq(sessions.id, sid));
  t.equal((await post(app, '/auth/refresh', { refreshToken: successor })).statusCode, 200, 'the successor works');
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken }), 401, 'refresh_token_reused', 'the original does not');
});

eachDatabase('rotated tokens stay dead across a restart', async (t, kind) => {
  // No grace: any second presentation of a rotated token is a reuse.
  const env = { REFRESH_REUSE_GRACE: '0' };
  const { app, database } = await buildTestApp(t, kind, { env });
  const { refreshToken } = await registerUser(app);
  const rotated = json(await post(app, '/auth/refresh', { refreshToken }));
  await app.close();

  const { app: restarted } = await buildTestApp(t, kind, { database, env });
  const next = await post(restarted, '/auth/refresh', { refreshToken: rotated.refreshToken });
  t.equal(next.statusCode, 200, 'the newest token works after the restart');
  assertProblem(t, await post(restarted, '/auth/refresh', { refreshToken }), 401, 'refresh_token_reused', 'the rotated one does not');
  assertProblem(t, await post(restarted, '/auth/refresh', { refreshToken: json(next).refreshToken }), 401, 'session_revoked');
});

eachDatabase('a refresh in the same second as the previous token still issues a different access token, and both verify', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  let { accessToken, refreshToken } = await registerUser(app);
  // Refresh until two tokens in a row share their iat (normally the first time): before `jti`,
  // such a pair was the same string.
  for (let sameSecond = false, round = 0; !sameSecond; round++) {
    if (round === 20) throw new Error('20 refreshes, each in another second than the one before');
    const next = json(await post(app, '/auth/refresh', { refreshToken }));
    const [before, after] = [claimsOf(accessToken), claimsOf(next.accessToken)];
    sameSecond = before.iat === after.iat;
    t.not(next.accessToken, accessToken, 'a new access token');
    t.match(after.jti, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'jti: a random UUID');
    t.not(after.jti, before.jti);
    for (const token of [accessToken, next.accessToken]) {
      t.equal((await app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode, 200, 'both verify');
    }
    ({ accessToken, refreshToken } = next);
  }
});
