import { generate } from 'otplib';
import tap from 'tap';
import { createUser } from '../../src/domain/users.js';
import { startTotpEnrolment, useTotpCode } from '../../src/domain/mfa.js';
import { normalizeRecoveryCode } from '../../src/domain/recovery-codes.js';
import { matchTotpCode, newTotpSecret, timeStepAt } from '../../src/domain/totp.js';
import { totpFactors } from '../../src/db/schema.js';
import { KeyRing } from '../../src/lib/encryption.js';
import { eachDatabase } from '../helpers/app.js';
import { openTestDatabase } from '../helpers/databases.js';

// Fixed instants: every check here names its own time, none depends on the clock.
const T0 = new Date('2026-03-01T12:00:10Z');
const step0 = timeStepAt(T0);
const at = (steps: number, seconds = 0) => new Date(T0.getTime() + steps * 30_000 + seconds * 1000);
const codeOf = (secret: string, step: number) => generate({ secret, epoch: step * 30 });

tap.test('a code is accepted within one step of its own, and refused further away, malformed, or at or before the last step used', async (t) => {
  const secret = newTotpSecret();
  const code = await codeOf(secret, step0);
  t.equal(await matchTotpCode(secret, code, { at: T0 }), step0, 'its own step');
  t.equal(await matchTotpCode(secret, code, { at: at(-1) }), step0, 'one step early (a fast phone)');
  t.equal(await matchTotpCode(secret, code, { at: at(1) }), step0, 'one step late (a slow phone, a slow user)');
  t.equal(await matchTotpCode(secret, code, { at: at(2) }), null, 'two steps late');
  t.equal(await matchTotpCode(secret, code, { at: at(-2) }), null, 'two steps early');
  t.equal(await matchTotpCode(secret, code, { at: T0, afterStep: step0 - 1 }), step0, 'after an older step');
  t.equal(await matchTotpCode(secret, code, { at: T0, afterStep: step0 }), null, 'its step was used');
  t.equal(await matchTotpCode(secret, code, { at: T0, afterStep: step0 + 1 }), null, 'a later step was used');
  t.equal(await matchTotpCode(secret, code, { at: T0, afterStep: step0 + 5 }), null, 'the clock went back past the last step used');
  for (const bad of ['12345', '1234567', 'abcdef', '', ' 12345']) t.equal(await matchTotpCode(secret, bad, { at: T0 }), null, JSON.stringify(bad));
  t.equal(await matchTotpCode(secret, code), null, 'now is long after the fixed instant');
});

tap.test('recovery codes are read whatever the case, spaces and dashes', async (t) => {
  t.equal(normalizeRecoveryCode(' abcd-efgh ijkl-mn23 '), 'ABCDEFGHIJKLMN23');
  t.equal(normalizeRecoveryCode('ABCDEFGHIJKLMN2'), null, 'too short');
  t.equal(normalizeRecoveryCode('ABCDEFGHIJKLMN01'), null, '0 and 1 are not base32');
});

eachDatabase('useTotpCode marks each step used once, in order, and re-seals a secret under an older key', async (t, kind) => {
  const database = await openTestDatabase(kind);
  t.teardown(() => database.drop());
  const { db } = database;
  const user = (await createUser(db, { email: 'totp@example.com', passwordHash: 'x' }))!;
  const oldRing = new KeyRing([{ id: 'old', key: Buffer.alloc(32, 1) }]);
  const ring = new KeyRing([{ id: 'new', key: Buffer.alloc(32, 2) }, { id: 'old', key: Buffer.alloc(32, 1) }]);
  t.same(await useTotpCode(db, ring, user.id, '123456', T0), { ok: false, reason: 'not_enrolled' });
  const { secret } = await startTotpEnrolment(db, oldRing, user, 'Gatehouse', T0);
  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0), T0), { ok: false, reason: 'not_enrolled' }, 'not before it is confirmed');
  await db.update(totpFactors).set({ confirmedAt: T0 });

  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0), T0), { ok: true });
  const [row] = await db.select().from(totpFactors);
  t.equal(row!.lastUsedStep, step0);
  t.match(row!.secret, /^new\./, 'sealed again under the first key as it was used');
  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0), at(0, 20)), { ok: false, reason: 'replayed' }, 'the same code, later in its step');
  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0 + 1), at(1)), { ok: true }, 'the next step');
  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0), at(1)), { ok: false, reason: 'replayed' }, 'an older step, still within tolerance');
  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0 + 1), at(5)), { ok: false, reason: 'wrong_code' }, 'too old to be anything but wrong');
  t.same(await useTotpCode(db, ring, user.id, await codeOf(secret, step0 + 3), at(3)), { ok: true }, 'steps may be skipped');
});
