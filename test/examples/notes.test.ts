import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tap from 'tap';
import { ensureAdmin } from '../../src/domain/admin-bootstrap.js';
import { buildNotesApp } from '../../examples/notes/app.js';
import { eachDatabase, tempDataDir, testConfig } from '../helpers/app.js';
import { openTestDatabase } from '../helpers/databases.js';
import { cleanEnv, runScript } from '../helpers/script.js';
import { freePort } from '../helpers/servers.js';
import { PASSWORD, bearer, uniqueEmail } from '../helpers/users.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

eachDatabase('a host app mounts Gatehouse and protects its own routes with the same rules', async (t, kind) => {
  const database = await openTestDatabase(kind);
  const app = await buildNotesApp(testConfig(), database);
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });

  t.equal(app.initialConfig.pluginTimeout, 10_000, "Fastify's default pluginTimeout: the example needs no more");

  const email = uniqueEmail('reader');
  const registered = await app.inject({ method: 'POST', url: '/identity/auth/register', payload: { email, password: PASSWORD } });
  t.equal(registered.statusCode, 201, 'Gatehouse routes answer under the prefix');
  const reader = bearer(registered.json().accessToken);

  t.equal((await app.inject({ url: '/hello' })).statusCode, 200, 'a public host route needs no token');
  const anonymous = await app.inject({ url: '/notes' });
  t.equal(anonymous.statusCode, 401);
  t.equal(anonymous.json().code, 'token_missing');
  t.equal((await app.inject({ url: '/notes', headers: reader })).statusCode, 200, 'a user has read');
  const write = await app.inject({ method: 'POST', url: '/notes', headers: reader, payload: { text: 'hi' } });
  t.equal(write.statusCode, 403, 'a user lacks write');
  t.equal(write.json().code, 'permission_denied');
  t.match(write.json().detail, /write/);
  t.match(write.headers['content-type'], /problem\+json/);

  const adminEmail = uniqueEmail('admin');
  await ensureAdmin(app.gatehouse.db, { email: adminEmail, password: PASSWORD, passwords: app.gatehouse.passwords });
  const login = await app.inject({ method: 'POST', url: '/identity/auth/login', payload: { email: adminEmail, password: PASSWORD } });
  const admin = bearer(login.json().accessToken);
  const created = await app.inject({ method: 'POST', url: '/notes', headers: admin, payload: { text: 'from admin' } });
  t.equal(created.statusCode, 201);
  t.equal(created.json().author, adminEmail, 'the handler sees who called through request.principal');
  t.equal((await app.inject({ url: '/notes/stats', headers: reader })).statusCode, 403, 'role admin required');
  t.same((await app.inject({ url: '/notes/stats', headers: admin })).json(), { count: 1 });
  t.equal((await app.inject({ method: 'DELETE', url: `/notes/${created.json().id}`, headers: admin })).statusCode, 204);
  t.equal((await app.inject({ method: 'DELETE', url: '/notes/1', headers: reader })).statusCode, 403);
});

tap.test('the notes example starts on a new data folder and answers: its database is opened before the plugin', async (t) => {
  const port = await freePort();
  const env = cleanEnv({ HOST: '127.0.0.1', PORT: String(port), DATA_DIR: tempDataDir(t), BCRYPT_COST: '4', LOG_LEVEL: 'silent' });
  const server = runScript(t, join(ROOT, 'examples/notes/server.ts'), { env });
  await server.waitFor(/notes example on/);
  const base = `http://127.0.0.1:${port}`;
  const registered = await fetch(`${base}/identity/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: uniqueEmail('first-run'), password: PASSWORD }),
  });
  t.equal(registered.status, 201);
  const { accessToken } = (await registered.json()) as { accessToken: string };
  const notes = await fetch(`${base}/notes`, { headers: bearer(accessToken) });
  t.equal(notes.status, 200);
  t.same(await notes.json(), { items: [] });
  server.kill('SIGTERM');
  t.equal(await server.exit, 0, 'SIGTERM closes the app, then the database, and the process ends by itself');
});
