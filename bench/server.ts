/**
 * The server side of `npm run bench`: a host Fastify app that mounts Gatehouse as a plugin, as
 * examples/notes/app.ts does, plus two routes that do nothing (one public, one needing `read`).
 * Started twice by the driver (bench/run.ts), not by hand: first with `--prepare`, to make the data
 * and exit (an embedded PGlite can only be opened by one process at a time, so the data is made
 * through Gatehouse's own code against the same folder or database), then to serve. Both report
 * to the driver over IPC.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import Fastify, { type FastifyInstance } from 'fastify';
import { roles, sessions, userRoles, users } from '../src/db/schema.js';
import { DEFAULT_ROLE } from '../src/db/seed.js';
import { ensureAdmin } from '../src/domain/admin-bootstrap.js';
import { openSession } from '../src/domain/sessions.js';
import { createUser } from '../src/domain/users.js';
import { createApiKey } from '../src/domain/api-keys.js';
import { errorsPlugin, gatehousePlugin, loadConfig } from '../src/index.js';
import { ADMIN_EMAIL, PASSWORD, READER_EMAIL, USER_AGENT, bulkEmail, manyEmail, type DriverMessage, type ProfileMessage, type ServerMessage } from './protocol.js';

const CHUNK = 1000;

function send(message: ServerMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('bench/server.ts is started by bench/run.ts (npm run bench), with an IPC channel'));
    process.send(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

function count(name: string, fallback: number, min = 1): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}`);
  return value;
}

async function buildBenchApp(): Promise<FastifyInstance> {
  const config = loadConfig();
  const level = process.env.BENCH_LOG;
  // A fresh PGlite folder takes seconds to migrate, more on a busy machine than avvio's default 10 s.
  const app = Fastify({ logger: level ? { level } : false, pluginTimeout: 120_000 });
  await app.register(errorsPlugin);
  await app.register(gatehousePlugin, { config });
  // Identical handlers: the only difference between the two is Gatehouse's access check.
  app.get('/baseline', { config: { public: true } }, async () => ({ ok: true }));
  app.get('/protected', { config: { permissionsRequired: ['read'] } }, async () => ({ ok: true }));
  await app.ready();
  return app;
}

/** Runs `task` over `items` with at most `limit` at once (postgres.js has a pool of 10 connections). */
async function eachLimited<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await task(items[i]!);
      }
    }),
  );
  return results;
}

/**
 * `count` users of role `user` with one session each, inserted in bulk (a transaction per chunk, not
 * one openSession each: 20,000 commits would make this the slowest part of the run), with an access
 * token each (no refresh token: these users only read).
 */
async function usersWithSessions(app: FastifyInstance, count: number, email: (i: number) => string, passwordHash: string, roleId: string) {
  const { db } = app.gatehouse;
  const made: { userId: string; sessionId: string }[] = [];
  for (let from = 0; from < count; from += CHUNK) {
    const now = new Date();
    // Past the end of the run (ACCESS_TOKEN_TTL is 2h for the bench).
    const expiresAt = new Date(now.getTime() + 4 * 3600_000);
    const rows = Array.from({ length: Math.min(CHUNK, count - from) }, (_, k) => ({ email: email(from + k), passwordHash }));
    await db.transaction(async (tx) => {
      const inserted = await tx.insert(users).values(rows).returning({ id: users.id });
      await tx.insert(userRoles).values(inserted.map((u) => ({ userId: u.id, roleId })));
      const opened = await tx
        .insert(sessions)
        .values(inserted.map((u) => ({ userId: u.id, userAgent: USER_AGENT, ip: '127.0.0.1', createdAt: now, lastUsedAt: now, expiresAt })))
        .returning({ id: sessions.id, userId: sessions.userId });
      made.push(...opened.map((o) => ({ userId: o.userId, sessionId: o.id })));
    });
  }
  return made.map(({ userId, sessionId }) => ({ userId, token: app.signAccessToken({ sub: userId, sid: sessionId, ...passwordClaims() }) }));
}

