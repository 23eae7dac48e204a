import type { FastifyInstance } from 'fastify';
import type { OpenAPIV3_1 } from 'openapi-types';
import { adminToken, send, type Actor } from '../helpers/admin.js';
import { buildTestApp, eachDatabase, type Test } from '../helpers/app.js';
import { assertProblem } from '../helpers/problems.js';

/*
 * Ids and dates that ajv-formats' own uuid and date-time formats accept but PostgreSQL cannot take
 * (once 500s), sent to every parameter and body field that declares one of those formats.
 */

const NOT_CANONICAL_UUIDS = [
  'urn:uuid:00000000-0000-4000-8000-000000000000',
  'URN:UUID:00000000-0000-4000-8000-000000000000',
  '{00000000-0000-4000-8000-000000000000}',
  '00000000000040008000000000000000',
  '00000000-0000-4000-8000-0000000000000',
];
const CANONICAL_UUIDS = ['00000000-0000-4000-8000-000000000000', 'FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF'];

const UNSTORABLE_INSTANTS = [
  '9999-12-31T23:59:59-23:59',
  '9999-12-31T23:59:59-00:01',
  '0000-01-01T00:00:00Z',
  '0000-06-15T12:00:00+14:00',
  '0001-01-01T00:00:00+00:01',
  '0001-01-01T00:00:00+14:00',
  '2016-12-31T23:59:60Z',
  '2016-12-31T15:59:60-08:00',
  '2021-02-30T00:00:00Z',
  '2023-02-29T00:00:00Z',
];
const EDGE_INSTANTS = [
  '0001-01-01T00:00:00Z',
  '0001-01-01T00:00:00-14:00',
  '0099-06-01T00:00:00Z',
  '2024-02-29T23:59:59.999999999+05:45',
  '9999-12-31T23:59:59+14:00',
  '9999-12-31T23:59:59.999Z',
];

interface Position {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The OpenAPI path, e.g. /admin/users/{id}. */
  path: string;
  in: 'path' | 'query' | 'body';
  name: string;
}

/** Every parameter and top-level body field of the live OpenAPI document with this format. */
function positionsOf(app: FastifyInstance, format: 'uuid' | 'date-time'): Position[] {
  const document = app.swagger() as OpenAPIV3_1.Document;
  const found: Position[] = [];
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    for (const [method, op] of Object.entries(item ?? {}) as [string, OpenAPIV3_1.OperationObject][]) {
      const at = { method: method.toUpperCase() as Position['method'], path };
      for (const p of (op.parameters ?? []) as OpenAPIV3_1.ParameterObject[]) {
        if ((p.schema as OpenAPIV3_1.SchemaObject | undefined)?.format === format && (p.in === 'path' || p.in === 'query')) {
          found.push({ ...at, in: p.in, name: p.name });
        }
      }
      const body = (op.requestBody as OpenAPIV3_1.RequestBodyObject | undefined)?.content['application/json']?.schema as OpenAPIV3_1.SchemaObject | undefined;
      for (const [name, schema] of Object.entries(body?.properties ?? {})) {
        if ((schema as OpenAPIV3_1.SchemaObject).format === format) found.push({ ...at, in: 'body', name });
      }
    }
  }
  return found;
}

/** The request with `value` in the position; other path parameters get a value that exists. */
function sendAt(app: FastifyInstance, admin: Actor, at: Position, value: string) {
  const fill = (name: string) => encodeURIComponent(name === at.name && at.in === 'path' ? value : name === 'name' ? 'user' : '00000000-0000-4000-8000-000000000000');
  const path = at.path.replace(/\{(\w+)\}/g, (_, name: string) => fill(name));
  const url = at.in === 'query' ? `${path}?${at.name}=${encodeURIComponent(value)}` : path;
  return send(app, admin, at.method, url, at.in === 'body' ? { [at.name]: value } : undefined);
}

const fieldOf = (at: Position) => `${{ path: 'params', query: 'querystring', body: 'body' }[at.in]}/${at.name}`;

async function refusedEverywhere(t: Test, app: FastifyInstance, admin: Actor, positions: Position[], values: string[]) {
  for (const at of positions) {
    for (const value of values) {
      const label = `${at.method} ${at.path} ${at.in} ${at.name}=${value}`;
      const body = assertProblem(t, await sendAt(app, admin, at, value), 400, 'validation_failed', label);
      t.ok(body.errors?.some((e) => e.path === fieldOf(at)), `${label}: names ${fieldOf(at)}`);
    }
  }
}

