import { sql, type SQL } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/client.js';
import { queryRows } from '../db/rows.js';
import type { BackgroundTasks } from '../lib/background.js';

/** Rows deleted by one purge, per kind. */
export interface PurgeCounts {
  /** Sessions revoked or expired before the cutoff (their legacy refresh_tokens rows go with them). */
  sessions: number;
  /** Mailed tokens (confirmation, email change, reset) that expired before the cutoff, used or not. */
  userTokens: number;
  /** Failed-login counters of emails with no failure and no lockout since the cutoff. */
  loginAttempts: number;
}

interface PurgeTarget {
  table: string;
  key: string;
  /** The key's type, for the keyset's bound. */
  keyType: 'uuid' | 'text';
  /** Whether a row ended before `cutoff` (an ISO timestamp). */
  ended: (cutoff: string) => SQL;
}

const TARGETS: Record<keyof PurgeCounts, PurgeTarget> = {
  sessions: {
    table: 'sessions',
    key: 'id',
    keyType: 'uuid',
    ended: (cutoff) => sql`(revoked_at < ${cutoff}::timestamptz or expires_at < ${cutoff}::timestamptz)`,
  },
  userTokens: {
    table: 'user_tokens',
    key: 'id',
    keyType: 'uuid',
    ended: (cutoff) => sql`expires_at < ${cutoff}::timestamptz`,
  },
  loginAttempts: {
    table: 'login_attempts',
    key: 'email',
    keyType: 'text',
    ended: (cutoff) => sql`window_started_at < ${cutoff}::timestamptz and (locked_until is null or locked_until < ${cutoff}::timestamptz)`,
  },
};

/**
 * Deletes what ended before `cutoff` (now minus RETENTION_PERIOD): nothing else deletes a session
 * that ends, a mailed token once used or expired, or the counter of an email that never logged in.
 *
 * In batches of `batchSize` rows, each its own statement, so no transaction holds many row locks or
 * a long snapshot. Each batch walks on from the last key deleted, along the primary key: no index on
 * the times is needed (one on sessions.expires_at would cost every refresh its HOT update), and the
 * whole purge reads the table once. Rows another instance's purge holds are skipped, not waited for.
 */
export async function purgeEndedRecords(db: Db, cutoff: Date, batchSize = 1000): Promise<PurgeCounts> {
  const at = cutoff.toISOString();
  const counts: PurgeCounts = { sessions: 0, userTokens: 0, loginAttempts: 0 };
  for (const [kind, target] of Object.entries(TARGETS) as [keyof PurgeCounts, PurgeTarget][]) {
    counts[kind] = await purgeInBatches(db, target, at, batchSize);
  }
  return counts;
}

interface Batch {
  deleted: number;
  /** The greatest key deleted, as text. */
  last: string | null;
}

async function purgeInBatches(db: Db, target: PurgeTarget, cutoff: string, batchSize: number): Promise<number> {
  const table = sql.identifier(target.table);
  const key = sql.identifier(target.key);
  let after: string | null = null;
  let deleted = 0;
  for (;;) {
    // The last key comes back from PostgreSQL, ordered as the next batch's bound compares (collation included).
    const rows: Batch[] = await queryRows<Batch>(
      db,
      sql`
        with doomed as (
          select ${key} from ${table}
          where ${target.ended(cutoff)} and (${after}::text is null or ${key} > ${after}::${sql.raw(target.keyType)})
          order by ${key}
          limit ${batchSize}
          for update skip locked
        ),
        gone as (delete from ${table} where ${key} in (select ${key} from doomed) returning ${key})
        select (select count(*) from gone)::integer as deleted, (select ${key}::text from gone order by ${key} desc limit 1) as last`,
    );
    const { deleted: count, last } = rows[0]!;
    deleted += count;
    if (count < batchSize) return deleted;
    after = last;
  }
}

/** How often each instance purges: often enough that a day's ended rows go in small batches. */
export const PURGE_INTERVAL_MS = 60 * 60 * 1000;
/** The first purge comes 1-5 minutes after start: instances started together do not purge together, and a short-lived process (a test) never does. */
const FIRST_PURGE_MS = { min: 60_000, spread: 4 * 60_000 };

/**
 * Purges what ended more than `retentionSeconds` ago, a few minutes after start and then every
 * PURGE_INTERVAL_MS, as a background task (so shutdown waits for a purge in flight). Every instance
 * does it: purges of two instances skip each other's rows.
 */
export class Retention {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly retentionSeconds: number,
    private readonly background: BackgroundTasks,
    private readonly log: FastifyBaseLogger,
  ) {}

  start(): void {
    const next = (delay: number) => {
      this.timer = setTimeout(() => {
        this.background.run('retention purge', async () => void (await this.purgeNow()));
        next(PURGE_INTERVAL_MS);
      }, delay).unref();
    };
    next(FIRST_PURGE_MS.min + Math.random() * FIRST_PURGE_MS.spread);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** One purge now (what the schedule runs; a host app may call it from its own job). */
  async purgeNow(): Promise<PurgeCounts> {
    const counts = await purgeEndedRecords(this.db, new Date(Date.now() - this.retentionSeconds * 1000));
    if (counts.sessions + counts.userTokens + counts.loginAttempts > 0) this.log.info({ purged: counts }, 'purged records past RETENTION_PERIOD');
    return counts;
  }
}
