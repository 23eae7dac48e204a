import { adminToken } from '../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../helpers/app.js';
import { forgeToken, validClaims } from '../helpers/jwt.js';
import { assertProblem } from '../helpers/problems.js';
import { post } from '../helpers/users.js';

/* What api.fuzz.test.ts found once, pinned down so that it stays fixed whatever the seed. */

eachDatabase('a malformed or over-long path is a problem+json 404 from the router too', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  for (const url of ['/%', '/admin/users/%FF', '/admin/roles/%zz', `/admin/roles/${'a'.repeat(101)}`, `/auth/sessions/${'a'.repeat(101)}`]) {
    assertProblem(t, await app.inject({ method: 'GET', url }), 404, 'not_found', url.slice(0, 30));
  }
});

eachDatabase('a token signed with our secret but naming no uuid is invalid, not a 500', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const uuid = '00000000-0000-4000-8000-000000000000';
  const tokens = {
    'sub is not a uuid': forgeToken(validClaims({ sub: 'someone', sid: uuid })),
    'sid is not a uuid': forgeToken(validClaims({ sub: uuid, sid: '\u202e' })),
    'sid is a number': forgeToken(validClaims({ sub: uuid, sid: 7 as unknown as string })),
  };
  for (const [label, token] of Object.entries(tokens)) {
    const headers = { authorization: `Bearer ${token}` };
    assertProblem(t, await app.inject({ url: '/auth/me', headers }), 401, 'token_invalid', `${label}: /auth/me`);
    assertProblem(t, await app.inject({ method: 'POST', url: '/auth/logout', headers }), 401, 'token_invalid', `${label}: /auth/logout`);
  }
});

eachDatabase('a lone surrogate is refused at the door, so no audit write fails on it', async (t, kind) => {
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines });
  const res = await post(app, '/auth/login', { email: '\ud800', password: 'whatever' });
  const body = assertProblem(t, res, 400, 'validation_failed');
  t.same(body.errors, [{ path: 'body/email', message: 'must be well-formed Unicode' }]);
  t.equal((await post(app, '/auth/login', { email: 'ann@example.com', password: 'pass 😀 word' })).statusCode, 401, 'a surrogate pair is fine');
  await app.gatehouse.background.idle();
  t.same(
    logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50),
    [],
    'nothing logged at error level',
  );
});

eachDatabase('an id or a date-time that ajv-formats accepts but PostgreSQL refuses is a 400 naming the field, not a 500', async (t, kind) => {
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, kind, { logLines });
  const admin = await adminToken(app);
  const cases: [string, string][] = [
    ['/admin/users/urn:uuid:00000000-0000-1000-8000-000000000000', 'params/id'],
    ['/auth/sessions/URN%3AUUID%3A00000000-0000-1000-8000-000000000000', 'params/id'],
    ['/admin/audit?user=urn:uuid:00000000-0000-1000-8000-000000000000', 'querystring/user'],
    ['/admin/audit?from=9999-12-31T23%3A59%3A59-23%3A59', 'querystring/from'],
    ['/admin/audit?to=0000-01-01T00%3A00%3A00Z', 'querystring/to'],
    ['/admin/audit?from=2016-12-31T23%3A59%3A60Z', 'querystring/from'],
  ];
  for (const [url, field] of cases) {
    const res = await app.inject({ method: url.startsWith('/auth/sessions') ? 'DELETE' : 'GET', url, headers: admin.headers });
    const body = assertProblem(t, res, 400, 'validation_failed', url);
    t.ok(body.errors?.some((e) => e.path === field), `${url}: names ${field}`);
  }
  t.same(
    logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50),
    [],
    'nothing logged at error level',
  );
});
