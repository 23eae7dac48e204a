/**
 * Rights stay exact across a database restart, with a PostgreSQL cluster of the test's own: two
 * Gatehouse instances on one database, B's cache warm, the database restarted, a permission revoked
 * through A as soon as the database accepts connections. B stops trusting its cache the moment its
 * LISTEN connection drops, so it refuses within a second, and it listens (and caches) again soon
 * after. Then the same through a PgBouncer in transaction mode, LISTEN going around it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import postgres from 'postgres';
import tap from 'tap';
import { openDatabase, type Database, type OpenDatabaseOptions } from '../../src/db/client.js';
import { adminToken, roleGranting, send, type Actor } from '../helpers/admin.js';
import { buildTestApp, type Test } from '../helpers/app.js';
import { hasPgbouncer, startPgbouncer } from '../helpers/pgbouncer.js';
import { startPostgresCluster, type PostgresCluster } from '../helpers/servers.js';
import { bearer, registerUser } from '../helpers/users.js';

// The issue asks for 1 s. Asserted with room for a slow shared machine, still far below the
// authorization cache's 30 s TTL, which is what an instance trusting a deaf cache would serve for.
const REFUSAL_BOUND_MS = 2500;
// LISTEN reconnects every 100 ms to 1 s; the pool's backoff this replaces grew to 20 s.
const LISTEN_BACK_BOUND_MS = 5000;
// Not the subject here (see the outage tests): how long A may take to write again after the restart.
const WRITE_BOUND_MS = 10_000;
const ROUNDS = 3;

interface Round {
  /** From the database accepting connections to A's revoke being committed. */
  revokeMs: number;
  /** From the revoke being committed to B's first refusal. */
  refusalMs: number;
  /** From the database accepting connections to B listening (and caching) again. */
  listenMs: number;
  /** Whether B was listening again already when the revoke was committed. */
  listeningAtRevoke: boolean;
  /** B's answers until its first refusal. */
  answers: number[];
}

/** Repeats `attempt` every 20 ms until `done` holds of its result; fails after `limitMs`. */
async function until<T>(limitMs: number, attempt: () => Promise<T>, done: (result: T) => boolean, what: string): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  for (;;) {
    const result = await attempt();
    const ms = performance.now() - started;
    if (done(result)) return { result, ms };
    if (ms > limitMs) throw new Error(`${what}: not within ${limitMs} ms (last: ${JSON.stringify(result)})`);
    await sleep(20);
  }
}

/** Runs statements as the cluster's superuser on `database`, one connection, closed after. */
async function asSuperuser(cluster: PostgresCluster, database: string, ...statements: string[]): Promise<void> {
  const admin = postgres(cluster.urlOf(database), { max: 1, onnotice: () => {} });
  try {
    for (const statement of statements) await admin.unsafe(statement);
  } finally {
    await admin.end();
  }
}

interface ListenerLog {
  downs: number[];
  ups: number[];
}

/** Records when the database's listener reports its connection down and up (performance.now()). */
function logListener(database: Database): ListenerLog {
  const log: ListenerLog = { downs: [], ups: [] };
  const listen = database.listen;
  database.listen = (channel, onMessage, events) =>
    listen(channel, onMessage, {
      onDown: () => {
        log.downs.push(performance.now());
        events?.onDown?.();
      },
      onUp: () => {
        log.ups.push(performance.now());
        events?.onUp?.();
      },
    });
  return log;
}

/** Two instances on one database, each with its own pool and LISTEN connection, as two processes. */
async function twoInstances(t: Test, options: OpenDatabaseOptions) {
  const first = await openDatabase({ ...options, poolSize: 3 });
  const second = await openDatabase({ ...options, poolSize: 3 });
  const listenerOfB = logListener(second);
  // Teardowns run last-in first-out: the apps close before their databases.
  t.teardown(async () => {
    await first.close();
    await second.close();
  });
  const a = (await buildTestApp(t, 'postgres', { database: first })).app;
  const b = (await buildTestApp(t, 'postgres', { database: second })).app;
  return { a, b, listenerOfB };
}

const listUsers = (app: FastifyInstance, user: Actor) => send(app, user, 'GET', '/admin/users');
const status = (res: LightMyRequestResponse) => res.statusCode;

/**
 * Rounds of: grant through A, B allows (from its cache), restart, revoke through A at once, B refuses.
 * Returns the figures of each round.
 */
