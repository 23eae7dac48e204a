import { AUDIT_EVENT_TYPES } from '../../../src/domain/audit.js';
import { adminToken, userWithPermissions } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { enrolTotp, mfaTokenFor } from '../../helpers/mfa.js';
import { SoftwareAuthenticator, registerPasskey } from '../../helpers/passkeys.js';
import { startSmtpServer, tokenFrom } from '../../helpers/smtp.js';
import { PASSWORD, bearer, login, post, registerUser, uniqueEmail } from '../../helpers/users.js';

interface Event {
  id: string;
  type: string;
  actorId: string | null;
  userId: string | null;
  ip: string | null;
  userAgent: string | null;
  detail: Record<string, unknown>;
}

eachDatabase('every kind of security event lands in the audit log once, and never a secret', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app, config } = await buildTestApp(t, kind, {
    // ES256: signing keys to rotate.
    env: { SMTP_URL: mailbox.url, LOGIN_MAX_FAILURES: '2', LOGIN_LOCKOUT: '1h', REFRESH_REUSE_GRACE: '0', JWT_ALG: 'ES256' },
  });
  const admin = await adminToken(app);
  const subject = await registerUser(app); // registered, login_succeeded is not counted for register
  const headers = bearer(subject.accessToken);

  await post(app, '/auth/email/confirm', { token: tokenFrom(await mailbox.waitFor(subject.email), 'confirm-email') }); // email_confirmed
  const second = await login(app, subject.email); // login_succeeded
  await post(app, '/auth/logout', undefined, bearer(second.accessToken)); // logout
  await post(app, '/auth/password/change', { currentPassword: PASSWORD, newPassword: 'a changed passphrase' }, headers); // password_changed
  await post(app, '/auth/email/change', { newEmail: uniqueEmail('moved'), password: 'a changed passphrase' }, headers); // email_change_requested
  await post(app, '/auth/password/forgot', { email: subject.email });
  const reset = tokenFrom(await mailbox.waitFor(subject.email, /reset/i), 'reset-password');
  await post(app, '/auth/password/reset', { token: reset, password: 'a reset passphrase!' }); // password_reset
  const third = await login(app, subject.email, 'a reset passphrase!');
  const rotated = await post(app, '/auth/refresh', { refreshToken: third.refreshToken });
  t.equal(rotated.statusCode, 200);
  await new Promise((r) => setTimeout(r, 5));
  t.equal((await post(app, '/auth/refresh', { refreshToken: third.refreshToken })).json().code, 'refresh_token_reused'); // refresh_reused

  const victim = uniqueEmail('victim');
  for (let i = 0; i < 3; i++) await post(app, '/auth/login', { email: victim, password: 'guess guess' }); // login_failed x2, locked_out

  const id = subject.user.id;
  await app.inject({ method: 'PUT', url: `/admin/users/${id}/roles`, headers: admin.headers, payload: { roles: ['user', 'admin'] } }); // role_assigned
  await app.inject({ method: 'PUT', url: `/admin/users/${id}/roles`, headers: admin.headers, payload: { roles: ['user'] } }); // role_removed
  await app.inject({ method: 'POST', url: '/admin/roles', headers: admin.headers, payload: { name: 'editor' } });
  await app.inject({ method: 'PUT', url: '/admin/roles/editor/permissions', headers: admin.headers, payload: { permissions: ['write'] } }); // role_permissions_changed
  await app.inject({ method: 'POST', url: `/admin/users/${id}/sessions/revoke`, headers: admin.headers }); // sessions_revoked
  const assigner = await userWithPermissions(app, ['roles:assign']);
  await app.inject({ method: 'PUT', url: `/admin/users/${id}/roles`, headers: assigner.headers, payload: { roles: ['user', 'admin'] } }); // grant_refused
  await app.inject({ method: 'PATCH', url: `/admin/users/${id}`, headers: admin.headers, payload: { active: false } }); // user_deactivated
  await app.inject({ method: 'PATCH', url: `/admin/users/${id}`, headers: admin.headers, payload: { active: true } }); // user_reactivated
  await app.inject({ method: 'DELETE', url: `/admin/users/${id}`, headers: admin.headers }); // user_deleted
  const newKey = async () => (await app.inject({ method: 'POST', url: '/admin/signing-keys', headers: admin.headers, payload: {} })).json<{ kid: string }>().kid;
  const [next, spare] = [await newKey(), await newKey()]; // signing_key_created (twice)
  await app.inject({ method: 'POST', url: `/admin/signing-keys/${next}/activate`, headers: admin.headers, payload: { force: true } }); // signing_key_activated
  await app.inject({ method: 'POST', url: `/admin/signing-keys/${spare}/revoke`, headers: admin.headers }); // signing_key_revoked

  // Two-factor events, on a user of their own.
  const holder = await registerUser(app);
  const enrolled = await enrolTotp(app, holder.accessToken); // mfa_enrolled
  const aal2 = bearer(enrolled.accessToken);
  const renewed = await post(app, '/auth/mfa/recovery-codes', undefined, aal2); // recovery_codes_regenerated
  t.equal(renewed.statusCode, 200);
  const [recoveryCode] = renewed.json<{ recoveryCodes: string[] }>().recoveryCodes;
  const viaRecovery = await post(app, '/auth/mfa/verify', { mfaToken: await mfaTokenFor(app, holder.email, holder.password), method: 'recovery_code', code: recoveryCode });
  t.equal(viaRecovery.statusCode, 200); // recovery_code_used
  t.equal((await post(app, '/auth/reauthenticate', { password: holder.password }, aal2)).statusCode, 200); // reauthenticated
  // Wrong codes until the second step locks: each refused code is one mfa_failed, the lock one mfa_locked.
  let wrongCodes = 0;
  let mfaToken = await mfaTokenFor(app, holder.email, holder.password);
  for (let attempt = 0; attempt < 20; attempt++) {
    if (attempt > 0 && attempt % 5 === 0) mfaToken = await mfaTokenFor(app, holder.email, holder.password); // 5 codes per mfaToken
    const res = await post(app, '/auth/mfa/verify', { mfaToken, method: 'totp', code: await enrolled.authenticator.wrong() });
    if (res.statusCode === 429) break;
    t.equal(res.json<{ code: string }>().code, 'mfa_code_invalid');
    wrongCodes++;
  }
  t.equal((await app.inject({ method: 'DELETE', url: `/admin/users/${holder.user.id}/mfa`, headers: admin.headers })).statusCode, 204); // mfa_reset
  const again = await enrolTotp(app, (await login(app, holder.email, holder.password)).accessToken); // mfa_enrolled (second)
  t.equal((await app.inject({ method: 'DELETE', url: '/auth/mfa/totp', headers: bearer(again.accessToken) })).statusCode, 204); // mfa_disabled

  // Passkey events, on a user of their own.
  const keyHolder = await registerUser(app);
  const passkey = await registerPasskey(app, keyHolder.accessToken, new SoftwareAuthenticator()); // passkey_registered
  t.equal((await app.inject({ method: 'DELETE', url: `/admin/users/${keyHolder.user.id}/passkeys/${passkey.id}`, headers: admin.headers })).statusCode, 204); // passkey_removed
  const apiKey = await app.inject({ method: 'POST', url: '/auth/api-keys', headers: admin.headers, payload: { name: 'ci', permissions: ['users:read'] } }); // api_key_created
  t.equal(apiKey.statusCode, 201);
  const { id: apiKeyId, key } = apiKey.json<{ id: string; key: string }>();
  t.equal((await app.inject({ method: 'DELETE', url: `/auth/api-keys/${apiKeyId}`, headers: admin.headers })).statusCode, 204); // api_key_revoked
  const impersonated = await registerUser(app);
  const impersonation = await app.inject({ method: 'POST', url: `/admin/users/${impersonated.user.id}/impersonate`, headers: admin.headers, payload: { reason: 'support' } }); // impersonation_started
  t.equal(impersonation.statusCode, 200);
  const impersonationToken = impersonation.json<{ accessToken: string }>().accessToken;
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(impersonationToken) })).statusCode, 200); // impersonated_request
  const invite = async (email: string) => {
    const res = await app.inject({ method: 'POST', url: '/admin/invitations', headers: admin.headers, payload: { email, roles: [] } }); // invitation_created
    t.equal(res.statusCode, 201);
    return { id: res.json<{ id: string }>().id, token: tokenFrom(await mailbox.waitFor(email, /invited/i), 'accept-invite') };
  };
  const [invitedEmail, withdrawnEmail] = [uniqueEmail('invited'), uniqueEmail('withdrawn')];
  const invited = await invite(invitedEmail);
  const accepted = await post(app, '/auth/invitations/accept', { token: invited.token, password: PASSWORD }); // invitation_accepted
  t.equal(accepted.statusCode, 201);
  const withdrawn = await invite(withdrawnEmail);
  t.equal((await app.inject({ method: 'DELETE', url: `/admin/invitations/${withdrawn.id}`, headers: admin.headers })).statusCode, 204); // invitation_revoked
  await app.gatehouse.background.idle();

  const events: Event[] = [];
  let cursor: string | null = null;
  do {
    const query: Record<string, string> = { limit: '100', ...(cursor ? { cursor } : {}) };
    const res = await app.inject({ url: '/admin/audit', query, headers: admin.headers });
    t.equal(res.statusCode, 200);
    const page = res.json() as { items: Event[]; nextCursor: string | null };
    events.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);

  const about = (type: string) => events.filter((e) => e.type === type && (e.userId === id || e.detail.email === victim));
  const expected: Record<string, number> = { login_failed: 2, login_succeeded: 2, logout: 1, signing_key_created: 2 };
  const twoFactor: Record<string, number> = { mfa_enrolled: 2, mfa_failed: wrongCodes };
  for (const type of AUDIT_EVENT_TYPES) {
    if (type.startsWith('mfa_') || type.startsWith('recovery_code') || type === 'reauthenticated') {
      const count = events.filter((e) => e.type === type && e.userId === holder.user.id).length;
      t.equal(count, twoFactor[type] ?? 1, `${type} recorded ${twoFactor[type] ?? 1} time(s)`);
      continue;
    }
    if (type.startsWith('passkey_')) {
      t.equal(events.filter((e) => e.type === type && e.userId === keyHolder.user.id).length, 1, `${type} recorded once`);
      continue;
    }
    if (type.startsWith('imperson')) {
      const found = events.filter((e) => e.type === type && e.userId === impersonated.user.id);
      t.equal(found.length, 1, `${type} recorded once`);
      t.equal(found[0]?.actorId, admin.userId, `${type}: the admin acted`);
      continue;
    }
    if (type.startsWith('invitation_')) {
      const found = events.filter((e) => e.type === type && [invitedEmail, withdrawnEmail].includes(e.detail.email as string));
      const expectedCount = type === 'invitation_created' ? 2 : 1;
      if (type === 'invitation_accepted') {
        t.equal(events.filter((e) => e.type === type && e.userId === accepted.json<{ user: { id: string } }>().user.id).length, 1, `${type} recorded once`);
      } else {
        t.equal(found.length, expectedCount, `${type} recorded ${expectedCount} time(s)`);
        t.ok(found.every((e) => e.actorId === admin.userId), `${type}: the admin acted`);
      }
      continue;
    }
    if (type.startsWith('api_key_')) {
      t.equal(events.filter((e) => e.type === type && e.userId === admin.userId).length, 1, `${type} recorded once`);
      continue;
    }
    // About no user: counted over the whole log.
    if (type === 'role_permissions_changed' || type.startsWith('signing_key_')) {
      t.equal(events.filter((e) => e.type === type).length, expected[type] ?? 1, type);
      continue;
    }
    t.equal(about(type).length, expected[type] ?? 1, `${type} recorded ${expected[type] ?? 1} time(s)`);
  }
  const deactivated = about('user_deactivated')[0]!;
  t.equal(deactivated.actorId, admin.userId, 'the actor is the admin who acted');
  t.equal(deactivated.ip, '127.0.0.1');
  t.same(about('role_assigned')[0]!.detail, { role: 'admin' });

  const text = JSON.stringify(events);
  for (const secret of [PASSWORD, 'a changed passphrase', 'a reset passphrase!', reset, third.refreshToken!, config.jwtSecret, enrolled.authenticator.secret, recoveryCode!, key, key.slice(16), impersonationToken, invited.token, withdrawn.token]) {
    t.notOk(text.includes(secret), 'no secret in the audit log');
  }
  t.notMatch(text, /\$2[aby]\$/, 'no hash in the audit log');
  t.notMatch(text, /"d":/, 'no private key in the audit log');
});

