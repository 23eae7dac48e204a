import { eq } from 'drizzle-orm';
import tap from 'tap';
import { userTokens } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { startSmtpServer, tokenFrom } from '../../helpers/smtp.js';
import { PASSWORD, bearer, json, post, registerUser, uniqueEmail } from '../../helpers/users.js';

// Links are waited out in real time (an expiry, a second at least) and mail arrives when it
// arrives: the tests run two at a time, so the waits overlap.
tap.jobs = 2;

const APP_URL = 'https://app.example.test';

eachDatabase('sign-up mails a confirmation link that confirms the address once', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, APP_URL, MAIL_FROM: 'Gatehouse <gh@example.test>' } });
  const user = await registerUser(app);
  t.equal(user.user.emailConfirmedAt, null);
  const mail = await mailbox.waitFor(user.email, /confirm/i);
  t.match(mail.from?.text, /gh@example\.test/, 'sent from MAIL_FROM');
  t.ok(mail.html, 'has an HTML part');
  t.ok(mail.text, 'has a plain-text part');
  t.match(mail.text, new RegExp(`${APP_URL}/confirm-email#token=`), 'the link points at APP_URL, the token in the fragment');
  t.notMatch(mail.text, /\?token=/, 'never in the query string');
  const token = tokenFrom(mail, 'confirm-email');

  const confirmed = await post(app, '/auth/email/confirm', { token });
  t.equal(confirmed.statusCode, 200);
  t.ok(json<{ user: { emailConfirmedAt: string } }>(confirmed).user.emailConfirmedAt, 'confirmed');
  const me = await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) });
  t.ok(me.json().emailConfirmedAt, '/auth/me shows it at once');

  const again = await post(app, '/auth/email/confirm', { token });
  t.equal(again.statusCode, 400, 'single use');
  t.equal(again.json().code, 'token_invalid');
  const unknown = await post(app, '/auth/email/confirm', { token: 'x'.repeat(43) });
  t.equal(unknown.json().code, 'token_invalid');
  t.equal(unknown.statusCode, 400);
});

eachDatabase('an expired confirmation link answers token_expired', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, CONFIRM_TOKEN_TTL: '1' } });
  const user = await registerUser(app);
  const token = tokenFrom(await mailbox.waitFor(user.email), 'confirm-email');
  await new Promise((r) => setTimeout(r, 1100));
  const res = await post(app, '/auth/email/confirm', { token });
  t.equal(res.statusCode, 400);
  t.equal(res.json().code, 'token_expired');
});

eachDatabase('with REQUIRE_EMAIL_CONFIRMATION, no session until the address is confirmed', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, REQUIRE_EMAIL_CONFIRMATION: 'true' } });
  const email = uniqueEmail();
  const res = await post(app, '/auth/register', { email, password: PASSWORD });
  t.equal(res.statusCode, 201);
  t.same(Object.keys(res.json()), ['user'], 'the user and no tokens');

  const early = await post(app, '/auth/login', { email, password: PASSWORD });
  t.equal(early.statusCode, 403);
  t.equal(early.json().code, 'email_not_confirmed');
  const wrong = await post(app, '/auth/login', { email, password: 'wrong password!' });
  t.equal(wrong.json().code, 'invalid_credentials', 'a wrong password still says only that');

  // Resend: the newest link works, the older one no longer does.
  const first = tokenFrom(await mailbox.waitFor(email), 'confirm-email');
  t.equal((await post(app, '/auth/email/resend', { email })).statusCode, 202);
  const second = tokenFrom(await mailbox.waitFor(email), 'confirm-email');
  t.not(first, second);
  t.equal((await post(app, '/auth/email/confirm', { token: first })).json().code, 'token_invalid');
  t.equal((await post(app, '/auth/email/confirm', { token: second })).statusCode, 200);
  t.equal((await post(app, '/auth/login', { email, password: PASSWORD })).statusCode, 200);
});

eachDatabase('resend answers the same for known and unknown addresses', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  const known = await post(app, '/auth/email/resend', { email: user.email });
  const unknown = await post(app, '/auth/email/resend', { email: uniqueEmail('ghost') });
  t.equal(known.statusCode, 202);
  t.equal(unknown.statusCode, known.statusCode);
  t.equal(unknown.body, known.body);
  t.equal(unknown.headers['content-type'], known.headers['content-type']);
  await app.gatehouse.background.idle();
  await app.gatehouse.mailer.idle();
  t.notOk(mailbox.messages.some((m) => JSON.stringify(m.to).includes('ghost')), 'no mail to an unknown address');
});

