import { createGatehouseClient, memoryStore, type SessionEnd } from '../../src/client/index.js';
import { revokeUserSessions } from '../../src/domain/sessions.js';
import tap from 'tap';
import { eachDatabase, type Test } from '../helpers/app.js';
import { freePort } from '../helpers/servers.js';
import { manualClock, sessionOpened } from '../helpers/client.js';
import { listenTestApp, type LiveApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

const MINUTE = 60_000;

/** A registered client on a moveable clock, recording how its sessions end. */
async function signedIn(server: LiveApp, email = uniqueEmail()) {
  const clock = manualClock();
  const store = memoryStore();
  const ends: SessionEnd[] = [];
  const client = createGatehouseClient({ baseUrl: server.baseUrl, now: clock.now, storage: store, onSessionEnd: (end) => ends.push(end) });
  const tokens = await client.login({ email, password: PASSWORD }).then(sessionOpened, () => client.register({ email, password: PASSWORD }));
  return { client, clock, store, ends, tokens, email };
}

function assertEnded(t: Test, ends: SessionEnd[], code: string): void {
  t.equal(ends.length, 1, 'onSessionEnd was called once');
  t.equal(ends[0]?.code, code, `with ${code}`);
  t.equal(ends[0]?.error.name, 'GatehouseError', 'and the error');
}

eachDatabase('a reused refresh token ends the session: onSessionEnd once, everything forgotten', async (t, kind) => {
  const server = await listenTestApp(t, kind, { env: { REFRESH_REUSE_GRACE: '0s' } });
  const { client, clock, store, ends } = await signedIn(server);
  // Someone else got hold of the refresh token and used it first.
  const stolen = (await store.get())!;
  const theft = await fetch(`${server.baseUrl}/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refreshToken: stolen }),
  });
  t.equal(theft.status, 200);
  await new Promise((resolve) => setTimeout(resolve, 5));

  clock.advance(15 * MINUTE);
  const calls = await Promise.allSettled([client.me(), client.me(), client.listSessions()]);
  for (const call of calls) t.match(call, { status: 'rejected', reason: { code: 'refresh_token_reused', status: 401 } });
  assertEnded(t, ends, 'refresh_token_reused');
  t.equal(server.requestsTo('/auth/refresh'), 2, 'the thief and one refresh from the client');
  t.equal(await store.get(), undefined, 'the stored refresh token is gone');
  t.equal(client.user, undefined);
  t.equal(await client.accessToken(), undefined, 'no session left');
  await t.rejects(client.me(), { code: 'token_missing' }, 'later calls go out without a token');
  t.equal(ends.length, 1, 'and end nothing more');
});

eachDatabase('a revoked session ends at the next refresh, and at once on a call the server refuses', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const email = uniqueEmail();
  const laptop = await signedIn(server, email);
  const phone = await signedIn(server, email);

  await phone.client.logoutAll();
  t.equal(await phone.store.get(), undefined, 'logoutAll forgets the session here');
  t.same(phone.ends, [], 'without calling onSessionEnd: the user asked for it');

  await t.rejects(laptop.client.me(), { code: 'session_revoked' }, "the laptop's token still looks fresh, the server refuses it");
  assertEnded(t, laptop.ends, 'session_revoked');
  t.equal(await laptop.store.get(), undefined);
  t.equal(server.requestsTo('/auth/refresh'), 0, 'no refresh was tried for a revoked session');

  const tablet = await signedIn(server, email);
  await revokeUserSessions(server.app.gatehouse.db, tablet.tokens.user.id, 'admin');
  tablet.clock.advance(15 * MINUTE);
  await t.rejects(tablet.client.me(), { code: 'session_revoked' }, 'a refresh of a revoked session is refused');
  assertEnded(t, tablet.ends, 'session_revoked');
});

eachDatabase('an invalid stored refresh token ends the session; a client that never had one ends nothing', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const store = memoryStore();
  await store.set('x'.repeat(43));
  const ends: SessionEnd[] = [];
  const client = createGatehouseClient({ baseUrl: server.baseUrl, storage: store, onSessionEnd: (end) => ends.push(end) });
  const { error, response } = await client.api.GET('/auth/me');
  t.equal(response.status, 401);
  t.equal(error?.code, 'invalid_refresh_token', 'the raw client answers with the refused refresh, as { error }');
  assertEnded(t, ends, 'invalid_refresh_token');
  await t.rejects(client.me(), { code: 'token_missing' }, 'the session is gone');

  const fresh: SessionEnd[] = [];
  const anonymous = createGatehouseClient({ baseUrl: server.baseUrl, onSessionEnd: (end) => fresh.push(end) });
  await t.rejects(anonymous.me(), { code: 'token_missing' }, 'without a session, a call goes out bare');
  await t.rejects(anonymous.refresh(), { code: 'invalid_refresh_token' }, 'and a refresh is refused');
  t.same(fresh, [], 'there was no session to end');
});

eachDatabase('an expired session ends with refresh_token_expired', async (t, kind) => {
  const server = await listenTestApp(t, kind, { env: { REFRESH_TOKEN_TTL: '1s', ACCESS_TOKEN_TTL: '1s' } });
  const { client, clock, ends } = await signedIn(server);
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  clock.advance(MINUTE);
  await t.rejects(client.me(), { code: 'refresh_token_expired' });
  assertEnded(t, ends, 'refresh_token_expired');
});

tap.test('a refresh that cannot reach the server is passed on and ends nothing', async (t) => {
  const store = memoryStore();
  await store.set('z'.repeat(43));
  const ends: SessionEnd[] = [];
  const client = createGatehouseClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, storage: store, onSessionEnd: (end) => ends.push(end) });
  await t.rejects(client.me(), TypeError, 'the network error itself');
  const raw = client.api.GET('/auth/sessions');
  await t.rejects(raw, TypeError, 'from the raw client too, as fetch would');
  t.equal(await store.get(), 'z'.repeat(43), 'the stored token is kept for when the network is back');
  t.same(ends, []);
});
