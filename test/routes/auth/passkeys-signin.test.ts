import { eq } from 'drizzle-orm';
import { auditEvents, passkeys, users, webauthnChallenges } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf } from '../../helpers/jwt.js';
import { ORIGIN, SoftwareAuthenticator, authenticationOptions, registerPasskey, signInWithPasskey } from '../../helpers/passkeys.js';
import { assertProblem } from '../../helpers/problems.js';
import { bearer, json, post, registerUser } from '../../helpers/users.js';

type Claims = ReturnType<typeof claimsOf> & { sub: string; aal: string; amr: string[] };
const claims = (token: string) => claimsOf(token) as Claims;
const verify = (app: Parameters<typeof post>[0], body: Record<string, unknown>) => post(app, '/auth/passkeys/authentication/verify', body);

eachDatabase('usernameless sign-in: empty allowCredentials, then the passkey alone opens an aal2 session (hwk, user); lastUsedAt and counter stored', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  const passkey = await registerPasskey(app, ann.accessToken, authenticator);
  const [before] = await database.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));

  const bodiless = await app.inject({ method: 'POST', url: '/auth/passkeys/authentication/options' });
  t.equal(bodiless.statusCode, 200, 'no body, no content type: usernameless options');
  const ceremony = await authenticationOptions(app);
  t.match(ceremony.options, { rpId: 'localhost', allowCredentials: [], userVerification: 'required', timeout: 300_000 });
  const res = await verify(app, { challengeId: ceremony.challengeId, response: authenticator.get(ceremony.options) });
  t.equal(res.statusCode, 200, res.body);
  const tokens = json(res);
  t.ok(tokens.refreshToken, 'a refresh token, as a login answers');
  t.match(claims(tokens.accessToken), { sub: ann.user.id, aal: 'aal2', amr: ['hwk', 'user'] });
  t.match(tokens.user, { id: ann.user.id, aal: 'aal2' });
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200);

  const [after] = await database.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));
  t.ok(after!.counter > before!.counter, `the counter grew (${before!.counter} -> ${after!.counter})`);
  t.ok(after!.lastUsedAt, 'lastUsedAt set');
  const listed = json<{ items: { lastUsedAt: string | null }[] }>(await app.inject({ url: '/auth/passkeys', headers: bearer(tokens.accessToken) }));
  t.equal(listed.items[0]!.lastUsedAt, after!.lastUsedAt!.toISOString());

  const cookie = await signInWithPasskey(app, authenticator, { useCookie: true });
  t.equal(cookie.statusCode, 200);
  t.ok(json(cookie).csrfToken, 'cookie mode: a CSRF token in the body');
  t.match(String(cookie.headers['set-cookie']), /gatehouse_refresh=.*HttpOnly/);

  await app.gatehouse.background.idle();
  const events = await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id));
  t.match(events.filter((e) => e.type === 'login_succeeded').at(-1)?.detail, { amr: ['hwk', 'user'], passkeyId: passkey.id });
});

eachDatabase('PASSKEY_COUNTS_AS_MFA=false: a passkey sign-in is aal1, and a password login needs no second step', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { PASSKEY_COUNTS_AS_MFA: 'false' } });
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  await registerPasskey(app, ann.accessToken, authenticator);
  const res = await signInWithPasskey(app, authenticator);
  t.match(claims(json(res).accessToken), { aal: 'aal1', amr: ['hwk', 'user'] });
  const login = json<{ mfaRequired?: boolean; accessToken?: string }>(await post(app, '/auth/login', { email: ann.email, password: ann.password }));
  t.equal(login.mfaRequired, undefined);
  t.ok(login.accessToken);
});

