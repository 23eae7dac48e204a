import { eq } from 'drizzle-orm';
import { auditEvents, passkeys, webauthnChallenges } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { ORIGIN, SoftwareAuthenticator, registerPasskey, registrationOptions, withoutUserVerification } from '../../helpers/passkeys.js';
import { assertProblem } from '../../helpers/problems.js';
import { bearer, json, post, registerUser } from '../../helpers/users.js';

const verify = (app: Parameters<typeof post>[0], token: string, body: Record<string, unknown>) => post(app, '/auth/passkeys/registration/verify', body, bearer(token));
const get = (app: Parameters<typeof post>[0], url: string, token: string) => app.inject({ url, headers: bearer(token) });

eachDatabase('registration: options for a discoverable, user-verified passkey with an opaque user handle; verify stores it once', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app, { name: 'Ann' });
  const authenticator = new SoftwareAuthenticator();

  const first = await registrationOptions(app, ann.accessToken);
  t.match(first.challengeId, /^[0-9a-f-]{36}$/);
  const options = first.options;
  t.match(options, {
    rp: { name: 'Gatehouse', id: 'localhost' },
    user: { name: ann.email, displayName: 'Ann' },
    attestation: 'none',
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    excludeCredentials: [],
    timeout: 300_000,
  });
  const handle = Buffer.from(options.user.id, 'base64url');
  t.equal(handle.length, 32, 'the user handle is 32 random bytes');
  t.notOk(handle.toString('utf8').includes(ann.email) || options.user.id.includes(ann.user.id), 'neither the email nor the user id');

  const created = await verify(app, ann.accessToken, { challengeId: first.challengeId, response: authenticator.create(options), name: '  Laptop  ' });
  t.equal(created.statusCode, 201, created.body);
  const passkey = json<{ id: string; name: string; createdAt: string; backedUp: boolean; lastUsedAt: null }>(created);
  t.match(passkey, { name: 'Laptop', backedUp: Boolean, lastUsedAt: null });
  t.same(Object.keys(passkey).sort(), ['backedUp', 'createdAt', 'id', 'lastUsedAt', 'name'], 'no key material in the answer');

  const replay = await verify(app, ann.accessToken, { challengeId: first.challengeId, response: authenticator.create(options) });
  assertProblem(t, replay, 400, 'webauthn_challenge_invalid', 'a used challenge');

  const second = (await registrationOptions(app, ann.accessToken)).options;
  t.equal(second.user.id, options.user.id, 'one user handle per user');
  t.same(
    second.excludeCredentials.map((c: { id: string }) => c.id),
    (await database.db.select().from(passkeys).where(eq(passkeys.userId, ann.user.id))).map((p) => p.credentialId),
    'the passkeys already registered are excluded',
  );

  const listed = json<{ items: { id: string; name: string }[] }>(await get(app, '/auth/passkeys', ann.accessToken));
  t.same(listed.items.map((p) => [p.id, p.name]), [[passkey.id, 'Laptop']]);
  const bob = await registerUser(app);
  t.same(json<{ items: unknown[] }>(await get(app, '/auth/passkeys', bob.accessToken)).items, [], "another user's list is their own");

  await app.gatehouse.background.idle();
  const events = await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id));
  t.match(events.find((e) => e.type === 'passkey_registered')?.detail, { passkeyId: passkey.id });
  t.match(JSON.stringify(events), /passkey_registered/);
  t.notMatch(JSON.stringify(events), /publicKey|attestation/i, 'no key material in the audit log');
});