eachDatabase('the audit query filters by user, type and time, newest first, and pages', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const before = new Date().toISOString();
  const users: Awaited<ReturnType<typeof registerUser>>[] = [];
  for (let i = 0; i < 5; i++) users.push(await registerUser(app));
  await app.gatehouse.background.idle();
  const get = async (query: Record<string, string>) => {
    const res = await app.inject({ url: '/admin/audit', query, headers: admin.headers });
    t.equal(res.statusCode, 200, JSON.stringify(query));
    return res.json() as { items: Event[]; nextCursor: string | null };
  };

  const registered = await get({ type: 'registered', from: before });
  t.same(registered.items.map((e) => e.userId), users.map((u) => u.user.id).reverse(), 'newest first');
  const mine = await get({ user: users[2]!.user.id });
  t.ok(mine.items.length >= 1);
  t.ok(mine.items.every((e) => e.userId === users[2]!.user.id));
  t.equal((await get({ type: 'registered', to: before })).items.length, 0, 'nothing registered before `before`');

  const seen = new Set<string>();
  let cursor: string | null = null;
  let pages = 0;
  do {
    const query: Record<string, string> = { type: 'registered', limit: '2', ...(cursor ? { cursor } : {}) };
    const page = await get(query);
    t.ok(page.items.length <= 2);
    for (const e of page.items) {
      t.notOk(seen.has(e.id), 'no event twice');
      seen.add(e.id);
    }
    cursor = page.nextCursor;
    pages++;
  } while (cursor);
  t.equal(seen.size, 5);
  t.equal(pages, 3);

  const badQueries: Record<string, string>[] = [{ type: 'made_up' }, { limit: '0' }, { limit: '101' }, { cursor: 'abc' }, { from: 'yesterday' }];
  for (const query of badQueries) {
    const res = await app.inject({ url: '/admin/audit', query, headers: admin.headers });
    t.equal(res.statusCode, 400, JSON.stringify(query));
    t.equal(res.json().code, 'validation_failed');
  }
  const plain = await app.inject({ url: '/admin/audit', headers: bearer(users[0]!.accessToken) });
  t.equal(plain.statusCode, 403, 'audit:read is required');
});
