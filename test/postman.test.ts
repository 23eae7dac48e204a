import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import newman, { type RunSummary } from 'newman';
import tap from 'tap';
import { POSTMAN_FILE, WALKTHROUGH, WALKTHROUGH_FOLDER, generatePostman } from '../scripts/postman.js';
import { buildTestApp, eachDatabase } from './helpers/app.js';

const OPENAPI_FILE = new URL('../openapi/openapi.json', import.meta.url);

interface Parameter {
  in: string;
  name: string;
  schema: object;
}
interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: object }> };
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: object;
}
interface Item {
  name: string;
  item?: Item[];
  request?: {
    method: string;
    url: { path: string[]; query?: { key: string; value: string; disabled?: boolean }[]; variable?: { key: string; value: string }[] };
    body?: { raw?: string };
  };
}
interface Collection {
  item: Item[];
  variable: { key: string; value: string }[];
}

const readCollection = () => JSON.parse(readFileSync(POSTMAN_FILE, 'utf8')) as Collection;
const requestsOf = (items: Item[]): Item[] => items.flatMap((item) => (item.item ? requestsOf(item.item) : [item]));

tap.test('openapi/gatehouse.postman_collection.json is current: regenerate it with `npm run postman`', async (t) => {
  const generated = await generatePostman(readFileSync(OPENAPI_FILE, 'utf8'));
  t.equal(generated, readFileSync(POSTMAN_FILE, 'utf8'), 'the committed collection equals the one converted from openapi/openapi.json');
});

tap.test('every parameter has an example or a default: the converter fakes any other at random, and the collection would change from run to run', async (t) => {
  const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document;
  const faked = Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).flatMap(([method, operation]) =>
      (operation.parameters ?? [])
        .filter((parameter) => !['example', 'examples'].some((key) => key in parameter) && !['example', 'examples', 'default'].some((key) => key in parameter.schema))
        .map(({ name }) => `${method.toUpperCase()} ${path} ${name}`),
    ),
  );
  t.same(faked, []);
});

tap.test("every request's body, path variables and ticked query parameters pass the document's schemas", async (t) => {
  const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document;
  const collection = readCollection();
  const variables = new Map(collection.variable.map((v) => [v.key, v.value]));
  // As the server checks: JSON bodies as sent, query strings coerced to their schema's types.
  const [bodies, strings] = [false, true].map((coerceTypes) => {
    const ajv = new Ajv2020({ strict: false, allErrors: true, coerceTypes });
    addFormats.default(ajv);
    return ajv;
  });
  // Each schema is compiled beside the document's components, so its $refs to them resolve.
  const check = (schema: object, value: unknown, label: string, coerce = false) => {
    const validate = (coerce ? strings! : bodies!).compile({ ...schema, components: document.components });
    t.ok(validate(value), `${label}: ${JSON.stringify(validate.errors ?? [])}`);
  };
  const requests = requestsOf(collection.item);
  t.equal(requests.length, Object.values(document.paths).flatMap((methods) => Object.keys(methods)).length, 'one request per operation');
  for (const { name, request } of requests) {
    const path = `/${request!.url.path.map((s) => s.replace(/^:(.+)$/, '{$1}')).join('/')}`;
    const operation = document.paths[path]?.[request!.method.toLowerCase()];
    if (!t.ok(operation, `${name}: ${request!.method} ${path} is in the document`)) continue;
    const raw = request!.body?.raw;
    if (raw) {
      const filled = raw.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
        t.ok(variables.has(key), `${name}: {{${key}}} is a collection variable`);
        return variables.get(key) ?? '';
      });
      check(operation!.requestBody!.content['application/json']!.schema, JSON.parse(filled), `${name} body`);
    }
    const parameter = (where: string, key: string) => operation!.parameters?.find((p) => p.in === where && p.name === key);
    for (const { key, value } of request!.url.variable ?? []) {
      check({ type: 'object', properties: { [key]: parameter('path', key)!.schema } }, { [key]: value }, `${name} :${key}`);
    }
    for (const { key, value } of (request!.url.query ?? []).filter((q) => q.disabled === false)) {
      check({ type: 'object', properties: { [key]: parameter('query', key)!.schema } }, { [key]: value }, `${name} ?${key}`, true);
    }
  }
});

function runFolder(collection: Collection, baseUrl: string): Promise<RunSummary> {
  return new Promise((resolve, reject) => {
    newman.run(
      { collection, folder: WALKTHROUGH_FOLDER, envVar: [{ key: 'baseUrl', value: baseUrl }], reporters: [], timeoutRequest: 30_000 },
      (err, summary) => (err ? reject(err) : resolve(summary)),
    );
  });
}

eachDatabase('newman runs the auth folder against a live server: register, login, me, update, refresh and logout each pass their tests', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const collection = readCollection();
  const folder = collection.item.find((item) => item.name === WALKTHROUGH_FOLDER)!;

  const { run } = await runFolder(collection, `http://127.0.0.1:${port}`);
  t.same(run.failures.map((f) => `${f.source?.name}: ${f.error.message}`), [], 'no request failed and no test failed');
  t.same(
    run.executions.map((e) => e.item.name),
    folder.item!.map((item) => item.name),
    `the ${WALKTHROUGH.join(' -> ')} sequence ran in order`,
  );
  t.equal(run.executions.length, WALKTHROUGH.length);
  for (const execution of run.executions) {
    const label = `${execution.item.name} (${execution.response?.code})`;
    t.notOk(execution.requestError, `${label} got an answer`);
    t.ok(execution.assertions?.length, `${label} has a test`);
    t.same(execution.assertions?.filter((a) => a.error || a.skipped).map((a) => a.assertion), [], `${label} passed its tests`);
  }
  t.equal(run.stats.assertions.failed, 0);
  t.equal(run.stats.testScripts.failed, 0, 'no test script threw');
  t.equal(run.stats.prerequestScripts.failed, 0);

  // The scripts passed real tokens along: logout sent the one refresh issued, and its session is over.
  const sent = run.executions.at(-1)!.request.headers.get('Authorization');
  t.match(sent, /^Bearer ey/, 'logout sent the stored access token');
  const me = await app.inject({ url: '/auth/me', headers: { authorization: sent! } });
  t.equal(me.statusCode, 401);
  t.equal(me.json().code, 'session_revoked');
});
