/**
 * Redis going away under the rate limits, with redis-servers of the test's own: a limited route
 * answers at once without its limit (fail open), the outage is one warn line per 10 s in the app's
 * log and nothing on stderr, and the limits apply again soon after Redis is back.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import tap from 'tap';
import { buildTestApp, type Test } from '../helpers/app.js';
import { DATABASE_KINDS, openTestDatabase } from '../helpers/databases.js';
import { startRedisServer } from '../helpers/servers.js';
import { PASSWORD, bearer, post, registerUser, uniqueEmail } from '../helpers/users.js';

// The issue asks for 300 ms; asserted with room for a slow shared machine, still far from the
// multi-second hangs (connect and offline-queue waits) this guards against.
const ANSWER_BOUND_MS = 1000;
// The issue asks for 2 s; reconnects are at most 500 ms apart.
const RECOVERY_BOUND_MS = 3000;

// The database is beside the point here: the quicker one to set up.
const KIND = DATABASE_KINDS.at(-1)!;

const OUTAGE_WARNING = /Redis is unreachable/;

interface LogLine {
  level: number;
  time: number;
  msg: string;
  cause?: string;
}

/** What the process writes to stderr while the test runs (ioredis' unhandled errors would land here). */
function captureStderr(t: Test): string[] {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    written.push(chunk.toString());
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.teardown(() => {
    process.stderr.write = write;
  });
  return written;
}

function warnings(logLines: string[]): LogLine[] {
  return logLines.map((line) => JSON.parse(line) as LogLine).filter((line) => line.level === 40 && OUTAGE_WARNING.test(line.msg));
}

/**
 * The outage was logged, at most once per 10 s whatever the number of failures (a pause of the
 * machine may make a test outlast one window). Returns the first warning.
 */
function warnedOncePer10s(t: Test, logLines: string[]): LogLine | undefined {
  const logged = warnings(logLines);
  t.ok(logged.length >= 1, `the outage is logged at warn (${logged.length} line(s))`);
  // pino stamps lines with the wall clock, the throttle uses a monotonic one: a little slack.
  for (let i = 1; i < logged.length; i++) t.ok(logged[i]!.time - logged[i - 1]!.time >= 9_900, 'warnings at least 10 s apart');
  return logged[0];
}

function wrongLogin(app: FastifyInstance) {
  return post(app, '/auth/login', { email: uniqueEmail(), password: 'not the password' });
}

/** Each limited route once, timed; every answer is its usual one, none a 429 or a 500. */
async function limitedRoutesAnswerAtOnce(t: Test, app: FastifyInstance, accessToken: string, rounds = 1): Promise<number> {
  const requests = [
    () => wrongLogin(app),
    () => post(app, '/auth/register', { email: 'not an email', password: PASSWORD }),
    () => post(app, '/auth/password/forgot', { email: uniqueEmail() }),
    () => post(app, '/auth/email/resend', { email: uniqueEmail() }),
    () => post(app, '/auth/refresh', { refreshToken: 'x'.repeat(43) }),
    () => post(app, '/auth/password/change', { currentPassword: 'not the password', newPassword: 'another fine passphrase' }, bearer(accessToken)),
  ];
  let slowest = 0;
  const statuses = new Set<number>();
  for (let round = 0; round < rounds; round++) {
    for (const request of requests) {
      const started = performance.now();
      const res = await request();
      slowest = Math.max(slowest, performance.now() - started);
      statuses.add(res.statusCode);
    }
  }
  t.notOk(statuses.has(429), `no limit applies while Redis is away (statuses ${[...statuses].join(', ')})`);
  t.notOk([...statuses].some((status) => status >= 500), 'and no 5xx');
  t.ok(slowest < ANSWER_BOUND_MS, `the slowest limited request took ${slowest.toFixed(0)} ms`);
  return slowest;
}

