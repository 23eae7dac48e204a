import { refreshTokens } from '../../src/db/schema.js';
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

  const hashes = (await app.gatehouse.db.select({ hash: refreshTokens.tokenHash }).from(refreshTokens)).map((r) => r.hash);
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
