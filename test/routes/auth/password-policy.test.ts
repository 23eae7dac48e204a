import { eq } from 'drizzle-orm';
import bcrypt from 'bcrypt';
import { users } from '../../../src/db/schema.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { PASSWORD, bearer, post, registerUser, uniqueEmail } from '../../helpers/users.js';

eachDatabase('every policy failure answers 400 weak_password saying which rule failed', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const cases: [string, string, RegExp][] = [
    ['too short', 'abc12', /at least 8/],
    ['common', 'password1', /commonly used/],
    ['contains the email', 'hello-marguerite-99', /email/],
  ];
  for (const [label, password, detail] of cases) {
    const res = await post(app, '/auth/register', { email: 'marguerite@example.com', password });
    t.equal(res.statusCode, 400, label);
    t.equal(res.json().code, 'weak_password', label);
    t.match(res.json().detail, detail, label);
  }
  const user = await registerUser(app);
  const change = await post(app, '/auth/password/change', { currentPassword: PASSWORD, newPassword: 'iloveyou' }, bearer(user.accessToken));
  t.equal(change.json().code, 'weak_password', 'password change applies the policy too');
});

eachDatabase('a hash made at an older BCRYPT_COST is upgraded at the next successful login', async (t, kind) => {
  const old = await buildTestApp(t, kind, { env: { BCRYPT_COST: '4' } });
  const email = uniqueEmail();
  await registerUser(old.app, { email });
  const hashOf = async () => (await old.database.db.select().from(users).where(eq(users.email, email)))[0]!.passwordHash;
  t.equal(bcrypt.getRounds(await hashOf()), 4);

  const upgraded = await buildTestApp(t, kind, { env: { BCRYPT_COST: '5' }, database: old.database });
  t.equal((await post(upgraded.app, '/auth/login', { email, password: 'wrong password here' })).statusCode, 401);
  t.equal(bcrypt.getRounds(await hashOf()), 4, 'a failed login changes nothing');
  t.equal((await post(upgraded.app, '/auth/login', { email, password: PASSWORD })).statusCode, 200);
  t.equal(bcrypt.getRounds(await hashOf()), 5, 'rehashed at the new cost');
  t.equal((await post(upgraded.app, '/auth/login', { email, password: PASSWORD })).statusCode, 200, 'and the new hash verifies');
});
