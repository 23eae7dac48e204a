import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import tap from 'tap';
import {
  DatabaseTimeoutError,
  RETRY_AFTER_SECONDS,
  databaseErrorCause,
  isConnectionLost,
  isDatabaseUnavailable,
  settleRaces,
  sqlStateOf,
} from '../../src/db/errors.js';
import { roles, userRoles } from '../../src/db/schema.js';
import { ProblemError } from '../../src/errors.js';
import { toProblem } from '../../src/plugins/errors.js';
import { DATABASE_KINDS, openTestDatabase } from '../helpers/databases.js';
import { freePort } from '../helpers/servers.js';

/*
 * The errors here are raised by the real database through each driver and Drizzle's wrappers, as
 * a lost race raises them; the race itself is tested through HTTP in test/routes/admin/races.test.ts.
 */

const MISSING = '00000000-0000-4000-8000-000000000000';
const raise = (sqlState: string) => sql.raw(`do $$ begin raise exception 'lost' using errcode = '${sqlState}'; end $$`);

for (const kind of DATABASE_KINDS) {
  void tap.test(`a transaction that loses a race is a concurrent_change 409 with a retry hint, on either driver [${kind}]`, async (t) => {
    const database = await openTestDatabase(kind);
    t.teardown(() => database.drop());
    const { db } = database;
    const [role] = await db.insert(roles).values({ name: 'existing' }).returning();
    const failures = {
      'a foreign key to a deleted row (23503)': () => db.transaction(async (tx) => tx.insert(userRoles).values({ userId: MISSING, roleId: role!.id })),
      'a unique value added first (23505)': () => db.transaction(async (tx) => tx.insert(roles).values({ name: role!.name })),
      'a serialization failure (40001)': () => db.transaction(async (tx) => tx.execute(raise('40001'))),
      'a deadlock (40P01)': () => db.transaction(async (tx) => tx.execute(raise('40P01'))),
    };
    for (const [label, fail] of Object.entries(failures)) {
      const err = await settleRaces('The change', fail()).then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err instanceof ProblemError, `${label}: a ProblemError`);
      t.equal((err as ProblemError).code, 'concurrent_change', `${label}: code concurrent_change`);
      t.equal((err as ProblemError).status, 409, `${label}: 409`);
      t.match((err as ProblemError).detail, /retry/i, `${label}: the detail says to retry`);
    }
  });

  void tap.test(`any other database error passes through untouched, to be a 500 [${kind}]`, async (t) => {
    const database = await openTestDatabase(kind);
    t.teardown(() => database.drop());
    const failure = database.db.transaction(async (tx) => tx.execute(sql`select * from no_such_table`));
    const err = await settleRaces('The change', failure).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.notOk(err instanceof ProblemError, 'not turned into a problem');
    t.equal(sqlStateOf(err), '42P01', 'undefined_table, read through the driver and Drizzle wrappers');
    t.equal(sqlStateOf(new Error('no code')), undefined);
    t.equal(sqlStateOf(Object.assign(new Error('socket'), { code: 'ECONNRESET' })), undefined, 'a Node error code is no SQLSTATE');
  });
}

/*
 * Telling a database out of reach (a 503 the client may retry) from any other failure (a 500, or a
 * race's 409), however deep Drizzle and the drivers wrapped it.
 */
const withCode = (code: string, message = `failed: ${code}`) => Object.assign(new Error(message), { code });

void tap.test('a database out of reach is told from other failures, through every wrapper, and becomes a 503 with Retry-After', async (t) => {
  // Real failures: a refused connection (through Drizzle's wrapper), and a query after the end.
  const refusedPort = await freePort();
  const refused = postgres(`postgres://postgres@127.0.0.1:${refusedPort}/none`, { max: 1, onnotice: () => {}, backoff: () => 0 });
  const wrapped = await drizzle(refused).execute(sql`select 1`).then(
    () => undefined,
    (e: unknown) => e,
  );
  await refused.end();
  t.notMatch(String((wrapped as Error).message), /ECONNREFUSED/, "Drizzle's own message names only the query");
  t.ok(isDatabaseUnavailable(wrapped), 'a refused connection, under Drizzle');
  t.equal(databaseErrorCause(wrapped), `connect ECONNREFUSED 127.0.0.1:${refusedPort}`, 'its cause, not the query');
  const ended = await refused`select 1`.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isDatabaseUnavailable(ended), 'a query after the client ended (CONNECTION_ENDED)');
  t.ok(isConnectionLost(ended), 'and its connection is gone');

  for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'CONNECTION_CLOSED', 'CONNECT_TIMEOUT', '57P01', '57P02', '57P03', '08006', '08P01', '53300']) {
    t.ok(isDatabaseUnavailable(withCode(code)), `${code}: unavailable`);
    t.ok(isDatabaseUnavailable(new Error('Failed query: select 1', { cause: withCode(code) })), `${code} under a wrapper: unavailable`);
  }
  t.ok(isDatabaseUnavailable(new DatabaseTimeoutError(1000)), 'our own query timeout');
  t.notOk(isConnectionLost(new DatabaseTimeoutError(1000)), 'whose connection is still there');
  t.notOk(isConnectionLost(withCode('57P01')), "a server's answer is no lost connection");
  for (const code of ['23505', '40001', '42P01', '3D000', '28P01', 'ERR_SOMETHING']) {
    t.notOk(isDatabaseUnavailable(withCode(code)), `${code}: another failure`);
  }
  t.notOk(isDatabaseUnavailable(new Error('no code')), 'an error without a code');
  t.notOk(isDatabaseUnavailable('ECONNREFUSED'), 'a thrown string');
  t.notOk(isDatabaseUnavailable(Object.assign(new Error('x'), { code: 42 })), 'a numeric code');

  // `localhost` has two addresses: Node reports both refusals as one AggregateError without a message.
  const both = Object.assign(new AggregateError([withCode('ECONNREFUSED', 'connect ECONNREFUSED ::1:5432'), withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')], ''), {
    code: 'ECONNREFUSED',
  });
  t.ok(isDatabaseUnavailable(new Error('Failed query', { cause: new AggregateError([both]) })), 'refusals inside an AggregateError');
  t.equal(databaseErrorCause(both), 'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432', 'each address named');
  t.equal(databaseErrorCause(Object.assign(new Error(''), { code: 'EPIPE' })), 'EPIPE', 'an error without words: its code');
  t.equal(databaseErrorCause('down'), 'down', 'a thrown string');

  const problem = toProblem(wrapped as never);
  t.equal(problem.code, 'service_unavailable');
  t.equal(problem.status, 503);
  t.equal(problem.extra.retryAfter, RETRY_AFTER_SECONDS, 'Retry-After');
  t.equal(RETRY_AFTER_SECONDS, 5);
  t.equal(toProblem(withCode('42P01') as never).code, 'internal_error', 'anything else stays a 500');
});
