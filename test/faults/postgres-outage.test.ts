/**
 * PostgreSQL going away under a running Gatehouse: a cluster of the test's own, stopped (fast
 * shutdown, as in a restart or a failover) and started again, or behind a proxy that stops
 * answering. Timings are printed as comments; bounds are asserted with a margin that a hang of
 * 20-30 s (before) still fails.
 */
import { sql } from 'drizzle-orm';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import postgres from 'postgres';
import tap from 'tap';
import { openDatabase } from '../../src/db/client.js';
import { isConnectionLost } from '../../src/db/errors.js';
import { queryRows } from '../../src/db/rows.js';
import { READY_TIMEOUT_MS } from '../../src/routes/health/index.js';
import { adminToken, type Actor } from '../helpers/admin.js';
import type { Test } from '../helpers/app.js';
import { PASSWORD, post } from '../helpers/users.js';
import { buildAppOnUrl, createDatabase, msUntil, startTcpProxy, timed, type LogRecord } from '../helpers/postgres-faults.js';
import { startPostgresCluster } from '../helpers/servers.js';

const cluster = await startPostgresCluster(tap);

// An error thrown from a postgres.js timer or a promise nobody awaits would take a server down:
// here it is recorded, and each test checks that none happened.
const uncaught: unknown[] = [];
const record = (err: unknown) => void uncaught.push(err);
process.on('uncaughtException', record);
process.on('unhandledRejection', record);
tap.teardown(() => {
  process.off('uncaughtException', record);
  process.off('unhandledRejection', record);
});

/**
 * The requests an outage is measured on: each needs the database. /auth/me needs it once the
 * authorization cache stops trusting itself, when LISTEN's connection is lost: not when the
 * database is merely silent, where it is served from the cache.
 */
function probes(admin: Actor, { cached = false } = {}): Record<string, (app: FastifyInstance) => Promise<LightMyRequestResponse>> {
  return {
    'POST /auth/login': (app) => post(app, '/auth/login', { email: admin.email, password: PASSWORD }),
    ...(cached ? {} : { 'GET /auth/me (token)': (app: FastifyInstance) => app.inject({ url: '/auth/me', headers: admin.headers }) }),
    'GET /admin/users': (app) => app.inject({ url: '/admin/users', headers: admin.headers }),
    'POST /auth/refresh': (app) => post(app, '/auth/refresh', { refreshToken: admin.refreshToken }),
    'POST /auth/register (a transaction)': (app) => post(app, '/auth/register', { email: `outage.${Date.now()}@example.com`, password: PASSWORD }),
    'GET /ready': (app) => app.inject({ url: '/ready' }),
  };
}

/** Every probe, `rounds` times (the first requests of an outage were the 500s): each a 503 with Retry-After within `limitMs`. */
async function expectQuick503s(t: Test, app: FastifyInstance, admin: Actor, limitMs: number, { cached = false, rounds = 2 } = {}): Promise<void> {
  const figures: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const [name, send] of Object.entries(probes(admin, { cached }))) {
      const { ms, result: res } = await timed(() => send(app));
      figures.push(`${name} #${round}: ${res.statusCode} in ${ms} ms`);
      t.equal(res.statusCode, 503, `${name} #${round}: 503, not a 500 or a hang (${res.body.slice(0, 200)})`);
      t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', `${name}: problem+json`);
      t.equal(res.json().code, 'service_unavailable', `${name}: code service_unavailable`);
      t.equal(res.headers['retry-after'], '5', `${name}: Retry-After`);
      t.ok(ms < limitMs, `${name} #${round}: answered in ${ms} ms (< ${limitMs})`);
    }
  }
  t.comment(figures.join('\n'));
}

/** Milliseconds until every probe succeeds again (polled), with the figure per probe. */
async function expectRecovery(t: Test, app: FastifyInstance, admin: Actor, limitMs: number): Promise<void> {
  const ready = await msUntil(async () => (await app.inject({ url: '/ready' })).statusCode === 200, limitMs);
  const me = await msUntil(async () => (await app.inject({ url: '/auth/me', headers: admin.headers })).statusCode === 200, limitMs);
  const users = await msUntil(async () => (await app.inject({ url: '/admin/users', headers: admin.headers })).statusCode === 200, limitMs);
  t.comment(`recovered: /ready after ${ready} ms, then /auth/me after ${me} ms more, /admin/users after ${users} ms more`);
  t.ok(ready + me + users < limitMs, `serving again ${ready + me + users} ms after the database accepts connections`);
}

