import type { LightMyRequestResponse } from 'fastify';
import tap from 'tap';
import { buildTestApp, eachDatabase, type Test } from '../../helpers/app.js';
import { startSmtpServer, tokenFrom } from '../../helpers/smtp.js';
import { PASSWORD, bearer, post, registerUser, uniqueEmail } from '../../helpers/users.js';

// The lockouts are waited out in real time: the tests run two at a time, so the waits overlap.
tap.jobs = 2;

const WRONG = 'definitely not it';
const LOCKOUT_ENV = { LOGIN_MAX_FAILURES: '5', LOGIN_FAILURE_WINDOW: '15m', LOGIN_LOCKOUT: '2s', LOGIN_LOCKOUT_MAX: '1h' };

/**
 * `res` is refused by a lockout of `seconds` that began after `since` (Date.now()), and its
 * Retry-After is what is left of it: at most all of it, at least what a slow machine left. When
 * the machine stood still longer than the lockout, it may be over: nothing can be asserted then.
 */
function assertLocked(t: Test, res: LightMyRequestResponse, seconds: number, since: number, label = 'locked'): void {
  const elapsed = (Date.now() - since) / 1000;
  if (elapsed >= seconds) {
    t.comment(`${label}: ${elapsed.toFixed(1)} s passed, the ${seconds} s lockout may be over: not checked`);
    return;
  }
  t.equal(res.statusCode, 429, label);
  t.equal(res.json().code, 'login_locked', label);
  const retryAfter = Number(res.headers['retry-after']);
  const least = Math.max(1, Math.ceil(seconds - elapsed));
  t.ok(retryAfter >= least && retryAfter <= seconds, `${label}: Retry-After ${retryAfter}, between ${least} and ${seconds}`);
}

/** Sleeps until a lockout of `seconds` that began before `until` (Date.now()) is surely over. */
const pastLockout = (seconds: number, until: number) => new Promise((r) => setTimeout(r, Math.max(0, until + seconds * 1000 + 100 - Date.now())));

eachDatabase('after 5 failures the email is locked, even for the right password, and unlocks after LOGIN_LOCKOUT', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: LOCKOUT_ENV });
  const user = await registerUser(app);
  const since = Date.now();
  for (let i = 0; i < 5; i++) {
    t.equal((await post(app, '/auth/login', { email: user.email, password: WRONG })).json().code, 'invalid_credentials');
  }
  assertLocked(t, await post(app, '/auth/login', { email: user.email, password: PASSWORD }), 2, since);
  await pastLockout(2, Date.now());
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 200, 'unlocked after the lockout');
});

eachDatabase('an unknown email is locked out exactly like a known one', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { ...LOCKOUT_ENV, LOGIN_LOCKOUT: '1h' } });
  const user = await registerUser(app);
  const ghost = uniqueEmail('ghost');
  const answers = [];
  for (const email of [user.email, ghost]) {
    const since = Date.now();
    for (let i = 0; i < 5; i++) await post(app, '/auth/login', { email, password: WRONG });
    const answer = await post(app, '/auth/login', { email, password: WRONG });
    // The same Retry-After but for the time that passed between the two lockouts.
    assertLocked(t, answer, 3600, since, email === ghost ? 'unknown' : 'known');
    answers.push(answer);
  }
  const [known, unknown] = answers.map((r) => ({ status: r.statusCode, ...r.json() }));
  for (const field of ['status', 'code', 'title', 'detail'] as const) {
    t.equal(unknown![field], known![field], `same ${field}`);
  }
  t.equal(known!.code, 'login_locked');
});

eachDatabase('each further lockout doubles, and a successful login clears the count', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: LOCKOUT_ENV });
  const user = await registerUser(app);
  const failTimes = async (n: number) => {
    for (let i = 0; i < n; i++) await post(app, '/auth/login', { email: user.email, password: WRONG });
  };
  let since = Date.now();
  await failTimes(5);
  assertLocked(t, await post(app, '/auth/login', { email: user.email, password: WRONG }), 2, since, 'first lockout');
  await pastLockout(2, Date.now());
  since = Date.now();
  await failTimes(5);
  // Unless the machine stood still for 2 s, at least 3 s are left: more than a first lockout has.
  assertLocked(t, await post(app, '/auth/login', { email: user.email, password: WRONG }), 4, since, 'second lockout doubles');
  await pastLockout(4, Date.now());

  // Four failures, then the right password: the count starts again from zero.
  await failTimes(4);
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 200);
  await failTimes(4);
  since = Date.now();
  t.equal((await post(app, '/auth/login', { email: user.email, password: WRONG })).json().code, 'invalid_credentials', 'not locked: the success cleared the count');
  assertLocked(t, await post(app, '/auth/login', { email: user.email, password: WRONG }), 2, since, 'and the doubling');
});

