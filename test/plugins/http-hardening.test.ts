import { buildTestApp, eachDatabase } from '../helpers/app.js';
import { bearer, post, registerUser } from '../helpers/users.js';

const ALLOWED = 'https://app.example.test';

eachDatabase('security headers suit a JSON API, on a sample of routes and on errors', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const samples = [
    await app.inject({ url: '/health' }),
    await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) }),
    await app.inject({ url: '/admin/users', headers: bearer(user.accessToken) }),
    await post(app, '/auth/login', { email: 'nobody@example.com', password: 'x' }),
    await app.inject({ url: '/no/such/route' }),
  ];
  for (const res of samples) {
    const label = `${res.statusCode} ${res.headers['content-type']}`;
    t.match(res.headers['content-security-policy'], /default-src 'none'/, label);
    t.match(res.headers['content-security-policy'], /frame-ancestors 'none'/, label);
    t.equal(res.headers['x-content-type-options'], 'nosniff', label);
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', label);
    t.equal(res.headers['referrer-policy'], 'no-referrer', label);
    t.notOk(res.headers['x-powered-by'], label);
  }
  const docs = await app.inject({ url: '/docs' });
  t.equal(docs.statusCode, 200, 'the docs page is served');
  t.match(docs.headers['content-security-policy'], /default-src 'self'/, 'with a policy that lets it load its own files');
  t.match(docs.headers['content-security-policy'], /frame-ancestors 'none'/, 'and still no framing');
});

eachDatabase('every /auth answer, success or error, says Cache-Control: no-store', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const answers = [
    await post(app, '/auth/login', { email: user.email, password: user.password }),
    await post(app, '/auth/login', { email: user.email, password: 'wrong password' }),
    await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) }),
    await post(app, '/auth/refresh', { refreshToken: user.refreshToken }),
  ];
  for (const res of answers) t.equal(res.headers['cache-control'], 'no-store', `${res.statusCode}`);
});

eachDatabase('CORS: a listed origin gets a preflight with credentials, any other origin gets none', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { CORS_ORIGINS: `${ALLOWED}, https://admin.example.test` } });
  const preflight = (origin: string) =>
    app.inject({
      method: 'OPTIONS',
      url: '/auth/login',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
  const allowed = await preflight(ALLOWED);
  t.equal(allowed.statusCode, 204);
  t.equal(allowed.headers['access-control-allow-origin'], ALLOWED);
  t.equal(allowed.headers['access-control-allow-credentials'], 'true');
  t.match(allowed.headers['access-control-allow-methods'], /POST/);

  const refused = await preflight('https://evil.example.test');
  t.notOk(refused.headers['access-control-allow-origin'], 'no allow-origin for an unlisted origin');
  t.notOk(refused.headers['access-control-allow-credentials']);

  const simple = await app.inject({ url: '/health', headers: { origin: 'https://evil.example.test' } });
  t.notOk(simple.headers['access-control-allow-origin']);
  const listed = await app.inject({ url: '/health', headers: { origin: ALLOWED } });
  t.equal(listed.headers['access-control-allow-origin'], ALLOWED);
});

eachDatabase('without CORS_ORIGINS no origin is allowed', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const res = await app.inject({ url: '/health', headers: { origin: ALLOWED } });
  t.notOk(res.headers['access-control-allow-origin']);
});
