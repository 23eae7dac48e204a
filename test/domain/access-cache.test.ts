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