eachDatabase('a password reset clears the lockout', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { ...LOCKOUT_ENV, LOGIN_LOCKOUT: '1h', SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  for (let i = 0; i < 6; i++) await post(app, '/auth/login', { email: user.email, password: WRONG });
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).json().code, 'login_locked');
  await post(app, '/auth/password/forgot', { email: user.email });
  const token = tokenFrom(await mailbox.waitFor(user.email, /reset/i), 'reset-password');
  t.equal((await post(app, '/auth/password/reset', { token, password: 'my fresh passphrase' })).statusCode, 204);
  t.equal((await post(app, '/auth/login', { email: user.email, password: 'my fresh passphrase' })).statusCode, 200);
});

eachDatabase('50 wrong guesses in parallel: exactly 5 reach the password check, the rest are locked out', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { ...LOCKOUT_ENV, LOGIN_LOCKOUT: '1h' } });
  const user = await registerUser(app);
  const answers = await Promise.all(
    Array.from({ length: 50 }, () => post(app, '/auth/login', { email: user.email, password: WRONG })),
  );
  const codes = answers.map((r) => r.json().code as string);
  t.equal(codes.filter((c) => c === 'invalid_credentials').length, 5, '5 guesses were checked');
  t.equal(codes.filter((c) => c === 'login_locked').length, 45, '45 were refused without a check');
  t.notOk(answers.some((r) => r.statusCode >= 500));
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).json().code, 'login_locked', 'the account is locked');
});

eachDatabase('lockout counters are shared by two instances on one database', async (t, kind) => {
  const first = await buildTestApp(t, kind, { env: LOCKOUT_ENV });
  const second = await buildTestApp(t, kind, { env: LOCKOUT_ENV, database: first.database });
  const user = await registerUser(first.app);
  for (const app of [first.app, second.app, first.app, second.app, first.app]) {
    t.equal((await post(app, '/auth/login', { email: user.email, password: WRONG })).json().code, 'invalid_credentials');
  }
  t.equal((await post(second.app, '/auth/login', { email: user.email, password: PASSWORD })).json().code, 'login_locked');
});

const changeRoutes = (newPassword = 'a brand new passphrase') => [
  { url: '/auth/password/change', body: (password: string) => ({ currentPassword: password, newPassword }) },
  { url: '/auth/email/change', body: (password: string) => ({ newEmail: uniqueEmail('moved'), password }) },
];

eachDatabase('wrong passwords on password and email change count toward the login lockout', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: LOCKOUT_ENV });
  const user = await registerUser(app);
  const headers = bearer(user.accessToken);
  const [passwordChange, emailChange] = changeRoutes();
  const since = Date.now();
  for (const route of [passwordChange!, emailChange!, passwordChange!, emailChange!, passwordChange!]) {
    const res = await post(app, route.url, route.body(WRONG), headers);
    t.equal(res.statusCode, 401, `${route.url}: a wrong password`);
    t.equal(res.json().code, 'invalid_credentials');
  }
  assertLocked(t, await post(app, '/auth/login', { email: user.email, password: PASSWORD }), 2, since, 'login is locked, even with the right password');
  for (const route of changeRoutes()) {
    assertLocked(t, await post(app, route.url, route.body(PASSWORD), headers), 2, since, `${route.url}: locked too`);
  }
  await pastLockout(2, Date.now());
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 200, 'unlocked after the lockout');
});

eachDatabase('a lockout from login refuses password and email change, even with the right password', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { ...LOCKOUT_ENV, LOGIN_LOCKOUT: '1h', SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  await mailbox.waitFor(user.email, /confirm/i);
  for (let i = 0; i < 5; i++) await post(app, '/auth/login', { email: user.email, password: WRONG });
  for (const route of changeRoutes()) {
    const res = await post(app, route.url, route.body(PASSWORD), bearer(user.accessToken));
    t.equal(res.statusCode, 429, `${route.url}: refused while locked`);
    t.equal(res.json().code, 'login_locked');
    t.match(res.headers['content-type'], /problem\+json/);
    t.ok(Number(res.headers['retry-after']) > 3500, `${route.url}: Retry-After is the lockout's`);
  }
  await app.gatehouse.background.idle();
  await app.gatehouse.mailer.idle();
  t.equal(mailbox.messages.length, 1, 'no email change was started: no notice, no link');
});

eachDatabase('the right password on a change route starts the failure count afresh, as a login does', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: LOCKOUT_ENV });
  const user = await registerUser(app);
  const headers = bearer(user.accessToken);
  for (let i = 0; i < 4; i++) await post(app, '/auth/login', { email: user.email, password: WRONG });
  t.equal((await post(app, '/auth/email/change', { newEmail: uniqueEmail('moved'), password: PASSWORD }, headers)).statusCode, 202);
  for (let i = 0; i < 4; i++) await post(app, '/auth/login', { email: user.email, password: WRONG });
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 200, 'not locked: the count had started again');
});