async function prepare(app: FastifyInstance, userCount: number, refreshCount: number, manyCount: number, revocationCount: number) {
  const { db, passwords, sessionSettings } = app.gatehouse;
  // One hash for everyone: bcrypt at the configured cost, so logins cost what they cost in production.
  const passwordHash = await passwords.hash(PASSWORD);
  const [userRole] = await db.select({ id: roles.id }).from(roles).where(eq(roles.name, DEFAULT_ROLE));

  // Created a second apart, oldest first, so the admin list pages through distinct created_at values.
  const createdFrom = Date.now() - userCount * 1000;
  const userIds: string[] = [];
  for (let from = 0; from < userCount; from += CHUNK) {
    const rows = Array.from({ length: Math.min(CHUNK, userCount - from) }, (_, k) => {
      const createdAt = new Date(createdFrom + (from + k) * 1000);
      return { email: bulkEmail(from + k), passwordHash, createdAt, updatedAt: createdAt };
    });
    await db.transaction(async (tx) => {
      const inserted = await tx.insert(users).values(rows).returning({ id: users.id });
      await tx.insert(userRoles).values(inserted.map((u) => ({ userId: u.id, roleId: userRole!.id })));
      userIds.push(...inserted.map((u) => u.id));
    });
  }

  const context = { userAgent: USER_AGENT, ip: '127.0.0.1' };
  const reader = await createUser(db, { email: READER_EMAIL, passwordHash });
  const { userId: adminId } = await ensureAdmin(db, { email: ADMIN_EMAIL, password: PASSWORD, passwords });
  const readerSession = await openSession(db, { userId: reader!.id, ...context }, sessionSettings);
  const adminSession = await openSession(db, { userId: adminId, ...context }, sessionSettings);

  // Spread over the bulk users, as refreshes from many clients are: each one's first refresh also
  // loads that user into the authorization cache, as it would in production. Opened in batches, a
  // transaction each: one commit (and fsync) per session would make this the slowest part of the run.
  const owners = Array.from({ length: refreshCount }, (_, i) => userIds[i % userIds.length]!);
  const batches = Array.from({ length: Math.ceil(owners.length / 250) }, (_, b) => owners.slice(b * 250, (b + 1) * 250));
  const refreshTokens = (
    await eachLimited(batches, 4, (batch) =>
      db.transaction(async (tx) => {
        const tokens: string[] = [];
        for (const userId of batch) tokens.push((await openSession(tx, { userId, ...context }, sessionSettings)).refreshToken);
        return tokens;
      }),
    )
  ).flat();
  const many = await usersWithSessions(app, manyCount, manyEmail, passwordHash, userRole!.id);
  const revocationVictims = await usersWithSessions(app, revocationCount, (i) => `revoked${i}@bench.gatehouse.test`, passwordHash, userRole!.id);
  // Fresh planner statistics, so a background autovacuum/analyze does not land in a scenario.
  await db.execute(sql`analyze`);

  return {
    loginEmails: Array.from({ length: userCount }, (_, i) => bulkEmail(i)),
    refreshTokens,
    userToken: app.signAccessToken({ sub: reader!.id, sid: readerSession.session.id, ...passwordClaims() }),
    userApiKey: (await createApiKey(db, app.gatehouse.apiKeyHashKey, { userId: reader!.id, name: 'bench', permissions: ['read'] })).key,
    adminToken: app.signAccessToken({ sub: adminId, sid: adminSession.session.id, ...passwordClaims() }),
    manyTokens: many.map((m) => m.token),
    revocationVictims,
  };
}

/** What a token of a password login says about its assurance. */
function passwordClaims() {
  return { auth_time: Math.floor(Date.now() / 1000), amr: ['pwd'], aal: 'aal1' as const };
}

/** A V8 CPU profile per scenario, on the driver's signal; BENCH_CPU_PROF names the folder. */
function profiler(dir: string | undefined): (message: ProfileMessage) => Promise<void> {
  let session: Session | undefined;
  return async ({ action, name }) => {
    if (!dir) return send({ type: 'profiled' });
    if (action === 'start') {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
      return send({ type: 'profiled' });
    }
    const { profile } = await session!.post('Profiler.stop');
    session!.disconnect();
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${name ?? 'server'}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return send({ type: 'profiled', file });
  };
}

/** `--prepare`: make the data, hand it to the driver and exit (closing the database first). */
async function prepareAndExit(): Promise<void> {
  const started = Date.now();
  const app = await buildBenchApp();
  const userCount = count('BENCH_USERS', 10_000);
  const data = await prepare(app, userCount, count('BENCH_REFRESH_TOKENS', 1000), count('BENCH_MANY_USERS', 0, 0), count('BENCH_REVOCATIONS', 0, 0));
  await app.close();
  await send({ type: 'prepared', users: userCount, ...data, prepareMs: Date.now() - started });
  process.exit(0);
}

async function serve(): Promise<void> {
  const started = Date.now();
  const app = await buildBenchApp();
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  const profile = profiler(process.env.BENCH_CPU_PROF || undefined);
  process.on('message', (message: DriverMessage) => {
    if (message.type === 'stop') close();
    else void profile(message);
  });
  // The driver went away (crashed or was killed): do not linger.
  process.on('disconnect', close);
  process.once('SIGTERM', close);
  process.once('SIGINT', close);

  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  await send({ type: 'ready', port: address.port, driver: app.gatehouse.database.driver, startMs: Date.now() - started });
}

const main = process.argv.includes('--prepare') ? prepareAndExit : serve;

main().catch(async (err: unknown) => {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  // Sent before exiting: the driver shows it instead of a bare exit code.
  await send({ type: 'failed', message }).catch(() => console.error(message));
  process.exit(1);
});