void tap.test('PostgreSQL down: every request that needs it is a quick 503 with Retry-After, /health stays 200, and it serves again by itself once the database is back', async (t) => {
  const logs: LogRecord[] = [];
  const { app } = await buildAppOnUrl(t, cluster.urlOf(await createDatabase(cluster)), { logs });
  const admin = await adminToken(app);
  t.equal((await app.inject({ url: '/auth/me', headers: admin.headers })).statusCode, 200, 'served before the outage');

  cluster.stop();
  try {
    // Until its LISTEN connection is known lost, the authorization cache may still answer /auth/me.
    const distrusted = await msUntil(async () => !app.gatehouse.access.trusted, 2000);
    t.comment(`authorization cache distrusted ${distrusted} ms after the stop`);
    await expectQuick503s(t, app, admin, 3000);
    t.equal((await app.inject({ url: '/health' })).statusCode, 200, '/health (liveness) stays 200');

    // Audit events recorded while the database is away wait for it.
    for (const n of [1, 2, 3]) app.gatehouse.audit({ type: 'login_failed', detail: { email: `during-outage-${n}@example.com`, reason: 'unknown_email' } });
    await app.gatehouse.background.idle();
    t.ok(app.gatehouse.auditQueue.pending >= 3, 'the audit events are kept, not dropped');
    t.ok(logs.some((line) => line.msg === 'audit events kept until the database is back'), 'and the wait is logged');
    t.ok(
      logs.some((line) => line.msg === 'Service unavailable' && /ECONNREFUSED|CONNECTION_CLOSED|57P01/.test(String(line.cause))),
      'each 503 is logged with its cause',
    );
  } finally {
    cluster.start();
  }
  await expectRecovery(t, app, admin, 5000);

  const audited = await msUntil(async () => {
    const res = await app.inject({ url: '/admin/audit?type=login_failed&limit=50', headers: admin.headers });
    const emails = (res.json() as { items: { detail: { email?: string } }[] }).items.map((item) => item.detail.email);
    return [1, 2, 3].every((n) => emails.includes(`during-outage-${n}@example.com`));
  }, 10_000);
  t.comment(`audit events of the outage written ${audited} ms after the database came back`);
  t.equal(app.gatehouse.auditQueue.pending, 0, 'nothing left in the audit buffer');
  t.same(uncaught, [], 'nothing uncaught');
});

void tap.test('a transaction cut by a fast shutdown is a 503, and the process lives on (postgres.js wrote its ROLLBACK to the closed socket: an uncaught TypeError)', async (t) => {
  const database = await createDatabase(cluster);
  const { app } = await buildAppOnUrl(t, cluster.urlOf(database));
  // Registration's transaction inserts the user, then waits here for its role.
  const locker = postgres(cluster.urlOf(database), { max: 2, onnotice: () => {} });
  const holder = await locker.reserve();
  await holder`begin`;
  await holder`lock table user_roles in exclusive mode`;
  const registering = post(app, '/auth/register', { email: 'cut@example.com', password: PASSWORD });
  await msUntil(async () => {
    const [row] = await locker`select count(*)::int as waiting from pg_stat_activity where datname = ${database} and wait_event_type = 'Lock'`;
    return row!.waiting === 1;
  }, 10_000);

  cluster.stop();
  try {
    const res = await registering;
    t.equal(res.statusCode, 503, 'the cut transaction is a 503');
    t.equal(res.json().code, 'service_unavailable');
    // postgres.js wrote in a setImmediate: give it that turn and a few more.
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.same(uncaught, [], 'nothing written to the closed connection, nothing uncaught');
  } finally {
    cluster.start();
    await locker.end({ timeout: 0 }).catch(() => {});
  }
  const ms = await msUntil(async () => (await post(app, '/auth/register', { email: 'cut@example.com', password: PASSWORD })).statusCode === 201, 5000);
  t.comment(`registration works again ${ms} ms after the database accepts connections`);
});

void tap.test('a server shutting down while a new connection waits for its first answer: a 503, and no unhandled rejection (the uncaught 57P01 of postgres.js fetch_types)', async (t) => {
  const database = await createDatabase(cluster);
  const proxy = await startTcpProxy(t, cluster.port);
  const { app } = await buildAppOnUrl(t, proxy.urlOf(database));
  const admin = await adminToken(app);
  // Every connection closed, then new ones get through their startup and no further.
  proxy.restore();
  proxy.holdAfterStartup();
  const asking = app.inject({ url: '/admin/users', headers: admin.headers });
  await new Promise((resolve) => setTimeout(resolve, 300));

  cluster.stop();
  try {
    const res = await asking;
    t.equal(res.statusCode, 503, 'a 503');
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.same(uncaught, [], 'nothing uncaught');
  } finally {
    cluster.start();
    proxy.restore();
  }
  await expectRecovery(t, app, admin, 5000);
  t.same(uncaught, [], 'nothing uncaught after the restart either');
});

