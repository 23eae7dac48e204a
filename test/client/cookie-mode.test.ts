import { DEFAULT_STORAGE_KEY, createGatehouseClient, memoryStore } from '../../src/client/index.js';
import { eachDatabase } from '../helpers/app.js';
import { browserLikeFetch, manualClock, sessionOpened, webStorage } from '../helpers/client.js';
import { listenTestApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

const COOKIE = 'gatehouse_refresh';

eachDatabase('cookie mode: the refresh token stays in the cookie, the store keeps the CSRF token', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const browser = browserLikeFetch();
  const store = memoryStore();
  const clock = manualClock();
  const options = { baseUrl: server.baseUrl, mode: 'cookie' as const, fetch: browser.fetch, storage: store, now: clock.now };
  const client = createGatehouseClient(options);

  const registered = await client.register({ email: uniqueEmail(), password: PASSWORD });
  t.notOk('refreshToken' in registered, 'no refresh token in the answer');
  t.type(registered.csrfToken, 'string');
  t.equal(await store.get(), registered.csrfToken, 'the store holds the CSRF token');
  t.ok(browser.cookies.get(COOKIE), 'the refresh token is in the cookie jar');
  t.ok(browser.sent.every((request) => request.credentials === 'include'), "every request says credentials: 'include'");

  // A reload: a new client, the same cookie jar and storage.
  const reloaded = createGatehouseClient(options);
  t.equal((await reloaded.me()).id, registered.user.id, 'the session survives through the cookie');
  const refresh = browser.sent.find((request) => request.path === '/auth/refresh')!;
  t.equal(refresh.csrf, registered.csrfToken, 'the refresh sent the CSRF header');
  t.match(refresh.cookie, `${COOKIE}=`, 'and the cookie');
  t.equal(refresh.authorization, null, 'and no access token');

  clock.advance(15 * 60_000);
  await reloaded.me();
  t.equal(server.requestsTo('/auth/refresh'), 2, 'an expiry refreshes through the cookie again');

  await reloaded.logout();
  const logout = browser.sent.find((request) => request.path === '/auth/logout')!;
  t.equal(logout.csrf, registered.csrfToken, 'logout goes by the cookie and the CSRF header...');
  t.equal(logout.authorization, null);
  t.notOk(browser.cookies.has(COOKIE), '...so the answer clears the cookie');
  t.equal(await store.get(), undefined, 'and the CSRF token is forgotten');
  await t.rejects(createGatehouseClient(options).me(), { code: 'token_missing' }, 'after a reload there is no session');
});

eachDatabase('cookie mode keeps the CSRF token in localStorage by default, where there is one', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const storage = webStorage();
  (globalThis as { localStorage?: unknown }).localStorage = storage;
  t.teardown(() => void delete (globalThis as { localStorage?: unknown }).localStorage);
  const browser = browserLikeFetch();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, mode: 'cookie', fetch: browser.fetch });
  const { csrfToken } = sessionOpened(await client.login(await registeredUser(server.baseUrl)));
  t.equal(storage.items.get(DEFAULT_STORAGE_KEY), csrfToken);

  const tokenMode = createGatehouseClient({ baseUrl: server.baseUrl });
  await tokenMode.login(await registeredUser(server.baseUrl));
  t.equal(storage.items.size, 1, 'token mode keeps its refresh token in memory unless told otherwise');
});

eachDatabase('cookie mode: a CSRF token that does not match the cookie ends the session', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const browser = browserLikeFetch();
  const store = memoryStore();
  const ends: string[] = [];
  const options = { baseUrl: server.baseUrl, mode: 'cookie' as const, fetch: browser.fetch, storage: store };
  await createGatehouseClient(options).register({ email: uniqueEmail(), password: PASSWORD });
  await store.set('not-the-csrf-token');
  const reloaded = createGatehouseClient({ ...options, onSessionEnd: (end) => ends.push(end.code) });
  await t.rejects(reloaded.me(), { code: 'csrf_failed', status: 403 });
  t.same(ends, ['csrf_failed']);
});

eachDatabase('cookie mode: logout with no CSRF token at hand uses the access token', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const browser = browserLikeFetch();
  const store = memoryStore();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, mode: 'cookie', fetch: browser.fetch, storage: store });
  const { accessToken } = await client.register({ email: uniqueEmail(), password: PASSWORD });
  await store.remove();
  await client.logout();
  t.equal(browser.sent.at(-1)?.authorization, `Bearer ${accessToken}`);
  const me = await fetch(`${server.baseUrl}/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });
  t.equal(((await me.json()) as { code: string }).code, 'session_revoked');
});

async function registeredUser(baseUrl: string): Promise<{ email: string; password: string }> {
  const input = { email: uniqueEmail(), password: PASSWORD };
  const response = await fetch(`${baseUrl}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(input),
  });
  if (response.status !== 201) throw new Error(`register failed: ${response.status}`);
  return input;
}
