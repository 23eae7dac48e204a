import { eq } from 'drizzle-orm';
import { sessions, users } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf } from '../../helpers/jwt.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, post, registerUser } from '../../helpers/users.js';

eachDatabase('login with email and password returns an access token, a refresh token and the user', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const registered = await registerUser(app, { name: 'Ann' });
  const res = await post(app, '/auth/login', { email: registered.email, password: PASSWORD });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  const body = json(res);
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, 900);
  t.match(body.accessToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const claims = claimsOf(body.accessToken);
  t.equal(claims.exp - claims.iat, body.expiresIn, 'the access token expires when expiresIn says');
  t.match(body.refreshToken, /^[A-Za-z0-9_-]{70}$/);
  t.not(body.refreshToken, registered.refreshToken, 'a login opens a new session with its own token');
  t.notOk('csrfToken' in body, 'no CSRF token outside cookie mode');
  t.equal(res.headers['set-cookie'], undefined, 'no cookie outside cookie mode');
  t.equal(body.user.email, registered.email);
  t.equal(body.user.name, 'Ann');
  t.same(body.user.roles, ['user']);

  const me = await app.inject({ url: '/auth/me', headers: bearer(body.accessToken) });
  t.equal(me.statusCode, 200, 'the access token works');
  const refreshed = await post(app, '/auth/refresh', { refreshToken: body.refreshToken });
  t.equal(refreshed.statusCode, 200, 'the refresh token works');
});

eachDatabase('the email is trimmed and lower-cased before it is looked up', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { email } = await registerUser(app);
  const res = await post(app, '/auth/login', { email: `  ${email.toUpperCase()}\t`, password: PASSWORD });
  t.equal(res.statusCode, 200);
  t.equal(json(res).user.email, email);
});

eachDatabase('an unknown email and a wrong password get the very same 401 invalid_credentials', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { email } = await registerUser(app);
  const unknown = await post(app, '/auth/login', { email: 'nobody@example.com', password: PASSWORD });
  const wrong = await post(app, '/auth/login', { email, password: `${PASSWORD}!` });
  const notAnEmail = await post(app, '/auth/login', { email: 'not an email', password: PASSWORD });
  const a = assertProblem(t, unknown, 401, 'invalid_credentials', 'unknown email');
  const b = assertProblem(t, wrong, 401, 'invalid_credentials', 'wrong password');
  assertProblem(t, notAnEmail, 401, 'invalid_credentials', 'malformed email');
  t.equal(a.title, b.title, 'same title');
  t.equal(a.detail, b.detail, 'same detail');
  t.same({ ...a, instance: undefined }, { ...b, instance: undefined }, 'same body');
  t.equal(unknown.headers['www-authenticate'], wrong.headers['www-authenticate'], 'same challenge');
  t.equal(unknown.headers['content-length'], wrong.headers['content-length'], 'same length');
});

eachDatabase('a disabled account gets 403 account_disabled, and only with the right password', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { email, user } = await registerUser(app);
  await database.db.update(users).set({ active: false }).where(eq(users.id, user.id));

  const right = await post(app, '/auth/login', { email, password: PASSWORD });
  assertProblem(t, right, 403, 'account_disabled');
  const wrong = await post(app, '/auth/login', { email, password: 'not the password' });
  assertProblem(t, wrong, 401, 'invalid_credentials', 'a wrong password does not learn the account is disabled');
  const opened = await database.db.select().from(sessions).where(eq(sessions.userId, user.id));
  t.equal(opened.length, 1, 'no session was opened beyond the one of registration');
});

eachDatabase('each login counts: loginCount goes up and lastLoginAt moves to the latest login', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const registered = await registerUser(app);
  t.equal(registered.user.loginCount, 1);
  const firstAt = new Date(registered.user.lastLoginAt!);
  await new Promise((resolve) => setTimeout(resolve, 5));

  const before = Date.now();
  const second = json(await post(app, '/auth/login', { email: registered.email, password: PASSWORD }));
  t.equal(second.user.loginCount, 2);
  const secondAt = new Date(second.user.lastLoginAt!);
  t.ok(secondAt > firstAt, 'lastLoginAt moved forward');
  t.ok(secondAt.getTime() >= before - 1000 && secondAt.getTime() <= Date.now() + 1000, 'lastLoginAt is now');

  assertProblem(t, await post(app, '/auth/login', { email: registered.email, password: 'wrong password' }), 401, 'invalid_credentials');
  const third = json(await post(app, '/auth/login', { email: registered.email, password: PASSWORD }));
  t.equal(third.user.loginCount, 3, 'a failed login does not count');

  const me = json<{ loginCount: number; lastLoginAt: string }>(await app.inject({ url: '/auth/me', headers: bearer(third.accessToken) }));
  t.equal(me.loginCount, 3, '/auth/me agrees');
  t.equal(me.lastLoginAt, third.user.lastLoginAt);
  const [row] = await database.db.select().from(users).where(eq(users.id, registered.user.id));
  t.equal(row!.loginCount, 3, 'the database agrees');
  t.equal(row!.previousLoginAt?.toISOString(), second.user.lastLoginAt, 'the previous login moves down one slot');
});

eachDatabase('two 100-character passwords that differ only in the last character are different passwords', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const password = `${'p'.repeat(99)}1`;
  const { email } = await registerUser(app, { password });
  assertProblem(t, await post(app, '/auth/login', { email, password: `${'p'.repeat(99)}2` }), 401, 'invalid_credentials');
  t.equal((await post(app, '/auth/login', { email, password })).statusCode, 200, 'the password itself works');
});

eachDatabase('a password hashed at an older cost is rehashed at the next login', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { email, user } = await registerUser(app);
  await app.close();
  // The operator raised BCRYPT_COST and restarted.
  const { app: raised } = await buildTestApp(t, kind, { database, env: { BCRYPT_COST: '5' } });
  const hashOf = async () => (await database.db.select().from(users).where(eq(users.id, user.id)))[0]!.passwordHash;
  t.match(await hashOf(), /^\$2b\$04\$/);
  t.equal((await post(raised, '/auth/login', { email, password: PASSWORD })).statusCode, 200);
  t.match(await hashOf(), /^\$2b\$05\$/, 'the hash is redone at the new cost');
  t.equal((await post(raised, '/auth/login', { email, password: PASSWORD })).statusCode, 200, 'and the password still works');
});

eachDatabase('login refuses malformed input with 400 validation_failed', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const cases: [string, unknown][] = [
    ['missing password', { email: 'ann@example.com' }],
    ['missing email', { password: PASSWORD }],
    ['empty password', { email: 'ann@example.com', password: '' }],
    ['email not a string', { email: ['ann@example.com'], password: PASSWORD }],
    ['password not a string', { email: 'ann@example.com', password: 12345678 }],
    ['useCookie not a boolean', { email: 'ann@example.com', password: PASSWORD, useCookie: 'yes' }],
    ['unknown field', { email: 'ann@example.com', password: PASSWORD, admin: true }],
  ];
  for (const [label, payload] of cases) {
    const problem = assertProblem(t, await post(app, '/auth/login', payload), 400, 'validation_failed', label);
    t.ok(problem.errors && problem.errors.length > 0, `${label}: the offending field is named`);
  }
});
