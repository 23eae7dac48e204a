import { createServer } from 'node:http';
import { once } from 'node:events';
import tap from 'tap';
import { GatehouseError, createGatehouseClient, isGatehouseError } from '../../src/client/index.js';
import { eachDatabase } from '../helpers/app.js';
import { listenTestApp } from '../helpers/live.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';

eachDatabase('refusals are GatehouseErrors carrying the problem: code, status, detail, field errors', async (t, kind) => {
  const server = await listenTestApp(t, kind);
  const client = createGatehouseClient({ baseUrl: server.baseUrl });
  const email = uniqueEmail();
  await client.register({ email, password: PASSWORD });

  const taken = await client.register({ email, password: PASSWORD }).catch((error: unknown) => error);
  t.ok(taken instanceof GatehouseError, 'an instance of GatehouseError');
  t.ok(taken instanceof Error, 'and of Error');
  t.ok(isGatehouseError(taken, 'email_taken'), 'isGatehouseError tells it by code');
  t.notOk(isGatehouseError(taken, 'invalid_credentials'), 'and not by another');
  t.notOk(isGatehouseError(new Error('x')), 'a plain error is none');
  t.match(taken, {
    name: 'GatehouseError',
    status: 409,
    code: 'email_taken',
    title: String,
    detail: 'An account with this email already exists.',
    message: 'An account with this email already exists.',
    errors: [],
    problem: { type: 'https://gatehouse.dev/problems/email_taken', status: 409 },
  });

  const invalid = (await client.register({ email: 'not an email', password: 'x' }).catch((error: unknown) => error)) as GatehouseError;
  t.equal(invalid.code, 'validation_failed');
  t.equal(invalid.status, 400);
  t.ok(invalid.errors.length >= 1, 'the offending fields are listed');
  t.match(invalid.errors[0], { path: String, message: String });

  await t.rejects(client.login({ email, password: 'wrong password' }), { code: 'invalid_credentials', status: 401 });
});

tap.test('an answer that is not problem+json is a GatehouseError http_error with its status', async (t) => {
  // A proxy in front of Gatehouse, down: a real server answering what such proxies answer.
  const proxy = createServer((_request, response) => {
    response.writeHead(502, 'Bad Gateway', { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  t.teardown(() => void proxy.close());
  const { port } = proxy.address() as { port: number };
  const client = createGatehouseClient({ baseUrl: `http://127.0.0.1:${port}` });
  await t.rejects(client.login({ email: uniqueEmail(), password: PASSWORD }), {
    name: 'GatehouseError',
    code: 'http_error',
    status: 502,
    title: 'Bad Gateway',
  });
  await t.rejects(client.forgotPassword({ email: uniqueEmail() }), { code: 'http_error', status: 502 });
});
