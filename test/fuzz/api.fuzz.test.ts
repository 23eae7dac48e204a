import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { isNotNull } from 'drizzle-orm';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import tap from 'tap';
import { buildApp } from '../../src/app.js';
import { sessions, userTokens } from '../../src/db/schema.js';
import { ensureAdmin } from '../../src/domain/admin-bootstrap.js';
import { createPermission, createRole } from '../../src/domain/roles.js';
import { issueUserToken } from '../../src/domain/user-tokens.js';
import { createLogger } from '../../src/logger.js';
import { testConfig, type Test } from '../helpers/app.js';
import { DATABASE_KINDS, openTestDatabase, type DatabaseKind } from '../helpers/databases.js';
import { PASSWORD, uniqueEmail } from '../helpers/users.js';
import {
  Known,
  anyJson,
  arbitraryFor,
  edgeInstant,
  encodeComponent,
  headerText,
  invalidUtf8,
  known,
  oddString,
  oddUuid,
  type Hints,
  type JsonSchema,
} from './arbitraries.js';

/*
 * Every route of the OpenAPI document gets generated requests: valid bodies, wrong types, missing
 * and extra fields, huge and deeply nested bodies, bytes that are not UTF-8, odd headers and
 * tokens, strange path and query parameters. Whatever comes in, the answer is never a 5xx, every
 * error is complete problem+json, and no secret or stored hash ever leaves in a body.
 *
 * Like every database test it runs on PGlite, and on PostgreSQL too when TEST_DATABASE_URL is set
 * (about 20 s each on a 2-core machine). Each run is two passes of half the requests: one with
 * FIXED_SEED, the same on every run, and one with a fresh seed, so CI keeps what it covered and
 * still looks somewhere new at no extra cost. FUZZ_SEED runs one pass with that seed instead (both
 * seeds are printed, and a failure prints the command that replays it), FUZZ_RUNS sets the number of
 * requests per pass (5,000 by default, spread over the routes), FUZZ_ROUTE (e.g.
 * "POST /auth/login") narrows the run to matching routes.
 */

/** Any seed would do; it is fixed so that what a run covered is covered by every run. */
const FIXED_SEED = 1_160_749_183;
const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 5000);
const PASSES = process.env.FUZZ_SEED
  ? [{ seed: Number(process.env.FUZZ_SEED), runs: TOTAL_RUNS }]
  : [FIXED_SEED, Math.floor(Math.random() * 2 ** 31)].map((seed) => ({ seed, runs: Math.ceil(TOTAL_RUNS / 2) }));
const ONLY = process.env.FUZZ_ROUTE;

const BCRYPT_HASH = /\$2[aby]\$\d\d\$/;
const STACK_TRACE = /\bat .*\.(ts|js):\d+/;
const PROBLEM_TYPE = /^application\/problem\+json/;

interface Parameter {
  in: 'path' | 'query' | 'header' | 'cookie';
  name: string;
  required?: boolean;
  schema: JsonSchema;
}
interface OperationObject {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> };
  security?: Record<string, string[]>[];
}
interface OpenApiDocument {
  paths: Record<string, Record<string, OperationObject>>;
  components: { schemas: Record<string, JsonSchema> };
}

interface Operation {
  key: string;
  method: string;
  path: string;
  pathParams: Parameter[];
  queryParams: Parameter[];
  body?: JsonSchema;
  secured: boolean;
}

const document = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as OpenApiDocument;

function resolveRef(ref: string): JsonSchema {
  const name = /^#\/components\/schemas\/(.+)$/.exec(ref)?.[1];
  const schema = name === undefined ? undefined : document.components.schemas[name];
  if (!schema) throw new Error(`fuzz: cannot resolve ${ref}`);
  return schema;
}

const operations: Operation[] = Object.entries(document.paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, op]) => {
    const content = op.requestBody?.content;
    if (content && !content['application/json']) throw new Error(`fuzz: ${method} ${path} takes a body that is not JSON`);
    return {
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      pathParams: (op.parameters ?? []).filter((p) => p.in === 'path'),
      queryParams: (op.parameters ?? []).filter((p) => p.in === 'query'),
      body: content?.['application/json']?.schema,
      secured: (op.security ?? []).some((s) => 'bearerAuth' in s),
    };
  }),
);

/** Subtests by area, so a report reads like the API; they all share one app. */
function groupOf(op: Operation): string {
  if (op.path.startsWith('/admin/users')) return 'admin users';
  if (op.path.startsWith('/admin/')) return 'admin roles and permissions';
  return op.secured ? 'signed-in routes' : 'public routes';
}

/* ---------- what a request is made of, before the app's current values are filled in ---------- */

