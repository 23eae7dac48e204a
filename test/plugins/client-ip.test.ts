import type { FastifyInstance } from 'fastify';
import { buildTestApp, eachDatabase } from '../helpers/app.js';
import { PASSWORD, bearer, registerUser } from '../helpers/users.js';

const PROXY = '10.0.0.2';

/** Logs in from `remoteAddress` with this X-Forwarded-For, and reads the address the new session recorded. */
async function addressRecorded(app: FastifyInstance, forwardedFor: string | undefined, remoteAddress = PROXY): Promise<string | null> {
  const { email } = await registerUser(app);
  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    remoteAddress,
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    payload: { email, password: PASSWORD },
  });
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.statusCode} ${login.body}`);
  const sessions = await app.inject({ url: '/auth/sessions', headers: bearer(login.json().accessToken) });
  const current = (sessions.json() as { items: { ip: string | null; current: boolean }[] }).items.find((s) => s.current);
  return current!.ip;
}

eachDatabase('TRUST_PROXY as a hop count believes that many proxies and no more', async (t, kind) => {
  const one = await buildTestApp(t, kind, { env: { TRUST_PROXY: '1' } });
  t.equal(await addressRecorded(one.app, '203.0.113.9'), '203.0.113.9', 'the address the one proxy saw');
  t.equal(await addressRecorded(one.app, '198.51.100.7, 203.0.113.9'), '203.0.113.9', 'what the client wrote before it is not believed');
  t.equal(await addressRecorded(one.app, undefined), PROXY, 'no header: the peer');

  const two = await buildTestApp(t, kind, { env: { TRUST_PROXY: '2' } });
  t.equal(await addressRecorded(two.app, '198.51.100.7, 203.0.113.9'), '198.51.100.7', 'two proxies: the address the outer one saw');
});

eachDatabase('without TRUST_PROXY X-Forwarded-For is ignored', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  t.equal(await addressRecorded(app, '203.0.113.9'), PROXY, 'the peer address is recorded');
});

eachDatabase('a forwarded client address that is not an IP is never stored: the peer address is', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { TRUST_PROXY: 'true' } });
  for (const forged of ['not-an-ip', '<script>alert(1)</script>', '203.0.113.9 OR 1=1', '1.2.3.4.5', 'x'.repeat(300)]) {
    t.equal(await addressRecorded(app, forged), PROXY, JSON.stringify(forged.slice(0, 40)));
  }
  t.equal(await addressRecorded(app, '2001:db8::1'), '2001:db8::1', 'an IPv6 address is one');
});

eachDatabase('forwarded values that are not IPs all count against the peer address in rate limits', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { TRUST_PROXY: 'true', RATE_LIMIT_LOGIN: '2/1m' } });
  const attempt = (forwardedFor: string) =>
    app.inject({ method: 'POST', url: '/auth/login', remoteAddress: PROXY, headers: { 'x-forwarded-for': forwardedFor }, payload: { email: 'nobody@example.com', password: 'wrong password' } });

  t.equal((await attempt('garbage-1')).statusCode, 401, 'first attempt');
  t.equal((await attempt('garbage-2')).statusCode, 401, 'second attempt');
  t.equal((await attempt('garbage-3')).statusCode, 429, 'a new made-up "address" is no new allowance');
  t.equal((await attempt('203.0.113.9')).statusCode, 401, 'a real forwarded address has its own count');
});
