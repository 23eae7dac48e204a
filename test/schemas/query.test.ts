import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import tap from 'tap';
import { QueryObject } from '../../src/schemas/query.js';

tap.test('a query parameter with a default is optional to the client, and still there for the handler', async (t) => {
  const query = QueryObject({
    limit: Type.Integer({ default: 20 }),
    q: Type.String(),
    cursor: Type.Optional(Type.String()),
  });
  t.same(query.required, ['q'], 'required: only what has neither a default nor Optional');
  const validate = new Ajv({ useDefaults: true, coerceTypes: 'array' }).compile(query);
  const given: Record<string, unknown> = { q: 'ann' };
  t.ok(validate(given));
  t.same(given, { q: 'ann', limit: 20 }, 'validation fills the default in');
  t.notOk(validate({ limit: '5' }), 'a parameter without a default is still required');
  t.notOk(validate({ q: 'ann', other: 'x' }), 'unknown parameters are refused');
});

tap.test('a querystring whose every parameter may be left out requires nothing', async (t) => {
  t.notOk('required' in QueryObject({ force: Type.Boolean({ default: false }) }));
  t.notOk('required' in QueryObject({ cursor: Type.Optional(Type.String()) }));
});