/** Text made of literal parts and values known only at send time. */
class Text {
  constructor(readonly parts: (string | Known | Forged)[]) {}
  [fc.toStringMethod](): string {
    return `text(${this.parts.map((p) => fc.stringify(p)).join(' + ')})`;
  }
}

/** A JWT built by hand: signed with the test app's secret, another one, or not at all. */
class Forged {
  constructor(
    readonly claims: Record<string, unknown>,
    readonly alg: 'HS256' | 'HS512' | 'none',
    readonly secret: string,
  ) {}
  [fc.toStringMethod](): string {
    return `forged(${this.alg}, ${fc.stringify(this.claims)})`;
  }
}

type HeaderValue = string | Text | (string | Text)[];

type BodyPlan =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown }
  | { kind: 'raw'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  /** `value` serialized, with the string SPLICE in it replaced by raw JSON text or raw bytes. */
  | { kind: 'splice'; value: unknown; insert: string | number[] };

interface Plan {
  path: (string | Known)[];
  query: string;
  headers: Record<string, HeaderValue>;
  body: BodyPlan;
  /** Where the request comes from: mostly a different client each time, so per-IP limits rarely bite. */
  remoteAddress: string;
}

const SPLICE = '\u0001splice\u0001';

const JWT_SECRET = testConfig().jwtSecret;
const NOW = Math.floor(Date.now() / 1000);

const ROLE_NAMES = ['admin', 'user', 'fuzz.role', 'fuzz.unused', '__proto__', 'constructor'];
const PERMISSION_NAMES = ['read', 'users:read', 'roles:write', 'fuzz.perm', '__proto__'];

/** Ids and dates that pass ajv-formats' own formats but not PostgreSQL, wherever the schema takes one. */
const FORMAT_HINTS: Hints = { 'format:uuid': oddUuid, 'format:date-time': edgeInstant };

/** Known values offered next to generated ones, by the name of the field or parameter. */
const BODY_HINTS: Hints = {
  ...FORMAT_HINTS,
  email: known('user.email', 'admin.email'),
  newEmail: known('admin.email', 'user.email'),
  password: known('password'),
  currentPassword: known('password'),
  // Known tokens, and tokens of the right shape naming any session at any generation.
  refreshToken: fc.oneof(known('user.refreshToken', 'admin.refreshToken'), fc.uint8Array({ minLength: 52, maxLength: 52 }).map((bytes) => Buffer.from(bytes).toString('base64url'))),
  token: known('user.confirmToken', 'user.resetToken', 'user.refreshToken'),
  name: fc.constantFrom(...ROLE_NAMES, ...PERMISSION_NAMES),
  roles: fc.constantFrom(...ROLE_NAMES),
  permissions: fc.constantFrom(...PERMISSION_NAMES),
};
const PATH_HINTS: Hints = {
  id: known('user.id', 'admin.id', 'user.sessionId', 'admin.sessionId'),
  name: fc.constantFrom(...ROLE_NAMES, ...PERMISSION_NAMES),
};
const base64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const QUERY_HINTS: Hints = {
  ...FORMAT_HINTS,
  cursor: fc.oneof(
    fc.tuple(fc.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/), fc.uuid()).map(base64url),
    fc.tuple(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.oneof(fc.uuid(), oddString)).map(base64url),
    anyJson.map(base64url),
  ),
  role: fc.constantFrom(...ROLE_NAMES),
  q: fc.constantFrom('%', '_', '\\', '%_\\', 'example'),
};

function pathArbitrary(op: Operation): fc.Arbitrary<(string | Known)[]> {
  const pieces = op.path.split(/\{(\w+)\}/);
  return fc.tuple(
    ...pieces.map((piece, i) => {
      if (i % 2 === 0) return fc.constant<string | Known>(piece);
      const param = op.pathParams.find((p) => p.name === piece);
      if (!param) throw new Error(`fuzz: ${op.key} has no parameter ${piece}`);
      return fc.oneof(
        { arbitrary: arbitraryFor(param.schema, resolveRef, FORMAT_HINTS, piece).map((v) => encodeComponent(String(v))), weight: 3 },
        { arbitrary: (PATH_HINTS[piece] ?? fc.constant('')) as fc.Arbitrary<string | Known>, weight: 6 },
        {
          arbitrary: fc.constantFrom(
            '..', '.', '%2e%2e', '%2E', '%00', 'a%00b', '%', '%zz', '%C0%AF', '%ED%A0%80', '%FF', '%E0%A4%A', '%2F', '%252F', '%20',
            '00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '{00000000-0000-0000-0000-000000000000}',
            '00000000000000000000000000000000', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz', '1', '-1', 'null', 'me',
          ),
          weight: 2,
        },
        { arbitrary: oddString.map(encodeComponent), weight: 2 },
        // Unencoded: slashes, '?', '#' and spaces change what the URL even is.
        { arbitrary: oddString, weight: 1 },
        { arbitrary: fc.tuple(fc.integer({ min: 60, max: 5000 }), fc.constantFrom('a', '%C3%A9', '0')).map(([n, c]) => c.repeat(n)), weight: 1 },
      );
    }),
  );
}

