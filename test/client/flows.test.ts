import { createGatehouseClient, isMfaRequired, memoryStore } from '../../src/client/index.js';
import { issueUserToken } from '../../src/domain/user-tokens.js';
import { eachDatabase } from '../helpers/app.js';
import { sessionOpened } from '../helpers/client.js';
import { enrolTotp } from '../helpers/mfa.js';
import { adminToken } from '../helpers/admin.js';
import { freePort } from '../helpers/servers.js';
import { listenTestApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

const NEW_PASSWORD = 'a completely different passphrase';

eachDatabase('register, me, logout, login, logout: the main flow in token mode', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const store = memoryStore();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  const email = uniqueEmail();

  const registered = await client.register({ email, password: PASSWORD, name: 'Ada' });
  t.equal(registered.user.email, email);
  t.type(registered.refreshToken, 'string', 'token mode: the refresh token comes in the body');
  t.equal(await store.get(), registered.refreshToken, 'and is kept in the store');
  t.equal(client.user?.name, 'Ada', 'the user is at hand');
  t.equal(await client.accessToken(), registered.accessToken);
  t.match(await client.me(), { email, name: 'Ada', roles: ['user'] });

  await client.logout();
  t.equal(await store.get(), undefined, 'logout empties the store');
  t.equal(client.user, undefined);
  await t.rejects(client.me(), { code: 'token_missing', status: 401 });
  const reused = await fetch(`${server.baseUrl}/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refreshToken: registered.refreshToken }),
  });
  t.equal(((await reused.json()) as { code: string }).code, 'session_revoked', 'the server ended the session');

  const loggedIn = sessionOpened(await client.login({ email, password: PASSWORD }));
  t.equal(loggedIn.user.email, email);
  t.equal((await client.me()).loginCount, 2);
  await client.logout();
  await client.logout();
  t.pass('a logout without a session does nothing');
});

eachDatabase('logout revokes the session with the access token when no refresh token is stored', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const store = memoryStore();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  const { accessToken } = await client.register({ email: uniqueEmail(), password: PASSWORD });
  await store.remove();
  await client.logout();
  const me = await fetch(`${server.baseUrl}/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  t.equal(((await me.json()) as { code: string }).code, 'session_revoked');
});

eachDatabase('logout forgets the session here even when the server cannot be reached', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const store = memoryStore();
  const online = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  await online.register({ email: uniqueEmail(), password: PASSWORD });
  const offline = createGatehouseClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, storage: store });
  await t.rejects(offline.logout(), TypeError, 'the network error is passed on');
  t.equal(await store.get(), undefined, 'and the stored token is gone all the same');

  const stale = memoryStore();
  await stale.set('y'.repeat(43));
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: stale });
  await client.logout();
  t.equal(await stale.get(), undefined, 'a refresh token the server does not know logs out quietly');
});

eachDatabase('profile, password, email and session methods', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const email = uniqueEmail();
  const client = createGatehouseClient({ baseUrl: server.baseUrl });
  await client.register({ email, password: PASSWORD });
  const other = createGatehouseClient({ baseUrl: server.baseUrl });
  await other.login({ email, password: PASSWORD });

  t.equal((await client.updateMe({ name: 'Grace' })).name, 'Grace');
  t.equal(client.user?.name, 'Grace', 'the user at hand follows');

  const sessions = await client.listSessions();
  t.equal(sessions.length, 2);
  const theirs = sessions.find((s) => !s.current)!;
  await client.revokeSession(theirs.id);
  await t.rejects(other.me(), { code: 'session_revoked' }, 'the other session is over');
  t.equal((await client.listSessions()).length, 1);

  await t.rejects(
    client.changePassword({ currentPassword: 'wrong password here', newPassword: NEW_PASSWORD }),
    { code: 'invalid_credentials', status: 401 },
  );
  await client.changePassword({ currentPassword: PASSWORD, newPassword: NEW_PASSWORD });
  t.equal((await client.me()).email, email, 'this session survives the change');
  await client.logout();
  await t.rejects(client.login({ email, password: PASSWORD }), { code: 'invalid_credentials' });
  await client.login({ email, password: NEW_PASSWORD });

  await client.changeEmail({ newEmail: uniqueEmail('new'), password: NEW_PASSWORD });
  await client.forgotPassword({ email });
  await client.resendConfirmation({ email });
  await t.rejects(client.resetPassword({ token: 'not-a-token', password: NEW_PASSWORD }), { code: 'token_invalid', status: 400 });
  await t.rejects(client.confirmEmail({ token: 'not-a-token' }), { code: 'token_invalid', status: 400 });
});

