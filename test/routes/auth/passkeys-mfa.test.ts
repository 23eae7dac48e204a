import { eq } from 'drizzle-orm';
import { auditEvents, passkeys, sessions } from '../../../src/db/schema.js';
import { adminToken, roleGranting, send, userWithRoles } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { enrolTotp, mfaTokenFor } from '../../helpers/mfa.js';
import { SoftwareAuthenticator, authenticationOptions, registerPasskey, signInWithPasskey } from '../../helpers/passkeys.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, post, registerUser } from '../../helpers/users.js';

type Claims = ReturnType<typeof claimsOf> & { sub: string; sid: string; aal: string; amr: string[]; auth_time: number };
const claims = (token: string) => claimsOf(token) as Claims;
const verify = (app: Parameters<typeof post>[0], body: Record<string, unknown>) => post(app, '/auth/passkeys/authentication/verify', body);

eachDatabase('second step: a password login of a user whose only factor is a passkey answers mfaRequired with methods ["passkey"]; the passkey finishes it at aal2', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  const passkey = await registerPasskey(app, ann.accessToken, authenticator);

  const login = json<{ mfaRequired: boolean; methods: string[]; mfaToken: string; accessToken?: string }>(await post(app, '/auth/login', { email: ann.email, password: PASSWORD }));
  t.match(login, { mfaRequired: true, methods: ['passkey'] });
  t.notOk(login.accessToken);
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: login.mfaToken, method: 'passkey', code: '123456' }), 400, 'validation_failed', 'a passkey is no code');

  const ceremony = await authenticationOptions(app, { mfaToken: login.mfaToken });
  const [row] = await database.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));
  t.same(ceremony.options.allowCredentials.map((c: { id: string }) => c.id), [row!.credentialId], "the user's passkeys are listed");
  const res = await verify(app, { challengeId: ceremony.challengeId, response: authenticator.get(ceremony.options), mfaToken: login.mfaToken });
  t.equal(res.statusCode, 200, res.body);
  t.match(claims(json(res).accessToken), { sub: ann.user.id, aal: 'aal2', amr: ['pwd', 'hwk', 'mfa'] });

  const again = await authenticationOptions(app);
  assertProblem(t, await verify(app, { challengeId: again.challengeId, response: authenticator.get(again.options), mfaToken: login.mfaToken }), 401, 'mfa_token_invalid', 'the mfaToken is used up');
  assertProblem(t, await post(app, '/auth/passkeys/authentication/options', { mfaToken: login.mfaToken }), 401, 'mfa_token_invalid', 'no options for a used mfaToken');
  assertProblem(t, await post(app, '/auth/passkeys/authentication/options', { mfaToken: 'nonsense' }), 401, 'mfa_token_invalid', 'nor for a made-up one');
});

eachDatabase("second step: someone else's passkey, or a challenge issued for another user's login, does not finish the login", async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const bob = await registerUser(app);
  const annKey = new SoftwareAuthenticator();
  const bobKey = new SoftwareAuthenticator();
  await registerPasskey(app, ann.accessToken, annKey);
  await registerPasskey(app, bob.accessToken, bobKey);

  const annToken = await mfaTokenFor(app, ann.email, PASSWORD);
  const usernameless = await authenticationOptions(app);
  assertProblem(t, await verify(app, { challengeId: usernameless.challengeId, response: bobKey.get(usernameless.options), mfaToken: annToken }), 401, 'passkey_invalid', "bob's passkey for ann's login");

  const bobToken = await mfaTokenFor(app, bob.email, PASSWORD);
  const forBob = await authenticationOptions(app, { mfaToken: bobToken });
  assertProblem(t, await verify(app, { challengeId: forBob.challengeId, response: annKey.get({ ...forBob.options, allowCredentials: [] }), mfaToken: annToken }), 400, 'webauthn_challenge_invalid', "a challenge of bob's login");
  const forBobAlone = await authenticationOptions(app, { mfaToken: bobToken });
  assertProblem(t, await verify(app, { challengeId: forBobAlone.challengeId, response: bobKey.get(forBobAlone.options) }), 400, 'webauthn_challenge_invalid', 'a second-step challenge is no usernameless sign-in');

  const ok = await authenticationOptions(app, { mfaToken: annToken });
  t.equal((await verify(app, { challengeId: ok.challengeId, response: annKey.get(ok.options), mfaToken: annToken })).statusCode, 200, "ann's own passkey still finishes it");

  await app.gatehouse.background.idle();
  const events = await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id));
  t.match(events.find((e) => e.type === 'mfa_failed')?.detail, { method: 'passkey', reason: 'wrong_user', action: 'login' });
});

