import tap from 'tap';
import { createGatehouseClient, isGatehouseError, memoryStore, type SessionEnd } from '../../src/client/index.js';
import { revokeUserSessions } from '../../src/domain/sessions.js';
import { eachDatabase } from '../helpers/app.js';
import { gatedFetch, manualClock, sessionOpened } from '../helpers/client.js';
import { claimsOf } from '../helpers/jwt.js';
import { listenTestApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

// One test waits for the server to see a token expire, in real time (up to 4 s): the tests run two
// at a time, so that wait overlaps the others.
tap.jobs = 2;

const MINUTE = 60_000;

eachDatabase('calls made together on a stale token share one refresh', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const clock = manualClock();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, now: clock.now });
  const { accessToken } = await client.register({ email: uniqueEmail(), password: PASSWORD });
  const { sid } = claimsOf(accessToken!);

  clock.advance(15 * MINUTE);
  const answers = await Promise.all([
    ...Array.from({ length: 8 }, () => client.me()),
    client.listSessions(),
    client.updateMe({ name: 'Ada' }),
  ]);
  t.equal(answers.length, 10, 'every call succeeded');
  t.equal(server.requestsTo('/auth/refresh'), 1, 'the server received one refresh');
  t.equal(await server.rotations(sid), 1, 'the refresh token was rotated once');
  t.equal((await client.me()).name, 'Ada', 'and the session goes on');
  t.equal(server.requestsTo('/auth/refresh'), 1, 'with the new token, no further refresh');
});

eachDatabase('the access token is renewed shortly before it expires, not earlier', async (t, kind) => {
  const server = await listenTestApp(t, kind, { env: { ACCESS_TOKEN_TTL: '10m' } });
  const clock = manualClock();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, now: clock.now, refreshMargin: 60 });
  const first = sessionOpened(await client.login(await registered(client)));

  clock.advance(10 * MINUTE - 61_000);
  await client.me();
  t.equal(server.requestsTo('/auth/refresh'), 0, '61 s before expiry: the token is still used');
  t.equal(await client.accessToken(), first.accessToken);

  clock.advance(2_000);
  await client.me();
  t.equal(server.requestsTo('/auth/refresh'), 1, '59 s before expiry: renewed first');
  t.equal(await server.rotations(claimsOf(first.accessToken).sid), 1);
});

eachDatabase('a short-lived token is renewed when half its lifetime is gone', async (t, kind) => {
  const server = await listenTestApp(t, kind, { env: { ACCESS_TOKEN_TTL: '20s' } });
  const clock = manualClock();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, now: clock.now });
  await client.register({ email: uniqueEmail(), password: PASSWORD });
  clock.advance(9_000);
  await client.me();
  t.equal(server.requestsTo('/auth/refresh'), 0, 'not at 9 s of 20');
  clock.advance(2_000);
  await client.me();
  t.equal(server.requestsTo('/auth/refresh'), 1, 'at 11 s of 20 (a 30 s margin would refresh at once, forever)');
});

eachDatabase('a 401 token_expired is answered by one refresh and a retry of each call, body included', async (t, kind) => {
  // The client's clock stands still, so only the server knows the token has expired. exp is iat
  // + 4 s with iat rounded down: a refreshed token lives at least 3 s, ample for the retry.
  const server = await listenTestApp(t, kind, { env: { ACCESS_TOKEN_TTL: '4s', JWT_CLOCK_SKEW: '0s' } });
  const frozen = Date.now();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, now: () => frozen });
  const ends: SessionEnd[] = [];
  const revoked = createGatehouseClient({ baseUrl: server.baseUrl, now: () => frozen, onSessionEnd: (end) => ends.push(end) });
  const { accessToken } = await client.register({ email: uniqueEmail(), password: PASSWORD });
  const other = await revoked.register({ email: uniqueEmail(), password: PASSWORD });
  await Promise.all([server.untilExpired(accessToken!), server.untilExpired(other.accessToken!)]);
  const probes = server.requestsTo('/auth/me');

  await revokeUserSessions(server.app.gatehouse.db, other.user.id, 'admin');
  await t.rejects(revoked.me(), { code: 'session_revoked' }, 'an expired token of a revoked session: the refresh is refused');
  t.same(ends.map((end) => end.code), ['session_revoked'], 'and the session ends');

  const [me, renamed, sessions] = await Promise.all([client.me(), client.updateMe({ name: 'Grace' }), client.listSessions()]);
  t.equal(renamed.name, 'Grace', 'the retried PATCH carried its body');
  t.equal(me.email, renamed.email);
  t.equal(sessions.length, 1);
  t.equal(server.requestsTo('/auth/refresh'), 2, 'one refresh for the three refusals (and the revoked one)');
  t.equal(server.requestsTo('/auth/me') - probes, 5, 'each call was sent twice (the revoked one once)');
  t.equal(server.requestsTo('/auth/sessions'), 2);
});

eachDatabase('a rate-limited refresh keeps the session, and the token in use while it lasts', async (t, kind) => {
  const server = await listenTestApp(t, kind, { env: { RATE_LIMIT_REFRESH: '1/1h', ACCESS_TOKEN_TTL: '10m' } });
  const clock = manualClock();
  const ends: SessionEnd[] = [];
  const client = createGatehouseClient({ baseUrl: server.baseUrl, now: clock.now, onSessionEnd: (end) => ends.push(end) });
  await client.register({ email: uniqueEmail(), password: PASSWORD });
  await client.refresh();
  const token = await client.accessToken();

  await t.rejects(client.refresh(), { name: 'GatehouseError', code: 'rate_limited', status: 429 }, 'the second refresh is refused');
  clock.advance(10 * MINUTE - 10_000);
  t.equal((await client.me()).email, client.user?.email, 'inside the margin, the refused refresh falls back to the current token');
  t.equal(await client.accessToken(), token);
  clock.advance(20_000);
  await t.rejects(client.me(), { code: 'rate_limited' }, 'past its expiry the refusal is the answer');
  t.same(ends, [], 'the session did not end');
  t.ok(await client.accessToken().catch((error: unknown) => isGatehouseError(error, 'rate_limited')), 'it is still there to retry');
});

eachDatabase('a logout while a refresh is in flight wins: the refreshed tokens are dropped', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const gate = gatedFetch('/auth/refresh');
  const store = memoryStore();
  const client = createGatehouseClient({ baseUrl: server.baseUrl, fetch: gate.fetch, storage: store });
  await client.register({ email: uniqueEmail(), password: PASSWORD });

  const refreshing = client.refresh();
  await gate.arrived;
  await client.logout();
  gate.release();
  const late = await refreshing;
  t.type(late.accessToken, 'string', 'the refresh itself succeeded');
  t.equal(client.user, undefined, 'but the client stays logged out');
  t.equal(await store.get(), undefined, 'nothing stored');
  t.equal(await client.accessToken(), undefined, 'no token');
  const me = await fetch(`${server.baseUrl}/auth/me`, { headers: { authorization: `Bearer ${late.accessToken}` } });
  t.equal(((await me.json()) as { code: string }).code, 'session_revoked', 'and the server ended the session');
});

async function registered(client: ReturnType<typeof createGatehouseClient>): Promise<{ email: string; password: string }> {
  const input = { email: uniqueEmail(), password: PASSWORD };
  await client.register(input);
  await client.logout();
  return input;
}
