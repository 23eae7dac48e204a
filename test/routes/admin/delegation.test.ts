import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, eachDatabase, type Test } from '../../helpers/app.js';
import { adminToken, roleGranting, send, userWithPermissions, userWithRoles, type Actor } from '../../helpers/admin.js';
import { assertProblem } from '../../helpers/problems.js';
import { bearer, registerUser } from '../../helpers/users.js';

async function rolesOf(app: FastifyInstance, admin: Actor, who: Actor): Promise<string[]> {
  return (await send(app, admin, 'GET', `/admin/users/${who.userId}`)).json().roles as string[];
}

async function permissionsOfRole(app: FastifyInstance, admin: Actor, role: string): Promise<string[]> {
  return (await send(app, admin, 'GET', `/admin/roles/${role}`)).json().permissions as string[];
}

/** A refusal names what is missing, in words and in the audit log. */
function assertExceeds(t: Test, res: Awaited<ReturnType<typeof send>>, missing: string[], label: string): void {
  const body = assertProblem(t, res, 403, 'exceeds_own_permissions', label);
  for (const name of missing) t.match(body.detail, name, `${label}: the detail names ${name}`);
}

async function refusals(app: FastifyInstance, admin: Actor): Promise<{ actorId: string; userId: string | null; detail: Record<string, unknown> }[]> {
  await app.gatehouse.background.idle();
  return (await send(app, admin, 'GET', '/admin/audit?type=grant_refused&limit=100')).json().items;
}

eachDatabase('the admin role holds every permission, including one created after it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  t.notOk((await app.inject({ url: '/auth/me', headers: admin.headers })).json().permissions.includes('reports:export'));

  t.equal((await send(app, admin, 'POST', '/admin/permissions', { name: 'reports:export' })).statusCode, 201);
  const me = (await app.inject({ url: '/auth/me', headers: admin.headers })).json();
  t.ok(me.permissions.includes('reports:export'), "at once in the admin's own permissions");
  t.ok((await permissionsOfRole(app, admin, 'admin')).includes('reports:export'), 'and in the admin role as listed');

  t.equal((await send(app, admin, 'POST', '/admin/roles', { name: 'reporter', permissions: ['reports:export'] })).statusCode, 201, 'the admin can put it into a role');
  const plain = await userWithRoles(app, ['user']);
  const granted = await send(app, admin, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user', 'reporter'] });
  t.equal(granted.statusCode, 200, 'and grant that role');
  t.ok((await app.inject({ url: '/auth/me', headers: plain.headers })).json().permissions.includes('reports:export'));
});

