/**
 * A first run against a PostgreSQL server without `createdb` first: the server must say that the
 * database does not exist, in PostgreSQL's own words, and exit non-zero once
 * DATABASE_STARTUP_TIMEOUT has passed, instead of a vague failure or a wait without end.
 */
import { randomBytes } from 'node:crypto';
import tap from 'tap';
import { spawnGatehouse } from '../helpers/process.js';

// The server itself, not a pooler in front of it: the message is PostgreSQL's.
const serverUrl = process.env.TEST_DATABASE_LISTEN_URL ?? process.env.TEST_DATABASE_URL;

tap.test(
  'a DATABASE_URL naming a missing database stops the start with `database "x" does not exist`',
  { skip: serverUrl ? false : 'TEST_DATABASE_URL is not set' },
  async (t) => {
    const name = `gh_missing_${randomBytes(6).toString('hex')}`;
    const url = new URL(serverUrl!);
    url.pathname = `/${name}`;
    const server = await spawnGatehouse(t, { env: { DATABASE_URL: url.toString(), DATABASE_STARTUP_TIMEOUT: '1' }, readyLog: null });
    const exit = await server.exit;
    const { stderr } = server.output();
    t.not(exit.code, 0, 'a failed start is a non-zero exit');
    t.match(stderr, `database "${name}" does not exist`, 'the last word names the real cause');
    t.notMatch(stderr, /postgres:\/\//, 'and no connection string');
    const attempts = server.logs.filter((line) => line.cause === `database "${name}" does not exist`);
    t.ok(attempts.length >= 1, 'each attempt is logged with the cause');
    // From the first attempt: 1 s of retries, then the exit. (Starting the process under the test's
    // TypeScript loader can take tens of seconds on a loaded machine; that is not what is measured.)
    // The 60 s default, or no limit at all, would fail this.
    const waited = exit.at - attempts[0]!.time;
    t.ok(waited < 15_000, `exited ${waited} ms after the first attempt`);
  },
);