void tap.test('PostgreSQL not answering at all (connections accepted, nothing comes back): 503s after DATABASE_QUERY_TIMEOUT, /ready within a second, and back as soon as it answers', async (t) => {
  const database = await createDatabase(cluster);
  const proxy = await startTcpProxy(t, cluster.port);
  const { app } = await buildAppOnUrl(t, proxy.urlOf(database), { env: { DATABASE_QUERY_TIMEOUT: '1s' } });
  const admin = await adminToken(app);

  proxy.blackhole();
  try {
    const ready = await timed(() => app.inject({ url: '/ready' }));
    t.comment(`/ready: ${ready.result.statusCode} in ${ready.ms} ms`);
    t.equal(ready.result.statusCode, 503, '/ready is a 503');
    t.ok(ready.ms >= READY_TIMEOUT_MS - 50 && ready.ms < 2000, `/ready answered in ${ready.ms} ms: its own ${READY_TIMEOUT_MS} ms, not the query timeout`);
    await expectQuick503s(t, app, admin, 3000, { cached: true, rounds: 1 });
    t.equal((await app.inject({ url: '/health' })).statusCode, 200, '/health stays 200');
  } finally {
    proxy.restore();
  }
  await expectRecovery(t, app, admin, 5000);
  t.same(uncaught, [], 'nothing uncaught');
});

void tap.test('a transaction whose statement outlives DATABASE_QUERY_TIMEOUT is a 503, its ROLLBACK bounded too; the connection is of use again once the statement ends', async (t) => {
  const database = await createDatabase(cluster);
  const { app } = await buildAppOnUrl(t, cluster.urlOf(database), { env: { DATABASE_QUERY_TIMEOUT: '1s' } });
  const locker = postgres(cluster.urlOf(database), { max: 1, onnotice: () => {} });
  t.teardown(() => locker.end({ timeout: 0 }));
  const holder = await locker.reserve();
  await holder`begin`;
  await holder`lock table user_roles in exclusive mode`;

  const { ms, result: res } = await timed(() => post(app, '/auth/register', { email: 'slow@example.com', password: PASSWORD }));
  t.comment(`register blocked on a lock: ${res.statusCode} in ${ms} ms (statement 1 s, then ROLLBACK 1 s)`);
  t.equal(res.statusCode, 503, 'a 503, not a hang');
  t.ok(ms < 4000, `answered in ${ms} ms`);

  await holder`rollback`;
  holder.release();
  const again = await msUntil(async () => (await post(app, '/auth/register', { email: 'slow@example.com', password: PASSWORD })).statusCode === 201, 5000);
  t.comment(`registered ${again} ms after the lock was released`);
  t.same(uncaught, [], 'nothing uncaught');
});

void tap.test('statements a transaction sends after its connection was lost fail at once, without reaching it', async (t) => {
  const database = await openDatabase({ databaseUrl: cluster.urlOf(await createDatabase(cluster)), poolSize: 2 });
  t.teardown(() => database.close());
  let afterLoss: Promise<{ ms: number; result: unknown }> | undefined;
  const transaction = database.db.transaction(async (tx) => {
    const nested = await tx.transaction(async (inner) => queryRows(inner, sql`select 1 as one`));
    t.same(nested, [{ one: 1 }], 'a nested transaction (a savepoint) works through the bounded client');
    const cut = tx.execute(sql`select pg_sleep(30)`).then(
      () => undefined,
      (e: unknown) => e,
    );
    setTimeout(() => cluster.stop(), 200);
    t.ok(isConnectionLost(await cut), 'the statement running is failed by the loss');
    // Code that swallowed that error and carries on: postgres.js would write this to the closed socket.
    afterLoss = timed(() =>
      tx.execute(sql`select 2`).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    await afterLoss;
  });
  try {
    const err = await transaction.then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(isConnectionLost(err), 'the transaction fails with the loss');
    const { ms, result } = await afterLoss!;
    t.ok(isConnectionLost(result), 'the next statement fails with it too');
    t.ok(ms < 100, `at once (${ms} ms)`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.same(uncaught, [], 'nothing uncaught');
  } finally {
    cluster.start();
  }
});

void tap.test('audit events kept through an outage are written at shutdown when the database is back by then', async (t) => {
  const name = await createDatabase(cluster);
  const { app } = await buildAppOnUrl(t, cluster.urlOf(name));
  cluster.stop();
  try {
    app.gatehouse.audit({ type: 'logout', detail: { kept: 'until shutdown' } });
    await app.gatehouse.background.idle();
    t.equal(app.gatehouse.auditQueue.pending, 1, 'kept while the database is down');
  } finally {
    cluster.start();
  }
  // Closed before the retry comes round: the close itself writes it.
  await app.close();
  const reader = postgres(cluster.urlOf(name), { max: 1, onnotice: () => {} });
  t.teardown(() => reader.end());
  const rows = await reader`select type, detail from audit_events where detail->>'kept' = 'until shutdown'`;
  t.equal(rows.length, 1, 'written by the close');
});
