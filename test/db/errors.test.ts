import { sql } from 'drizzle-orm';
import tap from 'tap';
import { settleRaces, sqlStateOf } from '../../src/db/errors.js';
import { roles, userRoles } from '../../src/db/schema.js';
import { ProblemError } from '../../src/errors.js';
import { DATABASE_KINDS, openTestDatabase } from '../helpers/databases.js';

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