function queryArbitrary(op: Operation): fc.Arbitrary<string> {
  const names = op.queryParams.map((p) => p.name);
  const junk = fc
    .array(
      fc.tuple(
        fc.oneof(fc.constantFrom(...names, 'limit[]', '__proto__', 'q[a]', ''), fc.string({ maxLength: 10 })),
        fc.oneof(
          oddString.map(encodeComponent),
          oddString,
          fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '%FF', '1e2', '0x10', '-0', '1.5', '999999999999999999999', 'true', 'TRUE', '', '[]'),
          fc.integer().map(String),
        ),
      ),
      { maxLength: 6 },
    )
    .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&'));
  if (!names.length) return fc.oneof({ arbitrary: fc.constant(''), weight: 6 }, { arbitrary: junk, weight: 1 });
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const p of op.queryParams) model[p.name] = arbitraryFor(p.schema, resolveRef, QUERY_HINTS, p.name);
  const valid = fc
    .record(model, { requiredKeys: [] })
    .map((q) => Object.entries(q).map(([k, v]) => `${k}=${encodeComponent(String(v))}`).join('&'));
  return fc.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: junk, weight: 2 }, { arbitrary: fc.constant(''), weight: 1 });
}

const remoteAddress: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.ipV4(), weight: 4 },
  { arbitrary: fc.ipV6(), weight: 2 },
  { arbitrary: fc.constantFrom('127.0.0.1', '::1', '::ffff:127.0.0.1'), weight: 1 },
);

const bearer = (who: 'user' | 'admin') => new Text(['Bearer ', new Known(`${who}.accessToken`)]);

/** Claims as the app issues them, then one or two of them changed or dropped. */
const forged: fc.Arbitrary<Forged> = fc
  .tuple(
    fc.constantFrom('user', 'admin'),
    fc.array(fc.tuple(fc.constantFrom('sub', 'sid', 'iat', 'exp', 'iss', 'aud', 'nbf', 'roles'), fc.option(fc.oneof(anyJson, fc.uuid(), fc.constant(NOW - 600)))), {
      maxLength: 2,
    }),
    fc.constantFrom<Forged['alg']>('HS256', 'HS256', 'HS256', 'HS512', 'none'),
    fc.constantFrom(JWT_SECRET, JWT_SECRET, 'not-the-secret'),
  )
  .map(([who, changes, alg, secret]) => {
    const claims: Record<string, unknown> = {
      sub: new Known(`${who}.id`),
      sid: new Known(`${who}.sessionId`),
      iat: NOW,
      exp: NOW + 600,
      iss: 'gatehouse',
      aud: 'gatehouse',
    };
    for (const [claim, value] of changes) {
      if (value === null) delete claims[claim];
      else claims[claim] = value;
    }
    return new Forged(claims, alg, secret);
  });

const oneAuthorization: fc.Arbitrary<string | Text> = fc.oneof(
  { arbitrary: fc.constantFrom(bearer('user'), bearer('admin')), weight: 2 },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('bearer ', 'BEARER ', 'Bearer  ', 'Bearer\t', 'Basic ', 'Token ', '', 'Bearer'), fc.constantFrom('user', 'admin'), fc.constantFrom('', ' ', '  ', ',', 'x', '\t'))
      .map(([scheme, who, tail]) => new Text([scheme, new Known(`${who}.accessToken`), tail])),
    weight: 2,
  },
  {
    arbitrary: fc
      .oneof(
        fc.stringMatching(/^[A-Za-z0-9_.~+/=-]{1,300}$/),
        headerText(200),
        fc.tuple(anyJson, anyJson, fc.string({ maxLength: 40 })).map(([h, p, s]) => `${base64url(h)}.${base64url(p)}.${base64url(s)}`),
        fc.constantFrom('.', '..', '...', 'a.b.c', 'e30.e30.', 'e30.e30.e30'),
      )
      .map((token) => `Bearer ${token}`),
    weight: 3,
  },
  { arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((n) => `Bearer ${'a'.repeat(n)}`), weight: 1 },
  { arbitrary: forged.map((f) => new Text(['Bearer ', f])), weight: 2 },
  { arbitrary: headerText(200), weight: 1 },
);

const authorization: fc.Arbitrary<HeaderValue | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 2 },
  { arbitrary: fc.constantFrom(bearer('user'), bearer('admin'), bearer('admin')), weight: 16 },
  { arbitrary: oneAuthorization, weight: 8 },
  // Authorization twice: Node keeps the first; the app must cope either way.
  { arbitrary: fc.array(oneAuthorization, { minLength: 2, maxLength: 3 }), weight: 1 },
);

