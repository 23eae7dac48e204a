import { isNotNull } from 'drizzle-orm';
import { sessions } from '../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../helpers/app.js';
import { startSmtpServer, tokenFrom } from '../helpers/smtp.js';
import { PASSWORD, bearer, post, registerUser } from '../helpers/users.js';

eachDatabase('no log line carries a password, a token or a hash', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const logLines: string[] = [];
  const { app, config } = await buildTestApp(t, kind, { logLines, env: { SMTP_URL: mailbox.url } });
  const user = await registerUser(app);
  const headers = { ...bearer(user.accessToken), cookie: `gatehouse_refresh=${user.refreshToken}`, 'x-csrf-token': 'not-the-token' };
  await app.inject({ url: '/auth/me', headers });
  const refreshed = await post(app, '/auth/refresh', { refreshToken: user.refreshToken });
  await post(app, '/auth/login', { email: user.email, password: 'a wrong password' });
  await post(app, '/auth/login', { email: user.email, password: PASSWORD });
  await post(app, '/auth/password/forgot', { email: user.email });
  const reset = tokenFrom(await mailbox.waitFor(user.email, /reset/i), 'reset-password');
  await post(app, '/auth/password/reset', { token: reset, password: 'another fine passphrase' });
  await post(app, '/auth/logout', { refreshToken: refreshed.json().refreshToken });
  await app.gatehouse.background.idle();

  const hashes = (await app.gatehouse.db.select({ hash: sessions.refreshTokenHash }).from(sessions).where(isNotNull(sessions.refreshTokenHash))).map((r) => r.hash!);
  const secrets = [
    PASSWORD,
    'a wrong password',
    'another fine passphrase',
    user.accessToken,
    user.refreshToken,
    refreshed.json().accessToken,
    refreshed.json().refreshToken,
    reset,
    config.jwtSecret,
    config.passwordPepper,
    ...hashes,
  ];
  t.ok(logLines.length > 10, `${logLines.length} log lines were written`);
  const everything = logLines.join('\n');
  for (const secret of secrets) t.notOk(everything.includes(secret), 'a secret in the logs');
  t.notMatch(everything, /\$2[aby]\$\d\d\$/, 'no bcrypt hash in the logs');
});

eachDatabase('a token, access_token or code in the query string is redacted from request logs', async (t, kind) => {
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines });
  await app.inject({ url: '/auth/me?token=secret-one&access_token=secret-two&code=secret-three&page=2' });
  await app.inject({ url: '/health?%74oken=secret-four&TOKEN=secret-five' });
  await app.inject({ url: '/no-such-route?token=secret-six' });

  const everything = logLines.join('\n');
  for (const secret of ['secret-one', 'secret-two', 'secret-three', 'secret-four', 'secret-five', 'secret-six']) {
    t.notOk(everything.includes(secret), `${secret} is in no log line`);
  }
  const urls = logLines.map((line) => (JSON.parse(line) as { req?: { url: string } }).req?.url).filter(Boolean);
  t.ok(urls.includes('/auth/me?token=[redacted]&access_token=[redacted]&code=[redacted]&page=2'), 'the logged URL keeps its shape');
  t.ok(urls.includes('/health?%74oken=[redacted]&TOKEN=[redacted]'), 'whatever the case or percent-encoding of the name');
});

eachDatabase('in production the log mail transport logs who got which mail, never its link', async (t, kind) => {
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines, env: { NODE_ENV: 'production', MAIL_TRANSPORT: 'log' } });
  const user = await registerUser(app);
  await post(app, '/auth/password/forgot', { email: user.email });
  await app.gatehouse.background.idle();
  await app.gatehouse.mailer.idle();

  const mails = logLines.map((line) => JSON.parse(line) as { mail?: Record<string, string> }).flatMap((line) => (line.mail ? [line.mail] : []));
  t.ok(mails.some((mail) => mail.to === user.email && /reset/i.test(mail.subject ?? '')), 'the reset mail is logged with its recipient and subject');
  for (const mail of mails) t.same(Object.keys(mail).sort(), ['subject', 'to'], 'no link, text or html');
  t.notMatch(logLines.join('\n'), /token=|reset-password/, 'no link in any line');
});

eachDatabase('outside production the log mail transport logs the link a developer follows', async (t, kind) => {
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines });
  const user = await registerUser(app);
  await post(app, '/auth/password/forgot', { email: user.email });
  await app.gatehouse.background.idle();
  await app.gatehouse.mailer.idle();

  const mails = logLines.map((line) => JSON.parse(line) as { mail?: Record<string, string> }).flatMap((line) => (line.mail ? [line.mail] : []));
  t.ok(mails.some((mail) => mail.to === user.email && /reset-password/.test(mail.link ?? '')), 'the reset link is in the log');
});