eachDatabase('sign-in challenges work once: replayed, expired, unknown and registration challenges are 400 webauthn_challenge_invalid', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  await registerPasskey(app, ann.accessToken, authenticator);

  const ceremony = await authenticationOptions(app);
  const response = authenticator.get(ceremony.options);
  t.equal((await verify(app, { challengeId: ceremony.challengeId, response })).statusCode, 200);
  assertProblem(t, await verify(app, { challengeId: ceremony.challengeId, response }), 400, 'webauthn_challenge_invalid', 'the same assertion replayed');
  const fresh = authenticator.get(ceremony.options);
  assertProblem(t, await verify(app, { challengeId: ceremony.challengeId, response: fresh }), 400, 'webauthn_challenge_invalid', 'a new assertion over a used challenge');

  const expiring = await authenticationOptions(app);
  await database.db.update(webauthnChallenges).set({ expiresAt: new Date(Date.now() - 1) }).where(eq(webauthnChallenges.id, expiring.challengeId));
  assertProblem(t, await verify(app, { challengeId: expiring.challengeId, response: authenticator.get(expiring.options) }), 400, 'webauthn_challenge_invalid', 'expired');
  assertProblem(t, await verify(app, { challengeId: '00000000-0000-4000-8000-000000000000', response: fresh }), 400, 'webauthn_challenge_invalid', 'unknown');

  const registration = json<{ challengeId: string; options: { challenge: string } }>(await post(app, '/auth/passkeys/registration/options', undefined, bearer(ann.accessToken)));
  const ceremony2 = await authenticationOptions(app);
  const signed = authenticator.get({ ...ceremony2.options, challenge: registration.options.challenge });
  assertProblem(t, await verify(app, { challengeId: registration.challengeId, response: signed }), 400, 'webauthn_challenge_invalid', "a registration's challenge");
});

eachDatabase('of parallel verifies of one assertion exactly one signs in', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  await registerPasskey(app, ann.accessToken, authenticator);
  const ceremony = await authenticationOptions(app);
  const response = authenticator.get(ceremony.options);
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => verify(app, { challengeId: ceremony.challengeId, response })));
  t.same(results.map((r) => r.statusCode).sort(), [200, 400, 400, 400, 400]);
  for (const r of results.filter((r) => r.statusCode === 400)) assertProblem(t, r, 400, 'webauthn_challenge_invalid');
});

eachDatabase('a cloned authenticator is refused: a counter that does not grow is 401 passkey_invalid, in sequence and in parallel', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const original = new SoftwareAuthenticator();
  const passkey = await registerPasskey(app, ann.accessToken, original);
  const clone = original.clone();

  t.equal((await signInWithPasskey(app, original)).statusCode, 200, 'the original signs in');
  assertProblem(t, await signInWithPasskey(app, clone), 401, 'passkey_invalid', 'the clone reports the same counter');
  t.equal((await signInWithPasskey(app, original)).statusCode, 200, 'the original goes on');
  const [stored] = await database.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));

  // Two copies with one counter, each with its own challenge, at once: one of them, not both.
  const twin = original.clone();
  const [a, b] = await Promise.all([authenticationOptions(app), authenticationOptions(app)]);
  const results = await Promise.all([
    verify(app, { challengeId: a!.challengeId, response: original.get(a!.options) }),
    verify(app, { challengeId: b!.challengeId, response: twin.get(b!.options) }),
  ]);
  t.same(results.map((r) => r.statusCode).sort(), [200, 401]);
  const [after] = await database.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));
  t.equal(after!.counter, stored!.counter + 1);

  await app.gatehouse.background.idle();
  const failures = (await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id))).filter((e) => e.type === 'login_failed');
  t.equal(failures.length, 2);
  for (const failure of failures) t.match(failure.detail, { method: 'passkey', reason: 'counter' });
});

eachDatabase('an authenticator whose counter is always 0 signs in again and again', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const synced = new SoftwareAuthenticator({ signCounterIncrement: 0 });
  const passkey = await registerPasskey(app, ann.accessToken, synced);
  for (let i = 0; i < 3; i++) t.equal((await signInWithPasskey(app, synced)).statusCode, 200, `sign-in ${i + 1}`);
  const [stored] = await database.db.select().from(passkeys).where(eq(passkeys.id, passkey.id));
  t.equal(stored!.counter, 0);
});

