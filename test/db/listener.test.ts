import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import tap from 'tap';
import { listenDirect } from '../../src/db/listener.js';
import { openTestDatabase } from '../helpers/databases.js';
import { startTcpProxy } from '../helpers/postgres-faults.js';
import { freePort } from '../helpers/servers.js';

/** Waits until `check` holds; fails after `limitMs`. Returns how long it took. */
async function within(limitMs: number, check: () => boolean, what: string): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(10);
  }
  return Math.round(performance.now() - started);
}

tap.test('a listener to an address where nothing answers fails at once instead of waiting', async (t) => {
  const port = await freePort();
  await t.rejects(listenDirect(`postgres://postgres@127.0.0.1:${port}/postgres`, 'nowhere', () => {}), { code: 'ECONNREFUSED' });
});

// Only a server connection can drop: PGlite runs in-process.
if (process.env.TEST_DATABASE_URL) {
  tap.test('a listener reports the loss of its connection at once, comes back by itself and hears notices again [postgres]', async (t) => {
    const database = await openTestDatabase('postgres');
    t.teardown(() => database.drop());
    const sql = postgres(database.url!, { max: 1, onnotice: () => {} });
    t.teardown(() => sql.end());
    const heard: string[] = [];
    const reports: string[] = [];
    const channel = 'a "quoted" channel';
    const stop = await listenDirect(database.url!, channel, (payload) => heard.push(payload), {
      onDown: () => reports.push('down'),
      onUp: () => reports.push('up'),
    });
    let stopped = false;
    t.teardown(() => (stopped ? undefined : stop()));

    await sql`select pg_notify(${channel}, 'one'), pg_notify('another channel', 'not this one')`;
    await within(2000, () => heard.length === 1, 'the notice arrives');
    t.same(heard, ['one'], 'hears its own channel only');

    const cut = () => sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen%'`;
    await cut();
    const downMs = await within(2000, () => reports.length >= 1, 'the loss is reported');
    t.same(reports.slice(0, 1), ['down'], `the loss is reported first (${downMs} ms)`);
    const upMs = await within(3000, () => reports.length === 2, 'LISTEN is back');
    t.same(reports, ['down', 'up'], `then LISTEN is back (${upMs} ms later)`);
    await sql`select pg_notify(${channel}, 'two')`;
    await within(2000, () => heard.length === 2, 'notices arrive again');
    t.same(heard, ['one', 'two']);

    // Stopped while it waits to reconnect: no report afterwards, and nothing left listening.
    await cut();
    await within(2000, () => reports.length === 3, 'the second loss is reported');
    await stop();
    stopped = true;
    await sleep(300);
    t.same(reports, ['down', 'up', 'down'], 'no "up" after stop');
    const [row] = await sql<{ listeners: number }[]>`select count(*)::int as listeners from pg_stat_activity where datname = current_database() and query ilike 'listen%'`;
    t.equal(row?.listeners, 0, 'no LISTEN connection left');
  });
}

if (process.env.TEST_DATABASE_URL) {
  tap.test('a listening connection that dies without closing is found out by its heartbeat and replaced [postgres]', async (t) => {
    const database = await openTestDatabase('postgres');
    t.teardown(() => database.drop());
    const server = new URL(database.url!);
    const proxy = await startTcpProxy(t, Number(server.port));
    const heard: string[] = [];
    const reports: string[] = [];
    const heartbeatMs = 200;
    const stop = await listenDirect(proxy.urlOf(server.pathname.slice(1)), 'gatehouse_test', (payload) => heard.push(payload), {
      onDown: () => reports.push('down'),
      onUp: () => reports.push('up'),
    }, { heartbeatMs });
    t.teardown(stop);
    const sql = postgres(database.url!, { max: 1, onnotice: () => {} });
    t.teardown(() => sql.end());

    // Quiet but alive: heartbeats answered, nothing reported.
    await sleep(heartbeatMs * 3);
    t.same(reports, [], 'a live connection is left alone');

    proxy.blackhole();
    const downMs = await within(5000, () => reports.length >= 1, 'the silent connection is found out');
    t.same(reports, ['down'], `reported lost ${downMs} ms after the network went silent (heartbeat every ${heartbeatMs} ms)`);
    proxy.restore();
    const upMs = await within(5000, () => reports.length === 2, 'LISTEN is back');
    t.same(reports, ['down', 'up'], `back ${upMs} ms after the network was restored`);
    await sql`select pg_notify('gatehouse_test', 'after')`;
    await within(2000, () => heard.length === 1, 'notices arrive again');
    t.same(heard, ['after']);
  });
}
