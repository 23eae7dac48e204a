/**
 * The arguments of a `sql.unsafe(query, params, options)` call from Drizzle, asking postgres.js to
 * use a named prepared statement. Drizzle passes `prepare: false` for every query it was not given a
 * name for, which is all of Gatehouse's: each one was then parsed and planned again, and sent in two
 * round trips (postgres.js describes an unnamed statement's parameters before it binds them). The
 * pool's own `prepare` option (DATABASE_PREPARED_STATEMENTS, false behind PgBouncer in transaction
 * mode) still decides: a query is prepared only where both say so.
 */
export function preparedCall(args: unknown[]): unknown[] {
  const [query, params, options] = args;
  return [query, params, { ...(options as object | undefined), prepare: true }];
}
