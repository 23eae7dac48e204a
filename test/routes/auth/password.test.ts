import type { FastifyInstance } from 'fastify';
import tap from 'tap';
import { userTokens } from '../../../src/db/schema.js';
import { hashToken, newOpaqueToken } from '../../../src/domain/tokens.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { refusedSmtpUrl, startSilentServer, startSmtpServer, tokenFrom } from '../../helpers/smtp.js';
import { PASSWORD, bearer, login, post, registerUser, uniqueEmail } from '../../helpers/users.js';

// A reset link is waited out in real time (a second at least) and mail arrives when it arrives:
// the tests run two at a time, so the waits overlap.
tap.jobs = 2;

const NEW_PASSWORD = 'a brand new passphrase';

eachDatabase('forgot and reset: the mailed token sets a new password once and ends every session', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, APP_URL: 'https://app.example.test' } });
  const user = await registerUser(app);
  const other = await login(app, user.email);

  t.equal((await post(app, '/auth/password/forgot', { email: ` ${user.email.toUpperCase()}` })).statusCode, 202);
  const mail = await mailbox.waitFor(user.email, /reset/i);
  t.match(mail.text, /https:\/\/app\.example\.test\/reset-password#token=/, 'the token in the fragment');
  t.notMatch(mail.text, /\?token=/, 'never in the query string');
  const token = tokenFrom(mail, 'reset-password');

  const short = await post(app, '/auth/password/reset', { token, password: 'short' });
  t.equal(short.statusCode, 400, 'the new password must satisfy the length rule');
  const reset = await post(app, '/auth/password/reset', { token, password: NEW_PASSWORD });
  t.equal(reset.statusCode, 204, 'a refused attempt did not use the token up');

  for (const session of [user, other]) {
    const me = await app.inject({ url: '/auth/me', headers: bearer(session.accessToken) });
    t.equal(me.statusCode, 401, 'every session is revoked');
    t.equal(me.json().code, 'session_revoked');
    t.equal((await post(app, '/auth/refresh', { refreshToken: session.refreshToken })).json().code, 'session_revoked');
  }
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 401, 'the old password is gone');
  t.equal((await post(app, '/auth/login', { email: user.email, password: NEW_PASSWORD })).statusCode, 200);

  const reused = await post(app, '/auth/password/reset', { token, password: 'yet another passphrase' });
  t.equal(reused.statusCode, 400);
  t.equal(reused.json().code, 'token_invalid', 'single use');
});

eachDatabase('an expired reset token answers token_expired', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, RESET_TOKEN_TTL: '1' } });
  const user = await registerUser(app);
  await post(app, '/auth/password/forgot', { email: user.email });
  const token = tokenFrom(await mailbox.waitFor(user.email, /reset/i), 'reset-password');
  await new Promise((r) => setTimeout(r, 1100));
  const res = await post(app, '/auth/password/reset', { token, password: NEW_PASSWORD });
  t.equal(res.statusCode, 400);
  t.equal(res.json().code, 'token_expired');
});

eachDatabase('forgot answers the same, at once, for known and unknown addresses', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  const known = await post(app, '/auth/password/forgot', { email: user.email });
  const unknown = await post(app, '/auth/password/forgot', { email: uniqueEmail('ghost') });
  t.equal(known.statusCode, 202);
  t.equal(unknown.statusCode, 202);
  t.equal(unknown.body, known.body);
  // Everything but what differs per request anyway: its id, its date, the per-IP counter.
  const comparable = (headers: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(x-request-id|date|x-ratelimit-)/.test(name)));
  t.same(comparable(unknown.headers), comparable(known.headers), 'the same headers');
  await mailbox.waitFor(user.email, /reset/i);
  t.equal(mailbox.messages.filter((m) => /reset/i.test(m.subject ?? '')).length, 1, 'only the known address got mail');
});

eachDatabase('a mail server that refuses or never answers changes no answer', async (t, kind) => {
  for (const [label, url] of [
    ['refused', await refusedSmtpUrl()],
    ['silent', await startSilentServer(t)],
  ] as const) {
    const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: url, SMTP_TIMEOUT: '1s' } });
    const started = Date.now();
    const registered = await post(app, '/auth/register', { email: uniqueEmail(label), password: PASSWORD });
    t.equal(registered.statusCode, 201, `${label}: register still answers 201`);
    const forgot = await post(app, '/auth/password/forgot', { email: registered.json().user.email });
    t.equal(forgot.statusCode, 202, `${label}: forgot still answers 202`);
    const resend = await post(app, '/auth/email/resend', { email: registered.json().user.email });
    t.equal(resend.statusCode, 202, `${label}: resend still answers 202`);
    t.ok(Date.now() - started < 3000, `${label}: the answers did not wait for the mail server`);
  }
});

