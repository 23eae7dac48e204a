import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { invitations, users } from '../../../src/db/schema.js';
import { ensureAdmin } from '../../../src/domain/admin-bootstrap.js';
import { adminToken, roleGranting, send, userWithPermissions, type Actor } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { assertProblem } from '../../helpers/problems.js';
import { startSmtpServer, tokenFrom, type Mailbox } from '../../helpers/smtp.js';
import { PASSWORD, bearer, login, post, registerUser, uniqueEmail } from '../../helpers/users.js';

async function invite(app: FastifyInstance, mailbox: Mailbox, admin: Actor, roles: string[] = [], email = uniqueEmail('invited')) {
  const res = await send(app, admin, 'POST', '/admin/invitations', { email, roles });
  if (res.statusCode !== 201) throw new Error(`invite failed: ${res.statusCode} ${res.body}`);
  const mail = await mailbox.waitFor(email, /invited/i);
  return { invitation: res.json<{ id: string; email: string; roles: string[]; expiresAt: string }>(), token: tokenFrom(mail, 'accept-invite'), mail, email };
}

eachDatabase('an invited person signs up from the mailed link with the roles, the email confirmed', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, APP_URL: 'https://app.example.com' } });
  const admin = await adminToken(app);
  const editor = await roleGranting(app, ['users:read']);
  const email = uniqueEmail('Bob');

  const created = await send(app, admin, 'POST', '/admin/invitations', { email: `  ${email.toUpperCase()} `, roles: [editor] });
  t.equal(created.statusCode, 201);
  const body = created.json<{ id: string; email: string; roles: string[]; expiresAt: string }>();
  t.same(Object.keys(body).sort(), ['email', 'expiresAt', 'id', 'roles'], 'no token in the answer');
  t.equal(body.email, email.toLowerCase(), 'the address normalized');
  t.same(body.roles, [editor]);
  const hours = (Date.parse(body.expiresAt) - Date.now()) / 3_600_000;
  t.ok(hours > 71.9 && hours <= 72, 'INVITE_TTL: 72h by default');

  const mail = await mailbox.waitFor(email.toLowerCase(), /invited/i);
  t.match(mail.text, /https:\/\/app\.example\.com\/accept-invite#token=/, 'APP_URL/accept-invite#token=...');
  const token = tokenFrom(mail, 'accept-invite');
  const [row] = await app.gatehouse.db.select().from(invitations).where(eq(invitations.id, body.id));
  t.not(row!.tokenHash, token, 'only a hash of the token is stored');

  const accepted = await post(app, '/auth/invitations/accept', { token, password: PASSWORD, name: 'Bob' });
  t.equal(accepted.statusCode, 201);
  const tokens = accepted.json<{ accessToken: string; refreshToken: string; user: { id: string; email: string; name: string; roles: string[]; permissions: string[]; emailConfirmedAt: string | null } }>();
  t.ok(tokens.refreshToken);
  t.ok(tokens.user.emailConfirmedAt, 'the email is confirmed by the acceptance');
  t.equal(mailbox.messages.filter((m) => JSON.stringify(m.to).includes(email.toLowerCase())).length, 1, 'and no confirmation mail follows');
  t.match(tokens.user, { email: email.toLowerCase(), name: 'Bob', roles: ['user', editor].sort() });
  t.ok(tokens.user.permissions.includes('users:read'), 'the roles are granted');
  t.equal((await app.inject({ url: '/admin/users', headers: bearer(tokens.accessToken) })).statusCode, 200, 'and work');
  t.equal((await login(app, email.toLowerCase())).user.id, tokens.user.id, 'the password works');

  assertProblem(t, await post(app, '/auth/invitations/accept', { token, password: PASSWORD }), 410, 'invitation_invalid', 'used once only');
  const listed = await send(app, admin, 'GET', '/admin/invitations');
  t.equal(listed.statusCode, 200);
  t.match(listed.json<{ items: unknown[] }>().items.find((i) => (i as { id: string }).id === body.id), { status: 'accepted', userId: tokens.user.id, invitedBy: admin.userId });
  t.notOk(listed.body.includes(token), 'the list never shows a token');
});

eachDatabase('every unusable invitation answers the same 410 invitation_invalid', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const admin = await adminToken(app);
  const revoked = await invite(app, mailbox, admin);
  t.equal((await send(app, admin, 'DELETE', `/admin/invitations/${revoked.invitation.id}`)).statusCode, 204);
  t.equal((await send(app, admin, 'DELETE', `/admin/invitations/${revoked.invitation.id}`)).statusCode, 204, 'revoking twice is fine');
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/invitations/00000000-0000-4000-8000-000000000000'), 404, 'not_found');
  const expired = await invite(app, mailbox, admin);
  // Expiry moved into the past in the database: no waiting on the clock.
  await app.gatehouse.db.update(invitations).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(invitations.id, expired.invitation.id));
  const superseded = await invite(app, mailbox, admin);
  const newer = await invite(app, mailbox, admin, [], superseded.email);

  const details = new Set<string>();
  for (const [label, token] of [
    ['unknown', 'A'.repeat(43)],
    ['malformed', 'not a token'],
    ['revoked', revoked.token],
    ['expired', expired.token],
    ['superseded by a newer invitation', superseded.token],
  ] as const) {
    details.add(assertProblem(t, await post(app, '/auth/invitations/accept', { token, password: PASSWORD }), 410, 'invitation_invalid', label).detail);
  }
  t.equal(details.size, 1, 'one answer for every case');
  t.equal((await post(app, '/auth/invitations/accept', { token: newer.token, password: PASSWORD })).statusCode, 201, 'the newest link works');

  const statuses = new Map((await send(app, admin, 'GET', '/admin/invitations')).json<{ items: { id: string; status: string }[] }>().items.map((i) => [i.id, i.status]));
  t.equal(statuses.get(revoked.invitation.id), 'revoked');
  t.equal(statuses.get(expired.invitation.id), 'expired');
  t.equal(statuses.get(superseded.invitation.id), 'revoked');
  t.equal(statuses.get(newer.invitation.id), 'accepted');
});

