import { readFileSync } from 'node:fs';
import tap from 'tap';
import { OPENAPI_FILE, generateOpenApi } from '../scripts/openapi.js';

tap.test('openapi/openapi.json is current: regenerate it with `npm run openapi`', async (t) => {
  const generated = await generateOpenApi();
  const committed = readFileSync(OPENAPI_FILE, 'utf8');
  t.ok(generated === committed, 'the committed document equals the one generated from the routes');
});

/** POST routes that are actions on the URL alone and take no body. */
const BODILESS_ACTIONS = new Set(['/auth/logout-all', '/admin/users/{id}/sessions/revoke']);

tap.test('every operation declares its responses, and errors as problem+json', async (t) => {
  const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as {
    paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, unknown> }>; requestBody?: unknown }>>;
  };
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const label = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(operation.responses ?? {});
      t.ok(statuses.some((s) => s.startsWith('2')), `${label} declares a success response`);
      for (const status of statuses.filter((s) => Number(s) >= 400)) {
        t.ok(operation.responses![status]!.content?.['application/problem+json'], `${label} ${status} is problem+json`);
      }
      if (method === 'put' || method === 'patch' || (method === 'post' && !BODILESS_ACTIONS.has(path))) {
        t.ok(operation.requestBody, `${label} declares its request body`);
      }
    }
  }
});
