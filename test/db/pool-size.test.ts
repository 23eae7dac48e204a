import { sql } from 'drizzle-orm';
import tap from 'tap';
import { loadConfig } from '../../src/config.js';
import { openConfiguredDatabase } from '../../src/db/client.js';
import { queryRows } from '../../src/db/rows.js';
import { tempDataDir } from '../helpers/app.js';
import { openTestDatabase } from '../helpers/databases.js';

/** The server processes that answered `concurrent` overlapping queries: the pool's connections. */
async function backendsServing(env: Record<string, string>, concurrent: number): Promise<number> {
  const database = await openConfiguredDatabase(loadConfig(env, () => {}));
  try {
    const pids = await Promise.all(
      Array.from({ length: concurrent }, async () => {
        const [row] = await queryRows<{ pid: number }>(database.db, sql`select pg_backend_pid() as pid from pg_sleep(0.05)`);
        return row!.pid;
      }),
    );
    return new Set(pids).size;
  } finally {
    await database.close();
  }
}

void tap.test('DATABASE_POOL_SIZE bounds the connections to PostgreSQL; more concurrent queries share them', { skip: !process.env.TEST_DATABASE_URL && 'needs TEST_DATABASE_URL' }, async (t) => {
  const database = await openTestDatabase('postgres');
  t.teardown(() => database.drop());
  const env = { DATABASE_URL: database.url!, DATA_DIR: tempDataDir(t) };
  t.equal(await backendsServing(env, 12), 3, 'three by default');
  t.equal(await backendsServing({ ...env, DATABASE_POOL_SIZE: '2' }, 12), 2, 'two when set to 2');
  t.equal(await backendsServing({ ...env, DATABASE_POOL_SIZE: '12' }, 12), 12, 'twelve when set to 12, for twelve at once');
});
