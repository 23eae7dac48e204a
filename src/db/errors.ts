import { problem } from '../errors.js';

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