async function restartRounds(
  t: Test,
  cluster: PostgresCluster,
  { a, b, listenerOfB }: { a: FastifyInstance; b: FastifyInstance; listenerOfB: ListenerLog },
): Promise<Round[]> {
  const admin = await adminToken(a);
  const role = await roleGranting(a, ['users:read']);
  const registered = await registerUser(a);
  const user: Actor = { userId: registered.user.id, email: registered.email, accessToken: registered.accessToken, refreshToken: registered.refreshToken!, headers: bearer(registered.accessToken) };
  const setRoles = (roles: string[]) => send(a, admin, 'PUT', `/admin/users/${user.userId}/roles`, { roles });

  const rounds: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await until(WRITE_BOUND_MS, () => setRoles(['user', role]), (res) => res.statusCode === 200, `round ${round}: grant through A`);
    // The grant's own notice may reach B just after B read the grant, and drop that entry: read again.
    const warm = async () => status(await listUsers(b, user)) === 200 && (await sleep(50), b.gatehouse.access.peek(user.userId) !== undefined);
    await until(REFUSAL_BOUND_MS, warm, Boolean, `round ${round}: B allows the grant, from its cache`);

    const { downs, ups } = listenerOfB;
    const [downsBefore, upsBefore] = [downs.length, ups.length];
    cluster.stop();
    cluster.start();
    const back = performance.now();
    const revoked = await until(WRITE_BOUND_MS, () => setRoles(['user']), (res) => res.statusCode === 200, `round ${round}: revoke through A`);
    const listeningAtRevoke = ups.length > upsBefore;
    t.ok(downs.length > downsBefore, `round ${round}: B's listener reported its connection lost`);
    const answers: number[] = [];
    const refused = await until(
      REFUSAL_BOUND_MS,
      async () => status(await listUsers(b, user)),
      (code) => (answers.push(code), code === 403),
      `round ${round}: B refuses the revoked permission`,
    );
    await until(LISTEN_BACK_BOUND_MS - (performance.now() - back), async () => ups.length > upsBefore, Boolean, `round ${round}: B listens again`);
    t.ok(b.gatehouse.access.trusted, `round ${round}: B trusts its cache again`);
    rounds.push({
      revokeMs: Math.round(revoked.ms),
      refusalMs: Math.round(refused.ms),
      listenMs: Math.round(ups[upsBefore]! - back),
      listeningAtRevoke,
      answers,
    });
    t.notOk(answers.includes(200), `round ${round}: B never allowed the revoked permission (answers ${answers.join(', ')})`);
    // Refused for good, not only by the one read that happened to reach the database.
    for (let i = 0; i < 5; i++) t.equal(status(await listUsers(b, user)), 403, `round ${round}: B still refuses (${i + 1})`);
  }

  // Listening again, B caches again, and a change through A still reaches it at once.
  const cached = async () => status(await listUsers(b, user)) === 403 && (await sleep(50), b.gatehouse.access.peek(user.userId) !== undefined);
  await until(REFUSAL_BOUND_MS, cached, Boolean, 'B keeps entries in its cache again');
  await setRoles(['user', role]);
  const regranted = await until(REFUSAL_BOUND_MS, () => listUsers(b, user), (res) => res.statusCode === 200, 'B allows a new grant');
  t.pass(`after the restarts a grant through A reached B in ${Math.round(regranted.ms)} ms`);
  return rounds;
}

function report(t: Test, label: string, rounds: Round[]): void {
  const stats = (values: number[]) => {
    const sorted = [...values].sort((x, y) => x - y);
    return `p50 ${sorted[Math.floor((sorted.length - 1) / 2)]} ms, max ${sorted.at(-1)} ms`;
  };
  t.comment(`${label}: B refused ${stats(rounds.map((r) => r.refusalMs))} after the revoke committed`);
  t.comment(`${label}: B listened again ${stats(rounds.map((r) => r.listenMs))} after the database accepted connections`);
  t.comment(`${label}: A's revoke committed ${stats(rounds.map((r) => r.revokeMs))} after the database accepted connections`);
  t.comment(`${label}: B was already listening at the revoke in ${rounds.filter((r) => r.listeningAtRevoke).length} of ${rounds.length} rounds`);
}

const cluster = await startPostgresCluster(tap);

