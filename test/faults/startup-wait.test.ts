/**
 * Starting while PostgreSQL is not there yet: Gatehouse waits for it with backoff up to
 * DATABASE_STARTUP_TIMEOUT, logging each attempt with its real cause, then gives up with that cause.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import tap from 'tap';
import { EnvSchema } from '../../src/config.js';
import { buildAppOnUrl, createDatabase, timed, type LogRecord } from '../helpers/postgres-faults.js';
import { freePort, startPostgresCluster } from '../helpers/servers.js';

const cluster = await startPostgresCluster(tap, { start: false });

const attemptsIn = (logs: LogRecord[]) => logs.filter((line) => line.msg.includes('not available yet'));

void tap.test('started with PostgreSQL down, Gatehouse waits, logs each attempt with its cause, and serves once the database is up', async (t) => {
  const logs: LogRecord[] = [];
  let startedAt = 0;
  const starting = setTimeout(() => {
    cluster.start();
    startedAt = performance.now();
  }, 2000);
  t.teardown(() => clearTimeout(starting));
  const { app } = await buildAppOnUrl(t, cluster.url, { logs, env: { DATABASE_STARTUP_TIMEOUT: '30s' } });
  const waited = Math.round(performance.now() - startedAt);
  t.comment(`ready ${waited} ms after the database accepted connections (migrations included), after ${attemptsIn(logs).length} failed attempts`);
  t.ok(waited < 10_000, 'the backoff is short: at most 5 s between attempts');

  const attempts = attemptsIn(logs);
  t.ok(attempts.length >= 1, 'attempts made and logged');
  for (const line of attempts) {
    t.equal(line.level, 40, 'logged as a warning');
    t.match(line.cause, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${cluster.port}`), `attempt ${String(line.attempt)}: the cause, not the query`);
    t.notMatch(line.msg, /pg_advisory_lock/, 'not the advisory-lock query');
  }
  t.same(
    attempts.map((line) => line.attempt),
    attempts.map((_, i) => i + 1),
    'numbered attempts',
  );
  const delays = attempts.map((line) => line.retryInMs as number);
  t.ok(delays.every((delay, i) => i === 0 || delay >= delays[i - 1]!), `growing delays: ${delays.join(', ')} ms`);
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'and it serves');
});

void tap.test('a database that does not exist yet: each attempt says so, and Gatehouse starts once it is created', async (t) => {
  if (!cluster.isRunning()) cluster.start();
  const logs: LogRecord[] = [];
  const name = `appears_${process.pid}`;
  const creating = setTimeout(() => {
    const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    void admin.unsafe(`create database "${name}"`).finally(() => admin.end());
  }, 1000);
  t.teardown(() => clearTimeout(creating));
  const { app } = await buildAppOnUrl(t, cluster.urlOf(name), { logs, env: { DATABASE_STARTUP_TIMEOUT: '30s' } });
  const attempts = attemptsIn(logs);
  t.ok(attempts.length >= 1, `${attempts.length} attempts before it appeared`);
  for (const line of attempts) t.equal(line.cause, `database "${name}" does not exist`, 'the server\'s own words');
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'and it serves');
});

void tap.test('the wait ends at DATABASE_STARTUP_TIMEOUT with an error naming the database and the cause', async (t) => {
  const port = await freePort();
  const { ms, result: err } = await timed(() =>
    buildAppOnUrl(t, `postgres://postgres@127.0.0.1:${port}/gatehouse`, { env: { DATABASE_STARTUP_TIMEOUT: '1s' } }).then(
      () => undefined,
      (e: unknown) => e as Error,
    ),
  );
  t.comment(`gave up after ${ms} ms: ${err?.message}`);
  t.match(err?.message, new RegExp(`^could not open the database 127\\.0\\.0\\.1:${port}/gatehouse within 1 s \\(\\d+ attempts\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`));
  t.ok(ms >= 900 && ms < 5000, 'after about a second');
});

void tap.test('what waiting cannot cure (no right to connect) fails at once, with the server\'s words', async (t) => {
  if (!cluster.isRunning()) cluster.start();
  const database = await createDatabase(cluster);
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`revoke connect on database "${database}" from public`);
    await admin.unsafe(`create role outsider login`);
  } finally {
    await admin.end();
  }
  const { ms, result: err } = await timed(() =>
    buildAppOnUrl(t, `postgres://outsider@127.0.0.1:${cluster.port}/${database}`, { env: { DATABASE_STARTUP_TIMEOUT: '30s' } }).then(
      () => undefined,
      (e: unknown) => e as Error,
    ),
  );
  t.match(err?.message, `opening the database 127.0.0.1:${cluster.port}/${database} failed: permission denied for database "${database}"`);
  t.ok(ms < 5000, `at once (${ms} ms), not after DATABASE_STARTUP_TIMEOUT`);
});

void tap.test('the server process exits 1 with "gatehouse: failed to start:" and the cause', async (t) => {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-startup-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(EnvSchema.properties)) delete env[name];
  Object.assign(env, {
    PORT: String(await freePort()),
    DATA_DIR: dataDir,
    DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/gatehouse`,
    DATABASE_STARTUP_TIMEOUT: '1s',
    JWT_SECRET: 'startup-test-jwt-secret-that-is-long-enough-0123',
    PASSWORD_PEPPER: 'startup-test-pepper-that-is-long-enough-0123',
  });
  const child = spawn(process.execPath, [...process.execArgv, 'src/server.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => void (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 1, 'exit code 1');
  t.match(stderr, `gatehouse: failed to start: could not open the database 127.0.0.1:${port}/gatehouse within 1 s`);
  t.match(stderr, `ECONNREFUSED 127.0.0.1:${port}`, 'with the cause');
  t.match(stdout, /"msg":"database 127\.0\.0\.1:\d+\/gatehouse not available yet: connect ECONNREFUSED/, 'each attempt logged');
});