eachDatabase('one answer for an unknown passkey, a disabled user, a wrong origin or RP ID, and a forged signature: 401 passkey_invalid', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  const passkey = await registerPasskey(app, ann.accessToken, authenticator);
  const details = new Set<string>();
  const refused = async (res: Awaited<ReturnType<typeof verify>>, label: string) => details.add(assertProblem(t, res, 401, 'passkey_invalid', label).detail);

  const phished = await authenticationOptions(app);
  await refused(await verify(app, { challengeId: phished.challengeId, response: authenticator.get(phished.options, 'http://localhost:6666') }), 'another origin');

  // A server whose RP is example.com (same database, same passkey), and an assertion scoped to localhost.
  const other = await buildTestApp(t, kind, { database, env: { WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: ORIGIN } });
  const foreign = await authenticationOptions(other.app);
  t.equal(foreign.options.rpId, 'example.com');
  await refused(await verify(other.app, { challengeId: foreign.challengeId, response: authenticator.get({ ...foreign.options, rpId: 'localhost' }) }), 'another RP ID');

  const forged = await authenticationOptions(app);
  const assertion = authenticator.get(forged.options);
  const signature = Buffer.from(assertion.response.signature, 'base64url');
  signature[signature.length - 1] = signature[signature.length - 1]! ^ 0x01;
  await refused(await verify(app, { challengeId: forged.challengeId, response: { ...assertion, response: { ...assertion.response, signature: signature.toString('base64url') } } }), 'a forged signature');

  const garbage = await authenticationOptions(app);
  const junk = { id: assertion.id, rawId: assertion.rawId, type: 'public-key', response: { clientDataJSON: 'AAAA', authenticatorData: 'AAAA', signature: 'AAAA' } };
  await refused(await verify(app, { challengeId: garbage.challengeId, response: junk }), 'garbage');

  await database.db.update(users).set({ active: false }).where(eq(users.id, ann.user.id));
  await app.gatehouse.access.changed(ann.user.id);
  await refused(await signInWithPasskey(app, authenticator), 'a disabled user');
  await database.db.update(users).set({ active: true }).where(eq(users.id, ann.user.id));

  t.equal((await app.inject({ method: 'DELETE', url: `/auth/passkeys/${passkey.id}`, headers: bearer(ann.accessToken) })).statusCode, 204);
  await refused(await signInWithPasskey(app, authenticator), 'a removed (unknown) passkey');
  t.equal(details.size, 1, 'one detail for all');

  assertProblem(t, await verify(app, { challengeId: garbage.challengeId, response: { id: 'x' } }), 400, 'validation_failed', 'not an assertion at all');
});

eachDatabase('passkey sign-in is rate-limited per IP like login', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { RATE_LIMIT_LOGIN: '2/1m' } });
  t.equal((await post(app, '/auth/passkeys/authentication/options', {})).statusCode, 200);
  t.equal((await post(app, '/auth/passkeys/authentication/options', {})).statusCode, 200);
  const limited = assertProblem(t, await post(app, '/auth/passkeys/authentication/options', {}), 429, 'rate_limited');
  t.ok(limited);
  const verifyLimited = { challengeId: '00000000-0000-4000-8000-000000000000', response: { id: 'AA', rawId: 'AA', type: 'public-key', response: { clientDataJSON: 'AA', authenticatorData: 'AA', signature: 'AA' } } };
  for (let i = 0; i < 2; i++) assertProblem(t, await verify(app, verifyLimited), 400, 'webauthn_challenge_invalid');
  assertProblem(t, await verify(app, verifyLimited), 429, 'rate_limited', 'verify has its own budget');
});
