import type { FastifyInstance } from 'fastify';
import { buildTestApp, eachDatabase, type Test } from '../helpers/app.js';
import { adminToken } from '../helpers/admin.js';
import { cleanEnv, runScript } from '../helpers/script.js';
import { bearer, login, registerUser } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

/** How long the resource server keeps the key set (its JWKS cache) in this test. */
const JWKS_CACHE_MS = 1000;

eachDatabase('a resource server knowing only the JWKS URL verifies tokens with jose, across a rotation and a revocation', async (t: Test, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { JWT_ALG: 'ES256', JWT_ISSUER: 'https://id.example.test', JWT_AUDIENCE: 'notes-api' } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const server = runScript(t, 'test/fixtures/resource-server.mjs', {
    execArgv: [],
    env: cleanEnv({ JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`, ISSUER: 'https://id.example.test', AUDIENCE: 'notes-api', JWKS_CACHE_MS: String(JWKS_CACHE_MS) }),
  });
  const rsPort = Number((await server.waitFor(/^listening \d+/)).split(' ')[1]);
  const resource = async (token: string) => {
    const res = await fetch(`http://127.0.0.1:${rsPort}/`, { headers: bearer(token) });
    return { status: res.status, body: (await res.json()) as { sub?: string; kid?: string; code?: string } };
  };
  const gatehouse = (instance: FastifyInstance, token: string) => instance.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) });

  const root = await adminToken(app);
  const user = await registerUser(app);
  const before = await resource(user.accessToken);
  t.equal(before.status, 200, 'verified before a rotation');
  t.equal(before.body.sub, user.user.id);
  const firstKid = before.body.kid!;

  const created = await app.inject({ method: 'POST', url: '/admin/signing-keys', headers: root.headers, payload: {} });
  const { kid } = created.json<{ kid: string }>();
  t.equal((await app.inject({ method: 'POST', url: `/admin/signing-keys/${kid}/activate`, headers: root.headers, payload: { force: true } })).statusCode, 200);
  const after = await login(app, user.email);
  // An unknown kid makes jose fetch the key set again (once its cooldown since the last fetch is over).
  await until(async () => (await resource(after.accessToken)).status === 200, 10_000);
  t.equal((await resource(after.accessToken)).body.kid, kid, 'verified after the rotation, with the new key');
  t.equal((await resource(user.accessToken)).status, 200, 'a token of the retired key still verifies');

  const revoked = await app.inject({ method: 'POST', url: `/admin/signing-keys/${firstKid}/revoke`, headers: root.headers, payload: { reason: 'test' } });
  t.equal(revoked.statusCode, 200);
  t.equal((await gatehouse(app, user.accessToken)).json().code, 'token_invalid', 'refused by Gatehouse at once');
  const refusedIn = await until(async () => (await resource(user.accessToken)).status === 401, 15_000);
  t.ok(refusedIn < 15_000, `refused by the resource server once its JWKS cache (${JWKS_CACHE_MS} ms) expired: after ${refusedIn} ms`);
  t.equal((await resource(user.accessToken)).body.code, 'ERR_JWKS_NO_MATCHING_KEY');
  t.equal((await resource(after.accessToken)).status, 200, 'the current key still verifies');
  server.kill();
  t.equal(await server.exit, 0);
});