eachDatabase('mailed-link methods: confirm the email, reset the password', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const { gatehouse } = server.app;
  const client = createGatehouseClient({ baseUrl: server.baseUrl });
  const email = uniqueEmail();
  const { user } = await client.register({ email, password: PASSWORD });
  // The confirmation mail of the registration issues a link of its own, which would replace ours.
  await gatehouse.background.idle();
  const confirm = await issueUserToken(gatehouse.db, { userId: user.id, purpose: 'confirm_email', ttlSeconds: 60 });
  t.ok((await client.confirmEmail({ token: confirm })).emailConfirmedAt, 'confirmed');
  const reset = await issueUserToken(gatehouse.db, { userId: user.id, purpose: 'reset_password', ttlSeconds: 60 });
  await client.resetPassword({ token: reset, password: NEW_PASSWORD });
  await t.rejects(client.me(), { code: 'session_revoked' }, 'a reset logs out every session');
  t.equal(sessionOpened(await client.login({ email, password: NEW_PASSWORD })).user.email, email);
});

eachDatabase('the raw client reaches every operation, with the token and typed results', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const user = createGatehouseClient({ baseUrl: server.baseUrl });
  await user.register({ email: uniqueEmail(), password: PASSWORD });
  const refused = await user.api.GET('/admin/users', { params: { query: { limit: 5 } } });
  t.equal(refused.response.status, 403);
  t.equal(refused.error?.code, 'permission_denied', 'errors come back as { error } with their code');

  const admin = await adminToken(server.app);
  const client = createGatehouseClient({ baseUrl: server.baseUrl });
  await client.login({ email: admin.email, password: PASSWORD });
  const { data } = await client.api.GET('/admin/users', { params: { query: { limit: 5 } } });
  t.ok(data && data.items.length >= 2, 'the admin lists users');
  const health = await client.api.GET('/health');
  t.equal(health.data?.status, 'ok');

  const service = await client.api.GET('/auth/me', { headers: { authorization: `Bearer ${admin.accessToken}` } });
  t.equal(service.data?.email, admin.email, 'an Authorization header of the caller is left as it is');
});

eachDatabase('a user with a second factor: login answers mfaRequired without a session, verifyMfa opens it', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: memoryStore() });
  const email = uniqueEmail();
  const registered = await client.register({ email, password: PASSWORD });
  const { authenticator } = await enrolTotp(server.app, registered.accessToken!);
  await client.logout();

  const answer = await client.login({ email, password: PASSWORD });
  t.ok(isMfaRequired(answer), 'the password alone opens no session');
  if (!isMfaRequired(answer)) return;
  t.same(answer.methods.sort(), ['recovery_code', 'totp']);
  t.equal(client.user, undefined, 'no user yet');
  await t.rejects(client.me(), { code: 'token_missing' }, 'and no token');

  const tokens = await client.verifyMfa({ mfaToken: answer.mfaToken, method: 'totp', code: await authenticator.next() });
  t.equal(tokens.user.email, email);
  t.match(await client.me(), { email, aal: 'aal2', mfaEnrolled: true }, 'the session is open, at aal2');
  await t.rejects(
    client.verifyMfa({ mfaToken: answer.mfaToken, method: 'totp', code: await authenticator.next() }),
    { code: 'mfa_token_invalid', status: 401 },
    'an mfaToken opens one session only',
  );
});
