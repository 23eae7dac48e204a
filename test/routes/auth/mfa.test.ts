import { eq } from 'drizzle-orm';
import { auditEvents, mfaChallenges, recoveryCodes, sessions, totpFactors } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { claimsOf, forgeToken, validClaims } from '../../helpers/jwt.js';
import { TestAuthenticator, enrolTotp, mfaTokenFor } from '../../helpers/mfa.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, json, login, post, registerUser } from '../../helpers/users.js';

type Claims = ReturnType<typeof claimsOf> & { auth_time: number; amr: string[]; aal: string };
const claims = (token: string) => claimsOf(token) as Claims;
const get = (app: Parameters<typeof post>[0], url: string, token: string) => app.inject({ url, headers: bearer(token) });
const del = (app: Parameters<typeof post>[0], url: string, token: string) => app.inject({ method: 'DELETE', url, headers: bearer(token) });

eachDatabase('enrolment: a secret and otpauth URI, confirmed by a code, gives recovery codes and raises only this session to aal2', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind, { env: { TOTP_ISSUER: 'Acme Auth' } });
  const ann = await registerUser(app);
  const other = await login(app, ann.email);

  const enrolled = await post(app, '/auth/mfa/totp/enroll', undefined, bearer(ann.accessToken));
  t.equal(enrolled.statusCode, 201);
  const { secret, otpauthUri } = json<{ secret: string; otpauthUri: string }>(enrolled);
  t.match(secret, /^[A-Z2-7]{32}$/, '160 bits of base32');
  const uri = new URL(otpauthUri);
  t.equal(`${uri.protocol}//${uri.host}`, 'otpauth://totp');
  t.equal(decodeURIComponent(uri.pathname), `/Acme Auth:${ann.email}`, 'issuer and the email as label');
  const params = Object.fromEntries(uri.searchParams);
  t.match(params, { secret, issuer: 'Acme Auth' });
  // Left out, they are what every app assumes: SHA-1, 6 digits, 30 s.
  t.ok([undefined, 'SHA1'].includes(params.algorithm) && [undefined, '6'].includes(params.digits) && [undefined, '30'].includes(params.period));
  const [stored] = await database.db.select().from(totpFactors).where(eq(totpFactors.userId, ann.user.id));
  t.notMatch(stored!.secret, secret, 'the secret is stored sealed, not as is');
  t.equal(stored!.confirmedAt, null);
  t.equal((await get(app, '/auth/me', ann.accessToken)).json().mfaEnrolled, false, 'not enrolled until confirmed');
  t.equal(json<{ mfaRequired?: boolean }>(await post(app, '/auth/login', { email: ann.email, password: PASSWORD })).mfaRequired, undefined, 'logins unchanged until confirmed');

  const authenticator = new TestAuthenticator(secret);
  const wrong = await post(app, '/auth/mfa/totp/confirm', { code: await authenticator.wrong() }, bearer(ann.accessToken));
  assertProblem(t, wrong, 400, 'mfa_code_invalid', 'a wrong code at confirmation');
  const confirmed = await post(app, '/auth/mfa/totp/confirm', { code: await authenticator.next() }, bearer(ann.accessToken));
  t.equal(confirmed.statusCode, 200);
  const body = json<{ recoveryCodes: string[]; accessToken: string; refreshToken?: string; user: { aal: string; mfaEnrolled: boolean } }>(confirmed);
  t.equal(body.recoveryCodes.length, 10);
  t.equal(new Set(body.recoveryCodes).size, 10, 'all different');
  for (const code of body.recoveryCodes) t.match(code, /^[A-Z2-7]{16}$/);
  t.notOk('refreshToken' in body, 'the session keeps its refresh token');
  t.match(body.user, { aal: 'aal2', mfaEnrolled: true });
  t.match(claims(body.accessToken), { aal: 'aal2', amr: ['pwd', 'otp', 'mfa'], sid: claims(ann.accessToken).sid });
  const stored2 = await database.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, ann.user.id));
  t.equal(stored2.length, 10);
  t.notOk(stored2.some((row) => body.recoveryCodes.includes(row.codeHash)), 'recovery codes are stored hashed');

  const refreshed = json(await post(app, '/auth/refresh', { refreshToken: ann.refreshToken }));
  t.equal(claims(refreshed.accessToken).aal, 'aal2', "the confirming session's refresh token now issues aal2");
  const otherRefreshed = json(await post(app, '/auth/refresh', { refreshToken: other.refreshToken }));
  t.equal(claims(otherRefreshed.accessToken).aal, 'aal1', 'another session of the user stays aal1');
  t.match((await get(app, '/auth/me', otherRefreshed.accessToken)).json(), { mfaEnrolled: true, aal: 'aal1' });

  const status = (await get(app, '/auth/mfa', body.accessToken)).json() as { factors: { type: string; confirmedAt: string }[]; recoveryCodesLeft: number };
  t.equal(status.recoveryCodesLeft, 10);
  t.same(status.factors.map((f) => f.type), ['totp']);

  assertProblem(t, await post(app, '/auth/mfa/totp/enroll', undefined, bearer(body.accessToken)), 409, 'mfa_already_enrolled');
  assertProblem(t, await post(app, '/auth/mfa/totp/confirm', { code: await authenticator.next() }, bearer(body.accessToken)), 409, 'mfa_already_enrolled', 'confirming twice');
});