eachDatabase('email change: mailed to the new address, applied only when its link is used', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  const headers = bearer(user.accessToken);
  const newEmail = uniqueEmail('moved');

  const wrong = await post(app, '/auth/email/change', { newEmail, password: 'not my password' }, headers);
  t.equal(wrong.statusCode, 401);
  t.equal(wrong.json().code, 'invalid_credentials');
  t.equal((await post(app, '/auth/email/change', { newEmail, password: PASSWORD })).statusCode, 401, 'needs a token');

  const asked = await post(app, '/auth/email/change', { newEmail: ` ${newEmail.toUpperCase()} `, password: PASSWORD }, headers);
  t.equal(asked.statusCode, 202);
  const mail = await mailbox.waitFor(newEmail, /new email/i);
  t.equal((await app.inject({ url: '/auth/me', headers })).json().email, user.email, 'unchanged until confirmed');
  const confirmed = await post(app, '/auth/email/confirm', { token: tokenFrom(mail, 'confirm-email') });
  t.equal(confirmed.statusCode, 200);
  t.equal(confirmed.json().user.email, newEmail, 'the answer shows the new email');
  t.equal((await app.inject({ url: '/auth/me', headers })).json().email, newEmail);
  t.equal((await post(app, '/auth/login', { email: newEmail, password: PASSWORD })).statusCode, 200);
  t.equal((await post(app, '/auth/login', { email: user.email, password: PASSWORD })).statusCode, 401);
});

eachDatabase('PATCH /auth/me renames the caller', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const headers = bearer(user.accessToken);
  const res = await app.inject({ method: 'PATCH', url: '/auth/me', headers, payload: { name: 'Zoë' } });
  t.equal(res.statusCode, 200);
  t.equal(res.json().name, 'Zoë');
  t.equal((await app.inject({ url: '/auth/me', headers })).json().name, 'Zoë');
  const bad = await app.inject({ method: 'PATCH', url: '/auth/me', headers, payload: { email: 'x@y.z' } });
  t.equal(bad.statusCode, 400, 'the email is not changed here');
});

/** What a message says in both its parts. */
const mailText = (mail: { text?: string; html?: string | false }) => `${mail.text ?? ''}\n${mail.html || ''}`;

eachDatabase('email change: the current address is told of the request, and the old address of the change, with no token', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, APP_URL } });
  const user = await registerUser(app);
  await mailbox.waitFor(user.email, /confirm/i);
  const newEmail = uniqueEmail('moved');

  t.equal((await post(app, '/auth/email/change', { newEmail, password: PASSWORD }, bearer(user.accessToken))).statusCode, 202);
  const notice = await mailbox.waitFor(user.email, /change of your email address was requested/i);
  const token = tokenFrom(await mailbox.waitFor(newEmail, /new email/i), 'confirm-email');
  t.match(notice.text, newEmail, 'the notice names the new address');
  t.match(notice.text, /not you.*reset your password/i, 'and says what to do if it was not them');
  t.notOk(mailText(notice).includes(token), 'the notice does not carry the confirmation token');
  t.notMatch(mailText(notice), /token=/, 'nor any link with a token');

  t.equal((await post(app, '/auth/email/confirm', { token })).statusCode, 200);
  const changed = await mailbox.waitFor(user.email, /was changed/i);
  t.match(changed.text, newEmail, 'the old address learns the new one');
  t.notMatch(mailText(changed), /token=/, 'no link with a token');
  t.notOk(mailText(changed).includes(token));
});

eachDatabase('email change to a taken address: the same 202, nothing to its owner, and no link that could ever complete it', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  const owner = await registerUser(app);
  const headers = bearer(user.accessToken);
  await app.gatehouse.background.idle();
  await app.gatehouse.mailer.idle();
  const before = mailbox.messages.length;

  const taken = await post(app, '/auth/email/change', { newEmail: owner.email, password: PASSWORD }, headers);
  const freeEmail = uniqueEmail('free');
  const free = await post(app, '/auth/email/change', { newEmail: freeEmail, password: PASSWORD }, headers);
  t.equal(taken.statusCode, 202);
  t.equal(taken.statusCode, free.statusCode);
  t.equal(taken.body, free.body, 'the same body');
  const comparable = (headers: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(x-request-id|date|x-ratelimit-)/.test(name)));
  t.same(comparable(taken.headers), comparable(free.headers), 'the same headers');

  await mailbox.waitFor(freeEmail, /new email/i);
  await app.gatehouse.background.idle();
  await app.gatehouse.mailer.idle();
  const sent = mailbox.messages.slice(before);
  t.notOk(sent.some((m) => JSON.stringify(m.to).includes(owner.email)), 'the taken address got nothing');
  const notices = sent.filter((m) => JSON.stringify(m.to).includes(user.email));
  t.equal(notices.length, 2, 'the current address got a notice each time');
  const [first, second] = notices.map((m) => m.text?.replace(owner.email, '<new>').replace(freeEmail, '<new>'));
  t.equal(first, second, 'the two notices read the same but for the address');
  t.equal(sent.length, 3, 'and only the free address got a link');

  const stored = await app.gatehouse.db.select().from(userTokens).where(eq(userTokens.newEmail, owner.email));
  t.same(stored, [], 'nothing stored that could complete a change to the taken address');
  t.equal((await app.inject({ url: '/auth/me', headers })).json().email, user.email, 'the address is unchanged');
});
