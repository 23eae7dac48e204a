import { eq } from 'drizzle-orm';
import { sessions } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, post, registerUser } from '../../helpers/users.js';

type Claims = ReturnType<typeof claimsOf> & { auth_time?: number; amr?: string[]; aal?: string };
const claims = (token: string) => claimsOf(token) as Claims;

eachDatabase('a password login is aal1 with amr pwd: the token, the session row, the user in the answer and /auth/me say so', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { email, user } = await registerUser(app);
  const before = Math.floor(Date.now() / 1000);
  const res = await post(app, '/auth/login', { email, password: PASSWORD });
  t.equal(res.statusCode, 200);
  const body = json(res);
  const token = claims(body.accessToken);
  t.equal(token.aal, 'aal1');
  t.same(token.amr, ['pwd']);
  t.ok(token.auth_time! >= before && token.auth_time! <= Math.ceil(Date.now() / 1000), 'auth_time is the login');
  t.match(body.user, { aal: 'aal1', mfaEnrolled: false });

  const [row] = await database.db.select().from(sessions).where(eq(sessions.id, token.sid));
  t.match(row, { aal: 'aal1', amr: ['pwd'] });
  t.equal(Math.floor(row!.authTime.getTime() / 1000), token.auth_time, 'the session row keeps the same auth_time');

  const me = await app.inject({ url: '/auth/me', headers: bearer(body.accessToken) });
  t.match(me.json(), { id: user.id, aal: 'aal1', mfaEnrolled: false });
});

eachDatabase('a refresh copies the session assurance and never moves auth_time', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { accessToken, refreshToken } = await registerUser(app);
  const sid = claims(accessToken).sid;
  // As if the session had proved a second factor two hours ago.
  const proved = new Date(Date.now() - 2 * 3600_000);
  proved.setMilliseconds(0);
  await database.db.update(sessions).set({ aal: 'aal2', amr: ['pwd', 'otp', 'mfa'], authTime: proved }).where(eq(sessions.id, sid));

  const first = json(await post(app, '/auth/refresh', { refreshToken }));
  const second = json(await post(app, '/auth/refresh', { refreshToken: first.refreshToken }));
  for (const [label, body] of [['first refresh', first], ['second refresh', second]] as const) {
    const token = claims(body.accessToken);
    t.equal(token.auth_time, proved.getTime() / 1000, `${label}: auth_time stays when the factor was proved`);
    t.same(token.amr, ['pwd', 'otp', 'mfa'], `${label}: amr copied`);
    t.equal(token.aal, 'aal2', `${label}: aal copied`);
    t.equal(body.user.aal, 'aal2');
  }
  const me = await app.inject({ url: '/auth/me', headers: bearer(second.accessToken) });
  t.equal(me.json().aal, 'aal2', '/auth/me shows the session level');
  const [row] = await database.db.select().from(sessions).where(eq(sessions.id, sid));
  t.equal(row!.authTime.getTime(), proved.getTime(), 'the row is unchanged');
});

eachDatabase('a token issued before assurance was recorded counts as aal1 and never as fresh', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const { accessToken } = await registerUser(app);
  const { sub, sid } = claims(accessToken);
  const old = forgeToken(validClaims({ sub, sid }));
  const me = await app.inject({ url: '/auth/me', headers: bearer(old) });
  t.equal(me.statusCode, 200);
  t.equal(me.json().aal, 'aal1');
  const change = await post(app, '/auth/email/change', { newEmail: 'new@example.com', password: PASSWORD }, bearer(old));
  assertProblem(t, change, 403, 'reauthentication_required', 'a fresh route');
});

eachDatabase('an email change needs a recent factor: 403 reauthentication_required with maxAge and methods', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { REAUTH_MAX_AGE: '5m' } });
  const { accessToken } = await registerUser(app);
  const { sub, sid } = claims(accessToken);
  const now = Math.floor(Date.now() / 1000);
  const stale = forgeToken(validClaims({ sub, sid }, { auth_time: now - 301, amr: ['pwd'], aal: 'aal1' }));
  const res = await post(app, '/auth/email/change', { newEmail: 'new@example.com', password: PASSWORD }, bearer(stale));
  const problem = assertProblem(t, res, 403, 'reauthentication_required') as unknown as { maxAge: number; methods: string[] };
  t.equal(problem.maxAge, 300);
  t.same(problem.methods, ['password'], 'a user without a second factor re-authenticates with the password');

  // A minute inside the limit: the margin keeps a slow machine from making it stale.
  const fresh = forgeToken(validClaims({ sub, sid }, { auth_time: now - 240, amr: ['pwd'], aal: 'aal1' }));
  const ok = await post(app, '/auth/email/change', { newEmail: 'new@example.com', password: PASSWORD }, bearer(fresh));
  t.equal(ok.statusCode, 202);
  const justLoggedIn = await post(app, '/auth/email/change', { newEmail: 'new2@example.com', password: PASSWORD }, bearer(accessToken));
  t.equal(justLoggedIn.statusCode, 202, 'a login is fresh');
});