eachDatabase('enrolment: a new enroll replaces an unconfirmed one; an enrolment lasts 10 minutes; enroll needs a fresh session', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  assertProblem(t, await post(app, '/auth/mfa/totp/confirm', { code: '123456' }, bearer(ann.accessToken)), 409, 'mfa_not_enrolled', 'nothing to confirm');

  const first = json<{ secret: string }>(await post(app, '/auth/mfa/totp/enroll', undefined, bearer(ann.accessToken))).secret;
  const second = json<{ secret: string }>(await post(app, '/auth/mfa/totp/enroll', undefined, bearer(ann.accessToken))).secret;
  t.not(first, second);
  const replaced = await post(app, '/auth/mfa/totp/confirm', { code: await new TestAuthenticator(first).next() }, bearer(ann.accessToken));
  assertProblem(t, replaced, 400, 'mfa_code_invalid', "the replaced secret's code");

  await database.db.update(totpFactors).set({ createdAt: new Date(Date.now() - 601_000) }).where(eq(totpFactors.userId, ann.user.id));
  const late = await post(app, '/auth/mfa/totp/confirm', { code: await new TestAuthenticator(second).next() }, bearer(ann.accessToken));
  assertProblem(t, late, 409, 'mfa_not_enrolled', 'an enrolment older than 10 minutes');

  const { sub, sid } = claims(ann.accessToken);
  const stale = forgeToken(validClaims({ sub, sid }, { auth_time: Math.floor(Date.now() / 1000) - 601, amr: ['pwd'], aal: 'aal1' }));
  const refused = assertProblem(t, await post(app, '/auth/mfa/totp/enroll', undefined, bearer(stale)), 403, 'reauthentication_required');
  t.match(refused, { maxAge: 600, methods: ['password'] });
});