const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 24 },
  { arbitrary: fc.constant(undefined), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json; charset=utf-16',
      'application/json;;;',
      'application/json, text/plain',
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/problem+json',
      'application/jsonx',
      '*/*',
      '',
      ' ',
    ),
    weight: 4,
  },
  { arbitrary: headerText(60), weight: 1 },
);

const otherHeaders: fc.Arbitrary<Record<string, HeaderValue>> = fc.oneof(
  { arbitrary: fc.constant({}), weight: 4 },
  {
    arbitrary: fc.record(
      {
        'user-agent': fc.oneof(headerText(600), fc.integer({ min: 500, max: 20_000 }).map((n) => 'u'.repeat(n))),
        'x-request-id': headerText(200),
        cookie: fc.oneof(
          headerText(100),
          fc.constant(new Text(['gatehouse_refresh=', new Known('user.refreshToken')])),
          headerText(60).map((v) => `gatehouse_refresh=${v}`),
        ),
        'x-csrf-token': headerText(100),
        accept: fc.constantFrom('application/xml', '*/*', 'text/html', '', 'application/problem+json'),
        'x-forwarded-for': fc.oneof(headerText(80), fc.array(fc.ipV4(), { minLength: 1, maxLength: 4 }).map((ips) => ips.join(', '))),
      },
      { requiredKeys: [] },
    ),
    weight: 2,
  },
  // A content-length that does not match the body.
  { arbitrary: fc.record({ 'content-length': fc.constantFrom('0', '1', '-1', 'abc', '99999999', '65537') }), weight: 1 },
);

/** The body as the schema allows it, then broken in every way a client could break it. */
function bodyArbitrary(op: Operation): fc.Arbitrary<BodyPlan> {
  const properties = Object.keys(op.body?.properties ?? {});
  const fields = properties.length ? properties : ['x'];
  const required = op.body?.required?.length ? op.body.required : fields;
  const valid = (op.body ? arbitraryFor(op.body, resolveRef, BODY_HINTS) : fc.constant({})) as fc.Arbitrary<Record<string, unknown>>;
  const pick = (list: string[], i: number) => list[i % list.length]!;
  const withField = (value: Record<string, unknown>, key: string, v: unknown) => {
    const copy = { ...value };
    // defineProperty, so '__proto__' becomes an own key that JSON.stringify writes out.
    Object.defineProperty(copy, key, { value: v, enumerable: true, configurable: true, writable: true });
    return copy;
  };
  const json = (value: unknown): BodyPlan => ({ kind: 'json', value });
  return fc.oneof(
    { arbitrary: valid.map(json), weight: op.body ? 16 : 1 },
    { arbitrary: fc.constant<BodyPlan>({ kind: 'none' }), weight: op.body ? 2 : 6 },
    // wrong type
    { arbitrary: fc.tuple(valid, fc.nat(), anyJson).map(([v, i, x]) => json(withField(v, pick(fields, i), x))), weight: 3 },
    // missing field
    {
      arbitrary: fc.tuple(valid, fc.nat()).map(([v, i]) => {
        const copy = { ...v };
        delete copy[pick(required, i)];
        return json(copy);
      }),
      weight: 2,
    },
    // extra field
    {
      arbitrary: fc
        .tuple(valid, fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'admin', 'roles', 'id', 'passwordHash', ''), fc.string()), anyJson)
        .map(([v, k, x]) => json(withField(v, k, x))),
      weight: 2,
    },
    // not an object at all
    { arbitrary: anyJson.map(json), weight: 2 },
    // a huge string: some bodies under the 64 KiB limit, some over it
    {
      arbitrary: fc
        .tuple(valid, fc.nat(), fc.integer({ min: 300, max: 90_000 }), fc.constantFrom('a', 'é', '😀', '"', ' ', '\\', '\u0000'))
        .map(([v, i, n, c]) => json(withField(v, pick(fields, i), c.repeat(n)))),
      weight: 2,
    },
    // deeply nested JSON, at the root or in a field
    {
      arbitrary: fc
        .tuple(valid, fc.option(fc.nat()), fc.integer({ min: 10, max: 40_000 }), fc.constantFrom('[', '{"a":'))
        .map(([v, i, depth, open]): BodyPlan => {
          const close = open === '[' ? ']' : '}';
          const nested = `${open.repeat(depth)}1${close.repeat(depth)}`;
          return i === null ? { kind: 'raw', text: nested } : { kind: 'splice', value: withField(v, pick(fields, i), SPLICE), insert: nested };
        }),
      weight: 2,
    },
    // bytes that are not UTF-8, in a field or as the whole body
    {
      arbitrary: fc
        .tuple(valid, fc.nat(), invalidUtf8, fc.string({ maxLength: 8 }))
        .map(([v, i, bytes, s]): BodyPlan => ({ kind: 'splice', value: withField(v, pick(fields, i), SPLICE), insert: [0x22, ...Buffer.from(s), ...bytes, 0x22] })),
      weight: 2,
    },
    { arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes): BodyPlan => ({ kind: 'bytes', bytes })), weight: 1 },
    // malformed JSON text
    {
      arbitrary: fc
        .oneof(
          fc.constantFrom(
            '{', '{"a":', '{"email":"x",}', "{'a':1}", 'nul', 'tru', '[1,]', '{"a":1}{"b":2}', '\ufeff{}', '{"a":1e99999}', '-', '"\\ud800"',
            '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}', '{"a":"\\u0000"}', '{"a":"\\x00"}', ' ', '',
          ),
          fc.string({ maxLength: 60 }),
        )
        .map((text): BodyPlan => ({ kind: 'raw', text })),
      weight: 2,
    },
  );
}

