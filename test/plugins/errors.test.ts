import Fastify from 'fastify';
import { BODY_LIMIT } from '../../src/app.js';
import { gatehousePlugin } from '../../src/plugin.js';
import { errorsPlugin } from '../../src/plugins/errors.js';
import { buildTestApp, eachDatabase, testConfig } from '../helpers/app.js';
import { openTestDatabase } from '../helpers/databases.js';
import { assertProblem } from '../helpers/problems.js';
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

/** An error a host route throws on purpose, the way Fastify plugins and http-errors shape them. */
function hostError(message: string, statusCode: number): Error {
  return Object.assign(new Error(message), { statusCode });
}

eachDatabase("a host route's own errors keep their status under the neutral code http_error, and a 5xx keeps its message to the log", async (t, kind) => {
  const database = await openTestDatabase(kind);
  const logLines: string[] = [];
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => void logLines.push(line) } } });
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });
  await app.register(errorsPlugin);
  await app.register(gatehousePlugin, { config: testConfig(), database });
  const open = { config: { public: true } };
  app.get('/forbidden', open, async () => {
    throw hostError('Only the author may edit this note.', 403);
  });
  app.get('/gone', open, async () => {
    throw hostError('This note was archived.', 410);
  });
  app.get('/teapot', open, async () => {
    throw hostError('', 418);
  });
  app.get('/broken', open, async () => {
    throw hostError('connection to 10.0.0.7 refused (password=hunter2)', 503);
  });
  await app.ready();

  const forbidden = assertProblem(t, await app.inject({ url: '/forbidden' }), 403, 'http_error', 'a host 403');
  t.equal(forbidden.detail, 'Only the author may edit this note.', 'the host chose these words for the client');
  const gone = assertProblem(t, await app.inject({ url: '/gone' }), 410, 'http_error', 'a host 410');
  t.equal(gone.detail, 'This note was archived.');
  const teapot = assertProblem(t, await app.inject({ url: '/teapot' }), 418, 'http_error', 'a host 4xx without a message');
  t.equal(teapot.detail, "I'm a Teapot", 'the status text stands in');

  const broken = await app.inject({ url: '/broken' });
  const body = assertProblem(t, broken, 500, 'internal_error', 'a host 5xx');
  t.notMatch(broken.body, /10\.0\.0\.7|hunter2/, 'its message never reaches the client');
  t.notMatch(body.detail, /refused/);
  t.ok(logLines.some((line) => line.includes('10.0.0.7')), 'it is in the log, for whoever fixes it');
});