eachDatabase('login with a second factor: mfaRequired, then the code; a TOTP step is never accepted twice', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { authenticator, recoveryCodes: codes } = await enrolTotp(app, ann.accessToken);

  const first = await post(app, '/auth/login', { email: ann.email, password: PASSWORD, useCookie: true });
  t.equal(first.statusCode, 200);
  const step = first.json() as Record<string, unknown>;
  t.same(Object.keys(step).sort(), ['expiresIn', 'methods', 'mfaRequired', 'mfaToken'], 'no tokens');
  t.match(step, { mfaRequired: true, methods: ['totp', 'recovery_code'], expiresIn: 300 });
  t.match(step.mfaToken, /^[A-Za-z0-9_-]{43}$/);
  t.equal(first.headers['set-cookie'], undefined, 'no cookie');
  assertProblem(t, await post(app, '/auth/login', { email: ann.email, password: 'wrong password' }), 401, 'invalid_credentials', 'the password still comes first');

  const confirmStep = await authenticator.replay();
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: step.mfaToken, method: 'totp', code: confirmStep }), 401, 'mfa_code_invalid', 'the code used to confirm');
  const verified = await post(app, '/auth/mfa/verify', { mfaToken: step.mfaToken, method: 'totp', code: await authenticator.next(), useCookie: true });
  t.equal(verified.statusCode, 200);
  const tokens = json(verified);
  t.match(claims(tokens.accessToken), { aal: 'aal2', amr: ['pwd', 'otp', 'mfa'] });
  t.ok(tokens.csrfToken, 'cookie mode asked at the second step');
  t.match(verified.headers['set-cookie'], /gatehouse_refresh=/);
  t.equal((await get(app, '/auth/me', tokens.accessToken)).json().aal, 'aal2');
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: step.mfaToken, method: 'totp', code: await authenticator.replay() }), 401, 'mfa_token_invalid', 'an mfaToken is single use');

  const again = await mfaTokenFor(app, ann.email, PASSWORD);
  const replay = await post(app, '/auth/mfa/verify', { mfaToken: again, method: 'totp', code: await authenticator.replay() });
  assertProblem(t, replay, 401, 'mfa_code_invalid', 'the same code at the next login');

  const rc = await post(app, '/auth/mfa/verify', { mfaToken: again, method: 'recovery_code', code: codes[0]!.toLowerCase().replace(/(.{4})/g, '$1-').slice(0, -1) });
  t.equal(rc.statusCode, 200, 'a recovery code, typed lower-case in groups');
  t.match(claims(json(rc).accessToken), { aal: 'aal2', amr: ['pwd', 'rc', 'mfa'] });
  const third = await mfaTokenFor(app, ann.email, PASSWORD);
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: third, method: 'recovery_code', code: codes[0] }), 401, 'mfa_code_invalid', 'a used recovery code');
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: third, method: 'recovery_code', code: 'not a code' }), 401, 'mfa_code_invalid', 'a malformed one');
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: third, method: 'totp', code: '12345' }), 401, 'mfa_code_invalid', 'a malformed TOTP code');
  t.equal((await get(app, '/auth/mfa', tokens.accessToken)).json().recoveryCodesLeft, 9);

  for (const mfaToken of ['nonsense', 'A'.repeat(43)]) {
    assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken, method: 'totp', code: '123456' }), 401, 'mfa_token_invalid', `mfaToken ${mfaToken}`);
  }
  assertProblem(t, await post(app, '/auth/mfa/verify', { mfaToken: third, method: 'sms', code: '123456' }), 400, 'validation_failed', 'an unknown method');
});