eachDatabase('password change: wrong current password is refused; other sessions end, this one stays', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const other = await login(app, user.email);
  const headers = bearer(user.accessToken);

  const wrong = await post(app, '/auth/password/change', { currentPassword: 'not it at all', newPassword: NEW_PASSWORD }, headers);
  t.equal(wrong.statusCode, 401);
  t.equal(wrong.json().code, 'invalid_credentials');
  t.equal((await post(app, '/auth/password/change', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD })).statusCode, 401, 'needs a token');

  const changed = await post(app, '/auth/password/change', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, headers);
  t.equal(changed.statusCode, 204);
  t.equal((await app.inject({ url: '/auth/me', headers })).statusCode, 200, 'this session stays');
  t.equal((await post(app, '/auth/refresh', { refreshToken: user.refreshToken })).statusCode, 200, 'and can refresh');
  const revoked = await app.inject({ url: '/auth/me', headers: bearer(other.accessToken) });
  t.equal(revoked.statusCode, 401, 'the other session is revoked');
  t.equal(revoked.json().code, 'session_revoked');
  t.equal((await post(app, '/auth/login', { email: user.email, password: NEW_PASSWORD })).statusCode, 200);
});

/** A reset link made as a second instance would make it while this one mails another: both live at once. */
async function parallelResetLink(app: FastifyInstance, userId: string): Promise<string> {
  const token = newOpaqueToken();
  const now = new Date();
  await app.gatehouse.db.insert(userTokens).values({
    userId,
    purpose: 'reset_password',
    tokenHash: hashToken(token),
    createdAt: now,
    expiresAt: new Date(now.getTime() + 3600_000),
  });
  return token;
}

eachDatabase('a password reset ends every other reset link still out', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  await post(app, '/auth/password/forgot', { email: user.email });
  const mailed = tokenFrom(await mailbox.waitFor(user.email, /reset/i), 'reset-password');
  const other = await parallelResetLink(app, user.user.id);

  t.equal((await post(app, '/auth/password/reset', { token: mailed, password: NEW_PASSWORD })).statusCode, 204);
  const old = await post(app, '/auth/password/reset', { token: other, password: 'the intruder passphrase' });
  t.equal(old.statusCode, 400, 'the other link no longer sets a password');
  t.equal(old.json().code, 'token_invalid');
  t.equal((await post(app, '/auth/login', { email: user.email, password: NEW_PASSWORD })).statusCode, 200, 'the reset password stands');
});

eachDatabase('a password change ends every reset link still out', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  await post(app, '/auth/password/forgot', { email: user.email });
  const mailed = tokenFrom(await mailbox.waitFor(user.email, /reset/i), 'reset-password');
  const other = await parallelResetLink(app, user.user.id);

  const changed = await post(app, '/auth/password/change', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, bearer(user.accessToken));
  t.equal(changed.statusCode, 204);
  for (const token of [mailed, other]) {
    const res = await post(app, '/auth/password/reset', { token, password: 'the intruder passphrase' });
    t.equal(res.statusCode, 400, 'an old reset link no longer sets a password');
    t.equal(res.json().code, 'token_invalid');
  }
  t.equal((await post(app, '/auth/login', { email: user.email, password: NEW_PASSWORD })).statusCode, 200, 'the changed password stands');
});

eachDatabase('a password reset or change cancels a pending email change: its link then answers 400', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const pendingChange = async (user: { accessToken: string }, password: string) => {
    const newEmail = uniqueEmail('intruder');
    const asked = await post(app, '/auth/email/change', { newEmail, password }, bearer(user.accessToken));
    t.equal(asked.statusCode, 202);
    return tokenFrom(await mailbox.waitFor(newEmail, /new email/i), 'confirm-email');
  };

  const reset = await registerUser(app);
  const byReset = await pendingChange(reset, PASSWORD);
  await post(app, '/auth/password/forgot', { email: reset.email });
  const resetToken = tokenFrom(await mailbox.waitFor(reset.email, /reset/i), 'reset-password');
  t.equal((await post(app, '/auth/password/reset', { token: resetToken, password: NEW_PASSWORD })).statusCode, 204);
  const afterReset = await post(app, '/auth/email/confirm', { token: byReset });
  t.equal(afterReset.statusCode, 400, 'after a reset');
  t.equal(afterReset.json().code, 'token_invalid');
  t.equal((await login(app, reset.email, NEW_PASSWORD)).user.email, reset.email, 'the address is unchanged');

  const changed = await registerUser(app);
  const byChange = await pendingChange(changed, PASSWORD);
  const headers = bearer(changed.accessToken);
  t.equal((await post(app, '/auth/password/change', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, headers)).statusCode, 204);
  const afterChange = await post(app, '/auth/email/confirm', { token: byChange });
  t.equal(afterChange.statusCode, 400, 'after a change');
  t.equal(afterChange.json().code, 'token_invalid');
  t.equal((await app.inject({ url: '/auth/me', headers })).json().email, changed.email, 'the address is unchanged');
});
