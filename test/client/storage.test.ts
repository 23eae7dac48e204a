import tap from 'tap';
import { DEFAULT_STORAGE_KEY, createGatehouseClient, localStorageStore, memoryStore } from '../../src/client/index.js';
import { eachDatabase } from '../helpers/app.js';
import { asyncStore, webStorage } from '../helpers/client.js';
import { listenTestApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

eachDatabase('a session kept in a store survives a restart: a new client refreshes from it', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const store = memoryStore();
  const before = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  const { user, refreshToken } = await before.register({ email: uniqueEmail(), password: PASSWORD });

  const after = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  t.equal(after.user, undefined, 'the new client knows no user yet');
  t.equal((await after.me()).id, user.id, 'and is signed in all the same');
  t.equal(server.requestsTo('/auth/refresh'), 1, 'through one refresh');
  t.not(await store.get(), refreshToken, 'which stored the rotated refresh token');
  t.equal(after.user?.id, user.id);
});

eachDatabase('localStorageStore keeps the refresh token under its key', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const storage = webStorage();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: localStorageStore(undefined, storage) });
  const { refreshToken } = await client.register({ email: uniqueEmail(), password: PASSWORD });
  t.same([...storage.items], [[DEFAULT_STORAGE_KEY, refreshToken]], 'under gatehouse.session');

  const reloaded = createGatehouseClient({ baseUrl: server.baseUrl, storage: localStorageStore('gatehouse.session', storage) });
  await reloaded.me();
  t.not(storage.items.get(DEFAULT_STORAGE_KEY), refreshToken, 'rotated in place');
  await reloaded.logout();
  t.equal(storage.items.size, 0, 'logout removes it');

  const keyed = webStorage();
  await createGatehouseClient({ baseUrl: server.baseUrl, storage: localStorageStore('my-app.auth', keyed) }).register({
    email: uniqueEmail(),
    password: PASSWORD,
  });
  t.same([...keyed.items.keys()], ['my-app.auth'], 'or under a key of your own');
});

tap.test('localStorageStore uses the global localStorage, and says so when there is none', async (t) => {
  t.throws(() => localStorageStore(), { name: 'TypeError', message: /localStorage is not available/ }, 'Node 20 has none');
  const storage = webStorage();
  (globalThis as { localStorage?: unknown }).localStorage = storage;
  t.teardown(() => void delete (globalThis as { localStorage?: unknown }).localStorage);
  const store = localStorageStore();
  await store.set('value');
  t.equal(storage.items.get(DEFAULT_STORAGE_KEY), 'value');
  t.equal(await store.get(), 'value');
});

eachDatabase('an asynchronous store (AsyncStorage, SecureStore) works the same', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const store = asyncStore();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  const { refreshToken } = await client.register({ email: uniqueEmail(), password: PASSWORD });
  t.equal(store.value, refreshToken, 'the set was awaited');

  const restarted = createGatehouseClient({ baseUrl: server.baseUrl, storage: store });
  await Promise.all([restarted.me(), restarted.me(), restarted.listSessions()]);
  t.equal(server.requestsTo('/auth/refresh'), 1, 'concurrent calls on a restored session share one refresh');
  t.not(store.value, refreshToken);
  await restarted.logout();
  t.equal(store.value, undefined, 'the remove was awaited');
  t.ok(store.calls.includes('remove'));
});
