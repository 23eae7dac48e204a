import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import tap from 'tap';
import { sharedListeners } from '../../src/db/listener.js';
import { openTestDatabase } from '../helpers/databases.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

tap.test('a first LISTEN that fails leaves nothing behind: the next subscriber tries again', async (t) => {
  const port = await freePort();
  const hub = sharedListeners(`postgres://postgres@127.0.0.1:${port}/postgres`);
  await t.rejects(hub.listen('c', () => {}), { code: 'ECONNREFUSED' });
  await t.rejects(hub.listen('c', () => {}), { code: 'ECONNREFUSED' }, 'a new attempt, not the old failure kept');
  await hub.close();
});

// Only a server connection can drop or be shared: PGlite runs in-process.
if (process.env.TEST_DATABASE_URL) {
  tap.test('subscribers of one channel share one connection and hear each notice in the same turn [postgres]', async (t) => {
    const database = await openTestDatabase('postgres');
    t.teardown(() => database.drop());
    const sql = postgres(database.url!, { max: 1, onnotice: () => {} });
    t.teardown(() => sql.end());
    const hub = sharedListeners(database.url!);
    t.teardown(() => hub.close());
    const listening = async () =>
      Number((await sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and query ilike 'listen%'`)[0]!.n);

    const first: string[] = [];
    const second: string[] = [];
    const reports: string[] = [];
    const stopFirst = await hub.listen('ch', (p) => first.push(p), { onDown: () => reports.push('first down'), onUp: () => reports.push('first up') });
    // The second subscriber checks, when a notice reaches it, that the first already has it: what a
    // test waiting for a marker relies on to know every earlier notice reached the cache.
    let inOrder = true;
    const stopSecond = await hub.listen('ch', (p) => (inOrder &&= first.includes(p), second.push(p)), {
      onDown: () => reports.push('second down'),
      onUp: () => reports.push('second up'),
    });
    t.equal(await listening(), 1, 'one listening connection for both');

    for (let i = 0; i < 20; i++) await sql`select pg_notify('ch', ${String(i)})`;
    await until(() => second.length === 20, 3000, 'every notice reaches the second subscriber');
    t.same(first, second, 'both heard the same notices in the same order');
    t.ok(inOrder, 'each notice reached the first subscriber before the second');

    await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen%'`;
    await until(() => reports.length === 4, 3000, 'the loss and the return reach both');
    t.same(reports, ['first down', 'second down', 'first up', 'second up']);

    // One leaves: the connection stays for the other; the last one out closes it.
    await stopFirst();
    await stopFirst();
    await sql`select pg_notify('ch', 'after')`;
    await until(() => second.includes('after'), 3000, 'the one left still hears');
    t.notOk(first.includes('after'), 'the one gone hears nothing');
    await stopSecond();
    let left = await listening();
    for (let i = 0; left > 0 && i < 100; i++) {
      await sleep(30);
      left = await listening();
    }
    t.equal(left, 0, 'no connection left listening once the last subscriber is gone');
  });

  tap.test('a subscriber joining while the connection is down hears it at once, and hears it come back [postgres]', async (t) => {
    const database = await openTestDatabase('postgres');
    t.teardown(() => database.drop());
    // ALTER DATABASE ... allow_connections is refused from a session of that database itself.
    const serverUrl = new URL(database.url!);
    serverUrl.pathname = '/postgres';
    const sql = postgres(serverUrl.href, { max: 1, onnotice: () => {} });
    t.teardown(() => sql.end());
    const hub = sharedListeners(database.url!);
    t.teardown(() => hub.close());
    let firstDown = false;
    let firstUp = false;
    await hub.listen('ch', () => {}, { onDown: () => (firstDown = true), onUp: () => (firstUp = true) });

    // Keep LISTEN from coming back: the database refuses new connections until allowed again.
    const name = new URL(database.url!).pathname.slice(1);
    await sql`alter database ${sql(name)} allow_connections false`;
    t.teardown(() => sql`alter database ${sql(name)} allow_connections true`);
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and query ilike 'listen%'`;
    await until(() => firstDown, 3000, 'the loss is reported');

    const late: string[] = [];
    await hub.listen('ch', () => {}, { onDown: () => late.push('down'), onUp: () => late.push('up') });
    t.same(late, ['down'], 'joining while down is told so at once');
    await sql`alter database ${sql(name)} allow_connections true`;
    await until(() => firstUp && late.length === 2, 5000, 'LISTEN is back');
    t.same(late, ['down', 'up']);
  });
}
