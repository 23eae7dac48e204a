import { eq } from 'drizzle-orm';
import { sessions, totpFactors } from '../../../src/db/schema.js';
import { KeyRing } from '../../../src/lib/encryption.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { TestAuthenticator, enrolTotp, mfaTokenFor } from '../../helpers/mfa.js';
import { PASSWORD, bearer, post, registerUser } from '../../helpers/users.js';

const PARALLEL = 8;

eachDatabase('the same TOTP code sent with several mfaTokens at once opens exactly one session', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { authenticator } = await enrolTotp(app, ann.accessToken);
  const tokens = await Promise.all(Array.from({ length: PARALLEL }, () => mfaTokenFor(app, ann.email, PASSWORD)));
  const code = await authenticator.next();
  const answers = await Promise.all(tokens.map((mfaToken) => post(app, '/auth/mfa/verify', { mfaToken, method: 'totp', code })));
  const statuses = answers.map((res) => res.statusCode).sort();
  t.same(statuses, [200, ...Array<number>(PARALLEL - 1).fill(401)], 'one success, every other one refused');
  t.ok(answers.filter((res) => res.statusCode === 401).every((res) => res.json().code === 'mfa_code_invalid'), 'as a replay');
  const aal2 = (await database.db.select().from(sessions).where(eq(sessions.userId, ann.user.id))).filter((s) => s.amr.includes('otp'));
  t.equal(aal2.length, 2, 'the confirming session and one new session proved the code');
});

eachDatabase('one recovery code sent several times at once is used exactly once', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { recoveryCodes } = await enrolTotp(app, ann.accessToken);
  const tokens = await Promise.all(Array.from({ length: PARALLEL }, () => mfaTokenFor(app, ann.email, PASSWORD)));
  const answers = await Promise.all(tokens.map((mfaToken) => post(app, '/auth/mfa/verify', { mfaToken, method: 'recovery_code', code: recoveryCodes[0] })));
  t.same(answers.map((res) => res.statusCode).sort(), [200, ...Array<number>(PARALLEL - 1).fill(401)]);
  t.equal((await app.inject({ url: '/auth/mfa', headers: { authorization: `Bearer ${answers.find((r) => r.statusCode === 200)!.json().accessToken}` } })).json().recoveryCodesLeft, 9);
});

eachDatabase('two right codes at once on one mfaToken open one session', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { authenticator, recoveryCodes } = await enrolTotp(app, ann.accessToken);
  const mfaToken = await mfaTokenFor(app, ann.email, PASSWORD);
  const answers = await Promise.all([
    post(app, '/auth/mfa/verify', { mfaToken, method: 'totp', code: await authenticator.next() }),
    post(app, '/auth/mfa/verify', { mfaToken, method: 'recovery_code', code: recoveryCodes[0] }),
  ]);
  t.same(answers.map((res) => res.statusCode).sort(), [200, 401]);
  t.equal(answers.find((res) => res.statusCode === 401)!.json().code, 'mfa_token_invalid');
});

eachDatabase('rotating ENCRYPTION_KEYS: the old key still opens a secret, which is sealed again under the new one as it is used', async (t, kind) => {
  const oldKey = `old:${Buffer.alloc(32, 3).toString('base64')}`;
  const newKey = `new:${Buffer.alloc(32, 4).toString('base64')}`;
  const first = await buildTestApp(t, kind, { env: { ENCRYPTION_KEYS: oldKey } });
  const ann = await registerUser(first.app);
  const { authenticator } = await enrolTotp(first.app, ann.accessToken);
  const sealed = async () => (await first.database.db.select().from(totpFactors).where(eq(totpFactors.userId, ann.user.id)))[0]!.secret;
  t.match(await sealed(), /^old\./);

  // Restarted with a new key first: the old one stays until nothing is sealed under it.
  const { app } = await buildTestApp(t, kind, { env: { ENCRYPTION_KEYS: `${newKey},${oldKey}` }, database: first.database });
  const mfaToken = await mfaTokenFor(app, ann.email, PASSWORD);
  const res = await post(app, '/auth/mfa/verify', { mfaToken, method: 'totp', code: await authenticator.next() });
  t.equal(res.statusCode, 200);
  const resealed = await sealed();
  t.match(resealed, /^new\./, 'sealed again under the new key');
  const newOnly = new KeyRing([{ id: 'new', key: Buffer.alloc(32, 4) }]);
  t.equal(newOnly.open(resealed, `totp:${ann.user.id}`).plaintext, authenticator.secret, 'the new key alone opens it now');
});

eachDatabase('two confirmations of one enrolment at once: one enrols, the other is told it is done', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const ann = await registerUser(app);
  const { secret } = (await post(app, '/auth/mfa/totp/enroll', undefined, bearer(ann.accessToken))).json() as { secret: string };
  const code = await new TestAuthenticator(secret).next();
  const answers = await Promise.all([1, 2].map(() => post(app, '/auth/mfa/totp/confirm', { code }, bearer(ann.accessToken))));
  t.same(answers.map((res) => res.statusCode).sort(), [200, 409]);
  t.equal(answers.find((res) => res.statusCode === 409)!.json().code, 'mfa_already_enrolled');
});
