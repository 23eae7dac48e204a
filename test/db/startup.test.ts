import postgres from 'postgres';
import tap from 'tap';
import { describeTarget, whenReachable } from '../../src/db/startup.js';
import { freePort } from '../helpers/servers.js';

void tap.test('the database a start waits for is named by host, port and database, never with its password', async (t) => {
  t.equal(describeTarget('postgres://gatehouse:s3cret@db.example:6432/app?sslmode=require'), 'db.example:6432/app');
  t.equal(describeTarget('postgresql://gatehouse:s3cret@db.example/app'), 'db.example:5432/app', 'the default port when none is given');
});

void tap.test('without a logger, the wait retries all the same', async (t) => {
  const client = postgres(`postgres://postgres@127.0.0.1:${await freePort()}/none`, { max: 1, onnotice: () => {}, backoff: () => 0 });
  t.teardown(() => client.end({ timeout: 0 }));
  let attempts = 0;
  const result = await whenReachable(
    async () => {
      attempts++;
      // Refused the first time: a real failure of a database out of reach.
      if (attempts === 1) await client`select 1`;
      return 'opened';
    },
    { timeoutSeconds: 5, target: 'nowhere' },
  );
  t.equal(result, 'opened');
  t.equal(attempts, 2, 'a second attempt after the refusal');
});
