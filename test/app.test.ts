import { buildApp } from '../src/app.js';
import tap from 'tap';
import { tempDataDir, testConfig } from './helpers/app.js';
import { PASSWORD, post, uniqueEmail } from './helpers/users.js';

tap.test('the embedded PGlite database under DATA_DIR keeps users across a restart', async (t) => {
  const config = testConfig({ DATA_DIR: tempDataDir(t) });
  const email = uniqueEmail();
  const first = await buildApp(config);
  t.equal((await post(first, '/auth/register', { email, password: PASSWORD })).statusCode, 201);
  await first.close();

  const second = await buildApp(config);
  t.teardown(() => second.close());
  const res = await post(second, '/auth/login', { email, password: PASSWORD });
  t.equal(res.statusCode, 200, 'the user registered before the restart can log in');
  t.equal(res.json().user.loginCount, 2);
});

tap.test('responses carry a request id, and a harmless one from the caller is kept', async (t) => {
  const app = await buildApp(testConfig({ DATA_DIR: tempDataDir(t) }));
  t.teardown(() => app.close());
  const given = await app.inject({ url: '/health', headers: { 'x-request-id': 'abc-123' } });
  t.equal(given.headers['x-request-id'], 'abc-123');
  const hostile = await app.inject({ url: '/health', headers: { 'x-request-id': 'a\nb'.repeat(100) } });
  t.match(hostile.headers['x-request-id'], /^[0-9a-f-]{36}$/);
});
