import type postgres from 'postgres';
import { deadline } from '../lib/deadline.js';
import { DatabaseTimeoutError, isConnectionLost } from './errors.js';
import { preparedCall } from './prepared.js';

/** A postgres.js client with whatever custom types (`any`: its parsers' types vary both ways). */
type Sql = postgres.Sql<any>;
type Query = PromiseLike<unknown> & { values(): unknown };
/** `sql.unsafe`, whatever the Sql's type parameters: its arguments pass through untouched. */
type Unsafe = (...args: unknown[]) => Query;

/**
 * Bounds every query Drizzle sends through `client` to `ms`, waiting for a connection included:
 * past it, the query fails with DatabaseTimeoutError and its request gets a 503. Each query may also
 * be a prepared statement (see prepared.ts).
 *
 * A timer in the client, rather than the server's statement_timeout, because it also bounds a
 * server that stopped answering (or a network that dropped the packets) and the wait for a pool
 * connection, and because PgBouncer in transaction mode refuses statement_timeout as a startup
 * parameter. The statement itself is not cancelled: postgres.js's cancel() leaves the promise of
 * its cancel request unhandled (a crash when the server is unreachable) and leaves a connection
 * that was still connecting for the cancelled query out of the pool for good. So a statement that
 * timed out may still complete on the server; a role's own statement_timeout stops it there.
 */
export function boundQueries<S extends Sql>(client: S, ms: number): S {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'unsafe') return (...args: unknown[]) => bounded((target.unsafe as Unsafe)(...preparedCall(args)), ms);
      if (property === 'begin') return (...args: unknown[]) => boundedTransaction(target, args, ms);
      return Reflect.get(target, property, receiver) as unknown;
    },
  });
}

/**
 * Awaiting `query` (a postgres.js query is a lazy promise that runs when first awaited) races it
 * against the timer; `.values()` returns the query itself, so it stays bounded.
 */
function bounded<Q extends Query>(query: Q, ms: number, onError?: (err: unknown) => void): Q {
  const run = query.then.bind(query);
  let outcome: Promise<unknown> | undefined;
  Object.defineProperty(query, 'then', {
    value(onFulfilled?: (value: unknown) => unknown, onRejected?: (err: unknown) => unknown) {
      if (!outcome) {
        outcome = deadline({ then: run }, ms, () => new DatabaseTimeoutError(ms));
        if (onError) outcome.catch(onError);
      }
      return outcome.then(onFulfilled, onRejected);
    },
  });
  return query;
}

/** A query that fails at once with `err` without reaching a connection. */
function failed(err: unknown): Query {
  const query: Query = {
    values: () => query,
    then: (onFulfilled, onRejected) => Promise.reject(err).then(onFulfilled, onRejected),
  };
  return query;
}

/**
 * `sql.begin` with its BEGIN and its COMMIT or ROLLBACK bounded too, and a guard for a connection
 * lost in the middle. postgres.js answers such a loss by rejecting the transaction, then still
 * writes the ROLLBACK (or the next statement) to the closed connection: an uncaught TypeError in a
 * timer that takes the process down (porsager/postgres#1066, #1208). So once the connection is
 * gone, the transaction's statements fail here without reaching it, and the callback never returns
 * to postgres.js, which would write the ROLLBACK.
 */
function boundedTransaction(client: Sql, args: unknown[], ms: number): Promise<unknown> {
  const callback = args.pop() as (tx: postgres.TransactionSql) => unknown;
  let lost: unknown;
  let inside = false;
  let timer: NodeJS.Timeout | undefined;
  let expire!: () => void;
  const expired = new Promise<never>((_, reject) => (expire = () => reject(new DatabaseTimeoutError(ms))));
  const arm = () => (timer = setTimeout(expire, ms));
  const noteLost = (err: unknown) => {
    if (isConnectionLost(err)) lost ??= err;
  };
  const tx = (sql: postgres.TransactionSql) =>
    new Proxy(sql, {
      get(target, property, receiver) {
        if (property !== 'unsafe') return Reflect.get(target, property, receiver) as unknown;
        return (...query: unknown[]) => (lost ? failed(lost) : bounded((target.unsafe as Unsafe)(...preparedCall(query)), ms, noteLost));
      },
    });

  arm();
  const work = client.begin(...(args as []), async (sql: postgres.TransactionSql) => {
    clearTimeout(timer);
    inside = true;
    try {
      return await callback(tx(sql));
    } finally {
      inside = false;
      // COMMIT or ROLLBACK must answer in time too; after a loss this bound is only a safety net,
      // postgres.js having failed the transaction already.
      arm();
      if (lost) await new Promise(() => {});
    }
  });
  // While the callback runs, the transaction fails only because its connection closed.
  work.then(undefined, (err: unknown) => {
    if (inside) lost ??= err;
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
