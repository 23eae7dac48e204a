import { sql } from 'drizzle-orm';
import { type Database, type ListenEvents } from '../../src/db/client.js';
import { AccessCache, EVERYONE } from '../../src/domain/access-cache.js';
import { loadAuthorizationState } from '../../src/domain/users.js';
import { buildTestApp, eachDatabase } from '../helpers/app.js';
import { registerUser } from '../helpers/users.js';

/**
 * The database as it is, but with a hand on its listener's reports: `down()` and `up()` say what
 * a lost and re-established LISTEN connection would (test/faults/access-after-restart.test.ts makes
 * real ones).
 */
function withListenerReports(database: Database): { database: Database; down(): void; up(): void } {
  let events: ListenEvents = {};
  return {
    database: {
      ...database,
      listen: (channel, onMessage, reports) => {
        events = reports ?? {};
        return database.listen(channel, onMessage, reports);
      },
    },
    down: () => events.onDown?.(),
    up: () => events.onUp?.(),
  };
}

eachDatabase('while LISTEN is down the cache serves and keeps nothing; once it is back it caches again', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { user } = await registerUser(app);
  const listener = withListenerReports(database);
  const logged: string[] = [];
  const log = { warn: (message: string) => logged.push(`warn: ${message}`), info: (message: string) => logged.push(`info: ${message}`) };
  const cache = new AccessCache(listener.database, { ttlMs: 60_000, log });
  t.teardown(() => cache.stop());

  t.notOk(cache.trusted, 'not trusted before it listens');
  t.ok(await cache.get(user.id), 'reads from the database before it listens');
  t.equal(cache.size, 0, 'and keeps nothing');

  await cache.start();
  t.ok(cache.trusted, 'trusted once it listens');
  const first = await cache.get(user.id);
  t.equal(await cache.get(user.id), first, 'a second read is served from memory');
  t.equal(cache.peek(user.id), first);

  listener.down();
  t.notOk(cache.trusted, 'not trusted while LISTEN is down');
  t.match(logged, [/^warn: LISTEN connection to the database lost/], 'says so at warn');
  t.equal(cache.size, 0, 'its entries are dropped');
  t.equal(cache.peek(user.id), undefined, 'peek finds nothing');
  // A change nobody is told of (psql): only a read of the database can see it.
  await database.db.execute(sql`update users set active = false where id = ${user.id}::uuid`);
  t.equal((await cache.get(user.id))?.user.active, false, 'each read goes to the database');
  const [one, two] = await Promise.all([cache.get(user.id), cache.get(user.id)]);
  t.not(one, two, 'reads at the same time are not shared (one may have started before a change)');
  t.equal(cache.size, 0, 'nothing read while down is kept');
  const ticket = cache.ticket();
  const state = (await loadAuthorizationState(database.db, user.id))!;
  t.equal(cache.prime(user.id, state, ticket).user.active, false, 'prime answers the state it is given');
  t.equal(cache.size, 0, 'but does not keep it while down');

  // A read that started while down and ends once LISTEN is back still predates what was missed.
  const inFlight = cache.get(user.id);
  listener.up();
  t.ok(cache.trusted, 'trusted again once LISTEN is back');
  t.match(logged.slice(1), [/^info: LISTEN connection to the database back/], 'and says that at info');
  await inFlight;
  t.equal(cache.size, 0, 'a state read while down is not kept after LISTEN is back');
  const fresh = await cache.get(user.id);
  t.equal(await cache.get(user.id), fresh, 'entries are served from memory again');
  t.equal(cache.size, 1);

  await cache.stop();
  t.notOk(cache.trusted, 'not trusted once stopped');
  t.equal(cache.peek(user.id), undefined);
});

