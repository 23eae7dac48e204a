import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../db/client.js';
import { databaseErrorCause, isDatabaseUnavailable } from '../db/errors.js';
import type { BackgroundTasks } from '../lib/background.js';
import { recordAuditEvents, type AuditEventInput } from './audit.js';

/** What the queue tells the operator: Gatehouse's pino logger. */
export interface AuditQueueLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface AuditQueue {
  /** Keeps the event to be written after the answer; while the database is out of reach, it waits here. */
  record(event: AuditEventInput): void;
  /** Events waiting to be written. */
  readonly pending: number;
  /** Events dropped since the start because the buffer was full. */
  readonly dropped: number;
  /** Shutdown: writes what it can within `ms`, then logs how many events are lost. */
  close(ms: number): Promise<void>;
}

export const AUDIT_BUFFER_CAPACITY = 10_000;
/** Events per INSERT when catching up after an outage. */
const BATCH_SIZE = 500;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;

/**
 * The audit log's writer. Events wait in a bounded buffer (oldest first) and are written in
 * batches, in the background. While the database is out of reach they are kept and retried with
 * backoff (250 ms doubling up to 5 s), so an outage delays them rather than losing them. A full
 * buffer drops new events, counted and logged: memory stays bounded, and the log keeps how the
 * outage began. Delivery is at least once: a batch whose connection dropped as it committed is
 * written again.
 */
export function createAuditQueue(
  db: Db,
  background: BackgroundTasks,
  log: AuditQueueLog,
  { capacity = AUDIT_BUFFER_CAPACITY }: { capacity?: number } = {},
): AuditQueue {
  const buffer: AuditEventInput[] = [];
  let draining = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  /** Failed attempts in a row: the outage in progress, if any. */
  let failures = 0;
  let dropped = 0;
  let droppedUnreported = 0;

  const retryDelay = () => Math.min(FIRST_RETRY_MS * 2 ** (failures - 1), MAX_RETRY_MS) * (0.75 + Math.random() / 4);

  /** Writes the oldest batch; false when the database is out of reach (the batch is kept). */
  async function writeBatch(): Promise<boolean> {
    const batch = buffer.slice(0, BATCH_SIZE);
    try {
      await recordAuditEvents(db, batch);
      buffer.splice(0, batch.length);
    } catch (err) {
      if (isDatabaseUnavailable(err)) return unreachable(err);
      // The database is there but refuses the batch: one by one, so that only what it refuses is lost.
      for (const event of batch) {
        try {
          await recordAuditEvents(db, [event]);
        } catch (single) {
          if (isDatabaseUnavailable(single)) return unreachable(single);
          log.error({ err: single, type: event.type }, 'audit event refused by the database: dropped');
        }
        buffer.shift();
      }
    }
    if (failures) log.info({ pending: buffer.length }, 'audit log writable again: catching up');
    failures = 0;
    return true;
  }

  function unreachable(err: unknown): false {
    if (++failures === 1) {
      log.warn({ pending: buffer.length, cause: databaseErrorCause(err) }, 'audit events kept until the database is back');
    }
    return false;
  }

  function reportDropped(): void {
    if (!droppedUnreported) return;
    log.error({ dropped: droppedUnreported, capacity }, `${droppedUnreported} audit events dropped: the buffer was full while the database was out of reach`);
    droppedUnreported = 0;
  }

  async function drain(): Promise<void> {
    try {
      while (buffer.length) {
        if (!(await writeBatch())) {
          if (!closed) retry = setTimeout(retryNow, retryDelay()).unref();
          return;
        }
      }
      reportDropped();
    } finally {
      draining = false;
    }
  }

  function schedule(): void {
    if (draining || retry || closed || !buffer.length) return;
    draining = true;
    background.run('audit', drain);
  }

  function retryNow(): void {
    retry = undefined;
    schedule();
  }

  return {
    record(event) {
      if (buffer.length >= capacity) {
        dropped++;
        if (droppedUnreported++ === 0) log.error({ capacity }, 'audit buffer full: new events are dropped until the database is back');
        return;
      }
      buffer.push({ ...event, at: event.at ?? new Date() });
      schedule();
    },
    get pending() {
      return buffer.length;
    },
    get dropped() {
      return dropped;
    },
    async close(ms) {
      const deadline = Date.now() + ms;
      closed = true;
      clearTimeout(retry);
      retry = undefined;
      // A write in progress finishes first (each query is bounded): two writers would write twice.
      await background.idle();
      while (buffer.length && Date.now() < deadline) {
        if (!(await writeBatch())) await sleep(Math.min(retryDelay(), Math.max(0, deadline - Date.now())));
      }
      reportDropped();
      if (buffer.length) log.error({ lost: buffer.length }, `${buffer.length} audit events not written at shutdown: the database was out of reach`);
    },
  };
}