function planArbitrary(op: Operation): fc.Arbitrary<Plan> {
  return fc
    .record({
      path: pathArbitrary(op),
      query: queryArbitrary(op),
      auth: authorization,
      type: contentType,
      other: otherHeaders,
      body: bodyArbitrary(op),
      remoteAddress,
    })
    .map(({ path, query, auth, type, other, body, remoteAddress }) => {
      const headers: Record<string, HeaderValue> = { ...other };
      if (auth !== undefined) headers.authorization = auth;
      if (type !== undefined && body.kind !== 'none') headers['content-type'] = type;
      // A content-length that lies about a body only makes sense with a body.
      if (body.kind === 'none') delete headers['content-length'];
      return { path, query, headers, body, remoteAddress };
    });
}

/** Requests for methods and paths the document does not have. */
interface UnmatchedPlan {
  method: InjectOptions['method'];
  url: string;
  headers: Record<string, HeaderValue>;
  remoteAddress: string;
}
const unmatchedPlan: fc.Arbitrary<UnmatchedPlan> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
  url: fc.oneof(
    fc.constantFrom('/', '/admin', '/auth', '/auth/', '/admin/users/x/y/z', '/%', '/%00', '/..%2f..%2f', '//', '/auth//login', '/AUTH/LOGIN', '/docs/../admin/users'),
    fc.array(oddString.map(encodeComponent), { minLength: 1, maxLength: 5 }).map((segments) => `/${segments.join('/')}`),
  ),
  headers: fc.record({ authorization: oneAuthorization }, { requiredKeys: [] }),
  remoteAddress,
});

/* ---------- one app under fuzz ---------- */

interface Actor {
  id: string;
  email: string;
  accessToken: string;
  refreshToken: string;
  sessionId: string;
  confirmToken: string;
  resetToken: string;
}

const sessionOf = (accessToken: string): string =>
  (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string }).sid;

