import { ADMIN_PERMISSIONS } from '../../../src/db/seed.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { adminToken, send, userWithRoles } from '../../helpers/admin.js';
import { assertProblem } from '../../helpers/problems.js';

interface Permission {
  name: string;
  description: string | null;
  createdAt: string;
}

const names = async (...args: Parameters<typeof send>) => ((await send(...args)).json() as { items: Permission[] }).items.map((p) => p.name);

eachDatabase('the permission list shows every permission by name', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const res = await send(app, admin, 'GET', '/admin/permissions');
  t.equal(res.statusCode, 200);
  t.same(
    (res.json() as { items: Permission[] }).items.map((p) => p.name),
    [...ADMIN_PERMISSIONS, 'delete', 'read', 'write'].sort(),
  );
  t.ok((res.json() as { items: Permission[] }).items.every((p) => p.description === null && !Number.isNaN(Date.parse(p.createdAt))));
});

eachDatabase('creating a permission answers 201, and a role can grant it right away', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const res = await send(app, admin, 'POST', '/admin/permissions', { name: 'reports:export', description: 'Download reports' });
  t.equal(res.statusCode, 201);
  t.same({ ...res.json(), createdAt: undefined }, { name: 'reports:export', description: 'Download reports', createdAt: undefined });
  t.ok((await names(app, admin, 'GET', '/admin/permissions')).includes('reports:export'), 'listed');
  const role = await send(app, admin, 'POST', '/admin/roles', { name: 'analyst', permissions: ['reports:export'] });
  t.same(role.json().permissions, ['reports:export']);

  const bare = await send(app, admin, 'POST', '/admin/permissions', { name: 'bare' });
  t.equal(bare.statusCode, 201);
  t.equal(bare.json().description, null, 'the description is optional');
});

eachDatabase('permission names follow the role name rules', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (const name of ['a', 'billing:invoices.read_all-v2', 'p'.repeat(64)]) {
    t.equal((await send(app, admin, 'POST', '/admin/permissions', { name })).statusCode, 201, `"${name}" is accepted`);
  }
  for (const name of ['', 'Read', 'read all', 'p'.repeat(65), 'naïve', 'a*']) {
    const body = assertProblem(t, await send(app, admin, 'POST', '/admin/permissions', { name }), 400, 'validation_failed', `name ${JSON.stringify(name)}`);
    t.ok(body.errors?.some((e) => e.path === 'body/name'), `name ${JSON.stringify(name)}: names the field`);
  }
  assertProblem(t, await send(app, admin, 'POST', '/admin/permissions', { name: 'ok', permissions: [] }), 400, 'validation_failed', 'an unknown field');
  t.notOk((await names(app, admin, 'GET', '/admin/permissions')).includes('ok'), 'refused requests create nothing');
});

eachDatabase('creating a permission that exists answers 409 permission_exists', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  t.equal((await send(app, admin, 'POST', '/admin/permissions', { name: 'export', description: 'first' })).statusCode, 201);
  assertProblem(t, await send(app, admin, 'POST', '/admin/permissions', { name: 'export', description: 'second' }), 409, 'permission_exists');
  assertProblem(t, await send(app, admin, 'POST', '/admin/permissions', { name: 'users:read' }), 409, 'permission_exists', 'a built-in one');
  const listed = ((await send(app, admin, 'GET', '/admin/permissions')).json() as { items: Permission[] }).items.find((p) => p.name === 'export');
  t.equal(listed?.description, 'first', 'the first one is kept');

  const racing = await Promise.all(Array.from({ length: 6 }, () => send(app, admin, 'POST', '/admin/permissions', { name: 'racer' })));
  t.same(racing.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409, 409], 'parallel creates: one wins');
});

eachDatabase('deleting a permission takes it from every role, and from its holders on their next request', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await send(app, admin, 'POST', '/admin/permissions', { name: 'reports:export' });
  await send(app, admin, 'POST', '/admin/roles', { name: 'analyst', permissions: ['reports:export', 'read'] });
  const holder = await userWithRoles(app, ['analyst']);
  t.same((await send(app, holder, 'GET', '/auth/me')).json().permissions, ['read', 'reports:export'], 'held before');

  const res = await send(app, admin, 'DELETE', '/admin/permissions/reports:export');
  t.equal(res.statusCode, 204);
  t.equal(res.body, '');
  t.notOk((await names(app, admin, 'GET', '/admin/permissions')).includes('reports:export'), 'no longer listed');
  t.same((await send(app, admin, 'GET', '/admin/roles/analyst')).json().permissions, ['read'], 'the role no longer grants it');
  t.same((await send(app, holder, 'GET', '/auth/me')).json().permissions, ['read'], 'the holder lost it on the next request');
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/permissions/reports:export'), 404, 'not_found', 'deleting it again');
});

eachDatabase('the permissions that guard the admin API cannot be deleted', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (const name of ADMIN_PERMISSIONS) {
    assertProblem(t, await send(app, admin, 'DELETE', `/admin/permissions/${name}`), 409, 'built_in_role', name);
  }
  t.same(
    (await send(app, admin, 'GET', '/admin/roles/admin')).json().permissions.filter((p: string) => p.includes(':')),
    [...ADMIN_PERMISSIONS].sort(),
    'the admin role still holds them all',
  );
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/permissions/nope'), 404, 'not_found', 'an unknown permission');
});