eachDatabase('an address with an account cannot be invited, and one taken meanwhile answers 409 email_taken', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const admin = await adminToken(app);
  const existing = await registerUser(app);
  assertProblem(t, await send(app, admin, 'POST', '/admin/invitations', { email: existing.email, roles: [] }), 409, 'email_taken');

  const pending = await invite(app, mailbox, admin);
  await registerUser(app, { email: pending.email });
  assertProblem(t, await post(app, '/auth/invitations/accept', { token: pending.token, password: PASSWORD }), 409, 'email_taken');
  assertProblem(t, await post(app, '/auth/invitations/accept', { token: pending.token, password: 'short' }), 400, 'weak_password', 'the password policy applies');
  assertProblem(t, await send(app, admin, 'POST', '/admin/invitations', { email: 'not an address', roles: [] }), 400, 'validation_failed');
  assertProblem(t, await send(app, admin, 'POST', '/admin/invitations', { email: uniqueEmail(), roles: ['no-such-role'] }), 400, 'validation_failed', 'an unknown role');
});

eachDatabase('an inviter can hand out only roles whose permissions they hold', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const admin = await adminToken(app);
  const manager = await userWithPermissions(app, ['users:write', 'users:read']);
  const reader = await roleGranting(app, ['users:read']);
  const deleter = await roleGranting(app, ['users:delete']);

  t.equal((await send(app, manager, 'POST', '/admin/invitations', { email: uniqueEmail(), roles: [reader] })).statusCode, 201, 'a role within their own rights');
  const refused = assertProblem(t, await send(app, manager, 'POST', '/admin/invitations', { email: uniqueEmail(), roles: [reader, deleter] }), 403, 'exceeds_own_permissions');
  t.match(refused.detail, /users:delete/);
  assertProblem(t, await send(app, manager, 'POST', '/admin/invitations', { email: uniqueEmail(), roles: ['admin'] }), 403, 'exceeds_own_permissions', 'nor admin');
  const plain = await userWithPermissions(app, ['users:read']);
  assertProblem(t, await send(app, plain, 'POST', '/admin/invitations', { email: uniqueEmail(), roles: [] }), 403, 'permission_denied', 'users:write is needed');
  assertProblem(t, await send(app, plain, 'DELETE', '/admin/invitations/00000000-0000-4000-8000-000000000000'), 403, 'permission_denied');
  assertProblem(t, await send(app, null, 'GET', '/admin/invitations'), 401, 'token_missing');
  t.equal((await send(app, admin, 'POST', '/admin/invitations', { email: uniqueEmail(), roles: ['admin'] })).statusCode, 201, 'an admin may invite an admin');
});

eachDatabase('parallel acceptances of one invitation: exactly one 201', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url } });
  const admin = await adminToken(app);
  const { token, email } = await invite(app, mailbox, admin);
  const results = await Promise.all(Array.from({ length: 10 }, () => post(app, '/auth/invitations/accept', { token, password: PASSWORD })));
  const statuses = results.map((r) => r.statusCode).sort();
  t.same(statuses, [201, ...Array<number>(9).fill(410)], 'one account, and 410 for the rest');
  for (const res of results.filter((r) => r.statusCode === 410)) t.equal(res.json<{ code: string }>().code, 'invitation_invalid');
  const users = await send(app, admin, 'GET', `/admin/users?q=${encodeURIComponent(email)}`);
  t.equal(users.json<{ items: unknown[] }>().items.length, 1, 'exactly one user');
});

eachDatabase('REGISTRATION=invite-only closes sign-up, and invitations still work, with REQUIRE_EMAIL_CONFIRMATION too', async (t, kind) => {
  const mailbox = await startSmtpServer(t);
  const { app } = await buildTestApp(t, kind, { env: { SMTP_URL: mailbox.url, REGISTRATION: 'invite-only', REQUIRE_EMAIL_CONFIRMATION: 'true' } });
  const adminEmail = uniqueEmail('admin');
  await ensureAdmin(app.gatehouse.db, { email: adminEmail, password: PASSWORD, passwords: app.gatehouse.passwords });
  const signedIn = await login(app, adminEmail);
  const admin: Actor = { userId: signedIn.user.id, email: adminEmail, accessToken: signedIn.accessToken, refreshToken: signedIn.refreshToken!, headers: bearer(signedIn.accessToken) };
  assertProblem(t, await post(app, '/auth/register', { email: uniqueEmail(), password: PASSWORD }), 403, 'registration_closed');
  assertProblem(t, await post(app, '/auth/register', { email: 'nonsense' }), 403, 'registration_closed', 'whatever the body');
  const { token, email } = await invite(app, mailbox, admin);
  const accepted = await post(app, '/auth/invitations/accept', { token, password: PASSWORD });
  t.equal(accepted.statusCode, 201, 'signed in at once: the link proved the address');
  t.equal((await post(app, '/auth/login', { email, password: PASSWORD })).statusCode, 200, 'and logins need no confirmation mail');
});
