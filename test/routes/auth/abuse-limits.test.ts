import tap from 'tap';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { openTestDatabase } from '../../helpers/databases.js';
import { PASSWORD, bearer, post, registerUser, uniqueEmail } from '../../helpers/users.js';

const LIMITED_ROUTES = [
  { env: 'RATE_LIMIT_LOGIN', url: '/auth/login', body: () => ({ email: uniqueEmail(), password: 'whatever-it-is' }) },
  { env: 'RATE_LIMIT_REGISTER', url: '/auth/register', body: () => ({ email: 'not an email', password: PASSWORD }) },
  { env: 'RATE_LIMIT_FORGOT', url: '/auth/password/forgot', body: () => ({ email: uniqueEmail() }) },
  { env: 'RATE_LIMIT_RESEND', url: '/auth/email/resend', body: () => ({ email: uniqueEmail() }) },
  { env: 'RATE_LIMIT_REFRESH', url: '/auth/refresh', body: () => ({ refreshToken: 'x'.repeat(43) }) },
];

eachDatabase('each abuse-prone route has its own per-IP limit: 429 rate_limited with Retry-After, then it resets', async (t, kind) => {
  // A window no test outlasts for the limit itself; a one-second one, on the same database, for its reset.
  const database = await openTestDatabase(kind);
  t.teardown(() => database.drop());
  const { app } = await buildTestApp(t, kind, { database, env: Object.fromEntries(LIMITED_ROUTES.map((r) => [r.env, '3/1m'])) });
  for (const route of LIMITED_ROUTES) {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(app, route.url, route.body())).statusCode);
    t.notOk(statuses.includes(429), `${route.url}: the first 3 pass the limit`);
    const limited = await post(app, route.url, route.body());
    t.equal(limited.statusCode, 429, `${route.url}: the 4th is refused`);
    t.equal(limited.json().code, 'rate_limited');
    t.match(limited.headers['content-type'], /problem\+json/);
    const retryAfter = Number(limited.headers['retry-after']);
    t.ok(retryAfter >= 1 && retryAfter <= 60, `${route.url}: Retry-After ${retryAfter} is what is left of the window`);
    // Another client address has its own budget.
    const other = await app.inject({ method: 'POST', url: route.url, payload: route.body(), remoteAddress: '10.9.8.7' });
    t.not(other.statusCode, 429, `${route.url}: another address is not limited`);
  }

  const { app: brief } = await buildTestApp(t, kind, { database, env: Object.fromEntries(LIMITED_ROUTES.map((r) => [r.env, '1/1s'])) });
  for (const route of LIMITED_ROUTES) {
    const windowOpened = Date.now();
    await post(brief, route.url, route.body());
    const second = await post(brief, route.url, route.body());
    // Only a second request inside the window must be refused: a machine that stood still may have let it pass.
    if (Date.now() - windowOpened < 1000) t.equal(second.statusCode, 429, `${route.url}: the 2nd in a second is refused`);
  }
  await new Promise((r) => setTimeout(r, 1100));
  for (const route of LIMITED_ROUTES) {
    t.not((await post(brief, route.url, route.body())).statusCode, 429, `${route.url}: the limit reset after its window`);
  }
});

eachDatabase('X-Forwarded-For is believed only with TRUST_PROXY', async (t, kind) => {
  const forwarded = (ip: string) => ({ 'x-forwarded-for': ip });
  const database = await openTestDatabase(kind);
  t.teardown(() => database.drop());
  for (const trustProxy of ['false', 'true']) {
    const { app } = await buildTestApp(t, kind, { database, env: { RATE_LIMIT_FORGOT: '1/1m', TRUST_PROXY: trustProxy } });
    const first = await post(app, '/auth/password/forgot', { email: uniqueEmail() }, forwarded('203.0.113.1'));
    const second = await post(app, '/auth/password/forgot', { email: uniqueEmail() }, forwarded('203.0.113.2'));
    t.equal(first.statusCode, 202);
    t.equal(second.statusCode, trustProxy === 'true' ? 202 : 429, `TRUST_PROXY=${trustProxy}`);
    await app.close();
  }
});

eachDatabase('a request refused by the per-IP limit never counts as a failed login', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { RATE_LIMIT_LOGIN: '2/1m', LOGIN_MAX_FAILURES: '3' } });
  const user = await registerUser(app);
  for (let i = 0; i < 2; i++) t.equal((await post(app, '/auth/login', { email: user.email, password: 'wrong password' })).statusCode, 401);
  for (let i = 0; i < 5; i++) t.equal((await post(app, '/auth/login', { email: user.email, password: 'wrong password' })).statusCode, 429);
  // From another address, the right password still works: the refused tries did not lock the account.
  const fromElsewhere = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: user.email, password: PASSWORD }, remoteAddress: '10.1.1.1' });
  t.equal(fromElsewhere.statusCode, 200);
});

if (process.env.TEST_REDIS_URL) {
  tap.test('with REDIS_URL, two instances share one per-IP budget [postgres+redis]', async (t) => {
    const database = await openTestDatabase(process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite');
    t.teardown(() => database.drop());
    // A fresh window per run: the budget is keyed by route and address in the shared Redis.
    const address = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
    const env = { REDIS_URL: process.env.TEST_REDIS_URL!, RATE_LIMIT_FORGOT: '4/1m' };
    const a = await buildTestApp(t, 'postgres', { database, env });
    const b = await buildTestApp(t, 'postgres', { database, env });
    const send = (app: typeof a.app) =>
      app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email: uniqueEmail() }, remoteAddress: address });
    const statuses = [];
    for (const app of [a.app, b.app, a.app, b.app, a.app, b.app]) statuses.push((await send(app)).statusCode);
    t.same(statuses, [202, 202, 202, 202, 429, 429], 'the 5th request is refused whichever instance gets it');
  });
}

eachDatabase('password and email change have a per-IP limit of their own, set by RATE_LIMIT_LOGIN', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { RATE_LIMIT_LOGIN: '3/1m' } });
  const user = await registerUser(app);
  const headers = bearer(user.accessToken);
  const routes = [
    { url: '/auth/password/change', body: () => ({ currentPassword: 'wrong password', newPassword: 'a brand new passphrase' }) },
    { url: '/auth/email/change', body: () => ({ newEmail: uniqueEmail('moved'), password: 'wrong password' }) },
  ];
  for (const route of routes) {
    for (let i = 0; i < 3; i++) t.equal((await post(app, route.url, route.body(), headers)).statusCode, 401, `${route.url}: within the limit`);
    const limited = await post(app, route.url, route.body(), headers);
    t.equal(limited.statusCode, 429, `${route.url}: the 4th is refused`);
    t.equal(limited.json().code, 'rate_limited');
    t.ok(Number(limited.headers['retry-after']) >= 1, `${route.url}: Retry-After is set`);
    const other = await app.inject({ method: 'POST', url: route.url, payload: route.body(), headers, remoteAddress: '10.9.8.7' });
    t.equal(other.statusCode, 401, `${route.url}: another address is not limited`);
  }
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 200, "login's own budget is untouched");
});
