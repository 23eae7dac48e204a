import { sql } from 'drizzle-orm';
import tap from 'tap';
import { openDatabase } from '../../src/db/client.js';
import { queryRows } from '../../src/db/rows.js';
import { openTestDatabase } from '../helpers/databases.js';

/**
 * The statements prepared on the pool's one connection, as that connection sees them: the query
 * asking is the pool's own, so it runs where the earlier ones ran.
 */
async function preparedOnConnection(url: string, preparedStatements: boolean): Promise<string[]> {
  const database = await openDatabase({ databaseUrl: url, poolSize: 1, preparedStatements });
  try {
    for (let i = 0; i < 3; i++) await database.db.execute(sql`select ${i}::int as n`);
    await database.db.transaction((tx) => tx.execute(sql`select ${'in a transaction'}::text as t`));
    const rows = await queryRows<{ statement: string }>(database.db, sql`select statement from pg_prepared_statements where statement not like '%pg_prepared_statements%'`);
    return rows.map((r) => r.statement);
  } finally {
    await database.close();
  }
}

void tap.test("Drizzle's queries run as prepared statements, unless DATABASE_PREPARED_STATEMENTS says not to", { skip: !process.env.TEST_DATABASE_URL && 'needs TEST_DATABASE_URL' }, async (t) => {
  const database = await openTestDatabase('postgres');
  t.teardown(() => database.drop());
  const prepared = await preparedOnConnection(database.url!, true);
  t.ok(prepared.some((s) => s.includes('::int as n')), 'a plain query is prepared, once for its three runs');
  t.equal(prepared.filter((s) => s.includes('::int as n')).length, 1);
  t.ok(prepared.some((s) => s.includes('::text as t')), 'so is a query in a transaction');
  t.same(await preparedOnConnection(database.url!, false), [], 'with prepared statements off (PgBouncer in transaction mode), none');
});
