import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import t from 'tap';
import type { Test } from '../helpers/app.js';
import { jsonText, keptSerializerFactory } from '../../src/plugins/compiled-schemas.js';
import { useStrictBodyValidation } from '../../src/plugins/validation.js';

/*
 * Serializers and validators are kept across routes and app builds, under the JSON text of what
 * they were compiled from. Each app here is a new Fastify with route schemas made anew, as each
 * build of Gatehouse makes them; a test that could be passed by a cache answering for the wrong
 * schema builds the app that would get the wrong answer after the one that would fill the cache.
 */

/** A Fastify app whose response serializers come from the kept factory, as buildApp's do. */
function serializingApp(t: Test, options: FastifyServerOptions = {}): FastifyInstance {
  const app = Fastify({ ...options, schemaController: { compilersFactory: { buildSerializer: keptSerializerFactory } } });
  t.teardown(() => app.close());
  return app;
}

async function body(t: Test, app: FastifyInstance, url = '/thing'): Promise<string> {
  const res = await app.inject({ url });
  t.equal(res.statusCode, 200);
  return res.body;
}

const object = (properties: Record<string, unknown>) => ({ type: 'object', properties });

t.test('jsonText is the JSON text of plain JSON data and nothing else', async (t) => {
  const kind = Symbol('TypeBox.Kind');
  t.equal(jsonText({ type: 'object', [kind]: 'Object', properties: { a: { type: ['string', 'null'], maxLength: 3 } } }), '{"type":"object","properties":{"a":{"type":["string","null"],"maxLength":3}}}', 'symbol keys left out');
  t.equal(jsonText([1, 'two', true, null, { 'nested "quote"': [] }]), '[1,"two",true,null,{"nested \\"quote\\"":[]}]');
  t.equal(jsonText(Object.assign(Object.create(null) as object, { a: 1 })), '{"a":1}', 'an object without a prototype is plain');
  const shared = { type: 'string' };
  t.equal(jsonText({ a: shared, b: shared }), '{"a":{"type":"string"},"b":{"type":"string"}}', 'the same object twice is not a cycle');

  const cyclic: Record<string, unknown> = { type: 'object' };
  cyclic.self = cyclic;
  const sparse = [1, , 3];
  const extra = Object.assign([1], { extra: true });
  const holeAndExtra = Object.assign([1, , 3], { extra: true });
  const hidden = Object.defineProperty({ type: 'string' }, 'format', { value: 'uuid', enumerable: false });
  const getter = { get type() { return 'string'; } };
  const notJson: [string, unknown][] = [
    ['a function', { type: 'string', transform: () => 'x' }],
    ['a Date', { default: new Date(0) }],
    ['a RegExp', { pattern: /a/ }],
    ['a class instance', { items: new (class Schema {})() }],
    ['a Map', new Map()],
    ['an undefined property', { type: 'string', default: undefined }],
    ['undefined', undefined],
    ['NaN', { maximum: Number.NaN }],
    ['Infinity', { maximum: Number.POSITIVE_INFINITY }],
    ['-0', { minimum: -0 }],
    ['a bigint', { maximum: 1n }],
    ['a symbol value', { const: Symbol('x') }],
    ['a cycle', cyclic],
    ['a sparse array', { enum: sparse }],
    ['an array with an extra property', { enum: extra }],
    ['an array with a hole and an extra property', { enum: holeAndExtra }],
    ['a non-enumerable property', hidden],
    ['a getter', getter],
  ];
  for (const [what, value] of notJson) t.equal(jsonText(value), undefined, what);
});

t.test('a response schema gets its own serializer, not a kept one for another schema', async (t) => {
  const handler = async () => ({ a: 'A', b: 'B' });
  for (const field of ['a', 'b']) {
    const app = serializingApp(t);
    app.get('/thing', { schema: { response: { 200: object({ [field]: { type: 'string' } }) } } }, handler);
    t.equal(await body(t, app), JSON.stringify({ [field]: field.toUpperCase() }), `only ${field}`);
  }
});

t.test('a schema changed after it was compiled is compiled again', async (t) => {
  const schema = object({ a: { type: 'string' } }) as { properties: Record<string, unknown> };
  const handler = async () => ({ a: 'A', b: 'B' });
  const first = serializingApp(t);
  first.get('/thing', { schema: { response: { 200: schema } } }, handler);
  t.equal(await body(t, first), '{"a":"A"}');
  schema.properties.b = { type: 'string' };
  const second = serializingApp(t);
  second.get('/thing', { schema: { response: { 200: schema } } }, handler);
  t.equal(await body(t, second), '{"a":"A","b":"B"}', 'the same object, with what it says now');
});

t.test('a $ref resolves against the shared schemas of its own app', async (t) => {
  for (const field of ['a', 'b']) {
    const app = serializingApp(t);
    app.addSchema({ $id: 'Thing', ...object({ [field]: { type: 'string' } }) });
    app.get('/thing', { schema: { response: { 200: { $ref: 'Thing' } } } }, async () => ({ a: 'A', b: 'B' }));
    t.equal(await body(t, app), JSON.stringify({ [field]: field.toUpperCase() }), `Thing has ${field}`);
  }
});

t.test('a shared schema added in an inner scope is seen by the routes of that scope only', async (t) => {
  const app = serializingApp(t);
  app.addSchema({ $id: 'Thing', ...object({ a: { type: 'string' } }) });
  const handler = async () => ({ a: 'A', b: 'B' });
  app.get('/outer', { schema: { response: { 200: object({ thing: { $ref: 'Thing' } }) } } }, async () => ({ thing: await handler() }));
  await app.register(async (inner) => {
    inner.addSchema({ $id: 'Other', ...object({ b: { type: 'string' } }) });
    inner.get('/inner', { schema: { response: { 200: object({ thing: { $ref: 'Thing' }, other: { $ref: 'Other' } }) } } }, async () => ({
      thing: await handler(),
      other: await handler(),
    }));
  });
  t.equal(await body(t, app, '/outer'), '{"thing":{"a":"A"}}');
  t.equal(await body(t, app, '/inner'), '{"thing":{"a":"A"},"other":{"b":"B"}}');
});