const excerpt = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}... (${text.length} chars)` : text);

function sign(token: Forged, claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value) ?? 'null', 'utf8').toString('base64url');
  const input = `${encode({ alg: token.alg, typ: 'JWT' })}.${encode(claims)}`;
  if (token.alg === 'none') return `${input}.`;
  return `${input}.${createHmac(token.alg === 'HS256' ? 'sha256' : 'sha512', token.secret).update(input).digest('base64url')}`;
}

class FuzzApp {
  /** Every body (and header) the app answered with, checked for leaks at the end. */
  readonly answers: string[] = [];
  cases = 0;
  /** How many answers of each status, per route: shows whether the valid requests got through. */
  statuses = new Map<number, number>();
  private user!: Actor;
  private admin!: Actor;
  private stale = false;
  private usedKnown = false;
  private setupRequests = 0;

  private constructor(
    readonly app: FastifyInstance,
    /** Lines logged at error level: a 5xx, or a background task (lookups, mails) that failed. */
    readonly errorLogs: string[],
  ) {}

  static async start(t: Test, kind: DatabaseKind): Promise<FuzzApp> {
    const database = await openTestDatabase(kind);
    const errorLogs: string[] = [];
    const logger = createLogger({ logLevel: 'error' }, { write: (line: string) => void errorLogs.push(line) });
    const app = await buildApp(testConfig(), { database, logger });
    t.teardown(async () => {
      await app.close();
      await database.drop();
    });
    await app.ready();
    const fuzz = new FuzzApp(app, errorLogs);
    const { db } = app.gatehouse;
    await createPermission(db, { name: 'fuzz.perm' });
    await createRole(db, 'system', { name: 'fuzz.role', permissions: ['fuzz.perm'] });
    await createRole(db, 'system', { name: 'fuzz.unused' });
    fuzz.user = await fuzz.newUser();
    fuzz.admin = await fuzz.newAdmin();
    return fuzz;
  }

  private async withMailTokens(actor: Omit<Actor, 'confirmToken' | 'resetToken'>): Promise<Actor> {
    const { db, background } = this.app.gatehouse;
    // Registration mails a confirmation in the background; ours must be issued after it.
    await background.idle();
    const confirmToken = await issueUserToken(db, { userId: actor.id, purpose: 'confirm_email', ttlSeconds: 3600 });
    const resetToken = await issueUserToken(db, { userId: actor.id, purpose: 'reset_password', ttlSeconds: 3600 });
    return { ...actor, confirmToken, resetToken };
  }

  /** Setup requests come from addresses of their own, so the fuzz's own traffic never rate-limits them. */
  private async setup(method: 'GET' | 'POST', url: string, options: { payload?: object; accessToken?: string } = {}) {
    this.setupRequests += 1;
    const n = this.setupRequests;
    return this.app.inject({
      method,
      url,
      payload: options.payload,
      headers: options.accessToken ? { authorization: `Bearer ${options.accessToken}` } : {},
      remoteAddress: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
    });
  }

  private async signIn(email: string): Promise<{ id: string; accessToken: string; refreshToken: string; sessionId: string } | undefined> {
    const res = await this.setup('POST', '/auth/login', { payload: { email, password: PASSWORD } });
    if (res.statusCode !== 200) return undefined;
    const tokens = res.json() as { accessToken: string; refreshToken: string; user: { id: string } };
    return { id: tokens.user.id, accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, sessionId: sessionOf(tokens.accessToken) };
  }

  private async newUser(): Promise<Actor> {
    const email = uniqueEmail('fuzz');
    const res = await this.setup('POST', '/auth/register', { payload: { email, password: PASSWORD } });
    if (res.statusCode !== 201) throw new Error(`fuzz: cannot register a user: ${res.statusCode} ${res.body}`);
    const tokens = res.json() as { accessToken: string; refreshToken: string; user: { id: string } };
    return this.withMailTokens({
      id: tokens.user.id,
      email,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      sessionId: sessionOf(tokens.accessToken),
    });
  }

  private async newAdmin(): Promise<Actor> {
    const { db, passwords } = this.app.gatehouse;
    const email = uniqueEmail('fuzz-admin');
    await ensureAdmin(db, { email, password: PASSWORD, passwords });
    const signedIn = await this.signIn(email);
    if (!signedIn) throw new Error('fuzz: a new admin cannot log in');
    return this.withMailTokens({ email, ...signedIn });
  }

  /** After a request that may have logged an actor out, demoted or deleted them: replace who is gone. */
  private async refreshActors(): Promise<void> {
    this.user = await this.current(this.user, ['user'], () => this.newUser());
    this.admin = await this.current(this.admin, ['admin'], () => this.newAdmin());
    this.stale = false;
  }

  /** The actor as they are now; signed in again if only their session ended, replaced if they are gone. */
  private async current(actor: Actor, roles: string[], replace: () => Promise<Actor>): Promise<Actor> {
    const me = async (accessToken: string) => {
      const res = await this.setup('GET', '/auth/me', { accessToken });
      const body = res.statusCode === 200 ? (res.json() as { email: string; roles: string[] }) : undefined;
      return body && roles.every((r) => body.roles.includes(r)) ? body : undefined;
    };
    const now = await me(actor.accessToken);
    if (now) return { ...actor, email: now.email };
    // Cheaper than a new account: most often only the session was revoked.
    const signedIn = await this.signIn(actor.email);
    if (signedIn && (await me(signedIn.accessToken))) return { ...actor, ...signedIn };
    return replace();
  }

  private value(name: string): string {
    this.usedKnown = true;
    if (name === 'password') return PASSWORD;
    const [who, field] = name.split('.') as ['user' | 'admin', keyof Actor];
    return this[who][field];
  }

  private fill(v: unknown): unknown {
    if (v instanceof Known) return this.value(v.name);
    if (v instanceof Forged) return sign(v, this.fill(v.claims) as Record<string, unknown>);
    if (v instanceof Text) return v.parts.map((p) => this.fill(p)).join('');
    if (Array.isArray(v)) return v.map((x) => this.fill(x));
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: this.fill(x), enumerable: true, configurable: true, writable: true });
      return out;
    }
    return v;
  }

  private headers(headers: Record<string, HeaderValue>): Record<string, string | string[]> {
    return this.fill(headers) as Record<string, string | string[]>;
  }

  private payload(body: BodyPlan): string | Buffer | undefined {
    switch (body.kind) {
      case 'none':
        return undefined;
      case 'json':
        return JSON.stringify(this.fill(body.value)) ?? 'null';
      case 'raw':
        return body.text;
      case 'bytes':
        return Buffer.from(body.bytes);
      case 'splice': {
        const [before, after] = JSON.stringify(this.fill(body.value)).split(JSON.stringify(SPLICE)) as [string, string];
        const insert = typeof body.insert === 'string' ? Buffer.from(body.insert) : Buffer.from(body.insert);
        return Buffer.concat([Buffer.from(before), insert, Buffer.from(after)]);
      }
    }
  }

  async send(op: Operation, plan: Plan): Promise<void> {
    if (this.stale) await this.refreshActors();
    this.usedKnown = false;
    const url = plan.path.map((p) => (p instanceof Known ? encodeComponent(this.value(p.name)) : p)).join('') + (plan.query ? `?${plan.query}` : '');
    const request: InjectOptions = {
      method: op.method as InjectOptions['method'],
      url,
      headers: this.headers(plan.headers),
      payload: this.payload(plan.body),
      remoteAddress: plan.remoteAddress,
    };
    const res = await this.check(request);
    if (res.statusCode < 300) this.remember(res);
    // Only a request that used an actor's id, token or email can have logged them out or changed them.
    if (op.method !== 'GET' && res.statusCode < 300 && this.usedKnown) this.stale = true;
  }

  async sendUnmatched(plan: UnmatchedPlan): Promise<void> {
    await this.check({ method: plan.method, url: plan.url, headers: this.headers(plan.headers), remoteAddress: plan.remoteAddress });
  }

  /** Sends one request and throws, with the request and the answer, if the answer breaks a rule. */
  async check(request: InjectOptions): Promise<LightMyRequestResponse> {
    this.cases += 1;
    const res = await this.app.inject(request);
    this.statuses.set(res.statusCode, (this.statuses.get(res.statusCode) ?? 0) + 1);
    this.answers.push(res.body, JSON.stringify(res.headers));
    const broken: string[] = [];
    if (res.statusCode >= 500) broken.push(`answered ${res.statusCode}`);
    if (res.statusCode >= 400) {
      if (!PROBLEM_TYPE.test(String(res.headers['content-type']))) broken.push(`content-type ${String(res.headers['content-type'])}`);
      let body: Record<string, unknown> | undefined;
      try {
        body = res.json() as Record<string, unknown>;
      } catch {
        broken.push('body is not JSON');
      }
      if (body) {
        for (const field of ['type', 'title', 'detail', 'code']) {
          if (typeof body[field] !== 'string' || body[field] === '') broken.push(`no ${field}`);
        }
        if (body.status !== res.statusCode) broken.push(`status ${String(body.status)} in the body`);
      }
    }
    if (STACK_TRACE.test(res.body)) broken.push('a stack trace in the body');
    if (BCRYPT_HASH.test(res.body)) broken.push('a bcrypt hash in the body');
    if (broken.length) {
      const payload = request.payload === undefined ? '' : Buffer.isBuffer(request.payload) ? request.payload.toString('latin1') : String(request.payload);
      throw new Error(
        [
          `${broken.join('; ')}`,
          `request: ${request.method} ${excerpt(String(request.url), 200)}`,
          `headers: ${excerpt(JSON.stringify(request.headers), 400)}`,
          `payload: ${excerpt(JSON.stringify(payload), 400)}`,
          `answer: ${res.statusCode} ${excerpt(res.body, 600)}`,
        ].join('\n'),
      );
    }
    return res;
  }

  /** Keeps the actors' tokens current when a request of theirs rotated or replaced them. */
  private remember(res: LightMyRequestResponse): void {
    let body: { accessToken?: unknown; refreshToken?: unknown; user?: { id?: unknown } };
    try {
      body = res.json();
    } catch {
      return;
    }
    if (typeof body?.accessToken !== 'string' || !body.user) return;
    for (const actor of [this.user, this.admin]) {
      if (body.user.id !== actor.id) continue;
      actor.accessToken = body.accessToken;
      actor.sessionId = sessionOf(body.accessToken);
      if (typeof body.refreshToken === 'string') actor.refreshToken = body.refreshToken;
    }
  }

  /**
   * Answers that carry a secret of the test config or a token hash stored in the database. The
   * hashes are base64url SHA-256, so only an answer's 43-character base64url windows need looking up.
   */
  async leaks(): Promise<{ found: string[]; hashes: number }> {
    const { config, db, csrfKey, sessionSettings, background } = this.app.gatehouse;
    await background.idle();
    const stored = [
      ...(await db.select({ hash: sessions.refreshTokenHash }).from(sessions).where(isNotNull(sessions.refreshTokenHash))),
      ...(await db.select({ hash: userTokens.tokenHash }).from(userTokens)),
    ].map((r) => r.hash!);
    const shaped = (hash: string) => /^[A-Za-z0-9_-]{43}$/.test(hash);
    const hashes = new Set(stored.filter(shaped));
    const keys = [csrfKey, sessionSettings.successorKey].flatMap((k) => [k.toString('base64url'), k.toString('hex'), k.toString('base64')]);
    const secrets = [config.jwtSecret, config.passwordPepper, ...keys, ...stored.filter((h) => !shaped(h))];
    const found: string[] = [];
    for (const answer of this.answers) {
      const hits = secrets.filter((secret) => answer.includes(secret));
      for (const run of answer.match(/[A-Za-z0-9_-]{43,}/g) ?? []) {
        for (let i = 0; i + 43 <= run.length; i++) {
          if (hashes.has(run.slice(i, i + 43))) hits.push(run.slice(i, i + 43));
        }
      }
      found.push(...hits.map((hit) => `${excerpt(hit, 20)} in ${excerpt(answer, 200)}`));
    }
    return { found, hashes: stored.length };
  }
}

type Pass = (typeof PASSES)[number];

/** A 32-bit seed per route, derived from the pass's seed, so one route can be replayed alone. */
function seedFor(key: string, pass: Pass): number {
  let hash = 0x811c9dc5;
  for (const c of key) hash = Math.imul(hash ^ c.charCodeAt(0), 0x01000193);
  return (hash ^ pass.seed) | 0;
}

/** The requests each route gets in a pass. */
function runsPerRoute(pass: Pass): number {
  return Math.ceil(pass.runs / Math.max(operations.length, 1));
}

/** The command that runs `pass` again, alone, for the routes matching `route`. */
function replay(pass: Pass, route?: string): string {
  return `FUZZ_SEED=${pass.seed} FUZZ_RUNS=${pass.runs}${route ? ` FUZZ_ROUTE="${route}"` : ''} npx tap test/fuzz/api.fuzz.test.ts`;
}

async function report<Ts>(t: Test, name: string, out: fc.RunDetails<Ts>, fuzz: FuzzApp, replayCommand: string): Promise<void> {
  const statuses = [...fuzz.statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}x${n}`).join(' ');
  fuzz.statuses.clear();
  if (out.failed) {
    const error = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    const summary = excerpt((await fc.asyncDefaultReportMessage(out)) ?? 'failed', 3000);
    t.fail(`${name}: ${error}\n${summary}\nreplay: ${replayCommand}`);
  } else {
    t.pass(`${name}: ${out.numRuns} requests (${statuses})`);
  }
}