async function acceptedEverywhere(t: Test, app: FastifyInstance, admin: Actor, positions: Position[], values: string[]) {
  for (const at of positions) {
    for (const value of values) {
      const label = `${at.method} ${at.path} ${at.in} ${at.name}=${value}`;
      const res = await sendAt(app, admin, at, value);
      t.ok(res.statusCode < 500, `${label}: not a 5xx (${res.statusCode})`);
      const errors = res.statusCode === 400 ? ((res.json() as { errors?: { path: string }[] }).errors ?? []) : [];
      t.notOk(errors.some((e) => e.path === fieldOf(at)), `${label}: the value itself is accepted`);
    }
  }
}

eachDatabase('an id that is not a canonical uuid (urn:uuid:, braces, no hyphens) is a 400 naming the field, wherever it is sent', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const positions = positionsOf(app, 'uuid');
  t.ok(positions.some((p) => p.path === '/admin/users/{id}'), 'admin user ids are walked');
  t.ok(positions.some((p) => p.path === '/auth/sessions/{id}'), 'session ids are walked');
  t.ok(positions.some((p) => p.path === '/admin/audit' && p.name === 'user'), 'the audit user filter is walked');
  await refusedEverywhere(t, app, admin, positions, NOT_CANONICAL_UUIDS);
  await acceptedEverywhere(t, app, admin, positions, CANONICAL_UUIDS);
});

eachDatabase('a canonical uuid that names nobody is a 404, in upper case too', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  for (const id of CANONICAL_UUIDS) {
    assertProblem(t, await send(app, admin, 'GET', `/admin/users/${id}`), 404, 'not_found', `GET user ${id}`);
    assertProblem(t, await send(app, admin, 'PUT', `/admin/users/${id}/roles`, { roles: [] }), 404, 'not_found', `PUT roles ${id}`);
    assertProblem(t, await send(app, admin, 'DELETE', `/auth/sessions/${id}`), 404, 'not_found', `DELETE session ${id}`);
  }
  const own = await send(app, admin, 'GET', `/admin/users/${admin.userId.toUpperCase()}`);
  t.equal(own.statusCode, 200, 'an existing id in upper case finds its user');
});

eachDatabase('a date-time PostgreSQL cannot store (year 0 or 10000 after the offset, a leap second, February 30th) is a 400 naming the field', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const positions = positionsOf(app, 'date-time');
  t.ok(positions.some((p) => p.path === '/admin/audit' && p.name === 'from'), 'the audit from filter is walked');
  t.ok(positions.some((p) => p.path === '/admin/audit' && p.name === 'to'), 'the audit to filter is walked');
  await refusedEverywhere(t, app, admin, positions, UNSTORABLE_INSTANTS);
  await acceptedEverywhere(t, app, admin, positions, EDGE_INSTANTS);
});

eachDatabase('the audit log filtered by the first and last storable instants, and by offsets, finds the right events', async (t, kind) => {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const count = async (query: string) => {
    const res = await send(app, admin, 'GET', `/admin/audit?limit=100&${query}`);
    t.equal(res.statusCode, 200, query);
    return (res.json() as { items: unknown[] }).items.length;
  };
  await app.gatehouse.background.idle();
  const all = await count('');
  t.ok(all > 0, 'the admin login is in the log');
  t.equal(await count(`from=${encodeURIComponent('0001-01-01T00:00:00Z')}&to=${encodeURIComponent('9999-12-31T23:59:59.999Z')}`), all, 'the whole storable range holds every event');
  t.equal(await count(`from=${encodeURIComponent('9999-12-31T23:59:59+14:00')}`), 0, 'nothing after the last day of year 9999');
  // A minute from now written at -14:00: read as if it were UTC, it would be 14 hours ago and match nothing.
  const soon = new Date(Date.now() + 60_000 - 14 * 3_600_000).toISOString().replace('Z', '-14:00');
  t.equal(await count(`to=${encodeURIComponent(soon)}`), all, 'an offset moves the instant, not the wall clock');
});
