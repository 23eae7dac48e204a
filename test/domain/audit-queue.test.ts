import type { FastifyBaseLogger } from 'fastify';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import tap from 'tap';
import type { Db } from '../../src/db/client.js';
import * as schema from '../../src/db/schema.js';
import { createAuditQueue } from '../../src/domain/audit-queue.js';
import { listAuditEvents } from '../../src/domain/audit.js';
import { createBackgroundTasks } from '../../src/lib/background.js';
import { createLogger } from '../../src/logger.js';
import type { Test } from '../helpers/app.js';
import { openTestDatabase } from '../helpers/databases.js';
import type { LogRecord } from '../helpers/postgres-faults.js';
import { freePort } from '../helpers/servers.js';

function capturingLog(): { log: FastifyBaseLogger; lines: LogRecord[] } {
  const lines: LogRecord[] = [];
  const log = createLogger({ logLevel: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogRecord) });
  return { log: log as unknown as FastifyBaseLogger, lines };
}

/** A database nothing answers for: a port nothing listens on. */
async function unreachableDb(t: Test): Promise<Db> {
  const client = postgres(`postgres://postgres@127.0.0.1:${await freePort()}/none`, { max: 1, onnotice: () => {}, backoff: () => 0 });
  t.teardown(() => client.end({ timeout: 0 }));
  return drizzle(client, { schema }) as unknown as Db;
}

void tap.test('a full buffer drops new events, counted and logged; what is left at close is logged as lost', async (t) => {
  const { log, lines } = capturingLog();
  const background = createBackgroundTasks(log);
  const queue = createAuditQueue(await unreachableDb(t), background, log, { capacity: 3 });
  for (let n = 1; n <= 5; n++) queue.record({ type: 'login_failed', detail: { n } });
  await background.idle();
  t.equal(queue.pending, 3, 'the buffer holds its capacity');
  t.equal(queue.dropped, 2, 'and counts what it dropped');
  t.equal(lines.filter((line) => line.msg.startsWith('audit buffer full')).length, 1, 'the overflow is logged once, not per event');
  t.ok(lines.some((line) => line.msg === 'audit events kept until the database is back' && /ECONNREFUSED/.test(String(line.cause))), 'the wait, with its cause');

  const started = performance.now();
  await queue.close(300);
  const ms = performance.now() - started;
  t.ok(ms >= 250 && ms < 3000, `close tries for its time, then gives up (${Math.round(ms)} ms)`);
  t.ok(lines.some((line) => line.msg === '2 audit events dropped: the buffer was full while the database was out of reach' && line.dropped === 2), 'the drop count');
  t.ok(lines.some((line) => line.msg === '3 audit events not written at shutdown: the database was out of reach' && line.lost === 3), 'what is lost at shutdown');
});

void tap.test('an event the database refuses is dropped and logged alone; the rest of its batch is written, in order, with its own time', async (t) => {
  const database = await openTestDatabase('pglite');
  t.teardown(() => database.drop());
  const { log, lines } = capturingLog();
  const background = createBackgroundTasks(log);
  const queue = createAuditQueue(database.db, background, log);
  const at = new Date('2026-01-02T03:04:05.000Z');
  queue.record({ type: 'login_failed', detail: { n: 1 }, at });
  // jsonb takes no NUL character: PostgreSQL refuses this one event, whatever the moment.
  queue.record({ type: 'login_failed', detail: { n: 2, bad: 'nul\u0000' } });
  queue.record({ type: 'login_failed', detail: { n: 3 } });
  await background.idle();
  t.equal(queue.pending, 0, 'nothing left waiting');
  const { items } = await listAuditEvents(database.db, { limit: 10 });
  t.same(
    items.map((item) => item.detail.n),
    [3, 1],
    'the others are written, in order',
  );
  t.same(items[1]!.at, at, 'an event keeps the time it happened');
  t.ok(lines.some((line) => line.msg === 'audit event refused by the database: dropped' && line.type === 'login_failed'), 'the refused one is logged');
  await queue.close(1000);
});