eachDatabase('with an authenticator app and a passkey, mfaRequired offers all three methods; either finishes the login', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { authenticator: app2fa, accessToken } = await enrolTotp(app, ann.accessToken);
  const key = new SoftwareAuthenticator();
  await registerPasskey(app, accessToken, key);
  const login = json<{ methods: string[]; mfaToken: string }>(await post(app, '/auth/login', { email: ann.email, password: PASSWORD }));
  t.same(login.methods, ['totp', 'recovery_code', 'passkey']);
  t.equal((await signInWithPasskey(app, key, { mfaToken: login.mfaToken })).statusCode, 200, 'the passkey');
  const second = await mfaTokenFor(app, ann.email, PASSWORD);
  t.equal((await post(app, '/auth/mfa/verify', { mfaToken: second, method: 'totp', code: await app2fa.next() })).statusCode, 200, 'or a code');
});

eachDatabase('removing the last passkey: logins take the password alone again, and sessions fall back to aal1', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const key = new SoftwareAuthenticator();
  const passkey = await registerPasskey(app, ann.accessToken, key);
  const signedIn = json(await signInWithPasskey(app, key));
  t.equal(claims(signedIn.accessToken).aal, 'aal2');
  t.equal((await app.inject({ method: 'DELETE', url: `/auth/passkeys/${passkey.id}`, headers: bearer(signedIn.accessToken) })).statusCode, 204);
  const [session] = await database.db.select().from(sessions).where(eq(sessions.id, claims(signedIn.accessToken).sid));
  t.match(session, { aal: 'aal1', amr: ['user'] });
  const login = json<{ accessToken?: string; mfaRequired?: boolean }>(await post(app, '/auth/login', { email: ann.email, password: PASSWORD }));
  t.ok(login.accessToken);
  t.equal(login.mfaRequired, undefined);
});

eachDatabase('removing the last two passkeys in parallel still puts the sessions back to aal1', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const key = new SoftwareAuthenticator();
  const first = await registerPasskey(app, ann.accessToken, key);
  const second = await registerPasskey(app, ann.accessToken, new SoftwareAuthenticator());
  const signedIn = json(await signInWithPasskey(app, key));
  const results = await Promise.all(
    [first, second].map((p) => app.inject({ method: 'DELETE', url: `/auth/passkeys/${p.id}`, headers: bearer(signedIn.accessToken) })),
  );
  t.same(results.map((r) => r.statusCode), [204, 204]);
  const [session] = await database.db.select().from(sessions).where(eq(sessions.id, claims(signedIn.accessToken).sid));
  t.equal(session!.aal, 'aal1');
});

eachDatabase('step-up with a passkey: auth_time now and aal2 for the same session; only your own passkey', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const bob = await registerUser(app);
  const annKey = new SoftwareAuthenticator();
  const bobKey = new SoftwareAuthenticator();
  await registerPasskey(app, ann.accessToken, annKey);
  await registerPasskey(app, bob.accessToken, bobKey);
  const { sid } = claims(ann.accessToken);
  await database.db.update(sessions).set({ authTime: new Date(Date.now() - 3600_000) }).where(eq(sessions.id, sid));
  const stale = json(await post(app, '/auth/refresh', { refreshToken: ann.refreshToken })).accessToken;
  assertProblem(t, await post(app, '/auth/passkeys/registration/options', undefined, bearer(stale)), 403, 'reauthentication_required');

  const stepUp = async (key: SoftwareAuthenticator) => {
    const ceremony = await authenticationOptions(app);
    return post(app, '/auth/reauthenticate', { method: 'passkey', challengeId: ceremony.challengeId, response: key.get(ceremony.options) }, bearer(stale));
  };
  assertProblem(t, await stepUp(bobKey), 401, 'passkey_invalid', "bob's passkey");
  const res = await stepUp(annKey);
  t.equal(res.statusCode, 200, res.body);
  const fresh = claims(json(res).accessToken);
  t.equal(fresh.sid, sid, 'the same session');
  t.ok(fresh.auth_time >= Math.floor(Date.now() / 1000) - 5, 'auth_time is now');
  t.match(fresh, { aal: 'aal2', amr: ['pwd', 'user', 'hwk', 'mfa'] });
  t.equal((await post(app, '/auth/passkeys/registration/options', undefined, bearer(json(res).accessToken))).statusCode, 200, 'fresh again');

  const used = await authenticationOptions(app);
  const response = annKey.get(used.options);
  t.equal((await post(app, '/auth/reauthenticate', { method: 'passkey', challengeId: used.challengeId, response }, bearer(stale))).statusCode, 200);
  assertProblem(t, await post(app, '/auth/reauthenticate', { method: 'passkey', challengeId: used.challengeId, response }, bearer(stale)), 400, 'webauthn_challenge_invalid', 'a replayed step-up');
});

