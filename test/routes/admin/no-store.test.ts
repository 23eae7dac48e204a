import type { LightMyRequestResponse } from 'fastify';
import { adminToken, send, userWithRoles, type Actor } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';

/** A value for each path parameter that names nothing, so a signed-in admin gets the route's own 404 or 400. */
const urlOf = (pattern: string) => pattern.replace(':id', '00000000-0000-4000-8000-000000000000').replace(':name', 'no.such.thing');

eachDatabase('every /admin answer, success or error, says Cache-Control: no-store', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await userWithRoles(app, ['user']);
  const routes = app.routeAccess.filter((r) => r.url.startsWith('/admin') && r.method !== 'HEAD');
  t.ok(routes.length >= 10, `${routes.length} admin routes are walked`);
  const seen = new Set<number>();
  const check = (res: LightMyRequestResponse, label: string) => {
    seen.add(res.statusCode);
    t.equal(res.headers['cache-control'], 'no-store', `${label}: ${res.statusCode} says no-store`);
    t.equal(res.headers.pragma, 'no-cache', `${label}: and Pragma: no-cache for HTTP/1.0 caches`);
  };
  for (const route of routes) {
    const method = route.method as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    const url = urlOf(route.url);
    for (const [who, caller] of [['anonymous', null], ['a plain user', user], ['an admin', admin]] as [string, Actor | null][]) {
      check(await send(app, caller, method, url), `${method} ${route.url} as ${who}`);
    }
    check(await send(app, admin, method, `${url}${url.includes('?') ? '&' : '?'}limit=0`), `${method} ${route.url} with a bad query`);
  }
  check(await send(app, admin, 'GET', '/admin/users'), 'a page of users');
  check(await send(app, admin, 'GET', '/admin/roles/admin'), 'one role');
  check(await send(app, admin, 'GET', '/admin/no/such/route'), 'an /admin URL that matches no route');
  check(await send(app, null, 'GET', '/admin'), '/admin itself');
  for (const status of [200, 400, 401, 403, 404]) t.ok(seen.has(status), `a ${status} was among the answers`);
});

eachDatabase('an /admin URL that matches no route is still a problem+json 404', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  for (const url of ['/admin/no/such/route', '/admin', '/admin/users/x/y/z']) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 404, url);
    t.match(res.headers['content-type'], /^application\/problem\+json/, url);
    t.equal((res.json() as { code: string }).code, 'not_found', url);
  }
});

eachDatabase('answers outside /admin and /auth are not marked no-store by the admin scope', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const res = await app.inject({ url: '/health' });
  t.equal(res.statusCode, 200);
  t.not(res.headers['cache-control'], 'no-store');
});
