import { eachDatabase, buildTestApp } from '../../helpers/app.js';
import { PASSWORD, bearer, json, post, registerUser, uniqueEmail } from '../../helpers/users.js';

eachDatabase('register creates the account, opens a session and returns tokens', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const res = await post(app, '/auth/register', { email: '  Ann.Lee@Example.COM ', password: PASSWORD, name: 'Ann' });
  t.equal(res.statusCode, 201);
  const body = json(res);
  t.equal(body.user.email, 'ann.lee@example.com', 'email is trimmed and lower-cased');
  t.equal(body.user.name, 'Ann');
  t.same(body.user.roles, ['user'], 'a new user gets the default role');
  t.same(body.user.permissions, ['read']);
  t.equal(body.user.loginCount, 1, 'registering counts as the first login');
  t.ok(body.user.lastLoginAt);
  t.equal(body.tokenType, 'Bearer');
  t.equal(body.expiresIn, 900);
  t.match(body.refreshToken, /^[A-Za-z0-9_-]{70}$/);
  t.notOk('passwordHash' in body.user);

  const me = await app.inject({ url: '/auth/me', headers: bearer(body.accessToken) });
  t.equal(me.statusCode, 200);
  t.equal(json<{ email: string }>(me).email, 'ann.lee@example.com');
});

eachDatabase('register refuses bad input with validation_failed naming each field', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const cases: [string, unknown, string[]][] = [
    ['malformed email', { email: 'not-an-email', password: PASSWORD }, ['body/email']],
    ['password over the input bound', { email: uniqueEmail(), password: 'x'.repeat(1025) }, ['body/password']],
    ['missing fields', {}, ['body/email', 'body/password']],
    ['wrong types', { email: 42, password: ['x'] }, ['body/email', 'body/password']],
    ['unknown field', { email: uniqueEmail(), password: PASSWORD, admin: true }, ['body/admin']],
  ];
  for (const [label, payload, paths] of cases) {
    const res = await post(app, '/auth/register', payload);
    t.equal(res.statusCode, 400, label);
    t.match(res.headers['content-type'], /^application\/problem\+json/, label);
    const problem = json<{ code: string; errors: { path: string }[] }>(res);
    t.equal(problem.code, 'validation_failed', label);
    t.same(problem.errors.map((e) => e.path).sort(), paths.sort(), `${label}: the offending fields are listed`);
  }
});

eachDatabase('password length is counted in Unicode code points, not UTF-16 units or bytes', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  // 8 emoji: 16 UTF-16 units, 32 bytes, but 8 characters -> accepted.
  const eight = '😀🙂😎🤓😇🥳😴🤖';
  t.equal((await post(app, '/auth/register', { email: uniqueEmail(), password: eight })).statusCode, 201);
  // 7 emoji: 14 UTF-16 units, but 7 characters -> refused.
  const seven = await post(app, '/auth/register', { email: uniqueEmail(), password: '😀🙂😎🤓😇🥳😴' });
  t.equal(seven.statusCode, 400);
  t.equal(seven.json().code, 'weak_password');
  t.match(seven.json().detail, /at least 8/);
  // 256 emoji: 512 UTF-16 units, but 256 characters -> accepted; 257 -> refused.
  t.equal((await post(app, '/auth/register', { email: uniqueEmail(), password: '😀'.repeat(256) })).statusCode, 201);
  const long = await post(app, '/auth/register', { email: uniqueEmail(), password: '😀'.repeat(257) });
  t.equal(long.json().code, 'weak_password');
  t.match(long.json().detail, /at most 256/);
});

eachDatabase('an email registered twice, in any case, answers 409 email_taken', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { email } = await registerUser(app);
  const res = await post(app, '/auth/register', { email: ` ${email.toUpperCase()}`, password: PASSWORD });
  t.equal(res.statusCode, 409);
  t.equal(json<{ code: string }>(res).code, 'email_taken');
});

eachDatabase('20 parallel registrations of one email give exactly one 201 and 409 for the rest', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const email = uniqueEmail('race');
  const results = await Promise.all(
    Array.from({ length: 20 }, () => post(app, '/auth/register', { email, password: PASSWORD })),
  );
  const statuses = results.map((r) => r.statusCode).sort();
  t.same(statuses, [201, ...Array(19).fill(409)]);
});
