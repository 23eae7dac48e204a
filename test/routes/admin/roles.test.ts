import { ADMIN_PERMISSIONS } from '../../../src/db/seed.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { adminToken, send, userWithRoles } from '../../helpers/admin.js';
import { assertProblem } from '../../helpers/problems.js';

interface Role {
  name: string;
  description: string | null;
  permissions: string[];
  builtIn: boolean;
  createdAt: string;
}

eachDatabase('the role list shows every role with its permissions, built-in ones marked', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const res = await send(app, admin, 'GET', '/admin/roles');
  t.equal(res.statusCode, 200);
  const items = (res.json() as { items: Role[] }).items;
  t.same(
    items.map((r) => [r.name, r.builtIn]),
    [
      ['admin', true],
      ['user', true],
    ],
  );
  t.same(items.find((r) => r.name === 'user')?.permissions, ['read']);
  t.same(items.find((r) => r.name === 'admin')?.permissions, [...ADMIN_PERMISSIONS, 'delete', 'read', 'write'].sort());

  await send(app, admin, 'POST', '/admin/roles', { name: 'editor', permissions: ['write'] });
  const after = (await send(app, admin, 'GET', '/admin/roles')).json() as { items: Role[] };
  t.same(
    after.items.map((r) => r.name),
    ['admin', 'editor', 'user'],
    'a new role is listed, by name',
  );
  t.equal(after.items.find((r) => r.name === 'editor')?.builtIn, false);
});

eachDatabase('creating a role answers 201 with the role, which can then be read back', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const res = await send(app, admin, 'POST', '/admin/roles', { name: 'editor', description: 'Edits things', permissions: ['write', 'read', 'write'] });
  t.equal(res.statusCode, 201);
  const role = res.json() as Role;
  t.same(
    { ...role, createdAt: undefined },
    { name: 'editor', description: 'Edits things', permissions: ['read', 'write'], builtIn: false, createdAt: undefined },
    'a permission listed twice is granted once',
  );
  t.ok(Date.parse(role.createdAt) > Date.now() - 60_000, 'createdAt is now');
  const read = await send(app, admin, 'GET', '/admin/roles/editor');
  t.equal(read.statusCode, 200);
  t.same(read.json(), role);

  const bare = await send(app, admin, 'POST', '/admin/roles', { name: 'bare' });
  t.equal(bare.statusCode, 201);
  t.same([bare.json().description, bare.json().permissions], [null, []], 'description and permissions are optional');
  assertProblem(t, await send(app, admin, 'GET', '/admin/roles/nope'), 404, 'not_found', 'an unknown role');
});

eachDatabase('role names are 1 to 64 of a-z 0-9 : _ - . and nothing else', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (const name of ['a', 'billing:team_lead-2.0', 'x'.repeat(64)]) {
    t.equal((await send(app, admin, 'POST', '/admin/roles', { name })).statusCode, 201, `"${name}" is accepted`);
  }
  for (const name of ['', 'Editor', 'two words', 'x'.repeat(65), 'émile', 'a/b', 'a\tb', 42]) {
    const body = assertProblem(t, await send(app, admin, 'POST', '/admin/roles', { name }), 400, 'validation_failed', `name ${JSON.stringify(name)}`);
    t.ok(body.errors?.some((e) => e.path === 'body/name'), `name ${JSON.stringify(name)}: names the field`);
  }
  assertProblem(t, await send(app, admin, 'POST', '/admin/roles', { name: 'ok', permissions: ['Write'] }), 400, 'validation_failed', 'a malformed permission');
  assertProblem(t, await send(app, admin, 'POST', '/admin/roles', { name: 'ok', extra: 1 }), 400, 'validation_failed', 'an unknown field');
  assertProblem(t, await send(app, admin, 'POST', '/admin/roles', {}), 400, 'validation_failed', 'no name');
  t.equal((await send(app, admin, 'GET', '/admin/roles/ok')).statusCode, 404, 'refused requests create nothing');
});

eachDatabase('creating a role that exists answers 409 role_exists and leaves it as it was', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await send(app, admin, 'POST', '/admin/roles', { name: 'editor', description: 'first', permissions: ['read'] });
  assertProblem(t, await send(app, admin, 'POST', '/admin/roles', { name: 'editor', description: 'second', permissions: ['write'] }), 409, 'role_exists');
  assertProblem(t, await send(app, admin, 'POST', '/admin/roles', { name: 'admin' }), 409, 'role_exists', 'a built-in name');
  const role = (await send(app, admin, 'GET', '/admin/roles/editor')).json() as Role;
  t.same([role.description, role.permissions], ['first', ['read']]);

  const racing = await Promise.all(Array.from({ length: 6 }, () => send(app, admin, 'POST', '/admin/roles', { name: 'racer' })));
  t.same(racing.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409, 409], 'parallel creates: one wins');
});