eachDatabase('registration needs a fresh session, and a challenge issued to this user, unexpired, used once', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const bob = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();
  const { sub, sid } = claimsOf(ann.accessToken) as unknown as { sub: string; sid: string };
  const stale = forgeToken(validClaims({ sub, sid }, { auth_time: Math.floor(Date.now() / 1000) - 601, amr: ['pwd'], aal: 'aal1' }));
  assertProblem(t, await post(app, '/auth/passkeys/registration/options', undefined, bearer(stale)), 403, 'reauthentication_required');
  assertProblem(t, await post(app, '/auth/passkeys/registration/options'), 401, 'token_missing');

  const forBob = await registrationOptions(app, bob.accessToken);
  assertProblem(t, await verify(app, ann.accessToken, { challengeId: forBob.challengeId, response: authenticator.create(forBob.options) }), 400, 'webauthn_challenge_invalid', "another user's challenge");
  assertProblem(t, await verify(app, bob.accessToken, { challengeId: forBob.challengeId, response: authenticator.create(forBob.options) }), 400, 'webauthn_challenge_invalid', 'which it used up');

  const expiring = await registrationOptions(app, ann.accessToken);
  await database.db.update(webauthnChallenges).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(webauthnChallenges.id, expiring.challengeId));
  assertProblem(t, await verify(app, ann.accessToken, { challengeId: expiring.challengeId, response: authenticator.create(expiring.options) }), 400, 'webauthn_challenge_invalid', 'an expired challenge');

  const unknown = await registrationOptions(app, ann.accessToken);
  const response = authenticator.create(unknown.options);
  assertProblem(t, await verify(app, ann.accessToken, { challengeId: '00000000-0000-4000-8000-000000000000', response }), 400, 'webauthn_challenge_invalid', 'an unknown challenge');
  assertProblem(t, await verify(app, ann.accessToken, { challengeId: 'not-a-uuid', response }), 400, 'validation_failed', 'a malformed challenge id');
  t.equal((await verify(app, ann.accessToken, { challengeId: unknown.challengeId, response })).statusCode, 201, 'its own challenge still works');
});

eachDatabase('registration refuses a wrong origin, another RP ID, no user verification, and garbage: 400 webauthn_verification_failed', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const authenticator = new SoftwareAuthenticator();

  const phished = await registrationOptions(app, ann.accessToken);
  const wrongOrigin = await verify(app, ann.accessToken, { challengeId: phished.challengeId, response: authenticator.create(phished.options, 'http://localhost:6666') });
  t.match(assertProblem(t, wrongOrigin, 400, 'webauthn_verification_failed', 'another origin').detail, /origin/i);

  // A server whose RP is example.com, served to a page whose authenticator scoped the credential to localhost.
  const other = await buildTestApp(t, kind, { database, env: { WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: ORIGIN } });
  const foreign = await registrationOptions(other.app, ann.accessToken);
  t.equal(foreign.options.rp.id, 'example.com');
  const asLocalhost = { ...foreign.options, rp: { name: 'Gatehouse', id: 'localhost' } };
  const wrongRp = await verify(other.app, ann.accessToken, { challengeId: foreign.challengeId, response: authenticator.create(asLocalhost) });
  t.match(assertProblem(t, wrongRp, 400, 'webauthn_verification_failed', 'another RP ID').detail, /RP ID/i);

  const noUv = await registrationOptions(app, ann.accessToken);
  const unverified = await verify(app, ann.accessToken, { challengeId: noUv.challengeId, response: withoutUserVerification(authenticator.create(noUv.options)) });
  t.match(assertProblem(t, unverified, 400, 'webauthn_verification_failed', 'no user verification').detail, /verif/i);

  const garbage = await registrationOptions(app, ann.accessToken);
  const junk = { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'AAAA', attestationObject: 'AAAA' }, clientExtensionResults: {} };
  assertProblem(t, await verify(app, ann.accessToken, { challengeId: garbage.challengeId, response: junk }), 400, 'webauthn_verification_failed', 'garbage');
  assertProblem(t, await verify(app, ann.accessToken, { challengeId: garbage.challengeId, response: { id: 1 } }), 400, 'validation_failed', 'not a credential at all');
  t.equal((await database.db.select().from(passkeys).where(eq(passkeys.userId, ann.user.id))).length, 0, 'nothing was stored');
});