const selected = operations.filter((op) => !ONLY || op.key.includes(ONLY));
const groups = new Map<string, Operation[]>();
for (const op of selected) groups.set(groupOf(op), [...(groups.get(groupOf(op)) ?? []), op]);

for (const kind of DATABASE_KINDS) {
  void tap.test(`generated requests never get a 5xx, an incomplete problem or a leaked secret [${kind}]`, async (t) => {
    const started = Date.now();
    // One app for all routes and passes: a PGlite takes seconds to open, and a few hundred users
    // slow nothing down.
    const fuzz = await FuzzApp.start(t, kind);
    for (const pass of PASSES) {
      const perRoute = runsPerRoute(pass);
      const name = pass.seed === FIXED_SEED ? `fixed seed ${pass.seed}` : `seed ${pass.seed}`;
      t.comment(`fuzz ${name}: ${perRoute} requests per route, ${selected.length} routes; replay with ${replay(pass)}`);
      await t.test(name, async (t) => {
        for (const [group, ops] of groups) {
          await t.test(group, async (t) => {
            for (const op of ops) {
              const out = await fc.check(
                fc.asyncProperty(planArbitrary(op), (plan) => fuzz.send(op, plan)),
                { numRuns: perRoute, seed: seedFor(op.key, pass) },
              );
              await report(t, op.key, out, fuzz, replay(pass, op.key));
            }
          });
        }
        if (!ONLY) {
          const out = await fc.check(
            fc.asyncProperty(unmatchedPlan, (plan) => fuzz.sendUnmatched(plan)),
            { numRuns: Math.ceil(pass.runs / 25), seed: seedFor('unmatched', pass) },
          );
          await report(t, 'unmatched routes', out, fuzz, replay(pass));
        }
      });
    }
    const health = await fuzz.app.inject({ url: '/health' });
    t.equal(health.statusCode, 200, 'the app still answers /health');
    const leaks = await fuzz.leaks();
    t.same(leaks.found, [], `no secret, and none of ${leaks.hashes} stored token hashes, in any of ${fuzz.cases} answers`);
    t.same(fuzz.errorLogs.map((l) => excerpt(l, 1000)), [], 'nothing logged at error level');
    t.comment(`${fuzz.cases} requests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}