eachDatabase('a role with unknown permissions is refused with 400 naming every unknown one', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const body = assertProblem(t, await send(app, admin, 'POST', '/admin/roles', { name: 'editor', permissions: ['read', 'fly', 'teleport', 'fly'] }), 400, 'validation_failed');
  t.match(body.detail, /fly/);
  t.match(body.detail, /teleport/);
  t.notMatch(body.detail, /read/, 'a known permission is not blamed');
  t.same(body.errors?.map((e) => e.message), ['unknown permission fly', 'unknown permission teleport'], 'each unknown name once');
  t.equal((await send(app, admin, 'GET', '/admin/roles/editor')).statusCode, 404, 'the role was not created');
});

eachDatabase("PATCH changes a role's description and never its name", async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await send(app, admin, 'POST', '/admin/roles', { name: 'editor', description: 'Edits', permissions: ['write'] });

  const res = await send(app, admin, 'PATCH', '/admin/roles/editor', { description: 'Edits everything' });
  t.equal(res.statusCode, 200);
  t.same([res.json().name, res.json().description, res.json().permissions], ['editor', 'Edits everything', ['write']]);

  const unchanged = await send(app, admin, 'PATCH', '/admin/roles/editor', {});
  t.equal(unchanged.statusCode, 200);
  t.equal(unchanged.json().description, 'Edits everything', 'an empty PATCH keeps the description');
  t.equal((await send(app, admin, 'PATCH', '/admin/roles/editor', { description: null })).json().description, null, 'null clears it');

  const renamed = assertProblem(t, await send(app, admin, 'PATCH', '/admin/roles/editor', { name: 'author' }), 400, 'validation_failed', 'a name');
  t.ok(renamed.errors?.some((e) => e.path === 'body/name'), 'the name field is blamed');
  t.equal((await send(app, admin, 'GET', '/admin/roles/editor')).statusCode, 200, 'still called editor');
  t.equal((await send(app, admin, 'GET', '/admin/roles/author')).statusCode, 404);
  assertProblem(t, await send(app, admin, 'PATCH', '/admin/roles/editor', { description: 'x'.repeat(501) }), 400, 'validation_failed', 'a long description');
  assertProblem(t, await send(app, admin, 'PATCH', '/admin/roles/nope', { description: 'x' }), 404, 'not_found', 'an unknown role');
  t.equal((await send(app, admin, 'PATCH', '/admin/roles/user', { description: 'Everyone' })).json().description, 'Everyone', 'built-in roles can be described');
});

eachDatabase('deleting a role nobody holds answers 204 and it is gone', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await send(app, admin, 'POST', '/admin/roles', { name: 'editor' });
  const res = await send(app, admin, 'DELETE', '/admin/roles/editor');
  t.equal(res.statusCode, 204);
  t.equal(res.body, '');
  t.equal((await send(app, admin, 'GET', '/admin/roles/editor')).statusCode, 404);
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/roles/editor'), 404, 'not_found', 'deleting it again');
  t.equal((await send(app, admin, 'POST', '/admin/roles', { name: 'editor' })).statusCode, 201, 'the name is free again');
});

eachDatabase('a role still assigned is deleted only with force, which also takes it from its holders at once', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await send(app, admin, 'POST', '/admin/roles', { name: 'reader', permissions: ['users:read'] });
  const holder = await userWithRoles(app, ['user', 'reader']);
  t.equal((await send(app, holder, 'GET', '/admin/users')).statusCode, 200, 'the holder may list users');

  const refused = assertProblem(t, await send(app, admin, 'DELETE', '/admin/roles/reader'), 409, 'role_in_use');
  t.match(refused.detail, /force=true/, 'the detail says how to go ahead');
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/roles/reader?force=false'), 409, 'role_in_use', 'force=false');
  t.equal((await send(app, holder, 'GET', '/admin/users')).statusCode, 200, 'a refused delete takes nothing away');
  assertProblem(t, await send(app, admin, 'DELETE', '/admin/roles/reader?force=maybe'), 400, 'validation_failed', 'force=maybe');

  t.equal((await send(app, admin, 'DELETE', '/admin/roles/reader?force=true')).statusCode, 204);
  t.equal((await send(app, admin, 'GET', '/admin/roles/reader')).statusCode, 404);
  assertProblem(t, await send(app, holder, 'GET', '/admin/users'), 403, 'permission_denied', 'the former holder, next request');
  t.same((await send(app, admin, 'GET', `/admin/users/${holder.userId}`)).json().roles, ['user'], 'the holder keeps their other roles');
});