eachDatabase('only notices naming a user (or everyone) invalidate: other notices on the channel leave the cache alone', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { user } = await registerUser(app);
  // The notices are handed to the cache's handler directly: what is under test is how it reads
  // them, not how they travel (the propagation tests send real ones between instances).
  let deliver: (payload: string) => void = () => {};
  const cache = new AccessCache(
    {
      ...database,
      listen: (channel, onMessage) => {
        deliver = onMessage;
        return database.listen(channel, () => {});
      },
    },
    { ttlMs: 60_000 },
  );
  t.teardown(() => cache.stop());
  await cache.start();

  const first = await cache.get(user.id);
  t.equal(cache.peek(user.id), first, 'cached');
  const generation = cache.ticket().generation;
  deliver('signing-keys another-instance');
  deliver('not a user id');
  deliver('');
  t.equal(cache.ticket().generation, generation, 'none of them counted as an invalidation');
  t.equal(cache.peek(user.id), first, 'the entry stayed');

  deliver(`${user.id} ${cache.notice(user.id).split(' ')[1]}`);
  t.equal(cache.peek(user.id), first, "the cache's own notice is ignored: it has already acted");
  deliver(user.id);
  t.equal(cache.peek(user.id), undefined, 'a notice naming the user (psql) drops its entry');
  await cache.get(user.id);
  deliver(`${EVERYONE} another-instance`);
  t.equal(cache.size, 0, 'EVERYONE drops every entry');
});

eachDatabase('AUTHZ_CACHE_MAX bounds the cache, dropping the least recently used user', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const [ann, bob, cid] = [(await registerUser(app)).user, (await registerUser(app)).user, (await registerUser(app)).user];
  // Deaf to notices (the app's own, about these registrations, may still arrive): only the bound decides here.
  const deaf: Database = { ...database, listen: (channel, _onMessage, events) => database.listen(channel, () => {}, events) };
  const cache = new AccessCache(deaf, { ttlMs: 60_000, maxEntries: 2 });
  t.teardown(() => cache.stop());
  await cache.start();
  await cache.get(ann.id);
  await cache.get(bob.id);
  t.ok(cache.peek(ann.id), 'ann used again: now the most recent');
  await cache.get(cid.id);
  t.equal(cache.size, 2);
  t.ok(cache.peek(ann.id), 'ann kept');
  t.ok(cache.peek(cid.id), 'cid kept');
  t.notOk(cache.peek(bob.id), 'bob, the least recently used, dropped');
});

/** A cache deaf to notices, so that only what the test does changes its entries, with a user primed `ageMs` ago. */
async function primedAgo(cache: AccessCache, database: Database, userId: string, ageMs: number) {
  const state = (await loadAuthorizationState(database.db, userId))!;
  return cache.prime(userId, state, { ...cache.ticket(), loadedAt: Date.now() - ageMs });
}

eachDatabase('entries in use are read again before their TTL, in the background; unused ones expire and are dropped', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const [ann, bob, cid] = [(await registerUser(app)).user, (await registerUser(app)).user, (await registerUser(app)).user];
  const deaf: Database = { ...database, listen: (channel, _onMessage, events) => database.listen(channel, () => {}, events) };
  const cache = new AccessCache(deaf, { ttlMs: 60_000 });
  t.teardown(() => cache.stop());
  await cache.start();

  const annEntry = await primedAgo(cache, database, ann.id, 30_000);
  const bobEntry = await primedAgo(cache, database, bob.id, 30_000);
  await primedAgo(cache, database, cid.id, 70_000);
  t.equal(cache.peek(ann.id), annEntry, 'ann used');
  t.equal(cache.peek(bob.id), bobEntry, 'bob used');
  // A change nobody is told of (psql): the renewal is what brings it in.
  await database.db.execute(sql`update users set name = 'Bob Renewed' where id = ${bob.id}::uuid`);
  const before = Date.now();
  await cache.renew();

  const annAfter = cache.peek(ann.id);
  t.equal(annAfter, annEntry, "ann's state had not changed: the same entry stays (and what was made from it)");
  t.ok(annAfter!.loadedAt >= before, 'with the time of the new read');
  const bobAfter = cache.peek(bob.id);
  t.not(bobAfter, bobEntry, "bob's state changed: a new entry");
  t.equal(bobAfter?.user.name, 'Bob Renewed');
  t.ok(bobAfter!.loadedAt >= before);
  t.equal(cache.size, 2, "cid's entry, past its TTL, was dropped");

  // Read again, and not used since: left alone, then dropped once expired.
  const annRead = annAfter!.loadedAt;
  await cache.renew();
  t.equal(cache.peek(ann.id)?.loadedAt, annRead, 'a fresh entry is not read again');
  const idle = await primedAgo(cache, database, cid.id, 30_000);
  await cache.renew();
  t.equal(cache.size, 3, 'an entry nobody used is kept until its TTL');
  t.equal(idle.loadedAt < before, true, 'and is not read again');
});

