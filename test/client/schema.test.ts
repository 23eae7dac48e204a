import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, join } from 'node:path';
import tap from 'tap';
import { generateClientFiles } from '../../scripts/client-types.js';
import { ANONYMOUS_OPERATIONS } from '../../src/client/anonymous-operations.js';

const CLIENT_DIR = join(import.meta.dirname, '../../src/client');

tap.test('the generated client files are current: regenerate them with `npm run client:types`', async (t) => {
  for (const [file, generated] of await generateClientFiles()) {
    t.ok(generated === readFileSync(file, 'utf8'), `${basename(file)} equals what openapi/openapi.json generates`);
  }
  // Types only, so no test would load it otherwise; the coverage gate wants every file under src/.
  await import('../../src/client/schema.js');
});

tap.test('the client imports no Node built-in and nothing from the server side', async (t) => {
  const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
  for (const file of readdirSync(CLIENT_DIR).filter((name) => name.endsWith('.ts'))) {
    const source = readFileSync(join(CLIENT_DIR, file), 'utf8');
    const imports = [...source.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((match) => match[1]!);
    for (const specifier of imports) {
      t.notOk(builtins.has(specifier) || specifier.startsWith('node:'), `${file}: ${specifier} is no Node built-in`);
      t.notOk(specifier.startsWith('../'), `${file}: ${specifier} stays inside src/client`);
    }
    t.notMatch(source, /\b(Buffer|process|require)\b[.(]/, `${file}: no Node globals`);
  }
});

tap.test('the client sends no access token to the operations that open sessions or work from a mailed token', async (t) => {
  for (const operation of ['POST /auth/register', 'POST /auth/login', 'POST /auth/refresh', 'POST /auth/password/reset', 'GET /health']) {
    t.ok(ANONYMOUS_OPERATIONS.has(operation), operation);
  }
  t.ok(ANONYMOUS_OPERATIONS.has('POST /auth/logout'), 'nor to logout, which takes the credential the client chooses');
  for (const operation of ['GET /auth/me', 'POST /auth/logout-all', 'GET /admin/users', 'DELETE /auth/sessions/{id}']) {
    t.notOk(ANONYMOUS_OPERATIONS.has(operation), `${operation} gets the token`);
  }
});
