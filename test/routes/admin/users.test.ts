import { users } from '../../../src/db/schema.js';
import { ADMIN_PERMISSIONS } from '../../../src/db/seed.js';
import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { adminToken, roleGranting, send, userWithPermissions, userWithRoles, type Actor, type AdminUserView } from '../../helpers/admin.js';
import { assertProblem } from '../../helpers/problems.js';
import { PASSWORD, bearer, login, post, registerUser, uniqueEmail } from '../../helpers/users.js';
import type { FastifyInstance } from 'fastify';

interface Page {
  items: AdminUserView[];
  nextCursor: string | null;
}

const page = async (app: FastifyInstance, admin: Actor, query: string): Promise<Page> => {
  const res = await send(app, admin, 'GET', `/admin/users?${query}`);
  if (res.statusCode !== 200) throw new Error(`GET /admin/users?${query}: ${res.statusCode} ${res.body}`);
  return res.json() as Page;
};

/** Follows nextCursor to the end; `between` runs between one page and the next. */
async function walkPages(app: FastifyInstance, admin: Actor, query: string, between: () => Promise<void> = async () => {}) {
  const pages: Page[] = [];
  let cursor: string | null = null;
  do {
    const current: Page = await page(app, admin, `${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    pages.push(current);
    cursor = current.nextCursor;
    if (cursor) await between();
    if (pages.length > 50) throw new Error('the cursor never ends');
  } while (cursor);
  return pages;
}

const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

eachDatabase('the user list pages through every user exactly once, ordered by createdAt then id', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (let i = 0; i < 3; i++) await registerUser(app);
  // One statement: five users with the very same created_at, so only the id orders them.
  const twins = await app.gatehouse.db
    .insert(users)
    .values(Array.from({ length: 5 }, () => ({ email: uniqueEmail('twin'), passwordHash: 'x' })))
    .returning();
  t.equal(new Set(twins.map((u) => u.createdAt.getTime())).size, 1, 'the twins share one created_at');

  const all = (await page(app, admin, 'limit=100')).items;
  t.equal(all.length, 9);
  t.equal(all[0]!.id, admin.userId, 'oldest first');
  t.same(
    all.slice(4).map((u) => u.id),
    twins.map((u) => u.id).sort(),
    'users created at the same instant come in id order',
  );

  for (const limit of [1, 2, 3, 4, 9]) {
    const pages = await walkPages(app, admin, `limit=${limit}`);
    t.same(
      pages.flatMap((p) => p.items.map((u) => u.id)),
      all.map((u) => u.id),
      `limit ${limit}: every user once, in order`,
    );
    t.ok(pages.slice(0, -1).every((p) => p.items.length === limit && p.nextCursor !== null), `limit ${limit}: full pages point on`);
    t.equal(pages.at(-1)!.nextCursor, null, `limit ${limit}: the last page has no nextCursor`);
  }
  t.equal((await walkPages(app, admin, 'limit=9')).length, 1, 'a page that holds exactly the rest is the last one');
});

eachDatabase('users registered while an admin pages through the list each show up exactly once', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (let i = 0; i < 4; i++) await registerUser(app);
  let added = 0;
  const seen = await walkPages(app, admin, 'limit=2', async () => {
    // One new user per page of two: the list grows, but slower than it is read.
    if (added++ < 5) await registerUser(app);
  });
  t.ok(added >= 3, 'users were added while paging');
  const ids = seen.flatMap((p) => p.items.map((u) => u.id));
  t.equal(new Set(ids).size, ids.length, 'no user is listed twice');
  const everyone = (await page(app, admin, 'limit=100')).items.map((u) => u.id);
  t.same(ids, everyone, 'no user is skipped, the ones added meanwhile included');
});

eachDatabase('the page size defaults to 20 and must be between 1 and 100', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await app.gatehouse.db.insert(users).values(Array.from({ length: 24 }, () => ({ email: uniqueEmail('bulk'), passwordHash: 'x' })));
  const first = await page(app, admin, '');
  t.equal(first.items.length, 20, 'default page size');
  t.type(first.nextCursor, 'string');
  const rest = await page(app, admin, `cursor=${first.nextCursor}`);
  t.equal(rest.items.length, 5);
  t.equal(rest.nextCursor, null);
  t.equal((await page(app, admin, 'limit=100')).items.length, 25);
  for (const limit of ['0', '101', '-1', '2.5', 'ten']) {
    const body = assertProblem(t, await send(app, admin, 'GET', `/admin/users?limit=${limit}`), 400, 'validation_failed', `limit=${limit}`);
    t.ok(body.errors?.some((e) => e.path === 'querystring/limit'), `limit=${limit}: names the limit`);
  }
});

eachDatabase('a cursor this API did not hand out answers 400 validation_failed', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  await registerUser(app);
  const real = (await page(app, admin, 'limit=1')).nextCursor!;
  const cursors: [string, string][] = [
    ['not base64 JSON', 'garbage'],
    ['an object', cursorOf({ createdAt: '2024-01-01T00:00:00.000000Z', id: UNKNOWN_ID })],
    ['a date without microseconds', cursorOf(['2024-01-01T00:00:00Z', UNKNOWN_ID])],
    ['a bad id', cursorOf(['2024-01-01T00:00:00.000000Z', 'nope'])],
    ['an impossible date', cursorOf(['2024-13-45T25:61:61.000000Z', UNKNOWN_ID])],
    ['February 30th', cursorOf(['2024-02-30T00:00:00.000000Z', UNKNOWN_ID])],
    ['year 0', cursorOf(['0000-01-01T00:00:00.000000Z', UNKNOWN_ID])],
    ['a truncated cursor', real.slice(0, -4)],
    ['a huge cursor', 'A'.repeat(5000)],
  ];
  for (const [label, cursor] of cursors) {
    const res = await send(app, admin, 'GET', `/admin/users?cursor=${encodeURIComponent(cursor)}`);
    const body = assertProblem(t, res, 400, 'validation_failed', label);
    t.ok(body.errors?.some((e) => e.path === 'querystring/cursor'), `${label}: names the cursor`);
  }
  t.equal((await send(app, admin, 'GET', `/admin/users?cursor=${real}`)).statusCode, 200, 'the real cursor works');
});

eachDatabase('q finds users by a case-insensitive piece of email or name, reading % and _ literally', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const ada = await registerUser(app, { name: 'Ada Lovelace' });
  const byron = await registerUser(app, { email: uniqueEmail('ADA.byron') });
  const underscore = await registerUser(app, { name: 'Grace_Hopper' });
  const space = await registerUser(app, { name: 'Grace Hopper' });
  const percent = await registerUser(app, { name: '100% Linus' });
  const backslash = await registerUser(app, { name: 'back\\slash' });

  const search = async (q: string) => (await page(app, admin, `q=${encodeURIComponent(q)}`)).items.map((u) => u.id).sort();
  t.same(await search('ada'), [ada.user.id, byron.user.id].sort(), 'name or email, any case');
  t.same(await search('LOVELACE'), [ada.user.id]);
  t.same(await search('%'), [percent.user.id], '% is a character, not a wildcard');
  t.same(await search('0%'), [percent.user.id]);
  t.same(await search('_'), [underscore.user.id], '_ is a character, not a wildcard');
  t.same(await search('e_h'), [underscore.user.id], '"e_h" does not match "e H"');
  t.same(await search('e h'), [space.user.id]);
  t.same(await search('\\'), [backslash.user.id], 'a backslash is a character too');
  t.same(await search('nobody-is-called-this'), []);
  assertProblem(t, await send(app, admin, 'GET', '/admin/users?q='), 400, 'validation_failed', 'an empty q');
});

eachDatabase('role lists only the users who hold that role', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const plain = await registerUser(app);
  const auditor = await roleGranting(app, ['read']);
  const first = await userWithRoles(app, ['user', auditor], { name: 'Audrey' });
  const second = await userWithRoles(app, [auditor]);

  const ids = async (query: string) => (await page(app, admin, query)).items.map((u) => u.id).sort();
  t.same(await ids('role=admin'), [admin.userId]);
  t.same(await ids(`role=${auditor}`), [first.userId, second.userId].sort());
  t.same(await ids('role=user'), [admin.userId, plain.user.id, first.userId].sort());
  t.same(await ids(`role=${auditor}&q=audrey`), [first.userId], 'role and q combine');
  t.same(await ids('role=no-such-role'), []);
  assertProblem(t, await send(app, admin, 'GET', '/admin/users?role=Not%20A%20Name'), 400, 'validation_failed', 'a malformed role');
});

eachDatabase('an admin sees a user exactly as /auth/me shows them, plus active', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app, { name: 'Mia' });
  // The session's assurance level is /auth/me's own: an admin sees the user, not a session.
  const { aal, ...me } = (await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) })).json();
  t.equal(aal, 'aal1');
  const res = await send(app, admin, 'GET', `/admin/users/${user.user.id}`);
  t.equal(res.statusCode, 200);
  t.same(res.json(), { ...me, active: true });
  t.notOk('passwordHash' in res.json(), 'no password hash');

  const listed = (await page(app, admin, 'limit=100')).items.find((u) => u.id === user.user.id);
  t.same(listed, res.json(), 'the list shows the same user');

  assertProblem(t, await send(app, admin, 'GET', `/admin/users/${UNKNOWN_ID}`), 404, 'not_found', 'an unknown id');
  assertProblem(t, await send(app, admin, 'GET', '/admin/users/not-a-uuid'), 400, 'validation_failed', 'a malformed id');
});

eachDatabase('PATCH renames a user and changes nothing it was not given', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app, { name: 'Old Name' });
  const url = `/admin/users/${user.user.id}`;

  const renamed = await send(app, admin, 'PATCH', url, { name: 'New Name' });
  t.equal(renamed.statusCode, 200);
  t.equal(renamed.json().name, 'New Name');
  t.equal(renamed.json().active, true, 'still active');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) })).json().name, 'New Name', 'the user sees it at once');

  const untouched = await send(app, admin, 'PATCH', url, {});
  t.equal(untouched.statusCode, 200);
  t.equal(untouched.json().name, 'New Name', 'an empty PATCH changes nothing');

  t.equal((await send(app, admin, 'PATCH', url, { name: null })).json().name, null, 'null clears the name');

  for (const [label, body] of [
    ['an empty name', { name: '' }],
    ['active as a string', { active: 'false' }],
    ['an unknown field', { email: 'x@example.com' }],
  ] as const) {
    assertProblem(t, await send(app, admin, 'PATCH', url, body), 400, 'validation_failed', label);
  }
  assertProblem(t, await send(app, admin, 'PATCH', `/admin/users/${UNKNOWN_ID}`, { name: 'x' }), 404, 'not_found', 'an unknown id');
});

eachDatabase('a deactivated user is logged out on their very next request and cannot log in until reactivated', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const me = () => app.inject({ url: '/auth/me', headers: bearer(user.accessToken) });
  t.equal((await me()).statusCode, 200, 'signed in, and the cache is warm');

  const res = await send(app, admin, 'PATCH', `/admin/users/${user.user.id}`, { active: false });
  t.equal(res.statusCode, 200);
  t.equal(res.json().active, false);
  assertProblem(t, await me(), 401, 'session_revoked', 'the access token');
  assertProblem(t, await post(app, '/auth/refresh', { refreshToken: user.refreshToken }), 401, 'session_revoked', 'the refresh token');
  assertProblem(t, await post(app, '/auth/login', { email: user.email, password: PASSWORD }), 403, 'account_disabled', 'logging in');

  t.equal((await send(app, admin, 'PATCH', `/admin/users/${user.user.id}`, { active: true })).json().active, true);
  const again = await login(app, user.email);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(again.accessToken) })).statusCode, 200, 'a new login works');
  assertProblem(t, await me(), 401, 'session_revoked', 'the old token stays revoked');
});

eachDatabase('a deleted user is gone, signed out, and their email is free again', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) })).statusCode, 200);

  const res = await send(app, admin, 'DELETE', `/admin/users/${user.user.id}`);
  t.equal(res.statusCode, 204);
  t.equal(res.body, '');
  assertProblem(t, await send(app, admin, 'GET', `/admin/users/${user.user.id}`), 404, 'not_found', 'reading it');
  assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(user.accessToken) }), 401, 'session_revoked', 'its access token');
  t.equal((await post(app, '/auth/refresh', { refreshToken: user.refreshToken })).statusCode, 401, 'its refresh token');
  assertProblem(t, await send(app, admin, 'DELETE', `/admin/users/${user.user.id}`), 404, 'not_found', 'deleting it again');
  t.equal((await post(app, '/auth/register', { email: user.email, password: PASSWORD })).statusCode, 201, 'the email can register again');
});

eachDatabase("PUT roles replaces a user's roles and shows the permissions they now grant", async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const url = `/admin/users/${user.user.id}/roles`;
  const editor = await roleGranting(app, ['write', 'users:read']);

  const res = await send(app, admin, 'PUT', url, { roles: [editor, 'user', editor] });
  t.equal(res.statusCode, 200);
  t.same(res.json().roles, [editor, 'user'].sort(), 'a role listed twice is held once');
  t.same(res.json().permissions, ['read', 'users:read', 'write']);
  t.same((await send(app, admin, 'GET', `/admin/users/${user.user.id}`)).json().roles, [editor, 'user'].sort(), 'and it is stored');

  const none = await send(app, admin, 'PUT', url, { roles: [] });
  t.same([none.json().roles, none.json().permissions], [[], []], 'an empty list takes every role away');

  const unknown = assertProblem(t, await send(app, admin, 'PUT', url, { roles: ['user', 'ghost', 'phantom'] }), 400, 'validation_failed', 'unknown roles');
  t.match(unknown.detail, /ghost/);
  t.match(unknown.detail, /phantom/);
  t.same(unknown.errors?.map((e) => e.message).sort(), ['unknown role ghost', 'unknown role phantom']);
  t.same((await send(app, admin, 'GET', `/admin/users/${user.user.id}`)).json().roles, [], 'a refused PUT changes nothing');

  for (const [label, body] of [
    ['an uppercase name', { roles: ['User'] }],
    ['a name with a space', { roles: ['two words'] }],
    ['no list', {}],
    ['a string', { roles: 'user' }],
  ] as const) {
    assertProblem(t, await send(app, admin, 'PUT', url, body), 400, 'validation_failed', label);
  }
  assertProblem(t, await send(app, admin, 'PUT', `/admin/users/${UNKNOWN_ID}/roles`, { roles: ['user'] }), 404, 'not_found', 'an unknown id');
});

eachDatabase('a role given or taken away changes what the user may do on their next request', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const user = await registerUser(app);
  const reader = await roleGranting(app, ['users:read']);
  const list = () => app.inject({ url: '/admin/users', headers: bearer(user.accessToken) });

  assertProblem(t, await list(), 403, 'permission_denied', 'before');
  t.equal((await send(app, admin, 'PUT', `/admin/users/${user.user.id}/roles`, { roles: ['user', reader] })).statusCode, 200);
  t.equal((await list()).statusCode, 200, 'allowed right after the role is given');
  t.equal((await send(app, admin, 'PUT', `/admin/users/${user.user.id}/roles`, { roles: ['user'] })).statusCode, 200);
  assertProblem(t, await list(), 403, 'permission_denied', 'right after the role is taken away');
});

eachDatabase('revoking a user\'s sessions signs out every device of theirs and no one else', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const laptop = await registerUser(app);
  const phone = await login(app, laptop.email);
  const bystander = await registerUser(app);
  for (const token of [laptop.accessToken, phone.accessToken, bystander.accessToken]) {
    t.equal((await app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode, 200, 'signed in before');
  }

  const res = await send(app, admin, 'POST', `/admin/users/${laptop.user.id}/sessions/revoke`);
  t.equal(res.statusCode, 204);
  for (const [label, tokens] of [
    ['laptop', laptop],
    ['phone', phone],
  ] as const) {
    assertProblem(t, await app.inject({ url: '/auth/me', headers: bearer(tokens.accessToken) }), 401, 'session_revoked', `${label} access token`);
    assertProblem(t, await post(app, '/auth/refresh', { refreshToken: tokens.refreshToken }), 401, 'session_revoked', `${label} refresh token`);
  }
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(bystander.accessToken) })).statusCode, 200, 'another user is untouched');
  t.equal((await send(app, admin, 'GET', '/admin/users')).statusCode, 200, 'the admin is untouched');
  t.equal((await post(app, '/auth/login', { email: laptop.email, password: PASSWORD })).statusCode, 200, 'the user can log in again');
  assertProblem(t, await send(app, admin, 'POST', `/admin/users/${UNKNOWN_ID}/sessions/revoke`), 404, 'not_found', 'an unknown id');
});

eachDatabase('the last active admin cannot be deactivated, deleted or stripped of admin', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const url = `/admin/users/${admin.userId}`;
  const lastAdmin = (res: Awaited<ReturnType<typeof send>>, label: string) => assertProblem(t, res, 409, 'last_admin', label);

  lastAdmin(await send(app, admin, 'PATCH', url, { active: false }), 'deactivating');
  lastAdmin(await send(app, admin, 'DELETE', url), 'deleting');
  lastAdmin(await send(app, admin, 'PUT', `${url}/roles`, { roles: ['user'] }), 'dropping admin');
  lastAdmin(await send(app, admin, 'PUT', `${url}/roles`, { roles: [] }), 'dropping every role');

  const still = await send(app, admin, 'GET', url);
  t.equal(still.statusCode, 200, 'still signed in and allowed');
  t.same([still.json().roles, still.json().active], [['admin', 'user'], true], 'nothing changed');
  t.equal((await send(app, admin, 'PUT', `${url}/roles`, { roles: ['admin'] })).statusCode, 200, 'keeping admin while dropping user is fine');
  t.equal((await send(app, admin, 'PATCH', url, { name: 'Root' })).statusCode, 200, 'renaming is fine');
});

eachDatabase('with two admins one can be demoted, and an inactive admin does not count', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const first = await adminToken(app);
  const second = await adminToken(app);

  const demoted = await send(app, first, 'PUT', `/admin/users/${second.userId}/roles`, { roles: ['user'] });
  t.equal(demoted.statusCode, 200);
  t.same(demoted.json().roles, ['user']);
  assertProblem(t, await send(app, second, 'GET', '/admin/users'), 403, 'permission_denied', 'the demoted admin, next request');
  assertProblem(t, await send(app, first, 'PUT', `/admin/users/${first.userId}/roles`, { roles: ['user'] }), 409, 'last_admin', 'now the last');

  t.equal((await send(app, first, 'PUT', `/admin/users/${second.userId}/roles`, { roles: ['admin', 'user'] })).statusCode, 200, 'promoted again');
  t.equal((await send(app, first, 'PATCH', `/admin/users/${second.userId}`, { active: false })).statusCode, 200, 'one admin deactivated');
  assertProblem(t, await send(app, first, 'DELETE', `/admin/users/${first.userId}`), 409, 'last_admin', 'the only active admin');
  t.equal((await send(app, first, 'DELETE', `/admin/users/${second.userId}`)).statusCode, 204, 'the inactive admin can go');
});

eachDatabase('racing changes to the only two admins always leave exactly one admin', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const first = await adminToken(app);
  const second = await adminToken(app);
  // Not an admin itself, so both requests surely pass the access check and race in the domain; it
  // holds every permission there is, as it must to act on admins.
  const operator = await userWithPermissions(app, [...ADMIN_PERMISSIONS, 'read', 'write', 'delete']);
  const demote = (who: Actor) => send(app, operator, 'PUT', `/admin/users/${who.userId}/roles`, { roles: ['user'] });
  const deactivate = (who: Actor) => send(app, operator, 'PATCH', `/admin/users/${who.userId}`, { active: false });
  const remove = (who: Actor) => send(app, operator, 'DELETE', `/admin/users/${who.userId}`);
  const activeAdmins = async () =>
    (await page(app, operator, 'role=admin')).items.filter((u) => u.active).map((u) => u.id);

  const rounds: [string, (a: Actor) => ReturnType<typeof send>, (a: Actor) => ReturnType<typeof send>][] = [
    ['two demotions', demote, demote],
    ['a demotion and a deactivation', demote, deactivate],
    ['a deactivation and a deletion', deactivate, remove],
  ];
  for (const [label, one, other] of rounds) {
    const results = await Promise.all([one(first), other(second)]);
    const statuses = results.map((r) => r.statusCode);
    t.equal(statuses.filter((s) => s === 200 || s === 204).length, 1, `${label}: one goes through (${statuses.join(', ')})`);
    t.equal(statuses.filter((s) => s === 409).length, 1, `${label}: the other is refused`);
    t.equal(results.find((r) => r.statusCode === 409)?.json().code, 'last_admin', `${label}: and told why`);
    t.equal((await activeAdmins()).length, 1, `${label}: exactly one active admin is left`);
    // Put both admins back for the next round.
    const survivor = (await activeAdmins())[0]!;
    const back = survivor === first.userId ? second : first;
    if ((await send(app, operator, 'GET', `/admin/users/${back.userId}`)).statusCode === 404) {
      const again = await adminToken(app);
      Object.assign(back, again);
    } else {
      await send(app, operator, 'PATCH', `/admin/users/${back.userId}`, { active: true });
      await send(app, operator, 'PUT', `/admin/users/${back.userId}/roles`, { roles: ['admin', 'user'] });
    }
    t.equal((await activeAdmins()).length, 2, `${label}: two admins again`);
  }
});