eachDatabase('a renewal never overwrites what a notice or a newer read did meanwhile', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const [ann, bob, cid] = [(await registerUser(app)).user, (await registerUser(app)).user, (await registerUser(app)).user];
  // The renewal's query waits at this gate, so the test can act while it is in flight.
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  let held = false;
  const db = new Proxy(database.db, {
    get(target, property, receiver) {
      if (property !== 'execute' || held) return Reflect.get(target, property, receiver);
      return async (...args: unknown[]) => {
        held = true;
        await gate;
        return (target.execute as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const gated: Database = { ...database, db, listen: (channel, _onMessage, events) => database.listen(channel, () => {}, events) };
  const cache = new AccessCache(gated, { ttlMs: 60_000 });
  t.teardown(() => cache.stop());
  await cache.start();
  for (const user of [ann, bob, cid]) {
    await primedAgo(cache, database, user.id, 30_000);
    cache.peek(user.id);
  }

  const renewing = cache.renew();
  t.equal(cache.renew(), renewing, 'one renewal at a time');
  await new Promise((resolve) => setImmediate(resolve));
  t.ok(held, 'the renewal is reading');
  cache.invalidateLocal(ann.id);
  const newer = await primedAgo(cache, database, bob.id, 0);
  await database.db.execute(sql`delete from users where id = ${cid.id}::uuid`);
  open();
  await renewing;

  t.equal(cache.peek(ann.id), undefined, 'ann, dropped by a notice during the read, is not put back');
  t.equal(cache.peek(bob.id), newer, "bob's newer entry stays");
  t.equal(cache.peek(cid.id), undefined, 'cid, deleted, is dropped');
});

eachDatabase('entries hold no password hash, and users with the same roles share one set of names', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const [ann, bob] = [(await registerUser(app)).user, (await registerUser(app)).user];
  const cache = new AccessCache(database, { ttlMs: 60_000 });
  t.teardown(() => cache.stop());
  await cache.start();
  const [annEntry, bobEntry] = [(await cache.get(ann.id))!, (await cache.get(bob.id))!];
  t.notOk('passwordHash' in annEntry.user, 'no password hash in memory');
  t.equal(annEntry.roles, bobEntry.roles, 'one roles set');
  t.equal(annEntry.permissions, bobEntry.permissions, 'one permissions set');
  t.not(annEntry.liveSessions, bobEntry.liveSessions, 'sessions are their own');
});

eachDatabase('a renewal that cannot read says so at warn and leaves the entries to expire', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { user } = await registerUser(app);
  let failing = false;
  const db = new Proxy(database.db, {
    get: (target, property, receiver) =>
      failing && property === 'execute' ? () => Promise.reject(new Error('connection lost')) : Reflect.get(target, property, receiver),
  });
  const warnings: string[] = [];
  const cache = new AccessCache({ ...database, db }, { ttlMs: 60_000, log: { warn: (m) => warnings.push(m), info: () => {} } });
  t.teardown(() => cache.stop());
  await cache.start();
  const entry = await primedAgo(cache, database, user.id, 30_000);
  cache.peek(user.id);
  failing = true;
  await cache.renew();
  t.match(warnings, [/renewing the authorization cache failed: connection lost/]);
  t.equal(cache.peek(user.id), entry, 'the entry is served until its TTL, as without renewal');
});

eachDatabase('once started, the cache renews on its own, and stops with it', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  const { user } = await registerUser(app);
  const cache = new AccessCache(database, { ttlMs: 60_000, renewEveryMs: 20 });
  t.teardown(() => cache.stop());
  await cache.start();
  const entry = await primedAgo(cache, database, user.id, 30_000);
  const primedAt = entry.loadedAt;
  cache.peek(user.id);
  // Polled rather than timed: however slow the machine, the entry has 30 s before it would expire.
  while (cache.peek(user.id)!.loadedAt === primedAt) await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(cache.peek(user.id)!.loadedAt > primedAt, 'read again without being asked');
  await cache.stop();
  t.equal(cache.size, 0);
});