eachDatabase('registration: PASSKEYS_MAX_PER_USER holds under parallel registrations; one credential registers once', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind, { env: { PASSKEYS_MAX_PER_USER: '2' } });
  const ann = await registerUser(app);
  await registerPasskey(app, ann.accessToken, new SoftwareAuthenticator());
  const ceremonies = await Promise.all([1, 2, 3].map(() => registrationOptions(app, ann.accessToken)));
  const results = await Promise.all(ceremonies.map((c) => verify(app, ann.accessToken, { challengeId: c.challengeId, response: new SoftwareAuthenticator().create(c.options) })));
  t.same(results.map((r) => r.statusCode).sort(), [201, 409, 409], 'one more, no more');
  for (const refused of results.filter((r) => r.statusCode === 409)) assertProblem(t, refused, 409, 'passkey_limit_reached');
  assertProblem(t, await post(app, '/auth/passkeys/registration/options', undefined, bearer(ann.accessToken)), 409, 'passkey_limit_reached', 'no options at the limit');
  t.equal((await database.db.select().from(passkeys).where(eq(passkeys.userId, ann.user.id))).length, 2);

  const bob = await registerUser(app);
  const ceremony = await registrationOptions(app, bob.accessToken);
  const response = new SoftwareAuthenticator().create(ceremony.options);
  // The same credential id stored meanwhile (for another user): the unique index decides.
  const [taken] = await database.db.select().from(passkeys).where(eq(passkeys.userId, ann.user.id)).limit(1);
  await database.db.update(passkeys).set({ credentialId: response.id }).where(eq(passkeys.id, taken!.id));
  assertProblem(t, await verify(app, bob.accessToken, { challengeId: ceremony.challengeId, response }), 409, 'passkey_exists');
});

eachDatabase('registration: of parallel verifies of one challenge exactly one succeeds', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const ceremony = await registrationOptions(app, ann.accessToken);
  const response = new SoftwareAuthenticator().create(ceremony.options);
  const results = await Promise.all([1, 2, 3, 4].map(() => verify(app, ann.accessToken, { challengeId: ceremony.challengeId, response })));
  t.same(results.map((r) => r.statusCode).sort(), [201, 400, 400, 400]);
  for (const r of results.filter((r) => r.statusCode === 400)) assertProblem(t, r, 400, 'webauthn_challenge_invalid');
  t.equal((await database.db.select().from(passkeys).where(eq(passkeys.userId, ann.user.id))).length, 1);
});

eachDatabase('rename and remove: only your own passkeys; removing needs a fresh session and is audited', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const bob = await registerUser(app);
  const passkey = await registerPasskey(app, ann.accessToken, new SoftwareAuthenticator());
  const patch = (token: string, id: string, body: unknown) => app.inject({ method: 'PATCH', url: `/auth/passkeys/${id}`, headers: bearer(token), payload: body as object });
  const del = (token: string, id: string) => app.inject({ method: 'DELETE', url: `/auth/passkeys/${id}`, headers: bearer(token) });

  const renamed = await patch(ann.accessToken, passkey.id, { name: 'Phone 📱' });
  t.equal(renamed.statusCode, 200);
  t.match(json(renamed), { id: passkey.id, name: 'Phone 📱' });
  assertProblem(t, await patch(bob.accessToken, passkey.id, { name: 'Mine' }), 404, 'not_found', "someone else's passkey");
  assertProblem(t, await patch(ann.accessToken, passkey.id, { name: '   ' }), 400, 'validation_failed', 'a blank name');
  assertProblem(t, await patch(ann.accessToken, passkey.id, { name: 'x'.repeat(101) }), 400, 'validation_failed', 'a long name');
  assertProblem(t, await patch(ann.accessToken, 'nope', { name: 'x' }), 400, 'validation_failed', 'a malformed id');

  assertProblem(t, await del(bob.accessToken, passkey.id), 404, 'not_found', "removing someone else's");
  const { sub, sid } = claimsOf(ann.accessToken) as unknown as { sub: string; sid: string };
  const stale = forgeToken(validClaims({ sub, sid }, { auth_time: Math.floor(Date.now() / 1000) - 601, amr: ['pwd'], aal: 'aal1' }));
  assertProblem(t, await del(stale, passkey.id), 403, 'reauthentication_required');
  t.equal((await del(ann.accessToken, passkey.id)).statusCode, 204);
  assertProblem(t, await del(ann.accessToken, passkey.id), 404, 'not_found', 'removed already');
  t.same(json<{ items: unknown[] }>(await get(app, '/auth/passkeys', ann.accessToken)).items, []);

  await app.gatehouse.background.idle();
  const events = await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id));
  t.match(events.find((e) => e.type === 'passkey_removed')?.detail, { passkeyId: passkey.id });
});