/** Milliseconds until `app` refuses a login with 429 again (the limit counts anew), bounded. */
async function untilLimited(app: FastifyInstance, since: number): Promise<number> {
  while (performance.now() - since < RECOVERY_BOUND_MS) {
    if ((await wrongLogin(app)).statusCode === 429) return performance.now() - since;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Infinity;
}

tap.test('Redis stopped and started again: limits fail open at once, one warning, then apply again', async (t) => {
  const stderr = captureStderr(t);
  const redis = await startRedisServer(t);
  const database = await openTestDatabase(KIND);
  t.teardown(() => database.drop());
  const env = { REDIS_URL: redis.url, RATE_LIMIT_LOGIN: '3/1m' };
  const logLines: string[] = [];
  const a = await buildTestApp(t, KIND, { database, env, logLines });
  const b = await buildTestApp(t, KIND, { database, env });
  const user = await registerUser(a.app);

  const statuses = [];
  for (const app of [a.app, b.app, a.app, b.app]) statuses.push((await wrongLogin(app)).statusCode);
  t.same(statuses, [401, 401, 401, 429], 'the two instances share one budget in Redis');

  await redis.stop();
  const slowest = await limitedRoutesAnswerAtOnce(t, a.app, user.accessToken, 5);
  await limitedRoutesAnswerAtOnce(t, b.app, user.accessToken);
  // Long enough for several reconnect attempts, each one a failure that must not be logged again.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.match(warnedOncePer10s(t, logLines), { cause: /ECONNREFUSED|connection to Redis lost/ }, 'saying why');

  const restarted = performance.now();
  await redis.start();
  const recoveredA = await untilLimited(a.app, restarted);
  const recoveredB = await untilLimited(b.app, restarted);
  t.ok(recoveredA < RECOVERY_BOUND_MS && recoveredB < RECOVERY_BOUND_MS, `limits apply again ${recoveredA.toFixed(0)} / ${recoveredB.toFixed(0)} ms after Redis is back`);
  t.ok(
    logLines.some((line) => /Redis answers again/.test((JSON.parse(line) as LogLine).msg)),
    'the recovery is logged',
  );
  t.comment(`slowest limited request during the outage: ${slowest.toFixed(0)} ms; limits back after ${recoveredA.toFixed(0)} ms`);

  warnedOncePer10s(t, logLines);
  t.same(stderr, [], 'nothing on stderr');
});

tap.test('Gatehouse starts with Redis down, limits fail open, and apply once Redis comes up', async (t) => {
  const stderr = captureStderr(t);
  const redis = await startRedisServer(t);
  await redis.stop();
  const logLines: string[] = [];
  const started = performance.now();
  const { app } = await buildTestApp(t, KIND, { env: { REDIS_URL: redis.url, RATE_LIMIT_LOGIN: '3/1m' }, logLines });
  t.comment(`ready in ${(performance.now() - started).toFixed(0)} ms with Redis down`);
  const user = await registerUser(app);
  await limitedRoutesAnswerAtOnce(t, app, user.accessToken);
  t.match(warnedOncePer10s(t, logLines), { cause: /ECONNREFUSED/ });

  const restarted = performance.now();
  await redis.start();
  const recovered = await untilLimited(app, restarted);
  t.ok(recovered < RECOVERY_BOUND_MS, `limits apply ${recovered.toFixed(0)} ms after Redis comes up`);
  t.same(stderr, [], 'nothing on stderr');
});

/**
 * A server on a free port that accepts connections and, given `info`, answers INFO with it and
 * every other command with OK; without, it answers nothing.
 */
async function fakeRedis(t: Test, info?: string): Promise<{ url: string; connections: () => number }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk) => {
      if (info === undefined) return;
      // A client's commands are arrays of bulk strings; a chunk may hold several.
      for (const [, name] of chunk.toString().matchAll(/\*\d+\r\n\$\d+\r\n([^\r]*)\r\n/g)) {
        socket.write(name!.toLowerCase() === 'info' ? `$${info.length}\r\n${info}\r\n` : '+OK\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const { port } = server.address() as { port: number };
  return { url: `redis://127.0.0.1:${port}`, connections: () => connections };
}

// INFO's answer while Redis loads its data set: clients wait for it to finish (here, an hour).
const LOADING = '# Persistence\r\nloading:1\r\nloading_eta_seconds:3600\r\n';

for (const [label, info, cause] of [
  ['accepts connections and never answers', undefined, /timed out/],
  ['is still loading its data set', LOADING, /no connection to Redis yet/],
] as const) {
  tap.test(`a Redis that ${label} holds up neither the start nor a request`, async (t) => {
    const stderr = captureStderr(t);
    const redis = await fakeRedis(t, info);
    const logLines: string[] = [];
    const { app } = await buildTestApp(t, KIND, { env: { REDIS_URL: redis.url, RATE_LIMIT_LOGIN: '3/1m' }, logLines });
    t.ok(redis.connections() > 0, 'the client connected');
    const user = await registerUser(app);
    const slowest = await limitedRoutesAnswerAtOnce(t, app, user.accessToken, 2);
    t.comment(`slowest limited request against a Redis that ${label}: ${slowest.toFixed(0)} ms`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.match(warnedOncePer10s(t, logLines), { cause });
    t.same(stderr, [], 'nothing on stderr');
  });
}

tap.test('a Redis that stops answering once connected costs a request the command timeout, no more', async (t) => {
  const stderr = captureStderr(t);
  const redis = await startRedisServer(t);
  // A proxy that can hold Redis' replies back, as a Redis that hangs would (SIGSTOP, a full disk).
  let holding = false;
  const upstreams = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = createConnection(redis.port, '127.0.0.1');
    upstreams.add(upstream);
    if (holding) upstream.pause();
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      upstreams.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const upstream of upstreams) upstream.destroy();
    proxy.close();
  });
  const { port } = proxy.address() as { port: number };
  const logLines: string[] = [];
  const { app } = await buildTestApp(t, KIND, { env: { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_LOGIN: '3/1m' }, logLines });
  const user = await registerUser(app);
  // The client is ready once a limit is counted in Redis.
  t.not(await untilLimited(app, performance.now()), Infinity, 'limits apply through the proxy');

  holding = true;
  for (const upstream of upstreams) upstream.pause();
  const slowest = await limitedRoutesAnswerAtOnce(t, app, user.accessToken);
  t.comment(`slowest limited request while Redis holds its replies: ${slowest.toFixed(0)} ms`);
  t.match(warnedOncePer10s(t, logLines), { cause: /timed out/ });

  holding = false;
  for (const upstream of upstreams) upstream.resume();
  const resumed = performance.now();
  const recovered = await untilLimited(app, resumed);
  t.ok(recovered < RECOVERY_BOUND_MS, `limits apply ${recovered.toFixed(0)} ms after Redis answers again`);
  t.ok(
    logLines.some((line) => /Redis answers again/.test((JSON.parse(line) as LogLine).msg)),
    'the recovery is logged',
  );
  t.same(stderr, [], 'nothing on stderr');
});