eachDatabase('admins with users:mfa list and remove a user’s passkeys, audited; others cannot', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const ann = await registerUser(app);
  const key = new SoftwareAuthenticator();
  const passkey = await registerPasskey(app, ann.accessToken, key, 'Phone');
  const list = `/admin/users/${ann.user.id}/passkeys`;
  const one = `${list}/${passkey.id}`;

  const reader = await userWithRoles(app, ['user', await roleGranting(app, ['users:read'])]);
  assertProblem(t, await send(app, reader, 'GET', list), 403, 'permission_denied', 'listing without users:mfa');
  assertProblem(t, await send(app, reader, 'DELETE', one), 403, 'permission_denied', 'removing without users:mfa');
  const helpdesk = await userWithRoles(app, ['user', await roleGranting(app, ['users:mfa'])]);
  const adminKey = await registerPasskey(app, admin.accessToken, new SoftwareAuthenticator());
  assertProblem(t, await send(app, helpdesk, 'DELETE', `/admin/users/${admin.userId}/passkeys/${adminKey.id}`), 403, 'exceeds_own_permissions', 'on a user holding more');

  const listed = await send(app, helpdesk, 'GET', list);
  t.equal(listed.statusCode, 200);
  t.match(json<{ items: unknown[] }>(listed).items, [{ id: passkey.id, name: 'Phone', lastUsedAt: null }]);
  assertProblem(t, await send(app, admin, 'GET', '/admin/users/00000000-0000-4000-8000-000000000000/passkeys'), 404, 'not_found', 'no such user');
  assertProblem(t, await send(app, admin, 'DELETE', `/admin/users/${ann.user.id}/passkeys/${adminKey.id}`), 404, 'not_found', "another user's passkey");

  t.equal((await send(app, helpdesk, 'DELETE', one)).statusCode, 204);
  assertProblem(t, await signInWithPasskey(app, key), 401, 'passkey_invalid', 'the removed passkey signs in no more');
  t.same(json<{ items: unknown[] }>(await send(app, admin, 'GET', list)).items, []);

  await app.gatehouse.background.idle();
  const [event] = await database.db.select().from(auditEvents).where(eq(auditEvents.type, 'passkey_removed'));
  t.match(event, { actorId: helpdesk.userId, userId: ann.user.id, detail: { passkeyId: passkey.id } });
});

eachDatabase('assurance rules count a passkey as a second factor (PASSKEY_COUNTS_AS_MFA): aal2 for MFA_REQUIRED_PERMISSIONS, passkey among the step-up methods', async (t, kind) => {
  for (const counts of ['true', 'false']) {
    const { app } = await buildTestApp(t, kind, { env: { MFA_REQUIRED_PERMISSIONS: 'users:read', PASSKEY_COUNTS_AS_MFA: counts } });
    const reader = await userWithRoles(app, ['user', await roleGranting(app, ['users:read'])]);
    const key = new SoftwareAuthenticator();
    await registerPasskey(app, reader.accessToken, key);
    const before = await send(app, reader, 'GET', '/admin/users');
    if (counts === 'true') assertProblem(t, before, 403, 'insufficient_aal', 'an aal1 session of a user with a passkey');
    else t.equal(before.statusCode, 200, 'PASSKEY_COUNTS_AS_MFA=false: the passkey is no second factor');
    const signedIn = json(await signInWithPasskey(app, key));
    const after = await app.inject({ url: '/admin/users', headers: bearer(signedIn.accessToken) });
    t.equal(after.statusCode, 200, `a passkey session (PASSKEY_COUNTS_AS_MFA=${counts})`);

    const { sub, sid } = claims(reader.accessToken);
    const stale = forgeToken(validClaims({ sub, sid }, { auth_time: Math.floor(Date.now() / 1000) - 601, amr: ['pwd'], aal: 'aal1' }));
    const refused = assertProblem(t, await post(app, '/auth/passkeys/registration/options', undefined, bearer(stale)), 403, 'reauthentication_required');
    t.match(refused, { methods: ['password', 'passkey'] }, 'the step-up methods name the passkey');
  }
});

for (const counts of ['true', 'false'] as const) {
  eachDatabase(`removing the authenticator while a passkey remains, PASSKEY_COUNTS_AS_MFA=${counts}: sessions ${counts === 'true' ? 'keep aal2' : 'fall back to aal1'}`, async (t, kind) => {
    const { app, database } = await buildTestApp(t, kind, { env: { PASSKEY_COUNTS_AS_MFA: counts } });
    const ann = await registerUser(app);
    const { accessToken } = await enrolTotp(app, ann.accessToken);
    await registerPasskey(app, accessToken, new SoftwareAuthenticator());
    t.equal(claims(accessToken).aal, 'aal2');
    t.equal((await app.inject({ method: 'DELETE', url: '/auth/mfa/totp', headers: bearer(accessToken) })).statusCode, 204);

    const [session] = await database.db.select().from(sessions).where(eq(sessions.id, claims(accessToken).sid));
    t.equal(session!.aal, counts === 'true' ? 'aal2' : 'aal1');
    const refreshed = json(await post(app, '/auth/refresh', { refreshToken: ann.refreshToken }));
    t.equal(claims(refreshed.accessToken).aal, counts === 'true' ? 'aal2' : 'aal1', 'and so do its next tokens');
  });
}