eachDatabase('an mfaToken dies after 5 wrong codes or 5 minutes; 10 wrong codes per user lock the second step (429 mfa_locked)', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { authenticator } = await enrolTotp(app, ann.accessToken);
  const verify = (mfaToken: string, code: string) => post(app, '/auth/mfa/verify', { mfaToken, method: 'totp', code });
  const wrong = await authenticator.wrong();

  const first = await mfaTokenFor(app, ann.email, PASSWORD);
  for (let i = 1; i <= 5; i++) assertProblem(t, await verify(first, wrong), 401, 'mfa_code_invalid', `wrong code ${i}`);
  assertProblem(t, await verify(first, await authenticator.next()), 401, 'mfa_token_invalid', 'the right code after 5 wrong ones');
  authenticator.lastStep -= 1; // that code never reached the factor: it is still unused

  const expired = await mfaTokenFor(app, ann.email, PASSWORD);
  await database.db.update(mfaChallenges).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(mfaChallenges.userId, ann.user.id));
  assertProblem(t, await verify(expired, await authenticator.next()), 401, 'mfa_token_invalid', 'an expired mfaToken');
  authenticator.lastStep -= 1;

  const second = await mfaTokenFor(app, ann.email, PASSWORD);
  for (let i = 6; i <= 10; i++) assertProblem(t, await verify(second, wrong), 401, 'mfa_code_invalid', `wrong code ${i}`);
  const third = await mfaTokenFor(app, ann.email, PASSWORD);
  t.ok(third, 'the password step still answers mfaRequired while codes are locked');
  const locked = assertProblem(t, await verify(third, await authenticator.next()), 429, 'mfa_locked', 'even the right code');
  t.match(locked.detail, /Too many wrong codes/);
  const retryAfter = Number((await verify(third, wrong)).headers['retry-after']);
  t.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After is what is left of the 15 minutes (${retryAfter} s)`);
  assertProblem(t, await post(app, '/auth/reauthenticate', { method: 'totp', code: wrong }, bearer(ann.accessToken)), 429, 'mfa_locked', 'the lock holds for step-up too');

  await app.gatehouse.background.idle();
  const events = await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id));
  t.equal(events.filter((e) => e.type === 'mfa_failed').length, 10, 'each wrong code is audited');
  t.equal(events.filter((e) => e.type === 'mfa_locked').length, 1, 'the lockout once');
  t.match(events.find((e) => e.type === 'mfa_failed')!.detail, { method: 'totp', reason: 'wrong_code', action: 'login' });
  t.equal(events.filter((e) => e.type === 'mfa_enrolled').length, 1, 'the enrolment');
});

eachDatabase('step-up: POST /auth/reauthenticate with the password or a code renews auth_time for the same session; a code raises it to aal2', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind, { env: { LOGIN_MAX_FAILURES: '3' } });
  const ann = await registerUser(app);
  const before = await login(app, ann.email);
  const { sid } = claims(ann.accessToken);
  const old = new Date(Date.now() - 3600_000);
  await database.db.update(sessions).set({ authTime: old }).where(eq(sessions.id, sid));
  const staleToken = json(await post(app, '/auth/refresh', { refreshToken: ann.refreshToken })).accessToken;
  assertProblem(t, await post(app, '/auth/mfa/totp/enroll', undefined, bearer(staleToken)), 403, 'reauthentication_required');

  const stepUp = await post(app, '/auth/reauthenticate', { password: PASSWORD }, bearer(staleToken));
  t.equal(stepUp.statusCode, 200);
  const stepped = json(stepUp);
  t.notOk('refreshToken' in stepped, 'the session keeps its refresh token');
  const fresh = claims(stepped.accessToken);
  t.equal(fresh.sid, sid, 'the same session');
  t.ok(fresh.auth_time > Math.floor(old.getTime() / 1000) + 3000, 'auth_time is now');
  t.match(fresh, { aal: 'aal1', amr: ['pwd'] });
  t.equal(claims(json(await post(app, '/auth/refresh', { refreshToken: ann.refreshToken })).accessToken).auth_time, fresh.auth_time, 'the session row has it');
  const { authenticator } = await enrolTotp(app, stepped.accessToken);

  // A session opened before the enrolment stays aal1 until it proves the factor.
  t.equal(claims(before.accessToken).aal, 'aal1');
  assertProblem(t, await post(app, '/auth/reauthenticate', { method: 'totp', code: await authenticator.wrong() }, bearer(before.accessToken)), 401, 'mfa_code_invalid');
  const raised = await post(app, '/auth/reauthenticate', { method: 'totp', code: await authenticator.next() }, bearer(before.accessToken));
  t.equal(raised.statusCode, 200);
  t.match(claims(json(raised).accessToken), { aal: 'aal2', amr: ['pwd', 'otp', 'mfa'], sid: claims(before.accessToken).sid });
  t.equal(claims(json(await post(app, '/auth/refresh', { refreshToken: before.refreshToken })).accessToken).aal, 'aal2', 'and its refresh carries aal2');
  assertProblem(t, await post(app, '/auth/reauthenticate', { method: 'totp', code: await authenticator.replay() }, bearer(before.accessToken)), 401, 'mfa_code_invalid', 'a replayed code');

  for (let i = 1; i <= 3; i++) {
    assertProblem(t, await post(app, '/auth/reauthenticate', { password: 'not it' }, bearer(staleToken)), 401, 'invalid_credentials', `wrong password ${i}`);
  }
  assertProblem(t, await post(app, '/auth/reauthenticate', { password: PASSWORD }, bearer(staleToken)), 429, 'login_locked', 'wrong passwords count toward the login lockout');
  assertProblem(t, await post(app, '/auth/login', { email: ann.email, password: PASSWORD }), 429, 'login_locked', 'the login is locked too');
  assertProblem(t, await post(app, '/auth/reauthenticate', { method: 'sms', code: '1' }, bearer(staleToken)), 400, 'validation_failed');
  assertProblem(t, await post(app, '/auth/reauthenticate', { password: PASSWORD }), 401, 'token_missing', 'only for a signed-in user');

  await app.gatehouse.background.idle();
  const events = await database.db.select().from(auditEvents).where(eq(auditEvents.userId, ann.user.id));
  t.match(events.filter((e) => e.type === 'reauthenticated').map((e) => e.detail), [{ method: 'password', aal: 'aal1' }, { method: 'totp', aal: 'aal2' }]);
  t.match(events.find((e) => e.type === 'login_failed')!.detail, { action: 'reauthenticate', reason: 'wrong_password' });
});
