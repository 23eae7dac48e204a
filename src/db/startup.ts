import { setTimeout as sleep } from 'node:timers/promises';
import { databaseErrorCause, isDatabaseUnavailable, sqlStateOf } from './errors.js';

/** Where opening a database reports each failed attempt: Gatehouse's pino logger, or a script's. */
export interface StartupLog {
  warn(details: object, message: string): void;
}

/**
 * Besides a database out of reach, what a deployment starting everything at once may fix while we
 * wait: the database not created yet (3D000), or the role or its password not set yet (28000,
 * 28P01). Each failed attempt is logged with its cause, so a typo shows at once, not after the wait.
 */
const MAY_APPEAR = new Set(['3D000', '28000', '28P01']);

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;

/** host:port/database of a postgres:// URL: where it points, without the password. */
export function describeTarget(url: string): string {
  const { hostname, port, pathname } = new URL(url);
  return `${hostname}:${port || 5432}${pathname}`;
}

/**
 * Runs `attempt` until it succeeds, retrying with backoff (250 ms doubling up to 5 s) for as long as
 * it fails with what waiting may cure and `timeoutSeconds` allow; then fails with an error whose
 * message names the last cause, e.g. `connect ECONNREFUSED 127.0.0.1:5432`.
 */
export async function whenReachable<T>(
  attempt: () => Promise<T>,
  { timeoutSeconds, target, log }: { timeoutSeconds: number; target: string; log?: StartupLog },
): Promise<T> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (err) {
      const cause = databaseErrorCause(err);
      if (!isDatabaseUnavailable(err) && !MAY_APPEAR.has(sqlStateOf(err) ?? '')) {
        throw new Error(`opening the database ${target} failed: ${cause}`, { cause: err });
      }
      const delay = Math.min(FIRST_DELAY_MS * 2 ** (attempts - 1), MAX_DELAY_MS, deadline - Date.now());
      if (delay <= 0) {
        const waited = timeoutSeconds > 0 ? ` within ${timeoutSeconds} s (${attempts} attempts)` : '';
        throw new Error(`could not open the database ${target}${waited}: ${cause}`, { cause: err });
      }
      log?.warn({ attempt: attempts, cause, retryInMs: delay }, `database ${target} not available yet: ${cause}`);
      await sleep(delay);
    }
  }
}