eachDatabase('a holder of roles:assign alone can grant only roles whose permissions it holds', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const assigner = await userWithPermissions(app, ['roles:assign']);
  const plain = await userWithRoles(app, ['user']);
  const assignerRoles = await rolesOf(app, admin, assigner);

  assertExceeds(t, await send(app, assigner, 'PUT', `/admin/users/${assigner.userId}/roles`, { roles: [...assignerRoles, 'admin'] }), ['users:delete', 'audit:read'], 'admin for itself');
  assertExceeds(t, await send(app, assigner, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user', 'admin'] }), ['users:delete'], 'admin for another');
  const writer = await roleGranting(app, ['write']);
  assertExceeds(t, await send(app, assigner, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user', writer] }), ['write'], 'a role granting write');
  const mixed = await roleGranting(app, ['read', 'roles:assign', 'users:read']);
  const body = assertProblem(t, await send(app, assigner, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user', mixed] }), 403, 'exceeds_own_permissions', 'a role mixing held and not held');
  t.match(body.detail, 'users:read');
  t.notMatch(body.detail, 'roles:assign', 'names only what is missing');

  t.same(await rolesOf(app, admin, assigner), assignerRoles, 'refused calls change nothing (the caller)');
  t.same(await rolesOf(app, admin, plain), ['user'], 'refused calls change nothing (the target)');
  t.notOk((await app.inject({ url: '/auth/me', headers: assigner.headers })).json().roles.includes('admin'));

  const reader = await roleGranting(app, ['read', 'roles:assign']);
  const ok = await send(app, assigner, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user', reader] });
  t.equal(ok.statusCode, 200, 'a role whose permissions it holds can be granted');
  t.same(ok.json().roles, ['user', reader].sort());
  t.equal((await send(app, assigner, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user'] })).statusCode, 200, 'and taken back');

  const events = await refusals(app, admin);
  t.equal(events.length, 4, 'every refusal is audited as grant_refused');
  const adminForItself = events.find((e) => e.userId === assigner.userId);
  t.equal(adminForItself?.actorId, assigner.userId, 'with who asked');
  t.ok((adminForItself?.detail.missingPermissions as string[]).includes('users:delete'), 'and what they lacked');
  t.equal(adminForItself?.detail.route, 'PUT /admin/users/:id/roles');
});

eachDatabase('a role granting no permission (a marker for role rules) is handed out only by those who hold it', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const staff = await roleGranting(app, []);
  // What the marker guards: a route of the host's, or any rule naming the role.
  const assigner = await userWithPermissions(app, ['roles:assign', 'users:write']);
  const plain = await userWithRoles(app, ['user']);
  const assignerRoles = await rolesOf(app, admin, assigner);
  for (const [who, label] of [[assigner, 'for itself'], [plain, 'for another']] as const) {
    const roles = who === assigner ? [...assignerRoles, staff] : ['user', staff];
    const body = assertProblem(t, await send(app, assigner, 'PUT', `/admin/users/${who.userId}/roles`, { roles }), 403, 'exceeds_own_permissions', label);
    t.match(body.detail, `the role ${staff}`, `${label}: names the role`);
  }
  t.same(await rolesOf(app, admin, plain), ['user'], 'nothing changed');
  const invite = await send(app, assigner, 'POST', '/admin/invitations', { email: 'someone@example.com', roles: [staff] });
  assertProblem(t, invite, 403, 'exceeds_own_permissions', 'nor through an invitation');

  // Someone who holds the marker may hand it on; an admin holds every role.
  const holder = await userWithRoles(app, ['user', staff, await roleGranting(app, ['roles:assign'])]);
  t.equal((await send(app, holder, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user', staff] })).statusCode, 200, 'a holder of the role');
  t.equal((await send(app, admin, 'PUT', `/admin/users/${plain.userId}/roles`, { roles: ['user'] })).statusCode, 200, 'an admin');
});

eachDatabase('a holder of roles:write alone cannot add or remove permissions it does not hold', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const writer = await userWithPermissions(app, ['roles:write']);
  const [ownRole] = (await rolesOf(app, admin, writer)).filter((r) => r !== 'user');

  assertExceeds(t, await send(app, writer, 'PUT', '/admin/roles/user/permissions', { permissions: ['read', 'users:read'] }), ['users:read'], 'users:read into the role every user has');
  t.same(await permissionsOfRole(app, admin, 'user'), ['read'], 'the user role is unchanged');
  assertExceeds(t, await send(app, writer, 'PUT', `/admin/roles/${ownRole}/permissions`, { permissions: ['roles:write', 'roles:assign'] }), ['roles:assign'], 'roles:assign into its own role');
  t.same(await permissionsOfRole(app, admin, ownRole!), ['roles:write']);
  assertExceeds(t, await send(app, writer, 'POST', '/admin/roles', { name: 'deleters', permissions: ['users:delete'] }), ['users:delete'], 'a new role with users:delete');
  t.equal((await send(app, admin, 'GET', '/admin/roles/deleters')).statusCode, 404, 'the refused role was not created');

  const auditor = await roleGranting(app, ['audit:read', 'read']);
  assertExceeds(t, await send(app, writer, 'PUT', `/admin/roles/${auditor}/permissions`, { permissions: ['read'] }), ['audit:read'], 'removing a permission it lacks');
  assertExceeds(t, await send(app, writer, 'DELETE', `/admin/roles/${auditor}?force=true`), ['audit:read'], 'deleting a role that grants what it lacks');
  t.same(await permissionsOfRole(app, admin, auditor), ['audit:read', 'read'], 'that role is unchanged');
  t.equal((await send(app, admin, 'POST', '/admin/permissions', { name: 'reports:export' })).statusCode, 201);
  assertExceeds(t, await send(app, writer, 'DELETE', '/admin/permissions/reports:export'), ['reports:export'], 'deleting a permission it lacks');

  t.equal((await send(app, writer, 'POST', '/admin/roles', { name: 'readers', permissions: ['read'] })).statusCode, 201, 'a role with what it holds');
  const changed = await send(app, writer, 'PUT', '/admin/roles/readers/permissions', { permissions: ['read', 'roles:write'] });
  t.equal(changed.statusCode, 200, 'adding what it holds');
  t.same(changed.json().permissions, ['read', 'roles:write']);
  t.equal((await send(app, writer, 'PATCH', '/admin/roles/readers', { description: 'Reads' })).statusCode, 200, 'describing a role changes no permission');
  t.equal((await send(app, writer, 'DELETE', '/admin/roles/readers')).statusCode, 204, 'deleting a role within its own rights');
  t.equal((await refusals(app, admin)).length, 6, 'every refusal is audited');
});

eachDatabase('acting on a user needs every permission that user holds', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const manager = await userWithPermissions(app, ['users:read', 'users:write', 'users:delete']);
  const plain = await userWithRoles(app, ['user']);

  assertExceeds(t, await send(app, manager, 'PATCH', `/admin/users/${admin.userId}`, { active: false }), ['roles:assign'], 'disabling an admin');
  assertExceeds(t, await send(app, manager, 'PATCH', `/admin/users/${admin.userId}`, { name: 'Mallory' }), ['roles:assign'], 'renaming an admin');
  assertExceeds(t, await send(app, manager, 'POST', `/admin/users/${admin.userId}/sessions/revoke`), ['roles:assign'], 'logging out an admin');
  assertExceeds(t, await send(app, manager, 'DELETE', `/admin/users/${admin.userId}`), ['roles:assign'], 'deleting an admin');
  const adminView = (await send(app, admin, 'GET', `/admin/users/${admin.userId}`)).json();
  t.same([adminView.active, adminView.name], [true, null], 'the admin is untouched');
  t.equal((await app.inject({ url: '/auth/me', headers: admin.headers })).statusCode, 200, "and the admin's session lives");

  const renamed = await send(app, manager, 'PATCH', `/admin/users/${plain.userId}`, { name: 'Plain' });
  t.equal(renamed.statusCode, 200, 'a plain user can be renamed');
  t.equal(renamed.json().name, 'Plain');
  t.equal((await send(app, manager, 'POST', `/admin/users/${plain.userId}/sessions/revoke`)).statusCode, 204, 'and logged out');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: plain.headers }), 401, 'session_revoked', 'the logged-out user');
  assertProblem(t, await send(app, manager, 'POST', `/admin/users/00000000-0000-4000-8000-000000000000/sessions/revoke`), 404, 'not_found', 'an unknown user');

  // Holding as much as the target is enough, and a peer is not an admin.
  const peer = await userWithPermissions(app, ['users:read']);
  t.equal((await send(app, manager, 'PATCH', `/admin/users/${peer.userId}`, { active: false })).statusCode, 200, 'a user holding less can be disabled');
  const events = await refusals(app, admin);
  t.equal(events.length, 4);
  t.ok(events.every((e) => e.userId === admin.userId && e.actorId === manager.userId), 'each refusal names the target and the caller');
});

eachDatabase("the grantor's rights are read as committed, not from a cache that has not heard of a change", async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const deleterRole = await roleGranting(app, ['users:delete']);
  const assigner = await userWithRoles(app, ['user', await roleGranting(app, ['roles:assign']), deleterRole]);
  const plain = await registerUser(app);
  // Warm the cache, then take users:delete from the assigner behind its back (plain SQL, no notice).
  t.equal((await app.inject({ url: '/auth/me', headers: assigner.headers })).statusCode, 200);
  await app.gatehouse.db.execute(
    sql`delete from user_roles where user_id = ${assigner.userId}::uuid and role_id = (select id from roles where name = ${deleterRole})`,
  );
  t.ok((await app.inject({ url: '/auth/me', headers: assigner.headers })).json().permissions.includes('users:delete'), 'the cache still says it holds users:delete');
  assertExceeds(t, await send(app, assigner, 'PUT', `/admin/users/${plain.user.id}/roles`, { roles: ['user', deleterRole] }), ['users:delete'], 'granting it anyway');

  // A disabled grantor holds nothing, whatever its cached token says.
  await app.gatehouse.db.execute(sql`update users set active = false where id = ${assigner.userId}::uuid`);
  const reader = await roleGranting(app, ['read']);
  t.equal((await send(app, assigner, 'PUT', `/admin/users/${plain.user.id}/roles`, { roles: ['user', reader] })).statusCode, 403);
  t.same(await rolesOf(app, admin, { ...assigner, userId: plain.user.id, headers: bearer(plain.accessToken) }), ['user'], 'nothing was granted');
});

eachDatabase('parallel grants and demotions of the grantor settle in some serial order', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const deleterRole = await roleGranting(app, ['users:delete']);
  const assignerRole = await roleGranting(app, ['roles:assign']);
  const target = await userWithRoles(app, ['user']);
  for (let round = 0; round < 8; round++) {
    const assigner = await userWithRoles(app, ['user', assignerRole, deleterRole]);
    // The admin takes users:delete away while the assigner hands it out.
    const [demotion, grant] = await Promise.all([
      send(app, admin, 'PUT', `/admin/users/${assigner.userId}/roles`, { roles: ['user', assignerRole] }),
      send(app, assigner, 'PUT', `/admin/users/${target.userId}/roles`, { roles: ['user', deleterRole] }),
    ]);
    t.equal(demotion.statusCode, 200, `round ${round}: the demotion goes through`);
    t.ok([200, 403].includes(grant.statusCode), `round ${round}: the grant is either before (200) or after (403) it: ${grant.statusCode}`);
    const held = (await rolesOf(app, admin, target)).includes(deleterRole);
    t.equal(held, grant.statusCode === 200, `round ${round}: the target holds the role exactly when the grant succeeded`);
    await send(app, admin, 'PUT', `/admin/users/${target.userId}/roles`, { roles: ['user'] });
  }
});