eachDatabase('the built-in roles admin and user cannot be deleted, with force or without', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (const name of ['admin', 'user']) {
    for (const query of ['', '?force=true']) {
      assertProblem(t, await send(app, admin, 'DELETE', `/admin/roles/${name}${query}`), 409, 'built_in_role', `${name}${query}`);
    }
    t.equal((await send(app, admin, 'GET', `/admin/roles/${name}`)).statusCode, 200, `${name} is still there`);
  }
  t.same((await send(app, admin, 'GET', `/admin/users/${admin.userId}`)).json().roles, ['admin', 'user'], 'nobody lost a role');
});

eachDatabase("PUT permissions replaces a role's permissions and its holders feel it on their next request", async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await send(app, admin, 'POST', '/admin/roles', { name: 'support', permissions: ['read'] });
  const holder = await userWithRoles(app, ['support']);
  const list = () => send(app, holder, 'GET', '/admin/users');
  assertProblem(t, await list(), 403, 'permission_denied', 'before');

  const res = await send(app, admin, 'PUT', '/admin/roles/support/permissions', { permissions: ['users:read', 'write', 'users:read'] });
  t.equal(res.statusCode, 200);
  t.same([res.json().name, res.json().permissions], ['support', ['users:read', 'write']], 'replaced, a name listed twice counted once');
  t.equal((await list()).statusCode, 200, 'granted on the next request');
  t.same((await send(app, holder, 'GET', '/auth/me')).json().permissions, ['users:read', 'write']);

  t.same((await send(app, admin, 'PUT', '/admin/roles/support/permissions', { permissions: [] })).json().permissions, [], 'an empty list');
  assertProblem(t, await list(), 403, 'permission_denied', 'taken away on the next request');

  const unknown = assertProblem(t, await send(app, admin, 'PUT', '/admin/roles/support/permissions', { permissions: ['write', 'fly'] }), 400, 'validation_failed', 'an unknown permission');
  t.match(unknown.detail, /fly/);
  t.same((await send(app, admin, 'GET', '/admin/roles/support')).json().permissions, [], 'a refused PUT changes nothing');
  assertProblem(t, await send(app, admin, 'PUT', '/admin/roles/support/permissions', { permissions: ['Write'] }), 400, 'validation_failed', 'a malformed name');
  assertProblem(t, await send(app, admin, 'PUT', '/admin/roles/support/permissions', {}), 400, 'validation_failed', 'no list');
  assertProblem(t, await send(app, admin, 'PUT', '/admin/roles/nope/permissions', { permissions: [] }), 404, 'not_found', 'an unknown role');
});

eachDatabase('the admin role holds every permission: none can be taken from it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const all = (await send(app, admin, 'GET', '/admin/roles/admin')).json().permissions as string[];
  t.same(all, (await send(app, admin, 'GET', '/admin/permissions')).json().items.map((p: { name: string }) => p.name).sort(), 'every permission there is');
  for (const dropped of [...ADMIN_PERMISSIONS, 'read']) {
    const res = await send(app, admin, 'PUT', '/admin/roles/admin/permissions', { permissions: all.filter((p) => p !== dropped) });
    const body = assertProblem(t, res, 409, 'built_in_role', `dropping ${dropped}`);
    t.match(body.detail, dropped, `dropping ${dropped}: the detail names it`);
  }
  assertProblem(t, await send(app, admin, 'PUT', '/admin/roles/admin/permissions', { permissions: [] }), 409, 'built_in_role', 'dropping all');
  t.same((await send(app, admin, 'GET', '/admin/roles/admin')).json().permissions, all, 'nothing changed');

  const same = await send(app, admin, 'PUT', '/admin/roles/admin/permissions', { permissions: all });
  t.equal(same.statusCode, 200, 'asking for what it has is a no-op');
  t.same(same.json().permissions, all);
  t.equal((await send(app, admin, 'GET', '/admin/users')).statusCode, 200, 'the admin can still work');
});
