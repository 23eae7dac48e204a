import { BODY_LIMIT } from '../../src/app.js';
import { buildTestApp, eachDatabase } from '../helpers/app.js';
import { PASSWORD, post, uniqueEmail } from '../helpers/users.js';

const PROBLEM = /^application\/problem\+json/;

eachDatabase('client mistakes get problem+json with a stable code, never HTML or a stack', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const cases = [
    { label: 'unknown route', status: 404, code: 'not_found', req: { method: 'GET' as const, url: '/nope' } },
    {
      label: 'malformed JSON',
      status: 400,
      code: 'invalid_json',
      req: { method: 'POST' as const, url: '/auth/login', payload: '{"email":', headers: { 'content-type': 'application/json' } },
    },
    {
      label: 'empty JSON body',
      status: 400,
      code: 'invalid_json',
      req: { method: 'POST' as const, url: '/auth/login', payload: '', headers: { 'content-type': 'application/json' } },
    },
    {
      label: 'text body',
      status: 415,
      code: 'unsupported_media_type',
      req: { method: 'POST' as const, url: '/auth/login', payload: 'email=a', headers: { 'content-type': 'text/plain' } },
    },
    {
      label: 'form body',
      status: 415,
      code: 'unsupported_media_type',
      req: {
        method: 'POST' as const,
        url: '/auth/login',
        payload: 'email=a&password=b',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      },
    },
    {
      label: 'body over 64 KiB',
      status: 413,
      code: 'payload_too_large',
      req: {
        method: 'POST' as const,
        url: '/auth/register',
        payload: JSON.stringify({ email: uniqueEmail(), password: PASSWORD, name: 'x'.repeat(BODY_LIMIT) }),
        headers: { 'content-type': 'application/json' },
      },
    },
  ];
  for (const { label, status, code, req } of cases) {
    const res = await app.inject(req);
    t.equal(res.statusCode, status, label);
    t.match(res.headers['content-type'], PROBLEM, label);
    const body = res.json();
    t.equal(body.code, code, label);
    t.equal(body.status, status, label);
    t.type(body.title, 'string', label);
    t.type(body.detail, 'string', label);
    t.match(body.type, /^https:\/\//, label);
    t.notMatch(res.body, /at .*\.(ts|js):\d+/, `${label}: no stack trace`);
  }
});

eachDatabase('deeply nested and odd JSON bodies get a 4xx, never a 5xx', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const nested = '['.repeat(5000) + ']'.repeat(5000);
  const bodies = [nested, '"just a string"', 'null', '[]', '{"email":{"$ne":null},"password":"x"}', '{"__proto__":{"admin":true}}'];
  for (const payload of bodies) {
    const res = await app.inject({ method: 'POST', url: '/auth/login', payload, headers: { 'content-type': 'application/json' } });
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${payload.slice(0, 30)} -> ${res.statusCode}`);
    t.match(res.headers['content-type'], PROBLEM);
  }
  const unicode = await post(app, '/auth/register', { email: uniqueEmail(), password: 'pässwörd-ünïcödé-🔑', name: '名前 \u0000 null byte' });
  t.equal(unicode.statusCode, 400, 'a NUL character is refused as invalid input');
  t.equal(unicode.json().errors[0].path, 'body/name');
});

eachDatabase('health and readiness', async (t, kind) => {
  const { app, database } = await buildTestApp(t, kind);
  t.same((await app.inject({ url: '/health' })).json(), { status: 'ok' });
  const ready = await app.inject({ url: '/ready' });
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { status: 'ok' });
  // A database that stops answering makes the app unready, with problem+json.
  await database.close();
  const down = await app.inject({ url: '/ready' });
  t.equal(down.statusCode, 503);
  t.equal(down.json().code, 'service_unavailable');
  t.match(down.headers['content-type'], PROBLEM);
});
