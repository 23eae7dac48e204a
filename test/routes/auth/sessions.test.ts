import { buildTestApp, eachDatabase } from '../../helpers/app.js';
import { bearer, login, post, registerUser } from '../../helpers/users.js';

interface SessionItem {
  id: string;
  userAgent: string | null;
  ip: string | null;
  current: boolean;
}

eachDatabase('a user lists their live sessions and ends one; someone else\'s id is not found', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const phone = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: user.email, password: user.password },
    headers: { 'user-agent': 'PhoneApp/1.0' },
  });
  const stranger = await registerUser(app);
  const headers = bearer(user.accessToken);

  const listed = await app.inject({ url: '/auth/sessions', headers });
  t.equal(listed.statusCode, 200);
  const items = listed.json().items as SessionItem[];
  t.equal(items.length, 2);
  t.equal(items.filter((s) => s.current).length, 1, 'exactly one is the current one');
  const phoneSession = items.find((s) => !s.current)!;
  t.equal(phoneSession.userAgent, 'PhoneApp/1.0');
  t.equal(phoneSession.ip, '127.0.0.1');

  const strangers = (await app.inject({ url: '/auth/sessions', headers: bearer(stranger.accessToken) })).json().items as SessionItem[];
  const notMine = await app.inject({ method: 'DELETE', url: `/auth/sessions/${strangers[0]!.id}`, headers });
  t.equal(notMine.statusCode, 404);
  t.equal(notMine.json().code, 'not_found');
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(stranger.accessToken) })).statusCode, 200, "the stranger's session lives on");

  t.equal((await app.inject({ method: 'DELETE', url: `/auth/sessions/${phoneSession.id}`, headers })).statusCode, 204);
  t.equal((await app.inject({ url: '/auth/me', headers: bearer(phone.json().accessToken) })).json().code, 'session_revoked');
  const after = (await app.inject({ url: '/auth/sessions', headers })).json().items as SessionItem[];
  t.same(after.map((s) => s.current), [true], 'only this session is left');
});

eachDatabase('logout-all ends every session of the caller, this one included', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const second = await login(app, user.email);
  t.equal((await post(app, '/auth/logout-all', undefined, bearer(second.accessToken))).statusCode, 204);
  for (const session of [user, second]) {
    t.equal((await app.inject({ url: '/auth/me', headers: bearer(session.accessToken) })).statusCode, 401);
    t.equal((await post(app, '/auth/refresh', { refreshToken: session.refreshToken })).json().code, 'session_revoked');
  }
});

eachDatabase('login is tracked: last and previous login time and address', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const user = await registerUser(app);
  const first = user.user;
  await new Promise((r) => setTimeout(r, 5));
  const again = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: user.email, password: user.password },
    remoteAddress: '10.1.2.3',
  });
  const me = (await app.inject({ url: '/auth/me', headers: bearer(again.json().accessToken) })).json();
  t.equal(me.loginCount, 2);
  t.equal(me.lastLoginIp, '10.1.2.3');
  t.equal(me.previousLoginIp, '127.0.0.1');
  t.equal(me.previousLoginAt, first.lastLoginAt, 'the previous login moved down one slot');
  t.ok(me.lastLoginAt > first.lastLoginAt!);
});
