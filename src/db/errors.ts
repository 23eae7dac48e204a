import { problem, type ProblemError } from '../errors.js';

/**
 * The SQLSTATE of a PostgreSQL error, whichever driver raised it (postgres.js and PGlite both set
 * `code`) and however deep Drizzle wrapped it in `cause`.
 */
export function sqlStateOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Each error of a chain: Drizzle's wrapper, its `cause`, and the parts of an AggregateError (both addresses of `localhost` refused). */
function* chainOf(err: unknown): Generator<Error & { code?: unknown; errors?: unknown }> {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    yield e;
    if (e instanceof AggregateError) for (const part of e.errors) yield* chainOf(part);
  }
}

/** What a query waiting longer than DATABASE_QUERY_TIMEOUT fails with (see db/query-timeout.ts). */
export class DatabaseTimeoutError extends Error {
  override name = 'DatabaseTimeoutError';
  readonly code = 'DATABASE_TIMEOUT';
  constructor(ms: number) {
    super(`DATABASE_TIMEOUT: no answer from the database within ${ms} ms`);
  }
}

/**
 * Failures that say nothing about the request and everything about the database being out of
 * reach: Node's socket errors, postgres.js's own connection errors, our query timeout, and the
 * SQLSTATEs of a server shutting down, starting up, full, or dropping the connection (class 08).
 */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'DATABASE_TIMEOUT',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

/** True when `err` (or what it wraps) means the database could not be reached or did not answer in time. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const e of chainOf(err)) {
    if (typeof e.code !== 'string') continue;
    if (UNREACHABLE.has(e.code) || /^08[0-9A-Z]{3}$/.test(e.code)) return true;
  }
  return false;
}

/** Errors a query gets when its connection went away under it (as opposed to a server's answer). */
const CONNECTION_LOST = new Set(['ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED']);

/** True when the connection that ran the failed query is gone, so nothing more may be sent on it. */
export function isConnectionLost(err: unknown): boolean {
  for (const e of chainOf(err)) if (typeof e.code === 'string' && CONNECTION_LOST.has(e.code)) return true;
  return false;
}

/**
 * The words of the innermost error, which name the real cause (`connect ECONNREFUSED
 * 127.0.0.1:5432`, `database "x" does not exist`) where Drizzle's wrapper names only the query.
 */
export function databaseErrorCause(err: unknown): string {
  let cause = err instanceof Error ? '' : String(err);
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const { code } = e as { code?: unknown };
    // An AggregateError has no message of its own: its parts say which addresses failed.
    if (e instanceof AggregateError && e.errors.length) cause = e.errors.map(databaseErrorCause).join('; ');
    else if (e.message) cause = e.message;
    else if (typeof code === 'string') cause = code;
  }
  return cause;
}

/** Seconds a client is told to wait before trying again while the database is out of reach. */
export const RETRY_AFTER_SECONDS = 5;

/** The 503 of a request that needs the database while it is out of reach: safe to retry later. */
export function databaseUnavailable(detail = 'The database is not answering. Try again shortly.'): ProblemError {
  return problem('service_unavailable', detail, { retryAfter: RETRY_AFTER_SECONDS });
}

/** True for PostgreSQL's unique_violation, whichever driver (and Drizzle wrapper) raised it. */
export function isUniqueViolation(err: unknown): boolean {
  return sqlStateOf(err) === '23505';
}

/**
 * What a concurrent request can make a transaction fail with, though every row it read was there:
 * a row it links to deleted (foreign key), one it adds added first (unique), or the database
 * picking it to lose (serialization failure, deadlock).
 */
const RACES: Record<string, string> = {
  '23503': 'something it refers to was deleted',
  '23505': 'the same thing was created',
  '40001': 'the database could not order the two',
  '40P01': 'the database could not order the two',
};

/**
 * Settles `work` (a transaction) so that losing a race to a parallel request is the 409
 * `concurrent_change`, telling the client to look again and retry, rather than a 500. `what`
 * names the change for the detail, e.g. "The role change".
 */
export async function settleRaces<T>(what: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    const reason = RACES[sqlStateOf(err) ?? ''];
    if (reason === undefined) throw err;
    throw problem('concurrent_change', `${what} collided with a parallel request (${reason}) and was not made. Read the current state and retry.`);
  }
}
