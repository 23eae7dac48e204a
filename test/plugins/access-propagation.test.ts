import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import tap from 'tap';
import { eachDatabase } from '../helpers/app.js';
import { twoInstances } from '../helpers/instances.js';
import { bearer, registerUser } from '../helpers/users.js';

/**
 * A NOTIFY reaches the other instance in milliseconds (the README promises under a second); the
 * bound leaves room for a loaded machine and still fails a change that waits for the cache's 30 s TTL.
 */
const PROPAGATION_BOUND_MS = 5000;

/** Polls until `check` holds; returns how long it took, or fails after `limitMs`. */
async function within(limitMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < limitMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${limitMs} ms`);
}

eachDatabase('a change made through instance A is enforced by instance B within one second', async (t, kind) => {
  const { a, b, admin } = await twoInstances(t, kind);
  const user = await registerUser(a);
  const headers = bearer(user.accessToken);
  const denied = async () => (await b.inject({ url: '/admin/users', headers })).statusCode === 403;
  t.ok(await denied(), 'B denies users:read to a plain user (and caches that)');

  // Grant: role change through A.
  await a.inject({ method: 'POST', url: '/admin/roles', headers: admin, payload: { name: 'auditor', permissions: [] } });
  await a.inject({ method: 'POST', url: '/admin/permissions', headers: admin, payload: { name: 'reports:read' } });
  const assigned = await a.inject({ method: 'PUT', url: `/admin/users/${user.user.id}/roles`, headers: admin, payload: { roles: ['user', 'auditor'] } });
  t.equal(assigned.statusCode, 200);

  // Role permission change through A reaches B.
  const granted = await a.inject({ method: 'PUT', url: '/admin/roles/auditor/permissions', headers: admin, payload: { permissions: ['users:read'] } });
  t.equal(granted.statusCode, 200);
  const grantMs = await within(PROPAGATION_BOUND_MS, async () => (await b.inject({ url: '/admin/users', headers })).statusCode === 200);
  t.pass(`B allowed the new permission after ${grantMs} ms`);

  // Deactivation through A: B refuses the user's token.
  const patched = await a.inject({ method: 'PATCH', url: `/admin/users/${user.user.id}`, headers: admin, payload: { active: false } });
  t.equal(patched.statusCode, 200);
  const revokeMs = await within(PROPAGATION_BOUND_MS, async () => (await b.inject({ url: '/auth/me', headers })).statusCode === 401);
  t.pass(`B refused the deactivated user after ${revokeMs} ms`);
  t.equal((await b.inject({ url: '/auth/me', headers })).json().code, 'session_revoked');
});

eachDatabase('logout through A ends the session on B within one second', async (t, kind) => {
  const { a, b } = await twoInstances(t, kind);
  const user = await registerUser(a);
  const headers = bearer(user.accessToken);
  t.equal((await b.inject({ url: '/auth/me', headers })).statusCode, 200, 'B knows the session');
  t.equal((await a.inject({ method: 'POST', url: '/auth/logout', headers })).statusCode, 204);
  const ms = await within(PROPAGATION_BOUND_MS, async () => (await b.inject({ url: '/auth/me', headers })).statusCode === 401);
  t.pass(`B refused the logged-out session after ${ms} ms`);
});

// Only a server connection can drop: PGlite runs in-process.
if (process.env.TEST_DATABASE_URL) {
  tap.test('when its LISTEN connection drops, an instance reconnects and drops its cache [postgres]', async (t) => {
    const { a, b, url } = await twoInstances(t, 'postgres');
    const user = await registerUser(a);
    const headers = bearer(user.accessToken);
    // The sign-up's own notice reaches B a moment after A answered: B's entry must outlive it.
    await within(5000, async () => {
      if ((await b.inject({ url: '/admin/users', headers })).statusCode !== 403) return false;
      await sleep(50);
      return b.gatehouse.access.size > 0;
    });
    t.ok(b.gatehouse.access.size > 0, 'B has cached entries');

    // Cut every LISTEN connection of this database, then change rights behind B's back with no
    // NOTIFY at all (plain SQL): only a cache drop on reconnect can make B see it.
    const sql = postgres(url!, { max: 1, onnotice: () => {} });
    t.teardown(() => sql.end());
    await sql`select pg_terminate_backend(pid) from pg_stat_activity
              where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()`;
    await sql`insert into user_roles (user_id, role_id) select ${user.user.id}::uuid, id from roles where name = 'admin'`;
    const ms = await within(5000, async () => (await b.inject({ url: '/admin/users', headers })).statusCode === 200);
    t.pass(`B served the new rights ${ms} ms after its listener was cut`);
  });
}
