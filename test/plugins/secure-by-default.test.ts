import { buildTestApp, eachDatabase } from '../helpers/app.js';

eachDatabase('every registered route is either explicitly public or protected by a rule', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  t.ok(app.routeAccess.some((r) => r.url === '/docs'), 'the docs routes are walked too');
  t.ok(app.routeAccess.some((r) => r.url === '/auth/me'), 'the auth routes are walked');
  for (const route of app.routeAccess) {
    t.ok(route.public !== (route.rule !== null), `${route.method} ${route.url} is public xor has a rule`);
  }
});

eachDatabase('a protected route answers 401 before it validates the body', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  app.log.level = 'silent';
  const res = await app.inject({ method: 'GET', url: '/auth/me' });
  t.equal(res.statusCode, 401);
  t.equal(res.json().code, 'token_missing');
});