t.test("the serializer options are part of a serializer's key", async (t) => {
  for (const [rounding, expected] of [['floor', '{"n":1}'], ['ceil', '{"n":2}']] as const) {
    const app = serializingApp(t, { serializerOpts: { rounding } });
    app.get('/thing', { schema: { response: { 200: object({ n: { type: 'integer' } }) } } }, async () => ({ n: 1.5 }));
    t.equal(await body(t, app), expected, rounding);
  }
});

t.test('the same schema in another route or app is compiled once', async (t) => {
  const serializers: unknown[] = [];
  for (let i = 0; i < 2; i++) {
    const app = serializingApp(t);
    const urls = ['/one', '/two'];
    for (const url of urls) {
      app.get(url, { schema: { response: { 200: object({ same: { type: 'string' } }) } } }, async (_request, reply) => {
        serializers.push(reply.getSerializationFunction('200'));
        return { same: 'x' };
      });
    }
    for (const url of urls) t.equal(await body(t, app, url), '{"same":"x"}');
  }
  t.equal(serializers.length, 4);
  t.equal(new Set(serializers).size, 1, 'one serializer for all four');
});

t.test('a schema JSON cannot hold exactly is compiled as usual', async (t) => {
  const app = serializingApp(t);
  const at = new Date('2026-01-02T03:04:05.000Z');
  app.get('/thing', { schema: { response: { 200: object({ at: { type: 'string', default: at } }) } } }, async () => ({}));
  t.equal(await body(t, app), '{"at":"2026-01-02T03:04:05.000Z"}');
  // fast-json-stringify takes a bigint largeArraySize; JSON has none.
  const withOptions = serializingApp(t, { serializerOpts: { largeArraySize: 2n } });
  withOptions.get('/thing', { schema: { response: { 200: { type: 'array', items: { type: 'integer' } } } } }, async () => [1, 2, 3]);
  t.equal(await body(t, withOptions), '[1,2,3]');
});

/** A Fastify app with Gatehouse's validation, one POST /thing route with these schemas. */
async function validatingApp(t: Test, schema: { body?: object; querystring?: object }): Promise<FastifyInstance> {
  const app = Fastify();
  t.teardown(() => app.close());
  useStrictBodyValidation(app);
  app.post('/thing', { schema }, async (request) => ({ body: request.body, query: request.query }));
  await app.ready();
  return app;
}

t.test('a request schema gets its own validator, not a kept one for another schema', async (t) => {
  for (const maxLength of [3, 5]) {
    const app = await validatingApp(t, { body: object({ name: { type: 'string', maxLength } }) });
    const res = await app.inject({ method: 'POST', url: '/thing', payload: { name: 'four' } });
    t.equal(res.statusCode, maxLength === 3 ? 400 : 200, `maxLength ${maxLength}`);
  }
});

t.test('a body is not coerced even where the same schema was compiled for a querystring', async (t) => {
  const schema = () => object({ n: { type: 'number' } });
  for (const order of [['querystring', 'body'], ['body', 'querystring']] as const) {
    for (const part of order) {
      const app = await validatingApp(t, { [part]: schema() });
      const res = await app.inject({ method: 'POST', url: '/thing?n=1', payload: { n: '1' } });
      if (part === 'body') t.equal(res.statusCode, 400, `a string in a body is refused (${order.join(' then ')})`);
      else t.same(res.json().query, { n: 1 }, `a querystring's string is coerced (${order.join(' then ')})`);
    }
  }
});

t.test('validators that name or refer to schemas are compiled in their own app', async (t) => {
  // The `$ref` resolves against the `$id` compiled in the same app: a kept one would answer for
  // the first app's. (And `$id` twice in one Ajv instance is refused: so each app has its own.)
  for (const maxLength of [3, 5]) {
    const app = Fastify();
    t.teardown(() => app.close());
    useStrictBodyValidation(app);
    const named = { $id: 'Named', ...object({ name: { type: 'string', maxLength } }) };
    app.post('/named', { schema: { body: named } }, async () => ({}));
    app.post('/referring', { schema: { body: { $ref: 'Named' } } }, async () => ({}));
    for (const url of ['/named', '/referring']) {
      const res = await app.inject({ method: 'POST', url, payload: { name: 'four' } });
      t.equal(res.statusCode, maxLength === 3 ? 400 : 200, `${url}, maxLength ${maxLength}`);
    }
  }
});

t.test('a request schema JSON cannot hold exactly is compiled as usual', async (t) => {
  const app = await validatingApp(t, { body: { ...object({ name: { type: 'string', maxLength: 3 } }), description: undefined } });
  t.equal((await app.inject({ method: 'POST', url: '/thing', payload: { name: 'four' } })).statusCode, 400);
  t.equal((await app.inject({ method: 'POST', url: '/thing', payload: { name: 'one' } })).statusCode, 200);
});

t.test('unstorable strings are refused by a kept validator too', async (t) => {
  for (let i = 0; i < 2; i++) {
    const app = await validatingApp(t, { body: object({ name: { type: 'string' } }) });
    const res = await app.inject({ method: 'POST', url: '/thing', payload: { name: 'a\u0000b' } });
    t.equal(res.statusCode, 400, `build ${i + 1}`);
    t.match(res.json().message, /NUL/);
  }
});