void tap.test('a permission revoked through A right after a database restart is refused by B within a second', async (t) => {
  await asSuperuser(cluster, 'postgres', 'create database direct');
  const instances = await twoInstances(t, { databaseUrl: cluster.urlOf('direct') });
  report(t, 'direct', await restartRounds(t, cluster, instances));
});

void tap.test('the same with the pools behind PgBouncer in transaction mode and LISTEN going around it', { skip: !hasPgbouncer && 'pgbouncer is not installed' }, async (t) => {
  await asSuperuser(cluster, 'postgres', 'create database pooled');
  const bouncer = await startPgbouncer(t, cluster.port);
  const instances = await twoInstances(t, {
    databaseUrl: `postgres://postgres@127.0.0.1:${bouncer}/pooled`,
    listenUrl: cluster.urlOf('pooled'),
    preparedStatements: false,
  });
  report(t, 'PgBouncer', await restartRounds(t, cluster, instances));
});

void tap.test('while its LISTEN connection cannot come back, B reads every right from the database, and caches again once it is back', async (t) => {
  // The instances listen as a role of their own, which can be kept from logging in while the
  // database itself stays up: a LISTEN outage alone, held as long as the test wants.
  await asSuperuser(cluster, 'postgres', 'create database deaf', 'create role listener login superuser');
  const { a, b, listenerOfB } = await twoInstances(t, { databaseUrl: cluster.urlOf('deaf'), listenUrl: `postgres://listener@127.0.0.1:${cluster.port}/deaf` });
  const admin = await adminToken(a);
  const role = await roleGranting(a, ['users:read']);
  const registered = await registerUser(a);
  const user: Actor = { userId: registered.user.id, email: registered.email, accessToken: registered.accessToken, refreshToken: registered.refreshToken!, headers: bearer(registered.accessToken) };
  const setRoles = (roles: string[]) => send(a, admin, 'PUT', `/admin/users/${user.userId}/roles`, { roles });
  t.equal((await setRoles(['user', role])).statusCode, 200);
  const warm = async () => status(await listUsers(b, user)) === 200 && (await sleep(50), b.gatehouse.access.peek(user.userId) !== undefined);
  await until(REFUSAL_BOUND_MS, warm, Boolean, 'B allows the grant, from its cache');

  const downsBefore = listenerOfB.downs.length;
  await asSuperuser(cluster, 'deaf', 'alter role listener nologin', "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'listener'");
  await until(LISTEN_BACK_BOUND_MS, async () => listenerOfB.downs.length > downsBefore, Boolean, "B's listener reports its connection lost");
  t.notOk(b.gatehouse.access.trusted, 'B no longer trusts its cache');
  t.equal(b.gatehouse.access.size, 0, 'B dropped its entries');

  // A's notice goes nowhere B could hear it: only B's own read of the database can refuse.
  t.equal((await setRoles(['user'])).statusCode, 200, 'revoked through A');
  const started = performance.now();
  t.equal(status(await listUsers(b, user)), 403, `B refuses the revoked permission at its first request (${Math.round(performance.now() - started)} ms)`);
  t.equal((await setRoles(['user', role])).statusCode, 200, 'granted again through A');
  t.equal(status(await listUsers(b, user)), 200, 'B allows the new grant at its first request');
  t.equal(b.gatehouse.access.size, 0, 'B kept none of the states it read while deaf');
  // Longer than the reconnect delays: B keeps trying, and keeps distrusting while it fails.
  await sleep(1500);
  t.notOk(b.gatehouse.access.trusted, 'B still does not trust its cache while LISTEN cannot come back');

  const upsBefore = listenerOfB.ups.length;
  await asSuperuser(cluster, 'deaf', 'alter role listener login');
  const back = await until(LISTEN_BACK_BOUND_MS, async () => listenerOfB.ups.length > upsBefore, Boolean, 'B listens again');
  t.ok(b.gatehouse.access.trusted, 'B trusts its cache again');
  t.comment(`B listened again ${Math.round(back.ms)} ms after the listener could log in again`);
  await until(REFUSAL_BOUND_MS, warm, Boolean, 'B serves from its cache again');
  t.equal((await setRoles(['user'])).statusCode, 200, 'revoked again through A');
  const refused = await until(REFUSAL_BOUND_MS, async () => status(await listUsers(b, user)), (code) => code === 403, 'B refuses through its notice');
  t.pass(`with LISTEN back, B refused ${Math.round(refused.ms)} ms after the revoke`);
});
